//! The node's `.cookie` file (written by [`rexe_rpc::cookie`], as the regtest node's is):
//! `__cookie__:<64 hex digits>`, mode 0600, written at start and removed at shutdown, as
//! bitcoind does.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub use rexe_rpc::cookie::COOKIE_USER;

/// Creates a fresh cookie in `datadir`; returns the `user:secret` string and its path.
pub fn write(datadir: &Path) -> Result<(String, PathBuf)> {
    rexe_rpc::cookie::write(datadir).map_err(|e| {
        Error::io(
            format!("creating the RPC cookie in {}", datadir.display()),
            e,
        )
    })
}
