//! The ICS node: a signed event log replicated with openraft, stored in sled,
//! served over gRPC. `domain` is the pure core; everything else is the edge.

pub mod codec;
pub mod domain;
pub mod raft_types;
pub mod store;
