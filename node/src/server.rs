//! Starting a node: config → store → Raft → services → serve until shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ics_proto::core_v1::cluster_server::ClusterServer;
use ics_proto::core_v1::event_log_server::EventLogServer;
use ics_proto::core_v1::raft_transport_server::RaftTransportServer;
use openraft::SnapshotPolicy;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::edge::Api;
use crate::host::Node;
use crate::log::network::{Network, RaftService, TransportLimits};
use crate::log::{Raft, store};
use crate::metrics::{Metrics, WriteStage};

fn transport_limits(config: &Config) -> TransportLimits {
    TransportLimits {
        max_message_bytes: config.limits.max_message_bytes,
        max_snapshot_bytes: config.limits.max_snapshot_bytes,
        connect_timeout: Duration::from_secs(2),
    }
}

/// Runs a node until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    config.validate().context("invalid config")?;
    // The root key's mode, before anything else (the party is checked once
    // its genesis is applied).
    crate::bootstrap::check_party(&config, None)?;
    let config = Arc::new(config);
    let metrics = Arc::new(Metrics::default());
    let timings = store::StoreTimings {
        log_sync: metrics.stage_histogram(WriteStage::LogSync),
        apply: metrics.stage_histogram(WriteStage::Apply),
    };
    let (log, sm) = store::open(&config.data_dir, config.limits.cache_bytes, timings)
        .with_context(|| format!("open store in {}", config.data_dir.display()))?;
    let shared = sm.shared();
    // The party a restored log holds, then the TLS material (made for that
    // party on a first start).
    crate::bootstrap::check_party(&config, shared.read().projection.party())?;
    crate::tls::prepare(&config, ics_client::now_ms()).context("TLS material")?;
    crate::device_ca::prepare(&config, ics_client::now_ms()).context("device CA material")?;
    let tls_dir = crate::tls::TlsDir::of(&config);
    let node_tls = crate::peer::NodeTls::load(&tls_dir.0, &config.party, config.node_id)
        .with_context(|| {
            format!(
                "TLS material in {} (a cluster's is made by `icsd tls init`)",
                tls_dir.0.display()
            )
        })?;

    let raft_config = openraft::Config {
        cluster_name: config.party.clone(),
        heartbeat_interval: config.raft.heartbeat_ms,
        election_timeout_min: config.raft.election_timeout_min_ms,
        election_timeout_max: config.raft.election_timeout_max_ms,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(config.raft.snapshot_after_entries),
        max_in_snapshot_log_to_keep: config.raft.entries_kept_after_snapshot,
        install_snapshot_timeout: 10_000,
        // Replicate entries as soon as they are handed to the log store,
        // not once the leader's own sync is done: the syncs overlap.
        broadcast_submitted_on_append: Some(true),
        ..Default::default()
    }
    .validate()
    .context("raft config")?;
    let network = Network {
        limits: transport_limits(&config),
        tls: node_tls.clone(),
    };
    let raft = Raft::new(config.node_id, Arc::new(raft_config), network, log, sm)
        .await
        .context("start raft")?;

    let log_key = crate::tls::load_log_key(&crate::tls::TlsDir::of(&config))
        .context("the transparency log key")?;
    let device_ca = match crate::device_ca::purpose_of(config.role) {
        Some(purpose) => {
            crate::device_ca::IssuingCa::load(&crate::tls::TlsDir::of(&config), purpose)
                .context("the device CA")?
        }
        None => None,
    };
    let node = Node::new(
        raft.clone(),
        shared,
        config.clone(),
        metrics,
        node_tls.clone(),
        log_key,
        device_ca,
    );
    crate::bootstrap::bootstrap(&node).await?;
    let tls_upkeep = tokio::spawn(crate::tls::maintain(node.clone()));
    let device_ca_upkeep = tokio::spawn(crate::ca_upkeep::maintain(node.clone()));
    let device_ca_reactor = tokio::spawn(crate::ca_upkeep::revoke_reported(node.clone()));
    let tlog_upkeep = tokio::spawn(crate::checkpoints::run(node.clone()));
    let federation_pulls = tokio::spawn(crate::sync::run(node.clone()));

    let grpc_listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("bind gRPC on {}", config.listen))?;
    let peer_listener = TcpListener::bind(config.peer_listen)
        .await
        .with_context(|| format!("bind the peer listener on {}", config.peer_listen))?;
    let http_listener = TcpListener::bind(config.http_listen)
        .await
        .with_context(|| format!("bind HTTP on {}", config.http_listen))?;
    let device_listener = match config.device_listen {
        Some(a) => Some(
            TcpListener::bind(a)
                .await
                .with_context(|| format!("bind the device listener on {a}"))?,
        ),
        None => None,
    };
    let federation_listener = match config.federation_listen {
        Some(a) => Some(
            TcpListener::bind(a)
                .await
                .with_context(|| format!("bind the federation listener on {a}"))?,
        ),
        None => None,
    };
    let http_plain_listener = match config.http_plain_listen {
        Some(a) => Some(
            TcpListener::bind(a)
                .await
                .with_context(|| format!("bind plain HTTP on {a}"))?,
        ),
        None => None,
    };
    tracing::info!(
        node_id = config.node_id,
        role = config.role.name(),
        grpc = %config.listen,
        peer = %config.peer_listen,
        http = %config.http_listen,
        http_plain = ?config.http_plain_listen,
        federation = ?config.federation_listen,
        clients = ?config.tls.clients,
        data_dir = %config.data_dir.display(),
        "icsd serving"
    );

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop_on_signal = stop_tx.clone();
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_on_signal.send(true);
    });
    // A Raft core that stopped on a fatal error (storage, or a log that
    // activated rules this build does not run) stops the node: serving on
    // would answer from a state that no longer moves.
    let fatal = tokio::spawn(watch_fatal(raft.clone(), stop_tx.clone()));
    let wrong_party = tokio::spawn(watch_party(node.shared.clone(), config.clone(), stop_tx));
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let max = config.limits.max_message_bytes;
    let api = Api { node: node.clone() };
    let client_certs = match config.tls.clients {
        crate::config::ClientAccess::Open => crate::peer::ClientCerts::Optional,
        crate::config::ClientAccess::Required => crate::peer::ClientCerts::Required,
    };
    let caller = crate::edge::caller::identify(node.clone());
    let grpc_incoming = crate::listener::accept_tls(
        grpc_listener,
        tokio_rustls::TlsAcceptor::from(node_tls.listener_config(client_certs, b"h2")?),
        crate::listener::ListenerLimits {
            name: "grpc",
            max_connections: config.limits.max_client_connections,
        },
        caller.clone(),
        node.metrics.clone(),
    );
    let grpc = tonic::transport::Server::builder()
        .timeout(Duration::from_millis(config.limits.request_timeout_ms))
        .max_concurrent_streams(config.limits.max_concurrent_streams)
        .http2_keepalive_interval(Some(crate::listener::CLIENT_KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(crate::listener::CLIENT_KEEPALIVE_TIMEOUT))
        // Over all connections: many connections buy no more of the node.
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            config.limits.max_concurrent_requests,
        ))
        .add_service(
            EventLogServer::new(api.clone())
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(ClusterServer::new(api.clone()))
        // Every party's log is a transparency log: proofs on every node.
        .add_service(
            ics_proto::tlog_v1::transparency_log_server::TransparencyLogServer::new(api.clone())
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(ics_proto::policy_v1::policy_server::PolicyServer::new(
            api.clone(),
        ))
        .add_service(
            ics_proto::federation_v1::federation_status_server::FederationStatusServer::new(
                api.clone(),
            ),
        )
        // The roles that run a device CA serve it.
        .add_optional_service(crate::device_ca::purpose_of(config.role).map(|_| {
            ics_proto::ca_v1::certificate_authority_server::CertificateAuthorityServer::new(
                api.clone(),
            )
        }))
        .serve_with_incoming_shutdown(grpc_incoming, stopped(stop_rx.clone()));
    // The peer listener: only nodes of this party whose certificate the log
    // has not revoked; each Raft message's sender must be the certificate's node.
    let revoked_check = {
        let shared = node.shared.clone();
        std::sync::Arc::new(move |peer: &crate::peer::PeerIdentity| {
            let applied = shared.read();
            let pki = applied.projection.capability::<ics_pki::Pki>();
            if pki.index().revoked.contains(&peer.fingerprint) {
                Err(format!(
                    "node {}'s certificate sha256:{} is revoked",
                    peer.node_id, peer.fingerprint
                ))
            } else {
                Ok(())
            }
        }) as crate::peer::PeerCheck
    };
    let peer_incoming = crate::peer::accept(
        peer_listener,
        &node_tls,
        config.limits.max_peer_connections,
        revoked_check,
        node.metrics.clone(),
    )?;
    let peer_grpc = tonic::transport::Server::builder()
        .max_concurrent_streams(config.limits.max_concurrent_streams)
        .http2_keepalive_interval(Some(crate::listener::PEER_KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(crate::listener::PEER_KEEPALIVE_TIMEOUT))
        .add_service(
            RaftTransportServer::new(RaftService {
                raft: raft.clone(),
                limits: transport_limits(&config),
                shared: node.shared.clone(),
                metrics: node.metrics.clone(),
                spool_dir: config.data_dir.clone(),
                receiving: Default::default(),
                leader_contact: node.leader_contact.clone(),
            })
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
        )
        .add_service(
            EventLogServer::new(api.clone())
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(ClusterServer::new(api))
        .serve_with_incoming_shutdown(peer_incoming, stopped(stop_rx.clone()));
    // Every party's log is a transparency log: tiles on every node.
    let mut http_router = crate::edge::http::router(node.clone())
        .merge(crate::tiles::router(node.clone()))
        .merge(crate::witness::router(node.clone()));
    if ics_identity::serves_hkp(config.role) {
        http_router = http_router.merge(crate::hkp::router(node.clone()));
    }
    if crate::device_ca::purpose_of(config.role).is_some() {
        http_router = http_router.merge(crate::edge::ca_http::router(node.clone()));
    }
    let http_limits = |name| crate::listener::ListenerLimits {
        name,
        max_connections: config.limits.max_http_connections,
    };
    let header_timeout = Duration::from_millis(config.limits.http_header_timeout_ms);
    let http = crate::edge::http::serve(
        crate::listener::accept_tls(
            http_listener,
            tokio_rustls::TlsAcceptor::from(node_tls.listener_config(client_certs, b"http/1.1")?),
            http_limits("http"),
            caller.clone(),
            node.metrics.clone(),
        ),
        http_router.clone(),
        header_timeout,
        stopped(stop_rx.clone()),
    );
    let federation_stop = stop_rx.clone();
    let stop_rx_devices = stop_rx.clone();
    let http_plain = async {
        if let Some(listener) = http_plain_listener {
            let incoming = crate::listener::accept_plain(
                listener,
                http_limits("http_plain"),
                caller,
                node.metrics.clone(),
            );
            crate::edge::http::serve(incoming, http_router, header_timeout, stopped(stop_rx)).await;
        }
    };

    // Other parties' nodes: mutual TLS under the peer CAs of the policy in
    // force, the Federation service only.
    let federation = async {
        let Some(listener) = federation_listener else {
            return Ok(());
        };
        let incoming = crate::federation::accept(
            listener,
            &node_tls,
            node.shared.clone(),
            config.limits.max_peer_connections,
            node.metrics.clone(),
        )?;
        tonic::transport::Server::builder()
            .timeout(Duration::from_millis(config.limits.request_timeout_ms))
            .max_concurrent_streams(config.limits.max_concurrent_streams)
            .http2_keepalive_interval(Some(crate::listener::PEER_KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(crate::listener::PEER_KEEPALIVE_TIMEOUT))
            .add_service(
                ics_proto::federation_v1::federation_server::FederationServer::new(Api {
                    node: node.clone(),
                })
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            )
            .serve_with_incoming_shutdown(incoming, stopped(federation_stop))
            .await
            .context("federation gRPC server")
    };

    // Devices with their own certificates: enrollment and ingestion, where
    // the role runs a device CA.
    let device_stop = stop_rx_devices;
    let devices = async {
        let Some(listener) = device_listener else {
            return Ok(());
        };
        let verifier = Arc::new(crate::edge::est::DeviceCertVerifier::new());
        let tls = node_tls.config_with_client_verifier(verifier, b"http/1.1")?;
        let incoming = crate::listener::accept_tls(
            listener,
            tokio_rustls::TlsAcceptor::from(tls),
            crate::listener::ListenerLimits {
                name: "device",
                max_connections: config.limits.max_http_connections,
            },
            crate::edge::est::identify(),
            node.metrics.clone(),
        );
        crate::edge::http::serve(
            incoming,
            crate::edge::est::router(node.clone()),
            header_timeout,
            stopped(device_stop),
        )
        .await;
        anyhow::Ok(())
    };

    let (g, p, f, (), (), d) = tokio::join!(grpc, peer_grpc, federation, http, http_plain, devices);
    d.context("device listener")?;
    g.context("gRPC server")?;
    p.context("peer gRPC server")?;
    f?;
    fatal.abort();
    wrong_party.abort();
    tls_upkeep.abort();
    device_ca_upkeep.abort();
    device_ca_reactor.abort();
    tlog_upkeep.abort();
    federation_pulls.abort();
    if let Ok(Some(e)) = fatal.await {
        anyhow::bail!("raft stopped on a fatal error: {e}");
    }
    if let Ok(Some(e)) = wrong_party.await {
        anyhow::bail!("{e}");
    }
    raft.shutdown()
        .await
        .map_err(|e| anyhow::anyhow!("raft shutdown: {e}"))?;
    tracing::info!("icsd stopped");
    Ok(())
}

/// Checks the party once its genesis is applied (restored, replayed or
/// replicated): a node must not serve a log other than its configured
/// party's. Asks the node to stop on a mismatch and returns the reason.
async fn watch_party(
    shared: Arc<store::Shared>,
    config: Arc<Config>,
    stop: tokio::sync::watch::Sender<bool>,
) -> Option<String> {
    let mut applied = shared.event_count.subscribe();
    let party = loop {
        if let Some(p) = shared.read().projection.party().cloned() {
            break p;
        }
        if applied.changed().await.is_err() {
            return None;
        }
    };
    let e = format!(
        "{:#}",
        crate::bootstrap::check_party(&config, Some(&party)).err()?
    );
    tracing::error!(error = %e, "stopping the node");
    let _ = stop.send(true);
    Some(e)
}

/// Waits for the Raft core to stop on a fatal error; then asks the node to
/// stop and returns the error.
async fn watch_fatal(raft: Raft, stop: tokio::sync::watch::Sender<bool>) -> Option<String> {
    use openraft::async_runtime::watch::WatchReceiver;
    let mut metrics = raft.metrics();
    loop {
        let failed = match &metrics.borrow_watched().running_state {
            Ok(()) => None,
            Err(e) => Some(e.to_string()),
        };
        if let Some(e) = failed {
            tracing::error!(error = %e, "raft stopped on a fatal error; stopping the node");
            let _ = stop.send(true);
            return Some(e);
        }
        if metrics.changed().await.is_err() {
            return None;
        }
    }
}
