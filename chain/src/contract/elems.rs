//! Element rows of stored arrays (see [`crate::lang::layout`]): their keys in the shard
//! stores, and the global lane's in-memory copy of `@global` arrays.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::hash::tagged_hash;
use crate::store::StateKey;

/// The scope tag byte of element keys (no scope uses it).
pub const ELEM_TAG: u8 = 0xE0;

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

/// The element rows of one contract's `@global` stored arrays: `(variable, index) ->
/// encoding`. Copies share pages, so the snapshot the shards read and the global lane's
/// working copy cost a pointer each, and a write copies at most one page and the page
/// directory (once per block, while shared).
#[derive(Clone, Debug, Default)]
pub struct GlobalElems {
    pages: Arc<BTreeMap<(u16, u32), Arc<Page>>>,
}

impl GlobalElems {
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

    /// Every element, in (variable, index) order.
    pub fn iter(&self) -> impl Iterator<Item = (u16, u32, &[u8])> {
        self.pages
            .iter()
            .flat_map(|((var, _), p)| p.iter().map(move |(i, b)| (*var, *i, &b[..])))
    }

    /// How many elements have rows.
    pub fn len(&self) -> usize {
        self.pages.values().map(|p| p.len()).sum()
    }

    /// Whether no element has a row.
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
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
