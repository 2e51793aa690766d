//! The transparency log's kinds, as data, their payloads and their protobuf
//! form (`proto/ics/tlog/v1`).

use ics_kernel::capability::{Field, KindSpec, Payload, Subjects};
use ics_kernel::{Refusal, Role};
use ics_proto::tlog_v1 as pb;
use prost::Message;

use crate::{TLOG_CHECKPOINT, TLOG_KEY};

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

/// Every transparency log kind; `Tlog::kinds()` returns these.
pub static KINDS: [&KindSpec; 2] = [&TLOG_KEY_BOUND, &TLOG_CHECKPOINT_SIGNED];

/// The kinds a log key registered as an author key signs.
pub const LOG_KEY_KINDS: [&str; 1] = ["tlog-checkpoint"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlogPayload {
    LogKeyBound { origin: String, public_key: Vec<u8> },
    Checkpoint { note: Vec<u8> },
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
        }
    }
}
