//! The files of a node's TLS directory and how they are read and written:
//! the party CA, this node's and the operator's certificates and keys, the
//! log key, and beside them the device CA's (`device_ca.rs`).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ics_pki::Holder;

use crate::config::Config;

/// The files of a node's (or an operator's) TLS directory.
#[derive(Clone, Debug)]
pub struct TlsDir(pub PathBuf);

impl TlsDir {
    pub fn of(config: &Config) -> TlsDir {
        TlsDir(
            config
                .tls
                .dir
                .clone()
                .unwrap_or_else(|| config.data_dir.join("tls")),
        )
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.0.join("ca.crt")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.0.join("ca.key")
    }
    /// The party's transparency log key (Ed25519), beside the CA key: every
    /// node holds it, so whichever is leader signs checkpoints.
    pub fn log_key(&self) -> PathBuf {
        self.0.join("tlog.key")
    }
    pub fn cert(&self, holder: &Holder) -> PathBuf {
        self.0.join(match holder {
            Holder::Node(_) => "node.crt",
            Holder::Operator(_) => "operator.crt",
        })
    }
    pub fn key(&self, holder: &Holder) -> PathBuf {
        self.0.join(match holder {
            Holder::Node(_) => "node.key",
            Holder::Operator(_) => "operator.key",
        })
    }
    pub fn exists(&self) -> bool {
        self.ca_cert().exists()
    }
}

/// A certificate (DER) as PEM.
pub fn pem(der: &[u8]) -> String {
    der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, der)
        .expect("a certificate encodes as PEM")
}

/// Reads the first certificate of a PEM file as DER.
pub fn read_cert(path: &Path) -> anyhow::Result<Vec<u8>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let (label, der) = der::pem::decode_vec(text.as_bytes())
        .map_err(|e| anyhow::anyhow!("{}: not PEM: {e}", path.display()))?;
    if label != "CERTIFICATE" {
        bail!("{}: PEM label {label:?}, not CERTIFICATE", path.display());
    }
    Ok(der)
}

/// Replaces `path` with `bytes` atomically (temporary file, fsync, rename,
/// directory fsync), with the given mode.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let dir = path.parent().context("a file in a directory")?;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("create {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("rename to {}", path.display()))?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}
