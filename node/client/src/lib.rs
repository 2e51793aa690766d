//! What a client of an ICS needs, and nothing of a server: the rules this
//! build runs (the one list of capabilities), the envelope codec, key files,
//! builders that sign events, and a gRPC client. `icsctl`, the node and the
//! tests share it; it links neither sled nor openraft.

pub mod capabilities;
pub mod codec;
pub mod keyfile;
pub mod member;

mod author;
pub use author::*;
