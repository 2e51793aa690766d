//! The identity payloads on the wire (`proto/ics/identity/v1`): decoding
//! validates and names the field at fault; encoding is for authors only.

use ics_kernel::KindSpec;
use ics_kernel::capability::{Field, Payload};
use ics_kernel::envelope::{algorithm_from_number, algorithm_number};
use ics_kernel::{EventId, PublicKey, Refusal};
use ics_proto::core_v1 as core;
use ics_proto::identity_v1 as pb;
use prost::Message;

use crate::payload::*;

fn field(name: &str, reason: impl Into<String>) -> Refusal {
    Refusal::field(name, reason)
}

pub fn public_key_from_pb(k: Option<core::PublicKey>, name: &str) -> Result<PublicKey, Refusal> {
    let k = k.ok_or_else(|| field(name, "missing"))?;
    let alg = algorithm_from_number(k.algorithm, &format!("{name}.algorithm"))?;
    PublicKey::new(alg, k.key).map_err(|e| field(name, e.to_string()))
}

pub fn public_key_to_pb(k: &PublicKey) -> core::PublicKey {
    core::PublicKey {
        algorithm: i32::from(algorithm_number(k.algorithm())),
        key: k.bytes().to_vec(),
    }
}

fn device_status(value: i32) -> Result<DeviceStatus, Refusal> {
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

fn device_status_to_pb(s: DeviceStatus) -> i32 {
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

fn code_status(value: i32) -> Result<CodeStatus, Refusal> {
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

fn endorsement_kind(value: i32) -> Result<EndorsementKind, Refusal> {
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

fn parse<M: Message + Default>(kind: &KindSpec, bytes: &[u8]) -> Result<M, Refusal> {
    M::decode(bytes).map_err(|e| Refusal::Malformed(format!("{}: {e}", kind.message)))
}

/// Decodes the payload of one identity kind.
pub fn decode(kind: &'static KindSpec, bytes: &[u8]) -> Result<IdentityPayload, Refusal> {
    let is = |k: &KindSpec| std::ptr::eq(kind, k);
    Ok(if is(&DEVICE_REGISTERED) {
        let d: pb::DeviceRegistered = parse(kind, bytes)?;
        IdentityPayload::DeviceRegistered {
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
        }
    } else if is(&DEVICE_STATUS_CHANGED) {
        let s: pb::DeviceStatusChanged = parse(kind, bytes)?;
        IdentityPayload::DeviceStatusChanged {
            status: device_status(s.status)?,
            reason: s.reason,
            openpgp_revocation: non_empty(s.openpgp_revocation),
        }
    } else if is(&CODE_RELEASED) {
        let c: pb::CodeReleased = parse(kind, bytes)?;
        IdentityPayload::CodeReleased(CodeIdentity {
            name: c.name,
            version: c.version,
            blake3: digest(&c.blake3, "blake3")?,
            sha256: digest(&c.sha256, "sha256")?,
            suit_manifest_uri: (!c.suit_manifest_uri.is_empty()).then_some(c.suit_manifest_uri),
            openpgp_signature: non_empty(c.openpgp_signature),
        })
    } else if is(&CODE_STATUS_CHANGED) {
        let s: pb::CodeStatusChanged = parse(kind, bytes)?;
        IdentityPayload::CodeStatusChanged {
            status: code_status(s.status)?,
            reason: s.reason,
        }
    } else if is(&ENDORSED) {
        let e: pb::Endorsed = parse(kind, bytes)?;
        IdentityPayload::Endorsed {
            kind: endorsement_kind(e.kind)?,
            scope: e.scope,
            not_after_ms: e.not_after_unix_ms,
            openpgp_certification: non_empty(e.openpgp_certification),
        }
    } else if is(&ENDORSEMENT_WITHDRAWN) {
        let w: pb::EndorsementWithdrawn = parse(kind, bytes)?;
        IdentityPayload::EndorsementWithdrawn {
            endorsement: EventId::from_slice(&w.endorsement_id)
                .ok_or_else(|| field("endorsement_id", "must be 32 bytes"))?,
            reason: w.reason,
            openpgp_revocation: non_empty(w.openpgp_revocation),
        }
    } else if is(&SERVICE_REGISTERED) {
        let s: pb::ServiceRegistered = parse(kind, bytes)?;
        IdentityPayload::ServiceRegistered {
            name: s.name,
            service_key: public_key_from_pb(s.service_key, "service_key")?,
            endpoints: s.endpoints,
            owner: s.owner,
        }
    } else if is(&SERVICE_ENDPOINTS_CHANGED) {
        let c: pb::ServiceEndpointsChanged = parse(kind, bytes)?;
        IdentityPayload::ServiceEndpointsChanged {
            endpoints: c.endpoints,
        }
    } else {
        assert!(is(&KEY_ROTATED), "an identity kind");
        let r: pb::KeyRotated = parse(kind, bytes)?;
        IdentityPayload::KeyRotated {
            new_key: public_key_from_pb(r.new_key, "new_key")?,
            reason: r.reason,
            openpgp_revocation: non_empty(r.openpgp_revocation),
        }
    })
}

/// Encodes a payload's message.
pub fn encode(p: &IdentityPayload) -> Vec<u8> {
    match p {
        IdentityPayload::DeviceRegistered {
            serial,
            device_key,
            attributes,
            openpgp,
        } => pb::DeviceRegistered {
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
        }
        .encode_to_vec(),
        IdentityPayload::DeviceStatusChanged {
            status,
            reason,
            openpgp_revocation,
        } => pb::DeviceStatusChanged {
            status: device_status_to_pb(*status),
            reason: reason.clone(),
            openpgp_revocation: openpgp_revocation.clone().unwrap_or_default(),
        }
        .encode_to_vec(),
        IdentityPayload::CodeReleased(c) => pb::CodeReleased {
            name: c.name.clone(),
            version: c.version.clone(),
            blake3: c.blake3.to_vec(),
            sha256: c.sha256.to_vec(),
            suit_manifest_uri: c.suit_manifest_uri.clone().unwrap_or_default(),
            openpgp_signature: c.openpgp_signature.clone().unwrap_or_default(),
        }
        .encode_to_vec(),
        IdentityPayload::CodeStatusChanged { status, reason } => pb::CodeStatusChanged {
            status: code_status_to_pb(*status),
            reason: reason.clone(),
        }
        .encode_to_vec(),
        IdentityPayload::Endorsed {
            kind,
            scope,
            not_after_ms,
            openpgp_certification,
        } => pb::Endorsed {
            kind: endorsement_kind_to_pb(*kind),
            scope: scope.clone(),
            not_after_unix_ms: *not_after_ms,
            openpgp_certification: openpgp_certification.clone().unwrap_or_default(),
        }
        .encode_to_vec(),
        IdentityPayload::EndorsementWithdrawn {
            endorsement,
            reason,
            openpgp_revocation,
        } => pb::EndorsementWithdrawn {
            endorsement_id: endorsement.0.to_vec(),
            reason: reason.clone(),
            openpgp_revocation: openpgp_revocation.clone().unwrap_or_default(),
        }
        .encode_to_vec(),
        IdentityPayload::ServiceRegistered {
            name,
            service_key,
            endpoints,
            owner,
        } => pb::ServiceRegistered {
            name: name.clone(),
            service_key: Some(public_key_to_pb(service_key)),
            endpoints: endpoints.clone(),
            owner: owner.clone(),
        }
        .encode_to_vec(),
        IdentityPayload::KeyRotated {
            new_key,
            reason,
            openpgp_revocation,
        } => pb::KeyRotated {
            new_key: Some(public_key_to_pb(new_key)),
            reason: reason.clone(),
            openpgp_revocation: openpgp_revocation.clone().unwrap_or_default(),
        }
        .encode_to_vec(),
        IdentityPayload::ServiceEndpointsChanged { endpoints } => pb::ServiceEndpointsChanged {
            endpoints: endpoints.clone(),
        }
        .encode_to_vec(),
    }
}

/// The kinds' data lives in `payload.rs`; their wire form here.
impl Payload for IdentityPayload {
    fn kind(&self) -> &'static KindSpec {
        match self {
            IdentityPayload::DeviceRegistered { .. } => &DEVICE_REGISTERED,
            IdentityPayload::DeviceStatusChanged { .. } => &DEVICE_STATUS_CHANGED,
            IdentityPayload::CodeReleased(_) => &CODE_RELEASED,
            IdentityPayload::CodeStatusChanged { .. } => &CODE_STATUS_CHANGED,
            IdentityPayload::Endorsed { .. } => &ENDORSED,
            IdentityPayload::EndorsementWithdrawn { .. } => &ENDORSEMENT_WITHDRAWN,
            IdentityPayload::ServiceRegistered { .. } => &SERVICE_REGISTERED,
            IdentityPayload::KeyRotated { .. } => &KEY_ROTATED,
            IdentityPayload::ServiceEndpointsChanged { .. } => &SERVICE_ENDPOINTS_CHANGED,
        }
    }

    fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    fn describe(&self) -> Vec<(&'static str, Field)> {
        use IdentityPayload as P;
        let published = |r: &Option<Vec<u8>>| Field::Bool(r.is_some());
        match self {
            P::DeviceRegistered {
                serial,
                device_key,
                attributes,
                openpgp,
            } => vec![
                ("serial", Field::text(serial)),
                ("device_key", Field::key(device_key)),
                ("attributes", Field::Map(attributes.clone())),
                ("openpgp", Field::Bool(openpgp.is_some())),
            ],
            P::DeviceStatusChanged {
                status,
                reason,
                openpgp_revocation,
            } => vec![
                ("status", Field::text(status.name())),
                ("reason", Field::text(reason)),
                ("openpgp_revocation", published(openpgp_revocation)),
            ],
            P::CodeReleased(c) => vec![
                ("name", Field::text(&c.name)),
                ("version", Field::text(&c.version)),
                ("blake3", Field::text(hex::encode(c.blake3))),
                ("sha256", Field::text(hex::encode(c.sha256))),
                (
                    "suit_manifest_uri",
                    Field::optional(c.suit_manifest_uri.clone()),
                ),
                ("openpgp", published(&c.openpgp_signature)),
            ],
            P::CodeStatusChanged { status, reason } => vec![
                ("status", Field::text(status.name())),
                ("reason", Field::text(reason)),
            ],
            P::Endorsed {
                kind,
                scope,
                not_after_ms,
                openpgp_certification,
            } => vec![
                ("kind", Field::text(kind.name())),
                ("scope", Field::text(scope)),
                ("not_after_unix_ms", Field::Number(*not_after_ms)),
                ("openpgp", published(openpgp_certification)),
            ],
            P::EndorsementWithdrawn {
                endorsement,
                reason,
                openpgp_revocation,
            } => vec![
                ("endorsement", Field::text(endorsement.to_hex())),
                ("reason", Field::text(reason)),
                ("openpgp", published(openpgp_revocation)),
            ],
            P::ServiceRegistered {
                name,
                service_key,
                endpoints,
                owner,
            } => vec![
                ("name", Field::text(name)),
                ("owner", Field::text(owner)),
                ("endpoints", Field::List(endpoints.clone())),
                ("service_key", Field::key(service_key)),
            ],
            P::ServiceEndpointsChanged { endpoints } => {
                vec![("endpoints", Field::List(endpoints.clone()))]
            }
            P::KeyRotated {
                new_key,
                reason,
                openpgp_revocation,
            } => vec![
                ("new_key", Field::key(new_key)),
                ("reason", Field::text(reason)),
                ("openpgp_revocation", published(openpgp_revocation)),
            ],
        }
    }

    fn introduced_keys(&self) -> Vec<&PublicKey> {
        match self {
            // A rotation is also signed by the key it brings in.
            IdentityPayload::KeyRotated { new_key, .. } => vec![new_key],
            _ => Vec::new(),
        }
    }
}
