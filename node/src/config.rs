//! The node's one config struct: TOML, then flags on top, validated once at
//! start. Every limit has a name and a default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use ics_kernel::EventLimits;

pub use ics_kernel::Role;

/// How a node with an empty data dir joins a cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Bootstrap {
    /// No peers: initialize a single-node cluster. With peers: the node with
    /// the lowest id initializes the cluster of all of them.
    Auto,
    /// Wait for `icsctl cluster init` or to be added by a running cluster.
    Manual,
}

pub use ics_client::member::Peer;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaftTuning {
    pub heartbeat_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Build a snapshot after this many log entries since the last one.
    pub snapshot_after_entries: u64,
    /// Log entries kept behind a snapshot, for followers slightly behind.
    pub entries_kept_after_snapshot: u64,
}

impl Default for RaftTuning {
    fn default() -> Self {
        RaftTuning {
            heartbeat_ms: 150,
            election_timeout_min_ms: 750,
            election_timeout_max_ms: 1500,
            snapshot_after_entries: 5000,
            entries_kept_after_snapshot: 500,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// The limits a new party's genesis starts with (the node that appends
    /// the genesis writes its own). From then on the log's rules decide and
    /// this setting plays no part; `icsctl rules change` changes them.
    pub events: EventLimits,
    /// Encoded size of one append request's events.
    pub max_batch_bytes: usize,
    /// How far an event's time may be from this node's clock when it arrives.
    pub max_clock_skew_ms: i64,
    /// Largest gRPC message this node reads or writes.
    pub max_message_bytes: usize,
    /// Largest snapshot a follower accepts.
    pub max_snapshot_bytes: usize,
    /// Connections the peer listener holds at once (handshakes included).
    pub max_peer_connections: usize,
    /// Connections the client gRPC listener holds at once (after their
    /// handshake); more are closed at once.
    pub max_client_connections: usize,
    /// Connections the HTTP listener holds at once; more are closed at once.
    pub max_http_connections: usize,
    /// How long an HTTP connection may take to send a request's headers,
    /// including an idle keep-alive connection's wait for its next request.
    pub http_header_timeout_ms: u64,
    /// Concurrent gRPC streams per connection.
    pub max_concurrent_streams: u32,
    /// Requests the client API serves at once, over all connections; more
    /// wait (within request_timeout_ms).
    pub max_concurrent_requests: usize,
    /// Watch streams the node serves at once (each holds a task and a
    /// buffer); more are refused (WATCHERS_FULL).
    pub max_watchers: usize,
    /// Append requests waiting for the writer.
    pub max_pending_appends: usize,
    /// Append requests this node accepts per second from all its clients
    /// (token bucket), and the burst it absorbs above that rate; each node
    /// forwarding to this one has a budget of the same size of its own.
    pub max_appends_per_second: u32,
    pub append_burst: u32,
    /// Append requests one client (its certificate, else its address) may
    /// send per second, and its burst: a flood spends its sender's budget.
    /// Charged after the request decodes.
    pub max_appends_per_client_per_second: u32,
    pub append_client_burst: u32,
    /// HKP lookups this node answers per second (token bucket), and the burst.
    pub max_hkp_lookups_per_second: u32,
    pub hkp_burst: u32,
    /// HKP lookups one client (certificate, else address) may make per
    /// second, and its burst.
    pub max_hkp_lookups_per_client_per_second: u32,
    pub hkp_client_burst: u32,
    /// Transparency log tiles (hash tiles and entry bundles, 256 items each)
    /// this node serves per second, and the burst; then per client.
    pub max_tile_reads_per_second: u32,
    pub tile_burst: u32,
    pub max_tile_reads_per_client_per_second: u32,
    pub tile_client_burst: u32,
    /// sled page cache.
    pub cache_bytes: u64,
    /// Deadline of a client API request (a client's own grpc-timeout may be shorter).
    pub request_timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            events: EventLimits::default(),
            max_batch_bytes: 1024 * 1024,
            max_clock_skew_ms: 5 * 60 * 1000,
            max_message_bytes: 4 * 1024 * 1024,
            max_snapshot_bytes: 1024 * 1024 * 1024,
            max_peer_connections: 64,
            max_client_connections: 1024,
            max_http_connections: 512,
            http_header_timeout_ms: 10_000,
            max_concurrent_streams: 256,
            max_concurrent_requests: 1024,
            max_watchers: 256,
            max_pending_appends: 4096,
            max_appends_per_second: 20_000,
            append_burst: 2_000,
            max_appends_per_client_per_second: 10_000,
            append_client_burst: 1_000,
            max_hkp_lookups_per_second: 10_000,
            hkp_burst: 1_000,
            max_hkp_lookups_per_client_per_second: 5_000,
            hkp_client_burst: 500,
            max_tile_reads_per_second: 2_000,
            tile_burst: 500,
            max_tile_reads_per_client_per_second: 500,
            tile_client_burst: 200,
            cache_bytes: 64 * 1024 * 1024,
            request_timeout_ms: 10_000,
        }
    }
}

/// The node's TLS material (see `tls.rs`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// Where the CA, the node's and the operator's certificates live;
    /// `<data_dir>/tls` when unset.
    pub dir: Option<PathBuf>,
    /// How long the node certificates this node issues are valid; renewed at
    /// two thirds of it.
    pub cert_lifetime_secs: u64,
    /// Names (DNS or IP) a node certificate carries besides the advertised
    /// and listen hosts.
    pub names: Vec<String>,
    /// Who may read from the client API and the HTTP side: `open` (anyone;
    /// a client certificate is still checked when sent, and needed for
    /// administration) or `required` (a certificate of this party's CA).
    pub clients: ClientAccess,
}

/// Whether the client API and the HTTP side require a client certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ClientAccess {
    /// A public ICS: reads need no certificate (appends stay authenticated
    /// by their signatures).
    Open,
    /// A private ICS: every connection needs a certificate of the party CA.
    Required,
}

/// The shortest certificate lifetime a node accepts (renewal runs at most
/// every tenth of it).
pub const MIN_CERT_LIFETIME_SECS: u64 = 60;

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            dir: None,
            cert_lifetime_secs: 7 * 24 * 3600,
            names: Vec::new(),
            clients: ClientAccess::Open,
        }
    }
}

impl TlsSettings {
    pub fn cert_lifetime(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.cert_lifetime_secs)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub role: Role,
    pub party: String,
    pub node_id: u64,
    pub data_dir: PathBuf,
    /// gRPC: the client API.
    pub listen: SocketAddr,
    /// Address clients use to reach this node's API (and that its
    /// certificate names).
    pub advertise: Option<String>,
    /// gRPC over mutual TLS between the party's nodes: the Raft transport and
    /// forwarding to the leader. Membership holds these addresses.
    pub peer_listen: SocketAddr,
    /// Address the other nodes use to reach this node's peer listener.
    pub advertise_peer: Option<String>,
    /// HTTPS: health, readiness, metrics, HKP.
    pub http_listen: SocketAddr,
    /// The same HTTP side without TLS, for stock tools that cannot be given
    /// the party CA (plain `hkp://`) and local scrapers; loopback only.
    pub http_plain_listen: Option<SocketAddr>,
    /// gRPC over mutual TLS with other parties' nodes (the `Federation`
    /// service): the address peers' policies name as this party's endpoint.
    /// No federation listener when absent.
    pub federation_listen: Option<SocketAddr>,
    /// HTTPS for devices that authenticate with their own certificates:
    /// enrollment (RFC 7030 EST) and data ingestion. Where the role runs a
    /// device CA; none when absent.
    pub device_listen: Option<SocketAddr>,
    pub bootstrap: Bootstrap,
    pub peers: Vec<Peer>,
    pub raft: RaftTuning,
    pub limits: Limits,
    pub tls: TlsSettings,
    pub tlog: TlogSettings,
    pub federation: FederationSettings,
    pub ca: CaSettings,
}

/// The device CA's issuance settings on this node (see `device_ca.rs`).
/// Not consensus rules: the log's rules cap what any node may issue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaSettings {
    /// Where relying parties reach this party's CRLs and OCSP responder
    /// (`http://host:port`); issued certificates name them. None: they
    /// carry no distribution point.
    pub base_url: Option<String>,
    /// How long a factory certificate is valid unless the request asks less.
    pub factory_lifetime_days: u64,
    /// How long an operational certificate is valid unless the request asks
    /// less; devices re-enroll before it ends.
    pub operational_lifetime_days: u64,
    /// The attributes (NAME=VALUE) a device certificate must carry beside it
    /// for the ingestion endpoint to take its data. Deny by default: a
    /// device is let in by setting them.
    pub ingest_expect: Vec<String>,
}

impl CaSettings {
    /// `ingest_expect` as (name, value) pairs (checked by `validate`).
    pub fn ingest_expectations(&self) -> Vec<(String, String)> {
        self.ingest_expect
            .iter()
            .filter_map(|e| e.split_once('='))
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }
}

impl Default for CaSettings {
    fn default() -> Self {
        CaSettings {
            base_url: None,
            factory_lifetime_days: 20 * 365,
            operational_lifetime_days: 90,
            ingest_expect: vec!["ingest=allowed".to_string()],
        }
    }
}

/// How often the leader pulls from each peer the policy names (with an
/// endpoint and a bound log key). Per node: when to ask is not a rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FederationSettings {
    pub pull_interval_ms: u64,
    /// How long one pull may take before it is abandoned and retried.
    pub pull_timeout_ms: u64,
    /// When a peer has nothing new, how often the leader still records the
    /// contact (a `federation-synced` at the same size), so every replica
    /// knows how fresh the peer's records are (`max_staleness_seconds`).
    pub contact_interval_ms: u64,
}

impl Default for FederationSettings {
    fn default() -> Self {
        FederationSettings {
            pull_interval_ms: 1000,
            pull_timeout_ms: 30_000,
            contact_interval_ms: 60_000,
        }
    }
}

/// When the leader signs a checkpoint of the transparency log: once this
/// many events wait for one, or this long after the first of them arrived,
/// whichever comes first. Not a consensus rule (any committed size may be
/// signed), so per node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlogSettings {
    pub checkpoint_max_events: u64,
    pub checkpoint_interval_ms: u64,
}

/// The shortest checkpoint interval a node takes: each checkpoint is a
/// Raft write.
pub const MIN_CHECKPOINT_INTERVAL_MS: u64 = 50;

/// The shortest interval between a leader's pulls from one peer.
pub const MIN_PULL_INTERVAL_MS: u64 = 50;

impl Default for TlogSettings {
    fn default() -> Self {
        TlogSettings {
            checkpoint_max_events: 1024,
            checkpoint_interval_ms: 500,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            role: Role::Maintenance,
            party: "maintenance".to_string(),
            node_id: 1,
            data_dir: PathBuf::from("ics-data"),
            listen: "127.0.0.1:7400".parse().expect("literal address"),
            advertise: None,
            peer_listen: "127.0.0.1:7440".parse().expect("literal address"),
            advertise_peer: None,
            http_listen: "127.0.0.1:7480".parse().expect("literal address"),
            http_plain_listen: None,
            federation_listen: None,
            device_listen: None,
            bootstrap: Bootstrap::Auto,
            peers: Vec::new(),
            raft: RaftTuning::default(),
            limits: Limits::default(),
            tls: TlsSettings::default(),
            tlog: TlogSettings::default(),
            federation: FederationSettings::default(),
            ca: CaSettings::default(),
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read config {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parse config {}", path.display()))
    }

    pub fn advertise_address(&self) -> String {
        self.advertise
            .clone()
            .unwrap_or_else(|| self.listen.to_string())
    }

    /// Where the other nodes reach this node's peer listener.
    pub fn advertise_peer_address(&self) -> String {
        self.advertise_peer
            .clone()
            .unwrap_or_else(|| self.peer_listen.to_string())
    }

    /// Checks the whole config once; the node trusts it afterwards.
    pub fn validate(&self) -> anyhow::Result<()> {
        let Config {
            role: _,
            party,
            node_id,
            data_dir,
            listen: _,
            advertise,
            peer_listen: _,
            advertise_peer,
            http_listen: _,
            http_plain_listen,
            federation_listen: _,
            device_listen: _,
            bootstrap: _,
            peers,
            raft,
            limits,
            tls,
            tlog,
            federation,
            ca,
        } = self;
        if let Some(url) = &ca.base_url
            && (!(url.starts_with("http://") || url.starts_with("https://"))
                || url.ends_with('/')
                || url.len() > 200
                || !url.is_ascii())
        {
            bail!(
                "ca.base_url {url:?} must be http(s)://host[:port][/path] without a trailing slash"
            );
        }
        let max_factory = ics_ca::x509::MAX_FACTORY_LIFETIME.as_secs() / 86_400;
        let max_operational = ics_ca::x509::MAX_OPERATIONAL_LIFETIME.as_secs() / 86_400;
        if ca.factory_lifetime_days == 0 || ca.factory_lifetime_days > max_factory {
            bail!("ca.factory_lifetime_days must be 1 to {max_factory}");
        }
        if ca.operational_lifetime_days == 0 || ca.operational_lifetime_days > max_operational {
            bail!("ca.operational_lifetime_days must be 1 to {max_operational}");
        }
        for e in &ca.ingest_expect {
            let named = e
                .split_once('=')
                .is_some_and(|(n, _)| ics_kernel::limits::check_name("ingest_expect", n).is_ok());
            if !named {
                bail!("ca.ingest_expect {e:?} must be NAME=VALUE");
            }
        }
        if party.is_empty()
            || party.len() > 64
            || !party
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            bail!("party {party:?} must be 1-64 characters of [A-Za-z0-9-_.]");
        }
        if *node_id == 0 {
            bail!("node_id must be positive");
        }
        if data_dir.as_os_str().is_empty() {
            bail!("data_dir must not be empty");
        }
        for (name, a) in [("advertise", advertise), ("advertise_peer", advertise_peer)] {
            if let Some(a) = a
                && !a.contains(':')
            {
                bail!("{name} {a:?} must be HOST:PORT");
            }
        }
        if let Some(plain) = http_plain_listen
            && !plain.ip().is_loopback()
        {
            bail!(
                "http_plain_listen {plain} must be a loopback address: off the machine, HTTP is served over TLS only"
            );
        }
        if http_plain_listen.is_some() && tls.clients == ClientAccess::Required {
            bail!(
                "http_plain_listen serves without a certificate, which tls.clients = \"required\" forbids"
            );
        }
        let mut ids = std::collections::BTreeSet::new();
        for p in peers {
            if !ids.insert(p.id) {
                bail!("peer id {} is listed twice", p.id);
            }
            if p.id == *node_id && p.address != self.advertise_peer_address() {
                bail!(
                    "peer {} is this node but its address {} differs from the advertised peer address {}",
                    p.id,
                    p.address,
                    self.advertise_peer_address()
                );
            }
        }
        if raft.heartbeat_ms == 0 || raft.election_timeout_min_ms <= raft.heartbeat_ms * 2 {
            bail!("raft.election_timeout_min_ms must be more than twice raft.heartbeat_ms");
        }
        if raft.election_timeout_max_ms <= raft.election_timeout_min_ms {
            bail!("raft.election_timeout_max_ms must exceed raft.election_timeout_min_ms");
        }
        if raft.snapshot_after_entries == 0 {
            bail!("raft.snapshot_after_entries must be positive");
        }
        let e = &limits.events;
        if e.max_body_bytes == 0 || e.max_batch_events == 0 || e.max_signatures == 0 {
            bail!(
                "limits.events: max_body_bytes, max_batch_events and max_signatures must be positive"
            );
        }
        if limits.max_batch_bytes > crate::log::store::MAX_ENTRY_BYTES {
            bail!(
                "limits.max_batch_bytes {} is over the log entry limit {}",
                limits.max_batch_bytes,
                crate::log::store::MAX_ENTRY_BYTES
            );
        }
        if limits.max_message_bytes < limits.max_batch_bytes + 64 * 1024 {
            bail!("limits.max_message_bytes must exceed limits.max_batch_bytes by 64 KiB");
        }
        if limits.max_clock_skew_ms <= 0 {
            bail!("limits.max_clock_skew_ms must be positive");
        }
        if limits.max_appends_per_second == 0 || limits.append_burst == 0 {
            bail!("limits.max_appends_per_second and limits.append_burst must be positive");
        }
        if limits.max_hkp_lookups_per_second == 0 || limits.hkp_burst == 0 {
            bail!("limits.max_hkp_lookups_per_second and limits.hkp_burst must be positive");
        }
        if limits.max_appends_per_client_per_second == 0
            || limits.append_client_burst == 0
            || limits.max_hkp_lookups_per_client_per_second == 0
            || limits.hkp_client_burst == 0
            || limits.max_tile_reads_per_second == 0
            || limits.tile_burst == 0
            || limits.max_tile_reads_per_client_per_second == 0
            || limits.tile_client_burst == 0
        {
            bail!("limits: the per-client and tile rates and bursts must be positive");
        }
        if limits.max_pending_appends == 0
            || limits.max_concurrent_requests == 0
            || limits.max_watchers == 0
            || limits.max_peer_connections == 0
            || limits.max_http_connections == 0
            || limits.max_client_connections == 0
            || limits.http_header_timeout_ms == 0
            || limits.request_timeout_ms == 0
        {
            bail!(
                "limits.max_pending_appends, max_concurrent_requests, max_watchers, max_peer_connections, \
                 max_client_connections, max_http_connections, http_header_timeout_ms and request_timeout_ms must be positive"
            );
        }
        let max_lifetime = u64::try_from(ics_pki::MAX_LEAF_LIFETIME_MS / 1000).unwrap_or(u64::MAX);
        if !(MIN_CERT_LIFETIME_SECS..=max_lifetime).contains(&tls.cert_lifetime_secs) {
            bail!(
                "tls.cert_lifetime_secs must be {MIN_CERT_LIFETIME_SECS}..={max_lifetime} (certificates are short-lived)"
            );
        }
        if tlog.checkpoint_max_events == 0
            || tlog.checkpoint_interval_ms < MIN_CHECKPOINT_INTERVAL_MS
        {
            bail!(
                "tlog.checkpoint_max_events must be positive and tlog.checkpoint_interval_ms at least {MIN_CHECKPOINT_INTERVAL_MS}"
            );
        }
        if federation.pull_interval_ms < MIN_PULL_INTERVAL_MS || federation.pull_timeout_ms == 0 {
            bail!(
                "federation.pull_interval_ms must be at least {MIN_PULL_INTERVAL_MS} and federation.pull_timeout_ms positive"
            );
        }
        if federation.contact_interval_ms < federation.pull_interval_ms {
            bail!("federation.contact_interval_ms must be at least federation.pull_interval_ms");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_round_trips_through_toml() {
        let c = Config::default();
        c.validate().unwrap();
        let text = toml::to_string(&c).unwrap();
        assert_eq!(toml::from_str::<Config>(&text).unwrap(), c);
    }

    #[test]
    fn refuses_unknown_fields_and_bad_limits() {
        assert!(toml::from_str::<Config>("nodeid = 3").is_err());
        let mut c = Config::default();
        c.raft.election_timeout_min_ms = c.raft.heartbeat_ms;
        assert!(c.validate().is_err());
        let mut c = Config::default();
        c.limits.max_batch_bytes = 10 * 1024 * 1024;
        assert!(c.validate().is_err());
        let c: Config = toml::from_str("peers = [\"1=10.0.0.1:1\", \"2=10.0.0.2:1\"]").unwrap();
        assert_eq!(c.peers[1].address, "10.0.0.2:1");
        assert!(c.validate().unwrap_err().to_string().contains("differs"));
    }

    #[test]
    fn plain_http_only_on_loopback_and_only_for_an_open_ics() {
        let mut c = Config {
            http_plain_listen: Some("127.0.0.1:7481".parse().unwrap()),
            ..Config::default()
        };
        c.validate().unwrap();
        c.http_plain_listen = Some("0.0.0.0:7481".parse().unwrap());
        assert!(c.validate().unwrap_err().to_string().contains("loopback"));
        c.http_plain_listen = Some("[::1]:7481".parse().unwrap());
        c.validate().unwrap();
        c.tls.clients = ClientAccess::Required;
        assert!(c.validate().unwrap_err().to_string().contains("required"));
    }
}
