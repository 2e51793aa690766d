//! The device CA kinds, as data, their payloads and their protobuf form
//! (`proto/ics/ca/v1`).

use ics_kernel::capability::{Field, KindSpec, Payload, Subjects};
use ics_kernel::{Refusal, Role};
use ics_proto::ca_v1 as pb;
use prost::Message;
use serde::{Deserialize, Serialize};

use crate::{DEVICE_CA, DEVICE_CERT};

use Role::*;

/// The parties that run a device CA: manufacturers (factory certificates),
/// maintainers and gateways (operational certificates).
const CA_ROLES: &[Role] = &[Manufacturer, Maintenance, Infield];

pub static DEVICE_CA_BOUND: KindSpec = KindSpec {
    name: "device-ca-bound",
    message: "ics.ca.v1.DeviceCaBound",
    subjects: Subjects::Of(&[DEVICE_CA]),
    opens_subject: true,
    authored_by: CA_ROLES,
    grantable: false,
};
pub static DEVICE_CERT_ISSUED: KindSpec = KindSpec {
    name: "device-cert-issued",
    message: "ics.ca.v1.DeviceCertIssued",
    subjects: Subjects::Of(&[DEVICE_CERT]),
    opens_subject: true,
    authored_by: CA_ROLES,
    grantable: false,
};
pub static DEVICE_CERT_REVOKED: KindSpec = KindSpec {
    name: "device-cert-revoked",
    message: "ics.ca.v1.DeviceCertRevoked",
    subjects: Subjects::Of(&[DEVICE_CERT]),
    opens_subject: false,
    authored_by: CA_ROLES,
    grantable: false,
};
pub static CERT_ATTRIBUTES_SET: KindSpec = KindSpec {
    name: "cert-attributes-set",
    message: "ics.ca.v1.CertAttributesSet",
    subjects: Subjects::Of(&[DEVICE_CERT]),
    opens_subject: false,
    authored_by: CA_ROLES,
    grantable: false,
};
pub static TRACE_ROUTE_SET: KindSpec = KindSpec {
    name: "trace-route-set",
    message: "ics.ca.v1.TraceRouteSet",
    subjects: Subjects::Of(&[DEVICE_CERT]),
    opens_subject: false,
    authored_by: CA_ROLES,
    grantable: false,
};
pub static TRACE_STATION_RECORDED: KindSpec = KindSpec {
    name: "trace-station-recorded",
    message: "ics.ca.v1.TraceStationRecorded",
    subjects: Subjects::Of(&[DEVICE_CERT]),
    opens_subject: false,
    authored_by: CA_ROLES,
    grantable: false,
};

/// Every device CA kind; `DeviceCa::kinds()` returns these.
pub static KINDS: [&KindSpec; 6] = [
    &DEVICE_CA_BOUND,
    &DEVICE_CERT_ISSUED,
    &DEVICE_CERT_REVOKED,
    &CERT_ATTRIBUTES_SET,
    &TRACE_ROUTE_SET,
    &TRACE_STATION_RECORDED,
];

/// The kinds an issuing CA key, registered as an author key, signs.
pub const ISSUING_KEY_KINDS: [&str; 2] = ["device-cert-issued", "device-cert-revoked"];

/// What a bound CA is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Purpose {
    Root,
    Factory,
    Operational,
}

impl Purpose {
    pub fn name(self) -> &'static str {
        match self {
            Purpose::Root => "root",
            Purpose::Factory => "factory",
            Purpose::Operational => "operational",
        }
    }

    pub fn from_name(name: &str) -> Option<Purpose> {
        [Purpose::Root, Purpose::Factory, Purpose::Operational]
            .into_iter()
            .find(|p| p.name() == name)
    }

    fn to_pb(self) -> pb::Purpose {
        match self {
            Purpose::Root => pb::Purpose::Root,
            Purpose::Factory => pb::Purpose::Factory,
            Purpose::Operational => pb::Purpose::Operational,
        }
    }
}

/// RFC 5280 5.3.1 CRLReason codes a device certificate may be revoked with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RevocationReason {
    Unspecified,
    KeyCompromise,
    AffiliationChanged,
    Superseded,
    CessationOfOperation,
    PrivilegeWithdrawn,
}

impl RevocationReason {
    pub const ALL: [RevocationReason; 6] = [
        RevocationReason::Unspecified,
        RevocationReason::KeyCompromise,
        RevocationReason::AffiliationChanged,
        RevocationReason::Superseded,
        RevocationReason::CessationOfOperation,
        RevocationReason::PrivilegeWithdrawn,
    ];

    pub fn code(self) -> u32 {
        match self {
            RevocationReason::Unspecified => 0,
            RevocationReason::KeyCompromise => 1,
            RevocationReason::AffiliationChanged => 3,
            RevocationReason::Superseded => 4,
            RevocationReason::CessationOfOperation => 5,
            RevocationReason::PrivilegeWithdrawn => 9,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RevocationReason::Unspecified => "unspecified",
            RevocationReason::KeyCompromise => "key-compromise",
            RevocationReason::AffiliationChanged => "affiliation-changed",
            RevocationReason::Superseded => "superseded",
            RevocationReason::CessationOfOperation => "cessation-of-operation",
            RevocationReason::PrivilegeWithdrawn => "privilege-withdrawn",
        }
    }

    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// The device CA payloads, one per kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaPayload {
    CaBound {
        certificate: Vec<u8>,
        purpose: Purpose,
        issuer: String,
    },
    CertIssued {
        certificate: Vec<u8>,
        csr: Vec<u8>,
        device_namespace: String,
        device: String,
        authenticated_by: String,
        renews: String,
    },
    CertRevoked {
        reason: RevocationReason,
        comment: String,
    },
    AttributesSet {
        set: Vec<(String, String)>,
        removed: Vec<String>,
    },
    RouteSet {
        stations: Vec<String>,
    },
    StationRecorded {
        station: String,
    },
}

fn parse<M: Message + Default>(kind: &KindSpec, bytes: &[u8]) -> Result<M, Refusal> {
    M::decode(bytes).map_err(|e| Refusal::Malformed(format!("{}: {e}", kind.message)))
}

/// Decodes the payload of one device CA kind.
pub fn decode(kind: &'static KindSpec, bytes: &[u8]) -> Result<CaPayload, Refusal> {
    let is = |k: &KindSpec| std::ptr::eq(kind, k);
    Ok(if is(&DEVICE_CA_BOUND) {
        let m: pb::DeviceCaBound = parse(kind, bytes)?;
        let purpose = match pb::Purpose::try_from(m.purpose) {
            Ok(pb::Purpose::Root) => Purpose::Root,
            Ok(pb::Purpose::Factory) => Purpose::Factory,
            Ok(pb::Purpose::Operational) => Purpose::Operational,
            _ => {
                return Err(Refusal::field(
                    "purpose",
                    "must be root, factory or operational",
                ));
            }
        };
        CaPayload::CaBound {
            certificate: m.certificate,
            purpose,
            issuer: m.issuer,
        }
    } else if is(&DEVICE_CERT_ISSUED) {
        let m: pb::DeviceCertIssued = parse(kind, bytes)?;
        CaPayload::CertIssued {
            certificate: m.certificate,
            csr: m.csr,
            device_namespace: m.device_namespace,
            device: m.device,
            authenticated_by: m.authenticated_by,
            renews: m.renews,
        }
    } else if is(&DEVICE_CERT_REVOKED) {
        let m: pb::DeviceCertRevoked = parse(kind, bytes)?;
        let reason = RevocationReason::from_code(m.reason_code).ok_or_else(|| {
            Refusal::field(
                "reason_code",
                format!(
                    "{} is not a CRLReason a device certificate is revoked with",
                    m.reason_code
                ),
            )
        })?;
        CaPayload::CertRevoked {
            reason,
            comment: m.comment,
        }
    } else if is(&CERT_ATTRIBUTES_SET) {
        let m: pb::CertAttributesSet = parse(kind, bytes)?;
        CaPayload::AttributesSet {
            set: m.set.into_iter().map(|a| (a.name, a.value)).collect(),
            removed: m.removed,
        }
    } else if is(&TRACE_ROUTE_SET) {
        let m: pb::TraceRouteSet = parse(kind, bytes)?;
        CaPayload::RouteSet {
            stations: m.stations,
        }
    } else if is(&TRACE_STATION_RECORDED) {
        let m: pb::TraceStationRecorded = parse(kind, bytes)?;
        CaPayload::StationRecorded { station: m.station }
    } else {
        return Err(Refusal::Malformed(format!(
            "{} is not a device CA kind",
            kind.name
        )));
    })
}

fn describe_certificate(der: &[u8]) -> Vec<(&'static str, Field)> {
    match ics_pki::ParsedCert::parse(der) {
        Ok(c) => vec![
            ("sha256", Field::text(c.fingerprint_hex())),
            ("serial", Field::text(c.serial.clone())),
            ("names", Field::List(c.holder_uris.clone())),
            ("not_after_ms", Field::Number(c.not_after_ms)),
        ],
        Err(_) => vec![
            ("sha256", Field::text(ics_pki::cert::fingerprint_hex(der))),
            ("serial", Field::Absent),
            ("names", Field::Absent),
            ("not_after_ms", Field::Absent),
        ],
    }
}

impl Payload for CaPayload {
    fn kind(&self) -> &'static KindSpec {
        match self {
            CaPayload::CaBound { .. } => &DEVICE_CA_BOUND,
            CaPayload::CertIssued { .. } => &DEVICE_CERT_ISSUED,
            CaPayload::CertRevoked { .. } => &DEVICE_CERT_REVOKED,
            CaPayload::AttributesSet { .. } => &CERT_ATTRIBUTES_SET,
            CaPayload::RouteSet { .. } => &TRACE_ROUTE_SET,
            CaPayload::StationRecorded { .. } => &TRACE_STATION_RECORDED,
        }
    }

    fn encode(&self) -> Vec<u8> {
        match self {
            CaPayload::CaBound {
                certificate,
                purpose,
                issuer,
            } => pb::DeviceCaBound {
                certificate: certificate.clone(),
                purpose: purpose.to_pb() as i32,
                issuer: issuer.clone(),
            }
            .encode_to_vec(),
            CaPayload::CertIssued {
                certificate,
                csr,
                device_namespace,
                device,
                authenticated_by,
                renews,
            } => pb::DeviceCertIssued {
                certificate: certificate.clone(),
                csr: csr.clone(),
                device_namespace: device_namespace.clone(),
                device: device.clone(),
                authenticated_by: authenticated_by.clone(),
                renews: renews.clone(),
            }
            .encode_to_vec(),
            CaPayload::CertRevoked { reason, comment } => pb::DeviceCertRevoked {
                reason_code: reason.code(),
                comment: comment.clone(),
            }
            .encode_to_vec(),
            CaPayload::AttributesSet { set, removed } => pb::CertAttributesSet {
                set: set
                    .iter()
                    .map(|(name, value)| pb::Attribute {
                        name: name.clone(),
                        value: value.clone(),
                    })
                    .collect(),
                removed: removed.clone(),
            }
            .encode_to_vec(),
            CaPayload::RouteSet { stations } => pb::TraceRouteSet {
                stations: stations.clone(),
            }
            .encode_to_vec(),
            CaPayload::StationRecorded { station } => pb::TraceStationRecorded {
                station: station.clone(),
            }
            .encode_to_vec(),
        }
    }

    fn describe(&self) -> Vec<(&'static str, Field)> {
        match self {
            CaPayload::CaBound {
                certificate,
                purpose,
                issuer,
            } => {
                let mut out = describe_certificate(certificate);
                out.push(("purpose", Field::text(purpose.name())));
                out.push((
                    "issuer",
                    Field::optional((!issuer.is_empty()).then_some(issuer.as_str())),
                ));
                out
            }
            CaPayload::CertIssued {
                certificate,
                device_namespace,
                device,
                authenticated_by,
                renews,
                ..
            } => {
                let mut out = describe_certificate(certificate);
                out.push((
                    "device_namespace",
                    Field::optional(
                        (!device_namespace.is_empty()).then_some(device_namespace.as_str()),
                    ),
                ));
                out.push(("device", Field::text(device)));
                out.push((
                    "authenticated_by",
                    Field::optional(
                        (!authenticated_by.is_empty()).then_some(authenticated_by.as_str()),
                    ),
                ));
                out.push((
                    "renews",
                    Field::optional((!renews.is_empty()).then_some(renews.as_str())),
                ));
                out
            }
            CaPayload::CertRevoked { reason, comment } => vec![
                ("reason", Field::text(reason.name())),
                ("comment", Field::text(comment)),
            ],
            CaPayload::AttributesSet { set, removed } => vec![
                ("set", Field::Map(set.clone())),
                ("removed", Field::List(removed.clone())),
            ],
            CaPayload::RouteSet { stations } => vec![("stations", Field::List(stations.clone()))],
            CaPayload::StationRecorded { station } => vec![("station", Field::text(station))],
        }
    }
}
