//! Nodes that track some shards: taking blocks with their packages, executing the tracked
//! shards beside the roots and relays of the others, and serving packages to such nodes.

use super::*;
use crate::partial::{ChunkHeader, Foreign, PackageError, PartialBlock};

impl Chain {
    /// Whether this node runs only some shards.
    pub fn is_partial(&self) -> bool {
        self.tracked.iter().any(|t| !t)
    }

    /// The shards this node runs.
    pub fn tracked_shards(&self) -> Vec<ShardId> {
        (0..self.tracked.len())
            .filter(|i| self.tracked[*i])
            .map(|i| ShardId(i as u16))
            .collect()
    }

    /// Whether this node runs `shard`.
    pub fn tracks(&self, shard: ShardId) -> bool {
        self.tracked.get(shard.index()).copied().unwrap_or(false)
    }

    /// Takes a block with its package (a partial node's [`Chain::submit`]): the package is
    /// checked against the header first (a bad one is the sender's fault and leaves the
    /// block unjudged), stored with the block, and the block submitted.
    pub fn submit_partial(
        &mut self,
        pb: PartialBlock,
        now: u64,
    ) -> Result<SubmitOutcome, BlockError> {
        if !self.is_partial() {
            return Err(PackageError::Proofs(
                "this node runs every shard: it takes whole blocks".into(),
            )
            .into());
        }
        let hash = pb.block.header.hash();
        if let Some(e) = self.index.get(&hash) {
            return Err(if e.status == BlockStatus::Invalid {
                BlockError::KnownInvalid(hash)
            } else {
                BlockError::Duplicate(hash)
            });
        }
        // The header (seal included) before anything is stored: a package for a header
        // without proof of work must not cost disk.
        self.check_header(&pb.block, now)?;
        pb.check(&self.tracked)?;
        self.db.set_package(hash, &pb.to_bytes())?;
        self.submit(pb.block, now)
    }

    /// The checked package of block `hash` on a partial node (`None` on a full node).
    pub(super) fn foreign_for(&self, hash: BlockHash) -> Result<Option<Foreign>, BlockError> {
        if !self.is_partial() {
            return Ok(None);
        }
        let data = self.db.package(hash)?.ok_or(BlockError::NoPackage(hash))?;
        let pb = PartialBlock::from_bytes(&data).map_err(|e| StoreError::corrupt("package", e))?;
        Ok(Some(pb.check(&self.tracked)?))
    }

    /// The package a node running `tracked` needs for active block `hash`: the block with
    /// only those shards' transactions, every chunk's roots, and the proofs of what every
    /// other shard sent them and the global lane. Served for the blocks within the undo
    /// depth by full nodes, and by partial nodes for sets of shards they run themselves.
    pub fn partial_block(
        &self,
        hash: BlockHash,
        tracked: &[ShardId],
    ) -> Result<PartialBlock, RelayProofQueryError> {
        let n = self.params.shard_order.shard_count();
        let mut want = vec![false; n];
        for s in tracked {
            *want
                .get_mut(s.index())
                .filter(|_| !s.is_global())
                .ok_or(RelayProofQueryError::OutOfRange(*s))? = true;
        }
        if (0..n).any(|s| want[s] && !self.tracked[s]) {
            return Err(ChainError::from(StoreError::NotTracked(
                "serving a package for a shard this node does not run",
            ))
            .into());
        }
        let (header, stored) = self.proof_source(hash)?;
        let mut block = self
            .block(hash)?
            .ok_or(RelayProofQueryError::NotActive(hash))?;
        // A partial node has the chunks' transaction roots, and the proofs from the shards
        // it does not run, only in the block's stored package (those proofs cover every
        // shard it runs, so every shard in `want`).
        let package = if self.is_partial() {
            let data = self.db.package(hash).map_err(ChainError::from)?.ok_or(
                RelayProofQueryError::Pruned {
                    hash,
                    height: header.height,
                    kept: self.params.undo_depth,
                },
            )?;
            Some(
                PartialBlock::from_bytes(&data)
                    .map_err(|e| ChainError::from(StoreError::corrupt("package", e)))?,
            )
        } else {
            None
        };
        let chunks: Vec<ChunkHeader> = match &package {
            Some(p) => p.chunks.clone(),
            None => stored
                .chunks
                .iter()
                .enumerate()
                .map(|(i, c)| ChunkHeader {
                    tx_root: block
                        .txs
                        .get(i)
                        .map_or(Hash256::ZERO, |t| crate::block::shard_tx_root(t)),
                    state_root: c.state_root,
                    outbox_root: c.outbox_root,
                })
                .collect(),
        };
        let targets: Vec<ShardId> = (0..n)
            .filter(|i| want[*i])
            .map(|i| ShardId(i as u16))
            .chain([ShardId::GLOBAL])
            .collect();
        let mut relays = Vec::new();
        for origin in (0..n).filter(|i| !want[*i]).map(|i| ShardId(i as u16)) {
            if self.tracked[origin.index()] {
                // A shard this node runs: proven from its own outbox.
                let prover = Self::prover(header, &stored, origin, hash)?;
                for t in &targets {
                    relays.push(
                        prover
                            .prove(*t)
                            .ok_or(RelayProofQueryError::OutOfRange(*t))?,
                    );
                }
            } else {
                let p = package
                    .as_ref()
                    .ok_or(RelayProofQueryError::Corrupt(hash))?;
                for t in &targets {
                    let proof = p
                        .relays
                        .iter()
                        .find(|r| r.origin == origin && r.target == *t)
                        .ok_or(RelayProofQueryError::Corrupt(hash))?;
                    relays.push(proof.clone());
                }
            }
        }
        for (i, list) in block.txs.iter_mut().enumerate() {
            if !want[i] {
                list.clear();
            }
        }
        Ok(PartialBlock {
            block,
            chunks,
            relays,
        })
    }
}
