//! The leader's pull loop: every `federation.pull_interval_ms`, for each
//! peer the policy in force names with an endpoint and whose log key this
//! party bound, pull the events after this party's cursor in that peer's
//! log, prove each segment complete against the peer's signed checkpoint,
//! and append what it carried, each event as its own batch tagged with its
//! namespace and provenance, then the new cursor (`federation-synced`,
//! signed by the log key). Every replica decides the imports with the same
//! rules and the policy in force (`ics_federation::MirrorStage`); refusals
//! are counted, never retried. The cursor is replicated state, so a
//! restarted node or a new leader resumes where the last proof ended; an
//! event appended twice (a pull cut between the imports and the cursor) is
//! a no-op.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use ics_federation::{
    Federation, ImportTag, Message, Run, SourceEvent, SyncedPayload, Verifier, cursor_subject,
};
use ics_kernel::SigningKey;
use ics_policies::Policies;
use ics_proto::federation_v1 as pb;
use ics_tlog::note::{Checkpoint, Note, NoteVerifier};
use ics_tlog::{Tlog, peer_log};

use crate::host::Node;
use crate::log::LogRequest;
use crate::log::store::{MAX_ENTRY_BYTES, stored_value};
use crate::rate_limit::EventBudget;

/// A peer to pull from, as the policy in force and the log name it.
struct PeerTarget {
    party: String,
    endpoints: Vec<String>,
    ca: Vec<u8>,
    log: NoteVerifier,
    events_per_minute: u64,
    /// This party's policy version in force.
    own_policy: u64,
}

/// What one pull did.
#[derive(Debug, Default)]
pub struct PullStats {
    pub imported: u64,
    pub duplicates: u64,
    pub refused: u64,
    pub size: u64,
    /// The source's latest checkpoint size it reported.
    pub latest: u64,
    /// The peer's policy changed: pull again from the beginning.
    pub restart: bool,
}

impl PullStats {
    fn received(&self) -> u64 {
        self.imported + self.duplicates + self.refused
    }
}

/// On the leader, one task per peer the policy pulls from, so a slow or
/// flooding peer delays only its own pulls; each ends when its peer leaves
/// the policy or this node stops leading.
pub async fn run(node: Arc<Node>) {
    if node.log_key.is_none() {
        return;
    }
    let interval = Duration::from_millis(node.config.federation.pull_interval_ms);
    let mut tasks: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        tokio::time::sleep(interval).await;
        tasks.retain(|_, t| !t.is_finished());
        if !node.raft.is_leader() {
            continue;
        }
        for peer in targets(&node) {
            if let std::collections::hash_map::Entry::Vacant(slot) = tasks.entry(peer.party) {
                let party = slot.key().clone();
                slot.insert(tokio::spawn(peer_loop(node.clone(), party)));
            }
        }
    }
}

async fn peer_loop(node: Arc<Node>, party: String) {
    let Some(log_key) = node.log_key.as_ref() else {
        return;
    };
    let interval = Duration::from_millis(node.config.federation.pull_interval_ms);
    let timeout = Duration::from_millis(node.config.federation.pull_timeout_ms);
    let mut channels: HashMap<String, tonic::transport::Channel> = HashMap::new();
    let mut endpoint_at = 0usize;
    let mut failures = 0u32;
    let mut budget: Option<EventBudget> = None;
    loop {
        if !node.raft.is_leader() {
            return;
        }
        let Some(peer) = targets(&node).into_iter().find(|p| p.party == party) else {
            return;
        };
        let budget = budget.get_or_insert_with(|| EventBudget::new(peer.events_per_minute));
        budget.set_per_minute(peer.events_per_minute);
        // A peer that keeps failing is asked less often (up to 32
        // intervals), with jitter, so a dead peer costs little.
        if failures > 0 && !backoff_elapsed(failures) {
            tokio::time::sleep(interval).await;
            continue;
        }
        let available = budget.available();
        if available < 1.0 {
            node.federation.update(&party, |r| r.deferred_by_quota += 1);
            tokio::time::sleep(interval).await;
            continue;
        }
        let endpoint = peer.endpoints[endpoint_at % peer.endpoints.len()].clone();
        node.federation.update(&party, |r| {
            r.endpoint = endpoint.clone();
            r.last_attempt_ms = crate::client::now_ms();
        });
        let limit = available as u64;
        let pulled = tokio::time::timeout(
            timeout,
            pull(&node, log_key, &peer, &endpoint, &mut channels, limit),
        )
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("timed out after {timeout:?}")));
        let mut more = false;
        match pulled {
            Ok(stats) => {
                failures = 0;
                budget.spend(stats.received());
                more = stats.restart || stats.size < stats.latest;
                node.metrics.federation_pulled(
                    &party,
                    stats.imported,
                    stats.refused,
                    stats.size,
                    stats.latest,
                );
                node.federation.update(&party, |r| {
                    r.last_success_ms = crate::client::now_ms();
                    r.last_error.clear();
                    r.consecutive_failures = 0;
                    r.source_size = stats.latest.max(stats.size);
                    r.cursor_size = stats.size;
                    r.imported += stats.imported;
                    r.duplicates += stats.duplicates;
                    r.refused += stats.refused;
                });
                if stats.received() > 0 {
                    tracing::info!(peer = %party, imported = stats.imported,
                        duplicates = stats.duplicates, refused = stats.refused,
                        size = stats.size, "pulled from a peer");
                }
            }
            Err(e) => {
                failures += 1;
                // The next attempt tries the peer's next endpoint.
                channels.remove(&endpoint);
                endpoint_at += 1;
                node.metrics.federation_failed(&party);
                let error = format!("{e:#}");
                node.federation.update(&party, |r| {
                    r.last_error = error.clone();
                    r.consecutive_failures = failures;
                });
                tracing::warn!(peer = %party, %endpoint, error = %error, "pull from a peer failed");
            }
        }
        // A peer with more to send is asked again at once, its quota allowing.
        if !more {
            tokio::time::sleep(interval).await;
        }
    }
}

/// Whether a peer that failed `failures` times in a row is due again: with
/// probability 1 / min(2^failures, 32) per interval.
fn backoff_elapsed(failures: u32) -> bool {
    let mut byte = [0u8; 1];
    getrandom::fill(&mut byte).expect("the operating system's random source");
    let every = 1u32 << failures.min(5);
    u32::from(byte[0]) % every == 0
}

/// The peers of the policy in force this party can pull from.
fn targets(node: &Node) -> Vec<PeerTarget> {
    let applied = node.shared.read();
    let Some(policy) = ics_policies::active(applied.projection.capability::<Policies>()) else {
        return Vec::new();
    };
    let tlog = applied.projection.capability::<Tlog>();
    let descriptor = &policy.descriptor;
    descriptor
        .peers
        .iter()
        .filter(|p| is_pulled(descriptor, p))
        .filter_map(|p| {
            let log = peer_log(tlog, &p.name)?.log_verifier()?;
            let ca = ics_policies::descriptor::pem_certificate(&p.tls_ca).ok()?;
            Some(PeerTarget {
                party: p.name.clone(),
                endpoints: p.endpoints.clone(),
                ca,
                log,
                events_per_minute: descriptor.events_per_minute(p),
                own_policy: descriptor.version,
            })
        })
        .collect()
}

/// Whether the policy pulls from `peer`: it has an endpoint and something
/// is imported from it.
pub fn is_pulled(
    descriptor: &ics_policies::Descriptor,
    peer: &ics_policies::descriptor::Peer,
) -> bool {
    !peer.endpoints.is_empty() && descriptor.imports.iter().any(|r| r.peer == peer.name)
}

/// Whether this party's terms of import from `peer` differ between two of
/// its policy versions (a version not found counts as different).
fn imports_differ(applied: &crate::log::store::Applied, peer: &str, old: u64, new: u64) -> bool {
    let policies = applied.projection.capability::<Policies>();
    match (
        ics_policies::version(policies, old),
        ics_policies::version(policies, new),
    ) {
        (Some(old), Some(new)) => {
            old.descriptor.import_terms(peer) != new.descriptor.import_terms(peer)
        }
        _ => true,
    }
}

/// One pull from `peer`: each segment proven against its signed checkpoint,
/// its events appended (tagged) and, at or past the cursor, the new cursor.
/// When either party's policy grew since the cursor was recorded, the pull
/// starts over from the beginning (`PeerCursor::policies`).
async fn pull(
    node: &Node,
    log_key: &SigningKey,
    peer: &PeerTarget,
    endpoint: &str,
    channels: &mut HashMap<String, tonic::transport::Channel>,
    limit: u64,
) -> anyhow::Result<PullStats> {
    let subject = cursor_subject(&peer.party);
    let (cursor, mut head, own_changed) = {
        let applied = node.shared.read();
        let cursor = applied
            .projection
            .capability::<Federation>()
            .subject(&subject)
            .cloned();
        // A new version of this party's policy that imports from the peer
        // on the same terms admits nothing new: no re-pull for it.
        let own_changed = cursor.as_ref().is_some_and(|c| {
            c.policies.1 < peer.own_policy
                && imports_differ(&applied, &peer.party, c.policies.1, peer.own_policy)
        });
        (
            cursor,
            Node::chain_head(&applied.projection, &subject),
            own_changed,
        )
    };
    let source_policy_seen = node
        .federation
        .report(&peer.party)
        .map_or(0, |r| r.source_policy);
    let repull = own_changed
        || cursor
            .as_ref()
            .is_some_and(|c| c.policies.0 < source_policy_seen);
    // Only the source's policy changed: what this party imported under the
    // old one stays as it was, so the source sends only what is newly read.
    let known = match (&cursor, repull && !own_changed) {
        (Some(c), true) => (c.size, c.policies.0),
        _ => (0, 0),
    };
    // What the cursor records: its size, the policies, and when.
    let mut recorded = cursor.as_ref().map(|c| (c.size, c.policies, c.synced_ms));
    let mut frontier = match (&cursor, repull) {
        (Some(c), false) => c.frontier(),
        _ => Default::default(),
    };
    let contact_interval =
        i64::try_from(node.config.federation.contact_interval_ms).unwrap_or(i64::MAX);
    let channel = match channels.get(endpoint) {
        Some(c) => c.clone(),
        None => {
            let c = crate::federation::channel(
                &node.node_tls,
                &peer.party,
                &peer.ca,
                endpoint,
                Duration::from_secs(5),
            )?;
            channels.insert(endpoint.to_string(), c.clone());
            c
        }
    };
    let mut client = pb::federation_client::FederationClient::new(channel)
        .max_decoding_message_size(node.config.limits.max_message_bytes);
    let mut stream = client
        .pull(pb::PullRequest {
            from_size: frontier.size(),
            max_leaves: u32::try_from(limit).unwrap_or(u32::MAX).max(1),
            known_size: known.0,
            known_policy_version: known.1,
        })
        .await
        .with_context(|| format!("pull from {} at {endpoint}", peer.party))?
        .into_inner();
    let mut stats = PullStats {
        size: frontier.size(),
        latest: frontier.size(),
        ..PullStats::default()
    };
    let mut pulled_under: Option<u64> = None;
    while stats.received() < limit
        && let Some(segment) = stream.message().await?
    {
        stats.latest = stats.latest.max(segment.latest_size);
        let policies = (segment.policy_version, peer.own_policy);
        node.federation.update(&peer.party, |r| {
            r.source_policy = r.source_policy.max(segment.policy_version)
        });
        // Filtered under an older policy of the peer than this segment: the
        // part already pulled may lack what the new one shares. Start over
        // (the caller asks again at once).
        let under = pulled_under.unwrap_or(if repull {
            segment.policy_version
        } else {
            recorded.map_or(segment.policy_version, |(_, p, _)| p.0)
        });
        if under < segment.policy_version {
            stats.restart = true;
            return Ok(stats);
        }
        pulled_under = Some(segment.policy_version);
        let note = Note::parse(&segment.checkpoint).context("the segment's checkpoint")?;
        peer.log
            .verify(&note)
            .context("the segment's checkpoint is not signed by the peer's log key")?;
        let checkpoint = Checkpoint::parse(&note.text).context("the segment's checkpoint")?;
        let mut verifier = Verifier::new(frontier.clone());
        for item in segment.items {
            verifier.feed(message(item)?)?;
        }
        let verified = verifier.finish(checkpoint.size, &checkpoint.root)?;
        let mut batches: Vec<Vec<Vec<u8>>> = Vec::with_capacity(verified.events.len() + 1);
        for event in &verified.events {
            let (tag, envelope) = ImportTag::split(&event.stored)
                .with_context(|| format!("event {} of {}", event.index, peer.party))?;
            let namespace = tag.map_or_else(|| peer.party.clone(), |t| t.namespace);
            if !ImportTag::is_valid_name(&namespace) {
                bail!("event {} names an invalid namespace", event.index);
            }
            let tag = ImportTag {
                namespace,
                via: peer.party.clone(),
                source_index: event.index,
            };
            batches.push(vec![stored_value(
                &crate::writer::leaf_salt(),
                &tag.wrap(envelope),
            )]);
        }
        let size = verified.frontier.size();
        let now = crate::client::now_ms();
        // A cursor record when the cursor moves on, the policies changed,
        // or the last record of contact is getting old (so every replica
        // knows how fresh the peer's records are); never below the cursor.
        let record = match recorded {
            None => true,
            Some((at, p, synced_ms)) => {
                size >= at && (size > at || p != policies || now - synced_ms >= contact_interval)
            }
        };
        let record_id = if record {
            let envelope = crate::client::signed(
                log_key,
                cursor_subject(&peer.party),
                head,
                SyncedPayload {
                    first: head.previous.is_none(),
                    checkpoint: segment.checkpoint.clone(),
                    frontier: verified.frontier.to_bytes(),
                    policies,
                },
            );
            batches.push(vec![stored_value(
                &crate::writer::leaf_salt(),
                &crate::codec::envelope_to_bytes(&envelope),
            )]);
            Some(ics_kernel::EventId::of_body(&envelope.body))
        } else {
            None
        };
        let mut results = write(node, batches).await?;
        if let Some(id) = record_id {
            if let Some(Err(r)) = results.pop() {
                bail!("the cursor in {}'s log was not recorded: {r}", peer.party);
            }
            head = crate::client::ChainHead {
                sequence: head.sequence + 1,
                previous: Some(id),
            };
            recorded = Some((size, policies, now));
        }
        for r in &results {
            match r {
                Ok(out) if out.first().is_some_and(|a| a.duplicate) => stats.duplicates += 1,
                Ok(_) => stats.imported += 1,
                Err(refusal) => {
                    stats.refused += 1;
                    tracing::debug!(peer = %peer.party, reason = refusal.reason(), error = %refusal, "import refused");
                }
            }
        }
        frontier = verified.frontier;
        stats.size = size;
    }
    Ok(stats)
}

/// Appends the batches through Raft, in entries under the entry limit (the
/// last batch, the cursor, in the last entry); the verdict of each batch.
async fn write(
    node: &Node,
    batches: Vec<Vec<Vec<u8>>>,
) -> anyhow::Result<Vec<Result<Vec<ics_kernel::Appended>, ics_kernel::Refusal>>> {
    let mut results = Vec::with_capacity(batches.len());
    let mut entry: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut bytes = 0;
    let total = batches.len();
    for (i, batch) in batches.into_iter().enumerate() {
        let size: usize = batch.iter().map(Vec::len).sum();
        if !entry.is_empty() && bytes + size > MAX_ENTRY_BYTES / 2 {
            results.extend(propose(node, std::mem::take(&mut entry)).await?);
            bytes = 0;
        }
        bytes += size;
        entry.push(batch);
        if i + 1 == total {
            results.extend(propose(node, std::mem::take(&mut entry)).await?);
        }
    }
    Ok(results)
}

async fn propose(
    node: &Node,
    batches: Vec<Vec<Vec<u8>>>,
) -> anyhow::Result<Vec<Result<Vec<ics_kernel::Appended>, ics_kernel::Refusal>>> {
    let n = batches.len();
    node.metrics.entry_written(n);
    let response = node
        .raft
        .client_write(LogRequest { batches })
        .await
        .map_err(|e| anyhow::anyhow!("append the imports: {e}"))?;
    let results = response.data.results;
    if results.len() != n {
        bail!(
            "the state machine answered {} of {n} batches",
            results.len()
        );
    }
    Ok(results)
}

fn message(item: pb::PulledItem) -> anyhow::Result<Message> {
    Ok(match item.item.context("an empty item")? {
        pb::pulled_item::Item::Event(e) => Message::Event(SourceEvent {
            index: e.index,
            salt: e
                .salt
                .try_into()
                .map_err(|_| anyhow::anyhow!("a salt is not 16 bytes"))?,
            stored: e.stored,
        }),
        pb::pulled_item::Item::Hidden(r) => Message::Hidden(Run {
            start: r.start,
            end: r.end,
            subtrees: r
                .subtrees
                .into_iter()
                .map(|s| {
                    Ok((
                        u8::try_from(s.level).context("a subtree level over 255")?,
                        s.hash
                            .try_into()
                            .map_err(|_| anyhow::anyhow!("a hash is not 32 bytes"))?,
                    ))
                })
                .collect::<anyhow::Result<_>>()?,
        }),
    })
}
