//! `rexe bench`: throughput measurements. Every run prints one line of text or, with
//! `--json`, one JSON object with at least `name`, the parameters, `ops_per_sec` and
//! `peak_rss_bytes`, so scripts can collect figures.

mod arrays;
mod bootstrap;
mod cluster;
mod contract;
mod e2e;
mod floor;
mod peer;
mod rounds;
mod rss;
mod state_sync;
mod stratum;
mod tap;

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use bitcoin::hex::FromHex;
use clap::{Args, Subcommand};
use rexe_chain::params::{bench_address, GenesisAlloc};
use rexe_chain::seal::TestSealer;
use rexe_chain::{
    shard_of, Address, Amount, Chain, ChainConfig, ChainParams, Network, Payload, SignedTx, Signer,
    Tx,
};
use serde_json::json;

/// `rexe bench`'s arguments.
#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    which: Which,
    /// Print one JSON object per run.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum Which {
    /// Pre-verified native transfers executed and committed (block log durable at every
    /// block, shard state flushed at checkpoints).
    Transfers(TransfersArgs),
    /// BIP340 signature verifications per second.
    Sigverify(SigArgs),
    /// The peg's consensus work on one core: Bitcoin header submissions (PoW, bits, MTP,
    /// chainwork, best-chain update) and SPV claim verifications (Merkle proof, commitment,
    /// payments) applied to the peg state.
    Peg {
        /// Headers submitted (batches of 2,000).
        #[arg(long, default_value_t = 200_000)]
        headers: usize,
        /// Claims verified and applied.
        #[arg(long, default_value_t = 50_000)]
        claims: usize,
    },
    /// AuxPoW verifications per second on one core (real Namecoin block 37174), and
    /// aggregated AuxPoW builds per second for a 3-chain aux tree.
    Auxpow {
        /// Verifications.
        #[arg(long, default_value_t = 200_000)]
        count: u64,
    },
    /// Stratum v1 shares per second and reply latency with many miner connections.
    Stratum(stratum::StratumArgs),
    /// Latency the Stratum share tap adds (straight to the pool vs through the tap) and
    /// its CPU, with many miner connections.
    Tap(tap::TapArgs),
    /// Signed transfers end to end: a separate client process submits them over the
    /// JSON-RPC in batches, the node verifies, admits, builds, seals and commits them.
    E2e(e2e::E2eArgs),
    /// The client process of `bench e2e` (started by it).
    #[command(hide = true)]
    E2eClient(e2e::E2eClientArgs),
    /// Contracts: token `transfer` calls executed and committed, the ERC20 script on
    /// several shard counts, and compile time of the examples.
    Contract(crate::contract::ContractBenchArgs),
    /// Token transfers by an EVM peer (`revm`, with the `revm-peer` feature) and by rexe's
    /// contract VM in memory, by a rexe chain durably and as the plain SQLite floor, on the
    /// same workload, with the ratios.
    Peer(peer::PeerArgs),
    /// Scale-out: signed transfers validated and committed by one single-threaded full node
    /// against two single-threaded partial nodes (two shards each) side by side, and relay
    /// proofs verified per second.
    Cluster(cluster::ClusterArgs),
    /// Scale-out: resident memory of a node holding every shard against nodes holding half
    /// of them each, at many accounts (each node its own process).
    ClusterRss(rss::RssArgs),
    /// One node of `bench cluster-rss` (started by it).
    #[command(hide = true)]
    ClusterRssNode(rss::RssNodeArgs),
}

#[derive(Args)]
struct TransfersArgs {
    /// Accounts in the genesis state (comma-separated list runs each).
    #[arg(long, value_delimiter = ',', default_value = "1000000")]
    accounts: Vec<u64>,
    /// Executor threads (comma-separated list runs each).
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    threads: Vec<usize>,
    /// log2 of the shard count.
    #[arg(long, default_value_t = 2)]
    shard_order: u8,
    /// Transfers per block.
    #[arg(long, default_value_t = 40_000)]
    block_txs: usize,
    /// Blocks measured.
    #[arg(long, default_value_t = 25)]
    blocks: u64,
    /// Flush shard state every this many blocks.
    #[arg(long, default_value_t = 64)]
    flush_every: u64,
    /// Where to put the chain (default: a temporary directory, deleted after): each run's
    /// in `bench-<accounts>-<threads>` under it, which the next run of the same
    /// configuration (the next round) replaces.
    #[arg(long)]
    datadir: Option<std::path::PathBuf>,
    /// Also run the plain SQLite floor on the same workload (one UPDATE per dirty account
    /// per block, integer and 32-byte keys) and report the ratios to it.
    #[arg(long)]
    floor: bool,
    /// Runs every configuration once per round, this many rounds one after another, and
    /// reports the 1→2 thread speedup and the throughput relative to the fewest accounts
    /// per round and their medians (ratios a drifting host moves least).
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Memory-map up to this many MiB of each shard file for reads (0: off, the node's
    /// default); the mapped pages touched count in the peak RSS.
    #[arg(long, default_value_t = 0)]
    mmap_mib: u64,
}

#[derive(Args)]
struct SigArgs {
    /// Signatures to verify.
    #[arg(long, default_value_t = 20_000)]
    count: usize,
    /// Threads (comma-separated list runs each).
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    threads: Vec<usize>,
}

/// Runs one `rexe bench` measurement and prints its figures.
pub fn run(args: BenchArgs) -> Result<()> {
    match args.which {
        Which::Transfers(t) => {
            let runs: Vec<(u64, usize)> = t
                .accounts
                .iter()
                .flat_map(|&a| t.threads.iter().map(move |&th| (a, th)))
                .collect();
            let rounds = t.rounds.max(1);
            if runs.len() == 1 && rounds == 1 {
                let r = transfers(&t, runs[0].0, runs[0].1)?;
                print(&r, args.json);
            } else {
                // One process per run, so each peak RSS is that run's own.
                let mut figures = Vec::new();
                for round in 0..rounds {
                    if rounds > 1 {
                        eprintln!("round {} of {rounds}", round + 1);
                    }
                    for &(accounts, threads) in &runs {
                        let r = transfers_child(&t, accounts, threads)?;
                        figures.push(rounds::Run {
                            round,
                            accounts,
                            threads,
                            ops_per_sec: r["ops_per_sec"].as_f64().unwrap_or(0.0),
                        });
                        print(&r, args.json);
                    }
                }
                let s = rounds::summary(&figures, rounds, &t.accounts, &t.threads);
                if args.json {
                    println!("{s}");
                } else {
                    println!("{}", rounds::describe(&s));
                }
            }
        }
        Which::Auxpow { count } => print(&auxpow(count)?, args.json),
        Which::Peg { headers, claims } => {
            let h = rexe_bridge::bench::bench_headers(headers);
            anyhow::ensure!(h > 0.0, "the header benchmark's chain refused a header");
            print(
                &json!({"name": "peg_headers", "headers": headers, "ops_per_sec": h,
                        "peak_rss_bytes": peak_rss_bytes()}),
                args.json,
            );
            let c = rexe_bridge::bench::bench_claims(claims);
            anyhow::ensure!(c > 0.0, "the claim benchmark's peg refused a claim");
            print(
                &json!({"name": "peg_claims", "claims": claims, "ops_per_sec": c,
                        "peak_rss_bytes": peak_rss_bytes()}),
                args.json,
            );
        }
        Which::Stratum(a) => {
            for r in stratum::run(&a)? {
                print(&r, args.json);
            }
        }
        Which::Tap(a) => {
            for r in tap::run(&a)? {
                print(&r, args.json);
            }
        }
        Which::E2e(a) => print(&e2e::run(&a)?, args.json),
        Which::E2eClient(a) => e2e::client(&a)?,
        Which::Contract(c) => {
            for r in crate::contract::run(&c)? {
                print(&r, args.json);
            }
        }
        Which::Cluster(c) => print(&cluster::run(&c)?, args.json),
        Which::Peer(p) => print(&peer::run(&p)?, args.json),
        Which::ClusterRss(c) => print(&rss::run(&c)?, args.json),
        Which::ClusterRssNode(c) => rss::node(&c)?,
        Which::Sigverify(s) => {
            for &threads in &s.threads {
                let r = sigverify(s.count, threads);
                print(&r, args.json);
            }
        }
    }
    Ok(())
}

fn print(v: &serde_json::Value, json: bool) {
    if json {
        println!("{v}");
    } else {
        let ops = v["ops_per_sec"].as_f64().unwrap_or(0.0);
        let rss = v["peak_rss_bytes"].as_u64().unwrap_or(0) as f64 / (1 << 20) as f64;
        println!(
            "{}: {:.0} ops/s, peak RSS {:.0} MiB ({v})",
            v["name"].as_str().unwrap_or("?"),
            ops,
            rss
        );
    }
}

/// A regtest transaction from benchmark account `from`, paying `fee` per gas (fee cap and
/// tip) and never expiring, with an empty signature: the benchmarks build their blocks with
/// `template_with(…, trusted: true)`, which does not check signatures (see `sigverify`).
pub(crate) fn unsigned_tx(
    from: u64,
    nonce: u64,
    fee: rexe_chain::fee::GasPrice,
    gas_limit: u64,
    payload: Payload,
) -> SignedTx {
    SignedTx::from_parts(
        Tx {
            network: Network::Regtest,
            from: bench_address(from),
            nonce,
            max_fee: fee,
            max_tip: fee,
            gas_limit,
            expiry_height: u64::MAX,
            payload,
        },
        [0u8; 64],
    )
}

/// Peak resident set size of this process (Linux `VmHWM`), in bytes.
pub fn peak_rss_bytes() -> u64 {
    proc_status_bytes("VmHWM:")
}

/// CPU time used so far, in seconds: `(this process, its waited-for children)`, from
/// `/proc/self/stat` (Linux's user-visible clock tick is 100 Hz on every ABI); zeros where
/// absent.
pub(crate) fn cpu_secs() -> (f64, f64) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return (0.0, 0.0);
    };
    // Fields after the command name (which may hold spaces), from field 3 on.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    let tick = |i: usize| f.get(i - 3).copied().unwrap_or(0.0) / 100.0;
    (tick(14) + tick(15), tick(16) + tick(17))
}

/// A size field of `/proc/self/status` (`VmHWM:`, `VmRSS:`, …) in bytes; 0 where absent.
pub(crate) fn proc_status_bytes(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kib| kib * 1024)
        .unwrap_or(0)
}

/// A small deterministic generator (benchmarks need reproducible workloads, not secrets).
pub(crate) struct XorShift(pub(crate) u64);
impl XorShift {
    /// The workload generator for `accounts` accounts: `bench transfers`, the token run of
    /// `bench contract` and the SQLite floor draw the same sequence from it.
    pub(crate) fn transfers(accounts: u64) -> Self {
        XorShift(0x2545_f491_4f6c_dd1d ^ accounts)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// One `bench transfers` run in a process of its own (its peak RSS is its own): its JSON.
fn transfers_child(t: &TransfersArgs, accounts: u64, threads: usize) -> Result<serde_json::Value> {
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.args(["bench", "transfers", "--json"])
        .args(["--accounts", &accounts.to_string()])
        .args(["--threads", &threads.to_string()])
        .args(["--shard-order", &t.shard_order.to_string()])
        .args(["--block-txs", &t.block_txs.to_string()])
        .args(["--blocks", &t.blocks.to_string()])
        .args(["--flush-every", &t.flush_every.to_string()])
        .args(["--mmap-mib", &t.mmap_mib.to_string()])
        .stderr(std::process::Stdio::inherit());
    if let Some(d) = &t.datadir {
        cmd.arg("--datadir").arg(d);
    }
    if t.floor {
        cmd.arg("--floor");
    }
    let out = cmd.output().context("running a benchmark child")?;
    anyhow::ensure!(out.status.success(), "benchmark run failed: {}", out.status);
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .filter(|v| v["name"] == "transfers")
        })
        .with_context(|| format!("no figures from a benchmark child: {text}"))
}

fn transfers(t: &TransfersArgs, accounts: u64, threads: usize) -> Result<serde_json::Value> {
    let tmp;
    let dir = match &t.datadir {
        Some(d) => {
            // A chain left by an earlier run (or round) would start at its tip, where the
            // generated transfers' nonces no longer fit.
            let dir = d.join(format!("bench-{accounts}-{threads}"));
            if dir.exists() {
                eprintln!("replacing the earlier run's chain in {}", dir.display());
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("removing {}", dir.display()))?;
            }
            dir
        }
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let mut params = ChainParams::regtest();
    params.shard_order = rexe_chain::ShardOrder::new(t.shard_order)?;
    params.genesis_alloc = GenesisAlloc::Synthetic {
        count: accounts,
        amount: Amount::ONE_BTC,
    };
    params.max_txs_per_shard = t.block_txs;
    params.undo_depth = t.flush_every.max(16) * 2;
    let config = ChainConfig {
        threads,
        flush_every_blocks: t.flush_every,
        flush_dirty_limit: 4_000_000,
        mmap_bytes: t.mmap_mib << 20,
        // The node's default: what a user running `rexe node` gets.
        txindex: false,
        ..ChainConfig::default()
    };
    let order = params.shard_order;
    let n_shards = order.shard_count();
    eprintln!("creating genesis with {accounts} accounts on {n_shards} shards...");
    let t0 = Instant::now();
    let mut chain = Chain::open(&dir, params.clone(), config, Arc::new(TestSealer))
        .context("opening bench chain")?;
    eprintln!("genesis ready in {:.1}s", t0.elapsed().as_secs_f64());
    // Account shards and nonces, so the workload generator need not touch the chain.
    let shard_ix: Vec<u8> = (0..accounts)
        .map(|i| shard_of(&bench_address(i), order).0 as u8)
        .collect();
    // 32-bit nonces: the generator's own tables count in the peak RSS reported (at 10M
    // accounts 64-bit nonces took 80 MB of it); no run sends 2^32 transfers from one account.
    let mut nonces = vec![0u32; accounts as usize];
    let miner: Address = Signer::from_seed(b"bench-miner").address();
    // Peak RSS is reported for the measured phase: reset the high-water mark after setup
    // (Linux: writing 5 to clear_refs resets VmHWM).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let mut rng = XorShift::transfers(accounts);
    let mut exec_secs = 0.0;
    let mut template_secs = 0.0;
    let mut submit_secs = 0.0;
    let mut committed = 0u64;
    for b in 0..t.blocks {
        let mut txs: Vec<Vec<SignedTx>> =
            vec![Vec::with_capacity(t.block_txs / n_shards + 1); n_shards];
        for _ in 0..t.block_txs {
            let from = rng.next() % accounts;
            let to = rng.next() % accounts;
            let tx = Tx {
                network: Network::Regtest,
                from: bench_address(from),
                nonce: u64::from(nonces[from as usize]),
                max_fee: rexe_chain::fee::GasPrice::from_msat(1),
                max_tip: rexe_chain::fee::GasPrice::from_msat(1),
                gas_limit: rexe_chain::tx::TRANSFER_GAS,
                expiry_height: u64::MAX,
                payload: Payload::Transfer {
                    to: bench_address(to),
                    amount: Amount::from_sat(1),
                },
            };
            nonces[from as usize] += 1;
            // Pre-verified: the signature is not checked in this benchmark (see sigverify).
            txs[shard_ix[from as usize] as usize].push(SignedTx::from_parts(tx, [0u8; 64]));
        }
        let now = params.genesis_time + b + 1;
        let start = Instant::now();
        let mut block = chain.template_with(miner, now, txs, true)?;
        let built = Instant::now();
        template_secs += (built - start).as_secs_f64();
        block.seal = TestSealer::seal(&block.header);
        chain.submit(block, now)?;
        submit_secs += built.elapsed().as_secs_f64();
        exec_secs += start.elapsed().as_secs_f64();
        committed += t.block_txs as u64;
    }
    let start = Instant::now();
    chain.flush()?;
    let flush_secs = start.elapsed().as_secs_f64();
    exec_secs += flush_secs;
    let caches = chain.cache_stats();
    let (hits, misses) = caches.iter().fold((0u64, 0u64), |(h, m), c| {
        (
            h + c.account_hits + c.state_hits,
            m + c.account_misses + c.state_misses,
        )
    });
    let supply_ok = chain.audit_supply()?.holds();
    anyhow::ensure!(supply_ok, "supply invariant broken after the benchmark");
    let peak_rss = peak_rss_bytes();
    let ops = committed as f64 / exec_secs;
    drop(chain);
    let mut out = json!({
        "name": "transfers",
        "accounts": accounts,
        "shards": n_shards,
        "threads": threads,
        "blocks": t.blocks,
        "block_txs": t.block_txs,
        "flush_every": t.flush_every,
        "mmap_mib": t.mmap_mib,
        "transfers": committed,
        "seconds": exec_secs,
        "execute_secs": template_secs,
        "submit_secs": submit_secs,
        "final_flush_secs": flush_secs,
        "ops_per_sec": ops,
        "cache_hit_rate": hits as f64 / (hits + misses).max(1) as f64,
        "cache_misses": misses,
        "peak_rss_bytes": peak_rss,
    });
    if t.floor {
        eprintln!("running the SQLite floor on the same workload...");
        for (keys, name) in [
            (floor::Keys::Integer, "floor_int"),
            (floor::Keys::Bytes32, "floor_key32"),
        ] {
            let f = floor::run(&dir, keys, accounts, t.block_txs, t.blocks)?;
            out[format!("{name}_ops_per_sec")] = json!(f);
            out[format!("ratio_to_{name}")] = json!(ops / f);
        }
    }
    Ok(out)
}

fn auxpow(count: u64) -> Result<serde_json::Value> {
    use bitcoin::hashes::{sha256d, Hash};
    let bytes = Vec::<u8>::from_hex(
        include_str!("../../miner/tests/data/namecoin-mainnet-37174.header-auxpow.hex").trim(),
    )?;
    let header: bitcoin::block::Header = bitcoin::consensus::deserialize(&bytes[..80])?;
    let aux_hash = sha256d::Hash::hash(&bytes[..80]).to_byte_array();
    let start = Instant::now();
    let mut ok = 0u64;
    for _ in 0..count {
        // Decode + every rule + the proof-of-work check, as a node does per seal.
        let aux = rexe_miner::AuxPow::decode(std::hint::black_box(&bytes[80..]))?;
        if aux.check(aux_hash, rexe_miner::ChainId::NAMECOIN).is_ok()
            && aux.check_pow(header.target()).is_ok()
        {
            ok += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    anyhow::ensure!(ok == count, "the vector must verify");
    let builds = u32::try_from(count / 10).unwrap_or(u32::MAX).max(1);
    let aggregate = rexe_miner::aggregate::bench_build(builds);
    anyhow::ensure!(
        aggregate > 0.0,
        "an aggregated AuxPoW failed the Namecoin rules"
    );
    Ok(json!({
        "name": "auxpow",
        "count": count,
        "threads": 1,
        "ops_per_sec": count as f64 / secs,
        "aggregate_3chain_builds": builds,
        "aggregate_3chain_builds_per_sec": aggregate,
        "peak_rss_bytes": peak_rss_bytes(),
    }))
}

pub(crate) fn sigverify(count: usize, threads: usize) -> serde_json::Value {
    let signers: Vec<Signer> = (0..64).map(|i| Signer::from_seed(&[i as u8])).collect();
    let txs: Vec<SignedTx> = (0..count)
        .map(|i| {
            let s = &signers[i % signers.len()];
            Tx {
                network: Network::Regtest,
                from: s.address(),
                nonce: i as u64,
                max_fee: rexe_chain::fee::GasPrice::from_msat(1),
                max_tip: rexe_chain::fee::GasPrice::from_msat(1),
                gas_limit: rexe_chain::tx::TRANSFER_GAS,
                expiry_height: 10,
                payload: Payload::Transfer {
                    to: signers[(i + 1) % signers.len()].address(),
                    amount: Amount::from_sat(1),
                },
            }
            .sign(s)
        })
        .collect();
    // Raw: libsecp256k1 parses the key (lifting x to a point) and verifies, every time.
    let raw = |t: &SignedTx| {
        bitcoin::secp256k1::XOnlyPublicKey::from_slice(&t.tx.from.0)
            .is_ok_and(|key| rexe_chain::address::verify_with_key(&key, &t.txid().0, &t.sig))
    };
    let raw_per_sec = verify_rate(&txs, threads, one_by_one(raw));
    // As the node verifies: keys come from the parsed-key cache (`Address::to_xonly`).
    for t in &txs {
        let _ = t.tx.from.to_xonly();
    }
    let cached_per_sec = verify_rate(&txs, threads, one_by_one(SignedTx::verify_signature));
    // As the node verifies a `sendrawtransaction` batch (`SignedTx::verified_all`): BIP340
    // batches of `SIG_BATCH`, keys from the point cache (warmed first), each thread its own
    // batches.
    let batch = |share: &[SignedTx]| {
        share
            .chunks(SIG_BATCH)
            .map(|b| {
                let checks: Vec<_> = b.iter().map(SignedTx::sig_check).collect();
                rexe_chain::address::batch::verify_each(&checks)
                    .into_iter()
                    .filter(|&ok| ok)
                    .count()
            })
            .sum()
    };
    batch(&txs[..txs.len().min(SIG_BATCH)]);
    let batch_per_sec = verify_rate(&txs, threads, batch);
    json!({
        "name": "sigverify",
        "count": count,
        "threads": threads,
        "ops_per_sec": raw_per_sec,
        "cached_key_ops_per_sec": cached_per_sec,
        "batch_size": SIG_BATCH,
        "batch_ops_per_sec": batch_per_sec,
        "peak_rss_bytes": peak_rss_bytes(),
    })
}

/// Signatures per batch in `sigverify`'s batch rate: `bench e2e`'s default
/// `sendrawtransaction` batch.
const SIG_BATCH: usize = 500;

/// A share's count of signatures that `verify` accepts, one at a time.
fn one_by_one(verify: impl Fn(&SignedTx) -> bool + Sync) -> impl Fn(&[SignedTx]) -> usize + Sync {
    move |share| share.iter().filter(|t| verify(t)).count()
}

/// Signatures per second over `txs` split in `threads` shares, each on its own thread;
/// `verify` checks a share and counts the signatures that verify.
fn verify_rate(
    txs: &[SignedTx],
    threads: usize,
    verify: impl Fn(&[SignedTx]) -> usize + Sync,
) -> f64 {
    let verify = &verify;
    let start = Instant::now();
    let chunk = txs.len().div_ceil(threads.max(1));
    let ok: usize = std::thread::scope(|sc| {
        let handles: Vec<_> = txs
            .chunks(chunk.max(1))
            .map(|c| sc.spawn(move || verify(c)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(ok, txs.len(), "every signature verifies");
    txs.len() as f64 / secs
}
