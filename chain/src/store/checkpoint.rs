//! WAL checkpoints off the writer's thread.
//!
//! A commit in WAL mode appends pages to the `-wal` file; a checkpoint copies them back into
//! the database file and syncs it. SQLite's automatic checkpoint runs inside the commit that
//! crosses the threshold, so the block that happens to cross it pays for copying every page
//! written since the last one (at 40,000 contract calls a block, about a third of a shard
//! checkpoint's time). The [`Checkpointer`] runs `PRAGMA wal_checkpoint(PASSIVE)` on a
//! thread of its own, with its own connections, while the writer goes on: a passive
//! checkpoint never blocks the writer, and once it has copied the whole WAL the next commit
//! starts the WAL over, so the file stays bounded. Durability is unchanged: a commit is
//! durable when it is in the WAL. The stores keep SQLite's automatic checkpoint as a
//! backstop at [`BACKSTOP_PAGES`], for when no checkpointer runs or it falls behind.

use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::JoinHandle;

use rusqlite::{Connection, OpenFlags};

/// WAL pages after which a commit checkpoints inline (4 KiB pages: ~400 MiB).
pub const BACKSTOP_PAGES: i64 = 100_000;

/// A background thread checkpointing a fixed list of databases on request.
pub struct Checkpointer {
    tx: Option<Sender<usize>>,
    handle: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread for `paths` (requests name a database by its index in `paths`).
    pub fn spawn(paths: Vec<PathBuf>) -> std::io::Result<Self> {
        let (tx, rx) = channel();
        let handle = std::thread::Builder::new()
            .name("wal-checkpoint".into())
            .spawn(move || run(paths, rx))?;
        Ok(Checkpointer {
            tx: Some(tx),
            handle: Some(handle),
        })
    }

    /// Asks for a checkpoint of database `i` (coalesced with requests not yet served).
    pub fn request(&self, i: usize) {
        if let Some(tx) = &self.tx {
            // A send fails only when the thread has stopped; the backstop covers that.
            let _ = tx.send(i);
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Runs `PRAGMA wal_checkpoint(mode)` (`PASSIVE`, `TRUNCATE`, …) on `conn`: whether it was
/// blocked, the WAL's pages, and the pages copied into the database.
pub(super) fn wal_checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<(i64, i64, i64)> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })
}

fn open(path: &PathBuf) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // A checkpoint syncs the WAL before copying and the database after, unless OFF.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

fn run(paths: Vec<PathBuf>, rx: Receiver<usize>) {
    let mut conns: Vec<Option<Connection>> = paths.iter().map(|_| None).collect();
    while let Ok(first) = rx.recv() {
        let mut wanted = vec![false; paths.len()];
        let mut mark = |i: usize| {
            if let Some(w) = wanted.get_mut(i) {
                *w = true;
            }
        };
        mark(first);
        while let Ok(i) = rx.try_recv() {
            mark(i);
        }
        for (i, w) in wanted.into_iter().enumerate() {
            if !w {
                continue;
            }
            if conns[i].is_none() {
                match open(&paths[i]) {
                    Ok(c) => conns[i] = Some(c),
                    Err(e) => {
                        tracing::warn!(path = %paths[i].display(), error = %e, "cannot open database for checkpoints");
                        continue;
                    }
                }
            }
            let conn = conns[i].as_ref().expect("just opened");
            let started = std::time::Instant::now();
            match wal_checkpoint(conn, "PASSIVE") {
                Ok((busy, log, done)) => tracing::debug!(
                    path = %paths[i].display(),
                    busy,
                    wal_pages = log,
                    copied = done,
                    ms = started.elapsed().as_millis() as u64,
                    "wal checkpoint"
                ),
                Err(e) => {
                    tracing::warn!(path = %paths[i].display(), error = %e, "wal checkpoint failed")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes go on while the thread checkpoints; once it has served every request the
    /// next commit starts the WAL over, and every committed row is in the database.
    #[test]
    fn background_checkpoints_restart_the_wal_and_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite");
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.pragma_update(None, "wal_autocheckpoint", BACKSTOP_PAGES)
            .unwrap();
        conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)", [])
            .unwrap();
        let insert = |from: i64, n: i64| {
            let tx = conn.unchecked_transaction().unwrap();
            for k in from..from + n {
                tx.execute("INSERT INTO t VALUES (?1, ?2)", (k, vec![7u8; 4000]))
                    .unwrap();
            }
            tx.commit().unwrap();
        };
        let cp = Checkpointer::spawn(vec![path.clone()]).unwrap();
        for round in 0..40 {
            insert(round * 100, 100);
            cp.request(0);
        }
        // Joins the thread after it served the last request.
        drop(cp);
        insert(4000, 1);
        let (_, frames, _) = wal_checkpoint(&conn, "PASSIVE").unwrap();
        // Without the checkpoints the WAL would hold the 4,001 rows' ~4,000 pages.
        assert!(frames < 20, "WAL not restarted: {frames} frames");
        drop(conn);
        let conn = Connection::open(&path).unwrap();
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 4001);
    }
}
