//! Snapshots: this node's snapshot file (openraft's meta, the number of
//! events the state image covers, the image) and the form a snapshot is sent
//! in (the image, then the covered events, read from the event store as the
//! stream is polled). The state machine that builds and installs them is in
//! `store.rs`.

use std::fs::{File, OpenOptions};
use std::io;
use std::sync::Arc;

use ics_kernel::EventId;
use ics_kernel::StateImage;
use serde::{Deserialize, Serialize};

use super::store::{
    Db, MAX_ENTRY_BYTES, decode, invalid, io_err, own_image, split_stored, stored_id,
};
use super::{Snapshot, SnapshotMeta};

/// This node's last snapshot: Raft's meta, the number of applied events the
/// image covers (positions 1 to `events`), and the image.
#[derive(Serialize, Deserialize)]
pub(super) struct SnapshotFile {
    pub(super) meta: SnapshotMeta,
    pub(super) events: u64,
    pub(super) image: Vec<u8>,
}

/// The same, borrowed, for writing: an installed image goes to disk from
/// the received bytes, without another copy.
#[derive(Serialize)]
pub(super) struct SnapshotFileRef<'a> {
    pub(super) meta: &'a SnapshotMeta,
    pub(super) events: u64,
    pub(super) image: &'a [u8],
}

pub(super) fn read_snapshot_file(db: &Db) -> io::Result<Option<SnapshotFile>> {
    match std::fs::read(db.snapshot_path()) {
        Ok(bytes) => Ok(Some(decode(&bytes, "snapshot file")?)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes this node's snapshot file: a temporary name, fsynced, renamed,
/// and the directory fsynced.
pub(super) fn write_snapshot_file(db: &Db, file: &SnapshotFileRef<'_>) -> io::Result<()> {
    let path = db.snapshot_path();
    let tmp = path.with_extension("tmp");
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    let mut out = io::BufWriter::new(f);
    postcard::to_io(file, &mut out).map_err(io_err)?;
    let f = out.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    File::open(&db.dir)?.sync_all()
}

/// A snapshot file as openraft carries it: its events are read from `db` as they are sent.
pub(super) fn local_snapshot(db: &Arc<Db>, file: SnapshotFile) -> Snapshot {
    Snapshot {
        meta: file.meta,
        snapshot: SnapshotData::Local {
            image: Arc::new(file.image),
            events: file.events,
            db: db.clone(),
        },
    }
}

/// A snapshot as openraft carries it. The transfer form is a sequence of
/// frames, each a 4-byte big-endian length and that many bytes: the state
/// image, then the envelope bytes of every event it covers, in log order.
pub enum SnapshotData {
    /// One of this node's: its image, and the stored events it covers,
    /// read from disk as they are sent.
    Local {
        image: Arc<Vec<u8>>,
        events: u64,
        db: Arc<Db>,
    },
    /// One received from the leader, in the transfer form, with the ids of
    /// its events (computed when the transport checked it).
    Received {
        transfer: Vec<u8>,
        ids: Vec<EventId>,
    },
}

fn push_frame(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

impl SnapshotData {
    /// The transfer form in chunks of about `chunk_bytes`, read as they go:
    /// a leader never holds a whole snapshot's events in memory.
    pub fn into_chunks(
        self,
        chunk_bytes: usize,
    ) -> Box<dyn Iterator<Item = io::Result<Vec<u8>>> + Send> {
        match self {
            SnapshotData::Received { transfer, .. } => {
                let chunks: Vec<io::Result<Vec<u8>>> = transfer
                    .chunks(chunk_bytes)
                    .map(|c| Ok(c.to_vec()))
                    .collect();
                Box::new(chunks.into_iter())
            }
            SnapshotData::Local { image, events, db } => {
                // The image frame, cut like the rest: chunks are bytes of the
                // transfer form, not frames.
                let mut framed = Vec::with_capacity(image.len() + 4);
                push_frame(&mut framed, &image);
                let head: Vec<io::Result<Vec<u8>>> =
                    framed.chunks(chunk_bytes).map(|c| Ok(c.to_vec())).collect();
                let mut next = 1u64;
                let rest = std::iter::from_fn(move || {
                    if next > events {
                        return None;
                    }
                    let mut chunk = Vec::with_capacity(chunk_bytes + MAX_ENTRY_BYTES);
                    while next <= events && chunk.len() < chunk_bytes {
                        match db.stored(next) {
                            Ok(Some(bytes)) => push_frame(&mut chunk, &bytes),
                            Ok(None) => {
                                return Some(Err(invalid(format!(
                                    "applied event {next} missing from the event store"
                                ))));
                            }
                            Err(e) => return Some(Err(e)),
                        }
                        next += 1;
                    }
                    Some(Ok(chunk))
                });
                Box::new(head.into_iter().chain(rest))
            }
        }
    }

    /// The transfer form, and the events' ids when they are known.
    pub(super) fn into_transfer(self) -> io::Result<(Vec<u8>, Option<Vec<EventId>>)> {
        match self {
            SnapshotData::Received { transfer, ids } => Ok((transfer, Some(ids))),
            local => local
                .into_chunks(SNAPSHOT_CHUNK_BYTES)
                .collect::<io::Result<Vec<_>>>()
                .map(|chunks| (chunks.concat(), None)),
        }
    }
}

/// Why a snapshot from a peer is refused before openraft sees it. openraft
/// trusts its leader: a snapshot beyond its sender's vote trips an assertion
/// that stops the Raft core (F5), and any well-formed snapshot replaces the
/// state, even with a prefix of the log (F1). Checked here first.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotRefusal {
    #[error("snapshot names no last log id")]
    NoLastLogId,
    #[error("snapshot last log id {last} is beyond its sender's vote {vote}")]
    BeyondVote { last: String, vote: String },
    #[error("snapshot vote {got} is older than this node's vote {ours}")]
    StaleVote { got: String, ours: String },
    #[error("snapshot sender {0} is not a member of this cluster")]
    NotMember(u64),
    #[error(
        "snapshot last log id {last} is after this node's committed {committed} but not at a later index"
    )]
    ContradictsCommitted { last: String, committed: String },
    #[error(
        "snapshot holds {got} events, fewer than the {ours} this node applied: it would roll the log back"
    )]
    RollsBack { got: u64, ours: u64 },
    #[error(
        "snapshot's first {ours} events are not the ones this node applied: it would rewrite history"
    )]
    Rewrites { ours: u64 },
    #[error("snapshot is malformed: {0}")]
    Malformed(String),
}

/// Checks a snapshot's header against this node's Raft state, before a
/// byte of its data is read: its vote, its meta, its sender.
pub fn check_header(
    vote: &super::Vote,
    meta: &SnapshotMeta,
    ours: &openraft::RaftMetrics<super::TypeConfig>,
) -> Result<(), SnapshotRefusal> {
    let last = meta.last_log_id.ok_or(SnapshotRefusal::NoLastLogId)?;
    if last.leader_id > vote.leader_id {
        return Err(SnapshotRefusal::BeyondVote {
            last: last.to_string(),
            vote: vote.to_string(),
        });
    }
    if vote.partial_cmp(&ours.vote) == Some(std::cmp::Ordering::Less) {
        return Err(SnapshotRefusal::StaleVote {
            got: vote.to_string(),
            ours: ours.vote.to_string(),
        });
    }
    // A node not yet part of any membership (a learner being added) learns
    // the membership from the snapshot itself.
    let membership = ours.membership_config.membership();
    let sender = vote.leader_id.node_id;
    if membership.nodes().next().is_some() && membership.get_node(&sender).is_none() {
        return Err(SnapshotRefusal::NotMember(sender));
    }
    if let Some(committed) = ours.local_committed
        && last > committed
        && last.index <= committed.index
    {
        return Err(SnapshotRefusal::ContradictsCommitted {
            last: last.to_string(),
            committed: committed.to_string(),
        });
    }
    Ok(())
}

/// Checks that a received snapshot (its transfer form) extends the log this
/// node applied: at least as many events, the first of them the ones this
/// node has (their ids chain to its log hash), and an image that covers
/// exactly the events sent. Returns the events' ids, for the install.
pub fn check_extends(
    transfer: &[u8],
    applied_events: u64,
    applied_log_hash: [u8; 32],
    applied_tree_root: ics_tlog::Hash,
) -> Result<Vec<EventId>, SnapshotRefusal> {
    let malformed = |e: String| SnapshotRefusal::Malformed(e);
    let (image, events) = frames(transfer).map_err(|e| malformed(e.to_string()))?;
    let got = events.len() as u64;
    if got < applied_events {
        return Err(SnapshotRefusal::RollsBack {
            got,
            ours: applied_events,
        });
    }
    let mut hash = [0; 32];
    let mut ids = Vec::with_capacity(events.len());
    // The events this node has must also be the same leaves (same salts):
    // otherwise the transparency log's tree would change under signed
    // checkpoints.
    let mut tree = ics_tlog::Frontier::new();
    for (i, bytes) in events.iter().take(applied_events as usize).enumerate() {
        let (salt, envelope) =
            split_stored(bytes, i as u64 + 1).map_err(|e| malformed(e.to_string()))?;
        tree.append(ics_tlog::event_leaf_hash(salt, envelope));
    }
    if applied_events > 0 && tree.root() != applied_tree_root {
        return Err(SnapshotRefusal::Rewrites {
            ours: applied_events,
        });
    }
    for (i, bytes) in events.iter().enumerate() {
        let id = stored_id(bytes, i as u64 + 1).map_err(|e| malformed(e.to_string()))?;
        hash = ics_kernel::projection::next_log_hash(&hash, &id.0);
        ids.push(id);
        if i as u64 + 1 == applied_events && hash != applied_log_hash {
            return Err(SnapshotRefusal::Rewrites {
                ours: applied_events,
            });
        }
    }
    // An image of another build is not read here; the store replays the
    // events instead, and checked they extend ours above.
    let (own, _) = own_image(image).map_err(|e| malformed(e.to_string()))?;
    if let Ok((covered, log_hash)) = StateImage::head(own)
        && (covered != got || log_hash != hash)
    {
        return Err(malformed(format!(
            "its image covers {covered} events, not the {got} sent"
        )));
    }
    Ok(ids)
}

/// Size of the chunks a snapshot is sent in.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;

/// Splits the transfer form into its frames: the image, then the events.
pub(super) fn frames(mut bytes: &[u8]) -> io::Result<(&[u8], Vec<&[u8]>)> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes
            .split_first_chunk::<4>()
            .ok_or_else(|| invalid("snapshot ends inside a frame length".to_string()))?;
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() < len {
            return Err(invalid(format!(
                "snapshot frame {} of {len} bytes is cut short",
                out.len()
            )));
        }
        out.push(&rest[..len]);
        bytes = &rest[len..];
    }
    if out.is_empty() {
        return Err(invalid("snapshot holds no state image".to_string()));
    }
    let image = out.remove(0);
    if let Some(i) = out.iter().position(|e| e.len() > MAX_ENTRY_BYTES) {
        return Err(invalid(format!(
            "snapshot event {} is over {MAX_ENTRY_BYTES} bytes",
            i + 1
        )));
    }
    Ok((image, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::store::event_key;

    /// A leader's snapshot goes out in chunks a message carries, however
    /// large its image, and the follower reads back the same frames.
    #[test]
    fn local_snapshot_chunks_fit_a_message_and_frame_back() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), 8 << 20).unwrap();
        let events: Vec<Vec<u8>> = (1..=5u8).map(|i| vec![i; 300_000]).collect();
        for (i, e) in events.iter().enumerate() {
            db.sm.insert(event_key(i as u64 + 1), e.as_slice()).unwrap();
        }
        let image: Vec<u8> = (0..3_500_000u32).map(|i| i as u8).collect();
        let data = SnapshotData::Local {
            image: Arc::new(image.clone()),
            events: 4,
            db: db.clone(),
        };
        let chunk = 1024 * 1024;
        let chunks: Vec<Vec<u8>> = data.into_chunks(chunk).collect::<io::Result<_>>().unwrap();
        assert!(chunks.len() > 4, "the image alone takes four chunks");
        for c in &chunks {
            assert!(
                c.len() <= chunk + MAX_ENTRY_BYTES,
                "a chunk of {} bytes",
                c.len()
            );
        }
        let transfer = chunks.concat();
        let (got_image, got_events) = frames(&transfer).unwrap();
        assert_eq!(got_image, image.as_slice());
        assert_eq!(
            got_events,
            events[..4].iter().map(Vec::as_slice).collect::<Vec<_>>()
        );

        // Cut short, or with no image, it is refused with the reason.
        let err = frames(&transfer[..transfer.len() - 1]).unwrap_err();
        assert!(err.to_string().contains("cut short"), "{err}");
        assert!(
            frames(&[])
                .unwrap_err()
                .to_string()
                .contains("no state image")
        );

        // An event missing from the store ends the stream with an error.
        let data = SnapshotData::Local {
            image: Arc::new(vec![1]),
            events: 6,
            db,
        };
        let err = data
            .into_chunks(chunk)
            .find_map(Result::err)
            .expect("an error");
        assert!(err.to_string().contains("event 6 missing"), "{err}");
    }
}
