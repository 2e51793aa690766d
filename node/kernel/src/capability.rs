//! The kernel's one extension point: a capability owns event kinds (as data),
//! their payloads and wire form, a pure `decide` that runs after the kernel's
//! checks, the state of the subjects it keeps and its indexes.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt::{self, Debug};
use std::ops::Bound;

use crate::envelope::{EventBody, SubjectRef};
use crate::keys::{KeyId, PublicKey};
use crate::limits::EventLimits;
use crate::projection::{KeyState, PartyState, View};
use crate::refusal::Refusal;
use crate::roles::Role;
use crate::rules::Event;

/// The subjects events of a kind may be about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subjects {
    /// Subjects of these kinds.
    Of(&'static [&'static str]),
    /// Any subject a capability keeps (records the kernel attaches to them).
    AnyCapabilitySubject,
}

/// One event kind, as data: the kernel derives the subject check, the role
/// table and the grantable set from these.
#[derive(Debug, PartialEq, Eq)]
pub struct KindSpec {
    /// The name authors, grants and refusals use, e.g. `device-registered`.
    pub name: &'static str,
    /// Full name of the payload's protobuf message: the type URL names it.
    pub message: &'static str,
    pub subjects: Subjects,
    /// Opens a subject's history (sequence 0 only); every other kind follows one.
    pub opens_subject: bool,
    /// Roles whose own keys may author it.
    pub authored_by: &'static [Role],
    /// A recognized party may attach it to a subject when its registrant grants it.
    pub grantable: bool,
}

impl KindSpec {
    pub fn type_url(&self) -> String {
        format!("{}{}", crate::envelope::TYPE_URL_PREFIX, self.message)
    }

    pub fn is_about(&self, subject_kind: &str) -> bool {
        match self.subjects {
            Subjects::Of(kinds) => kinds.contains(&subject_kind),
            Subjects::AnyCapabilitySubject => {
                !crate::authority::SUBJECT_KINDS.contains(&subject_kind)
            }
        }
    }
}

/// A capability's payloads: one enum, past-tense variants.
pub trait Payload: Clone + Debug + Send + Sync + 'static {
    fn kind(&self) -> &'static KindSpec;
    /// The message bytes. Authors only: nodes never re-encode.
    fn encode(&self) -> Vec<u8>;
    /// Keys the event brings in that may sign it beside the party's keys
    /// (a rotated-in key proving possession).
    fn introduced_keys(&self) -> Vec<&PublicKey> {
        Vec::new()
    }
}

/// A unique name in a space, owned by the subject that claimed it first.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Claim {
    pub space: &'static str,
    pub name: String,
}

/// The space of keys: a key identifies one thing.
pub const KEY_CLAIM_SPACE: &str = "key";

impl Claim {
    pub fn new(space: &'static str, name: impl Into<String>) -> Self {
        Claim {
            space,
            name: name.into(),
        }
    }

    pub fn key(id: &KeyId) -> Self {
        Claim::new(KEY_CLAIM_SPACE, id.to_hex())
    }
}

impl fmt::Display for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.space, self.name)
    }
}

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
    type Payload: Payload;
    /// The state of one subject it keeps.
    type Subject: Clone + Debug + PartialEq + Send + Sync + 'static;
    /// Its secondary indexes, for queries.
    type Index: Default + Clone + Debug + Send + Sync + 'static;

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

/// What `decide` may see: the event, its author, the replicated limits, and
/// read-only views of the kernel's state and of other capabilities.
pub struct Ctx<'a> {
    pub event: &'a Event,
    /// The position the event gets in the log (the first event is 1).
    pub position: u64,
    pub limits: &'a EventLimits,
    /// The author key's state (the kernel checked it may sign this).
    pub author: &'a KeyState,
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

    pub fn key(&self, id: &KeyId) -> Option<&'a KeyState> {
        self.view.key(id)
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
        crate::authority::check_key_free(self.view, key)
    }

    /// Another capability's (or this one's) state of a subject.
    pub fn read<C: Capability>(&self, subject: &SubjectRef) -> Option<&'a C::Subject> {
        let slot = self.view.rules().slot_of::<C>()?;
        self.view
            .cap_subject(slot, subject)
            .and_then(|s| s.downcast_ref::<C::Subject>())
    }
}

/// A capability's committed state: its subjects and indexes.
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

/// A decoded payload of any capability (or of the kernel).
pub(crate) type AnyPayload = dyn Any + Send + Sync;

/// A payload as it goes into a body: its message name and bytes.
pub fn payload_bytes<P: Payload>(payload: &P) -> crate::envelope::PayloadBytes {
    crate::envelope::PayloadBytes {
        message: payload.kind().message.to_string(),
        value: payload.encode(),
    }
}
