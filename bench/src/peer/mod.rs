//! `rexe bench peer` (issue 24 item 4): the same token transfers between the same random
//! holders, drawn from the same generator as `bench contract`'s token run and the SQLite
//! floor, executed
//!
//! - by an optimised EVM interpreter, the `revm` crate, in memory, on a hand-assembled
//!   ERC20 (only when built with the `revm-peer` feature);
//! - by rexe's contract VM in memory: the token contract's `transfer` and the `deposit`
//!   relay it emits, with their arguments decoded and their row writes applied to a map;
//! - by a rexe chain, durably (`bench contract`'s token run: templates, sealing, the block
//!   log with `synchronous=FULL`, shard state flushed every 64 blocks), on each thread count;
//! - as the plain SQLite floor (one `UPDATE` per dirty account per block, integer and
//!   32-byte keys),
//!
//! and printed side by side with the ratios. Each in-memory side runs on one thread.

#[cfg(feature = "revm-peer")]
mod erc20_evm;
#[cfg(feature = "revm-peer")]
mod evm;
mod vm;

use std::path::PathBuf;

use anyhow::Result;
use serde_json::{json, Value};

use crate::peak_rss_bytes;

/// `rexe bench peer`.
#[derive(clap::Args)]
pub struct PeerArgs {
    /// Token holders (each starts with a balance).
    #[arg(long, default_value_t = 1_000_000)]
    holders: u64,
    /// Transfers per block.
    #[arg(long, default_value_t = 40_000)]
    block_txs: usize,
    /// Blocks measured.
    #[arg(long, default_value_t = 25)]
    blocks: u64,
    /// Executor threads of the durable chain runs (comma-separated list runs each).
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    threads: Vec<usize>,
    /// log2 of the shard count of the durable chain runs.
    #[arg(long, default_value_t = 2)]
    shard_order: u8,
    /// Where to put the chains and the floor's databases (default: temporary directories).
    #[arg(long)]
    datadir: Option<PathBuf>,
}

/// Runs every side; one JSON object with each rate and the ratios.
pub fn run(a: &PeerArgs) -> Result<Value> {
    anyhow::ensure!(
        a.holders >= 2 && a.block_txs > 0 && a.blocks > 0,
        "need at least 2 holders, 1 transfer per block and 1 block"
    );
    let evm = evm_side(a)?;
    eprintln!("rexe's contract VM in memory...");
    let vm = vm::run(a.holders, a.block_txs, a.blocks)?;
    let mut durable = serde_json::Map::new();
    for &threads in &a.threads {
        eprintln!("rexe chain, durable, {threads} thread(s)...");
        let r = crate::contract::token_transfers(
            a.holders,
            threads,
            a.shard_order,
            a.block_txs,
            a.blocks,
            a.datadir.clone(),
        )?;
        durable.insert(format!("threads_{threads}"), r["ops_per_sec"].clone());
    }
    eprintln!("the SQLite floor...");
    let tmp;
    let dir = match &a.datadir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let floor = |keys| crate::floor::run(&dir, keys, a.holders, a.block_txs, a.blocks);
    let floor_int = floor(crate::floor::Keys::Integer)?;
    let floor_key32 = floor(crate::floor::Keys::Bytes32)?;
    let ratio = |x: f64, y: Option<f64>| y.filter(|y| *y > 0.0).map(|y| x / y);
    let evm_rate = evm["ops_per_sec"].as_f64();
    let best_durable = durable
        .values()
        .filter_map(Value::as_f64)
        .fold(0.0, f64::max);
    Ok(json!({
        "name": "peer-token-transfers",
        "holders": a.holders,
        "block_txs": a.block_txs,
        "blocks": a.blocks,
        "transfers": a.block_txs as u64 * a.blocks,
        "shards": 1u32 << a.shard_order,
        "evm": evm,
        "vm_in_memory_per_sec": vm,
        "chain_durable_per_sec": durable,
        "floor_int_per_sec": floor_int,
        "floor_key32_per_sec": floor_key32,
        "ratio_vm_in_memory_to_evm": ratio(vm, evm_rate),
        "ratio_best_durable_to_evm": ratio(best_durable, evm_rate),
        "ratio_best_durable_to_floor_key32": ratio(best_durable, Some(floor_key32)),
        "ops_per_sec": best_durable,
        "peak_rss_bytes": peak_rss_bytes(),
    }))
}

#[cfg(feature = "revm-peer")]
fn evm_side(a: &PeerArgs) -> Result<Value> {
    eprintln!("revm in memory...");
    let r = evm::run(a.holders, a.block_txs, a.blocks)?;
    Ok(json!({
        "built": true,
        "revm_version": "43",
        "ops_per_sec": r.per_sec,
        "gas_per_transfer": r.gas_per_transfer,
    }))
}

#[cfg(not(feature = "revm-peer"))]
fn evm_side(_: &PeerArgs) -> Result<Value> {
    eprintln!(
        "the EVM side is not built: build with `cargo build --release -p rexe --features revm-peer`"
    );
    Ok(json!({
        "built": false,
        "how": "cargo build --release -p rexe --features revm-peer",
    }))
}
