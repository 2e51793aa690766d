//! The transparency log's upkeep on a node: the node holding the party root
//! key binds the party's log key in the log; the leader signs a checkpoint
//! of the applied (so committed) tree once `tlog.checkpoint_max_events`
//! events wait for one or `tlog.checkpoint_interval_ms` after it saw the
//! first of them, and appends it through the log, where every replica
//! checks it against its own tree (`ics_tlog::capability`). A checkpoint
//! is served only once committed: no leader, old or new, can publish two
//! that disagree.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use ics_kernel::{SigningKey, SubjectRef};
use ics_tlog::note::{self, Checkpoint};
use ics_tlog::{TLOG_KEY, Tlog, TlogPayload, checkpoint_subject, log_origin};

use crate::host::Node;
use crate::tls::{Ca, TlsDir};

/// How soon the upkeep looks again after a failure or while the log key
/// awaits its binding.
const RETRY: Duration = Duration::from_secs(1);

/// Runs for as long as the node does.
pub async fn run(node: Arc<Node>) {
    let dir = TlsDir::of(&node.config);
    if !dir.exists() {
        return;
    }
    let ca = match Ca::load(&dir) {
        Ok(ca) => ca,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "no transparency log checkpoints: the TLS material does not load");
            return;
        }
    };
    let Some(key) = ca.log_key.as_ref() else {
        tracing::warn!(
            path = %dir.log_key().display(),
            "no transparency log key: this node signs no checkpoints"
        );
        return;
    };
    let mut upkeep = Upkeep {
        origin: log_origin(&node.config.party),
        key,
        key_not_after_ms: ca.cert.not_after_ms,
        waiting_since: None,
        warned: false,
    };
    let mut applied = node.shared.event_count.subscribe();
    loop {
        let pause = match upkeep.step(&node).await {
            Ok(pause) => pause,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "transparency log upkeep did not complete; retrying");
                RETRY
            }
        };
        // Woken early by every apply: a checkpoint may fall due by count.
        tokio::select! {
            _ = applied.changed() => {}
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

struct Upkeep<'k> {
    origin: String,
    key: &'k SigningKey,
    key_not_after_ms: i64,
    /// When this node, as leader, first saw events no checkpoint covers.
    waiting_since: Option<Instant>,
    warned: bool,
}

/// What one look at the applied state found.
struct Seen {
    bound: bool,
    registered: bool,
    size: u64,
    latest: Option<u64>,
}

impl Upkeep<'_> {
    /// Does what is due; returns how long to wait before looking again.
    async fn step(&mut self, node: &Arc<Node>) -> anyhow::Result<Duration> {
        let settings = &node.config.tlog;
        let interval = Duration::from_millis(settings.checkpoint_interval_ms);
        let key_id = self.key.key_id();
        let seen = {
            let state = node.shared.read();
            let p = &state.projection;
            if p.party().is_none() {
                return Ok(RETRY);
            }
            let tlog = p.capability::<Tlog>();
            Seen {
                bound: tlog
                    .subject(&SubjectRef::new(TLOG_KEY, key_id.to_hex()))
                    .is_some(),
                registered: p.key(&key_id).is_some(),
                size: state.tree.size(),
                latest: tlog.index().latest,
            }
        };
        if !seen.bound {
            return self.bind(node, seen.registered).await;
        }
        if !node.raft.is_leader() {
            self.waiting_since = None;
            return Ok(interval);
        }
        // Leaves after the latest checkpoint, less the checkpoint's own leaf.
        let waiting = match seen.latest {
            None => seen.size,
            Some(c) => seen.size.saturating_sub(c + 1),
        };
        if waiting == 0 {
            self.waiting_since = None;
            return Ok(interval);
        }
        let since = *self.waiting_since.get_or_insert_with(Instant::now);
        if waiting < settings.checkpoint_max_events && since.elapsed() < interval {
            return Ok(interval - since.elapsed());
        }
        self.sign_and_append(node).await?;
        self.waiting_since = None;
        Ok(interval)
    }

    /// Registers the log key as an author key and binds it, where the root
    /// key is; elsewhere waits for that node to.
    async fn bind(&mut self, node: &Arc<Node>, registered: bool) -> anyhow::Result<Duration> {
        let root_path = node.config.data_dir.join("root.key");
        if !root_path.exists() {
            if !self.warned {
                tracing::info!(
                    "the transparency log key is not bound in the log yet; the node holding the root key binds it"
                );
                self.warned = true;
            }
            return Ok(RETRY);
        }
        let root = crate::keyfile::read(&root_path)?;
        let events = crate::tls::log_key_binding(
            &root,
            self.key,
            &node.config.party,
            registered,
            self.key_not_after_ms,
        );
        node.append_upkeep(events).await?;
        tracing::info!(origin = %self.origin, key = %self.key.key_id(), "bound the transparency log key in the log");
        Ok(Duration::ZERO)
    }

    /// Signs the applied tree and appends the checkpoint.
    async fn sign_and_append(&self, node: &Arc<Node>) -> anyhow::Result<()> {
        let SigningKey::Ed25519(signer) = self.key else {
            anyhow::bail!("the transparency log key is not Ed25519");
        };
        let checkpoint = {
            let state = node.shared.read();
            Checkpoint {
                origin: self.origin.clone(),
                size: state.tree.size(),
                root: state.tree.root(),
            }
        };
        let note =
            note::sign(&self.origin, signer, &checkpoint.text()).context("sign the checkpoint")?;
        let event = crate::client::signed(
            self.key,
            checkpoint_subject(checkpoint.size),
            crate::client::ChainHead::default(),
            TlogPayload::Checkpoint {
                note: note.to_bytes(),
            },
        );
        node.append_upkeep(vec![event]).await?;
        node.metrics.checkpoint_signed();
        tracing::debug!(
            size = checkpoint.size,
            "signed a transparency log checkpoint"
        );
        Ok(())
    }
}
