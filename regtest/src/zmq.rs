//! ZMQ notifications as bitcoind publishes them (Core's `doc/zmq.md`, options
//! `-zmqpubhashblock`, `-zmqpubrawblock`, `-zmqpubhashtx`, `-zmqpubrawtx`): PUB sockets bound
//! where configured (topics may share one), multipart messages `topic | body | sequence`
//! with a 4-byte little-endian sequence per notifier. `hashblock`/`rawblock` fire when the
//! tip changes (so a stale block never shows up here); `hashtx`/`rawtx` for each
//! transaction entering the mempool and each transaction of a connected block. Hashes go
//! out in RPC (display) byte order, raw bodies in consensus serialization with witnesses.
//!
//! ZMTP 3 comes from the pure-Rust `zeromq` crate: no libzmq.

use std::collections::BTreeMap;

use bitcoin::consensus::encode::serialize;
use bitcoin::hashes::Hash;
use bitcoin::{Block, Transaction};
use tokio::sync::mpsc::UnboundedReceiver;
use zeromq::{Socket, SocketSend, ZmqMessage};

/// A notification topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Topic {
    /// Hash of the new tip.
    HashBlock,
    /// The new tip block.
    RawBlock,
    /// Txid of a new transaction.
    HashTx,
    /// A new transaction.
    RawTx,
}

impl Topic {
    /// Every topic.
    pub const ALL: [Topic; 4] = [
        Topic::HashBlock,
        Topic::RawBlock,
        Topic::HashTx,
        Topic::RawTx,
    ];

    /// The topic frame.
    pub fn name(self) -> &'static str {
        match self {
            Topic::HashBlock => "hashblock",
            Topic::RawBlock => "rawblock",
            Topic::HashTx => "hashtx",
            Topic::RawTx => "rawtx",
        }
    }

    /// Reads `hashblock` etc. (also `pubhashblock`, the name `getzmqnotifications` uses).
    pub fn parse(s: &str) -> Option<Topic> {
        let s = s.strip_prefix("pub").unwrap_or(s);
        Topic::ALL.into_iter().find(|t| t.name() == s)
    }
}

/// One publisher: `-zmqpub<topic>=<endpoint>`, e.g. `tcp://127.0.0.1:28332`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZmqPub {
    /// What is published.
    pub topic: Topic,
    /// Where (`tcp://HOST:PORT`; port 0 picks a free one).
    pub endpoint: String,
}

/// What the node tells the publisher.
#[derive(Clone, Debug)]
pub enum Event {
    /// The active chain has a new tip.
    Tip(Block),
    /// A transaction entered the mempool or a connected block.
    Tx(Transaction),
}

/// A notifier's failure to bind.
#[derive(Debug, thiserror::Error)]
#[error("ZMQ publisher {topic} on {endpoint}: {message}")]
pub struct ZmqError {
    /// The topic.
    pub topic: &'static str,
    /// The configured endpoint.
    pub endpoint: String,
    /// Why.
    pub message: String,
}

/// The bound PUB sockets, each with its topics and their sequence numbers.
pub struct Publisher {
    sockets: Vec<(zeromq::PubSocket, Vec<(Topic, u32)>)>,
}

/// Binds one PUB socket per distinct endpoint; returns the publisher and the notifiers
/// with their bound endpoints (ports resolved).
pub async fn bind(config: &[ZmqPub]) -> Result<(Publisher, Vec<ZmqPub>), ZmqError> {
    let mut by_endpoint: BTreeMap<&str, Vec<Topic>> = BTreeMap::new();
    for p in config {
        let topics = by_endpoint.entry(&p.endpoint).or_default();
        if !topics.contains(&p.topic) {
            topics.push(p.topic);
        }
    }
    let mut sockets = Vec::new();
    let mut bound = Vec::new();
    for (endpoint, topics) in by_endpoint {
        let mut socket = zeromq::PubSocket::new();
        let at = socket.bind(endpoint).await.map_err(|e| ZmqError {
            topic: topics[0].name(),
            endpoint: endpoint.to_string(),
            message: e.to_string(),
        })?;
        for t in &topics {
            bound.push(ZmqPub {
                topic: *t,
                endpoint: at.to_string(),
            });
        }
        sockets.push((socket, topics.into_iter().map(|t| (t, 0)).collect()));
    }
    Ok((Publisher { sockets }, bound))
}

/// Hashes in RPC order, as Core's `CZMQPublishHash*Notifier` writes them.
fn display_order(mut h: [u8; 32]) -> Vec<u8> {
    h.reverse();
    h.to_vec()
}

fn body(topic: Topic, event: &Event) -> Option<Vec<u8>> {
    match (topic, event) {
        (Topic::HashBlock, Event::Tip(b)) => Some(display_order(b.block_hash().to_byte_array())),
        (Topic::RawBlock, Event::Tip(b)) => Some(serialize(b)),
        (Topic::HashTx, Event::Tx(t)) => Some(display_order(t.compute_txid().to_byte_array())),
        (Topic::RawTx, Event::Tx(t)) => Some(serialize(t)),
        _ => None,
    }
}

impl Publisher {
    /// Publishes every event until the node drops its sender.
    pub async fn run(mut self, mut events: UnboundedReceiver<Event>) {
        while let Some(event) = events.recv().await {
            for (socket, topics) in &mut self.sockets {
                for (topic, seq) in topics.iter_mut() {
                    let Some(body) = body(*topic, &event) else {
                        continue;
                    };
                    let mut msg = ZmqMessage::from(topic.name());
                    msg.push_back(body.into());
                    msg.push_back(seq.to_le_bytes().to_vec().into());
                    *seq = seq.wrapping_add(1);
                    // The node never waits for subscribers (events queue up here); a send
                    // that fails is logged and that message is lost, as with libzmq.
                    if let Err(e) = socket.send(msg).await {
                        tracing::debug!(topic = topic.name(), error = %e, "ZMQ send failed");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_parse_both_ways() {
        for t in Topic::ALL {
            assert_eq!(Topic::parse(t.name()), Some(t));
            assert_eq!(Topic::parse(&format!("pub{}", t.name())), Some(t));
        }
        assert_eq!(Topic::parse("sequence"), None);
    }

    #[test]
    fn bodies_match_their_topics_only() {
        let block = bitcoin::constants::genesis_block(bitcoin::Network::Regtest);
        let tip = Event::Tip(block.clone());
        let tx = Event::Tx(block.txdata[0].clone());
        let mut h = block.block_hash().to_byte_array();
        h.reverse();
        assert_eq!(body(Topic::HashBlock, &tip), Some(h.to_vec()));
        assert_eq!(body(Topic::RawBlock, &tip), Some(serialize(&block)));
        assert_eq!(body(Topic::HashTx, &tip), None);
        assert_eq!(body(Topic::HashBlock, &tx), None);
        assert_eq!(body(Topic::RawTx, &tx), Some(serialize(&block.txdata[0])));
    }
}
