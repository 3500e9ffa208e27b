//! The mempool: per-shard queues of verified transactions, by sender and nonce.
//!
//! Only transactions whose signature verified are admitted, so a block built from the pool
//! needs no second signature check. Selection for a block takes, per shard, each sender's
//! transactions in nonce order and picks among senders by fee.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

use crate::address::Address;
use crate::amount::Amount;
use crate::hash::Txid;
use crate::shard::{ShardId, ShardOrder};
use crate::tx::SignedTx;

/// Pending transactions.
#[derive(Debug)]
pub struct Mempool {
    order: ShardOrder,
    shards: Vec<HashMap<Address, BTreeMap<u64, SignedTx>>>,
    by_txid: HashMap<Txid, (Address, u64)>,
}

impl Mempool {
    /// An empty pool for `2^order` shards.
    pub fn new(order: ShardOrder) -> Self {
        Mempool {
            order,
            shards: (0..order.shard_count()).map(|_| HashMap::new()).collect(),
            by_txid: HashMap::new(),
        }
    }

    /// Number of transactions.
    pub fn len(&self) -> usize {
        self.by_txid.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.by_txid.is_empty()
    }

    /// Whether `txid` is pending (and so has a verified signature).
    pub fn contains(&self, txid: &Txid) -> bool {
        self.by_txid.contains_key(txid)
    }

    /// The pending transaction with this id.
    pub fn get_by_txid(&self, txid: &Txid) -> Option<&SignedTx> {
        let (sender, nonce) = self.by_txid.get(txid)?;
        self.get(sender, *nonce)
    }

    /// Whether this exact transaction, signature included, is pending (its signature was
    /// verified at admission).
    pub fn has_verified(&self, tx: &SignedTx) -> bool {
        self.get(&tx.tx.from, tx.tx.nonce)
            .is_some_and(|p| p.txid() == tx.txid() && p.sig == tx.sig)
    }

    /// Transactions pending on `shard`.
    pub fn shard_len(&self, shard: ShardId) -> usize {
        self.shards
            .get(shard.index())
            .map(|s| s.values().map(BTreeMap::len).sum())
            .unwrap_or(0)
    }

    /// The pending transaction of `sender` at `nonce`.
    pub fn get(&self, sender: &Address, nonce: u64) -> Option<&SignedTx> {
        let s = sender.shard(self.order);
        self.shards[s.index()].get(sender)?.get(&nonce)
    }

    /// rxBTC that `sender`'s pending transactions with nonce in `from..to` spend.
    pub fn pending_spend(&self, sender: &Address, from: u64, to: u64) -> Option<Amount> {
        let s = sender.shard(self.order);
        let Some(q) = self.shards[s.index()].get(sender) else {
            return Some(Amount::ZERO);
        };
        q.range(from..to).try_fold(Amount::ZERO, |acc, (_, t)| {
            acc.checked_add(t.tx.total_spend()?)
        })
    }

    /// Inserts (or replaces the same sender/nonce); returns the replaced transaction.
    pub fn insert(&mut self, tx: SignedTx) -> Option<SignedTx> {
        let from = tx.tx.from;
        let nonce = tx.tx.nonce;
        let s = from.shard(self.order);
        self.by_txid.insert(tx.txid(), (from, nonce));
        let old = self.shards[s.index()]
            .entry(from)
            .or_default()
            .insert(nonce, tx);
        if let Some(o) = &old {
            self.by_txid.remove(&o.txid());
        }
        old
    }

    /// Drops `sender`'s transactions with nonce below `next_nonce` (mined or replaced).
    pub fn remove_below(&mut self, sender: &Address, next_nonce: u64) {
        let s = sender.shard(self.order);
        let pool = &mut self.shards[s.index()];
        if let Some(q) = pool.get_mut(sender) {
            let keep = q.split_off(&next_nonce);
            for t in q.values() {
                self.by_txid.remove(&t.txid());
            }
            *q = keep;
            if q.is_empty() {
                pool.remove(sender);
            }
        }
    }

    /// Drops every transaction that expires before `height`.
    pub fn remove_expired(&mut self, height: u64) {
        for pool in &mut self.shards {
            pool.retain(|_, q| {
                q.retain(|_, t| {
                    let keep = t.tx.expiry_height >= height;
                    if !keep {
                        self.by_txid.remove(&t.txid());
                    }
                    keep
                });
                !q.is_empty()
            });
        }
    }

    /// Up to `max` transactions for `shard`: for each sender the chain of nonces starting at
    /// `nonce_of(sender)`, highest fee first among senders (ties by sender, then nonce).
    pub fn select(
        &self,
        shard: ShardId,
        max: usize,
        mut nonce_of: impl FnMut(&Address) -> u64,
    ) -> Vec<SignedTx> {
        let Some(pool) = self.shards.get(shard.index()) else {
            return Vec::new();
        };
        let mut heap = BinaryHeap::new();
        for (sender, q) in pool {
            let n = nonce_of(sender);
            if let Some(t) = q.get(&n) {
                heap.push((t.tx.fee, Reverse(*sender), Reverse(n)));
            }
        }
        let mut out = Vec::new();
        while let Some((_, Reverse(sender), Reverse(n))) = heap.pop() {
            if out.len() >= max {
                break;
            }
            let q = &pool[&sender];
            out.push(q[&n].clone());
            if let Some(next) = q.get(&(n + 1)) {
                heap.push((next.tx.fee, Reverse(sender), Reverse(n + 1)));
            }
        }
        out
    }
}
