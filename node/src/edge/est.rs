//! The device listener (`device_listen`, HTTPS): RFC 7030 enrollment over
//! secure transport and the example data-ingestion endpoint, for devices
//! that authenticate with their own certificates.
//!
//! The TLS handshake proves the device holds the key of the certificate it
//! shows (any well-formed certificate is taken there); who it is and whether
//! it may act is decided per request against the log: the certificate must
//! be one this party's CA issued, or one a party it imports records from
//! issued (a manufacturer's factory certificate), current and not revoked.
//!
//! - `GET /.well-known/est/cacerts`: the issuing CA and root, PKCS#7 certs-only.
//! - `GET /.well-known/est/csrattrs`: what a request must be (P-256, ECDSA-SHA256).
//! - `POST /.well-known/est/simpleenroll`: a PKCS#10 request (base64), with the
//!   device's factory certificate; answers the operational certificate.
//! - `POST /.well-known/est/simplereenroll`: the same with the device's current
//!   operational certificate, which the new one renews (its attributes follow).
//! - `POST /ingest`: device data, accepted from a certificate that passes
//!   Verify with the node's expected attributes (`ca.ingest_expect`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ics_ca::{CaSubject, DeviceCa, Purpose, encoding};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::edge::ca_issue::IssueRequest;
use crate::edge::http::refuse;
use crate::host::Node;
use crate::peer::{bad_certificate, no_tls12, signature_schemes, tls13_signature};

/// The largest body a device sends: a request, or a reading.
pub const MAX_DEVICE_BODY_BYTES: usize = 64 * 1024;

/// Who is on the other end of a device connection: its address and the
/// certificate it proved it holds the key of, if it showed one.
#[derive(Clone, Debug)]
pub struct DeviceCaller {
    pub address: SocketAddr,
    pub certificate: Option<Vec<u8>>,
}

/// Takes any well-formed certificate and checks the handshake signature with
/// its key; the log decides the rest, per request.
#[derive(Debug)]
pub struct DeviceCertVerifier {
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl DeviceCertVerifier {
    pub fn new() -> DeviceCertVerifier {
        DeviceCertVerifier {
            provider: crate::peer::provider(),
        }
    }
}

impl Default for DeviceCertVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientCertVerifier for DeviceCertVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    // The CA certificates are open to all (cacerts), so a client may come
    // without a certificate; the requests that need one say so.
    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if end_entity.len() > ics_ca::x509::MAX_DER_BYTES {
            return Err(bad_certificate("the client certificate is too large"));
        }
        ics_ca::x509::parse_cert(end_entity).map_err(|e| bad_certificate(e.to_string()))?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        no_tls12()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        tls13_signature(&self.provider, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        signature_schemes(&self.provider)
    }
}

/// The device listener's identify step: the certificate as shown.
pub fn identify() -> crate::listener::Identify<DeviceCaller> {
    Arc::new(|cert, address| {
        Ok(DeviceCaller {
            address,
            certificate: cert.map(|c| c.to_vec()),
        })
    })
}

const PKCS7_CERTS_ONLY: &str = "application/pkcs7-mime; smime-type=certs-only";
const CSRATTRS: &str = "application/csrattrs";
const PKCS10: &str = "application/pkcs10";

fn base64_body(content_type: &'static str, der: &[u8]) -> Response {
    use base64::Engine;
    // RFC 2045 base64: lines of at most 76 characters (64 here, as PEM),
    // which line-oriented decoders (`openssl base64 -d`) need.
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let mut text = String::with_capacity(encoded.len() + encoded.len() / 64 + 1);
    for line in encoded.as_bytes().chunks(64) {
        text.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        text.push('\n');
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], text).into_response()
}

/// A refusal, counted under `reason`.
fn refused(
    node: &Node,
    code: StatusCode,
    reason: &'static str,
    message: impl Into<String>,
) -> Response {
    node.metrics.ca_refused(reason);
    let message = message.into();
    tracing::debug!(reason, %message, "device request refused");
    refuse(code, format!("{reason}: {message}"))
}

async fn cacerts(State(node): State<Arc<Node>>) -> Response {
    if !crate::edge::ca_http::bound(&node) {
        return refused(
            &node,
            StatusCode::SERVICE_UNAVAILABLE,
            "device_ca_not_bound",
            "the device CA is not bound in the log yet",
        );
    }
    match node.device_ca.as_deref() {
        Some(ca) => base64_body(
            PKCS7_CERTS_ONLY,
            &encoding::certs_only(&[&ca.cert.der, &ca.root.der]),
        ),
        None => refused(
            &node,
            StatusCode::NOT_FOUND,
            "no_device_ca",
            "this node holds no device CA",
        ),
    }
}

/// RFC 7030 4.5.2: the request is signed with ecdsa-with-SHA256 for an
/// id-ecPublicKey on prime256v1.
async fn csrattrs() -> Response {
    const ATTRS: [u8; 35] = [
        0x30, 0x21, // CsrAttrs
        0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02, // ecdsa-with-SHA256
        0x30, 0x15, // Attribute
        0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, // id-ecPublicKey
        0x31, 0x0a, // SET
        0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, // prime256v1
    ];
    base64_body(CSRATTRS, &ATTRS)
}

/// Why a device request is refused: its HTTP code and machine-readable
/// reason, and a message naming what is wrong.
struct Refused {
    code: StatusCode,
    reason: &'static str,
    message: String,
}

impl Refused {
    fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Refused {
        Refused {
            code,
            reason,
            message: message.into(),
        }
    }

    fn respond(self, node: &Node) -> Response {
        refused(node, self.code, self.reason, self.message)
    }
}

/// The record of the certificate a device showed, if it passes Verify with
/// `expect`: (party whose CA issued it, its serial, the record).
struct Shown {
    party: String,
    serial: String,
    fingerprint: String,
    purpose: Purpose,
    namespace: String,
    device: String,
}

fn shown(
    node: &Node,
    caller: &DeviceCaller,
    expect: &[(String, String)],
) -> Result<Shown, Refused> {
    let Some(der) = caller.certificate.as_deref() else {
        return Err(Refused::new(
            StatusCode::UNAUTHORIZED,
            "no_client_certificate",
            "this request needs the device's certificate as TLS client certificate",
        ));
    };
    let verdict = crate::edge::ca_issue::verify(node, der, expect, ics_client::now_ms());
    if !verdict.valid {
        let reasons: Vec<String> = verdict
            .problems
            .iter()
            .map(|p| format!("{} ({})", p.reason, p.message))
            .collect();
        return Err(Refused::new(
            StatusCode::FORBIDDEN,
            "client_certificate_refused",
            format!(
                "the client certificate does not pass: {}",
                reasons.join("; ")
            ),
        ));
    }
    let applied = node.shared.read();
    let projection = if verdict.issuer_party == node.config.party {
        Some(&applied.projection)
    } else {
        applied
            .mirrors
            .parties
            .get(&verdict.issuer_party)
            .map(|m| &m.projection)
    };
    let purpose = projection
        .and_then(|p| {
            match p
                .capability::<DeviceCa>()
                .subject(&ics_kernel::SubjectRef::new(
                    ics_ca::DEVICE_CERT,
                    verdict.serial.clone(),
                )) {
                Some(CaSubject::Cert(c)) => Some(c.purpose),
                _ => None,
            }
        })
        .ok_or_else(|| {
            Refused::new(
                StatusCode::FORBIDDEN,
                "client_certificate_refused",
                "its record is gone",
            )
        })?;
    Ok(Shown {
        party: verdict.issuer_party,
        serial: verdict.serial,
        fingerprint: ics_pki::cert::fingerprint_hex(der),
        purpose,
        namespace: verdict.device_namespace,
        device: verdict.device,
    })
}

/// The request in an enrollment body: base64 of the DER (whitespace
/// allowed, RFC 7030 4.2.1).
fn request_der(headers: &HeaderMap, body: &[u8]) -> Result<Vec<u8>, Refused> {
    use base64::Engine;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with(PKCS10) {
        return Err(Refused::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "bad_media_type",
            format!("an enrollment request is sent as {PKCS10}, not {content_type:?}"),
        ));
    }
    let text: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(&text)
        .map_err(|e| {
            Refused::new(
                StatusCode::BAD_REQUEST,
                "bad_csr",
                format!("the body is not base64: {e}"),
            )
        })
}

fn status_to_http(node: &Node, s: &tonic::Status) -> Response {
    let reason = crate::errors::reason_of(s);
    let code = match s.code() {
        tonic::Code::InvalidArgument => StatusCode::BAD_REQUEST,
        tonic::Code::NotFound => StatusCode::NOT_FOUND,
        tonic::Code::FailedPrecondition | tonic::Code::PermissionDenied => StatusCode::FORBIDDEN,
        tonic::Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        tonic::Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    node.metrics.ca_refused("enrollment_refused");
    refuse(code, format!("{reason}: {}", s.message()))
}

async fn enroll(
    node: &Node,
    caller: &DeviceCaller,
    headers: &HeaderMap,
    body: &[u8],
    renew: bool,
) -> Response {
    let shown = match shown(node, caller, &[]) {
        Ok(s) => s,
        Err(r) => return r.respond(node),
    };
    let own = node.config.party.as_str();
    let allowed = if renew {
        shown.purpose == Purpose::Operational && shown.party == own
    } else {
        shown.purpose == Purpose::Factory
    };
    if allowed && !renew && !certifies_current_key(node, caller, &shown) {
        return refused(
            node,
            StatusCode::FORBIDDEN,
            "factory_key_replaced",
            "the device's key was rotated: its factory certificate certifies a key it no longer has",
        );
    }
    if !allowed {
        return refused(
            node,
            StatusCode::FORBIDDEN,
            "wrong_client_certificate",
            if renew {
                "re-enrollment needs the device's current operational certificate of this party"
            } else {
                "enrollment needs the device's factory certificate"
            },
        );
    }
    let csr = match request_der(headers, body) {
        Ok(c) => c,
        Err(r) => return r.respond(node),
    };
    let caller_key = format!("device {}/{}", shown.namespace, shown.device);
    let issued = crate::edge::ca_issue::issue(
        node,
        IssueRequest {
            csr: &csr,
            device: &shown.device,
            namespace: Some(&shown.namespace),
            lifetime: None,
            authenticated_by: Some(shown.fingerprint.clone()),
            renews: renew.then(|| shown.serial.clone()),
        },
        &caller_key,
    )
    .await;
    match issued {
        Ok(i) => {
            node.metrics
                .ca_served(if renew { "est_reenroll" } else { "est_enroll" });
            base64_body(PKCS7_CERTS_ONLY, &encoding::certs_only(&[&i.certificate]))
        }
        Err(s) => status_to_http(node, &s),
    }
}

/// Whether the shown factory certificate certifies the device's current
/// key in its party's records (a rotation replaces it).
fn certifies_current_key(node: &Node, caller: &DeviceCaller, shown: &Shown) -> bool {
    let Some(cert) = caller
        .certificate
        .as_deref()
        .and_then(|der| ics_pki::ParsedCert::parse(der).ok())
    else {
        return false;
    };
    let applied = node.shared.read();
    let projection = if shown.namespace == node.config.party {
        Some(&applied.projection)
    } else {
        applied
            .mirrors
            .parties
            .get(&shown.namespace)
            .map(|m| &m.projection)
    };
    let subject = ics_kernel::SubjectRef::new(ics_identity::DEVICE, shown.device.clone());
    let key = projection
        .and_then(|p| p.capability::<ics_identity::Identity>().subject(&subject))
        .and_then(|s| s.detail.current_key().cloned());
    key.and_then(|k| p256::ecdsa::VerifyingKey::from_sec1_bytes(k.bytes()).ok())
        .is_some_and(|k| k.to_sec1_point(false).as_bytes() == cert.public_key.as_slice())
}

async fn simpleenroll(
    State(node): State<Arc<Node>>,
    Extension(caller): Extension<DeviceCaller>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    enroll(&node, &caller, &headers, &body, false).await
}

async fn simplereenroll(
    State(node): State<Arc<Node>>,
    Extension(caller): Extension<DeviceCaller>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    enroll(&node, &caller, &headers, &body, true).await
}

/// The blog's pattern end to end: data is taken only from a certificate
/// that passes Verify — chain, revocation, the expected attributes kept
/// beside it, its way stations in order.
async fn ingest(
    State(node): State<Arc<Node>>,
    Extension(caller): Extension<DeviceCaller>,
    body: Bytes,
) -> Response {
    let expect = node.config.ca.ingest_expectations();
    let shown = match shown(&node, &caller, &expect) {
        Ok(s) => s,
        Err(r) => return r.respond(&node),
    };
    // Only this party's attributes decide: an operational certificate of
    // its own CA, not another party's certificate with attributes it set.
    if shown.party != node.config.party || shown.purpose != Purpose::Operational {
        return refused(
            &node,
            StatusCode::FORBIDDEN,
            "wrong_client_certificate",
            "data is taken with an operational certificate of this party",
        );
    }
    node.metrics.ca_served("ingest");
    tracing::debug!(device = %shown.device, bytes = body.len(), "device data ingested");
    (
        StatusCode::ACCEPTED,
        [(header::CONTENT_TYPE, "application/json")],
        format!(
            "{{\"device\":\"{}/{}\",\"serial\":\"{}\",\"bytes\":{}}}\n",
            shown.namespace,
            shown.device,
            shown.serial,
            body.len()
        ),
    )
        .into_response()
}

pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route("/.well-known/est/cacerts", get(cacerts))
        .route("/.well-known/est/csrattrs", get(csrattrs))
        .route("/.well-known/est/simpleenroll", post(simpleenroll))
        .route("/.well-known/est/simplereenroll", post(simplereenroll))
        .route("/ingest", post(ingest))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_DEVICE_BODY_BYTES))
        .with_state(node)
}
