//! Relays: the asynchronous micro-transactions that carry work to another partition.
//!
//! A relay emitted on shard `origin` as its `index`-th emission of a block runs on `target`:
//! at the end of the same block when `target == origin`, at the start of the next block
//! otherwise, always in canonical order (origin shard, then emission index).

use serde::Serialize;

use crate::address::Address;
use crate::amount::Amount;
use crate::contract::{ContractCall, Deployment};
use crate::encode::{Decode, DecodeError, Encode, Reader};
use crate::hash::{tagged_hash, Hash256, Txid};
use crate::shard::ShardId;
use crate::system::SystemId;

/// What a relay does on its target shard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RelayKind {
    /// Credit `amount` to `to` (the second half of a transfer, or a miner payout).
    Deposit {
        /// Payee.
        to: Address,
        /// Amount credited.
        amount: Amount,
    },
    /// A system-contract call on its way to the global lane (target [`ShardId::GLOBAL`]).
    Call {
        /// The calling transaction.
        txid: Txid,
        /// Its sender (refunded `value` if the call fails).
        caller: Address,
        /// The contract.
        contract: SystemId,
        /// rxBTC attached.
        value: Amount,
        /// Arguments.
        #[serde(skip)]
        data: Vec<u8>,
    },
    /// A contract micro-transaction (see [`crate::contract`]).
    Contract(Box<ContractCall>),
    /// A contract deployment on its way to the global lane.
    Deploy(Box<Deployment>),
    /// Base fees a relay settled on the global lane burned, carried to a shard's burn total
    /// (the global lane keeps no fee state).
    Burn {
        /// Amount burned.
        amount: Amount,
    },
    /// Credit assets other than rxBTC to `to`'s asset wallets: what a failed call of a
    /// `@global` function returns to its sender from the global lane.
    DepositAssets {
        /// Payee.
        to: Address,
        /// What is credited.
        assets: crate::asset::Assets,
    },
}

/// One relay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Relay {
    /// Shard that emitted it.
    pub origin: ShardId,
    /// Emission index within the origin shard's block.
    pub index: u32,
    /// Shard that executes it.
    pub target: ShardId,
    /// What it does.
    pub kind: RelayKind,
}

/// How many of `queue`'s relays, taken in order, run within `limit` gas (each weighing
/// `weight`), and the gas they take: from the first that does not fit, the rest wait. One
/// heavier than the whole limit runs alone rather than block the queue for ever (only
/// possible with parameters where a transaction may buy more than a block holds).
pub fn fitting(queue: &[Relay], limit: u64, weight: impl Fn(&Relay) -> u64) -> (usize, u64) {
    let mut left = limit;
    for (i, r) in queue.iter().enumerate() {
        let g = weight(r);
        if g > left && left < limit {
            return (i, limit - left);
        }
        left = left.saturating_sub(g);
    }
    (queue.len(), limit - left)
}

impl Relay {
    /// rxBTC in flight with this relay (counted in the supply until it lands).
    pub fn value(&self) -> Amount {
        match &self.kind {
            RelayKind::Deposit { amount, .. } => *amount,
            RelayKind::Call { value, .. } => *value,
            RelayKind::Contract(c) => c
                .fee
                .escrow
                .checked_add(c.value)
                .unwrap_or(Amount::MAX_MONEY),
            RelayKind::Deploy(d) => d.fee.escrow,
            RelayKind::Burn { amount } => *amount,
            RelayKind::DepositAssets { .. } => Amount::ZERO,
        }
    }

    /// Assets other than rxBTC in flight with this relay.
    pub fn assets(&self) -> Option<&crate::asset::Assets> {
        match &self.kind {
            RelayKind::Contract(c) if !c.assets.is_empty() => Some(&c.assets),
            RelayKind::DepositAssets { assets, .. } => Some(assets),
            _ => None,
        }
    }

    /// Whether it waits for the next block even when its target is its origin
    /// (`relay@next`).
    pub fn is_deferred(&self) -> bool {
        matches!(&self.kind, RelayKind::Contract(c) if c.deferred)
    }

    /// Hash for the outbox trees under the header's `outbox_root` (see [`crate::outbox`]).
    pub fn hash(&self) -> Hash256 {
        // Sized for a contract call (the largest common relay), so encoding never regrows.
        let mut b = Vec::with_capacity(256);
        self.encode(&mut b);
        tagged_hash("rexe/relay", &b)
    }
}

impl Encode for Relay {
    fn encode(&self, out: &mut Vec<u8>) {
        self.origin.0.encode(out);
        self.index.encode(out);
        self.target.0.encode(out);
        match &self.kind {
            RelayKind::Deposit { to, amount } => {
                out.push(0);
                to.0.encode(out);
                amount.to_sat().encode(out);
            }
            RelayKind::Call {
                txid,
                caller,
                contract,
                value,
                data,
            } => {
                out.push(1);
                txid.0 .0.encode(out);
                caller.0.encode(out);
                out.push(contract.0);
                value.to_sat().encode(out);
                data.encode(out);
            }
            RelayKind::Contract(c) => {
                out.push(2);
                c.encode(out);
            }
            RelayKind::Deploy(d) => {
                out.push(3);
                d.encode(out);
            }
            RelayKind::Burn { amount } => {
                out.push(4);
                amount.to_sat().encode(out);
            }
            RelayKind::DepositAssets { to, assets } => {
                out.push(5);
                to.0.encode(out);
                assets.encode(out);
            }
        }
    }
}

impl Decode for Relay {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let origin = ShardId(u16::decode(r)?);
        let index = u32::decode(r)?;
        let target = ShardId(u16::decode(r)?);
        let kind = match u8::decode(r)? {
            0 => RelayKind::Deposit {
                to: Address(r.array()?),
                amount: Amount::from_sat(u64::decode(r)?),
            },
            1 => RelayKind::Call {
                txid: Txid(Hash256(r.array()?)),
                caller: Address(r.array()?),
                contract: SystemId(u8::decode(r)?),
                value: Amount::from_sat(u64::decode(r)?),
                data: Vec::<u8>::decode(r)?,
            },
            2 => RelayKind::Contract(Box::new(ContractCall::decode(r)?)),
            3 => RelayKind::Deploy(Box::new(Deployment::decode(r)?)),
            4 => RelayKind::Burn {
                amount: Amount::from_sat(u64::decode(r)?),
            },
            5 => {
                let to = Address(r.array()?);
                let assets = crate::asset::Assets::decode(r)?;
                if assets.is_empty() {
                    return Err(DecodeError::Invalid("an asset deposit without assets"));
                }
                RelayKind::DepositAssets { to, assets }
            }
            tag => return Err(DecodeError::UnknownTag { what: "relay", tag }),
        };
        Ok(Relay {
            origin,
            index,
            target,
            kind,
        })
    }
}
