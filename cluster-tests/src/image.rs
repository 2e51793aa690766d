//! The image under test, built from this checkout by `deploy/build-image.sh`.

use std::path::PathBuf;
use std::process::Command;

use tokio::sync::OnceCell;

/// Tag the tests build and run. A fixed tag: testcontainers pulls only a
/// missing image, and there is no registry to pull from.
pub const TAG: &str = "ics/icsd:test";

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cluster-tests sits in the workspace")
        .to_path_buf()
}

/// The static `icsctl` the image carries, for running it from the host
/// (where `deploy/build-image.sh` left it: `CARGO_TARGET_DIR` or `target/`).
pub fn icsctl() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("x86_64-unknown-linux-gnu/release/icsctl")
}

static BUILT: OnceCell<()> = OnceCell::const_new();

/// Builds the image once per test process.
pub async fn ensure() {
    BUILT
        .get_or_init(|| async {
            let root = workspace_root();
            let status = tokio::task::spawn_blocking(move || {
                Command::new("bash")
                    .arg(root.join("deploy/build-image.sh"))
                    .arg(TAG)
                    .current_dir(&root)
                    .status()
            })
            .await
            .expect("join image build")
            .expect("run deploy/build-image.sh");
            assert!(status.success(), "deploy/build-image.sh failed: {status}");
        })
        .await;
}
