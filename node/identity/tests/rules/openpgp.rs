//! OpenPGP forms: device certificates, endorsement certifications, escrowed revocations, code signatures.

use crate::fixture::*;

use sequoia_openpgp as sq;
use sq::parse::Parse;
use sq::policy::StandardPolicy;

use ics_identity::openpgp;
use ics_identity::payload::DeviceSignatures;

const T: i64 = T0 + 1_000;

fn attrs() -> Vec<(String, String)> {
    vec![
        ("manu".into(), "ACME".into()),
        ("model".into(), "thermo-3".into()),
        ("color".into(), "grey".into()),
    ]
}

fn registration(
    author: &SigningKey,
    device: &SigningKey,
    serial: &str,
    signatures: DeviceSignatures,
) -> (Event, SubjectRef) {
    let subject = SubjectRef::new(DEVICE, device.key_id().to_hex());
    let b = body(
        subject.clone(),
        0,
        None,
        author.key_id(),
        IdentityPayload::DeviceRegistered {
            serial: serial.into(),
            device_key: device.public_key(),
            attributes: attrs(),
            openpgp: Some(signatures),
        },
    );
    (event(&b, &[author]), subject)
}

fn certificate(p: &Party, s: &SubjectRef) -> (Vec<u8>, bool) {
    match openpgp_export(p.state(s)) {
        Some(OpenPgpExport::Certificate {
            binary, revoked, ..
        }) => (binary, revoked),
        other => panic!("{other:?}"),
    }
}

fn refused_field(r: Refusal) -> String {
    assert_eq!(
        r.reason(),
        "OPENPGP",
        "expected an OpenPGP refusal, got {r}"
    );
    // "OpenPGP <field>: <reason>"
    r.to_string()
        .strip_prefix("OpenPGP ")
        .expect("the message names OpenPGP")
        .to_string()
}

fn target(p: &Party, s: &SubjectRef) -> openpgp::CertificationTarget {
    openpgp::CertificationTarget::from_certificate(&certificate(p, s).0).unwrap()
}

#[test]
fn device_certificate_is_checked_assembled_and_revoked_on_stolen() {
    for alg in [Algorithm::Ed25519, Algorithm::EcdsaP256Sha256] {
        let mut p = Party::new();
        let author = p.register_author(alg, DEVICE_KINDS, T0 + 10_000_000);
        let device = SigningKey::generate(alg);
        let (sigs, escrow) = openpgp::sign_device(&device, &author, "SN-1", &attrs(), T).unwrap();
        let (e, s) = registration(&author, &device, "SN-1", sigs);
        p.apply(&e).unwrap();

        let (binary, revoked) = certificate(&p, &s);
        assert!(!revoked);
        let cert = sq::Cert::from_bytes(&binary).unwrap();
        let policy = StandardPolicy::new();
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs((T / 1000) as u64 + 1);
        let valid = cert.with_policy(&policy, at).expect("valid certificate");
        let uid = valid.userids().next().expect("the serial User ID");
        assert_eq!(uid.userid().value(), b"SN-1");
        // The manufacturer's certification: by the author key, with the draft's notations only.
        let certs: Vec<_> = uid.certifications().collect();
        assert_eq!(certs.len(), 1);
        let issuer = openpgp::party_key(&author.public_key());
        certs[0]
            .clone()
            .verify_userid_binding(&issuer, cert.primary_key().key(), uid.userid())
            .expect("manufacturer certification verifies");
        let names: Vec<_> = certs[0]
            .notation_data()
            .filter(|n| n.flags().human_readable())
            .map(|n| n.name().to_string())
            .collect();
        assert_eq!(names, ["manu", "model"]);

        // A stolen report publishes the escrowed "compromised" revocation
        // (the retired one, or bytes the registration did not commit to, are refused);
        // recovery does not take it back.
        let report = |p: &Party, status: DeviceStatus, revocation: &[u8]| {
            p.on_subject(
                &s,
                &author,
                IdentityPayload::DeviceStatusChanged {
                    status,
                    reason: "".into(),
                    openpgp_revocation: Some(revocation.to_vec()),
                },
            )
        };
        let why = refused_field(p.refuse(&report(&p, DeviceStatus::Stolen, &escrow.retired)));
        assert!(
            why.contains("the compromised revocation, not the retired"),
            "{why}"
        );
        let mut forged = escrow.compromised.clone();
        *forged.last_mut().unwrap() ^= 1;
        let why = refused_field(p.refuse(&report(&p, DeviceStatus::Stolen, &forged)));
        assert!(why.contains("not one of the revocations"), "{why}");
        let why = refused_field(p.refuse(&report(&p, DeviceStatus::InUse, &escrow.compromised)));
        assert!(why.contains("publishes no revocation"), "{why}");
        assert!(!certificate(&p, &s).1, "nothing published by refusals");
        p.apply(&report(&p, DeviceStatus::Stolen, &escrow.compromised))
            .unwrap();
        let (binary, revoked) = certificate(&p, &s);
        assert!(revoked);
        let cert = sq::Cert::from_bytes(&binary).unwrap();
        assert!(matches!(
            cert.revocation_status(&policy, at),
            sq::types::RevocationStatus::Revoked(_)
        ));
        let recovered = p.on_subject(
            &s,
            &author,
            IdentityPayload::DeviceStatusChanged {
                status: DeviceStatus::InUse,
                reason: "found".into(),
                openpgp_revocation: None,
            },
        );
        p.apply(&recovered).unwrap();
        assert!(certificate(&p, &s).1, "a published revocation stays");
    }
}

#[test]
fn forged_or_mismatched_device_signatures_are_refused() {
    let mut p = Party::new();
    let author = p.register_author(Algorithm::Ed25519, DEVICE_KINDS, T0 + 10_000_000);
    let device = SigningKey::generate(Algorithm::Ed25519);
    let (good, _) = openpgp::sign_device(&device, &author, "SN-1", &attrs(), T).unwrap();
    let refused = |p: &mut Party, serial: &str, sigs: DeviceSignatures| {
        refused_field(p.refuse(&registration(&author, &device, serial, sigs).0))
    };

    // A certification by some other key than the registrant's.
    let forger = SigningKey::generate(Algorithm::Ed25519);
    let (forged, _) = openpgp::sign_device(&device, &forger, "SN-1", &attrs(), T).unwrap();
    let sigs = DeviceSignatures {
        certification: forged.certification,
        ..good.clone()
    };
    let why = refused(&mut p, "SN-1", sigs);
    assert!(
        why.starts_with("openpgp.certification: does not verify"),
        "{why}"
    );

    // Notations that are not the event's attributes.
    let other_attrs = vec![("model".to_string(), "valve-1".to_string())];
    let (wrong, _) = openpgp::sign_device(&device, &author, "SN-1", &other_attrs, T).unwrap();
    let sigs = DeviceSignatures {
        certification: wrong.certification,
        ..good.clone()
    };
    let why = refused(&mut p, "SN-1", sigs);
    assert!(why.contains("do not match the event's"), "{why}");

    // A binding by another device's key, or for another serial.
    let other = SigningKey::generate(Algorithm::Ed25519);
    let (theirs, _) = openpgp::sign_device(&other, &author, "SN-1", &attrs(), T).unwrap();
    let sigs = DeviceSignatures {
        self_signature: theirs.self_signature,
        ..good.clone()
    };
    let why = refused(&mut p, "SN-1", sigs);
    assert!(
        why.starts_with("openpgp.self_signature: does not verify"),
        "{why}"
    );
    let why = refused(&mut p, "SN-2", good.clone());
    assert!(why.contains("does not verify"), "{why}");

    // Signatures made at another time than the event's.
    let (late, _) = openpgp::sign_device(&device, &author, "SN-1", &attrs(), T + 5_000).unwrap();
    let why = refused(&mut p, "SN-1", late);
    assert!(why.contains("creation time"), "{why}");

    // Not a packet at all, or two packets.
    let sigs = DeviceSignatures {
        self_signature: b"not openpgp".to_vec(),
        ..good.clone()
    };
    let why = refused(&mut p, "SN-1", sigs);
    assert!(why.starts_with("openpgp.self_signature:"), "{why}");
    let mut doubled = good.self_signature.clone();
    doubled.extend_from_slice(&good.self_signature);
    let sigs = DeviceSignatures {
        self_signature: doubled,
        ..good.clone()
    };
    let why = refused(&mut p, "SN-1", sigs);
    assert!(why.contains("Excess data after packet"), "{why}");

    // The genuine set is accepted after all that.
    p.apply(&registration(&author, &device, "SN-1", good).0)
        .unwrap();
}

#[test]
fn endorsement_certifications_and_their_withdrawal() {
    let mut p = Party::new();
    let author = p.register_author(Algorithm::Ed25519, DEVICE_KINDS, T0 + 10_000_000);
    let device = SigningKey::generate(Algorithm::Ed25519);
    let (sigs, _) = openpgp::sign_device(&device, &author, "SN-1", &attrs(), T).unwrap();
    let (e, s) = registration(&author, &device, "SN-1", sigs);
    p.apply(&e).unwrap();
    let tuv = p.recognize("tuv", "certifier");
    let evil = p.recognize("evil", "certifier");
    let kinds = ["endorsed", "endorsement-withdrawn"];
    for party in ["tuv", "evil"] {
        let e = p.on_subject(&s, &p.root, grant(party, &kinds));
        p.apply(&e).unwrap();
    }
    let not_after = T0 + 5_000_000;
    let t = target(&p, &s);
    let certified = |signer: &SigningKey, scope: &str| IdentityPayload::Endorsed {
        kind: EndorsementKind::TrustLabel,
        scope: "medical".into(),
        not_after_ms: not_after,
        openpgp_certification: Some(
            openpgp::certify_endorsement(
                signer,
                &t,
                EndorsementKind::TrustLabel,
                scope,
                T,
                not_after,
            )
            .unwrap(),
        ),
    };

    // Certified by another party's key, or with another scope: refused.
    let e = p.on_subject(&s, &tuv, certified(&evil, "medical"));
    assert!(refused_field(p.refuse(&e)).contains("does not verify"));
    let e = p.on_subject(&s, &tuv, certified(&tuv, "automotive"));
    assert!(refused_field(p.refuse(&e)).contains("notations"));

    let label = p.on_subject(&s, &tuv, certified(&tuv, "medical"));
    p.apply(&label).unwrap();
    let cert = sq::Cert::from_bytes(&certificate(&p, &s).0).unwrap();
    let uid = cert.userids().next().unwrap();
    assert_eq!(uid.certifications().count(), 2, "manufacturer and tuv");

    // Withdrawal needs a certification revocation by the certifying key.
    let withdraw = |revocation: Option<Vec<u8>>| IdentityPayload::EndorsementWithdrawn {
        endorsement: label.id,
        reason: "audit lapsed".into(),
        openpgp_revocation: revocation,
    };
    let e = p.on_subject(&s, &tuv, withdraw(None));
    assert_eq!(p.refuse(&e).reason(), "NOT_WITHDRAWABLE");
    let by_evil = openpgp::revoke_endorsement(&evil, &t, "x", T).unwrap();
    let e = p.on_subject(&s, &tuv, withdraw(Some(by_evil)));
    assert!(refused_field(p.refuse(&e)).contains("certifying key"));
    let revocation = openpgp::revoke_endorsement(&tuv, &t, "audit lapsed", T).unwrap();
    p.apply(&p.on_subject(&s, &tuv, withdraw(Some(revocation.clone()))))
        .unwrap();
    let cert = sq::Cert::from_bytes(&certificate(&p, &s).0).unwrap();
    let uid = cert.userids().next().unwrap();
    assert_eq!(uid.other_revocations().count(), 1);

    // A withdrawn endorsement is not withdrawn (or reused) again.
    let e = p.on_subject(&s, &tuv, withdraw(Some(revocation)));
    assert_eq!(p.refuse(&e).reason(), "NOT_WITHDRAWABLE");
}

#[test]
fn certified_endorsements_have_one_live_per_key_a_real_expiry_and_a_live_certificate() {
    let mut p = Party::new();
    let author = p.register_author(Algorithm::Ed25519, DEVICE_KINDS, T0 + 10_000_000);
    let integrator = p.register_author(
        Algorithm::Ed25519,
        &["endorsed", "endorsement-withdrawn"],
        T0 + 10_000_000,
    );
    let device = SigningKey::generate(Algorithm::Ed25519);
    let (sigs, escrow) = openpgp::sign_device(&device, &author, "SN-1", &attrs(), T).unwrap();
    let (e, s) = registration(&author, &device, "SN-1", sigs);
    p.apply(&e).unwrap();
    let t = target(&p, &s);
    let endorse_until = |not_after: i64| IdentityPayload::Endorsed {
        kind: EndorsementKind::IntegratorApproval,
        scope: String::new(),
        not_after_ms: not_after,
        openpgp_certification: Some(
            openpgp::certify_endorsement(
                &integrator,
                &t,
                EndorsementKind::IntegratorApproval,
                "",
                T,
                not_after,
            )
            .unwrap(),
        ),
    };

    // Expiring within the event's second would be "never expires" in OpenPGP.
    let e = p.on_subject(&s, &integrator, endorse_until(T + 500));
    assert!(refused_field(p.refuse(&e)).contains("at least a second"));
    let first = p.on_subject(&s, &integrator, endorse_until(T0 + 5_000_000));
    p.apply(&first).unwrap();
    // A second live certification by the same key would fall with the first's revocation.
    let e = p.on_subject(&s, &integrator, endorse_until(T0 + 6_000_000));
    assert!(refused_field(p.refuse(&e)).contains("already has a live"));

    // Once the certifying key is revoked, the party withdraws without a revocation.
    let withdraw = |p: &Party| {
        p.on_subject(
            &s,
            &p.root,
            IdentityPayload::EndorsementWithdrawn {
                endorsement: first.id,
                reason: "integrator changed".into(),
                openpgp_revocation: None,
            },
        )
    };
    let e = withdraw(&p);
    assert_eq!(p.refuse(&e).reason(), "NOT_WITHDRAWABLE");
    let revoke = {
        let subject = SubjectRef::new(AUTHOR_KEY, integrator.key_id().to_hex());
        p.on_subject(
            &subject,
            &p.root,
            PartyPayload::AuthorKeyRevoked {
                reason: "laptop lost".into(),
            },
        )
    };
    p.apply(&revoke).unwrap();
    let e = withdraw(&p);
    p.apply(&e).unwrap();

    // A revoked certificate takes no new certifications.
    let stolen = p.on_subject(
        &s,
        &author,
        IdentityPayload::DeviceStatusChanged {
            status: DeviceStatus::Stolen,
            reason: String::new(),
            openpgp_revocation: Some(escrow.compromised.clone()),
        },
    );
    p.apply(&stolen).unwrap();
    let tuv = p.recognize("tuv", "certifier");
    let g = p.on_subject(&s, &p.root, grant("tuv", &["endorsed"]));
    p.apply(&g).unwrap();
    let late = IdentityPayload::Endorsed {
        kind: EndorsementKind::TrustLabel,
        scope: String::new(),
        not_after_ms: T0 + 5_000_000,
        openpgp_certification: Some(
            openpgp::certify_endorsement(
                &tuv,
                &t,
                EndorsementKind::TrustLabel,
                "",
                T,
                T0 + 5_000_000,
            )
            .unwrap(),
        ),
    };
    let e = p.on_subject(&s, &tuv, late);
    assert!(refused_field(p.refuse(&e)).contains("revoked or its key rotated out"));
}

#[test]
fn device_rotation_may_publish_either_escrowed_revocation() {
    let mut p = Party::new();
    let author = p.register_author(
        Algorithm::Ed25519,
        &["device-registered", "device-status-changed", "key-rotated"],
        T0 + 10_000_000,
    );
    let device = SigningKey::generate(Algorithm::Ed25519);
    let (sigs, escrow) = openpgp::sign_device(&device, &author, "SN-1", &attrs(), T).unwrap();
    let (e, s) = registration(&author, &device, "SN-1", sigs);
    p.apply(&e).unwrap();
    let new = SigningKey::generate(Algorithm::Ed25519);
    let rotate = |p: &Party, revocation: Vec<u8>| {
        rotation(p, &s, &author, &new, &[&author, &new], Some(revocation))
    };
    let why = refused_field(p.refuse(&rotate(&p, b"junk".to_vec())));
    assert!(why.contains("not one of the revocations"), "{why}");
    p.apply(&rotate(&p, escrow.compromised.clone())).unwrap();
    let (binary, revoked) = certificate(&p, &s);
    assert!(revoked);
    let cert = sq::Cert::from_bytes(&binary).unwrap();
    let policy = StandardPolicy::new();
    assert!(matches!(
        cert.revocation_status(&policy, None),
        sq::types::RevocationStatus::Revoked(_)
    ));
}

#[test]
fn code_release_signature_must_carry_the_artifact_digest() {
    let mut p = Party::with_role("developer");
    let author = p.register_author(Algorithm::Ed25519, CODE_KINDS, T0 + 10_000_000);
    let release = |identity: CodeIdentity| {
        let subject = SubjectRef::new(CODE, hex::encode(identity.blake3));
        event(
            &body(
                subject,
                0,
                None,
                author.key_id(),
                IdentityPayload::CodeReleased(identity),
            ),
            &[&author],
        )
    };
    let mut identity = CodeIdentity::of_artifact("fw", "1.0.0", b"firmware", None);
    let other = CodeIdentity::of_artifact("fw", "1.0.0", b"other firmware", None);
    identity.openpgp_signature = Some(openpgp::sign_code(&author, &other, T).unwrap());
    let why = refused_field(p.refuse(&release(identity.clone())));
    assert!(why.contains("hash notation"), "{why}");
    identity.openpgp_signature = Some(openpgp::sign_code(&author, &identity, T).unwrap());
    p.apply(&release(identity.clone())).unwrap();
    let subject = SubjectRef::new(CODE, hex::encode(identity.blake3));
    assert!(matches!(
        openpgp_export(p.state(&subject)),
        Some(OpenPgpExport::Signature { .. })
    ));
}
