//! A peg test environment: the embedded Bitcoin regtest node (in this process, spoken to
//! over its JSON-RPC and Electrum ports), an L2 node (`rexe node` child process), a thread
//! mining L2 blocks, a header relayer (`rexe peg relay` child process, reading Electrum), and
//! helpers to drive `rexe wallet` / `rexe peg` / `rexe psbt` as a user would.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::hex::{DisplayHex, FromHex};
use rexe_rpc::client::RpcClient;
use serde_json::{json, Value};

use super::{post, seal, spawn, Running, BIN};

/// The environment; everything stops on drop.
pub struct PegEnv {
    pub dir: tempfile::TempDir,
    pub btc_node: Option<rexe_regtest::RegtestNode>,
    pub btc: RpcClient,
    pub node: Running,
    pub cookie_file: PathBuf,
    stop: Arc<AtomicBool>,
    miner: Option<std::thread::JoinHandle<()>>,
    relayer: Option<Child>,
}

/// Output of a finished `rexe` run.
pub struct Out {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl PegEnv {
    /// Starts the Bitcoin node and the L2 node; L2 blocks are mined only after
    /// [`PegEnv::start_mining`].
    pub fn new() -> PegEnv {
        let dir = tempfile::tempdir().unwrap();
        let btc_node = rexe_regtest::RegtestNode::start(Default::default()).unwrap();
        let btc = RpcClient::new(btc_node.rpc_addr.to_string(), btc_node.cookie.clone());
        let l2_dir = dir.path().join("l2");
        let node = spawn(
            &[
                "node",
                "--network",
                "regtest",
                "--datadir",
                l2_dir.to_str().unwrap(),
                "--rpc-bind",
                "127.0.0.1:0",
            ],
            &l2_dir,
        );
        PegEnv {
            cookie_file: l2_dir.join(".cookie"),
            dir,
            btc_node: Some(btc_node),
            btc,
            node,
            stop: Arc::new(AtomicBool::new(false)),
            miner: None,
            relayer: None,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn electrum(&self) -> String {
        self.btc_node.as_ref().unwrap().electrum_url()
    }

    /// `--rpc ADDR --rpc-cookie FILE` for the L2 node.
    pub fn l2_args(&self) -> Vec<String> {
        vec![
            "--rpc".into(),
            self.node.rpc.clone(),
            "--rpc-cookie".into(),
            self.cookie_file.to_str().unwrap().into(),
        ]
    }

    /// `--electrum URL` plus the L2 arguments.
    pub fn net_args(&self) -> Vec<String> {
        let mut v = vec!["--electrum".to_string(), self.electrum()];
        v.extend(self.l2_args());
        v
    }

    /// L2 JSON-RPC call (panics on an error reply).
    pub fn rpc(&self, method: &str, params: Value) -> Value {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let (_, text) = post(
            &self.node.rpc,
            Some(&self.node.cookie),
            body.to_string().as_bytes(),
        );
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert!(v["error"].is_null(), "{method}: {}", v["error"]);
        v["result"].clone()
    }

    /// Bitcoin JSON-RPC call.
    pub fn btc(&self, method: &str, params: Value) -> Value {
        self.btc
            .call(method, params)
            .unwrap_or_else(|e| panic!("bitcoin {method}: {e}"))
    }

    /// Mines `n` Bitcoin blocks (to a throwaway script).
    pub fn mine_btc(&self, n: u32) {
        let a = bitcoin::Address::p2wsh(
            &bitcoin::ScriptBuf::new_op_return([1, 2, 3]),
            bitcoin::Network::Regtest,
        );
        self.btc("generatetoaddress", json!([n, a.to_string()]));
    }

    /// Mines one L2 block paying `payout`.
    pub fn mine_l2_to(&self, payout: &str) {
        mine_l2(&self.node.rpc, &self.node.cookie, payout);
    }

    /// Keeps L2 blocks coming (every 100 ms, paying a throwaway key).
    pub fn start_mining(&mut self) {
        let (a, c, s) = (
            self.node.rpc.clone(),
            self.node.cookie.clone(),
            self.stop.clone(),
        );
        let payout = rexe_chain::Signer::from_seed(b"peg test miner")
            .address()
            .encode(rexe_chain::Network::Regtest);
        self.miner = Some(std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                mine_l2(&a, &c, &payout);
                std::thread::sleep(Duration::from_millis(100));
            }
        }));
    }

    /// Stops the background L2 miner (blocks are then mined by hand).
    pub fn stop_mining(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(m) = self.miner.take() {
            m.join().unwrap();
        }
        self.stop.store(false, Ordering::SeqCst);
    }

    /// Kills the background header relayer.
    pub fn stop_relayer(&mut self) {
        if let Some(mut r) = self.relayer.take() {
            let _ = r.kill();
            let _ = r.wait();
        }
    }

    /// `(nonce, next_nonce)` of an L2 account.
    pub fn nonces(&self, addr: &str) -> (u64, u64) {
        let a = self.rpc("getaccount", json!([addr]));
        (
            a["nonce"].as_u64().unwrap(),
            a["next_nonce"].as_u64().unwrap(),
        )
    }

    /// Runs `rexe peg relay` (Electrum source) in the background, paying with `key_args`
    /// (`--key FILE` or `--wallet FILE`).
    pub fn start_relayer(&mut self, key_args: &[&str]) {
        let mut args: Vec<String> = vec!["peg".into(), "relay".into()];
        args.extend(key_args.iter().map(|s| s.to_string()));
        args.extend(self.net_args());
        let child = Command::new(BIN)
            .args(&args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn relayer");
        self.relayer = Some(child);
    }

    /// Runs `rexe ARGS`; returns what it printed.
    pub fn run(&self, args: &[&str]) -> Out {
        let out = Command::new(BIN)
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .expect("run rexe");
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).to_string(),
        }
    }

    /// Runs `rexe ARGS`, which must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.ok, "rexe {args:?} failed:\n{}\n{}", o.stderr, o.stdout);
        o.stdout
    }

    /// Runs `rexe ARGS`, which must fail; returns stderr + stdout.
    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(!o.ok, "rexe {args:?} should have failed:\n{}", o.stdout);
        format!("{}\n{}", o.stderr, o.stdout)
    }

    /// `rexe wallet create` in the temp dir; returns the wallet's path, first Bitcoin
    /// address and L2 address.
    pub fn wallet(&self, name: &str) -> Wallet {
        let path = self.path(name);
        let out = self.ok(&[
            "wallet",
            "create",
            "--wallet",
            path.to_str().unwrap(),
            "--electrum",
            &self.electrum(),
        ]);
        let v: Value = serde_json::from_str(&out).unwrap();
        Wallet {
            path,
            address: v["address"].as_str().unwrap().to_string(),
            l2: v["l2_address"].as_str().unwrap().to_string(),
        }
    }

    /// The wallet's balance over Electrum.
    pub fn wallet_balance(&self, w: &Wallet) -> Value {
        let out = self.ok(&[
            "wallet",
            "balance",
            "--wallet",
            w.path.to_str().unwrap(),
            "--electrum",
            &self.electrum(),
        ]);
        serde_json::from_str(&out).unwrap()
    }

    /// An L2 account's balance.
    pub fn l2_balance(&self, addr: &str) -> u64 {
        self.rpc("getaccount", json!([addr]))["balance"]
            .as_u64()
            .unwrap()
    }

    /// The supply audit must hold.
    pub fn assert_supply(&self) {
        let s = self.rpc("getsupply", json!([]));
        assert_eq!(s["holds"], true, "supply audit: {s}");
    }

    /// Waits (bounded) until `f` holds.
    pub fn wait_for(&self, what: &str, secs: u64, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the L2 tracks the Bitcoin node's tip (the relayer must run).
    pub fn wait_relayed(&self) {
        let tip = self.btc("getblockcount", json!([])).as_u64().unwrap();
        self.wait_for("the relayer", 60, || {
            self.rpc("getpeginfo", json!([]))["btc_tip"]["height"].as_u64() == Some(tip)
        });
    }

    /// Posts a peg-out order with `--wallet w` paying `w.address`; returns the order id.
    pub fn peg_out(&self, w: &Wallet, amount: u64, fee_bps: u16, min_fill: u64) -> u64 {
        let amount = amount.to_string();
        let fee = fee_bps.to_string();
        let min = min_fill.to_string();
        let mut args = vec![
            "peg",
            "out",
            "--wallet",
            w.path.to_str().unwrap(),
            "--amount",
            &amount,
            "--to",
            &w.address,
            "--fee-bps",
            &fee,
            "--min-fill",
            &min,
        ];
        let l2 = self.l2_args();
        args.extend(l2.iter().map(String::as_str));
        let out = self.ok(&args);
        let json_start = out.find('{').expect("order JSON");
        let v: Value = serde_json::from_str(out[json_start..].trim()).unwrap();
        v["order_id"].as_u64().unwrap()
    }

    /// `rexe peg in --amount N --wallet w ...` plus `extra` arguments.
    pub fn peg_in_args(&self, w: &Wallet, amount: u64, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "peg",
            "in",
            "--amount",
            &amount.to_string(),
            "--wallet",
            w.path.to_str().unwrap(),
            "--claimer-state",
            self.path("claimer.sqlite").to_str().unwrap(),
            "--feerate",
            "2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(self.net_args());
        args
    }

    /// Runs the claimer (Electrum source, paying with `w`'s L2 key) until every watched
    /// payment is claimed or failed.
    pub fn claim_all(&self, w: &Wallet) -> String {
        let mut args: Vec<String> = [
            "peg",
            "claimer",
            "--wallet",
            w.path.to_str().unwrap(),
            "--state",
            self.path("claimer.sqlite").to_str().unwrap(),
            "--until-done",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(self.net_args());
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        self.ok(&a)
    }

    /// The match `id`.
    pub fn peg_match(&self, id: u64) -> Value {
        self.rpc("getpegmatch", json!([id]))
    }
}

impl Drop for PegEnv {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(m) = self.miner.take() {
            let _ = m.join();
        }
        if let Some(mut r) = self.relayer.take() {
            let _ = r.kill();
            let _ = r.wait();
        }
        if let Some(n) = self.btc_node.take() {
            n.shutdown();
        }
    }
}

/// A wallet made by `rexe wallet create`.
pub struct Wallet {
    pub path: PathBuf,
    pub address: String,
    pub l2: String,
}

impl Wallet {
    pub fn arg(&self) -> &str {
        self.path.to_str().unwrap()
    }
}

/// Mines one L2 block: template, AuxPoW seal, submitblock.
pub fn mine_l2(addr: &str, cookie: &str, payout: &str) {
    use rexe_chain::encode::{Decode, Encode};
    let call = |method: &str, params: Value| -> Value {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let (_, text) = post(addr, Some(cookie), body.to_string().as_bytes());
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        v["result"].clone()
    };
    let t = call("getblocktemplate", json!([payout]));
    let Some(hex) = t["hex"].as_str() else {
        return;
    };
    let mut block = rexe_chain::Block::from_bytes(&Vec::<u8>::from_hex(hex).unwrap()).unwrap();
    seal(&mut block);
    call(
        "submitblock",
        json!([block.to_bytes().to_lower_hex_string()]),
    );
}

/// Path helper for arguments.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
