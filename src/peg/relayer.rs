//! The header relayer: keeps the L2's tracked Bitcoin header chain current from bitcoind's
//! JSON-RPC (`getblockcount`, `getblockhash`, `getblockheader`), following Bitcoin reorgs.
//! One call at a time: the next batch is sent once the previous one has run.

use anyhow::{Context, Result};
use bitcoin::block::Header;
use rexe_bridge::call::{PegCall, MAX_HEADERS_PER_CALL};
use rexe_chain::Txid;
use rexe_miner::bitcoind::Bitcoind;
use serde_json::json;

use super::l2::L2Client;

/// What one relayer step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The L2 tracks Bitcoin's tip.
    UpToDate,
    /// A previous batch has not run yet.
    Waiting(Txid),
    /// Sent `count` headers from height `from`.
    Sent {
        /// The call.
        txid: Txid,
        /// First height.
        from: u32,
        /// How many.
        count: usize,
    },
}

/// Relays headers from `btc` to the L2 through `l2`.
pub struct Relayer {
    btc: Bitcoind,
    l2: L2Client,
    pending: Option<Txid>,
    /// Most headers per call.
    pub batch: usize,
}

impl Relayer {
    /// A relayer.
    pub fn new(btc: Bitcoind, l2: L2Client) -> Self {
        Relayer {
            btc,
            l2,
            pending: None,
            batch: MAX_HEADERS_PER_CALL,
        }
    }

    fn btc_hash(&self, height: u32) -> Result<String> {
        Ok(self
            .btc
            .call("getblockhash", json!([height]))?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    fn tracked(&self, hash: &str) -> Result<bool> {
        match self.l2.call("getbtcblock", json!([hash])) {
            Ok(_) => Ok(true),
            Err(e) if e.to_string().contains("not tracked") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// One round: wait for the pending batch, else send the next one.
    pub fn step(&mut self) -> Result<Step> {
        if let Some(txid) = self.pending {
            match self.l2.receipt(txid)? {
                Some(r) => {
                    if r["success"].as_bool() != Some(true) {
                        tracing::warn!(%txid, error = %r["error"], "header batch refused");
                    }
                    self.pending = None;
                }
                None if self.l2.tx_known(txid)? => return Ok(Step::Waiting(txid)),
                None => {
                    tracing::warn!(%txid, "header batch dropped by the L2 node; resending");
                    self.pending = None;
                }
            }
        }
        let info = self.l2.peg_info()?;
        let l2_height = info["btc_tip"]["height"].as_u64().unwrap_or(0) as u32;
        let l2_hash = info["btc_tip"]["hash"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let btc_height = self
            .btc
            .call("getblockcount", json!([]))
            .context("asking bitcoind for its height")?
            .as_u64()
            .unwrap_or(0) as u32;
        // The highest Bitcoin best-chain block the L2 tracks (on any of its branches).
        let mut fork = l2_height.min(btc_height);
        loop {
            let h = self.btc_hash(fork)?;
            if (fork == l2_height && h == l2_hash) || self.tracked(&h)? {
                break;
            }
            if fork == 0 {
                anyhow::bail!("bitcoind's chain shares no block with the L2's tracked headers (wrong network or checkpoint?)");
            }
            fork -= 1;
        }
        if fork >= btc_height {
            return Ok(Step::UpToDate);
        }
        let last = btc_height.min(fork + self.batch as u32);
        let mut headers: Vec<Header> = Vec::with_capacity((last - fork) as usize);
        for h in fork + 1..=last {
            let hash = self.btc_hash(h)?;
            let hex = self.btc.call("getblockheader", json!([hash, false]))?;
            let bytes = hex::decode(hex.as_str().unwrap_or_default())
                .context("bitcoind returned a header that is not hex")?;
            headers.push(
                bitcoin::consensus::deserialize(&bytes)
                    .context("bitcoind returned an undecodable header")?,
            );
        }
        let count = headers.len();
        let txid = self.l2.send(0, &PegCall::SubmitHeaders(headers))?;
        self.pending = Some(txid);
        tracing::info!(from = fork + 1, count, %txid, "relayed Bitcoin headers to the L2");
        Ok(Step::Sent {
            txid,
            from: fork + 1,
            count,
        })
    }
}
