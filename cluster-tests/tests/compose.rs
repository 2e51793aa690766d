//! `docker-compose` with `deploy/compose.yaml` brings up the demo federation,
//! and the stock `icsctl` from the image reaches every node from the host.

use std::process::Command;
use std::time::{Duration, Instant};

use ics_cluster_tests::image;

/// Services, their host ports under ICS_PORT_PREFIX=76, what each node must
/// report, and where in the container its party's CA and an operator
/// certificate are (the maintenance cluster's from `icsd tls init`, a single
/// node's made on its first start).
const NODES: &[(&str, &str, &str, &str, usize, &str)] = &[
    (
        "maintenance-1",
        "7601",
        "acme-maintenance",
        "maintenance",
        3,
        "/tls/operator-admin",
    ),
    (
        "maintenance-2",
        "7602",
        "acme-maintenance",
        "maintenance",
        3,
        "/tls/operator-admin",
    ),
    (
        "maintenance-3",
        "7603",
        "acme-maintenance",
        "maintenance",
        3,
        "/tls/operator-admin",
    ),
    (
        "manufacturer",
        "7611",
        "thermo-devices",
        "manufacturer",
        1,
        "/data/tls",
    ),
    (
        "developer",
        "7621",
        "firmware-works",
        "developer",
        1,
        "/data/tls",
    ),
    (
        "infield",
        "7631",
        "site-gateway-01",
        "infield",
        1,
        "/data/tls",
    ),
];

struct Project(String);

impl Project {
    fn compose(&self, args: &[&str]) -> std::process::Output {
        let root = image::workspace_root();
        Command::new("docker-compose")
            .arg("-f")
            .arg(root.join("deploy/compose.yaml"))
            .args(["-p", &self.0])
            .args(args)
            .env("ICS_IMAGE", image::TAG)
            .env("ICS_PORT_PREFIX", "76")
            .output()
            .expect("run docker-compose")
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let out = self.compose(&["down", "-v", "--timeout", "5"]);
        if !out.status.success() {
            eprintln!("compose down: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}

impl Project {
    /// Copies `path` out of `service`'s container into `dest` (`docker cp`
    /// needs nothing inside a scratch image).
    fn copy_out(&self, service: &str, path: &str, dest: &std::path::Path) -> bool {
        let ps = self.compose(&["ps", "-q", service]);
        let id = String::from_utf8_lossy(&ps.stdout).trim().to_string();
        !id.is_empty()
            && Command::new("docker")
                .args(["cp", &format!("{id}:{path}")])
                .arg(dest)
                .status()
                .is_ok_and(|s| s.success())
    }
}

fn icsctl_status(port: &str, tls_dir: &std::path::Path) -> Option<serde_json::Value> {
    let out = Command::new(image::icsctl())
        .args([
            "--server",
            &format!("127.0.0.1:{port}"),
            "--json",
            "cluster",
            "status",
        ])
        .arg("--tls-dir")
        .arg(tls_dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_brings_up_the_demo_federation() {
    image::ensure().await;
    let project = Project(format!("icsdemo{}", std::process::id()));
    let up = project.compose(&["up", "-d"]);
    assert!(
        up.status.success(),
        "compose up failed: {}",
        String::from_utf8_lossy(&up.stderr)
    );

    let material = tempfile::tempdir().unwrap();
    for (service, port, party, role, members, tls_path) in NODES {
        let tls_dir = material.path().join(service);
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if (tls_dir.exists() || project.copy_out(service, tls_path, &tls_dir))
                && let Some(s) = icsctl_status(port, &tls_dir)
                && s["leader"].as_u64().unwrap_or(0) != 0
                && s["party"] == *party
            {
                break s;
            }
            if Instant::now() > deadline {
                let ps = project.compose(&["ps"]);
                let logs = project.compose(&["logs", "--tail", "20"]);
                panic!(
                    "node on port {port} not ready\n{}\n{}",
                    String::from_utf8_lossy(&ps.stdout),
                    String::from_utf8_lossy(&logs.stdout)
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        assert_eq!(status["role"], *role, "port {port}");
        assert_eq!(
            status["members"].as_array().map(Vec::len),
            Some(*members),
            "port {port}: {status}"
        );
    }

    // The health check (icsctl cluster ready inside the scratch image) turns healthy.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ps = project.compose(&["ps"]);
        let text = String::from_utf8_lossy(&ps.stdout).to_string();
        let healthy = text.lines().filter(|l| l.contains("(healthy)")).count();
        if healthy == NODES.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every service turned healthy:\n{text}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
