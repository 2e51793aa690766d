//! The policy capability's rules case by case (every refusal with its
//! reason and the state unchanged), the conformance suite on them, and the
//! evaluator's verdicts with their explanations.

use std::sync::{Arc, OnceLock};

use ics_identity::Identity;
use ics_kernel::authority::{AUTHOR_KEY, PARTY, PartyPayload};
use ics_kernel::testing::{Scenario, check_scenarios};
use ics_kernel::*;
use ics_policies::*;

const T0: i64 = 1_700_000_000_000;

fn rules() -> &'static Arc<Rules> {
    static RULES: OnceLock<Arc<Rules>> = OnceLock::new();
    RULES.get_or_init(|| Arc::new(Rules::builder().add::<Identity>().add::<Policies>().build()))
}

/// The descriptor of party `party`, version `version`, letting the
/// manufacturer `acme` read status reports of its devices and importing
/// them from it.
fn document(party: &str, version: u64, extra: &str) -> String {
    format!(
        r#"{head}
[[read]]
name = "status-reports"
peer = "acme"
domain = "acme-devices"
kinds = ["device-status-changed"]

[[import]]
peer = "acme"
domain = "acme-devices"
kinds = ["*"]
{extra}"#,
        head = ics_policies::testing::descriptor_head(party, version, "acme", T0)
    )
}

fn body(subject: SubjectRef, author: KeyId, payload: impl Payload) -> EventBody {
    ics_kernel::testing::opening_body(subject, author, T0 + 1_000, payload)
}

fn publish(author: &SigningKey, version: u64, document: String) -> EventBody {
    body(
        policy_subject(version),
        author.key_id(),
        PolicyPayload::Published { document },
    )
}

/// The maintenance party "maint" under test.
struct Party {
    root: SigningKey,
    s: Scenario,
}

impl Party {
    fn new() -> Party {
        let root = SigningKey::generate(Algorithm::Ed25519);
        let s = Scenario::genesis(rules().clone(), &root, "maint", Role::Maintenance, T0);
        Party { root, s }
    }

    fn root_key(&self) -> SigningKey {
        SigningKey::from_secret(self.root.algorithm(), &self.root.secret_bytes()).unwrap()
    }

    fn accept(&mut self, what: &str, b: &EventBody, k: &SigningKey) {
        let event = self.s.event(b, &[k]);
        self.s.accept(what, vec![event]);
    }

    fn refuse(&mut self, what: &str, b: &EventBody, k: &SigningKey, reason: &'static str) {
        let event = self.s.event(b, &[k]);
        self.s.refuse(what, vec![event], reason);
    }

    fn policies(&self) -> &CapState<Policies> {
        self.s.proj.capability::<Policies>()
    }
}

fn scenario() -> Party {
    let mut p = Party::new();
    let root = p.root_key();
    let acme_root = SigningKey::generate(Algorithm::Ed25519);

    // Peers must be parties the log recognizes.
    let v1 = publish(&root, 1, document("maint", 1, ""));
    p.refuse("peer not recognized", &v1, &root, "PEER_NOT_RECOGNIZED");
    let recognize = body(
        SubjectRef::new(PARTY, "acme"),
        root.key_id(),
        PartyPayload::Recognized {
            role: Role::Manufacturer,
            root_key: acme_root.public_key(),
        },
    );
    p.accept("acme recognized", &recognize, &root);

    // Only the root key publishes.
    let author = SigningKey::generate(Algorithm::Ed25519);
    let register = body(
        SubjectRef::new(AUTHOR_KEY, author.key_id().to_hex()),
        root.key_id(),
        PartyPayload::AuthorKeyRegistered {
            key: author.public_key(),
            label: "ops".into(),
            allowed_kinds: ["policy-published".to_string()].into(),
            not_after_ms: T0 + 86_400_000,
        },
    );
    p.accept("author key", &register, &root);
    let by_author = publish(&author, 1, document("maint", 1, ""));
    p.refuse("by an author key", &by_author, &author, "NOT_ROOT_KEY");

    // The document must be a descriptor of this party, at its version's subject.
    let garbage = publish(&root, 1, "party = [".into());
    p.refuse("not TOML", &garbage, &root, "BAD_POLICY_DOCUMENT");
    let unknown_field = publish(&root, 1, document("maint", 1, "colour = \"red\"\n"));
    p.refuse(
        "an unknown field",
        &unknown_field,
        &root,
        "BAD_POLICY_DOCUMENT",
    );
    let other_party = publish(&root, 1, document("someone-else", 1, ""));
    p.refuse("another party's", &other_party, &root, "WRONG_PARTY");
    let misplaced = publish(&root, 2, document("maint", 1, ""));
    p.refuse("at v2's subject", &misplaced, &root, "INVALID_SUBJECT");
    let gap = publish(&root, 2, document("maint", 2, ""));
    p.refuse("v2 before v1", &gap, &root, "POLICY_VERSION_GAP");
    let unknown_kind =
        document("maint", 1, "").replace("[\"device-status-changed\"]", "[\"device-teleported\"]");
    let unknown_kind = publish(&root, 1, unknown_kind);
    p.refuse("an unknown kind", &unknown_kind, &root, "UNKNOWN_KIND");
    let wrong_subject_kind =
        document("maint", 1, "").replace("[\"device-status-changed\"]", "[\"code-released\"]");
    let wrong_subject_kind = publish(&root, 1, wrong_subject_kind);
    p.refuse(
        "a kind not about the domain's subjects",
        &wrong_subject_kind,
        &root,
        "UNKNOWN_KIND",
    );
    let dangling = document("maint", 1, "").replace(
        "domain = \"acme-devices\"\nkinds = [\"*\"]",
        "domain = \"nowhere\"\nkinds = [\"*\"]",
    );
    let dangling = publish(&root, 1, dangling);
    p.refuse(
        "a rule naming no domain",
        &dangling,
        &root,
        "BAD_POLICY_DOCUMENT",
    );

    p.accept("v1", &v1, &root);
    assert_eq!(active(p.policies()).map(|s| s.descriptor.version), Some(1));
    let again = publish(&root, 1, document("maint", 1, "# the same version again\n"));
    p.refuse("v1 twice", &again, &root, "CHAIN_CONFLICT");
    let v2 = publish(&root, 2, document("maint", 2, ""));
    p.accept("v2", &v2, &root);
    let active = active(p.policies()).expect("a policy is in force");
    assert_eq!(active.descriptor.version, 2);
    assert_eq!(active.position, p.s.proj.event_count());
    p
}

#[test]
fn policy_rules_case_by_case() {
    scenario();
}

#[test]
fn conformance() {
    let p = scenario();
    check_scenarios::<Policies>(rules().clone(), &EventLimits::default(), &[p.s.steps]);
}

fn descriptor(extra: &str) -> Descriptor {
    Descriptor::parse(&document("maint", 1, extra)).expect("the descriptor parses")
}

fn device<'a>(id: &'a str, serial: &'a str, attributes: &'a [(String, String)]) -> Facts<'a> {
    Facts {
        subject_kind: "device",
        subject_id: id,
        namespace: "acme",
        serial: Some(serial),
        name: None,
        attributes,
    }
}

fn attrs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn a_verdict_names_its_rule_or_why_none_applied() {
    let d = descriptor("");
    let acme = attrs(&[("manu", "acme"), ("model", "thermo-3")]);
    let other = attrs(&[("manu", "globex")]);

    let yes = d.decide(
        Direction::Read,
        "acme",
        &device("d1", "SN-1", &acme),
        "device-status-changed",
        T0,
    );
    assert!(yes.allowed);
    assert_eq!(yes.rule.as_deref(), Some("read rule #1 \"status-reports\""));
    assert_eq!(
        yes.to_string(),
        "allowed by read rule #1 \"status-reports\""
    );

    let wrong_kind = d.decide(
        Direction::Read,
        "acme",
        &device("d1", "SN-1", &acme),
        "endorsed",
        T0,
    );
    assert!(!wrong_kind.allowed);
    assert_eq!(
        wrong_kind.reasons,
        ["read rule #1 \"status-reports\": kind endorsed is not in [\"device-status-changed\"]"]
    );

    let wrong_maker = d.decide(
        Direction::Read,
        "acme",
        &device("d2", "SN-2", &other),
        "device-status-changed",
        T0,
    );
    assert!(!wrong_maker.allowed);
    assert_eq!(
        wrong_maker.reasons,
        [
            "read rule #1 \"status-reports\": domain \"acme-devices\": device/d2: attribute manu is \"globex\", not \"acme\""
        ]
    );
    assert!(
        wrong_maker
            .to_string()
            .starts_with("refused (deny by default); ")
    );

    let stranger = d.decide(
        Direction::Read,
        "globex",
        &device("d1", "SN-1", &acme),
        "device-status-changed",
        T0,
    );
    assert_eq!(
        stranger.reasons,
        ["\"globex\" is not a peer of this policy"]
    );

    // Import: every kind of the domain, from acme only.
    let import = d.decide(
        Direction::Import,
        "acme",
        &device("d1", "SN-1", &acme),
        "device-registered",
        T0,
    );
    assert_eq!(import.rule.as_deref(), Some("import rule #1"));
}

#[test]
fn domains_select_by_serial_range_ids_names_and_namespace() {
    let d = descriptor(
        r#"
[[domain]]
name = "batch"
subjects = ["device"]
namespace = "acme"
serial_from = "SN-100"
serial_to = "SN-199"

[[domain]]
name = "listed"
subjects = ["device", "service"]
ids = ["d7"]

[[domain]]
name = "fw"
subjects = ["code"]
names = ["thermo-fw"]
"#,
    );
    let none: Vec<(String, String)> = Vec::new();
    let batch = d.domain("batch").unwrap();
    assert!(batch.admits(&device("x", "SN-150", &none)).is_ok());
    assert_eq!(
        batch.admits(&device("x", "SN-200", &none)),
        Err("device/x: serial \"SN-200\" is outside [SN-100, SN-199]".into())
    );
    let mut foreign = device("x", "SN-150", &none);
    foreign.namespace = "globex";
    assert_eq!(
        batch.admits(&foreign),
        Err("device/x is a record of \"globex\", not of \"acme\"".into())
    );
    let listed = d.domain("listed").unwrap();
    assert!(listed.admits(&device("d7", "S", &none)).is_ok());
    assert!(listed.admits(&device("d8", "S", &none)).is_err());
    let fw = d.domain("fw").unwrap();
    let code = |name| Facts {
        subject_kind: "code",
        subject_id: "c",
        namespace: "acme",
        serial: None,
        name: Some(name),
        attributes: &[],
    };
    assert!(fw.admits(&code("thermo-fw")).is_ok());
    assert!(fw.admits(&code("other")).is_err());
    assert!(fw.admits(&device("c", "S", &none)).is_err());
}

#[test]
fn a_rule_holds_only_inside_its_window() {
    let windowed = document("maint", 1, "").replace(
        "name = \"status-reports\"",
        "name = \"status-reports\"\nnot_before = \"2027-01-01T00:00:00Z\"\nnot_after = \"2027-12-31T23:59:59Z\"",
    );
    let d = Descriptor::parse(&windowed).unwrap();
    let acme = attrs(&[("manu", "acme")]);
    let at = |t: &str| {
        d.decide(
            Direction::Read,
            "acme",
            &device("d1", "SN-1", &acme),
            "device-status-changed",
            descriptor::parse_utc(t).unwrap(),
        )
    };
    assert_eq!(
        at("2026-12-31T23:59:59Z").reasons,
        ["read rule #1 \"status-reports\": not in force before 2027-01-01T00:00:00Z"]
    );
    assert!(at("2027-06-01T00:00:00Z").allowed);
    assert_eq!(
        at("2028-01-01T00:00:00Z").reasons,
        ["read rule #1 \"status-reports\": expired at 2027-12-31T23:59:59Z"]
    );
}

#[test]
fn authority_is_read_by_every_peer_and_imported_with_its_namespace() {
    let d = descriptor("");
    let authority = |namespace| Facts {
        subject_kind: "author-key",
        subject_id: "k",
        namespace,
        serial: None,
        name: None,
        attributes: &[],
    };
    assert!(
        d.decide(
            Direction::Read,
            "acme",
            &authority("maint"),
            "author-key-registered",
            T0
        )
        .allowed
    );
    assert!(
        !d.decide(
            Direction::Read,
            "globex",
            &authority("maint"),
            "author-key-registered",
            T0
        )
        .allowed
    );
    assert!(
        d.decide(
            Direction::Import,
            "acme",
            &authority("acme"),
            "author-key-registered",
            T0
        )
        .allowed
    );
}

#[test]
fn bad_descriptors_are_refused_naming_the_fault() {
    let cases: [(&str, String); 8] = [
        ("version = 0", document("maint", 0, "")),
        (
            "not a peer",
            document("maint", 1, "").replace(
                "peer = \"acme\"\ndomain = \"acme-devices\"\nkinds = [\"*\"]",
                "peer = \"nobody\"\ndomain = \"acme-devices\"\nkinds = [\"*\"]",
            ),
        ),
        ("own peer", document("acme", 1, "")),
        (
            "bad endpoint",
            document("maint", 1, "").replace("127.0.0.1:7600", "127.0.0.1"),
        ),
        (
            "bad CA",
            document("maint", 1, "").replace(
                "-----BEGIN CERTIFICATE-----\n",
                "-----BEGIN CERTIFICATE-----\nAAAA",
            ),
        ),
        (
            "empty kinds",
            document("maint", 1, "").replace("kinds = [\"*\"]", "kinds = []"),
        ),
        (
            "bad window",
            document("maint", 1, "")
                .replace("kinds = [\"*\"]", "kinds = [\"*\"]\nnot_after = \"soon\""),
        ),
        (
            "zero quota",
            document("maint", 1, "\n[quotas]\nevents_per_minute = 0\n"),
        ),
    ];
    let expected = [
        "version: the first descriptor is version 1",
        "import rule #1: peer \"nobody\" is not a [[peer]]",
        "peer \"acme\": a party is not its own peer",
        "peer \"acme\": endpoint \"127.0.0.1\": must be host:port",
        "peer \"acme\": tls_ca:",
        "import rule #1: kinds must name 1 to 64 kinds (or \"*\")",
        "import rule #1: not_after: \"soon\" is not YYYY-MM-DDTHH:MM:SSZ",
        "quotas.events_per_minute must be at least 1",
    ];
    for ((what, text), want) in cases.iter().zip(expected) {
        let err = Descriptor::parse(text).expect_err(what);
        assert!(err.0.starts_with(want), "{what}: {err}");
    }
    let huge = format!(
        "{}#{}",
        document("maint", 1, ""),
        "x".repeat(descriptor::MAX_DOCUMENT_BYTES)
    );
    assert!(Descriptor::parse(&huge).unwrap_err().0.contains("at most"));
}

#[test]
fn import_terms_see_what_could_admit_more_and_nothing_else() {
    let parse =
        |version, extra: &str| Descriptor::parse(&document("maint", version, extra)).unwrap();
    let base = parse(1, "");
    let more_reads = parse(
        2,
        "\n[[read]]\nname = \"more\"\npeer = \"acme\"\ndomain = \"acme-devices\"\nkinds = [\"device-registered\"]\n",
    );
    assert_eq!(
        base.import_terms("acme"),
        more_reads.import_terms("acme"),
        "read rules and versions do not change what is imported"
    );
    let another_import = parse(
        3,
        "\n[[import]]\npeer = \"acme\"\ndomain = \"acme-devices\"\nkinds = [\"device-registered\"]\n",
    );
    assert_ne!(
        base.import_terms("acme"),
        another_import.import_terms("acme")
    );
    let more_records = parse(4, "\n[quotas]\nmax_records_per_subject = 5000\n");
    assert_ne!(base.import_terms("acme"), more_records.import_terms("acme"));
    assert_eq!(
        base.import_terms("globex"),
        another_import.import_terms("globex"),
        "another peer's terms are its own"
    );
}
