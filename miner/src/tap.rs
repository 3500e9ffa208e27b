//! The Stratum share tap (`rexe miner tap`): a transparent Stratum v1 proxy between miners
//! and an unmodified pool that harvests premature L2 work from the shares going through.
//!
//! A pool shows bitcoind only full Bitcoin blocks, so shares that meet the L2's (easier)
//! target but not Bitcoin's would be lost; the tap sees them all. Each miner connection gets
//! its own connection to the pool, and every line goes through byte for byte, in both
//! directions, as soon as it is complete: the tap forwards the raw line and parses a copy.
//!
//! Per connection a follower task (fed by a bounded channel, off the forwarding path; by
//! default on a thread of the followers' own at a lower priority that forwarding threads
//! preempt, see [`TapConfig::follow_priority`]) tracks
//! what a share needs: the `mining.subscribe` reply (extranonce1, extranonce2 size, matched
//! to its request by id), `mining.set_extranonce`, the BIP310 mask of the
//! `mining.configure` reply (or `mining.set_version_mask`), `mining.set_difficulty` and the
//! last [`TapConfig::max_jobs`] `mining.notify` jobs (each with the extranonce in force when
//! it arrived). On every `mining.submit` it rebuilds the coinbase
//! (`coinb1 ‖ extranonce1 ‖ extranonce2 ‖ coinb2`) and the header with
//! [`Job`](crate::stratum::job::Job) (the code rexe's own server and CPU miner use), looks
//! for rexe's merged-mining tag (`fabe6d6d`) in the coinbase, and when the header hash meets
//! the L2 target, hands coinbase, merkle branch and header to a harvest thread that builds
//! the AuxPoW and submits it with `submitauxblock` through [`Harvester::harvest_parts`].
//!
//! The tap learns the L2 target by polling the L2 node's `createauxblock`. The work a
//! coinbase commits to was handed out to the pool's template source (`rexe miner run`'s
//! proxy or Stratum server), not to the tap: a tree of size 1 has the L2 block hash as its
//! root, which is all `submitauxblock` needs; the node answers -8 "block hash unknown" once
//! its tip moved (counted as `stale_l2`). An aggregated tree (several chains) does not show
//! rexe's leaf: with [`TapConfig::aux_proxy`] such shares (meeting the L2 target) go to the
//! proxy that built the tree (`submitauxshare`), which seals every chain they meet the
//! target of; without it they are counted and left alone.
//!
//! Fail-open: a down L2 node, a full channel, a share that does not parse never stop or
//! delay a line. Bounded: line length, jobs and pending requests per connection, events
//! queued per connection (count and bytes), harvests queued, connections in total and per IP.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bitcoin::hex::DisplayHex;
use bitcoin::pow::Target;
use bitcoin::Transaction;
use rexe_rpc::client::RpcClient;
use serde_json::{json, Value};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::aggregate::{parse_work, AuxWork};
use crate::auxpow::find_commitment;
use crate::harvest::Source;
use crate::proxy::{Harvester, MAX_COINBASE_SCRIPT_SIG, REXE_LABEL};
use crate::stratum::job::Job;
use crate::stratum::protocol::{self, ConfigureResult, ServerMessage, SubscribeResult};

/// Longest line taken from either side by default (a `mining.notify` with a 32-deep
/// branch and a large coinbase is a few KiB).
pub const MAX_LINE: usize = 64 * 1024;
/// Jobs kept per connection by default.
pub const MAX_JOBS: usize = 16;
/// Requests awaiting their reply kept per connection (older ones are forgotten).
const MAX_PENDING: usize = 256;
/// Lines queued for one connection's follower; more are not followed (still forwarded).
const EVENT_QUEUE: usize = 512;
/// Bytes of lines queued for one connection's follower, at most.
const EVENT_BYTES: usize = 256 * 1024;
/// Shares meeting the L2 target queued for the harvest thread.
const HARVEST_QUEUE: usize = 1024;
/// At most one log line per this interval for a recurring condition.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Why the tap cannot start.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    /// The pool address is not `stratum+tcp://HOST:PORT` or `HOST:PORT`.
    #[error("pool {0:?}: expected stratum+tcp://HOST:PORT or HOST:PORT")]
    PoolAddress(String),
    /// The listening socket could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// One side of a tapped connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The miner (lines from it go to the pool).
    Miner,
    /// The pool (lines from it go to the miner).
    Pool,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Miner => "miner",
            Side::Pool => "pool",
        })
    }
}

/// Why one tapped connection ended early.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// The pool could not be reached (the miner's connection is closed).
    #[error("pool {pool} unreachable: {reason}")]
    PoolUnreachable {
        /// The pool's address.
        pool: String,
        /// Why.
        reason: String,
    },
    /// A side sent a line longer than the limit: both connections are closed.
    #[error("the {side} sent a line over {max} bytes")]
    LineTooLong {
        /// Who sent it.
        side: Side,
        /// The limit.
        max: usize,
    },
    /// Reading from or writing to a side failed (reset, slow reader).
    #[error("{side}: {source}")]
    Io {
        /// The side.
        side: Side,
        /// The error.
        source: std::io::Error,
    },
}

/// `stratum+tcp://HOST:PORT` or `HOST:PORT` as `HOST:PORT`.
pub fn parse_pool(s: &str) -> Result<String, TapError> {
    let bad = || TapError::PoolAddress(s.to_string());
    let rest = match s.split_once("://") {
        Some(("stratum+tcp", rest)) => rest,
        Some(_) => return Err(bad()),
        None => s,
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || rest.contains('/') || port.parse::<u16>().is_err() {
        return Err(bad());
    }
    Ok(rest.to_string())
}

/// How the tap runs.
#[derive(Clone, Debug)]
pub struct TapConfig {
    /// The pool, `HOST:PORT`.
    pub pool: String,
    /// Connections in total and per IP, write timeout (a side that does not take a line
    /// within it is dropped, with its peer), longest line (`max_request`).
    pub limits: rexe_rpc::Limits,
    /// How long connecting to the pool may take.
    pub connect_timeout: Duration,
    /// Jobs kept per connection (shares of older jobs are not harvested).
    pub max_jobs: usize,
    /// How often the L2 target is refreshed (`createauxblock`).
    pub l2_poll: Duration,
    /// The proxy that built the pool's aux tree when the pool merge-mines several chains
    /// through it (`rexe miner run --aux-chain`): shares committing to an aggregated tree
    /// and meeting the L2 target go to its `submitauxshare`, which seals every chain whose
    /// target they meet. `None`: such shares are skipped (`aggregated_tree`).
    pub aux_proxy: Option<RpcClient>,
    /// A command run through `sh -c` whenever the L2 tip changes, `%s` replaced by the new
    /// tip's hash (as bitcoind's `-blocknotify`). A pool's job commits to one L2 block, so
    /// once that block is sealed the job's shares are `stale_l2` until the pool takes new
    /// work; pointed at the pool's work-update hook (ckpool: `notifier -n NAME -s DIR`) it
    /// makes the pool commit to the new tip at once instead of at its next refresh.
    pub pool_notify: Option<String>,
    /// Where each L2 block sealed here is recorded with the worker whose share sealed it
    /// and the rxBTC address the operator's payout rules give that worker (JSON lines,
    /// appended and synced): the block reward itself goes to whoever the pool's template
    /// committed to (the proxy's `--payout`), and the operator pays workers from it.
    pub payout_ledger: Option<std::path::PathBuf>,
    /// The payout rules for the ledger (as `rexe miner run`'s Stratum server uses them).
    pub payout_rules: crate::stratum::payout::PayoutRules,
    /// Where shares are followed: [`Priority::Low`](rexe_rpc::Priority) (the default), on a
    /// thread of the followers' own at nice +10, which forwarding threads preempt but which
    /// still gets about a tenth of a busy core; `Normal`, on the forwarding runtime's
    /// threads; `Background`, on a thread of their own in the background scheduling class,
    /// which never delays a forwarded line but, on a host whose cores other work keeps
    /// busy, gets only what is left: events past the per-connection queue are then dropped
    /// (`events_dropped`), and with them any L2 block their shares would have sealed.
    pub follow_priority: rexe_rpc::Priority,
}

impl TapConfig {
    /// Defaults for `pool`: 4,096 connections (also per IP: miners of a farm share one
    /// address), lines up to [`MAX_LINE`], 30 s write timeout, [`MAX_JOBS`] jobs, L2
    /// polled every second.
    pub fn new(pool: impl Into<String>) -> TapConfig {
        TapConfig {
            pool: pool.into(),
            limits: rexe_rpc::Limits {
                max_connections: 4096,
                max_per_ip: 4096,
                max_request: MAX_LINE,
                ..rexe_rpc::Limits::line()
            },
            connect_timeout: Duration::from_secs(10),
            max_jobs: MAX_JOBS,
            l2_poll: Duration::from_secs(1),
            aux_proxy: None,
            pool_notify: None,
            payout_ledger: None,
            payout_rules: crate::stratum::payout::PayoutRules::default(),
            follow_priority: rexe_rpc::Priority::Low,
        }
    }
}

/// The tap's own counters (the L2 outcomes are the harvester's).
#[derive(Default, Debug)]
pub struct TapCounters {
    /// Miner connections accepted.
    pub connections: AtomicU64,
    /// Miner connections open now.
    pub open: AtomicU64,
    /// Miner connections closed because the pool could not be reached.
    pub pool_unreachable: AtomicU64,
    /// Lines forwarded from miners to pools.
    pub lines_from_miners: AtomicU64,
    /// Lines forwarded from pools to miners.
    pub lines_from_pools: AtomicU64,
    /// Lines forwarded that the follower could not parse (not JSON, malformed fields).
    pub unparsed: AtomicU64,
    /// Connections closed for a line over the limit.
    pub line_too_long: AtomicU64,
    /// `mining.submit` lines seen.
    pub shares: AtomicU64,
    /// Shares whose header hash met the L2 target (harvest attempted).
    pub shares_l2: AtomicU64,
    /// Shares the pool answered `true` to.
    pub pool_accepted: AtomicU64,
    /// Shares the pool refused.
    pub pool_rejected: AtomicU64,
    /// Shares not looked into: malformed fields.
    pub skipped_malformed: AtomicU64,
    /// ... for a job the tap does not know (too old, or before the tap saw the session).
    pub skipped_unknown_job: AtomicU64,
    /// ... before the subscribe reply gave the extranonce.
    pub skipped_no_extranonce: AtomicU64,
    /// ... whose coinbase does not decode.
    pub skipped_bad_coinbase: AtomicU64,
    /// ... whose coinbase carries no merged-mining tag.
    pub skipped_no_commitment: AtomicU64,
    /// ... committing to an aggregated aux tree (rexe's leaf is not in the coinbase).
    pub skipped_aggregated: AtomicU64,
    /// ... while the tap has no L2 target (L2 node down).
    pub skipped_no_l2_work: AtomicU64,
    /// Jobs whose coinbase scriptSig is over Bitcoin's 100 bytes (counted per connection).
    pub coinbase_too_long: AtomicU64,
    /// Lines not followed because a follower's queue was full (still forwarded).
    pub events_dropped: AtomicU64,
    /// Shares meeting the L2 target not harvested because the harvest queue was full.
    pub harvest_dropped: AtomicU64,
    /// Shares for an aggregated tree handed to the aux proxy (`submitauxshare`).
    pub aux_forwarded: AtomicU64,
    /// ... of which sealed some chain's block.
    pub aux_sealed: AtomicU64,
    /// ... that the proxy refused or could not be asked.
    pub aux_errors: AtomicU64,
    /// `pool_notify` runs for a new L2 tip.
    pub pool_notified: AtomicU64,
    /// ... that failed (could not start, or exited non-zero).
    pub pool_notify_failed: AtomicU64,
    /// L2 blocks recorded in the payout ledger for the sealing worker's own address.
    pub ledger_worker: AtomicU64,
    /// ... for the operator's address (the worker named none).
    pub ledger_operator: AtomicU64,
    /// ... that could not be written.
    pub ledger_failed: AtomicU64,
}

/// The tap's counters as `/stats` shows them.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct TapStats {
    /// Miner connections accepted.
    pub connections: u64,
    /// Open now.
    pub open: u64,
    /// Closed because the pool could not be reached.
    pub pool_unreachable: u64,
    /// Lines forwarded miner → pool.
    pub lines_from_miners: u64,
    /// Lines forwarded pool → miner.
    pub lines_from_pools: u64,
    /// Lines forwarded but not understood.
    pub unparsed: u64,
    /// Connections closed for an over-long line.
    pub line_too_long: u64,
    /// Shares seen.
    pub shares: u64,
    /// Shares meeting the L2 target.
    pub shares_l2: u64,
    /// Shares the pool accepted.
    pub pool_accepted: u64,
    /// Shares the pool refused.
    pub pool_rejected: u64,
    /// L2 blocks sealed by shares seen here.
    pub sealed: u64,
    /// Shares meeting the L2 target for L2 work no longer current (tip moved, or sealed).
    pub stale_l2: u64,
    /// AuxPoWs the L2 node refused, by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Jobs with a coinbase scriptSig over 100 bytes.
    pub coinbase_too_long: u64,
    /// Shares not looked into, by reason.
    pub skipped: BTreeMap<String, u64>,
    /// Lines not followed (queue full).
    pub events_dropped: u64,
    /// Harvests dropped (queue full).
    pub harvest_dropped: u64,
    /// Whether the tap has the L2 target now.
    pub l2_work: bool,
    /// Shares for an aggregated tree handed to the aux proxy: `forwarded`, `sealed` (some
    /// chain's block), `errors`.
    pub aux_proxy: BTreeMap<String, u64>,
    /// `--pool-notify` runs for new L2 tips: `run`, `failed`.
    pub pool_notify: BTreeMap<String, u64>,
    /// Payout ledger entries: `worker` (the worker's address), `operator` (it named
    /// none), `failed` (not written).
    pub payout_ledger: BTreeMap<String, u64>,
}

/// The L2 target as last polled.
#[derive(Clone, Debug)]
struct CurrentWork {
    target: Target,
}

/// A share meeting the L2 target, for the harvest thread.
struct HarvestJob {
    /// The coinbase commits to a tree of several chains: the aux proxy harvests it.
    aggregated: bool,
    leaf: [u8; 32],
    target: Target,
    coinbase: Transaction,
    branch: Vec<[u8; 32]>,
    header: bitcoin::block::Header,
    /// The worker named in the share, and its payout address by the operator's rules
    /// (`None`: the operator's).
    worker: String,
    payout: Option<String>,
}

/// The tap: configuration, counters, the L2 target and the harvest queue.
pub struct Tap {
    config: TapConfig,
    /// Counters.
    pub counters: Arc<TapCounters>,
    harvester: Option<Arc<Harvester>>,
    work: Mutex<Option<CurrentWork>>,
    harvest_tx: Option<std::sync::mpsc::SyncSender<HarvestJob>>,
    last_warn: Mutex<Vec<(&'static str, Instant)>>,
    /// The last L2 tip seen, kept while the node is down (so a restart is no new tip).
    last_tip: Mutex<Option<String>>,
    /// `pool_notify` runs: one at a time, the latest waiting tip next.
    notify: Arc<Mutex<NotifyState>>,
    /// Where the followers run (see [`Followers`]).
    followers: Followers,
}

/// The followers' own runtime: one thread at a lower priority
/// ([`rexe_rpc::Priority::Low`] or [`Background`](rexe_rpc::Priority::Background)), so
/// that following shares (parsing, rebuilding and hashing them) never holds a core or a
/// runtime worker a forwarding task is waiting for: the forwarding threads preempt it the
/// moment a line arrives. `None` (asked for with [`TapConfig::follow_priority`] `Normal`,
/// or the runtime could not start): followers run on the forwarding runtime.
struct Followers(Option<tokio::runtime::Runtime>);

impl Followers {
    fn start(priority: rexe_rpc::Priority) -> Followers {
        if priority == rexe_rpc::Priority::Normal {
            return Followers(None);
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("rexe-tap-follow")
            .on_thread_start(move || {
                if let Err(e) = priority.apply() {
                    tracing::debug!(error = %e, %priority, "tap followers keep normal priority");
                }
            })
            .build();
        match rt {
            Ok(rt) => Followers(Some(rt)),
            Err(e) => {
                tracing::warn!(error = %e, "no runtime of their own for the tap's followers");
                Followers(None)
            }
        }
    }

    fn spawn(&self, f: impl std::future::Future<Output = ()> + Send + 'static) {
        match &self.0 {
            Some(rt) => drop(rt.spawn(f)),
            None => drop(tokio::spawn(f)),
        }
    }
}

impl Drop for Followers {
    fn drop(&mut self) {
        // The tap may be dropped on an async thread, where a runtime cannot block.
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Whether a `pool_notify` command runs, and the tip to run it for next.
#[derive(Default)]
struct NotifyState {
    running: bool,
    pending: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Tap {
    /// A tap forwarding to `config.pool` and harvesting through `harvester` (its L2 node,
    /// payout for `createauxblock` and chain id); `None`: forward and count only. Starts
    /// the harvest thread.
    pub fn new(config: TapConfig, harvester: Option<Arc<Harvester>>) -> Arc<Tap> {
        let counters = Arc::new(TapCounters::default());
        let harvest_tx = harvester.clone().map(|h| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<HarvestJob>(HARVEST_QUEUE);
            let proxy = config.aux_proxy.clone();
            let ledger = config.payout_ledger.clone();
            let c = counters.clone();
            std::thread::Builder::new()
                .name("rexe-tap-harvest".into())
                .spawn(move || harvest_loop(&h, proxy.as_ref(), ledger.as_deref(), &c, rx))
                .expect("spawning the harvest thread");
            tx
        });
        Arc::new(Tap {
            counters,
            harvester,
            work: Mutex::new(None),
            harvest_tx,
            last_warn: Mutex::new(Vec::new()),
            last_tip: Mutex::new(None),
            notify: Arc::new(Mutex::new(NotifyState::default())),
            followers: Followers::start(config.follow_priority),
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &TapConfig {
        &self.config
    }

    /// Asks the L2 node for work once and keeps its target; `false` (and no target: shares
    /// are not harvested meanwhile) when the node cannot be reached or answers nonsense.
    pub fn poll_l2(&self) -> bool {
        let Some(h) = &self.harvester else {
            return false;
        };
        let got =
            h.l2.call("createauxblock", json!([h.payout]))
                .map_err(|e| e.to_string())
                .and_then(|v| {
                    let parent = v["previousblockhash"]
                        .as_str()
                        .filter(|p| p.len() == 64 && p.bytes().all(|b| b.is_ascii_hexdigit()))
                        .map(str::to_string);
                    parse_work(&v, h.chain_id).map(|w| (w, parent))
                });
        let mut cur = lock(&self.work);
        match got {
            Ok((w, parent)) => {
                if cur.is_none() {
                    tracing::info!(l2 = %h.l2.addr(), "share tap: L2 work available; harvesting shares");
                }
                *cur = Some(CurrentWork { target: w.target });
                drop(cur);
                if let Some(tip) = parent {
                    let mut last = lock(&self.last_tip);
                    let new_tip = last.as_ref().is_some_and(|l| *l != tip);
                    *last = Some(tip.clone());
                    drop(last);
                    if new_tip {
                        self.notify_pool(&tip);
                    }
                }
                true
            }
            Err(e) => {
                if cur.take().is_some() {
                    tracing::warn!(l2 = %h.l2.addr(), error = %e, "share tap: no L2 work; shares still flow but are not harvested");
                }
                false
            }
        }
    }

    /// Runs `pool_notify` for the new L2 tip `tip` (64 hex digits, checked by the caller)
    /// on its own thread. While a run is going, tips that arrive are coalesced: the latest
    /// runs next, so the pool always ends up told of the last tip.
    fn notify_pool(&self, tip: &str) {
        let Some(cmd) = self.config.pool_notify.clone() else {
            return;
        };
        {
            let mut n = lock(&self.notify);
            if n.running {
                n.pending = Some(tip.to_string());
                return;
            }
            n.running = true;
        }
        let (state, counters, first) =
            (self.notify.clone(), self.counters.clone(), tip.to_string());
        let spawned = std::thread::Builder::new()
            .name("rexe-tap-notify".into())
            .spawn(move || {
                let mut tip = first;
                loop {
                    let counter = match run_notify(&cmd.replace("%s", &tip), NOTIFY_TIMEOUT) {
                        Ok(()) => &counters.pool_notified,
                        Err(e) => {
                            tracing::warn!(error = %e, tip, "share tap: --pool-notify failed");
                            &counters.pool_notify_failed
                        }
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    let mut n = lock(&state);
                    match n.pending.take() {
                        Some(next) => tip = next,
                        None => {
                            n.running = false;
                            return;
                        }
                    }
                }
            });
        if spawned.is_err() {
            self.counters
                .pool_notify_failed
                .fetch_add(1, Ordering::Relaxed);
            lock(&self.notify).running = false;
        }
    }

    fn target(&self) -> Option<Target> {
        lock(&self.work).as_ref().map(|w| w.target)
    }

    /// The counters, with the harvester's L2 outcomes.
    pub fn stats(&self) -> TapStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut s = TapStats {
            connections: get(&c.connections),
            open: get(&c.open),
            pool_unreachable: get(&c.pool_unreachable),
            lines_from_miners: get(&c.lines_from_miners),
            lines_from_pools: get(&c.lines_from_pools),
            unparsed: get(&c.unparsed),
            line_too_long: get(&c.line_too_long),
            shares: get(&c.shares),
            shares_l2: get(&c.shares_l2),
            pool_accepted: get(&c.pool_accepted),
            pool_rejected: get(&c.pool_rejected),
            coinbase_too_long: get(&c.coinbase_too_long),
            events_dropped: get(&c.events_dropped),
            harvest_dropped: get(&c.harvest_dropped),
            l2_work: self.target().is_some(),
            ..TapStats::default()
        };
        for (k, a) in [
            ("forwarded", &c.aux_forwarded),
            ("sealed", &c.aux_sealed),
            ("errors", &c.aux_errors),
        ] {
            s.aux_proxy.insert(k.to_string(), get(a));
        }
        for (k, a) in [("run", &c.pool_notified), ("failed", &c.pool_notify_failed)] {
            s.pool_notify.insert(k.to_string(), get(a));
        }
        for (k, a) in [
            ("worker", &c.ledger_worker),
            ("operator", &c.ledger_operator),
            ("failed", &c.ledger_failed),
        ] {
            s.payout_ledger.insert(k.to_string(), get(a));
        }
        for (k, a) in [
            ("malformed", &c.skipped_malformed),
            ("unknown_job", &c.skipped_unknown_job),
            ("no_extranonce", &c.skipped_no_extranonce),
            ("bad_coinbase", &c.skipped_bad_coinbase),
            ("no_commitment", &c.skipped_no_commitment),
            ("aggregated_tree", &c.skipped_aggregated),
            ("no_l2_work", &c.skipped_no_l2_work),
        ] {
            s.skipped.insert(k.to_string(), get(a));
        }
        if let Some(h) = &self.harvester {
            let hs = lock(&h.stats);
            s.stale_l2 = hs.stale_l2;
            s.rejected = hs.rejected.iter().map(|(k, v)| (k.clone(), *v)).collect();
            s.sealed = hs.chains.get(REXE_LABEL).map_or(0, |c| c.sealed);
        }
        s
    }

    /// Whether to log recurring condition `what` now (at most once per [`WARN_EVERY`]).
    fn rate_limited(&self, what: &'static str) -> bool {
        let mut last = lock(&self.last_warn);
        match last.iter_mut().find(|(w, _)| *w == what) {
            Some((_, t)) if t.elapsed() < WARN_EVERY => false,
            Some((_, t)) => {
                *t = Instant::now();
                true
            }
            None => {
                last.push((what, Instant::now()));
                true
            }
        }
    }

    /// Serves one miner: connects to the pool and forwards both ways until either ends.
    pub async fn serve_conn(self: Arc<Self>, miner: TcpStream) -> Result<(), ConnError> {
        let c = &self.counters;
        c.connections.fetch_add(1, Ordering::Relaxed);
        c.open.fetch_add(1, Ordering::Relaxed);
        struct Open<'a>(&'a AtomicU64);
        impl Drop for Open<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        let _open = Open(&c.open);
        let pool = match tokio::time::timeout(
            self.config.connect_timeout,
            TcpStream::connect(&self.config.pool),
        )
        .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(self.unreachable(e.to_string())),
            Err(_) => return Err(self.unreachable("connect timed out".into())),
        };
        let _ = miner.set_nodelay(true);
        let _ = pool.set_nodelay(true);
        let (mr, mw) = miner.into_split();
        let (pr, pw) = pool.into_split();
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let queued = Arc::new(AtomicUsize::new(0));
        self.followers
            .spawn(Follower::new(self.clone()).run(rx, queued.clone()));
        let up = self.pump(Side::Miner, mr, pw, (tx.clone(), queued.clone()));
        let down = self.pump(Side::Pool, pr, mw, (tx, queued));
        tokio::pin!(up, down);
        // A miner that closes its side half-closes the pool's (replies still come back); a
        // pool that closes, or any error, ends both.
        tokio::select! {
            r = &mut up => match r {
                Ok(()) => down.await,
                Err(e) => Err(e),
            },
            r = &mut down => r,
        }
    }

    fn unreachable(&self, reason: String) -> ConnError {
        self.counters
            .pool_unreachable
            .fetch_add(1, Ordering::Relaxed);
        if self.rate_limited("pool unreachable") {
            tracing::warn!(pool = %self.config.pool, %reason, "share tap: pool unreachable; closing the miner's connection");
        }
        ConnError::PoolUnreachable {
            pool: self.config.pool.clone(),
            reason,
        }
    }

    /// Forwards `from`'s lines to `to` unchanged, a copy of each to the follower first (so
    /// a request is always followed before its reply). Consecutive lines already buffered
    /// go out in one write. Ends on EOF (after half-closing `to`), error or a long line.
    async fn pump(
        &self,
        side: Side,
        from: OwnedReadHalf,
        mut to: OwnedWriteHalf,
        (events, queued): (mpsc::Sender<Event>, Arc<AtomicUsize>),
    ) -> Result<(), ConnError> {
        let mut reader = BufReader::with_capacity(16 * 1024, from);
        let max = self.config.limits.max_request;
        let wt = self.config.limits.write_timeout;
        let lines = match side {
            Side::Miner => &self.counters.lines_from_miners,
            Side::Pool => &self.counters.lines_from_pools,
        };
        let io = |source| ConnError::Io { side, source };
        let mut out: Vec<u8> = Vec::with_capacity(1024);
        let mut line: Vec<u8> = Vec::with_capacity(512);
        loop {
            line.clear();
            match rexe_rpc::read_line(&mut reader, &mut line, max).await {
                Ok(rexe_rpc::LineRead::Line) => {}
                Ok(rexe_rpc::LineRead::Eof) => {
                    let _ = to.shutdown().await;
                    return Ok(());
                }
                Ok(rexe_rpc::LineRead::TooLong) => {
                    self.counters.line_too_long.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%side, max, "share tap: over-long line; closing the connection");
                    return Err(ConnError::LineTooLong { side, max });
                }
                Err(e) => return Err(io(e)),
            }
            lines.fetch_add(1, Ordering::Relaxed);
            // At most EVENT_BYTES of copies wait for the follower.
            let n = line.len();
            let sent = queued.fetch_add(n, Ordering::Relaxed) + n <= EVENT_BYTES
                && events
                    .try_send(Event {
                        side,
                        line: line.clone(),
                    })
                    .is_ok();
            if !sent {
                queued.fetch_sub(n, Ordering::Relaxed);
                self.counters.events_dropped.fetch_add(1, Ordering::Relaxed);
            }
            out.extend_from_slice(&line);
            // More complete lines already read: send them together.
            if out.len() < 64 * 1024 && reader.buffer().contains(&b'\n') {
                continue;
            }
            rexe_rpc::write_deadline(&mut to, &out, wt)
                .await
                .map_err(|e| ConnError::Io {
                    side: match side {
                        Side::Miner => Side::Pool,
                        Side::Pool => Side::Miner,
                    },
                    source: e,
                })?;
            out.clear();
        }
    }
}

/// A line on its way through, copied for the follower.
struct Event {
    side: Side,
    line: Vec<u8>,
}

/// What a request awaiting its reply asked.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Pending {
    Subscribe,
    Configure,
    Submit,
    /// `mining.authorize` of this worker, with its payout address (or the reason the
    /// worker's own choice is no address).
    Authorize(String, Result<Option<String>, String>),
}

/// Workers followed per connection (their payout addresses); more are not recorded.
const MAX_WORKERS: usize = 64;

/// A job and the extranonce in force when it arrived.
struct TapJob {
    job: Job,
    extranonce: Option<(Vec<u8>, usize)>,
}

/// One connection's Stratum state, fed every line.
struct Follower {
    tap: Arc<Tap>,
    pending: VecDeque<(String, Pending)>,
    extranonce: Option<(Vec<u8>, usize)>,
    mask: u32,
    difficulty: Option<f64>,
    jobs: VecDeque<TapJob>,
    /// Workers the pool authorized on this connection, with their payout addresses.
    workers: std::collections::HashMap<String, Option<String>>,
}

impl Follower {
    fn new(tap: Arc<Tap>) -> Follower {
        Follower {
            tap,
            pending: VecDeque::new(),
            extranonce: None,
            mask: 0,
            difficulty: None,
            jobs: VecDeque::new(),
            workers: std::collections::HashMap::new(),
        }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Event>, queued: Arc<AtomicUsize>) {
        while let Some(e) = rx.recv().await {
            queued.fetch_sub(e.line.len(), Ordering::Relaxed);
            match e.side {
                Side::Miner => self.on_miner_line(&e.line),
                Side::Pool => self.on_pool_line(&e.line),
            }
        }
    }

    fn unparsed(&self) {
        self.tap.counters.unparsed.fetch_add(1, Ordering::Relaxed);
    }

    fn expect(&mut self, id: &Value, what: Pending) {
        if id.is_null() {
            return;
        }
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back((id.to_string(), what));
    }

    fn on_miner_line(&mut self, line: &[u8]) {
        let Ok(v) = serde_json::from_slice::<Value>(line) else {
            return self.unparsed();
        };
        match v["method"].as_str() {
            Some("mining.subscribe") => self.expect(&v["id"], Pending::Subscribe),
            Some("mining.configure") => self.expect(&v["id"], Pending::Configure),
            Some("mining.authorize") => {
                let (Some(user), pass) = (v["params"][0].as_str(), v["params"][1].as_str()) else {
                    return self.unparsed();
                };
                let payout = self
                    .tap
                    .config
                    .payout_rules
                    .resolve(user, pass.unwrap_or(""))
                    .map_err(|e| e.to_string());
                self.expect(&v["id"], Pending::Authorize(user.to_string(), payout));
            }
            Some("mining.submit") => {
                self.expect(&v["id"], Pending::Submit);
                self.share(&v["params"]);
            }
            Some(_) => {}
            None => self.unparsed(),
        }
    }

    fn on_pool_line(&mut self, line: &[u8]) {
        let c = &self.tap.counters;
        let msg = match ServerMessage::parse(line) {
            Ok(m) => m,
            Err(_) => return self.unparsed(),
        };
        match msg {
            ServerMessage::Notify(n) => {
                let tj = TapJob {
                    job: Job::from_notify(&n),
                    extranonce: self.extranonce.clone(),
                };
                self.check_coinbase_len(&tj);
                self.jobs.retain(|j| j.job.id != tj.job.id);
                while self.jobs.len() >= self.tap.config.max_jobs.max(1) {
                    self.jobs.pop_front();
                }
                self.jobs.push_back(tj);
            }
            ServerMessage::SetDifficulty(d) => self.difficulty = Some(d),
            ServerMessage::SetExtranonce {
                extranonce1,
                extranonce2_size,
            } => self.extranonce = Some((extranonce1, extranonce2_size)),
            ServerMessage::Other { method, params } => {
                if method == "mining.set_version_mask" {
                    match params[0]
                        .as_str()
                        .and_then(|m| u32::from_str_radix(m, 16).ok())
                    {
                        Some(m) => self.mask = m,
                        None => self.unparsed(),
                    }
                }
            }
            ServerMessage::Response { id, result, error } => {
                let key = id.to_string();
                let Some(at) = self.pending.iter().position(|(k, _)| *k == key) else {
                    return;
                };
                let (_, what) = self.pending.remove(at).expect("found");
                match what {
                    Pending::Subscribe => match SubscribeResult::from_result(&result) {
                        Ok(r) => self.extranonce = Some((r.extranonce1, r.extranonce2_size)),
                        Err(_) => self.unparsed(),
                    },
                    Pending::Configure => {
                        if let Ok(r) = ConfigureResult::from_result(&result) {
                            self.mask = if r.version_rolling {
                                r.mask.unwrap_or(0)
                            } else {
                                0
                            };
                        }
                    }
                    Pending::Submit => {
                        if result == json!(true) && error.is_null() {
                            c.pool_accepted.fetch_add(1, Ordering::Relaxed);
                        } else {
                            c.pool_rejected.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Pending::Authorize(worker, payout) => {
                        let authorized = result == json!(true) && error.is_null();
                        if authorized && self.workers.len() < MAX_WORKERS {
                            // A worker naming an invalid address is recorded as paying the
                            // operator, with a warning: the tap forwards, it cannot refuse.
                            let payout = payout.unwrap_or_else(|e| {
                                tracing::warn!(%worker, error = %e, "share tap: worker's payout address is invalid; its blocks are recorded for the operator");
                                None
                            });
                            self.workers.insert(worker, payout);
                        }
                    }
                }
            }
        }
    }

    /// Bitcoin's 100-byte limit on the coinbase scriptSig, as this connection's coinbases
    /// come out (with a zero extranonce2).
    fn check_coinbase_len(&self, tj: &TapJob) {
        let Some((en1, en2_size)) = &tj.extranonce else {
            return;
        };
        let Some(cb) = tj.job.coinbase(en1, &vec![0u8; *en2_size]) else {
            return;
        };
        let len = cb.input.first().map_or(0, |i| i.script_sig.len());
        if len > MAX_COINBASE_SCRIPT_SIG {
            self.tap
                .counters
                .coinbase_too_long
                .fetch_add(1, Ordering::Relaxed);
            if self.tap.rate_limited("coinbase too long") {
                tracing::error!(
                    job = %tj.job.id,
                    len,
                    limit = MAX_COINBASE_SCRIPT_SIG,
                    "share tap: the pool's coinbase scriptSig is over Bitcoin's 100-byte limit: its blocks are invalid (bad-cb-length)"
                );
            }
        }
    }

    /// Rebuilds a share's header and queues it for harvest when it meets the L2 target.
    fn share(&mut self, params: &Value) {
        let c = &self.tap.counters;
        c.shares.fetch_add(1, Ordering::Relaxed);
        let count = |a: &AtomicU64| {
            a.fetch_add(1, Ordering::Relaxed);
        };
        let Ok(s) = protocol::submit_of(params, None) else {
            return count(&c.skipped_malformed);
        };
        let Some(tj) = self.jobs.iter().rev().find(|j| j.job.id == s.job_id) else {
            return count(&c.skipped_unknown_job);
        };
        // The extranonce in force when the job came; a miner that applied a later
        // `mining.set_extranonce` to it gives itself away by the extranonce2 size.
        let en = [tj.extranonce.as_ref(), self.extranonce.as_ref()]
            .into_iter()
            .flatten()
            .find(|(_, n)| *n == s.extranonce2.len());
        let Some((en1, _)) = en else {
            return count(if tj.extranonce.is_none() && self.extranonce.is_none() {
                &c.skipped_no_extranonce
            } else {
                &c.skipped_malformed
            });
        };
        let Some(coinbase) = tj.job.coinbase(en1, &s.extranonce2) else {
            return count(&c.skipped_bad_coinbase);
        };
        let Some(commitment) = coinbase
            .input
            .first()
            .and_then(|i| find_commitment(i.script_sig.as_bytes()))
        else {
            return count(&c.skipped_no_commitment);
        };
        let aggregated = commitment.size != Some(1);
        if aggregated && self.tap.config.aux_proxy.is_none() {
            return count(&c.skipped_aggregated);
        }
        let Some(target) = self.tap.target() else {
            return count(&c.skipped_no_l2_work);
        };
        let version = match s.version_bits {
            Some(bits) => ((tj.job.version as u32 & !self.mask) | (bits & self.mask)) as i32,
            None => tj.job.version,
        };
        let header = tj.job.header(&coinbase, s.ntime, s.nonce, version);
        let hash = header.block_hash();
        if !target.is_met_by(hash) {
            return;
        }
        c.shares_l2.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(%hash, job = %s.job_id, difficulty = ?self.difficulty, "share tap: share meets the L2 target");
        let worker = params[0].as_str().unwrap_or_default().to_string();
        let payout = self.workers.get(&worker).cloned().flatten();
        let job = HarvestJob {
            aggregated,
            leaf: commitment.root,
            target,
            coinbase,
            branch: tj.job.branch.clone(),
            header,
            worker,
            payout,
        };
        let queued = self
            .tap
            .harvest_tx
            .as_ref()
            .is_some_and(|tx| tx.try_send(job).is_ok());
        if !queued {
            count(&c.harvest_dropped);
        }
    }
}

/// Most L2 work remembered as gone (cleared when full).
const MAX_DEAD: usize = 4096;

/// The harvest thread: submits each share's AuxPoW through the harvester. Work the node
/// said it no longer has (stale L2 work) is remembered, and later shares for it are
/// counted as stale without asking the node again: a burst of shares for a stale job
/// cannot queue up RPCs in front of shares for current work.
fn harvest_loop(
    h: &Harvester,
    proxy: Option<&RpcClient>,
    ledger: Option<&std::path::Path>,
    counters: &TapCounters,
    rx: std::sync::mpsc::Receiver<HarvestJob>,
) {
    let mut dead = std::collections::HashSet::new();
    let stale = || lock(&h.stats).stale_l2;
    for j in rx {
        if j.aggregated {
            if let Some(p) = proxy {
                forward_share(p, counters, &j);
            }
            continue;
        }
        if dead.contains(&j.leaf) {
            lock(&h.stats).stale_l2 += 1;
            continue;
        }
        let mut printed = j.leaf;
        printed.reverse();
        h.expect_single(AuxWork {
            hash: j.leaf,
            hash_str: printed.to_lower_hex_string(),
            target: j.target,
        });
        let before = stale();
        let sealed = h.harvest_parts(&j.coinbase, &j.branch, j.header, Source::Premature);
        if let (true, Some(path)) = (sealed, ledger) {
            record_payout(path, h, counters, &j, &printed.to_lower_hex_string());
        }
        if !sealed && stale() > before {
            if dead.len() >= MAX_DEAD {
                dead.clear();
            }
            dead.insert(j.leaf);
        }
    }
}

/// Appends the payout ledger's entry for L2 block `l2_block`, sealed by `j`'s share.
fn record_payout(
    path: &std::path::Path,
    h: &Harvester,
    counters: &TapCounters,
    j: &HarvestJob,
    l2_block: &str,
) {
    let (counter, address) = match &j.payout {
        Some(a) => (&counters.ledger_worker, a.as_str()),
        None => (&counters.ledger_operator, h.payout.as_str()),
    };
    let entry = json!({
        "l2_block": l2_block,
        "parent": j.header.block_hash().to_string(),
        "worker": j.worker,
        "address": address,
        "to": if j.payout.is_some() { "worker" } else { "operator" },
        "time": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    });
    let written = (|| {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        f.write_all(format!("{entry}\n").as_bytes())?;
        f.sync_data()
    })();
    match written {
        Ok(()) => counter.fetch_add(1, Ordering::Relaxed),
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, l2_block, worker = %j.worker, "share tap: cannot write the payout ledger");
            counters.ledger_failed.fetch_add(1, Ordering::Relaxed)
        }
    };
}

/// Hands a share committing to an aggregated tree to the proxy that built it.
fn forward_share(proxy: &RpcClient, c: &TapCounters, j: &HarvestJob) {
    use bitcoin::consensus::encode::serialize_hex;
    c.aux_forwarded.fetch_add(1, Ordering::Relaxed);
    let branch: Vec<String> = j.branch.iter().map(|b| b.to_lower_hex_string()).collect();
    let params = json!([serialize_hex(&j.header), serialize_hex(&j.coinbase), branch]);
    match proxy.call("submitauxshare", params) {
        Ok(v) if v["sealed"] == json!(true) => {
            c.aux_sealed.fetch_add(1, Ordering::Relaxed);
        }
        Ok(_) => {}
        Err(e) => {
            c.aux_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(proxy = %proxy.addr(), error = %e, "share tap: the aux proxy did not take a share");
        }
    }
}

/// How long a `--pool-notify` command may run before it is killed (so that a hung hook
/// cannot stop later tips from being notified).
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `cmd` through `sh -c`, killing it after `timeout`.
fn run_notify(cmd: &str, timeout: Duration) -> Result<(), String> {
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start sh: {e}"))?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("exited with {status}")),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("still running after {timeout:?}: killed"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Polls the L2 node every `every` while `tap` lives (on its own thread: the RPC client
/// blocks).
fn spawn_poller(tap: Weak<Tap>, every: Duration) {
    let _ = std::thread::Builder::new()
        .name("rexe-tap-l2".into())
        .spawn(move || loop {
            let Some(t) = tap.upgrade() else { return };
            t.poll_l2();
            drop(t);
            std::thread::sleep(every);
        });
}

/// Serves the tap on `listen`: accepts miners (through a connection gate), polls the L2
/// node when harvesting. Returns the bound address and the accept task.
pub async fn serve(
    tap: Arc<Tap>,
    listen: SocketAddr,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), TapError> {
    let bind = |source| TapError::Bind {
        addr: listen,
        source,
    };
    let listener = TcpListener::bind(listen).await.map_err(bind)?;
    let addr = listener.local_addr().map_err(bind)?;
    if tap.harvester.is_some() {
        spawn_poller(Arc::downgrade(&tap), tap.config.l2_poll);
    }
    let limits = &tap.config.limits;
    let gate = rexe_rpc::ConnGate::new(limits.max_connections, limits.max_per_ip);
    let task = tokio::spawn(rexe_rpc::accept_loop(
        "tap",
        listener,
        gate,
        move |sock, peer, permit| {
            let tap = tap.clone();
            async move {
                if let Err(e) = tap.serve_conn(sock).await {
                    tracing::debug!(%peer, error = %e, "share tap: connection ended");
                }
                drop(permit);
            }
        },
    ));
    Ok((addr, task))
}

/// The counters as Prometheus text.
pub fn metrics_text(s: &TapStats) -> String {
    let mut m = rexe_rpc::metrics::Scrape::new();
    for (name, help, v) in [
        (
            "rexe_tap_connections_total",
            "Miner connections accepted.",
            s.connections,
        ),
        (
            "rexe_tap_shares_total",
            "mining.submit lines seen.",
            s.shares,
        ),
        (
            "rexe_tap_shares_l2_total",
            "Shares meeting the L2 target.",
            s.shares_l2,
        ),
        (
            "rexe_tap_sealed_total",
            "L2 blocks sealed by shares.",
            s.sealed,
        ),
        (
            "rexe_tap_stale_l2_total",
            "Shares meeting the L2 target for L2 work no longer current.",
            s.stale_l2,
        ),
        (
            "rexe_tap_coinbase_too_long_total",
            "Jobs whose coinbase scriptSig is over 100 bytes.",
            s.coinbase_too_long,
        ),
        (
            "rexe_tap_line_too_long_total",
            "Connections closed for an over-long line.",
            s.line_too_long,
        ),
        (
            "rexe_tap_pool_unreachable_total",
            "Miner connections closed because the pool was unreachable.",
            s.pool_unreachable,
        ),
    ] {
        m.counter(name, help, v as f64);
    }
    m.gauge("rexe_tap_open_connections", "Miner connections open.", s.open as f64)
        .counters(
            "rexe_tap_rejected_total",
            "AuxPoWs the L2 node refused, by reason.",
            &["reason"],
            s.rejected.iter().map(|(r, n)| (vec![r.as_str()], *n as f64)),
        )
        .counters(
            "rexe_tap_skipped_total",
            "Shares not looked into, by reason.",
            &["reason"],
            s.skipped.iter().map(|(r, n)| (vec![&**r], *n as f64)),
        )
        .counters(
            "rexe_tap_aux_proxy_shares_total",
            "Shares for an aggregated aux tree handed to the aux proxy (outcome: forwarded, sealed, errors).",
            &["outcome"],
            s.aux_proxy.iter().map(|(o, n)| (vec![&**o], *n as f64)),
        )
        .counters(
            "rexe_tap_pool_notify_total",
            "--pool-notify runs for new L2 tips (outcome: run, failed).",
            &["outcome"],
            s.pool_notify.iter().map(|(o, n)| (vec![&**o], *n as f64)),
        )
        .counters(
            "rexe_tap_payout_ledger_total",
            "L2 blocks recorded in the payout ledger (to: worker, operator, failed).",
            &["to"],
            s.payout_ledger.iter().map(|(o, n)| (vec![&**o], *n as f64)),
        );
    m.render()
}

/// Serves `GET /stats` (JSON, as `rexe miner stats` reads it) and `GET /metrics`
/// (Prometheus) on `listen`.
pub async fn serve_stats(
    tap: Arc<Tap>,
    listen: SocketAddr,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    use axum::extract::State;
    use axum::response::IntoResponse;
    async fn stats(State(t): State<Arc<Tap>>) -> axum::response::Response {
        axum::Json(json!(t.stats())).into_response()
    }
    async fn metrics(State(t): State<Arc<Tap>>) -> axum::response::Response {
        (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4",
            )],
            metrics_text(&t.stats()),
        )
            .into_response()
    }
    let app = axum::Router::new()
        .route("/stats", axum::routing::get(stats))
        .route("/metrics", axum::routing::get(metrics))
        .with_state(tap);
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(rexe_rpc::serve_http(
        "tap-stats",
        listener,
        app,
        rexe_rpc::Limits::http(),
    ));
    Ok((addr, task))
}

#[cfg(test)]
mod tests;
