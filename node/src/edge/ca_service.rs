//! The `CertificateAuthority` gRPC service: issue and revoke with the
//! issuing CA this node holds (an operator certificate of the party
//! required), and Verify of a certificate against the log — this party's
//! records, then the imported ones.

use ics_ca::RevocationReason;
use ics_proto::ca_v1 as pb;
use ics_proto::ca_v1::certificate_authority_server::CertificateAuthority;
use tonic::{Code, Request, Response, Status};

use super::Api;
use super::caller::{rate_key, require_operator};
use crate::edge::ca_issue::IssueRequest;
use crate::errors::rpc_error;

#[tonic::async_trait]
impl CertificateAuthority for Api {
    async fn issue(
        &self,
        req: Request<pb::IssueRequest>,
    ) -> Result<Response<pb::IssueResponse>, Status> {
        require_operator(&self.node, &req, "issuing a device certificate")?;
        let caller = rate_key(&req);
        let req = req.into_inner();
        let issued = crate::edge::ca_issue::issue(
            &self.node,
            IssueRequest {
                csr: &req.csr,
                device: &req.device,
                namespace: (!req.device_namespace.is_empty())
                    .then_some(req.device_namespace.as_str()),
                lifetime: (req.lifetime_secs > 0)
                    .then(|| std::time::Duration::from_secs(req.lifetime_secs)),
                authenticated_by: None,
                renews: None,
            },
            &caller,
        )
        .await?;
        let chain = self.chain();
        Ok(Response::new(pb::IssueResponse {
            certificate: issued.certificate,
            chain,
            index: issued.index,
        }))
    }

    async fn issue_batch(
        &self,
        req: Request<pb::IssueBatchRequest>,
    ) -> Result<Response<pb::IssueBatchResponse>, Status> {
        require_operator(&self.node, &req, "issuing device certificates")?;
        let caller = rate_key(&req);
        let req = req.into_inner();
        let requests = req
            .requests
            .iter()
            .map(|r| IssueRequest {
                csr: &r.csr,
                device: &r.device,
                namespace: (!r.device_namespace.is_empty()).then_some(r.device_namespace.as_str()),
                lifetime: (r.lifetime_secs > 0)
                    .then(|| std::time::Duration::from_secs(r.lifetime_secs)),
                authenticated_by: None,
                renews: None,
            })
            .collect();
        let issued = crate::edge::ca_issue::issue_batch(&self.node, requests, &caller).await?;
        let chain = self.chain();
        Ok(Response::new(pb::IssueBatchResponse {
            issued: issued
                .into_iter()
                .map(|i| pb::IssueResponse {
                    certificate: i.certificate,
                    chain: chain.clone(),
                    index: i.index,
                })
                .collect(),
        }))
    }

    async fn revoke(
        &self,
        req: Request<pb::RevokeRequest>,
    ) -> Result<Response<pb::RevokeResponse>, Status> {
        require_operator(&self.node, &req, "revoking a device certificate")?;
        let caller = rate_key(&req);
        let req = req.into_inner();
        let reason = RevocationReason::from_code(req.reason_code).ok_or_else(|| {
            rpc_error(
                Code::InvalidArgument,
                "INVALID_FIELD",
                format!(
                    "reason_code {} is not one a device certificate is revoked with (0, 1, 3, 4, 5, 9)",
                    req.reason_code
                ),
            )
        })?;
        let index =
            crate::edge::ca_issue::revoke(&self.node, &req.serial, reason, &req.comment, &caller)
                .await?;
        Ok(Response::new(pb::RevokeResponse { index }))
    }

    async fn verify_certificate(
        &self,
        req: Request<pb::VerifyCertificateRequest>,
    ) -> Result<Response<pb::VerifyCertificateResponse>, Status> {
        let req = req.into_inner();
        if req.certificate.len() > ics_ca::x509::MAX_DER_BYTES {
            return Err(rpc_error(
                Code::InvalidArgument,
                "INVALID_FIELD",
                format!(
                    "certificate: {} bytes, over the limit of {}",
                    req.certificate.len(),
                    ics_ca::x509::MAX_DER_BYTES
                ),
            ));
        }
        let expect: Vec<(String, String)> =
            req.expect.into_iter().map(|a| (a.name, a.value)).collect();
        Ok(Response::new(crate::edge::ca_issue::verify(
            &self.node,
            &req.certificate,
            &expect,
            ics_client::now_ms(),
        )))
    }
}

impl Api {
    /// The chain of the CA this node issues with: issuing CA, root (DER).
    fn chain(&self) -> Vec<Vec<u8>> {
        self.node
            .device_ca
            .as_deref()
            .map(|ca| vec![ca.cert.der.clone(), ca.root.der.clone()])
            .unwrap_or_default()
    }
}
