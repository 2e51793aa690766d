//! What a source sends a puller for the leaves `[from, to)` of its tree:
//! each event the puller may read, with its leaf salt, and for each maximal
//! run it may not, the run's aligned subtree hashes (at most two per level)
//! in place of its leaves. Pure: the host reads its stored events and tiles.

use ics_tlog::SALT_BYTES;
use ics_tlog::merkle::{Hash, NodeHashes, TreeError, subtree_hashes};

/// A stored event of the source, as the host reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceEvent {
    /// Its position in the source's log (1-based): leaf `index - 1`.
    pub index: u64,
    pub salt: [u8; SALT_BYTES],
    /// The stored envelope, an import tag first if it is another party's record.
    pub stored: Vec<u8>,
}

/// A run of leaves `[start, end)` the puller may not read, by the hashes of
/// its aligned subtrees (level, hash), left to right.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    pub start: u64,
    pub end: u64,
    pub subtrees: Vec<(u8, Hash)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Event(SourceEvent),
    Hidden(Run),
}

/// The messages for the leaves `[from, to)`: `events` yields the stored
/// events at positions `from + 1 ..= to` in order, `visible` says which the
/// puller may read, `tree` gives the hidden runs' subtree hashes.
pub fn filtered<E>(
    from: u64,
    to: u64,
    events: impl IntoIterator<Item = Result<SourceEvent, E>>,
    mut visible: impl FnMut(&SourceEvent) -> bool,
    tree: &impl NodeHashes,
) -> Result<Vec<Message>, SourceError<E>> {
    let mut out = Vec::new();
    if from >= to {
        return Ok(out);
    }
    let mut hidden_from: Option<u64> = None;
    let mut next = from;
    for event in events {
        let event = event.map_err(SourceError::Read)?;
        let leaf = event.index - 1;
        if leaf != next {
            return Err(SourceError::Order {
                expected: next + 1,
                got: event.index,
            });
        }
        next += 1;
        if visible(&event) {
            if let Some(start) = hidden_from.take() {
                out.push(Message::Hidden(run(tree, start, leaf)?));
            }
            out.push(Message::Event(event));
        } else if hidden_from.is_none() {
            hidden_from = Some(leaf);
        }
        if next == to {
            break;
        }
    }
    if next != to {
        return Err(SourceError::Order {
            expected: next + 1,
            got: 0,
        });
    }
    if let Some(start) = hidden_from {
        out.push(Message::Hidden(run(tree, start, to)?));
    }
    Ok(out)
}

fn run<E>(tree: &impl NodeHashes, start: u64, end: u64) -> Result<Run, SourceError<E>> {
    Ok(Run {
        start,
        end,
        subtrees: subtree_hashes(tree, start, end).map_err(SourceError::Tree)?,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError<E> {
    #[error("reading the stored events: {0}")]
    Read(E),
    #[error("the stored events skip: expected event {expected}, got {got}")]
    Order { expected: u64, got: u64 },
    #[error(transparent)]
    Tree(TreeError),
}
