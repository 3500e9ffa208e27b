//! Peer rexe nodes, given as `http://user:password@host:port`. Calls go through the same
//! JSON-RPC client the miner uses for bitcoind ([`rexe_miner::bitcoind::Bitcoind`]).

use anyhow::{anyhow, bail, Result};
use rexe_miner::bitcoind::Bitcoind;
use serde_json::Value;

/// A peer's address and credentials.
#[derive(Clone, Debug)]
pub struct Peer {
    /// `host:port`.
    pub addr: String,
    client: Bitcoind,
}

impl Peer {
    /// Parses `http://[user:password@]host:port[/]`.
    pub fn parse(url: &str) -> Result<Peer> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| anyhow!("peer URL {url:?} must start with http://"))?
            .trim_end_matches('/');
        let (auth, addr) = match rest.rsplit_once('@') {
            Some((a, h)) => (a.to_string(), h.to_string()),
            None => (String::new(), rest.to_string()),
        };
        if !addr.contains(':') {
            bail!("peer URL {url:?} needs host:port");
        }
        Ok(Peer {
            client: Bitcoind::new(addr.clone(), auth),
            addr,
        })
    }

    /// Calls `method`; returns its `result` or the error it answered.
    pub fn call(&self, method: &str, params: Value) -> Result<Value> {
        Ok(self.client.call(method, params)?)
    }
}
