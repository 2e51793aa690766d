//! The transparency log as a capability: the party's log key, bound by its
//! root key, and the checkpoints that key signs, each committed through the
//! log. A checkpoint is accepted only for a size the log had committed
//! before its batch and with that size's root, and once per size: so every
//! committed checkpoint is a prefix of every larger one, whichever leader
//! signed it, and a verifier can ask for the proof.
//!
//! Witnessing: the root key binds a recognized party's log key
//! (`tlog-peer-bound`). This party then witnesses that log: each checkpoint
//! it cosigns is a committed `tlog-cosigned` event carrying the
//! tlog-witness request, accepted only when consistent with the one cosigned
//! before (so the check and its persistence are one replicated step, and no
//! two nodes of a witness cosign diverging views). The same key verifies
//! that party's cosignatures on this log's checkpoints
//! (`tlog-cosignature`), kept with the checkpoint and served with it.
//!
//! `decide` reads subjects only (the index lags a batch being staged, so a
//! verdict on it could differ between replicas that apply in other groups).

use ics_kernel::capability::{Accepted, Capability, Ctx, KindSpec};
use ics_kernel::{Algorithm, CapState, PublicKey, Refusal, RefusalClass, SubjectRef};
use serde::{Deserialize, Serialize};

use crate::merkle::Hash;
use crate::note::{Checkpoint, CosignatureVerifier, Note, NoteSignature, NoteVerifier};
use crate::payload::{self, TlogPayload};
use crate::witness::{AddCheckpoint, Cosigned, WitnessRefusal, add_checkpoint};
use crate::{TLOG_CHECKPOINT, TLOG_KEY, TLOG_PEER};

/// The most witnesses' cosignatures one checkpoint keeps.
pub const MAX_COSIGNATURES: usize = 16;

/// A party's log origin, the first line of its checkpoints and the name its
/// log key signs under: derived from the party name, which the federation
/// already keeps unique.
pub fn log_origin(party: &str) -> String {
    format!("ics/{party}/log")
}

/// The party whose log `origin` names: the inverse of `log_origin`.
pub fn party_of_log(origin: &str) -> Option<&str> {
    origin.strip_prefix("ics/")?.strip_suffix("/log")
}

/// The party a witness name is of: the inverse of `witness_name`.
pub fn party_of_witness(name: &str) -> Option<&str> {
    name.strip_prefix("ics/")?.strip_suffix("/witness")
}

/// The name a party's log key signs its cosignatures under, as a witness
/// of other parties' logs. The cosignature/v1 key type and this name give
/// the key another note key id, and its cosigned message never reads as a
/// checkpoint (its second line is a time, not a size).
pub fn witness_name(party: &str) -> String {
    format!("ics/{party}/witness")
}

/// The transparency log capability.
pub struct Tlog;

/// A transparency log subject: the log key, a checkpoint, or a peer's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TlogState {
    Key(LogKey),
    Checkpoint(CheckpointState),
    Peer(PeerLog),
}

/// A recognized party's log: its key, and the latest of its checkpoints
/// this party cosigned as its witness.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerLog {
    pub party: String,
    /// Ed25519, 32 bytes.
    pub public_key: Vec<u8>,
    pub cosigned: Option<Cosigned>,
}

impl PeerLog {
    fn key(&self) -> Option<ed25519_dalek::VerifyingKey> {
        let key = <[u8; 32]>::try_from(self.public_key.as_slice()).ok()?;
        ed25519_dalek::VerifyingKey::from_bytes(&key).ok()
    }

    /// Verifies the peer's checkpoints.
    pub fn log_verifier(&self) -> Option<NoteVerifier> {
        Some(NoteVerifier {
            name: log_origin(&self.party),
            key: self.key()?,
        })
    }

    /// Verifies the peer's cosignatures, as a witness of this log.
    pub fn witness_verifier(&self) -> Option<CosignatureVerifier> {
        Some(CosignatureVerifier {
            name: witness_name(&self.party),
            key: self.key()?,
        })
    }
}

/// A witness's cosignature on a checkpoint of this log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cosignature {
    /// The witnessing party.
    pub witness: String,
    pub signature: NoteSignature,
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
    /// Witnesses' cosignatures, in the order they were committed.
    #[serde(default)]
    pub cosignatures: Vec<Cosignature>,
}

impl CheckpointState {
    /// The note as served: the log's own signature, then its witnesses'.
    pub fn served_note(&self) -> Vec<u8> {
        let Ok(mut note) = Note::parse(&self.note) else {
            return self.note.clone();
        };
        note.signatures
            .extend(self.cosignatures.iter().map(|c| c.signature.clone()));
        note.to_bytes()
    }
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
    #[error("{0:?} is not a party this one recognizes")]
    PeerNotRecognized(String),
    #[error("no log key of party {0:?} is bound here")]
    PeerNotBound(String),
    #[error("as witness: {0}")]
    Witness(WitnessRefusal),
    #[error("cosignature: {0}")]
    BadCosignature(String),
    #[error("checkpoint of size {size} already carries {witness:?}'s cosignature")]
    AlreadyCosigned { size: u64, witness: String },
    #[error("checkpoint of size {size} already carries {MAX_COSIGNATURES} cosignatures")]
    TooManyCosignatures { size: u64 },
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
            PeerNotRecognized(_) => "PEER_NOT_RECOGNIZED",
            PeerNotBound(_) => "PEER_NOT_BOUND",
            Witness(w) => w.reason(),
            BadCosignature(_) => "BAD_COSIGNATURE",
            AlreadyCosigned { .. } => "ALREADY_COSIGNED",
            TooManyCosignatures { .. } => "TOO_MANY_COSIGNATURES",
        }
    }

    pub fn class(&self) -> RefusalClass {
        use TlogRefusal::*;
        match self {
            WrongOrigin { .. } | BadCheckpoint(_) | RootMismatch { .. } | BadCosignature(_) => {
                RefusalClass::InvalidArgument
            }
            NotRootKey(_) | LogKeyNotBound(_) => RefusalClass::PermissionDenied,
            LogKeyNotAuthor(_)
            | SizeNotCommitted { .. }
            | PeerNotRecognized(_)
            | PeerNotBound(_) => RefusalClass::FailedPrecondition,
            Witness(w) => match w {
                WitnessRefusal::Unverified(_) => RefusalClass::Unauthenticated,
                WitnessRefusal::UnknownLog(_) | WitnessRefusal::Conflict { .. } => {
                    RefusalClass::FailedPrecondition
                }
                WitnessRefusal::Malformed(_)
                | WitnessRefusal::OldBeyondSize { .. }
                | WitnessRefusal::BadProof => RefusalClass::InvalidArgument,
            },
            AlreadyCosigned { .. } => RefusalClass::AlreadyExists,
            TooManyCosignatures { .. } => RefusalClass::ResourceExhausted,
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

/// A peer party's log subject.
pub fn peer_subject(party: &str) -> SubjectRef {
    SubjectRef::new(TLOG_PEER, party)
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
        &[TLOG_KEY, TLOG_CHECKPOINT, TLOG_PEER]
    }

    fn kinds() -> &'static [&'static KindSpec] {
        &payload::KINDS
    }

    fn decode(kind: &'static KindSpec, bytes: &[u8]) -> Result<TlogPayload, Refusal> {
        payload::decode(kind, bytes)
    }

    fn decide(
        ctx: &Ctx<'_>,
        current: Option<&TlogState>,
        payload: &TlogPayload,
    ) -> Result<Accepted<TlogState>, Refusal> {
        let state = match payload {
            TlogPayload::LogKeyBound { origin, public_key } => bind_key(ctx, origin, public_key)?,
            TlogPayload::Checkpoint { note } => checkpoint(ctx, note)?,
            TlogPayload::PeerBound { public_key } => bind_peer(ctx, current, public_key)?,
            TlogPayload::Cosigned { request } => cosigned(ctx, current, request)?,
            TlogPayload::CosignatureAdded {
                witness,
                signature_line,
            } => cosignature_added(ctx, current, witness, signature_line)?,
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
            TlogState::Peer(_) => {}
        }
    }

    fn summary(subject: &TlogState) -> String {
        match subject {
            TlogState::Key(k) => format!("transparency log key of {}", k.origin),
            TlogState::Checkpoint(c) => format!(
                "checkpoint of size {}, {} cosignature(s)",
                c.size,
                c.cosignatures.len()
            ),
            TlogState::Peer(p) => match p.cosigned {
                Some(c) => format!("log of {}, cosigned to size {}", p.party, c.size),
                None => format!("log of {}", p.party),
            },
        }
    }

    fn status(subject: &TlogState) -> Option<&'static str> {
        Some(match subject {
            TlogState::Key(_) => "bound",
            TlogState::Checkpoint(_) => "signed",
            TlogState::Peer(_) => "witnessed",
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

/// The bound log key that authored this event: only it signs checkpoints,
/// witnesses, and records cosignatures.
fn authoring_log_key<'a>(ctx: &Ctx<'a>) -> Result<&'a LogKey, Refusal> {
    let author = ctx.body().author;
    match ctx.read::<Tlog>(&SubjectRef::new(TLOG_KEY, author.to_hex())) {
        Some(TlogState::Key(key)) => Ok(key),
        _ => Err(TlogRefusal::LogKeyNotBound(author.to_string()).into()),
    }
}

fn checkpoint(ctx: &Ctx<'_>, bytes: &[u8]) -> Result<TlogState, Refusal> {
    let bad = |why: String| Refusal::from(TlogRefusal::BadCheckpoint(why));
    let author = ctx.body().author;
    let key = authoring_log_key(ctx)?;
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
        cosignatures: Vec::new(),
    }))
}

fn bind_peer(
    ctx: &Ctx<'_>,
    current: Option<&TlogState>,
    public_key: &[u8],
) -> Result<TlogState, Refusal> {
    let author = ctx.body().author;
    if author != ctx.party().root_key {
        return Err(TlogRefusal::NotRootKey(author.to_string()).into());
    }
    let party = &ctx.subject().id;
    if !ctx.recognizes(party) {
        return Err(TlogRefusal::PeerNotRecognized(party.clone()).into());
    }
    let peer = PeerLog {
        party: party.clone(),
        public_key: public_key.to_vec(),
        // A new key for the same log: what was cosigned stays the base.
        cosigned: match current {
            Some(TlogState::Peer(p)) => p.cosigned,
            _ => None,
        },
    };
    if peer.key().is_none() {
        return Err(TlogRefusal::BadCheckpoint(
            "the peer's log key is not an Ed25519 key of 32 bytes".into(),
        )
        .into());
    }
    Ok(TlogState::Peer(peer))
}

/// The peer subject this event is about.
fn bound_peer<'a>(ctx: &Ctx<'_>, current: Option<&'a TlogState>) -> Result<&'a PeerLog, Refusal> {
    match current {
        Some(TlogState::Peer(p)) => Ok(p),
        _ => Err(TlogRefusal::PeerNotBound(ctx.subject().id.clone()).into()),
    }
}

/// The witness's step, replicated: the request checked against the latest
/// checkpoint cosigned for this peer, which it then replaces.
fn cosigned(
    ctx: &Ctx<'_>,
    current: Option<&TlogState>,
    request: &[u8],
) -> Result<TlogState, Refusal> {
    authoring_log_key(ctx)?;
    let peer = bound_peer(ctx, current)?;
    let (_, latest) = witness_verdict(peer, request).map_err(TlogRefusal::Witness)?;
    Ok(TlogState::Peer(PeerLog {
        cosigned: Some(latest),
        ..peer.clone()
    }))
}

/// The tlog-witness verdict on `request` (the body as received) for a
/// peer's log: the checkpoint and the new latest, or the refusal.
pub fn witness_verdict(
    peer: &PeerLog,
    request: &[u8],
) -> Result<(Checkpoint, Cosigned), WitnessRefusal> {
    let request = AddCheckpoint::parse(request)?;
    let origin = log_origin(&peer.party);
    add_checkpoint(
        &request,
        |o| (o == origin).then(|| peer.log_verifier()).flatten(),
        |_| peer.cosigned,
    )
}

fn cosignature_added(
    ctx: &Ctx<'_>,
    current: Option<&TlogState>,
    witness: &str,
    line: &str,
) -> Result<TlogState, Refusal> {
    let bad = |why: String| Refusal::from(TlogRefusal::BadCosignature(why));
    authoring_log_key(ctx)?;
    let Some(TlogState::Checkpoint(cp)) = current else {
        return Err(Refusal::InvalidSubject {
            subject: ctx.subject().to_string(),
            reason: "cosignatures are added to a committed checkpoint".into(),
        });
    };
    let Some(TlogState::Peer(peer)) = ctx.read::<Tlog>(&peer_subject(witness)) else {
        return Err(TlogRefusal::PeerNotBound(witness.to_string()).into());
    };
    let signature = NoteSignature::parse_line(line).map_err(|e| bad(e.to_string()))?;
    let verifier = peer
        .witness_verifier()
        .ok_or_else(|| bad("the witness's key is not an Ed25519 point".into()))?;
    if signature.name != verifier.name || signature.key_id != verifier.key_id() {
        return Err(bad(format!(
            "the line is not signed by {}'s witness key ({})",
            witness, verifier.name
        )));
    }
    let note = Note::parse(&cp.note).map_err(|e| bad(e.to_string()))?;
    let cosigned = Note {
        text: note.text,
        signatures: vec![signature.clone()],
    };
    verifier.verify(&cosigned).map_err(|e| bad(e.to_string()))?;
    if cp.cosignatures.iter().any(|c| c.witness == witness) {
        return Err(TlogRefusal::AlreadyCosigned {
            size: cp.size,
            witness: witness.to_string(),
        }
        .into());
    }
    if cp.cosignatures.len() >= MAX_COSIGNATURES {
        return Err(TlogRefusal::TooManyCosignatures { size: cp.size }.into());
    }
    let mut cp = cp.clone();
    cp.cosignatures.push(Cosignature {
        witness: witness.to_string(),
        signature,
    });
    Ok(TlogState::Checkpoint(cp))
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

/// A peer's log as bound here.
pub fn peer_log<'a>(tlog: &'a CapState<Tlog>, party: &str) -> Option<&'a PeerLog> {
    match tlog.subject(&peer_subject(party)) {
        Some(TlogState::Peer(p)) => Some(p),
        _ => None,
    }
}
