//! Node to node over mutual TLS: the party's CA is the only root, a peer is
//! a node of this party named by its certificate (`ics://<party>/node/<id>`),
//! never by a claim in a request.
//!
//! `NodeTls` holds the trust anchor and this node's current certificate
//! (swapped in place on renewal: new handshakes use it, no listener
//! restarts). `accept` is the peer listener's acceptor (a connection cap, a
//! handshake deadline, the peer's identity checked and attached to every
//! request as `PeerIdentity`); `PeerConnector` dials a peer and accepts only
//! the node it meant to reach.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{Context as _, bail};
use hyper_util::rt::TokioIo;
use ics_pki::{Holder, ParsedCert};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tonic::codegen::http::Uri;

pub use crate::listener::HANDSHAKE_TIMEOUT;

/// The one crypto provider of the process (ring).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Who is on the other end of a peer connection, from its certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    pub node_id: u64,
    /// SHA-256 of its certificate, hex: what revocation names.
    pub fingerprint: String,
}

/// Reads a peer's identity from its (chain-verified) certificate: a node
/// certificate of `party`.
pub fn identity_of(cert: &[u8], party: &str) -> Result<PeerIdentity, String> {
    let cert = ParsedCert::parse(cert).map_err(|e| e.to_string())?;
    let (p, holder) = cert.holder().map_err(|e| e.to_string())?;
    if p != party {
        return Err(format!("a certificate of party {p:?}, not {party:?}"));
    }
    match holder {
        Holder::Node(node_id) => Ok(PeerIdentity {
            node_id,
            fingerprint: cert.fingerprint_hex(),
        }),
        other => Err(format!("a certificate of {other}, not of a node")),
    }
}

/// The party's trust anchor and this node's current certificate.
pub struct NodeTls {
    pub party: String,
    pub node_id: u64,
    dir: PathBuf,
    ca: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl std::fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeTls(party {}, node {})", self.party, self.node_id)
    }
}

fn load_certified(dir: &Path, provider: &CryptoProvider) -> anyhow::Result<Arc<CertifiedKey>> {
    let cert_path = dir.join("node.crt");
    let key_path = dir.join("node.key");
    let cert = CertificateDer::from_pem_file(&cert_path)
        .with_context(|| format!("read {}", cert_path.display()))?;
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .with_context(|| format!("read {}", key_path.display()))?;
    let key = provider
        .key_provider
        .load_private_key(key)
        .with_context(|| format!("load {}", key_path.display()))?;
    let certified = CertifiedKey::new(vec![cert], key);
    certified.keys_match().with_context(|| {
        format!(
            "{} is not the key of {}",
            key_path.display(),
            cert_path.display()
        )
    })?;
    Ok(Arc::new(certified))
}

impl NodeTls {
    /// Loads the material of a node's TLS directory (see `tls.rs`).
    pub fn load(dir: &Path, party: &str, node_id: u64) -> anyhow::Result<Arc<NodeTls>> {
        let provider = provider();
        let ca_path = dir.join("ca.crt");
        let ca = CertificateDer::from_pem_file(&ca_path)
            .with_context(|| format!("read {}", ca_path.display()))?;
        let current = load_certified(dir, &provider)?;
        let me = identity_of(current.end_entity_cert()?, party)
            .map_err(|e| anyhow::anyhow!("{}: {e}", dir.join("node.crt").display()))?;
        if me.node_id != node_id {
            bail!(
                "{} is node {}'s certificate, not node {node_id}'s",
                dir.display(),
                me.node_id
            );
        }
        Ok(Arc::new(NodeTls {
            party: party.to_string(),
            node_id,
            dir: dir.to_path_buf(),
            ca,
            provider,
            current: RwLock::new(current),
        }))
    }

    /// Takes the renewed certificate from disk: new handshakes present it.
    pub fn reload(&self) -> anyhow::Result<()> {
        let next = load_certified(&self.dir, &self.provider)?;
        *self.current.write().expect("certificate lock") = next;
        Ok(())
    }

    fn certified(&self) -> Arc<CertifiedKey> {
        self.current.read().expect("certificate lock").clone()
    }

    fn roots(&self) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        roots
            .add(self.ca.clone())
            .expect("the CA certificate was parsed on load");
        Arc::new(roots)
    }

    /// The peer listener's: TLS 1.3 only, a client certificate chained to
    /// the party CA required.
    pub fn server_config(self: &Arc<Self>) -> anyhow::Result<Arc<ServerConfig>> {
        self.listener_config(ClientCerts::Required, b"h2")
    }

    /// A listener's TLS 1.3 config: this node's current certificate, client
    /// certificates chained to the party CA (required, or optional when
    /// clients may come without one), and one application protocol.
    pub fn listener_config(
        self: &Arc<Self>,
        client_certs: ClientCerts,
        alpn: &[u8],
    ) -> anyhow::Result<Arc<ServerConfig>> {
        let builder =
            WebPkiClientVerifier::builder_with_provider(self.roots(), self.provider.clone());
        let verifier = match client_certs {
            ClientCerts::Required => builder.build(),
            ClientCerts::Optional => builder.allow_unauthenticated().build(),
        }
        .context("client certificate verifier")?;
        self.config_with_client_verifier(verifier, alpn)
    }

    /// A listener's TLS 1.3 config with this node's current certificate and
    /// `verifier` for client certificates.
    pub fn config_with_client_verifier(
        self: &Arc<Self>,
        verifier: Arc<dyn rustls::server::danger::ClientCertVerifier>,
        alpn: &[u8],
    ) -> anyhow::Result<Arc<ServerConfig>> {
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .context("TLS 1.3")?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(Current(self.clone())));
        config.alpn_protocols = vec![alpn.to_vec()];
        Ok(Arc::new(config))
    }

    /// Dials node `expected`: its certificate must chain to the party CA and
    /// name that node of this party; ours goes along.
    pub fn client_config(self: &Arc<Self>, expected: u64) -> anyhow::Result<Arc<ClientConfig>> {
        let verifier = ExpectedNode {
            tls: self.clone(),
            expected,
        };
        self.client_config_with_verifier(Arc::new(verifier), b"h2")
    }

    /// A client's TLS 1.3 config presenting this node's certificate, the
    /// server checked by `verifier`.
    pub fn client_config_with_verifier(
        self: &Arc<Self>,
        verifier: Arc<dyn ServerCertVerifier>,
        alpn: &[u8],
    ) -> anyhow::Result<Arc<ClientConfig>> {
        let mut config = ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .context("TLS 1.3")?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_cert_resolver(Arc::new(Current(self.clone())));
        config.alpn_protocols = vec![alpn.to_vec()];
        Ok(Arc::new(config))
    }

    /// A connector for a tonic channel to node `expected` at `address`.
    pub fn connector(
        self: &Arc<Self>,
        expected: u64,
        address: &str,
    ) -> anyhow::Result<PeerConnector> {
        Ok(PeerConnector::new(self.client_config(expected)?, address))
    }
}

impl PeerConnector {
    /// Dials `address` with `config`.
    pub fn new(config: Arc<ClientConfig>, address: &str) -> Self {
        PeerConnector {
            tls: TlsConnector::from(config),
            address: address.to_string(),
        }
    }
}

/// Presents this node's current certificate, as server and as client.
#[derive(Debug)]
struct Current(Arc<NodeTls>);

impl rustls::server::ResolvesServerCert for Current {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.certified())
    }
}

impl rustls::client::ResolvesClientCert for Current {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.certified())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Verifies a peer's server certificate by the party CA and the node it
/// names, not by host name: peers are reached by addresses that NAT and
/// container networks rename, but a node id is what membership names.
#[derive(Debug)]
struct ExpectedNode {
    tls: Arc<NodeTls>,
    expected: u64,
}

impl ServerCertVerifier for ExpectedNode {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let peer = verify_node_cert(
            &self.tls.provider,
            &self.tls.party,
            &self.tls.ca,
            end_entity,
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
        )
        .map_err(bad_certificate)?;
        if peer.node_id != self.expected {
            return Err(bad_certificate(format!(
                "dialed node {} but reached node {}",
                self.expected, peer.node_id
            )));
        }
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
        tls13_signature(&self.tls.provider, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        signature_schemes(&self.tls.provider)
    }
}

/// A certificate rustls refuses, with the reason.
pub(crate) fn bad_certificate(e: impl Into<String>) -> rustls::Error {
    rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
        Arc::new(io::Error::other(e.into())),
    )))
}

/// Verifies `cert` under the CA `ca` for `usage`, and reads it as a node
/// certificate of `party`.
pub(crate) fn verify_node_cert(
    provider: &CryptoProvider,
    party: &str,
    ca: &[u8],
    cert: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
    usage: webpki::KeyUsage,
) -> Result<PeerIdentity, String> {
    let ca = CertificateDer::from(ca);
    let anchor = webpki::anchor_from_trusted_cert(&ca).map_err(|e| format!("{party}'s CA: {e}"))?;
    let end = webpki::EndEntityCert::try_from(cert).map_err(|e| format!("certificate: {e}"))?;
    end.verify_for_usage(
        provider.signature_verification_algorithms.all,
        &[anchor],
        intermediates,
        now,
        usage,
        None,
        None,
    )
    .map_err(|e| format!("not a certificate under {party}'s CA: {e}"))?;
    identity_of(cert, party)
}

/// TLS 1.2 is never offered; a verifier refuses its signatures.
pub(crate) fn no_tls12() -> Result<HandshakeSignatureValid, rustls::Error> {
    Err(rustls::Error::General("TLS 1.2 is not offered".into()))
}

pub(crate) fn tls13_signature(
    provider: &CryptoProvider,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    rustls::crypto::verify_tls13_signature(
        message,
        cert,
        dss,
        &provider.signature_verification_algorithms,
    )
}

pub(crate) fn signature_schemes(provider: &CryptoProvider) -> Vec<SignatureScheme> {
    provider
        .signature_verification_algorithms
        .supported_schemes()
}

/// Dials one peer over TLS; tonic calls it for every (re)connection.
#[derive(Clone)]
pub struct PeerConnector {
    tls: TlsConnector,
    address: String,
}

type Connecting = Pin<
    Box<
        dyn Future<Output = io::Result<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>>> + Send,
    >,
>;

impl tower::Service<Uri> for PeerConnector {
    type Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        let address = self.address.clone();
        Box::pin(async move {
            let tcp = TcpStream::connect(&address).await?;
            tcp.set_nodelay(true)?;
            // The name is not what is verified (the node id is); it only
            // fills the SNI field.
            let name = ServerName::try_from("ics-peer.invalid").expect("a valid DNS name");
            let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.connect(name, tcp))
                .await
                .map_err(|_| {
                    io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")
                })??;
            Ok(TokioIo::new(stream))
        })
    }
}

/// A tonic channel to node `id` at `address` over mutual TLS.
pub fn channel(
    tls: &Arc<NodeTls>,
    id: u64,
    address: &str,
    connect_timeout: Duration,
) -> anyhow::Result<tonic::transport::Channel> {
    let connector = tls.connector(id, address)?;
    // The URI is a placeholder: the connector dials `address` itself.
    Ok(
        tonic::transport::Endpoint::from_static("http://ics-peer.invalid")
            .connect_timeout(connect_timeout)
            .http2_keep_alive_interval(crate::listener::PEER_KEEPALIVE_INTERVAL)
            .keep_alive_timeout(crate::listener::PEER_KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
            .connect_with_connector_lazy(connector),
    )
}

/// Whether a listener requires a client certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientCerts {
    Required,
    Optional,
}

/// Whether a peer's certificate may still be used (not revoked in the log).
pub type PeerCheck = Arc<dyn Fn(&PeerIdentity) -> Result<(), String> + Send + Sync>;

/// The peer listener: mutual TLS with a node certificate of this party that
/// `check` allows (see `listener::accept_tls` for the caps and deadlines).
pub fn accept(
    listener: TcpListener,
    tls: &Arc<NodeTls>,
    max_connections: usize,
    check: PeerCheck,
    metrics: Arc<crate::metrics::Metrics>,
) -> anyhow::Result<crate::listener::Incoming<crate::listener::TlsConnection<PeerIdentity>>> {
    let party = tls.party.clone();
    let identify: crate::listener::Identify<PeerIdentity> = Arc::new(move |cert, _from| {
        let cert = cert.ok_or_else(|| "no client certificate".to_string())?;
        let peer = identity_of(cert, &party)?;
        check(&peer)?;
        Ok(peer)
    });
    Ok(crate::listener::accept_tls(
        listener,
        TlsAcceptor::from(tls.server_config()?),
        crate::listener::ListenerLimits {
            name: "peer",
            max_connections,
        },
        identify,
        metrics,
    ))
}
