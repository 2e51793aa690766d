//! The transparency log over HTTP, as C2SP tlog-tiles: `/checkpoint` (the
//! latest committed checkpoint's signed note), hash tiles
//! (`/tile/<L>/<N>[.p/<W>]`, the tree's level 8·L) from the tree's tiles
//! (finished ones stored, the unfinished one in memory) and entry bundles (`/tile/entries/<N>[.p/<W>]`, each leaf's entry:
//! its salt and the SHA-256 of its envelope) from the stored events. A tile
//! this replica has not applied yet is 404; what it serves never changes, so
//! it is cacheable forever.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use ics_tlog::tiles::{Tile, TileKind, entry_bundle};

use crate::edge::caller::Caller;
use crate::edge::http::refuse;
use crate::host::Node;
use crate::log::store::split_stored;
use crate::rate_limit::ReadBudget;

struct Tiles {
    node: Arc<Node>,
    budget: ReadBudget,
}

pub fn router(node: Arc<Node>) -> Router {
    let limits = &node.config.limits;
    let budget = ReadBudget::new(
        "tile reads",
        (
            limits.max_tile_reads_per_client_per_second,
            limits.tile_client_burst,
        ),
        (limits.max_tile_reads_per_second, limits.tile_burst),
    );
    Router::new()
        .route("/checkpoint", get(checkpoint))
        .route("/tile/{*path}", get(tile))
        .with_state(Arc::new(Tiles { node, budget }))
}

/// The latest committed checkpoint, as its signed note. It changes, so it is
/// not cached.
async fn checkpoint(
    State(tiles): State<Arc<Tiles>>,
    caller: Option<axum::Extension<Caller>>,
) -> Response {
    if let Err(why) = tiles.budget.charge(caller.map(|c| c.rate_key())) {
        return refuse(StatusCode::TOO_MANY_REQUESTS, why);
    }
    let applied = tiles.node.shared.read();
    match ics_tlog::committed_checkpoint(applied.projection.capability::<ics_tlog::Tlog>(), None) {
        Some(c) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            c.served_note(),
        )
            .into_response(),
        None => refuse(
            StatusCode::NOT_FOUND,
            "this log has no committed checkpoint yet",
        ),
    }
}

async fn tile(
    State(tiles): State<Arc<Tiles>>,
    caller: Option<axum::Extension<Caller>>,
    Path(path): Path<String>,
) -> Response {
    if let Err(why) = tiles.budget.charge(caller.map(|c| c.rate_key())) {
        return refuse(StatusCode::TOO_MANY_REQUESTS, why);
    }
    let tile = match Tile::parse(&format!("tile/{path}")) {
        Ok(t) => t,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let applied = tiles.node.shared.read();
    let size = applied.tree.size();
    // The tile as far as this replica's tree goes: the one asked for only if
    // it has at least the width asked for.
    let available = Tile::in_tree(tile.kind, tile.index, size);
    if available.is_none_or(|a| a.width < tile.width) {
        return refuse(
            StatusCode::NOT_FOUND,
            format!("tile {} is beyond this log's {size} entries", tile.path()),
        );
    }
    let db = &tiles.node.shared.db;
    let body = match tile.kind {
        TileKind::Hashes { level } => applied
            .tree
            .nodes(&db.tiles())
            .tile(level, tile.index)
            .map(|hashes| hashes[..usize::from(tile.width)].concat())
            .ok_or_else(|| "a finished tile is not stored".to_string()),
        TileKind::Entries => {
            drop(applied);
            entries(&tiles.node, &tile)
        }
    };
    match body {
        Ok(bytes) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/octet-stream"),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(tile = %tile.path(), error = %e, "a tile of the applied tree is unreadable");
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the tile could not be read",
            )
        }
    }
}

/// The entry bundle of `tile`: leaves `index · 256 ..` of its width.
fn entries(node: &Node, tile: &Tile) -> Result<Vec<u8>, String> {
    let first = tile.index * u64::from(ics_tlog::tiles::TILE_WIDTH);
    let mut leaf_entries = Vec::with_capacity(usize::from(tile.width));
    for leaf in first..first + u64::from(tile.width) {
        let index = leaf + 1;
        let stored = node
            .shared
            .db
            .stored(index)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("applied event {index} is missing"))?;
        let (salt, envelope) = split_stored(&stored, index).map_err(|e| e.to_string())?;
        leaf_entries.push(ics_tlog::leaf_entry(salt, envelope));
    }
    Ok(entry_bundle(leaf_entries.iter().map(|e| e.as_slice())))
}
