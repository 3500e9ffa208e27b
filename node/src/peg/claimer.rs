//! The claimer agent: for each Bitcoin payment of matches it is told about, waits until the
//! paying block has K confirmations on the L2's tracked Bitcoin chain, then submits the claim
//! with an SPV proof (from Electrum's `blockchain.transaction.get_merkle` or bitcoind), and
//! retries with backoff. A Bitcoin reorg that moves the payment to another block gets a fresh
//! proof at the next try. Its work list lives in SQLite (mode 0600), so it survives restarts.
//!
//! Crash safety: the signed claim transaction is stored *before* it is sent. After a crash at
//! any point the next run finds it in the L2 mempool, in a receipt, or resends the very same
//! transaction; only when that one can no longer be admitted (its proof went stale in a
//! Bitcoin reorg, its nonce was used) does it build a new claim. So a claim is never sent
//! twice for the same proof. (`REXE_FAILPOINT=claimer-before-send|claimer-after-send`
//! aborts the process at those points, for the crash tests.)

use std::path::Path;

use super::error::{AgentError, Result};
use bitcoin::hex::{DisplayHex, FromHex};
use bitcoin::{ScriptBuf, Txid as BtcTxid};
use rexe_bridge::peg::MatchId;
use rexe_chain::encode::Encode as _;
use rexe_chain::system::RefusalKind;
use rexe_chain::Txid;
use rusqlite::{params, Connection, OptionalExtension};

use super::source::BitcoinSource;
use crate::api::{MatchInfo, MatchStatus};
use crate::client::L2Client;
use crate::Report;

/// One claim's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The payment is not in a block yet, or not K deep on the L2's tracked chain.
    Waiting(String),
    /// The claim was submitted.
    Submitted(Txid),
    /// Claimed: the rxBTC is released.
    Done,
    /// The claim failed for a passing reason; retrying later.
    Retry(String),
    /// The claim can never succeed (a match expired, the payment is short, ...).
    Failed(String),
}

/// The claimer.
pub struct Claimer<S: BitcoinSource> {
    source: S,
    l2: L2Client,
    db: Connection,
}

fn backoff_secs(attempts: i64) -> i64 {
    (1i64 << attempts.clamp(0, 8)).min(300)
}

/// A row of the work list.
struct Work {
    btc_txid: String,
    match_ids: Vec<MatchId>,
    state: String,
    l2_txid: Option<String>,
    /// The signed claim transaction (hex), stored before it is sent.
    l2_tx: Option<String>,
    attempts: i64,
}

impl<S: BitcoinSource> Claimer<S> {
    /// Opens (creating, mode 0600) the work list at `path`.
    pub fn open(path: &Path, source: S, l2: L2Client) -> Result<Self> {
        let db = open_db(path)?;
        Ok(Claimer { source, l2, db })
    }

    /// Adds a payment of `ids` to watch (idempotent).
    pub fn watch(&self, btc_txid: BtcTxid, ids: &[MatchId]) -> Result<()> {
        watch(&self.db, btc_txid, ids)
    }

    /// Payments neither claimed nor failed.
    pub fn open_count(&self) -> Result<usize> {
        Ok(self.db.query_row(
            "SELECT COUNT(*) FROM claims WHERE state NOT IN ('done', 'failed')",
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

    /// One pass over the payments due at `now` (unix seconds).
    pub fn step(&self, now: i64) -> Result<Vec<(BtcTxid, Progress)>> {
        let rows: Vec<Work> = {
            let mut st = self.db.prepare(
                "SELECT btc_txid, match_ids, state, l2_txid, attempts, l2_tx FROM claims
                 WHERE state NOT IN ('done', 'failed') AND next_try <= ?1 ORDER BY btc_txid",
            )?;
            let r = st.query_map([now], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?;
            r.map(|row| {
                let (btc_txid, ids, state, l2_txid, attempts, l2_tx) = row?;
                Ok(Work {
                    match_ids: parse_ids(&ids)?,
                    btc_txid,
                    state,
                    l2_txid,
                    l2_tx,
                    attempts,
                })
            })
            .collect::<Result<_>>()?
        };
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let k = u64::from(self.l2.peg_info()?.confirmations_required);
        let mut out = Vec::new();
        for w in rows {
            let txid: BtcTxid = w
                .btc_txid
                .parse()
                .map_err(|_| AgentError::Corrupt("Bitcoin txid"))?;
            let progress = match self.advance(&w, txid, k, now) {
                Ok(p) => p,
                Err(e) => {
                    // The node or the Bitcoin source is unreachable: try again later.
                    let msg = Report(&e).to_string();
                    self.note(
                        &w.btc_txid,
                        &w.state,
                        None,
                        &msg,
                        Some(backoff_secs(w.attempts)),
                        now,
                    )?;
                    Progress::Retry(msg)
                }
            };
            out.push((txid, progress));
        }
        Ok(out)
    }

    /// The matches' states on the L2 (`open`, `claimed`, `expired`) and the first payee
    /// script (Electrum finds the payment by it).
    fn matches(&self, ids: &[MatchId]) -> Result<(Vec<MatchInfo>, ScriptBuf)> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.l2.peer().peg_match(id.0)?);
        }
        let script = out
            .first()
            .and_then(|m| Vec::<u8>::from_hex(&m.payee_script.hex).ok())
            .map(ScriptBuf::from_bytes)
            .ok_or_else(|| {
                AgentError::Answer(format!(
                    "the L2 node gave no payee script for match {:?}",
                    ids[0]
                ))
            })?;
        Ok((out, script))
    }

    fn advance(&self, w: &Work, txid: BtcTxid, k: u64, now: i64) -> Result<Progress> {
        let id = w.btc_txid.as_str();
        let (matches, payee) = self.matches(&w.match_ids)?;
        if matches.iter().all(|m| m.state == MatchStatus::Claimed) {
            self.note(id, "done", None, "claimed", None, now)?;
            return Ok(Progress::Done);
        }
        // An expired match can still be claimed late while its order holds the escrow.
        if let Some(m) = matches
            .iter()
            .find(|m| m.state == MatchStatus::Expired && !m.escrow_claimable)
        {
            let msg = format!(
                "match {} expired unpaid and its escrow was re-taken or refunded",
                m.match_id
            );
            self.note(id, "failed", None, &msg, None, now)?;
            return Ok(Progress::Failed(msg));
        }
        if w.state == "submitted" {
            let l2: Txid = w
                .l2_txid
                .as_deref()
                .unwrap_or_default()
                .parse()
                .map_err(|_| AgentError::Corrupt("L2 txid"))?;
            return match self.l2.receipt(l2)? {
                Some(r) if r.success => {
                    self.note(id, "done", None, "claimed", None, now)?;
                    Ok(Progress::Done)
                }
                Some(r) => self.refused(
                    w,
                    r.error.as_deref().unwrap_or("refused"),
                    r.refusal_kind(),
                    now,
                ),
                None if self.l2.tx_known(l2)? => Ok(Progress::Submitted(l2)),
                // Never reached the node (a crash right after it was stored), or dropped:
                // send the very same transaction again rather than a second claim.
                None => match w.l2_tx.as_deref().map(|h| self.l2.submit_hex(h, "claim")) {
                    Some(Ok(())) => {
                        tracing::info!(btc_txid = %txid, l2_txid = %l2, "claim resent");
                        Ok(Progress::Submitted(l2))
                    }
                    Some(Err(e)) => self.retry(
                        w,
                        format!(
                            "claim transaction {l2} dropped and not resendable: {}",
                            Report(&e)
                        ),
                        now,
                    ),
                    None => self.retry(w, "claim transaction dropped by the L2 node".into(), now),
                },
            };
        }
        let Some(proof) = self.source.proof(txid, &payee)? else {
            let left = matches
                .iter()
                .filter(|m| m.state == MatchStatus::Open)
                .map(|m| m.blocks_to_deadline)
                .min();
            let risk = match left {
                Some(l) if l <= i64::from(rexe_wallet::DEFAULT_BUMP_MARGIN) => format!(
                    "; AT RISK: {l} Bitcoin blocks to the deadline, raise its fee with \
                     `rexe peg bump --btc-txid {txid} --feerate <higher>`"
                ),
                _ => String::new(),
            };
            let msg = format!(
                "payment not confirmed on Bitcoin yet ({}){risk}",
                self.source.describe()
            );
            if !risk.is_empty() {
                tracing::warn!(btc_txid = %txid, "{msg}");
            }
            self.note(id, "waiting", None, &msg, Some(2), now)?;
            return Ok(Progress::Waiting(msg));
        };
        let conf = match self.l2.peer().btc_block(&proof.block.to_string()) {
            Ok(b) if b.on_best_chain => u64::from(b.confirmations),
            Ok(_) => 0,
            Err(e) if e.is_not_found() => 0,
            Err(e) => return Err(e.into()),
        };
        if conf < k {
            let msg = format!(
                "block {} at height {}: {conf} of {k} confirmations on the L2's Bitcoin chain",
                proof.block, proof.height
            );
            self.note(id, "waiting", None, &msg, Some(2), now)?;
            return Ok(Progress::Waiting(msg));
        }
        let call = proof.claim(w.match_ids.clone());
        // Stored before it is sent: a crash at any point leaves either nothing sent, or a
        // stored transaction that the next run finds in the mempool, in a receipt, or resends.
        let tx = self.l2.build(0, &call)?;
        let l2 = tx.txid();
        self.db.execute(
            "UPDATE claims SET state = 'submitted', l2_txid = ?2, l2_tx = ?3,
                 last_note = 'claim signed' WHERE btc_txid = ?1",
            params![id, l2.to_string(), tx.to_bytes().to_lower_hex_string()],
        )?;
        crate::client::failpoint("claimer-before-send");
        match self.l2.submit(&tx, "claim") {
            Ok(()) => {
                crate::client::failpoint("claimer-after-send");
                self.note(id, "submitted", None, "claim submitted", None, now)?;
                tracing::info!(btc_txid = %txid, l2_txid = %l2, "claim submitted");
                Ok(Progress::Submitted(l2))
            }
            Err(e) => {
                let msg = Report(&e).to_string();
                match e.refusal_kind() {
                    Some(kind) => self.refused(w, &msg, Some(kind), now),
                    None => self.retry(w, msg, now),
                }
            }
        }
    }

    /// Back to waiting, with backoff.
    fn retry(&self, w: &Work, msg: String, now: i64) -> Result<Progress> {
        self.note(
            &w.btc_txid,
            "waiting",
            None,
            &msg,
            Some(backoff_secs(w.attempts)),
            now,
        )?;
        Ok(Progress::Retry(msg))
    }

    /// The peg refused the claim (at admission or when it ran): done if the match is
    /// claimed already, again later if the refusal is retryable (headers not relayed yet,
    /// not deep enough, a Bitcoin reorg), failed otherwise. Decided on the refusal's kind.
    fn refused(
        &self,
        w: &Work,
        err: &str,
        kind: Option<RefusalKind>,
        now: i64,
    ) -> Result<Progress> {
        if kind == Some(RefusalKind::AlreadyDone) {
            self.note(&w.btc_txid, "done", None, err, None, now)?;
            return Ok(Progress::Done);
        }
        if kind == Some(RefusalKind::Retryable) {
            self.note(
                &w.btc_txid,
                "waiting",
                None,
                err,
                Some(backoff_secs(w.attempts)),
                now,
            )?;
            return Ok(Progress::Retry(err.to_string()));
        }
        self.note(&w.btc_txid, "failed", None, err, None, now)?;
        tracing::warn!(btc_txid = %w.btc_txid, error = err, "claim can never succeed");
        Ok(Progress::Failed(err.to_string()))
    }
}

fn parse_ids(s: &str) -> Result<Vec<MatchId>> {
    s.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map(MatchId))
        .collect::<Result<_, _>>()
        .map_err(|_| AgentError::Corrupt("match id list"))
}

/// Opens (creating, mode 0600) a claimer work list.
pub fn open_db(path: &Path) -> Result<Connection> {
    let new = !path.exists();
    let db = Connection::open(path)?;
    if new {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(
            |source| AgentError::Io {
                what: format!("protecting the claimer's state {}", path.display()),
                source,
            },
        )?;
    }
    db.execute_batch(
        "CREATE TABLE IF NOT EXISTS claims (
            btc_txid  TEXT PRIMARY KEY,
            match_ids TEXT NOT NULL,
            state     TEXT NOT NULL,      -- waiting | submitted | done | failed
            l2_txid   TEXT,
            attempts  INTEGER NOT NULL DEFAULT 0,
            next_try  INTEGER NOT NULL DEFAULT 0,
            last_note TEXT
        );",
    )?;
    // Work lists from before the claim transaction was stored.
    let has_tx: bool = db
        .prepare("SELECT 1 FROM pragma_table_info('claims') WHERE name = 'l2_tx'")?
        .exists([])?;
    if !has_tx {
        db.execute_batch("ALTER TABLE claims ADD COLUMN l2_tx TEXT;")?;
    }
    Ok(db)
}

/// Adds a payment to a work list (idempotent). A replacement (RBF) of a watched payment is
/// watched under its own txid: whichever confirms is claimed, the other never confirms.
pub fn watch(db: &Connection, btc_txid: BtcTxid, ids: &[MatchId]) -> Result<()> {
    let ids: Vec<String> = ids.iter().map(|i| i.0.to_string()).collect();
    db.execute(
        "INSERT OR IGNORE INTO claims (btc_txid, match_ids, state) VALUES (?1, ?2, 'waiting')",
        params![btc_txid.to_string(), ids.join(",")],
    )?;
    Ok(())
}

/// The match ids a watched payment pays.
pub fn watched_ids(db: &Connection, btc_txid: BtcTxid) -> Result<Option<Vec<MatchId>>> {
    let ids: Option<String> = db
        .query_row(
            "SELECT match_ids FROM claims WHERE btc_txid = ?1",
            [btc_txid.to_string()],
            |r| r.get(0),
        )
        .optional()?;
    ids.map(|s| parse_ids(&s)).transpose()
}
