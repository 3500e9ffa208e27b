//! Bitcoin-anchored finality.
//!
//! An L2 block is sealed by the work of a Bitcoin header (the AuxPoW parent). When that
//! header is a Bitcoin block buried at least `K` deep on the Bitcoin chain the L2 tracks (the
//! peg's header chain, `btc_confirmations`), the L2 block is **anchored**: rewriting it would
//! mean rewriting Bitcoin. Fork choice never reorganises below the latest anchored block,
//! whatever the competing branch's work, so a miner with more L2 hash power than everyone
//! else still cannot undo a take (or anything else) once it sits at or below an anchor.
//!
//! The anchor is judged against the tracked Bitcoin chain at the active tip, scanning the
//! blocks connected since the last anchor (at most `undo_depth` of them: deeper blocks can no
//! longer be reorganised anyway). It only moves up along the active chain, and it is kept
//! in the chain database, so a node that saw an anchor still refuses a branch below it after a
//! restart. Stale and premature seals (a parent off Bitcoin's best chain, or no Bitcoin block
//! at all) never anchor anything.

use std::collections::HashMap;

use crate::block::Block;
use crate::hash::{BlockHash, Hash256};
use crate::store::StoreError;

use super::Chain;

/// Meta key of the persisted anchor: height (u64 LE) then hash.
const META_KEY: &str = "anchor";

/// The chain's anchor bookkeeping.
#[derive(Debug, Default)]
pub(super) struct Anchors {
    /// Latest anchored active block.
    latest: Option<(u64, BlockHash)>,
    /// Bitcoin parent of the seal of recently connected active blocks.
    parents: HashMap<BlockHash, [u8; 32]>,
}

impl Chain {
    /// The latest Bitcoin-anchored block on the active chain (height, hash): blocks at or
    /// below it are final; no reorganisation goes below it.
    pub fn anchor(&self) -> Option<(u64, BlockHash)> {
        self.anchor.latest
    }

    /// Whether the active block at `height` is final (at or below the latest anchor).
    pub fn is_final(&self, height: u64) -> bool {
        self.anchor
            .latest
            .is_some_and(|(h, _)| height <= h && height <= self.tip_height())
    }

    /// Reads the persisted anchor at open (dropped if its block is no longer active).
    pub(super) fn load_anchor(&mut self) -> Result<(), StoreError> {
        let Some(raw) = self.db.meta(META_KEY)? else {
            return Ok(());
        };
        let Ok(raw) = <[u8; 40]>::try_from(raw.as_slice()) else {
            tracing::warn!("ignoring a malformed stored anchor");
            return Ok(());
        };
        let height = u64::from_le_bytes(raw[..8].try_into().expect("8 bytes"));
        let hash = BlockHash(Hash256(raw[8..].try_into().expect("32 bytes")));
        if self.hash_at(height) == Some(hash) {
            self.anchor.latest = Some((height, hash));
            tracing::info!(height, %hash, "Bitcoin-anchored finality: blocks up to here are final");
        }
        Ok(())
    }

    /// After a block is connected: remembers its seal's Bitcoin parent and moves the anchor
    /// up if a block above it is now anchored.
    pub(super) fn note_connected(&mut self, block: &Block) -> Result<(), StoreError> {
        let hash = block.header.hash();
        if let Some(parent) = self.sealer.bitcoin_parent(&block.seal) {
            self.anchor.parents.insert(hash, parent);
        }
        let tip = self.tip_height();
        let floor = tip.saturating_sub(self.params.undo_depth);
        if self.anchor.parents.len() as u64 > self.params.undo_depth.saturating_mul(2) + 16 {
            let keep: std::collections::HashSet<BlockHash> =
                self.active[floor as usize..].iter().copied().collect();
            self.anchor.parents.retain(|h, _| keep.contains(h));
        }
        // Only blocks above the current anchor can move it.
        let from = self
            .anchor
            .latest
            .map_or(floor, |(h, _)| (h + 1).max(floor))
            .max(1);
        if self.anchor.parents.is_empty() || from > tip {
            return Ok(());
        }
        for height in (from..=tip).rev() {
            let h = self.active[height as usize];
            let Some(parent) = self.anchor.parents.get(&h) else {
                continue;
            };
            if self.systems.iter().any(|s| s.anchors(parent)) {
                self.anchor.latest = Some((height, h));
                let mut raw = height.to_le_bytes().to_vec();
                raw.extend_from_slice(&h.0 .0);
                self.db.set_meta(META_KEY, &raw)?;
                tracing::info!(height, hash = %h, "L2 block anchored by a buried Bitcoin block: final");
                break;
            }
        }
        Ok(())
    }

    /// After the tip was disconnected (an explicit rollback; reorgs never go below the
    /// anchor): an anchor above the new tip no longer stands.
    pub(super) fn note_disconnected(&mut self) {
        if self
            .anchor
            .latest
            .is_some_and(|(h, _)| h > self.tip_height())
        {
            self.anchor.latest = None;
        }
    }
}
