//! The Electrum protocol server of the embedded regtest node, over real TCP, with
//! transactions built and signed by rust-bitcoin and blocks mined over real HTTP JSON-RPC.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bitcoin::consensus::encode::{deserialize, serialize_hex};
use bitcoin::hashes::{sha256, sha256d, Hash};
use bitcoin::hex::{DisplayHex, FromHex};
use bitcoin::Address;
use rexe_regtest::{RegtestConfig, RegtestNode};
use serde_json::{json, Value};

mod common;
use common::*;

struct El {
    rd: BufReader<TcpStream>,
    wr: TcpStream,
    next_id: u64,
    notes: VecDeque<Value>,
}

impl El {
    fn connect(node: &RegtestNode) -> El {
        let s = TcpStream::connect(node.electrum_addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        El {
            rd: BufReader::new(s.try_clone().unwrap()),
            wr: s,
            next_id: 0,
            notes: VecDeque::new(),
        }
    }

    fn line(&mut self) -> Value {
        let mut l = String::new();
        let n = self.rd.read_line(&mut l).unwrap();
        assert!(n > 0, "server closed the connection");
        serde_json::from_str(&l).unwrap_or_else(|e| panic!("{l}: {e}"))
    }

    fn raw(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let req = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.wr.write_all(format!("{req}\n").as_bytes()).unwrap();
        loop {
            let v = self.line();
            if v.get("method").is_some() {
                self.notes.push_back(v);
            } else {
                assert_eq!(v["id"], json!(id), "{v}");
                return v;
            }
        }
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        let v = self.raw(method, params);
        assert!(v.get("error").is_none(), "{method}: {v}");
        v["result"].clone()
    }

    /// Waits (bounded by the read timeout) for a notification of `method` matching `pred`.
    fn wait_note(&mut self, method: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(i) = self
                .notes
                .iter()
                .position(|n| n["method"] == json!(method) && pred(&n["params"]))
            {
                return self.notes.remove(i).unwrap()["params"].clone();
            }
            assert!(Instant::now() < deadline, "no {method} notification");
            let v = self.line();
            self.notes.push_back(v);
        }
    }
}

fn scripthash(a: &Address) -> String {
    let mut b = sha256::Hash::hash(a.script_pubkey().as_bytes()).to_byte_array();
    b.reverse();
    b.to_lower_hex_string()
}

#[test]
fn server_methods_answer_as_the_protocol_defines() {
    let node = RegtestNode::start(RegtestConfig::default()).unwrap();
    let mut el = El::connect(&node);
    let v = el.call("server.version", json!(["test", "1.4"]));
    assert_eq!(v[1], json!("1.4"));
    let f = el.call("server.features", json!([]));
    assert_eq!(
        f["genesis_hash"],
        json!("0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206")
    );
    assert_eq!(el.call("server.ping", json!([])), Value::Null);
    assert_eq!(el.call("server.peers.subscribe", json!([])), json!([]));
    assert!(el.call("server.banner", json!([])).is_string());
    assert!(el.call("blockchain.relayfee", json!([])).is_number());
    assert!(el.call("blockchain.estimatefee", json!([6])).is_number());
    let a = key(1);
    ok(&node, "generatetoaddress", json!([5, a.addr.to_string()]));
    let tip = el.call("blockchain.headers.subscribe", json!([]));
    assert_eq!(tip["height"], json!(5));
    let h5 = ok(
        &node,
        "getblockheader",
        json!([ok(&node, "getblockhash", json!([5])), false]),
    );
    assert_eq!(tip["hex"], h5);
    assert_eq!(el.call("blockchain.block.header", json!([5])), h5);
    let hs = el.call("blockchain.block.headers", json!([2, 10]));
    assert_eq!(hs["count"], json!(4));
    assert_eq!(hs["hex"].as_str().unwrap().len(), 4 * 160);
    assert!(hs["hex"].as_str().unwrap().ends_with(h5.as_str().unwrap()));
    assert_eq!(el.call("mempool.get_fee_histogram", json!([])), json!([]));
}

#[test]
fn history_balance_merkle_notifications_and_reorg() {
    let node = RegtestNode::start(RegtestConfig::default()).unwrap();
    let a = key(2);
    let b = key(3);
    let mut el = El::connect(&node);
    let sha = scripthash(&a.addr);
    let shb = scripthash(&b.addr);
    assert_eq!(
        el.call("blockchain.scripthash.subscribe", json!([shb])),
        Value::Null
    );
    el.call("blockchain.headers.subscribe", json!([]));
    ok(&node, "generatetoaddress", json!([101, a.addr.to_string()]));
    el.wait_note("blockchain.headers.subscribe", |p| {
        p[0]["height"] == json!(101)
    });
    let hist = el.call("blockchain.scripthash.get_history", json!([sha]));
    assert_eq!(hist.as_array().unwrap().len(), 101);
    assert_eq!(hist[0]["height"], json!(1));
    let bal = el.call("blockchain.scripthash.get_balance", json!([sha]));
    assert_eq!(bal["confirmed"], json!(101u64 * 50 * 100_000_000));

    // Spend block 1's coinbase to b over Electrum's broadcast.
    let (prev, value) = coinbase_of(&node, 1);
    let tx = spend(&a, prev, value, &b.addr, 1_000, true);
    let txid = tx.compute_txid();
    let got = el.call(
        "blockchain.transaction.broadcast",
        json!([serialize_hex(&tx)]),
    );
    assert_eq!(got, json!(txid.to_string()));
    let st = el.wait_note("blockchain.scripthash.subscribe", |p| p[0] == json!(shb));
    assert!(st[1].is_string());
    let mem = el.call("blockchain.scripthash.get_mempool", json!([shb]));
    assert_eq!(
        mem,
        json!([{"height": 0, "tx_hash": txid.to_string(), "fee": 1000}])
    );
    let bal = el.call("blockchain.scripthash.get_balance", json!([shb]));
    assert_eq!(bal["unconfirmed"], json!(value.to_sat() - 1000));
    let bal = el.call("blockchain.scripthash.get_balance", json!([sha]));
    assert_eq!(bal["unconfirmed"], json!(-(value.to_sat() as i64)));
    let hist = el.call("mempool.get_fee_histogram", json!([]));
    assert_eq!(hist.as_array().unwrap().len(), 1);
    assert_eq!(
        el.call("blockchain.transaction.get", json!([txid.to_string()])),
        json!(serialize_hex(&tx))
    );

    // Confirm it: the status changes, with the history hash the protocol defines.
    ok(&node, "generatetoaddress", json!([1, a.addr.to_string()]));
    el.wait_note("blockchain.headers.subscribe", |p| {
        p[0]["height"] == json!(102)
    });
    let st = el.wait_note("blockchain.scripthash.subscribe", |p| {
        p[0] == json!(shb) && p[1].is_string()
    });
    let want = sha256::Hash::hash(format!("{txid}:102:").as_bytes());
    assert_eq!(st[1], json!(want.to_byte_array().to_lower_hex_string()));
    let utxo = el.call("blockchain.scripthash.listunspent", json!([shb]));
    assert_eq!(
        utxo,
        json!([{"tx_hash": txid.to_string(), "tx_pos": 0, "height": 102,
                "value": value.to_sat() - 1000}])
    );

    // The merkle proof verifies against the header's merkle root.
    let m = el.call(
        "blockchain.transaction.get_merkle",
        json!([txid.to_string(), 102]),
    );
    let mut pos = m["pos"].as_u64().unwrap();
    let mut cur = txid.to_byte_array();
    for h in m["merkle"].as_array().unwrap() {
        let mut sib: [u8; 32] = Vec::<u8>::from_hex(h.as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        sib.reverse();
        let mut d = Vec::new();
        if pos.is_multiple_of(2) {
            d.extend(cur);
            d.extend(sib);
        } else {
            d.extend(sib);
            d.extend(cur);
        }
        cur = sha256d::Hash::hash(&d).to_byte_array();
        pos /= 2;
    }
    let hdr_hex = el.call("blockchain.block.header", json!([102]));
    let hdr: bitcoin::block::Header =
        deserialize(&Vec::<u8>::from_hex(hdr_hex.as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(hdr.merkle_root.to_byte_array(), cur);
    let idp = el.call("blockchain.transaction.id_from_pos", json!([102, 1, true]));
    assert_eq!(idp["tx_hash"], json!(txid.to_string()));
    assert_eq!(idp["merkle"], m["merkle"]);

    // Reorg: invalidate block 102; the tx goes back to the mempool and a headers
    // notification announces height 101.
    let h102 = ok(&node, "getblockhash", json!([102]));
    ok(&node, "invalidateblock", json!([h102]));
    el.wait_note("blockchain.headers.subscribe", |p| {
        p[0]["height"] == json!(101)
    });
    let hist = el.call("blockchain.scripthash.get_history", json!([shb]));
    assert_eq!(
        hist,
        json!([{"height": 0, "tx_hash": txid.to_string(), "fee": 1000}])
    );
    // A competing branch confirms it at height 102 again, in a different block.
    ok(&node, "generatetoaddress", json!([2, b.addr.to_string()]));
    el.wait_note("blockchain.headers.subscribe", |p| {
        p[0]["height"] == json!(103)
    });
    let hist = el.call("blockchain.scripthash.get_history", json!([shb]));
    let heights: Vec<i64> = hist
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["height"].as_i64().unwrap())
        .collect();
    assert_eq!(heights, vec![102, 102, 103], "{hist}");
    assert_ne!(ok(&node, "getblockhash", json!([102])), h102);
}

#[test]
fn bad_input_gets_errors_or_closes_only_that_client() {
    let node = RegtestNode::start(RegtestConfig::default()).unwrap();
    let mut good = El::connect(&node);
    let mut el = El::connect(&node);
    let v = el.raw("no.such.method", json!([]));
    assert_eq!(v["error"]["code"], json!(-32601));
    let v = el.raw("blockchain.block.header", json!(["x"]));
    assert_eq!(v["error"]["code"], json!(-32602));
    let v = el.raw("blockchain.scripthash.get_history", json!(["zz"]));
    assert_eq!(v["error"]["code"], json!(-32602));
    let v = el.raw("blockchain.transaction.broadcast", json!(["nothex"]));
    assert!(v["error"]["message"].is_string(), "{v}");
    let v = el.raw("blockchain.block.header", json!([1_000_000]));
    assert!(v.get("error").is_some(), "{v}");
    // A batch.
    el.wr
        .write_all(b"[{\"id\":1,\"method\":\"server.ping\"},{\"id\":2,\"method\":\"nope\"}]\n")
        .unwrap();
    let v = el.line();
    assert_eq!(v[0]["result"], Value::Null);
    assert_eq!(v[1]["error"]["code"], json!(-32601));

    // 10,000 garbage lines: one parse error each, then the connection still works.
    let garbage: String = (0..10_000).map(|i| format!("garbage {{{i}\n")).collect();
    let mut w = el.wr.try_clone().unwrap();
    let writer = std::thread::spawn(move || w.write_all(garbage.as_bytes()));
    for _ in 0..10_000 {
        assert_eq!(el.line()["error"]["code"], json!(-32700));
    }
    writer.join().unwrap().unwrap();
    assert_eq!(el.call("server.ping", json!([])), Value::Null);

    // A line over the limit closes that client only.
    let big = vec![b'a'; 4 * 1024 * 1024 + 10];
    let mut w = el.wr.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&big);
    });
    let v = el.line();
    assert!(v["error"].is_object(), "{v}");
    let mut rest = String::new();
    let _ = el.rd.read_to_string(&mut rest);
    let _ = writer.join();
    assert_eq!(good.call("server.ping", json!([])), Value::Null);
    assert!(good.call("blockchain.headers.subscribe", json!([]))["height"].is_number());
}

/// Protocol 1.4's `cp_height`: a header (or the last of a range) comes with the Merkle branch
/// to the root of the block hashes up to the checkpoint, as ElectrumX and electrs answer.
#[test]
fn header_proofs_against_a_checkpoint() {
    let node = RegtestNode::start(RegtestConfig::default()).unwrap();
    ok(
        &node,
        "generatetoaddress",
        json!([10, key(7).addr.to_string()]),
    );
    let hashes: Vec<[u8; 32]> = (0..=10)
        .map(|h| {
            let s = ok(&node, "getblockhash", json!([h]));
            let mut b: [u8; 32] = Vec::<u8>::from_hex(s.as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap();
            b.reverse();
            b
        })
        .collect();
    // The root of blocks 0..=8, computed here independently.
    let root = bitcoin::merkle_tree::calculate_root(
        hashes[..=8]
            .iter()
            .map(|h| bitcoin::TxMerkleNode::from_byte_array(*h)),
    )
    .unwrap();
    let fold = |height: usize, branch: &Value| -> String {
        let mut h = hashes[height];
        for (i, b) in branch.as_array().unwrap().iter().enumerate() {
            let mut b: [u8; 32] = Vec::<u8>::from_hex(b.as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap();
            b.reverse();
            let mut d = [0u8; 64];
            if (height >> i) & 1 == 1 {
                d[..32].copy_from_slice(&b);
                d[32..].copy_from_slice(&h);
            } else {
                d[..32].copy_from_slice(&h);
                d[32..].copy_from_slice(&b);
            }
            h = sha256d::Hash::hash(&d).to_byte_array();
        }
        h.reverse();
        h.to_lower_hex_string()
    };
    let mut el = El::connect(&node);
    for height in [0usize, 3, 8] {
        let v = el.call("blockchain.block.header", json!([height, 8]));
        assert_eq!(v["root"], json!(root.to_string()), "{v}");
        assert_eq!(
            fold(height, &v["branch"]),
            root.to_string(),
            "height {height}: {v}"
        );
        assert_eq!(
            v["header"],
            ok(
                &node,
                "getblockheader",
                json!([ok(&node, "getblockhash", json!([height])), false])
            )
        );
    }
    // Without cp_height: the bare header, as before.
    assert!(el.call("blockchain.block.header", json!([3])).is_string());
    // A range: the proof is for its last header.
    let v = el.call("blockchain.block.headers", json!([2, 4, 8]));
    assert_eq!(v["count"], json!(4));
    assert_eq!(v["root"], json!(root.to_string()), "{v}");
    assert_eq!(fold(5, &v["branch"]), root.to_string(), "{v}");
    // Heights past the checkpoint, or a checkpoint past the tip: errors.
    assert!(el.raw("blockchain.block.header", json!([9, 8]))["error"].is_object());
    assert!(el.raw("blockchain.block.header", json!([3, 11]))["error"].is_object());
    assert!(el.raw("blockchain.block.headers", json!([6, 4, 8]))["error"].is_object());
}
