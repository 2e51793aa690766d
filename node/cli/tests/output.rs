//! icsctl's printer as a shell sees it: text or one JSON object per line,
//! and a reader that goes away (`icsctl … | head`) ends it quietly.

use std::process::Command;

fn icsctl() -> &'static str {
    env!("CARGO_BIN_EXE_icsctl")
}

#[test]
fn key_generate_prints_text_or_one_json_object() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("k.key");
    let out = Command::new(icsctl())
        .args(["--json", "key", "generate", "--out"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(text.trim()).expect("one JSON object");
    assert_eq!(v["algorithm"], "ed25519");
    assert_eq!(v["key_id"].as_str().map(str::len), Some(64));

    let out = Command::new(icsctl())
        .args(["key", "show"])
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(&format!("key_id {}", v["key_id"].as_str().unwrap())),
        "{text}"
    );
}

#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("k.key");
    // `true` exits at once; icsctl writes after it, into a pipe with no reader.
    let script = format!(
        "set -o pipefail; (sleep 0.3; exec '{}' key generate --out '{}') | true",
        icsctl(),
        file.display()
    );
    let out = Command::new("bash").args(["-c", &script]).output().unwrap();
    assert!(
        out.status.success(),
        "icsctl failed on a closed pipe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(file.exists(), "the command itself ran");
}
