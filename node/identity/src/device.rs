//! Devices: registration (with an optional OpenPGP certificate) and status.

use ics_kernel::capability::{Accepted, Claim, Ctx};
use ics_kernel::limits::check_name;
use ics_kernel::{PublicKey, Refusal};

use crate::openpgp::{self, DeviceCertificate, RevocationSlot};
use crate::payload::DeviceSignatures;
use crate::payload::DeviceStatus;
use crate::refusal::{IdentityRefusal, check_transition};
use crate::state::{Detail, IdentityState};

/// The unique-name space of device serials.
pub const SERIAL_SPACE: &str = "serial";

pub(crate) fn register(
    ctx: &Ctx<'_>,
    serial: &str,
    device_key: &PublicKey,
    attributes: &[(String, String)],
    signatures: Option<&DeviceSignatures>,
) -> Result<Accepted<IdentityState>, Refusal> {
    let limits = ctx.limits;
    check_name("serial", serial)?;
    crate::check_subject_is_key(ctx, "device", device_key)?;
    if attributes.len() > limits.max_attributes {
        return Err(Refusal::field(
            "attributes",
            format!(
                "{} attributes, over the limit of {}",
                attributes.len(),
                limits.max_attributes
            ),
        ));
    }
    let mut names = std::collections::BTreeSet::new();
    for (name, value) in attributes {
        check_name("attributes.name", name)?;
        limits.check_text("attributes.value", value)?;
        // One value per name: two would let readers pick different ones.
        if !names.insert(name.as_str()) {
            return Err(Refusal::field(
                "attributes.name",
                format!("{name:?} is given more than once"),
            ));
        }
    }
    let key_id = device_key.id();
    ctx.check_key_free(&key_id)?;
    let serial_claim = Claim::new(SERIAL_SPACE, serial);
    if let Some(owner) = ctx.claim_owner(&serial_claim) {
        return Err(IdentityRefusal::SerialTaken {
            serial: serial.to_string(),
            subject: owner.to_string(),
        }
        .into());
    }
    let certificate = match signatures {
        None => None,
        Some(signatures) => Some(Box::new(openpgp::check_device(
            signatures,
            device_key,
            &ctx.author.public_key,
            serial,
            attributes,
            ctx.time_ms(),
        )?)),
    };
    Ok(Accepted {
        subject: IdentityState {
            detail: Detail::Device {
                serial: serial.to_string(),
                device_key: device_key.clone(),
                attributes: attributes.to_vec(),
                status: DeviceStatus::Planned,
                openpgp: certificate,
            },
            endorsements: Vec::new(),
        },
        claims: vec![serial_claim, Claim::key(&key_id)],
    })
}

pub(crate) fn change_status(
    ctx: &Ctx<'_>,
    current: &IdentityState,
    status: DeviceStatus,
    reason: &str,
    openpgp_revocation: Option<&[u8]>,
) -> Result<Accepted<IdentityState>, Refusal> {
    ctx.limits.check_text("reason", reason)?;
    let mut next = current.clone();
    // Only the status moves (and a published revocation).
    let Detail::Device {
        status: from,
        openpgp: certificate,
        ..
    } = &mut next.detail
    else {
        return Err(Refusal::UnknownSubject(ctx.subject().to_string()));
    };
    check_transition(
        &ctx.subject().to_string(),
        from.may_become(status),
        from.name(),
        status.name(),
    )?;
    *from = status;
    // A stolen, destroyed or retired report may publish the escrowed
    // revocation of its kind.
    if let Some(revocation) = openpgp_revocation {
        use RevocationSlot::*;
        let allowed: &[RevocationSlot] = match status {
            DeviceStatus::Stolen => &[Compromised],
            DeviceStatus::Destroyed | DeviceStatus::Retired => &[Retired],
            _ => &[],
        };
        publish_revocation(
            certificate.as_deref_mut(),
            revocation,
            allowed,
            &format!("a {} report", status.name()),
        )?;
    }
    Ok(Accepted {
        subject: next,
        claims: Vec::new(),
    })
}

/// Publishes an escrowed revocation on a device's certificate: one the
/// registration committed to, of a kind the `report` allows.
pub(crate) fn publish_revocation(
    certificate: Option<&mut DeviceCertificate>,
    revocation: &[u8],
    allowed: &[RevocationSlot],
    report: &str,
) -> Result<(), Refusal> {
    let refuse = |reason: String| IdentityRefusal::openpgp("openpgp_revocation", reason);
    let Some(c) = certificate else {
        return Err(refuse(
            "the device has no OpenPGP certificate to revoke".to_string(),
        ));
    };
    let slot = openpgp::check_revocation(revocation, c)?;
    if !allowed.contains(&slot) {
        let names: Vec<&str> = allowed.iter().map(|s| s.name()).collect();
        return Err(refuse(format!(
            "{report} publishes {}, not the {} revocation",
            if names.is_empty() {
                "no revocation".to_string()
            } else {
                format!("the {} revocation", names.join(" or "))
            },
            slot.name()
        )));
    }
    if !c.published_revocations.iter().any(|r| r == revocation) {
        c.published_revocations.push(revocation.to_vec());
    }
    Ok(())
}
