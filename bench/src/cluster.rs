//! `rexe bench cluster`: what splitting the shards over two nodes buys. A producer builds
//! blocks of signed random transfers (three in four cross shards) on a 4-shard chain; then
//! one single-threaded full node validates and commits them all, and two single-threaded
//! partial nodes (shards {0,1} and {2,3}) validate and commit their packages side by side,
//! one per core. Also: relay proofs verified per second, and package sizes.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use rexe_chain::encode::Encode;
use rexe_chain::params::GenesisAlloc;
use rexe_chain::partial::PartialBlock;
use rexe_chain::seal::TestSealer;
use rexe_chain::{
    shard_of, Amount, Block, Chain, ChainConfig, ChainParams, Network, Payload, ShardId, SignedTx,
    Signer, Tx,
};
use serde_json::json;

use crate::{peak_rss_bytes, XorShift};

/// `rexe bench cluster`'s arguments.
#[derive(Args)]
pub struct ClusterArgs {
    /// Funded accounts (each signs its own transfers).
    #[arg(long, default_value_t = 4096)]
    accounts: u64,
    /// Transfers per block.
    #[arg(long, default_value_t = 8_000)]
    block_txs: usize,
    /// Blocks.
    #[arg(long, default_value_t = 12)]
    blocks: u64,
    /// Accounts of the state sync phase's chain (a quarter on the shard taken up).
    #[arg(long, default_value_t = 1_000_000)]
    sync_accounts: u64,
    /// Blocks of the bootstrap phase's chain (a new partial node checks every header).
    #[arg(long, default_value_t = 5_000)]
    bootstrap_blocks: u64,
}

fn config() -> ChainConfig {
    ChainConfig {
        threads: 1,
        txindex: false,
        flush_every_blocks: 16,
        ..ChainConfig::default()
    }
}

/// A partial node takes its packages and flushes; the seconds it took.
fn validate(p: &mut Chain, packages: Vec<PartialBlock>) -> Result<f64> {
    let t = Instant::now();
    for pb in packages {
        let now = pb.block.header.time;
        p.submit_partial(pb, now)?;
    }
    p.flush()?;
    Ok(t.elapsed().as_secs_f64())
}

/// Runs the benchmark.
pub fn run(a: &ClusterArgs) -> Result<serde_json::Value> {
    let signers: Vec<Signer> = (0..a.accounts)
        .map(|i| Signer::from_seed(&i.to_le_bytes()))
        .collect();
    let mut params = ChainParams::regtest();
    params.shard_order = rexe_chain::ShardOrder::new(2)?;
    params.genesis_alloc = GenesisAlloc::Accounts(
        signers
            .iter()
            .map(|s| (s.address(), Amount::ONE_BTC))
            .collect(),
    );
    params.max_txs_per_shard = a.block_txs;
    params.undo_depth = a.blocks * 2 + 16;
    let order = params.shard_order;
    let dirs: Vec<tempfile::TempDir> = (0..4)
        .map(|_| tempfile::tempdir())
        .collect::<Result<_, _>>()?;
    let open = |i: usize, tracked: Option<Vec<ShardId>>| {
        Chain::open(
            dirs[i].path(),
            params.clone(),
            ChainConfig {
                tracked,
                ..config()
            },
            Arc::new(TestSealer),
        )
        .context("opening a bench chain")
    };
    // The producer: builds and commits the blocks, and the two packages of each.
    let mut producer = open(0, None)?;
    let halves = [vec![ShardId(0), ShardId(1)], vec![ShardId(2), ShardId(3)]];
    let miner = Signer::from_seed(b"cluster-miner").address();
    let mut rng = XorShift::transfers(a.accounts);
    let mut nonces = vec![0u64; a.accounts as usize];
    let mut blocks: Vec<Block> = Vec::new();
    let mut packages: [Vec<PartialBlock>; 2] = [Vec::new(), Vec::new()];
    eprintln!(
        "signing and building {} blocks of {} transfers...",
        a.blocks, a.block_txs
    );
    for b in 0..a.blocks {
        let mut txs: Vec<Vec<SignedTx>> = vec![Vec::new(); order.shard_count()];
        for _ in 0..a.block_txs {
            let from = (rng.next() % a.accounts) as usize;
            let to = (rng.next() % a.accounts) as usize;
            let tx = Tx {
                network: Network::Regtest,
                from: signers[from].address(),
                nonce: nonces[from],
                max_fee: rexe_chain::fee::GasPrice::from_msat(1),
                max_tip: rexe_chain::fee::GasPrice::from_msat(1),
                gas_limit: rexe_chain::tx::TRANSFER_GAS,
                expiry_height: u64::MAX,
                payload: Payload::Transfer {
                    to: signers[to].address(),
                    amount: Amount::from_sat(1),
                },
            }
            .sign(&signers[from]);
            nonces[from] += 1;
            txs[shard_of(&signers[from].address(), order).index()].push(tx);
        }
        let now = params.genesis_time + b + 1;
        let mut block = producer.template_with(miner, now, txs, true)?;
        block.seal = TestSealer::seal(&block.header);
        producer.submit(block.clone(), now)?;
        let hash = block.header.hash();
        for (i, h) in halves.iter().enumerate() {
            packages[i].push(producer.partial_block(hash, h)?);
        }
        blocks.push(block);
    }
    let txs = (a.blocks as usize * a.block_txs) as f64;
    let block_bytes: usize = blocks.iter().map(|b| b.to_bytes().len()).sum();
    let package_bytes: Vec<usize> = packages
        .iter()
        .map(|p| p.iter().map(|x| x.to_bytes().len()).sum())
        .collect();

    // Relay proofs: every proof in both nodes' packages, verified against its header.
    let (n_proofs, relays, proofs_per_sec, relays_per_sec) = {
        let proofs: Vec<(&rexe_chain::proof::RelayProof, &rexe_chain::Header)> = packages
            .iter()
            .flatten()
            .flat_map(|p| p.relays.iter().map(move |r| (r, &p.block.header)))
            .collect();
        let relays: usize = proofs.iter().map(|(p, _)| p.relays.len()).sum();
        let start = Instant::now();
        let mut rounds = 0u32;
        while rounds < 3 || start.elapsed().as_secs_f64() < 1.0 {
            for (p, h) in &proofs {
                p.verify(h).context("a served proof does not verify")?;
            }
            rounds += 1;
        }
        let secs = start.elapsed().as_secs_f64();
        (
            proofs.len(),
            relays,
            (proofs.len() as u32 * rounds) as f64 / secs,
            (relays as u32 * rounds) as f64 / secs,
        )
    };

    // One full node, one thread.
    eprintln!("full node validating...");
    let mut full = open(1, None)?;
    let start = Instant::now();
    for b in &blocks {
        let now = b.header.time;
        full.submit(b.clone(), now)?;
    }
    full.flush()?;
    let full_secs = start.elapsed().as_secs_f64();
    anyhow::ensure!(full.tip_hash() == producer.tip_hash(), "full node diverged");

    // Two partial nodes, one thread each, side by side.
    eprintln!("two partial nodes validating side by side...");
    let mut p0 = open(2, Some(halves[0].clone()))?;
    let mut p1 = open(3, Some(halves[1].clone()))?;
    let [pk0, pk1] = packages;
    let start = Instant::now();
    let times: Vec<Result<f64>> = std::thread::scope(|s| {
        let h0 = s.spawn(|| validate(&mut p0, pk0));
        let h1 = s.spawn(|| validate(&mut p1, pk1));
        vec![
            h0.join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("panicked"))),
            h1.join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("panicked"))),
        ]
    });
    let cluster_secs = start.elapsed().as_secs_f64();
    let times = times.into_iter().collect::<Result<Vec<f64>>>()?;
    let roots = full.shard_roots();
    for (p, h) in [(&p0, &halves[0]), (&p1, &halves[1])] {
        anyhow::ensure!(p.tip_hash() == full.tip_hash(), "a partial node diverged");
        for s in h {
            anyhow::ensure!(
                p.shard_roots()[s.index()] == roots[s.index()],
                "partial node's shard {s} differs from the full node's"
            );
        }
    }
    let full_tps = txs / full_secs;
    let cluster_tps = txs / cluster_secs;
    drop((full, p0, p1, producer));
    let sync = crate::state_sync::run(a.sync_accounts)?;
    let boot = crate::bootstrap::run(a.bootstrap_blocks)?;
    Ok(json!({
        "name": "cluster",
        "accounts": a.accounts,
        "blocks": a.blocks,
        "block_txs": a.block_txs,
        "full_node_tps": full_tps,
        "two_partial_nodes_tps": cluster_tps,
        "partial_node_secs": times,
        "speedup": cluster_tps / full_tps,
        "ops_per_sec": cluster_tps,
        "relay_proofs_per_sec": proofs_per_sec,
        "relays_proven_per_sec": relays_per_sec,
        "proofs": n_proofs,
        "relays_in_proofs": relays,
        "block_bytes": block_bytes,
        "package_bytes": package_bytes,
        "state_sync": sync,
        "bootstrap": boot,
        "peak_rss_bytes": peak_rss_bytes(),
    }))
}
