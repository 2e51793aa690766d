//! Policy descriptors through `icsctl` against a real node: published by
//! the root key, shown with their log index, explained rule by rule;
//! narrowed by a new version; every refusal with its reason and nothing
//! appended.

mod common;

use std::time::Duration;

use common::*;
use ics_kernel::{Algorithm, SigningKey, SubjectRef};
use ics_node::client;

fn descriptor(version: u64, read_kinds: &str) -> String {
    format!(
        r#"# What maintenance shares with the manufacturer acme, and takes from it.
{head}
[[read]]
name = "status-reports"
peer = "acme"
domain = "acme-devices"
kinds = [{read_kinds}]

[[import]]
peer = "acme"
domain = "acme-devices"
kinds = ["*"]
"#,
        head = ics_policies::testing::descriptor_head(PARTY, version, "acme", client::now_ms())
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_is_published_shown_explained_and_narrowed() {
    let cluster = start_cluster(1, "");
    cluster.wait_ready(Duration::from_secs(60)).await;
    let node = cluster.node(1);
    let root_file = node.dir.join("data/root.key");
    let root_file = root_file.to_str().unwrap();
    let publish = |file: &std::path::Path| {
        icsctl_at(
            node,
            &[
                "policy",
                "publish",
                "--signer",
                root_file,
                "--file",
                file.to_str().unwrap(),
            ],
        )
    };
    let root = cluster.root_key();
    let mut c = node.client();
    let dir = tempfile::tempdir().unwrap();

    // No policy yet: nothing shown, nothing explained.
    let none = icsctl_at(node, &["policy", "show"]).unwrap_err();
    assert!(
        none.contains("NO_POLICY") || none.contains("no policy"),
        "{none}"
    );

    // A descriptor naming a party the log does not recognize is refused by
    // the log, naming the peer; nothing is appended.
    let v1 = dir.path().join("v1.toml");
    let v1_text = descriptor(1, "\"device-status-changed\"");
    std::fs::write(&v1, &v1_text).unwrap();
    let before = cluster.event_count(1).await;
    let err = publish(&v1).unwrap_err();
    assert!(
        err.contains("peer \"acme\" is not a party this one recognizes"),
        "{err}"
    );
    assert_eq!(cluster.event_count(1).await, before);

    let acme_root = SigningKey::generate(Algorithm::Ed25519);
    c.append(vec![client::signed(
        &root,
        SubjectRef::new(ics_kernel::authority::PARTY, "acme"),
        client::ChainHead::default(),
        ics_kernel::authority::PartyPayload::Recognized {
            role: ics_kernel::Role::Manufacturer,
            root_key: acme_root.public_key(),
        },
    )])
    .await
    .expect("recognize acme");

    let out = publish(&v1).expect("publish v1");
    let published = json_of(&out);
    assert_eq!(published["subject"], "policy/00000000000000000001");
    let v1_index = published["index"].as_u64().unwrap();

    let shown = json_of(&icsctl_at(node, &["policy", "show"]).unwrap());
    assert_eq!(shown["version"], 1);
    assert_eq!(shown["log_index"], v1_index);
    assert_eq!(
        shown["document"],
        v1_text.as_str(),
        "kept exactly as signed"
    );

    // A device made by acme, and one made by someone else.
    let author = register_author(&mut c, &root, device_kinds()).await;
    let attrs = |manu: &str| vec![("manu".to_string(), manu.to_string())];
    let register = |serial: &'static str, manu: &str| {
        let device = SigningKey::generate(Algorithm::Ed25519).public_key();
        let env = client::register_device(&author, serial, &device, attrs(manu));
        (
            env,
            SubjectRef::new(ics_identity::DEVICE, device.id().to_hex()),
        )
    };
    let (acme_env, acme_dev) = register("SN-1", "acme");
    let (globex_env, globex_dev) = register("SN-2", "globex");
    c.append(vec![acme_env, globex_env])
        .await
        .expect("register");
    let acme_dev = acme_dev.to_string();
    let globex_dev = globex_dev.to_string();

    let explain = |subject: &str, kind: &str| {
        icsctl_at(
            node,
            &[
                "policy",
                "explain",
                "--peer",
                "acme",
                "--subject",
                subject,
                "--kind",
                kind,
            ],
        )
    };
    let allowed = json_of(&explain(&acme_dev, "device-status-changed").unwrap());
    assert_eq!(allowed["allowed"], true);
    assert_eq!(allowed["rule"], "read rule #1 \"status-reports\"");
    assert_eq!(allowed["policy_log_index"], v1_index);
    // A refusal exits 2 and names why the rule did not apply.
    let text = std::process::Command::new(icsctl())
        .args(["--server", &node.grpc, "--tls-dir"])
        .arg(&node.client_tls)
        .args([
            "policy",
            "explain",
            "--peer",
            "acme",
            "--subject",
            &globex_dev,
        ])
        .args(["--kind", "device-status-changed"])
        .output()
        .unwrap();
    assert_eq!(text.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        stdout.contains("refused (deny by default)")
            && stdout.contains("attribute manu is \"globex\", not \"acme\""),
        "{stdout}"
    );
    let import = icsctl_at(
        node,
        &[
            "policy",
            "explain",
            "--import",
            "--peer",
            "acme",
            "--subject",
            &acme_dev,
            "--kind",
            "device-registered",
        ],
    )
    .unwrap();
    assert_eq!(json_of(&import)["rule"], "import rule #1");

    // Refusals by the log, each with its reason and nothing appended: a gap
    // in versions, a document the client did not check, another signer.
    let before = cluster.event_count(1).await;
    let v3 = dir.path().join("v3.toml");
    std::fs::write(&v3, descriptor(3, "\"device-status-changed\"")).unwrap();
    let gap = publish(&v3).unwrap_err();
    assert!(gap.contains("version 2 was never published"), "{gap}");
    let raw = |document: &str, signer: &SigningKey, version: u64| {
        client::signed(
            signer,
            ics_policies::policy_subject(version),
            client::ChainHead::default(),
            ics_policies::PolicyPayload::Published {
                document: document.to_string(),
            },
        )
    };
    let bad = c
        .append(vec![raw("party = [", &root, 2)])
        .await
        .expect_err("not TOML");
    assert_eq!(reason_of(&bad), "BAD_POLICY_DOCUMENT");
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    let by_author = c
        .append(vec![raw(&descriptor(2, "\"*\""), &author, 2)])
        .await
        .expect_err("by an author key");
    // (The kernel refuses an author key not allowed the kind; one allowed
    // it is refused NOT_ROOT_KEY by the rule, tests/rules.rs in policies/.)
    assert_eq!(reason_of(&by_author), "AUTHOR_NOT_ALLOWED");
    let unknown = c
        .append(vec![raw(&descriptor(2, "\"device-teleported\""), &root, 2)])
        .await
        .expect_err("an unknown kind");
    assert_eq!(reason_of(&unknown), "UNKNOWN_KIND");
    assert_eq!(cluster.event_count(1).await, before);
    assert_eq!(
        json_of(&icsctl_at(node, &["policy", "show"]).unwrap())["version"],
        1
    );

    // Narrowed: version 2 lets acme read only key rotations; from its
    // index on, the status rule no longer holds.
    let v2 = dir.path().join("v2.toml");
    std::fs::write(&v2, descriptor(2, "\"key-rotated\"")).unwrap();
    let v2_index = json_of(&publish(&v2).unwrap())["index"].as_u64().unwrap();
    let narrowed = explain(&acme_dev, "device-status-changed");
    assert!(narrowed.is_err(), "refused after narrowing: {narrowed:?}");
    let rotated = json_of(&explain(&acme_dev, "key-rotated").unwrap());
    assert_eq!(rotated["policy_log_index"], v2_index);
    let old = json_of(&icsctl_at(node, &["policy", "show", "--version", "1"]).unwrap());
    assert_eq!(
        (old["version"].as_u64(), old["active_version"].as_u64()),
        (Some(1), Some(2))
    );
}
