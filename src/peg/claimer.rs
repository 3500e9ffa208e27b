//! The claimer agent: for each Bitcoin payment of matches it is told about, waits until the
//! paying block has K confirmations on the L2's tracked Bitcoin chain, then submits the claim
//! with an SPV proof, and retries with backoff (a reorg that moves the payment to another
//! block gets a fresh proof). Its work list lives in SQLite, so it survives restarts.

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, TxMerkleNode, Txid as BtcTxid};
use rexe_bridge::call::PegCall;
use rexe_bridge::peg::MatchId;
use rexe_bridge::spv;
use rexe_chain::Txid;
use rexe_miner::bitcoind::Bitcoind;
use rusqlite::{params, Connection};
use serde_json::json;

use super::l2::L2Client;

/// Where a confirmed transaction sits, with what a claim needs.
#[derive(Debug, Clone)]
pub struct TxProof {
    /// Consensus-encoded transaction.
    pub raw: Vec<u8>,
    /// Its block.
    pub block: BlockHash,
    /// Merkle branch (internal byte order).
    pub branch: Vec<TxMerkleNode>,
    /// Position in the block.
    pub position: u32,
}

/// Something that can prove a Bitcoin transaction's inclusion.
pub trait ProofSource {
    /// `Ok(None)` while unconfirmed.
    fn proof(&self, txid: BtcTxid) -> Result<Option<TxProof>>;
}

/// bitcoind's JSON-RPC (`getrawtransaction` verbose + `getblock`): needs `-txindex` on a
/// real bitcoind for transactions the node's wallet does not know.
impl ProofSource for Bitcoind {
    fn proof(&self, txid: BtcTxid) -> Result<Option<TxProof>> {
        let v = self
            .call("getrawtransaction", json!([txid.to_string(), true]))
            .with_context(|| format!("getrawtransaction {txid}"))?;
        let Some(block) = v["blockhash"].as_str() else {
            return Ok(None);
        };
        let raw = hex::decode(v["hex"].as_str().unwrap_or_default())?;
        let b = self.call("getblock", json!([block, 1]))?;
        let txids: Vec<BtcTxid> = b["tx"]
            .as_array()
            .ok_or_else(|| anyhow!("getblock {block} has no tx list"))?
            .iter()
            .map(|t| t.as_str().unwrap_or_default().parse())
            .collect::<Result<_, _>>()
            .context("getblock returned a bad txid")?;
        let position = txids
            .iter()
            .position(|t| *t == txid)
            .ok_or_else(|| anyhow!("{txid} not in block {block}"))?;
        Ok(Some(TxProof {
            raw,
            block: block.parse().context("bad block hash")?,
            branch: spv::branch_for(&txids, position)
                .into_iter()
                .map(TxMerkleNode::from_byte_array)
                .collect(),
            position: position as u32,
        }))
    }
}

/// One claim's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The payment is not in a block yet, or not K deep on the L2's tracked chain.
    Waiting(String),
    /// The claim was submitted.
    Submitted(Txid),
    /// Claimed: the rxBTC is released.
    Done,
    /// The claim failed; retrying later.
    Retry(String),
}

/// The claimer.
pub struct Claimer<P: ProofSource> {
    source: P,
    l2: L2Client,
    db: Connection,
}

fn backoff_secs(attempts: i64) -> i64 {
    (1i64 << attempts.clamp(0, 8)).min(300)
}

impl<P: ProofSource> Claimer<P> {
    /// Opens (creating) the work list at `path` (mode 0600).
    pub fn open(path: &Path, source: P, l2: L2Client) -> Result<Self> {
        let new = !path.exists();
        let db = Connection::open(path)
            .with_context(|| format!("opening the claimer's state {}", path.display()))?;
        if new {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS claims (
                btc_txid  TEXT PRIMARY KEY,
                match_ids TEXT NOT NULL,
                state     TEXT NOT NULL,      -- waiting | submitted | done
                l2_txid   TEXT,
                attempts  INTEGER NOT NULL DEFAULT 0,
                next_try  INTEGER NOT NULL DEFAULT 0,
                last_note TEXT
            );",
        )?;
        Ok(Claimer { source, l2, db })
    }

    /// Adds a payment to watch (idempotent).
    pub fn watch(&self, btc_txid: BtcTxid, ids: &[MatchId]) -> Result<()> {
        let ids: Vec<String> = ids.iter().map(|i| i.0.to_string()).collect();
        self.db.execute(
            "INSERT OR IGNORE INTO claims (btc_txid, match_ids, state) VALUES (?1, ?2, 'waiting')",
            params![btc_txid.to_string(), ids.join(",")],
        )?;
        Ok(())
    }

    /// Payments not yet claimed.
    pub fn open_count(&self) -> Result<usize> {
        Ok(self.db.query_row(
            "SELECT COUNT(*) FROM claims WHERE state != 'done'",
            [],
            |r| r.get::<_, i64>(0),
        )? as usize)
    }

    fn note(
        &self,
        txid: &str,
        state: &str,
        l2: Option<String>,
        note: &str,
        retry_in: Option<i64>,
        now: i64,
    ) -> Result<()> {
        let bump = i64::from(retry_in.is_some());
        self.db.execute(
            "UPDATE claims SET state = ?2, l2_txid = COALESCE(?3, l2_txid), last_note = ?4,
                 attempts = attempts + ?5, next_try = ?6 WHERE btc_txid = ?1",
            params![txid, state, l2, note, bump, now + retry_in.unwrap_or(0)],
        )?;
        Ok(())
    }

    /// One pass over the work list; `now` in unix seconds.
    pub fn step(&self, now: i64) -> Result<Vec<(BtcTxid, Progress)>> {
        let rows: Vec<(String, String, String, Option<String>, i64)> = {
            let mut st = self.db.prepare(
                "SELECT btc_txid, match_ids, state, l2_txid, attempts FROM claims
                 WHERE state != 'done' AND next_try <= ?1",
            )?;
            let r = st.query_map([now], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?;
            r.collect::<Result<_, _>>()?
        };
        let k = self.l2.peg_info()?["confirmations_required"]
            .as_u64()
            .unwrap_or(1);
        let mut out = Vec::new();
        for (txid_s, ids_s, state, l2_txid, attempts) in rows {
            let txid: BtcTxid = txid_s.parse().context("stored txid")?;
            let progress =
                self.advance(&txid_s, txid, &ids_s, &state, l2_txid, attempts, k, now)?;
            out.push((txid, progress));
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn advance(
        &self,
        txid_s: &str,
        txid: BtcTxid,
        ids_s: &str,
        state: &str,
        l2_txid: Option<String>,
        attempts: i64,
        k: u64,
        now: i64,
    ) -> Result<Progress> {
        if state == "submitted" {
            let l2: Txid = l2_txid
                .as_deref()
                .unwrap_or_default()
                .parse()
                .map_err(|_| anyhow!("stored L2 txid is not valid"))?;
            return match self.l2.receipt(l2)? {
                Some(r) if r["success"].as_bool() == Some(true) => {
                    self.note(txid_s, "done", None, "claimed", None, now)?;
                    Ok(Progress::Done)
                }
                Some(r) => {
                    let err = r["error"].as_str().unwrap_or("refused").to_string();
                    if err.contains("already claimed") {
                        self.note(txid_s, "done", None, &err, None, now)?;
                        return Ok(Progress::Done);
                    }
                    self.note(
                        txid_s,
                        "waiting",
                        None,
                        &err,
                        Some(backoff_secs(attempts)),
                        now,
                    )?;
                    Ok(Progress::Retry(err))
                }
                None if self.l2.tx_known(l2)? => Ok(Progress::Submitted(l2)),
                None => {
                    let msg = "claim transaction dropped by the L2 node".to_string();
                    self.note(
                        txid_s,
                        "waiting",
                        None,
                        &msg,
                        Some(backoff_secs(attempts)),
                        now,
                    )?;
                    Ok(Progress::Retry(msg))
                }
            };
        }
        let Some(proof) = self.source.proof(txid)? else {
            let msg = "payment not confirmed on Bitcoin yet".to_string();
            self.note(txid_s, "waiting", None, &msg, Some(2), now)?;
            return Ok(Progress::Waiting(msg));
        };
        let conf = match self
            .l2
            .call("getbtcblock", json!([proof.block.to_string()]))
        {
            Ok(v) if v["on_best_chain"].as_bool() == Some(true) => {
                v["confirmations"].as_u64().unwrap_or(0)
            }
            Ok(_) => 0,
            Err(e) if e.to_string().contains("not tracked") => 0,
            Err(e) => return Err(e),
        };
        if conf < k {
            let msg = format!("{conf} of {k} confirmations on the L2's Bitcoin chain");
            self.note(txid_s, "waiting", None, &msg, Some(2), now)?;
            return Ok(Progress::Waiting(msg));
        }
        let match_ids: Vec<MatchId> = ids_s
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().map(MatchId))
            .collect::<Result<_, _>>()
            .context("stored match ids")?;
        let call = PegCall::Claim {
            raw_tx: proof.raw,
            block_hash: proof.block,
            branch: proof.branch,
            position: proof.position,
            match_ids,
        };
        match self.l2.send(0, &call) {
            Ok(l2) => {
                self.note(
                    txid_s,
                    "submitted",
                    Some(l2.to_string()),
                    "claim submitted",
                    None,
                    now,
                )?;
                tracing::info!(btc_txid = %txid, l2_txid = %l2, "claim submitted");
                Ok(Progress::Submitted(l2))
            }
            Err(e) => {
                let msg = format!("{e:#}");
                if msg.contains("already claimed") {
                    self.note(txid_s, "done", None, &msg, None, now)?;
                    return Ok(Progress::Done);
                }
                self.note(
                    txid_s,
                    "waiting",
                    None,
                    &msg,
                    Some(backoff_secs(attempts)),
                    now,
                )?;
                Ok(Progress::Retry(msg))
            }
        }
    }
}
