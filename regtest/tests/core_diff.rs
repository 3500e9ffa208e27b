//! The embedded node beside a real bitcoind (`BITCOIND_EXE`; skipped with a printed reason
//! without it), both holding the same chain and mempool: blocks are mined on the embedded
//! node and submitted to bitcoind, and the same raw transactions are sent to both. Then the
//! same calls must give the same JSON, field for field, except the fields named here that
//! depend on each node's clock, disk or process. Every difference is listed before the test
//! fails, so one run shows them all.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::{Amount, OutPoint};
use rexe_regtest::{RegtestConfig, RegtestNode};
use serde_json::{json, Value};

mod common;
use common::{coinbase_of, free_port, key, spend, Killed};

/// A JSON-RPC endpoint (HTTP/1.1, basic auth).
struct Rpc {
    addr: SocketAddr,
    auth: String,
}

impl Rpc {
    /// The whole reply object (`result`, `error`).
    fn call(&self, method: &str, params: &Value) -> Value {
        common::http_rpc(self.addr, &self.auth, method, params)
    }

    fn ok(&self, method: &str, params: Value) -> Value {
        let v = self.call(method, &params);
        assert!(v["error"].is_null(), "{method}: {v}");
        v["result"].clone()
    }
}

/// Starts bitcoind (regtest, transaction index on, no peers) in `dir`; its RPC once it
/// answers.
fn start_bitcoind(exe: &Path, dir: &Path) -> (Killed, Rpc) {
    let port = free_port();
    let child = Command::new(exe)
        .arg("-regtest")
        .arg(format!("-datadir={}", dir.display()))
        .arg(format!("-rpcport={port}"))
        .args([
            "-listen=0",
            "-server=1",
            "-txindex=1",
            "-fallbackfee=0.0001",
            // Core after v31.0 keeps `bip125-replaceable` behind this switch; v31.0 shows it.
            "-deprecatedrpc=bip125",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let killed = Killed(child);
    let cookie = dir.join("regtest/.cookie");
    let deadline = Instant::now() + Duration::from_secs(60);
    let auth = loop {
        if let Ok(c) = std::fs::read_to_string(&cookie) {
            if c.contains(':') {
                break c.trim().to_string();
            }
        }
        assert!(Instant::now() < deadline, "bitcoind wrote no cookie");
        std::thread::sleep(Duration::from_millis(100));
    };
    let rpc = Rpc {
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        auth,
    };
    while TcpStream::connect(rpc.addr).is_err()
        || !rpc.call("getblockcount", &json!([]))["error"].is_null()
    {
        assert!(Instant::now() < deadline, "bitcoind RPC did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    (killed, rpc)
}

/// `v` without the object fields named in `ignore`, at any depth.
fn without(v: &Value, ignore: &[&str]) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !ignore.contains(&k.as_str()))
                .map(|(k, x)| (k.clone(), without(x, ignore)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|x| without(x, ignore)).collect()),
        other => other.clone(),
    }
}

/// The paths where `a` (the embedded node's) and `b` (bitcoind's) differ.
fn differences(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                match y.get(k) {
                    Some(vb) => differences(&format!("{path}.{k}"), va, vb, out),
                    None => out.push(format!("{path}.{k}: only the embedded node has it ({va})")),
                }
            }
            for (k, vb) in y {
                if !x.contains_key(k) {
                    out.push(format!("{path}.{k}: only bitcoind has it ({vb})"));
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                differences(&format!("{path}[{i}]"), va, vb, out);
            }
        }
        // Numbers compare as numbers (1 and 1.0 are one JSON value).
        (Value::Number(x), Value::Number(y)) if x.as_f64() == y.as_f64() => {}
        _ if a == b => {}
        _ => out.push(format!("{path}: embedded {a}, bitcoind {b}")),
    }
}

/// Both nodes and the differences found so far.
struct Diff {
    embedded: Rpc,
    core: Rpc,
    found: Vec<String>,
    calls: usize,
}

impl Diff {
    /// Calls `method` on both and records where the answers (result or error) differ, less
    /// the fields in `ignore`.
    fn same(&mut self, method: &str, params: Value, ignore: &[&str]) {
        let a = self.embedded.call(method, &params);
        let b = self.core.call(method, &params);
        let (a, b) = (strip_reply(&a), strip_reply(&b));
        let mut out = Vec::new();
        differences("", &without(&a, ignore), &without(&b, ignore), &mut out);
        self.calls += 1;
        for d in out {
            self.found.push(format!("{method} {params}: {d}"));
        }
    }
}

/// A reply's `result`, or its error's code (messages are compared by the conformance suite
/// where they matter; here the code is what a client branches on).
fn strip_reply(v: &Value) -> Value {
    if v["error"].is_null() {
        json!({"result": v["result"]})
    } else {
        json!({"error": v["error"]["code"]})
    }
}

/// Fields that depend on the node's clock, disk, process or configuration, not on the chain.
const CLOCK_AND_DISK: &[&str] = &[
    "time",         // mempool entry: when this node saw it
    "size_on_disk", // getblockchaininfo
    "verificationprogress",
    "warnings",
    "usage", // getmempoolinfo: memory of this process
    "maxmempool",
    "unbroadcastcount",
    "unbroadcast",
    "loaded",
];

#[test]
fn answers_match_a_real_bitcoind() {
    let Some(exe) = std::env::var_os("BITCOIND_EXE") else {
        println!("skipped: BITCOIND_EXE is not set (no real bitcoind to compare against)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_bitcoind, core) = start_bitcoind(Path::new(&exe), dir.path());
    let node = RegtestNode::start(RegtestConfig::default()).unwrap();
    let embedded = Rpc {
        addr: node.rpc_addr,
        auth: node.cookie.clone(),
    };
    let version = core.ok("getnetworkinfo", json!([]))["subversion"].clone();
    println!("bitcoind: {version}");

    // The same chain on both: mined here, submitted there.
    let miner = key(1);
    let copy_to_core = |from: u64, to: u64| {
        for h in from..=to {
            let hash = embedded.ok("getblockhash", json!([h]));
            let raw = embedded.ok("getblock", json!([hash, 0]));
            let r = core.ok("submitblock", json!([raw]));
            assert!(r.is_null(), "bitcoind refused block {h}: {r}");
        }
    };
    embedded.ok("generatetoaddress", json!([110, miner.addr.to_string()]));
    copy_to_core(1, 110);
    assert_eq!(
        core.ok("getbestblockhash", json!([])),
        embedded.ok("getbestblockhash", json!([]))
    );

    // The same mempool: a replaceable payment, a final one, and a child of the first.
    let (a, b, c) = (key(2), key(3), key(4));
    let (cb1, v1) = coinbase_of(&node, 1);
    let (cb2, v2) = coinbase_of(&node, 2);
    let t1 = spend(&miner, cb1, v1, &a.addr, 1_000, true);
    let t2 = spend(&miner, cb2, v2, &b.addr, 2_500, false);
    let t3 = spend(
        &a,
        OutPoint::new(t1.compute_txid(), 0),
        v1 - Amount::from_sat(1_000),
        &c.addr,
        3_000,
        true,
    );
    for t in [&t1, &t2, &t3] {
        let hex = serialize_hex(t);
        let ours = embedded.ok("sendrawtransaction", json!([hex]));
        let theirs = core.ok("sendrawtransaction", json!([hex]));
        assert_eq!(ours, theirs);
    }
    let (id1, id2, id3) = (
        t1.compute_txid().to_string(),
        t2.compute_txid().to_string(),
        t3.compute_txid().to_string(),
    );

    let mut d = Diff {
        embedded,
        core,
        found: Vec::new(),
        calls: 0,
    };
    let tip = d.embedded.ok("getbestblockhash", json!([]));
    let h100 = d.embedded.ok("getblockhash", json!([100]));

    // Mempool.
    let mut ours: Vec<Value> = d
        .embedded
        .ok("getrawmempool", json!([]))
        .as_array()
        .unwrap()
        .clone();
    let mut theirs: Vec<Value> = d
        .core
        .ok("getrawmempool", json!([]))
        .as_array()
        .unwrap()
        .clone();
    ours.sort_by_key(|v| v.to_string());
    theirs.sort_by_key(|v| v.to_string());
    assert_eq!(ours, theirs, "getrawmempool");
    d.same("getrawmempool", json!([true]), CLOCK_AND_DISK);
    for id in [&id1, &id2, &id3] {
        d.same("getmempoolentry", json!([id]), CLOCK_AND_DISK);
        d.same("getrawtransaction", json!([id, true]), CLOCK_AND_DISK);
        d.same("getrawtransaction", json!([id, 2]), CLOCK_AND_DISK);
        d.same("gettxout", json!([id, 0]), CLOCK_AND_DISK);
        d.same("gettxout", json!([id, 0, false]), CLOCK_AND_DISK);
    }
    d.same("getmempoolancestors", json!([id3, true]), CLOCK_AND_DISK);
    d.same("getmempooldescendants", json!([id1, true]), CLOCK_AND_DISK);
    d.same("getmempoolinfo", json!([]), CLOCK_AND_DISK);
    d.same("decoderawtransaction", json!([serialize_hex(&t1)]), &[]);
    d.same("testmempoolaccept", json!([[serialize_hex(&t2)]]), &[]);

    // Chain state before the block.
    for verbosity in [0, 1, 2, 3] {
        d.same("getblock", json!([h100, verbosity]), CLOCK_AND_DISK);
    }
    d.same("getblockheader", json!([tip, true]), CLOCK_AND_DISK);
    d.same("getblockheader", json!([tip, false]), CLOCK_AND_DISK);
    d.same("getblockchaininfo", json!([]), CLOCK_AND_DISK);
    d.same("getchaintips", json!([]), &[]);
    d.same("getdifficulty", json!([]), &[]);
    d.same("gettxoutsetinfo", json!(["none"]), CLOCK_AND_DISK);
    d.same("getblockstats", json!([100]), &[]);
    d.same("getblockstats", json!([100, ["txs", "subsidy"]]), &[]);
    d.same("getblockstats", json!([100, ["nosuchstat"]]), &[]);
    d.same("getblockstats", json!([1000]), &[]);
    d.same("gettxoutsetinfo", json!([]), CLOCK_AND_DISK);
    d.same("getblockcount", json!([]), &[]);
    d.same("validateaddress", json!([miner.addr.to_string()]), &[]);
    d.same("validateaddress", json!(["bcrt1qnotanaddress"]), &[]);
    d.same(
        "getdescriptorinfo",
        json!([format!("addr({})", miner.addr)]),
        &[],
    );
    // Scripts of every kind, as decodescript reads them (P2SH and segwit wrapping).
    let k1 = key(1).pk.to_string();
    let k2 = key(2).pk.to_string();
    let h20 = "751e76e8199196d454941c45d1b3a323f1433bd6";
    let h32 = "1863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262";
    for script in [
        format!("0014{h20}"),
        format!("76a914{h20}88ac"),
        format!("21{k1}ac"),
        format!("5121{k1}21{k2}52ae"),
        "51".to_string(),
        format!("a914{h20}87"),
        format!("0020{h32}"),
        format!("5120{h32}"),
        "6a0401020304".to_string(),
        "51024e73".to_string(),
        "00".to_string(),
        "ba".to_string(),
    ] {
        d.same("decodescript", json!([script]), &[]);
    }

    // A block with the three transactions, mined here and submitted there.
    let mined = d
        .embedded
        .ok("generatetoaddress", json!([1, miner.addr.to_string()]));
    let block = mined[0].clone();
    let raw = d.embedded.ok("getblock", json!([block, 0]));
    let r = d.core.ok("submitblock", json!([raw]));
    assert!(r.is_null(), "bitcoind refused the block: {r}");
    for verbosity in [1, 2, 3] {
        d.same("getblock", json!([block, verbosity]), CLOCK_AND_DISK);
    }
    for id in [&id1, &id2, &id3] {
        d.same("getrawtransaction", json!([id, true]), CLOCK_AND_DISK);
        d.same(
            "getrawtransaction",
            json!([id, true, block]),
            CLOCK_AND_DISK,
        );
        d.same("gettxout", json!([id, 0]), CLOCK_AND_DISK);
    }
    d.same("getblockstats", json!([111]), &[]);
    d.same("getrawmempool", json!([true]), CLOCK_AND_DISK);
    d.same("gettxoutproof", json!([[id2]]), &[]);
    d.same("gettxoutproof", json!([[id1, id3]]), &[]);
    d.same("gettxoutproof", json!([[id2], block]), &[]);
    let proof = d.core.ok("gettxoutproof", json!([[id1, id3]]));
    d.same("verifytxoutproof", json!([proof]), &[]);
    d.same("getchaintxstats", json!([]), &[]);
    d.same("getchaintxstats", json!([0]), &[]);
    d.same("getchaintxstats", json!([200]), &[]);
    d.same("gettxoutsetinfo", json!([]), CLOCK_AND_DISK);
    d.same("gettxoutsetinfo", json!(["none"]), CLOCK_AND_DISK);
    d.same("getchaintxstats", json!([10]), &[]);

    // invalidateblock: the block's transactions go back to the mempool, the tips list says
    // which branch is invalid; reconsiderblock undoes it.
    d.embedded.ok("invalidateblock", json!([block]));
    d.core.ok("invalidateblock", json!([block]));
    d.same("getchaintips", json!([]), &[]);
    d.same("getmempoolentry", json!([id3]), CLOCK_AND_DISK);
    d.same("getblockheader", json!([block, true]), CLOCK_AND_DISK);
    d.embedded.ok("reconsiderblock", json!([block]));
    d.core.ok("reconsiderblock", json!([block]));
    d.same("getchaintips", json!([]), &[]);
    d.same("getblockchaininfo", json!([]), CLOCK_AND_DISK);

    println!("{} calls compared", d.calls);
    assert!(
        d.found.is_empty(),
        "{} differences from bitcoind {version}:\n{}",
        d.found.len(),
        d.found.join("\n")
    );
}
