//! A parsed event: the envelope, its decoded body and payload, and the kind
//! (with its owner) the payload's message named.

use std::fmt;
use std::sync::Arc;

use crate::envelope::{Envelope, EventBody, EventId};
use crate::kind::{AnyPayload, KindSpec, Payload};

/// Who owns an event kind or a subject kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    Kernel,
    /// A capability, by its slot in the rules.
    Capability(usize),
}

/// An envelope whose body and payload decoded: ready for the rules.
/// Signatures are not yet verified; that needs the state that knows the keys.
#[derive(Clone)]
pub struct Event {
    pub id: EventId,
    pub envelope: Envelope,
    pub body: EventBody,
    pub kind: &'static KindSpec,
    pub(crate) owner: Owner,
    pub(crate) payload: Arc<AnyPayload>,
}

impl Event {
    /// The decoded payload, if it is a `P`.
    pub fn payload<P: Payload>(&self) -> Option<&P> {
        self.payload.downcast_ref::<P>()
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("id", &self.id)
            .field("kind", &self.kind.name)
            .field("subject", &self.body.subject)
            .field("sequence", &self.body.sequence)
            .finish()
    }
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && self.envelope == other.envelope
    }
}
