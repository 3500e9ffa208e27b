//! The write-back cache of a shard store: the entries written since the last flush (the
//! dirty set, a hash map the flush writes out) over a table of entries that match the file
//! (the clean set).
//!
//! The clean set is a set-associative table of fixed size: each key has two sets of
//! [`WAYS`] slots, goes into the emptier, and a key read when both are full replaces one
//! of their slots. It never grows past `limit` entries and never rehashes once it is at
//! its size, so a node's memory holds still under load. (A hash map holding both, as before, doubled whenever a
//! block wrote keys into a full table: at 10 M accounts a full node's caches went from 0.5
//! to over 1 GiB during its first blocks after opening, the allocator keeping the old
//! tables resident.) Reads look in the dirty set first; a flush moves the dirty entries
//! into the clean set.
//!
//! A clean slot holds the key's [`Fingerprint`], 128 bits of SipHash-2-4 under a key each
//! table draws at random, not the key itself: an account's slot is 34 bytes instead of 50,
//! so the same memory caches half as many accounts again (at 10 M accounts, all of them in
//! the memory that held 8 M). Two keys share a fingerprint with probability 2^-128 per
//! pair, and nobody outside the process knows the hash key to search for such a pair (as
//! Bitcoin Core's signature cache keeps salted hashes rather than the entries).

use std::hash::{BuildHasher, Hash};

use siphasher::sip128::{Hasher128, SipHasher24};

use crate::FastMap;

/// Slots per set of the clean table.
const WAYS: usize = 8;

/// How the clean table stores a value: packed into fewer bytes where the type allows (an
/// account's `Option<Account>` takes 24 bytes, packed 16; a slot of the table then takes
/// 34 bytes instead of 42, and the same memory holds nearly a quarter more accounts).
pub(super) trait CacheValue: Clone {
    /// The stored form; its default fills the empty slots.
    type Packed: Default;
    /// The stored form, or `None` for a value that has none: such a value is not kept
    /// in the clean table (reads of it go to the file).
    fn pack(self) -> Option<Self::Packed>;
    /// The value back.
    fn unpack(p: &Self::Packed) -> Self;
}

/// Contract-state rows are stored as they are.
impl CacheValue for Option<Vec<u8>> {
    type Packed = Self;
    fn pack(self) -> Option<Self> {
        Some(self)
    }
    fn unpack(p: &Self) -> Self {
        p.clone()
    }
}

/// What the clean table keeps of a key: a keyed 128-bit hash of it (see the module doc).
/// Its first half picks the key's sets, its second gives the tag and the victim slot.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Debug)]
struct Fingerprint(u64, u64);

/// SipHash-2-4 with 128-bit output under a key drawn at random when the table is made.
#[derive(Clone, Copy)]
struct Fingerprints {
    k0: u64,
    k1: u64,
}

impl Fingerprints {
    /// Keys from the operating system's randomness (through the standard library's
    /// randomly keyed hasher), different for every table.
    fn random() -> Self {
        let s = std::hash::RandomState::new();
        Fingerprints {
            k0: s.hash_one(0u8),
            k1: s.hash_one(1u8),
        }
    }

    fn of<K: Hash>(&self, k: &K) -> Fingerprint {
        let mut h = SipHasher24::new_with_keys(self.k0, self.k1);
        k.hash(&mut h);
        let x = h.finish128();
        Fingerprint(x.h1, x.h2)
    }
}

/// The clean set: slot `i` holds an entry when `tags[i]` is non-zero (a tag is 16 bits of
/// the fingerprint with the low bit set, so most misses are decided on the tags alone).
/// An empty slot holds default values, so a slot is the bare fingerprint and packed value
/// with no `Option` around them.
struct Clean<P> {
    tags: Vec<u16>,
    slots: Vec<(Fingerprint, P)>,
    len: usize,
}

impl<P: Default> Clean<P> {
    fn new() -> Self {
        Clean {
            tags: Vec::new(),
            slots: Vec::new(),
            len: 0,
        }
    }

    fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The first slots of the two sets of the key with fingerprint `f`, and its tag. Two
    /// choices per key fill the table far more evenly than one (a key goes to the emptier
    /// set).
    fn locate(&self, f: Fingerprint) -> ([usize; 2], u16) {
        let sets = (self.slots.len() / WAYS) as u64;
        let pick = |x: u64| ((u128::from(x) * u128::from(sets)) >> 64) as usize * WAYS;
        let h = f.0;
        (
            [pick(h), pick(h.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15)],
            (f.1 >> 48) as u16 | 1,
        )
    }

    /// The slots of `k`'s two sets (one set when both are the same).
    fn candidates(bases: [usize; 2]) -> impl Iterator<Item = usize> {
        let second = (bases[1] != bases[0]).then_some(bases[1]);
        (bases[0]..bases[0] + WAYS).chain(second.into_iter().flat_map(|b| b..b + WAYS))
    }

    /// The slot holding `f`, given its sets and tag.
    fn find_in(&self, f: Fingerprint, bases: [usize; 2], tag: u16) -> Option<usize> {
        Self::candidates(bases).find(|&i| self.tags[i] == tag && self.slots[i].0 == f)
    }

    fn find(&self, f: Fingerprint) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let (bases, tag) = self.locate(f);
        self.find_in(f, bases, tag)
    }

    fn get(&self, f: Fingerprint) -> Option<&P> {
        self.find(f).map(|i| &self.slots[i].1)
    }

    /// Whether `f` goes in without evicting: one of its sets has a free slot or holds it.
    fn has_slot_for(&self, f: Fingerprint) -> bool {
        if self.slots.is_empty() {
            return false;
        }
        let (bases, tag) = self.locate(f);
        Self::candidates(bases).any(|i| self.tags[i] == 0) || self.find_in(f, bases, tag).is_some()
    }

    /// Puts `f` in one of its sets: over its old value, else in a free slot of the
    /// emptier set, else over the slot the fingerprint picks. Returns whether an entry
    /// was evicted; `keep` leaves a present key's value as it is.
    fn put(&mut self, f: Fingerprint, v: P, keep: bool) -> bool {
        let (bases, tag) = self.locate(f);
        if let Some(i) = self.find_in(f, bases, tag) {
            if !keep {
                self.slots[i].1 = v;
            }
            return false;
        }
        let free_in = |b: usize| self.tags[b..b + WAYS].iter().filter(|t| **t == 0).count();
        let base = if free_in(bases[1]) > free_in(bases[0]) {
            bases[1]
        } else {
            bases[0]
        };
        let (i, evicted) = match (base..base + WAYS).find(|&i| self.tags[i] == 0) {
            Some(i) => {
                self.len += 1;
                (i, false)
            }
            // The victim: bits of the fingerprint the sets and the tag do not use.
            None => {
                let r = f.1 as usize;
                (bases[r & 1] + (r >> 1) % WAYS, true)
            }
        };
        self.tags[i] = tag;
        self.slots[i] = (f, v);
        evicted
    }

    /// Drops `f`'s entry, if held.
    fn remove(&mut self, f: Fingerprint) {
        if let Some(i) = self.find(f) {
            self.tags[i] = 0;
            self.slots[i] = Default::default();
            self.len -= 1;
        }
    }

    /// Rebuilds the table with room for `capacity` entries (rounded up to whole sets),
    /// keeping what fits.
    fn resize(&mut self, capacity: usize) -> u64 {
        let slots = capacity.div_ceil(WAYS).max(1) * WAYS;
        let old_tags = std::mem::replace(&mut self.tags, vec![0; slots]);
        let old_slots = std::mem::take(&mut self.slots);
        self.slots = Vec::with_capacity(slots);
        self.slots.resize_with(slots, Default::default);
        self.len = 0;
        let mut evicted = 0;
        for (tag, (f, v)) in old_tags.into_iter().zip(old_slots) {
            if tag != 0 {
                evicted += u64::from(self.put(f, v, true));
            }
        }
        evicted
    }

    fn clear(&mut self) {
        self.tags.fill(0);
        self.slots.fill_with(Default::default);
        self.len = 0;
    }
}

pub(super) struct WriteBack<K, V: CacheValue> {
    /// Entries written since the last flush.
    dirty: FastMap<K, V>,
    /// Entries that match the file, by fingerprint.
    clean: Clean<V::Packed>,
    /// This table's fingerprint key.
    fingerprints: Fingerprints,
    /// Most entries the clean set holds (`ChainConfig::cache_limit`).
    limit: usize,
    /// Clean entries replaced by others (the set was full).
    evicted: u64,
}

impl<K: Hash + Eq + Ord, V: CacheValue> WriteBack<K, V> {
    /// An empty cache whose clean set holds at most `limit` entries (its table grows to
    /// that size as entries come in, or at once with [`WriteBack::reserve`]).
    pub(super) fn new(limit: usize) -> Self {
        WriteBack {
            dirty: FastMap::default(),
            clean: Clean::new(),
            fingerprints: Fingerprints::random(),
            limit: limit.max(WAYS),
            evicted: 0,
        }
    }

    /// The cached value of `k`, if any.
    pub(super) fn get(&self, k: &K) -> Option<V> {
        match self.dirty.get(k) {
            Some(v) => Some(v.clone()),
            None => self.clean.get(self.fingerprints.of(k)).map(V::unpack),
        }
    }

    /// Sizes the clean table for `n` more entries at once (with an eighth to spare, up to
    /// the limit): one allocation instead of a doubling series.
    pub(super) fn reserve(&mut self, n: usize) {
        let want = ((self.clean.len + n) * 8 / 7).min(self.limit);
        if want > self.clean.capacity() {
            self.evicted += self.clean.resize(want);
        }
    }

    /// Puts a clean entry in its set. Below the limit the table grows rather than evict
    /// (a shard that fits under the limit is cached whole); at the limit a full set gives
    /// up one entry.
    fn place(&mut self, k: &K, v: V::Packed, keep: bool) {
        let f = self.fingerprints.of(k);
        let cap = self.clean.capacity();
        // Grow by doubling up to the limit when seven-eighths full or the key's set is.
        if cap < self.limit && (self.clean.len * 8 >= cap * 7 || !self.clean.has_slot_for(f)) {
            self.evicted += self.clean.resize((cap * 2).max(64).min(self.limit));
        }
        self.evicted += u64::from(self.clean.put(f, v, keep));
    }

    /// Entries held (a key both written and still in the clean set counts once).
    pub(super) fn len(&self) -> usize {
        self.clean.len
            + self
                .dirty
                .keys()
                .filter(|k| self.clean.find(self.fingerprints.of(k)).is_none())
                .count()
    }

    /// Entries written since the last flush.
    pub(super) fn dirty_len(&self) -> usize {
        self.dirty.len()
    }

    /// Clean entries replaced by others so far (their set was full).
    pub(super) fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Caches `v` as read from the file, unless the key is cached already (a cached entry
    /// is at least as new as the file). A full set gives up one of its entries.
    pub(super) fn insert_clean(&mut self, k: K, v: V) {
        if self.dirty.contains_key(&k) {
            return;
        }
        if let Some(p) = v.pack() {
            self.place(&k, p, true);
        }
    }

    /// Writes `v` (dirty until the next [`WriteBack::mark_clean`]).
    pub(super) fn write(&mut self, k: K, v: V) {
        self.dirty.insert(k, v);
    }

    /// The dirty entries, sorted by key.
    pub(super) fn dirty_sorted(&self) -> Vec<(&K, &V)> {
        let mut out: Vec<(&K, &V)> = self.dirty.iter().collect();
        out.sort_unstable_by(|a, b| a.0.cmp(b.0));
        out
    }

    /// After a flush wrote every dirty entry: they move to the clean set (a value with no
    /// packed form leaves it, so no older copy stays behind).
    pub(super) fn mark_clean(&mut self) {
        if self.dirty.is_empty() {
            return;
        }
        // No `reserve` for the dirty count: most written keys are in the clean set
        // already (at 10M accounts all of them), and sizing for them as new grew a table
        // at its working size towards the limit, a second table of about 100 MB per shard
        // allocated while the first was alive. New keys grow the table as they come
        // (`place`).
        // Drained in place, so the map keeps its allocation for the next blocks.
        let mut dirty = std::mem::take(&mut self.dirty);
        for (k, v) in dirty.drain() {
            match v.pack() {
                Some(p) => self.place(&k, p, false),
                None => self.clean.remove(self.fingerprints.of(&k)),
            }
        }
        self.dirty = dirty;
    }

    /// Drops everything.
    pub(super) fn clear(&mut self) {
        self.dirty.clear();
        self.clean.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl CacheValue for &'static str {
        type Packed = Self;
        fn pack(self) -> Option<Self> {
            Some(self)
        }
        fn unpack(p: &Self) -> Self {
            p
        }
    }

    /// `u32::MAX` has no packed form (as an account of `u64::MAX` sats and nonce).
    impl CacheValue for u32 {
        type Packed = u32;
        fn pack(self) -> Option<u32> {
            (self != u32::MAX).then_some(self)
        }
        fn unpack(p: &u32) -> u32 {
            *p
        }
    }

    #[test]
    fn a_value_with_no_packed_form_is_never_served_from_an_older_copy() {
        let mut w: WriteBack<u32, u32> = WriteBack::new(64);
        w.insert_clean(1, 10);
        w.insert_clean(2, u32::MAX);
        assert_eq!(w.get(&2), None, "not cached clean: reads go to the file");
        w.write(1, u32::MAX);
        assert_eq!(
            w.get(&1),
            Some(u32::MAX),
            "dirty values are kept as they are"
        );
        w.mark_clean();
        assert_eq!(w.get(&1), None, "the old clean 10 must not come back");
        assert_eq!(w.len(), 0);
        w.insert_clean(1, 11);
        assert_eq!(w.get(&1), Some(11));
    }

    #[test]
    fn fingerprints_are_keyed_per_table_and_tell_keys_apart() {
        let (a, b) = (Fingerprints::random(), Fingerprints::random());
        let key = |i: u64| {
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&i.to_le_bytes());
            k
        };
        assert_ne!(a.of(&key(7)), b.of(&key(7)), "each table draws its own key");
        assert_eq!(a.of(&key(7)), a.of(&key(7)));
        // Keys one bit apart, as a grinder would start: no two share a fingerprint, nor
        // a half of one.
        let mut whole = std::collections::HashSet::new();
        let mut halves = std::collections::HashSet::new();
        for i in 0..100_000 {
            let f = a.of(&key(i));
            assert!(whole.insert(f), "fingerprint of key {i} repeated");
            assert!(
                halves.insert(f.0) && halves.insert(f.1),
                "half repeated at {i}"
            );
        }
    }

    #[test]
    fn dirty_tracking_follows_writes_and_flushes() {
        let mut w: WriteBack<u32, &str> = WriteBack::new(50);
        w.insert_clean(5, "file");
        w.insert_clean(5, "older file read");
        assert_eq!(w.get(&5), Some("file"));
        assert_eq!(w.dirty_len(), 0);
        w.write(9, "a");
        w.write(3, "b");
        w.write(9, "c");
        assert_eq!(w.dirty_len(), 2);
        assert_eq!(w.dirty_sorted(), vec![(&3, &"b"), (&9, &"c")]);
        // A clean read never overwrites a dirty value.
        w.insert_clean(9, "stale");
        assert_eq!(w.get(&9), Some("c"));
        // A written key shadows its clean copy, and replaces it at the flush.
        w.write(5, "d");
        assert_eq!(w.get(&5), Some("d"));
        assert_eq!(w.len(), 3);
        w.mark_clean();
        assert_eq!(w.dirty_len(), 0);
        assert!(w.dirty_sorted().is_empty());
        assert_eq!(w.get(&5), Some("d"));
        assert_eq!(w.get(&9), Some("c"));
        assert_eq!(w.len(), 3);
        w.clear();
        assert_eq!(w.len(), 0);
        assert_eq!(w.get(&5), None);
    }

    #[test]
    fn the_clean_set_stays_within_its_limit_and_keeps_every_written_entry() {
        let limit = 1_000;
        let mut w: WriteBack<u32, u32> = WriteBack::new(limit);
        w.reserve(limit);
        let slots = w.clean.capacity();
        assert!(slots >= limit && slots < limit + WAYS, "{slots}");
        // Far more keys read than fit: the table holds still, entries are replaced.
        for k in 0..10 * limit as u32 {
            w.insert_clean(k, k);
            assert_eq!(w.get(&k), Some(k), "a key just read is cached");
        }
        assert_eq!(w.clean.capacity(), slots, "the table grew");
        assert!(w.clean.len <= slots);
        assert!(w.evicted() >= 9 * limit as u64 - WAYS as u64);
        // Written keys are never dropped, however many are read meanwhile.
        for k in 0..limit as u32 {
            w.write(100_000 + k, k);
        }
        for k in 0..10 * limit as u32 {
            w.insert_clean(200_000 + k, k);
        }
        for k in 0..limit as u32 {
            assert_eq!(w.get(&(100_000 + k)), Some(k));
        }
        // After the flush they are clean, and the table is still its size.
        w.mark_clean();
        assert_eq!(w.clean.capacity(), slots);
        assert!(w.len() <= slots);
        let kept = (0..limit as u32)
            .filter(|&k| w.get(&(100_000 + k)) == Some(k))
            .count();
        // How many stay depends on the table's randomly seeded hash (they can displace
        // each other): 504–690 of 1,000 in 40 runs, 432 once in CI. A quarter is far
        // below that and far above what dropping them at the flush would leave (0).
        assert!(
            kept > limit / 4,
            "the flushed entries displace older ones: {kept}"
        );
    }

    #[test]
    fn a_table_grows_to_its_limit_as_entries_come_in() {
        let mut w: WriteBack<u32, u32> = WriteBack::new(10_000);
        assert_eq!(w.clean.capacity(), 0);
        for k in 0..5_000 {
            w.insert_clean(k, k);
        }
        assert!(w.clean.capacity() >= 5_000 && w.clean.capacity() <= 10_000 + WAYS);
        // Below the limit nothing is evicted: a full set makes the table grow.
        assert_eq!(w.evicted(), 0);
        assert!((0..5_000).all(|k| w.get(&k) == Some(k)));
    }
}
