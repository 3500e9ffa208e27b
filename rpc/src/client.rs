//! The one JSON-RPC client: Bitcoin Core's dialect (JSON-RPC 1.0 envelopes over HTTP/1.1,
//! basic or cookie auth) for bitcoind, the embedded regtest node and rexe nodes alike.
//!
//! Built on `ureq`: blocking, with keep-alive connections pooled per client (and shared by
//! its clones), chunked and sized bodies, timeouts on connect and on the whole call, and a
//! cap on the reply's size. Every caller is blocking code (the CLI, the agents, the miner's
//! work fetches, which the async servers run on blocking threads), so a blocking client
//! needs no runtime of its own. Environment proxies are ignored, as `bitcoin-cli` does.
//!
//! Answers are read as [`Value`] with [`RpcClient::call`] or straight into a type with
//! [`RpcClient::call_as`]; errors keep the server's code and `data` ([`RpcError`]).

use std::io;
use std::time::Duration;

use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use thiserror::Error;

/// Largest reply a call reads (a block of 4 MB weighs 8 MB in hex; `getrawmempool` with
/// details of a full mempool is larger still).
pub const MAX_REPLY_BYTES: u64 = 256 * 1024 * 1024;

/// How long a pooled connection may idle before it is dropped instead of reused: below the
/// servers' idle timeouts (30 s for rexe's, Core's `-rpcservertimeout` 30 s), so a call
/// rarely picks a connection the server is closing.
const MAX_IDLE: Duration = Duration::from_secs(15);

/// A failed call.
#[derive(Debug, Error)]
pub enum RpcError {
    /// Could not connect, the connection broke, or the server took too long.
    #[error("RPC server at {addr}: {err}")]
    Io {
        /// host:port.
        addr: String,
        /// Cause.
        err: io::Error,
    },
    /// The server answered with an error object (or refused the credentials: code 401).
    #[error("{method} failed: error {code}: {message}")]
    Rpc {
        /// Method called.
        method: String,
        /// The server's code (Core's `RPC_*` codes; 401 for refused credentials).
        code: i64,
        /// Message.
        message: String,
        /// The error object's `data` (`Null` when absent): rexe nodes put a refusal's kind
        /// and reason code there.
        data: Value,
    },
    /// The answer was not JSON-RPC, or not the shape the caller asked for.
    #[error("malformed JSON-RPC reply: {0}")]
    Malformed(String),
}

impl RpcError {
    /// Whether the call failed to reach the server (connect/IO), not an answer from it.
    pub fn is_transport(&self) -> bool {
        matches!(self, RpcError::Io { .. })
    }

    /// The server's error code, when it answered with an error.
    pub fn code(&self) -> Option<i64> {
        match self {
            RpcError::Rpc { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether the server answered "not found" (-5, Core's `RPC_INVALID_ADDRESS_OR_KEY`).
    pub fn is_not_found(&self) -> bool {
        self.code() == Some(-5)
    }

    /// A rexe node's refusal of a transaction: `data.kind` and `data.reason`, when the
    /// server answered -26 with them.
    pub fn refusal(&self) -> Option<(&str, Option<&str>)> {
        match self {
            RpcError::Rpc {
                code: -26, data, ..
            } => Some((data["kind"].as_str()?, data["reason"].as_str())),
            _ => None,
        }
    }
}

/// A JSON-RPC endpoint (`host:port` and its credentials). Cheap to clone; clones share
/// their pool of connections.
#[derive(Clone)]
pub struct RpcClient {
    addr: String,
    /// `Basic …`, computed once.
    authorization: String,
    timeout: Duration,
    agent: ureq::Agent,
}

impl std::fmt::Debug for RpcClient {
    // Never the credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClient")
            .field("addr", &self.addr)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(timeout))
        // The whole call, reply included: a server dripping bytes cannot hold the caller
        // longer than twice the timeout.
        .timeout_global(Some(timeout * 2))
        .http_status_as_error(false)
        .proxy(None)
        .max_redirects(0)
        .max_idle_age(MAX_IDLE)
        .max_idle_connections_per_host(4)
        .user_agent("rexe")
        .build()
        .new_agent()
}

impl RpcClient {
    /// `addr` is `host:port`; `auth` is `user:password` (or a cookie file's contents).
    /// Calls time out after 60 s (see [`RpcClient::with_timeout`]).
    pub fn new(addr: impl Into<String>, auth: impl AsRef<str>) -> Self {
        let timeout = Duration::from_secs(60);
        RpcClient {
            addr: addr.into(),
            authorization: format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(auth.as_ref())
            ),
            timeout,
            agent: agent(timeout),
        }
    }

    /// The same endpoint with `timeout` for connecting, and twice it for a whole call
    /// (default 60 s). The copy has its own connections.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self.agent = agent(self.timeout);
        self
    }

    /// The endpoint's `host:port`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn io(&self, err: ureq::Error) -> RpcError {
        RpcError::Io {
            addr: self.addr.clone(),
            err: err.into_io(),
        }
    }

    /// POSTs `body` to `path` (`/`, `/wallet/NAME`) with this client's credentials, or
    /// with `authorization` (a whole `Authorization` header value) when given; the reply's
    /// status and body, whatever they are. The mining proxy forwards its clients' calls to
    /// bitcoind through this.
    pub fn post(
        &self,
        path: &str,
        body: &[u8],
        authorization: Option<&str>,
    ) -> Result<(u16, Vec<u8>), RpcError> {
        let resp = self
            .agent
            .post(format!("http://{}{path}", self.addr))
            .header(
                "Authorization",
                authorization.unwrap_or(&self.authorization),
            )
            .content_type("application/json")
            .send(body);
        self.read(resp)
    }

    /// GETs `path` (e.g. `/stats`): the status and the body as text.
    pub fn get(&self, path: &str) -> Result<(u16, String), RpcError> {
        let resp = self
            .agent
            .get(format!("http://{}{path}", self.addr))
            .header("Authorization", &self.authorization)
            .call();
        let (status, body) = self.read(resp)?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// A reply's status and body (at most [`MAX_REPLY_BYTES`]).
    fn read(
        &self,
        resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<(u16, Vec<u8>), RpcError> {
        let mut resp = resp.map_err(|e| self.io(e))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_REPLY_BYTES)
            .read_to_vec()
            .map_err(|e| self.io(e))?;
        Ok((status, body))
    }

    /// Calls `method` with positional `params`; the `result`, or the error it answered.
    pub fn call(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        let body =
            json!({"jsonrpc": "1.0", "id": "rexe", "method": method, "params": params}).to_string();
        let (status, payload) = self.post("/", body.as_bytes(), None)?;
        if status == 401 || status == 403 {
            return Err(RpcError::Rpc {
                method: method.into(),
                code: 401,
                message: "unauthorized (check the RPC credentials)".into(),
                data: Value::Null,
            });
        }
        // Core answers errors with 404/500 and a JSON-RPC body; anything else without one
        // is not an answer.
        let mut v: Value = serde_json::from_slice(&payload).map_err(|e| {
            RpcError::Malformed(format!(
                "HTTP {status}: {e}: {}",
                String::from_utf8_lossy(&payload[..payload.len().min(200)])
            ))
        })?;
        if !v["error"].is_null() {
            return Err(RpcError::Rpc {
                method: method.into(),
                code: v["error"]["code"].as_i64().unwrap_or(0),
                message: v["error"]["message"].as_str().unwrap_or("").into(),
                data: v["error"]["data"].take(),
            });
        }
        match v.get_mut("result") {
            Some(r) => Ok(r.take()),
            None => Err(RpcError::Malformed(format!(
                "HTTP {status}: neither result nor error"
            ))),
        }
    }

    /// Calls `method` and reads its `result` as a `T`: the typed form of [`RpcClient::call`].
    pub fn call_as<T: DeserializeOwned>(&self, method: &str, params: Value) -> Result<T, RpcError> {
        let v = self.call(method, params)?;
        serde_json::from_value(v)
            .map_err(|e| RpcError::Malformed(format!("{method}'s result: {e}")))
    }
}
