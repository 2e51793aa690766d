//! A cluster member as operators write it: `ID=HOST:PORT`.

use serde::{Deserialize, Serialize};

/// A cluster member, written `ID=HOST:PORT` in flags and TOML.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Peer {
    pub id: u64,
    pub address: String,
}

impl TryFrom<String> for Peer {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Peer> for String {
    fn from(p: Peer) -> String {
        format!("{}={}", p.id, p.address)
    }
}

impl std::str::FromStr for Peer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (id, address) = s
            .split_once('=')
            .ok_or_else(|| format!("peer {s:?} must be ID=HOST:PORT"))?;
        let id = id
            .parse()
            .map_err(|_| format!("peer {s:?}: id {id:?} is not a number"))?;
        Ok(Peer {
            id,
            address: address.to_string(),
        })
    }
}
