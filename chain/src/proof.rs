//! Relay proofs: the relays one chunk of a block sent to one target, with the two Merkle
//! branches that tie them to the block's header. A node that does not execute the origin
//! chunk checks the relays against the header alone (see [`crate::outbox`] for the trees).
//!
//! A proof covers the *whole* list from one origin to one target in that block, so a
//! verified proof also shows that no relay was withheld; a proof with no relays shows that
//! the origin sent the target nothing.

use serde::Serialize;

use crate::block::Header;
use crate::encode::{decode_list, encode_list, Decode, DecodeError, Encode, Reader};
use crate::hash::{merkle_depth, merkle_root_from_branch, BlockHash, Hash256};
use crate::outbox;
use crate::relay::Relay;
use crate::shard::{ShardId, MAX_SHARD_ORDER};

/// Smallest encoded relay (a deposit), to bound list lengths while decoding.
const MIN_RELAY_SIZE: usize = 2 + 4 + 2 + 1 + 32 + 8;

/// Longest branch in any tree of any shard order (the outbox tree's `MAX_SHARD_ORDER + 1`).
const MAX_BRANCH: usize = MAX_SHARD_ORDER as usize + 1;

/// The relays one chunk of a block sent to one target, and their proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RelayProof {
    /// The block whose header commits them.
    pub block: BlockHash,
    /// The chunk that emitted them (a shard, or [`ShardId::GLOBAL`]).
    pub origin: ShardId,
    /// Where they run.
    pub target: ShardId,
    /// Every relay from `origin` to `target` in the block, in emission order.
    pub relays: Vec<Relay>,
    /// From the relays' root to the origin's outbox root.
    pub outbox_branch: Vec<Hash256>,
    /// From the origin's outbox root to the header's `outbox_root`.
    pub header_branch: Vec<Hash256>,
}

/// Why a relay proof does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RelayProofError {
    /// The proof names another block than the header given.
    #[error("proof is for block {proof}, header is {header}")]
    WrongBlock {
        /// Named by the proof.
        proof: BlockHash,
        /// The header's hash.
        header: BlockHash,
    },
    /// Origin or target is not a shard of the header's order nor the global lane.
    #[error("{0} is not a partition of this chain")]
    OutOfRange(ShardId),
    /// A relay in the list has another origin or target than the proof's.
    #[error("relay {index} goes from {origin} to {target}, not as the proof says")]
    Misrouted {
        /// Its position in the list.
        index: usize,
        /// Its origin.
        origin: ShardId,
        /// Its target.
        target: ShardId,
    },
    /// Emission indices do not increase along the list.
    #[error("relay {0} is out of emission order")]
    OutOfOrder(usize),
    /// A branch has the wrong length or a sibling that must be empty is not.
    #[error("{0} branch does not fit the tree")]
    BadBranch(&'static str),
    /// The branches lead to another root than the header's.
    #[error("relays do not hash to the header's outbox_root {header} (proof gives {proof})")]
    RootMismatch {
        /// The header's.
        header: Hash256,
        /// What the proof gives.
        proof: Hash256,
    },
}

impl RelayProof {
    /// Checks the proof against `header`: on success, `relays` are exactly what `origin`
    /// sent `target` in that block.
    pub fn verify(&self, header: &Header) -> Result<(), RelayProofError> {
        let hash = header.hash();
        if hash != self.block {
            return Err(RelayProofError::WrongBlock {
                proof: self.block,
                header: hash,
            });
        }
        let order = header.order;
        let target_pos = outbox::position(self.target, order)
            .map_err(|_| RelayProofError::OutOfRange(self.target))?;
        let origin_pos = outbox::position(self.origin, order)
            .map_err(|_| RelayProofError::OutOfRange(self.origin))?;
        // A shard's list to itself is its waiting relays (from any origin, in queue order)
        // then the deferred relays it sent itself.
        let own = self.origin == self.target;
        let mut last = None;
        for (i, r) in self.relays.iter().enumerate() {
            if r.target != self.target || (!own && r.origin != self.origin) {
                return Err(RelayProofError::Misrouted {
                    index: i,
                    origin: r.origin,
                    target: r.target,
                });
            }
            if !own && last.is_some_and(|l| r.index <= l) {
                return Err(RelayProofError::OutOfOrder(i));
            }
            last = Some(r.index);
        }
        let leaf = outbox::relays_root(&self.relays);
        let chunk = outbox::root_from_branch(leaf, target_pos, order, &self.outbox_branch)
            .ok_or(RelayProofError::BadBranch("outbox"))?;
        let root = merkle_root_from_branch(
            chunk,
            origin_pos,
            order.shard_count() + 1,
            &self.header_branch,
        )
        .ok_or(RelayProofError::BadBranch("header"))?;
        if root != header.outbox_root {
            return Err(RelayProofError::RootMismatch {
                header: header.outbox_root,
                proof: root,
            });
        }
        Ok(())
    }

    /// The origin's outbox root the proof passes through (checked by [`RelayProof::verify`]).
    pub fn origin_outbox_root(&self, header: &Header) -> Option<Hash256> {
        let pos = outbox::position(self.target, header.order).ok()?;
        outbox::root_from_branch(
            outbox::relays_root(&self.relays),
            pos,
            header.order,
            &self.outbox_branch,
        )
    }
}

fn encode_branch(branch: &[Hash256], out: &mut Vec<u8>) {
    crate::encode::write_compact_size(out, branch.len() as u64);
    for h in branch {
        out.extend_from_slice(&h.0);
    }
}

fn decode_branch(r: &mut Reader<'_>) -> Result<Vec<Hash256>, DecodeError> {
    let n = r.length(32)?;
    if n > MAX_BRANCH {
        return Err(DecodeError::Invalid("branch longer than any tree"));
    }
    (0..n).map(|_| Ok(Hash256(r.array()?))).collect()
}

impl Encode for RelayProof {
    fn encode(&self, out: &mut Vec<u8>) {
        self.block.0 .0.encode(out);
        self.origin.0.encode(out);
        self.target.0.encode(out);
        encode_list(&self.relays, out);
        encode_branch(&self.outbox_branch, out);
        encode_branch(&self.header_branch, out);
    }
}

impl Decode for RelayProof {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(RelayProof {
            block: BlockHash(Hash256(r.array()?)),
            origin: ShardId(u16::decode(r)?),
            target: ShardId(u16::decode(r)?),
            relays: decode_list(r, MIN_RELAY_SIZE)?,
            outbox_branch: decode_branch(r)?,
            header_branch: decode_branch(r)?,
        })
    }
}

/// One chunk's outbox in a block, checked against the header and ready to prove what it
/// sent any target: its tree and its branch to the header are built once.
pub struct Prover {
    block: crate::hash::BlockHash,
    order: crate::shard::ShardOrder,
    origin: ShardId,
    relays: Vec<Relay>,
    tree: outbox::Outbox,
    header_branch: Vec<Hash256>,
}

impl Prover {
    /// The prover of `origin`'s outbox in the block of `header`, from every chunk's outbox
    /// root (shards, then the global lane) and `origin`'s outbox in order (a shard's waiting
    /// relays first, then what it emitted). `None`
    /// when they do not give the header's root (the data does not belong to this header).
    pub fn new(
        header: &Header,
        outbox_roots: &[Hash256],
        origin_relays: Vec<Relay>,
        origin: ShardId,
    ) -> Option<Prover> {
        let order = header.order;
        let n = order.shard_count();
        let origin_pos = outbox::position(origin, order).ok()?;
        if outbox_roots.len() != n + 1
            || crate::hash::merkle_root(outbox_roots) != header.outbox_root
            || origin_relays
                .iter()
                .any(|r| r.origin != origin && r.target != origin)
        {
            return None;
        }
        let tree = outbox::Outbox::build(&origin_relays, order).ok()?;
        if tree.root() != outbox_roots[origin_pos] {
            return None;
        }
        let header_branch = crate::hash::merkle_branch(outbox_roots, origin_pos);
        debug_assert_eq!(header_branch.len(), merkle_depth(n + 1));
        Some(Prover {
            block: header.hash(),
            order,
            origin,
            relays: origin_relays,
            tree,
            header_branch,
        })
    }

    /// The proof of what the origin sent `target`; `None` for a target out of range.
    pub fn prove(&self, target: ShardId) -> Option<RelayProof> {
        let target_pos = outbox::position(target, self.order).ok()?;
        Some(RelayProof {
            block: self.block,
            origin: self.origin,
            target,
            relays: self
                .relays
                .iter()
                .filter(|r| r.target == target)
                .cloned()
                .collect(),
            outbox_branch: self.tree.branch(target_pos),
            header_branch: self.header_branch.clone(),
        })
    }
}
