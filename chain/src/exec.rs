//! The parallel executor.
//!
//! Each shard runs on its own thread against its own [`ShardStore`]; shards never share
//! mutable state, so the result is the same for any thread count (a property test checks
//! parallel == sequential). Per shard and block, in this order:
//!
//! 1. inbound relays (the ones that waited first, then those emitted by other shards in the
//!    previous block, in canonical order: origin shard, emission index) while their gas
//!    fits the shard's block gas limit; from the first that does not fit on, they wait for
//!    the next block, in order (backpressure);
//! 2. the shard's transactions, in block order: each must fit what is left of the shard's
//!    gas, bytes and relay limits, is checked against state (nonce, expiry, balance, max
//!    fee against the shard's base fee), reserves `gas_limit × max_fee`, runs, and gets
//!    back what it did not use (see [`crate::fee`]);
//! 3. payouts: the tips collected here are relayed to the miner; the miner's shard mints
//!    the subsidy; the base fees are burned and the shard's next base fee set;
//! 4. relays this block emitted to its own shard, in emission order (including the ones
//!    those relays emit in turn), except `relay@next` ones.
//!
//! Relays to other shards (and `relay@next` relays) are the block's outbound work; they run
//! at the start of the next block. Contract micro-transactions (see [`crate::contract`])
//! run at steps 1, 2 and 4 and read the global state as it was after the previous block.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use thiserror::Error;

use crate::address::{shard_of, Address};
use crate::amount::Amount;
use crate::contract::{self, ContractReceipt, ContractsSystem, Rows};
use crate::hash::{BlockHash, Hash256, Txid};
use crate::lang::vm::TxKind;
use crate::lthash::LtHash;
use crate::params::ChainParams;
use crate::relay::{Relay, RelayKind};
use crate::shard::{ShardId, ShardOrder};
use crate::store::{Account, Change, ShardStore, StateChange, StateKey, StoreError};
use crate::tx::{Payload, SignedTx, TxError};
use crate::FastMap;

/// What a block gives every shard's execution.
#[derive(Clone, Copy, Debug)]
pub struct BlockEnv {
    /// Height being executed.
    pub height: u64,
    /// Payout address.
    pub miner: Address,
    /// Subsidy minted by this block.
    pub subsidy: Amount,
    /// Shard order.
    pub order: ShardOrder,
    /// Installed system contracts, as a bit set of [`crate::system::SystemId`]s.
    pub systems: u64,
    /// Block time (unix seconds).
    pub time: u64,
    /// Parent block hash (seeds contracts' `get_random_number`).
    pub prev: BlockHash,
    /// Address prefix of the network (contracts print addresses with it).
    pub hrp: &'static str,
    /// Most relays one micro-transaction may emit ([`crate::ChainParams::max_relays_per_call`]).
    pub max_relays: usize,
    /// Collect contracts' `__debug.print` output in receipts (node setting, not consensus).
    pub log_contracts: bool,
    /// Keep contract receipts (node setting, not consensus): without them only the counts
    /// in [`ShardOutcome::micro_txs`] and [`ShardOutcome::reverted`] are kept.
    pub keep_receipts: bool,
}

/// Whether failing transactions abort the block or are left out of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecMode {
    /// Checking a block: any failing transaction makes it invalid.
    Validate,
    /// Building a template: failing transactions are dropped.
    Build,
}

/// Why a transaction cannot execute in a block.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TxRejection {
    /// Invalid on its own.
    #[error(transparent)]
    Invalid(#[from] TxError),
    /// Signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// Placed in the body of a shard that is not its sender's.
    #[error("transaction of shard {expected} placed in shard {found}")]
    WrongShard {
        /// Sender's shard.
        expected: ShardId,
        /// Shard it was found in.
        found: ShardId,
    },
    /// Nonce is not the account's next.
    #[error("nonce {got}, account expects {expected}")]
    BadNonce {
        /// Account nonce.
        expected: u64,
        /// Transaction nonce.
        got: u64,
    },
    /// Past its expiry height.
    #[error("expired at height {expiry}, block is {height}")]
    Expired {
        /// Last valid height.
        expiry: u64,
        /// Block height.
        height: u64,
    },
    /// Max fee below the shard's base fee in this block.
    #[error(transparent)]
    Fee(#[from] crate::fee::FeeError),
    /// Balance below amount + fee.
    #[error("insufficient funds: balance {balance}, needs {needed}")]
    InsufficientFunds {
        /// Sender balance.
        balance: Amount,
        /// amount + fee.
        needed: Amount,
    },
}

/// Why a shard's execution failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ExecError {
    /// A transaction failed in a block being validated.
    #[error("shard {shard} tx {index} ({txid}): {reason}")]
    Tx {
        /// Shard.
        shard: ShardId,
        /// Position in the shard's list.
        index: usize,
        /// Its id.
        txid: Txid,
        /// Why.
        reason: TxRejection,
    },
    /// A transaction starts when what is left of one of the shard's block limits cannot
    /// hold it (in a block being validated).
    #[error(
        "shard {shard} tx {index}: over the block's {limit} limit ({needed} needed, {left} left)"
    )]
    OverLimit {
        /// Shard.
        shard: ShardId,
        /// Position in the shard's list.
        index: usize,
        /// Which limit: `gas`, `bytes`, `relays` or `transactions`.
        limit: &'static str,
        /// What the transaction needs of it.
        needed: u64,
        /// What was left.
        left: u64,
    },
    /// The shard's fee market row does not decode.
    #[error("shard {0}: fee market state is corrupt")]
    FeeState(ShardId),
    /// A credit overflowed (impossible below the supply cap; reported, never wrapped).
    #[error("balance overflow crediting {0:?}")]
    Overflow(Address),
    /// A relay reached a lane that cannot run it (a bug, reported rather than ignored).
    #[error("relay of kind {0} cannot run on a shard")]
    Misrouted(&'static str),
    /// A relay was emitted to a shard that does not exist (a bug, reported rather than
    /// committed).
    #[error("shard {0} emitted a relay to {1}, out of range")]
    TargetOutOfRange(ShardId, ShardId),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One shard's result for one block: a value, applied (or discarded) by the caller.
#[derive(Debug, Clone)]
pub struct ShardOutcome {
    /// The shard.
    pub shard: ShardId,
    /// Transactions that executed (in [`ExecMode::Build`], the template's body).
    pub included: Vec<SignedTx>,
    /// Transactions left out in [`ExecMode::Build`], with why.
    pub rejected: Vec<(Txid, TxRejection)>,
    /// Keys changed, sorted by key, with old and new values (redo and undo in one).
    pub changes: Vec<Change>,
    /// The relays that leave the shard's chunk (to other shards, the global lane, or this
    /// shard's next block), in emission order.
    pub outbound: Vec<Relay>,
    /// Root of the chunk's outbox: `outbound` keyed by target (see [`crate::outbox`]).
    pub outbox_root: Hash256,
    /// Contract state rows changed, sorted by key.
    pub state_changes: Vec<StateChange>,
    /// Receipts of the contract micro-transactions that ran, in execution order (when
    /// [`BlockEnv::keep_receipts`]).
    pub receipts: Vec<ContractReceipt>,
    /// Contract micro-transactions run.
    pub micro_txs: u64,
    /// Of those, how many were reverted.
    pub reverted: u64,
    /// Tips collected (paid to the miner).
    pub fees: Amount,
    /// Base fees burned by this block on this shard.
    pub burned: Amount,
    /// Base fee this block charged.
    pub base_fee: crate::fee::GasPrice,
    /// Base fee of the next block (set by this block's gas use).
    pub next_base_fee: crate::fee::GasPrice,
    /// Gas used: inbound relays' gas and transactions' gas used.
    pub gas_used: u64,
    /// What each contract transaction paid, in block order (with
    /// [`BlockEnv::keep_receipts`]).
    pub fee_receipts: Vec<(Txid, crate::fee::FeeCharge)>,
    /// Inbound relays that did not fit the shard's gas and wait for the next block, in
    /// order.
    pub waiting: Vec<Relay>,
    /// Commitment after the block.
    pub lthash: LtHash,
    /// Its digest.
    pub digest: Hash256,
}

impl ShardOutcome {
    /// The outcome of a shard this node does not run (see [`crate::partial`]): its roots
    /// from the block's checked package, the relays it sent the tracked shards and the
    /// global lane, and no change to its (untracked) store.
    pub fn foreign(
        store: &ShardStore,
        chunk: &crate::partial::ChunkHeader,
        outbound: Vec<Relay>,
    ) -> ShardOutcome {
        let zero = crate::fee::GasPrice::from_msat(0);
        ShardOutcome {
            shard: store.id(),
            included: Vec::new(),
            rejected: Vec::new(),
            changes: Vec::new(),
            outbound,
            outbox_root: chunk.outbox_root,
            state_changes: Vec::new(),
            receipts: Vec::new(),
            micro_txs: 0,
            reverted: 0,
            fees: Amount::ZERO,
            burned: Amount::ZERO,
            base_fee: zero,
            next_base_fee: zero,
            gas_used: 0,
            fee_receipts: Vec::new(),
            waiting: Vec::new(),
            lthash: store.lthash().clone(),
            digest: chunk.state_root,
        }
    }
}

/// The keys a block touches on one shard, over the store.
struct WorkingSet<'s> {
    store: &'s mut ShardStore,
    /// Accounts read or written this block: the value before the block and, once written,
    /// the new one.
    ws: FastMap<Address, (Option<Account>, Option<Account>)>,
    /// Rows read or written this block: the value before the block and, once written, the
    /// new one.
    state: FastMap<StateKey, RowChange>,
}

/// A row's value before the block, and its new value once written (`Some(None)`: deleted).
type RowChange = (Option<Vec<u8>>, Option<Option<Vec<u8>>>);

impl Rows for WorkingSet<'_> {
    fn credit(&mut self, to: Address, amount: Amount) -> Result<(), StoreError> {
        let mut a = self.get(&to)?;
        a.balance = a
            .balance
            .checked_add(amount)
            .ok_or_else(|| StoreError::corrupt("account", "balance overflows"))?;
        self.set(to, a)
    }

    fn row(&mut self, key: &StateKey) -> Result<Option<Vec<u8>>, StoreError> {
        use std::collections::hash_map::Entry;
        match self.state.entry(*key) {
            Entry::Occupied(e) => Ok(match &e.get().1 {
                Some(n) => n.clone(),
                None => e.get().0.clone(),
            }),
            Entry::Vacant(e) => {
                // Kept so that the write that usually follows finds the old value here.
                let v = self.store.get_state(key)?;
                Ok(e.insert((v, None)).0.clone())
            }
        }
    }

    fn set_row(&mut self, key: StateKey, value: Option<Vec<u8>>) -> Result<(), StoreError> {
        if let Some(e) = self.state.get_mut(&key) {
            e.1 = Some(value);
            return Ok(());
        }
        let old = self.store.get_state(&key)?;
        self.state.insert(key, (old, Some(value)));
        Ok(())
    }
}

impl WorkingSet<'_> {
    fn get(&mut self, addr: &Address) -> Result<Account, StoreError> {
        use std::collections::hash_map::Entry;
        let (old, new) = match self.ws.entry(*addr) {
            Entry::Occupied(e) => *e.get(),
            // Kept so that the write that usually follows finds the old value here.
            Entry::Vacant(e) => *e.insert((self.store.get(addr)?, None)),
        };
        Ok(new.or(old).unwrap_or_default())
    }

    fn set(&mut self, addr: Address, acct: Account) -> Result<(), StoreError> {
        if let Some(e) = self.ws.get_mut(&addr) {
            e.1 = Some(acct);
            return Ok(());
        }
        let old = self.store.get(&addr)?;
        self.ws.insert(addr, (old, Some(acct)));
        Ok(())
    }

    fn credit(&mut self, to: Address, amount: Amount) -> Result<(), ExecError> {
        let mut a = self.get(&to)?;
        a.balance = a
            .balance
            .checked_add(amount)
            .ok_or(ExecError::Overflow(to))?;
        self.set(to, a)?;
        Ok(())
    }
}

/// A transaction accepted against its sender's account: the account after the
/// reservation, and the price it pays per gas.
struct Admitted {
    acct: Account,
    reserved: Amount,
    price: crate::fee::GasPrice,
}

/// Checks a transaction against its sender's account at `base_fee`; on success returns the
/// sender's account after debiting the value and the gas reservation. Pure: the caller
/// writes the result.
fn check_tx(
    acct: Account,
    env: &BlockEnv,
    shard: ShardId,
    tx: &SignedTx,
    base_fee: crate::fee::GasPrice,
) -> Result<Admitted, TxRejection> {
    let t = &tx.tx;
    let from_shard = shard_of(&t.from, env.order);
    if from_shard != shard {
        return Err(TxRejection::WrongShard {
            expected: from_shard,
            found: shard,
        });
    }
    if t.nonce != acct.nonce {
        return Err(TxRejection::BadNonce {
            expected: acct.nonce,
            got: t.nonce,
        });
    }
    if t.expiry_height < env.height {
        return Err(TxRejection::Expired {
            expiry: t.expiry_height,
            height: env.height,
        });
    }
    let price = crate::fee::effective_price(base_fee, t.max_fee, t.max_tip)?;
    let reserved = t.max_fee_total().ok_or(TxError::AmountOverflow)?;
    let needed = t.total_spend().ok_or(TxError::AmountOverflow)?;
    let Some(balance) = acct.balance.checked_sub(needed) else {
        return Err(TxRejection::InsufficientFunds {
            balance: acct.balance,
            needed,
        });
    };
    Ok(Admitted {
        acct: Account {
            balance,
            nonce: acct.nonce + 1,
        },
        reserved,
        price,
    })
}

/// Most relays a transaction can emit in its own step: one for a transfer, a system call or
/// a deployment; for a contract call, one forward plus one per [`crate::lang::gas::RELAY`]
/// of its gas (every relay costs at least that much).
pub fn max_relays(tx: &SignedTx) -> u64 {
    match tx.tx.payload {
        Payload::ContractCall { .. } => 1 + tx.tx.gas_limit / crate::lang::gas::RELAY,
        _ => 1,
    }
}

/// Gas an inbound relay takes of its target's block: what it carries.
fn relay_gas(r: &Relay) -> u64 {
    match &r.kind {
        RelayKind::Contract(c) => c.gas,
        RelayKind::Deploy(d) => d.gas,
        RelayKind::Deposit { .. }
        | RelayKind::Call { .. }
        | RelayKind::Burn { .. }
        | RelayKind::DepositAssets { .. } => 0,
    }
}

/// Fees a shard's block collects: tips for its miner and base fees burned.
#[derive(Default)]
struct Collected {
    tips: Amount,
    burned: Amount,
}

impl Collected {
    fn add(&mut self, tip: Amount, burned: Amount) -> Result<(), ExecError> {
        self.tips = self
            .tips
            .checked_add(tip)
            .ok_or(ExecError::Overflow(Address::default()))?;
        self.burned = self
            .burned
            .checked_add(burned)
            .ok_or(ExecError::Overflow(Address::default()))?;
        Ok(())
    }
}

/// What is left of a shard's block limits.
struct Room {
    gas: u64,
    bytes: u64,
    relays: u64,
    txs: u64,
}

impl Room {
    /// The first limit `tx` does not fit, as (name, needed, left).
    fn misfit(&self, tx: &SignedTx) -> Option<(&'static str, u64, u64)> {
        let bytes = (tx.tx.encoded_len() + 64) as u64;
        let relays = max_relays(tx);
        if self.txs == 0 {
            Some(("transactions", 1, 0))
        } else if tx.tx.gas_limit > self.gas {
            Some(("gas", tx.tx.gas_limit, self.gas))
        } else if bytes > self.bytes {
            Some(("bytes", bytes, self.bytes))
        } else if relays > self.relays {
            Some(("relays", relays, self.relays))
        } else {
            None
        }
    }

    fn take(&mut self, tx: &SignedTx) {
        self.bytes -= (tx.tx.encoded_len() + 64) as u64;
        self.relays -= max_relays(tx);
        self.txs -= 1;
    }
}

fn emit(emitted: &mut Vec<Relay>, shard: ShardId, env: &BlockEnv, to: Address, amount: Amount) {
    emitted.push(Relay {
        origin: shard,
        index: emitted.len() as u32,
        target: shard_of(&to, env.order),
        kind: RelayKind::Deposit { to, amount },
    });
}

fn emit_kind(emitted: &mut Vec<Relay>, shard: ShardId, target: ShardId, kind: RelayKind) {
    emitted.push(Relay {
        origin: shard,
        index: emitted.len() as u32,
        target,
        kind,
    });
}

/// Runs one relay on this shard; contract relays may emit more.
#[allow(clippy::too_many_arguments)]
fn run_relay(
    w: &mut WorkingSet<'_>,
    r: &Relay,
    env: &BlockEnv,
    contracts: &ContractsSystem,
    shard: ShardId,
    emitted: &mut Vec<Relay>,
    receipts: &mut Receipts,
    seq: &mut u64,
    collected: &mut Collected,
) -> Result<(), ExecError> {
    match &r.kind {
        RelayKind::Deposit { to, amount } => w.credit(*to, *amount),
        RelayKind::DepositAssets { to, assets } => {
            contract::credit_assets(w, to, assets).map_err(ExecError::from)
        }
        RelayKind::Burn { amount } => collected.add(Amount::ZERO, *amount),
        RelayKind::Call { .. } => Err(ExecError::Misrouted("call")),
        RelayKind::Deploy(_) => Err(ExecError::Misrouted("deploy")),
        RelayKind::Contract(c) => {
            *seq += 1;
            let (mut relays, mut receipt) =
                contract::run_on_shard(contracts, w, env, shard, c, TxKind::Relay, r.origin, *seq)?;
            // The relay's escrow pays for the gas it used and funds the relays it emitted;
            // the rest goes back to the sender.
            let children = contract::fund_children(&mut relays, &c.fee, env.height);
            let settled = c.fee.settle(receipt.gas_used, children);
            collected.add(settled.tip, settled.burned)?;
            for (target, call) in relays {
                emit_kind(emitted, shard, target, RelayKind::Contract(Box::new(call)));
            }
            if !settled.refund.is_zero() {
                emit(emitted, shard, env, c.sender, settled.refund);
            }
            receipt.settled = Some(settled);
            receipt.waited = Some(env.height.saturating_sub(c.fee.emitted + 1));
            receipts.push(receipt);
            Ok(())
        }
    }
}

/// Receipts kept (when wanted) and counted.
struct Receipts {
    keep: bool,
    list: Vec<ContractReceipt>,
    count: u64,
    reverted: u64,
}

impl Receipts {
    fn push(&mut self, r: ContractReceipt) {
        self.count += 1;
        self.reverted += r.error.is_some() as u64;
        if self.keep {
            self.list.push(r);
        }
    }
}

/// Executes one shard's part of a block. Reads go through `store`; nothing is written to
/// it: the outcome is applied (or dropped) by the caller. `inbound` are the previous
/// block's relays to this shard, `from_global` the payouts of this block's global lane.
#[allow(clippy::too_many_arguments)]
pub fn execute_shard(
    store: &mut ShardStore,
    params: &ChainParams,
    env: &BlockEnv,
    contracts: &ContractsSystem,
    inbound: &[Relay],
    from_global: &[Relay],
    txs: &[SignedTx],
    mode: ExecMode,
    sig_ok: &(dyn Fn(&SignedTx) -> bool + Sync),
) -> Result<ShardOutcome, ExecError> {
    let shard = store.id();
    let lthash_before = store.lthash().clone();
    let mut w = WorkingSet {
        store,
        ws: FastMap::with_capacity_and_hasher(txs.len() * 2 + inbound.len(), Default::default()),
        // A contract call usually touches one row here and its relays one each: sized so
        // the map does not rehash its way up through the block.
        state: FastMap::with_capacity_and_hasher(
            txs.iter()
                .filter(|t| matches!(t.tx.payload, Payload::ContractCall { .. }))
                .count()
                * 2
                + inbound
                    .iter()
                    .filter(|r| matches!(r.kind, RelayKind::Contract(_)))
                    .count(),
            Default::default(),
        ),
    };
    let mut emitted = Vec::with_capacity(txs.len() + inbound.len() + 2);
    let mut receipts = Receipts {
        keep: env.keep_receipts,
        list: Vec::new(),
        count: 0,
        reverted: 0,
    };
    let mut seq = 0u64;
    let fee_key = crate::fee::fee_key();
    let fee_state = {
        let row = w.row(&fee_key)?;
        crate::fee::FeeState::from_stored(params, row.as_deref())
            .map_err(|_| ExecError::FeeState(shard))?
    };
    let base_fee = fee_state.base_fee;
    let mut collected = Collected::default();
    // Inbound relays run in order while their gas fits; from the first that does not, the
    // rest wait for the next block in the same order. The global lane's payouts always run.
    let (fit, relay_gas_used) =
        crate::relay::fitting(inbound, params.block_gas_per_shard, relay_gas);
    let (run_now, waiting) = inbound.split_at(fit);
    let waiting = waiting.to_vec();
    let gas_left = params.block_gas_per_shard.saturating_sub(relay_gas_used);
    for r in run_now.iter().chain(from_global) {
        run_relay(
            &mut w,
            r,
            env,
            contracts,
            shard,
            &mut emitted,
            &mut receipts,
            &mut seq,
            &mut collected,
        )?;
    }
    let mut room = Room {
        gas: gas_left,
        bytes: params.block_bytes_per_shard as u64,
        // Two relays stay free for the payouts (tips, subsidy).
        relays: (params.block_relays_per_shard as u64).saturating_sub(2),
        txs: params.max_txs_per_shard as u64,
    };
    let mut fee_receipts = Vec::new();
    let mut included = Vec::new();
    let mut rejected = Vec::new();
    for (index, tx) in txs.iter().enumerate() {
        if let Some((limit, needed, left)) = room.misfit(tx) {
            if mode == ExecMode::Validate {
                return Err(ExecError::OverLimit {
                    shard,
                    index,
                    limit,
                    needed,
                    left,
                });
            }
            // Full for this one: it stays in the mempool for a later block.
            continue;
        }
        let acct = w.get(&tx.tx.from)?;
        let checked = tx
            .check_stateless(params)
            .map_err(TxRejection::from)
            .and_then(|()| {
                if sig_ok(tx) {
                    Ok(())
                } else {
                    Err(TxRejection::BadSignature)
                }
            })
            .and_then(|()| match &tx.tx.payload {
                Payload::Call { contract, .. } if env.systems & (1u64 << contract.0) == 0 => {
                    Err(TxError::UnknownContract(*contract).into())
                }
                _ => Ok(()),
            })
            .and_then(|()| check_tx(acct, env, shard, tx, base_fee));
        match checked {
            Ok(adm) => {
                room.take(tx);
                w.set(tx.tx.from, adm.acct)?;
                let intrinsic = contract::intrinsic_gas(&tx.tx.payload);
                // Gas the transaction's own step used, gas it forwarded to its relays, and
                // the rxBTC escrowed for that gas.
                let (own, forwarded, escrowed) = match &tx.tx.payload {
                    Payload::Transfer { to, amount } => {
                        emit(&mut emitted, shard, env, *to, *amount);
                        (intrinsic, 0, Amount::ZERO)
                    }
                    Payload::Call {
                        contract,
                        value,
                        data,
                    } => {
                        emitted.push(Relay {
                            origin: shard,
                            index: emitted.len() as u32,
                            target: ShardId::GLOBAL,
                            kind: RelayKind::Call {
                                txid: tx.txid(),
                                caller: tx.tx.from,
                                contract: *contract,
                                value: *value,
                                data: data.clone(),
                            },
                        });
                        (intrinsic, 0, Amount::ZERO)
                    }
                    Payload::Deploy { .. } | Payload::ContractCall { .. } => {
                        seq += 1;
                        let step =
                            contract::start_transaction(contracts, &mut w, env, shard, tx, seq)?;
                        let bought = crate::fee::GasEscrow {
                            price: adm.price,
                            base_fee,
                            escrow: Amount::ZERO,
                            emitted: env.height,
                        };
                        let mut escrowed = Amount::ZERO;
                        for (target, mut kind) in step.relays {
                            let fee = match &mut kind {
                                RelayKind::Contract(c) => {
                                    c.fee = bought.child(c.gas, env.height);
                                    c.fee.escrow
                                }
                                RelayKind::Deploy(d) => {
                                    d.fee = bought.child(d.gas, env.height);
                                    d.fee.escrow
                                }
                                _ => Amount::ZERO,
                            };
                            escrowed = escrowed
                                .checked_add(fee)
                                .ok_or(ExecError::Overflow(tx.tx.from))?;
                            emit_kind(&mut emitted, shard, target, kind);
                        }
                        let r = (step.receipt.gas_used, step.receipt.gas_forwarded, escrowed);
                        receipts.push(step.receipt);
                        r
                    }
                };
                let forwarded = forwarded.min(tx.tx.gas_limit);
                let own = own.clamp(intrinsic, tx.tx.gas_limit - forwarded);
                let charge = crate::fee::charge(adm.reserved, own, base_fee, adm.price)
                    .and_then(|mut c| {
                        c.refund = c.refund.checked_sub(escrowed)?;
                        c.escrowed = escrowed;
                        Some(c)
                    })
                    .ok_or(TxRejection::Invalid(TxError::AmountOverflow));
                let charge = match charge {
                    Ok(c) => c,
                    // Unreachable: the price is at most max_fee and own + forwarded gas at
                    // most gas_limit, so the charge and the escrow fit the reservation.
                    Err(reason) => {
                        return Err(ExecError::Tx {
                            shard,
                            index,
                            txid: tx.txid(),
                            reason,
                        })
                    }
                };
                room.gas -= own + forwarded;
                if !charge.refund.is_zero() {
                    w.credit(tx.tx.from, charge.refund)?;
                }
                collected.add(charge.tip, charge.burned)?;
                // Contract transactions' charges depend on what they ran: kept. A transfer's
                // or system call's follows from its block's base fee (see
                // `Chain::fee_receipt`), so none is stored per transaction.
                if env.keep_receipts
                    && matches!(
                        tx.tx.payload,
                        Payload::Deploy { .. } | Payload::ContractCall { .. }
                    )
                {
                    fee_receipts.push((tx.txid(), charge));
                }
            }
            Err(reason) => {
                if mode == ExecMode::Validate {
                    return Err(ExecError::Tx {
                        shard,
                        index,
                        txid: tx.txid(),
                        reason,
                    });
                }
                rejected.push((tx.txid(), reason));
                continue;
            }
        }
        if mode == ExecMode::Build {
            included.push(tx.clone());
        }
    }
    let mut paid_tips = collected.tips;
    if !paid_tips.is_zero() {
        emit(&mut emitted, shard, env, env.miner, paid_tips);
    }
    if shard_of(&env.miner, env.order) == shard && !env.subsidy.is_zero() {
        emit(&mut emitted, shard, env, env.miner, env.subsidy);
    }
    // Relays to this shard run now, in emission order; the ones they emit join the queue.
    // Tips their escrows pay are paid out after them (until no new tips come).
    let mut outbound = Vec::new();
    let mut i = 0;
    loop {
        if i == emitted.len() {
            let due = collected
                .tips
                .checked_sub(paid_tips)
                .unwrap_or(Amount::ZERO);
            if due.is_zero() {
                break;
            }
            emit(&mut emitted, shard, env, env.miner, due);
            paid_tips = collected.tips;
        }
        // Moved out: `emitted` is only read for its length from here on.
        let placeholder = Relay {
            origin: shard,
            index: 0,
            target: shard,
            kind: RelayKind::Deposit {
                to: Address::default(),
                amount: Amount::ZERO,
            },
        };
        let r = std::mem::replace(&mut emitted[i], placeholder);
        if r.target == shard && !r.is_deferred() {
            run_relay(
                &mut w,
                &r,
                env,
                contracts,
                shard,
                &mut emitted,
                &mut receipts,
                &mut seq,
                &mut collected,
            )?;
        } else {
            outbound.push(r);
        }
        i += 1;
    }
    // The outbox commits what waits first (block rules 3), then what the chunk sent.
    let outbox_root = crate::outbox::outbox_root(waiting.iter().chain(&outbound), env.order)
        .map_err(|e| ExecError::TargetOutOfRange(shard, e.0))?;
    let gas_used = params.block_gas_per_shard - room.gas;
    let next_base_fee = crate::fee::next_base_fee(params, base_fee, gas_used);
    let new_state = crate::fee::FeeState {
        base_fee: next_base_fee,
        burned: fee_state
            .burned
            .checked_add(collected.burned)
            .ok_or(ExecError::Overflow(Address::default()))?,
    };
    if new_state != fee_state {
        w.set_row(fee_key, Some(new_state.to_row()))?;
    }

    let mut changes: Vec<Change> =
        w.ws.into_iter()
            .filter_map(|(addr, (old, new))| match new {
                Some(new) if old != Some(new) => Some(Change { addr, old, new }),
                _ => None,
            })
            .collect();
    changes.sort_unstable_by_key(|c| c.addr);
    let mut state_changes: Vec<StateChange> = w
        .state
        .into_iter()
        .filter_map(|(key, (old, new))| match new {
            Some(new) if new != old => Some(StateChange { key, old, new }),
            _ => None,
        })
        .collect();
    // By reference: a key is ~100 bytes, and `_by_key` would copy two per comparison.
    #[allow(clippy::unnecessary_sort_by)]
    state_changes.sort_unstable_by(|a, b| a.key.cmp(&b.key));
    let mut lthash = lthash_before;
    for c in &changes {
        if let Some(o) = c.old {
            lthash.remove(&o.leaf(&c.addr));
        }
        lthash.insert(&c.new.leaf(&c.addr));
    }
    for c in &state_changes {
        if let Some(o) = &c.old {
            c.key.commit_remove(&mut lthash, o);
        }
        if let Some(n) = &c.new {
            c.key.commit_insert(&mut lthash, n);
        }
    }
    let digest = lthash.digest();
    Ok(ShardOutcome {
        shard,
        included,
        rejected,
        changes,
        outbound,
        outbox_root,
        state_changes,
        receipts: receipts.list,
        micro_txs: receipts.count,
        reverted: receipts.reverted,
        fees: collected.tips,
        burned: collected.burned,
        base_fee,
        next_base_fee,
        gas_used,
        fee_receipts,
        waiting,
        lthash,
        digest,
    })
}

/// Runs `f` once per shard on at most `threads` threads; results in shard order.
pub fn for_each_shard<T: Send>(
    shards: &mut [ShardStore],
    threads: usize,
    f: impl Fn(&mut ShardStore) -> T + Sync,
) -> Vec<T> {
    let n = shards.len();
    let workers = threads.clamp(1, n.max(1));
    if workers == 1 {
        return shards.iter_mut().map(f).collect();
    }
    let slots: Vec<Mutex<(&mut ShardStore, Option<T>)>> =
        shards.iter_mut().map(|s| Mutex::new((s, None))).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let mut slot = slots[i].lock().unwrap_or_else(|e| e.into_inner());
                let (store, out) = &mut *slot;
                *out = Some(f(store));
            });
        }
    });
    slots
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .1
                .expect("every shard ran")
        })
        .collect()
}
