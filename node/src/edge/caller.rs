//! Who calls the client API or the HTTP side: the holder its TLS client
//! certificate names (chain-verified against the party CA at the handshake),
//! else only its address. Decided once per connection, never from a claim in
//! a request.

use std::net::SocketAddr;
use std::sync::Arc;

use ics_pki::{Holder, ParsedCert};
use tonic::{Code, Request, Status};

use crate::errors::rpc_error;
use crate::host::Node;
use crate::listener::Identify;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub address: SocketAddr,
    pub certificate: Option<CallerCertificate>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallerCertificate {
    pub holder: Holder,
    /// SHA-256 of the certificate, hex: what revocation names.
    pub fingerprint: String,
}

impl Caller {
    /// The name rate limits count this caller under: its certificate when it
    /// sent one (wherever it connects from), else its IP address (ports are
    /// free to change).
    pub fn rate_key(&self) -> String {
        match &self.certificate {
            Some(c) => format!("{} (certificate sha256:{})", c.holder, &c.fingerprint[..16]),
            None => format!("address {}", self.address.ip()),
        }
    }
}

/// The client listeners' identify step: a certificate, when sent, must name
/// a holder of this party and not be revoked in the log.
pub fn identify(node: Arc<Node>) -> Identify<Caller> {
    Arc::new(move |cert, address| {
        let certificate = match cert {
            None => None,
            Some(der) => {
                let parsed = ParsedCert::parse(der).map_err(|e| e.to_string())?;
                let (party, holder) = parsed.holder().map_err(|e| e.to_string())?;
                if party != node.config.party {
                    return Err(format!("a certificate of party {party:?}"));
                }
                let fingerprint = parsed.fingerprint_hex();
                if is_revoked(&node, &fingerprint) {
                    return Err(format!(
                        "{holder}'s certificate sha256:{fingerprint} is revoked"
                    ));
                }
                Some(CallerCertificate {
                    holder,
                    fingerprint,
                })
            }
        };
        Ok(Caller {
            address,
            certificate,
        })
    })
}

fn is_revoked(node: &Node, fingerprint: &str) -> bool {
    let applied = node.shared.read();
    applied
        .projection
        .capability::<ics_pki::Pki>()
        .index()
        .revoked
        .contains(fingerprint)
}

/// Administration (cluster membership, initialization, the Raft details of
/// the status) needs an operator certificate of this party that the log has
/// not revoked — checked again here, as a revocation may come after the
/// handshake. A request a node forwarded over the peer listener was checked
/// by that node.
pub fn require_operator<T>(node: &Node, req: &Request<T>, what: &str) -> Result<String, Status> {
    if crate::forward::is_forwarded(req) {
        return Ok("a forwarding node".to_string());
    }
    let denied = |why: String| {
        rpc_error(
            Code::PermissionDenied,
            "OPERATOR_REQUIRED",
            format!(
                "{what} needs an operator certificate of party {} ({why}); icsctl sends one with --cert/--key",
                node.config.party
            ),
        )
    };
    let caller = req.extensions().get::<Caller>();
    match caller.and_then(|c| c.certificate.as_ref()) {
        None => Err(denied("the connection has none".to_string())),
        Some(c) => match &c.holder {
            Holder::Operator(name) if !is_revoked(node, &c.fingerprint) => Ok(name.clone()),
            Holder::Operator(_) => Err(denied(format!(
                "certificate sha256:{} is revoked",
                c.fingerprint
            ))),
            other => Err(denied(format!("the certificate is {other}'s"))),
        },
    }
}

/// Whether the caller holds a live operator certificate (for answers that
/// show more to operators).
pub fn is_operator<T>(node: &Node, req: &Request<T>) -> bool {
    require_operator(node, req, "").is_ok()
}

/// Who a request is charged to: a client's certificate or address, or the
/// node whose certificate a peer connection showed.
pub fn rate_key<T>(req: &Request<T>) -> String {
    if let Some(peer) = req.extensions().get::<crate::peer::PeerIdentity>() {
        return format!("node {}", peer.node_id);
    }
    match req.extensions().get::<Caller>() {
        Some(c) => c.rate_key(),
        None => "an unidentified caller".to_string(),
    }
}
