//! The `Policy` gRPC service: the descriptor in force (or a version of it)
//! and the policy's verdict on a (peer, subject, kind), with the rule that
//! decided it. Answered from this replica's applied state.

use ics_identity::Identity;
use ics_kernel::SubjectRef;
use ics_policies::{Direction, Policies, PolicyState};
use ics_proto::policy_v1 as pb;
use ics_proto::policy_v1::policy_server::Policy;
use tonic::{Code, Request, Response, Status};

use super::Api;
use crate::errors::rpc_error;

fn no_policy() -> Status {
    rpc_error(
        Code::NotFound,
        "NO_POLICY",
        "this party has published no policy (icsctl policy publish)",
    )
}

#[tonic::async_trait]
impl Policy for Api {
    async fn show(
        &self,
        req: Request<pb::ShowRequest>,
    ) -> Result<Response<pb::ShowResponse>, Status> {
        let asked = req.into_inner().version;
        let applied = self.node.shared.read();
        let state = applied.projection.capability::<Policies>();
        let active = ics_policies::active(state).ok_or_else(no_policy)?;
        let shown: &PolicyState = if asked == 0 {
            active
        } else {
            ics_policies::version(state, asked).ok_or_else(|| {
                rpc_error(
                    Code::NotFound,
                    "NO_POLICY",
                    format!("policy version {asked} was never published"),
                )
            })?
        };
        Ok(Response::new(pb::ShowResponse {
            version: shown.descriptor.version,
            document: shown.document.clone(),
            log_index: shown.position,
            active_version: active.descriptor.version,
        }))
    }

    async fn explain(
        &self,
        req: Request<pb::ExplainRequest>,
    ) -> Result<Response<pb::ExplainResponse>, Status> {
        let req = req.into_inner();
        let direction = match pb::Direction::try_from(req.direction) {
            Ok(pb::Direction::Read) => Direction::Read,
            Ok(pb::Direction::Import) => Direction::Import,
            _ => {
                return Err(rpc_error(
                    Code::InvalidArgument,
                    "BAD_DIRECTION",
                    "direction must be READ or IMPORT",
                ));
            }
        };
        let subject = SubjectRef::parse(&req.subject).ok_or_else(|| {
            rpc_error(
                Code::InvalidArgument,
                "BAD_SUBJECT",
                format!("subject {:?} is not kind/id", req.subject),
            )
        })?;
        let applied = self.node.shared.read();
        let projection = &applied.projection;
        let policy =
            ics_policies::active(projection.capability::<Policies>()).ok_or_else(no_policy)?;
        let party = projection.party().map(|p| p.name.as_str()).unwrap_or("");
        let namespace = if req.namespace.is_empty() {
            party
        } else {
            req.namespace.as_str()
        };
        // This party's own records have their facts here; another
        // namespace's come with federation.
        let own = namespace == party;
        let facts = ics_policies::facts_of(
            &subject,
            namespace,
            |s| {
                own.then(|| projection.capability::<Identity>().subject(s))
                    .flatten()
            },
            |s| {
                own.then(|| projection.capability::<ics_ca::DeviceCa>().subject(s))
                    .flatten()
            },
        );
        let at_ms = if req.at_ms == 0 {
            crate::client::now_ms()
        } else {
            req.at_ms
        };
        let decision = policy
            .descriptor
            .decide(direction, &req.peer, &facts, &req.kind, at_ms);
        Ok(Response::new(pb::ExplainResponse {
            allowed: decision.allowed,
            rule: decision.rule.unwrap_or_default(),
            reasons: decision.reasons,
            policy_version: policy.descriptor.version,
            policy_log_index: policy.position,
        }))
    }
}
