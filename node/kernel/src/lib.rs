//! The pure kernel of an ICS: keys and signatures, signed envelopes and
//! event ids, authority (the party, its author keys, recognized parties,
//! grants, roles), the per-subject hash chain, record caps, the batch overlay
//! and the projection with its hashes. It knows no identity kind: every
//! other kind belongs to a capability behind [`capability::Capability`].
//!
//! This crate must not depend, even transitively, on tokio, tonic, prost,
//! sled, openraft, axum or sequoia-openpgp: no I/O, no clock, no generated
//! code. A node test (`t10_layers`) checks it with `cargo tree`.

pub mod authority;
pub mod capability;
mod decide;
pub mod envelope;
pub mod event;
pub mod keys;
pub mod kind;
pub mod limits;
pub mod projection;
pub mod refusal;
pub mod roles;
pub mod rules;
pub mod state;
pub mod wire;

#[cfg(feature = "testing")]
pub mod testing;

pub use capability::{
    Accepted, CapState, Capability, Claim, Ctx, KindSpec, LogTree, NoTree, Payload, Subjects,
};
pub use envelope::{
    Envelope, EventBody, EventId, PayloadBytes, SCHEMA_VERSION, Signature, SubjectRef,
};
pub use keys::{Algorithm, KeyId, PublicKey, SigningKey};
pub use limits::{ActiveRules, EventLimits};
pub use projection::{
    Appended, Changes, ImageError, Projection, Staged, StateImage, known_signatures,
};
pub use refusal::{Refusal, RefusalClass};
pub use roles::Role;
pub use rules::{Event, Rules, UnsupportedRules};
