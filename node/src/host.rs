//! The host's state: the Raft handle, the applied state, config, metrics,
//! the writer's queue, the append rate limit and the channels to the leader.
//! The edge's services and the HTTP side work through it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ics_kernel::projection::SubjectView;
use ics_kernel::{Event, Refusal, SubjectRef};
use ics_proto::core_v1 as pb;
use ics_proto::core_v1::event_log_client::EventLogClient;
use openraft::ReadPolicy;
use tokio::sync::{mpsc, oneshot};
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::codec;
use crate::config::Config;
use crate::errors::{internal, not_leader, refusal_status, rpc_error};
pub use crate::forward::Origin;
use crate::log::store::{self, Shared};
use crate::log::{NodeId, Raft};
use crate::metrics::Metrics;
use crate::rate_limit::{KeyedRateLimit, RateLimit};
use crate::writer::{WriteError, WriteJob, Writer, run_writer};

pub struct Node {
    pub id: NodeId,
    pub raft: Raft,
    pub shared: Arc<Shared>,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    pub leader_contact: Arc<crate::log::LeaderContact>,
    writer: mpsc::Sender<WriteJob>,
    channels: Mutex<HashMap<(NodeId, String), Channel>>,
    /// This node's TLS towards its peers (the leader it forwards to).
    pub node_tls: Arc<crate::peer::NodeTls>,
    append_rate: RateLimit,
    client_append_rate: KeyedRateLimit,
    peer_append_rate: KeyedRateLimit,
    /// One permit per open watch stream (`limits.max_watchers`).
    pub watchers: Arc<tokio::sync::Semaphore>,
    /// The party's transparency log key, where this node holds it: it signs
    /// checkpoints, cosignatures as a witness, and the events recording them.
    pub log_key: Option<ics_kernel::SigningKey>,
    /// The leader's pulls from each peer, as `federation status` shows them.
    pub federation: crate::sync_board::SyncBoard,
    /// The device CA this node issues with and answers CRL and OCSP for,
    /// where the role runs one and the material is here.
    pub device_ca: Option<Arc<crate::device_ca::IssuingCa>>,
}

/// A subject as this node holds it: in this party's records, else in the
/// records it imported, party by party in name order.
pub(crate) struct Located<'a> {
    /// The projection that holds it (this party's or a mirror's).
    pub projection: &'a ics_kernel::Projection,
    pub view: SubjectView<'a>,
    /// The party whose record it is, when imported.
    pub namespace: Option<&'a str>,
    /// This log's positions of the subject's events.
    pub history: Vec<u64>,
}

impl Node {
    /// Runs `f` on the applied view of `subject`, or answers NOT_FOUND.
    pub(crate) fn with_subject<T>(
        &self,
        subject: &SubjectRef,
        f: impl FnOnce(Located<'_>) -> Result<T, Status>,
    ) -> Result<T, Status> {
        let applied = self.shared.read();
        if let Some(view) = applied.projection.describe(subject) {
            let history = view.entry.history.clone();
            return f(Located {
                projection: &applied.projection,
                view,
                namespace: None,
                history,
            });
        }
        for (namespace, mirror) in &applied.mirrors.parties {
            if let Some(view) = mirror.projection.describe(subject) {
                // A mirror counts its own events; this log's positions are
                // what a reader can fetch.
                let history = view
                    .entry
                    .history
                    .iter()
                    .map(|p| {
                        usize::try_from(*p)
                            .ok()
                            .and_then(|p| p.checked_sub(1))
                            .and_then(|i| mirror.positions.get(i))
                            .copied()
                            .ok_or_else(|| {
                                internal(
                                    "an imported subject's history",
                                    format!(
                                        "{namespace}'s event {p} of {subject} has no position here"
                                    ),
                                )
                            })
                    })
                    .collect::<Result<Vec<u64>, Status>>()?;
                return f(Located {
                    projection: &mirror.projection,
                    view,
                    namespace: Some(namespace),
                    history,
                });
            }
        }
        Err(rpc_error(
            Code::NotFound,
            "NOT_FOUND",
            format!("no subject {subject}"),
        ))
    }

    pub fn new(
        raft: Raft,
        shared: Arc<Shared>,
        config: Arc<Config>,
        metrics: Arc<Metrics>,
        node_tls: Arc<crate::peer::NodeTls>,
        log_key: Option<ics_kernel::SigningKey>,
        device_ca: Option<crate::device_ca::IssuingCa>,
    ) -> Arc<Node> {
        let (tx, rx) = mpsc::channel(config.limits.max_pending_appends);
        let append_rate = RateLimit::new(
            config.limits.max_appends_per_second,
            config.limits.append_burst,
        );
        let client_append_rate = KeyedRateLimit::new(
            config.limits.max_appends_per_client_per_second,
            config.limits.append_client_burst,
        );
        let peer_append_rate = KeyedRateLimit::new(
            config.limits.max_appends_per_second,
            config.limits.append_burst,
        );
        let watchers = Arc::new(tokio::sync::Semaphore::new(config.limits.max_watchers));
        let node = Arc::new(Node {
            id: config.node_id,
            raft,
            shared,
            config,
            metrics,
            leader_contact: Default::default(),
            writer: tx,
            channels: Mutex::new(HashMap::new()),
            node_tls,
            append_rate,
            client_append_rate,
            peer_append_rate,
            watchers,
            log_key,
            federation: Default::default(),
            device_ca: device_ca.map(Arc::new),
        });
        tokio::spawn(run_writer(
            Writer {
                raft: node.raft.clone(),
                shared: node.shared.clone(),
                metrics: node.metrics.clone(),
                limits: node.config.limits.events.clone(),
            },
            rx,
        ));
        node
    }

    /// Whether this node should get traffic, and why not (F6): its Raft core
    /// runs, it is a member, it knows a leader that is a member and has heard
    /// from it (or, as leader, from a quorum) recently, and the applied party
    /// is the configured one. `/readyz` and `Status` give this one verdict.
    pub fn readiness(&self) -> Result<String, String> {
        let m = crate::log::raft_metrics(&self.raft);
        if let Err(e) = &m.running_state {
            return Err(format!("the Raft core stopped: {e}"));
        }
        let membership = m.membership_config.membership();
        if membership.get_node(&self.id).is_none() {
            return Err(format!("node {} is not a member of the cluster", self.id));
        }
        let leader = m.current_leader.ok_or("no leader")?;
        if membership.get_node(&leader).is_none() {
            return Err(format!("leader {leader} is not a member of the cluster"));
        }
        // Three election timeouts: a follower that heard nothing for that
        // long has a leader only in name.
        let recent = Duration::from_millis(3 * self.config.raft.election_timeout_max_ms);
        if leader == self.id {
            let alone = membership.voter_ids().all(|v| v == self.id);
            let acked = m
                .last_quorum_acked
                .as_ref()
                .map(|at| openraft::Instant::elapsed(&**at));
            if !alone && acked.is_none_or(|a| a > recent) {
                return Err(format!("leader has not heard from a quorum for {recent:?}"));
            }
        } else if self.leader_contact.since(leader).is_none_or(|a| a > recent) {
            return Err(format!("not heard from leader {leader} for {recent:?}"));
        }
        match self.shared.read().projection.party() {
            None => Err("party genesis not applied yet".to_string()),
            Some(p) if p.name != self.config.party => Err(format!(
                "the applied party {:?} is not the configured {:?}",
                p.name, self.config.party
            )),
            Some(_) => Ok(format!("ready: leader {leader}")),
        }
    }

    /// The leader's id and address, if one is known (possibly this node).
    pub fn leader(&self) -> Option<(NodeId, String)> {
        crate::log::leader(&self.raft)
    }

    /// A channel to node `id`'s peer listener at `addr` (mutual TLS).
    pub(crate) fn channel(&self, id: NodeId, addr: &str) -> Result<Channel, Status> {
        let mut map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        let key = (id, addr.to_string());
        if let Some(c) = map.get(&key) {
            return Ok(c.clone());
        }
        let c = crate::peer::channel(&self.node_tls, id, addr, Duration::from_secs(2))
            .map_err(|e| internal("peer channel", format!("{e:#}")))?;
        map.insert(key, c.clone());
        Ok(c)
    }

    pub(crate) fn leader_client(
        &self,
        leader: Option<(NodeId, String)>,
    ) -> Result<EventLogClient<Channel>, Status> {
        let (id, addr) = leader.clone().ok_or_else(|| not_leader(None))?;
        let max = self.config.limits.max_message_bytes;
        Ok(EventLogClient::new(self.channel(id, &addr)?)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max))
    }

    /// Parses and checks an append request at the edge: decoding, sizes, clock skew.
    pub(crate) fn parse_append(
        &self,
        req: &pb::AppendRequest,
    ) -> Result<(Vec<Event>, usize), Refusal> {
        let limits = &self.config.limits;
        limits.events.check_batch_len(req.events.len())?;
        let now = crate::client::now_ms();
        let mut events = Vec::with_capacity(req.events.len());
        let mut bytes = 0;
        for e in &req.events {
            let event = codec::parse_event(codec::envelope_from_pb(e.clone())?, &limits.events)?;
            if (event.body.time_ms - now).abs() > limits.max_clock_skew_ms {
                return Err(Refusal::ClockSkew {
                    time_ms: event.body.time_ms,
                    now_ms: now,
                    skew_ms: limits.max_clock_skew_ms,
                });
            }
            bytes += codec::envelope_to_bytes(&event.envelope).len() + 16;
            events.push(event);
        }
        if bytes > limits.max_batch_bytes {
            return Err(Refusal::InvalidField {
                field: "events".to_string(),
                reason: format!(
                    "batch encodes to {bytes} bytes, over the limit of {}",
                    limits.max_batch_bytes
                ),
            });
        }
        Ok((events, bytes))
    }

    /// Appends events this node's own upkeep signed (its TLS record,
    /// transparency log checkpoints), through the leader.
    pub async fn append_upkeep(&self, events: Vec<ics_kernel::Envelope>) -> anyhow::Result<()> {
        let req = pb::AppendRequest {
            events: events.iter().map(crate::codec::envelope_to_pb).collect(),
            ..Default::default()
        };
        self.append(req, Origin::Upkeep, "")
            .await
            .map_err(|s| anyhow::anyhow!("{}", s.message()))?;
        Ok(())
    }

    /// The tag of an append into another party's namespace: one event,
    /// authored here (`via` this party), decided in that party's namespace.
    fn namespace_tag(
        &self,
        req: &pb::AppendRequest,
        events: usize,
    ) -> Result<Option<ics_federation::ImportTag>, Status> {
        if req.namespace.is_empty() || req.namespace == self.config.party {
            return Ok(None);
        }
        if !ics_federation::ImportTag::is_valid_name(&req.namespace) || events != 1 {
            self.metrics.refused();
            return Err(rpc_error(
                Code::InvalidArgument,
                "BAD_NAMESPACE_APPEND",
                format!(
                    "an append into the namespace {:?} carries one event ({events} given) and a party name",
                    req.namespace
                ),
            ));
        }
        Ok(Some(ics_federation::ImportTag {
            namespace: req.namespace.clone(),
            via: self.config.party.clone(),
            source_index: 0,
        }))
    }

    /// The next position in `subject`'s chain, as applied here.
    pub fn chain_head(
        projection: &ics_kernel::Projection,
        subject: &SubjectRef,
    ) -> crate::client::ChainHead {
        projection
            .entry(subject)
            .map(|e| crate::client::ChainHead {
                sequence: e.next_sequence,
                previous: Some(e.last_event),
            })
            .unwrap_or_default()
    }

    /// Appends one event this node signed for a client's request, charged
    /// to that client (`caller`).
    pub async fn append_signed(
        &self,
        event: ics_kernel::Envelope,
        caller: &str,
    ) -> Result<pb::AppendResponse, Status> {
        let req = pb::AppendRequest {
            events: vec![crate::codec::envelope_to_pb(&event)],
            ..Default::default()
        };
        self.append(req, Origin::Client, caller).await
    }

    /// Appends a batch through the leader's writer.
    /// `caller`: who to charge the request to (see `edge::caller::rate_key`):
    /// a client's own budget, or a forwarding node's.
    pub async fn append(
        &self,
        req: pb::AppendRequest,
        origin: Origin,
        caller: &str,
    ) -> Result<pb::AppendResponse, Status> {
        // A node forwards its clients' and its own upkeep's requests once.
        let forwarded = !matches!(origin, Origin::Client | Origin::Upkeep);
        let started = Instant::now();
        let (events, bytes) = self.parse_append(&req).map_err(|r| {
            self.metrics.refused();
            refusal_status(&r)
        })?;
        // A genesis names the party and its root key: only this node's own
        // bootstrap appends it (F4), never a client racing it to a fresh node.
        if origin == Origin::Client
            && events
                .iter()
                .any(|e| std::ptr::eq(e.kind, &ics_kernel::authority::PARTY_GENESIS))
        {
            self.metrics.refused();
            return Err(rpc_error(
                Code::PermissionDenied,
                "GENESIS_FROM_API",
                "a party genesis is appended only by the node's own bootstrap, never through the API",
            ));
        }
        let tag = self.namespace_tag(&req, events.len())?;
        self.charge_append(origin, caller)?;
        if !self.raft.is_leader() {
            let leader = self.leader();
            if forwarded || leader.is_none() {
                return Err(not_leader(leader));
            }
            let mut client = self.leader_client(leader)?;
            return client
                .append(crate::forward::forwarded_as(req, origin))
                .await
                .map(tonic::Response::into_inner);
        }
        self.verify_ahead(&events);
        let (tx, rx) = oneshot::channel();
        self.writer
            .try_send(WriteJob {
                events,
                tag,
                bytes,
                reply: tx,
            })
            .map_err(|_| {
                rpc_error(
                    Code::ResourceExhausted,
                    "WRITER_BUSY",
                    "too many appends are waiting; retry later",
                )
            })?;
        let result = rx
            .await
            .map_err(|_| rpc_error(Code::Unavailable, "SHUTTING_DOWN", "node is shutting down"))?;
        match result {
            Ok(appended) => {
                let new = appended.iter().filter(|a| !a.duplicate).count();
                self.metrics.appended(new, started.elapsed());
                Ok(pb::AppendResponse {
                    events: appended
                        .into_iter()
                        .map(|a| pb::AppendedEvent {
                            index: a.index,
                            event_id: a.event_id.0.to_vec(),
                            duplicate: a.duplicate,
                        })
                        .collect(),
                })
            }
            Err(WriteError::Refused(r)) => {
                self.metrics.refused();
                Err(refusal_status(&r))
            }
            Err(WriteError::NotLeader(leader)) => Err(not_leader(leader)),
            Err(WriteError::Raft(e)) => Err(rpc_error(
                Code::Unavailable,
                "NOT_COMMITTED",
                format!("write not committed: {e}"),
            )),
        }
    }

    /// Verifies, here where requests are handled in parallel, the
    /// signatures the writer's single task would otherwise verify: it then
    /// finds them verified. A bad signature is left for the writer to refuse.
    fn verify_ahead(&self, events: &[ics_kernel::Event]) {
        let signed: Vec<_> = {
            let applied = self.shared.read();
            events
                .iter()
                .map(|e| ics_kernel::known_signatures(&applied.projection, e))
                .collect()
        };
        for (event, signatures) in events.iter().zip(signed) {
            for (key, signature) in signatures {
                key.verify_event(&event.envelope.body, &signature);
            }
        }
    }

    /// Charges an append that decoded (F8: undecodable junk costs nobody's
    /// budget but its sender's time): a client to its own bucket and then to
    /// the node's client budget, a forwarding node to its own budget (its
    /// clients were charged where they connected). A node's bootstrap and
    /// upkeep of its own record are not charged: clients must not starve them.
    fn charge_append(&self, origin: Origin, caller: &str) -> Result<(), Status> {
        let limits = &self.config.limits;
        let over = match origin {
            Origin::Client if !self.client_append_rate.try_take(caller) => Some(format!(
                "{caller} is over its append limit of {} per second",
                limits.max_appends_per_client_per_second
            )),
            Origin::Client if !self.append_rate.try_take() => Some(format!(
                "this node's clients are over the append limit of {} per second",
                limits.max_appends_per_second
            )),
            Origin::Forwarded if !self.peer_append_rate.try_take(caller) => Some(format!(
                "{caller} forwards over its append limit of {} per second",
                limits.max_appends_per_second
            )),
            _ => None,
        };
        match over {
            None => Ok(()),
            Some(why) => {
                self.metrics.refused();
                Err(rpc_error(
                    Code::ResourceExhausted,
                    "RATE_LIMITED",
                    format!("{why}; retry later"),
                ))
            }
        }
    }

    /// Waits until this node may answer a read of the given consistency.
    /// `Ok(false)`: answer locally; `Ok(true)`: forward to the leader.
    pub(crate) async fn read_gate(
        &self,
        consistency: i32,
        forwarded: bool,
    ) -> Result<bool, Status> {
        if consistency == pb::ReadConsistency::Stale as i32 {
            return Ok(false);
        }
        if consistency != pb::ReadConsistency::Linearizable as i32 {
            return Err(rpc_error(
                Code::InvalidArgument,
                "INVALID_REQUEST",
                format!("unknown read consistency {consistency}"),
            ));
        }
        match self.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
            Ok(_) => Ok(false),
            Err(e) => match e.forward_to_leader() {
                Some(_) if !forwarded && self.leader().is_some() => Ok(true),
                Some(_) => Err(not_leader(self.leader())),
                None => Err(rpc_error(
                    Code::Unavailable,
                    "READ_INDEX_FAILED",
                    format!("linearizable read failed: {e}"),
                )),
            },
        }
    }

    pub(crate) fn stored_event(&self, index: u64) -> Result<pb::StoredEvent, Status> {
        let stored = store::stored_event(&self.shared.db, index)
            .map_err(|e| internal("read event", e))?
            .ok_or_else(|| {
                rpc_error(
                    Code::NotFound,
                    "NOT_FOUND",
                    format!("no event at index {index}"),
                )
            })?;
        let (imported, import_tag) = match stored.imported {
            Some((tag, bytes)) => (
                Some(pb::Imported {
                    namespace: tag.namespace,
                    via: tag.via,
                    source_index: tag.source_index,
                }),
                bytes,
            ),
            None => (None, Vec::new()),
        };
        Ok(pb::StoredEvent {
            index,
            event_id: stored.id.0.to_vec(),
            event: Some(codec::envelope_to_pb(&stored.envelope)),
            salt: stored.salt.to_vec(),
            imported,
            import_tag,
        })
    }
}
