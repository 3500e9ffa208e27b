//! The regtest mempool: transactions checked against the chain's UTXO set plus other pending
//! transactions, with Bitcoin Core's reject reasons (lock-times as `non-final` and
//! `non-BIP68-final`), Core's default standardness policy ([`crate::policy`], unless
//! `-acceptnonstdtxn`), replacement by fee (full RBF, Core's default since v28: signalling
//! is not required), removal of what a block confirms or conflicts with, and re-admission
//! of transactions from disconnected blocks. Relay fees are Core 30's defaults: 0.1 sat/vB
//! minimum (`-minrelaytxfee=0.000001`) and 0.1 sat/vB per replacement byte
//! (`-incrementalrelayfee`).

use std::collections::{HashMap, HashSet};

use bitcoin::{Amount, OutPoint, Transaction, Txid};

use crate::chain::{Chain, Coin};
use crate::locks::{self, BlockContext};
use crate::policy;
use crate::tx_check;

/// Minimum relay fee rate, sat/kvB (Core's `DEFAULT_MIN_RELAY_TX_FEE` since v30).
pub const MIN_RELAY_SAT_PER_KVB: u64 = 100;
/// Fee rate a replacement adds for its own bytes, sat/kvB (`DEFAULT_INCREMENTAL_RELAY_FEE`).
pub const INCREMENTAL_RELAY_SAT_PER_KVB: u64 = 100;

/// The fee `rate` (sat/kvB) asks of `vsize` virtual bytes, rounded up (Core's
/// `CFeeRate::GetFee`).
pub fn fee_at(rate: u64, vsize: u64) -> u64 {
    (rate * vsize).div_ceil(1_000)
}

/// Satoshis as Core's `FormatMoney` writes them: BTC, trailing zeros cut to two decimals.
pub fn format_money(sat: u64) -> String {
    let s = format!("{}.{:08}", sat / 100_000_000, sat % 100_000_000);
    let trimmed = s.trim_end_matches('0');
    let decimals = trimmed.len() - trimmed.find('.').unwrap_or(0) - 1;
    if decimals < 2 {
        s[..trimmed.len() + (2 - decimals)].to_string()
    } else {
        trimmed.to_string()
    }
}

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
        // Full RBF: any conflict may be replaced by a transaction paying enough more.
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
        let min = fee_at(MIN_RELAY_SAT_PER_KVB, vsize);
        if fee.to_sat() < min {
            return Err(rej(
                -26,
                format!("min relay fee not met, {} < {min}", fee.to_sat()),
            ));
        }
        if !conflicts.is_empty() {
            self.pays_for_replacing(txid, fee.to_sat(), vsize, &conflicts)?;
        }
        Ok((fee, conflicts))
    }

    /// Core 31's replacement checks for `txid` (fee `fee`, `vsize` virtual bytes) replacing
    /// `conflicts` and their descendants: at least their fees (rule 3), plus its own bytes at
    /// the incremental relay fee (rule 4), and a better fee-rate diagram, here as Core's
    /// check reads for the replaced set taken as one chunk: no lower fee rate than theirs.
    fn pays_for_replacing(
        &self,
        txid: Txid,
        fee: u64,
        vsize: u64,
        conflicts: &[Txid],
    ) -> Result<(), Reject> {
        let replaced = self.with_descendants(conflicts.iter().copied());
        let (old_fee, old_vsize) = replaced
            .iter()
            .filter_map(|t| self.txs.get(t))
            .fold((0u64, 0u64), |a, p| {
                (a.0 + p.fee.to_sat(), a.1 + p.tx.vsize() as u64)
            });
        if fee < old_fee {
            return Err(rej(
                -26,
                format!(
                    "insufficient fee, rejecting replacement {txid}, less fees than conflicting txs; {} < {}",
                    format_money(fee),
                    format_money(old_fee)
                ),
            ));
        }
        let extra = fee_at(INCREMENTAL_RELAY_SAT_PER_KVB, vsize);
        if fee - old_fee < extra {
            return Err(rej(
                -26,
                format!(
                    "insufficient fee, rejecting replacement {txid}, not enough additional fees to relay; {} < {}",
                    format_money(fee - old_fee),
                    format_money(extra)
                ),
            ));
        }
        if u128::from(fee) * u128::from(old_vsize) < u128::from(old_fee) * u128::from(vsize) {
            return Err(rej(
                -26,
                "replacement-failed, insufficient feerate: does not improve feerate diagram",
            ));
        }
        Ok(())
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

    /// Pending transactions spending an output of `txid`.
    pub fn children(&self, txid: Txid) -> impl Iterator<Item = Txid> + '_ {
        self.txs
            .iter()
            .filter(move |(_, p)| p.tx.input.iter().any(|i| i.previous_output.txid == txid))
            .map(|(id, _)| *id)
    }

    /// `roots` (those pending) and every pending transaction descending from them.
    pub fn with_descendants(&self, roots: impl IntoIterator<Item = Txid>) -> HashSet<Txid> {
        let mut seen = HashSet::new();
        let mut stack: Vec<Txid> = roots.into_iter().collect();
        while let Some(t) = stack.pop() {
            if self.txs.contains_key(&t) && seen.insert(t) {
                stack.extend(self.children(t));
            }
        }
        seen
    }

    fn remove_with_descendants(&mut self, txid: Txid) {
        for t in self.with_descendants([txid]) {
            self.txs.remove(&t);
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

#[cfg(test)]
mod tests {
    use super::{fee_at, format_money};

    #[test]
    fn money_and_fees_are_written_and_rounded_as_core_does() {
        assert_eq!(format_money(0), "0.00");
        assert_eq!(format_money(100_000_000), "1.00");
        assert_eq!(format_money(150_000_000), "1.50");
        assert_eq!(format_money(1_000), "0.00001");
        assert_eq!(format_money(123_456_789), "1.23456789");
        assert_eq!(format_money(2_100_000_000_000_000), "21000000.00");
        // 0.1 sat/vB of 110 vB is 11 sats; of 111 vB, 11.1 rounded up.
        assert_eq!(fee_at(100, 110), 11);
        assert_eq!(fee_at(100, 111), 12);
        assert_eq!(fee_at(100, 0), 0);
    }
}
