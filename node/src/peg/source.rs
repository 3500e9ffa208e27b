//! Where the peg agents read Bitcoin from, as real deployments do: bitcoind's JSON-RPC
//! (`getblockcount`, `getblockhash`, `getblockheader`, `getrawtransaction`, `getblock`) or an
//! Electrum server (`blockchain.headers.subscribe`, `blockchain.block.header(s)`,
//! `blockchain.scripthash.get_history`, `blockchain.transaction.get`,
//! `blockchain.transaction.get_merkle`).

use std::sync::Mutex;

use bitcoin::block::Header;
use bitcoin::hashes::Hash;
use bitcoin::hex::FromHex;
use bitcoin::{BlockHash, Script, TxMerkleNode, Txid};
use rexe_bridge::call::PegCall;
use rexe_bridge::peg::MatchId;
use rexe_bridge::spv;
use rexe_rpc::client::{RpcClient, RpcError};
use rexe_wallet::electrum::{self as ec, ElectrumApi};
use serde_json::json;

/// Why a Bitcoin source could not answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The source's URL is not one we can use.
    #[error("{0}")]
    Url(String),
    /// A bitcoind call failed (transport, HTTP or its error answer).
    #[error("bitcoind {what}")]
    Bitcoind {
        /// The call.
        what: String,
        /// Cause.
        #[source]
        source: RpcError,
    },
    /// An Electrum request failed; a broken connection is made again at the next call.
    #[error("Electrum {url} {what}: {message}")]
    Electrum {
        /// The server.
        url: String,
        /// The request, or "connect".
        what: String,
        /// The client's error.
        message: String,
    },
    /// The source answered something its protocol does not allow.
    #[error("{0}")]
    Malformed(String),
}

/// A Bitcoin source's result.
pub type Result<T, E = SourceError> = std::result::Result<T, E>;

/// Names the bitcoind call whose failure is returned.
fn at(what: impl FnOnce() -> String) -> impl FnOnce(RpcError) -> SourceError {
    move |source| SourceError::Bitcoind {
        what: what(),
        source,
    }
}

/// An answer the protocol does not allow.
fn malformed(what: impl std::fmt::Display) -> SourceError {
    SourceError::Malformed(what.to_string())
}

/// Where a confirmed transaction sits, with what a claim needs.
#[derive(Debug, Clone)]
pub struct TxProof {
    /// Consensus-encoded transaction.
    pub raw: Vec<u8>,
    /// Its block.
    pub block: BlockHash,
    /// Its block's height.
    pub height: u32,
    /// Merkle branch (internal byte order).
    pub branch: Vec<TxMerkleNode>,
    /// Position in the block.
    pub position: u32,
    /// The block's coinbase transaction, consensus-encoded.
    pub coinbase: Vec<u8>,
    /// The coinbase's Merkle branch (index 0), which pins the tree's depth.
    pub coinbase_branch: Vec<TxMerkleNode>,
}

impl TxProof {
    /// The peg call claiming `match_ids` with this proof.
    pub fn claim(self, match_ids: Vec<MatchId>) -> PegCall {
        PegCall::Claim {
            raw_tx: self.raw,
            block_hash: self.block,
            branch: self.branch,
            position: self.position,
            coinbase_tx: self.coinbase,
            coinbase_branch: self.coinbase_branch,
            match_ids,
        }
    }
}

fn nodes(branch: Vec<[u8; 32]>) -> Vec<TxMerkleNode> {
    branch
        .into_iter()
        .map(TxMerkleNode::from_byte_array)
        .collect()
}

/// A view of Bitcoin's best chain.
pub trait BitcoinSource {
    /// Height of the best chain's tip.
    fn tip_height(&self) -> Result<u32>;
    /// Hash of the best-chain block at `height`.
    fn hash_at(&self, height: u32) -> Result<BlockHash>;
    /// Up to `count` best-chain headers from `from` on.
    fn headers(&self, from: u32, count: u32) -> Result<Vec<Header>>;
    /// The inclusion proof of `txid` once it is in a best-chain block (`Ok(None)` before).
    /// `pays` is a script one of its outputs pays: Electrum servers index by script.
    fn proof(&self, txid: Txid, pays: &Script) -> Result<Option<TxProof>>;
    /// A short name for logs ("bitcoind 127.0.0.1:18443", "electrum tcp://...").
    fn describe(&self) -> String;
}

impl BitcoinSource for RpcClient {
    fn tip_height(&self) -> Result<u32> {
        let v = self
            .call("getblockcount", json!([]))
            .map_err(at(|| "getblockcount".into()))?;
        v.as_u64()
            .and_then(|h| u32::try_from(h).ok())
            .ok_or_else(|| malformed(format!("bitcoind answered getblockcount with {v}")))
    }

    fn hash_at(&self, height: u32) -> Result<BlockHash> {
        let v = self
            .call("getblockhash", json!([height]))
            .map_err(at(|| format!("getblockhash {height}")))?;
        v.as_str()
            .unwrap_or_default()
            .parse()
            .map_err(|e| malformed(format!("bitcoind answered getblockhash with {v}: {e}")))
    }

    fn headers(&self, from: u32, count: u32) -> Result<Vec<Header>> {
        let mut out = Vec::with_capacity(count as usize);
        for h in from..from.saturating_add(count) {
            let hash = self.hash_at(h)?;
            let hex = self
                .call("getblockheader", json!([hash.to_string(), false]))
                .map_err(at(|| format!("getblockheader {hash}")))?;
            let bytes = Vec::<u8>::from_hex(hex.as_str().unwrap_or_default()).map_err(|e| {
                malformed(format!("bitcoind returned a header that is not hex: {e}"))
            })?;
            out.push(
                bitcoin::consensus::deserialize(&bytes).map_err(|e| {
                    malformed(format!("bitcoind returned an undecodable header: {e}"))
                })?,
            );
        }
        Ok(out)
    }

    /// Needs `-txindex` on a real bitcoind for transactions its wallet does not know.
    fn proof(&self, txid: Txid, _pays: &Script) -> Result<Option<TxProof>> {
        let v: rexe_rpc::core::RawTransaction =
            match self.call_as("getrawtransaction", json!([txid.to_string(), true])) {
                Ok(v) => v,
                // Unknown: not broadcast yet, or dropped.
                Err(RpcError::Rpc { code: -5, .. }) => return Ok(None),
                Err(e) => return Err(at(|| format!("getrawtransaction {txid}"))(e)),
            };
        let Some(block) = v.blockhash.as_deref() else {
            return Ok(None);
        };
        let raw = Vec::<u8>::from_hex(&v.hex).map_err(|e| {
            malformed(format!(
                "bitcoind returned a transaction that is not hex: {e}"
            ))
        })?;
        let b: rexe_rpc::core::BlockSummary = self
            .call_as("getblock", json!([block, 1]))
            .map_err(at(|| format!("getblock {block}")))?;
        if b.confirmations < 1 {
            return Ok(None); // on a stale branch
        }
        let txids: Vec<Txid> =
            b.tx.iter()
                .map(|t| t.parse())
                .collect::<Result<_, _>>()
                .map_err(|e| malformed(format!("getblock returned a bad txid: {e}")))?;
        let position = txids
            .iter()
            .position(|t| *t == txid)
            .ok_or_else(|| malformed(format!("{txid} not in block {block}")))?;
        // The coinbase by block hash: works without -txindex.
        let cb = self
            .call(
                "getrawtransaction",
                json!([txids[0].to_string(), false, block]),
            )
            .map_err(at(|| format!("getrawtransaction of {block}'s coinbase")))?;
        let coinbase = Vec::<u8>::from_hex(cb.as_str().unwrap_or_default())
            .map_err(|e| malformed(format!("bitcoind returned a coinbase that is not hex: {e}")))?;
        Ok(Some(TxProof {
            raw,
            block: block
                .parse()
                .map_err(|e| malformed(format!("bad block hash {block}: {e}")))?,
            height: u32::try_from(b.height)
                .map_err(|_| malformed(format!("block height {}", b.height)))?,
            branch: nodes(spv::branch_for(&txids, position)),
            position: position as u32,
            coinbase,
            coinbase_branch: nodes(spv::branch_for(&txids, 0)),
        }))
    }

    fn describe(&self) -> String {
        format!("bitcoind {}", self.addr())
    }
}

/// An Electrum server (`tcp://HOST:PORT` or `ssl://HOST:PORT`), reconnected on demand: a
/// server that went away is retried at the next call, with the error naming the URL.
pub struct Electrum {
    url: String,
    client: Mutex<Option<ec::Client>>,
}

impl Electrum {
    /// A source for `url` (connects at the first call).
    pub fn new(url: &str) -> Result<Self> {
        if !(url.starts_with("tcp://") || url.starts_with("ssl://")) {
            return Err(SourceError::Url(format!(
                "Electrum URL {url:?} must be tcp://HOST:PORT or ssl://HOST:PORT"
            )));
        }
        Ok(Electrum {
            url: url.to_string(),
            client: Mutex::new(None),
        })
    }

    fn with<T>(&self, what: &str, f: impl Fn(&ec::Client) -> Result<T, ec::Error>) -> Result<T> {
        let mut guard = self.client.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            let config = ec::ConfigBuilder::new()
                .timeout(Some(std::time::Duration::from_secs(10)))
                .retry(1)
                .build();
            let c =
                ec::Client::from_config(&self.url, config).map_err(|e| SourceError::Electrum {
                    url: self.url.clone(),
                    what: "connect".into(),
                    message: e.to_string(),
                })?;
            *guard = Some(c);
        }
        let c = guard.as_ref().expect("connected above");
        match f(c) {
            Ok(v) => Ok(v),
            Err(e) => {
                // A protocol-level refusal keeps the connection; anything else reconnects.
                if !matches!(e, ec::Error::Protocol(_)) {
                    *guard = None;
                }
                Err(SourceError::Electrum {
                    url: self.url.clone(),
                    what: what.into(),
                    message: e.to_string(),
                })
            }
        }
    }
}

impl BitcoinSource for Electrum {
    fn tip_height(&self) -> Result<u32> {
        let n = self.with("blockchain.headers.subscribe", |c| {
            c.block_headers_subscribe()
        })?;
        Ok(n.height as u32)
    }

    fn hash_at(&self, height: u32) -> Result<BlockHash> {
        let h = self.with("blockchain.block.header", |c| {
            c.block_header(height as usize)
        })?;
        Ok(h.block_hash())
    }

    fn headers(&self, from: u32, count: u32) -> Result<Vec<Header>> {
        let mut out = Vec::with_capacity(count as usize);
        // Servers cap a reply (electrs and rexe-regtest: 2016 headers).
        while (out.len() as u32) < count {
            let start = from + out.len() as u32;
            let want = (count - out.len() as u32).min(2016);
            let r = self.with("blockchain.block.headers", |c| {
                c.block_headers(start as usize, want as usize)
            })?;
            if r.headers.is_empty() {
                break;
            }
            out.extend(r.headers);
        }
        Ok(out)
    }

    fn proof(&self, txid: Txid, pays: &Script) -> Result<Option<TxProof>> {
        let history = self.with("blockchain.scripthash.get_history", |c| {
            c.script_get_history(pays)
        })?;
        let Some(height) = history
            .iter()
            .find(|h| h.tx_hash == txid)
            .and_then(|h| u32::try_from(h.height).ok())
            .filter(|h| *h > 0)
        else {
            return Ok(None);
        };
        let m = self.with("blockchain.transaction.get_merkle", |c| {
            c.transaction_get_merkle(&txid, height as usize)
        })?;
        let header = self.with("blockchain.block.header", |c| {
            c.block_header(m.block_height)
        })?;
        let raw = self.with("blockchain.transaction.get", |c| {
            c.transaction_get_raw(&txid)
        })?;
        // The block's coinbase with its branch: `blockchain.transaction.id_from_pos` at 0.
        let cb = self.with("blockchain.transaction.id_from_pos", |c| {
            c.txid_from_pos_with_merkle(m.block_height, 0)
        })?;
        let coinbase = self.with("blockchain.transaction.get", |c| {
            c.transaction_get_raw(&cb.tx_hash)
        })?;
        Ok(Some(TxProof {
            raw,
            block: header.block_hash(),
            height: m.block_height as u32,
            branch: electrum_branch(&m.merkle),
            position: m.pos as u32,
            coinbase,
            coinbase_branch: electrum_branch(&cb.merkle),
        }))
    }

    fn describe(&self) -> String {
        format!("electrum {}", self.url)
    }
}

/// A branch as Electrum sends it (hashes in display, i.e. reversed, order).
fn electrum_branch(merkle: &[[u8; 32]]) -> Vec<TxMerkleNode> {
    merkle
        .iter()
        .map(|b| {
            let mut b = *b;
            b.reverse();
            TxMerkleNode::from_byte_array(b)
        })
        .collect()
}

impl<T: BitcoinSource + ?Sized> BitcoinSource for Box<T> {
    fn tip_height(&self) -> Result<u32> {
        (**self).tip_height()
    }
    fn hash_at(&self, height: u32) -> Result<BlockHash> {
        (**self).hash_at(height)
    }
    fn headers(&self, from: u32, count: u32) -> Result<Vec<Header>> {
        (**self).headers(from, count)
    }
    fn proof(&self, txid: Txid, pays: &Script) -> Result<Option<TxProof>> {
        (**self).proof(txid, pays)
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
}
