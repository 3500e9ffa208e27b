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
