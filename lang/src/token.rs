//! Tokens (PREDA spec 2.3.3): an amount of one asset, named by a 64-bit id made of its
//! symbol's bytes. rxBTC (symbol `RXBTC`, amounts in satoshis) is the chain's coin: no
//! contract may mint or burn it. Other assets are minted and burned (PREDA spec 5.10) by the
//! one contract the chain gave the right to (the host decides, [`crate::vm::Host::may_mint`]).

use std::collections::BTreeMap;

use super::value::Value;

/// Shortest token symbol.
pub const SYMBOL_MIN: usize = 3;
/// Longest token symbol (it must fit the 8-byte id).
pub const SYMBOL_MAX: usize = 8;

/// The id of a symbol: 3 to 8 characters of `A`–`Z`, `-` and `#`, their bytes little-endian;
/// 0 (no token) for anything else. As PREDA's `token.symbol_to_id`.
pub fn symbol_to_id(symbol: &str) -> u64 {
    let ok = (SYMBOL_MIN..=SYMBOL_MAX).contains(&symbol.len())
        && symbol
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'#');
    if !ok {
        return 0;
    }
    let mut id = [0u8; 8];
    id[..symbol.len()].copy_from_slice(symbol.as_bytes());
    u64::from_le_bytes(id)
}

/// The symbol of an id, `None` when it is not one [`symbol_to_id`] makes.
pub fn id_to_symbol(id: u64) -> Option<String> {
    if id == 0 {
        return None;
    }
    let bytes = id.to_le_bytes();
    let len = bytes.iter().position(|b| *b == 0).unwrap_or(8);
    if bytes[len..].iter().any(|b| *b != 0) {
        return None;
    }
    let s = std::str::from_utf8(&bytes[..len]).ok()?;
    (symbol_to_id(s) == id).then(|| s.to_string())
}

/// The id of rxBTC, the chain's coin.
pub const RXBTC_SYMBOL: &str = "RXBTC";

/// The id of rxBTC (`token.symbol_to_id("RXBTC")`).
pub fn rxbtc() -> u64 {
    symbol_to_id(RXBTC_SYMBOL)
}

/// Token value per asset id, in base units (u128: hostile copies of one token cannot
/// overflow a sum). Empty tokens (id 0) count nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Holdings(BTreeMap<u64, u128>);

impl Holdings {
    /// Nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `amount` of asset `id`.
    pub fn add(&mut self, id: u64, amount: u128) {
        if id != 0 && amount != 0 {
            *self.0.entry(id).or_default() += amount;
        }
    }

    /// Adds every token inside `v`.
    pub fn add_value(&mut self, v: &Value) {
        match v {
            Value::Token { id, amount } => self.add(*id, u128::from(*amount)),
            Value::Array(a) | Value::Struct(a) => a.iter().for_each(|x| self.add_value(x)),
            Value::Map(m) => m.values().for_each(|x| self.add_value(x)),
            _ => {}
        }
    }

    /// The tokens inside `v`.
    pub fn of(v: &Value) -> Self {
        let mut h = Self::new();
        h.add_value(v);
        h
    }

    /// How much of asset `id`.
    pub fn get(&self, id: u64) -> u128 {
        self.0.get(&id).copied().unwrap_or(0)
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The assets held, by id.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.0.keys().copied()
    }

    /// Adds all of `other`.
    pub fn merge(&mut self, other: &Holdings) {
        for (id, a) in &other.0 {
            self.add(*id, *a);
        }
    }
}

/// The total amount of every token inside `v`, whatever its asset (u128).
pub fn held(v: &Value) -> u128 {
    Holdings::of(v).0.values().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_round_trip_and_bad_ones_are_id_zero() {
        let id = symbol_to_id("RXBTC");
        assert_eq!(id, u64::from_le_bytes(*b"RXBTC\0\0\0"));
        assert_eq!(id_to_symbol(id).as_deref(), Some("RXBTC"));
        assert_eq!(rxbtc(), id);
        for bad in ["", "AB", "ABCDEFGHI", "btc", "BT C", "ÉTH"] {
            assert_eq!(symbol_to_id(bad), 0, "{bad}");
        }
        assert_eq!(symbol_to_id("A-B#"), u64::from_le_bytes(*b"A-B#\0\0\0\0"));
        assert_eq!(id_to_symbol(0), None);
        assert_eq!(id_to_symbol(u64::from_le_bytes(*b"AB\0C\0\0\0\0")), None);
        assert_eq!(id_to_symbol(u64::from_le_bytes(*b"ab\0\0\0\0\0\0")), None);
    }
}
