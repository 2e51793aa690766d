//! `docker-compose` with `deploy/compose.yaml` brings up the demo federation,
//! and the stock `icsctl` from the image reaches every node from the host;
//! `deploy/federate.sh` wires the parties' policies, and a device the
//! manufacturer registers for site-01 reaches the gateway through the
//! maintainer, while one for another site does not.

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

impl Project {
    /// `icsctl` inside `service`'s container, as the operator in `tls`;
    /// its stdout when it succeeded.
    fn icsctl(&self, service: &str, tls: &str, args: &[&str]) -> Result<String, String> {
        let mut all = vec![
            "exec",
            "-T",
            service,
            "/usr/local/bin/icsctl",
            "--server",
            "127.0.0.1:7400",
            "--tls-dir",
            tls,
            "--json",
        ];
        all.extend_from_slice(args);
        let out = self.compose(&all);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    fn icsctl_json(&self, service: &str, tls: &str, args: &[&str]) -> Option<serde_json::Value> {
        let out = self.icsctl(service, tls, args).ok()?;
        serde_json::from_str(out.lines().last()?).ok()
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

    // The federation: deploy/federate.sh as a user runs it.
    let federate = Command::new("bash")
        .arg(image::workspace_root().join("deploy/federate.sh"))
        .arg(&project.0)
        .env("ICS_IMAGE", image::TAG)
        .env("ICS_PORT_PREFIX", "76")
        .output()
        .expect("run deploy/federate.sh");
    assert!(
        federate.status.success(),
        "deploy/federate.sh failed: {}\n{}",
        String::from_utf8_lossy(&federate.stdout),
        String::from_utf8_lossy(&federate.stderr)
    );
    let maker = |args: &[&str]| {
        project
            .icsctl("manufacturer", "/data/tls", args)
            .unwrap_or_else(|e| panic!("icsctl {args:?} at the manufacturer: {e}"))
    };
    maker(&["key", "generate", "--out", "/data/author.key"]);
    maker(&[
        "author",
        "add",
        "--signer",
        "/data/root.key",
        "--key",
        "/data/author.key",
        "--label",
        "factory",
        "--kinds",
        "device-registered",
        "--valid-days",
        "30",
    ]);
    let mut devices = Vec::new();
    for site in ["site-02", "site-01"] {
        let key = format!("/data/{site}.key");
        maker(&["key", "generate", "--out", &key]);
        let shown: serde_json::Value =
            serde_json::from_str(maker(&["key", "show", &key]).trim()).expect("key show");
        maker(&[
            "device",
            "register",
            "--signer",
            "/data/author.key",
            "--serial",
            site,
            "--device-key",
            &key,
            "--revocations",
            &format!("/data/{site}.rev"),
            "--attr",
            &format!("site={site}"),
        ]);
        devices.push(shown["key_id"].as_str().expect("a key id").to_string());
    }

    // The site-01 device reaches the gateway through the maintainer, as
    // trusted, saying which sync it came by.
    let deadline = Instant::now() + Duration::from_secs(120);
    let verdict = loop {
        if let Some(v) =
            project.icsctl_json("infield", "/data/tls", &["verify", "--key-id", &devices[1]])
            && v["trusted"] == true
        {
            break v;
        }
        let status = project.icsctl(
            "maintenance-1",
            "/tls/operator-admin",
            &["federation", "status"],
        );
        assert!(
            Instant::now() < deadline,
            "the site-01 device never reached the gateway; the maintainer's federation: {status:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert_eq!(verdict["synced_via"], "acme-maintenance", "{verdict}");
    assert_eq!(verdict["stale"], false, "{verdict}");
    // Registered first, the site-02 device would have come first: it is
    // outside the gateway's share.
    let other = project.icsctl_json("infield", "/data/tls", &["verify", "--key-id", &devices[0]]);
    assert!(
        other.as_ref().is_none_or(|v| v["trusted"] != true),
        "the site-02 device crossed: {other:?}"
    );
    // The maintainer's status shows both sources pulled. A source whose
    // policy came after the maintainer's refused its first pulls (no
    // policy naming the maintainer yet), so it may take a backoff or two.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let status = project
            .icsctl_json(
                "maintenance-1",
                "/tls/operator-admin",
                &["federation", "status"],
            )
            .expect("federation status");
        let synced = ["thermo-devices", "firmware-works"].map(|party| {
            let peer = status["peers"]
                .as_array()
                .and_then(|ps| ps.iter().find(|p| p["party"] == party))
                .unwrap_or_else(|| panic!("{party} in {status}"));
            assert_eq!(peer["pulled"], true, "{peer}");
            peer["cursor_size"].as_u64().unwrap_or(0) > 0 && peer["last_error"] == ""
        });
        if synced.iter().all(|s| *s) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the maintainer never synced both sources: {status}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
