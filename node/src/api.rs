//! The typed answers of the node's chain, account, fee, peg and receipt methods: the
//! server serialises these structs and the clients (the agents, `rexe peg`, the devnet)
//! read them back with [`rexe_rpc::RpcClient::call_as`], so each answer's shape is written
//! once. Field names are the JSON keys documented in `docs/rpc.md`.

use serde::{Deserialize, Serialize};

/// A Bitcoin output script: its hex and, when it has one, its address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptInfo {
    /// The script, hex.
    pub hex: String,
    /// Its address on the peg's Bitcoin network (`null` for non-standard scripts).
    pub address: Option<String>,
}

/// A peg-out order (`listpegorders`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderInfo {
    /// The order's id.
    pub order_id: u64,
    /// The maker's L2 address.
    pub maker: String,
    /// rxBTC escrowed when it was placed, sats.
    pub amount: u64,
    /// rxBTC not yet taken, sats.
    pub remaining: u64,
    /// Smallest take, sats.
    pub min_fill: u64,
    /// Fee kept from the BTC owed, basis points.
    pub fee_bps: u16,
    /// L2 height at which it expires.
    pub expiry_height: u64,
    /// Where takers pay the BTC.
    pub btc_script: ScriptInfo,
}

/// Where a match stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchStatus {
    /// Waiting for the taker's BTC payment.
    Open,
    /// Paid and claimed: the escrow went to the recipient.
    Claimed,
    /// Not paid before the deadline (plus grace): the escrow goes back to the maker.
    Expired,
}

impl std::fmt::Display for MatchStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MatchStatus::Open => "open",
            MatchStatus::Claimed => "claimed",
            MatchStatus::Expired => "expired",
        })
    }
}

/// A match of a take against an order (`getpegmatch`, `listpegmatches`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchInfo {
    /// The match's id.
    pub match_id: u64,
    /// The order it took from.
    pub order_id: u64,
    /// Open, claimed or expired.
    pub state: MatchStatus,
    /// The outpoint that paid it, once claimed.
    pub paid_by: Option<String>,
    /// rxBTC escrowed for the taker, sats.
    pub amount_rx: u64,
    /// BTC the taker owes the maker, sats.
    pub amount_btc_owed: u64,
    /// Where the BTC goes.
    pub payee_script: ScriptInfo,
    /// Who receives the rxBTC.
    pub rx_recipient: String,
    /// Who took (and posted the bond).
    pub taker: String,
    /// The taker's bond, sats.
    pub bond: u64,
    /// Bitcoin height by which the payment must confirm.
    pub btc_deadline_height: u32,
    /// Bitcoin blocks left until the deadline (negative once past it).
    pub blocks_to_deadline: i64,
    /// Whether the maker can take the escrow back now.
    pub escrow_claimable: bool,
}

/// The tracked Bitcoin tip.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BtcTip {
    /// Block hash.
    pub hash: String,
    /// Height.
    pub height: u32,
    /// Header time.
    pub time: u32,
    /// Total work, hex.
    pub chainwork: String,
}

/// `getpeginfo`: the peg's parameters, the tracked Bitcoin tip and escrow totals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PegInfo {
    /// The Bitcoin network the peg follows.
    pub bitcoin_network: String,
    /// Best tracked Bitcoin block.
    pub btc_tip: BtcTip,
    /// Headers tracked (the pruned window).
    pub headers_tracked: usize,
    /// Confirmations a payment needs before it is claimed.
    pub confirmations_required: u32,
    /// Bitcoin blocks a taker has to pay.
    pub payment_window: u32,
    /// Bitcoin blocks after the deadline a late payment is still accepted.
    pub claim_grace: u32,
    /// Share of the bond a late payment forfeits, basis points.
    pub late_fee_bps: u16,
    /// Bond per take, basis points of the amount.
    pub bond_bps: u16,
    /// Smallest bond, sats.
    pub bond_min: u64,
    /// Open orders.
    pub open_orders: usize,
    /// rxBTC in open orders, sats.
    pub escrow_in_orders: u64,
    /// rxBTC in open matches, sats.
    pub escrow_in_matches: u64,
    /// Bonds held, sats.
    pub bonds_held: u64,
    /// rxBTC released to takers, sats.
    pub released: u64,
    /// rxBTC refunded to makers, sats.
    pub refunded: u64,
}

/// `getbtcblock`: a tracked Bitcoin header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BtcBlockInfo {
    /// Block hash.
    pub hash: String,
    /// Height.
    pub height: u32,
    /// Header time.
    pub time: u32,
    /// Confirmations on the best tracked chain (0 on a stale branch).
    pub confirmations: u32,
    /// Whether it is on the best tracked chain.
    pub on_best_chain: bool,
}

/// One order a peg-in would take (`pegmatcher`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatcherPiece {
    /// The order.
    pub order_id: u64,
    /// rxBTC taken from it, sats.
    pub amount: u64,
    /// BTC owed for it, sats.
    pub btc_owed: u64,
    /// Bond the take needs, sats.
    pub bond: u64,
    /// Where the BTC goes.
    pub payee_script: ScriptInfo,
}

/// `pegmatcher amount`: the orders a peg-in of `amount` would take.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatcherPlan {
    /// The amount asked for, sats.
    pub requested: u64,
    /// The amount the orders cover, sats.
    pub matched: u64,
    /// The orders, in the order they are taken.
    pub orders: Vec<MatcherPiece>,
}

/// `getcallreceipt txid`: how a transaction ran on the active chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallReceipt {
    /// The transaction.
    pub txid: String,
    /// The system contract it called (its `SystemId`; the peg's is 1).
    pub contract: u8,
    /// The block that holds it.
    pub blockhash: String,
    /// That block's height.
    pub height: u64,
    /// Blocks on top of it, itself included.
    pub confirmations: u64,
    /// Whether the block is final (checkpointed).
    #[serde(rename = "final")]
    pub is_final: bool,
    /// Whether the call succeeded.
    pub success: bool,
    /// The refusal's message, when it failed.
    pub error: Option<String>,
    /// The refusal's kind (`invalid`, `retryable`, `insufficient-funds`, `already-done`).
    pub error_kind: Option<String>,
    /// The refusal's stable reason code, when it has one.
    pub error_code: Option<String>,
}

impl CallReceipt {
    /// The refusal's kind, when the call failed with a known one.
    pub fn refusal_kind(&self) -> Option<rexe_chain::system::RefusalKind> {
        self.error_kind
            .as_deref()
            .and_then(rexe_chain::system::RefusalKind::from_name)
    }
}

/// The chain's anchor: the last checkpointed (final) block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// Its height.
    pub height: u64,
    /// Its hash.
    pub hash: String,
}

/// `getchaininfo`: the node's chain and tip.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainInfo {
    /// `main`, `test`, `regtest` or `devnet`.
    pub network: String,
    /// Tip height.
    pub height: u64,
    /// Tip hash.
    pub bestblockhash: String,
    /// Work of the tip's chain, 64 hex digits, big-endian (compare as strings).
    pub chainwork: String,
    /// Shard count.
    pub shards: usize,
    /// Transactions waiting in the mempool.
    pub mempool_size: usize,
    /// The tip's state root.
    pub state_root: String,
    /// The last final block, once there is one.
    pub anchor: Option<Anchor>,
    /// The shards this node runs (all of them on a full node).
    #[serde(default)]
    pub tracked_shards: Vec<u16>,
    /// Shards the configuration adds that are still being taken up by state sync.
    #[serde(default)]
    pub shards_to_sync: Vec<u16>,
    /// The state sync under way, if any.
    #[serde(default)]
    pub state_sync: Option<StateSyncInfo>,
    /// The checkpoint this node started at, when it was bootstrapped rather than synced
    /// from genesis (no block at or below it can be rolled back, or served whole).
    #[serde(default)]
    pub bootstrapped_at: Option<Anchor>,
}

/// A shard state sync under way (`getchaininfo`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateSyncInfo {
    /// The shard.
    pub shard: u16,
    /// The block whose state is fetched (the node's tip).
    pub block: String,
    /// Its height.
    pub height: u64,
    /// Rows stored so far.
    pub rows: u64,
    /// Bytes of rows stored so far.
    pub bytes: u64,
    /// Whether every page is in (the proofs of what the shard runs next come last).
    pub pages_done: bool,
}

/// `getaccount address`: an account's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountInfo {
    /// The address, encoded for the node's network.
    pub address: String,
    /// Its shard.
    pub shard: u16,
    /// Confirmed balance, sats.
    pub balance: u64,
    /// Confirmed nonce: the next transaction's, counting only the chain.
    pub nonce: u64,
    /// The nonce after the account's transactions waiting in the mempool.
    pub next_nonce: u64,
    /// Assets other than rxBTC in its asset wallets, by symbol.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assets: Vec<AssetBalance>,
}

/// One asset wallet of an account (see `getaccount`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetBalance {
    /// The asset's symbol.
    pub asset: String,
    /// How much, in the asset's base units.
    pub amount: u64,
}

/// `estimatefee [address_or_shard] [blocks]`: one shard's fee estimate, msat per gas.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeeEstimate {
    /// The shard.
    pub shard: u16,
    /// Its base fee now.
    pub base_fee_msat: u64,
    /// The base fee's worst case for each of the next blocks.
    pub forecast_msat: Vec<u64>,
    /// The suggested tip.
    pub tip_msat: u64,
    /// A max fee that stays includable through the forecast, tip included.
    pub max_fee_msat: u64,
    /// Transactions waiting for the shard.
    pub pending: usize,
    /// Their gas.
    pub pending_gas: u64,
    /// Gas of a plain transfer.
    pub transfer_gas: u64,
}
