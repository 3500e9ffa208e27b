//! Validating and connecting blocks: headers, execution (global lane then shards), the
//! durable commit, checkpoints and pruning.

use super::*;

impl Chain {
    pub(super) fn median_time_past(&self, hash: BlockHash) -> u64 {
        let mut times = Vec::with_capacity(11);
        let mut cur = Some(hash);
        while let Some(h) = cur {
            let Some(e) = self.index.get(&h) else { break };
            times.push(e.header.time);
            if times.len() == 11 || e.header.height == 0 {
                break;
            }
            cur = Some(e.header.prev);
        }
        times.sort_unstable();
        times[times.len() / 2]
    }

    /// The bits a block on top of `parent` must carry: fixed on regtest networks,
    /// ASERT anchored at genesis otherwise.
    pub fn next_bits(&self, parent: &Header) -> u32 {
        if self.params.fixed_difficulty {
            return self.params.pow_limit_bits;
        }
        crate::difficulty::Asert {
            pow_limit_bits: self.params.pow_limit_bits,
            anchor_time: self.params.genesis_time,
            anchor_height: 0,
            interval: self.params.block_interval_secs,
            halflife: self.params.asert_halflife_secs,
        }
        .next_bits(parent.height, parent.time)
    }

    pub(super) fn env_for(&self, header: &Header) -> BlockEnv {
        BlockEnv {
            time: header.time,
            prev: header.prev,
            hrp: self.params.network.address_hrp(),
            max_relays: self.params.max_relays_per_call as usize,
            log_contracts: self.config.log_contracts,
            keep_receipts: self.config.contract_receipts || self.config.log_contracts,
            height: header.height,
            miner: header.miner,
            subsidy: self.params.subsidy(header.height),
            order: self.params.shard_order,
            systems: self
                .systems
                .iter()
                .fold(0u64, |m, c| m | (1u64 << c.id().0)),
        }
    }

    /// Executes a block on top of the tip, global lane first, then every shard (nothing is
    /// applied).
    pub(super) fn execute(
        &mut self,
        header: &Header,
        txs: &[Vec<SignedTx>],
        mode: ExecMode,
        trusted: bool,
    ) -> Result<Executed, BlockError> {
        let env = self.env_for(header);
        let ctx = GlobalCtx {
            height: header.height,
            time: header.time,
        };
        let global = execute_global(
            &self.systems,
            &self.global,
            &ctx,
            &env,
            &self.global_inbound,
            self.params.shard_order,
            self.params.block_gas_global,
        )?;
        // A partial node takes the shards it does not run from the block's package.
        let foreign = self.foreign_for(header.hash())?;
        let tracked = &self.tracked;
        let params = &self.params;
        let inbound = &self.inbound;
        let payouts = &global.payouts;
        let mempool = &self.mempool;
        // Shards see the contracts as they were after the previous block.
        let contracts = self.systems.contracts();
        let sig_ok = |t: &SignedTx| trusted || mempool.has_verified(t) || t.verify_signature();
        let results = for_each_shard(&mut self.shards, self.config.threads, |store| {
            let i = store.id().index();
            if let Some(f) = foreign.as_ref().filter(|_| !tracked[i]) {
                return Ok(ShardOutcome::foreign(
                    store,
                    &f.chunks[i],
                    f.outbound[i].clone(),
                ));
            }
            // The signatures the mempool has not checked, as one BIP340 batch: if there are
            // none, or the batch holds, none needs checking as it executes (the mempool's
            // own are not looked up again); if not, each is checked alone as it executes,
            // and the first bad one refuses the block.
            let unchecked: Vec<_> = if trusted {
                Vec::new()
            } else {
                txs[i]
                    .iter()
                    .filter(|t| !mempool.has_verified(t))
                    .map(SignedTx::sig_check)
                    .collect()
            };
            let all_ok = unchecked.is_empty()
                || (unchecked.len() >= crate::address::batch::MIN_BATCH
                    && crate::address::batch::verify_batch(&unchecked));
            let shard_sig_ok = |t: &SignedTx| all_ok || sig_ok(t);
            let out = execute_shard(
                store,
                params,
                &env,
                contracts,
                &inbound[i],
                &payouts[i],
                &txs[i],
                mode,
                &shard_sig_ok,
            );
            store.end_reads()?;
            out
        });
        let outcomes = results.into_iter().collect::<Result<Vec<_>, ExecError>>()?;
        Ok(Executed { global, outcomes })
    }

    pub(super) fn check_header(&self, block: &Block, now: u64) -> Result<Work, BlockError> {
        let h = &block.header;
        let hash = h.hash();
        if let Some(e) = self.index.get(&hash) {
            return Err(if e.status == BlockStatus::Invalid {
                BlockError::KnownInvalid(hash)
            } else {
                BlockError::Duplicate(hash)
            });
        }
        let parent = self
            .index
            .get(&h.prev)
            .ok_or(BlockError::PrevUnknown(h.prev))?;
        if parent.status == BlockStatus::Invalid {
            return Err(BlockError::InvalidAncestor(h.prev));
        }
        let mtp = self.median_time_past(h.prev);
        self.check_header_rules(h, &block.seal, &parent.header, mtp, now)?;
        if block.txs.len() != self.params.shard_order.shard_count() {
            return Err(BlockError::BadShardCount {
                expected: self.params.shard_order.shard_count(),
                got: block.txs.len(),
            });
        }
        for (i, list) in block.txs.iter().enumerate() {
            if list.len() > self.params.max_txs_per_shard {
                return Err(BlockError::TooManyTxs {
                    shard: ShardId(i as u16),
                    count: list.len(),
                    limit: self.params.max_txs_per_shard,
                });
            }
        }
        // A partial node's package check compared every tracked shard's transactions with
        // its chunk, and the chunks with this root.
        if !self.is_partial() && block.compute_tx_root_threads(self.config.threads) != h.tx_root {
            return Err(BlockError::BadTxRoot);
        }
        Ok(parent.chainwork + h.work())
    }

    /// The rules a header must meet on top of `parent` (`mtp`: the median time of the
    /// eleven blocks up to the parent), its seal (proof of work) included; `now` is the
    /// local clock. Shared by blocks and by a new node's header sync.
    pub(super) fn check_header_rules(
        &self,
        h: &Header,
        seal: &[u8],
        parent: &Header,
        mtp: u64,
        now: u64,
    ) -> Result<(), BlockError> {
        if h.version != 1 {
            return Err(BlockError::BadVersion(h.version));
        }
        if h.height != parent.height + 1 {
            return Err(BlockError::BadHeight {
                expected: parent.height + 1,
                got: h.height,
            });
        }
        if h.order != self.params.shard_order {
            return Err(BlockError::BadOrder {
                expected: self.params.shard_order.get(),
                got: h.order.get(),
            });
        }
        let bits = self.next_bits(parent);
        if h.bits != bits {
            return Err(BlockError::BadBits {
                expected: bits,
                got: h.bits,
            });
        }
        if h.time <= mtp {
            return Err(BlockError::TimeTooOld { time: h.time, mtp });
        }
        if h.time > now.saturating_add(self.params.max_future_secs) {
            return Err(BlockError::TimeTooNew {
                time: h.time,
                now,
                max_future: self.params.max_future_secs,
            });
        }
        self.sealer.verify(h, seal)?;
        Ok(())
    }

    /// Connects `block` on top of the tip: executes (or reuses the template's execution),
    /// checks the roots, writes the log (when `log`), then applies to the shard caches.
    pub(super) fn connect(
        &mut self,
        block: &Block,
        trusted: bool,
        log: Log,
    ) -> Result<(), BlockError> {
        let started = std::time::Instant::now();
        self.connect_inner(block, trusted, log)?;
        self.note_connected(block)?;
        self.stats.blocks_connected += 1;
        self.stats.txs_connected += block.tx_count() as u64;
        self.stats.connect_secs += started.elapsed().as_secs_f64();
        Ok(())
    }

    pub(super) fn connect_inner(
        &mut self,
        block: &Block,
        trusted: bool,
        log: Log,
    ) -> Result<(), BlockError> {
        let hash = block.header.hash();
        let executed = match self.prepared.take() {
            Some(p) if p.hash == hash => Executed {
                global: p.global,
                outcomes: p.outcomes,
            },
            _ => self.execute(&block.header, &block.txs, ExecMode::Validate, trusted)?,
        };
        let state_root = executed.state_root();
        if state_root != block.header.state_root {
            return Err(BlockError::BadStateRoot {
                header: block.header.state_root,
                computed: state_root,
            });
        }
        let outbox_root = executed.outbox_root();
        if outbox_root != block.header.outbox_root {
            return Err(BlockError::BadOutboxRoot {
                header: block.header.outbox_root,
                computed: outbox_root,
            });
        }
        let chunks: Vec<ChunkRoots> = executed
            .outcomes
            .iter()
            .map(|o| ChunkRoots {
                state_root: o.digest,
                outbox_root: o.outbox_root,
            })
            .chain([ChunkRoots {
                state_root: executed.global.digest,
                outbox_root: executed.global.outbox_root,
            }])
            .collect();
        let Executed {
            global,
            mut outcomes,
        } = executed;
        let height = block.header.height;
        let changes = (!global.changes.is_empty()).then(|| encode_changes(&global.changes));
        let lane_reverted = global
            .contract_receipts
            .iter()
            .filter(|r| r.error.is_some())
            .count() as u64;
        self.last_counts = (
            global.contract_receipts.len() as u64
                + outcomes.iter().map(|o| o.micro_txs).sum::<u64>(),
            lane_reverted + outcomes.iter().map(|o| o.reverted).sum::<u64>(),
        );
        self.last_chunk_micro = outcomes
            .iter()
            .map(|o| o.micro_txs)
            .chain([global.contract_receipts.len() as u64])
            .collect();
        let mut contract_receipts: Vec<ContractReceipt> = global.contract_receipts;
        for o in &mut outcomes {
            contract_receipts.append(&mut o.receipts);
        }
        let stored: Vec<(Txid, String)> =
            if self.config.contract_receipts && !matches!(log, Log::Replay) {
                // What each transaction paid (kind "fee"), then the contract receipts.
                let fee_receipts = outcomes.iter().flat_map(|o| {
                    o.fee_receipts.iter().map(|(txid, c)| {
                        let mut v = serde_json::to_value(c).unwrap_or_default();
                        v["kind"] = serde_json::json!("fee");
                        (*txid, v.to_string())
                    })
                });
                fee_receipts
                    .chain(
                        contract_receipts
                            .iter()
                            .map(|r| (r.txid, serde_json::to_string(r).unwrap_or_default())),
                    )
                    .collect()
            } else {
                Vec::new()
            };
        let n = self.shards.len();
        // What waits for the next block: the inbound relays that did not fit (first in line),
        // then what this block emitted.
        let mut outbound = Vec::with_capacity(2 * n + 1);
        let waiting: usize =
            outcomes.iter().map(|o| o.waiting.len()).sum::<usize>() + global.waiting.len();
        self.last_fees = outcomes
            .iter()
            .map(|o| ShardFees {
                base_fee: o.base_fee,
                next_base_fee: o.next_base_fee,
                gas_used: o.gas_used,
                burned: o.burned,
                tips: o.fees,
                waiting: o.waiting.len() as u64,
            })
            .collect();
        self.last_global_waiting = global.waiting.len() as u64;
        let base_fees: Vec<GasPrice> = outcomes.iter().map(|o| o.base_fee).collect();
        self.stats.relays_waiting = waiting as u64;
        for o in &mut outcomes {
            outbound.push(std::mem::take(&mut o.waiting));
        }
        outbound.push(global.waiting);
        let slots: Vec<std::sync::Mutex<Option<ShardOutcome>>> = outcomes
            .into_iter()
            .map(|mut o| {
                outbound.push(std::mem::take(&mut o.outbound));
                std::sync::Mutex::new(Some(o))
            })
            .collect();
        // The shards apply the block in memory while this thread makes it durable in the
        // log (mostly waiting on the disk); if the log write fails, the shards roll the
        // block back from their in-memory undo records and nothing happened.
        let threads = self.config.threads;
        // With more than one thread, a block's log write overlaps with what comes next
        // (the next block's execution); `flush` and every other use of the database wait
        // for it (see `ChainDb::connect_in_background`).
        let pipelined = threads > 1;
        let (shards, db) = (&mut self.shards, &mut self.db);
        let logged = std::thread::scope(|scope| {
            let applying = scope.spawn(|| {
                for_each_shard(shards, threads, |store| {
                    let o = slots[store.id().index()]
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .take()
                        .expect("one outcome per shard");
                    store.apply(height, &o.changes, o.state_changes, o.lthash);
                });
            });
            let logged = if matches!(log, Log::Replay) {
                Ok(())
            } else {
                // Encoded here, so that it overlaps with the shards' apply too.
                let new_block = match log {
                    Log::New(work) => Some((block.to_bytes(), work.to_be_bytes())),
                    _ => None,
                };
                let relays = encode_outbound(
                    &outbound[..n + 1],
                    &outbound[n + 1..],
                    &global.emitted,
                    &chunks,
                );
                let block_fees: Vec<u8> = base_fees
                    .iter()
                    .flat_map(|f| f.to_msat().to_le_bytes())
                    .collect();
                let job = ConnectJob {
                    height,
                    hash,
                    relays,
                    new_block: new_block.map(|(b, w)| (block.header.clone(), b, w)),
                    global_changes: changes,
                    receipts: global.receipts.clone(),
                    contract_receipts: stored,
                    block_fees: Some(block_fees),
                };
                if pipelined {
                    // Inserted and fsynced on the log thread while the next block executes.
                    db.connect_in_background(job)
                } else {
                    db.connect(&job.record())
                }
            };
            if let Err(panic) = applying.join() {
                std::panic::resume_unwind(panic);
            }
            logged
        });
        if let Err(e) = logged {
            for s in &mut self.shards {
                s.undo_top()?;
            }
            return Err(e.into());
        }
        if self.db.checkpoint_due() {
            self.request_checkpoint(0);
        }
        self.last_contract_receipts = contract_receipts;
        for r in &global.receipts {
            if let Some(e) = &r.error {
                tracing::debug!(txid = %r.txid, contract = %r.contract, error = %e, "system call failed");
            }
        }
        if let Some(state) = global.contracts {
            self.systems = state;
        }
        self.global
            .apply(&global.changes)
            .map_err(|e| StoreError::corrupt("global state", e))?;
        self.last_global_changes = global.changes.len();
        debug_assert_eq!(self.global.digest(), global.digest);
        // Tests (debug builds) check that the contracts reported every item they wrote: their
        // whole state, re-read, commits to what the changesets built.
        #[cfg(debug_assertions)]
        if self.global.len() < 5_000 {
            assert_eq!(
                GlobalImage::of(&self.systems).digest(),
                self.global.digest(),
                "a system contract wrote an item it did not report"
            );
        }
        // The relays this block ran.
        crate::dropper::drop_later(std::mem::take(&mut self.inbound));
        (self.inbound, self.global_inbound) = {
            let emitted = outbound.split_off(n + 1);
            route(
                outbound.into_iter().flatten(),
                emitted.into_iter().flatten().chain(global.deferred),
                n,
            )
        };
        self.active.push(hash);
        if let Some(e) = self.index.get_mut(&hash) {
            e.status = BlockStatus::Valid;
        }
        // Indexed in memory now, on disk before the shards' state passes this block (a
        // replayed block is indexed again: its entries may not have reached the disk).
        if self.config.txindex {
            for (s, list) in block.txs.iter().enumerate() {
                for (i, t) in list.iter().enumerate() {
                    self.txindex_pending
                        .insert(t.txid(), (hash, s as u16, i as u32));
                }
            }
            if self.txindex_pending.len() >= TXINDEX_PENDING_MAX {
                self.write_txindex()?;
            }
        }
        if !self.mempool.is_empty() {
            for list in &block.txs {
                for t in list {
                    self.mempool.remove_below(&t.tx.from, t.tx.nonce + 1);
                }
            }
        }
        self.blocks_since_flush += 1;
        let dirty: usize = self.shards.iter().map(ShardStore::dirty_len).sum();
        if self.blocks_since_flush >= self.config.flush_every_blocks
            || dirty >= self.config.flush_dirty_limit
        {
            self.flush()?;
        }
        Ok(())
    }

    /// Waits until every connected block is in the durable block log. With more than one
    /// thread, a block's log write (insert and fsync) runs on after [`Chain::submit`]
    /// returns, overlapping with the next block's work; anything that tells others a block
    /// was accepted waits for this first. Every use of the database, [`Chain::flush`] and
    /// closing the chain wait for it too.
    pub fn sync_log(&self) -> Result<(), StoreError> {
        self.db.sync()
    }

    /// Set when a background block-log write fails (the chain then refuses everything
    /// until reopened): a node watches it to stop itself, without taking its chain's lock.
    pub fn log_fault(&self) -> crate::store::LogFault {
        self.db.fault()
    }

    /// [`Chain::submit`], then [`Chain::sync_log`]: what to call before telling others the
    /// block was accepted.
    pub fn submit_logged(&mut self, block: Block, now: u64) -> Result<SubmitOutcome, BlockError> {
        let outcome = self.submit(block, now)?;
        self.sync_log()?;
        Ok(outcome)
    }

    /// Writes every shard's state (a checkpoint), then records the height in `chain.sqlite`.
    /// The transaction index of the blocks it covers is written first.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        // The shards' state never gets ahead of the durable block log.
        self.db.sync()?;
        self.write_txindex()?;
        let results = for_each_shard(&mut self.shards, self.config.threads, ShardStore::flush);
        for r in results {
            r?;
        }
        for i in 0..self.shards.len() {
            self.request_checkpoint(1 + i);
        }
        self.db
            .set_meta("state_height", &self.tip_height().to_le_bytes())?;
        self.blocks_since_flush = 0;
        self.prune_global()?;
        Ok(())
    }

    /// Writes the transaction-index entries waiting in memory, in one sorted batch.
    pub(super) fn write_txindex(&mut self) -> Result<(), StoreError> {
        if self.txindex_pending.is_empty() {
            return Ok(());
        }
        let mut entries: Vec<TxIndexEntry> = self
            .txindex_pending
            .iter()
            .map(|(txid, (block, shard, pos))| (*txid, *block, *shard, *pos))
            .collect();
        self.db.index_txs(&mut entries)?;
        self.txindex_pending.clear();
        if self.db.checkpoint_due() {
            self.request_checkpoint(0);
        }
        Ok(())
    }

    /// Where a transaction was included: block, shard, position (if indexed).
    pub(super) fn tx_location(
        &self,
        txid: Txid,
    ) -> Result<Option<(BlockHash, u16, u32)>, StoreError> {
        match self.txindex_pending.get(&txid) {
            Some(at) => Ok(Some(*at)),
            None => self.db.tx_location(txid),
        }
    }

    pub(super) fn request_checkpoint(&self, db: usize) {
        if let Some(c) = &self.checkpointer {
            c.request(db);
        }
    }

    /// Drops stored global states and relays that no reorg within the undo depth can need:
    /// relays of blocks below `tip - undo_depth`, and global states below the newest active
    /// one at or under it.
    pub(super) fn prune_global(&mut self) -> Result<(), StoreError> {
        let Some(horizon) = self.tip_height().checked_sub(self.params.undo_depth) else {
            return Ok(());
        };
        // Relays below the horizon: no rollback reaches them, and a restart starts at this
        // checkpoint (the tip) at the lowest.
        let pruned = self.db.prune_relays(horizon)?;
        if pruned > 0 {
            tracing::debug!(pruned, below = horizon, "pruned stored relays");
        }
        // The global state's base moves up to the horizon: the changesets of the active
        // blocks up to it are folded into the base items.
        let base = self.global_base_height()?;
        if horizon > base {
            let mut folded = Vec::new();
            for h in base + 1..=horizon {
                if let Some(data) = self.db.global_changes(self.active[h as usize])? {
                    folded.extend(
                        decode_changes(&data)
                            .map_err(|e| StoreError::corrupt("global state", e))?,
                    );
                }
            }
            self.db.advance_global_base(horizon, &folded)?;
        }
        Ok(())
    }

    pub(super) fn global_base_height(&self) -> Result<u64, StoreError> {
        self.db
            .global_base_height()?
            .ok_or_else(|| StoreError::corrupt("global state", "no base stored"))
    }
}
