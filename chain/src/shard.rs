//! Shard identities: a chain has `2^order` shards; an account lives on `shard_of(address)`.

use core::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Largest supported shard order (2^8 = 256 shards).
pub const MAX_SHARD_ORDER: u8 = 8;

/// The number of shards as a power of two.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct ShardOrder(u8);

/// A shard order above [`MAX_SHARD_ORDER`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("shard order {0} is above the maximum {MAX_SHARD_ORDER}")]
pub struct ShardOrderError(pub u8);

impl ShardOrder {
    /// A checked shard order.
    pub fn new(order: u8) -> Result<Self, ShardOrderError> {
        if order > MAX_SHARD_ORDER {
            return Err(ShardOrderError(order));
        }
        Ok(ShardOrder(order))
    }

    /// The order (log2 of the shard count).
    pub fn get(self) -> u8 {
        self.0
    }

    /// How many shards.
    pub fn shard_count(self) -> usize {
        1usize << self.0
    }

    /// Every shard id of this order, in canonical order.
    pub fn shards(self) -> impl Iterator<Item = ShardId> {
        (0..self.shard_count() as u16).map(ShardId)
    }

    /// Whether `shard` exists at this order.
    pub fn contains(self, shard: ShardId) -> bool {
        (shard.0 as usize) < self.shard_count()
    }
}

impl TryFrom<u8> for ShardOrder {
    type Error = ShardOrderError;
    fn try_from(v: u8) -> Result<Self, Self::Error> {
        ShardOrder::new(v)
    }
}

impl From<ShardOrder> for u8 {
    fn from(o: ShardOrder) -> u8 {
        o.0
    }
}

/// A shard index in `0..2^order`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(transparent)]
pub struct ShardId(pub u16);

impl ShardId {
    /// The global lane (system contracts): the origin and target of relays to and from
    /// `@global` state. Never a real shard (at most 2^[`MAX_SHARD_ORDER`] shards exist).
    pub const GLOBAL: ShardId = ShardId(u16::MAX);

    /// Whether this is [`ShardId::GLOBAL`].
    pub fn is_global(self) -> bool {
        self == ShardId::GLOBAL
    }

    /// The index as `usize`, for slices.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_global() {
            return f.write_str("#global");
        }
        write!(f, "#{}", self.0)
    }
}
