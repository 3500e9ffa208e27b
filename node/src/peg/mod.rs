//! `rexe peg`: the peg from the command line — peg-in (take + PSBT payment), peg-out orders,
//! takes, cancels, claims, fee bumps, status — and its two agents, the header relayer and the
//! claimer. Everything goes through the L2 node's JSON-RPC and Bitcoin's own protocols
//! (Electrum, or bitcoind's JSON-RPC), as a real deployment would.

pub mod claimer;
pub mod error;
pub mod pegin;
pub mod relayer;
pub mod source;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bitcoin::hex::DisplayHex;
use clap::{Args, Subcommand};
use rexe_bridge::call::PegCall;
use rexe_bridge::peg::{L2Address, MatchId, OrderId, Sats};
use rexe_chain::Address;
use rexe_rpc::client::RpcClient;
use serde_json::json;
use source::{BitcoinSource, Electrum};

use crate::api::MatchStatus;

use crate::cli::{read_key, RpcArgs};
use crate::client::L2Client;

/// How long CLI commands wait for their call to run on the L2.
const WAIT: Duration = Duration::from_secs(120);

/// The L2 key that signs peg calls: a key file, or the L2 key of a `rexe wallet` (same seed
/// as its Bitcoin side).
#[derive(Args)]
pub struct KeyArgs {
    /// L2 key file (hex secret, see `rexe key new`).
    #[arg(long, conflicts_with = "wallet")]
    key: Option<PathBuf>,
    /// Sign with the L2 key of this wallet file instead (see `rexe wallet create`).
    #[arg(long)]
    wallet: Option<PathBuf>,
    #[command(flatten)]
    fees: crate::fees::FeeArgs,
    #[command(flatten)]
    rpc: RpcArgs,
}

impl KeyArgs {
    fn signer(&self, peer: &crate::peer::Peer) -> Result<rexe_chain::Signer> {
        match (&self.key, &self.wallet) {
            (Some(k), _) => read_key(k),
            (None, Some(w)) => {
                let net = rexe_bridge::contract::bitcoin_network(crate::client::network_of(peer)?);
                let wallet = rexe_wallet::RexeWallet::load(w, net)
                    .with_context(|| format!("opening the wallet {}", w.display()))?;
                wallet.l2_signer().with_context(|| {
                    format!("{} has no L2 key (watch-only or imported)", w.display())
                })
            }
            (None, None) => bail!("give --key FILE or --wallet FILE: the L2 key that signs"),
        }
    }

    fn client(&self) -> Result<L2Client> {
        let peer = self.rpc.peer()?;
        let signer = self.signer(&peer)?;
        Ok(L2Client::connect(peer, signer, self.fees)?)
    }
}

/// Where the agents read Bitcoin: an Electrum server (default) or bitcoind's JSON-RPC.
#[derive(Args)]
pub struct BtcSourceArgs {
    /// Electrum server (tcp://HOST:PORT or ssl://HOST:PORT); the default source.
    #[arg(long, default_value = "tcp://127.0.0.1:60401", env = "REXE_ELECTRUM")]
    electrum: String,
    /// Read Bitcoin from bitcoind's JSON-RPC (host:port) instead of Electrum.
    #[arg(long)]
    bitcoind: Option<String>,
    /// bitcoind cookie file.
    #[arg(long)]
    bitcoind_cookie: Option<PathBuf>,
    /// bitcoind user:password (instead of the cookie).
    #[arg(long)]
    bitcoind_auth: Option<String>,
}

impl BtcSourceArgs {
    fn client(&self) -> Result<Box<dyn BitcoinSource>> {
        let Some(addr) = &self.bitcoind else {
            return Ok(Box::new(Electrum::new(&self.electrum)?));
        };
        let auth = match (&self.bitcoind_auth, &self.bitcoind_cookie) {
            (Some(a), _) => a.clone(),
            (None, Some(p)) => std::fs::read_to_string(p)
                .with_context(|| format!("reading bitcoind's cookie {}", p.display()))?
                .trim()
                .to_string(),
            (None, None) => bail!("--bitcoind needs --bitcoind-cookie or --bitcoind-auth"),
        };
        Ok(Box::new(RpcClient::new(addr.clone(), auth)))
    }
}

/// `rexe peg`'s subcommands.
#[derive(Subcommand)]
pub enum PegCmd {
    /// Peg in: buy rxBTC with BTC (takes orders, pays them in one PSBT-built transaction).
    In(Box<pegin::PegInArgs>),
    /// Replace a stuck peg-in payment with a higher fee (RBF), keeping every match output.
    Bump {
        /// The unconfirmed payment.
        #[arg(long)]
        btc_txid: bitcoin::Txid,
        /// The new fee rate in sat/vB.
        #[arg(long)]
        feerate: f64,
        /// The claimer's work list (the replacement is watched under its own txid).
        #[arg(long, default_value = "rexe-claimer.sqlite")]
        claimer_state: PathBuf,
        /// The Bitcoin wallet.
        #[command(flatten)]
        w: crate::cli::btc_wallet::WalletArgs,
        /// The L2 node.
        #[command(flatten)]
        rpc: RpcArgs,
    },
    /// Peg out: escrow rxBTC in an order, to be paid in BTC to `--to`.
    Out {
        /// rxBTC to sell, in sats.
        #[arg(long)]
        amount: u64,
        /// Bitcoin address that receives the BTC.
        #[arg(long)]
        to: String,
        /// Fee kept from the BTC owed, in basis points (max 1000).
        #[arg(long, default_value_t = 30)]
        fee_bps: u16,
        /// Smallest take allowed, in sats (the last remainder is always takeable).
        #[arg(long, default_value_t = 10_000)]
        min_fill: u64,
        /// The order expires this many L2 blocks from now (refunded automatically).
        #[arg(long, default_value_t = 10_000)]
        expiry_blocks: u64,
        /// The L2 key that signs, and the node.
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Take (part of) an order: posts the bond; you then owe the BTC shown.
    Take {
        /// The order id.
        #[arg(long)]
        order: u64,
        /// rxBTC to take, in sats.
        #[arg(long)]
        amount: u64,
        /// L2 address that receives the rxBTC (default: the key's own).
        #[arg(long)]
        recipient: Option<String>,
        /// The L2 key that signs, and the node.
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Cancel an order's unmatched rest (maker only).
    Cancel {
        /// The order id.
        #[arg(long)]
        order: u64,
        /// The L2 key that signs, and the node.
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Claim matches paid by a confirmed Bitcoin transaction (proof from bitcoind).
    Claim {
        /// The paying Bitcoin transaction.
        #[arg(long)]
        btc_txid: bitcoin::Txid,
        /// The match ids it pays, comma-separated.
        #[arg(long, value_delimiter = ',')]
        matches: Vec<u64>,
        /// The L2 key that signs, and the node.
        #[command(flatten)]
        key: KeyArgs,
        /// Where Bitcoin is read.
        #[command(flatten)]
        btc: BtcSourceArgs,
    },
    /// Peg state: tracked Bitcoin tip, order book, and the matches of an address.
    Status {
        /// Only matches involving this L2 address.
        #[arg(long)]
        address: Option<String>,
        /// The L2 node.
        #[command(flatten)]
        rpc: RpcArgs,
    },
    /// Run the header relayer: keep the L2's Bitcoin header chain current (from Electrum or
    /// bitcoind).
    Relay {
        /// Stop once the L2 tracks the source's tip.
        #[arg(long)]
        once: bool,
        /// The L2 key that signs, and the node.
        #[command(flatten)]
        key: KeyArgs,
        /// Where Bitcoin is read.
        #[command(flatten)]
        btc: BtcSourceArgs,
    },
    /// Run the claimer: claim watched payments once K-deep (state survives restarts).
    Claimer {
        /// Its state file (SQLite, created 0600).
        #[arg(long, default_value = "rexe-claimer.sqlite")]
        state: PathBuf,
        /// Watch a payment: BTC_TXID:ID,ID,...  (repeatable).
        #[arg(long)]
        watch: Vec<String>,
        /// Exit once nothing is left to claim.
        #[arg(long)]
        until_done: bool,
        /// One pass over the work list, then exit.
        #[arg(long)]
        once: bool,
        /// The L2 key that signs, and the node.
        #[command(flatten)]
        key: KeyArgs,
        /// Where Bitcoin is read.
        #[command(flatten)]
        btc: BtcSourceArgs,
    },
}

/// Pretty JSON with sorted keys, as the node's answers print.
fn print(v: &impl serde::Serialize) {
    let v = serde_json::to_value(v).unwrap_or_default();
    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
}

/// Runs one `rexe peg` subcommand.
pub fn run(cmd: PegCmd) -> Result<()> {
    match cmd {
        PegCmd::Out {
            amount,
            to,
            fee_bps,
            min_fill,
            expiry_blocks,
            key,
        } => {
            let c = key.client()?;
            let btc_net = rexe_bridge::contract::bitcoin_network(c.network());
            let addr: bitcoin::Address = to
                .parse::<bitcoin::Address<_>>()
                .context("--to is not a Bitcoin address")?
                .require_network(btc_net)
                .with_context(|| format!("--to must be a {btc_net} address"))?;
            let height = c.call("getblockcount", json!([]))?.as_u64().unwrap_or(0);
            let txid = c.send(
                amount,
                &PegCall::Order {
                    btc_script: addr.script_pubkey(),
                    min_fill: Sats(min_fill.min(amount)),
                    fee_bps,
                    expiry_height: height + expiry_blocks,
                },
            )?;
            println!("order call {txid} sent; waiting for it to run...");
            c.wait(txid, WAIT)?;
            let me = c.address();
            let orders = c.peer().peg_orders()?;
            let mine = orders
                .iter()
                .filter(|o| o.maker == me)
                .max_by_key(|o| o.order_id);
            match mine {
                Some(o) => print(o),
                None => println!("order placed (already fully taken or expired)"),
            }
        }
        PegCmd::Take {
            order,
            amount,
            recipient,
            key,
        } => {
            let c = key.client()?;
            let rx = match recipient {
                Some(r) => Address::parse_for(&r, c.network()).context("--recipient")?,
                None => c.signer_address(),
            };
            let info = c.peg_info()?;
            let bond = (amount as u128 * u128::from(info.bond_bps) / 10_000) as u64;
            let bond = bond.max(info.bond_min);
            let txid = c.send(
                bond,
                &PegCall::Take {
                    order_id: OrderId(order),
                    amount: Sats(amount),
                    rx_recipient: L2Address(rx.0),
                },
            )?;
            println!("take call {txid} sent (bond {bond} sats); waiting for it to run...");
            c.wait(txid, WAIT)?;
            let matches = c.peer().peg_matches(Some(&c.address()))?;
            if let Some(m) = matches
                .iter()
                .filter(|m| m.order_id == order)
                .max_by_key(|m| m.match_id)
            {
                print(m);
                println!(
                    "pay {} sats to {} in one Bitcoin transaction with OP_RETURN {} before Bitcoin height {}",
                    m.amount_btc_owed,
                    m.payee_script.address.as_deref().unwrap_or(&m.payee_script.hex),
                    rexe_bridge::peg::commitment_script(&[MatchId(m.match_id)])
                        .as_bytes()
                        .to_lower_hex_string(),
                    m.btc_deadline_height
                );
            }
        }
        PegCmd::Cancel { order, key } => {
            let c = key.client()?;
            let txid = c.send(
                0,
                &PegCall::Cancel {
                    order_id: OrderId(order),
                },
            )?;
            c.wait(txid, WAIT)?;
            println!("order {order} cancelled; its unmatched rest is refunded");
        }
        PegCmd::Claim {
            btc_txid,
            matches,
            key,
            btc,
        } => {
            let c = key.client()?;
            let src = btc.client()?;
            let ids: Vec<MatchId> = matches.into_iter().map(MatchId).collect();
            let first = ids
                .first()
                .context("--matches: give at least one match id")?;
            let payee = pegin::owed(&key.rpc.peer()?, std::slice::from_ref(first))?.payments[0]
                .script
                .clone();
            let proof = src
                .proof(btc_txid, &payee)?
                .with_context(|| format!("{btc_txid} is not confirmed on Bitcoin yet"))?;
            let txid = c.send(0, &proof.claim(ids))?;
            c.wait(txid, WAIT)?;
            println!("claimed: the rxBTC is released to the matches' recipients");
        }
        PegCmd::Status { address, rpc } => {
            let p = rpc.peer()?;
            let orders = p.peg_orders()?;
            let matches = p.peg_matches(address.as_deref())?;
            let mut v = json!({
                "peg": p.peg_info()?,
                "orders": orders,
                "matches": matches,
            });
            if let Some(a) = &address {
                // What the address got out of the peg: BTC for its orders (as a maker), rxBTC
                // for its takes (as a recipient), and bonds in flight.
                let makers: std::collections::BTreeMap<u64, &str> = orders
                    .iter()
                    .map(|o| (o.order_id, o.maker.as_str()))
                    .collect();
                let (mut btc_received, mut rx_received, mut bonds_open) = (0u64, 0u64, 0u64);
                for m in &matches {
                    let claimed = m.state == MatchStatus::Claimed;
                    // listpegmatches(a) lists matches where `a` is taker, recipient or maker
                    // (closed orders are no longer in the book).
                    let as_maker = makers.get(&m.order_id) == Some(&a.as_str())
                        || (m.taker != *a && m.rx_recipient != *a);
                    if claimed && as_maker {
                        btc_received += m.amount_btc_owed;
                    }
                    if claimed && m.rx_recipient == *a {
                        rx_received += m.amount_rx;
                    }
                    if m.state == MatchStatus::Open && m.taker == *a {
                        bonds_open += m.bond;
                    }
                }
                v["summary"] = json!({
                    "address": a,
                    "btc_received_as_maker": btc_received,
                    "rx_received_as_taker": rx_received,
                    "bonds_posted_open": bonds_open,
                });
            }
            print(&v);
        }
        PegCmd::Relay { once, key, btc } => {
            let src = btc.client()?;
            let name = src.describe();
            let mut r = relayer::Relayer::new(src, key.client()?);
            println!("relaying Bitcoin headers from {name} to the L2");
            let mut failures = 0u32;
            loop {
                match r.step() {
                    Ok(relayer::Step::UpToDate) if once => break,
                    Ok(step) => {
                        failures = 0;
                        tracing::debug!(?step, "relayer")
                    }
                    Err(e) if once && failures >= 4 => {
                        return Err(anyhow::Error::new(e)
                            .context(format!("relaying from {name} failed 5 times")))
                    }
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(error = %crate::Report(&e), failures, "relayer step failed; retrying")
                    }
                }
                // Back off while the source or the node is unreachable.
                std::thread::sleep(Duration::from_millis(500 << failures.min(5)));
            }
            println!("the L2 tracks the tip of {name}");
        }
        PegCmd::Claimer {
            state,
            watch,
            until_done,
            once,
            key,
            btc,
        } => {
            let c = claimer::Claimer::open(&state, btc.client()?, key.client()?)?;
            for w in watch {
                let (txid, ids) = w
                    .split_once(':')
                    .context("--watch takes BTC_TXID:ID,ID,...")?;
                let ids: Vec<MatchId> = ids
                    .split(',')
                    .map(|s| s.trim().parse().map(MatchId))
                    .collect::<Result<_, _>>()
                    .context("match ids must be integers")?;
                c.watch(txid.parse().context("bad Bitcoin txid")?, &ids)?;
            }
            run_claimer(&c, until_done, once)?;
        }
        PegCmd::In(a) => pegin::run(*a)?,
        PegCmd::Bump {
            btc_txid,
            feerate,
            claimer_state,
            w,
            rpc,
        } => {
            let mut wallet = w.open_synced()?;
            let db = claimer::open_db(&claimer_state)?;
            let ids = claimer::watched_ids(&db, btc_txid)?.with_context(|| {
                format!(
                    "{btc_txid} is not in the claimer work list {}",
                    claimer_state.display()
                )
            })?;
            let owed = pegin::owed(&rpc.peer()?, &ids)?;
            let rate = crate::cli::btc_wallet::fee_rate(Some(feerate), &w.electrum)?;
            let txid = pegin::bump(&mut wallet, btc_txid, rate, &owed, &w.electrum, &db)?;
            println!("replaced {btc_txid} by {txid} at {feerate} sat/vB; the claimer watches both");
        }
    }
    Ok(())
}

/// Runs the claimer: passes every second until nothing is left (`until_done`), after one
/// pass (`once`), or forever.
pub fn run_claimer<S: BitcoinSource>(
    c: &claimer::Claimer<S>,
    until_done: bool,
    once: bool,
) -> Result<()> {
    run_claimer_with(c, until_done, once, || Ok(()))
}

/// [`run_claimer`], running `between` after each pass that leaves work to do.
pub fn run_claimer_with<S: BitcoinSource>(
    c: &claimer::Claimer<S>,
    until_done: bool,
    once: bool,
    mut between: impl FnMut() -> Result<()>,
) -> Result<()> {
    loop {
        match c.step(crate::unix_time() as i64) {
            Ok(events) => {
                for (txid, p) in events {
                    println!("{txid}: {p:?}");
                }
            }
            Err(e) => {
                tracing::warn!(error = %crate::Report(&e), "claimer step failed; retrying")
            }
        }
        if once || (until_done && c.open_count()? == 0) {
            return Ok(());
        }
        between()?;
        std::thread::sleep(Duration::from_secs(1));
    }
}
