//! Issuance, revocation and Verify with the device CA this node holds: the
//! host calls the gRPC service and enrollment share.

use std::time::Duration;

use ics_ca::{CaPayload, DeviceCa, Purpose};
use ics_kernel::SubjectRef;
use ics_pki::ParsedCert;

use crate::device_ca::p256_of;
use crate::host::Node;

/// What an issuance asks for.
pub struct IssueRequest<'a> {
    pub csr: &'a [u8],
    pub device: &'a str,
    /// The party whose log holds the device; `None` for this party.
    pub namespace: Option<&'a str>,
    pub lifetime: Option<Duration>,
    /// SHA-256 (hex) of the client certificate the enrollment came with.
    pub authenticated_by: Option<String>,
    /// The serial (hex) of the certificate this one renews.
    pub renews: Option<String>,
}

/// The issuing CA this node holds, or why it cannot act.
fn holding_ca(node: &Node) -> Result<&crate::device_ca::IssuingCa, tonic::Status> {
    node.device_ca.as_deref().ok_or_else(|| {
        refused(
            tonic::Code::FailedPrecondition,
            "NO_DEVICE_CA",
            "this node holds no device CA",
        )
    })
}

/// A certificate issued and recorded: its DER and its event's log position.
pub struct Issued {
    pub certificate: Vec<u8>,
    pub index: u64,
}

fn refused(code: tonic::Code, reason: &'static str, message: impl Into<String>) -> tonic::Status {
    crate::errors::rpc_error(code, reason, message)
}

/// Issues a device certificate with the issuing CA this node holds and
/// records it (`device-cert-issued`, signed by the CA key) before answering:
/// nothing is handed out that the log does not hold. The device's state is
/// checked here on this node's applied view of its records (this party's or
/// the imported ones); the log's rules check it again for this party's own
/// devices.
pub async fn issue(
    node: &Node,
    req: IssueRequest<'_>,
    caller: &str,
) -> Result<Issued, tonic::Status> {
    let (certificate, event) = prepare(node, req)?;
    let appended = node.append_signed(event, caller).await?;
    let index = appended.events.first().map_or(0, |e| e.index);
    node.metrics.ca_served("issued");
    Ok(Issued { certificate, index })
}

/// The most certificates one batch issues (one append, all or none).
pub const MAX_ISSUE_BATCH: usize = 256;

/// Issues a batch (a manufacturer's production run): every request is
/// checked and signed, then all are recorded in one append — all or none.
pub async fn issue_batch(
    node: &Node,
    reqs: Vec<IssueRequest<'_>>,
    caller: &str,
) -> Result<Vec<Issued>, tonic::Status> {
    if reqs.is_empty() || reqs.len() > MAX_ISSUE_BATCH {
        return Err(refused(
            tonic::Code::InvalidArgument,
            "INVALID_FIELD",
            format!(
                "{} requests; a batch issues 1 to {MAX_ISSUE_BATCH}",
                reqs.len()
            ),
        ));
    }
    let mut certificates = Vec::with_capacity(reqs.len());
    let mut events = Vec::with_capacity(reqs.len());
    for (i, req) in reqs.into_iter().enumerate() {
        let (certificate, event) = prepare(node, req).map_err(|s| {
            tonic::Status::with_details(
                s.code(),
                format!("request {i}: {}", s.message()),
                s.details().to_vec().into(),
            )
        })?;
        certificates.push(certificate);
        events.push(crate::codec::envelope_to_pb(&event));
    }
    let appended = node
        .append(
            ics_proto::core_v1::AppendRequest {
                events,
                ..Default::default()
            },
            crate::forward::Origin::Client,
            caller,
        )
        .await?;
    node.metrics.ca_served("issued");
    Ok(certificates
        .into_iter()
        .zip(appended.events.iter().map(|e| e.index))
        .map(|(certificate, index)| Issued { certificate, index })
        .collect())
}

/// Checks an issuance on this node's view and signs the certificate and
/// its event, not yet recorded.
fn prepare(
    node: &Node,
    req: IssueRequest<'_>,
) -> Result<(Vec<u8>, ics_kernel::Envelope), tonic::Status> {
    use ics_identity::payload::DeviceStatus;
    use tonic::Code;
    let ca = holding_ca(node)?;
    let csr = ics_ca::x509::Csr::parse(req.csr).map_err(|e| {
        refused(
            Code::InvalidArgument,
            "BAD_CSR",
            format!("certificate request: {e}"),
        )
    })?;
    let own = node.config.party.as_str();
    let namespace = req.namespace.filter(|n| *n != own).unwrap_or(own);
    let subject = SubjectRef::new(ics_identity::DEVICE, req.device.to_string());
    let serial = {
        let applied = node.shared.read();
        let projection = if namespace == own {
            Some(&applied.projection)
        } else {
            applied
                .mirrors
                .parties
                .get(namespace)
                .map(|m| &m.projection)
        };
        let device =
            projection.and_then(|p| p.capability::<ics_identity::Identity>().subject(&subject));
        let Some(ics_identity::IdentityState {
            detail: ics_identity::Detail::Device { serial, status, .. },
            ..
        }) = device
        else {
            node.metrics.ca_refused("unknown_device");
            return Err(refused(
                Code::NotFound,
                "UNKNOWN_DEVICE",
                format!("no device {subject} in {namespace}'s records here"),
            ));
        };
        if matches!(
            status,
            DeviceStatus::Stolen | DeviceStatus::Destroyed | DeviceStatus::Retired
        ) {
            node.metrics.ca_refused("device_not_enrollable");
            return Err(refused(
                Code::FailedPrecondition,
                "DEVICE_NOT_ENROLLABLE",
                format!(
                    "device {namespace}/{} is {}: no certificate is issued to it",
                    req.device,
                    status.name()
                ),
            ));
        }
        if csr.common_name.as_deref() != Some(serial.as_str()) {
            node.metrics.ca_refused("csr_subject_mismatch");
            return Err(refused(
                Code::InvalidArgument,
                "CSR_SUBJECT_MISMATCH",
                format!(
                    "the request names {:?}, not the device's serial {serial:?}",
                    csr.common_name.as_deref().unwrap_or("")
                ),
            ));
        }
        serial.clone()
    };
    let (max, default) = match ca.purpose {
        Purpose::Factory => (
            ics_ca::x509::MAX_FACTORY_LIFETIME,
            Duration::from_secs(node.config.ca.factory_lifetime_days * 86_400),
        ),
        _ => (
            ics_ca::x509::MAX_OPERATIONAL_LIFETIME,
            Duration::from_secs(node.config.ca.operational_lifetime_days * 86_400),
        ),
    };
    // Certificates start a minute back (clocks that trail): the whole span
    // stays within the profile's maximum.
    let lifetime = req
        .lifetime
        .unwrap_or(default)
        .min(max.saturating_sub(Duration::from_secs(60)));
    let now = ics_client::now_ms();
    let certificate = ics_ca::x509::DeviceIssuer {
        party: own,
        ca_cert: &ca.cert,
        ca_id: &ca.id,
        ca_key: p256_of(&ca.key).map_err(|e| crate::errors::internal("the device CA key", e))?,
    }
    .issue(
        &ics_ca::x509::DeviceCertSpec {
            namespace,
            device: req.device,
            serial: &serial,
            distribution: &ics_ca::x509::Distribution {
                base_url: node.config.ca.base_url.clone(),
            },
        },
        &csr,
        now,
        lifetime,
    )
    .map_err(|e| {
        refused(
            Code::InvalidArgument,
            "BAD_CSR",
            format!("cannot certify the request: {e}"),
        )
    })?;
    let cert_serial = ParsedCert::parse(&certificate)
        .map_err(|e| crate::errors::internal("an issued certificate", e))?
        .serial;
    let event = crate::client::signed(
        &ca.key,
        SubjectRef::new(ics_ca::DEVICE_CERT, cert_serial),
        crate::client::ChainHead::default(),
        CaPayload::CertIssued {
            certificate: certificate.clone(),
            csr: req.csr.to_vec(),
            device_namespace: if namespace == own {
                String::new()
            } else {
                namespace.to_string()
            },
            device: req.device.to_string(),
            authenticated_by: req.authenticated_by.unwrap_or_default(),
            renews: req.renews.unwrap_or_default(),
        },
    );
    Ok((certificate, event))
}

/// Revokes a certificate this party's CA issued, signed by the issuing CA
/// key this node holds; recorded before answering.
pub async fn revoke(
    node: &Node,
    serial: &str,
    reason: ics_ca::RevocationReason,
    comment: &str,
    caller: &str,
) -> Result<u64, tonic::Status> {
    use tonic::Code;
    let ca = holding_ca(node)?;
    let subject = SubjectRef::new(ics_ca::DEVICE_CERT, serial.to_string());
    let head = {
        let applied = node.shared.read();
        let p = &applied.projection;
        if ics_ca::query::cert_by_serial(p.capability::<DeviceCa>(), serial).is_none() {
            return Err(refused(
                Code::NotFound,
                "UNKNOWN_CERTIFICATE",
                format!("this party's CA issued no certificate with serial {serial}"),
            ));
        }
        Node::chain_head(p, &subject)
    };
    let event = crate::client::signed(
        &ca.key,
        subject,
        head,
        CaPayload::CertRevoked {
            reason,
            comment: comment.to_string(),
        },
    );
    let appended = node.append_signed(event, caller).await?;
    Ok(appended.events.first().map_or(0, |e| e.index))
}

/// Verify of a certificate (DER) against this node's applied records: the
/// party's own CA, then the CAs of the parties it imported records of (a
/// manufacturer's factory certificates). A certificate none of them issued
/// answers NOT_ISSUED_HERE.
pub fn verify(
    node: &Node,
    der: &[u8],
    expect: &[(String, String)],
    now_ms: i64,
) -> ics_proto::ca_v1::VerifyCertificateResponse {
    let fingerprint = ics_pki::cert::fingerprint_hex(der);
    let applied = node.shared.read();
    let own = applied.projection.capability::<DeviceCa>();
    let mut verdict = ics_ca::query::verify(own, &fingerprint, expect, now_ms);
    let mut party = node.config.party.as_str();
    if verdict.cert.is_none() {
        for (namespace, mirror) in &applied.mirrors.parties {
            let v = ics_ca::query::verify(
                mirror.projection.capability::<DeviceCa>(),
                &fingerprint,
                expect,
                now_ms,
            );
            if v.cert.is_some() {
                verdict = v;
                party = namespace;
                break;
            }
        }
    }
    verdict_pb(&verdict, party)
}

/// The verdict as the API gives it.
fn verdict_pb(
    verdict: &ics_ca::query::Verdict<'_>,
    issuer_party: &str,
) -> ics_proto::ca_v1::VerifyCertificateResponse {
    let cert = verdict.cert;
    ics_proto::ca_v1::VerifyCertificateResponse {
        valid: verdict.passes(),
        serial: verdict.serial.unwrap_or_default().to_string(),
        device_namespace: cert.map(|c| c.device_namespace.clone()).unwrap_or_default(),
        device: cert.map(|c| c.device.clone()).unwrap_or_default(),
        issuer_party: if cert.is_some() {
            issuer_party.to_string()
        } else {
            String::new()
        },
        problems: verdict
            .problems
            .iter()
            .map(|p| ics_proto::ca_v1::CertificateProblem {
                reason: p.reason().to_string(),
                message: p.to_string(),
            })
            .collect(),
        attributes: cert
            .map(|c| {
                c.attributes
                    .iter()
                    .map(|(name, value)| ics_proto::ca_v1::Attribute {
                        name: name.clone(),
                        value: value.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}
