//! bitcoind's REST interface (`-rest`), as Bitcoin Core 31 serves it on the RPC port
//! without authentication: what electrs ≥ 0.11 (through `bindex`) and other indexers read.
//!
//! Served: `block/<hash>`, `block/notxdetails/<hash>`, `blockpart/<hash>?offset=&size=`,
//! `headers/<count>/<hash>` and `headers/<hash>?count=`, `blockhashbyheight/<height>`,
//! `spenttxouts/<hash>`, `tx/<txid>`, `getutxos` (BIP64: outpoints in the path, or for
//! `.bin`/`.hex` in a POST body), `chaininfo`, `mempool/info` and `mempool/contents`, each
//! with Core's `.bin`/`.hex`/`.json` suffixes where Core has them, its status codes and its
//! `text/plain` error lines. Not served: `blockfilter*`, `deploymentinfo`.
//!
//! Off by default, as in Core: [`crate::RegtestConfig::rest`] (`rexe regtest --rest`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bitcoin::consensus::encode::{serialize, VarInt};
use bitcoin::hex::DisplayHex;
use bitcoin::{BlockHash, Txid};
use serde_json::{json, Value};

use crate::rpc::Shared;

/// Most headers one request returns (Core's `MAX_REST_HEADERS_RESULTS`).
pub const MAX_HEADERS: usize = 2000;

/// A response format, from the path's suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Bin,
    Hex,
    Json,
    Undef,
}

/// Core's `ParseDataFormat`: the path without its query and suffix, and the suffix's format
/// (`Undef` when there is none or it is unknown; the path then keeps it).
fn parse_format(part: &str) -> (&str, Format) {
    let param = part.split('?').next().unwrap_or("");
    let Some(dot) = param.rfind('.') else {
        return (param, Format::Undef);
    };
    let f = match &param[dot + 1..] {
        "bin" => Format::Bin,
        "hex" => Format::Hex,
        "json" => Format::Json,
        _ => return (param, Format::Undef),
    };
    (&param[..dot], f)
}

/// A query parameter's value.
fn query<'a>(uri: &'a Uri, name: &str) -> Option<&'a str> {
    uri.query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then_some(v)
    })
}

/// A refusal: Core's status and message.
struct Refused(StatusCode, String);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        error(self.0, self.1)
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let mut body = message.into();
    body.push_str("\r\n");
    (status, [(header::CONTENT_TYPE, "text/plain")], body).into_response()
}

fn not_found_format(json: bool) -> Response {
    let available = if json {
        ".bin, .hex, .json"
    } else {
        ".bin, .hex"
    };
    error(
        StatusCode::NOT_FOUND,
        format!("output format not found (available: {available})"),
    )
}

/// Bytes in the format asked for (`json` builds the JSON form).
fn reply(f: Format, bytes: impl FnOnce() -> Vec<u8>, json: impl FnOnce() -> Value) -> Response {
    match f {
        Format::Bin => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/octet-stream")],
            bytes(),
        )
            .into_response(),
        Format::Hex => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain")],
            format!("{}\n", bytes().to_lower_hex_string()),
        )
            .into_response(),
        Format::Json => json_reply(&json()),
        Format::Undef => not_found_format(true),
    }
}

fn json_reply(v: &Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{v}\n"),
    )
        .into_response()
}

fn parse_hash<T: std::str::FromStr>(s: &str) -> Option<T> {
    // Core's `uint256::FromHex`: exactly 64 hex digits.
    (s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// An RPC method's answer for a JSON form (the node's lock is taken by the call).
fn rpc_json(shared: &Shared, method: &str, params: Value) -> Result<Value, Refused> {
    crate::rpc::call(shared, method, &params).map_err(|(_, m)| Refused(StatusCode::NOT_FOUND, m))
}

/// Largest request body read (only `getutxos` takes one: at most 15 outpoints).
pub const MAX_BODY: usize = 64 * 1024;

/// Most outpoints one `getutxos` asks about (Core's `MAX_GETUTXOS_OUTPOINTS`).
pub const MAX_OUTPOINTS: usize = 15;

/// `GET` (or `POST`, for `getutxos`) `/rest/…`.
pub async fn handle(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    body: axum::body::Body,
) -> Response {
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
    };
    let path = uri.path().strip_prefix("/rest/").unwrap_or("").to_string();
    tokio::task::spawn_blocking(move || route(&shared, &path, &uri, &body))
        .await
        .unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"))
}

fn route(shared: &Shared, path: &str, uri: &Uri, body: &[u8]) -> Response {
    if let Some(rest) = path.strip_prefix("getutxos") {
        return getutxos(shared, rest, body);
    }
    if let Some(rest) = path.strip_prefix("block/notxdetails/") {
        return block(shared, rest, false);
    }
    if let Some(rest) = path.strip_prefix("blockpart/") {
        return block_part(shared, rest, uri);
    }
    if let Some(rest) = path.strip_prefix("block/") {
        return block(shared, rest, true);
    }
    if let Some(rest) = path.strip_prefix("headers/") {
        return headers(shared, rest, uri);
    }
    if let Some(rest) = path.strip_prefix("blockhashbyheight/") {
        return hash_by_height(shared, rest);
    }
    if let Some(rest) = path.strip_prefix("spenttxouts/") {
        return spent_txouts(shared, rest);
    }
    if let Some(rest) = path.strip_prefix("tx/") {
        return tx(shared, rest);
    }
    if let Some(rest) = path.strip_prefix("mempool/") {
        return mempool(shared, rest, uri);
    }
    match parse_format(path) {
        ("chaininfo", Format::Json) => match rpc_json(shared, "getblockchaininfo", json!([])) {
            Ok(v) => json_reply(&v),
            Err(r) => r.into_response(),
        },
        ("chaininfo", _) => error(
            StatusCode::NOT_FOUND,
            "output format not found (available: json)",
        ),
        _ => error(StatusCode::NOT_FOUND, "Not found"),
    }
}

fn mempool(shared: &Shared, part: &str, uri: &Uri) -> Response {
    let (param, f) = parse_format(part);
    if param != "contents" && param != "info" {
        return error(
            StatusCode::BAD_REQUEST,
            "Invalid URI format. Expected /rest/mempool/<info|contents>.json",
        );
    }
    if f != Format::Json {
        return error(
            StatusCode::NOT_FOUND,
            "output format not found (available: json)",
        );
    }
    if param == "info" {
        return match rpc_json(shared, "getmempoolinfo", json!([])) {
            Ok(v) => json_reply(&v),
            Err(r) => r.into_response(),
        };
    }
    let flag = |name: &str, default: &'static str| match query(uri, name).unwrap_or(default) {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Refused(
            StatusCode::BAD_REQUEST,
            format!("The \"{name}\" query parameter must be either \"true\" or \"false\"."),
        )),
    };
    let verbose = match flag("verbose", "true") {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let sequence = match flag("mempool_sequence", "false") {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    if verbose && sequence {
        return error(
            StatusCode::BAD_REQUEST,
            "Verbose results cannot contain mempool sequence values. (hint: set \"verbose=false\")",
        );
    }
    match rpc_json(shared, "getrawmempool", json!([verbose, sequence])) {
        Ok(v) => json_reply(&v),
        Err(r) => r.into_response(),
    }
}

/// `getutxos[/checkmempool]/<txid>-<n>/…` (BIP64): which outpoints are unspent, and their
/// coins. `.bin`/`.hex` take the request instead as a body: a bool (check the mempool) and
/// the outpoints.
fn getutxos(shared: &Shared, part: &str, body: &[u8]) -> Response {
    let (param, f) = parse_format(part);
    let parts: Vec<&str> = if param.len() > 1 {
        param[1..].split('/').collect()
    } else {
        Vec::new()
    };
    let parse_error = || error(StatusCode::BAD_REQUEST, "Parse error");
    if body.is_empty() && parts.is_empty() {
        return error(StatusCode::BAD_REQUEST, "Error: empty request");
    }
    let mut check_mempool = false;
    let mut outpoints: Vec<bitcoin::OutPoint> = Vec::new();
    let in_uri = !parts.is_empty();
    if in_uri {
        check_mempool = parts[0] == "checkmempool";
        for p in &parts[usize::from(check_mempool)..] {
            let mut it = p.split('-');
            let (Some(txid), Some(vout), None) = (it.next(), it.next(), it.next()) else {
                return parse_error();
            };
            let (Some(txid), Ok(vout)) = (parse_hash::<Txid>(txid), vout.parse::<u32>()) else {
                return parse_error();
            };
            if outpoints.len() > MAX_OUTPOINTS {
                break;
            }
            outpoints.push(bitcoin::OutPoint { txid, vout });
        }
        if outpoints.is_empty() {
            return error(StatusCode::BAD_REQUEST, "Error: empty request");
        }
    }
    match f {
        Format::Bin | Format::Hex => {
            let raw: Vec<u8> = if f == Format::Hex {
                match std::str::from_utf8(body)
                    .ok()
                    .map(|s| s.trim())
                    .and_then(|s| bitcoin::hex::FromHex::from_hex(s).ok())
                {
                    Some(b) => b,
                    None if body.is_empty() => Vec::new(),
                    None => return parse_error(),
                }
            } else {
                body.to_vec()
            };
            if !raw.is_empty() {
                if in_uri {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "Combination of URI scheme inputs and raw post data is not allowed",
                    );
                }
                let Some((c, ops)) = decode_request(&raw) else {
                    return parse_error();
                };
                check_mempool = c;
                outpoints = ops;
            }
        }
        Format::Json if !in_uri => return error(StatusCode::BAD_REQUEST, "Error: empty request"),
        Format::Json => {}
        Format::Undef => return not_found_format(true),
    }
    if outpoints.len() > MAX_OUTPOINTS {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "Error: max outpoints exceeded (max: {MAX_OUTPOINTS}, tried: {})",
                outpoints.len()
            ),
        );
    }
    let (height, tip, coins) = {
        let n = shared.node.lock().unwrap_or_else(|x| x.into_inner());
        let coins: Vec<Option<crate::chain::Coin>> = outpoints
            .iter()
            .map(|op| {
                if check_mempool {
                    n.mempool.view_coin(&n.chain, op)
                } else {
                    n.chain.coin(op).cloned()
                }
            })
            .collect();
        (n.chain.height(), n.chain.tip(), coins)
    };
    let mut bitmap = vec![0u8; outpoints.len().div_ceil(8)];
    for (i, c) in coins.iter().enumerate() {
        if c.is_some() {
            bitmap[i / 8] |= 1 << (i % 8);
        }
    }
    let found: Vec<&crate::chain::Coin> = coins.iter().flatten().collect();
    let bytes = || {
        let mut out = Vec::new();
        out.extend((height as i32).to_le_bytes());
        out.extend(serialize(&tip));
        out.extend(serialize(&bitmap));
        out.extend(serialize(&VarInt(found.len() as u64)));
        for c in &found {
            out.extend(0u32.to_le_bytes());
            out.extend(c.height.to_le_bytes());
            out.extend(serialize(&c.txout));
        }
        out
    };
    let json = || {
        json!({
            "chainHeight": height,
            "chaintipHash": tip.to_string(),
            "bitmap": coins.iter().map(|c| if c.is_some() { '1' } else { '0' }).collect::<String>(),
            "utxos": found.iter().map(|c| json!({
                "height": c.height as i32,
                "value": c.txout.value.to_btc(),
                "scriptPubKey": crate::core_json::script_pubkey_json(
                    &c.txout.script_pubkey,
                    bitcoin::Network::Regtest,
                ),
            })).collect::<Vec<_>>(),
        })
    };
    reply(f, bytes, json)
}

/// A `getutxos` body: a bool, then a vector of outpoints (its length checked against what
/// the bytes can hold before anything is allocated).
fn decode_request(raw: &[u8]) -> Option<(bool, Vec<bitcoin::OutPoint>)> {
    let (&flag, rest) = raw.split_first()?;
    let check = match flag {
        0 => false,
        1 => true,
        _ => return None,
    };
    let mut r = rest;
    let n = bitcoin::consensus::Decodable::consensus_decode(&mut r)
        .map(|v: VarInt| v.0)
        .ok()?;
    if n > (r.len() / 36) as u64 {
        return None;
    }
    let mut ops = Vec::with_capacity(n as usize);
    for _ in 0..n {
        ops.push(bitcoin::consensus::Decodable::consensus_decode(&mut r).ok()?);
    }
    r.is_empty().then_some((check, ops))
}

/// The serialized block `hash`, or Core's 400/404.
fn block_bytes(shared: &Shared, hash_str: &str) -> Result<(BlockHash, Vec<u8>), Refused> {
    let hash: BlockHash = parse_hash(hash_str)
        .ok_or_else(|| Refused(StatusCode::BAD_REQUEST, format!("Invalid hash: {hash_str}")))?;
    let n = shared.node.lock().unwrap_or_else(|x| x.into_inner());
    let entry = n
        .chain
        .blocks
        .get(&hash)
        .ok_or_else(|| Refused(StatusCode::NOT_FOUND, format!("{hash_str} not found")))?;
    Ok((hash, serialize(&entry.block)))
}

fn block(shared: &Shared, part: &str, details: bool) -> Response {
    let (hash_str, f) = parse_format(part);
    let (hash, bytes) = match block_bytes(shared, hash_str) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    if f == Format::Json {
        // Core: transactions with their prevouts, or only their txids.
        let verbosity = if details { 3 } else { 1 };
        return match rpc_json(shared, "getblock", json!([hash.to_string(), verbosity])) {
            Ok(v) => json_reply(&v),
            Err(r) => r.into_response(),
        };
    }
    reply(f, || bytes, || Value::Null)
}

/// `blockpart/<hash>.<bin|hex>?offset=N&size=M`: `size` bytes of the serialized block from
/// `offset` (Core 31).
fn block_part(shared: &Shared, part: &str, uri: &Uri) -> Response {
    let (hash_str, f) = parse_format(part);
    let number = |name: &str| query(uri, name).and_then(|v| v.parse::<u64>().ok());
    let Some(offset) = number("offset") else {
        return error(
            StatusCode::BAD_REQUEST,
            "Block part offset missing or invalid",
        );
    };
    let Some(size) = number("size") else {
        return error(
            StatusCode::BAD_REQUEST,
            "Block part size missing or invalid",
        );
    };
    let (_, bytes) = match block_bytes(shared, hash_str) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    let end = offset.checked_add(size);
    let Some(range) = end
        .filter(|e| *e <= bytes.len() as u64)
        .map(|e| offset as usize..e as usize)
    else {
        return error(
            StatusCode::NOT_FOUND,
            format!("{hash_str} part not found (offset {offset}, size {size})"),
        );
    };
    match f {
        Format::Bin | Format::Hex => reply(f, || bytes[range].to_vec(), || Value::Null),
        _ => not_found_format(false),
    }
}

fn headers(shared: &Shared, part: &str, uri: &Uri) -> Response {
    let (param, f) = parse_format(part);
    let segments: Vec<&str> = param.split('/').collect();
    let (raw_count, hash_str) = match segments.as_slice() {
        // Deprecated: /rest/headers/<count>/<hash>.
        [count, hash] => (count.to_string(), *hash),
        [hash] => (query(uri, "count").unwrap_or("5").to_string(), *hash),
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "Invalid URI format. Expected /rest/headers/<hash>.<ext>?count=<count>",
            )
        }
    };
    let count = match raw_count.parse::<usize>() {
        Ok(c) if (1..=MAX_HEADERS).contains(&c) => c,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                "Header count is invalid or out of acceptable range (1-{MAX_HEADERS}): {raw_count}"
            ),
            )
        }
    };
    let Some(hash) = parse_hash::<BlockHash>(hash_str) else {
        return error(StatusCode::BAD_REQUEST, format!("Invalid hash: {hash_str}"));
    };
    // The headers from `hash` along the active chain (none when it is not on it), read
    // under one lock.
    let headers: Vec<bitcoin::block::Header> = {
        let n = shared.node.lock().unwrap_or_else(|x| x.into_inner());
        let chain = &n.chain;
        match chain.blocks.get(&hash) {
            Some(e) if chain.active.get(e.height as usize) == Some(&hash) => chain.active
                [e.height as usize..]
                .iter()
                .take(count)
                .map(|h| chain.blocks[h].block.header)
                .collect(),
            _ => Vec::new(),
        }
    };
    let bytes = || headers.iter().flat_map(serialize).collect();
    let json = || {
        Value::Array(
            headers
                .iter()
                .filter_map(|h| {
                    rpc_json(
                        shared,
                        "getblockheader",
                        json!([h.block_hash().to_string()]),
                    )
                    .ok()
                })
                .collect(),
        )
    };
    reply(f, bytes, json)
}

fn hash_by_height(shared: &Shared, part: &str) -> Response {
    let (height_str, f) = parse_format(part);
    let height = match height_str.parse::<i32>() {
        Ok(h) if h >= 0 => h as usize,
        _ => {
            // Core echoes the height with only URI-safe characters (`SAFE_CHARS_URI`).
            let safe: String = height_str
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || "!*'();:@&=+$,/?#[]-_.~%".contains(*c))
                .collect();
            return error(StatusCode::BAD_REQUEST, format!("Invalid height: {safe}"));
        }
    };
    let hash = {
        let n = shared.node.lock().unwrap_or_else(|x| x.into_inner());
        n.chain.active.get(height).copied()
    };
    let Some(hash) = hash else {
        return error(StatusCode::NOT_FOUND, "Block height out of range");
    };
    // Binary is the hash's serialization; hex, unlike elsewhere, its display form (Core
    // writes `GetHex()` here).
    match f {
        Format::Hex => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain")],
            format!("{hash}\n"),
        )
            .into_response(),
        _ => reply(
            f,
            || serialize(&hash),
            || json!({"blockhash": hash.to_string()}),
        ),
    }
}

/// The outputs each transaction of block `hash` spent, in input order, the coinbase's
/// (empty) list first: Core's `SerializeBlockUndo` (compact sizes and bare `CTxOut`s).
fn spent_txouts(shared: &Shared, part: &str) -> Response {
    let (hash_str, f) = parse_format(part);
    let Some(hash) = parse_hash::<BlockHash>(hash_str) else {
        return error(StatusCode::BAD_REQUEST, format!("Invalid hash: {hash_str}"));
    };
    let spent = {
        let n = shared.node.lock().unwrap_or_else(|x| x.into_inner());
        let Some(entry) = n.chain.blocks.get(&hash) else {
            return error(StatusCode::NOT_FOUND, format!("{hash_str} not found"));
        };
        if entry.height == 0 {
            Some(Vec::new())
        } else {
            n.chain.spent_outputs(&hash)
        }
    };
    let Some(spent) = spent else {
        return error(
            StatusCode::NOT_FOUND,
            format!("{hash_str} undo not available"),
        );
    };
    let bytes = || {
        let mut out = Vec::new();
        out.extend(serialize(&VarInt(spent.len() as u64 + 1)));
        out.extend(serialize(&VarInt(0)));
        for tx in &spent {
            out.extend(serialize(&VarInt(tx.len() as u64)));
            for o in tx {
                out.extend(serialize(o));
            }
        }
        out
    };
    let json = || {
        let mut all = vec![json!([])];
        all.extend(spent.iter().map(|tx| {
            Value::Array(
                tx.iter()
                    .map(|o| {
                        json!({
                            "value": o.value.to_btc(),
                            "scriptPubKey": crate::core_json::script_pubkey_json(
                                &o.script_pubkey,
                                bitcoin::Network::Regtest,
                            ),
                        })
                    })
                    .collect(),
            )
        }));
        Value::Array(all)
    };
    reply(f, bytes, json)
}

fn tx(shared: &Shared, part: &str) -> Response {
    let (txid_str, f) = parse_format(part);
    let Some(txid) = parse_hash::<Txid>(txid_str) else {
        return error(StatusCode::BAD_REQUEST, format!("Invalid hash: {txid_str}"));
    };
    if f == Format::Json {
        return match rpc_json(shared, "getrawtransaction", json!([txid.to_string(), true])) {
            Ok(v) => json_reply(&v),
            Err(_) => error(StatusCode::NOT_FOUND, format!("{txid_str} not found")),
        };
    }
    let raw = rpc_json(
        shared,
        "getrawtransaction",
        json!([txid.to_string(), false]),
    )
    .ok()
    .and_then(|v| v.as_str().map(str::to_string))
    .and_then(|h| bitcoin::hex::FromHex::from_hex(&h).ok());
    let Some(raw): Option<Vec<u8>> = raw else {
        return error(StatusCode::NOT_FOUND, format!("{txid_str} not found"));
    };
    reply(f, || raw, || Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_read_as_core_reads_them() {
        assert_eq!(parse_format("abc.bin"), ("abc", Format::Bin));
        assert_eq!(parse_format("abc.hex?x=1"), ("abc", Format::Hex));
        assert_eq!(parse_format("a.b.json"), ("a.b", Format::Json));
        // Core compares the suffix byte for byte.
        assert_eq!(parse_format("abc.BIN"), ("abc.BIN", Format::Undef));
        assert_eq!(parse_format("abc"), ("abc", Format::Undef));
        assert_eq!(parse_format("5/abc.bin"), ("5/abc", Format::Bin));
    }
}
