//! `device-ca-bound`: the party's device root and issuing CAs, bound by its
//! root key.

use ics_kernel::capability::Ctx;
use ics_kernel::{Refusal, Role};
use ics_pki::ParsedCert;

use crate::{
    CaRecord, CaRefusal, CaSubject, Purpose, bound_ca, check_lifetime, check_valid_at, p256_key_id,
    payload, x509,
};

pub(crate) fn bind_ca(
    ctx: &Ctx<'_>,
    der: &[u8],
    purpose: Purpose,
    issuer: &str,
) -> Result<CaSubject, Refusal> {
    let party = ctx.party();
    if ctx.body().author != party.root_key {
        return Err(CaRefusal::NotRootKey(ctx.body().author.to_string()).into());
    }
    let role_may = match purpose {
        Purpose::Root => true,
        Purpose::Factory => party.role == Role::Manufacturer,
        Purpose::Operational => matches!(party.role, Role::Maintenance | Role::Infield),
    };
    if !role_may {
        return Err(CaRefusal::WrongPurpose(format!(
            "a {} party does not run a {} CA (factory: manufacturers; operational: maintainers and gateways)",
            party.role.name(),
            purpose.name()
        ))
        .into());
    }
    let cert = x509::parse_cert(der).map_err(CaRefusal::bad)?;
    if !cert.is_ca || !cert.key_usage_cert_sign {
        return Err(CaRefusal::bad(
            "a CA certificate needs basicConstraints CA and keyCertSign",
        ));
    }
    if x509::device_of(&cert).is_ok() {
        return Err(CaRefusal::bad("a CA certificate names no device"));
    }
    check_valid_at(&cert, ctx.time_ms())?;
    check_lifetime(&cert, x509::MAX_ROOT_LIFETIME)?;
    let key_id = p256_key_id(&cert.public_key)?;
    if ctx.subject().id != key_id.to_hex() {
        return Err(Refusal::InvalidSubject {
            subject: ctx.subject().to_string(),
            reason: format!("a device CA's subject id must be its key's id {key_id}"),
        });
    }
    let issuer = match purpose {
        Purpose::Root => {
            if !issuer.is_empty() {
                return Err(Refusal::field("issuer", "a root CA has no issuer"));
            }
            if cert.issuer != cert.subject || !cert.signed_by(&cert.public_key) {
                return Err(CaRefusal::bad("a root CA certificate must be self-signed"));
            }
            None
        }
        Purpose::Factory | Purpose::Operational => {
            let root = bound_ca(ctx, issuer)
                .filter(|r| r.purpose == Purpose::Root)
                .ok_or_else(|| CaRefusal::CaNotBound(format!("{issuer:?} (a root)")))?;
            let root_cert = ParsedCert::parse(&root.certificate).map_err(CaRefusal::bad)?;
            if cert.issuer != root_cert.subject || !cert.signed_by(&root_cert.public_key) {
                return Err(CaRefusal::bad(format!(
                    "not issued by the root CA {issuer}"
                )));
            }
            if cert.not_after_ms > root.not_after_ms {
                return Err(CaRefusal::bad("valid beyond its root"));
            }
            let is_issuing_author = ctx.key(&key_id).is_some_and(|k| {
                k.party == party.name
                    && !k.revoked
                    && k.not_after_ms.is_none_or(|t| t > ctx.time_ms())
                    && k.may_sign(payload::DEVICE_CERT_ISSUED.name)
                    && k.allowed_kinds.is_some()
            });
            if !is_issuing_author {
                return Err(CaRefusal::CaKeyNotAuthor(key_id.to_string()).into());
            }
            Some(issuer.to_string())
        }
    };
    Ok(CaSubject::Ca(CaRecord {
        certificate: der.to_vec(),
        purpose,
        issuer,
        fingerprint: cert.fingerprint_hex(),
        not_after_ms: cert.not_after_ms,
    }))
}
