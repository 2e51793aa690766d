//! Queries over the projection: search with paging, and the trust verdict.
//! Pure like the rest of the core: the caller passes the time.

use super::event::{SubjectKind, SubjectRef};
use super::keys::KeyId;
use super::openpgp;
use super::projection::{Projection, StateView, SubjectDetail, SubjectState, serial_key};

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
    KeyFingerprint(KeyId),
}

/// One page of results and where the next starts.
pub struct Page<'a> {
    pub subjects: Vec<(&'a SubjectRef, &'a SubjectState)>,
    pub next: Option<SubjectRef>,
}

fn matches(query: &SearchQuery, state: &SubjectState) -> bool {
    match (query, &state.detail) {
        (SearchQuery::Attribute { name, value }, SubjectDetail::Device { attributes, .. }) => {
            attributes.iter().any(|(k, v)| k == name && v == value)
        }
        (SearchQuery::CodeName(n), SubjectDetail::Code { identity, .. }) => &identity.name == n,
        (SearchQuery::CodeDigest(d), SubjectDetail::Code { identity, .. }) => {
            &identity.blake3 == d || &identity.sha256 == d
        }
        _ => false,
    }
}

impl Projection {
    /// Subjects matching `query`, in subject order, after the page token `after`.
    pub fn search(
        &self,
        query: &SearchQuery,
        after: Option<&SubjectRef>,
        limit: usize,
    ) -> Page<'_> {
        let direct = match query {
            SearchQuery::Serial(serial) => Some(self.name_owner(&serial_key(serial))),
            SearchQuery::KeyFingerprint(id) => Some(self.subject_by_fingerprint(id)),
            _ => None,
        };
        if let Some(found) = direct {
            // At most one subject: a single page.
            let subjects = found
                .filter(|s| after.is_none_or(|a| *s > a))
                .and_then(|s| self.subject_entry(s))
                .into_iter()
                .collect();
            return Page {
                subjects,
                next: None,
            };
        }
        let mut subjects: Vec<_> = self
            .subjects_after(after)
            .filter(|(_, state)| matches(query, state))
            .take(limit + 1)
            .collect();
        let next = if subjects.len() > limit {
            subjects.truncate(limit);
            subjects.last().map(|(r, _)| (*r).clone())
        } else {
            None
        };
        Page { subjects, next }
    }

    /// Whether a key or a code digest is trusted at `now_ms`, and why.
    pub fn verify(&self, target: &VerifyTarget, now_ms: i64) -> Trust {
        let party = self.party_state().map(|p| p.name.clone());
        let found = match target {
            VerifyTarget::Key(id) => self
                .subject_by_fingerprint(id)
                .and_then(|s| self.subject(s).map(|st| (s.clone(), st))),
            VerifyTarget::CodeDigest(d) => {
                let by_blake3 = SubjectRef::new(SubjectKind::Code, hex::encode(d));
                match self.subject(&by_blake3) {
                    Some(st) => Some((by_blake3, st)),
                    None => self
                        .search(&SearchQuery::CodeDigest(*d), None, 1)
                        .subjects
                        .first()
                        .map(|(r, st)| ((*r).clone(), *st)),
                }
            }
        };
        let Some((subject, state)) = found else {
            // The party's root key has no subject of its own.
            if let VerifyTarget::Key(id) = target
                && self.party_state().is_some_and(|p| p.root_key == *id)
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
        let (trusted, reason) = match &state.detail {
            SubjectDetail::Device { status, serial, .. } => {
                use super::event::DeviceStatus::*;
                let ok = matches!(status, Planned | InUse);
                (
                    ok,
                    format!(
                        "device {serial} registered by key {}, status {}",
                        state.registered_by,
                        status.name()
                    ),
                )
            }
            SubjectDetail::Code { identity, status } => {
                use super::event::CodeStatus::*;
                (
                    *status == Released,
                    format!(
                        "code {}@{} released by key {}, status {}",
                        identity.name,
                        identity.version,
                        state.registered_by,
                        status.name()
                    ),
                )
            }
            SubjectDetail::AuthorKey { key_id } => match self.key(key_id) {
                Some(k) if k.revoked => (false, "author key revoked".to_string()),
                Some(k) if k.not_after_ms.is_some_and(|t| now_ms > t) => {
                    (false, "author key expired".to_string())
                }
                Some(_) => (
                    true,
                    format!("author key registered by key {}", state.registered_by),
                ),
                None => (false, "author key unknown".to_string()),
            },
            SubjectDetail::Service {
                name,
                owner,
                endpoints,
                ..
            } => (
                true,
                format!(
                    "service {name} run by {owner} at {} registered by key {}",
                    endpoints.join(" "),
                    state.registered_by
                ),
            ),
            SubjectDetail::Party | SubjectDetail::ForeignParty { .. } => {
                (false, "a party is not a key".to_string())
            }
        };
        // A key that rotation replaced still finds its subject, but is not trusted.
        let (trusted, reason) = match (target, state.detail.current_key()) {
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
            .endorsements
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
            status: state.status(),
            registered_by: Some(state.registered_by),
            registered_at_index: state.history.first().copied(),
            subject: Some(subject),
            party,
        }
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
    pub registered_at_index: Option<u64>,
    pub party: Option<String>,
}

/// Parses a page token ("kind/id", as `SubjectRef` displays).
pub fn parse_page_token(token: &str) -> Option<SubjectRef> {
    let (kind, id) = token.split_once('/')?;
    Some(SubjectRef::new(SubjectKind::from_name(kind)?, id))
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
pub fn openpgp_export(state: &SubjectState) -> Option<OpenPgpExport> {
    match &state.detail {
        SubjectDetail::Device {
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
        SubjectDetail::Code { identity, .. } => identity
            .openpgp_signature
            .clone()
            .map(|binary| OpenPgpExport::Signature { binary }),
        _ => None,
    }
}
