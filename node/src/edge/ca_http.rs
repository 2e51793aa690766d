//! The device CA's HTTP side, mounted where the role runs a CA: the chain,
//! each bound CA's certificate, the CRL of the CA this node holds, and an
//! RFC 6960 OCSP responder (POST and GET), answered from the applied state.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ics_ca::DeviceCa;
use ics_ca::ocsp::{self, ResponseStatus, Status};

use crate::device_ca::p256_of;
use crate::edge::http::refuse;
use crate::host::Node;
use crate::tls_dir::pem;

const PKIX_CERT: &str = "application/pkix-cert";
const PKIX_CRL: &str = "application/pkix-crl";
const PEM_CHAIN: &str = "application/pem-certificate-chain";
const OCSP_REQUEST: &str = "application/ocsp-request";
const OCSP_RESPONSE: &str = "application/ocsp-response";

fn body(content_type: &'static str, bytes: impl Into<Bytes>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, content_type)],
        bytes.into(),
    )
        .into_response()
}

fn no_ca() -> Response {
    refuse(StatusCode::NOT_FOUND, "this node holds no device CA")
}

/// Whether the issuing CA this node holds is bound in the log: nothing of
/// it is handed out before.
pub fn bound(node: &Node) -> bool {
    node.device_ca.as_deref().is_some_and(|ca| {
        let applied = node.shared.read();
        ics_ca::query::ca_by_id(applied.projection.capability::<DeviceCa>(), &ca.id).is_some()
    })
}

/// `/ca/chain.pem`: the issuing CA this node signs with, then its root.
async fn chain(State(node): State<Arc<Node>>) -> Response {
    if node.device_ca.is_some() && !bound(&node) {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "the device CA is not bound in the log yet",
        );
    }
    match node.device_ca.as_deref() {
        Some(ca) => body(PEM_CHAIN, pem(&ca.cert.der) + &pem(&ca.root.der)),
        None => no_ca(),
    }
}

/// `/ca/<id>.crt` (any CA bound in the log) and `/ca/<id>.crl` (the CA
/// this node holds the key of).
async fn ca_file(State(node): State<Arc<Node>>, UrlPath(file): UrlPath<String>) -> Response {
    if let Some(id) = file.strip_suffix(".crt") {
        let state = node.shared.read();
        return match ics_ca::query::ca_by_id(state.projection.capability::<DeviceCa>(), id) {
            Some(r) => body(PKIX_CERT, r.certificate.clone()),
            None => refuse(
                StatusCode::NOT_FOUND,
                format!("no device CA {id:?} is bound in the log"),
            ),
        };
    }
    let Some(id) = file.strip_suffix(".crl") else {
        return refuse(
            StatusCode::NOT_FOUND,
            format!("{file:?}: ask for <ca id>.crt or <ca id>.crl"),
        );
    };
    let ca = match node.device_ca.as_deref() {
        Some(ca) if ca.id == id => ca,
        Some(_) | None => {
            return refuse(
                StatusCode::NOT_FOUND,
                format!("this node signs no CRL of CA {id:?}"),
            );
        }
    };
    let made = {
        let state = node.shared.read();
        ca.crl(
            state.projection.capability::<DeviceCa>(),
            ics_client::now_ms(),
        )
    };
    match made {
        Ok(bytes) => {
            node.metrics.ca_served("crl");
            body(PKIX_CRL, bytes)
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "making the CRL failed");
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the CRL could not be made",
            )
        }
    }
}

/// The OCSP answer to a DER request: a signed response, or an error status
/// (malformedRequest, unauthorized for another CA's certificates).
fn answer_ocsp(node: &Node, der: &[u8]) -> Response {
    let reply = |bytes: Vec<u8>| body(OCSP_RESPONSE, bytes);
    let Some(ca) = node.device_ca.as_deref() else {
        return reply(ocsp::error_response(ResponseStatus::Unauthorized));
    };
    let request = match ocsp::parse_request(der) {
        Ok(r) => r,
        Err(e) => {
            node.metrics.ca_refused("ocsp_malformed");
            tracing::debug!(error = %e, "malformed OCSP request");
            return reply(ocsp::error_response(ResponseStatus::MalformedRequest));
        }
    };
    if !request.asked.iter().all(|a| ca.hashes.names(a)) {
        node.metrics.ca_refused("ocsp_unauthorized");
        return reply(ocsp::error_response(ResponseStatus::Unauthorized));
    }
    let now = ics_client::now_ms();
    let statuses: Vec<Status> = {
        let state = node.shared.read();
        let cas = state.projection.capability::<DeviceCa>();
        request
            .asked
            .iter()
            .map(|a| match ics_ca::query::cert_by_serial(cas, &a.serial) {
                Some((_, c)) if c.ca == ca.id => match &c.revoked {
                    Some(r) => Status::Revoked {
                        time_ms: r.time_ms,
                        reason: r.reason,
                    },
                    None => Status::Good,
                },
                _ => Status::Unknown,
            })
            .collect()
    };
    let signed = p256_of(&ca.key)
        .map_err(|e| ics_pki::cert::CertError(e.to_string()))
        .and_then(|key| ocsp::respond(&ca.hashes, &ca.cert.der, key, &request, &statuses, now));
    match signed {
        Ok(bytes) => {
            node.metrics.ca_served("ocsp");
            reply(bytes)
        }
        Err(e) => {
            tracing::error!(error = %e, "signing an OCSP response failed");
            reply(ocsp::error_response(ResponseStatus::InternalError))
        }
    }
}

/// RFC 6960 A.1: POST with the DER request as body.
async fn ocsp_post(State(node): State<Arc<Node>>, headers: HeaderMap, der: Bytes) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type != OCSP_REQUEST {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("an OCSP request is sent as {OCSP_REQUEST}, not {content_type:?}"),
        );
    }
    answer_ocsp(&node, &der)
}

/// RFC 6960 A.1: GET with the base64 of the DER request (URL-encoded) as
/// the last path segment.
async fn ocsp_get(State(node): State<Arc<Node>>, UrlPath(encoded): UrlPath<String>) -> Response {
    use base64::Engine;
    if encoded.len() > 2 * ocsp::MAX_OCSP_REQUEST_BYTES {
        node.metrics.ca_refused("ocsp_malformed");
        return body(
            OCSP_RESPONSE,
            ocsp::error_response(ResponseStatus::MalformedRequest),
        );
    }
    // The path is percent-decoded already; base64 may be standard or URL-safe.
    let text: String = encoded.chars().filter(|c| !c.is_whitespace()).collect();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&text)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(&text));
    match decoded {
        Ok(der) => answer_ocsp(&node, &der),
        Err(_) => {
            node.metrics.ca_refused("ocsp_malformed");
            body(
                OCSP_RESPONSE,
                ocsp::error_response(ResponseStatus::MalformedRequest),
            )
        }
    }
}

/// The device CA's HTTP side, mounted on the nodes of the roles that run one.
pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route("/ca/chain.pem", get(chain))
        .route("/ca/{file}", get(ca_file))
        .route("/ocsp", post(ocsp_post))
        .route("/ocsp/{*request}", get(ocsp_get))
        .layer(axum::extract::DefaultBodyLimit::max(
            ocsp::MAX_OCSP_REQUEST_BYTES,
        ))
        .with_state(node)
}
