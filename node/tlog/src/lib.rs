//! The transparency log: every committed event of a party is a leaf of an
//! RFC 6962/9162 Merkle tree, so anyone holding a small signed statement of
//! the tree (a checkpoint) can check that an event is in the log (inclusion)
//! and that the log only grew (consistency).
//!
//! `merkle.rs` is the tree's arithmetic — hashing, the frontier kept while
//! appending, proofs and their verification — pure, over any store of
//! finished subtree hashes; `tiles.rs` names those hashes the way C2SP
//! tlog-tiles serves them; `note.rs` writes and checks checkpoints as C2SP
//! signed notes, and witnesses' cosignatures on them; `witness.rs` is a
//! witness's verdict on a tlog-witness `add-checkpoint` request.

pub mod merkle;
pub mod note;
pub mod tiles;
pub mod witness;

pub use merkle::{Frontier, Hash, NodeHashes, ProofError, SizeError, TreeError};
