//! The device CA's subjects and the indexes its queries and status services
//! (CRL, OCSP, Verify) read.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::payload::{Purpose, RevocationReason};

/// A device CA subject: a bound CA or a device certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CaSubject {
    Ca(CaRecord),
    Cert(Box<DeviceCert>),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaRecord {
    /// DER, as bound.
    pub certificate: Vec<u8>,
    pub purpose: Purpose,
    /// The root that signed it (its subject id); `None` for a root.
    pub issuer: Option<String>,
    pub fingerprint: String,
    pub not_after_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceCert {
    /// DER, as issued.
    pub certificate: Vec<u8>,
    /// The issuing CA's subject id (its key id, hex).
    pub ca: String,
    pub purpose: Purpose,
    /// The party whose log holds the device identity.
    pub device_namespace: String,
    pub device: String,
    pub fingerprint: String,
    pub not_before_ms: i64,
    pub not_after_ms: i64,
    /// SHA-256 (hex) of the client certificate the enrollment came with.
    pub authenticated_by: Option<String>,
    pub renews: Option<String>,
    pub revoked: Option<Revocation>,
    /// Kept beside the certificate, not in it: changed by events, checked by Verify.
    pub attributes: BTreeMap<String, String>,
    pub trace: Trace,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub reason: RevocationReason,
    pub comment: String,
    pub time_ms: i64,
}

/// Track and trace: the way stations a device must pass in order, and
/// where it was seen.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trace {
    pub route: Vec<String>,
    /// (station, event time) in the order recorded.
    pub seen: Vec<(String, i64)>,
    /// The first sighting out of order, said for people.
    pub out_of_order: Option<String>,
}

impl DeviceCert {
    /// In its validity period at `now_ms` (revocation aside).
    pub fn in_validity(&self, now_ms: i64) -> bool {
        self.not_before_ms <= now_ms && now_ms < self.not_after_ms
    }
}

impl CaSubject {
    pub fn summary(&self) -> String {
        match self {
            CaSubject::Ca(ca) => {
                format!("{} device CA sha256:{}", ca.purpose.name(), ca.fingerprint)
            }
            CaSubject::Cert(c) => format!(
                "{} certificate of device {}/{} sha256:{}{}",
                c.purpose.name(),
                c.device_namespace,
                c.device,
                c.fingerprint,
                if c.revoked.is_some() {
                    " (revoked)"
                } else {
                    ""
                }
            ),
        }
    }

    pub fn status(&self) -> Option<&'static str> {
        match self {
            CaSubject::Ca(_) => Some("bound"),
            CaSubject::Cert(c) if c.revoked.is_some() => Some("revoked"),
            CaSubject::Cert(_) => Some("issued"),
        }
    }
}

/// Lookups by device and fingerprint, and per issuing CA what its CRL lists.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaIndex {
    /// Serials (hex) of each device's certificates, by (namespace, device).
    pub by_device: BTreeMap<(String, String), BTreeSet<String>>,
    /// Certificate SHA-256 (hex) to serial (hex).
    pub by_fingerprint: BTreeMap<String, String>,
    /// Per issuing CA: the serials it revoked.
    pub revoked: BTreeMap<String, BTreeSet<String>>,
}

impl CaIndex {
    pub(crate) fn update(&mut self, serial: &str, after: &CaSubject) {
        if let CaSubject::Cert(c) = after {
            self.by_device
                .entry((c.device_namespace.clone(), c.device.clone()))
                .or_default()
                .insert(serial.to_string());
            self.by_fingerprint
                .insert(c.fingerprint.clone(), serial.to_string());
            if c.revoked.is_some() {
                self.revoked
                    .entry(c.ca.clone())
                    .or_default()
                    .insert(serial.to_string());
            }
        }
    }
}
