//! Content rows of stored containers (see [`crate::lang::layout`]): their keys in the shard
//! stores, and the global lane's in-memory copy of `@global` arrays and maps.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::hash::tagged_hash;
use crate::lang::layout::ElemKey;
use crate::store::StateKey;

/// The scope tag byte of element and key-slot keys (no scope uses it).
pub const ELEM_TAG: u8 = 0xE0;
/// The scope tag byte of map entry keys.
pub const ENTRY_TAG: u8 = 0xE1;

/// The shard store key of content row `key` of container `var` in the row `row`.
pub fn content_key(row: &StateKey, var: u16, key: &ElemKey) -> StateKey {
    match key {
        ElemKey::Index(i) => elem_key(row, var, *i),
        ElemKey::Key(k) => entry_key(row, var, k),
    }
}

/// The key of the entry with key encoding `k` of map `var` in the row `row`: contract (32
/// bytes), [`ENTRY_TAG`], `tagged_hash("rexe/entry", row || var BE || k)`.
pub fn entry_key(row: &StateKey, var: u16, k: &[u8]) -> StateKey {
    let b = row.as_bytes();
    let mut m = Vec::with_capacity(b.len() + 2 + k.len());
    m.extend_from_slice(b);
    m.extend_from_slice(&var.to_be_bytes());
    m.extend_from_slice(k);
    let mut out = [0u8; 65];
    out[..32].copy_from_slice(&b[..32]);
    out[32] = ENTRY_TAG;
    out[33..].copy_from_slice(&tagged_hash("rexe/entry", &m).0);
    StateKey::from_slice(&out).expect("within the maximum")
}

/// The name of a map entry on the global lane: `tagged_hash("rexe/entry", k)`.
pub fn entry_id(k: &[u8]) -> [u8; 32] {
    tagged_hash("rexe/entry", k).0
}

/// The key of element `index` of the stored array `var` in the row `row` (a shard store
/// key): contract (32 bytes), [`ELEM_TAG`], the first 20 bytes of
/// `tagged_hash("rexe/elem", row || var BE)` and the index, big-endian, so one array's
/// elements are contiguous and in order.
pub fn elem_key(row: &StateKey, var: u16, index: u32) -> StateKey {
    let mut k = [0u8; 57];
    k[..32].copy_from_slice(&row.as_bytes()[..32]);
    k[32] = ELEM_TAG;
    k[33..53].copy_from_slice(&array_id(row, var)[..20]);
    k[53..].copy_from_slice(&index.to_be_bytes());
    StateKey::from_slice(&k).expect("within the maximum")
}

fn array_id(row: &StateKey, var: u16) -> [u8; 32] {
    let b = row.as_bytes();
    let mut m = Vec::with_capacity(b.len() + 2);
    m.extend_from_slice(b);
    m.extend_from_slice(&var.to_be_bytes());
    tagged_hash("rexe/elem", &m).0
}

/// Elements per page of [`GlobalElems`].
const PAGE: u32 = 256;

/// A content row of a global container as the global lane names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ContentId {
    /// An array element or map key slot.
    Index(u32),
    /// A map entry, by its id ([`entry_id`]).
    Entry([u8; 32]),
}

impl ContentId {
    /// The id of content row `key`.
    pub fn of(key: &ElemKey) -> Self {
        match key {
            ElemKey::Index(i) => ContentId::Index(*i),
            ElemKey::Key(k) => ContentId::Entry(entry_id(k)),
        }
    }
}

/// Rows in pages shared between copies: a directory of pages keyed by `P`, each a map from
/// `K` to the row's bytes. A write copies its page and the directory only while shared.
#[derive(Debug)]
struct Paged<P, K> {
    dir: Arc<BTreeMap<P, Arc<Page<K>>>>,
}

/// One page of [`Paged`] rows.
type Page<K> = BTreeMap<K, Arc<[u8]>>;

impl<P, K> Clone for Paged<P, K> {
    fn clone(&self) -> Self {
        Paged {
            dir: self.dir.clone(),
        }
    }
}

impl<P, K> Default for Paged<P, K> {
    fn default() -> Self {
        Paged {
            dir: Arc::default(),
        }
    }
}

impl<P: Ord + Clone, K: Ord + Clone> Paged<P, K> {
    fn get(&self, page: &P, key: &K) -> Option<&[u8]> {
        self.dir.get(page)?.get(key).map(|b| &b[..])
    }

    fn set(&mut self, page: P, key: K, value: Option<&[u8]>) {
        let dir = Arc::make_mut(&mut self.dir);
        match value {
            Some(v) => {
                Arc::make_mut(dir.entry(page).or_default()).insert(key, v.into());
            }
            None => {
                if let Some(p) = dir.get_mut(&page) {
                    let p = Arc::make_mut(p);
                    p.remove(&key);
                    if p.is_empty() {
                        dir.remove(&page);
                    }
                }
            }
        }
    }

    fn iter(&self) -> impl Iterator<Item = (&P, &K, &[u8])> {
        self.dir
            .iter()
            .flat_map(|(page, p)| p.iter().map(move |(k, b)| (page, k, &b[..])))
    }

    fn len(&self) -> usize {
        self.dir.values().map(|p| p.len()).sum()
    }
}

/// The content rows of one contract's `@global` stored containers: array elements and map
/// key slots by `(variable, index)`, map entries by `(variable, entry id)` (see
/// [`entry_id`]). Copies share pages, so the snapshot the shards read and the global lane's
/// working copy cost a pointer each, and a write copies at most one page and the page
/// directory (once per block, while shared).
#[derive(Clone, Debug, Default)]
pub struct GlobalElems {
    /// Elements and key slots, paged by `index / PAGE`.
    slots: Paged<(u16, u32), u32>,
    /// Map entries, paged by the first two bytes of their id.
    entries: Paged<(u16, u16), [u8; 32]>,
}

impl GlobalElems {
    /// Content row `key` of container `var`.
    pub fn content(&self, var: u16, key: &ElemKey) -> Option<&[u8]> {
        self.get(var, &ContentId::of(key))
    }

    /// Content row `id` of container `var` (`None`: no row).
    pub fn get(&self, var: u16, id: &ContentId) -> Option<&[u8]> {
        match id {
            ContentId::Index(i) => self.slots.get(&(var, i / PAGE), i),
            ContentId::Entry(h) => self.entries.get(&(var, entry_page(h)), h),
        }
    }

    /// Sets (`Some`) or deletes (`None`) content row `id` of container `var`.
    pub fn set(&mut self, var: u16, id: &ContentId, value: Option<&[u8]>) {
        match id {
            ContentId::Index(i) => self.slots.set((var, i / PAGE), *i, value),
            ContentId::Entry(h) => self.entries.set((var, entry_page(h)), *h, value),
        }
    }

    /// Every content row: elements and key slots in (variable, index) order, then map
    /// entries in (variable, id) order.
    pub fn iter(&self) -> impl Iterator<Item = (u16, ContentId, &[u8])> {
        let slots = self
            .slots
            .iter()
            .map(|((var, _), i, b)| (*var, ContentId::Index(*i), b));
        let entries = self
            .entries
            .iter()
            .map(|((var, _), h, b)| (*var, ContentId::Entry(*h), b));
        slots.chain(entries)
    }

    /// A reader of the content rows, as [`crate::lang::layout::full_values`] and
    /// [`crate::lang::layout::split_values`] take it.
    pub fn reader(&self) -> impl FnMut(u16, &ElemKey) -> Result<Option<Vec<u8>>, String> + '_ {
        |var, key| Ok(self.content(var, key).map(<[u8]>::to_vec))
    }

    /// How many content rows there are.
    pub fn len(&self) -> usize {
        self.slots.len() + self.entries.len()
    }

    /// Whether there is no content row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn entry_page(id: &[u8; 32]) -> u16 {
    u16::from_be_bytes([id[0], id[1]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_share_pages_and_diverge_on_write() {
        let ix = ContentId::Index;
        let mut a = GlobalElems::default();
        for i in 0..1000u32 {
            a.set(1, &ix(i), Some(&i.to_le_bytes()));
        }
        let b = a.clone();
        a.set(1, &ix(5), Some(b"x"));
        a.set(1, &ix(999), None);
        assert_eq!(a.get(1, &ix(5)), Some(&b"x"[..]));
        assert_eq!(b.get(1, &ix(5)), Some(&5u32.to_le_bytes()[..]));
        assert_eq!(a.get(1, &ix(999)), None);
        assert_eq!(b.get(1, &ix(999)), Some(&999u32.to_le_bytes()[..]));
        assert_eq!((a.len(), b.len()), (999, 1000));
        assert_eq!(a.get(0, &ix(5)), None);
        let order: Vec<ContentId> = b.iter().map(|(_, id, _)| id).collect();
        assert_eq!(order, (0..1000).map(ix).collect::<Vec<_>>());
        // Map entries by key: found through the key's encoding, listed after the slots.
        let k = ElemKey::Key(b"key".to_vec());
        a.set(2, &ContentId::of(&k), Some(b"v"));
        assert_eq!(a.content(2, &k), Some(&b"v"[..]));
        assert_eq!(b.content(2, &k), None);
        assert_eq!(
            a.iter().last().map(|(v, id, _)| (v, id)),
            Some((2, ContentId::of(&k)))
        );
    }

    #[test]
    fn element_keys_are_distinct_per_row_and_variable_and_ordered_by_index() {
        let row = StateKey::from_slice(&[7; 65]).unwrap();
        let other = StateKey::from_slice(&[7; 66]).unwrap();
        assert_ne!(elem_key(&row, 0, 1), elem_key(&other, 0, 1));
        assert_ne!(elem_key(&row, 0, 1), elem_key(&row, 1, 1));
        assert!(elem_key(&row, 0, 1) < elem_key(&row, 0, 256));
        assert_eq!(elem_key(&row, 0, 1).as_bytes()[..32], [7; 32]);
        assert_eq!(elem_key(&row, 0, 1).as_bytes()[32], ELEM_TAG);
    }
}
