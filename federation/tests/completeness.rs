//! A policy-filtered copy of a source's log, proven complete against its
//! tree's root: every honest copy verifies, resumed from any cursor; every
//! copy with an event left out, reordered, changed, or a hidden run bent,
//! is refused.

use ics_federation::*;
use ics_tlog::event_leaf_hash;
use ics_tlog::merkle::{Frontier, MemoryTree, root};

/// A source of `n` events; event i is visible when `visible(i)`.
struct Source {
    events: Vec<SourceEvent>,
    tree: MemoryTree,
}

impl Source {
    fn new(n: u64) -> Source {
        let mut tree = MemoryTree::new();
        let events: Vec<SourceEvent> = (1..=n)
            .map(|index| {
                let mut salt = [0u8; 16];
                salt[..8].copy_from_slice(&index.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
                let stored = format!("event {index}").into_bytes();
                tree.append(event_leaf_hash(&salt, &stored));
                SourceEvent {
                    index,
                    salt,
                    stored,
                }
            })
            .collect();
        Source { events, tree }
    }

    fn copy(&self, from: u64, to: u64, visible: impl Fn(u64) -> bool) -> Vec<Message> {
        filtered::<()>(
            from,
            to,
            self.events[from as usize..].iter().cloned().map(Ok),
            |e| visible(e.index),
            &self.tree,
        )
        .expect("the source reads its own log")
    }

    fn root(&self, size: u64) -> [u8; 32] {
        root(&self.tree, size).unwrap()
    }

    fn frontier(&self, size: u64) -> Frontier {
        Frontier::from_store(&self.tree, size).unwrap()
    }
}

fn verify(
    frontier: Frontier,
    messages: Vec<Message>,
    size: u64,
    root: &[u8; 32],
) -> Result<Verified, VerifyError> {
    let mut v = Verifier::new(frontier);
    for m in messages {
        v.feed(m)?;
    }
    v.finish(size, root)
}

fn visibility(pattern: u64) -> impl Fn(u64) -> bool {
    move |i| (pattern >> (i % 61)) & 1 == 1 || i % 7 == 0
}

#[test]
fn an_honest_filtered_copy_verifies_from_any_cursor() {
    let source = Source::new(300);
    for pattern in [0u64, u64::MAX, 0x5555_5555_5555_5555, 0x0f0f_00ff_f000_1234] {
        let visible = visibility(pattern);
        for from in [0u64, 1, 2, 3, 64, 127, 200] {
            for to in [from + 1, from + 37, 300] {
                let copy = source.copy(from, to, &visible);
                let hidden: u64 = copy
                    .iter()
                    .filter_map(|m| match m {
                        Message::Hidden(r) => Some(r.subtrees.len() as u64),
                        _ => None,
                    })
                    .sum();
                let shown = copy
                    .iter()
                    .filter(|m| matches!(m, Message::Event(_)))
                    .count();
                let want = (from + 1..=to).filter(|i| visible(*i)).count();
                assert_eq!(shown, want, "every visible event is sent");
                assert!(hidden <= 2 * 64 * copy.len() as u64);
                let verified = verify(source.frontier(from), copy, to, &source.root(to))
                    .unwrap_or_else(|e| panic!("from {from} to {to}: {e}"));
                assert_eq!(verified.frontier.root(), source.root(to));
                assert!(verified.events.iter().all(|e| visible(e.index)));
            }
        }
    }
}

#[test]
fn a_resumed_copy_ends_where_one_copy_does() {
    let source = Source::new(500);
    let visible = visibility(0x0123_4567_89ab_cdef);
    let first = verify(
        source.frontier(0),
        source.copy(0, 231, &visible),
        231,
        &source.root(231),
    )
    .unwrap();
    let second = verify(
        first.frontier,
        source.copy(231, 500, &visible),
        500,
        &source.root(500),
    )
    .unwrap();
    let whole = verify(
        source.frontier(0),
        source.copy(0, 500, &visible),
        500,
        &source.root(500),
    )
    .unwrap();
    assert_eq!(second.frontier, whole.frontier);
    let both: Vec<u64> = first
        .events
        .iter()
        .chain(&second.events)
        .map(|e| e.index)
        .collect();
    let one: Vec<u64> = whole.events.iter().map(|e| e.index).collect();
    assert_eq!(both, one);
}

#[test]
fn a_hole_a_reordering_a_substitution_or_a_bent_run_is_refused() {
    let source = Source::new(100);
    let visible = visibility(0x00ff_00ff_00ff_00ff);
    let honest = source.copy(10, 100, &visible);
    let root = source.root(100);
    let events: Vec<usize> = honest
        .iter()
        .enumerate()
        .filter(|(_, m)| matches!(m, Message::Event(_)))
        .map(|(i, _)| i)
        .collect();
    let runs: Vec<usize> = honest
        .iter()
        .enumerate()
        .filter(|(_, m)| matches!(m, Message::Hidden(_)))
        .map(|(i, _)| i)
        .collect();
    assert!(events.len() > 2 && !runs.is_empty());

    let mut hole = honest.clone();
    hole.remove(events[1]);
    assert!(
        verify(source.frontier(10), hole, 100, &root).is_err(),
        "a hole"
    );

    let mut swapped = honest.clone();
    let (a, b) = (events[0], events[1]);
    let (ea, eb) = match (&honest[a], &honest[b]) {
        (Message::Event(x), Message::Event(y)) => (x.clone(), y.clone()),
        _ => unreachable!(),
    };
    swapped[a] = Message::Event(SourceEvent {
        index: ea.index,
        ..eb.clone()
    });
    swapped[b] = Message::Event(SourceEvent {
        index: eb.index,
        ..ea
    });
    assert_eq!(
        verify(source.frontier(10), swapped, 100, &root).unwrap_err(),
        VerifyError::RootMismatch { size: 100 },
        "a reordering"
    );

    let mut changed = honest.clone();
    if let Message::Event(e) = &mut changed[events[2]] {
        e.stored = b"device stolen".to_vec();
    }
    assert_eq!(
        verify(source.frontier(10), changed, 100, &root).unwrap_err(),
        VerifyError::RootMismatch { size: 100 },
        "a substitution"
    );

    let mut bent = honest.clone();
    if let Message::Hidden(r) = &mut bent[runs[0]] {
        r.subtrees[0].1[0] ^= 1;
    }
    assert_eq!(
        verify(source.frontier(10), bent, 100, &root).unwrap_err(),
        VerifyError::RootMismatch { size: 100 },
        "a bent hidden run"
    );

    let mut reshaped = honest.clone();
    if let Message::Hidden(r) = &mut reshaped[runs[0]] {
        r.subtrees.push(r.subtrees[0]);
    }
    assert!(matches!(
        verify(source.frontier(10), reshaped, 100, &root),
        Err(VerifyError::BadRun { .. })
    ));

    let short = honest[..honest.len() - 1].to_vec();
    assert!(matches!(
        verify(source.frontier(10), short, 100, &root),
        Err(VerifyError::Incomplete { .. })
    ));
    assert_eq!(
        verify(source.frontier(10), honest.clone(), 100, &source.root(99)).unwrap_err(),
        VerifyError::RootMismatch { size: 100 },
        "another checkpoint"
    );
    assert!(verify(source.frontier(10), honest, 100, &root).is_ok());
}
