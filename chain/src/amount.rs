//! rxBTC amounts: u64 satoshis with checked arithmetic (overflow is an error, never a wrap).

use core::fmt;

use serde::{Deserialize, Serialize};

/// An amount of rxBTC in satoshis (1 rxBTC = 100,000,000 sats, 1:1 with BTC).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Amount(u64);

impl Amount {
    /// Zero sats.
    pub const ZERO: Amount = Amount(0);
    /// One sat.
    pub const ONE_SAT: Amount = Amount(1);
    /// One rxBTC.
    pub const ONE_BTC: Amount = Amount(100_000_000);
    /// 21 million rxBTC: no valid state holds more.
    pub const MAX_MONEY: Amount = Amount(21_000_000 * 100_000_000);

    /// An amount of `sats` satoshis.
    pub const fn from_sat(sats: u64) -> Amount {
        Amount(sats)
    }

    /// The amount in satoshis.
    pub const fn to_sat(self) -> u64 {
        self.0
    }

    /// `self + rhs`, or `None` on overflow.
    #[must_use]
    pub fn checked_add(self, rhs: Amount) -> Option<Amount> {
        self.0.checked_add(rhs.0).map(Amount)
    }

    /// `self - rhs`, or `None` when `rhs > self`.
    #[must_use]
    pub fn checked_sub(self, rhs: Amount) -> Option<Amount> {
        self.0.checked_sub(rhs.0).map(Amount)
    }

    /// `self * rhs`, or `None` on overflow.
    #[must_use]
    pub fn checked_mul(self, rhs: u64) -> Option<Amount> {
        self.0.checked_mul(rhs).map(Amount)
    }

    /// True for zero sats.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:08} rxBTC",
            self.0 / 100_000_000,
            self.0 % 100_000_000
        )
    }
}

/// Sums amounts, `None` on overflow.
pub fn checked_sum(amounts: impl IntoIterator<Item = Amount>) -> Option<Amount> {
    amounts
        .into_iter()
        .try_fold(Amount::ZERO, |acc, a| acc.checked_add(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_is_checked() {
        assert_eq!(
            Amount::from_sat(u64::MAX).checked_add(Amount::ONE_SAT),
            None
        );
        assert_eq!(Amount::ZERO.checked_sub(Amount::ONE_SAT), None);
        assert_eq!(Amount::from_sat(u64::MAX).checked_mul(2), None);
        assert_eq!(
            Amount::from_sat(5).checked_sub(Amount::from_sat(3)),
            Some(Amount::from_sat(2))
        );
        assert_eq!(
            checked_sum([Amount::from_sat(u64::MAX), Amount::ONE_SAT]),
            None
        );
    }

    #[test]
    fn displays_as_rxbtc() {
        assert_eq!(
            Amount::from_sat(150_000_001).to_string(),
            "1.50000001 rxBTC"
        );
    }
}
