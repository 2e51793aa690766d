//! What happens to a certificate after it is issued: revocation, the
//! attributes kept beside it, its route of way stations and the sightings.

use std::collections::BTreeSet;

use ics_kernel::Refusal;
use ics_kernel::capability::Ctx;
use ics_kernel::limits::check_name;

use crate::{
    CaRefusal, CaSubject, DeviceCert, MAX_ROUTE_STATIONS, MAX_SIGHTINGS, Revocation,
    RevocationReason, Trace,
};

pub(crate) fn revoke(
    ctx: &Ctx<'_>,
    cert: &DeviceCert,
    reason: RevocationReason,
    comment: &str,
) -> Result<CaSubject, Refusal> {
    let subject = ctx.subject().to_string();
    ctx.limits.check_text("comment", comment)?;
    let author = ctx.body().author;
    if author != ctx.party().root_key && author.to_hex() != cert.ca {
        return Err(CaRefusal::NotIssuer {
            subject,
            author: author.to_string(),
        }
        .into());
    }
    if cert.revoked.is_some() {
        return Err(CaRefusal::AlreadyRevoked(subject).into());
    }
    let mut next = cert.clone();
    next.revoked = Some(Revocation {
        reason,
        comment: comment.to_string(),
        time_ms: ctx.time_ms(),
    });
    Ok(CaSubject::Cert(Box::new(next)))
}

pub(crate) fn set_attributes(
    ctx: &Ctx<'_>,
    cert: &DeviceCert,
    set: &[(String, String)],
    removed: &[String],
) -> Result<CaSubject, Refusal> {
    if set.is_empty() && removed.is_empty() {
        return Err(Refusal::field("set", "sets or removes nothing"));
    }
    let mut next = cert.clone();
    let mut named = BTreeSet::new();
    for name in removed {
        check_name("removed", name)?;
        if !named.insert(name.as_str()) {
            return Err(Refusal::field(
                "removed",
                format!("{name:?} is named twice"),
            ));
        }
        if next.attributes.remove(name).is_none() {
            return Err(Refusal::field(
                "removed",
                format!("{name:?} is not an attribute of {}", ctx.subject()),
            ));
        }
    }
    for (name, value) in set {
        check_name("set.name", name)?;
        ctx.limits.check_text("set.value", value)?;
        if !named.insert(name.as_str()) {
            return Err(Refusal::field(
                "set.name",
                format!("{name:?} is named twice"),
            ));
        }
        next.attributes.insert(name.clone(), value.clone());
    }
    if next.attributes.len() > ctx.limits.max_attributes {
        return Err(Refusal::field(
            "set",
            format!(
                "{} attributes, over the limit of {}",
                next.attributes.len(),
                ctx.limits.max_attributes
            ),
        ));
    }
    Ok(CaSubject::Cert(Box::new(next)))
}

pub(crate) fn set_route(
    ctx: &Ctx<'_>,
    cert: &DeviceCert,
    stations: &[String],
) -> Result<CaSubject, Refusal> {
    if stations.is_empty() || stations.len() > MAX_ROUTE_STATIONS {
        return Err(Refusal::field(
            "stations",
            format!(
                "{} stations; a route names 1 to {MAX_ROUTE_STATIONS}",
                stations.len()
            ),
        ));
    }
    let mut seen = BTreeSet::new();
    for s in stations {
        check_name("stations", s)?;
        if !seen.insert(s.as_str()) {
            return Err(Refusal::field("stations", format!("{s:?} is named twice")));
        }
    }
    let _ = ctx;
    let mut next = cert.clone();
    // A new route starts the trace over.
    next.trace = Trace {
        route: stations.to_vec(),
        seen: Vec::new(),
        out_of_order: None,
    };
    Ok(CaSubject::Cert(Box::new(next)))
}

pub(crate) fn record_station(
    ctx: &Ctx<'_>,
    cert: &DeviceCert,
    station: &str,
) -> Result<CaSubject, Refusal> {
    let subject = ctx.subject().to_string();
    if cert.trace.route.is_empty() {
        return Err(CaRefusal::NoRoute(subject).into());
    }
    if !cert.trace.route.iter().any(|s| s == station) {
        return Err(CaRefusal::UnknownStation {
            subject,
            station: station.to_string(),
        }
        .into());
    }
    if cert.trace.seen.len() >= MAX_SIGHTINGS {
        return Err(Refusal::field(
            "station",
            format!("{subject} already has {MAX_SIGHTINGS} sightings, the limit"),
        ));
    }
    let mut next = cert.clone();
    let expected = cert.trace.route.get(cert.trace.seen.len());
    if expected.map(String::as_str) != Some(station) && next.trace.out_of_order.is_none() {
        // Recorded all the same: the sighting happened, and the log keeps the
        // evidence; Verify refuses the device from now on.
        next.trace.out_of_order = Some(match expected {
            Some(e) => format!("seen at {station:?} when {e:?} was due"),
            None => format!("seen at {station:?} after the route was complete"),
        });
    }
    next.trace.seen.push((station.to_string(), ctx.time_ms()));
    Ok(CaSubject::Cert(Box::new(next)))
}
