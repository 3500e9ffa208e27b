//! An embedded Bitcoin regtest node for `rexe devnet` and the tests: Bitcoin Core's regtest
//! genesis, block and transaction validation with libbitcoinconsensus, a mempool with Core's
//! reject reasons and BIP125, and bitcoind's JSON-RPC over HTTP on loopback with cookie
//! auth, so the rest of rexe talks to it exactly as to bitcoind.
//!
//! The Electrum protocol 1.4 server ([`electrum`]) listens on loopback next to the RPC,
//! bounded per client and in total ([`electrum::ElectrumLimits`], set in [`Services`]) and
//! answering scripthash queries from an index kept per block ([`index`]); ZMQ publishers
//! ([`zmq`]) where configured, as bitcoind's `-zmqpub*` options.
//!
//! Blocks persist in `DATADIR/blocks.dat` (length-prefixed records, appended and synced per
//! block); a torn final record left by a crash is cut at the next start (with a warning, the
//! bytes kept in `blocks.dat.torn`) so later blocks are appended after the last whole one.
//!
//! # Standardness policy
//!
//! Like Core's regtest (`-acceptnonstdtxn=0`), the mempool admits only standard transactions
//! ([`policy`], Bitcoin Core v28's default policy). A refused transaction gets RPC error -26
//! with Core's reason as the message (`sendrawtransaction`; `testmempoolaccept`'s
//! `reject-reason`; Electrum's `blockchain.transaction.broadcast`), the first rule broken in
//! Core's order:
//!
//! | reason | rule |
//! |---|---|
//! | `version` | version outside 1..=3 (3 is TRUC) |
//! | `tx-size` | weight above 400,000 |
//! | `scriptsig-size` | a scriptSig over 1,650 bytes |
//! | `scriptsig-not-pushonly` | a scriptSig with an opcode other than a push |
//! | `scriptpubkey` | an output that is not P2PK, P2PKH, P2SH, bare multisig of at most 3 keys, `OP_RETURN` followed by pushes, P2WPKH, P2WSH, P2TR, pay-to-anchor or another witness program of version 1-16 |
//! | `datacarrier` | `OP_RETURN` outputs whose scripts take more than 100,000 bytes in all (any number of them, as since Core 30) |
//! | `dust` | an output (other than `OP_RETURN`) below its dust threshold at 3,000 sat/kvB: P2PKH 546, P2SH 540, P2WPKH 294, P2WSH and P2TR 330 sats |
//! | `tx-size-small` | under 65 bytes without witness — applied even with the switch, as in Core |
//! | `bad-txns-nonstandard-inputs` | spends a non-standard output, an unknown witness version, or P2SH whose redeem script has more than 15 sigops |
//!
//! The switch [`RegtestConfig::accept_nonstd_txn`] (`rexe regtest --acceptnonstdtxn`) turns it
//! off, as bitcoind's `-acceptnonstdtxn=1`. Blocks (`submitblock`, `generatetoaddress`,
//! `generateblock`) are never subject to it. Core 29's ephemeral dust is not followed (no
//! packages); see [`policy`] for what is not implemented.

pub mod bech32_errors;
pub mod chain;
pub mod core_json;
pub mod electrum;
pub mod fees;
pub mod index;
pub mod json_text;
pub mod locks;
pub mod mempool;
pub mod node;
pub mod policy;
pub mod rest;
pub mod rpc;
pub mod script;
pub mod stats;
pub mod tx_check;
pub mod wallet;
pub mod zmq;

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bitcoin::hex::DisplayHex;
use bitcoin::CompactTarget;

/// Regtest's proof-of-work limit (Core's `powLimit` on regtest).
pub const REGTEST_BITS: u32 = 0x207f_ffff;

/// How to start a node.
#[derive(Clone, Debug)]
pub struct RegtestConfig {
    /// Where blocks and the cookie live (`None`: in memory, cookie in a temp file).
    pub datadir: Option<PathBuf>,
    /// RPC listen address; port 0 picks a free port.
    pub rpc_bind: SocketAddr,
    /// Compact target every block must meet. Harder than regtest's default makes shares
    /// that miss it (premature work) common, e.g. `0x1f0fffff` (1 in 2^12 hashes).
    pub bits: u32,
    /// Admit non-standard transactions to the mempool, as bitcoind's `-acceptnonstdtxn=1`.
    /// Off by default: the mempool applies Core's standardness policy ([`policy`]).
    pub accept_nonstd_txn: bool,
    /// `user:password` accepted besides the cookie, as bitcoind's `-rpcuser`/`-rpcpassword`.
    pub rpc_auth: Option<String>,
    /// Serve bitcoind's REST interface on the RPC port, as `-rest=1` ([`rest`]): public
    /// chain data without authentication. Off by default, as in Core.
    pub rest: bool,
}

impl Default for RegtestConfig {
    fn default() -> Self {
        RegtestConfig {
            datadir: None,
            rpc_bind: "127.0.0.1:0".parse().expect("valid"),
            bits: REGTEST_BITS,
            accept_nonstd_txn: false,
            rpc_auth: None,
            rest: false,
        }
    }
}

/// Where the node's servers beyond the RPC listen.
#[derive(Clone, Debug)]
pub struct Services {
    /// The Electrum server (port 0 picks a free one).
    pub electrum: SocketAddr,
    /// ZMQ publishers, as bitcoind's `-zmqpub<topic>=<address>`; none by default.
    pub zmq: Vec<zmq::ZmqPub>,
    /// What the Electrum server allows its clients.
    pub electrum_limits: electrum::ElectrumLimits,
    /// What the JSON-RPC server allows its clients (connections, request-head deadline,
    /// body size, batch size).
    pub rpc_limits: rexe_rpc::Limits,
}

impl Default for Services {
    fn default() -> Self {
        Services {
            electrum: SocketAddr::from(([127, 0, 0, 1], 0)),
            zmq: Vec::new(),
            electrum_limits: electrum::ElectrumLimits::default(),
            rpc_limits: rpc::default_limits(),
        }
    }
}

/// A running node.
pub struct RegtestNode {
    /// Where the RPC listens.
    pub rpc_addr: SocketAddr,
    /// Where the Electrum server listens.
    pub electrum_addr: SocketAddr,
    /// `__cookie__:<hex>` credentials.
    pub cookie: String,
    /// Cookie file path.
    pub cookie_path: PathBuf,
    /// The ZMQ publishers with their bound endpoints.
    pub zmq: Vec<zmq::ZmqPub>,
    /// Shared state (also reachable in-process).
    pub shared: Arc<rpc::Shared>,
    runtime: Option<tokio::runtime::Runtime>,
    _tmp: Option<tempdir::TempCookieDir>,
}

mod tempdir {
    /// A private directory for the cookie of an in-memory node, removed on drop.
    pub struct TempCookieDir(pub std::path::PathBuf);
    impl Drop for TempCookieDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl RegtestNode {
    /// Starts the node, its RPC server and its Electrum server (on a free loopback port).
    pub fn start(cfg: RegtestConfig) -> std::io::Result<RegtestNode> {
        Self::start_with(cfg, Services::default())
    }

    /// Starts the node with the Electrum server on `electrum_bind` (port 0 picks one).
    pub fn start_with_electrum(
        cfg: RegtestConfig,
        electrum_bind: SocketAddr,
    ) -> std::io::Result<RegtestNode> {
        let services = Services {
            electrum: electrum_bind,
            ..Services::default()
        };
        Self::start_with(cfg, services)
    }

    /// Starts the node with its Electrum server and ZMQ publishers as `services` says.
    pub fn start_with(cfg: RegtestConfig, services: Services) -> std::io::Result<RegtestNode> {
        let electrum_bind = services.electrum;
        let (dir, tmp) = match &cfg.datadir {
            Some(d) => {
                std::fs::create_dir_all(d)?;
                (d.clone(), None)
            }
            None => {
                let mut r = [0u8; 8];
                std::fs::File::open("/dev/urandom")?.read_exact(&mut r)?;
                let d =
                    std::env::temp_dir().join(format!("rexe-regtest-{}", r.to_lower_hex_string()));
                std::fs::create_dir_all(&d)?;
                (d.clone(), Some(tempdir::TempCookieDir(d)))
            }
        };
        let mut node = node::Node::open(
            cfg.datadir.as_deref(),
            CompactTarget::from_consensus(cfg.bits),
        )?;
        node.mempool.policy.require_standard = !cfg.accept_nonstd_txn;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("regtest-rpc")
            .build()?;
        let mut zmq_bound = Vec::new();
        if !services.zmq.is_empty() {
            let (publisher, bound) = runtime
                .block_on(zmq::bind(&services.zmq))
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::AddrNotAvailable, e))?;
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            node.notify = Some(tx);
            runtime.spawn(publisher.run(rx));
            zmq_bound = bound;
        }
        let (cookie, cookie_path) = rexe_rpc::cookie::write(&dir)?;
        let shared = Arc::new(rpc::Shared {
            node: Mutex::new(node),
            rpc_waiting: Default::default(),
            cookie: cookie.clone(),
            rpc_auth: cfg.rpc_auth.clone(),
            stop: tokio::sync::Notify::new(),
            stopping: Default::default(),
            zmq: zmq_bound.clone(),
            limits: services.rpc_limits.clone(),
        });
        let listener = runtime.block_on(tokio::net::TcpListener::bind(cfg.rpc_bind))?;
        let rpc_addr = listener.local_addr()?;
        let app = rpc::router(shared.clone(), cfg.rest);
        let stop = shared.clone();
        let limits = services.rpc_limits.clone();
        runtime.spawn(async move {
            tokio::select! {
                () = rexe_rpc::serve_http("regtest-rpc", listener, app, limits) => {}
                () = stop.stop.notified() => {}
            }
        });
        let el = runtime.block_on(tokio::net::TcpListener::bind(electrum_bind))?;
        let electrum_addr = el.local_addr()?;
        runtime.spawn(electrum::serve(
            el,
            shared.clone(),
            services.electrum_limits,
        ));
        tracing::info!(rpc = %rpc_addr, electrum = %electrum_addr, "regtest node running");
        Ok(RegtestNode {
            rpc_addr,
            electrum_addr,
            cookie,
            cookie_path,
            zmq: zmq_bound,
            shared,
            runtime: Some(runtime),
            _tmp: tmp,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn rpc_url(&self) -> String {
        format!("http://{}", self.rpc_addr)
    }

    /// `tcp://127.0.0.1:PORT` (plain TCP, as electrum-client's `tcp://` scheme).
    pub fn electrum_url(&self) -> String {
        format!("tcp://{}", self.electrum_addr)
    }

    /// Whether a client called the `stop` RPC (the servers are then stopping).
    pub fn stop_requested(&self) -> bool {
        self.shared
            .stopping
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stops the server and removes the cookie file.
    pub fn shutdown(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        self.shared.stop.notify_waiters();
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(std::time::Duration::from_secs(2));
        }
        let _ = std::fs::remove_file(&self.cookie_path);
    }
}

impl Drop for RegtestNode {
    fn drop(&mut self) {
        self.stop_inner();
    }
}
