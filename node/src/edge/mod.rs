//! The gRPC edge: the `EventLog` and `Cluster` services translate requests
//! to host calls and refusals to gRPC statuses; followers forward writes and
//! linearizable reads to the leader (`forward_read!`, one place).

pub mod ca_http;
pub mod ca_issue;
mod ca_service;
pub mod caller;
mod cluster_service;
pub mod est;
mod federation_service;
mod federation_status;
pub mod http;
mod log_service;
mod policy_service;
mod tlog_service;

use std::sync::Arc;

use ics_proto::core_v1 as pb;
use tonic::Status;

pub(crate) use crate::forward::{forwarded, is_forwarded};
use crate::host::Node;

/// The `EventLog` and `Cluster` gRPC services.
#[derive(Clone)]
pub struct Api {
    pub node: Arc<Node>,
}

type EventStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::StoredEvent, Status>> + Send>>;

/// Answers a read on the leader when this node may not (a linearizable read
/// on a follower): returns the leader's answer from the enclosing handler.
macro_rules! forward_read {
    ($api:expr, $req:expr, $consistency:expr, $forwarded:expr, $call:ident) => {
        if $api.node.read_gate($consistency, $forwarded).await? {
            let mut leader = $api.node.leader_client($api.node.leader())?;
            return leader.$call(crate::forward::forwarded($req)).await;
        }
    };
}
pub(crate) use forward_read;
