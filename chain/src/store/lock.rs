//! The data directory's lock: one process (and one [`crate::Chain`]) at a time.
//!
//! Like Bitcoin Core's `.lock`, an exclusive advisory lock (`flock` on Unix) on a file in the
//! data directory, held for as long as the chain is open. A second node on the same
//! directory, or a tool run against a running node's files, is refused with the holder's
//! process id instead of writing the same SQLite files and block log. The operating system
//! releases the lock when the holder exits, crashed or not, so a stale file never blocks a
//! restart.

use super::StoreError;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The lock file's name in the data directory.
pub const LOCK_FILE: &str = ".lock";

/// An exclusive lock on a data directory, released when dropped.
#[derive(Debug)]
pub struct DirLock {
    file: File,
    path: PathBuf,
}

impl DirLock {
    /// Takes the lock on `dir` (which must exist), or says which process holds it.
    pub fn acquire(dir: &Path) -> Result<DirLock, StoreError> {
        let path = dir.join(LOCK_FILE);
        let shown = || path.display().to_string();
        let mut file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
        {
            Ok(f) => f,
            // As for the databases: a node that cannot write its directory says so by name.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem
                ) =>
            {
                return Err(StoreError::ReadOnly { path: shown() })
            }
            Err(e) => {
                return Err(StoreError::Lock {
                    path: shown(),
                    reason: e.to_string(),
                })
            }
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(StoreError::Locked {
                    dir: dir.display().to_string(),
                    holder: if holder.is_empty() || holder.len() > 20 {
                        "another process".into()
                    } else {
                        format!("process {holder}")
                    },
                });
            }
            // A file system without locks (some network mounts): refused, as Bitcoin Core
            // does, rather than run unprotected.
            Err(TryLockError::Error(e)) => {
                return Err(StoreError::Lock {
                    path: shown(),
                    reason: e.to_string(),
                })
            }
        }
        // The holder's process id, for the message a second opener prints (informational:
        // the lock, not the file's content, is what excludes).
        let _ = file
            .set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(file, "{}", std::process::id()))
            .and_then(|()| file.flush());
        Ok(DirLock { file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Closing the file releases the lock too; unlocking first makes the order explicit.
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_directory_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path()).unwrap();
        assert_eq!(first.path(), dir.path().join(LOCK_FILE));
        // A second open file description conflicts even in the same process.
        match DirLock::acquire(dir.path()) {
            Err(StoreError::Locked { dir: d, holder }) => {
                assert_eq!(d, dir.path().display().to_string());
                assert_eq!(holder, format!("process {}", std::process::id()));
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(first);
        let again = DirLock::acquire(dir.path()).unwrap();
        drop(again);
    }

    /// Skipped as root, who may write anything.
    #[cfg(unix)]
    #[test]
    fn a_directory_the_node_cannot_write_is_refused_by_name() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
        if std::fs::write(dir.path().join("probe"), b"").is_ok() {
            eprintln!("skipped: this user writes read-only directories (root)");
            return;
        }
        match DirLock::acquire(dir.path()) {
            Err(StoreError::ReadOnly { path }) => assert!(path.ends_with(LOCK_FILE), "{path}"),
            other => panic!("expected ReadOnly, got {other:?}"),
        }
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn a_lock_file_left_behind_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LOCK_FILE), "12345\n").unwrap();
        let lock = DirLock::acquire(dir.path()).unwrap();
        let pid = std::fs::read_to_string(lock.path()).unwrap();
        assert_eq!(pid.trim(), std::process::id().to_string());
    }
}
