//! Code identities, roles, search and Verify over gRPC against real nodes.

mod common;

use ics_identity::payload::CodeIdentity;
use ics_identity::payload::{CodeStatus, DeviceStatus};
use ics_kernel::{Algorithm, SigningKey, SubjectRef};
use std::time::Duration;

use common::*;
use ics_node::client::{self, ChainHead};
use ics_proto::core_v1 as pb;
use tonic::Code;

fn code_kinds() -> std::collections::BTreeSet<String> {
    [
        "code-released".to_string(),
        "code-status-changed".to_string(),
    ]
    .into_iter()
    .collect()
}

async fn verify(
    c: &mut ics_node::client::Client,
    what: pb::verify_request::What,
) -> pb::VerifyResponse {
    c.log
        .verify(pb::VerifyRequest {
            what: Some(what),
            consistency: pb::ReadConsistency::Linearizable as i32,
        })
        .await
        .expect("verify")
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn developer_releases_code_and_verify_follows_its_status() {
    let cluster = start_cluster(1, "role = \"developer\"\n");
    cluster.wait_ready(Duration::from_secs(30)).await;
    let mut c = cluster.node(1).client();
    let author = register_author(&mut c, &cluster.root_key(), code_kinds()).await;

    let identity = CodeIdentity::of_artifact("thermo-fw", "1.0.0", b"firmware 1.0.0", None);
    let subject = SubjectRef::new(ics_identity::CODE, hex::encode(identity.blake3));
    c.append(vec![
        client::release_code(&author, identity.clone()).unwrap(),
    ])
    .await
    .unwrap();

    let v = verify(
        &mut c,
        pb::verify_request::What::CodeDigest(identity.sha256.to_vec()),
    )
    .await;
    assert!(v.trusted, "{v:?}");
    assert!(v.reason.contains("thermo-fw@1.0.0"), "{}", v.reason);
    assert_eq!(v.registered_by, author.key_id().0.to_vec());
    assert_eq!(v.party, "acme-maintenance");

    let head = c.chain_head(&subject).await.unwrap();
    c.append(vec![client::change_code_status(
        &author,
        &subject.id,
        head,
        CodeStatus::Withdrawn,
        "CVE",
    )])
    .await
    .unwrap();
    let v = verify(
        &mut c,
        pb::verify_request::What::CodeDigest(identity.blake3.to_vec()),
    )
    .await;
    assert!(!v.trusted);
    assert_eq!(v.status, "withdrawn");

    // Search by name finds it; a second artifact under the same version is refused.
    let found = c
        .log
        .search(pb::SearchRequest {
            by: Some(pb::search_request::By::CodeName("thermo-fw".into())),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.subjects.len(), 1);
    let before = c.status().await.unwrap().event_count;
    let other = CodeIdentity::of_artifact("thermo-fw", "1.0.0", b"a different build", None);
    let err = c
        .append(vec![client::release_code(&author, other).unwrap()])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{}", err.message());
    assert!(
        err.message().contains("thermo-fw version 1.0.0"),
        "{}",
        err.message()
    );
    assert_eq!(before, c.status().await.unwrap().event_count);

    // A developer party registers no devices.
    let dev_author = register_author(&mut c, &cluster.root_key(), device_kinds()).await;
    let key = SigningKey::generate(Algorithm::Ed25519).public_key();
    let before = c.status().await.unwrap().event_count;
    let err = c
        .append(vec![client::register_device(
            &dev_author,
            "SN-1",
            &key,
            vec![],
        )])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message()
            .contains("a developer party may not author device-registered"),
        "{}",
        err.message()
    );
    assert_eq!(before, c.status().await.unwrap().event_count);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_pages_and_verify_tracks_a_stolen_device() {
    let cluster = start_cluster(1, "");
    cluster.wait_ready(Duration::from_secs(30)).await;
    let mut c = cluster.node(1).client();
    let author = cluster.device_author().await;
    let mut keys = Vec::new();
    for i in 0..5 {
        let key = SigningKey::generate(Algorithm::EcdsaP256Sha256).public_key();
        let attrs = vec![("model".to_string(), "thermo-3".to_string())];
        c.append(vec![client::register_device(
            &author,
            &format!("SN-{i}"),
            &key,
            attrs,
        )])
        .await
        .unwrap();
        keys.push(key);
    }

    // Three pages of two, one, ... by attribute.
    let mut token = String::new();
    let mut seen = 0;
    let mut pages = 0;
    loop {
        let page = c
            .log
            .search(pb::SearchRequest {
                by: Some(pb::search_request::By::Attribute("model=thermo-3".into())),
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        seen += page.subjects.len();
        pages += 1;
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!((seen, pages), (5, 3));

    // Bad search input names the problem.
    let err = c
        .log
        .search(pb::SearchRequest {
            by: Some(pb::search_request::By::Serial("SN-1".into())),
            page_size: 5000,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("page_size 5000"));
    let err = c
        .log
        .search(pb::SearchRequest {
            by: Some(pb::search_request::By::CodeDigest(vec![1, 2, 3])),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        err.message().contains("code_digest must be 32 bytes"),
        "{}",
        err.message()
    );

    // Verify a device key: trusted while planned, not once stolen.
    let key = &keys[2];
    let what = || {
        pb::verify_request::What::PublicKey(pb::PublicKey {
            algorithm: pb::SignatureAlgorithm::EcdsaP256Sha256 as i32,
            key: key.bytes().to_vec(),
        })
    };
    let v = verify(&mut c, what()).await;
    assert!(v.trusted, "{v:?}");
    assert!(v.as_of_index >= v.registered_at_index);
    let subject = SubjectRef::new(ics_identity::DEVICE, key.id().to_hex());
    let head: ChainHead = c.chain_head(&subject).await.unwrap();
    c.append(vec![client::change_status(
        &author,
        &subject.id,
        head,
        DeviceStatus::Stolen,
        "site report",
    )])
    .await
    .unwrap();
    let v = verify(&mut c, what()).await;
    assert!(!v.trusted);
    assert_eq!(v.status, "stolen");
    assert_eq!(
        v.subject.map(|s| s.kind),
        Some(ics_identity::DEVICE.to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_identity_and_key_rotation_over_grpc() {
    let cluster = start_cluster(1, "");
    cluster.wait_ready(Duration::from_secs(30)).await;
    let mut c = cluster.node(1).client();
    let kinds = ["service-registered".to_string(), "key-rotated".to_string()]
        .into_iter()
        .collect();
    let author = register_author(&mut c, &cluster.root_key(), kinds).await;
    let old = SigningKey::generate(Algorithm::EcdsaP256Sha256);
    c.append(vec![client::register_service(
        &author,
        "telemetry",
        &old.public_key(),
        vec!["https://telemetry.acme.test:8443".into()],
        "acme-maintenance",
    )])
    .await
    .expect("service registered");
    let subject = SubjectRef::new(ics_identity::SERVICE, old.key_id().to_hex());
    let fingerprint = |k: &SigningKey| pb::verify_request::What::KeyId(k.key_id().0.to_vec());
    assert!(verify(&mut c, fingerprint(&old)).await.trusted);

    // A rotation not signed by the new key is refused, and nothing is written.
    let new = SigningKey::generate(Algorithm::Ed25519);
    let before = c.status().await.unwrap().event_count;
    let head = c.chain_head(&subject).await.unwrap();
    let mut env = client::rotate_key(&author, subject.clone(), head, &new, "yearly", None);
    env.signatures.retain(|s| s.key_id == author.key_id());
    let err = c.append(vec![env]).await.expect_err("refused");
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert!(
        err.message().contains("proof of possession"),
        "{}",
        err.message()
    );
    assert_eq!(c.status().await.unwrap().event_count, before);

    let head = c.chain_head(&subject).await.unwrap();
    c.append(vec![client::rotate_key(
        &author,
        subject.clone(),
        head,
        &new,
        "yearly",
        None,
    )])
    .await
    .expect("rotated");
    let v = verify(&mut c, fingerprint(&old)).await;
    assert!(!v.trusted);
    assert!(v.reason.contains("replaced by rotation"), "{}", v.reason);
    let v = verify(&mut c, fingerprint(&new)).await;
    assert!(v.trusted, "{v:?}");
    assert!(v.reason.contains("service telemetry"), "{}", v.reason);

    // A client checks the history itself: ids, the chain, and every signature
    // (the rotation's second one by the key it brings in).
    let keys = c.keys().await.expect("keys");
    assert!(keys.iter().any(|k| k.root && k.party == "acme-maintenance"));
    assert!(
        keys.iter()
            .any(|k| k.key_id == author.key_id().0.to_vec() && !k.root)
    );
    let history = history(&mut c, &subject).await;
    assert_eq!(history.len(), 2);
    let mut checker = client::HistoryChecker::new(&keys).expect("keys parse");
    for e in &history {
        checker.check(e).expect("the history verifies");
    }
    // A forged signature, a reordered history and a missing key are caught.
    let mut forged = history.clone();
    forged[1].event.as_mut().unwrap().signatures[0].signature[3] ^= 1;
    let mut checker = client::HistoryChecker::new(&keys).unwrap();
    checker.check(&forged[0]).unwrap();
    let why = checker.check(&forged[1]).unwrap_err().to_string();
    assert!(why.contains("does not verify"), "{why}");
    let mut checker = client::HistoryChecker::new(&keys).unwrap();
    let why = checker.check(&history[1]).unwrap_err().to_string();
    assert!(why.contains("chain is broken"), "{why}");
    let mut checker = client::HistoryChecker::new(&[]).unwrap();
    let why = checker.check(&history[0]).unwrap_err().to_string();
    assert!(why.contains("no key"), "{why}");
}

async fn history(c: &mut client::Client, subject: &SubjectRef) -> Vec<pb::StoredEvent> {
    use futures::StreamExt;
    let mut stream = c
        .log
        .history(pb::HistoryRequest {
            subject: Some(ics_node::codec::subject_to_pb(subject)),
            consistency: pb::ReadConsistency::Linearizable as i32,
        })
        .await
        .expect("history")
        .into_inner();
    let mut out = Vec::new();
    while let Some(e) = stream.next().await {
        out.push(e.expect("event"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subjects_by_kind_and_keys_by_id_with_paging_and_refusals() {
    let cluster = start_cluster(1, "");
    cluster.wait_ready(Duration::from_secs(30)).await;
    let mut c = cluster.node(1).client();
    let author = cluster.device_author().await;
    let mut devices = Vec::new();
    for i in 0..5 {
        devices.push(register_device(&mut c, &author, &format!("SN-{i}")).await);
    }
    devices.sort();
    let list = |token: String| pb::ListSubjectsRequest {
        kind: ics_identity::DEVICE.into(),
        page_size: 2,
        page_token: token,
        consistency: pb::ReadConsistency::Linearizable as i32,
    };
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = c
            .log
            .list_subjects(list(token))
            .await
            .expect("page")
            .into_inner();
        assert!(page.subjects.len() <= 2);
        seen.extend(page.subjects.into_iter().map(|s| s.subject.unwrap().id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let expected: Vec<String> = devices.iter().map(|d| d.id.clone()).collect();
    assert_eq!(seen, expected, "every device once, in id order");
    let parties = c
        .log
        .list_subjects(pb::ListSubjectsRequest {
            kind: "party".into(),
            ..list(String::new())
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(parties.subjects.len(), 1);

    let refused = |e: tonic::Status| {
        use tonic_types::StatusExt;
        (
            e.code(),
            e.get_error_details().error_info().unwrap().reason.clone(),
        )
    };
    let e = c
        .log
        .list_subjects(pb::ListSubjectsRequest {
            kind: "gadget".into(),
            ..list(String::new())
        })
        .await
        .unwrap_err();
    assert!(e.message().contains("unknown subject kind"), "{e:?}");
    assert_eq!(
        refused(e),
        (Code::InvalidArgument, "INVALID_REQUEST".into())
    );
    let e = c
        .log
        .list_subjects(pb::ListSubjectsRequest {
            page_size: 5000,
            ..list(String::new())
        })
        .await
        .unwrap_err();
    assert_eq!(
        refused(e),
        (Code::InvalidArgument, "INVALID_REQUEST".into())
    );

    let one = |key_id: Vec<u8>| pb::GetKeysRequest {
        key_id,
        page_size: 0,
        page_token: String::new(),
        consistency: pb::ReadConsistency::Linearizable as i32,
    };
    let k = c
        .log
        .get_keys(one(author.key_id().0.to_vec()))
        .await
        .expect("the author key")
        .into_inner();
    assert_eq!(k.keys.len(), 1);
    assert_eq!(
        k.keys[0].public_key.as_ref().unwrap().key,
        author.public_key().bytes()
    );
    assert_eq!(
        k.keys[0].allowed_kinds,
        ["device-registered", "device-status-changed"]
    );
    let e = c.log.get_keys(one(vec![7; 32])).await.unwrap_err();
    assert_eq!(refused(e), (Code::NotFound, "NOT_FOUND".into()));
    let e = c.log.get_keys(one(vec![7; 5])).await.unwrap_err();
    assert_eq!(
        refused(e),
        (Code::InvalidArgument, "INVALID_REQUEST".into())
    );
    let all = c.keys().await.unwrap();
    assert_eq!(
        all.len(),
        5,
        "the root key, one author key, the TLS CA's key, the transparency log's key and the device CA's issuing key"
    );
}
