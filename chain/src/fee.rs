//! The fee market (issue 18): gas prices, each shard's base fee and what one transaction
//! pays.
//!
//! Every transaction buys gas (`gas_limit`) at a price it caps (`max_fee`, per gas) with a
//! priority tip it caps (`max_tip`, per gas). A shard's **base fee** moves each block
//! toward half the shard's gas limit used, by at most 1/8 per block (EIP-1559), and is
//! **burned**; the tip goes to the block's miner; gas the transaction does not use is
//! refunded to its sender in the same block. Each shard keeps its own base fee, so a hot
//! contract on one shard makes that shard expensive only (a local fee market).
//!
//! A shard's base fee and the total it burned live in one state row of the shard
//! ([`FeeState`] under [`fee_key`]): committed by the shard's state commitment and rolled
//! back with the shard's undo records, like any other row.

use serde::{Deserialize, Serialize};

use crate::amount::Amount;
use crate::encode::{Decode, DecodeError, Encode, Reader};
use crate::params::ChainParams;
use crate::store::StateKey;

/// A price per unit of gas, in millisatoshis (1/1000 sat).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct GasPrice(u64);

impl GasPrice {
    /// Zero.
    pub const ZERO: GasPrice = GasPrice(0);

    /// A price of `msat` millisatoshis per gas.
    pub const fn from_msat(msat: u64) -> GasPrice {
        GasPrice(msat)
    }

    /// Millisatoshis per gas.
    pub const fn to_msat(self) -> u64 {
        self.0
    }

    /// `self + rhs`, saturating.
    #[must_use]
    pub fn saturating_add(self, rhs: GasPrice) -> GasPrice {
        GasPrice(self.0.saturating_add(rhs.0))
    }

    /// `self - rhs`, saturating at zero.
    #[must_use]
    pub fn saturating_sub(self, rhs: GasPrice) -> GasPrice {
        GasPrice(self.0.saturating_sub(rhs.0))
    }

    /// What `gas` units cost at this price, in millisatoshis (exact).
    pub fn cost_msat(self, gas: u64) -> u128 {
        gas as u128 * self.0 as u128
    }

    /// What `gas` units cost at this price, rounded up to whole sats (`None` above u64).
    pub fn cost(self, gas: u64) -> Option<Amount> {
        u64::try_from(self.cost_msat(gas).div_ceil(1000))
            .ok()
            .map(Amount::from_sat)
    }
}

impl core::fmt::Display for GasPrice {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} msat/gas", self.0)
    }
}

/// A shard's fee market state after a block: the base fee of the next block, and every
/// sat its blocks burned since genesis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct FeeState {
    /// Base fee the next block on this shard charges.
    pub base_fee: GasPrice,
    /// Base fees burned on this shard since genesis.
    pub burned: Amount,
}

impl FeeState {
    /// The state before any block: the minimum base fee, nothing burned.
    pub fn genesis(params: &ChainParams) -> FeeState {
        FeeState {
            base_fee: params.min_base_fee,
            burned: Amount::ZERO,
        }
    }

    /// The row's value.
    pub fn to_row(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        self.base_fee.0.encode(&mut out);
        self.burned.to_sat().encode(&mut out);
        out
    }

    /// Parses a row's value (exactly 16 bytes).
    pub fn from_row(b: &[u8]) -> Result<FeeState, DecodeError> {
        let mut r = Reader::new(b);
        let s = FeeState {
            base_fee: GasPrice(u64::decode(&mut r)?),
            burned: Amount::from_sat(u64::decode(&mut r)?),
        };
        r.finish()?;
        Ok(s)
    }

    /// Reads the state from a shard's row (absent: [`FeeState::genesis`]).
    pub fn from_stored(params: &ChainParams, row: Option<&[u8]>) -> Result<FeeState, DecodeError> {
        match row {
            Some(b) => FeeState::from_row(b),
            None => Ok(FeeState::genesis(params)),
        }
    }
}

/// The state row holding a shard's [`FeeState`]: contract address zero and scope tag
/// `0xfe`, which no contract scope uses (so contract listings never show it).
pub fn fee_key() -> StateKey {
    let mut k = [0u8; 33];
    k[32] = 0xfe;
    StateKey::from_slice(&k).expect("33 bytes")
}

/// The base fee of the block after one that used `gas_used` of `params.block_gas_per_shard`
/// at `base_fee`: EIP-1559 with a target of half the limit and a change of at most
/// 1/`base_fee_change_denominator` per block, never below `min_base_fee`.
pub fn next_base_fee(params: &ChainParams, base_fee: GasPrice, gas_used: u64) -> GasPrice {
    let target = (params.block_gas_per_shard / 2).max(1) as u128;
    let denom = params.base_fee_change_denominator.max(1) as u128;
    let base = base_fee.0 as u128;
    let used = gas_used as u128;
    let next = if used > target {
        let delta = (base * (used - target) / target / denom).max(1);
        base.saturating_add(delta)
    } else {
        let delta = base * (target - used) / target / denom;
        base - delta
    };
    GasPrice(next.min(u64::MAX as u128) as u64).max(params.min_base_fee)
}

/// What one transaction pays, once its gas use is known.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FeeCharge {
    /// Gas the transaction used (intrinsic, execution, and gas forwarded to its relays).
    pub gas_used: u64,
    /// The shard's base fee in its block.
    pub base_fee: GasPrice,
    /// Base fee × gas used, burned.
    pub burned: Amount,
    /// Tip × gas used, paid to the miner.
    pub tip: Amount,
    /// Reserved at the start and given back (the unused gas, and the price cap above
    /// base fee + tip).
    pub refund: Amount,
    /// Escrowed for the gas its relays carry (settled where they run: see [`GasEscrow`]).
    pub escrowed: Amount,
}

/// The gas a relay carries, as bought: the price its transaction paid, the burned part of
/// it, and the rxBTC escrowed for the gas (`floor(gas × price)`), which travels with the
/// relay (counted in the supply as in flight) until the relay runs and settles it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GasEscrow {
    /// Price per gas the transaction paid (base fee + tip).
    pub price: GasPrice,
    /// The base fee in that price (burned).
    pub base_fee: GasPrice,
    /// rxBTC escrowed for the carried gas.
    pub escrow: Amount,
    /// Height of the block that emitted the relay.
    pub emitted: u64,
}

impl Encode for GasEscrow {
    fn encode(&self, out: &mut Vec<u8>) {
        self.price.0.encode(out);
        self.base_fee.0.encode(out);
        self.escrow.to_sat().encode(out);
        self.emitted.encode(out);
    }
}

impl Decode for GasEscrow {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(GasEscrow {
            price: GasPrice(u64::decode(r)?),
            base_fee: GasPrice(u64::decode(r)?),
            escrow: Amount::from_sat(u64::decode(r)?),
            emitted: u64::decode(r)?,
        })
    }
}

impl GasEscrow {
    /// The escrow for a child relay carrying `gas`, emitted at `height` by a relay (or
    /// transaction) that bought its gas at this price.
    pub fn child(&self, gas: u64, height: u64) -> GasEscrow {
        GasEscrow {
            price: self.price,
            base_fee: self.base_fee,
            escrow: floor_cost(self.price, gas),
            emitted: height,
        }
    }

    /// Settles a relay that used `gas_used` and handed `children` of its escrow to the
    /// relays it emitted: the gas used is paid at the price (burned at the base fee, the
    /// rest tipped) as far as the escrow goes, and what remains is refunded to the sender.
    pub fn settle(&self, gas_used: u64, children: Amount) -> Settlement {
        let left = self.escrow.checked_sub(children).unwrap_or(Amount::ZERO);
        let pay = self
            .price
            .cost(gas_used)
            .unwrap_or(Amount::MAX_MONEY)
            .min(left);
        let burned = self
            .base_fee
            .cost(gas_used)
            .unwrap_or(Amount::MAX_MONEY)
            .min(pay);
        Settlement {
            burned,
            tip: pay.checked_sub(burned).unwrap_or(Amount::ZERO),
            refund: left.checked_sub(pay).unwrap_or(Amount::ZERO),
        }
    }
}

/// `floor(gas × price)` in sats: what a relay's escrow holds (never more than was paid).
pub fn floor_cost(price: GasPrice, gas: u64) -> Amount {
    Amount::from_sat(u64::try_from(price.cost_msat(gas) / 1000).unwrap_or(u64::MAX))
}

/// How a relay's escrow was spent when it ran.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Settlement {
    /// Burned (base fee × gas used).
    pub burned: Amount,
    /// Paid to the miner of the block that ran it.
    pub tip: Amount,
    /// Returned to the transaction's sender.
    pub refund: Amount,
}

/// Why a transaction cannot pay for its gas in a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FeeError {
    /// Its price cap is below the shard's base fee.
    #[error("max fee {max_fee} below the shard's base fee {base_fee}")]
    BelowBaseFee {
        /// The transaction's cap.
        max_fee: GasPrice,
        /// The base fee.
        base_fee: GasPrice,
    },
    /// Reserving `gas_limit × max_fee` overflows.
    #[error("fee reservation overflows")]
    Overflow,
}

/// The rxBTC a transaction reserves before it runs: `gas_limit × max_fee`, rounded up.
pub fn reservation(gas_limit: u64, max_fee: GasPrice) -> Option<Amount> {
    max_fee.cost(gas_limit)
}

/// The price per gas a transaction pays at `base_fee`: `min(max_fee, base_fee + max_tip)`,
/// or an error when `max_fee` is below the base fee.
pub fn effective_price(
    base_fee: GasPrice,
    max_fee: GasPrice,
    max_tip: GasPrice,
) -> Result<GasPrice, FeeError> {
    if max_fee < base_fee {
        return Err(FeeError::BelowBaseFee { max_fee, base_fee });
    }
    Ok(max_fee.min(base_fee.saturating_add(max_tip)))
}

/// Splits what a transaction that reserved `reserved` and used `gas_used` gas pays:
/// `ceil(gas_used × price)` charged, of which `ceil(gas_used × base_fee)` is burned and
/// the rest tipped; the remainder of the reservation is refunded. `reserved` must be
/// [`reservation`]`(gas_limit, max_fee)` with `gas_used <= gas_limit`.
pub fn charge(
    reserved: Amount,
    gas_used: u64,
    base_fee: GasPrice,
    price: GasPrice,
) -> Option<FeeCharge> {
    let total = price.cost(gas_used)?;
    let burned = base_fee.cost(gas_used)?.min(total);
    Some(FeeCharge {
        gas_used,
        base_fee,
        burned,
        tip: total.checked_sub(burned)?,
        refund: reserved.checked_sub(total)?,
        escrowed: Amount::ZERO,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> ChainParams {
        ChainParams::regtest()
    }

    #[test]
    fn base_fee_follows_utilisation() {
        let p = params();
        let b = GasPrice::from_msat(1_000);
        let limit = p.block_gas_per_shard;
        assert_eq!(next_base_fee(&p, b, limit / 2), b, "at target: unchanged");
        assert_eq!(next_base_fee(&p, b, limit), GasPrice::from_msat(1_125));
        assert_eq!(next_base_fee(&p, b, 0), GasPrice::from_msat(875));
        // Never below the minimum, and a full block always raises it by at least one.
        assert_eq!(next_base_fee(&p, p.min_base_fee, 0), p.min_base_fee);
        assert!(next_base_fee(&p, p.min_base_fee, limit) > p.min_base_fee);
    }

    #[test]
    fn refund_is_the_unused_gas() {
        let max_fee = GasPrice::from_msat(30);
        let base = GasPrice::from_msat(10);
        let tip = GasPrice::from_msat(5);
        let price = effective_price(base, max_fee, tip).unwrap();
        assert_eq!(price, GasPrice::from_msat(15));
        let reserved = reservation(100_000, max_fee).unwrap();
        assert_eq!(reserved, Amount::from_sat(3_000));
        // 10% of the gas: pays 10% at base fee + tip.
        let c = charge(reserved, 10_000, base, price).unwrap();
        assert_eq!(c.burned, Amount::from_sat(100));
        assert_eq!(c.tip, Amount::from_sat(50));
        assert_eq!(c.refund, Amount::from_sat(2_850));
        assert_eq!(
            c.burned.to_sat() + c.tip.to_sat() + c.refund.to_sat(),
            reserved.to_sat()
        );
        assert_eq!(
            effective_price(base, GasPrice::from_msat(9), tip),
            Err(FeeError::BelowBaseFee {
                max_fee: GasPrice::from_msat(9),
                base_fee: base
            })
        );
        // The cap binds the tip.
        assert_eq!(
            effective_price(base, GasPrice::from_msat(12), tip).unwrap(),
            GasPrice::from_msat(12)
        );
    }

    #[test]
    fn row_roundtrips_and_rejects_trailing_bytes() {
        let s = FeeState {
            base_fee: GasPrice::from_msat(7),
            burned: Amount::from_sat(99),
        };
        assert_eq!(FeeState::from_row(&s.to_row()).unwrap(), s);
        let mut long = s.to_row();
        long.push(0);
        assert!(FeeState::from_row(&long).is_err());
        assert!(crate::contract::parse_state_key(&fee_key()).is_none());
    }
}
