//! The device CA's own refusals. Each becomes a kernel `Refusal::Rule` whose
//! reason is the variant's name in capitals.

use ics_kernel::{Refusal, RefusalClass};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CaRefusal {
    #[error("certificate: {0}")]
    BadCertificate(String),
    #[error("certificate request: {0}")]
    BadCsr(String),
    #[error("only the party root key binds a device CA; {0} is not it")]
    NotRootKey(String),
    #[error(
        "the issuing CA key {0} must be a live author key of this party allowed device-cert-issued"
    )]
    CaKeyNotAuthor(String),
    #[error("no device CA of this party is bound to key {0}")]
    CaNotBound(String),
    #[error("{0}")]
    WrongPurpose(String),
    #[error("unknown device {0}")]
    UnknownDevice(String),
    #[error("{0}")]
    CsrKeyMismatch(String),
    #[error("the request names {found:?}, not the device's serial {serial:?}")]
    CsrSubjectMismatch { found: String, serial: String },
    #[error("device {device} is {status}: no certificate is issued to it")]
    DeviceNotEnrollable { device: String, status: String },
    #[error(
        "the requested key already identifies {0}: an operational key is fresh or the device's own"
    )]
    KeyNotFresh(String),
    #[error(
        "{subject} may be revoked only by the party root key or its issuing CA key, not {author}"
    )]
    NotIssuer { subject: String, author: String },
    #[error("{0} is already revoked")]
    AlreadyRevoked(String),
    #[error("{0}")]
    BadRenewal(String),
    #[error("{0} has no route of way stations")]
    NoRoute(String),
    #[error("{station:?} is not a way station of {subject}'s route")]
    UnknownStation { subject: String, station: String },
}

impl CaRefusal {
    pub fn reason(&self) -> &'static str {
        use CaRefusal::*;
        match self {
            BadCertificate(_) => "BAD_CERTIFICATE",
            BadCsr(_) => "BAD_CSR",
            NotRootKey(_) => "NOT_ROOT_KEY",
            CaKeyNotAuthor(_) => "CA_KEY_NOT_AUTHOR",
            CaNotBound(_) => "CA_NOT_BOUND",
            WrongPurpose(_) => "WRONG_PURPOSE",
            UnknownDevice(_) => "UNKNOWN_DEVICE",
            CsrKeyMismatch(_) => "CSR_KEY_MISMATCH",
            CsrSubjectMismatch { .. } => "CSR_SUBJECT_MISMATCH",
            DeviceNotEnrollable { .. } => "DEVICE_NOT_ENROLLABLE",
            KeyNotFresh(_) => "KEY_NOT_FRESH",
            NotIssuer { .. } => "NOT_ISSUER",
            AlreadyRevoked(_) => "ALREADY_REVOKED",
            BadRenewal(_) => "BAD_RENEWAL",
            NoRoute(_) => "NO_ROUTE",
            UnknownStation { .. } => "UNKNOWN_STATION",
        }
    }

    pub fn class(&self) -> RefusalClass {
        use CaRefusal::*;
        match self {
            BadCertificate(_)
            | BadCsr(_)
            | CsrKeyMismatch(_)
            | CsrSubjectMismatch { .. }
            | BadRenewal(_)
            | UnknownStation { .. } => RefusalClass::InvalidArgument,
            NotRootKey(_) | NotIssuer { .. } | WrongPurpose(_) => RefusalClass::PermissionDenied,
            CaKeyNotAuthor(_)
            | CaNotBound(_)
            | UnknownDevice(_)
            | DeviceNotEnrollable { .. }
            | KeyNotFresh(_)
            | AlreadyRevoked(_)
            | NoRoute(_) => RefusalClass::FailedPrecondition,
        }
    }

    pub(crate) fn bad(reason: impl std::fmt::Display) -> Refusal {
        CaRefusal::BadCertificate(reason.to_string()).into()
    }
}

impl From<CaRefusal> for Refusal {
    fn from(r: CaRefusal) -> Refusal {
        Refusal::Rule {
            reason: r.reason().to_string(),
            class: r.class(),
            message: r.to_string(),
        }
    }
}
