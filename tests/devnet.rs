//! `rexe devnet` smoke test: merge-mines blocks from two harvest sources (Stratum shares that
//! are only premature work, and shares that are Bitcoin blocks) on the embedded regtest node,
//! completes the peg swap demo (peg-out order, PSBT-paid peg-in, SPV claim), stops cleanly,
//! resumes (L2 and Bitcoin chains, wallets and the claimer's state all persist).

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
                "--share-interval-ms",
                "20",
                // One share in 4 is a Bitcoin block (the default, one in 16, left a run of
                // 47 L2 blocks without an on-chain seal about one time in 20).
                "--bitcoin-bits",
                "1f03ffff",
            ])
            .args(common::DEVNET_LOOPBACK)
            .env("RUST_LOG", "warn")
            .output()
            .expect("run devnet")
    };
    let out = run();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Every failure shows both streams: the demo reports its errors on stderr.
    let both = format!(
        "{stdout}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "devnet failed: {both}");
    // At least 40 blocks: the run also waits for the peg demo to finish.
    let height = |s: &str| -> u64 {
        s.split("stopped at height ")
            .nth(1)
            .and_then(|r| r.split(';').next())
            .and_then(|h| h.parse().ok())
            .unwrap_or_else(|| panic!("no final height in {s}"))
    };
    let first = height(&stdout);
    assert!(first >= 40, "{both}");
    assert!(stdout.contains("supply-ok=true"), "{both}");
    assert!(stdout.contains("peg demo: alice escrowed"), "{both}");
    assert!(stdout.contains("paid alice on Bitcoin"), "{both}");
    assert!(stdout.contains("Peg swap complete"), "{both}");
    assert!(!stdout.contains("supply-ok=false"), "{both}");
    // Blocks sealed from two harvest sources: Bitcoin blocks and premature shares.
    assert!(stdout.contains("sealed-by=on-chain"), "{both}");
    assert!(stdout.contains("sealed-by=premature"), "{both}");
    let out = run();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(height(&stdout) >= first + 40, "resumes: {stdout}");
    assert!(
        !stdout.contains("peg demo: alice"),
        "the demo runs once: {stdout}"
    );
    assert!(!d.join(".cookie").exists(), "cookie removed at shutdown");
}

/// `rexe devnet --nodes 3 --shards-per-node 2`: two more processes, on shards {0,1} and
/// {2,3}, follow the devnet's node over libp2p and end on its tip.
#[test]
fn devnet_cluster_nodes_follow_the_devnet_node() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("devnet");
    let out = Command::new(common::BIN)
        .args([
            "devnet",
            "--datadir",
            d.to_str().unwrap(),
            "--blocks",
            "12",
            "--no-peg-demo",
            "--nodes",
            "3",
            "--shards-per-node",
            "2",
            "--share-interval-ms",
            "20",
            "--bitcoin-bits",
            "1f03ffff",
        ])
        .args(common::DEVNET_LOOPBACK)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run devnet");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let both = format!(
        "{stdout}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "devnet failed: {both}");
    for (node, shards) in [("node-1", "[0, 1]"), ("node-2", "[2, 3]")] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("cluster {node} ")))
            .unwrap_or_else(|| panic!("no report for {node}: {both}"));
        assert!(line.contains(shards), "{line}");
        assert!(line.contains("agrees with the devnet node"), "{both}");
    }
}
