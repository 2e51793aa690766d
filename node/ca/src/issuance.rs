//! `device-cert-issued`: a certificate an issuing CA signed, recorded with
//! the request the device signed; for this party's own devices the device,
//! its status and its key are checked; an operational key certifies one
//! device.

use ics_identity::payload::DeviceStatus;
use ics_identity::{Detail, Identity};
use ics_kernel::capability::{Claim, Ctx};
use ics_kernel::{KeyId, Refusal, SubjectRef};
use ics_pki::ParsedCert;

use crate::{
    CaRefusal, CaSubject, DEVICE_CERT, DeviceCa, DeviceCert, Purpose, Trace, bound_ca,
    check_lifetime, check_valid_at, p256_key_id, uncompressed, x509,
};

pub(crate) struct Issuance<'p> {
    pub(crate) certificate: &'p [u8],
    pub(crate) csr: &'p [u8],
    pub(crate) device_namespace: &'p str,
    pub(crate) device: &'p str,
    pub(crate) authenticated_by: &'p str,
    pub(crate) renews: &'p str,
}

pub(crate) fn issue(
    ctx: &Ctx<'_>,
    p: &Issuance<'_>,
    claims: &mut Vec<Claim>,
) -> Result<CaSubject, Refusal> {
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
