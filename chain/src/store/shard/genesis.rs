//! A shard's genesis state written from chunks in bounded memory. Accounts are staged in a
//! buffer; past [`SPILL_ROWS`] the buffer is sorted and written out as a run file beside the
//! shard file, and the genesis write merges the runs (and what is left in the buffer) in key
//! order into the accounts table. The commitment is summed as accounts come in (an LtHash
//! does not depend on order). A shard whose accounts fit in one buffer is sorted in memory
//! and written as before, with no file.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use crate::address::Address;
use crate::amount::Amount;
use crate::lthash::LtHash;
use crate::store::StoreError;

/// Accounts a shard holds in memory while its genesis is staged (40 bytes each; the crate's
/// unit tests spill small runs).
pub(crate) const SPILL_ROWS: usize = if cfg!(test) { 500 } else { 1 << 20 };

/// Bytes of one account in a run file: the address, then the amount (sats, little-endian).
const RECORD: usize = 40;

/// Genesis accounts staged for one shard.
pub(super) struct Staged {
    /// The shard file's path (run files are named after it).
    base: PathBuf,
    buf: Vec<(Address, Amount)>,
    runs: Vec<PathBuf>,
    spill_rows: usize,
    /// The commitment of every account staged.
    pub(super) lthash: LtHash,
}

impl Staged {
    /// Starts staging for the shard file at `base`, removing run files a crash left.
    pub(super) fn new(base: &Path, spill_rows: usize) -> Result<Self, StoreError> {
        let s = Staged {
            base: base.to_path_buf(),
            buf: Vec::new(),
            runs: Vec::new(),
            spill_rows: spill_rows.max(1),
            lthash: LtHash::new(),
        };
        for i in 0.. {
            match std::fs::remove_file(s.run_path(i)) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => break,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(s)
    }

    fn run_path(&self, i: usize) -> PathBuf {
        let mut name = self.base.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".genesis-run-{i}"));
        self.base.with_file_name(name)
    }

    /// Adds accounts (their leaves go into the commitment now).
    pub(super) fn push(&mut self, chunk: &[(Address, Amount)]) -> Result<(), StoreError> {
        self.lthash.combine(&super::genesis_lthash(chunk));
        for account in chunk {
            self.buf.push(*account);
            if self.buf.len() >= self.spill_rows {
                self.spill()?;
            }
        }
        Ok(())
    }

    /// Writes the buffer, sorted, as the next run file.
    fn spill(&mut self) -> Result<(), StoreError> {
        self.buf.sort_unstable_by_key(|a| a.0);
        let path = self.run_path(self.runs.len());
        let mut w = BufWriter::with_capacity(1 << 20, File::create(&path)?);
        self.runs.push(path);
        for (addr, amount) in self.buf.drain(..) {
            w.write_all(&addr.0)?;
            w.write_all(&amount.to_sat().to_le_bytes())?;
        }
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        Ok(())
    }

    /// Every account staged, in key order, to `each`; the run files are removed after.
    pub(super) fn drain_sorted(
        mut self,
        mut each: impl FnMut(&Address, Amount) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.buf.sort_unstable_by_key(|a| a.0);
        if self.runs.is_empty() {
            for (addr, amount) in &self.buf {
                each(addr, *amount)?;
            }
            return Ok(());
        }
        let result = self.merge(&mut each);
        // Last first: files a crash leaves behind are always runs 0.., which the next
        // staging removes.
        for p in self.runs.iter().rev() {
            let _ = std::fs::remove_file(p);
        }
        result
    }

    /// K-way merge of the run files and the sorted buffer.
    fn merge(
        &mut self,
        each: &mut impl FnMut(&Address, Amount) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut readers = Vec::with_capacity(self.runs.len());
        for p in &self.runs {
            readers.push(BufReader::with_capacity(1 << 16, File::open(p)?));
        }
        let mut mem = std::mem::take(&mut self.buf).into_iter();
        let n = readers.len();
        // Source `n` is the buffer; the others are run files.
        let mut next = |src: usize| -> Result<Option<(Address, Amount)>, StoreError> {
            if src == n {
                return Ok(mem.next());
            }
            let mut rec = [0u8; RECORD];
            match readers[src].read_exact(&mut rec) {
                Ok(()) => {
                    let mut addr = [0u8; 32];
                    addr.copy_from_slice(&rec[..32]);
                    let mut sats = [0u8; 8];
                    sats.copy_from_slice(&rec[32..]);
                    Ok(Some((
                        Address(addr),
                        Amount::from_sat(u64::from_le_bytes(sats)),
                    )))
                }
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(None),
                Err(e) => Err(e.into()),
            }
        };
        let mut heap = BinaryHeap::with_capacity(n + 1);
        for src in 0..=n {
            if let Some((a, v)) = next(src)? {
                heap.push(Reverse((a, src, v)));
            }
        }
        while let Some(Reverse((a, src, v))) = heap.pop() {
            each(&a, v)?;
            if let Some((a, v)) = next(src)? {
                heap.push(Reverse((a, src, v)));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_merge_into_key_order_and_leave_no_files() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("shard-0.sqlite");
        // A run left by a crash is removed when staging starts.
        std::fs::write(dir.path().join("shard-0.sqlite.genesis-run-0"), b"stale").unwrap();
        let mut staged = Staged::new(&base, 3).unwrap();
        let accounts: Vec<(Address, Amount)> = (0..11u64)
            .map(|i| {
                let a = crate::params::bench_address(i);
                (a, Amount::from_sat(i * 7))
            })
            .collect();
        for chunk in accounts.chunks(4) {
            staged.push(chunk).unwrap();
        }
        let runs = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(runs, 3, "three runs of three, two accounts in memory");
        assert_eq!(
            staged.lthash.digest(),
            crate::store::genesis_lthash(&accounts).digest()
        );
        let mut out = Vec::new();
        staged
            .drain_sorted(|a, v| {
                out.push((*a, v));
                Ok(())
            })
            .unwrap();
        let mut want = accounts.clone();
        want.sort_unstable_by_key(|a| a.0);
        assert_eq!(out, want);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
