//! Forwarding from a follower to the leader: one marker, so a request is
//! never forwarded twice (it is a hint between nodes, not an identity).

use tonic::Request;

/// Metadata key on requests a follower forwarded.
pub const FORWARDED: &str = "ics-forwarded";

pub fn is_forwarded<T>(req: &Request<T>) -> bool {
    req.metadata().get(FORWARDED).is_some()
}

/// Marks a request as forwarded by a follower.
pub fn forwarded<T>(inner: T) -> Request<T> {
    let mut r = Request::new(inner);
    r.metadata_mut()
        .insert(FORWARDED, "1".parse().expect("ascii"));
    r
}
