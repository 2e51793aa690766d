//! The HTTP side every node serves: health, readiness, Prometheus metrics.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::host::Node;
use crate::listener::{Accepted, Incoming};
use crate::log::raft_metrics;
use crate::metrics::MetricsSource;

/// A refusal over HTTP: its status and a line of plain text naming what is
/// wrong.
pub fn refuse(code: StatusCode, message: impl Into<String>) -> Response {
    let mut m = message.into();
    m.push('\n');
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        m,
    )
        .into_response()
}

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
    let (event_count, checkpoint_size) = {
        let applied = node.shared.read();
        let p = &applied.projection;
        let latest = p.capability::<ics_tlog::Tlog>().index().latest;
        (p.event_count(), latest.unwrap_or(0))
    };
    node.metrics.render(&MetricsSource {
        term: m.current_term,
        last_applied: m.last_applied.map_or(0, |l| l.index()),
        is_leader: node.raft.is_leader(),
        event_count,
        checkpoint_size,
    })
}

/// Serves `router` on the connections of `incoming` (TLS or the loopback
/// plain listener; capped by its acceptor) until `shutdown`. A connection is
/// closed when it takes longer than `header_timeout` to send a request's
/// headers — which also ends an idle keep-alive connection (F9: slow or idle
/// clients hold no slot long). Handlers find who is calling (a `Caller`, or
/// the device listener's `DeviceCaller`) in the request's extensions.
pub async fn serve<S, I>(
    mut incoming: Incoming<Accepted<S, I>>,
    router: Router,
    header_timeout: std::time::Duration,
    shutdown: impl std::future::Future<Output = ()>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    I: Clone + Send + Sync + Unpin + 'static,
{
    use futures::StreamExt;
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    use tower::ServiceExt;
    tokio::pin!(shutdown);
    loop {
        let connection = tokio::select! {
            next = incoming.next() => match next {
                Some(Ok(c)) => c,
                Some(Err(_)) => continue,
                None => return,
            },
            () = &mut shutdown => return,
        };
        let caller = connection.identity().clone();
        let service = router.clone().map_request(
            move |mut r: axum::extract::Request<hyper::body::Incoming>| {
                r.extensions_mut().insert(caller.clone());
                r
            },
        );
        let service = TowerToHyperService::new(service);
        tokio::spawn(async move {
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(connection), service);
            if let Err(e) = served.await {
                tracing::debug!(error = %e, "HTTP connection ended");
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
