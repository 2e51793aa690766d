//! The device certificate authority as a capability. A party binds a device
//! root CA and issuing CAs under it (root key only); an issuing CA's key, an
//! author key of the party, signs each certificate it issues and records it
//! in the log with the PKCS#10 request the device signed (proof of
//! possession): the log is the complete record of everything the CA signed.
//! Revocations, attributes kept beside a certificate and track-and-trace way
//! stations are events on the certificate's subject.
//!
//! `x509.rs` builds and reads the certificates and requests; `payload.rs`
//! lists the kinds as data (`proto/ics/ca/v1`); `query.rs` answers Verify;
//! `crl.rs`, `ocsp.rs` and `encoding.rs` are the status services' and
//! enrollment's wire formats (RFC 5280 CRLs, RFC 6960, RFC 7030 certs-only,
//! x5bag). All pure: the clock and the keys are the caller's.

pub mod crl;
pub mod encoding;
pub mod ocsp;
pub mod payload;
pub mod query;
pub mod refusal;
pub mod state;
pub mod x509;

use std::collections::BTreeSet;

use ics_identity::payload::DeviceStatus;
use ics_identity::{Detail, Identity};
use ics_kernel::capability::{Accepted, Capability, Claim, Ctx, KindSpec};
use ics_kernel::limits::check_name;
use ics_kernel::{Algorithm, KeyId, PublicKey, Refusal, Role, SubjectRef};
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
            } => bind_ca(ctx, certificate, *purpose, issuer)?,
            CaPayload::CertIssued {
                certificate,
                csr,
                device_namespace,
                device,
                authenticated_by,
                renews,
            } => issue(
                ctx,
                &Issuance {
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
                revoke(ctx, cert_of(ctx, current)?, *reason, comment)?
            }
            CaPayload::AttributesSet { set, removed } => {
                set_attributes(ctx, cert_of(ctx, current)?, set, removed)?
            }
            CaPayload::RouteSet { stations } => set_route(ctx, cert_of(ctx, current)?, stations)?,
            CaPayload::StationRecorded { station } => {
                record_station(ctx, cert_of(ctx, current)?, station)?
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
fn p256_key_id(sec1: &[u8]) -> Result<KeyId, Refusal> {
    Ok(PublicKey::new(Algorithm::EcdsaP256Sha256, sec1.to_vec())
        .map_err(CaRefusal::bad)?
        .id())
}

/// A P-256 key as an uncompressed SEC1 point, however it was written.
fn uncompressed(key: &PublicKey) -> Option<Vec<u8>> {
    if key.algorithm() != Algorithm::EcdsaP256Sha256 {
        return None;
    }
    p256::ecdsa::VerifyingKey::from_sec1_bytes(key.bytes())
        .ok()
        .map(|k| k.to_sec1_point(false).as_bytes().to_vec())
}

fn check_valid_at(cert: &ParsedCert, time_ms: i64) -> Result<(), Refusal> {
    match cert.not_valid_at(time_ms, MAX_NOT_BEFORE_AHEAD_MS) {
        Some(why) => Err(CaRefusal::bad(why)),
        None => Ok(()),
    }
}

fn check_lifetime(cert: &ParsedCert, max: std::time::Duration) -> Result<(), Refusal> {
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

fn bind_ca(
    ctx: &Ctx<'_>,
    der: &[u8],
    purpose: Purpose,
    issuer: &str,
) -> Result<CaSubject, Refusal> {
    let party = ctx.party();
    if ctx.body().author != party.root_key {
        return Err(CaRefusal::NotRootKey(ctx.body().author.to_string()).into());
    }
    let role_may = match purpose {
        Purpose::Root => true,
        Purpose::Factory => party.role == Role::Manufacturer,
        Purpose::Operational => matches!(party.role, Role::Maintenance | Role::Infield),
    };
    if !role_may {
        return Err(CaRefusal::WrongPurpose(format!(
            "a {} party does not run a {} CA (factory: manufacturers; operational: maintainers and gateways)",
            party.role.name(),
            purpose.name()
        ))
        .into());
    }
    let cert = x509::parse_cert(der).map_err(CaRefusal::bad)?;
    if !cert.is_ca || !cert.key_usage_cert_sign {
        return Err(CaRefusal::bad(
            "a CA certificate needs basicConstraints CA and keyCertSign",
        ));
    }
    if x509::device_of(&cert).is_ok() {
        return Err(CaRefusal::bad("a CA certificate names no device"));
    }
    check_valid_at(&cert, ctx.time_ms())?;
    check_lifetime(&cert, x509::MAX_ROOT_LIFETIME)?;
    let key_id = p256_key_id(&cert.public_key)?;
    if ctx.subject().id != key_id.to_hex() {
        return Err(Refusal::InvalidSubject {
            subject: ctx.subject().to_string(),
            reason: format!("a device CA's subject id must be its key's id {key_id}"),
        });
    }
    let issuer = match purpose {
        Purpose::Root => {
            if !issuer.is_empty() {
                return Err(Refusal::field("issuer", "a root CA has no issuer"));
            }
            if cert.issuer != cert.subject || !cert.signed_by(&cert.public_key) {
                return Err(CaRefusal::bad("a root CA certificate must be self-signed"));
            }
            None
        }
        Purpose::Factory | Purpose::Operational => {
            let root = bound_ca(ctx, issuer)
                .filter(|r| r.purpose == Purpose::Root)
                .ok_or_else(|| CaRefusal::CaNotBound(format!("{issuer:?} (a root)")))?;
            let root_cert = ParsedCert::parse(&root.certificate).map_err(CaRefusal::bad)?;
            if cert.issuer != root_cert.subject || !cert.signed_by(&root_cert.public_key) {
                return Err(CaRefusal::bad(format!(
                    "not issued by the root CA {issuer}"
                )));
            }
            if cert.not_after_ms > root.not_after_ms {
                return Err(CaRefusal::bad("valid beyond its root"));
            }
            let is_issuing_author = ctx.key(&key_id).is_some_and(|k| {
                k.party == party.name
                    && !k.revoked
                    && k.not_after_ms.is_none_or(|t| t > ctx.time_ms())
                    && k.may_sign(payload::DEVICE_CERT_ISSUED.name)
                    && k.allowed_kinds.is_some()
            });
            if !is_issuing_author {
                return Err(CaRefusal::CaKeyNotAuthor(key_id.to_string()).into());
            }
            Some(issuer.to_string())
        }
    };
    Ok(CaSubject::Ca(CaRecord {
        certificate: der.to_vec(),
        purpose,
        issuer,
        fingerprint: cert.fingerprint_hex(),
        not_after_ms: cert.not_after_ms,
    }))
}

struct Issuance<'p> {
    certificate: &'p [u8],
    csr: &'p [u8],
    device_namespace: &'p str,
    device: &'p str,
    authenticated_by: &'p str,
    renews: &'p str,
}

fn issue(ctx: &Ctx<'_>, p: &Issuance<'_>, claims: &mut Vec<Claim>) -> Result<CaSubject, Refusal> {
    let party = ctx.party();
    let author = ctx.body().author;
    let ca =
        bound_ca(ctx, &author.to_hex()).ok_or_else(|| CaRefusal::CaNotBound(author.to_string()))?;
    if ca.purpose == Purpose::Root {
        return Err(CaRefusal::WrongPurpose(
            "a root CA signs issuing CAs, not device certificates".into(),
        )
        .into());
    }
    let ca_cert = ParsedCert::parse(&ca.certificate).map_err(CaRefusal::bad)?;
    let cert = x509::parse_cert(p.certificate).map_err(CaRefusal::bad)?;
    if ctx.subject().id != cert.serial {
        return Err(Refusal::InvalidSubject {
            subject: ctx.subject().to_string(),
            reason: format!(
                "a device certificate's subject id must be its serial number {}",
                cert.serial
            ),
        });
    }
    if cert.is_ca {
        return Err(CaRefusal::bad("a device certificate is not a CA"));
    }
    if cert.issuer != ca_cert.subject || !cert.signed_by(&ca_cert.public_key) {
        return Err(CaRefusal::bad(format!(
            "not issued by the device CA {author}"
        )));
    }
    if !cert.key_usage_digital_signature || !cert.client_auth {
        return Err(CaRefusal::bad("needs digitalSignature and clientAuth"));
    }
    check_valid_at(&cert, ctx.time_ms())?;
    check_lifetime(
        &cert,
        match ca.purpose {
            Purpose::Factory => x509::MAX_FACTORY_LIFETIME,
            _ => x509::MAX_OPERATIONAL_LIFETIME,
        },
    )?;
    if cert.not_after_ms > ca.not_after_ms {
        return Err(CaRefusal::bad("valid beyond its CA"));
    }
    let namespace = if p.device_namespace.is_empty() {
        party.name.as_str()
    } else {
        p.device_namespace
    };
    let (named_party, named_device) = x509::device_of(&cert).map_err(CaRefusal::bad)?;
    if named_party != namespace || named_device != p.device {
        return Err(CaRefusal::bad(format!(
            "names device {named_party}/{named_device}, not {namespace}/{}",
            p.device
        )));
    }
    let csr = x509::Csr::parse(p.csr).map_err(|e| CaRefusal::BadCsr(e.to_string()))?;
    if csr.public_key != cert.public_key {
        return Err(CaRefusal::CsrKeyMismatch(
            "the certificate's key is not the key the request proved possession of".into(),
        )
        .into());
    }
    let csr_key_id = p256_key_id(&csr.public_key)?;
    if namespace == party.name {
        let device = SubjectRef::new(ics_identity::DEVICE, p.device.to_string());
        let Some(state) = ctx.read::<Identity>(&device) else {
            return Err(CaRefusal::UnknownDevice(device.to_string()).into());
        };
        let Detail::Device {
            serial,
            device_key,
            status,
            ..
        } = &state.detail
        else {
            return Err(CaRefusal::UnknownDevice(device.to_string()).into());
        };
        if matches!(
            status,
            DeviceStatus::Stolen | DeviceStatus::Destroyed | DeviceStatus::Retired
        ) {
            return Err(CaRefusal::DeviceNotEnrollable {
                device: device.to_string(),
                status: status.name().to_string(),
            }
            .into());
        }
        let found = csr.common_name.clone().unwrap_or_default();
        if &found != serial {
            return Err(CaRefusal::CsrSubjectMismatch {
                found,
                serial: serial.clone(),
            }
            .into());
        }
        if x509::common_name(&cert).map_err(CaRefusal::bad)?.as_ref() != Some(serial) {
            return Err(CaRefusal::bad(format!(
                "its common name is not the device's serial {serial:?}"
            )));
        }
        let is_device_key = uncompressed(device_key).as_deref() == Some(csr.public_key.as_slice());
        match ca.purpose {
            Purpose::Factory if !is_device_key => {
                return Err(CaRefusal::CsrKeyMismatch(format!(
                    "a factory certificate certifies the registered key of {device}; the request's key {csr_key_id} is not it"
                ))
                .into());
            }
            Purpose::Operational if !is_device_key => {
                claims.extend(fresh_key(ctx, &csr_key_id, namespace, p.device)?)
            }
            _ => {}
        }
    } else {
        if !ctx.recognizes(namespace) {
            return Err(CaRefusal::UnknownDevice(format!(
                "{namespace}/device/{} (not a party this one recognizes)",
                p.device
            ))
            .into());
        }
        if ca.purpose == Purpose::Factory {
            return Err(CaRefusal::WrongPurpose(
                "a factory certificate is for this party's own devices".into(),
            )
            .into());
        }
        // Another party's device: its state was checked where the key signed
        // (the enrollment edge, against this party's imported records); the
        // rule checks what it sees here.
        if csr.common_name.as_deref().is_none_or(str::is_empty) {
            return Err(CaRefusal::CsrSubjectMismatch {
                found: String::new(),
                serial: "(the device's serial)".into(),
            }
            .into());
        }
        claims.extend(fresh_key(ctx, &csr_key_id, namespace, p.device)?);
    }
    let authenticated_by = match p.authenticated_by {
        "" => None,
        h if h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) => {
            Some(h.to_string())
        }
        _ => {
            return Err(Refusal::field(
                "authenticated_by",
                "must be a SHA-256 fingerprint in lowercase hex",
            ));
        }
    };
    let mut attributes = Default::default();
    let mut trace = Trace::default();
    let renews = match p.renews {
        "" => None,
        serial => {
            let renewed =
                match ctx.read::<DeviceCa>(&SubjectRef::new(DEVICE_CERT, serial.to_string())) {
                    Some(CaSubject::Cert(c)) => c,
                    _ => {
                        return Err(CaRefusal::BadRenewal(format!(
                            "renews {serial}, which this party did not issue"
                        ))
                        .into());
                    }
                };
            if renewed.device_namespace != namespace || renewed.device != p.device {
                return Err(CaRefusal::BadRenewal(format!(
                    "renews {serial}, a certificate of another device"
                ))
                .into());
            }
            // A revoked certificate is not renewed (its key may be in other
            // hands), nor a factory one (enrollment, not renewal, follows it).
            if renewed.revoked.is_some() || renewed.purpose != Purpose::Operational {
                return Err(CaRefusal::BadRenewal(format!(
                    "renews {serial}, which is revoked or not an operational certificate"
                ))
                .into());
            }
            attributes = renewed.attributes.clone();
            trace = renewed.trace.clone();
            Some(serial.to_string())
        }
    };
    Ok(CaSubject::Cert(Box::new(DeviceCert {
        certificate: p.certificate.to_vec(),
        ca: author.to_hex(),
        purpose: ca.purpose,
        device_namespace: namespace.to_string(),
        device: p.device.to_string(),
        fingerprint: cert.fingerprint_hex(),
        not_before_ms: cert.not_before_ms,
        not_after_ms: cert.not_after_ms,
        authenticated_by,
        renews,
        revoked: None,
        attributes,
        trace,
    })))
}

/// The claim space of keys operational certificates certify.
pub const OPERATIONAL_KEY_SPACE: &str = "operational-key";

/// An operational key is fresh: it identifies nothing else in this log, and
/// no other device's certificate certifies it. The first certificate of a
/// key claims it; a later one for the same device (a renewal that keeps
/// the key) claims nothing new.
fn fresh_key(
    ctx: &Ctx<'_>,
    key: &KeyId,
    namespace: &str,
    device: &str,
) -> Result<Option<Claim>, Refusal> {
    ctx.check_key_free(key)
        .map_err(|_| Refusal::from(CaRefusal::KeyNotFresh(key.to_string())))?;
    let claim = Claim::new(OPERATIONAL_KEY_SPACE, key.to_hex());
    match ctx.claim_owner(&claim) {
        None => Ok(Some(claim)),
        Some(owner) => match ctx.read::<DeviceCa>(owner) {
            Some(CaSubject::Cert(c)) if c.device_namespace == namespace && c.device == device => {
                Ok(None)
            }
            _ => Err(CaRefusal::KeyNotFresh(format!("{key} (certified for {owner})")).into()),
        },
    }
}

fn revoke(
    ctx: &Ctx<'_>,
    cert: &DeviceCert,
    reason: RevocationReason,
    comment: &str,
) -> Result<CaSubject, Refusal> {
    let subject = ctx.subject().to_string();
    ctx.limits.check_text("comment", comment)?;
    let author = ctx.body().author;
    if author != ctx.party().root_key && author.to_hex() != cert.ca {
        return Err(CaRefusal::NotIssuer {
            subject,
            author: author.to_string(),
        }
        .into());
    }
    if cert.revoked.is_some() {
        return Err(CaRefusal::AlreadyRevoked(subject).into());
    }
    let mut next = cert.clone();
    next.revoked = Some(Revocation {
        reason,
        comment: comment.to_string(),
        time_ms: ctx.time_ms(),
    });
    Ok(CaSubject::Cert(Box::new(next)))
}

fn set_attributes(
    ctx: &Ctx<'_>,
    cert: &DeviceCert,
    set: &[(String, String)],
    removed: &[String],
) -> Result<CaSubject, Refusal> {
    if set.is_empty() && removed.is_empty() {
        return Err(Refusal::field("set", "sets or removes nothing"));
    }
    let mut next = cert.clone();
    let mut named = BTreeSet::new();
    for name in removed {
        check_name("removed", name)?;
        if !named.insert(name.as_str()) {
            return Err(Refusal::field(
                "removed",
                format!("{name:?} is named twice"),
            ));
        }
        if next.attributes.remove(name).is_none() {
            return Err(Refusal::field(
                "removed",
                format!("{name:?} is not an attribute of {}", ctx.subject()),
            ));
        }
    }
    for (name, value) in set {
        check_name("set.name", name)?;
        ctx.limits.check_text("set.value", value)?;
        if !named.insert(name.as_str()) {
            return Err(Refusal::field(
                "set.name",
                format!("{name:?} is named twice"),
            ));
        }
        next.attributes.insert(name.clone(), value.clone());
    }
    if next.attributes.len() > ctx.limits.max_attributes {
        return Err(Refusal::field(
            "set",
            format!(
                "{} attributes, over the limit of {}",
                next.attributes.len(),
                ctx.limits.max_attributes
            ),
        ));
    }
    Ok(CaSubject::Cert(Box::new(next)))
}

fn set_route(ctx: &Ctx<'_>, cert: &DeviceCert, stations: &[String]) -> Result<CaSubject, Refusal> {
    if stations.is_empty() || stations.len() > MAX_ROUTE_STATIONS {
        return Err(Refusal::field(
            "stations",
            format!(
                "{} stations; a route names 1 to {MAX_ROUTE_STATIONS}",
                stations.len()
            ),
        ));
    }
    let mut seen = BTreeSet::new();
    for s in stations {
        check_name("stations", s)?;
        if !seen.insert(s.as_str()) {
            return Err(Refusal::field("stations", format!("{s:?} is named twice")));
        }
    }
    let _ = ctx;
    let mut next = cert.clone();
    // A new route starts the trace over.
    next.trace = Trace {
        route: stations.to_vec(),
        seen: Vec::new(),
        out_of_order: None,
    };
    Ok(CaSubject::Cert(Box::new(next)))
}

fn record_station(ctx: &Ctx<'_>, cert: &DeviceCert, station: &str) -> Result<CaSubject, Refusal> {
    let subject = ctx.subject().to_string();
    if cert.trace.route.is_empty() {
        return Err(CaRefusal::NoRoute(subject).into());
    }
    if !cert.trace.route.iter().any(|s| s == station) {
        return Err(CaRefusal::UnknownStation {
            subject,
            station: station.to_string(),
        }
        .into());
    }
    if cert.trace.seen.len() >= MAX_SIGHTINGS {
        return Err(Refusal::field(
            "station",
            format!("{subject} already has {MAX_SIGHTINGS} sightings, the limit"),
        ));
    }
    let mut next = cert.clone();
    let expected = cert.trace.route.get(cert.trace.seen.len());
    if expected.map(String::as_str) != Some(station) && next.trace.out_of_order.is_none() {
        // Recorded all the same: the sighting happened, and the log keeps the
        // evidence; Verify refuses the device from now on.
        next.trace.out_of_order = Some(match expected {
            Some(e) => format!("seen at {station:?} when {e:?} was due"),
            None => format!("seen at {station:?} after the route was complete"),
        });
    }
    next.trace.seen.push((station.to_string(), ctx.time_ms()));
    Ok(CaSubject::Cert(Box::new(next)))
}
