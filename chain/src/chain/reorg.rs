//! Fork choice: submitting blocks, reorganising to the branch with more work, rolling back
//! and invalidating.

use super::*;

impl Chain {
    /// Rolls back the tip block in memory (the caller persists).
    pub(super) fn disconnect_tip(&mut self) -> Result<Block, ChainError> {
        let height = self.tip_height();
        if height == 0 {
            return Err(StoreError::corrupt("chain", "cannot disconnect genesis").into());
        }
        let hash = self.tip_hash();
        let block = self
            .block(hash)?
            .ok_or_else(|| StoreError::corrupt("body", height))?;
        // The global state first: it refuses a block below its base before anything moved.
        self.undo_global(hash, height)?;
        for s in &mut self.shards {
            s.undo_top()?;
        }
        self.active.pop();
        self.note_disconnected();
        self.stats.blocks_disconnected += 1;
        (self.inbound, self.global_inbound) = self.load_relays(self.tip_hash())?;
        self.prepared = None;
        Ok(block)
    }

    /// Makes the in-memory rollback durable: shards first, then the log's active chain.
    pub(super) fn persist_rollback(&mut self) -> Result<(), StoreError> {
        if self.shards.iter().any(|s| s.height() < s.flushed_height()) {
            self.flush()?;
        }
        self.db.truncate_active(self.tip_height())
    }

    /// Rolls back the last `n` blocks (they stay stored as a side branch).
    pub fn rollback(&mut self, n: u64) -> Result<(), ChainError> {
        let n = n.min(self.tip_height());
        if self.checkpoint > 0 && self.tip_height() - n < self.checkpoint {
            return Err(BlockError::BelowCheckpoint {
                fork: self.tip_height() - n,
                checkpoint: self.checkpoint,
            }
            .into());
        }
        if n > self.params.undo_depth {
            return Err(BlockError::ReorgTooDeep {
                depth: n,
                max: self.params.undo_depth,
            }
            .into());
        }
        let mut undone = Vec::new();
        for _ in 0..n {
            undone.push(self.disconnect_tip()?);
        }
        self.persist_rollback()?;
        self.readmit(undone);
        Ok(())
    }

    /// Marks `hash` invalid (as bitcoind's `invalidateblock`): if it is active, rolls back to
    /// its parent first. Its transactions go back to the mempool; it is never connected
    /// again. Refused below the latest Bitcoin-anchored block.
    pub fn invalidate(&mut self, hash: BlockHash) -> Result<(), ChainError> {
        let height = self
            .index
            .get(&hash)
            .map(|e| e.header.height)
            .ok_or_else(|| StoreError::corrupt("index", hash))?;
        if height == 0 {
            return Err(StoreError::corrupt("chain", "cannot invalidate genesis").into());
        }
        if self.hash_at(height) == Some(hash) {
            if let Some((anchor, _)) = self.anchor() {
                if height <= anchor {
                    return Err(BlockError::BelowAnchor {
                        fork: height - 1,
                        anchor,
                    }
                    .into());
                }
            }
            self.rollback(self.tip_height() - height + 1)?;
        }
        self.mark_invalid(hash)?;
        Ok(())
    }

    pub(super) fn readmit(&mut self, blocks: Vec<Block>) {
        for b in blocks.into_iter().rev() {
            for t in b.txs.into_iter().flatten() {
                let _ = self.submit_tx(t);
            }
        }
    }

    /// Validates and stores a block; connects it or reorganises when its branch has the
    /// most work. `now` is the local clock (unix seconds).
    pub fn submit(&mut self, block: Block, now: u64) -> Result<SubmitOutcome, BlockError> {
        let hash = block.header.hash();
        if self.is_partial() && self.db.package(hash)?.is_none() {
            return Err(BlockError::NoPackage(hash));
        }
        let chainwork = self.check_header(&block, now)?;
        self.index.insert(
            hash,
            IndexEntry {
                header: block.header.clone(),
                chainwork,
                status: BlockStatus::HeaderValid,
            },
        );
        if block.header.prev == self.tip_hash() {
            // Stored and made active in one durable transaction.
            match self.connect(&block, false, Log::New(chainwork)) {
                Ok(()) => {
                    crate::dropper::drop_later(block);
                    Ok(SubmitOutcome::Connected)
                }
                // Our disk failed, not the block: forget it, so that it can come again.
                Err(
                    e @ (BlockError::Store(_)
                    | BlockError::Exec(ExecError::Store(_))
                    | BlockError::NoPackage(_)
                    | BlockError::BadPackage(_)),
                ) => {
                    self.index.remove(&hash);
                    Err(e)
                }
                Err(e) => {
                    self.db.insert_block(
                        &block.header,
                        &block.to_bytes(),
                        chainwork.to_be_bytes(),
                        BlockStatus::Invalid,
                    )?;
                    self.mark_invalid(hash)?;
                    Err(e)
                }
            }
        } else {
            self.db.insert_block(
                &block.header,
                &block.to_bytes(),
                chainwork.to_be_bytes(),
                BlockStatus::HeaderValid,
            )?;
            if chainwork > self.tip_work() {
                self.reorg_to(hash)
            } else {
                Ok(SubmitOutcome::SideBranch)
            }
        }
    }

    pub(super) fn mark_invalid(&mut self, hash: BlockHash) -> Result<(), StoreError> {
        if let Some(e) = self.index.get_mut(&hash) {
            e.status = BlockStatus::Invalid;
        }
        self.db.set_status(hash, BlockStatus::Invalid)
    }

    pub(super) fn reorg_to(&mut self, new_tip: BlockHash) -> Result<SubmitOutcome, BlockError> {
        // The new branch, tip first, down to a block on the active chain.
        let mut branch = Vec::new();
        let mut cur = new_tip;
        loop {
            let e = &self.index[&cur];
            let h = e.header.height as usize;
            if self.active.get(h) == Some(&cur) {
                break;
            }
            branch.push(cur);
            cur = e.header.prev;
        }
        let fork = self.index[&cur].header.height;
        let depth = self.tip_height() - fork;
        if let Some((anchor, _)) = self.anchor() {
            if fork < anchor {
                tracing::warn!(fork, anchor, new_tip = %new_tip, "refusing a branch with more work that forks below the anchored block");
                return Err(BlockError::BelowAnchor { fork, anchor });
            }
        }
        if fork < self.checkpoint {
            tracing::warn!(fork, checkpoint = self.checkpoint, new_tip = %new_tip, "refusing a branch with more work that forks below the bootstrap checkpoint");
            return Err(BlockError::BelowCheckpoint {
                fork,
                checkpoint: self.checkpoint,
            });
        }
        if depth > self.params.undo_depth {
            return Err(BlockError::ReorgTooDeep {
                depth,
                max: self.params.undo_depth,
            });
        }
        tracing::info!(depth, fork, new_tip = %new_tip, "reorganising to the branch with more work");
        let old_branch: Vec<BlockHash> = self.active[fork as usize + 1..].to_vec();
        let mut undone = Vec::new();
        for _ in 0..depth {
            undone.push(self.disconnect_tip().map_err(chain_to_block_err)?);
        }
        self.persist_rollback()?;
        for (i, hash) in branch.iter().rev().enumerate() {
            let block = self
                .block(*hash)
                .map_err(chain_to_block_err)?
                .ok_or_else(|| StoreError::corrupt("body", hash))?;
            if let Err(e) = self.connect(&block, false, Log::Stored) {
                tracing::warn!(%hash, error = %e, "block on the new branch is invalid; restoring the old branch");
                self.mark_invalid(*hash)?;
                for later in branch.iter().rev().skip(i + 1) {
                    self.mark_invalid(*later)?;
                }
                for _ in 0..i {
                    self.disconnect_tip().map_err(chain_to_block_err)?;
                }
                self.persist_rollback()?;
                for old in &old_branch {
                    let b = self
                        .block(*old)
                        .map_err(chain_to_block_err)?
                        .ok_or_else(|| StoreError::corrupt("body", old))?;
                    self.connect(&b, true, Log::Stored)?;
                }
                return Err(e);
            }
        }
        self.readmit(undone);
        Ok(SubmitOutcome::Reorged { depth })
    }
}
