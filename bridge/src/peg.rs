//! The peg's consensus state machine (pure, I/O-free): peg-out orders, matches (takes),
//! claims proven by SPV against the tracked Bitcoin header chain, and expiry.
//!
//! The peg never mints and never moves rxBTC itself. The chain debits the maker's deposit
//! (for [`Peg::place_order`]) and the taker's bond (for [`Peg::take`]) before calling, reverts
//! those debits when the call fails, and applies every returned [`Effect`] (credits). The peg
//! only keeps escrow bookkeeping, so that at every step
//! `deposited == escrow in orders + escrow in open matches + released + refunded`
//! and `bonds posted == bonds in open matches + bonds returned + bonds forfeited`
//! ([`Peg::check_invariants`]).
//!
//! # `OP_RETURN` commitment (format version 1)
//!
//! A paying Bitcoin transaction carries exactly one output whose script is
//! `OP_RETURN <37-byte push>` with the push `"RXPG" || 0x01 || SHA256(ids)`, where `ids` is
//! the concatenation of the claimed match ids, sorted ascending and deduplicated, each as
//! 8 bytes big-endian. A claim must name exactly that set of match ids. See [`commitment`].
//!
//! # Claim rules
//!
//! A claim `(raw_tx, block_hash, merkle_branch, position, coinbase_tx, coinbase_branch,
//! match_ids)` is accepted when the block is on the best tracked chain with at least `K`
//! confirmations, the block's coinbase is proven at index 0 and the payment's Merkle proof
//! holds at the same depth ([`crate::spv::verify_pinned`]), the commitment matches, and every
//! match is paid by a distinct output (`(txid, vout)` never used before, by any claim) to its
//! payee script of at least what it owes. Each match must still hold its escrow:
//!
//! - open and paid at or below its deadline: escrow released, bond returned ([`Timing::OnTime`]);
//! - open and paid after its deadline (a fee spike, a slow mempool): escrow released, the
//!   [`PegParams::late_fee_bps`] share of the bond to the maker, the rest back
//!   ([`Timing::Late`]);
//! - expired, and its order still holds that much escrow (no one re-took it): escrow released
//!   from the order, the bond already went to the maker ([`Timing::AfterExpiry`]);
//! - otherwise [`ClaimError::EscrowRetaken`].

use std::collections::{BTreeMap, BTreeSet};

use bitcoin::hashes::{sha256, Hash};
use bitcoin::opcodes::all::OP_RETURN;
use bitcoin::script::Instruction;
use bitcoin::{BlockHash, OutPoint, Script, ScriptBuf, Transaction, TxMerkleNode};

use rexe_chain::system::RefusalKind;

use crate::headers::HeaderChain;
use crate::spv::{self, SpvError};
use crate::tracked::TrackedMap;

/// An amount in satoshis (rxBTC is 1:1 with BTC).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Sats(pub u64);

/// A 32-byte L2 address.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct L2Address(pub [u8; 32]);

/// Identifier of a peg-out order (assigned in creation order, so lower = older).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct OrderId(pub u64);

/// Identifier of a match.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct MatchId(pub u64);

/// Tag opening the commitment push.
pub const COMMITMENT_TAG: &[u8; 4] = b"RXPG";
/// Current commitment format version.
pub const COMMITMENT_VERSION: u8 = 1;
/// Maximum fee a maker may offer, in basis points (10%).
pub const MAX_FEE_BPS: u16 = 1_000;

/// The commitment push (`"RXPG" || 0x01 || SHA256(sorted, deduplicated ids as u64 BE)`).
pub fn commitment(ids: &[MatchId]) -> [u8; 37] {
    let set: BTreeSet<MatchId> = ids.iter().copied().collect();
    let mut buf = Vec::with_capacity(set.len() * 8);
    for id in set {
        buf.extend_from_slice(&id.0.to_be_bytes());
    }
    let mut out = [0u8; 37];
    out[..4].copy_from_slice(COMMITMENT_TAG);
    out[4] = COMMITMENT_VERSION;
    out[5..].copy_from_slice(&sha256::Hash::hash(&buf).to_byte_array());
    out
}

/// The full `OP_RETURN` script committing to `ids`.
pub fn commitment_script(ids: &[MatchId]) -> ScriptBuf {
    ScriptBuf::new_op_return(commitment(ids))
}

/// Consensus parameters of the peg.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PegParams {
    /// Confirmations `K` a payment block needs before a claim (the L2 treats depth `K` as final).
    pub confirmations: u32,
    /// Bond as basis points of the taken amount.
    pub bond_bps: u16,
    /// Minimum bond.
    pub bond_min: Sats,
    /// Bitcoin blocks from the tracked tip at take time to the match's payment deadline.
    pub payment_window: u32,
    /// Extra Bitcoin blocks after `deadline + K` before an unpaid match expires, so that a
    /// payment made at the deadline can still be claimed.
    pub claim_grace: u32,
    /// Share of the bond, in basis points, that goes to the maker when a match is paid after
    /// its deadline but still claimed (the rest returns to the taker).
    pub late_fee_bps: u16,
}

impl PegParams {
    /// Defaults: K = 6, bond 1% min 1,000 sats, 12-block payment window, 6-block claim grace,
    /// late fee half the bond.
    pub fn default_for(network: bitcoin::Network) -> Self {
        let confirmations = if network == bitcoin::Network::Regtest {
            1
        } else {
            6
        };
        PegParams {
            confirmations,
            bond_bps: 100,
            bond_min: Sats(1_000),
            payment_window: 12,
            claim_grace: 6,
            late_fee_bps: 5_000,
        }
    }

    /// The part of `bond` a late payment forfeits to the maker.
    pub fn late_fee(&self, bond: Sats) -> Sats {
        let fee = u128::from(bond.0) * u128::from(self.late_fee_bps.min(10_000)) / 10_000;
        Sats(fee as u64)
    }

    /// The bond required to take `amount`: `max(amount * bond_bps / 10_000, bond_min)`.
    pub fn required_bond(&self, amount: Sats) -> Sats {
        let pct = (u128::from(amount.0) * u128::from(self.bond_bps) / 10_000) as u64;
        Sats(pct.max(self.bond_min.0))
    }
}

/// A peg-out order: rxBTC escrowed by the maker, sold for BTC paid to `btc_script`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Order {
    /// Id (creation order).
    pub id: OrderId,
    /// Who escrowed the rxBTC.
    pub maker: L2Address,
    /// Amount originally escrowed.
    pub amount: Sats,
    /// Where the maker wants BTC.
    pub btc_script: ScriptBuf,
    /// Smallest take allowed (except taking the whole remainder).
    pub min_fill: Sats,
    /// Maker's fee in basis points, deducted from the BTC owed.
    pub fee_bps: u16,
    /// L2 height from which the order no longer accepts takes and is refunded.
    pub expiry_height: u64,
    /// Escrow not yet matched.
    pub remaining: Sats,
}

/// The maker's terms for [`Peg::place_order`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NewOrder {
    /// Amount escrowed.
    pub amount: Sats,
    /// Where the maker wants BTC.
    pub btc_script: ScriptBuf,
    /// Smallest take allowed (except taking the whole remainder).
    pub min_fill: Sats,
    /// Maker's fee in basis points.
    pub fee_bps: u16,
    /// L2 height from which the order is expired.
    pub expiry_height: u64,
}

/// State of a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MatchState {
    /// Waiting for payment and claim.
    Open,
    /// Paid by `outpoint` and released.
    Claimed {
        /// The output that paid it.
        outpoint: OutPoint,
    },
    /// Unpaid at its deadline; escrow went back, bond went to the maker.
    Expired,
}

/// A take of (part of) an order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Match {
    /// Id.
    pub match_id: MatchId,
    /// The order taken.
    pub order_id: OrderId,
    /// rxBTC released to `rx_recipient` on claim.
    pub amount_rx: Sats,
    /// BTC the taker must pay to `payee_script` (`amount_rx` minus the maker's fee).
    pub amount_btc_owed: Sats,
    /// The maker's BTC script.
    pub payee_script: ScriptBuf,
    /// Who receives the rxBTC.
    pub rx_recipient: L2Address,
    /// Who posted the bond.
    pub taker: L2Address,
    /// The bond.
    pub bond: Sats,
    /// Highest Bitcoin block height a paying transaction may be confirmed in.
    pub btc_deadline_height: u32,
    /// State.
    pub state: MatchState,
}

/// A credit the chain must apply (the peg never mints: every effect moves escrow or bonds the
/// chain already debited).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Effect {
    /// Escrow released to a match's recipient after a valid claim.
    Release {
        /// Recipient.
        to: L2Address,
        /// Amount.
        amount: Sats,
        /// The match.
        match_id: MatchId,
    },
    /// Unmatched escrow back to the maker (cancel, order expiry, or a match expiring after its
    /// order closed).
    Refund {
        /// The maker.
        to: L2Address,
        /// Amount.
        amount: Sats,
        /// The order.
        order_id: OrderId,
    },
    /// Bond back to the taker after a claim.
    BondReturn {
        /// The taker.
        to: L2Address,
        /// Amount.
        amount: Sats,
        /// The match.
        match_id: MatchId,
    },
    /// Bond forfeited to the maker when a match expires unpaid.
    BondToMaker {
        /// The maker.
        to: L2Address,
        /// Amount.
        amount: Sats,
        /// The match.
        match_id: MatchId,
    },
}

/// A refusal with a stable, machine-readable reason (kebab-case) and a kind. The L2 node
/// returns them as JSON-RPC `error.data.reason` / `error.data.kind` and in call receipts as
/// `error_code` / `error_kind`; agents decide on the kind, never on the message text.
/// bridge/README.md lists every code.
pub trait Refusal: std::fmt::Display {
    /// The stable reason code.
    fn reason(&self) -> &'static str;
    /// What the refusal means for the sender (default: the call can never succeed).
    fn kind(&self) -> RefusalKind {
        RefusalKind::Invalid
    }
}

/// Why an order was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    /// Zero amount.
    #[error("order amount must be positive")]
    ZeroAmount,
    /// min_fill above the amount.
    #[error("min_fill {min_fill} above the order amount {amount}")]
    MinFillAboveAmount {
        /// min_fill.
        min_fill: u64,
        /// amount.
        amount: u64,
    },
    /// Fee too high.
    #[error("fee {0} bps above the maximum {MAX_FEE_BPS}")]
    FeeTooHigh(u16),
    /// Expiry not in the future.
    #[error("expiry height {expiry} not above the current height {height}")]
    ExpiryInPast {
        /// expiry.
        expiry: u64,
        /// current.
        height: u64,
    },
    /// The payout script is not one Bitcoin Core relays by default: a payment to it could
    /// never confirm, and the taker's bond would go to the maker.
    #[error(
        "payout script is {kind}, which Bitcoin Core does not relay: use P2PKH, P2SH, P2WPKH, P2WSH or P2TR"
    )]
    NonStandardPayee {
        /// What the script is (bare multisig, witness v2, OP_RETURN, ...).
        kind: &'static str,
    },
    /// Even the whole order, after the maker's fee, is below the payee type's dust threshold.
    #[error("the order pays {owed} sats after its fee, below the dust threshold {dust} of its payout script")]
    DustPayee {
        /// BTC owed for the whole order.
        owed: u64,
        /// Core's dust threshold for the script at the default dust relay fee.
        dust: u64,
    },
    /// A take of exactly `min_fill` would owe, after the maker's fee, less than the payee
    /// type's dust threshold: such a take could never be paid (`TakeError::Dust`). A
    /// `min_fill` of 0 means no minimum beyond that threshold and is allowed.
    #[error("min_fill {min_fill} pays {owed} sats after its fee, below the dust threshold {dust} of its payout script")]
    DustMinFill {
        /// The order's min_fill.
        min_fill: u64,
        /// BTC owed for a take of min_fill.
        owed: u64,
        /// Core's dust threshold for the script at the default dust relay fee.
        dust: u64,
    },
    /// Counter overflow.
    #[error("too many orders")]
    Overflow,
}

/// Why a take was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TakeError {
    /// No such open order.
    #[error("unknown or closed order {0:?}")]
    UnknownOrder(OrderId),
    /// The order has expired.
    #[error("order {order:?} expired at height {expiry} (now {height})")]
    OrderExpired {
        /// order.
        order: OrderId,
        /// expiry.
        expiry: u64,
        /// now.
        height: u64,
    },
    /// Zero amount.
    #[error("take amount must be positive")]
    ZeroAmount,
    /// More than the order has left.
    #[error("take of {amount} exceeds the order's remaining {remaining}")]
    ExceedsRemaining {
        /// asked.
        amount: u64,
        /// left.
        remaining: u64,
    },
    /// Below the order's minimum fill.
    #[error("take of {amount} below the order's min_fill {min_fill}")]
    BelowMinFill {
        /// asked.
        amount: u64,
        /// min_fill.
        min_fill: u64,
    },
    /// The BTC owed would be dust for the payee script.
    #[error("BTC owed {owed} is below the dust limit {dust} of the payee script")]
    Dust {
        /// owed.
        owed: u64,
        /// dust limit.
        dust: u64,
    },
    /// Bond not (fully) paid.
    #[error("bond {paid} below the required {required}")]
    BondTooSmall {
        /// posted.
        paid: u64,
        /// required.
        required: u64,
    },
    /// Deadline or counter overflow.
    #[error("overflow computing the match")]
    Overflow,
}

/// Why a cancel was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CancelError {
    /// No such open order.
    #[error("unknown or closed order {0:?}")]
    UnknownOrder(OrderId),
    /// Caller is not the maker.
    #[error("only the maker may cancel order {0:?}")]
    NotMaker(OrderId),
}

/// Why a claim was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// No match ids.
    #[error("a claim must name at least one match")]
    NoMatches,
    /// A match id listed twice.
    #[error("match {0:?} listed twice")]
    DuplicateMatchId(MatchId),
    /// Block not tracked.
    #[error("block {0} is not in the tracked header chain")]
    UnknownBlock(BlockHash),
    /// Block on a stale branch.
    #[error("block {0} is not on the best tracked Bitcoin chain")]
    StaleBlock(BlockHash),
    /// Not deep enough.
    #[error("block has {have} confirmations, {need} required")]
    TooFewConfirmations {
        /// have.
        have: u32,
        /// need.
        need: u32,
    },
    /// Transaction or proof invalid.
    #[error(transparent)]
    Spv(#[from] SpvError),
    /// No RXPG commitment.
    #[error("transaction has no RXPG OP_RETURN commitment")]
    MissingCommitment,
    /// More than one RXPG commitment.
    #[error("transaction has more than one RXPG OP_RETURN commitment")]
    MultipleCommitments,
    /// A commitment that is malformed or does not commit to the claimed ids.
    #[error("RXPG OP_RETURN does not commit to the claimed match ids")]
    WrongCommitment,
    /// Unknown match.
    #[error("unknown match {0:?}")]
    UnknownMatch(MatchId),
    /// Match already claimed.
    #[error("match {0:?} already claimed")]
    AlreadyClaimed(MatchId),
    /// A late payment for a match that expired unpaid and whose escrow is no longer in its
    /// order (re-taken by someone else, cancelled or refunded): nothing is left to release.
    #[error(
        "match {0:?} expired unpaid and its escrow was re-taken or refunded: the late payment can no longer be claimed"
    )]
    EscrowRetaken(MatchId),
    /// No output pays the payee script.
    #[error("match {0:?}: no output pays its payee script")]
    WrongScript(MatchId),
    /// Outputs to the script pay less than owed.
    #[error("match {id:?}: outputs to its script pay at most {paid}, {owed} owed")]
    ShortAmount {
        /// match.
        id: MatchId,
        /// best output.
        paid: u64,
        /// owed.
        owed: u64,
    },
    /// The only suitable output already paid another match of this claim.
    #[error("match {id:?}: output {outpoint} would pay two matches")]
    OutputPaysTwoMatches {
        /// match.
        id: MatchId,
        /// output.
        outpoint: OutPoint,
    },
    /// The only suitable output was already used by an earlier claim.
    #[error("match {id:?}: output {outpoint} was already claimed")]
    OutpointAlreadyClaimed {
        /// match.
        id: MatchId,
        /// output.
        outpoint: OutPoint,
    },
}

/// A Bitcoin payment proven by SPV, as a claim carries it.
#[derive(Debug, Clone, Copy)]
pub struct PaymentProof<'a> {
    /// The paying transaction, consensus-encoded.
    pub raw_tx: &'a [u8],
    /// The block it is in.
    pub block_hash: BlockHash,
    /// Its Merkle branch, leaf up (internal byte order).
    pub branch: &'a [TxMerkleNode],
    /// Its position in the block.
    pub position: u32,
    /// The block's coinbase transaction, consensus-encoded.
    pub coinbase_tx: &'a [u8],
    /// The coinbase's branch (index 0): pins the tree's depth.
    pub coinbase_branch: &'a [TxMerkleNode],
}

/// When a claimed match was paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// In a block at or below the deadline: escrow released, bond returned.
    OnTime,
    /// After the deadline, before expiry: escrow released, the late fee of the bond to the
    /// maker, the rest back.
    Late,
    /// After the match expired, while its order still holds the escrow: escrow released from
    /// the order; the bond was forfeited at expiry.
    AfterExpiry,
}

/// One match of a verified claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimedMatch {
    /// The match.
    pub match_id: MatchId,
    /// The output that pays it.
    pub outpoint: OutPoint,
    /// On time or late.
    pub timing: Timing,
}

/// The peg's global state. Maps record their writes ([`TrackedMap`]) so that a block's
/// changed items are known without scanning the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peg {
    pub(crate) params: PegParams,
    pub(crate) orders: TrackedMap<OrderId, Order>,
    pub(crate) matches: TrackedMap<MatchId, Match>,
    /// Makers of closed orders (for refunds of matches that expire later).
    pub(crate) makers: TrackedMap<OrderId, L2Address>,
    /// Outputs that paid a claim (never reused).
    pub(crate) used_outpoints: TrackedMap<OutPoint, ()>,
    pub(crate) next_order: u64,
    pub(crate) next_match: u64,
    pub(crate) deposited: u128,
    pub(crate) released: u128,
    pub(crate) refunded: u128,
    pub(crate) bonds_posted: u128,
    pub(crate) bonds_returned: u128,
    pub(crate) bonds_forfeited: u128,
}

/// Bookkeeping totals (see [`Peg::totals`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Totals {
    /// All escrow ever deposited by makers.
    pub deposited: u128,
    /// Escrow still in open orders.
    pub in_orders: u128,
    /// Escrow in open matches.
    pub in_matches: u128,
    /// Released to takers' recipients.
    pub released: u128,
    /// Refunded to makers.
    pub refunded: u128,
    /// Bonds ever posted.
    pub bonds_posted: u128,
    /// Bonds held by open matches.
    pub bonds_held: u128,
    /// Bonds returned to takers.
    pub bonds_returned: u128,
    /// Bonds forfeited to makers.
    pub bonds_forfeited: u128,
}

fn is_rxpg(script: &Script) -> Option<Option<Vec<u8>>> {
    if !script.is_op_return() {
        return None;
    }
    let mut ins = script.instructions();
    match ins.next() {
        Some(Ok(Instruction::Op(op))) if op == OP_RETURN => {}
        _ => return None,
    }
    match ins.next() {
        Some(Ok(Instruction::PushBytes(p))) if p.as_bytes().starts_with(COMMITMENT_TAG) => {
            let data = p.as_bytes().to_vec();
            Some(ins.next().is_none().then_some(data))
        }
        _ => None,
    }
}

impl Peg {
    /// An empty peg.
    pub fn new(params: PegParams) -> Self {
        Peg {
            params,
            orders: TrackedMap::new(),
            matches: TrackedMap::new(),
            makers: TrackedMap::new(),
            used_outpoints: TrackedMap::new(),
            next_order: 0,
            next_match: 0,
            deposited: 0,
            released: 0,
            refunded: 0,
            bonds_posted: 0,
            bonds_returned: 0,
            bonds_forfeited: 0,
        }
    }

    /// The parameters.
    pub fn params(&self) -> &PegParams {
        &self.params
    }

    /// An open order.
    pub fn order(&self, id: OrderId) -> Option<&Order> {
        self.orders.get(&id)
    }

    /// Open orders by id.
    pub fn orders(&self) -> impl Iterator<Item = &Order> {
        self.orders.values()
    }

    /// A match (any state).
    pub fn get_match(&self, id: MatchId) -> Option<&Match> {
        self.matches.get(&id)
    }

    /// All matches by id.
    pub fn matches(&self) -> impl Iterator<Item = &Match> {
        self.matches.values()
    }

    /// Whether a payment of match `id` could still be claimed: the match is open, or it expired
    /// and its order still holds its escrow (see [`ClaimError::EscrowRetaken`]).
    pub fn escrow_claimable(&self, id: MatchId) -> bool {
        let Some(m) = self.matches.get(&id) else {
            return false;
        };
        match m.state {
            MatchState::Open => true,
            MatchState::Claimed { .. } => false,
            MatchState::Expired => self
                .orders
                .get(&m.order_id)
                .is_some_and(|o| o.remaining >= m.amount_rx),
        }
    }

    /// Whether an output has paid a match.
    pub fn is_outpoint_used(&self, op: &OutPoint) -> bool {
        self.used_outpoints.contains_key(op)
    }

    /// Escrow and bond totals.
    pub fn totals(&self) -> Totals {
        let open = self
            .matches
            .values()
            .filter(|m| m.state == MatchState::Open);
        let (in_matches, bonds_held) = open.fold((0u128, 0u128), |(a, b), m| {
            (a + u128::from(m.amount_rx.0), b + u128::from(m.bond.0))
        });
        Totals {
            deposited: self.deposited,
            in_orders: self
                .orders
                .values()
                .map(|o| u128::from(o.remaining.0))
                .sum(),
            in_matches,
            released: self.released,
            refunded: self.refunded,
            bonds_posted: self.bonds_posted,
            bonds_held,
            bonds_returned: self.bonds_returned,
            bonds_forfeited: self.bonds_forfeited,
        }
    }

    /// Checks `deposited == in_orders + in_matches + released + refunded` and the same for bonds.
    pub fn check_invariants(&self) -> Result<(), String> {
        let t = self.totals();
        if t.deposited != t.in_orders + t.in_matches + t.released + t.refunded {
            return Err(format!("escrow invariant broken: {t:?}"));
        }
        if t.bonds_posted != t.bonds_held + t.bonds_returned + t.bonds_forfeited {
            return Err(format!("bond invariant broken: {t:?}"));
        }
        Ok(())
    }

    /// Checks an order's terms without creating it.
    pub fn validate_order(&self, new: &NewOrder, l2_height: u64) -> Result<(), OrderError> {
        let NewOrder {
            amount,
            btc_script,
            min_fill,
            fee_bps,
            expiry_height,
        } = new;
        let (amount, min_fill, fee_bps, expiry_height) =
            (*amount, *min_fill, *fee_bps, *expiry_height);
        if amount.0 == 0 {
            return Err(OrderError::ZeroAmount);
        }
        if min_fill > amount {
            return Err(OrderError::MinFillAboveAmount {
                min_fill: min_fill.0,
                amount: amount.0,
            });
        }
        if fee_bps > MAX_FEE_BPS {
            return Err(OrderError::FeeTooHigh(fee_bps));
        }
        if expiry_height <= l2_height {
            return Err(OrderError::ExpiryInPast {
                expiry: expiry_height,
                height: l2_height,
            });
        }
        if let Some(kind) = nonstandard_payee(btc_script) {
            return Err(OrderError::NonStandardPayee { kind });
        }
        let (owed, dust) = (
            Self::owed(amount, fee_bps).0,
            btc_script.minimal_non_dust().to_sat(),
        );
        if owed < dust {
            return Err(OrderError::DustPayee { owed, dust });
        }
        let min_owed = Self::owed(min_fill, fee_bps).0;
        if min_fill.0 > 0 && min_owed < dust {
            return Err(OrderError::DustMinFill {
                min_fill: min_fill.0,
                owed: min_owed,
                dust,
            });
        }
        if self.next_order == u64::MAX {
            return Err(OrderError::Overflow);
        }
        Ok(())
    }

    /// Creates an order. The chain has debited `amount` from `maker` (reverted if this fails).
    pub fn place_order(
        &mut self,
        maker: L2Address,
        new: NewOrder,
        l2_height: u64,
    ) -> Result<OrderId, OrderError> {
        self.validate_order(&new, l2_height)?;
        let NewOrder {
            amount,
            btc_script,
            min_fill,
            fee_bps,
            expiry_height,
        } = new;
        let id = OrderId(self.next_order);
        self.next_order = self.next_order.checked_add(1).ok_or(OrderError::Overflow)?;
        self.deposited += u128::from(amount.0);
        self.makers.insert(id, maker);
        self.orders.insert(
            id,
            Order {
                id,
                maker,
                amount,
                btc_script,
                min_fill,
                fee_bps,
                expiry_height,
                remaining: amount,
            },
        );
        Ok(id)
    }

    /// BTC owed for taking `amount` of an order with `fee_bps`: `amount - floor(amount*fee/10^4)`.
    pub fn owed(amount: Sats, fee_bps: u16) -> Sats {
        let fee = (u128::from(amount.0) * u128::from(fee_bps) / 10_000) as u64;
        Sats(amount.0 - fee)
    }

    fn check_take(&self, order: &Order, amount: Sats, l2_height: u64) -> Result<Sats, TakeError> {
        if l2_height >= order.expiry_height {
            return Err(TakeError::OrderExpired {
                order: order.id,
                expiry: order.expiry_height,
                height: l2_height,
            });
        }
        if amount.0 == 0 {
            return Err(TakeError::ZeroAmount);
        }
        if amount > order.remaining {
            return Err(TakeError::ExceedsRemaining {
                amount: amount.0,
                remaining: order.remaining.0,
            });
        }
        if amount < order.min_fill && amount != order.remaining {
            return Err(TakeError::BelowMinFill {
                amount: amount.0,
                min_fill: order.min_fill.0,
            });
        }
        let owed = Self::owed(amount, order.fee_bps);
        let dust = order.btc_script.minimal_non_dust().to_sat();
        if owed.0 < dust {
            return Err(TakeError::Dust { owed: owed.0, dust });
        }
        Ok(owed)
    }

    /// Checks a take without making it; returns the BTC that would be owed.
    pub fn validate_take(
        &self,
        order_id: OrderId,
        amount: Sats,
        bond: Sats,
        l2_height: u64,
    ) -> Result<Sats, TakeError> {
        let order = self
            .orders
            .get(&order_id)
            .ok_or(TakeError::UnknownOrder(order_id))?;
        let owed = self.check_take(order, amount, l2_height)?;
        let required = self.params.required_bond(amount);
        if bond < required {
            return Err(TakeError::BondTooSmall {
                paid: bond.0,
                required: required.0,
            });
        }
        if self.next_match == u64::MAX {
            return Err(TakeError::Overflow);
        }
        Ok(owed)
    }

    /// Takes `amount` of an order. The chain has debited `bond` from `taker` (reverted if this
    /// fails). The deadline is `btc_tip_height + payment_window`.
    #[allow(clippy::too_many_arguments)]
    pub fn take(
        &mut self,
        order_id: OrderId,
        amount: Sats,
        rx_recipient: L2Address,
        taker: L2Address,
        bond: Sats,
        l2_height: u64,
        btc_tip_height: u32,
    ) -> Result<MatchId, TakeError> {
        let owed = self.validate_take(order_id, amount, bond, l2_height)?;
        let deadline = btc_tip_height
            .checked_add(self.params.payment_window)
            .ok_or(TakeError::Overflow)?;
        let match_id = MatchId(self.next_match);
        self.next_match = self.next_match.checked_add(1).ok_or(TakeError::Overflow)?;
        let order = self
            .orders
            .get_mut(&order_id)
            .ok_or(TakeError::UnknownOrder(order_id))?;
        order.remaining.0 -= amount.0;
        let payee_script = order.btc_script.clone();
        self.bonds_posted += u128::from(bond.0);
        self.matches.insert(
            match_id,
            Match {
                match_id,
                order_id,
                amount_rx: amount,
                amount_btc_owed: owed,
                payee_script,
                rx_recipient,
                taker,
                bond,
                btc_deadline_height: deadline,
                state: MatchState::Open,
            },
        );
        Ok(match_id)
    }

    /// Cancels an order: its unmatched rest goes back to the maker. Open matches stay; if they
    /// expire later their escrow is refunded to the maker directly.
    pub fn cancel(
        &mut self,
        order_id: OrderId,
        caller: L2Address,
    ) -> Result<Vec<Effect>, CancelError> {
        self.validate_cancel(order_id, caller)?;
        let order = self
            .orders
            .remove(&order_id)
            .ok_or(CancelError::UnknownOrder(order_id))?;
        Ok(self.refund_order(order))
    }

    /// Checks a cancel without making it.
    pub fn validate_cancel(&self, order_id: OrderId, caller: L2Address) -> Result<(), CancelError> {
        let order = self
            .orders
            .get(&order_id)
            .ok_or(CancelError::UnknownOrder(order_id))?;
        if order.maker != caller {
            return Err(CancelError::NotMaker(order_id));
        }
        Ok(())
    }

    fn refund_order(&mut self, order: Order) -> Vec<Effect> {
        if order.remaining.0 == 0 {
            return Vec::new();
        }
        self.refunded += u128::from(order.remaining.0);
        vec![Effect::Refund {
            to: order.maker,
            amount: order.remaining,
            order_id: order.id,
        }]
    }

    /// Expires, in id order, orders whose `expiry_height <= l2_height` (refund) and open
    /// matches with `btc_tip_height > deadline + K + claim_grace` (escrow back to the order, or
    /// to the maker if the order is closed; bond to the maker). Call once per L2 block.
    pub fn expire(&mut self, l2_height: u64, btc_tip_height: u32) -> Vec<Effect> {
        let mut effects = Vec::new();
        let grace = u64::from(self.params.confirmations) + u64::from(self.params.claim_grace);
        let expired: Vec<MatchId> = self
            .matches
            .values()
            .filter(|m| {
                m.state == MatchState::Open
                    && u64::from(btc_tip_height) > u64::from(m.btc_deadline_height) + grace
            })
            .map(|m| m.match_id)
            .collect();
        for id in expired {
            let Some(m) = self.matches.get_mut(&id) else {
                continue;
            };
            m.state = MatchState::Expired;
            let (order_id, amount, bond) = (m.order_id, m.amount_rx, m.bond);
            let maker = self.makers.get(&order_id).copied();
            let Some(maker) = maker else { continue };
            if let Some(o) = self.orders.get_mut(&order_id) {
                o.remaining.0 += amount.0;
            } else {
                self.refunded += u128::from(amount.0);
                effects.push(Effect::Refund {
                    to: maker,
                    amount,
                    order_id,
                });
            }
            self.bonds_forfeited += u128::from(bond.0);
            effects.push(Effect::BondToMaker {
                to: maker,
                amount: bond,
                match_id: id,
            });
        }
        let expired_orders: Vec<OrderId> = self
            .orders
            .values()
            .filter(|o| o.expiry_height <= l2_height)
            .map(|o| o.id)
            .collect();
        for id in expired_orders {
            if let Some(o) = self.orders.remove(&id) {
                effects.extend(self.refund_order(o));
            }
        }
        effects
    }

    /// Whether [`Peg::expire`] has anything to do at these heights.
    pub fn has_due(&self, l2_height: u64, btc_tip_height: u32) -> bool {
        let grace = u64::from(self.params.confirmations) + u64::from(self.params.claim_grace);
        self.orders.values().any(|o| o.expiry_height <= l2_height)
            || self.matches.values().any(|m| {
                m.state == MatchState::Open
                    && u64::from(btc_tip_height) > u64::from(m.btc_deadline_height) + grace
            })
    }

    /// Picks orders for a peg-in of `amount` (lowest fee, then oldest), splitting across
    /// several; skips expired orders and pieces that break min_fill or dust. The sum may be
    /// below `amount` when the book is too thin.
    pub fn matcher(&self, amount: Sats, l2_height: u64) -> Vec<(OrderId, Sats)> {
        let mut book: Vec<&Order> = self
            .orders
            .values()
            .filter(|o| o.expiry_height > l2_height)
            .collect();
        book.sort_by_key(|o| (o.fee_bps, o.id));
        let mut left = amount.0;
        let mut out = Vec::new();
        for o in book {
            if left == 0 {
                break;
            }
            let piece = Sats(left.min(o.remaining.0));
            if self.check_take(o, piece, l2_height).is_ok() {
                out.push((o.id, piece));
                left -= piece.0;
            }
        }
        out
    }

    /// Claims matches paid by one Bitcoin transaction (see the module docs for the rules).
    /// Atomic: on error nothing changes.
    pub fn claim(
        &mut self,
        headers: &HeaderChain,
        proof: &PaymentProof<'_>,
        match_ids: &[MatchId],
    ) -> Result<Vec<Effect>, ClaimError> {
        let assignment = self.verify_claim(headers, proof, match_ids)?;
        let mut effects = Vec::with_capacity(assignment.len() * 3);
        for ClaimedMatch {
            match_id: id,
            outpoint,
            timing,
        } in assignment
        {
            let Some(m) = self.matches.get_mut(&id) else {
                continue;
            };
            m.state = MatchState::Claimed { outpoint };
            let (amount, bond, to, taker, order_id) =
                (m.amount_rx, m.bond, m.rx_recipient, m.taker, m.order_id);
            self.used_outpoints.insert(outpoint, ());
            self.released += u128::from(amount.0);
            effects.push(Effect::Release {
                to,
                amount,
                match_id: id,
            });
            match timing {
                Timing::OnTime => {
                    self.bonds_returned += u128::from(bond.0);
                    effects.push(Effect::BondReturn {
                        to: taker,
                        amount: bond,
                        match_id: id,
                    });
                }
                Timing::Late => {
                    let fee = self.params.late_fee(bond);
                    let back = Sats(bond.0 - fee.0);
                    let maker = self.makers.get(&order_id).copied();
                    if let (Some(maker), true) = (maker, fee.0 > 0) {
                        self.bonds_forfeited += u128::from(fee.0);
                        effects.push(Effect::BondToMaker {
                            to: maker,
                            amount: fee,
                            match_id: id,
                        });
                    } else {
                        // No maker on record cannot happen (every order records one); the
                        // whole bond then goes back rather than vanishing.
                        self.bonds_returned += u128::from(fee.0);
                        effects.push(Effect::BondReturn {
                            to: taker,
                            amount: fee,
                            match_id: id,
                        });
                    }
                    if back.0 > 0 {
                        self.bonds_returned += u128::from(back.0);
                        effects.push(Effect::BondReturn {
                            to: taker,
                            amount: back,
                            match_id: id,
                        });
                    }
                }
                Timing::AfterExpiry => {
                    // The escrow went back to the order at expiry: take it out again. The
                    // bond was forfeited then.
                    if let Some(o) = self.orders.get_mut(&order_id) {
                        o.remaining.0 -= amount.0;
                    }
                }
            }
        }
        Ok(effects)
    }

    /// Checks a claim without applying it: which output pays which match, in match-id order,
    /// and whether each was paid on time.
    pub fn verify_claim(
        &self,
        headers: &HeaderChain,
        proof: &PaymentProof<'_>,
        match_ids: &[MatchId],
    ) -> Result<Vec<ClaimedMatch>, ClaimError> {
        if match_ids.is_empty() {
            return Err(ClaimError::NoMatches);
        }
        let mut ids = BTreeSet::new();
        for id in match_ids {
            if !ids.insert(*id) {
                return Err(ClaimError::DuplicateMatchId(*id));
            }
        }
        let block_hash = proof.block_hash;
        let entry = headers
            .get(&block_hash)
            .ok_or(ClaimError::UnknownBlock(block_hash))?;
        let conf = headers
            .confirmations(&block_hash)
            .ok_or(ClaimError::StaleBlock(block_hash))?;
        if conf < self.params.confirmations {
            return Err(ClaimError::TooFewConfirmations {
                have: conf,
                need: self.params.confirmations,
            });
        }
        let (height, root) = (entry.height, entry.header.merkle_root);
        let (tx, txid) = spv::parse_tx(proof.raw_tx)?;
        let branch: Vec<[u8; 32]> = proof.branch.iter().map(|n| n.to_byte_array()).collect();
        let cb_branch: Vec<[u8; 32]> = proof
            .coinbase_branch
            .iter()
            .map(|n| n.to_byte_array())
            .collect();
        spv::verify_pinned(
            txid,
            &branch,
            proof.position,
            proof.coinbase_tx,
            &cb_branch,
            root,
        )?;
        check_commitment(&tx, match_ids)?;

        let mut ms: Vec<(&Match, Timing)> = Vec::with_capacity(ids.len());
        // Escrow drawn back out of each order by matches claimed after their expiry.
        let mut drawn: BTreeMap<OrderId, u64> = BTreeMap::new();
        for id in &ids {
            let m = self.matches.get(id).ok_or(ClaimError::UnknownMatch(*id))?;
            let timing = match m.state {
                MatchState::Open if height <= m.btc_deadline_height => Timing::OnTime,
                MatchState::Open => Timing::Late,
                MatchState::Claimed { .. } => return Err(ClaimError::AlreadyClaimed(*id)),
                MatchState::Expired => {
                    let d = drawn.entry(m.order_id).or_default();
                    let left = self.orders.get(&m.order_id).map_or(0, |o| o.remaining.0);
                    if left.saturating_sub(*d) < m.amount_rx.0 {
                        return Err(ClaimError::EscrowRetaken(*id));
                    }
                    *d += m.amount_rx.0;
                    Timing::AfterExpiry
                }
            };
            ms.push((m, timing));
        }
        // Largest debt first, each to the smallest sufficient unused output: finds an
        // assignment whenever one exists.
        ms.sort_by(|(a, _), (b, _)| {
            b.amount_btc_owed
                .cmp(&a.amount_btc_owed)
                .then(a.match_id.cmp(&b.match_id))
        });
        let mut taken: BTreeSet<u32> = BTreeSet::new();
        let mut assignment: Vec<ClaimedMatch> = Vec::with_capacity(ms.len());
        for (m, timing) in &ms {
            let mut best: Option<(u64, u32)> = None;
            let (mut any_script, mut max_paid) = (false, 0u64);
            let (mut blocked_local, mut blocked_global) = (None, None);
            for (vout, out) in tx.output.iter().enumerate() {
                if out.script_pubkey != m.payee_script {
                    continue;
                }
                any_script = true;
                let v = out.value.to_sat();
                max_paid = max_paid.max(v);
                if v < m.amount_btc_owed.0 {
                    continue;
                }
                let vout = vout as u32;
                let op = OutPoint { txid, vout };
                if self.used_outpoints.contains_key(&op) {
                    blocked_global.get_or_insert(op);
                    continue;
                }
                if taken.contains(&vout) {
                    blocked_local.get_or_insert(op);
                    continue;
                }
                if best.is_none_or(|(bv, _)| v < bv) {
                    best = Some((v, vout));
                }
            }
            let id = m.match_id;
            match best {
                Some((_, vout)) => {
                    taken.insert(vout);
                    assignment.push(ClaimedMatch {
                        match_id: id,
                        outpoint: OutPoint { txid, vout },
                        timing: *timing,
                    });
                }
                None if !any_script => return Err(ClaimError::WrongScript(id)),
                None => {
                    if let Some(outpoint) = blocked_global {
                        return Err(ClaimError::OutpointAlreadyClaimed { id, outpoint });
                    }
                    if let Some(outpoint) = blocked_local {
                        return Err(ClaimError::OutputPaysTwoMatches { id, outpoint });
                    }
                    return Err(ClaimError::ShortAmount {
                        id,
                        paid: max_paid,
                        owed: m.amount_btc_owed.0,
                    });
                }
            }
        }
        assignment.sort_by_key(|c| c.match_id);
        Ok(assignment)
    }
}

impl Refusal for OrderError {
    fn reason(&self) -> &'static str {
        match self {
            OrderError::ZeroAmount => "zero-amount",
            OrderError::MinFillAboveAmount { .. } => "min-fill-above-amount",
            OrderError::FeeTooHigh(_) => "fee-too-high",
            OrderError::ExpiryInPast { .. } => "expiry-in-past",
            OrderError::NonStandardPayee { .. } => "nonstandard-payee",
            OrderError::DustPayee { .. } => "dust-payee",
            OrderError::DustMinFill { .. } => "dust-min-fill",
            OrderError::Overflow => "overflow",
        }
    }
}

impl Refusal for TakeError {
    fn kind(&self) -> RefusalKind {
        match self {
            TakeError::BondTooSmall { .. } => RefusalKind::InsufficientFunds,
            _ => RefusalKind::Invalid,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            TakeError::UnknownOrder(_) => "unknown-order",
            TakeError::OrderExpired { .. } => "order-expired",
            TakeError::ZeroAmount => "zero-amount",
            TakeError::ExceedsRemaining { .. } => "exceeds-remaining",
            TakeError::BelowMinFill { .. } => "below-min-fill",
            TakeError::Dust { .. } => "dust",
            TakeError::BondTooSmall { .. } => "bond-too-small",
            TakeError::Overflow => "overflow",
        }
    }
}

impl Refusal for CancelError {
    fn reason(&self) -> &'static str {
        match self {
            CancelError::UnknownOrder(_) => "unknown-order",
            CancelError::NotMaker(_) => "not-maker",
        }
    }
}

impl Refusal for ClaimError {
    /// A block not (yet) tracked, on a stale branch or not deep enough may do once the
    /// tracked chain moves on; a claimed match is done; everything else never verifies.
    fn kind(&self) -> RefusalKind {
        match self {
            ClaimError::UnknownBlock(_)
            | ClaimError::StaleBlock(_)
            | ClaimError::TooFewConfirmations { .. } => RefusalKind::Retryable,
            ClaimError::AlreadyClaimed(_) => RefusalKind::AlreadyDone,
            _ => RefusalKind::Invalid,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            ClaimError::NoMatches => "no-matches",
            ClaimError::DuplicateMatchId(_) => "duplicate-match",
            ClaimError::UnknownBlock(_) => "unknown-block",
            ClaimError::StaleBlock(_) => "stale-block",
            ClaimError::TooFewConfirmations { .. } => "too-few-confirmations",
            ClaimError::Spv(e) => e.reason(),
            ClaimError::MissingCommitment => "missing-commitment",
            ClaimError::MultipleCommitments => "multiple-commitments",
            ClaimError::WrongCommitment => "wrong-commitment",
            ClaimError::UnknownMatch(_) => "unknown-match",
            ClaimError::AlreadyClaimed(_) => "already-claimed",
            ClaimError::EscrowRetaken(_) => "escrow-retaken",
            ClaimError::WrongScript(_) => "wrong-script",
            ClaimError::ShortAmount { .. } => "short-amount",
            ClaimError::OutputPaysTwoMatches { .. } => "output-pays-two-matches",
            ClaimError::OutpointAlreadyClaimed { .. } => "outpoint-already-claimed",
        }
    }
}

impl Refusal for SpvError {
    fn reason(&self) -> &'static str {
        match self {
            SpvError::BadTransaction(_) => "bad-transaction",
            SpvError::SixtyFourByteTransaction => "64-byte-transaction",
            SpvError::BranchTooLong(_) => "branch-too-long",
            SpvError::PositionOutOfRange { .. } => "position-out-of-range",
            SpvError::DuplicateNode => "duplicate-node",
            SpvError::RootMismatch => "root-mismatch",
            SpvError::NotCoinbase => "not-coinbase",
            SpvError::BadCoinbaseProof(_) => "bad-coinbase-proof",
            SpvError::DepthMismatch { .. } => "depth-mismatch",
        }
    }
}

/// `None` when `script` is an output type Bitcoin Core relays by default as a payee (P2PKH,
/// P2SH, P2WPKH, P2WSH, P2TR); otherwise what it is.
pub fn nonstandard_payee(script: &Script) -> Option<&'static str> {
    if script.is_p2pkh() || script.is_p2sh() || script.is_p2wpkh() || script.is_p2wsh() {
        return None;
    }
    if script.is_p2tr() {
        return None;
    }
    Some(if script.is_empty() {
        "empty"
    } else if script.is_op_return() {
        "OP_RETURN (unspendable)"
    } else if script.is_multisig() {
        "bare multisig"
    } else if script.is_p2pk() {
        "P2PK"
    } else if script.witness_version().is_some() {
        "an unknown witness program"
    } else {
        "a non-standard script"
    })
}

fn check_commitment(tx: &Transaction, ids: &[MatchId]) -> Result<(), ClaimError> {
    let mut found = None;
    for out in &tx.output {
        if let Some(data) = is_rxpg(&out.script_pubkey) {
            if found.is_some() {
                return Err(ClaimError::MultipleCommitments);
            }
            found = Some(data);
        }
    }
    match found {
        None => Err(ClaimError::MissingCommitment),
        Some(Some(d)) if d.as_slice() == commitment(ids).as_slice() => Ok(()),
        Some(_) => Err(ClaimError::WrongCommitment),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commitment_is_order_independent_and_versioned() {
        let a = commitment(&[MatchId(3), MatchId(1), MatchId(2)]);
        let b = commitment(&[MatchId(1), MatchId(2), MatchId(3), MatchId(2)]);
        assert_eq!(a, b);
        assert_eq!(&a[..5], b"RXPG\x01");
        assert_ne!(a, commitment(&[MatchId(1), MatchId(2)]));
        assert_eq!(commitment_script(&[MatchId(1)]).len(), 39);
    }

    /// Unreachable through the public API (a commitment binds a tx to one set of ids, and a
    /// claimed id is rejected as `AlreadyClaimed` first), so the global outpoint set is
    /// defence in depth; this checks it still has its own error.
    #[test]
    fn globally_used_outpoint_has_its_own_error() {
        use bitcoin::block::{Header, Version};
        use bitcoin::{
            absolute::LockTime, Amount, CompactTarget, Network, Sequence, TxIn, TxOut, Witness,
        };
        let mut peg = Peg::new(PegParams::default_for(Network::Regtest));
        let script = ScriptBuf::from_bytes([&[0x00, 0x14][..], &[7u8; 20][..]].concat());
        let new = NewOrder {
            amount: Sats(50_000),
            btc_script: script.clone(),
            min_fill: Sats(0),
            fee_bps: 0,
            expiry_height: 10,
        };
        let o = peg.place_order(L2Address([1; 32]), new, 0).unwrap();
        let m = peg
            .take(
                o,
                Sats(50_000),
                L2Address([2; 32]),
                L2Address([2; 32]),
                Sats(1_000),
                0,
                0,
            )
            .unwrap();
        let tx = Transaction {
            version: bitcoin::transaction::Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::null(),
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            }],
            output: vec![
                TxOut {
                    value: Amount::from_sat(50_000),
                    script_pubkey: script,
                },
                TxOut {
                    value: Amount::ZERO,
                    script_pubkey: commitment_script(&[m]),
                },
            ],
        };
        let txid = tx.compute_txid();
        let mut chain = HeaderChain::new(Network::Regtest);
        let g = chain.best_tip().1.header;
        let mut h = Header {
            version: Version::ONE,
            prev_blockhash: g.block_hash(),
            merkle_root: TxMerkleNode::from_raw_hash(txid.to_raw_hash()),
            time: g.time + 1,
            bits: CompactTarget::from_consensus(0x207f_ffff),
            nonce: 0,
        };
        while h.validate_pow(h.target()).is_err() {
            h.nonce += 1;
        }
        chain.submit(&[h], h.time).unwrap();
        peg.used_outpoints.insert(OutPoint { txid, vout: 0 }, ());
        let raw = bitcoin::consensus::serialize(&tx);
        // The paying transaction is the block's only one, so it is its own coinbase.
        let proof = PaymentProof {
            raw_tx: &raw,
            block_hash: h.block_hash(),
            branch: &[],
            position: 0,
            coinbase_tx: &raw,
            coinbase_branch: &[],
        };
        assert_eq!(
            peg.claim(&chain, &proof, &[m]),
            Err(ClaimError::OutpointAlreadyClaimed {
                id: m,
                outpoint: OutPoint { txid, vout: 0 }
            })
        );
        peg.used_outpoints.retain(|_, _| false);
        assert_eq!(peg.claim(&chain, &proof, &[m]).unwrap().len(), 2);
        peg.check_invariants().unwrap();
    }

    #[test]
    fn required_bond_is_one_percent_min_1000() {
        let p = PegParams::default_for(bitcoin::Network::Bitcoin);
        assert_eq!(p.required_bond(Sats(50_000)), Sats(1_000));
        assert_eq!(p.required_bond(Sats(1_000_000)), Sats(10_000));
        assert_eq!(Peg::owed(Sats(10_000), 25), Sats(9_975));
    }
}
