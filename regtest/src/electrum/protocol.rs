//! Electrum request lines parsed into typed requests, without I/O or node state: one JSON
//! value per line, a request or a non-empty batch, each request's parameters checked per
//! method with the error codes and messages the server answers.
//!
//! Panic-free on any text; a parsed request re-encodes ([`Request::to_json`]) to a line
//! that parses to the same request.

use bitcoin::Txid;
use serde_json::{json, Value};

use crate::index::{self, ScriptHash};

/// Error code of a request refused by a limit (reply too large, too many subscriptions,
/// batch too large).
pub const LIMIT_EXCEEDED: i64 = -32000;

/// A request's method with its checked parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    /// `server.version`.
    ServerVersion,
    /// `server.banner`.
    Banner,
    /// `server.donation_address`.
    DonationAddress,
    /// `server.ping`.
    Ping,
    /// `server.peers.subscribe`.
    PeersSubscribe,
    /// `server.features`.
    Features,
    /// `blockchain.headers.subscribe`.
    HeadersSubscribe,
    /// `blockchain.block.header`.
    BlockHeader {
        /// Block height.
        height: u64,
        /// Checkpoint height for a header proof (0: none).
        cp_height: u64,
    },
    /// `blockchain.block.headers`.
    BlockHeaders {
        /// First height.
        start: u64,
        /// Headers asked for (the server caps it).
        count: u64,
        /// Checkpoint height for a proof of the last header (0: none).
        cp_height: u64,
    },
    /// `blockchain.estimatefee`.
    EstimateFee {
        /// Target in blocks.
        blocks: u64,
    },
    /// `blockchain.relayfee`.
    RelayFee,
    /// `mempool.get_fee_histogram`.
    FeeHistogram,
    /// `blockchain.scripthash.get_history`.
    GetHistory(ScriptHash),
    /// `blockchain.scripthash.get_mempool`.
    GetMempool(ScriptHash),
    /// `blockchain.scripthash.get_balance`.
    GetBalance(ScriptHash),
    /// `blockchain.scripthash.listunspent`.
    ListUnspent(ScriptHash),
    /// `blockchain.scripthash.subscribe`.
    Subscribe(ScriptHash),
    /// `blockchain.scripthash.unsubscribe`.
    Unsubscribe(ScriptHash),
    /// `blockchain.transaction.get` (the id is checked by the node's RPC).
    TxGet {
        /// Transaction id as sent.
        txid: String,
        /// Verbose (JSON) answer.
        verbose: bool,
    },
    /// `blockchain.transaction.broadcast` (the hex is checked by the node's RPC).
    Broadcast {
        /// Raw transaction hex as sent.
        raw: String,
    },
    /// `blockchain.transaction.get_merkle`.
    GetMerkle {
        /// Transaction id.
        txid: Txid,
        /// Height of its block.
        height: u64,
    },
    /// `blockchain.transaction.id_from_pos`.
    IdFromPos {
        /// Block height.
        height: u64,
        /// Position in the block.
        pos: u64,
        /// Whether to add the merkle branch.
        merkle: bool,
    },
}

/// One checked request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Its id (`null` when absent).
    pub id: Value,
    /// What it asks.
    pub method: Method,
}

/// Why a request is refused before it runs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// No string `method` (or not an object).
    #[error("invalid request: missing method")]
    MissingMethod,
    /// `params` neither absent, null nor an array.
    #[error("params must be an array")]
    ParamsNotArray,
    /// A parameter missing or of the wrong type.
    #[error("missing or invalid parameter {0}")]
    Param(&'static str),
    /// A scripthash that is not 64 hex digits.
    #[error("invalid scripthash {0}")]
    ScriptHash(String),
    /// A transaction id that does not parse.
    #[error("invalid tx_hash")]
    TxHash,
    /// A method this server does not know.
    #[error("unknown method {0}")]
    UnknownMethod(String),
}

impl RequestError {
    /// The JSON-RPC error code.
    pub fn code(&self) -> i64 {
        match self {
            RequestError::MissingMethod => -32600,
            RequestError::UnknownMethod(_) => -32601,
            _ => -32602,
        }
    }
}

/// A refused request: its id and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// Its id (`null` when absent).
    pub id: Value,
    /// Why.
    pub error: RequestError,
}

/// One request of a line, or why it is refused.
pub type Entry = Result<Request, Invalid>;

/// A parsed line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// One request (any JSON value but a non-empty array).
    Single(Entry),
    /// A non-empty batch, in order.
    Batch(Vec<Entry>),
}

/// A line answered with one error as a whole.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// Not JSON (-32700).
    #[error("parse error: {0}")]
    Parse(String),
    /// A batch longer than allowed ([`LIMIT_EXCEEDED`]).
    #[error("batch of {len} requests exceeds the limit of {max}")]
    BatchTooLarge {
        /// Requests in the batch.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl LineError {
    /// The JSON-RPC error code.
    pub fn code(&self) -> i64 {
        match self {
            LineError::Parse(_) => -32700,
            LineError::BatchTooLarge { .. } => LIMIT_EXCEEDED,
        }
    }
}

/// Parses one line: a request, or a batch of at most `max_batch`.
pub fn parse_line(text: &str, max_batch: usize) -> Result<Line, LineError> {
    let v: Value = serde_json::from_str(text).map_err(|e| LineError::Parse(e.to_string()))?;
    match v {
        Value::Array(reqs) if !reqs.is_empty() => {
            if reqs.len() > max_batch {
                return Err(LineError::BatchTooLarge {
                    len: reqs.len(),
                    max: max_batch,
                });
            }
            Ok(Line::Batch(reqs.iter().map(parse_request).collect()))
        }
        v => Ok(Line::Single(parse_request(&v))),
    }
}

/// Checks one request: its shape, then its method's parameters.
pub fn parse_request(req: &Value) -> Entry {
    let id = req.get("id").cloned().unwrap_or(Value::Null);
    let refuse = |error| Invalid {
        id: id.clone(),
        error,
    };
    let Some(method) = req.get("method").and_then(Value::as_str) else {
        return Err(refuse(RequestError::MissingMethod));
    };
    let empty = Value::Array(vec![]);
    let p = match req.get("params") {
        None | Some(Value::Null) => &empty,
        Some(p @ Value::Array(_)) => p,
        Some(_) => return Err(refuse(RequestError::ParamsNotArray)),
    };
    match parse_method(method, p) {
        Ok(method) => Ok(Request {
            id: id.clone(),
            method,
        }),
        Err(e) => Err(refuse(e)),
    }
}

fn p_str<'a>(p: &'a Value, i: usize, name: &'static str) -> Result<&'a str, RequestError> {
    p.get(i)
        .and_then(Value::as_str)
        .ok_or(RequestError::Param(name))
}

fn p_u64(p: &Value, i: usize, name: &'static str) -> Result<u64, RequestError> {
    p.get(i)
        .and_then(Value::as_u64)
        .ok_or(RequestError::Param(name))
}

/// An optional `cp_height`: absent or null counts as 0.
fn cp_height(p: &Value, i: usize) -> Result<u64, RequestError> {
    match p.get(i) {
        None | Some(Value::Null) => Ok(0),
        Some(v) => v.as_u64().ok_or(RequestError::Param("cp_height")),
    }
}

fn p_bool(p: &Value, i: usize) -> bool {
    p.get(i).and_then(Value::as_bool).unwrap_or(false)
}

fn scripthash(p: &Value) -> Result<ScriptHash, RequestError> {
    let s = p_str(p, 0, "scripthash")?;
    index::from_hex(s).ok_or_else(|| RequestError::ScriptHash(s.to_string()))
}

/// Checks the parameters (an array) of `method`.
pub fn parse_method(method: &str, p: &Value) -> Result<Method, RequestError> {
    Ok(match method {
        "server.version" => Method::ServerVersion,
        "server.banner" => Method::Banner,
        "server.donation_address" => Method::DonationAddress,
        "server.ping" => Method::Ping,
        "server.peers.subscribe" => Method::PeersSubscribe,
        "server.features" => Method::Features,
        "blockchain.headers.subscribe" => Method::HeadersSubscribe,
        "blockchain.block.header" => {
            let height = p_u64(p, 0, "height")?;
            let cp_height = cp_height(p, 1)?;
            Method::BlockHeader { height, cp_height }
        }
        "blockchain.block.headers" => {
            let start = p_u64(p, 0, "start_height")?;
            let count = p_u64(p, 1, "count")?;
            let cp_height = cp_height(p, 2)?;
            Method::BlockHeaders {
                start,
                count,
                cp_height,
            }
        }
        "blockchain.estimatefee" => Method::EstimateFee {
            blocks: p_u64(p, 0, "number")?,
        },
        "blockchain.relayfee" => Method::RelayFee,
        "mempool.get_fee_histogram" => Method::FeeHistogram,
        "blockchain.scripthash.get_history" => Method::GetHistory(scripthash(p)?),
        "blockchain.scripthash.get_mempool" => Method::GetMempool(scripthash(p)?),
        "blockchain.scripthash.get_balance" => Method::GetBalance(scripthash(p)?),
        "blockchain.scripthash.listunspent" => Method::ListUnspent(scripthash(p)?),
        "blockchain.scripthash.subscribe" => Method::Subscribe(scripthash(p)?),
        "blockchain.scripthash.unsubscribe" => Method::Unsubscribe(scripthash(p)?),
        "blockchain.transaction.get" => Method::TxGet {
            txid: p_str(p, 0, "tx_hash")?.to_string(),
            verbose: p_bool(p, 1),
        },
        "blockchain.transaction.broadcast" => Method::Broadcast {
            raw: p_str(p, 0, "raw_tx")?.to_string(),
        },
        "blockchain.transaction.get_merkle" => Method::GetMerkle {
            txid: p_str(p, 0, "tx_hash")?
                .parse()
                .map_err(|_| RequestError::TxHash)?,
            height: p_u64(p, 1, "height")?,
        },
        "blockchain.transaction.id_from_pos" => Method::IdFromPos {
            height: p_u64(p, 0, "height")?,
            pos: p_u64(p, 1, "tx_pos")?,
            merkle: p_bool(p, 2),
        },
        _ => return Err(RequestError::UnknownMethod(method.to_string())),
    })
}

impl Method {
    /// The protocol's name for it.
    pub fn name(&self) -> &'static str {
        match self {
            Method::ServerVersion => "server.version",
            Method::Banner => "server.banner",
            Method::DonationAddress => "server.donation_address",
            Method::Ping => "server.ping",
            Method::PeersSubscribe => "server.peers.subscribe",
            Method::Features => "server.features",
            Method::HeadersSubscribe => "blockchain.headers.subscribe",
            Method::BlockHeader { .. } => "blockchain.block.header",
            Method::BlockHeaders { .. } => "blockchain.block.headers",
            Method::EstimateFee { .. } => "blockchain.estimatefee",
            Method::RelayFee => "blockchain.relayfee",
            Method::FeeHistogram => "mempool.get_fee_histogram",
            Method::GetHistory(_) => "blockchain.scripthash.get_history",
            Method::GetMempool(_) => "blockchain.scripthash.get_mempool",
            Method::GetBalance(_) => "blockchain.scripthash.get_balance",
            Method::ListUnspent(_) => "blockchain.scripthash.listunspent",
            Method::Subscribe(_) => "blockchain.scripthash.subscribe",
            Method::Unsubscribe(_) => "blockchain.scripthash.unsubscribe",
            Method::TxGet { .. } => "blockchain.transaction.get",
            Method::Broadcast { .. } => "blockchain.transaction.broadcast",
            Method::GetMerkle { .. } => "blockchain.transaction.get_merkle",
            Method::IdFromPos { .. } => "blockchain.transaction.id_from_pos",
        }
    }

    /// Its parameters as a client sends them.
    pub fn params(&self) -> Value {
        match self {
            Method::BlockHeader { height, cp_height } => json!([height, cp_height]),
            Method::BlockHeaders {
                start,
                count,
                cp_height,
            } => json!([start, count, cp_height]),
            Method::EstimateFee { blocks } => json!([blocks]),
            Method::GetHistory(sh)
            | Method::GetMempool(sh)
            | Method::GetBalance(sh)
            | Method::ListUnspent(sh)
            | Method::Subscribe(sh)
            | Method::Unsubscribe(sh) => json!([index::to_hex(sh)]),
            Method::TxGet { txid, verbose } => json!([txid, verbose]),
            Method::Broadcast { raw } => json!([raw]),
            Method::GetMerkle { txid, height } => json!([txid.to_string(), height]),
            Method::IdFromPos {
                height,
                pos,
                merkle,
            } => json!([height, pos, merkle]),
            _ => json!([]),
        }
    }
}

impl Request {
    /// The request as a client sends it.
    pub fn to_json(&self) -> Value {
        json!({"jsonrpc": "2.0", "id": self.id, "method": self.method.name(),
               "params": self.method.params()})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> Entry {
        match parse_line(line, 10) {
            Ok(Line::Single(e)) => e,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn parameters_and_errors() {
        let sh = "00".repeat(31) + "ab";
        let r = one(&format!(
            r#"{{"id":1,"method":"blockchain.scripthash.get_balance","params":["{sh}"]}}"#
        ))
        .unwrap();
        let mut want = [0u8; 32];
        want[0] = 0xab;
        assert_eq!(r.method, Method::GetBalance(want));
        let err = |l: &str| one(l).unwrap_err().error;
        assert_eq!(
            err(r#"{"id":1,"method":"blockchain.scripthash.get_balance","params":["abc"]}"#),
            RequestError::ScriptHash("abc".into())
        );
        assert_eq!(
            err(r#"{"method":"blockchain.block.header","params":[1,"x"]}"#).to_string(),
            "missing or invalid parameter cp_height"
        );
        assert_eq!(
            err(r#"{"method":"blockchain.block.headers","params":[1]}"#).to_string(),
            "missing or invalid parameter count"
        );
        assert_eq!(
            err(r#"{"method":"x","params":{}}"#),
            RequestError::ParamsNotArray
        );
        assert_eq!(err(r#"{"method":"x"}"#).code(), -32601);
        assert_eq!(err("[]").code(), -32600);
        assert_eq!(
            parse_line("[1,2,3]", 2).map_err(|e| e.code()),
            Err(LIMIT_EXCEEDED)
        );
        assert_eq!(parse_line("{", 2).map_err(|e| e.code()), Err(-32700));
    }
}
