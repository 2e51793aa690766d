//! The projections of the event log and the pure rules that grow it.
//!
//! `decide(view, event)` checks an event against a read-only view of the
//! state and returns the effects of accepting it; `Staged::stage` applies
//! effects to an overlay so a batch is checked as a whole; `Projection::commit`
//! merges an accepted batch. Nothing here reads a clock or does I/O: the
//! event's own time is the only time the rules see.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::event::{
    CodeIdentity, CodeStatus, DeviceStatus, EndorsementKind, Event, EventId, EventKind, Payload,
    SCHEMA_VERSION, SubjectKind, SubjectRef,
};
use super::keys::{KeyId, PublicKey};
use super::openpgp::{self, DeviceCertificate};
use super::refusal::{EventLimits, Refusal};
use super::roles::Role;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartyState {
    pub name: String,
    pub role: String,
    pub root_key: KeyId,
    pub genesis_ms: i64,
}

/// A key that may sign for the party: the root key or a registered author key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyState {
    /// The party the key signs for: this party, or one it recognized.
    pub party: String,
    pub public_key: PublicKey,
    pub label: String,
    /// `None` for the root key, which may sign every kind.
    pub allowed_kinds: Option<BTreeSet<EventKind>>,
    pub registered_ms: i64,
    pub not_after_ms: Option<i64>,
    pub revoked: bool,
}

impl KeyState {
    pub fn may_sign(&self, kind: EventKind) -> bool {
        match &self.allowed_kinds {
            None => true,
            Some(kinds) => kinds.contains(&kind),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SubjectDetail {
    Party,
    /// Another party this one recognizes.
    ForeignParty {
        role: String,
        root_key: KeyId,
    },
    AuthorKey {
        key_id: KeyId,
    },
    Device {
        serial: String,
        device_key: PublicKey,
        attributes: Vec<(String, String)>,
        status: DeviceStatus,
        /// The device's OpenPGP certificate, when registered with one.
        openpgp: Option<Box<DeviceCertificate>>,
    },
    Code {
        identity: CodeIdentity,
        status: CodeStatus,
    },
    Service {
        name: String,
        service_key: PublicKey,
        endpoints: Vec<String>,
        owner: String,
    },
}

impl SubjectDetail {
    /// The key that identifies a device or service now (rotation replaces it).
    pub fn current_key(&self) -> Option<&PublicKey> {
        match self {
            SubjectDetail::Device { device_key, .. } => Some(device_key),
            SubjectDetail::Service { service_key, .. } => Some(service_key),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectState {
    pub next_sequence: u64,
    pub last_event: EventId,
    /// Key that signed the subject's first event.
    pub registered_by: KeyId,
    /// Log indexes of the subject's events, in chain order.
    pub history: Vec<u64>,
    pub detail: SubjectDetail,
    /// Other parties' rights to attach records, by party name.
    pub grants: BTreeMap<String, BTreeSet<EventKind>>,
    pub endorsements: Vec<Endorsement>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endorsement {
    /// The event that made it.
    pub id: EventId,
    pub party: String,
    pub kind: EndorsementKind,
    pub scope: String,
    pub not_after_ms: i64,
    pub withdrawn: bool,
    /// Key that signed the endorsement (and its OpenPGP certification).
    pub author: KeyId,
    pub openpgp_certification: Option<Vec<u8>>,
    pub openpgp_revocation: Option<Vec<u8>>,
}

impl SubjectState {
    /// The device's or code's current status, by name.
    pub fn status(&self) -> Option<&'static str> {
        match &self.detail {
            SubjectDetail::Device { status, .. } => Some(status.name()),
            SubjectDetail::Code { status, .. } => Some(status.name()),
            SubjectDetail::Party
            | SubjectDetail::ForeignParty { .. }
            | SubjectDetail::AuthorKey { .. }
            | SubjectDetail::Service { .. } => None,
        }
    }

    pub fn summary(&self) -> String {
        match &self.detail {
            SubjectDetail::Party => "party".to_string(),
            SubjectDetail::ForeignParty { role, root_key } => {
                format!("recognized {role} party, root key {root_key}")
            }
            SubjectDetail::AuthorKey { key_id } => format!("author key {key_id}"),
            SubjectDetail::Device {
                serial,
                status,
                attributes,
                openpgp,
                ..
            } => {
                let mut attrs: Vec<String> =
                    attributes.iter().map(|(k, v)| format!("{k}={v}")).collect();
                if let Some(c) = openpgp {
                    attrs.push(format!("openpgp={}", c.fingerprint_hex()));
                }
                format!(
                    "device serial={serial} status={} {}",
                    status.name(),
                    attrs.join(" ")
                )
                .trim_end()
                .to_string()
            }
            SubjectDetail::Service {
                name,
                owner,
                endpoints,
                service_key,
            } => format!(
                "service {name} owner={owner} key={} endpoints={}",
                service_key.id(),
                endpoints.join(",")
            ),
            SubjectDetail::Code { identity, status } => format!(
                "code {}@{} status={} sha256={}",
                identity.name,
                identity.version,
                status.name(),
                hex::encode(identity.sha256)
            ),
        }
    }
}

/// Unique-name key of a device serial.
pub fn serial_key(serial: &str) -> String {
    format!("serial:{serial}")
}

/// Unique-name key of a service name.
pub fn service_key_name(name: &str) -> String {
    format!("service:{name}")
}

/// Unique-name key of a key that replaced another by rotation.
pub fn rotated_key_name(key: &KeyId) -> String {
    format!("key:{key}")
}

/// Refuses a key that already identifies a device or service (registered
/// with it or rotated to it) or signs for a party: one key, one identity.
fn check_key_free(view: &impl StateView, key: &KeyId) -> Result<(), Refusal> {
    let taken = [
        SubjectKind::Device,
        SubjectKind::Service,
        SubjectKind::AuthorKey,
    ]
    .into_iter()
    .map(|kind| SubjectRef::new(kind, key.to_hex()))
    .find(|s| view.subject(s).is_some())
    .or_else(|| view.name_owner(&rotated_key_name(key)).cloned())
    .or_else(|| {
        view.key(key)
            .map(|k| SubjectRef::new(SubjectKind::Party, k.party.clone()))
    });
    match taken {
        Some(subject) => Err(Refusal::KeyTaken {
            key: key.to_hex(),
            subject: subject.to_string(),
        }),
        None => Ok(()),
    }
}

/// Unique-name key of a code name and version.
pub fn code_key(name: &str, version: &str) -> String {
    format!("code:{name}@{version}")
}

/// Read access to the state the rules need.
pub trait StateView {
    fn party(&self) -> Option<&PartyState>;
    fn key(&self, id: &KeyId) -> Option<&KeyState>;
    fn subject(&self, subject: &SubjectRef) -> Option<&SubjectState>;
    /// Owner of a unique name: a device serial or a code name and version
    /// (see [`serial_key`] and [`code_key`]).
    fn name_owner(&self, key: &str) -> Option<&SubjectRef>;
    fn event_index(&self, id: &EventId) -> Option<u64>;
    /// Index the next accepted event gets.
    fn next_index(&self) -> u64;
}

/// What accepting one event changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effects {
    pub event_id: EventId,
    pub subject: SubjectRef,
    pub subject_state: SubjectState,
    pub party: Option<PartyState>,
    pub key: Option<(KeyId, KeyState)>,
    /// A unique name the event claims.
    pub claim: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Already in the log at this index: accepting it again changes nothing.
    Duplicate(u64),
    Accept(Box<Effects>),
}

/// Outcome of one event in an accepted batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appended {
    pub index: u64,
    pub event_id: EventId,
    pub duplicate: bool,
}

fn check_text(field: &str, value: &str, limits: &EventLimits) -> Result<(), Refusal> {
    if value.len() > limits.max_text_bytes {
        return Err(Refusal::InvalidField {
            field: field.to_string(),
            reason: format!(
                "{} bytes, over the limit of {}",
                value.len(),
                limits.max_text_bytes
            ),
        });
    }
    if value.chars().any(char::is_control) {
        return Err(Refusal::InvalidField {
            field: field.to_string(),
            reason: "contains control characters".to_string(),
        });
    }
    Ok(())
}

fn check_name(field: &str, value: &str) -> Result<(), Refusal> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Refusal::InvalidField {
            field: field.to_string(),
            reason: format!("{value:?} must be 1-128 characters of [A-Za-z0-9-_.:]"),
        })
    }
}

fn openpgp_refusal(e: openpgp::OpenPgpError) -> Refusal {
    Refusal::OpenPgp {
        field: e.field.to_string(),
        reason: e.reason,
    }
}

/// The public key of an event's author, known once signatures are checked.
fn author_key<'v>(view: &'v impl StateView, body_author: &KeyId) -> Result<&'v PublicKey, Refusal> {
    view.key(body_author)
        .map(|k| &k.public_key)
        .ok_or_else(|| Refusal::UnknownKey(body_author.to_hex()))
}

/// A status change the subject's lifecycle allows, or the refusal naming it.
fn check_transition(subject: String, allowed: bool, from: &str, to: &str) -> Result<(), Refusal> {
    if allowed {
        return Ok(());
    }
    Err(Refusal::InvalidTransition {
        subject,
        from: from.to_string(),
        to: to.to_string(),
    })
}

fn chain_text(id: Option<&EventId>) -> String {
    id.map_or_else(|| "none".to_string(), EventId::to_hex)
}

/// Checks `event` against `view`: signatures, author rights, the subject's
/// hash chain and the payload's own rules.
pub fn decide(
    view: &impl StateView,
    event: &Event,
    limits: &EventLimits,
) -> Result<Decision, Refusal> {
    if let Some(index) = view.event_index(&event.id) {
        return Ok(Decision::Duplicate(index));
    }
    let body = &event.body;
    if event.envelope.body.len() > limits.max_body_bytes {
        return Err(Refusal::BodyTooLarge {
            size: event.envelope.body.len(),
            limit: limits.max_body_bytes,
        });
    }
    if body.schema_version != SCHEMA_VERSION {
        return Err(Refusal::UnsupportedSchema(body.schema_version));
    }
    let kind = body.payload.kind();
    if !kind.subject_kinds().contains(&body.subject.kind) {
        let kinds: Vec<&str> = kind.subject_kinds().iter().map(|k| k.name()).collect();
        return Err(Refusal::InvalidSubject {
            subject: body.subject.to_string(),
            reason: format!(
                "{} events are about {} subjects",
                kind.name(),
                kinds.join(" or ")
            ),
        });
    }

    // Signatures: the author's must be there; every one must verify.
    let sigs = &event.envelope.signatures;
    if sigs.is_empty() {
        return Err(Refusal::MissingSignature);
    }
    if sigs.len() > limits.max_signatures {
        return Err(Refusal::TooManySignatures {
            count: sigs.len(),
            limit: limits.max_signatures,
        });
    }
    if !sigs.iter().any(|s| s.key_id == body.author) {
        return Err(Refusal::MissingAuthorSignature(body.author.to_hex()));
    }
    let genesis_key = match &body.payload {
        Payload::PartyGenesis { root_key, .. } => Some(root_key),
        _ => None,
    };
    // A rotation is also signed by the key it brings in.
    let new_key = match &body.payload {
        Payload::KeyRotated { new_key, .. } => Some(new_key),
        _ => None,
    };
    for sig in sigs {
        let public = match view.key(&sig.key_id) {
            Some(k) => &k.public_key,
            None => match [genesis_key, new_key]
                .into_iter()
                .flatten()
                .find(|k| k.id() == sig.key_id)
            {
                Some(k) => k,
                None => return Err(Refusal::UnknownKey(sig.key_id.to_hex())),
            },
        };
        if public.algorithm() != sig.algorithm
            || !public.verify_event(&event.envelope.body, &sig.bytes)
        {
            return Err(Refusal::BadSignature(sig.key_id.to_hex()));
        }
    }

    // Author rights.
    let author_hex = body.author.to_hex();
    if let Some(root) = genesis_key {
        if view.party().is_some() {
            return Err(Refusal::GenesisExists);
        }
        if root.id() != body.author {
            return Err(Refusal::GenesisNotSelfSigned);
        }
    } else {
        if view.party().is_none() {
            return Err(Refusal::NoGenesis);
        }
        let author = view
            .key(&body.author)
            .ok_or_else(|| Refusal::UnknownKey(author_hex.clone()))?;
        if author.revoked {
            return Err(Refusal::AuthorRevoked(author_hex));
        }
        if let Some(not_after_ms) = author.not_after_ms
            && body.time_ms > not_after_ms
        {
            return Err(Refusal::AuthorExpired {
                key: author_hex,
                not_after_ms,
                time_ms: body.time_ms,
            });
        }
        if body.time_ms < author.registered_ms {
            return Err(Refusal::AuthorNotYetValid {
                key: author_hex,
                registered_ms: author.registered_ms,
                time_ms: body.time_ms,
            });
        }
        if !author.may_sign(kind) {
            return Err(Refusal::AuthorNotAllowed {
                key: author_hex,
                kind: kind.name().to_string(),
            });
        }
        let party = view.party().expect("checked above");
        if author.party == party.name {
            // The party's role decides which records it authors.
            let role = Role::from_name(&party.role).ok_or_else(|| Refusal::InvalidField {
                field: "role".to_string(),
                reason: format!("the party's role {:?} is unknown", party.role),
            })?;
            if !role.may_author(kind) {
                return Err(Refusal::RoleMayNotAuthor {
                    role: role.name().to_string(),
                    kind: kind.name().to_string(),
                });
            }
        } else {
            // Another party attaches only what the subject's registrant granted it.
            let granted = view
                .subject(&body.subject)
                .and_then(|s| s.grants.get(&author.party))
                .is_some_and(|kinds| kinds.contains(&kind));
            if !granted {
                return Err(Refusal::NoGrant {
                    party: author.party.clone(),
                    subject: body.subject.to_string(),
                    kind: kind.name().to_string(),
                });
            }
        }
    }

    // The subject's hash chain.
    let subject_text = body.subject.to_string();
    let current = view.subject(&body.subject);
    let (expected_sequence, expected_previous) = match current {
        None => (0, None),
        Some(s) => (s.next_sequence, Some(s.last_event)),
    };
    if body.sequence != expected_sequence || body.previous != expected_previous {
        if current.is_none() && !kind.creates_subject() {
            return Err(Refusal::UnknownSubject(subject_text));
        }
        return Err(Refusal::ChainConflict {
            subject: subject_text,
            expected_sequence,
            expected_previous: chain_text(expected_previous.as_ref()),
            sequence: body.sequence,
            previous: chain_text(body.previous.as_ref()),
        });
    }
    if current.is_none() != kind.creates_subject() {
        // Sequence 0 of an existing subject is a conflict above; this is a
        // creating kind on a live subject's later position, or the reverse.
        return Err(match current {
            None => Refusal::UnknownSubject(subject_text),
            Some(_) => Refusal::InvalidSubject {
                subject: subject_text,
                reason: format!("{} may only open a subject's history", kind.name()),
            },
        });
    }
    if let Some(s) = current
        && s.next_sequence >= limits.max_records_per_subject
    {
        return Err(Refusal::TooManyRecords {
            subject: subject_text,
            count: s.next_sequence,
        });
    }

    // The payload's own rules and its effects.
    let mut effects = Effects {
        event_id: event.id,
        subject: body.subject.clone(),
        // The subject as it was (or new), moved one event on; arms below
        // change what their payload changes.
        subject_state: match current {
            Some(s) => SubjectState {
                next_sequence: body.sequence + 1,
                last_event: event.id,
                ..s.clone()
            },
            None => SubjectState {
                next_sequence: body.sequence + 1,
                last_event: event.id,
                registered_by: body.author,
                history: Vec::new(),
                detail: SubjectDetail::Party,
                grants: BTreeMap::new(),
                endorsements: Vec::new(),
            },
        },
        party: None,
        key: None,
        claim: None,
    };
    effects.subject_state.history.push(view.next_index());
    match &body.payload {
        Payload::PartyGenesis {
            party_name,
            role,
            root_key,
        } => {
            check_name("party_name", party_name)?;
            if Role::from_name(role).is_none() {
                return Err(Refusal::InvalidField {
                    field: "role".to_string(),
                    reason: format!(
                        "{role:?} is not a role (manufacturer, developer, maintenance, infield, certifier)"
                    ),
                });
            }
            if &body.subject.id != party_name {
                return Err(Refusal::InvalidSubject {
                    subject: subject_text,
                    reason: format!("genesis subject id must be the party name {party_name:?}"),
                });
            }
            effects.party = Some(PartyState {
                name: party_name.clone(),
                role: role.clone(),
                root_key: root_key.id(),
                genesis_ms: body.time_ms,
            });
            effects.key = Some((
                root_key.id(),
                KeyState {
                    party: party_name.clone(),
                    public_key: root_key.clone(),
                    label: "root".to_string(),
                    allowed_kinds: None,
                    registered_ms: body.time_ms,
                    not_after_ms: None,
                    revoked: false,
                },
            ));
        }
        Payload::AuthorKeyRegistered {
            key,
            label,
            allowed_kinds,
            not_after_ms,
        } => {
            check_text("label", label, limits)?;
            let key_id = key.id();
            if body.subject.id != key_id.to_hex() {
                return Err(Refusal::InvalidSubject {
                    subject: subject_text,
                    reason: format!("author key subject id must be the key's fingerprint {key_id}"),
                });
            }
            if view.key(&key_id).is_some() {
                return Err(Refusal::InvalidSubject {
                    subject: subject_text,
                    reason: "the key already signs for this party".to_string(),
                });
            }
            check_key_free(view, &key_id)?;
            if allowed_kinds.is_empty() || allowed_kinds.contains(&EventKind::PartyGenesis) {
                return Err(Refusal::InvalidField {
                    field: "allowed_kinds".to_string(),
                    reason: "must name at least one kind, and never party-genesis".to_string(),
                });
            }
            if *not_after_ms <= body.time_ms {
                return Err(Refusal::InvalidField {
                    field: "not_after_unix_ms".to_string(),
                    reason: "must be later than the event time".to_string(),
                });
            }
            effects.subject_state.detail = SubjectDetail::AuthorKey { key_id };
            effects.key = Some((
                key_id,
                KeyState {
                    party: view.party().map(|p| p.name.clone()).unwrap_or_default(),
                    public_key: key.clone(),
                    label: label.clone(),
                    allowed_kinds: Some(allowed_kinds.clone()),
                    registered_ms: body.time_ms,
                    not_after_ms: Some(*not_after_ms),
                    revoked: false,
                },
            ));
        }
        Payload::AuthorKeyRevoked { reason } => {
            check_text("reason", reason, limits)?;
            let Some(SubjectDetail::AuthorKey { key_id }) = current.map(|s| &s.detail) else {
                return Err(Refusal::UnknownSubject(subject_text));
            };
            let mut key = view
                .key(key_id)
                .cloned()
                .ok_or_else(|| Refusal::UnknownKey(key_id.to_hex()))?;
            if key.revoked {
                return Err(Refusal::AlreadyRevoked(key_id.to_hex()));
            }
            key.revoked = true;
            effects.subject_state.detail = SubjectDetail::AuthorKey { key_id: *key_id };
            effects.key = Some((*key_id, key));
        }
        Payload::DeviceRegistered {
            serial,
            device_key,
            attributes,
            openpgp: signatures,
        } => {
            check_name("serial", serial)?;
            let key_id = device_key.id();
            if body.subject.id != key_id.to_hex() {
                return Err(Refusal::InvalidSubject {
                    subject: subject_text,
                    reason: format!(
                        "device subject id must be the device key's fingerprint {key_id}"
                    ),
                });
            }
            if attributes.len() > limits.max_attributes {
                return Err(Refusal::InvalidField {
                    field: "attributes".to_string(),
                    reason: format!(
                        "{} attributes, over the limit of {}",
                        attributes.len(),
                        limits.max_attributes
                    ),
                });
            }
            for (name, value) in attributes {
                check_name("attributes.name", name)?;
                check_text("attributes.value", value, limits)?;
            }
            check_key_free(view, &key_id)?;
            if let Some(owner) = view.name_owner(&serial_key(serial)) {
                return Err(Refusal::SerialTaken {
                    serial: serial.clone(),
                    subject: owner.to_string(),
                });
            }
            let certificate = match signatures {
                None => None,
                Some(signatures) => Some(Box::new(
                    openpgp::check_device(
                        signatures,
                        device_key,
                        author_key(view, &body.author)?,
                        serial,
                        attributes,
                        body.time_ms,
                    )
                    .map_err(openpgp_refusal)?,
                )),
            };
            effects.claim = Some(serial_key(serial));
            effects.subject_state.detail = SubjectDetail::Device {
                serial: serial.clone(),
                device_key: device_key.clone(),
                attributes: attributes.clone(),
                status: DeviceStatus::Planned,
                openpgp: certificate,
            };
        }
        Payload::DeviceStatusChanged {
            status,
            reason,
            openpgp_revocation,
        } => {
            check_text("reason", reason, limits)?;
            // The subject state starts as a copy of the current one: only the status moves.
            let SubjectDetail::Device {
                status: from,
                openpgp: certificate,
                ..
            } = &mut effects.subject_state.detail
            else {
                return Err(Refusal::UnknownSubject(subject_text));
            };
            check_transition(
                subject_text,
                from.may_become(*status),
                from.name(),
                status.name(),
            )?;
            *from = *status;
            // A stolen, destroyed or retired report may publish the escrowed
            // revocation of its kind.
            if let Some(revocation) = openpgp_revocation {
                use openpgp::RevocationSlot::*;
                let allowed: &[openpgp::RevocationSlot] = match status {
                    DeviceStatus::Stolen => &[Compromised],
                    DeviceStatus::Destroyed | DeviceStatus::Retired => &[Retired],
                    _ => &[],
                };
                publish_revocation(
                    certificate.as_deref_mut(),
                    revocation,
                    allowed,
                    &format!("a {} report", status.name()),
                )?;
            }
        }
        Payload::ServiceRegistered {
            name,
            service_key,
            endpoints,
            owner,
        } => {
            check_name("name", name)?;
            check_name("owner", owner)?;
            let key_id = service_key.id();
            if body.subject.id != key_id.to_hex() {
                return Err(Refusal::InvalidSubject {
                    subject: subject_text,
                    reason: format!(
                        "service subject id must be the service key's fingerprint {key_id}"
                    ),
                });
            }
            if endpoints.is_empty() || endpoints.len() > limits.max_attributes {
                return Err(Refusal::InvalidField {
                    field: "endpoints".to_string(),
                    reason: format!(
                        "{} endpoints; a service names 1 to {}",
                        endpoints.len(),
                        limits.max_attributes
                    ),
                });
            }
            for endpoint in endpoints {
                check_text("endpoints", endpoint, limits)?;
                let scheme_ok = endpoint.split_once("://").is_some_and(|(scheme, rest)| {
                    !scheme.is_empty()
                        && scheme
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
                        && !rest.is_empty()
                        && !endpoint.contains(char::is_whitespace)
                });
                if !scheme_ok {
                    return Err(Refusal::InvalidField {
                        field: "endpoints".to_string(),
                        reason: format!("{endpoint:?} is not a URI (scheme://authority...)"),
                    });
                }
            }
            check_key_free(view, &key_id)?;
            let claim = service_key_name(name);
            if let Some(owner) = view.name_owner(&claim) {
                return Err(Refusal::ServiceNameTaken {
                    name: name.clone(),
                    subject: owner.to_string(),
                });
            }
            effects.claim = Some(claim);
            effects.subject_state.detail = SubjectDetail::Service {
                name: name.clone(),
                service_key: service_key.clone(),
                endpoints: endpoints.clone(),
                owner: owner.clone(),
            };
        }
        Payload::KeyRotated {
            new_key,
            reason,
            openpgp_revocation,
        } => {
            check_text("reason", reason, limits)?;
            let new_id = new_key.id();
            if !sigs.iter().any(|s| s.key_id == new_id) {
                return Err(Refusal::MissingNewKeySignature(new_id.to_hex()));
            }
            check_key_free(view, &new_id)?;
            match &mut effects.subject_state.detail {
                SubjectDetail::Device {
                    device_key,
                    status,
                    openpgp: certificate,
                    ..
                } => {
                    if *status == DeviceStatus::Destroyed {
                        return Err(Refusal::InvalidSubject {
                            subject: subject_text,
                            reason: "a destroyed device's key is not rotated".to_string(),
                        });
                    }
                    *device_key = new_key.clone();
                    // The old key's certificate may be revoked as it goes, with
                    // either escrowed revocation (retired, or compromised).
                    if let Some(revocation) = openpgp_revocation {
                        use openpgp::RevocationSlot::*;
                        publish_revocation(
                            certificate.as_deref_mut(),
                            revocation,
                            &[Compromised, Retired],
                            "a key rotation",
                        )?;
                    }
                }
                SubjectDetail::Service { service_key, .. } => {
                    if openpgp_revocation.is_some() {
                        return Err(Refusal::OpenPgp {
                            field: "openpgp_revocation".to_string(),
                            reason: "a service has no OpenPGP certificate to revoke".to_string(),
                        });
                    }
                    *service_key = new_key.clone();
                }
                _ => return Err(Refusal::UnknownSubject(subject_text)),
            }
            effects.claim = Some(rotated_key_name(&new_id));
        }
        Payload::CodeReleased(identity) => {
            check_name("name", &identity.name)?;
            if let Some(sig) = &identity.openpgp_signature {
                openpgp::check_code(sig, identity, author_key(view, &body.author)?, body.time_ms)
                    .map_err(openpgp_refusal)?;
            }
            check_name("version", &identity.version)?;
            if let Some(uri) = &identity.suit_manifest_uri {
                check_text("suit_manifest_uri", uri, limits)?;
            }
            if body.subject.id != hex::encode(identity.blake3) {
                return Err(Refusal::InvalidSubject {
                    subject: subject_text,
                    reason: format!(
                        "code subject id must be the artifact's blake3 digest {}",
                        hex::encode(identity.blake3)
                    ),
                });
            }
            let claim = code_key(&identity.name, &identity.version);
            if let Some(owner) = view.name_owner(&claim) {
                return Err(Refusal::CodeVersionTaken {
                    name: identity.name.clone(),
                    version: identity.version.clone(),
                    subject: owner.to_string(),
                });
            }
            effects.claim = Some(claim);
            effects.subject_state.detail = SubjectDetail::Code {
                identity: identity.clone(),
                status: CodeStatus::Released,
            };
        }
        Payload::CodeStatusChanged { status, reason } => {
            check_text("reason", reason, limits)?;
            let SubjectDetail::Code { status: from, .. } = &mut effects.subject_state.detail else {
                return Err(Refusal::UnknownSubject(subject_text));
            };
            check_transition(
                subject_text,
                from.may_become(*status),
                from.name(),
                status.name(),
            )?;
            *from = *status;
        }
        Payload::PartyRecognized { role, root_key } => {
            let own = view.party().map(|p| p.name.as_str());
            if own == Some(body.subject.id.as_str()) {
                return Err(Refusal::InvalidSubject {
                    subject: subject_text,
                    reason: "a party does not recognize itself".to_string(),
                });
            }
            check_name("party", &body.subject.id)?;
            check_key_free(view, &root_key.id())?;
            if Role::from_name(role).is_none() {
                return Err(Refusal::InvalidField {
                    field: "role".to_string(),
                    reason: format!("{role:?} is not a role"),
                });
            }
            if view.key(&root_key.id()).is_some() {
                return Err(Refusal::InvalidField {
                    field: "root_key".to_string(),
                    reason: "the key already signs for a known party".to_string(),
                });
            }
            effects.subject_state.detail = SubjectDetail::ForeignParty {
                role: role.clone(),
                root_key: root_key.id(),
            };
            effects.key = Some((
                root_key.id(),
                KeyState {
                    party: body.subject.id.clone(),
                    public_key: root_key.clone(),
                    label: format!("root of {}", body.subject.id),
                    allowed_kinds: None,
                    registered_ms: body.time_ms,
                    not_after_ms: None,
                    revoked: false,
                },
            ));
        }
        Payload::AccessGranted { party, kinds } => {
            let known = view
                .subject(&SubjectRef::new(
                    super::event::SubjectKind::Party,
                    party.clone(),
                ))
                .is_some_and(|s| matches!(s.detail, SubjectDetail::ForeignParty { .. }));
            if !known {
                return Err(Refusal::InvalidField {
                    field: "party".to_string(),
                    reason: format!("{party:?} is not a party this one recognizes"),
                });
            }
            let attachable = [
                EventKind::Endorsed,
                EventKind::EndorsementWithdrawn,
                EventKind::DeviceStatusChanged,
                EventKind::CodeStatusChanged,
            ];
            if kinds.is_empty() || kinds.iter().any(|k| !attachable.contains(k)) {
                return Err(Refusal::InvalidField {
                    field: "kinds".to_string(),
                    reason: "grants name endorsed, endorsement-withdrawn or status kinds only"
                        .to_string(),
                });
            }
            if view
                .party()
                .is_some_and(|p| view.key(&body.author).is_some_and(|k| k.party != p.name))
            {
                // Only the registrant's party hands out rights on its subject.
                return Err(Refusal::NoGrant {
                    party: view
                        .key(&body.author)
                        .map(|k| k.party.clone())
                        .unwrap_or_default(),
                    subject: subject_text,
                    kind: kind.name().to_string(),
                });
            }
            effects
                .subject_state
                .grants
                .entry(party.clone())
                .or_default()
                .extend(kinds.iter().copied());
        }
        Payload::Endorsed {
            kind: endorsement_kind,
            scope,
            not_after_ms,
            openpgp_certification,
        } => {
            check_text("scope", scope, limits)?;
            if *not_after_ms <= body.time_ms {
                return Err(Refusal::InvalidField {
                    field: "not_after_unix_ms".to_string(),
                    reason: "must be later than the event time".to_string(),
                });
            }
            if let Some(certification) = openpgp_certification {
                let refuse = |reason: String| Refusal::OpenPgp {
                    field: "openpgp_certification".to_string(),
                    reason,
                };
                let Some(device) = device_certificate(&effects.subject_state) else {
                    return Err(refuse(format!(
                        "{subject_text} has no OpenPGP certificate to certify"
                    )));
                };
                let current = effects
                    .subject_state
                    .detail
                    .current_key()
                    .map(PublicKey::id);
                if device.revoked() || current != Some(device.device_key_id) {
                    return Err(refuse(format!(
                        "{subject_text}'s OpenPGP certificate is revoked or its key rotated out"
                    )));
                }
                // One certification revocation retracts all of a key's
                // certifications of the User ID: one live one per key.
                if effects.subject_state.endorsements.iter().any(|e| {
                    !e.withdrawn && e.author == body.author && e.openpgp_certification.is_some()
                }) {
                    return Err(refuse(format!(
                        "key {} already has a live OpenPGP-certified endorsement of {subject_text}; withdraw it first",
                        body.author
                    )));
                }
                openpgp::check_endorsement(
                    certification,
                    device,
                    author_key(view, &body.author)?,
                    *endorsement_kind,
                    scope,
                    body.time_ms,
                    *not_after_ms,
                )
                .map_err(openpgp_refusal)?;
            }
            let party = view
                .key(&body.author)
                .map(|k| k.party.clone())
                .unwrap_or_default();
            effects.subject_state.endorsements.push(Endorsement {
                id: event.id,
                party,
                kind: *endorsement_kind,
                scope: scope.clone(),
                not_after_ms: *not_after_ms,
                withdrawn: false,
                author: body.author,
                openpgp_certification: openpgp_certification.clone(),
                openpgp_revocation: None,
            });
        }
        Payload::EndorsementWithdrawn {
            endorsement,
            reason,
            openpgp_revocation,
        } => {
            check_text("reason", reason, limits)?;
            let party = view
                .key(&body.author)
                .map(|k| k.party.clone())
                .unwrap_or_default();
            let not_withdrawable = |why: &str| Refusal::NotWithdrawable {
                subject: subject_text.clone(),
                endorsement: endorsement.to_hex(),
                reason: why.to_string(),
            };
            let device = device_certificate(&effects.subject_state).cloned();
            let e = effects
                .subject_state
                .endorsements
                .iter_mut()
                .find(|e| e.id == *endorsement)
                .ok_or_else(|| not_withdrawable("no such endorsement on this subject"))?;
            if e.withdrawn {
                return Err(not_withdrawable("it is already withdrawn"));
            }
            if e.party != party {
                return Err(not_withdrawable("only the endorsing party withdraws it"));
            }
            // An OpenPGP certification already spread is retracted only by a
            // revocation from the key that made it.
            match (&e.openpgp_certification, openpgp_revocation, device) {
                (None, None, _) => {}
                (Some(_), Some(revocation), Some(device)) => {
                    let certifier = author_key(view, &e.author)?;
                    openpgp::check_endorsement_revocation(
                        revocation,
                        &device,
                        certifier,
                        body.time_ms,
                    )
                    .map_err(|err| Refusal::OpenPgp {
                        field: err.field.to_string(),
                        reason: format!(
                            "{} (it must be made by the certifying key {})",
                            err.reason, e.author
                        ),
                    })?;
                }
                (Some(_), None, _) => {
                    // A certifier key that can no longer sign (revoked, expired)
                    // must not pin the endorsement: withdraw it here even though
                    // the OpenPGP certification cannot be retracted.
                    let certifier_gone = view.key(&e.author).is_none_or(|k| {
                        k.revoked || k.not_after_ms.is_some_and(|t| body.time_ms > t)
                    });
                    if !certifier_gone {
                        return Err(not_withdrawable(
                            "its OpenPGP certification needs an openpgp_revocation",
                        ));
                    }
                }
                (None, Some(_), _) | (Some(_), Some(_), None) => {
                    return Err(Refusal::OpenPgp {
                        field: "openpgp_revocation".to_string(),
                        reason: "the endorsement has no OpenPGP certification to revoke"
                            .to_string(),
                    });
                }
            }
            e.withdrawn = true;
            e.openpgp_revocation = openpgp_revocation.clone();
        }
    }
    Ok(Decision::Accept(Box::new(effects)))
}

/// Publishes an escrowed revocation on a device's certificate: one the
/// registration committed to, of a kind the `report` allows.
fn publish_revocation(
    certificate: Option<&mut DeviceCertificate>,
    revocation: &[u8],
    allowed: &[openpgp::RevocationSlot],
    report: &str,
) -> Result<(), Refusal> {
    let refuse = |reason: String| Refusal::OpenPgp {
        field: "openpgp_revocation".to_string(),
        reason,
    };
    let Some(c) = certificate else {
        return Err(refuse(
            "the device has no OpenPGP certificate to revoke".to_string(),
        ));
    };
    let slot = openpgp::check_revocation(revocation, c).map_err(openpgp_refusal)?;
    if !allowed.contains(&slot) {
        let names: Vec<&str> = allowed.iter().map(|s| s.name()).collect();
        return Err(refuse(format!(
            "{report} publishes {}, not the {} revocation",
            if names.is_empty() {
                "no revocation".to_string()
            } else {
                format!("the {} revocation", names.join(" or "))
            },
            slot.name()
        )));
    }
    if !c.published_revocations.iter().any(|r| r == revocation) {
        c.published_revocations.push(revocation.to_vec());
    }
    Ok(())
}

fn device_certificate(state: &SubjectState) -> Option<&DeviceCertificate> {
    match &state.detail {
        SubjectDetail::Device { openpgp, .. } => openpgp.as_deref(),
        _ => None,
    }
}

/// Everything an accepted batch changes, ready to merge.
#[derive(Default, Debug)]
pub struct Changes {
    party: Option<PartyState>,
    keys: BTreeMap<KeyId, KeyState>,
    subjects: BTreeMap<SubjectRef, SubjectState>,
    names: BTreeMap<String, SubjectRef>,
    /// Accepted events in order.
    events: Vec<EventId>,
}

/// A view of `base` with a batch's staged changes on top.
pub struct Staged<'a, V: StateView> {
    base: &'a V,
    changes: Changes,
}

impl<'a, V: StateView> Staged<'a, V> {
    pub fn new(base: &'a V) -> Self {
        Staged {
            base,
            changes: Changes::default(),
        }
    }

    /// Decides `event` against the base plus what is staged, and stages it.
    pub fn stage(&mut self, event: &Event, limits: &EventLimits) -> Result<Appended, Refusal> {
        match decide(self, event, limits)? {
            Decision::Duplicate(index) => Ok(Appended {
                index,
                event_id: event.id,
                duplicate: true,
            }),
            Decision::Accept(effects) => {
                let index = self.next_index();
                let c = &mut self.changes;
                if let Some(p) = effects.party {
                    c.party = Some(p);
                }
                if let Some((id, k)) = effects.key {
                    c.keys.insert(id, k);
                }
                if let Some(name) = effects.claim {
                    c.names.insert(name, effects.subject.clone());
                }
                c.subjects.insert(effects.subject, effects.subject_state);
                c.events.push(effects.event_id);
                Ok(Appended {
                    index,
                    event_id: event.id,
                    duplicate: false,
                })
            }
        }
    }

    pub fn into_changes(self) -> Changes {
        self.changes
    }

    /// Stages a client's batch: all of its events or, on a refusal, none.
    pub fn stage_batch(
        &mut self,
        events: &[Event],
        limits: &EventLimits,
    ) -> Result<Vec<Appended>, Refusal> {
        limits.check_batch_len(events.len())?;
        let (out, changes) = {
            let mut inner = Staged::new(&*self);
            let mut out = Vec::with_capacity(events.len());
            for event in events {
                out.push(inner.stage(event, limits)?);
            }
            (out, inner.into_changes())
        };
        let c = &mut self.changes;
        if changes.party.is_some() {
            c.party = changes.party;
        }
        c.keys.extend(changes.keys);
        c.subjects.extend(changes.subjects);
        c.names.extend(changes.names);
        c.events.extend(changes.events);
        Ok(out)
    }
}

impl<V: StateView> StateView for Staged<'_, V> {
    fn party(&self) -> Option<&PartyState> {
        self.changes.party.as_ref().or_else(|| self.base.party())
    }
    fn key(&self, id: &KeyId) -> Option<&KeyState> {
        self.changes.keys.get(id).or_else(|| self.base.key(id))
    }
    fn subject(&self, subject: &SubjectRef) -> Option<&SubjectState> {
        self.changes
            .subjects
            .get(subject)
            .or_else(|| self.base.subject(subject))
    }
    fn name_owner(&self, key: &str) -> Option<&SubjectRef> {
        self.changes
            .names
            .get(key)
            .or_else(|| self.base.name_owner(key))
    }
    fn event_index(&self, id: &EventId) -> Option<u64> {
        let base_next = self.base.next_index();
        self.changes
            .events
            .iter()
            .position(|e| e == id)
            .map(|i| base_next + i as u64)
            .or_else(|| self.base.event_index(id))
    }
    fn next_index(&self) -> u64 {
        self.base.next_index() + self.changes.events.len() as u64
    }
}

/// The in-memory projections of the applied event log.
#[derive(Clone, Debug, Default)]
pub struct Projection {
    party: Option<PartyState>,
    keys: BTreeMap<KeyId, KeyState>,
    subjects: BTreeMap<SubjectRef, SubjectState>,
    names: BTreeMap<String, SubjectRef>,
    by_fingerprint: BTreeMap<KeyId, SubjectRef>,
    /// Devices by OpenPGP v4 fingerprint, and fingerprints by 64-bit key id.
    by_openpgp_fingerprint: BTreeMap<[u8; 20], SubjectRef>,
    openpgp_key_ids: BTreeMap<[u8; 8], [u8; 20]>,
    event_ids: HashMap<EventId, u64>,
    event_count: u64,
    log_hash: [u8; 32],
}

impl StateView for Projection {
    fn party(&self) -> Option<&PartyState> {
        self.party.as_ref()
    }
    fn key(&self, id: &KeyId) -> Option<&KeyState> {
        self.keys.get(id)
    }
    fn subject(&self, subject: &SubjectRef) -> Option<&SubjectState> {
        self.subjects.get(subject)
    }
    fn name_owner(&self, key: &str) -> Option<&SubjectRef> {
        self.names.get(key)
    }
    fn event_index(&self, id: &EventId) -> Option<u64> {
        self.event_ids.get(id).copied()
    }
    fn next_index(&self) -> u64 {
        self.event_count + 1
    }
}

impl Projection {
    /// Checks a whole batch; nothing changes unless every event is accepted.
    pub fn check_batch(
        &self,
        events: &[Event],
        limits: &EventLimits,
    ) -> Result<(Vec<Appended>, Changes), Refusal> {
        if events.is_empty() {
            return Err(Refusal::EmptyBatch);
        }
        if events.len() > limits.max_batch_events {
            return Err(Refusal::BatchTooLarge {
                count: events.len(),
                limit: limits.max_batch_events,
            });
        }
        let mut staged = Staged::new(self);
        let mut out = Vec::with_capacity(events.len());
        for event in events {
            out.push(staged.stage(event, limits)?);
        }
        Ok((out, staged.into_changes()))
    }

    /// Merges an accepted batch.
    pub fn commit(&mut self, changes: Changes) {
        if let Some(p) = changes.party {
            self.party = Some(p);
        }
        self.keys.extend(changes.keys);
        for (subject, state) in changes.subjects {
            if let SubjectDetail::Device {
                device_key,
                openpgp,
                ..
            } = &state.detail
            {
                self.by_fingerprint.insert(device_key.id(), subject.clone());
                if let Some(c) = openpgp {
                    self.by_openpgp_fingerprint
                        .insert(c.fingerprint, subject.clone());
                    self.openpgp_key_ids.insert(c.key_id(), c.fingerprint);
                }
            }
            if let SubjectDetail::AuthorKey { key_id } = &state.detail {
                self.by_fingerprint.insert(*key_id, subject.clone());
            }
            if let SubjectDetail::Service { service_key, .. } = &state.detail {
                self.by_fingerprint
                    .insert(service_key.id(), subject.clone());
            }
            self.subjects.insert(subject, state);
        }
        self.names.extend(changes.names);
        for id in changes.events {
            self.event_count += 1;
            self.event_ids.insert(id, self.event_count);
            let mut h = blake3::Hasher::new();
            h.update(&self.log_hash);
            h.update(&id.0);
            self.log_hash = *h.finalize().as_bytes();
        }
    }

    /// Checks and, if every event is accepted, commits a batch.
    pub fn apply_batch(
        &mut self,
        events: &[Event],
        limits: &EventLimits,
    ) -> Result<Vec<Appended>, Refusal> {
        let (out, changes) = self.check_batch(events, limits)?;
        self.commit(changes);
        Ok(out)
    }

    pub fn event_count(&self) -> u64 {
        self.event_count
    }

    /// Running hash over the ids of all accepted events, in log order.
    pub fn log_hash(&self) -> [u8; 32] {
        self.log_hash
    }

    /// Hash of the whole projection state; equal on replicas that agree.
    pub fn state_hash(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        let encoded = postcard::to_stdvec(&(
            &self.party,
            &self.keys,
            &self.subjects,
            &self.names,
            &self.by_fingerprint,
            self.event_count,
            self.log_hash,
        ))
        .expect("projection state serializes");
        h.update(&encoded);
        *h.finalize().as_bytes()
    }

    pub fn subject_by_fingerprint(&self, id: &KeyId) -> Option<&SubjectRef> {
        self.by_fingerprint.get(id)
    }

    pub fn device_by_openpgp_fingerprint(&self, fingerprint: &[u8; 20]) -> Option<&SubjectRef> {
        self.by_openpgp_fingerprint.get(fingerprint)
    }

    pub fn openpgp_fingerprint_by_key_id(&self, key_id: &[u8; 8]) -> Option<&[u8; 20]> {
        self.openpgp_key_ids.get(key_id)
    }

    pub fn subjects(&self) -> impl Iterator<Item = (&SubjectRef, &SubjectState)> {
        self.subjects.iter()
    }

    /// Subjects after `after` in key order.
    pub(crate) fn subjects_after(
        &self,
        after: Option<&SubjectRef>,
    ) -> impl Iterator<Item = (&SubjectRef, &SubjectState)> {
        use std::ops::Bound;
        let start = match after {
            Some(s) => Bound::Excluded(s.clone()),
            None => Bound::Unbounded,
        };
        self.subjects.range((start, Bound::Unbounded))
    }

    /// The subject's key and state, borrowed from the projection.
    pub(crate) fn subject_entry(
        &self,
        subject: &SubjectRef,
    ) -> Option<(&SubjectRef, &SubjectState)> {
        self.subjects.get_key_value(subject)
    }

    pub fn party_state(&self) -> Option<&PartyState> {
        self.party.as_ref()
    }
}
