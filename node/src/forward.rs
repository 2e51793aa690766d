//! Forwarding from a follower to the leader: one marker, so a request is
//! never forwarded twice (it is a hint between nodes, not an identity).

use tonic::Request;

/// Where an append comes from: a client, a follower forwarding a client's
/// request, or this node's (or a follower's) own bootstrap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Client,
    Forwarded,
    Bootstrap,
}

/// Metadata key on requests a follower forwarded.
pub const FORWARDED: &str = "ics-forwarded";

pub fn is_forwarded<T>(req: &Request<T>) -> bool {
    req.metadata().get(FORWARDED).is_some()
}

/// The origin a forwarded request carries: `bootstrap` for a follower's own
/// genesis, else a client's request.
pub fn origin<T>(req: &Request<T>) -> Origin {
    match req.metadata().get(FORWARDED).map(|v| v.as_bytes()) {
        None => Origin::Client,
        Some(b"bootstrap") => Origin::Bootstrap,
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
    let marker = if origin == Origin::Bootstrap {
        "bootstrap"
    } else {
        "1"
    };
    r.metadata_mut()
        .insert(FORWARDED, marker.parse().expect("ascii"));
    r
}
