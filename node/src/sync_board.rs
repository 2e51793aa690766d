//! What the federation does, per peer, as `icsctl federation status`
//! shows it: the pull tasks' reports and, as a source, each peer's serve
//! budget. Held by the host, written by the sync tasks and the federation
//! service, so neither depends on the other.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use crate::rate_limit::EventBudget;

/// The leader's pull loop as `icsctl federation status` shows it, per peer.
#[derive(Clone, Debug, Default)]
pub struct PeerReport {
    pub endpoint: String,
    pub source_size: u64,
    pub cursor_size: u64,
    pub last_attempt_ms: i64,
    pub last_success_ms: i64,
    pub last_error: String,
    pub consecutive_failures: u32,
    pub imported: u64,
    pub duplicates: u64,
    pub refused: u64,
    pub deferred_by_quota: u64,
    /// The highest policy version the peer's segments carried.
    pub source_policy: u64,
}

/// Every peer's report, written by the pull tasks, and, as a source, what
/// each peer may still pull this minute.
#[derive(Default)]
pub struct SyncBoard {
    reports: Mutex<BTreeMap<String, PeerReport>>,
    /// Keyed by peers of the policy in force (at most `MAX_PEERS`).
    served: Mutex<HashMap<String, EventBudget>>,
}

impl SyncBoard {
    pub fn report(&self, peer: &str) -> Option<PeerReport> {
        self.reports().get(peer).cloned()
    }

    pub(crate) fn update(&self, peer: &str, f: impl FnOnce(&mut PeerReport)) {
        f(self.reports().entry(peer.to_string()).or_default());
    }

    fn reports(&self) -> MutexGuard<'_, BTreeMap<String, PeerReport>> {
        self.reports.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Spends `sent` of what `peer` may pull at `per_minute`; what is left.
    pub fn serve_budget(&self, peer: &str, per_minute: u64, sent: u64) -> f64 {
        let mut served = self.served.lock().unwrap_or_else(|p| p.into_inner());
        let budget = served
            .entry(peer.to_string())
            .or_insert_with(|| EventBudget::new(per_minute));
        budget.set_per_minute(per_minute);
        if sent > 0 {
            budget.spend(sent);
        }
        budget.available()
    }
}
