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
    match node.readiness() {
        Ok(ready) => (StatusCode::OK, format!("{ready}\n")),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
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
