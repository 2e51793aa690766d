//! Policy descriptors as a capability: `policy-published`, signed by the
//! party root key, one subject per version (`policy/<version, 20 digits>`),
//! versions in order from 1 without gaps. The latest accepted version is in
//! force from its log index on, on every replica.
//!
//! `decide` reads subjects only (the index lags a batch being staged).

use ics_kernel::capability::{Accepted, Capability, Ctx, Field, KindSpec, Payload, Subjects};
use ics_kernel::{CapState, Refusal, RefusalClass, Role, SubjectRef};
use ics_proto::policy_v1 as pb;
use prost::Message;
use serde::{Deserialize, Serialize};

use crate::descriptor::{Descriptor, DocumentError};
use crate::evaluate::AUTHORITY_SUBJECT_KINDS;

/// Subject kind: one descriptor version, `policy/<version, 20 digits>`.
pub const POLICY: &str = "policy";

pub static POLICY_PUBLISHED: KindSpec = KindSpec {
    name: "policy-published",
    message: "ics.policy.v1.PolicyPublished",
    subjects: Subjects::Of(&[POLICY]),
    opens_subject: true,
    // Every party has a policy; only its root key publishes (the rule checks).
    authored_by: &Role::ALL,
    grantable: false,
};

static KINDS: [&KindSpec; 1] = [&POLICY_PUBLISHED];

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyPayload {
    Published { document: String },
}

impl Payload for PolicyPayload {
    fn kind(&self) -> &'static KindSpec {
        &POLICY_PUBLISHED
    }

    fn encode(&self) -> Vec<u8> {
        let PolicyPayload::Published { document } = self;
        pb::PolicyPublished {
            document: document.clone(),
        }
        .encode_to_vec()
    }

    fn describe(&self) -> Vec<(&'static str, Field)> {
        let PolicyPayload::Published { document } = self;
        vec![("document", Field::text(document))]
    }
}

/// One published descriptor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyState {
    /// The text as signed.
    pub document: String,
    pub descriptor: Descriptor,
    /// Where the `policy-published` event sits in the log.
    pub position: u64,
}

/// The version in force, for queries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyIndex {
    pub active: Option<u64>,
}

/// The policy capability's refusals; each a kernel `Refusal::Rule` whose
/// reason is the variant's name in capitals.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyRefusal {
    #[error("only the party root key publishes a policy; {0} is not it")]
    NotRootKey(String),
    #[error("policy descriptor: {0}")]
    BadDocument(DocumentError),
    #[error("the descriptor is of party {asked:?}; this party is {expected:?}")]
    WrongParty { expected: String, asked: String },
    #[error("version {version}: version {missing} was never published")]
    VersionGap { version: u64, missing: u64 },
    #[error("peer {0:?} is not a party this one recognizes (party-recognized first)")]
    PeerNotRecognized(String),
    #[error("{rule}: {kind:?} is not an event kind of these rules")]
    UnknownKind { rule: String, kind: String },
}

impl PolicyRefusal {
    pub fn reason(&self) -> &'static str {
        use PolicyRefusal::*;
        match self {
            NotRootKey(_) => "NOT_ROOT_KEY",
            BadDocument(_) => "BAD_POLICY_DOCUMENT",
            WrongParty { .. } => "WRONG_PARTY",
            VersionGap { .. } => "POLICY_VERSION_GAP",
            PeerNotRecognized(_) => "PEER_NOT_RECOGNIZED",
            UnknownKind { .. } => "UNKNOWN_KIND",
        }
    }

    pub fn class(&self) -> RefusalClass {
        use PolicyRefusal::*;
        match self {
            NotRootKey(_) => RefusalClass::PermissionDenied,
            BadDocument(_) | WrongParty { .. } | UnknownKind { .. } => {
                RefusalClass::InvalidArgument
            }
            VersionGap { .. } | PeerNotRecognized(_) => RefusalClass::FailedPrecondition,
        }
    }
}

impl From<PolicyRefusal> for Refusal {
    fn from(r: PolicyRefusal) -> Refusal {
        Refusal::Rule {
            reason: r.reason().to_string(),
            class: r.class(),
            message: r.to_string(),
        }
    }
}

/// A descriptor version's subject.
pub fn policy_subject(version: u64) -> SubjectRef {
    SubjectRef::new(POLICY, format!("{version:020}"))
}

/// The policy in force in a committed state: the latest version.
pub fn active(state: &CapState<Policies>) -> Option<&PolicyState> {
    let version = state.index().active?;
    state.subject(&policy_subject(version))
}

/// The policy in force on a staged state (batches being decided included):
/// the latest of the versions, which run from 1 without gaps.
pub fn active_staged<'a>(staged: &'a ics_kernel::Staged<'_>) -> Option<&'a PolicyState> {
    let published = |v: u64| staged.read::<Policies>(&policy_subject(v)).is_some();
    if !published(1) {
        return None;
    }
    let mut high = 2;
    while published(high) {
        high *= 2;
    }
    // Published up to some version in [high / 2, high).
    let mut low = high / 2;
    while high - low > 1 {
        let mid = low + (high - low) / 2;
        if published(mid) {
            low = mid;
        } else {
            high = mid;
        }
    }
    staged.read::<Policies>(&policy_subject(low))
}

/// A version of the policy, if published.
pub fn version(state: &CapState<Policies>, version: u64) -> Option<&PolicyState> {
    state.subject(&policy_subject(version))
}

/// The policy capability.
pub struct Policies;

impl Capability for Policies {
    const NAME: &'static str = "policy";
    const VERSION: u32 = 1;
    type Payload = PolicyPayload;
    type Subject = PolicyState;
    type Index = PolicyIndex;

    fn subject_kinds() -> &'static [&'static str] {
        &[POLICY]
    }

    fn kinds() -> &'static [&'static KindSpec] {
        &KINDS
    }

    fn decode(kind: &'static KindSpec, bytes: &[u8]) -> Result<PolicyPayload, Refusal> {
        if !std::ptr::eq(kind, &POLICY_PUBLISHED) {
            return Err(Refusal::Malformed(format!(
                "{} is not a policy kind",
                kind.name
            )));
        }
        let m = pb::PolicyPublished::decode(bytes)
            .map_err(|e| Refusal::Malformed(format!("{}: {e}", kind.message)))?;
        Ok(PolicyPayload::Published {
            document: m.document,
        })
    }

    fn decide(
        ctx: &Ctx<'_>,
        _current: Option<&PolicyState>,
        payload: &PolicyPayload,
    ) -> Result<Accepted<PolicyState>, Refusal> {
        let PolicyPayload::Published { document } = payload;
        let party = ctx.party();
        let author = ctx.body().author;
        if author != party.root_key {
            return Err(PolicyRefusal::NotRootKey(author.to_string()).into());
        }
        let descriptor = Descriptor::parse(document).map_err(PolicyRefusal::BadDocument)?;
        if descriptor.party != party.name {
            return Err(PolicyRefusal::WrongParty {
                expected: party.name.clone(),
                asked: descriptor.party.clone(),
            }
            .into());
        }
        let subject = policy_subject(descriptor.version);
        if *ctx.subject() != subject {
            return Err(Refusal::InvalidSubject {
                subject: ctx.subject().to_string(),
                reason: format!("version {}'s subject is {subject}", descriptor.version),
            });
        }
        if descriptor.version > 1 {
            let previous = descriptor.version - 1;
            if ctx.read::<Policies>(&policy_subject(previous)).is_none() {
                return Err(PolicyRefusal::VersionGap {
                    version: descriptor.version,
                    missing: previous,
                }
                .into());
            }
        }
        for peer in &descriptor.peers {
            if !ctx.recognizes(&peer.name) {
                return Err(PolicyRefusal::PeerNotRecognized(peer.name.clone()).into());
            }
        }
        for (section, rules) in [("read", &descriptor.reads), ("import", &descriptor.imports)] {
            for (i, rule) in rules.iter().enumerate() {
                for kind in rule.kinds.iter().filter(|k| *k != "*") {
                    let known = ctx.kind(kind).is_some_and(|spec| {
                        descriptor
                            .domain(&rule.domain)
                            .is_some_and(|d| d.subjects.iter().any(|s| spec.is_about(s)))
                    });
                    if !known {
                        return Err(PolicyRefusal::UnknownKind {
                            rule: crate::descriptor::rule_label(section, i, rule),
                            kind: kind.clone(),
                        }
                        .into());
                    }
                }
            }
        }
        Ok(Accepted {
            subject: PolicyState {
                document: document.clone(),
                descriptor,
                position: ctx.position,
            },
            claims: Vec::new(),
        })
    }

    fn index(
        index: &mut PolicyIndex,
        _subject: &SubjectRef,
        _before: Option<&PolicyState>,
        after: &PolicyState,
    ) {
        index.active = index.active.max(Some(after.descriptor.version));
    }

    fn summary(subject: &PolicyState) -> String {
        let d = &subject.descriptor;
        format!(
            "policy version {} of {}: {} peers, {} domains, {} read and {} import rules",
            d.version,
            d.party,
            d.peers.len(),
            d.domains.len(),
            d.reads.len(),
            d.imports.len()
        )
    }

    fn status(_subject: &PolicyState) -> Option<&'static str> {
        None
    }
}

/// Whether a subject kind is one of a party's authority (always readable by
/// the peers a policy names).
pub fn is_authority(subject_kind: &str) -> bool {
    AUTHORITY_SUBJECT_KINDS.contains(&subject_kind)
}
