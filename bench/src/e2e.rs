//! `rexe bench e2e`: signed transfers end to end. A separate client process (this binary's
//! hidden `bench e2e-client`) signs transfers between keyed genesis accounts and submits
//! them to the node's JSON-RPC in batches of `sendrawtransaction` over keep-alive
//! connections; the node verifies each signature once at admission (a batch on every core,
//! before the chain is locked), builds templates from its mempool, seals them with the test
//! sealer and commits them durably (block log `synchronous=FULL`). Reported: committed
//! transfers per second from the client's first request to the last block's commit (final
//! flush included), the client's batch round trips (p50/p99), and the ratio to the raw
//! signature-verification rate measured in the same run on as many threads (before and after
//! the timed part, averaged).

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bitcoin::hex::DisplayHex;
use rexe_chain::encode::Encode;
use rexe_chain::fee::GasPrice;
use rexe_chain::params::GenesisAlloc;
use rexe_chain::seal::TestSealer;
use rexe_chain::{
    Amount, Chain, ChainConfig, ChainParams, Network, Payload, ShardOrder, Signer, Tx,
};
use rexe_rpc::RpcClient;
use serde_json::{json, Value};

use super::peak_rss_bytes;

/// `rexe bench e2e`.
#[derive(clap::Args)]
pub struct E2eArgs {
    /// Keyed genesis accounts sending to each other.
    #[arg(long, default_value_t = 20_000)]
    accounts: u64,
    /// Transfers submitted.
    #[arg(long, default_value_t = 200_000)]
    txs: u64,
    /// `sendrawtransaction` requests per JSON-RPC batch.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Client connections (each sends for its own accounts, one batch at a time). A node
    /// admits from many wallets at once; with two, the cores idled between round trips.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// The node's executor threads (and the threads of the raw verification run).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// log2 of the shard count.
    #[arg(long, default_value_t = 2)]
    shard_order: u8,
    /// The miner builds a block at most this often (milliseconds; 0: whenever the mempool
    /// holds transactions, the worst case for per-block costs).
    #[arg(long, default_value_t = 0)]
    block_ms: u64,
}

/// `rexe bench e2e-client` (started by `rexe bench e2e`).
#[derive(clap::Args)]
pub struct E2eClientArgs {
    /// The node's RPC `host:port`.
    #[arg(long)]
    addr: String,
    /// The node's cookie file.
    #[arg(long)]
    cookie: PathBuf,
    #[arg(long)]
    accounts: u64,
    #[arg(long)]
    txs: u64,
    #[arg(long)]
    batch: usize,
    #[arg(long)]
    connections: usize,
}

fn signer(i: u64) -> Signer {
    Signer::from_seed(&[b"rexe/bench-e2e/".as_slice(), &i.to_le_bytes()].concat())
}

fn params(shard_order: u8, accounts: u64) -> Result<ChainParams> {
    let mut p = ChainParams::regtest();
    p.shard_order = ShardOrder::new(shard_order)?;
    p.genesis_alloc = GenesisAlloc::Accounts(
        (0..accounts)
            .map(|i| (signer(i).address(), Amount::ONE_BTC))
            .collect(),
    );
    Ok(p)
}

/// Runs the benchmark; one JSON object.
pub fn run(a: &E2eArgs) -> Result<Value> {
    if a.accounts < 2 || a.txs == 0 || a.batch == 0 || a.connections == 0 {
        bail!("need at least 2 accounts, 1 transfer, a batch of 1 and 1 connection");
    }
    eprintln!("raw signature verification on {} threads...", a.threads);
    let before = super::sigverify(50_000, a.threads);
    let keys_before = rexe_chain::address::key_cache_stats();
    let tmp = tempfile::tempdir()?;
    let params = params(a.shard_order, a.accounts)?;
    let config = ChainConfig {
        threads: a.threads,
        // Every transfer fits: the benchmark measures throughput, not eviction.
        mempool_per_shard: (a.txs as usize).max(1),
        ..ChainConfig::default()
    };
    eprintln!("genesis with {} keyed accounts...", a.accounts);
    let chain = Chain::open(tmp.path(), params.clone(), config, Arc::new(TestSealer))
        .context("opening the benchmark chain")?;
    let max_tx_bytes = chain.params().max_tx_bytes;
    let (cookie, cookie_path) = rexe_node::cookie::write(tmp.path())?;
    let shared = Arc::new(rexe_node::http::Shared {
        chain: Mutex::new(chain),
        auth: rexe_node::http::Auth {
            cookie,
            user_password: None,
        },
        started: Instant::now(),
        peers: Vec::new(),
        aux: Mutex::new(Default::default()),
        mining_address: None,
        chain_id: rexe_miner::ChainId(0),
        limits: rexe_rpc::Limits::http(),
        max_tx_bytes,
        p2p: std::sync::OnceLock::new(),
        p2p_peer_height: Default::default(),
    });
    let rpc = rexe_node::start_rpc(
        shared.clone(),
        "127.0.0.1:0".parse().expect("valid"),
        cookie_path.clone(),
    )?;
    let exe = std::env::current_exe().context("finding this executable")?;
    let mut child = Command::new(exe)
        .args(["bench", "e2e-client", "--addr", &rpc.addr.to_string()])
        .arg("--cookie")
        .arg(&cookie_path)
        .args(["--accounts", &a.accounts.to_string()])
        .args(["--txs", &a.txs.to_string()])
        .args(["--batch", &a.batch.to_string()])
        .args(["--connections", &a.connections.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the client process")?;
    let mut lines = BufReader::new(child.stdout.take().context("client stdout")?).lines();
    match lines.next() {
        Some(Ok(l)) if l == "ready" => {}
        other => bail!("the client did not get ready: {other:?}"),
    }
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let report = lines.next().and_then(|l| l.ok()).unwrap_or_default();
        let _ = done_tx.send(report);
    });
    eprintln!("the client is sending {} transfers...", a.txs);
    let cpu_start = super::cpu_secs().0;
    let start = Instant::now();
    let miner = Signer::from_seed(b"bench-e2e-miner").address();
    let mut committed = 0u64;
    let mut blocks = 0u64;
    let mut report = None;
    let mut last_progress = Instant::now();
    let mut last_block = Instant::now();
    // Where the miner's time goes: waiting for the lock, building, committing.
    let (mut lock_wait, mut building, mut committing) = (0f64, 0f64, 0f64);
    while committed < a.txs {
        let wait = Duration::from_millis(a.block_ms).saturating_sub(last_block.elapsed());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        let block = {
            let t = Instant::now();
            let mut chain = shared.chain();
            lock_wait += t.elapsed().as_secs_f64();
            if chain.mempool().is_empty() {
                None
            } else {
                let now = params.genesis_time + chain.tip_height() + 1;
                let t = Instant::now();
                let mut b = chain.template(miner, now)?;
                b.seal = TestSealer::seal(&b.header);
                let n = b.tx_count() as u64;
                building += t.elapsed().as_secs_f64();
                let t = Instant::now();
                chain.submit(b, now)?;
                committing += t.elapsed().as_secs_f64();
                Some(n)
            }
        };
        match block {
            Some(n) => {
                committed += n;
                blocks += 1;
                last_block = Instant::now();
            }
            None => {
                if report.is_none() {
                    if let Ok(r) = done_rx.try_recv() {
                        report = Some(r);
                    }
                } else {
                    bail!("the client finished but only {committed} transfers were committed");
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        if last_progress.elapsed() > Duration::from_secs(5) {
            eprintln!("{committed} transfers committed in {blocks} blocks");
            last_progress = Instant::now();
        }
    }
    shared.chain().flush()?;
    let secs = start.elapsed().as_secs_f64();
    let node_cpu = super::cpu_secs().0 - cpu_start;
    let report = match report {
        Some(r) => r,
        None => done_rx
            .recv_timeout(Duration::from_secs(60))
            .context("the client's report")?,
    };
    let _ = child.wait();
    rpc.shutdown();
    let client: Value = serde_json::from_str(&report).context("the client's report")?;
    // The client's CPU less its signing before the timed part (which it reports).
    let client_cpu = super::cpu_secs().1 - client["sign_cpu_secs"].as_f64().unwrap_or(0.0);
    let audit = shared.chain().audit_supply()?;
    anyhow::ensure!(audit.holds(), "supply invariant broken after the benchmark");
    // The raw rate is measured before and after the run and averaged: a shared host's
    // speed drifts by tens of percent within minutes, and one measurement before the run
    // moved the ratio as much as anything in the node did.
    eprintln!("raw signature verification again, after the run...");
    let after = super::sigverify(50_000, a.threads);
    let rate = |v: &Value, k: &str| v[k].as_f64().unwrap_or(0.0);
    let raw = (rate(&before, "ops_per_sec") + rate(&after, "ops_per_sec")) / 2.0;
    let raw_cached =
        (rate(&before, "cached_key_ops_per_sec") + rate(&after, "cached_key_ops_per_sec")) / 2.0;
    let raw_batch = (rate(&before, "batch_ops_per_sec") + rate(&after, "batch_ops_per_sec")) / 2.0;
    let per_sec = a.txs as f64 / secs;
    let keys_after = rexe_chain::address::key_cache_stats();
    let (key_hits, key_misses) = (keys_after.0 - keys_before.0, keys_after.1 - keys_before.1);
    Ok(json!({
        "name": "e2e-signed-transfers",
        "accounts": a.accounts,
        "txs": a.txs,
        "batch": a.batch,
        "connections": a.connections,
        "threads": a.threads,
        "shards": 1u32 << a.shard_order,
        "block_ms": a.block_ms,
        "blocks": blocks,
        "seconds": secs,
        "ops_per_sec": per_sec,
        "raw_verify_per_sec": raw,
        "raw_verify_before_per_sec": rate(&before, "ops_per_sec"),
        "raw_verify_after_per_sec": rate(&after, "ops_per_sec"),
        "ratio_to_raw_verify": per_sec / raw,
        "raw_verify_cached_key_per_sec": raw_cached,
        "ratio_to_raw_verify_cached_key": per_sec / raw_cached,
        "raw_batch_verify_per_sec": raw_batch,
        "ratio_to_raw_batch_verify": per_sec / raw_batch,
        "key_cache_hit_rate": key_hits as f64 / (key_hits + key_misses).max(1) as f64,
        "batch_p50_ms": client["batch_p50_ms"],
        "batch_p99_ms": client["batch_p99_ms"],
        "client_send_secs": client["send_secs"],
        "node_cpu_secs": node_cpu,
        "client_cpu_secs": client_cpu,
        "miner_lock_wait_secs": lock_wait,
        "miner_template_secs": building,
        "miner_submit_secs": committing,
        "peak_rss_bytes": peak_rss_bytes(),
    }))
}

/// The client process: signs every transfer, says `ready`, sends them, prints a report.
pub fn client(a: &E2eClientArgs) -> Result<()> {
    let cookie = std::fs::read_to_string(&a.cookie).context("reading the node's cookie")?;
    let signers: Vec<Signer> = (0..a.accounts).map(signer).collect();
    let fee = ChainParams::regtest().min_base_fee;
    // Transfer k: from account k % accounts at nonce k / accounts, to a scattered other.
    let conns = a.connections.min(a.accounts as usize).max(1);
    let mut bodies: Vec<Vec<Vec<u8>>> = vec![Vec::new(); conns];
    let mut pending: Vec<Vec<Value>> = vec![Vec::new(); conns];
    for k in 0..a.txs {
        let from = k % a.accounts;
        let to = (from + 1 + (k.wrapping_mul(0x9e37_79b9) % (a.accounts - 1))) % a.accounts;
        let tx = Tx {
            network: Network::Regtest,
            from: signers[from as usize].address(),
            nonce: k / a.accounts,
            max_fee: GasPrice::from_msat(fee.to_msat() * 100),
            max_tip: GasPrice::from_msat(1),
            gas_limit: rexe_chain::tx::TRANSFER_GAS,
            expiry_height: 1_000_000,
            payload: Payload::Transfer {
                to: signers[to as usize].address(),
                amount: Amount::from_sat(1),
            },
        }
        .sign(&signers[from as usize]);
        let c = (from as usize) % conns;
        let id = pending[c].len();
        pending[c].push(
            json!({"jsonrpc": "2.0", "id": id, "method": "sendrawtransaction",
                               "params": [tx.to_bytes().to_lower_hex_string()]}),
        );
        if pending[c].len() == a.batch {
            bodies[c].push(serde_json::to_vec(&std::mem::take(&mut pending[c]))?);
        }
    }
    for (c, p) in pending.into_iter().enumerate() {
        if !p.is_empty() {
            bodies[c].push(serde_json::to_vec(&p)?);
        }
    }
    // One client (so one keep-alive connection) per sending thread, connected before
    // `ready` so that the measured window holds no connects.
    let conns: Vec<RpcClient> = (0..conns)
        .map(|_| {
            let c = RpcClient::new(a.addr.clone(), cookie.trim());
            c.call("getblockcount", json!([]))
                .with_context(|| format!("connecting to {}", a.addr))?;
            Ok(c)
        })
        .collect::<Result<_>>()?;
    let sign_cpu = super::cpu_secs().0;
    println!("ready");
    std::io::stdout().flush()?;
    let start = Instant::now();
    let results: Vec<Result<Vec<Duration>>> = std::thread::scope(|s| {
        let handles: Vec<_> = conns
            .iter()
            .zip(&bodies)
            .map(|(conn, bodies)| {
                s.spawn(move || -> Result<Vec<Duration>> {
                    let mut rtts = Vec::with_capacity(bodies.len());
                    for b in bodies {
                        let t = Instant::now();
                        let (status, reply) = conn.post("/", b, None)?;
                        if status != 200 {
                            bail!("node answered HTTP {status}");
                        }
                        rtts.push(t.elapsed());
                        let v: Value = serde_json::from_slice(&reply)?;
                        if let Some(e) = v
                            .as_array()
                            .and_then(|a| a.iter().find(|r| !r["error"].is_null()))
                        {
                            bail!("a transfer was refused: {}", e["error"]);
                        }
                    }
                    Ok(rtts)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| bail!("client thread panicked")))
            .collect()
    });
    let send_secs = start.elapsed().as_secs_f64();
    let mut rtts = Vec::new();
    for r in results {
        rtts.extend(r?);
    }
    rtts.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let pct = |p: usize| rtts.get(rtts.len() * p / 100).map_or(0.0, |d| ms(*d));
    println!(
        "{}",
        json!({"batch_p50_ms": pct(50), "batch_p99_ms": pct(99), "send_secs": send_secs,
               "batches": rtts.len(), "sign_cpu_secs": sign_cpu})
    );
    Ok(())
}
