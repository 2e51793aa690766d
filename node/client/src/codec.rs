//! Conversions between the protobuf wire types of the log API and the
//! kernel's types. Decoding validates and names the field at fault. The
//! signed body and the payloads are decoded by the kernel and the
//! capabilities themselves; this is only the envelope around them.

use ics_kernel::envelope::{algorithm_from_number, algorithm_number};
use ics_kernel::{Algorithm, Envelope, KeyId, Refusal, Signature, SubjectRef};
use ics_proto::core_v1 as pb;
use prost::Message;

pub fn algorithm_from_pb(value: i32, name: &str) -> Result<Algorithm, Refusal> {
    algorithm_from_number(value, name)
}

pub fn algorithm_to_pb(a: Algorithm) -> i32 {
    i32::from(algorithm_number(a))
}

/// A subject named in a request; its kind is checked against the rules.
pub fn subject_from_pb(s: Option<pb::Subject>) -> Result<SubjectRef, Refusal> {
    let s = s.ok_or_else(|| Refusal::field("subject", "missing"))?;
    crate::capabilities::rules().check_subject_kind(&s.kind)?;
    if s.id.is_empty() || s.id.len() > ics_kernel::envelope::MAX_SUBJECT_ID_BYTES {
        return Err(Refusal::field("subject.id", "must be 1-128 bytes"));
    }
    Ok(SubjectRef::new(s.kind, s.id))
}

pub fn subject_to_pb(s: &SubjectRef) -> pb::Subject {
    pb::Subject {
        kind: s.kind.clone(),
        id: s.id.clone(),
    }
}

pub fn envelope_from_pb(e: pb::SignedEvent) -> Result<Envelope, Refusal> {
    let signatures = e
        .signatures
        .into_iter()
        .map(|s| {
            Ok(Signature {
                key_id: KeyId::from_slice(&s.key_id)
                    .ok_or_else(|| Refusal::field("signatures.key_id", "must be 32 bytes"))?,
                algorithm: algorithm_from_pb(s.algorithm, "signatures.algorithm")?,
                bytes: s.signature,
            })
        })
        .collect::<Result<Vec<_>, Refusal>>()?;
    Ok(Envelope {
        body: e.body,
        signatures,
    })
}

pub fn envelope_to_pb(e: &Envelope) -> pb::SignedEvent {
    pb::SignedEvent {
        body: e.body.clone(),
        signatures: e
            .signatures
            .iter()
            .map(|s| pb::Signature {
                key_id: s.key_id.0.to_vec(),
                algorithm: algorithm_to_pb(s.algorithm),
                signature: s.bytes.clone(),
            })
            .collect(),
    }
}

/// Envelope bytes as stored in the log and in the state machine.
pub fn envelope_to_bytes(e: &Envelope) -> Vec<u8> {
    envelope_to_pb(e).encode_to_vec()
}

pub fn envelope_from_bytes(bytes: &[u8]) -> Result<Envelope, Refusal> {
    let pb = pb::SignedEvent::decode(bytes).map_err(|e| Refusal::Malformed(e.to_string()))?;
    envelope_from_pb(pb)
}

/// Parses an envelope into an event with this node's rules, checking the
/// body size before decoding.
pub fn parse_event(
    envelope: Envelope,
    limits: &ics_kernel::EventLimits,
) -> Result<ics_kernel::Event, Refusal> {
    crate::capabilities::rules().parse(envelope, limits)
}
