//! The PKI subjects' state and the indexes queries use.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::cert::Holder;

/// A PKI subject: a bound CA or a certificate it issued.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PkiState {
    Ca(CaState),
    Cert(CertState),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaState {
    /// DER, as bound.
    pub certificate: Vec<u8>,
    pub fingerprint: String,
    pub not_after_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertState {
    /// DER, as issued.
    pub certificate: Vec<u8>,
    pub holder: Holder,
    /// The hex key id of the CA key that issued it.
    pub ca: String,
    pub fingerprint: String,
    pub not_before_ms: i64,
    pub not_after_ms: i64,
    pub revoked: Option<Revocation>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub reason: String,
    pub time_ms: i64,
}

impl CertState {
    /// Whether the certificate is good at `now_ms`: issued, in its validity
    /// period and not revoked.
    pub fn is_current(&self, now_ms: i64) -> bool {
        self.revoked.is_none() && self.not_before_ms <= now_ms && now_ms < self.not_after_ms
    }
}

impl PkiState {
    pub fn summary(&self) -> String {
        match self {
            PkiState::Ca(ca) => format!("TLS CA sha256:{}", ca.fingerprint),
            PkiState::Cert(c) => format!(
                "TLS certificate of {} sha256:{}{}",
                c.holder,
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
            PkiState::Ca(_) => Some("bound"),
            PkiState::Cert(c) if c.revoked.is_some() => Some("revoked"),
            PkiState::Cert(_) => Some("issued"),
        }
    }
}

/// Lookups by holder and by fingerprint, and the revoked set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PkiIndex {
    /// Serial numbers (hex) of each holder's certificates.
    pub by_holder: BTreeMap<Holder, BTreeSet<String>>,
    /// Certificate SHA-256 (hex) to serial number (hex).
    pub by_fingerprint: BTreeMap<String, String>,
    /// Fingerprints of revoked certificates.
    pub revoked: BTreeSet<String>,
}

impl PkiIndex {
    pub(crate) fn update(&mut self, serial: &str, after: &PkiState) {
        if let PkiState::Cert(c) = after {
            self.by_holder
                .entry(c.holder.clone())
                .or_default()
                .insert(serial.to_string());
            self.by_fingerprint
                .insert(c.fingerprint.clone(), serial.to_string());
            if c.revoked.is_some() {
                self.revoked.insert(c.fingerprint.clone());
            }
        }
    }
}
