//! The mempool: per-shard queues of verified transactions, by sender and nonce.
//!
//! Only transactions whose signature verified are admitted, so a block built from the pool
//! needs no second signature check. Selection for a block takes, per shard, each sender's
//! transactions in nonce order and picks among senders by effective tip at the shard's
//! base fee (`min(max_tip, max_fee − base_fee)`). Each shard holds at most
//! [`Mempool::shard_capacity`] transactions: when full, an incoming transaction evicts the
//! lowest-priority one (by max tip, then max fee) if it pays more, together with that
//! sender's later nonces (which could not be mined without it).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use crate::address::Address;
use crate::amount::Amount;
use crate::fee::GasPrice;
use crate::hash::Txid;
use crate::shard::{ShardId, ShardOrder};
use crate::tx::SignedTx;
use crate::FastMap;

/// Priority for eviction: max tip, then max fee; the last nonce goes first among equals.
type Rank = (GasPrice, GasPrice, Reverse<u64>, Address);

/// Pending transactions.
#[derive(Debug)]
pub struct Mempool {
    order: ShardOrder,
    shards: Vec<FastMap<Address, BTreeMap<u64, SignedTx>>>,
    ranks: Vec<BTreeSet<Rank>>,
    by_txid: FastMap<Txid, (Address, u64)>,
    shard_capacity: usize,
}

/// Default transactions a shard's pool holds.
pub const DEFAULT_SHARD_CAPACITY: usize = 100_000;

/// What the mempool did with an inserted transaction.
#[derive(Debug, Default)]
pub struct Inserted {
    /// The same sender's transaction at the same nonce it replaced.
    pub replaced: Option<SignedTx>,
    /// Transactions evicted to make room.
    pub evicted: Vec<Txid>,
}

fn rank(t: &SignedTx) -> Rank {
    (t.tx.max_tip, t.tx.max_fee, Reverse(t.tx.nonce), t.tx.from)
}

/// Tip per gas `t` pays at `base_fee` (`None` when its max fee is below the base fee).
pub fn effective_tip(t: &SignedTx, base_fee: GasPrice) -> Option<GasPrice> {
    let room = t.tx.max_fee.to_msat().checked_sub(base_fee.to_msat())?;
    Some(t.tx.max_tip.min(GasPrice::from_msat(room)))
}

impl Mempool {
    /// An empty pool for `2^order` shards of [`DEFAULT_SHARD_CAPACITY`] each.
    pub fn new(order: ShardOrder) -> Self {
        Mempool::with_capacity(order, DEFAULT_SHARD_CAPACITY)
    }

    /// An empty pool for `2^order` shards holding at most `shard_capacity` transactions
    /// each (at least one).
    pub fn with_capacity(order: ShardOrder, shard_capacity: usize) -> Self {
        Mempool {
            order,
            shards: (0..order.shard_count())
                .map(|_| FastMap::default())
                .collect(),
            ranks: (0..order.shard_count()).map(|_| BTreeSet::new()).collect(),
            by_txid: FastMap::default(),
            shard_capacity: shard_capacity.max(1),
        }
    }

    /// Most transactions one shard's pool holds.
    pub fn shard_capacity(&self) -> usize {
        self.shard_capacity
    }

    /// Whether `tx` would be admitted by priority: its shard has room, or it outranks
    /// the lowest pending transaction there (it would evict it).
    pub fn has_room_for(&self, tx: &SignedTx) -> bool {
        let s = tx.tx.from.shard(self.order).index();
        if self.get(&tx.tx.from, tx.tx.nonce).is_some()
            || self.shard_len_fast(s) < self.shard_capacity
        {
            return true;
        }
        self.ranks[s]
            .first()
            .is_some_and(|low| (tx.tx.max_tip, tx.tx.max_fee) > (low.0, low.1))
    }

    fn shard_len_fast(&self, s: usize) -> usize {
        self.ranks[s].len()
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
        self.ranks.get(shard.index()).map_or(0, BTreeSet::len)
    }

    /// Every transaction pending on `shard`, in no particular order.
    pub fn shard_txs(&self, shard: ShardId) -> impl Iterator<Item = &SignedTx> {
        self.shards
            .get(shard.index())
            .into_iter()
            .flat_map(|p| p.values().flat_map(|q| q.values()))
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

    /// Inserts (or replaces the same sender/nonce). When the shard is full, evicts the
    /// lowest-ranked transaction (and its sender's later ones) if `tx` outranks it; call
    /// [`Mempool::has_room_for`] first to refuse instead.
    pub fn insert(&mut self, tx: SignedTx) -> Inserted {
        let from = tx.tx.from;
        let nonce = tx.tx.nonce;
        let s = from.shard(self.order).index();
        let mut out = Inserted::default();
        if let Some(old) = self.remove_one(&from, nonce) {
            out.replaced = Some(old);
        }
        while self.ranks[s].len() >= self.shard_capacity {
            let Some(low) = self.ranks[s].first().copied() else {
                break;
            };
            let (addr, Reverse(n)) = (low.3, low.2);
            // Evict it and the sender's later nonces.
            let later: Vec<u64> = self.shards[s]
                .get(&addr)
                .map(|q| q.range(n..).map(|(k, _)| *k).collect())
                .unwrap_or_default();
            for k in later {
                if let Some(t) = self.remove_one(&addr, k) {
                    out.evicted.push(t.txid());
                }
            }
        }
        self.by_txid.insert(tx.txid(), (from, nonce));
        self.ranks[s].insert(rank(&tx));
        self.shards[s].entry(from).or_default().insert(nonce, tx);
        out
    }

    /// Removes one transaction (keeping the indexes in step).
    fn remove_one(&mut self, sender: &Address, nonce: u64) -> Option<SignedTx> {
        let s = sender.shard(self.order).index();
        let q = self.shards[s].get_mut(sender)?;
        let t = q.remove(&nonce)?;
        if q.is_empty() {
            self.shards[s].remove(sender);
        }
        self.by_txid.remove(&t.txid());
        self.ranks[s].remove(&rank(&t));
        Some(t)
    }

    /// Drops `sender`'s transactions with nonce below `next_nonce` (mined or replaced).
    pub fn remove_below(&mut self, sender: &Address, next_nonce: u64) {
        let s = sender.shard(self.order).index();
        while let Some(n) = self.shards[s]
            .get(sender)
            .and_then(|q| q.first_key_value())
            .map(|(n, _)| *n)
            .filter(|n| *n < next_nonce)
        {
            self.remove_one(sender, n);
        }
    }

    /// Drops every transaction that expires before `height`.
    pub fn remove_expired(&mut self, height: u64) {
        let expired: Vec<(Address, u64)> = self
            .shards
            .iter()
            .flat_map(|pool| pool.values().flat_map(|q| q.values()))
            .filter(|t| t.tx.expiry_height < height)
            .map(|t| (t.tx.from, t.tx.nonce))
            .collect();
        for (a, n) in expired {
            self.remove_one(&a, n);
        }
    }

    /// Up to `max` transactions for `shard`: for each sender the chain of nonces starting at
    /// `nonce_of(sender)`, highest effective tip at `base_fee` first among senders (ties by
    /// sender, then nonce). A sender's chain stops at a transaction whose max fee is below
    /// the base fee.
    pub fn select(
        &self,
        shard: ShardId,
        max: usize,
        base_fee: GasPrice,
        mut nonce_of: impl FnMut(&Address) -> u64,
    ) -> Vec<SignedTx> {
        let Some(pool) = self.shards.get(shard.index()) else {
            return Vec::new();
        };
        let mut heap = BinaryHeap::new();
        for (sender, q) in pool {
            let n = nonce_of(sender);
            if let Some(tip) = q.get(&n).and_then(|t| effective_tip(t, base_fee)) {
                heap.push((tip, Reverse(*sender), Reverse(n)));
            }
        }
        let mut out = Vec::new();
        while let Some((_, Reverse(sender), Reverse(n))) = heap.pop() {
            if out.len() >= max {
                break;
            }
            let q = &pool[&sender];
            out.push(q[&n].clone());
            if let Some(tip) = q.get(&(n + 1)).and_then(|t| effective_tip(t, base_fee)) {
                heap.push((tip, Reverse(sender), Reverse(n + 1)));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::Signer;
    use crate::params::Network;
    use crate::tx::{Payload, Tx, TRANSFER_GAS};

    fn tx(key: &Signer, nonce: u64, max_fee: u64, tip: u64) -> SignedTx {
        Tx {
            network: Network::Regtest,
            from: key.address(),
            nonce,
            max_fee: GasPrice::from_msat(max_fee),
            max_tip: GasPrice::from_msat(tip),
            gas_limit: TRANSFER_GAS,
            expiry_height: 100,
            payload: Payload::Transfer {
                to: key.address(),
                amount: Amount::from_sat(1),
            },
        }
        .sign(key)
    }

    fn one_shard() -> ShardOrder {
        ShardOrder::new(0).unwrap()
    }

    #[test]
    fn selection_is_by_effective_tip_at_the_base_fee() {
        let (a, b, c) = (
            Signer::from_seed(b"a"),
            Signer::from_seed(b"b"),
            Signer::from_seed(b"c"),
        );
        let mut m = Mempool::new(one_shard());
        // a: tip 5 but max fee 12; b: tip 8, max fee 100; c: max fee below the base fee.
        m.insert(tx(&a, 0, 12, 5));
        m.insert(tx(&b, 0, 100, 8));
        m.insert(tx(&c, 0, 9, 9));
        let order = |base: u64| -> Vec<Address> {
            m.select(ShardId(0), 10, GasPrice::from_msat(base), |_| 0)
                .iter()
                .map(|t| t.tx.from)
                .collect()
        };
        // Base 5: a pays min(5, 7) = 5, b pays 8; c (max fee 9) pays min(9, 4) = 4.
        assert_eq!(order(5), vec![b.address(), a.address(), c.address()]);
        // Base 10: a's effective tip is 2, b's 8; c cannot pay the base fee.
        assert_eq!(order(10), vec![b.address(), a.address()]);
    }

    #[test]
    fn a_full_shard_evicts_the_lowest_with_its_later_nonces() {
        let keys: Vec<Signer> = (0..3u8).map(|i| Signer::from_seed(&[i])).collect();
        let mut m = Mempool::with_capacity(one_shard(), 4);
        // keys[0]: nonces 0 and 1 at tip 1 (the lowest); keys[1]: tip 5 twice.
        m.insert(tx(&keys[0], 0, 10, 1));
        m.insert(tx(&keys[0], 1, 10, 2));
        m.insert(tx(&keys[1], 0, 10, 5));
        m.insert(tx(&keys[1], 1, 10, 5));
        assert_eq!(m.len(), 4);
        let low = tx(&keys[2], 0, 10, 1);
        assert!(
            !m.has_room_for(&low),
            "paying no more than the lowest: refused"
        );
        let better = tx(&keys[2], 0, 10, 3);
        assert!(m.has_room_for(&better));
        let out = m.insert(better.clone());
        // keys[0]'s nonce 0 is the lowest; its nonce 1 cannot be mined without it.
        assert_eq!(out.evicted.len(), 2, "{out:?}");
        assert!(m.get(&keys[0].address(), 0).is_none());
        assert!(m.get(&keys[0].address(), 1).is_none());
        assert!(m.contains(&better.txid()));
        assert_eq!(m.len(), 3);
        assert_eq!(m.shard_len(ShardId(0)), 3);
    }

    #[test]
    fn replacing_and_removing_keep_the_indexes_in_step() {
        let k = Signer::from_seed(b"k");
        let mut m = Mempool::with_capacity(one_shard(), 2);
        let first = tx(&k, 0, 10, 1);
        m.insert(first.clone());
        let second = tx(&k, 0, 20, 2);
        let out = m.insert(second.clone());
        assert_eq!(out.replaced.map(|t| t.txid()), Some(first.txid()));
        assert!(!m.contains(&first.txid()));
        assert_eq!(m.len(), 1);
        m.insert(tx(&k, 1, 20, 2));
        m.remove_below(&k.address(), 1);
        assert_eq!(m.len(), 1);
        m.remove_expired(101);
        assert!(m.is_empty());
        assert_eq!(m.shard_len(ShardId(0)), 0);
    }
}
