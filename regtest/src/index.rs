//! Script-hash indexes for the Electrum server, kept up to date as blocks connect and
//! disconnect (as electrs does), so a scripthash query costs its own history, not a scan
//! of the chain:
//!
//! - [`ScriptIndex`] (in the chain): per script, the confirmed transactions touching it and
//!   the outputs paying it; per outpoint, the transaction that spent it. Updated in
//!   `connect`, undone in `disconnect_tip` (reorgs, `invalidateblock`).
//! - [`ScriptWatch`] (in the node): per script, the mempool transactions touching it, and a
//!   bounded log of the scripts touched by blocks and mempool changes, from which the
//!   Electrum server recomputes only the subscriptions that may have changed.

use std::collections::{HashMap, HashSet, VecDeque};

use bitcoin::hashes::{sha256, Hash};
use bitcoin::hex::{DisplayHex, FromHex};
use bitcoin::{OutPoint, Script, Transaction, Txid};

use crate::chain::Chain;
use crate::mempool::Mempool;

/// SHA256 of an output script: Electrum's script hash (its hex form is byte-reversed).
pub type ScriptHash = [u8; 32];

/// The script hash of `script`.
pub fn script_hash(script: &Script) -> ScriptHash {
    sha256::Hash::hash(script.as_bytes()).to_byte_array()
}

/// Electrum's hex form of a script hash (bytes reversed).
pub fn to_hex(sh: &ScriptHash) -> String {
    let mut b = *sh;
    b.reverse();
    b.to_lower_hex_string()
}

/// Parses Electrum's hex form of a script hash.
pub fn from_hex(s: &str) -> Option<ScriptHash> {
    let mut b: ScriptHash = Vec::<u8>::from_hex(s).ok()?.try_into().ok()?;
    b.reverse();
    Some(b)
}

/// An output paying a script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Funding {
    /// The output.
    pub outpoint: OutPoint,
    /// Its value in satoshis.
    pub value: u64,
    /// Height of the block holding it.
    pub height: u32,
}

/// The active chain's script index.
#[derive(Default)]
pub struct ScriptIndex {
    history: HashMap<ScriptHash, Vec<(u32, Txid)>>,
    funded: HashMap<ScriptHash, Vec<Funding>>,
    spent: HashMap<OutPoint, (Txid, u32)>,
    touched: Vec<ScriptHash>,
}

impl ScriptIndex {
    /// Indexes the block at `height`; `prevouts[i]` holds the script hashes of the outputs
    /// transaction `i`'s inputs spend (empty for the coinbase). Returns the scripts touched
    /// (what [`ScriptIndex::disconnect`] needs).
    pub(crate) fn connect(
        &mut self,
        height: u32,
        txs: &[Transaction],
        prevouts: &[Vec<ScriptHash>],
    ) -> Vec<ScriptHash> {
        let mut all: HashSet<ScriptHash> = HashSet::new();
        for (i, tx) in txs.iter().enumerate() {
            let txid = tx.compute_txid();
            let mut mine: Vec<ScriptHash> = Vec::new();
            if let Some(p) = prevouts.get(i).filter(|_| !tx.is_coinbase()) {
                mine.extend_from_slice(p);
                for inp in &tx.input {
                    self.spent.insert(inp.previous_output, (txid, height));
                }
            }
            for (vout, o) in tx.output.iter().enumerate() {
                let sh = script_hash(&o.script_pubkey);
                self.funded.entry(sh).or_default().push(Funding {
                    outpoint: OutPoint::new(txid, vout as u32),
                    value: o.value.to_sat(),
                    height,
                });
                mine.push(sh);
            }
            mine.sort_unstable();
            mine.dedup();
            for sh in mine {
                self.history.entry(sh).or_default().push((height, txid));
                all.insert(sh);
            }
        }
        let all: Vec<ScriptHash> = all.into_iter().collect();
        self.touched.extend_from_slice(&all);
        all
    }

    /// Undoes [`ScriptIndex::connect`] of the tip block at `height` (`scripts` as it returned).
    pub(crate) fn disconnect(&mut self, height: u32, txs: &[Transaction], scripts: &[ScriptHash]) {
        for sh in scripts {
            if let Some(h) = self.history.get_mut(sh) {
                while h.last().is_some_and(|e| e.0 >= height) {
                    h.pop();
                }
                if h.is_empty() {
                    self.history.remove(sh);
                }
            }
            if let Some(f) = self.funded.get_mut(sh) {
                while f.last().is_some_and(|e| e.height >= height) {
                    f.pop();
                }
                if f.is_empty() {
                    self.funded.remove(sh);
                }
            }
        }
        for tx in txs.iter().filter(|t| !t.is_coinbase()) {
            for inp in &tx.input {
                if self.spent.get(&inp.previous_output).map(|s| s.1) == Some(height) {
                    self.spent.remove(&inp.previous_output);
                }
            }
        }
        self.touched.extend_from_slice(scripts);
    }

    /// Confirmed transactions touching `sh`, in chain order: (height, txid).
    pub fn history(&self, sh: &ScriptHash) -> &[(u32, Txid)] {
        self.history.get(sh).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Confirmed outputs paying `sh`, in chain order (spent or not).
    pub fn funded(&self, sh: &ScriptHash) -> &[Funding] {
        self.funded.get(sh).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The active-chain transaction (and its height) spending `op`, if any.
    pub fn spender(&self, op: &OutPoint) -> Option<(Txid, u32)> {
        self.spent.get(op).copied()
    }

    /// Scripts touched by blocks connected or disconnected since the last call.
    pub fn drain_touched(&mut self) -> Vec<ScriptHash> {
        std::mem::take(&mut self.touched)
    }
}

/// Most entries the touched-scripts log keeps; a subscriber further behind rechecks all.
pub const LOG_CAP: usize = 100_000;

#[derive(Clone, PartialEq, Eq)]
struct MemEntry {
    scripts: Vec<ScriptHash>,
    /// Spends an output of another mempool transaction (Electrum height -1).
    mem_parent: bool,
}

/// The mempool's script index and the log of touched scripts.
#[derive(Default)]
pub struct ScriptWatch {
    seq: u64,
    log: VecDeque<ScriptHash>,
    generation: Option<u64>,
    mem: HashMap<Txid, MemEntry>,
    by_script: HashMap<ScriptHash, Vec<Txid>>,
}

impl ScriptWatch {
    /// Position of the log's end: scripts touched from now on come after it.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The scripts touched at or after log position `since`, or `None` when the log no
    /// longer reaches back that far (then every subscription must be rechecked).
    pub fn since(&self, since: u64) -> Option<impl Iterator<Item = &ScriptHash>> {
        let first = self.seq - self.log.len() as u64;
        if since < first {
            return None;
        }
        let skip = usize::try_from(since - first).unwrap_or(usize::MAX);
        Some(self.log.iter().skip(skip))
    }

    /// Mempool transactions touching `sh`, in mempool order.
    pub fn mempool_txs(&self, sh: &ScriptHash) -> &[Txid] {
        self.by_script.get(sh).map(Vec::as_slice).unwrap_or(&[])
    }

    fn push(&mut self, sh: ScriptHash) {
        self.log.push_back(sh);
        self.seq += 1;
        while self.log.len() > LOG_CAP {
            self.log.pop_front();
        }
    }

    /// Takes the scripts the chain touched into the log, and re-indexes the mempool when it
    /// changed (logging the scripts of transactions that came, went, or whose parent got
    /// confirmed).
    pub(crate) fn sync(&mut self, chain: &mut Chain, mempool: &Mempool) {
        for sh in chain.scripts.drain_touched() {
            self.push(sh);
        }
        if self.generation == Some(mempool.generation) {
            return;
        }
        self.generation = Some(mempool.generation);
        let mut mem: HashMap<Txid, MemEntry> = HashMap::with_capacity(mempool.txs.len());
        let mut by_script: HashMap<ScriptHash, Vec<Txid>> = HashMap::new();
        for txid in &mempool.order {
            let Some(pd) = mempool.txs.get(txid) else {
                continue;
            };
            let mem_parent = pd
                .tx
                .input
                .iter()
                .any(|i| mempool.txs.contains_key(&i.previous_output.txid));
            let entry = match self.mem.get(txid) {
                Some(e) => MemEntry {
                    scripts: e.scripts.clone(),
                    mem_parent,
                },
                None => {
                    let mut scripts: Vec<ScriptHash> = pd
                        .tx
                        .output
                        .iter()
                        .map(|o| script_hash(&o.script_pubkey))
                        .collect();
                    for i in &pd.tx.input {
                        let op = &i.previous_output;
                        let spk = chain
                            .coin(op)
                            .map(|c| c.txout.script_pubkey.clone())
                            .or_else(|| {
                                mempool
                                    .txs
                                    .get(&op.txid)
                                    .and_then(|p| p.tx.output.get(op.vout as usize))
                                    .map(|o| o.script_pubkey.clone())
                            });
                        if let Some(spk) = spk {
                            scripts.push(script_hash(&spk));
                        }
                    }
                    scripts.sort_unstable();
                    scripts.dedup();
                    MemEntry {
                        scripts,
                        mem_parent,
                    }
                }
            };
            for sh in &entry.scripts {
                by_script.entry(*sh).or_default().push(*txid);
            }
            mem.insert(*txid, entry);
        }
        let mut changed: HashSet<ScriptHash> = HashSet::new();
        for (txid, old) in &self.mem {
            if mem.get(txid) != Some(old) {
                changed.extend(old.scripts.iter().copied());
            }
        }
        for (txid, new) in &mem {
            if self.mem.get(txid) != Some(new) {
                changed.extend(new.scripts.iter().copied());
            }
        }
        self.mem = mem;
        self.by_script = by_script;
        for sh in changed {
            self.push(sh);
        }
    }
}
