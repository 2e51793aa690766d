//! Why an event is refused. Each variant names the rule it breaks; the edge
//! maps the class to a gRPC status code.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusalClass {
    /// The bytes are not a well-formed event of a known schema.
    InvalidArgument,
    /// A signature does not verify.
    Unauthenticated,
    /// The signer may not author this event.
    PermissionDenied,
    /// Another write got there first (chain position taken).
    Conflict,
    /// The subject's state does not allow the event.
    FailedPrecondition,
    /// A unique name is already taken.
    AlreadyExists,
    /// A size or count limit.
    ResourceExhausted,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum Refusal {
    #[error("event is not decodable: {0}")]
    Malformed(String),
    #[error("event body is {size} bytes, over the limit of {limit} bytes")]
    BodyTooLarge { size: usize, limit: usize },
    #[error("schema version {0} is not supported (this node reads version 1)")]
    UnsupportedSchema(u32),
    #[error("payload kind is unknown or missing")]
    UnknownPayload,
    #[error("event carries no signature")]
    MissingSignature,
    #[error("event carries {count} signatures, over the limit of {limit}")]
    TooManySignatures { count: usize, limit: usize },
    #[error("event is not signed by its author key {0}")]
    MissingAuthorSignature(String),
    #[error("key rotation must also be signed by the new key {0} (proof of possession)")]
    MissingNewKeySignature(String),
    #[error("signature by key {0} does not verify")]
    BadSignature(String),
    #[error("signing key {0} is not a key of this party")]
    UnknownKey(String),
    #[error("author key {0} is revoked")]
    AuthorRevoked(String),
    #[error("author key {key} expired at {not_after_ms} ms, event time is {time_ms} ms")]
    AuthorExpired {
        key: String,
        not_after_ms: i64,
        time_ms: i64,
    },
    #[error(
        "author key {key} was registered at {registered_ms} ms, after the event time {time_ms} ms"
    )]
    AuthorNotYetValid {
        key: String,
        registered_ms: i64,
        time_ms: i64,
    },
    #[error("author key {key} may not sign {kind} events")]
    AuthorNotAllowed { key: String, kind: String },
    #[error("the party already has its genesis event")]
    GenesisExists,
    #[error("the party has no genesis event yet")]
    NoGenesis,
    #[error("genesis must be signed by the root key it names")]
    GenesisNotSelfSigned,
    #[error(
        "subject {subject}: expected sequence {expected_sequence} after event {expected_previous}, got sequence {sequence} after {previous}"
    )]
    ChainConflict {
        subject: String,
        expected_sequence: u64,
        expected_previous: String,
        sequence: u64,
        previous: String,
    },
    #[error("subject {0} does not exist")]
    UnknownSubject(String),
    #[error("subject {subject}: {reason}")]
    InvalidSubject { subject: String, reason: String },
    #[error("{subject}: status {from} may not become {to}")]
    InvalidTransition {
        subject: String,
        from: String,
        to: String,
    },
    #[error("a {role} party may not author {kind} events")]
    RoleMayNotAuthor { role: String, kind: String },
    #[error("code {name} version {version} is already registered as {subject}")]
    CodeVersionTaken {
        name: String,
        version: String,
        subject: String,
    },
    #[error("party {party} has no grant to attach {kind} records to {subject}")]
    NoGrant {
        party: String,
        subject: String,
        kind: String,
    },
    #[error("endorsement {endorsement} on {subject} cannot be withdrawn: {reason}")]
    NotWithdrawable {
        subject: String,
        endorsement: String,
        reason: String,
    },
    #[error("author key {0} is already revoked")]
    AlreadyRevoked(String),
    #[error("key {key} already identifies {subject}")]
    KeyTaken { key: String, subject: String },
    #[error("service name {name} is already registered as {subject}")]
    ServiceNameTaken { name: String, subject: String },
    #[error("serial {serial} is already registered as {subject}")]
    SerialTaken { serial: String, subject: String },
    #[error("subject {subject} has {count} records, the limit")]
    TooManyRecords { subject: String, count: u64 },
    #[error("field {field}: {reason}")]
    InvalidField { field: String, reason: String },
    #[error("OpenPGP {field}: {reason}")]
    OpenPgp { field: String, reason: String },
    #[error("batch holds {count} events, over the limit of {limit}")]
    BatchTooLarge { count: usize, limit: usize },
    #[error("batch is empty")]
    EmptyBatch,
    #[error(
        "event time {time_ms} ms is more than {skew_ms} ms away from this node's clock ({now_ms} ms)"
    )]
    ClockSkew {
        time_ms: i64,
        now_ms: i64,
        skew_ms: i64,
    },
}

impl Refusal {
    pub fn class(&self) -> RefusalClass {
        use Refusal::*;
        match self {
            Malformed(_)
            | UnsupportedSchema(_)
            | UnknownPayload
            | MissingSignature
            | InvalidField { .. }
            | OpenPgp { .. }
            | InvalidSubject { .. }
            | EmptyBatch
            | GenesisNotSelfSigned
            | ClockSkew { .. } => RefusalClass::InvalidArgument,
            BadSignature(_) | MissingAuthorSignature(_) | MissingNewKeySignature(_) => {
                RefusalClass::Unauthenticated
            }
            UnknownKey(_)
            | AuthorRevoked(_)
            | AuthorExpired { .. }
            | AuthorNotYetValid { .. }
            | AuthorNotAllowed { .. }
            | RoleMayNotAuthor { .. }
            | NoGrant { .. } => RefusalClass::PermissionDenied,
            ChainConflict { .. } => RefusalClass::Conflict,
            UnknownSubject(_)
            | InvalidTransition { .. }
            | AlreadyRevoked(_)
            | NotWithdrawable { .. }
            | NoGenesis
            | GenesisExists => RefusalClass::FailedPrecondition,
            SerialTaken { .. }
            | CodeVersionTaken { .. }
            | KeyTaken { .. }
            | ServiceNameTaken { .. } => RefusalClass::AlreadyExists,
            BodyTooLarge { .. }
            | TooManySignatures { .. }
            | TooManyRecords { .. }
            | BatchTooLarge { .. } => RefusalClass::ResourceExhausted,
        }
    }
}

/// Limits the pure core enforces. Every one has a name and a default; the
/// node's config sets them once at start.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventLimits {
    pub max_body_bytes: usize,
    pub max_signatures: usize,
    pub max_records_per_subject: u64,
    pub max_attributes: usize,
    pub max_text_bytes: usize,
    pub max_batch_events: usize,
}

impl EventLimits {
    /// An append request holds at least one event and at most `max_batch_events`.
    pub fn check_batch_len(&self, count: usize) -> Result<(), Refusal> {
        if count == 0 {
            return Err(Refusal::EmptyBatch);
        }
        if count > self.max_batch_events {
            return Err(Refusal::BatchTooLarge {
                count,
                limit: self.max_batch_events,
            });
        }
        Ok(())
    }
}

impl Default for EventLimits {
    fn default() -> Self {
        EventLimits {
            max_body_bytes: 64 * 1024,
            max_signatures: 8,
            max_records_per_subject: 1024,
            max_attributes: 64,
            max_text_bytes: 1024,
            max_batch_events: 1000,
        }
    }
}
