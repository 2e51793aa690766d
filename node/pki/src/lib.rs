//! The party PKI capability: the X.509 CA a party's cluster runs TLS under,
//! bound to the party by its root key, and the node and operator
//! certificates that CA issued and revoked — every replica and every peer
//! that reads the log learns the party's trust anchor and who holds a
//! current certificate.
//!
//! `cert.rs` reads and issues certificates; `payload.rs` lists the kinds as
//! data with their protobuf form (`proto/ics/pki/v1`); `query.rs` answers
//! what a TLS verifier asks (is this certificate current, of whom).

pub mod cert;
pub mod payload;
pub mod query;
pub mod refusal;
pub mod state;

use ics_kernel::capability::{Accepted, Capability, Ctx, KindSpec};
use ics_kernel::{Algorithm, KeyId, PublicKey, Refusal, SubjectRef};

pub use cert::{CertError, Holder, LeafNames, ParsedCert};
pub use payload::PkiPayload;
pub use refusal::PkiRefusal;
pub use state::{CaState, CertState, PkiIndex, PkiState, Revocation};

pub const TLS_CA: &str = "tls-ca";
pub const TLS_CERT: &str = "tls-cert";

/// The longest a node or operator certificate may be valid: they are
/// short-lived and renewed, so a lost key stops working on its own.
pub const MAX_LEAF_LIFETIME_MS: i64 = 31 * 24 * 3600 * 1000;
/// How far a certificate's start may lie ahead of the event that records it.
pub const MAX_NOT_BEFORE_AHEAD_MS: i64 = 5 * 60 * 1000;

/// The party PKI capability.
pub struct Pki;

impl Capability for Pki {
    const NAME: &'static str = "pki";
    const VERSION: u32 = 1;
    type Payload = PkiPayload;
    type Subject = PkiState;
    type Index = PkiIndex;

    fn subject_kinds() -> &'static [&'static str] {
        &[TLS_CA, TLS_CERT]
    }

    fn kinds() -> &'static [&'static KindSpec] {
        &payload::KINDS
    }

    fn decode(kind: &'static KindSpec, bytes: &[u8]) -> Result<PkiPayload, Refusal> {
        payload::decode(kind, bytes)
    }

    fn decide(
        ctx: &Ctx<'_>,
        current: Option<&PkiState>,
        payload: &PkiPayload,
    ) -> Result<Accepted<PkiState>, Refusal> {
        match payload {
            PkiPayload::TlsCaBound { certificate } => bind_ca(ctx, certificate),
            PkiPayload::TlsCertIssued { certificate } => issue(ctx, certificate),
            PkiPayload::TlsCertRevoked { reason } => revoke(ctx, current, reason),
        }
    }

    fn index(
        index: &mut PkiIndex,
        subject: &SubjectRef,
        _before: Option<&PkiState>,
        after: &PkiState,
    ) {
        index.update(&subject.id, after);
    }

    fn summary(subject: &PkiState) -> String {
        subject.summary()
    }

    fn status(subject: &PkiState) -> Option<&'static str> {
        subject.status()
    }
}

fn p256_key(sec1: &[u8]) -> Result<PublicKey, Refusal> {
    PublicKey::new(Algorithm::EcdsaP256Sha256, sec1.to_vec()).map_err(PkiRefusal::bad)
}

fn check_valid_at(cert: &ParsedCert, time_ms: i64) -> Result<(), Refusal> {
    match cert.not_valid_at(time_ms, MAX_NOT_BEFORE_AHEAD_MS) {
        Some(why) => Err(PkiRefusal::bad(why)),
        None => Ok(()),
    }
}

fn bind_ca(ctx: &Ctx<'_>, der: &[u8]) -> Result<Accepted<PkiState>, Refusal> {
    let party = ctx.party();
    if ctx.body().author != party.root_key {
        return Err(PkiRefusal::NotRootKey(ctx.body().author.to_string()).into());
    }
    let cert = ParsedCert::parse(der).map_err(PkiRefusal::bad)?;
    if !cert.is_ca || !cert.key_usage_cert_sign {
        return Err(PkiRefusal::bad(
            "a TLS CA certificate needs basicConstraints CA and keyCertSign",
        ));
    }
    if cert.issuer != cert.subject || !cert.signed_by(&cert.public_key) {
        return Err(PkiRefusal::bad("a TLS CA certificate must be self-signed"));
    }
    if !cert.holder_uris.is_empty() {
        return Err(PkiRefusal::bad("a TLS CA certificate names no holder"));
    }
    check_valid_at(&cert, ctx.time_ms())?;
    let key_id = p256_key(&cert.public_key)?.id();
    if ctx.subject().id != key_id.to_hex() {
        return Err(Refusal::InvalidSubject {
            subject: ctx.subject().to_string(),
            reason: format!("a TLS CA's subject id must be its key's id {key_id}"),
        });
    }
    let is_ca_author = ctx.key(&key_id).is_some_and(|k| {
        k.party == party.name
            && !k.revoked
            && k.not_after_ms.is_none_or(|t| t > ctx.time_ms())
            && k.allowed_kinds
                .as_ref()
                .is_some_and(|kinds| kinds.contains(payload::TLS_CERT_ISSUED.name))
    });
    if !is_ca_author {
        return Err(PkiRefusal::CaKeyNotAuthor(key_id.to_string()).into());
    }
    Ok(Accepted {
        subject: PkiState::Ca(CaState {
            certificate: der.to_vec(),
            fingerprint: cert.fingerprint_hex(),
            not_after_ms: cert.not_after_ms,
        }),
        claims: Vec::new(),
    })
}

fn issue(ctx: &Ctx<'_>, der: &[u8]) -> Result<Accepted<PkiState>, Refusal> {
    let party = ctx.party();
    let author = ctx.body().author;
    let ca_subject = SubjectRef::new(TLS_CA, author.to_hex());
    let Some(PkiState::Ca(ca)) = ctx.read::<Pki>(&ca_subject) else {
        return Err(PkiRefusal::CaNotBound(author.to_string()).into());
    };
    let ca_cert = ParsedCert::parse(&ca.certificate).map_err(PkiRefusal::bad)?;
    let cert = ParsedCert::parse(der).map_err(PkiRefusal::bad)?;
    if ctx.subject().id != cert.serial {
        return Err(Refusal::InvalidSubject {
            subject: ctx.subject().to_string(),
            reason: format!(
                "a TLS certificate's subject id must be its serial number {}",
                cert.serial
            ),
        });
    }
    if cert.is_ca {
        return Err(PkiRefusal::bad(
            "a node or operator certificate is not a CA",
        ));
    }
    if cert.issuer != ca_cert.subject || !cert.signed_by(&ca_cert.public_key) {
        return Err(PkiRefusal::bad(format!(
            "not issued by the TLS CA of key {author}"
        )));
    }
    let (holder_party, holder) = cert.holder().map_err(PkiRefusal::bad)?;
    if holder_party != party.name {
        return Err(PkiRefusal::bad(format!(
            "names party {holder_party:?}, not {:?}",
            party.name
        )));
    }
    let usages_ok = cert.key_usage_digital_signature
        && cert.client_auth
        && (cert.server_auth || !matches!(holder, Holder::Node(_)));
    if !usages_ok {
        return Err(PkiRefusal::bad(
            "needs digitalSignature and clientAuth (and serverAuth for a node)",
        ));
    }
    check_valid_at(&cert, ctx.time_ms())?;
    if cert.not_after_ms - cert.not_before_ms > MAX_LEAF_LIFETIME_MS {
        return Err(PkiRefusal::bad(format!(
            "valid for more than {} days",
            MAX_LEAF_LIFETIME_MS / 86_400_000
        )));
    }
    if cert.not_after_ms > ca.not_after_ms {
        return Err(PkiRefusal::bad("valid beyond its CA"));
    }
    Ok(Accepted {
        subject: PkiState::Cert(CertState {
            certificate: der.to_vec(),
            holder,
            ca: author.to_hex(),
            fingerprint: cert.fingerprint_hex(),
            not_before_ms: cert.not_before_ms,
            not_after_ms: cert.not_after_ms,
            revoked: None,
        }),
        claims: Vec::new(),
    })
}

fn revoke(
    ctx: &Ctx<'_>,
    current: Option<&PkiState>,
    reason: &str,
) -> Result<Accepted<PkiState>, Refusal> {
    let subject = ctx.subject().to_string();
    let Some(PkiState::Cert(cert)) = current else {
        return Err(Refusal::UnknownSubject(subject));
    };
    ctx.limits.check_text("reason", reason)?;
    let author = ctx.body().author;
    let issuer = KeyId::from_hex(&cert.ca);
    if author != ctx.party().root_key && Some(author) != issuer {
        return Err(PkiRefusal::NotIssuer {
            subject,
            author: author.to_string(),
        }
        .into());
    }
    if cert.revoked.is_some() {
        return Err(PkiRefusal::AlreadyRevoked(subject).into());
    }
    let mut next = cert.clone();
    next.revoked = Some(Revocation {
        reason: reason.to_string(),
        time_ms: ctx.time_ms(),
    });
    Ok(Accepted {
        subject: PkiState::Cert(next),
        claims: Vec::new(),
    })
}
