//! The layering the architecture promises, checked on the real dependency
//! graph: the kernel is pure (no I/O, async, storage, RPC or OpenPGP crates
//! anywhere below it) and capabilities never reach the node's storage or
//! consensus crates.

use std::collections::BTreeSet;
use std::process::Command;

/// Names of the crates `package` depends on, transitively (normal edges).
fn dependency_names(package: &str) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let out = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "-p",
            package,
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

fn assert_free_of(package: &str, forbidden: &[&str]) {
    let deps = dependency_names(package);
    assert!(
        deps.contains(package),
        "{package} is in its own tree: {deps:?}"
    );
    let found: Vec<&&str> = forbidden.iter().filter(|f| deps.contains(**f)).collect();
    assert!(found.is_empty(), "{package} depends on {found:?}");
}

#[test]
fn the_kernel_depends_on_no_io_async_storage_rpc_or_openpgp_crate() {
    assert_free_of(
        "ics-kernel",
        &[
            "tokio",
            "tonic",
            "prost",
            "hyper",
            "axum",
            "sled",
            "openraft",
            "sequoia-openpgp",
            "ics-proto",
        ],
    );
}

#[test]
fn capabilities_do_not_reach_storage_or_consensus() {
    assert_free_of("ics-identity", &["sled", "openraft", "ics-node"]);
}
