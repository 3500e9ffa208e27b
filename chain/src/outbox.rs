//! Outboxes: what a chunk (one shard's or the global lane's part of a block) sends to the
//! other partitions, committed so that a target can check a relay against the header alone.
//!
//! A chunk's **outbox** is the list of relays that leave it: every relay it emits except
//! those it runs itself in the same block. A shard's outbox also holds, first in its own
//! position, the inbound relays that did not fit its gas and wait for its next block (block
//! rules 3): what a shard will run next is then committed by the header alone, which is what
//! a node that starts running the shard from a synced state needs. The global lane's outbox
//! likewise opens with the calls that did not fit its gas (block rules 4), for a new node
//! that starts from a checkpoint. The outbox is keyed by target: position `t` of a
//! fixed-depth tree holds the Merkle root (see [`merkle_root`]) of the relays to shard `t` in
//! emission order, position `n` (the shard count) those to the global lane, and the zero hash
//! where there are none. The tree has `2n` positions (depth `order + 1`); a parent of two
//! zero nodes is zero, any other parent is the tagged hash `rexe/outbox` of its children, so
//! an empty outbox costs nothing and a target with no relays is proven by a branch to a zero
//! leaf. The header's `outbox_root` is [`merkle_root`] over the outbox roots of shards
//! `0..n`, then the global lane's.
//!
//! A relay list's root is never zero and a leaf is never an inner node (the tags differ), so
//! a branch proves the *whole* list of relays from one chunk to one target: none can be
//! added, dropped or reordered.

use crate::hash::{merkle_root, tagged_hash, Hash256};
use crate::relay::Relay;
use crate::shard::{ShardId, ShardOrder};

/// A relay's target outside the shard order's range (neither a shard nor the global lane).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("relay target {0} is out of range for this shard order")]
pub struct TargetOutOfRange(pub ShardId);

/// The position of `target` in an outbox tree: its index for a shard, the shard count for
/// the global lane.
pub fn position(target: ShardId, order: ShardOrder) -> Result<usize, TargetOutOfRange> {
    let n = order.shard_count();
    if target.is_global() {
        Ok(n)
    } else if target.index() < n {
        Ok(target.index())
    } else {
        Err(TargetOutOfRange(target))
    }
}

/// Positions in an outbox tree of `order`: `2n`.
pub fn width(order: ShardOrder) -> usize {
    2 * order.shard_count()
}

/// Levels of an outbox tree of `order` (the length of its branches): `order + 1`.
pub fn depth(order: ShardOrder) -> usize {
    order.get() as usize + 1
}

/// Merkle root of a list of relays (in emission order); zero for none.
pub fn relays_root(relays: &[Relay]) -> Hash256 {
    let hashes: Vec<Hash256> = relays.iter().map(Relay::hash).collect();
    merkle_root(&hashes)
}

fn parent(left: &Hash256, right: &Hash256) -> Hash256 {
    if *left == Hash256::ZERO && *right == Hash256::ZERO {
        return Hash256::ZERO;
    }
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(&left.0);
    buf[32..].copy_from_slice(&right.0);
    tagged_hash("rexe/outbox", &buf)
}

/// One chunk's outbox tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbox {
    /// `levels[0]` are the `2n` leaves (one root per target); the last level is the root.
    levels: Vec<Vec<Hash256>>,
}

impl Outbox {
    /// The outbox of `relays`, the relays leaving a chunk in order (a shard's waiting relays
    /// first, then what it emitted).
    pub fn build<'r>(
        relays: impl IntoIterator<Item = &'r Relay>,
        order: ShardOrder,
    ) -> Result<Outbox, TargetOutOfRange> {
        let mut per_target: Vec<Vec<Hash256>> = vec![Vec::new(); width(order)];
        for r in relays {
            per_target[position(r.target, order)?].push(r.hash());
        }
        let leaves = per_target.iter().map(|h| merkle_root(h)).collect();
        Ok(Outbox::from_leaves(leaves))
    }

    /// The tree over `leaves` (`2n` of them; padded with zeros up to a power of two).
    fn from_leaves(mut leaves: Vec<Hash256>) -> Outbox {
        leaves.resize(leaves.len().max(2).next_power_of_two(), Hash256::ZERO);
        let mut levels = vec![leaves];
        while levels[levels.len() - 1].len() > 1 {
            let next = levels[levels.len() - 1]
                .chunks(2)
                .map(|p| parent(&p[0], &p[1]))
                .collect();
            levels.push(next);
        }
        Outbox { levels }
    }

    /// The outbox root (zero when nothing leaves the chunk).
    pub fn root(&self) -> Hash256 {
        self.levels[self.levels.len() - 1][0]
    }

    /// The root of the relays to the target at `pos` (zero for none).
    pub fn leaf(&self, pos: usize) -> Option<Hash256> {
        self.levels[0].get(pos).copied()
    }

    /// The branch of position `pos`, from the leaf's sibling up.
    pub fn branch(&self, mut pos: usize) -> Vec<Hash256> {
        let mut out = Vec::with_capacity(self.levels.len() - 1);
        for level in &self.levels[..self.levels.len() - 1] {
            out.push(level[pos ^ 1]);
            pos >>= 1;
        }
        out
    }
}

/// The outbox root of `relays` (see [`Outbox::build`]), without keeping the tree.
pub fn outbox_root<'r>(
    relays: impl IntoIterator<Item = &'r Relay>,
    order: ShardOrder,
) -> Result<Hash256, TargetOutOfRange> {
    let mut relays = relays.into_iter().peekable();
    if relays.peek().is_none() {
        return Ok(Hash256::ZERO);
    }
    Outbox::build(relays, order).map(|o| o.root())
}

/// The outbox root that `leaf` at position `pos` and `branch` give in a tree of `order`;
/// `None` when `pos` or the branch's length does not fit the tree.
pub fn root_from_branch(
    leaf: Hash256,
    mut pos: usize,
    order: ShardOrder,
    branch: &[Hash256],
) -> Option<Hash256> {
    if pos >= width(order) || branch.len() != depth(order) {
        return None;
    }
    let mut node = leaf;
    for sibling in branch {
        node = if pos & 1 == 0 {
            parent(&node, sibling)
        } else {
            parent(sibling, &node)
        };
        pos >>= 1;
    }
    Some(node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::Address;
    use crate::amount::Amount;
    use crate::relay::RelayKind;

    fn deposit(origin: u16, index: u32, target: ShardId) -> Relay {
        Relay {
            origin: ShardId(origin),
            index,
            target,
            kind: RelayKind::Deposit {
                to: Address([index as u8; 32]),
                amount: Amount::from_sat(1 + index as u64),
            },
        }
    }

    #[test]
    fn every_position_is_proven_against_the_root() {
        for order in 0..=4u8 {
            let order = ShardOrder::new(order).unwrap();
            let n = order.shard_count() as u16;
            let relays: Vec<Relay> = (0..7u32)
                .map(|i| {
                    let t = if i % 3 == 2 {
                        ShardId::GLOBAL
                    } else {
                        ShardId(i as u16 % n)
                    };
                    deposit(0, i, t)
                })
                .collect();
            let tree = Outbox::build(&relays, order).unwrap();
            assert_eq!(outbox_root(&relays, order).unwrap(), tree.root());
            for pos in 0..width(order) {
                let leaf = tree.leaf(pos).unwrap();
                let to: Vec<Relay> = relays
                    .iter()
                    .filter(|r| position(r.target, order).unwrap() == pos)
                    .cloned()
                    .collect();
                assert_eq!(leaf, relays_root(&to));
                let branch = tree.branch(pos);
                assert_eq!(branch.len(), depth(order));
                assert_eq!(
                    root_from_branch(leaf, pos, order, &branch),
                    Some(tree.root())
                );
                // The branch proves this position only (its sibling's, when it holds
                // something else).
                if tree.leaf(pos ^ 1) != Some(leaf) {
                    assert_ne!(
                        root_from_branch(leaf, pos ^ 1, order, &branch),
                        Some(tree.root()),
                        "order {order:?} pos {pos}"
                    );
                }
            }
        }
    }

    #[test]
    fn lists_cannot_be_changed_under_a_root() {
        let order = ShardOrder::new(2).unwrap();
        let a = deposit(1, 0, ShardId(2));
        let b = deposit(1, 1, ShardId(2));
        let c = deposit(1, 2, ShardId(2));
        let full = outbox_root(&[a.clone(), b.clone(), c.clone()], order).unwrap();
        for other in [
            vec![a.clone(), b.clone()],
            vec![a.clone(), c.clone(), b.clone()],
            vec![a.clone(), b.clone(), c.clone(), c.clone()],
            vec![b, c],
        ] {
            assert_ne!(outbox_root(&other, order).unwrap(), full);
        }
        // A relay moved to another target changes the root.
        let mut moved = a.clone();
        moved.target = ShardId(3);
        assert_ne!(outbox_root(&[moved], order), outbox_root(&[a], order));
    }

    #[test]
    fn empty_outboxes_are_zero_and_bad_targets_are_refused() {
        let order = ShardOrder::new(3).unwrap();
        assert_eq!(outbox_root(&[], order).unwrap(), Hash256::ZERO);
        assert_eq!(Outbox::build(&[], order).unwrap().root(), Hash256::ZERO);
        assert_eq!(
            outbox_root(&[deposit(0, 0, ShardId(8))], order),
            Err(TargetOutOfRange(ShardId(8)))
        );
        assert_eq!(position(ShardId::GLOBAL, order), Ok(8));
        assert_eq!(root_from_branch(Hash256::ZERO, 16, order, &[]), None);
        assert_eq!(
            root_from_branch(Hash256::ZERO, 0, order, &[Hash256::ZERO; 3]),
            None
        );
    }
}
