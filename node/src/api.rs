//! The gRPC edge: translates requests to domain calls and domain errors to
//! gRPC statuses. Writes go through one writer task on the leader, which
//! groups concurrent appends into one Raft entry (group commit); followers
//! forward writes and linearizable reads to the leader.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use ics_proto::core_v1 as pb;
use ics_proto::core_v1::cluster_client::ClusterClient;
use ics_proto::core_v1::cluster_server::Cluster;
use ics_proto::core_v1::event_log_client::EventLogClient;
use ics_proto::core_v1::event_log_server::EventLog;
use openraft::{BasicNode, ChangeMembers, ReadPolicy, ServerState};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::codec;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::raft_types::{LogRequest, NodeId, Raft};
use crate::store::{self, MAX_ENTRY_BYTES, Shared};
use ics_identity::Identity;
use ics_identity::query::{self, SearchQuery, VerifyTarget};
use ics_kernel::projection::SubjectView;
use ics_kernel::{
    Appended, Event, EventId, EventLimits, KeyId, Refusal, RefusalClass, Staged, SubjectRef,
};

/// Metadata key on requests a follower forwarded, so they are never forwarded twice.
const FORWARDED: &str = "ics-forwarded";
/// Metadata key naming the leader's address on a not-leader answer.
pub const LEADER_HINT: &str = "ics-leader";

/// A gRPC error whose `google.rpc.ErrorInfo` (domain `ics`) carries
/// `reason`: clients and federation peers branch on it, never on the text.
pub fn rpc_error(code: Code, reason: &str, message: impl Into<String>) -> Status {
    let details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, HashMap::new());
    Status::with_error_details(code, message, details)
}

/// The `ErrorInfo.domain` of every error this node gives.
pub const ERROR_DOMAIN: &str = "ics";

pub fn refusal_status(r: &Refusal) -> Status {
    let code = match r.class() {
        RefusalClass::InvalidArgument => Code::InvalidArgument,
        RefusalClass::Unauthenticated => Code::Unauthenticated,
        RefusalClass::PermissionDenied => Code::PermissionDenied,
        RefusalClass::Conflict => Code::Aborted,
        RefusalClass::FailedPrecondition => Code::FailedPrecondition,
        RefusalClass::AlreadyExists => Code::AlreadyExists,
        RefusalClass::ResourceExhausted => Code::ResourceExhausted,
    };
    rpc_error(code, r.reason(), r.to_string())
}

fn not_leader(leader: Option<(NodeId, String)>) -> Status {
    match leader {
        Some((id, addr)) => {
            let mut s = rpc_error(
                Code::Unavailable,
                "NOT_LEADER",
                format!("this node is not the leader; the leader is node {id} at {addr}"),
            );
            if let Ok(v) = addr.parse() {
                s.metadata_mut().insert(LEADER_HINT, v);
            }
            s
        }
        None => rpc_error(
            Code::Unavailable,
            "NO_LEADER",
            "no leader is elected yet; retry shortly",
        ),
    }
}

/// A snapshot of the Raft metrics.
pub fn raft_metrics(raft: &Raft) -> openraft::RaftMetrics<crate::raft_types::TypeConfig> {
    use openraft::async_runtime::WatchReceiver;
    raft.metrics().borrow_watched().clone()
}

fn internal(context: &str, e: impl std::fmt::Display) -> Status {
    rpc_error(Code::Internal, "INTERNAL", format!("{context}: {e}"))
}

enum WriteError {
    Refused(Refusal),
    NotLeader(Option<(NodeId, String)>),
    Raft(String),
}

struct WriteJob {
    events: Vec<Event>,
    bytes: usize,
    reply: oneshot::Sender<Result<Vec<Appended>, WriteError>>,
}

/// A token bucket: `rate` tokens a second, at most `burst` saved up.
pub(crate) struct RateLimit {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimit {
    pub(crate) fn new(rate: u32, burst: u32) -> Self {
        RateLimit {
            rate: f64::from(rate),
            burst: f64::from(burst),
            state: Mutex::new((f64::from(burst), Instant::now())),
        }
    }

    pub(crate) fn try_take(&self) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        s.0 = (s.0 + now.duration_since(s.1).as_secs_f64() * self.rate).min(self.burst);
        s.1 = now;
        if s.0 >= 1.0 {
            s.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

pub struct Node {
    pub id: NodeId,
    pub raft: Raft,
    pub shared: Arc<Shared>,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    writer: mpsc::Sender<WriteJob>,
    channels: Mutex<HashMap<String, Channel>>,
    append_rate: RateLimit,
}

impl Node {
    /// Runs `f` on the applied view of `subject`, or answers NOT_FOUND.
    fn with_subject<T>(
        &self,
        subject: &SubjectRef,
        f: impl FnOnce(&ics_kernel::Projection, SubjectView<'_>) -> Result<T, Status>,
    ) -> Result<T, Status> {
        let applied = self.shared.read();
        let s = applied.projection.describe(subject).ok_or_else(|| {
            rpc_error(Code::NotFound, "NOT_FOUND", format!("no subject {subject}"))
        })?;
        f(&applied.projection, s)
    }

    pub fn new(
        raft: Raft,
        shared: Arc<Shared>,
        config: Arc<Config>,
        metrics: Arc<Metrics>,
    ) -> Arc<Node> {
        let (tx, rx) = mpsc::channel(config.limits.max_pending_appends);
        let append_rate = RateLimit::new(
            config.limits.max_appends_per_second,
            config.limits.append_burst,
        );
        let node = Arc::new(Node {
            id: config.node_id,
            raft,
            shared,
            config,
            metrics,
            writer: tx,
            channels: Mutex::new(HashMap::new()),
            append_rate,
        });
        tokio::spawn(run_writer(node.clone(), rx));
        node
    }

    fn now_ms() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }

    /// The leader's id and address, if one is known (possibly this node).
    fn leader(&self) -> Option<(NodeId, String)> {
        let m = raft_metrics(&self.raft);
        let id = m.current_leader?;
        let addr = m.membership_config.membership().get_node(&id)?.addr.clone();
        Some((id, addr))
    }

    fn channel(&self, addr: &str) -> Result<Channel, Status> {
        let mut map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = map.get(addr) {
            return Ok(c.clone());
        }
        let c = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| internal("leader address", e))?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .connect_lazy();
        map.insert(addr.to_string(), c.clone());
        Ok(c)
    }

    fn leader_client(
        &self,
        leader: Option<(NodeId, String)>,
    ) -> Result<EventLogClient<Channel>, Status> {
        let (_, addr) = leader.clone().ok_or_else(|| not_leader(None))?;
        let max = self.config.limits.max_message_bytes;
        Ok(EventLogClient::new(self.channel(&addr)?)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max))
    }

    fn forwarded<T>(inner: T) -> Request<T> {
        let mut r = Request::new(inner);
        r.metadata_mut()
            .insert(FORWARDED, "1".parse().expect("ascii"));
        r
    }

    /// Parses and checks an append request at the edge: decoding, sizes, clock skew.
    fn parse_append(&self, req: &pb::AppendRequest) -> Result<(Vec<Event>, usize), Refusal> {
        let limits = &self.config.limits;
        limits.events.check_batch_len(req.events.len())?;
        let now = Self::now_ms();
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

    /// Appends a batch through the leader's writer.
    pub async fn append(
        &self,
        req: pb::AppendRequest,
        forwarded: bool,
    ) -> Result<pb::AppendResponse, Status> {
        let started = Instant::now();
        // Forwarded requests count too: the marker is a hint between nodes,
        // not an identity, and must not buy a client a way around the limit.
        if !self.append_rate.try_take() {
            self.metrics.refused();
            return Err(rpc_error(
                Code::ResourceExhausted,
                "RATE_LIMITED",
                format!(
                    "append rate over the limit of {} per second; retry later",
                    self.config.limits.max_appends_per_second
                ),
            ));
        }
        let (events, bytes) = self.parse_append(&req).map_err(|r| {
            self.metrics.refused();
            refusal_status(&r)
        })?;
        if !self.raft.is_leader() {
            let leader = self.leader();
            if forwarded || leader.is_none() {
                return Err(not_leader(leader));
            }
            let mut client = self.leader_client(leader)?;
            return client
                .append(Self::forwarded(req))
                .await
                .map(Response::into_inner);
        }
        let (tx, rx) = oneshot::channel();
        self.writer
            .try_send(WriteJob {
                events,
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
                self.metrics.appended(appended.len(), started.elapsed());
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

    /// Waits until this node may answer a read of the given consistency.
    /// `Ok(false)`: answer locally; `Ok(true)`: forward to the leader.
    async fn read_gate(&self, consistency: i32, forwarded: bool) -> Result<bool, Status> {
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

    fn stored_event(&self, index: u64) -> Result<pb::StoredEvent, Status> {
        let (id, env) = store::stored_event(&self.shared.db, index)
            .map_err(|e| internal("read event", e))?
            .ok_or_else(|| {
                rpc_error(
                    Code::NotFound,
                    "NOT_FOUND",
                    format!("no event at index {index}"),
                )
            })?;
        Ok(pb::StoredEvent {
            index,
            event_id: id.0.to_vec(),
            event: Some(codec::envelope_to_pb(&env)),
        })
    }

    /// Appends the party's genesis event signed by the root key in the data
    /// dir (created now if missing), once a leader exists. Idempotent.
    pub async fn ensure_genesis(self: Arc<Self>) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.shared.read().projection.party().is_some() {
                return;
            }
            if self.leader().is_some() {
                match self.append_genesis().await {
                    Ok(()) => return,
                    Err(e) if e.code() == tonic::Code::FailedPrecondition => return,
                    Err(e) => tracing::warn!(error = %e.message(), "genesis not appended yet"),
                }
            }
            if Instant::now() > deadline {
                tracing::error!("gave up appending the party genesis after 60 s");
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn append_genesis(&self) -> Result<(), Status> {
        use ics_kernel::Algorithm;
        use ics_kernel::authority::{PARTY, PartyPayload};
        let path = self.config.data_dir.join("root.key");
        let (root, created) = crate::keyfile::load_or_create(&path, Algorithm::Ed25519)
            .map_err(|e| internal("root key", format!("{e:#}")))?;
        if created {
            tracing::info!(path = %path.display(), key_id = %root.key_id(), "created the party root key");
        }
        let env = crate::client::signed(
            &root,
            SubjectRef::new(PARTY, self.config.party.clone()),
            crate::client::ChainHead::default(),
            PartyPayload::Genesis {
                party_name: self.config.party.clone(),
                role: self.config.role,
                root_key: root.public_key(),
                // The party's first rules: this node's configured limits and
                // what its build runs. Replicated from here on.
                rules: crate::capabilities::genesis_rules(self.config.limits.events.clone()),
            },
        );
        let req = pb::AppendRequest {
            events: vec![codec::envelope_to_pb(&env)],
        };
        self.append(req, false).await?;
        tracing::info!(party = %self.config.party, "party genesis appended");
        Ok(())
    }
}

/// Checks each job against the applied state plus the jobs before it in
/// the round; `Some` is the refusal.
fn precheck(node: &Node, jobs: &[WriteJob], limits: &EventLimits) -> Vec<Option<Refusal>> {
    let applied = node.shared.read();
    let mut staged = Staged::new(&applied.projection);
    jobs.iter()
        .map(|job| staged.stage_batch(&job.events, limits).err())
        .collect()
}

/// The leader's single writer: groups waiting appends into one Raft entry,
/// checks them against the applied state plus what the entry already holds,
/// and replies with what the state machine decided.
async fn run_writer(node: Arc<Node>, mut rx: mpsc::Receiver<WriteJob>) {
    let limits = node.config.limits.events.clone();
    let mut carry: Option<WriteJob> = None;
    loop {
        let first = match carry.take() {
            Some(j) => j,
            None => match rx.recv().await {
                Some(j) => j,
                None => return,
            },
        };
        let mut bytes = first.bytes;
        let mut jobs = vec![first];
        while let Ok(j) = rx.try_recv() {
            if bytes + j.bytes > MAX_ENTRY_BYTES {
                carry = Some(j);
                break;
            }
            bytes += j.bytes;
            jobs.push(j);
        }
        // A refusal is final only against current state: this node may be a
        // leader that has not applied its predecessors' entries yet, or a
        // restarted one that does not know it was deposed. So the first
        // refusal in a round costs a read-index barrier (a quorum round trip
        // that also waits for apply) and the round is checked again.
        let mut verdicts = precheck(&node, &jobs, &limits);
        if verdicts.iter().any(Option::is_some) {
            if let Err(e) = node.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
                for job in jobs {
                    let _ = job.reply.send(Err(match e.forward_to_leader() {
                        Some(_) => WriteError::NotLeader(node.leader()),
                        None => WriteError::Raft(e.to_string()),
                    }));
                }
                continue;
            }
            verdicts = precheck(&node, &jobs, &limits);
        }
        let mut accepted = Vec::with_capacity(jobs.len());
        for (job, verdict) in jobs.into_iter().zip(verdicts) {
            match verdict {
                None => accepted.push(job),
                Some(r) => {
                    tracing::debug!(error = %r, "writer refused a batch");
                    let _ = job.reply.send(Err(WriteError::Refused(r)));
                }
            }
        }
        if accepted.is_empty() {
            continue;
        }
        let request = LogRequest {
            batches: accepted
                .iter()
                .map(|j| {
                    j.events
                        .iter()
                        .map(|e| codec::envelope_to_bytes(&e.envelope))
                        .collect()
                })
                .collect(),
        };
        node.metrics.entry_written(accepted.len());
        match node.raft.client_write(request).await {
            Ok(resp) => {
                let mut results = resp.data.results.into_iter();
                for job in accepted {
                    let r = results.next().unwrap_or_else(|| {
                        Err(Refusal::Malformed("state machine gave no result".into()))
                    });
                    let _ = job.reply.send(r.map_err(WriteError::Refused));
                }
            }
            Err(e) => {
                let err = || match e.forward_to_leader() {
                    Some(f) => WriteError::NotLeader(
                        f.leader_id
                            .and_then(|id| f.leader_node.as_ref().map(|n| (id, n.addr.clone()))),
                    ),
                    None => WriteError::Raft(e.to_string()),
                };
                for job in accepted {
                    let _ = job.reply.send(Err(err()));
                }
            }
        }
    }
}

fn is_forwarded<T>(req: &Request<T>) -> bool {
    req.metadata().get(FORWARDED).is_some()
}

/// The `EventLog` and `Cluster` gRPC services.
#[derive(Clone)]
pub struct Api {
    pub node: Arc<Node>,
}

type EventStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::StoredEvent, Status>> + Send>>;

#[tonic::async_trait]
impl EventLog for Api {
    async fn append(
        &self,
        req: Request<pb::AppendRequest>,
    ) -> Result<Response<pb::AppendResponse>, Status> {
        let forwarded = is_forwarded(&req);
        self.node
            .append(req.into_inner(), forwarded)
            .await
            .map(Response::new)
    }

    async fn get_event(
        &self,
        req: Request<pb::GetEventRequest>,
    ) -> Result<Response<pb::StoredEvent>, Status> {
        let forwarded = is_forwarded(&req);
        let r = req.into_inner();
        let id = EventId::from_slice(&r.event_id).ok_or_else(|| {
            rpc_error(
                Code::InvalidArgument,
                "INVALID_REQUEST",
                "event_id must be 32 bytes",
            )
        })?;
        if self.node.read_gate(r.consistency, forwarded).await? {
            let mut c = self.node.leader_client(self.node.leader())?;
            return c.get_event(Node::forwarded(r)).await;
        }
        let index = self
            .node
            .shared
            .read()
            .projection
            .event_index(&id)
            .ok_or_else(|| rpc_error(Code::NotFound, "NOT_FOUND", format!("no event {id}")))?;
        self.node.stored_event(index).map(Response::new)
    }

    type HistoryStream = EventStream;

    async fn history(
        &self,
        req: Request<pb::HistoryRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let forwarded = is_forwarded(&req);
        let r = req.into_inner();
        let subject = codec::subject_from_pb(r.subject.clone()).map_err(|e| refusal_status(&e))?;
        if self.node.read_gate(r.consistency, forwarded).await? {
            let mut c = self.node.leader_client(self.node.leader())?;
            let stream = c.history(Node::forwarded(r)).await?.into_inner();
            return Ok(Response::new(Box::pin(stream)));
        }
        let indexes = self
            .node
            .shared
            .read()
            .projection
            .entry(&subject)
            .map(|s| s.history.clone())
            .ok_or_else(|| {
                rpc_error(Code::NotFound, "NOT_FOUND", format!("no subject {subject}"))
            })?;
        let node = self.node.clone();
        let stream = futures::stream::iter(indexes).map(move |i| node.stored_event(i));
        Ok(Response::new(Box::pin(stream)))
    }

    type WatchStream = EventStream;

    async fn watch(&self, req: Request<pb::WatchRequest>) -> Result<Response<EventStream>, Status> {
        let from = req.into_inner().from_index.max(1);
        let (tx, rx) = mpsc::channel(64);
        let node = self.node.clone();
        let mut count_rx = node.shared.event_count.subscribe();
        tokio::spawn(async move {
            let mut next = from;
            loop {
                let count = *count_rx.borrow_and_update();
                while next <= count {
                    let item = node.stored_event(next);
                    let failed = item.is_err();
                    if tx.send(item).await.is_err() || failed {
                        return;
                    }
                    next += 1;
                }
                tokio::select! {
                    changed = count_rx.changed() => if changed.is_err() { return },
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_subject(
        &self,
        req: Request<pb::GetSubjectRequest>,
    ) -> Result<Response<pb::SubjectState>, Status> {
        let forwarded = is_forwarded(&req);
        let r = req.into_inner();
        let subject = codec::subject_from_pb(r.subject.clone()).map_err(|e| refusal_status(&e))?;
        if self.node.read_gate(r.consistency, forwarded).await? {
            let mut c = self.node.leader_client(self.node.leader())?;
            return c.get_subject(Node::forwarded(r)).await;
        }
        self.node
            .with_subject(&subject, |_, s| Ok(Response::new(subject_state_pb(&s))))
    }

    async fn export_open_pgp(
        &self,
        req: Request<pb::GetSubjectRequest>,
    ) -> Result<Response<pb::OpenPgpExport>, Status> {
        let forwarded = is_forwarded(&req);
        let r = req.into_inner();
        let subject = codec::subject_from_pb(r.subject.clone()).map_err(|e| refusal_status(&e))?;
        if self.node.read_gate(r.consistency, forwarded).await? {
            let mut c = self.node.leader_client(self.node.leader())?;
            return c.export_open_pgp(Node::forwarded(r)).await;
        }
        let export = self.node.with_subject(&subject, |p, _| {
            p.capability::<Identity>()
                .subject(&subject)
                .and_then(query::openpgp_export)
                .ok_or_else(|| {
                    rpc_error(
                        Code::FailedPrecondition,
                        "NO_OPENPGP",
                        format!("{subject} was registered without OpenPGP signatures"),
                    )
                })
        })?;
        let (fingerprint, revoked) = match &export {
            query::OpenPgpExport::Certificate {
                fingerprint,
                revoked,
                ..
            } => (fingerprint.clone(), *revoked),
            query::OpenPgpExport::Signature { .. } => (String::new(), false),
        };
        Ok(Response::new(pb::OpenPgpExport {
            armored: export.armored(),
            data: export.binary().to_vec(),
            fingerprint,
            revoked,
        }))
    }

    async fn search(
        &self,
        req: Request<pb::SearchRequest>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        let forwarded = is_forwarded(&req);
        let r = req.into_inner();
        let query = search_query(r.by.clone())?;
        let limit = match r.page_size {
            0 => DEFAULT_PAGE_SIZE,
            n if n > MAX_PAGE_SIZE => {
                return Err(rpc_error(
                    Code::InvalidArgument,
                    "INVALID_REQUEST",
                    format!("page_size {n} is over the limit of {MAX_PAGE_SIZE}"),
                ));
            }
            n => n,
        } as usize;
        let after = if r.page_token.is_empty() {
            None
        } else {
            Some(parse_page_token(&r.page_token).ok_or_else(|| {
                rpc_error(
                    Code::InvalidArgument,
                    "INVALID_REQUEST",
                    format!("page_token {:?} is not one this node issued", r.page_token),
                )
            })?)
        };
        if self.node.read_gate(r.consistency, forwarded).await? {
            let mut c = self.node.leader_client(self.node.leader())?;
            return c.search(Node::forwarded(r)).await;
        }
        let applied = self.node.shared.read();
        let page = query::search(&applied.projection, &query, after.as_ref(), limit);
        Ok(Response::new(pb::SearchResponse {
            subjects: page.subjects.iter().map(subject_state_pb).collect(),
            next_page_token: page.next.map(|n| n.to_string()).unwrap_or_default(),
        }))
    }

    async fn verify(
        &self,
        req: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::VerifyResponse>, Status> {
        use pb::verify_request::What;
        let forwarded = is_forwarded(&req);
        let r = req.into_inner();
        let target = match r.what.clone() {
            Some(What::PublicKey(k)) => {
                let alg = codec::algorithm_from_pb(k.algorithm, "public_key.algorithm")
                    .map_err(|e| refusal_status(&e))?;
                let key = ics_kernel::PublicKey::new(alg, k.key).map_err(|e| {
                    rpc_error(
                        Code::InvalidArgument,
                        "INVALID_REQUEST",
                        format!("public_key: {e}"),
                    )
                })?;
                VerifyTarget::Key(key.id())
            }
            Some(What::KeyFingerprint(f)) => {
                VerifyTarget::Key(KeyId::from_slice(&f).ok_or_else(|| {
                    rpc_error(
                        Code::InvalidArgument,
                        "INVALID_REQUEST",
                        "key_fingerprint must be 32 bytes",
                    )
                })?)
            }
            Some(What::CodeDigest(d)) => {
                VerifyTarget::CodeDigest(d.as_slice().try_into().map_err(|_| {
                    rpc_error(
                        Code::InvalidArgument,
                        "INVALID_REQUEST",
                        "code_digest must be 32 bytes",
                    )
                })?)
            }
            None => {
                return Err(rpc_error(
                    Code::InvalidArgument,
                    "INVALID_REQUEST",
                    "verify needs public_key, key_fingerprint or code_digest",
                ));
            }
        };
        if self.node.read_gate(r.consistency, forwarded).await? {
            let mut c = self.node.leader_client(self.node.leader())?;
            return c.verify(Node::forwarded(r)).await;
        }
        let applied = self.node.shared.read();
        let t = query::verify(&applied.projection, &target, Node::now_ms());
        Ok(Response::new(pb::VerifyResponse {
            trusted: t.trusted,
            reason: t.reason,
            subject: t.subject.as_ref().map(codec::subject_to_pb),
            status: t.status.unwrap_or_default().to_string(),
            registered_by: t.registered_by.map(|k| k.0.to_vec()).unwrap_or_default(),
            party: t.party.unwrap_or_default(),
            registered_at_index: t.registered_at.unwrap_or(0),
            as_of_index: applied.last_applied.map_or(0, |l| l.index()),
        }))
    }
}

fn subject_state_pb(s: &SubjectView<'_>) -> pb::SubjectState {
    pb::SubjectState {
        subject: Some(codec::subject_to_pb(s.subject)),
        next_sequence: s.entry.next_sequence,
        last_event_id: s.entry.last_event.0.to_vec(),
        summary: s.summary.clone(),
        history: s.entry.history.clone(),
        status: s.status.unwrap_or_default().to_string(),
        registered_by: s.entry.registered_by.0.to_vec(),
    }
}

/// Parses a page token ("kind/id", as a subject prints) of a known kind.
fn parse_page_token(token: &str) -> Option<SubjectRef> {
    SubjectRef::parse(token).filter(|s| crate::capabilities::rules().is_subject_kind(&s.kind))
}

const MAX_PAGE_SIZE: u32 = 1000;
const DEFAULT_PAGE_SIZE: u32 = 100;

fn search_query(by: Option<pb::search_request::By>) -> Result<SearchQuery, Status> {
    use pb::search_request::By;
    let digest = |b: &[u8], name: &str| -> Result<[u8; 32], Status> {
        b.try_into().map_err(|_| {
            rpc_error(
                Code::InvalidArgument,
                "INVALID_REQUEST",
                format!("{name} must be 32 bytes, got {}", b.len()),
            )
        })
    };
    Ok(
        match by.ok_or_else(|| {
            rpc_error(
                Code::InvalidArgument,
                "INVALID_REQUEST",
                "search needs one of serial, attribute, code_name, code_digest, key_fingerprint",
            )
        })? {
            By::Serial(s) => SearchQuery::Serial(s),
            By::Attribute(a) => {
                let (name, value) = a.split_once('=').ok_or_else(|| {
                    rpc_error(
                        Code::InvalidArgument,
                        "INVALID_REQUEST",
                        format!("attribute {a:?} must be NAME=VALUE"),
                    )
                })?;
                SearchQuery::Attribute {
                    name: name.to_string(),
                    value: value.to_string(),
                }
            }
            By::CodeName(n) => SearchQuery::CodeName(n),
            By::CodeDigest(d) => SearchQuery::CodeDigest(digest(&d, "code_digest")?),
            By::KeyFingerprint(f) => SearchQuery::KeyId(KeyId(digest(&f, "key_fingerprint")?)),
        },
    )
}

fn member_list(node: &Node) -> Vec<pb::NodeInfo> {
    let m = raft_metrics(&node.raft);
    let membership = m.membership_config.membership();
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    membership
        .nodes()
        .map(|(id, n)| pb::NodeInfo {
            id: *id,
            address: n.addr.clone(),
            voter: voters.contains(id),
        })
        .collect()
}

impl Api {
    /// `None` on the leader; otherwise a client of the leader to forward a
    /// membership change to, or where the leader is when it cannot forward.
    fn leader_cluster_client(
        &self,
        forwarded: bool,
    ) -> Result<Option<ClusterClient<Channel>>, Status> {
        if self.node.raft.is_leader() {
            return Ok(None);
        }
        match self.node.leader() {
            Some((_, addr)) if !forwarded => {
                Ok(Some(ClusterClient::new(self.node.channel(&addr)?)))
            }
            leader => Err(not_leader(leader)),
        }
    }
}

#[tonic::async_trait]
impl Cluster for Api {
    async fn status(
        &self,
        _req: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let node = &self.node;
        let m = raft_metrics(&node.raft);
        let leader = node.leader();
        let applied = node.shared.read();
        Ok(Response::new(pb::StatusResponse {
            node_id: node.id,
            role: node.config.role.name().to_string(),
            state: match m.state {
                ServerState::Leader => "leader",
                ServerState::Follower => "follower",
                ServerState::Candidate => "candidate",
                ServerState::Learner => "learner",
                ServerState::Shutdown => "shutdown",
            }
            .to_string(),
            current_leader: leader.as_ref().map_or(0, |l| l.0),
            leader_address: leader.map(|l| l.1).unwrap_or_default(),
            term: m.current_term,
            last_log_index: m.last_log_index.unwrap_or(0),
            last_applied_index: applied.last_applied.map_or(0, |l| l.index()),
            event_count: applied.projection.event_count(),
            log_hash: applied.projection.log_hash().to_vec(),
            state_hash: applied.projection.state_hash().to_vec(),
            members: member_list(node),
            party: applied
                .projection
                .party()
                .map(|p| p.name.clone())
                .unwrap_or_default(),
            last_snapshot_index: m.snapshot.map_or(0, |l| l.index()),
            last_purged_index: m.purged.map_or(0, |l| l.index()),
            active_rules: applied
                .projection
                .active_rules()
                .map(|r| r.version_text())
                .unwrap_or_default(),
            active_limits: applied.projection.active_rules().map(|r| {
                let l = &r.limits;
                pb::EventLimits {
                    max_body_bytes: l.max_body_bytes as u64,
                    max_signatures: l.max_signatures as u64,
                    max_records_per_subject: l.max_records_per_subject,
                    max_attributes: l.max_attributes as u64,
                    max_text_bytes: l.max_text_bytes as u64,
                    max_batch_events: l.max_batch_events as u64,
                }
            }),
            active_capabilities: applied
                .projection
                .active_rules()
                .map(|r| {
                    r.capabilities
                        .iter()
                        .map(|(name, version)| pb::CapabilityVersion {
                            name: name.clone(),
                            version: *version,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            build_rules: crate::capabilities::rules().version(),
        }))
    }

    async fn initialize(
        &self,
        req: Request<pb::InitializeRequest>,
    ) -> Result<Response<pb::InitializeResponse>, Status> {
        let mut members = BTreeMap::new();
        for m in req.into_inner().members {
            if m.id == 0 || m.address.is_empty() {
                return Err(rpc_error(
                    Code::InvalidArgument,
                    "INVALID_REQUEST",
                    "members need a positive id and an address",
                ));
            }
            members.insert(m.id, BasicNode { addr: m.address });
        }
        if members.is_empty() {
            members.insert(
                self.node.id,
                BasicNode {
                    addr: self.node.config.advertise_address(),
                },
            );
        }
        if !members.contains_key(&self.node.id) {
            return Err(rpc_error(
                Code::InvalidArgument,
                "INVALID_REQUEST",
                format!("members must include this node ({})", self.node.id),
            ));
        }
        self.node.raft.initialize(members).await.map_err(|e| {
            rpc_error(
                Code::FailedPrecondition,
                "MEMBERSHIP",
                format!("cannot initialize: {e}"),
            )
        })?;
        tokio::spawn(self.node.clone().ensure_genesis());
        Ok(Response::new(pb::InitializeResponse {}))
    }

    async fn add_node(
        &self,
        req: Request<pb::AddNodeRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        if let Some(mut leader) = self.leader_cluster_client(is_forwarded(&req))? {
            return leader.add_node(Node::forwarded(req.into_inner())).await;
        }
        let r = req.into_inner();
        if r.id == 0 || r.address.is_empty() {
            return Err(rpc_error(
                Code::InvalidArgument,
                "INVALID_REQUEST",
                "a node needs a positive id and an address",
            ));
        }
        self.node
            .raft
            .add_learner(r.id, BasicNode { addr: r.address }, true)
            .await
            .map_err(|e| {
                rpc_error(
                    Code::FailedPrecondition,
                    "MEMBERSHIP",
                    format!("cannot add learner {}: {e}", r.id),
                )
            })?;
        if !r.learner_only {
            self.node
                .raft
                .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([r.id])), false)
                .await
                .map_err(|e| {
                    rpc_error(
                        Code::FailedPrecondition,
                        "MEMBERSHIP",
                        format!("cannot make {} a voter: {e}", r.id),
                    )
                })?;
        }
        Ok(Response::new(pb::MembershipResponse {
            members: member_list(&self.node),
        }))
    }

    async fn remove_node(
        &self,
        req: Request<pb::RemoveNodeRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        if let Some(mut leader) = self.leader_cluster_client(is_forwarded(&req))? {
            return leader.remove_node(Node::forwarded(req.into_inner())).await;
        }
        let id = req.into_inner().id;
        let m = raft_metrics(&self.node.raft);
        let membership = m.membership_config.membership();
        if membership.get_node(&id).is_none() {
            return Err(rpc_error(
                Code::NotFound,
                "NOT_FOUND",
                format!("node {id} is not a member"),
            ));
        }
        let change = if membership.voter_ids().any(|v| v == id) {
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        };
        self.node
            .raft
            .change_membership(change, false)
            .await
            .map_err(|e| {
                rpc_error(
                    Code::FailedPrecondition,
                    "MEMBERSHIP",
                    format!("cannot remove node {id}: {e}"),
                )
            })?;
        Ok(Response::new(pb::MembershipResponse {
            members: member_list(&self.node),
        }))
    }
}
