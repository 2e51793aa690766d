//! Code identities: a developer's signed statement of an artifact's digests,
//! and its status.

use ics_kernel::Refusal;
use ics_kernel::capability::{Accepted, Claim, Ctx};
use ics_kernel::limits::check_name;

use crate::openpgp;
use crate::payload::{CodeIdentity, CodeStatus};
use crate::refusal::{IdentityRefusal, check_transition};
use crate::state::{Detail, IdentityState};

/// The unique-name space of code names and versions (`name@version`).
pub const CODE_VERSION_SPACE: &str = "code-version";

pub(crate) fn release(
    ctx: &Ctx<'_>,
    identity: &CodeIdentity,
) -> Result<Accepted<IdentityState>, Refusal> {
    check_name("name", &identity.name)?;
    if let Some(sig) = &identity.openpgp_signature {
        openpgp::check_code(sig, identity, &ctx.author.public_key, ctx.time_ms())?;
    }
    check_name("version", &identity.version)?;
    if let Some(uri) = &identity.suit_manifest_uri {
        ctx.limits.check_text("suit_manifest_uri", uri)?;
    }
    if ctx.subject().id != hex::encode(identity.blake3) {
        return Err(Refusal::InvalidSubject {
            subject: ctx.subject().to_string(),
            reason: format!(
                "code subject id must be the artifact's blake3 digest {}",
                hex::encode(identity.blake3)
            ),
        });
    }
    let claim = Claim::new(
        CODE_VERSION_SPACE,
        format!("{}@{}", identity.name, identity.version),
    );
    if let Some(owner) = ctx.claim_owner(&claim) {
        return Err(IdentityRefusal::CodeVersionTaken {
            name: identity.name.clone(),
            version: identity.version.clone(),
            subject: owner.to_string(),
        }
        .into());
    }
    Ok(Accepted {
        subject: IdentityState {
            detail: Detail::Code {
                identity: identity.clone(),
                status: CodeStatus::Released,
            },
            endorsements: Vec::new(),
        },
        claims: vec![claim],
    })
}

pub(crate) fn change_status(
    ctx: &Ctx<'_>,
    current: &IdentityState,
    status: CodeStatus,
    reason: &str,
) -> Result<Accepted<IdentityState>, Refusal> {
    ctx.limits.check_text("reason", reason)?;
    let mut next = current.clone();
    let Detail::Code { status: from, .. } = &mut next.detail else {
        return Err(Refusal::UnknownSubject(ctx.subject().to_string()));
    };
    check_transition(
        &ctx.subject().to_string(),
        from.may_become(status),
        from.name(),
        status.name(),
    )?;
    *from = status;
    Ok(Accepted {
        subject: next,
        claims: Vec::new(),
    })
}
