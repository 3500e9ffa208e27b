//! Following bitcoind over ZMQ (`-zmqpubhashblock`, Core's `doc/zmq.md`): a SUB socket on
//! `hashblock` whose messages (`topic | 32-byte hash in RPC order | 4-byte LE sequence`) wake
//! the watcher as soon as the tip changes. ZMQ reports only tip changes, never stale blocks,
//! so the watcher keeps polling `getchaintips` as well. Pure Rust (the `zeromq` crate).

use std::sync::mpsc::Sender;
use std::time::Duration;

use bitcoin::hashes::Hash;
use bitcoin::BlockHash;
use zeromq::{Socket, SocketRecv};

/// Wait between attempts to (re)connect to the publisher.
const RETRY: Duration = Duration::from_secs(1);

/// One `hashblock` notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashBlock {
    /// The new tip.
    pub hash: BlockHash,
    /// The publisher's sequence number (a gap means missed messages).
    pub sequence: u32,
}

/// A message that is not a `hashblock` notification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotificationError {
    /// Not three frames.
    #[error("expected 3 frames (topic, body, sequence), got {0}")]
    Frames(usize),
    /// Another topic.
    #[error("topic {0:?} is not hashblock")]
    Topic(String),
    /// The body is not 32 bytes.
    #[error("hashblock body of {0} bytes (expected 32)")]
    Body(usize),
    /// The sequence is not 4 bytes.
    #[error("sequence of {0} bytes (expected 4)")]
    Sequence(usize),
}

/// Parses a `hashblock` message from its frames.
pub fn parse_hashblock(frames: &[&[u8]]) -> Result<HashBlock, NotificationError> {
    let [topic, body, seq] = frames else {
        return Err(NotificationError::Frames(frames.len()));
    };
    if *topic != b"hashblock" {
        return Err(NotificationError::Topic(
            String::from_utf8_lossy(topic).into_owned(),
        ));
    }
    let mut hash: [u8; 32] = (*body)
        .try_into()
        .map_err(|_| NotificationError::Body(body.len()))?;
    // Sent in RPC (display) order.
    hash.reverse();
    let seq: [u8; 4] = (*seq)
        .try_into()
        .map_err(|_| NotificationError::Sequence(seq.len()))?;
    Ok(HashBlock {
        hash: BlockHash::from_byte_array(hash),
        sequence: u32::from_le_bytes(seq),
    })
}

/// Subscribes to `hashblock` at `endpoint` (e.g. `tcp://127.0.0.1:28332`) and sends every
/// notification to `wake`, reconnecting after failures, until `wake`'s receiver is gone.
pub async fn follow_hashblock(endpoint: String, wake: Sender<HashBlock>) {
    loop {
        let mut sub = zeromq::SubSocket::new();
        let connected = async {
            sub.connect(&endpoint).await?;
            sub.subscribe("hashblock").await
        };
        if let Err(e) = connected.await {
            tracing::debug!(%endpoint, error = %e, "ZMQ connect failed; retrying");
            tokio::time::sleep(RETRY).await;
            continue;
        }
        tracing::info!(%endpoint, "following bitcoind's hashblock over ZMQ");
        loop {
            let msg = match sub.recv().await {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(%endpoint, error = %e, "ZMQ receive failed; reconnecting");
                    break;
                }
            };
            let frames: Vec<&[u8]> = msg.iter().map(|f| f.as_ref()).collect();
            match parse_hashblock(&frames) {
                Ok(n) => {
                    if wake.send(n).is_err() {
                        return;
                    }
                }
                Err(e) => tracing::debug!(error = %e, "ignored a ZMQ message"),
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashblock_messages_parse_and_others_are_refused() {
        let mut body = [0u8; 32];
        body[0] = 0xab; // display order: the first byte is the last of the internal hash
        let n = parse_hashblock(&[b"hashblock", &body, &7u32.to_le_bytes()]).unwrap();
        assert_eq!(n.sequence, 7);
        assert_eq!(n.hash.to_byte_array()[31], 0xab);
        assert_eq!(
            parse_hashblock(&[b"hashtx", &body, &[0; 4]]),
            Err(NotificationError::Topic("hashtx".into()))
        );
        assert_eq!(
            parse_hashblock(&[b"hashblock", &body[..31], &[0; 4]]),
            Err(NotificationError::Body(31))
        );
        assert_eq!(
            parse_hashblock(&[b"hashblock", &body, &[0; 3]]),
            Err(NotificationError::Sequence(3))
        );
        assert_eq!(
            parse_hashblock(&[b"hashblock", &body]),
            Err(NotificationError::Frames(2))
        );
    }
}
