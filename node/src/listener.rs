//! The node's TLS listeners (peer, client gRPC, HTTP) share one acceptor: a
//! cap on handshakes in progress (more wait their turn, up to a cap on
//! connections waiting), a handshake deadline, then a cap on established connections; who is on the other end
//! is decided once, from the verified certificate (or the address when the
//! listener lets clients come without one), and rides with every request.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::metrics::Metrics;

/// How long a connection has to finish its TLS handshake (a real one takes
/// milliseconds).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Handshakes in progress at once, per listener (bounds the CPU spent on
/// handshake cryptography). Slots for established connections are separate,
/// so connections that never finish a handshake cannot take the place of the
/// clients already connected.
pub const MAX_HANDSHAKES: usize = 32;
/// Connections accepted but not yet through their handshake, per listener:
/// in a handshake or waiting for a turn. A burst of real clients (a fleet
/// reconnecting) waits its turn, milliseconds each; beyond this many a
/// connection is closed at once. Waiting counts against the same
/// `HANDSHAKE_TIMEOUT`, so idle connections are closed on time either way.
pub const MAX_PENDING_HANDSHAKES: usize = 1024;

/// Between nodes: how often an idle HTTP/2 connection is pinged, and how long
/// a ping may go unanswered before the connection is dropped. A peer that
/// vanished from the network (partition, new address after a reconnect) is
/// then redialled within seconds instead of holding a dead connection until
/// TCP gives up (minutes).
pub const PEER_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
pub const PEER_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(3);
/// Towards clients: dead clients release their connection slot.
pub const CLIENT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
pub const CLIENT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Decides who a connection is from its verified client certificate (if it
/// sent one) and its address; an error refuses the connection.
pub type Identify<I> =
    Arc<dyn Fn(Option<&CertificateDer<'static>>, SocketAddr) -> Result<I, String> + Send + Sync>;

/// An accepted connection, the identity its handshake established and its
/// slot under the listener's cap.
pub struct Accepted<S, I> {
    stream: S,
    identity: I,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl<S, I> Accepted<S, I> {
    pub fn identity(&self) -> &I {
        &self.identity
    }
}

impl<S, I> tonic::transport::server::Connected for Accepted<S, I>
where
    I: Clone + Send + Sync + 'static,
{
    type ConnectInfo = I;

    fn connect_info(&self) -> I {
        self.identity.clone()
    }
}

impl<S: AsyncRead + Unpin, I: Unpin> AsyncRead for Accepted<S, I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin, I: Unpin> AsyncWrite for Accepted<S, I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

pub type TlsConnection<I> = Accepted<tokio_rustls::server::TlsStream<TcpStream>, I>;
pub type Incoming<C> = tokio_stream::wrappers::ReceiverStream<io::Result<C>>;

/// One listener's name (the `listener` label of its metrics) and cap.
#[derive(Clone, Copy, Debug)]
pub struct ListenerLimits {
    pub name: &'static str,
    pub max_connections: usize,
}

async fn next_connection(listener: &TcpListener, name: &str) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(c) => return c,
            Err(e) => {
                // Out of descriptors, most often: wait rather than spin.
                tracing::warn!(listener = name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Accepts TLS connections on `listener`: at most `MAX_HANDSHAKES` in
/// progress and `MAX_PENDING_HANDSHAKES` accepted before their handshake (one
/// more is closed at once), each with `HANDSHAKE_TIMEOUT` from its accept to
/// wait for its turn and complete, then `identify` decides who it is (or refuses it), then at most
/// `limits.max_connections` established. Refused connections are closed,
/// counted and logged; accepted ones go to the server reading the stream.
pub fn accept_tls<I>(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    limits: ListenerLimits,
    identify: Identify<I>,
    metrics: Arc<Metrics>,
) -> Incoming<TlsConnection<I>>
where
    I: Send + 'static,
{
    let name = limits.name;
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
    let pending = Arc::new(tokio::sync::Semaphore::new(MAX_PENDING_HANDSHAKES));
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let (tcp, from) = next_connection(&listener, name).await;
            let Ok(pending_slot) = pending.clone().try_acquire_owned() else {
                metrics.connection(name, false);
                tracing::debug!(listener = name, %from, "refused a connection: {MAX_PENDING_HANDSHAKES} connections before their handshake");
                continue;
            };
            let (slots, acceptor, tx) = (slots.clone(), acceptor.clone(), tx.clone());
            let (identify, metrics, handshakes) =
                (identify.clone(), metrics.clone(), handshakes.clone());
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                let refuse = |why: String| {
                    metrics.connection(name, false);
                    tracing::warn!(listener = name, %from, "refused a connection: {why}");
                };
                let handshake = async {
                    let _turn = handshakes
                        .acquire_owned()
                        .await
                        .expect("the handshake semaphore is never closed");
                    acceptor.accept(tcp).await
                };
                let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => return refuse(format!("TLS handshake failed: {e}")),
                    Err(_) => {
                        return refuse(format!("no TLS handshake within {HANDSHAKE_TIMEOUT:?}"));
                    }
                };
                drop(pending_slot);
                let certificate = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first());
                let identity = match identify(certificate, from) {
                    Ok(i) => i,
                    Err(e) => return refuse(e),
                };
                let Ok(slot) = slots.try_acquire_owned() else {
                    return refuse(format!("{} connections are open", limits.max_connections));
                };
                metrics.connection(name, true);
                let _ = tx
                    .send(Ok(Accepted {
                        stream,
                        identity,
                        _slot: slot,
                    }))
                    .await;
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// Accepts plain TCP connections (the loopback HTTP listener): at most
/// `limits.max_connections` at once, each named by `identify` from its
/// address alone.
pub fn accept_plain<I>(
    listener: TcpListener,
    limits: ListenerLimits,
    identify: Identify<I>,
    metrics: Arc<Metrics>,
) -> Incoming<Accepted<TcpStream, I>>
where
    I: Send + 'static,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let (tcp, from) = next_connection(&listener, limits.name).await;
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                metrics.connection(limits.name, false);
                tracing::debug!(listener = limits.name, %from, "connection over the cap closed");
                continue;
            };
            let identity = match identify(None, from) {
                Ok(i) => i,
                Err(e) => {
                    metrics.connection(limits.name, false);
                    tracing::warn!(listener = limits.name, %from, "refused a connection: {e}");
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            metrics.connection(limits.name, true);
            let accepted = Accepted {
                stream: tcp,
                identity,
                _slot: slot,
            };
            if tx.send(Ok(accepted)).await.is_err() {
                return;
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
