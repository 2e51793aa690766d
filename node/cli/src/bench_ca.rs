//! `icsctl bench-ca`: the device CA under load. Registers one P-256 device
//! per client and gives each an operational certificate, then measures, each
//! for a fixed time with every client in a loop: issuance over gRPC
//! (`Issue`), re-enrollment over EST (a TLS handshake with the device's
//! certificate, Verify, issuance, each request on a new connection), and
//! OCSP answers. Every issued certificate is committed on a quorum before
//! its answer. One JSON record per phase: requests, rate, p50, p99.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use ics_ca::encoding;
use ics_client::{Client, ClientTls, keyfile};
use ics_kernel::{Algorithm, SigningKey};
use ics_proto::ca_v1 as pb;
use serde_json::json;

use crate::output::emit;

#[derive(Args)]
pub struct BenchCaArgs {
    /// Key file allowed to register devices.
    #[arg(long)]
    signer: PathBuf,
    /// Concurrent clients (one device each).
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Seconds each phase runs.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// The device listener (HOST:PORT) for the EST phase; skipped when absent.
    #[arg(long)]
    est: Option<String>,
    /// The plain HTTP listener (HOST:PORT) for the OCSP phase; skipped when absent.
    #[arg(long)]
    ocsp: Option<String>,
    /// Devices reported stolen one at a time, each timed from the report's
    /// acknowledgement to an OCSP answer saying revoked (needs --ocsp and a
    /// signer allowed device-status-changed).
    #[arg(long, default_value_t = 0)]
    stolen: usize,
}

struct Device {
    id: String,
    csr: Vec<u8>,
    key_pem: Vec<u8>,
    cert: Vec<u8>,
}

fn key_pem(key: &SigningKey) -> anyhow::Result<Vec<u8>> {
    use p256::pkcs8::{EncodePrivateKey, LineEnding};
    let SigningKey::P256(k) = key else {
        bail!("a P-256 key");
    };
    Ok(p256::SecretKey::from(k.as_nonzero_scalar())
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| anyhow::anyhow!("encode the key: {e}"))?
        .as_bytes()
        .to_vec())
}

/// A plain HTTP/1.1 POST on loopback: the status and the body.
async fn http_post(
    address: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> anyhow::Result<(u16, Vec<u8>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(address)
        .await
        .with_context(|| format!("connect to {address}"))?;
    s.set_nodelay(true)?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body).await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    let status = std::str::from_utf8(&out[..out.len().min(16)])
        .ok()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .context("an HTTP answer without a status")?;
    let body = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or_else(Vec::new, |i| out[i + 4..].to_vec());
    Ok((status, body))
}

/// A device registered by `signer` with a certificate of the node's CA;
/// and that CA's certificate.
async fn enrolled_device(
    c: &mut Client,
    signer: &SigningKey,
    serial: &str,
) -> anyhow::Result<(Device, Vec<u8>)> {
    let key = SigningKey::generate(Algorithm::EcdsaP256Sha256);
    c.append(vec![ics_client::register_device(
        signer,
        serial,
        &key.public_key(),
        vec![],
    )])
    .await
    .context("register a device")?;
    let SigningKey::P256(k) = &key else {
        unreachable!("generated as P-256")
    };
    let csr = ics_ca::x509::make_csr(k, serial)?;
    let id = key.key_id().to_hex();
    let r =
        c.ca.issue(pb::IssueRequest {
            csr: csr.clone(),
            device: id.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let issuer = r.chain.first().cloned().context("the issuing CA")?;
    Ok((
        Device {
            id,
            csr,
            key_pem: key_pem(&key)?,
            cert: r.certificate,
        },
        issuer,
    ))
}

pub async fn run(server: &str, tls: &ClientTls, j: bool, a: BenchCaArgs) -> anyhow::Result<()> {
    let signer = keyfile::read(&a.signer)?;
    let mut c = Client::connect(server, tls)?;
    // Serials unique to this run: a fresh key's id, shortened.
    let run_id = hex::encode(&SigningKey::generate(Algorithm::Ed25519).key_id().0[..4]);
    let mut devices = Vec::new();
    let mut issuer_der = Vec::new();
    for i in 0..a.clients {
        let key = SigningKey::generate(Algorithm::EcdsaP256Sha256);
        let serial = format!("BENCH-{run_id}-{i}");
        c.append(vec![ics_client::register_device(
            &signer,
            &serial,
            &key.public_key(),
            vec![],
        )])
        .await
        .context("register a device")?;
        let SigningKey::P256(k) = &key else {
            unreachable!()
        };
        let csr = ics_ca::x509::make_csr(k, &serial)?;
        let id = key.key_id().to_hex();
        let r =
            c.ca.issue(pb::IssueRequest {
                csr: csr.clone(),
                device: id.clone(),
                ..Default::default()
            })
            .await?
            .into_inner();
        issuer_der = r.chain.first().cloned().context("the issuing CA")?;
        devices.push(Device {
            id,
            csr,
            key_pem: key_pem(&key)?,
            cert: r.certificate,
        });
    }
    let deadline = |started: Instant| started + Duration::from_secs(a.seconds);

    // gRPC issuance, as an operator.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for d in &devices {
        let (mut c, csr, id, end) = (c.clone(), d.csr.clone(), d.id.clone(), deadline(started));
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < end {
                let t = Instant::now();
                c.ca.issue(pb::IssueRequest {
                    csr: csr.clone(),
                    device: id.clone(),
                    ..Default::default()
                })
                .await?;
                lat.push(t.elapsed());
            }
            Ok::<_, tonic::Status>(lat)
        }));
    }
    let mut v = crate::latency_summary(tasks, started, "certificates_per_second").await?;
    v["phase"] = json!("grpc_issue");
    v["clients"] = json!(a.clients);
    emit(j, v.clone(), v.to_string())?;

    // EST re-enrollment: handshake with the device certificate, Verify, issue.
    if let Some(est) = &a.est {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for d in &devices {
            use base64::Engine;
            let device_tls = tls.with_identity(
                encoding::pem("CERTIFICATE", &d.cert).into_bytes(),
                d.key_pem.clone(),
            );
            let body = base64::engine::general_purpose::STANDARD
                .encode(&d.csr)
                .into_bytes();
            let (est, end) = (est.clone(), deadline(started));
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                while Instant::now() < end {
                    let t = Instant::now();
                    let answer = device_tls
                        .https_request(
                            &est,
                            "POST",
                            "/.well-known/est/simplereenroll",
                            Some("application/pkcs10"),
                            &body,
                            64 * 1024,
                        )
                        .await?;
                    if answer.status != 200 {
                        bail!(
                            "simplereenroll: HTTP {}: {}",
                            answer.status,
                            String::from_utf8_lossy(&answer.body)
                        );
                    }
                    lat.push(t.elapsed());
                }
                Ok::<_, anyhow::Error>(lat)
            }));
        }
        let mut v = crate::latency_summary(tasks, started, "certificates_per_second").await?;
        v["phase"] = json!("est_reenroll");
        v["clients"] = json!(a.clients);
        emit(j, v.clone(), v.to_string())?;
    }

    // OCSP answers.
    if let Some(ocsp) = &a.ocsp {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for d in &devices {
            let request = ics_ca::ocsp::request_for(&d.cert, &issuer_der)?;
            let (ocsp, end) = (ocsp.clone(), deadline(started));
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                while Instant::now() < end {
                    let t = Instant::now();
                    let (status, _) =
                        http_post(&ocsp, "/ocsp", "application/ocsp-request", &request).await?;
                    if status != 200 {
                        bail!("OCSP: HTTP {status}");
                    }
                    lat.push(t.elapsed());
                }
                Ok::<_, anyhow::Error>(lat)
            }));
        }
        let mut v = crate::latency_summary(tasks, started, "responses_per_second").await?;
        v["phase"] = json!("ocsp");
        v["clients"] = json!(a.clients);
        emit(j, v.clone(), v.to_string())?;
    }
    // A stolen report, to a revoked OCSP answer.
    if let (Some(ocsp), true) = (&a.ocsp, a.stolen > 0) {
        let mut lat = Vec::new();
        for i in 0..a.stolen {
            let (device, issuer) =
                enrolled_device(&mut c, &signer, &format!("STOLEN-{run_id}-{i}")).await?;
            let request = ics_ca::ocsp::request_for(&device.cert, &issuer)?;
            let subject = ics_kernel::SubjectRef::new(ics_identity::DEVICE, device.id.clone());
            let head = c.chain_head(&subject).await?;
            c.append(vec![ics_client::report_status(
                &signer,
                &device.id,
                head,
                ics_identity::payload::DeviceStatus::Stolen,
                "bench",
                None,
            )])
            .await?;
            let acknowledged = Instant::now();
            loop {
                let (_, body) =
                    http_post(ocsp, "/ocsp", "application/ocsp-request", &request).await?;
                if ics_ca::ocsp::read_revoked(&body)? == Some(true) {
                    break;
                }
                if acknowledged.elapsed() > Duration::from_secs(30) {
                    bail!("{} not revoked 30 s after the stolen report", device.id);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            lat.push(acknowledged.elapsed());
        }
        lat.sort();
        let v = json!({"phase": "stolen_to_ocsp_revoked", "probes": lat.len(),
            "ms_p50": crate::percentile(&lat, 0.5).as_secs_f64() * 1e3,
            "ms_p99": crate::percentile(&lat, 0.99).as_secs_f64() * 1e3,
            "ms_max": lat.last().map_or(0.0, |d| d.as_secs_f64() * 1e3)});
        emit(j, v.clone(), v.to_string())?;
    }
    Ok(())
}
