//! Rules are replicated, not configured: replicas with different local
//! configs apply identically, and a node whose build does not run the rules
//! the log activated stops with a clear error instead of diverging.

mod common;

use std::time::Duration;

use common::*;
use ics_identity::IdentityPayload;
use ics_identity::payload::DeviceStatus;
use ics_kernel::SubjectRef;
use ics_kernel::authority::{PARTY, PartyPayload};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_with_other_local_limits_applies_identically() {
    // Node 3 would refuse any text over 8 bytes if its config decided.
    let cluster = start_cluster_with(3, |id| {
        if id == 3 {
            "[limits.events]\nmax_text_bytes = 8\nmax_records_per_subject = 2\n".to_string()
        } else {
            String::new()
        }
    });
    cluster.wait_ready(Duration::from_secs(30)).await;
    let author = cluster.device_author().await;
    // Append through node 3, so its edge sees the requests too.
    let mut c = cluster.node(3).client();
    let subject = register_device(&mut c, &author, "SN-1").await;
    for status in [DeviceStatus::InUse, DeviceStatus::Lost, DeviceStatus::InUse] {
        let out = c
            .append_next(
                &author,
                &subject,
                IdentityPayload::DeviceStatusChanged {
                    status,
                    reason: "a reason well over eight bytes long".into(),
                    openpgp_revocation: None,
                },
            )
            .await
            .expect("accepted under the replicated limits");
        assert_eq!(out.len(), 1);
    }
    let statuses = cluster.wait_converged(Duration::from_secs(20)).await;
    assert!(statuses.iter().all(
        |s| s.state_hash == statuses[0].state_hash && s.event_count == statuses[0].event_count
    ));
    let state = c.subject(&subject).await.expect("subject");
    assert_eq!(state.next_sequence, 4, "{state:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_build_lacks_an_activated_capability_stops_and_says_why() {
    let mut cluster = start_cluster(1, "");
    cluster.wait_ready(Duration::from_secs(30)).await;
    let root = cluster.root_key();
    let mut c = cluster.node(1).client();
    let party = SubjectRef::new(PARTY, "acme-maintenance");
    let status = c.status().await.expect("status");
    let identity = format!(
        "identity/{}",
        <ics_identity::Identity as ics_kernel::capability::Capability>::VERSION
    );
    assert!(status.active_rules.contains(&identity), "{status:?}");
    let mut rules = ics_node::capabilities::genesis_rules(Default::default());
    rules.capabilities.insert("transfer".into(), 1);
    // The log takes the change (the event is well-formed); this build cannot run it.
    let _ = c
        .append_next(&root, &party, PartyPayload::RulesChanged { rules })
        .await;
    let node = cluster.node_mut(1);
    let exit = node
        .wait_exit(Duration::from_secs(20))
        .expect("the node stops by itself");
    assert!(!exit.success());
    let log = node.log();
    let why =
        "this build does not run the rules the log activated: transfer/1 (this build lacks it)";
    assert!(log.contains(why), "{log}");

    // Restarted, it stops again at the same entry: nothing was applied past it.
    node.start();
    let exit = node
        .wait_exit(Duration::from_secs(20))
        .expect("the restarted node stops again");
    assert!(!exit.success());
    assert!(node.log().matches(why).count() >= 2);
}
