//! The HTTP side every node serves: health, readiness, Prometheus metrics.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::host::Node;
use crate::log::raft_metrics;
use crate::metrics::MetricsSource;

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(node): State<Arc<Node>>) -> (StatusCode, String) {
    let m = raft_metrics(&node.raft);
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
    let m = raft_metrics(&node.raft);
    node.metrics.render(&MetricsSource {
        term: m.current_term,
        last_applied: m.last_applied.map_or(0, |l| l.index()),
        is_leader: node.raft.is_leader(),
        event_count: node.shared.read().projection.event_count(),
    })
}

pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(node)
}
