//! Issue 17 item 5: the state checks itself at open. Each kind of damage found by the
//! security review — a zeroed commitment, an edited balance, a shard file copied over
//! another, a deleted shard file, flipped bytes — is refused with an error naming the file,
//! instead of a node that starts and serves wrong state.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use rexe_chain::seal::TestSealer;
use rexe_chain::{Chain, ChainConfig, ChainError, ChainParams, Signer};

/// A closed chain with a few blocks of transfers in `dir` (4 shards, accounts in each).
fn build(dir: &Path) -> (ChainParams, Vec<Signer>) {
    let ks = keys(16);
    let params = params(2, &ks);
    let mut chain = open(dir, &params, 2);
    for round in 0..3u64 {
        for (i, k) in ks.iter().enumerate() {
            let to = ks[(i + 1) % ks.len()].address();
            chain.submit_tx(transfer(k, to, 1000, round, 200)).unwrap();
        }
        mine(&mut chain, ks[0].address());
    }
    chain.flush().unwrap();
    drop(chain);
    (params, ks)
}

fn reopen(dir: &Path, params: &ChainParams, verify_state: bool) -> Result<Chain, ChainError> {
    Chain::open(
        dir,
        params.clone(),
        ChainConfig {
            verify_state,
            ..config(2)
        },
        Arc::new(TestSealer),
    )
}

fn shard(dir: &Path, i: u32) -> PathBuf {
    dir.join(format!("shard-{i}.sqlite"))
}

fn sql(path: &Path, stmt: &str) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(stmt).unwrap();
}

/// The error names `file`.
fn assert_names(r: Result<Chain, ChainError>, file: &Path, what: &str) {
    match r {
        Ok(_) => panic!("{what}: opened damaged state"),
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&file.display().to_string()),
                "{what}: error does not name {}: {msg}",
                file.display()
            );
        }
    }
}

#[test]
fn intact_state_opens_and_the_full_check_passes() {
    let dir = tempfile::tempdir().unwrap();
    let (params, _) = build(dir.path());
    let mut c = reopen(dir.path(), &params, true).expect("intact state opens with --verify-state");
    assert_eq!(c.tip_height(), 3);
    assert!(c.audit_supply().unwrap().holds());
}

#[test]
fn a_zeroed_commitment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (params, _) = build(dir.path());
    sql(
        &shard(dir.path(), 1),
        "UPDATE meta SET value = zeroblob(length(value)) WHERE key = 'lthash'",
    );
    assert_names(
        reopen(dir.path(), &params, false),
        &shard(dir.path(), 1),
        "zeroed lthash",
    );
}

#[test]
fn an_edited_balance_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (params, _) = build(dir.path());
    sql(
        &shard(dir.path(), 2),
        "UPDATE accounts SET balance = balance + 100000000000 WHERE addr = (SELECT min(addr) FROM accounts)",
    );
    assert_names(
        reopen(dir.path(), &params, false),
        &shard(dir.path(), 2),
        "edited balance",
    );
}

#[test]
fn a_shard_file_copied_over_another_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (params, _) = build(dir.path());
    std::fs::copy(shard(dir.path(), 0), shard(dir.path(), 3)).unwrap();
    for ext in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.path().join(format!("shard-3.sqlite{ext}")));
    }
    assert_names(
        reopen(dir.path(), &params, false),
        &shard(dir.path(), 3),
        "copied shard",
    );
}

#[test]
fn a_deleted_shard_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (params, _) = build(dir.path());
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.path().join(format!("shard-2.sqlite{ext}")));
    }
    let r = reopen(dir.path(), &params, false);
    assert_names(r, &shard(dir.path(), 2), "deleted shard");
    assert!(!shard(dir.path(), 2).exists(), "not recreated empty");
}

#[test]
fn flipped_bytes_are_found_by_the_full_check() {
    let dir = tempfile::tempdir().unwrap();
    let (params, _) = build(dir.path());
    let path = shard(dir.path(), 1);
    // Checkpoint the WAL into the file, then damage a page of the accounts table.
    sql(&path, "PRAGMA wal_checkpoint(TRUNCATE)");
    let mut bytes = std::fs::read(&path).unwrap();
    let page = 4096;
    let root: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row(
            "SELECT rootpage FROM sqlite_master WHERE name = 'accounts'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    // Cells sit at the end of a b-tree page.
    let at = root as usize * page - 64;
    for b in &mut bytes[at..at + 64] {
        *b ^= 0xa5;
    }
    std::fs::write(&path, bytes).unwrap();
    assert_names(reopen(dir.path(), &params, true), &path, "flipped bytes");
}

#[test]
fn a_read_only_shard_file_is_refused_at_open() {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if rustix::process::geteuid().is_root() {
            println!("skipped: running as root, which may write read-only files");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let (params, _) = build(dir.path());
        let path = shard(dir.path(), 0);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
        let r = reopen(dir.path(), &params, false);
        assert_names(r, &path, "read-only shard");
    }
}

#[test]
fn a_shard_file_from_an_older_backup_is_replayed_forward() {
    // A shard behind the others (its file from an older backup, consistent in itself) is
    // not damage: opening replays it forward from the block log.
    let dir = tempfile::tempdir().unwrap();
    let (params, ks) = build(dir.path());
    let backup = dir.path().join("backup.sqlite");
    {
        let c = rusqlite::Connection::open(shard(dir.path(), 1)).unwrap();
        c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    }
    std::fs::copy(shard(dir.path(), 1), &backup).unwrap();
    let mut chain = reopen(dir.path(), &params, false).unwrap();
    for (i, k) in ks.iter().enumerate() {
        chain
            .submit_tx(transfer(k, ks[(i + 3) % ks.len()].address(), 500, 3, 200))
            .unwrap();
    }
    mine(&mut chain, ks[1].address());
    chain.flush().unwrap();
    drop(chain);
    // The old copy is consistent in itself, only behind: opening replays it forward.
    for ext in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.path().join(format!("shard-1.sqlite{ext}")));
    }
    std::fs::copy(&backup, shard(dir.path(), 1)).unwrap();
    let mut c = reopen(dir.path(), &params, true).expect("a shard behind is replayed forward");
    assert_eq!(c.tip_height(), 4);
    assert!(c.audit_supply().unwrap().holds());
}

/// The system contracts' stored items are checked when they are loaded: an item of a
/// contract that is not installed, an item that does not decode, and a missing base are
/// each refused as a corrupt global state instead of being ignored or half-read.
#[test]
fn damaged_global_items_are_refused() {
    let chain_db = |d: &Path| d.join("chain.sqlite");
    for (what, stmt) in [
        (
            "stray item",
            "INSERT INTO global_item VALUES (9, X'01', X'02')",
        ),
        (
            "undecodable contract",
            "INSERT INTO global_item VALUES (2, zeroblob(32), X'0102')",
        ),
        ("no base", "DELETE FROM meta WHERE key = 'global_base'"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (params, _) = build(dir.path());
        sql(&chain_db(dir.path()), stmt);
        match reopen(dir.path(), &params, false) {
            Ok(_) => panic!("{what}: opened"),
            Err(e) => assert!(e.to_string().contains("global state"), "{what}: {e}"),
        }
    }
}
