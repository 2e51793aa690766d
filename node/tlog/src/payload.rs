//! The transparency log's kinds, as data, their payloads and their protobuf
//! form (`proto/ics/tlog/v1`).

use ics_kernel::capability::{Field, KindSpec, Payload, Subjects};
use ics_kernel::{Refusal, Role};
use ics_proto::tlog_v1 as pb;
use prost::Message;

use crate::{TLOG_CHECKPOINT, TLOG_KEY, TLOG_PEER};

pub static TLOG_KEY_BOUND: KindSpec = KindSpec {
    name: "tlog-key-bound",
    message: "ics.tlog.v1.LogKeyBound",
    subjects: Subjects::Of(&[TLOG_KEY]),
    opens_subject: true,
    // Every party keeps a transparency log; only its root key binds the
    // log key (checked by the rule).
    authored_by: &Role::ALL,
    grantable: false,
};
pub static TLOG_CHECKPOINT_SIGNED: KindSpec = KindSpec {
    name: "tlog-checkpoint",
    message: "ics.tlog.v1.CheckpointSigned",
    subjects: Subjects::Of(&[TLOG_CHECKPOINT]),
    opens_subject: true,
    authored_by: &Role::ALL,
    grantable: false,
};

pub static TLOG_PEER_BOUND: KindSpec = KindSpec {
    name: "tlog-peer-bound",
    message: "ics.tlog.v1.PeerLogBound",
    subjects: Subjects::Of(&[TLOG_PEER]),
    opens_subject: true,
    authored_by: &Role::ALL,
    grantable: false,
};
pub static TLOG_CHECKPOINT_COSIGNED: KindSpec = KindSpec {
    name: "tlog-cosigned",
    message: "ics.tlog.v1.CheckpointCosigned",
    subjects: Subjects::Of(&[TLOG_PEER]),
    opens_subject: false,
    authored_by: &Role::ALL,
    grantable: false,
};
pub static TLOG_COSIGNATURE_ADDED: KindSpec = KindSpec {
    name: "tlog-cosignature",
    message: "ics.tlog.v1.CosignatureAdded",
    subjects: Subjects::Of(&[TLOG_CHECKPOINT]),
    opens_subject: false,
    authored_by: &Role::ALL,
    grantable: false,
};

/// Every transparency log kind; `Tlog::kinds()` returns these.
pub static KINDS: [&KindSpec; 5] = [
    &TLOG_KEY_BOUND,
    &TLOG_CHECKPOINT_SIGNED,
    &TLOG_PEER_BOUND,
    &TLOG_CHECKPOINT_COSIGNED,
    &TLOG_COSIGNATURE_ADDED,
];

/// The kinds a log key registered as an author key signs: its checkpoints,
/// what it cosigned as a witness, and the cosignatures its witnesses gave.
pub const LOG_KEY_KINDS: [&str; 3] = ["tlog-checkpoint", "tlog-cosigned", "tlog-cosignature"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlogPayload {
    LogKeyBound {
        origin: String,
        public_key: Vec<u8>,
    },
    Checkpoint {
        note: Vec<u8>,
    },
    /// A recognized party's log key, bound by the root key.
    PeerBound {
        public_key: Vec<u8>,
    },
    /// A tlog-witness `add-checkpoint` body this party cosigned.
    Cosigned {
        request: Vec<u8>,
    },
    /// A witness's cosignature line on a committed checkpoint.
    CosignatureAdded {
        witness: String,
        signature_line: String,
    },
}

fn parse<M: Message + Default>(kind: &KindSpec, bytes: &[u8]) -> Result<M, Refusal> {
    M::decode(bytes).map_err(|e| Refusal::Malformed(format!("{}: {e}", kind.message)))
}

/// Decodes the payload of one transparency log kind.
pub fn decode(kind: &'static KindSpec, bytes: &[u8]) -> Result<TlogPayload, Refusal> {
    let is = |k: &KindSpec| std::ptr::eq(kind, k);
    Ok(if is(&TLOG_KEY_BOUND) {
        let m: pb::LogKeyBound = parse(kind, bytes)?;
        TlogPayload::LogKeyBound {
            origin: m.origin,
            public_key: m.public_key,
        }
    } else if is(&TLOG_CHECKPOINT_SIGNED) {
        let m: pb::CheckpointSigned = parse(kind, bytes)?;
        TlogPayload::Checkpoint { note: m.note }
    } else if is(&TLOG_PEER_BOUND) {
        let m: pb::PeerLogBound = parse(kind, bytes)?;
        TlogPayload::PeerBound {
            public_key: m.public_key,
        }
    } else if is(&TLOG_CHECKPOINT_COSIGNED) {
        let m: pb::CheckpointCosigned = parse(kind, bytes)?;
        TlogPayload::Cosigned { request: m.request }
    } else if is(&TLOG_COSIGNATURE_ADDED) {
        let m: pb::CosignatureAdded = parse(kind, bytes)?;
        TlogPayload::CosignatureAdded {
            witness: m.witness,
            signature_line: m.signature_line,
        }
    } else {
        return Err(Refusal::Malformed(format!(
            "{} is not a transparency log kind",
            kind.name
        )));
    })
}

impl Payload for TlogPayload {
    fn kind(&self) -> &'static KindSpec {
        match self {
            TlogPayload::LogKeyBound { .. } => &TLOG_KEY_BOUND,
            TlogPayload::Checkpoint { .. } => &TLOG_CHECKPOINT_SIGNED,
            TlogPayload::PeerBound { .. } => &TLOG_PEER_BOUND,
            TlogPayload::Cosigned { .. } => &TLOG_CHECKPOINT_COSIGNED,
            TlogPayload::CosignatureAdded { .. } => &TLOG_COSIGNATURE_ADDED,
        }
    }

    fn encode(&self) -> Vec<u8> {
        match self {
            TlogPayload::LogKeyBound { origin, public_key } => pb::LogKeyBound {
                origin: origin.clone(),
                public_key: public_key.clone(),
            }
            .encode_to_vec(),
            TlogPayload::Checkpoint { note } => {
                pb::CheckpointSigned { note: note.clone() }.encode_to_vec()
            }
            TlogPayload::PeerBound { public_key } => pb::PeerLogBound {
                public_key: public_key.clone(),
            }
            .encode_to_vec(),
            TlogPayload::Cosigned { request } => pb::CheckpointCosigned {
                request: request.clone(),
            }
            .encode_to_vec(),
            TlogPayload::CosignatureAdded {
                witness,
                signature_line,
            } => pb::CosignatureAdded {
                witness: witness.clone(),
                signature_line: signature_line.clone(),
            }
            .encode_to_vec(),
        }
    }

    fn describe(&self) -> Vec<(&'static str, Field)> {
        match self {
            TlogPayload::LogKeyBound { origin, public_key } => vec![
                ("origin", Field::text(origin)),
                ("public_key", Field::text(hex::encode(public_key))),
            ],
            TlogPayload::Checkpoint { note } => {
                vec![("note", Field::text(String::from_utf8_lossy(note)))]
            }
            TlogPayload::PeerBound { public_key } => {
                vec![("public_key", Field::text(hex::encode(public_key)))]
            }
            TlogPayload::Cosigned { request } => {
                vec![("request", Field::text(String::from_utf8_lossy(request)))]
            }
            TlogPayload::CosignatureAdded {
                witness,
                signature_line,
            } => vec![
                ("witness", Field::text(witness)),
                ("signature_line", Field::text(signature_line)),
            ],
        }
    }
}
