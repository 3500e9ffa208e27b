//! The plain SQLite floor of `bench transfers --floor` (issue 24 item 4): the same workload
//! (the same random transfers between the same number of accounts, the same transfers per
//! block) applied as one `UPDATE` per dirty account per block, in one SQLite transaction
//! per block on one connection, with integer keys and with 32-byte keys. No signatures,
//! nonces checked, fees, commitments, relays or block log: what any ledger kept in SQLite
//! must at least do, so the transfer figure can be read against it.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use rusqlite::{params, Connection};

use crate::XorShift;

/// How the floor's accounts are keyed.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Keys {
    /// `INTEGER PRIMARY KEY` (the rowid).
    Integer,
    /// A 32-byte hash-like `BLOB` key (`WITHOUT ROWID`), as account keys derived from
    /// addresses are.
    Bytes32,
}

/// A 32-byte key for account `i`: four splitmix64 lanes, spread like a hash.
fn key32(i: u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (lane, chunk) in out.chunks_mut(8).enumerate() {
        let mut z = i
            .wrapping_mul(4)
            .wrapping_add(lane as u64)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_be_bytes());
    }
    out
}

/// Transfers per second of the floor for `accounts` accounts, `blocks` blocks of
/// `block_txs` transfers, in a fresh database in `dir` (genesis rows not timed).
pub(crate) fn run(
    dir: &Path,
    keys: Keys,
    accounts: u64,
    block_txs: usize,
    blocks: u64,
) -> Result<f64> {
    let path = dir.join(format!("floor-{keys:?}.sqlite"));
    let mut db = Connection::open(&path).context("opening the floor's database")?;
    db.pragma_update(None, "journal_mode", "WAL")?;
    db.pragma_update(None, "synchronous", "NORMAL")?;
    db.pragma_update(None, "cache_size", -262_144i64)?;
    db.pragma_update(None, "temp_store", "MEMORY")?;
    let (create, insert, update) = match keys {
        Keys::Integer => (
            "CREATE TABLE account (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL, nonce INTEGER NOT NULL)",
            "INSERT INTO account (id, balance, nonce) VALUES (?1, ?2, 0)",
            "UPDATE account SET balance = balance + ?1, nonce = nonce + ?2 WHERE id = ?3",
        ),
        Keys::Bytes32 => (
            "CREATE TABLE account (key BLOB PRIMARY KEY, balance INTEGER NOT NULL, nonce INTEGER NOT NULL) WITHOUT ROWID",
            "INSERT INTO account (key, balance, nonce) VALUES (?1, ?2, 0)",
            "UPDATE account SET balance = balance + ?1, nonce = nonce + ?2 WHERE key = ?3",
        ),
    };
    db.execute_batch(create)?;
    {
        let tx = db.transaction()?;
        {
            let mut st = tx.prepare(insert)?;
            for i in 0..accounts {
                match keys {
                    Keys::Integer => st.execute(params![i as i64, 100_000_000i64])?,
                    Keys::Bytes32 => st.execute(params![&key32(i)[..], 100_000_000i64])?,
                };
            }
        }
        tx.commit()?;
    }
    // The same transfers as `bench transfers` draws.
    let mut rng = XorShift::transfers(accounts);
    let start = Instant::now();
    let mut done = 0u64;
    for _ in 0..blocks {
        // Dirty accounts of the block: balance change and nonce increase.
        let mut dirty: HashMap<u64, (i64, i64)> = HashMap::with_capacity(block_txs * 2);
        for _ in 0..block_txs {
            let from = rng.next() % accounts;
            let to = rng.next() % accounts;
            let f = dirty.entry(from).or_default();
            f.0 -= 1;
            f.1 += 1;
            dirty.entry(to).or_default().0 += 1;
        }
        let mut rows: Vec<(u64, (i64, i64))> = dirty.into_iter().collect();
        rows.sort_unstable_by_key(|(k, _)| *k);
        let tx = db.transaction()?;
        {
            let mut st = tx.prepare_cached(update)?;
            for (id, (delta, nonces)) in rows {
                let n = match keys {
                    Keys::Integer => st.execute(params![delta, nonces, id as i64])?,
                    Keys::Bytes32 => st.execute(params![delta, nonces, &key32(id)[..]])?,
                };
                anyhow::ensure!(n == 1, "floor: account {id} missing");
            }
        }
        tx.commit()?;
        done += block_txs as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    let total: i64 = db.query_row("SELECT SUM(balance) FROM account", [], |r| r.get(0))?;
    anyhow::ensure!(
        total == accounts as i64 * 100_000_000,
        "floor: balances do not add up"
    );
    Ok(done as f64 / secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_moves_balances_and_keeps_the_total() {
        let dir = tempfile::tempdir().unwrap();
        for keys in [Keys::Integer, Keys::Bytes32] {
            let rate = run(dir.path(), keys, 1_000, 500, 3).unwrap();
            assert!(rate > 0.0);
        }
        assert_ne!(key32(1), key32(2));
        assert_ne!(key32(1)[..8], key32(1)[8..16]);
    }
}
