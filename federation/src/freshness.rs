//! How fresh another party's records are here: the peers the policy in
//! force imports that namespace from, and when this party last proved a
//! pull from each (its replicated cursor). A peer with a
//! `max_staleness_seconds` whose last contact is older makes the records
//! that may come through it answer "unknown": an infield gateway cut off
//! from its maintainer must not keep saying "trusted" about a device
//! reported stolen since. Pure: the time is passed in.

use ics_policies::Descriptor;

use crate::capability::PeerCursor;

/// One peer a namespace is imported from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub peer: String,
    /// When this party last proved a pull from it, and up to which size
    /// of its log; `None` before the first.
    pub synced: Option<(i64, u64)>,
    pub max_staleness_ms: Option<i64>,
}

impl Source {
    /// Why records through this peer are too old to answer on at `now_ms`.
    pub fn stale(&self, now_ms: i64) -> Option<String> {
        let max = self.max_staleness_ms?;
        Some(match self.synced {
            None => format!("no sync with {} yet", self.peer),
            Some((at, size)) if now_ms.saturating_sub(at) > max => format!(
                "last sync with {} ({}s ago, at its size {size}) is older than the policy's \
                 max_staleness_seconds {}",
                self.peer,
                now_ms.saturating_sub(at) / 1000,
                max / 1000
            ),
            Some(_) => return None,
        })
    }
}

/// The peers a namespace's records come from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Freshness {
    pub sources: Vec<Source>,
}

impl Freshness {
    /// The first reason the records are too old, if any source is stale.
    pub fn stale(&self, now_ms: i64) -> Option<String> {
        self.sources.iter().find_map(|s| s.stale(now_ms))
    }

    /// The most recent contact among the sources.
    pub fn latest(&self) -> Option<(&str, i64, u64)> {
        self.sources
            .iter()
            .filter_map(|s| s.synced.map(|(at, size)| (s.peer.as_str(), at, size)))
            .max_by_key(|(_, at, _)| *at)
    }
}

/// The peers `descriptor` imports `namespace`'s records from (an import
/// rule whose domain is of that namespace or of any), with their cursors.
pub fn freshness<'a>(
    descriptor: &Descriptor,
    namespace: &str,
    cursor: impl Fn(&str) -> Option<&'a PeerCursor>,
) -> Freshness {
    let mut sources: Vec<Source> = Vec::new();
    for rule in &descriptor.imports {
        let covers = descriptor
            .domain(&rule.domain)
            .is_some_and(|d| d.namespace.as_deref().is_none_or(|n| n == namespace));
        if !covers || sources.iter().any(|s| s.peer == rule.peer) {
            continue;
        }
        sources.push(Source {
            peer: rule.peer.clone(),
            synced: cursor(&rule.peer).map(|c| (c.synced_ms, c.size)),
            max_staleness_ms: descriptor.max_staleness_ms(&rule.peer),
        });
    }
    Freshness { sources }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;

    fn descriptor(staleness: &str) -> Descriptor {
        let head = ics_policies::testing::descriptor_head("gw", 1, "maint", T0)
            .replace("[[domain]]", &format!("{staleness}\n[[domain]]"));
        let text = format!(
            "{head}namespace = \"acme\"\n\n[[import]]\npeer = \"maint\"\ndomain = \"acme-devices\"\nkinds = [\"*\"]\n"
        );
        Descriptor::parse(&text).expect("the descriptor parses")
    }

    fn cursor(synced_ms: i64, size: u64) -> PeerCursor {
        PeerCursor {
            peer: "maint".into(),
            size,
            root: Default::default(),
            frontier: Vec::new(),
            checkpoint: Vec::new(),
            position: 7,
            synced_ms,
            policies: (1, 1),
        }
    }

    #[test]
    fn a_peer_past_its_staleness_makes_the_namespace_unknown() {
        let d = descriptor("max_staleness_seconds = 60\n");
        let before = freshness(&d, "acme", |_| None);
        assert_eq!(before.sources.len(), 1);
        assert!(before.stale(T0).unwrap().contains("no sync with maint yet"));

        let c = cursor(T0, 40);
        let f = freshness(&d, "acme", |p| (p == "maint").then_some(&c));
        assert_eq!(f.latest(), Some(("maint", T0, 40)));
        assert_eq!(f.stale(T0 + 60_000), None, "at the limit it still answers");
        let why = f.stale(T0 + 61_000).expect("past the limit");
        assert!(why.contains("61s ago") && why.contains("size 40"), "{why}");
    }

    #[test]
    fn without_a_limit_or_an_import_nothing_is_stale() {
        let d = descriptor("");
        assert_eq!(freshness(&d, "acme", |_| None).stale(T0 + (1 << 40)), None);
        let other = freshness(&descriptor("max_staleness_seconds = 60\n"), "devco", |_| {
            None
        });
        assert!(
            other.sources.is_empty(),
            "acme-devices is not devco's namespace"
        );
    }
}
