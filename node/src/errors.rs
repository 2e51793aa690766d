//! gRPC errors: every status carries a `google.rpc.ErrorInfo` (domain `ics`)
//! with a machine-readable reason; refusals map to codes by their class.

use std::collections::HashMap;

use ics_kernel::{Refusal, RefusalClass};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// Metadata key naming the leader's address on a not-leader answer.
pub const LEADER_HINT: &str = "ics-leader";

/// A gRPC error whose `google.rpc.ErrorInfo` (domain `ics`) carries
/// `reason`: clients and federation peers branch on it, never on the text.
pub fn rpc_error(code: Code, reason: &str, message: impl Into<String>) -> Status {
    let details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, HashMap::new());
    Status::with_error_details(code, message, details)
}

pub use ics_proto::codec::ERROR_DOMAIN;

pub fn refusal_status(r: &Refusal) -> Status {
    let code = match r.class() {
        RefusalClass::InvalidArgument => Code::InvalidArgument,
        RefusalClass::Unauthenticated => Code::Unauthenticated,
        RefusalClass::PermissionDenied => Code::PermissionDenied,
        RefusalClass::Conflict => Code::Aborted,
        RefusalClass::FailedPrecondition => Code::FailedPrecondition,
        RefusalClass::AlreadyExists => Code::AlreadyExists,
        RefusalClass::ResourceExhausted => Code::ResourceExhausted,
    };
    rpc_error(code, r.reason(), r.to_string())
}

/// `leader`: the leader's node id and address, when one is known.
pub fn not_leader(leader: Option<(u64, String)>) -> Status {
    match leader {
        Some((id, addr)) => {
            let mut s = rpc_error(
                Code::Unavailable,
                "NOT_LEADER",
                format!("this node is not the leader; the leader is node {id} at {addr}"),
            );
            if let Ok(v) = addr.parse() {
                s.metadata_mut().insert(LEADER_HINT, v);
            }
            s
        }
        None => rpc_error(
            Code::Unavailable,
            "NO_LEADER",
            "no leader is elected yet; retry shortly",
        ),
    }
}

pub fn internal(context: &str, e: impl std::fmt::Display) -> Status {
    rpc_error(Code::Internal, "INTERNAL", format!("{context}: {e}"))
}

/// The machine-readable reason a status carries (`INTERNAL` when it has none).
pub fn reason_of(status: &Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map_or_else(|| "INTERNAL".to_string(), |i| i.reason.clone())
}
