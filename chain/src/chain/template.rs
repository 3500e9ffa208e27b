//! Block templates for miners.

use super::*;

impl Chain {
    /// Builds the next block paying `miner`, from the mempool: the header to seal and the
    /// body. Its execution is kept, so submitting it sealed does not execute it again.
    pub fn template(&mut self, miner: Address, now: u64) -> Result<Block, BlockError> {
        if self.is_partial() {
            return Err(StoreError::NotTracked("building a block").into());
        }
        let parent = self.tip_header().clone();
        let height = parent.height + 1;
        self.mempool.remove_expired(height);
        let mut candidates = Vec::with_capacity(self.shards.len());
        let fees = self.fee_states()?;
        for (i, fee) in fees.iter().enumerate() {
            let store = &mut self.shards[i];
            let list = self.mempool.select(
                ShardId(i as u16),
                self.params.max_txs_per_shard,
                fee.base_fee,
                |a| store.get(a).ok().flatten().map(|x| x.nonce).unwrap_or(0),
            );
            candidates.push(list);
        }
        let header = self.next_header(&parent, miner, now);
        let executed = self.execute(&header, &candidates, ExecMode::Build, false)?;
        self.template_from_outcomes(header, executed)
    }

    /// Builds a block from explicit per-shard transaction lists that must all be valid
    /// (benchmarks and tests). `trusted` skips signature checks: only for transactions
    /// whose signatures were verified elsewhere.
    pub fn template_with(
        &mut self,
        miner: Address,
        now: u64,
        txs: Vec<Vec<SignedTx>>,
        trusted: bool,
    ) -> Result<Block, BlockError> {
        let parent = self.tip_header().clone();
        let header = self.next_header(&parent, miner, now);
        let mut executed = self.execute(&header, &txs, ExecMode::Validate, trusted)?;
        for (o, list) in executed.outcomes.iter_mut().zip(txs) {
            o.included = list;
        }
        self.template_from_outcomes(header, executed)
    }

    /// The header of the next block on `parent` (roots filled in after execution).
    pub(super) fn next_header(&self, parent: &Header, miner: Address, now: u64) -> Header {
        Header {
            version: 1,
            height: parent.height + 1,
            prev: parent.hash(),
            time: now.max(self.median_time_past(parent.hash()) + 1),
            bits: self.next_bits(parent),
            order: self.params.shard_order,
            miner,
            tx_root: Hash256::ZERO,
            outbox_root: Hash256::ZERO,
            state_root: Hash256::ZERO,
        }
    }

    pub(super) fn template_from_outcomes(
        &mut self,
        mut header: Header,
        mut executed: Executed,
    ) -> Result<Block, BlockError> {
        // The kept execution needs only the state changes: move the bodies out, no copy.
        let txs: Vec<Vec<SignedTx>> = executed
            .outcomes
            .iter_mut()
            .map(|o| std::mem::take(&mut o.included))
            .collect();
        let block_txs = Block {
            header: header.clone(),
            txs,
            seal: Vec::new(),
        };
        header.tx_root = block_txs.compute_tx_root_threads(self.config.threads);
        header.state_root = executed.state_root();
        header.outbox_root = executed.outbox_root();
        self.prepared = Some(Prepared {
            hash: header.hash(),
            global: executed.global,
            outcomes: executed.outcomes,
        });
        Ok(Block {
            header,
            txs: block_txs.txs,
            seal: Vec::new(),
        })
    }
}
