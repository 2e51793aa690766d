//! The transparency log as a capability: the party's log key, bound by its
//! root key, and the checkpoints that key signs, each committed through the
//! log. A checkpoint is accepted only for a size the log had committed
//! before its batch and with that size's root, and once per size: so every
//! committed checkpoint is a prefix of every larger one, whichever leader
//! signed it, and a verifier can ask for the proof.
//!
//! `decide` reads subjects only (the index lags a batch being staged, so a
//! verdict on it could differ between replicas that apply in other groups).

use ics_kernel::capability::{Accepted, Capability, Ctx, KindSpec};
use ics_kernel::{Algorithm, CapState, PublicKey, Refusal, RefusalClass, SubjectRef};
use serde::{Deserialize, Serialize};

use crate::merkle::Hash;
use crate::note::{Checkpoint, Note, NoteVerifier};
use crate::payload::{self, TlogPayload};
use crate::{TLOG_CHECKPOINT, TLOG_KEY};

/// A party's log origin, the first line of its checkpoints and the name its
/// log key signs under: derived from the party name, which the federation
/// already keeps unique.
pub fn log_origin(party: &str) -> String {
    format!("ics/{party}/log")
}

/// The transparency log capability.
pub struct Tlog;

/// A transparency log subject: the log key or a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TlogState {
    Key(LogKey),
    Checkpoint(CheckpointState),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogKey {
    pub origin: String,
    /// Ed25519, 32 bytes.
    pub public_key: Vec<u8>,
}

impl LogKey {
    pub fn verifier(&self) -> Option<NoteVerifier> {
        let key = <[u8; 32]>::try_from(self.public_key.as_slice()).ok()?;
        Some(NoteVerifier {
            name: self.origin.clone(),
            key: ed25519_dalek::VerifyingKey::from_bytes(&key).ok()?,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointState {
    pub size: u64,
    pub root: Hash,
    /// The signed note, as committed.
    pub note: Vec<u8>,
    /// The hex key id of the log key that signed it.
    pub key: String,
    /// Where the checkpoint event sits in the log.
    pub position: u64,
}

/// The log's origin, its current key and its latest checkpoint, for queries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlogIndex {
    pub origin: Option<String>,
    /// The hex key id of the key bound last.
    pub current_key: Option<String>,
    /// The size of the latest checkpoint.
    pub latest: Option<u64>,
}

/// The transparency log's own refusals; each a kernel `Refusal::Rule`
/// whose reason is the variant's name in capitals.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TlogRefusal {
    #[error("only the party root key binds the log key; {0} is not it")]
    NotRootKey(String),
    #[error("the log key {0} must be a live author key of this party allowed tlog-checkpoint")]
    LogKeyNotAuthor(String),
    #[error("this party's log origin is {expected:?}, not {asked:?}")]
    WrongOrigin { expected: String, asked: String },
    #[error("{0} is not a log key bound in this log")]
    LogKeyNotBound(String),
    #[error("checkpoint: {0}")]
    BadCheckpoint(String),
    #[error("checkpoint of size {size}: the log had {committed} leaves before this batch")]
    SizeNotCommitted { size: u64, committed: u64 },
    #[error("checkpoint of size {size}: its root is not the log's root at that size")]
    RootMismatch { size: u64 },
}

impl TlogRefusal {
    pub fn reason(&self) -> &'static str {
        use TlogRefusal::*;
        match self {
            NotRootKey(_) => "NOT_ROOT_KEY",
            LogKeyNotAuthor(_) => "LOG_KEY_NOT_AUTHOR",
            WrongOrigin { .. } => "WRONG_ORIGIN",
            LogKeyNotBound(_) => "LOG_KEY_NOT_BOUND",
            BadCheckpoint(_) => "BAD_CHECKPOINT",
            SizeNotCommitted { .. } => "SIZE_NOT_COMMITTED",
            RootMismatch { .. } => "ROOT_MISMATCH",
        }
    }

    pub fn class(&self) -> RefusalClass {
        use TlogRefusal::*;
        match self {
            WrongOrigin { .. } | BadCheckpoint(_) | RootMismatch { .. } => {
                RefusalClass::InvalidArgument
            }
            NotRootKey(_) | LogKeyNotBound(_) => RefusalClass::PermissionDenied,
            LogKeyNotAuthor(_) | SizeNotCommitted { .. } => RefusalClass::FailedPrecondition,
        }
    }
}

impl From<TlogRefusal> for Refusal {
    fn from(r: TlogRefusal) -> Refusal {
        Refusal::Rule {
            reason: r.reason().to_string(),
            class: r.class(),
            message: r.to_string(),
        }
    }
}

/// A checkpoint subject's id: the size in 20 digits, so subject order is
/// size order.
pub fn checkpoint_subject(size: u64) -> SubjectRef {
    SubjectRef::new(TLOG_CHECKPOINT, format!("{size:020}"))
}

impl Capability for Tlog {
    const NAME: &'static str = "tlog";
    const VERSION: u32 = 1;
    type Payload = TlogPayload;
    type Subject = TlogState;
    type Index = TlogIndex;

    fn subject_kinds() -> &'static [&'static str] {
        &[TLOG_KEY, TLOG_CHECKPOINT]
    }

    fn kinds() -> &'static [&'static KindSpec] {
        &payload::KINDS
    }

    fn decode(kind: &'static KindSpec, bytes: &[u8]) -> Result<TlogPayload, Refusal> {
        payload::decode(kind, bytes)
    }

    fn decide(
        ctx: &Ctx<'_>,
        _current: Option<&TlogState>,
        payload: &TlogPayload,
    ) -> Result<Accepted<TlogState>, Refusal> {
        let state = match payload {
            TlogPayload::LogKeyBound { origin, public_key } => bind_key(ctx, origin, public_key)?,
            TlogPayload::Checkpoint { note } => checkpoint(ctx, note)?,
        };
        Ok(Accepted {
            subject: state,
            claims: Vec::new(),
        })
    }

    fn index(
        index: &mut TlogIndex,
        subject: &SubjectRef,
        _before: Option<&TlogState>,
        after: &TlogState,
    ) {
        match after {
            TlogState::Key(k) => {
                index.origin = Some(k.origin.clone());
                index.current_key = Some(subject.id.clone());
            }
            TlogState::Checkpoint(c) => index.latest = index.latest.max(Some(c.size)),
        }
    }

    fn summary(subject: &TlogState) -> String {
        match subject {
            TlogState::Key(k) => format!("transparency log key of {}", k.origin),
            TlogState::Checkpoint(c) => format!("checkpoint of size {}", c.size),
        }
    }

    fn status(subject: &TlogState) -> Option<&'static str> {
        Some(match subject {
            TlogState::Key(_) => "bound",
            TlogState::Checkpoint(_) => "signed",
        })
    }
}

fn bind_key(ctx: &Ctx<'_>, origin: &str, public_key: &[u8]) -> Result<TlogState, Refusal> {
    let party = ctx.party();
    let author = ctx.body().author;
    if author != party.root_key {
        return Err(TlogRefusal::NotRootKey(author.to_string()).into());
    }
    let expected = log_origin(&party.name);
    if origin != expected {
        return Err(TlogRefusal::WrongOrigin {
            expected,
            asked: origin.to_string(),
        }
        .into());
    }
    let key = PublicKey::new(Algorithm::Ed25519, public_key.to_vec()).map_err(|e| {
        Refusal::from(TlogRefusal::BadCheckpoint(format!(
            "the log key is not an Ed25519 key: {e}"
        )))
    })?;
    let key_id = key.id();
    if ctx.subject().id != key_id.to_hex() {
        return Err(Refusal::InvalidSubject {
            subject: ctx.subject().to_string(),
            reason: format!("a log key's subject id must be its key id {key_id}"),
        });
    }
    let is_log_author = ctx.key(&key_id).is_some_and(|k| {
        k.party == party.name
            && !k.revoked
            && k.not_after_ms.is_none_or(|t| t > ctx.time_ms())
            && k.allowed_kinds
                .as_ref()
                .is_some_and(|kinds| kinds.contains(payload::TLOG_CHECKPOINT_SIGNED.name))
    });
    if !is_log_author {
        return Err(TlogRefusal::LogKeyNotAuthor(key_id.to_string()).into());
    }
    Ok(TlogState::Key(LogKey {
        origin: origin.to_string(),
        public_key: public_key.to_vec(),
    }))
}

fn checkpoint(ctx: &Ctx<'_>, bytes: &[u8]) -> Result<TlogState, Refusal> {
    let bad = |why: String| Refusal::from(TlogRefusal::BadCheckpoint(why));
    let author = ctx.body().author;
    let Some(TlogState::Key(key)) = ctx.read::<Tlog>(&SubjectRef::new(TLOG_KEY, author.to_hex()))
    else {
        return Err(TlogRefusal::LogKeyNotBound(author.to_string()).into());
    };
    let verifier = key
        .verifier()
        .ok_or_else(|| bad("the bound log key is not an Ed25519 point".into()))?;
    let note = Note::parse(bytes).map_err(|e| bad(e.to_string()))?;
    if note.signatures.len() != 1 {
        return Err(bad(format!(
            "{} signature lines; the log's checkpoint carries its own only",
            note.signatures.len()
        )));
    }
    let text = verifier.verify(&note).map_err(|e| bad(e.to_string()))?;
    let cp = Checkpoint::parse(text).map_err(|e| bad(e.to_string()))?;
    if cp.origin != key.origin {
        return Err(bad(format!(
            "origin {:?} is not the log's {:?}",
            cp.origin, key.origin
        )));
    }
    if *ctx.subject() != checkpoint_subject(cp.size) {
        return Err(Refusal::InvalidSubject {
            subject: ctx.subject().to_string(),
            reason: format!("a checkpoint's subject is {}", checkpoint_subject(cp.size)),
        });
    }
    let committed = ctx.tree.size();
    if cp.size > committed {
        return Err(TlogRefusal::SizeNotCommitted {
            size: cp.size,
            committed,
        }
        .into());
    }
    if ctx.tree.root(cp.size) != Some(cp.root) {
        return Err(TlogRefusal::RootMismatch { size: cp.size }.into());
    }
    Ok(TlogState::Checkpoint(CheckpointState {
        size: cp.size,
        root: cp.root,
        note: bytes.to_vec(),
        key: author.to_hex(),
        position: ctx.position,
    }))
}

/// The committed checkpoint of `size`, or the latest when `None`.
pub fn committed_checkpoint(tlog: &CapState<Tlog>, size: Option<u64>) -> Option<&CheckpointState> {
    let size = size.or(tlog.index().latest)?;
    match tlog.subject(&checkpoint_subject(size)) {
        Some(TlogState::Checkpoint(c)) => Some(c),
        _ => None,
    }
}

/// The log key bound last (the one that signs new checkpoints).
pub fn current_key(tlog: &CapState<Tlog>) -> Option<&LogKey> {
    let id = tlog.index().current_key.as_ref()?;
    match tlog.subject(&SubjectRef::new(TLOG_KEY, id.clone())) {
        Some(TlogState::Key(k)) => Some(k),
        _ => None,
    }
}

/// The log key a committed checkpoint was signed with.
pub fn key_of<'a>(tlog: &'a CapState<Tlog>, checkpoint: &CheckpointState) -> Option<&'a LogKey> {
    match tlog.subject(&SubjectRef::new(TLOG_KEY, checkpoint.key.clone())) {
        Some(TlogState::Key(k)) => Some(k),
        _ => None,
    }
}
