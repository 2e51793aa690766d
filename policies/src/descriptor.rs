//! A policy descriptor: the readable text an operator writes (TOML), parsed
//! into what the evaluator reads. The text is what the root key signs and
//! what the log keeps; this parse is a pure function of it, so every replica
//! reads the same policy from the same bytes.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// The largest descriptor text, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// Peers one descriptor names.
pub const MAX_PEERS: usize = 64;
/// Domains one descriptor defines.
pub const MAX_DOMAINS: usize = 256;
/// Read and import rules together.
pub const MAX_RULES: usize = 1024;
/// Explicit ids and names over all domains.
pub const MAX_LISTED_SUBJECTS: usize = 10_000;
/// Endpoints per peer.
pub const MAX_ENDPOINTS: usize = 8;
/// Kind names per rule.
pub const MAX_RULE_KINDS: usize = 64;
/// Attribute conditions per domain.
pub const MAX_DOMAIN_ATTRIBUTES: usize = 16;
/// Names (party, domain, rule, attribute) and values, in bytes.
pub const MAX_NAME_BYTES: usize = 128;
/// A peer's TLS CA certificate in PEM.
pub const MAX_TLS_CA_BYTES: usize = 8 * 1024;
/// The longest staleness a peer may be given: a year.
pub const MAX_STALENESS_SECONDS: u64 = 366 * 24 * 3600;

/// The subject kinds a domain may select: the records parties exchange.
/// A `device-cert` subject is read as the device it certifies.
pub const DOMAIN_SUBJECT_KINDS: [&str; 4] = ["device", "device-cert", "service", "code"];

/// Defaults of `[quotas]`.
pub const DEFAULT_EVENTS_PER_MINUTE: u64 = 60_000;
pub const DEFAULT_MAX_RECORDS_PER_SUBJECT: u64 = 1_000;
pub const DEFAULT_MAX_EVENT_BYTES: u64 = 64 * 1024;
pub const DEFAULT_MAX_EVENTS_PER_PULL: u64 = 10_000;

/// A party's policy: who its peers are, how its records are grouped into
/// domains, what each peer may read and what this party imports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Descriptor {
    /// The party the descriptor is of: the one whose log holds it.
    pub party: String,
    /// 1 for the first descriptor, then one more per published one.
    pub version: u64,
    #[serde(default, rename = "peer")]
    pub peers: Vec<Peer>,
    #[serde(default, rename = "domain")]
    pub domains: Vec<Domain>,
    /// What peers may read from this party, per domain and kind.
    #[serde(default, rename = "read")]
    pub reads: Vec<Rule>,
    /// What this party takes from each peer, per domain and kind.
    #[serde(default, rename = "import")]
    pub imports: Vec<Rule>,
    #[serde(default)]
    pub quotas: Quotas,
}

/// Another party this one exchanges records with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    /// The party's name, as this log recognized it (`party-recognized`).
    pub name: String,
    /// Where its federation service answers, `host:port`.
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// The peer party's TLS CA certificate (PEM): its nodes' certificates
    /// must chain to it, and name nodes of that party.
    pub tls_ca: String,
    /// Overrides `quotas.events_per_minute` for this peer.
    #[serde(default)]
    pub events_per_minute: Option<u64>,
    /// How old the last proven contact with this peer may be before what
    /// came from it answers "unknown" rather than a stale verdict; no limit
    /// when absent.
    #[serde(default)]
    pub max_staleness_seconds: Option<u64>,
}

/// A group of subjects, the unit of a grant. Every condition given must
/// hold; a domain with no condition but its subject kinds holds every
/// subject of those kinds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Domain {
    pub name: String,
    /// Subject kinds: `device`, `device-cert` (a device's certificates),
    /// `service`, `code`.
    pub subjects: Vec<String>,
    /// The party whose records these are (where they were registered);
    /// any party when absent.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Shorthands for the device attributes `manu`, `model`, `site` and
    /// `gateway`.
    #[serde(default)]
    pub manufacturer: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub site: Option<String>,
    #[serde(default)]
    pub gateway: Option<String>,
    /// Attributes that must have these values.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Serials in `[serial_from, serial_to]`, compared as strings.
    #[serde(default)]
    pub serial_from: Option<String>,
    #[serde(default)]
    pub serial_to: Option<String>,
    /// Exactly these subject ids.
    #[serde(default)]
    pub ids: Vec<String>,
    /// Services or code by name.
    #[serde(default)]
    pub names: Vec<String>,
}

/// `Descriptor::import_terms`.
#[derive(Debug, PartialEq, Eq)]
pub struct ImportTerms<'a> {
    rules: Vec<ImportTerm<'a>>,
    max_records_per_subject: u64,
    max_event_bytes: u64,
}

/// An import rule's kinds, window and domain.
type ImportTerm<'a> = (
    &'a [String],
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a Domain>,
);

/// A grant: a peer, a domain, the kinds, and optionally a time window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// A name operators see in `policy explain`.
    #[serde(default)]
    pub name: Option<String>,
    pub peer: String,
    pub domain: String,
    /// Kind names; `"*"` for every kind about the domain's subjects.
    pub kinds: Vec<String>,
    /// RFC 3339 UTC, e.g. `2027-01-01T00:00:00Z`.
    #[serde(default)]
    pub not_before: Option<String>,
    #[serde(default)]
    pub not_after: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quotas {
    /// Events a peer may pull, and this party imports from a peer, per minute.
    #[serde(default = "default_events_per_minute")]
    pub events_per_minute: u64,
    /// Imported records one subject may hold.
    #[serde(default = "default_max_records_per_subject")]
    pub max_records_per_subject: u64,
    /// The largest event imported or served.
    #[serde(default = "default_max_event_bytes")]
    pub max_event_bytes: u64,
    /// Events one pull response carries at most.
    #[serde(default = "default_max_events_per_pull")]
    pub max_events_per_pull: u64,
}

fn default_events_per_minute() -> u64 {
    DEFAULT_EVENTS_PER_MINUTE
}
fn default_max_records_per_subject() -> u64 {
    DEFAULT_MAX_RECORDS_PER_SUBJECT
}
fn default_max_event_bytes() -> u64 {
    DEFAULT_MAX_EVENT_BYTES
}
fn default_max_events_per_pull() -> u64 {
    DEFAULT_MAX_EVENTS_PER_PULL
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            events_per_minute: DEFAULT_EVENTS_PER_MINUTE,
            max_records_per_subject: DEFAULT_MAX_RECORDS_PER_SUBJECT,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            max_events_per_pull: DEFAULT_MAX_EVENTS_PER_PULL,
        }
    }
}

/// What is wrong with a descriptor's text, naming the place.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DocumentError(pub String);

fn bad(msg: impl Into<String>) -> DocumentError {
    DocumentError(msg.into())
}

impl Descriptor {
    /// Parses and checks a descriptor's text: the shape, every limit, every
    /// reference between its parts. What it cannot check alone (peers
    /// recognized, kinds known) the capability's rule checks against the log.
    pub fn parse(text: &str) -> Result<Descriptor, DocumentError> {
        if text.len() > MAX_DOCUMENT_BYTES {
            return Err(bad(format!(
                "the descriptor is {} bytes; at most {MAX_DOCUMENT_BYTES}",
                text.len()
            )));
        }
        let descriptor: Descriptor = toml::from_str(text).map_err(|e| {
            bad(format!(
                "not a policy descriptor: {}",
                e.to_string().trim_end()
            ))
        })?;
        descriptor.check()?;
        Ok(descriptor)
    }

    fn check(&self) -> Result<(), DocumentError> {
        check_name("party", &self.party)?;
        if self.version == 0 {
            return Err(bad("version: the first descriptor is version 1"));
        }
        if self.peers.len() > MAX_PEERS {
            return Err(bad(format!("at most {MAX_PEERS} peers")));
        }
        if self.domains.len() > MAX_DOMAINS {
            return Err(bad(format!("at most {MAX_DOMAINS} domains")));
        }
        if self.reads.len() + self.imports.len() > MAX_RULES {
            return Err(bad(format!("at most {MAX_RULES} read and import rules")));
        }
        let mut peers = BTreeSet::new();
        for peer in &self.peers {
            check_name("peer name", &peer.name)?;
            if peer.name == self.party {
                return Err(bad(format!(
                    "peer {:?}: a party is not its own peer",
                    peer.name
                )));
            }
            if !peers.insert(peer.name.as_str()) {
                return Err(bad(format!("peer {:?} is named twice", peer.name)));
            }
            if peer.endpoints.len() > MAX_ENDPOINTS {
                return Err(bad(format!(
                    "peer {:?}: at most {MAX_ENDPOINTS} endpoints",
                    peer.name
                )));
            }
            for endpoint in &peer.endpoints {
                check_endpoint(endpoint).map_err(|e| {
                    bad(format!("peer {:?}: endpoint {endpoint:?}: {e}", peer.name))
                })?;
            }
            if peer.tls_ca.len() > MAX_TLS_CA_BYTES {
                return Err(bad(format!(
                    "peer {:?}: tls_ca is over {MAX_TLS_CA_BYTES} bytes",
                    peer.name
                )));
            }
            let der = pem_certificate(&peer.tls_ca)
                .map_err(|e| bad(format!("peer {:?}: tls_ca: {e}", peer.name)))?;
            let ca = ics_pki::ParsedCert::parse(&der)
                .map_err(|e| bad(format!("peer {:?}: tls_ca: {e}", peer.name)))?;
            if !ca.is_ca || !ca.key_usage_cert_sign {
                return Err(bad(format!(
                    "peer {:?}: tls_ca is not a CA certificate",
                    peer.name
                )));
            }
            if peer.events_per_minute == Some(0) {
                return Err(bad(format!(
                    "peer {:?}: events_per_minute must be at least 1",
                    peer.name
                )));
            }
            if let Some(s) = peer.max_staleness_seconds
                && !(1..=MAX_STALENESS_SECONDS).contains(&s)
            {
                return Err(bad(format!(
                    "peer {:?}: max_staleness_seconds must be 1 to {MAX_STALENESS_SECONDS}",
                    peer.name
                )));
            }
        }
        let mut domains = BTreeSet::new();
        let mut listed = 0;
        for domain in &self.domains {
            check_name("domain name", &domain.name)?;
            if !domains.insert(domain.name.as_str()) {
                return Err(bad(format!("domain {:?} is defined twice", domain.name)));
            }
            domain
                .check()
                .map_err(|e| bad(format!("domain {:?}: {e}", domain.name)))?;
            listed += domain.ids.len() + domain.names.len();
        }
        if listed > MAX_LISTED_SUBJECTS {
            return Err(bad(format!(
                "the domains list {listed} ids and names; at most {MAX_LISTED_SUBJECTS}"
            )));
        }
        for (section, rules) in [("read", &self.reads), ("import", &self.imports)] {
            for (i, rule) in rules.iter().enumerate() {
                let at = rule_label(section, i, rule);
                if !peers.contains(rule.peer.as_str()) {
                    return Err(bad(format!("{at}: peer {:?} is not a [[peer]]", rule.peer)));
                }
                if !domains.contains(rule.domain.as_str()) {
                    return Err(bad(format!(
                        "{at}: domain {:?} is not a [[domain]]",
                        rule.domain
                    )));
                }
                if let Some(name) = &rule.name {
                    check_name("rule name", name).map_err(|e| bad(format!("{at}: {e}")))?;
                }
                if rule.kinds.is_empty() || rule.kinds.len() > MAX_RULE_KINDS {
                    return Err(bad(format!(
                        "{at}: kinds must name 1 to {MAX_RULE_KINDS} kinds (or \"*\")"
                    )));
                }
                for kind in rule.kinds.iter().filter(|k| *k != "*") {
                    check_name("kind", kind).map_err(|e| bad(format!("{at}: {e}")))?;
                }
                let window = rule.window().map_err(|e| bad(format!("{at}: {e}")))?;
                if let (Some(from), Some(to)) = window
                    && from > to
                {
                    return Err(bad(format!("{at}: not_before is after not_after")));
                }
            }
        }
        let q = &self.quotas;
        for (name, value) in [
            ("events_per_minute", q.events_per_minute),
            ("max_records_per_subject", q.max_records_per_subject),
            ("max_event_bytes", q.max_event_bytes),
            ("max_events_per_pull", q.max_events_per_pull),
        ] {
            if value == 0 {
                return Err(bad(format!("quotas.{name} must be at least 1")));
            }
        }
        Ok(())
    }

    pub fn peer(&self, name: &str) -> Option<&Peer> {
        self.peers.iter().find(|p| p.name == name)
    }

    pub fn domain(&self, name: &str) -> Option<&Domain> {
        self.domains.iter().find(|d| d.name == name)
    }

    /// Events per minute allowed to and from `peer`.
    pub fn events_per_minute(&self, peer: &Peer) -> u64 {
        peer.events_per_minute
            .unwrap_or(self.quotas.events_per_minute)
    }

    /// How old the last contact with `peer` may be, in milliseconds.
    pub fn max_staleness_ms(&self, peer: &str) -> Option<i64> {
        let seconds = self.peer(peer)?.max_staleness_seconds?;
        i64::try_from(seconds).ok()?.checked_mul(1000)
    }

    /// What decides the imports from `peer`: its import rules (their names
    /// aside) with the domains they name, and the quotas an import is held
    /// to. Two versions with equal terms admit the same events from `peer`,
    /// so moving between them needs no re-pull.
    pub fn import_terms(&self, peer: &str) -> ImportTerms<'_> {
        ImportTerms {
            rules: self
                .imports
                .iter()
                .filter(|r| r.peer == peer)
                .map(|r| {
                    (
                        r.kinds.as_slice(),
                        r.not_before.as_deref(),
                        r.not_after.as_deref(),
                        self.domain(&r.domain),
                    )
                })
                .collect(),
            max_records_per_subject: self.quotas.max_records_per_subject,
            max_event_bytes: self.quotas.max_event_bytes,
        }
    }

    /// Every kind name the rules name (to check against the log's kinds).
    pub fn named_kinds(&self) -> BTreeSet<&str> {
        self.reads
            .iter()
            .chain(&self.imports)
            .flat_map(|r| r.kinds.iter().map(String::as_str))
            .filter(|k| *k != "*")
            .collect()
    }
}

impl Domain {
    fn check(&self) -> Result<(), DocumentError> {
        if self.subjects.is_empty() {
            return Err(bad(format!(
                "subjects must name one or more of {DOMAIN_SUBJECT_KINDS:?}"
            )));
        }
        for kind in &self.subjects {
            if !DOMAIN_SUBJECT_KINDS.contains(&kind.as_str()) {
                return Err(bad(format!(
                    "subjects: {kind:?} is not one of {DOMAIN_SUBJECT_KINDS:?}"
                )));
            }
        }
        if let Some(ns) = &self.namespace {
            check_name("namespace", ns)?;
        }
        if self.attributes.len() > MAX_DOMAIN_ATTRIBUTES {
            return Err(bad(format!(
                "at most {MAX_DOMAIN_ATTRIBUTES} attribute conditions"
            )));
        }
        for (name, value) in self.attribute_conditions() {
            check_name("attribute name", name)?;
            check_value("attribute value", value)?;
        }
        for serial in [&self.serial_from, &self.serial_to].into_iter().flatten() {
            check_value("serial", serial)?;
        }
        if let (Some(from), Some(to)) = (&self.serial_from, &self.serial_to)
            && from > to
        {
            return Err(bad("serial_from is after serial_to"));
        }
        for item in self.ids.iter().chain(&self.names) {
            check_value("id or name", item)?;
        }
        Ok(())
    }

    /// Every attribute condition, the shorthands included.
    pub fn attribute_conditions(&self) -> Vec<(&str, &str)> {
        let mut conditions: Vec<(&str, &str)> = [
            ("manu", &self.manufacturer),
            ("model", &self.model),
            ("site", &self.site),
            ("gateway", &self.gateway),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.as_deref().map(|v| (name, v)))
        .collect();
        conditions.extend(
            self.attributes
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        conditions
    }
}

impl Rule {
    /// The rule's window, in milliseconds since the epoch.
    pub fn window(&self) -> Result<(Option<i64>, Option<i64>), DocumentError> {
        let parse = |field: &str, v: &Option<String>| {
            v.as_deref()
                .map(|t| parse_utc(t).map_err(|e| bad(format!("{field}: {e}"))))
                .transpose()
        };
        Ok((
            parse("not_before", &self.not_before)?,
            parse("not_after", &self.not_after)?,
        ))
    }
}

/// How a rule is named in errors and explanations: `read #2 "status"`.
pub fn rule_label(section: &str, index: usize, rule: &Rule) -> String {
    match &rule.name {
        Some(name) => format!("{section} rule #{} {name:?}", index + 1),
        None => format!("{section} rule #{}", index + 1),
    }
}

fn check_name(what: &str, name: &str) -> Result<(), DocumentError> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(bad(format!("{what} must be 1 to {MAX_NAME_BYTES} bytes")));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(bad(format!(
            "{what} {name:?}: letters, digits, '-', '_' and '.' only"
        )));
    }
    Ok(())
}

fn check_value(what: &str, value: &str) -> Result<(), DocumentError> {
    if value.is_empty() || value.len() > MAX_NAME_BYTES || value.chars().any(char::is_control) {
        return Err(bad(format!(
            "{what} {value:?}: 1 to {MAX_NAME_BYTES} bytes, no control characters"
        )));
    }
    Ok(())
}

fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let (host, port) = endpoint.rsplit_once(':').ok_or("must be host:port")?;
    if host.is_empty() || host.len() > 253 || host.chars().any(|c| c.is_control() || c == '/') {
        return Err("the host is not a host name or address".into());
    }
    port.parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or("the port is not 1 to 65535")?;
    Ok(())
}

/// The DER of a PEM `CERTIFICATE` block.
pub fn pem_certificate(pem: &str) -> Result<Vec<u8>, String> {
    let (label, der) =
        der::pem::decode_vec(pem.trim().as_bytes()).map_err(|e| format!("not PEM: {e}"))?;
    if label != "CERTIFICATE" {
        return Err(format!("a PEM {label}, not a CERTIFICATE"));
    }
    Ok(der)
}

/// Milliseconds since the epoch of `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339, UTC,
/// whole seconds): the one form rules take, so a window reads the same to
/// every replica and every operator.
pub fn parse_utc(text: &str) -> Result<i64, String> {
    let err = || format!("{text:?} is not YYYY-MM-DDTHH:MM:SSZ");
    let b = text.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return Err(err());
    }
    let num = |range: std::ops::Range<usize>| -> Result<i64, String> {
        let s = &text[range];
        if !s.bytes().all(|c| c.is_ascii_digit()) {
            return Err(err());
        }
        s.parse::<i64>().map_err(|_| err())
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(err()),
    };
    if day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 59 {
        return Err(err());
    }
    Ok((days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second) * 1_000)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times_parse_to_epoch_milliseconds() {
        assert_eq!(parse_utc("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_utc("2000-03-01T00:00:00Z"), Ok(951_868_800_000));
        assert_eq!(parse_utc("2024-02-29T23:59:59Z"), Ok(1_709_251_199_000));
        assert_eq!(parse_utc("2027-01-01T00:00:00Z"), Ok(1_798_761_600_000));
        for bad in [
            "2023-02-29T00:00:00Z",
            "2027-13-01T00:00:00Z",
            "2027-01-01T24:00:00Z",
            "2027-01-01 00:00:00Z",
            "2027-01-01T00:00:00+01:00",
            "2027-1-01T00:00:00Z",
            "+027-01-01T00:00:00Z",
        ] {
            assert!(parse_utc(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn endpoints_are_host_and_port() {
        assert!(check_endpoint("127.0.0.1:7600").is_ok());
        assert!(check_endpoint("[::1]:7600").is_ok());
        assert!(check_endpoint("maint-1.example:443").is_ok());
        for bad in ["127.0.0.1", ":7600", "h:0", "h:99999", "https://h:1/x"] {
            assert!(check_endpoint(bad).is_err(), "{bad} accepted");
        }
    }
}
