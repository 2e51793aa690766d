//! Code identities: release and status.

use crate::fixture::*;

#[test]
fn developer_releases_code_and_moves_it_through_its_lifecycle() {
    let mut p = Party::with_role("developer");
    let author = p.register_author(Algorithm::EcdsaP256Sha256, CODE_KINDS, T0 + 10_000_000);
    let (b, subject) = code_body(&author, "thermo-fw", "1.2.0", b"firmware image");
    p.apply(&event(&b, &[&author])).unwrap();
    let status = |p: &Party, to: CodeStatus| {
        let (seq, prev) = p.last(&subject);
        body(
            subject.clone(),
            seq,
            prev,
            author.key_id(),
            IdentityPayload::CodeStatusChanged {
                status: to,
                reason: String::new(),
            },
        )
    };
    for to in [
        CodeStatus::Deprecated,
        CodeStatus::Released,
        CodeStatus::Withdrawn,
    ] {
        p.apply(&event(&status(&p, to), &[&author])).unwrap();
    }
    // Withdrawn is final.
    let e = event(&status(&p, CodeStatus::Released), &[&author]);
    assert_eq!(p.refuse(&e).reason(), "INVALID_TRANSITION");
    assert!(p.state(&subject).summary().contains("status=withdrawn"));

    // The same name and version cannot name a second artifact.
    let (b2, _) = code_body(&author, "thermo-fw", "1.2.0", b"another image");
    assert_eq!(
        p.refuse(&event(&b2, &[&author])).reason(),
        "CODE_VERSION_TAKEN"
    );

    // The subject id must be the artifact's blake3 digest.
    let (mut b3, _) = code_body(&author, "thermo-fw", "1.3.0", b"third image");
    b3.subject.id = "00".repeat(32);
    assert!(matches!(
        p.refuse(&event(&b3, &[&author])),
        Refusal::InvalidSubject { .. }
    ));
}
