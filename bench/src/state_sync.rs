//! The state sync phase of `rexe bench cluster`: a partial node running shards {0,1}
//! takes up shard 2 from a full node holding `accounts` accounts over 4 shards. Every page
//! is encoded by the server and decoded by the client (the bytes a network would carry;
//! no network), stored with its cursor and running commitment, and the sync is checked
//! against the tip's chunk state root and adopted with the proofs of what the shard runs
//! next.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use rexe_chain::encode::{Decode, Encode};
use rexe_chain::params::GenesisAlloc;
use rexe_chain::seal::TestSealer;
use rexe_chain::sync::{StatePage, PAGE_ROWS};
use rexe_chain::{Amount, Chain, ChainConfig, ChainParams, ShardId, Signer};
use serde_json::json;

/// A bench chain in `dir`, single-threaded, running `tracked` (all: `None`).
pub(crate) fn open(
    dir: &std::path::Path,
    params: &ChainParams,
    tracked: Option<Vec<ShardId>>,
) -> Result<Chain> {
    Chain::open(
        dir,
        params.clone(),
        ChainConfig {
            threads: 1,
            txindex: false,
            tracked,
            ..ChainConfig::default()
        },
        Arc::new(TestSealer),
    )
    .context("opening a bench chain")
}

/// Runs the phase; its figures.
pub fn run(accounts: u64) -> Result<serde_json::Value> {
    let mut params = ChainParams::regtest();
    params.shard_order = rexe_chain::ShardOrder::new(2)?;
    params.genesis_alloc = GenesisAlloc::Synthetic {
        count: accounts,
        amount: Amount::from_sat(1_000),
    };
    let dirs: Vec<tempfile::TempDir> = (0..2)
        .map(|_| tempfile::tempdir())
        .collect::<Result<_, _>>()?;
    eprintln!("state sync: a full node of {accounts} accounts, a partial node on shards 0,1...");
    let mut full = open(dirs[0].path(), &params, None)?;
    let shard = ShardId(2);
    let mut node = open(dirs[1].path(), &params, Some(vec![ShardId(0), ShardId(1)]))?;
    let miner = Signer::from_seed(b"sync-miner").address();
    for h in 1..=2 {
        let now = params.genesis_time + h;
        let mut block = full.template(miner, now)?;
        block.seal = TestSealer::seal(&block.header);
        full.submit(block.clone(), now)?;
        let pb = full.partial_block(block.header.hash(), &node.tracked_shards())?;
        node.submit_partial(pb, now)?;
    }
    drop(node);
    let mut node = open(
        dirs[1].path(),
        &params,
        Some(vec![ShardId(0), ShardId(1), shard]),
    )?;
    eprintln!("state sync: taking up shard 2...");
    let start = Instant::now();
    let progress = node.begin_state_sync(shard)?;
    let (mut pages, mut wire_bytes, mut rows) = (0u64, 0u64, 0u64);
    let (mut serve_secs, mut take_secs) = (0f64, 0f64);
    let mut cursor = progress.cursor;
    while let Some(from) = cursor {
        let t = Instant::now();
        let bytes = full
            .state_page(shard, progress.block, from, PAGE_ROWS)?
            .to_bytes();
        serve_secs += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let page = StatePage::from_bytes(&bytes).context("a page does not decode")?;
        let p = node.apply_state_page(&page)?;
        cursor = p.cursor;
        rows = p.rows;
        take_secs += t.elapsed().as_secs_f64();
        pages += 1;
        wire_bytes += bytes.len() as u64;
    }
    let n = params.shard_order.shard_count() as u16;
    let proofs: Vec<_> = (0..n)
        .map(ShardId)
        .chain([ShardId::GLOBAL])
        .map(|o| full.relay_proof(progress.block, o, shard))
        .collect::<Result<_, _>>()?;
    node.adopt_shard(shard, &proofs)?;
    let secs = start.elapsed().as_secs_f64();
    anyhow::ensure!(
        node.shard_roots()[shard.index()] == full.shard_roots()[shard.index()],
        "the synced shard differs from the full node's"
    );
    Ok(json!({
        "accounts": accounts,
        "shard_rows": rows,
        "pages": pages,
        "bytes": wire_bytes,
        "secs": secs,
        "mb_per_sec": wire_bytes as f64 / 1e6 / secs,
        "rows_per_sec": rows as f64 / secs,
        "serve_secs": serve_secs,
        "take_secs": take_secs,
    }))
}
