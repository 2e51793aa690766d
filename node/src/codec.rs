//! Conversions between the protobuf wire types and the domain types. The
//! only place prost types meet the domain: everything past here speaks
//! `domain::*`. Decoding validates (`TryFrom` style) and names the field at fault.

use std::collections::BTreeSet;

use ics_proto::v1 as pb;
use prost::Message;

use crate::domain::event::{
    CodeIdentity, CodeStatus, DeviceStatus, EndorsementKind, Envelope, Event, EventBody, EventId,
    EventKind, Payload, Signature, SubjectKind, SubjectRef,
};
use crate::domain::keys::{Algorithm, KeyId, PublicKey};
use crate::domain::openpgp::DeviceSignatures;
use crate::domain::refusal::{EventLimits, Refusal};

fn field(name: &str, reason: impl Into<String>) -> Refusal {
    Refusal::InvalidField {
        field: name.to_string(),
        reason: reason.into(),
    }
}

pub fn algorithm_from_pb(value: i32, name: &str) -> Result<Algorithm, Refusal> {
    match pb::SignatureAlgorithm::try_from(value) {
        Ok(pb::SignatureAlgorithm::Ed25519) => Ok(Algorithm::Ed25519),
        Ok(pb::SignatureAlgorithm::EcdsaP256Sha256) => Ok(Algorithm::EcdsaP256Sha256),
        _ => Err(field(name, format!("unknown signature algorithm {value}"))),
    }
}

pub fn algorithm_to_pb(a: Algorithm) -> i32 {
    match a {
        Algorithm::Ed25519 => pb::SignatureAlgorithm::Ed25519 as i32,
        Algorithm::EcdsaP256Sha256 => pb::SignatureAlgorithm::EcdsaP256Sha256 as i32,
    }
}

fn public_key_from_pb(k: Option<pb::PublicKey>, name: &str) -> Result<PublicKey, Refusal> {
    let k = k.ok_or_else(|| field(name, "missing"))?;
    let alg = algorithm_from_pb(k.algorithm, &format!("{name}.algorithm"))?;
    PublicKey::new(alg, k.key).map_err(|e| field(name, e.to_string()))
}

fn public_key_to_pb(k: &PublicKey) -> pb::PublicKey {
    pb::PublicKey {
        algorithm: algorithm_to_pb(k.algorithm()),
        key: k.bytes().to_vec(),
    }
}

pub fn subject_kind_from_pb(value: i32) -> Result<SubjectKind, Refusal> {
    match pb::SubjectKind::try_from(value) {
        Ok(pb::SubjectKind::Party) => Ok(SubjectKind::Party),
        Ok(pb::SubjectKind::AuthorKey) => Ok(SubjectKind::AuthorKey),
        Ok(pb::SubjectKind::Device) => Ok(SubjectKind::Device),
        Ok(pb::SubjectKind::Code) => Ok(SubjectKind::Code),
        Ok(pb::SubjectKind::Service) => Ok(SubjectKind::Service),
        _ => Err(field(
            "subject.kind",
            format!("unknown subject kind {value}"),
        )),
    }
}

pub fn subject_kind_to_pb(k: SubjectKind) -> i32 {
    match k {
        SubjectKind::Party => pb::SubjectKind::Party as i32,
        SubjectKind::AuthorKey => pb::SubjectKind::AuthorKey as i32,
        SubjectKind::Device => pb::SubjectKind::Device as i32,
        SubjectKind::Code => pb::SubjectKind::Code as i32,
        SubjectKind::Service => pb::SubjectKind::Service as i32,
    }
}

pub fn subject_from_pb(s: Option<pb::Subject>) -> Result<SubjectRef, Refusal> {
    let s = s.ok_or_else(|| field("subject", "missing"))?;
    let kind = subject_kind_from_pb(s.kind)?;
    if s.id.is_empty() || s.id.len() > 128 {
        return Err(field("subject.id", "must be 1-128 bytes"));
    }
    Ok(SubjectRef::new(kind, s.id))
}

pub fn subject_to_pb(s: &SubjectRef) -> pb::Subject {
    pb::Subject {
        kind: subject_kind_to_pb(s.kind),
        id: s.id.clone(),
    }
}

fn event_kind_from_pb(value: i32) -> Result<EventKind, Refusal> {
    use pb::EventKind as K;
    match K::try_from(value) {
        Ok(K::PartyGenesis) => Ok(EventKind::PartyGenesis),
        Ok(K::AuthorKeyRegistered) => Ok(EventKind::AuthorKeyRegistered),
        Ok(K::AuthorKeyRevoked) => Ok(EventKind::AuthorKeyRevoked),
        Ok(K::DeviceRegistered) => Ok(EventKind::DeviceRegistered),
        Ok(K::DeviceStatusChanged) => Ok(EventKind::DeviceStatusChanged),
        Ok(K::CodeReleased) => Ok(EventKind::CodeReleased),
        Ok(K::CodeStatusChanged) => Ok(EventKind::CodeStatusChanged),
        Ok(K::PartyRecognized) => Ok(EventKind::PartyRecognized),
        Ok(K::AccessGranted) => Ok(EventKind::AccessGranted),
        Ok(K::Endorsed) => Ok(EventKind::Endorsed),
        Ok(K::EndorsementWithdrawn) => Ok(EventKind::EndorsementWithdrawn),
        Ok(K::ServiceRegistered) => Ok(EventKind::ServiceRegistered),
        Ok(K::KeyRotated) => Ok(EventKind::KeyRotated),
        _ => Err(field(
            "allowed_kinds",
            format!("unknown event kind {value}"),
        )),
    }
}

fn event_kind_to_pb(k: EventKind) -> i32 {
    use pb::EventKind as K;
    (match k {
        EventKind::PartyGenesis => K::PartyGenesis,
        EventKind::AuthorKeyRegistered => K::AuthorKeyRegistered,
        EventKind::AuthorKeyRevoked => K::AuthorKeyRevoked,
        EventKind::DeviceRegistered => K::DeviceRegistered,
        EventKind::DeviceStatusChanged => K::DeviceStatusChanged,
        EventKind::CodeReleased => K::CodeReleased,
        EventKind::CodeStatusChanged => K::CodeStatusChanged,
        EventKind::PartyRecognized => K::PartyRecognized,
        EventKind::AccessGranted => K::AccessGranted,
        EventKind::Endorsed => K::Endorsed,
        EventKind::EndorsementWithdrawn => K::EndorsementWithdrawn,
        EventKind::ServiceRegistered => K::ServiceRegistered,
        EventKind::KeyRotated => K::KeyRotated,
    }) as i32
}

fn status_from_pb(value: i32) -> Result<DeviceStatus, Refusal> {
    use pb::DeviceStatus as S;
    match S::try_from(value) {
        Ok(S::Planned) => Ok(DeviceStatus::Planned),
        Ok(S::InUse) => Ok(DeviceStatus::InUse),
        Ok(S::Retired) => Ok(DeviceStatus::Retired),
        Ok(S::Destroyed) => Ok(DeviceStatus::Destroyed),
        Ok(S::Stolen) => Ok(DeviceStatus::Stolen),
        Ok(S::Lost) => Ok(DeviceStatus::Lost),
        _ => Err(field("status", format!("unknown device status {value}"))),
    }
}

fn status_to_pb(s: DeviceStatus) -> i32 {
    use pb::DeviceStatus as S;
    (match s {
        DeviceStatus::Planned => S::Planned,
        DeviceStatus::InUse => S::InUse,
        DeviceStatus::Retired => S::Retired,
        DeviceStatus::Destroyed => S::Destroyed,
        DeviceStatus::Stolen => S::Stolen,
        DeviceStatus::Lost => S::Lost,
    }) as i32
}

fn code_status_from_pb(value: i32) -> Result<CodeStatus, Refusal> {
    use pb::CodeStatus as S;
    match S::try_from(value) {
        Ok(S::Released) => Ok(CodeStatus::Released),
        Ok(S::Deprecated) => Ok(CodeStatus::Deprecated),
        Ok(S::Withdrawn) => Ok(CodeStatus::Withdrawn),
        _ => Err(field("status", format!("unknown code status {value}"))),
    }
}

fn code_status_to_pb(s: CodeStatus) -> i32 {
    use pb::CodeStatus as S;
    (match s {
        CodeStatus::Released => S::Released,
        CodeStatus::Deprecated => S::Deprecated,
        CodeStatus::Withdrawn => S::Withdrawn,
    }) as i32
}

fn endorsement_kind_from_pb(value: i32) -> Result<EndorsementKind, Refusal> {
    use pb::EndorsementKind as E;
    match E::try_from(value) {
        Ok(E::IntegratorApproval) => Ok(EndorsementKind::IntegratorApproval),
        Ok(E::Maintainer) => Ok(EndorsementKind::Maintainer),
        Ok(E::TrustLabel) => Ok(EndorsementKind::TrustLabel),
        _ => Err(field("kind", format!("unknown endorsement kind {value}"))),
    }
}

fn endorsement_kind_to_pb(k: EndorsementKind) -> i32 {
    use pb::EndorsementKind as E;
    (match k {
        EndorsementKind::IntegratorApproval => E::IntegratorApproval,
        EndorsementKind::Maintainer => E::Maintainer,
        EndorsementKind::TrustLabel => E::TrustLabel,
    }) as i32
}

fn digest(bytes: &[u8], name: &str) -> Result<[u8; 32], Refusal> {
    bytes
        .try_into()
        .map_err(|_| field(name, format!("must be 32 bytes, got {}", bytes.len())))
}

/// Proto3 bytes: empty means absent.
fn non_empty(bytes: Vec<u8>) -> Option<Vec<u8>> {
    (!bytes.is_empty()).then_some(bytes)
}

fn payload_from_pb(p: Option<pb::event_body::Payload>) -> Result<Payload, Refusal> {
    use pb::event_body::Payload as P;
    Ok(match p.ok_or(Refusal::UnknownPayload)? {
        P::PartyGenesis(g) => Payload::PartyGenesis {
            party_name: g.party_name,
            role: g.role,
            root_key: public_key_from_pb(g.root_key, "root_key")?,
        },
        P::AuthorKeyRegistered(a) => Payload::AuthorKeyRegistered {
            key: public_key_from_pb(a.key, "key")?,
            label: a.label,
            allowed_kinds: a
                .allowed_kinds
                .into_iter()
                .map(event_kind_from_pb)
                .collect::<Result<BTreeSet<_>, _>>()?,
            not_after_ms: a.not_after_unix_ms,
        },
        P::AuthorKeyRevoked(r) => Payload::AuthorKeyRevoked { reason: r.reason },
        P::DeviceRegistered(d) => Payload::DeviceRegistered {
            serial: d.serial,
            device_key: public_key_from_pb(d.device_key, "device_key")?,
            attributes: d
                .attributes
                .into_iter()
                .map(|a| (a.name, a.value))
                .collect(),
            openpgp: d
                .openpgp
                .map(|o| -> Result<_, Refusal> {
                    Ok(DeviceSignatures {
                        self_signature: o.self_signature,
                        certification: o.certification,
                        revocation_compromised_digest: digest(
                            &o.revocation_compromised_digest,
                            "openpgp.revocation_compromised_digest",
                        )?,
                        revocation_retired_digest: digest(
                            &o.revocation_retired_digest,
                            "openpgp.revocation_retired_digest",
                        )?,
                    })
                })
                .transpose()?,
        },
        P::DeviceStatusChanged(s) => Payload::DeviceStatusChanged {
            status: status_from_pb(s.status)?,
            reason: s.reason,
            openpgp_revocation: non_empty(s.openpgp_revocation),
        },
        P::CodeReleased(c) => Payload::CodeReleased(CodeIdentity {
            name: c.name,
            version: c.version,
            blake3: digest(&c.blake3, "blake3")?,
            sha256: digest(&c.sha256, "sha256")?,
            suit_manifest_uri: (!c.suit_manifest_uri.is_empty()).then_some(c.suit_manifest_uri),
            openpgp_signature: non_empty(c.openpgp_signature),
        }),
        P::CodeStatusChanged(s) => Payload::CodeStatusChanged {
            status: code_status_from_pb(s.status)?,
            reason: s.reason,
        },
        P::PartyRecognized(r) => Payload::PartyRecognized {
            role: r.role,
            root_key: public_key_from_pb(r.root_key, "root_key")?,
        },
        P::AccessGranted(g) => Payload::AccessGranted {
            party: g.party,
            kinds: g
                .kinds
                .into_iter()
                .map(event_kind_from_pb)
                .collect::<Result<BTreeSet<_>, _>>()?,
        },
        P::Endorsed(e) => Payload::Endorsed {
            kind: endorsement_kind_from_pb(e.kind)?,
            scope: e.scope,
            not_after_ms: e.not_after_unix_ms,
            openpgp_certification: non_empty(e.openpgp_certification),
        },
        P::EndorsementWithdrawn(w) => Payload::EndorsementWithdrawn {
            endorsement: EventId::from_slice(&w.endorsement_id)
                .ok_or_else(|| field("endorsement_id", "must be 32 bytes"))?,
            reason: w.reason,
            openpgp_revocation: non_empty(w.openpgp_revocation),
        },
        P::ServiceRegistered(s) => Payload::ServiceRegistered {
            name: s.name,
            service_key: public_key_from_pb(s.service_key, "service_key")?,
            endpoints: s.endpoints,
            owner: s.owner,
        },
        P::KeyRotated(r) => Payload::KeyRotated {
            new_key: public_key_from_pb(r.new_key, "new_key")?,
            reason: r.reason,
            openpgp_revocation: non_empty(r.openpgp_revocation),
        },
    })
}

fn payload_to_pb(p: &Payload) -> pb::event_body::Payload {
    use pb::event_body::Payload as P;
    match p {
        Payload::PartyGenesis {
            party_name,
            role,
            root_key,
        } => P::PartyGenesis(pb::PartyGenesis {
            party_name: party_name.clone(),
            role: role.clone(),
            root_key: Some(public_key_to_pb(root_key)),
        }),
        Payload::AuthorKeyRegistered {
            key,
            label,
            allowed_kinds,
            not_after_ms,
        } => P::AuthorKeyRegistered(pb::AuthorKeyRegistered {
            key: Some(public_key_to_pb(key)),
            label: label.clone(),
            allowed_kinds: allowed_kinds.iter().map(|k| event_kind_to_pb(*k)).collect(),
            not_after_unix_ms: *not_after_ms,
        }),
        Payload::AuthorKeyRevoked { reason } => P::AuthorKeyRevoked(pb::AuthorKeyRevoked {
            reason: reason.clone(),
        }),
        Payload::DeviceRegistered {
            serial,
            device_key,
            attributes,
            openpgp,
        } => P::DeviceRegistered(pb::DeviceRegistered {
            serial: serial.clone(),
            device_key: Some(public_key_to_pb(device_key)),
            attributes: attributes
                .iter()
                .map(|(name, value)| pb::Attribute {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
            openpgp: openpgp.as_ref().map(|o| pb::DeviceOpenPgp {
                self_signature: o.self_signature.clone(),
                certification: o.certification.clone(),
                revocation_compromised_digest: o.revocation_compromised_digest.to_vec(),
                revocation_retired_digest: o.revocation_retired_digest.to_vec(),
            }),
        }),
        Payload::DeviceStatusChanged {
            status,
            reason,
            openpgp_revocation,
        } => P::DeviceStatusChanged(pb::DeviceStatusChanged {
            status: status_to_pb(*status),
            reason: reason.clone(),
            openpgp_revocation: openpgp_revocation.clone().unwrap_or_default(),
        }),
        Payload::CodeReleased(c) => P::CodeReleased(pb::CodeReleased {
            name: c.name.clone(),
            version: c.version.clone(),
            blake3: c.blake3.to_vec(),
            sha256: c.sha256.to_vec(),
            suit_manifest_uri: c.suit_manifest_uri.clone().unwrap_or_default(),
            openpgp_signature: c.openpgp_signature.clone().unwrap_or_default(),
        }),
        Payload::CodeStatusChanged { status, reason } => {
            P::CodeStatusChanged(pb::CodeStatusChanged {
                status: code_status_to_pb(*status),
                reason: reason.clone(),
            })
        }
        Payload::PartyRecognized { role, root_key } => P::PartyRecognized(pb::PartyRecognized {
            role: role.clone(),
            root_key: Some(public_key_to_pb(root_key)),
        }),
        Payload::AccessGranted { party, kinds } => P::AccessGranted(pb::AccessGranted {
            party: party.clone(),
            kinds: kinds.iter().map(|k| event_kind_to_pb(*k)).collect(),
        }),
        Payload::Endorsed {
            kind,
            scope,
            not_after_ms,
            openpgp_certification,
        } => P::Endorsed(pb::Endorsed {
            kind: endorsement_kind_to_pb(*kind),
            scope: scope.clone(),
            not_after_unix_ms: *not_after_ms,
            openpgp_certification: openpgp_certification.clone().unwrap_or_default(),
        }),
        Payload::EndorsementWithdrawn {
            endorsement,
            reason,
            openpgp_revocation,
        } => P::EndorsementWithdrawn(pb::EndorsementWithdrawn {
            endorsement_id: endorsement.0.to_vec(),
            reason: reason.clone(),
            openpgp_revocation: openpgp_revocation.clone().unwrap_or_default(),
        }),
        Payload::ServiceRegistered {
            name,
            service_key,
            endpoints,
            owner,
        } => P::ServiceRegistered(pb::ServiceRegistered {
            name: name.clone(),
            service_key: Some(public_key_to_pb(service_key)),
            endpoints: endpoints.clone(),
            owner: owner.clone(),
        }),
        Payload::KeyRotated {
            new_key,
            reason,
            openpgp_revocation,
        } => P::KeyRotated(pb::KeyRotated {
            new_key: Some(public_key_to_pb(new_key)),
            reason: reason.clone(),
            openpgp_revocation: openpgp_revocation.clone().unwrap_or_default(),
        }),
    }
}

/// Encodes a body for signing. Only authors (clients) call this; a node never
/// re-encodes a body it received.
pub fn encode_body(b: &EventBody) -> Vec<u8> {
    pb::EventBody {
        schema_version: b.schema_version,
        subject: Some(subject_to_pb(&b.subject)),
        sequence: b.sequence,
        previous: b.previous.map(|p| p.0.to_vec()).unwrap_or_default(),
        author_key_id: b.author.0.to_vec(),
        time_unix_ms: b.time_ms,
        payload: Some(payload_to_pb(&b.payload)),
    }
    .encode_to_vec()
}

/// Decodes body bytes into the domain body.
pub fn decode_body(bytes: &[u8]) -> Result<EventBody, Refusal> {
    let b = pb::EventBody::decode(bytes).map_err(|e| Refusal::Malformed(e.to_string()))?;
    // Refuse an unknown schema before reading a payload it may define differently.
    if b.schema_version != crate::domain::event::SCHEMA_VERSION {
        return Err(Refusal::UnsupportedSchema(b.schema_version));
    }
    let previous = if b.previous.is_empty() {
        None
    } else {
        Some(
            EventId::from_slice(&b.previous)
                .ok_or_else(|| field("previous", "must be 32 bytes"))?,
        )
    };
    Ok(EventBody {
        schema_version: b.schema_version,
        subject: subject_from_pb(b.subject)?,
        sequence: b.sequence,
        previous,
        author: KeyId::from_slice(&b.author_key_id)
            .ok_or_else(|| field("author_key_id", "must be 32 bytes"))?,
        time_ms: if b.time_unix_ms > 0 {
            b.time_unix_ms
        } else {
            return Err(field("time_unix_ms", "must be positive"));
        },
        payload: payload_from_pb(b.payload)?,
    })
}

pub fn envelope_from_pb(e: pb::SignedEvent) -> Result<Envelope, Refusal> {
    let signatures = e
        .signatures
        .into_iter()
        .map(|s| {
            Ok(Signature {
                key_id: KeyId::from_slice(&s.key_id)
                    .ok_or_else(|| field("signatures.key_id", "must be 32 bytes"))?,
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

/// Parses an envelope into an event, checking the body size before decoding.
pub fn parse_event(envelope: Envelope, limits: &EventLimits) -> Result<Event, Refusal> {
    if envelope.body.len() > limits.max_body_bytes {
        return Err(Refusal::BodyTooLarge {
            size: envelope.body.len(),
            limit: limits.max_body_bytes,
        });
    }
    let body = decode_body(&envelope.body)?;
    Ok(Event {
        id: EventId::of_body(&envelope.body),
        envelope,
        body,
    })
}

/// Encodes `body` and signs it with each key: what an author (client) does.
pub fn sign(body: &EventBody, keys: &[&crate::domain::keys::SigningKey]) -> Envelope {
    let bytes = encode_body(body);
    let signatures = keys
        .iter()
        .map(|k| Signature {
            key_id: k.key_id(),
            algorithm: k.algorithm(),
            bytes: k.sign_event(&bytes),
        })
        .collect();
    Envelope {
        body: bytes,
        signatures,
    }
}
