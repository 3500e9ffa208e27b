//! `chain.sqlite`: every known block (header, body, chainwork, status), the active chain
//! and the relays each connected block emitted. Committed with `synchronous=FULL` at every
//! block: this log is what makes a block durable.
//!
//! A block's log write can run on a thread of its own ([`ChainDb::connect_in_background`]),
//! so that its insert and fsync overlap with the next block's execution. Every other use of
//! the database waits for it first, so nothing reads or writes around an unfinished write;
//! a background write that fails leaves the database refusing everything after it
//! ([`StoreError::LogWrite`]): the block is applied in memory but not logged, and the node
//! must restart from the last logged block (the shards' state is never written past the
//! log: [`ChainDb::sync`] comes first).

use std::path::Path;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use rusqlite::{params, Connection, OptionalExtension};

use super::{chain_migrations, open_db, StoreError};
use crate::block::Header;
use crate::encode::Encode;
use crate::global::ItemChange;
use crate::hash::{BlockHash, Hash256, Txid};
use crate::system::{CallError, Receipt, RefusalKind};

/// Validation status of a stored block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockStatus {
    /// Header and seal checked; body not yet executed.
    HeaderValid = 0,
    /// Executed and connected at least once.
    Valid = 1,
    /// Failed validation (or descends from a block that did).
    Invalid = 2,
}

impl BlockStatus {
    fn from_i64(v: i64) -> Result<Self, StoreError> {
        match v {
            0 => Ok(BlockStatus::HeaderValid),
            1 => Ok(BlockStatus::Valid),
            2 => Ok(BlockStatus::Invalid),
            _ => Err(StoreError::corrupt("block status", v)),
        }
    }
}

/// A block-index row (without the body).
#[derive(Clone, Debug)]
pub struct BlockRow {
    /// Block hash.
    pub hash: BlockHash,
    /// Height.
    pub height: u64,
    /// Encoded header.
    pub header: Vec<u8>,
    /// Cumulative work, big-endian.
    pub chainwork: [u8; 32],
    /// Status.
    pub status: BlockStatus,
}

/// Everything [`ChainDb::connect`] writes for one block.
pub struct ConnectRecord<'a> {
    /// Height of the block.
    pub height: u64,
    /// Its hash.
    pub hash: BlockHash,
    /// Its encoded outbound relays.
    pub relays: &'a [u8],
    /// `(header, body, chainwork)` when the block is new (not stored yet).
    pub new_block: Option<(&'a Header, &'a [u8], [u8; 32])>,
    /// The items its global lane changed (an encoded changeset), when it changed any.
    pub global_changes: Option<&'a [u8]>,
    /// Receipts of the calls its global lane ran.
    pub receipts: &'a [Receipt],
    /// Contract receipts `(originating txid, JSON)`, in execution order.
    pub contract_receipts: &'a [(Txid, String)],
    /// Its base fee per shard (u64 LE each), when kept.
    pub block_fees: Option<&'a [u8]>,
}

/// Where a transaction was included: txid, block, shard, position in the shard's list.
pub type TxIndexEntry = (Txid, BlockHash, u16, u32);

/// A stored item of the global state: contract id, key, value.
pub type GlobalRow = (u8, Vec<u8>, Vec<u8>);

/// [`ConnectRecord`] with owned data, for a write on the log thread.
#[derive(Debug)]
pub struct ConnectJob {
    /// Height of the block.
    pub height: u64,
    /// Its hash.
    pub hash: BlockHash,
    /// Relays it emitted (encoded).
    pub relays: Vec<u8>,
    /// `(header, body, chainwork)` when the block is new.
    pub new_block: Option<(Header, Vec<u8>, [u8; 32])>,
    /// Its global lane's changeset, when it changed anything.
    pub global_changes: Option<Vec<u8>>,
    /// Receipts of the calls its global lane ran.
    pub receipts: Vec<Receipt>,
    /// Contract receipts `(originating txid, JSON)`.
    pub contract_receipts: Vec<(Txid, String)>,
    /// Its base fee per shard (u64 LE each), when kept.
    pub block_fees: Option<Vec<u8>>,
}

impl ConnectJob {
    /// The same, borrowed.
    pub fn record(&self) -> ConnectRecord<'_> {
        ConnectRecord {
            height: self.height,
            hash: self.hash,
            relays: &self.relays,
            new_block: self.new_block.as_ref().map(|(h, b, w)| (h, &b[..], *w)),
            global_changes: self.global_changes.as_deref(),
            receipts: &self.receipts,
            contract_receipts: &self.contract_receipts,
            block_fees: self.block_fees.as_deref(),
        }
    }
}

/// The thread that writes blocks to the log in the background: it receives the connection
/// with a job and hands it back, raising the [`LogFault`] first if the write failed.
struct LogThread {
    jobs: Sender<(Connection, ConnectJob)>,
    done: Receiver<Connection>,
    handle: std::thread::JoinHandle<()>,
}

/// The connection and the state of a background write.
struct Inner {
    /// `None` while the log thread has it.
    conn: Option<Connection>,
    log: Option<LogThread>,
}

impl Inner {
    /// Waits for a background write to finish and takes the connection back; the error
    /// once `fault` is raised (the database refuses everything after a failed write).
    fn settle(&mut self, fault: &LogFault) -> Result<(), StoreError> {
        if self.conn.is_none() && fault.get().is_none() {
            match self.log.as_ref().map(|l| l.done.recv()) {
                Some(Ok(conn)) => self.conn = Some(conn),
                _ => fault.set("the block-log thread stopped".into()),
            }
        }
        match fault.get() {
            Some(why) => Err(StoreError::LogWrite(why.to_string())),
            None => Ok(()),
        }
    }
}

/// The connection, once no background write holds it.
struct Conn<'a>(MutexGuard<'a, Inner>);

impl std::ops::Deref for Conn<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.0.conn.as_ref().expect("settled before use")
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        self.0.conn.as_mut().expect("settled before use")
    }
}

/// Set once, by the block-log thread, when a background write fails: a node watches it
/// (without taking the chain's lock) to stop itself, as Bitcoin Core stops on a failed
/// disk write, instead of refusing every request until someone restarts it.
#[derive(Clone, Debug, Default)]
pub struct LogFault(Arc<OnceLock<String>>);

impl LogFault {
    /// Why a background write failed, once one has.
    pub fn get(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }

    /// Raises the flag (the first failure is the one kept, and logged).
    fn set(&self, why: String) {
        if self.0.set(why).is_ok() {
            let why = self.get().unwrap_or_default();
            tracing::error!(error = %why, "writing a block to chain.sqlite failed: restart the node");
        }
    }
}

/// The chain database.
pub struct ChainDb {
    inner: Mutex<Inner>,
    fault: LogFault,
    /// Bytes committed since [`ChainDb::checkpoint_due`] last said yes (approximate).
    unchecked_bytes: u64,
}

impl Drop for ChainDb {
    fn drop(&mut self) {
        let inner = self.inner.get_mut().unwrap_or_else(|e| e.into_inner());
        // The last block's write finishes (and is fsynced) before the file is closed.
        let _ = inner.settle(&self.fault);
        if let Some(log) = inner.log.take() {
            drop(log.jobs);
            let _ = log.handle.join();
        }
    }
}

/// Bytes of block log written between two checkpoint requests.
const CHECKPOINT_BYTES: u64 = 32 << 20;

/// Stores a block's index row and body (idempotent), inside the caller's transaction.
fn insert_block(
    tx: &rusqlite::Transaction<'_>,
    header: &Header,
    body: &[u8],
    chainwork: [u8; 32],
    status: BlockStatus,
) -> Result<(), StoreError> {
    let hash = header.hash();
    tx.prepare_cached("INSERT OR IGNORE INTO blocks VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?
        .execute(params![
            &hash.0 .0[..],
            header.height as i64,
            &header.prev.0 .0[..],
            header.to_bytes(),
            &chainwork[..],
            status as i64
        ])?;
    tx.prepare_cached("INSERT OR IGNORE INTO block_bodies VALUES (?1, ?2)")?
        .execute(params![&hash.0 .0[..], body])?;
    Ok(())
}

/// Bytes a block's log record adds to the WAL (approximate: the large columns).
fn logged_bytes(rec: &ConnectRecord<'_>) -> u64 {
    rec.relays.len() as u64
        + rec.new_block.map_or(0, |(_, body, _)| body.len() as u64)
        + rec.global_changes.map_or(0, |g| g.len() as u64)
}

/// Writes [`ChainDb::connect`]'s transaction on `conn`.
fn write_connect(conn: &mut Connection, rec: &ConnectRecord<'_>) -> Result<(), StoreError> {
    let hash = rec.hash;
    let height = rec.height;
    let tx = conn.transaction()?;
    {
        let mut ins =
            tx.prepare_cached("INSERT OR REPLACE INTO receipts VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
        for r in rec.receipts {
            let e = r.error.as_ref();
            ins.execute(params![
                &r.txid.0 .0[..],
                &hash.0 .0[..],
                r.contract.0 as i64,
                e.map(|e| e.message.as_str()),
                e.map(|e| e.kind.as_str()),
                e.and_then(|e| e.code.as_deref())
            ])?;
        }
        let mut ins =
            tx.prepare_cached("INSERT OR REPLACE INTO contract_receipts VALUES (?1, ?2, ?3, ?4)")?;
        for (seq, (txid, data)) in rec.contract_receipts.iter().enumerate() {
            ins.execute(params![&txid.0 .0[..], &hash.0 .0[..], seq as i64, data])?;
        }
    }
    if let Some(fees) = rec.block_fees {
        tx.prepare_cached("INSERT OR REPLACE INTO block_fees VALUES (?1, ?2)")?
            .execute(params![&hash.0 .0[..], fees])?;
    }
    if let Some(data) = rec.global_changes {
        tx.prepare_cached("INSERT OR REPLACE INTO global_change VALUES (?1, ?2, ?3)")?
            .execute(params![&hash.0 .0[..], height as i64, data])?;
    }
    if let Some((header, body, work)) = rec.new_block {
        insert_block(&tx, header, body, work, BlockStatus::Valid)?;
    }
    tx.prepare_cached("DELETE FROM active WHERE height >= ?1")?
        .execute([height as i64])?;
    tx.prepare_cached("INSERT INTO active VALUES (?1, ?2)")?
        .execute(params![height as i64, &hash.0 .0[..]])?;
    tx.prepare_cached("INSERT OR REPLACE INTO relays VALUES (?1, ?2)")?
        .execute(params![&hash.0 .0[..], rec.relays])?;
    tx.prepare_cached("UPDATE blocks SET status = 1 WHERE hash = ?1 AND status = 0")?
        .execute([&hash.0 .0[..]])?;
    tx.commit()?;
    Ok(())
}

fn hash_col(b: Vec<u8>) -> Result<BlockHash, StoreError> {
    let arr: [u8; 32] = b
        .as_slice()
        .try_into()
        .map_err(|_| StoreError::corrupt("block hash", "length"))?;
    Ok(BlockHash(Hash256(arr)))
}

impl ChainDb {
    /// Opens (creating if needed) `chain.sqlite` at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(ChainDb {
            inner: Mutex::new(Inner {
                conn: Some(open_db(path, &chain_migrations(), "FULL", 16 * 1024)?),
                log: None,
            }),
            fault: LogFault::default(),
            unchecked_bytes: 0,
        })
    }

    /// The flag a failed background write sets (see [`LogFault`]).
    pub fn fault(&self) -> LogFault {
        self.fault.clone()
    }

    /// The connection, after any background write finished.
    fn conn(&self) -> Result<Conn<'_>, StoreError> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.settle(&self.fault)?;
        Ok(Conn(g))
    }

    /// Waits until every block handed to [`ChainDb::connect_in_background`] is durable;
    /// the error of a write that failed.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.conn().map(drop)
    }

    /// [`ChainDb::connect`] on the log thread: returns at once (after the previous
    /// background write finished), and the next use of the database waits for this one.
    pub fn connect_in_background(&mut self, job: ConnectJob) -> Result<(), StoreError> {
        self.unchecked_bytes += logged_bytes(&job.record());
        let inner = self.inner.get_mut().unwrap_or_else(|e| e.into_inner());
        inner.settle(&self.fault)?;
        if inner.log.is_none() {
            let (jobs, rx) = std::sync::mpsc::channel::<(Connection, ConnectJob)>();
            let (tx, done) = std::sync::mpsc::channel();
            let fault = self.fault.clone();
            let handle = std::thread::Builder::new()
                .name("block-log".into())
                .spawn(move || {
                    while let Ok((mut conn, job)) = rx.recv() {
                        if let Err(e) = write_connect(&mut conn, &job.record()) {
                            fault.set(e.to_string());
                        }
                        // Dropped here, off the caller's thread: a block's body is megabytes.
                        drop(job);
                        if tx.send(conn).is_err() {
                            break;
                        }
                    }
                })?;
            inner.log = Some(LogThread { jobs, done, handle });
        }
        let conn = inner.conn.take().expect("settled");
        let log = inner.log.as_ref().expect("started above");
        if let Err(std::sync::mpsc::SendError((conn, job))) = log.jobs.send((conn, job)) {
            // The thread is gone: write here instead.
            inner.log = None;
            return write_connect(inner.conn.insert(conn), &job.record());
        }
        Ok(())
    }

    /// Whether enough was written since the last time this said yes that the WAL should
    /// be checkpointed (see [`super::Checkpointer`]).
    pub fn checkpoint_due(&mut self) -> bool {
        if self.unchecked_bytes < CHECKPOINT_BYTES {
            return false;
        }
        self.unchecked_bytes = 0;
        true
    }

    /// A metadata value.
    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn()?
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    /// Sets a metadata value (its own transaction).
    pub fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.conn()?.execute(
            "INSERT OR REPLACE INTO meta VALUES (?1, ?2)",
            params![key, value],
        )?;
        Ok(())
    }

    /// Stores a block (idempotent).
    pub fn insert_block(
        &self,
        header: &Header,
        body: &[u8],
        chainwork: [u8; 32],
        status: BlockStatus,
    ) -> Result<(), StoreError> {
        let conn = self.conn()?;
        let tx = conn.unchecked_transaction()?;
        insert_block(&tx, header, body, chainwork, status)?;
        tx.commit()?;
        Ok(())
    }

    /// Changes a block's status.
    pub fn set_status(&self, hash: BlockHash, status: BlockStatus) -> Result<(), StoreError> {
        self.conn()?
            .prepare_cached("UPDATE blocks SET status = ?2 WHERE hash = ?1")?
            .execute(params![&hash.0 .0[..], status as i64])?;
        Ok(())
    }

    /// Records `rec.hash` as the active block at `rec.height` (the new tip), with the relays
    /// it emitted, its transaction index, the global state it produced and its call receipts,
    /// in one durable transaction; `rec.new_block` stores the block itself in it too.
    pub fn connect(&mut self, rec: &ConnectRecord<'_>) -> Result<(), StoreError> {
        write_connect(&mut *self.conn()?, rec)?;
        self.unchecked_bytes += logged_bytes(rec);
        Ok(())
    }

    /// Records where transactions were included, `(txid, block, shard, position)`, in one
    /// transaction. Written in txid order, so that a batch touches each page of the index
    /// once (one row per transaction written at its block's commit dirtied a page each).
    pub fn index_txs(&mut self, entries: &mut [TxIndexEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        entries.sort_unstable_by_key(|e| e.0 .0 .0);
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        {
            let mut ins =
                tx.prepare_cached("INSERT OR REPLACE INTO txindex VALUES (?1, ?2, ?3, ?4)")?;
            for (txid, block, shard, pos) in entries.iter() {
                ins.execute(params![
                    &txid.0 .0[..],
                    &block.0 .0[..],
                    *shard as i64,
                    *pos as i64
                ])?;
            }
        }
        tx.commit()?;
        drop(conn);
        self.unchecked_bytes += 80 * entries.len() as u64;
        Ok(())
    }

    /// The changeset stored for `block`'s global lane, if it changed anything.
    pub fn global_changes(&self, block: BlockHash) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached("SELECT data FROM global_change WHERE block = ?1")?
            .query_row([&block.0 .0[..]], |r| r.get(0))
            .optional()?)
    }

    /// Height of the active block the stored global base is the state after (`None` before
    /// genesis is written).
    pub fn global_base_height(&self) -> Result<Option<u64>, StoreError> {
        self.meta("global_base")?
            .map(|h| {
                h.as_slice()
                    .try_into()
                    .map(u64::from_le_bytes)
                    .map_err(|_| StoreError::corrupt("global base", "length"))
            })
            .transpose()
    }

    /// The base of the global state: the height of the active block it is the state after
    /// (`None` before genesis is written), and its items as `(contract id, key, value)` in
    /// order.
    pub fn global_base(&self) -> Result<Option<(u64, Vec<GlobalRow>)>, StoreError> {
        let Some(height) = self.global_base_height()? else {
            return Ok(None);
        };
        let conn = self.conn()?;
        let mut st =
            conn.prepare_cached("SELECT system, key, value FROM global_item ORDER BY system, key")?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })?;
        let mut items = Vec::new();
        for row in rows {
            let (s, k, v) = row?;
            let s = u8::try_from(s).map_err(|_| StoreError::corrupt("global item", "system id"))?;
            items.push((s, k, v));
        }
        Ok(Some((height, items)))
    }

    /// Moves the base of the global state up to `height`: writes `changes` (the changesets of
    /// the active blocks from the old base up to `height`, in order; their new values) into
    /// the base items and drops every changeset at or below `height` (side
    /// branches' included: no reorg reaches below the base), in one transaction.
    pub fn advance_global_base(
        &mut self,
        height: u64,
        changes: &[ItemChange],
    ) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        {
            let mut put =
                tx.prepare_cached("INSERT OR REPLACE INTO global_item VALUES (?1, ?2, ?3)")?;
            let mut del =
                tx.prepare_cached("DELETE FROM global_item WHERE system = ?1 AND key = ?2")?;
            for c in changes {
                let (s, k) = (c.system.0 as i64, &c.key);
                match &c.new {
                    Some(v) => put.execute(params![s, k, v])?,
                    None => del.execute(params![s, k])?,
                };
            }
            tx.prepare_cached("DELETE FROM global_change WHERE height <= ?1")?
                .execute([height as i64])?;
            tx.prepare_cached("INSERT OR REPLACE INTO meta VALUES ('global_base', ?1)")?
                .execute([&height.to_le_bytes()[..]])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Starts the chain at a checkpoint (a new node's bootstrap, see [`crate::bootstrap`]),
    /// in one transaction: `headers` (genesis excluded, each with its chain work; no
    /// bodies) become the active chain, the last one the tip with `relays` as its stored
    /// relays; `items` become the global state's base at its height; `tracked` is the new
    /// set of shards run; and the checkpoint is recorded (see [`ChainDb::bootstrapped_at`]).
    pub fn bootstrap(
        &mut self,
        headers: &[(&Header, [u8; 32])],
        relays: &[u8],
        items: &[GlobalRow],
        tracked: &[u8],
    ) -> Result<(), StoreError> {
        let Some((last, _)) = headers.last() else {
            return Err(StoreError::corrupt("bootstrap", "no headers"));
        };
        let (height, hash) = (last.height, last.hash());
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        {
            tx.execute("DELETE FROM active WHERE height >= 1", [])?;
            let mut block =
                tx.prepare_cached("INSERT OR IGNORE INTO blocks VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
            let mut active = tx.prepare_cached("INSERT INTO active VALUES (?1, ?2)")?;
            for (h, work) in headers {
                let hash = h.hash();
                block.execute(params![
                    &hash.0 .0[..],
                    h.height as i64,
                    &h.prev.0 .0[..],
                    h.to_bytes(),
                    &work[..],
                    BlockStatus::Valid as i64
                ])?;
                active.execute(params![h.height as i64, &hash.0 .0[..]])?;
            }
            tx.prepare_cached("INSERT OR REPLACE INTO relays VALUES (?1, ?2)")?
                .execute(params![&hash.0 .0[..], relays])?;
            tx.execute("DELETE FROM global_item", [])?;
            tx.execute("DELETE FROM global_change", [])?;
            let mut put = tx.prepare_cached("INSERT INTO global_item VALUES (?1, ?2, ?3)")?;
            for (s, k, v) in items {
                put.execute(params![*s as i64, k, v])?;
            }
            let mut at = height.to_le_bytes().to_vec();
            tx.prepare_cached("INSERT OR REPLACE INTO meta VALUES ('global_base', ?1)")?
                .execute([&at[..]])?;
            tx.prepare_cached("INSERT OR REPLACE INTO meta VALUES ('tracked', ?1)")?
                .execute([tracked])?;
            at.extend_from_slice(&hash.0 .0);
            tx.prepare_cached("INSERT OR REPLACE INTO meta VALUES ('bootstrap', ?1)")?
                .execute([&at[..]])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The checkpoint this chain was started at by a bootstrap (height and hash), if any.
    pub fn bootstrapped_at(&self) -> Result<Option<(u64, BlockHash)>, StoreError> {
        self.meta("bootstrap")?
            .map(|b| {
                let bad = || StoreError::corrupt("bootstrap checkpoint", "length");
                let h: [u8; 8] = b.get(..8).and_then(|s| s.try_into().ok()).ok_or_else(bad)?;
                let hash: [u8; 32] = b.get(8..).and_then(|s| s.try_into().ok()).ok_or_else(bad)?;
                Ok((u64::from_le_bytes(h), BlockHash(Hash256(hash))))
            })
            .transpose()
    }

    /// Writes the genesis global state as the base (height 0).
    pub fn init_global_base(&mut self, items: &[GlobalRow]) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        {
            tx.execute("DELETE FROM global_item", [])?;
            let mut put = tx.prepare_cached("INSERT INTO global_item VALUES (?1, ?2, ?3)")?;
            for (s, k, v) in items {
                put.execute(params![*s as i64, k, v])?;
            }
            tx.prepare_cached("INSERT OR REPLACE INTO meta VALUES ('global_base', ?1)")?
                .execute([&0u64.to_le_bytes()[..]])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Receipts of calls made by `txid`: `(block, contract, error)` for every block whose
    /// global lane ran it (several across reorgs; the caller keeps the active one).
    pub fn receipts(
        &self,
        txid: Txid,
    ) -> Result<Vec<(BlockHash, u8, Option<CallError>)>, StoreError> {
        let conn = self.conn()?;
        let mut st = conn.prepare_cached(
            "SELECT block, contract, error, kind, code FROM receipts WHERE txid = ?1",
        )?;
        let rows = st.query_map([&txid.0 .0[..]], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (b, c, message, kind, code) = row?;
            let error = match message {
                None => None,
                Some(message) => Some(CallError {
                    kind: kind
                        .as_deref()
                        .and_then(RefusalKind::from_name)
                        .ok_or_else(|| StoreError::corrupt("receipt", "refusal kind"))?,
                    code,
                    message,
                }),
            };
            out.push((hash_col(b)?, c as u8, error));
        }
        Ok(out)
    }

    /// Contract receipts of `txid`: `(block, JSON)` in execution order, every branch.
    pub fn contract_receipts(&self, txid: Txid) -> Result<Vec<(BlockHash, String)>, StoreError> {
        let conn = self.conn()?;
        let mut st = conn.prepare_cached(
            "SELECT block, data FROM contract_receipts WHERE txid = ?1 ORDER BY block, seq",
        )?;
        let rows = st.query_map([&txid.0 .0[..]], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (b, d) = row?;
            out.push((hash_col(b)?, d));
        }
        Ok(out)
    }

    /// Truncates the active chain to `height` (the new tip).
    pub fn truncate_active(&self, height: u64) -> Result<(), StoreError> {
        self.conn()?
            .execute("DELETE FROM active WHERE height > ?1", [height as i64])?;
        Ok(())
    }

    /// The active chain's highest height and hash.
    pub fn tip(&self) -> Result<Option<(u64, BlockHash)>, StoreError> {
        let row: Option<(i64, Vec<u8>)> = self
            .conn()?
            .query_row(
                "SELECT height, hash FROM active ORDER BY height DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        row.map(|(h, b)| Ok((h as u64, hash_col(b)?))).transpose()
    }

    /// The active block at `height`.
    pub fn active_hash(&self, height: u64) -> Result<Option<BlockHash>, StoreError> {
        let b: Option<Vec<u8>> = self
            .conn()?
            .prepare_cached("SELECT hash FROM active WHERE height = ?1")?
            .query_row([height as i64], |r| r.get(0))
            .optional()?;
        b.map(hash_col).transpose()
    }

    /// A block's full encoding.
    pub fn body(&self, hash: BlockHash) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached("SELECT body FROM block_bodies WHERE hash = ?1")?
            .query_row([&hash.0 .0[..]], |r| r.get(0))
            .optional()?)
    }

    /// The base fee per shard of block `hash` (msat per gas), when stored.
    pub fn block_fees(&self, hash: BlockHash) -> Result<Option<Vec<u64>>, StoreError> {
        let row: Option<Vec<u8>> = self
            .conn()?
            .prepare_cached("SELECT fees FROM block_fees WHERE block = ?1")?
            .query_row([&hash.0 .0[..]], |r| r.get(0))
            .optional()?;
        Ok(row.map(|b| {
            b.chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect()
        }))
    }

    /// Where a transaction was included: block, shard, position (if indexed).
    pub fn tx_location(&self, txid: Txid) -> Result<Option<(BlockHash, u16, u32)>, StoreError> {
        let row: Option<(Vec<u8>, i64, i64)> = self
            .conn()?
            .prepare_cached("SELECT block, shard, pos FROM txindex WHERE txid = ?1")?
            .query_row([&txid.0 .0[..]], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        row.map(|(b, s, p)| Ok((hash_col(b)?, s as u16, p as u32)))
            .transpose()
    }

    /// Deletes the stored relays of blocks below `height`. A block's relays are read back
    /// only to restart or roll back to it, never deeper than the undo depth below the tip.
    pub fn prune_relays(&self, height: u64) -> Result<usize, StoreError> {
        let conn = self.conn()?;
        let relays = conn
            .prepare_cached(
                "DELETE FROM relays WHERE hash IN (SELECT hash FROM blocks WHERE height < ?1)",
            )?
            .execute([height as i64])?;
        let packages = conn
            .prepare_cached(
                "DELETE FROM packages WHERE hash IN (SELECT hash FROM blocks WHERE height < ?1)",
            )?
            .execute([height as i64])?;
        Ok(relays + packages)
    }

    /// Stores the package a partial node received `hash` with (see [`crate::partial`]).
    pub fn set_package(&self, hash: BlockHash, data: &[u8]) -> Result<(), StoreError> {
        self.conn()?
            .prepare_cached("INSERT OR REPLACE INTO packages VALUES (?1, ?2)")?
            .execute(params![&hash.0 .0[..], data])?;
        Ok(())
    }

    /// The package stored for `hash`.
    pub fn package(&self, hash: BlockHash) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached("SELECT data FROM packages WHERE hash = ?1")?
            .query_row([&hash.0 .0[..]], |r| r.get(0))
            .optional()?)
    }

    /// Replaces the stored relays of connected block `hash` and a metadata value in one
    /// transaction (a partial node taking up a shard at its tip).
    pub fn set_relays_and_meta(
        &mut self,
        hash: BlockHash,
        relays: &[u8],
        key: &str,
        value: &[u8],
    ) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        tx.execute(
            "UPDATE relays SET data = ?2 WHERE hash = ?1",
            params![&hash.0 .0[..], relays],
        )?;
        tx.execute(
            "INSERT OR REPLACE INTO meta VALUES (?1, ?2)",
            params![key, value],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The encoded relays a connected block emitted.
    pub fn relays(&self, hash: BlockHash) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached("SELECT data FROM relays WHERE hash = ?1")?
            .query_row([&hash.0 .0[..]], |r| r.get(0))
            .optional()?)
    }

    /// The whole block index (headers, work, status), for loading at open.
    pub fn index(&self) -> Result<Vec<BlockRow>, StoreError> {
        let conn = self.conn()?;
        let mut st = conn.prepare("SELECT hash, height, header, chainwork, status FROM blocks")?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, Vec<u8>>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (hash, height, header, work, status) = row?;
            out.push(BlockRow {
                hash: hash_col(hash)?,
                height: height as u64,
                header,
                chainwork: work
                    .as_slice()
                    .try_into()
                    .map_err(|_| StoreError::corrupt("chainwork", "length"))?,
                status: BlockStatus::from_i64(status)?,
            });
        }
        Ok(out)
    }
}
