//! Endorsements: a party's signature on an identity (integrator approval,
//! maintainership, a trust label), optionally an OpenPGP certification of
//! the device; and their withdrawal by the party that made them.

use ics_kernel::capability::{Accepted, Ctx};
use ics_kernel::{EventId, PublicKey, Refusal};

use crate::openpgp;
use crate::payload::EndorsementKind;
use crate::refusal::IdentityRefusal;
use crate::state::{Endorsement, IdentityState};

pub(crate) fn endorse(
    ctx: &Ctx<'_>,
    current: &IdentityState,
    kind: EndorsementKind,
    scope: &str,
    not_after_ms: i64,
    openpgp_certification: Option<&[u8]>,
) -> Result<Accepted<IdentityState>, Refusal> {
    ctx.limits.check_text("scope", scope)?;
    let time_ms = ctx.time_ms();
    if not_after_ms <= time_ms {
        return Err(Refusal::field(
            "not_after_unix_ms",
            "must be later than the event time",
        ));
    }
    let author = ctx.body().author;
    let subject_text = ctx.subject().to_string();
    if let Some(certification) = openpgp_certification {
        let refuse = |reason: String| IdentityRefusal::openpgp("openpgp_certification", reason);
        let Some(device) = current.detail.certificate() else {
            return Err(refuse(format!(
                "{subject_text} has no OpenPGP certificate to certify"
            )));
        };
        let current_key = current.detail.current_key().map(PublicKey::id);
        if device.revoked() || current_key != Some(device.device_key_id) {
            return Err(refuse(format!(
                "{subject_text}'s OpenPGP certificate is revoked or its key rotated out"
            )));
        }
        // One certification revocation retracts all of a key's
        // certifications of the User ID: one live one per key.
        if current
            .endorsements
            .iter()
            .any(|e| !e.withdrawn && e.author == author && e.openpgp_certification.is_some())
        {
            return Err(refuse(format!(
                "key {author} already has a live OpenPGP-certified endorsement of {subject_text}; withdraw it first"
            )));
        }
        openpgp::check_endorsement(
            certification,
            device,
            &ctx.author.public_key,
            kind,
            scope,
            time_ms,
            not_after_ms,
        )?;
    }
    let mut next = current.clone();
    next.endorsements.push(Endorsement {
        id: ctx.event.id,
        party: ctx.author.party.clone(),
        kind,
        scope: scope.to_string(),
        not_after_ms,
        withdrawn: false,
        author,
        openpgp_certification: openpgp_certification.map(<[u8]>::to_vec),
        openpgp_revocation: None,
    });
    Ok(Accepted {
        subject: next,
        claims: Vec::new(),
    })
}

pub(crate) fn withdraw(
    ctx: &Ctx<'_>,
    current: &IdentityState,
    endorsement: &EventId,
    reason: &str,
    openpgp_revocation: Option<&[u8]>,
) -> Result<Accepted<IdentityState>, Refusal> {
    ctx.limits.check_text("reason", reason)?;
    let not_withdrawable = |why: &str| -> Refusal {
        IdentityRefusal::NotWithdrawable {
            subject: ctx.subject().to_string(),
            endorsement: endorsement.to_hex(),
            reason: why.to_string(),
        }
        .into()
    };
    let mut next = current.clone();
    let device = next.detail.certificate().cloned();
    let e = next
        .endorsements
        .iter_mut()
        .find(|e| e.id == *endorsement)
        .ok_or_else(|| not_withdrawable("no such endorsement on this subject"))?;
    if e.withdrawn {
        return Err(not_withdrawable("it is already withdrawn"));
    }
    if e.party != ctx.author.party {
        return Err(not_withdrawable("only the endorsing party withdraws it"));
    }
    // An OpenPGP certification already spread is retracted only by a
    // revocation from the key that made it.
    match (&e.openpgp_certification, openpgp_revocation, device) {
        (None, None, _) => {}
        (Some(_), Some(revocation), Some(device)) => {
            let certifier = ctx
                .key(&e.author)
                .map(|k| &k.public_key)
                .ok_or_else(|| Refusal::UnknownKey(e.author.to_hex()))?;
            openpgp::check_endorsement_revocation(revocation, &device, certifier, ctx.time_ms())
                .map_err(|err| {
                    IdentityRefusal::openpgp(
                        err.field,
                        format!(
                            "{} (it must be made by the certifying key {})",
                            err.reason, e.author
                        ),
                    )
                })?;
        }
        (Some(_), None, _) => {
            // A certifier key that can no longer sign (revoked, expired)
            // must not pin the endorsement: withdraw it here even though
            // the OpenPGP certification cannot be retracted.
            let certifier_gone = ctx.key(&e.author).is_none_or(|k| !k.live_at(ctx.time_ms()));
            if !certifier_gone {
                return Err(not_withdrawable(
                    "its OpenPGP certification needs an openpgp_revocation",
                ));
            }
        }
        (None, Some(_), _) | (Some(_), Some(_), None) => {
            return Err(IdentityRefusal::openpgp(
                "openpgp_revocation",
                "the endorsement has no OpenPGP certification to revoke",
            ));
        }
    }
    e.withdrawn = true;
    e.openpgp_revocation = openpgp_revocation.map(<[u8]>::to_vec);
    Ok(Accepted {
        subject: next,
        claims: Vec::new(),
    })
}
