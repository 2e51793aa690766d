//! The identity capability's own refusals. Each becomes a kernel
//! `Refusal::Rule` whose reason is the variant's name in capitals.

use ics_kernel::{Refusal, RefusalClass};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityRefusal {
    #[error("key rotation must also be signed by the new key {0} (proof of possession)")]
    MissingNewKeySignature(String),
    #[error("{subject}: status {from} may not become {to}")]
    InvalidTransition {
        subject: String,
        from: String,
        to: String,
    },
    #[error("code {name} version {version} is already registered as {subject}")]
    CodeVersionTaken {
        name: String,
        version: String,
        subject: String,
    },
    #[error("endorsement {endorsement} on {subject} cannot be withdrawn: {reason}")]
    NotWithdrawable {
        subject: String,
        endorsement: String,
        reason: String,
    },
    #[error("service name {name} is already registered as {subject}")]
    ServiceNameTaken { name: String, subject: String },
    #[error("serial {serial} is already registered as {subject}")]
    SerialTaken { serial: String, subject: String },
    #[error("OpenPGP {field}: {reason}")]
    OpenPgp { field: String, reason: String },
}

impl IdentityRefusal {
    pub fn reason(&self) -> &'static str {
        use IdentityRefusal::*;
        match self {
            MissingNewKeySignature(_) => "MISSING_NEW_KEY_SIGNATURE",
            InvalidTransition { .. } => "INVALID_TRANSITION",
            CodeVersionTaken { .. } => "CODE_VERSION_TAKEN",
            NotWithdrawable { .. } => "NOT_WITHDRAWABLE",
            ServiceNameTaken { .. } => "SERVICE_NAME_TAKEN",
            SerialTaken { .. } => "SERIAL_TAKEN",
            OpenPgp { .. } => "OPENPGP",
        }
    }

    pub fn class(&self) -> RefusalClass {
        use IdentityRefusal::*;
        match self {
            MissingNewKeySignature(_) => RefusalClass::Unauthenticated,
            InvalidTransition { .. } | NotWithdrawable { .. } => RefusalClass::FailedPrecondition,
            CodeVersionTaken { .. } | ServiceNameTaken { .. } | SerialTaken { .. } => {
                RefusalClass::AlreadyExists
            }
            OpenPgp { .. } => RefusalClass::InvalidArgument,
        }
    }

    pub(crate) fn openpgp(field: &str, reason: impl Into<String>) -> Refusal {
        IdentityRefusal::OpenPgp {
            field: field.to_string(),
            reason: reason.into(),
        }
        .into()
    }
}

impl From<IdentityRefusal> for Refusal {
    fn from(r: IdentityRefusal) -> Refusal {
        Refusal::Rule {
            reason: r.reason().to_string(),
            class: r.class(),
            message: r.to_string(),
        }
    }
}

impl From<crate::openpgp::OpenPgpError> for Refusal {
    fn from(e: crate::openpgp::OpenPgpError) -> Refusal {
        IdentityRefusal::openpgp(e.field, e.reason)
    }
}

/// A status change the subject's lifecycle allows, or the refusal naming it.
pub(crate) fn check_transition(
    subject: &str,
    allowed: bool,
    from: &str,
    to: &str,
) -> Result<(), Refusal> {
    if allowed {
        return Ok(());
    }
    Err(IdentityRefusal::InvalidTransition {
        subject: subject.to_string(),
        from: from.to_string(),
        to: to.to_string(),
    }
    .into())
}
