//! The Stratum share tap end to end: rexe's own Stratum server plays the unmodified pool
//! (on the embedded regtest node and an L2 node; its own harvesting is cut off, so it
//! behaves as a pool that only shows bitcoind full blocks), `rexe miner tap` runs in front
//! of it, and
//! the CPU miner connects through the tap. Shares reach the pool and its replies the miner;
//! shares meeting the L2 target seal L2 blocks; with the L2 node down mining goes on.
//! Byte-for-byte forwarding, version rolling, `mining.set_extranonce` and bad input are
//! tested against a scripted pool in `miner/src/tap/tests.rs`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bitcoin::hex::{DisplayHex, FromHex};
use common::*;
use rexe_chain::{Network, Signer};
use rexe_miner::proxy::Harvester;
use rexe_miner::stratum::server::{self, Stratum, StratumOptions};
use rexe_regtest::{RegtestConfig, RegtestNode};
use rexe_rpc::client::RpcClient;
use serde_json::{json, Value};

/// The pool: regtest bitcoind (target 8x harder than the L2's), an L2 node, rexe's Stratum
/// server.
struct Pool {
    _btc_node: RegtestNode,
    l2: Running,
    _l2_dir: tempfile::TempDir,
    stratum: std::net::SocketAddr,
    server: Arc<Stratum>,
    _rt: tokio::runtime::Runtime,
}

/// A front for the L2 node's RPC that refuses `submitauxblock` and forwards the rest: the
/// pool gets L2 work for its templates but harvests nothing itself, as an unmodified pool
/// behind `rexe miner run`'s proxy (it shows bitcoind only full blocks). Every L2 block is
/// then the tap's.
fn no_harvest_front(l2: &str) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let l2 = l2.to_string();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { continue };
            let l2 = l2.clone();
            std::thread::spawn(move || {
                let mut req = Vec::new();
                let mut buf = [0u8; 16 * 1024];
                // One request per connection: the answer closes it (the client reconnects).
                loop {
                    let Ok(n) = c.read(&mut buf) else { return };
                    if n == 0 {
                        return;
                    }
                    req.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&req);
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len: usize = head
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length").then_some(v)
                            })
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if body.len() >= len {
                            break;
                        }
                    }
                }
                if String::from_utf8_lossy(&req).contains("\"submitauxblock\"") {
                    let out = r#"{"result":null,"error":{"code":-1,"message":"this pool does not harvest"},"id":"rexe"}"#;
                    let _ = write!(
                        c,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{out}",
                        out.len()
                    );
                    return;
                }
                let Ok(mut up) = TcpStream::connect(&l2) else {
                    return;
                };
                // Asks the node to close after answering, so that the answer ends at EOF.
                let head_end = req.windows(2).position(|w| w == b"\r\n").unwrap_or(0);
                let mut fwd = req[..head_end + 2].to_vec();
                fwd.extend_from_slice(b"Connection: close\r\n");
                fwd.extend_from_slice(&req[head_end + 2..]);
                let _ = up.write_all(&fwd);
                let mut resp = Vec::new();
                let _ = up.read_to_end(&mut resp);
                let _ = c.write_all(&resp);
            });
        }
    });
    addr
}

fn pool() -> Pool {
    let btc_node = RegtestNode::start(RegtestConfig {
        bits: 0x1f03_ffff,
        ..RegtestConfig::default()
    })
    .unwrap();
    let btc = RpcClient::new(btc_node.rpc_addr.to_string(), btc_node.cookie.clone());
    let l2_dir = tempfile::tempdir().unwrap();
    let l2 = l2_node_with_password(l2_dir.path());
    let harvester = Arc::new(Harvester::new(
        RpcClient::new(no_harvest_front(&l2.rpc), "u:p"),
        payout(),
        rexe_miner::ChainId::REXE,
    ));
    let btc_payout = bitcoin::Address::p2wsh(
        &bitcoin::ScriptBuf::new_op_return([9u8; 4]),
        bitcoin::Network::Regtest,
    )
    .script_pubkey();
    let server = Stratum::with_options(
        btc,
        harvester.clone(),
        harvester.payout.clone(),
        btc_payout,
        StratumOptions::default(),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stratum = rt
        .block_on(server::serve(
            server.clone(),
            "127.0.0.1:0".parse().unwrap(),
            Duration::from_millis(50),
        ))
        .unwrap();
    Pool {
        _btc_node: btc_node,
        l2,
        _l2_dir: l2_dir,
        stratum,
        server,
        _rt: rt,
    }
}

fn payout() -> String {
    Signer::from_seed(b"default")
        .address()
        .encode(Network::Regtest)
}

/// `rexe miner tap` in front of `pool`, harvesting for the L2 node at `l2`; returns the
/// process, the tap's address and its stats address.
fn start_tap(pool: std::net::SocketAddr, l2: &str) -> (KillOnDrop, String, String) {
    start_tap_with(pool, l2, &[])
}

/// [`start_tap`] with `extra` flags.
fn start_tap_with(
    pool: std::net::SocketAddr,
    l2: &str,
    extra: &[&str],
) -> (KillOnDrop, String, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let stats = format!("127.0.0.1:{}", free_port());
    let child = Command::new(BIN)
        .args([
            "miner",
            "tap",
            "--listen",
            &listen,
            "--pool",
            &format!("stratum+tcp://{pool}"),
            "--l2",
            l2,
            "--l2-auth",
            "u:p",
            "--payout",
            &payout(),
            "--chain-id",
            "0x0b42",
            "--l2-poll-ms",
            "100",
            "--stats-listen",
            &stats,
        ])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn rexe miner tap");
    let tap = KillOnDrop(child);
    wait_for("the tap's stats endpoint", || tap_stats(&stats).is_some());
    (tap, listen, stats)
}

#[test]
fn cpu_miner_through_the_tap_seals_l2_blocks() {
    let p = pool();
    let (_tap, tap_addr, stats) = start_tap(p.stratum, &p.l2.rpc);
    wait_for("the tap's L2 target", || {
        tap_stats(&stats).is_some_and(|s| s["l2_work"] == json!(true))
    });
    let (mut accepted, mut rejected) = (0, 0);
    for _ in 0..10 {
        let r = rexe_miner::stratum::client::run(
            &tap_addr,
            "bcrt1qworker.rig1",
            "x",
            2,
            6,
            Duration::from_secs(30),
        )
        .unwrap();
        accepted += r.accepted;
        rejected += r.rejected;
        let s = tap_stats(&stats).unwrap();
        if s["sealed"].as_u64().unwrap() >= 1 {
            break;
        }
    }
    // Every share reached the pool (which answers each) and every answer came back
    // through the tap; the miner counts the answers it read before it stopped.
    let server_accepted = || {
        p.server
            .stats
            .accepted
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    wait_for("the tap to see every reply", || {
        let s = tap_stats(&stats).unwrap();
        let (n, ok, bad) = (
            s["shares"].as_u64().unwrap(),
            s["pool_accepted"].as_u64().unwrap(),
            s["pool_rejected"].as_u64().unwrap(),
        );
        n == ok + bad && ok == server_accepted()
    });
    let s = tap_stats(&stats).unwrap();
    eprintln!("tap stats: {s}");
    assert!(s["pool_accepted"].as_u64().unwrap() >= accepted, "{s}");
    assert!(s["pool_rejected"].as_u64().unwrap() >= rejected, "{s}");
    assert!(accepted >= 6, "{s}");
    // Shares met the L2 target and sealed L2 blocks: all of them, since the pool harvests
    // nothing itself.
    assert!(s["shares_l2"].as_u64().unwrap() >= 1, "{s}");
    assert!(s["sealed"].as_u64().unwrap() >= 1, "{s}");
    assert_eq!(s["skipped"]["no_commitment"], json!(0), "{s}");
    assert_eq!(s["coinbase_too_long"], json!(0), "{s}");
    wait_for("every L2 block to be the tap's", || {
        let height = call(&p.l2, "getblockcount", json!([]))["result"].as_u64();
        tap_stats(&stats).unwrap()["sealed"].as_u64() == height
    });
}

/// `--pool-notify` runs its command for each new L2 tip with the tip's hash: what makes an
/// unmodified pool (ckpool's `notifier`; `tests/ckpool.rs`) take new work at once.
#[test]
fn pool_notify_runs_for_each_new_l2_tip() {
    let p = pool();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tips");
    let cmd = format!("echo %s >> {}", file.display());
    let (_tap, tap_addr, stats) = start_tap_with(p.stratum, &p.l2.rpc, &["--pool-notify", &cmd]);
    wait_for("the tap's L2 target", || {
        tap_stats(&stats).is_some_and(|s| s["l2_work"] == json!(true))
    });
    for _ in 0..20 {
        rexe_miner::stratum::client::run(
            &tap_addr,
            "bcrt1qworker.rig1",
            "x",
            2,
            4,
            Duration::from_secs(30),
        )
        .unwrap();
        if tap_stats(&stats).unwrap()["sealed"].as_u64().unwrap() >= 2 {
            break;
        }
    }
    // Every L2 block after the first the tap saw is a new tip: the last run names the
    // node's tip, each run a different block.
    let best = || {
        call(&p.l2, "getbestblockhash", json!([]))["result"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // A run is counted when its command has exited, just after it wrote its line.
    wait_for("a counted run for the L2 node's tip", || {
        std::fs::read_to_string(&file).is_ok_and(|t| {
            t.lines().last() == Some(best().as_str())
                && tap_stats(&stats).unwrap()["pool_notify"]["run"].as_u64()
                    == Some(t.lines().count() as u64)
        })
    });
    let text = std::fs::read_to_string(&file).unwrap();
    let tips: Vec<&str> = text.lines().collect();
    assert!(!tips.is_empty(), "{text}");
    let distinct: std::collections::HashSet<&&str> = tips.iter().collect();
    assert_eq!(distinct.len(), tips.len(), "one run per tip: {text}");
    for t in &tips {
        let hash = call(&p.l2, "getblockheader", json!([t]));
        assert!(hash["error"].is_null(), "{t} is no L2 block: {hash}");
    }
    let s = tap_stats(&stats).unwrap();
    assert_eq!(s["pool_notify"]["failed"], json!(0), "{s}");
    assert_eq!(
        s["pool_notify"]["run"].as_u64(),
        Some(tips.len() as u64),
        "{s}"
    );
}

/// `--payout-ledger`: every L2 block the tap seals is recorded with the worker whose share
/// sealed it and that worker's address by the payout rules (`rx=` in its password), or the
/// operator's when it names none.
#[test]
fn the_payout_ledger_records_who_sealed_each_l2_block() {
    let p = pool();
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.jsonl");
    let (_tap, tap_addr, stats) = start_tap_with(
        p.stratum,
        &p.l2.rpc,
        &["--payout-ledger", ledger.to_str().unwrap()],
    );
    wait_for("the tap's L2 target", || {
        tap_stats(&stats).is_some_and(|s| s["l2_work"] == json!(true))
    });
    let worker_addr = Signer::from_seed(b"rig owner")
        .address()
        .encode(Network::Regtest);
    let sealed = || tap_stats(&stats).unwrap()["sealed"].as_u64().unwrap();
    // A worker naming its address, then one naming none.
    for (user, pass) in [
        ("bcrt1qowner.rig1", format!("x,rx={worker_addr}")),
        ("bcrt1qother.rig2", "x".to_string()),
    ] {
        let before = sealed();
        for _ in 0..20 {
            rexe_miner::stratum::client::run(&tap_addr, user, &pass, 2, 4, Duration::from_secs(30))
                .unwrap();
            if sealed() > before {
                break;
            }
        }
        assert!(sealed() > before, "{user} sealed nothing");
    }
    // A block is counted sealed just before its ledger line is written, and the line is
    // counted just after.
    wait_for("a counted ledger line for each sealed block", || {
        let l = &tap_stats(&stats).unwrap()["payout_ledger"];
        ["worker", "operator", "failed"]
            .iter()
            .map(|k| l[k].as_u64().unwrap())
            .sum::<u64>()
            >= sealed()
    });
    let s = tap_stats(&stats).unwrap();
    let text = std::fs::read_to_string(&ledger).unwrap();
    let entries: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        entries.len() as u64,
        s["sealed"].as_u64().unwrap(),
        "{s}\n{text}"
    );
    assert_eq!(s["payout_ledger"]["failed"], json!(0), "{s}");
    let (mut to_worker, mut to_operator) = (0, 0);
    for e in &entries {
        let header = call(&p.l2, "getblockheader", json!([e["l2_block"]]));
        assert!(header["error"].is_null(), "{e} names no L2 block: {header}");
        match e["worker"].as_str().unwrap() {
            "bcrt1qowner.rig1" => {
                assert_eq!(e["address"], json!(worker_addr), "{e}");
                assert_eq!(e["to"], json!("worker"), "{e}");
                to_worker += 1;
            }
            "bcrt1qother.rig2" => {
                assert_eq!(e["address"], json!(payout()), "{e}");
                assert_eq!(e["to"], json!("operator"), "{e}");
                to_operator += 1;
            }
            other => panic!("unknown worker {other}: {e}"),
        }
    }
    assert!(to_worker >= 1 && to_operator >= 1, "{text}");
    assert_eq!(s["payout_ledger"]["worker"], json!(to_worker), "{s}");
    assert_eq!(s["payout_ledger"]["operator"], json!(to_operator), "{s}");
}

/// `rexe miner pay`: the operator passes each buried L2 block the ledger gives a worker on
/// to that worker, once. The first run is killed after writing its first payment and
/// before broadcasting it; the next run broadcasts that same payment and makes the rest;
/// a third run pays nothing more.
#[test]
fn the_operator_pays_each_ledger_block_to_its_worker_once() {
    let p = pool();
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.jsonl");
    // The worker's address comes from the operator's map: with `rx=` in its password,
    // rexe's Stratum server (the pool here) would pay the worker in its own templates.
    let worker = Signer::from_seed(b"paid rig")
        .address()
        .encode(Network::Regtest);
    let map = dir.path().join("workers.map");
    std::fs::write(&map, format!("bcrt1qpaid.rig1 {worker}\n")).unwrap();
    let (tap, tap_addr, stats) = start_tap_with(
        p.stratum,
        &p.l2.rpc,
        &[
            "--payout-ledger",
            ledger.to_str().unwrap(),
            "--payout-sources",
            "map",
            "--payout-map",
            map.to_str().unwrap(),
        ],
    );
    wait_for("the tap's L2 target", || {
        tap_stats(&stats).is_some_and(|s| s["l2_work"] == json!(true))
    });
    let pass = "x".to_string();
    let recorded = || {
        std::fs::read_to_string(&ledger)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    for _ in 0..30 {
        if recorded() >= 2 {
            break;
        }
        rexe_miner::stratum::client::run(
            &tap_addr,
            "bcrt1qpaid.rig1",
            &pass,
            2,
            4,
            Duration::from_secs(30),
        )
        .unwrap();
    }
    // Stop the tap, so that no share still in its queue adds to the ledger from here on.
    drop(tap);
    let entries: Vec<Value> = std::fs::read_to_string(&ledger)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(entries.len() >= 2, "{entries:?}");
    // Every block the ledger names gets one payment of its subsidy.
    let owed: u64 = entries
        .iter()
        .map(|e| {
            rpc(&p.l2, "getblockheader", json!([e["l2_block"]]))["subsidy"]
                .as_u64()
                .unwrap()
        })
        .sum();
    // The operator pays the transfers' fees too: one more block of its own for them.
    mine(&p.l2, 1, b"default");
    // The operator's key: the address the pool's templates pay (`payout()`).
    let key = dir.path().join("operator.key");
    let secret = <bitcoin::hashes::sha256::Hash as bitcoin::hashes::Hash>::hash(b"default");
    std::fs::write(&key, secret.to_string()).unwrap();
    let pay = |failpoint: Option<&str>| {
        let mut c = Command::new(BIN);
        c.args([
            "miner",
            "pay",
            "--ledger",
            ledger.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ])
        .args([
            "--confirmations",
            "1",
            "--rpc",
            &p.l2.rpc,
            "--rpc-auth",
            "u:p",
        ]);
        if let Some(f) = failpoint {
            c.env("REXE_FAILPOINT", f);
        }
        c.output().unwrap()
    };
    let balance = || {
        rpc(&p.l2, "getaccount", json!([worker]))["balance"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(balance(), 0);
    // 1. Killed after recording its first payment, before broadcasting it.
    let out = pay(Some("pay-after-record"));
    assert!(!out.status.success());
    let paid_file = dir.path().join("ledger.jsonl.paid");
    assert_eq!(
        std::fs::read_to_string(&paid_file).unwrap().lines().count(),
        1
    );
    // 2. Broadcasts that payment again (same transaction) and makes the others.
    let out = pay(None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["rebroadcast"], json!(1), "{report}");
    assert_eq!(
        report["paid"].as_u64(),
        Some(entries.len() as u64 - 1),
        "{report}"
    );
    // A transfer to another shard is credited by its relay, a block later.
    mine(&p.l2, 2, b"confirm the payments");
    assert_eq!(balance(), owed);
    // 3. Nothing is paid twice.
    let out = pay(None);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["paid"], json!(0), "{report}");
    assert_eq!(
        report["already_paid"].as_u64(),
        Some(entries.len() as u64),
        "{report}"
    );
    mine(&p.l2, 1, b"one more block");
    assert_eq!(balance(), owed);
}

#[test]
fn l2_node_down_mining_through_the_tap_goes_on() {
    let p = pool();
    let dead = format!("127.0.0.1:{}", free_port());
    let (_tap, tap_addr, stats) = start_tap(p.stratum, &dead);
    let r = rexe_miner::stratum::client::run(
        &tap_addr,
        "bcrt1qworker.rig1",
        "x",
        2,
        4,
        Duration::from_secs(30),
    )
    .unwrap();
    assert!(r.accepted >= 4, "{r:?}");
    wait_for("the tap to count the shares", || {
        let s = tap_stats(&stats).unwrap();
        s["pool_accepted"].as_u64().unwrap() >= r.accepted
            && s["shares"] == s["skipped"]["no_l2_work"]
    });
    let s = tap_stats(&stats).unwrap();
    assert_eq!(s["l2_work"], json!(false), "{s}");
    assert_eq!(s["sealed"], json!(0), "{s}");
    assert_eq!(s["shares_l2"], json!(0), "{s}");
}

/// A miner that rolls version bits (BIP310) through the tap: the pool grants its mask, and
/// the shares' L2 seals built by the tap, with the rolled versions, are accepted by the L2
/// node (which checks the parent header's hash and its merkle root).
#[test]
fn version_rolling_shares_through_the_tap_seal_l2_blocks() {
    use rexe_miner::stratum::job::{share_target, Job};
    use rexe_miner::stratum::protocol::{Notify, ServerMessage};
    use std::io::{BufRead, BufReader};
    let p = pool();
    let (_tap, tap_addr, stats) = start_tap(p.stratum, &p.l2.rpc);
    wait_for("the tap's L2 target", || {
        tap_stats(&stats).is_some_and(|s| s["l2_work"] == json!(true))
    });
    let mut w = TcpStream::connect(&tap_addr).unwrap();
    w.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut r = BufReader::new(w.try_clone().unwrap());
    writeln!(
        w,
        r#"{{"id":1,"method":"mining.subscribe","params":["roller/1"]}}"#
    )
    .unwrap();
    writeln!(
        w,
        r#"{{"id":2,"method":"mining.configure","params":[["version-rolling"],{{"version-rolling.mask":"ffffffff","version-rolling.min-bit-count":2}}]}}"#
    )
    .unwrap();
    writeln!(
        w,
        r#"{{"id":3,"method":"mining.authorize","params":["roller.1","x"]}}"#
    )
    .unwrap();
    let (mut en1, mut mask, mut diff, mut job): (Vec<u8>, u32, f64, Option<Notify>) =
        (Vec::new(), 0, 1.0, None);
    let next = |r: &mut BufReader<TcpStream>| {
        let mut l = String::new();
        assert!(r.read_line(&mut l).unwrap() > 0, "the tap closed");
        ServerMessage::parse(l.as_bytes()).unwrap()
    };
    let follow = |m: ServerMessage,
                  en1: &mut Vec<u8>,
                  mask: &mut u32,
                  diff: &mut f64,
                  job: &mut Option<Notify>|
     -> Option<Value> {
        match m {
            ServerMessage::Notify(n) => *job = Some(n),
            ServerMessage::SetDifficulty(d) => *diff = d,
            ServerMessage::Response { id, result, .. } if id == json!(1) => {
                *en1 = Vec::<u8>::from_hex(result[1].as_str().unwrap()).unwrap()
            }
            ServerMessage::Response { id, result, .. } if id == json!(2) => {
                *mask = u32::from_str_radix(result["version-rolling.mask"].as_str().unwrap(), 16)
                    .unwrap()
            }
            ServerMessage::Response { id, result, error } => {
                return Some(json!({"id": id, "result": result, "error": error}))
            }
            _ => {}
        }
        None
    };
    while job.is_none() {
        let m = next(&mut r);
        follow(m, &mut en1, &mut mask, &mut diff, &mut job);
    }
    assert_eq!(mask, 0x1fff_e000);
    let mut accepted = 0;
    let mut id = 100;
    for en2 in 0u32..200 {
        if accepted >= 3 {
            break;
        }
        let n = job.clone().unwrap();
        let j = Job::from_notify(&n);
        let cb = j.coinbase(&en1, &en2.to_be_bytes()).unwrap();
        // Roll the version: a different value of the mask's bits for every extranonce2.
        let bits = ((en2 + 1) << 13) & mask;
        let version = ((n.version & !mask) | bits) as i32;
        let target = share_target(diff);
        let Some(nonce) = (0..1u32 << 20)
            .find(|&nonce| target.is_met_by(j.header(&cb, n.ntime, nonce, version).block_hash()))
        else {
            continue;
        };
        id += 1;
        writeln!(
            w,
            r#"{{"id":{id},"method":"mining.submit","params":["roller.1","{}","{}","{:08x}","{nonce:08x}","{bits:08x}"]}}"#,
            n.job_id,
            en2.to_be_bytes().to_lower_hex_string(),
            n.ntime
        )
        .unwrap();
        // Read until this share's answer (following new jobs on the way).
        loop {
            let m = next(&mut r);
            if let Some(reply) = follow(m, &mut en1, &mut mask, &mut diff, &mut job) {
                if reply["id"] == json!(id) {
                    if reply["result"] == json!(true) {
                        accepted += 1;
                    }
                    break;
                }
            }
        }
    }
    assert!(accepted >= 3, "{accepted} shares accepted");
    wait_for("rolled shares to seal L2 blocks", || {
        let s = tap_stats(&stats).unwrap();
        let height = call(&p.l2, "getblockcount", json!([]))["result"].as_u64();
        s["sealed"].as_u64().unwrap() >= 1 && s["sealed"].as_u64() == height
    });
    let s = tap_stats(&stats).unwrap();
    assert!(s["rejected"].as_object().unwrap().is_empty(), "{s}");
}
