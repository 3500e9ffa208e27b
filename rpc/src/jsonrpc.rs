//! JSON-RPC 1.0/2.0 request bodies as the HTTP servers receive them: parsed into typed
//! requests (or per-entry invalid-request errors) without I/O or server state, and replies
//! in the request's style (1.0: `result` and `error` both present; 2.0: one of them and
//! `"jsonrpc": "2.0"`).
//!
//! Panic-free on any bytes; what parses re-encodes ([`Request::to_json`]) to a body that
//! parses to the same request.

use serde_json::{json, Map, Value};

/// Invalid JSON.
pub const PARSE_ERROR: i64 = -32700;
/// Not a request object, no method, or a batch over the limit.
pub const INVALID_REQUEST: i64 = -32600;
/// Unknown method.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Bad parameters.
pub const INVALID_PARAMS: i64 = -32602;
/// The server failed.
pub const INTERNAL_ERROR: i64 = -32603;

/// One well-formed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The request's `id` (`null` when absent).
    pub id: Value,
    /// The method name.
    pub method: String,
    /// `params` as sent (`null` when absent): an array, an object of named parameters, or
    /// anything else for the method to refuse.
    pub params: Value,
    /// Whether `"jsonrpc": "2.0"` was given (the reply then uses the 2.0 style).
    pub v2: bool,
}

impl Request {
    /// The request as a JSON object (absent `params` and `id` written as `null`).
    pub fn to_json(&self) -> Value {
        let mut o = Map::new();
        if self.v2 {
            o.insert("jsonrpc".into(), json!("2.0"));
        }
        o.insert("id".into(), self.id.clone());
        o.insert("method".into(), Value::String(self.method.clone()));
        o.insert("params".into(), self.params.clone());
        Value::Object(o)
    }
}

/// A batch entry or body that is not a request (answered with [`INVALID_REQUEST`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// Not a JSON object (answered with a `null` id, 1.0 style).
    #[error("request must be an object")]
    NotAnObject,
    /// An object without a string `method`.
    #[error("missing method")]
    MissingMethod {
        /// Its `id` (`null` when absent).
        id: Value,
        /// Whether it asked for JSON-RPC 2.0.
        v2: bool,
    },
}

impl Invalid {
    /// The id to answer with.
    pub fn id(&self) -> Value {
        match self {
            Invalid::NotAnObject => Value::Null,
            Invalid::MissingMethod { id, .. } => id.clone(),
        }
    }

    /// Whether to answer in the 2.0 style.
    pub fn v2(&self) -> bool {
        matches!(self, Invalid::MissingMethod { v2: true, .. })
    }
}

/// One request of a body, or why it is not one.
pub type Entry = Result<Request, Invalid>;

/// A parsed body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// A single request (any JSON value that is not an array).
    Single(Entry),
    /// A batch (a JSON array, possibly empty), in order.
    Batch(Vec<Entry>),
}

/// A body that is answered with one error as a whole.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Not JSON ([`PARSE_ERROR`]).
    #[error("parse error: {0}")]
    Parse(String),
    /// A batch longer than allowed ([`INVALID_REQUEST`]).
    #[error("batch of {len} requests is over the limit of {max}")]
    BatchTooLarge {
        /// Requests in the batch.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl BodyError {
    /// The JSON-RPC error code.
    pub fn code(&self) -> i64 {
        match self {
            BodyError::Parse(_) => PARSE_ERROR,
            BodyError::BatchTooLarge { .. } => INVALID_REQUEST,
        }
    }
}

/// Parses a request body: one request or a batch of at most `max_batch`.
pub fn parse_body(body: &[u8], max_batch: usize) -> Result<Body, BodyError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| BodyError::Parse(e.to_string()))?;
    match v {
        Value::Array(reqs) if reqs.len() > max_batch => Err(BodyError::BatchTooLarge {
            len: reqs.len(),
            max: max_batch,
        }),
        Value::Array(reqs) => Ok(Body::Batch(reqs.into_iter().map(parse_request).collect())),
        v => Ok(Body::Single(parse_request(v))),
    }
}

/// Checks one request object's shape.
pub fn parse_request(v: Value) -> Entry {
    let Value::Object(mut obj) = v else {
        return Err(Invalid::NotAnObject);
    };
    let id = obj.remove("id").unwrap_or(Value::Null);
    let v2 = obj.get("jsonrpc").and_then(Value::as_str) == Some("2.0");
    let method = match obj.remove("method") {
        Some(Value::String(m)) => m,
        _ => return Err(Invalid::MissingMethod { id, v2 }),
    };
    let params = obj.remove("params").unwrap_or(Value::Null);
    Ok(Request {
        id,
        method,
        params,
        v2,
    })
}

/// The reply to a request with `id` in its style: `Ok(result)` or `Err(error object)`.
pub fn response(id: Value, v2: bool, r: Result<Value, Value>) -> Value {
    let mut out = match r {
        Ok(result) if v2 => json!({"result": result, "id": id}),
        Ok(result) => json!({"result": result, "error": null, "id": id}),
        Err(e) if v2 => json!({"error": e, "id": id}),
        Err(e) => json!({"result": null, "error": e, "id": id}),
    };
    if v2 {
        out["jsonrpc"] = json!("2.0");
    }
    out
}

/// An error object `{"code", "message"}`.
pub fn error_object(code: i64, message: impl Into<String>) -> Value {
    json!({"code": code, "message": message.into()})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let b = br#"{"jsonrpc":"2.0","id":7,"method":"getblockcount"}"#;
        let Ok(Body::Single(Ok(r))) = parse_body(b, 10) else {
            panic!("not a request")
        };
        assert_eq!(
            (r.id, r.method.as_str(), r.params, r.v2),
            (json!(7), "getblockcount", Value::Null, true)
        );
        assert_eq!(
            parse_body(b"[1, {\"id\": 2}]", 10),
            Ok(Body::Batch(vec![
                Err(Invalid::NotAnObject),
                Err(Invalid::MissingMethod {
                    id: json!(2),
                    v2: false
                })
            ]))
        );
        assert_eq!(parse_body(b"[]", 0), Ok(Body::Batch(vec![])));
        assert_eq!(
            parse_body(b"[1,2]", 1),
            Err(BodyError::BatchTooLarge { len: 2, max: 1 })
        );
        assert_eq!(parse_body(b"{", 1).map_err(|e| e.code()), Err(PARSE_ERROR));
        assert_eq!(
            parse_body(br#"{"method": 1, "jsonrpc": "2.0"}"#, 1),
            Ok(Body::Single(Err(Invalid::MissingMethod {
                id: Value::Null,
                v2: true
            })))
        );
    }

    #[test]
    fn reply_styles() {
        assert_eq!(
            response(json!(1), false, Ok(json!(5))),
            json!({"result": 5, "error": null, "id": 1})
        );
        assert_eq!(
            response(json!(1), true, Err(error_object(-1, "x"))),
            json!({"jsonrpc": "2.0", "error": {"code": -1, "message": "x"}, "id": 1})
        );
    }
}
