//! Prometheus metrics: counters the host bumps, gauges read at scrape time.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Histograms by write stage (`WriteStage`).
type StageFamily = Family<[(&'static str, &'static str); 1], Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    events_appended: Counter,
    appends_refused: Counter,
    raft_entries_written: Counter,
    batches_per_entry: Histogram,
    append_seconds: Histogram,
    write_stage_seconds: StageFamily,
    event_count: Gauge<u64, AtomicU64>,
    term: Gauge<u64, AtomicU64>,
    last_applied: Gauge<u64, AtomicU64>,
    is_leader: Gauge,
    hkp_lookups: Counter,
    snapshots_refused: Counter,
    connections_accepted: Family<[(&'static str, &'static str); 1], Counter>,
    connections_refused: Family<[(&'static str, &'static str); 1], Counter>,
    tls_node_cert_expiry: Gauge,
    tls_ca_cert_expiry: Gauge,
    checkpoints_signed: Counter,
    checkpoints_cosigned: Counter,
    federation_segments_served: Family<[(&'static str, String); 1], Counter>,
    federation_bytes_served: Family<[(&'static str, String); 1], Counter>,
    federation_pulls_over_quota: Family<[(&'static str, String); 1], Counter>,
    federation_imported: Family<[(&'static str, String); 1], Counter>,
    federation_import_refused: Family<[(&'static str, String); 1], Counter>,
    federation_pull_failures: Family<[(&'static str, String); 1], Counter>,
    federation_cursor: Family<[(&'static str, String); 1], Gauge>,
    federation_lag: Family<[(&'static str, String); 1], Gauge>,
    checkpoint_size: Gauge<u64, AtomicU64>,
    ca_served: Family<[(&'static str, &'static str); 1], Counter>,
    ca_refused: Family<[(&'static str, &'static str); 1], Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut m = Metrics {
            registry: Registry::with_prefix("ics"),
            events_appended: Counter::default(),
            appends_refused: Counter::default(),
            raft_entries_written: Counter::default(),
            batches_per_entry: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            append_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 18)),
            write_stage_seconds: Family::new_with_constructor(stage_histogram),
            event_count: Gauge::default(),
            term: Gauge::default(),
            last_applied: Gauge::default(),
            is_leader: Gauge::default(),
            hkp_lookups: Counter::default(),
            snapshots_refused: Counter::default(),
            connections_accepted: Family::default(),
            connections_refused: Family::default(),
            tls_node_cert_expiry: Gauge::default(),
            tls_ca_cert_expiry: Gauge::default(),
            checkpoints_signed: Counter::default(),
            checkpoints_cosigned: Counter::default(),
            federation_segments_served: Family::default(),
            federation_bytes_served: Family::default(),
            federation_pulls_over_quota: Family::default(),
            federation_imported: Family::default(),
            federation_import_refused: Family::default(),
            federation_pull_failures: Family::default(),
            federation_cursor: Family::default(),
            federation_lag: Family::default(),
            checkpoint_size: Gauge::default(),
            ca_served: Family::default(),
            ca_refused: Family::default(),
        };
        let r = &mut m.registry;
        r.register(
            "events_appended",
            "Events appended through this node as leader",
            m.events_appended.clone(),
        );
        r.register(
            "appends_refused",
            "Append requests refused",
            m.appends_refused.clone(),
        );
        r.register(
            "raft_entries_written",
            "Raft entries proposed by the writer",
            m.raft_entries_written.clone(),
        );
        r.register(
            "batches_per_entry",
            "Client batches grouped into one Raft entry",
            m.batches_per_entry.clone(),
        );
        r.register(
            "append_seconds",
            "Append latency on the leader, receipt to reply",
            m.append_seconds.clone(),
        );
        r.register(
            "write_stage_seconds",
            "Time in each stage of the write path: the writer's pre-check, the \
             Raft round (proposal to applied), the Raft log's sync, the state machine's apply",
            m.write_stage_seconds.clone(),
        );
        r.register(
            "event_count",
            "Events in the applied log",
            m.event_count.clone(),
        );
        r.register("raft_term", "Current Raft term", m.term.clone());
        r.register(
            "raft_last_applied",
            "Last applied Raft log index",
            m.last_applied.clone(),
        );
        r.register(
            "raft_is_leader",
            "1 when this node is the leader",
            m.is_leader.clone(),
        );
        r.register(
            "hkp_lookups",
            "HKP lookups answered (any result)",
            m.hkp_lookups.clone(),
        );
        r.register(
            "snapshots_refused",
            "Snapshots from a peer refused before install (stale vote, inconsistent meta, \
             or a state that does not extend this node's applied log): an alarm",
            m.snapshots_refused.clone(),
        );
        r.register(
            "connections_accepted",
            "Connections accepted per listener (peer, grpc, http, http_plain), after the TLS \
             handshake on a TLS listener (connections are reused: a steady cluster makes few)",
            m.connections_accepted.clone(),
        );
        r.register(
            "connections_refused",
            "Connections refused per listener: over a cap, no or a failed handshake, a \
             certificate not allowed (another party's, not a node's on the peer listener, revoked)",
            m.connections_refused.clone(),
        );
        r.register(
            "tls_node_cert_expiry_timestamp_seconds",
            "When this node's TLS certificate expires (Unix time); renewed at two thirds of its life",
            m.tls_node_cert_expiry.clone(),
        );
        r.register(
            "tls_ca_cert_expiry_timestamp_seconds",
            "When the party's TLS CA certificate expires (Unix time)",
            m.tls_ca_cert_expiry.clone(),
        );
        r.register(
            "tlog_checkpoints_signed",
            "Transparency log checkpoints this node signed and appended as leader",
            m.checkpoints_signed.clone(),
        );
        r.register(
            "tlog_witness_cosigned",
            "Peer checkpoints this node cosigned as its party's witness that moved the witness forward",
            m.checkpoints_cosigned.clone(),
        );
        r.register(
            "federation_segments_served",
            "Pull segments (events after a cursor up to a checkpoint) served, per peer party",
            m.federation_segments_served.clone(),
        );
        r.register(
            "federation_bytes_served",
            "Bytes of pull segments (protobuf encoded) served, per peer party",
            m.federation_bytes_served.clone(),
        );
        r.register(
            "ca_served",
            "Device CA answers served by this node, by kind (crl, ocsp, est, ingest)",
            m.ca_served.clone(),
        );
        r.register(
            "ca_refused",
            "Device CA requests refused by this node, by reason",
            m.ca_refused.clone(),
        );
        r.register(
            "federation_pulls_over_quota",
            "Pulls refused because the peer party had pulled its events per minute (PULL_QUOTA), per peer",
            m.federation_pulls_over_quota.clone(),
        );
        r.register(
            "federation_imported",
            "Events pulled from a peer party and accepted into this log, per peer",
            m.federation_imported.clone(),
        );
        r.register(
            "federation_import_refused",
            "Events pulled from a peer party that the rules or the policy refused (nothing appended), per peer",
            m.federation_import_refused.clone(),
        );
        r.register(
            "federation_pull_failures",
            "Pulls from a peer party that failed (unreachable, not proven complete, timed out), per peer",
            m.federation_pull_failures.clone(),
        );
        r.register(
            "federation_cursor_size",
            "Leaves of each peer's log this party has proven and imported up to",
            m.federation_cursor.clone(),
        );
        r.register(
            "federation_lag",
            "Leaves of each peer's log past this party's cursor, as of the source's latest checkpoint it reported",
            m.federation_lag.clone(),
        );
        r.register(
            "tlog_checkpoint_size",
            "Tree size of the latest checkpoint committed to the log",
            m.checkpoint_size.clone(),
        );
        m
    }
}

impl Metrics {
    pub fn appended(&self, events: usize, latency: Duration) {
        self.events_appended.inc_by(events as u64);
        self.append_seconds.observe(latency.as_secs_f64());
    }

    /// Time spent in one stage of the write path (`WriteStage`).
    pub fn write_stage(&self, stage: WriteStage, took: Duration) {
        self.write_stage_seconds
            .get_or_create(&[("stage", stage.name())])
            .observe(took.as_secs_f64());
    }

    /// The histogram of one stage, for a part of the node that measures
    /// it without a `Metrics` at hand (the store).
    pub fn stage_histogram(&self, stage: WriteStage) -> Histogram {
        self.write_stage_seconds
            .get_or_create(&[("stage", stage.name())])
            .clone()
    }

    pub fn hkp_lookup(&self) {
        self.hkp_lookups.inc();
    }

    pub fn snapshot_refused(&self) {
        self.snapshots_refused.inc();
    }

    /// The expiry (ms since the epoch) of this node's certificate and its CA's.
    pub fn tls_expiry(&self, node_not_after_ms: i64, ca_not_after_ms: i64) {
        self.tls_node_cert_expiry.set(node_not_after_ms / 1000);
        self.tls_ca_cert_expiry.set(ca_not_after_ms / 1000);
    }

    /// A connection to `listener` accepted (`true`) or refused.
    pub fn connection(&self, listener: &'static str, accepted: bool) {
        let counters = if accepted {
            &self.connections_accepted
        } else {
            &self.connections_refused
        };
        counters.get_or_create(&[("listener", listener)]).inc();
    }

    pub fn checkpoint_cosigned(&self) {
        self.checkpoints_cosigned.inc();
    }

    /// `segments` pull segments of `bytes` served to `peer`.
    pub fn federation_served(&self, peer: &str, segments: usize, bytes: usize) {
        let label = [("peer", peer.to_string())];
        self.federation_segments_served
            .get_or_create(&label)
            .inc_by(segments as u64);
        self.federation_bytes_served
            .get_or_create(&label)
            .inc_by(bytes as u64);
    }

    /// A pull by `peer` refused: it had pulled its events per minute.
    pub fn ca_served(&self, kind: &'static str) {
        self.ca_served.get_or_create(&[("kind", kind)]).inc();
    }

    pub fn ca_refused(&self, reason: &'static str) {
        self.ca_refused.get_or_create(&[("reason", reason)]).inc();
    }

    pub fn federation_over_quota(&self, peer: &str) {
        self.federation_pulls_over_quota
            .get_or_create(&[("peer", peer.to_string())])
            .inc();
    }

    /// A pull from `peer` that imported and refused so many events and
    /// left the cursor at `size`, the source's latest checkpoint at `latest`.
    pub fn federation_pulled(
        &self,
        peer: &str,
        imported: u64,
        refused: u64,
        size: u64,
        latest: u64,
    ) {
        let label = [("peer", peer.to_string())];
        self.federation_imported
            .get_or_create(&label)
            .inc_by(imported);
        self.federation_import_refused
            .get_or_create(&label)
            .inc_by(refused);
        self.federation_cursor
            .get_or_create(&label)
            .set(i64::try_from(size).unwrap_or(i64::MAX));
        self.federation_lag
            .get_or_create(&label)
            .set(i64::try_from(latest.saturating_sub(size)).unwrap_or(i64::MAX));
    }

    pub fn federation_failed(&self, peer: &str) {
        self.federation_pull_failures
            .get_or_create(&[("peer", peer.to_string())])
            .inc();
    }

    pub fn checkpoint_signed(&self) {
        self.checkpoints_signed.inc();
    }

    pub fn refused(&self) {
        self.appends_refused.inc();
    }

    pub fn entry_written(&self, batches: usize) {
        self.raft_entries_written.inc();
        self.batches_per_entry.observe(batches as f64);
    }

    /// The registry as Prometheus text, with the gauges read from `source` now.
    pub fn render(&self, source: &MetricsSource) -> String {
        self.term.set(source.term);
        self.last_applied.set(source.last_applied);
        self.is_leader.set(i64::from(source.is_leader));
        self.event_count.set(source.event_count);
        self.checkpoint_size.set(source.checkpoint_size);
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String does not fail");
        out
    }
}

fn stage_histogram() -> Histogram {
    // 10 µs to ~2.6 s.
    Histogram::new(exponential_buckets(0.00001, 2.0, 18))
}

/// The stages of the write path a leader times.
#[derive(Clone, Copy)]
pub enum WriteStage {
    /// The writer's check of a round against the applied state.
    Precheck,
    /// A round from proposal to applied: log append, replication, commit, apply.
    Round,
    /// One sync of the Raft log (every append queued meanwhile).
    LogSync,
    /// The state machine's apply of what committed.
    Apply,
}

impl WriteStage {
    fn name(self) -> &'static str {
        match self {
            WriteStage::Precheck => "precheck",
            WriteStage::Round => "round",
            WriteStage::LogSync => "log_sync",
            WriteStage::Apply => "apply",
        }
    }
}

/// The gauges' values, read by the host when metrics are scraped.
pub struct MetricsSource {
    pub term: u64,
    pub last_applied: u64,
    pub is_leader: bool,
    pub event_count: u64,
    pub checkpoint_size: u64,
}
