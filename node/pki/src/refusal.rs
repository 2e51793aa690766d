//! The PKI capability's own refusals. Each becomes a kernel `Refusal::Rule`
//! whose reason is the variant's name in capitals.

use ics_kernel::{Refusal, RefusalClass};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PkiRefusal {
    #[error("certificate: {0}")]
    BadCertificate(String),
    #[error("only the party root key binds a TLS CA; {0} is not it")]
    NotRootKey(String),
    #[error("the CA key {0} must be a live author key of this party allowed tls-cert-issued")]
    CaKeyNotAuthor(String),
    #[error("no TLS CA of this party is bound to key {0}")]
    CaNotBound(String),
    #[error(
        "{subject} may be revoked only by the party root key or its issuing CA key, not {author}"
    )]
    NotIssuer { subject: String, author: String },
    #[error("{0} is already revoked")]
    AlreadyRevoked(String),
}

impl PkiRefusal {
    pub fn reason(&self) -> &'static str {
        use PkiRefusal::*;
        match self {
            BadCertificate(_) => "BAD_CERTIFICATE",
            NotRootKey(_) => "NOT_ROOT_KEY",
            CaKeyNotAuthor(_) => "CA_KEY_NOT_AUTHOR",
            CaNotBound(_) => "CA_NOT_BOUND",
            NotIssuer { .. } => "NOT_ISSUER",
            AlreadyRevoked(_) => "ALREADY_REVOKED",
        }
    }

    pub fn class(&self) -> RefusalClass {
        use PkiRefusal::*;
        match self {
            BadCertificate(_) => RefusalClass::InvalidArgument,
            NotRootKey(_) | NotIssuer { .. } => RefusalClass::PermissionDenied,
            CaKeyNotAuthor(_) | CaNotBound(_) | AlreadyRevoked(_) => {
                RefusalClass::FailedPrecondition
            }
        }
    }

    pub(crate) fn bad(reason: impl std::fmt::Display) -> Refusal {
        PkiRefusal::BadCertificate(reason.to_string()).into()
    }
}

impl From<PkiRefusal> for Refusal {
    fn from(r: PkiRefusal) -> Refusal {
        Refusal::Rule {
            reason: r.reason().to_string(),
            class: r.class(),
            message: r.to_string(),
        }
    }
}
