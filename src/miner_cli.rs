//! `rexe miner`: the merge-mining process next to a pool: the bitcoind proxy (GBT with
//! rexe's commitment in `coinbaseaux.flags`, `submitblock` harvesting) and the watcher
//! (`getchaintips` polling, stale-block harvesting), feeding the L2 node's aux RPC and those
//! of other AuxPoW chains (`--aux-chain`), all committed in one aux tree.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use rexe_miner::aggregate::{AggregateOptions, AuxChain, AuxChainSpec};
use rexe_miner::auxpow::ChainId;
use rexe_miner::proxy::Harvester;
use rexe_miner::watcher::Watcher;
use rexe_rpc::client::RpcClient;

#[derive(Subcommand)]
pub enum MinerCmd {
    /// Run the bitcoind proxy and the watcher.
    Run(Box<RunArgs>),
    /// A small Stratum v1 CPU miner (devnet and tests).
    Cpu {
        /// Stratum server host:port.
        #[arg(long, default_value = "127.0.0.1:3333")]
        stratum: String,
        /// Worker name (`btcaddr.worker`).
        #[arg(long, default_value = "rexe.cpu")]
        user: String,
        /// Password; `rx=<address>` sends this worker's L2 rewards there.
        #[arg(long, default_value = "x")]
        password: String,
        /// Mining threads.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Stop after this many accepted shares (default: run for --seconds).
        #[arg(long, default_value_t = u64::MAX)]
        shares: u64,
        /// Stop after this many seconds.
        #[arg(long, default_value_t = 3600)]
        seconds: u64,
        /// Rest this many milliseconds after each share (a slow, steady share rate).
        #[arg(long, default_value_t = 0)]
        pace_ms: u64,
        /// Submit shares meeting this difficulty when the pool asks for more (regtest:
        /// pools such as ckpool check every submission for a block before judging its
        /// difficulty, and refuse share difficulties below 1; the pool rejects these shares).
        #[arg(long)]
        share_difficulty: Option<f64>,
    },
    /// A Stratum share tap between miners and an unmodified pool: every line passes
    /// through unchanged; shares meeting the L2 target seal L2 blocks.
    Tap(Box<TapArgs>),
    /// Pay workers the L2 blocks a share tap recorded for them (`tap --payout-ledger`):
    /// each buried block's subsidy, from the operator's key, never twice.
    Pay(Box<rexe_node::cli::payouts::PayArgs>),
    /// Print a running proxy's (or share tap's) harvest counters.
    Stats {
        /// The proxy's address (or the tap's --stats-listen).
        #[arg(long, alias = "tap", default_value = "127.0.0.1:8342")]
        proxy: String,
    },
}

#[derive(Args)]
pub struct TapArgs {
    /// Where miners connect (point them here instead of at the pool).
    #[arg(long, default_value = "0.0.0.0:3334")]
    listen: SocketAddr,
    /// The pool: stratum+tcp://HOST:PORT (or HOST:PORT).
    #[arg(long)]
    pool: String,
    /// L2 node JSON-RPC address.
    #[arg(long, default_value = "127.0.0.1:18480")]
    l2: String,
    /// L2 node credentials `user:password`.
    #[arg(long)]
    l2_auth: Option<String>,
    /// L2 node cookie file (instead of --l2-auth).
    #[arg(long)]
    l2_cookie: Option<PathBuf>,
    /// L2 address for the tap's `createauxblock` calls (which only learn the L2 target;
    /// rewards go to whoever the pool's template commits to).
    #[arg(long)]
    payout: Option<String>,
    /// rexe's merge-mining chain id (default: asked from the L2 node at start, 0x0b42 if
    /// it is down).
    #[arg(long, value_parser = rexe_miner::aggregate::parse_chain_id)]
    chain_id: Option<ChainId>,
    /// Forward only: no L2 node, nothing harvested.
    #[arg(long)]
    no_l2: bool,
    /// Milliseconds between L2 target refreshes (`createauxblock`).
    #[arg(long, default_value_t = 1000)]
    l2_poll_ms: u64,
    /// When the pool merge-mines several chains through `rexe miner run --aux-chain`: that
    /// proxy's `HOST:PORT`. Shares committing to its aggregated aux tree (and meeting the
    /// L2 target) go to its `submitauxshare`, which seals every chain whose target they
    /// meet; without it such shares are skipped.
    #[arg(long, value_name = "HOST:PORT")]
    aux_proxy: Option<String>,
    /// The aux proxy's credentials `user:password` (bitcoind's, or its `--proxy-auth`).
    #[arg(long)]
    aux_proxy_auth: Option<String>,
    /// The aux proxy's cookie file (bitcoind's; instead of --aux-proxy-auth).
    #[arg(long)]
    aux_proxy_cookie: Option<PathBuf>,
    /// Run this command (through `sh -c`) whenever the L2 tip changes, `%s` replaced by the
    /// new tip's hash, as bitcoind's `-blocknotify`. Point it at the pool's work-update hook
    /// (ckpool: `notifier -n NAME -s SOCKDIR`) so that the pool commits to the new L2 tip
    /// at once: each pool job commits to one L2 block, and without it the pool's shares
    /// are `stale_l2` from that block's seal to the pool's next template refresh.
    #[arg(long, value_name = "CMD")]
    pool_notify: Option<String>,
    /// Where shares are followed (parsed, rebuilt, hashed against the L2 target): `low` (the
    /// default), a thread of their own at nice +10 that forwarding threads preempt but that
    /// still gets a tenth of a busy core; `normal`, on the forwarding threads; or
    /// `background` (Linux SCHED_IDLE), which on a host kept busy by other work falls
    /// behind, drops events (`events_dropped`) and with them L2 blocks.
    #[arg(long, value_name = "PRIORITY", default_value_t = rexe_rpc::Priority::Low)]
    follow_priority: rexe_rpc::Priority,
    /// Record every L2 block the tap seals, with the worker whose share sealed it and that
    /// worker's rxBTC address by --payout-sources (JSON lines, appended and synced).
    /// The block reward goes to the pool template's payout (the proxy's --payout); the
    /// ledger says whom to pay from it.
    #[arg(long, value_name = "FILE")]
    payout_ledger: Option<PathBuf>,
    /// Where a worker's address comes from, in order: `map` (--payout-map),
    /// `password` (`rx=<address>` in the worker's password), `worker-suffix`.
    #[arg(long, value_delimiter = ',', default_value = "map,password")]
    payout_sources: Vec<rexe_miner::stratum::payout::PayoutSource>,
    /// Mapping file for the `map` source: `worker address` per line, `#` comments.
    #[arg(long, value_name = "FILE")]
    payout_map: Option<PathBuf>,
    /// `GET /stats` (JSON, for `rexe miner stats --tap`) and `/metrics` here.
    #[arg(long, default_value = "127.0.0.1:8343")]
    stats_listen: SocketAddr,
    /// Most miner connections in total.
    #[arg(long, default_value_t = 4096)]
    max_connections: usize,
    /// Most miner connections from one IP address.
    #[arg(long, default_value_t = 4096)]
    max_per_ip: usize,
    /// Longest line from either side (bytes); a longer one closes that miner's connection.
    #[arg(long, default_value_t = rexe_miner::tap::MAX_LINE)]
    max_line: usize,
    /// Jobs followed per connection (shares of older jobs are not harvested).
    #[arg(long, default_value_t = rexe_miner::tap::MAX_JOBS)]
    max_jobs: usize,
    /// Seconds either side has to take a line before both connections are dropped.
    #[arg(long, default_value_t = 30)]
    write_timeout: u64,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

/// `rexe miner tap`: runs until Ctrl-C, then prints the counters.
fn tap(a: &TapArgs) -> Result<()> {
    use rexe_miner::tap::{self, Tap, TapConfig};
    let pool = tap::parse_pool(&a.pool)?;
    let harvester = if a.no_l2 {
        None
    } else {
        let payout = a
            .payout
            .clone()
            .context("give --payout (an L2 address for createauxblock) or --no-l2")?;
        let l2 = RpcClient::new(a.l2.clone(), creds(&a.l2_auth, &a.l2_cookie, "l2")?)
            .with_timeout(Duration::from_secs(5));
        let chain_id = match a.chain_id {
            Some(id) => id,
            None => match l2.call("createauxblock", serde_json::json!([payout])) {
                Ok(w) => w
                    .get("chainid")
                    .and_then(serde_json::Value::as_u64)
                    .and_then(|c| u32::try_from(c).ok())
                    .map_or(ChainId::REXE, ChainId),
                Err(e) => {
                    eprintln!("rexe miner tap: L2 node at {} unreachable ({e}); forwarding anyway, chain id {:#06x}", a.l2, ChainId::REXE.0);
                    ChainId::REXE
                }
            },
        };
        Some(Arc::new(Harvester::new(l2, payout, chain_id)))
    };
    let mut config = TapConfig::new(pool.clone());
    config.limits.max_connections = a.max_connections;
    config.limits.max_per_ip = a.max_per_ip;
    config.limits.max_request = a.max_line.max(1024);
    config.limits.write_timeout = Duration::from_secs(a.write_timeout.max(1));
    config.max_jobs = a.max_jobs.max(1);
    config.l2_poll = Duration::from_millis(a.l2_poll_ms.max(10));
    config.pool_notify = a.pool_notify.clone().filter(|c| !c.trim().is_empty());
    config.payout_ledger = a.payout_ledger.clone();
    config.follow_priority = a.follow_priority;
    config.payout_rules = rexe_miner::stratum::payout::PayoutRules {
        sources: a.payout_sources.clone(),
        map: match &a.payout_map {
            Some(p) => rexe_miner::stratum::payout::PayoutRules::load_map(p)
                .with_context(|| format!("reading --payout-map {}", p.display()))?,
            None => Default::default(),
        },
    };
    if let Some(p) = &a.aux_proxy {
        let auth = creds(&a.aux_proxy_auth, &a.aux_proxy_cookie, "aux-proxy")?;
        config.aux_proxy =
            Some(RpcClient::new(p.clone(), auth).with_timeout(Duration::from_secs(5)));
    }
    let t = Tap::new(config, harvester);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.threads.max(1))
        .enable_all()
        .build()?;
    let (addr, _task) = runtime.block_on(tap::serve(t.clone(), a.listen))?;
    let (stats_addr, _stats) = runtime
        .block_on(tap::serve_stats(t.clone(), a.stats_listen))
        .with_context(|| format!("binding the stats endpoint to {}", a.stats_listen))?;
    println!(
        "rexe miner: share tap on stratum+tcp://{addr} -> stratum+tcp://{pool}; {}; stats on http://{stats_addr}/stats",
        if a.no_l2 {
            "forwarding only (--no-l2)".to_string()
        } else {
            format!("harvesting for the L2 node at {}", a.l2)
        }
    );
    let stop = rexe_node::signals::stop_flag()?;
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
    runtime.shutdown_timeout(Duration::from_secs(2));
    println!("{}", serde_json::json!(t.stats()));
    Ok(())
}

#[derive(Args)]
pub struct RunArgs {
    /// bitcoind JSON-RPC address (host:port).
    #[arg(long, default_value = "127.0.0.1:18443")]
    bitcoind: String,
    /// bitcoind credentials `user:password`.
    #[arg(long)]
    bitcoind_auth: Option<String>,
    /// bitcoind cookie file (instead of --bitcoind-auth).
    #[arg(long)]
    bitcoind_cookie: Option<PathBuf>,
    /// L2 node JSON-RPC address.
    #[arg(long, default_value = "127.0.0.1:18480")]
    l2: String,
    /// L2 node credentials `user:password`.
    #[arg(long)]
    l2_auth: Option<String>,
    /// L2 node cookie file (instead of --l2-auth).
    #[arg(long)]
    l2_cookie: Option<PathBuf>,
    /// L2 address that receives the rewards of harvested blocks.
    #[arg(long)]
    payout: String,
    /// Another AuxPoW chain to merge-mine in the same aux tree (repeatable):
    /// `[http://[user:pass@]]host:port[,user:pass][,cookie=PATH][,address=ADDR][,chain-id=ID][,name=LABEL]`.
    /// With `address=` its work comes from `createauxblock ADDR`, else from `getauxblock`
    /// (paying the node's wallet). Without `chain-id=` the id is read from the node at start.
    #[arg(long = "aux-chain")]
    aux_chain: Vec<String>,
    /// Seconds an aux chain's RPC has to connect and answer each read (a chain that is down
    /// is skipped, its last work kept, and retried 5 s later).
    #[arg(long, default_value_t = 2)]
    aux_chain_timeout: u64,
    /// Where the proxy listens (point the pool's bitcoind URL here).
    #[arg(long, default_value = "127.0.0.1:8342")]
    proxy_listen: SocketAddr,
    /// More `user:password` the proxy accepts from pools (repeatable); bitcoind's own
    /// credentials (--bitcoind-auth/--bitcoind-cookie) are always accepted. The proxy checks
    /// them before reading a request, and bitcoind checks them again.
    #[arg(long = "proxy-auth")]
    proxy_auth: Vec<String>,
    /// Most open proxy connections in total.
    #[arg(long, default_value_t = 256)]
    proxy_max_connections: usize,
    /// Most open proxy connections from one IP address.
    #[arg(long, default_value_t = 128)]
    proxy_max_per_ip: usize,
    /// Seconds a pool has to send a request head (and body), and an idle keep-alive
    /// connection stays open.
    #[arg(long, default_value_t = 30)]
    proxy_timeout: u64,
    /// Watcher poll interval (`getchaintips`, which also finds stale blocks).
    #[arg(long, default_value_t = 1000)]
    watch_interval_ms: u64,
    /// bitcoind's ZMQ `hashblock` publisher (its `-zmqpubhashblock`, e.g.
    /// tcp://127.0.0.1:28332): the watcher polls at once on every new tip.
    #[arg(long)]
    zmq: Option<String>,
    /// Also serve Stratum v1 here (e.g. 127.0.0.1:3333).
    #[arg(long)]
    stratum_listen: Option<SocketAddr>,
    /// Bitcoin address the coinbase of Stratum-found Bitcoin blocks pays (required with
    /// --stratum-listen).
    #[arg(long)]
    btc_payout: Option<String>,
    /// A fixed Stratum pool difficulty (no vardiff); by default connections start at the L2
    /// target and vardiff aims at ~30 shares a minute.
    #[arg(long)]
    stratum_difficulty: Option<f64>,
    /// Most open Stratum connections in total.
    #[arg(long, default_value_t = 512)]
    stratum_max_connections: usize,
    /// Most open Stratum connections from one IP address (a farm behind one NAT needs more).
    #[arg(long, default_value_t = 64)]
    stratum_max_per_ip: usize,
    /// Seconds a Stratum connection may stay silent before it is closed.
    #[arg(long, default_value_t = 600)]
    stratum_idle_timeout: u64,
    /// Where a Stratum worker's L2 reward goes, sources tried in order: `map` (the
    /// --payout-map file), `password` (`rx=<address>`), `worker-suffix` (the worker name's
    /// last `.` part); otherwise --payout.
    #[arg(long, value_delimiter = ',', default_value = "map,password")]
    payout_sources: Vec<rexe_miner::stratum::payout::PayoutSource>,
    /// Mapping file for the `map` payout source: `worker address` per line (a worker name,
    /// or the account before its first `.`), `#` comments.
    #[arg(long)]
    payout_map: Option<PathBuf>,
}

fn creds(auth: &Option<String>, cookie: &Option<PathBuf>, what: &str) -> Result<String> {
    match (auth, cookie) {
        (Some(a), _) => Ok(a.clone()),
        (None, Some(p)) => Ok(std::fs::read_to_string(p)
            .with_context(|| format!("reading the {what} cookie {}", p.display()))?
            .trim()
            .to_string()),
        (None, None) => anyhow::bail!("give --{what}-auth or --{what}-cookie"),
    }
}

/// The `--aux-chain` chains; a chain given without `chain-id=` is asked for it now.
fn aux_chains(specs: &[String], timeout: Duration) -> Result<Vec<AuxChain>> {
    specs
        .iter()
        .map(|s| {
            let spec = AuxChainSpec::parse(s)?;
            let auth = match (&spec.auth, &spec.cookie) {
                (Some(a), _) => a.clone(),
                (None, Some(p)) => std::fs::read_to_string(p)
                    .with_context(|| {
                        format!("reading the cookie {} of {}", p.display(), spec.addr)
                    })?
                    .trim()
                    .to_string(),
                (None, None) => anyhow::bail!(
                    "--aux-chain {}: give credentials (user:pass, auth= or cookie=)",
                    spec.addr
                ),
            };
            let rpc = RpcClient::new(spec.addr.clone(), auth).with_timeout(timeout);
            let chain_id = match spec.chain_id {
                Some(id) => id,
                None => {
                    let w = match &spec.address {
                        Some(a) => rpc.call("createauxblock", serde_json::json!([a])),
                        None => rpc.call("getauxblock", serde_json::json!([])),
                    }
                    .with_context(|| {
                        format!(
                            "asking aux chain {} for its chain id (or give chain-id=)",
                            spec.addr
                        )
                    })?;
                    let id = w
                        .get("chainid")
                        .and_then(serde_json::Value::as_u64)
                        .and_then(|c| u32::try_from(c).ok())
                        .with_context(|| {
                            format!(
                                "aux chain {} reported no chainid: give chain-id=",
                                spec.addr
                            )
                        })?;
                    ChainId(id)
                }
            };
            Ok(AuxChain::new(
                spec.label(),
                rpc,
                chain_id,
                spec.address.clone(),
            ))
        })
        .collect()
}

pub fn run(cmd: MinerCmd) -> Result<()> {
    let a = match cmd {
        MinerCmd::Stats { proxy } => {
            let client = rexe_rpc::RpcClient::new(proxy.trim_start_matches("http://"), "")
                .with_timeout(Duration::from_secs(10));
            let (status, body) = client.get("/stats")?;
            anyhow::ensure!(
                status == 200,
                "{proxy}/stats answered HTTP {status}: {body}"
            );
            println!("{body}");
            return Ok(());
        }
        MinerCmd::Cpu {
            stratum,
            user,
            password,
            threads,
            shares,
            seconds,
            pace_ms,
            share_difficulty,
        } => {
            let stop = rexe_node::signals::stop_flag()?;
            let opts = rexe_miner::stratum::client::CpuOptions {
                threads,
                stop_after: shares,
                timeout: Duration::from_secs(seconds),
                pace: Duration::from_millis(pace_ms),
                stop,
                share_difficulty,
            };
            let r = rexe_miner::stratum::client::run_with(&stratum, &user, &password, &opts)
                .with_context(|| format!("mining on {stratum}"))?;
            println!(
                "accepted={} rejected={} hashes={}",
                r.accepted, r.rejected, r.hashes
            );
            return Ok(());
        }
        MinerCmd::Tap(a) => return tap(&a),
        MinerCmd::Pay(a) => return rexe_node::cli::payouts::pay(*a),
        MinerCmd::Run(a) => a,
    };
    let btc_creds = creds(&a.bitcoind_auth, &a.bitcoind_cookie, "bitcoind")?;
    let btc = RpcClient::new(a.bitcoind.clone(), btc_creds.clone());
    let l2 = RpcClient::new(a.l2.clone(), creds(&a.l2_auth, &a.l2_cookie, "l2")?);
    btc.call("getblockcount", serde_json::json!([]))
        .with_context(|| format!("cannot reach bitcoind at {}", a.bitcoind))?;
    l2.call("getblockcount", serde_json::json!([]))
        .with_context(|| format!("cannot reach the L2 node at {}", a.l2))?;
    // rexe's chain id as the L2 node reports it (a node may run with --chain-id).
    let chain_id = l2
        .call("createauxblock", serde_json::json!([a.payout]))
        .with_context(|| format!("createauxblock {} on the L2 node", a.payout))?
        .get("chainid")
        .and_then(serde_json::Value::as_u64)
        .and_then(|c| u32::try_from(c).ok())
        .map_or(ChainId::REXE, ChainId);
    let aux = aux_chains(
        &a.aux_chain,
        Duration::from_secs(a.aux_chain_timeout.max(1)),
    )?;
    let harvester = Arc::new(Harvester::with_aux_chains(
        l2,
        a.payout.clone(),
        chain_id,
        aux,
        AggregateOptions::default(),
    )?);
    for c in harvester.chains() {
        println!(
            "rexe miner: merge-mining {} (chain id {:#06x}) at {}",
            c.name,
            c.chain_id.0,
            c.rpc.addr()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    anyhow::ensure!(
        a.proxy_timeout > 0,
        "--proxy-timeout must be at least 1 second"
    );
    let mut proxy_config = rexe_miner::proxy::ProxyConfig::new(btc_creds);
    proxy_config
        .accepted_auth
        .extend(a.proxy_auth.iter().cloned());
    proxy_config.limits.max_connections = a.proxy_max_connections;
    proxy_config.limits.max_per_ip = a.proxy_max_per_ip;
    proxy_config.limits.idle_timeout = Duration::from_secs(a.proxy_timeout);
    proxy_config.limits.write_timeout = Duration::from_secs(a.proxy_timeout);
    let (addr, _task) = runtime
        .block_on(rexe_miner::proxy::serve(
            a.proxy_listen,
            a.bitcoind.clone(),
            harvester.clone(),
            proxy_config,
        ))
        .with_context(|| format!("binding the proxy to {}", a.proxy_listen))?;
    println!(
        "rexe miner: bitcoind proxy on http://{addr} -> {}; watcher every {} ms{}",
        a.bitcoind,
        a.watch_interval_ms,
        a.zmq
            .as_deref()
            .map(|z| format!(" and on ZMQ hashblock from {z}"))
            .unwrap_or_default()
    );
    if let Some(listen) = a.stratum_listen {
        let addr_str = a
            .btc_payout
            .as_deref()
            .context("--stratum-listen needs --btc-payout (the Bitcoin address blocks pay)")?;
        let chain = btc
            .call("getblockchaininfo", serde_json::json!([]))?
            .get("chain")
            .and_then(|c| c.as_str().map(str::to_owned))
            .unwrap_or_default();
        let network = match chain.as_str() {
            "main" => bitcoin::Network::Bitcoin,
            "test" => bitcoin::Network::Testnet,
            "signet" => bitcoin::Network::Signet,
            _ => bitcoin::Network::Regtest,
        };
        let btc_payout = addr_str
            .parse::<bitcoin::Address<bitcoin::address::NetworkUnchecked>>()
            .context("--btc-payout is not a Bitcoin address")?
            .require_network(network)
            .with_context(|| {
                format!("--btc-payout is not an address of bitcoind's chain ({chain})")
            })?
            .script_pubkey();
        if let Some(d) = a.stratum_difficulty {
            anyhow::ensure!(
                d.is_finite() && d > 0.0,
                "--stratum-difficulty must be positive"
            );
        }
        let s = rexe_miner::stratum::server::Stratum::with_options(
            btc.clone(),
            harvester.clone(),
            a.payout.clone(),
            btc_payout,
            rexe_miner::stratum::server::StratumOptions {
                fixed_difficulty: a.stratum_difficulty,
                limits: rexe_rpc::Limits {
                    max_connections: a.stratum_max_connections,
                    max_per_ip: a.stratum_max_per_ip,
                    idle_timeout: Duration::from_secs(a.stratum_idle_timeout.max(1)),
                    ..rexe_miner::stratum::server::StratumOptions::default().limits
                },
                payouts: rexe_miner::stratum::payout::PayoutRules {
                    sources: a.payout_sources.clone(),
                    map: match &a.payout_map {
                        Some(p) => rexe_miner::stratum::payout::PayoutRules::load_map(p)
                            .with_context(|| format!("reading --payout-map {}", p.display()))?,
                        None => Default::default(),
                    },
                },
            },
        );
        let addr = runtime
            .block_on(rexe_miner::stratum::server::serve(
                s,
                listen,
                Duration::from_millis(250),
            ))
            .with_context(|| format!("binding Stratum to {listen}"))?;
        println!("rexe miner: Stratum v1 on stratum+tcp://{addr}");
    }
    let stop = rexe_node::signals::stop_flag()?;
    let wake = a.zmq.clone().map(|endpoint| {
        let (tx, rx) = std::sync::mpsc::channel();
        runtime.spawn(rexe_miner::zmq::follow_hashblock(endpoint, tx));
        rx
    });
    let watcher = {
        let (btc, h, stop) = (btc.clone(), harvester.clone(), stop.clone());
        let interval = Duration::from_millis(a.watch_interval_ms);
        std::thread::spawn(move || Watcher::default().run_woken(btc, h, interval, stop, wake))
    };
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = watcher.join();
    runtime.shutdown_timeout(Duration::from_secs(2));
    let s = harvester
        .stats
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    println!(
        "harvested: on-chain={} premature={} stale={}",
        s.on_chain, s.premature, s.stale
    );
    Ok(())
}
