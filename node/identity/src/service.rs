//! Network services: a key made at setup time, endpoints, the organisation
//! that runs it; names unique.

use ics_kernel::capability::{Accepted, Claim, Ctx};
use ics_kernel::limits::check_name;
use ics_kernel::{PublicKey, Refusal};

use crate::refusal::IdentityRefusal;
use crate::state::{Detail, IdentityState};

/// The unique-name space of service names.
pub const SERVICE_NAME_SPACE: &str = "service-name";

pub(crate) fn register(
    ctx: &Ctx<'_>,
    name: &str,
    service_key: &PublicKey,
    endpoints: &[String],
    owner: &str,
) -> Result<Accepted<IdentityState>, Refusal> {
    check_name("name", name)?;
    check_name("owner", owner)?;
    crate::check_subject_is_key(ctx, "service", service_key)?;
    check_endpoints(ctx, endpoints)?;
    let key_id = service_key.id();
    ctx.check_key_free(&key_id)?;
    let name_claim = Claim::new(SERVICE_NAME_SPACE, name);
    if let Some(owner) = ctx.claim_owner(&name_claim) {
        return Err(IdentityRefusal::ServiceNameTaken {
            name: name.to_string(),
            subject: owner.to_string(),
        }
        .into());
    }
    Ok(Accepted {
        subject: IdentityState {
            detail: Detail::Service {
                name: name.to_string(),
                service_key: service_key.clone(),
                endpoints: endpoints.to_vec(),
                owner: owner.to_string(),
            },
            endorsements: Vec::new(),
        },
        claims: vec![name_claim, Claim::key(&key_id)],
    })
}

/// A service moved: where it answers now.
pub(crate) fn change_endpoints(
    ctx: &Ctx<'_>,
    current: &IdentityState,
    endpoints: &[String],
) -> Result<Accepted<IdentityState>, Refusal> {
    check_endpoints(ctx, endpoints)?;
    let mut next = current.clone();
    let Detail::Service { endpoints: now, .. } = &mut next.detail else {
        return Err(Refusal::UnknownSubject(ctx.subject().to_string()));
    };
    *now = endpoints.to_vec();
    Ok(Accepted {
        subject: next,
        claims: Vec::new(),
    })
}

/// 1 to `max_attributes` URIs, each bounded text.
fn check_endpoints(ctx: &Ctx<'_>, endpoints: &[String]) -> Result<(), Refusal> {
    let limits = ctx.limits;
    if endpoints.is_empty() || endpoints.len() > limits.max_attributes {
        return Err(Refusal::field(
            "endpoints",
            format!(
                "{} endpoints; a service names 1 to {}",
                endpoints.len(),
                limits.max_attributes
            ),
        ));
    }
    for endpoint in endpoints {
        limits.check_text("endpoints", endpoint)?;
        if !is_uri(endpoint) {
            return Err(Refusal::field(
                "endpoints",
                format!("{endpoint:?} is not a URI (scheme://authority...)"),
            ));
        }
    }
    Ok(())
}

fn is_uri(endpoint: &str) -> bool {
    endpoint.split_once("://").is_some_and(|(scheme, rest)| {
        !scheme.is_empty()
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
            && !rest.is_empty()
            && !endpoint.contains(char::is_whitespace)
    })
}
