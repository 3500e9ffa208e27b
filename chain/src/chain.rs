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

mod admission;
mod anchor;
mod audit;
mod bootstrap;
mod connect;
mod query;
mod recovery;
mod reorg;
mod state_sync;
mod template;
mod tracking;
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
use crate::encode::{decode_list, Decode, Encode, Reader};
use crate::exec::{execute_shard, for_each_shard, BlockEnv, ExecError, ExecMode, ShardOutcome};
use crate::fee::GasPrice;
use crate::global::{
    decode_changes, decode_undo, encode_changes, execute_global, ConservationError, GlobalImage,
    GlobalOutcome, ItemChange,
};
use crate::hash::{merkle_root, tagged_hash, BlockHash, Hash256, Txid};
use crate::mempool::Mempool;
use crate::params::{bench_address, ChainParams, GenesisAlloc};
use crate::relay::Relay;
use crate::seal::{SealError, Sealer};
use crate::shard::ShardId;
use crate::store::{
    Account, BlockStatus, ChainDb, Checkpointer, ConnectJob, ConnectRecord, DirLock, ShardStore,
    StoreError, TxIndexEntry,
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
    /// Bytes of each shard file SQLite reads through a memory map instead of `read` calls
    /// (0: none, the default). Reads that miss the caches get faster, and the mapped pages
    /// the node touches count in its resident size (they are the operating system's file
    /// cache, which it can take back).
    pub mmap_bytes: u64,
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
    /// The shards this node stores and runs (see [`crate::partial`]); `None`: all of them
    /// (a full node). Recorded in the data directory at creation; fixed after.
    pub tracked: Option<Vec<ShardId>>,
}

impl ChainConfig {
    /// Memory one cached account takes: a slot of the clean table (the key's 16-byte
    /// fingerprint, the account packed in 16 bytes, and a 2-byte tag: 34 bytes), plus a
    /// share of the map of entries written since the last flush. Contract-state rows take
    /// more (their values).
    pub const CACHE_BYTES_PER_ENTRY: usize = 40;

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
            // About 100 MB of table per shard at 34 bytes a slot: what 2M accounts took
            // when slots held the whole key, and 1.8M before accounts were packed.
            cache_limit: 3_000_000,
            mmap_bytes: 0,
            txindex: true,
            contract_receipts: true,
            log_contracts: false,
            verify_state: false,
            mempool_per_shard: crate::mempool::DEFAULT_SHARD_CAPACITY,
            tracked: None,
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
    /// The data directory was made by an earlier rexe that stored contract arrays and maps
    /// whole in their scope's row; this version stores them one row per element or entry.
    #[error(
        "data directory {dir} was made by an earlier rexe that stored contract arrays and maps whole in their scope's row; this version stores one row per element or entry, and the blocks cannot be replayed under the new rules. Move the directory aside and start a new chain (devnet: delete it)"
    )]
    OldContractLayout {
        /// The directory.
        dir: String,
    },
    /// The data directory was made by an earlier rexe under older contract rules (version 1:
    /// no tokens or rxBTC-carrying calls; 2: no imports, calls between contracts or
    /// interfaces; 5: no assets other than rxBTC on the global lane): its blocks were
    /// executed under other rules.
    #[error(
        "data directory {dir} was made by an earlier rexe under contract rules version {found} ({what}); this rexe runs version {now}, and the blocks cannot be replayed under the new rules. Move the directory aside and start a new chain (devnet: delete it)"
    )]
    OldContractRules {
        /// The directory.
        dir: String,
        /// The rules version it was made under.
        found: u32,
        /// This rexe's.
        now: u32,
        /// What that version lacked.
        what: &'static str,
    },
    /// The directory was made under block rules before outboxes (one relay root per block).
    #[error(
        "data directory {dir} was made by an earlier rexe under block rules version {found} ({what}); this rexe runs version {now}, and its headers' outbox roots differ, so the blocks cannot be replayed. Move the directory aside and start a new chain (devnet: delete it)"
    )]
    OldBlockRules {
        /// The directory.
        dir: String,
        /// The block rules version it was made under.
        found: u8,
        /// This rexe's.
        now: u8,
        /// What that version did differently.
        what: &'static str,
    },
    /// The tracked shards differ from those the data directory was made with.
    #[error("data directory {dir} tracks shards {was}, not {now}: a node can take up more shards (by state sync) but not drop one it runs; use another --datadir")]
    TrackedChanged {
        /// The directory.
        dir: String,
        /// What it was made with.
        was: String,
        /// What was asked for.
        now: String,
    },
    /// A tracked-shard list that names no shard, or one the chain does not have.
    #[error("tracked shards {0}: every entry must be a shard of this chain, and at least one")]
    BadTracked(String),
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
    /// A partial node has no package for the block (it takes blocks with
    /// [`Chain::submit_partial`]).
    #[error("block {0} came without the package a partial node needs")]
    NoPackage(BlockHash),
    /// The package does not go with its header (see [`crate::partial::PackageError`]).
    #[error("package: {0}")]
    BadPackage(#[from] crate::partial::PackageError),
    /// `state_root` does not match execution.
    #[error("state_root mismatch: header {header}, executed {computed}")]
    BadStateRoot {
        /// In the header.
        header: Hash256,
        /// Computed.
        computed: Hash256,
    },
    /// `outbox_root` does not match execution (a chunk's outbox differs).
    #[error("outbox_root mismatch: header {header}, executed {computed}")]
    BadOutboxRoot {
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
    /// The branch forks below the checkpoint this node was bootstrapped at: it holds no
    /// state below it (see [`crate::bootstrap`]).
    #[error("branch forks at height {fork}, below this node's bootstrap checkpoint at height {checkpoint}; restart it in a new data directory to follow that branch")]
    BelowCheckpoint {
        /// Height of the last block the branch shares with the active chain.
        fork: u64,
        /// Height of the checkpoint.
        checkpoint: u64,
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

/// Why [`Chain::relay_proof`] has no proof to give.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RelayProofQueryError {
    /// The block is not in the active chain.
    #[error("block {0} is not in the active chain")]
    NotActive(BlockHash),
    /// Origin or target is neither a shard of this chain nor the global lane.
    #[error("{0} is not a partition of this chain")]
    OutOfRange(ShardId),
    /// The block's relays were pruned (they are kept for the undo depth).
    #[error("relays of block {hash} (height {height}) are pruned: proofs are kept for the last {kept} blocks")]
    Pruned {
        /// The block.
        hash: BlockHash,
        /// Its height.
        height: u64,
        /// Blocks below the tip whose relays are kept.
        kept: u64,
    },
    /// The stored relays do not give the header's root: the files are damaged.
    #[error("stored relays of block {0} do not match its header's outbox_root")]
    Corrupt(BlockHash),
    /// Reading the chain failed.
    #[error(transparent)]
    Chain(#[from] ChainError),
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
    /// rxBTC held by contracts: system contracts' escrows and bonds, and tokens in PREDA
    /// contracts' state (see [`Chain::contracts_held`]).
    pub held: Amount,
    /// Base fees burned since genesis (every shard's total).
    pub burned: Amount,
    /// Genesis allocations plus subsidies, less what was burned.
    pub expected: Amount,
}

/// The supply audit of one asset other than rxBTC (see [`Chain::audit_assets`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AssetReport {
    /// The asset.
    pub asset: crate::asset::AssetId,
    /// Minted less burned, over all shards.
    pub issued: i128,
    /// Sum of all asset wallets.
    pub wallets: u128,
    /// Held in tokens in contract state.
    pub held: u128,
    /// Carried by relays not yet executed.
    pub in_flight: u128,
}

impl AssetReport {
    /// Whether wallets + held + in flight == issued.
    pub fn holds(&self) -> bool {
        i128::try_from(self.wallets + self.held + self.in_flight).ok() == Some(self.issued)
    }
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

    fn outbox_root(&self) -> Hash256 {
        let mut leaves: Vec<Hash256> = self.outcomes.iter().map(|o| o.outbox_root).collect();
        leaves.push(self.global.outbox_root);
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
    /// Transaction-index entries of connected blocks not written to `chain.sqlite` yet:
    /// they are written in one sorted batch before the shards' state is flushed (or when
    /// [`TXINDEX_PENDING_MAX`] are waiting), so every block at or below the shards' height
    /// is indexed on disk; a restart replays the blocks above it, which indexes them again.
    txindex_pending: crate::FastMap<Txid, (BlockHash, u16, u32)>,
    blocks_since_flush: u64,
    stats: ChainStats,
    /// Contract receipts of the last connected block (kept in memory for tools).
    last_contract_receipts: Vec<ContractReceipt>,
    /// Micro-transactions run and reverted in the last connected block.
    last_counts: (u64, u64),
    /// Micro-transactions each shard ran in the last connected block, then the global lane's.
    last_chunk_micro: Vec<u64>,
    /// Items the last connected block's global lane changed.
    last_global_changes: usize,
    /// Each shard's fee market in the last connected block.
    last_fees: Vec<ShardFees>,
    /// Global-lane calls left waiting by the last connected block.
    last_global_waiting: u64,
    /// Bitcoin-anchored finality: the latest anchored active block and the seal parents of
    /// recent blocks (see `anchor.rs`).
    anchor: anchor::Anchors,
    /// Per shard, whether this node runs it (all true on a full node).
    tracked: Vec<bool>,
    /// Shards the configuration names that this node does not run yet: they are taken up
    /// by state sync (see `state_sync.rs`).
    adding: Vec<ShardId>,
    /// The height of the checkpoint this node was bootstrapped at (0: none): no block at
    /// or below it can be rolled back.
    checkpoint: u64,
    /// The global state last served in pages: `(block, tip then, image)`, so that the
    /// pages of one block cost one copy of the image while the tip stays.
    global_pages: Option<(BlockHash, BlockHash, GlobalImage)>,
    /// The data directory's lock. Last, so that it is released only after the fields above
    /// are dropped (the block log's writer joined, the files closed).
    _lock: DirLock,
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

/// Transaction-index entries kept in memory at most (about 80 bytes each) before they are
/// written, whatever the flush schedule.
const TXINDEX_PENDING_MAX: usize = 200_000;

/// Version of the block rules: 4 = the global lane's waiting calls open its outbox too (for
/// a new node's bootstrap); 3 = a shard's waiting relays open its outbox (committed by
/// the header, for shard state sync); 2 = chunks' outboxes keyed by target under the
/// header's `outbox_root` (issue 20); 1 (no marker) = one Merkle root over every relay
/// emitted.
const BLOCK_RULES_VERSION: u8 = 4;

fn params_fingerprint(p: &ChainParams, systems: &Systems) -> Hash256 {
    fingerprint_with(p, systems, GLOBAL_STATE_VERSION, None, BLOCK_RULES_VERSION)
}

/// The parameter fingerprint; `contracts_rules` replaces the contract registry's rules
/// version (to recognise directories made under earlier contract rules).
fn fingerprint_with(
    p: &ChainParams,
    systems: &Systems,
    global_version: u8,
    contracts_rules: Option<u32>,
    block_rules: u8,
) -> Hash256 {
    let mut b = Vec::new();
    if block_rules > 1 {
        b.extend_from_slice(&[0xfb, block_rules]);
    }
    if global_version > 1 {
        b.extend_from_slice(&[0xfc, global_version]);
    }
    {
        b.push(0xff);
        b.extend(systems.iter().map(|c| c.id().0));
        let rules = |c: &dyn crate::system::SystemContract| match contracts_rules {
            Some(v) if c.id() == SystemId::CONTRACTS => v,
            _ => c.rules_version(),
        };
        // Rules versions only when some contract has one, so older fingerprints stay valid.
        if systems.iter().any(|c| rules(c) != 0) {
            b.push(0xfe);
            for c in systems.iter() {
                rules(c).encode(&mut b);
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
    // Only when not the default, so that existing fingerprints stay valid.
    if p.max_relays_per_call as usize != crate::lang::vm::MAX_RELAYS {
        b.push(0xfc);
        p.max_relays_per_call.encode(&mut b);
    }
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

/// Encodes what a connected block leaves for later: the inbound relays that did not fit
/// (`waiting`, one list per shard then the global lane's), then its chunks' outboxes
/// (`outbound`, one list per shard, then `global`, everything the global lane emitted), then
/// every chunk's roots (shards, then the global lane). The relay lists are each in canonical
/// order: the second is what [`crate::outbox`] commits to.
fn encode_outbound(
    waiting: &[Vec<Relay>],
    outbound: &[Vec<Relay>],
    global: &[Relay],
    chunks: &[ChunkRoots],
) -> Vec<u8> {
    let w: usize = waiting.iter().map(Vec::len).sum();
    let e: usize = outbound.iter().map(Vec::len).sum::<usize>() + global.len();
    // Deposits take ~56 bytes, contract calls ~200: size for the larger to avoid regrowing.
    let contract = waiting
        .iter()
        .chain(outbound)
        .flatten()
        .chain(global)
        .any(|r| matches!(r.kind, crate::relay::RelayKind::Contract(_)));
    let mut v = Vec::with_capacity((w + e) * if contract { 200 } else { 56 } + 18);
    crate::encode::write_compact_size(&mut v, w as u64);
    for r in waiting.iter().flatten() {
        r.encode(&mut v);
    }
    crate::encode::write_compact_size(&mut v, e as u64);
    for r in outbound.iter().flatten().chain(global) {
        r.encode(&mut v);
    }
    crate::encode::write_compact_size(&mut v, chunks.len() as u64);
    for c in chunks {
        v.extend_from_slice(&c.state_root.0);
        v.extend_from_slice(&c.outbox_root.0);
    }
    v
}

/// A chunk's state and outbox roots after a block (stored with its relays; the transaction
/// root is recomputed from the body when needed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ChunkRoots {
    pub state_root: Hash256,
    pub outbox_root: Hash256,
}

/// A connected block's stored relays, decoded: what waited, and its chunks' outboxes.
pub(crate) struct StoredRelays {
    /// Inbound relays that did not fit, first in line for the next block.
    pub waiting: Vec<Relay>,
    /// Every chunk's outbox: the shards' in shard order, then the global lane's (on a
    /// partial node, the untracked shards' relays to its own shards and the global lane).
    pub emitted: Vec<Relay>,
    /// Every chunk's roots after the block: the shards', then the global lane's.
    pub chunks: Vec<ChunkRoots>,
}

impl StoredRelays {
    /// Decodes [`encode_outbound`]'s bytes, checking every target against `order`.
    pub fn decode(data: &[u8], order: crate::shard::ShardOrder) -> Result<Self, StoreError> {
        let mut r = Reader::new(data);
        let waiting: Vec<Relay> =
            decode_list(&mut r, 8).map_err(|e| StoreError::corrupt("relays", e))?;
        let emitted: Vec<Relay> =
            decode_list(&mut r, 8).map_err(|e| StoreError::corrupt("relays", e))?;
        let n = r.length(64).map_err(|e| StoreError::corrupt("relays", e))?;
        let mut chunks = Vec::with_capacity(n);
        for _ in 0..n {
            let roots = (|| {
                Ok::<_, crate::encode::DecodeError>(ChunkRoots {
                    state_root: Hash256(r.array()?),
                    outbox_root: Hash256(r.array()?),
                })
            })()
            .map_err(|e| StoreError::corrupt("relays", e))?;
            chunks.push(roots);
        }
        if chunks.len() != order.shard_count() + 1 {
            return Err(StoreError::corrupt("relays", "chunk roots missing"));
        }
        r.finish().map_err(|e| StoreError::corrupt("relays", e))?;
        for x in waiting.iter().chain(&emitted) {
            crate::outbox::position(x.target, order)
                .map_err(|e| StoreError::corrupt("relays", e))?;
        }
        Ok(StoredRelays {
            waiting,
            emitted,
            chunks,
        })
    }

    /// What the next block runs (see [`route`]): the waiting relays and the outboxes, less
    /// the global lane's payouts (which ran in the block itself).
    pub fn next_inbound(self, n: usize) -> (Vec<Vec<Relay>>, Vec<Relay>) {
        let later = self
            .emitted
            .into_iter()
            .filter(|r| !r.origin.is_global() || crate::global::runs_next_block(r));
        route(self.waiting, later, n)
    }
}

/// Routes relays to their target: per shard, plus the global lane's list. Each target runs
/// its own outbox first (what waited, then what it sent itself), then what the other chunks
/// sent it, shards in order and then the global lane, each in emission order: the order in
/// which the proofs of the chunks' outboxes (see [`crate::outbox`]) give them.
fn route(
    waiting: impl IntoIterator<Item = Relay>,
    emitted: impl IntoIterator<Item = Relay>,
    n: usize,
) -> (Vec<Vec<Relay>>, Vec<Relay>) {
    let mut inbound = vec![Vec::new(); n];
    let mut global = Vec::new();
    let mut others = Vec::new();
    let mut push = |r: Relay| {
        if r.target.is_global() {
            global.push(r);
        } else {
            inbound[r.target.index()].push(r);
        }
    };
    for r in waiting {
        push(r);
    }
    for r in emitted {
        if r.origin == r.target {
            push(r);
        } else {
            others.push(r);
        }
    }
    for r in others {
        push(r);
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

fn chain_to_block_err(e: ChainError) -> BlockError {
    match e {
        ChainError::Store(s) => BlockError::Store(s),
        ChainError::Block(b) => b,
        other => BlockError::Store(StoreError::corrupt("chain", other)),
    }
}
