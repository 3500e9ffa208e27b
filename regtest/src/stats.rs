//! Chain statistics RPCs as Bitcoin Core writes them: `getblockstats`, `getchaintxstats`,
//! `gettxoutsetinfo` (`hash_serialized_3` and `none`), and the Merkle proofs
//! `gettxoutproof`/`verifytxoutproof`.

use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;

use bitcoin::consensus::encode::{deserialize, serialize, serialize_hex};
use bitcoin::hashes::{sha256d, Hash, HashEngine};
use bitcoin::{Amount, BlockHash, OutPoint, Txid};
use serde_json::{json, Value};

use crate::node::Node;

type RpcResult = Result<Value, (i64, String)>;

fn e(code: i64, m: impl Into<String>) -> (i64, String) {
    (code, m.into())
}

/// Core's `ParseHashOrHeight`: a height of the active chain or a known block's hash.
pub fn hash_or_height(n: &Node, v: &Value) -> Result<BlockHash, (i64, String)> {
    if let Some(h) = v.as_i64() {
        if h < 0 {
            return Err(e(-8, format!("Target block height {h} is negative")));
        }
        let tip = n.chain.height();
        return n.chain.active.get(h as usize).copied().ok_or_else(|| {
            e(
                -8,
                format!("Target block height {h} after current tip {tip}"),
            )
        });
    }
    let s = v.as_str().ok_or_else(|| e(-3, "Expected type string"))?;
    let hash = BlockHash::from_str(s).map_err(|_| {
        e(
            -8,
            format!(
                "blockhash must be of length 64 (not {}, for '{s}')",
                s.len()
            ),
        )
    })?;
    if !n.chain.blocks.contains_key(&hash) {
        return Err(e(-5, "Block not found"));
    }
    Ok(hash)
}

/// What an output adds to the UTXO set's size in Core's accounting (`PER_UTXO_OVERHEAD`:
/// outpoint and height word).
fn utxo_size(o: &bitcoin::TxOut) -> i64 {
    (serialize(o).len() + 40) as i64
}

/// Core's `IsUnspendable`: `OP_RETURN` first, or past the 10,000-byte script limit.
fn unspendable(s: &bitcoin::Script) -> bool {
    s.is_op_return() || s.len() > 10_000
}

fn truncated_median(v: &mut [i64]) -> i64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    let n = v.len();
    if n.is_multiple_of(2) {
        (v[n / 2 - 1] + v[n / 2]) / 2
    } else {
        v[n / 2]
    }
}

/// Core's `CalculatePercentilesByWeight`: the 10th, 25th, 50th, 75th and 90th percentile
/// fee rates by weight.
fn percentiles(scores: &mut [(i64, i64)], total_weight: i64) -> [i64; 5] {
    let mut out = [0i64; 5];
    if scores.is_empty() {
        return out;
    }
    scores.sort_unstable();
    let t = total_weight as f64;
    let marks = [t / 10.0, t / 4.0, t / 2.0, t * 3.0 / 4.0, t * 9.0 / 10.0];
    let mut next = 0;
    let mut cumulative = 0i64;
    for (rate, weight) in scores.iter() {
        cumulative += weight;
        while next < 5 && cumulative as f64 >= marks[next] {
            out[next] = *rate;
            next += 1;
        }
    }
    let last = scores.last().map_or(0, |s| s.0);
    for o in out.iter_mut().skip(next) {
        *o = last;
    }
    out
}

/// `getblockstats hash_or_height [stats]`.
pub fn getblockstats(n: &Node, p: &Value) -> RpcResult {
    let target = p
        .get(0)
        .filter(|v| !v.is_null())
        .ok_or_else(|| e(-1, "getblockstats hash_or_height ( stats )"))?;
    let hash = hash_or_height(n, target)?;
    let entry = &n.chain.blocks[&hash];
    let block = &entry.block;
    let spent = n
        .chain
        .spent_outputs(&hash)
        .ok_or_else(|| e(-1, "Can't read undo data from disk"))?;
    let height = entry.height;
    let (mut maxfee, mut maxfeerate, mut minfee, mut minfeerate) = (0i64, 0i64, i64::MAX, i64::MAX);
    let (mut total_out, mut totalfee, mut inputs, mut outputs) = (0i64, 0i64, 0i64, 0i64);
    let (mut maxtxsize, mut mintxsize) = (0i64, i64::MAX);
    let (mut swtotal_size, mut swtotal_weight, mut swtxs) = (0i64, 0i64, 0i64);
    let (mut total_size, mut total_weight) = (0i64, 0i64);
    let (mut utxos, mut utxo_size_inc, mut utxo_size_inc_actual) = (0i64, 0i64, 0i64);
    let mut fees = Vec::new();
    let mut rates = Vec::new();
    let mut sizes = Vec::new();
    for (i, tx) in block.txdata.iter().enumerate() {
        outputs += tx.output.len() as i64;
        let mut tx_out = 0i64;
        for o in &tx.output {
            tx_out += o.value.to_sat() as i64;
            utxo_size_inc += utxo_size(o);
            if height == 0 || unspendable(&o.script_pubkey) {
                continue;
            }
            utxos += 1;
            utxo_size_inc_actual += utxo_size(o);
        }
        if i == 0 {
            continue;
        }
        inputs += tx.input.len() as i64;
        total_out += tx_out;
        let size = tx.total_size() as i64;
        sizes.push(size);
        maxtxsize = maxtxsize.max(size);
        mintxsize = mintxsize.min(size);
        total_size += size;
        let weight = tx.weight().to_wu() as i64;
        total_weight += weight;
        if tx.input.iter().any(|i| !i.witness.is_empty()) {
            swtxs += 1;
            swtotal_size += size;
            swtotal_weight += weight;
        }
        let mut tx_in = 0i64;
        for prev in spent.get(i - 1).into_iter().flatten() {
            tx_in += prev.value.to_sat() as i64;
            utxo_size_inc -= utxo_size(prev);
            utxo_size_inc_actual -= utxo_size(prev);
        }
        let fee = tx_in - tx_out;
        fees.push(fee);
        maxfee = maxfee.max(fee);
        minfee = minfee.min(fee);
        totalfee += fee;
        let rate = if weight > 0 { fee * 4 / weight } else { 0 };
        rates.push((rate, weight));
        maxfeerate = maxfeerate.max(rate);
        minfeerate = minfeerate.min(rate);
    }
    let txs = block.txdata.len() as i64;
    let others = txs - 1;
    let all = json!({
        "avgfee": if others > 0 { totalfee / others } else { 0 },
        "avgfeerate": if total_weight > 0 { totalfee * 4 / total_weight } else { 0 },
        "avgtxsize": if others > 0 { total_size / others } else { 0 },
        "blockhash": hash.to_string(),
        "feerate_percentiles": percentiles(&mut rates, total_weight),
        "height": height,
        "ins": inputs,
        "maxfee": maxfee,
        "maxfeerate": maxfeerate,
        "maxtxsize": maxtxsize,
        "medianfee": truncated_median(&mut fees),
        "mediantime": n.chain.median_time_past(hash),
        "mediantxsize": truncated_median(&mut sizes),
        "minfee": if minfee == i64::MAX { 0 } else { minfee },
        "minfeerate": if minfeerate == i64::MAX { 0 } else { minfeerate },
        "mintxsize": if mintxsize == i64::MAX { 0 } else { mintxsize },
        "outs": outputs,
        "subsidy": crate::chain::subsidy(height).to_sat(),
        "swtotal_size": swtotal_size,
        "swtotal_weight": swtotal_weight,
        "swtxs": swtxs,
        "time": block.header.time,
        "total_out": total_out,
        "total_size": total_size,
        "total_weight": total_weight,
        "totalfee": totalfee,
        "txs": txs,
        "utxo_increase": outputs - inputs,
        "utxo_size_inc": utxo_size_inc,
        "utxo_increase_actual": utxos - inputs,
        "utxo_size_inc_actual": utxo_size_inc_actual,
    });
    let Some(wanted) = p.get(1).filter(|v| !v.is_null()) else {
        return Ok(all);
    };
    let wanted = wanted
        .as_array()
        .ok_or_else(|| e(-3, "Expected type array"))?;
    let mut out = serde_json::Map::new();
    for w in wanted {
        let k = w.as_str().ok_or_else(|| e(-3, "Expected type string"))?;
        let v = all
            .get(k)
            .ok_or_else(|| e(-8, format!("Invalid selected statistic '{k}'")))?;
        out.insert(k.to_string(), v.clone());
    }
    Ok(Value::Object(out))
}

/// A known block's hash given as a parameter (Core's messages).
fn known_block(n: &Node, v: &Value) -> Result<BlockHash, (i64, String)> {
    let s = v.as_str().ok_or_else(|| e(-3, "Expected type string"))?;
    let h = BlockHash::from_str(s).map_err(|_| e(-8, "blockhash must be hexadecimal string"))?;
    if !n.chain.blocks.contains_key(&h) {
        return Err(e(-5, "Block not found"));
    }
    Ok(h)
}

/// `getchaintxstats [nblocks] [blockhash]`.
pub fn getchaintxstats(n: &Node, p: &Value) -> RpcResult {
    let hash = match p.get(1).filter(|v| !v.is_null()) {
        None => n.chain.tip(),
        Some(v) => {
            let h = known_block(n, v)?;
            if !n.chain.is_active(&h) {
                return Err(e(-8, "Block is not in main chain"));
            }
            h
        }
    };
    let height = n.chain.blocks[&hash].height as i64;
    // A month of blocks at ten minutes, by default.
    let count = match p.get(0).filter(|v| !v.is_null()) {
        None => (30 * 24 * 60 * 60 / 600).min(height - 1).max(0),
        Some(v) => {
            let c = v.as_i64().ok_or_else(|| e(-3, "Expected type number"))?;
            if c < 0 || (c > 0 && c >= height) {
                return Err(e(
                    -8,
                    "Invalid block count: should be between 0 and the block's height - 1",
                ));
            }
            c
        }
    };
    // Transactions up to and including each height (Core's nChainTx).
    let chain_tx = |h: i64| -> i64 {
        n.chain.active[..=h as usize]
            .iter()
            .map(|b| n.chain.blocks[b].block.txdata.len() as i64)
            .sum()
    };
    let past = n.chain.active[(height - count) as usize];
    let diff =
        i64::from(n.chain.median_time_past(hash)) - i64::from(n.chain.median_time_past(past));
    let total = chain_tx(height);
    let mut v = json!({
        "time": n.chain.blocks[&hash].block.header.time,
        "txcount": total,
        "window_final_block_hash": hash.to_string(),
        "window_final_block_height": height,
        "window_block_count": count,
    });
    if count > 0 {
        let window_tx = total - chain_tx(height - count);
        v["window_tx_count"] = json!(window_tx);
        v["window_interval"] = json!(diff);
        if diff > 0 {
            v["txrate"] = json!(crate::rpc::core_double(window_tx as f64 / diff as f64));
        }
    }
    Ok(v)
}

/// `gettxoutsetinfo [hash_type]`: `hash_serialized_3` (Core's default: SHA256d over every
/// coin in the coins database's key order) or `none`; `muhash` is refused with the reason.
pub fn gettxoutsetinfo(n: &Node, p: &Value) -> RpcResult {
    let kind = match p.get(0).filter(|v| !v.is_null()) {
        None => "hash_serialized_3",
        Some(v) => v.as_str().ok_or_else(|| e(-3, "Expected type string"))?,
    };
    if !matches!(kind, "hash_serialized_3" | "none") {
        if kind == "muhash" {
            return Err(e(
                -8,
                "hash_type muhash is not served by the embedded node (use hash_serialized_3 or none)",
            ));
        }
        return Err(e(-8, format!("'{kind}' is not a valid hash_type")));
    }
    if p.get(1).is_some_and(|v| !v.is_null()) {
        return Err(e(
            -8,
            "Querying specific block heights requires coinstatsindex",
        ));
    }
    // The coins database's order: txid (as stored), then output index.
    let mut by_tx: BTreeMap<[u8; 32], Vec<(&OutPoint, &crate::chain::Coin)>> = BTreeMap::new();
    for (op, c) in n.chain.coins() {
        by_tx
            .entry(op.txid.to_byte_array())
            .or_default()
            .push((op, c));
    }
    let mut engine = sha256d::Hash::engine();
    let (mut txouts, mut bogosize, mut total) = (0u64, 0u64, Amount::ZERO);
    for coins in by_tx.values_mut() {
        coins.sort_by_key(|(op, _)| op.vout);
        for (op, c) in coins.iter() {
            txouts += 1;
            total += c.txout.value;
            bogosize += 32 + 4 + 4 + 8 + 2 + c.txout.script_pubkey.len() as u64;
            engine.input(&serialize(*op));
            engine.input(&((c.height << 1) + u32::from(c.coinbase)).to_le_bytes());
            engine.input(&serialize(&c.txout));
        }
    }
    let mut v = json!({
        "height": n.chain.height(),
        "bestblock": n.chain.tip().to_string(),
        "txouts": txouts,
        "bogosize": bogosize,
        "total_amount": total.to_btc(),
        "transactions": by_tx.len(),
        "disk_size": 0,
    });
    if kind == "hash_serialized_3" {
        let mut h = sha256d::Hash::from_engine(engine).to_byte_array();
        h.reverse();
        v["hash_serialized_3"] = json!(bitcoin::hex::DisplayHex::to_lower_hex_string(&h[..]));
    }
    Ok(v)
}

/// `gettxoutproof ["txid",…] [blockhash]`: a `CMerkleBlock` proving the transactions are in
/// one block.
pub fn gettxoutproof(n: &Node, p: &Value) -> RpcResult {
    let ids = p
        .get(0)
        .and_then(Value::as_array)
        .ok_or_else(|| e(-3, "Expected type array"))?;
    let mut wanted = HashSet::new();
    for id in ids {
        let s = id.as_str().ok_or_else(|| e(-3, "Expected type string"))?;
        let txid = Txid::from_str(s).map_err(|_| e(-8, "txid must be hexadecimal string"))?;
        if !wanted.insert(txid) {
            return Err(e(-8, format!("Invalid parameter, duplicated txid: {s}")));
        }
    }
    let hash = match p.get(1).filter(|v| !v.is_null()) {
        Some(v) => known_block(n, v)?,
        None => {
            let first = wanted
                .iter()
                .next()
                .ok_or_else(|| e(-8, "Invalid parameter, txids must not be empty"))?;
            match n.chain.tx_index.get(first) {
                Some((b, _)) => *b,
                None => return Err(e(-5, "Transaction not yet in block")),
            }
        }
    };
    let block = &n.chain.blocks[&hash].block;
    let found = block
        .txdata
        .iter()
        .filter(|t| wanted.contains(&t.compute_txid()))
        .count();
    if found != wanted.len() {
        return Err(e(
            -5,
            "Not all transactions found in specified or retrieved block",
        ));
    }
    let mb = bitcoin::MerkleBlock::from_block_with_predicate(block, |t| wanted.contains(t));
    Ok(json!(serialize_hex(&mb)))
}

/// `verifytxoutproof "proof"`: the transactions a proof commits to, if its block is in the
/// active chain (none otherwise).
pub fn verifytxoutproof(n: &Node, p: &Value) -> RpcResult {
    let raw = p
        .get(0)
        .and_then(Value::as_str)
        .and_then(|s| <Vec<u8> as bitcoin::hex::FromHex>::from_hex(s).ok())
        .ok_or_else(|| e(-22, "proof must be hexadecimal string"))?;
    let mb: bitcoin::MerkleBlock = deserialize(&raw).map_err(|_| e(-22, "TX decode failed"))?;
    let mut matches = Vec::new();
    let mut indexes = Vec::new();
    let root = mb
        .txn
        .extract_matches(&mut matches, &mut indexes)
        .map_err(|_| e(-22, "TX decode failed"))?;
    if root != mb.header.merkle_root {
        return Ok(json!([]));
    }
    let hash = mb.header.block_hash();
    let entry = n
        .chain
        .blocks
        .get(&hash)
        .filter(|_| n.chain.is_active(&hash))
        .ok_or_else(|| e(-5, "Block not found in chain"))?;
    if entry.block.txdata.len() != mb.txn.num_transactions() as usize {
        return Ok(json!([]));
    }
    Ok(json!(matches
        .iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()))
}
