//! One conformance suite, run against the embedded node always and against a real bitcoind
//! when `BITCOIND_EXE` names a binary (skipped with a printed reason otherwise). Never
//! downloads anything.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::secp256k1::{Secp256k1, SecretKey};
use bitcoin::{Address, CompressedPublicKey, Network};
use rexe_regtest::{RegtestConfig, RegtestNode};

mod common;
use common::block_from_template;
use serde_json::{json, Value};

/// Where a backend's RPC listens and its credentials.
struct Backend {
    addr: SocketAddr,
    auth: String,
}

impl Backend {
    fn rpc(&self, method: &str, params: Value) -> Value {
        use base64::Engine as _;
        let body =
            json!({"jsonrpc": "1.0", "id": "c", "method": method, "params": params}).to_string();
        let mut s = TcpStream::connect(self.addr).unwrap();
        let req = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nAuthorization: Basic {}\r\n\r\n{body}",
            body.len(),
            base64::engine::general_purpose::STANDARD.encode(&self.auth)
        );
        s.write_all(req.as_bytes()).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        let t = out.split("\r\n\r\n").nth(1).unwrap_or("");
        serde_json::from_str(t).unwrap_or_else(|e| panic!("{method}: {out}: {e}"))
    }

    fn ok(&self, method: &str, params: Value) -> Value {
        let v = self.rpc(method, params);
        assert!(v["error"].is_null(), "{method}: {v}");
        v["result"].clone()
    }
}

struct Key {
    addr: Address,
}

fn key(seed: u8) -> Key {
    let secp = Secp256k1::new();
    let sk = SecretKey::from_slice(&[seed; 32]).unwrap();
    let pk = CompressedPublicKey(sk.public_key(&secp));
    Key {
        addr: Address::p2wpkh(&pk, Network::Regtest),
    }
}

/// The checks every backend must pass with the same answers.
fn conformance(be: &Backend) {
    let info = be.ok("getblockchaininfo", json!([]));
    assert_eq!(info["chain"], json!("regtest"));
    assert_eq!(
        be.ok("getblockhash", json!([0])),
        json!("0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206")
    );
    let a = key(21);
    let hashes = be.ok("generatetoaddress", json!([101, a.addr.to_string()]));
    assert_eq!(hashes.as_array().unwrap().len(), 101);
    assert_eq!(be.ok("getblockcount", json!([])), json!(101));
    assert_eq!(be.ok("getbestblockhash", json!([])), hashes[100]);
    let hdr = be.ok("getblockheader", json!([hashes[100]]));
    assert_eq!(hdr["height"], json!(101));
    assert_eq!(hdr["previousblockhash"], hashes[99]);
    let t = be.ok("getblocktemplate", json!([{"rules": ["segwit"]}]));
    assert_eq!(t["height"], json!(102));
    assert_eq!(t["previousblockhash"], hashes[100]);
    assert_eq!(t["coinbasevalue"], json!(5_000_000_000u64));
    let bad = block_from_template(&t, &a.addr, 1, 1, 0);
    assert_eq!(
        be.ok("submitblock", json!([serialize_hex(&bad)])),
        json!("bad-cb-amount")
    );
    let good = block_from_template(&t, &a.addr, 1, 0, 0);
    assert_eq!(
        be.ok("submitblock", json!([serialize_hex(&good)])),
        Value::Null
    );
    assert_eq!(
        be.ok("submitblock", json!([serialize_hex(&good)])),
        json!("duplicate")
    );
    assert_eq!(
        be.rpc("nosuchmethod", json!([]))["error"]["code"],
        json!(-32601)
    );
    let raw = be.ok("getblock", json!([good.block_hash().to_string(), 0]));
    assert_eq!(raw, json!(serialize_hex(&good)));
    let v1 = be.ok("getblock", json!([good.block_hash().to_string(), 1]));
    assert_eq!(
        v1["tx"][0],
        json!(good.txdata[0].compute_txid().to_string())
    );
    // Tips of equal height come in no fixed order in Core: look for the active one.
    let tips = be.ok("getchaintips", json!([]));
    let active: Vec<&Value> = tips
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == json!("active"))
        .collect();
    assert_eq!(active.len(), 1, "{tips}");
    assert_eq!(active[0]["height"], json!(102));
    assert_eq!(active[0]["hash"], json!(good.block_hash().to_string()));
    assert_eq!(active[0]["branchlen"], json!(0));
}

#[test]
fn conformance_on_the_embedded_node() {
    let node = RegtestNode::start(RegtestConfig::default()).unwrap();
    conformance(&Backend {
        addr: node.rpc_addr,
        auth: node.cookie.clone(),
    });
}

/// Kills the bitcoind it wraps on drop.
struct Bitcoind(Child);

impl Drop for Bitcoind {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_cookie(path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(c) = std::fs::read_to_string(path) {
            if c.contains(':') {
                return c.trim().to_string();
            }
        }
        assert!(Instant::now() < deadline, "bitcoind wrote no cookie");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn conformance_on_a_real_bitcoind() {
    let Some(exe) = std::env::var_os("BITCOIND_EXE") else {
        println!("skipped: BITCOIND_EXE is not set (no real bitcoind to compare against)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new(exe)
        .arg("-regtest")
        .arg(format!("-datadir={}", dir.path().display()))
        .arg(format!("-rpcport={port}"))
        .args([
            "-listen=0",
            "-server=1",
            "-txindex=1",
            "-fallbackfee=0.0001",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _guard = Bitcoind(child);
    let auth = wait_for_cookie(&dir.path().join("regtest/.cookie"));
    let be = Backend {
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        auth,
    };
    // Bounded wait until the RPC answers (warm-up answers -28).
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(be.addr).is_err()
        || !be.rpc("getblockcount", json!([]))["error"].is_null()
    {
        assert!(Instant::now() < deadline, "bitcoind RPC did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    conformance(&be);
    let _ = be.rpc("stop", json!([]));
}
