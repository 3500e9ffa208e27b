//! One shard's state: a SQLite file behind an in-memory write-back cache.
//!
//! Blocks apply to the cache only; the cache's dirty keys, the undo records of the blocks
//! applied since the last flush and the LtHash commitment are written in ONE SQLite
//! transaction at a checkpoint ([`ShardStore::flush`]). Between checkpoints the block log in
//! `chain.sqlite` is the source of truth: after a crash the chain replays it from the
//! shards' common height.

mod genesis;
mod sync;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};

use super::account::{decode_undo, encode_undo};
use super::state::{decode_state_undo, encode_state_undo, StateChange, StateKey};
use super::writeback::WriteBack;
use super::{open_db, shard_migrations, Account, Change, StoreError};
use crate::address::Address;
use crate::amount::Amount;
use crate::hash::Hash256;
use crate::lthash::LtHash;
use crate::shard::ShardId;

/// The undo record of one block on one shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardUndo {
    /// Block height.
    pub height: u64,
    /// Every key the block changed, with its previous value.
    pub entries: Vec<(Address, Option<Account>)>,
    /// Every contract state row the block changed, with its previous value.
    pub state: Vec<(StateKey, Option<Vec<u8>>)>,
}

/// A shard's store. Owned by one executor thread at a time.
pub struct ShardStore {
    id: ShardId,
    conn: Connection,
    cache: WriteBack<Address, Option<Account>>,
    scache: WriteBack<StateKey, Option<Vec<u8>>>,
    lthash: LtHash,
    pending: VecDeque<ShardUndo>,
    height: u64,
    flushed_height: u64,
    initialized: bool,
    undo_depth: u64,
    cache_limit: usize,
    reads: CacheStats,
    /// The overlay serving state pages at an older height (see `sync.rs`).
    snapshot: Option<sync::Snapshot>,
    /// The file's path (genesis run files are written beside it).
    path: PathBuf,
    /// Genesis accounts staged by [`ShardStore::stage_genesis`].
    staged: Option<genesis::Staged>,
}

/// How a shard's row caches have served reads since the store opened: hits are answered
/// from memory, misses read SQLite. `accounts`/`states` are the entries held now, each
/// table up to `limit` (`ChainConfig::cache_limit`) plus the rows written since the last
/// flush.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Account reads answered from the cache.
    pub account_hits: u64,
    /// Account reads that went to SQLite.
    pub account_misses: u64,
    /// Contract-state reads answered from the cache.
    pub state_hits: u64,
    /// Contract-state reads that went to SQLite.
    pub state_misses: u64,
    /// Clean entries the caches gave up for others (their set of slots was full).
    pub evicted: u64,
    /// Accounts in the cache.
    pub accounts: usize,
    /// Contract-state rows in the cache.
    pub states: usize,
    /// Clean entries each cache takes at most.
    pub limit: usize,
}

impl CacheStats {
    /// Share of reads (accounts and state rows) answered from memory; 1 when none yet.
    pub fn hit_rate(&self) -> f64 {
        let hits = self.account_hits + self.state_hits;
        let all = hits + self.account_misses + self.state_misses;
        if all == 0 {
            1.0
        } else {
            hits as f64 / all as f64
        }
    }
}

/// SQLite page cache of a shard file between checkpoints (KiB).
const CACHE_KIB: i64 = 16 * 1024;
/// Page cache a flush asks for per dirty key (a row and its share of B-tree pages).
const FLUSH_CACHE_BYTES_PER_KEY: i64 = 128;
/// Largest page cache of a flush (KiB).
const MAX_FLUSH_CACHE_KIB: i64 = 512 * 1024;
/// Dirty accounts a flush copies out of the write-back map at a time (224 KiB).
const FLUSH_COPY_ROWS: usize = 4096;

fn to_i64(v: u64) -> i64 {
    v as i64
}

fn from_i64(v: i64) -> u64 {
    v as u64
}

/// Commits the read transaction [`ShardStore::begin_reads`] opened, if any. Every other
/// transaction on a shard's connection is a `rusqlite::Transaction`, which borrows the
/// connection until it ends, so one that is open here is the reads'.
fn end_reads(conn: &Connection) -> Result<(), StoreError> {
    if !conn.is_autocommit() {
        conn.execute_batch("COMMIT")?;
    }
    Ok(())
}

/// A write transaction on a shard's connection, the reads' transaction ended first.
fn write_tx(conn: &mut Connection) -> Result<rusqlite::Transaction<'_>, StoreError> {
    end_reads(conn)?;
    Ok(conn.transaction()?)
}

/// The commitment of a shard's genesis state: `accounts`, each with nonce 0.
pub fn genesis_lthash(accounts: &[(Address, Amount)]) -> LtHash {
    let mut lt = LtHash::new();
    for (addr, balance) in accounts {
        lt.insert(
            &Account {
                balance: *balance,
                nonce: 0,
            }
            .leaf(addr),
        );
    }
    lt
}

impl ShardStore {
    /// Opens (creating if needed) the shard file at `path`.
    pub fn open(
        path: &Path,
        id: ShardId,
        undo_depth: u64,
        cache_limit: usize,
    ) -> Result<Self, StoreError> {
        let conn = open_db(path, &shard_migrations(), "NORMAL", CACHE_KIB)?;
        let mut s = ShardStore {
            id,
            conn,
            cache: WriteBack::new(cache_limit),
            scache: WriteBack::new(cache_limit),
            lthash: LtHash::new(),
            pending: VecDeque::new(),
            height: 0,
            flushed_height: 0,
            initialized: false,
            undo_depth,
            cache_limit,
            reads: CacheStats::default(),
            snapshot: None,
            path: path.to_path_buf(),
            staged: None,
        };
        if let Some(h) = s.meta("applied_height")? {
            let h = u64::from_le_bytes(
                h.as_slice()
                    .try_into()
                    .map_err(|_| StoreError::corrupt("shard meta", "applied_height"))?,
            );
            let lt = s
                .meta("lthash")?
                .and_then(|b| LtHash::from_bytes(&b))
                .ok_or_else(|| StoreError::corrupt("shard meta", "lthash"))?;
            s.height = h;
            s.flushed_height = h;
            s.lthash = lt;
            s.initialized = true;
        }
        Ok(s)
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    /// Opens a read transaction for the cache misses that follow, until
    /// [`ShardStore::end_reads`]: outside one, SQLite takes and drops a shared lock on the
    /// file (two `fcntl` calls) and re-reads the WAL index around every point read. Only
    /// this connection writes the file, and it ends the reads before it does
    /// ([`write_tx`]), so they never see an older state than its own.
    fn begin_reads(&mut self) -> Result<(), StoreError> {
        if self.conn.is_autocommit() {
            self.conn.execute_batch("BEGIN")?;
        }
        Ok(())
    }

    /// Ends the read transaction of [`ShardStore::begin_reads`], if open (the executor
    /// calls this after each block's part of a shard, so a checkpoint of the WAL is never
    /// held back longer than one block).
    pub fn end_reads(&mut self) -> Result<(), StoreError> {
        end_reads(&self.conn)
    }

    /// Reads up to `bytes` of the file through a memory map (SQLite's `mmap_size`; 0 turns
    /// it off). Pages the WAL holds are still read from the WAL, and writes go through
    /// SQLite's page cache either way.
    pub fn set_mmap(&mut self, bytes: u64) -> Result<(), StoreError> {
        let want = i64::try_from(bytes).unwrap_or(i64::MAX);
        self.conn.pragma_update(None, "mmap_size", want)?;
        Ok(())
    }

    /// Whether genesis state was written.
    pub fn is_initialized(&self) -> bool {
        self.initialized
    }

    /// This shard's id.
    pub fn id(&self) -> ShardId {
        self.id
    }

    /// Height of the last block applied in memory.
    pub fn height(&self) -> u64 {
        self.height
    }

    /// Height of the state on disk.
    pub fn flushed_height(&self) -> u64 {
        self.flushed_height
    }

    /// The commitment accumulator at [`ShardStore::height`].
    pub fn lthash(&self) -> &LtHash {
        &self.lthash
    }

    /// The 32-byte state commitment at [`ShardStore::height`].
    pub fn digest(&self) -> Hash256 {
        self.lthash.digest()
    }

    /// Keys changed since the last flush.
    pub fn dirty_len(&self) -> usize {
        self.cache.dirty_len() + self.scache.dirty_len()
    }

    /// Blocks applied since the last flush.
    pub fn pending_blocks(&self) -> usize {
        self.pending.len()
    }

    /// Stages genesis accounts, in any order and as many chunks as wanted, for
    /// [`ShardStore::finish_genesis`]. Memory stays bounded: past about a million accounts
    /// they go to sorted run files beside the shard file.
    pub fn stage_genesis(&mut self, chunk: &[(Address, Amount)]) -> Result<(), StoreError> {
        let staged = match &mut self.staged {
            Some(s) => s,
            None => self
                .staged
                .insert(genesis::Staged::new(&self.path, genesis::SPILL_ROWS)?),
        };
        staged.push(chunk)
    }

    /// Writes the staged genesis state (none staged: an empty shard), replacing anything in
    /// the file, in one transaction.
    pub fn finish_genesis(&mut self) -> Result<(), StoreError> {
        let staged = match self.staged.take() {
            Some(s) => s,
            None => genesis::Staged::new(&self.path, genesis::SPILL_ROWS)?,
        };
        let lt = staged.lthash.clone();
        let tx = write_tx(&mut self.conn)?;
        tx.execute("DELETE FROM accounts", [])?;
        tx.execute("DELETE FROM undo", [])?;
        tx.execute("DELETE FROM contract_state", [])?;
        tx.execute("DELETE FROM state_undo", [])?;
        {
            let mut ins = tx.prepare("INSERT OR REPLACE INTO accounts VALUES (?1, ?2, 0)")?;
            staged.drain_sorted(|addr, amount| {
                ins.execute(params![&addr.0[..], to_i64(amount.to_sat())])?;
                Ok(())
            })?;
        }
        tx.execute(
            "INSERT OR REPLACE INTO meta VALUES ('applied_height', ?1)",
            [&0u64.to_le_bytes()[..]],
        )?;
        tx.execute(
            "INSERT OR REPLACE INTO meta VALUES ('lthash', ?1)",
            [lt.to_bytes()],
        )?;
        tx.commit()?;
        // The whole genesis is in the WAL now. Copied into the database file at once:
        // otherwise every page a later read misses in SQLite's cache is looked up in the
        // WAL's index first and read from the WAL until a flush's checkpoint moves it, and
        // a restart before that rescans it. `RESTART`, not `TRUNCATE`: the next commit
        // writes the WAL from its start over the file's existing blocks. Truncated, the
        // first flush grew it again frame by frame, and ext4 zeroed the rest of each new
        // large page-cache folio at every 4,120-byte frame write: 31% of the final flush's
        // samples at 10M accounts (kernel `__pi_memset` under `ext4_da_write_begin`), 4%
        // over the kept file.
        let (busy, frames, copied) = super::checkpoint::wal_checkpoint(&self.conn, "RESTART")?;
        if busy != 0 || copied < frames {
            // Not an error: the checkpoints after flushes copy the rest.
            tracing::debug!(
                shard = self.id.0,
                frames,
                copied,
                "genesis checkpoint incomplete"
            );
        }
        self.cache.clear();
        self.scache.clear();
        self.pending.clear();
        self.lthash = lt;
        self.height = 0;
        self.flushed_height = 0;
        self.initialized = true;
        Ok(())
    }

    /// Loads up to `cache_limit` accounts into the cache with one sequential scan (a scan
    /// reads ~10x faster than the point lookups it replaces). Returns whether the whole
    /// shard fit.
    pub fn warm(&mut self) -> Result<bool, StoreError> {
        let rows: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM accounts", [], |r| r.get(0))?;
        self.cache
            .reserve((rows.max(0) as usize).min(self.cache_limit));
        let cache = &mut self.cache;
        let mut st = self
            .conn
            .prepare("SELECT addr, balance, nonce FROM accounts LIMIT ?1")?;
        let mut rows = st.query([self.cache_limit as i64])?;
        let mut n = 0usize;
        while let Some(r) = rows.next()? {
            let a: Vec<u8> = r.get(0)?;
            let arr: [u8; 32] = a
                .as_slice()
                .try_into()
                .map_err(|_| StoreError::corrupt("accounts", "address length"))?;
            // Entries already cached (possibly dirty) are newer than the file: keep them.
            cache.insert_clean(
                Address(arr),
                Some(Account {
                    balance: Amount::from_sat(from_i64(r.get(1)?)),
                    nonce: from_i64(r.get(2)?),
                }),
            );
            n += 1;
        }
        drop(rows);
        drop(st);
        let scache = &mut self.scache;
        let mut st = self
            .conn
            .prepare("SELECT key, value FROM contract_state LIMIT ?1")?;
        let mut rows = st.query([self.cache_limit as i64])?;
        let mut m = 0usize;
        while let Some(r) = rows.next()? {
            let k: Vec<u8> = r.get(0)?;
            let v: Vec<u8> = r.get(1)?;
            let k = StateKey::from_slice(&k)
                .ok_or_else(|| StoreError::corrupt("contract_state", "key length"))?;
            scache.insert_clean(k, Some(v));
            m += 1;
        }
        Ok(n < self.cache_limit && m < self.cache_limit)
    }

    /// A contract state row at the in-memory tip.
    pub fn get_state(&mut self, key: &StateKey) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = self.scache.get(key) {
            self.reads.state_hits += 1;
            return Ok(v);
        }
        self.reads.state_misses += 1;
        self.begin_reads()?;
        let v: Option<Vec<u8>> = self
            .conn
            .prepare_cached("SELECT value FROM contract_state WHERE key = ?1")?
            .query_row([key.as_bytes()], |r| r.get(0))
            .optional()?;
        self.scache.insert_clean(*key, v.clone());
        Ok(v)
    }

    /// Overwrites a contract state row outside any block, updating the commitment. Only for
    /// simulations (`rexe contract run`, benchmarks): the change is in no block, so a replay
    /// of the block log would not reproduce it and no undo record can roll it back.
    pub fn force_state(&mut self, key: StateKey, value: Option<Vec<u8>>) -> Result<(), StoreError> {
        if let Some(old) = self.get_state(&key)? {
            key.commit_remove(&mut self.lthash, &old);
        }
        if let Some(v) = &value {
            key.commit_insert(&mut self.lthash, v);
        }
        self.scache.write(key, value);
        Ok(())
    }

    /// How the row caches have served reads since the store opened.
    pub fn cache_stats(&self) -> CacheStats {
        CacheStats {
            accounts: self.cache.len(),
            states: self.scache.len(),
            limit: self.cache_limit,
            evicted: self.cache.evicted() + self.scache.evicted(),
            ..self.reads
        }
    }

    /// The account at the in-memory tip.
    pub fn get(&mut self, addr: &Address) -> Result<Option<Account>, StoreError> {
        if let Some(v) = self.cache.get(addr) {
            self.reads.account_hits += 1;
            return Ok(v);
        }
        self.reads.account_misses += 1;
        self.begin_reads()?;
        let v = self
            .conn
            .prepare_cached("SELECT balance, nonce FROM accounts WHERE addr = ?1")?
            .query_row([&addr.0[..]], |r| {
                Ok(Account {
                    balance: Amount::from_sat(from_i64(r.get(0)?)),
                    nonce: from_i64(r.get(1)?),
                })
            })
            .optional()?;
        // The clean set is bounded: a full set gives up an entry for this one.
        self.cache.insert_clean(*addr, v);
        Ok(v)
    }

    /// Applies a block's changes (computed by the executor) as block `height`.
    pub fn apply(
        &mut self,
        height: u64,
        changes: &[Change],
        state_changes: Vec<StateChange>,
        lthash_after: LtHash,
    ) {
        debug_assert_eq!(height, self.height + 1);
        let mut entries = Vec::with_capacity(changes.len());
        for c in changes {
            entries.push((c.addr, c.old));
            self.cache.write(c.addr, Some(c.new));
        }
        let mut state = Vec::with_capacity(state_changes.len());
        for c in state_changes {
            self.scache.write(c.key, c.new);
            state.push((c.key, c.old));
        }
        self.pending.push_back(ShardUndo {
            height,
            entries,
            state,
        });
        self.lthash = lthash_after;
        self.height = height;
    }

    /// Rolls back the block at [`ShardStore::height`], from memory or from the undo table.
    pub fn undo_top(&mut self) -> Result<(), StoreError> {
        if self.height == 0 {
            return Err(StoreError::corrupt("undo", "cannot roll back genesis"));
        }
        let undo = match self.pending.back() {
            Some(u) if u.height == self.height => self.pending.pop_back().expect("non-empty"),
            _ => {
                let data: Option<Vec<u8>> = self
                    .conn
                    .query_row(
                        "SELECT data FROM undo WHERE height = ?1",
                        [to_i64(self.height)],
                        |r| r.get(0),
                    )
                    .optional()?;
                let data = data.ok_or_else(|| {
                    StoreError::corrupt(
                        "undo",
                        format!(
                            "no undo record for block {} on shard {} (deeper than the undo depth?)",
                            self.height, self.id
                        ),
                    )
                })?;
                let state: Option<Vec<u8>> = self
                    .conn
                    .query_row(
                        "SELECT data FROM state_undo WHERE height = ?1",
                        [to_i64(self.height)],
                        |r| r.get(0),
                    )
                    .optional()?;
                ShardUndo {
                    height: self.height,
                    entries: decode_undo(&data).map_err(|e| StoreError::corrupt("undo", e))?,
                    state: match state {
                        Some(d) => decode_state_undo(&d)
                            .map_err(|e| StoreError::corrupt("state undo", e))?,
                        None => Vec::new(),
                    },
                }
            }
        };
        for (key, old) in undo.state.iter().rev() {
            if let Some(cur) = self.get_state(key)? {
                key.commit_remove(&mut self.lthash, &cur);
            }
            if let Some(o) = old {
                key.commit_insert(&mut self.lthash, o);
            }
            self.scache.write(*key, old.clone());
        }
        for (addr, old) in undo.entries.iter().rev() {
            if let Some(cur) = self.get(addr)? {
                self.lthash.remove(&cur.leaf(addr));
            }
            if let Some(o) = old {
                self.lthash.insert(&o.leaf(addr));
            }
            self.cache.write(*addr, *old);
        }
        self.height -= 1;
        Ok(())
    }

    /// Writes dirty keys, undo records and the commitment in one transaction.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        // A flush rewrites most of the B-tree pages when many keys are dirty: a page
        // cache that holds them all keeps SQLite from spilling half-written pages into the
        // WAL mid-transaction (and writing them twice). Back to the resting size after.
        let want_kib = (self.dirty_len() as i64 * FLUSH_CACHE_BYTES_PER_KEY / 1024)
            .clamp(CACHE_KIB, MAX_FLUSH_CACHE_KIB);
        if want_kib > CACHE_KIB {
            self.conn.pragma_update(None, "cache_size", -want_kib)?;
        }
        let result = self.write_checkpoint();
        if want_kib > CACHE_KIB {
            self.conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
        }
        result
    }

    fn write_checkpoint(&mut self) -> Result<(), StoreError> {
        let tx = write_tx(&mut self.conn)?;
        {
            // An `UPDATE`, and an `INSERT` only where it changed no row (most dirty
            // accounts are in the file). An upsert (`INSERT … ON CONFLICT DO UPDATE`)
            // seeks once more: on 2.5 M rows, 475,000 sorted keys took 2.5 s against 1.2 s
            // while SQLite's cache did not hold the pages (the same time once it did).
            let mut up =
                tx.prepare_cached("UPDATE accounts SET balance = ?2, nonce = ?3 WHERE addr = ?1")?;
            let mut add = tx.prepare_cached(
                "INSERT INTO accounts (addr, balance, nonce) VALUES (?1, ?2, ?3)",
            )?;
            let mut del = tx.prepare_cached("DELETE FROM accounts WHERE addr = ?1")?;
            let dirty = self.cache.dirty_sorted();
            for part in dirty.chunks(FLUSH_COPY_ROWS) {
                // Copied out of the map a part at a time: the reads are independent, so
                // the CPU overlaps their cache misses, where a read per row between two
                // SQLite calls waited for each one (at 10 M accounts most of this loop's
                // own time). A part, not the whole set: 56 bytes a row would be 25 MB per
                // shard at the peak of a flush.
                let rows: Vec<(Address, Option<Account>)> =
                    part.iter().map(|(k, v)| (**k, **v)).collect();
                for (k, v) in rows {
                    match v {
                        Some(a) => {
                            let row =
                                params![&k.0[..], to_i64(a.balance.to_sat()), to_i64(a.nonce)];
                            if up.execute(row)? == 0 {
                                add.execute(row)?;
                            }
                        }
                        None => {
                            del.execute([&k.0[..]])?;
                        }
                    }
                }
            }
            let mut uins = tx.prepare_cached("INSERT OR REPLACE INTO undo VALUES (?1, ?2)")?;
            let mut sins =
                tx.prepare_cached("INSERT OR REPLACE INTO state_undo VALUES (?1, ?2)")?;
            for u in &self.pending {
                uins.execute(params![to_i64(u.height), encode_undo(&u.entries)])?;
                sins.execute(params![to_i64(u.height), encode_state_undo(&u.state)])?;
            }
            // Contract state the same way: an update, an insert where there was no row.
            let mut sup =
                tx.prepare_cached("UPDATE contract_state SET value = ?2 WHERE key = ?1")?;
            let mut sadd =
                tx.prepare_cached("INSERT INTO contract_state (key, value) VALUES (?1, ?2)")?;
            let mut sdel = tx.prepare_cached("DELETE FROM contract_state WHERE key = ?1")?;
            for (k, v) in self.scache.dirty_sorted() {
                match v {
                    Some(v) => {
                        if sup.execute(params![k.as_bytes(), v])? == 0 {
                            sadd.execute(params![k.as_bytes(), v])?;
                        }
                    }
                    None => {
                        sdel.execute([k.as_bytes()])?;
                    }
                }
            }
        }
        // Undo rows above the tip belong to rolled-back blocks; rows older than the undo
        // depth can never be needed again.
        for table in ["undo", "state_undo"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE height > ?1"),
                [to_i64(self.height)],
            )?;
            tx.execute(
                &format!("DELETE FROM {table} WHERE height <= ?1"),
                [to_i64(self.height.saturating_sub(self.undo_depth))],
            )?;
        }
        tx.execute(
            "INSERT OR REPLACE INTO meta VALUES ('applied_height', ?1)",
            [&self.height.to_le_bytes()[..]],
        )?;
        tx.execute(
            "INSERT OR REPLACE INTO meta VALUES ('lthash', ?1)",
            [self.lthash.to_bytes()],
        )?;
        tx.commit()?;
        self.cache.mark_clean();
        self.scache.mark_clean();
        self.pending.clear();
        self.flushed_height = self.height;
        Ok(())
    }

    /// Every account at the in-memory tip, sorted (tests and audits; reads the whole shard).
    pub fn all_accounts(&mut self) -> Result<Vec<(Address, Account)>, StoreError> {
        let mut out: std::collections::BTreeMap<Address, Account> = Default::default();
        {
            let mut st = self
                .conn
                .prepare("SELECT addr, balance, nonce FROM accounts")?;
            let rows = st.query_map([], |r| {
                let a: Vec<u8> = r.get(0)?;
                Ok((
                    a,
                    Account {
                        balance: Amount::from_sat(from_i64(r.get(1)?)),
                        nonce: from_i64(r.get(2)?),
                    },
                ))
            })?;
            for row in rows {
                let (a, acct) = row?;
                let arr: [u8; 32] = a
                    .as_slice()
                    .try_into()
                    .map_err(|_| StoreError::corrupt("accounts", "address length"))?;
                out.insert(Address(arr), acct);
            }
        }
        for (k, v) in self.cache.dirty_sorted() {
            match *v {
                Some(a) => {
                    out.insert(*k, a);
                }
                None => {
                    out.remove(k);
                }
            }
        }
        Ok(out.into_iter().collect())
    }

    /// Calls `f` for every account at the in-memory tip, streaming the file (constant
    /// memory beyond the write-back cache), in no particular order.
    pub fn for_each_account(
        &mut self,
        mut f: impl FnMut(&Address, &Account) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let dirty: std::collections::HashMap<Address, Option<Account>> = self
            .cache
            .dirty_sorted()
            .into_iter()
            .map(|(k, v)| (*k, *v))
            .collect();
        {
            let mut st = self
                .conn
                .prepare("SELECT addr, balance, nonce FROM accounts")?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                let a: Vec<u8> = r.get(0)?;
                let arr: [u8; 32] = a
                    .as_slice()
                    .try_into()
                    .map_err(|_| StoreError::corrupt("accounts", "address length"))?;
                let addr = Address(arr);
                if dirty.contains_key(&addr) {
                    continue;
                }
                let acct = Account {
                    balance: Amount::from_sat(from_i64(r.get(1)?)),
                    nonce: from_i64(r.get(2)?),
                };
                f(&addr, &acct)?;
            }
        }
        for (addr, acct) in &dirty {
            if let Some(a) = acct {
                f(addr, a)?;
            }
        }
        Ok(())
    }

    /// Recomputes the shard's commitment from every row (accounts and contract state), to
    /// compare with the stored accumulator; `progress` gets the rows done so far.
    pub fn recompute_lthash(
        &mut self,
        mut progress: impl FnMut(u64),
    ) -> Result<LtHash, StoreError> {
        let mut lt = LtHash::new();
        let (mut n, mut reported) = (0u64, 0u64);
        self.for_each_account(|addr, a| {
            lt.insert(&a.leaf(addr));
            n += 1;
            if n - reported >= 100_000 {
                reported = n;
                progress(n);
            }
            Ok(())
        })?;
        for (k, v) in self.all_state()? {
            k.commit_insert(&mut lt, &v);
            n += 1;
        }
        progress(n);
        Ok(lt)
    }

    /// SQLite's own `integrity_check` of the file: `None` when it reports "ok".
    pub fn integrity_problem(&self) -> Result<Option<String>, StoreError> {
        let mut st = self.conn.prepare("PRAGMA integrity_check(20)")?;
        let lines: Vec<String> = st
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<_, _>>()?;
        Ok((lines != ["ok"]).then(|| lines.join("; ")))
    }

    /// The contract state rows whose keys start with `prefix`, at the in-memory tip, sorted
    /// by key.
    pub fn state_with_prefix(
        &mut self,
        prefix: &[u8],
    ) -> Result<Vec<(StateKey, Vec<u8>)>, StoreError> {
        let mut out: std::collections::BTreeMap<StateKey, Vec<u8>> = Default::default();
        {
            // Keys from `prefix` up to (not including) the first key after every key that
            // starts with it: the prefix without its trailing 0xff bytes, last byte raised
            // (no bound when it is all 0xff).
            let mut end = prefix.to_vec();
            while end.last() == Some(&0xff) {
                end.pop();
            }
            if let Some(b) = end.last_mut() {
                *b += 1;
            } else {
                end = vec![0xff; crate::store::MAX_KEY_LEN + 1];
            }
            let mut st = self.conn.prepare_cached(
                "SELECT key, value FROM contract_state WHERE key >= ?1 AND key < ?2",
            )?;
            let rows = st.query_map(params![prefix, end], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
            })?;
            for row in rows {
                let (k, v) = row?;
                if !k.starts_with(prefix) {
                    continue;
                }
                let k = StateKey::from_slice(&k)
                    .ok_or_else(|| StoreError::corrupt("contract_state", "key length"))?;
                out.insert(k, v);
            }
        }
        for (k, v) in self.scache.dirty_sorted() {
            if !k.as_bytes().starts_with(prefix) {
                continue;
            }
            match v {
                Some(v) => {
                    out.insert(*k, v.clone());
                }
                None => {
                    out.remove(k);
                }
            }
        }
        Ok(out.into_iter().collect())
    }

    /// Every contract state row at the in-memory tip, sorted by key (tests and audits).
    pub fn all_state(&mut self) -> Result<Vec<(StateKey, Vec<u8>)>, StoreError> {
        self.state_with_prefix(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Misses share one read transaction; any write ends it first, and reads after a write
    /// see it.
    #[test]
    fn misses_share_a_read_transaction_that_a_write_ends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        let (a, b) = (Address([1; 32]), Address([2; 32]));
        let mut g = ShardStore::open(&path, ShardId(0), 8, 1000).unwrap();
        g.stage_genesis(&[(a, Amount::from_sat(5)), (b, Amount::from_sat(7))])
            .unwrap();
        g.finish_genesis().unwrap();
        drop(g);
        let mut s = ShardStore::open(&path, ShardId(0), 8, 1000).unwrap();
        assert!(s.conn.is_autocommit());
        assert_eq!(s.get(&a).unwrap().unwrap().balance, Amount::from_sat(5));
        assert!(!s.conn.is_autocommit(), "a miss opens a read transaction");
        assert_eq!(s.get(&b).unwrap().unwrap().balance, Amount::from_sat(7));
        let key = StateKey::from_slice(&[4, 2]).unwrap();
        s.force_state(key, Some(vec![1])).unwrap();
        s.flush().unwrap();
        assert!(s.conn.is_autocommit(), "the flush ended the reads");
        assert_eq!(s.get(&Address([3; 32])).unwrap(), None);
        assert!(!s.conn.is_autocommit());
        // A fresh store (nothing cached) reads the flushed row inside its read transaction.
        let mut fresh = ShardStore::open(&path, ShardId(0), 8, 1000).unwrap();
        assert_eq!(fresh.get(&a).unwrap().unwrap().balance, Amount::from_sat(5));
        assert_eq!(fresh.get_state(&key).unwrap(), Some(vec![1]));
        s.end_reads().unwrap();
        fresh.end_reads().unwrap();
        assert!(s.conn.is_autocommit() && fresh.conn.is_autocommit());
    }

    /// A new genesis is copied from the WAL into the database file, and a store reading
    /// through a memory map reads it back.
    #[test]
    fn a_genesis_is_checkpointed_into_the_file_and_mapped_reads_see_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        let accounts: Vec<(Address, Amount)> = (0..3000u64)
            .map(|i| {
                let mut a = [0u8; 32];
                a[..8].copy_from_slice(&(i * 0x9e37_79b9).to_be_bytes());
                (Address(a), Amount::from_sat(1 + i))
            })
            .collect();
        let mut s = ShardStore::open(&path, ShardId(0), 8, 1024).unwrap();
        s.stage_genesis(&accounts).unwrap();
        s.finish_genesis().unwrap();
        // The rows are in the database file: a copy of the file alone, without the WAL
        // the store still holds open, has every account.
        let copy_dir = tempfile::tempdir().unwrap();
        let copy = copy_dir.path().join("s.sqlite");
        std::fs::copy(&path, &copy).unwrap();
        let mut c = ShardStore::open(&copy, ShardId(0), 8, 1024).unwrap();
        for (a, amount) in &accounts {
            let got = c.get(a).unwrap().map(|x| x.balance);
            assert_eq!(got, Some(*amount), "the genesis stayed in the WAL");
        }
        drop(c);
        drop(s);
        // A store reading through a memory map (its cache too small for the shard) reads
        // every account back.
        let mut s = ShardStore::open(&path, ShardId(0), 8, 1024).unwrap();
        s.set_mmap(8 << 20).unwrap();
        let set: i64 = s
            .conn
            .query_row("PRAGMA mmap_size", [], |r| r.get(0))
            .unwrap();
        assert_eq!(set, 8 << 20);
        for (a, amount) in &accounts {
            assert_eq!(s.get(a).unwrap().map(|x| x.balance), Some(*amount));
        }
        assert_eq!(s.get(&Address([0xff; 32])).unwrap(), None);
    }

    /// The flush updates rows that are in the file and inserts those that are not (accounts
    /// and contract state), deletes what a rollback removed, and a fresh store reads back
    /// exactly the state and commitment kept in memory.
    #[test]
    fn a_flush_updates_present_rows_inserts_new_ones_and_deletes_removed_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        let acct = |sat: u64, nonce: u64| Account {
            balance: Amount::from_sat(sat),
            nonce,
        };
        let (a, b, c, d) = (
            Address([1; 32]),
            Address([2; 32]),
            Address([3; 32]),
            Address([4; 32]),
        );
        let (k1, k2) = (
            StateKey::from_slice(&[7, 1]).unwrap(),
            StateKey::from_slice(&[7, 2]).unwrap(),
        );
        let mut s = ShardStore::open(&path, ShardId(0), 8, 1000).unwrap();
        s.stage_genesis(&[(a, Amount::from_sat(5)), (b, Amount::from_sat(7))])
            .unwrap();
        s.finish_genesis().unwrap();
        // A block's account changes with the commitment the executor would compute.
        let block = |s: &mut ShardStore, changes: &[(Address, Option<Account>, Account)]| {
            let mut lt = s.lthash().clone();
            let changes: Vec<Change> = changes
                .iter()
                .map(|&(addr, old, new)| {
                    if let Some(o) = old {
                        lt.remove(&o.leaf(&addr));
                    }
                    lt.insert(&new.leaf(&addr));
                    Change { addr, old, new }
                })
                .collect();
            let h = s.height() + 1;
            s.apply(h, &changes, Vec::new(), lt);
        };
        // Block 1: a row in the file changes, a new one appears; a new state row.
        block(
            &mut s,
            &[(a, Some(acct(5, 0)), acct(4, 1)), (c, None, acct(1, 0))],
        );
        s.force_state(k1, Some(vec![1])).unwrap();
        s.flush().unwrap();
        // Block 2: the row the last flush inserted changes, another appears, one is
        // written with the value it has (an update that changes no value still finds its
        // row: no second insert); the state row changes and a second one appears.
        block(
            &mut s,
            &[
                (c, Some(acct(1, 0)), acct(3, 2)),
                (d, None, acct(9, 0)),
                (b, Some(acct(7, 0)), acct(7, 0)),
            ],
        );
        s.force_state(k1, Some(vec![2])).unwrap();
        s.force_state(k2, Some(vec![5])).unwrap();
        s.flush().unwrap();
        let read_back = |s: &mut ShardStore| (s.all_accounts().unwrap(), s.all_state().unwrap());
        let mut fresh = ShardStore::open(&path, ShardId(0), 8, 1000).unwrap();
        assert_eq!(
            read_back(&mut fresh),
            (
                vec![
                    (a, acct(4, 1)),
                    (b, acct(7, 0)),
                    (c, acct(3, 2)),
                    (d, acct(9, 0))
                ],
                vec![(k1, vec![2]), (k2, vec![5])]
            )
        );
        assert_eq!(fresh.lthash(), s.lthash());
        drop(fresh);
        // Block 2 rolled back after it was flushed: `d` goes, `c` is back to block 1's.
        s.undo_top().unwrap();
        s.force_state(k2, None).unwrap();
        s.flush().unwrap();
        let mut fresh = ShardStore::open(&path, ShardId(0), 8, 1000).unwrap();
        assert_eq!(
            read_back(&mut fresh),
            (
                vec![(a, acct(4, 1)), (b, acct(7, 0)), (c, acct(1, 0))],
                vec![(k1, vec![2])]
            )
        );
        assert_eq!(fresh.lthash(), s.lthash());
        assert_eq!(fresh.height(), 1);
    }

    #[test]
    fn prefix_scans_find_rows_under_prefixes_ending_in_ff() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ShardStore::open(&dir.path().join("s.sqlite"), ShardId(0), 8, 1000).unwrap();
        let key = |b: &[u8]| StateKey::from_slice(b).unwrap();
        let rows: Vec<Vec<u8>> = vec![
            vec![1, 0xff],
            vec![1, 0xff, 0],
            vec![1, 0xff, 0xff, 7],
            vec![2],
            vec![1, 0xfe, 0xff],
            vec![0xff, 0xff, 1],
        ];
        for r in &rows {
            s.force_state(key(r), Some(vec![9])).unwrap();
        }
        let found = |s: &mut ShardStore, p: &[u8]| -> Vec<Vec<u8>> {
            s.state_with_prefix(p)
                .unwrap()
                .into_iter()
                .map(|(k, _)| k.as_bytes().to_vec())
                .collect()
        };
        // Before and after the rows reach the database.
        for _ in 0..2 {
            assert_eq!(
                found(&mut s, &[1, 0xff]),
                vec![vec![1, 0xff], vec![1, 0xff, 0], vec![1, 0xff, 0xff, 7]]
            );
            assert_eq!(
                found(&mut s, &[1, 0xff, 0xff]),
                vec![vec![1, 0xff, 0xff, 7]]
            );
            assert_eq!(found(&mut s, &[0xff, 0xff]), vec![vec![0xff, 0xff, 1]]);
            assert_eq!(found(&mut s, &[1]).len(), 4);
            assert_eq!(found(&mut s, &[]).len(), rows.len());
            s.flush().unwrap();
        }
    }
}
