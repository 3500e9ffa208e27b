//! Several nodes on loopback: following a miner, healing a partition to the most-work chain,
//! and finishing a sync after being SIGKILLed in the middle of it.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const AUTH: &str = "u:p";

fn node(dir: &Path, port: u16, peers: &[u16]) -> Running {
    let bind = format!("127.0.0.1:{port}");
    let mut args = vec![
        "node".to_string(),
        "--datadir".into(),
        dir.to_str().unwrap().into(),
        "--rpc-bind".into(),
        bind,
        "--rpc-user".into(),
        "u".into(),
        "--rpc-password".into(),
        "p".into(),
    ];
    for p in peers {
        args.push("--peer".into());
        args.push(format!("http://{AUTH}@127.0.0.1:{p}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    spawn(&args, dir)
}

/// Waits (bounded) until every node has the same tip as `leader`.
fn converge(leader: &Running, others: &[&Running]) {
    let want = tip(leader);
    let deadline = Instant::now() + Duration::from_secs(90);
    for o in others {
        loop {
            if tip(o) == want {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no convergence: {:?} vs {:?}",
                tip(o),
                want
            );
            let _ = call(o, "waitfornewblock", json!([200]));
        }
    }
    let roots = rpc(leader, "getshardinfo", json!([]));
    for o in others {
        assert_eq!(
            rpc(o, "getshardinfo", json!([]))
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["state_root"].clone())
                .collect::<Vec<_>>(),
            roots
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["state_root"].clone())
                .collect::<Vec<_>>()
        );
    }
}

#[test]
fn three_nodes_follow_and_heal_a_partition_to_the_most_work_chain() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (pa, pb, pc) = (free_port(), free_port(), free_port());
    let a = node(dirs[0].path(), pa, &[pb, pc]);
    let b = node(dirs[1].path(), pb, &[pa, pc]);
    let c = node(dirs[2].path(), pc, &[pa, pb]);
    mine(&a, 5, b"miner-a");
    converge(&a, &[&b, &c]);
    assert_eq!(tip(&c).0, 5);

    // Partition: C restarts on another port with no peers and mines its own branch.
    drop(c);
    let c_alone = node(dirs[2].path(), free_port(), &[]);
    mine(&c_alone, 3, b"miner-c");
    mine(&a, 2, b"miner-a");
    converge(&a, &[&b]);
    assert_eq!(tip(&a).0, 7);
    assert_eq!(tip(&c_alone).0, 8);
    let c_tip = tip(&c_alone);

    // Heal: C comes back where the others look for it; its branch has more work.
    drop(c_alone);
    let c = node(dirs[2].path(), pc, &[pa, pb]);
    converge(&c, &[&a, &b]);
    assert_eq!(tip(&a), c_tip);
}

#[test]
fn node_killed_mid_sync_restarts_and_finishes_with_the_same_state() {
    let da = tempfile::tempdir().unwrap();
    let dd = tempfile::tempdir().unwrap();
    let pa = free_port();
    let a = node(da.path(), pa, &[]);
    mine(&a, 400, b"miner-a");
    let pd = free_port();
    let d = node(dd.path(), pd, &[pa]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while tip(&d).0 < 50 {
        assert!(Instant::now() < deadline, "sync never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    // SIGKILL (Child::kill) in the middle of the sync.
    drop(d);
    let d = node(dd.path(), pd, &[pa]);
    converge(&a, &[&d]);
}

/// A node started empty syncs a 10,000-block chain (slow: run with --ignored).
#[test]
#[ignore = "slow: 10,000 blocks"]
fn empty_node_syncs_ten_thousand_blocks() {
    let da = tempfile::tempdir().unwrap();
    let dd = tempfile::tempdir().unwrap();
    let pa = free_port();
    let a = node(da.path(), pa, &[]);
    mine(&a, 10_000, b"miner-a");
    let start = Instant::now();
    let d = node(dd.path(), free_port(), &[pa]);
    converge(&a, &[&d]);
    eprintln!(
        "synced 10,000 blocks in {:.1}s",
        start.elapsed().as_secs_f64()
    );
}
