//! Peer rexe nodes, given as `http://user:password@host:port`. Calls go through the same
//! JSON-RPC client the miner uses for bitcoind ([`rexe_rpc::client::RpcClient`]).

use crate::error::{Error, Result};
use rexe_rpc::client::RpcClient;
use serde_json::Value;

/// A peer's address and credentials.
#[derive(Clone, Debug)]
pub struct Peer {
    /// `host:port`.
    pub addr: String,
    client: RpcClient,
}

impl Peer {
    /// Parses `http://[user:password@]host:port[/]`.
    pub fn parse(url: &str) -> Result<Peer> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| Error::Config(format!("peer URL {url:?} must start with http://")))?
            .trim_end_matches('/');
        let (auth, addr) = match rest.rsplit_once('@') {
            Some((a, h)) => (a.to_string(), h.to_string()),
            None => (String::new(), rest.to_string()),
        };
        if !addr.contains(':') {
            return Err(Error::Config(format!("peer URL {url:?} needs host:port")));
        }
        Ok(Peer {
            client: RpcClient::new(addr.clone(), auth),
            addr,
        })
    }

    /// Calls `method`; returns its `result` or the error it answered.
    pub fn call(&self, method: &str, params: Value) -> Result<Value> {
        Ok(self.client.call(method, params)?)
    }

    /// Calls `method` and reads its `result` as a `T` (see [`crate::api`]).
    pub fn call_as<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        params: Value,
    ) -> Result<T> {
        Ok(self.client.call_as(method, params)?)
    }

    /// `getpeginfo`.
    pub fn peg_info(&self) -> Result<crate::api::PegInfo> {
        self.call_as("getpeginfo", serde_json::json!([]))
    }

    /// `getpegmatch id`.
    pub fn peg_match(&self, id: u64) -> Result<crate::api::MatchInfo> {
        self.call_as("getpegmatch", serde_json::json!([id]))
    }

    /// `listpegmatches [address]`.
    pub fn peg_matches(&self, who: Option<&str>) -> Result<Vec<crate::api::MatchInfo>> {
        match who {
            Some(a) => self.call_as("listpegmatches", serde_json::json!([a])),
            None => self.call_as("listpegmatches", serde_json::json!([])),
        }
    }

    /// `listpegorders`.
    pub fn peg_orders(&self) -> Result<Vec<crate::api::OrderInfo>> {
        self.call_as("listpegorders", serde_json::json!([]))
    }

    /// `pegmatcher amount`.
    pub fn peg_matcher(&self, amount: u64) -> Result<crate::api::MatcherPlan> {
        self.call_as("pegmatcher", serde_json::json!([amount]))
    }

    /// `getbtcblock hash`.
    pub fn btc_block(&self, hash: &str) -> Result<crate::api::BtcBlockInfo> {
        self.call_as("getbtcblock", serde_json::json!([hash]))
    }
}
