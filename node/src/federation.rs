//! Federation between parties over mutual TLS: trust comes from the policy
//! in force, never from config or a claim in a request. A peer party is
//! named by the policy with its TLS CA; its nodes' certificates must chain
//! to that CA and name a node of that very party.
//!
//! - The federation listener (`federation_listen`) requires a client
//!   certificate under the CA of a peer the policy in force names
//!   (`PeerPartyVerifier`, which follows policy changes), and identifies the
//!   caller as that party's node (`FederationPeer`): a certificate of one
//!   party signed by another peer's CA is refused.
//! - A puller dials a peer's endpoint with this node's certificate and
//!   accepts only a node certificate of that party under its CA (`channel`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use ics_pki::ParsedCert;
use ics_policies::{Policies, PolicyState};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::log::store::Shared;
use crate::peer::{
    NodeTls, bad_certificate, no_tls12, signature_schemes, tls13_signature, verify_node_cert,
};

/// A node of a peer party, as its certificate names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FederationPeer {
    pub party: String,
    pub node_id: u64,
    /// SHA-256 of its certificate, hex.
    pub fingerprint: String,
}

/// The peers of the policy in force and their CA certificates (DER).
pub fn peer_cas(shared: &Shared) -> Vec<(String, Vec<u8>)> {
    let applied = shared.read();
    let Some(policy) = ics_policies::active(applied.projection.capability::<Policies>()) else {
        return Vec::new();
    };
    peers_of(policy)
}

fn peers_of(policy: &PolicyState) -> Vec<(String, Vec<u8>)> {
    policy
        .descriptor
        .peers
        .iter()
        .filter_map(|p| {
            let der = ics_policies::descriptor::pem_certificate(&p.tls_ca).ok()?;
            Some((p.name.clone(), der))
        })
        .collect()
}

/// Verifies `cert` under `ca` for `usage`, and reads it as a node of `party`.
fn verify_node(
    provider: &CryptoProvider,
    party: &str,
    ca: &[u8],
    cert: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
    usage: webpki::KeyUsage,
) -> Result<FederationPeer, String> {
    let node = verify_node_cert(provider, party, ca, cert, intermediates, now, usage)?;
    Ok(FederationPeer {
        party: party.to_string(),
        node_id: node.node_id,
        fingerprint: node.fingerprint,
    })
}

/// The federation listener's client verifier: a node certificate under the
/// CA of a peer the policy in force names (read at each handshake, so a
/// published policy takes effect for the next connection).
pub struct PeerPartyVerifier {
    shared: Arc<Shared>,
    provider: Arc<CryptoProvider>,
}

impl std::fmt::Debug for PeerPartyVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerPartyVerifier")
    }
}

impl PeerPartyVerifier {
    /// Which peer `cert` is a node of, if any.
    pub fn identify(
        &self,
        cert: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<FederationPeer, String> {
        let peers = peer_cas(&self.shared);
        if peers.is_empty() {
            return Err("this party's policy names no peer".into());
        }
        let parsed = ParsedCert::parse(cert).map_err(|e| e.to_string())?;
        let (named, _) = parsed.holder().map_err(|e| e.to_string())?;
        let (party, ca) = peers
            .iter()
            .find(|(p, _)| *p == named)
            .ok_or_else(|| format!("party {named:?} is not a peer of the policy in force"))?;
        verify_node(
            &self.provider,
            party,
            ca,
            cert,
            intermediates,
            now,
            webpki::KeyUsage::client_auth(),
        )
    }
}

impl ClientCertVerifier for PeerPartyVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.identify(end_entity, intermediates, now)
            .map_err(bad_certificate)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        no_tls12()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        tls13_signature(&self.provider, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        signature_schemes(&self.provider)
    }
}

/// The federation listener: mutual TLS with a node of a peer party (see
/// `listener::accept_tls` for the caps and deadlines).
pub fn accept(
    listener: tokio::net::TcpListener,
    tls: &Arc<NodeTls>,
    shared: Arc<Shared>,
    max_connections: usize,
    metrics: Arc<crate::metrics::Metrics>,
) -> anyhow::Result<crate::listener::Incoming<crate::listener::TlsConnection<FederationPeer>>> {
    let verifier = Arc::new(PeerPartyVerifier {
        shared,
        provider: crate::peer::provider(),
    });
    let config = tls.config_with_client_verifier(verifier.clone(), b"h2")?;
    let identify: crate::listener::Identify<FederationPeer> = Arc::new(move |cert, _from| {
        let cert = cert.ok_or_else(|| "no client certificate".to_string())?;
        // The handshake verified the chain; read who it is again (the
        // policy may have changed since, and the identity is what counts).
        verifier.identify(cert, &[], UnixTime::now())
    });
    Ok(crate::listener::accept_tls(
        listener,
        tokio_rustls::TlsAcceptor::from(config),
        crate::listener::ListenerLimits {
            name: "federation",
            max_connections,
        },
        identify,
        metrics,
    ))
}

/// Verifies a peer party's server: a node certificate of `party` under `ca`.
#[derive(Debug)]
struct PartyNode {
    party: String,
    ca: Vec<u8>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PartyNode {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        verify_node(
            &self.provider,
            &self.party,
            &self.ca,
            end_entity,
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
        )
        .map_err(bad_certificate)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        no_tls12()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        tls13_signature(&self.provider, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        signature_schemes(&self.provider)
    }
}

/// A tonic channel to a node of peer `party` at `address` (`host:port`),
/// over mutual TLS: this node's certificate goes along, and the server must
/// be a node of `party` under `ca`.
pub fn channel(
    tls: &Arc<NodeTls>,
    party: &str,
    ca: &[u8],
    address: &str,
    connect_timeout: Duration,
) -> anyhow::Result<tonic::transport::Channel> {
    let verifier = Arc::new(PartyNode {
        party: party.to_string(),
        ca: ca.to_vec(),
        provider: crate::peer::provider(),
    });
    let config = tls
        .client_config_with_verifier(verifier, b"h2")
        .context("federation client TLS")?;
    let connector = crate::peer::PeerConnector::new(config, address);
    Ok(
        // Keepalives find a dead link (a partition between the parties) in
        // seconds, instead of at the pull's timeout.
        tonic::transport::Endpoint::from_static("http://ics-peer.invalid")
            .connect_timeout(connect_timeout)
            .http2_keep_alive_interval(crate::listener::PEER_KEEPALIVE_INTERVAL)
            .keep_alive_timeout(crate::listener::PEER_KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
            .connect_with_connector_lazy(connector),
    )
}
