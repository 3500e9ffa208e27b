//! The write-back cache of a shard store: values by key, each marked with the flush epoch
//! in which it was last written, so the dirty set lives in the map itself. A block's
//! changes cost one hash-map operation each (no separate dirty set to keep in step), and
//! marking everything clean after a flush is O(1).

use std::hash::Hash;

use crate::FastMap;

/// Epoch of entries that match the file.
const CLEAN: u32 = 0;

pub(super) struct WriteBack<K, V> {
    map: FastMap<K, (V, u32)>,
    /// Entries written since the last flush carry this epoch.
    epoch: u32,
    dirty: usize,
}

impl<K: Hash + Eq + Ord + Copy, V> WriteBack<K, V> {
    pub(super) fn new() -> Self {
        WriteBack {
            map: FastMap::default(),
            epoch: CLEAN + 1,
            dirty: 0,
        }
    }

    pub(super) fn get(&self, k: &K) -> Option<&V> {
        self.map.get(k).map(|e| &e.0)
    }

    /// Makes room for `n` more entries at once (one allocation instead of a doubling
    /// series whose freed tables the allocator may keep resident).
    pub(super) fn reserve(&mut self, n: usize) {
        self.map.reserve(n);
    }

    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    /// Entries written since the last flush.
    pub(super) fn dirty_len(&self) -> usize {
        self.dirty
    }

    /// Caches `v` as read from the file, unless the key is cached already (a cached entry
    /// is at least as new as the file).
    pub(super) fn insert_clean(&mut self, k: K, v: V) {
        self.map.entry(k).or_insert((v, CLEAN));
    }

    /// Writes `v` (dirty until the next [`WriteBack::mark_clean`]).
    pub(super) fn write(&mut self, k: K, v: V) {
        let epoch = self.epoch;
        match self.map.entry(k) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                let e = e.get_mut();
                if e.1 != epoch {
                    e.1 = epoch;
                    self.dirty += 1;
                }
                e.0 = v;
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert((v, epoch));
                self.dirty += 1;
            }
        }
    }

    /// The dirty entries, sorted by key.
    pub(super) fn dirty_sorted(&self) -> Vec<(&K, &V)> {
        let mut out = Vec::with_capacity(self.dirty);
        if self.dirty > 0 {
            out.extend(
                self.map
                    .iter()
                    .filter(|(_, e)| e.1 == self.epoch)
                    .map(|(k, e)| (k, &e.0)),
            );
        }
        out.sort_unstable_by(|a, b| a.0.cmp(b.0));
        out
    }

    /// After a flush wrote every dirty entry: all are clean.
    pub(super) fn mark_clean(&mut self) {
        if self.epoch == u32::MAX {
            for e in self.map.values_mut() {
                e.1 = CLEAN;
            }
            self.epoch = CLEAN;
        }
        self.epoch += 1;
        self.dirty = 0;
    }

    /// Drops everything.
    pub(super) fn clear(&mut self) {
        self.map.clear();
        self.dirty = 0;
    }

    /// When at `limit` entries and clean, keeps a random half (hash order), so the hit
    /// rate does not fall to zero. Dirty entries are never dropped.
    pub(super) fn shrink_to_half_if_full(&mut self, limit: usize) {
        if self.map.len() < limit {
            return;
        }
        let mut keep = limit / 2;
        let epoch = self.epoch;
        self.map.retain(|_, e| {
            if e.1 == epoch {
                return true;
            }
            let k = keep > 0;
            keep = keep.saturating_sub(1);
            k
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirty_tracking_follows_writes_and_flushes() {
        let mut w: WriteBack<u32, &str> = WriteBack::new();
        w.insert_clean(5, "file");
        w.insert_clean(5, "older file read");
        assert_eq!(w.get(&5), Some(&"file"));
        assert_eq!(w.dirty_len(), 0);
        w.write(9, "a");
        w.write(3, "b");
        w.write(9, "c");
        assert_eq!(w.dirty_len(), 2);
        assert_eq!(w.dirty_sorted(), vec![(&3, &"b"), (&9, &"c")]);
        // A clean read never overwrites a dirty value.
        w.insert_clean(9, "stale");
        assert_eq!(w.get(&9), Some(&"c"));
        w.mark_clean();
        assert_eq!(w.dirty_len(), 0);
        assert!(w.dirty_sorted().is_empty());
        w.write(5, "d");
        assert_eq!(w.dirty_sorted(), vec![(&5, &"d")]);
        // Shrinking keeps every dirty entry.
        for k in 100..200 {
            w.insert_clean(k, "x");
        }
        w.shrink_to_half_if_full(50);
        assert!(w.len() <= 26);
        assert_eq!(w.get(&5), Some(&"d"));
        assert_eq!(w.dirty_len(), 1);
    }

    #[test]
    fn epoch_wrap_keeps_clean_entries_clean() {
        let mut w: WriteBack<u8, u8> = WriteBack::new();
        w.epoch = u32::MAX;
        w.write(1, 1);
        w.mark_clean();
        assert!(w.dirty_sorted().is_empty());
        w.write(2, 2);
        assert_eq!(w.dirty_sorted(), vec![(&2, &2)]);
    }
}
