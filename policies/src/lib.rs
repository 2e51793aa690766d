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
use ics_kernel::SubjectRef as Subject;
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

/// What the policy reads of `subject` in the records of `namespace`, with
/// `identity` and `certificate` reading that party's state: a device
/// certificate is read as the device it certifies (its serial, attributes
/// and id) under its own subject kind, so a domain naming `device-cert`
/// shares a device's certificates beside the device.
pub fn facts_of<'a>(
    subject: &'a Subject,
    namespace: &'a str,
    identity: impl Fn(&Subject) -> Option<&'a IdentityState>,
    certificate: impl Fn(&Subject) -> Option<&'a ics_ca::CaSubject>,
) -> Facts<'a> {
    if subject.kind == ics_ca::DEVICE_CERT
        && let Some(ics_ca::CaSubject::Cert(cert)) = certificate(subject)
    {
        let device = Subject::new(ics_identity::DEVICE, cert.device.clone());
        let mut f = facts(subject, namespace, identity(&device));
        f.subject_id = &cert.device;
        return f;
    }
    facts(subject, namespace, identity(subject))
}
