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
        while segments.len() < MAX_SEGMENTS_PER_PULL {
            match self.segment(&peer, from, req.max_leaves)? {
                Some((segment, end)) => {
                    segments.push(Ok(segment));
                    from = end;
                }
                None => break,
            }
        }
        self.node
            .metrics
            .federation_served(&peer.party, segments.len());
        Ok(Response::new(Box::pin(futures::stream::iter(segments))))
    }
}

impl Api {
    /// The segment after `from` for `peer`, and where it ends; `None` when
    /// `from` is the latest committed checkpoint.
    fn segment(
        &self,
        peer: &FederationPeer,
        from: u64,
        max_leaves: u32,
    ) -> Result<Option<(pb::PullSegment, u64)>, Status> {
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
        if from >= latest {
            return Ok(None);
        }
        let cap = match max_leaves {
            0 => descriptor.quotas.max_events_per_pull,
            n => u64::from(n).min(descriptor.quotas.max_events_per_pull),
        };
        // The furthest checkpoint within `cap` leaves, or the first after `from`.
        let mut end = None;
        for (_, state) in tlog.subjects_after(Some(&checkpoint_subject(from))) {
            let ics_tlog::TlogState::Checkpoint(cp) = state else {
                break;
            };
            if end.is_some() && cp.size > from + cap {
                break;
            }
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
        let events = (from + 1..=to).map(|index| {
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
        });
        let visible = |e: &SourceEvent| {
            readable(&applied, &party, e, |facts, kind| {
                descriptor
                    .decide(Direction::Read, &peer.party, facts, kind, now)
                    .allowed
            })
        };
        let tiles = shared.db.tiles();
        let nodes = applied.tree.nodes(&tiles);
        let messages = ics_federation::filtered(from, to, events, visible, &nodes)
            .map_err(|e| internal("federation segment", e))?;
        let items = messages.into_iter().map(item).collect();
        Ok(Some((
            pb::PullSegment {
                items,
                checkpoint: checkpoint.served_note(),
            },
            to,
        )))
    }
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
    let identity = projection.capability::<Identity>().subject(subject);
    let facts = ics_policies::facts(subject, namespace, identity);
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
