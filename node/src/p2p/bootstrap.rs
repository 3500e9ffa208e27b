//! A brand-new partial node's start from a checkpoint over the network (see
//! `rexe_chain::bootstrap`): when its peers are past half the undo depth, a partial node at
//! genesis does not replay packages (peers serve them for the undo depth only). It takes
//! every header with its seal from the peer that claims the most work, checks them, picks
//! a checkpoint [`rexe_chain::Chain::bootstrap_depth`] blocks below the best header, and
//! fetches the checkpoint's package (for a node that runs no shard), the proof of the global
//! lane's own outbox, and the global state in pages. Each is checked against the
//! checkpoint's header as it arrives, and the sender of anything that does not check is
//! penalised. The node then runs the global lane from the checkpoint, catches up with
//! packages, and takes up its shards by state sync (`shard_sync.rs`).
//!
//! Headers are kept in memory: a restart fetches them again (the chain stays at genesis
//! until the checkpoint is taken, in one transaction). A peer that refuses moves the
//! request to the next; when every peer in turn refuses the checkpoint (it fell out of their
//! undo depth), the headers are brought up to date and a new checkpoint is picked.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rexe_chain::bootstrap::{
    BootstrapError, GlobalCursor, GlobalItem, GlobalPage, HeaderChain, SealedHeader,
    MAX_GLOBAL_BYTES, MAX_HEADERS,
};
use rexe_chain::encode::Decode;
use rexe_chain::partial::PartialBlock;
use rexe_chain::proof::RelayProof;
use rexe_chain::{BlockError, BlockHash, ShardId};
use rexe_net::PeerId;

use super::wire::{Request, MAX_LOCATOR};
use super::{P2pNode, Pending, EMPTY_POINTS, GARBAGE_POINTS, INVALID_POINTS};

/// How long a request may stay unanswered before another peer is asked.
const ASK_TTL: Duration = Duration::from_secs(20);
/// How long an abandoned bootstrap waits before another starts.
const RETRY_AFTER: Duration = Duration::from_secs(30);

/// A bootstrap under way.
pub(super) struct Boot {
    headers: HeaderChain,
    /// The peer headers come from.
    source: PeerId,
    /// The checkpoint being fetched, once the headers are in.
    fetch: Option<Fetch>,
    /// When the request in flight was sent.
    asked: Option<Instant>,
    /// Requests refused or failed in a row.
    failures: usize,
    /// Which peer is asked next for the checkpoint's data (round robin).
    turn: usize,
    started: Instant,
}

/// What is fetched for the checkpoint.
struct Fetch {
    height: u64,
    hash: BlockHash,
    package: Option<PartialBlock>,
    global_own: Option<RelayProof>,
    items: Vec<GlobalItem>,
    bytes: usize,
    /// Where the next global page starts; `None`: every page is in.
    cursor: Option<GlobalCursor>,
    /// Peers that served global pages.
    servers: HashSet<PeerId>,
}

impl P2pNode {
    /// Whether the node is bootstrapping, or about to: blocks are not fetched meanwhile.
    pub(super) fn bootstrapping(&self) -> bool {
        if self.boot.is_some() {
            return true;
        }
        let best = self.heights.values().copied().max().unwrap_or(0);
        self.shared.chain().wants_bootstrap(best)
    }

    /// Starts a bootstrap when the chain wants one, and sends its next request when none
    /// is in flight.
    pub(super) fn drive_bootstrap(&mut self) {
        if self.peers.is_empty() {
            return;
        }
        if self.boot.is_none() {
            if Instant::now() < self.boot_after {
                return;
            }
            let best = self.heights.values().copied().max().unwrap_or(0);
            let headers = {
                let c = self.shared.chain();
                if !c.wants_bootstrap(best) {
                    return;
                }
                c.header_chain()
            };
            // Headers from the peer that claims the most work.
            let Some(source) = self
                .claimed
                .iter()
                .filter(|(p, _)| self.peers.contains(*p))
                .max_by_key(|(_, w)| **w)
                .map(|(p, _)| *p)
            else {
                return;
            };
            tracing::info!(peer = %source, peer_height = best,
                "a new partial node behind peers past half the undo depth: bootstrapping from a checkpoint");
            self.boot = Some(Boot {
                headers,
                source,
                fetch: None,
                asked: None,
                failures: 0,
                turn: 0,
                started: Instant::now(),
            });
        }
        let mut peers: Vec<PeerId> = self.peers.iter().copied().collect();
        peers.sort();
        let boot = self.boot.as_mut().expect("set above");
        if boot.asked.is_some_and(|t| t.elapsed() < ASK_TTL) {
            return;
        }
        // The source until it fails; then the peers in turn (the one that answers becomes
        // the source).
        if !peers.contains(&boot.source) || boot.failures > 0 {
            boot.source = peers[boot.turn % peers.len()];
        }
        if boot.failures >= 2 * peers.len() {
            tracing::warn!(
                "no peer serves the bootstrap checkpoint any more; taking the new headers and another checkpoint"
            );
            boot.fetch = None;
            boot.failures = 0;
        }
        let Some(f) = boot.fetch.as_ref() else {
            let req = Request::Headers {
                locator: boot.headers.locator(MAX_LOCATOR),
                max: MAX_HEADERS,
            };
            boot.asked = Some(Instant::now());
            let source = boot.source;
            self.ask(source, req, Pending::Headers);
            return;
        };
        let (block, height) = (f.hash, f.height);
        let req = if f.package.is_none() {
            let prev = boot
                .headers
                .hash_at(height - 1)
                .expect("below the checkpoint");
            (
                Request::Packages {
                    locator: vec![prev],
                    max: 1,
                    tracked: Vec::new(),
                },
                Pending::BootPackage,
            )
        } else if f.global_own.is_none() {
            (
                Request::RelayProof {
                    block,
                    origin: ShardId::GLOBAL,
                    target: ShardId::GLOBAL,
                },
                Pending::BootProof,
            )
        } else if let Some(from) = f.cursor.clone() {
            (Request::GlobalPage { block, from }, Pending::BootGlobal)
        } else {
            self.finish_bootstrap();
            return;
        };
        let peer = boot.source;
        boot.asked = Some(Instant::now());
        self.ask(peer, req.0, req.1);
    }

    /// An answer to the bootstrap's request arrived, or the request failed (`ok`: false):
    /// the next may go, from the next peer after a failure.
    pub(super) fn boot_answered(&mut self, ok: bool) {
        if let Some(b) = self.boot.as_mut() {
            b.asked = None;
            if !ok {
                b.failures += 1;
                b.turn += 1;
            }
        }
    }

    /// Headers arrived.
    pub(super) fn boot_headers(&mut self, from: PeerId, items: Vec<Vec<u8>>) {
        let Some(boot) = self.boot.as_mut() else {
            return;
        };
        let mut batch = Vec::with_capacity(items.len());
        for bytes in &items {
            match SealedHeader::from_bytes(bytes) {
                Ok(h) => batch.push(h),
                Err(e) => {
                    self.net
                        .penalize(from, GARBAGE_POINTS, format!("header: {e}"));
                    return;
                }
            }
        }
        let checked =
            self.shared
                .chain()
                .extend_headers(&mut boot.headers, &batch, crate::unix_time());
        match checked {
            Ok(n) => {
                boot.failures = 0;
                let height = boot.headers.height();
                if height / 10_000 != (height - n as u64) / 10_000 {
                    tracing::info!(peer = %from, height, "bootstrap: headers checked");
                }
                // Headers past what the peer said it has are a chain it made up.
                let said = self.heights.get(&from).copied().unwrap_or(0);
                if height > said.saturating_add(u64::from(MAX_HEADERS)) {
                    self.net.penalize(
                        from,
                        INVALID_POINTS,
                        "more headers than the height it reported",
                    );
                    self.boot = None;
                    self.boot_after = Instant::now() + RETRY_AFTER;
                    return;
                }
            }
            Err(BlockError::PrevUnknown(_)) | Err(BlockError::TimeTooNew { .. }) => {
                // A race with the peer's tip, or our clock: another peer next.
                boot.failures += 1;
                boot.turn += 1;
                return;
            }
            Err(e) => {
                tracing::warn!(peer = %from, error = %e, "invalid header in the bootstrap's header sync");
                self.net.penalize(from, INVALID_POINTS, "invalid header");
                return;
            }
        }
        if batch.is_empty()
            && self
                .heights
                .get(&from)
                .is_some_and(|h| *h > boot.headers.height())
        {
            // It said it has more and sent none.
            self.net
                .penalize(from, EMPTY_POINTS, "reported a height and sent no headers");
            boot.failures += 1;
            boot.turn += 1;
            return;
        }
        if batch.len() >= MAX_HEADERS as usize {
            return;
        }
        // The peer has no more: take the checkpoint below the best header.
        let depth = self.shared.chain().bootstrap_depth();
        if boot.headers.height() <= depth {
            tracing::info!(
                height = boot.headers.height(),
                "too few headers for a checkpoint; taking blocks from genesis instead"
            );
            self.boot = None;
            self.boot_after = Instant::now() + RETRY_AFTER;
            return;
        }
        let height = boot.headers.height() - depth;
        let hash = boot.headers.hash_at(height).expect("below the best");
        tracing::info!(headers = boot.headers.height(), checkpoint = height, block = %hash,
            "headers checked; fetching the checkpoint's global state");
        boot.fetch = Some(Fetch {
            height,
            hash,
            package: None,
            global_own: None,
            items: Vec::new(),
            bytes: 0,
            cursor: Some(None),
            servers: HashSet::new(),
        });
    }

    /// The checkpoint's package arrived.
    pub(super) fn boot_package(&mut self, from: PeerId, items: Vec<Vec<u8>>) {
        let n = self.shared.chain().params().shard_order.shard_count();
        let Some(f) = self.boot.as_mut().and_then(|b| b.fetch.as_mut()) else {
            return;
        };
        let Some(bytes) = items.first() else {
            return self.boot_answered(false);
        };
        let pb = match PartialBlock::from_bytes(bytes) {
            Ok(p) => p,
            Err(e) => {
                self.net
                    .penalize(from, GARBAGE_POINTS, format!("package: {e}"));
                return;
            }
        };
        if pb.block.header.hash() != f.hash {
            // The peer's chain moved off ours below the checkpoint.
            return self.boot_answered(false);
        }
        match pb.check(&vec![false; n]) {
            Ok(_) => {
                f.package = Some(pb);
                if let Some(b) = self.boot.as_mut() {
                    b.failures = 0;
                }
            }
            Err(e) => self
                .net
                .penalize(from, INVALID_POINTS, format!("checkpoint package: {e}")),
        }
    }

    /// The proof of the global lane's own outbox arrived.
    pub(super) fn boot_proof(&mut self, from: PeerId, bytes: &[u8]) {
        let Some(boot) = self.boot.as_mut() else {
            return;
        };
        let Some(f) = boot.fetch.as_mut() else { return };
        let proof = match RelayProof::from_bytes(bytes) {
            Ok(p) => p,
            Err(e) => {
                self.net
                    .penalize(from, GARBAGE_POINTS, format!("relay proof: {e}"));
                return;
            }
        };
        let header = boot.headers.header(f.height).expect("checkpoint held");
        let fits = proof.block == f.hash && proof.origin.is_global() && proof.target.is_global();
        match proof.verify(header) {
            Ok(()) if fits => {
                f.global_own = Some(proof);
                boot.failures = 0;
            }
            Ok(()) => self
                .net
                .penalize(from, GARBAGE_POINTS, "relay proof: not the one asked for"),
            Err(e) => self
                .net
                .penalize(from, INVALID_POINTS, format!("relay proof: {e}")),
        }
    }

    /// A page of the checkpoint's global state arrived.
    pub(super) fn boot_global(&mut self, from: PeerId, bytes: &[u8]) {
        let Some(f) = self.boot.as_mut().and_then(|b| b.fetch.as_mut()) else {
            return;
        };
        let page = match GlobalPage::from_bytes(bytes) {
            Ok(p) => p,
            Err(e) => {
                self.net
                    .penalize(from, GARBAGE_POINTS, format!("global page: {e}"));
                return;
            }
        };
        if page.block != f.hash || Some(&page.from) != f.cursor.as_ref() {
            self.net
                .penalize(from, GARBAGE_POINTS, "global page: not the one asked for");
            return;
        }
        if let Err(e) = page.check_shape() {
            self.net
                .penalize(from, INVALID_POINTS, format!("global page: {e}"));
            return;
        }
        f.bytes += page.data_len();
        if f.bytes > MAX_GLOBAL_BYTES {
            tracing::warn!(peer = %from, bytes = f.bytes,
                "the checkpoint's global state passes the bootstrap's limit; starting over");
            self.net
                .penalize(from, INVALID_POINTS, "global state past the limit");
            self.boot = None;
            self.boot_after = Instant::now() + RETRY_AFTER;
            return;
        }
        f.servers.insert(from);
        f.cursor = page.next();
        f.items.extend(page.items);
        if let Some(b) = self.boot.as_mut() {
            b.failures = 0;
        }
    }

    /// Everything is in: the chain starts at the checkpoint.
    fn finish_bootstrap(&mut self) {
        let Some(mut boot) = self.boot.take() else {
            return;
        };
        let Some(f) = boot.fetch.take() else { return };
        let (Some(package), Some(global_own)) = (f.package, f.global_own) else {
            return;
        };
        let result =
            self.shared
                .chain()
                .bootstrap(&boot.headers, f.height, &package, &global_own, f.items);
        match result {
            Ok(()) => {
                let c = self.shared.chain();
                self.partial = Some(c.tracked_shards());
                self.published = c.tip_hash();
                tracing::info!(
                    checkpoint = f.height,
                    seconds = boot.started.elapsed().as_secs_f64(),
                    to_take_up = ?c.shards_to_sync(),
                    "bootstrapped: catching up, then taking up the shards"
                );
            }
            Err(e @ BootstrapError::GlobalRootMismatch { .. }) => {
                if f.servers.len() == 1 {
                    let peer = *f.servers.iter().next().expect("one");
                    self.net
                        .penalize(peer, INVALID_POINTS, "global state that misses the root");
                }
                tracing::warn!(error = %e, "bootstrap starts over");
            }
            Err(e) => {
                tracing::warn!(error = %e, "bootstrap failed; starting over");
                self.boot_after = Instant::now() + RETRY_AFTER;
            }
        }
    }
}
