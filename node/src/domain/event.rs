//! Event bodies, envelopes and the subjects they are about.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::keys::{Algorithm, KeyId, PublicKey};
use super::openpgp::DeviceSignatures;

/// The only body schema this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// blake3 of an event's body bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EventId(pub [u8; 32]);

impl EventId {
    pub fn of_body(body: &[u8]) -> Self {
        EventId(*blake3::hash(body).as_bytes())
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(EventId)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({})", &self.to_hex()[..16])
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SubjectKind {
    Party,
    AuthorKey,
    Device,
    Code,
    Service,
}

impl SubjectKind {
    pub fn name(self) -> &'static str {
        match self {
            SubjectKind::Party => "party",
            SubjectKind::AuthorKey => "author-key",
            SubjectKind::Device => "device",
            SubjectKind::Code => "code",
            SubjectKind::Service => "service",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "party" => Some(SubjectKind::Party),
            "author-key" => Some(SubjectKind::AuthorKey),
            "device" => Some(SubjectKind::Device),
            "code" => Some(SubjectKind::Code),
            "service" => Some(SubjectKind::Service),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SubjectRef {
    pub kind: SubjectKind,
    pub id: String,
}

impl SubjectRef {
    pub fn new(kind: SubjectKind, id: impl Into<String>) -> Self {
        SubjectRef {
            kind,
            id: id.into(),
        }
    }
}

impl fmt::Display for SubjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.name(), self.id)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EventKind {
    PartyGenesis,
    AuthorKeyRegistered,
    AuthorKeyRevoked,
    DeviceRegistered,
    DeviceStatusChanged,
    CodeReleased,
    CodeStatusChanged,
    PartyRecognized,
    AccessGranted,
    Endorsed,
    EndorsementWithdrawn,
    ServiceRegistered,
    KeyRotated,
}

impl EventKind {
    pub const ALL: [EventKind; 13] = [
        EventKind::PartyGenesis,
        EventKind::AuthorKeyRegistered,
        EventKind::AuthorKeyRevoked,
        EventKind::DeviceRegistered,
        EventKind::DeviceStatusChanged,
        EventKind::CodeReleased,
        EventKind::CodeStatusChanged,
        EventKind::PartyRecognized,
        EventKind::AccessGranted,
        EventKind::Endorsed,
        EventKind::EndorsementWithdrawn,
        EventKind::ServiceRegistered,
        EventKind::KeyRotated,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EventKind::PartyGenesis => "party-genesis",
            EventKind::AuthorKeyRegistered => "author-key-registered",
            EventKind::AuthorKeyRevoked => "author-key-revoked",
            EventKind::DeviceRegistered => "device-registered",
            EventKind::DeviceStatusChanged => "device-status-changed",
            EventKind::CodeReleased => "code-released",
            EventKind::CodeStatusChanged => "code-status-changed",
            EventKind::PartyRecognized => "party-recognized",
            EventKind::AccessGranted => "access-granted",
            EventKind::Endorsed => "endorsed",
            EventKind::EndorsementWithdrawn => "endorsement-withdrawn",
            EventKind::ServiceRegistered => "service-registered",
            EventKind::KeyRotated => "key-rotated",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The kinds of subject events of this kind may be about.
    pub fn subject_kinds(self) -> &'static [SubjectKind] {
        match self {
            EventKind::PartyGenesis | EventKind::PartyRecognized => &[SubjectKind::Party],
            EventKind::AuthorKeyRegistered | EventKind::AuthorKeyRevoked => {
                &[SubjectKind::AuthorKey]
            }
            EventKind::DeviceRegistered | EventKind::DeviceStatusChanged => &[SubjectKind::Device],
            EventKind::CodeReleased | EventKind::CodeStatusChanged => &[SubjectKind::Code],
            EventKind::ServiceRegistered => &[SubjectKind::Service],
            EventKind::KeyRotated => &[SubjectKind::Device, SubjectKind::Service],
            // Records other parties may attach to an identity.
            EventKind::AccessGranted | EventKind::Endorsed | EventKind::EndorsementWithdrawn => {
                &[SubjectKind::Device, SubjectKind::Code, SubjectKind::Service]
            }
        }
    }

    /// Whether events of this kind open a subject's history (sequence 0).
    pub fn creates_subject(self) -> bool {
        matches!(
            self,
            EventKind::PartyGenesis
                | EventKind::PartyRecognized
                | EventKind::AuthorKeyRegistered
                | EventKind::DeviceRegistered
                | EventKind::CodeReleased
                | EventKind::ServiceRegistered
        )
    }
}

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

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    PartyGenesis {
        party_name: String,
        role: String,
        root_key: PublicKey,
    },
    AuthorKeyRegistered {
        key: PublicKey,
        label: String,
        allowed_kinds: BTreeSet<EventKind>,
        not_after_ms: i64,
    },
    AuthorKeyRevoked {
        reason: String,
    },
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
    PartyRecognized {
        role: String,
        root_key: PublicKey,
    },
    AccessGranted {
        party: String,
        kinds: BTreeSet<EventKind>,
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
}

impl Payload {
    pub fn kind(&self) -> EventKind {
        match self {
            Payload::PartyGenesis { .. } => EventKind::PartyGenesis,
            Payload::AuthorKeyRegistered { .. } => EventKind::AuthorKeyRegistered,
            Payload::AuthorKeyRevoked { .. } => EventKind::AuthorKeyRevoked,
            Payload::DeviceRegistered { .. } => EventKind::DeviceRegistered,
            Payload::DeviceStatusChanged { .. } => EventKind::DeviceStatusChanged,
            Payload::CodeReleased(_) => EventKind::CodeReleased,
            Payload::CodeStatusChanged { .. } => EventKind::CodeStatusChanged,
            Payload::PartyRecognized { .. } => EventKind::PartyRecognized,
            Payload::AccessGranted { .. } => EventKind::AccessGranted,
            Payload::Endorsed { .. } => EventKind::Endorsed,
            Payload::EndorsementWithdrawn { .. } => EventKind::EndorsementWithdrawn,
            Payload::ServiceRegistered { .. } => EventKind::ServiceRegistered,
            Payload::KeyRotated { .. } => EventKind::KeyRotated,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventBody {
    pub schema_version: u32,
    pub subject: SubjectRef,
    pub sequence: u64,
    pub previous: Option<EventId>,
    pub author: KeyId,
    pub time_ms: i64,
    pub payload: Payload,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub key_id: KeyId,
    pub algorithm: Algorithm,
    pub bytes: Vec<u8>,
}

/// An event as it travels: the exact body bytes and the signatures over them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub body: Vec<u8>,
    pub signatures: Vec<Signature>,
}

/// An envelope whose body decoded: ready for `decide`. Signatures are not
/// yet verified; that needs the state that knows the keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub id: EventId,
    pub envelope: Envelope,
    pub body: EventBody,
}
