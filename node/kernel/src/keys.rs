//! Signing keys, public keys, key ids and domain-separated event signatures.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Prefix of every signed message, so an event signature can never be
/// replayed as a signature over some other protocol's bytes.
pub const EVENT_SIGNATURE_CONTEXT: &[u8] = b"ics-event-v1\0";
const KEY_ID_CONTEXT: &[u8] = b"ics-key-v1";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Algorithm {
    Ed25519,
    EcdsaP256Sha256,
}

impl Algorithm {
    fn tag(self) -> u8 {
        match self {
            Algorithm::Ed25519 => 1,
            Algorithm::EcdsaP256Sha256 => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "ed25519",
            Algorithm::EcdsaP256Sha256 => "p256",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "ed25519" => Some(Algorithm::Ed25519),
            "p256" | "ecdsa-p256" => Some(Algorithm::EcdsaP256Sha256),
            _ => None,
        }
    }
}

/// Fingerprint of a public key: blake3 over context, algorithm and key bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KeyId(pub [u8; 32]);

impl KeyId {
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(KeyId)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        let bytes = hex::decode(s).ok()?;
        Self::from_slice(&bytes)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", &self.to_hex()[..16])
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("{algorithm} public key is malformed: {reason}")]
    MalformedPublicKey {
        algorithm: &'static str,
        reason: String,
    },
    #[error("secret key is malformed: {0}")]
    MalformedSecretKey(String),
}

/// A validated public key: the bytes parse as a point of the named algorithm.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PublicKey {
    algorithm: Algorithm,
    bytes: Vec<u8>,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({}, {:?})", self.algorithm.name(), self.id())
    }
}

impl PublicKey {
    pub fn new(algorithm: Algorithm, bytes: Vec<u8>) -> Result<Self, KeyError> {
        let malformed = |reason: String| KeyError::MalformedPublicKey {
            algorithm: algorithm.name(),
            reason,
        };
        match algorithm {
            Algorithm::Ed25519 => {
                let arr: [u8; 32] = bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| malformed(format!("expected 32 bytes, got {}", bytes.len())))?;
                ed25519_key(&arr).map_err(|e| malformed(e.to_string()))?;
            }
            Algorithm::EcdsaP256Sha256 => {
                // One encoding per point, so one point has one key id.
                if bytes.len() != 65 || bytes[0] != 0x04 {
                    return Err(malformed(
                        "expected the 65-byte uncompressed SEC1 encoding (04 || x || y)"
                            .to_string(),
                    ));
                }
                p256::ecdsa::VerifyingKey::from_sec1_bytes(&bytes)
                    .map_err(|e| malformed(e.to_string()))?;
            }
        }
        Ok(PublicKey { algorithm, bytes })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn id(&self) -> KeyId {
        let mut h = blake3::Hasher::new();
        h.update(KEY_ID_CONTEXT);
        h.update(&[self.algorithm.tag()]);
        h.update(&self.bytes);
        KeyId(*h.finalize().as_bytes())
    }

    /// Verifies a signature over `EVENT_SIGNATURE_CONTEXT || message`.
    /// A signature this process verified before is not verified again.
    pub fn verify_event(&self, message: &[u8], signature: &[u8]) -> bool {
        let fingerprint = signature_fingerprint(self, message, signature);
        if VERIFIED.get(&fingerprint).is_some() {
            return true;
        }
        let valid = self.verify_event_now(message, signature);
        if valid {
            VERIFIED.remember(fingerprint, ());
        }
        valid
    }

    fn verify_event_now(&self, message: &[u8], signature: &[u8]) -> bool {
        let mut signed = Vec::with_capacity(EVENT_SIGNATURE_CONTEXT.len() + message.len());
        signed.extend_from_slice(EVENT_SIGNATURE_CONTEXT);
        signed.extend_from_slice(message);
        match self.algorithm {
            Algorithm::Ed25519 => {
                let Ok(arr) = <[u8; 32]>::try_from(self.bytes.as_slice()) else {
                    return false;
                };
                let Ok(key) = ed25519_key(&arr) else {
                    return false;
                };
                let Ok(sig) = ed25519_dalek::Signature::from_slice(signature) else {
                    return false;
                };
                key.verify_strict(&signed, &sig).is_ok()
            }
            Algorithm::EcdsaP256Sha256 => {
                use p256::ecdsa::signature::Verifier;
                let Ok(key) = p256::ecdsa::VerifyingKey::from_sec1_bytes(&self.bytes) else {
                    return false;
                };
                let Ok(sig) = p256::ecdsa::Signature::from_slice(signature) else {
                    return false;
                };
                key.verify(&signed, &sig).is_ok()
            }
        }
    }
}

/// Answers of pure functions this process computed, bounded: the oldest
/// are forgotten first. Remembering answers of a pure function changes no
/// verdict, only how often the curve arithmetic runs.
struct Remembered<K, V> {
    limit: usize,
    answers: std::sync::Mutex<(
        std::collections::HashMap<K, V>,
        std::collections::VecDeque<K>,
    )>,
}

impl<K: std::hash::Hash + Eq + Clone, V: Clone> Remembered<K, V> {
    fn new(limit: usize) -> Self {
        Remembered {
            limit,
            answers: std::sync::Mutex::new(Default::default()),
        }
    }

    fn get(&self, key: &K) -> Option<V> {
        let answers = self.answers.lock().unwrap_or_else(|p| p.into_inner());
        answers.0.get(key).cloned()
    }

    fn remember(&self, key: K, value: V) {
        let mut answers = self.answers.lock().unwrap_or_else(|p| p.into_inner());
        let (map, order) = &mut *answers;
        if map.insert(key.clone(), value).is_none() {
            order.push_back(key);
            while order.len() > self.limit {
                if let Some(oldest) = order.pop_front() {
                    map.remove(&oldest);
                }
            }
        }
    }
}

/// How many verified signatures a process remembers (32 bytes each, twice).
pub const VERIFIED_SIGNATURES_REMEMBERED: usize = 1 << 16;
/// How many decoded Ed25519 public keys a process remembers.
pub const ED25519_KEYS_REMEMBERED: usize = 1 << 14;

/// Signatures this process has verified, by a BLAKE3 hash of everything
/// verified (algorithm, key, signature, message), so no other input can
/// match. A leader checks each event in its request handler, its writer's
/// pre-check and its apply: only the first pays for the verification.
static VERIFIED: std::sync::LazyLock<Remembered<[u8; 32], ()>> =
    std::sync::LazyLock::new(|| Remembered::new(VERIFIED_SIGNATURES_REMEMBERED));

/// Ed25519 public keys decoded (the point decompressed, which costs about
/// a third of a verification): an author's key signs many events, and a
/// registered device's key is checked where the request arrives and again
/// where the event applies.
static ED25519_KEYS: std::sync::LazyLock<Remembered<[u8; 32], ed25519_dalek::VerifyingKey>> =
    std::sync::LazyLock::new(|| Remembered::new(ED25519_KEYS_REMEMBERED));

fn ed25519_key(
    bytes: &[u8; 32],
) -> Result<ed25519_dalek::VerifyingKey, ed25519_dalek::SignatureError> {
    if let Some(key) = ED25519_KEYS.get(bytes) {
        return Ok(key);
    }
    let key = ed25519_dalek::VerifyingKey::from_bytes(bytes)?;
    ED25519_KEYS.remember(*bytes, key);
    Ok(key)
}

fn signature_fingerprint(key: &PublicKey, message: &[u8], signature: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(b"ics-verified-signature-v1");
    h.update(&[key.algorithm.tag()]);
    for part in [key.bytes.as_slice(), signature, message] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part);
    }
    *h.finalize().as_bytes()
}

/// A private key held by a party or a client.
pub enum SigningKey {
    Ed25519(ed25519_dalek::SigningKey),
    P256(p256::ecdsa::SigningKey),
}

/// Shows the key id only: a secret never reaches a log line.
impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SigningKey({}, {:?})",
            self.algorithm().name(),
            self.key_id()
        )
    }
}

impl SigningKey {
    pub fn generate(algorithm: Algorithm) -> Self {
        loop {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).expect("the operating system's random source failed");
            if let Ok(key) = Self::from_secret(algorithm, &seed) {
                return key;
            }
            // A P-256 scalar outside the field order: draw again (probability ~2^-32).
        }
    }

    pub fn from_secret(algorithm: Algorithm, secret: &[u8]) -> Result<Self, KeyError> {
        match algorithm {
            Algorithm::Ed25519 => {
                let arr: [u8; 32] = secret.try_into().map_err(|_| {
                    KeyError::MalformedSecretKey(format!(
                        "ed25519 secret must be 32 bytes, got {}",
                        secret.len()
                    ))
                })?;
                Ok(SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(
                    &arr,
                )))
            }
            Algorithm::EcdsaP256Sha256 => p256::ecdsa::SigningKey::from_slice(secret)
                .map(SigningKey::P256)
                .map_err(|e| KeyError::MalformedSecretKey(e.to_string())),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            SigningKey::Ed25519(_) => Algorithm::Ed25519,
            SigningKey::P256(_) => Algorithm::EcdsaP256Sha256,
        }
    }

    pub fn secret_bytes(&self) -> Vec<u8> {
        match self {
            SigningKey::Ed25519(k) => k.to_bytes().to_vec(),
            SigningKey::P256(k) => k.to_bytes().to_vec(),
        }
    }

    pub fn public_key(&self) -> PublicKey {
        let bytes = match self {
            SigningKey::Ed25519(k) => k.verifying_key().to_bytes().to_vec(),
            SigningKey::P256(k) => k.verifying_key().to_sec1_point(false).as_bytes().to_vec(),
        };
        PublicKey {
            algorithm: self.algorithm(),
            bytes,
        }
    }

    pub fn key_id(&self) -> KeyId {
        self.public_key().id()
    }

    /// Signs `EVENT_SIGNATURE_CONTEXT || message`.
    pub fn sign_event(&self, message: &[u8]) -> Vec<u8> {
        let mut signed = Vec::with_capacity(EVENT_SIGNATURE_CONTEXT.len() + message.len());
        signed.extend_from_slice(EVENT_SIGNATURE_CONTEXT);
        signed.extend_from_slice(message);
        match self {
            SigningKey::Ed25519(k) => {
                use ed25519_dalek::Signer;
                k.sign(&signed).to_bytes().to_vec()
            }
            SigningKey::P256(k) => {
                use p256::ecdsa::signature::Signer;
                let sig: p256::ecdsa::Signature = k.sign(&signed);
                sig.to_bytes().to_vec()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_algorithms_sign_and_verify_with_context() {
        for alg in [Algorithm::Ed25519, Algorithm::EcdsaP256Sha256] {
            let key = SigningKey::generate(alg);
            let public = key.public_key();
            let sig = key.sign_event(b"body");
            assert!(public.verify_event(b"body", &sig), "{alg:?}");
            assert!(!public.verify_event(b"bodY", &sig), "{alg:?} tampered body");
            let mut bad = sig.clone();
            bad[3] ^= 1;
            assert!(!public.verify_event(b"body", &bad), "{alg:?} tampered sig");
            // Round trip through the secret bytes keeps the identity.
            let again = SigningKey::from_secret(alg, &key.secret_bytes()).unwrap();
            assert_eq!(again.key_id(), key.key_id());
            assert_eq!(
                PublicKey::new(alg, public.bytes().to_vec()).unwrap(),
                public
            );
        }
    }

    #[test]
    fn key_id_depends_on_algorithm_and_bytes() {
        let a = SigningKey::generate(Algorithm::Ed25519).public_key();
        let b = SigningKey::generate(Algorithm::Ed25519).public_key();
        assert_ne!(a.id(), b.id());
        assert_eq!(KeyId::from_hex(&a.id().to_hex()), Some(a.id()));
    }

    #[test]
    fn malformed_public_keys_are_refused() {
        assert!(PublicKey::new(Algorithm::Ed25519, vec![0; 31]).is_err());
        assert!(PublicKey::new(Algorithm::EcdsaP256Sha256, vec![4; 65]).is_err());
        // The compressed encoding of a valid point is refused too.
        let p256 = SigningKey::generate(Algorithm::EcdsaP256Sha256);
        let SigningKey::P256(k) = &p256 else {
            unreachable!()
        };
        let compressed = k.verifying_key().to_sec1_point(true).as_bytes().to_vec();
        assert!(PublicKey::new(Algorithm::EcdsaP256Sha256, compressed).is_err());
        assert!(
            PublicKey::new(
                Algorithm::EcdsaP256Sha256,
                p256.public_key().bytes().to_vec()
            )
            .is_ok()
        );
    }
}
