//! The HKP keyserver protocol (draft-gallagher-openpgp-hkp) on the HTTP port:
//! `/pks/lookup` serves device certificates by fingerprint, 64-bit key id or
//! exact User ID (the serial); `/pks/add` is refused, because records enter
//! only as signed events (open uploads are how the 2019 SKS flooding worked).
//!
//! Lookups read this node's applied projection, then the records it
//! imported from other parties (refused with 503 while those are past the
//! policy's staleness): a follower may answer a few
//! milliseconds behind the leader, as keyservers do.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::edge::caller::Caller;
use crate::edge::http::refuse;
use crate::host::Node;
use crate::rate_limit::ReadBudget;
use ics_identity::device::SERIAL_SPACE;
use ics_identity::openpgp::DeviceCertificate;
use ics_identity::query::openpgp_export;
use ics_identity::{Identity, IdentityState};
use ics_kernel::{Claim, Projection};

/// Longest `search` parameter accepted.
pub const MAX_SEARCH_BYTES: usize = 256;

struct Hkp {
    node: Arc<Node>,
    budget: ReadBudget,
}

pub fn router(node: Arc<Node>) -> Router {
    let limits = &node.config.limits;
    let budget = ReadBudget::new(
        "lookups",
        (
            limits.max_hkp_lookups_per_client_per_second,
            limits.hkp_client_burst,
        ),
        (limits.max_hkp_lookups_per_second, limits.hkp_burst),
    );
    Router::new()
        .route("/pks/lookup", get(lookup))
        .route("/pks/add", post(add))
        .with_state(Arc::new(Hkp { node, budget }))
}

async fn add() -> Response {
    refuse(
        StatusCode::FORBIDDEN,
        "/pks/add is disabled by policy: this ICS accepts records only as signed events over gRPC",
    )
}

/// What a `search` parameter asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Search {
    Fingerprint([u8; 20]),
    KeyId([u8; 8]),
    UserId(String),
}

pub fn parse_search(search: &str) -> Result<Search, String> {
    if search.is_empty() {
        return Err("search is empty".to_string());
    }
    if search.len() > MAX_SEARCH_BYTES {
        return Err(format!(
            "search is {} bytes, over the limit of {MAX_SEARCH_BYTES}",
            search.len()
        ));
    }
    let Some(hex_part) = search
        .strip_prefix("0x")
        .or_else(|| search.strip_prefix("0X"))
    else {
        return Ok(Search::UserId(search.to_string()));
    };
    let bytes = hex::decode(hex_part).map_err(|_| format!("{search:?} is not hexadecimal"))?;
    match bytes.len() {
        20 => Ok(Search::Fingerprint(bytes.try_into().expect("20 bytes"))),
        8 => Ok(Search::KeyId(bytes.try_into().expect("8 bytes"))),
        4 => {
            Err("32-bit key ids are ambiguous: search by fingerprint or 64-bit key id".to_string())
        }
        n => Err(format!(
            "{n}-byte key id: search by a v4 fingerprint (20 bytes) or key id (8 bytes)"
        )),
    }
}

/// The device, and its certificate, that a search finds.
pub fn find<'a>(
    projection: &'a Projection,
    search: &Search,
) -> Option<(&'a IdentityState, &'a DeviceCertificate)> {
    let identities = projection.capability::<Identity>();
    let index = identities.index();
    let subject = match search {
        Search::Fingerprint(f) => index.device_by_openpgp_fingerprint(f)?,
        Search::KeyId(k) => {
            let f = index.openpgp_fingerprint_by_key_id(k)?;
            index.device_by_openpgp_fingerprint(f)?
        }
        Search::UserId(serial) => {
            projection.claim_owner(&Claim::new(SERIAL_SPACE, serial.clone()))?
        }
    };
    let state = identities.subject(subject)?;
    state.detail.certificate().map(|c| (state, c))
}

/// A machine-readable index entry (draft-gallagher-openpgp-hkp section 3.2.2).
/// Revocation is a property of the key: the `uid:` line carries no flag.
fn index_mr(c: &DeviceCertificate) -> String {
    let flags = if c.revoked() { "r" } else { "" };
    format!(
        "info:1:1\npub:{}:{}:256:{}::{flags}\nuid:{}:{}::\n",
        c.fingerprint_hex(),
        c.algorithm,
        c.created_s,
        escape_uid(&c.user_id),
        c.created_s,
    )
}

/// HKP escapes `:`, `%` and non-printable bytes in User IDs as %XX.
fn escape_uid(uid: &str) -> String {
    let mut out = String::with_capacity(uid.len());
    for b in uid.bytes() {
        if b == b':' || b == b'%' || !(0x20..0x7f).contains(&b) {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

async fn lookup(
    State(hkp): State<Arc<Hkp>>,
    caller: Option<axum::Extension<Caller>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    if let Err(why) = hkp.budget.charge(caller.map(|c| c.rate_key())) {
        return refuse(StatusCode::TOO_MANY_REQUESTS, why);
    }
    let op = params.get("op").map(String::as_str).unwrap_or("");
    if !matches!(op, "get" | "index" | "vindex") {
        return refuse(
            StatusCode::NOT_IMPLEMENTED,
            format!("op {op:?} is not supported (get, index, vindex)"),
        );
    }
    let Some(raw) = params.get("search") else {
        return refuse(StatusCode::BAD_REQUEST, "the search parameter is missing");
    };
    let search = match parse_search(raw) {
        Ok(s) => s,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
    };
    let machine_readable = params
        .get("options")
        .is_some_and(|o| o.split(',').any(|x| x == "mr"));
    hkp.node.metrics.hkp_lookup();
    let applied = hkp.node.shared.read();
    // This party's records, then those it imported, party by party.
    let found = find(&applied.projection, &search)
        .map(|f| (f, None))
        .or_else(|| {
            applied
                .mirrors
                .parties
                .iter()
                .find_map(|(ns, m)| find(&m.projection, &search).map(|f| (f, Some(ns))))
        });
    let Some(((state, certificate), namespace)) = found else {
        return refuse(
            StatusCode::NOT_FOUND,
            format!("no device certificate matches {raw:?}"),
        );
    };
    // Past the policy's staleness an imported certificate may have been
    // revoked since: no answer rather than one that may be outdated.
    if let Some(ns) = namespace
        && let Some(why) = applied.freshness(ns).stale(crate::client::now_ms())
    {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{raw:?} is {ns}'s record, and {why}"),
        );
    }
    match op {
        "get" => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/pgp-keys; charset=utf-8")],
            openpgp_export(state)
                .map(|e| e.armored())
                .unwrap_or_default(),
        )
            .into_response(),
        _ => {
            let index = index_mr(certificate);
            let body = if machine_readable {
                index
            } else {
                // Human-readable: the same fields, one per line.
                index
                    .lines()
                    .skip(1)
                    .map(|l| l.replace(':', " "))
                    .collect::<Vec<_>>()
                    .join("\n")
                    + "\n"
            };
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                body,
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn searches_parse_or_name_what_is_wrong() {
        let fpr = "0x".to_string() + &"AB".repeat(20);
        assert_eq!(parse_search(&fpr), Ok(Search::Fingerprint([0xAB; 20])));
        assert_eq!(
            parse_search("0x0123456789abcdef"),
            Ok(Search::KeyId([
                0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef
            ]))
        );
        assert_eq!(
            parse_search("SN-0001"),
            Ok(Search::UserId("SN-0001".to_string()))
        );
        assert!(
            parse_search("0xDEADBEEF")
                .unwrap_err()
                .contains("ambiguous")
        );
        assert!(parse_search("0xZZ").unwrap_err().contains("hexadecimal"));
        assert!(parse_search("").unwrap_err().contains("empty"));
        assert!(
            parse_search(&"x".repeat(300))
                .unwrap_err()
                .contains("limit")
        );
    }

    #[test]
    fn user_ids_are_escaped() {
        assert_eq!(escape_uid("a:b%c"), "a%3Ab%25c");
        assert_eq!(escape_uid("SN-1"), "SN-1");
    }
}
