//! Federation: parties exchange records by pulling from each other's logs
//! what their policy descriptors allow, and prove the copy complete.
//!
//! A source's log is totally ordered by its own Raft, and its transparency
//! log's leaf i is its event i + 1. A puller asks for the events after its
//! cursor; the source sends, in log order, each event the puller's party may
//! read (with the event's leaf salt) and, for each run of events it may not,
//! the hashes of the run's maximal aligned subtrees; then a checkpoint it
//! signed. The puller folds leaves and subtrees into the frontier it kept at
//! its cursor and requires the signed root: so nothing was left out,
//! reordered or substituted, while a hidden event shows only a salted hash.
//!
//! - `source.rs` — what a source sends: visible events and hidden runs, from
//!   its stored events and its tree (sans-IO: the host supplies both).
//! - `verify.rs` — what a puller checks (sans-IO): the messages extend its
//!   frontier to the checkpoint's root.
//! - `mirror.rs` — other parties' records kept in their namespaces: a
//!   kernel projection per party, checked by the same rules, admitted by the
//!   policy in force; imports about this party's own subjects decided in its
//!   own projection.
//! - `capability.rs` — the cursor in each peer's log as replicated state
//!   (`federation-synced`: a checkpoint signed by the peer's bound log key
//!   and the frontier reaching its root, never backwards).
//! - `freshness.rs` — how old the last proven contact with the peers a
//!   namespace comes from is; past the policy's staleness, "unknown".
//! - `tag.rs` — how an imported event is stored: the party whose namespace
//!   it belongs to, the peer it came from and its position there, before the
//!   original envelope, bytes unchanged.

pub mod capability;
pub mod freshness;
pub mod mirror;
pub mod source;
pub mod tag;
pub mod verify;

pub use capability::{
    FEDERATION_PEER, Federation, PeerCursor, SYNC_KINDS, SyncRefusal, SyncedPayload, cursor_subject,
};
pub use freshness::{Freshness, freshness};
pub use mirror::{ImportRefusal, Mirror, MirrorChanges, MirrorStage, Mirrors};
pub use source::{Message, Run, SourceEvent, filtered};
pub use tag::{ImportTag, TagError};
pub use verify::{Verified, Verifier, VerifyError};
