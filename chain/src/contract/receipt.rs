//! Receipts: what each contract micro-transaction did. Not part of consensus (nodes may keep
//! or drop them); the chain stores them per block when `ChainConfig::contract_receipts` is on.

use serde::Serialize;

use super::target::Target;
use crate::address::Address;
use crate::amount::Amount;
use crate::asset::{AssetId, Assets};
use crate::hash::Txid;
use crate::shard::ShardId;

/// How a micro-transaction started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptKind {
    /// The transaction's own step on its sender's shard.
    Transaction,
    /// A relay.
    Relay,
    /// A deployment (compile + `on_deploy`) on the global lane.
    Deploy,
}

/// An event a contract recorded: `__event.push(id, data)` or `__event.notify(id, data)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ContractEvent {
    /// `push` or `notify`.
    pub kind: &'static str,
    /// The id the contract gave.
    pub id: u32,
    /// Its data.
    pub data: String,
}

impl From<crate::lang::vm::Event> for ContractEvent {
    fn from(e: crate::lang::vm::Event) -> Self {
        ContractEvent {
            kind: if e.notify { "notify" } else { "push" },
            id: e.id,
            data: e.data,
        }
    }
}

/// The outcome of one micro-transaction.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ContractReceipt {
    /// The originating transaction.
    pub txid: Txid,
    /// How it started.
    pub kind: ReceiptKind,
    /// Where it ran ([`ShardId::GLOBAL`] for the global lane).
    pub shard: ShardId,
    /// The contract.
    pub contract: Address,
    /// Function name (lambdas: `<relay@line:col>`).
    pub function: String,
    /// Scope target.
    pub target: Target,
    /// Gas it had.
    pub gas_limit: u64,
    /// Gas it consumed.
    pub gas_used: u64,
    /// Gas handed to the relays it emitted.
    pub gas_forwarded: u64,
    /// Relays emitted.
    pub relays: u32,
    /// `None` on success, else why it was reverted.
    pub error: Option<String>,
    /// The return value (JSON), on success.
    pub result: Option<serde_json::Value>,
    /// `__debug.print` lines (when the node logs them).
    pub logs: Vec<String>,
    /// Events the call recorded (`__event.push` / `__event.notify`), on success.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<ContractEvent>,
    /// For a relay: how its gas escrow was settled (burned, tipped, refunded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settled: Option<crate::fee::Settlement>,
    /// For a relay: blocks it waited beyond the first it could run in (backpressure).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waited: Option<u64>,
    /// rxBTC the call took in and gave out, when any moved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<ValueFlow>,
}

/// rxBTC (satoshis) through one micro-transaction.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ValueFlow {
    /// Attached by the transaction, or carried by the relay.
    pub received: Amount,
    /// Paid into the wallet of the address the call ran for (`deposit()`).
    pub deposited: Amount,
    /// Carried away by the relays it emitted.
    pub relayed: Amount,
    /// The call failed: where what it received went back (the sender, or a relay's target).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub returned_to: Option<Address>,
    /// Assets other than rxBTC that moved (see [`crate::asset`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub assets: Vec<AssetMove>,
}

/// One asset other than rxBTC through one micro-transaction.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AssetMove {
    /// The asset.
    pub asset: Option<AssetId>,
    /// Attached by the transaction, or carried by the relay.
    pub received: u64,
    /// Paid into the asset wallet of the address the call ran for.
    pub deposited: u64,
    /// Carried away by the relays it emitted.
    pub relayed: u64,
    /// Made by `__mint`.
    pub minted: u64,
    /// Destroyed by `__burn`.
    pub burned: u64,
}

impl ValueFlow {
    /// The flow of a call that succeeded, `None` when nothing moved.
    pub fn of(t: &crate::lang::vm::TokenFlow) -> Option<ValueFlow> {
        (t.received | t.deposited | t.relayed != 0 || !t.assets.is_empty()).then(|| ValueFlow {
            received: Amount::from_sat(t.received),
            deposited: Amount::from_sat(t.deposited),
            relayed: Amount::from_sat(t.relayed),
            returned_to: None,
            assets: t
                .assets
                .iter()
                .map(|(id, f)| AssetMove {
                    asset: AssetId::new(*id),
                    received: f.received,
                    deposited: f.deposited,
                    relayed: f.relayed,
                    minted: f.minted,
                    burned: f.burned,
                })
                .collect(),
        })
    }

    /// `value` and `assets` received by a call that failed and returned them to `to`;
    /// `None` when there were none.
    pub fn returned(value: Amount, assets: &Assets, to: Address) -> Option<ValueFlow> {
        (!value.is_zero() || !assets.is_empty()).then(|| ValueFlow {
            received: value,
            returned_to: Some(to),
            assets: assets
                .iter()
                .map(|(a, x)| AssetMove {
                    asset: Some(a),
                    received: x,
                    ..AssetMove::default()
                })
                .collect(),
            ..ValueFlow::default()
        })
    }
}

impl ContractReceipt {
    /// Gas neither used nor forwarded (refunded from a relay's escrow).
    pub fn gas_unused(&self) -> u64 {
        self.gas_limit
            .saturating_sub(self.gas_used)
            .saturating_sub(self.gas_forwarded)
    }
}
