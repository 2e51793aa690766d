//! The kernel's capability conformance suite on identity: two parties
//! (a maintainer and a developer) between them accept every identity kind,
//! and refuse with named reasons; the suite checks refusals change nothing,
//! decide is deterministic and replay equals live apply.

use ics_kernel::testing::{Step, check_scenarios};

use crate::fixture::*;

/// Records `e` as a step of the scenario, applying it to `p` when accepted.
fn step(p: &mut Party, steps: &mut Vec<Step>, what: &str, e: Event, refused: Option<&'static str>) {
    match refused {
        None => {
            p.apply(&e).expect(what);
            steps.push(Step::accepted(what, vec![e.envelope]));
        }
        Some(reason) => steps.push(Step::refused(what, vec![e.envelope], reason)),
    }
}

fn genesis_steps(p: &Party, role: Role, author: &SigningKey, kind_names: &[&str]) -> Vec<Step> {
    let genesis = genesis_body(&p.root, role);
    let author = author_body(&p.root, author, kind_names, T0 + 10_000_000);
    vec![
        Step::accepted("genesis", vec![event(&genesis, &[&p.root]).envelope]),
        Step::accepted("author key", vec![event(&author, &[&p.root]).envelope]),
    ]
}

fn maintainer() -> Vec<Step> {
    let kind_names = [
        "device-registered",
        "device-status-changed",
        "service-registered",
        "service-endpoints-changed",
        "key-rotated",
        "endorsed",
        "endorsement-withdrawn",
    ];
    let mut p = Party::with_role("maintenance");
    let author = p.register_author(Algorithm::Ed25519, &kind_names, T0 + 10_000_000);
    let mut steps = genesis_steps(&p, Role::Maintenance, &author, &kind_names);

    let (b, device) = p.device_body(&author, "SN-1");
    step(
        &mut p,
        &mut steps,
        "device registered",
        event(&b, &[&author]),
        None,
    );
    let b = p.status_body(&author, &device, DeviceStatus::InUse);
    step(
        &mut p,
        &mut steps,
        "device in use",
        event(&b, &[&author]),
        None,
    );
    let b = p.status_body(&author, &device, DeviceStatus::Planned);
    step(
        &mut p,
        &mut steps,
        "in use to planned",
        event(&b, &[&author]),
        Some("INVALID_TRANSITION"),
    );
    let (b, _) = p.device_body(&author, "SN-1");
    step(
        &mut p,
        &mut steps,
        "serial taken",
        event(&b, &[&author]),
        Some("SERIAL_TAKEN"),
    );

    // A batch of two devices, and a batch whose second event is refused.
    let (b1, _) = p.device_body(&author, "SN-2");
    let (b2, _) = p.device_body(&author, "SN-3");
    steps.push(Step::accepted(
        "batch of two",
        vec![
            event(&b1, &[&author]).envelope,
            event(&b2, &[&author]).envelope,
        ],
    ));
    p.proj
        .apply_batch(&[event(&b1, &[&author]), event(&b2, &[&author])], &p.limits)
        .expect("batch");
    let (b3, _) = p.device_body(&author, "SN-4");
    let (b4, _) = p.device_body(&author, "SN-4");
    steps.push(Step::refused(
        "batch with a taken serial",
        vec![
            event(&b3, &[&author]).envelope,
            event(&b4, &[&author]).envelope,
        ],
        "SERIAL_TAKEN",
    ));

    let key = SigningKey::generate(Algorithm::Ed25519);
    let service = SubjectRef::new(SERVICE, key.key_id().to_hex());
    let b = body(
        service.clone(),
        0,
        None,
        author.key_id(),
        IdentityPayload::ServiceRegistered {
            name: "telemetry".into(),
            service_key: key.public_key(),
            endpoints: vec!["https://telemetry.example".into()],
            owner: "acme".into(),
        },
    );
    step(
        &mut p,
        &mut steps,
        "service registered",
        event(&b, &[&author]),
        None,
    );
    let moved = |p: &Party, endpoints: Vec<String>| {
        p.on_subject(
            &service,
            &author,
            IdentityPayload::ServiceEndpointsChanged { endpoints },
        )
    };
    let e = moved(&p, vec!["https://telemetry-2.example".into()]);
    step(&mut p, &mut steps, "service moved", e, None);
    let e = moved(&p, vec!["not a uri".into()]);
    step(
        &mut p,
        &mut steps,
        "moved to no URI",
        e,
        Some("INVALID_FIELD"),
    );
    let new = SigningKey::generate(Algorithm::Ed25519);
    let e = rotation(&p, &service, &author, &new, &[&author], None);
    step(
        &mut p,
        &mut steps,
        "rotation without the new key",
        e,
        Some("MISSING_NEW_KEY_SIGNATURE"),
    );
    let e = rotation(&p, &service, &author, &new, &[&author, &new], None);
    step(&mut p, &mut steps, "service key rotated", e, None);

    let e = p.on_subject(
        &device,
        &author,
        endorse(EndorsementKind::Maintainer, "site-1"),
    );
    let endorsement = e.id;
    step(&mut p, &mut steps, "endorsed", e, None);
    let withdraw = |p: &Party| {
        p.on_subject(
            &device,
            &author,
            IdentityPayload::EndorsementWithdrawn {
                endorsement,
                reason: "moved".into(),
                openpgp_revocation: None,
            },
        )
    };
    let e = withdraw(&p);
    step(&mut p, &mut steps, "endorsement withdrawn", e, None);
    let e = withdraw(&p);
    step(
        &mut p,
        &mut steps,
        "withdrawn twice",
        e,
        Some("NOT_WITHDRAWABLE"),
    );
    steps
}

fn developer() -> Vec<Step> {
    let kind_names = ["code-released", "code-status-changed"];
    let mut p = Party::with_role("developer");
    let author = p.register_author(Algorithm::Ed25519, &kind_names, T0 + 10_000_000);
    let mut steps = genesis_steps(&p, Role::Developer, &author, &kind_names);
    let release = |version: &str, artifact: &[u8]| {
        let identity = CodeIdentity {
            name: "fw".into(),
            version: version.into(),
            blake3: *blake3::hash(artifact).as_bytes(),
            sha256: [version.len() as u8; 32],
            suit_manifest_uri: None,
            openpgp_signature: None,
        };
        let b = body(
            SubjectRef::new(CODE, hex::encode(identity.blake3)),
            0,
            None,
            author.key_id(),
            IdentityPayload::CodeReleased(identity),
        );
        event(&b, &[&author])
    };
    let e = release("1.0.0", b"firmware 1");
    let code = e.body.subject.clone();
    step(&mut p, &mut steps, "code released", e, None);
    step(
        &mut p,
        &mut steps,
        "version taken",
        release("1.0.0", b"firmware 1b"),
        Some("CODE_VERSION_TAKEN"),
    );
    let e = p.on_subject(
        &code,
        &author,
        IdentityPayload::CodeStatusChanged {
            status: CodeStatus::Deprecated,
            reason: "superseded".into(),
        },
    );
    step(&mut p, &mut steps, "code deprecated", e, None);
    let (b, _) = p.device_body(&author, "SN-9");
    step(
        &mut p,
        &mut steps,
        "a developer registers no device",
        event(&b, &[&author]),
        Some("AUTHOR_NOT_ALLOWED"),
    );
    steps
}

#[test]
fn identity_passes_the_capability_conformance_suite() {
    check_scenarios::<Identity>(
        rules().clone(),
        &EventLimits::default(),
        &[maintainer(), developer()],
    );
}
