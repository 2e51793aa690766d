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

/// Serves `router` on `listener` until `shutdown`: at most `max_connections`
/// at once (one more is closed at once), each closed when it takes longer
/// than `header_timeout` to send a request's headers — which also ends an
/// idle keep-alive connection (F9: slow or idle clients hold no slot long).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    max_connections: usize,
    header_timeout: std::time::Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections));
    tokio::pin!(shutdown);
    loop {
        let (tcp, from) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%from, "HTTP connection over the cap closed");
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tcp.set_nodelay(true);
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(tcp), service);
            if let Err(e) = connection.await {
                tracing::debug!(%from, error = %e, "HTTP connection ended");
            }
        });
    }
}

pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(node)
}
