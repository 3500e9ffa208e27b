//! `rexe devnet`: the one-command local network.
//!
//! What runs today: the embedded Bitcoin regtest node (bitcoind JSON-RPC), the L2 chain
//! (4 shards, parallel executor, SQLite state) producing a block every `--interval-ms`,
//! merge-mined on the regtest node's `getblocktemplate` (premature shares and real Bitcoin
//! blocks both seal L2 blocks), with a demo wallet pair
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
use rexe_chain::{Amount, ChainParams, Network, Payload, Signer, Tx};
use rexe_miner::auxpow::ChainId;
use rexe_miner::bitcoind::Bitcoind;
use rexe_miner::harvest::{self, Source};

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
    /// Embedded Bitcoin regtest node's JSON-RPC address (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:18443")]
    bitcoin_rpc_bind: String,
    /// Compact target of the embedded Bitcoin node: harder than the L2's so that premature
    /// shares exist (0x200fffff: 1 in 16 hashes, 8x the L2's regtest target).
    #[arg(long, default_value = "200fffff")]
    bitcoin_bits: String,
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
    // The embedded Bitcoin regtest node, spoken to only through its JSON-RPC.
    let btc_bits = u32::from_str_radix(args.bitcoin_bits.trim_start_matches("0x"), 16)
        .context("--bitcoin-bits must be hex")?;
    // The peg tracks the embedded node's chain: regtest at its fixed difficulty.
    let peg = rexe_bridge::contract::PegContract::for_chain(&params).with_fixed_bits(btc_bits);
    let (shared, cookie_path) = crate::node::open_shared_with_peg(&cfg, params.clone(), peg)
        .with_context(|| format!("opening devnet data directory {}", args.datadir.display()))?;
    let rpc = crate::node::start_rpc(shared.clone(), cfg.rpc_addr()?, cookie_path)?;
    let btc_node = rexe_regtest::RegtestNode::start(rexe_regtest::RegtestConfig {
        datadir: Some(args.datadir.join("bitcoin-regtest")),
        rpc_bind: args
            .bitcoin_rpc_bind
            .parse()
            .context("--bitcoin-rpc-bind must be host:port")?,
        bits: btc_bits,
    })
    .context("starting the embedded Bitcoin regtest node")?;
    let btc = Bitcoind::new(btc_node.rpc_addr.to_string(), btc_node.cookie.clone());
    let btc_payout = bitcoin::Address::p2wsh(
        &bitcoin::ScriptBuf::new_op_return([0x72, 0x65, 0x78, 0x65]),
        bitcoin::Network::Regtest,
    )
    .script_pubkey();
    let mut by_source = [0u64; 3];

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
    println!(
        "  Bitcoin regtest: http://{} (bitcoind JSON-RPC; user/password in {}), target bits {:08x}",
        btc_node.rpc_addr,
        btc_node.cookie_path.display(),
        btc_bits
    );
    println!(
        "  Electrum       : {} (for wallets, e.g. Electrum or bdk)",
        btc_node.electrum_url()
    );
    println!(
        "    try: bitcoin-cli -regtest -rpcport={} -rpccookiefile={} getblockchaininfo",
        btc_node.rpc_addr.port(),
        btc_node.cookie_path.display()
    );
    println!(
        "  sealing        : merge mining (AuxPoW, chain id 0x{:04x}) on the regtest node's getblocktemplate;",
        ChainId::REXE.0
    );
    println!("                   shares meeting the L2 target seal L2 blocks, Bitcoin blocks go to submitblock");
    println!(
        "  aux RPC        : createauxblock/submitauxblock/getauxblock on the L2 RPC (for pools)"
    );
    println!("  not yet running: Stratum endpoint in the devnet, peg demo");
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
            let aux_hash = rexe_miner::seal::aux_hash(&block.header);
            let target = block.header.target();
            let Some(h) =
                harvest::mine(&btc, aux_hash, ChainId::REXE, target, &btc_payout, 1 << 24)?
            else {
                anyhow::bail!("no share met the L2 target in 2^24 hashes");
            };
            block.seal = h.auxpow.encode();
            by_source[match h.source {
                Source::OnChain => 0,
                Source::Premature => 1,
                Source::Stale => 2,
            }] += 1;
            let hash = block.header.hash();
            let txs = block.tx_count();
            chain.submit(block, now)?;
            made += 1;
            let supply = chain.audit_supply()?;
            println!(
                "block {:>6} {} sealed-by={:<9} txs={} relays-in-flight={} alice={} bob={} miner={} supply-ok={}",
                chain.tip_height(),
                hash,
                h.source.name(),
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
    let btc_height = btc
        .call("getblockcount", serde_json::json!([]))
        .unwrap_or_default();
    btc_node.shutdown();
    let mut chain = shared.chain();
    chain.flush()?;
    println!(
        "sealed this run: on-chain={} premature={} stale={}; Bitcoin regtest height {}",
        by_source[0], by_source[1], by_source[2], btc_height
    );
    println!("stopped at height {}; state flushed", chain.tip_height());
    Ok(())
}
