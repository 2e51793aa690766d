//! The device CA's X.509: the certificate profiles it issues (root, issuing
//! CAs, device certificates) and PKCS#10 requests read and checked. Pure: the
//! clock and the keys are the caller's. Every key is ECDSA P-256, every
//! signature ecdsa-with-SHA256.

use std::str::FromStr;
use std::time::Duration;

use der::asn1::Ia5String;
use der::{Decode, Encode};
use ics_pki::cert::{CertError, ParsedCert, add, build, p256_point, spki_of};
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{DerSignature, Signature, SigningKey, VerifyingKey};
use x509_cert::builder::Builder;
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::certificate::TbsCertificate;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints,
    CrlDistributionPoints, ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectKeyIdentifier,
};
use x509_cert::name::Name;
use x509_cert::request::CertReq;
use x509_cert::spki::{SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};

use crate::payload::Purpose;

pub(crate) const ECDSA_WITH_SHA256: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ID_KP_CLIENT_AUTH: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.2");
const ID_AD_OCSP: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");
const ID_AD_CA_ISSUERS: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.2");

/// The longest a root CA certificate may be valid.
pub const MAX_ROOT_LIFETIME: Duration = Duration::from_secs(30 * 365 * 86_400);
/// The longest a factory certificate may be valid: the device's lifetime.
pub const MAX_FACTORY_LIFETIME: Duration = Duration::from_secs(25 * 365 * 86_400);
/// The longest an operational certificate may be valid: it is renewed by
/// re-enrollment, so a lost key stops working on its own.
pub const MAX_OPERATIONAL_LIFETIME: Duration = Duration::from_secs(398 * 86_400);
/// The largest certificate or request the CA reads.
pub const MAX_DER_BYTES: usize = 16 * 1024;

fn err(what: impl std::fmt::Display) -> CertError {
    CertError(what.to_string())
}

const SERIAL_NUMBER: der::oid::ObjectIdentifier = der::oid::ObjectIdentifier::new_unwrap("2.5.4.5");

/// The subject of a device certificate: the device's serial as common name,
/// its subject id in its party's log as serialNumber, that party as
/// organization. (A URI of our own scheme would say the same, but linters
/// only accept URIs of well-known schemes; the DN says it with standard
/// attributes.)
fn device_name(namespace: &str, device: &str, serial: &str) -> Result<Name, CertError> {
    if device.is_empty() || device.len() > 64 || !device.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(err(format!(
            "device id {device:?} is not 1 to 64 hex digits"
        )));
    }
    Name::from_str(&format!(
        "CN={},serialNumber={device},O={}",
        rfc4514_escape(serial),
        rfc4514_escape(namespace)
    ))
    .map_err(err)
}

/// A value as RFC 4514 wants it in a name string (what `Name::from_str` reads).
fn rfc4514_escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace(',', "\\,")
        .replace('+', "\\+")
}

/// A certificate's subject common name, if it has one.
pub fn common_name(cert: &ParsedCert) -> Result<Option<String>, CertError> {
    let name = Name::from_der(&cert.subject).map_err(err)?;
    Ok(name
        .common_name()
        .map_err(err)?
        .map(|cn| cn.value().into_owned()))
}

/// The device a device certificate names: its party and id.
pub fn device_of(cert: &ParsedCert) -> Result<(String, String), CertError> {
    let name = Name::from_der(&cert.subject).map_err(err)?;
    let device = name
        .by_oid::<der::asn1::PrintableString>(SERIAL_NUMBER)
        .map_err(err)?
        .map(|s| s.as_str().to_string())
        .ok_or_else(|| err("the certificate names no device (subject serialNumber)"))?;
    let party = name
        .organization()
        .map_err(err)?
        .map(|o| o.value().into_owned())
        .ok_or_else(|| err("the certificate names no party (subject O)"))?;
    if name.iter().filter(|a| a.oid == SERIAL_NUMBER).count() != 1 {
        return Err(err("the certificate names more than one device"));
    }
    Ok((party, device))
}

/// Where relying parties find a CA's status services: the base of the
/// party's HTTP endpoint (`http://host:port`), as the issuer configures it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Distribution {
    pub base_url: Option<String>,
}

impl Distribution {
    pub fn crl_url(&self, ca: &str) -> Option<String> {
        self.base_url.as_ref().map(|b| format!("{b}/ca/{ca}.crl"))
    }
    pub fn ocsp_url(&self) -> Option<String> {
        self.base_url.as_ref().map(|b| format!("{b}/ocsp"))
    }
    pub fn ca_cert_url(&self, ca: &str) -> Option<String> {
        self.base_url.as_ref().map(|b| format!("{b}/ca/{ca}.crt"))
    }
}

enum Shape {
    Root,
    Issuing,
    Device {
        /// The issuing CA's id (its key id, hex), for the status URLs.
        ca: String,
        distribution: Distribution,
    },
}

struct Profile {
    subject: Name,
    issuer: Option<Name>,
    shape: Shape,
}

fn uri(s: &str) -> der::Result<GeneralName> {
    Ok(GeneralName::UniformResourceIdentifier(Ia5String::new(s)?))
}

impl BuilderProfile for Profile {
    fn get_issuer(&self, subject: &Name) -> Name {
        self.issuer.clone().unwrap_or_else(|| subject.clone())
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    fn build_extensions(
        &self,
        spk: SubjectPublicKeyInfoRef<'_>,
        issuer_spk: SubjectPublicKeyInfoRef<'_>,
        tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        let subject = tbs.subject();
        let mut out: Vec<Extension> = Vec::new();
        let ski = SubjectKeyIdentifier::try_from(spk)?;
        let ca = |path_len: u8| BasicConstraints {
            ca: true,
            path_len_constraint: Some(path_len),
        };
        match &self.shape {
            Shape::Root => {
                add(&mut out, subject, &ca(1))?;
                add(
                    &mut out,
                    subject,
                    &KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign),
                )?;
                add(&mut out, subject, &ski)?;
            }
            Shape::Issuing => {
                add(&mut out, subject, &ca(0))?;
                // digitalSignature too: the issuing CA signs its own OCSP responses.
                add(
                    &mut out,
                    subject,
                    &KeyUsage(
                        KeyUsages::KeyCertSign | KeyUsages::CRLSign | KeyUsages::DigitalSignature,
                    ),
                )?;
                add(&mut out, subject, &ski)?;
                add(
                    &mut out,
                    subject,
                    &AuthorityKeyIdentifier::try_from(issuer_spk)?,
                )?;
            }
            Shape::Device {
                ca: ca_id,
                distribution,
            } => {
                add(
                    &mut out,
                    subject,
                    &KeyUsage(KeyUsages::DigitalSignature.into()),
                )?;
                add(
                    &mut out,
                    subject,
                    &ExtendedKeyUsage(vec![ID_KP_CLIENT_AUTH]),
                )?;
                add(&mut out, subject, &ski)?;
                add(
                    &mut out,
                    subject,
                    &AuthorityKeyIdentifier::try_from(issuer_spk)?,
                )?;
                if let Some(crl) = distribution.crl_url(ca_id) {
                    let point = DistributionPoint {
                        distribution_point: Some(DistributionPointName::FullName(vec![uri(&crl)?])),
                        reasons: None,
                        crl_issuer: None,
                    };
                    add(&mut out, subject, &CrlDistributionPoints(vec![point]))?;
                }
                let mut access = Vec::new();
                if let Some(ocsp) = distribution.ocsp_url() {
                    access.push(AccessDescription {
                        access_method: ID_AD_OCSP,
                        access_location: uri(&ocsp)?,
                    });
                }
                if let Some(issuer) = distribution.ca_cert_url(ca_id) {
                    access.push(AccessDescription {
                        access_method: ID_AD_CA_ISSUERS,
                        access_location: uri(&issuer)?,
                    });
                }
                if !access.is_empty() {
                    add(&mut out, subject, &AuthorityInfoAccessSyntax(access))?;
                }
            }
        }
        Ok(out)
    }
}

/// `CN=<common_name>,O=<organization>`, escaped as RFC 4514 wants.
pub fn name(organization: &str, common_name: &str) -> Result<Name, CertError> {
    ics_pki::cert::subject_name(organization, common_name)
}

/// A party's self-signed device root CA.
pub fn issue_root(
    party: &str,
    root_key: &SigningKey,
    now_ms: i64,
    lifetime: Duration,
) -> Result<Vec<u8>, CertError> {
    let profile = Profile {
        subject: name(party, &format!("{party} Device Root CA"))?,
        issuer: None,
        shape: Shape::Root,
    };
    build(profile, spki_of(root_key)?, root_key, now_ms, lifetime)
}

/// An issuing CA under `root`: factory or operational.
pub fn issue_issuing(
    party: &str,
    purpose: Purpose,
    root: &ParsedCert,
    root_key: &SigningKey,
    issuing_key: &VerifyingKey,
    now_ms: i64,
    lifetime: Duration,
) -> Result<Vec<u8>, CertError> {
    let label = match purpose {
        Purpose::Factory => "Factory",
        Purpose::Operational => "Operational",
        Purpose::Root => return Err(err("an issuing CA is factory or operational")),
    };
    let profile = Profile {
        subject: name(party, &format!("{party} {label} CA"))?,
        issuer: Some(Name::from_der(&root.subject).map_err(err)?),
        shape: Shape::Issuing,
    };
    build(profile, spki_from(issuing_key)?, root_key, now_ms, lifetime)
}

fn spki_from(key: &VerifyingKey) -> Result<SubjectPublicKeyInfoOwned, CertError> {
    use x509_cert::spki::EncodePublicKey;
    let der = key.to_public_key_der().map_err(err)?;
    SubjectPublicKeyInfoOwned::from_der(der.as_bytes()).map_err(err)
}

/// What a device certificate says: whose device, in which party's log.
pub struct DeviceCertSpec<'a> {
    /// The party whose log holds the device identity.
    pub namespace: &'a str,
    /// The device's subject id there.
    pub device: &'a str,
    pub serial: &'a str,
    pub distribution: &'a Distribution,
}

/// An issuing CA able to sign: its party, certificate, id and key.
pub struct DeviceIssuer<'a> {
    pub party: &'a str,
    pub ca_cert: &'a ParsedCert,
    /// The CA's id: its key id, hex.
    pub ca_id: &'a str,
    pub ca_key: &'a SigningKey,
}

impl DeviceIssuer<'_> {
    /// A device certificate for the key `csr` proved possession of.
    pub fn issue(
        &self,
        spec: &DeviceCertSpec<'_>,
        csr: &Csr,
        now_ms: i64,
        lifetime: Duration,
    ) -> Result<Vec<u8>, CertError> {
        let profile = Profile {
            subject: device_name(spec.namespace, spec.device, spec.serial)?,
            issuer: Some(Name::from_der(&self.ca_cert.subject).map_err(err)?),
            shape: Shape::Device {
                ca: self.ca_id.to_string(),
                distribution: spec.distribution.clone(),
            },
        };
        let spki = SubjectPublicKeyInfoOwned::from_der(&csr.spki).map_err(err)?;
        // Never beyond the CA: cut to what the CA has left.
        let ca_left = u64::try_from(self.ca_cert.not_after_ms - now_ms)
            .map_err(|_| err("the issuing CA has expired"))?;
        let lifetime = lifetime.min(Duration::from_millis(ca_left));
        build(profile, spki, self.ca_key, now_ms, lifetime)
    }
}

/// A PKCS#10 request, its signature checked: the requester holds the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Csr {
    pub der: Vec<u8>,
    /// The subject's common name, if it has one.
    pub common_name: Option<String>,
    /// The requested key as an uncompressed SEC1 point.
    pub public_key: Vec<u8>,
    /// The SubjectPublicKeyInfo, DER.
    spki: Vec<u8>,
}

impl Csr {
    /// Parses DER and checks the request's signature by its own key.
    pub fn parse(der: &[u8]) -> Result<Csr, CertError> {
        if der.len() > MAX_DER_BYTES {
            return Err(err(format!(
                "the request is {} bytes, over the limit of {MAX_DER_BYTES}",
                der.len()
            )));
        }
        let req = CertReq::from_der(der).map_err(|e| err(format!("not a PKCS#10 request: {e}")))?;
        // The signature covers the request's own bytes: insist they are the
        // one DER encoding, so what we check is what was signed.
        if req.to_der().map_err(err)? != der {
            return Err(err("the request is not in canonical DER"));
        }
        if req.info.version != x509_cert::request::Version::V1 {
            return Err(err("the request must be PKCS#10 version 1 (0)"));
        }
        if req.algorithm.oid != ECDSA_WITH_SHA256 {
            return Err(err("the request must be signed with ecdsa-with-SHA256"));
        }
        let public_key = p256_point(&req.info.public_key)?;
        let key = VerifyingKey::from_sec1_bytes(&public_key)
            .map_err(|_| err("the requested key is not a P-256 point"))?;
        let signature = req
            .signature
            .as_bytes()
            .and_then(|b| Signature::from_der(b).ok())
            .ok_or_else(|| err("the request's signature is not an ECDSA signature"))?;
        let info = req.info.to_der().map_err(err)?;
        key.verify(&info, &signature).map_err(|_| {
            err("the request's signature does not verify with its key (no proof of possession)")
        })?;
        let common_name = req
            .info
            .subject
            .common_name()
            .map_err(err)?
            .map(|cn| cn.value().into_owned());
        Ok(Csr {
            der: der.to_vec(),
            common_name,
            public_key,
            spki: req.info.public_key.to_der().map_err(err)?,
        })
    }
}

/// A request for `key`, naming `common_name`: what a device (or the device
/// simulator) sends.
pub fn make_csr(key: &SigningKey, common_name: &str) -> Result<Vec<u8>, CertError> {
    use x509_cert::request::RequestBuilder;
    let subject = Name::from_str(&format!("CN={}", rfc4514_escape(common_name))).map_err(err)?;
    let builder = RequestBuilder::new(subject).map_err(err)?;
    let req = builder.build::<_, DerSignature>(key).map_err(err)?;
    req.to_der().map_err(err)
}

/// Reads a certificate the device CA issued or bound: its checks beside
/// those of `ParsedCert` (size, one device URI).
pub fn parse_cert(der: &[u8]) -> Result<ParsedCert, CertError> {
    if der.len() > MAX_DER_BYTES {
        return Err(err(format!(
            "the certificate is {} bytes, over the limit of {MAX_DER_BYTES}",
            der.len()
        )));
    }
    ParsedCert::parse(der)
}

/// The key identifier RFC 5280 4.2.1.2 (1) derives: SHA-1 of the key's bits.
pub fn key_hash(public_key: &[u8]) -> [u8; 20] {
    use sha1::Digest;
    sha1::Sha1::digest(public_key).into()
}

/// The issuer names OCSP matches: the CA's subject Name, DER.
pub fn subject_of(cert: &ParsedCert) -> &[u8] {
    &cert.subject
}
