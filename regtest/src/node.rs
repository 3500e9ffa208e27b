//! The node: chain + mempool behind a lock, block persistence in the data directory, and
//! the operations the RPC exposes.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use bitcoin::consensus::encode::{deserialize, serialize};
use bitcoin::{Block, BlockHash, CompactTarget, Transaction};

use crate::chain::{Accepted, Chain};
use crate::index::ScriptWatch;
use crate::mempool::{Mempool, Reject};
use crate::zmq::Event;

/// The node state.
pub struct Node {
    /// The chain.
    pub chain: Chain,
    /// The mempool.
    pub mempool: Mempool,
    blocks_file: Option<PathBuf>,
    /// Unix time the node started.
    pub started: std::time::Instant,
    /// Where tip changes and new transactions go (the ZMQ publisher), if anywhere.
    pub notify: Option<tokio::sync::mpsc::UnboundedSender<Event>>,
    /// The mempool's script index and the log of touched scripts (for Electrum).
    pub scripts: ScriptWatch,
    /// The loaded wallets (the wallet RPCs), in `DATADIR/wallets`.
    pub wallets: crate::wallet::Wallets,
}

impl Node {
    /// Opens the node in `datadir` (replaying `blocks.dat`), or in memory with `None`.
    pub fn open(datadir: Option<&Path>, bits: CompactTarget) -> std::io::Result<Node> {
        let mut node = Node {
            chain: Chain::new(bits),
            mempool: Mempool::default(),
            blocks_file: datadir.map(|d| d.join("blocks.dat")),
            started: std::time::Instant::now(),
            notify: None,
            scripts: ScriptWatch::default(),
            wallets: crate::wallet::Wallets::new(datadir),
        };
        if let Some(path) = node.blocks_file.clone() {
            if path.exists() {
                let mut data = Vec::new();
                std::fs::File::open(&path)?.read_to_end(&mut data)?;
                let mut pos = 0;
                let mut n = 0;
                while let Some(len) = record_len(&data, pos) {
                    let raw = &data[pos + 4..pos + 4 + len];
                    if let Ok(b) = deserialize::<Block>(raw) {
                        let _ = node.chain.submit(b);
                        n += 1;
                    }
                    pos += 4 + len;
                }
                if pos < data.len() {
                    truncate_torn_tail(&path, &data[pos..], pos as u64)?;
                }
                tracing::info!(
                    blocks = n,
                    height = node.chain.height(),
                    "regtest chain reloaded"
                );
            }
        }
        node.scripts.sync(&mut node.chain, &node.mempool);
        Ok(node)
    }

    fn persist(&self, block: &Block) {
        let Some(path) = &self.blocks_file else {
            return;
        };
        let raw = serialize(block);
        let res = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| {
                f.write_all(&(raw.len() as u32).to_le_bytes())?;
                f.write_all(&raw)?;
                f.sync_data()
            });
        if let Err(e) = res {
            tracing::error!(error = %e, "could not persist a regtest block");
        }
    }

    /// Submits a block; `Ok(None)` when it became the tip, `Ok(Some("inconclusive"))` for a
    /// side branch, `Err(reason)` otherwise (Core's `submitblock` strings).
    ///
    /// Like Core's `submitblock` (UpdateUncommittedBlockStructures), a coinbase with a
    /// witness commitment but no witness gets the default 32-byte zero reserved value, so
    /// Stratum miners, which see only the stripped coinbase, can submit.
    pub fn submit_block(&mut self, mut block: Block) -> Result<Option<&'static str>, String> {
        if let Some(cb) = block.txdata.first_mut() {
            let committed = cb.output.iter().any(|o| {
                o.script_pubkey.len() >= 38
                    && o.script_pubkey.as_bytes()[..6] == [0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed]
            });
            if committed && cb.is_coinbase() && cb.input[0].witness.is_empty() {
                cb.input[0].witness = bitcoin::Witness::from_slice(&[[0u8; 32]]);
            }
        }
        let before: Vec<BlockHash> = self.chain.active.clone();
        let r = self.chain.submit(block.clone());
        if r.is_ok() {
            self.persist(&block);
        }
        self.after_change(&before);
        match r {
            Ok(Accepted::Tip) => Ok(None),
            Ok(Accepted::SideBranch) => Ok(Some("inconclusive")),
            Err(e) => Err(e),
        }
    }

    /// Re-syncs the mempool after the active chain changed from `before`, and notifies the
    /// transactions of newly connected blocks, then the new tip (Core's order).
    pub fn after_change(&mut self, before: &[BlockHash]) {
        let returned: Vec<Transaction> = before
            .iter()
            .filter(|h| !self.chain.is_active(h))
            .flat_map(|h| self.chain.blocks[h].block.txdata.clone())
            .collect();
        self.mempool.resync(&self.chain, returned);
        self.scripts.sync(&mut self.chain, &self.mempool);
        let Some(notify) = &self.notify else {
            return;
        };
        if before.last() == Some(&self.chain.tip()) {
            return;
        }
        let fork = before
            .iter()
            .zip(&self.chain.active)
            .take_while(|(a, b)| a == b)
            .count();
        for h in &self.chain.active[fork..] {
            for tx in &self.chain.blocks[h].block.txdata {
                let _ = notify.send(Event::Tx(tx.clone()));
            }
        }
        let _ = notify.send(Event::Tip(self.chain.tip_entry().block.clone()));
    }

    /// Admits `tx` to the mempool (Core's reject reasons) and notifies it.
    pub fn accept_tx(&mut self, tx: Transaction) -> Result<bitcoin::Txid, Reject> {
        let copy = self.notify.is_some().then(|| tx.clone());
        let txid = self.mempool.accept(&self.chain, tx)?;
        self.scripts.sync(&mut self.chain, &self.mempool);
        if let (Some(notify), Some(tx)) = (&self.notify, copy) {
            let _ = notify.send(Event::Tx(tx));
        }
        Ok(txid)
    }

    /// Mines one block paying `script` with the mempool's transactions.
    pub fn generate(&mut self, script: bitcoin::ScriptBuf, now: u32) -> Result<BlockHash, String> {
        let cands = self.mempool.block_candidates();
        let fees = cands.iter().map(|(_, f)| *f).sum();
        let txs = cands.into_iter().map(|(t, _)| t).collect();
        self.generate_with(script, txs, fees, now)
    }

    /// Mines one block paying `script` with exactly `txs` (total fees `fees`), as Core's
    /// `generateblock`; `Err(reason)` when the block is invalid.
    pub fn generate_with(
        &mut self,
        script: bitcoin::ScriptBuf,
        txs: Vec<Transaction>,
        fees: bitcoin::Amount,
        now: u32,
    ) -> Result<BlockHash, String> {
        let mut block = self.chain.make_block(script, txs, fees, now, &[]);
        let target = self.chain.target();
        while !target.is_met_by(block.block_hash()) {
            block.header.nonce = block.header.nonce.wrapping_add(1);
            if block.header.nonce == 0 {
                block.header.time += 1;
            }
        }
        let hash = block.block_hash();
        self.submit_block(block)?;
        Ok(hash)
    }
}

/// The length of the complete record at `pos` of `blocks.dat` (4-byte little-endian length,
/// then that many bytes), or `None` when the bytes there do not hold a whole record.
fn record_len(data: &[u8], pos: usize) -> Option<usize> {
    let len = u32::from_le_bytes(data.get(pos..pos.checked_add(4)?)?.try_into().ok()?) as usize;
    let end = pos.checked_add(4)?.checked_add(len)?;
    (end <= data.len()).then_some(len)
}

/// Cuts a torn final record (a write the process did not finish) off `blocks.dat`, so new
/// blocks are appended after the last whole record and read back on the next start. The cut
/// bytes are kept in `blocks.dat.torn` for inspection.
fn truncate_torn_tail(path: &Path, tail: &[u8], good_len: u64) -> std::io::Result<()> {
    tracing::warn!(
        file = %path.display(),
        bytes = tail.len(),
        kept = good_len,
        "blocks.dat ends in a torn record (an interrupted write); truncating it"
    );
    let mut torn = path.as_os_str().to_owned();
    torn.push(".torn");
    if let Err(e) = std::fs::write(PathBuf::from(torn), tail) {
        tracing::warn!(error = %e, "could not keep the torn bytes");
    }
    let f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.set_len(good_len)?;
    f.sync_all()
}
