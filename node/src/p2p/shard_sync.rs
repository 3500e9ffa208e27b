//! Taking up a shard over the network (see `rexe_chain::sync`): when `--track-shards` adds
//! a shard to a partial node's data directory, the node stops taking blocks, fetches the
//! shard's state at its tip in pages from its peers in turn (each stored with its cursor,
//! so a restart resumes), then the proofs of what the shard runs next, one per chunk, and
//! takes the shard up. Blocks are fetched again from there, as packages for the larger set.
//!
//! A sync starts once the node has caught up with its peers. A page that does not answer the
//! request or breaks the order costs its sender; a sync whose rows miss the root starts
//! over, and costs the peer that served it when only one did. With several the culprit is
//! not known (LtHash pages cannot be checked alone), so the next attempt takes every page
//! from one peer. When every peer in turn refuses the sync's block (it fell out of their
//! undo depth), the sync is dropped: the node takes blocks again and starts over later.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rexe_chain::encode::Decode;
use rexe_chain::proof::RelayProof;
use rexe_chain::sync::{StatePage, SyncError, PAGE_ROWS};
use rexe_chain::{BlockHash, ShardId};
use rexe_net::PeerId;

use super::wire::Request;
use super::{P2pNode, Pending, GARBAGE_POINTS, INVALID_POINTS};

/// How long a page or proof request may stay unanswered before another peer is asked.
const ASK_TTL: Duration = Duration::from_secs(20);
/// How long a dropped sync waits before another starts.
const RETRY_AFTER: Duration = Duration::from_secs(30);

/// A shard being taken up.
pub(super) struct Job {
    shard: ShardId,
    block: BlockHash,
    /// Proofs of what the shard runs next, per chunk (shards, then the global lane).
    proofs: Vec<Option<RelayProof>>,
    /// Peers that served pages of this sync.
    servers: HashSet<PeerId>,
    /// When the request in flight was sent.
    asked: Option<Instant>,
    /// Requests refused or failed in a row.
    failures: usize,
    /// Which peer is asked next (round robin).
    turn: usize,
    started: Instant,
}

impl P2pNode {
    /// Whether blocks wait because a shard's state is being fetched (it is the tip's).
    pub(super) fn taking_up(&self) -> bool {
        let c = self.shared.chain();
        c.shards_to_sync()
            .iter()
            .any(|s| c.state_sync(*s).ok().flatten().is_some())
    }

    /// Sends the sync's next request when none is in flight.
    pub(super) fn drive_shard_sync(&mut self) {
        if self
            .job
            .as_ref()
            .is_some_and(|j| j.asked.is_some_and(|t| t.elapsed() < ASK_TTL))
        {
            return;
        }
        if self.peers.is_empty() {
            return;
        }
        let best_peer = self.heights.values().copied().max().unwrap_or(0);
        let fetching = self.syncing.is_some();
        let (shard, progress, n) = {
            let mut c = self.shared.chain();
            let Some(shard) = c.shards_to_sync().first().copied() else {
                return;
            };
            let progress = match c.state_sync(shard) {
                Ok(Some(p)) => Ok(p),
                // A new sync starts at a tip level with the peers'.
                Ok(None)
                    if fetching
                        || c.tip_height() == 0
                        || c.tip_height() < best_peer
                        || Instant::now() < self.sync_after =>
                {
                    return
                }
                Ok(None) => c.begin_state_sync(shard),
                Err(e) => Err(e),
            };
            (shard, progress, c.params().shard_order.shard_count())
        };
        let progress = match progress {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(%shard, error = %e, "state sync cannot start");
                return;
            }
        };
        if self.job.as_ref().is_some_and(|j| {
            j.shard == shard && j.block == progress.block && j.failures >= 2 * self.peers.len()
        }) {
            tracing::warn!(%shard, block = %progress.block,
                "no peer serves the state sync's block any more; dropping the sync to take blocks again");
            self.job = None;
            self.sync_after = Instant::now() + RETRY_AFTER;
            if let Err(e) = self.shared.chain().abandon_state_sync(shard) {
                tracing::warn!(%shard, error = %e, "dropping the state sync");
            }
            return;
        }
        if self
            .job
            .as_ref()
            .is_none_or(|j| j.shard != shard || j.block != progress.block)
        {
            tracing::info!(%shard, block = %progress.block, height = progress.height,
                rows = progress.rows, "taking up a shard: fetching its state from peers");
            self.job = Some(Job {
                shard,
                block: progress.block,
                proofs: vec![None; n + 1],
                servers: HashSet::new(),
                asked: None,
                failures: 0,
                turn: 0,
                started: Instant::now(),
            });
        }
        let mut peers: Vec<PeerId> = self.peers.iter().copied().collect();
        peers.sort();
        let one_server = self.one_server;
        let job = self.job.as_mut().expect("set above");
        // Pages from the peers in turn, or all from one after an unattributed mismatch (a
        // peer that refuses moves the turn on).
        let peer = match job.servers.iter().next() {
            Some(p) if one_server && peers.contains(p) => *p,
            _ => peers[job.turn % peers.len()],
        };
        job.turn += 1;
        job.asked = Some(Instant::now());
        let block = job.block;
        let req = match progress.cursor {
            Some(from) => (
                Request::StatePage {
                    shard,
                    block,
                    from,
                    max_rows: PAGE_ROWS as u16,
                },
                Pending::StatePage,
            ),
            None => match job.proofs.iter().position(Option::is_none) {
                Some(i) => (
                    Request::RelayProof {
                        block,
                        origin: if i == n {
                            ShardId::GLOBAL
                        } else {
                            ShardId(i as u16)
                        },
                        target: shard,
                    },
                    Pending::SyncProof,
                ),
                None => {
                    job.asked = None;
                    self.adopt();
                    return;
                }
            },
        };
        self.ask(peer, req.0, req.1);
    }

    /// An answer to the sync's request arrived (or the request failed): the next may go.
    pub(super) fn sync_answered(&mut self) {
        if let Some(j) = self.job.as_mut() {
            j.asked = None;
        }
    }

    /// A peer could not answer the sync's request: the next is asked.
    pub(super) fn sync_refused(&mut self) {
        if let Some(j) = self.job.as_mut() {
            j.asked = None;
            j.failures += 1;
        }
    }

    /// A page arrived.
    pub(super) fn sync_page(&mut self, from: PeerId, bytes: &[u8]) {
        self.sync_answered();
        let page = match StatePage::from_bytes(bytes) {
            Ok(p) => p,
            Err(e) => {
                self.net
                    .penalize(from, GARBAGE_POINTS, format!("state page: {e}"));
                return;
            }
        };
        let result = self.shared.chain().apply_state_page(&page);
        match result {
            Ok(p) => {
                if let Some(j) = self.job.as_mut() {
                    j.servers.insert(from);
                    j.failures = 0;
                }
                tracing::debug!(shard = %page.shard, rows = p.rows, bytes = p.bytes, "state page stored");
                self.drive_shard_sync();
            }
            Err(SyncError::BadPage(e)) => {
                self.net
                    .penalize(from, INVALID_POINTS, format!("state page: {e}"));
            }
            Err(SyncError::Unasked(e)) => {
                self.net
                    .penalize(from, GARBAGE_POINTS, format!("state page: {e}"));
            }
            Err(e) => tracing::warn!(peer = %from, error = %e, "state page not stored"),
        }
    }

    /// A proof of what the shard runs next arrived.
    pub(super) fn sync_proof(&mut self, from: PeerId, bytes: &[u8]) {
        self.sync_answered();
        let Some(job) = self.job.as_ref() else { return };
        let (shard, block) = (job.shard, job.block);
        let proof = match RelayProof::from_bytes(bytes) {
            Ok(p) => p,
            Err(e) => {
                self.net
                    .penalize(from, GARBAGE_POINTS, format!("relay proof: {e}"));
                return;
            }
        };
        let checked = {
            let c = self.shared.chain();
            let n = c.params().shard_order.shard_count();
            match c.header(&block) {
                Some(h) if proof.block == block && proof.target == shard => proof
                    .verify(h)
                    .map(|()| {
                        if proof.origin.is_global() {
                            n
                        } else {
                            proof.origin.index()
                        }
                    })
                    .map_err(|e| e.to_string()),
                _ => Err("a proof for another block or shard".into()),
            }
        };
        match checked {
            Ok(slot) => {
                if let Some(j) = self.job.as_mut() {
                    j.failures = 0;
                    if let Some(s) = j.proofs.get_mut(slot) {
                        *s = Some(proof);
                    }
                }
                self.drive_shard_sync();
            }
            Err(e) => self
                .net
                .penalize(from, INVALID_POINTS, format!("relay proof: {e}")),
        }
    }

    fn adopt(&mut self) {
        let Some(job) = self.job.take() else { return };
        let proofs: Vec<RelayProof> = job.proofs.into_iter().flatten().collect();
        let result = self.shared.chain().adopt_shard(job.shard, &proofs);
        match result {
            Ok(()) => {
                self.one_server = false;
                let c = self.shared.chain();
                self.partial = c.is_partial().then(|| c.tracked_shards());
                self.published = c.tip_hash();
                tracing::info!(shard = %job.shard, seconds = job.started.elapsed().as_secs_f64(),
                    peers = job.servers.len(), "shard taken up: fetching blocks again");
            }
            Err(e @ SyncError::RootMismatch { .. }) => {
                if job.servers.len() == 1 {
                    let peer = *job.servers.iter().next().expect("one");
                    self.net
                        .penalize(peer, INVALID_POINTS, "state pages that miss the root");
                } else {
                    // Not attributable: the next attempt takes every page from one peer.
                    self.one_server = true;
                }
                tracing::warn!(error = %e, "state sync starts over");
            }
            Err(e) => {
                tracing::warn!(shard = %job.shard, error = %e, "shard not taken up; trying again")
            }
        }
    }
}
