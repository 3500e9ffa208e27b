//! A shard store's side of state sync: serving its state at a recent block in pages (the
//! file's rows with the undo records of the blocks after it laid over them), and taking a
//! synced state in pages, each stored with its cursor and running commitment so that an
//! interrupted sync resumes.

use std::collections::BTreeMap;

use rusqlite::params;

use super::super::account::decode_undo;
use super::super::state::{decode_state_undo, StateKey};
use super::{from_i64, to_i64, write_tx, ShardStore};
use crate::address::Address;
use crate::amount::Amount;
use crate::hash::{BlockHash, Hash256};
use crate::lthash::LtHash;
use crate::store::{Account, StoreError};
use crate::sync::{
    AccountRow, StateCursor, StatePage, StateRow, SyncError, SyncProgress, MAX_PAGE_ROWS,
    PAGE_BYTES, PAGE_ROWS,
};

/// What the blocks after a served height changed, at that height: per key, the value
/// before the first block after it that touched the key.
pub(super) struct Snapshot {
    height: u64,
    flushed: u64,
    accounts: BTreeMap<Address, Option<Account>>,
    rows: BTreeMap<StateKey, Option<Vec<u8>>>,
}

const PROGRESS: &str = "sync_progress";
const SUM: &str = "sync_lthash";

fn read_account(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Vec<u8>, Account)> {
    Ok((
        r.get(0)?,
        Account {
            balance: Amount::from_sat(from_i64(r.get(1)?)),
            nonce: from_i64(r.get(2)?),
        },
    ))
}

/// The rows at the served height from after `after` up to `end` (unbounded: `None`): the
/// file's (`disk`, in key order, ending at `end`) with the overlay laid over them, rows the
/// overlay says were absent left out. Rows the later blocks deleted come back from the
/// overlay, so the page is cut at [`MAX_PAGE_ROWS`]; the second value is the key it was
/// cut after.
fn lay_over<K: Ord + Copy, V: Clone>(
    disk: Vec<(K, V)>,
    overlay: &BTreeMap<K, Option<V>>,
    after: Option<K>,
    end: Option<K>,
) -> (Vec<(K, V)>, Option<K>) {
    let mut merged: BTreeMap<K, Option<V>> = disk.into_iter().map(|(k, v)| (k, Some(v))).collect();
    let lo = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
    let hi = end.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Included);
    for (k, old) in overlay.range((lo, hi)) {
        merged.insert(*k, old.clone());
    }
    let mut rows: Vec<(K, V)> = merged
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect();
    if rows.len() > MAX_PAGE_ROWS {
        rows.truncate(MAX_PAGE_ROWS);
        let last = rows.last().map(|r| r.0);
        return (rows, last);
    }
    (rows, None)
}

impl ShardStore {
    /// The overlay of the blocks above `height` up to the flushed height (cached until the
    /// next flush).
    fn snapshot(&mut self, height: u64) -> Result<&Snapshot, StoreError> {
        let fresh = self
            .snapshot
            .as_ref()
            .is_some_and(|s| s.height == height && s.flushed == self.flushed_height);
        if !fresh {
            let mut accounts = BTreeMap::new();
            let mut rows = BTreeMap::new();
            // Highest block first: a lower block's "before" value wins.
            let mut st = self
                .conn
                .prepare("SELECT height, data FROM undo WHERE height > ?1 ORDER BY height DESC")?;
            let mut found = 0u64;
            for r in st.query_map([to_i64(height)], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
            })? {
                let (_, data) = r?;
                found += 1;
                for (a, old) in decode_undo(&data).map_err(|e| StoreError::corrupt("undo", e))? {
                    accounts.insert(a, old);
                }
            }
            if found != self.flushed_height - height {
                return Err(StoreError::corrupt(
                    "undo",
                    format!(
                        "{found} undo records above height {height}, {} expected",
                        self.flushed_height - height
                    ),
                ));
            }
            let mut st = self
                .conn
                .prepare("SELECT data FROM state_undo WHERE height > ?1 ORDER BY height DESC")?;
            for r in st.query_map([to_i64(height)], |r| r.get::<_, Vec<u8>>(0))? {
                for (k, old) in
                    decode_state_undo(&r?).map_err(|e| StoreError::corrupt("state undo", e))?
                {
                    rows.insert(k, old);
                }
            }
            self.snapshot = Some(Snapshot {
                height,
                flushed: self.flushed_height,
                accounts,
                rows,
            });
        }
        Ok(self.snapshot.as_ref().expect("just set"))
    }

    /// One page of this shard's state at `height`, from `from`, of about `max_rows` rows
    /// (at most [`PAGE_ROWS`] from the file, plus the rows the blocks after `height`
    /// deleted). The state on disk must be at or above `height` (flush first) and hold the
    /// undo records down to it.
    pub fn state_page(
        &mut self,
        height: u64,
        block: BlockHash,
        from: StateCursor,
        max_rows: usize,
    ) -> Result<StatePage, StoreError> {
        let limit = max_rows.clamp(1, PAGE_ROWS);
        if height > self.flushed_height || self.flushed_height - height >= self.undo_depth {
            return Err(StoreError::corrupt(
                "state page",
                format!(
                    "height {height} is not served from a store flushed at {}",
                    self.flushed_height
                ),
            ));
        }
        self.snapshot(height)?;
        let mut page = StatePage {
            shard: self.id,
            block,
            from,
            accounts: Vec::new(),
            rows: Vec::new(),
            next: None,
        };
        let snap = self.snapshot.as_ref().expect("built above");
        match from {
            StateCursor::Accounts(after) => {
                let start: Vec<u8> = after.map_or(Vec::new(), |a| a.0.to_vec());
                let mut st = self.conn.prepare_cached(
                    "SELECT addr, balance, nonce FROM accounts WHERE addr > ?1 ORDER BY addr LIMIT ?2",
                )?;
                let disk = st
                    .query_map(params![start, limit as i64], read_account)?
                    .map(|r| {
                        let (a, acct) = r?;
                        let arr: [u8; 32] = a
                            .as_slice()
                            .try_into()
                            .map_err(|_| StoreError::corrupt("accounts", "address length"))?;
                        Ok((Address(arr), acct))
                    })
                    .collect::<Result<Vec<_>, StoreError>>()?;
                let end = if disk.len() == limit {
                    disk.last().map(|d| d.0)
                } else {
                    None
                };
                let (rows, cut) = lay_over(disk, &snap.accounts, after, end);
                page.accounts = rows
                    .into_iter()
                    .map(|(addr, account)| AccountRow { addr, account })
                    .collect();
                page.next = Some(match cut.or(end) {
                    Some(k) => StateCursor::Accounts(Some(k)),
                    None => StateCursor::Rows(None),
                });
            }
            StateCursor::Rows(after) => {
                let start: Vec<u8> = after.map_or(Vec::new(), |k| k.as_bytes().to_vec());
                let mut st = self.conn.prepare_cached(
                    "SELECT key, value FROM contract_state WHERE key > ?1 ORDER BY key LIMIT ?2",
                )?;
                let mut disk = Vec::new();
                let mut bytes = 0usize;
                let mut rows = st.query(params![start, limit as i64])?;
                let mut cut = false;
                while let Some(r) = rows.next()? {
                    let k: Vec<u8> = r.get(0)?;
                    let v: Vec<u8> = r.get(1)?;
                    let key = StateKey::from_slice(&k)
                        .ok_or_else(|| StoreError::corrupt("contract state", "key length"))?;
                    bytes += k.len() + v.len();
                    disk.push((key, v));
                    if bytes >= PAGE_BYTES {
                        cut = true;
                        break;
                    }
                }
                let end = if cut || disk.len() == limit {
                    disk.last().map(|d| d.0)
                } else {
                    None
                };
                let (rows, cut) = lay_over(disk, &snap.rows, after, end);
                page.rows = rows
                    .into_iter()
                    .map(|(key, value)| StateRow { key, value })
                    .collect();
                page.next = cut.or(end).map(|k| StateCursor::Rows(Some(k)));
            }
        }
        Ok(page)
    }

    /// The sync under way on this store, if any.
    pub fn sync_progress(&self) -> Result<Option<SyncProgress>, StoreError> {
        use crate::encode::Decode;
        self.meta(PROGRESS)?
            .map(|b| {
                SyncProgress::from_bytes(&b).map_err(|e| StoreError::corrupt("sync progress", e))
            })
            .transpose()
    }

    /// Starts a sync of the state at `block` (`height`): every row of the file is dropped
    /// (its undo records stay until the sync finishes: the store keeps rolling back as the
    /// untracked shard it is until then).
    pub fn sync_begin(
        &mut self,
        block: BlockHash,
        height: u64,
    ) -> Result<SyncProgress, StoreError> {
        use crate::encode::Encode;
        let progress = SyncProgress {
            block,
            height,
            cursor: Some(StateCursor::START),
            rows: 0,
            bytes: 0,
        };
        let tx = write_tx(&mut self.conn)?;
        for table in ["accounts", "contract_state"] {
            tx.execute(&format!("DELETE FROM {table}"), [])?;
        }
        tx.execute(
            "INSERT OR REPLACE INTO meta VALUES (?1, ?2)",
            params![PROGRESS, progress.to_bytes()],
        )?;
        tx.execute(
            "INSERT OR REPLACE INTO meta VALUES (?1, ?2)",
            params![SUM, LtHash::new().to_bytes()],
        )?;
        tx.commit()?;
        self.cache.clear();
        self.scache.clear();
        self.snapshot = None;
        Ok(progress)
    }

    /// Stores one page of the sync under way: it must answer the sync's block and cursor.
    /// The rows, the new cursor and the running commitment are written in one transaction.
    pub fn sync_apply(&mut self, page: &StatePage) -> Result<SyncProgress, SyncError> {
        use crate::encode::Encode;
        let mut progress = self
            .sync_progress()?
            .ok_or(SyncError::NotSyncing(self.id))?;
        if page.shard != self.id || page.block != progress.block {
            return Err(SyncError::Unasked(format!(
                "shard {} block {}, not shard {} block {}",
                page.shard, page.block, self.id, progress.block
            )));
        }
        if Some(page.from) != progress.cursor {
            return Err(SyncError::Unasked(format!(
                "a page from {:?}, not {:?}",
                page.from, progress.cursor
            )));
        }
        page.check_shape()?;
        let mut sum = self
            .meta(SUM)?
            .and_then(|b| LtHash::from_bytes(&b))
            .ok_or_else(|| StoreError::corrupt("sync progress", "running commitment"))?;
        // The page's commitment is hashed on another core while this one writes the rows.
        let (page_sum, written) = std::thread::scope(|scope| {
            let hashing = scope.spawn(|| {
                let mut lt = LtHash::new();
                for a in &page.accounts {
                    lt.insert(&a.account.leaf(&a.addr));
                }
                for r in &page.rows {
                    r.key.commit_insert(&mut lt, &r.value);
                }
                lt
            });
            let written = Self::write_page(&mut self.conn, page);
            (hashing.join(), written)
        });
        let tx = written?;
        sum.combine(&page_sum.map_err(|_| StoreError::corrupt("sync", "hashing thread panicked"))?);
        progress.cursor = page.next;
        progress.rows += (page.accounts.len() + page.rows.len()) as u64;
        progress.bytes += page.data_len() as u64;
        tx.execute(
            "INSERT OR REPLACE INTO meta VALUES (?1, ?2)",
            params![PROGRESS, progress.to_bytes()],
        )
        .map_err(StoreError::from)?;
        tx.execute(
            "INSERT OR REPLACE INTO meta VALUES (?1, ?2)",
            params![SUM, sum.to_bytes()],
        )
        .map_err(StoreError::from)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(progress)
    }

    /// Inserts a page's rows in a transaction left open for the progress record.
    fn write_page<'c>(
        conn: &'c mut rusqlite::Connection,
        page: &StatePage,
    ) -> Result<rusqlite::Transaction<'c>, StoreError> {
        let tx = write_tx(conn)?;
        {
            let mut ins = tx.prepare_cached(
                "INSERT INTO accounts (addr, balance, nonce) VALUES (?1, ?2, ?3)",
            )?;
            for a in &page.accounts {
                ins.execute(params![
                    &a.addr.0[..],
                    to_i64(a.account.balance.to_sat()),
                    to_i64(a.account.nonce)
                ])?;
            }
            let mut sins =
                tx.prepare_cached("INSERT INTO contract_state (key, value) VALUES (?1, ?2)")?;
            for r in &page.rows {
                sins.execute(params![r.key.as_bytes(), r.value])?;
            }
        }
        Ok(tx)
    }

    /// Finishes the sync: every page must be in and the rows must give `root`. The store
    /// then holds the state at the synced height as its own. On a mismatch every synced row
    /// is dropped and the sync must start over. Repeating a finished sync's check is
    /// harmless (the progress stays until [`ShardStore::sync_clear`]).
    pub fn sync_finish(&mut self, root: Hash256) -> Result<SyncProgress, SyncError> {
        let progress = self
            .sync_progress()?
            .ok_or(SyncError::NotSyncing(self.id))?;
        if progress.cursor.is_some() {
            return Err(SyncError::Unfinished(self.id));
        }
        let sum = self
            .meta(SUM)?
            .and_then(|b| LtHash::from_bytes(&b))
            .ok_or_else(|| StoreError::corrupt("sync progress", "running commitment"))?;
        if sum.digest() != root {
            self.sync_clear(true)?;
            return Err(SyncError::RootMismatch {
                shard: self.id,
                block: progress.block,
                want: root,
                got: sum.digest(),
            });
        }
        let tx = write_tx(&mut self.conn)?;
        // No undo records below the synced height: rolling back past it fails by name
        // rather than leaving the synced state as it is.
        for table in ["undo", "state_undo"] {
            tx.execute(&format!("DELETE FROM {table}"), [])
                .map_err(StoreError::from)?;
        }
        tx.execute(
            "INSERT OR REPLACE INTO meta VALUES ('applied_height', ?1)",
            [&progress.height.to_le_bytes()[..]],
        )
        .map_err(StoreError::from)?;
        tx.execute(
            "INSERT OR REPLACE INTO meta VALUES ('lthash', ?1)",
            [sum.to_bytes()],
        )
        .map_err(StoreError::from)?;
        tx.commit().map_err(StoreError::from)?;
        self.cache.clear();
        self.scache.clear();
        self.pending.clear();
        self.snapshot = None;
        self.lthash = sum;
        self.height = progress.height;
        self.flushed_height = progress.height;
        self.initialized = true;
        Ok(progress)
    }

    /// Empties the store and puts it at `height` with no undo records: a shard this node
    /// does not run yet, on a node that starts at a checkpoint (see [`crate::bootstrap`]).
    /// Rolling back below `height` then fails by name. Idempotent.
    pub fn reset_to(&mut self, height: u64) -> Result<(), StoreError> {
        let empty = LtHash::new();
        let tx = write_tx(&mut self.conn)?;
        for table in ["accounts", "contract_state", "undo", "state_undo"] {
            tx.execute(&format!("DELETE FROM {table}"), [])?;
        }
        for key in [PROGRESS, SUM] {
            tx.execute("DELETE FROM meta WHERE key = ?1", [key])?;
        }
        tx.execute(
            "INSERT OR REPLACE INTO meta VALUES ('applied_height', ?1)",
            [&height.to_le_bytes()[..]],
        )?;
        tx.execute(
            "INSERT OR REPLACE INTO meta VALUES ('lthash', ?1)",
            [empty.to_bytes()],
        )?;
        tx.commit()?;
        self.cache.clear();
        self.scache.clear();
        self.pending.clear();
        self.snapshot = None;
        self.lthash = empty;
        self.height = height;
        self.flushed_height = height;
        self.initialized = true;
        Ok(())
    }

    /// Forgets the sync's progress; with `rows`, drops the synced rows too.
    pub fn sync_clear(&mut self, rows: bool) -> Result<(), StoreError> {
        let tx = write_tx(&mut self.conn)?;
        if rows {
            for table in ["accounts", "contract_state"] {
                tx.execute(&format!("DELETE FROM {table}"), [])?;
            }
        }
        for key in [PROGRESS, SUM] {
            tx.execute("DELETE FROM meta WHERE key = ?1", [key])?;
        }
        tx.commit()?;
        Ok(())
    }
}
