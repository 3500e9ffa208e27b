//! `rexe devnet` smoke test: merge-mines blocks from two harvest sources on the embedded
//! regtest node, stops cleanly, resumes (L2 and Bitcoin chains both persist).

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
                "40",
                "--interval-ms",
                "1",
                "--rpc-bind",
                "127.0.0.1:0",
                "--bitcoin-rpc-bind",
                "127.0.0.1:0",
                "--bitcoin-bits",
                "201fffff",
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
    assert!(stdout.contains("stopped at height 40"), "{stdout}");
    assert!(stdout.contains("supply-ok=true"), "{stdout}");
    assert!(!stdout.contains("supply-ok=false"), "{stdout}");
    // Blocks sealed from two harvest sources: Bitcoin blocks and premature shares.
    assert!(stdout.contains("sealed-by=on-chain"), "{stdout}");
    assert!(stdout.contains("sealed-by=premature"), "{stdout}");
    let out = run();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("stopped at height 80"), "resumes: {stdout}");
    assert!(!d.join(".cookie").exists(), "cookie removed at shutdown");
}
