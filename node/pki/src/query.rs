//! What a TLS verifier asks the log: is this certificate one the party
//! issued, current, and whose; which CAs the party bound.

use ics_kernel::{CapState, SubjectRef};

use crate::state::{CertState, PkiState};
use crate::{Holder, Pki, TLS_CA, TLS_CERT};

/// The certificate with this SHA-256 fingerprint (hex), if the party issued it.
pub fn cert_by_fingerprint<'a>(pki: &'a CapState<Pki>, fingerprint: &str) -> Option<&'a CertState> {
    let serial = pki.index().by_fingerprint.get(fingerprint)?;
    match pki.subject(&SubjectRef::new(TLS_CERT, serial.clone())) {
        Some(PkiState::Cert(c)) => Some(c),
        _ => None,
    }
}

/// The bound CA certificates (DER), in subject order.
pub fn bound_cas(pki: &CapState<Pki>) -> Vec<&[u8]> {
    pki.subjects()
        .filter(|(s, _)| s.kind == TLS_CA)
        .filter_map(|(_, st)| match st {
            PkiState::Ca(ca) => Some(ca.certificate.as_slice()),
            PkiState::Cert(_) => None,
        })
        .collect()
}

/// A holder's certificates, newest expiry last.
pub fn certs_of<'a>(pki: &'a CapState<Pki>, holder: &Holder) -> Vec<(&'a str, &'a CertState)> {
    let mut out: Vec<(&str, &CertState)> = pki
        .index()
        .by_holder
        .get(holder)
        .into_iter()
        .flatten()
        .filter_map(
            |serial| match pki.subject_entry(&SubjectRef::new(TLS_CERT, serial.clone())) {
                Some((s, PkiState::Cert(c))) => Some((s.id.as_str(), c)),
                _ => None,
            },
        )
        .collect();
    out.sort_by_key(|(_, c)| c.not_after_ms);
    out
}
