//! `rexe`: the command-line entry point. Each subcommand lives in its own module; this file
//! only parses arguments and sets up logging.

mod miner_cli;

use anyhow::Result;
use rexe_bench as bench;
use rexe_devnet as devnet;
use rexe_node as node;
use rexe_node::cli::{btc_wallet, contract as contract_cli, key as wallet_cli, psbt as psbt_cmd};
use rexe_node::peg;
use rexe_node::signals;

/// mimalloc: the executor allocates and frees millions of small values a second (state
/// rows, relays, VM values), where it is markedly faster than glibc's malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Backs mimalloc's arenas with transparent huge pages where the kernel offers them
/// (`madvise` mode): the shard caches are hash maps of hundreds of MB probed at random,
/// and 2 MiB pages spare most of the TLB misses. `MIMALLOC_ALLOW_LARGE_OS_PAGES=0` in the
/// environment turns it off.
// The option is set through mimalloc's C API: the `mimalloc` crate has no safe setter.
#[allow(unsafe_code)]
fn allocator_setup() {
    let env_set = ["MIMALLOC_ALLOW_LARGE_OS_PAGES", "MIMALLOC_LARGE_OS_PAGES"]
        .iter()
        .any(|v| std::env::var_os(v).is_some());
    if !env_set {
        // SAFETY: sets a global allocator option; mimalloc options are atomics and may be
        // set at any time.
        unsafe {
            libmimalloc_sys::mi_option_set_enabled(libmimalloc_sys::mi_option_large_os_pages, true)
        };
    }
}
use clap::{Parser, Subcommand};

/// rexe: a Bitcoin layer-2 sidecar (sharded parallel chain, merge mining, custodian-free peg).
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything on one machine: an L2 chain producing blocks with demo transfers.
    Devnet(devnet::DevnetArgs),
    /// One extra L2 node of `rexe devnet --nodes` (started by it).
    #[command(hide = true, name = "devnet-node")]
    DevnetNode(devnet::cluster::DevnetNodeArgs),
    /// Run an L2 node with JSON-RPC.
    Node(node::NodeArgs),
    /// Merge mining next to a pool: bitcoind proxy + watcher feeding the L2 node.
    #[command(subcommand)]
    Miner(miner_cli::MinerCmd),
    /// Run the embedded Bitcoin regtest node alone (bitcoind JSON-RPC).
    Regtest {
        /// Data directory (blocks persist across restarts).
        #[arg(long, default_value = "rexe-regtest")]
        datadir: std::path::PathBuf,
        /// JSON-RPC port on 127.0.0.1.
        #[arg(long, default_value_t = 18443)]
        rpc_port: u16,
        /// Electrum (protocol 1.4) port on 127.0.0.1 (electrs' regtest default).
        #[arg(long, default_value_t = 60401)]
        electrum_port: u16,
        /// Compact target blocks must meet (hex); regtest's default is 207fffff.
        #[arg(long, default_value = "207fffff")]
        bits: String,
        /// Admit non-standard transactions to the mempool (bitcoind's `-acceptnonstdtxn`).
        #[arg(long)]
        acceptnonstdtxn: bool,
        /// Serve bitcoind's REST interface (`/rest/…`, no authentication) on the RPC port, as
        /// `-rest=1`: what electrs ≥ 0.11 reads blocks through.
        #[arg(long)]
        rest: bool,
        /// RPC user besides the cookie (bitcoind's `-rpcuser`; needs `--rpc-password`).
        #[arg(long, requires = "rpc_password")]
        rpc_user: Option<String>,
        /// RPC password for `--rpc-user` (bitcoind's `-rpcpassword`).
        #[arg(long, requires = "rpc_user")]
        rpc_password: Option<String>,
        /// ZMQ publishers as bitcoind's: `--zmqpubhashblock tcp://127.0.0.1:28332`.
        #[command(flatten)]
        zmq: ZmqPubArgs,
        /// Limits of the Electrum server.
        #[command(flatten)]
        electrum_limits: ElectrumLimitArgs,
        /// Limits of the JSON-RPC server.
        #[command(flatten)]
        rpc_limits: RpcLimitArgs,
    },
    /// Measure performance; `--json` prints one JSON object per run.
    Bench(bench::BenchArgs),
    /// AuxPoW tools for pool operators.
    #[command(subcommand)]
    Auxpow(AuxpowCmd),
    /// Key files for L2 accounts.
    #[command(subcommand)]
    Key(wallet_cli::KeyCmd),
    /// Call one node RPC method and print the result (like bitcoin-cli).
    Rpc(wallet_cli::RpcCallArgs),
    /// Show an account's balance and nonce (asks a node).
    Balance(wallet_cli::BalanceArgs),
    /// Sign a transfer with a key file and submit it to a node.
    Send(wallet_cli::SendArgs),
    /// The peg: peg-out orders, takes, claims, status, and the relayer and claimer agents.
    #[command(subcommand)]
    Peg(peg::PegCmd),
    /// The Bitcoin wallet (bdk, over Electrum) that also holds your L2 key.
    #[command(subcommand)]
    Wallet(btc_wallet::WalletCmd),
    /// Peg-in PSBTs: show, sign, finalize, broadcast, join several payers, combine.
    #[command(subcommand)]
    Psbt(psbt_cmd::PsbtCmd),
    /// Contracts: check, deploy, call, inspect, and run simulator scripts.
    #[command(subcommand)]
    Contract(contract_cli::ContractCmd),
}

#[derive(Subcommand)]
enum AuxpowCmd {
    /// Decode a merge-mined header or block (Namecoin serialization, hex) and verify its
    /// AuxPoW for a chain id; prints JSON.
    Check {
        /// Chain id: decimal or 0x-hex (Namecoin 1, Dogecoin 0x62, rexe 0x0b42).
        #[arg(long, default_value = "0x0b42")]
        chain_id: String,
        /// The hex.
        hex: String,
    },
}

fn parse_chain_id(s: &str) -> Result<u32> {
    let v = match s.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16)?,
        None => s.parse()?,
    };
    anyhow::ensure!(v <= 0xffff, "chain id {s} does not fit 16 bits");
    Ok(v)
}

/// Dies quietly like other Unix tools when stdout is a closed pipe (`rexe … | head`), instead
/// of panicking on the failed write: Rust ignores SIGPIPE by default. Only for the commands
/// that print and exit: the long-running services keep ignoring it, so that a closed log
/// pipe never kills a node (their sockets never raise it: Rust sends with MSG_NOSIGNAL).
// No safe API resets a signal's disposition (std has none; libc's and nix's are unsafe).
#[allow(unsafe_code)]
fn restore_sigpipe() {
    // SAFETY: resets one signal's disposition to the default, before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Runs the command; a failure is one line on stderr, `error: ` then the error and its
/// causes, and exit status 1. No backtrace even with `RUST_BACKTRACE` set: a refused
/// command is not a crash (panics still print theirs).
fn main() -> std::process::ExitCode {
    allocator_setup();
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    if !matches!(
        cli.command,
        Command::Devnet(_)
            | Command::DevnetNode(_)
            | Command::Node(_)
            | Command::Miner(_)
            | Command::Regtest { .. }
    ) {
        restore_sigpipe();
    }
    // The devnet prints what happens on stdout; its logs default to warnings only.
    let default_filter = match cli.command {
        Command::Devnet(_) => "warn",
        _ => "info,rusqlite_migration=warn,electrum_client=warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .init();
    if matches!(
        cli.command,
        Command::Devnet(_)
            | Command::DevnetNode(_)
            | Command::Node(_)
            | Command::Miner(_)
            | Command::Regtest { .. }
    ) {
        // Services hold a descriptor per client connection.
        rexe_rpc::fd::raise_fd_limit();
        // Before anything opens: a stop signal during start-up stops the service cleanly.
        signals::install()?;
    }
    match cli.command {
        Command::Devnet(a) => devnet::run(a),
        Command::DevnetNode(a) => devnet::cluster::run_node(a),
        Command::Node(a) => Ok(node::run(a)?),
        Command::Miner(c) => miner_cli::run(c),
        Command::Regtest {
            datadir,
            rpc_port,
            electrum_port,
            bits,
            acceptnonstdtxn,
            rest,
            rpc_user,
            rpc_password,
            zmq,
            electrum_limits,
            rpc_limits,
        } => {
            let cfg = rexe_regtest::RegtestConfig {
                datadir: Some(datadir),
                rpc_bind: std::net::SocketAddr::from(([127, 0, 0, 1], rpc_port)),
                bits: u32::from_str_radix(bits.trim_start_matches("0x"), 16)?,
                accept_nonstd_txn: acceptnonstdtxn,
                rpc_auth: rpc_user.zip(rpc_password).map(|(u, p)| format!("{u}:{p}")),
                rest,
            };
            let services = rexe_regtest::Services {
                electrum: std::net::SocketAddr::from(([127, 0, 0, 1], electrum_port)),
                zmq: zmq.publishers(),
                electrum_limits: electrum_limits.limits(),
                rpc_limits: rpc_limits.limits(),
            };
            let node = rexe_regtest::RegtestNode::start_with(cfg, services)?;
            println!(
                "rexe regtest: bitcoind JSON-RPC on http://{} (cookie {}), Electrum on {}; Ctrl-C, SIGTERM or the stop RPC stops",
                node.rpc_addr,
                node.cookie_path.display(),
                node.electrum_url()
            );
            for z in &node.zmq {
                println!("  ZMQ {} on {}", z.topic.name(), z.endpoint);
            }
            let stop = signals::stop_flag()?;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && !node.stop_requested() {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            node.shutdown();
            println!("stopped");
            Ok(())
        }
        Command::Bench(a) => bench::run(a),
        Command::Key(c) => wallet_cli::key(c),
        Command::Auxpow(AuxpowCmd::Check { chain_id, hex }) => {
            let id = rexe_miner::ChainId(parse_chain_id(&chain_id)?);
            let v = rexe_miner::inspect::inspect(&hex, id);
            println!("{}", serde_json::to_string_pretty(&v)?);
            anyhow::ensure!(v["valid"] == serde_json::json!(true), "AuxPoW not valid");
            Ok(())
        }
        Command::Rpc(a) => wallet_cli::rpc_call(a),
        Command::Balance(a) => wallet_cli::balance(a),
        Command::Send(a) => wallet_cli::send(a),
        Command::Peg(c) => peg::run(c),
        Command::Wallet(c) => btc_wallet::run(c),
        Command::Psbt(c) => psbt_cmd::run(c),
        Command::Contract(c) => contract_cli::run(c),
    }
}

/// bitcoind's `-zmqpub<topic>=<address>` options for `rexe regtest`.
#[derive(clap::Args)]
struct ZmqPubArgs {
    /// Publish new tip hashes (`hashblock`) on this address.
    #[arg(long, value_name = "ADDRESS")]
    zmqpubhashblock: Option<String>,
    /// Publish new tip blocks (`rawblock`).
    #[arg(long, value_name = "ADDRESS")]
    zmqpubrawblock: Option<String>,
    /// Publish txids of new mempool and block transactions (`hashtx`).
    #[arg(long, value_name = "ADDRESS")]
    zmqpubhashtx: Option<String>,
    /// Publish new mempool and block transactions (`rawtx`).
    #[arg(long, value_name = "ADDRESS")]
    zmqpubrawtx: Option<String>,
}

/// Limits of `rexe regtest`'s Electrum server; each unset one keeps its default.
#[derive(clap::Args)]
struct ElectrumLimitArgs {
    /// Open Electrum connections in total [default: 512].
    #[arg(long, value_name = "N")]
    electrum_max_connections: Option<usize>,
    /// Open Electrum connections from one IP address [default: 64].
    #[arg(long, value_name = "N")]
    electrum_max_per_ip: Option<usize>,
    /// Close an Electrum connection that sends no request for this many seconds [default: 600].
    #[arg(long, value_name = "SECS")]
    electrum_idle_timeout: Option<u64>,
    /// Disconnect an Electrum client that takes no reply bytes for this many seconds [default: 30].
    #[arg(long, value_name = "SECS")]
    electrum_write_timeout: Option<u64>,
    /// Most requests in one Electrum batch [default: 100].
    #[arg(long, value_name = "N")]
    electrum_max_batch: Option<usize>,
    /// Most reply bytes to one Electrum line (request or batch) [default: 8 MiB].
    #[arg(long, value_name = "BYTES")]
    electrum_max_reply_bytes: Option<usize>,
    /// Most scripthash subscriptions per Electrum connection [default: 20000].
    #[arg(long, value_name = "N")]
    electrum_max_subscriptions: Option<usize>,
    /// Electrum worker threads answering requests [default: one per core but one, 1 to 8].
    #[arg(long, value_name = "N")]
    electrum_workers: Option<usize>,
    /// Electrum workers' scheduling priority: `background` (Linux SCHED_IDLE: any other
    /// thread, such as the bitcoind RPC miners wait on, takes their core at once) or `normal`
    /// [default: background].
    #[arg(long, value_name = "PRIORITY")]
    electrum_priority: Option<rexe_rpc::Priority>,
}

/// Limits of `rexe regtest`'s JSON-RPC server; each unset one keeps its default.
#[derive(clap::Args)]
struct RpcLimitArgs {
    /// Open RPC connections in total [default: 256].
    #[arg(long, value_name = "N")]
    rpc_max_connections: Option<usize>,
    /// Open RPC connections from one IP address [default: 128].
    #[arg(long, value_name = "N")]
    rpc_max_per_ip: Option<usize>,
    /// Seconds for a request head (and body), and for an idle keep-alive connection [default: 30].
    #[arg(long, value_name = "SECS")]
    rpc_timeout: Option<u64>,
    /// Most requests in one JSON-RPC batch [default: 1000].
    #[arg(long, value_name = "N")]
    rpc_max_batch: Option<usize>,
}

impl RpcLimitArgs {
    fn limits(&self) -> rexe_rpc::Limits {
        let mut l = rexe_regtest::rpc::default_limits();
        if let Some(v) = self.rpc_max_connections {
            l.max_connections = v;
        }
        if let Some(v) = self.rpc_max_per_ip {
            l.max_per_ip = v;
        }
        if let Some(v) = self.rpc_timeout {
            l.idle_timeout = std::time::Duration::from_secs(v.max(1));
            l.write_timeout = l.idle_timeout;
        }
        if let Some(v) = self.rpc_max_batch {
            l.max_batch = v;
        }
        l
    }
}

impl ElectrumLimitArgs {
    fn limits(&self) -> rexe_regtest::electrum::ElectrumLimits {
        let mut l = rexe_regtest::electrum::ElectrumLimits::default();
        let secs = std::time::Duration::from_secs;
        if let Some(v) = self.electrum_max_connections {
            l.conn.max_connections = v;
        }
        if let Some(v) = self.electrum_max_per_ip {
            l.conn.max_per_ip = v;
        }
        if let Some(v) = self.electrum_idle_timeout {
            l.conn.idle_timeout = secs(v);
        }
        if let Some(v) = self.electrum_write_timeout {
            l.conn.write_timeout = secs(v);
        }
        if let Some(v) = self.electrum_max_batch {
            l.conn.max_batch = v;
        }
        if let Some(v) = self.electrum_max_reply_bytes {
            l.max_reply_bytes = v;
        }
        if let Some(v) = self.electrum_max_subscriptions {
            l.max_subscriptions = v;
        }
        if let Some(v) = self.electrum_workers {
            l.workers = v.max(1);
        }
        if let Some(v) = self.electrum_priority {
            l.priority = v;
        }
        l
    }
}

impl ZmqPubArgs {
    fn publishers(&self) -> Vec<rexe_regtest::zmq::ZmqPub> {
        use rexe_regtest::zmq::{Topic, ZmqPub};
        [
            (Topic::HashBlock, &self.zmqpubhashblock),
            (Topic::RawBlock, &self.zmqpubrawblock),
            (Topic::HashTx, &self.zmqpubhashtx),
            (Topic::RawTx, &self.zmqpubrawtx),
        ]
        .into_iter()
        .filter_map(|(topic, a)| a.clone().map(|endpoint| ZmqPub { topic, endpoint }))
        .collect()
    }
}
