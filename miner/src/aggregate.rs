//! Aux aggregation: the other AuxPoW chains (Namecoin, Syscoin, other rexe chains, …) the
//! proxy merge-mines beside rexe's L2, all committed by ONE aux merkle tree (a coinbase may
//! carry only one `fabe6d6d` header). This module holds what one chain needs: where its aux
//! RPC is ([`AuxChainSpec`], parsed from `--aux-chain`), the work handed out and sealed, its
//! last good work and back-off while its RPC is down ([`AuxChain`]), and its counters
//! ([`ChainStats`]). [`crate::proxy::Harvester`] drives them.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bitcoin::hex::FromHex;
use bitcoin::pow::Target;
use serde_json::{json, Value};
use thiserror::Error;

use crate::auxpow::ChainId;
use rexe_rpc::client::{RpcClient, RpcError};

/// A bad `--aux-chain` value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SpecError {
    /// No `host:port`.
    #[error("aux chain {0:?}: expected [http://[user:pass@]]host:port[,option…]")]
    BadUrl(String),
    /// An option that is not `key=value` with a known key, nor `user:pass`.
    #[error(
        "aux chain option {0:?}: expected user:pass, auth=, cookie=, address=, chain-id= or name="
    )]
    BadOption(String),
    /// `chain-id=` is not a 16-bit number.
    #[error("aux chain id {0:?}: expected hex (0x0001) or decimal below 0x10000")]
    BadChainId(String),
}

/// Where one other AuxPoW chain's aux RPC is, as `--aux-chain` gives it:
/// `[http://[user:pass@]]host:port` then comma-separated options: `user:pass` or
/// `auth=user:pass`, `cookie=PATH` (the node's `.cookie`), `address=ADDR` (its payout:
/// `createauxblock ADDR`; without it `getauxblock`, paying the node's own wallet),
/// `chain-id=0x0001` (checked against the node's answers; learnt from it at start when
/// absent), `name=LABEL` (stats and metrics; default `host:port`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuxChainSpec {
    /// `host:port`.
    pub addr: String,
    /// `user:password`.
    pub auth: Option<String>,
    /// Cookie file (read by the caller).
    pub cookie: Option<PathBuf>,
    /// Payout address for `createauxblock`.
    pub address: Option<String>,
    /// Expected chain id.
    pub chain_id: Option<ChainId>,
    /// Label.
    pub name: Option<String>,
}

impl AuxChainSpec {
    /// Parses a `--aux-chain` value (see the type's doc).
    pub fn parse(s: &str) -> Result<AuxChainSpec, SpecError> {
        let mut parts = s.split(',');
        let url = parts.next().unwrap_or("").trim();
        let rest = url
            .strip_prefix("http://")
            .unwrap_or(url)
            .trim_end_matches('/');
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let ok = hostport
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
            && !hostport.contains('/');
        if !ok || url.contains("://") && !url.starts_with("http://") {
            return Err(SpecError::BadUrl(s.to_string()));
        }
        let mut spec = AuxChainSpec {
            addr: hostport.to_string(),
            auth: userinfo.map(str::to_owned),
            ..AuxChainSpec::default()
        };
        for p in parts {
            let p = p.trim();
            match p.split_once('=') {
                Some(("auth", v)) => spec.auth = Some(v.to_string()),
                Some(("cookie", v)) => spec.cookie = Some(PathBuf::from(v)),
                Some(("address", v)) if !v.is_empty() => spec.address = Some(v.to_string()),
                Some(("chain-id" | "chainid" | "chain_id", v)) => {
                    spec.chain_id = Some(parse_chain_id(v)?)
                }
                Some(("name", v)) if !v.is_empty() => spec.name = Some(v.to_string()),
                None if p.contains(':') => spec.auth = Some(p.to_string()),
                _ => return Err(SpecError::BadOption(p.to_string())),
            }
        }
        Ok(spec)
    }

    /// The label: `name=` or `host:port`.
    pub fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.addr.clone())
    }
}

/// Parses a 16-bit chain id: `0x`-prefixed hex or decimal.
pub fn parse_chain_id(s: &str) -> Result<ChainId, SpecError> {
    let t = s.trim();
    let v = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => t.parse().ok(),
    };
    match v {
        Some(v) if v <= 0xffff => Ok(ChainId(v)),
        _ => Err(SpecError::BadChainId(s.to_string())),
    }
}

/// Why a chain gave no work.
#[derive(Debug, Error)]
pub enum WorkError {
    /// The RPC call failed (unreachable, or it answered an error).
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// The answer is not usable work.
    #[error("{chain}: bad aux work: {reason}")]
    Bad {
        /// The chain's label.
        chain: String,
        /// What is wrong.
        reason: String,
    },
    /// The RPC failed recently and is not retried yet, and no recent work is kept.
    #[error("{0}: RPC down, retried later")]
    Down(String),
}

/// One piece of aux work: the block hash as the chain prints it and its target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuxWork {
    /// Block hash (internal byte order): the leaf committed.
    pub hash: [u8; 32],
    /// The hash as the chain's RPC prints it (what `submitauxblock` takes).
    pub hash_str: String,
    /// Target the parent hash must meet.
    pub target: Target,
}

/// Parses a `createauxblock`/`getauxblock` answer (untrusted): `hash` (64 hex digits),
/// `_target` or `target` (64 hex digits, little-endian), `chainid` (when present it must
/// be `expected`).
pub fn parse_work(v: &Value, expected: ChainId) -> Result<AuxWork, String> {
    let hash_str = v["hash"].as_str().ok_or("no hash")?;
    let mut hash = <[u8; 32]>::from_hex(hash_str).map_err(|_| "hash is not 64 hex digits")?;
    hash.reverse();
    let t = v["_target"]
        .as_str()
        .or_else(|| v["target"].as_str())
        .ok_or("no _target")?;
    let le = <[u8; 32]>::from_hex(t).map_err(|_| "_target is not 64 hex digits")?;
    if let Some(id) = v.get("chainid").filter(|c| !c.is_null()) {
        if id.as_u64() != Some(u64::from(expected.0)) {
            return Err(format!(
                "chainid {id} is not the configured {:#06x}",
                expected.0
            ));
        }
    }
    Ok(AuxWork {
        hash,
        hash_str: hash_str.to_string(),
        target: Target::from_le_bytes(le),
    })
}

/// Counters of one chain.
#[derive(Default, Debug, Clone, serde::Serialize)]
pub struct ChainStats {
    /// The chain id.
    pub chain_id: u32,
    /// Blocks of this chain sealed (its node answered `true`).
    pub sealed: u64,
    /// AuxPoW the chain refused, by reason (at most [`MAX_REASONS`] reasons, then `other`).
    pub rejected: BTreeMap<String, u64>,
    /// RPC failures: unreachable, timed out, error answers or malformed work.
    pub errors: u64,
    /// Work meeting the chain's target that another parent had already sealed, or that
    /// the chain's node no longer had (-8 "block hash unknown": its tip moved).
    pub stale_work: u64,
    /// Templates that carried this chain's leaf.
    pub committed: u64,
}

/// Most distinct rejection reasons kept per chain (other chains' answers are untrusted).
pub const MAX_REASONS: usize = 16;

impl ChainStats {
    /// Counts a rejection, the reason cut to 120 characters.
    pub fn reject(&mut self, reason: &str) {
        let mut r: String = reason.chars().take(120).collect();
        if !self.rejected.contains_key(&r) && self.rejected.len() >= MAX_REASONS {
            r = "other".into();
        }
        *self.rejected.entry(r).or_default() += 1;
    }
}

/// Timeouts and retention of aux work.
#[derive(Clone, Copy, Debug)]
pub struct AggregateOptions {
    /// After an RPC failure, the chain is not called again for this long (its last good
    /// work is committed meanwhile).
    pub retry_after: Duration,
    /// How long a chain's last good work stays committed while its RPC fails.
    pub keep_work: Duration,
}

impl Default for AggregateOptions {
    fn default() -> Self {
        AggregateOptions {
            retry_after: Duration::from_secs(5),
            keep_work: Duration::from_secs(120),
        }
    }
}

/// Work map capacity (cleared when exceeded, as the node drops its templates).
const MAX_WORK: usize = 10_000;

/// One merge-mined chain: its aux RPC, work handed out and sealed, last good work.
pub struct AuxChain {
    /// Label (stats, metrics, logs).
    pub name: String,
    /// Its aux RPC (give it a short timeout).
    pub rpc: RpcClient,
    /// Its chain id.
    pub chain_id: ChainId,
    /// Payout for `createauxblock`; `None`: `getauxblock` (the node pays itself).
    pub address: Option<String>,
    work: Mutex<HashMap<[u8; 32], AuxWork>>,
    sealed: Mutex<HashMap<[u8; 32], (bitcoin::BlockHash, Target)>>,
    last: Mutex<Option<(Instant, [u8; 32])>>,
    down_until: Mutex<Option<Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What [`AuxChain::take`] found for a leaf and a parent hash.
pub enum Taken {
    /// Work to submit (taken out of the map while submitted).
    Submit(AuxWork),
    /// Already sealed by another parent, and this one meets the target too.
    AlreadySealed,
    /// Nothing to do.
    Nothing,
}

impl AuxChain {
    /// A chain served at `rpc`.
    pub fn new(
        name: impl Into<String>,
        rpc: RpcClient,
        chain_id: ChainId,
        address: Option<String>,
    ) -> AuxChain {
        AuxChain {
            name: name.into(),
            rpc,
            chain_id,
            address,
            work: Mutex::new(HashMap::new()),
            sealed: Mutex::new(HashMap::new()),
            last: Mutex::new(None),
            down_until: Mutex::new(None),
        }
    }

    /// Asks the chain for work (`createauxblock payout`, or `getauxblock`), records it as
    /// handed out and as the last good work.
    pub fn fetch(&self, payout: Option<&str>) -> Result<AuxWork, WorkError> {
        let v = match payout {
            Some(a) => self.rpc.call("createauxblock", json!([a]))?,
            None => self.rpc.call("getauxblock", json!([]))?,
        };
        let w = parse_work(&v, self.chain_id).map_err(|reason| WorkError::Bad {
            chain: self.name.clone(),
            reason,
        })?;
        let mut work = lock(&self.work);
        if work.len() >= MAX_WORK {
            work.clear();
        }
        work.insert(w.hash, w.clone());
        drop(work);
        *lock(&self.last) = Some((Instant::now(), w.hash));
        if lock(&self.down_until).take().is_some() {
            tracing::info!(chain = %self.name, "aux chain RPC answers again");
        }
        Ok(w)
    }

    /// The leaf to commit for this chain now: fresh work, or while its RPC fails (and
    /// for `retry_after` after a failure, without calling it) the last good work if younger
    /// than `keep_work`. Errors are counted in `stats`.
    pub fn current(
        &self,
        payout: Option<&str>,
        opts: &AggregateOptions,
        stats: &Mutex<crate::proxy::Stats>,
    ) -> Option<[u8; 32]> {
        let now = Instant::now();
        // The last good work, while young and not sealed yet.
        let last = || {
            lock(&self.last)
                .filter(|(at, _)| now.duration_since(*at) <= opts.keep_work)
                .map(|(_, h)| h)
                .filter(|h| lock(&self.work).contains_key(h))
        };
        if lock(&self.down_until).is_some_and(|t| now < t) {
            return last();
        }
        match self.fetch(payout) {
            Ok(w) => Some(w.hash),
            Err(e) => {
                lock(stats).chain(&self.name, self.chain_id).errors += 1;
                let was_up = lock(&self.down_until)
                    .replace(now + opts.retry_after)
                    .is_none();
                if was_up {
                    tracing::warn!(chain = %self.name, error = %e, "no aux work from this chain; committing its last work, retrying in {:?}", opts.retry_after);
                } else {
                    tracing::debug!(chain = %self.name, error = %e, "aux chain still failing");
                }
                last()
            }
        }
    }

    /// Takes the work committed as `leaf` out of the map when `parent` meets its target.
    pub fn take(&self, leaf: &[u8; 32], parent: bitcoin::BlockHash) -> Taken {
        {
            let mut work = lock(&self.work);
            if work.get(leaf).is_some_and(|w| w.target.is_met_by(parent)) {
                if let Some(w) = work.remove(leaf) {
                    return Taken::Submit(w);
                }
            }
        }
        match lock(&self.sealed).get(leaf) {
            Some((by, target)) if *by != parent && target.is_met_by(parent) => Taken::AlreadySealed,
            _ => Taken::Nothing,
        }
    }

    /// Records `w` as sealed by `parent`.
    pub fn mark_sealed(&self, w: &AuxWork, parent: bitcoin::BlockHash) {
        let mut sealed = lock(&self.sealed);
        if sealed.len() >= MAX_WORK {
            sealed.clear();
        }
        sealed.insert(w.hash, (parent, w.target));
    }

    /// Records `w`, handed out by someone else (another process asked the node for it), as
    /// work to harvest, unless it is already known or sealed. Returns whether it was added.
    pub fn adopt(&self, w: AuxWork) -> bool {
        if lock(&self.sealed).contains_key(&w.hash) {
            return false;
        }
        let mut work = lock(&self.work);
        if work.contains_key(&w.hash) {
            return false;
        }
        if work.len() >= MAX_WORK {
            work.clear();
        }
        work.insert(w.hash, w);
        true
    }

    /// Puts `w` back (its submission did not reach the chain: it may seal later).
    pub fn put_back(&self, w: AuxWork) {
        lock(&self.work).insert(w.hash, w);
    }

    /// Submits `auxpow_hex` for `w`: `submitauxblock`, or `getauxblock hash auxpow` for a
    /// chain worked with `getauxblock`.
    pub fn submit(&self, w: &AuxWork, auxpow_hex: &str) -> Result<Value, RpcError> {
        let method = if self.address.is_some() {
            "submitauxblock"
        } else {
            "getauxblock"
        };
        self.rpc.call(method, json!([w.hash_str, auxpow_hex]))
    }
}

/// Aggregated AuxPoW builds per second, for `rexe bench auxpow`: each build is what the
/// harvester does for one parent block committing to three chains (rexe, Namecoin,
/// Dogecoin ids): lay out and build the aux tree, the tag in a coinbase, the coinbase's
/// branch among 64 transactions, then the three AuxPoWs (chain branch, serialization).
/// Every AuxPoW of the first build is checked with the Namecoin rules; `0.0` if one fails
/// or `n` is 0.
pub fn bench_build(n: u32) -> f64 {
    use crate::auxpow::{AuxPow, AuxTree};
    use bitcoin::hashes::Hash;
    let ids = [ChainId::REXE, ChainId::NAMECOIN, ChainId::DOGECOIN];
    let others: Vec<[u8; 32]> = (1..64u8).map(|i| [i; 32]).collect();
    let start = Instant::now();
    for k in 0..n {
        let chains: Vec<(ChainId, [u8; 32])> = ids
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut h = [i as u8; 32];
                h[..4].copy_from_slice(&k.to_le_bytes());
                (*c, h)
            })
            .collect();
        let Some(tree) = AuxTree::build(&chains) else {
            return 0.0;
        };
        let mut sig = vec![3, 1, 2, 3, 44];
        sig.extend_from_slice(&tree.commitment());
        let coinbase = bitcoin::Transaction {
            version: bitcoin::transaction::Version::TWO,
            lock_time: bitcoin::absolute::LockTime::ZERO,
            input: vec![bitcoin::TxIn {
                previous_output: bitcoin::OutPoint::null(),
                script_sig: bitcoin::ScriptBuf::from_bytes(sig),
                sequence: bitcoin::Sequence::MAX,
                witness: bitcoin::Witness::new(),
            }],
            output: vec![bitcoin::TxOut {
                value: bitcoin::Amount::from_sat(50),
                script_pubkey: bitcoin::ScriptBuf::new(),
            }],
        };
        let mut txids = vec![coinbase.compute_txid().to_byte_array()];
        txids.extend_from_slice(&others);
        let branch = crate::harvest::coinbase_branch(&txids);
        let merkle_root = crate::auxpow::merkle_branch_root(txids[0], &branch, 0);
        let parent = bitcoin::block::Header {
            version: bitcoin::block::Version::from_consensus(0x2000_0000),
            prev_blockhash: bitcoin::BlockHash::all_zeros(),
            merkle_root: bitcoin::TxMerkleNode::from_byte_array(merkle_root),
            time: k,
            bits: bitcoin::CompactTarget::from_consensus(0x207f_ffff),
            nonce: 0,
        };
        for (c, h) in &chains {
            let aux = AuxPow::from_parts(&coinbase, &branch, parent, &tree, *c);
            let bytes = std::hint::black_box(aux.encode());
            if k == 0
                && AuxPow::decode(&bytes)
                    .and_then(|a| a.check(*h, *c))
                    .is_err()
            {
                return 0.0;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    if n == 0 || secs <= 0.0 {
        return 0.0;
    }
    f64::from(n) / secs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        let s = AuxChainSpec::parse("http://u:p@127.0.0.1:8336").unwrap();
        assert_eq!(s.addr, "127.0.0.1:8336");
        assert_eq!(s.auth.as_deref(), Some("u:p"));
        let s = AuxChainSpec::parse(
            "nmc.local:8336,rpcuser:se:cret,address=N1abc,chain-id=0x0001,name=namecoin",
        )
        .unwrap();
        assert_eq!(s.addr, "nmc.local:8336");
        assert_eq!(s.auth.as_deref(), Some("rpcuser:se:cret"));
        assert_eq!(s.address.as_deref(), Some("N1abc"));
        assert_eq!(s.chain_id, Some(ChainId::NAMECOIN));
        assert_eq!(s.label(), "namecoin");
        let s = AuxChainSpec::parse("127.0.0.1:22555,cookie=/d/.cookie,chainid=98").unwrap();
        assert_eq!(s.cookie, Some(PathBuf::from("/d/.cookie")));
        assert_eq!(s.chain_id, Some(ChainId::DOGECOIN));
        assert_eq!(s.label(), "127.0.0.1:22555");
        for bad in [
            "",
            "host",
            "host:port",
            "https://h:1",
            "h:1/path",
            "h:1,bogus",
            "h:1,chain-id=0x10000",
            "h:1,chain-id=zz",
            "h:1,color=red",
        ] {
            assert!(AuxChainSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn work_replies_are_checked() {
        let ok = json!({"hash": "11".repeat(32), "_target": "ff".repeat(32), "chainid": 1});
        let w = parse_work(&ok, ChainId::NAMECOIN).unwrap();
        assert_eq!(w.hash, [0x11; 32]);
        // Dogecoin's `target`, no chainid.
        let doge = json!({"hash": "22".repeat(32), "target": "00".repeat(32)});
        assert!(parse_work(&doge, ChainId::DOGECOIN).is_ok());
        for bad in [
            json!({"hash": "11".repeat(32), "_target": "ff".repeat(32), "chainid": 2}),
            json!({"hash": "11".repeat(31), "_target": "ff".repeat(32)}),
            json!({"hash": "zz".repeat(32), "_target": "ff".repeat(32)}),
            json!({"hash": "11".repeat(32)}),
            json!({"hash": 5, "_target": "ff".repeat(32)}),
            json!(null),
            json!("x"),
        ] {
            assert!(parse_work(&bad, ChainId::NAMECOIN).is_err(), "{bad}");
        }
    }

    #[test]
    fn bench_builds_valid_auxpow() {
        assert!(bench_build(3) > 0.0);
    }

    #[test]
    fn rejection_reasons_are_bounded() {
        let mut s = ChainStats::default();
        for i in 0..100 {
            s.reject(&format!("reason {i} {}", "x".repeat(500)));
        }
        assert_eq!(s.rejected.len(), MAX_REASONS + 1);
        assert_eq!(s.rejected["other"], 100 - MAX_REASONS as u64);
        assert!(s.rejected.keys().all(|k| k.chars().count() <= 120));
    }
}
