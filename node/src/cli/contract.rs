//! `rexe contract …`: compile-check PREDA sources, deploy and call contracts through a
//! node's RPC, read their state, and run chain-simulator scripts locally.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use rexe_chain::asset::{AssetId, Assets};
use rexe_chain::contract::{abi, contract_address, MintRight};
use rexe_chain::lang::ast::ScopeKind;
use rexe_chain::lang::{compile_with, Imports, Verified};
use rexe_chain::{Address, Payload};
use serde_json::{json, Value as Json};

use crate::cli::{read_key, RpcArgs};
use crate::client::L2Client;
use crate::peer::Peer;
use crate::simulator::{Options, Runner};

/// `rexe contract`'s subcommands.
#[derive(Subcommand)]
pub enum ContractCmd {
    /// Compile PREDA files and print OK or the errors (line:column: message). A file may
    /// import the contracts of files before it on the command line.
    Check {
        /// Source files, imported ones first.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Deploy a contract (a signed Deploy transaction sent to a node).
    Deploy(DeployArgs),
    /// Call an exported function (a signed ContractCall transaction sent to a node).
    Call(CallArgs),
    /// Give a contract you deployed the right to mint and burn an asset (`__mint`,
    /// `__burn`): first come, first served per symbol, and for good.
    GrantMint(GrantMintArgs),
    /// Show a contract's state for one target (global by default), or its interface.
    Get(GetArgs),
    /// Run a PREDA chain-simulator script (.prdts) on a local chain: `-name:value` sets
    /// `$~name$`, `-order:N` the shard order, `-perftest` silences `__debug.print`.
    Run(RunArgs),
}

/// What signs and pays for a contract transaction, and the node it goes to.
#[derive(Args)]
pub struct TxArgs {
    /// Key file of the sender.
    #[arg(long)]
    key: PathBuf,
    /// Gas to buy: `gas × max fee` is reserved; what the transaction's own step neither
    /// uses nor forwards to relays is refunded.
    #[arg(long, default_value_t = 1_000_000)]
    gas: u64,
    #[command(flatten)]
    fees: crate::fees::FeeArgs,
    /// Wait for the receipts and print them.
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    rpc: RpcArgs,
}

/// `rexe contract deploy`'s arguments.
#[derive(Args)]
pub struct DeployArgs {
    /// PREDA source file.
    file: PathBuf,
    /// `on_deploy` arguments as JSON (object by name or array in order).
    #[arg(long, default_value = "{}")]
    args: String,
    #[command(flatten)]
    tx: TxArgs,
}

/// `rexe contract call`'s arguments.
#[derive(Args)]
pub struct CallArgs {
    /// Contract address.
    contract: String,
    /// Function name.
    function: String,
    /// Arguments: one JSON object, or one value per parameter (JSON, else a string).
    args: Vec<String>,
    /// rxBTC to attach (e.g. `0.001`, in BTC units): the function reads it with
    /// `__transaction.get_supplied_tokens()`; it comes back if the call fails.
    #[arg(long, default_value = "0")]
    value: String,
    /// Another asset to attach, `AMOUNT:SYMBOL` in base units (e.g. `100:BTC`), from the
    /// sender's asset wallet; repeat for several. It comes back if the call fails.
    #[arg(long = "asset", value_name = "AMOUNT:SYMBOL")]
    assets: Vec<String>,
    #[command(flatten)]
    tx: TxArgs,
}

/// `rexe contract grant-mint`'s arguments.
#[derive(Args)]
pub struct GrantMintArgs {
    /// Contract address (deployed by the sender).
    contract: String,
    /// Asset symbol: 3 to 8 of `A`-`Z`, `-` and `#` (not `RXBTC`).
    symbol: String,
    #[command(flatten)]
    tx: TxArgs,
}

/// `rexe contract get`'s arguments.
#[derive(Args)]
pub struct GetArgs {
    /// Contract address.
    contract: String,
    /// `global`, `shard:N`, an address, `uintN:VALUE`, or `interface`.
    #[arg(default_value = "global")]
    target: String,
    #[command(flatten)]
    rpc: RpcArgs,
}

/// `rexe contract run`'s arguments.
#[derive(Args)]
pub struct RunArgs {
    /// The script.
    script: PathBuf,
    /// Executor threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Transactions per shard per block.
    #[arg(long, default_value_t = 20_000)]
    block_txs: usize,
    /// Gas each transaction buys (default: lifted, as PREDA's simulator meters none; 5000000
    /// is a chain's cap per transaction).
    #[arg(long, default_value_t = crate::simulator::SIMULATOR_TX_GAS)]
    gas: u64,
    /// Print a JSON summary at the end (blocks, transactions, reverted micro-transactions,
    /// sums of integer state, supply audit).
    #[arg(long)]
    summary: bool,
    /// Keep the chain in this directory instead of a temporary one.
    #[arg(long)]
    datadir: Option<PathBuf>,
    /// PREDA-style options: `-name:value`, `-order:N`, `-perftest` (`-sync`, `-async` and
    /// `-stdout` are accepted and ignored).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    options: Vec<String>,
}

/// Runs one `rexe contract` subcommand.
pub fn run(cmd: ContractCmd) -> Result<()> {
    match cmd {
        ContractCmd::Check { files } => check(&files),
        ContractCmd::Deploy(a) => deploy(a),
        ContractCmd::Call(a) => call(a),
        ContractCmd::GrantMint(a) => grant_mint(a),
        ContractCmd::Get(a) => get(a),
        ContractCmd::Run(a) => run_script(a),
    }
}

/// Binds imports to the contracts of files checked earlier in the same command (each given
/// a made-up address: the SHA256 of its contract name).
#[derive(Default)]
struct Checked(Vec<([u8; 32], Arc<Verified>)>);

impl Imports for Checked {
    fn resolve(
        &self,
        _: usize,
        _: Option<&str>,
        name: &str,
    ) -> Result<([u8; 32], Arc<Verified>), String> {
        self.0
            .iter()
            .find(|(_, c)| c.name == name)
            .cloned()
            .ok_or_else(|| {
                format!("no contract `{name}` among the files before this one (list imported files first)")
            })
    }
    fn code(&self, addr: &[u8; 32]) -> Option<Arc<Verified>> {
        self.0
            .iter()
            .find(|(a, _)| a == addr)
            .map(|(_, c)| c.clone())
    }
}

/// Binds imports through a node's `getcontract`: to the addresses a deployed contract
/// recorded (`recorded`), or by name as the node will bind a source about to be deployed.
struct NodeImports<'p> {
    peer: &'p Peer,
    recorded: Option<Vec<String>>,
    /// Contracts fetched and compiled so far, shared with the resolvers of the imports'
    /// own imports, so that none is fetched or compiled twice.
    cache: Rc<RefCell<HashMap<[u8; 32], Arc<Verified>>>>,
}

impl<'p> NodeImports<'p> {
    fn new(peer: &'p Peer, recorded: Option<Vec<String>>) -> Self {
        NodeImports {
            peer,
            recorded,
            cache: Rc::default(),
        }
    }

    /// A deployed contract's address and code, by address or name.
    fn fetch(&self, key: &str) -> Result<([u8; 32], Arc<Verified>), String> {
        let c = self
            .peer
            .call("getcontract", json!([key]))
            .map_err(|e| format!("{e:#}"))?;
        let addr = c["address"]
            .as_str()
            .and_then(rexe_chain::lang::value::parse_address)
            .ok_or("the node returned no address")?;
        if let Some(code) = self.cache.borrow().get(&addr) {
            return Ok((addr, code.clone()));
        }
        let source = c["source"].as_str().ok_or("the node returned no source")?;
        let recorded = c["imports"].as_array().map(|l| {
            l.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        });
        let inner = NodeImports {
            peer: self.peer,
            recorded,
            cache: self.cache.clone(),
        };
        let code = compile_with(source, &inner)
            .map_err(|e| format!("the source of {key} does not compile here: {e}"))?;
        let code = Arc::new(code);
        self.cache.borrow_mut().insert(addr, code.clone());
        Ok((addr, code))
    }
}

impl Imports for NodeImports<'_> {
    fn resolve(
        &self,
        index: usize,
        _: Option<&str>,
        name: &str,
    ) -> Result<([u8; 32], Arc<Verified>), String> {
        match &self.recorded {
            Some(list) => self.fetch(list.get(index).ok_or("no address recorded")?),
            None => self.fetch(name),
        }
    }
    fn code(&self, addr: &[u8; 32]) -> Option<Arc<Verified>> {
        if let Some(c) = self.cache.borrow().get(addr) {
            return Some(c.clone());
        }
        // The node takes an address as 64 hex digits too.
        let hex = bitcoin::hex::DisplayHex::to_lower_hex_string(&addr[..]);
        self.fetch(&hex).ok().map(|(_, c)| c)
    }
}

fn check(files: &[PathBuf]) -> Result<()> {
    let mut bad = 0;
    let mut checked = Checked::default();
    for f in files {
        let src = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        let started = std::time::Instant::now();
        match compile_with(&src, &checked) {
            Ok(code) => {
                use bitcoin::hashes::Hash as _;
                let addr =
                    bitcoin::hashes::sha256::Hash::hash(code.name.as_bytes()).to_byte_array();
                let code = Arc::new(code);
                checked.0.push((addr, code.clone()));
                let scopes: Vec<&str> = ScopeKind::ALL
                    .iter()
                    .filter(|s| code.has_state(**s))
                    .map(|s| s.name())
                    .collect();
                println!(
                    "{}: OK: contract {} ({} exported function(s), state in {}; compiled in {:.2} ms)",
                    f.display(),
                    code.name,
                    code.functions.iter().filter(|f| f.export).count(),
                    if scopes.is_empty() { "no scope".to_string() } else { scopes.join(", ") },
                    started.elapsed().as_secs_f64() * 1000.0
                );
            }
            Err(errs) => {
                bad += 1;
                for e in errs.0 {
                    println!("{}:{}: {}", f.display(), e.pos, e.message);
                }
            }
        }
    }
    if bad > 0 {
        bail!("{bad} file(s) did not compile");
    }
    Ok(())
}

/// Signs `payload`, sends it, and (with `--wait`) prints the receipts.
fn send(tx: &TxArgs, payload: Payload) -> Result<()> {
    let peer = tx.rpc.peer()?;
    let client = L2Client::connect(peer.clone(), read_key(&tx.key)?, tx.fees)?;
    let deploy = matches!(payload, Payload::Deploy { .. });
    let t = client.build_payload(payload, tx.gas)?;
    if deploy {
        println!(
            "contract address: {}",
            contract_address(&t.tx.from, t.tx.nonce).encode(client.network())
        );
    }
    let txid = client.send_tx(&t)?.to_string();
    println!("txid: {txid}");
    if tx.wait {
        for _ in 0..120 {
            if let Ok(r) = peer.call("getcontractreceipts", json!([txid])) {
                let done = r.as_array().is_some_and(|a| {
                    a.iter()
                        .all(|x| x["relays"].as_u64() == Some(0) || x["error"].is_string())
                });
                if done {
                    println!("{}", serde_json::to_string_pretty(&r)?);
                    return Ok(());
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        bail!("no complete receipts after 60 s (is the node producing blocks?)");
    }
    Ok(())
}

fn deploy(a: DeployArgs) -> Result<()> {
    let source = std::fs::read_to_string(&a.file)
        .with_context(|| format!("reading {}", a.file.display()))?;
    let peer = a.tx.rpc.peer()?;
    let code = compile_with(&source, &NodeImports::new(&peer, None))
        .map_err(|e| anyhow!("{}:\n{e}", a.file.display()))?;
    let init: Json = serde_json::from_str(&a.args).context("--args must be JSON")?;
    let args = match code.functions.iter().find(|f| f.name == "on_deploy") {
        Some(f) => abi::encode_args(&code, f, &init).map_err(|e| anyhow!(e))?,
        None if init == json!({}) || init == json!([]) => Vec::new(),
        None => bail!("{} has no on_deploy to take --args", code.name),
    };
    send(&a.tx, Payload::Deploy { source, args })
}

fn call(a: CallArgs) -> Result<()> {
    let peer = a.tx.rpc.peer()?;
    let c = peer.call("getcontract", json!([a.contract]))?;
    let source = c["source"]
        .as_str()
        .ok_or_else(|| anyhow!("the node returned no source"))?;
    let recorded = c["imports"].as_array().map(|l| {
        l.iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect()
    });
    let code = compile_with(source, &NodeImports::new(&peer, recorded))
        .map_err(|e| anyhow!("the contract's source does not compile here: {e}"))?;
    let args: Json = match a.args.as_slice() {
        [one] if one.trim_start().starts_with('{') => {
            serde_json::from_str(one).context("arguments JSON")?
        }
        many => Json::Array(
            many.iter()
                .map(|p| serde_json::from_str(p).unwrap_or_else(|_| Json::String(p.clone())))
                .collect(),
        ),
    };
    // An overloaded name takes the overload the arguments fit, sent by its signature.
    let (_, f, bytes) = abi::select(&code, &a.function, &args).map_err(|e| anyhow!(e))?;
    let function = if code.overloads(&f.name).len() > 1 {
        code.signature(f)
    } else {
        f.name.clone()
    };
    let contract = Address(
        rexe_chain::lang::value::parse_address(&a.contract)
            .ok_or_else(|| anyhow!("bad contract address"))?,
    );
    send(
        &a.tx,
        Payload::ContractCall {
            contract,
            function,
            args: bytes,
            value: parse_value(&a.value)?,
            assets: parse_assets(&a.assets)?,
        },
    )
}

fn grant_mint(a: GrantMintArgs) -> Result<()> {
    let asset = AssetId::from_symbol(&a.symbol).ok_or_else(|| {
        anyhow!(
            "`{}` is not an asset symbol: 3 to 8 of A-Z, '-' and '#', and not RXBTC",
            a.symbol
        )
    })?;
    let contract = Address(
        rexe_chain::lang::value::parse_address(&a.contract)
            .ok_or_else(|| anyhow!("bad contract address"))?,
    );
    send(
        &a.tx,
        Payload::Call {
            contract: rexe_chain::system::SystemId::CONTRACTS,
            value: rexe_chain::Amount::ZERO,
            data: MintRight { asset, contract }.call_data(),
        },
    )
}

/// `--asset AMOUNT:SYMBOL` values: one per asset.
fn parse_assets(list: &[String]) -> Result<Assets> {
    let mut pairs = Vec::new();
    for s in list {
        let (n, symbol) = s
            .split_once(':')
            .ok_or_else(|| anyhow!("--asset {s}: expected AMOUNT:SYMBOL, as 100:BTC"))?;
        let n: u64 = n
            .trim()
            .parse()
            .map_err(|_| anyhow!("--asset {s}: the amount is a whole number of base units"))?;
        let asset = AssetId::from_symbol(symbol.trim()).ok_or_else(|| {
            anyhow!("--asset {s}: not an asset symbol (rxBTC is attached with --value)")
        })?;
        pairs.push((asset, n));
    }
    if pairs.len() > rexe_chain::asset::MAX_ATTACHED {
        bail!(
            "at most {} assets may be attached",
            rexe_chain::asset::MAX_ATTACHED
        );
    }
    Assets::from_pairs(pairs).ok_or_else(|| anyhow!("--asset names an asset twice"))
}

/// An rxBTC amount in BTC units (`0.001`), at most 8 decimals.
fn parse_value(s: &str) -> Result<rexe_chain::Amount> {
    let a = bitcoin::Amount::from_str_in(s, bitcoin::Denomination::Bitcoin)
        .map_err(|e| anyhow!("--value {s}: {e}"))?;
    let a = rexe_chain::Amount::from_sat(a.to_sat());
    if a > rexe_chain::Amount::MAX_MONEY {
        bail!("--value {s}: more rxBTC than exists");
    }
    Ok(a)
}

fn get(a: GetArgs) -> Result<()> {
    let peer = a.rpc.peer()?;
    let r = if a.target == "interface" {
        let mut c = peer.call("getcontract", json!([a.contract]))?;
        if let Some(o) = c.as_object_mut() {
            o.remove("source");
        }
        c
    } else {
        peer.call("getcontractstate", json!([a.contract, a.target]))?
    };
    println!("{}", serde_json::to_string_pretty(&r)?);
    Ok(())
}

fn run_script(a: RunArgs) -> Result<()> {
    let mut opts = Options {
        threads: a.threads,
        block_txs: a.block_txs,
        gas: a.gas,
        datadir: a.datadir.clone(),
        ..Options::default()
    };
    let mut vars = HashMap::new();
    let mut summary = a.summary;
    for o in &a.options {
        if o == "--summary" {
            summary = true;
            continue;
        }
        if let Some(flag) = o.strip_prefix("--") {
            // clap takes rexe's own flags anywhere; what is left is unknown.
            if flag.split('=').next() == Some("shards") {
                bail!("unknown option {o}: the shard count is PREDA's -order:N (2^N shards, after the script path)");
            }
            bail!("unknown option {o} (before the script path: --threads, --block-txs, --summary, --datadir; after it: -name:value, -order:N, -perftest)");
        }
        let o = o.trim_start_matches('-');
        match o.split_once(':') {
            Some(("order", v)) => opts.order = v.parse().context("-order:N")?,
            Some((k, v)) => {
                vars.insert(k.to_string(), v.to_string());
            }
            None if o == "perftest" => opts.perftest = true,
            None if matches!(o, "sync" | "async" | "stdout") => {}
            None => bail!("unknown option -{o} (expected -name:value, -order:N or -perftest)"),
        }
    }
    anyhow::ensure!(opts.order <= 8, "-order is at most 8");
    opts.vars = vars;
    let src = std::fs::read_to_string(&a.script)
        .with_context(|| format!("reading {}", a.script.display()))?;
    let dir = a
        .script
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let mut out = std::io::stdout();
    let s = Runner::new(opts, &dir, &mut out).run(&src)?;
    if summary {
        println!(
            "{}",
            json!({
                "blocks": s.blocks,
                "txs": s.txs,
                "micro_txs": s.micro_txs,
                "reverted": s.failed,
                "sums": s.sums,
                "supply_ok": s.supply_ok,
            })
        );
    }
    anyhow::ensure!(s.supply_ok, "the rxBTC supply audit failed");
    Ok(())
}

#[cfg(test)]
mod asset_arg_tests {
    use super::*;

    #[test]
    fn asset_arguments_are_amount_colon_symbol_once_each() {
        let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let a = parse_assets(&list(&["5:ETH", "100:BTC"])).unwrap();
        assert_eq!(
            a.iter().map(|(x, n)| (x.symbol(), n)).collect::<Vec<_>>(),
            vec![("BTC".to_string(), 100), ("ETH".to_string(), 5)]
        );
        for (bad, why) in [
            (vec!["100BTC"], "AMOUNT:SYMBOL"),
            (vec!["x:BTC"], "whole number"),
            (vec!["1:RXBTC"], "--value"),
            (vec!["1:btc"], "not an asset symbol"),
            (vec!["1:BTC", "2:BTC"], "twice"),
            (
                vec![
                    "1:AAA", "1:BBB", "1:CCC", "1:DDD", "1:EEE", "1:FFF", "1:GGG", "1:HHH", "1:III",
                ],
                "at most 8",
            ),
        ] {
            let e = parse_assets(&list(&bad)).unwrap_err().to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }
}
