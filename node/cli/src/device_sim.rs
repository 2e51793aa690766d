//! `icsctl device simulate`: a device's life with the device CA. It holds
//! its device key, gets its factory certificate from the manufacturer (or
//! has it), enrolls over EST with it for an operational certificate under a
//! fresh key, sends readings to the ingestion endpoint, and re-enrolls.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use ics_ca::encoding;
use ics_client::{Client, ClientTls, keyfile};
use ics_kernel::{Algorithm, SigningKey};
use ics_proto::ca_v1 as pb;
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use serde_json::json;

use crate::output::emit;

#[derive(Args)]
pub struct SimulateArgs {
    /// The device's key file (p256): the key its factory certificate certifies.
    #[arg(long)]
    key: PathBuf,
    /// The device's serial (its requests' common name).
    #[arg(long)]
    serial: String,
    /// The device's factory certificate (PEM); issued by --manufacturer and
    /// written here when the file does not exist.
    #[arg(long)]
    factory_cert: PathBuf,
    /// The manufacturer's node (HOST:PORT) that issues the factory
    /// certificate, as the operator whose TLS directory is --manufacturer-tls-dir.
    #[arg(long, requires = "manufacturer_tls_dir")]
    manufacturer: Option<String>,
    /// The manufacturer's operator TLS directory (ca.crt, operator.crt, operator.key).
    #[arg(long)]
    manufacturer_tls_dir: Option<PathBuf>,
    /// The maintainer's device listener (HOST:PORT; its certificate must name HOST).
    #[arg(long)]
    est: String,
    /// The maintainer's party CA (PEM), which the device trusts.
    #[arg(long)]
    est_ca: PathBuf,
    /// Where the device keeps its operational keys and certificates.
    #[arg(long)]
    out_dir: PathBuf,
    /// Readings sent after enrolling, and again after re-enrolling.
    #[arg(long, default_value_t = 3)]
    readings: u32,
    /// Re-enroll once after the first readings.
    #[arg(long)]
    reenroll: bool,
}

/// The largest answer a device reads.
const MAX_ANSWER: usize = 64 * 1024;

fn key_pem(key: &SigningKey) -> anyhow::Result<Vec<u8>> {
    let SigningKey::P256(k) = key else {
        bail!("an X.509 device key is p256 (icsctl key generate --algorithm p256)");
    };
    Ok(p256::SecretKey::from(k.as_nonzero_scalar())
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| anyhow::anyhow!("encode the key: {e}"))?
        .as_bytes()
        .to_vec())
}

fn csr_base64(key: &SigningKey, serial: &str) -> anyhow::Result<Vec<u8>> {
    use base64::Engine;
    let SigningKey::P256(k) = key else {
        bail!("an X.509 device key is p256");
    };
    let der = ics_ca::x509::make_csr(k, serial)?;
    Ok(base64::engine::general_purpose::STANDARD
        .encode(der)
        .into_bytes())
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("write {}", path.display()))
}

/// A private key file: readable by its owner only (0600).
fn write_key(path: &Path, pem: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(pem))
        .with_context(|| format!("write {}", path.display()))
}

/// An EST exchange: the certificate in the certs-only answer.
async fn est(
    tls: &ClientTls,
    address: &str,
    operation: &str,
    request: &[u8],
) -> anyhow::Result<Vec<u8>> {
    use base64::Engine;
    let answer = tls
        .https_request(
            address,
            "POST",
            &format!("/.well-known/est/{operation}"),
            Some("application/pkcs10"),
            request,
            MAX_ANSWER,
        )
        .await?;
    let text = String::from_utf8_lossy(&answer.body);
    if answer.status != 200 {
        bail!("{operation}: HTTP {}: {}", answer.status, text.trim());
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(text.split_whitespace().collect::<String>())
        .context("the answer is not base64")?;
    let mut certs =
        encoding::read_certs_only(&der).map_err(|e| anyhow::anyhow!("{operation}: {e}"))?;
    certs.pop().context("the answer holds no certificate")
}

async fn readings(
    j: bool,
    tls: &ClientTls,
    address: &str,
    n: u32,
    serial: &str,
) -> anyhow::Result<()> {
    for i in 0..n {
        let body = format!("{{\"serial\":\"{serial}\",\"reading\":{i}}}");
        let answer = tls
            .https_request(
                address,
                "POST",
                "/ingest",
                Some("application/json"),
                body.as_bytes(),
                MAX_ANSWER,
            )
            .await?;
        let text = String::from_utf8_lossy(&answer.body).trim().to_string();
        emit(
            j,
            json!({"step": "reading", "index": i, "status": answer.status, "answer": text}),
            format!("reading {i}: HTTP {} {text}", answer.status),
        )?;
    }
    Ok(())
}

pub async fn run(j: bool, a: SimulateArgs) -> anyhow::Result<()> {
    let device_key = keyfile::read(&a.key)?;
    let device_id = device_key.key_id().to_hex();
    std::fs::create_dir_all(&a.out_dir)
        .with_context(|| format!("create {}", a.out_dir.display()))?;
    // 1. The factory certificate: made at manufacture, for the device key.
    if !a.factory_cert.exists() {
        let (Some(server), Some(dir)) = (&a.manufacturer, &a.manufacturer_tls_dir) else {
            bail!(
                "{} does not exist: give it, or --manufacturer and --manufacturer-tls-dir to have it issued",
                a.factory_cert.display()
            );
        };
        let mut m = Client::connect(server, &ClientTls::from_dir(dir)?)?;
        let SigningKey::P256(k) = &device_key else {
            bail!("an X.509 device key is p256");
        };
        let r =
            m.ca.issue(pb::IssueRequest {
                csr: ics_ca::x509::make_csr(k, &a.serial)?,
                device: device_id.clone(),
                ..Default::default()
            })
            .await?
            .into_inner();
        write(
            &a.factory_cert,
            encoding::pem("CERTIFICATE", &r.certificate).as_bytes(),
        )?;
        emit(
            j,
            json!({"step": "factory", "file": a.factory_cert, "device": device_id}),
            format!(
                "factory certificate of {device_id} in {}",
                a.factory_cert.display()
            ),
        )?;
    }
    let est_ca =
        std::fs::read(&a.est_ca).with_context(|| format!("read {}", a.est_ca.display()))?;
    let factory = std::fs::read(&a.factory_cert)
        .with_context(|| format!("read {}", a.factory_cert.display()))?;

    // 2. Enrollment over EST, the factory certificate as client certificate.
    let op_key = SigningKey::generate(Algorithm::EcdsaP256Sha256);
    let with_factory = ClientTls::from_pem(est_ca.clone(), Some((factory, key_pem(&device_key)?)));
    let cert = est(
        &with_factory,
        &a.est,
        "simpleenroll",
        &csr_base64(&op_key, &a.serial)?,
    )
    .await?;
    let serial = ics_pki::ParsedCert::parse(&cert)?.serial;
    let (cert_file, key_file) = (
        a.out_dir.join("operational.pem"),
        a.out_dir.join("operational.key"),
    );
    write_key(&key_file, &key_pem(&op_key)?)?;
    write(&cert_file, encoding::pem("CERTIFICATE", &cert).as_bytes())?;
    emit(
        j,
        json!({"step": "enroll", "serial": serial, "file": cert_file}),
        format!(
            "enrolled: operational certificate {serial} in {}",
            cert_file.display()
        ),
    )?;
    let operational = ClientTls::from_pem(
        est_ca.clone(),
        Some((
            encoding::pem("CERTIFICATE", &cert).into_bytes(),
            key_pem(&op_key)?,
        )),
    );
    readings(j, &operational, &a.est, a.readings, &a.serial).await?;

    // 3. Re-enrollment with the operational certificate, under a new key.
    if a.reenroll {
        let next_key = SigningKey::generate(Algorithm::EcdsaP256Sha256);
        let renewed = est(
            &operational,
            &a.est,
            "simplereenroll",
            &csr_base64(&next_key, &a.serial)?,
        )
        .await?;
        let renewed_serial = ics_pki::ParsedCert::parse(&renewed)?.serial;
        write_key(&key_file, &key_pem(&next_key)?)?;
        write(
            &cert_file,
            encoding::pem("CERTIFICATE", &renewed).as_bytes(),
        )?;
        emit(
            j,
            json!({"step": "reenroll", "serial": renewed_serial, "renews": serial}),
            format!("re-enrolled: {renewed_serial} renews {serial}"),
        )?;
        let renewed_tls = ClientTls::from_pem(
            est_ca,
            Some((
                encoding::pem("CERTIFICATE", &renewed).into_bytes(),
                key_pem(&next_key)?,
            )),
        );
        readings(j, &renewed_tls, &a.est, a.readings, &a.serial).await?;
    }
    Ok(())
}
