//! A puller's check of what a source sent: every leaf from its cursor to a
//! checkpoint accounted for, in order, by a visible event or a hidden run,
//! and the frontier they build reaching the checkpoint's root. Then nothing
//! was left out, reordered or substituted (RFC 6962 second preimage
//! resistance); the events themselves are checked by the rules on import.

use ics_tlog::event_leaf_hash;
use ics_tlog::merkle::{Frontier, Hash, aligned_subtrees};

use crate::source::{Message, SourceEvent};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("expected leaf {expected}, the source sent {got}")]
    OutOfOrder { expected: u64, got: u64 },
    #[error("hidden run [{start}, {end}) is not given by its aligned subtrees")]
    BadRun { start: u64, end: u64 },
    #[error("the source's copy ends at leaf {at}, its checkpoint is of size {size}")]
    Incomplete { at: u64, size: u64 },
    #[error(
        "the copy does not reach the checkpoint's root at size {size}: something was left out, reordered or changed"
    )]
    RootMismatch { size: u64 },
    #[error("a checkpoint of size {size} is behind the leaves already accounted for ({cursor})")]
    Behind { size: u64, cursor: u64 },
}

/// Extends a frontier kept at the puller's cursor, message by message.
#[derive(Clone, Debug)]
pub struct Verifier {
    frontier: Frontier,
    events: Vec<SourceEvent>,
}

/// A copy proven complete: the events to import and the frontier at the
/// checkpoint, the puller's next cursor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub events: Vec<SourceEvent>,
    pub frontier: Frontier,
}

impl Verifier {
    pub fn new(frontier: Frontier) -> Self {
        Verifier {
            frontier,
            events: Vec::new(),
        }
    }

    /// Leaves accounted for so far.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    pub fn feed(&mut self, message: Message) -> Result<(), VerifyError> {
        let at = self.frontier.size();
        match message {
            Message::Event(event) => {
                if event.index != at + 1 {
                    return Err(VerifyError::OutOfOrder {
                        expected: at,
                        got: event.index.wrapping_sub(1),
                    });
                }
                self.frontier
                    .append(event_leaf_hash(&event.salt, &event.stored));
                self.events.push(event);
            }
            Message::Hidden(run) => {
                if run.start != at {
                    return Err(VerifyError::OutOfOrder {
                        expected: at,
                        got: run.start,
                    });
                }
                let bad = || VerifyError::BadRun {
                    start: run.start,
                    end: run.end,
                };
                let shape = if run.end > run.start {
                    aligned_subtrees(run.start, run.end)
                } else {
                    return Err(bad());
                };
                if shape.len() != run.subtrees.len()
                    || shape
                        .iter()
                        .zip(&run.subtrees)
                        .any(|((level, _), (given, _))| level != given)
                {
                    return Err(bad());
                }
                for (level, hash) in &run.subtrees {
                    self.frontier
                        .append_subtree(*level, *hash)
                        .map_err(|_| bad())?;
                }
            }
        }
        Ok(())
    }

    /// The copy is complete if it reached `size` leaves with the root a
    /// checkpoint signed for that size.
    pub fn finish(self, size: u64, root: &Hash) -> Result<Verified, VerifyError> {
        if size < self.frontier.size() {
            return Err(VerifyError::Behind {
                size,
                cursor: self.frontier.size(),
            });
        }
        if self.frontier.size() != size {
            return Err(VerifyError::Incomplete {
                at: self.frontier.size(),
                size,
            });
        }
        if self.frontier.root() != *root {
            return Err(VerifyError::RootMismatch { size });
        }
        Ok(Verified {
            events: self.events,
            frontier: self.frontier,
        })
    }
}
