//! The `Federation` gRPC service, on the federation listener only: a peer
//! party's node pulls the events after its cursor that this party's policy
//! lets that party read, in segments that each end at a committed
//! checkpoint, hidden runs as their aligned subtree hashes
//! (`ics_federation::filtered`). The caller is the party its certificate
//! names under the CA the policy gives it (`federation::FederationPeer`).

use ics_federation::{ImportTag, Message, SourceEvent};
use ics_identity::Identity;
use ics_policies::{Direction, Policies};
use ics_proto::federation_v1 as pb;
use ics_proto::federation_v1::federation_server::Federation;
use ics_tlog::{Tlog, checkpoint_subject};
use tonic::{Code, Request, Response, Status};

use super::Api;
use crate::errors::{internal, rpc_error};
use crate::federation::FederationPeer;
use crate::log::store::{Applied, split_stored};

/// Segments one pull answers at most; the puller asks again from where it got.
pub const MAX_SEGMENTS_PER_PULL: usize = 64;

/// The stored bytes one segment reads at most (beyond its first checkpoint's
/// span), so a segment stays well under the gRPC message limit.
pub const MAX_SEGMENT_BYTES: usize = 2 * 1024 * 1024;

type SegmentStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::PullSegment, Status>> + Send>>;

#[tonic::async_trait]
impl Federation for Api {
    type PullStream = SegmentStream;

    async fn pull(&self, req: Request<pb::PullRequest>) -> Result<Response<SegmentStream>, Status> {
        let peer = req
            .extensions()
            .get::<FederationPeer>()
            .cloned()
            .ok_or_else(|| {
                rpc_error(
                    Code::PermissionDenied,
                    "FEDERATION_LISTENER_ONLY",
                    "pulls are served on the federation listener, to peer parties' nodes",
                )
            })?;
        let req = req.into_inner();
        let mut from = req.from_size;
        let mut segments = Vec::new();
        let per_minute = self.served_per_minute(&peer.party);
        let known = Known {
            size: req.known_size,
            policy_version: req.known_policy_version,
        };
        while segments.len() < MAX_SEGMENTS_PER_PULL {
            // The peer's quota of events per minute, spent by what it is
            // sent; a pull that finds it spent is refused, not queued.
            let available = self
                .node
                .federation
                .serve_budget(&peer.party, per_minute, 0);
            if available < 1.0 {
                if segments.is_empty() {
                    self.node.metrics.federation_over_quota(&peer.party);
                    return Err(rpc_error(
                        Code::ResourceExhausted,
                        "PULL_QUOTA",
                        format!(
                            "{} pulled its events per minute; ask again later",
                            peer.party
                        ),
                    ));
                }
                break;
            }
            let max_leaves = match req.max_leaves {
                0 => available as u64,
                n => u64::from(n).min(available as u64),
            };
            match self.segment(&peer, from, max_leaves, known)? {
                Some((segment, end, sent)) => {
                    self.node
                        .federation
                        .serve_budget(&peer.party, per_minute, sent);
                    segments.push(Ok(segment));
                    if end == from {
                        break;
                    }
                    from = end;
                }
                None => break,
            }
        }
        let bytes: usize = segments
            .iter()
            .map(|s| s.as_ref().map_or(0, prost::Message::encoded_len))
            .sum();
        self.node
            .metrics
            .federation_served(&peer.party, segments.len(), bytes);
        Ok(Response::new(Box::pin(futures::stream::iter(segments))))
    }
}

impl Api {
    /// The events per minute the policy in force lets `party` pull (the
    /// default quota when it names no such peer: `segment` refuses it).
    fn served_per_minute(&self, party: &str) -> u64 {
        let applied = self.node.shared.read();
        ics_policies::active(applied.projection.capability::<Policies>())
            .and_then(|p| {
                let d = &p.descriptor;
                d.peer(party).map(|peer| d.events_per_minute(peer))
            })
            .unwrap_or(ics_policies::descriptor::DEFAULT_EVENTS_PER_MINUTE)
    }

    /// The segment after `from` for `peer`, where it ends and the events it
    /// carries; `None` when `from` is the latest committed checkpoint.
    fn segment(
        &self,
        peer: &FederationPeer,
        from: u64,
        max_leaves: u64,
        known: Known,
    ) -> Result<Option<(pb::PullSegment, u64, u64)>, Status> {
        let shared = &self.node.shared;
        let applied = shared.read();
        let policy =
            ics_policies::active(applied.projection.capability::<Policies>()).ok_or_else(|| {
                rpc_error(
                    Code::PermissionDenied,
                    "NO_POLICY",
                    "this party has no policy in force: it shares nothing",
                )
            })?;
        let descriptor = &policy.descriptor;
        if descriptor.peer(&peer.party).is_none() {
            return Err(rpc_error(
                Code::PermissionDenied,
                "NOT_A_PEER",
                format!("{:?} is not a peer of the policy in force", peer.party),
            ));
        }
        let tlog = applied.projection.capability::<Tlog>();
        let latest = tlog.index().latest.unwrap_or(0);
        if from > latest && from > applied.tree.size() {
            return Err(rpc_error(
                Code::OutOfRange,
                "FROM_AHEAD",
                format!(
                    "from_size {from} is beyond this log's {} leaves",
                    applied.tree.size()
                ),
            ));
        }
        if from > latest {
            return Ok(None);
        }
        if from == latest {
            // Nothing new: the latest checkpoint alone proves the puller
            // current (its frontier already reaches the root), and carries
            // the policy version it is read under.
            let Some(ics_tlog::TlogState::Checkpoint(cp)) =
                tlog.subject(&checkpoint_subject(latest))
            else {
                return Ok(None);
            };
            return Ok(Some((
                pb::PullSegment {
                    items: Vec::new(),
                    checkpoint: cp.served_note(),
                    latest_size: latest,
                    policy_version: descriptor.version,
                },
                latest,
                0,
            )));
        }
        let cap = max_leaves.clamp(1, descriptor.quotas.max_events_per_pull);
        let read = |index: u64| {
            let stored = shared
                .db
                .stored(index)?
                .ok_or_else(|| std::io::Error::other(format!("event {index} is missing")))?;
            let (salt, tagged) = split_stored(&stored, index)?;
            Ok::<_, std::io::Error>(SourceEvent {
                index,
                salt: *salt,
                stored: tagged.to_vec(),
            })
        };
        // The furthest checkpoint within `cap` leaves and MAX_SEGMENT_BYTES,
        // or the first after `from`.
        let mut end = None;
        let mut events = Vec::new();
        let mut bytes = 0;
        for (_, state) in tlog.subjects_after(Some(&checkpoint_subject(from))) {
            let ics_tlog::TlogState::Checkpoint(cp) = state else {
                break;
            };
            if end.is_some() && cp.size > from + cap {
                break;
            }
            let start = from + events.len() as u64 + 1;
            let span = (start..=cp.size)
                .map(read)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| internal("federation segment", e))?;
            let span_bytes: usize = span.iter().map(|e| e.stored.len()).sum();
            if end.is_some() && bytes + span_bytes > MAX_SEGMENT_BYTES {
                break;
            }
            bytes += span_bytes;
            events.extend(span);
            end = Some(cp);
        }
        let Some(checkpoint) = end else {
            return Ok(None);
        };
        let to = checkpoint.size;
        let now = crate::client::now_ms();
        let party = applied
            .projection
            .party()
            .map(|p| p.name.clone())
            .unwrap_or_default();
        // What the puller holds already: read under the version it names.
        let policies = applied.projection.capability::<Policies>();
        let held = (known.size > 0 && known.policy_version != descriptor.version)
            .then(|| ics_policies::version(policies, known.policy_version))
            .flatten()
            .map(|p| (known.size, &p.descriptor));
        let visible = |e: &SourceEvent| {
            readable(&applied, &party, e, |facts, kind| {
                let allowed = |d: &ics_policies::Descriptor| {
                    d.decide(Direction::Read, &peer.party, facts, kind, now)
                        .allowed
                };
                allowed(descriptor)
                    && !held.is_some_and(|(size, old)| e.index <= size && allowed(old))
            })
        };
        let tiles = shared.db.tiles();
        let nodes = applied.tree.nodes(&tiles);
        let messages = ics_federation::filtered(
            from,
            to,
            events.into_iter().map(Ok::<_, std::io::Error>),
            visible,
            &nodes,
        )
        .map_err(|e| internal("federation segment", e))?;
        let sent = messages
            .iter()
            .filter(|m| matches!(m, Message::Event(_)))
            .count() as u64;
        let items = messages.into_iter().map(item).collect();
        Ok(Some((
            pb::PullSegment {
                items,
                checkpoint: checkpoint.served_note(),
                latest_size: latest,
                policy_version: descriptor.version,
            },
            to,
            sent,
        )))
    }
}

/// What a re-pulling peer says it holds (`PullRequest::known_size`).
#[derive(Clone, Copy)]
struct Known {
    size: u64,
    policy_version: u64,
}

/// Whether the policy (`allows`) lets the peer read a stored event: its
/// subject's facts from the namespace it belongs to.
fn readable(
    applied: &Applied,
    party: &str,
    event: &SourceEvent,
    allows: impl Fn(&ics_policies::Facts<'_>, &str) -> bool,
) -> bool {
    let Ok((tag, envelope)) = ImportTag::split(&event.stored) else {
        return false;
    };
    let Ok(parsed) = crate::codec::envelope_from_bytes(envelope)
        .and_then(|env| crate::codec::parse_event(env, &ics_kernel::EventLimits::unbounded()))
    else {
        return false;
    };
    let namespace = tag.as_ref().map_or(party, |t| t.namespace.as_str());
    let projection = if namespace == party {
        &applied.projection
    } else {
        match applied.mirrors.get(namespace) {
            Some(m) => &m.projection,
            None => return false,
        }
    };
    let subject = &parsed.body.subject;
    let facts = ics_policies::facts_of(
        subject,
        namespace,
        |s| projection.capability::<Identity>().subject(s),
        |s| projection.capability::<ics_ca::DeviceCa>().subject(s),
    );
    allows(&facts, parsed.kind.name)
}

fn item(message: Message) -> pb::PulledItem {
    pb::PulledItem {
        item: Some(match message {
            Message::Event(e) => pb::pulled_item::Item::Event(pb::PulledEvent {
                index: e.index,
                salt: e.salt.to_vec(),
                stored: e.stored,
            }),
            Message::Hidden(run) => pb::pulled_item::Item::Hidden(pb::HiddenRun {
                start: run.start,
                end: run.end,
                subtrees: run
                    .subtrees
                    .into_iter()
                    .map(|(level, hash)| pb::Subtree {
                        level: u32::from(level),
                        hash: hash.to_vec(),
                    })
                    .collect(),
            }),
        }),
    }
}
