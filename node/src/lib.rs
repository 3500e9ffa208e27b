//! `rexe node`: the L2 node. Opens the chain in a data directory and serves JSON-RPC
//! (see `docs/rpc.md`) on 127.0.0.1 with cookie authentication.
//!
//! Blocks are sealed by merge-mined proof of work (AuxPoW, rexe's chain id): pools use the
//! aux RPC (`createauxblock`/`submitauxblock`, `getauxblock`), other miners
//! `getblocktemplate`/`submitblock` with the AuxPoW as the seal. Nodes exchange blocks and
//! transactions over libp2p ([`p2p`]: `--p2p-bind`, `--bootnode`, `--mdns`), or, as a
//! fallback, by polling each other's JSON-RPC (`--peer`).
//!
//! The node's library (configuration, [`open_shared`], [`start_rpc`], sync, [`peer::Peer`],
//! [`client::L2Client`]) returns [`Error`], the peg agents' steps
//! [`peg::error::AgentError`]. The command modules ([`cli`], `rexe peg` and its peg-in
//! workflow in [`peg`], [`simulator`]) are the binary's commands and report with `anyhow`.

pub mod api;
pub mod cli;
pub mod client;
pub mod config;
pub mod contract_rpc;
pub mod cookie;
pub mod error;
pub mod fees;
pub mod http;
pub mod p2p;
pub mod peer;
pub mod peg;
pub mod peg_rpc;
pub mod proof_rpc;
pub mod rpc;
pub mod signals;
pub mod simulator;
pub mod sync;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
pub use error::{Error, Report, Result};
use rexe_chain::{Chain, ChainConfig, ChainParams};

pub use config::NodeConfig;
pub use http::{Auth, Shared};

/// `rexe node`'s arguments: a TOML file and flags overriding its keys.
#[derive(Args)]
pub struct NodeArgs {
    /// TOML configuration file; command-line flags override its keys.
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    #[command(flatten)]
    overrides: config::Overrides,
}

/// A running RPC server and the runtime that drives it.
pub struct RpcHandle {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The cookie file it wrote (removed at shutdown).
    pub cookie_path: std::path::PathBuf,
    runtime: tokio::runtime::Runtime,
}

impl RpcHandle {
    /// Stops the server and removes the cookie file.
    pub fn shutdown(self) {
        self.runtime.shutdown_timeout(Duration::from_secs(2));
        let _ = std::fs::remove_file(&self.cookie_path);
    }
}

/// Seconds since the Unix epoch (0 if the clock is set before it).
pub fn unix_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Starts the JSON-RPC server for `shared` on `bind` (port 0 picks a free one).
pub fn start_rpc(
    shared: Arc<Shared>,
    bind: SocketAddr,
    cookie_path: std::path::PathBuf,
) -> Result<RpcHandle> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("rexe-rpc")
        .build()
        .map_err(|e| Error::io("starting the RPC runtime", e))?;
    let (addr, _task) = runtime
        .block_on(http::serve(shared, bind))
        .map_err(|e| Error::io(format!("binding the RPC server to {bind}"), e))?;
    Ok(RpcHandle {
        addr,
        cookie_path,
        runtime,
    })
}

/// Opens the chain with the peg for `params` and builds the shared state (cookie written
/// 0600 in `datadir`).
pub fn open_shared(
    cfg: &NodeConfig,
    params: ChainParams,
) -> Result<(Arc<Shared>, std::path::PathBuf)> {
    let peg = rexe_bridge::contract::PegContract::for_chain(&params);
    open_shared_with_peg(cfg, params, peg)
}

/// Like [`open_shared`] with an explicit initial peg state (used when the data directory is
/// created; an existing one keeps its stored state).
pub fn open_shared_with_peg(
    cfg: &NodeConfig,
    params: ChainParams,
    peg: rexe_bridge::contract::PegContract,
) -> Result<(Arc<Shared>, std::path::PathBuf)> {
    let peg = peg.boxed();
    let chain_id = cfg.chain_id()?;
    config::check_datadir_chain_id(&cfg.datadir, chain_id)?;
    let cache_limit = match cfg.cache_mib {
        Some(mib) => ChainConfig::cache_limit_for(mib << 20, params.shard_order.shard_count()),
        None => ChainConfig::default().cache_limit,
    };
    let chain = Chain::open_with_systems(
        &cfg.datadir,
        params,
        ChainConfig {
            threads: cfg.threads,
            cache_limit,
            mmap_bytes: cfg.mmap_mib.map_or(0, |m| (m as u64) << 20),
            verify_state: cfg.verify_state,
            mempool_per_shard: cfg
                .mempool_per_shard
                .unwrap_or(rexe_chain::mempool::DEFAULT_SHARD_CAPACITY),
            tracked: (!cfg.track_shards.is_empty()).then(|| {
                cfg.track_shards
                    .iter()
                    .map(|s| rexe_chain::ShardId(*s))
                    .collect()
            }),
            ..ChainConfig::default()
        },
        Arc::new(rexe_miner::AuxPowSealer { chain_id }),
        vec![peg],
    )
    .map_err(|e| Error::chain(format!("opening the chain in {}", cfg.datadir.display()), e))?;
    let mining_address = cfg.mining_address(chain.params().network)?;
    let (cookie, cookie_path) = cookie::write(&cfg.datadir)?;
    let max_tx_bytes = chain.params().max_tx_bytes;
    let shared = Arc::new(Shared {
        chain: Mutex::new(chain),
        auth: Auth {
            cookie,
            user_password: cfg.user_password(),
        },
        started: Instant::now(),
        peers: cfg.peers()?,
        aux: Mutex::new(Default::default()),
        mining_address,
        chain_id,
        limits: cfg.rpc_limits()?,
        max_tx_bytes,
        p2p: std::sync::OnceLock::new(),
        p2p_peer_height: Default::default(),
    });
    Ok((shared, cookie_path))
}

/// Sleeps until a stop signal, or until the chain's block log fails to write (then sets the
/// stop flag itself, so the other threads stop too, and returns why): a node that cannot
/// write its blocks stops, as Bitcoin Core does on a failed disk write, rather than
/// answering every request with an error until someone restarts it.
fn wait_for_stop(stop: &AtomicBool, fault: &rexe_chain::store::LogFault) -> Option<String> {
    while !stop.load(Ordering::SeqCst) {
        if let Some(why) = fault.get() {
            tracing::error!(error = %why, "writing a block to chain.sqlite failed: stopping the node");
            eprintln!("rexe node: writing a block to chain.sqlite failed: {why}; stopping (restart resumes from the last block written)");
            stop.store(true, Ordering::SeqCst);
            return Some(why.to_string());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// Runs `rexe node` until a stop signal: opens the chain, serves JSON-RPC, syncs from peers.
pub fn run(args: NodeArgs) -> Result<()> {
    let cfg = NodeConfig::load(args.config.as_deref(), &args.overrides)?;
    let params = cfg.chain_params()?;
    let peg = rexe_bridge::contract::PegContract::for_chain(&params);
    run_with(cfg, params, peg)
}

/// [`run`] for a chain given by its parameters and initial peg state (`rexe devnet`'s
/// extra nodes run the devnet's chain this way).
pub fn run_with(
    cfg: NodeConfig,
    params: ChainParams,
    peg: rexe_bridge::contract::PegContract,
) -> Result<()> {
    // Installed first: a SIGTERM that arrives while the chain opens or once the RPC answers
    // must stop the node cleanly, not kill it (the default action).
    let stop = crate::signals::stop_flag()?;
    let (shared, cookie_path) = open_shared_with_peg(&cfg, params, peg)?;
    let rpc = start_rpc(shared.clone(), cfg.rpc_addr()?, cookie_path)?;
    {
        let c = shared.chain();
        tracing::info!(
            rpc = %rpc.addr,
            cookie = %rpc.cookie_path.display(),
            height = c.tip_height(),
            tip = %c.tip_hash(),
            "rexe node running"
        );
    }
    println!(
        "rexe node: JSON-RPC on http://{} (cookie {})",
        rpc.addr,
        rpc.cookie_path.display()
    );
    let p2p = if cfg.p2p_enabled() {
        let key = p2p::load_or_create_key(&cfg.datadir)?;
        let listen = cfg
            .p2p_bind
            .iter()
            .map(|a| p2p::parse_listen(a))
            .collect::<Result<Vec<_>>>()?;
        let boot = cfg
            .bootnodes
            .iter()
            .map(|a| p2p::parse_bootnode(a))
            .collect::<Result<Vec<_>>>()?;
        let (net, thread) = p2p::start(shared.clone(), key, listen, boot, cfg.mdns, stop.clone())?;
        println!("rexe node: p2p peer id {}", net.peer_id());
        Some(thread)
    } else {
        None
    };
    let syncer = (!shared.peers.is_empty()).then(|| {
        let (shared, stop) = (shared.clone(), stop.clone());
        std::thread::spawn(move || sync::run(shared.clone(), shared.peers.clone(), stop))
    });
    let fault = shared.chain().log_fault();
    let failed = wait_for_stop(&stop, &fault);
    if let Some(s) = syncer {
        let _ = s.join();
    }
    if let Some(t) = p2p {
        let _ = t.join();
    }
    rpc.shutdown();
    if let Some(why) = failed {
        // Nothing more can be written: the state on disk stays at the last logged block,
        // where the next start resumes.
        return Err(Error::chain(
            "the node stopped",
            rexe_chain::store::StoreError::LogWrite(why).into(),
        ));
    }
    shared
        .chain()
        .flush()
        .map_err(|e| Error::chain("flushing state at shutdown", e.into()))?;
    println!("stopped; state flushed");
    Ok(())
}
