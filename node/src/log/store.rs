//! Durable storage on sled: the Raft log and vote, the applied event log,
//! the transparency log's tree over it, and snapshots.
//!
//! A stored event is the salt the leader drew for its leaf, then its
//! envelope bytes as received (`stored_value`, `split_stored`). Every applied
//! event is leaf `index - 1` of an RFC 6962 tree (`ics_tlog`), stored as
//! tiles: the tiles each apply finishes (256 hashes, one 8 KiB value per 256
//! events at level 0) are written in the same sled batch as its events, and
//! the unfinished tiles and the frontier are kept in memory and restored on
//! open from the last tile's events. So the tree is never behind or ahead of
//! the log, on any replica, across restarts and snapshot installs.
//!
//! A snapshot is a state image (the projection as bytes, see
//! `ics_kernel::StateImage`) plus the applied events it covers, which stay
//! in the event store: the snapshot file holds only the image, and a leader
//! sends the events from disk behind it. Installing one, or restarting from
//! one, checks the events' ids against the image's log hash and decides
//! nothing again; only events after the image replay (signatures and all).
//!
//! Durability: sled's `flush()` ends in `sync_file_range`, which flushes
//! neither the disk's write cache nor metadata. Every path that must be on
//! stable storage before it is acknowledged (log append, vote, truncation,
//! purge marker, snapshot install) calls [`Db::sync`], which flushes sled and
//! then `fdatasync`s our own handle on sled's data file: fsync acts on the
//! inode, so it covers what sled wrote through its own descriptor. Values are
//! kept under sled's blob threshold (see `SEGMENT_BYTES`) so nothing lands in
//! the unsynced blob files. Snapshots are our own files, written to a
//! temporary name, fsynced, renamed, and the directory fsynced.

use std::collections::HashMap;
use std::fmt::Debug;
use std::fs::File;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, IOFlushed, RaftLogStorage, RaftStateMachine};
use openraft::{EntryPayload, LogState, OptionalSend, RaftLogReader, RaftSnapshotBuilder};
use serde::{Deserialize, Serialize};

use super::segments::Segments;
use super::snapshot::{
    SnapshotData, SnapshotFile, SnapshotFileRef, frames, local_snapshot, read_snapshot_file,
    write_snapshot_file,
};
use super::{
    Entry, LogId, LogResponse, Snapshot, SnapshotMeta, StoredMembership, TypeConfig, Vote,
};
use crate::codec;
use ics_federation::{ImportTag, MirrorChanges, MirrorStage, Mirrors};
use ics_kernel::{
    Appended, Envelope, Event, EventId, EventLimits, ImageError, LogTree, Projection, Refusal,
    Staged, StateImage, UnsupportedRules,
};

/// sled segment size. An item over a quarter of a segment is written to a
/// separate blob file that sled never fsyncs; 8 MiB segments put that
/// threshold at 2 MiB, above `MAX_ENTRY_BYTES`.
const SEGMENT_BYTES: usize = 8 * 1024 * 1024;
/// Largest Raft entry the node proposes (the batcher keeps under it).
pub const MAX_ENTRY_BYTES: usize = 1024 * 1024;

const VOTE_KEY: &[u8] = b"vote";
const COMMITTED_KEY: &[u8] = b"committed";
const PURGED_KEY: &[u8] = b"last_purged";
const SM_META_KEY: &[u8] = b"m";
const SM_EVENT_PREFIX: u8 = b'e';
const SM_TREE_PREFIX: u8 = b't';
const SNAPSHOT_FILE: &str = "state-snapshot.bin";

pub(super) fn io_err(e: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::other(e)
}

fn encode<T: Serialize>(v: &T) -> io::Result<Vec<u8>> {
    postcard::to_stdvec(v).map_err(io_err)
}

pub(super) fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8], what: &str) -> io::Result<T> {
    postcard::from_bytes(bytes)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("corrupt {what}: {e}")))
}

pub(super) fn event_key(index: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = SM_EVENT_PREFIX;
    k[1..].copy_from_slice(&index.to_be_bytes());
    k
}

use ics_tlog::SALT_BYTES;
use ics_tlog::merkle::{Hash, TreeError};
use ics_tlog::tiled::{PendingTiles, TileStore, TiledTree, TreeView, tile_hashes};

/// The stored form of an event: its leaf's salt, then its envelope bytes.
pub fn stored_value(salt: &[u8; SALT_BYTES], envelope: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(SALT_BYTES + envelope.len());
    v.extend_from_slice(salt);
    v.extend_from_slice(envelope);
    v
}

/// A stored event's salt and envelope bytes.
pub fn split_stored(value: &[u8], index: u64) -> io::Result<(&[u8; SALT_BYTES], &[u8])> {
    if value.len() < SALT_BYTES {
        return Err(invalid(format!(
            "stored event {index} is shorter than its salt (a data dir of an earlier build?)"
        )));
    }
    let (salt, envelope) = value.split_at(SALT_BYTES);
    Ok((salt.try_into().expect("SALT_BYTES"), envelope))
}

/// A stored event's salt, its import tag (none for this party's own
/// events) and the envelope bytes as their author signed them.
pub fn split_tagged(
    value: &[u8],
    index: u64,
) -> io::Result<(&[u8; SALT_BYTES], Option<ImportTag>, &[u8])> {
    let (salt, stored) = split_stored(value, index)?;
    let (tag, envelope) =
        ImportTag::split(stored).map_err(|e| invalid(format!("stored event {index}: {e}")))?;
    Ok((salt, tag, envelope))
}

/// The leaf hash of a stored event.
fn stored_leaf(value: &[u8], index: u64) -> io::Result<Hash> {
    let (salt, envelope) = split_stored(value, index)?;
    Ok(ics_tlog::event_leaf_hash(salt, envelope))
}

fn tile_key(level: u8, index: u64) -> [u8; 10] {
    let mut k = [0u8; 10];
    k[0] = SM_TREE_PREFIX;
    k[1] = level;
    k[2..].copy_from_slice(&index.to_be_bytes());
    k
}

/// No stored tiles (a tree grown wholly in memory).
struct NoTiles;

impl TileStore for NoTiles {
    fn full_tile(&self, _level: u8, _index: u64) -> Option<Vec<Hash>> {
        None
    }
}

/// The tree's finished tiles in the state machine's sled tree.
pub struct StoredTiles<'a>(&'a sled::Tree);

impl TileStore for StoredTiles<'_> {
    fn full_tile(&self, level: u8, index: u64) -> Option<Vec<Hash>> {
        match self.0.get(tile_key(level, index)) {
            Ok(Some(v)) => tile_hashes(&v),
            Ok(None) => None,
            Err(e) => {
                tracing::error!(level, index, error = %e, "reading a transparency log tile failed");
                None
            }
        }
    }
}

/// Adds the leaves of `values` (stored events, in index order) to `tree`
/// and the tiles they finish to `writes` (one 8 KiB value per 256 events).
fn grow_tree<'v>(
    tree: &mut TiledTree,
    writes: &mut sled::Batch,
    mut pending: Option<&mut HashMap<(u8, u64), Vec<Hash>>>,
    values: impl IntoIterator<Item = (u64, &'v [u8])>,
) -> io::Result<()> {
    for (index, value) in values {
        // Leaf i is event i + 1: the tree and the event store stay in step.
        assert_eq!(
            index,
            tree.size() + 1,
            "event {index} is the next leaf of a tree of {}",
            tree.size()
        );
        for tile in tree.append(stored_leaf(value, index)?) {
            writes.insert(&tile_key(tile.level, tile.index), tile.to_bytes());
            if let Some(p) = pending.as_deref_mut() {
                p.insert((tile.level, tile.index), tile.hashes);
            }
        }
    }
    Ok(())
}

/// The node's sled database and its trees.
pub struct Db {
    sled: sled::Db,
    log: sled::Tree,
    raft_meta: sled::Tree,
    pub(super) sm: sled::Tree,
    data_file: File,
    pub(super) dir: PathBuf,
}

impl Db {
    pub fn open(dir: &Path, cache_bytes: u64) -> anyhow::Result<Arc<Db>> {
        use anyhow::Context;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("create data dir {}", dir.display()))?;
        let sled_dir = dir.join("sled");
        let sled = sled::Config::new()
            .path(&sled_dir)
            .cache_capacity(cache_bytes)
            .segment_size(SEGMENT_BYTES)
            .open()
            .with_context(|| format!("open sled database in {}", sled_dir.display()))?;
        let data_file = File::open(sled_dir.join("db"))
            .with_context(|| format!("open sled data file in {}", sled_dir.display()))?;
        let log = sled.open_tree("raft_log")?;
        let raft_meta = sled.open_tree("raft_meta")?;
        let sm = sled.open_tree("state_machine")?;
        Ok(Arc::new(Db {
            sled,
            log,
            raft_meta,
            sm,
            data_file,
            dir: dir.to_path_buf(),
        }))
    }

    /// Puts everything written so far on stable storage.
    pub fn sync(&self) -> io::Result<()> {
        self.sled.flush().map_err(io_err)?;
        self.data_file.sync_data()
    }

    async fn sync_async(self: &Arc<Self>) -> io::Result<()> {
        let db = self.clone();
        tokio::task::spawn_blocking(move || db.sync())
            .await
            .map_err(io_err)?
    }

    /// A Raft metadata value (vote, committed, purge marker).
    fn meta_get<T: for<'a> Deserialize<'a>>(&self, key: &[u8]) -> io::Result<Option<T>> {
        match self.raft_meta.get(key).map_err(io_err)? {
            Some(v) => Ok(Some(decode(
                &v,
                std::str::from_utf8(key).unwrap_or("meta"),
            )?)),
            None => Ok(None),
        }
    }

    /// The transparency log tree's finished tiles.
    pub fn tiles(&self) -> StoredTiles<'_> {
        StoredTiles(&self.sm)
    }

    /// The stored form (salt, then envelope) of the applied event at `index`.
    pub fn stored(&self, index: u64) -> io::Result<Option<Vec<u8>>> {
        Ok(self
            .sm
            .get(event_key(index))
            .map_err(io_err)?
            .map(|v| v.to_vec()))
    }

    pub(super) fn snapshot_path(&self) -> PathBuf {
        self.dir.join(SNAPSHOT_FILE)
    }
}

/// State readers share with the state machine.
pub struct Applied {
    /// This party's records, and the log-wide count, log hash and id index
    /// (imported events included).
    pub projection: Projection,
    /// Other parties' records imported by federation, each in its namespace.
    pub mirrors: Mirrors,
    /// The transparency log's tree over the applied events.
    pub tree: TiledTree,
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
}

impl Applied {
    /// How fresh the records imported into `namespace` are: the peers the
    /// policy in force takes them from, and their cursors.
    pub fn freshness(&self, namespace: &str) -> ics_federation::Freshness {
        let policies = self.projection.capability::<ics_policies::Policies>();
        let cursors = self.projection.capability::<ics_federation::Federation>();
        ics_policies::active(policies)
            .map(|policy| {
                ics_federation::freshness(&policy.descriptor, namespace, |peer| {
                    cursors.subject(&ics_federation::cursor_subject(peer))
                })
            })
            .unwrap_or_default()
    }
}

pub struct Shared {
    pub applied: RwLock<Applied>,
    /// Number of applied events; watchers wake on change.
    pub event_count: tokio::sync::watch::Sender<u64>,
    pub db: Arc<Db>,
}

impl Shared {
    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, Applied> {
        self.applied.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Applied> {
        self.applied.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// The limits of the events before a party's genesis (the genesis itself):
/// from the genesis on, the replicated ones decide. Never node config.
fn pre_genesis_limits() -> EventLimits {
    EventLimits::default()
}

/// Parses stored envelope bytes. No size limit here: the replicated rules
/// check sizes, so node config cannot change a verdict.
fn parse_stored(bytes: &[u8]) -> Result<Event, Refusal> {
    codec::parse_event(
        codec::envelope_from_bytes(bytes)?,
        &EventLimits::unbounded(),
    )
}

/// A log that activated rules this build does not run: stop, and say why.
fn unsupported(e: UnsupportedRules) -> io::Error {
    tracing::error!(error = %e, "stopping: upgrade this node's icsd to a build that runs these rules");
    io::Error::other(e)
}

/// A tree as it stood before event `index`, read from the tree grown past
/// it: what a replayed event is decided over. One event at a time sees at
/// least the leaves its original batch saw, and a prefix's root does not
/// change as the tree grows, so the replay reaches the original verdict.
struct TreeBefore<'a> {
    grown: &'a dyn LogTree,
    size: u64,
}

impl LogTree for TreeBefore<'_> {
    fn size(&self) -> u64 {
        self.size
    }
    fn root(&self, size: u64) -> Option<Hash> {
        (size <= self.size).then(|| self.grown.root(size)).flatten()
    }
}

/// Decides one stored event again, at its position, onto the state: this
/// party's own, or an import (in its namespace, admitted as on apply).
fn replay(
    projection: &mut Projection,
    mirrors: &mut Mirrors,
    stored: &[u8],
    index: u64,
    grown: &dyn LogTree,
) -> io::Result<()> {
    let (_, tag, envelope) = split_tagged(stored, index)?;
    let corrupt = |e: Refusal| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("applied event {index} does not replay: {e}"),
        )
    };
    let event = parse_stored(envelope).map_err(corrupt)?;
    let before = TreeBefore {
        grown,
        size: index - 1,
    };
    let (appended, changes, mirrored) = {
        let mut staged = Staged::new(projection);
        match &tag {
            None => {
                let out = staged
                    .stage_batch_over(std::slice::from_ref(&event), &pre_genesis_limits(), &before)
                    .map_err(corrupt)?;
                (out[0], staged.into_changes(), MirrorChanges::default())
            }
            Some(tag) => {
                // Only an import needs the mirrors, and an empty projection
                // for a namespace not mirrored yet.
                let empty = crate::capabilities::projection();
                let mut imports = MirrorStage::new(mirrors, &empty);
                let appended = imports
                    .stage_import(
                        &mut staged,
                        tag,
                        &event,
                        envelope.len(),
                        &pre_genesis_limits(),
                        &before,
                    )
                    .map_err(corrupt)?;
                (appended, staged.into_changes(), imports.into_changes())
            }
        }
    };
    projection.check_supported(&changes).map_err(unsupported)?;
    projection.commit(changes);
    mirrors.commit(crate::capabilities::rules(), mirrored);
    if appended.index != index || appended.duplicate {
        return Err(corrupt(Refusal::Malformed(format!(
            "replayed at index {} instead",
            appended.index
        ))));
    }
    Ok(())
}

#[derive(Serialize, Deserialize)]
struct SmMeta {
    last_applied: Option<LogId>,
    membership: StoredMembership,
}

pub(super) fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// The id of a stored event (no signature checked: ids are checked against
/// a state image's log hash instead).
pub(super) fn stored_id(stored: &[u8], index: u64) -> io::Result<EventId> {
    let (_, _, bytes) = split_tagged(stored, index)?;
    let env = codec::envelope_from_bytes(bytes)
        .map_err(|e| invalid(format!("applied event {index} does not parse: {e}")))?;
    Ok(EventId::of_body(&env.body))
}

/// A mirror in a state image: its projection's image and the log
/// positions of its events.
#[derive(Serialize, Deserialize)]
struct MirrorImage {
    party: String,
    image: Vec<u8>,
    positions: Vec<u64>,
}

/// The state image a snapshot holds: this party's projection's image (8
/// bytes of length, then the image), then the mirrors' (postcard).
pub(super) fn host_image(projection: &Projection, mirrors: &Mirrors) -> io::Result<Vec<u8>> {
    let own = projection.image();
    let mirrored: Vec<MirrorImage> = mirrors
        .parties
        .iter()
        .map(|(party, m)| MirrorImage {
            party: party.clone(),
            image: m.projection.image(),
            positions: m.positions.clone(),
        })
        .collect();
    let mut out = Vec::with_capacity(8 + own.len());
    out.extend_from_slice(&(own.len() as u64).to_be_bytes());
    out.extend_from_slice(&own);
    out.extend_from_slice(&encode(&mirrored)?);
    Ok(out)
}

/// This party's projection's image in a host image, and the rest.
pub(super) fn own_image(host: &[u8]) -> io::Result<(&[u8], &[u8])> {
    let (len, rest) = host
        .split_first_chunk::<8>()
        .ok_or_else(|| invalid("a state image is cut short".into()))?;
    let len = usize::try_from(u64::from_be_bytes(*len))
        .ok()
        .filter(|l| *l <= rest.len())
        .ok_or_else(|| invalid("a state image is cut short".into()))?;
    Ok(rest.split_at(len))
}

/// The state a host image holds, over the events it covers (`ids`, in log
/// order). `Ok(None)`: the image was written by a build with other state
/// formats, and the caller replays the events instead.
fn restore(host: &[u8], ids: Vec<EventId>) -> io::Result<Option<(Projection, Mirrors)>> {
    let rules = crate::capabilities::rules();
    let checked = |r: Result<Projection, ImageError>| match r {
        Ok(p) => Ok(Some(p)),
        Err(ImageError::Unsupported(e)) => Err(unsupported(e)),
        Err(e) if e.is_other_build() => {
            tracing::warn!(error = %e, "state image of another build: replaying its events instead");
            Ok(None)
        }
        Err(e) => Err(invalid(e.to_string())),
    };
    let (own, rest) = own_image(host)?;
    let mirrored: Vec<MirrorImage> = decode(rest, "mirrors of a state image")?;
    let mut mirrors = Mirrors::default();
    for m in mirrored {
        let mirror_ids = m
            .positions
            .iter()
            .map(|p| {
                usize::try_from(*p)
                    .ok()
                    .and_then(|p| ids.get(p.checked_sub(1)?))
                    .copied()
                    .ok_or_else(|| {
                        invalid(format!("mirror {}: position {p} is not covered", m.party))
                    })
            })
            .collect::<io::Result<Vec<_>>>()?;
        let restored = StateImage::decode(&m.image)
            .and_then(|i| Projection::restore(rules.clone(), i, mirror_ids));
        let Some(projection) = checked(restored)? else {
            return Ok(None);
        };
        mirrors.parties.insert(
            m.party,
            ics_federation::Mirror {
                projection,
                positions: m.positions,
            },
        );
    }
    let restored = StateImage::decode(own).and_then(|i| Projection::restore(rules.clone(), i, ids));
    Ok(checked(restored)?.map(|p| (p, mirrors)))
}

/// The state at start: the snapshot's image when there is one it can use,
/// then the stored events after it, each decided again. Also returns how
/// many events the image covered.
fn open_state(db: &Db, tree: &dyn LogTree) -> io::Result<(Projection, Mirrors, u64)> {
    let mut state = None;
    if let Some(file) = read_snapshot_file(db)? {
        let mut ids = Vec::with_capacity(file.events as usize);
        for item in db.sm.range(event_key(1)..=event_key(file.events)) {
            let (_, v) = item.map_err(io_err)?;
            ids.push(stored_id(&v, ids.len() as u64 + 1)?);
        }
        state = restore(&file.image, ids)?;
    }
    let (mut projection, mut mirrors) =
        state.unwrap_or_else(|| (crate::capabilities::projection(), Mirrors::default()));
    let from_image = projection.event_count();
    let from = from_image + 1;
    for item in db.sm.range(event_key(from)..) {
        let (k, v) = item.map_err(io_err)?;
        if k.first() != Some(&SM_EVENT_PREFIX) {
            break;
        }
        let index = projection.event_count() + 1;
        replay(&mut projection, &mut mirrors, &v, index, tree)?;
    }
    Ok((projection, mirrors, from_image))
}

/// The tree of the `events` applied events, from its stored tiles and the
/// last (unfinished tile's) events: no tile beyond them, or the store is
/// refused.
fn open_tree(db: &Db, events: u64) -> io::Result<TiledTree> {
    let tiles = db.tiles();
    let tree = TiledTree::restore(events, &tiles, |leaf| {
        let index = leaf + 1;
        let missing = TreeError::Missing {
            level: 0,
            index: leaf,
        };
        match db.stored(index) {
            Ok(Some(v)) => stored_leaf(&v, index).map_err(|_| missing),
            _ => Err(missing),
        }
    })
    .map_err(|e| {
        invalid(format!(
            "the transparency log's tree over {events} events does not restore: {e}"
        ))
    })?;
    if tiles.full_tile(0, events / 256).is_some() {
        return Err(invalid(format!(
            "the transparency log's tree has more leaves than the {events} applied events"
        )));
    }
    Ok(tree)
}

/// Opens the store: the Raft log and the state machine, whose projection is
/// restored from the last snapshot and the applied events after it.
pub fn open(
    dir: &Path,
    cache_bytes: u64,
    timings: StoreTimings,
) -> anyhow::Result<(LogStore, StateMachineStore)> {
    let db = Db::open(dir, cache_bytes)?;
    let meta: SmMeta = match db.sm.get(SM_META_KEY)? {
        Some(v) => decode(&v, "state machine meta")?,
        None => SmMeta {
            last_applied: None,
            membership: StoredMembership::default(),
        },
    };
    let log_dir = dir.join(super::segments::DIR);
    migrate_sled_log(&db, &log_dir)?;
    let purged: Option<LogId> = db.meta_get(PURGED_KEY)?;
    let segments = Segments::open(&log_dir, purged.map(|p| p.index()))?;
    let started = std::time::Instant::now();
    // The tree first: events replayed after the snapshot's image are
    // decided over it (a checkpoint names a root of it).
    let stored_events = match db.sm.range(event_key(1)..=event_key(u64::MAX)).next_back() {
        Some(item) => {
            let (k, _) = item?;
            u64::from_be_bytes(k[1..].try_into().expect("an event key is 9 bytes"))
        }
        None => 0,
    };
    let tree = open_tree(&db, stored_events)?;
    let (projection, mirrors, from_image) = {
        let tiles = db.tiles();
        open_state(
            &db,
            &TreeView {
                tree: &tree,
                tiles: &tiles,
            },
        )?
    };
    if projection.event_count() != stored_events {
        anyhow::bail!(
            "the state machine holds {stored_events} events but {} replay",
            projection.event_count()
        );
    }
    tracing::info!(events = projection.event_count(), from_image,
        replayed = projection.event_count() - from_image, last_applied = ?meta.last_applied,
        ms = started.elapsed().as_millis() as u64, "state machine opened");
    let (tx, _) = tokio::sync::watch::channel(projection.event_count());
    let shared = Arc::new(Shared {
        applied: RwLock::new(Applied {
            projection,
            mirrors,
            tree,
            last_applied: meta.last_applied,
            membership: meta.membership,
        }),
        event_count: tx,
        db: db.clone(),
    });
    Ok((
        LogStore {
            db: db.clone(),
            segments: Arc::new(std::sync::Mutex::new(segments)),
            flusher: Flusher::start(timings.log_sync)?,
        },
        StateMachineStore {
            db,
            shared,
            apply_seconds: timings.apply,
        },
    ))
}

/// Where the store reports how long its syncs and applies take (the
/// node's metrics; unregistered histograms by default).
pub struct StoreTimings {
    pub log_sync: prometheus_client::metrics::histogram::Histogram,
    pub apply: prometheus_client::metrics::histogram::Histogram,
}

impl Default for StoreTimings {
    fn default() -> Self {
        let unregistered =
            || prometheus_client::metrics::histogram::Histogram::new([0.001, 0.01, 0.1]);
        StoreTimings {
            log_sync: unregistered(),
            apply: unregistered(),
        }
    }
}

#[derive(Clone)]
pub struct LogStore {
    db: Arc<Db>,
    segments: Arc<std::sync::Mutex<Segments>>,
    flusher: Flusher,
}

/// Makes appended Raft log entries durable off openraft's core task: one
/// thread syncs once for every append queued while the previous sync ran
/// (group commit), then reports each, in order.
#[derive(Clone)]
struct Flusher {
    queue: std::sync::mpsc::Sender<(Arc<File>, IOFlushed<TypeConfig>)>,
}

impl Flusher {
    fn start(seconds: prometheus_client::metrics::histogram::Histogram) -> io::Result<Flusher> {
        let (queue, waiting) = std::sync::mpsc::channel::<(Arc<File>, IOFlushed<TypeConfig>)>();
        std::thread::Builder::new()
            .name("raft-log-flusher".into())
            .spawn(move || {
                // Ends when the last LogStore is dropped.
                while let Ok(first) = waiting.recv() {
                    let mut queued = vec![first];
                    queued.extend(waiting.try_iter());
                    let started = std::time::Instant::now();
                    // Normally one file; two when a segment was closed meanwhile.
                    let mut synced: Vec<&Arc<File>> = Vec::new();
                    let mut result = Ok(());
                    for (file, _) in &queued {
                        if result.is_ok() && !synced.iter().any(|f| Arc::ptr_eq(f, file)) {
                            result = file.sync_data();
                            synced.push(file);
                        }
                    }
                    seconds.observe(started.elapsed().as_secs_f64());
                    if let Err(e) = &result {
                        tracing::error!(error = %e, "syncing the Raft log failed");
                    }
                    for (_, callback) in queued {
                        callback.io_completed(
                            result
                                .as_ref()
                                .map(|_| ())
                                .map_err(|e| io::Error::new(e.kind(), e.to_string())),
                        );
                    }
                }
            })?;
        Ok(Flusher { queue })
    }

    fn submit(&self, file: Arc<File>, callback: IOFlushed<TypeConfig>) -> io::Result<()> {
        self.queue
            .send((file, callback))
            .map_err(|_| io::Error::other("the Raft log flusher has stopped"))
    }
}

/// `[start, end)` of a range of log indexes.
fn index_span<RB: RangeBounds<u64>>(range: &RB) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(i) => *i,
        Bound::Excluded(i) => i.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(i) => i.saturating_add(1),
        Bound::Excluded(i) => *i,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

/// Moves a Raft log kept in sled by an earlier build into segment files:
/// written to a temporary directory, synced, renamed into place, and only
/// then removed from sled.
fn migrate_sled_log(db: &Db, log_dir: &Path) -> io::Result<()> {
    if !log_dir.is_dir() && !db.log.is_empty() {
        let temporary = log_dir.with_extension("migrating");
        if temporary.exists() {
            std::fs::remove_dir_all(&temporary)?;
        }
        let mut entries = Vec::new();
        for item in db.log.iter() {
            let (_, v) = item.map_err(io_err)?;
            entries.push(decode::<Entry>(&v, "log entry")?);
        }
        let mut segments = Segments::open(&temporary, None)?;
        segments.append(&entries)?;
        segments.sync()?;
        std::fs::rename(&temporary, log_dir)?;
        File::open(&db.dir)?.sync_all()?;
        tracing::info!(
            entries = entries.len(),
            "moved the Raft log from sled into segment files"
        );
    }
    if log_dir.is_dir() && !db.log.is_empty() {
        db.log.clear().map_err(io_err)?;
        db.sync()?;
    }
    Ok(())
}

impl LogStore {
    fn meta_get<T: for<'a> Deserialize<'a>>(&self, key: &[u8]) -> io::Result<Option<T>> {
        self.db.meta_get(key)
    }

    fn meta_put<T: Serialize>(&self, key: &[u8], v: &T) -> io::Result<()> {
        self.db.raft_meta.insert(key, encode(v)?).map_err(io_err)?;
        Ok(())
    }
}

impl LogStore {
    fn segments(&self) -> std::sync::MutexGuard<'_, Segments> {
        self.segments.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let (start, end) = index_span(&range);
        self.segments().read(start, end)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        self.meta_get(VOTE_KEY)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let last_purged: Option<LogId> = self.meta_get(PURGED_KEY)?;
        let last = self.segments().last_log_id().or(last_purged);
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        self.meta_put(VOTE_KEY, vote)?;
        self.db.sync_async().await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        // Not synced: losing it only means re-deriving commit from a quorum.
        self.meta_put(COMMITTED_KEY, &committed)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.meta_get::<Option<LogId>>(COMMITTED_KEY)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        // Readable now; durable (and so acknowledged) only once the flusher
        // has synced it. Returning before the sync lets openraft replicate
        // the entries meanwhile: the leader's and the followers' syncs overlap.
        match self.segments().append(&entries)? {
            Some(file) => self.flusher.submit(file, callback),
            None => {
                callback.io_completed(Ok(()));
                Ok(())
            }
        }
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        self.segments()
            .truncate_after(last_log_id.map(|l| l.index()))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        // The marker is durable before any entry goes, so a crash in between
        // never shows a log with a hole and no marker; the same sync makes
        // the applied events the purged entries held durable in sled.
        self.meta_put(PURGED_KEY, &log_id)?;
        self.db.sync_async().await?;
        self.segments().purge(log_id.index())
    }
}

/// The Raft state machine: the applied event log and its projections.
#[derive(Clone)]
pub struct StateMachineStore {
    db: Arc<Db>,
    shared: Arc<Shared>,
    apply_seconds: prometheus_client::metrics::histogram::Histogram,
}

impl StateMachineStore {
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Decides one batch on top of what is staged: a client's, all of its
    /// events or none; or one imported event, in its namespace.
    fn stage_batch(
        staged: &mut Staged<'_>,
        imports: &mut MirrorStage<'_>,
        stored: &[Vec<u8>],
        tree: &dyn LogTree,
    ) -> Result<Vec<Appended>, Refusal> {
        let mut tagged = Vec::with_capacity(stored.len());
        for value in stored {
            // Indexes are not assigned yet; 0 names none in the error.
            let (_, tag, envelope) =
                split_tagged(value, 0).map_err(|e| Refusal::Malformed(e.to_string()))?;
            tagged.push((tag, envelope, parse_stored(envelope)?));
        }
        match tagged.as_slice() {
            [(Some(tag), envelope, event)] => imports
                .stage_import(
                    staged,
                    tag,
                    event,
                    envelope.len(),
                    &pre_genesis_limits(),
                    tree,
                )
                .map(|appended| vec![appended]),
            _ if tagged.iter().any(|(tag, _, _)| tag.is_some()) => Err(Refusal::Malformed(
                "an imported event is a batch of its own".into(),
            )),
            _ => {
                let events: Vec<Event> = tagged.into_iter().map(|(_, _, e)| e).collect();
                staged.stage_batch_over(&events, &pre_genesis_limits(), tree)
            }
        }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let file = {
            let applied = self.shared.read();
            SnapshotFile {
                meta: SnapshotMeta {
                    last_log_id: applied.last_applied,
                    last_membership: applied.membership.clone(),
                },
                events: applied.projection.event_count(),
                image: host_image(&applied.projection, &applied.mirrors)?,
            }
        };
        // The image covers applied events that stay in sled, which the
        // commit path no longer syncs: they are durable before it is.
        self.db.sync_async().await?;
        write_snapshot_file(
            &self.db,
            &SnapshotFileRef {
                meta: &file.meta,
                events: file.events,
                image: &file.image,
            },
        )?;
        tracing::info!(last_log_id = ?file.meta.last_log_id, events = file.events,
            image_bytes = file.image.len(), "snapshot built");
        Ok(local_snapshot(&self.db, file))
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let a = self.shared.read();
        Ok((a.last_applied, a.membership.clone()))
    }

    async fn apply<Strm>(&mut self, entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let entries: Vec<EntryResponder<TypeConfig>> = entries.try_collect().await?;
        let started = std::time::Instant::now();
        // Decide every batch under the read lock (signatures are verified
        // here), each on top of the batches before it, and grow the tree by
        // each accepted batch before deciding the next: a checkpoint is
        // checked against the tree as it stood before its batch, the same on
        // every replica however entries are grouped into apply calls. The
        // tiles this call finishes are read from `pending` until written.
        // Readers go on meanwhile.
        let mut writes = sled::Batch::default();
        let mut tree;
        let (verdicts, changes, mirrored) = {
            let applied = self.shared.read();
            tree = applied.tree.clone();
            let stored_tiles = self.db.tiles();
            let mut pending = HashMap::new();
            let empty = crate::capabilities::projection();
            let mut staged = Staged::new(&applied.projection);
            let mut imports = MirrorStage::new(&applied.mirrors, &empty);
            let mut verdicts: Vec<Vec<Result<Vec<Appended>, Refusal>>> =
                Vec::with_capacity(entries.len());
            for (entry, _) in &entries {
                let EntryPayload::Normal(req) = &entry.payload else {
                    verdicts.push(Vec::new());
                    continue;
                };
                let mut results = Vec::with_capacity(req.batches.len());
                for batch in &req.batches {
                    let view = TreeView {
                        tree: &tree,
                        tiles: &PendingTiles {
                            stored: &stored_tiles,
                            pending: &pending,
                        },
                    };
                    let r = Self::stage_batch(&mut staged, &mut imports, batch, &view);
                    match &r {
                        Ok(out) => {
                            for (appended, bytes) in out.iter().zip(batch) {
                                if !appended.duplicate {
                                    writes.insert(&event_key(appended.index), bytes.as_slice());
                                    grow_tree(
                                        &mut tree,
                                        &mut writes,
                                        Some(&mut pending),
                                        [(appended.index, bytes.as_slice())],
                                    )?;
                                }
                            }
                        }
                        Err(e) => {
                            tracing::debug!(log_id = %entry.log_id, error = %e, "state machine refused a batch");
                        }
                    }
                    results.push(r);
                }
                verdicts.push(results);
            }
            let changes = staged.into_changes();
            let mirrored = imports.into_changes();
            applied
                .projection
                .check_supported(&changes)
                .map_err(unsupported)?;
            (verdicts, changes, mirrored)
        };
        // Write the accepted events, the tiles and the applied id, then
        // commit, under the write lock: readers never see a projection ahead
        // of the disk. Only this task changes the state, so what was staged
        // still applies.
        let mut replies = Vec::with_capacity(entries.len());
        let count = {
            let mut applied = self.shared.write();
            for ((entry, responder), results) in entries.into_iter().zip(verdicts) {
                applied.last_applied = Some(entry.log_id);
                let response = match entry.payload {
                    EntryPayload::Blank => LogResponse::default(),
                    EntryPayload::Normal(_) => LogResponse { results },
                    EntryPayload::Membership(m) => {
                        applied.membership = StoredMembership::new(Some(entry.log_id), m);
                        LogResponse::default()
                    }
                };
                if let Some(r) = responder {
                    replies.push((r, response));
                }
            }
            let meta = SmMeta {
                last_applied: applied.last_applied,
                membership: applied.membership.clone(),
            };
            writes.insert(SM_META_KEY, encode(&meta)?);
            self.db.sm.apply_batch(writes).map_err(io_err)?;
            let before = applied.projection.event_count();
            let accepted = changes.event_count() as u64;
            applied.projection.commit(changes);
            applied
                .mirrors
                .commit(crate::capabilities::rules(), mirrored);
            applied.tree = tree;
            assert_eq!(
                applied.projection.event_count(),
                before + accepted,
                "the projection holds the events written to disk"
            );
            assert_eq!(
                applied.tree.size(),
                applied.projection.event_count(),
                "the tree has a leaf per applied event"
            );
            applied.projection.event_count()
        };
        self.shared.event_count.send_replace(count);
        self.apply_seconds.observe(started.elapsed().as_secs_f64());
        for (r, response) in replies {
            r.send(response);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotData,
    ) -> Result<(), io::Error> {
        let started = std::time::Instant::now();
        let (transfer, ids) = snapshot.into_transfer()?;
        let (image, events) = frames(&transfer)?;
        let ids = match ids {
            Some(ids) => ids,
            None => events
                .iter()
                .enumerate()
                .map(|(i, bytes)| stored_id(bytes, i as u64 + 1))
                .collect::<io::Result<Vec<_>>>()?,
        };
        let mut writes = sled::Batch::default();
        for item in self.db.sm.iter().keys() {
            writes.remove(item.map_err(io_err)?);
        }
        for (i, bytes) in events.iter().enumerate() {
            writes.insert(&event_key(i as u64 + 1), *bytes);
        }
        // The tree first (its tiles kept until written): a replay decides
        // each event over it.
        let mut tree = TiledTree::new();
        let mut tiles = HashMap::new();
        grow_tree(
            &mut tree,
            &mut writes,
            Some(&mut tiles),
            events.iter().enumerate().map(|(i, b)| (i as u64 + 1, *b)),
        )?;
        let (projection, mirrors, image) = match restore(image, ids)? {
            Some((p, m)) => (p, m, std::borrow::Cow::Borrowed(image)),
            None => {
                let mut p = crate::capabilities::projection();
                let mut m = Mirrors::default();
                let none = NoTiles;
                let grown = TreeView {
                    tree: &tree,
                    tiles: &PendingTiles {
                        stored: &none,
                        pending: &tiles,
                    },
                };
                for (i, bytes) in events.iter().enumerate() {
                    replay(&mut p, &mut m, bytes, i as u64 + 1, &grown)?;
                }
                let image = host_image(&p, &m)?;
                (p, m, std::borrow::Cow::Owned(image))
            }
        };
        drop(tiles);
        let sm_meta = SmMeta {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        writes.insert(SM_META_KEY, encode(&sm_meta)?);
        let count = projection.event_count();
        let file = SnapshotFileRef {
            meta,
            events: count,
            image: &image,
        };
        {
            let mut applied = self.shared.write();
            self.db.sm.apply_batch(writes).map_err(io_err)?;
            *applied = Applied {
                projection,
                mirrors,
                tree,
                last_applied: meta.last_log_id,
                membership: meta.last_membership.clone(),
            };
        }
        self.db.sync_async().await?;
        write_snapshot_file(&self.db, &file)?;
        self.shared.event_count.send_replace(count);
        tracing::info!(last_log_id = ?meta.last_log_id, events = count,
            ms = started.elapsed().as_millis() as u64, "snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        Ok(read_snapshot_file(&self.db)?.map(|file| local_snapshot(&self.db, file)))
    }
}

/// An applied event as the query edge serves it.
pub struct StoredEvent {
    pub id: EventId,
    pub envelope: Envelope,
    pub salt: [u8; SALT_BYTES],
    /// For an imported event: its tag, and the tag's bytes as stored.
    pub imported: Option<(ImportTag, Vec<u8>)>,
}

/// Reads an applied event by index, for the query edge.
pub fn stored_event(db: &Db, index: u64) -> io::Result<Option<StoredEvent>> {
    let Some(value) = db.stored(index)? else {
        return Ok(None);
    };
    let (salt, stored) = split_stored(&value, index)?;
    let (_, tag, bytes) = split_tagged(&value, index)?;
    let env = codec::envelope_from_bytes(bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("stored event {index}: {e}"),
        )
    })?;
    let tag_bytes = stored[..stored.len() - bytes.len()].to_vec();
    Ok(Some(StoredEvent {
        id: EventId::of_body(&env.body),
        envelope: env,
        salt: *salt,
        imported: tag.map(|t| (t, tag_bytes)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{self, ChainHead};
    use ics_identity::payload::DeviceStatus;
    use ics_kernel::authority::{PARTY, PartyPayload};
    use ics_kernel::{Algorithm, Role, SigningKey, SubjectRef};

    fn genesis(root: &SigningKey, party: &str, role: Role) -> Envelope {
        client::signed(
            root,
            SubjectRef::new(PARTY, party),
            ChainHead::default(),
            PartyPayload::Genesis {
                party_name: party.into(),
                role,
                root_key: root.public_key(),
                rules: crate::capabilities::genesis_rules(EventLimits::default()),
            },
        )
    }

    /// The Raft log reopens after a purge (its marker read back), and a log
    /// an earlier build kept in sled moves into segment files, once.
    #[tokio::test]
    async fn the_raft_log_reopens_after_a_purge_and_moves_out_of_sled() {
        use openraft::testing::blank_ent;
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Db::open(dir.path(), 1 << 20).unwrap();
            for i in 1..=5u64 {
                let entry = blank_ent::<TypeConfig>(1, 1, i);
                db.log
                    .insert(i.to_be_bytes(), encode(&entry).unwrap())
                    .unwrap();
            }
            db.sync().unwrap();
        }
        let (mut log, _) = open(dir.path(), 1 << 20, StoreTimings::default()).unwrap();
        assert_eq!(
            log.get_log_state()
                .await
                .unwrap()
                .last_log_id
                .map(|l| l.index()),
            Some(5)
        );
        assert!(log.db.log.is_empty(), "moved out of sled");
        let entries = log.try_get_log_entries(1..=5).await.unwrap();
        assert_eq!(
            entries.iter().map(|e| e.log_id.index()).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        log.purge(blank_ent::<TypeConfig>(1, 1, 3).log_id)
            .await
            .unwrap();
        drop(log);
        let (mut log, _) = open(dir.path(), 1 << 20, StoreTimings::default()).unwrap();
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id.map(|l| l.index()), Some(3));
        assert_eq!(state.last_log_id.map(|l| l.index()), Some(5));
        let entries = log.try_get_log_entries(0..10).await.unwrap();
        assert_eq!(
            entries.iter().map(|e| e.log_id.index()).collect::<Vec<_>>(),
            [4, 5]
        );
    }

    /// A maintenance log holding its own events and acme's, imported: on
    /// open each is decided again in its namespace, and a state image with
    /// the mirror restores the same state.
    #[test]
    fn imported_events_replay_in_their_namespace_and_restore_from_an_image() {
        let dir = tempfile::tempdir().unwrap();
        let maint_root = SigningKey::generate(Algorithm::Ed25519);
        let acme_root = SigningKey::generate(Algorithm::Ed25519);
        let factory = SigningKey::generate(Algorithm::Ed25519);
        let device = SigningKey::generate(Algorithm::Ed25519).public_key();
        let thermo = SubjectRef::new(ics_identity::DEVICE, device.id().to_hex());
        let policy = format!(
            "{}\n[[import]]\npeer = \"acme\"\ndomain = \"acme-devices\"\nkinds = [\"*\"]\n",
            ics_policies::testing::descriptor_head("maint", 1, "acme", client::now_ms())
        );
        let own = [
            genesis(&maint_root, "maint", Role::Maintenance),
            client::signed(
                &maint_root,
                SubjectRef::new(PARTY, "acme"),
                ChainHead::default(),
                PartyPayload::Recognized {
                    role: Role::Manufacturer,
                    root_key: acme_root.public_key(),
                },
            ),
            client::signed(
                &maint_root,
                ics_policies::policy_subject(1),
                ChainHead::default(),
                ics_policies::PolicyPayload::Published { document: policy },
            ),
        ];
        // Each signed before the events it authorizes (the kernel checks
        // the times).
        let acme_genesis = genesis(&acme_root, "acme", Role::Manufacturer);
        let factory_key = client::register_author(
            &acme_root,
            &factory.public_key(),
            "factory",
            [
                "device-registered".to_string(),
                "device-status-changed".to_string(),
            ]
            .into(),
            client::now_ms() + 86_400_000,
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
        let registration = client::register_device(
            &factory,
            "SN-1",
            &device,
            vec![("manu".into(), "acme".into())],
        );
        let in_use = client::change_status(
            &factory,
            &thermo.id,
            ChainHead {
                sequence: 1,
                previous: Some(EventId::of_body(&registration.body)),
            },
            DeviceStatus::InUse,
            "sold",
        );
        let imported = [acme_genesis, factory_key, registration, in_use];
        let mut stored = Vec::new();
        for env in &own {
            stored.push(stored_value(
                &[1; SALT_BYTES],
                &codec::envelope_to_bytes(env),
            ));
        }
        for (i, env) in imported.iter().enumerate() {
            let tag = ImportTag {
                namespace: "acme".into(),
                via: "acme".into(),
                source_index: i as u64 + 1,
            };
            stored.push(stored_value(
                &[2; SALT_BYTES],
                &tag.wrap(&codec::envelope_to_bytes(env)),
            ));
        }
        {
            let db = Db::open(dir.path(), 1 << 20).unwrap();
            for (i, v) in stored.iter().enumerate() {
                db.sm.insert(event_key(i as u64 + 1), v.as_slice()).unwrap();
            }
            db.sm.flush().unwrap();
        }
        let (_log, sm) =
            open(dir.path(), 1 << 20, StoreTimings::default()).expect("the store opens");
        let shared = sm.shared();
        let applied = shared.read();
        assert_eq!(
            applied.projection.event_count(),
            7,
            "every event has its position"
        );
        assert_eq!(applied.tree.size(), 7);
        let mirror = applied
            .mirrors
            .get("acme")
            .expect("acme's records mirrored");
        assert_eq!(mirror.positions, vec![4, 5, 6, 7]);
        let status = mirror
            .projection
            .capability::<ics_identity::Identity>()
            .subject(&thermo)
            .and_then(|s| s.status());
        assert_eq!(status, Some("in-use"));
        assert!(
            applied
                .projection
                .capability::<ics_identity::Identity>()
                .subject(&thermo)
                .is_none(),
            "not one of maint's own records"
        );
        let read = stored_event(&shared.db, 6).unwrap().unwrap();
        assert_eq!(read.id, EventId::of_body(&imported[2].body));
        assert_eq!(read.imported.as_ref().map(|(t, _)| t.source_index), Some(3));

        let image = host_image(&applied.projection, &applied.mirrors).unwrap();
        let ids = stored
            .iter()
            .enumerate()
            .map(|(i, v)| stored_id(v, i as u64 + 1).unwrap())
            .collect();
        let (projection, mirrors) = restore(&image, ids).unwrap().expect("this build's image");
        assert!(projection.same_state(&applied.projection));
        let back = mirrors.get("acme").unwrap();
        assert!(back.projection.same_state(&mirror.projection));
        assert_eq!(back.positions, mirror.positions);
    }
}
