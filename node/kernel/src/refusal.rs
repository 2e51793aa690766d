//! Why an event is refused. Each variant names the rule it breaks; its
//! `reason()` is the machine-readable name clients branch on (the edge puts
//! it in `google.rpc.ErrorInfo.reason`), its class picks the gRPC code.
//! Capabilities refuse with their own rules through [`Refusal::Rule`].

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    #[error("schema version {0} is not supported by this node's rules")]
    UnsupportedSchema(u32),
    #[error("payload kind {0:?} is unknown to this node's rules")]
    UnknownPayload(String),
    #[error("event carries no signature")]
    MissingSignature,
    #[error("event carries {count} signatures, over the limit of {limit}")]
    TooManySignatures { count: usize, limit: usize },
    #[error("event is not signed by its author key {0}")]
    MissingAuthorSignature(String),
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
    #[error("a {role} party may not author {kind} events")]
    RoleMayNotAuthor { role: String, kind: String },
    #[error("party {party} has no grant to attach {kind} records to {subject}")]
    NoGrant {
        party: String,
        subject: String,
        kind: String,
    },
    #[error("only the party's root key signs {kind} events")]
    RootOnly { kind: String },
    #[error(
        "capability {capability} is not active in this party's rules (a rules-changed event activates it)"
    )]
    InactiveCapability { capability: String },
    #[error("author key {0} is already revoked")]
    AlreadyRevoked(String),
    #[error("key {key} already identifies {subject}")]
    KeyTaken { key: String, subject: String },
    #[error("{name} is already claimed by {subject}")]
    NameTaken { name: String, subject: String },
    #[error("subject {subject} has {count} records, the limit")]
    TooManyRecords { subject: String, count: u64 },
    #[error("field {field}: {reason}")]
    InvalidField { field: String, reason: String },
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
    /// A capability's own rule: `reason` is its machine-readable name.
    #[error("{message}")]
    Rule {
        reason: String,
        class: RefusalClass,
        message: String,
    },
}

impl Refusal {
    pub fn class(&self) -> RefusalClass {
        use Refusal::*;
        match self {
            Malformed(_)
            | UnsupportedSchema(_)
            | UnknownPayload(_)
            | MissingSignature
            | InvalidField { .. }
            | InvalidSubject { .. }
            | EmptyBatch
            | GenesisNotSelfSigned
            | ClockSkew { .. } => RefusalClass::InvalidArgument,
            BadSignature(_) | MissingAuthorSignature(_) => RefusalClass::Unauthenticated,
            UnknownKey(_)
            | AuthorRevoked(_)
            | AuthorExpired { .. }
            | AuthorNotYetValid { .. }
            | AuthorNotAllowed { .. }
            | RoleMayNotAuthor { .. }
            | RootOnly { .. }
            | NoGrant { .. } => RefusalClass::PermissionDenied,
            ChainConflict { .. } => RefusalClass::Conflict,
            UnknownSubject(_)
            | AlreadyRevoked(_)
            | NoGenesis
            | GenesisExists
            | InactiveCapability { .. } => RefusalClass::FailedPrecondition,
            KeyTaken { .. } | NameTaken { .. } => RefusalClass::AlreadyExists,
            BodyTooLarge { .. }
            | TooManySignatures { .. }
            | TooManyRecords { .. }
            | BatchTooLarge { .. } => RefusalClass::ResourceExhausted,
            Rule { class, .. } => *class,
        }
    }

    /// The machine-readable name of the rule: stable across releases, what
    /// clients and federation peers branch on (never the message text).
    pub fn reason(&self) -> &str {
        use Refusal::*;
        match self {
            Malformed(_) => "MALFORMED",
            BodyTooLarge { .. } => "BODY_TOO_LARGE",
            UnsupportedSchema(_) => "UNSUPPORTED_SCHEMA",
            UnknownPayload(_) => "UNKNOWN_PAYLOAD",
            MissingSignature => "MISSING_SIGNATURE",
            TooManySignatures { .. } => "TOO_MANY_SIGNATURES",
            MissingAuthorSignature(_) => "MISSING_AUTHOR_SIGNATURE",
            BadSignature(_) => "BAD_SIGNATURE",
            UnknownKey(_) => "UNKNOWN_KEY",
            AuthorRevoked(_) => "AUTHOR_REVOKED",
            AuthorExpired { .. } => "AUTHOR_EXPIRED",
            AuthorNotYetValid { .. } => "AUTHOR_NOT_YET_VALID",
            AuthorNotAllowed { .. } => "AUTHOR_NOT_ALLOWED",
            GenesisExists => "GENESIS_EXISTS",
            NoGenesis => "NO_GENESIS",
            GenesisNotSelfSigned => "GENESIS_NOT_SELF_SIGNED",
            ChainConflict { .. } => "CHAIN_CONFLICT",
            UnknownSubject(_) => "UNKNOWN_SUBJECT",
            InvalidSubject { .. } => "INVALID_SUBJECT",
            RoleMayNotAuthor { .. } => "ROLE_MAY_NOT_AUTHOR",
            NoGrant { .. } => "NO_GRANT",
            AlreadyRevoked(_) => "ALREADY_REVOKED",
            RootOnly { .. } => "ROOT_ONLY",
            InactiveCapability { .. } => "INACTIVE_CAPABILITY",
            KeyTaken { .. } => "KEY_TAKEN",
            NameTaken { .. } => "NAME_TAKEN",
            TooManyRecords { .. } => "TOO_MANY_RECORDS",
            InvalidField { .. } => "INVALID_FIELD",
            BatchTooLarge { .. } => "BATCH_TOO_LARGE",
            EmptyBatch => "EMPTY_BATCH",
            ClockSkew { .. } => "CLOCK_SKEW",
            Rule { reason, .. } => reason,
        }
    }

    /// A refusal naming the field at fault.
    pub fn field(field: &str, reason: impl Into<String>) -> Refusal {
        Refusal::InvalidField {
            field: field.to_string(),
            reason: reason.into(),
        }
    }
}
