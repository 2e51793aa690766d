//! A 3-node cluster in containers under continuous writes and reads, through a
//! seeded schedule of faults; then the checker. `ICS_CHAOS_SEED=N` replays a
//! schedule. A failing run prints its seed and keeps the container logs in
//! `target/chaos-logs/seed-N/`. `ICS_CHAOS_ROUNDS=N` runs the plan N times (a soak).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ics_cluster_tests::docker::DockerCluster;
use ics_cluster_tests::schedule::{self, Fault};
use ics_cluster_tests::workload::Workload;
use ics_cluster_tests::{Rng, checker, image};
use ics_kernel::{Algorithm, SigningKey};
use ics_node::client;

fn seed() -> u64 {
    match std::env::var("ICS_CHAOS_SEED") {
        Ok(s) => s.parse().expect("ICS_CHAOS_SEED must be a number"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    }
}

/// How many times the fault plan runs: 1 in CI; more for a soak.
fn rounds() -> usize {
    std::env::var("ICS_CHAOS_ROUNDS")
        .map(|s| s.parse().expect("ICS_CHAOS_ROUNDS must be a number"))
        .unwrap_or(1)
}

async fn register_author(cluster: &DockerCluster, root: &SigningKey) -> anyhow::Result<SigningKey> {
    let author = SigningKey::generate(Algorithm::Ed25519);
    let env = client::register_author(
        root,
        &author.public_key(),
        "chaos",
        [
            "device-registered".to_string(),
            "device-status-changed".to_string(),
        ]
        .into_iter()
        .collect(),
        client::now_ms() + 86_400_000,
    );
    cluster
        .any_client()?
        .append(vec![env])
        .await
        .context("register author")?;
    Ok(author)
}

/// The node certificates the log recorded (first issues and renewals).
async fn tls_certificates(cluster: &DockerCluster) -> anyhow::Result<usize> {
    let page = cluster
        .any_client()?
        .log
        .list_subjects(ics_proto::core_v1::ListSubjectsRequest {
            kind: "tls-cert".into(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .context("list tls-cert subjects")?;
    Ok(page.into_inner().subjects.len())
}

async fn wait_converged(cluster: &DockerCluster) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let mut seen = Vec::new();
        for id in cluster.ids() {
            if let Some(s) = cluster.status(id).await {
                seen.push((s.event_count, s.log_hash, s.raft_applied_index));
            }
        }
        if seen.len() == cluster.nodes.len() && seen.windows(2).all(|w| w[0] == w[1]) {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("replicas did not converge: {seen:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted
        .get(((sorted.len().max(1) - 1) as f64 * p).round() as usize)
        .copied()
        .unwrap_or_default()
}

async fn scenario(
    cluster: &mut DockerCluster,
    seed: u64,
    work: &std::path::Path,
) -> anyhow::Result<String> {
    let started = Instant::now();
    cluster.wait_healthy(Duration::from_secs(90)).await?;
    let root = cluster.root_key(work)?;
    let author = Arc::new(register_author(cluster, &root).await?);
    let workload = Workload::start(cluster.addresses.clone(), author.clone(), 4, 2, seed);
    while workload.acked() < 20 {
        if started.elapsed() > Duration::from_secs(120) {
            bail!("no writes acknowledged before the faults");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut rng = Rng::new(seed);
    let faults = schedule::schedule(&mut rng, rounds());
    let mut next_id = cluster.ids().into_iter().max().unwrap_or(0) + 1;
    let mut elections = Vec::new();
    let mut injected: BTreeMap<Fault, usize> = BTreeMap::new();
    for (i, fault) in faults.iter().enumerate() {
        let outcome = schedule::inject(cluster, *fault, &mut rng, &mut next_id)
            .await
            .with_context(|| format!("fault {} of {} ({fault:?})", i + 1, faults.len()))?;
        *injected.entry(*fault).or_default() += 1;
        elections.extend(outcome.election);
        eprintln!(
            "[{:>5.1}s] fault {:>2}/{} {fault:?} healed; {} writes acknowledged",
            started.elapsed().as_secs_f64(),
            i + 1,
            faults.len(),
            workload.acked()
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let history = workload.finish().await;
    cluster.wait_healthy(Duration::from_secs(60)).await?;
    wait_converged(cluster).await?;
    let replicas = cluster.addresses.read().expect("lock").clone();
    let verdict = checker::check(
        &history,
        &replicas,
        &cluster.addresses.tls,
        &author.public_key(),
    )
    .await;
    if !verdict.problems.is_empty() {
        bail!(
            "checker found {} problems:\n{}",
            verdict.problems.len(),
            verdict.problems.join("\n")
        );
    }
    // Node certificates live two minutes: each node renewed and recorded its
    // own under the faults, and the nodes kept accepting each other.
    let certs = tls_certificates(cluster).await?;
    let started_with = cluster.nodes.len();
    if certs <= started_with {
        bail!("{certs} TLS certificates recorded: no renewal happened during the run");
    }
    elections.sort();
    Ok(format!(
        "seed {seed}: {} faults {injected:?}; {} writes acknowledged, {} linearizable reads checked, {} subjects, \
         {} events on every replica, {} signed checkpoints served and proven prefixes of the final tree, {certs} node certificates recorded (renewals); time to a new leader p50 {:?} \
         max {:?} over {} elections; {:.0} s",
        faults.len(),
        verdict.acked,
        verdict.reads,
        verdict.subjects,
        verdict.event_count,
        verdict.checkpoints,
        percentile(&elections, 0.5),
        elections.last().copied().unwrap_or_default(),
        elections.len(),
        started.elapsed().as_secs_f64()
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seeded_faults_under_continuous_writes_lose_nothing() {
    let seed = seed();
    eprintln!("chaos seed {seed} (replay with ICS_CHAOS_SEED={seed})");
    image::ensure().await;
    let run_id = format!("icschaos{}", std::process::id());
    let mut cluster = DockerCluster::start(&run_id, 3)
        .await
        .expect("start the cluster");
    let work = tempfile_dir(&run_id);
    let result = scenario(&mut cluster, seed, &work).await;
    if result.is_err() {
        let dir = image::workspace_root().join(format!("target/chaos-logs/seed-{seed}"));
        cluster.save_logs(&dir);
        eprintln!("container logs kept in {}", dir.display());
    }
    cluster.teardown().await;
    let _ = std::fs::remove_dir_all(&work);
    match result {
        Ok(report) => eprintln!("{report}"),
        Err(e) => {
            panic!("chaos run failed with seed {seed} (replay with ICS_CHAOS_SEED={seed}): {e:#}")
        }
    }
}

fn tempfile_dir(run_id: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(run_id);
    std::fs::create_dir_all(&dir).expect("work dir");
    dir
}
