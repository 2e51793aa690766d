//! The `FederationStatus` gRPC service, on the client listener: each peer of
//! the policy in force with its replicated cursor and staleness, and the
//! leader's pull loop as this node saw it (`sync_board::SyncBoard`).

use ics_federation::{Federation, cursor_subject};
use ics_policies::Policies;
use ics_proto::federation_v1 as pb;
use ics_proto::federation_v1::federation_status_server::FederationStatus;
use ics_tlog::{Tlog, peer_log};
use tonic::{Request, Response, Status};

use super::Api;

#[tonic::async_trait]
impl FederationStatus for Api {
    async fn status(
        &self,
        _req: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let node = &self.node;
        let now = crate::client::now_ms();
        let leader_id = node.leader().map_or(0, |(id, _)| id);
        let applied = node.shared.read();
        let projection = &applied.projection;
        let Some(policy) = ics_policies::active(projection.capability::<Policies>()) else {
            return Ok(Response::new(pb::StatusResponse {
                node_id: node.id,
                leader: leader_id == node.id,
                leader_id,
                ..Default::default()
            }));
        };
        let descriptor = &policy.descriptor;
        let cursors = projection.capability::<Federation>();
        let tlog = projection.capability::<Tlog>();
        let peers = descriptor
            .peers
            .iter()
            .map(|peer| {
                let cursor = cursors.subject(&cursor_subject(&peer.name));
                let log_key_bound = peer_log(tlog, &peer.name)
                    .and_then(|p| p.log_verifier())
                    .is_some();
                let max_staleness_ms = descriptor.max_staleness_ms(&peer.name);
                let stale = max_staleness_ms.is_some_and(|max| {
                    cursor.is_none_or(|c| now.saturating_sub(c.synced_ms) > max)
                });
                let report = node.federation.report(&peer.name).unwrap_or_default();
                let cursor_size = cursor.map_or(0, |c| c.size);
                pb::PeerStatus {
                    party: peer.name.clone(),
                    endpoints: peer.endpoints.clone(),
                    pulled: crate::sync::is_pulled(descriptor, peer) && log_key_bound,
                    log_key_bound,
                    cursor_size,
                    synced_ms: cursor.map_or(0, |c| c.synced_ms),
                    cursor_position: cursor.map_or(0, |c| c.position),
                    max_staleness_seconds: peer.max_staleness_seconds.unwrap_or(0),
                    stale,
                    events_per_minute: descriptor.events_per_minute(peer),
                    endpoint: report.endpoint,
                    source_size: report.source_size,
                    lag: report.source_size.saturating_sub(cursor_size),
                    last_attempt_ms: report.last_attempt_ms,
                    last_success_ms: report.last_success_ms,
                    last_error: report.last_error,
                    consecutive_failures: report.consecutive_failures,
                    imported: report.imported,
                    duplicates: report.duplicates,
                    refused: report.refused,
                    deferred_by_quota: report.deferred_by_quota,
                    cursor_source_policy: cursor.map_or(0, |c| c.policies.0),
                    cursor_own_policy: cursor.map_or(0, |c| c.policies.1),
                }
            })
            .collect();
        Ok(Response::new(pb::StatusResponse {
            node_id: node.id,
            leader: leader_id == node.id,
            leader_id,
            policy_version: descriptor.version,
            peers,
        }))
    }
}
