//! The kernel's checks as the identity kinds meet them: signatures, author
//! keys, roles, the subject chain, batches, genesis, grants to other parties.

use crate::fixture::*;

#[test]
fn duplicate_event_returns_original_index() {
    let mut p = Party::new();
    let author = p.register_author(Algorithm::Ed25519, DEVICE_KINDS, T0 + 10_000_000);
    let (b, _) = p.device_body(&author, "SN-1");
    let e = event(&b, &[&author]);
    let first = p.apply(&e).unwrap()[0];
    let hash = p.proj.state_hash();
    let again = p.apply(&e).unwrap()[0];
    assert!(again.duplicate);
    assert_eq!(again.index, first.index);
    assert_eq!(hash, p.proj.state_hash());
}

#[test]
fn refuses_missing_and_bad_signatures() {
    let mut p = Party::new();
    let author = p.register_author(Algorithm::Ed25519, DEVICE_KINDS, T0 + 10_000_000);
    let (b, _) = p.device_body(&author, "SN-1");
    let mut e = event(&b, &[&author]);
    e.envelope.signatures.clear();
    assert_eq!(p.refuse(&e), Refusal::MissingSignature);

    let mut e = event(&b, &[&author]);
    e.envelope.signatures[0].bytes[0] ^= 0xff;
    assert!(matches!(p.refuse(&e), Refusal::BadSignature(_)));

    // Signed by the root instead of the named author.
    let e = event(&b, &[&p.root]);
    assert!(matches!(p.refuse(&e), Refusal::MissingAuthorSignature(_)));

    // A stranger's signature on an otherwise good event.
    let stranger = SigningKey::generate(Algorithm::Ed25519);
    let e = event(&b, &[&author, &stranger]);
    assert!(matches!(p.refuse(&e), Refusal::UnknownKey(_)));
}

#[test]
fn refuses_unknown_revoked_expired_and_unallowed_authors() {
    let mut p = Party::new();
    let stranger = SigningKey::generate(Algorithm::Ed25519);
    let (b, _) = p.device_body(&stranger, "SN-1");
    assert!(matches!(
        p.refuse(&event(&b, &[&stranger])),
        Refusal::UnknownKey(_)
    ));

    let short = p.register_author(Algorithm::Ed25519, DEVICE_KINDS, T0 + 500);
    let (b, _) = p.device_body(&short, "SN-2");
    assert!(matches!(
        p.refuse(&event(&b, &[&short])),
        Refusal::AuthorExpired { .. }
    ));

    let status_only = p.register_author(
        Algorithm::Ed25519,
        &["device-status-changed"],
        T0 + 10_000_000,
    );
    let (b, _) = p.device_body(&status_only, "SN-3");
    assert!(matches!(
        p.refuse(&event(&b, &[&status_only])),
        Refusal::AuthorNotAllowed { .. }
    ));

    let revoked = p.register_author(Algorithm::Ed25519, DEVICE_KINDS, T0 + 10_000_000);
    let subject = SubjectRef::new(AUTHOR_KEY, revoked.key_id().to_hex());
    let (seq, prev) = p.last(&subject);
    let rb = body(
        subject,
        seq,
        prev,
        p.root.key_id(),
        PartyPayload::AuthorKeyRevoked {
            reason: "left".into(),
        },
    );
    p.apply(&event(&rb, &[&p.root])).unwrap();
    let (b, _) = p.device_body(&revoked, "SN-4");
    assert!(matches!(
        p.refuse(&event(&b, &[&revoked])),
        Refusal::AuthorRevoked(_)
    ));
    // Revoking twice is refused as well.
    let subject = SubjectRef::new(AUTHOR_KEY, revoked.key_id().to_hex());
    let (seq, prev) = p.last(&subject);
    let rb = body(
        subject,
        seq,
        prev,
        p.root.key_id(),
        PartyPayload::AuthorKeyRevoked {
            reason: "again".into(),
        },
    );
    assert!(matches!(
        p.refuse(&event(&rb, &[&p.root])),
        Refusal::AlreadyRevoked(_)
    ));
}

#[test]
fn concurrent_writers_to_one_subject_conflict() {
    let mut p = Party::new();
    let author = p.register_author(Algorithm::Ed25519, DEVICE_KINDS, T0 + 10_000_000);
    let (b, s) = p.device_body(&author, "SN-1");
    p.apply(&event(&b, &[&author])).unwrap();
    // Both writers read the same chain head.
    let first = p.status_body(&author, &s, DeviceStatus::InUse);
    let mut second = p.status_body(&author, &s, DeviceStatus::Lost);
    second.reason_marker();
    p.apply(&event(&first, &[&author])).unwrap();
    assert!(matches!(
        p.refuse(&event(&second, &[&author])),
        Refusal::ChainConflict { .. }
    ));

    // Wrong previous id at the right sequence.
    let mut wrong_prev = p.status_body(&author, &s, DeviceStatus::Lost);
    wrong_prev.previous = Some(EventId([7; 32]));
    assert!(matches!(
        p.refuse(&event(&wrong_prev, &[&author])),
        Refusal::ChainConflict { .. }
    ));

    // Registering the same device again is a conflict at sequence 0.
    let again = EventBody {
        time_ms: b.time_ms + 1,
        ..b
    };
    assert!(matches!(
        p.refuse(&event(&again, &[&author])),
        Refusal::ChainConflict { .. }
    ));
}

trait ReasonMarker {
    fn reason_marker(&mut self);
}

impl ReasonMarker for EventBody {
    /// Makes two otherwise equal bodies differ, so they get different ids.
    fn reason_marker(&mut self) {
        self.time_ms += 1;
    }
}

#[test]
fn batch_is_all_or_nothing_and_sees_its_own_events() {
    let mut p = Party::new();
    let author = p.register_author(Algorithm::Ed25519, DEVICE_KINDS, T0 + 10_000_000);
    let (b, s) = p.device_body(&author, "SN-1");
    let reg = event(&b, &[&author]);
    // The second event chains on the first, inside the same batch.
    let in_use = event(
        &body(
            s.clone(),
            1,
            Some(reg.id),
            author.key_id(),
            IdentityPayload::DeviceStatusChanged {
                status: DeviceStatus::InUse,
                reason: String::new(),
                openpgp_revocation: None,
            },
        ),
        &[&author],
    );
    let bad = event(
        &body(
            s.clone(),
            2,
            Some(in_use.id),
            author.key_id(),
            IdentityPayload::DeviceStatusChanged {
                status: DeviceStatus::Planned,
                reason: String::new(),
                openpgp_revocation: None,
            },
        ),
        &[&author],
    );
    let before = (p.proj.event_count(), p.proj.state_hash());
    let err = p
        .proj
        .apply_batch(&[reg.clone(), in_use.clone(), bad], &p.limits)
        .unwrap_err();
    assert_eq!(err.reason(), "INVALID_TRANSITION");
    assert_eq!(before, (p.proj.event_count(), p.proj.state_hash()));
    let out = p.proj.apply_batch(&[reg, in_use], &p.limits).unwrap();
    assert_eq!(out.iter().map(|a| a.index).collect::<Vec<_>>(), vec![3, 4]);
}

#[test]
fn refuses_second_genesis_and_events_before_genesis() {
    let mut p = Party::new();
    let other = SigningKey::generate(Algorithm::Ed25519);
    let g = body(
        SubjectRef::new(PARTY, "evil"),
        0,
        None,
        other.key_id(),
        PartyPayload::Genesis {
            party_name: "evil".into(),
            role: Role::Maintenance,
            root_key: other.public_key(),
            rules: genesis_rules(),
        },
    );
    assert_eq!(p.refuse(&event(&g, &[&other])), Refusal::GenesisExists);

    let mut empty = Projection::new(rules().clone());
    let (b, _) = p.device_body(&p.root, "SN-1");
    let err = empty
        .apply_batch(&[event(&b, &[&p.root])], &EventLimits::default())
        .unwrap_err();
    assert!(matches!(err, Refusal::UnknownKey(_)));
}

#[test]
fn parsing_refuses_garbage_unknown_payload_schema_and_size() {
    let limits = EventLimits::default();
    let garbage = Envelope {
        body: vec![0xff, 0xff, 0xff, 0x01, 0x02],
        signatures: vec![],
    };
    assert!(matches!(
        rules().parse(garbage, &limits),
        Err(Refusal::Malformed(_))
    ));

    let key = SigningKey::generate(Algorithm::Ed25519);
    let mut b = body(
        SubjectRef::new(AUTHOR_KEY, key.key_id().to_hex()),
        0,
        None,
        key.key_id(),
        PartyPayload::AuthorKeyRevoked {
            reason: String::new(),
        },
    );
    b.schema_version = 1;
    let env = envelope::sign(&b, &[&key]);
    assert_eq!(
        rules().parse(env, &limits),
        Err(Refusal::UnsupportedSchema(1))
    );

    // A payload message no capability of these rules owns.
    b.schema_version = SCHEMA_VERSION;
    b.payload.message = "ics.nosuch.v1.Thing".into();
    let env = envelope::sign(&b, &[&key]);
    assert_eq!(
        rules().parse(env, &limits),
        Err(Refusal::UnknownPayload("ics.nosuch.v1.Thing".into()))
    );

    let big = Envelope {
        body: vec![0; limits.max_body_bytes + 1],
        signatures: vec![],
    };
    assert!(matches!(
        rules().parse(big, &limits),
        Err(Refusal::BodyTooLarge { .. })
    ));
}

#[test]
fn the_party_role_decides_which_records_it_authors() {
    // A maintenance party cannot release code, even with a key allowed to.
    let mut m = Party::new();
    let author = m.register_author(Algorithm::Ed25519, CODE_KINDS, T0 + 10_000_000);
    let (b, _) = code_body(&author, "fw", "1", b"x");
    assert_eq!(
        m.refuse(&event(&b, &[&author])),
        Refusal::RoleMayNotAuthor {
            role: "maintenance".into(),
            kind: "code-released".into()
        }
    );
    // A developer party cannot register devices.
    let mut d = Party::with_role("developer");
    let author = d.register_author(Algorithm::Ed25519, DEVICE_KINDS, T0 + 10_000_000);
    let (b, _) = d.device_body(&author, "SN-1");
    assert!(matches!(
        d.refuse(&event(&b, &[&author])),
        Refusal::RoleMayNotAuthor { .. }
    ));
}

#[test]
fn genesis_with_an_unknown_role_is_refused() {
    let root = SigningKey::generate(Algorithm::Ed25519);
    let mut g = body(
        SubjectRef::new(PARTY, "x"),
        0,
        None,
        root.key_id(),
        PartyPayload::Genesis {
            party_name: "x".into(),
            role: Role::Maintenance,
            root_key: root.public_key(),
            rules: genesis_rules(),
        },
    );
    // The kernel's own encoder writes only roles it knows: write this one by hand.
    g.payload.value = wire::Writer::new()
        .string(1, "x")
        .string(2, "overlord")
        .message(3, &envelope::encode_public_key(&root.public_key()))
        .message(4, &genesis_rules().encode())
        .finish();
    let proj = Projection::new(rules().clone());
    let err = proj
        .parse(envelope::sign(&g, &[&root]), &EventLimits::default())
        .unwrap_err();
    assert!(
        matches!(err, Refusal::InvalidField { ref field, .. } if field == "role"),
        "{err}"
    );
    assert_eq!(proj.event_count(), 0);
}

#[test]
fn other_parties_attach_only_what_the_registrant_granted() {
    let mut p = Party::new();
    let author = p.register_author(Algorithm::Ed25519, DEVICE_KINDS, T0 + 10_000_000);
    let (b, device) = p.device_body(&author, "SN-1");
    p.apply(&event(&b, &[&author])).unwrap();
    let tuv = p.recognize("tuv", "certifier");
    let evil = p.recognize("evil", "certifier");

    // Nothing is open by default.
    let e = p.on_subject(
        &device,
        &tuv,
        endorse(EndorsementKind::TrustLabel, "medical"),
    );
    assert!(matches!(p.refuse(&e), Refusal::NoGrant { ref party, .. } if party == "tuv"));

    // A foreign party cannot hand out rights, nor create subjects.
    let e = p.on_subject(&device, &tuv, grant("tuv", &["endorsed"]));
    assert!(matches!(p.refuse(&e), Refusal::NoGrant { .. }));
    let (b, _) = p.device_body(&tuv, "SN-2");
    assert!(matches!(
        p.refuse(&event(&b, &[&tuv])),
        Refusal::NoGrant { .. }
    ));

    // Grants name recognized parties and attachable kinds only.
    let e = p.on_subject(&device, &p.root, grant("nobody", &["endorsed"]));
    assert!(matches!(p.refuse(&e), Refusal::InvalidField { ref field, .. } if field == "party"));
    let e = p.on_subject(&device, &p.root, grant("tuv", &["device-registered"]));
    assert!(matches!(p.refuse(&e), Refusal::InvalidField { ref field, .. } if field == "kinds"));

    // The registrant grants; the certifier endorses; Verify says so.
    for party in ["tuv", "evil"] {
        let e = p.on_subject(
            &device,
            &p.root,
            grant(party, &["endorsed", "endorsement-withdrawn"]),
        );
        p.apply(&e).unwrap();
    }
    let label = p.on_subject(
        &device,
        &tuv,
        endorse(EndorsementKind::TrustLabel, "medical"),
    );
    p.apply(&label).unwrap();
    let key = match &p.state(&device).detail {
        Detail::Device { device_key, .. } => device_key.id(),
        other => panic!("{other:?}"),
    };
    let t = query::verify(&p.proj, &VerifyTarget::Key(key), T0 + 2_000);
    assert!(
        t.reason.contains("trust-label by tuv (medical)"),
        "{}",
        t.reason
    );

    // Only the endorsing party withdraws, once.
    let withdraw = |p: &Party, signer: &SigningKey| {
        p.on_subject(
            &device,
            signer,
            IdentityPayload::EndorsementWithdrawn {
                endorsement: label.id,
                reason: "expired audit".into(),
                openpgp_revocation: None,
            },
        )
    };
    let e = withdraw(&p, &evil);
    assert_eq!(p.refuse(&e).reason(), "NOT_WITHDRAWABLE");
    p.apply(&withdraw(&p, &tuv)).unwrap();
    let e = withdraw(&p, &tuv);
    assert!(p.refuse(&e).to_string().contains("already withdrawn"));
    let t = query::verify(&p.proj, &VerifyTarget::Key(key), T0 + 2_000);
    assert!(!t.reason.contains("endorsed"), "{}", t.reason);
}

#[test]
fn a_maintainer_reports_a_manufacturers_device_stolen_when_granted() {
    let mut m = Party::with_role("manufacturer");
    let author = m.register_author(Algorithm::Ed25519, DEVICE_KINDS, T0 + 10_000_000);
    let (b, device) = m.device_body(&author, "SN-9");
    m.apply(&event(&b, &[&author])).unwrap();
    let maintainer = m.recognize("acme-maintenance", "maintenance");
    let stolen = IdentityPayload::DeviceStatusChanged {
        status: DeviceStatus::Stolen,
        reason: "site report".into(),
        openpgp_revocation: None,
    };
    let e = m.on_subject(&device, &maintainer, stolen.clone());
    assert!(matches!(m.refuse(&e), Refusal::NoGrant { .. }));
    m.apply(&m.on_subject(
        &device,
        &m.root,
        grant("acme-maintenance", &["device-status-changed"]),
    ))
    .unwrap();
    m.apply(&m.on_subject(&device, &maintainer, stolen))
        .unwrap();
    assert_eq!(m.state(&device).status(), Some("stolen"));
    // The report is the maintainer's: its signature, in the device's chain.
    assert_eq!(m.entry(&device).next_sequence, 3);
}

// OpenPGP: signatures made by the key holders travel in the events; the
// rules check each against the event, and refusals change nothing.
