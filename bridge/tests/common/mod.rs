//! Test helpers: regtest blocks mined with rust-bitcoin, a world with a header chain and a
//! peg, and a ledger checking rxBTC supply after every step.
#![allow(dead_code)]

use std::collections::BTreeMap;

use bitcoin::absolute::LockTime;
use bitcoin::block::{Header, Version};
use bitcoin::hashes::Hash;
use bitcoin::merkle_tree::calculate_root;
use bitcoin::{
    Amount, BlockHash, CompactTarget, Network, OutPoint, ScriptBuf, Sequence, Transaction, TxIn,
    TxMerkleNode, TxOut, Txid, Witness,
};
use rexe_bridge::headers::HeaderChain;
use rexe_bridge::peg::{
    Effect, L2Address, MatchId, NewOrder, OrderId, PaymentProof, Peg, PegParams, Sats,
};
use rexe_bridge::spv;

pub const REGTEST_BITS: u32 = 0x207f_ffff;
pub const NOW: u32 = 2_000_000_000;

/// Grinds the nonce until the header meets its own target.
pub fn mine_header(prev: BlockHash, merkle_root: TxMerkleNode, time: u32, bits: u32) -> Header {
    let mut h = Header {
        version: Version::from_consensus(0x2000_0000),
        prev_blockhash: prev,
        merkle_root,
        time,
        bits: CompactTarget::from_consensus(bits),
        nonce: 0,
    };
    while h.validate_pow(h.target()).is_err() {
        h.nonce += 1;
    }
    h
}

/// A header that fails its own target (for bad-PoW tests).
pub fn unmined_header(prev: BlockHash, time: u32, bits: u32) -> Header {
    let mut h = mine_header(prev, TxMerkleNode::all_zeros(), time, bits);
    while h.validate_pow(h.target()).is_ok() {
        h.nonce += 1;
    }
    h
}

pub fn addr(b: u8) -> L2Address {
    L2Address([b; 32])
}

pub fn p2wpkh(b: u8) -> ScriptBuf {
    let mut s = vec![0x00, 0x14];
    s.extend_from_slice(&[b; 20]);
    ScriptBuf::from_bytes(s)
}

pub fn coinbase(tag: u32) -> Transaction {
    Transaction {
        version: bitcoin::transaction::Version::ONE,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig: ScriptBuf::from_bytes(tag.to_le_bytes().repeat(3)),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: vec![TxOut {
            value: Amount::from_sat(50),
            script_pubkey: p2wpkh(0xcb),
        }],
    }
}

/// A payment transaction with the given outputs (segwit input, so the witness is stripped
/// for the txid).
pub fn payment(outputs: Vec<TxOut>) -> Transaction {
    let mut w = Witness::new();
    w.push([7u8; 72]);
    w.push([2u8; 33]);
    Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint {
                txid: Txid::from_byte_array([9; 32]),
                vout: 1,
            },
            script_sig: ScriptBuf::new(),
            sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
            witness: w,
        }],
        output: outputs,
    }
}

pub fn out(script: &ScriptBuf, sats: u64) -> TxOut {
    TxOut {
        value: Amount::from_sat(sats),
        script_pubkey: script.clone(),
    }
}

/// A transaction id with its inclusion data.
#[derive(Clone, Debug)]
pub struct Included {
    pub block: BlockHash,
    pub raw: Vec<u8>,
    pub branch: Vec<TxMerkleNode>,
    pub pos: u32,
    /// The block's coinbase and its branch (index 0).
    pub coinbase: Vec<u8>,
    pub coinbase_branch: Vec<TxMerkleNode>,
}

impl Included {
    /// Inclusion data of `all[i]` in block `block` (whose transactions are `all`, ids `txids`).
    pub fn at(block: BlockHash, all: &[Transaction], txids: &[Txid], i: usize) -> Included {
        let branch = |i| {
            spv::branch_for(txids, i)
                .into_iter()
                .map(TxMerkleNode::from_byte_array)
                .collect()
        };
        Included {
            block,
            raw: bitcoin::consensus::serialize(&all[i]),
            branch: branch(i),
            pos: i as u32,
            coinbase: bitcoin::consensus::serialize(&all[0]),
            coinbase_branch: branch(0),
        }
    }

    pub fn proof(&self) -> PaymentProof<'_> {
        PaymentProof {
            raw_tx: &self.raw,
            block_hash: self.block,
            branch: &self.branch,
            position: self.pos,
            coinbase_tx: &self.coinbase,
            coinbase_branch: &self.coinbase_branch,
        }
    }
}

/// rxBTC balances outside the peg: debits for deposits and bonds, credits for effects.
#[derive(Default, Debug)]
pub struct Ledger {
    pub balances: BTreeMap<L2Address, u128>,
    pub supply: u128,
}

impl Ledger {
    pub fn fund(&mut self, a: L2Address, v: u64) {
        *self.balances.entry(a).or_default() += u128::from(v);
        self.supply += u128::from(v);
    }
    pub fn debit(&mut self, a: L2Address, v: u64) {
        let b = self.balances.entry(a).or_default();
        assert!(*b >= u128::from(v), "insufficient balance");
        *b -= u128::from(v);
    }
    pub fn credit(&mut self, a: L2Address, v: u64) {
        *self.balances.entry(a).or_default() += u128::from(v);
    }
    pub fn apply(&mut self, effects: &[Effect]) {
        for e in effects {
            match e {
                Effect::Release { to, amount, .. }
                | Effect::Refund { to, amount, .. }
                | Effect::BondReturn { to, amount, .. }
                | Effect::BondToMaker { to, amount, .. } => self.credit(*to, amount.0),
            }
        }
    }
    pub fn balance(&self, a: L2Address) -> u128 {
        self.balances.get(&a).copied().unwrap_or(0)
    }
}

pub struct World {
    pub headers: HeaderChain,
    pub peg: Peg,
    pub ledger: Ledger,
    pub l2_height: u64,
    counter: u32,
}

impl World {
    /// Regtest, K = 3 confirmations, 10-block payment window, 2-block claim grace.
    pub fn new() -> Self {
        let mut params = PegParams::default_for(Network::Regtest);
        params.confirmations = 3;
        params.payment_window = 10;
        params.claim_grace = 2;
        let mut ledger = Ledger::default();
        for b in 1..=20 {
            ledger.fund(addr(b), 10_000_000);
        }
        World {
            headers: HeaderChain::new(Network::Regtest),
            peg: Peg::new(params),
            ledger,
            l2_height: 1,
            counter: 0,
        }
    }

    /// rxBTC conservation: balances + escrow + held bonds == supply; peg bookkeeping holds.
    pub fn check(&self) {
        self.peg.check_invariants().unwrap();
        let t = self.peg.totals();
        let outside: u128 = self.ledger.balances.values().sum();
        assert_eq!(
            outside + t.in_orders + t.in_matches + t.bonds_held,
            self.ledger.supply,
            "supply broken: {t:?}"
        );
    }

    pub fn tip(&self) -> BlockHash {
        self.headers.best_tip().0
    }

    pub fn btc_height(&self) -> u32 {
        self.headers.tip_height()
    }

    /// Mines a block with `txs` (after a coinbase) on `parent`, submits it, returns inclusion
    /// data of each tx.
    pub fn mine_on(
        &mut self,
        parent: BlockHash,
        txs: &[Transaction],
    ) -> (BlockHash, Vec<Included>) {
        self.counter += 1;
        let mut all = vec![coinbase(self.counter)];
        all.extend_from_slice(txs);
        let txids: Vec<Txid> = all.iter().map(|t| t.compute_txid()).collect();
        let root = TxMerkleNode::from_raw_hash(
            calculate_root(txids.iter().map(|t| t.to_raw_hash())).unwrap(),
        );
        let prev = self.headers.get(&parent).expect("parent tracked").header;
        let h = mine_header(
            parent,
            root,
            prev.time + 600 + self.counter,
            prev.bits.to_consensus(),
        );
        self.headers.submit(&[h], NOW).expect("valid header");
        let hash = h.block_hash();
        let inc = (1..all.len())
            .map(|i| Included::at(hash, &all, &txids, i))
            .collect();
        self.check();
        (hash, inc)
    }

    pub fn mine(&mut self, txs: &[Transaction]) -> (BlockHash, Vec<Included>) {
        let tip = self.tip();
        self.mine_on(tip, txs)
    }

    pub fn mine_empty(&mut self, n: usize) {
        for _ in 0..n {
            self.mine(&[]);
        }
    }

    pub fn order(
        &mut self,
        maker: L2Address,
        amount: u64,
        script: ScriptBuf,
        min_fill: u64,
        fee_bps: u16,
        expiry: u64,
    ) -> OrderId {
        self.ledger.debit(maker, amount);
        let id = self
            .peg
            .place_order(
                maker,
                NewOrder {
                    amount: Sats(amount),
                    btc_script: script,
                    min_fill: Sats(min_fill),
                    fee_bps,
                    expiry_height: expiry,
                },
                self.l2_height,
            )
            .unwrap();
        self.check();
        id
    }

    pub fn take(
        &mut self,
        order: OrderId,
        amount: u64,
        taker: L2Address,
        bond: u64,
    ) -> Result<MatchId, rexe_bridge::peg::TakeError> {
        self.ledger.debit(taker, bond);
        let r = self.peg.take(
            order,
            Sats(amount),
            taker,
            taker,
            Sats(bond),
            self.l2_height,
            self.btc_height(),
        );
        if r.is_err() {
            self.ledger.credit(taker, bond); // the chain reverts the debit
        }
        self.check();
        r
    }

    pub fn claim(
        &mut self,
        inc: &Included,
        ids: &[MatchId],
    ) -> Result<Vec<Effect>, rexe_bridge::peg::ClaimError> {
        let r = self.peg.claim(&self.headers, &inc.proof(), ids);
        if let Ok(e) = &r {
            self.ledger.apply(e);
        }
        self.check();
        r
    }

    pub fn expire(&mut self) -> Vec<Effect> {
        let e = self.peg.expire(self.l2_height, self.btc_height());
        self.ledger.apply(&e);
        self.check();
        e
    }
}
