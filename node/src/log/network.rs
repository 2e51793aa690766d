//! Raft transport over tonic gRPC: the client side openraft calls, and the
//! server side that hands peer messages to the local Raft.
//!
//! openraft's messages travel as postcard bytes in a protobuf envelope; the
//! server answers `Result<T, String>` so a remote failure is reported, not
//! mistaken for an unreachable peer.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use ics_proto::core_v1::raft_transport_client::RaftTransportClient;
use ics_proto::core_v1::raft_transport_server::RaftTransport;
use ics_proto::core_v1::{RaftMessage, SnapshotChunk};
use openraft::error::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RaftNetworkFactory, RaftNetworkV2};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status, Streaming};

use super::snapshot::{SnapshotRefusal, check_extends, check_header};
use super::store::Shared;
use super::{NodeId, Raft, Snapshot, SnapshotMeta, TypeConfig, Vote};
use crate::errors::rpc_error;
use crate::metrics::Metrics;

/// Limits of the transport, from the node config.
#[derive(Clone, Debug)]
pub struct TransportLimits {
    pub max_message_bytes: usize,
    pub max_snapshot_bytes: usize,
    pub connect_timeout: Duration,
}

pub struct Network {
    pub limits: TransportLimits,
    pub tls: Arc<crate::peer::NodeTls>,
}

pub struct PeerClient {
    target: NodeId,
    client: RaftTransportClient<Channel>,
    max_message_bytes: usize,
}

/// Room in a message for an append request's fields other than its entries.
const APPEND_FIELDS_BYTES: usize = 4096;
/// Entry bytes per append request. openraft gives an append the heartbeat
/// interval to complete (150 ms by default), and the follower fsyncs before
/// it answers: a catching-up follower gets many modest requests, not a few
/// that time out every time.
const APPEND_ENTRY_BYTES: usize = 1024 * 1024;

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        let channel = crate::peer::channel(
            &self.tls,
            target,
            &node.addr,
            self.limits.connect_timeout,
        )
        .unwrap_or_else(|e| {
            tracing::error!(target, error = %format!("{e:#}"), "no TLS channel to the peer");
            Endpoint::from_static("http://0.0.0.0:1").connect_lazy()
        });
        let client = RaftTransportClient::new(channel)
            .max_decoding_message_size(self.limits.max_message_bytes)
            .max_encoding_message_size(self.limits.max_message_bytes);
        PeerClient {
            target,
            client,
            max_message_bytes: self.limits.max_message_bytes,
        }
    }
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, io::Error> {
    postcard::to_stdvec(v).map_err(io::Error::other)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, io::Error> {
    postcard::from_bytes(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn status_to_rpc(target: NodeId, s: Status) -> RPCError<TypeConfig> {
    let e = io::Error::other(format!("peer {target}: {}: {}", s.code(), s.message()));
    match s.code() {
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
            RPCError::Unreachable(Unreachable::new(&e))
        }
        _ => RPCError::Network(NetworkError::new(&e)),
    }
}

fn network_err(e: io::Error) -> RPCError<TypeConfig> {
    RPCError::Network(NetworkError::new(&e))
}

impl PeerClient {
    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &mut self,
        kind: RpcKind,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<TypeConfig>> {
        let mut request = Request::new(RaftMessage {
            payload: encode(req).map_err(network_err)?,
        });
        request.set_timeout(option.hard_ttl());
        let reply = match kind {
            RpcKind::Append => self.client.append_entries(request).await,
            RpcKind::Vote => self.client.vote(request).await,
            RpcKind::PreVote => self.client.pre_vote(request).await,
        }
        .map_err(|s| status_to_rpc(self.target, s))?;
        let result: Result<Resp, String> =
            decode(&reply.into_inner().payload).map_err(network_err)?;
        result.map_err(|remote| {
            network_err(io::Error::other(format!("peer {}: {remote}", self.target)))
        })
    }
}

enum RpcKind {
    Append,
    Vote,
    PreVote,
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = super::snapshot::SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        // openraft bounds a request by entry count, not bytes: a follower far
        // behind on large entries would be sent more than a message carries
        // or than it can store within the request's timeout, fail every time
        // and never catch up. Send the longest prefix within the budget and
        // report how far it got.
        let mut rpc = rpc;
        let budget = self
            .max_message_bytes
            .saturating_sub(APPEND_FIELDS_BYTES)
            .min(APPEND_ENTRY_BYTES);
        let keep = entries_within(&rpc.entries, budget).map_err(network_err)?;
        let cut = keep < rpc.entries.len();
        rpc.entries.truncate(keep);
        let last = rpc.entries.last().map(|e| e.log_id);
        match self.call(RpcKind::Append, &rpc, &option).await? {
            AppendEntriesResponse::Success if cut => {
                tracing::debug!(
                    target = self.target,
                    sent = keep,
                    "append request cut to fit a message"
                );
                Ok(AppendEntriesResponse::PartialSuccess(last))
            }
            other => Ok(other),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(RpcKind::Vote, &rpc, &option).await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(RpcKind::PreVote, &rpc, &option).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let header = encode(&(vote, &snapshot.meta))
            .map_err(|e| StreamingError::Network(NetworkError::new(&e)))?;
        let mut request = Request::new(futures::stream::iter(snapshot_chunks(
            header,
            snapshot.snapshot,
        )));
        request.set_timeout(option.hard_ttl());
        let target = self.target;
        let send = self.client.install_snapshot(request);
        let reply = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            r = send => r,
        };
        let reply = reply.map_err(|s| match status_to_rpc(target, s) {
            RPCError::Unreachable(u) => StreamingError::Unreachable(u),
            RPCError::Network(n) => StreamingError::Network(n),
            other => StreamingError::Network(NetworkError::new(&other)),
        })?;
        let result: Result<SnapshotResponse<TypeConfig>, String> =
            decode(&reply.into_inner().payload)
                .map_err(|e| StreamingError::Network(NetworkError::new(&e)))?;
        result.map_err(|remote| {
            StreamingError::Network(NetworkError::new(&io::Error::other(format!(
                "peer {target}: {remote}"
            ))))
        })
    }
}

/// How many of `entries`, from the first, encode within `budget` bytes (at
/// least one: the writer keeps every entry well under a message).
fn entries_within<T: Serialize>(entries: &[T], budget: usize) -> io::Result<usize> {
    let mut used = 0;
    for (i, e) in entries.iter().enumerate() {
        used += postcard::experimental::serialized_size(e).map_err(io::Error::other)?;
        if used > budget {
            return Ok(i.max(1));
        }
    }
    Ok(entries.len())
}

/// The header chunk, then the snapshot's chunks as they are read from disk,
/// then a final chunk marked `last`. A chunk that cannot be read ends the
/// stream early without it, and the follower drops the transfer as cut short.
fn snapshot_chunks(
    header: Vec<u8>,
    data: super::snapshot::SnapshotData,
) -> impl Iterator<Item = SnapshotChunk> + Send + 'static {
    let first = SnapshotChunk {
        header,
        ..Default::default()
    };
    let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let read_failed = failed.clone();
    let rest = data
        .into_chunks(super::snapshot::SNAPSHOT_CHUNK_BYTES)
        .map_while(move |chunk| match chunk {
            Ok(data) => Some(SnapshotChunk {
                data,
                ..Default::default()
            }),
            Err(e) => {
                tracing::error!(error = %e, "reading a snapshot to send");
                read_failed.store(true, std::sync::atomic::Ordering::Relaxed);
                None
            }
        });
    let last = std::iter::once_with(move || {
        (!failed.load(std::sync::atomic::Ordering::Relaxed)).then(|| SnapshotChunk {
            last: true,
            ..Default::default()
        })
    })
    .flatten();
    std::iter::once(first).chain(rest).chain(last)
}

/// The server side: peers' Raft messages into the local Raft.
pub struct RaftService {
    pub raft: Raft,
    pub limits: TransportLimits,
    /// The applied state, which a received snapshot must extend.
    pub shared: Arc<Shared>,
    pub metrics: Arc<Metrics>,
    /// Where a snapshot being received is spooled (the data dir).
    pub spool_dir: PathBuf,
    /// Held while a snapshot is received: one stream at a time.
    pub receiving: Arc<tokio::sync::Mutex<()>>,
    pub leader_contact: Arc<super::LeaderContact>,
}

impl RaftService {
    /// Refuses a Raft message whose leader or candidate is not a member of
    /// this node's membership (F2: a made-up leader's membership entry would
    /// make this node its learner for good). A node not yet in any membership
    /// takes its first leader's messages.
    fn check_sender(
        &self,
        peer: Option<&crate::peer::PeerIdentity>,
        sender: NodeId,
        what: &str,
    ) -> Result<(), Status> {
        // The peer listener attaches who the certificate names; a message
        // claiming another node's name is refused.
        match peer {
            Some(peer) if peer.node_id == sender => {}
            Some(peer) => {
                tracing::warn!(
                    sender,
                    certificate = peer.node_id,
                    what,
                    "refused a Raft message sent in another node's name"
                );
                return Err(rpc_error(
                    tonic::Code::PermissionDenied,
                    "PEER_ID_MISMATCH",
                    format!(
                        "{what} in the name of node {sender} from node {}'s certificate",
                        peer.node_id
                    ),
                ));
            }
            None => {
                return Err(rpc_error(
                    tonic::Code::PermissionDenied,
                    "NOT_A_PEER",
                    format!("{what} not over the peer listener"),
                ));
            }
        }
        let m = super::raft_metrics(&self.raft);
        let membership = m.membership_config.membership();
        if membership.nodes().next().is_some() && membership.get_node(&sender).is_none() {
            tracing::warn!(
                sender,
                what,
                "refused a Raft message from a node that is not a member"
            );
            return Err(rpc_error(
                tonic::Code::PermissionDenied,
                "NOT_A_MEMBER",
                format!("{what} from node {sender}, which is not a member of this cluster"),
            ));
        }
        Ok(())
    }

    fn refuse_snapshot(&self, why: SnapshotRefusal) -> Status {
        self.metrics.snapshot_refused();
        tracing::error!(error = %why, "ALARM: refused a snapshot from a peer");
        rpc_error(
            tonic::Code::FailedPrecondition,
            "SNAPSHOT_REFUSED",
            format!("snapshot refused: {why}"),
        )
    }

    /// Receives a snapshot stream into a spool file, within the size limit.
    async fn spool(
        &self,
        first: SnapshotChunk,
        stream: &mut Streaming<SnapshotChunk>,
    ) -> Result<Vec<u8>, Status> {
        use tokio::io::AsyncWriteExt;
        let path = self.spool_dir.join("snapshot-incoming.tmp");
        let io = |e: io::Error| Status::internal(format!("spool snapshot: {e}"));
        let mut file = tokio::fs::File::create(&path).await.map_err(io)?;
        let mut size = first.data.len();
        file.write_all(&first.data).await.map_err(io)?;
        let mut complete = first.last;
        while !complete {
            let Some(chunk) = stream.next().await else {
                break;
            };
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    drop(file);
                    let _ = tokio::fs::remove_file(&path).await;
                    return Err(e);
                }
            };
            size += chunk.data.len();
            if size > self.limits.max_snapshot_bytes {
                drop(file);
                let _ = tokio::fs::remove_file(&path).await;
                return Err(rpc_error(
                    tonic::Code::ResourceExhausted,
                    "SNAPSHOT_TOO_LARGE",
                    format!(
                        "snapshot is over the limit of {} bytes",
                        self.limits.max_snapshot_bytes
                    ),
                ));
            }
            file.write_all(&chunk.data).await.map_err(io)?;
            complete = chunk.last;
        }
        file.flush().await.map_err(io)?;
        drop(file);
        if !complete {
            // A cut connection, not a forged snapshot: no alarm; the
            // leader sends it again.
            let _ = tokio::fs::remove_file(&path).await;
            return Err(rpc_error(
                tonic::Code::Unavailable,
                "SNAPSHOT_INCOMPLETE",
                "the snapshot stream ended before its last chunk",
            ));
        }
        let bytes = tokio::fs::read(&path).await.map_err(io)?;
        let _ = tokio::fs::remove_file(&path).await;
        Ok(bytes)
    }
}

fn reply<T: Serialize, E: std::fmt::Display>(
    r: Result<T, E>,
) -> Result<Response<RaftMessage>, Status> {
    let r = r.map_err(|e| e.to_string());
    let payload = encode(&r).map_err(|e| Status::internal(format!("encode reply: {e}")))?;
    Ok(Response::new(RaftMessage { payload }))
}

fn parse<T: DeserializeOwned>(m: &RaftMessage, what: &str) -> Result<T, Status> {
    decode(&m.payload).map_err(|e| Status::invalid_argument(format!("malformed {what}: {e}")))
}

#[tonic::async_trait]
impl RaftTransport for RaftService {
    async fn append_entries(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc: AppendEntriesRequest<TypeConfig> = parse(req.get_ref(), "append-entries request")?;
        let leader = rpc.vote.leader_id.node_id;
        self.check_sender(req.extensions().get(), leader, "append-entries")?;
        let result = self.raft.append_entries(rpc).await;
        if matches!(
            result,
            Ok(AppendEntriesResponse::Success | AppendEntriesResponse::PartialSuccess(_))
        ) {
            self.leader_contact.heard_from(leader);
        }
        reply(result)
    }

    async fn vote(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc: VoteRequest<TypeConfig> = parse(req.get_ref(), "vote request")?;
        self.check_sender(
            req.extensions().get(),
            rpc.vote.leader_id.node_id,
            "vote request",
        )?;
        reply(self.raft.vote(rpc).await)
    }

    async fn pre_vote(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc: VoteRequest<TypeConfig> = parse(req.get_ref(), "pre-vote request")?;
        self.check_sender(
            req.extensions().get(),
            rpc.vote.leader_id.node_id,
            "pre-vote request",
        )?;
        reply(self.raft.pre_vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        req: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<RaftMessage>, Status> {
        let Ok(_receiving) = self.receiving.try_lock() else {
            return Err(rpc_error(
                tonic::Code::ResourceExhausted,
                "SNAPSHOT_BUSY",
                "another snapshot is being received; retry later",
            ));
        };
        let peer = req.extensions().get::<crate::peer::PeerIdentity>().cloned();
        let mut stream = req.into_inner();
        let first = stream
            .next()
            .await
            .ok_or_else(|| Status::invalid_argument("snapshot stream is empty"))??;
        let (vote, meta): (Vote, SnapshotMeta) = decode(&first.header)
            .map_err(|e| Status::invalid_argument(format!("malformed snapshot header: {e}")))?;
        self.check_sender(peer.as_ref(), vote.leader_id.node_id, "snapshot")?;
        check_header(&vote, &meta, &super::raft_metrics(&self.raft))
            .map_err(|why| self.refuse_snapshot(why))?;
        let transfer = self.spool(first, &mut stream).await?;
        let (count, hash, root) = {
            let applied = self.shared.read();
            (
                applied.projection.event_count(),
                applied.projection.log_hash(),
                applied.tree.root(),
            )
        };
        let ids =
            check_extends(&transfer, count, hash, root).map_err(|why| self.refuse_snapshot(why))?;
        let snapshot = Snapshot {
            meta,
            snapshot: super::snapshot::SnapshotData::Received { transfer, ids },
        };
        reply(self.raft.install_full_snapshot(vote, snapshot).await)
    }
}
