//! The device CA's material on a node: the issuing CA it signs with and its
//! root, and the CRL it keeps made. The log's side (binding, revocation on a
//! stolen report) is `ca_upkeep.rs`; the services are in `edge/`.
//!
//! The material lives in the node's TLS directory beside the party CA:
//! `device-root.crt`, `device-ca.crt` and `device-ca.key` (0600), and, only
//! where the hierarchy was made, `device-root.key` (the operator moves it
//! offline: it signs nothing but issuing CAs). Every node of a cluster holds
//! the issuing key, as it holds the party TLS CA key: any node signs what
//! enrollment asks of it, and any node serves the CRL and OCSP — the CRL is
//! deterministic, so all nodes serve the same bytes. A node is trusted with
//! the whole log anyway; the key adds no power its compromise would not
//! give. A hardware key (PKCS#11) would replace the key file behind
//! `IssuingCa::key`, nothing else.

use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::body::Bytes;
use ics_ca::crl::{CrlEntry, CrlTiming};
use ics_ca::ocsp::IssuerHashes;
use ics_ca::{DeviceCa, Purpose};
use ics_kernel::{Algorithm, Role, SigningKey};
use ics_pki::ParsedCert;

use crate::config::Config;
use crate::tls_dir::{TlsDir, pem, read_cert, write_atomic};

/// How long a device root CA is valid.
pub const ROOT_LIFETIME: Duration = Duration::from_secs(25 * 365 * 86_400);
/// How long an issuing CA is valid.
pub const ISSUING_LIFETIME: Duration = Duration::from_secs(20 * 365 * 86_400);

/// The CA a role runs: factory certificates at manufacturers, operational
/// ones at maintainers and gateways; none elsewhere.
pub fn purpose_of(role: Role) -> Option<Purpose> {
    match role {
        Role::Manufacturer => Some(Purpose::Factory),
        Role::Maintenance | Role::Infield => Some(Purpose::Operational),
        Role::Developer | Role::Certifier => None,
    }
}

fn root_cert_path(dir: &TlsDir) -> std::path::PathBuf {
    dir.0.join("device-root.crt")
}
fn root_key_path(dir: &TlsDir) -> std::path::PathBuf {
    dir.0.join("device-root.key")
}
fn issuing_cert_path(dir: &TlsDir) -> std::path::PathBuf {
    dir.0.join("device-ca.crt")
}
fn issuing_key_path(dir: &TlsDir) -> std::path::PathBuf {
    dir.0.join("device-ca.key")
}

pub(crate) fn p256_of(key: &SigningKey) -> anyhow::Result<&p256::ecdsa::SigningKey> {
    match key {
        SigningKey::P256(k) => Ok(k),
        SigningKey::Ed25519(_) => bail!("a device CA key is P-256"),
    }
}

/// The issuing CA this node signs with, its root, and what the status
/// services keep between requests.
pub struct IssuingCa {
    pub purpose: Purpose,
    pub root: ParsedCert,
    pub cert: ParsedCert,
    pub key: SigningKey,
    /// The CA's id in the log: its key id, hex.
    pub id: String,
    pub hashes: IssuerHashes,
    /// The last CRL made: its number and bytes (the same until the period
    /// or the revocations change).
    crl: Mutex<Option<(u64, Bytes)>>,
}

impl IssuingCa {
    /// Loads the material in `dir`, if there is any; an issuing key that is
    /// not its certificate's, or a CA not signed by its root, stops the node.
    pub fn load(dir: &TlsDir, purpose: Purpose) -> anyhow::Result<Option<IssuingCa>> {
        if !issuing_cert_path(dir).exists() {
            return Ok(None);
        }
        let read = |path: std::path::PathBuf| -> anyhow::Result<ParsedCert> {
            ParsedCert::parse(&read_cert(&path)?)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
        };
        let root = read(root_cert_path(dir))?;
        let cert = read(issuing_cert_path(dir))?;
        let key = crate::keyfile::read(&issuing_key_path(dir))?;
        if p256_of(&key)?
            .verifying_key()
            .to_sec1_point(false)
            .as_bytes()
            != cert.public_key
        {
            bail!(
                "{} does not hold the key of {}",
                issuing_key_path(dir).display(),
                issuing_cert_path(dir).display()
            );
        }
        if cert.issuer != root.subject || !cert.signed_by(&root.public_key) {
            bail!(
                "{} is not signed by {}",
                issuing_cert_path(dir).display(),
                root_cert_path(dir).display()
            );
        }
        let id = key.key_id().to_hex();
        let hashes = IssuerHashes::new(&cert.subject, &cert.public_key);
        Ok(Some(IssuingCa {
            purpose,
            root,
            cert,
            key,
            id,
            hashes,
            crl: Mutex::new(None),
        }))
    }

    /// A new hierarchy for `party` in `dir`: the root (its key kept beside
    /// it until the operator moves it) and an issuing CA of `purpose`.
    pub fn create(dir: &TlsDir, party: &str, purpose: Purpose, now_ms: i64) -> anyhow::Result<()> {
        if issuing_cert_path(dir).exists() {
            bail!("{} already holds a device CA", dir.0.display());
        }
        std::fs::create_dir_all(&dir.0).with_context(|| format!("create {}", dir.0.display()))?;
        let root_key = SigningKey::generate(Algorithm::EcdsaP256Sha256);
        let root = ics_ca::x509::issue_root(party, p256_of(&root_key)?, now_ms, ROOT_LIFETIME)?;
        let key = SigningKey::generate(Algorithm::EcdsaP256Sha256);
        let issuing = ics_ca::x509::issue_issuing(
            party,
            purpose,
            &ParsedCert::parse(&root)?,
            p256_of(&root_key)?,
            p256_of(&key)?.verifying_key(),
            now_ms,
            ISSUING_LIFETIME,
        )?;
        crate::keyfile::write(&root_key_path(dir), &root_key)?;
        crate::keyfile::write(&issuing_key_path(dir), &key)?;
        write_atomic(&root_cert_path(dir), pem(&root).as_bytes(), 0o644)?;
        write_atomic(&issuing_cert_path(dir), pem(&issuing).as_bytes(), 0o644)
    }

    /// Copies what a node needs (both certificates, the issuing key; not the
    /// root key) from `from` to `to`.
    pub fn copy_for_node(from: &TlsDir, to: &TlsDir) -> anyhow::Result<()> {
        if !issuing_cert_path(from).exists() {
            return Ok(());
        }
        std::fs::create_dir_all(&to.0).with_context(|| format!("create {}", to.0.display()))?;
        let key = crate::keyfile::read(&issuing_key_path(from))?;
        crate::keyfile::write(&issuing_key_path(to), &key)?;
        for path in [root_cert_path, issuing_cert_path] {
            std::fs::copy(path(from), path(to))
                .with_context(|| format!("copy {}", path(from).display()))?;
        }
        Ok(())
    }

    /// The CRL for the revocations in `ca`, made anew only when its number
    /// changes (a new period, another revocation).
    pub fn crl(&self, ca: &ics_kernel::CapState<DeviceCa>, now_ms: i64) -> anyhow::Result<Bytes> {
        let entries: Vec<CrlEntry> = ca
            .index()
            .revoked
            .get(&self.id)
            .into_iter()
            .flatten()
            .filter_map(|serial| ics_ca::query::cert_by_serial(ca, serial))
            .filter_map(|(serial, c)| {
                c.revoked.as_ref().map(|r| CrlEntry {
                    serial: serial.to_string(),
                    revoked_ms: r.time_ms,
                    reason: r.reason,
                })
            })
            .collect();
        let timing = CrlTiming::at(now_ms, &entries);
        let mut cached = self.crl.lock().expect("the CRL cache lock");
        if let Some((number, bytes)) = cached.as_ref()
            && *number == timing.number
        {
            return Ok(bytes.clone());
        }
        let der = ics_ca::crl::build(&self.cert.der, p256_of(&self.key)?, &entries, timing)?;
        let bytes = Bytes::from(der);
        *cached = Some((timing.number, bytes.clone()));
        Ok(bytes)
    }
}

/// `icsd tls init --role …`: the party's device CA hierarchy in `out/ca/`
/// (with the root key, for the operator to move offline) and what each
/// node needs in `out/node-<id>/`.
pub fn init_party(
    out: &std::path::Path,
    party: &str,
    purpose: Purpose,
    node_ids: &[u64],
    now_ms: i64,
) -> anyhow::Result<()> {
    let ca_dir = TlsDir(out.join("ca"));
    IssuingCa::create(&ca_dir, party, purpose, now_ms)?;
    for id in node_ids {
        IssuingCa::copy_for_node(&ca_dir, &TlsDir(out.join(format!("node-{id}"))))?;
    }
    Ok(())
}

/// Makes the device CA of a single node on its first start (a cluster's
/// comes with `icsd tls init`); checks what it finds.
pub fn prepare(config: &Config, now_ms: i64) -> anyhow::Result<()> {
    let Some(purpose) = purpose_of(config.role) else {
        return Ok(());
    };
    let dir = TlsDir::of(config);
    if !issuing_cert_path(&dir).exists() {
        if !config.peers.is_empty() || !dir.exists() {
            return Ok(());
        }
        IssuingCa::create(&dir, &config.party, purpose, now_ms)?;
        tracing::info!(dir = %dir.0.display(), purpose = purpose.name(), "created the party's device root CA and issuing CA");
    }
    IssuingCa::load(&dir, purpose).map(|_| ())
}
