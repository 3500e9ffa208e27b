//! Shard state sync on the chain (see [`crate::sync`]): a node serves the state of a shard
//! it runs at a recent active block, and a partial node takes up another shard: the shard's
//! state at the tip fetched in pages and checked against the tip's chunk state root, then
//! what the shard runs next proven against the tip's header. Blocks must not be connected
//! during a sync: the synced state is the tip's, and the shard joins the others there.

use super::*;
use crate::proof::RelayProof;
use crate::sync::{StateCursor, StatePage, SyncError, SyncProgress};

impl Chain {
    /// Shards the configuration names that this node does not run yet (to be taken up by
    /// state sync).
    pub fn shards_to_sync(&self) -> &[ShardId] {
        &self.adding
    }

    fn shard_index(&self, shard: ShardId) -> Result<usize, SyncError> {
        if shard.is_global() || shard.index() >= self.shards.len() {
            return Err(SyncError::NotSyncable(shard, "not a shard of this chain"));
        }
        Ok(shard.index())
    }

    /// One page of `shard`'s state at active block `block`, from `from`, of about
    /// `max_rows` rows (see [`crate::store::ShardStore::state_page`]). Served for the
    /// blocks within the undo depth, by a node that runs the shard.
    pub fn state_page(
        &mut self,
        shard: ShardId,
        block: BlockHash,
        from: StateCursor,
        max_rows: usize,
    ) -> Result<StatePage, SyncError> {
        let i = self.shard_index(shard)?;
        if !self.tracks(shard) {
            return Err(SyncError::NotServed(
                block,
                format!("this node does not run shard {shard}"),
            ));
        }
        let height = self
            .index
            .get(&block)
            .map(|e| e.header.height)
            .filter(|h| self.hash_at(*h) == Some(block))
            .ok_or_else(|| SyncError::NotServed(block, "not an active block".into()))?;
        if self.tip_height() - height >= self.params.undo_depth {
            return Err(SyncError::NotServed(
                block,
                format!(
                    "height {height} is older than the last {} blocks",
                    self.params.undo_depth
                ),
            ));
        }
        // Pages read the file at the flushed height and lay the undo records over it: the
        // file must hold the block (and nothing rolled back since).
        let store = &self.shards[i];
        if store.flushed_height() < height || store.flushed_height() > store.height() {
            self.flush()?;
        }
        Ok(self.shards[i].state_page(height, block, from, max_rows)?)
    }

    /// The sync under way of `shard` (`None`: none, or the shard is run already).
    pub fn state_sync(&self, shard: ShardId) -> Result<Option<SyncProgress>, SyncError> {
        let i = self.shard_index(shard)?;
        if self.tracks(shard) {
            return Ok(None);
        }
        Ok(self.shards[i].sync_progress()?)
    }

    /// Starts taking up `shard` on a partial node: its state at the tip is to be fetched
    /// ([`Chain::apply_state_page`]) from nodes that run it. Replaces any sync under way.
    pub fn begin_state_sync(&mut self, shard: ShardId) -> Result<SyncProgress, SyncError> {
        let i = self.shard_index(shard)?;
        if self.tracks(shard) {
            return Err(SyncError::NotSyncable(shard, "this node runs it already"));
        }
        if self.tip_height() == 0 {
            return Err(SyncError::NotSyncable(
                shard,
                "the chain is at genesis: add the shard to --track-shards and restart instead",
            ));
        }
        // Every store at the tip on disk: the shard's file is rewritten from here.
        self.flush()?;
        let (tip, height) = (self.tip_hash(), self.tip_height());
        let progress = self.shards[i].sync_begin(tip, height)?;
        tracing::info!(%shard, block = %tip, height, "state sync started");
        Ok(progress)
    }

    /// Drops the sync under way of `shard` and its rows (blocks can be taken again; a later
    /// sync starts at the tip of then).
    pub fn abandon_state_sync(&mut self, shard: ShardId) -> Result<(), SyncError> {
        let i = self.shard_index(shard)?;
        if !self.tracks(shard) {
            self.shards[i].sync_clear(true)?;
        }
        Ok(())
    }

    /// Stores one page of the sync under way of `page.shard`.
    pub fn apply_state_page(&mut self, page: &StatePage) -> Result<SyncProgress, SyncError> {
        let i = self.shard_index(page.shard)?;
        if self.tracks(page.shard) {
            return Err(SyncError::NotSyncing(page.shard));
        }
        self.shards[i].sync_apply(page)
    }

    /// Takes up `shard` once its state is synced: the rows must give the tip's chunk state
    /// root, and `proofs` (one per chunk, see [`crate::partial::next_inbound_from_proofs`])
    /// prove what it runs next. From here the node runs the shard; packages must be asked
    /// for with it ([`Chain::tracked_shards`]).
    ///
    /// A crash part-way leaves the synced state and its progress in place, and this can be
    /// called again. Blocks below the synced height cannot be rolled back on this shard
    /// (it has no undo records for them): a reorganisation that deep fails with a named
    /// error, as one deeper than the undo depth does.
    pub fn adopt_shard(&mut self, shard: ShardId, proofs: &[RelayProof]) -> Result<(), SyncError> {
        let i = self.shard_index(shard)?;
        if self.tracks(shard) {
            return Err(SyncError::NotSyncable(shard, "this node runs it already"));
        }
        let progress = self.shards[i]
            .sync_progress()?
            .ok_or(SyncError::NotSyncing(shard))?;
        if progress.cursor.is_some() {
            return Err(SyncError::Unfinished(shard));
        }
        let tip = self.tip_hash();
        if progress.block != tip {
            self.shards[i].sync_clear(true)?;
            return Err(SyncError::TipMoved {
                synced: progress.block,
                height: progress.height,
            });
        }
        let header = self
            .index
            .get(&tip)
            .map(|e| e.header.clone())
            .ok_or_else(|| StoreError::corrupt("block index", "tip header missing"))?;
        let next = crate::partial::next_inbound_from_proofs(&header, shard, proofs)
            .map_err(|e| SyncError::BadProofs(e.to_string()))?;
        // The tip's stored relays gain what the shard runs next, so that a restart routes
        // them again: its own outbox as waiting (first in line), the untracked shards'
        // relays to it among the outboxes (tracked shards' and the global lane's are there).
        let n = self.shards.len();
        let mut stored = self.stored_relays(tip)?;
        let root = stored.chunks[i].state_root;
        for p in proofs {
            if p.origin == shard {
                stored.waiting.extend(p.relays.iter().cloned());
            } else if !p.origin.is_global() && !self.tracks(p.origin) {
                stored.emitted.extend(p.relays.iter().cloned());
            }
        }
        let chunk = |s: ShardId| if s.is_global() { n } else { s.index() };
        stored.emitted.sort_by_key(|r| chunk(r.origin));
        let record = super::encode_outbound(
            std::slice::from_ref(&stored.waiting),
            std::slice::from_ref(&stored.emitted),
            &[],
            &stored.chunks,
        );
        let (inbound, global_inbound) =
            StoredRelays::decode(&record, self.params.shard_order)?.next_inbound(n);
        if inbound[i] != next {
            return Err(SyncError::BadProofs(format!(
                "the proven relays to shard {shard} disagree with this node's own ({} proven, {} routed)",
                next.len(),
                inbound[i].len()
            )));
        }
        if global_inbound != self.global_inbound
            || (0..n).any(|t| t != i && self.tracked[t] && inbound[t] != self.inbound[t])
        {
            return Err(SyncError::BadProofs(
                "the rewritten relays change what the other shards run".into(),
            ));
        }
        let synced = self.shards[i].sync_finish(root)?;
        let mut tracked: Vec<u8> = self.tracked.iter().map(|t| *t as u8).collect();
        tracked[i] = 1;
        self.db
            .set_relays_and_meta(tip, &record, "tracked", &tracked)?;
        self.shards[i].sync_clear(false)?;
        self.tracked[i] = true;
        self.inbound[i] = next;
        self.adding.retain(|s| *s != shard);
        tracing::info!(
            %shard,
            height = synced.height,
            rows = synced.rows,
            bytes = synced.bytes,
            waiting = self.inbound[i].len(),
            "state sync done: the node runs the shard from here"
        );
        Ok(())
    }
}
