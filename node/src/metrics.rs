//! Prometheus metrics and the HTTP side: health, readiness, metrics.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::api::Node;

pub struct Metrics {
    registry: Registry,
    events_appended: Counter,
    appends_refused: Counter,
    raft_entries_written: Counter,
    batches_per_entry: Histogram,
    append_seconds: Histogram,
    event_count: Gauge<u64, AtomicU64>,
    term: Gauge<u64, AtomicU64>,
    last_applied: Gauge<u64, AtomicU64>,
    is_leader: Gauge,
    hkp_lookups: Counter,
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
            event_count: Gauge::default(),
            term: Gauge::default(),
            last_applied: Gauge::default(),
            is_leader: Gauge::default(),
            hkp_lookups: Counter::default(),
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
        m
    }
}

impl Metrics {
    pub fn appended(&self, events: usize, latency: Duration) {
        self.events_appended.inc_by(events as u64);
        self.append_seconds.observe(latency.as_secs_f64());
    }

    pub fn hkp_lookup(&self) {
        self.hkp_lookups.inc();
    }

    pub fn refused(&self) {
        self.appends_refused.inc();
    }

    pub fn entry_written(&self, batches: usize) {
        self.raft_entries_written.inc();
        self.batches_per_entry.observe(batches as f64);
    }

    fn render(&self, node: &Node) -> String {
        let m = crate::api::raft_metrics(&node.raft);
        self.term.set(m.current_term);
        self.last_applied
            .set(m.last_applied.map_or(0, |l| l.index()));
        self.is_leader.set(i64::from(node.raft.is_leader()));
        self.event_count
            .set(node.shared.read().projection.event_count());
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String does not fail");
        out
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(node): State<Arc<Node>>) -> (StatusCode, String) {
    let m = crate::api::raft_metrics(&node.raft);
    if m.current_leader.is_none() {
        return (StatusCode::SERVICE_UNAVAILABLE, "no leader\n".to_string());
    }
    if node.shared.read().projection.party().is_none() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "party genesis not applied yet\n".to_string(),
        );
    }
    (
        StatusCode::OK,
        format!("ready: leader {}\n", m.current_leader.unwrap_or(0)),
    )
}

async fn metrics(State(node): State<Arc<Node>>) -> String {
    node.metrics.render(&node)
}

pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(node)
}
