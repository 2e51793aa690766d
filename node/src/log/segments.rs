//! The Raft log in append-only segment files: a commit costs one write and
//! one `fdatasync`, where sled's flush wrote each of its IO buffers and
//! synced each range before ours.
//!
//! `<data dir>/raft-log/<first index, 20 digits>.seg` holds records, each
//! `[payload length: u32 LE][check: 8 bytes][payload]`, where the payload is
//! the postcard-encoded entry and the check the first 8 bytes of the BLAKE3
//! hash of its index and payload. Entries are consecutive across segments.
//! On open, a record cut short or failing its check at the end of the last
//! segment is a write that was never synced, so never acknowledged: it is cut
//! off. Anywhere else it is corruption, and the store does not open.
//!
//! Where entries are is kept in memory (an index entry per log entry); the
//! entries are read back from the files (the page cache, in practice). A
//! segment is closed (synced) past `SEGMENT_LIMIT` bytes and removed once
//! every entry in it is purged.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::store::{decode, invalid};
use super::{Entry, LogId};

/// A segment is closed once it holds this many bytes.
const SEGMENT_LIMIT: u64 = 64 * 1024 * 1024;
const HEADER_BYTES: usize = 12;
/// Longest record payload read back: an entry is at most `MAX_ENTRY_BYTES`
/// of events plus its framing; anything longer is corruption.
const MAX_RECORD_BYTES: usize = 2 * super::store::MAX_ENTRY_BYTES;
/// The log's directory in a data dir.
pub const DIR: &str = "raft-log";

fn check(index: u64, payload: &[u8]) -> [u8; 8] {
    let mut h = blake3::Hasher::new();
    h.update(&index.to_le_bytes());
    h.update(payload);
    h.finalize().as_bytes()[..8].try_into().expect("8 bytes")
}

/// Where one entry is.
#[derive(Clone)]
struct Slot {
    segment: u64,
    offset: u64,
    len: u32,
    log_id: LogId,
}

struct Segment {
    file: Arc<File>,
    path: PathBuf,
    /// Bytes written (the next record's offset).
    end: u64,
    /// The index the next record in it must have.
    next: u64,
}

/// The segment files and where each entry is.
pub struct Segments {
    dir: PathBuf,
    /// By first index.
    segments: BTreeMap<u64, Segment>,
    slots: BTreeMap<u64, Slot>,
}

fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.seg"))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Segments {
    /// Opens the log in `dir`, skipping entries at or below `purged` (a
    /// purge that crashed before removing its segments).
    pub fn open(dir: &Path, purged: Option<u64>) -> io::Result<Segments> {
        let dir = dir.to_path_buf();
        fs::create_dir_all(&dir)?;
        let mut firsts = Vec::new();
        for item in fs::read_dir(&dir)? {
            let name = item?.file_name();
            let name = name.to_string_lossy();
            if let Some(first) = name
                .strip_suffix(".seg")
                .and_then(|n| n.parse::<u64>().ok())
            {
                firsts.push(first);
            }
        }
        firsts.sort_unstable();
        let mut log = Segments {
            dir,
            segments: BTreeMap::new(),
            slots: BTreeMap::new(),
        };
        let last = firsts.last().copied();
        for first in firsts {
            log.load(first, Some(first) == last, purged)?;
        }
        if let (Some(p), Some((&first, _))) = (purged, log.slots.first_key_value())
            && first != p + 1
        {
            return Err(invalid(format!(
                "the Raft log starts at entry {first} but only entries up to {p} were purged"
            )));
        }
        Ok(log)
    }

    /// Reads one segment's records into the index.
    fn load(&mut self, first: u64, is_last: bool, purged: Option<u64>) -> io::Result<()> {
        let path = segment_path(&self.dir, first);
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let bytes = fs::read(&path)?;
        let mut offset = 0usize;
        let mut index = first;
        while offset < bytes.len() {
            let record = bytes.get(offset..offset + HEADER_BYTES).and_then(|header| {
                let len = u32::from_le_bytes(header[..4].try_into().expect("4")) as usize;
                let payload = bytes.get(offset + HEADER_BYTES..offset + HEADER_BYTES + len)?;
                (len <= MAX_RECORD_BYTES && header[4..] == check(index, payload)).then_some(payload)
            });
            let Some(payload) = record else {
                if !is_last {
                    return Err(invalid(format!(
                        "Raft log segment {} is damaged at byte {offset} (entry {index})",
                        path.display()
                    )));
                }
                tracing::warn!(segment = %path.display(), offset, index,
                    "cutting off an unsynced write at the end of the Raft log");
                file.set_len(offset as u64)?;
                file.sync_all()?;
                break;
            };
            let entry: Entry = decode(payload, "Raft log entry")?;
            if entry.log_id.index() != index {
                return Err(invalid(format!(
                    "Raft log segment {} holds entry {} where {index} belongs",
                    path.display(),
                    entry.log_id.index()
                )));
            }
            if purged.is_none_or(|p| index > p) {
                if let Some((&prev, _)) = self.slots.last_key_value()
                    && prev + 1 != index
                {
                    return Err(invalid(format!(
                        "the Raft log jumps from entry {prev} to {index}"
                    )));
                }
                self.slots.insert(
                    index,
                    Slot {
                        segment: first,
                        offset: offset as u64,
                        len: payload.len() as u32,
                        log_id: entry.log_id,
                    },
                );
            }
            offset += HEADER_BYTES + payload.len();
            index += 1;
        }
        let end = fs::metadata(&path)?.len();
        self.segments.insert(
            first,
            Segment {
                file: Arc::new(file),
                path,
                end,
                next: index,
            },
        );
        Ok(())
    }

    pub fn last_log_id(&self) -> Option<LogId> {
        self.slots.last_key_value().map(|(_, s)| s.log_id)
    }

    /// The entries in `[start, end)` this log holds, in order.
    pub fn read(&self, start: u64, end: u64) -> io::Result<Vec<Entry>> {
        let mut out = Vec::new();
        for (index, slot) in self.slots.range(start..end) {
            let segment = &self.segments[&slot.segment];
            let mut payload = vec![0u8; slot.len as usize];
            segment
                .file
                .read_exact_at(&mut payload, slot.offset + HEADER_BYTES as u64)?;
            let entry: Entry = decode(&payload, "Raft log entry")?;
            debug_assert_eq!(entry.log_id.index(), *index);
            out.push(entry);
        }
        Ok(out)
    }

    /// Writes `entries` (the next ones) to the current segment, opening a
    /// new one past the limit. Returns the file to sync for them to be
    /// durable.
    pub fn append(&mut self, entries: &[Entry]) -> io::Result<Option<Arc<File>>> {
        let Some(first) = entries.first() else {
            return Ok(None);
        };
        let next = first.log_id.index();
        if let Some((&last, _)) = self.slots.last_key_value() {
            assert_eq!(last + 1, next, "the Raft log has no holes");
        }
        // A segment's records are consecutive from its first index: after a
        // purge past its end (a snapshot installed) the entries go on in a
        // new one.
        let rotate = self
            .segments
            .last_key_value()
            .is_none_or(|(_, s)| s.end >= SEGMENT_LIMIT || s.next != next);
        if rotate {
            self.start_segment(next)?;
        }
        let (&segment_first, segment) = self
            .segments
            .iter_mut()
            .next_back()
            .expect("a segment is open");
        let mut buf = Vec::new();
        let mut slots = Vec::with_capacity(entries.len());
        for entry in entries {
            let payload = postcard::to_stdvec(entry).map_err(io::Error::other)?;
            let index = entry.log_id.index();
            slots.push((
                index,
                Slot {
                    segment: segment_first,
                    offset: segment.end + buf.len() as u64,
                    len: payload.len() as u32,
                    log_id: entry.log_id,
                },
            ));
            buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            buf.extend_from_slice(&check(index, &payload));
            buf.extend_from_slice(&payload);
        }
        segment.file.write_all_at(&buf, segment.end)?;
        segment.end += buf.len() as u64;
        segment.next = next + entries.len() as u64;
        self.slots.extend(slots);
        Ok(Some(segment.file.clone()))
    }

    /// Closes the current segment (synced) and starts one at `first`.
    fn start_segment(&mut self, first: u64) -> io::Result<()> {
        if let Some((_, current)) = self.segments.last_key_value() {
            current.file.sync_data()?;
        }
        let path = segment_path(&self.dir, first);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        sync_dir(&self.dir)?;
        self.segments.insert(
            first,
            Segment {
                file: Arc::new(file),
                path,
                end: 0,
                next: first,
            },
        );
        Ok(())
    }

    /// Removes every entry after `last` (all of them for `None`), durably.
    pub fn truncate_after(&mut self, last: Option<u64>) -> io::Result<()> {
        let from = last.map_or(0, |l| l + 1);
        let Some(cut) = self.slots.range(from..).next().map(|(_, s)| s.clone()) else {
            return Ok(());
        };
        self.slots.split_off(&from);
        let later: Vec<u64> = self
            .segments
            .range(cut.segment + 1..)
            .map(|(f, _)| *f)
            .collect();
        for first in later {
            let segment = self.segments.remove(&first).expect("listed");
            fs::remove_file(&segment.path)?;
        }
        let segment = self
            .segments
            .get_mut(&cut.segment)
            .expect("a slot's segment");
        segment.file.set_len(cut.offset)?;
        segment.end = cut.offset;
        segment.next = cut.log_id.index();
        segment.file.sync_all()?;
        sync_dir(&self.dir)
    }

    /// Forgets the entries up to `upto` and removes the segments that hold
    /// only those (never the current one). The purge marker is durable
    /// before this runs.
    pub fn purge(&mut self, upto: u64) -> io::Result<()> {
        let rest = self.slots.split_off(&(upto + 1));
        self.slots = rest;
        let firsts: Vec<u64> = self.segments.keys().copied().collect();
        let mut removed = false;
        for pair in firsts.windows(2) {
            // A segment ends where the next begins.
            if pair[1] <= upto + 1 {
                let segment = self.segments.remove(&pair[0]).expect("listed");
                fs::remove_file(&segment.path)?;
                removed = true;
            }
        }
        if removed {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Makes every segment durable (the current one is all that can be
    /// unsynced).
    pub fn sync(&self) -> io::Result<()> {
        match self.segments.last_key_value() {
            Some((_, s)) => s.file.sync_data(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::TypeConfig;
    use openraft::testing::blank_ent;

    fn entries(from: u64, to: u64) -> Vec<Entry> {
        (from..=to)
            .map(|i| blank_ent::<TypeConfig>(1, 1, i))
            .collect()
    }

    fn indexes(log: &Segments) -> Vec<u64> {
        log.read(0, u64::MAX)
            .expect("read")
            .iter()
            .map(|e| e.log_id.index())
            .collect()
    }

    #[test]
    fn reopens_what_was_appended() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = Segments::open(dir.path(), None).expect("open");
        log.append(&entries(1, 3)).expect("append");
        log.append(&entries(4, 5)).expect("append");
        log.sync().expect("sync");
        drop(log);
        let log = Segments::open(dir.path(), None).expect("reopen");
        assert_eq!(indexes(&log), vec![1, 2, 3, 4, 5]);
        assert_eq!(log.last_log_id().map(|l| l.index()), Some(5));
    }

    #[test]
    fn a_torn_last_record_is_cut_off_and_appends_go_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = Segments::open(dir.path(), None).expect("open");
        log.append(&entries(1, 3)).expect("append");
        drop(log);
        let path = segment_path(dir.path(), 1);
        let len = fs::metadata(&path).expect("segment").len();
        // A crash in the middle of writing entry 3.
        OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open segment")
            .set_len(len - 3)
            .expect("cut");
        let mut log = Segments::open(dir.path(), None).expect("reopen");
        assert_eq!(indexes(&log), vec![1, 2]);
        log.append(&entries(3, 4)).expect("append after the cut");
        drop(log);
        let log = Segments::open(dir.path(), None).expect("reopen");
        assert_eq!(indexes(&log), vec![1, 2, 3, 4]);
    }

    #[test]
    fn damage_before_the_end_is_refused_and_nothing_is_cut() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = Segments::open(dir.path(), None).expect("open");
        log.append(&entries(1, 2)).expect("append");
        // A second segment makes the first one not the last.
        log.start_segment(3).expect("rotate");
        log.append(&entries(3, 3)).expect("append");
        drop(log);
        let path = segment_path(dir.path(), 1);
        let mut bytes = fs::read(&path).expect("segment");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, &bytes).expect("damage");
        let err = Segments::open(dir.path(), None)
            .err()
            .expect("a damaged segment that is not the last is refused");
        assert!(err.to_string().contains("is damaged"), "{err}");
        assert_eq!(fs::read(&path).expect("segment"), bytes, "nothing cut");
    }

    #[test]
    fn entries_after_a_purge_past_the_end_go_in_a_new_segment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = Segments::open(dir.path(), None).expect("open");
        log.append(&entries(1, 4)).expect("append");
        // A snapshot up to 100 installed: the log is purged past its end.
        log.purge(100).expect("purge");
        log.append(&entries(101, 102)).expect("append");
        assert!(segment_path(dir.path(), 101).exists());
        drop(log);
        let log = Segments::open(dir.path(), Some(100)).expect("reopen");
        assert_eq!(indexes(&log), vec![101, 102]);
    }

    #[test]
    fn truncate_and_purge() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = Segments::open(dir.path(), None).expect("open");
        log.append(&entries(1, 4)).expect("append");
        log.start_segment(5).expect("rotate");
        log.append(&entries(5, 8)).expect("append");
        log.truncate_after(Some(6)).expect("truncate");
        assert_eq!(indexes(&log), vec![1, 2, 3, 4, 5, 6]);
        log.purge(4).expect("purge");
        assert_eq!(indexes(&log), vec![5, 6]);
        assert!(
            !segment_path(dir.path(), 1).exists(),
            "a wholly purged segment goes"
        );
        log.append(&entries(7, 7)).expect("append");
        drop(log);
        let log = Segments::open(dir.path(), Some(4)).expect("reopen");
        assert_eq!(indexes(&log), vec![5, 6, 7]);
        // A purge marker past the log's start with entries missing: refused.
        let err = Segments::open(dir.path(), Some(2))
            .err()
            .expect("a log that starts after its purge marker is refused");
        assert!(err.to_string().contains("starts at entry 5"), "{err}");
    }
}
