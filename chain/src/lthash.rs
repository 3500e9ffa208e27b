//! The per-shard state commitment: LtHash16 (Bellare–Micciancio lattice hash as deployed by
//! Facebook, "Securing Update Propagation with Homomorphic Hashing", 2019) over BLAKE3.
//!
//! The commitment of a set of key/value leaves is the lane-wise sum mod 2^16 of
//! `BLAKE3-XOF(leaf)` read as 1024 u16 lanes. Adding or removing a leaf is one XOF and one
//! vector add, so a block updates the commitment in O(changed keys), and any replica that
//! applies the same changes gets the same 32-byte digest regardless of order.

use crate::hash::Hash256;

/// Lanes in the lattice vector.
pub const LANES: usize = 1024;
/// Bytes of the serialized vector.
pub const BYTES: usize = LANES * 2;

const CONTEXT: &str = "rexe 2026 lthash16 state leaf";

/// An LtHash16 accumulator.
#[derive(Clone, PartialEq, Eq)]
pub struct LtHash {
    lanes: Box<[u16; LANES]>,
}

impl Default for LtHash {
    fn default() -> Self {
        LtHash {
            lanes: Box::new([0; LANES]),
        }
    }
}

impl core::fmt::Debug for LtHash {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "LtHash({})", self.digest())
    }
}

mod xof;

fn expand(parts: &[&[u8]], bytes: &mut [u8; BYTES]) {
    // The context key is derived once, not at every leaf.
    static KEY: std::sync::OnceLock<[u32; 8]> = std::sync::OnceLock::new();
    let key = KEY.get_or_init(|| xof::context_key(CONTEXT));
    // One-chunk leaves (all accounts, most contract rows) eight output blocks at a time.
    if xof::derive_key_xof(key, parts, bytes) {
        return;
    }
    static BASE: std::sync::OnceLock<blake3::Hasher> = std::sync::OnceLock::new();
    let mut h = BASE
        .get_or_init(|| blake3::Hasher::new_derive_key(CONTEXT))
        .clone();
    for p in parts {
        h.update(p);
    }
    h.finalize_xof().fill(bytes);
}

impl LtHash {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or subtracts) the XOF of the concatenation of `parts`, lane by lane in
    /// place: no 2 KiB vector is built and copied per leaf.
    fn accumulate(&mut self, parts: &[&[u8]], add: bool) {
        let mut bytes = [0u8; BYTES];
        expand(parts, &mut bytes);
        let lanes = self.lanes.iter_mut().zip(bytes.chunks_exact(2));
        if add {
            for (l, c) in lanes {
                *l = l.wrapping_add(u16::from_le_bytes([c[0], c[1]]));
            }
        } else {
            for (l, c) in lanes {
                *l = l.wrapping_sub(u16::from_le_bytes([c[0], c[1]]));
            }
        }
    }

    /// Adds a leaf.
    pub fn insert(&mut self, leaf: &[u8]) {
        self.accumulate(&[leaf], true);
    }

    /// Adds the leaf that is the concatenation of `parts`.
    pub fn insert_parts(&mut self, parts: &[&[u8]]) {
        self.accumulate(parts, true);
    }

    /// Removes the leaf that is the concatenation of `parts`.
    pub fn remove_parts(&mut self, parts: &[&[u8]]) {
        self.accumulate(parts, false);
    }

    /// Removes a leaf previously added.
    pub fn remove(&mut self, leaf: &[u8]) {
        self.accumulate(&[leaf], false);
    }

    /// Adds another accumulator (set union of disjoint sets).
    pub fn combine(&mut self, other: &LtHash) {
        for (l, x) in self.lanes.iter_mut().zip(other.lanes.iter()) {
            *l = l.wrapping_add(*x);
        }
    }

    /// The 32-byte commitment: BLAKE3 of the lanes.
    pub fn digest(&self) -> Hash256 {
        Hash256(*blake3::hash(&self.to_bytes()).as_bytes())
    }

    /// Lanes as little-endian bytes (for persistence).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.lanes.iter().flat_map(|l| l.to_le_bytes()).collect()
    }

    /// From [`LtHash::to_bytes`] output; `None` when the length is wrong.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != BYTES {
            return None;
        }
        let mut lanes = Box::new([0u16; LANES]);
        for (l, c) in lanes.iter_mut().zip(b.chunks_exact(2)) {
            *l = u16::from_le_bytes([c[0], c[1]]);
        }
        Some(LtHash { lanes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The module doc's definition, written out directly.
    #[test]
    fn matches_the_definition() {
        // The last leaf is longer than one BLAKE3 chunk (the crate's path).
        let leaves: [&[u8]; 4] = [b"x", b"yy", &[7u8; 300], &[9u8; 1500]];
        let mut want = [0u16; LANES];
        for leaf in leaves {
            let mut out = [0u8; BYTES];
            blake3::Hasher::new_derive_key(CONTEXT)
                .update(leaf)
                .finalize_xof()
                .fill(&mut out);
            for (w, c) in want.iter_mut().zip(out.chunks_exact(2)) {
                *w = w.wrapping_add(u16::from_le_bytes([c[0], c[1]]));
            }
        }
        let mut got = LtHash::new();
        for leaf in leaves {
            got.insert(leaf);
        }
        assert_eq!(*got.lanes, want);
        got.remove(b"x");
        got.insert_parts(&[b"", b"x"]);
        assert_eq!(*got.lanes, want);
    }

    #[test]
    fn order_independent_and_removable() {
        let mut a = LtHash::new();
        a.insert(b"x");
        a.insert(b"y");
        let mut b = LtHash::new();
        b.insert(b"y");
        b.insert(b"x");
        assert_eq!(a.digest(), b.digest());
        b.remove(b"x");
        let mut c = LtHash::new();
        c.insert(b"y");
        assert_eq!(b, c);
        assert_ne!(a.digest(), c.digest());
        assert_eq!(LtHash::from_bytes(&a.to_bytes()).unwrap(), a);
        let mut d = LtHash::new();
        d.insert_parts(&[b"y"]);
        d.insert_parts(&[b"", b"x", b""]);
        assert_eq!(d, a, "a leaf in parts is the same leaf");
        d.remove_parts(&[b"x"]);
        assert_eq!(d, c);
    }
}
