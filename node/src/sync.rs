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

/// A peer to pull from, as the policy in force and the log name it.
struct PeerTarget {
    party: String,
    endpoints: Vec<String>,
    ca: Vec<u8>,
    log: NoteVerifier,
}

/// What one pull did.
#[derive(Debug, Default)]
pub struct PullStats {
    pub imported: u64,
    pub duplicates: u64,
    pub refused: u64,
    pub size: u64,
}

pub async fn run(node: Arc<Node>) {
    let Some(log_key) = node.log_key.as_ref() else {
        return;
    };
    let interval = Duration::from_millis(node.config.federation.pull_interval_ms);
    let timeout = Duration::from_millis(node.config.federation.pull_timeout_ms);
    let mut channels: HashMap<(String, String), tonic::transport::Channel> = HashMap::new();
    let mut failures: HashMap<String, u32> = HashMap::new();
    loop {
        tokio::time::sleep(interval).await;
        if !node.raft.is_leader() {
            continue;
        }
        for peer in targets(&node) {
            // A peer that keeps failing is asked less often (up to 32
            // intervals), with jitter, so a dead peer costs little.
            let failed = failures.get(&peer.party).copied().unwrap_or(0);
            if failed > 0 && !backoff_elapsed(failed) {
                continue;
            }
            let pulled = tokio::time::timeout(timeout, pull(&node, log_key, &peer, &mut channels))
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("timed out after {timeout:?}")));
            match pulled {
                Ok(stats) => {
                    failures.remove(&peer.party);
                    node.metrics.federation_pulled(
                        &peer.party,
                        stats.imported,
                        stats.refused,
                        stats.size,
                    );
                    if stats.imported + stats.refused > 0 {
                        tracing::info!(peer = %peer.party, imported = stats.imported,
                            duplicates = stats.duplicates, refused = stats.refused,
                            size = stats.size, "pulled from a peer");
                    }
                }
                Err(e) => {
                    *failures.entry(peer.party.clone()).or_insert(0) += 1;
                    channels.retain(|(p, _), _| *p != peer.party);
                    node.metrics.federation_failed(&peer.party);
                    tracing::warn!(peer = %peer.party, error = %format!("{e:#}"), "pull from a peer failed");
                }
            }
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
    policy
        .descriptor
        .peers
        .iter()
        .filter(|p| !p.endpoints.is_empty())
        .filter(|p| {
            // Pull only from a peer something is imported from.
            policy.descriptor.imports.iter().any(|r| r.peer == p.name)
        })
        .filter_map(|p| {
            let log = peer_log(tlog, &p.name)?.log_verifier()?;
            let ca = ics_policies::descriptor::pem_certificate(&p.tls_ca).ok()?;
            Some(PeerTarget {
                party: p.name.clone(),
                endpoints: p.endpoints.clone(),
                ca,
                log,
            })
        })
        .collect()
}

async fn pull(
    node: &Node,
    log_key: &SigningKey,
    peer: &PeerTarget,
    channels: &mut HashMap<(String, String), tonic::transport::Channel>,
) -> anyhow::Result<PullStats> {
    let subject = cursor_subject(&peer.party);
    let (mut frontier, mut head) = {
        let applied = node.shared.read();
        let cursor = applied
            .projection
            .capability::<Federation>()
            .subject(&subject)
            .map(|c| c.frontier());
        (
            cursor.unwrap_or_default(),
            Node::chain_head(&applied.projection, &subject),
        )
    };
    let endpoint = peer.endpoints[0].clone();
    let channel = match channels.get(&(peer.party.clone(), endpoint.clone())) {
        Some(c) => c.clone(),
        None => {
            let c = crate::federation::channel(
                &node.node_tls,
                &peer.party,
                &peer.ca,
                &endpoint,
                Duration::from_secs(5),
            )?;
            channels.insert((peer.party.clone(), endpoint.clone()), c.clone());
            c
        }
    };
    let mut client = pb::federation_client::FederationClient::new(channel)
        .max_decoding_message_size(node.config.limits.max_message_bytes);
    let mut stream = client
        .pull(pb::PullRequest {
            from_size: frontier.size(),
            max_leaves: 0,
        })
        .await
        .with_context(|| format!("pull from {} at {endpoint}", peer.party))?
        .into_inner();
    let mut stats = PullStats {
        size: frontier.size(),
        ..PullStats::default()
    };
    while let Some(segment) = stream.message().await? {
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
        let record = crate::client::signed(
            log_key,
            cursor_subject(&peer.party),
            head,
            SyncedPayload {
                first: head.previous.is_none(),
                checkpoint: segment.checkpoint.clone(),
                frontier: verified.frontier.to_bytes(),
            },
        );
        let record_id = ics_kernel::EventId::of_body(&record.body);
        batches.push(vec![stored_value(
            &crate::writer::leaf_salt(),
            &crate::codec::envelope_to_bytes(&record),
        )]);
        let results = write(node, batches).await?;
        let (record_result, imports) = results.split_last().expect("the cursor's batch");
        for r in imports {
            match r {
                Ok(out) if out.first().is_some_and(|a| a.duplicate) => stats.duplicates += 1,
                Ok(_) => stats.imported += 1,
                Err(refusal) => {
                    stats.refused += 1;
                    tracing::debug!(peer = %peer.party, reason = refusal.reason(), error = %refusal, "import refused");
                }
            }
        }
        if let Err(r) = record_result {
            bail!("the cursor in {}'s log was not recorded: {r}", peer.party);
        }
        head = crate::client::ChainHead {
            sequence: head.sequence + 1,
            previous: Some(record_id),
        };
        frontier = verified.frontier;
        stats.size = frontier.size();
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
