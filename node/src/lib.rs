//! The ICS node: a signed event log replicated with openraft, stored in sled,
//! served over gRPC. The rules live in `ics-kernel` and the capability crates;
//! this crate is the host around them.

pub mod bootstrap;
pub mod ca_upkeep;
pub mod checkpoints;

/// The client library, under its old path.
pub use ics_client as client;
pub use ics_client::{capabilities, codec, keyfile};

pub mod config;
pub mod device_ca;
pub mod edge;
pub mod errors;
pub mod federation;
pub mod forward;
pub mod hkp;
pub mod host;
pub mod listener;
pub mod log;
pub mod metrics;
pub mod peer;
pub mod rate_limit;
pub mod server;
pub mod sync;
pub mod sync_board;
pub mod tiles;
pub mod tls;
pub mod tls_dir;
pub mod witness;
pub mod writer;
