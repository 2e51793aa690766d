//! A cluster of `icsd` containers on a private Docker network, and the faults
//! the chaos tests inject into it. A cluster may also join a network shared
//! with other parties' clusters (`PartySpec::federation`), where its nodes
//! serve the federation listener; cutting it off that network partitions
//! the parties while each cluster keeps its own.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ics_kernel::SigningKey;
use ics_node::client::{Client, ClientTls};
use ics_proto::core_v1 as pb;
use testcontainers::bollard::Docker;
use testcontainers::bollard::models::{
    NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest,
};
use testcontainers::bollard::query_parameters::{
    KillContainerOptionsBuilder, RemoveVolumeOptionsBuilder,
};
use testcontainers::core::{IntoContainerPort, Mount, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use crate::image;

const GRPC_PORT: u16 = 7400;
const PEER_PORT: u16 = 7440;
/// The federation listener, on the shared network only.
pub const FEDERATION_PORT: u16 = 7600;

/// Who a cluster is, and the network it shares with other parties.
#[derive(Clone, Debug)]
pub struct PartySpec {
    pub party: String,
    /// manufacturer, developer, maintenance, infield or certifier.
    pub role: String,
    /// The shared network's name, from `federation_network`; its name must
    /// sort after the cluster's own network's, so Docker keeps the cluster
    /// network as the one host ports are published on.
    pub federation: Option<String>,
}

impl PartySpec {
    /// The chaos tests' party: a maintainer alone.
    pub fn chaos() -> PartySpec {
        PartySpec {
            party: "chaos-maintenance".into(),
            role: "maintenance".into(),
            federation: None,
        }
    }
}

/// Creates the network parties federate over.
pub async fn federation_network(name: &str) -> anyhow::Result<()> {
    let docker = Docker::connect_with_local_defaults().context("connect to the Docker engine")?;
    docker
        .create_network(NetworkCreateRequest {
            name: name.to_string(),
            ..Default::default()
        })
        .await
        .with_context(|| format!("create network {name}"))?;
    Ok(())
}

pub async fn remove_network(name: &str) {
    if let Ok(docker) = Docker::connect_with_local_defaults() {
        let _ = docker.remove_network(name).await;
    }
}
/// Node certificates live two minutes and are renewed after one (the first
/// minute is backdating): renewal keeps happening under the faults.
pub const CERT_LIFETIME: Duration = Duration::from_secs(120);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    Up,
    Killed,
    Paused,
    Disconnected,
}

pub struct Node {
    pub id: u64,
    pub name: String,
    pub volume: String,
    pub state: NodeState,
    container: ContainerAsync<GenericImage>,
}

/// Host addresses of the nodes clients may use, updated as containers
/// restart, and the TLS clients speak to them (the party CA, an operator).
pub struct NodeAddresses {
    map: RwLock<BTreeMap<u64, String>>,
    pub tls: ClientTls,
}

impl NodeAddresses {
    pub fn read(
        &self,
    ) -> std::sync::LockResult<std::sync::RwLockReadGuard<'_, BTreeMap<u64, String>>> {
        self.map.read()
    }

    pub fn write(
        &self,
    ) -> std::sync::LockResult<std::sync::RwLockWriteGuard<'_, BTreeMap<u64, String>>> {
        self.map.write()
    }
}

pub type Addresses = Arc<NodeAddresses>;

pub struct DockerCluster {
    pub run_id: String,
    pub network: String,
    pub nodes: BTreeMap<u64, Node>,
    pub addresses: Addresses,
    pub spec: PartySpec,
    docker: Docker,
    volumes: Vec<String>,
    /// The party's TLS material (`icsd tls init`), one directory per node,
    /// bind-mounted into its container.
    tls: tempfile::TempDir,
}

fn peer_args(run_id: &str, ids: &[u64]) -> Vec<String> {
    ids.iter()
        .flat_map(|i| {
            [
                "--peer".to_string(),
                format!("{i}={}:{PEER_PORT}", node_name(run_id, *i)),
            ]
        })
        .collect()
}

/// The names a node's certificate carries: its container name on the
/// network, and the loopback address the tests reach its mapped port on.
fn container_names(name: &str) -> ics_pki::LeafNames {
    ics_pki::LeafNames {
        dns_names: vec![name.to_string()],
        ip_addresses: vec![std::net::Ipv4Addr::LOCALHOST.into()],
    }
}

fn node_name(run_id: &str, id: u64) -> String {
    format!("{run_id}-n{id}")
}

impl DockerCluster {
    /// Starts `size` nodes that bootstrap one cluster among themselves.
    pub async fn start(run_id: &str, size: u64) -> anyhow::Result<DockerCluster> {
        Self::start_party(run_id, size, PartySpec::chaos()).await
    }

    /// Starts `size` nodes of the party `spec` names.
    pub async fn start_party(
        run_id: &str,
        size: u64,
        spec: PartySpec,
    ) -> anyhow::Result<DockerCluster> {
        image::ensure().await;
        let docker =
            Docker::connect_with_local_defaults().context("connect to the Docker engine")?;
        let tls = tempfile::tempdir().context("a directory for the TLS material")?;
        let ids: Vec<u64> = (1..=size).collect();
        let nodes: Vec<(u64, ics_pki::LeafNames)> = ids
            .iter()
            .map(|id| (*id, container_names(&node_name(run_id, *id))))
            .collect();
        ics_node::tls::init_party(
            &spec.party,
            tls.path(),
            &nodes,
            &[],
            ics_node::client::now_ms(),
            CERT_LIFETIME,
        )
        .context("the party's TLS material")?;
        // The test's own operator certificate outlives the run (the nodes'
        // are short-lived, to be renewed under the faults).
        let operator_dir = tls.path().join("operator-admin");
        ics_node::tls::add_holder(
            &tls.path().join("ca"),
            &spec.party,
            &ics_pki::Holder::Operator("admin".into()),
            &ics_pki::LeafNames::default(),
            &operator_dir,
            ics_node::client::now_ms(),
            Duration::from_secs(24 * 3600),
        )
        .context("the test's operator certificate")?;
        let client_tls = ClientTls::from_dir(&operator_dir)?;
        let cluster = DockerCluster {
            run_id: run_id.to_string(),
            network: format!("{run_id}-net"),
            nodes: BTreeMap::new(),
            addresses: Arc::new(NodeAddresses {
                map: RwLock::new(BTreeMap::new()),
                tls: client_tls,
            }),
            spec,
            docker,
            volumes: Vec::new(),
            tls,
        };
        let mut cluster = cluster;
        let peers = peer_args(run_id, &ids);
        let starts = ids
            .iter()
            .map(|id| cluster.create_node(*id, peers.clone(), false));
        for node in futures::future::try_join_all(starts).await? {
            cluster.nodes.insert(node.id, node);
        }
        cluster.refresh_addresses().await;
        Ok(cluster)
    }

    async fn create_node(&self, id: u64, peers: Vec<String>, manual: bool) -> anyhow::Result<Node> {
        let name = node_name(&self.run_id, id);
        let volume = format!("{name}-data");
        let mut args = vec![
            "serve".to_string(),
            "--node-id".into(),
            id.to_string(),
            "--party".into(),
            self.spec.party.clone(),
            "--role".into(),
            self.spec.role.clone(),
            "--data-dir".into(),
            "/data".into(),
            "--listen".into(),
            format!("0.0.0.0:{GRPC_PORT}"),
            "--http-listen".into(),
            "0.0.0.0:7480".into(),
            "--advertise".into(),
            format!("{name}:{GRPC_PORT}"),
            "--peer-listen".into(),
            format!("0.0.0.0:{PEER_PORT}"),
            "--advertise-peer".into(),
            format!("{name}:{PEER_PORT}"),
            "--tls-dir".into(),
            "/tls".into(),
            "--cert-lifetime-secs".into(),
            CERT_LIFETIME.as_secs().to_string(),
        ];
        let tls_dir = self.tls.path().join(format!("node-{id}"));
        if !tls_dir.exists() {
            ics_node::tls::add_node(
                &self.tls.path().join("ca"),
                &self.spec.party,
                id,
                &container_names(&name),
                &tls_dir,
                ics_node::client::now_ms(),
                CERT_LIFETIME,
            )
            .with_context(|| format!("a certificate for node {id}"))?;
        }
        if self.spec.federation.is_some() {
            args.extend([
                "--federation-listen".to_string(),
                format!("0.0.0.0:{FEDERATION_PORT}"),
            ]);
        }
        args.extend(peers);
        if manual {
            args.extend(["--bootstrap".to_string(), "manual".to_string()]);
        }
        let (repo, tag) = image::TAG.split_once(':').expect("tag has a colon");
        let container = GenericImage::new(repo, tag)
            .with_exposed_port(GRPC_PORT.tcp())
            .with_wait_for(WaitFor::message_on_stderr("icsd serving"))
            .with_cmd(args)
            .with_network(self.network.clone())
            .with_container_name(name.clone())
            .with_mount(Mount::volume_mount(volume.clone(), "/data"))
            .with_mount(Mount::bind_mount(
                tls_dir.to_str().context("a UTF-8 path")?,
                "/tls",
            ))
            .with_env_var("ICS_LOG", "info,openraft=warn")
            .with_startup_timeout(Duration::from_secs(60))
            .start()
            .await
            .with_context(|| format!("start container {name}"))?;
        if let Some(federation) = &self.spec.federation {
            self.docker
                .connect_network(
                    federation,
                    NetworkConnectRequest {
                        container: name.clone(),
                        endpoint_config: None,
                    },
                )
                .await
                .with_context(|| format!("connect {name} to {federation}"))?;
        }
        Ok(Node {
            id,
            name,
            volume,
            state: NodeState::Up,
            container,
        })
    }

    /// Re-reads the host ports of running nodes (they change when a container restarts).
    pub async fn refresh_addresses(&self) {
        let mut map = BTreeMap::new();
        for n in self.nodes.values().filter(|n| n.state == NodeState::Up) {
            if let Ok(port) = n.container.get_host_port_ipv4(GRPC_PORT.tcp()).await {
                map.insert(n.id, format!("127.0.0.1:{port}"));
            }
        }
        *self.addresses.write().expect("addresses lock") = map;
    }

    pub fn ids(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    fn node(&self, id: u64) -> anyhow::Result<&Node> {
        self.nodes.get(&id).with_context(|| format!("no node {id}"))
    }

    async fn client(&self, id: u64) -> Option<Client> {
        let n = self.nodes.get(&id)?;
        if n.state != NodeState::Up {
            return None;
        }
        let port = n.container.get_host_port_ipv4(GRPC_PORT.tcp()).await.ok()?;
        Client::connect(&format!("127.0.0.1:{port}"), &self.addresses.tls).ok()
    }

    pub async fn status(&self, id: u64) -> Option<pb::StatusResponse> {
        let mut c = self.client(id).await?;
        tokio::time::timeout(Duration::from_secs(2), c.status())
            .await
            .ok()?
            .ok()
    }

    /// The leader most up nodes agree on, if any.
    pub async fn leader(&self) -> Option<u64> {
        let mut votes: BTreeMap<u64, usize> = BTreeMap::new();
        for id in self.ids() {
            if let Some(s) = self.status(id).await
                && s.current_leader != 0
            {
                *votes.entry(s.current_leader).or_default() += 1;
            }
        }
        votes.into_iter().max_by_key(|(_, v)| *v).map(|(id, _)| id)
    }

    /// Waits until a node other than `not` is leader, seen by itself.
    pub async fn wait_new_leader(
        &self,
        not: Option<u64>,
        timeout: Duration,
    ) -> anyhow::Result<(u64, Duration)> {
        let started = Instant::now();
        loop {
            for id in self.ids() {
                if Some(id) == not {
                    continue;
                }
                if let Some(s) = self.status(id).await
                    && s.state == "leader"
                {
                    return Ok((id, started.elapsed()));
                }
            }
            if started.elapsed() > timeout {
                bail!("no new leader within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every node answers, agrees on a leader and has the genesis.
    pub async fn wait_healthy(&self, timeout: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let mut leaders = Vec::new();
            for id in self.ids() {
                match self.status(id).await {
                    Some(s) if s.current_leader != 0 && !s.party.is_empty() => {
                        leaders.push(s.current_leader)
                    }
                    _ => break,
                }
            }
            if leaders.len() == self.nodes.len() && leaders.windows(2).all(|w| w[0] == w[1]) {
                self.refresh_addresses().await;
                return Ok(());
            }
            if started.elapsed() > timeout {
                bail!("cluster not healthy within {timeout:?}: leaders seen {leaders:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL: no shutdown path runs in the node.
    pub async fn kill(&mut self, id: u64) -> anyhow::Result<()> {
        let name = self.node(id)?.name.clone();
        self.docker
            .kill_container(
                &name,
                Some(KillContainerOptionsBuilder::new().signal("SIGKILL").build()),
            )
            .await
            .with_context(|| format!("kill {name}"))?;
        self.nodes.get_mut(&id).expect("checked").state = NodeState::Killed;
        self.refresh_addresses().await;
        Ok(())
    }

    /// Graceful stop (SIGTERM, then SIGKILL after 10 s).
    pub async fn stop(&mut self, id: u64) -> anyhow::Result<()> {
        self.node(id)?.container.stop_with_timeout(Some(10)).await?;
        self.nodes.get_mut(&id).expect("checked").state = NodeState::Killed;
        self.refresh_addresses().await;
        Ok(())
    }

    /// Starts a stopped container again, with the same data volume.
    pub async fn restart(&mut self, id: u64) -> anyhow::Result<()> {
        self.node(id)?.container.start().await?;
        self.nodes.get_mut(&id).expect("checked").state = NodeState::Up;
        self.refresh_addresses().await;
        Ok(())
    }

    pub async fn pause(&mut self, id: u64) -> anyhow::Result<()> {
        self.node(id)?.container.pause().await?;
        self.nodes.get_mut(&id).expect("checked").state = NodeState::Paused;
        self.refresh_addresses().await;
        Ok(())
    }

    pub async fn unpause(&mut self, id: u64) -> anyhow::Result<()> {
        self.node(id)?.container.unpause().await?;
        self.nodes.get_mut(&id).expect("checked").state = NodeState::Up;
        self.refresh_addresses().await;
        Ok(())
    }

    /// Cuts a node off the cluster network (it keeps running).
    pub async fn disconnect(&mut self, id: u64) -> anyhow::Result<()> {
        let name = self.node(id)?.name.clone();
        self.docker
            .disconnect_network(
                &self.network,
                NetworkDisconnectRequest {
                    container: name.clone(),
                    force: Some(true),
                },
            )
            .await
            .with_context(|| format!("disconnect {name}"))?;
        self.nodes.get_mut(&id).expect("checked").state = NodeState::Disconnected;
        self.refresh_addresses().await;
        Ok(())
    }

    pub async fn reconnect(&mut self, id: u64) -> anyhow::Result<()> {
        let name = self.node(id)?.name.clone();
        self.docker
            .connect_network(
                &self.network,
                NetworkConnectRequest {
                    container: name.clone(),
                    endpoint_config: None,
                },
            )
            .await
            .with_context(|| format!("reconnect {name}"))?;
        self.nodes.get_mut(&id).expect("checked").state = NodeState::Up;
        self.refresh_addresses().await;
        Ok(())
    }

    /// Replaces `old` by a fresh node `new`: add it (learner, then voter), then
    /// remove `old` from the membership and delete its container and volume.
    pub async fn replace(&mut self, old: u64, new: u64) -> anyhow::Result<()> {
        let node = self.create_node(new, Vec::new(), true).await?;
        let address = format!("{}:{PEER_PORT}", node.name);
        self.nodes.insert(new, node);
        let leader = self.leader().await.context("no leader to add a node")?;
        let mut c = self.client(leader).await.context("leader unreachable")?;
        c.cluster
            .add_node(pb::AddNodeRequest {
                id: new,
                address,
                learner_only: false,
            })
            .await
            .with_context(|| format!("add node {new}"))?;
        let leader = self.leader().await.context("no leader to remove a node")?;
        let mut c = self.client(leader).await.context("leader unreachable")?;
        c.cluster
            .remove_node(pb::RemoveNodeRequest {
                id: old,
                force: false,
            })
            .await
            .with_context(|| format!("remove node {old}"))?;
        let gone = self.nodes.remove(&old).expect("old node exists");
        self.volumes.push(gone.volume.clone());
        gone.container.rm().await.context("remove old container")?;
        self.refresh_addresses().await;
        Ok(())
    }

    /// The host address of some running node.
    pub fn any_address(&self) -> anyhow::Result<String> {
        self.addresses
            .read()
            .expect("addresses lock")
            .values()
            .next()
            .cloned()
            .context("no node up")
    }

    /// A client of some running node.
    pub fn any_client(&self) -> anyhow::Result<Client> {
        Client::connect(&self.any_address()?, &self.addresses.tls)
    }

    /// Where the other parties reach this one's federation listeners.
    pub fn federation_endpoints(&self) -> Vec<String> {
        self.nodes
            .values()
            .map(|n| format!("{}:{FEDERATION_PORT}", n.name))
            .collect()
    }

    /// Cuts every node off the shared network, or joins them back: the
    /// parties are partitioned while each cluster keeps its own network.
    pub async fn set_federation_link(&mut self, up: bool) -> anyhow::Result<()> {
        let federation = self
            .spec
            .federation
            .clone()
            .context("the cluster has no federation network")?;
        for n in self.nodes.values() {
            let result = if up {
                self.docker
                    .connect_network(
                        &federation,
                        NetworkConnectRequest {
                            container: n.name.clone(),
                            endpoint_config: None,
                        },
                    )
                    .await
            } else {
                self.docker
                    .disconnect_network(
                        &federation,
                        NetworkDisconnectRequest {
                            container: n.name.clone(),
                            force: Some(true),
                        },
                    )
                    .await
            };
            result.with_context(|| format!("{} federation link of {}", up, n.name))?;
        }
        Ok(())
    }

    /// The directory of the test's operator certificate and the party CA.
    pub fn operator_tls_dir(&self) -> std::path::PathBuf {
        self.tls.path().join("operator-admin")
    }

    /// The party CA, PEM, as a peer's policy names it.
    pub fn ca_pem(&self) -> anyhow::Result<String> {
        let cert = ics_node::tls::read_cert(&self.tls.path().join("ca").join("ca.crt"))?;
        Ok(ics_node::tls::pem(&cert))
    }

    /// The party root key, created in node 1's volume when it appended the
    /// genesis, copied to `dir`.
    pub fn root_key(&self, dir: &std::path::Path) -> anyhow::Result<SigningKey> {
        let name = &self.nodes.values().next().context("no node")?.name;
        let dest = dir.join(format!("{}-root.key", self.spec.party));
        let status = std::process::Command::new("docker")
            .args(["cp", &format!("{name}:/data/root.key")])
            .arg(&dest)
            .status()
            .context("docker cp")?;
        if !status.success() {
            bail!("docker cp of the root key failed: {status}");
        }
        ics_node::keyfile::read(&dest)
    }

    /// Saves every container's log under `dir`.
    pub fn save_logs(&self, dir: &std::path::Path) {
        let _ = std::fs::create_dir_all(dir);
        for n in self.nodes.values() {
            if let Ok(out) = std::process::Command::new("docker")
                .args(["logs", &n.name])
                .output()
            {
                let mut text = out.stdout;
                text.extend_from_slice(&out.stderr);
                let _ = std::fs::write(dir.join(format!("{}.log", n.name)), text);
            }
        }
    }

    /// Removes the containers and their volumes.
    pub async fn teardown(mut self) {
        let nodes = std::mem::take(&mut self.nodes);
        for (_, n) in nodes {
            self.volumes.push(n.volume.clone());
            if n.state == NodeState::Paused {
                let _ = n.container.unpause().await;
            }
            let _ = n.container.rm().await;
        }
        for v in &self.volumes {
            let _ = self
                .docker
                .remove_volume(
                    v,
                    Some(RemoveVolumeOptionsBuilder::new().force(true).build()),
                )
                .await;
        }
        let _ = self.docker.remove_network(&self.network).await;
    }
}
