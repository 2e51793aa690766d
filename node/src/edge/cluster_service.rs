//! The `Cluster` service: status (with the active and build rules),
//! initialization and membership changes, forwarded to the leader.

use std::collections::{BTreeMap, BTreeSet};

use ics_proto::core_v1 as pb;
use ics_proto::core_v1::cluster_client::ClusterClient;
use ics_proto::core_v1::cluster_server::Cluster;
use openraft::{BasicNode, ChangeMembers, ServerState};
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};

use super::caller::require_operator;
use super::{Api, forwarded, is_forwarded};
use crate::errors::{not_leader, rpc_error};
use crate::host::Node;
use crate::log::{NodeId, raft_metrics};

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

/// The fewest voters a removal may leave without `force`: with three, one
/// node may fail and the cluster goes on.
pub const SAFE_VOTERS: usize = 3;

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
            Some((id, addr)) if !forwarded => {
                Ok(Some(ClusterClient::new(self.node.channel(id, &addr)?)))
            }
            leader => Err(not_leader(leader)),
        }
    }
}

#[tonic::async_trait]
impl Cluster for Api {
    async fn status(
        &self,
        req: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let node = &self.node;
        let operator = super::caller::is_operator(node, &req);
        let readiness = node.readiness();
        let m = raft_metrics(&node.raft);
        let leader = node.leader();
        let applied = node.shared.read();
        let mut status = pb::StatusResponse {
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
            raft_log_index: m.last_log_index.unwrap_or(0),
            raft_applied_index: applied.last_applied.map_or(0, |l| l.index()),
            event_count: applied.projection.event_count(),
            log_hash: applied.projection.log_hash().to_vec(),
            tree_root: applied.tree.root().to_vec(),
            state_hash: applied.projection.state_hash().to_vec(),
            members: member_list(node),
            party: applied
                .projection
                .party()
                .map(|p| p.name.clone())
                .unwrap_or_default(),
            raft_snapshot_index: m.snapshot.map_or(0, |l| l.index()),
            raft_purged_index: m.purged.map_or(0, |l| l.index()),
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
            ready: readiness.is_ok(),
            not_ready: readiness.err().unwrap_or_default(),
        };
        if !operator {
            // The vote, the Raft log position and the members' addresses are
            // what a forged Raft message needs (F16): operators only.
            status.term = 0;
            status.raft_log_index = 0;
            status.raft_applied_index = 0;
            status.raft_snapshot_index = 0;
            status.raft_purged_index = 0;
            status.members.clear();
            status.leader_address.clear();
        }
        Ok(Response::new(status))
    }

    async fn initialize(
        &self,
        req: Request<pb::InitializeRequest>,
    ) -> Result<Response<pb::InitializeResponse>, Status> {
        let operator = require_operator(&self.node, &req, "initializing the cluster")?;
        tracing::info!(operator, "initialize requested");
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
                    addr: self.node.config.advertise_peer_address(),
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
        let operator = require_operator(&self.node, &req, "adding a node")?;
        tracing::info!(operator, node = req.get_ref().id, "add node requested");
        if let Some(mut leader) = self.leader_cluster_client(is_forwarded(&req))? {
            return leader.add_node(forwarded(req.into_inner())).await;
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
        let operator = require_operator(&self.node, &req, "removing a node")?;
        tracing::info!(operator, node = req.get_ref().id, "remove node requested");
        if let Some(mut leader) = self.leader_cluster_client(is_forwarded(&req))? {
            return leader.remove_node(forwarded(req.into_inner())).await;
        }
        let pb::RemoveNodeRequest { id, force } = req.into_inner();
        let m = raft_metrics(&self.node.raft);
        let membership = m.membership_config.membership();
        if membership.get_node(&id).is_none() {
            return Err(rpc_error(
                Code::NotFound,
                "NOT_FOUND",
                format!("node {id} is not a member"),
            ));
        }
        let voters = membership.voter_ids().count();
        let is_voter = membership.voter_ids().any(|v| v == id);
        if is_voter && voters - 1 < SAFE_VOTERS && !force {
            return Err(rpc_error(
                Code::FailedPrecondition,
                "UNSAFE_MEMBERSHIP",
                format!(
                    "removing voter {id} leaves {} voter(s), fewer than {SAFE_VOTERS}: one more failure \
                     would stop the cluster; add a node first, or force it",
                    voters - 1
                ),
            ));
        }
        let change = if is_voter {
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
        // Its certificates go too: from the next handshake on, no node of the
        // cluster accepts them, whatever the removed node still believes.
        match crate::tls::revoke_node(&self.node, id).await {
            Ok(n) => tracing::info!(
                node = id,
                certificates = n,
                "removed a node and revoked its TLS certificates"
            ),
            Err(e) => {
                tracing::warn!(node = id, error = %format!("{e:#}"), "removed a node but could not revoke its TLS certificates")
            }
        }
        Ok(Response::new(pb::MembershipResponse {
            members: member_list(&self.node),
        }))
    }
}
