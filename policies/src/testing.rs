//! Descriptors for tests (feature `testing`): a peer entry with a real TLS
//! CA certificate, and the domain of a manufacturer's devices.

/// A PEM CA certificate for `party`'s TLS PKI (a fixed key: tests only).
pub fn peer_ca_pem(party: &str, now_ms: i64) -> String {
    let key = p256::ecdsa::SigningKey::from_slice(&[5u8; 32]).expect("a P-256 scalar");
    let der = ics_pki::cert::issue_ca(party, &key, now_ms, std::time::Duration::from_secs(86_400))
        .expect("a CA certificate");
    der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, &der).expect("PEM")
}

/// The head of `party`'s descriptor `version` naming `peer` (at
/// `127.0.0.1:7600`) and the domain `acme-devices` (devices made by acme);
/// rules follow.
pub fn descriptor_head(party: &str, version: u64, peer: &str, now_ms: i64) -> String {
    format!(
        r#"party = "{party}"
version = {version}

[[peer]]
name = "{peer}"
endpoints = ["127.0.0.1:7600"]
tls_ca = """
{ca}"""

[[domain]]
name = "acme-devices"
subjects = ["device"]
manufacturer = "acme"
"#,
        ca = peer_ca_pem(peer, now_ms)
    )
}
