//! Federation as a capability: `federation-synced` records this party's
//! cursor in a peer's log (subject `federation-peer/<peer>`), so every
//! replica, a restarted node and a new leader resume the pull where the
//! last one proved it complete. Accepted only for a recognized peer whose
//! log key this party bound (`tlog-peer-bound`), with a checkpoint signed by
//! that key, a frontier reaching its root, and never backwards.
//!
//! `decide` reads subjects only (the index lags a batch being staged).

use ics_kernel::capability::{Accepted, Capability, Ctx, Field, KindSpec, Payload, Subjects};
use ics_kernel::{Refusal, RefusalClass, Role, SubjectRef};
use ics_proto::federation_v1 as pb;
use ics_tlog::merkle::{Frontier, Hash};
use ics_tlog::note::{Checkpoint, Note};
use ics_tlog::{Tlog, TlogState, peer_subject};
use prost::Message;
use serde::{Deserialize, Serialize};

/// Subject kind: this party's cursor in a peer's log.
pub const FEDERATION_PEER: &str = "federation-peer";

pub static FEDERATION_SYNCED: KindSpec = KindSpec {
    name: "federation-synced",
    message: "ics.federation.v1.Synced",
    subjects: Subjects::Of(&[FEDERATION_PEER]),
    opens_subject: false,
    authored_by: &Role::ALL,
    grantable: false,
};

/// Opens a peer's cursor subject: the first sync with it.
pub static FEDERATION_FIRST_SYNCED: KindSpec = KindSpec {
    name: "federation-first-synced",
    message: "ics.federation.v1.FirstSynced",
    subjects: Subjects::Of(&[FEDERATION_PEER]),
    opens_subject: true,
    authored_by: &Role::ALL,
    grantable: false,
};

static KINDS: [&KindSpec; 2] = [&FEDERATION_FIRST_SYNCED, &FEDERATION_SYNCED];

/// The kinds the key that records syncs (the party's log key) signs.
pub const SYNC_KINDS: [&str; 2] = ["federation-first-synced", "federation-synced"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncedPayload {
    pub first: bool,
    pub checkpoint: Vec<u8>,
    pub frontier: Vec<u8>,
    /// The policies the cursor was reached under (the peer's, this party's).
    pub policies: (u64, u64),
}

impl Payload for SyncedPayload {
    fn kind(&self) -> &'static KindSpec {
        if self.first {
            &FEDERATION_FIRST_SYNCED
        } else {
            &FEDERATION_SYNCED
        }
    }

    fn encode(&self) -> Vec<u8> {
        // Both messages have the same fields: one encoding.
        pb::Synced {
            checkpoint: self.checkpoint.clone(),
            frontier: self.frontier.clone(),
            source_policy_version: self.policies.0,
            own_policy_version: self.policies.1,
        }
        .encode_to_vec()
    }

    fn describe(&self) -> Vec<(&'static str, Field)> {
        vec![
            (
                "checkpoint",
                Field::text(String::from_utf8_lossy(&self.checkpoint)),
            ),
            (
                "frontier_bytes",
                Field::text(self.frontier.len().to_string()),
            ),
            (
                "policies",
                Field::text(format!(
                    "peer's version {}, this party's version {}",
                    self.policies.0, self.policies.1
                )),
            ),
        ]
    }
}

/// This party's cursor in a peer's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerCursor {
    pub peer: String,
    /// Leaves of the peer's tree proven and imported.
    pub size: u64,
    pub root: Hash,
    /// The frontier at `size` (`Frontier::to_bytes`).
    pub frontier: Vec<u8>,
    /// The peer's checkpoint at `size`, as served.
    pub checkpoint: Vec<u8>,
    /// Where the record sits in this party's log.
    pub position: u64,
    /// The record's time: when this party last proved a pull from the peer.
    pub synced_ms: i64,
    /// The peer's policy version and this party's the cursor was reached
    /// under; a newer one re-pulls from the start.
    pub policies: (u64, u64),
}

impl PeerCursor {
    pub fn frontier(&self) -> Frontier {
        Frontier::from_bytes(&self.frontier).expect("checked when recorded")
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SyncRefusal {
    #[error("{0:?} is not a party this one recognizes")]
    NotRecognized(String),
    #[error("no log key of {0:?} is bound here (icsctl log peer)")]
    PeerLogNotBound(String),
    #[error("the checkpoint: {0}")]
    BadCheckpoint(String),
    #[error("the frontier does not reach the checkpoint's size and root")]
    FrontierMismatch,
    #[error("the cursor in {peer:?}'s log would go back from {at} to {asked}")]
    Backwards { peer: String, at: u64, asked: u64 },
    #[error("{peer:?}'s log at size {size} has another root than recorded: a fork")]
    Fork { peer: String, size: u64 },
}

impl SyncRefusal {
    pub fn reason(&self) -> &'static str {
        use SyncRefusal::*;
        match self {
            NotRecognized(_) => "NOT_RECOGNIZED",
            PeerLogNotBound(_) => "PEER_NOT_BOUND",
            BadCheckpoint(_) => "BAD_CHECKPOINT",
            FrontierMismatch => "FRONTIER_MISMATCH",
            Backwards { .. } => "CURSOR_BACKWARDS",
            Fork { .. } => "PEER_LOG_FORK",
        }
    }

    pub fn class(&self) -> RefusalClass {
        use SyncRefusal::*;
        match self {
            NotRecognized(_) | PeerLogNotBound(_) | Backwards { .. } | Fork { .. } => {
                RefusalClass::FailedPrecondition
            }
            BadCheckpoint(_) | FrontierMismatch => RefusalClass::InvalidArgument,
        }
    }
}

impl From<SyncRefusal> for Refusal {
    fn from(r: SyncRefusal) -> Refusal {
        Refusal::Rule {
            reason: r.reason().to_string(),
            class: r.class(),
            message: r.to_string(),
        }
    }
}

/// A peer's cursor subject.
pub fn cursor_subject(peer: &str) -> SubjectRef {
    SubjectRef::new(FEDERATION_PEER, peer)
}

/// The federation capability.
pub struct Federation;

impl Capability for Federation {
    const NAME: &'static str = "federation";
    const VERSION: u32 = 1;
    type Payload = SyncedPayload;
    type Subject = PeerCursor;
    type Index = ();

    fn subject_kinds() -> &'static [&'static str] {
        &[FEDERATION_PEER]
    }

    fn kinds() -> &'static [&'static KindSpec] {
        &KINDS
    }

    fn decode(kind: &'static KindSpec, bytes: &[u8]) -> Result<SyncedPayload, Refusal> {
        let m = pb::Synced::decode(bytes)
            .map_err(|e| Refusal::Malformed(format!("{}: {e}", kind.message)))?;
        Ok(SyncedPayload {
            first: std::ptr::eq(kind, &FEDERATION_FIRST_SYNCED),
            checkpoint: m.checkpoint,
            frontier: m.frontier,
            policies: (m.source_policy_version, m.own_policy_version),
        })
    }

    fn decide(
        ctx: &Ctx<'_>,
        current: Option<&PeerCursor>,
        payload: &SyncedPayload,
    ) -> Result<Accepted<PeerCursor>, Refusal> {
        let peer = ctx.subject().id.clone();
        if !ctx.recognizes(&peer) {
            return Err(SyncRefusal::NotRecognized(peer).into());
        }
        let verifier = match ctx.read::<Tlog>(&peer_subject(&peer)) {
            Some(TlogState::Peer(p)) => p.log_verifier(),
            _ => None,
        }
        .ok_or_else(|| SyncRefusal::PeerLogNotBound(peer.clone()))?;
        let bad = |e: String| Refusal::from(SyncRefusal::BadCheckpoint(e));
        let note = Note::parse(&payload.checkpoint).map_err(|e| bad(e.to_string()))?;
        verifier.verify(&note).map_err(|e| bad(e.to_string()))?;
        let checkpoint = Checkpoint::parse(&note.text).map_err(|e| bad(e.to_string()))?;
        let frontier = Frontier::from_bytes(&payload.frontier)
            .map_err(|_| Refusal::from(SyncRefusal::FrontierMismatch))?;
        if frontier.size() != checkpoint.size || frontier.root() != checkpoint.root {
            return Err(SyncRefusal::FrontierMismatch.into());
        }
        if let Some(at) = current {
            if checkpoint.size < at.size {
                return Err(SyncRefusal::Backwards {
                    peer,
                    at: at.size,
                    asked: checkpoint.size,
                }
                .into());
            }
            if checkpoint.size == at.size && checkpoint.root != at.root {
                return Err(SyncRefusal::Fork {
                    peer,
                    size: at.size,
                }
                .into());
            }
        }
        Ok(Accepted {
            subject: PeerCursor {
                peer,
                size: checkpoint.size,
                root: checkpoint.root,
                frontier: payload.frontier.clone(),
                checkpoint: payload.checkpoint.clone(),
                position: ctx.position,
                synced_ms: ctx.time_ms(),
                policies: payload.policies,
            },
            claims: Vec::new(),
        })
    }

    fn index(
        _index: &mut (),
        _subject: &SubjectRef,
        _before: Option<&PeerCursor>,
        _after: &PeerCursor,
    ) {
    }

    fn summary(c: &PeerCursor) -> String {
        format!("synced with {} up to size {}", c.peer, c.size)
    }

    fn status(_c: &PeerCursor) -> Option<&'static str> {
        None
    }
}
