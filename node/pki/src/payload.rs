//! The PKI kinds, as data, their payloads and their protobuf form
//! (`proto/ics/pki/v1`).

use ics_kernel::capability::{Field, KindSpec, Payload, Subjects};
use ics_kernel::{Refusal, Role};
use ics_proto::pki_v1 as pb;
use prost::Message;

use crate::cert::ParsedCert;
use crate::{TLS_CA, TLS_CERT};

pub static TLS_CA_BOUND: KindSpec = KindSpec {
    name: "tls-ca-bound",
    message: "ics.pki.v1.TlsCaBound",
    subjects: Subjects::Of(&[TLS_CA]),
    opens_subject: true,
    // Every party runs its cluster over TLS; only its root key binds a CA
    // (checked by the rule).
    authored_by: &Role::ALL,
    grantable: false,
};
pub static TLS_CERT_ISSUED: KindSpec = KindSpec {
    name: "tls-cert-issued",
    message: "ics.pki.v1.TlsCertIssued",
    subjects: Subjects::Of(&[TLS_CERT]),
    opens_subject: true,
    authored_by: &Role::ALL,
    grantable: false,
};
pub static TLS_CERT_REVOKED: KindSpec = KindSpec {
    name: "tls-cert-revoked",
    message: "ics.pki.v1.TlsCertRevoked",
    subjects: Subjects::Of(&[TLS_CERT]),
    opens_subject: false,
    authored_by: &Role::ALL,
    grantable: false,
};

/// Every PKI kind; `Pki::kinds()` returns these.
pub static KINDS: [&KindSpec; 3] = [&TLS_CA_BOUND, &TLS_CERT_ISSUED, &TLS_CERT_REVOKED];

/// The kinds a CA key registered as an author key signs.
pub const CA_KEY_KINDS: [&str; 2] = ["tls-cert-issued", "tls-cert-revoked"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PkiPayload {
    TlsCaBound { certificate: Vec<u8> },
    TlsCertIssued { certificate: Vec<u8> },
    TlsCertRevoked { reason: String },
}

fn parse<M: Message + Default>(kind: &KindSpec, bytes: &[u8]) -> Result<M, Refusal> {
    M::decode(bytes).map_err(|e| Refusal::Malformed(format!("{}: {e}", kind.message)))
}

/// Decodes the payload of one PKI kind.
pub fn decode(kind: &'static KindSpec, bytes: &[u8]) -> Result<PkiPayload, Refusal> {
    let is = |k: &KindSpec| std::ptr::eq(kind, k);
    Ok(if is(&TLS_CA_BOUND) {
        let m: pb::TlsCaBound = parse(kind, bytes)?;
        PkiPayload::TlsCaBound {
            certificate: m.certificate,
        }
    } else if is(&TLS_CERT_ISSUED) {
        let m: pb::TlsCertIssued = parse(kind, bytes)?;
        PkiPayload::TlsCertIssued {
            certificate: m.certificate,
        }
    } else if is(&TLS_CERT_REVOKED) {
        let m: pb::TlsCertRevoked = parse(kind, bytes)?;
        PkiPayload::TlsCertRevoked { reason: m.reason }
    } else {
        return Err(Refusal::Malformed(format!(
            "{} is not a PKI kind",
            kind.name
        )));
    })
}

fn describe_certificate(der: &[u8]) -> Vec<(&'static str, Field)> {
    match ParsedCert::parse(der) {
        Ok(c) => vec![
            ("sha256", Field::text(c.fingerprint_hex())),
            ("serial", Field::text(c.serial.clone())),
            ("holder", Field::List(c.holder_uris.clone())),
            ("not_after_ms", Field::Number(c.not_after_ms)),
        ],
        Err(_) => vec![
            ("sha256", Field::text(crate::cert::fingerprint_hex(der))),
            ("serial", Field::Absent),
            ("holder", Field::Absent),
            ("not_after_ms", Field::Absent),
        ],
    }
}

impl Payload for PkiPayload {
    fn kind(&self) -> &'static KindSpec {
        match self {
            PkiPayload::TlsCaBound { .. } => &TLS_CA_BOUND,
            PkiPayload::TlsCertIssued { .. } => &TLS_CERT_ISSUED,
            PkiPayload::TlsCertRevoked { .. } => &TLS_CERT_REVOKED,
        }
    }

    fn encode(&self) -> Vec<u8> {
        match self {
            PkiPayload::TlsCaBound { certificate } => pb::TlsCaBound {
                certificate: certificate.clone(),
            }
            .encode_to_vec(),
            PkiPayload::TlsCertIssued { certificate } => pb::TlsCertIssued {
                certificate: certificate.clone(),
            }
            .encode_to_vec(),
            PkiPayload::TlsCertRevoked { reason } => pb::TlsCertRevoked {
                reason: reason.clone(),
            }
            .encode_to_vec(),
        }
    }

    fn describe(&self) -> Vec<(&'static str, Field)> {
        match self {
            PkiPayload::TlsCaBound { certificate } | PkiPayload::TlsCertIssued { certificate } => {
                describe_certificate(certificate)
            }
            PkiPayload::TlsCertRevoked { reason } => vec![("reason", Field::text(reason))],
        }
    }
}
