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

type Page = BTreeMap<u32, Arc<[u8]>>;

type EntryPage = BTreeMap<[u8; 32], Arc<[u8]>>;

/// The content rows of one contract's `@global` stored containers: array elements and map
/// key slots by `(variable, index)`, map entries by `(variable, entry id)` (see
/// [`entry_id`]). Copies share pages, so the snapshot the shards read and the global lane's
/// working copy cost a pointer each, and a write copies at most one page and the page
/// directory (once per block, while shared).
#[derive(Clone, Debug, Default)]
pub struct GlobalElems {
    pages: Arc<BTreeMap<(u16, u32), Arc<Page>>>,
    /// Map entries, paged by the first two bytes of their id.
    entries: Arc<BTreeMap<(u16, u16), Arc<EntryPage>>>,
}

impl GlobalElems {
    /// Content row `key` of container `var`.
    pub fn content(&self, var: u16, key: &ElemKey) -> Option<&[u8]> {
        match key {
            ElemKey::Index(i) => self.get(var, *i),
            ElemKey::Key(k) => self.entry(var, &entry_id(k)),
        }
    }

    /// The map entry `id` of map `var`.
    pub fn entry(&self, var: u16, id: &[u8; 32]) -> Option<&[u8]> {
        let page = u16::from_be_bytes([id[0], id[1]]);
        self.entries.get(&(var, page))?.get(id).map(|b| &b[..])
    }

    /// Sets (`Some`) or deletes (`None`) a map entry by its id.
    pub fn set_entry(&mut self, var: u16, id: [u8; 32], value: Option<&[u8]>) {
        let pages = Arc::make_mut(&mut self.entries);
        let key = (var, u16::from_be_bytes([id[0], id[1]]));
        match value {
            Some(v) => {
                Arc::make_mut(pages.entry(key).or_default()).insert(id, v.into());
            }
            None => {
                if let Some(p) = pages.get_mut(&key) {
                    let p = Arc::make_mut(p);
                    p.remove(&id);
                    if p.is_empty() {
                        pages.remove(&key);
                    }
                }
            }
        }
    }

    /// Every map entry, in (variable, id) order.
    pub fn entries(&self) -> impl Iterator<Item = (u16, &[u8; 32], &[u8])> {
        self.entries
            .iter()
            .flat_map(|((var, _), p)| p.iter().map(move |(id, b)| (*var, id, &b[..])))
    }

    /// Element `index` of array `var` (`None`: the default value).
    pub fn get(&self, var: u16, index: u32) -> Option<&[u8]> {
        self.pages
            .get(&(var, index / PAGE))?
            .get(&index)
            .map(|b| &b[..])
    }

    /// Sets (`Some`) or deletes (`None`) an element.
    pub fn set(&mut self, var: u16, index: u32, value: Option<&[u8]>) {
        let pages = Arc::make_mut(&mut self.pages);
        let key = (var, index / PAGE);
        match value {
            Some(v) => {
                Arc::make_mut(pages.entry(key).or_default()).insert(index, v.into());
            }
            None => {
                if let Some(p) = pages.get_mut(&key) {
                    let p = Arc::make_mut(p);
                    p.remove(&index);
                    if p.is_empty() {
                        pages.remove(&key);
                    }
                }
            }
        }
    }

    /// Every element and key slot, in (variable, index) order.
    pub fn iter(&self) -> impl Iterator<Item = (u16, u32, &[u8])> {
        self.pages
            .iter()
            .flat_map(|((var, _), p)| p.iter().map(move |(i, b)| (*var, *i, &b[..])))
    }

    /// How many content rows there are.
    pub fn len(&self) -> usize {
        self.pages.values().map(|p| p.len()).sum::<usize>()
            + self.entries.values().map(|p| p.len()).sum::<usize>()
    }

    /// Whether there is no content row.
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty() && self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_share_pages_and_diverge_on_write() {
        let mut a = GlobalElems::default();
        for i in 0..1000u32 {
            a.set(1, i, Some(&i.to_le_bytes()));
        }
        let b = a.clone();
        a.set(1, 5, Some(b"x"));
        a.set(1, 999, None);
        assert_eq!(a.get(1, 5), Some(&b"x"[..]));
        assert_eq!(b.get(1, 5), Some(&5u32.to_le_bytes()[..]));
        assert_eq!(a.get(1, 999), None);
        assert_eq!(b.get(1, 999), Some(&999u32.to_le_bytes()[..]));
        assert_eq!((a.len(), b.len()), (999, 1000));
        assert_eq!(a.get(0, 5), None);
        let order: Vec<u32> = b.iter().map(|(_, i, _)| i).collect();
        assert_eq!(order, (0..1000).collect::<Vec<_>>());
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
