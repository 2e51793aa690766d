//! The conformance suite every capability runs (feature `testing`), after
//! openraft's storage `Suite`: a capability hands it the rules it runs in
//! and a scenario (batches of signed events, each expected to be accepted or
//! refused with a named reason), and the suite checks the contract:
//!
//! - its kinds are data the kernel can use: unique names and messages in its
//!   own protobuf package, subject kinds it owns, a payload that encodes to
//!   what the kind names;
//! - a refusal leaves the state unchanged (event count, log and state hashes);
//! - `decide` is deterministic: two projections fed the same scenario agree
//!   after every step, and a refused batch is refused again for the same reason;
//! - replay equals live apply: the accepted events, applied one by one with
//!   unbounded limits (as a restart does), reach the same state;
//! - a leader's pre-check (`Staged::precheck`) reaches the commit path's verdict;
//! - a state image restores the same state, indexes included, and a restored
//!   projection decides the rest of the scenario as the live one does;
//! - every accepted payload describes itself (named, unique fields) for clients.

use std::sync::Arc;

use crate::capability::{Capability, LogTree, NoTree, Subjects};
use crate::envelope::Envelope;
use crate::limits::EventLimits;
use crate::projection::Projection;
use crate::refusal::Refusal;
use crate::rules::{Event, Rules};

/// What a step of a scenario must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    Accepted,
    /// Refused with this machine-readable reason.
    Refused(&'static str),
}

/// One client batch and what must happen to it.
#[derive(Clone, Debug)]
pub struct Step {
    pub what: String,
    pub batch: Vec<Envelope>,
    pub expect: Expect,
}

impl Step {
    pub fn accepted(what: impl Into<String>, batch: Vec<Envelope>) -> Self {
        Step {
            what: what.into(),
            batch,
            expect: Expect::Accepted,
        }
    }

    pub fn refused(what: impl Into<String>, batch: Vec<Envelope>, reason: &'static str) -> Self {
        Step {
            what: what.into(),
            batch,
            expect: Expect::Refused(reason),
        }
    }
}

fn parse(rules: &Rules, batch: &[Envelope], limits: &EventLimits) -> Result<Vec<Event>, Refusal> {
    batch
        .iter()
        .map(|e| rules.parse(e.clone(), limits))
        .collect()
}

/// The projection `p`'s state image restores, checked equal to `p`.
fn restored(p: &Projection, what: &str) -> Projection {
    let image = crate::projection::StateImage::decode(&p.image())
        .unwrap_or_else(|e| panic!("{what}: the state image does not decode: {e}"));
    let back = Projection::restore(p.rules().clone(), image, p.event_ids_in_order())
        .unwrap_or_else(|e| panic!("{what}: the state image does not restore: {e}"));
    assert!(
        back.same_state(p),
        "{what}: the restored state differs from the one imaged"
    );
    back
}

fn fingerprint(p: &Projection) -> (u64, [u8; 32], [u8; 32]) {
    (p.event_count(), p.log_hash(), p.state_hash())
}

/// Checks that `C`'s kinds are well-formed data in `rules`.
pub fn check_kinds<C: Capability>(rules: &Rules) {
    let package = format!("ics.{}.v1.", C::NAME);
    for kind in C::kinds() {
        assert!(
            std::ptr::eq(
                rules.kind(kind.name).expect("the kind is in the rules"),
                *kind
            ),
            "{} resolves to another kind",
            kind.name
        );
        assert!(
            kind.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'-'),
            "kind name {:?} is lower-case words joined by dashes",
            kind.name
        );
        assert!(
            kind.message.starts_with(&package),
            "{} lives in {package}*",
            kind.message
        );
        assert!(
            !kind.authored_by.is_empty(),
            "{} has an author role",
            kind.name
        );
        if let Subjects::Of(subjects) = kind.subjects {
            assert!(!subjects.is_empty(), "{} is about some subject", kind.name);
            for s in subjects {
                assert!(
                    rules.is_subject_kind(s),
                    "{}: unknown subject kind {s}",
                    kind.name
                );
            }
        }
    }
    for s in C::subject_kinds() {
        assert!(rules.is_subject_kind(s));
    }
}

/// Runs the whole suite on scenarios (each on a fresh projection, e.g. one
/// per role), which together must accept an event of every kind of `C`.
/// Panics with the step at fault.
pub fn check_scenarios<C: Capability>(
    rules: Arc<Rules>,
    limits: &EventLimits,
    scenarios: &[Vec<Step>],
) {
    check_scenarios_over::<C>(rules, limits, scenarios, &|_| Box::new(NoTree))
}

/// The log's tree over the events accepted so far, in order: what a
/// capability whose rules read the tree is checked with.
pub type TreeOf = dyn Fn(&[Event]) -> Box<dyn LogTree>;

/// [`check_scenarios`], each batch decided over `tree_of` the events
/// accepted before it.
pub fn check_scenarios_over<C: Capability>(
    rules: Arc<Rules>,
    limits: &EventLimits,
    scenarios: &[Vec<Step>],
    tree_of: &TreeOf,
) {
    check_kinds::<C>(&rules);
    let mut kinds_seen = std::collections::BTreeSet::new();
    for steps in scenarios {
        kinds_seen.extend(check_scenario(rules.clone(), limits, steps, tree_of));
    }
    for kind in C::kinds() {
        assert!(
            kinds_seen.contains(kind.name),
            "no scenario accepts a {} event",
            kind.name
        );
    }
}

/// Runs one scenario; returns the kinds it accepted.
fn check_scenario(
    rules: Arc<Rules>,
    limits: &EventLimits,
    steps: &[Step],
    tree_of: &TreeOf,
) -> std::collections::BTreeSet<&'static str> {
    let mut live = Projection::new(rules.clone());
    let mut twin = Projection::new(rules.clone());
    let mut accepted: Vec<Event> = Vec::new();
    let mut kinds_seen = std::collections::BTreeSet::new();
    for step in steps {
        let before = fingerprint(&live);
        let tree = tree_of(&accepted);
        let tree = tree.as_ref();
        // A leader's pre-check reaches the verdict the commit path reaches.
        let prechecked = parse(&rules, &step.batch, limits).and_then(|events| {
            crate::projection::Staged::precheck(&live).stage_batch_over(&events, limits, tree)
        });
        let outcome = parse(&rules, &step.batch, limits).and_then(|events| {
            live.apply_batch_over(&events, limits, tree)
                .map(|out| (events, out))
        });
        let twin_outcome = parse(&rules, &step.batch, limits)
            .and_then(|events| twin.apply_batch_over(&events, limits, tree));
        match (&step.expect, outcome) {
            (Expect::Accepted, Ok((events, out))) => {
                assert_eq!(
                    prechecked.as_ref().ok(),
                    Some(&out),
                    "{}: the pre-check disagrees",
                    step.what
                );
                assert_eq!(
                    out.len(),
                    events.len(),
                    "{}: one result per event",
                    step.what
                );
                for (event, appended) in events.into_iter().zip(out) {
                    let fields = rules.describe(&event);
                    let names: std::collections::BTreeSet<_> =
                        fields.iter().map(|(n, _)| *n).collect();
                    assert!(
                        !fields.is_empty() && names.len() == fields.len(),
                        "{}: {} describes its payload with named, unique fields: {fields:?}",
                        step.what,
                        event.kind.name
                    );
                    kinds_seen.insert(event.kind.name);
                    if !appended.duplicate {
                        accepted.push(event);
                    }
                }
            }
            (Expect::Refused(reason), Err(refusal)) => {
                assert_eq!(
                    prechecked.as_ref().err(),
                    Some(&refusal),
                    "{}: the pre-check disagrees",
                    step.what
                );
                assert_eq!(
                    refusal.reason(),
                    *reason,
                    "{}: refused for another reason: {refusal}",
                    step.what
                );
                assert_eq!(
                    before,
                    fingerprint(&live),
                    "{}: a refusal changed the state",
                    step.what
                );
                assert_eq!(
                    twin_outcome.as_ref().err(),
                    Some(&refusal),
                    "{}: refused differently the second time",
                    step.what
                );
            }
            (expect, Ok(_)) => panic!("{}: expected {expect:?}, was accepted", step.what),
            (expect, Err(r)) => panic!("{}: expected {expect:?}, refused: {r}", step.what),
        }
        assert_eq!(
            fingerprint(&live),
            fingerprint(&twin),
            "{}: two projections fed the same events disagree",
            step.what
        );
        twin = restored(&twin, &step.what);
    }
    let mut replayed = Projection::new(rules);
    let unbounded = EventLimits::unbounded();
    for (i, event) in accepted.iter().enumerate() {
        replayed
            .apply_batch_over(
                std::slice::from_ref(event),
                &unbounded,
                tree_of(&accepted[..i]).as_ref(),
            )
            .unwrap_or_else(|r| panic!("{event:?} does not replay: {r}"));
    }
    assert_eq!(
        fingerprint(&replayed),
        fingerprint(&live),
        "replay one by one differs from live apply"
    );
    kinds_seen
}

/// A party's projection under a capability's rules tests: each batch is
/// accepted, or refused with the reason expected and nothing changed, and
/// recorded as a step for the conformance suite.
pub struct Scenario {
    pub proj: Projection,
    pub steps: Vec<Step>,
}

impl Scenario {
    /// A fresh party `name` of `role`, its genesis signed by `root` and
    /// activating `rules` with default limits, at `time_ms`.
    pub fn genesis(
        rules: Arc<Rules>,
        root: &crate::keys::SigningKey,
        name: &str,
        role: crate::roles::Role,
        time_ms: i64,
    ) -> Self {
        let body = crate::envelope::EventBody {
            schema_version: crate::envelope::SCHEMA_VERSION,
            subject: crate::envelope::SubjectRef::new(crate::envelope::PARTY, name),
            sequence: 0,
            previous: None,
            author: root.key_id(),
            time_ms,
            payload: crate::capability::payload_bytes(&crate::authority::PartyPayload::Genesis {
                party_name: name.into(),
                role,
                root_key: root.public_key(),
                rules: crate::limits::ActiveRules {
                    limits: EventLimits::default(),
                    capabilities: rules.versions(),
                },
            }),
        };
        let mut s = Scenario {
            proj: Projection::new(rules),
            steps: Vec::new(),
        };
        let genesis = s.event(&body, &[root]);
        s.accept("genesis", vec![genesis]);
        s
    }

    /// `body` signed by `keys` and parsed under the scenario's rules.
    pub fn event(
        &self,
        body: &crate::envelope::EventBody,
        keys: &[&crate::keys::SigningKey],
    ) -> Event {
        self.proj
            .rules()
            .parse(crate::envelope::sign(body, keys), &EventLimits::default())
            .expect("test event parses")
    }

    pub fn accept(&mut self, what: &str, batch: Vec<Event>) {
        self.accept_over(what, batch, &NoTree)
    }

    /// Accepted, decided over `tree` (the log's tree before the batch).
    pub fn accept_over(&mut self, what: &str, batch: Vec<Event>, tree: &dyn LogTree) {
        self.proj
            .apply_batch_over(&batch, &EventLimits::default(), tree)
            .unwrap_or_else(|r| panic!("{what}: {r}"));
        self.steps.push(Step::accepted(
            what,
            batch.into_iter().map(|e| e.envelope).collect(),
        ));
    }

    pub fn refuse(&mut self, what: &str, batch: Vec<Event>, reason: &'static str) {
        self.refuse_over(what, batch, reason, &NoTree)
    }

    /// Refused with `reason`, decided over `tree`, and nothing changed.
    pub fn refuse_over(
        &mut self,
        what: &str,
        batch: Vec<Event>,
        reason: &'static str,
        tree: &dyn LogTree,
    ) {
        let before = fingerprint(&self.proj);
        let refusal = self
            .proj
            .apply_batch_over(&batch, &EventLimits::default(), tree)
            .expect_err(what);
        assert_eq!(refusal.reason(), reason, "{what}: {refusal}");
        assert_eq!(fingerprint(&self.proj), before, "{what}: state changed");
        self.steps.push(Step::refused(
            what,
            batch.into_iter().map(|e| e.envelope).collect(),
            reason,
        ));
    }
}

/// The body of an event opening `subject` (sequence 0) by `author` at `time_ms`.
pub fn opening_body(
    subject: crate::envelope::SubjectRef,
    author: crate::keys::KeyId,
    time_ms: i64,
    payload: impl crate::capability::Payload,
) -> crate::envelope::EventBody {
    crate::envelope::EventBody {
        schema_version: crate::envelope::SCHEMA_VERSION,
        subject,
        sequence: 0,
        previous: None,
        author,
        time_ms,
        payload: crate::capability::payload_bytes(&payload),
    }
}
