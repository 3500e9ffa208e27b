//! `rexe devnet`: the one-command local network.
//!
//! What runs today: the L2 chain (4 shards, parallel executor, SQLite state) producing a
//! block every `--interval-ms`, sealed by AuxPoW over locally ground parents, with a demo wallet pair
//! paying each other across shards so relays, fees and subsidies are visible, and the L2
//! JSON-RPC server (cookie auth on 127.0.0.1). The embedded Bitcoin regtest node, merge
//! mining and the peg demo are wired in as their issues land. Ctrl-C stops cleanly; running
//! it again resumes from the data directory.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::Args;
use rexe_chain::{Amount, ChainParams, Header, Network, Payload, Signer, Tx};
use rexe_miner::auxpow::{mine_parent, AuxTree, ChainId};

/// Seals `header` with an AuxPoW whose parent is a Bitcoin-format header committing to it,
/// ground until its hash meets the L2 target (not the parent's own, far harder target: this
/// is premature work). Until the embedded Bitcoin node and Stratum are wired in, the devnet
/// makes these parents itself.
fn merge_mine(header: &Header, now: u64) -> Vec<u8> {
    let tree = AuxTree::build(&[(ChainId::REXE, rexe_miner::seal::aux_hash(header))])
        .expect("one chain fits");
    let parent_bits = bitcoin::CompactTarget::from_consensus(0x1d00_ffff);
    mine_parent(
        &tree,
        ChainId::REXE,
        parent_bits,
        header.target(),
        now as u32,
    )
    .encode()
}

#[derive(Args)]
pub struct DevnetArgs {
    /// Data directory (created if missing; reused to resume).
    #[arg(long, default_value = "rexe-devnet")]
    datadir: PathBuf,
    /// Milliseconds between blocks.
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
    /// Stop after this many new blocks (default: run until Ctrl-C).
    #[arg(long)]
    blocks: Option<u64>,
    /// Executor threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// L2 JSON-RPC listen address (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:18480")]
    rpc_bind: String,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The demo wallets. Their keys are derived from public seeds: devnet only.
fn demo_signers() -> [(&'static str, Signer); 3] {
    [
        ("alice", Signer::from_seed(b"rexe devnet alice")),
        ("bob", Signer::from_seed(b"rexe devnet bob")),
        ("miner", Signer::from_seed(b"rexe devnet miner")),
    ]
}

/// Devnet chain parameters: regtest rules with Alice and Bob funded.
pub fn params() -> ChainParams {
    let [(_, alice), (_, bob), _] = demo_signers();
    ChainParams::devnet(vec![
        (
            alice.address(),
            Amount::from_sat(10 * Amount::ONE_BTC.to_sat()),
        ),
        (
            bob.address(),
            Amount::from_sat(10 * Amount::ONE_BTC.to_sat()),
        ),
    ])
}

pub fn run(args: DevnetArgs) -> Result<()> {
    let signers = demo_signers();
    let [(_, alice), (_, bob), (_, miner)] = &signers;
    let params = params();
    let cfg = crate::node::NodeConfig::load(
        None,
        &crate::node::config::Overrides {
            datadir: Some(args.datadir.clone()),
            network: Some("devnet".into()),
            rpc_bind: Some(args.rpc_bind.clone()),
            threads: Some(args.threads),
            ..Default::default()
        },
    )?;
    let (shared, cookie_path) = crate::node::open_shared(&cfg, params.clone())
        .with_context(|| format!("opening devnet data directory {}", args.datadir.display()))?;
    let rpc = crate::node::start_rpc(shared.clone(), cfg.rpc_addr()?, cookie_path)?;

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))
            .context("installing the Ctrl-C handler")?;
    }
    println!("rexe devnet");
    println!("  data directory : {}", args.datadir.display());
    {
        let chain = shared.chain();
        println!(
            "  L2 chain       : {} shards, tip {} ({})",
            params.shard_order.shard_count(),
            chain.tip_height(),
            chain.tip_hash()
        );
    }
    println!("  L2 JSON-RPC    : http://{}", rpc.addr);
    println!(
        "    try: curl -s --user \"$(cat {})\" -d '{{\"method\":\"getchaininfo\"}}' http://{}",
        rpc.cookie_path.display(),
        rpc.addr
    );
    for (name, s) in &signers {
        println!(
            "  {name:<6}: {} (shard {})",
            s.address().encode(Network::Devnet),
            s.address().shard(params.shard_order)
        );
    }
    println!("  sealing        : AuxPoW (chain id 0x{:04x}); parents are ground locally (premature work)", ChainId::REXE.0);
    println!("  aux RPC        : createauxblock/submitauxblock/getauxblock on the L2 RPC");
    println!("  not yet running: embedded Bitcoin regtest node, Stratum, CPU miner, peg demo");
    println!("Ctrl-C stops; running again resumes.");

    let mut made = 0u64;
    while !stop.load(Ordering::SeqCst) && args.blocks.is_none_or(|n| made < n) {
        {
            let mut chain = shared.chain();
            // Alice and Bob pay each other a little every block.
            for (from, to) in [(alice, bob), (bob, alice)] {
                let acct = chain.account(&from.address())?;
                let tx = Tx {
                    network: Network::Devnet,
                    from: from.address(),
                    nonce: acct.nonce,
                    fee: Amount::from_sat(150),
                    gas_limit: 0,
                    expiry_height: chain.tip_height() + 10,
                    payload: Payload::Transfer {
                        to: to.address(),
                        amount: Amount::from_sat(10_000 + chain.tip_height() % 1000),
                    },
                }
                .sign(from);
                if let Err(e) = chain.submit_tx(tx) {
                    tracing::debug!(error = %e, "demo transfer not admitted");
                }
            }
            let now = now_secs().max(chain.tip_header().time + 1);
            let mut block = chain.template(miner.address(), now)?;
            block.seal = merge_mine(&block.header, now);
            let hash = block.header.hash();
            let txs = block.tx_count();
            chain.submit(block, now)?;
            made += 1;
            let supply = chain.audit_supply()?;
            println!(
                "block {:>6} {} txs={} relays-in-flight={} alice={} bob={} miner={} supply-ok={}",
                chain.tip_height(),
                hash,
                txs,
                chain.inbound().iter().map(Vec::len).sum::<usize>(),
                chain.account(&alice.address())?.balance,
                chain.account(&bob.address())?.balance,
                chain.account(&miner.address())?.balance,
                supply.holds()
            );
        }
        let deadline = std::time::Instant::now() + Duration::from_millis(args.interval_ms);
        while !stop.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    rpc.shutdown();
    let mut chain = shared.chain();
    chain.flush()?;
    println!("stopped at height {}; state flushed", chain.tip_height());
    Ok(())
}
