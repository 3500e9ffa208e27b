//! `rexe bench tap`: the latency the Stratum share tap adds, and its CPU, with many miner
//! connections on loopback.
//!
//! The pool is `rexe bench stratum`'s stack (the Stratum server on the embedded regtest node
//! and an in-process L2 node, hard targets, a pool difficulty at which every hash is a
//! share). The same open-loop load (each connection submits at `rate / connections` per
//! second) runs first straight at the pool, then through the tap, on fresh connections; the
//! difference of the reply latencies is what the tap adds (two more loopback hops and its
//! forwarding). The tap harvests for the L2 node as `rexe miner tap` does: it has the L2
//! target, so it rebuilds and hashes every share (none meets the hard target, so none is
//! submitted). Its CPU is the time of its own threads (runtime, followers, harvest and L2
//! poller, all named `rexe-tap…`) over the measured seconds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use rexe_miner::auxpow::ChainId;
use rexe_miner::proxy::Harvester;
use rexe_miner::tap::{Tap, TapConfig};
use rexe_rpc::client::RpcClient;
use serde_json::{json, Value};

use super::stratum::{connect_all, drive, load, percentile, start, Tally};

#[derive(Args)]
pub struct TapArgs {
    /// Miner connections (each one pool connection more through the tap).
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Offered shares per second over all connections (comma-separated list runs each).
    #[arg(long, value_delimiter = ',', default_value = "10000")]
    rate: Vec<u64>,
    /// Seconds measured per run (after one second of warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Worker threads of the pool's runtime.
    #[arg(long, default_value_t = 2)]
    server_threads: usize,
    /// Worker threads of the tap's runtime.
    #[arg(long, default_value_t = 2)]
    tap_threads: usize,
    /// Where the tap follows shares: `low` (its default: a thread of their own at nice +10),
    /// `normal` (on the tap's runtime threads) or `background` (a thread of their own in
    /// the background scheduling class).
    #[arg(long, default_value_t = rexe_rpc::Priority::Low)]
    follow_priority: rexe_rpc::Priority,
    /// Alternate the direct and the tapped load in windows of this many milliseconds, so
    /// that both see the same machine; 0 runs them one after the other.
    #[arg(long, default_value_t = 250)]
    interleave_ms: u64,
}

/// The same open load straight at the pool (`direct`) and through the tap (`tapped`), on
/// two sets of `connections` fresh miners that take turns every `window`: only one set
/// submits at a time, and each is measured for `seconds` in all (after a second of warm-up
/// each). Load from other jobs drifts over seconds; alternating puts both sets under the
/// same drift. What each set saw, and its measured seconds.
fn interleaved(
    client: &tokio::runtime::Runtime,
    (direct, tapped): (std::net::SocketAddr, std::net::SocketAddr),
    connections: usize,
    rate: u64,
    seconds: u64,
    window: Duration,
) -> Result<[(Tally, f64); 2]> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let sets = [
        connect_all(client, direct, connections)?,
        connect_all(client, tapped, connections)?,
    ];
    let interval = (rate > 0).then(|| Duration::from_secs_f64(connections as f64 / rate as f64));
    let stop = Arc::new(AtomicBool::new(false));
    let record = [(); 2].map(|_| Arc::new(AtomicBool::new(false)));
    let active = [(); 2].map(|_| Arc::new(AtomicBool::new(false)));
    client.block_on(async {
        let mut tasks: [Vec<_>; 2] = [Vec::new(), Vec::new()];
        for (g, miners) in sets.into_iter().enumerate() {
            for (i, m) in miners.into_iter().enumerate() {
                let offset = interval.map_or(Duration::ZERO, |iv| {
                    iv.mul_f64(i as f64 / connections as f64)
                });
                tasks[g].push(tokio::spawn(drive(
                    m,
                    interval,
                    offset,
                    stop.clone(),
                    record[g].clone(),
                    Some(active[g].clone()),
                )));
            }
        }
        let turn = |g: usize| {
            active[g].store(true, Ordering::Relaxed);
            active[1 - g].store(false, Ordering::Relaxed);
        };
        for g in 0..2 {
            turn(g);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let target = Duration::from_secs(seconds);
        let mut measured = [Duration::ZERO; 2];
        let mut g = 0;
        while measured[0] < target || measured[1] < target {
            if measured[g] < target {
                turn(g);
                record[g].store(true, Ordering::Relaxed);
                let t0 = Instant::now();
                tokio::time::sleep(window.min(target - measured[g])).await;
                record[g].store(false, Ordering::Relaxed);
                measured[g] += t0.elapsed();
            }
            g = 1 - g;
        }
        stop.store(true, Ordering::Relaxed);
        let mut out = [(); 2].map(|_| (Tally::default(), 0.0));
        for (g, set) in tasks.into_iter().enumerate() {
            for t in set {
                let t = t.await??;
                out[g].0.accepted += t.accepted;
                out[g].0.errors += t.errors;
                out[g].0.latencies.extend(t.latencies);
            }
            out[g].0.latencies.sort_unstable();
            out[g].1 = measured[g].as_secs_f64();
        }
        anyhow::Ok(out)
    })
}

/// CPU seconds (user + system) of this process's threads whose name starts with `prefix`.
fn thread_cpu_secs(prefix: &str) -> f64 {
    let ticks = 100.0; // USER_HZ on Linux
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let mut total = 0u64;
    for t in dir.flatten() {
        let p = t.path();
        let name = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
        if !name.trim_end().starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(p.join("stat")).unwrap_or_default();
        // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        total += get(11) + get(12);
    }
    total as f64 / ticks
}

/// Runs the benchmark for each rate; one JSON object per rate.
pub fn run(a: &TapArgs) -> Result<Vec<Value>> {
    let stack = start(a.server_threads)?;
    let payout = rexe_chain::params::bench_address(0).encode(rexe_chain::Network::Regtest);
    let harvester = Arc::new(Harvester::new(
        RpcClient::new(stack.l2.addr.to_string(), "bench:bench")
            .with_timeout(Duration::from_secs(5)),
        payout,
        ChainId::REXE,
    ));
    let mut config = TapConfig::new(stack.addr.to_string());
    config.limits.max_connections = 0;
    config.limits.max_per_ip = 0;
    config.follow_priority = a.follow_priority;
    let tap = Tap::new(config, Some(harvester));
    anyhow::ensure!(
        tap.poll_l2(),
        "the tap got no L2 work from the in-process node"
    );
    let tap_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.tap_threads.max(1))
        .enable_all()
        .thread_name("rexe-tap")
        .build()?;
    let (tap_addr, _task) = tap_rt
        .block_on(rexe_miner::tap::serve(tap.clone(), "127.0.0.1:0".parse()?))
        .context("starting the tap")?;
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut out = Vec::new();
    for &rate in &a.rate {
        let shares_before = tap.stats().shares;
        // The tap's CPU (its threads' time) over the tapped load's wall time.
        let ((direct, direct_secs), (tapped, secs), cpu, wall) = if a.interleave_ms > 0 {
            let (cpu0, t0) = (thread_cpu_secs("rexe-tap"), Instant::now());
            let [d, t] = interleaved(
                &client,
                (stack.addr, tap_addr),
                a.connections,
                rate,
                a.seconds,
                Duration::from_millis(a.interleave_ms),
            )?;
            // The tap idles (bar its pollers) during the direct set's turns: half the run.
            let wall = t0.elapsed().as_secs_f64() / 2.0;
            (d, t, thread_cpu_secs("rexe-tap") - cpu0, wall)
        } else {
            let d = load(&client, stack.addr, a.connections, rate, a.seconds)?;
            let (cpu0, t0) = (thread_cpu_secs("rexe-tap"), Instant::now());
            let t = load(&client, tap_addr, a.connections, rate, a.seconds)?;
            let wall = t0.elapsed().as_secs_f64();
            (d, t, thread_cpu_secs("rexe-tap") - cpu0, wall)
        };
        anyhow::ensure!(direct.errors == 0, "{} shares were refused", direct.errors);
        anyhow::ensure!(
            tapped.errors == 0,
            "{} shares were refused through the tap",
            tapped.errors
        );
        let s = tap.stats();
        let skipped: u64 = s.skipped.values().sum();
        let p = |t: &super::stratum::Tally, q| percentile(&t.latencies, q);
        out.push(json!({
            "name": "tap",
            "connections": a.connections,
            "offered_per_sec": rate,
            "seconds": secs,
            "server_threads": a.server_threads,
            "tap_threads": a.tap_threads,
            "follow_priority": a.follow_priority.to_string(),
            "interleave_ms": a.interleave_ms,
            "ops_per_sec": tapped.accepted as f64 / secs,
            "direct_ops_per_sec": direct.accepted as f64 / direct_secs,
            "direct_latency_ms_p50": p(&direct, 0.50),
            "direct_latency_ms_p99": p(&direct, 0.99),
            "tap_latency_ms_p50": p(&tapped, 0.50),
            "tap_latency_ms_p99": p(&tapped, 0.99),
            "tap_latency_ms_max": p(&tapped, 1.0),
            "added_ms_p50": p(&tapped, 0.50) - p(&direct, 0.50),
            "added_ms_p99": p(&tapped, 0.99) - p(&direct, 0.99),
            // Over the whole tapped run (connect, warm-up, measure, drain).
            "tap_cpu_percent_of_one_core": 100.0 * cpu / wall,
            "tap_shares_seen": s.shares - shares_before,
            "tap_shares_skipped_total": skipped,
            "tap_events_dropped": s.events_dropped,
            "tap_harvests_dropped": s.harvest_dropped,
            "peak_rss_bytes": super::peak_rss_bytes(),
        }));
    }
    Ok(out)
}
