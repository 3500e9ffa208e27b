//! Client commands against a running node: key files, send, balance.

mod common;

use std::process::Command;

use bitcoin::hex::{DisplayHex, FromHex};
use common::*;
use rexe_chain::encode::{Decode, Encode};
use rexe_chain::Block;
use serde_json::json;

fn rexe(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).output().expect("run rexe");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn key_send_and_balance_against_a_node() {
    let dir = tempfile::tempdir().unwrap();
    let node = spawn(
        &[
            "node",
            "--datadir",
            dir.path().to_str().unwrap(),
            "--rpc-bind",
            "127.0.0.1:0",
        ],
        dir.path(),
    );
    let key = dir.path().join("alice.key");
    let (ok, alice, err) = rexe(&["key", "new", key.to_str().unwrap(), "--network", "regtest"]);
    assert!(ok, "{err}");
    assert!(alice.starts_with("trx1"), "{alice}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // A second `key new` on the same file refuses to overwrite it.
    assert!(!rexe(&["key", "new", key.to_str().unwrap()]).0);

    // Mine a block paying Alice.
    let t = call(&node, "getblocktemplate", json!([alice]));
    let mut b =
        Block::from_bytes(&Vec::<u8>::from_hex(t["result"]["hex"].as_str().unwrap()).unwrap())
            .unwrap();
    seal(&mut b);
    assert!(call(
        &node,
        "submitblock",
        json!([b.to_bytes().to_lower_hex_string()])
    )["result"]
        .is_null());

    let bob_key = dir.path().join("bob.key");
    let (_, bob, _) = rexe(&[
        "key",
        "new",
        bob_key.to_str().unwrap(),
        "--network",
        "regtest",
    ]);
    let cookie = dir.path().join(".cookie");
    let rpc = [
        "--rpc",
        node.rpc.as_str(),
        "--rpc-cookie",
        cookie.to_str().unwrap(),
    ];
    let mut args = vec![
        "send",
        "--key",
        key.to_str().unwrap(),
        "--to",
        &bob,
        "--amount",
        "1234",
    ];
    args.extend(rpc);
    let (ok, txid, err) = rexe(&args);
    assert!(ok, "{err}");
    assert_eq!(txid.len(), 64, "{txid}");
    assert_eq!(
        call(&node, "getmempoolinfo", json!([]))["result"]["size"],
        json!(1)
    );

    // The sent transaction's fees came from the node's estimate for the sender's shard.
    let pending = call(&node, "gettransaction", json!([txid]));
    let est = call(&node, "estimatefee", json!([alice]));
    assert_eq!(
        pending["result"]["tx"]["tx"]["max_fee"], est["result"]["max_fee_msat"],
        "{pending} {est}"
    );
    // Explicit fees: a tip above the max fee is refused by the CLI, a max fee below the
    // minimum base fee by the node, each with its reason.
    for (fees, why) in [
        (["--max-fee", "3", "--tip", "5"], "above --max-fee"),
        (["--max-fee", "0", "--tip", "0"], "below"),
    ] {
        let mut args = vec![
            "send",
            "--key",
            key.to_str().unwrap(),
            "--to",
            &bob,
            "--amount",
            "1",
        ];
        args.extend(fees);
        args.extend(rpc);
        let (ok, _, err) = rexe(&args);
        assert!(!ok && err.contains(why), "{fees:?}: {err}");
    }

    // Spending more than the balance is refused with the node's reason.
    let mut args = vec![
        "send",
        "--key",
        key.to_str().unwrap(),
        "--to",
        &bob,
        "--amount",
        "999999999999",
    ];
    args.extend(rpc);
    let (ok, _, err) = rexe(&args);
    assert!(!ok);
    assert!(err.contains("insufficient funds"), "{err}");

    // The generic RPC client.
    let mut args = vec!["rpc", "getblockcount"];
    args.extend(rpc);
    let (ok, out, err) = rexe(&args);
    assert!(ok, "{err}");
    assert_eq!(out, "1");
    let mut args = vec!["rpc", "getblockhash", "0"];
    args.extend(rpc);
    assert_eq!(rexe(&args).1.len(), 64);
    let mut args = vec!["rpc", "nosuchmethod"];
    args.extend(rpc);
    let (ok, _, err) = rexe(&args);
    assert!(!ok && err.contains("-32601"), "{err}");

    let mut args = vec!["balance", &alice];
    args.extend(rpc);
    let (ok, out, err) = rexe(&args);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["balance"].as_u64().unwrap() > 0);
    // The secret never appears in any output.
    let secret = std::fs::read_to_string(&key).unwrap();
    assert!(!out.contains(secret.trim()) && !err.contains(secret.trim()));
}

#[test]
fn auxpow_check_reports_real_namecoin_data() {
    let hex_str = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/miner/tests/data/namecoin-mainnet-37174.header-auxpow.hex"
    ))
    .unwrap();
    let (ok, out, err) = rexe(&["auxpow", "check", "--chain-id", "1", hex_str.trim()]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["valid"], json!(true));
    let (ok, out, _) = rexe(&["auxpow", "check", "--chain-id", "0x62", hex_str.trim()]);
    assert!(!ok, "wrong chain id fails");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    // Namecoin's first check: the merge-mined block's own chain id.
    assert!(v["error"].as_str().unwrap().contains("chain ID"), "{v}");
}

/// `rexe … | head`: a closed stdout ends the command quietly (SIGPIPE, as Unix tools do),
/// not with a panic about a failed write.
#[test]
fn a_closed_stdout_pipe_is_not_a_panic() {
    use std::os::unix::process::ExitStatusExt;
    let hex_str = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/miner/tests/data/namecoin-mainnet-37174.header-auxpow.hex"
    ))
    .unwrap();
    // A pipe whose read end is closed before the command starts: its first write fails
    // (closing it after spawning raced with that write under load).
    let (read_end, write_end) = rustix::pipe::pipe().unwrap();
    drop(read_end);
    let stdout = std::process::Stdio::from(write_end);
    let out = Command::new(BIN)
        .args(["auxpow", "check", "--chain-id", "1", hex_str.trim()])
        .stdout(stdout)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        out.status.signal(),
        Some(rustix::process::Signal::PIPE.as_raw()),
        "{stderr}"
    );
}

/// `rexe bench e2e` on a small load: the client process's signed transfers are all admitted
/// over the JSON-RPC, committed, and the supply audit holds (the benchmark checks both).
#[test]
fn bench_e2e_commits_every_signed_transfer() {
    let (ok, out, err) = rexe(&[
        "bench",
        "e2e",
        "--json",
        "--accounts",
        "40",
        "--txs",
        "400",
        "--batch",
        "64",
        "--connections",
        "3",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(v["name"], "e2e-signed-transfers");
    assert_eq!(v["txs"], 400);
    assert!(v["blocks"].as_u64().unwrap() >= 1);
    assert!(v["ops_per_sec"].as_f64().unwrap() > 0.0);
}

/// `rexe bench transfers --rounds`: every configuration runs once per round, each run's
/// figures are printed, and one summary pairs the runs of each round into ratios with their
/// medians.
#[test]
fn bench_transfers_in_rounds_reports_per_round_ratios_and_medians() {
    let (ok, out, err) = rexe(&[
        "bench",
        "transfers",
        "--json",
        "--accounts",
        "2000,4000",
        "--threads",
        "1,2",
        "--rounds",
        "2",
        "--blocks",
        "2",
        "--block-txs",
        "200",
    ]);
    assert!(ok, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 2 * 4 + 1, "{out}");
    let runs: Vec<(u64, u64)> = lines[..8]
        .iter()
        .map(|v| {
            assert_eq!(v["name"], "transfers");
            assert_eq!(v["transfers"], 400);
            (
                v["accounts"].as_u64().unwrap(),
                v["threads"].as_u64().unwrap(),
            )
        })
        .collect();
    // Interleaved: each round runs every configuration, in the same order.
    let round = vec![(2000, 1), (2000, 2), (4000, 1), (4000, 2)];
    assert_eq!(runs, [round.clone(), round].concat());
    let s = &lines[8];
    assert_eq!(s["name"], "transfers-rounds");
    assert_eq!(s["rounds"], 2);
    let ops = |i: usize| lines[i]["ops_per_sec"].as_f64().unwrap();
    let speedups = s["speedups"].as_array().unwrap();
    assert_eq!(speedups.len(), 2);
    assert_eq!(speedups[0]["accounts"], 2000);
    assert_eq!(speedups[0]["per_round"][0].as_f64(), Some(ops(1) / ops(0)));
    assert_eq!(speedups[0]["per_round"][1].as_f64(), Some(ops(5) / ops(4)));
    let scaling = s["scaling"].as_array().unwrap();
    assert_eq!(scaling.len(), 2);
    assert_eq!(scaling[1]["threads"], 2);
    assert_eq!(scaling[1]["per_round"][1].as_f64(), Some(ops(7) / ops(5)));
    let m = speedups[1]["median"].as_f64().unwrap();
    assert_eq!(m, (ops(3) / ops(2) + ops(7) / ops(6)) / 2.0);
}

/// `rexe bench cluster` on a small load: the full node and both partial nodes end on the
/// producer's tip with the same shard states (the benchmark checks both), and every served
/// relay proof verifies.
#[test]
fn bench_cluster_partial_nodes_agree_with_the_full_node() {
    let (ok, out, err) = rexe(&[
        "bench",
        "cluster",
        "--json",
        "--accounts",
        "64",
        "--block-txs",
        "200",
        "--blocks",
        "3",
        "--sync-accounts",
        "5000",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(v["name"], "cluster");
    // The state sync phase took up shard 2 (about a quarter of the accounts, plus its fee
    // row) in pages, checked against the root (the phase fails otherwise).
    let rows = v["state_sync"]["shard_rows"].as_u64().unwrap();
    assert!((1_000..2_000).contains(&rows), "{v}");
    assert!(v["state_sync"]["pages"].as_u64().unwrap() >= 2, "{v}");
    assert_eq!(v["proofs"], 2 * 3 * 2 * 3, "{v}");
    assert!(v["relays_in_proofs"].as_u64().unwrap() > 0, "{v}");
    assert!(v["two_partial_nodes_tps"].as_f64().unwrap() > 0.0);
}

/// `rexe bench cluster-rss` runs each node in its own process: the two partial nodes
/// together cache exactly the accounts the full node caches, each about half.
#[test]
fn bench_cluster_rss_splits_the_accounts_between_the_partial_nodes() {
    let (ok, out, err) = rexe(&["bench", "cluster-rss", "--json", "--accounts", "4000"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    let cached = |n: &str| v[n]["cached_accounts"].as_u64().unwrap();
    assert_eq!(cached("full"), 4000, "{v}");
    assert_eq!(cached("shards_0_1") + cached("shards_2_3"), 4000, "{v}");
    assert!((1500..2500).contains(&cached("shards_0_1")), "{v}");
    assert!(v["full"]["rss_bytes"].as_u64().unwrap() > 0, "{v}");
}
