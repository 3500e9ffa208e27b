//! 32-byte hashes: SHA-256d for block hashes (what a Bitcoin coinbase commits to) and
//! BIP340-style tagged SHA-256 for everything else, plus the binary Merkle root.

use core::fmt;
use std::str::FromStr;

use bitcoin::hashes::{sha256, sha256d, Hash as _, HashEngine as _};
use bitcoin::hex::{DisplayHex, FromHex};
use serde::{Deserialize, Serialize};

/// A 32-byte hash in internal byte order.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hash256(pub [u8; 32]);

impl Hash256 {
    /// All zeros (the `prev` of the genesis block).
    pub const ZERO: Hash256 = Hash256([0; 32]);

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl Serialize for Hash256 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Debug for Hash256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.to_lower_hex_string())
    }
}

impl fmt::Display for Hash256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.to_lower_hex_string())
    }
}

/// SHA-256d of `data`.
pub fn sha256d(data: &[u8]) -> Hash256 {
    Hash256(sha256d::Hash::hash(data).to_byte_array())
}

/// BIP340 tagged hash: `SHA256(SHA256(tag) || SHA256(tag) || data)`.
///
/// The 64-byte tag prefix is exactly one SHA-256 block, so its midstate is computed once
/// per thread and tag and cloned for every hash.
pub fn tagged_hash(tag: &'static str, data: &[u8]) -> Hash256 {
    thread_local! {
        static MIDSTATES: std::cell::RefCell<Vec<(&'static str, sha256::HashEngine)>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }
    let mut e = MIDSTATES.with(|m| {
        let mut m = m.borrow_mut();
        if let Some((_, e)) = m.iter().find(|(t, _)| *t == tag) {
            return e.clone();
        }
        let t = sha256::Hash::hash(tag.as_bytes());
        let mut e = sha256::Hash::engine();
        e.input(t.as_ref());
        e.input(t.as_ref());
        m.push((tag, e.clone()));
        e
    });
    e.input(data);
    Hash256(sha256::Hash::from_engine(e).to_byte_array())
}

/// Merkle root over `leaves` (tagged `rexe/merkle`): an odd node is paired with an empty
/// hash, never duplicated, so the CVE-2012-2459 ambiguity cannot arise. Empty list: zero hash.
pub fn merkle_root(leaves: &[Hash256]) -> Hash256 {
    if leaves.is_empty() {
        return Hash256::ZERO;
    }
    let mut level: Vec<Hash256> = leaves.to_vec();
    while level.len() > 1 {
        level = merkle_level(&level);
    }
    level[0]
}

/// Parent of `left` and `right` in [`merkle_root`]'s tree (an odd node's right is zero).
fn merkle_parent(left: &Hash256, right: &Hash256) -> Hash256 {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(&left.0);
    buf[32..].copy_from_slice(&right.0);
    tagged_hash("rexe/merkle", &buf)
}

/// The level above `level` in [`merkle_root`]'s tree.
fn merkle_level(level: &[Hash256]) -> Vec<Hash256> {
    level
        .chunks(2)
        .map(|pair| merkle_parent(&pair[0], pair.get(1).unwrap_or(&Hash256::ZERO)))
        .collect()
}

/// Levels above the leaves in [`merkle_root`]'s tree of `count` leaves: the length of
/// every branch in it.
pub fn merkle_depth(count: usize) -> usize {
    let mut len = count;
    let mut depth = 0;
    while len > 1 {
        len = len.div_ceil(2);
        depth += 1;
    }
    depth
}

/// The branch of leaf `pos` in [`merkle_root`]'s tree over `leaves`: its sibling at each
/// level from the bottom (the zero hash where an odd node has none). Empty when `pos` is not
/// a leaf's index.
pub fn merkle_branch(leaves: &[Hash256], mut pos: usize) -> Vec<Hash256> {
    if pos >= leaves.len() {
        return Vec::new();
    }
    let mut level: Vec<Hash256> = leaves.to_vec();
    let mut branch = Vec::with_capacity(merkle_depth(leaves.len()));
    while level.len() > 1 {
        branch.push(level.get(pos ^ 1).copied().unwrap_or(Hash256::ZERO));
        level = merkle_level(&level);
        pos >>= 1;
    }
    branch
}

/// The root of a [`merkle_root`] tree of `count` leaves in which `leaf` is at `pos`, by
/// `branch`; `None` when `pos` is out of range, the branch's length is not the tree's depth,
/// or a sibling that must be empty (an odd node's) is not.
pub fn merkle_root_from_branch(
    leaf: Hash256,
    mut pos: usize,
    count: usize,
    branch: &[Hash256],
) -> Option<Hash256> {
    if pos >= count || branch.len() != merkle_depth(count) {
        return None;
    }
    let mut node = leaf;
    let mut len = count;
    for sibling in branch {
        if pos & 1 == 0 {
            if pos + 1 == len && *sibling != Hash256::ZERO {
                return None;
            }
            node = merkle_parent(&node, sibling);
        } else {
            node = merkle_parent(sibling, &node);
        }
        pos >>= 1;
        len = len.div_ceil(2);
    }
    Some(node)
}

macro_rules! hash_newtype {
    ($name:ident, $doc:literal, reversed = $rev:literal) => {
        #[doc = $doc]
        #[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub Hash256);

        impl $name {
            /// The hash in internal byte order.
            pub fn to_byte_array(self) -> [u8; 32] {
                self.0 .0
            }
            /// From bytes in internal order.
            pub fn from_byte_array(b: [u8; 32]) -> Self {
                $name(Hash256(b))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut b = self.0 .0;
                if $rev {
                    b.reverse();
                }
                write!(f, "{}", b.to_lower_hex_string())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self)
            }
        }

        impl FromStr for $name {
            type Err = bitcoin::hex::HexToArrayError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let mut b = <[u8; 32]>::from_hex(s)?;
                if $rev {
                    b.reverse();
                }
                Ok($name(Hash256(b)))
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

hash_newtype!(
    BlockHash,
    "An L2 block hash: SHA-256d of the header encoding, shown byte-reversed like Bitcoin's.",
    reversed = true
);
hash_newtype!(
    Txid,
    "A transaction id: tagged hash `rexe/tx` of the unsigned transaction encoding.",
    reversed = false
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_hash_displays_reversed_and_parses_back() {
        let mut b = [0u8; 32];
        b[0] = 1;
        let h = BlockHash::from_byte_array(b);
        let s = h.to_string();
        assert!(s.ends_with("01"));
        assert_eq!(s.parse::<BlockHash>().unwrap(), h);
    }

    #[test]
    fn merkle_root_distinguishes_odd_duplication() {
        let a = tagged_hash("t", b"a");
        let b = tagged_hash("t", b"b");
        let c = tagged_hash("t", b"c");
        // Bitcoin's tree would give [a,b,c] and [a,b,c,c] the same root; ours does not.
        assert_ne!(merkle_root(&[a, b, c]), merkle_root(&[a, b, c, c]));
        assert_eq!(merkle_root(&[a]), merkle_root(&[a]));
        assert_ne!(merkle_root(&[a, b]), merkle_root(&[b, a]));
    }

    #[test]
    fn merkle_branches_prove_every_leaf_and_nothing_else() {
        for count in 1..=19usize {
            let leaves: Vec<Hash256> = (0..count)
                .map(|i| tagged_hash("t", &(i as u64).to_le_bytes()))
                .collect();
            let root = merkle_root(&leaves);
            for pos in 0..count {
                let branch = merkle_branch(&leaves, pos);
                assert_eq!(branch.len(), merkle_depth(count));
                assert_eq!(
                    merkle_root_from_branch(leaves[pos], pos, count, &branch),
                    Some(root),
                    "count {count} pos {pos}"
                );
                // Another position, count, leaf or sibling gives another root, or none.
                let other = (pos + 1) % count;
                if other != pos {
                    assert_ne!(
                        merkle_root_from_branch(leaves[pos], other, count, &branch),
                        Some(root)
                    );
                }
                // A count of another depth takes no branch of this one.
                let deeper = (count + 1..).find(|c| merkle_depth(*c) != merkle_depth(count));
                assert_eq!(
                    merkle_root_from_branch(leaves[pos], pos, deeper.unwrap(), &branch),
                    None
                );
                assert_ne!(
                    merkle_root_from_branch(Hash256([9; 32]), pos, count, &branch),
                    Some(root)
                );
                if let Some(first) = branch.first() {
                    let mut bad = branch.clone();
                    bad[0] = Hash256([first.0[0] ^ 1; 32]);
                    assert_ne!(
                        merkle_root_from_branch(leaves[pos], pos, count, &bad),
                        Some(root)
                    );
                }
            }
            assert!(merkle_branch(&leaves, count).is_empty());
            assert_eq!(merkle_root_from_branch(leaves[0], count, count, &[]), None);
        }
    }
}
