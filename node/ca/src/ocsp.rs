//! RFC 6960 OCSP: requests read, responses built and signed by the issuing
//! CA itself (no delegated responder). The structures are the RFC's ASN.1,
//! as much as a responder needs.

use std::time::Duration;

use der::asn1::{Any, BitString, GeneralizedTime, Null, ObjectIdentifier, OctetString};
use der::{Choice, Decode, Encode, Enumerated, Sequence};
use ics_pki::cert::CertError;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{DerSignature, SigningKey};
use sha2::Digest;
use x509_cert::ext::Extensions;
use x509_cert::ext::pkix::CrlReason;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::AlgorithmIdentifierOwned;

use crate::payload::RevocationReason;
use crate::x509::ECDSA_WITH_SHA256;

/// The most certificates one request may ask about.
pub const MAX_OCSP_REQUESTS: usize = 16;
/// The largest request read (GET or POST body).
pub const MAX_OCSP_REQUEST_BYTES: usize = 4096;
/// The largest nonce echoed (RFC 8954 asks for 1 to 32 octets).
pub const MAX_NONCE_BYTES: usize = 64;
/// How long a response may be relied on: short, so a revocation reaches
/// caching relying parties soon.
pub const OCSP_VALIDITY: Duration = Duration::from_secs(600);

const ID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const ID_PKIX_OCSP_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
const ID_PKIX_OCSP_NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");

#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct CertId {
    pub hash_algorithm: AlgorithmIdentifierOwned,
    pub issuer_name_hash: OctetString,
    pub issuer_key_hash: OctetString,
    pub serial_number: SerialNumber,
}

#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct OcspRequest {
    pub tbs_request: TbsRequest,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub optional_signature: Option<Any>,
}

#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct TbsRequest {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub version: Option<u8>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    pub requestor_name: Option<GeneralName>,
    pub request_list: Vec<Request>,
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", optional = "true")]
    pub request_extensions: Option<Extensions>,
}

#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct Request {
    pub req_cert: CertId,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub single_request_extensions: Option<Extensions>,
}

#[derive(Clone, Copy, Debug, Eq, PartialEq, Enumerated)]
#[repr(u32)]
pub enum ResponseStatus {
    Successful = 0,
    MalformedRequest = 1,
    InternalError = 2,
    TryLater = 3,
    SigRequired = 5,
    Unauthorized = 6,
}

#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct OcspResponse {
    pub response_status: ResponseStatus,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub response_bytes: Option<ResponseBytes>,
}

#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct ResponseBytes {
    pub response_type: ObjectIdentifier,
    pub response: OctetString,
}

#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct BasicOcspResponse {
    pub tbs_response_data: ResponseData,
    pub signature_algorithm: AlgorithmIdentifierOwned,
    pub signature: BitString,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub certs: Option<Vec<x509_cert::Certificate>>,
}

#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct ResponseData {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub version: Option<u8>,
    pub responder_id: ResponderId,
    pub produced_at: GeneralizedTime,
    pub responses: Vec<SingleResponse>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    pub response_extensions: Option<Extensions>,
}

#[derive(Clone, Debug, Eq, PartialEq, Choice)]
pub enum ResponderId {
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", constructed = "true")]
    ByName(x509_cert::name::Name),
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", constructed = "true")]
    ByKey(OctetString),
}

#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct SingleResponse {
    pub cert_id: CertId,
    pub cert_status: CertStatus,
    pub this_update: GeneralizedTime,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub next_update: Option<GeneralizedTime>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    pub single_extensions: Option<Extensions>,
}

#[derive(Clone, Debug, Eq, PartialEq, Choice)]
pub enum CertStatus {
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT")]
    Good(Null),
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", constructed = "true")]
    Revoked(RevokedInfo),
    #[asn1(context_specific = "2", tag_mode = "IMPLICIT")]
    Unknown(Null),
}

#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct RevokedInfo {
    pub revocation_time: GeneralizedTime,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub revocation_reason: Option<CrlReason>,
}

fn err(what: impl std::fmt::Display) -> CertError {
    CertError(what.to_string())
}

/// The hash a request's CertID was made with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdHash {
    Sha1,
    Sha256,
}

/// One certificate a request asks about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Asked {
    pub id: CertId,
    pub hash: IdHash,
    /// The serial, hex of its DER content bytes.
    pub serial: String,
}

/// A request as the responder reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedRequest {
    pub asked: Vec<Asked>,
    /// The nonce extension, echoed in the response.
    pub nonce: Option<x509_cert::ext::Extension>,
}

/// Reads a DER OCSP request; `Err` means a malformedRequest answer.
pub fn parse_request(der: &[u8]) -> Result<ParsedRequest, CertError> {
    if der.len() > MAX_OCSP_REQUEST_BYTES {
        return Err(err(format!(
            "the request is {} bytes, over the limit of {MAX_OCSP_REQUEST_BYTES}",
            der.len()
        )));
    }
    let req = OcspRequest::from_der(der).map_err(|e| err(format!("not an OCSP request: {e}")))?;
    let list = &req.tbs_request.request_list;
    if list.is_empty() || list.len() > MAX_OCSP_REQUESTS {
        return Err(err(format!(
            "{} certificates asked about; a request asks about 1 to {MAX_OCSP_REQUESTS}",
            list.len()
        )));
    }
    let mut asked = Vec::with_capacity(list.len());
    for r in list {
        let hash = match r.req_cert.hash_algorithm.oid {
            ID_SHA1 => IdHash::Sha1,
            ID_SHA256 => IdHash::Sha256,
            other => return Err(err(format!("CertID hash {other} is not SHA-1 or SHA-256"))),
        };
        asked.push(Asked {
            id: r.req_cert.clone(),
            hash,
            serial: hex::encode(r.req_cert.serial_number.as_bytes()),
        });
    }
    let nonce = req
        .tbs_request
        .request_extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == ID_PKIX_OCSP_NONCE)
        .cloned();
    if let Some(n) = &nonce
        && n.extn_value.as_bytes().len() > MAX_NONCE_BYTES + 2
    {
        return Err(err(format!("the nonce is over {MAX_NONCE_BYTES} bytes")));
    }
    Ok(ParsedRequest { asked, nonce })
}

/// An issuing CA as OCSP names it: the hashes of its name and key.
#[derive(Clone, Debug)]
pub struct IssuerHashes {
    sha1: ([u8; 20], [u8; 20]),
    sha256: ([u8; 32], [u8; 32]),
}

impl IssuerHashes {
    /// From the CA's subject Name (DER) and key (the SEC1 point, which is
    /// the subjectPublicKey BIT STRING's content).
    pub fn new(subject_der: &[u8], public_key: &[u8]) -> IssuerHashes {
        IssuerHashes {
            sha1: (
                sha1::Sha1::digest(subject_der).into(),
                sha1::Sha1::digest(public_key).into(),
            ),
            sha256: (
                sha2::Sha256::digest(subject_der).into(),
                sha2::Sha256::digest(public_key).into(),
            ),
        }
    }

    /// Whether `asked` names this CA.
    pub fn names(&self, asked: &Asked) -> bool {
        let (name, key) = (
            asked.id.issuer_name_hash.as_bytes(),
            asked.id.issuer_key_hash.as_bytes(),
        );
        match asked.hash {
            IdHash::Sha1 => name == self.sha1.0 && key == self.sha1.1,
            IdHash::Sha256 => name == self.sha256.0 && key == self.sha256.1,
        }
    }

    /// The responder's id: SHA-1 of its key (RFC 6960 4.2.1).
    fn key_id(&self) -> [u8; 20] {
        self.sha1.1
    }
}

/// A certificate's status as the responder answers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Good,
    Revoked {
        time_ms: i64,
        reason: RevocationReason,
    },
    Unknown,
}

fn generalized(ms: i64) -> Result<GeneralizedTime, CertError> {
    let secs = u64::try_from(ms).map_err(|_| err("a time before 1970"))? / 1000;
    GeneralizedTime::from_unix_duration(Duration::from_secs(secs)).map_err(err)
}

/// A response with no body: malformedRequest, unauthorized, internalError.
pub fn error_response(status: ResponseStatus) -> Vec<u8> {
    OcspResponse {
        response_status: status,
        response_bytes: None,
    }
    .to_der()
    .expect("a status alone encodes")
}

/// The signed answer to `request`, one status per certificate asked about,
/// by the CA named by `issuer` with its key; its certificate (DER) goes with
/// the response, so a client that knows only the root finds the signer.
pub fn respond(
    issuer: &IssuerHashes,
    ca_cert: &[u8],
    ca_key: &SigningKey,
    request: &ParsedRequest,
    statuses: &[Status],
    now_ms: i64,
) -> Result<Vec<u8>, CertError> {
    assert_eq!(
        request.asked.len(),
        statuses.len(),
        "one status per certificate asked about"
    );
    let this_update = generalized(now_ms)?;
    let next_update = generalized(now_ms + OCSP_VALIDITY.as_millis() as i64)?;
    let mut responses = Vec::with_capacity(statuses.len());
    for (asked, status) in request.asked.iter().zip(statuses) {
        let cert_status = match *status {
            Status::Good => CertStatus::Good(Null),
            Status::Unknown => CertStatus::Unknown(Null),
            Status::Revoked { time_ms, reason } => CertStatus::Revoked(RevokedInfo {
                revocation_time: generalized(time_ms)?,
                revocation_reason: match reason {
                    RevocationReason::Unspecified => None,
                    RevocationReason::KeyCompromise => Some(CrlReason::KeyCompromise),
                    RevocationReason::AffiliationChanged => Some(CrlReason::AffiliationChanged),
                    RevocationReason::Superseded => Some(CrlReason::Superseded),
                    RevocationReason::CessationOfOperation => Some(CrlReason::CessationOfOperation),
                    RevocationReason::PrivilegeWithdrawn => Some(CrlReason::PrivilegeWithdrawn),
                },
            }),
        };
        responses.push(SingleResponse {
            cert_id: asked.id.clone(),
            cert_status,
            this_update,
            next_update: Some(next_update),
            single_extensions: None,
        });
    }
    let data = ResponseData {
        version: None,
        responder_id: ResponderId::ByKey(OctetString::new(issuer.key_id()).map_err(err)?),
        produced_at: this_update,
        responses,
        response_extensions: request.nonce.clone().map(|n| vec![n]),
    };
    let data_der = data.to_der().map_err(err)?;
    let signature: DerSignature = ca_key.sign(&data_der);
    let basic = BasicOcspResponse {
        tbs_response_data: data,
        signature_algorithm: AlgorithmIdentifierOwned {
            oid: ECDSA_WITH_SHA256,
            parameters: None,
        },
        signature: BitString::from_bytes(signature.as_bytes()).map_err(err)?,
        certs: Some(vec![
            x509_cert::Certificate::from_der(ca_cert).map_err(err)?,
        ]),
    };
    OcspResponse {
        response_status: ResponseStatus::Successful,
        response_bytes: Some(ResponseBytes {
            response_type: ID_PKIX_OCSP_BASIC,
            response: OctetString::new(basic.to_der().map_err(err)?).map_err(err)?,
        }),
    }
    .to_der()
    .map_err(err)
}

/// A request for `cert` issued by `issuer` (both DER), CertID by SHA-1 as
/// `openssl ocsp` makes it, without a nonce: what a client sends.
pub fn request_for(cert: &[u8], issuer: &[u8]) -> Result<Vec<u8>, CertError> {
    let issuer = ics_pki::ParsedCert::parse(issuer)?;
    let cert = ics_pki::ParsedCert::parse(cert)?;
    let serial = hex::decode(&cert.serial).map_err(err)?;
    let id = CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: ID_SHA1,
            parameters: None,
        },
        issuer_name_hash: OctetString::new(sha1::Sha1::digest(&issuer.subject).to_vec())
            .map_err(err)?,
        issuer_key_hash: OctetString::new(sha1::Sha1::digest(&issuer.public_key).to_vec())
            .map_err(err)?,
        serial_number: SerialNumber::new(&serial).map_err(err)?,
    };
    OcspRequest {
        tbs_request: TbsRequest {
            version: None,
            requestor_name: None,
            request_list: vec![Request {
                req_cert: id,
                single_request_extensions: None,
            }],
            request_extensions: None,
        },
        optional_signature: None,
    }
    .to_der()
    .map_err(err)
}

/// What a client reads of a response: whether the first certificate is
/// revoked (`Some(true)`), good (`Some(false)`) or unknown (`None`).
/// Unchecked: a client that relies on it checks the signature too.
pub fn read_revoked(response: &[u8]) -> Result<Option<bool>, CertError> {
    let r = OcspResponse::from_der(response).map_err(err)?;
    if r.response_status != ResponseStatus::Successful {
        return Err(err(format!(
            "the responder answered {:?}",
            r.response_status
        )));
    }
    let bytes = r.response_bytes.ok_or_else(|| err("no response bytes"))?;
    let basic = BasicOcspResponse::from_der(bytes.response.as_bytes()).map_err(err)?;
    let first = basic
        .tbs_response_data
        .responses
        .first()
        .ok_or_else(|| err("no single response"))?;
    Ok(match first.cert_status {
        CertStatus::Good(_) => Some(false),
        CertStatus::Revoked(_) => Some(true),
        CertStatus::Unknown(_) => None,
    })
}
