//! The kernel's state of a party: the party, the keys that sign for it, and
//! per subject its chain, history and grants; and the read-only `View` the
//! rules decide against (the projection, or a batch staged on top of it).

use std::any::TypeId;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::envelope::{EventId, PARTY, SubjectRef};
use crate::keys::{KeyId, PublicKey};
use crate::kind::{AnyPayload, Claim, KindSpec};
use crate::limits::ActiveRules;
use crate::refusal::Refusal;
use crate::roles::Role;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartyState {
    pub name: String,
    pub role: Role,
    pub root_key: KeyId,
    pub genesis_ms: i64,
    /// The rules the log activated; they, not node config, decide.
    pub rules: ActiveRules,
}

/// A key that may sign for a party: the root key, a registered author key,
/// or the root key of a party this one recognized.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyState {
    /// The party the key signs for: this party, or one it recognized.
    pub party: String,
    pub public_key: PublicKey,
    pub label: String,
    /// Kind names it may sign; `None` for a root key, which may sign every kind.
    pub allowed_kinds: Option<BTreeSet<String>>,
    pub registered_ms: i64,
    pub not_after_ms: Option<i64>,
    pub revoked: bool,
}

impl KeyState {
    pub(crate) fn root(party: &str, public_key: PublicKey, label: String, time_ms: i64) -> Self {
        KeyState {
            party: party.to_string(),
            public_key,
            label,
            allowed_kinds: None,
            registered_ms: time_ms,
            not_after_ms: None,
            revoked: false,
        }
    }

    pub fn may_sign(&self, kind: &str) -> bool {
        self.allowed_kinds
            .as_ref()
            .is_none_or(|kinds| kinds.contains(kind))
    }

    /// Whether the key can sign at `time_ms`: not revoked, not expired.
    pub fn live_at(&self, time_ms: i64) -> bool {
        !self.revoked && self.not_after_ms.is_none_or(|t| time_ms <= t)
    }
}

/// The kernel's own subjects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KernelSubject {
    Party,
    /// Another party this one recognizes.
    ForeignParty {
        role: Role,
        root_key: KeyId,
    },
    AuthorKey {
        key_id: KeyId,
    },
}

/// What the kernel keeps of every subject: its chain, history and grants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectEntry {
    pub next_sequence: u64,
    pub last_event: EventId,
    /// Key that signed the subject's first event.
    pub registered_by: KeyId,
    /// Log positions of the subject's events, in chain order.
    pub history: Vec<u64>,
    /// Other parties' rights to attach records, by party name: kind names.
    pub grants: BTreeMap<String, BTreeSet<String>>,
    /// Set on the kernel's own subjects.
    pub kernel: Option<KernelSubject>,
}

/// Read access to the state the rules need: the projection, or a batch
/// staged on top of it.
pub(crate) trait View {
    /// An event kind of these rules, by name.
    fn kind(&self, name: &str) -> Option<&'static KindSpec>;
    /// The names of the kinds a recognized party may be granted.
    fn grantable_kinds(&self) -> Vec<&'static str>;
    /// The slot of a capability in these rules, by its type.
    fn cap_slot_of(&self, capability: TypeId) -> Option<usize>;
    fn party(&self) -> Option<&PartyState>;
    fn key(&self, id: &KeyId) -> Option<&KeyState>;
    fn entry(&self, subject: &SubjectRef) -> Option<&SubjectEntry>;
    fn claim_owner(&self, claim: &Claim) -> Option<&SubjectRef>;
    fn event_index(&self, id: &EventId) -> Option<u64>;
    /// Position the next accepted event gets.
    fn next_index(&self) -> u64;
    fn cap_subject(&self, slot: usize, subject: &SubjectRef) -> Option<&AnyPayload>;
}

/// One key, one identity: a key claimed by a subject or signing for a party is taken.
pub(crate) fn check_key_free(view: &dyn View, key: &KeyId) -> Result<(), Refusal> {
    let taken = view.claim_owner(&Claim::key(key)).cloned().or_else(|| {
        view.key(key)
            .map(|k| SubjectRef::new(PARTY, k.party.clone()))
    });
    match taken {
        Some(subject) => Err(Refusal::KeyTaken {
            key: key.to_hex(),
            subject: subject.to_string(),
        }),
        None => Ok(()),
    }
}
