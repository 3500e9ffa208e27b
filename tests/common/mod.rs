//! Helpers for end-to-end tests of the `rexe` binary.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod peg;

pub const BIN: &str = env!("CARGO_BIN_EXE_rexe");

/// Seals a block template with an AuxPoW (what a merge-mining pool would submit).
pub fn seal(block: &mut rexe_chain::Block) {
    use rexe_miner::auxpow::{mine_parent, AuxTree, ChainId};
    let tree =
        AuxTree::build(&[(ChainId::REXE, rexe_miner::seal::aux_hash(&block.header))]).unwrap();
    let bits = bitcoin::CompactTarget::from_consensus(0x1d00_ffff);
    block.seal = mine_parent(&tree, ChainId::REXE, bits, block.header.target(), 1).encode();
}

/// A running `rexe` child process, killed on drop.
pub struct Running {
    pub child: Child,
    pub rpc: String,
    pub cookie: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `rexe devnet`'s servers, every one on a free loopback port.
pub const DEVNET_LOOPBACK: [&str; 10] = [
    "--rpc-bind",
    "127.0.0.1:0",
    "--bitcoin-rpc-bind",
    "127.0.0.1:0",
    "--electrum-bind",
    "127.0.0.1:0",
    "--stratum-bind",
    "127.0.0.1:0",
    "--proxy-bind",
    "127.0.0.1:0",
];

/// Runs the signed CLI command `rexe ARGS --key KEY` against `n`'s RPC and asserts it
/// succeeded; its stdout.
pub fn cli_as(n: &Running, key: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .args([
            "--key",
            key.to_str().unwrap(),
            "--rpc",
            &n.rpc,
            "--rpc-auth",
            &n.cookie,
        ])
        .env("RUST_LOG", "warn")
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Starts `rexe ARGS` and waits (bounded) for the line announcing its RPC address.
pub fn spawn(args: &[&str], datadir: &Path) -> Running {
    let mut child = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn rexe");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("rexe did not print its RPC address");
        };
        if let Some(i) = line.find("http://") {
            let addr = line[i + 7..].split_whitespace().next().unwrap().to_string();
            let cookie = std::fs::read_to_string(datadir.join(".cookie")).expect("cookie file");
            // Keep draining stdout so the child never blocks on a full pipe.
            std::thread::spawn(move || while rx.recv().is_ok() {});
            return Running {
                child,
                rpc: addr,
                cookie,
            };
        }
    }
}

/// Starts `rexe node` in `dir` on a free loopback port with RPC user `u`, password `p`.
pub fn l2_node_with_password(dir: &Path) -> Running {
    spawn(
        &[
            "node",
            "--datadir",
            dir.to_str().unwrap(),
            "--rpc-bind",
            "127.0.0.1:0",
            "--rpc-user",
            "u",
            "--rpc-password",
            "p",
        ],
        dir,
    )
}

/// Raw HTTP POST, a probe of the server's limits: writes the whole request (ignoring a
/// failed write) and reads whatever comes back, so that an early answer (401 before the
/// body, 413) is seen where a real client would report a broken pipe. (status, body).
pub fn post(addr: &str, auth: Option<&str>, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(a) = auth {
        use bitcoin::base64::Engine as _;
        req += &format!(
            "Authorization: Basic {}\r\n",
            bitcoin::base64::engine::general_purpose::STANDARD.encode(a)
        );
    }
    req += "\r\n";
    s.write_all(req.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

/// A JSON-RPC call with the cookie through the RPC client; returns the whole reply object.
pub fn call(r: &Running, method: &str, params: Value) -> Value {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let client = rexe_rpc::RpcClient::new(r.rpc.clone(), &r.cookie);
    let (_, text) = client
        .post("/", body.to_string().as_bytes(), None)
        .unwrap_or_else(|e| panic!("{method}: {e}"));
    serde_json::from_slice(&text)
        .unwrap_or_else(|e| panic!("bad JSON reply {:?}: {e}", String::from_utf8_lossy(&text)))
}

/// A child process killed (and reaped) on drop.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A throwaway Bitcoin Core on regtest (`BITCOIND_EXE`), killed on drop.
pub struct CoreNode {
    _process: KillOnDrop,
    _dir: tempfile::TempDir,
    /// Its RPC address.
    pub rpc_addr: String,
    /// Its cookie file.
    pub cookie_path: std::path::PathBuf,
}

impl CoreNode {
    /// Starts `exe` (no P2P, RPC on a free port, a fresh datadir) and waits until its RPC
    /// answers.
    pub fn start(exe: impl AsRef<std::ffi::OsStr>) -> CoreNode {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let process = KillOnDrop(
            Command::new(exe)
                .args(["-regtest", "-listen=0", "-server=1"])
                .arg(format!("-datadir={}", dir.path().display()))
                .arg(format!("-rpcport={port}"))
                .stdout(Stdio::null())
                .spawn()
                .expect("start bitcoind"),
        );
        let cookie_path = dir.path().join("regtest/.cookie");
        wait_for("bitcoind's cookie", || cookie_path.exists());
        let node = CoreNode {
            _process: process,
            _dir: dir,
            rpc_addr: format!("127.0.0.1:{port}"),
            cookie_path,
        };
        wait_for("bitcoind's RPC", || {
            node.client()
                .call("getblockcount", serde_json::json!([]))
                .is_ok()
        });
        node
    }

    /// Its cookie (`user:password`).
    pub fn cookie(&self) -> String {
        std::fs::read_to_string(&self.cookie_path)
            .unwrap()
            .trim()
            .to_string()
    }

    /// An RPC client with its cookie.
    pub fn client(&self) -> rexe_rpc::client::RpcClient {
        rexe_rpc::client::RpcClient::new(self.rpc_addr.clone(), self.cookie())
    }
}

/// `rexe miner run` in front of the Bitcoin node `btc_node` for the L2 node at `l2_rpc`
/// (auth `u:p`), paying `payout`, with its proxy on `proxy_addr`: the command, for more
/// flags.
pub fn miner_command(
    btc_node: &rexe_regtest::RegtestNode,
    l2_rpc: &str,
    payout: &str,
    proxy_addr: &str,
) -> Command {
    miner_command_at(
        &btc_node.rpc_addr.to_string(),
        &btc_node.cookie_path,
        l2_rpc,
        payout,
        proxy_addr,
    )
}

/// [`miner_command`] in front of any bitcoind: its RPC address and cookie file.
pub fn miner_command_at(
    bitcoind: &str,
    cookie_path: &Path,
    l2_rpc: &str,
    payout: &str,
    proxy_addr: &str,
) -> Command {
    let mut c = Command::new(BIN);
    c.args([
        "miner",
        "run",
        "--bitcoind",
        bitcoind,
        "--bitcoind-cookie",
        cookie_path.to_str().unwrap(),
        "--l2",
        l2_rpc,
        "--l2-auth",
        "u:p",
        "--payout",
        payout,
        "--proxy-listen",
        proxy_addr,
    ])
    .env("RUST_LOG", "warn");
    c
}

/// [`miner_command`] with `extra` flags, started (killed on drop).
pub fn miner_run(
    btc_node: &rexe_regtest::RegtestNode,
    l2: &Running,
    payout: &str,
    proxy_addr: &str,
    extra: &[&str],
) -> KillOnDrop {
    KillOnDrop(
        miner_command(btc_node, &l2.rpc, payout, proxy_addr)
            .args(extra)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// The counters of the proxy on `proxy_addr`, as `rexe miner stats` prints them (null
/// when it does not answer).
pub fn proxy_stats(proxy_addr: &str) -> Value {
    let out = Command::new(BIN)
        .args(["miner", "stats", "--proxy", proxy_addr])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// A free loopback port (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (60 s at most) until `f` holds.
pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A blocking connection to `to` from the loopback address `from` (all of 127/8 is
/// loopback on Linux): per-IP limits are tested from 127.0.0.2, 127.0.0.3, ...
pub fn connect_from(from: [u8; 4], to: &str) -> std::io::Result<TcpStream> {
    let to: std::net::SocketAddr = to.parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let s = rt.block_on(async {
        let s = tokio::net::TcpSocket::new_v4()?;
        s.bind(std::net::SocketAddr::from((from, 0)))?;
        s.connect(to).await?.into_std()
    })?;
    s.set_nonblocking(false)?;
    Ok(s)
}

/// A JSON-RPC call to `n` that must succeed; its result.
pub fn rpc(n: &Running, method: &str, params: Value) -> Value {
    let v = call(n, method, params);
    assert!(v["error"].is_null(), "{method}: {v}");
    v["result"].clone()
}

/// A template from `n` paying the key of seed `who`, sealed, as hex for `submitblock`.
pub fn sealed_block_hex(n: &Running, who: &[u8]) -> String {
    use bitcoin::hex::{DisplayHex, FromHex};
    use rexe_chain::encode::{Decode, Encode};
    let addr = rexe_chain::Signer::from_seed(who)
        .address()
        .encode(rexe_chain::Network::Regtest);
    let t = rpc(n, "getblocktemplate", serde_json::json!([addr]));
    let mut b =
        rexe_chain::Block::from_bytes(&Vec::<u8>::from_hex(t["hex"].as_str().unwrap()).unwrap())
            .unwrap();
    seal(&mut b);
    b.to_bytes().to_lower_hex_string()
}

/// Mines `count` blocks on `n` through getblocktemplate/submitblock, paying the key of seed
/// `who`.
pub fn mine(n: &Running, count: u64, who: &[u8]) {
    for _ in 0..count {
        let r = rpc(
            n,
            "submitblock",
            serde_json::json!([sealed_block_hex(n, who)]),
        );
        assert_eq!(r, Value::Null);
    }
}

/// Height and hash of `n`'s tip.
pub fn tip(n: &Running) -> (u64, String) {
    let i = rpc(n, "getchaininfo", serde_json::json!([]));
    (
        i["height"].as_u64().unwrap(),
        i["bestblockhash"].as_str().unwrap().to_string(),
    )
}

/// A regtest transfer of `sats` from `from` to `to` at nonce `nonce`, paying 100 msat per gas
/// (fee cap and tip), signed.
pub fn transfer_tx(
    from: &rexe_chain::Signer,
    to: rexe_chain::Address,
    sats: u64,
    nonce: u64,
) -> rexe_chain::SignedTx {
    rexe_chain::Tx {
        network: rexe_chain::Network::Regtest,
        from: from.address(),
        nonce,
        max_fee: rexe_chain::fee::GasPrice::from_msat(100),
        max_tip: rexe_chain::fee::GasPrice::from_msat(100),
        gas_limit: rexe_chain::tx::TRANSFER_GAS,
        expiry_height: 1_000_000,
        payload: rexe_chain::Payload::Transfer {
            to,
            amount: rexe_chain::Amount::from_sat(sats),
        },
    }
    .sign(from)
}

/// `GET /stats` of a running `rexe miner tap` (its `--stats-listen`), as JSON; `None` until
/// it answers.
#[allow(dead_code)]
pub fn tap_stats(addr: &str) -> Option<Value> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut t = String::new();
    s.read_to_string(&mut t).ok()?;
    serde_json::from_str(t.split("\r\n\r\n").nth(1)?).ok()
}
