//! Electrum protocol 1.4 server (newline-delimited JSON-RPC over TCP, batches,
//! notifications), following <https://electrum-protocol.readthedocs.io/en/latest/> and
//! electrs' answers: headers, scripthash history/balance/unspent/mempool/subscribe (status
//! hashes as the protocol defines), transaction get/broadcast/merkle/id_from_pos, fees.
//!
//! Scripthash queries scan the active chain and the mempool on each call: simple and
//! always consistent after reorgs, fine at regtest sizes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::hashes::{sha256, sha256d, Hash};
use bitcoin::{OutPoint, Txid};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::node::Node;
use crate::rpc::Shared;

/// Longest request line accepted; a longer one closes that connection.
pub const MAX_LINE: u64 = 4 * 1024 * 1024;
/// Most headers `blockchain.block.headers` returns at once (electrs' limit).
pub const MAX_HEADERS: u64 = 2016;

type Res = Result<Value, (i64, String)>;

fn err(code: i64, m: impl Into<String>) -> (i64, String) {
    (code, m.into())
}

/// Serves Electrum clients on `listener` until the node stops.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        tokio::select! {
            _ = shared.stop.notified() => return,
            acc = listener.accept() => {
                let Ok((sock, _)) = acc else { continue };
                let sh = shared.clone();
                tokio::spawn(async move {
                    if let Err(e) = client(sock, sh).await {
                        tracing::debug!(error = %e, "electrum client closed");
                    }
                });
            }
        }
    }
}

/// Per-connection subscription state.
#[derive(Default)]
struct Subs {
    headers: Option<u32>,
    tip: Option<bitcoin::BlockHash>,
    scripthashes: HashMap<String, Option<String>>,
    /// Chain tip and mempool fingerprint the scripthash statuses were last computed at.
    seen: Option<(bitcoin::BlockHash, usize, u64)>,
}

/// A line from the client, or the news that it sent one too long.
enum Line {
    Text(Vec<u8>),
    TooLong,
}

async fn read_lines(
    rd: tokio::net::tcp::OwnedReadHalf,
    tx: tokio::sync::mpsc::Sender<Line>,
) -> std::io::Result<()> {
    let mut rd = BufReader::new(rd);
    loop {
        let mut buf = Vec::new();
        let n = (&mut rd)
            .take(MAX_LINE + 1)
            .read_until(b'\n', &mut buf)
            .await?;
        if n == 0 {
            return Ok(());
        }
        if buf.len() as u64 > MAX_LINE {
            let _ = tx.send(Line::TooLong).await;
            return Ok(());
        }
        if tx.send(Line::Text(buf)).await.is_err() {
            return Ok(());
        }
    }
}

async fn client(sock: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    let (rd, mut wr) = sock.into_split();
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let reader = tokio::spawn(read_lines(rd, tx));
    let mut subs = Subs::default();
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
    let r = async {
        loop {
            tokio::select! {
                line = rx.recv() => match line {
                    None => return Ok(()),
                    Some(Line::TooLong) => {
                        let reply = resp(Value::Null, Err(err(-32600, "request too long")));
                        wr.write_all(format!("{reply}\n").as_bytes()).await?;
                        return Ok(());
                    }
                    Some(Line::Text(line)) => {
                        let text = String::from_utf8_lossy(&line);
                        let text = text.trim();
                        if text.is_empty() {
                            continue;
                        }
                        let reply = handle_line(&shared, &mut subs, text);
                        wr.write_all(format!("{reply}\n").as_bytes()).await?;
                    }
                },
                _ = tick.tick() => {
                    for note in notifications(&shared, &mut subs) {
                        wr.write_all(format!("{note}\n").as_bytes()).await?;
                    }
                }
                _ = shared.stop.notified() => return Ok(()),
            }
        }
    }
    .await;
    reader.abort();
    r
}

fn resp(id: Value, r: Res) -> Value {
    match r {
        Ok(v) => json!({"jsonrpc": "2.0", "id": id, "result": v}),
        Err((code, message)) => {
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
        }
    }
}

/// Answers one line: a request or a batch.
fn handle_line(shared: &Shared, subs_state: &mut impl SubsState, text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Err(e) => resp(Value::Null, Err(err(-32700, format!("parse error: {e}")))),
        Ok(Value::Array(reqs)) if !reqs.is_empty() => Value::Array(
            reqs.iter()
                .map(|r| one(shared, subs_state, r))
                .collect::<Vec<_>>(),
        ),
        Ok(v) => one(shared, subs_state, &v),
    }
}

/// Access to a connection's subscriptions (lets tests drive [`handle_line`]).
trait SubsState {
    /// Records a headers subscription at `height`.
    fn sub_headers(&mut self, tip: bitcoin::BlockHash, height: u32);
    /// Records a scripthash subscription with its current status.
    fn sub_scripthash(&mut self, sh: String, status: Option<String>);
    /// Drops a scripthash subscription; whether it existed.
    fn unsub_scripthash(&mut self, sh: &str) -> bool;
}

impl SubsState for Subs {
    fn sub_headers(&mut self, tip: bitcoin::BlockHash, height: u32) {
        self.headers = Some(height);
        self.tip = Some(tip);
    }
    fn sub_scripthash(&mut self, sh: String, status: Option<String>) {
        self.scripthashes.insert(sh, status);
        self.seen = None;
    }
    fn unsub_scripthash(&mut self, sh: &str) -> bool {
        self.scripthashes.remove(sh).is_some()
    }
}

fn one(shared: &Shared, subs: &mut impl SubsState, req: &Value) -> Value {
    let id = req.get("id").cloned().unwrap_or(Value::Null);
    let Some(method) = req.get("method").and_then(Value::as_str) else {
        return resp(id, Err(err(-32600, "invalid request: missing method")));
    };
    let params = match req.get("params") {
        None | Some(Value::Null) => Value::Array(vec![]),
        Some(p @ Value::Array(_)) => p.clone(),
        Some(_) => return resp(id, Err(err(-32602, "params must be an array"))),
    };
    let r = dispatch(shared, subs, method, &params);
    resp(id, r)
}

fn p_str<'a>(p: &'a Value, i: usize, name: &str) -> Result<&'a str, (i64, String)> {
    p.get(i)
        .and_then(Value::as_str)
        .ok_or_else(|| err(-32602, format!("missing or invalid parameter {name}")))
}

fn p_u64(p: &Value, i: usize, name: &str) -> Result<u64, (i64, String)> {
    p.get(i)
        .and_then(Value::as_u64)
        .ok_or_else(|| err(-32602, format!("missing or invalid parameter {name}")))
}

fn p_opt_u64(p: &Value, i: usize) -> u64 {
    p.get(i).and_then(Value::as_u64).unwrap_or(0)
}

fn scripthash_arg(p: &Value) -> Result<String, (i64, String)> {
    let s = p_str(p, 0, "scripthash")?;
    match hex::decode(s) {
        Ok(b) if b.len() == 32 => Ok(s.to_ascii_lowercase()),
        _ => Err(err(-32602, format!("invalid scripthash {s}"))),
    }
}

/// The Electrum script hash of a script: SHA256, bytes reversed, hex.
pub fn script_hash(script: &bitcoin::Script) -> String {
    let mut b = sha256::Hash::hash(script.as_bytes()).to_byte_array();
    b.reverse();
    hex::encode(b)
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Node> {
    shared.node.lock().unwrap_or_else(|p| p.into_inner())
}

fn header_hex(n: &Node, height: u32) -> Option<String> {
    let h = n.chain.active.get(height as usize)?;
    Some(serialize_hex(&n.chain.blocks[h].block.header))
}

fn dispatch(shared: &Shared, subs: &mut impl SubsState, method: &str, p: &Value) -> Res {
    match method {
        "server.version" => Ok(json!([
            concat!("rexe-regtest ", env!("CARGO_PKG_VERSION")),
            "1.4"
        ])),
        "server.banner" => Ok(json!("rexe embedded Bitcoin regtest node")),
        "server.donation_address" => Ok(json!("")),
        "server.ping" => Ok(Value::Null),
        "server.peers.subscribe" => Ok(json!([])),
        "server.features" => {
            let g = bitcoin::constants::genesis_block(bitcoin::Network::Regtest).block_hash();
            Ok(json!({
                "genesis_hash": g.to_string(),
                "hosts": {},
                "protocol_max": "1.4",
                "protocol_min": "1.4",
                "pruning": null,
                "server_version": concat!("rexe-regtest ", env!("CARGO_PKG_VERSION")),
                "hash_function": "sha256",
            }))
        }
        "blockchain.headers.subscribe" => {
            let n = lock(shared);
            let height = n.chain.height();
            subs.sub_headers(n.chain.tip(), height);
            Ok(json!({"height": height, "hex": header_hex(&n, height)}))
        }
        "blockchain.block.header" => {
            let height = p_u64(p, 0, "height")?;
            if p_opt_u64(p, 1) != 0 {
                return Err(err(-32602, "cp_height is not supported"));
            }
            let n = lock(shared);
            u32::try_from(height)
                .ok()
                .and_then(|h| header_hex(&n, h))
                .map(Value::from)
                .ok_or_else(|| err(-32602, format!("height {height} out of range")))
        }
        "blockchain.block.headers" => {
            let start = p_u64(p, 0, "start_height")?;
            let count = p_u64(p, 1, "count")?.min(MAX_HEADERS);
            if p_opt_u64(p, 2) != 0 {
                return Err(err(-32602, "cp_height is not supported"));
            }
            let n = lock(shared);
            let mut hex = String::new();
            let mut got = 0u64;
            let tip = n.chain.height() as u64;
            let mut h = start;
            while got < count && h <= tip {
                hex.push_str(&header_hex(&n, h as u32).unwrap_or_default());
                got += 1;
                h += 1;
            }
            Ok(json!({"count": got, "hex": hex, "max": MAX_HEADERS}))
        }
        "blockchain.estimatefee" => {
            p_u64(p, 0, "number")?;
            Ok(json!(0.00001))
        }
        "blockchain.relayfee" => Ok(json!(0.00001)),
        "mempool.get_fee_histogram" => {
            let n = lock(shared);
            let mut rates: Vec<(u64, u64)> = n
                .mempool
                .txs
                .values()
                .map(|pd| {
                    let vsize = pd.tx.vsize() as u64;
                    (pd.fee.to_sat() / vsize.max(1), vsize)
                })
                .collect();
            rates.sort_by(|a, b| b.cmp(a));
            let mut out: Vec<(u64, u64)> = Vec::new();
            for (r, v) in rates {
                match out.last_mut() {
                    Some(last) if last.0 == r => last.1 += v,
                    _ => out.push((r, v)),
                }
            }
            Ok(json!(out
                .iter()
                .map(|(r, v)| json!([r, v]))
                .collect::<Vec<_>>()))
        }
        "blockchain.scripthash.get_history" => {
            let sh = scripthash_arg(p)?;
            let n = lock(shared);
            let s = scan(&n, &sh);
            Ok(json!(s.history_json()))
        }
        "blockchain.scripthash.get_mempool" => {
            let sh = scripthash_arg(p)?;
            let n = lock(shared);
            let s = scan(&n, &sh);
            Ok(json!(s
                .history_json()
                .into_iter()
                .filter(|v| v["height"].as_i64().unwrap_or(0) <= 0)
                .collect::<Vec<_>>()))
        }
        "blockchain.scripthash.get_balance" => {
            let sh = scripthash_arg(p)?;
            let n = lock(shared);
            let s = scan(&n, &sh);
            Ok(json!({"confirmed": s.confirmed, "unconfirmed": s.unconfirmed}))
        }
        "blockchain.scripthash.listunspent" => {
            let sh = scripthash_arg(p)?;
            let n = lock(shared);
            let s = scan(&n, &sh);
            let mut u: Vec<Value> = s
                .unspent
                .iter()
                .map(|(op, (value, height))| {
                    json!({"tx_hash": op.txid.to_string(), "tx_pos": op.vout,
                           "height": height, "value": value})
                })
                .collect();
            u.sort_by_key(|v| (v["height"].as_u64().unwrap_or(0) == 0, v["height"].as_u64()));
            Ok(json!(u))
        }
        "blockchain.scripthash.subscribe" => {
            let sh = scripthash_arg(p)?;
            let n = lock(shared);
            let status = scan(&n, &sh).status();
            subs.sub_scripthash(sh, status.clone());
            Ok(json!(status))
        }
        "blockchain.scripthash.unsubscribe" => {
            let sh = scripthash_arg(p)?;
            Ok(json!(subs.unsub_scripthash(&sh)))
        }
        "blockchain.transaction.get" => {
            let txid = p_str(p, 0, "tx_hash")?;
            let verbose = p.get(1).and_then(Value::as_bool).unwrap_or(false);
            crate::rpc::call(shared, "getrawtransaction", &json!([txid, verbose]))
                .map_err(|(_, m)| err(-32602, m))
        }
        "blockchain.transaction.broadcast" => {
            let raw = p_str(p, 0, "raw_tx")?;
            crate::rpc::call(shared, "sendrawtransaction", &json!([raw]))
                .map_err(|(_, m)| err(1, m))
        }
        "blockchain.transaction.get_merkle" => {
            let txid: Txid = p_str(p, 0, "tx_hash")?
                .parse()
                .map_err(|_| err(-32602, "invalid tx_hash"))?;
            let height = p_u64(p, 1, "height")?;
            let n = lock(shared);
            let bh = u32::try_from(height)
                .ok()
                .and_then(|h| n.chain.active.get(h as usize))
                .ok_or_else(|| err(-32602, format!("height {height} out of range")))?;
            let ids: Vec<Txid> = n.chain.blocks[bh]
                .block
                .txdata
                .iter()
                .map(|t| t.compute_txid())
                .collect();
            let pos = ids
                .iter()
                .position(|t| *t == txid)
                .ok_or_else(|| err(-32602, format!("tx {txid} not in block at height {height}")))?;
            let branch = merkle_branch(&ids, pos);
            Ok(json!({"block_height": height, "pos": pos,
                      "merkle": branch.iter().map(hex_rev).collect::<Vec<_>>()}))
        }
        "blockchain.transaction.id_from_pos" => {
            let height = p_u64(p, 0, "height")?;
            let pos = p_u64(p, 1, "tx_pos")? as usize;
            let merkle = p.get(2).and_then(Value::as_bool).unwrap_or(false);
            let n = lock(shared);
            let bh = u32::try_from(height)
                .ok()
                .and_then(|h| n.chain.active.get(h as usize))
                .ok_or_else(|| err(-32602, format!("height {height} out of range")))?;
            let ids: Vec<Txid> = n.chain.blocks[bh]
                .block
                .txdata
                .iter()
                .map(|t| t.compute_txid())
                .collect();
            let id = ids
                .get(pos)
                .ok_or_else(|| err(-32602, format!("no tx at position {pos}")))?;
            if merkle {
                let branch = merkle_branch(&ids, pos);
                Ok(json!({"tx_hash": id.to_string(),
                          "merkle": branch.iter().map(hex_rev).collect::<Vec<_>>()}))
            } else {
                Ok(json!(id.to_string()))
            }
        }
        _ => Err(err(-32601, format!("unknown method {method}"))),
    }
}

fn hex_rev(h: &[u8; 32]) -> String {
    let mut b = *h;
    b.reverse();
    hex::encode(b)
}

/// The merkle branch (internal byte order) of leaf `pos` among `ids`.
pub fn merkle_branch(ids: &[Txid], mut pos: usize) -> Vec<[u8; 32]> {
    let mut level: Vec<[u8; 32]> = ids.iter().map(|t| t.to_byte_array()).collect();
    let mut branch = Vec::new();
    while level.len() > 1 {
        if level.len() % 2 == 1 {
            let last = level[level.len() - 1];
            level.push(last);
        }
        branch.push(level[pos ^ 1]);
        level = level
            .chunks(2)
            .map(|c| {
                let mut d = [0u8; 64];
                d[..32].copy_from_slice(&c[0]);
                d[32..].copy_from_slice(&c[1]);
                sha256d::Hash::hash(&d).to_byte_array()
            })
            .collect();
        pos /= 2;
    }
    branch
}

/// What a scan of the chain and mempool found for one script hash.
#[derive(Default)]
struct Scan {
    /// (height, txid, fee for mempool entries); mempool heights are 0 or -1.
    history: Vec<(i64, Txid, Option<u64>)>,
    /// Unspent outputs (after the mempool): value and height (0 = mempool).
    unspent: HashMap<OutPoint, (u64, u32)>,
    confirmed: u64,
    unconfirmed: i64,
}

impl Scan {
    fn history_json(&self) -> Vec<Value> {
        self.history
            .iter()
            .map(|(h, t, fee)| match fee {
                Some(f) => json!({"height": h, "tx_hash": t.to_string(), "fee": f}),
                None => json!({"height": h, "tx_hash": t.to_string()}),
            })
            .collect()
    }

    /// The protocol's status: sha256 of `txid:height:` concatenated, or null.
    fn status(&self) -> Option<String> {
        if self.history.is_empty() {
            return None;
        }
        let s: String = self
            .history
            .iter()
            .map(|(h, t, _)| format!("{t}:{h}:"))
            .collect();
        Some(hex::encode(
            sha256::Hash::hash(s.as_bytes()).to_byte_array(),
        ))
    }
}

fn scan(n: &Node, sh: &str) -> Scan {
    let mut s = Scan::default();
    // Outputs paying the script: value, height.
    let mut funded: HashMap<OutPoint, (u64, u32)> = HashMap::new();
    let mut spent_confirmed: HashSet<OutPoint> = HashSet::new();
    for (h, bh) in n.chain.active.iter().enumerate() {
        for tx in &n.chain.blocks[bh].block.txdata {
            let txid = tx.compute_txid();
            let mut touched = false;
            for i in &tx.input {
                if funded.contains_key(&i.previous_output) {
                    spent_confirmed.insert(i.previous_output);
                    touched = true;
                }
            }
            for (vout, o) in tx.output.iter().enumerate() {
                if script_hash(&o.script_pubkey) == sh {
                    funded.insert(
                        OutPoint::new(txid, vout as u32),
                        (o.value.to_sat(), h as u32),
                    );
                    touched = true;
                }
            }
            if touched {
                s.history.push((h as i64, txid, None));
            }
        }
    }
    for (op, v) in &funded {
        if !spent_confirmed.contains(op) {
            s.confirmed += v.0;
            s.unspent.insert(*op, *v);
        }
    }
    // Mempool, parents before children as stored.
    let mut mem_funded: HashMap<OutPoint, u64> = HashMap::new();
    let mut mem_entries: Vec<(i64, Txid, Option<u64>)> = Vec::new();
    for txid in &n.mempool.order {
        let Some(pd) = n.mempool.txs.get(txid) else {
            continue;
        };
        let mut touched = false;
        for i in &pd.tx.input {
            if let Some(v) = s.unspent.remove(&i.previous_output) {
                s.unconfirmed -= v.0 as i64;
                touched = true;
            } else if mem_funded.contains_key(&i.previous_output) {
                touched = true;
            }
        }
        for (vout, o) in pd.tx.output.iter().enumerate() {
            if script_hash(&o.script_pubkey) == sh {
                let op = OutPoint::new(*txid, vout as u32);
                mem_funded.insert(op, o.value.to_sat());
                s.unspent.insert(op, (o.value.to_sat(), 0));
                s.unconfirmed += o.value.to_sat() as i64;
                touched = true;
            }
        }
        if touched {
            let unconfirmed_parent = pd
                .tx
                .input
                .iter()
                .any(|i| n.mempool.txs.contains_key(&i.previous_output.txid));
            let h = if unconfirmed_parent { -1 } else { 0 };
            mem_entries.push((h, *txid, Some(pd.fee.to_sat())));
        }
    }
    // The protocol orders mempool entries: height 0 ones first, then -1, each by txid.
    mem_entries.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    s.history.extend(mem_entries);
    s
}

fn notifications(shared: &Shared, subs: &mut Subs) -> Vec<Value> {
    let mut out = Vec::new();
    if subs.headers.is_none() && subs.scripthashes.is_empty() {
        return out;
    }
    let n = lock(shared);
    if subs.headers.is_some() && subs.tip != Some(n.chain.tip()) {
        let height = n.chain.height();
        subs.tip = Some(n.chain.tip());
        subs.headers = Some(height);
        out.push(
            json!({"jsonrpc": "2.0", "method": "blockchain.headers.subscribe",
                        "params": [{"height": height, "hex": header_hex(&n, height)}]}),
        );
    }
    // Rescan subscribed script hashes only when the tip or the mempool changed.
    let fingerprint = n.mempool.txs.keys().fold(0u64, |acc, t| {
        acc ^ u64::from_le_bytes(t.to_byte_array()[..8].try_into().unwrap_or([0; 8]))
    });
    let now = Some((n.chain.tip(), n.mempool.txs.len(), fingerprint));
    if subs.seen == now {
        return out;
    }
    subs.seen = now;
    for (sh, old) in subs.scripthashes.iter_mut() {
        let status = scan(&n, sh).status();
        if status != *old {
            *old = status.clone();
            out.push(
                json!({"jsonrpc": "2.0", "method": "blockchain.scripthash.subscribe",
                            "params": [sh, status]}),
            );
        }
    }
    out
}
