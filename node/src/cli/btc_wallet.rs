//! `rexe wallet`: the user's Bitcoin descriptor wallet (bdk_wallet in one 0600 SQLite file,
//! synced over Electrum), which also holds the user's L2 key on the same seed.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use bitcoin::{Amount, FeeRate, Network};
use clap::{Args, Subcommand};
use rexe_wallet::{DescriptorKind, RexeWallet};
use serde_json::json;

/// Which wallet file, on which network, synced from which Electrum server.
#[derive(Args, Clone, Debug)]
pub struct WalletArgs {
    /// The wallet file (SQLite, created with mode 0600).
    #[arg(long, default_value = "rexe-wallet.sqlite", env = "REXE_WALLET")]
    pub wallet: PathBuf,
    /// Bitcoin network: bitcoin, testnet, testnet4, signet or regtest.
    #[arg(long = "btc-network", default_value = "regtest")]
    pub network: Network,
    /// Electrum server: tcp://HOST:PORT or ssl://HOST:PORT (rexe devnet and rexe regtest
    /// serve tcp://127.0.0.1:60401).
    #[arg(long, default_value = "tcp://127.0.0.1:60401", env = "REXE_ELECTRUM")]
    pub electrum: String,
}

impl WalletArgs {
    /// Opens the wallet.
    pub fn open(&self) -> Result<RexeWallet> {
        RexeWallet::load(&self.wallet, self.network).with_context(|| {
            format!(
                "opening the wallet {} (create one with `rexe wallet create`)",
                self.wallet.display()
            )
        })
    }

    /// Opens the wallet and syncs it over Electrum.
    pub fn open_synced(&self) -> Result<RexeWallet> {
        let mut w = self.open()?;
        w.sync(&self.electrum)
            .with_context(|| format!("syncing over Electrum {}", self.electrum))?;
        Ok(w)
    }
}

/// `rexe wallet`'s subcommands.
#[derive(Subcommand)]
pub enum WalletCmd {
    /// Create a wallet from a fresh 24-word BIP39 seed (BIP86 taproot by default).
    Create {
        /// Descriptor kind: bip86 (tr) or bip84 (wpkh).
        #[arg(long, default_value = "bip86")]
        kind: String,
        /// Restore from these words instead of a fresh seed (then run `rexe wallet sync --full-scan`).
        #[arg(long)]
        mnemonic: Option<String>,
        /// The Bitcoin wallet.
        #[command(flatten)]
        w: WalletArgs,
    },
    /// Import BIP380 descriptors: private ones make a signing wallet, public ones a
    /// watch-only wallet (it builds PSBTs for an external signer).
    Import {
        /// Receive descriptor.
        #[arg(long)]
        descriptor: String,
        /// Change descriptor (default: change goes to the receive descriptor).
        #[arg(long)]
        change_descriptor: Option<String>,
        /// The Bitcoin wallet.
        #[command(flatten)]
        w: WalletArgs,
    },
    /// Sync over Electrum (`--full-scan` for a restored or imported wallet).
    Sync {
        /// Scan every keychain up to the stop gap instead of the revealed addresses.
        #[arg(long)]
        full_scan: bool,
        /// The Bitcoin wallet.
        #[command(flatten)]
        w: WalletArgs,
    },
    /// Balance (syncs first unless --offline).
    Balance {
        /// Do not sync.
        #[arg(long)]
        offline: bool,
        /// The Bitcoin wallet.
        #[command(flatten)]
        w: WalletArgs,
    },
    /// A new receive address (and the wallet's L2 address).
    Address {
        /// The Bitcoin wallet.
        #[command(flatten)]
        w: WalletArgs,
    },
    /// Transaction history (syncs first unless --offline).
    History {
        /// Do not sync.
        #[arg(long)]
        offline: bool,
        /// The Bitcoin wallet.
        #[command(flatten)]
        w: WalletArgs,
    },
    /// The public descriptors (for a watch-only copy or an external signer's setup).
    Descriptors {
        /// The Bitcoin wallet.
        #[command(flatten)]
        w: WalletArgs,
    },
    /// Print the BIP39 seed words: the backup of both the Bitcoin and the L2 side.
    Backup {
        /// The Bitcoin wallet.
        #[command(flatten)]
        w: WalletArgs,
    },
    /// Send bitcoin to an address (a plain payment, not a peg-in).
    Send {
        /// Destination address.
        #[arg(long)]
        to: String,
        /// Amount in sats.
        #[arg(long)]
        amount: u64,
        /// Fee rate in sat/vB (default: the Electrum server's 6-block estimate).
        #[arg(long)]
        feerate: Option<f64>,
        /// The Bitcoin wallet.
        #[command(flatten)]
        w: WalletArgs,
    },
}

fn print(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// The Electrum server's estimate for confirmation within `blocks`, in sat/vB (`None`: the
/// server has no estimate).
pub fn estimate_sat_vb(electrum: &str, blocks: usize) -> Result<Option<f64>> {
    use rexe_wallet::electrum::ElectrumApi;
    let client = rexe_wallet::electrum_client(electrum)?;
    let btc_per_kvb = client
        .inner
        .estimate_fee(blocks, None)
        .with_context(|| format!("fee estimate from Electrum {electrum}"))?;
    Ok((btc_per_kvb > 0.0).then_some(btc_per_kvb * 100_000.0))
}

/// The fee rate to pay: `feerate` sat/vB if given, else the Electrum server's estimate for 6
/// blocks (`blockchain.estimatefee`, BTC/kvB), at least 1 sat/vB (1 sat/vB when the server
/// has none).
pub fn fee_rate(feerate: Option<f64>, electrum: &str) -> Result<FeeRate> {
    let sat_vb = match feerate {
        Some(f) => {
            if !(f.is_finite() && f > 0.0 && f < 100_000.0) {
                bail!("--feerate {f} is not a fee rate in sat/vB");
            }
            f
        }
        // No estimate: fall back to the relay minimum.
        None => estimate_sat_vb(electrum, 6)?.unwrap_or(1.0).max(1.0),
    };
    Ok(from_sat_per_vb(sat_vb))
}

/// A fee rate of `sat_vb` sat/vB (fractions rounded up): 1 sat/vB = 250 sat per 1,000
/// weight units.
pub fn from_sat_per_vb(sat_vb: f64) -> FeeRate {
    FeeRate::from_sat_per_kwu((sat_vb * 250.0).ceil() as u64)
}

/// `rate` in sat/vB.
pub fn sat_per_vb(rate: FeeRate) -> f64 {
    rate.to_sat_per_kwu() as f64 / 250.0
}

/// Runs one `rexe wallet` subcommand.
pub fn run(cmd: WalletCmd) -> Result<()> {
    match cmd {
        WalletCmd::Create { kind, mnemonic, w } => {
            let kind = match kind.as_str() {
                "bip86" | "tr" => DescriptorKind::Bip86,
                "bip84" | "wpkh" => DescriptorKind::Bip84,
                other => bail!("--kind {other:?}: use bip86 or bip84"),
            };
            let mut wallet = match &mnemonic {
                Some(words) => RexeWallet::restore(&w.wallet, w.network, kind, words),
                None => RexeWallet::create(&w.wallet, w.network, kind),
            }
            .with_context(|| format!("creating the wallet {}", w.wallet.display()))?;
            let address = wallet.new_address()?;
            print(&json!({
                "wallet": w.wallet.display().to_string(),
                "network": w.network.to_string(),
                "address": address.to_string(),
                "l2_address": wallet.l2_address().map(|a| a.encode(l2_network(w.network))),
            }));
            if mnemonic.is_none() {
                eprintln!(
                    "Back up the seed words with `rexe wallet backup --wallet {}`: they restore \
                     both the Bitcoin and the L2 side. The file itself holds them unencrypted \
                     (mode 0600).",
                    w.wallet.display()
                );
            }
        }
        WalletCmd::Import {
            descriptor,
            change_descriptor,
            w,
        } => {
            let wallet = RexeWallet::import(
                &w.wallet,
                w.network,
                &descriptor,
                change_descriptor.as_deref(),
            )
            .with_context(|| format!("importing into {}", w.wallet.display()))?;
            print(&json!({
                "wallet": w.wallet.display().to_string(),
                "watch_only": wallet.is_watch_only(),
                "first_address": wallet.peek_address(0).to_string(),
                "l2_address": wallet.l2_address().map(|a| a.encode(l2_network(w.network))),
                "next": "rexe wallet sync --full-scan",
            }));
        }
        WalletCmd::Sync { full_scan, w } => {
            let mut wallet = w.open()?;
            if full_scan {
                wallet.full_scan(&w.electrum)
            } else {
                wallet.sync(&w.electrum)
            }
            .with_context(|| format!("syncing over Electrum {}", w.electrum))?;
            print(&balance_json(&wallet));
        }
        WalletCmd::Balance { offline, w } => {
            let wallet = if offline { w.open()? } else { w.open_synced()? };
            print(&balance_json(&wallet));
        }
        WalletCmd::Address { w } => {
            let mut wallet = w.open()?;
            let a = wallet.new_address()?;
            print(&json!({
                "address": a.to_string(),
                "l2_address": wallet.l2_address().map(|a| a.encode(l2_network(w.network))),
            }));
        }
        WalletCmd::History { offline, w } => {
            let wallet = if offline { w.open()? } else { w.open_synced()? };
            let list: Vec<_> = wallet
                .transactions()
                .into_iter()
                .map(|t| {
                    json!({
                        "txid": t.txid.to_string(),
                        "received": t.received.to_sat(),
                        "sent": t.sent.to_sat(),
                        "net": t.net.to_sat(),
                        "fee": t.fee.map(|f| f.to_sat()),
                        "confirmation_height": t.confirmation_height,
                    })
                })
                .collect();
            print(&json!(list));
        }
        WalletCmd::Descriptors { w } => {
            let wallet = w.open()?;
            let (ext, int) = wallet.public_descriptors();
            print(&json!({ "receive": ext, "change": int }));
        }
        WalletCmd::Backup { w } => {
            let wallet = w.open()?;
            match wallet.reveal_mnemonic() {
                Some(m) => println!("{m}"),
                None => bail!(
                    "{} was imported from descriptors: back up the descriptors you imported",
                    w.wallet.display()
                ),
            }
        }
        WalletCmd::Send {
            to,
            amount,
            feerate,
            w,
        } => {
            let mut wallet = w.open_synced()?;
            let addr = to
                .parse::<bitcoin::Address<_>>()
                .context("--to is not a Bitcoin address")?
                .require_network(w.network)
                .with_context(|| format!("--to is not a {} address", w.network))?;
            let rate = fee_rate(feerate, &w.electrum)?;
            let txid = wallet.send(
                &addr.script_pubkey(),
                Amount::from_sat(amount),
                rate,
                &w.electrum,
            )?;
            println!("{txid}");
        }
    }
    Ok(())
}

fn balance_json(w: &RexeWallet) -> serde_json::Value {
    let b = w.balance();
    json!({
        "confirmed": b.confirmed.to_sat(),
        "trusted_pending": b.trusted_pending.to_sat(),
        "untrusted_pending": b.untrusted_pending.to_sat(),
        "immature": b.immature.to_sat(),
        "spendable": b.trusted_spendable().to_sat(),
        "tip_height": w.tip_height(),
    })
}

/// The L2 network whose addresses go with a Bitcoin network (for printing).
pub fn l2_network(n: Network) -> rexe_chain::Network {
    match n {
        Network::Bitcoin => rexe_chain::Network::Main,
        Network::Regtest => rexe_chain::Network::Devnet,
        _ => rexe_chain::Network::Test,
    }
}
