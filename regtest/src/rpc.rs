//! bitcoind's JSON-RPC over HTTP: JSON-RPC 1.0 and 2.0 request styles, batches, basic auth
//! with the `.cookie` file, a 32 MB body limit like Core, Core's error codes and answers.

use std::str::FromStr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bitcoin::consensus::encode::{deserialize, serialize_hex};
use bitcoin::hex::{DisplayHex, FromHex};
use bitcoin::{Address, Block, BlockHash, Transaction, Txid};
use rexe_rpc::http::Refusal;
use rexe_rpc::jsonrpc;
use serde_json::{json, Value};

use crate::node::Node;

/// Largest request body (Core's limit).
pub const MAX_BODY: usize = 32 * 1024 * 1024;

/// The RPC server's default limits: [`rexe_rpc::Limits::http`] with Core's body limit.
pub fn default_limits() -> rexe_rpc::Limits {
    rexe_rpc::Limits {
        max_request: MAX_BODY,
        ..rexe_rpc::Limits::http()
    }
}

/// Server state.
pub struct Shared {
    /// The node.
    pub node: Mutex<Node>,
    /// RPC calls waiting for the node's lock: Electrum work steps aside for them, so that
    /// an Electrum flood cannot stall bitcoind's clients (the miner, the pool, wallets).
    pub rpc_waiting: std::sync::atomic::AtomicUsize,
    /// `__cookie__:<hex>`.
    pub cookie: String,
    /// `user:password` accepted besides the cookie (`-rpcuser`/`-rpcpassword`).
    pub rpc_auth: Option<String>,
    /// Notified by `stop`.
    pub stop: tokio::sync::Notify,
    /// Set by `stop` (for whoever polls: `rexe regtest`, the devnet).
    pub stopping: std::sync::atomic::AtomicBool,
    /// The ZMQ publishers (for `getzmqnotifications`).
    pub zmq: Vec<crate::zmq::ZmqPub>,
    /// The RPC server's limits (body and batch sizes are checked here).
    pub limits: rexe_rpc::Limits,
}

type RpcResult = Result<Value, (i64, String)>;

fn e(code: i64, m: impl Into<String>) -> (i64, String) {
    (code, m.into())
}

/// The time as a block header holds it.
fn now() -> u32 {
    crate::chain::unix_now() as u32
}

/// Positional argument `i`; an explicit `null` counts as not given, as in Core (electrs,
/// for one, sends `estimatesmartfee [n, null]`).
fn arg(p: &Value, i: usize) -> Option<&Value> {
    p.as_array().and_then(|a| a.get(i)).filter(|v| !v.is_null())
}

fn arity(p: &Value, min: usize, max: usize) -> Result<(), (i64, String)> {
    let n = match p {
        Value::Null => 0,
        Value::Array(a) => a.len(),
        _ => return Err(e(-32602, "params must be an array")),
    };
    if n < min || n > max {
        return Err(e(-1, format!("wrong number of parameters ({n})")));
    }
    Ok(())
}

fn hash_arg(p: &Value, i: usize) -> Result<BlockHash, (i64, String)> {
    let s = arg(p, i)
        .and_then(Value::as_str)
        .ok_or_else(|| e(-3, "Expected type string"))?;
    BlockHash::from_str(s).map_err(|_| {
        e(
            -8,
            format!(
                "blockhash must be of length 64 (not {}, for '{s}')",
                s.len()
            ),
        )
    })
}

fn hex_arg(p: &Value, i: usize) -> Result<Vec<u8>, (i64, String)> {
    let s = arg(p, i)
        .and_then(Value::as_str)
        .ok_or_else(|| e(-3, "Expected type string"))?;
    Vec::<u8>::from_hex(s).map_err(|_| e(-22, "TX decode failed"))
}

/// Core's `GetDifficulty` (the same doubles, the same steps), as its JSON writes a double:
/// 16 significant digits.
fn difficulty(bits: bitcoin::CompactTarget) -> f64 {
    let bits = bits.to_consensus();
    let mut shift = (bits >> 24) & 0xff;
    let mut d = f64::from(0x0000_ffff_u32) / f64::from(bits & 0x00ff_ffff);
    while shift < 29 {
        d *= 256.0;
        shift += 1;
    }
    while shift > 29 {
        d /= 256.0;
        shift -= 1;
    }
    core_double(d)
}

/// `d` as Core's JSON writer prints a double (`setprecision(16)`): rounded to 16
/// significant digits, so that serde writes the same digits.
pub(crate) fn core_double(d: f64) -> f64 {
    format!("{d:.15e}").parse().unwrap_or(d)
}

/// The 256-bit target of `bits` in hex, as Core's `target` fields.
fn target_hex(bits: bitcoin::CompactTarget) -> String {
    bitcoin::pow::Target::from_compact(bits)
        .to_be_bytes()
        .to_lower_hex_string()
}

/// Core's `coinbase_tx` object of a block's coinbase (`getblock`, verbosity 1 and up).
fn coinbase_tx_json(block: &bitcoin::Block) -> Value {
    let Some(cb) = block.txdata.first() else {
        return Value::Null;
    };
    let Some(vin) = cb.input.first() else {
        return Value::Null;
    };
    let mut v = json!({
        "version": cb.version.0,
        "locktime": cb.lock_time.to_consensus_u32(),
        "sequence": vin.sequence.0,
        "coinbase": vin.script_sig.as_bytes().to_lower_hex_string(),
    });
    if let Some(w) = vin.witness.iter().next() {
        v["witness"] = json!(w.to_lower_hex_string());
    }
    v
}

/// What an active-chain transaction's input spent (`getblock` verbosity 3's `prevout`):
/// Core's `generated`, `height`, `value` and `scriptPubKey`.
fn prevout_json(n: &Node, op: &bitcoin::OutPoint) -> Option<Value> {
    let (b, idx) = n.chain.tx_index.get(&op.txid)?;
    let e = n.chain.blocks.get(b)?;
    let out = e.block.txdata.get(*idx)?.output.get(op.vout as usize)?;
    Some(json!({
        "generated": *idx == 0,
        "height": e.height,
        "value": out.value.to_btc(),
        "scriptPubKey": crate::core_json::script_pubkey_json(&out.script_pubkey, bitcoin::Network::Regtest),
    }))
}

fn header_json(n: &Node, hash: &BlockHash) -> Option<Value> {
    let e = n.chain.blocks.get(hash)?;
    let h = &e.block.header;
    let active = n.chain.is_active(hash);
    let next = if active {
        n.chain
            .active
            .get(e.height as usize + 1)
            .map(|x| x.to_string())
    } else {
        None
    };
    let mut v = json!({
        "hash": hash.to_string(),
        "confirmations": if active { (n.chain.height() - e.height + 1) as i64 } else { -1 },
        "height": e.height,
        "version": h.version.to_consensus(),
        "versionHex": format!("{:08x}", h.version.to_consensus()),
        "merkleroot": h.merkle_root.to_string(),
        "time": h.time,
        "mediantime": n.chain.median_time_past(*hash),
        "nonce": h.nonce,
        "bits": format!("{:08x}", h.bits.to_consensus()),
        "target": target_hex(h.bits),
        "difficulty": difficulty(h.bits),
        "chainwork": e.chainwork.to_be_bytes().to_lower_hex_string(),
        "nTx": e.block.txdata.len(),
    });
    if e.height > 0 {
        v["previousblockhash"] = json!(h.prev_blockhash.to_string());
    }
    if let Some(nx) = next {
        v["nextblockhash"] = json!(nx);
    }
    Some(v)
}

fn tx_json(tx: &Transaction) -> Value {
    crate::core_json::tx_json(tx, bitcoin::Network::Regtest, true)
}

/// The fee of an active-chain transaction (`None` for a coinbase or unknown prevouts).
fn fee_of(n: &Node, tx: &Transaction) -> Option<bitcoin::Amount> {
    crate::fees::fee_of(&n.chain, tx)
}

/// A pooled transaction's mempool relatives.
struct Relatives {
    /// Itself and every in-pool ancestor.
    ancestors: std::collections::HashSet<Txid>,
    /// Itself and every in-pool descendant.
    descendants: std::collections::HashSet<Txid>,
}

/// In-pool parents of `t`.
fn pool_parents(n: &Node, t: &Txid) -> std::collections::BTreeSet<Txid> {
    let pool = &n.mempool.txs;
    pool.get(t)
        .map(|p| {
            p.tx.input
                .iter()
                .map(|i| i.previous_output.txid)
                .filter(|id| pool.contains_key(id))
                .collect()
        })
        .unwrap_or_default()
}

/// In-pool children of `t`.
fn pool_children(n: &Node, t: &Txid) -> std::collections::BTreeSet<Txid> {
    n.mempool.children(*t).collect()
}

/// `start` and everything `next` reaches from it.
fn closure(
    start: Txid,
    next: &dyn Fn(&Txid) -> std::collections::BTreeSet<Txid>,
) -> std::collections::HashSet<Txid> {
    let mut seen = std::collections::HashSet::from([start]);
    let mut stack = vec![start];
    while let Some(t) = stack.pop() {
        for x in next(&t) {
            if seen.insert(x) {
                stack.push(x);
            }
        }
    }
    seen
}

fn relatives(n: &Node, txid: &Txid) -> Relatives {
    Relatives {
        ancestors: closure(*txid, &|t| pool_parents(n, t)),
        descendants: n.mempool.with_descendants([*txid]),
    }
}

/// The fee and weight of the chunk holding `txid` in its cluster's linearization (Core 31's
/// cluster mempool): the cluster (every transaction connected to it) is ordered by
/// repeatedly taking the remaining ancestor set of highest fee rate, and consecutive
/// transactions are grouped while a later group pays a higher rate than the one before.
fn chunk_of(n: &Node, txid: &Txid) -> Option<(bitcoin::Amount, u64)> {
    use std::collections::HashSet;
    let pool = &n.mempool.txs;
    pool.get(txid)?;
    let cluster = closure(*txid, &|t| {
        let mut next = pool_parents(n, t);
        next.extend(pool_children(n, t));
        next
    });
    let fee = |t: &Txid| pool[t].fee.to_sat();
    let vsize = |t: &Txid| pool[t].tx.vsize() as u64;
    let mut left: HashSet<Txid> = cluster;
    let mut order: Vec<Txid> = Vec::new();
    while !left.is_empty() {
        // The remaining ancestor set of best fee rate (ties: fewer bytes, then txid).
        let best = left
            .iter()
            .map(|t| {
                let set = closure(*t, &|x| {
                    pool_parents(n, x)
                        .into_iter()
                        .filter(|p| left.contains(p))
                        .collect()
                });
                let (f, v) = set
                    .iter()
                    .fold((0u64, 0u64), |a, x| (a.0 + fee(x), a.1 + vsize(x)));
                (set, f, v, *t)
            })
            .max_by(|a, b| {
                (u128::from(a.1) * u128::from(b.2))
                    .cmp(&(u128::from(b.1) * u128::from(a.2)))
                    .then(b.2.cmp(&a.2))
                    .then(b.3.cmp(&a.3))
            })?;
        // Parents first within the set.
        let mut set: Vec<Txid> = best.0.into_iter().collect();
        while !set.is_empty() {
            let (ready, rest): (Vec<Txid>, Vec<Txid>) = set.iter().partition(|t| {
                pool_parents(n, t)
                    .iter()
                    .all(|p| !left.contains(p) || !set.contains(p))
            });
            let mut ready = ready;
            ready.sort();
            for t in ready {
                left.remove(&t);
                order.push(t);
            }
            set = rest;
        }
    }
    // Chunks: (fee, vsize, weight, members), merged while a later one pays more per byte.
    let mut chunks: Vec<(u64, u64, u64, Vec<Txid>)> = Vec::new();
    for t in order {
        chunks.push((fee(&t), vsize(&t), pool[&t].tx.weight().to_wu(), vec![t]));
        while chunks.len() > 1 {
            let (a, b) = (&chunks[chunks.len() - 2], &chunks[chunks.len() - 1]);
            if u128::from(b.0) * u128::from(a.1) <= u128::from(a.0) * u128::from(b.1) {
                break;
            }
            let last = chunks.pop().expect("two");
            let prev = chunks.last_mut().expect("two");
            prev.0 += last.0;
            prev.1 += last.1;
            prev.2 += last.2;
            prev.3.extend(last.3);
        }
    }
    chunks
        .into_iter()
        .find(|c| c.3.contains(txid))
        .map(|c| (bitcoin::Amount::from_sat(c.0), c.2))
}

/// Core's `getmempoolentry` object for a pooled transaction.
fn mempool_entry_json(n: &Node, txid: &Txid) -> Option<Value> {
    let pool = &n.mempool.txs;
    let pd = pool.get(txid)?;
    let Relatives {
        ancestors,
        descendants,
    } = relatives(n, txid);
    let sum = |set: &std::collections::HashSet<Txid>| {
        set.iter()
            .filter_map(|t| pool.get(t))
            .fold((0usize, bitcoin::Amount::ZERO), |(s, f), p| {
                (s + p.tx.vsize(), f + p.fee)
            })
    };
    let (anc_size, anc_fee) = sum(&ancestors);
    let (desc_size, desc_fee) = sum(&descendants);
    let (chunk_fee, chunk_weight) = chunk_of(n, txid)?;
    let replaceable = ancestors
        .iter()
        .filter_map(|t| pool.get(t))
        .any(|p| p.tx.is_explicitly_rbf());
    Some(json!({
        "vsize": pd.tx.vsize(),
        "weight": pd.tx.weight().to_wu(),
        "time": pd.time,
        "height": pd.height,
        "descendantcount": descendants.len(),
        "descendantsize": desc_size,
        "ancestorcount": ancestors.len(),
        "ancestorsize": anc_size,
        "chunkweight": chunk_weight,
        "wtxid": pd.tx.compute_wtxid().to_string(),
        "fees": {
            "base": pd.fee.to_btc(),
            "modified": pd.fee.to_btc(),
            "ancestor": anc_fee.to_btc(),
            "descendant": desc_fee.to_btc(),
            "chunk": chunk_fee.to_btc(),
        },
        "depends": pool_parents(n, txid).iter().map(|t| t.to_string()).collect::<Vec<_>>(),
        "spentby": pool_children(n, txid).iter().map(|t| t.to_string()).collect::<Vec<_>>(),
        "bip125-replaceable": replaceable,
        "unbroadcast": false,
    }))
}

fn address_script(s: &str) -> Result<bitcoin::ScriptBuf, (i64, String)> {
    Address::from_str(s)
        .ok()
        .and_then(|a| a.require_network(bitcoin::Network::Regtest).ok())
        .map(|a| a.script_pubkey())
        .ok_or_else(|| e(-5, "Error: Invalid address"))
}

/// Runs one method (Core's names, parameters and answers).
/// Bitcoin Core's parameter names of each method, in order (for named parameters).
fn param_names(method: &str) -> &'static [&'static str] {
    match method {
        "getblockhash" => &["height"],
        "getblockheader" => &["blockhash", "verbose"],
        "getblock" => &["blockhash", "verbosity"],
        "getrawtransaction" => &["txid", "verbose", "blockhash"],
        "sendrawtransaction" => &["hexstring", "maxfeerate", "maxburnamount"],
        "testmempoolaccept" => &["rawtxs", "maxfeerate"],
        "getrawmempool" => &["verbose", "mempool_sequence"],
        "getmempoolentry" => &["txid"],
        "getmempoolancestors" | "getmempooldescendants" => &["txid", "verbose"],
        "getblockstats" => &["hash_or_height", "stats"],
        "getchaintxstats" => &["nblocks", "blockhash"],
        "gettxoutsetinfo" => &["hash_type", "hash_or_height", "use_index"],
        "gettxoutproof" => &["txids", "blockhash"],
        "verifytxoutproof" => &["proof"],
        "decoderawtransaction" => &["hexstring", "iswitness"],
        "decodescript" => &["hexstring"],
        "gettxout" => &["txid", "n", "include_mempool"],
        "estimatesmartfee" => &["conf_target", "estimate_mode"],
        "getblocktemplate" => &["template_request"],
        "submitblock" => &["hexdata", "dummy"],
        "submitheader" => &["hexdata"],
        "generateblock" => &["output", "transactions", "submit"],
        "generatetoaddress" => &["nblocks", "address", "maxtries"],
        "invalidateblock" | "reconsiderblock" | "preciousblock" => &["blockhash"],
        "validateaddress" => &["address"],
        _ => crate::wallet::param_names(method).unwrap_or(&[]),
    }
}

/// Named parameters (a JSON object, as `bitcoin-cli -named` sends) turned into positional
/// ones as Core's `transformNamedArguments` does: by Core's names, gaps as null, an unknown
/// name refused with -8.
fn positional(method: &str, p: &Value) -> Result<Value, (i64, String)> {
    let Value::Object(named) = p else {
        return Ok(p.clone());
    };
    let names = param_names(method);
    let mut out: Vec<Value> = Vec::new();
    for (k, v) in named {
        let i = names
            .iter()
            .position(|n| n == k)
            .ok_or_else(|| e(-8, format!("Unknown named parameter {k}")))?;
        if out.len() <= i {
            out.resize(i + 1, Value::Null);
        }
        out[i] = v.clone();
    }
    Ok(Value::Array(out))
}

/// Runs one method for a request to `/` (no wallet named in the URI).
pub fn call(shared: &Shared, method: &str, p: &Value) -> RpcResult {
    call_for_wallet(shared, None, method, p)
}

/// Runs one method for a request to `/wallet/<uri_wallet>` (`None`: to `/`); wallet methods
/// ([`crate::wallet`]) act on that wallet, or on the only loaded one.
pub fn call_for_wallet(
    shared: &Shared,
    uri_wallet: Option<&str>,
    method: &str,
    p: &Value,
) -> RpcResult {
    use std::sync::atomic::Ordering::SeqCst;
    shared.rpc_waiting.fetch_add(1, SeqCst);
    let n = shared.node.lock().unwrap_or_else(|x| x.into_inner());
    shared.rpc_waiting.fetch_sub(1, SeqCst);
    call_locked(shared, n, uri_wallet, method, p)
}

/// Methods that read a few fields of the node's memory and answer in microseconds, whatever
/// the chain or the mempool hold (`getmempoolinfo`, which sums the mempool, is not one).
/// They are answered on the HTTP task itself when the node's lock is free at once, saving
/// the two thread hand-offs (to a blocking thread and back) that make most of a cheap
/// call's latency on a busy machine; anything else, or a held lock, goes to a blocking
/// thread.
fn is_quick(method: &str) -> bool {
    matches!(
        method,
        "getblockcount"
            | "getbestblockhash"
            | "getblockhash"
            | "getblockheader"
            | "getblockchaininfo"
            | "getnetworkinfo"
            | "uptime"
    )
}

/// `call_for_wallet` with the node's lock already held (`n`).
fn call_locked(
    shared: &Shared,
    mut n: std::sync::MutexGuard<'_, Node>,
    uri_wallet: Option<&str>,
    method: &str,
    p: &Value,
) -> RpcResult {
    let p = &positional(method, p)?;
    if let Some(r) = crate::wallet::call(&mut n, uri_wallet, method, p) {
        return r.map_err(|err| (err.code(), err.to_string()));
    }
    match method {
        "getblockchaininfo" => {
            arity(p, 0, 0)?;
            let tip = n.chain.tip_entry();
            Ok(json!({
                "chain": "regtest",
                "blocks": n.chain.height(),
                "headers": n.chain.height(),
                "bestblockhash": n.chain.tip().to_string(),
                "bits": format!("{:08x}", tip.block.header.bits.to_consensus()),
                "target": target_hex(tip.block.header.bits),
                "difficulty": difficulty(tip.block.header.bits),
                "time": tip.block.header.time,
                "mediantime": n.chain.median_time_past(n.chain.tip()),
                "verificationprogress": 1,
                "initialblockdownload": false,
                "chainwork": tip.chainwork.to_be_bytes().to_lower_hex_string(),
                "size_on_disk": 0,
                "pruned": false,
                "warnings": "",
            }))
        }
        "getzmqnotifications" => {
            arity(p, 0, 0)?;
            Ok(json!(shared
                .zmq
                .iter()
                .map(|z| json!({"type": format!("pub{}", z.topic.name()), "address": z.endpoint, "hwm": 1000}))
                .collect::<Vec<_>>()))
        }
        "getblockcount" => {
            arity(p, 0, 0)?;
            Ok(json!(n.chain.height()))
        }
        "getbestblockhash" => {
            arity(p, 0, 0)?;
            Ok(json!(n.chain.tip().to_string()))
        }
        "getdifficulty" => {
            arity(p, 0, 0)?;
            Ok(json!(difficulty(n.chain.bits)))
        }
        "getblockhash" => {
            arity(p, 1, 1)?;
            let h = arg(p, 0)
                .and_then(Value::as_u64)
                .ok_or_else(|| e(-3, "Expected type number"))?;
            n.chain
                .active
                .get(h as usize)
                .map(|x| json!(x.to_string()))
                .ok_or_else(|| e(-8, "Block height out of range"))
        }
        "getblockheader" => {
            arity(p, 1, 2)?;
            let hash = hash_arg(p, 0)?;
            let verbose = arg(p, 1).and_then(Value::as_bool).unwrap_or(true);
            let entry = n
                .chain
                .blocks
                .get(&hash)
                .ok_or_else(|| e(-5, "Block not found"))?;
            if verbose {
                Ok(header_json(&n, &hash).expect("exists"))
            } else {
                Ok(json!(serialize_hex(&entry.block.header)))
            }
        }
        "getblock" => {
            arity(p, 1, 2)?;
            let hash = hash_arg(p, 0)?;
            let verbosity = match arg(p, 1) {
                None => 1,
                Some(Value::Bool(b)) => u64::from(*b),
                Some(v) => v.as_u64().ok_or_else(|| e(-3, "Expected type number"))?,
            };
            let entry = n
                .chain
                .blocks
                .get(&hash)
                .ok_or_else(|| e(-5, "Block not found"))?;
            if verbosity == 0 {
                return Ok(json!(serialize_hex(&entry.block)));
            }
            let mut v = header_json(&n, &hash).expect("exists");
            // weight = 3 x stripped size + size
            let stripped = (entry.block.weight().to_wu() as usize - entry.block.total_size()) / 3;
            v["strippedsize"] = json!(stripped);
            v["size"] = json!(entry.block.total_size());
            v["weight"] = json!(entry.block.weight().to_wu());
            v["coinbase_tx"] = coinbase_tx_json(&entry.block);
            v["tx"] = if verbosity >= 2 {
                let active = n.chain.is_active(&hash);
                json!(entry
                    .block
                    .txdata
                    .iter()
                    .map(|t| {
                        let mut j = tx_json(t);
                        if let Some(fee) = active.then(|| fee_of(&n, t)).flatten() {
                            j["fee"] = json!(fee.to_btc());
                        }
                        if verbosity >= 3 && active && !t.is_coinbase() {
                            for (i, input) in t.input.iter().enumerate() {
                                if let Some(prev) = prevout_json(&n, &input.previous_output) {
                                    j["vin"][i]["prevout"] = prev;
                                }
                            }
                        }
                        j
                    })
                    .collect::<Vec<_>>())
            } else {
                json!(entry
                    .block
                    .txdata
                    .iter()
                    .map(|t| t.compute_txid().to_string())
                    .collect::<Vec<_>>())
            };
            Ok(v)
        }
        "getrawtransaction" => {
            arity(p, 1, 3)?;
            let s = arg(p, 0)
                .and_then(Value::as_str)
                .ok_or_else(|| e(-3, "Expected type string"))?;
            let txid = Txid::from_str(s).map_err(|_| e(-8, "txid must be hexadecimal string"))?;
            let verbose = match arg(p, 1) {
                Some(Value::Bool(b)) => *b,
                Some(Value::Number(x)) => x.as_u64().unwrap_or(0) > 0,
                _ => false,
            };
            let in_block = match arg(p, 2) {
                None => None,
                Some(v) => Some(
                    v.as_str()
                        .and_then(|s| BlockHash::from_str(s).ok())
                        .ok_or_else(|| e(-8, "blockhash must be hexadecimal string"))?,
                ),
            };
            let (tx, block) = if let Some(b) = in_block {
                // Core looks in that block only, and says whether it is active.
                let entry = n
                    .chain
                    .blocks
                    .get(&b)
                    .ok_or_else(|| e(-5, "Block hash not found"))?;
                let tx = entry
                    .block
                    .txdata
                    .iter()
                    .find(|t| t.compute_txid() == txid)
                    .ok_or_else(|| e(-5, "No such transaction found in the provided block. Use gettransaction for wallet transactions."))?;
                (tx.clone(), Some(b))
            } else if let Some(pd) = n.mempool.txs.get(&txid) {
                (pd.tx.clone(), None)
            } else if let Some((b, i)) = n.chain.tx_index.get(&txid) {
                (n.chain.blocks[b].block.txdata[*i].clone(), Some(*b))
            } else {
                return Err(e(-5, "No such mempool or blockchain transaction. Use gettransaction for wallet transactions."));
            };
            if !verbose {
                return Ok(json!(serialize_hex(&tx)));
            }
            let mut v = tx_json(&tx);
            if in_block.is_some() {
                v["in_active_chain"] = json!(block.is_some_and(|b| n.chain.is_active(&b)));
            }
            if let Some(b) = block {
                let e = &n.chain.blocks[&b];
                v["blockhash"] = json!(b.to_string());
                if n.chain.is_active(&b) {
                    v["confirmations"] = json!(n.chain.height() - e.height + 1);
                    v["time"] = json!(e.block.header.time);
                    v["blocktime"] = json!(e.block.header.time);
                } else {
                    v["confirmations"] = json!(0);
                }
            }
            Ok(v)
        }
        "sendrawtransaction" => {
            arity(p, 1, 2)?;
            let raw = hex_arg(p, 0)?;
            let tx: Transaction = deserialize(&raw).map_err(|_| {
                e(
                    -22,
                    "TX decode failed. Make sure the tx has at least one input.",
                )
            })?;
            n.accept_tx(tx)
                .map(|t| json!(t.to_string()))
                .map_err(|r| e(r.code, r.reason))
        }
        "testmempoolaccept" => {
            arity(p, 1, 2)?;
            let list = arg(p, 0)
                .and_then(Value::as_array)
                .ok_or_else(|| e(-3, "Expected type array"))?;
            let mut out = Vec::new();
            for item in list {
                let raw = item
                    .as_str()
                    .and_then(|s| Vec::<u8>::from_hex(s).ok())
                    .ok_or_else(|| e(-22, "TX decode failed"))?;
                let tx: Transaction = deserialize(&raw).map_err(|_| e(-22, "TX decode failed"))?;
                let mut v = json!({"txid": tx.compute_txid().to_string(), "wtxid": tx.compute_wtxid().to_string()});
                match n.mempool.check(&n.chain, &tx) {
                    Ok((fee, _)) => {
                        v["allowed"] = json!(true);
                        v["vsize"] = json!(tx.vsize());
                        v["fees"] = json!({"base": fee.to_btc()});
                    }
                    Err(r) => {
                        v["allowed"] = json!(false);
                        // Core: the reason, and the reason with its details
                        // (`TxValidationState::ToString`), except for missing inputs.
                        let short = r.reason.split(", ").next().unwrap_or(&r.reason);
                        if r.reason == "bad-txns-inputs-missingorspent" {
                            v["reject-reason"] = json!("missing-inputs");
                        } else {
                            v["reject-reason"] = json!(short);
                            v["reject-details"] = json!(r.reason);
                        }
                    }
                }
                out.push(v);
            }
            Ok(json!(out))
        }
        "getrawmempool" => {
            arity(p, 0, 2)?;
            let verbose = matches!(arg(p, 0), Some(Value::Bool(true)));
            let sequence = matches!(arg(p, 1), Some(Value::Bool(true)));
            if verbose && sequence {
                return Err(e(
                    -8,
                    "Verbose results cannot contain mempool sequence values.",
                ));
            }
            if sequence {
                // Core's sequence counts additions and removals; the pool's generation
                // likewise moves on every change.
                return Ok(json!({
                    "txids": n.mempool.order.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
                    "mempool_sequence": n.mempool.generation,
                }));
            }
            if verbose {
                let mut m = serde_json::Map::new();
                for t in &n.mempool.order {
                    if let Some(e) = mempool_entry_json(&n, t) {
                        m.insert(t.to_string(), e);
                    }
                }
                return Ok(Value::Object(m));
            }
            Ok(json!(n
                .mempool
                .order
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()))
        }
        "decoderawtransaction" => {
            arity(p, 1, 2)?;
            let raw = hex_arg(p, 0)?;
            let tx: Transaction = deserialize(&raw).map_err(|_| e(-22, "TX decode failed"))?;
            Ok(crate::core_json::tx_json(
                &tx,
                bitcoin::Network::Regtest,
                false,
            ))
        }
        "validateaddress" => {
            arity(p, 1, 1)?;
            let address = p[0].as_str().ok_or_else(|| {
                e(
                    -3,
                    "JSON value of type non-string is not of expected type string",
                )
            })?;
            Ok(crate::core_json::validate_address(
                address,
                bitcoin::Network::Regtest,
            ))
        }
        "decodescript" => {
            arity(p, 1, 1)?;
            let script = bitcoin::ScriptBuf::from_bytes(hex_arg(p, 0)?);
            Ok(crate::core_json::decode_script_json(
                &script,
                bitcoin::Network::Regtest,
            ))
        }
        "gettxout" => {
            arity(p, 2, 3)?;
            let s = arg(p, 0)
                .and_then(Value::as_str)
                .ok_or_else(|| e(-3, "Expected type string"))?;
            let txid = Txid::from_str(s).map_err(|_| e(-8, "txid must be hexadecimal string"))?;
            let vout = arg(p, 1)
                .and_then(Value::as_u64)
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| e(-3, "Expected type number"))?;
            let include_mempool = !matches!(arg(p, 2), Some(Value::Bool(false)));
            let op = bitcoin::OutPoint { txid, vout };
            let spent_in_pool = include_mempool
                && n.mempool
                    .txs
                    .values()
                    .any(|t| t.tx.input.iter().any(|i| i.previous_output == op));
            if spent_in_pool {
                return Ok(Value::Null);
            }
            let best = n.chain.active.last().map(|h| h.to_string());
            let (txout, confirmations, coinbase) = match n.chain.coin(&op) {
                Some(c) => (c.txout.clone(), n.chain.height() - c.height + 1, c.coinbase),
                None => match n.mempool.txs.get(&txid).filter(|_| include_mempool) {
                    Some(pd) => match pd.tx.output.get(vout as usize) {
                        Some(o) => (o.clone(), 0, false),
                        None => return Ok(Value::Null),
                    },
                    None => return Ok(Value::Null),
                },
            };
            Ok(json!({
                "bestblock": best,
                "confirmations": confirmations,
                "value": txout.value.to_btc(),
                "scriptPubKey": crate::core_json::script_pubkey_json(&txout.script_pubkey, bitcoin::Network::Regtest),
                "coinbase": coinbase,
            }))
        }
        "getmempoolinfo" => {
            arity(p, 0, 0)?;
            let bytes: usize = n.mempool.txs.values().map(|t| t.tx.vsize()).sum();
            let total_fee: bitcoin::Amount = n.mempool.txs.values().map(|t| t.fee).sum();
            let rate = |sat_per_kvb: u64| bitcoin::Amount::from_sat(sat_per_kvb).to_btc();
            let relay = rate(crate::mempool::MIN_RELAY_SAT_PER_KVB);
            Ok(json!({
                "loaded": true,
                "size": n.mempool.txs.len(),
                "bytes": bytes,
                // What the pool's transactions take in memory, roughly (Core counts its
                // allocations).
                "usage": n.mempool.txs.values().map(|t| t.tx.total_size() + 200).sum::<usize>(),
                "total_fee": total_fee.to_btc(),
                "maxmempool": 300_000_000,
                "mempoolminfee": relay,
                "minrelaytxfee": relay,
                "incrementalrelayfee": rate(crate::mempool::INCREMENTAL_RELAY_SAT_PER_KVB),
                "unbroadcastcount": 0,
                "permitbaremultisig": n.mempool.policy.permit_bare_multisig,
                "maxdatacarriersize": crate::policy::MAX_OP_RETURN_RELAY,
                "limitclustercount": 64,
                "limitclustersize": 101_000,
                "optimal": true,
            }))
        }
        "getblockstats" => {
            arity(p, 1, 2)?;
            crate::stats::getblockstats(&n, p)
        }
        "getchaintxstats" => {
            arity(p, 0, 2)?;
            crate::stats::getchaintxstats(&n, p)
        }
        "gettxoutsetinfo" => {
            arity(p, 0, 3)?;
            crate::stats::gettxoutsetinfo(&n, p)
        }
        "gettxoutproof" => {
            arity(p, 1, 2)?;
            crate::stats::gettxoutproof(&n, p)
        }
        "verifytxoutproof" => {
            arity(p, 1, 1)?;
            crate::stats::verifytxoutproof(&n, p)
        }
        "getmempoolancestors" | "getmempooldescendants" => {
            arity(p, 1, 2)?;
            let s = arg(p, 0)
                .and_then(Value::as_str)
                .ok_or_else(|| e(-3, "Expected type string"))?;
            let txid = Txid::from_str(s).map_err(|_| e(-8, "txid must be hexadecimal string"))?;
            if !n.mempool.txs.contains_key(&txid) {
                return Err(e(-5, "Transaction not in mempool"));
            }
            let verbose = matches!(arg(p, 1), Some(Value::Bool(true)));
            let r = relatives(&n, &txid);
            let mut set = if method == "getmempoolancestors" {
                r.ancestors
            } else {
                r.descendants
            };
            set.remove(&txid);
            let mut ids: Vec<Txid> = set.into_iter().collect();
            ids.sort();
            if !verbose {
                return Ok(json!(ids.iter().map(|t| t.to_string()).collect::<Vec<_>>()));
            }
            let mut m = serde_json::Map::new();
            for t in ids {
                if let Some(entry) = mempool_entry_json(&n, &t) {
                    m.insert(t.to_string(), entry);
                }
            }
            Ok(Value::Object(m))
        }
        "getmempoolentry" => {
            arity(p, 1, 1)?;
            let s = arg(p, 0)
                .and_then(Value::as_str)
                .ok_or_else(|| e(-3, "Expected type string"))?;
            let txid = Txid::from_str(s).map_err(|_| e(-8, "txid must be hexadecimal string"))?;
            mempool_entry_json(&n, &txid).ok_or_else(|| e(-5, "Transaction not in mempool"))
        }
        "estimatesmartfee" => {
            arity(p, 1, 2)?;
            let target = arg(p, 0)
                .and_then(Value::as_i64)
                .ok_or_else(|| e(-3, "Expected type number"))?;
            if !(1..=i64::from(crate::fees::MAX_TARGET)).contains(&target) {
                return Err(e(
                    -8,
                    format!(
                        "Invalid conf_target, must be between 1 and {}",
                        crate::fees::MAX_TARGET
                    ),
                ));
            }
            let mode = match arg(p, 1) {
                None => crate::fees::Mode::Conservative,
                Some(v) => crate::fees::Mode::parse(
                    v.as_str().ok_or_else(|| e(-3, "Expected type string"))?,
                )
                .map_err(|m| e(-8, m))?,
            };
            Ok(crate::fees::smart_fee_json(&n.chain, target as u32, mode))
        }
        "getblocktemplate" => {
            arity(p, 0, 1)?;
            let script = bitcoin::ScriptBuf::new();
            let cands = n.mempool.block_candidates();
            let fees: bitcoin::Amount = cands.iter().map(|(_, f)| *f).sum();
            let block = n.chain.make_block(
                script,
                cands.iter().map(|(t, _)| t.clone()).collect(),
                fees,
                now(),
                &[],
            );
            let height = n.chain.height() + 1;
            let txs: Vec<Value> = cands
                .iter()
                .map(|(t, f)| {
                    json!({
                        "data": serialize_hex(t),
                        "txid": t.compute_txid().to_string(),
                        "hash": t.compute_wtxid().to_string(),
                        "depends": [],
                        "fee": f.to_sat(),
                        "sigops": 0,
                        "weight": t.weight().to_wu(),
                    })
                })
                .collect();
            let witness_commitment = block.txdata[0]
                .output
                .iter()
                .find(|o| {
                    o.script_pubkey
                        .as_bytes()
                        .starts_with(&[0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed])
                })
                .map(|o| o.script_pubkey.as_bytes().to_lower_hex_string());
            let target = n.chain.target();
            let mut v = json!({
                "capabilities": ["proposal"],
                "version": block.header.version.to_consensus(),
                "rules": ["csv", "!segwit", "taproot"],
                "vbavailable": {},
                "vbrequired": 0,
                "previousblockhash": block.header.prev_blockhash.to_string(),
                "transactions": txs,
                "coinbaseaux": {},
                "coinbasevalue": (crate::chain::subsidy(height) + fees).to_sat(),
                "longpollid": format!("{}{}", n.chain.tip(), n.mempool.txs.len()),
                "target": target.to_be_bytes().to_lower_hex_string(),
                "mintime": n.chain.median_time_past(n.chain.tip()) + 1,
                "mutable": ["time", "transactions", "prevblock"],
                "noncerange": "00000000ffffffff",
                "sigoplimit": 80000,
                "sizelimit": 4000000,
                "weightlimit": 4000000,
                "curtime": block.header.time,
                "bits": format!("{:08x}", block.header.bits.to_consensus()),
                "height": height,
            });
            if let Some(c) = witness_commitment {
                v["default_witness_commitment"] = json!(c);
            }
            Ok(v)
        }
        "submitblock" => {
            arity(p, 1, 2)?;
            let raw = hex_arg(p, 0).map_err(|_| e(-22, "Block decode failed"))?;
            let block: Block = deserialize(&raw).map_err(|_| e(-22, "Block decode failed"))?;
            match n.submit_block(block) {
                Ok(None) => Ok(Value::Null),
                Ok(Some(s)) => Ok(json!(s)),
                Err(r) => Ok(json!(r)),
            }
        }
        "submitheader" => {
            arity(p, 1, 1)?;
            let raw = hex_arg(p, 0).map_err(|_| e(-22, "Block header decode failed"))?;
            let h: bitcoin::block::Header =
                deserialize(&raw).map_err(|_| e(-22, "Block header decode failed"))?;
            match n.chain.submit_header(h) {
                Ok(()) => Ok(Value::Null),
                Err((true, _)) => Err(e(
                    -25,
                    format!("Must submit previous header ({}) first", h.prev_blockhash),
                )),
                Err((false, r)) => Err(e(-25, r)),
            }
        }
        "generateblock" => {
            arity(p, 2, 3)?;
            let script = address_script(arg(p, 0).and_then(Value::as_str).unwrap_or(""))?;
            if arg(p, 2).and_then(Value::as_bool) == Some(false) {
                return Err(e(-8, "submit=false is not supported by the embedded node"));
            }
            let list = arg(p, 1)
                .and_then(Value::as_array)
                .ok_or_else(|| e(-3, "Expected type array"))?;
            let mut txs: Vec<Transaction> = Vec::new();
            let mut fees = bitcoin::Amount::ZERO;
            for item in list {
                let s = item.as_str().ok_or_else(|| e(-3, "Expected type string"))?;
                if let Ok(txid) = Txid::from_str(s) {
                    let pd = n
                        .mempool
                        .txs
                        .get(&txid)
                        .ok_or_else(|| e(-5, format!("Transaction {txid} not in mempool.")))?;
                    fees += pd.fee;
                    txs.push(pd.tx.clone());
                    continue;
                }
                let tx: Transaction = Vec::<u8>::from_hex(s)
                    .ok()
                    .and_then(|raw| deserialize(&raw).ok())
                    .ok_or_else(|| {
                        e(
                            -22,
                            format!("Transaction decode failed for {s}. Make sure the tx has at least one input."),
                        )
                    })?;
                let input: bitcoin::Amount = tx
                    .input
                    .iter()
                    .filter_map(|i| {
                        n.chain
                            .coin(&i.previous_output)
                            .map(|c| c.txout.value)
                            .or_else(|| {
                                txs.iter()
                                    .find(|t| t.compute_txid() == i.previous_output.txid)
                                    .and_then(|t| t.output.get(i.previous_output.vout as usize))
                                    .map(|o| o.value)
                            })
                    })
                    .sum();
                let out: bitcoin::Amount = tx.output.iter().map(|o| o.value).sum();
                fees += input.checked_sub(out).unwrap_or(bitcoin::Amount::ZERO);
                txs.push(tx);
            }
            let t = now().max(n.chain.tip_entry().block.header.time + 1);
            let hash = n
                .generate_with(script, txs, fees, t)
                .map_err(|r| e(-25, format!("TestBlockValidity failed: {r}")))?;
            Ok(json!({"hash": hash.to_string()}))
        }
        "generatetoaddress" => {
            arity(p, 2, 3)?;
            let count = if method == "generatetoaddress" {
                arg(p, 0)
                    .and_then(Value::as_u64)
                    .ok_or_else(|| e(-3, "Expected type number"))?
            } else {
                1
            };
            let addr_ix = if method == "generatetoaddress" { 1 } else { 0 };
            let script = address_script(arg(p, addr_ix).and_then(Value::as_str).unwrap_or(""))?;
            let mut hashes = Vec::new();
            for _ in 0..count {
                let t = now().max(n.chain.tip_entry().block.header.time + 1);
                hashes.push(
                    n.generate(script.clone(), t)
                        .map_err(|r| e(-1, r))?
                        .to_string(),
                );
            }
            Ok(json!(hashes))
        }
        "getchaintips" => {
            arity(p, 0, 0)?;
            Ok(json!(n
                .chain
                .tips()
                .into_iter()
                .map(|(h, height, len, status)| json!({"height": height, "hash": h.to_string(), "branchlen": len, "status": status}))
                .collect::<Vec<_>>()))
        }
        "invalidateblock" | "reconsiderblock" | "preciousblock" => {
            arity(p, 1, 1)?;
            let hash = hash_arg(p, 0)?;
            let before = n.chain.active.clone();
            let r = match method {
                "invalidateblock" => n.chain.invalidate(hash),
                "reconsiderblock" => n.chain.reconsider(hash),
                _ => n.chain.precious(hash),
            };
            n.after_change(&before);
            r.map(|()| Value::Null).map_err(|m| e(-5, m))
        }
        "getnetworkinfo" => {
            arity(p, 0, 0)?;
            Ok(
                json!({"version": 280100, "subversion": "/rexe-regtest:0.1.0/", "protocolversion": 70016,
                      "localservices": "0000000000000409", "connections": 0, "networkactive": true,
                      "relayfee": 0.00001, "incrementalfee": 0.00001, "warnings": ""}),
            )
        }
        "uptime" => {
            arity(p, 0, 0)?;
            Ok(json!(n.started.elapsed().as_secs()))
        }
        "stop" => {
            shared
                .stopping
                .store(true, std::sync::atomic::Ordering::SeqCst);
            shared.stop.notify_waiters();
            Ok(json!("Bitcoin Core stopping"))
        }
        _ => Err(e(-32601, "Method not found")),
    }
}

fn one(shared: &Shared, wallet: Option<&str>, req: &jsonrpc::Entry) -> Value {
    let (id, v2, r) = match req {
        // This server has always called a non-object request a missing method.
        Err(inv) => (inv.id(), inv.v2(), Err(e(-32600, "Missing method"))),
        Ok(r) => (
            r.id.clone(),
            r.v2,
            call_for_wallet(shared, wallet, &r.method, &r.params),
        ),
    };
    let r = r.map_err(|(code, message)| jsonrpc::error_object(code, message));
    jsonrpc::response(id, v2, r)
}

/// The wallet name of a `/wallet/<name>` path, percent-decoded as Core does.
fn wallet_of_path(path: &str) -> Option<String> {
    let raw = path.strip_prefix("/wallet/")?;
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
            if let Some(x) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(x);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let wallet = wallet_of_path(uri.path());
    // The cookie (compared in constant time) before the body is read.
    let creds: Vec<&str> = std::iter::once(shared.cookie.as_str())
        .chain(shared.rpc_auth.as_deref())
        .collect();
    let req = match rexe_rpc::http::read_jsonrpc(&headers, body, &creds, &shared.limits).await {
        Ok(req) => req,
        Err(Refusal::Unauthorized) => return rexe_rpc::http::unauthorized(),
        Err(Refusal::Body(e)) => return e.status().into_response(),
        Err(Refusal::Json(jsonrpc::BodyError::Parse(_))) => {
            let v = json!({"result": null, "error": {"code": -32700, "message": "Parse error"}, "id": null});
            return rexe_rpc::http::json_line(StatusCode::INTERNAL_SERVER_ERROR, &v);
        }
        Err(Refusal::Json(e @ jsonrpc::BodyError::BatchTooLarge { .. })) => {
            let v = json!({"result": null, "error": {"code": -32600, "message": e.to_string()}, "id": null});
            return rexe_rpc::http::json_line(StatusCode::PAYLOAD_TOO_LARGE, &v);
        }
    };
    // Each reply with its text as bitcoind writes it (amounts with eight decimals).
    let (out, text) = match answer_inline(&shared, wallet.as_deref(), &req) {
        Some(answer) => answer,
        None => answer_blocking(shared, wallet, req).await,
    };
    let status = match out
        .get("error")
        .and_then(|e| e.get("code"))
        .and_then(Value::as_i64)
    {
        None => StatusCode::OK,
        Some(-32601) => StatusCode::NOT_FOUND,
        Some(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        format!("{text}\n"),
    )
        .into_response()
}

/// The reply to a single [quick](is_quick) request, if the node's lock is free right now.
fn answer_inline(
    shared: &Shared,
    wallet: Option<&str>,
    req: &jsonrpc::Body,
) -> Option<(Value, String)> {
    let jsonrpc::Body::Single(Ok(r)) = req else {
        return None;
    };
    if !is_quick(&r.method) {
        return None;
    }
    let n = match shared.node.try_lock() {
        Ok(n) => n,
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => return None,
    };
    let res = call_locked(shared, n, wallet, &r.method, &r.params)
        .map_err(|(code, message)| jsonrpc::error_object(code, message));
    let v = jsonrpc::response(r.id.clone(), r.v2, res);
    let text = crate::json_text::reply_text(&v, Some(&r.method));
    Some((v, text))
}

/// The replies to `req`, computed on a blocking thread (each call waits for the node's lock).
async fn answer_blocking(
    shared: Arc<Shared>,
    wallet: Option<String>,
    req: jsonrpc::Body,
) -> (Value, String) {
    tokio::task::spawn_blocking(move || {
        let w = wallet.as_deref();
        let reply = |r: &Result<jsonrpc::Request, jsonrpc::Invalid>| {
            let v = one(&shared, w, r);
            let method = r.as_ref().ok().map(|r| r.method.as_str());
            let text = crate::json_text::reply_text(&v, method);
            (v, text)
        };
        match &req {
            jsonrpc::Body::Batch(reqs) => {
                let all: Vec<(Value, String)> = reqs.iter().map(reply).collect();
                let text = format!(
                    "[{}]",
                    all.iter()
                        .map(|(_, t)| t.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                );
                (
                    Value::Array(all.into_iter().map(|(v, _)| v).collect()),
                    text,
                )
            }
            jsonrpc::Body::Single(r) => reply(r),
        }
    })
    .await
    .unwrap_or((Value::Null, "null".to_string()))
}

/// The router serving `shared`; with `rest`, bitcoind's REST interface too ([`crate::rest`],
/// `GET /rest/…`, without authentication as in Core).
pub fn router(shared: Arc<Shared>, rest: bool) -> Router {
    let r = Router::new()
        .route("/", post(handle))
        .route("/wallet/", post(handle))
        .route("/wallet/{name}", post(handle));
    let r = if rest {
        r.route(
            "/rest/{*path}",
            axum::routing::get(crate::rest::handle).post(crate::rest::handle),
        )
    } else {
        r
    };
    r.layer(DefaultBodyLimit::disable()).with_state(shared)
}
