//! The kernel's decision on one event: the checks every event passes
//! (duplicate, size, schema, subject kind, signatures, author rights, the
//! subject's hash chain, the record cap), then the rules of the kind's owner
//! (the kernel's authority, or a capability), giving the effects of accepting
//! it. Pure: the event's own time is the only time the rules see.

use std::collections::BTreeMap;

use crate::authority::{self, PartyPayload};
use crate::capability::{AnyPayload, Claim, Ctx, LogTree, Subjects};
use crate::envelope::{EventId, SCHEMA_VERSION, SubjectRef};
use crate::keys::KeyId;
use crate::limits::EventLimits;
use crate::refusal::Refusal;
use crate::rules::{Event, Owner, Rules};
use crate::state::{KeyState, PartyState, SubjectEntry, View};

/// What accepting one event changes.
pub(crate) struct Effects {
    pub(crate) event_id: EventId,
    pub(crate) subject: SubjectRef,
    pub(crate) entry: SubjectEntry,
    pub(crate) party: Option<PartyState>,
    pub(crate) key: Option<(KeyId, KeyState)>,
    pub(crate) claims: Vec<Claim>,
    pub(crate) capability: Option<(usize, Box<AnyPayload>)>,
}

impl Effects {
    /// What the event changed, as text hashed into the state hash: equal on
    /// replicas that agree, whether events commit one by one or in batches.
    /// Only batches that will commit pay for it (see `Staged::precheck`).
    pub(crate) fn digest(&self, rules: &Rules) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(&self.event_id.0);
        h.update(format!("{}{:?}", self.subject, self.entry).as_bytes());
        if let Some(p) = &self.party {
            h.update(format!("{p:?}").as_bytes());
        }
        if let Some(k) = &self.key {
            h.update(format!("{k:?}").as_bytes());
        }
        for c in &self.claims {
            h.update(c.to_string().as_bytes());
        }
        if let Some((slot, state)) = &self.capability {
            h.update(rules.capability(*slot).debug(state.as_ref()).as_bytes());
        }
        *h.finalize().as_bytes()
    }
}

pub(crate) enum Decision {
    /// Already in the log at this position: accepting it again changes nothing.
    Duplicate(u64),
    Accept(Box<Effects>),
}

fn chain_text(id: Option<&EventId>) -> String {
    id.map_or_else(|| "none".to_string(), EventId::to_hex)
}

fn subject_kinds_text(rules: &Rules, subjects: Subjects) -> String {
    let kinds: Vec<&str> = match subjects {
        Subjects::Of(kinds) => kinds.to_vec(),
        Subjects::AnyCapabilitySubject => rules
            .subject_kind_names()
            .filter(|k| !authority::SUBJECT_KINDS.contains(k))
            .collect(),
    };
    kinds.join(" or ")
}

/// Checks the signatures: the author's must be there, every one must verify
/// against a key of the party or one the event brings in.
fn check_signatures(
    rules: &Rules,
    view: &dyn View,
    event: &Event,
    limits: &EventLimits,
) -> Result<(), Refusal> {
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
    if !sigs.iter().any(|s| s.key_id == event.body.author) {
        return Err(Refusal::MissingAuthorSignature(event.body.author.to_hex()));
    }
    let introduced = rules.introduced_keys(event);
    for sig in sigs {
        let public = match view.key(&sig.key_id) {
            Some(k) => &k.public_key,
            None => *introduced
                .iter()
                .find(|k| k.id() == sig.key_id)
                .ok_or_else(|| Refusal::UnknownKey(sig.key_id.to_hex()))?,
        };
        if public.algorithm() != sig.algorithm
            || !public.verify_event(&event.envelope.body, &sig.bytes)
        {
            return Err(Refusal::BadSignature(sig.key_id.to_hex()));
        }
    }
    Ok(())
}

/// Checks the author may sign this kind on this subject.
fn check_author(view: &dyn View, event: &Event) -> Result<(), Refusal> {
    let body = &event.body;
    let kind = event.kind;
    if let Some(PartyPayload::Genesis { root_key, .. }) = event.payload::<PartyPayload>() {
        if view.party().is_some() {
            return Err(Refusal::GenesisExists);
        }
        if root_key.id() != body.author {
            return Err(Refusal::GenesisNotSelfSigned);
        }
        return Ok(());
    }
    let Some(party) = view.party() else {
        return Err(Refusal::NoGenesis);
    };
    let author_hex = body.author.to_hex();
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
    if !author.may_sign(kind.name) {
        return Err(Refusal::AuthorNotAllowed {
            key: author_hex,
            kind: kind.name.to_string(),
        });
    }
    if author.party == party.name {
        // The party's role decides which records it authors.
        if !kind.authored_by.contains(&party.role) {
            return Err(Refusal::RoleMayNotAuthor {
                role: party.role.name().to_string(),
                kind: kind.name.to_string(),
            });
        }
    } else {
        // Another party attaches only what the subject's registrant granted it.
        let granted = view
            .entry(&body.subject)
            .and_then(|s| s.grants.get(&author.party))
            .is_some_and(|kinds| kinds.contains(kind.name));
        if !granted {
            return Err(Refusal::NoGrant {
                party: author.party.clone(),
                subject: body.subject.to_string(),
                kind: kind.name.to_string(),
            });
        }
    }
    Ok(())
}

/// Checks `event` against `view`: the kernel's checks, then its kind's rules.
/// `limits` apply only before the genesis; from then on, the replicated ones.
pub(crate) fn decide(
    rules: &Rules,
    view: &dyn View,
    event: &Event,
    limits: &EventLimits,
    tree: &dyn LogTree,
) -> Result<Decision, Refusal> {
    if let Some(index) = view.event_index(&event.id) {
        return Ok(Decision::Duplicate(index));
    }
    let limits = view.party().map_or(limits, |p| &p.rules.limits);
    let body = &event.body;
    let kind = event.kind;
    if event.envelope.body.len() > limits.max_body_bytes {
        return Err(Refusal::BodyTooLarge {
            size: event.envelope.body.len(),
            limit: limits.max_body_bytes,
        });
    }
    if body.schema_version != SCHEMA_VERSION {
        return Err(Refusal::UnsupportedSchema(body.schema_version));
    }
    let subject_text = body.subject.to_string();
    if !kind.is_about(&body.subject.kind) || !rules.is_subject_kind(&body.subject.kind) {
        return Err(Refusal::InvalidSubject {
            subject: subject_text,
            reason: format!(
                "{} events are about {} subjects",
                kind.name,
                subject_kinds_text(rules, kind.subjects)
            ),
        });
    }
    check_signatures(rules, view, event, limits)?;
    check_author(view, event)?;

    // The subject's hash chain.
    let current = view.entry(&body.subject);
    let (expected_sequence, expected_previous) = match current {
        None => (0, None),
        Some(s) => (s.next_sequence, Some(s.last_event)),
    };
    if body.sequence != expected_sequence || body.previous != expected_previous {
        if current.is_none() && !kind.opens_subject {
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
    if current.is_none() != kind.opens_subject {
        // Sequence 0 of an existing subject is a conflict above; this is an
        // opening kind on a live subject's later position, or the reverse.
        return Err(match current {
            None => Refusal::UnknownSubject(subject_text),
            Some(_) => Refusal::InvalidSubject {
                subject: subject_text,
                reason: format!("{} may only open a subject's history", kind.name),
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

    // The subject moved one event on; the kind's rules change the rest.
    let position = view.next_index();
    let mut entry = match current {
        Some(s) => SubjectEntry {
            next_sequence: body.sequence + 1,
            last_event: event.id,
            ..s.clone()
        },
        None => SubjectEntry {
            next_sequence: body.sequence + 1,
            last_event: event.id,
            registered_by: body.author,
            history: Vec::new(),
            grants: BTreeMap::new(),
            kernel: None,
        },
    };
    entry.history.push(position);
    let mut effects = Effects {
        event_id: event.id,
        subject: body.subject.clone(),
        entry,
        party: None,
        key: None,
        claims: Vec::new(),
        capability: None,
    };
    match event.owner {
        Owner::Kernel => {
            let payload = event
                .payload::<PartyPayload>()
                .expect("the kernel decodes its own kinds");
            let fx = authority::decide(view, event, payload, &mut effects.entry, limits)?;
            effects.party = fx.party;
            effects.key = fx.key;
            effects.claims = fx.claims;
        }
        Owner::Capability(slot) => {
            let cap = rules.capability(slot);
            let party = view.party().expect("check_author found the genesis");
            let Some(active) = party.rules.capabilities.get(cap.name()) else {
                return Err(Refusal::InactiveCapability {
                    capability: cap.name().to_string(),
                });
            };
            // A node whose build does not run the active version stopped
            // when the version was activated (`Projection::check_supported`).
            assert_eq!(
                *active,
                cap.version(),
                "capability {} runs at another version than the log activated",
                cap.name()
            );
            let ctx = Ctx {
                event,
                position,
                limits,
                author: view.key(&body.author).expect("check_author found the key"),
                tree,
                view,
            };
            let current = view.cap_subject(slot, &body.subject);
            let (state, claims) = cap.decide(&ctx, current, event.payload.as_ref())?;
            effects.capability = Some((slot, state));
            effects.claims = claims;
        }
    }
    for claim in &effects.claims {
        if let Some(owner) = view.claim_owner(claim) {
            return Err(Refusal::NameTaken {
                name: claim.to_string(),
                subject: owner.to_string(),
            });
        }
    }
    Ok(Decision::Accept(Box::new(effects)))
}
