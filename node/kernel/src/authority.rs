//! The kernel's own kinds: who may sign for the party. The genesis names the
//! party, its role and root key; the root key registers author keys (each
//! limited to named kinds and a validity period) and revokes them, recognizes
//! other parties by their root keys, and grants them kinds of record they may
//! attach to one subject. Wire: `proto/ics/core/v1/party.proto`.

use std::collections::BTreeSet;

use crate::envelope::{decode_public_key, encode_public_key};
use crate::event::Event;
use crate::keys::{KeyId, PublicKey};
use crate::kind::{Claim, Field, KindSpec, Payload, Subjects};
use crate::limits::{ActiveRules, EventLimits, check_name};
use crate::refusal::Refusal;
use crate::roles::Role;
use crate::state::{KernelSubject, KeyState, PartyState, SubjectEntry, View, check_key_free};
use crate::wire::{Reader, Writer};

pub use crate::limits::{KERNEL, KERNEL_VERSION};

pub use crate::envelope::{AUTHOR_KEY, KERNEL_SUBJECT_KINDS as SUBJECT_KINDS, PARTY};

const ALL: &[Role] = &Role::ALL;

pub static PARTY_GENESIS: KindSpec = KindSpec {
    name: "party-genesis",
    message: "ics.core.v1.PartyGenesis",
    subjects: Subjects::Of(&[PARTY]),
    opens_subject: true,
    authored_by: ALL,
    grantable: false,
};
pub static AUTHOR_KEY_REGISTERED: KindSpec = KindSpec {
    name: "author-key-registered",
    message: "ics.core.v1.AuthorKeyRegistered",
    subjects: Subjects::Of(&[AUTHOR_KEY]),
    opens_subject: true,
    authored_by: ALL,
    grantable: false,
};
pub static AUTHOR_KEY_REVOKED: KindSpec = KindSpec {
    name: "author-key-revoked",
    message: "ics.core.v1.AuthorKeyRevoked",
    subjects: Subjects::Of(&[AUTHOR_KEY]),
    opens_subject: false,
    authored_by: ALL,
    grantable: false,
};
pub static PARTY_RECOGNIZED: KindSpec = KindSpec {
    name: "party-recognized",
    message: "ics.core.v1.PartyRecognized",
    subjects: Subjects::Of(&[PARTY]),
    opens_subject: true,
    authored_by: ALL,
    grantable: false,
};
pub static ACCESS_GRANTED: KindSpec = KindSpec {
    name: "access-granted",
    message: "ics.core.v1.AccessGranted",
    subjects: Subjects::AnyCapabilitySubject,
    opens_subject: false,
    authored_by: ALL,
    grantable: false,
};

pub static RULES_CHANGED: KindSpec = KindSpec {
    name: "rules-changed",
    message: "ics.core.v1.RulesChanged",
    subjects: Subjects::Of(&[PARTY]),
    opens_subject: false,
    // Signed by the party's root key only (checked in `decide`).
    authored_by: ALL,
    grantable: false,
};

pub static KINDS: [&KindSpec; 6] = [
    &PARTY_GENESIS,
    &AUTHOR_KEY_REGISTERED,
    &AUTHOR_KEY_REVOKED,
    &PARTY_RECOGNIZED,
    &ACCESS_GRANTED,
    &RULES_CHANGED,
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartyPayload {
    Genesis {
        party_name: String,
        role: Role,
        root_key: PublicKey,
        /// The rules the party's log starts with.
        rules: ActiveRules,
    },
    AuthorKeyRegistered {
        key: PublicKey,
        label: String,
        /// Kind names the key may sign.
        allowed_kinds: BTreeSet<String>,
        not_after_ms: i64,
    },
    AuthorKeyRevoked {
        reason: String,
    },
    Recognized {
        role: Role,
        root_key: PublicKey,
    },
    AccessGranted {
        party: String,
        kinds: BTreeSet<String>,
    },
    /// New limits or capability versions, from the next event on.
    RulesChanged {
        rules: ActiveRules,
    },
}

fn role(name: &str) -> Result<Role, Refusal> {
    Role::from_name(name).ok_or_else(|| {
        Refusal::field(
            "role",
            format!(
                "{name:?} is not a role (manufacturer, developer, maintenance, infield, certifier)"
            ),
        )
    })
}

fn missing_key(field: &str) -> Refusal {
    Refusal::field(field, "missing")
}

impl PartyPayload {
    pub(crate) fn decode(kind: &'static KindSpec, bytes: &[u8]) -> Result<Self, Refusal> {
        let mut r = Reader::new(kind.message, bytes);
        let mut strings = [String::new(), String::new()];
        let mut key = None;
        let mut list = BTreeSet::new();
        let mut int = 0;
        let mut rules = None;
        if std::ptr::eq(kind, &PARTY_GENESIS) {
            while let Some((f, v)) = r.next(&[])? {
                match f {
                    1 => strings[0] = v.string("party_name")?,
                    2 => strings[1] = v.string("role")?,
                    3 => key = Some(decode_public_key(v.bytes("root_key")?, "root_key")?),
                    4 => rules = Some(ActiveRules::decode(v.bytes("rules")?)?),
                    _ => {}
                }
            }
            let [party_name, role_name] = strings;
            return Ok(PartyPayload::Genesis {
                party_name,
                role: role(&role_name)?,
                root_key: key.ok_or_else(|| missing_key("root_key"))?,
                rules: rules.ok_or_else(|| missing_key("rules"))?,
            });
        }
        if std::ptr::eq(kind, &RULES_CHANGED) {
            while let Some((f, v)) = r.next(&[])? {
                if f == 1 {
                    rules = Some(ActiveRules::decode(v.bytes("rules")?)?);
                }
            }
            return Ok(PartyPayload::RulesChanged {
                rules: rules.ok_or_else(|| missing_key("rules"))?,
            });
        }
        if std::ptr::eq(kind, &AUTHOR_KEY_REGISTERED) {
            while let Some((f, v)) = r.next(&[3])? {
                match f {
                    1 => key = Some(decode_public_key(v.bytes("key")?, "key")?),
                    2 => strings[0] = v.string("label")?,
                    3 => {
                        list.insert(v.string("allowed_kinds")?);
                    }
                    4 => int = v.i64("not_after_unix_ms")?,
                    _ => {}
                }
            }
            let [label, _] = strings;
            return Ok(PartyPayload::AuthorKeyRegistered {
                key: key.ok_or_else(|| missing_key("key"))?,
                label,
                allowed_kinds: list,
                not_after_ms: int,
            });
        }
        if std::ptr::eq(kind, &AUTHOR_KEY_REVOKED) {
            while let Some((f, v)) = r.next(&[])? {
                if f == 1 {
                    strings[0] = v.string("reason")?;
                }
            }
            let [reason, _] = strings;
            return Ok(PartyPayload::AuthorKeyRevoked { reason });
        }
        if std::ptr::eq(kind, &PARTY_RECOGNIZED) {
            while let Some((f, v)) = r.next(&[])? {
                match f {
                    1 => strings[0] = v.string("role")?,
                    2 => key = Some(decode_public_key(v.bytes("root_key")?, "root_key")?),
                    _ => {}
                }
            }
            return Ok(PartyPayload::Recognized {
                role: role(&strings[0])?,
                root_key: key.ok_or_else(|| missing_key("root_key"))?,
            });
        }
        assert!(std::ptr::eq(kind, &ACCESS_GRANTED), "a kernel kind");
        while let Some((f, v)) = r.next(&[2])? {
            match f {
                1 => strings[0] = v.string("party")?,
                2 => {
                    list.insert(v.string("kinds")?);
                }
                _ => {}
            }
        }
        let [party, _] = strings;
        Ok(PartyPayload::AccessGranted { party, kinds: list })
    }
}

impl Payload for PartyPayload {
    fn kind(&self) -> &'static KindSpec {
        match self {
            PartyPayload::Genesis { .. } => &PARTY_GENESIS,
            PartyPayload::AuthorKeyRegistered { .. } => &AUTHOR_KEY_REGISTERED,
            PartyPayload::AuthorKeyRevoked { .. } => &AUTHOR_KEY_REVOKED,
            PartyPayload::Recognized { .. } => &PARTY_RECOGNIZED,
            PartyPayload::AccessGranted { .. } => &ACCESS_GRANTED,
            PartyPayload::RulesChanged { .. } => &RULES_CHANGED,
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            PartyPayload::Genesis {
                party_name,
                role,
                root_key,
                rules,
            } => w
                .string(1, party_name)
                .string(2, role.name())
                .message(3, &encode_public_key(root_key))
                .message(4, &rules.encode()),
            PartyPayload::AuthorKeyRegistered {
                key,
                label,
                allowed_kinds,
                not_after_ms,
            } => {
                w.message(1, &encode_public_key(key)).string(2, label);
                for k in allowed_kinds {
                    w.message(3, k.as_bytes());
                }
                w.i64(4, *not_after_ms)
            }
            PartyPayload::AuthorKeyRevoked { reason } => w.string(1, reason),
            PartyPayload::Recognized { role, root_key } => w
                .string(1, role.name())
                .message(2, &encode_public_key(root_key)),
            PartyPayload::AccessGranted { party, kinds } => {
                w.string(1, party);
                for k in kinds {
                    w.message(2, k.as_bytes());
                }
                &mut w
            }
            PartyPayload::RulesChanged { rules } => w.message(1, &rules.encode()),
        };
        w.finish()
    }

    fn introduced_keys(&self) -> Vec<&PublicKey> {
        match self {
            PartyPayload::Genesis { root_key, .. } => vec![root_key],
            _ => Vec::new(),
        }
    }

    fn describe(&self) -> Vec<(&'static str, Field)> {
        let rules = |r: &ActiveRules| {
            Field::Map(
                std::iter::once(("capabilities".to_string(), r.version_text()))
                    .chain([("limits".to_string(), format!("{:?}", r.limits))])
                    .collect(),
            )
        };
        match self {
            PartyPayload::Genesis {
                party_name,
                role,
                root_key,
                rules: r,
            } => vec![
                ("party", Field::text(party_name)),
                ("role", Field::text(role.name())),
                ("root_key", Field::key(root_key)),
                ("rules", rules(r)),
            ],
            PartyPayload::AuthorKeyRegistered {
                key,
                label,
                allowed_kinds,
                not_after_ms,
            } => vec![
                ("key", Field::key(key)),
                ("label", Field::text(label)),
                (
                    "allowed_kinds",
                    Field::List(allowed_kinds.iter().cloned().collect()),
                ),
                ("not_after_unix_ms", Field::Number(*not_after_ms)),
            ],
            PartyPayload::AuthorKeyRevoked { reason } => vec![("reason", Field::text(reason))],
            PartyPayload::Recognized { role, root_key } => vec![
                ("role", Field::text(role.name())),
                ("root_key", Field::key(root_key)),
            ],
            PartyPayload::AccessGranted { party, kinds } => vec![
                ("party", Field::text(party)),
                ("kinds", Field::List(kinds.iter().cloned().collect())),
            ],
            PartyPayload::RulesChanged { rules: r } => vec![("rules", rules(r))],
        }
    }
}

/// What a kernel kind changes beside the subject's entry.
#[derive(Default)]
pub(crate) struct KernelEffects {
    pub party: Option<PartyState>,
    pub key: Option<(KeyId, KeyState)>,
    pub claims: Vec<Claim>,
}

/// The rules of the kernel's kinds; `entry` is the subject's entry moved one
/// event on, changed here where the payload changes it.
pub(crate) fn decide(
    view: &dyn View,
    event: &Event,
    payload: &PartyPayload,
    entry: &mut SubjectEntry,
    limits: &EventLimits,
) -> Result<KernelEffects, Refusal> {
    let body = &event.body;
    let subject_text = body.subject.to_string();
    let mut fx = KernelEffects::default();
    match payload {
        PartyPayload::Genesis {
            party_name,
            role,
            root_key,
            rules,
        } => {
            check_name("party_name", party_name)?;
            rules.check()?;
            if &body.subject.id != party_name {
                return Err(Refusal::InvalidSubject {
                    subject: subject_text,
                    reason: format!("genesis subject id must be the party name {party_name:?}"),
                });
            }
            entry.kernel = Some(KernelSubject::Party);
            fx.party = Some(PartyState {
                name: party_name.clone(),
                role: *role,
                root_key: root_key.id(),
                genesis_ms: body.time_ms,
                rules: rules.clone(),
            });
            fx.key = Some((
                root_key.id(),
                KeyState::root(
                    party_name,
                    root_key.clone(),
                    "root".to_string(),
                    body.time_ms,
                ),
            ));
        }
        PartyPayload::AuthorKeyRegistered {
            key,
            label,
            allowed_kinds,
            not_after_ms,
        } => {
            limits.check_text("label", label)?;
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
            if allowed_kinds.is_empty() || allowed_kinds.contains(PARTY_GENESIS.name) {
                return Err(Refusal::field(
                    "allowed_kinds",
                    "must name at least one kind, and never party-genesis",
                ));
            }
            if let Some(unknown) = allowed_kinds.iter().find(|k| view.kind(k).is_none()) {
                return Err(Refusal::field(
                    "allowed_kinds",
                    format!("unknown event kind {unknown:?}"),
                ));
            }
            if *not_after_ms <= body.time_ms {
                return Err(Refusal::field(
                    "not_after_unix_ms",
                    "must be later than the event time",
                ));
            }
            let party = view.party().expect("the kernel checked the genesis");
            entry.kernel = Some(KernelSubject::AuthorKey { key_id });
            fx.claims.push(Claim::key(&key_id));
            fx.key = Some((
                key_id,
                KeyState {
                    party: party.name.clone(),
                    public_key: key.clone(),
                    label: label.clone(),
                    allowed_kinds: Some(allowed_kinds.clone()),
                    registered_ms: body.time_ms,
                    not_after_ms: Some(*not_after_ms),
                    revoked: false,
                },
            ));
        }
        PartyPayload::AuthorKeyRevoked { reason } => {
            limits.check_text("reason", reason)?;
            let Some(KernelSubject::AuthorKey { key_id }) = entry.kernel else {
                return Err(Refusal::UnknownSubject(subject_text));
            };
            let mut key = view
                .key(&key_id)
                .cloned()
                .ok_or_else(|| Refusal::UnknownKey(key_id.to_hex()))?;
            if key.revoked {
                return Err(Refusal::AlreadyRevoked(key_id.to_hex()));
            }
            key.revoked = true;
            fx.key = Some((key_id, key));
        }
        PartyPayload::Recognized { role, root_key } => {
            let own = view.party().map(|p| p.name.as_str());
            if own == Some(body.subject.id.as_str()) {
                return Err(Refusal::InvalidSubject {
                    subject: subject_text,
                    reason: "a party does not recognize itself".to_string(),
                });
            }
            check_name("party", &body.subject.id)?;
            check_key_free(view, &root_key.id())?;
            entry.kernel = Some(KernelSubject::ForeignParty {
                role: *role,
                root_key: root_key.id(),
            });
            fx.key = Some((
                root_key.id(),
                KeyState::root(
                    &body.subject.id,
                    root_key.clone(),
                    format!("root of {}", body.subject.id),
                    body.time_ms,
                ),
            ));
        }
        PartyPayload::AccessGranted { party, kinds } => {
            let known = view
                .entry(&crate::envelope::SubjectRef::new(PARTY, party.clone()))
                .is_some_and(|s| matches!(s.kernel, Some(KernelSubject::ForeignParty { .. })));
            if !known {
                return Err(Refusal::field(
                    "party",
                    format!("{party:?} is not a party this one recognizes"),
                ));
            }
            let grantable = |k: &String| view.kind(k).is_some_and(|s| s.grantable);
            if kinds.is_empty() || !kinds.iter().all(grantable) {
                let names = view.grantable_kinds();
                return Err(Refusal::field(
                    "kinds",
                    format!("grants name grantable kinds only ({})", names.join(", ")),
                ));
            }
            let author_party = view
                .key(&body.author)
                .map(|k| k.party.clone())
                .unwrap_or_default();
            let own = view.party().map(|p| p.name.as_str());
            if own != Some(author_party.as_str()) {
                // Only the registrant's party hands out rights on its subject.
                return Err(Refusal::NoGrant {
                    party: author_party,
                    subject: subject_text,
                    kind: event.kind.name.to_string(),
                });
            }
            entry
                .grants
                .entry(party.clone())
                .or_default()
                .extend(kinds.iter().cloned());
        }
        PartyPayload::RulesChanged { rules } => {
            let party = view.party().expect("the kernel checked the genesis");
            if body.subject.id != party.name {
                return Err(Refusal::InvalidSubject {
                    subject: subject_text,
                    reason: format!(
                        "rules change on the party's own subject party/{}",
                        party.name
                    ),
                });
            }
            if body.author != party.root_key {
                return Err(Refusal::RootOnly {
                    kind: event.kind.name.to_string(),
                });
            }
            rules.check()?;
            fx.party = Some(PartyState {
                rules: rules.clone(),
                ..party.clone()
            });
        }
    }
    Ok(fx)
}
