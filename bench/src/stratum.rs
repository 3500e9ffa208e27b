//! `rexe bench stratum`: shares per second and reply latency of the Stratum v1 server with
//! many miner connections on loopback.
//!
//! The stack is the real one: the embedded regtest node as bitcoind, an L2 node with its aux
//! RPC, the Stratum server as `rexe miner run` starts it. Both chains get hard targets
//! (`1d00ffff`) and the server a fixed pool difficulty at which every hash is a share, so
//! each submission takes the whole share path (decode, coinbase, merkle root, header hash,
//! duplicate and target checks, reply) without miners grinding and without sealing blocks.
//! Load is open-loop: every connection submits at `rate / connections` per second whatever
//! the replies do, so latency is measured as a miner sees it, not hidden by back-pressure.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use rexe_miner::auxpow::ChainId;
use rexe_miner::proxy::Harvester;
use rexe_miner::stratum::server::{serve, Stratum, StratumOptions};
use rexe_rpc::client::RpcClient;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Hard enough that no share of the run is a block of either chain.
const HARD_BITS: u32 = 0x1d00_ffff;
/// A pool difficulty whose share target is 2^256 - 1: every header hash passes.
const EVERY_HASH: f64 = 1e-30;

#[derive(Args)]
pub struct StratumArgs {
    /// Miner connections.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Offered shares per second over all connections; 0: closed loop (each connection
    /// sends its next share when the previous one is answered), which finds the maximum.
    #[arg(long, value_delimiter = ',', default_value = "10000")]
    rate: Vec<u64>,
    /// Seconds measured per rate (after one second of warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Worker threads of the server's runtime (the load generator has one of its own).
    #[arg(long, default_value_t = 2)]
    server_threads: usize,
}

/// What the load generator saw.
#[derive(Default)]
pub(super) struct Tally {
    pub(super) accepted: u64,
    pub(super) errors: u64,
    /// Reply latencies in microseconds.
    pub(super) latencies: Vec<u32>,
}

/// The server under test and what it runs on.
pub(super) struct Stack {
    pub(super) addr: SocketAddr,
    pub(super) stratum: Arc<Stratum>,
    _regtest: rexe_regtest::RegtestNode,
    pub(super) l2: rexe_node::RpcHandle,
    _runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

pub(super) fn start(server_threads: usize) -> Result<Stack> {
    let dir = tempfile::tempdir()?;
    let regtest = rexe_regtest::RegtestNode::start(rexe_regtest::RegtestConfig {
        bits: HARD_BITS,
        ..Default::default()
    })?;
    let cfg = rexe_node::NodeConfig {
        datadir: dir.path().join("l2"),
        network: "regtest".into(),
        rpc_bind: "127.0.0.1:0".into(),
        rpc_user: Some("bench".into()),
        rpc_password: Some("bench".into()),
        threads: 1,
        peers: Vec::new(),
        p2p_bind: Vec::new(),
        bootnodes: Vec::new(),
        mdns: false,
        track_shards: Vec::new(),
        mining_address: None,
        chain_id: None,
        rpc_max_connections: None,
        rpc_max_per_ip: None,
        rpc_timeout: None,
        rpc_max_batch: None,
        verify_state: false,
        mempool_per_shard: None,
        cache_mib: None,
        mmap_mib: None,
    };
    let params = rexe_chain::ChainParams {
        pow_limit_bits: HARD_BITS,
        ..rexe_chain::ChainParams::regtest()
    };
    let (shared, cookie) = rexe_node::open_shared(&cfg, params)?;
    let l2 = rexe_node::start_rpc(shared, cfg.rpc_addr()?, cookie)?;
    let payout = rexe_chain::params::bench_address(0).encode(rexe_chain::Network::Regtest);
    let harvester = Arc::new(Harvester::new(
        RpcClient::new(l2.addr.to_string(), "bench:bench"),
        payout.clone(),
        ChainId::REXE,
    ));
    let btc = RpcClient::new(regtest.rpc_addr.to_string(), regtest.cookie.clone());
    let btc_payout = bitcoin::ScriptBuf::new_op_return([]);
    let stratum = Stratum::with_options(
        btc,
        harvester,
        payout,
        btc_payout,
        StratumOptions {
            fixed_difficulty: Some(EVERY_HASH),
            // Every connection comes from 127.0.0.1: no connection limits.
            limits: rexe_rpc::Limits {
                max_connections: 0,
                max_per_ip: 0,
                ..StratumOptions::default().limits
            },
            ..Default::default()
        },
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(server_threads)
        .enable_all()
        .thread_name("stratum-server")
        .build()?;
    let addr = runtime.block_on(serve(
        stratum.clone(),
        "127.0.0.1:0".parse()?,
        Duration::from_millis(250),
    ))?;
    Ok(Stack {
        addr,
        stratum,
        _regtest: regtest,
        l2,
        _runtime: runtime,
        _dir: dir,
    })
}

/// A subscribed and authorized miner connection with its first job.
pub(super) struct Miner {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
    job: String,
    ntime: String,
}

pub(super) async fn connect(addr: SocketAddr) -> Result<Miner> {
    let sock = TcpStream::connect(addr).await?;
    sock.set_nodelay(true)?;
    let (r, mut writer) = sock.into_split();
    let mut reader = BufReader::new(r);
    writer
        .write_all(
            b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[\"rexe-bench\"]}\n\
              {\"id\":2,\"method\":\"mining.authorize\",\"params\":[\"bench.1\",\"x\"]}\n",
        )
        .await?;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            bail!("the server closed a connection during the handshake");
        }
        let v: Value = serde_json::from_str(&line)?;
        if v["method"] == "mining.notify" {
            let p = &v["params"];
            return Ok(Miner {
                reader,
                writer,
                job: p[0].as_str().context("job id")?.to_string(),
                ntime: p[7].as_str().context("ntime")?.to_string(),
            });
        }
    }
}

/// Drives one connection: submits unique shares (extranonce2 counts up) at `interval`, or
/// one after another when `None`, and records reply latencies while `record` is set.
pub(super) async fn drive(
    m: Miner,
    interval: Option<Duration>,
    offset: Duration,
    stop: Arc<AtomicBool>,
    record: Arc<AtomicBool>,
    active: Option<Arc<AtomicBool>>,
) -> Result<Tally> {
    let Miner {
        mut reader,
        mut writer,
        job,
        ntime,
    } = m;
    // When each share went out, and whether it was sent while recording (decided at send
    // time, so that the replies still in flight when recording stops count too).
    let sent: Arc<Mutex<std::collections::HashMap<u64, (Instant, bool)>>> = Default::default();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let reply_sent = sent.clone();
    // Replies are read on their own task so a slow server cannot slow the offered load.
    let replies = tokio::spawn(async move {
        let mut t = Tally::default();
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line).await {
                Ok(0) | Err(_) => return t,
                Ok(_) => {}
            }
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            let Some(id) = v["id"].as_u64() else {
                continue; // a notification
            };
            let at = reply_sent
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
            if let Some((at, recorded)) = at {
                if recorded {
                    if v["result"] == json!(true) {
                        t.accepted += 1;
                    } else {
                        t.errors += 1;
                    }
                    t.latencies
                        .push(at.elapsed().as_micros().min(u32::MAX as u128) as u32);
                }
            }
            let _ = done_tx.send(());
        }
    });
    tokio::time::sleep(offset).await;
    let mut ticker = interval.map(|i| {
        let mut t = tokio::time::interval(i);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        t
    });
    let mut n: u64 = 10;
    while !stop.load(Ordering::Relaxed) {
        match &mut ticker {
            Some(t) => {
                t.tick().await;
            }
            None => {
                if n > 10 && done_rx.recv().await.is_none() {
                    break;
                }
            }
        }
        // An open-loop miner whose group is paused lets its ticks pass unsent (no burst
        // when it resumes).
        if active.as_ref().is_some_and(|a| !a.load(Ordering::Relaxed)) {
            continue;
        }
        n += 1;
        let line = format!(
            "{{\"id\":{n},\"method\":\"mining.submit\",\"params\":[\"bench.1\",\"{job}\",\"{:08x}\",\"{ntime}\",\"00000000\"]}}\n",
            n as u32
        );
        sent.lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(n, (Instant::now(), record.load(Ordering::Relaxed)));
        if writer.write_all(line.as_bytes()).await.is_err() {
            break;
        }
    }
    // Let the last replies come in, then close.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = writer.shutdown().await;
    Ok(replies.await?)
}

pub(super) fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// Offers `rate` shares per second (0: closed loop) over `connections` fresh connections
/// to `addr` for `seconds` (after one second of warm-up); what the miners saw and the
/// seconds measured.
pub(super) fn load(
    client: &tokio::runtime::Runtime,
    addr: SocketAddr,
    connections: usize,
    rate: u64,
    seconds: u64,
) -> Result<(Tally, f64)> {
    let miners = connect_all(client, addr, connections)?;
    let interval = (rate > 0).then(|| Duration::from_secs_f64(connections as f64 / rate as f64));
    let stop = Arc::new(AtomicBool::new(false));
    let record = Arc::new(AtomicBool::new(false));
    let (tallies, secs) = client.block_on(async {
        let tasks: Vec<_> = miners
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                // Spread the connections' ticks evenly over one interval.
                let offset = interval.map_or(Duration::ZERO, |iv| {
                    iv.mul_f64(i as f64 / connections as f64)
                });
                tokio::spawn(drive(
                    m,
                    interval,
                    offset,
                    stop.clone(),
                    record.clone(),
                    None,
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(1)).await;
        record.store(true, Ordering::Relaxed);
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        record.store(false, Ordering::Relaxed);
        let secs = t0.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for t in tasks {
            all.push(t.await??);
        }
        anyhow::Ok((all, secs))
    })?;
    let mut total = Tally::default();
    for t in tallies {
        total.accepted += t.accepted;
        total.errors += t.errors;
        total.latencies.extend(t.latencies);
    }
    total.latencies.sort_unstable();
    Ok((total, secs))
}

/// `connections` fresh miners on `addr`, each subscribed with a job.
pub(super) fn connect_all(
    client: &tokio::runtime::Runtime,
    addr: SocketAddr,
    connections: usize,
) -> Result<Vec<Miner>> {
    client.block_on(async {
        let mut v = Vec::with_capacity(connections);
        for _ in 0..connections {
            v.push(connect(addr).await?);
        }
        anyhow::Ok(v)
    })
}

/// Runs the benchmark for each rate; one JSON object per rate.
pub fn run(a: &StratumArgs) -> Result<Vec<Value>> {
    let stack = start(a.server_threads)?;
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut out = Vec::new();
    for &rate in &a.rate {
        let before = stack.stratum.stats.accepted.load(Ordering::Relaxed);
        let (total, secs) = load(&client, stack.addr, a.connections, rate, a.seconds)?;
        let server_accepted = stack.stratum.stats.accepted.load(Ordering::Relaxed) - before;
        anyhow::ensure!(total.errors == 0, "{} shares were refused", total.errors);
        out.push(json!({
            "name": "stratum",
            "connections": a.connections,
            "offered_per_sec": rate,
            "seconds": secs,
            "server_threads": a.server_threads,
            "ops_per_sec": total.accepted as f64 / secs,
            "accepted": total.accepted,
            "server_accepted_total": server_accepted,
            "latency_ms_p50": percentile(&total.latencies, 0.50),
            "latency_ms_p99": percentile(&total.latencies, 0.99),
            "latency_ms_max": percentile(&total.latencies, 1.0),
            "peak_rss_bytes": super::peak_rss_bytes(),
        }));
    }
    Ok(out)
}
