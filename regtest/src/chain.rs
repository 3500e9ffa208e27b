//! The regtest block chain: every valid block kept, the best chain by work, reorgs with
//! undo data, `invalidateblock`/`reconsiderblock`, and Bitcoin Core's reject reasons.
//!
//! Validation follows Bitcoin Core's `CheckBlock`/`ContextualCheckBlock`/`ConnectBlock` as
//! far as regtest needs: proof of work against the node's target, merkle root (and the
//! CVE-2012-2459 mutation), BIP34 height, coinbase maturity 100, regtest subsidy (halving
//! every 150 blocks), segwit witness commitment, weight limit, and per transaction: inputs
//! exist and are unspent, amounts, lock-time finality and BIP68 sequence locks ([`crate::locks`]),
//! and script/witness verification by libbitcoinconsensus ([`crate::script`]).

use std::collections::{HashMap, HashSet};

use bitcoin::block::Header;
use bitcoin::consensus::encode::serialize;
use bitcoin::hashes::Hash;
use bitcoin::pow::{CompactTarget, Target, Work};
use bitcoin::{Amount, Block, BlockHash, OutPoint, Transaction, TxOut, Txid, Weight};

use crate::index::{script_hash, ScriptHash, ScriptIndex};
use crate::locks::{self, BlockContext};
use crate::script;
use crate::tx_check;

/// Coinbase outputs become spendable after this many blocks.
pub const COINBASE_MATURITY: u32 = 100;
/// Regtest subsidy halving interval.
pub const HALVING_INTERVAL: u32 = 150;

/// An unspent output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coin {
    /// The output.
    pub txout: TxOut,
    /// Height of the block that created it.
    pub height: u32,
    /// Whether a coinbase created it.
    pub coinbase: bool,
}

/// Regtest block subsidy at `height`.
pub fn subsidy(height: u32) -> Amount {
    let halvings = height / HALVING_INTERVAL;
    if halvings >= 64 {
        return Amount::ZERO;
    }
    Amount::from_sat((50 * 100_000_000u64) >> halvings)
}

/// Validation state of a stored block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Header and body checked in isolation; not (yet) connected.
    Valid,
    /// Failed, or marked by `invalidateblock`.
    Invalid,
}

/// A stored block.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The block.
    pub block: Block,
    /// Height.
    pub height: u32,
    /// Cumulative work.
    pub chainwork: Work,
    /// Status.
    pub status: Status,
    /// Connected (fully validated) at least once: Core's `BLOCK_VALID_SCRIPTS`, which tells
    /// `getchaintips`' `valid-fork` from `valid-headers`.
    pub connected: bool,
}

struct Undo {
    spent: Vec<(OutPoint, Coin)>,
    created: Vec<OutPoint>,
    /// Scripts the block touched in [`Chain::scripts`].
    scripts: Vec<ScriptHash>,
}

/// What happened to a submitted block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Accepted {
    /// Now the tip (possibly after a reorg).
    Tip,
    /// Valid, stored on a side branch with less work (Core answers "inconclusive").
    SideBranch,
}

/// The chain.
pub struct Chain {
    /// Every block, by hash.
    pub blocks: HashMap<BlockHash, Entry>,
    /// The active chain, by height.
    pub active: Vec<BlockHash>,
    utxo: HashMap<OutPoint, Coin>,
    undo: HashMap<BlockHash, Undo>,
    /// What the transactions of blocks disconnected since start spent, per transaction but
    /// the coinbase ([`Chain::spent_outputs`]: Core keeps a stale block's undo data too, and
    /// indexers read it to forget the block).
    stale_spent: HashMap<BlockHash, Vec<Vec<TxOut>>>,
    /// Compact target every block must carry.
    pub bits: CompactTarget,
    /// Transactions of the active chain, by id: (block, position).
    pub tx_index: HashMap<Txid, (BlockHash, usize)>,
    /// Headers accepted by `submitheader` whose blocks are not (yet) known, with heights.
    pub headers: HashMap<BlockHash, (bitcoin::block::Header, u32)>,
    /// The active chain's script-hash index (the Electrum server's).
    pub scripts: ScriptIndex,
    last_reject: Option<String>,
}

/// How far ahead of the node's clock a block's time may be (Core's `MAX_FUTURE_BLOCK_TIME`).
pub const MAX_FUTURE_BLOCK_TIME: u64 = 2 * 60 * 60;

/// Seconds since the Unix epoch (0 if the clock is set before it).
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn reject(r: &'static str) -> String {
    r.to_string()
}

impl Chain {
    /// A chain holding Bitcoin Core's regtest genesis, requiring `bits` on new blocks.
    pub fn new(bits: CompactTarget) -> Chain {
        let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Regtest);
        let hash = genesis.block_hash();
        let mut c = Chain {
            blocks: HashMap::new(),
            active: Vec::new(),
            utxo: HashMap::new(),
            undo: HashMap::new(),
            stale_spent: HashMap::new(),
            bits,
            tx_index: HashMap::new(),
            headers: HashMap::new(),
            scripts: ScriptIndex::default(),
            last_reject: None,
        };
        c.blocks.insert(
            hash,
            Entry {
                chainwork: genesis.header.work(),
                block: genesis,
                height: 0,
                status: Status::Valid,
                connected: true,
            },
        );
        // Like Core, the genesis coinbase is not spendable: no UTXO is created.
        c.active.push(hash);
        c
    }

    /// Height of the tip.
    pub fn height(&self) -> u32 {
        self.active.len() as u32 - 1
    }

    /// Hash of the tip.
    pub fn tip(&self) -> BlockHash {
        *self.active.last().expect("genesis")
    }

    /// The tip's entry.
    pub fn tip_entry(&self) -> &Entry {
        &self.blocks[&self.tip()]
    }

    /// The target blocks must meet.
    pub fn target(&self) -> Target {
        Target::from_compact(self.bits)
    }

    /// An unspent output of the active chain.
    pub fn coin(&self, op: &OutPoint) -> Option<&Coin> {
        self.utxo.get(op)
    }

    /// Every unspent output of the active chain (in no particular order).
    pub fn coins(&self) -> impl Iterator<Item = (&OutPoint, &Coin)> {
        self.utxo.iter()
    }

    /// Whether `hash` is on the active chain.
    pub fn is_active(&self, hash: &BlockHash) -> bool {
        self.blocks
            .get(hash)
            .is_some_and(|e| self.active.get(e.height as usize) == Some(hash))
    }

    /// Median time of the 11 blocks ending at `hash`.
    pub fn median_time_past(&self, hash: BlockHash) -> u32 {
        let mut times = Vec::new();
        let mut cur = Some(hash);
        while let Some(h) = cur {
            let Some(e) = self.blocks.get(&h) else { break };
            times.push(e.block.header.time);
            if times.len() == 11 || e.height == 0 {
                break;
            }
            cur = Some(e.block.header.prev_blockhash);
        }
        times.sort_unstable();
        times[times.len() / 2]
    }

    /// Context-free checks plus the header's context (Core's CheckBlock and
    /// ContextualCheckBlockHeader/ContextualCheckBlock).
    fn check_block(&self, block: &Block, prev: &Entry) -> Result<(), String> {
        let h = &block.header;
        if h.bits != self.bits {
            return Err(reject("bad-diffbits"));
        }
        if h.validate_pow(self.target()).is_err() {
            return Err(reject("high-hash"));
        }
        if block.txdata.is_empty() || !block.txdata[0].is_coinbase() {
            return Err(reject("bad-cb-missing"));
        }
        if block.txdata.iter().skip(1).any(Transaction::is_coinbase) {
            return Err(reject("bad-cb-multiple"));
        }
        if !block.check_merkle_root() {
            return Err(reject("bad-txnmrklroot"));
        }
        // CVE-2012-2459: a duplicated last pair gives the same root; Core rejects it.
        let mut seen = HashSet::new();
        if !block.txdata.iter().all(|t| seen.insert(t.compute_txid())) {
            return Err(reject("bad-txns-duplicate"));
        }
        for tx in &block.txdata {
            tx_check::check_transaction(tx).map_err(reject)?;
        }
        if block.weight() > Weight::MAX_BLOCK {
            return Err(reject("bad-blk-weight"));
        }
        if h.time <= self.median_time_past(h.prev_blockhash) {
            return Err(reject("time-too-old"));
        }
        if u64::from(h.time) > unix_now() + MAX_FUTURE_BLOCK_TIME {
            return Err(reject("time-too-new"));
        }
        let height = prev.height + 1;
        // BIP34 as Core checks it: the scriptSig starts with `CScript() << nHeight` (so
        // heights 1..=16 are OP_1..OP_16, which rust-bitcoin's parser does not accept).
        let expect = bitcoin::blockdata::script::Builder::new()
            .push_int(height as i64)
            .into_script();
        if !block.txdata[0].input[0]
            .script_sig
            .as_bytes()
            .starts_with(expect.as_bytes())
        {
            return Err(reject("bad-cb-height"));
        }
        let has_witness = block
            .txdata
            .iter()
            .any(|t| t.input.iter().any(|i| !i.witness.is_empty()));
        // Core's ContextualCheckBlock: a commitment (last matching output) must match with a
        // 32-byte reserved value; without one, no transaction may carry a witness.
        let cb = &block.txdata[0];
        let has_commitment = cb.output.iter().any(|o| {
            o.script_pubkey.len() >= 38
                && o.script_pubkey.as_bytes()[..6] == [0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed]
        });
        if has_commitment {
            if !block.check_witness_commitment() {
                let w = &cb.input[0].witness;
                if w.len() != 1 || w.nth(0).map(<[u8]>::len) != Some(32) {
                    return Err(reject("bad-witness-nonce-size"));
                }
                return Err(reject("bad-witness-merkle-match"));
            }
        } else if has_witness {
            return Err(reject("unexpected-witness"));
        }
        let at = BlockContext {
            height,
            prev_mtp: self.median_time_past(h.prev_blockhash),
        };
        if !block.txdata.iter().all(|tx| locks::is_final(tx, at)) {
            return Err(reject("bad-txns-nonfinal"));
        }
        Ok(())
    }

    /// Median time past of the active block at `height` (of the tip beyond it).
    pub fn mtp_at(&self, height: u32) -> u32 {
        let hash = self.active.get(height as usize).copied();
        self.median_time_past(hash.unwrap_or_else(|| self.tip()))
    }

    /// Checks one non-coinbase transaction's inputs against `view`, its BIP68 sequence locks
    /// and its scripts; returns the fee. `at` is the block that would include it, `mtp_at`
    /// the active chain's median time past by height.
    pub fn check_tx_inputs(
        tx: &Transaction,
        at: BlockContext,
        mtp_at: &dyn Fn(u32) -> u32,
        view: &dyn Fn(&OutPoint) -> Option<Coin>,
    ) -> Result<Amount, String> {
        Self::check_tx_inputs_with(tx, at, mtp_at, view, &|_| Ok(()))
    }

    /// [`Chain::check_tx_inputs`] with `before_scripts`, given the spent outputs, run after
    /// the amount and lock checks and before script verification (where Core's mempool
    /// checks `AreInputsStandard`).
    pub fn check_tx_inputs_with(
        tx: &Transaction,
        at: BlockContext,
        mtp_at: &dyn Fn(u32) -> u32,
        view: &dyn Fn(&OutPoint) -> Option<Coin>,
        before_scripts: &dyn Fn(&[TxOut]) -> Result<(), String>,
    ) -> Result<Amount, String> {
        let height = at.height;
        let mut input_sum = Amount::ZERO;
        let mut spent = Vec::with_capacity(tx.input.len());
        let mut coin_heights = Vec::with_capacity(tx.input.len());
        for i in &tx.input {
            let coin =
                view(&i.previous_output).ok_or_else(|| reject("bad-txns-inputs-missingorspent"))?;
            if coin.coinbase && height.saturating_sub(coin.height) < COINBASE_MATURITY {
                return Err(reject("bad-txns-premature-spend-of-coinbase"));
            }
            input_sum = input_sum
                .checked_add(coin.txout.value)
                .filter(|s| *s <= tx_check::MAX_MONEY)
                .ok_or_else(|| reject("bad-txns-inputvalues-outofrange"))?;
            coin_heights.push(coin.height);
            spent.push(coin.txout);
        }
        let out_sum = tx
            .output
            .iter()
            .try_fold(Amount::ZERO, |a, o| a.checked_add(o.value))
            .ok_or_else(|| reject("bad-txns-txouttotal-toolarge"))?;
        if out_sum > input_sum {
            return Err(reject("bad-txns-in-belowout"));
        }
        if !locks::sequence_locks_met(tx, &coin_heights, at, mtp_at) {
            return Err(reject("bad-txns-nonfinal"));
        }
        before_scripts(&spent)?;
        script::verify_inputs(tx, &spent).map_err(|e| e.to_string())?;
        Ok(input_sum - out_sum)
    }

    fn connect(&mut self, hash: BlockHash) -> Result<(), String> {
        let entry = self.blocks[&hash].clone();
        let height = entry.height;
        let mut undo = Undo {
            spent: Vec::new(),
            created: Vec::new(),
            scripts: Vec::new(),
        };
        let at = BlockContext {
            height,
            prev_mtp: self.median_time_past(entry.block.header.prev_blockhash),
        };
        let mut fees = Amount::ZERO;
        // Outputs created earlier in this block are spendable by later transactions.
        let mut created: HashMap<OutPoint, Coin> = HashMap::new();
        let mut spent_here: HashSet<OutPoint> = HashSet::new();
        // Per transaction, the scripts of the outputs its inputs spend (for the index).
        let mut prevouts: Vec<Vec<ScriptHash>> = vec![Vec::new()];
        for (i, tx) in entry.block.txdata.iter().enumerate() {
            if i > 0 {
                let view = |op: &OutPoint| -> Option<Coin> {
                    if spent_here.contains(op) {
                        return None;
                    }
                    created
                        .get(op)
                        .cloned()
                        .or_else(|| self.utxo.get(op).cloned())
                };
                let fee = Self::check_tx_inputs(tx, at, &|h| self.mtp_at(h), &view)?;
                fees = fees
                    .checked_add(fee)
                    .ok_or_else(|| reject("bad-txns-accumulated-fee-outofrange"))?;
                let mut spks = Vec::with_capacity(tx.input.len());
                for inp in &tx.input {
                    let op = &inp.previous_output;
                    if let Some(c) = created.get(op).or_else(|| self.utxo.get(op)) {
                        spks.push(script_hash(&c.txout.script_pubkey));
                    }
                    spent_here.insert(*op);
                }
                prevouts.push(spks);
            }
            let txid = tx.compute_txid();
            for (vout, o) in tx.output.iter().enumerate() {
                if o.script_pubkey.is_op_return() {
                    continue;
                }
                created.insert(
                    OutPoint::new(txid, vout as u32),
                    Coin {
                        txout: o.clone(),
                        height,
                        coinbase: i == 0,
                    },
                );
            }
        }
        let cb_value: Amount = entry.block.txdata[0].output.iter().map(|o| o.value).sum();
        if cb_value > subsidy(height) + fees {
            return Err(reject("bad-cb-amount"));
        }
        for op in &spent_here {
            if let Some(c) = self.utxo.remove(op) {
                undo.spent.push((*op, c));
            }
        }
        for (op, c) in created {
            if spent_here.contains(&op) {
                continue;
            }
            undo.created.push(op);
            self.utxo.insert(op, c);
        }
        for (i, tx) in entry.block.txdata.iter().enumerate() {
            self.tx_index.insert(tx.compute_txid(), (hash, i));
        }
        undo.scripts = self.scripts.connect(height, &entry.block.txdata, &prevouts);
        self.undo.insert(hash, undo);
        self.active.push(hash);
        if let Some(e) = self.blocks.get_mut(&hash) {
            e.connected = true;
        }
        Ok(())
    }

    /// The outputs each transaction of block `hash` but its coinbase spent, in input order:
    /// for the active chain and for blocks disconnected since the node started (`None` for
    /// others, such as a side branch never connected).
    pub fn spent_outputs(&self, hash: &BlockHash) -> Option<Vec<Vec<TxOut>>> {
        let Some(undo) = self.undo.get(hash) else {
            return self.stale_spent.get(hash).cloned();
        };
        let txs = &self.blocks.get(hash)?.block.txdata;
        let mut spent: HashMap<OutPoint, &TxOut> =
            undo.spent.iter().map(|(op, c)| (*op, &c.txout)).collect();
        // Outputs created and spent within the block are in no undo record.
        for tx in txs {
            let txid = tx.compute_txid();
            for (vout, o) in tx.output.iter().enumerate() {
                spent.entry(OutPoint::new(txid, vout as u32)).or_insert(o);
            }
        }
        txs.iter()
            .skip(1)
            .map(|tx| {
                tx.input
                    .iter()
                    .map(|i| spent.get(&i.previous_output).map(|o| (*o).clone()))
                    .collect()
            })
            .collect()
    }

    fn disconnect_tip(&mut self) -> BlockHash {
        let hash = *self.active.last().expect("not genesis");
        if let Some(spent) = self.spent_outputs(&hash) {
            self.stale_spent.insert(hash, spent);
        }
        self.active.pop();
        if let Some(u) = self.undo.remove(&hash) {
            let e = &self.blocks[&hash];
            self.scripts
                .disconnect(e.height, &e.block.txdata, &u.scripts);
            for op in u.created {
                self.utxo.remove(&op);
            }
            for (op, c) in u.spent {
                self.utxo.insert(op, c);
            }
        }
        for tx in &self.blocks[&hash].block.txdata {
            self.tx_index.remove(&tx.compute_txid());
        }
        hash
    }

    /// Validates and stores `block`, then activates the most-work valid chain. Returns
    /// Core's reject reason on failure.
    pub fn submit(&mut self, block: Block) -> Result<Accepted, String> {
        let hash = block.block_hash();
        if let Some(e) = self.blocks.get(&hash) {
            return Err(reject(if e.status == Status::Invalid {
                "duplicate-invalid"
            } else {
                "duplicate"
            }));
        }
        let prev = self
            .blocks
            .get(&block.header.prev_blockhash)
            .ok_or_else(|| reject("prev-blk-not-found"))?
            .clone();
        if prev.status == Status::Invalid {
            return Err(reject("bad-prevblk"));
        }
        self.check_block(&block, &prev)?;
        let entry = Entry {
            chainwork: prev.chainwork + block.header.work(),
            height: prev.height + 1,
            block,
            status: Status::Valid,
            connected: false,
        };
        self.blocks.insert(hash, entry);
        self.headers.remove(&hash);
        self.last_reject = None;
        self.activate_best()?;
        if self.tip() == hash {
            Ok(Accepted::Tip)
        } else if self.blocks[&hash].status == Status::Invalid {
            Err(self
                .last_reject
                .take()
                .unwrap_or_else(|| reject("rejected")))
        } else {
            Ok(Accepted::SideBranch)
        }
    }

    /// Whether `hash` and all its ancestors are valid.
    fn chain_valid(&self, mut hash: BlockHash) -> bool {
        loop {
            let Some(e) = self.blocks.get(&hash) else {
                return false;
            };
            if e.status == Status::Invalid {
                return false;
            }
            if self.is_active(&hash) || e.height == 0 {
                return true;
            }
            hash = e.block.header.prev_blockhash;
        }
    }

    /// Activates the valid chain with the most work (first seen wins ties).
    fn activate_best(&mut self) -> Result<(), String> {
        loop {
            let tip_work = self.tip_entry().chainwork;
            let best = self
                .blocks
                .iter()
                .filter(|(_, e)| e.chainwork > tip_work && e.status == Status::Valid)
                .map(|(h, e)| (e.chainwork, *h))
                .filter(|(_, h)| self.chain_valid(*h))
                .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
            let Some((_, best)) = best else {
                return Ok(());
            };
            self.reorg_to(best);
        }
    }

    /// Disconnects down to the fork point with `best`'s chain and connects up to `best`; a
    /// block that fails is marked invalid and the old chain connected again.
    fn reorg_to(&mut self, best: BlockHash) {
        // Path from the fork point up to `best`.
        let mut path = Vec::new();
        let mut cur = best;
        while !self.is_active(&cur) {
            path.push(cur);
            cur = self.blocks[&cur].block.header.prev_blockhash;
        }
        let fork_height = self.blocks[&cur].height;
        let mut old = Vec::new();
        while self.height() > fork_height {
            old.push(self.disconnect_tip());
        }
        for (i, h) in path.iter().rev().enumerate() {
            if let Err(r) = self.connect(*h) {
                tracing::debug!(block = %h, reason = %r, "block failed to connect");
                self.last_reject = Some(r);
                if let Some(e) = self.blocks.get_mut(h) {
                    e.status = Status::Invalid;
                }
                for _ in 0..i {
                    self.disconnect_tip();
                }
                for o in old.iter().rev() {
                    self.connect(*o).expect("the old chain was valid");
                }
                return;
            }
        }
    }

    /// `preciousblock`: treats `hash` as if it had been received before the other blocks of
    /// as much work (Core's `PreciousBlock`): a valid block whose chain has the active tip's
    /// work becomes the tip; one with less work changes nothing.
    pub fn precious(&mut self, hash: BlockHash) -> Result<(), String> {
        let Some(e) = self.blocks.get(&hash) else {
            return Err(reject("Block not found"));
        };
        if e.chainwork == self.tip_entry().chainwork
            && e.status == Status::Valid
            && !self.is_active(&hash)
            && self.chain_valid(hash)
        {
            self.reorg_to(hash);
        }
        self.activate_best()
    }

    /// `invalidateblock`: marks `hash` invalid and reorganises away from it.
    pub fn invalidate(&mut self, hash: BlockHash) -> Result<(), String> {
        let Some(e) = self.blocks.get_mut(&hash) else {
            return Err(reject("Block not found"));
        };
        if e.height == 0 {
            return Err(reject("cannot invalidate genesis"));
        }
        e.status = Status::Invalid;
        if self.is_active(&hash) {
            let h = self.blocks[&hash].height;
            while self.height() >= h {
                self.disconnect_tip();
            }
        }
        self.activate_best()
    }

    /// `reconsiderblock`: clears the invalid mark of `hash` and its descendants.
    pub fn reconsider(&mut self, hash: BlockHash) -> Result<(), String> {
        if !self.blocks.contains_key(&hash) {
            return Err(reject("Block not found"));
        }
        let mut changed = true;
        self.blocks.get_mut(&hash).expect("exists").status = Status::Valid;
        let mut valid: HashSet<BlockHash> = [hash].into();
        while changed {
            changed = false;
            let children: Vec<BlockHash> = self
                .blocks
                .iter()
                .filter(|(h, e)| {
                    !valid.contains(*h) && valid.contains(&e.block.header.prev_blockhash)
                })
                .map(|(h, _)| *h)
                .collect();
            for c in children {
                self.blocks.get_mut(&c).expect("exists").status = Status::Valid;
                valid.insert(c);
                changed = true;
            }
        }
        self.activate_best()
    }

    /// `submitheader`: checks a header (known parent, bits, proof of work, time) and keeps
    /// it as headers-only. `Err((true, reason))` when the parent is unknown.
    pub fn submit_header(&mut self, h: bitcoin::block::Header) -> Result<(), (bool, String)> {
        let hash = h.block_hash();
        if let Some(e) = self.blocks.get(&hash) {
            return if e.status == Status::Invalid || !self.chain_valid(hash) {
                Err((false, reject("duplicate")))
            } else {
                Ok(())
            };
        }
        if self.headers.contains_key(&hash) {
            return Ok(());
        }
        let prev_height = if let Some(p) = self.blocks.get(&h.prev_blockhash) {
            if !self.chain_valid(h.prev_blockhash) {
                return Err((false, reject("bad-prevblk")));
            }
            if h.time <= self.median_time_past(h.prev_blockhash) {
                return Err((false, reject("time-too-old")));
            }
            p.height
        } else if let Some((_, ph)) = self.headers.get(&h.prev_blockhash) {
            *ph
        } else {
            return Err((true, reject("prev-blk-not-found")));
        };
        if h.bits != self.bits {
            return Err((false, reject("bad-diffbits")));
        }
        if h.validate_pow(self.target()).is_err() {
            return Err((false, reject("high-hash")));
        }
        if u64::from(h.time) > unix_now() + MAX_FUTURE_BLOCK_TIME {
            return Err((false, reject("time-too-new")));
        }
        self.headers.insert(hash, (h, prev_height + 1));
        Ok(())
    }

    /// `getchaintips`: every block without children, with its branch length and status.
    pub fn tips(&self) -> Vec<(BlockHash, u32, u32, &'static str)> {
        let parents: HashSet<BlockHash> = self
            .blocks
            .values()
            .map(|e| e.block.header.prev_blockhash)
            .chain(self.headers.values().map(|(h, _)| h.prev_blockhash))
            .collect();
        // Blocks without children, and always the active tip (as Core: after
        // `invalidateblock` the tip has an invalid child).
        let tip = self.tip();
        let mut tips: Vec<_> = self
            .blocks
            .iter()
            .filter(|(h, _)| !parents.contains(*h) || **h == tip)
            .map(|(h, e)| {
                // Down to the fork point: any invalid block makes the branch invalid; all
                // connected once is a valid fork, otherwise only its headers were checked.
                let (mut cur, mut len) = (*h, 0);
                let (mut invalid, mut all_connected) = (false, true);
                while !self.is_active(&cur) {
                    let b = &self.blocks[&cur];
                    invalid |= b.status == Status::Invalid;
                    all_connected &= b.connected;
                    len += 1;
                    cur = b.block.header.prev_blockhash;
                }
                let status = if self.is_active(h) {
                    "active"
                } else if invalid {
                    "invalid"
                } else if all_connected {
                    "valid-fork"
                } else {
                    "valid-headers"
                };
                (*h, e.height, len, status)
            })
            .collect();
        for (hash, (_, height)) in &self.headers {
            if parents.contains(hash) {
                continue;
            }
            let mut cur = *hash;
            let mut len = 0;
            while let Some((h, _)) = self.headers.get(&cur) {
                len += 1;
                cur = h.prev_blockhash;
            }
            while !self.is_active(&cur) {
                let Some(e) = self.blocks.get(&cur) else {
                    break;
                };
                len += 1;
                cur = e.block.header.prev_blockhash;
            }
            tips.push((*hash, *height, len, "headers-only"));
        }
        tips.sort_by_key(|t| std::cmp::Reverse(t.1));
        tips
    }

    /// The raw bytes of a block.
    pub fn raw_block(&self, hash: &BlockHash) -> Option<Vec<u8>> {
        self.blocks.get(hash).map(|e| serialize(&e.block))
    }

    /// Builds a block template on the tip: coinbase paying `script` (BIP34 height, then
    /// `extra`; witness commitment always, as Core), then `txs` (already validated, in order).
    pub fn make_block(
        &self,
        script: bitcoin::ScriptBuf,
        txs: Vec<Transaction>,
        fees: Amount,
        time: u32,
        extra: &[u8],
    ) -> Block {
        use bitcoin::blockdata::script::Builder;
        let height = self.height() + 1;
        // Core's miner writes `<height> OP_0`: heights 1..=16 alone would be one byte, under
        // the two-byte minimum of bad-cb-length.
        let mut sig = Builder::new()
            .push_int(height as i64)
            .push_opcode(bitcoin::opcodes::OP_0)
            .into_script()
            .into_bytes();
        sig.extend_from_slice(extra);
        let mut coinbase = Transaction {
            version: bitcoin::transaction::Version::TWO,
            lock_time: bitcoin::absolute::LockTime::ZERO,
            input: vec![bitcoin::TxIn {
                previous_output: OutPoint::null(),
                script_sig: bitcoin::ScriptBuf::from_bytes(sig),
                sequence: bitcoin::Sequence::MAX,
                witness: bitcoin::Witness::new(),
            }],
            output: vec![TxOut {
                value: subsidy(height) + fees,
                script_pubkey: script,
            }],
        };
        let mut txdata = vec![coinbase.clone()];
        txdata.extend(txs);
        // Like Core, always commit to the witnesses (segwit is active from genesis).
        {
            let mut block = Block {
                header: self.header_template(time),
                txdata: txdata.clone(),
            };
            let witness_root = block.witness_root().expect("has coinbase");
            let reserved = [0u8; 32];
            let commitment = Block::compute_witness_commitment(&witness_root, &reserved);
            let mut spk = vec![0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];
            spk.extend_from_slice(commitment.as_byte_array());
            coinbase.output.push(TxOut {
                value: Amount::ZERO,
                script_pubkey: bitcoin::ScriptBuf::from_bytes(spk),
            });
            coinbase.input[0].witness = bitcoin::Witness::from_slice(&[reserved.to_vec()]);
            block.txdata[0] = coinbase;
            txdata = block.txdata;
        }
        let mut block = Block {
            header: self.header_template(time),
            txdata,
        };
        block.header.merkle_root = block.compute_merkle_root().expect("non-empty");
        block
    }

    fn header_template(&self, time: u32) -> Header {
        Header {
            version: bitcoin::block::Version::from_consensus(0x2000_0000),
            prev_blockhash: self.tip(),
            merkle_root: bitcoin::TxMerkleNode::all_zeros(),
            time: time.max(self.median_time_past(self.tip()) + 1),
            bits: self.bits,
            nonce: 0,
        }
    }
}
