//! A fresh cluster: the node with the lowest id initializes it, and the
//! party's genesis is appended with a root key created in the data dir.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use ics_kernel::SubjectRef;
use ics_kernel::state::PartyState;
use ics_proto::core_v1 as pb;
use openraft::BasicNode;
use tonic::Status;

use crate::codec;
use crate::config::Bootstrap;
use crate::errors::internal;
use crate::host::Node;

/// Initializes a fresh cluster when this node is the one to do it.
pub async fn bootstrap(node: &Arc<Node>) -> anyhow::Result<()> {
    let config = &node.config;
    if config.bootstrap == Bootstrap::Manual {
        return Ok(());
    }
    let me = config.node_id;
    let lowest = config
        .peers
        .iter()
        .map(|p| p.id)
        .chain([me])
        .min()
        .unwrap_or(me);
    if lowest != me {
        return Ok(());
    }
    if !node
        .raft
        .is_initialized()
        .await
        .context("read raft state")?
    {
        let mut members: BTreeMap<u64, BasicNode> = config
            .peers
            .iter()
            .map(|p| {
                (
                    p.id,
                    BasicNode {
                        addr: p.address.clone(),
                    },
                )
            })
            .collect();
        members.insert(
            me,
            BasicNode {
                addr: config.advertise_peer_address(),
            },
        );
        tracing::info!(members = ?members.keys().collect::<Vec<_>>(), "initializing the cluster");
        node.raft
            .initialize(members)
            .await
            .map_err(|e| anyhow::anyhow!("initialize cluster: {e}"))?;
    }
    tokio::spawn(node.clone().ensure_genesis());
    Ok(())
}

/// Checks, on every start, that the data dir's log is the configured
/// party's and that a root key left on the node is private and the party's:
/// a mismatch stops the node with the reason rather than serving another
/// party's log.
pub fn check_party(
    config: &crate::config::Config,
    party: Option<&PartyState>,
) -> anyhow::Result<()> {
    let path = config.data_dir.join("root.key");
    let root = if path.exists() {
        Some(crate::keyfile::read(&path).context("the party root key on this node")?)
    } else {
        None
    };
    let Some(party) = party else {
        return Ok(());
    };
    if root.is_some() {
        tracing::warn!(
            path = %path.display(),
            "the party root key is on this node: move it to offline storage once the party is set up \
             (it signs only author keys, recognized parties and rules changes)"
        );
    }
    if party.name != config.party {
        anyhow::bail!(
            "the log in {} is party {:?}'s, but this node is configured for party {:?}",
            config.data_dir.display(),
            party.name,
            config.party
        );
    }
    if let Some(root) = root
        && root.key_id() != party.root_key
    {
        anyhow::bail!(
            "{} holds key {}, but party {:?}'s root key is {}",
            path.display(),
            root.key_id(),
            party.name,
            party.root_key
        );
    }
    Ok(())
}

impl Node {
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
            ..Default::default()
        };
        self.append(req, crate::host::Origin::Bootstrap, "").await?;
        tracing::info!(party = %self.config.party, "party genesis appended");
        Ok(())
    }
}
