//! Policy descriptors: what a party shares with each peer party and what it
//! takes from each, by domain (a group of subjects) and event kind, with
//! quotas. Deny by default.
//!
//! `descriptor.rs` is the text an operator writes (TOML) and its checks;
//! `evaluate.rs` the pure verdict on a (peer, subject, kind) at a given
//! time, with the rule that decided it; `capability.rs` the descriptor as a
//! capability of the kernel (`policy-published`, root key only, versions in
//! order), so every replica switches policy at the same log index.

pub mod capability;
pub mod descriptor;
pub mod evaluate;
#[cfg(feature = "testing")]
pub mod testing;

pub use capability::{
    POLICY, POLICY_PUBLISHED, Policies, PolicyIndex, PolicyPayload, PolicyRefusal, PolicyState,
    active, active_staged, is_authority, policy_subject, version,
};
pub use descriptor::{Descriptor, DocumentError, Domain, Peer, Quotas, Rule};
pub use evaluate::{AUTHORITY_SUBJECT_KINDS, Decision, Direction, Facts};

use ics_identity::state::{Detail, IdentityState};
use ics_kernel::SubjectRef;

/// What the policy reads of a subject: its kind and id, the party whose
/// record it is, and for identities their serial, name and attributes.
pub fn facts<'a>(
    subject: &'a SubjectRef,
    namespace: &'a str,
    identity: Option<&'a IdentityState>,
) -> Facts<'a> {
    let mut facts = Facts {
        subject_kind: &subject.kind,
        subject_id: &subject.id,
        namespace,
        ..Facts::default()
    };
    match identity.map(|s| &s.detail) {
        Some(Detail::Device {
            serial, attributes, ..
        }) => {
            facts.serial = Some(serial);
            facts.attributes = attributes;
        }
        Some(Detail::Service { name, .. }) => facts.name = Some(name),
        Some(Detail::Code { identity, .. }) => facts.name = Some(&identity.name),
        None => {}
    }
    facts
}
