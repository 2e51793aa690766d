//! Private key files: JSON with the algorithm and the secret, mode 0600.
//! A key file readable by group or others is refused, as ssh does.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use ics_kernel::{Algorithm, SigningKey};

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    algorithm: String,
    secret: String,
    key_id: String,
}

/// Writes a new key file; never overwrites one.
pub fn write(path: &Path, key: &SigningKey) -> anyhow::Result<()> {
    let file = KeyFile {
        algorithm: key.algorithm().name().to_string(),
        secret: hex::encode(key.secret_bytes()),
        key_id: key.key_id().to_hex(),
    };
    write_secret(path, &file)
}

/// Writes `value` as JSON to a new file of mode 0600, synced; never overwrites.
pub fn write_secret<T: Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    f.write_all(serde_json::to_string_pretty(value)?.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
        .with_context(|| format!("sync {}", path.display()))?;
    Ok(())
}

/// Reads JSON from a file that group and others cannot read.
pub fn read_secret<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let meta = std::fs::metadata(path).with_context(|| format!("read {}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "{} has mode {mode:o}; it must not be readable by group or others (chmod 600)",
            path.display()
        );
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parse {}", path.display()))
}

pub fn read(path: &Path) -> anyhow::Result<SigningKey> {
    let file: KeyFile = read_secret(path)?;
    let alg = Algorithm::from_name(&file.algorithm).with_context(|| {
        format!(
            "key file {}: unknown algorithm {:?}",
            path.display(),
            file.algorithm
        )
    })?;
    let secret = hex::decode(&file.secret)
        .with_context(|| format!("key file {}: secret is not hex", path.display()))?;
    let key = SigningKey::from_secret(alg, &secret)
        .with_context(|| format!("key file {}", path.display()))?;
    if key.key_id().to_hex() != file.key_id {
        bail!(
            "key file {}: key_id does not match the secret",
            path.display()
        );
    }
    Ok(key)
}

/// Reads the key at `path`, creating it first if it does not exist.
pub fn load_or_create(path: &Path, algorithm: Algorithm) -> anyhow::Result<(SigningKey, bool)> {
    if path.exists() {
        return Ok((read(path)?, false));
    }
    let key = SigningKey::generate(algorithm);
    write(path, &key)?;
    Ok((key, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_are_private_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        let (key, created) = load_or_create(&path, Algorithm::EcdsaP256Sha256).unwrap();
        assert!(created);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read(&path).unwrap().key_id(), key.key_id());
        assert!(write(&path, &key).is_err(), "never overwrites");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("chmod 600"));
    }
}
