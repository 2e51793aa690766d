//! Two parties in containers, each its own 3-node cluster on its own
//! network, federating over a shared one: a manufacturer (acme) registers
//! devices of two sites and lets the maintainer read site plant-7's only;
//! the maintainer imports acme's devices. Under continuous writes at acme:
//! the maintainer's leader is SIGKILLed while it streams acme's backlog, the
//! source's leader is restarted, the parties are partitioned and healed,
//! the importer's leader is paused (a leader change there). Then the
//! checker: every acknowledged plant-7 event on every maintainer replica,
//! once, in acme's namespace; no plant-9 event there; nothing that is not in
//! acme's log; the replicas one log and one state. A failing run keeps the
//! container logs in `target/federation-logs/`.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ics_cluster_tests::checker::{self, Crossing};
use ics_cluster_tests::docker::{self, DockerCluster, PartySpec};
use ics_cluster_tests::image;
use ics_kernel::{Algorithm, Envelope, EventId, SigningKey};
use ics_node::client::{self, Client};
use ics_proto::federation_v1 as fpb;

const SOURCE: &str = "acme";
const IMPORTER: &str = "acme-maintenance";
/// Events at acme before the importer's policy lets it pull: a backlog
/// long enough to kill the puller in the middle of streaming it.
const BACKLOG_BATCHES: usize = 150;

/// `icsctl` from the image, as the test's operator of `cluster`.
fn ctl(cluster: &DockerCluster, args: &[&str]) -> anyhow::Result<String> {
    let server = cluster.any_address()?;
    let out = std::process::Command::new(image::icsctl())
        .arg("--tls-dir")
        .arg(cluster.operator_tls_dir())
        .args(["--server", &server])
        .args(args)
        .output()
        .context("run icsctl")?;
    if !out.status.success() {
        bail!(
            "icsctl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ctl_json(cluster: &DockerCluster, args: &[&str]) -> anyhow::Result<serde_json::Value> {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = ctl(cluster, &all)?;
    let line = out.lines().last().context("no output")?;
    Ok(serde_json::from_str(line)?)
}

/// One party's record of the other in the log: recognition with its root key.
fn recognize(
    me: &DockerCluster,
    my_root: &std::path::Path,
    other: &str,
    role: &str,
    other_root: &std::path::Path,
) -> anyhow::Result<()> {
    let shown = ctl_json(me, &["key", "show", path(other_root)?])?;
    let public = format!(
        "{}:{}",
        shown["algorithm"].as_str().context("algorithm")?,
        shown["public_key"].as_str().context("public key")?
    );
    ctl(
        me,
        &[
            "recognize",
            "--signer",
            path(my_root)?,
            "--party",
            other,
            "--role",
            role,
            "--root-public",
            &public,
        ],
    )?;
    Ok(())
}

fn path(p: &std::path::Path) -> anyhow::Result<&str> {
    p.to_str().context("a UTF-8 path")
}

fn publish(
    cluster: &DockerCluster,
    root: &std::path::Path,
    dir: &std::path::Path,
    document: String,
) -> anyhow::Result<()> {
    let file = dir.join(format!("{}-policy.toml", cluster.spec.party));
    std::fs::write(&file, document)?;
    ctl(
        cluster,
        &[
            "policy",
            "publish",
            "--signer",
            path(root)?,
            "--file",
            path(&file)?,
        ],
    )?;
    Ok(())
}

fn peer(name: &str, endpoints: &[String], ca: &str) -> String {
    let endpoints: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    format!(
        "[[peer]]\nname = \"{name}\"\nendpoints = [{}]\ntls_ca = \"\"\"\n{ca}\"\"\"\n\n",
        endpoints.join(", ")
    )
}

/// What acme wrote: each event's id by whether the policies let it cross.
#[derive(Default)]
struct Written {
    /// plant-7, acknowledged: must arrive.
    required: HashSet<EventId>,
    /// plant-9, whether acknowledged or not: must never arrive.
    forbidden: HashSet<EventId>,
    acked_batches: usize,
    failed_batches: usize,
}

/// A batch of `n` device registrations, alternating sites plant-7 and plant-9.
fn batch(author: &SigningKey, tag: &str, n: usize) -> Vec<(bool, Envelope)> {
    (0..n)
        .map(|i| {
            let shared = i % 2 == 0;
            let key = SigningKey::generate(Algorithm::Ed25519).public_key();
            let site = if shared { "plant-7" } else { "plant-9" };
            let event = client::register_device(
                author,
                &format!("{tag}-{i}"),
                &key,
                vec![("site".into(), site.into())],
            );
            (shared, event)
        })
        .collect()
}

async fn append_recorded(
    cluster_addresses: &docker::Addresses,
    events: Vec<(bool, Envelope)>,
    written: &std::sync::Mutex<Written>,
) {
    let addr = cluster_addresses
        .read()
        .expect("lock")
        .values()
        .next()
        .cloned();
    let ids: Vec<(bool, EventId)> = events
        .iter()
        .map(|(s, e)| (*s, EventId::of_body(&e.body)))
        .collect();
    {
        let mut w = written.lock().expect("lock");
        for (shared, id) in &ids {
            if !shared {
                w.forbidden.insert(*id);
            }
        }
    }
    let acked = match addr.map(|a| Client::connect(&a, &cluster_addresses.tls)) {
        Some(Ok(mut c)) => {
            let envelopes = events.into_iter().map(|(_, e)| e).collect();
            matches!(
                tokio::time::timeout(Duration::from_secs(10), c.append(envelopes)).await,
                Ok(Ok(_))
            )
        }
        _ => false,
    };
    let mut w = written.lock().expect("lock");
    if acked {
        w.acked_batches += 1;
        w.required
            .extend(ids.iter().filter(|(s, _)| *s).map(|(_, id)| *id));
    } else {
        w.failed_batches += 1;
    }
}

/// The importer's view of its pull from acme, as its leader reports it.
async fn pull_status(maint: &DockerCluster) -> Option<fpb::PeerStatus> {
    let mut c = maint.any_client().ok()?;
    let r = tokio::time::timeout(
        Duration::from_secs(3),
        c.federation.status(fpb::StatusRequest {}),
    )
    .await
    .ok()?
    .ok()?
    .into_inner();
    if !r.leader {
        // Ask the leader itself: the pull figures are its own.
        let leader = maint
            .addresses
            .read()
            .expect("lock")
            .get(&r.leader_id)
            .cloned()?;
        let mut c = Client::connect(&leader, &maint.addresses.tls).ok()?;
        let r = c
            .federation
            .status(fpb::StatusRequest {})
            .await
            .ok()?
            .into_inner();
        return r.peers.into_iter().find(|p| p.party == SOURCE);
    }
    r.peers.into_iter().find(|p| p.party == SOURCE)
}

/// Waits until the importer's cursor in acme's log passes `past` (the pull
/// goes on, under the present fault or after it); the cursor then.
async fn pull_passes(maint: &DockerCluster, past: u64, what: &str) -> anyhow::Result<u64> {
    let started = Instant::now();
    loop {
        if let Some(p) = pull_status(maint).await
            && p.cursor_size > past
        {
            return Ok(p.cursor_size);
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("{what}: the importer's cursor stayed at {past} or below");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn scenario(
    acme: &mut DockerCluster,
    maint: &mut DockerCluster,
    work: &std::path::Path,
) -> anyhow::Result<String> {
    acme.wait_healthy(Duration::from_secs(120)).await?;
    maint.wait_healthy(Duration::from_secs(120)).await?;
    acme.root_key(work)?;
    maint.root_key(work)?;
    let acme_root = work.join(format!("{SOURCE}-root.key"));
    let maint_root = work.join(format!("{IMPORTER}-root.key"));
    let root = ics_node::keyfile::read(&acme_root)?;
    let author = SigningKey::generate(Algorithm::Ed25519);
    acme.any_client()?
        .append(vec![client::register_author(
            &root,
            &author.public_key(),
            "factory",
            ["device-registered".to_string()].into_iter().collect(),
            client::now_ms() + 86_400_000,
        )])
        .await
        .context("register acme's factory key")?;

    // The backlog, before the importer may pull.
    let written = Arc::new(std::sync::Mutex::new(Written::default()));
    for b in 0..BACKLOG_BATCHES {
        append_recorded(
            &acme.addresses,
            batch(&author, &format!("backlog-{b}"), 100),
            &written,
        )
        .await;
    }

    recognize(maint, &maint_root, SOURCE, "manufacturer", &acme_root)?;
    recognize(acme, &acme_root, IMPORTER, "maintenance", &maint_root)?;
    let vkey = ctl_json(acme, &["log", "checkpoint"])?["vkey"]
        .as_str()
        .context("acme's log vkey")?
        .to_string();
    ctl(
        maint,
        &[
            "log",
            "peer",
            "--signer",
            path(&maint_root)?,
            "--party",
            SOURCE,
            "--vkey",
            &vkey,
        ],
    )?;
    publish(
        acme,
        &acme_root,
        work,
        format!(
            "party = \"{SOURCE}\"\nversion = 1\n\n{}[[domain]]\nname = \"plant-7\"\nsubjects = [\"device\"]\nsite = \"plant-7\"\n\n\
             [[read]]\npeer = \"{IMPORTER}\"\ndomain = \"plant-7\"\nkinds = [\"*\"]\n",
            peer(IMPORTER, &[], &maint.ca_pem()?)
        ),
    )?;
    let backlog_size = ctl_json(acme, &["log", "checkpoint"])?["size"]
        .as_u64()
        .context("acme's checkpoint size")?;

    // The writer at acme runs through every fault.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, written, addresses) = (stop.clone(), written.clone(), acme.addresses.clone());
        let author = SigningKey::from_secret(author.algorithm(), &author.secret_bytes())?;
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                append_recorded(
                    &addresses,
                    batch(&author, &format!("live-{n}"), 10),
                    &written,
                )
                .await;
                n += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    // The importer may pull now; kill its leader mid-stream.
    publish(
        maint,
        &maint_root,
        work,
        format!(
            "party = \"{IMPORTER}\"\nversion = 1\n\n{}[[domain]]\nname = \"acme-devices\"\nsubjects = [\"device\"]\nnamespace = \"{SOURCE}\"\n\n\
             [[import]]\npeer = \"{SOURCE}\"\ndomain = \"acme-devices\"\nkinds = [\"*\"]\n",
            peer(SOURCE, &acme.federation_endpoints(), &acme.ca_pem()?)
        ),
    )?;
    let started = Instant::now();
    let mid_stream = loop {
        if let Some(p) = pull_status(maint).await
            && p.cursor_size > 0
        {
            break p.cursor_size;
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("the importer never started pulling");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let leader = maint.leader().await.context("the importer's leader")?;
    maint.kill(leader).await?;
    if mid_stream >= backlog_size {
        bail!(
            "the pull finished ({mid_stream} of {backlog_size}) before the kill: make the backlog longer"
        );
    }
    let (new_leader, _) = maint
        .wait_new_leader(Some(leader), Duration::from_secs(30))
        .await?;
    let cursor = pull_passes(maint, mid_stream, "the new leader resuming the pull").await?;
    maint.restart(leader).await?;
    let mut log = vec![format!(
        "importer leader {leader} killed at cursor {mid_stream} of {backlog_size}; node {new_leader} took over"
    )];

    // The source's leader restarts.
    let cursor = pull_passes(maint, cursor, "the pull after the restart").await?;
    let source_leader = acme.leader().await.context("acme's leader")?;
    acme.stop(source_leader).await?;
    acme.wait_new_leader(Some(source_leader), Duration::from_secs(30))
        .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    acme.restart(source_leader).await?;
    log.push(format!("source leader {source_leader} restarted"));

    // Partition between the parties; the importer says why it cannot pull.
    let cursor = pull_passes(maint, cursor, "the pull after the source's leader change").await?;
    acme.set_federation_link(false).await?;
    let cut = Instant::now();
    let error = loop {
        if let Some(p) = pull_status(maint).await
            && !p.last_error.is_empty()
            && p.consecutive_failures > 0
        {
            break p.last_error;
        }
        if cut.elapsed() > Duration::from_secs(60) {
            bail!("the partition never showed in the importer's federation status");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    tokio::time::sleep(Duration::from_secs(5)).await;
    acme.set_federation_link(true).await?;
    log.push(format!(
        "partitioned {:?}; the importer reported: {error}",
        cut.elapsed()
    ));

    // A leader change on the importer.
    let cursor = pull_passes(maint, cursor, "the catch-up after the partition").await?;
    let leader = maint.leader().await.context("the importer's leader")?;
    maint.pause(leader).await?;
    let (new_leader, _) = maint
        .wait_new_leader(Some(leader), Duration::from_secs(30))
        .await?;
    let cursor = pull_passes(maint, cursor, "the pull under the new leader").await?;
    maint.unpause(leader).await?;
    log.push(format!(
        "importer leader {leader} paused; node {new_leader} took over"
    ));

    pull_passes(maint, cursor, "the pull after the pause").await?;
    stop.store(true, Ordering::Relaxed);
    writer.await?;
    maint.wait_healthy(Duration::from_secs(60)).await?;
    acme.wait_healthy(Duration::from_secs(60)).await?;

    // Convergence, then the verdict.
    let replicas = maint.addresses.read().expect("lock").clone();
    let source_addr = acme.any_address()?;
    let source_log: HashSet<EventId> = checker::log_events(&source_addr, &acme.addresses.tls)
        .await?
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    let crossing = {
        let w = written.lock().expect("lock");
        log.push(format!(
            "{} batches acknowledged at acme, {} not",
            w.acked_batches, w.failed_batches
        ));
        Crossing {
            namespace: SOURCE.into(),
            required: w.required.clone(),
            source_log,
            forbidden: w.forbidden.clone(),
        }
    };
    let started = Instant::now();
    loop {
        let verdict = checker::check_federation(&crossing, &replicas, &maint.addresses.tls).await;
        if verdict.problems.is_empty() {
            log.push(format!(
                "{} required events on all {} importer replicas after {:?}; {} events each",
                verdict.acked,
                replicas.len(),
                started.elapsed(),
                verdict.event_count
            ));
            return Ok(log.join("\n"));
        }
        if started.elapsed() > Duration::from_secs(180) {
            bail!(
                "federation did not converge:\n{}\n{}",
                log.join("\n"),
                verdict.problems.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_parties_converge_through_faults_and_nothing_outside_policy_crosses() {
    image::ensure().await;
    let run = format!("fed{}", std::process::id());
    // Sorts after both clusters' own networks (`fed…-net`).
    let federation = format!("zz-{run}-federation");
    docker::federation_network(&federation)
        .await
        .expect("the federation network");
    let spec = |party: &str, role: &str| PartySpec {
        party: party.into(),
        role: role.into(),
        federation: Some(federation.clone()),
    };
    let mut acme = DockerCluster::start_party(&format!("{run}a"), 3, spec(SOURCE, "manufacturer"))
        .await
        .expect("acme's cluster");
    let mut maint =
        DockerCluster::start_party(&format!("{run}m"), 3, spec(IMPORTER, "maintenance"))
            .await
            .expect("the maintainer's cluster");
    let work = tempfile::tempdir().expect("a work dir");
    let result = scenario(&mut acme, &mut maint, work.path()).await;
    if result.is_err() {
        let dir = image::workspace_root().join("target/federation-logs");
        acme.save_logs(&dir);
        maint.save_logs(&dir);
    }
    acme.teardown().await;
    maint.teardown().await;
    docker::remove_network(&federation).await;
    match result {
        Ok(log) => println!("{log}"),
        Err(e) => panic!("{e:#}"),
    }
}
