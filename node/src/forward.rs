//! Forwarding from a follower to the leader over the peer listener: one
//! marker, so a request is never forwarded twice (a hint between nodes, not
//! an identity: the identity is the peer's certificate).

use tonic::Request;

/// Where an append comes from: a client, a follower forwarding a client's
/// request, this node's (or a follower's) own bootstrap, or a node's upkeep
/// of its own record (its TLS certificates).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Client,
    Forwarded,
    Bootstrap,
    Upkeep,
}

/// Metadata key on requests a follower forwarded.
pub const FORWARDED: &str = "ics-forwarded";

/// Whether a follower forwarded this request: the marker counts only on the
/// peer listener, where the connection is a node of this party (mutual TLS);
/// from a client it is ignored.
pub fn is_forwarded<T>(req: &Request<T>) -> bool {
    from_peer(req) && req.metadata().get(FORWARDED).is_some()
}

/// Whether the request came over the peer listener (a node's certificate).
pub fn from_peer<T>(req: &Request<T>) -> bool {
    req.extensions()
        .get::<crate::peer::PeerIdentity>()
        .is_some()
}

/// The origin a forwarded request carries: `bootstrap` for a follower's own
/// genesis, else a client's request. Only a peer's marker counts.
pub fn origin<T>(req: &Request<T>) -> Origin {
    if !from_peer(req) {
        return Origin::Client;
    }
    match req.metadata().get(FORWARDED).map(|v| v.as_bytes()) {
        None => Origin::Client,
        Some(b"bootstrap") => Origin::Bootstrap,
        Some(b"upkeep") => Origin::Upkeep,
        Some(_) => Origin::Forwarded,
    }
}

/// Marks a client's request as forwarded by a follower.
pub fn forwarded<T>(inner: T) -> Request<T> {
    forwarded_as(inner, Origin::Forwarded)
}

/// Marks a request as forwarded by a follower, keeping its origin.
pub fn forwarded_as<T>(inner: T, origin: Origin) -> Request<T> {
    let mut r = Request::new(inner);
    let marker = match origin {
        Origin::Bootstrap => "bootstrap",
        Origin::Upkeep => "upkeep",
        Origin::Client | Origin::Forwarded => "1",
    };
    r.metadata_mut()
        .insert(FORWARDED, marker.parse().expect("ascii"));
    r
}
