//! Signed events: the body framing, event ids and envelopes.
//!
//! An event is the exact bytes of an encoded `ics.core.v1.EventBody` plus
//! signatures over `"ics-event-v1\0" || body`. The id is `blake3(body)`. The
//! body names its subject, the subject's sequence number and previous event
//! id, the author key, the author's time, the schema version and the payload
//! as a `google.protobuf.Any` (type URL `type.googleapis.com/<message>`, the
//! value the capability's own message). Nodes store and forward the body
//! bytes as received and never re-encode them.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::keys::{Algorithm, KeyId, PublicKey, SigningKey};
use crate::refusal::Refusal;
use crate::wire::{Reader, Writer};

/// The only body schema this build reads and writes.
pub const SCHEMA_VERSION: u32 = 2;

/// Prefix of every payload type URL.
pub const TYPE_URL_PREFIX: &str = "type.googleapis.com/";

/// The subject kinds the kernel keeps: the party (its own, and the parties
/// it recognizes) and its author keys. Every other kind is a capability's.
pub const PARTY: &str = "party";
pub const AUTHOR_KEY: &str = "author-key";
pub const KERNEL_SUBJECT_KINDS: [&str; 2] = [PARTY, AUTHOR_KEY];

/// Longest subject id, in bytes.
pub const MAX_SUBJECT_ID_BYTES: usize = 128;

/// blake3 of an event's body bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EventId(pub [u8; 32]);

impl EventId {
    pub fn of_body(body: &[u8]) -> Self {
        EventId(*blake3::hash(body).as_bytes())
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(EventId)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({})", &self.to_hex()[..16])
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// What an event is about: a subject kind (owned by the kernel or by one
/// capability) and an id within that kind. Printed and parsed as `kind/id`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SubjectRef {
    pub kind: String,
    pub id: String,
}

impl SubjectRef {
    pub fn new(kind: impl Into<String>, id: impl Into<String>) -> Self {
        SubjectRef {
            kind: kind.into(),
            id: id.into(),
        }
    }

    /// Parses `kind/id`; the kind is checked against the rules elsewhere.
    pub fn parse(text: &str) -> Option<Self> {
        let (kind, id) = text.split_once('/')?;
        (!kind.is_empty() && !id.is_empty()).then(|| SubjectRef::new(kind, id))
    }

    fn check(&self) -> Result<(), Refusal> {
        if self.kind.is_empty() || self.kind.len() > 32 {
            return Err(Refusal::field("subject.kind", "must be 1-32 bytes"));
        }
        if self.id.is_empty() || self.id.len() > MAX_SUBJECT_ID_BYTES {
            return Err(Refusal::field("subject.id", "must be 1-128 bytes"));
        }
        Ok(())
    }
}

impl fmt::Display for SubjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.id)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub key_id: KeyId,
    pub algorithm: Algorithm,
    pub bytes: Vec<u8>,
}

/// An event as it travels: the exact body bytes and the signatures over them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub body: Vec<u8>,
    pub signatures: Vec<Signature>,
}

/// A payload as it stands in the body: its message name and encoded bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayloadBytes {
    /// Full protobuf message name, e.g. `ics.identity.v1.DeviceRegistered`.
    pub message: String,
    pub value: Vec<u8>,
}

/// A decoded body. The payload is still bytes: the rules decode it with the
/// capability that owns its message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventBody {
    pub schema_version: u32,
    pub subject: SubjectRef,
    pub sequence: u64,
    pub previous: Option<EventId>,
    pub author: KeyId,
    pub time_ms: i64,
    pub payload: PayloadBytes,
}

fn digest32<T>(bytes: &[u8], field: &str, wrap: fn([u8; 32]) -> T) -> Result<T, Refusal> {
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| Refusal::field(field, format!("must be 32 bytes, got {}", bytes.len())))?;
    Ok(wrap(arr))
}

impl EventBody {
    /// Encodes the body for signing. Only authors call this; a node never
    /// re-encodes a body it received.
    pub fn encode(&self) -> Vec<u8> {
        let subject = Writer::new()
            .string(1, &self.subject.kind)
            .string(2, &self.subject.id)
            .finish();
        let any = Writer::new()
            .string(1, &format!("{TYPE_URL_PREFIX}{}", self.payload.message))
            .bytes(2, &self.payload.value)
            .finish();
        Writer::new()
            .u64(1, u64::from(self.schema_version))
            .message(2, &subject)
            .u64(3, self.sequence)
            .bytes(4, self.previous.as_ref().map_or(&[][..], |p| &p.0[..]))
            .bytes(5, &self.author.0)
            .i64(6, self.time_ms)
            .message(7, &any)
            .finish()
    }

    /// Decodes body bytes, checking the framing: schema, subject, ids, time.
    pub fn decode(bytes: &[u8]) -> Result<EventBody, Refusal> {
        let mut r = Reader::new("EventBody", bytes);
        let mut schema_version = 0;
        let mut subject = None;
        let mut sequence = 0;
        let mut previous = None;
        let mut author = None;
        let mut time_ms = 0;
        let mut payload = None;
        while let Some((field, v)) = r.next(&[])? {
            match field {
                1 => schema_version = v.u32("schema_version")?,
                2 => subject = Some(v.bytes("subject")?),
                3 => sequence = v.u64("sequence")?,
                4 => previous = Some(digest32(v.bytes("previous")?, "previous", EventId)?),
                5 => author = Some(digest32(v.bytes("author_key_id")?, "author_key_id", KeyId)?),
                6 => time_ms = v.i64("time_unix_ms")?,
                7 => payload = Some(v.bytes("payload")?),
                _ => {}
            }
        }
        // Refuse an unknown schema before reading a payload it may define differently.
        if schema_version != SCHEMA_VERSION {
            return Err(Refusal::UnsupportedSchema(schema_version));
        }
        let subject = decode_subject(subject.ok_or_else(|| Refusal::field("subject", "missing"))?)?;
        let author = author.ok_or_else(|| Refusal::field("author_key_id", "must be 32 bytes"))?;
        if time_ms <= 0 {
            return Err(Refusal::field("time_unix_ms", "must be positive"));
        }
        let payload = decode_any(payload.ok_or_else(|| {
            Refusal::UnknownPayload("(none: the body carries no payload)".to_string())
        })?)?;
        Ok(EventBody {
            schema_version,
            subject,
            sequence,
            previous,
            author,
            time_ms,
            payload,
        })
    }
}

fn decode_subject(bytes: &[u8]) -> Result<SubjectRef, Refusal> {
    let mut r = Reader::new("Subject", bytes);
    let mut s = SubjectRef::new("", "");
    while let Some((field, v)) = r.next(&[])? {
        match field {
            1 => s.kind = v.string("subject.kind")?,
            2 => s.id = v.string("subject.id")?,
            _ => {}
        }
    }
    s.check()?;
    Ok(s)
}

fn decode_any(bytes: &[u8]) -> Result<PayloadBytes, Refusal> {
    let mut r = Reader::new("Any", bytes);
    let mut type_url = String::new();
    let mut value = Vec::new();
    while let Some((field, v)) = r.next(&[])? {
        match field {
            1 => type_url = v.string("payload.type_url")?,
            2 => value = v.bytes("payload.value")?.to_vec(),
            _ => {}
        }
    }
    let message = type_url
        .strip_prefix(TYPE_URL_PREFIX)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| {
            Refusal::UnknownPayload(format!(
                "type URL {type_url:?} (expected {TYPE_URL_PREFIX}<message>)"
            ))
        })?;
    Ok(PayloadBytes {
        message: message.to_string(),
        value,
    })
}

/// Encodes a public key as `ics.core.v1.PublicKey`.
pub fn encode_public_key(key: &PublicKey) -> Vec<u8> {
    Writer::new()
        .i32(1, i32::from(algorithm_number(key.algorithm())))
        .bytes(2, key.bytes())
        .finish()
}

/// The `ics.core.v1.SignatureAlgorithm` number of an algorithm.
pub fn algorithm_number(a: Algorithm) -> u8 {
    match a {
        Algorithm::Ed25519 => 1,
        Algorithm::EcdsaP256Sha256 => 2,
    }
}

pub fn algorithm_from_number(n: i32, field: &str) -> Result<Algorithm, Refusal> {
    match n {
        1 => Ok(Algorithm::Ed25519),
        2 => Ok(Algorithm::EcdsaP256Sha256),
        _ => Err(Refusal::field(
            field,
            format!("unknown signature algorithm {n}"),
        )),
    }
}

/// Decodes an `ics.core.v1.PublicKey`, validating the point.
pub fn decode_public_key(bytes: &[u8], field: &str) -> Result<PublicKey, Refusal> {
    let mut r = Reader::new("PublicKey", bytes);
    let mut algorithm = 0;
    let mut key = Vec::new();
    while let Some((f, v)) = r.next(&[])? {
        match f {
            1 => algorithm = v.i32(field)?,
            2 => key = v.bytes(field)?.to_vec(),
            _ => {}
        }
    }
    let alg = algorithm_from_number(algorithm, &format!("{field}.algorithm"))?;
    PublicKey::new(alg, key).map_err(|e| Refusal::field(field, e.to_string()))
}

/// Signs encoded body bytes with each key: what an author does.
pub fn sign_bytes(body: Vec<u8>, keys: &[&SigningKey]) -> Envelope {
    let signatures = keys
        .iter()
        .map(|k| Signature {
            key_id: k.key_id(),
            algorithm: k.algorithm(),
            bytes: k.sign_event(&body),
        })
        .collect();
    Envelope { body, signatures }
}

/// Encodes `body` and signs it with each key.
pub fn sign(body: &EventBody, keys: &[&SigningKey]) -> Envelope {
    sign_bytes(body.encode(), keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> EventBody {
        EventBody {
            schema_version: SCHEMA_VERSION,
            subject: SubjectRef::new("device", "ab"),
            sequence: 3,
            previous: Some(EventId([7; 32])),
            author: KeyId([9; 32]),
            time_ms: 1_700_000_000_000,
            payload: PayloadBytes {
                message: "ics.test.v1.Thing".to_string(),
                value: vec![8, 1],
            },
        }
    }

    #[test]
    fn body_round_trips() {
        let b = body();
        assert_eq!(EventBody::decode(&b.encode()).unwrap(), b);
        let mut first = body();
        first.sequence = 0;
        first.previous = None;
        assert_eq!(EventBody::decode(&first.encode()).unwrap(), first);
    }

    #[test]
    fn bad_framing_is_refused_with_the_field_named() {
        let mut b = body();
        b.schema_version = 1;
        assert_eq!(
            EventBody::decode(&b.encode()),
            Err(Refusal::UnsupportedSchema(1))
        );
        let mut b = body();
        b.time_ms = 0;
        assert!(
            matches!(EventBody::decode(&b.encode()), Err(Refusal::InvalidField { field, .. }) if field == "time_unix_ms")
        );
        let mut b = body();
        b.subject.id = "x".repeat(129);
        assert!(
            matches!(EventBody::decode(&b.encode()), Err(Refusal::InvalidField { field, .. }) if field == "subject.id")
        );
        let mut b = body();
        b.payload.message = String::new();
        assert!(matches!(
            EventBody::decode(&b.encode()),
            Err(Refusal::UnknownPayload(_))
        ));
        assert!(matches!(
            EventBody::decode(b"\x0a\x05trunc"),
            Err(Refusal::Malformed(_))
        ));
    }

    #[test]
    fn public_keys_round_trip() {
        for alg in [Algorithm::Ed25519, Algorithm::EcdsaP256Sha256] {
            let k = SigningKey::generate(alg).public_key();
            assert_eq!(decode_public_key(&encode_public_key(&k), "k").unwrap(), k);
        }
        let bad = Writer::new().i32(1, 7).bytes(2, &[1; 32]).finish();
        assert!(decode_public_key(&bad, "k").is_err());
    }
}
