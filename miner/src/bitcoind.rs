//! A minimal blocking JSON-RPC 1.0 client over HTTP/1.1 with basic or cookie auth: the one
//! place rexe talks to bitcoind (or the embedded regtest node) and to other rexe nodes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bitcoin::base64::Engine as _;
use serde_json::{json, Value};
use thiserror::Error;

/// A bitcoind RPC failure.
#[derive(Debug, Error)]
pub enum RpcError {
    /// Could not connect or the connection broke.
    #[error("RPC server at {addr}: {err}")]
    Io {
        /// host:port.
        addr: String,
        /// Cause.
        err: std::io::Error,
    },
    /// bitcoind answered with an error object.
    #[error("{method} failed: error {code}: {message}")]
    Rpc {
        /// Method called.
        method: String,
        /// Core's code.
        code: i64,
        /// Message.
        message: String,
        /// The error object's `data` (`Null` when absent): rexe nodes put a refusal's kind
        /// and reason code there.
        data: Value,
    },
    /// The answer was not JSON-RPC.
    #[error("malformed JSON-RPC reply: {0}")]
    Malformed(String),
}

/// A bitcoind endpoint.
#[derive(Clone, Debug)]
pub struct Bitcoind {
    addr: String,
    auth: String,
    timeout: Duration,
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

impl Bitcoind {
    /// `addr` is `host:port`; `auth` is `user:password` (or the cookie's contents).
    pub fn new(addr: impl Into<String>, auth: impl Into<String>) -> Self {
        Bitcoind {
            addr: addr.into(),
            auth: auth.into(),
            timeout: Duration::from_secs(60),
        }
    }

    /// The same endpoint with `timeout` for connecting and for each read and write
    /// (default 60 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    fn connect(&self) -> std::io::Result<TcpStream> {
        use std::net::ToSocketAddrs;
        let mut last = None;
        for a in self.addr.to_socket_addrs()? {
            match TcpStream::connect_timeout(&a, self.timeout) {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "address resolves to nothing")
        }))
    }

    /// The endpoint's `host:port`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Calls `method` with positional `params`; the `result`, or the error it answered.
    pub fn call(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        let io = |err| RpcError::Io {
            addr: self.addr.clone(),
            err,
        };
        let body =
            json!({"jsonrpc": "1.0", "id": "rexe", "method": method, "params": params}).to_string();
        let mut s = self.connect().map_err(io)?;
        s.set_read_timeout(Some(self.timeout)).map_err(io)?;
        s.set_write_timeout(Some(self.timeout)).map_err(io)?;
        let req = format!(
            "POST / HTTP/1.1\r\nHost: {}\r\nAuthorization: Basic {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
            self.addr,
            bitcoin::base64::engine::general_purpose::STANDARD.encode(&self.auth),
            body.len(),
            body
        );
        s.write_all(req.as_bytes()).map_err(io)?;
        // The whole reply within twice the timeout: a server dripping bytes cannot hold
        // the caller longer.
        let deadline = std::time::Instant::now() + self.timeout * 2;
        let mut resp = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = s.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            resp.extend_from_slice(&buf[..n]);
            if resp.len() > 256 * 1024 * 1024 || std::time::Instant::now() > deadline {
                return Err(io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "reply too large or too slow",
                )));
            }
        }
        let text = String::from_utf8_lossy(&resp);
        let (head, payload) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| RpcError::Malformed("no HTTP body".into()))?;
        if head.split_whitespace().nth(1) == Some("401") {
            return Err(RpcError::Rpc {
                method: method.into(),
                code: 401,
                message: "unauthorized (check the RPC credentials)".into(),
                data: Value::Null,
            });
        }
        let v: Value =
            serde_json::from_str(payload.trim()).map_err(|e| RpcError::Malformed(e.to_string()))?;
        if !v["error"].is_null() {
            return Err(RpcError::Rpc {
                method: method.into(),
                code: v["error"]["code"].as_i64().unwrap_or(0),
                message: v["error"]["message"].as_str().unwrap_or("").into(),
                data: v["error"]["data"].clone(),
            });
        }
        Ok(v["result"].clone())
    }
}
