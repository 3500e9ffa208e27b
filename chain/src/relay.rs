//! Relays: the asynchronous micro-transactions that carry work to another partition.
//!
//! A relay emitted on shard `origin` as its `index`-th emission of a block runs on `target`:
//! at the end of the same block when `target == origin`, at the start of the next block
//! otherwise, always in canonical order (origin shard, then emission index).

use serde::Serialize;

use crate::address::Address;
use crate::amount::Amount;
use crate::encode::{Decode, DecodeError, Encode, Reader};
use crate::hash::{tagged_hash, Hash256};
use crate::shard::ShardId;

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

impl Relay {
    /// rxBTC in flight with this relay (counted in the supply until it lands).
    pub fn value(&self) -> Amount {
        match &self.kind {
            RelayKind::Deposit { amount, .. } => *amount,
        }
    }

    /// Hash for the header's `relay_root`.
    pub fn hash(&self) -> Hash256 {
        tagged_hash("rexe/relay", &self.to_bytes())
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
