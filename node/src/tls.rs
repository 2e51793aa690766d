//! The node's TLS material and its record in the log.
//!
//! A party's TLS PKI lives in each node's `tls/` directory: the party CA
//! (`ca.crt`, and its key `ca.key`, a 0600 key file), this node's certificate
//! (`node.crt`, `node.key`: PEM, PKCS#8, 0600) and, where the PKI was
//! created, the first operator's (`operator.crt`, `operator.key`). Every node
//! holds the CA key, so each renews its own short-lived certificate without a
//! round trip; a node is trusted with the whole log anyway (any voter can
//! append), so the CA key adds no power a node's compromise would not give.
//!
//! A single node creates the material on its first start. A cluster's is
//! made once by `icsd tls init` (one directory per node) before the nodes
//! start, since the nodes need it to talk to each other before the log exists.
//! Once the log runs, the node holding the party root key binds the CA to the
//! party (`author-key-registered` for the CA key, then `tls-ca-bound`, both
//! by the root key), and every node records its own certificates
//! (`tls-cert-issued`, by the CA key) and renews them at two thirds of their
//! lifetime.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use ics_kernel::authority::{AUTHOR_KEY, PartyPayload};
use ics_kernel::{Algorithm, SigningKey, SubjectRef};
use ics_pki::cert::{Issuer, issue_ca};
use ics_pki::payload::{CA_KEY_KINDS, PkiPayload};
use ics_pki::{Holder, LeafNames, ParsedCert, Pki, PkiState, TLS_CA, TLS_CERT};
use ics_tlog::payload::LOG_KEY_KINDS;
use ics_tlog::{TLOG_KEY, TlogPayload, log_origin};
use p256::pkcs8::{EncodePrivateKey, LineEnding};

use crate::config::Config;
use crate::host::Node;
pub(crate) use crate::tls_dir::write_atomic;
pub use crate::tls_dir::{TlsDir, pem, read_cert};

/// How long the party's TLS CA is valid.
pub const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How often a node checks its certificates (renewal, recording), at most.
const MAINTAIN_EVERY: Duration = Duration::from_secs(30);

/// The transparency log key in `dir`, if the material has one; it must be
/// an Ed25519 key.
pub fn load_log_key(dir: &TlsDir) -> anyhow::Result<Option<SigningKey>> {
    let path = dir.log_key();
    if !path.exists() {
        return Ok(None);
    }
    let key = crate::keyfile::read(&path)?;
    if key.algorithm() != Algorithm::Ed25519 {
        bail!("{} must hold an Ed25519 key", path.display());
    }
    Ok(Some(key))
}

fn p256_of(key: &SigningKey) -> anyhow::Result<&p256::ecdsa::SigningKey> {
    match key {
        SigningKey::P256(k) => Ok(k),
        SigningKey::Ed25519(_) => bail!("the TLS CA key must be ECDSA P-256"),
    }
}

/// The party CA in a TLS directory: certificate and key, and the party's
/// transparency log key kept with it (absent from material made before the
/// log had one).
pub struct Ca {
    pub cert: ParsedCert,
    pub key: SigningKey,
    pub log_key: Option<SigningKey>,
}

impl Ca {
    pub fn load(dir: &TlsDir) -> anyhow::Result<Ca> {
        let cert = ParsedCert::parse(&read_cert(&dir.ca_cert())?)
            .map_err(|e| anyhow::anyhow!("{}: {e}", dir.ca_cert().display()))?;
        let key = crate::keyfile::read(&dir.ca_key())?;
        if p256_of(&key)?
            .verifying_key()
            .to_sec1_point(false)
            .as_bytes()
            != cert.public_key
        {
            bail!(
                "{} does not hold the key of {}",
                dir.ca_key().display(),
                dir.ca_cert().display()
            );
        }
        let log_key = load_log_key(dir)?;
        Ok(Ca { cert, key, log_key })
    }

    /// A new CA for `party`, written to `dir` (which must not hold one).
    pub fn create(dir: &TlsDir, party: &str, now_ms: i64) -> anyhow::Result<Ca> {
        std::fs::create_dir_all(&dir.0).with_context(|| format!("create {}", dir.0.display()))?;
        let key = SigningKey::generate(Algorithm::EcdsaP256Sha256);
        let der = issue_ca(party, p256_of(&key)?, now_ms, CA_LIFETIME)?;
        crate::keyfile::write(&dir.ca_key(), &key)?;
        let log_key = SigningKey::generate(Algorithm::Ed25519);
        crate::keyfile::write(&dir.log_key(), &log_key)?;
        write_atomic(&dir.ca_cert(), pem(&der).as_bytes(), 0o644)?;
        Ok(Ca {
            cert: ParsedCert::parse(&der)?,
            key,
            log_key: Some(log_key),
        })
    }

    /// Copies this CA (certificate and key) into another directory.
    pub fn copy_to(&self, dir: &TlsDir) -> anyhow::Result<()> {
        std::fs::create_dir_all(&dir.0).with_context(|| format!("create {}", dir.0.display()))?;
        crate::keyfile::write(&dir.ca_key(), &self.key)?;
        if let Some(k) = &self.log_key {
            crate::keyfile::write(&dir.log_key(), k)?;
        }
        write_atomic(&dir.ca_cert(), pem(&self.cert.der).as_bytes(), 0o644)
    }

    /// Issues a certificate for a fresh key and writes both to `dir`,
    /// replacing what the holder had there. Returns the certificate.
    pub fn issue_into(
        &self,
        party: &str,
        dir: &TlsDir,
        holder: &Holder,
        names: &LeafNames,
        now_ms: i64,
        lifetime: Duration,
    ) -> anyhow::Result<ParsedCert> {
        std::fs::create_dir_all(&dir.0).with_context(|| format!("create {}", dir.0.display()))?;
        let key = SigningKey::generate(Algorithm::EcdsaP256Sha256);
        let p256_key = p256_of(&key)?;
        let der = Issuer {
            party,
            ca_cert: &self.cert,
            ca_key: p256_of(&self.key)?,
        }
        .issue_leaf(holder, names, p256_key.verifying_key(), now_ms, lifetime)?;
        let key_pem = p256::SecretKey::from(p256_key.as_nonzero_scalar())
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| anyhow::anyhow!("encode the key: {e}"))?;
        // Key first: a certificate on disk always has its key beside it.
        write_atomic(&dir.key(holder), key_pem.as_bytes(), 0o600)?;
        write_atomic(&dir.cert(holder), pem(&der).as_bytes(), 0o644)?;
        Ok(ParsedCert::parse(&der)?)
    }
}

/// The names a node's certificate carries besides its holder URI: its
/// advertised host, the host it listens on, and the configured extra names.
pub fn node_names(config: &Config) -> LeafNames {
    let mut names = LeafNames::default();
    let mut add = |host: &str| {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            if !ip.is_unspecified() && !names.ip_addresses.contains(&ip) {
                names.ip_addresses.push(ip);
            }
        } else if !host.is_empty() && !names.dns_names.iter().any(|n| n == host) {
            names.dns_names.push(host.to_string());
        }
    };
    let advertised = config.advertise_address();
    if let Some((host, _)) = advertised.rsplit_once(':') {
        add(host);
    }
    add(&config.listen.ip().to_string());
    if config.listen.ip().is_loopback() {
        add("localhost");
    }
    for n in &config.tls.names {
        add(n);
    }
    names
}

/// The current certificate of `holder` in `dir`, if any.
pub fn load_cert(dir: &TlsDir, holder: &Holder) -> anyhow::Result<Option<ParsedCert>> {
    let path = dir.cert(holder);
    if !path.exists() {
        return Ok(None);
    }
    let cert = ParsedCert::parse(&read_cert(&path)?)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(Some(cert))
}

/// Makes sure this node has its TLS material before it starts: creates the
/// party's PKI on a single node's first start, and checks what it finds
/// (the CA's key, this node's certificate names this node and chains to the
/// CA). A node of a cluster without material runs without it, warning.
pub fn prepare(config: &Config, now_ms: i64) -> anyhow::Result<()> {
    let dir = TlsDir::of(config);
    let me = Holder::Node(config.node_id);
    let lifetime = config.tls.cert_lifetime();
    if !dir.exists() {
        if !config.peers.is_empty() {
            tracing::warn!(
                dir = %dir.0.display(),
                "no TLS material for this cluster node; `icsd tls init` makes it for every node"
            );
            return Ok(());
        }
        let ca = Ca::create(&dir, &config.party, now_ms)?;
        ca.issue_into(
            &config.party,
            &dir,
            &me,
            &node_names(config),
            now_ms,
            lifetime,
        )?;
        let operator = Holder::Operator(DEFAULT_OPERATOR.to_string());
        ca.issue_into(
            &config.party,
            &dir,
            &operator,
            &LeafNames::default(),
            now_ms,
            lifetime,
        )?;
        tracing::info!(
            dir = %dir.0.display(),
            ca_sha256 = %ca.cert.fingerprint_hex(),
            "created the party's TLS CA, this node's certificate and an operator certificate"
        );
        return Ok(());
    }
    let ca = Ca::load(&dir)?;
    let cert =
        load_cert(&dir, &me)?.with_context(|| format!("{} is missing", dir.cert(&me).display()))?;
    check_leaf(&ca, &cert, &config.party, &me)
        .with_context(|| format!("{}", dir.cert(&me).display()))?;
    Ok(())
}

/// The operator a party's first PKI issues a certificate to.
pub const DEFAULT_OPERATOR: &str = "admin";

fn check_leaf(ca: &Ca, cert: &ParsedCert, party: &str, holder: &Holder) -> anyhow::Result<()> {
    if cert.issuer != ca.cert.subject || !cert.signed_by(&ca.cert.public_key) {
        bail!("not issued by the CA in ca.crt");
    }
    let (p, h) = cert.holder()?;
    if p != party || &h != holder {
        bail!("names {h} of party {p:?}, not {holder} of {party:?}");
    }
    Ok(())
}

/// Whether a certificate is due for renewal at `now_ms`: past two thirds of
/// its lifetime.
pub fn due_for_renewal(cert: &ParsedCert, now_ms: i64) -> bool {
    let lifetime = cert.not_after_ms - cert.not_before_ms;
    now_ms >= cert.not_before_ms + lifetime / 3 * 2
}

/// `icsd tls init`: a party's CA and a certificate for every node (and
/// operator), one directory each under `out`: `node-<id>/`, `operator-<name>/`.
pub fn init_party(
    party: &str,
    out: &Path,
    nodes: &[(u64, LeafNames)],
    operators: &[String],
    now_ms: i64,
    lifetime: Duration,
) -> anyhow::Result<Ca> {
    let ca_dir = TlsDir(out.join("ca"));
    if ca_dir.exists() {
        bail!("{} already holds a CA", ca_dir.0.display());
    }
    let ca = Ca::create(&ca_dir, party, now_ms)?;
    for (id, names) in nodes {
        let dir = TlsDir(out.join(format!("node-{id}")));
        ca.copy_to(&dir)?;
        ca.issue_into(party, &dir, &Holder::Node(*id), names, now_ms, lifetime)?;
    }
    for name in operators {
        let dir = TlsDir(out.join(format!("operator-{name}")));
        std::fs::create_dir_all(&dir.0)?;
        write_atomic(&dir.ca_cert(), pem(&ca.cert.der).as_bytes(), 0o644)?;
        ca.issue_into(
            party,
            &dir,
            &Holder::Operator(name.clone()),
            &LeafNames::default(),
            now_ms,
            lifetime,
        )?;
    }
    Ok(ca)
}

/// One line per certificate in `dir`: file, holder, fingerprint, expiry.
pub fn status(dir: &TlsDir, now_ms: i64) -> anyhow::Result<Vec<String>> {
    if !dir.exists() {
        bail!("{} holds no TLS material", dir.0.display());
    }
    let mut lines = Vec::new();
    let mut show = |file: &Path, cert: &ParsedCert| {
        let holder = match cert.holder() {
            Ok((party, holder)) => format!("{holder} of {party}"),
            Err(_) if cert.is_ca => "CA".to_string(),
            Err(e) => format!("({e})"),
        };
        let left_h = (cert.not_after_ms - now_ms) / 3_600_000;
        lines.push(format!(
            "{}\t{holder}\tsha256:{}\tnot_after_ms={}\t{}",
            file.display(),
            cert.fingerprint_hex(),
            cert.not_after_ms,
            if left_h < 0 {
                "EXPIRED".to_string()
            } else {
                format!("expires in {}d {}h", left_h / 24, left_h % 24)
            },
        ));
    };
    let ca = ParsedCert::parse(&read_cert(&dir.ca_cert())?)?;
    show(&dir.ca_cert(), &ca);
    for holder in [Holder::Node(0), Holder::Operator(String::new())] {
        let path = dir.cert(&holder);
        if path.exists() {
            show(&path, &ParsedCert::parse(&read_cert(&path)?)?);
        }
    }
    Ok(lines)
}

/// `icsd tls add-node`: a certificate for a node joining the cluster, from
/// the CA in `ca_dir` (the `ca/` of `icsd tls init`, or a node's TLS
/// directory), written with a copy of the CA to `out`.
pub fn add_node(
    ca_dir: &Path,
    party: &str,
    id: u64,
    names: &LeafNames,
    out: &Path,
    now_ms: i64,
    lifetime: Duration,
) -> anyhow::Result<ParsedCert> {
    add_holder(
        ca_dir,
        party,
        &Holder::Node(id),
        names,
        out,
        now_ms,
        lifetime,
    )
}

/// Issues a certificate into a new directory `out`: a node's gets the CA
/// certificate and key beside it (every node renews itself), an operator's
/// the CA certificate only.
pub fn add_holder(
    ca_dir: &Path,
    party: &str,
    holder: &Holder,
    names: &LeafNames,
    out: &Path,
    now_ms: i64,
    lifetime: Duration,
) -> anyhow::Result<ParsedCert> {
    let ca = Ca::load(&TlsDir(ca_dir.to_path_buf()))?;
    let dir = TlsDir(out.to_path_buf());
    if dir.exists() {
        bail!("{} already holds TLS material", out.display());
    }
    match holder {
        Holder::Node(_) => ca.copy_to(&dir)?,
        Holder::Operator(_) => {
            std::fs::create_dir_all(&dir.0)?;
            write_atomic(&dir.ca_cert(), pem(&ca.cert.der).as_bytes(), 0o644)?;
        }
    }
    ca.issue_into(party, &dir, holder, names, now_ms, lifetime)
}

/// Keeps this node's TLS record current, forever: binds the CA to the party
/// (where the root key is), records this node's certificates, renews them.
pub async fn maintain(node: Arc<Node>) {
    let dir = TlsDir::of(&node.config);
    if !dir.exists() {
        return;
    }
    let every = MAINTAIN_EVERY.min(node.config.tls.cert_lifetime() / 10);
    let mut warned = false;
    loop {
        // Until the log holds the record, look again soon.
        let pause = match maintain_once(&node, &dir, &mut warned).await {
            Ok(Upkeep::Current) => every,
            Ok(Upkeep::Waiting) => PENDING_RETRY,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "TLS upkeep did not complete; retrying");
                PENDING_RETRY
            }
        };
        tokio::time::sleep(pause).await;
    }
}

/// How soon upkeep looks again while the log does not hold the record yet.
const PENDING_RETRY: Duration = Duration::from_secs(1);

enum Upkeep {
    /// The log records the CA and this node's certificates.
    Current,
    /// No party or leader yet, or the CA awaits the binding by the node
    /// holding the root key (a poll of the applied state: cheap).
    Waiting,
}

async fn maintain_once(
    node: &Arc<Node>,
    dir: &TlsDir,
    warned: &mut bool,
) -> anyhow::Result<Upkeep> {
    let config = &node.config;
    let ca = Ca::load(dir)?;
    let now = ics_client::now_ms();
    let me = Holder::Node(config.node_id);
    let mut cert = load_cert(dir, &me)?.context("this node's certificate is missing")?;
    if due_for_renewal(&cert, now) {
        // The names it was issued with stay (e.g. `tls init --node 1=host,ip`),
        // beside what this node's config names now.
        let mut names = node_names(config);
        names.merge(&cert.names);
        cert = ca.issue_into(
            &config.party,
            dir,
            &me,
            &names,
            now,
            config.tls.cert_lifetime(),
        )?;
        tracing::info!(sha256 = %cert.fingerprint_hex(), not_after_ms = cert.not_after_ms, "renewed this node's TLS certificate");
        // New handshakes, as server and as client, present it from now on.
        node.node_tls.reload()?;
    }
    node.metrics
        .tls_expiry(cert.not_after_ms, ca.cert.not_after_ms);

    let operator = load_cert(dir, &Holder::Operator(DEFAULT_OPERATOR.into()))?;
    let (bound, ca_key_registered, log_key_bound, log_key_registered, unrecorded) = {
        let state = node.shared.read();
        let p = &state.projection;
        if p.party().is_none() || node.leader().is_none() {
            return Ok(Upkeep::Waiting);
        }
        let pki = p.capability::<Pki>();
        let ca_subject = SubjectRef::new(TLS_CA, ca.key.key_id().to_hex());
        let unrecorded: Vec<&ParsedCert> = std::iter::once(&cert)
            .chain(operator.as_ref())
            .filter(|c| ics_pki::query::cert_by_fingerprint(pki, &c.fingerprint_hex()).is_none())
            .collect();
        let log_key_id = ca.log_key.as_ref().map(|k| k.key_id());
        (
            matches!(pki.subject(&ca_subject), Some(PkiState::Ca(_))),
            p.key(&ca.key.key_id()).is_some(),
            log_key_id.is_some_and(|id| {
                p.capability::<ics_tlog::Tlog>()
                    .subject(&SubjectRef::new(TLOG_KEY, id.to_hex()))
                    .is_some()
            }),
            log_key_id.is_some_and(|id| p.key(&id).is_some()),
            unrecorded,
        )
    };
    if !bound {
        let root_path = config.data_dir.join("root.key");
        if !root_path.exists() {
            if !*warned {
                tracing::warn!(
                    "the party's TLS CA is not bound in the log yet; the node holding the root key binds it"
                );
                *warned = true;
            }
            return Ok(Upkeep::Waiting);
        }
        let root = crate::keyfile::read(&root_path)?;
        let mut events = Vec::new();
        if !ca_key_registered {
            events.push(crate::client::signed(
                &root,
                SubjectRef::new(AUTHOR_KEY, ca.key.key_id().to_hex()),
                crate::client::ChainHead::default(),
                PartyPayload::AuthorKeyRegistered {
                    key: ca.key.public_key(),
                    label: "party TLS CA".into(),
                    allowed_kinds: CA_KEY_KINDS.iter().map(|k| k.to_string()).collect(),
                    not_after_ms: ca.cert.not_after_ms,
                },
            ));
        }
        events.push(crate::client::signed(
            &root,
            SubjectRef::new(TLS_CA, ca.key.key_id().to_hex()),
            crate::client::ChainHead::default(),
            PkiPayload::TlsCaBound {
                certificate: ca.cert.der.clone(),
            },
        ));
        // The log key kept with the CA is bound with it, in one batch.
        if let Some(log_key) = ca.log_key.as_ref().filter(|_| !log_key_bound) {
            events.extend(log_key_binding(
                &root,
                log_key,
                &config.party,
                log_key_registered,
                ca.cert.not_after_ms,
            ));
        }
        node.append_upkeep(events).await?;
        tracing::info!(sha256 = %ca.cert.fingerprint_hex(), "bound the party's TLS CA in the log");
    }
    let events: Vec<_> = unrecorded
        .into_iter()
        .map(|c| {
            crate::client::signed(
                &ca.key,
                SubjectRef::new(TLS_CERT, c.serial.clone()),
                crate::client::ChainHead::default(),
                PkiPayload::TlsCertIssued {
                    certificate: c.der.clone(),
                },
            )
        })
        .collect();
    if !events.is_empty() {
        let n = events.len();
        node.append_upkeep(events).await?;
        tracing::info!(certificates = n, "recorded TLS certificates in the log");
    }
    Ok(Upkeep::Current)
}

/// The events by which the root key makes `key` the party's log key:
/// its registration as an author key of checkpoints (unless `registered`),
/// then the binding under the party's origin.
pub fn log_key_binding(
    root: &SigningKey,
    key: &SigningKey,
    party: &str,
    registered: bool,
    not_after_ms: i64,
) -> Vec<ics_kernel::Envelope> {
    let key_id = key.key_id();
    let mut events = Vec::new();
    if !registered {
        events.push(crate::client::signed(
            root,
            SubjectRef::new(AUTHOR_KEY, key_id.to_hex()),
            crate::client::ChainHead::default(),
            PartyPayload::AuthorKeyRegistered {
                key: key.public_key(),
                label: "party transparency log".into(),
                allowed_kinds: LOG_KEY_KINDS
                    .iter()
                    .chain(&ics_federation::SYNC_KINDS)
                    .map(|k| k.to_string())
                    .collect(),
                not_after_ms,
            },
        ));
    }
    events.push(crate::client::signed(
        root,
        SubjectRef::new(TLOG_KEY, key_id.to_hex()),
        crate::client::ChainHead::default(),
        TlogPayload::LogKeyBound {
            origin: log_origin(party),
            public_key: key.public_key().bytes().to_vec(),
        },
    ));
    events
}

/// Revokes the current certificates of node `id` (a node removed from the
/// cluster), signed by the CA key this node holds. Returns how many.
pub async fn revoke_node(node: &Arc<Node>, id: u64) -> anyhow::Result<usize> {
    let dir = TlsDir::of(&node.config);
    let ca = Ca::load(&dir)?;
    let serials: Vec<String> = {
        let state = node.shared.read();
        let pki = state.projection.capability::<Pki>();
        ics_pki::query::certs_of(pki, &Holder::Node(id))
            .into_iter()
            .filter(|(_, c)| c.revoked.is_none())
            .map(|(serial, _)| serial.to_string())
            .collect()
    };
    let mut client_events = Vec::new();
    for serial in &serials {
        let subject = SubjectRef::new(TLS_CERT, serial.clone());
        let head = {
            let state = node.shared.read();
            let entry = state
                .projection
                .entry(&subject)
                .context("a recorded certificate")?;
            crate::client::ChainHead {
                sequence: entry.next_sequence,
                previous: Some(entry.last_event),
            }
        };
        client_events.push(crate::client::signed(
            &ca.key,
            subject,
            head,
            PkiPayload::TlsCertRevoked {
                reason: format!("node {id} removed from the cluster"),
            },
        ));
    }
    if !client_events.is_empty() {
        node.append_upkeep(client_events).await?;
    }
    Ok(serials.len())
}
