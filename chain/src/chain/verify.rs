//! The state checks itself at open (issue 17): every shard file is present and writable,
//! the stored commitments add up to the tip header's `state_root`, every account sits in
//! the shard file it belongs to, and the supply audit holds. A full recomputation of every
//! shard's commitment (and SQLite's `integrity_check`) runs on request
//! ([`ChainConfig::verify_state`]). On a mismatch the file at fault is named.

use super::*;

impl Chain {
    /// Path of shard `s`'s file.
    pub(super) fn shard_path(&self, s: ShardId) -> PathBuf {
        self.dir.join(format!("shard-{}.sqlite", s.0))
    }

    fn corrupt_state(&self, file: &Path, reason: impl ToString) -> ChainError {
        ChainError::CorruptState {
            file: file.display().to_string(),
            reason: reason.to_string(),
        }
    }

    /// The checks run at every open, after recovery: commitments against the tip header,
    /// shard membership and the supply audit (one streaming pass over the accounts).
    pub(super) fn check_state(&mut self) -> Result<(), ChainError> {
        let tip = self.tip_height();
        let tip_hash = self.tip_hash();
        let header_root = self
            .index
            .get(&tip_hash)
            .map(|e| e.header.state_root)
            .ok_or_else(|| StoreError::corrupt("block index", "tip header missing"))?;
        let mut leaves: Vec<Hash256> = self.shards.iter().map(ShardStore::digest).collect();
        leaves.push(self.global.digest());
        if self.is_partial() {
            // The shards this node does not run: their roots as the tip's package gave them.
            // No supply audit: it needs every account.
            let chunks = self.stored_relays(tip_hash)?.chunks;
            for (i, leaf) in leaves.iter_mut().enumerate().take(self.shards.len()) {
                if !self.tracked[i] {
                    *leaf = chunks[i].state_root;
                }
            }
            if merkle_root(&leaves) == header_root {
                return Ok(());
            }
            return Err(self.corrupt_state(
                &self.dir,
                format!("the tracked shards' commitments do not match block {tip}'s state_root {header_root}"),
            ));
        }
        let root_ok = merkle_root(&leaves) == header_root;

        // One pass: every account in its own shard, balances summed.
        let order = self.params.shard_order;
        let mut balances = Amount::ZERO;
        for i in 0..self.shards.len() {
            let id = self.shards[i].id();
            let mut foreign = None;
            let mut sum = Amount::ZERO;
            let scanned = self.shards[i].for_each_account(|addr, a| {
                if shard_of(addr, order) != id && foreign.is_none() {
                    foreign = Some(*addr);
                }
                sum = sum
                    .checked_add(a.balance)
                    .ok_or_else(|| StoreError::corrupt("supply", "balance sum overflows"))?;
                Ok(())
            });
            if let Err(e) = scanned {
                return Err(
                    self.corrupt_state(&self.shard_path(id), format!("reading its accounts: {e}"))
                );
            }
            if let Some(a) = foreign {
                return Err(self.corrupt_state(
                    &self.shard_path(id),
                    format!(
                        "holds account {a} of shard {} (a shard file copied over another?)",
                        shard_of(&a, order).0
                    ),
                ));
            }
            balances = balances
                .checked_add(sum)
                .ok_or_else(|| StoreError::corrupt("supply", "balance sum overflows"))?;
        }
        let supply = self.supply_with_balances(balances)?;
        if root_ok && supply.holds() {
            tracing::debug!(
                height = tip,
                "state matches the tip's commitments; supply audit holds"
            );
            return Ok(());
        }
        // Something is off: find the file by recomputing each shard's commitment.
        for i in 0..self.shards.len() {
            let id = self.shards[i].id();
            let stored = self.shards[i].digest();
            let computed = match self.shards[i].recompute_lthash(|_| {}) {
                Ok(lt) => lt.digest(),
                Err(e) => {
                    return Err(
                        self.corrupt_state(&self.shard_path(id), format!("reading its rows: {e}"))
                    )
                }
            };
            if computed != stored {
                return Err(self.corrupt_state(
                    &self.shard_path(id),
                    format!(
                        "its rows do not match its stored commitment (rows {computed}, stored {stored}): edited or damaged"
                    ),
                ));
            }
        }
        if !root_ok {
            return Err(self.corrupt_state(
                &self.dir.join("chain.sqlite"),
                format!(
                    "the shards' commitments and the global state do not add up to block {tip}'s state_root {header_root}: a shard file from another height or chain, or damaged global state"
                ),
            ));
        }
        Err(self.corrupt_state(
            &self.dir,
            format!(
                "supply audit fails at height {tip}: balances {} + in flight {} + held {} != expected {}",
                supply.balances, supply.in_flight, supply.held, supply.expected
            ),
        ))
    }

    /// The full check (`--verify-state`): SQLite's `integrity_check` of every shard file and
    /// a recomputation of every shard's commitment from its rows, with progress logged.
    pub(super) fn verify_state_full(&mut self) -> Result<(), ChainError> {
        let n = self.shards.len();
        for i in 0..n {
            let id = self.shards[i].id();
            let path = self.shard_path(id);
            tracing::info!(shard = id.0, file = %path.display(), "verifying shard ({}/{n}): integrity check", i + 1);
            match self.shards[i].integrity_problem() {
                Ok(None) => {}
                Ok(Some(p)) => {
                    return Err(self.corrupt_state(&path, format!("SQLite integrity_check: {p}")))
                }
                Err(e) => {
                    return Err(self.corrupt_state(&path, format!("SQLite integrity_check: {e}")))
                }
            }
            let stored = self.shards[i].digest();
            let computed = match self.shards[i].recompute_lthash(|rows| {
                tracing::info!(
                    shard = id.0,
                    rows,
                    "verifying shard: recomputing its commitment"
                )
            }) {
                Ok(lt) => lt.digest(),
                Err(e) => return Err(self.corrupt_state(&path, format!("reading its rows: {e}"))),
            };
            if computed != stored {
                return Err(self.corrupt_state(
                    &path,
                    format!("its rows do not match its stored commitment (rows {computed}, stored {stored})"),
                ));
            }
        }
        tracing::info!(
            shards = n,
            "state verified: every shard's commitment recomputed"
        );
        Ok(())
    }

    /// Before recovery: a data directory with blocks needs every shard file.
    pub(super) fn check_shard_files(dir: &Path, paths: &[PathBuf]) -> Result<(), ChainError> {
        for p in paths {
            if !p.exists() {
                return Err(ChainError::CorruptState {
                    file: p.display().to_string(),
                    reason: format!(
                        "missing, but {} holds blocks: restore the file, or start over with an empty data directory",
                        dir.join("chain.sqlite").display()
                    ),
                });
            }
        }
        Ok(())
    }
}
