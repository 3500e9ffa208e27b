//! The chain: opens the stores, recovers after a crash, connects blocks, reorganises to the
//! most-work branch, builds templates and admits transactions.
//!
//! Crash safety. `chain.sqlite` is committed (`synchronous=FULL`) at every block: a block is
//! durable once [`Chain::submit`] returns. Shard state is flushed at checkpoints, every
//! shard in its own transaction first, then `chain.sqlite` records the checkpoint height
//! last. At open, every shard ahead of the lowest shard height is rolled back with its undo
//! records, and the blocks above that height are replayed from the block log. A kill at any
//! instant therefore restarts at the last committed block with exactly the state a clean
//! replay gives.

mod anchor;
mod verify;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bitcoin::pow::Work;
use thiserror::Error;

use crate::address::{shard_of, Address};
use crate::amount::{checked_sum, Amount};
use crate::block::{Block, Header};
use crate::contract::{ContractReceipt, ContractsSystem};
use crate::encode::{decode_list, encode_list, Decode, Encode, Reader};
use crate::exec::{execute_shard, for_each_shard, BlockEnv, ExecError, ExecMode, ShardOutcome};
use crate::fee::GasPrice;
use crate::global::{
    decode_changes, encode_changes, execute_global, ConservationError, GlobalImage, GlobalOutcome,
    ItemChange,
};
use crate::hash::{merkle_root, tagged_hash, BlockHash, Hash256, Txid};
use crate::mempool::Mempool;
use crate::params::{bench_address, ChainParams, GenesisAlloc};
use crate::relay::Relay;
use crate::seal::{SealError, Sealer};
use crate::shard::ShardId;
use crate::store::{
    Account, BlockStatus, ChainDb, Checkpointer, ConnectRecord, ShardStore, StoreError,
};
use crate::system::{Call, GlobalCtx, Receipt, SystemContract, SystemId, Systems};
use crate::tx::{Payload, SignedTx, TxError};

/// Node-local settings (not consensus).
#[derive(Clone, Debug)]
pub struct ChainConfig {
    /// Executor threads (at most one per shard is used).
    pub threads: usize,
    /// Flush shard state at least every this many blocks.
    pub flush_every_blocks: u64,
    /// Flush when this many keys are dirty across shards.
    pub flush_dirty_limit: usize,
    /// Cached entries per shard (a shard that fits is loaded whole at open).
    pub cache_limit: usize,
    /// Keep a txid -> block index (for transaction status queries).
    pub txindex: bool,
    /// Store contract receipts (results, gas, errors of every micro-transaction).
    pub contract_receipts: bool,
    /// Keep contracts' `__debug.print` output in their receipts.
    pub log_contracts: bool,
    /// At open, also run SQLite's integrity check and recompute every shard's commitment
    /// from its rows (slow on big states; the default checks are always run).
    pub verify_state: bool,
    /// Transactions each shard's mempool holds before it evicts the lowest-paying.
    pub mempool_per_shard: usize,
}

impl ChainConfig {
    /// Memory one cached account takes, as the caches' hash tables hold it: a 32-byte key,
    /// the account and its write epoch (64 bytes) plus the table's control byte and spare
    /// capacity. Contract-state rows take more (keys up to 100 bytes and their values).
    pub const CACHE_BYTES_PER_ENTRY: usize = 80;

    /// The per-shard entry limit ([`ChainConfig::cache_limit`]) that keeps `shards` shards'
    /// account caches within about `bytes` in all (at least 1,024 entries per shard).
    pub fn cache_limit_for(bytes: usize, shards: usize) -> usize {
        (bytes / shards.max(1) / Self::CACHE_BYTES_PER_ENTRY).max(1024)
    }
}

impl Default for ChainConfig {
    fn default() -> Self {
        ChainConfig {
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            flush_every_blocks: 64,
            flush_dirty_limit: 2_000_000,
            cache_limit: 1_800_000,
            txindex: true,
            contract_receipts: true,
            log_contracts: false,
            verify_state: false,
            mempool_per_shard: crate::mempool::DEFAULT_SHARD_CAPACITY,
        }
    }
}

/// Why a chain could not be opened or operated.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ChainError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The data directory holds another chain.
    #[error(
        "data directory {dir} holds a different chain (parameters differ); use another --datadir"
    )]
    WrongChain {
        /// The directory.
        dir: String,
    },
    /// The data directory was made by an earlier rexe, whose blocks commit to the system
    /// contracts' state in the old encoding (whole snapshots): it cannot be replayed under
    /// the current rules.
    #[error(
        "data directory {dir} was made by an earlier rexe that committed to the peg and contract state as whole snapshots; this version commits to it item by item, a new genesis. Move the directory aside and start a new chain (devnet: delete it)"
    )]
    OldGlobalState {
        /// The directory.
        dir: String,
    },
    /// A block from our own log failed to replay: the files are damaged.
    #[error("replaying block {height} from the log failed: {reason}")]
    Replay {
        /// Height.
        height: u64,
        /// Why.
        reason: String,
    },
    /// A block was rejected.
    #[error(transparent)]
    Block(#[from] BlockError),
    /// The stored state fails its own checks at open; `file` is the one at fault.
    #[error("state check failed: {file}: {reason}")]
    CorruptState {
        /// The file (or directory) at fault.
        file: String,
        /// What is wrong.
        reason: String,
    },
}

/// Why a block is rejected. Each consensus rule has its own variant.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BlockError {
    /// Already known.
    #[error("duplicate block {0}")]
    Duplicate(BlockHash),
    /// Already known and invalid.
    #[error("block {0} is known to be invalid")]
    KnownInvalid(BlockHash),
    /// Parent not known.
    #[error("previous block {0} unknown")]
    PrevUnknown(BlockHash),
    /// Parent is invalid.
    #[error("previous block {0} is invalid")]
    InvalidAncestor(BlockHash),
    /// Wrong height for its parent.
    #[error("height {got}, expected {expected}")]
    BadHeight {
        /// Parent height + 1.
        expected: u64,
        /// Header height.
        got: u64,
    },
    /// Unknown header version.
    #[error("unsupported header version {0}")]
    BadVersion(u32),
    /// Shard order differs from the chain's.
    #[error("shard order {got}, chain has {expected}")]
    BadOrder {
        /// Chain order.
        expected: u8,
        /// Header order.
        got: u8,
    },
    /// Body has the wrong number of shard lists.
    #[error("body has {got} shard lists, expected {expected}")]
    BadShardCount {
        /// 2^order.
        expected: usize,
        /// Found.
        got: usize,
    },
    /// Difficulty bits are not what the rules give.
    #[error("bits {got:08x}, expected {expected:08x}")]
    BadBits {
        /// Required.
        expected: u32,
        /// Found.
        got: u32,
    },
    /// Time not after the median of the last 11 blocks.
    #[error("time {time} not after median time past {mtp}")]
    TimeTooOld {
        /// Header time.
        time: u64,
        /// Median time past.
        mtp: u64,
    },
    /// Time more than the allowed drift in the future.
    #[error("time {time} more than {max_future}s ahead of local time {now}")]
    TimeTooNew {
        /// Header time.
        time: u64,
        /// Local time.
        now: u64,
        /// Allowed drift.
        max_future: u64,
    },
    /// Seal fails.
    #[error(transparent)]
    BadSeal(#[from] SealError),
    /// Too many transactions in a shard.
    #[error("shard {shard} has {count} transactions, limit {limit}")]
    TooManyTxs {
        /// Shard.
        shard: ShardId,
        /// Count.
        count: usize,
        /// Limit.
        limit: usize,
    },
    /// `tx_root` does not match the body.
    #[error("tx_root mismatch")]
    BadTxRoot,
    /// `state_root` does not match execution.
    #[error("state_root mismatch: header {header}, executed {computed}")]
    BadStateRoot {
        /// In the header.
        header: Hash256,
        /// Computed.
        computed: Hash256,
    },
    /// `relay_root` does not match execution.
    #[error("relay_root mismatch: header {header}, executed {computed}")]
    BadRelayRoot {
        /// In the header.
        header: Hash256,
        /// Computed.
        computed: Hash256,
    },
    /// Execution failed (a transaction, or an overflow).
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// The global lane paid out rxBTC its contracts did not hold.
    #[error(transparent)]
    Conservation(#[from] ConservationError),
    /// The reorg would go below the undo depth.
    #[error("reorg of {depth} blocks is deeper than the undo depth {max}")]
    ReorgTooDeep {
        /// Blocks to roll back.
        depth: u64,
        /// Maximum.
        max: u64,
    },
    /// The branch forks below the latest Bitcoin-anchored block: final, whatever its work.
    #[error("branch forks at height {fork}, below the Bitcoin-anchored block at height {anchor}")]
    BelowAnchor {
        /// Height of the last block the branch shares with the active chain.
        fork: u64,
        /// Height of the latest anchored block.
        anchor: u64,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why the mempool refused a transaction.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AdmissionError {
    /// Invalid on its own (malformed, oversized, wrong network, zero amount, ...).
    #[error(transparent)]
    Invalid(#[from] TxError),
    /// Signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// Expires before the next block.
    #[error("expired: expiry height {expiry}, next block is {next_height}")]
    Expired {
        /// Expiry.
        expiry: u64,
        /// Next height.
        next_height: u64,
    },
    /// Nonce already used.
    #[error("nonce too low: {got}, account is at {expected}")]
    NonceTooLow {
        /// Account nonce.
        expected: u64,
        /// Tx nonce.
        got: u64,
    },
    /// Nonce too far ahead.
    #[error("nonce too high: {got}, account is at {expected} (max gap {max_gap})")]
    NonceTooHigh {
        /// Account nonce.
        expected: u64,
        /// Tx nonce.
        got: u64,
        /// Accepted gap.
        max_gap: u64,
    },
    /// Balance does not cover this and the sender's earlier pending transactions.
    #[error("insufficient funds: balance {balance}, needs {needed}")]
    InsufficientFunds {
        /// Balance.
        balance: Amount,
        /// Needed.
        needed: Amount,
    },
    /// Already in the pool.
    #[error("transaction {0} already in the mempool")]
    AlreadyKnown(Txid),
    /// Same sender and nonce pending, and the replacement does not raise both max fee and
    /// max tip by the minimum bump (10%, at least 1 msat/gas).
    #[error("replacement must raise max fee to at least {need_fee} and max tip to at least {need_tip} (offered {fee}, {tip})")]
    ReplacementUnderpaid {
        /// Offered max fee.
        fee: GasPrice,
        /// Offered max tip.
        tip: GasPrice,
        /// Max fee needed.
        need_fee: GasPrice,
        /// Max tip needed.
        need_tip: GasPrice,
    },
    /// Max fee below the shard's current base fee: it could not be included now.
    #[error("fee below base fee: max fee {max_fee}, shard {shard} base fee {base_fee}")]
    FeeBelowBaseFee {
        /// Offered.
        max_fee: GasPrice,
        /// The shard's base fee for the next block.
        base_fee: GasPrice,
        /// The sender's shard.
        shard: ShardId,
    },
    /// The shard's pool is full of transactions paying at least as much.
    #[error("mempool full: shard {shard} holds {capacity} transactions paying at least this tip and fee")]
    MempoolFull {
        /// The sender's shard.
        shard: ShardId,
        /// Its capacity.
        capacity: usize,
    },
    /// The system contract refused the call against the current state (it would fail and
    /// only burn its fee).
    #[error("refused by the contract: {0}")]
    Refused(crate::system::CallError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where a transaction stands (see [`Chain::tx_status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxStatus {
    /// Waiting in the mempool.
    Mempool,
    /// In a block of the active chain.
    Confirmed {
        /// The block.
        block: BlockHash,
        /// Its height.
        height: u64,
        /// Shard whose list holds it.
        shard: ShardId,
        /// Position in that list.
        position: u32,
        /// Blocks on top, counting its own.
        confirmations: u64,
    },
    /// Not known (never seen, dropped, in a block no longer active, or not indexed).
    Unknown,
}

/// What [`Chain::submit`] did with a valid block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitOutcome {
    /// Extended the active chain.
    Connected,
    /// Stored on a side branch with less work.
    SideBranch,
    /// Caused a reorg of `depth` blocks to its branch.
    Reorged {
        /// Blocks rolled back.
        depth: u64,
    },
}

#[derive(Clone, Debug)]
struct IndexEntry {
    header: Header,
    chainwork: Work,
    status: BlockStatus,
}

/// Sum of balances and in-flight relays against what was minted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SupplyReport {
    /// Height audited.
    pub height: u64,
    /// Sum of all account balances.
    pub balances: Amount,
    /// rxBTC in relays not yet executed.
    pub in_flight: Amount,
    /// rxBTC held by system contracts (peg escrows and bonds).
    pub held: Amount,
    /// Base fees burned since genesis (every shard's total).
    pub burned: Amount,
    /// Genesis allocations plus subsidies, less what was burned.
    pub expected: Amount,
}

impl SupplyReport {
    /// Whether balances + in-flight + held == genesis + subsidies − burned.
    pub fn holds(&self) -> bool {
        self.balances
            .checked_add(self.in_flight)
            .and_then(|a| a.checked_add(self.held))
            == Some(self.expected)
    }
}

/// An executed template awaiting its seal.
struct Prepared {
    hash: BlockHash,
    global: GlobalOutcome,
    outcomes: Vec<ShardOutcome>,
}

/// A block's execution: the global lane, then the shards.
struct Executed {
    global: GlobalOutcome,
    outcomes: Vec<ShardOutcome>,
}

impl Executed {
    fn state_root(&self) -> Hash256 {
        let mut leaves: Vec<Hash256> = self.outcomes.iter().map(|o| o.digest).collect();
        leaves.push(self.global.digest);
        merkle_root(&leaves)
    }

    fn relay_root(&self) -> Hash256 {
        let mut leaves: Vec<Hash256> = self.outcomes.iter().map(|o| o.relay_root).collect();
        leaves.push(self.global.relay_root);
        merkle_root(&leaves)
    }
}

/// An open chain.
pub struct Chain {
    params: ChainParams,
    config: ChainConfig,
    dir: PathBuf,
    db: ChainDb,
    shards: Vec<ShardStore>,
    /// WAL checkpoints of `chain.sqlite` (0) and the shard files (1 + shard), off this
    /// thread.
    checkpointer: Option<Checkpointer>,
    index: HashMap<BlockHash, IndexEntry>,
    active: Vec<BlockHash>,
    inbound: Vec<Vec<Relay>>,
    /// Call relays waiting for the next block's global lane.
    global_inbound: Vec<Relay>,
    /// System contracts in id order, at the tip.
    systems: Systems,
    /// Their items and the commitment to them.
    global: GlobalImage,
    mempool: Mempool,
    sealer: Arc<dyn Sealer>,
    prepared: Option<Prepared>,
    blocks_since_flush: u64,
    stats: ChainStats,
    /// Contract receipts of the last connected block (kept in memory for tools).
    last_contract_receipts: Vec<ContractReceipt>,
    /// Micro-transactions run and reverted in the last connected block.
    last_counts: (u64, u64),
    /// Items the last connected block's global lane changed.
    last_global_changes: usize,
    /// Each shard's fee market in the last connected block.
    last_fees: Vec<ShardFees>,
    /// Global-lane calls left waiting by the last connected block.
    last_global_waiting: u64,
    /// Bitcoin-anchored finality: the latest anchored active block and the seal parents of
    /// recent blocks (see `anchor.rs`).
    anchor: anchor::Anchors,
}

/// Counters since the chain was opened (for metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ChainStats {
    /// Blocks connected (replayed ones included).
    pub blocks_connected: u64,
    /// Transactions in those blocks.
    pub txs_connected: u64,
    /// Blocks rolled back.
    pub blocks_disconnected: u64,
    /// Seconds spent executing and connecting blocks.
    pub connect_secs: f64,
    /// Relays waiting for room after the last connected block (backpressure).
    pub relays_waiting: u64,
}

/// A fee estimate for one shard (see [`Chain::estimate_fee`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FeeEstimate {
    /// The shard.
    pub shard: ShardId,
    /// Base fee of the next block.
    pub base_fee: GasPrice,
    /// Base fee of each following block if pending demand keeps up.
    pub forecast: Vec<GasPrice>,
    /// Suggested tip per gas.
    pub tip: GasPrice,
    /// Transactions pending on the shard.
    pub pending: usize,
    /// Their gas limits, summed.
    pub pending_gas: u64,
}

impl FeeEstimate {
    /// A max fee that stays includable through the forecast: the highest of the forecast
    /// and twice the base fee, plus the tip.
    pub fn suggested_max_fee(&self) -> GasPrice {
        let worst = self.forecast.iter().copied().max().unwrap_or(self.base_fee);
        GasPrice::from_msat(
            worst
                .to_msat()
                .max(self.base_fee.to_msat().saturating_mul(2)),
        )
        .saturating_add(self.tip)
    }
}

/// One shard's fee market in the last connected block.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ShardFees {
    /// Base fee the block charged.
    pub base_fee: crate::fee::GasPrice,
    /// Base fee of the next block.
    pub next_base_fee: crate::fee::GasPrice,
    /// Gas the block used on the shard.
    pub gas_used: u64,
    /// Base fees burned.
    pub burned: Amount,
    /// Tips paid to the miner.
    pub tips: Amount,
    /// Inbound relays left waiting for the next block.
    pub waiting: u64,
}

/// Version of the global state's encoding and commitment: 2 = canonical items under an
/// LtHash (issue 19); 1 (no marker) = whole snapshots per block.
const GLOBAL_STATE_VERSION: u8 = 2;

fn params_fingerprint(p: &ChainParams, systems: &Systems) -> Hash256 {
    fingerprint_with(p, systems, GLOBAL_STATE_VERSION)
}

fn fingerprint_with(p: &ChainParams, systems: &Systems, global_version: u8) -> Hash256 {
    let mut b = Vec::new();
    if global_version > 1 {
        b.extend_from_slice(&[0xfc, global_version]);
    }
    {
        b.push(0xff);
        b.extend(systems.iter().map(|c| c.id().0));
        // Rules versions only when some contract has one, so older fingerprints stay valid.
        if systems.iter().any(|c| c.rules_version() != 0) {
            b.push(0xfe);
            for c in systems.iter() {
                c.rules_version().encode(&mut b);
            }
        }
    }
    b.push(p.network.magic());
    b.push(p.shard_order.get());
    p.genesis_time.encode(&mut b);
    p.pow_limit_bits.encode(&mut b);
    p.initial_subsidy.to_sat().encode(&mut b);
    p.halving_interval.encode(&mut b);
    // The fee market's consensus parameters (issue 18).
    b.push(0xfd);
    p.min_base_fee.to_msat().encode(&mut b);
    p.base_fee_change_denominator.encode(&mut b);
    p.block_gas_per_shard.encode(&mut b);
    (p.block_bytes_per_shard as u64).encode(&mut b);
    (p.block_relays_per_shard as u64).encode(&mut b);
    p.block_gas_global.encode(&mut b);
    p.max_tx_gas.encode(&mut b);
    match &p.genesis_alloc {
        GenesisAlloc::Accounts(a) => {
            b.push(0);
            for (addr, amt) in a {
                addr.0.encode(&mut b);
                amt.to_sat().encode(&mut b);
            }
        }
        GenesisAlloc::Synthetic { count, amount } => {
            b.push(1);
            count.encode(&mut b);
            amount.to_sat().encode(&mut b);
        }
    }
    tagged_hash("rexe/params", &b)
}

fn encode_relays(relays: &[Relay]) -> Vec<u8> {
    let mut v = Vec::new();
    encode_list(relays, &mut v);
    v
}

/// Encodes every shard's outbound relays, then the global lane's deferred contract relays, as
/// one list in canonical order (origin shard, emission index; the global lane last).
fn encode_outbound(outbound: &[Vec<Relay>], global_next: &[Relay]) -> Vec<u8> {
    let n: usize = outbound.iter().map(Vec::len).sum::<usize>() + global_next.len();
    // Deposits take ~56 bytes, contract calls ~200: size for the larger to avoid regrowing.
    let contract = outbound
        .iter()
        .flatten()
        .chain(global_next)
        .any(|r| matches!(r.kind, crate::relay::RelayKind::Contract(_)));
    let mut v = Vec::with_capacity(n * if contract { 200 } else { 56 } + 9);
    crate::encode::write_compact_size(&mut v, n as u64);
    for r in outbound.iter().flatten().chain(global_next) {
        r.encode(&mut v);
    }
    v
}

/// Routes relays to their target: per shard, plus the global lane's list.
fn route(relays: impl IntoIterator<Item = Relay>, n: usize) -> (Vec<Vec<Relay>>, Vec<Relay>) {
    // Shards in order, each shard's relays in emission order: canonical order per target.
    let mut inbound = vec![Vec::new(); n];
    let mut global = Vec::new();
    for r in relays {
        if r.target.is_global() {
            global.push(r);
        } else {
            inbound[r.target.index()].push(r);
        }
    }
    (inbound, global)
}

/// Writes `changes` (their new values) into the contracts they belong to, then forgets them
/// as written (they are the stored state, not new writes).
fn apply_to_contracts(systems: &mut Systems, changes: &[ItemChange]) -> Result<(), String> {
    for c in systems.iter_mut() {
        let mine: Vec<crate::system::Change> = changes
            .iter()
            .filter(|x| x.system == c.id())
            .map(|x| (x.key.clone(), x.new.clone()))
            .collect();
        if !mine.is_empty() {
            c.apply(&mine).map_err(|e| format!("{}: {e}", c.id()))?;
            c.take_changes();
        }
    }
    if let Some(x) = changes
        .iter()
        .find(|x| !systems.iter().any(|c| c.id() == x.system))
    {
        return Err(format!("a change to {}, which is not installed", x.system));
    }
    Ok(())
}

/// How [`Chain::connect`] records a block in the log.
enum Log {
    /// Replaying our own log: already recorded.
    Replay,
    /// Stored already (side branch becoming active): record it as active.
    Stored,
    /// New block: store it and record it as active in one transaction.
    New(Work),
}

impl Chain {
    /// Opens the chain in `dir` (creating genesis on first use) and recovers from any crash.
    pub fn open(
        dir: &Path,
        params: ChainParams,
        config: ChainConfig,
        sealer: Arc<dyn Sealer>,
    ) -> Result<Chain, ChainError> {
        Self::open_with_systems(dir, params, config, sealer, Vec::new())
    }

    /// Like [`Chain::open`], with system contracts installed (their initial state is the
    /// genesis global state; a data directory created with another set is refused).
    pub fn open_with_systems(
        dir: &Path,
        params: ChainParams,
        config: ChainConfig,
        sealer: Arc<dyn Sealer>,
        systems: Vec<Box<dyn SystemContract>>,
    ) -> Result<Chain, ChainError> {
        // User contracts (the registry) are part of every chain.
        let systems = Systems::new(systems);
        let global = GlobalImage::of(&systems);
        std::fs::create_dir_all(dir).map_err(StoreError::from)?;
        // `chain.sqlite` first, then the shard files: the checkpointer's numbering.
        let order = params.shard_order;
        let mut paths = vec![dir.join("chain.sqlite")];
        paths.extend(
            order
                .shards()
                .map(|s| dir.join(format!("shard-{}.sqlite", s.0))),
        );
        let existed = paths[0].exists();
        let db = ChainDb::open(&paths[0])?;
        if existed && db.tip()?.is_some() {
            Self::check_shard_files(dir, &paths[1..])?;
        }
        let mut shards = Vec::with_capacity(order.shard_count());
        for (s, path) in order.shards().zip(&paths[1..]) {
            let shard =
                ShardStore::open(path, s, params.undo_depth, config.cache_limit).map_err(|e| {
                    match e {
                        e @ StoreError::ReadOnly { .. } => ChainError::Store(e),
                        e => ChainError::CorruptState {
                            file: path.display().to_string(),
                            reason: format!("cannot open it: {e}"),
                        },
                    }
                })?;
            shards.push(shard);
        }
        let checkpointer = match Checkpointer::spawn(paths) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "no checkpoint thread: commits will checkpoint inline");
                None
            }
        };
        let mut chain = Chain {
            checkpointer,
            mempool: Mempool::with_capacity(order, config.mempool_per_shard),
            params,
            config,
            dir: dir.to_path_buf(),
            db,
            shards,
            index: HashMap::new(),
            active: Vec::new(),
            inbound: vec![Vec::new(); order.shard_count()],
            global_inbound: Vec::new(),
            systems,
            global,
            sealer,
            prepared: None,
            blocks_since_flush: 0,
            stats: ChainStats::default(),
            last_contract_receipts: Vec::new(),
            last_counts: (0, 0),
            last_global_changes: 0,
            last_fees: Vec::new(),
            last_global_waiting: 0,
            anchor: anchor::Anchors::default(),
        };
        let fp = params_fingerprint(&chain.params, &chain.systems);
        match chain.db.tip()? {
            None => chain.init_genesis(fp)?,
            Some(_) => {
                let stored = chain.db.meta("params")?;
                if stored.as_deref()
                    == Some(&fingerprint_with(&chain.params, &chain.systems, 1).0[..])
                {
                    return Err(ChainError::OldGlobalState {
                        dir: dir.display().to_string(),
                    });
                }
                if stored.as_deref() != Some(&fp.0[..]) {
                    return Err(ChainError::WrongChain {
                        dir: dir.display().to_string(),
                    });
                }
            }
        }
        chain.load_index()?;
        chain.recover()?;
        chain.load_anchor()?;
        if chain.config.verify_state {
            chain.verify_state_full()?;
        }
        chain.check_state()?;
        let warmed = for_each_shard(&mut chain.shards, chain.config.threads, ShardStore::warm);
        for w in warmed {
            w?;
        }
        Ok(chain)
    }

    fn genesis_accounts(&self) -> Vec<Vec<(Address, Amount)>> {
        let order = self.params.shard_order;
        let mut per = vec![Vec::new(); order.shard_count()];
        match &self.params.genesis_alloc {
            GenesisAlloc::Accounts(list) => {
                for (a, amt) in list {
                    per[shard_of(a, order).index()].push((*a, *amt));
                }
            }
            GenesisAlloc::Synthetic { count, amount } => {
                for i in 0..*count {
                    let a = bench_address(i);
                    per[shard_of(&a, order).index()].push((a, *amount));
                }
            }
        }
        per
    }

    fn genesis_total(&self) -> Amount {
        match &self.params.genesis_alloc {
            GenesisAlloc::Accounts(list) => {
                checked_sum(list.iter().map(|(_, a)| *a)).unwrap_or(Amount::MAX_MONEY)
            }
            GenesisAlloc::Synthetic { count, amount } => {
                amount.checked_mul(*count).unwrap_or(Amount::MAX_MONEY)
            }
        }
    }

    fn init_genesis(&mut self, fp: Hash256) -> Result<(), ChainError> {
        let per: Vec<std::sync::Mutex<Vec<(Address, Amount)>>> = self
            .genesis_accounts()
            .into_iter()
            .map(std::sync::Mutex::new)
            .collect();
        let results = for_each_shard(&mut self.shards, self.config.threads, |s| {
            let list = std::mem::take(
                &mut *per[s.id().index()]
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()),
            );
            s.init_genesis(list)
        });
        for r in results {
            r?;
        }
        let header = self.genesis_header();
        let hash = header.hash();
        let block = Block {
            txs: vec![Vec::new(); self.params.shard_order.shard_count()],
            header,
            seal: Vec::new(),
        };
        self.db.set_meta("params", &fp.0)?;
        self.db.insert_block(
            &block.header,
            &block.to_bytes(),
            block.header.work().to_be_bytes(),
            BlockStatus::Valid,
        )?;
        let items: Vec<(u8, Vec<u8>, Vec<u8>)> = self
            .systems
            .iter()
            .flat_map(|c| {
                let id = c.id().0;
                c.items().into_iter().map(move |(k, v)| (id, k, v))
            })
            .collect();
        self.db.init_global_base(&items)?;
        self.db.connect(&ConnectRecord {
            height: 0,
            hash,
            relays: &encode_relays(&[]),
            new_block: None,
            txindex: &[],
            global_changes: None,
            receipts: &[],
            contract_receipts: &[],
            block_fees: None,
        })?;
        tracing::info!(%hash, network = self.params.network.name(), "created genesis");
        Ok(())
    }

    fn genesis_header(&self) -> Header {
        let n = self.params.shard_order.shard_count();
        let mut roots: Vec<Hash256> = self.shards.iter().map(|s| s.digest()).collect();
        roots.push(self.global.digest());
        Header {
            version: 1,
            height: 0,
            prev: BlockHash::default(),
            time: self.params.genesis_time,
            bits: self.params.pow_limit_bits,
            order: self.params.shard_order,
            miner: Address::default(),
            tx_root: merkle_root(&vec![Hash256::ZERO; n]),
            relay_root: merkle_root(&vec![Hash256::ZERO; n + 1]),
            state_root: merkle_root(&roots),
        }
    }

    fn load_index(&mut self) -> Result<(), ChainError> {
        for row in self.db.index()? {
            let header = Header::from_bytes(&row.header)
                .map_err(|e| StoreError::corrupt("block header", e))?;
            self.index.insert(
                row.hash,
                IndexEntry {
                    header,
                    chainwork: Work::from_be_bytes(row.chainwork),
                    status: row.status,
                },
            );
        }
        let (tip_h, tip) = self
            .db
            .tip()?
            .ok_or_else(|| StoreError::corrupt("chain", "no tip"))?;
        let mut active = vec![BlockHash::default(); tip_h as usize + 1];
        let mut cur = tip;
        for h in (0..=tip_h).rev() {
            active[h as usize] = cur;
            cur = self
                .index
                .get(&cur)
                .ok_or_else(|| StoreError::corrupt("block index", "active block missing"))?
                .header
                .prev;
        }
        self.active = active;
        Ok(())
    }

    fn load_relays(&self, hash: BlockHash) -> Result<(Vec<Vec<Relay>>, Vec<Relay>), ChainError> {
        let n = self.params.shard_order.shard_count();
        let data = self
            .db
            .relays(hash)?
            .ok_or_else(|| StoreError::corrupt("relays", format!("missing for {hash}")))?;
        let mut r = Reader::new(&data);
        let list: Vec<Relay> =
            decode_list(&mut r, 8).map_err(|e| StoreError::corrupt("relays", e))?;
        if list
            .iter()
            .any(|r| !r.target.is_global() && r.target.index() >= n)
        {
            return Err(StoreError::corrupt("relays", "target out of range").into());
        }
        Ok(route(list, n))
    }

    /// Restores the system contracts to their state after the active block at `height`:
    /// the stored base, then the changesets of the active blocks above it. Checks that the
    /// contracts, loaded, give back exactly the items they were loaded from.
    fn restore_global(&mut self, height: u64) -> Result<(), ChainError> {
        let corrupt = |e: String| ChainError::from(StoreError::corrupt("global state", e));
        let (base, rows) = self
            .db
            .global_base()?
            .ok_or_else(|| corrupt("no base stored".into()))?;
        if base > height {
            return Err(corrupt(format!(
                "base at height {base} is above the height {height} to restore"
            )));
        }
        let mut image = GlobalImage::default();
        let base_changes: Vec<ItemChange> = rows
            .into_iter()
            .map(|(s, key, value)| ItemChange {
                system: SystemId(s),
                key,
                old: None,
                new: Some(value),
            })
            .collect();
        image.apply(&base_changes).map_err(corrupt)?;
        for h in base + 1..=height {
            let block = self.active[h as usize];
            if let Some(data) = self.db.global_changes(block)? {
                let changes = decode_changes(&data).map_err(|e| corrupt(e.to_string()))?;
                image.apply(&changes).map_err(corrupt)?;
            }
        }
        for c in self.systems.iter_mut() {
            c.load(&image.items_of(c.id()))
                .map_err(|e| corrupt(format!("{}: {e}", c.id())))?;
        }
        if let Some(stray) = image
            .system_ids()
            .into_iter()
            .find(|id| !self.systems.iter().any(|c| c.id() == *id))
        {
            return Err(corrupt(format!("items of {stray}, which is not installed")));
        }
        let reloaded = GlobalImage::of(&self.systems);
        if reloaded.digest() != image.digest() {
            return Err(corrupt(
                "the contracts loaded from the stored items do not give them back".into(),
            ));
        }
        self.global = image;
        Ok(())
    }

    /// Undoes the global lane of the block at the tip (its stored changeset, old values).
    fn undo_global(&mut self, block: BlockHash) -> Result<(), ChainError> {
        let corrupt = |e: String| ChainError::from(StoreError::corrupt("global state", e));
        let Some(data) = self.db.global_changes(block)? else {
            return Ok(());
        };
        let undo: Vec<ItemChange> = decode_changes(&data)
            .map_err(|e| corrupt(e.to_string()))?
            .iter()
            .rev()
            .map(ItemChange::reversed)
            .collect();
        self.global.apply(&undo).map_err(corrupt)?;
        apply_to_contracts(&mut self.systems, &undo).map_err(corrupt)?;
        Ok(())
    }

    fn recover(&mut self) -> Result<(), ChainError> {
        let tip = self.tip_height();
        let common = self
            .shards
            .iter()
            .map(ShardStore::height)
            .min()
            .unwrap_or(0)
            .min(tip);
        for s in &mut self.shards {
            if s.height() > common {
                tracing::info!(shard = %s.id(), from = s.height(), to = common, "rolling back shard ahead of the others");
                while s.height() > common {
                    s.undo_top()?;
                }
                s.flush()?;
            }
        }
        // Replay the log from the shards' common height.
        let tip_hash = self.active[tip as usize];
        self.active.truncate(common as usize + 1);
        (self.inbound, self.global_inbound) = self.load_relays(self.active[common as usize])?;
        self.restore_global(common)?;
        if common < tip {
            tracing::info!(from = common + 1, to = tip, "replaying blocks from the log");
        }
        for h in common + 1..=tip {
            let hash = self
                .db
                .active_hash(h)?
                .ok_or_else(|| StoreError::corrupt("active", h))?;
            let body = self
                .db
                .body(hash)?
                .ok_or_else(|| StoreError::corrupt("body", h))?;
            let block = Block::from_bytes(&body).map_err(|e| StoreError::corrupt("block", e))?;
            self.connect(&block, true, Log::Replay)
                .map_err(|e| ChainError::Replay {
                    height: h,
                    reason: e.to_string(),
                })?;
        }
        debug_assert_eq!(self.tip_hash(), tip_hash);
        Ok(())
    }

    /// Chain parameters.
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Active tip height.
    pub fn tip_height(&self) -> u64 {
        self.active.len() as u64 - 1
    }

    /// Active tip hash.
    pub fn tip_hash(&self) -> BlockHash {
        *self.active.last().expect("genesis always present")
    }

    /// Active tip header.
    pub fn tip_header(&self) -> &Header {
        &self.index[&self.tip_hash()].header
    }

    /// Cumulative work of the active chain.
    pub fn tip_work(&self) -> Work {
        self.index[&self.tip_hash()].chainwork
    }

    /// Hash of the active block at `height`.
    pub fn hash_at(&self, height: u64) -> Option<BlockHash> {
        self.active.get(height as usize).copied()
    }

    /// A stored block by hash.
    pub fn block(&self, hash: BlockHash) -> Result<Option<Block>, ChainError> {
        self.db
            .body(hash)?
            .map(|b| Block::from_bytes(&b).map_err(|e| StoreError::corrupt("block", e).into()))
            .transpose()
    }

    /// A header by hash.
    pub fn header(&self, hash: &BlockHash) -> Option<&Header> {
        self.index.get(hash).map(|e| &e.header)
    }

    /// The mempool.
    pub fn mempool(&self) -> &Mempool {
        &self.mempool
    }

    /// Relays waiting for the next block, per target shard.
    pub fn inbound(&self) -> &[Vec<Relay>] {
        &self.inbound
    }

    /// Contract calls waiting for the next block's global lane.
    pub fn global_inbound(&self) -> &[Relay] {
        &self.global_inbound
    }

    /// An installed system contract, at the tip (downcast with `as_any` for queries).
    pub fn system(&self, id: SystemId) -> Option<&dyn SystemContract> {
        self.systems.get(id)
    }

    /// Commitment to the global state at the tip.
    pub fn global_digest(&self) -> Hash256 {
        self.global.digest()
    }

    /// The receipt of a contract call made by `txid`, from the active chain: the block whose
    /// global lane ran it, its height, and the result. `None` if not run (yet).
    pub fn call_receipt(
        &self,
        txid: Txid,
    ) -> Result<Option<(BlockHash, u64, Receipt)>, StoreError> {
        for (block, contract, error) in self.db.receipts(txid)? {
            let Some(h) = self.index.get(&block).map(|e| e.header.height) else {
                continue;
            };
            if self.hash_at(h) == Some(block) {
                return Ok(Some((
                    block,
                    h,
                    Receipt {
                        txid,
                        contract: SystemId(contract),
                        error,
                    },
                )));
            }
        }
        Ok(None)
    }

    /// An account at the tip (zero balance and nonce if it never existed).
    pub fn account(&mut self, addr: &Address) -> Result<Account, StoreError> {
        let s = shard_of(addr, self.params.shard_order);
        Ok(self.shards[s.index()].get(addr)?.unwrap_or_default())
    }

    /// Per-shard row-cache figures (hits, misses, entries), in shard order.
    pub fn cache_stats(&self) -> Vec<crate::store::CacheStats> {
        self.shards.iter().map(ShardStore::cache_stats).collect()
    }

    /// Per-shard state digests at the tip.
    pub fn shard_roots(&self) -> Vec<Hash256> {
        self.shards.iter().map(ShardStore::digest).collect()
    }

    /// Every account of every shard (tests and audits: reads all state).
    pub fn all_accounts(&mut self) -> Result<Vec<(Address, Account)>, StoreError> {
        let mut all = Vec::new();
        for s in &mut self.shards {
            all.extend(s.all_accounts()?);
        }
        all.sort_by_key(|a| a.0);
        Ok(all)
    }

    /// Checks balances + in-flight relays + escrow == genesis + subsidies − burned at the
    /// tip.
    pub fn audit_supply(&mut self) -> Result<SupplyReport, StoreError> {
        let mut balances = Amount::ZERO;
        for s in &mut self.shards {
            s.for_each_account(|_, a| {
                balances = balances
                    .checked_add(a.balance)
                    .ok_or_else(|| StoreError::corrupt("supply", "balance sum overflows"))?;
                Ok(())
            })?;
        }
        self.supply_with_balances(balances)
    }

    /// Each shard's fee market state at the tip (the base fee of the next block, and what
    /// it burned since genesis).
    pub fn fee_states(&mut self) -> Result<Vec<crate::fee::FeeState>, StoreError> {
        let key = crate::fee::fee_key();
        let params = &self.params;
        self.shards
            .iter_mut()
            .map(|s| {
                let row = s.get_state(&key)?;
                crate::fee::FeeState::from_stored(params, row.as_deref())
                    .map_err(|e| StoreError::corrupt("fee market row", e))
            })
            .collect()
    }

    /// Tips the prepared template with header hash `hash` pays its miner (what
    /// [`Chain::template`] executed; `None` for any other block).
    pub fn template_tips(&self, hash: BlockHash) -> Option<Amount> {
        let p = self.prepared.as_ref().filter(|p| p.hash == hash)?;
        checked_sum(p.outcomes.iter().map(|o| o.fees))
    }

    /// The base fee the next block charges on `shard`.
    pub fn base_fee(&mut self, shard: ShardId) -> Result<GasPrice, StoreError> {
        let row = self.shards[shard.index()].get_state(&crate::fee::fee_key())?;
        crate::fee::FeeState::from_stored(&self.params, row.as_deref())
            .map(|f| f.base_fee)
            .map_err(|e| StoreError::corrupt("fee market row", e))
    }

    /// A fee estimate for `shard`: the base fee of the next block and a forecast for the
    /// following `blocks` ones if the shard's pending transactions keep it as full as they
    /// would fill it now (an upper bound for a wallet's max fee), with the tip that would
    /// have placed a transaction in the upper half of the shard's pending ones.
    pub fn estimate_fee(&mut self, shard: ShardId, blocks: u64) -> Result<FeeEstimate, StoreError> {
        let base_fee = self.base_fee(shard)?;
        let pending: Vec<&SignedTx> = self.mempool.shard_txs(shard).collect();
        let pending_gas: u64 = pending.iter().map(|t| t.tx.gas_limit).sum();
        let mut forecast = Vec::with_capacity(blocks as usize);
        let (mut fee, mut left) = (base_fee, pending_gas);
        for _ in 0..blocks {
            let used = left.min(self.params.block_gas_per_shard);
            left -= used;
            fee = crate::fee::next_base_fee(&self.params, fee, used);
            forecast.push(fee);
        }
        let mut tips: Vec<GasPrice> = pending
            .iter()
            .filter_map(|t| crate::mempool::effective_tip(t, base_fee))
            .collect();
        tips.sort_unstable();
        let tip = tips
            .get(tips.len() / 2)
            .copied()
            .unwrap_or(GasPrice::ZERO)
            .max(GasPrice::from_msat(1));
        Ok(FeeEstimate {
            shard,
            base_fee,
            forecast,
            tip,
            pending: pending.len(),
            pending_gas,
        })
    }

    /// Each shard's fee market in the last connected block (empty before the first block
    /// connected since open).
    pub fn last_fees(&self) -> &[ShardFees] {
        &self.last_fees
    }

    /// Global-lane calls the last connected block left waiting.
    pub fn global_waiting(&self) -> u64 {
        self.last_global_waiting
    }

    /// The supply report given the sum of all balances.
    fn supply_with_balances(&mut self, balances: Amount) -> Result<SupplyReport, StoreError> {
        let burned = checked_sum(self.fee_states()?.iter().map(|f| f.burned))
            .ok_or_else(|| StoreError::corrupt("supply", "burned sum overflows"))?;
        let in_flight = checked_sum(
            self.inbound
                .iter()
                .flatten()
                .chain(&self.global_inbound)
                .map(Relay::value),
        )
        .ok_or_else(|| StoreError::corrupt("supply", "relay sum overflows"))?;
        let held = checked_sum(self.systems.iter().map(|c| c.held()))
            .ok_or_else(|| StoreError::corrupt("supply", "escrow sum overflows"))?;
        let height = self.tip_height();
        let minted = checked_sum((1..=height).map(|h| self.params.subsidy(h)))
            .ok_or_else(|| StoreError::corrupt("supply", "subsidy sum overflows"))?;
        let issued = self
            .genesis_total()
            .checked_add(minted)
            .unwrap_or(Amount::MAX_MONEY);
        Ok(SupplyReport {
            height,
            balances,
            in_flight,
            held,
            burned,
            expected: issued
                .checked_sub(burned)
                .ok_or_else(|| StoreError::corrupt("supply", "burned more than was issued"))?,
        })
    }

    fn median_time_past(&self, hash: BlockHash) -> u64 {
        let mut times = Vec::with_capacity(11);
        let mut cur = Some(hash);
        while let Some(h) = cur {
            let Some(e) = self.index.get(&h) else { break };
            times.push(e.header.time);
            if times.len() == 11 || e.header.height == 0 {
                break;
            }
            cur = Some(e.header.prev);
        }
        times.sort_unstable();
        times[times.len() / 2]
    }

    /// The bits a block on top of `parent` must carry: fixed on regtest networks,
    /// ASERT anchored at genesis otherwise.
    pub fn next_bits(&self, parent: &Header) -> u32 {
        if self.params.fixed_difficulty {
            return self.params.pow_limit_bits;
        }
        crate::difficulty::Asert {
            pow_limit_bits: self.params.pow_limit_bits,
            anchor_time: self.params.genesis_time,
            anchor_height: 0,
            interval: self.params.block_interval_secs,
            halflife: self.params.asert_halflife_secs,
        }
        .next_bits(parent.height, parent.time)
    }

    fn env_for(&self, header: &Header) -> BlockEnv {
        BlockEnv {
            time: header.time,
            prev: header.prev,
            hrp: self.params.network.address_hrp(),
            log_contracts: self.config.log_contracts,
            keep_receipts: self.config.contract_receipts || self.config.log_contracts,
            height: header.height,
            miner: header.miner,
            subsidy: self.params.subsidy(header.height),
            order: self.params.shard_order,
            systems: self
                .systems
                .iter()
                .fold(0u64, |m, c| m | (1u64 << c.id().0)),
        }
    }

    /// Executes a block on top of the tip, global lane first, then every shard (nothing is
    /// applied).
    fn execute(
        &mut self,
        header: &Header,
        txs: &[Vec<SignedTx>],
        mode: ExecMode,
        trusted: bool,
    ) -> Result<Executed, BlockError> {
        let env = self.env_for(header);
        let ctx = GlobalCtx {
            height: header.height,
            time: header.time,
        };
        let global = execute_global(
            &self.systems,
            &self.global,
            &ctx,
            &env,
            &self.global_inbound,
            self.params.shard_order,
            self.params.block_gas_global,
        )?;
        let params = &self.params;
        let inbound = &self.inbound;
        let payouts = &global.payouts;
        let mempool = &self.mempool;
        // Shards see the contracts as they were after the previous block.
        let contracts = self.systems.contracts();
        let sig_ok = |t: &SignedTx| trusted || mempool.has_verified(t) || t.verify_signature();
        let results = for_each_shard(&mut self.shards, self.config.threads, |store| {
            let i = store.id().index();
            execute_shard(
                store,
                params,
                &env,
                contracts,
                &inbound[i],
                &payouts[i],
                &txs[i],
                mode,
                &sig_ok,
            )
        });
        let outcomes = results.into_iter().collect::<Result<Vec<_>, ExecError>>()?;
        Ok(Executed { global, outcomes })
    }

    fn check_header(&self, block: &Block, now: u64) -> Result<Work, BlockError> {
        let h = &block.header;
        let hash = h.hash();
        if let Some(e) = self.index.get(&hash) {
            return Err(if e.status == BlockStatus::Invalid {
                BlockError::KnownInvalid(hash)
            } else {
                BlockError::Duplicate(hash)
            });
        }
        let parent = self
            .index
            .get(&h.prev)
            .ok_or(BlockError::PrevUnknown(h.prev))?;
        if parent.status == BlockStatus::Invalid {
            return Err(BlockError::InvalidAncestor(h.prev));
        }
        if h.version != 1 {
            return Err(BlockError::BadVersion(h.version));
        }
        if h.height != parent.header.height + 1 {
            return Err(BlockError::BadHeight {
                expected: parent.header.height + 1,
                got: h.height,
            });
        }
        if h.order != self.params.shard_order {
            return Err(BlockError::BadOrder {
                expected: self.params.shard_order.get(),
                got: h.order.get(),
            });
        }
        let bits = self.next_bits(&parent.header);
        if h.bits != bits {
            return Err(BlockError::BadBits {
                expected: bits,
                got: h.bits,
            });
        }
        let mtp = self.median_time_past(h.prev);
        if h.time <= mtp {
            return Err(BlockError::TimeTooOld { time: h.time, mtp });
        }
        if h.time > now.saturating_add(self.params.max_future_secs) {
            return Err(BlockError::TimeTooNew {
                time: h.time,
                now,
                max_future: self.params.max_future_secs,
            });
        }
        self.sealer.verify(h, &block.seal)?;
        if block.txs.len() != self.params.shard_order.shard_count() {
            return Err(BlockError::BadShardCount {
                expected: self.params.shard_order.shard_count(),
                got: block.txs.len(),
            });
        }
        for (i, list) in block.txs.iter().enumerate() {
            if list.len() > self.params.max_txs_per_shard {
                return Err(BlockError::TooManyTxs {
                    shard: ShardId(i as u16),
                    count: list.len(),
                    limit: self.params.max_txs_per_shard,
                });
            }
        }
        if block.compute_tx_root_threads(self.config.threads) != h.tx_root {
            return Err(BlockError::BadTxRoot);
        }
        Ok(parent.chainwork + h.work())
    }

    /// Connects `block` on top of the tip: executes (or reuses the template's execution),
    /// checks the roots, writes the log (when `log`), then applies to the shard caches.
    fn connect(&mut self, block: &Block, trusted: bool, log: Log) -> Result<(), BlockError> {
        let started = std::time::Instant::now();
        self.connect_inner(block, trusted, log)?;
        self.note_connected(block)?;
        self.stats.blocks_connected += 1;
        self.stats.txs_connected += block.tx_count() as u64;
        self.stats.connect_secs += started.elapsed().as_secs_f64();
        Ok(())
    }

    /// Counters since open.
    pub fn stats(&self) -> ChainStats {
        self.stats
    }

    fn connect_inner(&mut self, block: &Block, trusted: bool, log: Log) -> Result<(), BlockError> {
        let hash = block.header.hash();
        let executed = match self.prepared.take() {
            Some(p) if p.hash == hash => Executed {
                global: p.global,
                outcomes: p.outcomes,
            },
            _ => self.execute(&block.header, &block.txs, ExecMode::Validate, trusted)?,
        };
        let state_root = executed.state_root();
        if state_root != block.header.state_root {
            return Err(BlockError::BadStateRoot {
                header: block.header.state_root,
                computed: state_root,
            });
        }
        let relay_root = executed.relay_root();
        if relay_root != block.header.relay_root {
            return Err(BlockError::BadRelayRoot {
                header: block.header.relay_root,
                computed: relay_root,
            });
        }
        let Executed {
            global,
            mut outcomes,
        } = executed;
        let height = block.header.height;
        let txindex: Vec<(Txid, u16, u32)> = if self.config.txindex && !matches!(log, Log::Replay) {
            block
                .txs
                .iter()
                .enumerate()
                .flat_map(|(s, list)| {
                    list.iter()
                        .enumerate()
                        .map(move |(i, t)| (t.txid(), s as u16, i as u32))
                })
                .collect()
        } else {
            Vec::new()
        };
        let changes = (!global.changes.is_empty()).then(|| encode_changes(&global.changes));
        let lane_reverted = global
            .contract_receipts
            .iter()
            .filter(|r| r.error.is_some())
            .count() as u64;
        self.last_counts = (
            global.contract_receipts.len() as u64
                + outcomes.iter().map(|o| o.micro_txs).sum::<u64>(),
            lane_reverted + outcomes.iter().map(|o| o.reverted).sum::<u64>(),
        );
        let mut contract_receipts: Vec<ContractReceipt> = global.contract_receipts;
        for o in &mut outcomes {
            contract_receipts.append(&mut o.receipts);
        }
        let stored: Vec<(Txid, String)> =
            if self.config.contract_receipts && !matches!(log, Log::Replay) {
                // What each transaction paid (kind "fee"), then the contract receipts.
                let fee_receipts = outcomes.iter().flat_map(|o| {
                    o.fee_receipts.iter().map(|(txid, c)| {
                        let mut v = serde_json::to_value(c).unwrap_or_default();
                        v["kind"] = serde_json::json!("fee");
                        (*txid, v.to_string())
                    })
                });
                fee_receipts
                    .chain(
                        contract_receipts
                            .iter()
                            .map(|r| (r.txid, serde_json::to_string(r).unwrap_or_default())),
                    )
                    .collect()
            } else {
                Vec::new()
            };
        let n = self.shards.len();
        // What waits for the next block: the inbound relays that did not fit (first in line),
        // then what this block emitted.
        let mut outbound = Vec::with_capacity(2 * n + 1);
        let waiting: usize =
            outcomes.iter().map(|o| o.waiting.len()).sum::<usize>() + global.waiting.len();
        self.last_fees = outcomes
            .iter()
            .map(|o| ShardFees {
                base_fee: o.base_fee,
                next_base_fee: o.next_base_fee,
                gas_used: o.gas_used,
                burned: o.burned,
                tips: o.fees,
                waiting: o.waiting.len() as u64,
            })
            .collect();
        self.last_global_waiting = global.waiting.len() as u64;
        let base_fees: Vec<GasPrice> = outcomes.iter().map(|o| o.base_fee).collect();
        self.stats.relays_waiting = waiting as u64;
        for o in &mut outcomes {
            outbound.push(std::mem::take(&mut o.waiting));
        }
        outbound.push(global.waiting);
        let slots: Vec<std::sync::Mutex<Option<ShardOutcome>>> = outcomes
            .into_iter()
            .map(|mut o| {
                outbound.push(std::mem::take(&mut o.outbound));
                std::sync::Mutex::new(Some(o))
            })
            .collect();
        // The shards apply the block in memory while this thread makes it durable in the
        // log (mostly waiting on the disk); if the log write fails, the shards roll the
        // block back from their in-memory undo records and nothing happened.
        let threads = self.config.threads;
        let (shards, db) = (&mut self.shards, &mut self.db);
        let logged = std::thread::scope(|scope| {
            let applying = scope.spawn(|| {
                for_each_shard(shards, threads, |store| {
                    let o = slots[store.id().index()]
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .take()
                        .expect("one outcome per shard");
                    store.apply(height, &o.changes, o.state_changes, o.lthash);
                });
            });
            let logged = if matches!(log, Log::Replay) {
                Ok(())
            } else {
                // Encoded here, so that it overlaps with the shards' apply too.
                let body;
                let new_block = match log {
                    Log::New(work) => {
                        body = block.to_bytes();
                        Some((&block.header, &body[..], work.to_be_bytes()))
                    }
                    _ => None,
                };
                let relays = encode_outbound(&outbound, &global.deferred);
                let block_fees: Vec<u8> = base_fees
                    .iter()
                    .flat_map(|f| f.to_msat().to_le_bytes())
                    .collect();
                db.connect(&ConnectRecord {
                    height,
                    hash,
                    relays: &relays,
                    new_block,
                    txindex: &txindex,
                    global_changes: changes.as_deref(),
                    receipts: &global.receipts,
                    contract_receipts: &stored,
                    block_fees: Some(&block_fees),
                })
            };
            if let Err(panic) = applying.join() {
                std::panic::resume_unwind(panic);
            }
            logged
        });
        if let Err(e) = logged {
            for s in &mut self.shards {
                s.undo_top()?;
            }
            return Err(e.into());
        }
        if self.db.checkpoint_due() {
            self.request_checkpoint(0);
        }
        self.last_contract_receipts = contract_receipts;
        for r in &global.receipts {
            if let Some(e) = &r.error {
                tracing::debug!(txid = %r.txid, contract = %r.contract, error = %e, "system call failed");
            }
        }
        if let Some(state) = global.contracts {
            self.systems = state;
        }
        self.global
            .apply(&global.changes)
            .map_err(|e| StoreError::corrupt("global state", e))?;
        self.last_global_changes = global.changes.len();
        debug_assert_eq!(self.global.digest(), global.digest);
        // Tests (debug builds) check that the contracts reported every item they wrote: their
        // whole state, re-read, commits to what the changesets built.
        #[cfg(debug_assertions)]
        if self.global.len() < 5_000 {
            assert_eq!(
                GlobalImage::of(&self.systems).digest(),
                self.global.digest(),
                "a system contract wrote an item it did not report"
            );
        }
        // The relays this block ran.
        crate::dropper::drop_later(std::mem::take(&mut self.inbound));
        (self.inbound, self.global_inbound) =
            route(outbound.into_iter().flatten().chain(global.deferred), n);
        self.active.push(hash);
        if let Some(e) = self.index.get_mut(&hash) {
            e.status = BlockStatus::Valid;
        }
        if !self.mempool.is_empty() {
            for list in &block.txs {
                for t in list {
                    self.mempool.remove_below(&t.tx.from, t.tx.nonce + 1);
                }
            }
        }
        self.blocks_since_flush += 1;
        let dirty: usize = self.shards.iter().map(ShardStore::dirty_len).sum();
        if self.blocks_since_flush >= self.config.flush_every_blocks
            || dirty >= self.config.flush_dirty_limit
        {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes every shard's state (a checkpoint), then records the height in `chain.sqlite`.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        let results = for_each_shard(&mut self.shards, self.config.threads, ShardStore::flush);
        for r in results {
            r?;
        }
        for i in 0..self.shards.len() {
            self.request_checkpoint(1 + i);
        }
        self.db
            .set_meta("state_height", &self.tip_height().to_le_bytes())?;
        self.blocks_since_flush = 0;
        self.prune_global()?;
        Ok(())
    }

    fn request_checkpoint(&self, db: usize) {
        if let Some(c) = &self.checkpointer {
            c.request(db);
        }
    }

    /// Drops stored global states and relays that no reorg within the undo depth can need:
    /// relays of blocks below `tip - undo_depth`, and global states below the newest active
    /// one at or under it.
    fn prune_global(&mut self) -> Result<(), StoreError> {
        let Some(horizon) = self.tip_height().checked_sub(self.params.undo_depth) else {
            return Ok(());
        };
        // Relays below the horizon: no rollback reaches them, and a restart starts at this
        // checkpoint (the tip) at the lowest.
        let pruned = self.db.prune_relays(horizon)?;
        if pruned > 0 {
            tracing::debug!(pruned, below = horizon, "pruned stored relays");
        }
        // The global state's base moves up to the horizon: the changesets of the active
        // blocks up to it are folded into the base items.
        let base = self.global_base_height()?;
        if horizon > base {
            let mut folded = Vec::new();
            for h in base + 1..=horizon {
                if let Some(data) = self.db.global_changes(self.active[h as usize])? {
                    folded.extend(
                        decode_changes(&data)
                            .map_err(|e| StoreError::corrupt("global state", e))?,
                    );
                }
            }
            self.db.advance_global_base(horizon, &folded)?;
        }
        Ok(())
    }

    fn global_base_height(&self) -> Result<u64, StoreError> {
        let raw = self
            .db
            .meta("global_base")?
            .ok_or_else(|| StoreError::corrupt("global state", "no base stored"))?;
        let b: [u8; 8] = raw
            .as_slice()
            .try_into()
            .map_err(|_| StoreError::corrupt("global base", "length"))?;
        Ok(u64::from_le_bytes(b))
    }

    /// Rolls back the tip block in memory (the caller persists).
    fn disconnect_tip(&mut self) -> Result<Block, ChainError> {
        let height = self.tip_height();
        if height == 0 {
            return Err(StoreError::corrupt("chain", "cannot disconnect genesis").into());
        }
        let hash = self.tip_hash();
        let block = self
            .block(hash)?
            .ok_or_else(|| StoreError::corrupt("body", height))?;
        for s in &mut self.shards {
            s.undo_top()?;
        }
        self.active.pop();
        self.note_disconnected();
        self.stats.blocks_disconnected += 1;
        (self.inbound, self.global_inbound) = self.load_relays(self.tip_hash())?;
        self.undo_global(hash)?;
        self.prepared = None;
        Ok(block)
    }

    /// Makes the in-memory rollback durable: shards first, then the log's active chain.
    fn persist_rollback(&mut self) -> Result<(), StoreError> {
        if self.shards.iter().any(|s| s.height() < s.flushed_height()) {
            self.flush()?;
        }
        self.db.truncate_active(self.tip_height())
    }

    /// Rolls back the last `n` blocks (they stay stored as a side branch).
    pub fn rollback(&mut self, n: u64) -> Result<(), ChainError> {
        let n = n.min(self.tip_height());
        if n > self.params.undo_depth {
            return Err(BlockError::ReorgTooDeep {
                depth: n,
                max: self.params.undo_depth,
            }
            .into());
        }
        let mut undone = Vec::new();
        for _ in 0..n {
            undone.push(self.disconnect_tip()?);
        }
        self.persist_rollback()?;
        self.readmit(undone);
        Ok(())
    }

    /// Marks `hash` invalid (as bitcoind's `invalidateblock`): if it is active, rolls back to
    /// its parent first. Its transactions go back to the mempool; it is never connected
    /// again. Refused below the latest Bitcoin-anchored block.
    pub fn invalidate(&mut self, hash: BlockHash) -> Result<(), ChainError> {
        let height = self
            .index
            .get(&hash)
            .map(|e| e.header.height)
            .ok_or_else(|| StoreError::corrupt("index", hash))?;
        if height == 0 {
            return Err(StoreError::corrupt("chain", "cannot invalidate genesis").into());
        }
        if self.hash_at(height) == Some(hash) {
            if let Some((anchor, _)) = self.anchor() {
                if height <= anchor {
                    return Err(BlockError::BelowAnchor {
                        fork: height - 1,
                        anchor,
                    }
                    .into());
                }
            }
            self.rollback(self.tip_height() - height + 1)?;
        }
        self.mark_invalid(hash)?;
        Ok(())
    }

    fn readmit(&mut self, blocks: Vec<Block>) {
        for b in blocks.into_iter().rev() {
            for t in b.txs.into_iter().flatten() {
                let _ = self.submit_tx(t);
            }
        }
    }

    /// Validates and stores a block; connects it or reorganises when its branch has the
    /// most work. `now` is the local clock (unix seconds).
    pub fn submit(&mut self, block: Block, now: u64) -> Result<SubmitOutcome, BlockError> {
        let chainwork = self.check_header(&block, now)?;
        let hash = block.header.hash();
        self.index.insert(
            hash,
            IndexEntry {
                header: block.header.clone(),
                chainwork,
                status: BlockStatus::HeaderValid,
            },
        );
        if block.header.prev == self.tip_hash() {
            // Stored and made active in one durable transaction.
            match self.connect(&block, false, Log::New(chainwork)) {
                Ok(()) => {
                    crate::dropper::drop_later(block);
                    Ok(SubmitOutcome::Connected)
                }
                // Our disk failed, not the block: forget it, so that it can come again.
                Err(e @ (BlockError::Store(_) | BlockError::Exec(ExecError::Store(_)))) => {
                    self.index.remove(&hash);
                    Err(e)
                }
                Err(e) => {
                    self.db.insert_block(
                        &block.header,
                        &block.to_bytes(),
                        chainwork.to_be_bytes(),
                        BlockStatus::Invalid,
                    )?;
                    self.mark_invalid(hash)?;
                    Err(e)
                }
            }
        } else {
            self.db.insert_block(
                &block.header,
                &block.to_bytes(),
                chainwork.to_be_bytes(),
                BlockStatus::HeaderValid,
            )?;
            if chainwork > self.tip_work() {
                self.reorg_to(hash)
            } else {
                Ok(SubmitOutcome::SideBranch)
            }
        }
    }

    fn mark_invalid(&mut self, hash: BlockHash) -> Result<(), StoreError> {
        if let Some(e) = self.index.get_mut(&hash) {
            e.status = BlockStatus::Invalid;
        }
        self.db.set_status(hash, BlockStatus::Invalid)
    }

    fn reorg_to(&mut self, new_tip: BlockHash) -> Result<SubmitOutcome, BlockError> {
        // The new branch, tip first, down to a block on the active chain.
        let mut branch = Vec::new();
        let mut cur = new_tip;
        loop {
            let e = &self.index[&cur];
            let h = e.header.height as usize;
            if self.active.get(h) == Some(&cur) {
                break;
            }
            branch.push(cur);
            cur = e.header.prev;
        }
        let fork = self.index[&cur].header.height;
        let depth = self.tip_height() - fork;
        if let Some((anchor, _)) = self.anchor() {
            if fork < anchor {
                tracing::warn!(fork, anchor, new_tip = %new_tip, "refusing a branch with more work that forks below the anchored block");
                return Err(BlockError::BelowAnchor { fork, anchor });
            }
        }
        if depth > self.params.undo_depth {
            return Err(BlockError::ReorgTooDeep {
                depth,
                max: self.params.undo_depth,
            });
        }
        tracing::info!(depth, fork, new_tip = %new_tip, "reorganising to the branch with more work");
        let old_branch: Vec<BlockHash> = self.active[fork as usize + 1..].to_vec();
        let mut undone = Vec::new();
        for _ in 0..depth {
            undone.push(self.disconnect_tip().map_err(chain_to_block_err)?);
        }
        self.persist_rollback()?;
        for (i, hash) in branch.iter().rev().enumerate() {
            let block = self
                .block(*hash)
                .map_err(chain_to_block_err)?
                .ok_or_else(|| StoreError::corrupt("body", hash))?;
            if let Err(e) = self.connect(&block, false, Log::Stored) {
                tracing::warn!(%hash, error = %e, "block on the new branch is invalid; restoring the old branch");
                self.mark_invalid(*hash)?;
                for later in branch.iter().rev().skip(i + 1) {
                    self.mark_invalid(*later)?;
                }
                for _ in 0..i {
                    self.disconnect_tip().map_err(chain_to_block_err)?;
                }
                self.persist_rollback()?;
                for old in &old_branch {
                    let b = self
                        .block(*old)
                        .map_err(chain_to_block_err)?
                        .ok_or_else(|| StoreError::corrupt("body", old))?;
                    self.connect(&b, true, Log::Stored)?;
                }
                return Err(e);
            }
        }
        self.readmit(undone);
        Ok(SubmitOutcome::Reorged { depth })
    }

    /// Where a transaction stands: pending, in an active block, in a block that is no
    /// longer active, or unknown (never seen, or not indexed).
    pub fn tx_status(&self, txid: Txid) -> Result<TxStatus, StoreError> {
        if self.mempool.contains(&txid) {
            return Ok(TxStatus::Mempool);
        }
        let Some((block, shard, pos)) = self.db.tx_location(txid)? else {
            return Ok(TxStatus::Unknown);
        };
        let Some(h) = self.index.get(&block).map(|e| e.header.height) else {
            return Ok(TxStatus::Unknown);
        };
        if self.hash_at(h) == Some(block) {
            Ok(TxStatus::Confirmed {
                block,
                height: h,
                shard: ShardId(shard),
                position: pos,
                confirmations: self.tip_height() - h + 1,
            })
        } else {
            Ok(TxStatus::Unknown)
        }
    }

    /// Admits a transaction to the mempool, or says why not.
    pub fn submit_tx(&mut self, tx: SignedTx) -> Result<Txid, AdmissionError> {
        self.admit(tx, false)
    }

    /// Admits a transaction whose signature was verified already (outside the chain's
    /// lock: see [`SignedTx::verified`]), or says why not.
    pub fn submit_verified(&mut self, tx: crate::VerifiedTx) -> Result<Txid, AdmissionError> {
        self.admit(tx.into_inner(), true)
    }

    fn admit(&mut self, tx: SignedTx, sig_checked: bool) -> Result<Txid, AdmissionError> {
        tx.check_stateless(&self.params)?;
        let txid = tx.txid();
        if self.mempool.contains(&txid) {
            return Err(AdmissionError::AlreadyKnown(txid));
        }
        let next_height = self.tip_height() + 1;
        if tx.tx.expiry_height < next_height {
            return Err(AdmissionError::Expired {
                expiry: tx.tx.expiry_height,
                next_height,
            });
        }
        match &tx.tx.payload {
            Payload::Transfer { to, .. } => {
                if to.to_xonly().is_err() {
                    return Err(TxError::InvalidPayee.into());
                }
            }
            Payload::Call {
                contract,
                value,
                data,
            } => {
                let c = self
                    .system(*contract)
                    .ok_or(TxError::UnknownContract(*contract))?;
                let ctx = GlobalCtx {
                    height: next_height,
                    time: self.tip_header().time,
                };
                c.precheck(
                    &ctx,
                    &Call {
                        txid,
                        caller: tx.tx.from,
                        value: *value,
                        data,
                    },
                )
                .map_err(AdmissionError::Refused)?;
            }
            Payload::Deploy { .. } | Payload::ContractCall { .. } => {
                self.precheck_contract(&tx.tx.payload)
                    .map_err(|e| AdmissionError::Refused(crate::system::CallError::new(e)))?;
            }
        }
        let acct = self.account(&tx.tx.from)?;
        if tx.tx.nonce < acct.nonce {
            return Err(AdmissionError::NonceTooLow {
                expected: acct.nonce,
                got: tx.tx.nonce,
            });
        }
        if tx.tx.nonce > acct.nonce + self.params.max_nonce_gap {
            return Err(AdmissionError::NonceTooHigh {
                expected: acct.nonce,
                got: tx.tx.nonce,
                max_gap: self.params.max_nonce_gap,
            });
        }
        let needed = self
            .mempool
            .pending_spend(&tx.tx.from, acct.nonce, tx.tx.nonce)
            .and_then(|p| p.checked_add(tx.tx.total_spend()?))
            .ok_or(TxError::AmountOverflow)?;
        if needed > acct.balance {
            return Err(AdmissionError::InsufficientFunds {
                balance: acct.balance,
                needed,
            });
        }
        let shard = tx.tx.from.shard(self.params.shard_order);
        let base_fee = self.base_fee(shard)?;
        if tx.tx.max_fee < base_fee {
            return Err(AdmissionError::FeeBelowBaseFee {
                max_fee: tx.tx.max_fee,
                base_fee,
                shard,
            });
        }
        if let Some(pending) = self.mempool.get(&tx.tx.from, tx.tx.nonce) {
            let bump = |p: GasPrice| {
                GasPrice::from_msat(p.to_msat().saturating_add((p.to_msat() / 10).max(1)))
            };
            let (need_fee, need_tip) = (bump(pending.tx.max_fee), bump(pending.tx.max_tip));
            if tx.tx.max_fee < need_fee || tx.tx.max_tip < need_tip {
                return Err(AdmissionError::ReplacementUnderpaid {
                    fee: tx.tx.max_fee,
                    tip: tx.tx.max_tip,
                    need_fee,
                    need_tip,
                });
            }
        }
        if !self.mempool.has_room_for(&tx) {
            return Err(AdmissionError::MempoolFull {
                shard,
                capacity: self.mempool.shard_capacity(),
            });
        }
        if !sig_checked && !tx.verify_signature() {
            return Err(AdmissionError::BadSignature);
        }
        self.mempool.insert(tx);
        Ok(txid)
    }

    /// The deployed contracts and their global state, at the tip.
    pub fn contracts(&self) -> &ContractsSystem {
        self.systems.contracts()
    }

    /// A contract's state for one target as JSON (`None` when no contract is there).
    pub fn contract_state(
        &mut self,
        contract: &Address,
        target: &crate::contract::Target,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let hrp = self.params.network.address_hrp();
        let Some(d) = self.contracts().get(contract).cloned() else {
            return Ok(None);
        };
        if *target == crate::contract::Target::Global {
            return Ok(self.contracts().global_json(contract, hrp));
        }
        let shard = target.shard(self.params.shard_order);
        let row = self.shards[shard.index()].get_state(&target.state_key(contract))?;
        crate::contract::abi::row_json(&d.code, target.scope(), row.as_deref(), hrp)
            .map(Some)
            .map_err(|e| StoreError::corrupt("contract state", e))
    }

    /// Every contract state row of every shard, sorted by key (tests and audits).
    pub fn all_contract_state(
        &mut self,
    ) -> Result<Vec<(crate::store::StateKey, Vec<u8>)>, StoreError> {
        let mut all = Vec::new();
        let fee_key = crate::fee::fee_key();
        for s in &mut self.shards {
            all.extend(s.all_state()?.into_iter().filter(|(k, _)| *k != fee_key));
        }
        all.sort();
        Ok(all)
    }

    /// Writes contract state outside any block (simulations and benchmarks only: a replay
    /// of the block log does not reproduce it, so never use this on a node).
    pub fn force_contract_state(
        &mut self,
        contract: &Address,
        target: &crate::contract::Target,
        vals: Vec<crate::lang::value::Value>,
    ) -> Result<(), String> {
        self.prepared = None;
        if *target == crate::contract::Target::Global {
            let c = self.systems.contracts_mut();
            c.force_global(contract, vals)?;
            let written = c.take_changes();
            let changes = self.global.diff(SystemId::CONTRACTS, written);
            self.global.apply(&changes)?;
            return Ok(());
        }
        let d = self
            .contracts()
            .get(contract)
            .cloned()
            .ok_or("no such contract")?;
        let row = crate::lang::vm::encode_row(&d.code, target.scope(), &vals)
            .map_err(|e| e.to_string())?;
        let shard = target.shard(self.params.shard_order);
        self.shards[shard.index()]
            .force_state(target.state_key(contract), row)
            .map_err(|e| e.to_string())
    }

    /// Contract receipts of the last connected block (empty unless the chain keeps receipts
    /// or logs: see [`ChainConfig::contract_receipts`]).
    pub fn last_contract_receipts(&self) -> &[ContractReceipt] {
        &self.last_contract_receipts
    }

    /// Items of the system contracts' state (peg and contract registry) at the tip.
    pub fn global_items(&self) -> usize {
        self.global.len()
    }

    /// Items the last connected block's global lane changed (what its changeset stores).
    pub fn last_global_changes(&self) -> usize {
        self.last_global_changes
    }

    /// Contract micro-transactions run, and how many of them were reverted, in the last
    /// connected block (counted whether or not receipts are kept).
    pub fn last_micro_txs(&self) -> (u64, u64) {
        self.last_counts
    }

    /// Stored contract receipts of `txid` (JSON), from blocks of the active chain, with the
    /// height of the block that ran each.
    pub fn contract_receipts(
        &self,
        txid: Txid,
    ) -> Result<Vec<(u64, serde_json::Value)>, StoreError> {
        Ok(self
            .stored_receipts(txid)?
            .into_iter()
            .filter(|(_, v)| v["kind"] != "fee")
            .collect())
    }

    /// What `txid` paid (gas used, base fee, burned, tip, refund, escrowed) and the height of
    /// its block, for a transaction on the active chain: a contract transaction's from its
    /// stored receipt, a transfer's or system call's computed from its block's base fee
    /// (needs the transaction index).
    pub fn fee_receipt(&self, txid: Txid) -> Result<Option<(u64, serde_json::Value)>, StoreError> {
        if let Some(r) = self
            .stored_receipts(txid)?
            .into_iter()
            .find(|(_, v)| v["kind"] == "fee")
        {
            return Ok(Some(r));
        }
        let Some((block, shard, pos)) = self.db.tx_location(txid)? else {
            return Ok(None);
        };
        let Some(h) = self.index.get(&block).map(|e| e.header.height) else {
            return Ok(None);
        };
        if self.hash_at(h) != Some(block) {
            return Ok(None);
        }
        let body = self
            .db
            .body(block)?
            .map(|b| Block::from_bytes(&b).map_err(|e| StoreError::corrupt("block", e)))
            .transpose()?;
        let (Some(fees), Some(b)) = (self.db.block_fees(block)?, body) else {
            return Ok(None);
        };
        let Some(tx) = b.txs.get(shard as usize).and_then(|l| l.get(pos as usize)) else {
            return Ok(None);
        };
        if matches!(
            tx.tx.payload,
            Payload::Deploy { .. } | Payload::ContractCall { .. }
        ) {
            return Ok(None);
        }
        let Some(&base) = fees.get(shard as usize) else {
            return Ok(None);
        };
        let base = GasPrice::from_msat(base);
        let t = &tx.tx;
        let charge = crate::fee::effective_price(base, t.max_fee, t.max_tip)
            .ok()
            .zip(t.max_fee_total())
            .and_then(|(price, reserved)| {
                crate::fee::charge(
                    reserved,
                    crate::contract::intrinsic_gas(&t.payload),
                    base,
                    price,
                )
            })
            .ok_or_else(|| {
                StoreError::corrupt(
                    "fee receipt",
                    "a confirmed transaction's charge does not compute",
                )
            })?;
        let mut v = serde_json::to_value(charge).unwrap_or_default();
        v["kind"] = serde_json::json!("fee");
        Ok(Some((h, v)))
    }

    fn stored_receipts(&self, txid: Txid) -> Result<Vec<(u64, serde_json::Value)>, StoreError> {
        let mut out = Vec::new();
        for (block, data) in self.db.contract_receipts(txid)? {
            let Some(h) = self.index.get(&block).map(|e| e.header.height) else {
                continue;
            };
            if self.hash_at(h) == Some(block) {
                let v = serde_json::from_str(&data)
                    .map_err(|e| StoreError::corrupt("contract receipt", e))?;
                out.push((h, v));
            }
        }
        out.sort_by_key(|(h, _)| *h);
        Ok(out)
    }

    /// Checks a contract payload against the tip: the source compiles, the contract and
    /// function exist, the function is exported and the arguments decode. A failure here
    /// would only burn the fee, so the mempool refuses such transactions.
    fn precheck_contract(&self, payload: &Payload) -> Result<(), String> {
        use crate::lang::bytecode::FnKind;
        let check_args =
            |code: &crate::lang::Verified, f: &crate::lang::bytecode::Function, args: &[u8]| {
                crate::lang::value::decode_tuple(args, &code.param_types(f), &code.table)
                    .map(|_| ())
                    .map_err(|e| format!("arguments do not match `{}`: {e}", f.name))
            };
        match payload {
            Payload::Deploy { source, args } => {
                let code =
                    crate::lang::compile(source).map_err(|e| format!("does not compile:\n{e}"))?;
                match code.functions.iter().find(|f| f.kind == FnKind::OnDeploy) {
                    Some(f) => check_args(&code, f, args),
                    None if args.is_empty() => Ok(()),
                    None => Err("arguments given but the contract has no on_deploy".into()),
                }
            }
            Payload::ContractCall {
                contract,
                function,
                args,
            } => {
                let d = self.contracts().get(contract).ok_or_else(|| {
                    format!("no contract at {}", contract.encode(self.params.network))
                })?;
                let (_, f) = d
                    .code
                    .function(function)
                    .ok_or_else(|| format!("contract {} has no function `{function}`", d.name()))?;
                if !f.export {
                    return Err(format!("`{function}` is not exported"));
                }
                check_args(&d.code, f, args)
            }
            _ => Ok(()),
        }
    }

    /// Decodes wire bytes and admits the transaction.
    pub fn submit_tx_bytes(&mut self, bytes: &[u8]) -> Result<Txid, AdmissionError> {
        let tx = SignedTx::decode_checked(bytes, &self.params)?;
        self.submit_tx(tx)
    }

    /// Builds the next block paying `miner`, from the mempool: the header to seal and the
    /// body. Its execution is kept, so submitting it sealed does not execute it again.
    pub fn template(&mut self, miner: Address, now: u64) -> Result<Block, BlockError> {
        let parent = self.tip_header().clone();
        let height = parent.height + 1;
        self.mempool.remove_expired(height);
        let mut candidates = Vec::with_capacity(self.shards.len());
        let fees = self.fee_states()?;
        for (i, fee) in fees.iter().enumerate() {
            let store = &mut self.shards[i];
            let list = self.mempool.select(
                ShardId(i as u16),
                self.params.max_txs_per_shard,
                fee.base_fee,
                |a| store.get(a).ok().flatten().map(|x| x.nonce).unwrap_or(0),
            );
            candidates.push(list);
        }
        let header = self.next_header(&parent, miner, now);
        let executed = self.execute(&header, &candidates, ExecMode::Build, false)?;
        self.template_from_outcomes(header, executed)
    }

    /// Builds a block from explicit per-shard transaction lists that must all be valid
    /// (benchmarks and tests). `trusted` skips signature checks: only for transactions
    /// whose signatures were verified elsewhere.
    pub fn template_with(
        &mut self,
        miner: Address,
        now: u64,
        txs: Vec<Vec<SignedTx>>,
        trusted: bool,
    ) -> Result<Block, BlockError> {
        let parent = self.tip_header().clone();
        let header = self.next_header(&parent, miner, now);
        let mut executed = self.execute(&header, &txs, ExecMode::Validate, trusted)?;
        for (o, list) in executed.outcomes.iter_mut().zip(txs) {
            o.included = list;
        }
        self.template_from_outcomes(header, executed)
    }

    /// The header of the next block on `parent` (roots filled in after execution).
    fn next_header(&self, parent: &Header, miner: Address, now: u64) -> Header {
        Header {
            version: 1,
            height: parent.height + 1,
            prev: parent.hash(),
            time: now.max(self.median_time_past(parent.hash()) + 1),
            bits: self.next_bits(parent),
            order: self.params.shard_order,
            miner,
            tx_root: Hash256::ZERO,
            relay_root: Hash256::ZERO,
            state_root: Hash256::ZERO,
        }
    }

    fn template_from_outcomes(
        &mut self,
        mut header: Header,
        mut executed: Executed,
    ) -> Result<Block, BlockError> {
        // The kept execution needs only the state changes: move the bodies out, no copy.
        let txs: Vec<Vec<SignedTx>> = executed
            .outcomes
            .iter_mut()
            .map(|o| std::mem::take(&mut o.included))
            .collect();
        let block_txs = Block {
            header: header.clone(),
            txs,
            seal: Vec::new(),
        };
        header.tx_root = block_txs.compute_tx_root_threads(self.config.threads);
        header.state_root = executed.state_root();
        header.relay_root = executed.relay_root();
        self.prepared = Some(Prepared {
            hash: header.hash(),
            global: executed.global,
            outcomes: executed.outcomes,
        });
        Ok(Block {
            header,
            txs: block_txs.txs,
            seal: Vec::new(),
        })
    }
}

fn chain_to_block_err(e: ChainError) -> BlockError {
    match e {
        ChainError::Store(s) => BlockError::Store(s),
        ChainError::Block(b) => b,
        other => BlockError::Store(StoreError::corrupt("chain", other)),
    }
}
