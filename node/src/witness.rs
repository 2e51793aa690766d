//! This party as a witness of its recognized peers' logs: C2SP tlog-witness
//! `POST /add-checkpoint` on the client HTTPS listener, for callers with a
//! client certificate only (mutual TLS). The verdict is the capability's
//! (`ics_tlog::capability`): a request that moves this witness forward is
//! committed as a `tlog-cosigned` event signed by the party's log key, and
//! every replica re-checks it against what was cosigned before, so the
//! consistency check and its persistence are one replicated step and no two
//! nodes of this party cosign diverging views of a log. Only then is the
//! cosignature signed (with the event's time) and returned.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use ics_kernel::SigningKey;
use ics_tlog::note::cosign;
use ics_tlog::witness::{AddCheckpoint, WitnessRefusal};
use ics_tlog::{PeerLog, Tlog, peer_log, peer_subject, witness_name};

use crate::edge::caller::Caller;
use crate::edge::http::refuse;
use crate::host::Node;
use crate::rate_limit::ReadBudget;

/// The largest add-checkpoint body: a note (16 KiB at most) and 63 proof
/// lines with room to spare.
pub const MAX_ADD_CHECKPOINT_BYTES: usize = 32 * 1024;

struct Witness {
    node: Arc<Node>,
    budget: ReadBudget,
}

pub fn router(node: Arc<Node>) -> Router {
    let limits = &node.config.limits;
    // Each accepted request is a write through the log; the tile budget's
    // per-caller share bounds how often one caller can ask.
    let budget = ReadBudget::new(
        "add-checkpoint requests",
        (
            limits.max_tile_reads_per_client_per_second,
            limits.tile_client_burst,
        ),
        (limits.max_tile_reads_per_second, limits.tile_burst),
    );
    Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .layer(DefaultBodyLimit::max(MAX_ADD_CHECKPOINT_BYTES))
        .with_state(Arc::new(Witness { node, budget }))
}

/// A refusal as tlog-witness answers it: 409 carries the size this witness
/// cosigned last, as `text/x.tlog.size`.
fn witness_refusal(r: &WitnessRefusal) -> Response {
    let status = StatusCode::from_u16(r.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    match r {
        WitnessRefusal::Conflict { known } => (
            status,
            [(header::CONTENT_TYPE, "text/x.tlog.size")],
            format!("{known}\n"),
        )
            .into_response(),
        _ => refuse(status, format!("{}: {r}", r.reason())),
    }
}

async fn add_checkpoint(
    State(w): State<Arc<Witness>>,
    caller: Option<axum::Extension<Caller>>,
    body: Bytes,
) -> Response {
    let Some(axum::Extension(caller)) = caller.filter(|c| c.certificate.is_some()) else {
        return refuse(
            StatusCode::FORBIDDEN,
            "add-checkpoint is for callers with a client certificate of a party this one trusts (mutual TLS)",
        );
    };
    let rate_key = caller.rate_key();
    if let Err(why) = w.budget.charge(Some(rate_key.clone())) {
        return refuse(StatusCode::TOO_MANY_REQUESTS, why);
    }
    let node = &w.node;
    let Some(key) = node.log_key.as_ref() else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "this node holds no transparency log key, so it cannot cosign; ask another node of the party",
        );
    };
    let request = match AddCheckpoint::parse(&body) {
        Ok(r) => r,
        Err(r) => return witness_refusal(&r),
    };
    let origin = request.origin();
    let Some(party) = ics_tlog::party_of_log(origin).map(str::to_string) else {
        return witness_refusal(&WitnessRefusal::UnknownLog(origin.to_string()));
    };
    let verdict =
        |node: &Node| -> Result<(PeerLog, Option<ics_client::ChainHead>), WitnessRefusal> {
            let applied = node.shared.read();
            let tlog = applied.projection.capability::<Tlog>();
            let peer = peer_log(tlog, &party)
                .cloned()
                .ok_or_else(|| WitnessRefusal::UnknownLog(origin.to_string()))?;
            let (_, latest) = ics_tlog::capability::witness_verdict(&peer, &body)?;
            // The same checkpoint again moves nothing: cosign without a write.
            let moved = peer.cosigned != Some(latest);
            let head = moved.then(|| Node::chain_head(&applied.projection, &peer_subject(&party)));
            Ok((peer, head))
        };
    let (_, head) = match verdict(node) {
        Ok(v) => v,
        Err(r) => return witness_refusal(&r),
    };
    let time_ms = ics_client::now_ms();
    if let Some(head) = head {
        let event = ics_client::signed_at(
            key,
            peer_subject(&party),
            head,
            ics_tlog::TlogPayload::Cosigned {
                request: body.to_vec(),
            },
            time_ms,
        );
        if let Err(status) = node.append_signed(event, &rate_key).await {
            // Another request for this log may have moved the witness
            // between the verdict and the commit: answer from the state now.
            return match verdict(node) {
                Err(r) => witness_refusal(&r),
                Ok(_) => refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "the cosigned state could not be committed: {}",
                        status.message()
                    ),
                ),
            };
        }
        node.metrics.checkpoint_cosigned();
    }
    let SigningKey::Ed25519(signer) = key else {
        return refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the transparency log key is not Ed25519",
        );
    };
    let name = witness_name(&node.config.party);
    match cosign(
        &name,
        signer,
        (time_ms / 1000).max(0) as u64,
        &request.checkpoint.text,
    ) {
        Ok(line) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            line.line(),
        )
            .into_response(),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
