//! The registry of capabilities a node runs, and the one place their types
//! are erased: the kernel dispatches an event to its capability by the
//! payload's message name.

use std::any::{Any, TypeId};
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

pub use crate::event::{Event, Owner};

use crate::authority::{self, PartyPayload};
use crate::capability::{AnyPayload, CapState, Capability, Ctx, KindSpec, Payload, Subjects};
use crate::envelope::{Envelope, EventBody, EventId, SubjectRef};
use crate::keys::PublicKey;
use crate::limits::EventLimits;
use crate::refusal::Refusal;

/// A capability with its types erased.
pub(crate) trait ErasedCapability: Send + Sync {
    fn name(&self) -> &'static str;
    fn version(&self) -> u32;
    fn capability_type(&self) -> TypeId;
    fn kinds(&self) -> &'static [&'static KindSpec];
    fn subject_kinds(&self) -> &'static [&'static str];
    fn decode(&self, kind: &'static KindSpec, bytes: &[u8]) -> Result<Arc<AnyPayload>, Refusal>;
    fn introduced_keys<'p>(&self, payload: &'p AnyPayload) -> Vec<&'p PublicKey>;
    fn describe(&self, payload: &AnyPayload) -> Vec<(&'static str, crate::kind::Field)>;
    fn decide(
        &self,
        ctx: &Ctx<'_>,
        current: Option<&AnyPayload>,
        payload: &AnyPayload,
    ) -> Result<(Box<AnyPayload>, Vec<crate::capability::Claim>), Refusal>;
    fn new_state(&self) -> Box<dyn ErasedState>;
    fn state_format(&self) -> u32;
    /// Reads the state `ErasedState::encode` wrote.
    fn decode_state(&self, bytes: &[u8]) -> Result<Box<dyn ErasedState>, String>;
    fn summary(&self, subject: &AnyPayload) -> String;
    fn status(&self, subject: &AnyPayload) -> Option<&'static str>;
    /// The subject state's `Debug` text, for the state hash.
    fn debug(&self, subject: &AnyPayload) -> String;
}

/// A capability's committed state with its types erased.
pub(crate) trait ErasedState: Send + Sync {
    fn get(&self, subject: &SubjectRef) -> Option<&AnyPayload>;
    fn commit(&mut self, subject: SubjectRef, after: Box<AnyPayload>);
    fn clone_box(&self) -> Box<dyn ErasedState>;
    fn as_any(&self) -> &dyn Any;
    /// The subjects and indexes, for a state image.
    fn encode(&self) -> Vec<u8>;
    fn subject_refs(&self) -> Box<dyn Iterator<Item = &SubjectRef> + '_>;
    fn same_as(&self, other: &dyn ErasedState) -> bool;
}

struct Adapter<C>(PhantomData<fn() -> C>);

fn downcast<'a, T: 'static>(v: &'a AnyPayload, what: &str) -> &'a T {
    v.downcast_ref::<T>()
        .unwrap_or_else(|| panic!("{what} of another capability reached this one"))
}

impl<C: Capability> ErasedCapability for Adapter<C> {
    fn name(&self) -> &'static str {
        C::NAME
    }
    fn version(&self) -> u32 {
        C::VERSION
    }
    fn capability_type(&self) -> TypeId {
        TypeId::of::<C>()
    }
    fn kinds(&self) -> &'static [&'static KindSpec] {
        C::kinds()
    }
    fn subject_kinds(&self) -> &'static [&'static str] {
        C::subject_kinds()
    }
    fn decode(&self, kind: &'static KindSpec, bytes: &[u8]) -> Result<Arc<AnyPayload>, Refusal> {
        let payload = C::decode(kind, bytes)?;
        // The decoded payload must be of the kind its message named.
        assert!(
            std::ptr::eq(payload.kind(), kind),
            "{} decoded {} as {}",
            C::NAME,
            kind.name,
            payload.kind().name
        );
        Ok(Arc::new(payload))
    }
    fn introduced_keys<'p>(&self, payload: &'p AnyPayload) -> Vec<&'p PublicKey> {
        downcast::<C::Payload>(payload, "a payload").introduced_keys()
    }
    fn describe(&self, payload: &AnyPayload) -> Vec<(&'static str, crate::kind::Field)> {
        downcast::<C::Payload>(payload, "a payload").describe()
    }
    fn decide(
        &self,
        ctx: &Ctx<'_>,
        current: Option<&AnyPayload>,
        payload: &AnyPayload,
    ) -> Result<(Box<AnyPayload>, Vec<crate::capability::Claim>), Refusal> {
        let current = current.map(|c| downcast::<C::Subject>(c, "a subject state"));
        let payload = downcast::<C::Payload>(payload, "a payload");
        let accepted = C::decide(ctx, current, payload)?;
        Ok((Box::new(accepted.subject), accepted.claims))
    }
    fn new_state(&self) -> Box<dyn ErasedState> {
        Box::new(CapState::<C>::default())
    }
    fn state_format(&self) -> u32 {
        C::STATE_FORMAT
    }
    fn decode_state(&self, bytes: &[u8]) -> Result<Box<dyn ErasedState>, String> {
        let state: CapState<C> = postcard::from_bytes(bytes).map_err(|e| e.to_string())?;
        Ok(Box::new(state))
    }
    fn summary(&self, subject: &AnyPayload) -> String {
        C::summary(downcast::<C::Subject>(subject, "a subject state"))
    }
    fn status(&self, subject: &AnyPayload) -> Option<&'static str> {
        C::status(downcast::<C::Subject>(subject, "a subject state"))
    }
    fn debug(&self, subject: &AnyPayload) -> String {
        format!("{:?}", downcast::<C::Subject>(subject, "a subject state"))
    }
}

impl<C: Capability> ErasedState for CapState<C> {
    fn get(&self, subject: &SubjectRef) -> Option<&AnyPayload> {
        self.subject(subject).map(|s| s as &AnyPayload)
    }
    fn commit(&mut self, subject: SubjectRef, after: Box<AnyPayload>) {
        let after = *after.downcast::<C::Subject>().unwrap_or_else(|_| {
            panic!("a subject state of another capability reached {}", C::NAME)
        });
        CapState::commit(self, subject, after);
    }
    fn clone_box(&self) -> Box<dyn ErasedState> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("a capability state encodes")
    }
    fn subject_refs(&self) -> Box<dyn Iterator<Item = &SubjectRef> + '_> {
        Box::new(self.subjects().map(|(s, _)| s))
    }
    fn same_as(&self, other: &dyn ErasedState) -> bool {
        other
            .as_any()
            .downcast_ref::<CapState<C>>()
            .is_some_and(|o| o == self)
    }
}

/// A log activated rules this build does not run: the node must stop.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("this build does not run the rules the log activated: {0}")]
pub struct UnsupportedRules(pub String);

/// The rules a node runs: the kernel's own kinds and its capabilities'.
pub struct Rules {
    caps: Vec<Box<dyn ErasedCapability>>,
    kinds: BTreeMap<&'static str, (&'static KindSpec, Owner)>,
    by_message: BTreeMap<&'static str, (&'static KindSpec, Owner)>,
    subject_kinds: BTreeMap<&'static str, Owner>,
}

impl fmt::Debug for Rules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rules({})", self.version())
    }
}

/// Builds [`Rules`]; `build` asserts that names are unique.
#[derive(Default)]
pub struct RulesBuilder {
    caps: Vec<Box<dyn ErasedCapability>>,
}

impl RulesBuilder {
    pub fn add<C: Capability>(mut self) -> Self {
        self.caps.push(Box::new(Adapter::<C>(PhantomData)));
        self
    }

    /// Panics on a duplicate capability, kind name, message or subject kind,
    /// or a kind about a subject kind nobody owns: a build error, not input.
    pub fn build(self) -> Rules {
        let mut rules = Rules {
            caps: Vec::new(),
            kinds: BTreeMap::new(),
            by_message: BTreeMap::new(),
            subject_kinds: BTreeMap::new(),
        };
        for s in authority::SUBJECT_KINDS {
            rules.subject_kinds.insert(s, Owner::Kernel);
        }
        for (slot, cap) in self.caps.iter().enumerate() {
            assert!(
                !self.caps[..slot].iter().any(|c| c.name() == cap.name()),
                "capability {} listed twice",
                cap.name()
            );
            for s in cap.subject_kinds() {
                let prev = rules.subject_kinds.insert(s, Owner::Capability(slot));
                assert!(prev.is_none(), "subject kind {s} has two owners");
            }
        }
        let kernel_kinds = authority::KINDS.iter().map(|k| (*k, Owner::Kernel));
        let cap_kinds = self
            .caps
            .iter()
            .enumerate()
            .flat_map(|(slot, c)| c.kinds().iter().map(move |k| (*k, Owner::Capability(slot))));
        for (kind, owner) in kernel_kinds.chain(cap_kinds) {
            assert!(
                rules.kinds.insert(kind.name, (kind, owner)).is_none(),
                "event kind {} defined twice",
                kind.name
            );
            assert!(
                rules
                    .by_message
                    .insert(kind.message, (kind, owner))
                    .is_none(),
                "payload message {} used by two kinds",
                kind.message
            );
            if let Subjects::Of(subjects) = kind.subjects {
                for s in subjects {
                    assert!(
                        rules.subject_kinds.contains_key(s),
                        "kind {} is about subject kind {s}, which nobody owns",
                        kind.name
                    );
                }
            }
        }
        rules.caps = self.caps;
        rules
    }
}

impl Rules {
    pub fn builder() -> RulesBuilder {
        RulesBuilder::default()
    }

    /// What these rules are: the kernel's and each capability's name and
    /// version (`identity/1 kernel/1`), as `ActiveRules::version_text` prints.
    pub fn version(&self) -> String {
        let parts: Vec<String> = self
            .versions()
            .iter()
            .map(|(name, version)| format!("{name}/{version}"))
            .collect();
        parts.join(" ")
    }

    /// What this build runs: the kernel's and each capability's version.
    pub fn versions(&self) -> BTreeMap<String, u32> {
        std::iter::once((authority::KERNEL.to_string(), authority::KERNEL_VERSION))
            .chain(
                self.caps
                    .iter()
                    .map(|c| (c.name().to_string(), c.version())),
            )
            .collect()
    }

    /// Whether this build runs every capability `active` names, at that version.
    pub fn check_supported(
        &self,
        active: &crate::limits::ActiveRules,
    ) -> Result<(), UnsupportedRules> {
        let ours = self.versions();
        let missing: Vec<String> = active
            .capabilities
            .iter()
            .filter(|(name, version)| ours.get(*name) != Some(version))
            .map(|(name, version)| match ours.get(name) {
                Some(v) => format!("{name}/{version} (this build runs {name}/{v})"),
                None => format!("{name}/{version} (this build lacks it)"),
            })
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(UnsupportedRules(missing.join(", ")))
        }
    }

    /// An event kind by name.
    pub fn kind(&self, name: &str) -> Option<&'static KindSpec> {
        self.kinds.get(name).map(|(k, _)| *k)
    }

    /// Every kind, kernel's first, by name within each.
    pub fn kinds(&self) -> impl Iterator<Item = &'static KindSpec> + '_ {
        self.kinds.values().map(|(k, _)| *k)
    }

    pub fn is_subject_kind(&self, kind: &str) -> bool {
        self.subject_kinds.contains_key(kind)
    }

    /// A subject kind these rules know, or the refusal naming the known ones.
    pub fn check_subject_kind(&self, kind: &str) -> Result<(), Refusal> {
        if self.is_subject_kind(kind) {
            return Ok(());
        }
        let kinds: Vec<&str> = self.subject_kind_names().collect();
        Err(Refusal::field(
            "subject.kind",
            format!("unknown subject kind {kind:?} ({})", kinds.join(", ")),
        ))
    }

    pub fn subject_kind_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.subject_kinds.keys().copied()
    }

    pub(crate) fn subject_owner(&self, kind: &str) -> Option<Owner> {
        self.subject_kinds.get(kind).copied()
    }

    pub(crate) fn capability_count(&self) -> usize {
        self.caps.len()
    }

    pub(crate) fn capability(&self, slot: usize) -> &dyn ErasedCapability {
        self.caps[slot].as_ref()
    }

    pub(crate) fn slot_of<C: Capability>(&self) -> Option<usize> {
        self.slot_of_type(TypeId::of::<C>())
    }

    pub(crate) fn slot_of_type(&self, id: TypeId) -> Option<usize> {
        self.caps.iter().position(|c| c.capability_type() == id)
    }

    /// The names of the kinds a recognized party may be granted.
    pub fn grantable_kinds(&self) -> Vec<&'static str> {
        self.kinds()
            .filter(|k| k.grantable)
            .map(|k| k.name)
            .collect()
    }

    /// Parses an envelope into an event: checks the body size before
    /// decoding, then the framing, then decodes the payload with the
    /// capability that owns its message.
    pub fn parse(&self, envelope: Envelope, limits: &EventLimits) -> Result<Event, Refusal> {
        if envelope.body.len() > limits.max_body_bytes {
            return Err(Refusal::BodyTooLarge {
                size: envelope.body.len(),
                limit: limits.max_body_bytes,
            });
        }
        let body = EventBody::decode(&envelope.body)?;
        let (kind, owner) = *self
            .by_message
            .get(body.payload.message.as_str())
            .ok_or_else(|| Refusal::UnknownPayload(body.payload.message.clone()))?;
        let payload = match owner {
            Owner::Kernel => {
                Arc::new(PartyPayload::decode(kind, &body.payload.value)?) as Arc<AnyPayload>
            }
            Owner::Capability(slot) => self.caps[slot].decode(kind, &body.payload.value)?,
        };
        Ok(Event {
            id: EventId::of_body(&envelope.body),
            envelope,
            body,
            kind,
            owner,
            payload,
        })
    }

    /// The event's payload fields, described by its owner.
    pub fn describe(&self, event: &Event) -> Vec<(&'static str, crate::kind::Field)> {
        match event.owner {
            Owner::Kernel => {
                downcast::<PartyPayload>(event.payload.as_ref(), "a payload").describe()
            }
            Owner::Capability(slot) => self.caps[slot].describe(event.payload.as_ref()),
        }
    }

    /// Keys the event brings in that may sign it beside the party's keys
    /// (a rotated-in key proving possession).
    pub fn introduced_keys<'e>(&self, event: &'e Event) -> Vec<&'e PublicKey> {
        match event.owner {
            Owner::Kernel => {
                downcast::<PartyPayload>(event.payload.as_ref(), "a payload").introduced_keys()
            }
            Owner::Capability(slot) => self.caps[slot].introduced_keys(event.payload.as_ref()),
        }
    }
}
