//! X.509 certificates of a party's TLS PKI: reading what the rules need from
//! DER (pure, no clock), and issuing them (the clock is the caller's).
//!
//! Every certificate is ECDSA P-256 with SHA-256. A holder is named by one
//! URI SAN: `ics://<party>/node/<id>` or `ics://<party>/operator/<name>`,
//! the party percent-encoded where a URI authority needs it (`:`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use der::asn1::{Ia5String, OctetString};
use der::{Decode, Encode};
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{DerSignature, Signature, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use x509_cert::Certificate;
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder, CertificateBuilder};
use x509_cert::certificate::TbsCertificate;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::ext::{Extension, ToExtension};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{
    EncodePublicKey, SubjectPublicKeyInfoOwned as SubjectPublicKeyInfo, SubjectPublicKeyInfoRef,
};
use x509_cert::time::{Time, Validity};

/// ecdsa-with-SHA256.
const ECDSA_WITH_SHA256: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ID_KP_SERVER_AUTH: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.1");
const ID_KP_CLIENT_AUTH: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.2");

/// Who a leaf certificate is for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Holder {
    /// A node of the party's cluster, by its Raft node id.
    Node(u64),
    /// A person or tool administering the party's cluster.
    Operator(String),
}

impl Holder {
    /// The URI SAN naming this holder in `party`.
    pub fn uri(&self, party: &str) -> String {
        let party = party.replace(':', "%3A");
        match self {
            Holder::Node(id) => format!("ics://{party}/node/{id}"),
            Holder::Operator(name) => format!("ics://{party}/operator/{name}"),
        }
    }

    /// Reads a holder URI: the party it names and the holder.
    pub fn parse_uri(uri: &str) -> Option<(String, Holder)> {
        let rest = uri.strip_prefix("ics://")?;
        let (party, path) = rest.split_once('/')?;
        let party = party.replace("%3A", ":");
        let holder = if let Some(id) = path.strip_prefix("node/") {
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) || id.starts_with('0') {
                return None;
            }
            Holder::Node(id.parse().ok()?)
        } else if let Some(name) = path.strip_prefix("operator/") {
            if ics_kernel::limits::check_name("operator", name).is_err() {
                return None;
            }
            Holder::Operator(name.to_string())
        } else {
            return None;
        };
        Some((party, holder))
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Holder::Node(id) => write!(f, "node {id}"),
            Holder::Operator(name) => write!(f, "operator {name}"),
        }
    }
}

/// What went wrong reading or issuing a certificate.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CertError(pub String);

fn err(what: impl fmt::Display) -> CertError {
    CertError(what.to_string())
}

/// A certificate as the rules read it.
#[derive(Clone, Debug)]
pub struct ParsedCert {
    pub der: Vec<u8>,
    /// The serial number, lowercase hex of its DER content bytes.
    pub serial: String,
    /// SHA-256 of the DER: the fingerprint operators compare.
    pub fingerprint: [u8; 32],
    pub subject: Vec<u8>,
    pub issuer: Vec<u8>,
    pub not_before_ms: i64,
    pub not_after_ms: i64,
    pub is_ca: bool,
    /// The subject key as an uncompressed SEC1 point.
    pub public_key: Vec<u8>,
    /// The holder URIs (URI SANs of the `ics` scheme) as written.
    pub holder_uris: Vec<String>,
    /// Its DNS and IP address SANs.
    pub names: LeafNames,
    pub key_usage_cert_sign: bool,
    pub key_usage_digital_signature: bool,
    pub server_auth: bool,
    pub client_auth: bool,
    tbs: Vec<u8>,
    signature: Vec<u8>,
}

/// A certificate time in milliseconds since 1970.
pub fn time_ms(t: &Time) -> i64 {
    i64::try_from(t.to_unix_duration().as_millis()).unwrap_or(i64::MAX)
}

impl ParsedCert {
    /// Parses DER; the certificate must be ECDSA P-256 with SHA-256, v3,
    /// and encoded in DER exactly (re-encoding gives the same bytes).
    pub fn parse(der: &[u8]) -> Result<ParsedCert, CertError> {
        let cert =
            Certificate::from_der(der).map_err(|e| err(format!("not a certificate: {e}")))?;
        if cert.to_der().map_err(err)? != der {
            return Err(err("the certificate is not in canonical DER"));
        }
        let tbs = cert.tbs_certificate();
        if cert.signature_algorithm().oid != ECDSA_WITH_SHA256
            || tbs.signature().oid != ECDSA_WITH_SHA256
        {
            return Err(err("the certificate must be signed with ecdsa-with-SHA256"));
        }
        if tbs.version() != x509_cert::certificate::Version::V3 {
            return Err(err("the certificate must be X.509 v3"));
        }
        let public_key = p256_point(tbs.subject_public_key_info())?;
        let (is_ca, _) = match tbs.get_extension::<BasicConstraints>().map_err(err)? {
            Some((_, bc)) => (bc.ca, bc.path_len_constraint),
            None => (false, None),
        };
        let (cert_sign, digital_signature) = match tbs.get_extension::<KeyUsage>().map_err(err)? {
            Some((_, ku)) => (ku.key_cert_sign(), ku.digital_signature()),
            None => (false, false),
        };
        let (server_auth, client_auth) =
            match tbs.get_extension::<ExtendedKeyUsage>().map_err(err)? {
                Some((_, eku)) => (
                    eku.0.contains(&ID_KP_SERVER_AUTH),
                    eku.0.contains(&ID_KP_CLIENT_AUTH),
                ),
                None => (false, false),
            };
        let mut holder_uris = Vec::new();
        let mut names = LeafNames::default();
        if let Some((_, san)) = tbs.get_extension::<SubjectAltName>().map_err(err)? {
            for name in &san.0 {
                match name {
                    GeneralName::UniformResourceIdentifier(uri)
                        if uri.as_str().starts_with("ics:") =>
                    {
                        holder_uris.push(uri.as_str().to_string());
                    }
                    GeneralName::DnsName(dns) => names.dns_names.push(dns.as_str().to_string()),
                    GeneralName::IpAddress(ip) => {
                        let bytes = ip.as_bytes();
                        if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
                            names.ip_addresses.push(v4.into());
                        } else if let Ok(v6) = <[u8; 16]>::try_from(bytes) {
                            names.ip_addresses.push(v6.into());
                        }
                    }
                    _ => {}
                }
            }
        }
        let signature = cert
            .signature()
            .as_bytes()
            .ok_or_else(|| err("the signature is not a whole number of bytes"))?
            .to_vec();
        Ok(ParsedCert {
            der: der.to_vec(),
            serial: hex::encode(tbs.serial_number().as_bytes()),
            fingerprint: Sha256::digest(der).into(),
            subject: tbs.subject().to_der().map_err(err)?,
            issuer: tbs.issuer().to_der().map_err(err)?,
            not_before_ms: time_ms(&tbs.validity().not_before),
            not_after_ms: time_ms(&tbs.validity().not_after),
            is_ca,
            public_key,
            holder_uris,
            names,
            key_usage_cert_sign: cert_sign,
            key_usage_digital_signature: digital_signature,
            server_auth,
            client_auth,
            tbs: tbs.to_der().map_err(err)?,
            signature,
        })
    }

    /// Whether `issuer_key` (uncompressed SEC1) signed this certificate.
    pub fn signed_by(&self, issuer_key: &[u8]) -> bool {
        let Ok(key) = VerifyingKey::from_sec1_bytes(issuer_key) else {
            return false;
        };
        let Ok(signature) = Signature::from_der(&self.signature) else {
            return false;
        };
        key.verify(&self.tbs, &signature).is_ok()
    }

    /// The one holder this certificate names, with its party.
    pub fn holder(&self) -> Result<(String, Holder), CertError> {
        match self.holder_uris.as_slice() {
            [uri] => Holder::parse_uri(uri)
                .ok_or_else(|| err(format!("holder URI {uri:?} is not ics://<party>/node/<id> or ics://<party>/operator/<name>"))),
            [] => Err(err("the certificate names no holder (URI SAN ics://<party>/...)")),
            _ => Err(err("the certificate names more than one holder URI")),
        }
    }

    /// Why this certificate may not be recorded by an event of `time_ms`:
    /// it starts more than `ahead_ms` after it, or has expired by then.
    pub fn not_valid_at(&self, time_ms: i64, ahead_ms: i64) -> Option<String> {
        if self.not_before_ms > time_ms.saturating_add(ahead_ms) {
            return Some(format!(
                "not valid before {} ms, after this event's time {time_ms} ms",
                self.not_before_ms
            ));
        }
        (self.not_after_ms <= time_ms).then(|| {
            format!(
                "expired at {} ms, before this event's time {time_ms} ms",
                self.not_after_ms
            )
        })
    }

    pub fn fingerprint_hex(&self) -> String {
        hex::encode(self.fingerprint)
    }
}

/// The P-256 key of `spki` as an uncompressed SEC1 point; any other key is refused.
pub fn p256_point(spki: &SubjectPublicKeyInfo) -> Result<Vec<u8>, CertError> {
    const EC_PUBLIC_KEY: der::oid::ObjectIdentifier =
        der::oid::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
    const PRIME256V1: der::oid::ObjectIdentifier =
        der::oid::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<der::oid::ObjectIdentifier>().ok());
    if spki.algorithm.oid != EC_PUBLIC_KEY || curve != Some(PRIME256V1) {
        return Err(err("the certificate's key must be ECDSA P-256"));
    }
    let bytes = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| err("the public key is not a whole number of bytes"))?;
    let key = VerifyingKey::from_sec1_bytes(bytes)
        .map_err(|_| err("the public key is not a P-256 point"))?;
    Ok(key.to_sec1_point(false).as_bytes().to_vec())
}

/// The profile of a certificate we issue: its names and extensions.
struct Profile {
    subject: Name,
    issuer: Option<Name>,
    kind: ProfileKind,
}

enum ProfileKind {
    Ca,
    Leaf {
        holder_uri: String,
        dns_names: Vec<String>,
        ip_addresses: Vec<std::net::IpAddr>,
        server: bool,
    },
}

/// Appends `extension` to `out`, its criticality as its type says.
pub fn add(
    out: &mut Vec<Extension>,
    subject: &Name,
    extension: impl ToExtension<Error = der::Error>,
) -> x509_cert::builder::Result<()> {
    let e = extension.to_extension(subject, out)?;
    out.push(e);
    Ok(())
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
        match &self.kind {
            ProfileKind::Ca => {
                add(
                    &mut out,
                    subject,
                    &BasicConstraints {
                        ca: true,
                        path_len_constraint: Some(0),
                    },
                )?;
                add(
                    &mut out,
                    subject,
                    &KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign),
                )?;
                add(&mut out, subject, &ski)?;
            }
            ProfileKind::Leaf {
                holder_uri,
                dns_names,
                ip_addresses,
                server,
            } => {
                let mut names = vec![GeneralName::UniformResourceIdentifier(Ia5String::new(
                    holder_uri,
                )?)];
                for dns in dns_names {
                    names.push(GeneralName::DnsName(Ia5String::new(dns)?));
                }
                for ip in ip_addresses {
                    let bytes = match ip {
                        std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
                        std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
                    };
                    names.push(GeneralName::IpAddress(OctetString::new(bytes)?));
                }
                add(
                    &mut out,
                    subject,
                    &BasicConstraints {
                        ca: false,
                        path_len_constraint: None,
                    },
                )?;
                add(
                    &mut out,
                    subject,
                    &KeyUsage(KeyUsages::DigitalSignature.into()),
                )?;
                let mut usages = vec![ID_KP_CLIENT_AUTH];
                if *server {
                    usages.insert(0, ID_KP_SERVER_AUTH);
                }
                add(&mut out, subject, &ExtendedKeyUsage(usages))?;
                // A holder URI makes the SAN necessary, and the subject is
                // not empty, so the SAN is not critical (RFC 5280 4.2.1.6).
                add(&mut out, subject, &SubjectAltName(names))?;
                add(&mut out, subject, &ski)?;
                let aki = AuthorityKeyIdentifier::try_from(issuer_spk)?;
                add(&mut out, subject, &aki)?;
            }
        }
        Ok(out)
    }
}

/// From a minute before `now_ms` for `lifetime`.
pub fn validity(now_ms: i64, lifetime: Duration) -> Result<Validity, CertError> {
    let start = Duration::from_millis(u64::try_from(now_ms).map_err(|_| err("time before 1970"))?);
    // Backdated a minute: peers whose clocks trail ours still accept it.
    let not_before = start.saturating_sub(Duration::from_secs(60));
    Ok(Validity::new(
        rfc5280_time(not_before)?,
        rfc5280_time(start + lifetime)?,
    ))
}

/// A certificate or CRL time as RFC 5280 4.1.2.5 and 5.1.2.4 want it:
/// UTCTime through 2049, GeneralizedTime from 2050, whole seconds.
pub fn rfc5280_time(since_epoch: Duration) -> Result<Time, CertError> {
    let secs = Duration::from_secs(since_epoch.as_secs());
    let dt = der::DateTime::from_unix_duration(secs).map_err(err)?;
    Ok(if dt.year() < 2050 {
        Time::UtcTime(der::asn1::UtcTime::from_date_time(dt).map_err(err)?)
    } else {
        Time::GeneralTime(der::asn1::GeneralizedTime::from_date_time(dt))
    })
}

/// `CN=<common_name>,O=<party>`.
pub fn subject_name(party: &str, common_name: &str) -> Result<Name, CertError> {
    // Name::from_str reads RFC 4514: escape what it treats specially.
    let esc = |s: &str| {
        s.replace('\\', "\\\\")
            .replace(',', "\\,")
            .replace('+', "\\+")
    };
    Name::from_str(&format!("CN={},O={}", esc(common_name), esc(party))).map_err(err)
}

pub fn spki_of(key: &SigningKey) -> Result<SubjectPublicKeyInfo, CertError> {
    let der = key.verifying_key().to_public_key_der().map_err(err)?;
    SubjectPublicKeyInfo::from_der(der.as_bytes()).map_err(err)
}

/// 16 random bytes, positive.
pub fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    // Positive and without a leading zero octet: DER INTEGER content as is.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::new(&bytes).expect("16 bytes make a valid serial")
}

/// Signs a certificate of `profile` for `spki`: a random serial, valid from
/// a minute before `now_ms` for `lifetime`, ecdsa-with-SHA256; DER.
pub fn build<P: BuilderProfile>(
    profile: P,
    spki: SubjectPublicKeyInfo,
    signer: &SigningKey,
    now_ms: i64,
    lifetime: Duration,
) -> Result<Vec<u8>, CertError> {
    let builder =
        CertificateBuilder::new(profile, random_serial(), validity(now_ms, lifetime)?, spki)
            .map_err(err)?;
    let cert = builder.build::<_, DerSignature>(signer).map_err(err)?;
    cert.to_der().map_err(err)
}

/// A self-signed CA certificate for `party`'s TLS PKI.
pub fn issue_ca(
    party: &str,
    ca_key: &SigningKey,
    now_ms: i64,
    lifetime: Duration,
) -> Result<Vec<u8>, CertError> {
    let profile = Profile {
        subject: subject_name(party, &format!("{party} TLS CA"))?,
        issuer: None,
        kind: ProfileKind::Ca,
    };
    build(profile, spki_of(ca_key)?, ca_key, now_ms, lifetime)
}

/// What a leaf certificate says besides its holder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeafNames {
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<std::net::IpAddr>,
}

impl LeafNames {
    /// Adds `other`'s names this one lacks (a renewal keeps the names the
    /// certificate was first issued with).
    pub fn merge(&mut self, other: &LeafNames) {
        for n in &other.dns_names {
            if !self.dns_names.contains(n) {
                self.dns_names.push(n.clone());
            }
        }
        for ip in &other.ip_addresses {
            if !self.ip_addresses.contains(ip) {
                self.ip_addresses.push(*ip);
            }
        }
    }
}

/// A CA able to issue: its party, certificate and key.
pub struct Issuer<'a> {
    pub party: &'a str,
    pub ca_cert: &'a ParsedCert,
    pub ca_key: &'a SigningKey,
}

impl Issuer<'_> {
    /// A node or operator certificate for `holder_key`.
    pub fn issue_leaf(
        &self,
        holder: &Holder,
        names: &LeafNames,
        holder_key: &VerifyingKey,
        now_ms: i64,
        lifetime: Duration,
    ) -> Result<Vec<u8>, CertError> {
        let party = self.party;
        let issuer = Name::from_der(&self.ca_cert.subject).map_err(err)?;
        let common_name = match holder {
            Holder::Node(id) => format!("node {id} of {party}"),
            Holder::Operator(name) => format!("operator {name} of {party}"),
        };
        let profile = Profile {
            subject: subject_name(party, &common_name)?,
            issuer: Some(issuer),
            kind: ProfileKind::Leaf {
                holder_uri: holder.uri(party),
                dns_names: names.dns_names.clone(),
                ip_addresses: names.ip_addresses.clone(),
                server: matches!(holder, Holder::Node(_)),
            },
        };
        let der = holder_key.to_public_key_der().map_err(err)?;
        let spki = SubjectPublicKeyInfo::from_der(der.as_bytes()).map_err(err)?;
        build(profile, spki, self.ca_key, now_ms, lifetime)
    }
}

/// SHA-256 of a certificate's DER, lowercase hex.
pub fn fingerprint_hex(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}
