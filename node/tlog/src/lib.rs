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
//!
//! `capability.rs` and `payload.rs` are the log as a capability of the
//! kernel: the party's log key, bound by its root key, and the checkpoints
//! it signs, each committed through the log and checked against the tree.

pub mod capability;
pub mod merkle;
pub mod note;
pub mod payload;
pub mod tiled;
pub mod tiles;
pub mod witness;

pub use capability::{
    CheckpointState, Cosignature, LogKey, MAX_COSIGNATURES, PeerLog, Tlog, TlogIndex, TlogRefusal,
    TlogState, checkpoint_subject, committed_checkpoint, current_key, key_of, log_origin,
    party_of_log, party_of_witness, peer_log, peer_subject, witness_name,
};
pub use merkle::{Frontier, Hash, NodeHashes, ProofError, SizeError, TreeError};
pub use payload::TlogPayload;

/// Subject kinds: the log key (`tlog-key/<key id hex>`), a checkpoint
/// (`tlog-checkpoint/<size, 20 digits>`) and a peer party's log this party
/// witnesses and takes cosignatures from (`tlog-peer/<party>`).
pub const TLOG_KEY: &str = "tlog-key";
pub const TLOG_CHECKPOINT: &str = "tlog-checkpoint";
pub const TLOG_PEER: &str = "tlog-peer";

use sha2::{Digest, Sha256};

/// Bytes of the random salt each leaf carries, drawn by the leader and
/// replicated with the event.
pub const SALT_BYTES: usize = 16;
/// Bytes of a leaf's entry.
pub const LEAF_ENTRY_BYTES: usize = SALT_BYTES + 32;

/// The entry of the leaf of an event: its salt, then SHA-256 of its
/// envelope bytes as stored. The salt keeps a leaf hash from confirming a
/// guessed event to whoever may not see it; the digest keeps entries small
/// and fixed (an envelope may exceed an entry bundle's 64 KiB) and checkable
/// with any SHA-256.
pub fn leaf_entry(salt: &[u8; SALT_BYTES], envelope: &[u8]) -> [u8; LEAF_ENTRY_BYTES] {
    let mut entry = [0u8; LEAF_ENTRY_BYTES];
    entry[..SALT_BYTES].copy_from_slice(salt);
    entry[SALT_BYTES..].copy_from_slice(&Sha256::digest(envelope));
    entry
}

/// The leaf hash of an event: RFC 6962's hash of its `leaf_entry`.
pub fn event_leaf_hash(salt: &[u8; SALT_BYTES], envelope: &[u8]) -> Hash {
    merkle::leaf_hash(&leaf_entry(salt, envelope))
}
