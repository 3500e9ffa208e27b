//! Fee estimation (`estimatesmartfee`, Electrum's `blockchain.estimatefee`, and the wallet's
//! `conf_target`/`estimate_mode`) from what the chain shows.
//!
//! Bitcoin Core tracks, per fee-rate bucket, how many transactions it saw enter its mempool
//! confirmed within N blocks, and keeps that history in `fee_estimates.dat`. The embedded
//! node has no such history; it reads the fee rates (fee per virtual byte) of the
//! transactions the last blocks confirmed:
//!
//! - the window is the last `max(target, 6)` blocks, twice that for a conservative estimate
//!   (which, as in Core, also has to hold over a longer history);
//! - the estimate is the rate at or below which half (economical) or 85% (conservative)
//!   of the window's transactions paid: a transaction paying it would have been among the
//!   better-paying ones of recent blocks;
//! - never below the minimum relay fee (0.1 sat/vB);
//! - with fewer than [`MIN_SAMPLES`] transactions in the window there is no estimate, and
//!   `estimatesmartfee` answers as Core does then: `errors: ["Insufficient data or no feerate
//!   found"]`, `blocks: 0`.
//!
//! Targets are clamped to 1..=1008 as Core clamps them (Core's smallest answered target is
//! 2; a target of 1 is answered for 2 here too).

use bitcoin::{Amount, FeeRate, Transaction};

use crate::chain::Chain;
use crate::mempool::MIN_RELAY_SAT_PER_KVB;

/// The highest confirmation target (Core's `fee_estimator.HighestTargetTracked`).
pub const MAX_TARGET: u32 = 1008;
/// Fewest confirmed transactions an estimate is made from.
pub const MIN_SAMPLES: usize = 6;

/// `estimate_mode` (Core's `FeeEstimateMode`, case-insensitive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The caller's default (the wallet: economical when the transaction signals RBF).
    Unset,
    /// Responsive to the recent past.
    Economical,
    /// Also holds over a longer history: a higher rate, more likely to confirm in time.
    Conservative,
}

impl Mode {
    /// Parses Core's names; the error is Core's message.
    pub fn parse(s: &str) -> Result<Mode, String> {
        match s.to_ascii_lowercase().as_str() {
            "unset" => Ok(Mode::Unset),
            "economical" => Ok(Mode::Economical),
            "conservative" => Ok(Mode::Conservative),
            _ => Err(
                "Invalid estimate_mode parameter, must be one of: \"unset\", \"economical\", \"conservative\""
                    .into(),
            ),
        }
    }
}

/// The fee a confirmed transaction of the active chain paid (`None` for a coinbase, or when
/// a prevout is not on the active chain).
pub fn fee_of(chain: &Chain, tx: &Transaction) -> Option<Amount> {
    if tx.is_coinbase() {
        return None;
    }
    let mut inputs = Amount::ZERO;
    for i in &tx.input {
        let (b, idx) = chain.tx_index.get(&i.previous_output.txid)?;
        let prev = chain.blocks.get(b)?.block.txdata.get(*idx)?;
        inputs += prev.output.get(i.previous_output.vout as usize)?.value;
    }
    inputs.checked_sub(tx.output.iter().map(|o| o.value).sum())
}

/// The fee rate for confirmation within `target` blocks (clamped to 1..=[`MAX_TARGET`]), or
/// `None` without enough data. `Unset` is conservative here, as `estimatesmartfee`'s default.
pub fn estimate(chain: &Chain, target: u32, mode: Mode) -> Option<FeeRate> {
    let target = target.clamp(1, MAX_TARGET);
    let conservative = mode != Mode::Economical;
    let window = target.max(6) * if conservative { 2 } else { 1 };
    // Sat per 1000 vbytes, so sub-sat/vB rates keep their precision.
    let mut rates: Vec<u64> = Vec::new();
    for hash in chain.active.iter().rev().take(window as usize) {
        let Some(entry) = chain.blocks.get(hash) else {
            continue;
        };
        for tx in &entry.block.txdata {
            if let Some(fee) = fee_of(chain, tx) {
                let vsize = tx.vsize().max(1) as u64;
                rates.push(fee.to_sat().saturating_mul(1000) / vsize);
            }
        }
    }
    if rates.len() < MIN_SAMPLES {
        return None;
    }
    rates.sort_unstable();
    let percent = if conservative { 85 } else { 50 };
    let idx = (rates.len() * percent).div_ceil(100).max(1) - 1;
    let per_kvb = rates[idx].max(MIN_RELAY_SAT_PER_KVB);
    Some(FeeRate::from_sat_per_kwu(per_kvb.div_ceil(4)))
}

/// `estimatesmartfee`'s answer for `target` (already range-checked) and `mode`.
pub fn smart_fee_json(chain: &Chain, target: u32, mode: Mode) -> serde_json::Value {
    match estimate(chain, target, mode) {
        Some(rate) => serde_json::json!({
            "feerate": btc_per_kvb(rate),
            "blocks": target.clamp(2, MAX_TARGET),
        }),
        None => serde_json::json!({
            "errors": ["Insufficient data or no feerate found"],
            "blocks": 0,
        }),
    }
}

/// A fee rate in BTC/kvB, as Core prints it.
pub fn btc_per_kvb(rate: FeeRate) -> f64 {
    (rate.to_sat_per_kwu() * 4) as f64 / 1e8
}
