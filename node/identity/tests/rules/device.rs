//! Devices: registration, status lifecycle, unique serials, record caps, one key one identity.

use crate::fixture::*;

#[test]
fn device_lifecycle_with_both_algorithms() {
    for alg in [Algorithm::Ed25519, Algorithm::EcdsaP256Sha256] {
        let mut p = Party::new();
        let author = p.register_author(alg, DEVICE_KINDS, T0 + 10_000_000);
        let (b, subject) = p.device_body(&author, "SN-1");
        let out = p.apply(&event(&b, &[&author])).unwrap();
        assert_eq!(out[0].index, 3);
        for status in [
            DeviceStatus::InUse,
            DeviceStatus::Stolen,
            DeviceStatus::InUse,
            DeviceStatus::Retired,
        ] {
            p.apply(&event(
                &p.status_body(&author, &subject, status),
                &[&author],
            ))
            .unwrap();
        }
        let st = p.entry(&subject);
        assert_eq!(st.next_sequence, 5);
        assert_eq!(st.history, vec![3, 4, 5, 6, 7]);
        assert!(matches!(
            p.state(&subject).detail,
            Detail::Device {
                status: DeviceStatus::Retired,
                ..
            }
        ));
        assert_eq!(
            p.proj.claim_owner(&Claim::new("serial", "SN-1")),
            Some(&subject)
        );
    }
}

#[test]
fn refuses_invalid_status_transitions() {
    let mut p = Party::new();
    let author = p.register_author(Algorithm::Ed25519, DEVICE_KINDS, T0 + 10_000_000);
    let (b, s) = p.device_body(&author, "SN-1");
    p.apply(&event(&b, &[&author])).unwrap();
    p.apply(&event(
        &p.status_body(&author, &s, DeviceStatus::Destroyed),
        &[&author],
    ))
    .unwrap();
    for next in DeviceStatus::ALL {
        let e = event(&p.status_body(&author, &s, next), &[&author]);
        assert_eq!(
            p.refuse(&e).reason(),
            "INVALID_TRANSITION",
            "destroyed -> {next:?}"
        );
    }
    assert!(!DeviceStatus::Planned.may_become(DeviceStatus::Planned));
    assert!(DeviceStatus::Stolen.may_become(DeviceStatus::InUse));
    assert!(!DeviceStatus::Retired.may_become(DeviceStatus::InUse));
}

#[test]
fn refuses_taken_serial_and_over_cap_subjects() {
    let mut p = Party::new();
    let author = p.register_author(Algorithm::Ed25519, DEVICE_KINDS, T0 + 10_000_000);
    let (b, s) = p.device_body(&author, "SN-1");
    p.apply(&event(&b, &[&author])).unwrap();
    let (b2, _) = p.device_body(&author, "SN-1");
    assert_eq!(p.refuse(&event(&b2, &[&author])).reason(), "SERIAL_TAKEN");

    // A replicated limit, changed by the root key: node config plays no part.
    let e = p.rules_change(|r| r.limits.max_records_per_subject = 2);
    p.apply(&e).unwrap();
    p.apply(&event(
        &p.status_body(&author, &s, DeviceStatus::InUse),
        &[&author],
    ))
    .unwrap();
    let e = event(&p.status_body(&author, &s, DeviceStatus::Lost), &[&author]);
    assert!(matches!(p.refuse(&e), Refusal::TooManyRecords { .. }));
}

#[test]
fn one_key_identifies_one_thing() {
    let mut p = Party::new();
    let author = p.register_author(Algorithm::Ed25519, DEVICE_KINDS, T0 + 10_000_000);
    // A device registered with the author's own key is refused.
    let b = body(
        SubjectRef::new(DEVICE, author.key_id().to_hex()),
        0,
        None,
        author.key_id(),
        IdentityPayload::DeviceRegistered {
            serial: "SN-X".into(),
            device_key: author.public_key(),
            attributes: vec![],
            openpgp: None,
        },
    );
    assert!(matches!(
        p.refuse(&event(&b, &[&author])),
        Refusal::KeyTaken { .. }
    ));
}
