//! The account record and the per-key change a block makes to it.

use serde::Serialize;

use crate::address::Address;
use crate::amount::Amount;
use crate::encode::{Decode, DecodeError, Encode, Reader};

/// An account's state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Account {
    /// rxBTC held.
    pub balance: Amount,
    /// Transactions sent so far (the next one must carry this nonce).
    pub nonce: u64,
}

impl Account {
    /// The commitment leaf for this account under `addr`.
    pub fn leaf(&self, addr: &Address) -> [u8; 49] {
        let mut b = [0u8; 49];
        b[0] = b'a';
        b[1..33].copy_from_slice(&addr.0);
        b[33..41].copy_from_slice(&self.balance.to_sat().to_le_bytes());
        b[41..49].copy_from_slice(&self.nonce.to_le_bytes());
        b
    }
}

/// An account as the write-back cache's clean table keeps it: balance and nonce in 16
/// bytes (an `Option<Account>` takes 24), `[u64::MAX; 2]` for "no such account".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct PackedAccount([u64; 2]);

const ABSENT: [u64; 2] = [u64::MAX; 2];

impl super::writeback::CacheValue for Option<Account> {
    type Packed = PackedAccount;

    /// An account holding `u64::MAX` sats (far above the 21M BTC supply) at nonce
    /// `u64::MAX` would read as absent: it has no packed form and is not cached clean.
    fn pack(self) -> Option<PackedAccount> {
        match self {
            None => Some(PackedAccount(ABSENT)),
            Some(a) => {
                let p = [a.balance.to_sat(), a.nonce];
                (p != ABSENT).then_some(PackedAccount(p))
            }
        }
    }

    fn unpack(p: &PackedAccount) -> Self {
        (p.0 != ABSENT).then(|| Account {
            balance: Amount::from_sat(p.0[0]),
            nonce: p.0[1],
        })
    }
}

/// One key changed by a block: its value before and after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    /// The account.
    pub addr: Address,
    /// Value before the block (`None`: did not exist).
    pub old: Option<Account>,
    /// Value after the block.
    pub new: Account,
}

/// Undo entry: the key and the value to restore.
pub(crate) fn encode_undo(entries: &[(Address, Option<Account>)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * 50 + 9);
    crate::encode::write_compact_size(&mut out, entries.len() as u64);
    for (addr, old) in entries {
        addr.0.encode(&mut out);
        match old {
            None => out.push(0),
            Some(a) => {
                out.push(1);
                a.balance.to_sat().encode(&mut out);
                a.nonce.encode(&mut out);
            }
        }
    }
    out
}

pub(crate) fn decode_undo(bytes: &[u8]) -> Result<Vec<(Address, Option<Account>)>, DecodeError> {
    let mut r = Reader::new(bytes);
    let n = r.length(33)?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let addr = Address(r.array()?);
        let old = match u8::decode(&mut r)? {
            0 => None,
            1 => Some(Account {
                balance: Amount::from_sat(u64::decode(&mut r)?),
                nonce: u64::decode(&mut r)?,
            }),
            _ => return Err(DecodeError::Invalid("undo entry flag")),
        };
        v.push((addr, old));
    }
    r.finish()?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::super::writeback::CacheValue;
    use super::*;

    #[test]
    fn accounts_pack_into_sixteen_bytes_and_back() {
        assert_eq!(std::mem::size_of::<PackedAccount>(), 16);
        assert_eq!(std::mem::size_of::<Option<Account>>(), 24);
        let values = [
            None,
            Some(Account::default()),
            Some(Account {
                balance: Amount::MAX_MONEY,
                nonce: 7,
            }),
            Some(Account {
                balance: Amount::from_sat(u64::MAX),
                nonce: 0,
            }),
            Some(Account {
                balance: Amount::ZERO,
                nonce: u64::MAX,
            }),
        ];
        for v in values {
            let p = v.pack().expect("packs");
            assert_eq!(Option::<Account>::unpack(&p), v);
        }
        // The one value that would read as absent is refused, not stored as absent.
        let edge = Some(Account {
            balance: Amount::from_sat(u64::MAX),
            nonce: u64::MAX,
        });
        assert_eq!(edge.pack(), None);
    }
}
