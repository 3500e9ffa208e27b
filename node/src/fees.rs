//! L2 fees for the transactions the CLI signs: explicit `--max-fee`/`--tip` (millisatoshis
//! per gas) or, by default, the node's `estimatefee` for the sender's shard.

use crate::error::{Error, Purpose as _, Result};
use clap::Args;
use rexe_chain::fee::GasPrice;
use serde_json::json;

use crate::peer::Peer;

/// `--max-fee` and `--tip`.
#[derive(Args, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeeArgs {
    /// Most to pay per gas, base fee and tip together, in msat (default: the node's
    /// `estimatefee` for the sender's shard). Unused gas and the part of the max fee above
    /// base fee + tip are refunded.
    #[arg(long = "max-fee", value_name = "MSAT_PER_GAS")]
    pub max_fee: Option<u64>,
    /// Tip per gas to the miner, in msat (default: the node's estimate).
    #[arg(long, value_name = "MSAT_PER_GAS")]
    pub tip: Option<u64>,
}

/// A transaction's max fee and max tip per gas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fees {
    /// Max fee per gas.
    pub max_fee: GasPrice,
    /// Max tip per gas.
    pub max_tip: GasPrice,
}

impl FeeArgs {
    /// Explicit values, or the node's estimate for `sender`'s shard where one is missing.
    pub fn pick(&self, peer: &Peer, sender: &str) -> Result<Fees> {
        if let (Some(f), Some(t)) = (self.max_fee, self.tip) {
            return checked(f, t);
        }
        let e: crate::api::FeeEstimate = peer
            .call_as("estimatefee", json!([sender]))
            .purpose(|| format!("asking the L2 node at {} for a fee estimate", peer.addr))?;
        let (base, est_tip, est_max) = (e.base_fee_msat, e.tip_msat, e.max_fee_msat);
        let max_fee = self.max_fee.unwrap_or(est_max);
        if max_fee < base {
            return Err(Error::Config(format!(
                "--max-fee {max_fee} msat/gas is below the shard's base fee {base}: it would not be included"
            )));
        }
        let tip = self.tip.unwrap_or(est_tip.min(max_fee));
        checked(max_fee, tip)
    }
}

fn checked(max_fee: u64, tip: u64) -> Result<Fees> {
    if tip > max_fee {
        return Err(Error::Config(format!(
            "--tip {tip} is above --max-fee {max_fee} (msat per gas)"
        )));
    }
    Ok(Fees {
        max_fee: GasPrice::from_msat(max_fee),
        max_tip: GasPrice::from_msat(tip),
    })
}
