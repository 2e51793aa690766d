//! The ICS node: a signed event log replicated with openraft, stored in sled,
//! served over gRPC. The rules live in `ics-kernel` and the capability crates;
//! this crate is the host around them.

pub mod bootstrap;
pub mod capabilities;
pub mod client;
pub mod codec;
pub mod config;
pub mod edge;
pub mod errors;
pub mod forward;
pub mod hkp;
pub mod host;
pub mod keyfile;
pub mod log;
pub mod metrics;
pub mod rate_limit;
pub mod server;
pub mod writer;
