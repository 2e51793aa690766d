//! `icsctl ca …`: the device CA — issue from a device's request, revoke,
//! verify a certificate against the log, set the attributes and way
//! stations kept beside a certificate; and, without a node, make a device's
//! request and an x5bag.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use ics_ca::{CaPayload, DEVICE_CERT, RevocationReason, encoding};
use ics_client::{Client, keyfile};
use ics_kernel::SubjectRef;
use ics_proto::ca_v1 as pb;
use serde_json::json;

use crate::output::emit;

#[derive(Subcommand)]
pub enum CaCmd {
    /// Issue a device certificate from the device's PKCS#10 request, signed
    /// by the issuing CA the node holds (needs an operator certificate).
    Issue {
        /// The request, PEM or DER, signed by the key to certify; its
        /// common name is the device's serial.
        #[arg(long)]
        csr: PathBuf,
        /// The device's subject id.
        #[arg(long)]
        device: String,
        /// The party whose log holds the device (default: this party).
        #[arg(long, default_value = "")]
        namespace: String,
        /// Validity in days (default: the node's setting for the CA).
        #[arg(long, default_value_t = 0)]
        lifetime_days: u64,
        /// Where to write the certificate (PEM).
        #[arg(long)]
        out: PathBuf,
        /// Where to write the chain (issuing CA, root; PEM).
        #[arg(long)]
        chain_out: Option<PathBuf>,
    },
    /// Issue a batch (a production run) in one append, all or none: one line
    /// per device in --list, `CSR_FILE DEVICE_ID`; certificates written to
    /// --out-dir as DEVICE_ID.pem.
    IssueBatch {
        /// The list: `CSR_FILE DEVICE_ID` per line (paths relative to it).
        #[arg(long)]
        list: PathBuf,
        /// Where the certificates go.
        #[arg(long)]
        out_dir: PathBuf,
        /// Also an x5bag of them all, for the CA that enrolls the devices.
        #[arg(long)]
        x5bag: Option<PathBuf>,
    },
    /// Revoke a certificate this party's CA issued (needs an operator
    /// certificate); CRL and OCSP say so at once.
    Revoke {
        /// The certificate's serial number (hex).
        #[arg(long)]
        serial: String,
        /// unspecified, key-compromise, affiliation-changed, superseded,
        /// cessation-of-operation or privilege-withdrawn.
        #[arg(long, default_value = "unspecified")]
        reason: String,
        /// Why, in words; recorded in the event.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Verify a certificate against the log: issued by this party's CA (or an
    /// imported party's), in validity, not revoked, the expected attributes,
    /// way stations in order. Exits non-zero when it does not pass.
    Verify {
        /// The certificate, PEM or DER.
        certificate: PathBuf,
        /// An attribute the certificate must carry, NAME=VALUE; repeatable.
        #[arg(long = "expect")]
        expect: Vec<String>,
    },
    /// Set or remove attributes kept beside a certificate.
    Attributes {
        /// Key file that signs the event.
        #[arg(long)]
        signer: PathBuf,
        /// The certificate's serial number (hex).
        #[arg(long)]
        serial: String,
        /// NAME=VALUE; repeatable.
        #[arg(long = "set")]
        set: Vec<String>,
        /// NAME; repeatable.
        #[arg(long = "remove")]
        remove: Vec<String>,
    },
    /// Set the way stations the device must pass, in order.
    Route {
        /// Key file that signs the event.
        #[arg(long)]
        signer: PathBuf,
        /// The certificate's serial number (hex).
        #[arg(long)]
        serial: String,
        /// The stations, comma-separated, in order.
        #[arg(long, value_delimiter = ',', required = true)]
        stations: Vec<String>,
    },
    /// Record that the device was seen at a way station.
    Station {
        /// Key file that signs the event.
        #[arg(long)]
        signer: PathBuf,
        /// The certificate's serial number (hex).
        #[arg(long)]
        serial: String,
        /// The way station the device was seen at.
        #[arg(long)]
        station: String,
    },
    /// Make a device's PKCS#10 request from its P-256 key file (no node).
    Csr {
        /// The device's key file (p256).
        #[arg(long)]
        key: PathBuf,
        /// The device's serial: the request's common name.
        #[arg(long)]
        serial: String,
        /// Where to write the request (PEM).
        #[arg(long)]
        out: PathBuf,
    },
    /// Bundle certificates as an x5bag (CBOR array of DER), as a
    /// manufacturer hands factory certificates to a CA (no node).
    X5bag {
        /// Where to write the bag.
        #[arg(long)]
        out: PathBuf,
        /// Certificates, PEM or DER.
        #[arg(required = true)]
        certificates: Vec<PathBuf>,
    },
}

fn read(path: &Path, label: &str) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    encoding::der_from_pem_or_der(&bytes, label)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn pairs(items: &[String], what: &str) -> anyhow::Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|s| {
            s.split_once('=')
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .with_context(|| format!("{what} {s:?}: expected NAME=VALUE"))
        })
        .collect()
}

/// The commands that need no node.
pub fn offline(cmd: &CaCmd, j: bool) -> Option<anyhow::Result<()>> {
    match cmd {
        CaCmd::Csr { key, serial, out } => Some((|| {
            let key = keyfile::read(key)?;
            let ics_kernel::SigningKey::P256(p256) = &key else {
                bail!("an X.509 device key is p256 (icsctl key generate --algorithm p256)");
            };
            let der = ics_ca::x509::make_csr(p256, serial)?;
            std::fs::write(out, encoding::pem("CERTIFICATE REQUEST", &der))
                .with_context(|| format!("write {}", out.display()))?;
            emit(
                j,
                json!({"file": out, "serial": serial, "key_id": key.key_id().to_hex()}),
                format!("wrote the request of {serial} to {}", out.display()),
            )?;
            Ok(())
        })()),
        CaCmd::X5bag { out, certificates } => Some((|| {
            let ders = certificates
                .iter()
                .map(|p| read(p, "CERTIFICATE"))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let refs: Vec<&[u8]> = ders.iter().map(Vec::as_slice).collect();
            std::fs::write(out, encoding::x5bag(&refs))
                .with_context(|| format!("write {}", out.display()))?;
            emit(
                j,
                json!({"file": out, "certificates": ders.len()}),
                format!("wrote {} certificates to {}", ders.len(), out.display()),
            )?;
            Ok(())
        })()),
        _ => None,
    }
}

pub async fn run(c: &mut Client, j: bool, cmd: CaCmd) -> anyhow::Result<()> {
    match cmd {
        CaCmd::Issue {
            csr,
            device,
            namespace,
            lifetime_days,
            out,
            chain_out,
        } => {
            let r =
                c.ca.issue(pb::IssueRequest {
                    csr: read(&csr, "CERTIFICATE REQUEST")?,
                    device,
                    device_namespace: namespace,
                    lifetime_secs: lifetime_days * 86_400,
                })
                .await?
                .into_inner();
            std::fs::write(&out, encoding::pem("CERTIFICATE", &r.certificate))
                .with_context(|| format!("write {}", out.display()))?;
            if let Some(path) = &chain_out {
                let chain: String = r
                    .chain
                    .iter()
                    .map(|c| encoding::pem("CERTIFICATE", c))
                    .collect();
                std::fs::write(path, chain).with_context(|| format!("write {}", path.display()))?;
            }
            let parsed = ics_pki::ParsedCert::parse(&r.certificate)?;
            emit(
                j,
                json!({"file": out, "serial": parsed.serial, "sha256": parsed.fingerprint_hex(),
                    "not_after_ms": parsed.not_after_ms, "index": r.index}),
                format!(
                    "issued {} serial {} sha256:{} at index {}",
                    out.display(),
                    parsed.serial,
                    parsed.fingerprint_hex(),
                    r.index
                ),
            )?;
        }
        CaCmd::IssueBatch {
            list,
            out_dir,
            x5bag,
        } => {
            let text = std::fs::read_to_string(&list)
                .with_context(|| format!("read {}", list.display()))?;
            let base = list.parent().unwrap_or(Path::new("."));
            let mut requests = Vec::new();
            for (n, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                let (csr, device) =
                    line.trim()
                        .split_once(char::is_whitespace)
                        .with_context(|| {
                            format!(
                                "{} line {}: expected CSR_FILE DEVICE_ID",
                                list.display(),
                                n + 1
                            )
                        })?;
                requests.push(pb::IssueRequest {
                    csr: read(&base.join(csr), "CERTIFICATE REQUEST")?,
                    device: device.trim().to_string(),
                    ..Default::default()
                });
            }
            let devices: Vec<String> = requests.iter().map(|r| r.device.clone()).collect();
            let r =
                c.ca.issue_batch(pb::IssueBatchRequest { requests })
                    .await?
                    .into_inner();
            std::fs::create_dir_all(&out_dir)
                .with_context(|| format!("create {}", out_dir.display()))?;
            for (device, issued) in devices.iter().zip(&r.issued) {
                let path = out_dir.join(format!("{device}.pem"));
                std::fs::write(&path, encoding::pem("CERTIFICATE", &issued.certificate))
                    .with_context(|| format!("write {}", path.display()))?;
                emit(
                    j,
                    json!({"device": device, "file": path, "index": issued.index}),
                    format!("issued {} at index {}", path.display(), issued.index),
                )?;
            }
            if let Some(path) = x5bag {
                let certs: Vec<&[u8]> = r.issued.iter().map(|i| i.certificate.as_slice()).collect();
                std::fs::write(&path, encoding::x5bag(&certs))
                    .with_context(|| format!("write {}", path.display()))?;
            }
        }
        CaCmd::Revoke {
            serial,
            reason,
            comment,
        } => {
            let reason = RevocationReason::from_name(&reason).with_context(|| {
                format!("unknown reason {reason:?} (unspecified, key-compromise, affiliation-changed, superseded, cessation-of-operation, privilege-withdrawn)")
            })?;
            let r =
                c.ca.revoke(pb::RevokeRequest {
                    serial: serial.clone(),
                    reason_code: reason.code(),
                    comment,
                })
                .await?
                .into_inner();
            emit(
                j,
                json!({"serial": serial, "reason": reason.name(), "index": r.index}),
                format!("revoked {serial} ({}) at index {}", reason.name(), r.index),
            )?;
        }
        CaCmd::Verify {
            certificate,
            expect,
        } => {
            let r =
                c.ca.verify_certificate(pb::VerifyCertificateRequest {
                    certificate: read(&certificate, "CERTIFICATE")?,
                    expect: pairs(&expect, "--expect")?
                        .into_iter()
                        .map(|(name, value)| pb::Attribute { name, value })
                        .collect(),
                })
                .await?
                .into_inner();
            let problems: Vec<serde_json::Value> = r
                .problems
                .iter()
                .map(|p| json!({"reason": p.reason, "message": p.message}))
                .collect();
            let mut text = if r.valid {
                format!(
                    "valid: serial {} of device {}/{} (CA of {})",
                    r.serial, r.device_namespace, r.device, r.issuer_party
                )
            } else {
                "NOT valid".to_string()
            };
            for p in &r.problems {
                text.push_str(&format!("\n  {}: {}", p.reason, p.message));
            }
            emit(
                j,
                json!({"valid": r.valid, "serial": r.serial, "device_namespace": r.device_namespace,
                    "device": r.device, "issuer_party": r.issuer_party, "problems": problems,
                    "attributes": r.attributes.iter().map(|a| (a.name.clone(), a.value.clone())).collect::<std::collections::BTreeMap<_, _>>()}),
                text,
            )?;
            if !r.valid {
                bail!(
                    "the certificate does not pass: {}",
                    r.problems
                        .iter()
                        .map(|p| p.reason.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        CaCmd::Attributes {
            signer,
            serial,
            set,
            remove,
        } => {
            let payload = CaPayload::AttributesSet {
                set: pairs(&set, "--set")?,
                removed: remove,
            };
            append(c, j, &signer, &serial, payload, "attributes set on").await?;
        }
        CaCmd::Route {
            signer,
            serial,
            stations,
        } => {
            let payload = CaPayload::RouteSet { stations };
            append(c, j, &signer, &serial, payload, "route set on").await?;
        }
        CaCmd::Station {
            signer,
            serial,
            station,
        } => {
            let payload = CaPayload::StationRecorded { station };
            append(c, j, &signer, &serial, payload, "station recorded on").await?;
        }
        CaCmd::Csr { .. } | CaCmd::X5bag { .. } => unreachable!("answered without a node"),
    }
    Ok(())
}

async fn append(
    c: &mut Client,
    j: bool,
    signer: &Path,
    serial: &str,
    payload: CaPayload,
    what: &str,
) -> anyhow::Result<()> {
    let author = keyfile::read(signer)?;
    let subject = SubjectRef::new(DEVICE_CERT, serial.to_string());
    let head = c.chain_head(&subject).await?;
    let out = c
        .append(vec![ics_client::signed(
            &author,
            subject.clone(),
            head,
            payload,
        )])
        .await?;
    crate::print_appended(j, what, &subject, &out)?;
    Ok(())
}
