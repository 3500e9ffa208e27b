//! `rexe devnet`: the one-command local network, everything in one process and every part
//! talking to the others through the protocols it uses in production:
//!
//! - the embedded Bitcoin regtest node (bitcoind JSON-RPC + Electrum) at a harder fixed
//!   target than Core's regtest, so that pool shares which are not Bitcoin blocks exist;
//! - the L2 node (chain + JSON-RPC with cookie auth, aux RPC);
//! - merge mining: the bitcoind proxy (`coinbaseaux.flags`), the watcher (`getchaintips`),
//!   the Stratum v1 endpoint, and a paced CPU miner connected to it over Stratum. Every share
//!   meets the L2 target and seals an L2 block (premature work); about one in sixteen is also
//!   a Bitcoin block (on-chain);
//! - the peg agents: a header relayer (Electrum) and a claimer;
//! - a peg swap demo between two wallets: Alice (rxBTC) posts a peg-out order, Bob (BTC, his
//!   bdk wallet funded by mining) pegs in with one PSBT-built payment, the claimer claims it.
//!
//! Demo transfers between Alice and Bob every block keep cross-shard relays visible. Ctrl-C
//! stops cleanly; running it again resumes from the data directory.

pub mod cluster;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use rexe_chain::{Amount, ChainParams, Network, Payload, Signer, Tx};
use rexe_miner::auxpow::{AuxPow, ChainId};
use rexe_miner::proxy::Harvester;
use rexe_rpc::client::RpcClient;
use rexe_wallet::{DescriptorKind, RexeWallet};
use serde_json::json;

use rexe_node::client::L2Client;
use rexe_node::peer::Peer;
use rexe_node::peg::source::{BitcoinSource, Electrum};

/// `rexe devnet`'s arguments.
#[derive(Args)]
pub struct DevnetArgs {
    /// Data directory (created if missing; reused to resume).
    #[arg(long, default_value = "rexe-devnet")]
    datadir: PathBuf,
    /// Milliseconds the CPU miner rests after each share (about one L2 block per share).
    #[arg(long, alias = "interval-ms", default_value_t = 1000)]
    share_interval_ms: u64,
    /// Stop after this many new L2 blocks, once the peg demo is done (default: Ctrl-C).
    #[arg(long)]
    blocks: Option<u64>,
    /// Executor threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// L2 JSON-RPC listen address (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:18480")]
    rpc_bind: String,
    /// Embedded Bitcoin regtest node's JSON-RPC address.
    #[arg(long, default_value = "127.0.0.1:18443")]
    bitcoin_rpc_bind: String,
    /// Embedded Bitcoin regtest node's Electrum address.
    #[arg(long, default_value = "127.0.0.1:60401")]
    electrum_bind: String,
    /// Stratum v1 endpoint.
    #[arg(long, default_value = "127.0.0.1:3333")]
    stratum_bind: String,
    /// bitcoind proxy for pools (getblocktemplate with rexe's commitment).
    #[arg(long, default_value = "127.0.0.1:8342")]
    proxy_bind: String,
    /// Compact target of the embedded Bitcoin node: 1f00ffff makes one hash in 2^16 a
    /// Bitcoin block, while Stratum shares are one in 2^12 and the L2's target one in 2.
    #[arg(long, default_value = "1f00ffff")]
    bitcoin_bits: String,
    /// Skip the peg swap demo.
    #[arg(long)]
    no_peg_demo: bool,
    /// L2 nodes in all: the devnet's own (a full node, which builds the blocks) and this
    /// many minus one more, started as processes following it over libp2p.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Shards each extra node runs (default: all of them, i.e. full nodes).
    #[arg(long)]
    shards_per_node: Option<usize>,
}

/// The devnet's Bitcoin target bits, from hex (`1f00ffff` or `0x1f00ffff`).
pub(crate) fn parse_bits(s: &str) -> Result<u32> {
    u32::from_str_radix(s.trim_start_matches("0x"), 16).context("--bitcoin-bits must be hex")
}

/// The devnet's initial peg: it tracks the embedded node's chain, regtest at its fixed
/// difficulty. That Bitcoin makes a block every fraction of a second (several a second in
/// the tests), so the payment window counts 144 blocks instead of regtest's 12: a peg-in
/// gets tens of seconds to take, wait for L2 finality and pay, not two.
pub(crate) fn devnet_peg(
    params: &rexe_chain::ChainParams,
    bits: u32,
) -> rexe_bridge::contract::PegContract {
    rexe_bridge::contract::PegContract::for_chain(params)
        .with_fixed_bits(bits)
        .with_payment_window(DEVNET_PAYMENT_WINDOW)
}

/// Bitcoin blocks a devnet peg-in has to pay its matches (see where the peg is made).
pub const DEVNET_PAYMENT_WINDOW: u32 = 144;

/// A demo user: a bdk wallet restored from public words, holding both sides' keys.
struct Demo {
    name: &'static str,
    words: String,
    l2: Signer,
}

/// The demo users. Their seeds are public: devnet only.
fn demo_users() -> [Demo; 2] {
    ["alice", "bob"].map(|name| {
        let entropy = bitcoin::hashes::sha256::Hash::hash(format!("rexe devnet {name}").as_bytes());
        let words = rexe_wallet::mnemonic_from_entropy(entropy.as_byte_array());
        let l2 = rexe_wallet::l2_signer_of_mnemonic(&words, bitcoin::Network::Regtest)
            .expect("valid generated mnemonic");
        Demo { name, words, l2 }
    })
}

use bitcoin::hashes::Hash as _;

/// The operator's key: L2 block rewards, relayer and claimer fees. Public seed: devnet only.
fn operator() -> Signer {
    Signer::from_seed(b"rexe devnet miner")
}

/// Devnet chain parameters: the preset (Alice, Bob and the operator funded).
pub fn params() -> ChainParams {
    ChainParams::devnet_preset()
}

fn addr(s: &str, what: &str) -> Result<SocketAddr> {
    s.parse()
        .with_context(|| format!("--{what} must be host:port, got {s:?}"))
}

/// Opens (or creates from its words) a demo wallet.
fn demo_wallet(dir: &Path, d: &Demo) -> Result<RexeWallet> {
    let path = dir.join(format!("{}.wallet", d.name));
    if path.exists() {
        return Ok(RexeWallet::load(&path, bitcoin::Network::Regtest)?);
    }
    let mut w = RexeWallet::restore(
        &path,
        bitcoin::Network::Regtest,
        DescriptorKind::Bip86,
        &d.words,
    )?;
    // Reveal the first receive address (the one the demo uses), so syncs watch it.
    w.new_address()?;
    Ok(w)
}

/// How a sealed block's proof of work came about, from its AuxPoW: a parent that meets its
/// own Bitcoin target and is a block of the Bitcoin node is on-chain (or stale, off its best
/// chain); any other parent is a pool share, premature work.
fn sealed_by(block: &rexe_chain::Block, btc: &RpcClient) -> &'static str {
    let Ok(aux) = AuxPow::decode(&block.seal) else {
        return "unknown";
    };
    let hash = aux.parent.block_hash();
    if !aux.parent.target().is_met_by(hash) {
        return "premature";
    }
    match btc.call("getblockheader", json!([hash.to_string()])) {
        Ok(h) if h["confirmations"].as_i64().unwrap_or(-1) >= 0 => "on-chain",
        Ok(_) => "stale",
        Err(_) => "unknown",
    }
}

/// Holds a flag up while alive.
struct Signing<'a>(&'a AtomicBool);

impl<'a> Signing<'a> {
    fn hold(flag: &'a AtomicBool) -> Self {
        flag.store(true, Ordering::SeqCst);
        Signing(flag)
    }
}

impl Drop for Signing<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// Everything the demo threads share.
struct Ctx {
    stop: Arc<AtomicBool>,
    /// Set while the peg demo signs L2 calls with the demo users' keys: the block loop's
    /// demo transfers (same keys) wait, so that both do not pick the same nonce.
    demo_signing: Arc<AtomicBool>,
    l2_peer: Peer,
    electrum: String,
    wallets: PathBuf,
    claimer_state: PathBuf,
}

impl Ctx {
    fn client(&self, signer: Signer) -> Result<L2Client> {
        Ok(L2Client::connect(
            self.l2_peer.clone(),
            signer,
            rexe_node::fees::FeeArgs::default(),
        )?)
    }

    fn sleep(&self, ms: u64) -> bool {
        let until = Instant::now() + Duration::from_millis(ms);
        while Instant::now() < until {
            if self.stop.load(Ordering::SeqCst) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }
}

/// The relayer and the claimer, until stopped.
fn run_agents(ctx: Arc<Ctx>) -> Result<()> {
    let mut relayer = rexe_node::peg::relayer::Relayer::new(
        Electrum::new(&ctx.electrum)?,
        ctx.client(operator())?,
    );
    let claimer = rexe_node::peg::claimer::Claimer::open(
        &ctx.claimer_state,
        Electrum::new(&ctx.electrum)?,
        ctx.client(operator())?,
    )?;
    // A claim waiting in the mempool is reported Submitted at every step: print it once.
    let mut announced = std::collections::HashSet::new();
    while !ctx.stop.load(Ordering::SeqCst) {
        if let Err(e) = relayer.step() {
            tracing::debug!(error = %rexe_node::Report(&e), "relayer step");
        }
        match claimer.step(rexe_node::unix_time() as i64) {
            Ok(events) => {
                for (txid, p) in events {
                    if let rexe_node::peg::claimer::Progress::Submitted(l2) = p {
                        if announced.insert(l2) {
                            println!(
                                "peg demo: claimer submitted the claim of {txid} (L2 call {l2})"
                            );
                        }
                    }
                }
            }
            Err(e) => tracing::debug!(error = %rexe_node::Report(&e), "claimer step"),
        }
        if !ctx.sleep(250) {
            break;
        }
    }
    Ok(())
}

/// The peg swap demo: Alice pegs out, Bob pegs in, the claimer claims.
fn peg_demo(ctx: &Ctx, done_marker: &Path) -> Result<()> {
    let [alice, bob] = demo_users();
    let btc = Electrum::new(&ctx.electrum)?;
    let wait_until = |what: &str, secs: u64, f: &mut dyn FnMut() -> Result<bool>| -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if f()? {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("peg demo: gave up waiting for {what}");
            }
            if !ctx.sleep(200) {
                bail!("stopped");
            }
        }
    };
    // The L2 must track Bitcoin's tip before a take (deadlines count from it).
    wait_until("the relayer", 120, &mut || {
        let tip = btc.tip_height()?;
        Ok(rexe_node::peg::pegin::l2_btc_tip(&ctx.l2_peer)? >= tip)
    })?;
    let mut a_wallet = demo_wallet(&ctx.wallets, &alice)?;
    let a_btc = a_wallet.peek_address(0);
    let amount = 1_000_000u64;
    let a = ctx.client(alice.l2.clone())?;
    let _signing = Signing::hold(&ctx.demo_signing);
    let height = ctx
        .l2_peer
        .call("getblockcount", json!([]))?
        .as_u64()
        .unwrap_or(0);
    let txid = a.send(
        amount,
        &rexe_bridge::call::PegCall::Order {
            btc_script: a_btc.script_pubkey(),
            min_fill: rexe_bridge::peg::Sats(10_000),
            fee_bps: 30,
            expiry_height: height + 10_000,
        },
    )?;
    a.wait(txid, Duration::from_secs(120))?;
    drop(_signing);
    println!(
        "peg demo: alice escrowed {amount} sats of rxBTC in a peg-out order, to be paid in BTC to {a_btc}"
    );

    let mut b_wallet = demo_wallet(&ctx.wallets, &bob)?;
    b_wallet.sync(&ctx.electrum)?;
    let b = ctx.client(bob.l2.clone())?;
    let req = rexe_node::peg::pegin::Request {
        amount,
        allow_partial: false,
        rate: bitcoin::FeeRate::from_sat_per_vb_u32(2),
        margin: rexe_wallet::DEFAULT_PAY_MARGIN,
        recipient: bob.l2.address(),
        btc: &btc,
        finality: rexe_node::peg::pegin::Finality {
            confirmations: rexe_chain::Network::Devnet.default_l2_confirmations(),
            timeout: Duration::from_secs(600),
        },
        electrum: None,
    };
    let signing = Signing::hold(&ctx.demo_signing);
    let (psbt, owed) = rexe_node::peg::pegin::prepare(&req, &mut b_wallet, &b, &ctx.l2_peer)?;
    drop(signing);
    let pay = rexe_node::peg::pegin::pay(
        &mut b_wallet,
        psbt,
        &owed,
        &ctx.electrum,
        &ctx.claimer_state,
    )?;
    println!(
        "peg demo: bob took the order (bond posted) and paid alice on Bitcoin with one PSBT-built transaction {pay} (payment + OP_RETURN commitment + change)"
    );
    let ids = owed.ids.clone();
    wait_until(
        "the claim (a Bitcoin block must confirm the payment)",
        600,
        &mut || {
            let mut all = true;
            for id in &ids {
                all &= ctx.l2_peer.peg_match(id.0)?.state == rexe_node::api::MatchStatus::Claimed;
            }
            Ok(all)
        },
    )?;
    a_wallet.sync(&ctx.electrum)?;
    let bob_l2 = ctx
        .l2_peer
        .call_as::<rexe_node::api::AccountInfo>(
            "getaccount",
            json!([bob.l2.address().encode(Network::Devnet)]),
        )?
        .balance;
    println!(
        "peg demo: claimed with an SPV proof; alice's Bitcoin wallet holds {} sats, bob's L2 balance is {bob_l2} sats. Peg swap complete.",
        a_wallet.balance().total().to_sat()
    );
    std::fs::write(
        done_marker,
        json!({"payment": pay.to_string(), "matches": ids.iter().map(|i| i.0).collect::<Vec<_>>()})
            .to_string(),
    )?;
    Ok(())
}

/// Runs the devnet until a stop signal (or `--blocks`).
pub fn run(args: DevnetArgs) -> Result<()> {
    let users = demo_users();
    let params = params();
    let cfg = rexe_node::NodeConfig::load(
        None,
        &rexe_node::config::Overrides {
            datadir: Some(args.datadir.clone()),
            network: Some("devnet".into()),
            rpc_bind: Some(args.rpc_bind.clone()),
            threads: Some(args.threads),
            ..Default::default()
        },
    )?;
    let btc_bits = parse_bits(&args.bitcoin_bits)?;
    anyhow::ensure!(args.nodes >= 1, "--nodes must be at least 1");
    let peg = devnet_peg(&params, btc_bits);
    let (shared, cookie_path) = rexe_node::open_shared_with_peg(&cfg, params.clone(), peg)
        .with_context(|| format!("opening devnet data directory {}", args.datadir.display()))?;
    let rpc = rexe_node::start_rpc(shared.clone(), cfg.rpc_addr()?, cookie_path)?;
    let l2_cookie = std::fs::read_to_string(&rpc.cookie_path)?
        .trim()
        .to_string();
    let l2_rpc = RpcClient::new(rpc.addr.to_string(), l2_cookie.clone());
    let l2_peer = Peer::parse(&format!("http://{l2_cookie}@{}", rpc.addr))?;

    let btc_node = rexe_regtest::RegtestNode::start_with_electrum(
        rexe_regtest::RegtestConfig {
            datadir: Some(args.datadir.join("bitcoin-regtest")),
            rpc_bind: addr(&args.bitcoin_rpc_bind, "bitcoin-rpc-bind")?,
            bits: btc_bits,
            accept_nonstd_txn: false,
            rpc_auth: None,
            rest: false,
        },
        addr(&args.electrum_bind, "electrum-bind")?,
    )
    .context("starting the embedded Bitcoin regtest node")?;
    let btc = RpcClient::new(btc_node.rpc_addr.to_string(), btc_node.cookie.clone());
    let electrum = btc_node.electrum_url();

    // Bob's Bitcoin wallet, funded by mining (coinbases mature after 100 blocks).
    let wallets = args.datadir.join("wallets");
    std::fs::create_dir_all(&wallets)?;
    let mut bob_wallet = demo_wallet(&wallets, &users[1])?;
    let bob_btc = bob_wallet.peek_address(0);
    let height = btc.call("getblockcount", json!([]))?.as_u64().unwrap_or(0);
    if height < 110 {
        println!(
            "mining {} Bitcoin regtest blocks to fund bob's wallet...",
            110 - height
        );
        btc.call(
            "generatetoaddress",
            json!([110 - height, bob_btc.to_string()]),
        )?;
    }
    bob_wallet.sync(&electrum)?;
    drop(bob_wallet);

    let stop = rexe_node::signals::stop_flag()?;

    // More L2 nodes, following this one over libp2p.
    // Its own stop flag: it serves the other nodes until they have caught up at shutdown.
    let p2p_stop = Arc::new(AtomicBool::new(false));
    let cluster = if args.nodes > 1 {
        let key = rexe_node::p2p::load_or_create_key(&args.datadir)?;
        let listen = rexe_node::p2p::parse_listen("127.0.0.1:0")?;
        let (net, _p2p) = rexe_node::p2p::start(
            shared.clone(),
            key,
            vec![listen],
            Vec::new(),
            false,
            p2p_stop.clone(),
        )?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let bootnode = loop {
            if let Some(a) = net.status().listening.first() {
                break a.clone();
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the devnet node's p2p transport did not start listening"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let n = params.shard_order.shard_count();
        let per_node = args.shards_per_node.unwrap_or(n).clamp(1, n);
        println!(
            "cluster: {} more L2 nodes, {per_node} of {n} shards each, following {bootnode}",
            args.nodes - 1
        );
        Some(cluster::Cluster::start(
            &args.datadir,
            args.nodes,
            per_node,
            n,
            &args.bitcoin_bits,
            &bootnode,
        )?)
    } else {
        None
    };

    // Merge mining: proxy, watcher, Stratum, CPU miner.
    let operator_addr = operator().address().encode(Network::Devnet);
    let harvester = Arc::new(Harvester::new(
        l2_rpc.clone(),
        operator_addr.clone(),
        ChainId::REXE,
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("rexe-devnet")
        .build()?;
    let (proxy_addr, _proxy) = runtime
        .block_on(rexe_miner::proxy::serve(
            addr(&args.proxy_bind, "proxy-bind")?,
            btc_node.rpc_addr.to_string(),
            harvester.clone(),
            rexe_miner::proxy::ProxyConfig::new(btc_node.cookie.clone()),
        ))
        .context("binding the bitcoind proxy")?;
    // A fixed pool difficulty (one share per 2^12 hashes): vardiff would raise it past the
    // Bitcoin target, and then every share would be a Bitcoin block and none premature.
    let stratum = rexe_miner::stratum::server::Stratum::with_options(
        btc.clone(),
        harvester.clone(),
        operator_addr.clone(),
        bob_btc.script_pubkey(),
        rexe_miner::stratum::server::StratumOptions {
            fixed_difficulty: Some(rexe_miner::stratum::server::START_DIFFICULTY),
            ..Default::default()
        },
    );
    let stratum_addr = runtime
        .block_on(rexe_miner::stratum::server::serve(
            stratum,
            addr(&args.stratum_bind, "stratum-bind")?,
            Duration::from_millis(100),
        ))
        .context("binding the Stratum endpoint")?;
    let watcher = {
        let (btc, h, stop) = (btc.clone(), harvester.clone(), stop.clone());
        std::thread::spawn(move || {
            rexe_miner::watcher::Watcher::default().run(btc, h, Duration::from_millis(500), stop)
        })
    };
    let cpu = {
        let opts = rexe_miner::stratum::client::CpuOptions {
            threads: 1,
            stop_after: u64::MAX,
            timeout: Duration::from_secs(u64::MAX / 4),
            pace: Duration::from_millis(args.share_interval_ms),
            stop: stop.clone(),
            share_difficulty: None,
        };
        let (a, user, pass) = (
            stratum_addr.to_string(),
            format!("{bob_btc}.cpu"),
            format!("rx={operator_addr}"),
        );
        std::thread::spawn(move || rexe_miner::stratum::client::run_with(&a, &user, &pass, &opts))
    };

    let demo_signing = Arc::new(AtomicBool::new(false));
    let ctx = Arc::new(Ctx {
        stop: stop.clone(),
        demo_signing: demo_signing.clone(),
        l2_peer,
        electrum: electrum.clone(),
        wallets: wallets.clone(),
        claimer_state: args.datadir.join("claimer.sqlite"),
    });
    let agents = {
        let ctx = ctx.clone();
        std::thread::spawn(move || {
            if let Err(e) = run_agents(ctx) {
                eprintln!("peg agents stopped: {e:#}");
            }
        })
    };
    let marker = args.datadir.join("peg-demo.json");
    let demo_done = Arc::new(AtomicBool::new(args.no_peg_demo || marker.exists()));
    let demo = if demo_done.load(Ordering::SeqCst) {
        None
    } else {
        let (ctx, done) = (ctx.clone(), demo_done.clone());
        Some(std::thread::spawn(move || {
            if let Err(e) = peg_demo(&ctx, &marker) {
                if !ctx.stop.load(Ordering::SeqCst) {
                    eprintln!("peg demo failed: {e:#}");
                }
            }
            done.store(true, Ordering::SeqCst);
        }))
    };

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
    println!(
        "  L2 JSON-RPC    : http://{} (cookie {})",
        rpc.addr,
        rpc.cookie_path.display()
    );
    println!(
        "    try: rexe peg status --rpc {} --rpc-cookie {}",
        rpc.addr,
        rpc.cookie_path.display()
    );
    println!(
        "  Bitcoin regtest: http://{} (bitcoind JSON-RPC, cookie {}), target bits {btc_bits:08x}",
        btc_node.rpc_addr,
        btc_node.cookie_path.display(),
    );
    println!(
        "    try: bitcoin-cli -regtest -rpcport={} -rpccookiefile={} getblockchaininfo",
        btc_node.rpc_addr.port(),
        btc_node.cookie_path.display()
    );
    println!("  Electrum       : {electrum} (Electrum wallets, bdk, `rexe wallet --electrum {electrum}`)");
    println!("  Stratum v1     : stratum+tcp://{stratum_addr} (a paced CPU miner is connected)");
    println!("  bitcoind proxy : http://{proxy_addr} (point a pool's bitcoind URL here)");
    println!(
        "  aux RPC        : createauxblock/submitauxblock/getauxblock on the L2 RPC (chain id 0x{:04x})",
        ChainId::REXE.0
    );
    for u in &users {
        println!(
            "  {:<6} : L2 {} (shard {}), wallet {}",
            u.name,
            u.l2.address().encode(Network::Devnet),
            u.l2.address().shard(params.shard_order),
            wallets.join(format!("{}.wallet", u.name)).display()
        );
    }
    println!("Ctrl-C or SIGTERM stops; running again resumes.");

    let start_height = shared.chain().tip_height();
    let mut seen = start_height;
    let mut by_source = std::collections::BTreeMap::<&str, u64>::new();
    let [alice, bob] = &users;
    let fault = shared.chain().log_fault();
    loop {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        // A block that could not be written stops the devnet (the final flush below then
        // fails with why); running again resumes from the last block written.
        if let Some(why) = fault.get() {
            eprintln!("devnet: writing a block to chain.sqlite failed: {why}; stopping");
            break;
        }
        if btc_node.stop_requested() {
            println!("the embedded Bitcoin node was asked to stop (stop RPC): stopping the devnet");
            break;
        }
        let made = seen - start_height;
        if args.blocks.is_some_and(|n| made >= n) && demo_done.load(Ordering::SeqCst) {
            break;
        }
        let mut chain = shared.chain();
        let tip = chain.tip_height();
        if tip > seen {
            for h in seen + 1..=tip {
                let Some(block) = chain.hash_at(h).and_then(|x| chain.block(x).ok().flatten())
                else {
                    continue;
                };
                let source = sealed_by(&block, &btc);
                *by_source.entry(source).or_default() += 1;
                let supply = chain.audit_supply()?;
                if !supply.holds() {
                    tracing::error!(
                        height = h,
                        ?supply,
                        "supply audit failed: state does not add up"
                    );
                }
                println!(
                    "block {h:>6} {} sealed-by={source:<9} txs={} relays-in-flight={} alice={} bob={} supply-ok={}",
                    block.header.hash(),
                    block.tx_count(),
                    chain.inbound().iter().map(Vec::len).sum::<usize>(),
                    chain.account(&alice.l2.address())?.balance,
                    chain.account(&bob.l2.address())?.balance,
                    supply.holds()
                );
            }
            seen = tip;
            // Alice and Bob pay each other a little every block (cross-shard relays).
            let pairs = [(&alice.l2, &bob.l2), (&bob.l2, &alice.l2)];
            let pairs = if demo_signing.load(Ordering::SeqCst) {
                &pairs[..0]
            } else {
                &pairs[..]
            };
            for &(from, to) in pairs {
                let acct = chain.account(&from.address())?;
                let mut nonce = acct.nonce;
                while chain.mempool().get(&from.address(), nonce).is_some() {
                    nonce += 1;
                }
                // Twice the shard's base fee leaves room for it to rise before inclusion.
                let shard = from.address().shard(chain.params().shard_order);
                let base = chain.base_fee(shard)?;
                let max_tip = rexe_chain::fee::GasPrice::from_msat(1);
                let tx = Tx {
                    network: Network::Devnet,
                    from: from.address(),
                    nonce,
                    max_fee: rexe_chain::fee::GasPrice::from_msat(base.to_msat() * 2)
                        .saturating_add(max_tip),
                    max_tip,
                    gas_limit: rexe_chain::tx::TRANSFER_GAS,
                    expiry_height: tip + 10,
                    payload: Payload::Transfer {
                        to: to.address(),
                        amount: Amount::from_sat(10_000 + tip % 1000),
                    },
                }
                .sign(from);
                if let Err(e) = chain.submit_tx(tx) {
                    tracing::debug!(error = %e, "demo transfer not admitted");
                }
            }
        }
        drop(chain);
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::SeqCst);
    let _ = cpu.join();
    let _ = watcher.join();
    let _ = agents.join();
    if let Some(d) = demo {
        let _ = d.join();
    }
    // Mining has stopped: the other nodes catch up with the final tip, then stop.
    if let Some(c) = cluster {
        let (tip, height) = {
            let chain = shared.chain();
            (chain.tip_hash().to_string(), chain.tip_height())
        };
        c.report(&tip, height);
        c.stop();
    }
    p2p_stop.store(true, Ordering::SeqCst);
    runtime.shutdown_timeout(Duration::from_secs(2));
    rpc.shutdown();
    let btc_height = btc.call("getblockcount", json!([])).unwrap_or_default();
    btc_node.shutdown();
    let mut chain = shared.chain();
    chain.flush()?;
    let h = harvester
        .stats
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    println!(
        "sealed this run: on-chain={} premature={} stale={}; harvester: on-chain={} premature={} stale={}; Bitcoin regtest height {btc_height}",
        by_source.get("on-chain").unwrap_or(&0),
        by_source.get("premature").unwrap_or(&0),
        by_source.get("stale").unwrap_or(&0),
        h.on_chain,
        h.premature,
        h.stale,
    );
    println!("stopped at height {}; state flushed", chain.tip_height());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The preset's genesis funds exactly the keys the devnet derives from its public seeds.
    #[test]
    fn the_preset_funds_the_demo_users_and_the_operator() {
        let [alice, bob] = demo_users();
        let hex = |a: rexe_chain::Address| format!("{:?}", a.0);
        let want = vec![
            (hex(alice.l2.address()), 10 * Amount::ONE_BTC.to_sat()),
            (hex(bob.l2.address()), 10 * Amount::ONE_BTC.to_sat()),
            (hex(operator().address()), Amount::ONE_BTC.to_sat()),
        ];
        let rexe_chain::params::GenesisAlloc::Accounts(got) = params().genesis_alloc else {
            panic!("devnet allocates accounts");
        };
        let got: Vec<_> = got.into_iter().map(|(a, v)| (hex(a), v.to_sat())).collect();
        assert_eq!(got, want);
    }
}
