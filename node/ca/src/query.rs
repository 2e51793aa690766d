//! What relying parties ask the device CA: is this certificate one it
//! issued, in its validity, not revoked, are the attributes kept beside it
//! what the asker expects, did the device pass its way stations in order;
//! which CAs are bound; a device's certificates.

use ics_kernel::{CapState, SubjectRef};

use crate::state::{CaRecord, CaSubject, DeviceCert};
use crate::{DEVICE_CA, DEVICE_CERT, DeviceCa, Purpose};

/// One reason a certificate does not pass, with its machine-readable name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The bytes are not a certificate this party's CA issued.
    NotIssuedHere,
    /// Its issuing CA, or that CA's root, is outside its validity.
    CaExpired(String),
    NotYetValid {
        not_before_ms: i64,
    },
    Expired {
        not_after_ms: i64,
    },
    Revoked {
        reason: String,
        time_ms: i64,
    },
    AttributeMismatch {
        name: String,
        expected: String,
        found: Option<String>,
    },
    TraceOutOfOrder(String),
}

impl Problem {
    pub fn reason(&self) -> &'static str {
        match self {
            Problem::NotIssuedHere => "NOT_ISSUED_HERE",
            Problem::CaExpired(_) => "CA_EXPIRED",
            Problem::NotYetValid { .. } => "NOT_YET_VALID",
            Problem::Expired { .. } => "EXPIRED",
            Problem::Revoked { .. } => "REVOKED",
            Problem::AttributeMismatch { .. } => "ATTRIBUTE_MISMATCH",
            Problem::TraceOutOfOrder(_) => "TRACE_OUT_OF_ORDER",
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::NotIssuedHere => write!(f, "not a certificate this party's device CA issued"),
            Problem::CaExpired(ca) => write!(f, "its CA {ca} is outside its validity"),
            Problem::NotYetValid { not_before_ms } => {
                write!(f, "not valid before {not_before_ms} ms")
            }
            Problem::Expired { not_after_ms } => write!(f, "expired at {not_after_ms} ms"),
            Problem::Revoked { reason, time_ms } => {
                write!(f, "revoked ({reason}) at {time_ms} ms")
            }
            Problem::AttributeMismatch {
                name,
                expected,
                found: Some(found),
            } => write!(f, "attribute {name} is {found:?}, not {expected:?}"),
            Problem::AttributeMismatch { name, expected, .. } => {
                write!(f, "attribute {name} is not set (expected {expected:?})")
            }
            Problem::TraceOutOfOrder(what) => write!(f, "way stations out of order: {what}"),
        }
    }
}

/// The verdict on one certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict<'a> {
    /// The record, when this party issued the certificate.
    pub serial: Option<&'a str>,
    pub cert: Option<&'a DeviceCert>,
    /// Empty: the certificate passes.
    pub problems: Vec<Problem>,
}

impl Verdict<'_> {
    pub fn passes(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The certificate with this SHA-256 fingerprint (hex), if this party issued it.
pub fn cert_by_fingerprint<'a>(
    ca: &'a CapState<DeviceCa>,
    fingerprint: &str,
) -> Option<(&'a str, &'a DeviceCert)> {
    let serial = ca.index().by_fingerprint.get(fingerprint)?;
    cert_by_serial(ca, serial)
}

/// The certificate with this serial (hex), if this party issued it.
pub fn cert_by_serial<'a>(
    ca: &'a CapState<DeviceCa>,
    serial: &str,
) -> Option<(&'a str, &'a DeviceCert)> {
    match ca.subject_entry(&SubjectRef::new(DEVICE_CERT, serial.to_string())) {
        Some((s, CaSubject::Cert(c))) => Some((s.id.as_str(), c)),
        _ => None,
    }
}

/// The bound CA with this id.
pub fn ca_by_id<'a>(ca: &'a CapState<DeviceCa>, id: &str) -> Option<&'a CaRecord> {
    match ca.subject(&SubjectRef::new(DEVICE_CA, id.to_string())) {
        Some(CaSubject::Ca(r)) => Some(r),
        _ => None,
    }
}

/// The bound CAs: (id, record), in id order.
pub fn bound_cas(ca: &CapState<DeviceCa>) -> Vec<(&str, &CaRecord)> {
    ca.subjects()
        .filter(|(s, _)| s.kind == DEVICE_CA)
        .filter_map(|(s, st)| match st {
            CaSubject::Ca(r) => Some((s.id.as_str(), r)),
            CaSubject::Cert(_) => None,
        })
        .collect()
}

/// The chain a relying party installs for an issuing CA: the issuing CA's
/// certificate, then its root's (DER).
pub fn chain_of<'a>(ca: &'a CapState<DeviceCa>, id: &str) -> Option<Vec<&'a [u8]>> {
    let record = ca_by_id(ca, id)?;
    let mut chain = vec![record.certificate.as_slice()];
    if let Some(root) = record.issuer.as_deref().and_then(|r| ca_by_id(ca, r)) {
        chain.push(root.certificate.as_slice());
    }
    Some(chain)
}

/// The bound issuing CA of `purpose`, if one is (the newest-expiring).
pub fn issuing_ca(ca: &CapState<DeviceCa>, purpose: Purpose) -> Option<(&str, &CaRecord)> {
    bound_cas(ca)
        .into_iter()
        .filter(|(_, r)| r.purpose == purpose)
        .max_by_key(|(_, r)| r.not_after_ms)
}

/// A device's certificates: (serial, record), newest expiry last.
pub fn certs_of_device<'a>(
    ca: &'a CapState<DeviceCa>,
    namespace: &str,
    device: &str,
) -> Vec<(&'a str, &'a DeviceCert)> {
    let mut out: Vec<(&str, &DeviceCert)> = ca
        .index()
        .by_device
        .get(&(namespace.to_string(), device.to_string()))
        .into_iter()
        .flatten()
        .filter_map(|serial| cert_by_serial(ca, serial))
        .collect();
    out.sort_by_key(|(_, c)| c.not_after_ms);
    out
}

/// Verify: the certificate (by its SHA-256, hex) is one this party issued,
/// its CA and root are in their validity, it is in its own and not revoked,
/// each expected attribute has the expected value, and its trace is in
/// order. Every problem found is listed.
pub fn verify<'a>(
    ca: &'a CapState<DeviceCa>,
    fingerprint: &str,
    expected: &[(String, String)],
    now_ms: i64,
) -> Verdict<'a> {
    let Some((serial, cert)) = cert_by_fingerprint(ca, fingerprint) else {
        return Verdict {
            serial: None,
            cert: None,
            problems: vec![Problem::NotIssuedHere],
        };
    };
    let mut problems = Vec::new();
    let mut ca_id = Some(cert.ca.as_str());
    while let Some(id) = ca_id {
        match ca_by_id(ca, id) {
            Some(r) if r.not_after_ms > now_ms => ca_id = r.issuer.as_deref(),
            _ => {
                problems.push(Problem::CaExpired(id.to_string()));
                break;
            }
        }
    }
    if now_ms < cert.not_before_ms {
        problems.push(Problem::NotYetValid {
            not_before_ms: cert.not_before_ms,
        });
    }
    if now_ms >= cert.not_after_ms {
        problems.push(Problem::Expired {
            not_after_ms: cert.not_after_ms,
        });
    }
    if let Some(r) = &cert.revoked {
        problems.push(Problem::Revoked {
            reason: r.reason.name().to_string(),
            time_ms: r.time_ms,
        });
    }
    for (name, value) in expected {
        let found = cert.attributes.get(name);
        if found != Some(value) {
            problems.push(Problem::AttributeMismatch {
                name: name.clone(),
                expected: value.clone(),
                found: found.cloned(),
            });
        }
    }
    if let Some(what) = &cert.trace.out_of_order {
        problems.push(Problem::TraceOutOfOrder(what.clone()));
    }
    Verdict {
        serial: Some(serial),
        cert: Some(cert),
        problems,
    }
}
