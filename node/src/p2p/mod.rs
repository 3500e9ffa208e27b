//! Blocks and transactions over libp2p (`rexe-net`): the node's side.
//!
//! - **Gossip.** Blocks this node connects from its own RPC (mined here) and transactions it
//!   admits are published; gossiped ones are checked against the chain before they are
//!   forwarded. A block or transaction that breaks a rule costs its sender
//!   [`INVALID_POINTS`] (a ban); a duplicate or an orphan costs nothing.
//! - **Sync.** Every [`POLL`] (and on connecting) each peer is asked for its status; when a
//!   peer has more work, blocks are fetched from it by locator, in batches of
//!   [`wire::MAX_BLOCKS`], and validated like any other.
//! - **Partial nodes** (`--track-shards`) fetch packages instead of blocks (their shards'
//!   transactions, every chunk's roots, relay proofs from the other shards), by locator like
//!   blocks; a gossiped block only tells them to fetch. Full nodes serve the packages for the
//!   blocks within the undo depth, and partial nodes for the sets of shards they run.
//! - **Taking up a shard** (`--track-shards` adding one to a partial node's directory):
//!   its state is fetched in pages, then the proofs of what it runs next, while blocks wait
//!   (see `shard_sync.rs`).
//! - **A brand-new partial node** behind peers past half the undo depth starts from a
//!   checkpoint instead of genesis: headers, then the checkpoint's global state, then its
//!   shards by state sync (see `bootstrap.rs`).
//! - **Serving.** Status, blocks, packages or headers by locator, relay proofs, state and
//!   global state pages. A
//!   request that does not decode fails its stream and costs its sender [`GARBAGE_POINTS`].

mod bootstrap;
mod shard_sync;
pub mod wire;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rexe_chain::encode::{Decode, Encode};
use rexe_chain::{Block, BlockError, BlockHash};
use rexe_net::{Event, Handle, Keypair, Multiaddr, PeerId, Topic, Verdict};

use crate::error::{Error, Result};
use crate::Shared;
use wire::{Request, Response};

/// Points for a block or transaction that breaks a consensus rule, or a peer on another
/// chain: a ban.
pub const INVALID_POINTS: u32 = rexe_net::BAN_POINTS;
/// Points for a request or response that does not decode.
pub const GARBAGE_POINTS: u32 = 25;
/// Points for answering a fetch with no blocks after claiming more work than this node
/// has: the third such answer is a ban.
pub const EMPTY_POINTS: u32 = 34;
/// How often peers are asked for their status.
pub const POLL: Duration = Duration::from_secs(3);
/// Bytes of blocks put in one response (at least one block is sent).
const RESPONSE_BLOCK_BYTES: usize = 8 << 20;
/// Expensive requests (blocks, packages, state pages) a peer may make per window; more
/// are answered "busy". A node syncing takes at most one per round trip.
pub const EXPENSIVE_PER_WINDOW: u32 = 500;
/// The window of [`EXPENSIVE_PER_WINDOW`].
pub const EXPENSIVE_WINDOW: Duration = Duration::from_secs(10);
/// How long a request's entry waits for its answer.
const REQUEST_TTL: Duration = Duration::from_secs(120);
/// File of the node's p2p identity in the data directory.
pub const KEY_FILE: &str = "p2p.key";

/// The node's libp2p identity: read from `p2p.key` in `datadir`, or created there (0600).
pub fn load_or_create_key(datadir: &Path) -> Result<Keypair> {
    let path = datadir.join(KEY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => Keypair::from_protobuf_encoding(&bytes).map_err(|e| {
            Error::Config(format!(
                "{} is not a p2p key ({e}); move it aside to make a new identity",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Keypair::generate_ed25519();
            let bytes = key
                .to_protobuf_encoding()
                .map_err(|e| Error::Config(format!("encoding the p2p key: {e}")))?;
            write_private(&path, &bytes)
                .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
            Ok(key)
        }
        Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// A listen address as `host:port` or a multiaddr (`/ip4/127.0.0.1/tcp/18481`).
pub fn parse_listen(s: &str) -> Result<Multiaddr> {
    if s.starts_with('/') {
        return s
            .parse()
            .map_err(|e| Error::Config(format!("p2p address {s}: {e}")));
    }
    let sa: std::net::SocketAddr = s
        .parse()
        .map_err(|e| Error::Config(format!("p2p address {s} (host:port or multiaddr): {e}")))?;
    let ip = match sa.ip() {
        std::net::IpAddr::V4(ip) => format!("/ip4/{ip}"),
        std::net::IpAddr::V6(ip) => format!("/ip6/{ip}"),
    };
    format!("{ip}/tcp/{}", sa.port())
        .parse()
        .map_err(|e| Error::Config(format!("p2p address {s}: {e}")))
}

/// A bootstrap peer: a multiaddr ending in `/p2p/<peer id>`.
pub fn parse_bootnode(s: &str) -> Result<Multiaddr> {
    let a: Multiaddr = s
        .parse()
        .map_err(|e| Error::Config(format!("bootnode {s}: {e}")))?;
    if rexe_net::peer_of(&a).is_none() {
        return Err(Error::Config(format!(
            "bootnode {s} must end in /p2p/<peer id> (the node prints it at start, and \
             `getnetworkinfo` lists it)"
        )));
    }
    Ok(a)
}

/// Starts the transport for `shared`'s chain and the thread that serves it; returns the
/// handle (also stored in `shared.p2p`) and the thread.
pub fn start(
    shared: Arc<Shared>,
    key: Keypair,
    listen: Vec<Multiaddr>,
    bootnodes: Vec<Multiaddr>,
    mdns: bool,
    stop: Arc<AtomicBool>,
) -> Result<(Handle, std::thread::JoinHandle<()>)> {
    let (network, max_block, genesis) = {
        let c = shared.chain();
        let p = c.params();
        let max_block = p.block_bytes_per_shard * p.shard_order.shard_count() + (1 << 20);
        (
            p.network.name().to_string(),
            max_block,
            c.hash_at(0).unwrap_or_default(),
        )
    };
    let mut cfg = rexe_net::Config::new(key, &network);
    cfg.listen = listen;
    cfg.bootnodes = bootnodes;
    cfg.mdns = mdns;
    cfg.max_gossip = max_block;
    cfg.max_response = cfg.max_response.max(max_block + (1 << 20));
    let (net, events) =
        rexe_net::start(cfg).map_err(|e| Error::Config(format!("starting p2p: {e}")))?;
    let _ = shared.p2p.set(net.clone());
    let (published, partial) = {
        let c = shared.chain();
        (c.tip_hash(), c.is_partial().then(|| c.tracked_shards()))
    };
    let mut node = P2pNode {
        heights: HashMap::new(),
        claimed: HashMap::new(),
        partial,
        published,
        shared,
        net: net.clone(),
        genesis,
        peers: HashSet::new(),
        pending: HashMap::new(),
        next_tag: 0,
        syncing: None,
        received: HashSet::new(),
        job: None,
        boot: None,
        boot_after: Instant::now(),
        one_server: false,
        sync_after: Instant::now(),
        expensive: HashMap::new(),
    };
    let thread = std::thread::Builder::new()
        .name("rexe-p2p-node".into())
        .spawn(move || node.run(events, stop))
        .map_err(|e| Error::io("starting the p2p thread", e))?;
    Ok((net, thread))
}

/// The items `item` gives for the active blocks after the first hash of `locator` on our
/// active chain (after genesis when none is), at most `max` (capped at `cap`) and about
/// [`RESPONSE_BLOCK_BYTES`]. An error on the first block is
/// the answer; on a later one the list stops there.
fn after_locator(
    chain: &rexe_chain::Chain,
    locator: &[BlockHash],
    max: u16,
    cap: u64,
    item: impl Fn(BlockHash) -> std::result::Result<Vec<u8>, String>,
) -> std::result::Result<Vec<Vec<u8>>, String> {
    let start = locator
        .iter()
        .find_map(|h| {
            let height = chain.header(h)?.height;
            (chain.hash_at(height) == Some(*h)).then_some(height + 1)
        })
        .unwrap_or(1);
    let mut out = Vec::new();
    let mut bytes = 0;
    let max = u64::from(max).min(cap);
    for height in start..start.saturating_add(max) {
        let Some(hash) = chain.hash_at(height) else {
            break;
        };
        match item(hash) {
            Ok(b) => {
                bytes += b.len();
                out.push(b);
            }
            Err(e) if out.is_empty() => return Err(e),
            Err(_) => break,
        }
        if bytes >= RESPONSE_BLOCK_BYTES {
            break;
        }
    }
    Ok(out)
}

enum Pending {
    Status,
    Blocks,
    Packages,
    StatePage,
    SyncProof,
    Headers,
    BootPackage,
    BootProof,
    BootGlobal,
}

impl Pending {
    /// A request of the bootstrap (see `bootstrap.rs`).
    fn is_boot(&self) -> bool {
        matches!(
            self,
            Pending::Headers | Pending::BootPackage | Pending::BootProof | Pending::BootGlobal
        )
    }
}

struct P2pNode {
    shared: Arc<Shared>,
    net: Handle,
    genesis: BlockHash,
    /// The tip last published (or learned from peers).
    published: BlockHash,
    peers: HashSet<PeerId>,
    /// Requests awaiting an answer (the transport answers each, or reports its failure;
    /// entries older than [`REQUEST_TTL`] are dropped in case an event was lost).
    pending: HashMap<u64, (PeerId, Pending, Instant)>,
    next_tag: u64,
    /// The peer blocks are being fetched from, and since when.
    syncing: Option<(PeerId, Instant)>,
    /// Blocks that came from peers (not published again by [`P2pNode::publish_tip`]).
    received: HashSet<BlockHash>,
    /// The shards this node runs when it does not run them all: it fetches packages, not
    /// blocks (see `rexe_chain::partial`).
    partial: Option<Vec<rexe_chain::ShardId>>,
    /// The tip height each connected peer on our chain last reported.
    heights: HashMap<PeerId, u64>,
    /// The chain work each connected peer last claimed.
    claimed: HashMap<PeerId, [u8; 32]>,
    /// The shard being taken up, if any.
    job: Option<shard_sync::Job>,
    /// The bootstrap under way, if any.
    boot: Option<bootstrap::Boot>,
    /// No new bootstrap starts before this (after one was abandoned).
    boot_after: Instant,
    /// Take every page of the next state sync from one peer (after a sync whose rows
    /// missed the root could not be blamed on one).
    one_server: bool,
    /// No new state sync starts before this (a dropped one waits for the peers to move).
    sync_after: Instant,
    /// Expensive requests (blocks, packages, state pages) each peer made in the current
    /// window, and when the window began.
    expensive: HashMap<PeerId, (Instant, u32)>,
}

/// Counts one expensive request of `peer` at `now` in `budgets`; whether it is over
/// [`EXPENSIVE_PER_WINDOW`] in the peer's current [`EXPENSIVE_WINDOW`]. The map is pruned
/// of old windows when it grows past 1,024 peers.
fn spend(budgets: &mut HashMap<PeerId, (Instant, u32)>, peer: PeerId, now: Instant) -> bool {
    if budgets.len() > 1024 {
        budgets.retain(|_, (at, _)| now.duration_since(*at) < EXPENSIVE_WINDOW);
    }
    let e = budgets.entry(peer).or_insert((now, 0));
    if now.duration_since(e.0) >= EXPENSIVE_WINDOW {
        *e = (now, 0);
    }
    e.1 += 1;
    e.1 > EXPENSIVE_PER_WINDOW
}

/// Whether a block error is the sender's fault (the block breaks a rule), not ours or
/// the network's timing.
fn peer_at_fault(e: &BlockError) -> bool {
    !matches!(
        e,
        BlockError::Duplicate(_)
            | BlockError::PrevUnknown(_)
            | BlockError::TimeTooNew { .. }
            | BlockError::ReorgTooDeep { .. }
            | BlockError::BelowAnchor { .. }
            | BlockError::BelowCheckpoint { .. }
            | BlockError::Store(_)
            | BlockError::Exec(rexe_chain::exec::ExecError::Store(_))
    )
}

impl P2pNode {
    fn run(&mut self, events: Receiver<Event>, stop: Arc<AtomicBool>) {
        let mut last_poll = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            match events.recv_timeout(Duration::from_millis(200)) {
                Ok(e) => self.event(e),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            self.publish_tip();
            self.drive_bootstrap();
            self.drive_shard_sync();
            if last_poll.elapsed() >= POLL {
                last_poll = Instant::now();
                self.pending
                    .retain(|_, (_, _, at)| at.elapsed() < REQUEST_TTL);
                let peers: Vec<PeerId> = self.peers.iter().copied().collect();
                for p in peers {
                    self.ask(p, Request::Status, Pending::Status);
                }
            }
            if let Some((_, since)) = self.syncing {
                if since.elapsed() > Duration::from_secs(60) {
                    self.syncing = None;
                }
            }
        }
    }

    fn ask(&mut self, peer: PeerId, req: Request, what: Pending) {
        self.next_tag += 1;
        self.pending
            .insert(self.next_tag, (peer, what, Instant::now()));
        self.net.request(peer, req.to_bytes(), self.next_tag);
    }

    /// Publishes blocks this node connected itself (mined through its RPC) since the last
    /// tip published: at most the newest three, never what came from peers.
    fn publish_tip(&mut self) {
        let chain = self.shared.chain();
        let tip = chain.tip_hash();
        if tip == self.published {
            return;
        }
        let mut fresh = Vec::new();
        let mut cur = tip;
        while cur != self.published && fresh.len() < 3 {
            let Some(h) = chain.header(&cur) else { break };
            if h.height == 0 {
                break;
            }
            if !self.received.contains(&cur) {
                fresh.push(cur);
            }
            cur = h.prev;
        }
        let blocks: Vec<Vec<u8>> = fresh
            .iter()
            .rev()
            .filter_map(|h| chain.block(*h).ok().flatten())
            .map(|b| b.to_bytes())
            .collect();
        drop(chain);
        self.published = tip;
        for b in blocks {
            self.net.publish(Topic::Blocks, b);
        }
        if self.received.len() > 4096 {
            self.received.clear();
        }
    }

    fn event(&mut self, e: Event) {
        match e {
            Event::Connected(p) => {
                self.peers.insert(p);
                self.ask(p, Request::Status, Pending::Status);
            }
            Event::Disconnected(p) => {
                self.peers.remove(&p);
                self.heights.remove(&p);
                self.claimed.remove(&p);
                self.note_heights();
                if self.syncing.is_some_and(|(s, _)| s == p) {
                    self.syncing = None;
                }
            }
            Event::Gossip {
                topic: Topic::Blocks,
                data,
                from,
                id,
            } => {
                let verdict = self.gossiped_block(&data, from);
                self.net.validate(id, from, verdict);
            }
            Event::Gossip {
                topic: Topic::Txs,
                data,
                from,
                id,
            } => {
                let verdict = self.gossiped_tx(&data);
                self.net.validate(id, from, verdict);
            }
            Event::Request { from, data, reply } => match Request::from_bytes(&data) {
                Ok(req) => {
                    let resp = if self.over_budget(from, &req) {
                        Response::Error(format!(
                            "busy: more than {EXPENSIVE_PER_WINDOW} block, package or state \
                             requests in {} s; retry later",
                            EXPENSIVE_WINDOW.as_secs()
                        ))
                    } else {
                        self.serve(req)
                    };
                    self.net.respond(reply, resp.to_bytes());
                }
                Err(e) => {
                    // Dropping the reply fails that stream; the connection stays.
                    drop(reply);
                    self.net
                        .penalize(from, GARBAGE_POINTS, format!("request: {e}"));
                }
            },
            Event::Response { from, tag, result } => {
                let Some((_, what, _)) = self.pending.remove(&tag) else {
                    return;
                };
                if matches!(what, Pending::StatePage | Pending::SyncProof) {
                    // Whatever the answer, the sync's next request may go; anything but
                    // the answer asked for moves it to the next peer.
                    if result.is_ok() {
                        self.sync_answered();
                    } else {
                        self.sync_refused();
                    }
                }
                if what.is_boot() {
                    self.boot_answered(result.is_ok());
                }
                match (result, what) {
                    (Ok(bytes), what) => match Response::from_bytes(&bytes) {
                        Ok(resp) => self.response(from, what, resp),
                        Err(e) => {
                            self.net
                                .penalize(from, GARBAGE_POINTS, format!("response: {e}"));
                            self.done_syncing(from);
                        }
                    },
                    (Err(e), _) => {
                        tracing::debug!(peer = %from, error = %e, "request failed");
                        self.done_syncing(from);
                    }
                }
            }
        }
    }

    /// Publishes the best height peers reported (for `/metrics`' lag).
    fn note_heights(&self) {
        let best = self.heights.values().copied().max().unwrap_or(0);
        self.shared
            .p2p_peer_height
            .store(best, std::sync::atomic::Ordering::Relaxed);
    }

    fn done_syncing(&mut self, peer: PeerId) {
        if self.syncing.is_some_and(|(s, _)| s == peer) {
            self.syncing = None;
        }
    }

    fn gossiped_block(&mut self, data: &[u8], from: PeerId) -> Verdict {
        let block = match Block::from_bytes(data) {
            Ok(b) => b,
            Err(e) => {
                tracing::info!(peer = %from, error = %e, "gossiped block does not decode");
                return Verdict::Reject {
                    points: INVALID_POINTS,
                };
            }
        };
        let hash = block.header.hash();
        self.received.insert(hash);
        if self.taking_up() || (self.partial.is_some() && self.bootstrapping()) {
            // Blocks wait while a shard's state is fetched at the tip, or the node has yet
            // to take its checkpoint.
            return Verdict::Ignore;
        }
        if self.partial.is_some() {
            // A partial node takes blocks with their packages: fetch from this peer, once
            // its status is known (a new node far behind bootstraps instead of fetching
            // from genesis; gossip may come before the first status answer).
            let known = self.shared.chain().header(&hash).is_some();
            if !known && self.syncing.is_none() {
                if self.heights.contains_key(&from) {
                    self.fetch(from);
                } else {
                    self.ask(from, Request::Status, Pending::Status);
                }
            }
            return Verdict::Ignore;
        }
        let result = self.shared.chain().submit(block, crate::unix_time());
        match result {
            Ok(outcome) => {
                tracing::debug!(%hash, ?outcome, peer = %from, "block from gossip");
                Verdict::Accept
            }
            Err(BlockError::PrevUnknown(_)) => {
                // We are behind: fetch from this peer.
                self.ask(from, Request::Status, Pending::Status);
                Verdict::Ignore
            }
            Err(e) if peer_at_fault(&e) => {
                tracing::warn!(%hash, peer = %from, error = %e, "invalid block from gossip");
                Verdict::Reject {
                    points: INVALID_POINTS,
                }
            }
            Err(_) => Verdict::Ignore,
        }
    }

    fn gossiped_tx(&mut self, data: &[u8]) -> Verdict {
        let max = self.shared.max_tx_bytes;
        let Ok(tx) = rexe_chain::SignedTx::decode_limited(data, max) else {
            return Verdict::Reject { points: 20 };
        };
        let Ok(tx) = tx.verified() else {
            return Verdict::Reject {
                points: INVALID_POINTS,
            };
        };
        match self.shared.chain().submit_verified(tx) {
            Ok(_) => Verdict::Accept,
            // Known, nonce or fee races, a full mempool: not the sender's fault.
            Err(_) => Verdict::Ignore,
        }
    }

    /// Whether `peer` spent its budget of expensive requests (blocks, packages, state
    /// pages: each holds the chain lock for up to milliseconds) in the current window.
    fn over_budget(&mut self, peer: PeerId, req: &Request) -> bool {
        !matches!(req, Request::Status | Request::RelayProof { .. })
            && spend(&mut self.expensive, peer, Instant::now())
    }

    fn serve(&mut self, req: Request) -> Response {
        let mut chain = self.shared.chain();
        match req {
            Request::Status => Response::Status {
                genesis: self.genesis,
                height: chain.tip_height(),
                tip: chain.tip_hash(),
                work: chain.tip_work().to_be_bytes(),
            },
            Request::Blocks { locator, max } => {
                match after_locator(&chain, &locator, max, wire::MAX_BLOCKS.into(), |h| {
                    chain
                        .block(h)
                        .map_err(|e| e.to_string())?
                        .map(|b| b.to_bytes())
                        .ok_or_else(|| format!("block {h} not stored"))
                }) {
                    Ok(blocks) => Response::Blocks(blocks),
                    Err(e) => Response::Error(e),
                }
            }
            Request::Packages {
                locator,
                max,
                tracked,
            } => match after_locator(&chain, &locator, max, wire::MAX_BLOCKS.into(), |h| {
                chain
                    .partial_block(h, &tracked)
                    .map(|p| p.to_bytes())
                    .map_err(|e| e.to_string())
            }) {
                Ok(packages) => Response::Packages(packages),
                Err(e) => Response::Error(e),
            },
            Request::RelayProof {
                block,
                origin,
                target,
            } => match chain.relay_proof(block, origin, target) {
                Ok(p) => Response::RelayProof(p.to_bytes()),
                Err(e) => Response::Error(e.to_string()),
            },
            Request::StatePage {
                shard,
                block,
                from,
                max_rows,
            } => match chain.state_page(shard, block, from, max_rows.into()) {
                Ok(p) => Response::StatePage(p.to_bytes()),
                Err(e) => Response::Error(e.to_string()),
            },
            Request::Headers { locator, max } => {
                let max = max.min(rexe_chain::bootstrap::MAX_HEADERS);
                // Seals are read from the bodies: an answer reads about as many bytes of
                // them as a batch of blocks sends.
                let read = std::cell::Cell::new(0usize);
                match after_locator(&chain, &locator, max, u64::from(max), |h| {
                    if read.get() >= RESPONSE_BLOCK_BYTES {
                        return Err("enough for one answer".into());
                    }
                    let (sealed, body) = chain
                        .sealed_header(h)
                        .map_err(|e| e.to_string())?
                        .ok_or_else(|| format!("the body of block {h} is not stored"))?;
                    read.set(read.get() + body);
                    Ok(sealed.to_bytes())
                }) {
                    Ok(headers) => Response::Headers(headers),
                    Err(e) => Response::Error(e),
                }
            }
            Request::GlobalPage { block, from } => match chain.global_page(block, from) {
                Ok(p) => Response::GlobalPage(p.to_bytes()),
                Err(e) => Response::Error(e.to_string()),
            },
        }
    }

    /// Our locator: the last ten blocks, then exponentially spaced back to genesis.
    fn locator(&self) -> Vec<BlockHash> {
        let chain = self.shared.chain();
        let mut out = Vec::new();
        let mut h = chain.tip_height();
        let mut step = 1;
        loop {
            if let Some(hash) = chain.hash_at(h) {
                out.push(hash);
            }
            if h == 0 || out.len() >= wire::MAX_LOCATOR - 1 {
                break;
            }
            if out.len() >= 10 {
                step *= 2;
            }
            h = h.saturating_sub(step);
        }
        if out.last() != Some(&self.genesis) {
            out.push(self.genesis);
        }
        out
    }

    fn response(&mut self, from: PeerId, what: Pending, resp: Response) {
        match (what, resp) {
            (
                Pending::Status,
                Response::Status {
                    genesis,
                    height,
                    work,
                    ..
                },
            ) => {
                if genesis != self.genesis {
                    self.net
                        .penalize(from, INVALID_POINTS, "peer is on another chain");
                    return;
                }
                self.heights.insert(from, height);
                self.claimed.insert(from, work);
                self.note_heights();
                let ours = self.shared.chain().tip_work().to_be_bytes();
                if work > ours
                    && self.syncing.is_none()
                    && !self.taking_up()
                    && !self.bootstrapping()
                {
                    tracing::info!(peer = %from, height, "peer has more work; fetching blocks");
                    self.fetch(from);
                }
            }
            (Pending::Blocks, Response::Blocks(items))
            | (Pending::Packages, Response::Packages(items)) => {
                let n = items.len();
                if n == 0
                    && self
                        .claimed
                        .get(&from)
                        .is_some_and(|w| *w > self.shared.chain().tip_work().to_be_bytes())
                {
                    // Blocks follow our locator on any chain with more work than ours.
                    self.net
                        .penalize(from, EMPTY_POINTS, "claimed more work and sent no blocks");
                }
                let mut connected = 0;
                for bytes in items {
                    let decoded = if self.partial.is_some() {
                        rexe_chain::partial::PartialBlock::from_bytes(&bytes).map(Item::Package)
                    } else {
                        Block::from_bytes(&bytes).map(Item::Block)
                    };
                    let item = match decoded {
                        Ok(i) => i,
                        Err(e) => {
                            self.net
                                .penalize(from, GARBAGE_POINTS, format!("block: {e}"));
                            break;
                        }
                    };
                    let hash = item.hash();
                    self.received.insert(hash);
                    let now = crate::unix_time();
                    let result = match item {
                        Item::Block(b) => self.shared.chain().submit(b, now),
                        Item::Package(p) => self.shared.chain().submit_partial(p, now),
                    };
                    match result {
                        Ok(_) | Err(BlockError::Duplicate(_)) => connected += 1,
                        Err(e) if peer_at_fault(&e) => {
                            tracing::warn!(%hash, peer = %from, error = %e, "invalid block in sync");
                            self.net.penalize(from, INVALID_POINTS, "invalid block");
                            self.done_syncing(from);
                            return;
                        }
                        Err(e) => {
                            tracing::debug!(%hash, error = %e, "block from sync not connected");
                            break;
                        }
                    }
                }
                self.published = self.shared.chain().tip_hash();
                self.done_syncing(from);
                if connected > 0 {
                    let height = self.shared.chain().tip_height();
                    tracing::info!(peer = %from, blocks = connected, height, "synced blocks");
                }
                // A full batch (by count or by bytes): there may be more.
                if n > 0 && connected == n {
                    self.fetch(from);
                }
            }
            (Pending::StatePage, Response::StatePage(bytes)) => self.sync_page(from, &bytes),
            (Pending::Headers, Response::Headers(items)) => self.boot_headers(from, items),
            (Pending::BootPackage, Response::Packages(items)) => self.boot_package(from, items),
            (Pending::BootProof, Response::RelayProof(bytes)) => self.boot_proof(from, &bytes),
            (Pending::BootGlobal, Response::GlobalPage(bytes)) => self.boot_global(from, &bytes),
            (Pending::SyncProof, Response::RelayProof(bytes)) => self.sync_proof(from, &bytes),
            (what, Response::Error(e)) => {
                tracing::debug!(peer = %from, error = %e, "peer could not answer");
                if matches!(what, Pending::StatePage | Pending::SyncProof) {
                    self.sync_refused();
                }
                if what.is_boot() {
                    self.boot_answered(false);
                }
                self.done_syncing(from);
            }
            (_, _) => {
                self.net
                    .penalize(from, GARBAGE_POINTS, "answer does not match the request");
                self.done_syncing(from);
            }
        }
    }

    fn fetch(&mut self, peer: PeerId) {
        self.syncing = Some((peer, Instant::now()));
        let locator = self.locator();
        let max = wire::MAX_BLOCKS;
        match self.partial.clone() {
            Some(tracked) => self.ask(
                peer,
                Request::Packages {
                    locator,
                    max,
                    tracked,
                },
                Pending::Packages,
            ),
            None => self.ask(peer, Request::Blocks { locator, max }, Pending::Blocks),
        }
    }
}

/// A block as fetched: whole (full node) or as a package (partial node).
enum Item {
    Block(Block),
    Package(rexe_chain::partial::PartialBlock),
}

impl Item {
    fn hash(&self) -> BlockHash {
        match self {
            Item::Block(b) => b.header.hash(),
            Item::Package(p) => p.block.header.hash(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expensive_requests_are_budgeted_per_peer_and_window() {
        let mut b = HashMap::new();
        let (p, q) = (PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        for _ in 0..EXPENSIVE_PER_WINDOW {
            assert!(!spend(&mut b, p, t0));
        }
        assert!(spend(&mut b, p, t0), "one over the budget");
        assert!(!spend(&mut b, q, t0), "another peer has its own");
        assert!(!spend(&mut b, p, t0 + EXPENSIVE_WINDOW), "a new window");
        for _ in 0..2000 {
            spend(&mut b, PeerId::random(), t0);
        }
        spend(&mut b, p, t0 + 2 * EXPENSIVE_WINDOW);
        assert!(b.len() <= 1026, "old windows pruned: {}", b.len());
    }
}
