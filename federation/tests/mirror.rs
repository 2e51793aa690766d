//! Imports into a party's log: another party's records kept in its own
//! namespace and checked by the same rules under the root key this party
//! recognized; reports about this party's own subjects decided in its own
//! projection under the grants it gave. Every refusal names its reason and
//! changes nothing: bad signatures, authors the source party may not speak
//! for, a genesis by another root, kinds and domains the policy does not
//! import, peers it does not name, floods past the quotas. A replay is a
//! no-op.

use std::collections::BTreeSet;

use ics_client::{
    ChainHead, capabilities, change_status, register_author, register_device, signed,
};
use ics_federation::*;
use ics_identity::Identity;
use ics_identity::payload::DeviceStatus;
use ics_kernel::authority::{PARTY, PartyPayload};
use ics_kernel::*;
use ics_policies::{PolicyPayload, policy_subject};

/// `party`'s descriptor importing `kinds` of `peer`'s devices made by acme.
fn policy(party: &str, peer: &str, kinds: &str, quotas: &str) -> String {
    format!(
        r#"{head}
[[import]]
peer = "{peer}"
domain = "acme-devices"
kinds = [{kinds}]
{quotas}"#,
        head = ics_policies::testing::descriptor_head(party, 1, peer, ics_client::now_ms())
    )
}

/// A party's log: its projection beside its mirrors, and its own events.
struct Log {
    name: String,
    root: SigningKey,
    proj: Projection,
    mirrors: Mirrors,
    events: Vec<Event>,
}

fn parse(env: Envelope) -> Event {
    capabilities::rules()
        .parse(env, &EventLimits::default())
        .expect("parses")
}

impl Log {
    fn new(name: &str, role: Role) -> Log {
        let root = SigningKey::generate(Algorithm::Ed25519);
        let mut log = Log {
            name: name.into(),
            proj: capabilities::projection(),
            mirrors: Mirrors::default(),
            events: Vec::new(),
            root,
        };
        let genesis = signed(
            &log.root,
            SubjectRef::new(PARTY, name),
            ChainHead::default(),
            PartyPayload::Genesis {
                party_name: name.into(),
                role,
                root_key: log.root.public_key(),
                rules: capabilities::genesis_rules(EventLimits::default()),
            },
        );
        log.append(genesis);
        log
    }

    /// An event of this party's own, appended.
    fn append(&mut self, env: Envelope) -> Event {
        let event = parse(env);
        self.proj
            .apply_batch(std::slice::from_ref(&event), &EventLimits::default())
            .unwrap_or_else(|r| panic!("{}: {r}", self.name));
        self.events.push(event.clone());
        event
    }

    fn head(&self, subject: &SubjectRef) -> ChainHead {
        let e = self.proj.entry(subject).expect("a subject with a chain");
        ChainHead {
            sequence: e.next_sequence,
            previous: Some(e.last_event),
        }
    }

    fn recognize(&mut self, other: &Log, role: Role) {
        self.append(signed(
            &self.root,
            SubjectRef::new(PARTY, other.name.as_str()),
            ChainHead::default(),
            PartyPayload::Recognized {
                role,
                root_key: other.root.public_key(),
            },
        ));
    }

    fn publish(&mut self, document: String) {
        self.append(signed(
            &self.root,
            policy_subject(1),
            ChainHead::default(),
            PolicyPayload::Published { document },
        ));
    }

    fn fingerprint(&self) -> (u64, [u8; 32], [u8; 32], usize) {
        (
            self.proj.event_count(),
            self.proj.log_hash(),
            self.proj.state_hash(),
            self.mirrors
                .parties
                .values()
                .map(|m| m.positions.len())
                .sum(),
        )
    }

    /// Imports `event` of `namespace` pulled from `via`, as one batch.
    fn import(&mut self, namespace: &str, via: &str, event: &Event) -> Result<Appended, Refusal> {
        let tag = ImportTag {
            namespace: namespace.into(),
            via: via.into(),
            source_index: 1,
        };
        let empty = capabilities::projection();
        let (appended, own, mirrored) = {
            let mut own = Staged::new(&self.proj);
            let mut mirrors = MirrorStage::new(&self.mirrors, &empty);
            let bytes = ics_client::codec::envelope_to_bytes(&event.envelope).len();
            let appended = mirrors.stage_import(
                &mut own,
                &tag,
                event,
                bytes,
                &EventLimits::default(),
                &NoTree,
            );
            (appended, own.into_changes(), mirrors.into_changes())
        };
        if appended.is_ok() {
            self.proj.commit(own);
            self.mirrors.commit(capabilities::rules(), mirrored);
        }
        appended
    }

    fn refuse(&mut self, what: &str, namespace: &str, via: &str, event: &Event, reason: &str) {
        let before = self.fingerprint();
        let err = self.import(namespace, via, event).expect_err(what);
        assert_eq!(err.reason(), reason, "{what}: {err}");
        assert_eq!(self.fingerprint(), before, "{what}: nothing changed");
    }

    fn status_in(&self, namespace: &str, device: &SubjectRef) -> Option<&'static str> {
        let identity = match self.mirrors.get(namespace) {
            Some(m) if namespace != self.name => m.projection.capability::<Identity>(),
            _ => self.proj.capability::<Identity>(),
        };
        identity.subject(device).and_then(|s| s.status())
    }
}

fn device_kinds() -> BTreeSet<String> {
    ["device-registered", "device-status-changed"]
        .map(String::from)
        .into()
}

fn device(attrs: &[(&str, &str)]) -> (SubjectRef, PublicKey, Vec<(String, String)>) {
    let key = SigningKey::generate(Algorithm::Ed25519).public_key();
    let subject = SubjectRef::new(ics_identity::DEVICE, key.id().to_hex());
    let attrs = attrs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (subject, key, attrs)
}

/// acme (manufacturer) with a factory key, and maint (maintenance) that
/// recognizes acme and imports `kinds` of acme's devices from it.
fn parties(kinds: &str, quotas: &str) -> (Log, Log, SigningKey) {
    let mut acme = Log::new("acme", Role::Manufacturer);
    let factory = SigningKey::generate(Algorithm::Ed25519);
    acme.append(register_author(
        &acme.root,
        &factory.public_key(),
        "factory",
        device_kinds(),
        ics_client::now_ms() + 86_400_000,
    ));
    let mut maint = Log::new("maint", Role::Maintenance);
    maint.recognize(&acme, Role::Manufacturer);
    maint.publish(policy("maint", "acme", kinds, quotas));
    (acme, maint, factory)
}

#[test]
fn another_partys_records_are_checked_in_its_namespace() {
    let (mut acme, mut maint, factory) = parties("\"*\"", "");
    let (thermo, key, attrs) = device(&[("manu", "acme"), ("model", "thermo-3")]);
    acme.append(register_device(&factory, "SN-1", &key, attrs));
    let head = acme.head(&thermo);
    acme.append(change_status(
        &factory,
        &thermo.id,
        head,
        DeviceStatus::InUse,
        "sold",
    ));

    // Before its genesis and keys, acme's device has no authority to check against.
    let registration = acme.events[2].clone();
    maint.refuse(
        "a record before its party's genesis",
        "acme",
        "acme",
        &registration,
        "UNKNOWN_KEY",
    );

    let before = maint.proj.event_count();
    for (i, event) in acme.events.clone().iter().enumerate() {
        let appended = maint
            .import("acme", "acme", event)
            .unwrap_or_else(|e| panic!("event {i}: {e}"));
        assert!(!appended.duplicate);
        assert_eq!(
            appended.index,
            before + 1 + i as u64,
            "the next position of maint's log"
        );
    }
    let mirror = maint.mirrors.get("acme").expect("acme mirrored");
    assert_eq!(mirror.projection.event_count(), acme.proj.event_count());
    assert_eq!(
        mirror.projection.log_hash(),
        acme.proj.log_hash(),
        "the same history as acme's own"
    );
    assert_eq!(
        mirror.positions,
        (before + 1..=before + 4).collect::<Vec<_>>()
    );
    assert_eq!(maint.status_in("acme", &thermo), Some("in-use"));
    assert_eq!(
        maint.status_in("maint", &thermo),
        None,
        "not a record of maint's own"
    );

    // A replay is a no-op: the same position, nothing added.
    let again = maint.import("acme", "acme", &acme.events[3]).unwrap();
    assert!(again.duplicate);
    assert_eq!(again.index, before + 4);
    assert_eq!(maint.proj.event_count(), before + 4);
}

#[test]
fn imports_outside_the_rules_or_the_policy_are_refused_and_change_nothing() {
    let (mut acme, mut maint, factory) = parties(
        "\"device-registered\", \"device-status-changed\"",
        "\n[quotas]\nmax_records_per_subject = 3\nmax_event_bytes = 2048\n",
    );
    for event in acme.events.clone() {
        maint.import("acme", "acme", &event).unwrap();
    }

    // Not a peer of the policy; not a recognized party.
    let (thermo, key, attrs) = device(&[("manu", "acme")]);
    let registration = acme.append(register_device(&factory, "SN-1", &key, attrs));
    maint.refuse(
        "via a party the policy does not name",
        "acme",
        "globex",
        &registration,
        "NOT_A_PEER",
    );
    maint.refuse(
        "in a namespace not recognized",
        "globex",
        "acme",
        &registration,
        "NOT_RECOGNIZED",
    );

    // A domain the policy does not import: another manufacturer's device.
    let (_, other_key, other_attrs) = device(&[("manu", "globex")]);
    let other = acme.append(register_device(&factory, "SN-2", &other_key, other_attrs));
    maint.refuse(
        "a device outside the domain",
        "acme",
        "acme",
        &other,
        "NOT_IMPORTED_BY_POLICY",
    );

    // A bad signature: the signed bytes changed after signing.
    let mut forged = registration.envelope.clone();
    forged.signatures[0].bytes[0] ^= 1;
    maint.refuse(
        "a bad signature",
        "acme",
        "acme",
        &parse(forged),
        "BAD_SIGNATURE",
    );

    // An author acme does not speak for: a key acme never registered.
    let stranger = SigningKey::generate(Algorithm::Ed25519);
    let (_, k3, a3) = device(&[("manu", "acme")]);
    let unauthorized = parse(register_device(&stranger, "SN-3", &k3, a3));
    maint.refuse(
        "an unregistered author",
        "acme",
        "acme",
        &unauthorized,
        "UNKNOWN_KEY",
    );

    // Another party's genesis passed off as acme's records.
    let impostor = Log::new("acme", Role::Manufacturer);
    let mut fresh = Log::new("maint", Role::Maintenance);
    fresh.recognize(&acme, Role::Manufacturer);
    fresh.publish(policy("maint", "acme", "\"*\"", ""));
    fresh.refuse(
        "a genesis by another root key",
        "acme",
        "acme",
        &impostor.events[0],
        "WRONG_GENESIS",
    );

    // The registration itself is imported; then a flood of reports on one
    // device stops at the per-subject quota.
    maint.import("acme", "acme", &registration).unwrap();
    for (i, status) in [DeviceStatus::InUse, DeviceStatus::Lost]
        .into_iter()
        .enumerate()
    {
        let head = acme.head(&thermo);
        let report = acme.append(change_status(
            &factory,
            &thermo.id,
            head,
            status,
            &format!("r{i}"),
        ));
        maint.import("acme", "acme", &report).unwrap();
    }
    let head = acme.head(&thermo);
    let flood = acme.append(change_status(
        &factory,
        &thermo.id,
        head,
        DeviceStatus::InUse,
        "again",
    ));
    maint.refuse(
        "past the records per subject",
        "acme",
        "acme",
        &flood,
        "TOO_MANY_RECORDS",
    );

    // Past the event size the policy imports.
    let (_, k4, mut a4) = device(&[("manu", "acme")]);
    a4.push(("note".into(), "x".repeat(1000)));
    a4.push(("note2".into(), "y".repeat(1000)));
    let big = acme.append(register_device(&factory, "SN-4", &k4, a4));
    maint.refuse(
        "an event over the size quota",
        "acme",
        "acme",
        &big,
        "EVENT_TOO_LARGE",
    );
}

#[test]
fn a_report_on_this_partys_own_device_is_decided_under_its_grants() {
    // acme's device, granted to maint for status; maint reports it stolen
    // in acme's namespace; acme imports the report into its own records.
    let mut maint = Log::new("maint", Role::Maintenance);
    let mut acme = Log::new("acme", Role::Manufacturer);
    acme.recognize(&maint, Role::Maintenance);
    acme.publish(policy("acme", "maint", "\"device-status-changed\"", ""));
    let factory = SigningKey::generate(Algorithm::Ed25519);
    acme.append(register_author(
        &acme.root,
        &factory.public_key(),
        "factory",
        device_kinds(),
        ics_client::now_ms() + 86_400_000,
    ));
    let (thermo, key, attrs) = device(&[("manu", "acme")]);
    acme.append(register_device(&factory, "SN-1", &key, attrs));

    // Without a grant, maint's key may not speak on acme's device.
    let head = acme.head(&thermo);
    let ungranted = parse(change_status(
        &maint.root,
        &thermo.id,
        head,
        DeviceStatus::Stolen,
        "van",
    ));
    acme.refuse(
        "a report without a grant",
        "acme",
        "maint",
        &ungranted,
        "NO_GRANT",
    );

    let head = acme.head(&thermo);
    acme.append(signed(
        &acme.root,
        thermo.clone(),
        head,
        PartyPayload::AccessGranted {
            party: "maint".into(),
            kinds: ["device-status-changed".to_string()].into(),
        },
    ));
    let head = acme.head(&thermo);
    let report = parse(change_status(
        &maint.root,
        &thermo.id,
        head,
        DeviceStatus::Stolen,
        "van",
    ));
    // From a peer the policy does not import reports from: refused.
    acme.refuse(
        "from a party that is no peer",
        "acme",
        "globex",
        &report,
        "NOT_A_PEER",
    );
    let before = acme.proj.event_count();
    let appended = acme.import("acme", "maint", &report).unwrap();
    assert_eq!(appended.index, before + 1);
    assert_eq!(acme.status_in("acme", &thermo), Some("stolen"));
    assert!(
        acme.mirrors.parties.is_empty(),
        "decided in acme's own records"
    );
    let _ = &mut maint;
}
