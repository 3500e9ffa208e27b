//! The header relayer: keeps the L2's tracked Bitcoin header chain current from bitcoind's
//! JSON-RPC or an Electrum server, following Bitcoin reorgs (it finds the highest block of
//! the source's best chain the L2 already tracks and sends the headers above it). One call at
//! a time: the next batch is sent once the previous one has run. After a restart it waits
//! while its key has calls in the mempool (a batch sent just before a crash) and for the
//! block that runs them, instead of sending the same headers twice.

use super::error::{AgentError, Result};
use rexe_bridge::call::{PegCall, MAX_HEADERS_PER_CALL};
use rexe_chain::Txid;
use serde_json::json;

use super::source::BitcoinSource;
use crate::client::L2Client;

/// What one relayer step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The L2 tracks the source's tip.
    UpToDate,
    /// A previous batch has not run yet.
    Waiting(Txid),
    /// Our key has transactions in the mempool (a batch sent before a restart): wait.
    Busy {
        /// How many.
        pending: u64,
    },
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

/// Where the relayer stands with calls it may have sent before it started.
#[derive(Debug, Clone, Copy)]
enum Startup {
    /// Not looked yet.
    Unknown,
    /// Waiting until our confirmed nonce reaches this (all our calls at start included).
    Included(u64),
    /// Waiting until the L2 reaches this height (the block that runs them).
    Run(u64),
}

/// Relays headers from `btc` to the L2 through `l2`.
pub struct Relayer<S: BitcoinSource> {
    btc: S,
    l2: L2Client,
    pending: Option<Txid>,
    /// At start: our account's next nonce then (`None` once handled). A batch sent just
    /// before a restart may still be in the mempool: the relayer waits until every
    /// transaction of ours that existed at start is included, then for the block that runs
    /// them, instead of sending the same headers twice.
    startup: Option<Startup>,
    /// Most headers per call.
    pub batch: u32,
}

impl<S: BitcoinSource> Relayer<S> {
    /// A relayer.
    pub fn new(btc: S, l2: L2Client) -> Self {
        Relayer {
            btc,
            l2,
            pending: None,
            startup: Some(Startup::Unknown),
            batch: MAX_HEADERS_PER_CALL as u32,
        }
    }

    fn tracked(&self, hash: &bitcoin::BlockHash) -> Result<bool> {
        match self.l2.call("getbtcblock", json!([hash.to_string()])) {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// One round: wait for the pending batch, else send the next one.
    pub fn step(&mut self) -> Result<Step> {
        if let Some(txid) = self.pending {
            match self.l2.receipt(txid)? {
                Some(r) => {
                    if !r.success {
                        let error = r.error.as_deref().unwrap_or("refused");
                        tracing::warn!(%txid, error, "header batch refused");
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
        // After a restart `pending` is forgotten: wait for what we sent before it.
        match self.startup {
            None => {}
            Some(Startup::Unknown) => {
                let (nonce, next) = self.l2.nonces()?;
                self.startup = (next > nonce).then_some(Startup::Included(next));
                if next > nonce {
                    return Ok(Step::Busy {
                        pending: next - nonce,
                    });
                }
            }
            Some(Startup::Included(until)) => {
                let (nonce, _) = self.l2.nonces()?;
                if nonce < until {
                    return Ok(Step::Busy {
                        pending: until - nonce,
                    });
                }
                // Included; a call runs on the global lane one block after its inclusion.
                let h = self
                    .l2
                    .call("getblockcount", json!([]))?
                    .as_u64()
                    .unwrap_or(0);
                self.startup = Some(Startup::Run(h + 1));
                return Ok(Step::Busy { pending: 0 });
            }
            Some(Startup::Run(at)) => {
                let h = self
                    .l2
                    .call("getblockcount", json!([]))?
                    .as_u64()
                    .unwrap_or(0);
                if h < at {
                    return Ok(Step::Busy { pending: 0 });
                }
                self.startup = None;
            }
        }
        let info = self.l2.peg_info()?;
        let (l2_height, l2_hash) = (info.btc_tip.height, info.btc_tip.hash);
        let btc_height = self.btc.tip_height()?;
        // The highest block of the source's best chain that the L2 tracks (on any branch).
        let mut fork = l2_height.min(btc_height);
        loop {
            let h = self.btc.hash_at(fork)?;
            if (fork == l2_height && h.to_string() == l2_hash) || self.tracked(&h)? {
                break;
            }
            if fork == 0 {
                return Err(AgentError::NoCommonBlock(self.btc.describe()));
            }
            fork -= 1;
        }
        if fork >= btc_height {
            return Ok(Step::UpToDate);
        }
        let count = (btc_height - fork).min(self.batch);
        let headers = self.btc.headers(fork + 1, count)?;
        if headers.is_empty() {
            return Ok(Step::UpToDate);
        }
        let count = headers.len();
        let txid = self.l2.send(0, &PegCall::SubmitHeaders(headers))?;
        self.pending = Some(txid);
        crate::client::failpoint("relayer-after-send");
        tracing::info!(from = fork + 1, count, %txid, source = %self.btc.describe(), "relayed Bitcoin headers to the L2");
        Ok(Step::Sent {
            txid,
            from: fork + 1,
            count,
        })
    }
}
