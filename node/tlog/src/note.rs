//! C2SP signed notes, checkpoints and cosignatures, byte-exact to the specs
//! (c2sp.org/signed-note, tlog-checkpoint, tlog-cosignature) so that any
//! implementation of them verifies ours:
//!
//! ```text
//! <origin>\n<size>\n<base64 root>\n          the checkpoint: the note text
//! \n
//! — <key name> base64(key ID ‖ signature)\n  one line per signature
//! ```
//!
//! A log signs the text with Ed25519 (type 0x01); a witness cosigns
//! `cosignature/v1\ntime <t>\n` ‖ text with a timestamped Ed25519 signature
//! (type 0x04). Key ID = SHA-256(name ‖ `\n` ‖ type ‖ public key)[:4].

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signer, Verifier};
use sha2::{Digest, Sha256};

use crate::merkle::Hash;

/// The largest note accepted: a checkpoint and its cosignatures are a few
/// hundred bytes.
pub const MAX_NOTE_BYTES: usize = 16 * 1024;
/// The most signature lines accepted on a note (the spec asks for at least 16).
pub const MAX_NOTE_SIGNATURES: usize = 64;
/// Signature type of a log's Ed25519 note signature.
pub const ED25519: u8 = 0x01;
/// Signature type of a witness's timestamped Ed25519 cosignature.
pub const COSIGNATURE_V1: u8 = 0x04;

const SIGNATURE_PREFIX: &str = "\u{2014} ";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("note is {0} bytes, more than {MAX_NOTE_BYTES}")]
    TooLarge(usize),
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    #[error("note has {0} signatures, more than {MAX_NOTE_SIGNATURES}")]
    TooManySignatures(usize),
    #[error("malformed checkpoint: {0}")]
    MalformedCheckpoint(&'static str),
    #[error("a signature by {0} does not verify")]
    BadSignature(String),
    #[error("no signature by {0}")]
    Unsigned(String),
    #[error("cosignature time {0} is beyond 2^63 - 1")]
    BadTime(u64),
}

/// A signature line: who, the key ID and the signature bytes after it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NoteSignature {
    pub name: String,
    pub key_id: [u8; 4],
    pub signature: Vec<u8>,
}

impl NoteSignature {
    /// One signature line, without its newline: `— <name> <base64 of key ID ‖ signature>`.
    pub fn parse_line(line: &str) -> Result<NoteSignature, NoteError> {
        let rest = line
            .strip_prefix(SIGNATURE_PREFIX)
            .ok_or(NoteError::Malformed("a signature line without the em dash"))?;
        let (name, encoded) = rest
            .split_once(' ')
            .ok_or(NoteError::Malformed("a signature line without a signature"))?;
        if !valid_key_name(name) {
            return Err(NoteError::Malformed(
                "a key name empty or with a space or plus",
            ));
        }
        let raw = BASE64
            .decode(encoded)
            .map_err(|_| NoteError::Malformed("a signature not in base64"))?;
        if raw.len() < 5 {
            return Err(NoteError::Malformed("a signature shorter than its key ID"));
        }
        Ok(NoteSignature {
            name: name.to_string(),
            key_id: raw[..4].try_into().expect("4 bytes"),
            signature: raw[4..].to_vec(),
        })
    }

    /// The signature line, ending in a newline.
    pub fn line(&self) -> String {
        let mut raw = self.key_id.to_vec();
        raw.extend_from_slice(&self.signature);
        format!("{SIGNATURE_PREFIX}{} {}\n", self.name, BASE64.encode(raw))
    }
}

/// A signed note: its text (ending in a newline) and its signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub text: String,
    pub signatures: Vec<NoteSignature>,
}

fn valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// SHA-256(name ‖ `\n` ‖ type ‖ public key)[:4].
pub fn key_id(name: &str, signature_type: u8, public_key: &[u8]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([signature_type]);
    h.update(public_key);
    let digest: [u8; 32] = h.finalize().into();
    [digest[0], digest[1], digest[2], digest[3]]
}

impl Note {
    /// Parses a note: UTF-8, no control character but newline, the text
    /// separated from one or more signature lines by the last blank line.
    pub fn parse(bytes: &[u8]) -> Result<Note, NoteError> {
        if bytes.len() > MAX_NOTE_BYTES {
            return Err(NoteError::TooLarge(bytes.len()));
        }
        let all = std::str::from_utf8(bytes).map_err(|_| NoteError::Malformed("not UTF-8"))?;
        if all.chars().any(|c| c < ' ' && c != '\n') {
            return Err(NoteError::Malformed("a control character"));
        }
        if !all.ends_with('\n') {
            return Err(NoteError::Malformed("no final newline"));
        }
        let split = all
            .rfind("\n\n")
            .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
        let (text, lines) = (&all[..split + 1], &all[split + 2..]);
        let lines: Vec<&str> = lines
            .strip_suffix('\n')
            .unwrap_or(lines)
            .split('\n')
            .collect();
        if lines.len() > MAX_NOTE_SIGNATURES {
            return Err(NoteError::TooManySignatures(lines.len()));
        }
        let mut signatures = Vec::with_capacity(lines.len());
        for line in lines {
            signatures.push(NoteSignature::parse_line(line)?);
        }
        Ok(Note {
            text: text.to_string(),
            signatures,
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.text.clone();
        out.push('\n');
        for s in &self.signatures {
            out.push_str(&s.line());
        }
        out.into_bytes()
    }

    /// The signatures of `name` with `key_id`: the only ones a verifier of
    /// that key looks at (others are ignored, as the spec requires).
    fn by<'a>(&'a self, name: &'a str, key_id: [u8; 4]) -> impl Iterator<Item = &'a NoteSignature> {
        self.signatures
            .iter()
            .filter(move |s| s.name == name && s.key_id == key_id)
    }
}

/// A log's (or anyone's) Ed25519 note key under its name.
#[derive(Debug, Clone)]
pub struct NoteVerifier {
    pub name: String,
    pub key: ed25519_dalek::VerifyingKey,
}

impl NoteVerifier {
    pub fn key_id(&self) -> [u8; 4] {
        key_id(&self.name, ED25519, self.key.as_bytes())
    }

    /// The note's text when a signature of this key is on it and every
    /// signature of this key verifies.
    pub fn verify<'a>(&self, note: &'a Note) -> Result<&'a str, NoteError> {
        let mut verified = false;
        for s in note.by(&self.name, self.key_id()) {
            let signature = ed25519_dalek::Signature::from_slice(&s.signature)
                .map_err(|_| NoteError::BadSignature(self.name.clone()))?;
            self.key
                .verify(note.text.as_bytes(), &signature)
                .map_err(|_| NoteError::BadSignature(self.name.clone()))?;
            verified = true;
        }
        if verified {
            Ok(&note.text)
        } else {
            Err(NoteError::Unsigned(self.name.clone()))
        }
    }

    /// Reads the `vkey` form; the key ID must be the one the name and key give.
    pub fn from_vkey(vkey: &str) -> Result<Self, NoteError> {
        let bad = NoteError::Malformed;
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("a verifier key is <name>+<key ID>+<key>"));
        };
        if !valid_key_name(name) {
            return Err(bad("a key name empty or with a space or plus"));
        }
        let raw = BASE64
            .decode(key)
            .map_err(|_| bad("a verifier key not in base64"))?;
        let [ED25519, rest @ ..] = raw.as_slice() else {
            return Err(bad("a verifier key of another type than Ed25519"));
        };
        let key = <[u8; 32]>::try_from(rest)
            .ok()
            .and_then(|k| ed25519_dalek::VerifyingKey::from_bytes(&k).ok())
            .ok_or(bad(
                "an Ed25519 verifier key that is not 32 bytes of a point",
            ))?;
        let verifier = NoteVerifier {
            name: name.to_string(),
            key,
        };
        if hex_lower(&verifier.key_id()) != id {
            return Err(bad("a verifier key ID that is not its name's and key's"));
        }
        Ok(verifier)
    }

    /// The `vkey` form: `<name>+<hex key ID>+<base64(type ‖ key)>`.
    pub fn vkey(&self) -> String {
        let mut raw = vec![ED25519];
        raw.extend_from_slice(self.key.as_bytes());
        format!(
            "{}+{}+{}",
            self.name,
            hex_lower(&self.key_id()),
            BASE64.encode(raw)
        )
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Signs `text` as `name`: a note with one signature line.
pub fn sign(name: &str, key: &ed25519_dalek::SigningKey, text: &str) -> Result<Note, NoteError> {
    if !valid_key_name(name) {
        return Err(NoteError::Malformed(
            "a key name empty or with a space or plus",
        ));
    }
    let signature = key.sign(text.as_bytes());
    Ok(Note {
        text: text.to_string(),
        signatures: vec![NoteSignature {
            name: name.to_string(),
            key_id: key_id(name, ED25519, key.verifying_key().as_bytes()),
            signature: signature.to_bytes().to_vec(),
        }],
    })
}

/// A tree head as a checkpoint's note text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    /// `<origin>\n<size>\n<base64 root>\n`.
    pub fn text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            BASE64.encode(self.root)
        )
    }

    /// Reads a checkpoint's text. Extension lines are refused: this log
    /// writes none, and a verifier here makes no statement on them.
    pub fn parse(text: &str) -> Result<Checkpoint, NoteError> {
        let bad = NoteError::MalformedCheckpoint;
        let body = text.strip_suffix('\n').ok_or(bad("no final newline"))?;
        let lines: Vec<&str> = body.split('\n').collect();
        let [origin, size, root] = lines[..] else {
            return Err(bad("not three lines (origin, size, root hash)"));
        };
        if origin.is_empty() {
            return Err(bad("an empty origin"));
        }
        if size.is_empty()
            || !size.bytes().all(|b| b.is_ascii_digit())
            || (size.len() > 1 && size.starts_with('0'))
        {
            return Err(bad("a size that is not a decimal without leading zeros"));
        }
        let size: u64 = size.parse().map_err(|_| bad("a size beyond 2^64 - 1"))?;
        let root = BASE64
            .decode(root)
            .ok()
            .and_then(|r| Hash::try_from(r).ok())
            .ok_or(bad("a root hash that is not 32 bytes in base64"))?;
        Ok(Checkpoint {
            origin: origin.to_string(),
            size,
            root,
        })
    }
}

/// A witness's timestamped Ed25519 key under its name.
#[derive(Debug, Clone)]
pub struct CosignatureVerifier {
    pub name: String,
    pub key: ed25519_dalek::VerifyingKey,
}

fn cosigned_message(time: u64, text: &str) -> String {
    format!("cosignature/v1\ntime {time}\n{text}")
}

/// The witness `name` cosigns the note text `text` at POSIX time `time`.
pub fn cosign(
    name: &str,
    key: &ed25519_dalek::SigningKey,
    time: u64,
    text: &str,
) -> Result<NoteSignature, NoteError> {
    if !valid_key_name(name) {
        return Err(NoteError::Malformed(
            "a key name empty or with a space or plus",
        ));
    }
    if time > i64::MAX as u64 {
        return Err(NoteError::BadTime(time));
    }
    let signature = key.sign(cosigned_message(time, text).as_bytes());
    let mut raw = time.to_be_bytes().to_vec();
    raw.extend_from_slice(&signature.to_bytes());
    Ok(NoteSignature {
        name: name.to_string(),
        key_id: key_id(name, COSIGNATURE_V1, key.verifying_key().as_bytes()),
        signature: raw,
    })
}

impl CosignatureVerifier {
    pub fn key_id(&self) -> [u8; 4] {
        key_id(&self.name, COSIGNATURE_V1, self.key.as_bytes())
    }

    /// The time of this witness's cosignature on `note`, when there is one
    /// and every one of this key verifies.
    pub fn verify(&self, note: &Note) -> Result<u64, NoteError> {
        let bad = || NoteError::BadSignature(self.name.clone());
        let mut time = None;
        for s in note.by(&self.name, self.key_id()) {
            if s.signature.len() != 8 + 64 {
                return Err(bad());
            }
            let t = u64::from_be_bytes(s.signature[..8].try_into().expect("8 bytes"));
            if t > i64::MAX as u64 {
                return Err(NoteError::BadTime(t));
            }
            let signature =
                ed25519_dalek::Signature::from_slice(&s.signature[8..]).map_err(|_| bad())?;
            self.key
                .verify(cosigned_message(t, &note.text).as_bytes(), &signature)
                .map_err(|_| bad())?;
            time = Some(time.map_or(t, |old: u64| old.max(t)));
        }
        time.ok_or_else(|| NoteError::Unsigned(self.name.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            origin: "ics.example/maintenance".into(),
            size: 20852163,
            root: BASE64
                .decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
                .unwrap()
                .try_into()
                .unwrap(),
        }
    }

    #[test]
    fn the_spec_example_checkpoint_reads_and_prints_the_same() {
        let text =
            "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        let note = format!(
            "{text}\n\u{2014} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n\u{2014} witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
        );
        let parsed = Note::parse(note.as_bytes()).unwrap();
        assert_eq!(parsed.text, text);
        assert_eq!(parsed.signatures.len(), 2);
        assert_eq!(parsed.signatures[1].name, "witness.example.com/w1");
        // A cosignature: 8 bytes of time, then 64 of signature.
        assert_eq!(parsed.signatures[1].signature.len(), 72);
        assert_eq!(parsed.to_bytes(), note.as_bytes());
        let cp = Checkpoint::parse(&parsed.text).unwrap();
        assert_eq!(cp.size, 20852163);
        assert_eq!(cp.text(), text);
    }

    /// The known-answer test of Go's golang.org/x/mod/sumdb/note: the same
    /// key and text give the same note, byte for byte.
    #[test]
    fn signing_matches_the_go_sumdb_note_known_answer() {
        let vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
        let skey = BASE64
            .decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")
            .unwrap();
        let signer = ed25519_dalek::SigningKey::from_bytes(&skey[1..].try_into().unwrap());
        let text = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
        let want = format!(
            "{text}\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
        );
        let note = sign("PeterNeumann", &signer, text).unwrap();
        assert_eq!(String::from_utf8(note.to_bytes()).unwrap(), want);
        let verifier = NoteVerifier::from_vkey(vkey).unwrap();
        assert_eq!(verifier.vkey(), vkey);
        assert_eq!(
            verifier.verify(&Note::parse(want.as_bytes()).unwrap()),
            Ok(text)
        );
        for bad in [
            "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "PeterNeumann+c74f20a3+Apc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "PeterNeumann+c74f20a3",
            "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        ] {
            assert!(NoteVerifier::from_vkey(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_signed_checkpoint_verifies_and_any_change_fails() {
        let log = key(1);
        let verifier = NoteVerifier {
            name: "ics.example/maintenance".into(),
            key: log.verifying_key(),
        };
        let note = sign(&verifier.name, &log, &checkpoint().text()).unwrap();
        let bytes = note.to_bytes();
        let parsed = Note::parse(&bytes).unwrap();
        assert_eq!(
            Checkpoint::parse(verifier.verify(&parsed).unwrap()).unwrap(),
            checkpoint()
        );
        // Another size in the text: the signature fails.
        let mut forged = parsed.clone();
        forged.text = forged.text.replace("20852163", "20852164");
        assert_eq!(
            verifier.verify(&forged),
            Err(NoteError::BadSignature(verifier.name.clone()))
        );
        // Another key under the same name: its signature is ignored, so the
        // note is unsigned as far as this verifier goes.
        let other = sign(&verifier.name, &key(2), &checkpoint().text()).unwrap();
        assert_eq!(
            verifier.verify(&other),
            Err(NoteError::Unsigned(verifier.name.clone()))
        );
        // A verifier key ID is the spec's formula; the vkey carries it.
        assert!(verifier.vkey().starts_with("ics.example/maintenance+"));
        assert_eq!(verifier.vkey().split('+').nth(1).unwrap().len(), 8);
    }

    #[test]
    fn a_cosignature_verifies_with_its_time_and_any_change_fails() {
        let log = key(1);
        let witness = CosignatureVerifier {
            name: "ics.example/tuv-witness".into(),
            key: key(3).verifying_key(),
        };
        let mut note = sign("ics.example/maintenance", &log, &checkpoint().text()).unwrap();
        note.signatures
            .push(cosign(&witness.name, &key(3), 1_764_000_000, &note.text).unwrap());
        let parsed = Note::parse(&note.to_bytes()).unwrap();
        assert_eq!(witness.verify(&parsed), Ok(1_764_000_000));
        // The time is signed: moving it breaks the cosignature.
        let mut moved = parsed.clone();
        moved.signatures[1].signature[7] ^= 1;
        assert!(matches!(
            witness.verify(&moved),
            Err(NoteError::BadSignature(_))
        ));
        // A cosignature is not a log signature (another type, another key ID).
        let as_log = NoteVerifier {
            name: witness.name.clone(),
            key: witness.key,
        };
        assert!(matches!(
            as_log.verify(&parsed),
            Err(NoteError::Unsigned(_))
        ));
        assert_eq!(
            cosign(&witness.name, &key(3), 1 << 63, &note.text),
            Err(NoteError::BadTime(1 << 63))
        );
    }

    #[test]
    fn malformed_notes_and_checkpoints_are_refused() {
        let good = sign("a.example/log", &key(1), &checkpoint().text())
            .unwrap()
            .to_bytes();
        let good = String::from_utf8(good).unwrap();
        for (bad, why) in [
            (good.trim_end().to_string(), "no final newline"),
            (good.replace("\n\n", "\n"), "no blank line"),
            (good.replace('\u{2014}', "-"), "no em dash"),
            (
                good.replace("a.example/log", "a example/log"),
                "space in name",
            ),
            (
                good.replace("a.example/log ", "a+example/log "),
                "plus in name",
            ),
            (format!("\r{good}"), "control character"),
            (
                good.replace("\u{2014} a.example/log ", "\u{2014} a.example/log !"),
                "not base64",
            ),
        ] {
            assert!(Note::parse(bad.as_bytes()).is_err(), "{why}: {bad:?}");
        }
        assert_eq!(
            Note::parse(&vec![b'a'; MAX_NOTE_BYTES + 1]),
            Err(NoteError::TooLarge(MAX_NOTE_BYTES + 1))
        );
        let many = format!(
            "{}{}",
            good,
            good.lines()
                .last()
                .map(|l| format!("{l}\n"))
                .unwrap()
                .repeat(MAX_NOTE_SIGNATURES)
        );
        assert_eq!(
            Note::parse(many.as_bytes()),
            Err(NoteError::TooManySignatures(MAX_NOTE_SIGNATURES + 1))
        );
        let root = BASE64.encode([7u8; 32]);
        for bad in [
            format!("o\n1\n{root}"),
            format!("o\n1\n{root}\nextension\n"),
            format!("\n1\n{root}\n"),
            format!("o\n01\n{root}\n"),
            format!("o\n-1\n{root}\n"),
            format!("o\n18446744073709551616\n{root}\n"),
            "o\n1\nAAAA\n".to_string(),
            "o\n1\n".to_string(),
        ] {
            assert!(Checkpoint::parse(&bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            Checkpoint::parse(&format!("o\n0\n{root}\n")).unwrap().size,
            0
        );
    }
}
