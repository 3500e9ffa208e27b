//! Script-only descriptors, `addr(ADDRESS)` and `raw(HEX)`: an output script and no keys,
//! which Core's watch-only wallets import to follow an address or a script.
//!
//! A wallet part is a bdk wallet, and bdk wallets take miniscript descriptors only, so a
//! wallet follows each such script with a [`Watch`] of its own: bdk_chain's transaction
//! graph indexed by that one script and a local chain of the node's blocks. A watch is not
//! persisted: its settings are the descriptor's row in `rexe_descriptors`, and when the
//! wallet loads it scans the active chain (which the regtest node keeps whole) from the
//! earliest timestamp it was imported with, so it finds again what it had found.
//!
//! Its coins are the wallet's (`listunspent`, balances, `listtransactions`) but, having no
//! keys and no known way to satisfy them, never fund a payment: Core does not select
//! unsolvable coins either.

use std::sync::Arc;

use bdk_wallet::chain::indexer::spk_txout::SpkTxOutIndex;
use bdk_wallet::chain::local_chain::LocalChain;
use bdk_wallet::chain::tx_graph::CanonicalTx;
use bdk_wallet::chain::{
    CanonicalizationParams, ChainPosition, ConfirmationBlockTime, IndexedTxGraph,
};
use bitcoin::address::NetworkUnchecked;
use bitcoin::hex::FromHex;
use bitcoin::{Address, Amount, Network, OutPoint, ScriptBuf, Transaction, TxOut, Txid};

use super::{descriptor, param, Res};
use crate::chain::Chain;
use crate::mempool::Mempool;

/// A script-only descriptor: `addr(ADDRESS)` or `raw(HEX)`, read as Core's parser reads
/// them, with its messages (code -5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptDesc {
    /// The descriptor as given, without its checksum.
    pub text: String,
    /// The output script it stands for.
    pub script: ScriptBuf,
}

impl ScriptDesc {
    /// Whether `body` (no checksum) is an `addr()` or `raw()` descriptor, at the top level
    /// or inside another (which Core refuses).
    fn names_one(body: &str) -> bool {
        body.starts_with("addr(")
            || body.starts_with("raw(")
            || body.contains("(addr(")
            || body.contains("(raw(")
    }

    /// Reads `s` (checksum required or not) if it is an `addr()`/`raw()` descriptor; `None`
    /// for any other descriptor.
    pub fn parse(s: &str, require_checksum: bool) -> Option<Res<ScriptDesc>> {
        let body = s.split('#').next().unwrap_or(s);
        if !Self::names_one(body) {
            return None;
        }
        Some(descriptor::checked_body(s, require_checksum).and_then(Self::parse_body))
    }

    fn parse_body(body: &str) -> Res<ScriptDesc> {
        let inner = |f: &str| body.strip_prefix(f).and_then(|b| b.strip_suffix(')'));
        let script = if let Some(a) = inner("addr(") {
            let addr = a
                .parse::<Address<NetworkUnchecked>>()
                .ok()
                .and_then(|a| a.require_network(Network::Regtest).ok())
                .ok_or_else(|| param(-5, "Address is not valid"))?;
            addr.script_pubkey()
        } else if let Some(h) = inner("raw(") {
            let bytes = Vec::<u8>::from_hex(h)
                .ok()
                .filter(|b| !b.is_empty())
                .ok_or_else(|| param(-5, "Raw script is not hex"))?;
            ScriptBuf::from_bytes(bytes)
        } else if body.starts_with("addr(") || body.starts_with("raw(") {
            return Err(param(
                -5,
                format!("'{body}' is not a valid descriptor function"),
            ));
        } else {
            let f = if body.contains("(addr(") {
                "addr"
            } else {
                "raw"
            };
            return Err(param(-5, format!("Can only have {f}() at top level")));
        };
        Ok(ScriptDesc {
            text: body.to_string(),
            script,
        })
    }

    /// The script's address, if it has one (`raw()` of a non-standard script has none).
    pub fn address(&self) -> Option<Address> {
        Address::from_script(&self.script, Network::Regtest).ok()
    }
}

/// One followed script: its settings (`importdescriptors`) and what the chain and the
/// mempool hold for it.
pub struct Watch {
    /// Its row in `rexe_descriptors`.
    pub id: i64,
    pub desc: ScriptDesc,
    /// Its outputs are change (`internal`).
    pub internal: bool,
    /// The timestamp it was last imported with (`listdescriptors`).
    pub timestamp: i64,
    /// The earliest timestamp it was imported with: the scan after a load starts there.
    pub scan_from: i64,
    /// The first height its scan reads; `None` until the next sync works it out.
    first: Option<u32>,
    graph: IndexedTxGraph<ConfirmationBlockTime, SpkTxOutIndex<()>>,
    chain: Option<LocalChain>,
}

/// A transaction of a watched script, with its place in the chain (bdk's shape).
pub type WatchTx<'a> = CanonicalTx<'a, Arc<Transaction>, ConfirmationBlockTime>;

impl Watch {
    /// A watch that scans from `scan_from` at its first sync.
    pub fn new(id: i64, desc: ScriptDesc, internal: bool, timestamp: i64, scan_from: i64) -> Watch {
        let mut graph = IndexedTxGraph::new(SpkTxOutIndex::default());
        graph.index.insert_spk((), desc.script.clone());
        Watch {
            id,
            desc,
            internal,
            timestamp,
            scan_from,
            first: None,
            graph,
            chain: None,
        }
    }

    /// Scans again from `timestamp` if that is earlier than it did (a re-import), keeping
    /// what it found.
    pub fn rescan_from(&mut self, timestamp: i64) {
        if timestamp < self.scan_from {
            *self = Watch::new(
                self.id,
                self.desc.clone(),
                self.internal,
                self.timestamp,
                timestamp,
            );
        }
    }

    /// Brings the watch up to the node's active chain and mempool (`seen`: the time this
    /// view of the mempool counts as seen).
    pub fn sync(&mut self, chain: &Chain, mempool: &Mempool, seen: u64) -> Res<()> {
        let first = *self
            .first
            .get_or_insert_with(|| super::rescan_start(chain, self.scan_from).max(1));
        let local = self
            .chain
            .get_or_insert_with(|| LocalChain::from_genesis_hash(chain.active[0]).0);
        // Above the highest block still on the active chain (a reorg drops the others).
        let start = local
            .iter_checkpoints()
            .find(|cp| chain.active.get(cp.height() as usize) == Some(&cp.hash()))
            .map_or(1, |cp| cp.height() + 1);
        // Blocks the active chain dropped (`invalidateblock`, a reorg) go, even when no
        // block has replaced them yet: their transactions are unconfirmed again.
        if let Some(stale) = local
            .iter_checkpoints()
            .take_while(|cp| cp.height() >= start)
            .last()
        {
            let _ = local
                .disconnect_from(stale.block_id())
                .map_err(|e| param(-4, format!("watch {}: {e}", self.desc.text)))?;
        }
        for h in start..=chain.height() {
            let block = &chain.blocks[&chain.active[h as usize]].block;
            local
                .apply_header(&block.header, h)
                .map_err(|e| param(-4, format!("watch {}: {e}", self.desc.text)))?;
            if h >= first {
                // Change sets are for persisting; a watch is rebuilt at load instead.
                let _ = self.graph.apply_block_relevant(block, h);
            }
        }
        let pooled = mempool.txs.values().map(|p| (p.tx.clone(), seen));
        let _ = self.graph.batch_insert_relevant_unconfirmed(pooled);
        let gone: Vec<(Txid, u64)> = self
            .transactions()
            .filter(|t| !t.chain_position.is_confirmed())
            .map(|t| t.tx_node.txid)
            .filter(|id| !mempool.txs.contains_key(id))
            .map(|id| (id, seen))
            .collect();
        if !gone.is_empty() {
            let _ = self.graph.batch_insert_relevant_evicted_at(gone);
        }
        Ok(())
    }

    /// The script's transactions in the active chain and the mempool.
    pub fn transactions(&self) -> impl Iterator<Item = WatchTx<'_>> {
        self.chain.iter().flat_map(|c| {
            self.graph.graph().list_canonical_txs(
                c,
                c.tip().block_id(),
                CanonicalizationParams::default(),
            )
        })
    }

    /// One of the script's transactions.
    pub fn get_tx(&self, txid: Txid) -> Option<WatchTx<'_>> {
        self.transactions().find(|t| t.tx_node.txid == txid)
    }

    /// What `tx` spends from and pays to the script.
    pub fn sent_and_received(&self, tx: &Transaction) -> (Amount, Amount) {
        self.graph.index.sent_and_received(tx, ..)
    }

    /// Unspent outputs paying the script: outpoint, output, place in the chain and whether
    /// a coinbase made it.
    pub fn unspent(&self) -> Vec<(OutPoint, TxOut, ChainPosition<ConfirmationBlockTime>, bool)> {
        let Some(c) = &self.chain else {
            return Vec::new();
        };
        let outpoints = self.graph.index.outpoints().iter().cloned();
        self.graph
            .graph()
            .filter_chain_unspents(
                c,
                c.tip().block_id(),
                CanonicalizationParams::default(),
                outpoints,
            )
            .map(|(_, o)| (o.outpoint, o.txout, o.chain_position, o.is_on_coinbase))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::ScriptDesc;

    fn parse(s: &str) -> Result<ScriptDesc, String> {
        ScriptDesc::parse(s, false)
            .expect("a script descriptor")
            .map_err(|e| e.to_string())
    }

    #[test]
    fn addr_and_raw_read_as_core_reads_them() {
        let a = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";
        let d = parse(&format!("addr({a})")).unwrap();
        assert_eq!(d.address().unwrap().to_string(), a);
        assert_eq!(d.text, format!("addr({a})"));
        let raw = parse("raw(6a0401020304)").unwrap();
        assert!(raw.address().is_none(), "OP_RETURN has no address");
        assert_eq!(raw.script.as_bytes(), [0x6a, 4, 1, 2, 3, 4]);
        // A mainnet address is not a regtest one.
        let main = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4";
        assert_eq!(
            parse(&format!("addr({main})")).unwrap_err(),
            "Address is not valid"
        );
        assert_eq!(parse("addr(nonsense)").unwrap_err(), "Address is not valid");
        assert_eq!(parse("raw(6a0)").unwrap_err(), "Raw script is not hex");
        assert_eq!(parse("raw(zz)").unwrap_err(), "Raw script is not hex");
        assert_eq!(parse("raw()").unwrap_err(), "Raw script is not hex");
        assert_eq!(
            parse(&format!("sh(addr({a}))")).unwrap_err(),
            "Can only have addr() at top level"
        );
        assert_eq!(
            parse("wsh(raw(51))").unwrap_err(),
            "Can only have raw() at top level"
        );
        assert!(ScriptDesc::parse("wpkh(02aa)", false).is_none());
        // The checksum is Core's.
        assert!(ScriptDesc::parse("raw(51)", true)
            .unwrap()
            .is_err_and(|e| e.to_string() == "Missing checksum"));
        let sum = bdk_wallet::miniscript::descriptor::checksum::desc_checksum("raw(51)").unwrap();
        assert!(ScriptDesc::parse(&format!("raw(51)#{sum}"), true)
            .unwrap()
            .is_ok());
    }
}
