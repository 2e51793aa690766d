//! Other parties' records this party keeps, each in its party's namespace:
//! a kernel projection of that party, fed only what was imported, checked
//! by the same rules as the party's own log (its genesis, author keys,
//! chains, grants, capabilities). Its root key must be the one this party
//! recognized for it. An imported event about this party's own subjects
//! (another party's status report or endorsement, under a grant) is decided
//! in this party's own projection instead.
//!
//! Every imported event also takes its position in this party's log: the own
//! projection records it (`Staged::stage_external`), so the log's event
//! count, log hash and id index cover it; a mirror keeps the log position of
//! each of its events.
//!
//! Admission, beside the rules: the peer is named by the policy in force,
//! the policy imports that kind of that subject from that peer, and the
//! quotas hold. An event this party's own client signed for another party's
//! subject (a report under a grant that party gave; tag `via` this party)
//! needs only the rules of that namespace: no peer sent it. A mirror follows a subject's chain in order: a link the peer
//! did not share stops it there (later events of that subject are refused).

use std::collections::BTreeMap;

use ics_identity::Identity;
use ics_kernel::state::KernelSubject;
use ics_kernel::{
    Appended, Changes, Event, EventLimits, LogTree, Projection, Refusal, RefusalClass, Rules,
    Staged, SubjectRef,
};
use ics_policies::{Descriptor, Direction};

use crate::tag::ImportTag;

/// One other party's namespace.
#[derive(Clone)]
pub struct Mirror {
    pub projection: Projection,
    /// This party's log position of the mirror's event `i + 1`.
    pub positions: Vec<u64>,
}

/// Every namespace this party mirrors, by party name.
#[derive(Clone, Default)]
pub struct Mirrors {
    pub parties: BTreeMap<String, Mirror>,
}

impl Mirrors {
    pub fn get(&self, party: &str) -> Option<&Mirror> {
        self.parties.get(party)
    }

    /// Merges what a [`MirrorStage`] staged; mirrors it opened are created.
    pub fn commit(&mut self, rules: &std::sync::Arc<Rules>, changes: MirrorChanges) {
        for (party, (changes, positions)) in changes.0 {
            let mirror = self.parties.entry(party).or_insert_with(|| Mirror {
                projection: Projection::new(rules.clone()),
                positions: Vec::new(),
            });
            let before = mirror.projection.event_count();
            let added = changes.event_count() as u64;
            mirror.projection.commit(changes);
            assert_eq!(
                mirror.projection.event_count(),
                before + added,
                "a mirror holds the events staged for it"
            );
            mirror.positions.extend(positions);
            assert_eq!(
                mirror.positions.len() as u64,
                mirror.projection.event_count(),
                "a log position per mirrored event"
            );
        }
    }
}

/// What a [`MirrorStage`] staged, per namespace: the projection's changes
/// and the log positions of its new events.
#[derive(Default)]
pub struct MirrorChanges(BTreeMap<String, (Changes, Vec<u64>)>);

/// The federation's refusals of an import, beside the rules' own; each a
/// kernel `Refusal::Rule` whose reason is the variant's name in capitals.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImportRefusal {
    #[error("this party has no policy in force: it imports nothing")]
    NoPolicy,
    #[error("{0:?} is not a peer of the policy in force")]
    NotAPeer(String),
    #[error("{0:?} is not a party this one recognizes")]
    NotRecognized(String),
    #[error(
        "the records of {namespace:?} must start with its genesis by the root key this party recognized"
    )]
    WrongGenesis { namespace: String },
    #[error("import from {peer:?}: {decision}")]
    NotImported { peer: String, decision: String },
    #[error("the event is {bytes} bytes; the policy imports at most {max}")]
    EventTooLarge { bytes: usize, max: u64 },
    #[error("{subject} holds {records} records; the policy imports at most {max} per subject")]
    TooManyRecords {
        subject: String,
        records: usize,
        max: u64,
    },
}

impl ImportRefusal {
    pub fn reason(&self) -> &'static str {
        use ImportRefusal::*;
        match self {
            NoPolicy => "NO_POLICY",
            NotAPeer(_) => "NOT_A_PEER",
            NotRecognized(_) => "NOT_RECOGNIZED",
            WrongGenesis { .. } => "WRONG_GENESIS",
            NotImported { .. } => "NOT_IMPORTED_BY_POLICY",
            EventTooLarge { .. } => "EVENT_TOO_LARGE",
            TooManyRecords { .. } => "TOO_MANY_RECORDS",
        }
    }

    pub fn class(&self) -> RefusalClass {
        use ImportRefusal::*;
        match self {
            NoPolicy | NotAPeer(_) | NotRecognized(_) | NotImported { .. } => {
                RefusalClass::PermissionDenied
            }
            WrongGenesis { .. } => RefusalClass::Unauthenticated,
            EventTooLarge { .. } | TooManyRecords { .. } => RefusalClass::ResourceExhausted,
        }
    }
}

impl From<ImportRefusal> for Refusal {
    fn from(r: ImportRefusal) -> Refusal {
        Refusal::Rule {
            reason: r.reason().to_string(),
            class: r.class(),
            message: r.to_string(),
        }
    }
}

/// Imports staged over the mirrors during one apply (or one pre-check),
/// beside the own projection's `Staged`.
pub struct MirrorStage<'a> {
    mirrors: &'a Mirrors,
    /// An empty projection: what a namespace not mirrored yet is staged on.
    empty: &'a Projection,
    staged: BTreeMap<String, (Staged<'a>, Vec<u64>)>,
    for_commit: bool,
}

impl<'a> MirrorStage<'a> {
    /// `empty` is `Projection::new` of the rules the mirrors run.
    pub fn new(mirrors: &'a Mirrors, empty: &'a Projection) -> Self {
        MirrorStage {
            mirrors,
            empty,
            staged: BTreeMap::new(),
            for_commit: true,
        }
    }

    /// Stages imports only to learn their verdicts (the puller's pre-check).
    pub fn precheck(mirrors: &'a Mirrors, empty: &'a Projection) -> Self {
        MirrorStage {
            for_commit: false,
            ..Self::new(mirrors, empty)
        }
    }

    /// Decides one imported event and stages it: in its namespace's mirror
    /// (recorded in `own` at its log position), or, when it is about this
    /// party's own subjects, in `own` itself. `envelope_bytes` is the size
    /// of the envelope as signed.
    pub fn stage_import(
        &mut self,
        own: &mut Staged<'_>,
        tag: &ImportTag,
        event: &Event,
        envelope_bytes: usize,
        limits: &EventLimits,
        tree: &dyn LogTree,
    ) -> Result<Appended, Refusal> {
        let party = own
            .staged_party()
            .map(|p| p.name.clone())
            .ok_or_else(|| Refusal::Malformed("an import before the genesis".into()))?;
        let policy = ics_policies::active_staged(own).ok_or(ImportRefusal::NoPolicy)?;
        let descriptor = &policy.descriptor;
        // Authored here, for another party's records: no peer sent it.
        let local = tag.via == party;
        if local && tag.namespace == party {
            return Err(Refusal::Malformed(
                "an event of this party's own is not tagged".into(),
            ));
        }
        if !local && descriptor.peer(&tag.via).is_none() {
            return Err(ImportRefusal::NotAPeer(tag.via.clone()).into());
        }
        let max = descriptor.quotas.max_event_bytes;
        if envelope_bytes as u64 > max {
            return Err(ImportRefusal::EventTooLarge {
                bytes: envelope_bytes,
                max,
            }
            .into());
        }
        if own.event_position(&event.id).is_some() {
            // Already in the log (imported before, or the same event by
            // another way): idempotent.
            return Ok(own.stage_external(event.id));
        }
        let subject = event.body.subject.clone();
        if tag.namespace == party {
            // The policy read again on the inner state (the same one): the
            // outer borrow of `own` cannot live across its staging.
            let appended =
                own.stage_batch_checked(std::slice::from_ref(event), limits, tree, |staged| {
                    let policy =
                        ics_policies::active_staged(staged).ok_or(ImportRefusal::NoPolicy)?;
                    admit(&policy.descriptor, tag, staged, &subject, event).map_err(Refusal::from)
                })?;
            return Ok(appended[0]);
        }
        let recognized_root = match own
            .subject_entry(&SubjectRef::new(
                ics_kernel::authority::PARTY,
                &tag.namespace,
            ))
            .and_then(|e| e.kernel.as_ref())
        {
            Some(KernelSubject::ForeignParty { root_key, .. }) => *root_key,
            _ => return Err(ImportRefusal::NotRecognized(tag.namespace.clone()).into()),
        };
        let for_commit = self.for_commit;
        let (staged, positions) = match self.staged.entry(tag.namespace.clone()) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                let base = self
                    .mirrors
                    .get(&tag.namespace)
                    .map(|m| &m.projection)
                    .unwrap_or(self.empty);
                let staged = if for_commit {
                    Staged::new(base)
                } else {
                    Staged::precheck(base)
                };
                e.insert((staged, Vec::new()))
            }
        };
        let mirrored =
            staged.stage_batch_checked(std::slice::from_ref(event), limits, tree, |staged| {
                let genesis_ok = staged
                    .staged_party()
                    .is_some_and(|p| p.name == tag.namespace && p.root_key == recognized_root);
                if !genesis_ok {
                    return Err(ImportRefusal::WrongGenesis {
                        namespace: tag.namespace.clone(),
                    }
                    .into());
                }
                if local {
                    return Ok(());
                }
                admit(descriptor, tag, staged, &subject, event).map_err(Refusal::from)
            })?;
        let appended = own.stage_external(event.id);
        if !mirrored[0].duplicate {
            positions.push(appended.index);
        }
        Ok(appended)
    }

    pub fn into_changes(self) -> MirrorChanges {
        MirrorChanges(
            self.staged
                .into_iter()
                .map(|(party, (staged, positions))| (party, (staged.into_changes(), positions)))
                .collect(),
        )
    }
}

/// The policy's import verdict and the per-subject quota, on the state with
/// the event staged (so a registration's own attributes decide its domain).
fn admit(
    descriptor: &Descriptor,
    tag: &ImportTag,
    staged: &Staged<'_>,
    subject: &SubjectRef,
    event: &Event,
) -> Result<(), ImportRefusal> {
    let facts = ics_policies::facts_of(
        subject,
        &tag.namespace,
        |s| staged.read::<Identity>(s),
        |s| staged.read::<ics_ca::DeviceCa>(s),
    );
    let decision = descriptor.decide(
        Direction::Import,
        &tag.via,
        &facts,
        event.kind.name,
        event.body.time_ms,
    );
    if !decision.allowed {
        return Err(ImportRefusal::NotImported {
            peer: tag.via.clone(),
            decision: decision.to_string(),
        });
    }
    let records = staged.subject_entry(subject).map_or(0, |e| e.history.len());
    let max = descriptor.quotas.max_records_per_subject;
    if !ics_policies::is_authority(&subject.kind) && records as u64 > max {
        return Err(ImportRefusal::TooManyRecords {
            subject: subject.to_string(),
            records,
            max,
        });
    }
    Ok(())
}
