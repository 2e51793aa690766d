//! Builds and signs events, and talks to a node over gRPC.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use ics_identity::payload::{CodeIdentity, CodeStatus, DeviceStatus};
use ics_identity::{CODE, DEVICE, IdentityPayload, SERVICE, openpgp};
use ics_kernel::authority::{AUTHOR_KEY, PartyPayload};
use ics_kernel::capability::{Payload, payload_bytes};
use ics_kernel::{Envelope, EventBody, EventId, PublicKey, SCHEMA_VERSION, SigningKey, SubjectRef};
use ics_proto::core_v1 as pb;
use ics_proto::core_v1::cluster_client::ClusterClient;
use ics_proto::core_v1::event_log_client::EventLogClient;
use tonic::Status;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::{capabilities, codec};

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Where a subject's next event goes: its sequence and previous id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChainHead {
    pub sequence: u64,
    pub previous: Option<EventId>,
}

/// Signs `payload` as the next event of `subject`, timed now.
pub fn signed(
    author: &SigningKey,
    subject: SubjectRef,
    head: ChainHead,
    payload: impl Payload,
) -> Envelope {
    signed_at(author, subject, head, payload, now_ms())
}

/// Signs `payload` with the event time `time_ms` (OpenPGP signatures inside
/// the payload carry the same time).
pub fn signed_at(
    author: &SigningKey,
    subject: SubjectRef,
    head: ChainHead,
    payload: impl Payload,
    time_ms: i64,
) -> Envelope {
    ics_kernel::envelope::sign(&body(author, subject, head, &payload, time_ms), &[author])
}

/// The body of `payload` as the subject's next event.
pub fn body(
    author: &SigningKey,
    subject: SubjectRef,
    head: ChainHead,
    payload: &impl Payload,
    time_ms: i64,
) -> EventBody {
    EventBody {
        schema_version: SCHEMA_VERSION,
        subject,
        sequence: head.sequence,
        previous: head.previous,
        author: author.key_id(),
        time_ms,
        payload: payload_bytes(payload),
    }
}

pub fn register_author(
    root: &SigningKey,
    key: &PublicKey,
    label: &str,
    kinds: BTreeSet<String>,
    not_after_ms: i64,
) -> Envelope {
    signed(
        root,
        SubjectRef::new(AUTHOR_KEY, key.id().to_hex()),
        ChainHead::default(),
        PartyPayload::AuthorKeyRegistered {
            key: key.clone(),
            label: label.to_string(),
            allowed_kinds: kinds,
            not_after_ms,
        },
    )
}

pub fn revoke_author(
    root: &SigningKey,
    key_id_hex: &str,
    head: ChainHead,
    reason: &str,
) -> Envelope {
    signed(
        root,
        SubjectRef::new(AUTHOR_KEY, key_id_hex),
        head,
        PartyPayload::AuthorKeyRevoked {
            reason: reason.to_string(),
        },
    )
}

pub fn register_device(
    author: &SigningKey,
    serial: &str,
    device_key: &PublicKey,
    attributes: Vec<(String, String)>,
) -> Envelope {
    signed(
        author,
        SubjectRef::new(DEVICE, device_key.id().to_hex()),
        ChainHead::default(),
        IdentityPayload::DeviceRegistered {
            serial: serial.to_string(),
            device_key: device_key.clone(),
            attributes,
            openpgp: None,
        },
    )
}

/// Registers a device with its OpenPGP certificate: the device key signs its
/// User ID binding and two revocations, the author certifies it. The event
/// commits to the revocations; the caller keeps them (0600) for a later report.
pub fn register_device_with_openpgp(
    author: &SigningKey,
    serial: &str,
    device: &SigningKey,
    attributes: Vec<(String, String)>,
) -> anyhow::Result<(Envelope, openpgp::RevocationEscrow)> {
    let time_ms = now_ms();
    let (signatures, escrow) = openpgp::sign_device(device, author, serial, &attributes, time_ms)?;
    let device_key = device.public_key();
    let envelope = signed_at(
        author,
        SubjectRef::new(DEVICE, device_key.id().to_hex()),
        ChainHead::default(),
        IdentityPayload::DeviceRegistered {
            serial: serial.to_string(),
            device_key,
            attributes,
            openpgp: Some(signatures),
        },
        time_ms,
    );
    Ok((envelope, escrow))
}

pub fn change_status(
    author: &SigningKey,
    device_id_hex: &str,
    head: ChainHead,
    status: DeviceStatus,
    reason: &str,
) -> Envelope {
    report_status(author, device_id_hex, head, status, reason, None)
}

/// A status report that may publish one of the device's escrowed revocations.
pub fn report_status(
    author: &SigningKey,
    device_id_hex: &str,
    head: ChainHead,
    status: DeviceStatus,
    reason: &str,
    openpgp_revocation: Option<Vec<u8>>,
) -> Envelope {
    signed(
        author,
        SubjectRef::new(DEVICE, device_id_hex),
        head,
        IdentityPayload::DeviceStatusChanged {
            status,
            reason: reason.to_string(),
            openpgp_revocation,
        },
    )
}

#[derive(Clone)]
pub struct Client {
    pub log: EventLogClient<Channel>,
    pub cluster: ClusterClient<Channel>,
    pub tlog: ics_proto::tlog_v1::transparency_log_client::TransparencyLogClient<Channel>,
    pub policy: ics_proto::policy_v1::policy_client::PolicyClient<Channel>,
    pub federation:
        ics_proto::federation_v1::federation_status_client::FederationStatusClient<Channel>,
    pub ca: ics_proto::ca_v1::certificate_authority_client::CertificateAuthorityClient<Channel>,
}

/// What a client trusts and shows over TLS: the party CA that must have
/// issued the node's certificate, and optionally a client certificate (an
/// operator's, for administration; any of the party's on a private ICS).
#[derive(Clone)]
pub struct ClientTls {
    ca_pem: Vec<u8>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ClientTls(client certificate: {})",
            self.identity.is_some()
        )
    }
}

fn read_file(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("read the {what} {}", path.display()))
}

impl ClientTls {
    /// The CA certificate file (PEM) and, optionally, a client certificate
    /// and its key (PEM).
    pub fn load(ca: &Path, client: Option<(&Path, &Path)>) -> anyhow::Result<ClientTls> {
        let ca_pem = read_file(ca, "CA certificate")?;
        let identity = match client {
            Some((cert, key)) => Some((
                read_file(cert, "client certificate")?,
                read_file(key, "client key")?,
            )),
            None => None,
        };
        Ok(ClientTls { ca_pem, identity })
    }

    /// Trust `ca_pem` and show `identity` (certificate and PKCS#8 key, PEM).
    pub fn from_pem(ca_pem: Vec<u8>, identity: Option<(Vec<u8>, Vec<u8>)>) -> ClientTls {
        ClientTls { ca_pem, identity }
    }

    /// A TLS directory (a node's `<data_dir>/tls`, or an `operator-NAME`
    /// directory of `icsd tls init`): its `ca.crt` and, when both are there,
    /// `operator.crt` and `operator.key`.
    pub fn from_dir(dir: &Path) -> anyhow::Result<ClientTls> {
        let (cert, key) = (dir.join("operator.crt"), dir.join("operator.key"));
        let client = (cert.exists() && key.exists()).then_some((cert.as_path(), key.as_path()));
        ClientTls::load(&dir.join("ca.crt"), client)
    }

    /// The same trust, showing another certificate and key (PEM).
    pub fn with_identity(&self, cert_pem: Vec<u8>, key_pem: Vec<u8>) -> ClientTls {
        ClientTls {
            ca_pem: self.ca_pem.clone(),
            identity: Some((cert_pem, key_pem)),
        }
    }

    /// The same trust without a client certificate.
    pub fn anonymous(&self) -> ClientTls {
        ClientTls {
            ca_pem: self.ca_pem.clone(),
            identity: None,
        }
    }

    /// A lazy gRPC channel to `address` (`HOST:PORT` or `https://HOST:PORT`)
    /// over TLS with this trust and certificate.
    pub fn channel(&self, address: &str) -> anyhow::Result<Channel> {
        let host_port = match address.split_once("://") {
            None => address,
            Some(("https", rest)) => rest,
            Some((scheme, _)) => anyhow::bail!(
                "server address {address:?}: nodes serve gRPC over TLS, give HOST:PORT or https://HOST:PORT, not {scheme}://"
            ),
        };
        Ok(Endpoint::from_shared(format!("https://{host_port}"))
            .with_context(|| format!("server address {address:?}"))?
            .tls_config(self.tonic_config())
            .context("TLS config")?
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .connect_lazy())
    }

    /// One HTTP/1.1 POST over TLS 1.3 to `address` (`HOST:PORT`; the
    /// server's certificate must chain to this CA and name HOST), with this
    /// client certificate: the status, the content type and the body (at
    /// most `max_body` bytes read).
    pub async fn https_post(
        &self,
        address: &str,
        path: &str,
        body: &[u8],
        max_body: usize,
    ) -> anyhow::Result<HttpAnswer> {
        self.https_request(address, "POST", path, None, body, max_body)
            .await
    }

    /// One HTTP/1.1 request over TLS 1.3 (see `https_post`), with a
    /// `Content-Type` when given.
    pub async fn https_request(
        &self,
        address: &str,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
        max_body: usize,
    ) -> anyhow::Result<HttpAnswer> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let host = address
            .rsplit_once(':')
            .map(|(h, _)| h)
            .with_context(|| format!("{address:?} is not HOST:PORT"))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&self.ca_pem) {
            roots
                .add(cert.context("the CA certificate's PEM")?)
                .context("the CA certificate")?;
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .context("TLS 1.3")?
            .with_root_certificates(roots);
        let mut config = match &self.identity {
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    CertificateDer::pem_slice_iter(cert)
                        .collect::<Result<Vec<_>, _>>()
                        .context("the client certificate's PEM")?,
                    PrivateKeyDer::from_pem_slice(key).context("the client key's PEM")?,
                )
                .context("the client certificate and key")?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let name = ServerName::try_from(host.trim_matches(['[', ']']).to_string())
            .with_context(|| format!("{host:?} is not a server name"))?;
        let tcp = tokio::time::timeout(
            Duration::from_secs(3),
            tokio::net::TcpStream::connect(address),
        )
        .await
        .with_context(|| format!("connect to {address}: timed out"))?
        .with_context(|| format!("connect to {address}"))?;
        let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
            .connect(name, tcp)
            .await
            .with_context(|| format!("TLS handshake with {address}"))?;
        let typed = content_type
            .map(|t| format!("Content-Type: {t}\r\n"))
            .unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {address}\r\n{typed}Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        tls.write_all(head.as_bytes()).await?;
        tls.write_all(body).await?;
        tls.flush().await?;
        let mut out = Vec::new();
        tokio::time::timeout(
            Duration::from_secs(30),
            (&mut tls)
                .take(max_body as u64 + 4096)
                .read_to_end(&mut out),
        )
        .await
        .context("the answer: timed out")?
        .context("read the answer")?;
        HttpAnswer::parse(&out)
    }

    fn tonic_config(&self) -> ClientTlsConfig {
        let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&self.ca_pem));
        if let Some((cert, key)) = &self.identity {
            config = config.identity(Identity::from_pem(cert, key));
        }
        config
    }
}

/// An HTTP answer, read whole.
#[derive(Debug, Clone)]
pub struct HttpAnswer {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl HttpAnswer {
    fn parse(raw: &[u8]) -> anyhow::Result<HttpAnswer> {
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .context("an HTTP answer without the end of its headers")?;
        let head = std::str::from_utf8(&raw[..split]).context("HTTP headers not UTF-8")?;
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .context("an HTTP answer without a status")?;
        let content_type = lines
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default();
        Ok(HttpAnswer {
            status,
            content_type,
            body: raw[split + 4..].to_vec(),
        })
    }
}

impl Client {
    /// Connects lazily over TLS (`HOST:PORT`; the node's certificate must
    /// name HOST): the first call reports an unreachable node.
    pub fn connect(address: &str, tls: &ClientTls) -> anyhow::Result<Client> {
        let channel = tls.channel(address)?;
        Ok(Client {
            log: EventLogClient::new(channel.clone())
                .max_decoding_message_size(8 << 20)
                .max_encoding_message_size(8 << 20),
            cluster: ClusterClient::new(channel.clone()),
            tlog: ics_proto::tlog_v1::transparency_log_client::TransparencyLogClient::new(
                channel.clone(),
            ),
            policy: ics_proto::policy_v1::policy_client::PolicyClient::new(channel.clone()),
            federation:
                ics_proto::federation_v1::federation_status_client::FederationStatusClient::new(
                    channel.clone(),
                ),
            ca: ics_proto::ca_v1::certificate_authority_client::CertificateAuthorityClient::new(
                channel,
            ),
        })
    }

    pub async fn append(
        &mut self,
        events: Vec<Envelope>,
    ) -> Result<Vec<pb::AppendedEvent>, Status> {
        self.append_in("", events).await
    }

    /// Appends into `namespace`: another party's records this party
    /// imports (one event, about that party's subject, under its grant);
    /// empty for this party's own.
    pub async fn append_in(
        &mut self,
        namespace: &str,
        events: Vec<Envelope>,
    ) -> Result<Vec<pb::AppendedEvent>, Status> {
        let req = pb::AppendRequest {
            events: events.iter().map(codec::envelope_to_pb).collect(),
            namespace: namespace.to_string(),
        };
        Ok(self.log.append(req).await?.into_inner().events)
    }

    pub async fn subject(&mut self, subject: &SubjectRef) -> Result<pb::SubjectState, Status> {
        let req = pb::GetSubjectRequest {
            subject: Some(codec::subject_to_pb(subject)),
            consistency: pb::ReadConsistency::Linearizable as i32,
        };
        Ok(self.log.get_subject(req).await?.into_inner())
    }

    /// The position after the subject's last event.
    pub async fn chain_head(&mut self, subject: &SubjectRef) -> Result<ChainHead, Status> {
        let s = self.subject(subject).await?;
        Ok(ChainHead {
            sequence: s.next_sequence,
            previous: EventId::from_slice(&s.last_event_id),
        })
    }

    /// Signs `payload` as the subject's next event and appends it.
    pub async fn append_next(
        &mut self,
        signer: &SigningKey,
        subject: &SubjectRef,
        payload: impl Payload,
    ) -> Result<Vec<pb::AppendedEvent>, Status> {
        let head = self.chain_head(subject).await?;
        self.append(vec![signed(signer, subject.clone(), head, payload)])
            .await
    }

    /// The subject's OpenPGP form (device certificate or code signature).
    pub async fn export_openpgp(
        &mut self,
        subject: &SubjectRef,
    ) -> Result<pb::OpenPgpExport, Status> {
        let req = pb::GetSubjectRequest {
            subject: Some(codec::subject_to_pb(subject)),
            consistency: pb::ReadConsistency::Linearizable as i32,
        };
        Ok(self.log.export_open_pgp(req).await?.into_inner())
    }

    /// Signs `payload` (built with the event time) as the subject's next
    /// event and appends it; for payloads carrying OpenPGP signatures.
    pub async fn append_next_at(
        &mut self,
        signer: &SigningKey,
        subject: &SubjectRef,
        make: impl FnOnce(i64) -> anyhow::Result<IdentityPayload>,
    ) -> anyhow::Result<Vec<pb::AppendedEvent>> {
        let head = self.chain_head(subject).await?;
        let time_ms = now_ms();
        let payload = make(time_ms)?;
        Ok(self
            .append(vec![signed_at(
                signer,
                subject.clone(),
                head,
                payload,
                time_ms,
            )])
            .await?)
    }

    pub async fn status(&mut self) -> Result<pb::StatusResponse, Status> {
        Ok(self
            .cluster
            .status(pb::StatusRequest {})
            .await?
            .into_inner())
    }
}

/// Releases code with its OpenPGP standalone signature by the developer key.
pub fn release_code(author: &SigningKey, mut identity: CodeIdentity) -> anyhow::Result<Envelope> {
    let time_ms = now_ms();
    identity.openpgp_signature = Some(openpgp::sign_code(author, &identity, time_ms)?);
    Ok(signed_at(
        author,
        SubjectRef::new(CODE, hex::encode(identity.blake3)),
        ChainHead::default(),
        IdentityPayload::CodeReleased(identity),
        time_ms,
    ))
}

pub fn change_code_status(
    author: &SigningKey,
    code_id_hex: &str,
    head: ChainHead,
    status: CodeStatus,
    reason: &str,
) -> Envelope {
    signed(
        author,
        SubjectRef::new(CODE, code_id_hex),
        head,
        IdentityPayload::CodeStatusChanged {
            status,
            reason: reason.to_string(),
        },
    )
}

pub fn register_service(
    author: &SigningKey,
    name: &str,
    service_key: &PublicKey,
    endpoints: Vec<String>,
    owner: &str,
) -> Envelope {
    signed(
        author,
        SubjectRef::new(SERVICE, service_key.id().to_hex()),
        ChainHead::default(),
        IdentityPayload::ServiceRegistered {
            name: name.to_string(),
            service_key: service_key.clone(),
            endpoints,
            owner: owner.to_string(),
        },
    )
}

/// Replaces a device's or service's key; signed by the author and by the new
/// key (proof of possession).
pub fn rotate_key(
    author: &SigningKey,
    subject: SubjectRef,
    head: ChainHead,
    new_key: &SigningKey,
    reason: &str,
    openpgp_revocation: Option<Vec<u8>>,
) -> Envelope {
    let payload = IdentityPayload::KeyRotated {
        new_key: new_key.public_key(),
        reason: reason.to_string(),
        openpgp_revocation,
    };
    ics_kernel::envelope::sign(
        &body(author, subject, head, &payload, now_ms()),
        &[author, new_key],
    )
}

/// Checks a subject's history as a client should, trusting nothing of the
/// node: each event's id is the blake3 of its body, the chain links in order
/// from sequence 0, and every signature verifies against the key it names
/// (`keys`, as `GetKeys` returns them, or a key the event brings in).
pub struct HistoryChecker {
    keys: KeyRing,
    head: ChainHead,
}

/// The keys a log names (`GetKeys`), to check stored events with: each
/// event's id, and every signature on it by a key the log names or the
/// event introduces.
pub struct KeyRing {
    keys: std::collections::BTreeMap<ics_kernel::KeyId, PublicKey>,
}

impl KeyRing {
    pub fn new(keys: &[pb::KeyInfo]) -> anyhow::Result<Self> {
        let mut map = std::collections::BTreeMap::new();
        for k in keys {
            let pk = k
                .public_key
                .clone()
                .context("a key without its public key")?;
            let public = PublicKey::new(
                codec::algorithm_from_pb(pk.algorithm, "public_key.algorithm")?,
                pk.key,
            )?;
            anyhow::ensure!(
                public.id().0.as_slice() == k.key_id.as_slice(),
                "key {} does not hash to its id",
                hex::encode(&k.key_id)
            );
            map.insert(public.id(), public);
        }
        Ok(KeyRing { keys: map })
    }

    /// Checks a stored event's id and signatures; returns it parsed.
    pub fn check(&self, stored: &pb::StoredEvent) -> anyhow::Result<ics_kernel::Event> {
        let env = codec::envelope_from_pb(stored.event.clone().unwrap_or_default())?;
        anyhow::ensure!(
            stored.event_id == EventId::of_body(&env.body).0.to_vec(),
            "event at index {} does not hash to its id",
            stored.index
        );
        let event = codec::parse_event(env, &ics_kernel::EventLimits::unbounded())?;
        let body = &event.body;
        let introduced = capabilities::rules().introduced_keys(&event);
        anyhow::ensure!(
            event
                .envelope
                .signatures
                .iter()
                .any(|s| s.key_id == body.author),
            "event at index {} is not signed by its author",
            stored.index
        );
        for sig in &event.envelope.signatures {
            let key = self
                .keys
                .get(&sig.key_id)
                .or_else(|| introduced.iter().copied().find(|k| k.id() == sig.key_id))
                .with_context(|| {
                    format!("event at index {}: no key {}", stored.index, sig.key_id)
                })?;
            anyhow::ensure!(
                key.verify_event(&event.envelope.body, &sig.bytes),
                "event at index {}: the signature by {} does not verify",
                stored.index,
                sig.key_id
            );
        }
        Ok(event)
    }
}

impl HistoryChecker {
    pub fn new(keys: &[pb::KeyInfo]) -> anyhow::Result<Self> {
        Ok(HistoryChecker {
            keys: KeyRing::new(keys)?,
            head: ChainHead::default(),
        })
    }

    /// Checks the next stored event of the history.
    pub fn check(&mut self, stored: &pb::StoredEvent) -> anyhow::Result<()> {
        let event = self.keys.check(stored)?;
        let body = &event.body;
        anyhow::ensure!(
            body.sequence == self.head.sequence && body.previous == self.head.previous,
            "the chain is broken at index {}",
            stored.index
        );
        self.head = ChainHead {
            sequence: body.sequence + 1,
            previous: Some(event.id),
        };
        Ok(())
    }
}

impl Client {
    /// Every key that signs for the party or one it recognized (all pages).
    pub async fn keys(&mut self) -> Result<Vec<pb::KeyInfo>, Status> {
        let mut keys = Vec::new();
        let mut token = String::new();
        loop {
            let page = self
                .log
                .get_keys(pb::GetKeysRequest {
                    key_id: Vec::new(),
                    page_size: 1000,
                    page_token: token,
                    consistency: pb::ReadConsistency::Linearizable as i32,
                })
                .await?
                .into_inner();
            keys.extend(page.keys);
            if page.next_page_token.is_empty() {
                return Ok(keys);
            }
            token = page.next_page_token;
        }
    }
}
