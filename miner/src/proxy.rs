//! The bitcoind proxy: listens where a pool expects bitcoind and forwards every request,
//! untouched (batches and credentials included), to the real one. Two answers get rexe's
//! treatment:
//!
//! - `getblocktemplate`: `coinbaseaux.flags` gets the 44-byte merged-mining tag committing to
//!   fresh L2 work (MiningCore and ckpool push `coinbaseaux` into the coinbase scriptSig, so
//!   they mine the L2 with no change);
//! - `submitblock`: forwarded, and whatever bitcoind answers (accepted, stale, `high-hash`),
//!   the header and coinbase are checked for a commitment to L2 work and harvested: an AuxPoW
//!   is built and submitted to the L2 node with `submitauxblock`.
//!
//! L2 work comes from the L2 node's aux RPC (`createauxblock`), so the proxy runs as its own
//! process next to the pool (`rexe miner proxy`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::{to_bytes, Body};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bitcoin::consensus::encode::deserialize;
use bitcoin::hashes::Hash;
use bitcoin::Block;
use serde_json::{json, Value};

use crate::auxpow::{AuxPow, AuxTree, ChainId, MERGED_MINING_HEADER};
use crate::bitcoind::Bitcoind;
use crate::harvest::{coinbase_branch, Source};

/// Counters of harvested work, by source, plus rejections.
#[derive(Default, Debug, Clone, serde::Serialize)]
pub struct Stats {
    /// L2 blocks sealed by a Bitcoin block on its best chain.
    pub on_chain: u64,
    /// ... by a share that missed Bitcoin's target.
    pub premature: u64,
    /// ... by a valid Bitcoin block that did not become (or stay) the tip.
    pub stale: u64,
    /// Work that met the L2 target for L2 work already sealed by another block (its L2
    /// parent is no longer the tip): not submitted.
    pub stale_l2: u64,
    /// Blocks whose coinbase scriptSig is over 100 bytes (Bitcoin's consensus limit): the
    /// pool's configuration leaves no room for the merged-mining tag.
    pub coinbase_too_long: u64,
    /// Commitments found that the L2 refused, by reason.
    pub rejected: HashMap<String, u64>,
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

/// What the proxy and the watcher share: the L2 aux RPC and the work handed out.
pub struct Harvester {
    /// The L2 node's RPC (aux methods).
    pub l2: Bitcoind,
    /// L2 payout address for `createauxblock`.
    pub payout: String,
    /// Chain id to commit for.
    pub chain_id: ChainId,
    /// Work handed out: L2 block hash (internal order) -> (hash as the L2 prints it, target).
    pub work: Mutex<HashMap<[u8; 32], (String, bitcoin::pow::Target)>>,
    /// Counters.
    pub stats: Mutex<Stats>,
    /// Work already sealed: L2 block hash (internal order) -> the parent block that sealed
    /// it and the work's target, so one harvest is never submitted (or counted) twice.
    pub sealed: Mutex<HashMap<[u8; 32], (bitcoin::BlockHash, bitcoin::pow::Target)>>,
}

impl Harvester {
    /// A harvester submitting to `l2`, paying `payout`, committing for `chain_id`.
    pub fn new(l2: Bitcoind, payout: impl Into<String>, chain_id: ChainId) -> Harvester {
        Harvester {
            l2,
            payout: payout.into(),
            chain_id,
            work: Mutex::new(HashMap::new()),
            stats: Mutex::new(Stats::default()),
            sealed: Mutex::new(HashMap::new()),
        }
    }

    /// Fresh L2 work paying the configured address; returns the 44-byte commitment tag.
    pub fn new_work(&self) -> Result<[u8; 44], String> {
        self.new_work_for(&self.payout.clone())
            .map(|(tag, _, _)| tag)
    }

    /// Fresh L2 work paying `payout`: the tag, the L2 block hash (as printed) and its target.
    pub fn new_work_for(
        &self,
        payout: &str,
    ) -> Result<([u8; 44], String, bitcoin::pow::Target), String> {
        let w = self
            .l2
            .call("createauxblock", json!([payout]))
            .map_err(|e| e.to_string())?;
        let hash_str = w["hash"]
            .as_str()
            .ok_or("createauxblock: no hash")?
            .to_string();
        let mut hash: [u8; 32] = hex::decode(&hash_str)
            .map_err(|e| e.to_string())?
            .try_into()
            .map_err(|_| "createauxblock: bad hash")?;
        hash.reverse();
        let mut le = [0u8; 32];
        hex::decode_to_slice(
            w["_target"].as_str().ok_or("createauxblock: no _target")?,
            &mut le,
        )
        .map_err(|e| e.to_string())?;
        let target = bitcoin::pow::Target::from_le_bytes(le);
        let mut work = self.work.lock().unwrap_or_else(|e| e.into_inner());
        if work.len() > 10_000 {
            work.clear();
        }
        work.insert(hash, (hash_str.clone(), target));
        Ok((
            AuxTree::build(&[(self.chain_id, hash)])
                .expect("fits")
                .commitment(),
            hash_str,
            target,
        ))
    }

    /// Checks `block` for a commitment to work we handed out and, when its hash meets that
    /// work's target, submits the AuxPoW to the L2. Returns whether an L2 block was sealed.
    pub fn harvest(&self, block: &Block, source: Source) -> bool {
        let Some(cb) = block.txdata.first() else {
            return false;
        };
        let Some(input) = cb.input.first() else {
            return false;
        };
        let script = input.script_sig.as_bytes();
        let Some(at) = script.windows(4).position(|w| w == MERGED_MINING_HEADER) else {
            return false;
        };
        let Some(root) = script.get(at + 4..at + 36) else {
            return false;
        };
        let mut hash: [u8; 32] = root.try_into().expect("32 bytes");
        hash.reverse();
        let parent_hash = block.block_hash();
        // Take the work out while it is submitted: the proxy and the watcher (or two
        // shares) racing on it submit it once.
        let taken = {
            let mut work = self.work.lock().unwrap_or_else(|e| e.into_inner());
            match work.get(&hash) {
                Some((_, target)) if target.is_met_by(parent_hash) => work.remove(&hash),
                _ => None,
            }
        };
        let Some((hash_str, target)) = taken else {
            let sealed_by = self
                .sealed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&hash)
                .copied();
            if let Some((by, target)) = sealed_by {
                if by != parent_hash && target.is_met_by(parent_hash) {
                    self.stats
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .stale_l2 += 1;
                }
            }
            return false;
        };
        let txids: Vec<[u8; 32]> = block
            .txdata
            .iter()
            .map(|t| t.compute_txid().to_byte_array())
            .collect();
        let mut coinbase = cb.clone();
        for i in &mut coinbase.input {
            i.witness.clear();
        }
        let aux = AuxPow {
            coinbase_tx: coinbase,
            hash_block: [0; 32],
            coinbase_branch: coinbase_branch(&txids),
            coinbase_index: 0,
            chain_branch: Vec::new(),
            chain_index: 0,
            parent: block.header,
        };
        let r = self.l2.call(
            "submitauxblock",
            json!([hash_str, hex::encode(aux.encode())]),
        );
        if matches!(r, Ok(Value::Bool(true))) {
            let mut sealed = self.sealed.lock().unwrap_or_else(|e| e.into_inner());
            if sealed.len() > 10_000 {
                sealed.clear();
            }
            sealed.insert(hash, (parent_hash, target));
        } else if r.as_ref().is_err_and(|e| e.is_transport()) {
            // The L2 node was unreachable: the work may still seal a block later.
            self.work
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(hash, (hash_str.clone(), target));
        }
        let mut st = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        match r {
            Ok(Value::Bool(true)) => {
                match source {
                    Source::OnChain => st.on_chain += 1,
                    Source::Premature => st.premature += 1,
                    Source::Stale => st.stale += 1,
                }
                tracing::info!(l2_block = %hash_str, parent = %block.block_hash(), source = source.name(), "harvested work sealed an L2 block");
                true
            }
            Ok(other) => {
                *st.rejected
                    .entry(format!("l2 answered {other}"))
                    .or_default() += 1;
                false
            }
            Err(e) => {
                *st.rejected.entry(e.to_string()).or_default() += 1;
                false
            }
        }
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
    pub limits: rexe_net::Limits,
}

impl ProxyConfig {
    /// Accepts `auth` with the proxy's default limits: bodies up to 16 MiB (a 4 MB block
    /// as hex, twice over), 30 s for a request head or body.
    pub fn new(auth: impl Into<String>) -> ProxyConfig {
        ProxyConfig {
            accepted_auth: vec![auth.into()],
            limits: rexe_net::Limits {
                max_request: 16 * 1024 * 1024,
                ..rexe_net::Limits::http()
            },
        }
    }
}

struct ProxyState {
    upstream: String,
    harvester: Arc<Harvester>,
    config: ProxyConfig,
}

async fn forward(
    upstream: &str,
    headers: &HeaderMap,
    body: Vec<u8>,
) -> Result<(u16, Vec<u8>), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(upstream)
        .await
        .map_err(|e| format!("bitcoind at {upstream}: {e}"))?;
    let mut req = format!(
        "POST / HTTP/1.1\r\nHost: {upstream}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(a) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        req += &format!("Authorization: {a}\r\n");
    }
    req += "\r\n";
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    s.write_all(&body).await.map_err(|e| e.to_string())?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await.map_err(|e| e.to_string())?;
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("malformed reply from bitcoind")?;
    let head = String::from_utf8_lossy(&resp[..split]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(502);
    let mut payload = resp[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        payload = dechunk(&payload);
    }
    Ok((status, payload))
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..nl]).trim(), 16).unwrap_or(0);
        if n == 0 || b.len() < nl + 2 + n {
            break;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + n]);
        b = &b[(nl + 4 + n).min(b.len())..];
    }
    out
}

async fn handle(State(st): State<Arc<ProxyState>>, headers: HeaderMap, body: Body) -> Response {
    // Authenticate on the headers alone: an unauthenticated body is never read, forwarded
    // or harvested.
    let accepted: Vec<&str> = st.config.accepted_auth.iter().map(String::as_str).collect();
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !rexe_net::basic_auth_ok(given, &accepted) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"jsonrpc\"")],
            "",
        )
            .into_response();
    }
    let limits = &st.config.limits;
    let bytes =
        match tokio::time::timeout(limits.idle_timeout, to_bytes(body, limits.max_request)).await {
            Ok(Ok(b)) => b,
            Ok(Err(_)) => return (StatusCode::PAYLOAD_TOO_LARGE, "").into_response(),
            Err(_) => return (StatusCode::REQUEST_TIMEOUT, "").into_response(),
        };
    // Only a single request is looked into (a batch is forwarded as it is).
    let req = match rexe_net::jsonrpc::parse_body(&bytes, usize::MAX) {
        Ok(rexe_net::jsonrpc::Body::Single(Ok(r))) => Some(r),
        _ => None,
    };
    let method = req.as_ref().map(|r| r.method.clone());
    let (status, payload) = match forward(&st.upstream, &headers, bytes.to_vec()).await {
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
                        v["result"]["coinbaseaux"]["flags"] = json!(hex::encode(tag));
                        // Framed as bitcoind frames its replies: one JSON text and a
                        // newline (ckpool reads replies line by line).
                        out = v.to_string().into_bytes();
                        out.push(b'\n');
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "no L2 work for this template (is the L2 node up?)")
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
                .and_then(|h| hex::decode(h).ok());
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
                let source = match &answer {
                    Value::Null if status == 200 => Source::OnChain,
                    Value::String(s) if s == "inconclusive" || s == "duplicate" => Source::Stale,
                    _ => Source::Premature,
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
    let mut t = String::from("# HELP rexe_harvested_total L2 blocks sealed by harvested work, by source.\n# TYPE rexe_harvested_total counter\n");
    for (src, n) in [
        ("on-chain", s.on_chain),
        ("premature", s.premature),
        ("stale", s.stale),
    ] {
        t += &format!("rexe_harvested_total{{source=\"{src}\"}} {n}\n");
    }
    t += "# HELP rexe_harvest_stale_l2_total Work meeting the L2 target for L2 work already sealed.\n# TYPE rexe_harvest_stale_l2_total counter\n";
    t += &format!("rexe_harvest_stale_l2_total {}\n", s.stale_l2);
    t += "# HELP rexe_coinbase_too_long_total Submitted blocks whose coinbase scriptSig is over 100 bytes.\n# TYPE rexe_coinbase_too_long_total counter\n";
    t += &format!("rexe_coinbase_too_long_total {}\n", s.coinbase_too_long);
    t += "# HELP rexe_harvest_rejected_total Commitments the L2 refused.\n# TYPE rexe_harvest_rejected_total counter\n";
    t += &format!(
        "rexe_harvest_rejected_total {}\n",
        s.rejected.values().sum::<u64>()
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], t).into_response()
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
        upstream,
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
    let task = tokio::spawn(rexe_net::serve_http("proxy", listener, app, limits));
    Ok((addr, task))
}
