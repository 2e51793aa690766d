//! Key rotation of devices and services, with proof of possession.

use ics_kernel::capability::{Accepted, Claim, Ctx};
use ics_kernel::{PublicKey, Refusal};

use crate::device::publish_revocation;
use crate::openpgp::RevocationSlot;
use crate::payload::DeviceStatus;
use crate::refusal::IdentityRefusal;
use crate::state::{Detail, IdentityState};

pub(crate) fn rotate(
    ctx: &Ctx<'_>,
    current: &IdentityState,
    new_key: &PublicKey,
    reason: &str,
    openpgp_revocation: Option<&[u8]>,
) -> Result<Accepted<IdentityState>, Refusal> {
    ctx.limits.check_text("reason", reason)?;
    let new_id = new_key.id();
    if !ctx.signed_by(&new_id) {
        return Err(IdentityRefusal::MissingNewKeySignature(new_id.to_hex()).into());
    }
    ctx.check_key_free(&new_id)?;
    let mut next = current.clone();
    match &mut next.detail {
        Detail::Device {
            device_key,
            status,
            openpgp: certificate,
            ..
        } => {
            if *status == DeviceStatus::Destroyed {
                return Err(Refusal::InvalidSubject {
                    subject: ctx.subject().to_string(),
                    reason: "a destroyed device's key is not rotated".to_string(),
                });
            }
            *device_key = new_key.clone();
            // The old key's certificate may be revoked as it goes, with
            // either escrowed revocation (retired, or compromised).
            if let Some(revocation) = openpgp_revocation {
                publish_revocation(
                    certificate.as_deref_mut(),
                    revocation,
                    &[RevocationSlot::Compromised, RevocationSlot::Retired],
                    "a key rotation",
                )?;
            }
        }
        Detail::Service { service_key, .. } => {
            if openpgp_revocation.is_some() {
                return Err(IdentityRefusal::openpgp(
                    "openpgp_revocation",
                    "a service has no OpenPGP certificate to revoke",
                ));
            }
            *service_key = new_key.clone();
        }
        Detail::Code { .. } => return Err(Refusal::UnknownSubject(ctx.subject().to_string())),
    }
    Ok(Accepted {
        subject: next,
        claims: vec![Claim::key(&new_id)],
    })
}
