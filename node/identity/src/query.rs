//! Queries over the identity state: search with paging, the trust verdict,
//! and OpenPGP export. Pure: the caller passes the time.

use ics_kernel::authority::AUTHOR_KEY;
use ics_kernel::capability::Claim;
use ics_kernel::projection::{KernelSubject, SubjectView};
use ics_kernel::{KeyId, Projection, SubjectRef};

use crate::device::SERIAL_SPACE;
use crate::openpgp;
use crate::payload::{CodeStatus, DeviceStatus};
use crate::state::{Detail, IdentityState};
use crate::{CODE, Identity};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SearchQuery {
    Serial(String),
    Attribute {
        name: String,
        value: String,
    },
    CodeName(String),
    /// blake3 or SHA-256 of an artifact.
    CodeDigest([u8; 32]),
    /// Key id of a device, service or author key (current or rotated out).
    KeyId(KeyId),
}

/// One page of results and where the next starts.
pub struct Page<'a> {
    pub subjects: Vec<SubjectView<'a>>,
    pub next: Option<SubjectRef>,
}

fn matches(query: &SearchQuery, state: &IdentityState) -> bool {
    match (query, &state.detail) {
        (SearchQuery::Attribute { name, value }, Detail::Device { attributes, .. }) => {
            attributes.iter().any(|(k, v)| k == name && v == value)
        }
        (SearchQuery::CodeName(n), Detail::Code { identity, .. }) => &identity.name == n,
        (SearchQuery::CodeDigest(d), Detail::Code { identity, .. }) => {
            &identity.blake3 == d || &identity.sha256 == d
        }
        _ => false,
    }
}

/// The subject a key identifies: a device or service (by its current or a
/// rotated-out key), or an author key.
pub fn subject_by_key(p: &Projection, id: &KeyId) -> Option<SubjectRef> {
    let identities = p.capability::<Identity>();
    identities.index().subject_by_key(id).cloned().or_else(|| {
        let author = SubjectRef::new(AUTHOR_KEY, id.to_hex());
        p.entry(&author).map(|_| author)
    })
}

/// Subjects matching `query`, in subject order, after the page token `after`.
pub fn search<'a>(
    p: &'a Projection,
    query: &SearchQuery,
    after: Option<&SubjectRef>,
    limit: usize,
) -> Page<'a> {
    let direct = match query {
        SearchQuery::Serial(serial) => Some(
            p.claim_owner(&Claim::new(SERIAL_SPACE, serial.clone()))
                .cloned(),
        ),
        SearchQuery::KeyId(id) => Some(subject_by_key(p, id)),
        _ => None,
    };
    if let Some(found) = direct {
        // At most one subject: a single page.
        let subjects = found
            .filter(|s| after.is_none_or(|a| s > a))
            .and_then(|s| p.describe(&s))
            .into_iter()
            .collect();
        return Page {
            subjects,
            next: None,
        };
    }
    let mut found: Vec<&SubjectRef> = p
        .capability::<Identity>()
        .subjects_after(after)
        .filter(|(_, state)| matches(query, state))
        .map(|(s, _)| s)
        .take(limit + 1)
        .collect();
    let next = if found.len() > limit {
        found.truncate(limit);
        found.last().map(|s| (*s).clone())
    } else {
        None
    };
    Page {
        subjects: found.into_iter().filter_map(|s| p.describe(s)).collect(),
        next,
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerifyTarget {
    Key(KeyId),
    CodeDigest([u8; 32]),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trust {
    pub trusted: bool,
    pub reason: String,
    pub subject: Option<SubjectRef>,
    pub status: Option<&'static str>,
    pub registered_by: Option<KeyId>,
    /// Log position of the subject's first event.
    pub registered_at: Option<u64>,
    pub party: Option<String>,
}

fn identity_verdict(state: &IdentityState, registered_by: &KeyId) -> (bool, String) {
    match &state.detail {
        Detail::Device { status, serial, .. } => (
            matches!(status, DeviceStatus::Planned | DeviceStatus::InUse),
            format!(
                "device {serial} registered by key {registered_by}, status {}",
                status.name()
            ),
        ),
        Detail::Code { identity, status } => (
            *status == CodeStatus::Released,
            format!(
                "code {}@{} released by key {registered_by}, status {}",
                identity.name,
                identity.version,
                status.name()
            ),
        ),
        Detail::Service {
            name,
            owner,
            endpoints,
            ..
        } => (
            true,
            format!(
                "service {name} run by {owner} at {} registered by key {registered_by}",
                endpoints.join(" "),
            ),
        ),
    }
}

/// Whether a key or a code digest is trusted at `now_ms`, and why.
pub fn verify(p: &Projection, target: &VerifyTarget, now_ms: i64) -> Trust {
    let party = p.party().map(|x| x.name.clone());
    let identities = p.capability::<Identity>();
    let found = match target {
        VerifyTarget::Key(id) => subject_by_key(p, id),
        VerifyTarget::CodeDigest(d) => {
            let by_blake3 = SubjectRef::new(CODE, hex::encode(d));
            match identities.subject(&by_blake3) {
                Some(_) => Some(by_blake3),
                None => search(p, &SearchQuery::CodeDigest(*d), None, 1)
                    .subjects
                    .first()
                    .map(|v| v.subject.clone()),
            }
        }
    };
    let Some((subject, entry)) = found.and_then(|s| p.entry(&s).map(|e| (s, e))) else {
        // The party's root key has no subject of its own.
        if let VerifyTarget::Key(id) = target
            && p.party().is_some_and(|x| x.root_key == *id)
        {
            return Trust {
                trusted: true,
                reason: "the party's root key".to_string(),
                party,
                ..Trust::default()
            };
        }
        return Trust {
            trusted: false,
            reason: "not registered with this party".to_string(),
            party,
            ..Trust::default()
        };
    };
    let state = identities.subject(&subject);
    let (trusted, reason) = match (state, &entry.kernel) {
        (Some(state), _) => identity_verdict(state, &entry.registered_by),
        (None, Some(KernelSubject::AuthorKey { key_id })) => match p.key(key_id) {
            Some(k) if k.revoked => (false, "author key revoked".to_string()),
            Some(k) if k.not_after_ms.is_some_and(|t| now_ms > t) => {
                (false, "author key expired".to_string())
            }
            Some(_) => (
                true,
                format!("author key registered by key {}", entry.registered_by),
            ),
            None => (false, "author key unknown".to_string()),
        },
        (None, _) => (false, "a party is not a key".to_string()),
    };
    // A key that rotation replaced still finds its subject, but is not trusted.
    let current = state.and_then(|s| s.detail.current_key());
    let (trusted, reason) = match (target, current) {
        (VerifyTarget::Key(id), Some(current)) if current.id() != *id => (
            false,
            format!(
                "{reason}; key {id} was replaced by rotation, current key {}",
                current.id()
            ),
        ),
        _ => (trusted, reason),
    };
    let endorsed: Vec<String> = state
        .map(|s| s.endorsements.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|e| !e.withdrawn && e.not_after_ms >= now_ms)
        .map(|e| format!("{} by {} ({})", e.kind.name(), e.party, e.scope))
        .collect();
    let reason = if endorsed.is_empty() {
        reason
    } else {
        format!("{reason}; endorsed: {}", endorsed.join(", "))
    };
    Trust {
        trusted,
        reason,
        status: state.and_then(IdentityState::status),
        registered_by: Some(entry.registered_by),
        registered_at: entry.history.first().copied(),
        subject: Some(subject),
        party,
    }
}

/// A subject's OpenPGP form: a device's certificate or a code release's signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpenPgpExport {
    Certificate {
        binary: Vec<u8>,
        fingerprint: String,
        revoked: bool,
    },
    Signature {
        binary: Vec<u8>,
    },
}

impl OpenPgpExport {
    pub fn binary(&self) -> &[u8] {
        match self {
            OpenPgpExport::Certificate { binary, .. } | OpenPgpExport::Signature { binary } => {
                binary
            }
        }
    }

    pub fn armored(&self) -> String {
        openpgp::armored(
            self.binary(),
            matches!(self, OpenPgpExport::Certificate { .. }),
        )
    }
}

/// The subject's OpenPGP form, if it was registered with one.
pub fn openpgp_export(state: &IdentityState) -> Option<OpenPgpExport> {
    match &state.detail {
        Detail::Device {
            openpgp: Some(c), ..
        } => {
            let endorsements = state.endorsements.iter().filter_map(|e| {
                e.openpgp_certification
                    .as_deref()
                    .map(|c| (c, e.openpgp_revocation.as_deref()))
            });
            Some(OpenPgpExport::Certificate {
                binary: openpgp::assemble(c, endorsements),
                fingerprint: c.fingerprint_hex(),
                revoked: c.revoked(),
            })
        }
        Detail::Code { identity, .. } => identity
            .openpgp_signature
            .clone()
            .map(|binary| OpenPgpExport::Signature { binary }),
        _ => None,
    }
}
