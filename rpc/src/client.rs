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

/// Resolves a call's `host:port` without a thread per call.
///
/// ureq's default resolver runs before the pool is consulted, on every call (pooled
/// connections included), and spawns a thread for each whenever a timeout is set, as it
/// always is here: a thread start per RPC call, for an IP literal too. rexe's endpoints are
/// nearly always IP literals (`127.0.0.1:8332`): those are parsed; names (`bitcoind:8332`
/// in Docker) still go to the default resolver and its timeout.
#[derive(Debug, Default)]
struct LiteralFirst(ureq::unversioned::resolver::DefaultResolver);

impl ureq::unversioned::resolver::Resolver for LiteralFirst {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        if let Some(addr) = literal_addr(uri) {
            let mut out = self.empty();
            out.push(addr);
            return Ok(out);
        }
        self.0.resolve(uri, config, timeout)
    }
}

/// The socket address of an `http://` URI whose host is an IP literal (`[…]` for IPv6).
fn literal_addr(uri: &ureq::http::Uri) -> Option<std::net::SocketAddr> {
    if uri.scheme_str() != Some("http") {
        return None;
    }
    let authority = uri.authority()?;
    let host = authority.host();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ip: std::net::IpAddr = host.parse().ok()?;
    Some(std::net::SocketAddr::new(
        ip,
        authority.port_u16().unwrap_or(80),
    ))
}

fn agent(timeout: Duration) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
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
        .build();
    ureq::Agent::with_parts(
        config,
        ureq::unversioned::transport::DefaultConnector::new(),
        LiteralFirst::default(),
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(uri: &str) -> Option<std::net::SocketAddr> {
        literal_addr(&uri.parse().unwrap())
    }

    #[test]
    fn ip_literals_are_parsed_and_names_left_to_the_system() {
        assert_eq!(
            lit("http://127.0.0.1:18443/"),
            Some("127.0.0.1:18443".parse().unwrap())
        );
        assert_eq!(
            lit("http://[::1]:8332/wallet/w"),
            Some("[::1]:8332".parse().unwrap())
        );
        assert_eq!(
            lit("http://10.0.0.7/"),
            Some("10.0.0.7:80".parse().unwrap())
        );
        assert_eq!(lit("http://bitcoind:8332/"), None);
        assert_eq!(lit("http://localhost:8332/"), None);
        assert_eq!(lit("https://127.0.0.1:8332/"), None);
    }

    /// Calls reach a server by IP literal and by name alike.
    #[test]
    fn calls_reach_the_server_by_literal_and_by_name() {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for s in l.incoming().take(2) {
                let mut s = s.unwrap();
                let mut buf = [0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut buf).unwrap();
                    got.extend_from_slice(&buf[..n]);
                }
                let body = r#"{"result":7,"error":null,"id":1}"#;
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                s.write_all(reply.as_bytes()).unwrap();
            }
        });
        for host in ["127.0.0.1", "localhost"] {
            let c = RpcClient::new(format!("{host}:{port}"), "u:p");
            assert_eq!(c.call("getblockcount", json!([])).unwrap(), json!(7));
        }
    }
}
