//! The bitcoind proxy: listens where a pool expects bitcoind and forwards every request,
//! untouched (batches and credentials included), to the real one. Two answers get rexe's
//! treatment:
//!
//! - `getblocktemplate`: `coinbaseaux.flags` gets the 44-byte merged-mining tag committing to
//!   fresh L2 work, and to the work of every other AuxPoW chain configured, in one aux tree
//!   (MiningCore and ckpool push `coinbaseaux` into the coinbase scriptSig, so they mine the
//!   L2 with no change);
//! - `submitblock`: forwarded, and whatever bitcoind answers (accepted, stale, `high-hash`),
//!   the header and coinbase are checked for a commitment to L2 work and harvested: an AuxPoW
//!   is built and submitted with `submitauxblock` to the L2 node and to every other chain
//!   whose target the block meets.
//!
//! L2 work comes from the L2 node's aux RPC (`createauxblock`), so the proxy runs as its own
//! process next to the pool (`rexe miner proxy`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bitcoin::consensus::encode::deserialize;
use bitcoin::hashes::Hash;
use bitcoin::hex::{DisplayHex, FromHex};
use bitcoin::Block;
use serde_json::{json, Value};

use crate::aggregate::{AggregateOptions, AuxChain, AuxWork, ChainStats, Taken};
use crate::auxpow::{find_commitment, merkle_branch_root, AuxPow, AuxTree, ChainId};
use crate::harvest::{coinbase_branch, Source};
use rexe_rpc::client::{RpcClient, RpcError};

/// Counters of harvested work, by source, plus rejections.
#[derive(Default, Debug, Clone, serde::Serialize)]
pub struct Stats {
    /// L2 blocks sealed by a Bitcoin block on its best chain.
    pub on_chain: u64,
    /// ... by a share that missed Bitcoin's target.
    pub premature: u64,
    /// ... by a valid Bitcoin block that did not become (or stay) the tip.
    pub stale: u64,
    /// Work that met the L2 target for L2 work already sealed by another block, or that the
    /// L2 node dropped because its tip moved (`-8 block hash unknown`): its L2 parent is no
    /// longer the tip.
    pub stale_l2: u64,
    /// Blocks whose coinbase scriptSig is over 100 bytes (Bitcoin's consensus limit): the
    /// pool's configuration leaves no room for the merged-mining tag.
    pub coinbase_too_long: u64,
    /// Commitments found that the L2 refused, by reason.
    pub rejected: HashMap<String, u64>,
    /// Per chain (rexe's L2 as `rexe`, then each aux chain by label).
    pub chains: std::collections::BTreeMap<String, ChainStats>,
}

impl Stats {
    /// The counters of chain `name` (created on first use).
    pub fn chain(&mut self, name: &str, id: ChainId) -> &mut ChainStats {
        self.chains
            .entry(name.to_string())
            .or_insert_with(|| ChainStats {
                chain_id: id.0,
                ..ChainStats::default()
            })
    }
}

/// Bitcoin's consensus limit on a coinbase scriptSig (`bad-cb-length` above).
pub const MAX_COINBASE_SCRIPT_SIG: usize = 100;
/// Bytes the merged-mining tag takes in a coinbase scriptSig: a 1-byte push and 44 bytes.
pub const TAG_SCRIPT_SIG_BYTES: usize = 45;

/// Checks a block's coinbase scriptSig against Bitcoin's 100-byte limit; logs an error
/// (with what the pool must leave free) and returns false when it is over.
pub fn coinbase_script_sig_fits(block: &Block) -> bool {
    let len = block
        .txdata
        .first()
        .and_then(|cb| cb.input.first())
        .map(|i| i.script_sig.len())
        .unwrap_or(0);
    if len > MAX_COINBASE_SCRIPT_SIG {
        tracing::error!(
            len,
            limit = MAX_COINBASE_SCRIPT_SIG,
            tag = TAG_SCRIPT_SIG_BYTES,
            "coinbase scriptSig over Bitcoin's 100-byte limit: the block is invalid (bad-cb-length); the pool must keep its own coinbase data (height, signature, extranonces) within {} bytes beside the merged-mining tag",
            MAX_COINBASE_SCRIPT_SIG - TAG_SCRIPT_SIG_BYTES
        );
        return false;
    }
    true
}

/// Why a [`Harvester`] cannot be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AggregateError {
    /// Two chains share a chain id: they would need the same slot of the aux tree.
    #[error("chains {first} and {second} both have chain id {id:#06x}: one aux tree cannot hold both (a coinbase carries one merged-mining header)")]
    DuplicateChainId {
        /// The id.
        id: u32,
        /// One chain's label.
        first: String,
        /// The other's.
        second: String,
    },
    /// Two chains share a label (their counters would merge).
    #[error("two chains are named {0:?}: give one of them name=")]
    DuplicateName(String),
    /// No tree of at most 2^30 leaves places every chain in its own slot.
    #[error("no aux tree layout fits these {0} chains")]
    NoLayout(usize),
}

/// An aux tree handed out in a template: the tree and which chain holds which leaf.
struct Committed {
    tree: AuxTree,
    /// (index into `Harvester::chains`, leaf).
    leaves: Vec<(usize, [u8; 32])>,
}

/// What the proxy and the watcher share: the chains merge-mined (rexe's L2 first, then the
/// `--aux-chain`s), the work handed out, and the counters.
pub struct Harvester {
    /// The L2 node's RPC (aux methods).
    pub l2: RpcClient,
    /// L2 payout address for `createauxblock`.
    pub payout: String,
    /// Chain id to commit for.
    pub chain_id: ChainId,
    /// Counters.
    pub stats: Mutex<Stats>,
    /// rexe's L2 (index 0) and the other chains.
    chains: Vec<AuxChain>,
    /// Aux trees handed out, by root (internal order).
    trees: Mutex<HashMap<[u8; 32], Arc<Committed>>>,
    /// (chain, parent block) pairs already counted as stale work: the proxy and the watcher
    /// both see a stale block, and it counts once.
    stale_seen: Mutex<std::collections::HashSet<(usize, bitcoin::BlockHash)>>,
    options: AggregateOptions,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Label of rexe's own L2 in per-chain counters.
pub const REXE_LABEL: &str = "rexe";

impl Harvester {
    /// A harvester submitting to `l2`, paying `payout`, committing for `chain_id`.
    pub fn new(l2: RpcClient, payout: impl Into<String>, chain_id: ChainId) -> Harvester {
        Self::with_aux_chains(
            l2,
            payout,
            chain_id,
            Vec::new(),
            AggregateOptions::default(),
        )
        .expect("one chain always fits")
    }

    /// A harvester merge-mining `aux` beside rexe's L2, all in one aux tree. Refuses two
    /// chains with one chain id.
    pub fn with_aux_chains(
        l2: RpcClient,
        payout: impl Into<String>,
        chain_id: ChainId,
        aux: Vec<AuxChain>,
        options: AggregateOptions,
    ) -> Result<Harvester, AggregateError> {
        let payout = payout.into();
        let mut chains = vec![AuxChain::new(
            REXE_LABEL,
            l2.clone(),
            chain_id,
            Some(payout.clone()),
        )];
        chains.extend(aux);
        for (i, a) in chains.iter().enumerate() {
            if chains[..i].iter().any(|b| b.name == a.name) {
                return Err(AggregateError::DuplicateName(a.name.clone()));
            }
            if let Some(b) = chains[..i].iter().find(|b| b.chain_id == a.chain_id) {
                return Err(AggregateError::DuplicateChainId {
                    id: a.chain_id.0,
                    first: b.name.clone(),
                    second: a.name.clone(),
                });
            }
        }
        let ids: Vec<ChainId> = chains.iter().map(|c| c.chain_id).collect();
        AuxTree::layout(&ids).ok_or(AggregateError::NoLayout(ids.len()))?;
        let mut stats = Stats::default();
        for c in &chains {
            stats.chain(&c.name, c.chain_id);
        }
        Ok(Harvester {
            l2,
            payout,
            chain_id,
            stats: Mutex::new(stats),
            chains,
            trees: Mutex::new(HashMap::new()),
            stale_seen: Mutex::new(Default::default()),
            options,
        })
    }

    /// The chains merge-mined: rexe's L2 first.
    pub fn chains(&self) -> &[AuxChain] {
        &self.chains
    }

    fn commit(&self, leaves: Vec<(usize, [u8; 32])>) -> Option<[u8; 44]> {
        let pairs: Vec<(ChainId, [u8; 32])> = leaves
            .iter()
            .map(|(i, h)| (self.chains[*i].chain_id, *h))
            .collect();
        let tree = AuxTree::build(&pairs)?;
        let tag = tree.commitment();
        let mut trees = lock(&self.trees);
        if trees.len() >= 10_000 {
            trees.clear();
        }
        trees.insert(tree.root(), Arc::new(Committed { tree, leaves }));
        Some(tag)
    }

    /// Work for a template: fresh work from every chain, fetched concurrently (a chain
    /// whose RPC fails gives its last good work, or is left out); returns the 44-byte tag
    /// of the one aux tree holding them all. Fails only when no chain has work.
    pub fn new_work(&self) -> Result<[u8; 44], String> {
        let leaves: Vec<(usize, [u8; 32])> = std::thread::scope(|s| {
            let handles: Vec<_> = self
                .chains
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    s.spawn(move || {
                        c.current(c.address.as_deref(), &self.options, &self.stats)
                            .map(|h| (i, h))
                    })
                })
                .collect();
            handles
                .into_iter()
                .filter_map(|h| h.join().ok().flatten())
                .collect()
        });
        if leaves.is_empty() {
            return Err("no chain gave aux work (are their nodes up?)".into());
        }
        {
            let mut st = lock(&self.stats);
            for (i, _) in &leaves {
                let c = &self.chains[*i];
                st.chain(&c.name, c.chain_id).committed += 1;
            }
        }
        self.commit(leaves)
            .ok_or_else(|| "no aux tree layout for these chains".into())
    }

    /// Fresh L2 work (rexe's chain only) paying `payout`: the tag, the L2 block hash (as
    /// printed) and its target.
    pub fn new_work_for(
        &self,
        payout: &str,
    ) -> Result<([u8; 44], String, bitcoin::pow::Target), String> {
        let w = self.chains[0]
            .fetch(Some(payout))
            .map_err(|e| e.to_string())?;
        let tag = self.commit(vec![(0, w.hash)]).ok_or("no aux tree layout")?;
        Ok((tag, w.hash_str, w.target))
    }

    /// Makes rexe's L2 work `w`, committed alone (an aux tree of size 1, whose root is the
    /// work's hash) by a template this harvester did not build, harvestable: the share tap
    /// learns such work from the coinbases it sees.
    pub fn expect_single(&self, w: AuxWork) {
        let leaf = w.hash;
        self.chains[0].adopt(w);
        if !lock(&self.trees).contains_key(&leaf) {
            let _ = self.commit(vec![(0, leaf)]);
        }
    }

    /// Checks `block` for a commitment to an aux tree we handed out and, for every chain
    /// in it whose work's target the block's hash meets, submits that chain's AuxPoW
    /// (chain branch and index of its leaf), to all such chains at once. Returns whether
    /// some chain's block was sealed.
    pub fn harvest(&self, block: &Block, source: Source) -> bool {
        let Some(cb) = block.txdata.first() else {
            return false;
        };
        let txids: Vec<[u8; 32]> = block
            .txdata
            .iter()
            .map(|t| t.compute_txid().to_byte_array())
            .collect();
        self.harvest_parts(cb, &coinbase_branch(&txids), block.header, source)
    }

    /// [`Harvester::harvest`] from the parts an AuxPoW needs: the parent's coinbase, its
    /// merkle branch (leaf 0) and the parent header; what a Stratum share gives.
    pub fn harvest_parts(
        &self,
        cb: &bitcoin::Transaction,
        cb_branch: &[[u8; 32]],
        header: bitcoin::block::Header,
        source: Source,
    ) -> bool {
        let Some(input) = cb.input.first() else {
            return false;
        };
        let Some(root) = find_commitment(input.script_sig.as_bytes()).map(|c| c.root) else {
            return false;
        };
        let Some(committed) = lock(&self.trees).get(&root).cloned() else {
            return false;
        };
        let parent_hash = header.block_hash();
        // Take the work out while it is submitted: the proxy and the watcher (or two
        // shares) racing on it submit it once.
        let mut due = Vec::new();
        for (i, leaf) in &committed.leaves {
            let c = &self.chains[*i];
            match c.take(leaf, parent_hash) {
                Taken::Submit(w) => due.push((*i, w)),
                Taken::AlreadySealed => {
                    {
                        let mut seen = lock(&self.stale_seen);
                        if seen.len() > 10_000 {
                            seen.clear();
                        }
                        if !seen.insert((*i, parent_hash)) {
                            continue;
                        }
                    }
                    let mut st = lock(&self.stats);
                    st.chain(&c.name, c.chain_id).stale_work += 1;
                    if *i == 0 {
                        st.stale_l2 += 1;
                    }
                }
                Taken::Nothing => {}
            }
        }
        if due.is_empty() {
            return false;
        }
        let results: Vec<(usize, AuxWork, Result<Value, RpcError>)> = std::thread::scope(|s| {
            let handles: Vec<_> = due
                .into_iter()
                .map(|(i, w)| {
                    let c = &self.chains[i];
                    let aux =
                        AuxPow::from_parts(cb, cb_branch, header, &committed.tree, c.chain_id);
                    s.spawn(move || {
                        let r = c.submit(&w, &aux.encode().to_lower_hex_string());
                        (i, w, r)
                    })
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        let mut any = false;
        for (i, w, r) in results {
            any |= self.account(i, w, r, parent_hash, source);
        }
        any
    }

    /// Records the outcome of one submission; true when it sealed a block.
    fn account(
        &self,
        i: usize,
        w: AuxWork,
        r: Result<Value, RpcError>,
        parent: bitcoin::BlockHash,
        source: Source,
    ) -> bool {
        let c = &self.chains[i];
        let sealed = matches!(r, Ok(Value::Bool(true)));
        if sealed {
            c.mark_sealed(&w, parent);
        } else if r.as_ref().is_err_and(|e| e.is_transport()) {
            // The chain's node was unreachable: the work may still seal a block later.
            c.put_back(w.clone());
        }
        let mut st = lock(&self.stats);
        let cs = st.chain(&c.name, c.chain_id);
        match &r {
            Ok(Value::Bool(true)) => cs.sealed += 1,
            Ok(other) => {
                let s = other.to_string();
                cs.reject(&format!("answered {s}"));
            }
            // The chain's tip moved since this work was handed out (another harvester, such
            // as a share tap in front of the pool, may have sealed it with the same share):
            // stale work, not a refusal.
            Err(RpcError::Rpc {
                code: -8, message, ..
            }) if message.contains("unknown") => {
                cs.stale_work += 1;
            }
            Err(e @ RpcError::Rpc { code, message, .. }) => {
                cs.errors += 1;
                cs.reject(&format!("error {code}: {message}"));
                tracing::debug!(chain = %c.name, error = %e, "AuxPoW refused");
            }
            Err(e) => {
                cs.errors += 1;
                tracing::warn!(chain = %c.name, error = %e, "could not submit AuxPoW");
            }
        }
        if sealed {
            tracing::info!(chain = %c.name, block = %w.hash_str, parent = %parent, source = source.name(), "harvested work sealed a block");
        }
        if i != 0 {
            return sealed;
        }
        // rexe's own L2: the original counters.
        match r {
            Ok(Value::Bool(true)) => match source {
                Source::OnChain => st.on_chain += 1,
                Source::Premature => st.premature += 1,
                Source::Stale => st.stale += 1,
            },
            Ok(other) => {
                *st.rejected
                    .entry(format!("l2 answered {other}"))
                    .or_default() += 1
            }
            // The L2 tip moved since this work was handed out (the node dropped it): stale
            // L2 work, counted apart from real refusals.
            Err(RpcError::Rpc {
                code: -8, message, ..
            }) if message.contains("unknown") => st.stale_l2 += 1,
            Err(e) => *st.rejected.entry(e.to_string()).or_default() += 1,
        }
        sealed
    }
}

/// How the proxy admits clients.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// `user:password` strings (or cookie contents) accepted from pools, checked on the
    /// request headers before a byte of the body is read: normally bitcoind's own RPC
    /// credentials, which the pool already uses. The request is still forwarded with the
    /// client's credentials, so bitcoind checks them again.
    pub accepted_auth: Vec<String>,
    /// Connection, timeout and body limits (`max_request` bounds a `submitblock`).
    pub limits: rexe_rpc::Limits,
}

impl ProxyConfig {
    /// Accepts `auth` with the proxy's default limits: bodies up to 16 MiB (a 4 MB block
    /// as hex, twice over), 30 s for a request head or body.
    pub fn new(auth: impl Into<String>) -> ProxyConfig {
        ProxyConfig {
            accepted_auth: vec![auth.into()],
            limits: rexe_rpc::Limits {
                max_request: 16 * 1024 * 1024,
                ..rexe_rpc::Limits::http()
            },
        }
    }
}

struct ProxyState {
    upstream: RpcClient,
    harvester: Arc<Harvester>,
    config: ProxyConfig,
}

/// Forwards a client's request to bitcoind, to the same path (`/` or `/wallet/NAME`) with
/// the client's own credentials; bitcoind's status and body, as they are.
async fn forward(
    upstream: &RpcClient,
    path: &str,
    headers: &HeaderMap,
    body: Vec<u8>,
) -> Result<(u16, Vec<u8>), String> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (upstream, path) = (upstream.clone(), path.to_owned());
    tokio::task::spawn_blocking(move || upstream.post(&path, &body, auth.as_deref()))
        .await
        .map_err(|e| format!("internal error: {e}"))?
        .map_err(|e| e.to_string())
}

/// `submitauxshare header coinbase branch`: the parent header (80 bytes, hex), its coinbase
/// transaction (hex) and the coinbase's merkle branch (hashes in internal byte order, hex)
/// of a share whose coinbase commits to an aux tree this proxy handed out. Every chain in
/// the tree whose target the header meets gets its AuxPoW, as for a submitted block; true
/// if one was sealed. The branch must lead to the header's merkle root.
pub fn submit_aux_share(h: &Harvester, params: &Value) -> Result<bool, String> {
    let p = params
        .as_array()
        .filter(|p| p.len() == 3)
        .ok_or("expected [header, coinbase, branch]")?;
    let bytes = |v: &Value, what: &str| -> Result<Vec<u8>, String> {
        v.as_str()
            .and_then(|s| Vec::<u8>::from_hex(s).ok())
            .ok_or_else(|| format!("{what} must be hex"))
    };
    let header: bitcoin::block::Header = deserialize(&bytes(&p[0], "header")?)
        .map_err(|e| format!("header does not decode: {e}"))?;
    let coinbase: bitcoin::Transaction = deserialize(&bytes(&p[1], "coinbase")?)
        .map_err(|e| format!("coinbase does not decode: {e}"))?;
    if !coinbase.is_coinbase() {
        return Err("the transaction is not a coinbase".into());
    }
    let branch = p[2]
        .as_array()
        .filter(|b| b.len() <= 32)
        .ok_or("branch must be an array of at most 32 hashes")?
        .iter()
        .map(|v| {
            bytes(v, "branch hash")?
                .try_into()
                .map_err(|_| "branch hashes are 32 bytes".to_string())
        })
        .collect::<Result<Vec<[u8; 32]>, String>>()?;
    let root = merkle_branch_root(coinbase.compute_txid().to_byte_array(), &branch, 0);
    if root != header.merkle_root.to_byte_array() {
        return Err("the coinbase and branch do not lead to the header's merkle root".into());
    }
    Ok(h.harvest_parts(&coinbase, &branch, header, Source::Premature))
}

async fn handle(
    State(st): State<Arc<ProxyState>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // Authenticate on the headers alone: an unauthenticated body is never read, forwarded
    // or harvested.
    let accepted: Vec<&str> = st.config.accepted_auth.iter().map(String::as_str).collect();
    if !rexe_rpc::http::authorized(&headers, &accepted) {
        return rexe_rpc::http::unauthorized();
    }
    let bytes = match rexe_rpc::http::read_body(body, &st.config.limits).await {
        Ok(b) => b,
        Err(e) => return e.status().into_response(),
    };
    // Only a single request is looked into (a batch is forwarded as it is).
    let req = match rexe_rpc::jsonrpc::parse_body(&bytes, usize::MAX) {
        Ok(rexe_rpc::jsonrpc::Body::Single(Ok(r))) => Some(r),
        _ => None,
    };
    let method = req.as_ref().map(|r| r.method.clone());
    // A share for an aux tree this proxy handed out, sent by whoever sees shares (a pool's
    // share logger, a share tap): Stratum shares never reach bitcoind. Answered here.
    if let Some(r) = req.as_ref().filter(|r| r.method == "submitauxshare") {
        let (id, v2, params) = (r.id.clone(), r.v2, r.params.clone());
        let h = st.harvester.clone();
        let out = tokio::task::spawn_blocking(move || submit_aux_share(&h, &params))
            .await
            .unwrap_or_else(|e| Err(format!("internal error: {e}")));
        let (status, reply) = match out {
            Ok(sealed) => (
                StatusCode::OK,
                rexe_rpc::jsonrpc::response(id, v2, Ok(json!({ "sealed": sealed }))),
            ),
            Err(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                rexe_rpc::jsonrpc::response(id, v2, Err(rexe_rpc::jsonrpc::error_object(-22, e))),
            ),
        };
        return rexe_rpc::http::json_line(status, &reply);
    }
    let (status, payload) = match forward(&st.upstream, uri.path(), &headers, bytes.to_vec()).await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "upstream bitcoind unreachable");
            let v = json!({"result": null, "error": {"code": -28, "message": e}, "id": null});
            return (StatusCode::BAD_GATEWAY, axum::Json(v)).into_response();
        }
    };
    let mut out = payload;
    match method.as_deref() {
        Some("getblocktemplate") if status == 200 => {
            if let Ok(mut v) = serde_json::from_slice::<Value>(&out) {
                let h = st.harvester.clone();
                match tokio::task::spawn_blocking(move || h.new_work()).await {
                    Ok(Ok(tag)) => {
                        if v["result"]["coinbaseaux"].is_null() {
                            v["result"]["coinbaseaux"] = json!({});
                        }
                        v["result"]["coinbaseaux"]["flags"] = json!(tag.to_lower_hex_string());
                        // Framed as bitcoind frames its replies: one JSON text and a
                        // newline (ckpool reads replies line by line).
                        out = v.to_string().into_bytes();
                        out.push(b'\n');
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "no aux work for this template")
                    }
                    Err(e) => tracing::warn!(error = %e, "L2 work task failed"),
                }
            }
        }
        // bitcoind refused the caller: nothing it sent is harvested.
        Some("submitblock") if status != 401 && status != 403 => {
            let raw = req
                .as_ref()
                .and_then(|r| r.params[0].as_str())
                .and_then(|h| Vec::<u8>::from_hex(h).ok());
            if let Some(block) = raw.and_then(|r| deserialize::<Block>(&r).ok()) {
                if !coinbase_script_sig_fits(&block) {
                    st.harvester
                        .stats
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .coinbase_too_long += 1;
                }
                let answer: Value = serde_json::from_slice::<Value>(&out)
                    .map(|v| v["result"].clone())
                    .unwrap_or(Value::Null);
                // A null result with an error status is bitcoind's error reply.
                let source = match &answer {
                    Value::Null if status != 200 => Source::Premature,
                    a => Source::from_submitblock(a),
                };
                let h = st.harvester.clone();
                let _ = tokio::task::spawn_blocking(move || h.harvest(&block, source)).await;
            }
        }
        _ => {}
    }
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
        [(header::CONTENT_TYPE, "application/json")],
        out,
    )
        .into_response()
}

async fn stats(State(st): State<Arc<ProxyState>>) -> Response {
    let s = st
        .harvester
        .stats
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    axum::Json(json!(s)).into_response()
}

async fn metrics(State(st): State<Arc<ProxyState>>) -> Response {
    let s = st
        .harvester
        .stats
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut m = rexe_rpc::metrics::Scrape::new();
    m.counters(
        "rexe_harvested_total",
        "L2 blocks sealed by harvested work, by source.",
        &["source"],
        [
            ("on-chain", s.on_chain),
            ("premature", s.premature),
            ("stale", s.stale),
        ]
        .map(|(src, n)| (vec![src], n as f64)),
    )
    .counter(
        "rexe_harvest_stale_l2_total",
        "Work meeting the L2 target for L2 work already sealed or dropped by a newer L2 tip.",
        s.stale_l2 as f64,
    )
    .counter(
        "rexe_coinbase_too_long_total",
        "Submitted blocks whose coinbase scriptSig is over 100 bytes.",
        s.coinbase_too_long as f64,
    )
    .counter(
        "rexe_harvest_rejected_total",
        "Commitments the L2 refused.",
        s.rejected.values().sum::<u64>() as f64,
    );
    chain_metrics(&mut m, &s);
    (
        [(header::CONTENT_TYPE, rexe_rpc::metrics::CONTENT_TYPE)],
        m.render(),
    )
        .into_response()
}

/// A per-chain counter series: name, help, value.
type Series = (&'static str, &'static str, fn(&ChainStats) -> u64);

/// The per-chain series (label `chain`).
fn chain_metrics(m: &mut rexe_rpc::metrics::Scrape, s: &Stats) {
    let series: [Series; 4] = [
        (
            "rexe_aux_sealed_total",
            "Blocks of each merge-mined chain sealed by harvested work.",
            |c| c.sealed,
        ),
        (
            "rexe_aux_errors_total",
            "Failed aux RPC calls (unreachable, timeouts, errors, malformed work), by chain.",
            |c| c.errors,
        ),
        (
            "rexe_aux_stale_work_total",
            "Work meeting a chain's target that another parent had already sealed.",
            |c| c.stale_work,
        ),
        (
            "rexe_aux_committed_total",
            "Templates whose aux tree held the chain's work.",
            |c| c.committed,
        ),
    ];
    for (name, help, f) in series {
        m.counters(
            name,
            help,
            &["chain"],
            s.chains
                .iter()
                .map(|(chain, c)| (vec![chain.as_str()], f(c) as f64)),
        );
    }
    m.counters(
        "rexe_aux_rejected_total",
        "AuxPoW a chain refused, by chain and reason.",
        &["chain", "reason"],
        s.chains.iter().flat_map(|(chain, c)| {
            c.rejected
                .iter()
                .map(move |(reason, n)| (vec![chain.as_str(), reason.as_str()], *n as f64))
        }),
    );
}

/// Serves the proxy on `listen` (returns the bound address), forwarding to `upstream`.
pub async fn serve(
    listen: SocketAddr,
    upstream: String,
    harvester: Arc<Harvester>,
    config: ProxyConfig,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let limits = config.limits.clone();
    let st = Arc::new(ProxyState {
        upstream: RpcClient::new(upstream, ""),
        harvester,
        config,
    });
    let app = Router::new()
        .route("/", post(handle))
        .route("/wallet/{name}", post(handle))
        .route("/stats", axum::routing::get(stats))
        .route("/metrics", axum::routing::get(metrics))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(st);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(rexe_rpc::serve_http("proxy", listener, app, limits));
    Ok((addr, task))
}
