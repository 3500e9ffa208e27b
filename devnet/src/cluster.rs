//! `rexe devnet --nodes N --shards-per-node K`: the devnet's node (a full node: it builds
//! the blocks) plus `N - 1` more L2 nodes as child processes (`rexe devnet-node`), each
//! running `K` shards of the devnet's chain and following it over libp2p.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use rexe_rpc::RpcClient;
use serde_json::json;

/// `rexe devnet-node`'s arguments (started by `rexe devnet --nodes`).
#[derive(Args)]
pub struct DevnetNodeArgs {
    /// Data directory.
    #[arg(long)]
    datadir: PathBuf,
    /// The devnet's Bitcoin target bits (part of its peg's consensus state).
    #[arg(long)]
    bitcoin_bits: String,
    /// The devnet node's p2p address.
    #[arg(long)]
    bootnode: String,
    /// Shards to run (default: all).
    #[arg(long, value_delimiter = ',')]
    track_shards: Vec<u16>,
}

/// Runs one extra devnet node until a stop signal.
pub fn run_node(a: DevnetNodeArgs) -> Result<()> {
    let params = crate::params();
    let bits = crate::parse_bits(&a.bitcoin_bits)?;
    let cfg = rexe_node::NodeConfig::load(
        None,
        &rexe_node::config::Overrides {
            datadir: Some(a.datadir),
            network: Some("devnet".into()),
            rpc_bind: Some("127.0.0.1:0".into()),
            threads: Some(1),
            p2p_bind: vec!["127.0.0.1:0".into()],
            bootnodes: vec![a.bootnode],
            track_shards: a.track_shards,
            ..Default::default()
        },
    )?;
    let peg = crate::devnet_peg(&params, bits);
    Ok(rexe_node::run_with(cfg, params, peg)?)
}

/// One child node.
struct Member {
    name: String,
    shards: Vec<u16>,
    datadir: PathBuf,
    child: Child,
    rpc: Arc<Mutex<Option<String>>>,
}

/// The extra nodes.
pub struct Cluster {
    members: Vec<Member>,
}

/// The shards node `i` (1-based among the extra nodes) runs: `k` consecutive shards,
/// round-robin over the `n` shards.
pub fn shards_of(i: usize, k: usize, n: usize) -> Vec<u16> {
    let mut s: Vec<u16> = (0..k).map(|j| (((i - 1) * k + j) % n) as u16).collect();
    s.sort_unstable();
    s.dedup();
    s
}

impl Cluster {
    /// Starts `nodes - 1` nodes in `datadir/node-<i>`, each running `per_node` of `shards`
    /// shards, with `bootnode` as their peer.
    pub fn start(
        datadir: &Path,
        nodes: usize,
        per_node: usize,
        shards: usize,
        bits: &str,
        bootnode: &str,
    ) -> Result<Cluster> {
        let exe = std::env::current_exe().context("finding the rexe binary")?;
        let mut members = Vec::new();
        for i in 1..nodes {
            let name = format!("node-{i}");
            let dir = datadir.join(&name);
            let list = shards_of(i, per_node, shards);
            let mut cmd = Command::new(&exe);
            cmd.arg("devnet-node")
                .arg("--datadir")
                .arg(&dir)
                .args(["--bitcoin-bits", bits, "--bootnode", bootnode])
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit());
            if per_node < shards {
                let csv: Vec<String> = list.iter().map(u16::to_string).collect();
                cmd.args(["--track-shards", &csv.join(",")]);
            }
            let mut child = cmd
                .spawn()
                .with_context(|| format!("starting devnet {name}"))?;
            let rpc = Arc::new(Mutex::new(None));
            if let Some(out) = child.stdout.take() {
                let (rpc, name) = (rpc.clone(), name.clone());
                std::thread::spawn(move || {
                    for line in BufReader::new(out).lines().map_while(Result::ok) {
                        if let Some(i) = line.find("http://") {
                            let addr = line[i + 7..].split_whitespace().next().unwrap_or("");
                            *rpc.lock().unwrap_or_else(|e| e.into_inner()) = Some(addr.to_string());
                        }
                        println!("  [{name}] {line}");
                    }
                });
            }
            members.push(Member {
                name,
                shards: list,
                datadir: dir,
                child,
                rpc,
            });
        }
        Ok(Cluster { members })
    }

    /// Waits (bounded) for every node to reach `tip`, and prints where each stands.
    pub fn report(&self, tip: &str, height: u64) {
        for m in &self.members {
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut last = None;
            while Instant::now() < deadline {
                if let Some(info) = self.info(m) {
                    let same = info["bestblockhash"].as_str() == Some(tip);
                    last = Some(info);
                    if same {
                        break;
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            match last {
                Some(info) => println!(
                    "cluster {} (shards {:?}): height {} tip {} {}",
                    m.name,
                    m.shards,
                    info["height"],
                    info["bestblockhash"].as_str().unwrap_or("?"),
                    if info["bestblockhash"].as_str() == Some(tip) {
                        "agrees with the devnet node"
                    } else {
                        "BEHIND the devnet node"
                    }
                ),
                None => println!(
                    "cluster {} (shards {:?}): no answer (devnet node at height {height})",
                    m.name, m.shards
                ),
            }
        }
    }

    fn info(&self, m: &Member) -> Option<serde_json::Value> {
        let addr = m.rpc.lock().unwrap_or_else(|e| e.into_inner()).clone()?;
        let cookie = std::fs::read_to_string(m.datadir.join(".cookie")).ok()?;
        RpcClient::new(addr, cookie.trim())
            .call("getchaininfo", json!([]))
            .ok()
    }

    /// Stops every node (SIGTERM, then SIGKILL after ten seconds).
    pub fn stop(mut self) {
        for m in &self.members {
            if let Ok(pid) = i32::try_from(m.child.id()) {
                if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
                }
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for m in &mut self.members {
            loop {
                match m.child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    _ => {
                        let _ = m.child.kill();
                        let _ = m.child.wait();
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_take_consecutive_shards_round_robin() {
        assert_eq!(shards_of(1, 2, 4), vec![0, 1]);
        assert_eq!(shards_of(2, 2, 4), vec![2, 3]);
        assert_eq!(shards_of(3, 2, 4), vec![0, 1]);
        assert_eq!(shards_of(2, 3, 4), vec![0, 1, 3]);
        assert_eq!(shards_of(1, 9, 4), vec![0, 1, 2, 3]);
    }
}
