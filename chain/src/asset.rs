//! Assets other than rxBTC: PREDA tokens (spec 2.3.3, 5.10) that one contract mints and
//! burns. An asset is named by its symbol (3–8 characters of `A`–`Z`, `-`, `#`), its id the
//! symbol's bytes as PREDA makes it. The right to mint a symbol is registered once, by the
//! deployer of the contract that will hold it (first come, first served; see
//! [`crate::contract::MintRight`]); nobody holds it for `RXBTC`.
//!
//! Where the value lives, all in shard state rows under contract address zero with scope
//! tags no contract uses (so each is committed in the state root and undone on reorgs):
//! - an address's **asset wallet**: one row per (address, asset), tag `0xfb`;
//! - what contract state on the shard holds in tokens of the asset, tag `0xfd` (rxBTC's row
//!   is the bare tag, [`crate::contract::held_key`]);
//! - what contracts on the shard minted less what they burned, tag `0xfa` (signed: tokens
//!   minted on one shard may be burned on another).
//!
//! Relays carry assets to addresses only. The supply audit checks per asset that what was
//! issued equals what wallets, contract state and relays in flight hold
//! ([`crate::Chain::audit_assets`]). Each shard may issue at most `u64::MAX >> shard_order`
//! of an asset, so no sum anywhere overflows 64 bits.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::address::Address;
use crate::encode::{write_compact_size, Decode, DecodeError, Encode, Reader};
use crate::lang::token;
use crate::store::StateKey;

/// Most assets one transaction may attach to a call.
pub const MAX_ATTACHED: usize = 8;

/// An asset other than rxBTC, by its symbol's id.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AssetId(u64);

impl fmt::Debug for AssetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AssetId({})", self.symbol())
    }
}

impl AssetId {
    /// The asset with symbol id `id`: `None` for an id no symbol makes, and for rxBTC.
    pub fn new(id: u64) -> Option<Self> {
        (token::id_to_symbol(id).is_some() && id != token::rxbtc()).then_some(AssetId(id))
    }

    /// The asset named `symbol` (`None` for a malformed symbol and for `RXBTC`).
    pub fn from_symbol(symbol: &str) -> Option<Self> {
        Self::new(token::symbol_to_id(symbol))
    }

    /// Its id (the symbol's bytes, little-endian).
    pub fn id(self) -> u64 {
        self.0
    }

    /// Its symbol.
    pub fn symbol(self) -> String {
        token::id_to_symbol(self.0).unwrap_or_default()
    }
}

impl fmt::Display for AssetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.symbol())
    }
}

impl Serialize for AssetId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.symbol())
    }
}

impl Encode for AssetId {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
    }
}

impl Decode for AssetId {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        AssetId::new(u64::decode(r)?).ok_or(DecodeError::Invalid("asset id"))
    }
}

/// Amounts of assets other than rxBTC: at most one entry per asset, sorted by id, none zero.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Assets(Vec<(AssetId, u64)>);

impl Assets {
    /// None.
    pub const fn new() -> Self {
        Assets(Vec::new())
    }

    /// From (asset, amount) pairs: sorted, zero amounts dropped; `None` when an asset is
    /// named twice.
    pub fn from_pairs(mut v: Vec<(AssetId, u64)>) -> Option<Self> {
        v.retain(|(_, a)| *a > 0);
        v.sort_by_key(|(id, _)| *id);
        v.windows(2).all(|w| w[0].0 != w[1].0).then_some(Assets(v))
    }

    /// From what the VM reports, (id, amount) pairs: `None` when an id is not an asset.
    pub fn from_ids(v: &[(u64, u64)]) -> Option<Self> {
        let pairs = v
            .iter()
            .map(|(id, a)| Some((AssetId::new(*id)?, *a)))
            .collect::<Option<Vec<_>>>()?;
        Self::from_pairs(pairs)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many assets.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The (asset, amount) pairs, by asset.
    pub fn iter(&self) -> impl Iterator<Item = (AssetId, u64)> + '_ {
        self.0.iter().copied()
    }

    /// As the VM takes them: (id, amount) pairs.
    pub fn to_ids(&self) -> Vec<(u64, u64)> {
        self.0.iter().map(|(a, x)| (a.0, *x)).collect()
    }
}

impl Serialize for Assets {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Entry {
            asset: AssetId,
            amount: u64,
        }
        s.collect_seq(self.0.iter().map(|(asset, amount)| Entry {
            asset: *asset,
            amount: *amount,
        }))
    }
}

impl Encode for Assets {
    fn encode(&self, out: &mut Vec<u8>) {
        write_compact_size(out, self.0.len() as u64);
        for (a, x) in &self.0 {
            a.encode(out);
            x.encode(out);
        }
    }
}

impl Decode for Assets {
    /// Refuses anything but the canonical form: ids ascending, amounts not zero.
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let n = r.length(16)?;
        let mut v: Vec<(AssetId, u64)> = Vec::with_capacity(n);
        for _ in 0..n {
            let a = AssetId::decode(r)?;
            let x = u64::decode(r)?;
            if x == 0 {
                return Err(DecodeError::Invalid("a zero asset amount"));
            }
            if v.last().is_some_and(|(p, _)| *p >= a) {
                return Err(DecodeError::Invalid("assets out of order"));
            }
            v.push((a, x));
        }
        Ok(Assets(v))
    }
}

const WALLET_TAG: u8 = 0xfb;
const HELD_TAG: u8 = 0xfd;
const ISSUED_TAG: u8 = 0xfa;

fn system_key(tag: u8, rest: &[&[u8]]) -> StateKey {
    let mut k = Vec::with_capacity(80);
    k.extend_from_slice(&[0u8; 32]);
    k.push(tag);
    for r in rest {
        k.extend_from_slice(r);
    }
    StateKey::from_slice(&k).expect("at most 73 bytes")
}

/// The row of `addr`'s wallet of `asset`.
pub fn wallet_key(addr: &Address, asset: AssetId) -> StateKey {
    system_key(WALLET_TAG, &[&addr.0, &asset.0.to_le_bytes()])
}

/// The first bytes of every wallet row of `addr` (all of them, with `None`).
pub fn wallet_prefix(addr: Option<&Address>) -> Vec<u8> {
    let mut k = vec![0u8; 32];
    k.push(WALLET_TAG);
    if let Some(a) = addr {
        k.extend_from_slice(&a.0);
    }
    k
}

/// The (address, asset) of a wallet row's key, `None` for any other key.
pub fn parse_wallet_key(k: &[u8]) -> Option<(Address, AssetId)> {
    if k.len() != 73 || k[..32] != [0u8; 32] || k[32] != WALLET_TAG {
        return None;
    }
    let addr = Address(k[33..65].try_into().ok()?);
    let id = u64::from_le_bytes(k[65..73].try_into().ok()?);
    Some((addr, AssetId::new(id)?))
}

/// The row of what contract state on a shard holds of `asset`.
pub fn held_key(asset: AssetId) -> StateKey {
    system_key(HELD_TAG, &[&asset.0.to_le_bytes()])
}

/// The row of what contracts on a shard issued of `asset` (minted less burned).
pub fn issued_key(asset: AssetId) -> StateKey {
    system_key(ISSUED_TAG, &[&asset.0.to_le_bytes()])
}

/// The first bytes of every issued row (the assets a shard has issued).
pub fn issued_prefix() -> Vec<u8> {
    let mut k = vec![0u8; 32];
    k.push(ISSUED_TAG);
    k
}

/// The asset of an issued row's key.
pub fn parse_issued_key(k: &[u8]) -> Option<AssetId> {
    if k.len() != 41 || k[..32] != [0u8; 32] || k[32] != ISSUED_TAG {
        return None;
    }
    AssetId::new(u64::from_le_bytes(k[33..41].try_into().ok()?))
}

/// The amount in one of these rows (absent: zero; `None`: not 8 bytes).
pub fn amount_of(row: Option<&[u8]>) -> Option<u64> {
    match row {
        None => Some(0),
        Some(b) => Some(u64::from_le_bytes(b.try_into().ok()?)),
    }
}

/// The row value for an amount (zero: no row).
pub fn amount_row(amount: u64) -> Option<Vec<u8>> {
    (amount != 0).then(|| amount.to_le_bytes().to_vec())
}

/// The amount in an issued row (absent: zero; `None`: not 16 bytes). Signed: a shard
/// where more was burned than minted (the tokens were minted elsewhere) is below zero.
pub fn issued_of(row: Option<&[u8]>) -> Option<i128> {
    match row {
        None => Some(0),
        Some(b) => Some(i128::from_le_bytes(b.try_into().ok()?)),
    }
}

/// The row value of an issued amount (zero: no row).
pub fn issued_row(issued: i128) -> Option<Vec<u8>> {
    (issued != 0).then(|| issued.to_le_bytes().to_vec())
}

/// Most of one asset a shard may have issued (net of burns): `u64::MAX >> shard_order`, so
/// that all shards together never issue more than 64 bits hold.
pub fn issue_cap(shard_order: u8) -> u64 {
    u64::MAX >> shard_order.min(63)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_canonical_and_rxbtc_is_not_one() {
        assert_eq!(AssetId::from_symbol("RXBTC"), None);
        assert_eq!(AssetId::from_symbol("bad"), None);
        assert_eq!(AssetId::new(0), None);
        let btc = AssetId::from_symbol("BTC").unwrap();
        let eth = AssetId::from_symbol("ETH").unwrap();
        assert_eq!(btc.to_string(), "BTC");
        assert_eq!(Assets::from_pairs(vec![(btc, 1), (btc, 2)]), None);
        let a = Assets::from_pairs(vec![(eth, 5), (btc, 0), (btc, 7)]).unwrap();
        assert_eq!(a.to_ids(), vec![(btc.id(), 7), (eth.id(), 5)]);
        let bytes = a.to_bytes();
        assert_eq!(Assets::from_bytes(&bytes).unwrap(), a);
        // Out of order, repeated, zero amounts and rxBTC do not decode.
        let entry = |id: u64, x: u64| [id.to_le_bytes(), x.to_le_bytes()].concat();
        for bad in [
            [vec![2], entry(eth.id(), 1), entry(btc.id(), 1)].concat(),
            [vec![2], entry(btc.id(), 1), entry(btc.id(), 1)].concat(),
            [vec![1], entry(btc.id(), 0)].concat(),
            [vec![1], entry(token::rxbtc(), 1)].concat(),
            [vec![1], entry(7, 1)].concat(),
        ] {
            assert!(Assets::from_bytes(&bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            serde_json::json!([{"asset": "BTC", "amount": 7}, {"asset": "ETH", "amount": 5}])
        );
    }

    #[test]
    fn row_keys_parse_back_and_caps_sum_to_64_bits() {
        let btc = AssetId::from_symbol("BTC").unwrap();
        let a = Address([7; 32]);
        let k = wallet_key(&a, btc);
        assert!(k.as_bytes().starts_with(&wallet_prefix(Some(&a))));
        assert_eq!(parse_wallet_key(k.as_bytes()), Some((a, btc)));
        assert_eq!(parse_wallet_key(held_key(btc).as_bytes()), None);
        assert_eq!(parse_issued_key(issued_key(btc).as_bytes()), Some(btc));
        assert_ne!(held_key(btc), crate::contract::held_key());
        assert_eq!(amount_of(amount_row(9).as_deref()), Some(9));
        assert_eq!(amount_row(0), None);
        assert_eq!(amount_of(Some(&[1, 2])), None);
        assert_eq!(issued_of(issued_row(-5).as_deref()), Some(-5));
        assert_eq!(issued_of(None), Some(0));
        assert_eq!(issued_row(0), None);
        for order in [0u8, 1, 4, 16] {
            let total = u128::from(issue_cap(order)) << order;
            assert!(total <= u128::from(u64::MAX), "{order}");
        }
    }
}
