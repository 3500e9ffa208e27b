//! A map that remembers which keys were written, so that the peg can hand the chain exactly
//! the items a block changed (see [`rexe_chain::system::SystemContract::take_changes`]).
//! Reads go through `Deref` to the inner `BTreeMap`; every write goes through a method here
//! and is recorded, so no write can be missed.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;

/// A `BTreeMap` recording the keys written since [`TrackedMap::take_written`]. Equality
/// compares the contents only.
#[derive(Debug, Clone)]
pub struct TrackedMap<K: Ord, V> {
    map: BTreeMap<K, V>,
    /// Keys in write order, repeats included (sorted and deduplicated when taken: a push
    /// per write is cheaper than a set insert, and writes far outnumber takes).
    written: Vec<K>,
}

impl<K: Ord, V> Default for TrackedMap<K, V> {
    fn default() -> Self {
        TrackedMap {
            map: BTreeMap::new(),
            written: Vec::new(),
        }
    }
}

impl<K: Ord + Clone, V> TrackedMap<K, V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts, recording the key.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        self.written.push(key.clone());
        self.map.insert(key, value)
    }

    /// Removes, recording the key when it was present.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let v = self.map.remove(key)?;
        self.written.push(key.clone());
        Some(v)
    }

    /// Mutable access, recording the key (whether or not the caller changes the value).
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let v = self.map.get_mut(key)?;
        self.written.push(key.clone());
        Some(v)
    }

    /// Removes every entry for which `keep` is false, recording each removed key.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) {
        let gone: Vec<K> = self
            .map
            .iter()
            .filter(|(k, v)| !keep(k, v))
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            self.remove(&k);
        }
    }

    /// The keys written since the last call (and forgets them).
    pub fn take_written(&mut self) -> BTreeSet<K> {
        std::mem::take(&mut self.written).into_iter().collect()
    }
}

impl<K: Ord, V: PartialEq> PartialEq for TrackedMap<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.map == other.map
    }
}

impl<K: Ord, V: Eq> Eq for TrackedMap<K, V> {}

impl<K: Ord, V> Deref for TrackedMap<K, V> {
    type Target = BTreeMap<K, V>;

    fn deref(&self) -> &BTreeMap<K, V> {
        &self.map
    }
}

impl<K: Ord + Clone, V> FromIterator<(K, V)> for TrackedMap<K, V> {
    /// A map holding the pairs, none of them recorded as written.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        TrackedMap {
            map: iter.into_iter().collect(),
            written: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_write_is_recorded_and_reads_are_not() {
        let mut m: TrackedMap<u32, u32> = [(1, 10), (2, 20), (3, 30)].into_iter().collect();
        assert!(m.take_written().is_empty());
        assert_eq!(m.get(&1), Some(&10));
        assert!(m.take_written().is_empty());
        m.insert(4, 40);
        *m.get_mut(&1).unwrap() += 1;
        m.remove(&9);
        m.remove(&2);
        m.retain(|k, _| *k != 3);
        assert_eq!(m.take_written(), [1, 2, 3, 4].into_iter().collect());
        assert!(m.take_written().is_empty());
        assert_eq!(m.keys().copied().collect::<Vec<_>>(), vec![1, 4]);
    }
}
