//! The bootstrap phase of `rexe bench cluster`: a brand-new partial node on shards {0,1}
//! starts at a checkpoint of a `blocks`-block chain (see `rexe_chain::bootstrap`). Headers
//! are read and encoded by the server and decoded and checked (seal included, the test
//! sealer's proof of work) by the client in batches of 500, as the network carries them (no
//! network); then the checkpoint's package, the global lane's proof and global state pages,
//! and the start itself. Its shards' state sync is the `state_sync` phase's figure.

use std::time::Instant;

use anyhow::{Context, Result};
use rexe_chain::bootstrap::{GlobalPage, SealedHeader, MAX_HEADERS};
use rexe_chain::encode::{Decode, Encode};
use rexe_chain::seal::TestSealer;
use rexe_chain::{ChainParams, ShardId, Signer};

use crate::state_sync::open;
use serde_json::json;

/// Runs the phase; its figures.
pub fn run(blocks: u64) -> Result<serde_json::Value> {
    let mut params = ChainParams::regtest();
    params.shard_order = rexe_chain::ShardOrder::new(2)?;
    let dirs: Vec<tempfile::TempDir> = (0..2)
        .map(|_| tempfile::tempdir())
        .collect::<Result<_, _>>()?;
    eprintln!("bootstrap: mining {blocks} blocks on a full node...");
    let mut full = open(dirs[0].path(), &params, None)?;
    let miner = Signer::from_seed(b"bootstrap-miner").address();
    for h in 1..=blocks {
        let now = params.genesis_time + h;
        let mut block = full.template(miner, now)?;
        block.seal = TestSealer::seal(&block.header);
        full.submit(block, now)?;
    }
    let mut node = open(dirs[1].path(), &params, Some(vec![ShardId(0), ShardId(1)]))?;
    anyhow::ensure!(
        node.wants_bootstrap(full.tip_height()),
        "the node would replay instead"
    );
    eprintln!("bootstrap: a new partial node on shards 0,1 takes the headers...");
    let now = params.genesis_time + blocks;
    let start = Instant::now();
    let mut headers = node.header_chain();
    let (mut bytes, mut serve_secs) = (0u64, 0f64);
    let mut next = 1;
    while next <= full.tip_height() {
        let t = Instant::now();
        let last = (next + u64::from(MAX_HEADERS) - 1).min(full.tip_height());
        let batch: Vec<Vec<u8>> = (next..=last)
            .map(|h| {
                let hash = full.hash_at(h).context("an active block")?;
                let (sealed, _) = full.sealed_header(hash)?.context("a stored body")?;
                Ok(sealed.to_bytes())
            })
            .collect::<Result<_>>()?;
        serve_secs += t.elapsed().as_secs_f64();
        bytes += batch.iter().map(|b| b.len() as u64).sum::<u64>();
        let decoded: Vec<SealedHeader> = batch
            .iter()
            .map(|b| SealedHeader::from_bytes(b))
            .collect::<Result<_, _>>()?;
        node.extend_headers(&mut headers, &decoded, now)?;
        next = last + 1;
    }
    let header_secs = start.elapsed().as_secs_f64();
    let checkpoint = headers.height() - node.bootstrap_depth();
    let hash = headers.hash_at(checkpoint).context("the checkpoint")?;
    let t = Instant::now();
    let package = full.partial_block(hash, &[])?;
    let own = full.relay_proof(hash, ShardId::GLOBAL, ShardId::GLOBAL)?;
    let mut items = Vec::new();
    let mut from = None;
    loop {
        let page = GlobalPage::from_bytes(&full.global_page(hash, from.clone())?.to_bytes())?;
        let more = page.next();
        items.extend(page.items);
        match more {
            Some(c) => from = c,
            None => break,
        }
    }
    node.bootstrap(&headers, checkpoint, &package, &own, items)?;
    let start_secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(node.tip_hash() == hash, "the node is not at the checkpoint");
    Ok(json!({
        "blocks": blocks,
        "headers_per_sec": blocks as f64 / header_secs,
        "header_bytes": bytes,
        "header_secs": header_secs,
        "serve_secs": serve_secs,
        "checkpoint_secs": start_secs,
    }))
}
