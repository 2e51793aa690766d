//! A projection's state as bytes (a state image): what a snapshot holds, so
//! a node installs or restarts from it without deciding every event again.
//! The events themselves stay in the node's event store; restoring takes
//! their ids, in log order, and checks them against the image's log hash.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Projection, next_log_hash};
use crate::capability::Claim;
use crate::envelope::{EventId, SubjectRef};
use crate::keys::KeyId;
use crate::rules::{Rules, UnsupportedRules};
use crate::state::{KeyState, PartyState, SubjectEntry};

/// The kernel's part of the image. Bump it when that part changes shape;
/// each capability has its own `STATE_FORMAT`.
pub const IMAGE_FORMAT: u32 = 1;

/// One capability as an image records it: name, rules version, state format.
type CapabilityTag = (String, u32, u32);

/// The image as written (borrowing the projection) ...
#[derive(Serialize)]
struct ImageOut<'a> {
    format: u32,
    capabilities: Vec<CapabilityTag>,
    event_count: u64,
    log_hash: [u8; 32],
    state_hash: [u8; 32],
    party: &'a Option<PartyState>,
    keys: &'a BTreeMap<KeyId, KeyState>,
    subjects: &'a BTreeMap<SubjectRef, SubjectEntry>,
    claims: &'a BTreeMap<Claim, SubjectRef>,
    states: Vec<Vec<u8>>,
}

/// ... and as read: the same fields, owned.
#[derive(Deserialize)]
struct ImageIn {
    format: u32,
    capabilities: Vec<CapabilityTag>,
    event_count: u64,
    log_hash: [u8; 32],
    state_hash: [u8; 32],
    party: Option<PartyState>,
    keys: BTreeMap<KeyId, KeyState>,
    subjects: BTreeMap<SubjectRef, SubjectEntry>,
    claims: BTreeMap<Claim, SubjectRef>,
    states: Vec<Vec<u8>>,
}

/// Why an image cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("state image is corrupt: {0}")]
    Corrupt(String),
    #[error("state image has format {found}; this build reads format {IMAGE_FORMAT}")]
    Format { found: u32 },
    #[error("state image holds capabilities {image}; this build runs {build}")]
    Capabilities { image: String, build: String },
    #[error("state image does not match the events it covers: {0}")]
    Events(String),
    #[error(transparent)]
    Unsupported(#[from] UnsupportedRules),
}

impl ImageError {
    /// Whether the image was written by a build with other state formats: the
    /// events it covers still replay (deciding each again).
    pub fn is_other_build(&self) -> bool {
        matches!(
            self,
            ImageError::Format { .. } | ImageError::Capabilities { .. }
        )
    }
}

/// A decoded state image, not yet checked against its events.
pub struct StateImage(ImageIn);

impl StateImage {
    pub fn decode(bytes: &[u8]) -> Result<StateImage, ImageError> {
        let (format, _) = postcard::take_from_bytes::<u32>(bytes)
            .map_err(|e| ImageError::Corrupt(e.to_string()))?;
        if format != IMAGE_FORMAT {
            return Err(ImageError::Format { found: format });
        }
        let image: ImageIn =
            postcard::from_bytes(bytes).map_err(|e| ImageError::Corrupt(e.to_string()))?;
        assert_eq!(image.format, format, "the format read first is the image's");
        Ok(StateImage(image))
    }

    /// The number of events an image covers and its log hash, read from its
    /// head without decoding the rest (a snapshot's first check).
    pub fn head(bytes: &[u8]) -> Result<(u64, [u8; 32]), ImageError> {
        #[derive(Deserialize)]
        struct Head {
            _format: u32,
            _capabilities: Vec<CapabilityTag>,
            event_count: u64,
            log_hash: [u8; 32],
        }
        let (format, _) = postcard::take_from_bytes::<u32>(bytes)
            .map_err(|e| ImageError::Corrupt(e.to_string()))?;
        if format != IMAGE_FORMAT {
            return Err(ImageError::Format { found: format });
        }
        let (head, _) = postcard::take_from_bytes::<Head>(bytes)
            .map_err(|e| ImageError::Corrupt(e.to_string()))?;
        Ok((head.event_count, head.log_hash))
    }

    /// The number of events the image covers: positions 1 to this.
    pub fn event_count(&self) -> u64 {
        self.0.event_count
    }

    pub fn log_hash(&self) -> [u8; 32] {
        self.0.log_hash
    }
}

fn tags(rules: &Rules) -> Vec<CapabilityTag> {
    (0..rules.capability_count())
        .map(|slot| {
            let c = rules.capability(slot);
            (c.name().to_string(), c.version(), c.state_format())
        })
        .collect()
}

fn tags_text(tags: &[CapabilityTag]) -> String {
    let parts: Vec<String> = tags
        .iter()
        .map(|(name, version, format)| format!("{name} v{version} (state format {format})"))
        .collect();
    parts.join(", ")
}

impl Projection {
    /// The state as bytes. Indexes are kept as they are, not rebuilt.
    pub fn image(&self) -> Vec<u8> {
        let out = ImageOut {
            format: IMAGE_FORMAT,
            capabilities: tags(&self.rules),
            event_count: self.event_count,
            log_hash: self.log_hash,
            state_hash: self.state_hash,
            party: &self.party,
            keys: &self.keys,
            subjects: &self.subjects,
            claims: &self.claims,
            states: self.capabilities.iter().map(|c| c.encode()).collect(),
        };
        postcard::to_stdvec(&out).expect("a projection encodes")
    }

    /// The projection an image holds, given the ids of the events it covers
    /// in log order (from the event store). No signature is verified and no
    /// `decide` runs: the image is trusted as the log it came with is, and
    /// the ids must chain to its log hash.
    pub fn restore(
        rules: Arc<Rules>,
        image: StateImage,
        event_ids: impl IntoIterator<Item = EventId>,
    ) -> Result<Projection, ImageError> {
        let image = image.0;
        let build = tags(&rules);
        if image.capabilities != build {
            return Err(ImageError::Capabilities {
                image: tags_text(&image.capabilities),
                build: tags_text(&build),
            });
        }
        if let Some(party) = &image.party {
            rules.check_supported(&party.rules)?;
        }
        let mut ids = HashMap::with_capacity(image.event_count as usize);
        let mut log_hash = [0; 32];
        for id in event_ids {
            let position = ids.len() as u64 + 1;
            if ids.insert(id, position).is_some() {
                return Err(ImageError::Events(format!(
                    "event {id} stands twice in the log"
                )));
            }
            log_hash = next_log_hash(&log_hash, &id.0);
        }
        if ids.len() as u64 != image.event_count || log_hash != image.log_hash {
            return Err(ImageError::Events(format!(
                "{} events whose ids do not chain to the image's log hash over {} events",
                ids.len(),
                image.event_count
            )));
        }
        let mut capabilities = Vec::with_capacity(image.states.len());
        if image.states.len() != rules.capability_count() {
            return Err(ImageError::Corrupt(format!(
                "{} capability states for {} capabilities",
                image.states.len(),
                rules.capability_count()
            )));
        }
        for (slot, bytes) in image.states.iter().enumerate() {
            let cap = rules.capability(slot);
            let state = cap
                .decode_state(bytes)
                .map_err(|e| ImageError::Corrupt(format!("{} state: {e}", cap.name())))?;
            if let Some(s) = state
                .subject_refs()
                .find(|s| !image.subjects.contains_key(*s))
            {
                return Err(ImageError::Corrupt(format!(
                    "{} keeps {s}, which has no chain",
                    cap.name()
                )));
            }
            capabilities.push(state);
        }
        if let Some((s, _)) = image
            .subjects
            .iter()
            .find(|(_, e)| e.history.len() as u64 != e.next_sequence)
        {
            return Err(ImageError::Corrupt(format!(
                "{s}: history and chain disagree"
            )));
        }
        Ok(Projection {
            rules,
            party: image.party,
            keys: image.keys,
            subjects: image.subjects,
            claims: image.claims,
            capabilities,
            event_ids: ids,
            event_count: image.event_count,
            log_hash: image.log_hash,
            state_hash: image.state_hash,
        })
    }

    /// The ids of the committed events in log order (as an event store holds them).
    #[cfg(feature = "testing")]
    pub(crate) fn event_ids_in_order(&self) -> Vec<EventId> {
        let mut ids: Vec<(u64, EventId)> = self.event_ids.iter().map(|(id, p)| (*p, *id)).collect();
        ids.sort();
        ids.into_iter().map(|(_, id)| id).collect()
    }

    /// Whether two projections hold the same state, indexes included.
    pub fn same_state(&self, other: &Projection) -> bool {
        self.party == other.party
            && self.keys == other.keys
            && self.subjects == other.subjects
            && self.claims == other.claims
            && self.event_ids == other.event_ids
            && (self.event_count, self.log_hash, self.state_hash)
                == (other.event_count, other.log_hash, other.state_hash)
            && self.capabilities.len() == other.capabilities.len()
            && self
                .capabilities
                .iter()
                .zip(&other.capabilities)
                .all(|(a, b)| a.same_as(b.as_ref()))
    }
}
