//! The regtest mempool: transactions checked against the chain's UTXO set plus other pending
//! transactions, with Bitcoin Core's reject reasons (lock-times as `non-final` and
//! `non-BIP68-final`), Core's default standardness policy ([`crate::policy`], unless
//! `-acceptnonstdtxn`), BIP125 replacement, removal of what a block confirms or conflicts
//! with, and re-admission of transactions from disconnected blocks.

use std::collections::HashMap;

use bitcoin::{Amount, OutPoint, Transaction, Txid};

use crate::chain::{Chain, Coin};
use crate::locks::{self, BlockContext};
use crate::policy;
use crate::tx_check;

/// Minimum relay fee rate, sat/vB.
pub const MIN_RELAY_SAT_PER_VB: u64 = 1;

/// A pending transaction.
#[derive(Clone, Debug)]
pub struct Pending {
    /// The transaction.
    pub tx: Transaction,
    /// Its fee.
    pub fee: Amount,
    /// When it entered the pool (UNIX seconds).
    pub time: u64,
    /// The chain height when it entered.
    pub height: u32,
}

/// Pending transactions, in arrival order.
#[derive(Default)]
pub struct Mempool {
    /// By txid.
    pub txs: HashMap<Txid, Pending>,
    /// Arrival order.
    pub order: Vec<Txid>,
    /// Standardness policy (enforced by default, as Core's regtest).
    pub policy: policy::Options,
    /// Bumped on every change of the pool's content.
    pub generation: u64,
}

/// A mempool rejection: Core's RPC error code and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// -25 (missing inputs), -26 (rejected) or -27 (already in chain).
    pub code: i64,
    /// Core's reason string.
    pub reason: String,
}

fn rej(code: i64, reason: impl Into<String>) -> Reject {
    Reject {
        code,
        reason: reason.into(),
    }
}

impl Mempool {
    /// The pool's view for `tx`: chain UTXOs and outputs of other pending transactions,
    /// minus what pending transactions (other than `replacing`) spend.
    fn coin(&self, chain: &Chain, op: &OutPoint, replacing: &[Txid]) -> Option<Coin> {
        let spent_in_pool = self.txs.iter().any(|(id, p)| {
            !replacing.contains(id) && p.tx.input.iter().any(|i| i.previous_output == *op)
        });
        if spent_in_pool {
            return None;
        }
        if let Some(c) = chain.coin(op) {
            return Some(c.clone());
        }
        let p = self.txs.get(&op.txid)?;
        if replacing.contains(&op.txid) {
            return None;
        }
        p.tx.output.get(op.vout as usize).map(|o| Coin {
            txout: o.clone(),
            height: chain.height() + 1,
            coinbase: false,
        })
    }

    /// The coin at `op` as the chain and the pool see it together (Core's
    /// `CCoinsViewMemPool`): spent by a pending transaction, none; created by one, its output
    /// at Core's `MEMPOOL_HEIGHT`.
    pub fn view_coin(&self, chain: &Chain, op: &OutPoint) -> Option<Coin> {
        let mut c = self.coin(chain, op, &[])?;
        if chain.coin(op).is_none() {
            c.height = 0x7FFF_FFFF;
        }
        Some(c)
    }

    /// Checks `tx` for admission without admitting it; returns its fee and the pending
    /// transactions it would replace.
    ///
    /// The order is Core's `MemPoolAccept::PreChecks` (v28), so the first failing rule gives
    /// Core's reason: `CheckTransaction`, `coinbase`, `IsStandardTx` (when standardness is
    /// required), `tx-size-small`, `non-final`, conflicts, missing inputs, input amounts and
    /// lock-times, `AreInputsStandard` (`bad-txns-nonstandard-inputs`), scripts, fees. The
    /// duplicate checks (already in the mempool or a block) come first, as in Core's
    /// `sendrawtransaction`.
    pub fn check(&self, chain: &Chain, tx: &Transaction) -> Result<(Amount, Vec<Txid>), Reject> {
        let txid = tx.compute_txid();
        tx_check::check_transaction(tx).map_err(|r| rej(-26, r))?;
        if tx.is_coinbase() {
            return Err(rej(-26, "coinbase"));
        }
        if self.txs.contains_key(&txid) {
            return Err(rej(-26, "txn-already-in-mempool"));
        }
        if chain.tx_index.contains_key(&txid) {
            return Err(rej(-27, "Transaction already in block chain"));
        }
        if self.policy.require_standard {
            policy::is_standard_tx(tx, &self.policy).map_err(|r| rej(-26, r))?;
        }
        // Applied even with -acceptnonstdtxn, as in Core (CVE-2017-12842).
        if policy::is_too_small(tx) {
            return Err(rej(-26, "tx-size-small"));
        }
        // Core's CheckFinalTxAtTip: finality as if mined in the next block.
        let at = BlockContext {
            height: chain.height() + 1,
            prev_mtp: chain.median_time_past(chain.tip()),
        };
        if !locks::is_final(tx, at) {
            return Err(rej(-26, "non-final"));
        }
        // BIP125: conflicts must all signal replaceability.
        let conflicts: Vec<Txid> = self
            .txs
            .iter()
            .filter(|(_, p)| {
                p.tx.input.iter().any(|i| {
                    tx.input
                        .iter()
                        .any(|j| j.previous_output == i.previous_output)
                })
            })
            .map(|(id, _)| *id)
            .collect();
        for c in &conflicts {
            if !self.txs[c].tx.is_explicitly_rbf() {
                return Err(rej(-26, "txn-mempool-conflict"));
            }
        }
        let view = |op: &OutPoint| self.coin(chain, op, &conflicts);
        let mtp_at = |h| chain.mtp_at(h);
        let require_standard = self.policy.require_standard;
        let inputs_standard = |spent: &[bitcoin::TxOut]| {
            if require_standard && !policy::are_inputs_standard(tx, spent) {
                return Err("bad-txns-nonstandard-inputs".to_string());
            }
            Ok(())
        };
        let fee =
            Chain::check_tx_inputs_with(tx, at, &mtp_at, &view, &inputs_standard).map_err(|r| {
                match &*r {
                    "bad-txns-inputs-missingorspent" => rej(-25, r),
                    // The block rule's reason; Core's mempool names the same failure this way.
                    "bad-txns-nonfinal" => rej(-26, "non-BIP68-final"),
                    _ => rej(-26, r),
                }
            })?;
        let vsize = tx.vsize() as u64;
        if fee.to_sat() < MIN_RELAY_SAT_PER_VB * vsize {
            return Err(rej(-26, "min relay fee not met"));
        }
        if !conflicts.is_empty() {
            let old: u64 = conflicts.iter().map(|c| self.txs[c].fee.to_sat()).sum();
            if fee.to_sat() < old + MIN_RELAY_SAT_PER_VB * vsize {
                return Err(rej(-26, "insufficient fee"));
            }
        }
        Ok((fee, conflicts))
    }

    /// Admits `tx` (replacing what it conflicts with).
    pub fn accept(&mut self, chain: &Chain, tx: Transaction) -> Result<Txid, Reject> {
        let (fee, replaced) = self.check(chain, &tx)?;
        for r in replaced {
            self.remove_with_descendants(r);
        }
        let txid = tx.compute_txid();
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let height = chain.height();
        self.txs.insert(
            txid,
            Pending {
                tx,
                fee,
                time,
                height,
            },
        );
        self.order.push(txid);
        self.generation += 1;
        Ok(txid)
    }

    fn remove_with_descendants(&mut self, txid: Txid) {
        let mut stack = vec![txid];
        while let Some(t) = stack.pop() {
            if self.txs.remove(&t).is_some() {
                let children: Vec<Txid> = self
                    .txs
                    .iter()
                    .filter(|(_, p)| p.tx.input.iter().any(|i| i.previous_output.txid == t))
                    .map(|(id, _)| *id)
                    .collect();
                stack.extend(children);
            }
        }
        self.order.retain(|t| self.txs.contains_key(t));
    }

    /// After the chain changed: drops what is now confirmed or invalid, and re-admits
    /// `returned` (transactions of disconnected blocks).
    pub fn resync(&mut self, chain: &Chain, returned: Vec<Transaction>) {
        let old: Vec<Pending> = self
            .order
            .iter()
            .filter_map(|t| self.txs.get(t).cloned())
            .collect();
        self.txs.clear();
        self.order.clear();
        self.generation += 1;
        for tx in returned.into_iter().filter(|t| !t.is_coinbase()) {
            let _ = self.accept(chain, tx);
        }
        for p in old {
            let _ = self.accept(chain, p.tx);
        }
    }

    /// Pending transactions in an order valid for a block (parents first).
    pub fn block_candidates(&self) -> Vec<(Transaction, Amount)> {
        self.order
            .iter()
            .filter_map(|t| self.txs.get(t))
            .map(|p| (p.tx.clone(), p.fee))
            .collect()
    }
}
