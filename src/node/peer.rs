//! A minimal JSON-RPC client for talking to peer rexe nodes over HTTP/1.1 (one request per
//! connection). Peers are given as `http://user:password@host:port`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use serde_json::{json, Value};

/// A peer's address and credentials.
#[derive(Clone, Debug)]
pub struct Peer {
    /// `host:port`.
    pub addr: String,
    auth: Option<String>,
}

impl Peer {
    /// Parses `http://[user:password@]host:port[/]`.
    pub fn parse(url: &str) -> Result<Peer> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| anyhow!("peer URL {url:?} must start with http://"))?
            .trim_end_matches('/');
        let (auth, addr) = match rest.rsplit_once('@') {
            Some((a, h)) => (Some(a.to_string()), h.to_string()),
            None => (None, rest.to_string()),
        };
        if !addr.contains(':') {
            bail!("peer URL {url:?} needs host:port");
        }
        Ok(Peer { addr, auth })
    }

    /// Calls `method`; returns its `result` or the error it answered.
    pub fn call(&self, method: &str, params: Value) -> Result<Value> {
        let body =
            json!({"jsonrpc": "2.0", "id": 0, "method": method, "params": params}).to_string();
        let mut s = TcpStream::connect(&self.addr)
            .with_context(|| format!("connecting to peer {}", self.addr))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        s.set_write_timeout(Some(Duration::from_secs(30)))?;
        let mut req = format!(
            "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.addr,
            body.len()
        );
        if let Some(a) = &self.auth {
            req += &format!(
                "Authorization: Basic {}\r\n",
                base64::engine::general_purpose::STANDARD.encode(a)
            );
        }
        req += "\r\n";
        s.write_all(req.as_bytes())?;
        s.write_all(body.as_bytes())?;
        let mut resp = Vec::new();
        s.take(64 * 1024 * 1024).read_to_end(&mut resp)?;
        let text = String::from_utf8_lossy(&resp);
        let (head, payload) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| anyhow!("peer {} sent a malformed HTTP reply", self.addr))?;
        if head.split_whitespace().nth(1) == Some("401") {
            bail!("peer {} refused our credentials", self.addr);
        }
        let v: Value = serde_json::from_str(payload)
            .with_context(|| format!("peer {} sent invalid JSON", self.addr))?;
        if !v["error"].is_null() {
            bail!("peer {}: {} error: {}", self.addr, method, v["error"]);
        }
        Ok(v["result"].clone())
    }
}
