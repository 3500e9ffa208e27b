//! Bitcoin's transaction Merkle tree, as Bitcoin Core computes it (`ComputeMerkleRoot` in
//! `consensus/merkle.cpp`): nodes are 32-byte hashes in internal byte order, a parent is
//! SHA-256d of `left || right`, and a level of odd length pairs its last node with itself.
//! A branch lists the sibling of each level from the leaf up, as Electrum's
//! `blockchain.transaction.get_merkle` and Stratum's `mining.notify` send it, and a leaf's
//! index says, bit by bit from the bottom, whether it is the right (1) or left (0) node.
//!
//! The one implementation behind the miner's coinbase branches and AuxPoW checks (Namecoin's
//! `CheckMerkleBranch`), the peg's SPV proofs, the regtest node's Electrum server and the
//! benchmarks. It depends on `bitcoin` alone, so every crate can use it without a cycle.

use bitcoin::hashes::{sha256d, Hash, HashEngine};

/// A node of the tree: a 32-byte hash in internal byte order.
pub type Node = [u8; 32];

/// SHA-256d of `left || right`: the parent of two nodes.
pub fn hash_pair(left: &Node, right: &Node) -> Node {
    let mut e = sha256d::Hash::engine();
    e.input(left);
    e.input(right);
    sha256d::Hash::from_engine(e).to_byte_array()
}

/// The level above `level` (whose length is even, odd levels padded by the caller).
fn parents(level: &[Node]) -> Vec<Node> {
    level.chunks(2).map(|p| hash_pair(&p[0], &p[1])).collect()
}

/// The branch of leaf `pos` among `leaves` and the root (all zeros for no leaves), computed
/// level by level without keeping the tree. `pos` must be a leaf's index: past the leaves
/// the branch means nothing, or the call panics.
pub fn branch_and_root(leaves: Vec<Node>, mut pos: usize) -> (Vec<Node>, Node) {
    let mut level = leaves;
    let mut branch = Vec::new();
    while level.len() > 1 {
        if level.len() % 2 == 1 {
            level.push(level[level.len() - 1]);
        }
        branch.push(level[pos ^ 1]);
        level = parents(&level);
        pos >>= 1;
    }
    (branch, level.first().copied().unwrap_or([0; 32]))
}

/// The branch of leaf `pos` among `leaves` (for a block's coinbase, `pos` 0).
pub fn branch(leaves: &[Node], pos: usize) -> Vec<Node> {
    branch_and_root(leaves.to_vec(), pos).0
}

/// Every level of a tree, kept so that many branches come from one computation (a block's
/// branches for each of its transactions).
#[derive(Clone, Debug)]
pub struct Tree {
    /// Leaves first, the root's level last; odd levels are stored unpadded.
    levels: Vec<Vec<Node>>,
}

impl Tree {
    /// The tree over `leaves`.
    pub fn new(leaves: Vec<Node>) -> Tree {
        let mut levels = vec![leaves];
        while let Some(top) = levels.last().filter(|l| l.len() > 1) {
            let mut padded = top.clone();
            if padded.len() % 2 == 1 {
                padded.push(padded[padded.len() - 1]);
            }
            levels.push(parents(&padded));
        }
        Tree { levels }
    }

    /// The root (all zeros for no leaves).
    pub fn root(&self) -> Node {
        self.levels
            .last()
            .and_then(|l| l.first())
            .copied()
            .unwrap_or([0; 32])
    }

    /// The branch of leaf `pos`, as [`branch_and_root`] gives it (`pos` must be a leaf's
    /// index).
    pub fn branch(&self, mut pos: usize) -> Vec<Node> {
        let mut b = Vec::new();
        for l in &self.levels[..self.levels.len() - 1] {
            // The last node of an odd level is its own sibling.
            b.push(*l.get(pos ^ 1).unwrap_or(&l[pos]));
            pos >>= 1;
        }
        b
    }
}

/// Where a branch leads, or why it cannot be a real leaf's.
fn fold(leaf: Node, branch: &[Node], index: i64, strict: bool) -> Option<Node> {
    let mut h = leaf;
    let mut idx = index;
    for sib in branch {
        h = if idx & 1 == 1 {
            // A right node equal to its left sibling only exists as the padding copy of an
            // odd level's last node: claiming that slot is the CVE-2012-2459 trick.
            if strict && *sib == h {
                return None;
            }
            hash_pair(sib, &h)
        } else {
            hash_pair(&h, sib)
        };
        idx >>= 1;
    }
    Some(h)
}

/// The root that `branch` leads `leaf` to at `index` (Namecoin's `CheckMerkleBranch` and
/// Bitcoin's SPV alike). Bit `i` of `index` says whether the running hash is the right (1) or
/// left (0) node at level `i`; the shift is arithmetic, as on Namecoin's signed `nIndex`, so
/// a negative index reads as ones above its top bit.
pub fn root_from_branch(leaf: Node, branch: &[Node], index: i64) -> Node {
    fold(leaf, branch, index, false).expect("only a strict fold refuses")
}

/// As [`root_from_branch`], but `None` when some right-hand sibling equals the running hash:
/// such a branch proves the padding duplicate of an odd level's last node, a position that
/// does not exist (CVE-2012-2459). For proofs from untrusted parties.
pub fn root_from_branch_strict(leaf: Node, branch: &[Node], index: u32) -> Option<Node> {
    fold(leaf, branch, i64::from(index), true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::merkle_tree::calculate_root;

    fn leaves(n: u8) -> Vec<Node> {
        (0..n).map(|i| [i + 1; 32]).collect()
    }

    fn bitcoin_root(l: &[Node]) -> Node {
        calculate_root(l.iter().map(|x| sha256d::Hash::from_byte_array(*x)))
            .map(|h| h.to_byte_array())
            .unwrap_or([0; 32])
    }

    /// Roots agree with rust-bitcoin's, every leaf's branch leads back to the root, and the
    /// kept tree gives the same branches as the level-by-level computation.
    #[test]
    fn branches_lead_to_rust_bitcoins_root() {
        for n in 0..=17u8 {
            let l = leaves(n);
            let tree = Tree::new(l.clone());
            assert_eq!(tree.root(), bitcoin_root(&l), "n={n}");
            for i in 0..l.len() {
                let (b, root) = branch_and_root(l.clone(), i);
                assert_eq!(root, tree.root());
                assert_eq!(b, tree.branch(i), "n={n} i={i}");
                assert_eq!(b, branch(&l, i));
                assert_eq!(root_from_branch(l[i], &b, i as i64), root);
                assert_eq!(root_from_branch_strict(l[i], &b, i as u32), Some(root));
            }
        }
    }

    /// The padding duplicate of an odd level's last leaf folds to the root, but not strictly.
    #[test]
    fn strict_fold_refuses_the_padding_duplicate() {
        let l = leaves(3);
        let (b, root) = branch_and_root(l.clone(), 2);
        assert_eq!(root_from_branch(l[2], &b, 3), root);
        assert_eq!(root_from_branch_strict(l[2], &b, 3), None);
    }

    /// A negative index shifts in ones, as Namecoin's `nIndex >>= 1` on an `int`.
    #[test]
    fn negative_index_shifts_arithmetically() {
        let b = [[7; 32], [8; 32]];
        let leaf = [1; 32];
        let all_right = hash_pair(&b[1], &hash_pair(&b[0], &leaf));
        assert_eq!(
            root_from_branch(leaf, &b, -2),
            hash_pair(&b[1], &hash_pair(&leaf, &b[0]))
        );
        assert_eq!(root_from_branch(leaf, &b, i64::from(-1i32)), all_right);
    }
}
