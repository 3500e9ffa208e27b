//! Figures for issue 17: the RPC's latency (`getblockcount`, p50/p99) idle and under an
//! Electrum flood (several clients sending lines of 100 `get_balance` requests for a wallet
//! of 100 addresses), and block latency with 20,000 scripthash subscriptions. Ignored by
//! default (a measurement, not a check); run with
//! `cargo test -p rexe-regtest --test bench_electrum -- --ignored --nocapture`
//! (`BENCH_SAMPLES`, `BENCH_SUBS` and `BENCH_BLOCKS` shrink it for slow builds;
//! `BENCH_WORKERS` and `BENCH_PRIORITY` set the Electrum workers' number and priority,
//! default the server's).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::hex::DisplayHex;
use rexe_regtest::electrum::script_hash;
use rexe_regtest::{RegtestConfig, RegtestNode};
use serde_json::{json, Value};

mod common;
use common::*;

const ADDRESSES: u8 = 100;
const HEIGHT: u32 = 2_600;
const FLOODERS: usize = 4;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentiles(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (
        ms(v[v.len() / 2]),
        ms(v[v.len() * 99 / 100]),
        ms(*v.last().unwrap()),
    )
}

/// The flooding clients stand in for wallets on other machines: at the lowest CPU priority
/// (`BENCH_CLIENT_NICE`, default 19) they do not take the server's cores as local
/// processes would; the server's own threads keep the default priority.
/// With `BENCH_CLIENT_PRIORITY=background` they run in the background class instead, as
/// the server's Electrum workers do by default (then they and the workers share what the
/// RPC leaves).
fn lower_priority(nice: i32) {
    if std::env::var("BENCH_CLIENT_PRIORITY").as_deref() == Ok("background") {
        rexe_rpc::workers::to_background().unwrap();
        return;
    }
    // Changes this thread's own nice value (Linux keeps one per thread).
    #[cfg(target_os = "linux")]
    let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), nice);
}

fn rpc_latencies(node: &RegtestNode, n: usize) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            ok(node, "getblockcount", json!([]));
            t.elapsed()
        })
        .collect()
}

fn batch(method: &str, params: impl Iterator<Item = Value>) -> String {
    let reqs: Vec<Value> = params
        .enumerate()
        .map(|(i, p)| json!({"id": i, "method": method, "params": p}))
        .collect();
    Value::Array(reqs).to_string() + "\n"
}

#[test]
#[ignore]
fn rpc_latency_under_an_electrum_flood() {
    let samples = env("BENCH_SAMPLES", 500);
    let subs = env("BENCH_SUBS", 20_000) as u32;
    let nblocks = env("BENCH_BLOCKS", 10);
    let mut services = rexe_regtest::Services::default();
    services.electrum_limits.workers =
        env("BENCH_WORKERS", services.electrum_limits.workers).max(1);
    if let Ok(p) = std::env::var("BENCH_PRIORITY") {
        services.electrum_limits.priority = p.parse().unwrap();
    }
    println!(
        "{} electrum workers, priority {}",
        services.electrum_limits.workers, services.electrum_limits.priority
    );
    let node = RegtestNode::start_with(RegtestConfig::default(), services).unwrap();
    let keys: Vec<Key> = (1..=ADDRESSES).map(key).collect();
    let t = Instant::now();
    let per = HEIGHT / u32::from(ADDRESSES);
    for k in &keys {
        ok(&node, "generatetoaddress", json!([per, k.addr.to_string()]));
    }
    println!(
        "setup: {} blocks to {ADDRESSES} addresses in {:.1} s",
        per * u32::from(ADDRESSES),
        t.elapsed().as_secs_f64()
    );
    let shs: Vec<String> = keys
        .iter()
        .map(|k| script_hash(&k.addr.script_pubkey()))
        .collect();

    let (p50, p99, max) = percentiles(rpc_latencies(&node, samples));
    println!("idle:  getblockcount p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms");

    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let flooders: Vec<_> = (0..FLOODERS)
        .map(|_| {
            let (stop, served) = (stop.clone(), served.clone());
            let line = batch(
                "blockchain.scripthash.get_balance",
                shs.iter().map(|s| json!([s])),
            );
            let addr = node.electrum_addr;
            let client_nice = env("BENCH_CLIENT_NICE", 19) as i32;
            std::thread::spawn(move || {
                lower_priority(client_nice);
                let s = TcpStream::connect(addr).unwrap();
                let mut rd = BufReader::new(s.try_clone().unwrap());
                let mut wr = s;
                let mut l = String::new();
                while !stop.load(Ordering::Relaxed) {
                    wr.write_all(line.as_bytes()).unwrap();
                    l.clear();
                    rd.read_line(&mut l).unwrap();
                    assert!(l.starts_with('['), "{l}");
                    served.fetch_add(100, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let before = served.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(1));
    println!(
        "flood alone: {} get_balance/s served",
        served.load(Ordering::Relaxed) - before
    );
    let t = Instant::now();
    let before = served.load(Ordering::Relaxed);
    let (p50, p99, max) = percentiles(rpc_latencies(&node, samples));
    let rate = (served.load(Ordering::Relaxed) - before) as f64 / t.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        f.join().unwrap();
    }
    println!(
        "flood ({FLOODERS} clients, lines of 100 get_balance, {rate:.0} get_balance/s served): \
         getblockcount p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms"
    );

    // 20,000 subscriptions on one connection, then blocks.
    let s = TcpStream::connect(node.electrum_addr).unwrap();
    let mut rd = BufReader::new(s.try_clone().unwrap());
    let mut wr = s;
    let mut l = String::new();
    let t = Instant::now();
    for chunk in 0..subs.div_ceil(100) {
        let line = batch(
            "blockchain.scripthash.subscribe",
            (0..100u32).map(|i| {
                let mut b = [0u8; 32];
                b[..4].copy_from_slice(&(chunk * 100 + i).to_le_bytes());
                json!([b.to_lower_hex_string()])
            }),
        );
        wr.write_all(line.as_bytes()).unwrap();
        l.clear();
        rd.read_line(&mut l).unwrap();
        assert!(l.starts_with('['), "{l}");
    }
    println!(
        "{subs} subscriptions made in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let mut blocks = Vec::new();
    let mut rpcs = Vec::new();
    for _ in 0..nblocks {
        let t = Instant::now();
        ok(
            &node,
            "generatetoaddress",
            json!([1, keys[0].addr.to_string()]),
        );
        blocks.push(t.elapsed());
        // The notification pass runs after the block: the RPC right after it waits on it
        // if it holds the lock.
        rpcs.extend(rpc_latencies(&node, 20));
    }
    let (b50, _, bmax) = percentiles(blocks);
    let (p50, p99, max) = percentiles(rpcs);
    println!(
        "with {subs} subscriptions: generatetoaddress 1 p50 {b50:.2} ms, max {bmax:.2} ms; \
         getblockcount after each block p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms"
    );
}
