//! The kernel's one extension point: a capability owns event kinds (as data),
//! their payloads and wire form, a pure `decide` that runs after the kernel's
//! checks, the state of the subjects it keeps and its indexes.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::Bound;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use crate::kind::{
    AnyPayload, Claim, Field, KEY_CLAIM_SPACE, KindSpec, Payload, Subjects, payload_bytes,
};

use crate::envelope::{EventBody, SubjectRef};
use crate::event::Event;
use crate::keys::KeyId;
use crate::limits::EventLimits;
use crate::refusal::Refusal;
use crate::state::{KeyState, PartyState, View};

/// What `decide` accepted: the subject's next state and the names it claims.
#[derive(Clone, Debug, PartialEq)]
pub struct Accepted<S> {
    pub subject: S,
    pub claims: Vec<Claim>,
}

/// The replicated rules of one capability. Pure: no I/O, no clock, no node config.
pub trait Capability: Send + Sync + 'static {
    /// Its name in the rules version, e.g. `identity`.
    const NAME: &'static str;
    /// Bumped whenever a verdict could change: part of the rules version.
    const VERSION: u32;
    /// The encoding of `Subject` and `Index` in state images (snapshots).
    /// Bump it when either changes shape: an image of another format is not
    /// restored, and the node replays the events instead.
    const STATE_FORMAT: u32 = 1;
    type Payload: Payload;
    /// The state of one subject it keeps.
    type Subject: Clone + Debug + PartialEq + Serialize + DeserializeOwned + Send + Sync + 'static;
    /// Its secondary indexes, for queries. Kept in state images as they are:
    /// an index may remember what the subjects no longer show (a rotated-out key).
    type Index: Default
        + Clone
        + Debug
        + PartialEq
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static;

    /// The subject kinds it owns.
    fn subject_kinds() -> &'static [&'static str];
    fn kinds() -> &'static [&'static KindSpec];
    /// Parses a payload of one of its kinds (parse, don't validate).
    fn decode(kind: &'static KindSpec, bytes: &[u8]) -> Result<Self::Payload, Refusal>;
    /// Runs after the kernel checked size, schema, signatures, author rights,
    /// the subject's chain and the record cap. Returns the subject's next state.
    fn decide(
        ctx: &Ctx<'_>,
        current: Option<&Self::Subject>,
        payload: &Self::Payload,
    ) -> Result<Accepted<Self::Subject>, Refusal>;
    /// Keeps the indexes in step with an accepted change. Infallible.
    fn index(
        index: &mut Self::Index,
        subject: &SubjectRef,
        before: Option<&Self::Subject>,
        after: &Self::Subject,
    );
    /// One line for people: what the subject is now.
    fn summary(subject: &Self::Subject) -> String;
    /// The subject's lifecycle status, if it has one.
    fn status(subject: &Self::Subject) -> Option<&'static str>;
}

/// The log's Merkle tree (every applied event a leaf, RFC 6962) as it stood
/// before the batch being decided: the same on every replica, since batches
/// are replicated whole. The host keeps it; the kernel only reads it.
pub trait LogTree {
    /// Leaves before the batch being decided.
    fn size(&self) -> u64;
    /// The root of the tree of the first `size` leaves, for `size <= self.size()`;
    /// `None` beyond it.
    fn root(&self, size: u64) -> Option<[u8; 32]>;
}

/// No tree: where a batch is decided without one (a client's own check, the
/// genesis); a rule that needs the tree refuses under it.
pub struct NoTree;

impl LogTree for NoTree {
    fn size(&self) -> u64 {
        0
    }
    fn root(&self, _size: u64) -> Option<[u8; 32]> {
        None
    }
}

/// What `decide` may see: the event, its author, the replicated limits, the
/// log's tree, and read-only views of the kernel's state and of other
/// capabilities.
pub struct Ctx<'a> {
    pub event: &'a Event,
    /// The position the event gets in the log (the first event is 1).
    pub position: u64,
    pub limits: &'a EventLimits,
    /// The author key's state (the kernel checked it may sign this).
    pub author: &'a KeyState,
    /// The log's tree before this event's batch.
    pub tree: &'a dyn LogTree,
    pub(crate) view: &'a dyn View,
}

impl<'a> Ctx<'a> {
    pub fn body(&self) -> &'a EventBody {
        &self.event.body
    }

    pub fn subject(&self) -> &'a SubjectRef {
        &self.event.body.subject
    }

    pub fn time_ms(&self) -> i64 {
        self.event.body.time_ms
    }

    /// This party (capability events come after the genesis).
    pub fn party(&self) -> &'a PartyState {
        self.view
            .party()
            .expect("the kernel refuses capability events before the genesis")
    }

    /// An event kind of the rules in force, by name.
    pub fn kind(&self, name: &str) -> Option<&'static KindSpec> {
        self.view.kind(name)
    }

    pub fn key(&self, id: &KeyId) -> Option<&'a KeyState> {
        self.view.key(id)
    }

    /// Whether `party` is another party this one recognizes.
    pub fn recognizes(&self, party: &str) -> bool {
        self.view
            .entry(&SubjectRef::new(crate::authority::PARTY, party.to_string()))
            .is_some_and(|e| {
                matches!(
                    e.kernel,
                    Some(crate::state::KernelSubject::ForeignParty { .. })
                )
            })
    }

    pub fn claim_owner(&self, claim: &Claim) -> Option<&'a SubjectRef> {
        self.view.claim_owner(claim)
    }

    /// Whether the envelope carries a (verified) signature by `key`.
    pub fn signed_by(&self, key: &KeyId) -> bool {
        self.event
            .envelope
            .signatures
            .iter()
            .any(|s| s.key_id == *key)
    }

    /// Refuses a key that already identifies a subject or signs for a party:
    /// one key, one identity.
    pub fn check_key_free(&self, key: &KeyId) -> Result<(), Refusal> {
        crate::state::check_key_free(self.view, key)
    }

    /// Another capability's (or this one's) state of a subject.
    pub fn read<C: Capability>(&self, subject: &SubjectRef) -> Option<&'a C::Subject> {
        let slot = self.view.cap_slot_of(std::any::TypeId::of::<C>())?;
        self.view
            .cap_subject(slot, subject)
            .and_then(|s| s.downcast_ref::<C::Subject>())
    }
}

/// A capability's committed state: its subjects and indexes.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct CapState<C: Capability> {
    subjects: BTreeMap<SubjectRef, C::Subject>,
    index: C::Index,
}

impl<C: Capability> Default for CapState<C> {
    fn default() -> Self {
        CapState {
            subjects: BTreeMap::new(),
            index: C::Index::default(),
        }
    }
}

impl<C: Capability> PartialEq for CapState<C> {
    fn eq(&self, other: &Self) -> bool {
        self.subjects == other.subjects && self.index == other.index
    }
}

impl<C: Capability> Clone for CapState<C> {
    fn clone(&self) -> Self {
        CapState {
            subjects: self.subjects.clone(),
            index: self.index.clone(),
        }
    }
}

impl<C: Capability> CapState<C> {
    pub fn subject(&self, subject: &SubjectRef) -> Option<&C::Subject> {
        self.subjects.get(subject)
    }

    pub fn subject_entry(&self, subject: &SubjectRef) -> Option<(&SubjectRef, &C::Subject)> {
        self.subjects.get_key_value(subject)
    }

    pub fn subjects(&self) -> impl Iterator<Item = (&SubjectRef, &C::Subject)> {
        self.subjects.iter()
    }

    /// Subjects after `after` in subject order (for paging).
    pub fn subjects_after(
        &self,
        after: Option<&SubjectRef>,
    ) -> impl Iterator<Item = (&SubjectRef, &C::Subject)> {
        let start = match after {
            Some(s) => Bound::Excluded(s.clone()),
            None => Bound::Unbounded,
        };
        self.subjects.range((start, Bound::Unbounded))
    }

    pub fn index(&self) -> &C::Index {
        &self.index
    }

    pub(crate) fn commit(&mut self, subject: SubjectRef, after: C::Subject) {
        C::index(
            &mut self.index,
            &subject,
            self.subjects.get(&subject),
            &after,
        );
        self.subjects.insert(subject, after);
    }
}
