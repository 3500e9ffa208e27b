//! PSBT files: base64 text (BIP174's usual exchange format, what bitcoind, Electrum and
//! Sparrow read and write); raw binary PSBTs are accepted on input too.

use std::path::Path;
use std::str::FromStr;

use bitcoin::Psbt;

use crate::error::{Result, WalletError};

/// Parses a base64 PSBT (surrounding whitespace ignored).
pub fn psbt_from_base64(text: &str) -> Result<Psbt> {
    let t = text.trim();
    if t.is_empty() {
        return Err(WalletError::Psbt("empty input".into()));
    }
    Psbt::from_str(t).map_err(|e| WalletError::Psbt(format!("not a base64 PSBT: {e}")))
}

/// The base64 text of a PSBT.
pub fn psbt_to_base64(psbt: &Psbt) -> String {
    psbt.to_string()
}

/// Reads a PSBT file: base64 text, or binary (starting with the `psbt\xff` magic).
pub fn read_psbt_file(path: &Path) -> Result<Psbt> {
    let bytes = std::fs::read(path).map_err(|source| WalletError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if bytes.starts_with(b"psbt\xff") {
        return Psbt::deserialize(&bytes)
            .map_err(|e| WalletError::Psbt(format!("{}: not a binary PSBT: {e}", path.display())));
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        WalletError::Psbt(format!(
            "{}: neither base64 text nor binary PSBT",
            path.display()
        ))
    })?;
    psbt_from_base64(text)
        .map_err(|e| WalletError::Psbt(format!("{}: {}", path.display(), inner(&e))))
}

/// Writes a PSBT file as base64 text with a final newline.
pub fn write_psbt_file(path: &Path, psbt: &Psbt) -> Result<()> {
    std::fs::write(path, format!("{psbt}\n")).map_err(|source| WalletError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn inner(e: &WalletError) -> String {
    match e {
        WalletError::Psbt(m) => m.clone(),
        other => other.to_string(),
    }
}
