//! Rules are replicated state: the genesis names the limits and the active
//! capabilities; the root key changes them with `rules-changed`; every replica
//! applies them, and a build that lacks an activated one stops instead of
//! refusing and diverging.

use crate::fixture::*;

#[test]
fn limits_come_from_the_log_not_from_the_caller() {
    let mut p = Party::new();
    let author = p.register_author(Algorithm::Ed25519, DEVICE_KINDS, T0 + 10_000_000);
    let (b, s) = p.device_body(&author, "SN-1");
    p.apply(&event(&b, &[&author])).unwrap();
    let long_reason = |p: &Party| {
        let mut b = p.status_body(&author, &s, DeviceStatus::InUse);
        b.payload = payload_bytes(&IdentityPayload::DeviceStatusChanged {
            status: DeviceStatus::InUse,
            reason: "x".repeat(100),
            openpgp_revocation: None,
        });
        event(&b, &[&author])
    };
    // Whatever limits the caller (a node's config) passes, the log's decide.
    p.limits.max_text_bytes = 10;
    let e = long_reason(&p);
    let out = p.apply(&e).expect("the replicated limit is 1024 bytes");
    assert_eq!(out.len(), 1);

    let e = p.rules_change(|r| r.limits.max_text_bytes = 50);
    p.apply(&e).unwrap();
    p.limits.max_text_bytes = 1_000_000;
    let e = long_reason(&p);
    let why = p.refuse(&e);
    assert!(
        matches!(&why, Refusal::InvalidField { field, .. } if field == "reason"),
        "{why}"
    );
    assert_eq!(
        p.proj.active_rules().unwrap().limits.max_text_bytes,
        50,
        "the change is state"
    );
}

#[test]
fn only_the_root_key_changes_rules_and_only_to_usable_ones() {
    let mut p = Party::new();
    let author = p.register_author(
        Algorithm::Ed25519,
        &["rules-changed", "device-registered"],
        T0 + 10_000_000,
    );
    let mut rules = p.proj.active_rules().unwrap().clone();
    rules.limits.max_text_bytes = 7;
    let by_author = p.on_subject(
        &SubjectRef::new(PARTY, "acme"),
        &author,
        PartyPayload::RulesChanged {
            rules: rules.clone(),
        },
    );
    assert_eq!(p.refuse(&by_author).reason(), "ROOT_ONLY");

    let zero = p.rules_change(|r| r.limits.max_batch_events = 0);
    let why = p.refuse(&zero);
    assert!(why.to_string().contains("max_batch_events"), "{why}");
    let no_kernel = p.rules_change(|r| {
        r.capabilities.remove("kernel");
    });
    assert_eq!(p.refuse(&no_kernel).reason(), "INVALID_FIELD");
    let version_zero = p.rules_change(|r| {
        r.capabilities.insert("identity".into(), 0);
    });
    assert_eq!(p.refuse(&version_zero).reason(), "INVALID_FIELD");

    // Only on the party's own subject.
    p.recognize("tuv", "certifier");
    let elsewhere = p.on_subject(
        &SubjectRef::new(PARTY, "tuv"),
        &p.root,
        PartyPayload::RulesChanged { rules },
    );
    assert_eq!(p.refuse(&elsewhere).reason(), "INVALID_SUBJECT");
}

#[test]
fn a_capability_acts_only_once_the_log_activated_it() {
    let mut p = Party::new();
    let author = p.register_author(Algorithm::Ed25519, DEVICE_KINDS, T0 + 10_000_000);
    let e = p.rules_change(|r| {
        r.capabilities.remove("identity");
    });
    p.apply(&e).unwrap();
    let (b, _) = p.device_body(&author, "SN-1");
    let e = event(&b, &[&author]);
    let why = p.refuse(&e);
    assert_eq!(why.reason(), "INACTIVE_CAPABILITY");
    assert!(why.to_string().contains("identity"), "{why}");
    let again = p.rules_change(|r| {
        r.capabilities.insert(
            "identity".into(),
            <ics_identity::Identity as ics_kernel::capability::Capability>::VERSION,
        );
    });
    p.apply(&again).unwrap();
    p.apply(&e).expect("identity acts again");
}

#[test]
fn rules_this_build_does_not_run_stop_the_replica_before_anything_commits() {
    let p = Party::new();
    let before = (p.proj.event_count(), p.proj.state_hash());
    let next = <ics_identity::Identity as ics_kernel::capability::Capability>::VERSION + 1;
    for (name, version) in [("transfer", 1), ("identity", next)] {
        let e = p.rules_change(|r| {
            r.capabilities.insert(name.into(), version);
        });
        // Every replica accepts the event (the rules are well-formed) ...
        let (out, changes) = p
            .proj
            .check_batch(std::slice::from_ref(&e), &p.limits)
            .expect("a well-formed rules change");
        assert_eq!(out.len(), 1);
        // ... and one whose build lacks the capability learns it must stop.
        let err = p.proj.check_supported(&changes).unwrap_err();
        assert!(
            err.to_string().contains(&format!("{name}/{version}")),
            "{err}"
        );
    }
    assert_eq!(before, (p.proj.event_count(), p.proj.state_hash()));
}
