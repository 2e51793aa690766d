//! Party roles. A role is chosen at genesis and is replicated state from
//! then on; each event kind lists the roles that author it
//! (`KindSpec::authored_by`), so no handler branches on a role.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Manufacturer,
    Developer,
    Maintenance,
    Infield,
    Certifier,
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
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        Role::from_name(s).ok_or_else(|| {
            format!("unknown role {s:?} (manufacturer, developer, maintenance, infield, certifier)")
        })
    }
}
