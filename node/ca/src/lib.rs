//! The device certificate authority as a capability. A party binds a device
//! root CA and issuing CAs under it (root key only); an issuing CA's key, an
//! author key of the party, signs each certificate it issues and records it
//! in the log with the PKCS#10 request the device signed (proof of
//! possession): the log is the complete record of everything the CA signed.
//! Revocations, attributes kept beside a certificate and track-and-trace way
//! stations are events on the certificate's subject.
//!
//! The rules: `bind.rs` (CAs), `issuance.rs` (certificates, operational key
//! claims), `lifecycle.rs` (revocation, attributes, way stations); this
//! file dispatches and holds the checks they share. `x509.rs` builds and
//! reads the certificates and requests; `payload.rs`
//! lists the kinds as data (`proto/ics/ca/v1`); `query.rs` answers Verify;
//! `crl.rs`, `ocsp.rs` and `encoding.rs` are the status services' and
//! enrollment's wire formats (RFC 5280 CRLs, RFC 6960, RFC 7030 certs-only,
//! x5bag). All pure: the clock and the keys are the caller's.

mod bind;
pub mod crl;
pub mod encoding;
mod issuance;
mod lifecycle;
pub mod ocsp;
pub mod payload;
pub mod query;
pub mod refusal;
pub mod state;
pub mod x509;

use ics_kernel::capability::{Accepted, Capability, Ctx, KindSpec};
use ics_kernel::{Algorithm, KeyId, PublicKey, Refusal, SubjectRef};
use ics_pki::ParsedCert;

pub use payload::{CaPayload, Purpose, RevocationReason};
pub use refusal::CaRefusal;
pub use state::{CaIndex, CaRecord, CaSubject, DeviceCert, Revocation, Trace};

pub const DEVICE_CA: &str = "device-ca";
pub const DEVICE_CERT: &str = "device-cert";

/// How far a certificate's start may lie ahead of the event that records it.
pub const MAX_NOT_BEFORE_AHEAD_MS: i64 = 5 * 60 * 1000;
/// The most way stations a route names.
pub const MAX_ROUTE_STATIONS: usize = 32;
/// The most sightings a certificate's trace keeps.
pub const MAX_SIGHTINGS: usize = 256;

/// The device CA capability.
pub struct DeviceCa;

impl Capability for DeviceCa {
    const NAME: &'static str = "ca";
    const VERSION: u32 = 1;
    type Payload = CaPayload;
    type Subject = CaSubject;
    type Index = CaIndex;

    fn subject_kinds() -> &'static [&'static str] {
        &[DEVICE_CA, DEVICE_CERT]
    }

    fn kinds() -> &'static [&'static KindSpec] {
        &payload::KINDS
    }

    fn decode(kind: &'static KindSpec, bytes: &[u8]) -> Result<CaPayload, Refusal> {
        payload::decode(kind, bytes)
    }

    fn decide(
        ctx: &Ctx<'_>,
        current: Option<&CaSubject>,
        payload: &CaPayload,
    ) -> Result<Accepted<CaSubject>, Refusal> {
        let mut claims = Vec::new();
        let subject = match payload {
            CaPayload::CaBound {
                certificate,
                purpose,
                issuer,
            } => bind::bind_ca(ctx, certificate, *purpose, issuer)?,
            CaPayload::CertIssued {
                certificate,
                csr,
                device_namespace,
                device,
                authenticated_by,
                renews,
            } => issuance::issue(
                ctx,
                &issuance::Issuance {
                    certificate,
                    csr,
                    device_namespace,
                    device,
                    authenticated_by,
                    renews,
                },
                &mut claims,
            )?,
            CaPayload::CertRevoked { reason, comment } => {
                lifecycle::revoke(ctx, cert_of(ctx, current)?, *reason, comment)?
            }
            CaPayload::AttributesSet { set, removed } => {
                lifecycle::set_attributes(ctx, cert_of(ctx, current)?, set, removed)?
            }
            CaPayload::RouteSet { stations } => {
                lifecycle::set_route(ctx, cert_of(ctx, current)?, stations)?
            }
            CaPayload::StationRecorded { station } => {
                lifecycle::record_station(ctx, cert_of(ctx, current)?, station)?
            }
        };
        Ok(Accepted { subject, claims })
    }

    fn index(
        index: &mut CaIndex,
        subject: &SubjectRef,
        _before: Option<&CaSubject>,
        after: &CaSubject,
    ) {
        index.update(&subject.id, after);
    }

    fn summary(subject: &CaSubject) -> String {
        subject.summary()
    }

    fn status(subject: &CaSubject) -> Option<&'static str> {
        subject.status()
    }
}

fn cert_of<'a>(ctx: &Ctx<'_>, current: Option<&'a CaSubject>) -> Result<&'a DeviceCert, Refusal> {
    match current {
        Some(CaSubject::Cert(c)) => Ok(c),
        _ => Err(Refusal::UnknownSubject(ctx.subject().to_string())),
    }
}

/// The key id of a P-256 key given as SEC1.
pub(crate) fn p256_key_id(sec1: &[u8]) -> Result<KeyId, Refusal> {
    Ok(PublicKey::new(Algorithm::EcdsaP256Sha256, sec1.to_vec())
        .map_err(CaRefusal::bad)?
        .id())
}

/// A P-256 key as an uncompressed SEC1 point, however it was written.
pub(crate) fn uncompressed(key: &PublicKey) -> Option<Vec<u8>> {
    if key.algorithm() != Algorithm::EcdsaP256Sha256 {
        return None;
    }
    p256::ecdsa::VerifyingKey::from_sec1_bytes(key.bytes())
        .ok()
        .map(|k| k.to_sec1_point(false).as_bytes().to_vec())
}

pub(crate) fn check_valid_at(cert: &ParsedCert, time_ms: i64) -> Result<(), Refusal> {
    match cert.not_valid_at(time_ms, MAX_NOT_BEFORE_AHEAD_MS) {
        Some(why) => Err(CaRefusal::bad(why)),
        None => Ok(()),
    }
}

pub(crate) fn check_lifetime(cert: &ParsedCert, max: std::time::Duration) -> Result<(), Refusal> {
    let max_ms = i64::try_from(max.as_millis()).unwrap_or(i64::MAX);
    if cert.not_after_ms - cert.not_before_ms > max_ms {
        return Err(CaRefusal::bad(format!(
            "valid for more than {} days",
            max_ms / 86_400_000
        )));
    }
    Ok(())
}

/// The bound CA with this subject id.
pub fn bound_ca<'a>(ctx: &Ctx<'a>, id: &str) -> Option<&'a CaRecord> {
    match ctx.read::<DeviceCa>(&SubjectRef::new(DEVICE_CA, id.to_string())) {
        Some(CaSubject::Ca(ca)) => Some(ca),
        _ => None,
    }
}

pub use issuance::OPERATIONAL_KEY_SPACE;
