//! The ICS node: a signed event log replicated with openraft, stored in sled,
//! served over gRPC. `domain` is the pure core; everything else is the edge.

pub mod api;
pub mod client;
pub mod codec;
pub mod config;
pub mod domain;
pub mod hkp;
pub mod keyfile;
pub mod metrics;
pub mod network;
pub mod raft_types;
pub mod server;
pub mod store;
