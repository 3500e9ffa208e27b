//! Nodes on libp2p (no JSON-RPC polling between them): sync by locator in batches, gossip of
//! new blocks and transactions across a hop, a healed partition, and peers that send garbage,
//! oversized frames or an invalid block — charged, banned, and nothing they sent applied.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use bitcoin::hex::{DisplayHex, FromHex};
use common::*;
use rexe_chain::encode::{Decode, Encode};
use rexe_chain::{Block, Network, Signer};
use serde_json::{json, Value};

fn p2p_node(dir: &Path, bootnodes: &[String]) -> Running {
    let mut args = vec![
        "node".to_string(),
        "--datadir".into(),
        dir.to_str().unwrap().into(),
        "--rpc-bind".into(),
        "127.0.0.1:0".into(),
        "--p2p-bind".into(),
        "127.0.0.1:0".into(),
    ];
    for b in bootnodes {
        args.push("--bootnode".into());
        args.push(b.clone());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    spawn(&args, dir)
}

/// Waits (bounded) for `f` to hold.
fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `GET path` on the node's HTTP server (for `/metrics`).
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

/// The node's p2p address with its peer id.
fn p2p_addr(n: &Running) -> String {
    let mut addr = String::new();
    wait_for("p2p to listen", || {
        let info = rpc(n, "getnetworkinfo", json!([]));
        match info["listening"].as_array().and_then(|a| a.first()) {
            Some(a) => {
                addr = a.as_str().unwrap().to_string();
                true
            }
            None => false,
        }
    });
    addr
}

/// One block on `a` paying each of `payees` from `payer` (`1_000 + round` sats each).
fn pay_round(a: &Running, payer: &Signer, payees: &[rexe_chain::Address], round: u64) {
    let nonce = rpc(
        a,
        "getaccount",
        json!([payer.address().encode(Network::Regtest)]),
    )["next_nonce"]
        .as_u64()
        .unwrap();
    for (i, to) in payees.iter().enumerate() {
        let tx = transfer_tx(payer, *to, 1_000 + round, nonce + i as u64);
        rpc(
            a,
            "sendrawtransaction",
            json!([tx.to_bytes().to_lower_hex_string()]),
        );
    }
    mine(a, 1, b"payer");
}

fn converge(leader: &Running, others: &[&Running]) {
    let want = tip(leader);
    for o in others {
        wait_for(&format!("tip {want:?}"), || tip(o) == want);
        assert_eq!(
            rpc(o, "getchaininfo", json!([]))["state_root"],
            rpc(leader, "getchaininfo", json!([]))["state_root"]
        );
    }
}

#[test]
fn nodes_sync_gossip_and_heal_over_libp2p() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = p2p_node(dirs[0].path(), &[]);
    let a_addr = p2p_addr(&a);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dirs[0].path().join("p2p.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the p2p identity is private");
    }
    // More than one batch of blocks to sync.
    mine(&a, 70, b"miner-a");
    let b = p2p_node(dirs[1].path(), std::slice::from_ref(&a_addr));
    let b_addr = p2p_addr(&b);
    converge(&a, &[&b]);
    // C knows only B: blocks and transactions cross a hop.
    let c = p2p_node(dirs[2].path(), std::slice::from_ref(&b_addr));
    converge(&a, &[&c]);
    mine(&a, 3, b"miner-a");
    converge(&a, &[&b, &c]);
    let info = rpc(&b, "getnetworkinfo", json!([]));
    assert!(info["gossip_in"]["blocks"].as_u64().unwrap() >= 1, "{info}");
    assert_eq!(info["connections"], json!(2), "{info}");
    let metrics = http_get(&b.rpc, "/metrics");
    assert!(metrics.contains("rexe_p2p_peers 2"), "{metrics}");
    assert!(
        metrics.contains("rexe_p2p_gossip_received_total{topic=\"blocks\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("rexe_tracked_shard{shard=\"3\"} 1"),
        "{metrics}"
    );
    // Peers' reported heights reach the metrics with the next status poll.
    wait_for("the peers' height on /metrics", || {
        let m = http_get(&b.rpc, "/metrics");
        m.contains("rexe_p2p_peer_best_height 73") && m.contains("rexe_p2p_lag_blocks 0")
    });

    let miner = Signer::from_seed(b"miner-a");
    let tx = transfer_tx(&miner, Signer::from_seed(b"payee").address(), 5_000, 0);
    rpc(
        &c,
        "sendrawtransaction",
        json!([tx.to_bytes().to_lower_hex_string()]),
    );
    wait_for("the transaction to reach A", || {
        rpc(&a, "getmempoolinfo", json!([]))["size"] == json!(1)
    });
    mine(&a, 1, b"miner-a");
    converge(&a, &[&b, &c]);

    // Partition: C leaves and mines a longer branch alone; A and B go on with two blocks.
    drop(c);
    let c_alone = p2p_node(dirs[2].path(), &[]);
    mine(&c_alone, 5, b"miner-c");
    mine(&a, 2, b"miner-a");
    converge(&a, &[&b]);
    let c_tip = tip(&c_alone);
    assert!(c_tip.0 > tip(&a).0);
    // Heal: C rejoins through B; everyone reorganises to its branch (more work).
    drop(c_alone);
    let c = p2p_node(dirs[2].path(), &[b_addr]);
    converge(&c, &[&a, &b]);
    assert_eq!(tip(&a), c_tip);
}

/// A peer built from `rexe-net` directly, dialling `addr`.
fn raw_peer(addr: &str) -> (rexe_net::Handle, std::sync::mpsc::Receiver<rexe_net::Event>) {
    let mut cfg = rexe_net::Config::new(rexe_net::Keypair::generate_ed25519(), "regtest");
    cfg.bootnodes = vec![addr.parse().unwrap()];
    rexe_net::start(cfg).unwrap()
}

/// The next event matching `f`, within `secs`.
fn next_event<T>(
    rx: &std::sync::mpsc::Receiver<rexe_net::Event>,
    secs: u64,
    mut f: impl FnMut(rexe_net::Event) -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let e = rx.recv_timeout(left).ok()?;
        if let Some(t) = f(e) {
            return Some(t);
        }
    }
}

#[test]
fn bad_peers_lose_their_stream_then_their_connection_and_nothing_they_sent_applies() {
    let dir = tempfile::tempdir().unwrap();
    let a = p2p_node(dir.path(), &[]);
    let a_addr = p2p_addr(&a);
    mine(&a, 2, b"miner-a");
    let a_id: rexe_net::PeerId = a_addr.rsplit('/').next().unwrap().parse().unwrap();
    let (evil, events) = raw_peer(&a_addr);
    next_event(&events, 30, |e| {
        matches!(e, rexe_net::Event::Connected(p) if p == a_id).then_some(())
    })
    .expect("connects");
    let ask = |data: Vec<u8>, tag: u64| {
        evil.request(a_id, data, tag);
        next_event(&events, 30, |e| match e {
            rexe_net::Event::Response { tag: t, result, .. } if t == tag => Some(result),
            _ => None,
        })
        .expect("an answer or a failure")
    };
    // Garbage fails that stream only: the next request on the same connection is answered.
    assert!(ask(vec![0xff; 10], 1).is_err());
    let status = ask(vec![0], 2).expect("status after garbage");
    assert_eq!(status[0], 0, "a status response");
    // An oversized request (over the 64 KiB cap) fails its stream and is counted.
    assert!(ask(vec![1; 70 << 10], 3).is_err());
    wait_for("the broken stream to be counted", || {
        rpc(&a, "getnetworkinfo", json!([]))["broken_streams"]
            .as_u64()
            .unwrap()
            >= 1
    });
    let before = tip(&a);
    // A block with a bad seal, gossiped (re-sent with a new time until A has seen one).
    let miner = Signer::from_seed(b"evil")
        .address()
        .encode(Network::Regtest);
    let t = rpc(&a, "getblocktemplate", json!([miner]));
    let mut bad =
        Block::from_bytes(&Vec::<u8>::from_hex(t["hex"].as_str().unwrap()).unwrap()).unwrap();
    bad.seal = vec![0; 80];
    let banned = |a: &Running| rpc(a, "getnetworkinfo", json!([]))["banned"] == json!(1);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !banned(&a) {
        assert!(Instant::now() < deadline, "the bad block was never judged");
        bad.header.time += 1;
        evil.publish(rexe_net::Topic::Blocks, bad.to_bytes());
        std::thread::sleep(Duration::from_millis(300));
    }
    let info = rpc(&a, "getnetworkinfo", json!([]));
    assert!(info["rejected"].as_u64().unwrap() >= 1, "{info}");
    next_event(&events, 30, |e| {
        matches!(e, rexe_net::Event::Disconnected(p) if p == a_id).then_some(())
    })
    .expect("the banned peer is disconnected");
    // It cannot come back (A drops its connections at once), and A's chain did not move.
    evil.dial(a_addr.parse().unwrap());
    let evil_id = evil.peer_id().to_string();
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        let info = rpc(&a, "getnetworkinfo", json!([]));
        assert!(
            !info["peers"].as_array().unwrap().contains(&json!(evil_id)),
            "{info}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(tip(&a), before);
    // An honest node still syncs from A.
    let dir_b = tempfile::tempdir().unwrap();
    let b = p2p_node(dir_b.path(), &[a_addr]);
    converge(&a, &[&b]);
}

/// The per-shard state roots a node reports, for the shards it runs.
fn tracked_roots(n: &Running) -> Vec<(u64, Value)> {
    let info = rpc(n, "getchaininfo", json!([]));
    let tracked: Vec<u64> = info["tracked_shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_u64().unwrap())
        .collect();
    let shards = rpc(n, "getshardinfo", json!([]));
    tracked
        .into_iter()
        .map(|s| (s, shards[s as usize]["state_root"].clone()))
        .collect()
}

/// Three processes: a full node and two nodes running shards {0,1} and {2,3}, the latter
/// fed packages over libp2p. Through cross-shard transfers and token calls they agree on every
/// tip, and each partial node's shards on the full node's state. `REXE_CLUSTER_BLOCKS` sets
/// the number of rounds (default 30; the issue's figure is 500).
#[test]
fn partial_nodes_follow_a_full_node_over_libp2p() {
    let rounds: u64 = std::env::var("REXE_CLUSTER_BLOCKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = p2p_node(dirs[0].path(), &[]);
    let a_addr = p2p_addr(&a);
    let partial = |dir: &Path, shards: &str| {
        let args = [
            "node",
            "--datadir",
            dir.to_str().unwrap(),
            "--rpc-bind",
            "127.0.0.1:0",
            "--bootnode",
            &a_addr,
            "--track-shards",
            shards,
        ];
        spawn(&args, dir)
    };
    let mut b = partial(dirs[1].path(), "0,1");
    let c = partial(dirs[2].path(), "2,3");
    let secret = [7u8; 32];
    let key = dirs[0].path().join("key");
    std::fs::write(&key, secret.to_lower_hex_string()).unwrap();
    let me = Signer::from_secret(secret).unwrap();
    let my_addr = me.address().encode(Network::Regtest);
    let mine_to_me = |count| {
        for _ in 0..count {
            let t = rpc(&a, "getblocktemplate", json!([my_addr]));
            let mut blk =
                Block::from_bytes(&Vec::<u8>::from_hex(t["hex"].as_str().unwrap()).unwrap())
                    .unwrap();
            seal(&mut blk);
            assert_eq!(
                rpc(
                    &a,
                    "submitblock",
                    json!([blk.to_bytes().to_lower_hex_string()])
                ),
                Value::Null
            );
        }
    };
    mine_to_me(3);
    let cli = |args: &[&str]| cli_as(&a, &key, args);
    let token_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/contracts/token.prd");
    let out = cli(&[
        "contract",
        "deploy",
        token_file.to_str().unwrap(),
        "--args",
        r#"{"supply": "1000000"}"#,
    ]);
    let token = out
        .lines()
        .find_map(|l| l.strip_prefix("contract address: "))
        .unwrap()
        .to_string();
    mine_to_me(3);
    let payees: Vec<String> = (0..8u8)
        .map(|i| Signer::from_seed(&[i]).address().encode(Network::Regtest))
        .collect();
    for round in 0..rounds {
        let nonce = rpc(&a, "getaccount", json!([my_addr]))["next_nonce"]
            .as_u64()
            .unwrap();
        for i in 0..4u64 {
            let to = Signer::from_seed(&[((round + i) % 8) as u8]).address();
            let tx = transfer_tx(&me, to, 1_000 + round, nonce + i);
            rpc(
                &a,
                "sendrawtransaction",
                json!([tx.to_bytes().to_lower_hex_string()]),
            );
        }
        if round % 5 == 0 {
            let to = &payees[(round / 5) as usize % 8];
            cli(&["contract", "call", &token, "transfer", to, "3"]);
        }
        mine_to_me(1);
        if round % 10 == 9 || round + 1 == rounds {
            converge(&a, &[&b, &c]);
        }
        if round == rounds / 2 {
            // SIGKILL a partial node mid-run; it restarts from its data directory (replaying
            // stored packages) and catches up.
            drop(b);
            b = partial(dirs[1].path(), "0,1");
        }
    }
    mine_to_me(3);
    converge(&a, &[&b, &c]);
    let full = rpc(&a, "getshardinfo", json!([]));
    for n in [&b, &c] {
        let mine = tracked_roots(n);
        assert_eq!(mine.len(), 2);
        for (s, root) in mine {
            assert_eq!(root, full[s as usize]["state_root"], "shard {s}");
        }
    }
    // Each answers for its own shards' accounts only.
    let order = rexe_chain::ShardOrder::new(2).unwrap();
    let on = |s: u16| {
        payees
            .iter()
            .find(|p| {
                let a = rexe_chain::Address::parse_for(p, Network::Regtest).unwrap();
                rexe_chain::shard_of(&a, order) == rexe_chain::ShardId(s)
            })
            .unwrap()
            .clone()
    };
    let p0 = on(0);
    assert_eq!(
        rpc(&b, "getaccount", json!([p0])),
        rpc(&a, "getaccount", json!([p0]))
    );
    assert!(call(&c, "getaccount", json!([p0]))["error"].is_object());
}

/// A peer that relays a full node's packages to a partial node with one chunk's roots bent:
/// the partial node refuses every such package, bans the peer, and later syncs from the
/// honest full node.
#[test]
fn a_peer_serving_bent_packages_is_banned_by_the_partial_node() {
    use rexe_node::p2p::wire::Response;
    let da = tempfile::tempdir().unwrap();
    let db = tempfile::tempdir().unwrap();
    let a = p2p_node(da.path(), &[]);
    let a_addr = p2p_addr(&a);
    mine(&a, 5, b"miner-a");
    let a_id: rexe_net::PeerId = a_addr.rsplit('/').next().unwrap().parse().unwrap();
    let mut cfg = rexe_net::Config::new(rexe_net::Keypair::generate_ed25519(), "regtest");
    cfg.bootnodes = vec![a_addr.parse().unwrap()];
    cfg.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    let (evil, events) = rexe_net::start(cfg).unwrap();
    let mut evil_addr = String::new();
    wait_for("the bent peer to listen", || {
        match evil.status().listening.first() {
            Some(a) => {
                evil_addr = a.clone();
                true
            }
            None => false,
        }
    });
    // The bent peer: answers every request with the full node's answer, packages bent.
    let proxy = std::thread::spawn(move || {
        let mut pending = std::collections::HashMap::new();
        let mut tag = 0u64;
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let Ok(e) = events.recv_timeout(Duration::from_millis(100)) else {
                continue;
            };
            match e {
                rexe_net::Event::Request { data, reply, .. } => {
                    tag += 1;
                    pending.insert(tag, reply);
                    evil.request(a_id, data, tag);
                }
                rexe_net::Event::Response {
                    tag,
                    result: Ok(bytes),
                    ..
                } => {
                    let Some(reply) = pending.remove(&tag) else {
                        continue;
                    };
                    let out = match Response::from_bytes(&bytes) {
                        Ok(Response::Packages(list)) => Response::Packages(
                            list.iter()
                                .map(|p| {
                                    let mut pb =
                                        rexe_chain::partial::PartialBlock::from_bytes(p).unwrap();
                                    pb.chunks[1].state_root = rexe_chain::Hash256([9; 32]);
                                    pb.to_bytes()
                                })
                                .collect(),
                        )
                        .to_bytes(),
                        _ => bytes,
                    };
                    evil.respond(reply, out);
                }
                _ => {}
            }
        }
    });
    // A node on shard 0 in `db`, knowing only `bootnode`.
    let shard_0_node = |bootnode: &str| {
        let args = [
            "node",
            "--datadir",
            db.path().to_str().unwrap(),
            "--rpc-bind",
            "127.0.0.1:0",
            "--bootnode",
            bootnode,
            "--track-shards",
            "0",
        ];
        spawn(&args, db.path())
    };
    // A partial node that knows only the bent peer.
    let b = shard_0_node(&evil_addr);
    wait_for("the bent peer to be banned", || {
        rpc(&b, "getnetworkinfo", json!([]))["banned"] == json!(1)
    });
    assert_eq!(tip(&b).0, 0, "nothing the bent peer sent was applied");
    drop(b);
    // With the honest node as its bootnode it syncs.
    let b = shard_0_node(&a_addr);
    converge(&a, &[&b]);
    drop(proxy);
}

/// A partial node on {0,1}, restarted with `--track-shards 0,1,2`, takes up shard 2 over
/// libp2p: its state from two full peers in pages (checked against the tip's chunk root),
/// the proofs of what it runs next, then blocks as packages for all three shards. It then
/// agrees with the full nodes on shard 2 and answers for its accounts.
#[test]
fn a_partial_node_takes_up_a_shard_over_libp2p() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = p2p_node(dirs[0].path(), &[]);
    let a_addr = p2p_addr(&a);
    let b = p2p_node(dirs[1].path(), std::slice::from_ref(&a_addr));
    let b_addr = p2p_addr(&b);
    let partial = |shards: &str| {
        let args = [
            "node",
            "--datadir",
            dirs[2].path().to_str().unwrap(),
            "--rpc-bind",
            "127.0.0.1:0",
            "--bootnode",
            &a_addr,
            "--bootnode",
            &b_addr,
            "--track-shards",
            shards,
        ];
        spawn(&args, dirs[2].path())
    };
    let payer = Signer::from_seed(b"payer");
    mine(&a, 3, b"payer");
    let payees: Vec<rexe_chain::Address> = (0..12u8)
        .map(|i| Signer::from_seed(&[i]).address())
        .collect();
    let pay_round = |round: u64| pay_round(&a, &payer, &payees, round);
    pay_round(0);
    let c = partial("0,1");
    converge(&a, &[&b, &c]);
    pay_round(1);
    converge(&a, &[&b, &c]);
    drop(c);
    // More blocks while it is down; then it comes back adding shard 2.
    pay_round(2);
    let c = partial("0,1,2");
    wait_for("shard 2 taken up", || {
        rpc(&c, "getchaininfo", json!([]))["tracked_shards"] == json!([0, 1, 2])
    });
    let info = rpc(&c, "getchaininfo", json!([]));
    assert_eq!(info["shards_to_sync"], json!([]), "{info}");
    assert!(info["state_sync"].is_null(), "{info}");
    pay_round(3);
    converge(&a, &[&b, &c]);
    let full = rpc(&a, "getshardinfo", json!([]));
    let mine = tracked_roots(&c);
    assert_eq!(mine.len(), 3);
    for (s, root) in mine {
        assert_eq!(root, full[s as usize]["state_root"], "shard {s}");
    }
    let order = rexe_chain::ShardOrder::new(2).unwrap();
    let on2 = payees
        .iter()
        .find(|p| rexe_chain::shard_of(p, order) == rexe_chain::ShardId(2))
        .expect("a payee on shard 2")
        .encode(Network::Regtest);
    assert_eq!(
        rpc(&c, "getaccount", json!([on2])),
        rpc(&a, "getaccount", json!([on2]))
    );
    // The full nodes served the pages: each answered requests.
    for n in [&a, &b] {
        let m = http_get(&n.rpc, "/metrics");
        assert!(m.contains("rexe_p2p_requests_served_total"), "{m}");
    }
    // Dropping a shard it runs is refused by name.
    drop(c);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rexe"))
        .args([
            "node",
            "--datadir",
            dirs[2].path().to_str().unwrap(),
            "--rpc-bind",
            "127.0.0.1:0",
            "--track-shards",
            "0,1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not drop one it runs"), "{err}");
}

/// A peer that claims more work than it has and answers every fetch with no blocks is
/// charged each time, and banned by the third.
#[test]
fn a_peer_claiming_work_it_does_not_send_is_banned() {
    use rexe_node::p2p::wire::{Request, Response};
    let dir = tempfile::tempdir().unwrap();
    let a = p2p_node(dir.path(), &[]);
    let a_addr = p2p_addr(&a);
    mine(&a, 2, b"miner-a");
    let genesis: rexe_chain::BlockHash = rpc(&a, "getblockhash", json!([0]))
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let (liar, events) = raw_peer(&a_addr);
    let a_id: rexe_net::PeerId = a_addr.rsplit('/').next().unwrap().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut empties = 0;
    while rpc(&a, "getnetworkinfo", json!([]))["banned"] != json!(1) {
        assert!(
            Instant::now() < deadline,
            "never banned ({empties} empty answers)"
        );
        let Ok(e) = events.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        if let rexe_net::Event::Request { data, reply, from } = e {
            assert_eq!(from, a_id);
            let resp = match Request::from_bytes(&data).unwrap() {
                Request::Status => Response::Status {
                    genesis,
                    height: 1_000,
                    tip: rexe_chain::BlockHash(rexe_chain::Hash256([9; 32])),
                    work: [0xff; 32],
                },
                Request::Blocks { .. } => {
                    empties += 1;
                    Response::Blocks(Vec::new())
                }
                _ => Response::Error("no".into()),
            };
            liar.respond(reply, resp.to_bytes());
        }
    }
    assert!(
        (2..=4).contains(&empties),
        "{empties} empty answers before the ban"
    );
    assert_eq!(tip(&a).0, 2, "nothing applied");
}

/// A brand-new partial node joining a chain past half its peers' undo depth (the packages it
/// would replay from genesis are no longer all served) starts from a checkpoint: every
/// header checked from genesis, the checkpoint's global state, then its shards by state
/// sync. It then follows the full node and agrees with it on every shard it runs, and a
/// restart keeps it where it is.
#[test]
fn a_brand_new_partial_node_bootstraps_from_a_checkpoint_over_libp2p() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = p2p_node(dirs[0].path(), &[]);
    let a_addr = p2p_addr(&a);
    let partial = || {
        let args = [
            "node",
            "--datadir",
            dirs[1].path().to_str().unwrap(),
            "--rpc-bind",
            "127.0.0.1:0",
            "--bootnode",
            &a_addr,
            "--track-shards",
            "1,2",
        ];
        spawn(&args, dirs[1].path())
    };
    let payer = Signer::from_seed(b"payer");
    mine(&a, 3, b"payer");
    let payees: Vec<rexe_chain::Address> = (0..12u8)
        .map(|i| Signer::from_seed(&[i]).address())
        .collect();
    let pay_round = |round: u64| pay_round(&a, &payer, &payees, round);
    pay_round(0);
    // Past half the undo depth (200 on regtest).
    mine(&a, 105, b"filler");
    pay_round(1);
    let height = rpc(&a, "getblockcount", json!([])).as_u64().unwrap();
    let c = partial();
    wait_for("bootstrapped, with shards 1 and 2 taken up", || {
        let info = rpc(&c, "getchaininfo", json!([]));
        !info["bootstrapped_at"].is_null()
            && info["tracked_shards"] == json!([1, 2])
            && info["shards_to_sync"] == json!([])
    });
    let info = rpc(&c, "getchaininfo", json!([]));
    let at = info["bootstrapped_at"]["height"].as_u64().unwrap();
    assert_eq!(at + 10, height, "ten blocks below the best header: {info}");
    // The blocks below the checkpoint are headers only.
    let old = call(&c, "getblock", json!([rpc(&a, "getblockhash", json!([2]))]));
    assert!(!old["error"].is_null(), "{old}");
    pay_round(2);
    converge(&a, &[&c]);
    let check = |c: &Running| {
        let full = rpc(&a, "getshardinfo", json!([]));
        let mine = tracked_roots(c);
        assert_eq!(mine.len(), 2);
        for (s, root) in mine {
            assert_eq!(root, full[s as usize]["state_root"], "shard {s}");
        }
        let order = rexe_chain::ShardOrder::new(2).unwrap();
        for p in &payees {
            if [1, 2].contains(&rexe_chain::shard_of(p, order).0) {
                let p = p.encode(Network::Regtest);
                assert_eq!(
                    rpc(c, "getaccount", json!([p])),
                    rpc(&a, "getaccount", json!([p]))
                );
            }
        }
    };
    check(&c);
    drop(c);
    pay_round(3);
    let c = partial();
    converge(&a, &[&c]);
    check(&c);
    assert_eq!(
        rpc(&c, "getchaininfo", json!([]))["bootstrapped_at"]["height"],
        json!(at)
    );
}

/// A partial node is served its packages by another partial node that runs its shards too:
/// a node on shard 1 whose only peer is a node on {0,1,2} (itself fed by the full node)
/// follows the chain and agrees with the full node on shard 1.
#[test]
fn a_partial_node_syncs_from_a_partial_peer_running_its_shards() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = p2p_node(dirs[0].path(), &[]);
    let a_addr = p2p_addr(&a);
    let partial = |dir: &Path, shards: &str, boot: &str, listen: bool| {
        let mut args = vec![
            "node",
            "--datadir",
            dir.to_str().unwrap(),
            "--rpc-bind",
            "127.0.0.1:0",
            "--bootnode",
            boot,
            "--track-shards",
            shards,
        ];
        if listen {
            args.extend(["--p2p-bind", "127.0.0.1:0"]);
        }
        spawn(&args, dir)
    };
    let b = partial(dirs[1].path(), "0,1,2", &a_addr, true);
    let b_addr = p2p_addr(&b);
    let c = partial(dirs[2].path(), "1", &b_addr, false);
    let payer = Signer::from_seed(b"payer");
    mine(&a, 3, b"payer");
    let payees: Vec<rexe_chain::Address> = (0..8u8)
        .map(|i| Signer::from_seed(&[i]).address())
        .collect();
    for round in 0..4u64 {
        pay_round(&a, &payer, &payees, round);
    }
    converge(&a, &[&b, &c]);
    // Its only peer is the partial node.
    let peers = rpc(&c, "getnetworkinfo", json!([]))["peers"].clone();
    assert_eq!(peers.as_array().map(Vec::len), Some(1), "{peers}");
    let full = rpc(&a, "getshardinfo", json!([]));
    assert_eq!(tracked_roots(&c), vec![(1, full[1]["state_root"].clone())]);
}
