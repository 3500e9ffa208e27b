//! Shard state sync: a shard's state at one block, served in pages and checked against the
//! block's chunk state root.
//!
//! A shard's state is its accounts and its contract state rows; its root is the LtHash of
//! them all (see [`crate::lthash`]). An LtHash is a sum, so the rows can arrive in any
//! split and the sum of every page's rows must give the chunk's root: a page cannot be
//! checked alone, but a sync that ends on the root got every row, and nothing else. Pages
//! walk the keys in order (accounts, then state rows), each starting where the last ended
//! ([`StateCursor`]); the syncing node stores each page with its cursor and running sum in
//! one transaction, so an interrupted sync resumes where it stopped, from any peer that
//! serves the same block.

use crate::address::Address;
use crate::amount::Amount;
use crate::encode::{decode_list, encode_list, Decode, DecodeError, Encode, Reader};
use crate::hash::{BlockHash, Hash256};
use crate::shard::ShardId;
use crate::store::Account;
use crate::store::StateKey;

/// Rows a server puts in one page at most.
pub const PAGE_ROWS: usize = 4_096;
/// Bytes of row data a server puts in one page at most (a page may pass it by one row).
pub const PAGE_BYTES: usize = 512 * 1024;
/// Rows a page may carry (what a client accepts).
pub const MAX_PAGE_ROWS: usize = 2 * PAGE_ROWS;

/// Where a page starts: after a key of one table (`None`: the table's first key), in the
/// order accounts then state rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateCursor {
    /// Accounts after this address.
    Accounts(Option<Address>),
    /// State rows after this key (every account done).
    Rows(Option<StateKey>),
}

impl StateCursor {
    /// The first page's cursor.
    pub const START: StateCursor = StateCursor::Accounts(None);

    /// Whether `next` lies strictly after `self` (a page must move the cursor forward).
    pub fn precedes(&self, next: &StateCursor) -> bool {
        use StateCursor::*;
        match (self, next) {
            (Accounts(_), Rows(_)) => true,
            (Rows(_), Accounts(_)) => false,
            (Accounts(a), Accounts(Some(b))) => a.is_none_or(|a| a < *b),
            (Rows(a), Rows(Some(b))) => a.is_none_or(|a| a < *b),
            (_, _) => false,
        }
    }
}

impl Encode for StateCursor {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            StateCursor::Accounts(a) => {
                out.push(0);
                match a {
                    None => out.push(0),
                    Some(a) => {
                        out.push(1);
                        a.0.encode(out);
                    }
                }
            }
            StateCursor::Rows(k) => {
                out.push(1);
                match k {
                    None => out.push(0),
                    Some(k) => {
                        out.push(1);
                        k.as_bytes().to_vec().encode(out);
                    }
                }
            }
        }
    }
}

impl Decode for StateCursor {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let table = u8::decode(r)?;
        let some = match u8::decode(r)? {
            0 => false,
            1 => true,
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "cursor key",
                    tag,
                })
            }
        };
        match table {
            0 => Ok(StateCursor::Accounts(if some {
                Some(Address(r.array()?))
            } else {
                None
            })),
            1 => Ok(StateCursor::Rows(if some {
                Some(state_key(r)?)
            } else {
                None
            })),
            tag => Err(DecodeError::UnknownTag {
                what: "cursor table",
                tag,
            }),
        }
    }
}

fn state_key(r: &mut Reader<'_>) -> Result<StateKey, DecodeError> {
    StateKey::from_slice(&Vec::<u8>::decode(r)?).ok_or(DecodeError::Invalid("state key length"))
}

/// One account of a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccountRow {
    /// The address.
    pub addr: Address,
    /// Its state.
    pub account: Account,
}

impl Encode for AccountRow {
    fn encode(&self, out: &mut Vec<u8>) {
        self.addr.0.encode(out);
        self.account.balance.to_sat().encode(out);
        self.account.nonce.encode(out);
    }
}

impl Decode for AccountRow {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(AccountRow {
            addr: Address(r.array()?),
            account: Account {
                balance: Amount::from_sat(u64::decode(r)?),
                nonce: u64::decode(r)?,
            },
        })
    }
}

/// One contract state row of a page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateRow {
    /// The row's key.
    pub key: StateKey,
    /// Its value.
    pub value: Vec<u8>,
}

impl Encode for StateRow {
    fn encode(&self, out: &mut Vec<u8>) {
        self.key.as_bytes().to_vec().encode(out);
        self.value.encode(out);
    }
}

impl Decode for StateRow {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(StateRow {
            key: state_key(r)?,
            value: Vec::<u8>::decode(r)?,
        })
    }
}

/// One page of a shard's state at a block: the rows after `from` up to where `next` starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatePage {
    /// The shard.
    pub shard: ShardId,
    /// The block whose state this is.
    pub block: BlockHash,
    /// Where the page starts (the request's cursor).
    pub from: StateCursor,
    /// Accounts in address order (only on an accounts page).
    pub accounts: Vec<AccountRow>,
    /// State rows in key order (only on a rows page).
    pub rows: Vec<StateRow>,
    /// Where the next page starts; `None`: this was the last page.
    pub next: Option<StateCursor>,
}

impl StatePage {
    /// Bytes of row data the page carries.
    pub fn data_len(&self) -> usize {
        self.accounts.len() * 48
            + self
                .rows
                .iter()
                .map(|r| r.key.as_bytes().len() + r.value.len())
                .sum::<usize>()
    }

    /// Checks the page's shape against the cursor it answers: rows of the cursor's table
    /// only, keys strictly increasing after `from` and not past `next`, `next` after
    /// `from`, and at most [`MAX_PAGE_ROWS`] rows.
    pub fn check_shape(&self) -> Result<(), SyncError> {
        let bad = |why: &str| Err(SyncError::BadPage(why.to_string()));
        if self.accounts.len() + self.rows.len() > MAX_PAGE_ROWS {
            return bad("too many rows");
        }
        if let Some(next) = &self.next {
            if !self.from.precedes(next) {
                return bad("the next cursor does not move forward");
            }
        }
        // `precedes` above keeps `next` in the same table or moves it to rows.
        let in_order = match (self.from, self.next) {
            (StateCursor::Accounts(after), next) => {
                if !self.rows.is_empty() {
                    return bad("state rows on an accounts page");
                }
                let limit = match next {
                    Some(StateCursor::Accounts(b)) => b,
                    _ => None,
                };
                keys_within(after, limit, self.accounts.iter().map(|a| a.addr))
            }
            (StateCursor::Rows(after), next) => {
                if !self.accounts.is_empty() {
                    return bad("accounts on a state rows page");
                }
                let limit = match next {
                    Some(StateCursor::Rows(b)) => b,
                    _ => None,
                };
                keys_within(after, limit, self.rows.iter().map(|r| r.key))
            }
        };
        if !in_order {
            return bad("keys out of order or outside the page");
        }
        Ok(())
    }
}

/// Whether `keys` strictly increase from after `after` and none passes `limit`.
fn keys_within<K: Ord + Copy>(
    after: Option<K>,
    limit: Option<K>,
    keys: impl Iterator<Item = K>,
) -> bool {
    let mut last = after;
    for k in keys {
        if last.is_some_and(|l| k <= l) || limit.is_some_and(|b| k > b) {
            return false;
        }
        last = Some(k);
    }
    true
}

impl Encode for StatePage {
    fn encode(&self, out: &mut Vec<u8>) {
        self.shard.0.encode(out);
        self.block.0 .0.encode(out);
        self.from.encode(out);
        encode_list(&self.accounts, out);
        encode_list(&self.rows, out);
        match &self.next {
            None => out.push(0),
            Some(c) => {
                out.push(1);
                c.encode(out);
            }
        }
    }
}

impl Decode for StatePage {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let shard = ShardId(u16::decode(r)?);
        let block = BlockHash(Hash256(r.array()?));
        let from = StateCursor::decode(r)?;
        let accounts = decode_list(r, 48)?;
        let rows = decode_list(r, 3)?;
        let next = match u8::decode(r)? {
            0 => None,
            1 => Some(StateCursor::decode(r)?),
            tag => return Err(DecodeError::UnknownTag { what: "next", tag }),
        };
        Ok(StatePage {
            shard,
            block,
            from,
            accounts,
            rows,
            next,
        })
    }
}

/// A shard sync under way (or finished, awaiting [`crate::Chain::adopt_shard`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncProgress {
    /// The block whose state is being fetched.
    pub block: BlockHash,
    /// Its height.
    pub height: u64,
    /// Where the next page starts; `None`: every page is in.
    pub cursor: Option<StateCursor>,
    /// Rows stored so far.
    pub rows: u64,
    /// Bytes of row data stored so far.
    pub bytes: u64,
}

impl Encode for SyncProgress {
    fn encode(&self, out: &mut Vec<u8>) {
        self.block.0 .0.encode(out);
        self.height.encode(out);
        match &self.cursor {
            None => out.push(0),
            Some(c) => {
                out.push(1);
                c.encode(out);
            }
        }
        self.rows.encode(out);
        self.bytes.encode(out);
    }
}

impl Decode for SyncProgress {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(SyncProgress {
            block: BlockHash(Hash256(r.array()?)),
            height: u64::decode(r)?,
            cursor: match u8::decode(r)? {
                0 => None,
                1 => Some(StateCursor::decode(r)?),
                tag => {
                    return Err(DecodeError::UnknownTag {
                        what: "cursor",
                        tag,
                    })
                }
            },
            rows: u64::decode(r)?,
            bytes: u64::decode(r)?,
        })
    }
}

/// Why a state page could not be served or taken, or a sync could not finish.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The page is malformed for the cursor it answers (the sender's fault).
    #[error("bad state page: {0}")]
    BadPage(String),
    /// The page answers another shard, block or cursor than the one asked for.
    #[error("state page for another request: {0}")]
    Unasked(String),
    /// Every page is in, and the rows do not give the block's chunk state root: some peer
    /// sent rows that are not the state. The sync starts over.
    #[error("the synced rows of shard {shard} give {got}, not the chunk state root {want} of block {block}: some peer served a bad page; the sync starts over")]
    RootMismatch {
        /// The shard.
        shard: ShardId,
        /// The block.
        block: BlockHash,
        /// The header's chunk state root.
        want: Hash256,
        /// What the rows give.
        got: Hash256,
    },
    /// No sync of this shard is under way.
    #[error("no state sync of shard {0} is under way")]
    NotSyncing(ShardId),
    /// The sync has pages still to fetch.
    #[error("the state sync of shard {0} has pages still to fetch")]
    Unfinished(ShardId),
    /// The tip moved off the synced block (blocks were connected during the sync): the
    /// shard's state would be behind the others. The sync starts over at the tip.
    #[error("the tip moved from block {synced} (height {height}) during the state sync; the sync starts over at the tip")]
    TipMoved {
        /// The synced block.
        synced: BlockHash,
        /// Its height.
        height: u64,
    },
    /// The shard cannot be synced here (a full node, a tracked shard, out of range).
    #[error("shard {0} cannot be synced: {1}")]
    NotSyncable(ShardId, &'static str),
    /// The server cannot serve that block's state: not active, or older than its undo depth.
    #[error("state of block {0} is not served: {1}")]
    NotServed(BlockHash, String),
    /// The relay proofs of what the shard runs next do not check.
    #[error("relay proofs for the synced shard: {0}")]
    BadProofs(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The chain's stored data could not be read.
    #[error(transparent)]
    Chain(#[from] crate::chain::ChainError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> StateKey {
        StateKey::from_slice(&[b; 35]).unwrap()
    }

    fn page() -> StatePage {
        StatePage {
            shard: ShardId(2),
            block: BlockHash(Hash256([7; 32])),
            from: StateCursor::Rows(Some(key(1))),
            accounts: Vec::new(),
            rows: vec![
                StateRow {
                    key: key(2),
                    value: vec![1, 2, 3],
                },
                StateRow {
                    key: key(3),
                    value: Vec::new(),
                },
            ],
            next: Some(StateCursor::Rows(Some(key(4)))),
        }
    }

    #[test]
    fn pages_roundtrip_and_every_truncation_fails() {
        let p = page();
        let b = p.to_bytes();
        assert_eq!(StatePage::from_bytes(&b).unwrap(), p);
        for cut in 0..b.len() {
            assert!(StatePage::from_bytes(&b[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = b.clone();
        long.push(0);
        assert!(StatePage::from_bytes(&long).is_err());
        let prog = SyncProgress {
            block: p.block,
            height: 9,
            cursor: Some(StateCursor::START),
            rows: 5,
            bytes: 300,
        };
        assert_eq!(SyncProgress::from_bytes(&prog.to_bytes()).unwrap(), prog);
    }

    #[test]
    fn page_shapes_that_could_repeat_or_skip_rows_are_refused() {
        page().check_shape().unwrap();
        let mut p = page();
        p.rows.swap(0, 1);
        assert!(p.check_shape().is_err(), "out of order");
        let mut p = page();
        p.rows[0].key = key(1);
        assert!(p.check_shape().is_err(), "not after the cursor");
        let mut p = page();
        p.next = Some(StateCursor::Rows(Some(key(2))));
        assert!(p.check_shape().is_err(), "a row past the next cursor");
        let mut p = page();
        p.next = Some(StateCursor::Rows(Some(key(1))));
        assert!(p.check_shape().is_err(), "next does not move");
        let mut p = page();
        p.next = Some(StateCursor::START);
        assert!(p.check_shape().is_err(), "next goes back");
        let mut p = page();
        p.accounts.push(AccountRow {
            addr: Address([1; 32]),
            account: Account::default(),
        });
        assert!(p.check_shape().is_err(), "accounts on a rows page");
        let mut p = page();
        p.next = None;
        p.check_shape().unwrap();
    }
}
