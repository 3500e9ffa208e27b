//! Native system contracts and the global lane they run on.
//!
//! A system contract (the bridge is the first) keeps `@global` state: one copy for the whole
//! chain, not split across shards. A transaction with a [`crate::Payload::Call`] runs on its
//! sender's shard like any other: fee and `value` are debited there and the call travels as a
//! relay to the global lane. At the start of the next block the global lane runs, before the
//! shards: every call relay of the previous block in canonical order (origin shard, emission
//! index), then each contract's [`SystemContract::end_block`]. What a contract pays out
//! ([`Credit`]) becomes deposit relays that the shards execute in the same block. A call that
//! fails pays its `value` back to the caller (the fee stays with the miner) and leaves a
//! receipt with the error.
//!
//! The chain never looks inside a contract: it clones the state for speculative execution
//! (templates) and sees the state as canonical items (key → value, both binary). After each
//! block it takes the items that changed ([`SystemContract::take_changes`]), stores them as
//! the block's changeset (old and new values, so a reorg undoes it item by item), and commits
//! to all items in the header's `state_root` through an LtHash updated per changed item (see
//! [`crate::global::GlobalImage`]): the cost of a block is its changes, not the whole state.
//! rxBTC a contract holds ([`SystemContract::held`]) counts in the supply audit.

use std::any::Any;
use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;
use thiserror::Error;

use crate::address::Address;
use crate::amount::Amount;
use crate::hash::Txid;

/// Identifies a system contract in call payloads (at most 64 can be installed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct SystemId(pub u8);

impl SystemId {
    /// The bridge (peg) contract.
    pub const PEG: SystemId = SystemId(1);
    /// The registry and global state of user contracts (see [`crate::contract`]).
    pub const CONTRACTS: SystemId = SystemId(2);
    /// Largest id the chain accepts.
    pub const MAX: u8 = 63;
}

impl fmt::Display for SystemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "system#{}", self.0)
    }
}

/// What the global lane knows about the block it runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GlobalCtx {
    /// L2 height being executed.
    pub height: u64,
    /// The block's header time (unix seconds): contracts use it as "now".
    pub time: u64,
}

/// One call, as the global lane hands it to a contract.
#[derive(Clone, Copy, Debug)]
pub struct Call<'a> {
    /// The transaction that made the call.
    pub txid: Txid,
    /// Its sender.
    pub caller: Address,
    /// rxBTC the sender attached (already debited; the contract holds it on success).
    pub value: Amount,
    /// Contract-defined argument bytes.
    pub data: &'a [u8],
}

/// A payout from a contract: becomes a deposit relay to `to`'s shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Credit {
    /// Payee.
    pub to: Address,
    /// Amount (must come out of what the contract holds).
    pub amount: Amount,
}

/// What a refusal means for whoever sent the call: the node's RPC reports it as
/// `error.data.kind` (and receipts as `error_kind`), so that clients decide on it rather than
/// on message text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RefusalKind {
    /// The call can never succeed as sent (malformed, wrong arguments, a rule it breaks).
    Invalid,
    /// Not yet: the same call may succeed once the chain moves on (a Bitcoin block not yet
    /// tracked or not deep enough).
    Retryable,
    /// The value or bond attached is too small.
    InsufficientFunds,
    /// What the call asks for has already happened (e.g. the match is claimed).
    AlreadyDone,
}

impl RefusalKind {
    /// The stable name (`invalid`, `retryable`, `insufficient-funds`, `already-done`).
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalKind::Invalid => "invalid",
            RefusalKind::Retryable => "retryable",
            RefusalKind::InsufficientFunds => "insufficient-funds",
            RefusalKind::AlreadyDone => "already-done",
        }
    }

    /// From [`RefusalKind::as_str`].
    pub fn from_name(s: &str) -> Option<RefusalKind> {
        Some(match s {
            "invalid" => RefusalKind::Invalid,
            "retryable" => RefusalKind::Retryable,
            "insufficient-funds" => RefusalKind::InsufficientFunds,
            "already-done" => RefusalKind::AlreadyDone,
            _ => return None,
        })
    }
}

impl fmt::Display for RefusalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a call was refused: a kind, an optional stable reason code (`[a-z0-9-]+`, e.g.
/// `escrow-retaken`) and a message for people. All three are recorded in the call's receipt;
/// the node's RPC returns the kind and code in `error.data`.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize)]
#[error("{message}")]
pub struct CallError {
    /// What the refusal means for the sender.
    pub kind: RefusalKind,
    /// Stable reason code, when the contract gives one.
    pub code: Option<String>,
    /// Human-readable message.
    pub message: String,
}

impl CallError {
    /// An [`RefusalKind::Invalid`] refusal with `msg` and no code.
    pub fn new(msg: impl fmt::Display) -> Self {
        CallError {
            kind: RefusalKind::Invalid,
            code: None,
            message: msg.to_string(),
        }
    }

    /// A refusal of `kind` with `msg` and a stable reason code.
    pub fn coded(kind: RefusalKind, msg: impl fmt::Display, code: &str) -> Self {
        CallError {
            kind,
            code: Some(code.to_string()),
            message: msg.to_string(),
        }
    }
}

/// One item of a system contract's state: canonical key and value.
pub type Item = (Vec<u8>, Vec<u8>);

/// A written item: its key and its value now (`None`: deleted).
pub type Change = (Vec<u8>, Option<Vec<u8>>);

/// A native contract with state on the global lane. Implementations must be deterministic:
/// the same state and calls give the same results, credits and items on every node.
pub trait SystemContract: Send + Sync {
    /// The id calls address it by.
    fn id(&self) -> SystemId;
    /// A copy for speculative execution.
    fn clone_box(&self) -> Box<dyn SystemContract>;
    /// Cheap checks against the current state before a call enters the mempool (decoding,
    /// arguments, "would this claim verify now?"): errors here spare the sender a fee. The
    /// real check is [`SystemContract::call`].
    fn precheck(&self, ctx: &GlobalCtx, call: &Call<'_>) -> Result<(), CallError>;
    /// Executes a call. On `Err` the state must be unchanged; the chain refunds `value`.
    fn call(&mut self, ctx: &GlobalCtx, call: &Call<'_>) -> Result<Vec<Credit>, CallError>;
    /// Whether [`SystemContract::end_block`] would do anything at `ctx` (expiries due).
    fn has_due_work(&self, ctx: &GlobalCtx) -> bool;
    /// Work due at the end of each block's global lane (expiries).
    fn end_block(&mut self, ctx: &GlobalCtx) -> Vec<Credit>;
    /// rxBTC the contract holds (escrows, bonds): part of the supply.
    fn held(&self) -> Amount;
    /// The whole state as canonical items: unique keys, each with its canonical value (equal
    /// states give equal items).
    fn items(&self) -> Vec<Item>;
    /// Items written since the last call, each key once with its value now (`None`: deleted),
    /// and forgets them. Listing an item that did not change is allowed (the chain drops it);
    /// leaving out one that did is a consensus bug. The default lists every item.
    fn take_changes(&mut self) -> Vec<Change> {
        self.items()
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect()
    }
    /// Writes `changes` into the state (`None` deletes the item): undoing a block with its
    /// old values, or loading a stored state. Values come from [`SystemContract::items`] /
    /// [`SystemContract::take_changes`] of the same rules; undecodable ones are an error.
    fn apply(&mut self, changes: &[Change]) -> Result<(), CallError>;
    /// Replaces the whole state with `items` (what [`SystemContract::items`] returned).
    fn load(&mut self, items: &[Item]) -> Result<(), CallError> {
        let keep: BTreeSet<&[u8]> = items.iter().map(|(k, _)| k.as_slice()).collect();
        let mut changes: Vec<Change> = self
            .items()
            .into_iter()
            .filter(|(k, _)| !keep.contains(k.as_slice()))
            .map(|(k, _)| (k, None))
            .collect();
        changes.extend(items.iter().map(|(k, v)| (k.clone(), Some(v.clone()))));
        self.apply(&changes)?;
        self.take_changes();
        Ok(())
    }
    /// Whether the Bitcoin block `btc_block` (internal byte order) is buried deep enough on
    /// the Bitcoin chain this contract tracks to anchor the L2 blocks it sealed: fork choice
    /// never reorganises below an anchored block (see [`crate::Chain::anchor`]).
    fn anchors(&self, btc_block: &[u8; 32]) -> bool {
        let _ = btc_block;
        false
    }
    /// A version of the contract's consensus rules, part of the chain's parameter
    /// fingerprint: a data directory made under other rules is refused at open.
    fn rules_version(&self) -> u32 {
        0
    }
    /// For queries: downcast to the concrete contract.
    fn as_any(&self) -> &dyn Any;
}

/// The system contracts installed on a chain: the contract registry (always present, a
/// typed field: the global lane and the shards use it directly) and the others (the peg, …),
/// in id order.
pub struct Systems {
    contracts: crate::contract::ContractsSystem,
    others: Vec<Box<dyn SystemContract>>,
}

impl Clone for Systems {
    fn clone(&self) -> Self {
        Systems {
            contracts: self.contracts.clone(),
            others: self.others.iter().map(|c| c.clone_box()).collect(),
        }
    }
}

impl Systems {
    /// The registry (empty) and `others`, which must not include [`SystemId::CONTRACTS`]
    /// (ignored if they do) nor two contracts with one id (the first is kept).
    pub fn new(mut others: Vec<Box<dyn SystemContract>>) -> Self {
        others.retain(|c| c.id() != SystemId::CONTRACTS);
        others.sort_by_key(|c| c.id());
        others.dedup_by_key(|c| c.id());
        Systems {
            contracts: crate::contract::ContractsSystem::new(),
            others,
        }
    }

    /// The contract registry and `@global` state of user contracts.
    pub fn contracts(&self) -> &crate::contract::ContractsSystem {
        &self.contracts
    }

    /// The same, mutable.
    pub fn contracts_mut(&mut self) -> &mut crate::contract::ContractsSystem {
        &mut self.contracts
    }

    /// Every installed contract, in id order.
    pub fn iter(&self) -> impl Iterator<Item = &dyn SystemContract> + '_ {
        let mut all: Vec<&dyn SystemContract> = self.others.iter().map(|c| c.as_ref()).collect();
        let at = all.partition_point(|c| c.id() < SystemId::CONTRACTS);
        all.insert(at, &self.contracts);
        all.into_iter()
    }

    /// Every installed contract, mutable, in id order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut (dyn SystemContract + 'static)> + '_ {
        let mut all: Vec<&mut (dyn SystemContract + 'static)> =
            self.others.iter_mut().map(|c| c.as_mut()).collect();
        let at = all.partition_point(|c| c.id() < SystemId::CONTRACTS);
        all.insert(at, &mut self.contracts);
        all.into_iter()
    }

    /// The contract with `id`.
    pub fn get(&self, id: SystemId) -> Option<&dyn SystemContract> {
        self.iter().find(|c| c.id() == id)
    }

    /// The contract with `id`, mutable.
    pub fn get_mut(&mut self, id: SystemId) -> Option<&mut (dyn SystemContract + 'static)> {
        self.iter_mut().find(|c| c.id() == id)
    }
}

/// The outcome of one call, kept as a receipt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Receipt {
    /// The calling transaction.
    pub txid: Txid,
    /// The contract.
    pub contract: SystemId,
    /// `None` on success, else why it failed (its value was refunded).
    pub error: Option<CallError>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_kinds_round_trip_by_name() {
        for k in [
            RefusalKind::Invalid,
            RefusalKind::Retryable,
            RefusalKind::InsufficientFunds,
            RefusalKind::AlreadyDone,
        ] {
            assert_eq!(RefusalKind::from_name(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        assert_eq!(RefusalKind::from_name("retry"), None);
        let e = CallError::coded(
            RefusalKind::AlreadyDone,
            "claim: match 3 claimed",
            "already-claimed",
        );
        assert_eq!(e.to_string(), "claim: match 3 claimed");
        assert_eq!(CallError::new("x").kind, RefusalKind::Invalid);
    }
}
