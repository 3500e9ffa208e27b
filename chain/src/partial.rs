//! Blocks for nodes that track some shards (partial nodes).
//!
//! A partial node keeps every header, runs the global lane and its own shards, and takes the
//! other shards from the header: their chunks' roots ([`ChunkHeader`]s, checked against the
//! header's three Merkle roots before anything runs) and the relays they sent its shards and
//! the global lane ([`RelayProof`]s against the same header). What it receives for a block
//! is a [`PartialBlock`]: the block with only its shards' transactions, every chunk's roots,
//! and those proofs. A package that does not match its header is refused as the sender's
//! fault without judging the block; a block whose tracked chunks do not execute to the roots
//! the header commits to is invalid, as on a full node. See `docs/scale-out.md` for what a
//! partial node checks and what it takes on the proof of work.

use serde::Serialize;

use crate::block::{shard_tx_root, Block};
use crate::encode::{decode_list, encode_list, Decode, DecodeError, Encode, Reader};
use crate::hash::{merkle_root, Hash256};
use crate::proof::{RelayProof, RelayProofError};
use crate::relay::Relay;
use crate::shard::ShardId;

/// One chunk's roots in a block: what the header's roots commit to for it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ChunkHeader {
    /// Root of the chunk's transactions (zero for the global lane, which has none).
    pub tx_root: Hash256,
    /// The chunk's state commitment after the block (its LtHash digest).
    pub state_root: Hash256,
    /// Root of its outbox (see [`crate::outbox`]).
    pub outbox_root: Hash256,
}

impl Encode for ChunkHeader {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.tx_root.0);
        out.extend_from_slice(&self.state_root.0);
        out.extend_from_slice(&self.outbox_root.0);
    }
}

impl Decode for ChunkHeader {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ChunkHeader {
            tx_root: Hash256(r.array()?),
            state_root: Hash256(r.array()?),
            outbox_root: Hash256(r.array()?),
        })
    }
}

/// A block as a node tracking some shards receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartialBlock {
    /// Header, seal, and the transactions of the tracked shards (other lists empty).
    pub block: Block,
    /// Every chunk's roots: the shards in order, then the global lane.
    pub chunks: Vec<ChunkHeader>,
    /// For every untracked shard, one proof per tracked shard and one for the global lane:
    /// the relays it sent them in this block.
    pub relays: Vec<RelayProof>,
}

impl Encode for PartialBlock {
    fn encode(&self, out: &mut Vec<u8>) {
        self.block.to_bytes().encode(out);
        encode_list(&self.chunks, out);
        encode_list(&self.relays, out);
    }
}

impl Decode for PartialBlock {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let block = Block::from_bytes(&Vec::<u8>::decode(r)?)?;
        let chunks = decode_list(r, 96)?;
        let relays = decode_list(r, 32 + 4 + 3)?;
        Ok(PartialBlock {
            block,
            chunks,
            relays,
        })
    }
}

/// Why a package does not go with its header (the sender's fault, not the block's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PackageError {
    /// Not one chunk header per shard plus the global lane.
    #[error("{got} chunk headers, expected {expected}")]
    ChunkCount {
        /// Given.
        got: usize,
        /// Shards + 1.
        expected: usize,
    },
    /// The chunks' roots do not give the header's.
    #[error("chunk headers do not give the header's {0}")]
    ChunkRoots(&'static str),
    /// A tracked shard's transactions do not match its chunk's root.
    #[error("transactions of shard {0} do not match its chunk")]
    Transactions(ShardId),
    /// An untracked shard's transactions were sent (they are not needed).
    #[error("transactions of untracked shard {0} were sent")]
    Untracked(ShardId),
    /// A relay proof does not hold.
    #[error("relay proof from {origin} to {target}: {error}")]
    Proof {
        /// Its origin.
        origin: ShardId,
        /// Its target.
        target: ShardId,
        /// Why.
        error: RelayProofError,
    },
    /// A proof that should be there is missing, or one is there twice or is not wanted.
    #[error("relay proofs incomplete: {0}")]
    Proofs(String),
}

/// What a checked package gives the executor for the shards this node does not run.
#[derive(Clone, Debug, Default)]
pub struct Foreign {
    /// Every chunk's roots (shards, then the global lane).
    pub chunks: Vec<ChunkHeader>,
    /// Per shard: the relays it sent the tracked shards and the global lane, by target in
    /// canonical order (empty for tracked shards).
    pub outbound: Vec<Vec<Relay>>,
}

impl PartialBlock {
    /// Checks the package against its header for a node running the shards marked in
    /// `tracked`: the chunks' roots against the header, the tracked shards' transactions
    /// against their chunks, and one valid proof from every untracked shard to every tracked
    /// shard and to the global lane.
    pub fn check(&self, tracked: &[bool]) -> Result<Foreign, PackageError> {
        let header = &self.block.header;
        let n = header.order.shard_count();
        if self.chunks.len() != n + 1 || tracked.len() != n {
            return Err(PackageError::ChunkCount {
                got: self.chunks.len(),
                expected: n + 1,
            });
        }
        let txs: Vec<Hash256> = self.chunks[..n].iter().map(|c| c.tx_root).collect();
        if merkle_root(&txs) != header.tx_root {
            return Err(PackageError::ChunkRoots("tx_root"));
        }
        let states: Vec<Hash256> = self.chunks.iter().map(|c| c.state_root).collect();
        if merkle_root(&states) != header.state_root {
            return Err(PackageError::ChunkRoots("state_root"));
        }
        let outboxes: Vec<Hash256> = self.chunks.iter().map(|c| c.outbox_root).collect();
        if merkle_root(&outboxes) != header.outbox_root {
            return Err(PackageError::ChunkRoots("outbox_root"));
        }
        if self.block.txs.len() != n {
            return Err(PackageError::ChunkCount {
                got: self.block.txs.len(),
                expected: n,
            });
        }
        for (i, list) in self.block.txs.iter().enumerate() {
            let shard = ShardId(i as u16);
            if tracked[i] {
                if shard_tx_root(list) != self.chunks[i].tx_root {
                    return Err(PackageError::Transactions(shard));
                }
            } else if !list.is_empty() {
                return Err(PackageError::Untracked(shard));
            }
        }
        // Targets a proof must cover: the tracked shards, then the global lane.
        let targets: Vec<ShardId> = (0..n as u16)
            .map(ShardId)
            .filter(|s| tracked[s.index()])
            .chain([ShardId::GLOBAL])
            .collect();
        let untracked = tracked.iter().filter(|t| !**t).count();
        if self.relays.len() != untracked * targets.len() {
            return Err(PackageError::Proofs(format!(
                "{} proofs, expected {}",
                self.relays.len(),
                untracked * targets.len()
            )));
        }
        let mut outbound = vec![Vec::new(); n];
        let mut seen = std::collections::HashSet::new();
        for p in &self.relays {
            let origin_ok =
                !p.origin.is_global() && p.origin.index() < n && !tracked[p.origin.index()];
            if !origin_ok || !targets.contains(&p.target) || !seen.insert((p.origin, p.target)) {
                return Err(PackageError::Proofs(format!(
                    "unexpected proof from {} to {}",
                    p.origin, p.target
                )));
            }
            p.verify(header).map_err(|error| PackageError::Proof {
                origin: p.origin,
                target: p.target,
                error,
            })?;
        }
        // Canonical order per origin: by target as `targets` lists them, each in emission
        // order (routing keeps the order within a target, which is all that counts).
        for origin in (0..n).filter(|i| !tracked[*i]) {
            for t in &targets {
                if let Some(p) = self
                    .relays
                    .iter()
                    .find(|p| p.origin.index() == origin && p.target == *t)
                {
                    outbound[origin].extend(p.relays.iter().cloned());
                }
            }
        }
        Ok(Foreign {
            chunks: self.chunks.clone(),
            outbound,
        })
    }
}

/// What `target` (a shard, or the global lane) runs in the block after `header`, from one
/// proof per chunk (every shard, then the global lane) of what it sent `target`: the
/// target's own outbox first (what waited for gas, then what it deferred to itself), then
/// the other shards' in order, then, for a shard, the global lane's calls (its payouts ran
/// in `header`'s block). This is how a node that takes up a shard at `header`, or starts
/// from `header` as a checkpoint, learns what the next block runs without having run it.
pub fn next_inbound_from_proofs(
    header: &crate::block::Header,
    target: ShardId,
    proofs: &[RelayProof],
) -> Result<Vec<Relay>, PackageError> {
    let n = header.order.shard_count();
    if !target.is_global() && target.index() >= n {
        return Err(PackageError::Proofs(format!("{target} is not a shard")));
    }
    let slot = |s: ShardId| if s.is_global() { n } else { s.index() };
    let mut by_origin: Vec<Option<&RelayProof>> = vec![None; n + 1];
    for p in proofs {
        if p.target != target {
            return Err(PackageError::Proofs(format!(
                "a proof to {}, not {target}",
                p.target
            )));
        }
        p.verify(header).map_err(|error| PackageError::Proof {
            origin: p.origin,
            target: p.target,
            error,
        })?;
        if by_origin[slot(p.origin)].replace(p).is_some() {
            return Err(PackageError::Proofs(format!(
                "two proofs from {}",
                p.origin
            )));
        }
    }
    if let Some(missing) = by_origin.iter().position(Option::is_none) {
        let origin = if missing == n {
            ShardId::GLOBAL
        } else {
            ShardId(missing as u16)
        };
        return Err(PackageError::Proofs(format!("no proof from {origin}")));
    }
    let proof = |i: usize| by_origin[i].expect("all present");
    let own = slot(target);
    let mut out: Vec<Relay> = proof(own).relays.clone();
    for i in (0..n).filter(|i| *i != own) {
        out.extend(proof(i).relays.iter().cloned());
    }
    if own != n {
        out.extend(
            proof(n)
                .relays
                .iter()
                .filter(|r| crate::global::runs_next_block(r))
                .cloned(),
        );
    }
    Ok(out)
}
