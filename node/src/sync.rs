//! Block and transaction exchange with peers (`--peer`): every peer is polled; when its
//! chain has more work, the common ancestor is found and the missing blocks are fetched
//! and validated like any other block, which reorganises to the most-work chain. New
//! mempool transactions are forwarded to peers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Report, Result};
use bitcoin::hex::{DisplayHex, FromHex};
use rexe_chain::encode::Decode;
use rexe_chain::{Block, BlockError};
use serde_json::{json, Value};

use super::peer::Peer;
use super::Shared;

/// Our chainwork and tip, as hex strings comparable with a peer's `getchaininfo`.
fn our_tip(shared: &Shared) -> (String, u64) {
    let c = shared.chain();
    (
        c.tip_work().to_be_bytes().to_lower_hex_string(),
        c.tip_height(),
    )
}

/// Highest height at which we and `peer` have the same block.
fn common_height(shared: &Shared, peer: &Peer, peer_height: u64) -> Result<u64> {
    let mut h = our_tip(shared).1.min(peer_height);
    let mut step = 1u64;
    loop {
        let ours = shared.chain().hash_at(h).map(|x| x.to_string());
        let theirs = peer.call("getblockhash", json!([h]))?;
        if ours.as_deref() == theirs.as_str() {
            return Ok(h);
        }
        if h == 0 {
            return Err(Error::Peer(format!(
                "peer {} has a different genesis block",
                peer.addr
            )));
        }
        h = h.saturating_sub(step);
        step = (step * 2).min(1024);
    }
}

/// Pulls blocks from `peer` while it has more work than us. Returns blocks connected.
pub fn sync_from(shared: &Shared, peer: &Peer) -> Result<u64> {
    let info: crate::api::ChainInfo = peer.call_as("getchaininfo", json!([]))?;
    let (their_work, their_height) = (info.chainwork, info.height);
    if their_work.len() != 64 || their_work <= our_tip(shared).0 {
        return Ok(0);
    }
    let from = common_height(shared, peer, their_height)?;
    let total = their_height - from;
    if total > 100 {
        tracing::info!(peer = %peer.addr, from, to = their_height, "syncing blocks");
    }
    let started = Instant::now();
    let mut got = 0;
    for h in from + 1..=their_height {
        let hex = peer.call("getblock", json!([h, 0]))?;
        let bytes = Vec::<u8>::from_hex(hex.as_str().unwrap_or("")).map_err(|e| {
            Error::Peer(format!("peer {} sent block {h} as bad hex: {e}", peer.addr))
        })?;
        let block = Block::from_bytes(&bytes)
            .map_err(|e| Error::Peer(format!("peer {} sent a bad block: {e}", peer.addr)))?;
        match shared.chain().submit(block, crate::unix_time()) {
            Ok(_) | Err(BlockError::Duplicate(_)) => {}
            Err(e) => {
                return Err(Error::Peer(format!(
                    "block {h} from peer {} rejected: {e}",
                    peer.addr
                )))
            }
        }
        got += 1;
        if got % 1000 == 0 {
            let rate = got as f64 / started.elapsed().as_secs_f64().max(1e-3);
            tracing::info!(
                progress = format!("{:.1}%", 100.0 * got as f64 / total as f64),
                height = h,
                blocks_per_sec = rate as u64,
                "sync progress"
            );
        }
    }
    Ok(got)
}

/// Polls every peer until `stop` is set.
pub fn run(shared: Arc<Shared>, peers: Vec<Peer>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        for p in &peers {
            match sync_from(&shared, p) {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(peer = %p.addr, blocks = n, height = our_tip(&shared).1, "synced")
                }
                Err(e) => {
                    tracing::debug!(peer = %p.addr, error = %Report(&e), "sync attempt failed")
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Forwards a transaction we admitted to every peer (best effort, in the background).
pub fn forward_tx(peers: &[Peer], hex: String) {
    for p in peers.iter().cloned() {
        let hex = hex.clone();
        std::thread::spawn(move || {
            if let Err(e) = p.call("sendrawtransaction", Value::Array(vec![Value::String(hex)])) {
                tracing::debug!(peer = %p.addr, error = %Report(&e), "peer did not take the transaction");
            }
        });
    }
}
