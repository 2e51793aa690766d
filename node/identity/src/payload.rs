//! The identity kinds, as data, and their payloads.

use ics_kernel::capability::{KindSpec, Subjects};
use ics_kernel::{EventId, PublicKey, Role};
use serde::{Deserialize, Serialize};

use crate::{CODE, DEVICE, SERVICE};

use Role::*;

const KEYED: &[&str] = &[DEVICE, SERVICE];
const IDENTITIES: &[&str] = &[DEVICE, CODE, SERVICE];

pub static DEVICE_REGISTERED: KindSpec = KindSpec {
    name: "device-registered",
    message: "ics.identity.v1.DeviceRegistered",
    subjects: Subjects::Of(&[DEVICE]),
    opens_subject: true,
    // Manufacturers register the devices they make; maintainers and infield
    // gateways those whose keys are made at setup time.
    authored_by: &[Manufacturer, Maintenance, Infield],
    grantable: false,
};
pub static DEVICE_STATUS_CHANGED: KindSpec = KindSpec {
    name: "device-status-changed",
    message: "ics.identity.v1.DeviceStatusChanged",
    subjects: Subjects::Of(&[DEVICE]),
    opens_subject: false,
    authored_by: &[Manufacturer, Maintenance, Infield],
    grantable: true,
};
pub static SERVICE_REGISTERED: KindSpec = KindSpec {
    name: "service-registered",
    message: "ics.identity.v1.ServiceRegistered",
    subjects: Subjects::Of(&[SERVICE]),
    opens_subject: true,
    // The parties that run the system register its network services.
    authored_by: &[Maintenance, Infield],
    grantable: false,
};
pub static SERVICE_ENDPOINTS_CHANGED: KindSpec = KindSpec {
    name: "service-endpoints-changed",
    message: "ics.identity.v1.ServiceEndpointsChanged",
    subjects: Subjects::Of(&[SERVICE]),
    opens_subject: false,
    authored_by: &[Maintenance, Infield],
    grantable: false,
};
pub static KEY_ROTATED: KindSpec = KindSpec {
    name: "key-rotated",
    message: "ics.identity.v1.KeyRotated",
    subjects: Subjects::Of(KEYED),
    opens_subject: false,
    // Whoever registers keyed identities rotates their keys.
    authored_by: &[Manufacturer, Maintenance, Infield],
    grantable: false,
};
pub static CODE_RELEASED: KindSpec = KindSpec {
    name: "code-released",
    message: "ics.identity.v1.CodeReleased",
    subjects: Subjects::Of(&[CODE]),
    opens_subject: true,
    authored_by: &[Developer],
    grantable: false,
};
pub static CODE_STATUS_CHANGED: KindSpec = KindSpec {
    name: "code-status-changed",
    message: "ics.identity.v1.CodeStatusChanged",
    subjects: Subjects::Of(&[CODE]),
    opens_subject: false,
    authored_by: &[Developer],
    grantable: true,
};
pub static ENDORSED: KindSpec = KindSpec {
    name: "endorsed",
    message: "ics.identity.v1.Endorsed",
    subjects: Subjects::Of(IDENTITIES),
    opens_subject: false,
    // Maintainers endorse (integrator approval, maintainership);
    // certification bodies with trust labels.
    authored_by: &[Maintenance, Certifier],
    grantable: true,
};
pub static ENDORSEMENT_WITHDRAWN: KindSpec = KindSpec {
    name: "endorsement-withdrawn",
    message: "ics.identity.v1.EndorsementWithdrawn",
    subjects: Subjects::Of(IDENTITIES),
    opens_subject: false,
    // Every party withdraws its own endorsements.
    authored_by: &Role::ALL,
    grantable: true,
};

/// Every identity kind; `Identity::kinds()` returns these.
pub static KINDS: [&KindSpec; 9] = [
    &DEVICE_REGISTERED,
    &DEVICE_STATUS_CHANGED,
    &SERVICE_REGISTERED,
    &SERVICE_ENDPOINTS_CHANGED,
    &KEY_ROTATED,
    &CODE_RELEASED,
    &CODE_STATUS_CHANGED,
    &ENDORSED,
    &ENDORSEMENT_WITHDRAWN,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DeviceStatus {
    Planned,
    InUse,
    Retired,
    Destroyed,
    Stolen,
    Lost,
}

impl DeviceStatus {
    pub const ALL: [DeviceStatus; 6] = [
        DeviceStatus::Planned,
        DeviceStatus::InUse,
        DeviceStatus::Retired,
        DeviceStatus::Destroyed,
        DeviceStatus::Stolen,
        DeviceStatus::Lost,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DeviceStatus::Planned => "planned",
            DeviceStatus::InUse => "in-use",
            DeviceStatus::Retired => "retired",
            DeviceStatus::Destroyed => "destroyed",
            DeviceStatus::Stolen => "stolen",
            DeviceStatus::Lost => "lost",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The device lifecycle. Destroyed is final; a stolen or lost device
    /// that is recovered goes back in use; a retired one can only be destroyed.
    pub fn may_become(self, next: DeviceStatus) -> bool {
        use DeviceStatus::*;
        match self {
            Planned => matches!(next, InUse | Retired | Destroyed | Stolen | Lost),
            InUse => matches!(next, Retired | Destroyed | Stolen | Lost),
            Lost => matches!(next, InUse | Stolen | Retired | Destroyed),
            Stolen => matches!(next, InUse | Retired | Destroyed),
            Retired => matches!(next, Destroyed),
            Destroyed => false,
        }
    }
}

/// A code identity's lifecycle: a deprecated release may be reinstated; a
/// withdrawn one is final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CodeStatus {
    Released,
    Deprecated,
    Withdrawn,
}

impl CodeStatus {
    pub const ALL: [CodeStatus; 3] = [
        CodeStatus::Released,
        CodeStatus::Deprecated,
        CodeStatus::Withdrawn,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CodeStatus::Released => "released",
            CodeStatus::Deprecated => "deprecated",
            CodeStatus::Withdrawn => "withdrawn",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    pub fn may_become(self, next: CodeStatus) -> bool {
        use CodeStatus::*;
        matches!(
            (self, next),
            (Released, Deprecated)
                | (Released, Withdrawn)
                | (Deprecated, Released)
                | (Deprecated, Withdrawn)
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EndorsementKind {
    /// The integrator approves the component for the system.
    IntegratorApproval,
    /// The party maintains the component.
    Maintainer,
    /// A certification body's trust label.
    TrustLabel,
}

impl EndorsementKind {
    pub const ALL: [EndorsementKind; 3] = [
        EndorsementKind::IntegratorApproval,
        EndorsementKind::Maintainer,
        EndorsementKind::TrustLabel,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EndorsementKind::IntegratorApproval => "integrator-approval",
            EndorsementKind::Maintainer => "maintainer",
            EndorsementKind::TrustLabel => "trust-label",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// A code identity: digests of an artifact, no key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeIdentity {
    pub name: String,
    pub version: String,
    pub blake3: [u8; 32],
    pub sha256: [u8; 32],
    pub suit_manifest_uri: Option<String>,
    /// OpenPGP standalone signature by the developer key (`hash` notation).
    pub openpgp_signature: Option<Vec<u8>>,
}

impl CodeIdentity {
    /// The identity of an artifact's bytes: its blake3 and SHA-256 digests.
    pub fn of_artifact(
        name: &str,
        version: &str,
        artifact: &[u8],
        suit_manifest_uri: Option<String>,
    ) -> Self {
        use sha2::Digest;
        CodeIdentity {
            name: name.to_string(),
            version: version.to_string(),
            blake3: *blake3::hash(artifact).as_bytes(),
            sha256: sha2::Sha256::digest(artifact).into(),
            suit_manifest_uri,
            openpgp_signature: None,
        }
    }
}

/// The OpenPGP signatures a device registration carries, made at manufacture.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSignatures {
    /// Positive certification of the serial User ID by the device key.
    pub self_signature: Vec<u8>,
    /// The manufacturer's certification with the draft's notations.
    pub certification: Vec<u8>,
    /// blake3 of the escrowed key revocation with reason "key compromised".
    pub revocation_compromised_digest: [u8; 32],
    /// blake3 of the escrowed key revocation with reason "key retired".
    pub revocation_retired_digest: [u8; 32],
}

/// The identity payloads, one per kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentityPayload {
    DeviceRegistered {
        serial: String,
        device_key: PublicKey,
        attributes: Vec<(String, String)>,
        openpgp: Option<DeviceSignatures>,
    },
    DeviceStatusChanged {
        status: DeviceStatus,
        reason: String,
        openpgp_revocation: Option<Vec<u8>>,
    },
    CodeReleased(CodeIdentity),
    CodeStatusChanged {
        status: CodeStatus,
        reason: String,
    },
    Endorsed {
        kind: EndorsementKind,
        scope: String,
        not_after_ms: i64,
        openpgp_certification: Option<Vec<u8>>,
    },
    EndorsementWithdrawn {
        endorsement: EventId,
        reason: String,
        openpgp_revocation: Option<Vec<u8>>,
    },
    ServiceRegistered {
        name: String,
        service_key: PublicKey,
        endpoints: Vec<String>,
        owner: String,
    },
    KeyRotated {
        new_key: PublicKey,
        reason: String,
        openpgp_revocation: Option<Vec<u8>>,
    },
    ServiceEndpointsChanged {
        endpoints: Vec<String>,
    },
}
