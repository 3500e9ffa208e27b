//! `rexe bench cluster-rss`: the memory a node holding every shard needs against a node
//! holding half of them, at a given number of accounts. Each node is its own process (so
//! its resident memory is its own): it creates its data directory (genesis: a partial node
//! writes only its shards' accounts), then a second process opens it as a node does
//! (caches warmed from the file) and reports its resident memory. No blocks are run: this
//! is the resident state a node carries, not the working set of execution.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use rexe_chain::params::GenesisAlloc;
use rexe_chain::seal::TestSealer;
use rexe_chain::{Amount, Chain, ChainConfig, ChainParams, ShardId};
use serde_json::json;

/// `rexe bench cluster-rss`'s arguments.
#[derive(Args)]
pub struct RssArgs {
    /// Accounts over the chain's 4 shards.
    #[arg(long, default_value_t = 10_000_000)]
    accounts: u64,
    /// Where to put the three data directories (default: a temporary directory).
    #[arg(long)]
    datadir: Option<PathBuf>,
}

/// `rexe bench cluster-rss-node` (started by `cluster-rss`).
#[derive(Args)]
pub struct RssNodeArgs {
    /// The data directory.
    #[arg(long)]
    dir: PathBuf,
    /// Accounts over the chain's 4 shards.
    #[arg(long)]
    accounts: u64,
    /// Shards this node runs (default: all).
    #[arg(long, value_delimiter = ',')]
    track: Option<Vec<u16>>,
}

fn params(accounts: u64) -> Result<ChainParams> {
    let mut p = ChainParams::regtest();
    p.shard_order = rexe_chain::ShardOrder::new(2)?;
    p.genesis_alloc = GenesisAlloc::Synthetic {
        count: accounts,
        amount: Amount::ONE_BTC,
    };
    Ok(p)
}

/// One node's process: opens `dir` (creating it when new) and prints its resident memory.
pub fn node(a: &RssNodeArgs) -> Result<()> {
    let t = Instant::now();
    let chain = Chain::open(
        &a.dir,
        params(a.accounts)?,
        ChainConfig {
            tracked: a
                .track
                .as_ref()
                .map(|t| t.iter().map(|s| ShardId(*s)).collect()),
            ..ChainConfig::default()
        },
        Arc::new(TestSealer),
    )
    .context("opening the node's chain")?;
    let cached: usize = chain.cache_stats().iter().map(|c| c.accounts).sum();
    println!(
        "{}",
        json!({
            "rss_bytes": crate::proc_status_bytes("VmRSS:"),
            "peak_rss_bytes": crate::proc_status_bytes("VmHWM:"),
            "cached_accounts": cached,
            "open_secs": t.elapsed().as_secs_f64(),
        })
    );
    Ok(())
}

/// Runs the benchmark: a full node and two partial nodes ({0,1} and {2,3}).
pub fn run(a: &RssArgs) -> Result<serde_json::Value> {
    let tmp;
    let root = match &a.datadir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let exe = std::env::current_exe()?;
    let mut out = serde_json::Map::new();
    for (name, track) in [
        ("full", None),
        ("shards_0_1", Some("0,1")),
        ("shards_2_3", Some("2,3")),
    ] {
        let dir = root.join(name);
        let mut last = serde_json::Value::Null;
        // The first open creates the directory (genesis); the second opens it as a node
        // restarting does.
        for pass in ["create", "open"] {
            eprintln!("{name}: {pass} ({} accounts)...", a.accounts);
            let mut cmd = Command::new(&exe);
            cmd.args(["bench", "cluster-rss-node", "--dir"])
                .arg(&dir)
                .args(["--accounts", &a.accounts.to_string()]);
            if let Some(t) = track {
                cmd.args(["--track", t]);
            }
            let o = cmd.output().context("starting a node process")?;
            anyhow::ensure!(
                o.status.success(),
                "{name} {pass}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            last = serde_json::from_slice(&o.stdout).context("a node's report")?;
        }
        out.insert(name.to_string(), last);
    }
    let rss = |n: &str| out[n]["rss_bytes"].as_f64().unwrap_or(0.0);
    let share = (rss("shards_0_1").max(rss("shards_2_3"))) / rss("full").max(1.0);
    out.insert("name".into(), json!("cluster-rss"));
    out.insert("accounts".into(), json!(a.accounts));
    out.insert("largest_partial_share".into(), json!(share));
    Ok(serde_json::Value::Object(out))
}
