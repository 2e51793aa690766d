//! Party roles and what each may author. The table is data: the rules in
//! `decide` look it up, and no handler branches on a role.

use serde::{Deserialize, Serialize};

use super::event::EventKind;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Manufacturer,
    Developer,
    Maintenance,
    Infield,
    Certifier,
}

/// Kinds every party authors: its genesis and author keys, the other parties
/// it recognizes and the access it grants them, and withdrawing its own
/// endorsements.
const PARTY_KINDS: [EventKind; 6] = [
    EventKind::PartyGenesis,
    EventKind::AuthorKeyRegistered,
    EventKind::AuthorKeyRevoked,
    EventKind::PartyRecognized,
    EventKind::AccessGranted,
    EventKind::EndorsementWithdrawn,
];

/// Services on the HTTP port beside health and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpService {
    /// HKP keyserver of the device certificates the party registers.
    Hkp,
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        Role::from_name(s).ok_or_else(|| {
            format!("unknown role {s:?} (manufacturer, developer, maintenance, infield, certifier)")
        })
    }
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Manufacturer,
        Role::Developer,
        Role::Maintenance,
        Role::Infield,
        Role::Certifier,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Role::Manufacturer => "manufacturer",
            Role::Developer => "developer",
            Role::Maintenance => "maintenance",
            Role::Infield => "infield",
            Role::Certifier => "certifier",
        }
    }

    pub fn from_name(name: &str) -> Option<Role> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }

    /// Record kinds a party of this role authors, beside its own genesis and keys.
    ///
    /// Manufacturers register the devices they make; maintainers and infield
    /// gateways register devices whose keys are made at setup time, and track
    /// status, and endorse (integrator approval, maintainership); developers
    /// release code; certification bodies endorse with trust labels. Parties
    /// that run the system (maintenance, infield) register its network
    /// services; whoever registers keyed identities rotates their keys.
    pub fn record_kinds(self) -> &'static [EventKind] {
        match self {
            Role::Manufacturer => &[
                EventKind::DeviceRegistered,
                EventKind::DeviceStatusChanged,
                EventKind::KeyRotated,
            ],
            Role::Infield => &[
                EventKind::DeviceRegistered,
                EventKind::DeviceStatusChanged,
                EventKind::ServiceRegistered,
                EventKind::KeyRotated,
            ],
            Role::Maintenance => &[
                EventKind::DeviceRegistered,
                EventKind::DeviceStatusChanged,
                EventKind::ServiceRegistered,
                EventKind::KeyRotated,
                EventKind::Endorsed,
            ],
            Role::Developer => &[EventKind::CodeReleased, EventKind::CodeStatusChanged],
            Role::Certifier => &[EventKind::Endorsed],
        }
    }

    /// HTTP services a node of this role mounts: parties that register
    /// devices serve their OpenPGP certificates over HKP.
    pub fn http_services(self) -> &'static [HttpService] {
        match self {
            Role::Manufacturer | Role::Maintenance | Role::Infield => &[HttpService::Hkp],
            Role::Developer | Role::Certifier => &[],
        }
    }

    pub fn may_author(self, kind: EventKind) -> bool {
        PARTY_KINDS.contains(&kind) || self.record_kinds().contains(&kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_keeps_its_own_keys_and_names_round_trip() {
        for role in Role::ALL {
            assert_eq!(Role::from_name(role.name()), Some(role));
            for k in PARTY_KINDS {
                assert!(role.may_author(k), "{role:?} {k:?}");
            }
        }
        assert!(Role::Developer.may_author(EventKind::CodeReleased));
        assert!(!Role::Developer.may_author(EventKind::DeviceRegistered));
        assert!(!Role::Manufacturer.may_author(EventKind::CodeReleased));
        assert!(!Role::Certifier.may_author(EventKind::DeviceStatusChanged));
        assert!(Role::Certifier.may_author(EventKind::Endorsed));
    }
}
