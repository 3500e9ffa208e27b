//! The `.cookie` file: `__cookie__:<64 hex digits>` from the OS random source, written with
//! mode 0600 at start and removed at shutdown, as bitcoind does.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bitcoin::hex::DisplayHex;

/// User name of cookie credentials.
pub const COOKIE_USER: &str = "__cookie__";

/// Creates a fresh cookie in `datadir`; returns the `user:secret` string and its path.
pub fn write(datadir: &Path) -> Result<(String, PathBuf)> {
    let mut secret = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut secret))
        .context("reading /dev/urandom for the RPC cookie")?;
    let value = format!("{COOKIE_USER}:{}", secret.to_lower_hex_string());
    let path = datadir.join(".cookie");
    let _ = std::fs::remove_file(&path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(value.as_bytes())?;
    Ok((value, path))
}
