//! RFC 5280 CRLs of an issuing CA. Deterministic: the same revocations, the
//! same period and the same key give the same bytes on every node (ECDSA
//! signatures here are RFC 6979), so any node of the cluster serves the CRL
//! and they agree.

use std::time::Duration;

use der::asn1::{BitString, OctetString, Uint};
use der::referenced::OwnedToRef;
use der::{Decode, Encode};
use ics_pki::cert::{CertError, rfc5280_time};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{DerSignature, SigningKey};
use x509_cert::Certificate;
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::ext::pkix::crl::CrlNumber;
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, CrlReason, SubjectKeyIdentifier};
use x509_cert::ext::{Extensions, ToExtension};
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::AlgorithmIdentifierOwned;

use crate::payload::RevocationReason;
use crate::x509::ECDSA_WITH_SHA256;

/// How often a CRL is issued anew when nothing changes; each is valid for
/// two periods, so a relying party that fetched one never holds a stale one.
pub const CRL_PERIOD: Duration = Duration::from_secs(3600);

fn err(what: impl std::fmt::Display) -> CertError {
    CertError(what.to_string())
}

/// One revoked certificate as a CRL lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrlEntry {
    /// The serial number, hex of its DER content bytes.
    pub serial: String,
    pub revoked_ms: i64,
    pub reason: RevocationReason,
}

/// When and under which number a CRL is issued: deterministic in the period
/// of `now_ms` and the revocations listed. The number grows with either
/// (period × 2³² + revocations), so a later CRL always has a larger one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrlTiming {
    pub this_update_ms: i64,
    pub next_update_ms: i64,
    pub number: u64,
}

impl CrlTiming {
    pub fn at(now_ms: i64, entries: &[CrlEntry]) -> CrlTiming {
        let period = i64::try_from(CRL_PERIOD.as_millis()).expect("an hour fits");
        let start = now_ms.div_euclid(period) * period;
        // Not before the newest revocation it lists; from replicated times
        // only, so every node makes the same bytes.
        let newest = entries.iter().map(|e| e.revoked_ms).max().unwrap_or(start);
        let this_update_ms = start.max(newest);
        CrlTiming {
            this_update_ms,
            next_update_ms: start + 2 * period,
            number: (u64::try_from(start / period).unwrap_or(0) << 32) + entries.len() as u64,
        }
    }
}

fn reason_code(reason: RevocationReason) -> Option<CrlReason> {
    match reason {
        // RFC 5280 5.3.1: the unspecified reason is left out.
        RevocationReason::Unspecified => None,
        RevocationReason::KeyCompromise => Some(CrlReason::KeyCompromise),
        RevocationReason::AffiliationChanged => Some(CrlReason::AffiliationChanged),
        RevocationReason::Superseded => Some(CrlReason::Superseded),
        RevocationReason::CessationOfOperation => Some(CrlReason::CessationOfOperation),
        RevocationReason::PrivilegeWithdrawn => Some(CrlReason::PrivilegeWithdrawn),
    }
}

fn ms_time(ms: i64) -> Result<x509_cert::time::Time, CertError> {
    rfc5280_time(Duration::from_millis(
        u64::try_from(ms).map_err(|_| err("a time before 1970"))?,
    ))
}

/// The key identifier of a CA certificate: its SKI, or the SHA-1 of its key
/// as RFC 5280 4.2.1.2 (1) derives it.
pub(crate) fn ca_key_identifier(ca: &Certificate) -> Result<OctetString, CertError> {
    if let Some((_, ski)) = ca
        .tbs_certificate()
        .get_extension::<SubjectKeyIdentifier>()
        .map_err(err)?
    {
        return Ok(ski.0);
    }
    let spki = ca
        .tbs_certificate()
        .subject_public_key_info()
        .owned_to_ref();
    Ok(SubjectKeyIdentifier::try_from(spki).map_err(err)?.0)
}

/// The CA's CRL listing `entries` (sorted by serial here), DER.
pub fn build(
    ca_cert_der: &[u8],
    ca_key: &SigningKey,
    entries: &[CrlEntry],
    timing: CrlTiming,
) -> Result<Vec<u8>, CertError> {
    let ca = Certificate::from_der(ca_cert_der).map_err(err)?;
    let issuer = ca.tbs_certificate().subject().clone();
    let mut sorted = entries.to_vec();
    sorted.sort_by(|a, b| a.serial.cmp(&b.serial));
    let mut revoked: Vec<RevokedCert> = Vec::with_capacity(sorted.len());
    for e in &sorted {
        let serial = hex::decode(&e.serial).map_err(|_| err("a serial is not hex"))?;
        let crl_entry_extensions = match reason_code(e.reason) {
            Some(code) => Some(vec![code.to_extension(&issuer, &[]).map_err(err)?]),
            None => None,
        };
        revoked.push(RevokedCert {
            serial_number: SerialNumber::new(&serial).map_err(err)?,
            revocation_date: ms_time(e.revoked_ms)?,
            crl_entry_extensions,
        });
    }
    let mut extensions: Extensions = Vec::new();
    let aki = AuthorityKeyIdentifier {
        key_identifier: Some(ca_key_identifier(&ca)?),
        authority_cert_issuer: None,
        authority_cert_serial_number: None,
    };
    extensions.push(aki.to_extension(&issuer, &extensions).map_err(err)?);
    let number = CrlNumber(Uint::new(&timing.number.to_be_bytes()).map_err(err)?);
    extensions.push(number.to_extension(&issuer, &extensions).map_err(err)?);
    let algorithm = AlgorithmIdentifierOwned {
        oid: ECDSA_WITH_SHA256,
        parameters: None,
    };
    let tbs: TbsCertList = TbsCertList {
        version: x509_cert::Version::V2,
        signature: algorithm.clone(),
        issuer,
        this_update: ms_time(timing.this_update_ms)?,
        next_update: Some(ms_time(timing.next_update_ms)?),
        revoked_certificates: (!revoked.is_empty()).then_some(revoked),
        crl_extensions: Some(extensions),
    };
    let tbs_der = tbs.to_der().map_err(err)?;
    let signature: DerSignature = ca_key.sign(&tbs_der);
    let list = CertificateList {
        tbs_cert_list: tbs,
        signature_algorithm: algorithm,
        signature: BitString::from_bytes(signature.as_bytes()).map_err(err)?,
    };
    list.to_der().map_err(err)
}
