//! OpenPGP views of identities, after draft-atkins-openpgp-device-certificates.
//!
//! A device's OpenPGP certificate is its device key as an OpenPGP primary key,
//! its serial as the User ID, the device's own binding signature, and the
//! manufacturer's certification carrying the draft's notations (`manu`,
//! `make`, `model`, ...). Endorsements are certifications by the endorsing
//! party's key; a stolen or destroyed report publishes a key revocation.
//!
//! Every OpenPGP signature is made by the key holder (the device at
//! manufacture, the author on its workstation) and travels inside the signed
//! event; the server checks each one here against the event it came with and
//! stores the packet bytes as received. The server never signs.
//!
//! A device cannot sign once stolen, so its two revocations (compromised,
//! retired) are made at manufacture and kept in escrow by the registrant, off
//! the log: the registration commits only to their blake3 digests. A stolen or
//! destroyed report (or a key rotation) that carries one publishes it; nobody
//! reading the log can revoke a device early.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sequoia_openpgp as openpgp;

use openpgp::armor;
use openpgp::crypto::mpi;
use openpgp::packet::key::{Key4, PrimaryRole, PublicParts, SecretParts};
use openpgp::packet::signature::SignatureBuilder;
use openpgp::packet::signature::subpacket::NotationDataFlags;
use openpgp::packet::{Key, Signature, UserID};
use openpgp::parse::Parse;
use openpgp::serialize::MarshalInto;
use openpgp::types::{
    Curve, HashAlgorithm, KeyFlags, PublicKeyAlgorithm, ReasonForRevocation, SignatureType,
};
use serde::{Deserialize, Serialize};

use ics_kernel::keys::{Algorithm, KeyId, PublicKey, SigningKey};

use crate::payload::{CodeIdentity, DeviceSignatures, EndorsementKind};

/// The draft's notation names a device certification may carry, in the
/// order they appear; an attribute with one of these names becomes a notation.
pub const DEVICE_NOTATION_NAMES: [&str; 9] = [
    "manu", "make", "model", "prodid", "pvers", "lot", "qty", "loc", "dest",
];

/// Namespace of this project's own notations (RFC 9580 user notations are
/// `name@domain`); `.invalid` so it can never collide with a real domain.
pub const NOTATION_DOMAIN: &str = "ics.invalid";

/// Largest signature packet an event may carry.
pub const MAX_SIGNATURE_BYTES: usize = 4096;

const SHA256_ALGORITHM_ID: u8 = 8;

/// The device's key revocations, made at manufacture and kept by the
/// registrant (mode 0600) until a report publishes one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationEscrow {
    #[serde(with = "hex_bytes")]
    pub compromised: Vec<u8>,
    #[serde(with = "hex_bytes")]
    pub retired: Vec<u8>,
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Which escrowed revocation a packet is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RevocationSlot {
    /// Stolen (or a compromised key rotated out): a hard revocation.
    Compromised,
    /// Destroyed, retired, or rotated out.
    Retired,
}

impl RevocationSlot {
    fn reason(self) -> ReasonForRevocation {
        match self {
            RevocationSlot::Compromised => ReasonForRevocation::KeyCompromised,
            RevocationSlot::Retired => ReasonForRevocation::KeyRetired,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RevocationSlot::Compromised => "compromised",
            RevocationSlot::Retired => "retired",
        }
    }
}

impl RevocationEscrow {
    pub fn get(&self, slot: RevocationSlot) -> &[u8] {
        match slot {
            RevocationSlot::Compromised => &self.compromised,
            RevocationSlot::Retired => &self.retired,
        }
    }
}

/// A device's OpenPGP certificate as the projection keeps it: packets as received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceCertificate {
    /// The device key the certificate is for (rotation may replace it).
    pub device_key_id: KeyId,
    pub key_packet: Vec<u8>,
    pub fingerprint: [u8; 20],
    pub created_s: u64,
    /// OpenPGP public-key algorithm number (22 EdDSA, 19 ECDSA).
    pub algorithm: u8,
    pub user_id: String,
    pub signatures: DeviceSignatures,
    /// Escrowed revocations that reports published, in order. Once published
    /// one stays: OpenPGP clients never forget a revocation.
    pub published_revocations: Vec<Vec<u8>>,
}

impl DeviceCertificate {
    pub fn revoked(&self) -> bool {
        !self.published_revocations.is_empty()
    }

    pub fn fingerprint_hex(&self) -> String {
        hex::encode_upper(self.fingerprint)
    }

    /// The 64-bit key id: the fingerprint's low 8 bytes (v4 keys).
    pub fn key_id(&self) -> [u8; 8] {
        self.fingerprint[12..].try_into().expect("8 of 20 bytes")
    }
}

/// Why an OpenPGP packet in an event is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {reason}")]
pub struct OpenPgpError {
    pub field: &'static str,
    pub reason: String,
}

fn err(field: &'static str, reason: impl ToString) -> OpenPgpError {
    OpenPgpError {
        field,
        reason: reason.to_string(),
    }
}

fn seconds(time_ms: i64) -> Result<u64, OpenPgpError> {
    u64::try_from(time_ms.div_euclid(1000))
        .ok()
        .filter(|s| *s <= u64::from(u32::MAX))
        .ok_or_else(|| err("time", "outside the OpenPGP time range (1970 to 2106)"))
}

fn system_time(s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(s)
}

fn public_mpis(key: &PublicKey) -> (PublicKeyAlgorithm, mpi::PublicKey) {
    match key.algorithm() {
        Algorithm::Ed25519 => {
            let mut point = Vec::with_capacity(33);
            point.push(0x40);
            point.extend_from_slice(key.bytes());
            (
                PublicKeyAlgorithm::EdDSA,
                mpi::PublicKey::EdDSA {
                    curve: Curve::Ed25519,
                    q: mpi::MPI::new(&point),
                },
            )
        }
        Algorithm::EcdsaP256Sha256 => {
            let point = p256::ecdsa::VerifyingKey::from_sec1_bytes(key.bytes())
                .expect("PublicKey holds a valid point")
                .to_sec1_point(false);
            (
                PublicKeyAlgorithm::ECDSA,
                mpi::PublicKey::ECDSA {
                    curve: Curve::NistP256,
                    q: mpi::MPI::new(point.as_bytes()),
                },
            )
        }
    }
}

/// `key` as an OpenPGP v4 primary key created at `created_s`.
pub fn openpgp_key(key: &PublicKey, created_s: u64) -> Key<PublicParts, PrimaryRole> {
    let (algo, mpis) = public_mpis(key);
    Key4::<PublicParts, PrimaryRole>::new(system_time(created_s), algo, mpis)
        .expect("a u32 creation time")
        .into()
}

/// A party's key (root or author) as an OpenPGP key. Party keys have no
/// OpenPGP life of their own, so their creation time is fixed at the epoch
/// and their OpenPGP fingerprint is a function of the key alone.
pub fn party_key(key: &PublicKey) -> Key<PublicParts, PrimaryRole> {
    openpgp_key(key, 0)
}

/// OpenPGP v4 fingerprint of a party key, upper-case hex.
pub fn party_fingerprint(key: &PublicKey) -> String {
    party_key(key).fingerprint().to_hex()
}

fn signer(key: &SigningKey, created_s: u64) -> openpgp::Result<openpgp::crypto::KeyPair> {
    let public = key.public_key();
    let (algo, mpis) = public_mpis(&public);
    let secret: mpi::SecretKeyMaterial = match key {
        SigningKey::Ed25519(_) => mpi::SecretKeyMaterial::EdDSA {
            scalar: key.secret_bytes().into(),
        },
        SigningKey::P256(_) => mpi::SecretKeyMaterial::ECDSA {
            scalar: key.secret_bytes().into(),
        },
    };
    let k: Key<SecretParts, PrimaryRole> =
        Key4::with_secret(system_time(created_s), algo, mpis, secret.into())?.into();
    k.into_keypair()
}

/// The User ID of a device: its serial, the unit's identity.
pub fn device_user_id(serial: &str) -> UserID {
    UserID::from(serial)
}

/// The notations a device certification carries: the attributes the draft names.
pub fn device_notations(attributes: &[(String, String)]) -> Vec<(String, String)> {
    attributes
        .iter()
        .filter(|(name, _)| DEVICE_NOTATION_NAMES.contains(&name.as_str()))
        .cloned()
        .collect()
}

fn human_readable() -> NotationDataFlags {
    NotationDataFlags::empty().set_human_readable()
}

fn ics_notation(name: &str) -> String {
    format!("{name}@{NOTATION_DOMAIN}")
}

fn endorsement_notations(kind: EndorsementKind, scope: &str) -> Vec<(String, String)> {
    let mut out = vec![(ics_notation("endorsement"), kind.name().to_string())];
    if !scope.is_empty() {
        out.push((ics_notation("scope"), scope.to_string()));
    }
    out
}

fn with_notations(
    mut b: SignatureBuilder,
    notations: &[(String, String)],
) -> openpgp::Result<SignatureBuilder> {
    for (name, value) in notations {
        b = b.add_notation(name, value.as_bytes(), human_readable(), false)?;
    }
    Ok(b)
}

fn builder(typ: SignatureType, time_s: u64) -> openpgp::Result<SignatureBuilder> {
    SignatureBuilder::new(typ)
        .set_hash_algo(HashAlgorithm::SHA256)
        .set_signature_creation_time(system_time(time_s))
}

fn bytes(sig: Signature) -> openpgp::Result<Vec<u8>> {
    openpgp::Packet::from(sig).to_vec()
}

/// Makes a device registration's OpenPGP signatures: what the manufacturer's
/// tooling does at the end of the line, with the device key still reachable.
pub fn sign_device(
    device: &SigningKey,
    manufacturer: &SigningKey,
    serial: &str,
    attributes: &[(String, String)],
    time_ms: i64,
) -> anyhow::Result<(DeviceSignatures, RevocationEscrow)> {
    let t = seconds(time_ms)?;
    let device_pk = openpgp_key(&device.public_key(), t);
    let uid = device_user_id(serial);
    let mut device_signer = signer(device, t)?;
    let mut manufacturer_signer = signer(manufacturer, 0)?;
    let self_signature = builder(SignatureType::PositiveCertification, t)?
        .set_key_flags(KeyFlags::empty().set_certification().set_signing())?
        .sign_userid_binding(&mut device_signer, None, &uid)?;
    let certification = with_notations(
        builder(SignatureType::PositiveCertification, t)?,
        &device_notations(attributes),
    )?
    .sign_userid_binding(&mut manufacturer_signer, &device_pk, &uid)?;
    let revocation = |slot: RevocationSlot, text: &str| -> openpgp::Result<Vec<u8>> {
        let mut s = signer(device, t)?;
        bytes(
            builder(SignatureType::KeyRevocation, t)?
                .set_reason_for_revocation(slot.reason(), text.as_bytes())?
                .sign_direct_key(&mut s, None)?,
        )
    };
    let escrow = RevocationEscrow {
        compromised: revocation(
            RevocationSlot::Compromised,
            "device key compromised (stolen)",
        )?,
        retired: revocation(RevocationSlot::Retired, "device key retired")?,
    };
    let signatures = DeviceSignatures {
        self_signature: bytes(self_signature)?,
        certification: bytes(certification)?,
        revocation_compromised_digest: *blake3::hash(&escrow.compromised).as_bytes(),
        revocation_retired_digest: *blake3::hash(&escrow.retired).as_bytes(),
    };
    Ok((signatures, escrow))
}

/// What a certification of a device binds: its primary key and User ID.
pub struct CertificationTarget {
    key: Key<PublicParts, PrimaryRole>,
    user_id: UserID,
}

impl CertificationTarget {
    /// From a device certificate as exported (binary transferable public key).
    pub fn from_certificate(binary: &[u8]) -> anyhow::Result<Self> {
        let cert = openpgp::Cert::from_bytes(binary)?;
        let user_id = cert
            .userids()
            .next()
            .map(|u| u.userid().clone())
            .ok_or_else(|| anyhow::anyhow!("the certificate has no User ID"))?;
        Ok(CertificationTarget {
            key: cert.primary_key().key().clone(),
            user_id,
        })
    }

    fn of(device: &DeviceCertificate) -> Result<Self, OpenPgpError> {
        Ok(CertificationTarget {
            key: device_key_of(device)?,
            user_id: device_user_id(&device.user_id),
        })
    }
}

/// An endorsement as an OpenPGP certification of the device's User ID by the
/// endorsing party's key, expiring with the endorsement.
pub fn certify_endorsement(
    endorser: &SigningKey,
    device: &CertificationTarget,
    kind: EndorsementKind,
    scope: &str,
    time_ms: i64,
    not_after_ms: i64,
) -> anyhow::Result<Vec<u8>> {
    let t = seconds(time_ms)?;
    let until = seconds(not_after_ms)?;
    let mut s = signer(endorser, 0)?;
    let sig = with_notations(
        builder(SignatureType::GenericCertification, t)?
            .set_signature_validity_period(Duration::from_secs(until.saturating_sub(t)))?,
        &endorsement_notations(kind, scope),
    )?
    .sign_userid_binding(&mut s, &device.key, &device.user_id)?;
    bytes(sig)
}

/// Withdrawal of an endorsement: a certification revocation by the same key.
pub fn revoke_endorsement(
    endorser: &SigningKey,
    device: &CertificationTarget,
    reason: &str,
    time_ms: i64,
) -> anyhow::Result<Vec<u8>> {
    let t = seconds(time_ms)?;
    let mut s = signer(endorser, 0)?;
    let sig = builder(SignatureType::CertificationRevocation, t)?
        .set_reason_for_revocation(ReasonForRevocation::UIDRetired, reason.as_bytes())?
        .sign_userid_binding(&mut s, &device.key, &device.user_id)?;
    bytes(sig)
}

/// The draft's `hash` notation value: name length, name, algorithm, digest.
pub fn hash_notation(name: &str, sha256: &[u8; 32]) -> Vec<u8> {
    let name = &name.as_bytes()[..name.len().min(255)];
    let mut v = Vec::with_capacity(2 + name.len() + 32);
    v.push(name.len() as u8);
    v.extend_from_slice(name);
    v.push(SHA256_ALGORITHM_ID);
    v.extend_from_slice(sha256);
    v
}

fn code_hash_name(identity: &CodeIdentity) -> String {
    format!("{}-{}", identity.name, identity.version)
}

/// A code release as an OpenPGP standalone signature by the developer's key
/// carrying the artifact's SHA-256 in a `hash` notation.
pub fn sign_code(
    developer: &SigningKey,
    identity: &CodeIdentity,
    time_ms: i64,
) -> anyhow::Result<Vec<u8>> {
    let t = seconds(time_ms)?;
    let mut s = signer(developer, 0)?;
    let sig = builder(SignatureType::Standalone, t)?
        .add_notation(
            "hash",
            hash_notation(&code_hash_name(identity), &identity.sha256),
            NotationDataFlags::empty(),
            false,
        )?
        .sign_standalone(&mut s)?;
    bytes(sig)
}

fn device_key_of(
    device: &DeviceCertificate,
) -> Result<Key<PublicParts, PrimaryRole>, OpenPgpError> {
    match openpgp::Packet::from_bytes(&device.key_packet) {
        Ok(openpgp::Packet::PublicKey(k)) => Ok(k),
        _ => Err(err("key_packet", "stored device key packet does not parse")),
    }
}

/// One signature packet in its canonical encoding, or the refusal naming the field.
fn parse_signature(field: &'static str, bytes: &[u8]) -> Result<Signature, OpenPgpError> {
    if bytes.len() > MAX_SIGNATURE_BYTES {
        return Err(err(
            field,
            format!(
                "{} bytes, over the limit of {MAX_SIGNATURE_BYTES}",
                bytes.len()
            ),
        ));
    }
    let sig = match openpgp::Packet::from_bytes(bytes) {
        Ok(openpgp::Packet::Signature(sig)) => sig,
        Ok(other) => {
            return Err(err(
                field,
                format!("is a {} packet, not a signature", other.tag()),
            ));
        }
        Err(e) => return Err(err(field, format!("is not an OpenPGP packet: {e}"))),
    };
    let canonical = openpgp::Packet::from(sig.clone())
        .to_vec()
        .map_err(|e| err(field, e))?;
    if canonical != bytes {
        return Err(err(
            field,
            "is not exactly one signature packet in canonical encoding",
        ));
    }
    if !matches!(
        sig.hash_algo(),
        HashAlgorithm::SHA256 | HashAlgorithm::SHA384 | HashAlgorithm::SHA512
    ) {
        return Err(err(
            field,
            format!("hash algorithm {} is too weak", sig.hash_algo()),
        ));
    }
    Ok(sig)
}

fn expect_type(
    field: &'static str,
    sig: &Signature,
    typ: SignatureType,
) -> Result<(), OpenPgpError> {
    if sig.typ() != typ {
        return Err(err(
            field,
            format!("is a {} signature, expected {typ}", sig.typ()),
        ));
    }
    Ok(())
}

fn expect_time(field: &'static str, sig: &Signature, t: u64) -> Result<(), OpenPgpError> {
    if sig.signature_creation_time() != Some(system_time(t)) {
        return Err(err(
            field,
            "creation time must be the event time (in seconds)",
        ));
    }
    Ok(())
}

/// The human-readable notations of `sig`, in order.
fn notations(sig: &Signature) -> Vec<(String, String)> {
    sig.notation_data()
        .filter(|n| n.flags().human_readable())
        .map(|n| {
            (
                n.name().to_string(),
                String::from_utf8_lossy(n.value()).into_owned(),
            )
        })
        .collect()
}

fn expect_notations(
    field: &'static str,
    sig: &Signature,
    expected: &[(String, String)],
) -> Result<(), OpenPgpError> {
    let found = notations(sig);
    if found != expected {
        let show = |v: &[(String, String)]| {
            v.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        return Err(err(
            field,
            format!(
                "notations [{}] do not match the event's [{}]",
                show(&found),
                show(expected)
            ),
        ));
    }
    Ok(())
}

fn verified(field: &'static str, r: openpgp::Result<()>) -> Result<(), OpenPgpError> {
    r.map_err(|e| err(field, format!("does not verify: {e}")))
}

/// Checks a device registration's signatures against the event and returns
/// the certificate the projection keeps.
pub fn check_device(
    signatures: &DeviceSignatures,
    device_key: &PublicKey,
    author_key: &PublicKey,
    serial: &str,
    attributes: &[(String, String)],
    time_ms: i64,
) -> Result<DeviceCertificate, OpenPgpError> {
    let t = seconds(time_ms)?;
    let device = openpgp_key(device_key, t);
    let author = party_key(author_key);
    let uid = device_user_id(serial);

    let f = "openpgp.self_signature";
    let sig = parse_signature(f, &signatures.self_signature)?;
    expect_type(f, &sig, SignatureType::PositiveCertification)?;
    expect_time(f, &sig, t)?;
    verified(f, sig.verify_userid_binding(&device, &device, &uid))?;

    let f = "openpgp.certification";
    let sig = parse_signature(f, &signatures.certification)?;
    expect_type(f, &sig, SignatureType::PositiveCertification)?;
    expect_time(f, &sig, t)?;
    expect_notations(f, &sig, &device_notations(attributes))?;
    verified(f, sig.verify_userid_binding(&author, &device, &uid))?;

    let key_packet = openpgp::Packet::from(device.clone())
        .to_vec()
        .map_err(|e| err("device_key", e))?;
    let fingerprint = match device.fingerprint() {
        openpgp::Fingerprint::V4(f) => f,
        other => return Err(err("device_key", format!("unexpected fingerprint {other}"))),
    };
    Ok(DeviceCertificate {
        device_key_id: device_key.id(),
        key_packet,
        fingerprint,
        created_s: t,
        algorithm: u8::from(device.pk_algo()),
        user_id: serial.to_string(),
        signatures: signatures.clone(),
        published_revocations: Vec::new(),
    })
}

/// Checks a revocation a report publishes: one of the two the registration
/// committed to, made by the device key with the reason of its slot.
pub fn check_revocation(
    bytes: &[u8],
    device: &DeviceCertificate,
) -> Result<RevocationSlot, OpenPgpError> {
    let f = "openpgp_revocation";
    let digest = *blake3::hash(bytes).as_bytes();
    let slot = if digest == device.signatures.revocation_compromised_digest {
        RevocationSlot::Compromised
    } else if digest == device.signatures.revocation_retired_digest {
        RevocationSlot::Retired
    } else {
        return Err(err(
            f,
            "is not one of the revocations the registration committed to",
        ));
    };
    let sig = parse_signature(f, bytes)?;
    expect_type(f, &sig, SignatureType::KeyRevocation)?;
    if sig.reason_for_revocation().map(|(r, _)| r) != Some(slot.reason()) {
        return Err(err(
            f,
            format!("reason for revocation must be {}", slot.reason()),
        ));
    }
    let key = device_key_of(device)?;
    verified(f, sig.verify_primary_key_revocation(&key, &key))?;
    Ok(slot)
}

/// Checks an endorsement's certification of the device by the endorser's key.
pub fn check_endorsement(
    bytes: &[u8],
    device: &DeviceCertificate,
    endorser_key: &PublicKey,
    kind: EndorsementKind,
    scope: &str,
    time_ms: i64,
    not_after_ms: i64,
) -> Result<(), OpenPgpError> {
    let f = "openpgp_certification";
    let t = seconds(time_ms)?;
    let until = seconds(not_after_ms)?;
    if until <= t {
        // A validity period of zero would mean "never expires" in OpenPGP.
        return Err(err(f, "the endorsement must last at least a second"));
    }
    let sig = parse_signature(f, bytes)?;
    expect_type(f, &sig, SignatureType::GenericCertification)?;
    expect_time(f, &sig, t)?;
    expect_notations(f, &sig, &endorsement_notations(kind, scope))?;
    if sig.signature_validity_period() != Some(Duration::from_secs(until.saturating_sub(t))) {
        return Err(err(f, "must expire with the endorsement (not_after)"));
    }
    let target = CertificationTarget::of(device)?;
    verified(
        f,
        sig.verify_userid_binding(&party_key(endorser_key), &target.key, &target.user_id),
    )
}

/// Checks a withdrawal's certification revocation by the endorser's key.
pub fn check_endorsement_revocation(
    bytes: &[u8],
    device: &DeviceCertificate,
    endorser_key: &PublicKey,
    time_ms: i64,
) -> Result<(), OpenPgpError> {
    let f = "openpgp_revocation";
    let t = seconds(time_ms)?;
    let sig = parse_signature(f, bytes)?;
    expect_type(f, &sig, SignatureType::CertificationRevocation)?;
    expect_time(f, &sig, t)?;
    let target = CertificationTarget::of(device)?;
    verified(
        f,
        sig.verify_userid_revocation(&party_key(endorser_key), &target.key, &target.user_id),
    )
}

/// Checks a code release's standalone signature by the developer's key.
pub fn check_code(
    bytes: &[u8],
    identity: &CodeIdentity,
    developer_key: &PublicKey,
    time_ms: i64,
) -> Result<(), OpenPgpError> {
    let f = "openpgp_signature";
    let t = seconds(time_ms)?;
    let sig = parse_signature(f, bytes)?;
    expect_type(f, &sig, SignatureType::Standalone)?;
    expect_time(f, &sig, t)?;
    let expected = hash_notation(&code_hash_name(identity), &identity.sha256);
    let hashes: Vec<&[u8]> = sig.notation("hash").collect();
    if hashes != [expected.as_slice()] {
        return Err(err(
            f,
            "must carry exactly one hash notation with the artifact's SHA-256",
        ));
    }
    verified(f, sig.verify_standalone(&party_key(developer_key)))
}

/// A device's transferable public key: key, published revocation, User ID,
/// its binding and certifications, then endorsements with their revocations.
pub fn assemble<'a>(
    device: &DeviceCertificate,
    endorsements: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
) -> Vec<u8> {
    let mut out = device.key_packet.clone();
    for rev in &device.published_revocations {
        out.extend_from_slice(rev);
    }
    let uid = openpgp::Packet::from(device_user_id(&device.user_id))
        .to_vec()
        .expect("a User ID serializes");
    out.extend_from_slice(&uid);
    out.extend_from_slice(&device.signatures.self_signature);
    out.extend_from_slice(&device.signatures.certification);
    for (certification, revocation) in endorsements {
        out.extend_from_slice(certification);
        if let Some(rev) = revocation {
            out.extend_from_slice(rev);
        }
    }
    out
}

/// ASCII armor for keys (`public_key`) or standalone signatures.
pub fn armored(binary: &[u8], public_key: bool) -> String {
    let kind = if public_key {
        armor::Kind::PublicKey
    } else {
        armor::Kind::Signature
    };
    let mut buf = Vec::new();
    {
        let mut w = armor::Writer::new(&mut buf, kind).expect("armor writer on a Vec");
        std::io::Write::write_all(&mut w, binary).expect("writing to a Vec");
        w.finalize().expect("writing to a Vec");
    }
    String::from_utf8(buf).expect("armor is ASCII")
}
