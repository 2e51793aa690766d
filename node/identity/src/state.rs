//! What the identity capability keeps of its subjects, and its indexes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use ics_kernel::{EventId, KeyId, PublicKey, SubjectRef};

use crate::openpgp::DeviceCertificate;
use crate::payload::{CodeIdentity, CodeStatus, DeviceStatus, EndorsementKind};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Detail {
    Device {
        serial: String,
        device_key: PublicKey,
        attributes: Vec<(String, String)>,
        status: DeviceStatus,
        /// The device's OpenPGP certificate, when registered with one.
        openpgp: Option<Box<DeviceCertificate>>,
    },
    Code {
        identity: CodeIdentity,
        status: CodeStatus,
    },
    Service {
        name: String,
        service_key: PublicKey,
        endpoints: Vec<String>,
        owner: String,
    },
}

impl Detail {
    /// The key that identifies a device or service now (rotation replaces it).
    pub fn current_key(&self) -> Option<&PublicKey> {
        match self {
            Detail::Device { device_key, .. } => Some(device_key),
            Detail::Service { service_key, .. } => Some(service_key),
            Detail::Code { .. } => None,
        }
    }

    pub fn certificate(&self) -> Option<&DeviceCertificate> {
        match self {
            Detail::Device { openpgp, .. } => openpgp.as_deref(),
            _ => None,
        }
    }
}

/// A device, service or code identity and the endorsements on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityState {
    pub detail: Detail,
    pub endorsements: Vec<Endorsement>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endorsement {
    /// The event that made it.
    pub id: EventId,
    pub party: String,
    pub kind: EndorsementKind,
    pub scope: String,
    pub not_after_ms: i64,
    pub withdrawn: bool,
    /// Key that signed the endorsement (and its OpenPGP certification).
    pub author: KeyId,
    pub openpgp_certification: Option<Vec<u8>>,
    pub openpgp_revocation: Option<Vec<u8>>,
}

impl IdentityState {
    /// The device's or code's current status.
    pub fn status(&self) -> Option<&'static str> {
        match &self.detail {
            Detail::Device { status, .. } => Some(status.name()),
            Detail::Code { status, .. } => Some(status.name()),
            Detail::Service { .. } => None,
        }
    }

    pub fn summary(&self) -> String {
        match &self.detail {
            Detail::Device {
                serial,
                status,
                attributes,
                openpgp,
                ..
            } => {
                let mut attrs: Vec<String> =
                    attributes.iter().map(|(k, v)| format!("{k}={v}")).collect();
                if let Some(c) = openpgp {
                    attrs.push(format!("openpgp={}", c.fingerprint_hex()));
                }
                format!(
                    "device serial={serial} status={} {}",
                    status.name(),
                    attrs.join(" ")
                )
                .trim_end()
                .to_string()
            }
            Detail::Service {
                name,
                owner,
                endpoints,
                service_key,
            } => format!(
                "service {name} owner={owner} key={} endpoints={}",
                service_key.id(),
                endpoints.join(",")
            ),
            Detail::Code { identity, status } => format!(
                "code {}@{} status={} sha256={}",
                identity.name,
                identity.version,
                status.name(),
                hex::encode(identity.sha256)
            ),
        }
    }
}

/// Lookups queries need: by key id (current and rotated-out keys), by
/// OpenPGP fingerprint, and OpenPGP fingerprints by 64-bit key id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityIndex {
    pub(crate) by_key: BTreeMap<KeyId, SubjectRef>,
    pub(crate) by_openpgp_fingerprint: BTreeMap<[u8; 20], SubjectRef>,
    pub(crate) openpgp_key_ids: BTreeMap<[u8; 8], [u8; 20]>,
}

impl IdentityIndex {
    pub fn subject_by_key(&self, id: &KeyId) -> Option<&SubjectRef> {
        self.by_key.get(id)
    }

    pub fn device_by_openpgp_fingerprint(&self, fingerprint: &[u8; 20]) -> Option<&SubjectRef> {
        self.by_openpgp_fingerprint.get(fingerprint)
    }

    pub fn openpgp_fingerprint_by_key_id(&self, key_id: &[u8; 8]) -> Option<&[u8; 20]> {
        self.openpgp_key_ids.get(key_id)
    }

    pub(crate) fn update(&mut self, subject: &SubjectRef, after: &IdentityState) {
        // Keys are never removed: a rotated-out key still finds its subject.
        if let Some(key) = after.detail.current_key() {
            self.by_key.insert(key.id(), subject.clone());
        }
        if let Some(c) = after.detail.certificate() {
            self.by_openpgp_fingerprint
                .insert(c.fingerprint, subject.clone());
            self.openpgp_key_ids.insert(c.key_id(), c.fingerprint);
        }
    }
}
