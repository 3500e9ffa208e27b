//! The JSON-RPC server: HTTP POST on 127.0.0.1 by default, basic auth with the `.cookie`
//! file (and optional user/password), JSON-RPC 1.0 and 2.0 request styles, batches, a body
//! size limit, and Prometheus metrics on `GET /metrics`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use rexe_chain::{Chain, SignedTx};
use rexe_rpc::http::Refusal;
use rexe_rpc::jsonrpc;
use serde_json::{json, Value};

use super::rpc::{self, RpcError};

/// Credentials accepted by the server.
#[derive(Clone)]
pub struct Auth {
    /// `__cookie__:<secret>` from the cookie file.
    pub cookie: String,
    /// Optional `user:password` from the configuration.
    pub user_password: Option<String>,
}

/// State shared by the server and whoever produces blocks.
pub struct Shared {
    /// The chain (one lock: admission, templates and queries take turns).
    pub chain: Mutex<Chain>,
    /// Accepted credentials.
    pub auth: Auth,
    /// When the node started (for `uptime`).
    pub started: Instant,
    /// Peers blocks are synced from and transactions forwarded to.
    pub peers: Vec<super::peer::Peer>,
    /// Aux work handed out to pools (`createauxblock`/`getauxblock`).
    pub aux: Mutex<rexe_miner::aux_rpc::AuxWork>,
    /// Payout address for `getauxblock` without arguments.
    pub mining_address: Option<rexe_chain::Address>,
    /// Merge-mining chain id of this chain (its sealer's and the aux RPC's).
    pub chain_id: rexe_miner::ChainId,
    /// Connection, timeout, body and batch limits of the RPC server.
    pub limits: rexe_rpc::Limits,
    /// The chain's `max_tx_bytes` (transactions are decoded before the chain is locked).
    pub max_tx_bytes: usize,
    /// The libp2p transport, once started (`--p2p-bind`/`--bootnode`).
    pub p2p: std::sync::OnceLock<rexe_net::Handle>,
    /// The highest tip height connected peers on this chain last reported (p2p).
    pub p2p_peer_height: std::sync::atomic::AtomicU64,
}

impl Shared {
    /// Locks the chain (a panic elsewhere does not make it unusable).
    pub fn chain(&self) -> std::sync::MutexGuard<'_, Chain> {
        self.chain.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Passes on a transaction this node admitted (hex): gossiped over p2p when it runs, and
    /// sent to every `--peer`.
    pub fn forward_tx(&self, hex: String) {
        if let Some(net) = self.p2p.get() {
            if let Ok(bytes) = <Vec<u8> as bitcoin::hex::FromHex>::from_hex(&hex) {
                net.publish(rexe_net::Topic::Txs, bytes);
            }
        }
        if !self.peers.is_empty() {
            super::sync::forward_tx(&self.peers, hex);
        }
    }
}

/// The `user:password` strings the node accepts: its cookie and any configured pair.
fn accepted(auth: &Auth) -> Vec<&str> {
    let mut accepted = vec![auth.cookie.as_str()];
    accepted.extend(auth.user_password.as_deref());
    accepted
}

/// The JSON-RPC error object; a contract refusal's kind and stable code are in `data`.
fn error_json(e: &RpcError) -> Value {
    match &e.data {
        Some(d) => json!({"code": e.code, "message": e.message, "data": d}),
        None => json!({"code": e.code, "message": e.message}),
    }
}

fn reply(id: Value, v2: bool, r: Result<Value, RpcError>) -> Value {
    jsonrpc::response(id, v2, r.map_err(|e| error_json(&e)))
}

/// Admits `sendrawtransaction` requests: each is decoded and its signature verified before
/// the chain is locked (a batch's as BIP340 batches on the verifier threads), then all are
/// admitted under one lock. Replies in request order.
async fn send_transactions(shared: &Arc<Shared>, reqs: Vec<jsonrpc::Request>) -> Vec<Value> {
    let n = reqs.len();
    let reqs = Arc::new(reqs);
    let verified = verify_all(&reqs, shared.max_tx_bytes).await;
    let shared = shared.clone();
    tokio::task::spawn_blocking(move || {
        let forwarding = !shared.peers.is_empty() || shared.p2p.get().is_some();
        let mut results = Vec::with_capacity(reqs.len());
        let mut forward = Vec::new();
        {
            let mut chain = shared.chain();
            for (r, v) in reqs.iter().zip(verified) {
                let res = v.and_then(|tx| rpc::admit_verified(&mut chain, tx));
                if res.is_ok() && forwarding {
                    if let Some(hex) = r.params.get(0).and_then(Value::as_str) {
                        forward.push(hex.to_string());
                    }
                }
                results.push(res);
            }
        }
        // The replies are built after the chain is unlocked.
        let out = reqs
            .iter()
            .zip(results)
            .map(|(r, res)| reply(r.id.clone(), r.v2, res))
            .collect();
        for hex in forward {
            shared.forward_tx(hex);
        }
        out
    })
    .await
    .unwrap_or_else(|e| {
        let e = RpcError::new(-32603, format!("internal error: {e}"));
        vec![reply(Value::Null, false, Err(e)); n]
    })
}

/// The threads that check `sendrawtransaction` signatures: one per core, at
/// [`rexe_rpc::Priority::Low`], so that whoever holds the chain lock (admission, the miner
/// building and committing a block) is not made to share a core with a queue of
/// signatures; verification takes the CPU time left over, which under load is most of it.
/// None if they could not be started (the system refused threads): the work then runs on
/// tokio's blocking threads, as ordinary ones.
fn verifiers() -> Option<&'static rexe_rpc::Workers> {
    static VERIFIERS: std::sync::OnceLock<Option<rexe_rpc::Workers>> = std::sync::OnceLock::new();
    VERIFIERS
        .get_or_init(|| {
            rexe_rpc::Workers::start_with("rexe-verify", cores(), rexe_rpc::Priority::Low)
                .map_err(|e| {
                    tracing::warn!(error = %e, "cannot start the signature verifier threads; verifying on ordinary threads")
                })
                .ok()
        })
        .as_ref()
}

/// [`rpc::verify_raw_transaction`] of every request: decoded, then their signatures checked
/// as BIP340 batches ([`SignedTx::verified_all`]) on the [`verifiers`], split into shares of
/// at least [`MIN_SHARE`] when there are enough for more than one core.
async fn verify_all(
    reqs: &Arc<Vec<jsonrpc::Request>>,
    max_tx_bytes: usize,
) -> Vec<Result<rexe_chain::VerifiedTx, RpcError>> {
    let shares = cores().min(reqs.len() / MIN_SHARE).max(1);
    let per = reqs.len().div_ceil(shares).max(1);
    let jobs: Vec<_> = (0..reqs.len())
        .step_by(per)
        .map(|start| {
            let end = (start + per).min(reqs.len());
            let reqs = reqs.clone();
            let share = move || verify_share(&reqs[start..end], max_tx_bytes);
            let job: std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>> =
                match verifiers() {
                    Some(v) => Box::pin(v.spawn(share)),
                    None => {
                        let task = tokio::task::spawn_blocking(share);
                        Box::pin(async move { task.await.map_err(std::io::Error::other) })
                    }
                };
            (end - start, job)
        })
        .collect();
    let mut out = Vec::with_capacity(reqs.len());
    for (n, job) in jobs {
        // A share whose job failed is answered as an internal error, in its place.
        out.extend(
            job.await.unwrap_or_else(|_| {
                vec![Err(RpcError::new(-32603, "internal error verifying")); n]
            }),
        );
    }
    out
}

/// Decodes `reqs` and checks the signatures of those that decode as one batch.
fn verify_share(
    reqs: &[jsonrpc::Request],
    max_tx_bytes: usize,
) -> Vec<Result<rexe_chain::VerifiedTx, RpcError>> {
    // A decoding error in place, or None for a transaction whose signature is checked below.
    let mut out = Vec::with_capacity(reqs.len());
    let mut txs = Vec::with_capacity(reqs.len());
    for r in reqs {
        match rpc::decode_raw_transaction(&r.params, max_tx_bytes) {
            Ok(tx) => {
                txs.push(tx);
                out.push(None);
            }
            Err(e) => out.push(Some(Err(e))),
        }
    }
    let mut verified = SignedTx::verified_all(txs).into_iter();
    out.into_iter()
        .map(|slot| {
            slot.unwrap_or_else(|| match verified.next() {
                Some(v) => v.map_err(|_| rpc::bad_signature()),
                None => Err(RpcError::new(-32603, "internal error verifying")),
            })
        })
        .collect()
}

/// The cores this process may use, read once (the standard library reads the cgroup's CPU
/// quota from files at every call, which a request need not pay for).
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The fewest signatures worth a thread of their own: below it, a batch's one
/// multi-scalar multiplication saves more than a second core would.
const MIN_SHARE: usize = 256;

async fn one(shared: &Arc<Shared>, req: jsonrpc::Entry) -> Value {
    let r = match req {
        Ok(r) => r,
        Err(e) => {
            return reply(
                e.id(),
                e.v2(),
                Err(RpcError::invalid_request(e.to_string())),
            )
        }
    };
    if r.method == "sendrawtransaction" {
        let mut out = send_transactions(shared, vec![r]).await;
        return out.pop().unwrap_or(Value::Null);
    }
    let jsonrpc::Request {
        id,
        method,
        params,
        v2,
    } = r;
    if method == "waitfornewblock" {
        return reply(id, v2, wait_for_new_block(shared, &params).await);
    }
    let shared = shared.clone();
    let r = tokio::task::spawn_blocking(move || {
        let mut aux = shared.aux.lock().unwrap_or_else(|e| e.into_inner());
        let mut ctx = rpc::Context {
            aux: &mut aux,
            mining_address: shared.mining_address,
            chain_id: shared.chain_id,
            p2p: shared.p2p.get(),
        };
        let r = rpc::call(
            &mut shared.chain(),
            &mut ctx,
            &method,
            &params,
            crate::unix_time(),
        );
        drop(aux);
        if method == "sendrawtransaction" && r.is_ok() {
            if let Some(hex) = params.get(0).and_then(Value::as_str) {
                shared.forward_tx(hex.to_string());
            }
        }
        r
    })
    .await
    .unwrap_or_else(|e| Err(RpcError::new(-32603, format!("internal error: {e}"))));
    reply(id, v2, r)
}

async fn wait_for_new_block(shared: &Arc<Shared>, params: &Value) -> Result<Value, RpcError> {
    let timeout = match params {
        Value::Array(a) if a.is_empty() => 30_000,
        Value::Null => 30_000,
        Value::Array(a) if a.len() == 1 => a[0]
            .as_u64()
            .ok_or_else(|| RpcError::new(-32602, "timeout_ms must be an integer"))?
            .min(600_000),
        _ => return Err(RpcError::new(-32602, "expected [timeout_ms]")),
    };
    let tip = |s: &Shared| {
        let c = s.chain();
        (c.tip_hash(), c.tip_height())
    };
    let start = tip(shared);
    let deadline = Instant::now() + Duration::from_millis(timeout);
    loop {
        let now = tip(shared);
        if now.0 != start.0 || Instant::now() >= deadline {
            return Ok(json!({"hash": now.0.to_string(), "height": now.1}));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn handle(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    let max = shared.limits.max_request;
    let accepted = accepted(&shared.auth);
    let req = match rexe_rpc::http::read_jsonrpc(&headers, body, &accepted, &shared.limits).await {
        Ok(req) => req,
        Err(Refusal::Unauthorized) => return rexe_rpc::http::unauthorized(),
        Err(Refusal::Body(rexe_rpc::http::BodyError::TooLarge)) => {
            let e = reply(
                Value::Null,
                false,
                Err(RpcError::invalid_request(format!(
                    "request body larger than {max} bytes"
                ))),
            );
            return rexe_rpc::http::json_line(StatusCode::PAYLOAD_TOO_LARGE, &e);
        }
        Err(Refusal::Body(e)) => return e.status().into_response(),
        Err(Refusal::Json(e @ jsonrpc::BodyError::Parse(_))) => {
            let e = reply(Value::Null, false, Err(RpcError::parse(e.to_string())));
            return rexe_rpc::http::json_line(StatusCode::INTERNAL_SERVER_ERROR, &e);
        }
        Err(Refusal::Json(e @ jsonrpc::BodyError::BatchTooLarge { .. })) => {
            let e = reply(
                Value::Null,
                false,
                Err(RpcError::invalid_request(format!("{e} (--rpc-max-batch)"))),
            );
            return rexe_rpc::http::json_line(StatusCode::PAYLOAD_TOO_LARGE, &e);
        }
    };
    match req {
        jsonrpc::Body::Batch(reqs) => {
            // A batch of transactions (how wallets and load generators submit many) is
            // verified on every core and admitted under one lock.
            let sends = reqs
                .iter()
                .all(|r| matches!(r, Ok(r) if r.method == "sendrawtransaction"));
            if sends && !reqs.is_empty() {
                let reqs: Vec<jsonrpc::Request> = reqs.into_iter().flatten().collect();
                let out = send_transactions(&shared, reqs).await;
                return rexe_rpc::http::json_line(StatusCode::OK, &Value::Array(out));
            }
            let mut out = Vec::with_capacity(reqs.len());
            for r in reqs {
                out.push(one(&shared, r).await);
            }
            rexe_rpc::http::json_line(StatusCode::OK, &Value::Array(out))
        }
        jsonrpc::Body::Single(r) => {
            let v = one(&shared, r).await;
            // bitcoind's status codes: 404 unknown method, 500 other errors.
            let status = match v["error"]["code"].as_i64() {
                None => StatusCode::OK,
                Some(-32601) => StatusCode::NOT_FOUND,
                Some(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            rexe_rpc::http::json_line(status, &v)
        }
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let text = tokio::task::spawn_blocking(move || {
        let c = shared.chain();
        let mut m = rexe_rpc::metrics::Scrape::new();
        let st = c.stats();
        m.gauge(
            "rexe_tip_height",
            "Height of the active L2 tip.",
            c.tip_height() as f64,
        )
        .gauge(
            "rexe_mempool_size",
            "Transactions in the mempool.",
            c.mempool().len() as f64,
        )
        .gauge(
            "rexe_inbound_relays",
            "Relays waiting for the next block.",
            c.inbound().iter().map(Vec::len).sum::<usize>() as f64,
        )
        .gauge(
            "rexe_relays_waiting",
            "Relays and global-lane calls the last block left waiting for room (backpressure).",
            st.relays_waiting as f64,
        );
        let fees = c.last_fees();
        let caches = c.cache_stats();
        let shards: Vec<String> = (0..fees.len().max(caches.len()))
            .map(|i| i.to_string())
            .collect();
        let per_shard = |f: &dyn Fn(usize) -> f64| -> Vec<(Vec<&str>, f64)> {
            (0..fees.len())
                .map(|i| (vec![shards[i].as_str()], f(i)))
                .collect()
        };
        m.gauges(
            "rexe_shard_base_fee_msat",
            "Base fee of the next block per shard, msat per gas.",
            &["shard"],
            per_shard(&|i| fees[i].next_base_fee.to_msat() as f64),
        )
        .gauges(
            "rexe_shard_gas_used",
            "Gas the last block used per shard.",
            &["shard"],
            per_shard(&|i| fees[i].gas_used as f64),
        )
        .gauges(
            "rexe_shard_relays_waiting",
            "Inbound relays the last block left waiting per shard.",
            &["shard"],
            per_shard(&|i| fees[i].waiting as f64),
        );
        let by_kind = |account: &dyn Fn(usize) -> u64, state: &dyn Fn(usize) -> u64| {
            (0..caches.len())
                .flat_map(|i| {
                    [
                        (vec![shards[i].as_str(), "account"], account(i) as f64),
                        (vec![shards[i].as_str(), "state"], state(i) as f64),
                    ]
                })
                .collect::<Vec<_>>()
        };
        m.counters(
            "rexe_shard_cache_hits_total",
            "Reads a shard's row cache answered (kind: account or state).",
            &["shard", "kind"],
            by_kind(&|i| caches[i].account_hits, &|i| caches[i].state_hits),
        )
        .counters(
            "rexe_shard_cache_misses_total",
            "Reads a shard's row cache sent to SQLite.",
            &["shard", "kind"],
            by_kind(&|i| caches[i].account_misses, &|i| caches[i].state_misses),
        )
        .gauges(
            "rexe_shard_cache_entries",
            "Rows a shard's cache holds.",
            &["shard", "kind"],
            by_kind(&|i| caches[i].accounts as u64, &|i| caches[i].states as u64),
        )
        .counter(
            "rexe_blocks_connected_total",
            "Blocks connected since start.",
            st.blocks_connected as f64,
        )
        .counter(
            "rexe_blocks_disconnected_total",
            "Blocks rolled back (reorgs) since start.",
            st.blocks_disconnected as f64,
        )
        .counter(
            "rexe_txs_connected_total",
            "Transactions in connected blocks since start.",
            st.txs_connected as f64,
        )
        .counter(
            "rexe_connect_seconds_total",
            "Time spent executing and connecting blocks.",
            st.connect_secs,
        )
        .gauge("rexe_peers", "Configured peers.", shared.peers.len() as f64)
        .counter(
            "rexe_uptime_seconds",
            "Seconds since start.",
            shared.started.elapsed().as_secs() as f64,
        );
        let tracked: Vec<String> = c.tracked_shards().iter().map(|s| s.0.to_string()).collect();
        m.gauges(
            "rexe_tracked_shard",
            "Shards this node stores and runs (1 per tracked shard).",
            &["shard"],
            tracked.iter().map(|s| (vec![s.as_str()], 1.0)),
        );
        let syncing: Vec<(String, rexe_chain::sync::SyncProgress)> = c
            .shards_to_sync()
            .iter()
            .filter_map(|s| Some((s.0.to_string(), c.state_sync(*s).ok()??)))
            .collect();
        m.gauges(
            "rexe_state_sync_rows",
            "Rows of a shard's state fetched so far by the state sync under way.",
            &["shard"],
            syncing
                .iter()
                .map(|(s, p)| (vec![s.as_str()], p.rows as f64)),
        )
        .gauges(
            "rexe_state_sync_bytes",
            "Bytes of a shard's state fetched so far by the state sync under way.",
            &["shard"],
            syncing
                .iter()
                .map(|(s, p)| (vec![s.as_str()], p.bytes as f64)),
        );
        if let Some(net) = shared.p2p.get() {
            let s = net.status();
            let best = shared
                .p2p_peer_height
                .load(std::sync::atomic::Ordering::Relaxed);
            m.gauge(
                "rexe_p2p_peer_best_height",
                "Highest tip height a connected peer on this chain reported.",
                best as f64,
            )
            .gauge(
                "rexe_p2p_lag_blocks",
                "Blocks this node is behind the best peer (0 when level or ahead).",
                best.saturating_sub(c.tip_height()) as f64,
            );
            let topics = |v: [u64; 2]| {
                [("blocks", v[0]), ("txs", v[1])]
                    .into_iter()
                    .map(|(t, n)| (vec![t], n as f64))
            };
            m.gauge(
                "rexe_p2p_peers",
                "Connected libp2p peers.",
                s.peers.len() as f64,
            )
            .gauge("rexe_p2p_banned", "Peers banned now.", s.banned as f64)
            .counters(
                "rexe_p2p_gossip_received_total",
                "Gossip messages received, by topic.",
                &["topic"],
                topics(s.gossip_in),
            )
            .counters(
                "rexe_p2p_gossip_published_total",
                "Gossip messages published, by topic.",
                &["topic"],
                topics(s.gossip_out),
            )
            .counter(
                "rexe_p2p_gossip_rejected_total",
                "Gossip messages judged invalid.",
                s.rejected as f64,
            )
            .counter(
                "rexe_p2p_requests_served_total",
                "Sync and proof requests served.",
                s.requests_in as f64,
            )
            .counter(
                "rexe_p2p_broken_streams_total",
                "Requests over their cap or empty.",
                s.broken_streams as f64,
            );
        }
        if let Some(p) = rexe_bridge::contract::PegContract::of(&c) {
            let t = p.peg().totals();
            let mut by_state = [0u64; 3];
            for x in p.peg().matches() {
                by_state[match x.state {
                    rexe_bridge::peg::MatchState::Open => 0,
                    rexe_bridge::peg::MatchState::Claimed { .. } => 1,
                    rexe_bridge::peg::MatchState::Expired => 2,
                }] += 1;
            }
            m.gauge(
                "rexe_peg_btc_tip_height",
                "Height of the tracked Bitcoin tip.",
                p.headers().tip_height() as f64,
            )
            .gauge(
                "rexe_peg_open_orders",
                "Open peg-out orders.",
                p.peg().orders().count() as f64,
            )
            .gauges(
                "rexe_peg_matches",
                "Peg matches by state.",
                &["state"],
                ["open", "claimed", "expired"]
                    .into_iter()
                    .zip(by_state)
                    .map(|(name, n)| (vec![name], n as f64)),
            )
            .gauge(
                "rexe_peg_escrow_sats",
                "rxBTC held by the peg (orders, matches, bonds).",
                (t.in_orders + t.in_matches + t.bonds_held) as f64,
            );
        }
        m.render()
    })
    .await
    .unwrap_or_default();
    (
        [(header::CONTENT_TYPE, rexe_rpc::metrics::CONTENT_TYPE)],
        text,
    )
        .into_response()
}

/// Binds `addr` and serves under `shared.limits` until the runtime stops. Returns the bound
/// address.
pub async fn serve(
    shared: Arc<Shared>,
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let limits = shared.limits.clone();
    let app = Router::new()
        .route("/", post(handle))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::disable())
        .with_state(shared);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let task = tokio::spawn(rexe_rpc::serve_http("rpc", listener, app, limits));
    Ok((local, task))
}
