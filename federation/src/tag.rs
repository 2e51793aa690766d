//! The stored form of an imported event: a marker byte no envelope starts
//! with (protobuf field 0 does not exist), the namespace (the party whose
//! record it is), the peer it was pulled from and its position in that
//! peer's log, then the envelope exactly as its author signed it. The host
//! puts its own leaf salt before all of it, so the importer's tree commits to
//! the provenance too.

/// The first byte of a tagged stored envelope.
pub const IMPORT_MARKER: u8 = 0x00;
/// The longest party name a tag holds.
pub const MAX_TAG_NAME_BYTES: usize = 128;

/// Where an imported event belongs and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportTag {
    /// The party whose namespace (and rules) the event is decided in.
    pub namespace: String,
    /// The peer party it was pulled from.
    pub via: String,
    /// Its position (1-based) in the peer's log.
    pub source_index: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    #[error("an import tag is cut short")]
    Short,
    #[error("an import tag's party name is empty, over {MAX_TAG_NAME_BYTES} bytes or not UTF-8")]
    BadName,
}

impl ImportTag {
    /// The stored envelope: this tag, then `envelope`.
    pub fn wrap(&self, envelope: &[u8]) -> Vec<u8> {
        assert!(
            valid_name(self.namespace.as_bytes()) && valid_name(self.via.as_bytes()),
            "tag names are checked before an import is staged"
        );
        let mut out =
            Vec::with_capacity(3 + self.namespace.len() + self.via.len() + 8 + envelope.len());
        out.push(IMPORT_MARKER);
        out.push(self.namespace.len() as u8);
        out.extend_from_slice(self.namespace.as_bytes());
        out.push(self.via.len() as u8);
        out.extend_from_slice(self.via.as_bytes());
        out.extend_from_slice(&self.source_index.to_be_bytes());
        out.extend_from_slice(envelope);
        out
    }

    /// Splits a stored envelope into its tag (none for this party's own
    /// events) and the envelope bytes.
    pub fn split(stored: &[u8]) -> Result<(Option<ImportTag>, &[u8]), TagError> {
        let Some((&IMPORT_MARKER, rest)) = stored.split_first() else {
            return Ok((None, stored));
        };
        let (namespace, rest) = name(rest)?;
        let (via, rest) = name(rest)?;
        let (index, envelope) = rest.split_first_chunk::<8>().ok_or(TagError::Short)?;
        Ok((
            Some(ImportTag {
                namespace,
                via,
                source_index: u64::from_be_bytes(*index),
            }),
            envelope,
        ))
    }

    pub fn is_valid_name(name: &str) -> bool {
        valid_name(name.as_bytes())
    }
}

fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name.len() <= MAX_TAG_NAME_BYTES
}

fn name(bytes: &[u8]) -> Result<(String, &[u8]), TagError> {
    let (&len, rest) = bytes.split_first().ok_or(TagError::Short)?;
    let len = len as usize;
    if rest.len() < len {
        return Err(TagError::Short);
    }
    let (name, rest) = rest.split_at(len);
    if !valid_name(name) {
        return Err(TagError::BadName);
    }
    let name = std::str::from_utf8(name).map_err(|_| TagError::BadName)?;
    Ok((name.to_string(), rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_wraps_the_envelope_unchanged_and_splits_back() {
        let tag = ImportTag {
            namespace: "acme".into(),
            via: "maintenance".into(),
            source_index: 70_000,
        };
        let envelope = b"\x0a\x03abc";
        let stored = tag.wrap(envelope);
        assert_eq!(ImportTag::split(&stored), Ok((Some(tag), &envelope[..])));
        assert_eq!(ImportTag::split(envelope), Ok((None, &envelope[..])));
        for cut in 1..stored.len() - envelope.len() {
            assert!(ImportTag::split(&stored[..cut]).is_err(), "cut at {cut}");
        }
        assert_eq!(ImportTag::split(&[0, 0]), Err(TagError::BadName));
    }
}
