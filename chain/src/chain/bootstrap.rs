//! A brand-new partial node's start from a checkpoint (see [`crate::bootstrap`]): headers
//! checked from genesis, then the checkpoint's global state and what its global lane runs
//! next, proven against its header. The node's shards are taken up afterwards by shard
//! state sync (`state_sync.rs`).

use super::*;
use crate::bootstrap::{
    BootstrapError, GlobalCursor, GlobalItem, GlobalPage, HeaderChain, SealedHeader,
    GLOBAL_PAGE_BYTES, MAX_GLOBAL_PAGE_ITEMS,
};
use crate::partial::PartialBlock;
use crate::proof::RelayProof;

impl Chain {
    /// How far below the best header a new node takes its checkpoint: deep enough that a
    /// reorganisation rarely reaches it, shallow enough that peers serve its state for most
    /// of their undo depth.
    pub fn bootstrap_depth(&self) -> u64 {
        (self.params.undo_depth / 4).clamp(1, 10)
    }

    /// Whether this node should start from a checkpoint rather than replay packages from
    /// genesis: a partial node still at genesis, with peers past half the undo depth (the
    /// packages it would replay are served for the undo depth only).
    pub fn wants_bootstrap(&self, peer_height: u64) -> bool {
        self.is_partial()
            && self.tip_height() == 0
            && peer_height > self.params.undo_depth / 2
            && peer_height > self.bootstrap_depth()
    }

    /// The checkpoint this node started at (height and hash), when it was bootstrapped.
    /// No block at or below it can be rolled back here.
    pub fn bootstrapped_at(&self) -> Result<Option<(u64, BlockHash)>, StoreError> {
        self.db.bootstrapped_at()
    }

    /// A header chain holding this chain's genesis, to extend with peers' headers.
    pub fn header_chain(&self) -> HeaderChain {
        HeaderChain::new(self.index[&self.active[0]].header.clone())
    }

    /// The header and seal of stored block `hash` (served to a new node's header sync),
    /// with the size of the body read for them; `None` when its body is not stored (a
    /// bootstrapped node's blocks below its checkpoint).
    pub fn sealed_header(
        &self,
        hash: BlockHash,
    ) -> Result<Option<(SealedHeader, usize)>, ChainError> {
        let Some(body) = self.db.body(hash)? else {
            return Ok(None);
        };
        let b = Block::from_bytes(&body).map_err(|e| StoreError::corrupt("block", e))?;
        Ok(Some((
            SealedHeader {
                header: b.header,
                seal: b.seal,
            },
            body.len(),
        )))
    }

    /// Checks `batch` (consecutive headers from a peer) on top of `headers` and appends
    /// them: linkage, height, version, shard order, bits, time and proof of work, as for a
    /// block's header (`now`: the local clock). A batch that forks below the tip of
    /// `headers` replaces the headers above the fork when its chain has more work (checked
    /// on a copy: a bad header leaves `headers` as it was); a fork with less work is
    /// ignored. Returns how many headers were appended.
    pub fn extend_headers(
        &self,
        headers: &mut HeaderChain,
        batch: &[SealedHeader],
        now: u64,
    ) -> Result<usize, BlockError> {
        let Some(first) = batch.first() else {
            return Ok(0);
        };
        let prev = first.header.prev;
        let fork = headers
            .height_of(&prev)
            .ok_or(BlockError::PrevUnknown(prev))?;
        if fork == headers.height() {
            return self.append_headers(headers, batch, now);
        }
        let mut fresh = headers.clone();
        fresh.truncate(fork);
        let n = self.append_headers(&mut fresh, batch, now)?;
        if fresh.work() <= headers.work() {
            return Ok(0);
        }
        *headers = fresh;
        Ok(n)
    }

    fn append_headers(
        &self,
        headers: &mut HeaderChain,
        batch: &[SealedHeader],
        now: u64,
    ) -> Result<usize, BlockError> {
        for sh in batch {
            let tip = headers.height();
            let parent = headers.header(tip).expect("the tip is held");
            if sh.header.prev != headers.tip() {
                return Err(BlockError::PrevUnknown(sh.header.prev));
            }
            let mtp = headers.median_time_past(tip);
            self.check_header_rules(&sh.header, &sh.seal, parent, mtp, now)?;
            headers.push(sh.header.clone());
        }
        Ok(batch.len())
    }

    /// One page of the global state at active block `block` (within the undo depth): the
    /// items after `from`, about [`GLOBAL_PAGE_BYTES`]. Served by any node (every node
    /// runs the global lane). The state at `block` is built once per block and tip.
    pub fn global_page(
        &mut self,
        block: BlockHash,
        from: GlobalCursor,
    ) -> Result<GlobalPage, BootstrapError> {
        let not_served = |why: String| BootstrapError::NotServed(block, why);
        let height = self
            .index
            .get(&block)
            .map(|e| e.header.height)
            .filter(|h| self.hash_at(*h) == Some(block))
            .ok_or_else(|| not_served("not an active block".into()))?;
        let tip = self.tip_height();
        if tip - height >= self.params.undo_depth {
            return Err(not_served(format!(
                "height {height} is older than the last {} blocks",
                self.params.undo_depth
            )));
        }
        let base = self.global_base_height()?;
        if height < base {
            return Err(not_served(format!(
                "height {height} is below the stored global base ({base})"
            )));
        }
        // The tip's image with the changesets of the blocks above `block` undone.
        let tip_hash = self.tip_hash();
        let cached = self
            .global_pages
            .as_ref()
            .is_some_and(|(b, t, _)| *b == block && *t == tip_hash);
        if !cached {
            let corrupt = |e: String| BootstrapError::Store(StoreError::corrupt("global state", e));
            let mut image = self.global.clone();
            for h in (height + 1..=tip).rev() {
                if let Some(data) = self.db.global_changes(self.active[h as usize])? {
                    let undo = decode_undo(&data).map_err(|e| corrupt(e.to_string()))?;
                    image.apply(&undo).map_err(corrupt)?;
                }
            }
            self.global_pages = Some((block, tip_hash, image));
        }
        let image = &self.global_pages.as_ref().expect("set above").2;
        let mut items: Vec<GlobalItem> = Vec::new();
        let mut bytes = 0;
        let mut more = false;
        let after = from.clone().map(|(s, k)| (SystemId(s), k));
        for (s, k, v) in image.items_after(after) {
            if bytes >= GLOBAL_PAGE_BYTES || items.len() == MAX_GLOBAL_PAGE_ITEMS {
                more = true;
                break;
            }
            bytes += 1 + k.len() + v.len();
            items.push((s.0, k.to_vec(), v.to_vec()));
        }
        Ok(GlobalPage {
            block,
            from,
            items,
            more,
        })
    }

    /// Starts this brand-new partial node at the block at height `checkpoint` of `headers`
    /// (checked from genesis, see [`Chain::extend_headers`]). `package` is the
    /// checkpoint's package for a node that runs no shard (every chunk's roots, the proofs
    /// of what every shard sent the global lane), `global_own` the proof of the global
    /// lane's outbox to itself, and `items` the checkpoint's global state. All are checked
    /// against the checkpoint's header before anything is written.
    ///
    /// The node then runs the global lane from the checkpoint, and the shards it was
    /// configured with are left to state sync ([`Chain::shards_to_sync`]). Nothing at or
    /// below the checkpoint can be rolled back; those blocks' bodies are not stored.
    pub fn bootstrap(
        &mut self,
        headers: &HeaderChain,
        checkpoint: u64,
        package: &PartialBlock,
        global_own: &RelayProof,
        items: Vec<GlobalItem>,
    ) -> Result<(), BootstrapError> {
        if !self.is_partial() {
            return Err(BootstrapError::NotApplicable(
                "a full node replays every block from genesis",
            ));
        }
        if self.tip_height() != 0 {
            return Err(BootstrapError::NotApplicable("this node is past genesis"));
        }
        let bad = |why: String| BootstrapError::Bad(why);
        if headers.hash_at(0) != Some(self.active[0]) {
            return Err(bad("headers from another genesis".into()));
        }
        if checkpoint == 0 {
            return Err(bad("a checkpoint at genesis".into()));
        }
        let header = headers
            .header(checkpoint)
            .ok_or_else(|| bad(format!("no header at height {checkpoint}")))?
            .clone();
        let hash = header.hash();
        if package.block.header != header {
            return Err(bad("the package is for another block".into()));
        }
        let n = self.params.shard_order.shard_count();
        let foreign = package
            .check(&vec![false; n])
            .map_err(|e| bad(format!("the checkpoint's package: {e}")))?;
        if global_own.block != hash
            || !global_own.origin.is_global()
            || !global_own.target.is_global()
        {
            return Err(bad(
                "the global lane's proof is for another block or chunk".into()
            ));
        }
        let mut proofs = package.relays.clone();
        proofs.push(global_own.clone());
        let global_inbound =
            crate::partial::next_inbound_from_proofs(&header, ShardId::GLOBAL, &proofs)
                .map_err(|e| bad(format!("what the global lane runs next: {e}")))?;
        // The global state must give the global chunk's root.
        let changes: Vec<ItemChange> = items
            .iter()
            .map(|(s, k, v)| ItemChange {
                system: SystemId(*s),
                key: k.clone(),
                old: None,
                new: Some(v.clone()),
            })
            .collect();
        let mut image = GlobalImage::default();
        image
            .apply(&changes)
            .map_err(|e| bad(format!("global items: {e}")))?;
        drop(changes);
        let want = foreign.chunks[n].state_root;
        if image.digest() != want {
            return Err(BootstrapError::GlobalRootMismatch {
                want,
                got: image.digest(),
            });
        }
        // The contracts loaded from the items, before anything is written: they must give
        // the items back (as at open).
        let mut systems = self.systems.clone();
        for c in systems.iter_mut() {
            c.load(&image.items_of(c.id()))
                .map_err(|e| bad(format!("global items of {}: {e}", c.id())))?;
        }
        if let Some(stray) = image
            .system_ids()
            .into_iter()
            .find(|id| systems.get(*id).is_none())
        {
            return Err(bad(format!(
                "global items of {stray}, which is not installed"
            )));
        }
        if GlobalImage::of(&systems).digest() != image.digest() {
            return Err(bad(
                "the contracts loaded from the global items do not give them back".into(),
            ));
        }
        // The checkpoint's record, as a node running no shard would have stored it: the
        // global lane's own outbox (what waited, then what it deferred to itself) as
        // waiting, the shards' relays to the lane, every chunk's roots.
        let mut to_lane: Vec<&RelayProof> = package.relays.iter().collect();
        to_lane.sort_by_key(|p| p.origin.index());
        let emitted: Vec<Relay> = to_lane
            .iter()
            .flat_map(|p| p.relays.iter().cloned())
            .collect();
        let chunks: Vec<ChunkRoots> = foreign
            .chunks
            .iter()
            .map(|c| ChunkRoots {
                state_root: c.state_root,
                outbox_root: c.outbox_root,
            })
            .collect();
        let record = encode_outbound(
            std::slice::from_ref(&global_own.relays),
            std::slice::from_ref(&emitted),
            &[],
            &chunks,
        );
        let (inbound, routed) =
            StoredRelays::decode(&record, self.params.shard_order)?.next_inbound(n);
        if routed != global_inbound || inbound.iter().any(|l| !l.is_empty()) {
            return Err(bad(
                "the proven relays route differently from the record built of them".into(),
            ));
        }
        // Written: `chain.sqlite` first (the commit point), then the shard files, which a
        // restart completes (see `Chain::open`).
        let to_take_up: Vec<ShardId> = self
            .tracked_shards()
            .into_iter()
            .chain(self.adding.iter().copied())
            .collect();
        let stored: Vec<(&Header, [u8; 32])> = headers
            .up_to(checkpoint)
            .skip(1)
            .map(|(h, _, w)| (h, w.to_be_bytes()))
            .collect();
        let global_rows: Vec<GlobalItem> = image
            .items_after(None)
            .map(|(s, k, v)| (s.0, k.to_vec(), v.to_vec()))
            .collect();
        self.db
            .bootstrap(&stored, &record, &global_rows, &vec![0u8; n])?;
        for s in &mut self.shards {
            s.reset_to(checkpoint)?;
        }
        for (h, block, work) in headers.up_to(checkpoint).skip(1) {
            self.index.insert(
                block,
                IndexEntry {
                    header: h.clone(),
                    chainwork: work,
                    status: BlockStatus::Valid,
                },
            );
        }
        self.active = headers.up_to(checkpoint).map(|(_, b, _)| b).collect();
        self.tracked = vec![false; n];
        self.checkpoint = checkpoint;
        self.adding = to_take_up;
        self.inbound = inbound;
        self.global_inbound = global_inbound;
        self.systems = systems;
        self.global = image;
        self.mempool =
            Mempool::with_capacity(self.params.shard_order, self.config.mempool_per_shard);
        self.prepared = None;
        self.blocks_since_flush = 0;
        self.anchor = anchor::Anchors::default();
        self.last_fees = Vec::new();
        tracing::info!(
            height = checkpoint,
            block = %hash,
            global_items = global_rows.len(),
            waiting_calls = self.global_inbound.len(),
            "bootstrapped at a checkpoint: the shards are taken up by state sync next"
        );
        Ok(())
    }

    /// Completes a bootstrap interrupted after `chain.sqlite` was written: the shard files
    /// still below the checkpoint are emptied and put at it (none of them is run yet).
    pub(super) fn complete_bootstrap(&mut self) -> Result<(), ChainError> {
        let Some((height, _)) = self.db.bootstrapped_at()? else {
            return Ok(());
        };
        for s in &mut self.shards {
            if s.height() < height {
                if self.tracked[s.id().index()] {
                    return Err(StoreError::corrupt(
                        "shard",
                        format!(
                            "shard {} is below the bootstrap checkpoint {height} but run",
                            s.id()
                        ),
                    )
                    .into());
                }
                tracing::info!(shard = %s.id(), height, "completing the bootstrap of this shard's file");
                s.reset_to(height)?;
            }
        }
        Ok(())
    }
}
