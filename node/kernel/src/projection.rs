//! The projection of the event log. `Staged` applies the effects `decide`
//! gives to an overlay so a batch is checked as a whole; `Projection::commit`
//! merges an accepted batch. Nothing here reads a clock or does I/O.

use std::any::TypeId;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

mod image;

pub use image::{IMAGE_FORMAT, ImageError, StateImage};

pub use crate::state::{KernelSubject, KeyState, PartyState, SubjectEntry};

use crate::capability::{AnyPayload, CapState, Capability, Claim, KindSpec, LogTree, NoTree};
use crate::decide::{Decision, decide};
use crate::envelope::{EventId, SubjectRef};
use crate::keys::{KeyId, PublicKey};
use crate::limits::{ActiveRules, EventLimits};
use crate::refusal::Refusal;
use crate::rules::{ErasedState, Event, Owner, Rules, UnsupportedRules};
use crate::state::View;

/// Outcome of one event in an accepted batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appended {
    /// The event's position in the log (the first event is 1).
    pub index: u64,
    pub event_id: EventId,
    pub duplicate: bool,
}

/// Everything an accepted batch changes, ready to merge.
pub struct Changes {
    /// `next_index` of the state the batch was staged on.
    base_next: u64,
    party: Option<PartyState>,
    keys: BTreeMap<KeyId, KeyState>,
    entries: BTreeMap<SubjectRef, SubjectEntry>,
    claims: BTreeMap<Claim, SubjectRef>,
    capabilities: BTreeMap<(usize, SubjectRef), Box<AnyPayload>>,
    /// Accepted events in order, with the digest of what each changed
    /// (`None` when staged only to check, by `Staged::precheck`).
    events: Vec<(EventId, Option<[u8; 32]>)>,
}

impl Changes {
    fn new(base_next: u64) -> Self {
        Changes {
            base_next,
            party: None,
            keys: BTreeMap::new(),
            entries: BTreeMap::new(),
            claims: BTreeMap::new(),
            capabilities: BTreeMap::new(),
            events: Vec::new(),
        }
    }

    /// The rules the batch activates, if it changes them.
    pub fn activated_rules(&self) -> Option<&ActiveRules> {
        self.party.as_ref().map(|p| &p.rules)
    }

    /// Events this batch accepts (duplicates excluded).
    pub fn event_count(&self) -> usize {
        self.events.len()
    }

    fn absorb(&mut self, other: Changes) {
        assert_eq!(
            other.base_next,
            self.base_next + self.events.len() as u64,
            "an inner batch staged on another state"
        );
        if other.party.is_some() {
            self.party = other.party;
        }
        self.keys.extend(other.keys);
        self.entries.extend(other.entries);
        self.claims.extend(other.claims);
        self.capabilities.extend(other.capabilities);
        self.events.extend(other.events);
    }
}

/// A view of a base state with a batch's staged changes on top.
pub struct Staged<'a> {
    rules: &'a Rules,
    base: &'a dyn View,
    changes: Changes,
    /// Whether the changes may commit, and so need their state digests.
    for_commit: bool,
}

impl<'a> Staged<'a> {
    fn over(rules: &'a Rules, base: &'a dyn View, for_commit: bool) -> Self {
        Staged {
            rules,
            base,
            changes: Changes::new(base.next_index()),
            for_commit,
        }
    }

    /// Stages batches to commit onto `base`.
    pub fn new(base: &'a Projection) -> Self {
        Self::over(&base.rules, base, true)
    }

    /// Stages batches only to learn their verdicts (a leader's pre-check):
    /// the same decisions, without the state digests a commit needs.
    pub fn precheck(base: &'a Projection) -> Self {
        Self::over(&base.rules, base, false)
    }

    /// Decides `event` against the base plus what is staged, and stages it.
    pub fn stage(&mut self, event: &Event, limits: &EventLimits) -> Result<Appended, Refusal> {
        self.stage_over(event, limits, &NoTree)
    }

    /// [`Staged::stage`], with the log's tree as it stands before the event's batch.
    pub fn stage_over(
        &mut self,
        event: &Event,
        limits: &EventLimits,
        tree: &dyn LogTree,
    ) -> Result<Appended, Refusal> {
        match decide(self.rules, self, event, limits, tree)? {
            Decision::Duplicate(index) => Ok(Appended {
                index,
                event_id: event.id,
                duplicate: true,
            }),
            Decision::Accept(effects) => {
                let index = self.next_index();
                assert_eq!(
                    effects.entry.history.last(),
                    Some(&index),
                    "the subject's history ends at the event's position"
                );
                let digest = self.for_commit.then(|| effects.digest(self.rules));
                let c = &mut self.changes;
                if let Some(p) = effects.party {
                    c.party = Some(p);
                }
                if let Some((id, k)) = effects.key {
                    c.keys.insert(id, k);
                }
                for claim in effects.claims {
                    c.claims.insert(claim, effects.subject.clone());
                }
                if let Some((slot, state)) = effects.capability {
                    c.capabilities
                        .insert((slot, effects.subject.clone()), state);
                }
                c.entries.insert(effects.subject, effects.entry);
                c.events.push((effects.event_id, digest));
                Ok(Appended {
                    index,
                    event_id: event.id,
                    duplicate: false,
                })
            }
        }
    }

    /// Records an event another projection decided (a record of another
    /// party's namespace, kept beside this one over the same log): it takes
    /// its position in the log, its id is known, and the log hash covers it;
    /// nothing else here changes. A duplicate answers its first position.
    pub fn stage_external(&mut self, event_id: EventId) -> Appended {
        if let Some(index) = self.event_index(&event_id) {
            return Appended {
                index,
                event_id,
                duplicate: true,
            };
        }
        let index = self.next_index();
        let digest = self.for_commit.then(|| external_digest(&event_id));
        self.changes.events.push((event_id, digest));
        Appended {
            index,
            event_id,
            duplicate: false,
        }
    }

    pub fn into_changes(self) -> Changes {
        self.changes
    }

    /// A capability's state of a subject, staged changes included.
    pub fn read<C: Capability>(&self, subject: &SubjectRef) -> Option<&C::Subject> {
        let slot = self.rules.slot_of_type(TypeId::of::<C>())?;
        View::cap_subject(self, slot, subject).and_then(|s| s.downcast_ref::<C::Subject>())
    }

    /// The kernel's entry of a subject (chain, history, grants), staged changes included.
    pub fn subject_entry(&self, subject: &SubjectRef) -> Option<&SubjectEntry> {
        View::entry(self, subject)
    }

    /// The party, staged changes included.
    pub fn staged_party(&self) -> Option<&PartyState> {
        View::party(self)
    }

    /// Stages a client's batch: all of its events or, on a refusal, none.
    /// Without the log's tree: a rule that needs it refuses.
    pub fn stage_batch(
        &mut self,
        events: &[Event],
        limits: &EventLimits,
    ) -> Result<Vec<Appended>, Refusal> {
        self.stage_batch_over(events, limits, &NoTree)
    }

    /// [`Staged::stage_batch`], with the log's tree as it stands before the batch.
    pub fn stage_batch_over(
        &mut self,
        events: &[Event],
        limits: &EventLimits,
        tree: &dyn LogTree,
    ) -> Result<Vec<Appended>, Refusal> {
        self.stage_batch_checked(events, limits, tree, |_| Ok(()))
    }

    /// [`Staged::stage_batch_over`], kept only if `check` passes on the state
    /// with the batch staged (a host's admission beside the rules).
    pub fn stage_batch_checked(
        &mut self,
        events: &[Event],
        limits: &EventLimits,
        tree: &dyn LogTree,
        check: impl FnOnce(&Staged<'_>) -> Result<(), Refusal>,
    ) -> Result<Vec<Appended>, Refusal> {
        let replicated = self.party().map(|p| p.rules.limits.clone());
        replicated
            .as_ref()
            .unwrap_or(limits)
            .check_batch_len(events.len())?;
        let (out, changes) = {
            let mut inner = Staged::over(self.rules, &*self, self.for_commit);
            let mut out = Vec::with_capacity(events.len());
            for event in events {
                out.push(inner.stage_over(event, limits, tree)?);
            }
            check(&inner)?;
            (out, inner.into_changes())
        };
        self.changes.absorb(changes);
        Ok(out)
    }

    /// The log position of an event, staged or committed.
    pub fn event_position(&self, event_id: &EventId) -> Option<u64> {
        View::event_index(self, event_id)
    }
}

/// What an external event adds to the state hash: its id, marked as decided
/// elsewhere (its namespace's projection keeps its own state hash).
fn external_digest(event_id: &EventId) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(b"ics-external-event-v1\0");
    h.update(&event_id.0);
    *h.finalize().as_bytes()
}

impl View for Staged<'_> {
    fn kind(&self, name: &str) -> Option<&'static KindSpec> {
        self.rules.kind(name)
    }
    fn grantable_kinds(&self) -> Vec<&'static str> {
        self.rules.grantable_kinds()
    }
    fn cap_slot_of(&self, capability: TypeId) -> Option<usize> {
        self.rules.slot_of_type(capability)
    }
    fn party(&self) -> Option<&PartyState> {
        self.changes.party.as_ref().or_else(|| self.base.party())
    }
    fn key(&self, id: &KeyId) -> Option<&KeyState> {
        self.changes.keys.get(id).or_else(|| self.base.key(id))
    }
    fn entry(&self, subject: &SubjectRef) -> Option<&SubjectEntry> {
        self.changes
            .entries
            .get(subject)
            .or_else(|| self.base.entry(subject))
    }
    fn claim_owner(&self, claim: &Claim) -> Option<&SubjectRef> {
        self.changes
            .claims
            .get(claim)
            .or_else(|| self.base.claim_owner(claim))
    }
    fn event_index(&self, id: &EventId) -> Option<u64> {
        self.changes
            .events
            .iter()
            .position(|(e, _)| e == id)
            .map(|i| self.changes.base_next + i as u64)
            .or_else(|| self.base.event_index(id))
    }
    fn next_index(&self) -> u64 {
        self.changes.base_next + self.changes.events.len() as u64
    }
    fn cap_subject(&self, slot: usize, subject: &SubjectRef) -> Option<&AnyPayload> {
        match self.changes.capabilities.get(&(slot, subject.clone())) {
            Some(state) => Some(state.as_ref()),
            None => self.base.cap_subject(slot, subject),
        }
    }
}

/// A subject as queries show it: the kernel's entry, a summary and a status.
pub struct SubjectView<'a> {
    pub subject: &'a SubjectRef,
    pub entry: &'a SubjectEntry,
    pub summary: String,
    pub status: Option<&'static str>,
}

/// The in-memory projection of the applied event log.
pub struct Projection {
    rules: Arc<Rules>,
    party: Option<PartyState>,
    keys: BTreeMap<KeyId, KeyState>,
    subjects: BTreeMap<SubjectRef, SubjectEntry>,
    claims: BTreeMap<Claim, SubjectRef>,
    capabilities: Vec<Box<dyn ErasedState>>,
    event_ids: HashMap<EventId, u64>,
    event_count: u64,
    log_hash: [u8; 32],
    state_hash: [u8; 32],
}

impl Clone for Projection {
    fn clone(&self) -> Self {
        Projection {
            rules: self.rules.clone(),
            party: self.party.clone(),
            keys: self.keys.clone(),
            subjects: self.subjects.clone(),
            claims: self.claims.clone(),
            capabilities: self.capabilities.iter().map(|c| c.clone_box()).collect(),
            event_ids: self.event_ids.clone(),
            event_count: self.event_count,
            log_hash: self.log_hash,
            state_hash: self.state_hash,
        }
    }
}

impl std::fmt::Debug for Projection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Projection")
            .field("rules", &self.rules)
            .field("party", &self.party)
            .field("event_count", &self.event_count)
            .finish()
    }
}

impl View for Projection {
    fn kind(&self, name: &str) -> Option<&'static KindSpec> {
        self.rules.kind(name)
    }
    fn grantable_kinds(&self) -> Vec<&'static str> {
        self.rules.grantable_kinds()
    }
    fn cap_slot_of(&self, capability: TypeId) -> Option<usize> {
        self.rules.slot_of_type(capability)
    }
    fn party(&self) -> Option<&PartyState> {
        self.party.as_ref()
    }
    fn key(&self, id: &KeyId) -> Option<&KeyState> {
        self.keys.get(id)
    }
    fn entry(&self, subject: &SubjectRef) -> Option<&SubjectEntry> {
        self.subjects.get(subject)
    }
    fn claim_owner(&self, claim: &Claim) -> Option<&SubjectRef> {
        self.claims.get(claim)
    }
    fn event_index(&self, id: &EventId) -> Option<u64> {
        self.event_ids.get(id).copied()
    }
    fn next_index(&self) -> u64 {
        self.event_count + 1
    }
    fn cap_subject(&self, slot: usize, subject: &SubjectRef) -> Option<&AnyPayload> {
        self.capabilities[slot].get(subject)
    }
}

impl Projection {
    pub fn new(rules: Arc<Rules>) -> Self {
        let capabilities = (0..rules.capability_count())
            .map(|slot| rules.capability(slot).new_state())
            .collect();
        Projection {
            rules,
            party: None,
            keys: BTreeMap::new(),
            subjects: BTreeMap::new(),
            claims: BTreeMap::new(),
            capabilities,
            event_ids: HashMap::new(),
            event_count: 0,
            log_hash: [0; 32],
            state_hash: [0; 32],
        }
    }

    pub fn rules(&self) -> &Arc<Rules> {
        &self.rules
    }

    /// Parses an envelope with these rules.
    pub fn parse(
        &self,
        envelope: crate::envelope::Envelope,
        limits: &EventLimits,
    ) -> Result<Event, Refusal> {
        self.rules.parse(envelope, limits)
    }

    /// Checks a whole batch; nothing changes unless every event is accepted.
    pub fn check_batch(
        &self,
        events: &[Event],
        limits: &EventLimits,
    ) -> Result<(Vec<Appended>, Changes), Refusal> {
        self.check_batch_over(events, limits, &NoTree)
    }

    /// [`Projection::check_batch`], with the log's tree before the batch.
    pub fn check_batch_over(
        &self,
        events: &[Event],
        limits: &EventLimits,
        tree: &dyn LogTree,
    ) -> Result<(Vec<Appended>, Changes), Refusal> {
        let mut staged = Staged::new(self);
        let out = staged.stage_batch_over(events, limits, tree)?;
        Ok((out, staged.into_changes()))
    }

    /// Whether this build runs the rules an accepted batch activates. When
    /// it does not, the node must stop applying (and say why): refusing would
    /// make it diverge from the replicas that run them.
    pub fn check_supported(&self, changes: &Changes) -> Result<(), UnsupportedRules> {
        match changes.activated_rules() {
            Some(rules) => self.rules.check_supported(rules),
            None => Ok(()),
        }
    }

    /// Merges an accepted batch staged on this very state, whose rules this
    /// build runs (see [`Projection::check_supported`]).
    pub fn commit(&mut self, changes: Changes) {
        assert_eq!(
            changes.base_next,
            self.next_index(),
            "a batch staged on another state is committed"
        );
        if let Err(e) = self.check_supported(&changes) {
            panic!("{e}: the caller commits only what check_supported allowed");
        }
        if let Some(p) = changes.party {
            self.party = Some(p);
        }
        self.keys.extend(changes.keys);
        for (subject, entry) in changes.entries {
            assert_eq!(
                entry.history.len() as u64,
                entry.next_sequence,
                "{subject}: one history position per chain link"
            );
            self.subjects.insert(subject, entry);
        }
        for ((slot, subject), state) in changes.capabilities {
            assert!(
                self.subjects.contains_key(&subject),
                "a capability changed {subject}, which has no chain"
            );
            self.capabilities[slot].commit(subject, state);
        }
        for (claim, subject) in changes.claims {
            let previous = self.claims.insert(claim, subject);
            assert!(previous.is_none(), "a name was claimed twice");
        }
        for (id, digest) in changes.events {
            let digest = digest.expect("only batches staged to commit are committed");
            self.event_count += 1;
            let previous = self.event_ids.insert(id, self.event_count);
            assert!(previous.is_none(), "event {id} committed twice");
            self.log_hash = chain(&self.log_hash, &id.0);
            self.state_hash = chain(&self.state_hash, &digest);
        }
    }

    /// Checks and, if every event is accepted, commits a batch. For tests and
    /// tools: panics when the batch activates rules this build does not run.
    pub fn apply_batch(
        &mut self,
        events: &[Event],
        limits: &EventLimits,
    ) -> Result<Vec<Appended>, Refusal> {
        self.apply_batch_over(events, limits, &NoTree)
    }

    /// [`Projection::apply_batch`], with the log's tree before the batch.
    pub fn apply_batch_over(
        &mut self,
        events: &[Event],
        limits: &EventLimits,
        tree: &dyn LogTree,
    ) -> Result<Vec<Appended>, Refusal> {
        let (out, changes) = self.check_batch_over(events, limits, tree)?;
        self.commit(changes);
        Ok(out)
    }

    pub fn event_count(&self) -> u64 {
        self.event_count
    }

    /// Running hash over the ids of all accepted events, in log order.
    pub fn log_hash(&self) -> [u8; 32] {
        self.log_hash
    }

    /// Running hash over what each committed event changed (its subject's
    /// entry and capability state, keys, claims); equal on replicas that
    /// agree. Kept as events commit, so reading it costs nothing.
    pub fn state_hash(&self) -> [u8; 32] {
        self.state_hash
    }

    pub fn party(&self) -> Option<&PartyState> {
        self.party.as_ref()
    }

    /// The rules the log activated (`None` before the genesis).
    pub fn active_rules(&self) -> Option<&ActiveRules> {
        self.party.as_ref().map(|p| &p.rules)
    }

    pub fn key(&self, id: &KeyId) -> Option<&KeyState> {
        self.keys.get(id)
    }

    /// Every key that signs for this party or one it recognized, after `after`
    /// in key id order (for paging).
    pub fn keys_after(&self, after: Option<&KeyId>) -> impl Iterator<Item = (&KeyId, &KeyState)> {
        use std::ops::Bound;
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.keys.range((start, Bound::Unbounded))
    }

    /// Keys that sign for a party (this one, or one it recognized).
    pub fn keys_of<'a>(
        &'a self,
        party: &'a str,
    ) -> impl Iterator<Item = (&'a KeyId, &'a KeyState)> {
        self.keys.iter().filter(move |(_, k)| k.party == party)
    }

    pub fn entry(&self, subject: &SubjectRef) -> Option<&SubjectEntry> {
        self.subjects.get(subject)
    }

    pub fn claim_owner(&self, claim: &Claim) -> Option<&SubjectRef> {
        self.claims.get(claim)
    }

    pub fn event_index(&self, id: &EventId) -> Option<u64> {
        self.event_ids.get(id).copied()
    }

    /// A capability's state. Panics if the rules lack `C`: which capabilities
    /// a node runs is decided at build time.
    pub fn capability<C: Capability>(&self) -> &CapState<C> {
        let slot = self
            .rules
            .slot_of::<C>()
            .unwrap_or_else(|| panic!("capability {} is not in the rules", C::NAME));
        self.capabilities[slot]
            .as_any()
            .downcast_ref::<CapState<C>>()
            .expect("a slot holds its capability's state")
    }

    /// Subjects of one kind after `after`, in subject order (for paging).
    pub fn subjects_of_kind<'a>(
        &'a self,
        kind: &'a str,
        after: Option<&SubjectRef>,
    ) -> impl Iterator<Item = SubjectView<'a>> + 'a {
        use std::ops::Bound;
        let start = match after {
            Some(s) if s.kind.as_str() >= kind => Bound::Excluded(s.clone()),
            _ => Bound::Included(SubjectRef::new(kind, "")),
        };
        self.subjects
            .range((start, Bound::Unbounded))
            .take_while(move |(s, _)| s.kind == kind)
            .filter_map(|(s, _)| self.describe(s))
    }

    /// A subject with its summary and status, from whoever keeps it.
    pub fn describe<'a>(&'a self, subject: &SubjectRef) -> Option<SubjectView<'a>> {
        let (subject, entry) = self.subjects.get_key_value(subject)?;
        let (summary, status) = match (&entry.kernel, self.rules.subject_owner(&subject.kind)) {
            (Some(k), _) => (kernel_summary(k), None),
            (None, Some(Owner::Capability(slot))) => {
                let cap = self.rules.capability(slot);
                match self.capabilities[slot].get(subject) {
                    Some(state) => (cap.summary(state), cap.status(state)),
                    None => (String::new(), None),
                }
            }
            (None, _) => (String::new(), None),
        };
        Some(SubjectView {
            subject,
            entry,
            summary,
            status,
        })
    }
}

/// The log hash after one more event: blake3 of the previous log hash and
/// the event's id. A log hash commits to every event id before it, in order.
pub fn next_log_hash(previous: &[u8; 32], event_id: &[u8; 32]) -> [u8; 32] {
    chain(previous, event_id)
}

fn chain(previous: &[u8; 32], next: &[u8; 32]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(previous);
    h.update(next);
    *h.finalize().as_bytes()
}

fn kernel_summary(k: &KernelSubject) -> String {
    match k {
        KernelSubject::Party => "party".to_string(),
        KernelSubject::ForeignParty { role, root_key } => {
            format!("recognized {role} party, root key {root_key}")
        }
        KernelSubject::AuthorKey { key_id } => format!("author key {key_id}"),
    }
}

/// The signatures of `event` made by keys `state` holds, each with its key:
/// what a host verifies ahead of the decision, where requests are handled
/// in parallel, so the decision (on the leader's single writer) finds them
/// verified (see `PublicKey::verify_event`). Decides nothing.
pub fn known_signatures(state: &Projection, event: &Event) -> Vec<(PublicKey, Vec<u8>)> {
    event
        .envelope
        .signatures
        .iter()
        .filter_map(|sig| {
            let key = &state.key(&sig.key_id)?.public_key;
            (key.algorithm() == sig.algorithm).then(|| (key.clone(), sig.bytes.clone()))
        })
        .collect()
}
