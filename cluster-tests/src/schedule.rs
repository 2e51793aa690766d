//! The seeded fault schedule and how each fault is injected and healed.

use std::time::Duration;

use anyhow::Context;

use crate::Rng;
use crate::docker::DockerCluster;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// SIGKILL the leader; restart it on the same volume.
    KillLeader,
    /// SIGKILL a random node; restart it on the same volume.
    KillRandom,
    /// Disconnect a random follower from the network, then reconnect it.
    PartitionOne,
    /// Minority/majority split: the leader alone on one side, the other
    /// nodes on the other; the majority elects a new leader.
    SplitLeaderMinority,
    /// Freeze a random node's processes (cgroup freezer), then thaw it.
    Pause,
    /// SIGKILL every node, then start them all.
    FullRestart,
    /// Stop and start each node in turn, gracefully.
    RollingRestart,
    /// Add a fresh node and remove an old follower.
    ReplaceNode,
}

/// How many of each fault one run injects.
pub const PLAN: &[(Fault, usize)] = &[
    (Fault::KillLeader, 10),
    (Fault::KillRandom, 10),
    (Fault::PartitionOne, 5),
    (Fault::SplitLeaderMinority, 5),
    (Fault::Pause, 5),
    (Fault::FullRestart, 1),
    (Fault::RollingRestart, 1),
    (Fault::ReplaceNode, 1),
];

/// `rounds` times the plan, each round in its own seeded order.
pub fn schedule(rng: &mut Rng, rounds: usize) -> Vec<Fault> {
    let mut all = Vec::new();
    for _ in 0..rounds {
        let mut faults: Vec<Fault> = PLAN
            .iter()
            .flat_map(|(f, n)| std::iter::repeat_n(*f, *n))
            .collect();
        rng.shuffle(&mut faults);
        all.extend(faults);
    }
    all
}

/// What injecting one fault measured.
#[derive(Debug, Default)]
pub struct Outcome {
    /// From the leader's SIGKILL (or isolation) to a new leader seen.
    pub election: Option<Duration>,
}

fn hold(rng: &mut Rng) -> Duration {
    Duration::from_millis(1000 + rng.below(1500))
}

/// Injects `fault`, keeps it for a while, heals it and waits for health.
pub async fn inject(
    cluster: &mut DockerCluster,
    fault: Fault,
    rng: &mut Rng,
    next_id: &mut u64,
) -> anyhow::Result<Outcome> {
    let mut outcome = Outcome::default();
    let ids = cluster.ids();
    match fault {
        Fault::KillLeader => {
            let leader = cluster.leader().await.context("no leader to kill")?;
            cluster.kill(leader).await?;
            let (_, took) = cluster
                .wait_new_leader(Some(leader), Duration::from_secs(30))
                .await?;
            outcome.election = Some(took);
            tokio::time::sleep(hold(rng)).await;
            cluster.restart(leader).await?;
        }
        Fault::KillRandom => {
            let victim = *rng.pick(&ids);
            cluster.kill(victim).await?;
            tokio::time::sleep(hold(rng)).await;
            cluster.restart(victim).await?;
        }
        Fault::PartitionOne => {
            let leader = cluster.leader().await.context("no leader")?;
            let followers: Vec<u64> = ids.iter().copied().filter(|i| *i != leader).collect();
            let victim = *rng.pick(&followers);
            cluster.disconnect(victim).await?;
            tokio::time::sleep(hold(rng)).await;
            cluster.reconnect(victim).await?;
        }
        Fault::SplitLeaderMinority => {
            let leader = cluster.leader().await.context("no leader")?;
            cluster.disconnect(leader).await?;
            let (_, took) = cluster
                .wait_new_leader(Some(leader), Duration::from_secs(30))
                .await?;
            outcome.election = Some(took);
            tokio::time::sleep(hold(rng)).await;
            cluster.reconnect(leader).await?;
        }
        Fault::Pause => {
            let victim = *rng.pick(&ids);
            cluster.pause(victim).await?;
            tokio::time::sleep(hold(rng)).await;
            cluster.unpause(victim).await?;
        }
        Fault::FullRestart => {
            for id in &ids {
                cluster.kill(*id).await?;
            }
            tokio::time::sleep(hold(rng)).await;
            for id in &ids {
                cluster.restart(*id).await?;
            }
        }
        Fault::RollingRestart => {
            for id in &ids {
                cluster.stop(*id).await?;
                cluster.restart(*id).await?;
                cluster.wait_healthy(Duration::from_secs(60)).await?;
            }
        }
        Fault::ReplaceNode => {
            let leader = cluster.leader().await.context("no leader")?;
            let followers: Vec<u64> = ids.iter().copied().filter(|i| *i != leader).collect();
            let old = *rng.pick(&followers);
            let new = *next_id;
            *next_id += 1;
            cluster.replace(old, new).await?;
        }
    }
    cluster
        .wait_healthy(Duration::from_secs(60))
        .await
        .with_context(|| format!("after {fault:?}"))?;
    Ok(outcome)
}
