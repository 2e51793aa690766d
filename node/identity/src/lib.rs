//! The identity capability: devices, services and code identities, their
//! status and key rotation, endorsements by other parties, and the OpenPGP
//! forms of devices (draft-atkins certificates) and code releases.
//!
//! One file per kind group holds its rules (`device.rs`, `service.rs`,
//! `code.rs`, `rotation.rs`, `endorsement.rs`); `payload.rs` lists the kinds
//! as data, `wire.rs` their protobuf form (`proto/ics/identity/v1`),
//! `query.rs` the pure queries (search, verify, OpenPGP export).

pub mod openpgp;
pub mod payload;
pub mod query;
pub mod refusal;
pub mod state;
pub mod wire;

pub mod code;
pub mod device;
mod endorsement;
mod rotation;
pub mod service;

use ics_kernel::capability::{Accepted, Capability, Ctx, KindSpec};
use ics_kernel::{Refusal, Role, SubjectRef};

pub use payload::IdentityPayload;
pub use state::{Detail, Endorsement, IdentityIndex, IdentityState};

pub const DEVICE: &str = "device";
pub const SERVICE: &str = "service";
pub const CODE: &str = "code";

/// The identity capability.
pub struct Identity;

impl Capability for Identity {
    const NAME: &'static str = "identity";
    /// 2: a device's attribute names are unique.
    const VERSION: u32 = 2;
    type Payload = IdentityPayload;
    type Subject = IdentityState;
    type Index = IdentityIndex;

    fn subject_kinds() -> &'static [&'static str] {
        &[DEVICE, SERVICE, CODE]
    }

    fn kinds() -> &'static [&'static KindSpec] {
        &payload::KINDS
    }

    fn decode(kind: &'static KindSpec, bytes: &[u8]) -> Result<IdentityPayload, Refusal> {
        wire::decode(kind, bytes)
    }

    fn decide(
        ctx: &Ctx<'_>,
        current: Option<&IdentityState>,
        payload: &IdentityPayload,
    ) -> Result<Accepted<IdentityState>, Refusal> {
        use IdentityPayload as P;
        let unknown = || Refusal::UnknownSubject(ctx.subject().to_string());
        match payload {
            P::DeviceRegistered {
                serial,
                device_key,
                attributes,
                openpgp,
            } => device::register(ctx, serial, device_key, attributes, openpgp.as_ref()),
            P::DeviceStatusChanged {
                status,
                reason,
                openpgp_revocation,
            } => device::change_status(
                ctx,
                current.ok_or_else(unknown)?,
                *status,
                reason,
                openpgp_revocation.as_deref(),
            ),
            P::ServiceRegistered {
                name,
                service_key,
                endpoints,
                owner,
            } => service::register(ctx, name, service_key, endpoints, owner),
            P::ServiceEndpointsChanged { endpoints } => {
                service::change_endpoints(ctx, current.ok_or_else(unknown)?, endpoints)
            }
            P::KeyRotated {
                new_key,
                reason,
                openpgp_revocation,
            } => rotation::rotate(
                ctx,
                current.ok_or_else(unknown)?,
                new_key,
                reason,
                openpgp_revocation.as_deref(),
            ),
            P::CodeReleased(identity) => code::release(ctx, identity),
            P::CodeStatusChanged { status, reason } => {
                code::change_status(ctx, current.ok_or_else(unknown)?, *status, reason)
            }
            P::Endorsed {
                kind,
                scope,
                not_after_ms,
                openpgp_certification,
            } => endorsement::endorse(
                ctx,
                current.ok_or_else(unknown)?,
                *kind,
                scope,
                *not_after_ms,
                openpgp_certification.as_deref(),
            ),
            P::EndorsementWithdrawn {
                endorsement,
                reason,
                openpgp_revocation,
            } => endorsement::withdraw(
                ctx,
                current.ok_or_else(unknown)?,
                endorsement,
                reason,
                openpgp_revocation.as_deref(),
            ),
        }
    }

    fn index(
        index: &mut IdentityIndex,
        subject: &SubjectRef,
        _before: Option<&IdentityState>,
        after: &IdentityState,
    ) {
        index.update(subject, after);
    }

    fn summary(subject: &IdentityState) -> String {
        subject.summary()
    }

    fn status(subject: &IdentityState) -> Option<&'static str> {
        subject.status()
    }
}

/// Whether a node of this role serves the HKP keyserver: the roles that
/// register devices serve their OpenPGP certificates.
pub fn serves_hkp(role: Role) -> bool {
    payload::DEVICE_REGISTERED.authored_by.contains(&role)
}

/// The subject id of a keyed identity must be its key's id.
fn check_subject_is_key(
    ctx: &Ctx<'_>,
    what: &str,
    key: &ics_kernel::PublicKey,
) -> Result<(), Refusal> {
    let key_id = key.id();
    if ctx.subject().id != key_id.to_hex() {
        return Err(Refusal::InvalidSubject {
            subject: ctx.subject().to_string(),
            reason: format!("{what} subject id must be the {what} key's fingerprint {key_id}"),
        });
    }
    Ok(())
}
