//! Read access: the tip, blocks, accounts, receipts, fees and contract state.

use super::*;

impl Chain {
    /// Chain parameters.
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Active tip height.
    pub fn tip_height(&self) -> u64 {
        self.active.len() as u64 - 1
    }

    /// Active tip hash.
    pub fn tip_hash(&self) -> BlockHash {
        *self.active.last().expect("genesis always present")
    }

    /// Active tip header.
    pub fn tip_header(&self) -> &Header {
        &self.index[&self.tip_hash()].header
    }

    /// Cumulative work of the active chain.
    pub fn tip_work(&self) -> Work {
        self.index[&self.tip_hash()].chainwork
    }

    /// Hash of the active block at `height`.
    pub fn hash_at(&self, height: u64) -> Option<BlockHash> {
        self.active.get(height as usize).copied()
    }

    /// A stored block by hash.
    pub fn block(&self, hash: BlockHash) -> Result<Option<Block>, ChainError> {
        self.db
            .body(hash)?
            .map(|b| Block::from_bytes(&b).map_err(|e| StoreError::corrupt("block", e).into()))
            .transpose()
    }

    /// A header by hash.
    pub fn header(&self, hash: &BlockHash) -> Option<&Header> {
        self.index.get(hash).map(|e| &e.header)
    }

    /// The proof of every relay `origin` sent `target` in active block `hash` (see
    /// [`crate::proof`]), from the block's stored outboxes: available for the blocks within
    /// the undo depth of the tip.
    pub fn relay_proof(
        &self,
        hash: BlockHash,
        origin: ShardId,
        target: ShardId,
    ) -> Result<crate::proof::RelayProof, RelayProofQueryError> {
        let order = self.params.shard_order;
        for p in [origin, target] {
            crate::outbox::position(p, order).map_err(|_| RelayProofQueryError::OutOfRange(p))?;
        }
        let (header, stored) = self.proof_source(hash)?;
        if !origin.is_global() && !self.tracks(origin) {
            return Err(ChainError::from(StoreError::NotTracked("a proof from this shard")).into());
        }
        Self::prover(header, &stored, origin, hash)?
            .prove(target)
            .ok_or(RelayProofQueryError::OutOfRange(target))
    }

    /// Active block `hash`'s header and its stored relays and chunk roots, for proofs (kept
    /// for the undo depth).
    pub(super) fn proof_source(
        &self,
        hash: BlockHash,
    ) -> Result<(&Header, StoredRelays), RelayProofQueryError> {
        let header = self
            .index
            .get(&hash)
            .map(|e| &e.header)
            .filter(|h| self.hash_at(h.height) == Some(hash))
            .ok_or(RelayProofQueryError::NotActive(hash))?;
        let Some(data) = self.db.relays(hash).map_err(ChainError::from)? else {
            return Err(RelayProofQueryError::Pruned {
                hash,
                height: header.height,
                kept: self.params.undo_depth,
            });
        };
        let stored =
            StoredRelays::decode(&data, self.params.shard_order).map_err(ChainError::from)?;
        Ok((header, stored))
    }

    /// The prover of `origin`'s outbox in block `hash`, from its stored record.
    pub(super) fn prover(
        header: &Header,
        stored: &StoredRelays,
        origin: ShardId,
        hash: BlockHash,
    ) -> Result<crate::proof::Prover, RelayProofQueryError> {
        let roots: Vec<Hash256> = stored.chunks.iter().map(|c| c.outbox_root).collect();
        // A chunk's outbox: its waiting relays, then what it emitted.
        let of_origin: Vec<Relay> = stored
            .waiting
            .iter()
            .filter(|r| r.target == origin)
            .chain(stored.emitted.iter().filter(|r| r.origin == origin))
            .cloned()
            .collect();
        crate::proof::Prover::new(header, &roots, of_origin, origin)
            .ok_or(RelayProofQueryError::Corrupt(hash))
    }

    /// The mempool.
    pub fn mempool(&self) -> &Mempool {
        &self.mempool
    }

    /// Relays waiting for the next block, per target shard.
    pub fn inbound(&self) -> &[Vec<Relay>] {
        &self.inbound
    }

    /// Contract calls waiting for the next block's global lane.
    pub fn global_inbound(&self) -> &[Relay] {
        &self.global_inbound
    }

    /// An installed system contract, at the tip (downcast with `as_any` for queries).
    pub fn system(&self, id: SystemId) -> Option<&dyn SystemContract> {
        self.systems.get(id)
    }

    /// Commitment to the global state at the tip.
    pub fn global_digest(&self) -> Hash256 {
        self.global.digest()
    }

    /// The receipt of a contract call made by `txid`, from the active chain: the block whose
    /// global lane ran it, its height, and the result. `None` if not run (yet).
    pub fn call_receipt(
        &self,
        txid: Txid,
    ) -> Result<Option<(BlockHash, u64, Receipt)>, StoreError> {
        for (block, contract, error) in self.db.receipts(txid)? {
            let Some(h) = self.index.get(&block).map(|e| e.header.height) else {
                continue;
            };
            if self.hash_at(h) == Some(block) {
                return Ok(Some((
                    block,
                    h,
                    Receipt {
                        txid,
                        contract: SystemId(contract),
                        error,
                    },
                )));
            }
        }
        Ok(None)
    }

    /// An account at the tip (zero balance and nonce if it never existed).
    pub fn account(&mut self, addr: &Address) -> Result<Account, StoreError> {
        let s = shard_of(addr, self.params.shard_order);
        if !self.tracks(s) {
            return Err(StoreError::NotTracked("an account on this shard"));
        }
        Ok(self.shards[s.index()].get(addr)?.unwrap_or_default())
    }

    /// The asset wallets of `addr` at the tip (assets other than rxBTC it holds), by asset.
    pub fn asset_balances(
        &mut self,
        addr: &Address,
    ) -> Result<Vec<(crate::asset::AssetId, u64)>, StoreError> {
        use crate::asset;
        let s = shard_of(addr, self.params.shard_order);
        if !self.tracks(s) {
            return Err(StoreError::NotTracked("an account on this shard"));
        }
        self.shards[s.index()]
            .state_with_prefix(&asset::wallet_prefix(Some(addr)))?
            .into_iter()
            .map(|(k, v)| {
                let (_, a) = asset::parse_wallet_key(k.as_bytes())
                    .ok_or_else(|| StoreError::corrupt("asset wallet", "key"))?;
                let n = asset::amount_of(Some(&v))
                    .ok_or_else(|| StoreError::corrupt("asset wallet", "not 8 bytes"))?;
                Ok((a, n))
            })
            .collect()
    }

    /// How much of `asset` the wallet of `addr` holds at the tip.
    pub fn asset_balance(
        &mut self,
        addr: &Address,
        asset: crate::asset::AssetId,
    ) -> Result<u64, StoreError> {
        let s = shard_of(addr, self.params.shard_order);
        if !self.tracks(s) {
            return Err(StoreError::NotTracked("an account on this shard"));
        }
        let row = self.shards[s.index()].get_state(&crate::asset::wallet_key(addr, asset))?;
        crate::asset::amount_of(row.as_deref())
            .ok_or_else(|| StoreError::corrupt("asset wallet", "not 8 bytes"))
    }

    /// Per-shard row-cache figures (hits, misses, entries), in shard order.
    pub fn cache_stats(&self) -> Vec<crate::store::CacheStats> {
        self.shards.iter().map(ShardStore::cache_stats).collect()
    }

    /// Per-shard state digests at the tip.
    pub fn shard_roots(&self) -> Vec<Hash256> {
        self.shards.iter().map(ShardStore::digest).collect()
    }

    /// Every account of every shard (tests and audits: reads all state).
    pub fn all_accounts(&mut self) -> Result<Vec<(Address, Account)>, StoreError> {
        let mut all = Vec::new();
        for s in &mut self.shards {
            all.extend(s.all_accounts()?);
        }
        all.sort_by_key(|a| a.0);
        Ok(all)
    }

    /// Each shard's fee market state at the tip (the base fee of the next block, and what
    /// it burned since genesis).
    pub fn fee_states(&mut self) -> Result<Vec<crate::fee::FeeState>, StoreError> {
        let key = crate::fee::fee_key();
        let params = &self.params;
        self.shards
            .iter_mut()
            .map(|s| {
                let row = s.get_state(&key)?;
                crate::fee::FeeState::from_stored(params, row.as_deref())
                    .map_err(|e| StoreError::corrupt("fee market row", e))
            })
            .collect()
    }

    /// Tips the prepared template with header hash `hash` pays its miner (what
    /// [`Chain::template`] executed; `None` for any other block).
    pub fn template_tips(&self, hash: BlockHash) -> Option<Amount> {
        let p = self.prepared.as_ref().filter(|p| p.hash == hash)?;
        checked_sum(p.outcomes.iter().map(|o| o.fees))
    }

    /// The base fee the next block charges on `shard`.
    pub fn base_fee(&mut self, shard: ShardId) -> Result<GasPrice, StoreError> {
        let row = self.shards[shard.index()].get_state(&crate::fee::fee_key())?;
        crate::fee::FeeState::from_stored(&self.params, row.as_deref())
            .map(|f| f.base_fee)
            .map_err(|e| StoreError::corrupt("fee market row", e))
    }

    /// A fee estimate for `shard`: the base fee of the next block and a forecast for the
    /// following `blocks` ones if the shard's pending transactions keep it as full as they
    /// would fill it now (an upper bound for a wallet's max fee), with the tip that would
    /// have placed a transaction in the upper half of the shard's pending ones.
    pub fn estimate_fee(&mut self, shard: ShardId, blocks: u64) -> Result<FeeEstimate, StoreError> {
        let base_fee = self.base_fee(shard)?;
        let pending: Vec<&SignedTx> = self.mempool.shard_txs(shard).collect();
        let pending_gas: u64 = pending.iter().map(|t| t.tx.gas_limit).sum();
        let mut forecast = Vec::with_capacity(blocks as usize);
        let (mut fee, mut left) = (base_fee, pending_gas);
        for _ in 0..blocks {
            let used = left.min(self.params.block_gas_per_shard);
            left -= used;
            fee = crate::fee::next_base_fee(&self.params, fee, used);
            forecast.push(fee);
        }
        let mut tips: Vec<GasPrice> = pending
            .iter()
            .filter_map(|t| crate::mempool::effective_tip(t, base_fee))
            .collect();
        tips.sort_unstable();
        let tip = tips
            .get(tips.len() / 2)
            .copied()
            .unwrap_or(GasPrice::ZERO)
            .max(GasPrice::from_msat(1));
        Ok(FeeEstimate {
            shard,
            base_fee,
            forecast,
            tip,
            pending: pending.len(),
            pending_gas,
        })
    }

    /// Each shard's fee market in the last connected block (empty before the first block
    /// connected since open).
    pub fn last_fees(&self) -> &[ShardFees] {
        &self.last_fees
    }

    /// Global-lane calls the last connected block left waiting.
    pub fn global_waiting(&self) -> u64 {
        self.last_global_waiting
    }

    /// Counters since open.
    pub fn stats(&self) -> ChainStats {
        self.stats
    }

    /// Where a transaction stands: pending, in an active block, in a block that is no
    /// longer active, or unknown (never seen, or not indexed).
    pub fn tx_status(&self, txid: Txid) -> Result<TxStatus, StoreError> {
        if self.mempool.contains(&txid) {
            return Ok(TxStatus::Mempool);
        }
        let Some((block, shard, pos)) = self.tx_location(txid)? else {
            return Ok(TxStatus::Unknown);
        };
        let Some(h) = self.index.get(&block).map(|e| e.header.height) else {
            return Ok(TxStatus::Unknown);
        };
        if self.hash_at(h) == Some(block) {
            Ok(TxStatus::Confirmed {
                block,
                height: h,
                shard: ShardId(shard),
                position: pos,
                confirmations: self.tip_height() - h + 1,
            })
        } else {
            Ok(TxStatus::Unknown)
        }
    }

    /// The deployed contracts and their global state, at the tip.
    pub fn contracts(&self) -> &ContractsSystem {
        self.systems.contracts()
    }

    /// A contract's state for one target as JSON (`None` when no contract is there).
    pub fn contract_state(
        &mut self,
        contract: &Address,
        target: &crate::contract::Target,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let hrp = self.params.network.address_hrp();
        let Some(d) = self.contracts().get(contract).cloned() else {
            return Ok(None);
        };
        if *target == crate::contract::Target::Global {
            return Ok(self.contracts().global_json(contract, hrp));
        }
        let shard = target.shard(self.params.shard_order);
        let key = target.state_key(contract);
        let store = &mut self.shards[shard.index()];
        let row = store.get_state(&key)?;
        let mut failure = None;
        let mut elem = |var: u16, k: &crate::lang::layout::ElemKey| {
            store
                .get_state(&crate::contract::elems::content_key(&key, var, k))
                .map_err(|e| {
                    let m = e.to_string();
                    failure = Some(e);
                    m
                })
        };
        let json =
            crate::contract::abi::row_json(&d.code, target.scope(), row.as_deref(), &mut elem, hrp);
        if let Some(e) = failure {
            return Err(e);
        }
        json.map(Some)
            .map_err(|e| StoreError::corrupt("contract state", e))
    }

    /// Every contract state row of every shard, sorted by key (tests and audits).
    pub fn all_contract_state(
        &mut self,
    ) -> Result<Vec<(crate::store::StateKey, Vec<u8>)>, StoreError> {
        let mut all = Vec::new();
        for s in &mut self.shards {
            // Rows under contract address zero are the chain's own (fee state, what
            // contracts hold, asset wallets and issue counts; see crate::asset).
            all.extend(
                s.all_state()?
                    .into_iter()
                    .filter(|(k, _)| k.as_bytes()[..32] != [0u8; 32]),
            );
        }
        all.sort();
        Ok(all)
    }

    /// Writes contract state outside any block (simulations and benchmarks only: a replay
    /// of the block log does not reproduce it, so never use this on a node).
    pub fn force_contract_state(
        &mut self,
        contract: &Address,
        target: &crate::contract::Target,
        vals: Vec<crate::lang::value::Value>,
    ) -> Result<(), String> {
        self.prepared = None;
        if *target == crate::contract::Target::Global {
            let c = self.systems.contracts_mut();
            c.force_global(contract, vals)?;
            let written = c.take_changes();
            let changes = self.global.diff(SystemId::CONTRACTS, written);
            self.global.apply(&changes)?;
            return Ok(());
        }
        let d = self
            .contracts()
            .get(contract)
            .cloned()
            .ok_or("no such contract")?;
        let scope = target.scope();
        let shard = target.shard(self.params.shard_order);
        let store = &mut self.shards[shard.index()];
        let key = target.state_key(contract);
        let old = match store.get_state(&key).map_err(|e| e.to_string())? {
            Some(b) => {
                crate::lang::vm::decode_row(&d.code, scope, &b).map_err(|e| e.to_string())?
            }
            None => crate::lang::vm::default_row(&d.code, scope),
        };
        let mut elem = |var: u16, k: &crate::lang::layout::ElemKey| {
            store
                .get_state(&crate::contract::elems::content_key(&key, var, k))
                .map_err(|e| e.to_string())
        };
        let (row, elems) =
            crate::lang::layout::split_values(&d.code, scope, &vals, &old, &mut elem)?;
        let row = crate::lang::vm::encode_row(&d.code, scope, &row).map_err(|e| e.to_string())?;
        for w in elems {
            store
                .force_state(
                    crate::contract::elems::content_key(&key, w.var, &w.key),
                    w.value,
                )
                .map_err(|e| e.to_string())?;
        }
        store.force_state(key, row).map_err(|e| e.to_string())
    }

    /// Contract receipts of the last connected block (empty unless the chain keeps receipts
    /// or logs: see [`ChainConfig::contract_receipts`]).
    pub fn last_contract_receipts(&self) -> &[ContractReceipt] {
        &self.last_contract_receipts
    }

    /// Items of the system contracts' state (peg and contract registry) at the tip.
    pub fn global_items(&self) -> usize {
        self.global.len()
    }

    /// Items the last connected block's global lane changed (what its changeset stores).
    pub fn last_global_changes(&self) -> usize {
        self.last_global_changes
    }

    /// Contract micro-transactions run, and how many of them were reverted, in the last
    /// connected block (counted whether or not receipts are kept).
    pub fn last_micro_txs(&self) -> (u64, u64) {
        self.last_counts
    }

    /// Micro-transactions each shard ran in the last connected block, in shard order, then
    /// the global lane's (empty before the first block this process connected).
    pub fn last_micro_by_chunk(&self) -> &[u64] {
        &self.last_chunk_micro
    }

    /// Stored contract receipts of `txid` (JSON), from blocks of the active chain, with the
    /// height of the block that ran each.
    pub fn contract_receipts(
        &self,
        txid: Txid,
    ) -> Result<Vec<(u64, serde_json::Value)>, StoreError> {
        Ok(self
            .stored_receipts(txid)?
            .into_iter()
            .filter(|(_, v)| v["kind"] != "fee")
            .collect())
    }

    /// What `txid` paid (gas used, base fee, burned, tip, refund, escrowed) and the height of
    /// its block, for a transaction on the active chain: a contract transaction's from its
    /// stored receipt, a transfer's or system call's computed from its block's base fee
    /// (needs the transaction index).
    pub fn fee_receipt(&self, txid: Txid) -> Result<Option<(u64, serde_json::Value)>, StoreError> {
        if let Some(r) = self
            .stored_receipts(txid)?
            .into_iter()
            .find(|(_, v)| v["kind"] == "fee")
        {
            return Ok(Some(r));
        }
        let Some((block, shard, pos)) = self.tx_location(txid)? else {
            return Ok(None);
        };
        let Some(h) = self.index.get(&block).map(|e| e.header.height) else {
            return Ok(None);
        };
        if self.hash_at(h) != Some(block) {
            return Ok(None);
        }
        let body = self
            .db
            .body(block)?
            .map(|b| Block::from_bytes(&b).map_err(|e| StoreError::corrupt("block", e)))
            .transpose()?;
        let (Some(fees), Some(b)) = (self.db.block_fees(block)?, body) else {
            return Ok(None);
        };
        let Some(tx) = b.txs.get(shard as usize).and_then(|l| l.get(pos as usize)) else {
            return Ok(None);
        };
        if matches!(
            tx.tx.payload,
            Payload::Deploy { .. } | Payload::ContractCall { .. }
        ) {
            return Ok(None);
        }
        let Some(&base) = fees.get(shard as usize) else {
            return Ok(None);
        };
        let base = GasPrice::from_msat(base);
        let t = &tx.tx;
        let charge = crate::fee::effective_price(base, t.max_fee, t.max_tip)
            .ok()
            .zip(t.max_fee_total())
            .and_then(|(price, reserved)| {
                crate::fee::charge(
                    reserved,
                    crate::contract::intrinsic_gas(&t.payload),
                    base,
                    price,
                )
            })
            .ok_or_else(|| {
                StoreError::corrupt(
                    "fee receipt",
                    "a confirmed transaction's charge does not compute",
                )
            })?;
        let mut v = serde_json::to_value(charge).unwrap_or_default();
        v["kind"] = serde_json::json!("fee");
        Ok(Some((h, v)))
    }

    pub(super) fn stored_receipts(
        &self,
        txid: Txid,
    ) -> Result<Vec<(u64, serde_json::Value)>, StoreError> {
        let mut out = Vec::new();
        for (block, data) in self.db.contract_receipts(txid)? {
            let Some(h) = self.index.get(&block).map(|e| e.header.height) else {
                continue;
            };
            if self.hash_at(h) == Some(block) {
                let v = serde_json::from_str(&data)
                    .map_err(|e| StoreError::corrupt("contract receipt", e))?;
                out.push((h, v));
            }
        }
        out.sort_by_key(|(h, _)| *h);
        Ok(out)
    }
}
