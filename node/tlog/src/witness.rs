//! A witness's verdict on a C2SP tlog-witness `add-checkpoint` request,
//! pure: the request parsed, checked against the latest checkpoint this
//! witness cosigned for the log, and either the new latest (to persist
//! atomically with the check, then cosign) or a refusal with the HTTP status
//! the spec gives it. A log showing two witnesses (or one witness at two
//! times) checkpoints that no consistency proof joins is refused here.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::merkle::{Hash, verify_consistency};
use crate::note::{Checkpoint, Note, NoteError, NoteVerifier};

/// The most consistency proof lines a request may carry (the spec's limit).
pub const MAX_PROOF_LINES: usize = 63;

/// `old <size>\n`, proof lines, a blank line, then the checkpoint note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    pub old: u64,
    pub proof: Vec<Hash>,
    pub checkpoint: Note,
}

/// The latest checkpoint a witness cosigned for a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cosigned {
    pub size: u64,
    pub root: Hash,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WitnessRefusal {
    #[error("malformed add-checkpoint request: {0}")]
    Malformed(String),
    #[error("no log with origin {0:?} is witnessed here")]
    UnknownLog(String),
    #[error("no signature of the log's key verifies: {0}")]
    Unverified(NoteError),
    #[error("old size {old} is beyond the checkpoint's size {size}")]
    OldBeyondSize { old: u64, size: u64 },
    #[error("the latest checkpoint cosigned for this log has size {known}")]
    Conflict { known: u64 },
    #[error("the consistency proof does not verify")]
    BadProof,
}

impl WitnessRefusal {
    /// A machine-readable name.
    pub fn reason(&self) -> &'static str {
        match self {
            WitnessRefusal::Malformed(_) => "WITNESS_MALFORMED",
            WitnessRefusal::UnknownLog(_) => "WITNESS_UNKNOWN_LOG",
            WitnessRefusal::Unverified(_) => "WITNESS_UNVERIFIED",
            WitnessRefusal::OldBeyondSize { .. } => "WITNESS_OLD_BEYOND_SIZE",
            WitnessRefusal::Conflict { .. } => "WITNESS_CONFLICT",
            WitnessRefusal::BadProof => "WITNESS_BAD_PROOF",
        }
    }

    /// The status tlog-witness gives this refusal.
    pub fn http_status(&self) -> u16 {
        match self {
            WitnessRefusal::Malformed(_) | WitnessRefusal::OldBeyondSize { .. } => 400,
            WitnessRefusal::Unverified(_) => 403,
            WitnessRefusal::UnknownLog(_) => 404,
            WitnessRefusal::Conflict { .. } => 409,
            WitnessRefusal::BadProof => 422,
        }
    }
}

impl AddCheckpoint {
    pub fn parse(body: &[u8]) -> Result<AddCheckpoint, WitnessRefusal> {
        let malformed = |why: &str| WitnessRefusal::Malformed(why.to_string());
        let text = std::str::from_utf8(body).map_err(|_| malformed("not UTF-8"))?;
        let (head, note) = text
            .split_once("\n\n")
            .ok_or_else(|| malformed("no blank line before the checkpoint"))?;
        let mut lines = head.split('\n');
        let old = lines
            .next()
            .and_then(|l| l.strip_prefix("old "))
            .filter(|n| {
                !n.is_empty()
                    && n.bytes().all(|b| b.is_ascii_digit())
                    && (n.len() == 1 || !n.starts_with('0'))
            })
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| malformed("the first line is not `old <size>`"))?;
        let proof = lines
            .map(|l| {
                BASE64
                    .decode(l)
                    .ok()
                    .and_then(|h| Hash::try_from(h).ok())
                    .ok_or_else(|| malformed("a proof line is not a 32-byte hash in base64"))
            })
            .collect::<Result<Vec<Hash>, _>>()?;
        if proof.len() > MAX_PROOF_LINES {
            return Err(malformed("more than 63 proof lines"));
        }
        let checkpoint =
            Note::parse(note.as_bytes()).map_err(|e| WitnessRefusal::Malformed(e.to_string()))?;
        Ok(AddCheckpoint {
            old,
            proof,
            checkpoint,
        })
    }

    /// The checkpoint's first line: the log it claims to be of (unverified).
    pub fn origin(&self) -> &str {
        self.checkpoint.text.split('\n').next().unwrap_or_default()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("old {}\n", self.old);
        for h in &self.proof {
            out.push_str(&BASE64.encode(h));
            out.push('\n');
        }
        out.push('\n');
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.checkpoint.to_bytes());
        bytes
    }
}

/// The verdict: the checkpoint and the witness's new latest for its log, or
/// why not. `log_key` finds the key a log origin is verified with; `known`
/// is the latest this witness cosigned for that origin.
pub fn add_checkpoint(
    request: &AddCheckpoint,
    log_key: impl FnOnce(&str) -> Option<NoteVerifier>,
    known: impl FnOnce(&str) -> Option<Cosigned>,
) -> Result<(Checkpoint, Cosigned), WitnessRefusal> {
    // The origin picks the key; nothing else of the text is trusted before
    // its signature verifies.
    let origin = request.origin();
    let key = log_key(origin).ok_or_else(|| WitnessRefusal::UnknownLog(origin.to_string()))?;
    let text = key
        .verify(&request.checkpoint)
        .map_err(WitnessRefusal::Unverified)?;
    let checkpoint =
        Checkpoint::parse(text).map_err(|e| WitnessRefusal::Malformed(e.to_string()))?;
    let (old, size) = (request.old, checkpoint.size);
    if old > size {
        return Err(WitnessRefusal::OldBeyondSize { old, size });
    }
    let latest = known(&checkpoint.origin);
    let known_size = latest.map_or(0, |c| c.size);
    if old != known_size {
        return Err(WitnessRefusal::Conflict { known: known_size });
    }
    if let Some(latest) = latest.filter(|l| l.size > 0) {
        if old == size {
            if latest.root != checkpoint.root || !request.proof.is_empty() {
                return Err(WitnessRefusal::Conflict { known: known_size });
            }
        } else {
            verify_consistency(old, size, &latest.root, &checkpoint.root, &request.proof)
                .map_err(|_| WitnessRefusal::BadProof)?;
        }
    } else if !request.proof.is_empty() {
        return Err(WitnessRefusal::BadProof);
    }
    let cosigned = Cosigned {
        size,
        root: checkpoint.root,
    };
    Ok((checkpoint, cosigned))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{MemoryTree, consistency_proof, leaf_hash, root};
    use crate::note::sign;

    const ORIGIN: &str = "ics.example/maintenance";

    fn log_key() -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[9; 32])
    }

    fn verifier() -> NoteVerifier {
        NoteVerifier {
            name: ORIGIN.into(),
            key: log_key().verifying_key(),
        }
    }

    fn tree(entries: &[&str]) -> MemoryTree {
        let mut t = MemoryTree::new();
        for e in entries {
            t.append(leaf_hash(e.as_bytes()));
        }
        t
    }

    fn signed(tree: &MemoryTree, size: u64) -> Note {
        let cp = Checkpoint {
            origin: ORIGIN.into(),
            size,
            root: root(tree, size).unwrap(),
        };
        sign(ORIGIN, &log_key(), &cp.text()).unwrap()
    }

    fn request(tree: &MemoryTree, old: u64, size: u64) -> AddCheckpoint {
        AddCheckpoint {
            old,
            proof: consistency_proof(tree, old, size).unwrap(),
            checkpoint: signed(tree, size),
        }
    }

    /// One witness: its state as a store would keep it.
    fn submit(
        state: &mut Option<Cosigned>,
        req: &AddCheckpoint,
    ) -> Result<Checkpoint, WitnessRefusal> {
        let wire = AddCheckpoint::parse(&req.to_bytes())?;
        let (cp, latest) = add_checkpoint(&wire, |o| (o == ORIGIN).then(verifier), |_| *state)?;
        *state = Some(latest);
        Ok(cp)
    }

    #[test]
    fn a_growing_log_is_cosigned_step_by_step() {
        let t = tree(&["a", "b", "c", "d", "e", "f", "g"]);
        let mut state = None;
        assert_eq!(submit(&mut state, &request(&t, 0, 3)).unwrap().size, 3);
        assert_eq!(submit(&mut state, &request(&t, 3, 7)).unwrap().size, 7);
        // The same checkpoint again is fine; the witness stays at 7.
        assert_eq!(submit(&mut state, &request(&t, 7, 7)).unwrap().size, 7);
        assert_eq!(state.unwrap().size, 7);
    }

    #[test]
    fn a_fork_shown_to_a_witness_is_refused_and_changes_nothing() {
        let honest = tree(&["a", "b", "c", "d", "e"]);
        let forked = tree(&["a", "b", "c", "X", "e"]);
        let mut state = None;
        submit(&mut state, &request(&honest, 0, 3)).unwrap();
        let before = state;
        // A log that rewrote leaf 1, inside the cosigned prefix, has no
        // consistency proof from the cosigned 3.
        let rewritten = tree(&["a", "Y", "c", "d", "e"]);
        let err = submit(&mut state, &request(&rewritten, 3, 5)).unwrap_err();
        assert_eq!(err, WitnessRefusal::BadProof);
        assert_eq!(err.http_status(), 422);
        assert_eq!(state, before);
        // The same size with another root: a conflict.
        let other3 = AddCheckpoint {
            old: 3,
            proof: vec![],
            checkpoint: signed(&rewritten, 3),
        };
        let err = submit(&mut state, &other3).unwrap_err();
        assert_eq!(err, WitnessRefusal::Conflict { known: 3 });
        assert_eq!(err.http_status(), 409);
        // The forked log's size-5 head extends the cosigned 3 (leaf 3 is
        // past it), so it is cosigned; the honest 5 after it is then a fork
        // the witness refuses: two views of one log cannot both be cosigned.
        submit(&mut state, &request(&forked, 3, 5)).unwrap();
        let err = submit(
            &mut state,
            &AddCheckpoint {
                old: 5,
                proof: vec![],
                checkpoint: signed(&honest, 5),
            },
        )
        .unwrap_err();
        assert_eq!(err, WitnessRefusal::Conflict { known: 5 });
    }

    #[test]
    fn refusals_name_their_status() {
        let t = tree(&["a", "b", "c", "d"]);
        let mut state = None;
        submit(&mut state, &request(&t, 0, 2)).unwrap();
        // A stale old size: 409 with the size the witness knows.
        let err = submit(&mut state, &request(&t, 1, 4)).unwrap_err();
        assert_eq!(err, WitnessRefusal::Conflict { known: 2 });
        // Old beyond the checkpoint: 400.
        let mut beyond = request(&t, 2, 2);
        beyond.old = 3;
        assert_eq!(submit(&mut state, &beyond).unwrap_err().http_status(), 400);
        // A proof bent by one bit: 422.
        let mut bent = request(&t, 2, 4);
        bent.proof[0][0] ^= 1;
        assert_eq!(submit(&mut state, &bent).unwrap_err().http_status(), 422);
        // Signed by another key: 403. Another origin: 404.
        let mut forged = request(&t, 2, 4);
        forged.checkpoint = sign(
            ORIGIN,
            &ed25519_dalek::SigningKey::from_bytes(&[1; 32]),
            &forged.checkpoint.text,
        )
        .unwrap();
        assert_eq!(submit(&mut state, &forged).unwrap_err().http_status(), 403);
        let mut elsewhere = request(&t, 2, 4);
        elsewhere.checkpoint.text =
            elsewhere
                .checkpoint
                .text
                .replacen(ORIGIN, "other.example/log", 1);
        assert_eq!(
            submit(&mut state, &elsewhere).unwrap_err().http_status(),
            404
        );
        // A first checkpoint with a proof, and malformed bodies: refused.
        let mut fresh = None;
        let mut with_proof = request(&t, 0, 4);
        with_proof.proof = vec![[0; 32]];
        assert_eq!(
            submit(&mut fresh, &with_proof).unwrap_err().http_status(),
            422
        );
        for body in [
            "old 01\n\nx\n".as_bytes(),
            b"new 1\n\nx\n",
            b"old 1\nnot-base64\n\nx\n",
            b"old 1\n",
        ] {
            assert_eq!(
                AddCheckpoint::parse(body).unwrap_err().http_status(),
                400,
                "{body:?}"
            );
        }
        let too_long = format!(
            "old 1\n{}\n{}",
            vec![BASE64.encode([0u8; 32]); 64].join("\n"),
            String::from_utf8(signed(&t, 4).to_bytes()).unwrap()
        );
        assert!(matches!(
            AddCheckpoint::parse(too_long.as_bytes()),
            Err(WitnessRefusal::Malformed(_))
        ));
        // None of it moved the witness.
        assert_eq!(state.unwrap().size, 2);
        assert_eq!(fresh, None);
    }
}
