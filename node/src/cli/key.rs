//! Small client commands against a node's RPC: `rexe key new`, `rexe balance`, `rexe send`.
//! Keys are files holding a hex secret, created 0600; secrets are never printed or logged.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use bitcoin::hex::{DisplayHex, FromHex};
use clap::{Args, Subcommand};
use rexe_chain::{Address, Amount, Network, Payload, Signer};
use serde_json::json;

use crate::peer::Peer;

/// How to reach a node.
#[derive(Args)]
pub struct RpcArgs {
    /// Node RPC address.
    #[arg(long, default_value = "127.0.0.1:18480")]
    rpc: String,
    /// Cookie file of the node (default: DATADIR/.cookie via --datadir).
    #[arg(long)]
    rpc_cookie: Option<PathBuf>,
    /// The node's data directory (to find its cookie).
    #[arg(long, default_value = "rexe-devnet")]
    datadir: PathBuf,
    /// user:password instead of the cookie.
    #[arg(long)]
    rpc_auth: Option<String>,
}

impl RpcArgs {
    /// The node these arguments name, with its credentials (the cookie read from disk).
    pub fn peer(&self) -> Result<Peer> {
        let auth = match &self.rpc_auth {
            Some(a) => a.clone(),
            None => {
                let path = self
                    .rpc_cookie
                    .clone()
                    .unwrap_or_else(|| self.datadir.join(".cookie"));
                std::fs::read_to_string(&path)
                    .with_context(|| {
                        format!(
                            "reading the RPC cookie {} (is the node running?)",
                            path.display()
                        )
                    })?
                    .trim()
                    .to_string()
            }
        };
        Ok(Peer::parse(&format!("http://{auth}@{}", self.rpc))?)
    }
}

/// `rexe key`'s subcommands.
#[derive(Subcommand)]
pub enum KeyCmd {
    /// Create a new key file (mode 0600) and print its address.
    New {
        /// Where to write the secret key.
        file: PathBuf,
        /// Network whose address format to print.
        #[arg(long, default_value = "devnet")]
        network: String,
    },
    /// Print the address of a key file.
    Address {
        /// The key file.
        file: PathBuf,
        /// Network whose address format to print.
        #[arg(long, default_value = "devnet")]
        network: String,
    },
}

/// `rexe send`'s arguments.
#[derive(Args)]
pub struct SendArgs {
    /// Key file of the sender.
    #[arg(long)]
    key: PathBuf,
    /// Payee address.
    #[arg(long)]
    to: String,
    /// Amount in sats.
    #[arg(long)]
    amount: u64,
    #[command(flatten)]
    fees: crate::fees::FeeArgs,
    #[command(flatten)]
    rpc: RpcArgs,
}

/// `rexe rpc`'s arguments.
#[derive(Args)]
pub struct RpcCallArgs {
    /// Method name (see docs/rpc.md).
    method: String,
    /// Parameters: each parsed as JSON when it is valid JSON, else taken as a string.
    params: Vec<String>,
    #[command(flatten)]
    rpc: RpcArgs,
}

/// `rexe balance`'s arguments.
#[derive(Args)]
pub struct BalanceArgs {
    /// Address to look up.
    address: String,
    #[command(flatten)]
    rpc: RpcArgs,
}

/// The L2 network named `name` (`main`, `test`, `regtest`, `devnet`).
pub fn network(name: &str) -> Result<Network> {
    Network::from_name(name).ok_or_else(|| anyhow!("unknown network {name:?}"))
}

/// Reads a key file (a hex secret) into a signer.
pub fn read_key(path: &Path) -> Result<Signer> {
    let mut s = String::new();
    std::fs::File::open(path)
        .with_context(|| format!("opening key file {}", path.display()))?
        .read_to_string(&mut s)?;
    let secret = <[u8; 32]>::from_hex(s.trim())
        .with_context(|| format!("key file {} must hold 64 hex digits", path.display()))?;
    Signer::from_secret(secret).context("key file holds an invalid secret key")
}

/// Runs one `rexe key` subcommand.
pub fn key(cmd: KeyCmd) -> Result<()> {
    match cmd {
        KeyCmd::New { file, network: n } => {
            let mut secret = [0u8; 32];
            std::fs::File::open("/dev/urandom")?.read_exact(&mut secret)?;
            let signer = Signer::from_secret(secret).context("random key out of range; retry")?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&file)
                .with_context(|| format!("creating {} (it must not exist)", file.display()))?;
            f.write_all(secret.to_lower_hex_string().as_bytes())?;
            println!("{}", signer.address().encode(network(&n)?));
        }
        KeyCmd::Address { file, network: n } => {
            println!("{}", read_key(&file)?.address().encode(network(&n)?));
        }
    }
    Ok(())
}

/// `rexe rpc METHOD PARAMS...`: one call, result printed as JSON (like bitcoin-cli).
pub fn rpc_call(a: RpcCallArgs) -> Result<()> {
    let params: Vec<serde_json::Value> = a
        .params
        .iter()
        .map(|p| serde_json::from_str(p).unwrap_or_else(|_| serde_json::Value::String(p.clone())))
        .collect();
    let r = a
        .rpc
        .peer()?
        .call(&a.method, serde_json::Value::Array(params))?;
    match r {
        serde_json::Value::String(s) => println!("{s}"),
        v => println!("{}", serde_json::to_string_pretty(&v)?),
    }
    Ok(())
}

/// `rexe balance`: prints an account's balance and nonce.
pub fn balance(a: BalanceArgs) -> Result<()> {
    let r = a.rpc.peer()?.call("getaccount", json!([a.address]))?;
    println!("{}", serde_json::to_string_pretty(&r)?);
    Ok(())
}

/// `rexe send`: signs a transfer and submits it.
pub fn send(a: SendArgs) -> Result<()> {
    let peer = a.rpc.peer()?;
    let client = crate::client::L2Client::connect(peer, read_key(&a.key)?, a.fees)?;
    let to = Address::parse_for(&a.to, client.network()).context("payee address")?;
    let payload = Payload::Transfer {
        to,
        amount: Amount::from_sat(a.amount),
    };
    let tx = client.build_payload(payload, rexe_chain::tx::TRANSFER_GAS)?;
    println!("{}", client.send_tx(&tx)?);
    Ok(())
}
