//! The watcher: follows bitcoind by polling `getchaintips`, woken at once by ZMQ `hashblock`
//! where configured ([`crate::zmq`]; ZMQ only reports tip changes, never stale blocks, so the
//! polling stays), and harvests any block, on the best chain or stale, whose coinbase commits
//! to L2 work that is still useful.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::consensus::encode::deserialize;
use bitcoin::hex::FromHex;
use bitcoin::Block;
use serde_json::json;

use crate::harvest::Source;
use crate::proxy::Harvester;
use crate::zmq::HashBlock;
use rexe_rpc::client::{RpcClient, RpcError};

/// Remembers which blocks were looked at.
#[derive(Default)]
pub struct Watcher {
    seen: HashSet<String>,
}

impl Watcher {
    /// One poll: every chain tip not seen yet (and its unseen ancestors on a fork, up to
    /// `depth`) is fetched and offered to the harvester. Returns L2 blocks sealed.
    pub fn poll(
        &mut self,
        btc: &RpcClient,
        h: &Harvester,
        depth: usize,
    ) -> Result<usize, RpcError> {
        let tips: Vec<rexe_rpc::core::ChainTip> = btc.call_as("getchaintips", json!([]))?;
        let mut sealed = 0;
        for tip in tips {
            let status = tip.status.as_str();
            let mut hash = tip.hash;
            let source = if status == "active" {
                Source::OnChain
            } else {
                Source::Stale
            };
            for _ in 0..depth {
                if hash.is_empty() || !self.seen.insert(hash.clone()) {
                    break;
                }
                let raw = btc.call("getblock", json!([hash, 0]))?;
                let Some(block) = raw
                    .as_str()
                    .and_then(|x| Vec::<u8>::from_hex(x).ok())
                    .and_then(|b| deserialize::<Block>(&b).ok())
                else {
                    break;
                };
                if h.harvest(&block, source) {
                    sealed += 1;
                }
                hash = block.header.prev_blockhash.to_string();
            }
        }
        Ok(sealed)
    }

    /// Polls every `interval` until `stop`.
    pub fn run(self, btc: RpcClient, h: Arc<Harvester>, interval: Duration, stop: Arc<AtomicBool>) {
        self.run_woken(btc, h, interval, stop, None)
    }

    /// Polls every `interval`, and at once whenever `wake` delivers a `hashblock`
    /// notification, until `stop`.
    pub fn run_woken(
        mut self,
        btc: RpcClient,
        h: Arc<Harvester>,
        interval: Duration,
        stop: Arc<AtomicBool>,
        wake: Option<Receiver<HashBlock>>,
    ) {
        // `stop` is checked at least this often, however long the interval.
        let tick = interval.min(Duration::from_millis(200));
        while !stop.load(Ordering::SeqCst) {
            if let Err(e) = self.poll(&btc, &h, 16) {
                tracing::debug!(error = %e, "watcher poll failed");
            }
            let next = Instant::now() + interval;
            while !stop.load(Ordering::SeqCst) && Instant::now() < next {
                let woken = match &wake {
                    Some(rx) => match rx.recv_timeout(tick) {
                        Ok(n) => Some(n),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => {
                            std::thread::sleep(tick);
                            None
                        }
                    },
                    None => {
                        std::thread::sleep(tick);
                        None
                    }
                };
                if let Some(n) = woken {
                    tracing::debug!(tip = %n.hash, seq = n.sequence, "woken by ZMQ hashblock");
                    break;
                }
            }
        }
    }
}
