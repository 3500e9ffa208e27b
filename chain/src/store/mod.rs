//! Storage: `chain.sqlite` (block log + index, [`ChainDb`]) and one `shard-N.sqlite` per shard
//! ([`ShardStore`]: write-back cache, undo records, LtHash commitment). Schemas live in
//! `migrations/` and are applied in order at open.

mod account;
mod chain_db;
mod checkpoint;
mod lock;
mod shard;
mod state;
mod writeback;

pub use account::{Account, Change};
pub use chain_db::{
    BlockRow, BlockStatus, ChainDb, ConnectJob, ConnectRecord, LogFault, TxIndexEntry,
};
pub use checkpoint::Checkpointer;
pub use lock::{DirLock, LOCK_FILE};
pub use shard::{genesis_lthash, CacheStats, ShardStore, ShardUndo};
pub use state::{state_leaf, StateChange, StateKey, MAX_KEY_LEN};

use rusqlite::Connection;
use rusqlite_migration::{Migrations, M};
use thiserror::Error;

/// A storage failure.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A schema migration failed.
    #[error("schema migration: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    /// Stored bytes do not decode: the file is damaged or from another version.
    #[error("corrupt {what}: {detail}")]
    Corrupt {
        /// What was being read.
        what: &'static str,
        /// Why it is wrong.
        detail: String,
    },
    /// File system error.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The database file cannot be written (permissions, read-only mount).
    #[error("{path} is read-only: the node must write its state (check the file's permissions and the mount)")]
    ReadOnly {
        /// The file.
        path: String,
    },
    /// What was asked for needs shards this node does not store (it tracks only some).
    #[error("{0} is not available: this node tracks only some shards")]
    NotTracked(&'static str),
    /// Writing a block to the block log failed in the background: the database refuses
    /// everything after it, and the node must restart from the last block logged.
    #[error("writing a block to chain.sqlite failed: {0}; restart the node (it resumes from the last block written)")]
    LogWrite(String),
    /// The data directory's lock file cannot be opened or locked (other than read-only).
    #[error("cannot lock {path}: {reason} (the data directory must be on a file system with file locks)")]
    Lock {
        /// The lock file.
        path: String,
        /// What the operating system said.
        reason: String,
    },
    /// Another process (or another open chain in this one) holds the data directory.
    #[error("the data directory {dir} is in use by {holder}: is a rexe node already running on it? (one process at a time; stop it, or use another --datadir)")]
    Locked {
        /// The directory.
        dir: String,
        /// Who holds it, as far as the lock file says (`process N`).
        holder: String,
    },
}

impl StoreError {
    pub(crate) fn corrupt(what: &'static str, detail: impl ToString) -> Self {
        StoreError::Corrupt {
            what,
            detail: detail.to_string(),
        }
    }
}

fn chain_migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(include_str!("../../../migrations/chain/0001_init.sql")),
        M::up(include_str!("../../../migrations/chain/0002_txindex.sql")),
        M::up(include_str!("../../../migrations/chain/0003_global.sql")),
        M::up(include_str!(
            "../../../migrations/chain/0004_contract_receipts.sql"
        )),
        M::up(include_str!(
            "../../../migrations/chain/0005_block_bodies.sql"
        )),
        M::up(include_str!(
            "../../../migrations/chain/0006_block_fees.sql"
        )),
        M::up(include_str!(
            "../../../migrations/chain/0007_global_items.sql"
        )),
        M::up(include_str!(
            "../../../migrations/chain/0008_receipt_kinds.sql"
        )),
        M::up(include_str!("../../../migrations/chain/0009_packages.sql")),
    ])
}

fn shard_migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(include_str!("../../../migrations/shard/0001_init.sql")),
        M::up(include_str!(
            "../../../migrations/shard/0002_contract_state.sql"
        )),
    ])
}

/// Opens a database in WAL mode and brings its schema up to date.
fn open_db(
    path: &std::path::Path,
    migrations: &Migrations<'_>,
    synchronous: &str,
    cache_kib: i64,
) -> Result<Connection, StoreError> {
    let mut conn = Connection::open(path)?;
    // SQLite opens a file it may not write read-only, silently: every later write would
    // fail. Refuse at open instead.
    if conn.is_readonly(rusqlite::DatabaseName::Main)? {
        return Err(StoreError::ReadOnly {
            path: path.display().to_string(),
        });
    }
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", synchronous)?;
    conn.pragma_update(None, "cache_size", -cache_kib)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // Checkpoints run on the [`Checkpointer`]'s thread; the automatic one is a backstop.
    conn.pragma_update(None, "wal_autocheckpoint", checkpoint::BACKSTOP_PAGES)?;
    migrations.to_latest(&mut conn)?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    #[test]
    fn migrations_are_valid() {
        super::chain_migrations().validate().unwrap();
        super::shard_migrations().validate().unwrap();
    }

    /// A chain file from before the bodies moved out of `blocks` keeps its blocks.
    #[test]
    fn block_bodies_migrate_out_of_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chain.sqlite");
        {
            let mut conn = rusqlite::Connection::open(&path).unwrap();
            super::chain_migrations().to_version(&mut conn, 4).unwrap();
            conn.execute(
                "INSERT INTO blocks VALUES (?1, 7, ?2, x'0102', x'c0ffee', ?3, 1)",
                rusqlite::params![&[1u8; 32][..], &[2u8; 32][..], &[3u8; 32][..]],
            )
            .unwrap();
        }
        let db = super::ChainDb::open(&path).unwrap();
        let hash = crate::hash::BlockHash(crate::hash::Hash256([1u8; 32]));
        assert_eq!(db.body(hash).unwrap(), Some(vec![0xc0, 0xff, 0xee]));
        let conn = rusqlite::Connection::open(&path).unwrap();
        let row: (i64, Vec<u8>, i64) = conn
            .query_row(
                "SELECT height, header, status FROM blocks WHERE hash = ?1",
                [&[1u8; 32][..]],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(row, (7, vec![1, 2], 1));
    }
}
