//! Node configuration: a TOML file (`--config`) whose every key a command-line flag of the
//! same name overrides. Defaults are safe: RPC on 127.0.0.1, cookie authentication.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use clap::Args;
use rexe_chain::ChainParams;
use serde::Deserialize;

/// Command-line overrides; each matches a key of the TOML file.
#[derive(Args, Debug, Default)]
pub struct Overrides {
    /// Data directory.
    #[arg(long)]
    pub datadir: Option<PathBuf>,
    /// Network: regtest or devnet.
    #[arg(long)]
    pub network: Option<String>,
    /// RPC listen address (default 127.0.0.1:18480).
    #[arg(long)]
    pub rpc_bind: Option<String>,
    /// RPC user (in addition to the cookie).
    #[arg(long)]
    pub rpc_user: Option<String>,
    /// RPC password (with --rpc-user).
    #[arg(long)]
    pub rpc_password: Option<String>,
    /// Executor threads.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Peer node to sync with over JSON-RPC polling, `http://user:password@host:port`
    /// (repeatable; the fallback to p2p).
    #[arg(long = "peer")]
    pub peers: Vec<String>,
    /// Listen for p2p (libp2p) connections on this `host:port` or multiaddr (repeatable;
    /// port 0 picks a free one). The identity is `p2p.key` in the data directory.
    #[arg(long = "p2p-bind")]
    pub p2p_bind: Vec<String>,
    /// Bootstrap p2p peer, a multiaddr ending in `/p2p/<peer id>` (repeatable).
    #[arg(long = "bootnode")]
    pub bootnodes: Vec<String>,
    /// Find p2p peers on the local network with mDNS (devnets).
    #[arg(long)]
    pub mdns: bool,
    /// Store and run only these shards, e.g. `0,1` (default: all). Fixed when the data
    /// directory is made; such a node syncs over p2p from full nodes, or partial nodes that
    /// run those shards too (see docs/scale-out.md).
    #[arg(long, value_delimiter = ',')]
    pub track_shards: Vec<u16>,
    /// L2 address paid by `getauxblock` without arguments.
    #[arg(long)]
    pub mining_address: Option<String>,
    /// Merge-mining chain id (hex `0x0b42` or decimal, below 0x2000) the AuxPoW seals and
    /// the aux RPC use (default 0x0b42, rexe's). A consensus rule: the data directory
    /// records it and refuses another.
    #[arg(long)]
    pub chain_id: Option<String>,
    /// Most open RPC connections in total (default 256).
    #[arg(long)]
    pub rpc_max_connections: Option<usize>,
    /// Most open RPC connections from one IP address (default 128).
    #[arg(long)]
    pub rpc_max_per_ip: Option<usize>,
    /// Seconds a client has to send a request head, and an idle keep-alive connection stays
    /// open (default 30, as bitcoind's -rpcservertimeout).
    #[arg(long)]
    pub rpc_timeout: Option<u64>,
    /// Most requests in one JSON-RPC batch (default 1000).
    #[arg(long)]
    pub rpc_max_batch: Option<usize>,
    /// At start, also run SQLite's integrity check on every shard file and recompute every
    /// shard's commitment from its rows (progress in the log). The quick checks (commitments
    /// against the tip header, supply audit) always run.
    #[arg(long)]
    pub verify_state: bool,
    /// Transactions each shard's mempool holds before evicting the lowest-paying (default
    /// 100,000).
    #[arg(long)]
    pub mempool_per_shard: Option<usize>,
    /// Memory for the shards' account caches in all, MiB (approximate; default: 3,000,000
    /// accounts per shard, ~460 MiB on 4 shards). Hit rates are in `getshardinfo`.
    #[arg(long, value_name = "MIB")]
    pub cache_mib: Option<usize>,
    /// Memory-map up to this many MiB of each shard file for reads (default 0: off).
    /// Reads that miss the account caches get faster; the mapped file pages the node
    /// touches count in its resident size.
    #[arg(long, value_name = "MIB")]
    pub mmap_mib: Option<usize>,
}

/// The effective configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Data directory (default `rexe-data`).
    #[serde(default = "default_datadir")]
    pub datadir: PathBuf,
    /// Network: `regtest`, `devnet`, `test` or `main`.
    #[serde(default = "default_network")]
    pub network: String,
    /// JSON-RPC listen address (`host:port`).
    #[serde(default = "default_bind")]
    pub rpc_bind: String,
    /// Optional RPC user name (besides the cookie).
    #[serde(default)]
    pub rpc_user: Option<String>,
    /// Its password.
    #[serde(default)]
    pub rpc_password: Option<String>,
    /// Executor threads.
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// Peer nodes polled over JSON-RPC, `http://user:password@host:port`.
    #[serde(default)]
    pub peers: Vec<String>,
    /// p2p listen addresses (`host:port` or multiaddrs); none: p2p listens nowhere.
    #[serde(default)]
    pub p2p_bind: Vec<String>,
    /// p2p bootstrap peers (multiaddrs ending in `/p2p/<peer id>`).
    #[serde(default)]
    pub bootnodes: Vec<String>,
    /// mDNS discovery of p2p peers on the local network.
    #[serde(default)]
    pub mdns: bool,
    /// The shards this node stores and runs (empty: all).
    #[serde(default)]
    pub track_shards: Vec<u16>,
    /// Address paid by blocks built for the aux RPC.
    #[serde(default)]
    pub mining_address: Option<String>,
    /// Merge-mining chain id (TOML integer, e.g. `chain_id = 0x0b42`).
    #[serde(default)]
    pub chain_id: Option<u32>,
    /// RPC connections at once (default 256).
    #[serde(default)]
    pub rpc_max_connections: Option<usize>,
    /// RPC connections per client address (default 128).
    #[serde(default)]
    pub rpc_max_per_ip: Option<usize>,
    /// Seconds for a request head/body and for an idle keep-alive connection (default 30).
    #[serde(default)]
    pub rpc_timeout: Option<u64>,
    /// Requests in one JSON-RPC batch (default 1000).
    #[serde(default)]
    pub rpc_max_batch: Option<usize>,
    /// Recompute every shard's commitment (and SQLite's integrity check) at open.
    #[serde(default)]
    pub verify_state: bool,
    /// Mempool capacity per shard.
    #[serde(default)]
    pub mempool_per_shard: Option<usize>,
    /// Memory for the shards' account caches, in MiB.
    #[serde(default)]
    pub cache_mib: Option<usize>,
    /// MiB of each shard file read through a memory map (0 or absent: off).
    #[serde(default)]
    pub mmap_mib: Option<usize>,
}

fn default_datadir() -> PathBuf {
    PathBuf::from("rexe-data")
}
fn default_network() -> String {
    "regtest".into()
}
fn default_bind() -> String {
    "127.0.0.1:18480".into()
}
fn default_threads() -> usize {
    2
}

impl NodeConfig {
    /// Reads `file` (if any) and applies `o` on top.
    pub fn load(file: Option<&Path>, o: &Overrides) -> Result<Self> {
        let mut cfg: NodeConfig = match file {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| Error::io(format!("reading config {}", p.display()), e))?;
                toml::from_str(&text)
                    .map_err(|e| Error::Config(format!("parsing config {}: {e}", p.display())))?
            }
            None => {
                toml::from_str("").map_err(|e| Error::Config(format!("default config: {e}")))?
            }
        };
        if let Some(v) = &o.datadir {
            cfg.datadir = v.clone();
        }
        if let Some(v) = &o.network {
            cfg.network = v.clone();
        }
        if let Some(v) = &o.rpc_bind {
            cfg.rpc_bind = v.clone();
        }
        if let Some(v) = &o.rpc_user {
            cfg.rpc_user = Some(v.clone());
        }
        if let Some(v) = &o.rpc_password {
            cfg.rpc_password = Some(v.clone());
        }
        if let Some(v) = o.threads {
            cfg.threads = v;
        }
        if !o.peers.is_empty() {
            cfg.peers = o.peers.clone();
        }
        if !o.p2p_bind.is_empty() {
            cfg.p2p_bind = o.p2p_bind.clone();
        }
        if !o.bootnodes.is_empty() {
            cfg.bootnodes = o.bootnodes.clone();
        }
        cfg.mdns |= o.mdns;
        if !o.track_shards.is_empty() {
            cfg.track_shards = o.track_shards.clone();
        }
        if let Some(v) = &o.mining_address {
            cfg.mining_address = Some(v.clone());
        }
        if let Some(v) = &o.chain_id {
            cfg.chain_id = Some(parse_chain_id(v)?);
        }
        for (dst, src) in [
            (&mut cfg.rpc_max_connections, o.rpc_max_connections),
            (&mut cfg.rpc_max_per_ip, o.rpc_max_per_ip),
            (&mut cfg.rpc_max_batch, o.rpc_max_batch),
            (&mut cfg.mempool_per_shard, o.mempool_per_shard),
            (&mut cfg.cache_mib, o.cache_mib),
            (&mut cfg.mmap_mib, o.mmap_mib),
        ] {
            if src.is_some() {
                *dst = src;
            }
        }
        cfg.verify_state |= o.verify_state;
        if o.rpc_timeout.is_some() {
            cfg.rpc_timeout = o.rpc_timeout;
        }
        if cfg.rpc_user.is_some() != cfg.rpc_password.is_some() {
            return Err(Error::Config(
                "rpc_user and rpc_password must be given together".into(),
            ));
        }
        if cfg.cache_mib == Some(0) {
            return Err(Error::Config("cache_mib must be at least 1".into()));
        }
        Ok(cfg)
    }

    /// `user:password` when configured.
    pub fn user_password(&self) -> Option<String> {
        Some(format!(
            "{}:{}",
            self.rpc_user.as_ref()?,
            self.rpc_password.as_ref()?
        ))
    }

    /// The RPC server's limits: defaults from [`rexe_rpc::Limits::http`], overridden by the
    /// `rpc_max_*`/`rpc_timeout` keys.
    pub fn rpc_limits(&self) -> Result<rexe_rpc::Limits> {
        let mut l = rexe_rpc::Limits::http();
        if let Some(n) = self.rpc_max_connections {
            l.max_connections = n;
        }
        if let Some(n) = self.rpc_max_per_ip {
            l.max_per_ip = n;
        }
        if let Some(s) = self.rpc_timeout {
            if s == 0 {
                return Err(Error::Config(
                    "rpc_timeout must be at least 1 second".into(),
                ));
            }
            l.idle_timeout = std::time::Duration::from_secs(s);
            l.write_timeout = l.idle_timeout;
        }
        if let Some(n) = self.rpc_max_batch {
            l.max_batch = n;
        }
        Ok(l)
    }

    /// The configured mining address, parsed for `network`.
    pub fn mining_address(
        &self,
        network: rexe_chain::Network,
    ) -> Result<Option<rexe_chain::Address>> {
        self.mining_address
            .as_deref()
            .map(|a| {
                rexe_chain::Address::parse_for(a, network)
                    .map_err(|e| Error::Config(format!("mining_address {a:?}: {e}")))
            })
            .transpose()
    }

    /// The merge-mining chain id: the configured one (checked to be below `0x2000`, so no
    /// Bitcoin header can carry it) or rexe's `0x0b42`.
    pub fn chain_id(&self) -> Result<rexe_miner::ChainId> {
        match self.chain_id {
            None => Ok(rexe_miner::ChainId::REXE),
            Some(id) if id < 0x2000 => Ok(rexe_miner::ChainId(id)),
            Some(id) => Err(Error::Config(format!(
                "chain_id {id:#06x} is not below 0x2000: Bitcoin headers with version bits read as such ids"
            ))),
        }
    }

    /// Whether the p2p transport runs: some listen address, bootstrap peer or mDNS.
    pub fn p2p_enabled(&self) -> bool {
        !self.p2p_bind.is_empty() || !self.bootnodes.is_empty() || self.mdns
    }

    /// The configured peers, parsed.
    pub fn peers(&self) -> Result<Vec<super::peer::Peer>> {
        self.peers
            .iter()
            .map(|p| super::peer::Peer::parse(p))
            .collect()
    }

    /// The RPC listen address.
    pub fn rpc_addr(&self) -> Result<SocketAddr> {
        let a: SocketAddr = self.rpc_bind.parse().map_err(|e| {
            Error::Config(format!(
                "rpc_bind {:?} is not host:port: {e}",
                self.rpc_bind
            ))
        })?;
        if !a.ip().is_loopback() {
            tracing::warn!(bind = %a, "RPC listens beyond loopback: protect it with a firewall");
        }
        Ok(a)
    }

    /// Chain parameters for the configured network.
    pub fn chain_params(&self) -> Result<ChainParams> {
        match self.network.as_str() {
            "regtest" => Ok(ChainParams::regtest()),
            "devnet" => Ok(ChainParams::devnet_preset()),
            other => Err(Error::Config(format!(
                "unknown network {other:?} (regtest or devnet; main and test are not launched)"
            ))),
        }
    }
}

/// Parses a chain id: `0x`-prefixed hex or decimal.
pub fn parse_chain_id(s: &str) -> Result<u32> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16),
        None => s.parse(),
    }
    .map_err(|e| {
        Error::Config(format!(
            "chain id {s:?} is not a number (hex 0x0b42 or decimal): {e}"
        ))
    })
}

/// File in the data directory recording the chain id its blocks are sealed for.
const CHAIN_ID_FILE: &str = "chain_id";

/// Checks `chain_id` against the one `datadir` records, recording it on first use. A data
/// directory with a chain but no record was made before the key existed: rexe's 0x0b42.
pub fn check_datadir_chain_id(datadir: &Path, chain_id: rexe_miner::ChainId) -> Result<()> {
    let file = datadir.join(CHAIN_ID_FILE);
    let recorded = match std::fs::read_to_string(&file) {
        Ok(s) => Some(
            parse_chain_id(&s)
                .map_err(|e| Error::Config(format!("reading {}: {e}", file.display())))?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // The lock file alone (a node stopped before writing anything) is not a chain.
            let used = std::fs::read_dir(datadir)
                .map(|d| {
                    d.filter_map(|e| e.ok())
                        .any(|e| e.file_name() != rexe_chain::store::LOCK_FILE)
                })
                .unwrap_or(false);
            used.then_some(rexe_miner::ChainId::REXE.0)
        }
        Err(e) => return Err(Error::io(format!("reading {}", file.display()), e)),
    };
    if let Some(r) = recorded {
        if r != chain_id.0 {
            return Err(Error::Config(format!(
                "the data directory {} holds a chain sealed for chain id {r:#06x}, not {:#06x}",
                datadir.display(),
                chain_id.0
            )));
        }
    }
    std::fs::create_dir_all(datadir)
        .map_err(|e| Error::io(format!("creating {}", datadir.display()), e))?;
    std::fs::write(&file, format!("{:#06x}\n", chain_id.0))
        .map_err(|e| Error::io(format!("writing {}", file.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rexe_miner::ChainId;

    #[test]
    fn the_chain_id_file_is_written_on_first_use_and_checked_after() {
        let dir = tempfile::tempdir().unwrap();
        let other = ChainId(0x0b43);
        // A directory holding only the lock file (a node stopped before writing a chain)
        // takes any chain id.
        std::fs::write(dir.path().join(rexe_chain::store::LOCK_FILE), "1\n").unwrap();
        check_datadir_chain_id(dir.path(), other).unwrap();
        check_datadir_chain_id(dir.path(), other).unwrap();
        let e = check_datadir_chain_id(dir.path(), ChainId::REXE).unwrap_err();
        assert!(e.to_string().contains("0x0b43"), "{e}");
        // A directory from before the file existed holds rexe's own chain id.
        let old = tempfile::tempdir().unwrap();
        std::fs::write(old.path().join("chain.sqlite"), b"").unwrap();
        assert!(check_datadir_chain_id(old.path(), other).is_err());
        check_datadir_chain_id(old.path(), ChainId::REXE).unwrap();
    }
}
