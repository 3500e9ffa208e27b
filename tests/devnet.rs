//! `rexe devnet` smoke test: produces blocks, answers RPC, stops cleanly, resumes.

mod common;

use std::process::Command;

#[test]
fn devnet_runs_stops_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("devnet");
    let run = || {
        Command::new(common::BIN)
            .args([
                "devnet",
                "--datadir",
                d.to_str().unwrap(),
                "--blocks",
                "3",
                "--interval-ms",
                "10",
                "--rpc-bind",
                "127.0.0.1:0",
            ])
            .env("RUST_LOG", "warn")
            .output()
            .expect("run devnet")
    };
    let out = run();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "devnet failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("stopped at height 3"), "{stdout}");
    assert!(stdout.contains("supply-ok=true"), "{stdout}");
    assert!(!stdout.contains("supply-ok=false"), "{stdout}");
    let out = run();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("stopped at height 6"), "resumes: {stdout}");
    assert!(!d.join(".cookie").exists(), "cookie removed at shutdown");
}
