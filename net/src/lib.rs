//! rexe's peer-to-peer transport, on rust-libp2p.
//!
//! - **Connections:** TCP, encrypted and authenticated with Noise (XX, ed25519 identities),
//!   multiplexed with yamux; at most [`Config::max_incoming`] inbound and
//!   [`Config::max_outgoing`] outbound connections, and one per peer each way.
//! - **Gossip** (gossipsub, signed messages, ids = SHA-256 of the content): one topic for
//!   blocks and one for transactions per network. Every message waits for the node's
//!   [`Verdict`] before it is forwarded: rejected messages stop here and cost their sender.
//! - **Requests** (request-response, one stream per request): bytes in, bytes out, capped at
//!   [`Config::max_request`] and [`Config::max_response`]. A frame over its cap, or one the
//!   node cannot decode, fails that stream only.
//! - **Scores and bans:** the node (and the transport, for broken frames) charges peers
//!   points for bad data; at [`BAN_POINTS`] the peer is disconnected and refused for
//!   [`BAN_SECS`].
//! - **Discovery:** bootstrap peers from the configuration, redialled while disconnected, and
//!   mDNS on the local network when enabled (devnets).
//!
//! The crate carries bytes: what a block or a request means is the node's business
//! (`rexe-node`'s `p2p` module), which answers through a [`Handle`].

mod codec;

use std::collections::{HashMap, HashSet};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libp2p::futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageId};
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{allow_block_list, connection_limits, mdns, noise, tcp, yamux, StreamProtocol};
use sha2::Digest;
use tokio::sync::mpsc;

pub use codec::BytesCodec;
pub use libp2p::identity::Keypair;
pub use libp2p::{Multiaddr, PeerId};

/// Points at which a peer is banned.
pub const BAN_POINTS: u32 = 100;
/// How long a ban lasts.
pub const BAN_SECS: u64 = 3600;
/// Points a request that breaks the codec (over its cap, or empty) costs its peer.
pub const BROKEN_FRAME_POINTS: u32 = 25;
/// Events held for the node before new ones are dropped (gossip is re-sent by peers and a
/// dropped request fails the asker's stream, so nothing piles up in memory).
pub const EVENT_QUEUE: usize = 1024;

/// Transport settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// This node's identity.
    pub key: Keypair,
    /// Network name, part of every topic and protocol name (nodes of different networks
    /// never exchange data).
    pub network: String,
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// Bootstrap peers, dialled at start and again while disconnected.
    pub bootnodes: Vec<Multiaddr>,
    /// Discover peers on the local network with mDNS.
    pub mdns: bool,
    /// Most inbound connections.
    pub max_incoming: u32,
    /// Most outbound connections.
    pub max_outgoing: u32,
    /// Largest gossip message (a block).
    pub max_gossip: usize,
    /// Largest request read.
    pub max_request: usize,
    /// Largest response read.
    pub max_response: usize,
}

impl Config {
    /// Defaults for `network`, listening nowhere and knowing no peer.
    pub fn new(key: Keypair, network: &str) -> Config {
        Config {
            key,
            network: network.to_string(),
            listen: Vec::new(),
            bootnodes: Vec::new(),
            mdns: false,
            max_incoming: 64,
            max_outgoing: 16,
            max_gossip: 4 << 20,
            max_request: 64 << 10,
            max_response: 16 << 20,
        }
    }
}

/// A gossip topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    /// New blocks.
    Blocks,
    /// New transactions.
    Txs,
}

impl Topic {
    fn name(self, network: &str) -> String {
        match self {
            Topic::Blocks => format!("/rexe/{network}/blocks/1"),
            Topic::Txs => format!("/rexe/{network}/txs/1"),
        }
    }
}

/// What the node decided about a gossip message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Valid: forward it.
    Accept,
    /// Not forwarded, nobody blamed (a duplicate, or not checkable yet).
    Ignore,
    /// Invalid: not forwarded, and its sender is charged `points`.
    Reject {
        /// Points charged.
        points: u32,
    },
}

/// The way back to a peer that sent a request. Dropping it fails the peer's stream.
#[derive(Debug)]
pub struct Reply(ResponseChannel<Vec<u8>>);

/// Something that happened on the network.
#[derive(Debug)]
pub enum Event {
    /// A gossip message; answer with [`Handle::validate`].
    Gossip {
        /// Its topic.
        topic: Topic,
        /// Its content.
        data: Vec<u8>,
        /// The peer it came from.
        from: PeerId,
        /// Its id (for the verdict).
        id: MessageId,
    },
    /// A request; answer with [`Handle::respond`].
    Request {
        /// Who asks.
        from: PeerId,
        /// What (at most [`Config::max_request`] bytes).
        data: Vec<u8>,
        /// Where the answer goes.
        reply: Reply,
    },
    /// The answer to [`Handle::request`] `tag`, or why there is none.
    Response {
        /// Who answered.
        from: PeerId,
        /// The request's tag.
        tag: u64,
        /// The answer.
        result: Result<Vec<u8>, String>,
    },
    /// A connection to a peer opened (its first).
    Connected(PeerId),
    /// The last connection to a peer closed.
    Disconnected(PeerId),
}

/// A snapshot of the transport's state.
#[derive(Clone, Debug, Default)]
pub struct Status {
    /// This node's peer id.
    pub peer_id: String,
    /// Addresses it listens on (with `/p2p/<id>`, ready to give to another node).
    pub listening: Vec<String>,
    /// Connected peers.
    pub peers: Vec<String>,
    /// Peers banned now.
    pub banned: usize,
    /// Gossip messages received, per topic (blocks, txs).
    pub gossip_in: [u64; 2],
    /// Gossip messages published, per topic.
    pub gossip_out: [u64; 2],
    /// Gossip messages rejected.
    pub rejected: u64,
    /// Requests served.
    pub requests_in: u64,
    /// Streams that failed to decode (oversized or cut short).
    pub broken_streams: u64,
}

enum Command {
    Publish(Topic, Vec<u8>),
    Validate(MessageId, PeerId, Verdict),
    Respond(Reply, Vec<u8>),
    Request(PeerId, Vec<u8>, u64),
    Penalize(PeerId, u32, String),
    Dial(Multiaddr),
}

/// The node's side of the transport: commands in, [`Status`] out. Cheap to clone.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::UnboundedSender<Command>,
    status: Arc<Mutex<Status>>,
    peer_id: PeerId,
}

impl Handle {
    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Publishes `data` on `topic` (to every subscribed peer).
    pub fn publish(&self, topic: Topic, data: Vec<u8>) {
        let _ = self.tx.send(Command::Publish(topic, data));
    }

    /// The verdict on gossip message `id` from `from`.
    pub fn validate(&self, id: MessageId, from: PeerId, verdict: Verdict) {
        let _ = self.tx.send(Command::Validate(id, from, verdict));
    }

    /// Answers a request.
    pub fn respond(&self, reply: Reply, data: Vec<u8>) {
        let _ = self.tx.send(Command::Respond(reply, data));
    }

    /// Sends `data` to `peer`; the answer comes back as [`Event::Response`] with `tag`.
    pub fn request(&self, peer: PeerId, data: Vec<u8>, tag: u64) {
        let _ = self.tx.send(Command::Request(peer, data, tag));
    }

    /// Charges `peer` `points` for `why` (banned at [`BAN_POINTS`]).
    pub fn penalize(&self, peer: PeerId, points: u32, why: impl Into<String>) {
        let _ = self.tx.send(Command::Penalize(peer, points, why.into()));
    }

    /// Dials `addr`.
    pub fn dial(&self, addr: Multiaddr) {
        let _ = self.tx.send(Command::Dial(addr));
    }

    /// The transport's state now.
    pub fn status(&self) -> Status {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Why the transport did not start.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// Building the transport or a behaviour failed.
    #[error("p2p setup: {0}")]
    Setup(String),
    /// Listening failed (address in use, bad address).
    #[error("p2p listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        reason: String,
    },
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    limits: connection_limits::Behaviour,
    blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    gossip: gossipsub::Behaviour,
    sync: request_response::Behaviour<BytesCodec>,
    mdns: Toggle<mdns::tokio::Behaviour>,
}

/// Starts the transport on its own thread (with its own tokio runtime): listens, dials the
/// bootstrap peers and runs until every [`Handle`] is dropped. Events arrive on the receiver.
pub fn start(config: Config) -> Result<(Handle, Receiver<Event>), NetError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| NetError::Setup(e.to_string()))?;
    // Listeners and timers register with the runtime they are made in.
    let swarm = {
        let _in_runtime = rt.enter();
        let mut swarm = build(&config)?;
        for addr in &config.listen {
            swarm
                .listen_on(addr.clone())
                .map_err(|e| NetError::Listen {
                    addr: addr.clone(),
                    reason: e.to_string(),
                })?;
        }
        swarm
    };
    let peer_id = *swarm.local_peer_id();
    let (tx, rx) = mpsc::unbounded_channel();
    let (events, events_rx) = std::sync::mpsc::sync_channel(EVENT_QUEUE);
    let status = Arc::new(Mutex::new(Status {
        peer_id: peer_id.to_string(),
        ..Status::default()
    }));
    let handle = Handle {
        tx,
        status: status.clone(),
        peer_id,
    };
    let topics: Vec<(Topic, IdentTopic)> = [Topic::Blocks, Topic::Txs]
        .into_iter()
        .map(|t| (t, IdentTopic::new(t.name(&config.network))))
        .collect();
    std::thread::Builder::new()
        .name("rexe-p2p".into())
        .spawn(move || {
            let mut task = Task {
                swarm,
                events,
                status,
                topics,
                bootnodes: config.bootnodes,
                points: HashMap::new(),
                bans: HashMap::new(),
                pending: HashMap::new(),
                connected: HashSet::new(),
            };
            rt.block_on(task.run(rx));
        })
        .map_err(|e| NetError::Setup(e.to_string()))?;
    Ok((handle, events_rx))
}

fn build(config: &Config) -> Result<libp2p::Swarm<Behaviour>, NetError> {
    let setup = |e: &dyn std::fmt::Display| NetError::Setup(e.to_string());
    let gossip_config = gossipsub::ConfigBuilder::default()
        .heartbeat_interval(Duration::from_millis(700))
        .validation_mode(gossipsub::ValidationMode::Strict)
        .validate_messages()
        .max_transmit_size(config.max_gossip)
        .message_id_fn(|m: &gossipsub::Message| {
            MessageId::from(sha2::Sha256::digest(&m.data).to_vec())
        })
        .build()
        .map_err(|e| setup(&e))?;
    let mut gossip = gossipsub::Behaviour::new(
        gossipsub::MessageAuthenticity::Signed(config.key.clone()),
        gossip_config,
    )
    .map_err(|e| setup(&e))?;
    for t in [Topic::Blocks, Topic::Txs] {
        gossip
            .subscribe(&IdentTopic::new(t.name(&config.network)))
            .map_err(|e| setup(&e))?;
    }
    let protocol = StreamProtocol::try_from_owned(format!("/rexe/{}/sync/1", config.network))
        .map_err(|e| setup(&e))?;
    let sync = request_response::Behaviour::with_codec(
        BytesCodec {
            max_request: config.max_request,
            max_response: config.max_response,
        },
        [(protocol, ProtocolSupport::Full)],
        request_response::Config::default()
            .with_request_timeout(Duration::from_secs(30))
            .with_max_concurrent_streams(16),
    );
    let limits = connection_limits::Behaviour::new(
        connection_limits::ConnectionLimits::default()
            .with_max_established_incoming(Some(config.max_incoming))
            .with_max_established_outgoing(Some(config.max_outgoing))
            .with_max_pending_incoming(Some(config.max_incoming.min(32)))
            .with_max_established_per_peer(Some(2)),
    );
    let peer_id = config.key.public().to_peer_id();
    let mdns = if config.mdns {
        Some(mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id).map_err(|e| setup(&e))?)
    } else {
        None
    };
    let behaviour = Behaviour {
        limits,
        blocked: Default::default(),
        gossip,
        sync,
        mdns: mdns.into(),
    };
    Ok(
        libp2p::SwarmBuilder::with_existing_identity(config.key.clone())
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| setup(&e))?
            .with_behaviour(|_| behaviour)
            .map_err(|e| setup(&e))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
            .build(),
    )
}

struct Task {
    swarm: libp2p::Swarm<Behaviour>,
    events: SyncSender<Event>,
    status: Arc<Mutex<Status>>,
    topics: Vec<(Topic, IdentTopic)>,
    bootnodes: Vec<Multiaddr>,
    points: HashMap<PeerId, u32>,
    bans: HashMap<PeerId, Instant>,
    pending: HashMap<OutboundRequestId, u64>,
    connected: HashSet<PeerId>,
}

/// The peer id at the end of a multiaddr (`/p2p/<id>`), if any.
pub fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

impl Task {
    fn status(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn emit(&mut self, e: Event) {
        match self.events.try_send(e) {
            Ok(()) => {}
            Err(TrySendError::Full(e)) => {
                tracing::warn!(event = ?std::mem::discriminant(&e), "p2p event queue full; dropped")
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    fn topic_index(t: Topic) -> usize {
        match t {
            Topic::Blocks => 0,
            Topic::Txs => 1,
        }
    }

    fn penalize(&mut self, peer: PeerId, points: u32, why: &str) {
        let total = self.points.entry(peer).or_default();
        *total = total.saturating_add(points);
        tracing::info!(%peer, points, total = *total, why, "peer charged");
        if *total >= BAN_POINTS {
            self.points.remove(&peer);
            self.bans.insert(peer, Instant::now());
            self.swarm.behaviour_mut().blocked.block_peer(peer);
            tracing::warn!(%peer, why, secs = BAN_SECS, "peer banned");
            let banned = self.bans.len();
            self.status().banned = banned;
        }
    }

    fn dial_bootnodes(&mut self) {
        for addr in self.bootnodes.clone() {
            let known = peer_of(&addr).is_some_and(|p| self.connected.contains(&p));
            if !known {
                if let Err(e) = self.swarm.dial(addr.clone()) {
                    tracing::debug!(%addr, error = %e, "dial failed");
                }
            }
        }
    }

    async fn run(&mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        self.dial_bootnodes();
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        loop {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(c) => self.command(c),
                    None => return,
                },
                ev = self.swarm.select_next_some() => self.swarm_event(ev),
                _ = tick.tick() => {
                    self.dial_bootnodes();
                    let expired: Vec<PeerId> = self
                        .bans
                        .iter()
                        .filter(|(_, t)| t.elapsed() >= Duration::from_secs(BAN_SECS))
                        .map(|(p, _)| *p)
                        .collect();
                    for p in expired {
                        self.bans.remove(&p);
                        self.swarm.behaviour_mut().blocked.unblock_peer(p);
                    }
                    let banned = self.bans.len();
                    self.status().banned = banned;
                }
            }
        }
    }

    fn command(&mut self, c: Command) {
        match c {
            Command::Publish(topic, data) => {
                let t = self.topics[Self::topic_index(topic)].1.clone();
                match self.swarm.behaviour_mut().gossip.publish(t, data) {
                    Ok(_) => self.status().gossip_out[Self::topic_index(topic)] += 1,
                    // No peer yet, or already sent: nothing to do.
                    Err(e) => tracing::debug!(?topic, error = %e, "not published"),
                }
            }
            Command::Validate(id, from, verdict) => {
                let acceptance = match verdict {
                    Verdict::Accept => MessageAcceptance::Accept,
                    Verdict::Ignore => MessageAcceptance::Ignore,
                    Verdict::Reject { .. } => MessageAcceptance::Reject,
                };
                self.swarm
                    .behaviour_mut()
                    .gossip
                    .report_message_validation_result(&id, &from, acceptance);
                if let Verdict::Reject { points } = verdict {
                    self.status().rejected += 1;
                    self.penalize(from, points, "invalid gossip");
                }
            }
            Command::Respond(Reply(channel), data) => {
                let _ = self.swarm.behaviour_mut().sync.send_response(channel, data);
            }
            Command::Request(peer, data, tag) => {
                let id = self.swarm.behaviour_mut().sync.send_request(&peer, data);
                self.pending.insert(id, tag);
            }
            Command::Penalize(peer, points, why) => self.penalize(peer, points, &why),
            Command::Dial(addr) => {
                if let Err(e) = self.swarm.dial(addr.clone()) {
                    tracing::debug!(%addr, error = %e, "dial failed");
                }
            }
        }
    }

    fn swarm_event(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        match ev {
            SwarmEvent::NewListenAddr { address, .. } => {
                let me = *self.swarm.local_peer_id();
                let full = address.with(libp2p::multiaddr::Protocol::P2p(me));
                tracing::info!(address = %full, "p2p listening");
                self.status().listening.push(full.to_string());
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                num_established,
                ..
            } if num_established.get() == 1 => {
                self.connected.insert(peer_id);
                self.status().peers.push(peer_id.to_string());
                tracing::info!(peer = %peer_id, "peer connected");
                self.emit(Event::Connected(peer_id));
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.connected.remove(&peer_id);
                let id = peer_id.to_string();
                self.status().peers.retain(|p| *p != id);
                tracing::info!(peer = %peer_id, "peer disconnected");
                self.emit(Event::Disconnected(peer_id));
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossip(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
                ..
            })) => {
                let topic = self
                    .topics
                    .iter()
                    .find(|(_, t)| t.hash() == message.topic)
                    .map(|(t, _)| *t);
                match topic {
                    Some(topic) => {
                        self.status().gossip_in[Self::topic_index(topic)] += 1;
                        self.emit(Event::Gossip {
                            topic,
                            data: message.data,
                            from: propagation_source,
                            id: message_id,
                        });
                    }
                    None => {
                        self.swarm
                            .behaviour_mut()
                            .gossip
                            .report_message_validation_result(
                                &message_id,
                                &propagation_source,
                                MessageAcceptance::Reject,
                            );
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Sync(e)) => self.sync_event(e),
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                for (peer, addr) in found {
                    if !self.connected.contains(&peer) && !self.bans.contains_key(&peer) {
                        tracing::debug!(%peer, %addr, "mDNS found a peer");
                        let _ = self.swarm.dial(addr);
                    }
                }
            }
            _ => {}
        }
    }

    fn sync_event(&mut self, e: request_response::Event<Vec<u8>, Vec<u8>>) {
        use request_response::{Event as E, Message as M};
        match e {
            E::Message {
                peer,
                message: M::Request {
                    request, channel, ..
                },
                ..
            } => {
                if request == codec::BROKEN_REQUEST {
                    // Over the cap or empty: the stream closes with the dropped channel.
                    drop(channel);
                    self.status().broken_streams += 1;
                    self.penalize(peer, BROKEN_FRAME_POINTS, "request over the cap or empty");
                    return;
                }
                self.status().requests_in += 1;
                self.emit(Event::Request {
                    from: peer,
                    data: request,
                    reply: Reply(channel),
                });
            }
            E::Message {
                peer,
                message:
                    M::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some(tag) = self.pending.remove(&request_id) {
                    self.emit(Event::Response {
                        from: peer,
                        tag,
                        result: Ok(response),
                    });
                }
            }
            E::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some(tag) = self.pending.remove(&request_id) {
                    self.emit(Event::Response {
                        from: peer,
                        tag,
                        result: Err(error.to_string()),
                    });
                }
            }
            E::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound request failed");
            }
            _ => {}
        }
    }
}
