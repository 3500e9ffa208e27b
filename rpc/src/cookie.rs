//! The `.cookie` file of a JSON-RPC server, as bitcoind writes it: `__cookie__:<64 hex
//! digits>` from the OS random source, created with mode 0600 at start (replacing a stale
//! one) and removed at shutdown by the server. The L2 node and the regtest node both write
//! theirs here.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// User name of cookie credentials.
pub const COOKIE_USER: &str = "__cookie__";

/// Creates a fresh cookie in `dir`; returns the `user:secret` string and the file's path.
pub fn write(dir: &Path) -> std::io::Result<(String, PathBuf)> {
    let mut secret = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut secret)?;
    let mut value = format!("{COOKIE_USER}:");
    for b in secret {
        let _ = write!(value, "{b:02x}");
    }
    let path = dir.join(".cookie");
    let _ = std::fs::remove_file(&path);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?
        .write_all(value.as_bytes())?;
    Ok((value, path))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_fresh_secret_in_a_0600_file() {
        let dir = tempfile::tempdir().unwrap();
        let (a, path) = super::write(dir.path()).unwrap();
        let (b, _) = super::write(dir.path()).unwrap();
        assert_ne!(a, b, "each start makes a new secret");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), b);
        let (user, secret) = b.split_once(':').unwrap();
        assert_eq!(user, super::COOKIE_USER);
        assert_eq!(secret.len(), 64);
        assert!(secret.bytes().all(|c| c.is_ascii_hexdigit()));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
