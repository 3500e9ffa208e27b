//! Electrum protocol 1.4 server (newline-delimited JSON-RPC over TCP, batches,
//! notifications), following <https://electrum-protocol.readthedocs.io/en/latest/> and
//! electrs' answers: headers, scripthash history/balance/unspent/mempool/subscribe (status
//! hashes as the protocol defines), transaction get/broadcast/merkle/id_from_pos, fees.
//!
//! Scripthash queries read the node's script index ([`crate::index`]): the chain's part is
//! updated per connected block and undone on disconnect, the mempool's per mempool change.
//! Requests run on the server's own worker threads ([`ElectrumLimits::workers`] of them: one
//! core fewer than the machine has; in the background, [`ElectrumLimits::priority`]), taking
//! the node's lock once per request and briefly,
//! so a flood of Electrum requests does not stall the RPC. Subscriptions are rechecked only for the scripts a block or a mempool
//! change touched.
//!
//! Every client is bounded ([`ElectrumLimits`]): connections in total and per IP, line
//! length, batch size, reply bytes per line, subscriptions per connection, an idle timeout,
//! and a write deadline (a client that does not read its replies is disconnected).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::hashes::{sha256, Hash};
use bitcoin::hex::DisplayHex;
use bitcoin::{OutPoint, Txid};
use rexe_rpc::{
    accept_loop, read_line, write_deadline, ConnGate, Limits, LineRead, Priority, Workers,
};
use serde_json::{json, Value};
use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};

use crate::index::{self, ScriptHash};
use protocol::{Line, LineError, Method};

pub mod protocol;
use crate::node::Node;
use crate::rpc::Shared;

/// Longest request line accepted by default; a longer one closes that connection.
pub const MAX_LINE: u64 = 4 * 1024 * 1024;
/// Most headers `blockchain.block.headers` returns at once (electrs' limit).
pub const MAX_HEADERS: u64 = 2016;
pub use protocol::LIMIT_EXCEEDED;

/// How often a connection checks for notifications to send.
const TICK: Duration = Duration::from_millis(100);

/// What the Electrum server allows its clients. Every field has a default
/// ([`ElectrumLimits::default`]) and is set through [`crate::Services::electrum_limits`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElectrumLimits {
    /// Connections in total and per IP, the idle timeout (no complete request for this
    /// long closes the connection), the write deadline (a reply not taken within it marks a
    /// slow reader: disconnected), the longest line and the largest batch.
    pub conn: Limits,
    /// Most bytes of replies to one line (a request or a batch): a batch whose replies would
    /// exceed it gets one error instead (split it); a single reply over it, an error. Large
    /// replies (headers, histories) are refused on an estimate before they are built; the
    /// requests of a refused batch before the one that overflowed did run (a broadcast in
    /// it happened).
    pub max_reply_bytes: usize,
    /// Most scripthash subscriptions one connection may hold (electrs and Fulcrum limit
    /// them too).
    pub max_subscriptions: usize,
    /// Most requests being answered at once, over all connections (worker threads). The
    /// default leaves one core to the rest of the node (the RPC miners and the L2 wait on).
    pub workers: usize,
    /// The workers' scheduling priority. [`Priority::Background`] (the default) lets any
    /// other thread of the machine (the bitcoind RPC that miners, pools and the L2 wait on)
    /// take a worker's core the moment it wakes; Electrum gets every cycle nobody else
    /// wants, so on an otherwise idle machine it serves as fast as at normal priority.
    pub priority: Priority,
}

impl Default for ElectrumLimits {
    fn default() -> Self {
        ElectrumLimits {
            conn: Limits {
                max_request: MAX_LINE as usize,
                ..Limits::line()
            },
            max_reply_bytes: 8 * 1024 * 1024,
            max_subscriptions: 20_000,
            workers: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .saturating_sub(1)
                .clamp(1, 8),
            priority: Priority::Background,
        }
    }
}

type Res = Result<Value, (i64, String)>;

fn err(code: i64, m: impl Into<String>) -> (i64, String) {
    (code, m.into())
}

/// Serves Electrum clients on `listener` under `limits` until the node stops.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, limits: ElectrumLimits) {
    let gate = ConnGate::new(limits.conn.max_connections, limits.conn.max_per_ip);
    let work = match Workers::start_with("electrum", limits.workers, limits.priority) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(error = %e, "electrum: cannot start worker threads; not serving");
            return;
        }
    };
    let limits = Arc::new(limits);
    let sh = shared.clone();
    let accept = accept_loop("electrum", listener, gate, move |sock, peer, permit| {
        let sh = sh.clone();
        let limits = limits.clone();
        let work = work.clone();
        async move {
            if let Err(e) = client(sock, sh, limits, work).await {
                tracing::debug!(%peer, error = %e, "electrum client closed");
            }
            drop(permit);
        }
    });
    tokio::select! {
        _ = shared.stop.notified() => {}
        _ = accept => {}
    }
}

/// Per-connection subscription state.
#[derive(Default)]
struct Subs {
    headers: Option<u32>,
    tip: Option<bitcoin::BlockHash>,
    scripthashes: HashMap<ScriptHash, Option<String>>,
    /// Position in the node's touched-scripts log the statuses are current to.
    seen: u64,
    max: usize,
}

impl Subs {
    fn sub_headers(&mut self, tip: bitcoin::BlockHash, height: u32) {
        self.headers = Some(height);
        self.tip = Some(tip);
    }
}

async fn client(
    sock: TcpStream,
    shared: Arc<Shared>,
    limits: Arc<ElectrumLimits>,
    work: Workers,
) -> std::io::Result<()> {
    let _ = sock.set_nodelay(true);
    let (rd, mut wr) = sock.into_split();
    let mut rd = BufReader::new(rd);
    let mut buf = Vec::new();
    let mut subs = Some(Subs {
        max: limits.max_subscriptions,
        ..Subs::default()
    });
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let idle_timeout = limits.conn.idle_timeout;
    let write_timeout = limits.conn.write_timeout;
    let idle = tokio::time::sleep(idle_timeout);
    tokio::pin!(idle);
    loop {
        tokio::select! {
            r = read_line(&mut rd, &mut buf, limits.conn.max_request) => match r? {
                LineRead::Eof => return Ok(()),
                LineRead::TooLong => {
                    let reply = resp(Value::Null, Err(err(-32600, "request too long")));
                    write_deadline(&mut wr, format!("{reply}\n").as_bytes(), write_timeout)
                        .await?;
                    return Ok(());
                }
                LineRead::Line => {
                    idle.as_mut().reset(tokio::time::Instant::now() + idle_timeout);
                    let line = std::mem::take(&mut buf);
                    let text = String::from_utf8_lossy(&line).trim().to_string();
                    if text.is_empty() {
                        continue;
                    }
                    let (sh, lim) = (shared.clone(), limits.clone());
                    let mut st = subs.take().unwrap_or_default();
                    let (mut reply, st) = work.run(move || {
                        let r = handle_line(&sh, &mut st, &text, &lim);
                        (r, st)
                    })
                    .await?;
                    subs = Some(st);
                    reply.push('\n');
                    write_deadline(&mut wr, reply.as_bytes(), write_timeout).await?;
                }
            },
            _ = tick.tick() => {
                let Some(st) = subs.as_ref() else { continue };
                if !has_news(&shared, st) {
                    continue;
                }
                let sh = shared.clone();
                let mut st = subs.take().unwrap_or_default();
                let (notes, st) = work.run(move || {
                    let n = notifications(&sh, &mut st);
                    (n, st)
                })
                .await?;
                subs = Some(st);
                for note in notes {
                    write_deadline(&mut wr, format!("{note}\n").as_bytes(), write_timeout).await?;
                }
            }
            _ = &mut idle => {
                tracing::debug!("electrum client idle; closing");
                return Ok(());
            }
            _ = shared.stop.notified() => return Ok(()),
        }
    }
}

fn resp(id: Value, r: Res) -> Value {
    match r {
        Ok(v) => json!({"jsonrpc": "2.0", "id": id, "result": v}),
        Err((code, message)) => {
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
        }
    }
}

/// Answers one line (a request or a batch), serialized, within `limits`.
fn handle_line(shared: &Shared, subs: &mut Subs, text: &str, limits: &ElectrumLimits) -> String {
    let budget = limits.max_reply_bytes;
    match protocol::parse_line(text, limits.conn.max_batch) {
        Err(e @ (LineError::Parse(_) | LineError::BatchTooLarge { .. })) => {
            resp(Value::Null, Err(err(e.code(), e.to_string()))).to_string()
        }
        Ok(Line::Batch(reqs)) => {
            let mut out = String::from("[");
            for (i, r) in reqs.iter().enumerate() {
                // Room left for this reply (a comma and the closing bracket included).
                let room = budget.saturating_sub(out.len() + 2);
                let reply = one(shared, subs, r, room).to_string();
                if out.len() + reply.len() + 2 > budget {
                    let m = format!(
                        "the batch's replies exceed {budget} bytes (at request {i}); split it"
                    );
                    return resp(Value::Null, Err(err(LIMIT_EXCEEDED, m))).to_string();
                }
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&reply);
            }
            out.push(']');
            out
        }
        Ok(Line::Single(r)) => {
            let reply = one(shared, subs, &r, budget).to_string();
            if reply.len() > budget {
                let id = match &r {
                    Ok(r) => r.id.clone(),
                    Err(inv) => inv.id.clone(),
                };
                let m = format!("reply exceeds {budget} bytes");
                return resp(id, Err(err(LIMIT_EXCEEDED, m))).to_string();
            }
            reply
        }
    }
}

fn one(shared: &Shared, subs: &mut Subs, req: &protocol::Entry, room: usize) -> Value {
    match req {
        Ok(r) => resp(r.id.clone(), dispatch(shared, subs, &r.method, room)),
        Err(inv) => resp(
            inv.id.clone(),
            Err(err(inv.error.code(), inv.error.to_string())),
        ),
    }
}

/// Refuses a reply estimated at `need` bytes when only `room` are left, before building it.
fn fits(need: usize, room: usize) -> Result<(), (i64, String)> {
    if need > room {
        return Err(err(
            LIMIT_EXCEEDED,
            format!("reply of about {need} bytes exceeds the {room} bytes left for this line"),
        ));
    }
    Ok(())
}

/// Bytes of one history entry as JSON, at most.
const HISTORY_ENTRY: usize = 110;
/// Bytes of one unspent entry as JSON, at most.
const UNSPENT_ENTRY: usize = 140;
/// The Electrum script hash of a script: SHA256, bytes reversed, hex.
pub fn script_hash(script: &bitcoin::Script) -> String {
    index::to_hex(&index::script_hash(script))
}

/// Locks the node for Electrum work, after any RPC call already waiting for it (a bounded
/// wait: a steady RPC stream cannot starve Electrum either).
fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Node> {
    let mut spins = 0;
    while shared.rpc_waiting.load(std::sync::atomic::Ordering::SeqCst) > 0 && spins < 1000 {
        std::thread::yield_now();
        spins += 1;
    }
    shared.node.lock().unwrap_or_else(|p| p.into_inner())
}

fn header_hex(n: &Node, height: u32) -> Option<String> {
    let h = n.chain.active.get(height as usize)?;
    Some(serialize_hex(&n.chain.blocks[h].block.header))
}

fn dispatch(shared: &Shared, subs: &mut Subs, method: &Method, room: usize) -> Res {
    match *method {
        Method::ServerVersion => Ok(json!([
            concat!("rexe-regtest ", env!("CARGO_PKG_VERSION")),
            "1.4"
        ])),
        Method::Banner => Ok(json!("rexe embedded Bitcoin regtest node")),
        Method::DonationAddress => Ok(json!("")),
        Method::Ping => Ok(Value::Null),
        Method::PeersSubscribe => Ok(json!([])),
        Method::Features => {
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
        Method::HeadersSubscribe => {
            let n = lock(shared);
            let height = n.chain.height();
            subs.sub_headers(n.chain.tip(), height);
            Ok(json!({"height": height, "hex": header_hex(&n, height)}))
        }
        Method::BlockHeader { height, cp_height } => {
            let header = {
                let n = lock(shared);
                u32::try_from(height)
                    .ok()
                    .and_then(|h| header_hex(&n, h))
                    .ok_or_else(|| err(-32602, format!("height {height} out of range")))?
            };
            if cp_height == 0 {
                return Ok(Value::from(header));
            }
            let mut proof = header_proof(shared, height, cp_height)?;
            proof["header"] = json!(header);
            Ok(proof)
        }
        Method::BlockHeaders {
            start,
            count,
            cp_height,
        } => {
            let count = count.min(MAX_HEADERS);
            let n = lock(shared);
            let tip = n.chain.height() as u64;
            let avail = (tip + 1).saturating_sub(start).min(count);
            fits(avail as usize * 160 + 100, room)?;
            let mut hex = String::with_capacity(avail as usize * 160);
            let mut got = 0u64;
            let mut h = start;
            while got < count && h <= tip {
                hex.push_str(&header_hex(&n, h as u32).unwrap_or_default());
                got += 1;
                h += 1;
            }
            drop(n);
            let mut v = json!({"count": got, "hex": hex, "max": MAX_HEADERS});
            if cp_height != 0 && got > 0 {
                // The proof is for the last header returned.
                let proof = header_proof(shared, start + got - 1, cp_height)?;
                v["branch"] = proof["branch"].clone();
                v["root"] = proof["root"].clone();
            }
            Ok(v)
        }
        // As electrs: bitcoind's estimatesmartfee (conservative, its default) in BTC/kvB, or -1
        // when it has none.
        Method::EstimateFee { blocks } => {
            let n = lock(shared);
            let target = u32::try_from(blocks).unwrap_or(u32::MAX);
            Ok(
                match crate::fees::estimate(&n.chain, target, crate::fees::Mode::Conservative) {
                    Some(rate) => json!(crate::fees::btc_per_kvb(rate)),
                    None => json!(-1),
                },
            )
        }
        Method::RelayFee => Ok(json!(0.00001)),
        Method::FeeHistogram => {
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
        Method::GetHistory(sh) => {
            let s = query(&lock(shared), &sh, room / HISTORY_ENTRY)?;
            Ok(json!(s.history_json()))
        }
        Method::GetMempool(sh) => {
            let s = query(&lock(shared), &sh, usize::MAX)?;
            let mempool = s.history.iter().filter(|e| e.0 <= 0).count();
            fits(mempool * HISTORY_ENTRY, room)?;
            Ok(json!(s
                .history_json()
                .into_iter()
                .filter(|v| v["height"].as_i64().unwrap_or(0) <= 0)
                .collect::<Vec<_>>()))
        }
        Method::GetBalance(sh) => {
            let s = query(&lock(shared), &sh, usize::MAX)?;
            Ok(json!({"confirmed": s.confirmed, "unconfirmed": s.unconfirmed}))
        }
        Method::ListUnspent(sh) => {
            let s = query(&lock(shared), &sh, usize::MAX)?;
            fits(s.unspent.len() * UNSPENT_ENTRY, room)?;
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
        Method::Subscribe(sh) => {
            if subs.scripthashes.len() >= subs.max && !subs.scripthashes.contains_key(&sh) {
                return Err(err(
                    LIMIT_EXCEEDED,
                    format!("subscription limit of {} reached", subs.max),
                ));
            }
            let n = lock(shared);
            if subs.scripthashes.is_empty() {
                // Statuses are current as of now: only later changes matter.
                subs.seen = n.scripts.seq();
            }
            let status = query(&n, &sh, usize::MAX)?.status();
            drop(n);
            subs.scripthashes.insert(sh, status.clone());
            Ok(json!(status))
        }
        Method::Unsubscribe(sh) => Ok(json!(subs.scripthashes.remove(&sh).is_some())),
        Method::TxGet { ref txid, verbose } => {
            crate::rpc::call(shared, "getrawtransaction", &json!([txid, verbose]))
                .map_err(|(_, m)| err(-32602, m))
        }
        Method::Broadcast { ref raw } => {
            crate::rpc::call(shared, "sendrawtransaction", &json!([raw]))
                .map_err(|(_, m)| err(1, m))
        }
        Method::GetMerkle { txid, height } => {
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
        Method::IdFromPos {
            height,
            pos,
            merkle,
        } => {
            let pos = pos as usize;
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
    }
}

fn hex_rev(h: &[u8; 32]) -> String {
    let mut b = *h;
    b.reverse();
    b.to_lower_hex_string()
}

/// The merkle branch (internal byte order) of leaf `pos` among `ids`.
pub fn merkle_branch(ids: &[Txid], pos: usize) -> Vec<[u8; 32]> {
    let leaves: Vec<[u8; 32]> = ids.iter().map(|t| t.to_byte_array()).collect();
    rexe_merkle::branch_and_root(leaves, pos).0
}

/// Hex in display (reversed) order, as Electrum servers print hashes.
fn display_hex(h: &[u8; 32]) -> String {
    let mut r = *h;
    r.reverse();
    r.to_lower_hex_string()
}

/// Protocol 1.4's header proof: the branch from block `height` to the Merkle root of the
/// hashes of blocks `0..=cp_height` (both in display hex), as ElectrumX and electrs give it.
fn header_proof(shared: &Shared, height: u64, cp_height: u64) -> Result<Value, (i64, String)> {
    let hashes: Vec<[u8; 32]> = {
        let n = lock(shared);
        let tip = n.chain.height() as u64;
        if height > cp_height || cp_height > tip {
            return Err(err(
                -32602,
                format!("header height {height} must be <= cp_height {cp_height} which must be <= chain height {tip}"),
            ));
        }
        n.chain.active[..=cp_height as usize]
            .iter()
            .map(|h| h.to_byte_array())
            .collect()
    };
    let (branch, root) = rexe_merkle::branch_and_root(hashes, height as usize);
    Ok(json!({
        "branch": branch.iter().map(display_hex).collect::<Vec<_>>(),
        "root": display_hex(&root),
    }))
}

/// What the index and the mempool hold for one script hash.
#[derive(Default, Debug, PartialEq, Eq)]
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
        Some(
            sha256::Hash::hash(s.as_bytes())
                .to_byte_array()
                .to_lower_hex_string(),
        )
    }
}

/// The history, balance and unspent outputs of `sh` from the index; refused (before it is
/// built) when the history has more than `max_history` entries.
fn query(n: &Node, sh: &ScriptHash, max_history: usize) -> Result<Scan, (i64, String)> {
    let idx = &n.chain.scripts;
    let confirmed = idx.history(sh);
    let mem_txs = n.scripts.mempool_txs(sh);
    let entries = confirmed.len() + mem_txs.len();
    if entries > max_history {
        return Err(err(
            LIMIT_EXCEEDED,
            format!("history of {entries} transactions exceeds this line's reply limit"),
        ));
    }
    let mut s = Scan {
        history: confirmed
            .iter()
            .map(|(h, t)| (i64::from(*h), *t, None))
            .collect(),
        ..Scan::default()
    };
    for f in idx.funded(sh) {
        if idx.spender(&f.outpoint).is_none() {
            s.confirmed += f.value;
            s.unspent.insert(f.outpoint, (f.value, f.height));
        }
    }
    // The mempool transactions touching the script, parents before children as stored.
    add_mempool(n, sh, &mut s, mem_txs);
    Ok(s)
}

/// Lays the mempool transactions `txids` (parents before children) over a confirmed scan of
/// `sh`: spends and new outputs, and their history entries (height 0, or -1 with an
/// unconfirmed parent), ordered as the protocol says: height 0 first, then -1, each by txid.
fn add_mempool<'a>(
    n: &Node,
    sh: &ScriptHash,
    s: &mut Scan,
    txids: impl IntoIterator<Item = &'a Txid>,
) {
    let mut mem_funded: HashSet<OutPoint> = HashSet::new();
    let mut mem_entries: Vec<(i64, Txid, Option<u64>)> = Vec::new();
    for txid in txids {
        let Some(pd) = n.mempool.txs.get(txid) else {
            continue;
        };
        let mut touched = false;
        for i in &pd.tx.input {
            if let Some(v) = s.unspent.remove(&i.previous_output) {
                s.unconfirmed -= v.0 as i64;
                touched = true;
            } else if mem_funded.contains(&i.previous_output) {
                touched = true;
            }
        }
        for (vout, o) in pd.tx.output.iter().enumerate() {
            if index::script_hash(&o.script_pubkey) == *sh {
                let op = OutPoint::new(*txid, vout as u32);
                mem_funded.insert(op);
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
    mem_entries.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    s.history.extend(mem_entries);
}

/// Whether the tip moved (for a headers subscriber) or a script was touched since the
/// connection's statuses were computed: a brief look under the lock, on the async thread,
/// so only when the lock is free (otherwise at the next tick).
fn has_news(shared: &Shared, subs: &Subs) -> bool {
    if subs.headers.is_none() && subs.scripthashes.is_empty() {
        return false;
    }
    let n = match shared.node.try_lock() {
        Ok(n) => n,
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => return false,
    };
    (subs.headers.is_some() && subs.tip != Some(n.chain.tip()))
        || (!subs.scripthashes.is_empty() && n.scripts.seq() != subs.seen)
}

/// The notifications due to `subs`: a new tip, and the subscribed scripts whose status
/// changed among those touched since the last call. The lock is taken per script.
fn notifications(shared: &Shared, subs: &mut Subs) -> Vec<Value> {
    let mut out = Vec::new();
    let recheck: Vec<ScriptHash> = {
        let n = lock(shared);
        if subs.headers.is_some() && subs.tip != Some(n.chain.tip()) {
            let height = n.chain.height();
            subs.sub_headers(n.chain.tip(), height);
            out.push(
                json!({"jsonrpc": "2.0", "method": "blockchain.headers.subscribe",
                       "params": [{"height": height, "hex": header_hex(&n, height)}]}),
            );
        }
        let now = n.scripts.seq();
        let recheck = match n.scripts.since(subs.seen) {
            Some(touched) => {
                let mut v: Vec<ScriptHash> = touched
                    .filter(|sh| subs.scripthashes.contains_key(*sh))
                    .copied()
                    .collect();
                v.sort_unstable();
                v.dedup();
                v
            }
            None => subs.scripthashes.keys().copied().collect(),
        };
        subs.seen = now;
        recheck
    };
    for sh in recheck {
        let Ok(scan) = query(&lock(shared), &sh, usize::MAX) else {
            continue;
        };
        let status = scan.status();
        if let Some(old) = subs.scripthashes.get_mut(&sh) {
            if status != *old {
                old.clone_from(&status);
                out.push(
                    json!({"jsonrpc": "2.0", "method": "blockchain.scripthash.subscribe",
                           "params": [index::to_hex(&sh), status]}),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::{
        absolute, transaction, Amount, CompactTarget, ScriptBuf, Sequence, Transaction, TxIn, TxOut,
    };

    /// The reference: a scan of the whole active chain and the mempool (what every query
    /// did before the index).
    fn rescan(n: &Node, sh: &ScriptHash) -> Scan {
        let mut s = Scan::default();
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
                    if index::script_hash(&o.script_pubkey) == *sh {
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
        // Every mempool transaction, where the query takes the mempool index's.
        add_mempool(n, sh, &mut s, &n.mempool.order);
        s
    }

    fn script(op: u8) -> ScriptBuf {
        ScriptBuf::from_bytes(vec![op])
    }

    /// Spends `prev` (an anyone-can-spend output worth `value`) to `a` and `b` in halves,
    /// less a 1,000 sat fee.
    fn spend(prev: OutPoint, value: u64, a: &ScriptBuf, b: &ScriptBuf) -> (Transaction, u64) {
        let half = (value - 1_000) / 2;
        let tx = Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: prev,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness: bitcoin::Witness::new(),
            }],
            output: vec![
                TxOut {
                    value: Amount::from_sat(half),
                    script_pubkey: a.clone(),
                },
                TxOut {
                    value: Amount::from_sat(half),
                    script_pubkey: b.clone(),
                },
            ],
        };
        (tx, half)
    }

    fn now() -> u32 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as u32
    }

    fn coinbase(n: &Node, height: usize) -> (OutPoint, u64) {
        let cb = &n.chain.blocks[&n.chain.active[height]].block.txdata[0];
        (
            OutPoint::new(cb.compute_txid(), 0),
            cb.output[0].value.to_sat(),
        )
    }

    fn assert_agrees(n: &Node, scripts: &[ScriptBuf], when: &str) {
        for s in scripts {
            let sh = index::script_hash(s);
            let want = rescan(n, &sh);
            let got = query(n, &sh, usize::MAX).unwrap();
            assert_eq!(got, want, "{when}: script {s:?}");
            assert_eq!(got.status(), want.status(), "{when}: status of {s:?}");
        }
    }

    #[test]
    fn index_agrees_with_a_full_rescan_through_mempool_and_reorgs() {
        let mut n = Node::open(None, CompactTarget::from_consensus(crate::REGTEST_BITS)).unwrap();
        n.mempool.policy.require_standard = false;
        let (s1, s2, s3, s4) = (script(0x51), script(0x52), script(0x53), script(0x54));
        let all = [s1.clone(), s2.clone(), s3.clone(), s4.clone()];
        for _ in 0..103 {
            n.generate(s1.clone(), now()).unwrap();
        }
        assert_agrees(&n, &all, "mined");

        // A block with a spend and its child in the same block.
        let (cb1, v1) = coinbase(&n, 1);
        let (a, half) = spend(cb1, v1, &s2, &s3);
        let (b, _) = spend(OutPoint::new(a.compute_txid(), 0), half, &s3, &s4);
        let fees = Amount::from_sat(2_000);
        let b104 = n
            .generate_with(s1.clone(), vec![a.clone(), b.clone()], fees, now())
            .unwrap();
        assert_agrees(&n, &all, "spend and child in one block");

        // Mempool: a spend of a confirmed output, its child, and a spend of a coinbase.
        let (cb2, v2) = coinbase(&n, 2);
        let (c, half_c) = spend(cb2, v2, &s2, &s3);
        n.accept_tx(c.clone()).unwrap();
        let (d, _) = spend(OutPoint::new(c.compute_txid(), 1), half_c, &s4, &s2);
        n.accept_tx(d).unwrap();
        let (e, _) = spend(OutPoint::new(b.compute_txid(), 1), half / 2 - 500, &s1, &s4);
        n.accept_tx(e).unwrap();
        assert_agrees(&n, &all, "mempool");

        // Reorg: invalidate the block with a and b; they return to the mempool.
        let before = n.chain.active.clone();
        n.chain.invalidate(b104).unwrap();
        n.after_change(&before);
        assert!(n.mempool.txs.contains_key(&a.compute_txid()));
        assert_agrees(&n, &all, "after invalidateblock");

        // A longer branch confirms part of the mempool: c (and its parents) only.
        let fees = Amount::from_sat(1_000);
        n.generate_with(s2.clone(), vec![c.clone()], fees, now())
            .unwrap();
        n.generate(s3.clone(), now()).unwrap();
        assert_agrees(&n, &all, "competing branch");

        // Back to the first branch, made longer: a reorg the other way.
        let before = n.chain.active.clone();
        n.chain.reconsider(b104).unwrap();
        n.after_change(&before);
        let tip = n.chain.height();
        assert!(
            !n.chain.is_active(&b104),
            "less work than the competing branch"
        );
        let before = n.chain.active.clone();
        n.chain.invalidate(n.chain.active[104]).unwrap();
        n.after_change(&before);
        assert!(n.chain.is_active(&b104));
        assert_agrees(&n, &all, "reorg back to the first branch");
        for _ in 0..3 {
            n.generate(s4.clone(), now()).unwrap();
        }
        assert!(n.chain.height() > tip);
        assert_agrees(&n, &all, "mined on the first branch");
    }
}
