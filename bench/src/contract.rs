//! `rexe bench contract`: contract throughput. Token `transfer` calls between random holders
//! of a large token (each call is a transaction's step on the sender's shard plus a deposit
//! relay on the recipient's shard), executed and committed like `rexe bench transfers`; the
//! ERC20 simulator script on several shard counts; and compile time of the examples.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use rexe_chain::contract::{abi, contract_address, Target};
use rexe_chain::lang::compile;
use rexe_chain::lang::num::Int;
use rexe_chain::lang::value::Value;
use rexe_chain::params::{bench_address, GenesisAlloc};
use rexe_chain::seal::TestSealer;
use rexe_chain::{shard_of, Amount, Chain, ChainConfig, ChainParams, Payload, SignedTx, Signer};
use serde_json::json;

use crate::{peak_rss_bytes, XorShift};

#[derive(Args)]
pub struct ContractBenchArgs {
    /// Which parts to run: `token`, `script`, `compile`, `arrays` (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "token,script,compile")]
    parts: Vec<String>,
    /// Elements each array grows to (`arrays` part).
    #[arg(long, default_value_t = 1_000_000)]
    array_pushes: u64,
    /// Elements pushed per call (`arrays` part).
    #[arg(long, default_value_t = 10)]
    array_pushes_per_call: u32,
    /// Calls per block (`arrays` part).
    #[arg(long, default_value_t = 1_000)]
    array_calls_per_block: usize,
    /// Token holders (each starts with a balance and an rxBTC account for fees).
    #[arg(long, default_value_t = 1_000_000)]
    holders: u64,
    /// Executor threads for the token run.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// log2 of the shard count for the token run.
    #[arg(long, default_value_t = 2)]
    shard_order: u8,
    /// Transfer calls per block.
    #[arg(long, default_value_t = 40_000)]
    block_txs: usize,
    /// Blocks measured.
    #[arg(long, default_value_t = 25)]
    blocks: u64,
    /// ERC20 script parameters `-addr:N -count:N`.
    #[arg(long, default_value_t = 100_000)]
    script_addr: u64,
    #[arg(long, default_value_t = 100_000)]
    script_count: u64,
    /// Shard orders for the script (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "0,1,2")]
    script_orders: Vec<u8>,
    /// Where to put the chains (default: temporary directories).
    #[arg(long)]
    datadir: Option<PathBuf>,
}

const TOKEN: &str = include_str!("../../examples/contracts/token.prd");

pub fn run(a: &ContractBenchArgs) -> Result<Vec<serde_json::Value>> {
    let mut out = Vec::new();
    for p in &a.parts {
        match p.as_str() {
            "token" => out.push(token(a)?),
            "script" => {
                for &order in &a.script_orders {
                    out.push(script(a, order)?);
                }
            }
            "compile" => out.extend(compile_times()?),
            "arrays" => out.extend(crate::arrays::run(
                a.array_pushes,
                a.array_pushes_per_call,
                a.array_calls_per_block,
            )?),
            other => anyhow::bail!("unknown part {other:?} (token, script, compile, arrays)"),
        }
    }
    Ok(out)
}

/// The token run alone (for `bench peer`).
pub(crate) fn token_transfers(
    holders: u64,
    threads: usize,
    shard_order: u8,
    block_txs: usize,
    blocks: u64,
    datadir: Option<PathBuf>,
) -> Result<serde_json::Value> {
    token(&ContractBenchArgs {
        parts: vec!["token".into()],
        array_pushes: 0,
        array_pushes_per_call: 0,
        array_calls_per_block: 0,
        holders,
        threads,
        shard_order,
        block_txs,
        blocks,
        script_addr: 0,
        script_count: 0,
        script_orders: Vec::new(),
        datadir,
    })
}

fn token(a: &ContractBenchArgs) -> Result<serde_json::Value> {
    let tmp;
    let dir = match &a.datadir {
        Some(d) => d.join(format!("contract-bench-{}-{}", a.holders, a.threads)),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let mut params = ChainParams::regtest();
    params.shard_order = rexe_chain::ShardOrder::new(a.shard_order)?;
    params.genesis_alloc = GenesisAlloc::Synthetic {
        count: a.holders,
        amount: Amount::ONE_BTC,
    };
    params.max_txs_per_shard = a.block_txs;
    params.undo_depth = 128;
    // The benchmark's blocks (10,000 calls of 100,000 gas per shard) are at or over what a
    // shard's block holds at the consensus limits (gas, and relays counted at their bound
    // of 13 per such call): raised, so that it measures execution, not the limits. The fee
    // market itself (base fee, burn, tips, refunds, escrowed relays) runs as on any chain.
    params.block_gas_per_shard = params.block_gas_per_shard.max(a.block_txs as u64 * 400_000);
    params.block_gas_global = params.block_gas_global.max(a.block_txs as u64 * 400_000);
    params.block_relays_per_shard = params.block_relays_per_shard.max(a.block_txs * 20);
    let config = ChainConfig {
        threads: a.threads,
        flush_every_blocks: 64,
        flush_dirty_limit: 4_000_000,
        txindex: false,
        contract_receipts: false,
        log_contracts: false,
        verify_state: false,
        ..ChainConfig::default()
    };
    let order = params.shard_order;
    let n_shards = order.shard_count();
    eprintln!(
        "creating genesis with {} holders on {n_shards} shards...",
        a.holders
    );
    let t0 = Instant::now();
    let mut chain = Chain::open(&dir, params.clone(), config, Arc::new(TestSealer))
        .context("opening bench chain")?;
    let miner = Signer::from_seed(b"bench-miner").address();
    let deployer = bench_address(0);
    let gas = 100_000u64;
    let fee = params.min_base_fee;
    let mut nonces = vec![0u64; a.holders as usize];
    let mut height = 0u64;
    let mut execute_secs = 0.0;
    let mut submit_secs = 0.0;
    let mut mine = |chain: &mut Chain, txs: Vec<Vec<SignedTx>>| -> Result<()> {
        height += 1;
        let now = params.genesis_time + height;
        let start = Instant::now();
        let mut b = chain.template_with(miner, now, txs, true)?;
        execute_secs += start.elapsed().as_secs_f64();
        b.seal = TestSealer::seal(&b.header);
        let start = Instant::now();
        chain.submit(b, now)?;
        submit_secs += start.elapsed().as_secs_f64();
        Ok(())
    };
    let mk = |from: u64, nonce: u64, payload: Payload| {
        // A deployment compiles the source: it needs more gas than a call.
        let gas = if matches!(payload, Payload::Deploy { .. }) {
            2_000_000
        } else {
            gas
        };
        crate::unsigned_tx(from, nonce, fee, gas, payload)
    };
    // Deploy, then give every holder a balance (outside blocks: setup, not measured).
    let code = compile(TOKEN).map_err(|e| anyhow::anyhow!("{e}"))?;
    let init = code
        .functions
        .iter()
        .find(|f| f.name == "on_deploy")
        .expect("token has on_deploy");
    let args =
        abi::encode_args(&code, init, &json!({"supply": "0"})).map_err(|e| anyhow::anyhow!(e))?;
    let token = contract_address(&deployer, 0);
    let mut txs = vec![Vec::new(); n_shards];
    txs[shard_of(&deployer, order).index()].push(mk(
        0,
        0,
        Payload::Deploy {
            source: TOKEN.into(),
            args,
        },
    ));
    nonces[0] = 1;
    mine(&mut chain, txs)?;
    mine(&mut chain, vec![Vec::new(); n_shards])?;
    anyhow::ensure!(
        chain.contracts().get(&token).is_some(),
        "token deployment failed"
    );
    for i in 0..a.holders {
        let v = vec![Value::Int(Int::from(1_000_000_000u64))];
        chain
            .force_contract_state(&token, &Target::Address(bench_address(i)), v)
            .map_err(|e| anyhow::anyhow!(e))?;
    }
    chain.flush()?;
    eprintln!(
        "genesis, deployment and balances ready in {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    let shard_ix: Vec<u8> = (0..a.holders)
        .map(|i| shard_of(&bench_address(i), order).0 as u8)
        .collect();
    let (_, transfer) = code.function("transfer").expect("token has transfer");
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let mut rng = XorShift::transfers(a.holders);
    let mut secs = 0.0;
    let mut calls = 0u64;
    for _ in 0..a.blocks {
        let mut txs: Vec<Vec<SignedTx>> =
            vec![Vec::with_capacity(a.block_txs / n_shards + 1); n_shards];
        for _ in 0..a.block_txs {
            let from = rng.next() % a.holders;
            let to = rng.next() % a.holders;
            let args = rexe_chain::lang::value::encode_tuple(
                &[
                    Value::Address(bench_address(to).0),
                    Value::Int(Int::from(1u64)),
                ],
                &code.param_types(transfer),
                &code.table,
            )?;
            let tx = mk(
                from,
                nonces[from as usize],
                Payload::ContractCall {
                    assets: Default::default(),
                    contract: token,
                    function: "transfer".into(),
                    args,
                    value: rexe_chain::Amount::ZERO,
                },
            );
            nonces[from as usize] += 1;
            txs[shard_ix[from as usize] as usize].push(tx);
        }
        let start = Instant::now();
        mine(&mut chain, txs)?;
        secs += start.elapsed().as_secs_f64();
        calls += a.block_txs as u64;
    }
    // The last block's deposits and the final flush are part of the work.
    let start = Instant::now();
    mine(&mut chain, vec![Vec::new(); n_shards])?;
    let flush_start = Instant::now();
    chain.flush()?;
    let flush_secs = flush_start.elapsed().as_secs_f64();
    secs += start.elapsed().as_secs_f64();
    anyhow::ensure!(
        chain.audit_supply()?.holds(),
        "supply invariant broken after the benchmark"
    );
    Ok(json!({
        "name": "contract-token-transfer",
        "execute_secs": execute_secs,
        "submit_secs": submit_secs,
        "final_flush_secs": flush_secs,
        "holders": a.holders,
        "shards": n_shards,
        "threads": a.threads,
        "blocks": a.blocks,
        "block_txs": a.block_txs,
        "calls": calls,
        "seconds": secs,
        "ops_per_sec": calls as f64 / secs,
        "peak_rss_bytes": peak_rss_bytes(),
    }))
}

fn script(a: &ContractBenchArgs, order: u8) -> Result<serde_json::Value> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/contracts");
    let path = dir.join("erc20_bench.prdts");
    let src =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let opts = rexe_node::simulator::Options {
        order,
        threads: a.threads,
        perftest: true,
        vars: [
            ("addr".to_string(), a.script_addr.to_string()),
            ("count".to_string(), a.script_count.to_string()),
        ]
        .into(),
        ..Default::default()
    };
    let mut sink = Vec::new();
    let started = Instant::now();
    let summary = rexe_node::simulator::Runner::new(opts, &dir, &mut sink).run(&src)?;
    let total = started.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&sink);
    // The script's own stopwatch covers `chain.run` of the transfers.
    let ms: f64 = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("Stopwatch: ")?
                .strip_suffix(" msec")?
                .parse()
                .ok()
        })
        .unwrap_or(0.0);
    let secs = ms / 1000.0;
    Ok(json!({
        "name": "contract-erc20-script",
        "addr": a.script_addr,
        "count": a.script_count,
        "shards": 1u32 << order,
        "threads": a.threads,
        "run_seconds": secs,
        "total_seconds": total,
        "ops_per_sec": a.script_count as f64 / secs.max(1e-9),
        "micro_txs": summary.micro_txs,
        "reverted": summary.failed,
        "peak_rss_bytes": peak_rss_bytes(),
    }))
}

fn compile_times() -> Result<Vec<serde_json::Value>> {
    let mut out = Vec::new();
    for (name, src) in [
        ("token", TOKEN),
        (
            "ballot",
            include_str!("../../examples/contracts/ballot.prd"),
        ),
        (
            "counter",
            include_str!("../../examples/contracts/counter.prd"),
        ),
        ("amm", include_str!("../../examples/contracts/amm.prd")),
        (
            "pixels",
            include_str!("../../examples/contracts/pixels.prd"),
        ),
    ] {
        let n = 2000;
        let start = Instant::now();
        for _ in 0..n {
            std::hint::black_box(
                compile(std::hint::black_box(src)).map_err(|e| anyhow::anyhow!("{e}"))?,
            );
        }
        let secs = start.elapsed().as_secs_f64();
        out.push(json!({
            "name": "contract-compile",
            "contract": name,
            "source_bytes": src.len(),
            "micros_per_compile": secs * 1e6 / n as f64,
            "ops_per_sec": n as f64 / secs,
            "peak_rss_bytes": peak_rss_bytes(),
        }));
    }
    Ok(out)
}
