//! `rexe bench contract --parts arrays`: how the cost of a push or an insert grows with the
//! container. One `@global` and one `@shard` array, then one `@global` and one `@shard` map,
//! grow to `--array-pushes` elements or entries, a block of calls at a time (each call adds
//! `--array-pushes-per-call`, through the transaction path: fee, gas, global-lane relay for
//! the global ones). The time per push near the start
//! (median of blocks 1–5, the array at one to six blocks' worth of elements) and near the end
//! (median of the last 5 blocks) are reported with their ratio: medians, so that a block that
//! also flushes a checkpoint does not decide the figure. With elements stored one row each the
//! ratio stays near 1 (it grew with the length when each push re-encoded the whole array).
//! At full size, 10 blocks of calls then make 10 pseudo-random lookups each, from a shard
//! (`lookups_per_sec`).

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use rexe_chain::contract::contract_address;
use rexe_chain::lang::compile;
use rexe_chain::lang::num::Int;
use rexe_chain::lang::value::Value;
use rexe_chain::params::{bench_address, GenesisAlloc};
use rexe_chain::seal::TestSealer;
use rexe_chain::{Amount, Chain, ChainConfig, ChainParams, Payload, SignedTx};
use serde_json::json;

use crate::peak_rss_bytes;

const PUSHES: &str = r#"
contract Pushes {
    @global array<uint64> items;
    @shard array<uint64> local;
    @global map<uint64, uint64> gmap;
    @global uint64 gcount;
    @shard map<uint64, uint64> smap;
    @shard uint64 scount;
    function push_global(uint32 n) export {
        for (uint32 i = 0u; i < n; i++) { items.push(uint64(items.length()) + 1u64); }
    }
    @shard function push_shard(uint32 n) export {
        for (uint32 i = 0u; i < n; i++) { local.push(uint64(local.length()) + 1u64); }
    }
    function insert_global(uint32 n) export {
        for (uint32 i = 0u; i < n; i++) { gmap[gcount * 7919u64] = gcount; gcount += 1u64; }
    }
    @shard function insert_shard(uint32 n) export {
        for (uint32 i = 0u; i < n; i++) { smap[scount * 7919u64] = scount; scount += 1u64; }
    }
    // Ten pseudo-random lookups per call, from a shard (global ones read the global state
    // the shards see), returning their sum.
    @shard function uint64 look_items(uint64 seed) export {
        uint64 s = 0u64;
        uint64 n = uint64(items.length());
        for (uint32 i = 0u; i < 10u; i++) { s += items[uint32((seed * 10u64 + uint64(i)) * 2654435761u64 % n)]; }
        return s;
    }
    @shard function uint64 look_local(uint64 seed) export {
        uint64 s = 0u64;
        uint64 n = uint64(local.length());
        for (uint32 i = 0u; i < 10u; i++) { s += local[uint32((seed * 10u64 + uint64(i)) * 2654435761u64 % n)]; }
        return s;
    }
    @shard function uint64 look_gmap(uint64 seed) export {
        uint64 s = 0u64;
        for (uint32 i = 0u; i < 10u; i++) { s += gmap[(seed * 10u64 + uint64(i)) * 2654435761u64 % gcount * 7919u64]; }
        return s;
    }
    @shard function uint64 look_smap(uint64 seed) export {
        uint64 s = 0u64;
        for (uint32 i = 0u; i < 10u; i++) { s += smap[(seed * 10u64 + uint64(i)) * 2654435761u64 % scount * 7919u64]; }
        return s;
    }
}
"#;

/// Senders (each sends at most one call per block, so nonces never wait).
const SENDERS: u64 = 4096;

/// Runs the global and the shard array to `pushes` elements.
pub fn run(pushes: u64, per_call: u32, calls_per_block: usize) -> Result<Vec<serde_json::Value>> {
    let mut out = Vec::new();
    for (scope, function, var, label) in [
        ("global", "push_global", "items", "array"),
        ("shard", "push_shard", "local", "array"),
        ("global", "insert_global", "gmap", "map"),
        ("shard", "insert_shard", "smap", "map"),
    ] {
        let mut r = grow(scope, function, var, pushes, per_call, calls_per_block)?;
        r["name"] = json!(format!("contract-{label}-{scope}"));
        out.push(r);
    }
    Ok(out)
}

fn grow(
    scope: &str,
    function: &str,
    var: &str,
    pushes: u64,
    per_call: u32,
    calls_per_block: usize,
) -> Result<serde_json::Value> {
    anyhow::ensure!(per_call > 0 && calls_per_block > 0, "nothing to push");
    anyhow::ensure!(
        calls_per_block as u64 <= SENDERS,
        "at most {SENDERS} calls per block"
    );
    let tmp = tempfile::tempdir()?;
    let mut params = ChainParams::regtest();
    params.shard_order = rexe_chain::ShardOrder::new(0)?;
    params.genesis_alloc = GenesisAlloc::Synthetic {
        count: SENDERS,
        amount: Amount::ONE_BTC,
    };
    params.max_txs_per_shard = calls_per_block;
    params.undo_depth = 16;
    let gas = 100_000 + 5_000 * per_call as u64;
    // Execution, not the consensus limits, is measured.
    params.block_gas_per_shard = params
        .block_gas_per_shard
        .max(calls_per_block as u64 * gas * 2);
    params.block_gas_global = params
        .block_gas_global
        .max(calls_per_block as u64 * gas * 2);
    params.block_relays_per_shard = params.block_relays_per_shard.max(calls_per_block * 4);
    let config = ChainConfig {
        threads: 1,
        flush_every_blocks: 64,
        txindex: false,
        contract_receipts: true,
        log_contracts: false,
        verify_state: false,
        ..ChainConfig::default()
    };
    let mut chain = Chain::open(tmp.path(), params.clone(), config, Arc::new(TestSealer))
        .context("opening bench chain")?;
    let miner = bench_address(SENDERS + 1);
    let fee = params.min_base_fee;
    let mut height = 0u64;
    // Mines one block of `txs`; any failed call stops the benchmark.
    let mut mine = |chain: &mut Chain, txs: Vec<SignedTx>| -> Result<()> {
        height += 1;
        let now = params.genesis_time + height;
        let mut b = chain.template_with(miner, now, vec![txs], true)?;
        b.seal = TestSealer::seal(&b.header);
        chain.submit(b, now)?;
        if let Some(e) = chain
            .last_contract_receipts()
            .iter()
            .find_map(|r| r.error.clone())
        {
            anyhow::bail!("{scope} {var}: a call failed: {e}");
        }
        Ok(())
    };
    let code = compile(PUSHES).map_err(|e| anyhow::anyhow!("{e}"))?;
    let contract = contract_address(&bench_address(0), 0);
    let deploy = Payload::Deploy {
        source: PUSHES.into(),
        args: Vec::new(),
    };
    mine(
        &mut chain,
        vec![crate::unsigned_tx(0, 0, fee, 2_000_000, deploy)],
    )?;
    mine(&mut chain, Vec::new())?;
    anyhow::ensure!(
        chain.contracts().get(&contract).is_some(),
        "deployment failed"
    );
    let (_, f) = code.function(function).expect("bench function");
    let args = rexe_chain::lang::value::encode_tuple(
        &[Value::Int(Int::from(per_call as u64))],
        &code.param_types(f),
        &code.table,
    )?;
    let mut nonces = vec![0u64; SENDERS as usize];
    nonces[0] = 1;
    // One call of `function` from `from`, at its next nonce.
    let mut call = |from: u64, function: &str, args: Vec<u8>| {
        let nonce = nonces[from as usize];
        nonces[from as usize] += 1;
        let payload = Payload::ContractCall {
            assets: Default::default(),
            contract,
            function: function.into(),
            args,
            value: rexe_chain::Amount::ZERO,
        };
        crate::unsigned_tx(from, nonce, fee, gas, payload)
    };
    let per_block = per_call as u64 * calls_per_block as u64;
    let blocks = pushes.div_ceil(per_block);
    // Block 0's global calls run in block 1: the first measured block is block 1 (for both
    // scopes, so they compare).
    let mut times = Vec::with_capacity(blocks as usize);
    let started = Instant::now();
    for b in 0..blocks {
        let txs = (0..calls_per_block as u64)
            .map(|from| call(from, function, args.clone()))
            .collect();
        let t = Instant::now();
        mine(&mut chain, txs)?;
        let secs = t.elapsed().as_secs_f64();
        times.push(secs);
        if b % 20 == 19 {
            eprintln!(
                "{scope}: {} elements, last block {:.1} µs per push",
                (b + 1) * per_block,
                secs * 1e6 / per_block as f64
            );
        }
    }
    // Global calls run on the lane in the block after their transactions: one more block.
    mine(&mut chain, Vec::new())?;
    let total = started.elapsed().as_secs_f64();
    // Lookups at full size: 10 blocks of calls, 10 lookups each.
    let (_, look) = code
        .function(&format!("look_{var}"))
        .expect("lookup function");
    let look_blocks = 10u64;
    let mut look_secs = 0.0;
    let mut seed = 0u64;
    for _ in 0..look_blocks {
        let mut txs = Vec::with_capacity(calls_per_block);
        for from in 0..calls_per_block as u64 {
            seed += 1;
            let a = rexe_chain::lang::value::encode_tuple(
                &[Value::Int(Int::from(seed))],
                &code.param_types(look),
                &code.table,
            )?;
            txs.push(call(from, &format!("look_{var}"), a));
        }
        let t = Instant::now();
        mine(&mut chain, txs)?;
        look_secs += t.elapsed().as_secs_f64();
    }
    let lookups = look_blocks * calls_per_block as u64 * 10;
    let state = if scope == "global" {
        chain.contract_state(&contract, &rexe_chain::contract::Target::Global)?
    } else {
        chain.contract_state(
            &contract,
            &rexe_chain::contract::Target::Shard(rexe_chain::ShardId(0)),
        )?
    };
    let len = state
        .as_ref()
        .map(|s| match &s[var] {
            serde_json::Value::Array(a) => a.len(),
            serde_json::Value::Object(m) => m.len(),
            _ => 0,
        })
        .unwrap_or(0) as u64;
    anyhow::ensure!(
        len == blocks * per_block,
        "{scope} {var} has {len} elements, expected {}",
        blocks * per_block
    );
    let median = |w: &[f64]| {
        let mut w = w.to_vec();
        w.sort_by(f64::total_cmp);
        w.get(w.len() / 2).copied().unwrap_or(0.0)
    };
    let n = times.len();
    let first = median(&times[1.min(n)..6.min(n)]);
    let last = median(&times[n.saturating_sub(5)..]);
    let us = |s: f64| s * 1e6 / per_block as f64;
    Ok(json!({
        "elements": len,
        "pushes_per_call": per_call,
        "calls_per_block": calls_per_block,
        "us_per_push_start": us(first),
        "us_per_push_end": us(last),
        "last_to_first": last / first.max(1e-12),
        "ops_per_sec": len as f64 / total,
        "lookups_per_sec": lookups as f64 / look_secs,
        "seconds": total,
        "peak_rss_bytes": peak_rss_bytes(),
    }))
}
