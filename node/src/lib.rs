//! The ICS node: a signed event log replicated with openraft, stored in sled,
//! served over gRPC. The rules live in `ics-kernel` and the capability crates;
//! this crate is the host around them.

pub mod api;
pub mod capabilities;
pub mod client;
pub mod codec;
pub mod config;
pub mod hkp;
pub mod keyfile;
pub mod metrics;
pub mod network;
pub mod raft_types;
pub mod server;
pub mod store;
