//! Event kinds as data, payloads, and the unique names subjects claim: the
//! vocabulary the kernel and every capability share.

use std::any::Any;
use std::borrow::Cow;
use std::fmt::{self, Debug};

use serde::{Deserialize, Serialize};

use crate::envelope::{KERNEL_SUBJECT_KINDS, PayloadBytes, TYPE_URL_PREFIX};
use crate::keys::{KeyId, PublicKey};
use crate::roles::Role;

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
        format!("{TYPE_URL_PREFIX}{}", self.message)
    }

    pub fn is_about(&self, subject_kind: &str) -> bool {
        match self.subjects {
            Subjects::Of(kinds) => kinds.contains(&subject_kind),
            Subjects::AnyCapabilitySubject => !KERNEL_SUBJECT_KINDS.contains(&subject_kind),
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
    /// The payload's fields as clients show them (JSON, text), so a client
    /// needs no code per kind.
    fn describe(&self) -> Vec<(&'static str, Field)>;
}

/// A payload field as a client shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Field {
    Text(String),
    Number(i64),
    Bool(bool),
    List(Vec<String>),
    /// Name/value pairs in order (attributes).
    Map(Vec<(String, String)>),
    Absent,
}

impl Field {
    /// A public key as `ALGORITHM:HEX`.
    pub fn key(key: &PublicKey) -> Field {
        Field::Text(format!(
            "{}:{}",
            key.algorithm().name(),
            hex::encode(key.bytes())
        ))
    }

    pub fn text(s: impl Into<String>) -> Field {
        Field::Text(s.into())
    }

    pub fn optional(s: Option<impl Into<String>>) -> Field {
        s.map_or(Field::Absent, |s| Field::Text(s.into()))
    }
}

/// A unique name in a space, owned by the subject that claimed it first.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Claim {
    /// Borrowed when a capability names it; owned when read from a state image.
    pub space: Cow<'static, str>,
    pub name: String,
}

/// The space of keys: a key identifies one thing.
pub const KEY_CLAIM_SPACE: &str = "key";

impl Claim {
    pub fn new(space: &'static str, name: impl Into<String>) -> Self {
        Claim {
            space: Cow::Borrowed(space),
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

/// A decoded payload of any capability (or of the kernel).
pub type AnyPayload = dyn Any + Send + Sync;

/// A payload as it goes into a body: its message name and bytes.
pub fn payload_bytes<P: Payload>(payload: &P) -> PayloadBytes {
    PayloadBytes {
        message: payload.kind().message.to_string(),
        value: payload.encode(),
    }
}
