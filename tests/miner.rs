//! `rexe miner run` end to end: a pool talks to the bitcoind proxy in front of the embedded
//! regtest node; the template carries rexe's commitment in `coinbaseaux.flags`; a block
//! submitted through the proxy seals an L2 block; a stale Bitcoin block committing to L2
//! work is found by the watcher and harvested too.

mod common;

use std::time::{Duration, Instant};

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::hex::FromHex;
use common::*;
use rexe_chain::{Network, Signer};
use rexe_regtest::{RegtestConfig, RegtestNode};
use rexe_rpc::client::RpcClient;
use serde_json::{json, Value};

#[test]
fn proxy_and_watcher_harvest_on_chain_and_stale_blocks() {
    let btc_node = RegtestNode::start(RegtestConfig::default()).unwrap();
    let btc = RpcClient::new(btc_node.rpc_addr.to_string(), btc_node.cookie.clone());
    let l2_dir = tempfile::tempdir().unwrap();
    let l2 = l2_node_with_password(l2_dir.path());
    let payout = Signer::from_seed(b"pool-payout")
        .address()
        .encode(Network::Regtest);
    let proxy_addr = format!("127.0.0.1:{}", free_port());
    let _miner = miner_run(
        &btc_node,
        &l2,
        &payout,
        &proxy_addr,
        &["--watch-interval-ms", "50"],
    );
    // The pool uses the proxy exactly as bitcoind, with bitcoind's credentials.
    let pool = RpcClient::new(proxy_addr.clone(), btc_node.cookie.clone());
    wait_for("the proxy", || {
        pool.call("getblockcount", json!([])).is_ok()
    });
    let l2_height = || {
        call(&l2, "getblockcount", json!([]))["result"]
            .as_u64()
            .unwrap()
    };
    let pool_script = bitcoin::Address::p2wsh(
        &bitcoin::ScriptBuf::new_op_return([7u8; 4]),
        bitcoin::Network::Regtest,
    )
    .script_pubkey();

    // 1. GBT through the proxy carries the 44-byte tag; a block built on it and submitted
    //    through the proxy is a Bitcoin block and seals L2 block 1.
    let t = pool
        .call("getblocktemplate", json!([{"rules": ["segwit"]}]))
        .unwrap();
    let flags = t["coinbaseaux"]["flags"]
        .as_str()
        .expect("coinbaseaux.flags")
        .to_string();
    assert_eq!(flags.len(), 88);
    assert!(flags.starts_with("fabe6d6d"));
    let mine = |t: &Value, extra: u64| {
        let mut b = rexe_miner::harvest::block_from_template(
            t,
            &Vec::<u8>::from_hex(t["coinbaseaux"]["flags"].as_str().unwrap()).unwrap(),
            &pool_script,
            extra,
        )
        .unwrap();
        let target = b.header.target();
        while !target.is_met_by(b.block_hash()) {
            b.header.nonce += 1;
        }
        b
    };
    let b1 = mine(&t, 1);
    assert_eq!(
        pool.call("submitblock", json!([serialize_hex(&b1)]))
            .unwrap(),
        Value::Null
    );
    wait_for("L2 block 1", || l2_height() == 1);
    assert_eq!(btc.call("getblockcount", json!([])).unwrap(), json!(1));

    // 2. A stale block: the pool gets a template (fresh L2 work), but another miner's block
    //    wins that height first; the pool's block, submitted straight to bitcoind, is a side
    //    branch. The watcher finds it via getchaintips and harvests it.
    let t2 = pool
        .call("getblocktemplate", json!([{"rules": ["segwit"]}]))
        .unwrap();
    let other = bitcoin::Address::p2wsh(
        &bitcoin::ScriptBuf::new_op_return([8u8; 4]),
        bitcoin::Network::Regtest,
    );
    btc.call("generatetoaddress", json!([1, other.to_string()]))
        .unwrap();
    let stale = mine(&t2, 2);
    assert_eq!(
        btc.call("submitblock", json!([serialize_hex(&stale)]))
            .unwrap(),
        json!("inconclusive")
    );
    let tips = btc.call("getchaintips", json!([])).unwrap();
    assert!(
        tips.as_array()
            .unwrap()
            .iter()
            // Stored, never connected: Core reports such a stale block as `valid-headers`.
            .any(|t| t["hash"] == json!(stale.block_hash().to_string())
                && t["status"] == json!("valid-headers")),
        "{tips}"
    );
    wait_for("L2 block 2 from the stale block", || l2_height() == 2);
    // The L2 block's seal is the stale block's header.
    let b = call(&l2, "getblock", json!([2, 0]))["result"]
        .as_str()
        .unwrap()
        .to_string();
    let block = <rexe_chain::Block as rexe_chain::encode::Decode>::from_bytes(
        &Vec::<u8>::from_hex(&b).unwrap(),
    )
    .unwrap();
    let aux = rexe_miner::AuxPow::decode(&block.seal).unwrap();
    assert_eq!(aux.parent.block_hash(), stale.block_hash());

    // Counters, as `rexe miner stats` prints them.
    let s = proxy_stats(&proxy_addr);
    assert_eq!(s["on_chain"], json!(1), "{s}");
    assert_eq!(s["stale"], json!(1), "{s}");
    // The proxy harvested block 1 and the watcher saw it again as the tip: counted once,
    // never submitted twice (no "block hash unknown" rejection).
    assert_eq!(s["rejected"], json!({}), "{s}");
    assert_eq!(s["stale_l2"], json!(0), "{s}");
    // Stale L2 work: two templates at once; the second's block seals an L2 block (the L2
    // tip moves, the node drops the first template's work); the first's block, a Bitcoin
    // side branch, then commits to dropped L2 work: counted as stale_l2, not as a refusal.
    let ta = pool
        .call("getblocktemplate", json!([{"rules": ["segwit"]}]))
        .unwrap();
    let tb = pool
        .call("getblocktemplate", json!([{"rules": ["segwit"]}]))
        .unwrap();
    let before = l2_height();
    let bb = mine(&tb, 3);
    assert_eq!(
        pool.call("submitblock", json!([serialize_hex(&bb)]))
            .unwrap(),
        Value::Null
    );
    wait_for("the L2 block sealed by the second template", || {
        l2_height() == before + 1
    });
    let ba = mine(&ta, 4);
    pool.call("submitblock", json!([serialize_hex(&ba)]))
        .unwrap();
    let stats = || proxy_stats(&proxy_addr);
    let t0 = Instant::now();
    while stats()["stale_l2"] != json!(1) && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = stats();
    assert_eq!(s["stale_l2"], json!(1), "{s}");
    assert_eq!(s["rejected"], json!({}), "{s}");
    assert_eq!(s["chains"]["rexe"]["stale_work"], json!(1), "{s}");
    assert_eq!(l2_height(), before + 1);
    // Work whose L2 tip moved under the proxy without it knowing (another harvester, such
    // as a share tap in front of the pool, sealed a block from the same share): the node
    // answers -8 "block hash unknown", counted as stale in both sets of counters, not as
    // an error or a refusal (a run beside ckpool showed it as one "error -8").
    let tc = pool
        .call("getblocktemplate", json!([{"rules": ["segwit"]}]))
        .unwrap();
    common::mine(&l2, 1, b"another harvester");
    let bc = mine(&tc, 5);
    pool.call("submitblock", json!([serialize_hex(&bc)]))
        .unwrap();
    let t0 = Instant::now();
    while stats()["stale_l2"] != json!(2) && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = stats();
    assert_eq!(s["stale_l2"], json!(2), "{s}");
    assert_eq!(s["rejected"], json!({}), "{s}");
    assert_eq!(s["chains"]["rexe"]["stale_work"], json!(2), "{s}");
    assert_eq!(s["chains"]["rexe"]["errors"], json!(0), "{s}");
    assert_eq!(s["chains"]["rexe"]["rejected"], json!({}), "{s}");

    // Other methods pass through untouched.
    assert_eq!(
        pool.call("getbestblockhash", json!([])).unwrap(),
        btc.call("getbestblockhash", json!([])).unwrap()
    );
    assert!(pool.call("nosuchmethod", json!([])).is_err());
}

/// With `--zmq`, the watcher follows bitcoind's `hashblock`: a block committing to L2 work,
/// submitted straight to bitcoind (so the proxy never sees it), is harvested although the
/// `getchaintips` poll interval is an hour. The stale block submitted before that tip only
/// shows up in `getchaintips`, which the woken watcher reads too.
#[test]
fn watcher_woken_by_zmq_hashblock_harvests_without_waiting_for_its_poll() {
    use rexe_regtest::zmq::{Topic, ZmqPub};
    let zmq = format!("tcp://127.0.0.1:{}", free_port());
    let services = rexe_regtest::Services {
        zmq: vec![ZmqPub {
            topic: Topic::HashBlock,
            endpoint: zmq.clone(),
        }],
        ..Default::default()
    };
    let btc_node = RegtestNode::start_with(RegtestConfig::default(), services).unwrap();
    let btc = RpcClient::new(btc_node.rpc_addr.to_string(), btc_node.cookie.clone());
    let l2_dir = tempfile::tempdir().unwrap();
    let l2 = l2_node_with_password(l2_dir.path());
    let payout = Signer::from_seed(b"zmq-payout")
        .address()
        .encode(Network::Regtest);
    let proxy_addr = format!("127.0.0.1:{}", free_port());
    let _miner = miner_run(
        &btc_node,
        &l2,
        &payout,
        &proxy_addr,
        &["--watch-interval-ms", "3600000", "--zmq", &zmq],
    );
    let pool = RpcClient::new(proxy_addr.clone(), btc_node.cookie.clone());
    wait_for("the proxy", || {
        pool.call("getblockcount", json!([])).is_ok()
    });
    let l2_height = || {
        call(&l2, "getblockcount", json!([]))["result"]
            .as_u64()
            .unwrap()
    };
    let script = bitcoin::Address::p2wsh(
        &bitcoin::ScriptBuf::new_op_return([9u8; 4]),
        bitcoin::Network::Regtest,
    )
    .script_pubkey();
    let mine = |t: &Value, extra: u64| {
        let mut b = rexe_miner::harvest::block_from_template(
            t,
            &Vec::<u8>::from_hex(t["coinbaseaux"]["flags"].as_str().unwrap()).unwrap(),
            &script,
            extra,
        )
        .unwrap();
        let target = b.header.target();
        while !target.is_met_by(b.block_hash()) {
            b.header.nonce += 1;
        }
        b
    };
    // The subscription registers with the publisher asynchronously; until the watcher has
    // been woken once (an L2 block from a tip it harvested), keep offering new tips.
    let mut extra = 1;
    let deadline = Instant::now() + Duration::from_secs(60);
    while l2_height() == 0 {
        assert!(Instant::now() < deadline, "no harvest after ZMQ tips");
        let t = pool
            .call("getblocktemplate", json!([{"rules": ["segwit"]}]))
            .unwrap();
        let b = mine(&t, extra);
        extra += 1;
        // Straight to bitcoind: the proxy does not harvest it, only the watcher can.
        assert_eq!(
            btc.call("submitblock", json!([serialize_hex(&b)])).unwrap(),
            Value::Null
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let sealed = l2_height();
    // A stale block committing to fresh work: no tip change, so no ZMQ message...
    let t = pool
        .call("getblocktemplate", json!([{"rules": ["segwit"]}]))
        .unwrap();
    btc.call("generatetoaddress", json!([1, burn_address()]))
        .unwrap();
    let stale = mine(&t, 1000);
    assert_eq!(
        btc.call("submitblock", json!([serialize_hex(&stale)]))
            .unwrap(),
        json!("inconclusive")
    );
    // ...until that tip's own ZMQ wake-up, or the next one, makes the watcher read the tips.
    btc.call("generatetoaddress", json!([1, burn_address()]))
        .unwrap();
    wait_for("the stale block harvested after a ZMQ wake-up", || {
        l2_height() > sealed
    });
}

/// `curl` against the proxy and against the node itself: same status, content type and
/// framing (a JSON text and a newline), the same answer for a forwarded call, a template
/// with the merged-mining flags through the proxy, and a 2 MB body sent with
/// `Expect: 100-continue` answered. Skipped (with the reason printed) without curl.
fn curl_through_the_proxy(proxy: &str, node: &str, cookie: &str) {
    let curl = |addr: &str, body: &str, extra: &[&str]| -> Option<(String, String)> {
        let dir = tempfile::tempdir().unwrap();
        let body_file = dir.path().join("body.json");
        std::fs::write(&body_file, body).unwrap();
        let out = std::process::Command::new("curl")
            .args(["-sS", "-D", "-", "--max-time", "20", "--user", cookie])
            .args(["-H", "content-type: text/plain;"])
            .args(extra)
            .arg("--data-binary")
            .arg(format!("@{}", body_file.display()))
            .arg(format!("http://{addr}/"))
            .output()
            .ok()?;
        assert!(
            out.status.success(),
            "curl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let split = text.rfind("\r\n\r\n").expect("headers and body");
        Some((text[..split].to_string(), text[split + 4..].to_string()))
    };
    let count = r#"{"jsonrpc":"1.0","id":"curltest","method":"getblockcount","params":[]}"#;
    let Some((proxy_head, proxy_body)) = curl(proxy, count, &[]) else {
        eprintln!("skipping the curl check: curl is not installed");
        return;
    };
    let (node_head, node_body) = curl(node, count, &[]).unwrap();
    let status = |h: &str| {
        h.lines()
            .find(|l| l.starts_with("HTTP/"))
            .map(str::to_string)
    };
    assert_eq!(status(&proxy_head), status(&node_head));
    let ctype = |h: &str| {
        h.lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-type:"))
            .map(|l| l.to_ascii_lowercase())
    };
    assert_eq!(
        ctype(&proxy_head),
        ctype(&node_head),
        "{proxy_head}\n{node_head}"
    );
    assert_eq!(
        proxy_body, node_body,
        "a forwarded call answers as the node"
    );
    assert!(proxy_body.ends_with('\n'));
    let gbt =
        r#"{"jsonrpc":"1.0","id":1,"method":"getblocktemplate","params":[{"rules":["segwit"]}]}"#;
    let (head, body) = curl(proxy, gbt, &[]).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        body.ends_with("}\n"),
        "the rewritten template ends as bitcoind's reply"
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(
        v["result"]["coinbaseaux"]["flags"]
            .as_str()
            .is_some_and(|f| f.contains("fabe6d6d")),
        "{v}"
    );
    // curl announces a large body with `Expect: 100-continue` and waits for the go-ahead.
    let big = format!(
        r#"{{"jsonrpc":"1.0","id":2,"method":"submitblock","params":["{}"]}}"#,
        "00".repeat(1_000_000)
    );
    // Garbage as a block: an error, answered as the node answers it (bitcoind: HTTP 500
    // with the JSON-RPC error).
    let (head, body) = curl(proxy, &big, &["-H", "Expect: 100-continue"]).unwrap();
    assert!(head.starts_with("HTTP/1.1 100 Continue"), "{head}");
    let (node_head, node_body) = curl(node, &big, &["-H", "Expect: 100-continue"]).unwrap();
    assert_eq!(
        status(head.rsplit("\r\n\r\n").next().unwrap()),
        status(node_head.rsplit("\r\n\r\n").next().unwrap()),
        "{head}\n{node_head}"
    );
    assert_eq!(body, node_body);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], json!(-22), "{v}");
}

/// The `bitcoin-cli` binary: `BITCOIN_CLI_EXE`, else the one beside `BITCOIND_EXE`.
fn bitcoin_cli_exe() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("BITCOIN_CLI_EXE") {
        return Some(p.into());
    }
    let d = std::path::PathBuf::from(std::env::var_os("BITCOIND_EXE")?);
    Some(d.with_file_name("bitcoin-cli")).filter(|p| p.exists())
}

/// Bitcoin Core's `bitcoin-cli` (its own HTTP client, request bytes and reply parsing)
/// through the proxy and straight at the node: the same output and exit status for
/// forwarded calls, named parameters and errors, and a template with the merged-mining
/// flags through the proxy. Skipped (with the reason printed) without a binary.
fn bitcoin_cli_through_the_proxy(proxy: &str, node: &str, cookie: &str) {
    let Some(exe) = bitcoin_cli_exe() else {
        eprintln!(
            "skipping the bitcoin-cli check: set BITCOIN_CLI_EXE (or BITCOIND_EXE, beside which it is looked for)"
        );
        return;
    };
    let (user, password) = cookie.split_once(':').unwrap();
    let cli = |addr: &str, args: &[&str]| -> (i32, String, String) {
        let (host, port) = addr.rsplit_once(':').unwrap();
        let out = std::process::Command::new(&exe)
            .args(["-regtest", "-rpcclienttimeout=20"])
            .arg(format!("-rpcconnect={host}"))
            .arg(format!("-rpcport={port}"))
            .arg(format!("-rpcuser={user}"))
            .arg(format!("-rpcpassword={password}"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let tip = cli(node, &["getbestblockhash"]).1.trim().to_string();
    for args in [
        vec!["getblockcount"],
        vec!["-named", "getblockhash", "height=0"],
        vec!["getblockheader", &tip, "false"],
        vec!["-named", "getblockheader", &tip, "verbose=true"],
        vec!["getblockhash", "999999"],
        vec!["nosuchmethod"],
    ] {
        let through = cli(proxy, &args);
        let direct = cli(node, &args);
        assert_eq!(through, direct, "bitcoin-cli {args:?}");
    }
    let (code, out, err) = cli(proxy, &["getblocktemplate", r#"{"rules":["segwit"]}"#]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["coinbaseaux"]["flags"]
            .as_str()
            .is_some_and(|f| f.contains("fabe6d6d")),
        "{v}"
    );
}

fn burn_address() -> String {
    bitcoin::Address::p2wsh(
        &bitcoin::ScriptBuf::new_op_return([0xee; 4]),
        bitcoin::Network::Regtest,
    )
    .to_string()
}

/// Sends `head` (a whole HTTP request head) and maybe a body; returns what the server
/// answered within 10 s (status line and the rest).
fn raw_http(addr: &str, head: &str, body: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    // Read until the server closes or stops sending (a kept-alive reply ends by timeout).
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if out.windows(4).any(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&out);
            let len = text.lines().find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
            });
            let head_end = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            if len.is_some_and(|n| out.len() >= head_end + n) {
                break;
            }
        }
    }
    String::from_utf8_lossy(&out).to_string()
}

/// Issue 17 item 4: the proxy checks credentials on the request head before it reads a body,
/// and never harvests a block that an unauthenticated caller sent. Issue 23 item 0: the
/// rewritten getblocktemplate reply ends with a newline, as bitcoind's.
#[test]
fn proxy_authenticates_before_reading_and_never_harvests_refused_blocks() {
    let btc_node = RegtestNode::start(RegtestConfig::default()).unwrap();
    let btc = RpcClient::new(btc_node.rpc_addr.to_string(), btc_node.cookie.clone());
    let l2_dir = tempfile::tempdir().unwrap();
    let l2 = l2_node_with_password(l2_dir.path());
    let payout = Signer::from_seed(b"auth-payout")
        .address()
        .encode(Network::Regtest);
    let proxy_addr = format!("127.0.0.1:{}", free_port());
    let _miner = miner_run(
        &btc_node,
        &l2,
        &payout,
        &proxy_addr,
        &["--proxy-auth", "pool:secret"],
    );
    let pool = RpcClient::new(proxy_addr.clone(), btc_node.cookie.clone());
    wait_for("the proxy", || {
        pool.call("getblockcount", json!([])).is_ok()
    });

    // A 64 MB body announced without credentials: refused on the head alone, at once.
    let head = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        64 * 1024 * 1024
    );
    let t0 = Instant::now();
    let r = raw_http(&proxy_addr, &head, b"");
    assert!(r.starts_with("HTTP/1.1 401"), "{r:?}");
    assert!(
        t0.elapsed() < Duration::from_secs(9),
        "answered without waiting for a body"
    );

    // A block committing to L2 work, sent with wrong credentials: 401, not forwarded, not
    // harvested.
    let t = pool
        .call("getblocktemplate", json!([{"rules": ["segwit"]}]))
        .unwrap();
    let script = bitcoin::ScriptBuf::new_op_return([9u8; 4]);
    let mut b = rexe_miner::harvest::block_from_template(
        &t,
        &Vec::<u8>::from_hex(t["coinbaseaux"]["flags"].as_str().unwrap()).unwrap(),
        &script,
        1,
    )
    .unwrap();
    while !b.header.target().is_met_by(b.block_hash()) {
        b.header.nonce += 1;
    }
    let body = json!({"method": "submitblock", "params": [serialize_hex(&b)], "id": 1}).to_string();
    use bitcoin::base64::Engine as _;
    for auth in [None, Some("__cookie__:wrong"), Some("pool:secre")] {
        let mut head = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        if let Some(a) = auth {
            head += &format!(
                "Authorization: Basic {}\r\n",
                bitcoin::base64::engine::general_purpose::STANDARD.encode(a)
            );
        }
        head += "\r\n";
        let r = raw_http(&proxy_addr, &head, body.as_bytes());
        assert!(r.starts_with("HTTP/1.1 401"), "{auth:?}: {r:?}");
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        btc.call("getblockcount", json!([])).unwrap(),
        json!(0),
        "not forwarded"
    );
    assert_eq!(
        call(&l2, "getblockcount", json!([]))["result"],
        json!(0),
        "not harvested"
    );

    // The extra credentials from --proxy-auth are accepted by the proxy (bitcoind, which
    // does not know them, answers 401 itself and nothing is harvested).
    let head = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\nAuthorization: Basic {}\r\n\r\n",
        body.len(),
        bitcoin::base64::engine::general_purpose::STANDARD.encode("pool:secret")
    );
    let r = raw_http(&proxy_addr, &head, body.as_bytes());
    assert!(
        r.starts_with("HTTP/1.1 401"),
        "bitcoind's own answer: {r:?}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        call(&l2, "getblockcount", json!([]))["result"],
        json!(0),
        "not harvested"
    );

    // The rewritten GBT reply is framed as bitcoind's: a JSON text and a newline.
    let gbt = json!({"method": "getblocktemplate", "params": [{"rules": ["segwit"]}], "id": 2})
        .to_string();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nAuthorization: Basic {}\r\n\r\n",
        gbt.len(),
        bitcoin::base64::engine::general_purpose::STANDARD.encode(&btc_node.cookie)
    );
    let r = raw_http(&proxy_addr, &head, gbt.as_bytes());
    assert!(r.starts_with("HTTP/1.1 200"), "{r:?}");
    assert!(r.contains("fabe6d6d"), "tagged");
    assert!(
        r.ends_with("}\n"),
        "ends as bitcoind's reply: {:?}",
        &r[r.len().saturating_sub(20)..]
    );

    // A pool whose coinbase scriptSig grows past 100 bytes makes invalid blocks: bitcoind
    // refuses it (bad-cb-length), the proxy counts and logs it.
    let mut long = b.clone();
    let mut sig = long.txdata[0].input[0].script_sig.to_bytes();
    sig.push(60);
    sig.extend_from_slice(&[0x5a; 60]);
    long.txdata[0].input[0].script_sig = bitcoin::ScriptBuf::from_bytes(sig);
    long.header.merkle_root = long.compute_merkle_root().unwrap();
    while !long.header.target().is_met_by(long.block_hash()) {
        long.header.nonce += 1;
    }
    let refused = pool
        .call("submitblock", json!([serialize_hex(&long)]))
        .unwrap();
    assert_eq!(refused, json!("bad-cb-length"), "{refused}");
    let stats = proxy_stats(&proxy_addr);
    assert_eq!(stats["coinbase_too_long"], json!(1), "{stats}");

    // A client that reads replies line by line on one kept-alive connection (as ckpool
    // does) gets each reply whole, without waiting for a timeout: the rewritten GBT and a
    // reply forwarded from the node both end in a newline.
    {
        use std::io::{BufRead, BufReader, Write};
        let mut conn = std::net::TcpStream::connect(&proxy_addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut lines = BufReader::new(conn.try_clone().unwrap());
        let auth = bitcoin::base64::engine::general_purpose::STANDARD.encode(&btc_node.cookie);
        for (method, params) in [
            ("getblocktemplate", json!([{"rules": ["segwit"]}])),
            ("getblockcount", json!([])),
        ] {
            let body = json!({"method": method, "params": params, "id": 7}).to_string();
            write!(
                conn,
                "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            let mut line = String::new();
            lines.read_line(&mut line).unwrap();
            assert!(line.starts_with("HTTP/1.1 200"), "{method}: {line:?}");
            loop {
                line.clear();
                lines.read_line(&mut line).unwrap();
                if line == "\r\n" {
                    break;
                }
            }
            line.clear();
            lines
                .read_line(&mut line)
                .unwrap_or_else(|e| panic!("{method}: the reply is not a line: {e}"));
            assert!(line.ends_with('\n'), "{method}: {line:?}");
            let v: Value = serde_json::from_str(&line).unwrap();
            assert!(v["error"].is_null(), "{method}: {v}");
        }
    }

    // A real client: curl (its own request bytes: HTTP/1.1, `Expect: 100-continue` for a
    // large body) gets through the proxy what it gets from the node, framed the same.
    curl_through_the_proxy(
        &proxy_addr,
        &btc_node.rpc_addr.to_string(),
        &btc_node.cookie,
    );

    // Another real client: Bitcoin Core's own bitcoin-cli, when there is one.
    bitcoin_cli_through_the_proxy(
        &proxy_addr,
        &btc_node.rpc_addr.to_string(),
        &btc_node.cookie,
    );

    // With the right credentials the same block goes through and is harvested.
    assert_eq!(
        pool.call("submitblock", json!([serialize_hex(&b)]))
            .unwrap(),
        Value::Null
    );
    wait_for("L2 block 1", || {
        call(&l2, "getblockcount", json!([]))["result"] == json!(1)
    });
}
