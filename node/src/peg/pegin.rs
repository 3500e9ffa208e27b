//! `rexe peg in`: buy rxBTC with BTC. Asks the node's matcher for orders, takes them (each
//! take posts a bond), then pays every match in ONE Bitcoin transaction built as a PSBT by the
//! user's bdk wallet: one output per match to its payee script for the BTC owed, the `RXPG`
//! `OP_RETURN` committing to the match ids, change; RBF on. It signs and broadcasts in
//! process, or writes the PSBT for an external signer (`--psbt-out`). The payment is handed
//! to the claimer's work list, which claims it once it is K blocks deep.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bitcoin::hex::FromHex;
use bitcoin::{Amount, ScriptBuf};
use clap::Args;
use rexe_bridge::call::PegCall;
use rexe_bridge::peg::{L2Address, MatchId, OrderId, Sats};
use rexe_chain::Txid;
use rexe_wallet::{PegPayment, RexeWallet};

use super::source::{BitcoinSource, Electrum};
use crate::api::{MatchStatus, MatcherPiece};
use crate::cli::btc_wallet::{fee_rate, WalletArgs};
use crate::cli::RpcArgs;
use crate::client::L2Client;
use crate::peer::Peer;

/// How long to wait for L2 calls to run.
const WAIT: Duration = Duration::from_secs(120);

/// `rexe peg in`'s arguments.
#[derive(Args)]
pub struct PegInArgs {
    /// rxBTC to buy, in sats.
    #[arg(long)]
    pub amount: u64,
    /// Accept fewer rxBTC than asked when the order book is short.
    #[arg(long)]
    pub allow_partial: bool,
    /// Fee rate in sat/vB (default: the Electrum server's 6-block estimate).
    #[arg(long)]
    pub feerate: Option<f64>,
    /// Write the unsigned PSBT here for an external signer instead of signing in process;
    /// then `rexe psbt sign|finalize|broadcast FILE`.
    #[arg(long)]
    pub psbt_out: Option<PathBuf>,
    /// Refuse to pay when fewer Bitcoin blocks than this remain before a match's deadline.
    #[arg(long, default_value_t = rexe_wallet::DEFAULT_PAY_MARGIN)]
    pub margin: u32,
    /// Where the rxBTC goes (default: the wallet's own L2 address).
    #[arg(long)]
    pub recipient: Option<String>,
    /// L2 key file paying bonds and fees (default: the wallet's L2 key, same seed).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Gas price and limit of the L2 calls.
    #[command(flatten)]
    pub fees: crate::fees::FeeArgs,
    /// L2 blocks a take must be buried under before the BTC is paid (a Bitcoin-anchored take
    /// is final at once). Default: the network's (main/test 30, regtest/devnet 3).
    #[arg(long)]
    pub l2_confirmations: Option<u64>,
    /// Seconds to wait for the takes to run and become final before giving up (nothing is
    /// paid then; the bonds stay posted until the matches expire).
    #[arg(long, default_value_t = 600)]
    pub take_timeout: u64,
    /// The claimer's work list the payment is added to.
    #[arg(long, default_value = "rexe-claimer.sqlite")]
    pub claimer_state: PathBuf,
    /// Stay and claim: run the claimer until the payment is claimed.
    #[arg(long)]
    pub wait: bool,
    /// With `--wait`: when the payment is still unconfirmed with 3 or fewer Bitcoin blocks
    /// left before the deadline, replace it (RBF) at a higher fee rate (the server's
    /// estimate for the blocks left, at least 1.5x the last rate and 2 sat/vB more), at most
    /// once per block.
    #[arg(long, requires = "wait")]
    pub bump: bool,
    /// The Bitcoin wallet that pays.
    #[command(flatten)]
    pub w: WalletArgs,
    /// The L2 node.
    #[command(flatten)]
    pub rpc: RpcArgs,
}

/// The L2 client signing with `--key`, or with the wallet's own L2 key.
pub fn l2_client(
    rpc: &RpcArgs,
    key: Option<&PathBuf>,
    wallet: &RexeWallet,
    fees: crate::fees::FeeArgs,
) -> Result<L2Client> {
    let signer = match key {
        Some(k) => crate::cli::read_key(k)?,
        None => wallet.l2_signer().ok_or_else(|| {
            anyhow!("this wallet has no L2 key (watch-only or imported): give --key")
        })?,
    };
    Ok(L2Client::connect(rpc.peer()?, signer, fees)?)
}

/// What the peg-in payment must pay, read from the L2 node: each match's payee script and
/// BTC owed, and the earliest deadline.
pub struct Owed {
    /// One payment per match, in id order.
    pub payments: Vec<PegPayment>,
    /// The match ids.
    pub ids: Vec<MatchId>,
    /// The earliest Bitcoin deadline among them.
    pub deadline: u32,
}

/// Looks the matches up on the L2; every one must still be open.
pub fn owed(peer: &Peer, ids: &[MatchId]) -> Result<Owed> {
    let mut payments = Vec::with_capacity(ids.len());
    let mut deadline = u32::MAX;
    for id in ids {
        let m = peer
            .peg_match(id.0)
            .with_context(|| format!("looking up match {} on the L2", id.0))?;
        if m.state != MatchStatus::Open {
            bail!("match {} is {}, not open: nothing to pay", id.0, m.state);
        }
        let script = Vec::<u8>::from_hex(&m.payee_script.hex)
            .map(ScriptBuf::from_bytes)
            .map_err(|_| {
                anyhow!(
                    "match {}: the node gave a payee script that is not hex",
                    id.0
                )
            })?;
        let amount = m.amount_btc_owed;
        deadline = deadline.min(m.btc_deadline_height);
        payments.push(PegPayment {
            script,
            amount: Amount::from_sat(amount),
        });
    }
    Ok(Owed {
        payments,
        ids: ids.to_vec(),
        deadline,
    })
}

/// The L2's tracked Bitcoin tip height.
pub fn l2_btc_tip(peer: &Peer) -> Result<u32> {
    Ok(peer.peg_info()?.btc_tip.height)
}

/// How deep a take must be before its BTC is paid.
#[derive(Clone, Copy, Debug)]
pub struct Finality {
    /// L2 blocks on top of the block that ran the take (counting it).
    pub confirmations: u64,
    /// Give up after this long.
    pub timeout: Duration,
}

/// Waits until the call's receipt is `f.confirmations` deep or Bitcoin-anchored (`final`).
/// Fails when the call was reorganised out and dropped, refused on the new branch, or still
/// not final at the timeout.
pub fn wait_final(l2: &L2Client, txid: Txid, f: Finality) -> Result<()> {
    let deadline = std::time::Instant::now() + f.timeout;
    let mut last;
    loop {
        match l2.receipt(txid)? {
            Some(r) if r.success => {
                let conf = r.confirmations;
                if r.is_final || conf >= f.confirmations {
                    return Ok(());
                }
                last = format!("{conf} of {} L2 confirmations", f.confirmations);
            }
            Some(r) => bail!(
                "take {txid} was refused after an L2 reorganisation: {}",
                r.error.as_deref().unwrap_or("unknown error")
            ),
            None if !l2.tx_known(txid)? => {
                bail!("take {txid} was reorganised out of the L2 and dropped")
            }
            None => last = "reorganised out of the L2, waiting to run again".into(),
        }
        if std::time::Instant::now() > deadline {
            bail!("take {txid} is not final after {:?} ({last})", f.timeout);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn take_all(
    l2: &L2Client,
    plan: &[MatcherPiece],
    rx: L2Address,
    finality: Finality,
) -> Result<Vec<MatchId>> {
    let me = l2.address();
    let before: BTreeSet<u64> = l2
        .peer()
        .peg_matches(Some(&me))?
        .iter()
        .map(|m| m.match_id)
        .collect();
    let mut calls = Vec::new();
    for piece in plan {
        let (order, amount, bond) = (piece.order_id, piece.amount, piece.bond);
        let txid = l2.send(
            bond,
            &PegCall::Take {
                order_id: OrderId(order),
                amount: Sats(amount),
                rx_recipient: rx,
            },
        )?;
        println!("take of order {order}: {amount} sats, bond {bond} sats (call {txid})");
        calls.push(txid);
    }
    let mut refused = Vec::new();
    let mut ran = Vec::new();
    for txid in calls {
        match l2.wait(txid, WAIT) {
            Ok(_) => ran.push(txid),
            Err(e) => refused.push(format!("{e:#}")),
        }
    }
    // Pay only against final takes: a take undone by an L2 reorganisation after the BTC is
    // sent would leave the payment without a match to claim.
    let mut not_final = Vec::new();
    for txid in ran {
        if let Err(e) = wait_final(l2, txid, finality) {
            not_final.push(format!("{e:#}"));
        }
    }
    if !not_final.is_empty() {
        bail!(
            "nothing was paid: {} (bonds of takes that did run stay posted; if they are not \
             paid their matches expire and the bonds go to the makers)",
            not_final.join("; ")
        );
    }
    let orders: BTreeSet<u64> = plan.iter().map(|p| p.order_id).collect();
    let ids: Vec<MatchId> = l2
        .peer()
        .peg_matches(Some(&me))?
        .iter()
        .filter(|m| m.taker == me && m.state == MatchStatus::Open)
        .filter(|m| orders.contains(&m.order_id))
        .map(|m| m.match_id)
        .filter(|id| !before.contains(id))
        .map(MatchId)
        .collect();
    if !refused.is_empty() {
        eprintln!("some takes were refused: {}", refused.join("; "));
    }
    if ids.is_empty() {
        bail!(
            "no take went through or became final, nothing was paid: {}",
            refused.join("; ")
        );
    }
    Ok(ids)
}

/// A peg-in request, before anything is taken.
pub struct Request<'a> {
    /// rxBTC wanted, in sats.
    pub amount: u64,
    /// Accept a partial fill.
    pub allow_partial: bool,
    /// Fee rate of the payment.
    pub rate: bitcoin::FeeRate,
    /// Blocks that must remain before the earliest deadline.
    pub margin: u32,
    /// Who receives the rxBTC.
    pub recipient: rexe_chain::Address,
    /// The Bitcoin side, for its tip.
    pub btc: &'a dyn BitcoinSource,
    /// How final a take must be before paying.
    pub finality: Finality,
    /// The Electrum server, for fee estimates against the deadline (`None`: no check).
    pub electrum: Option<&'a str>,
}

/// Checks the request can succeed (the L2's Bitcoin view is current, orders exist, the
/// wallet can pay), takes the orders (bonds), and builds the unsigned payment PSBT.
pub fn prepare(
    req: &Request<'_>,
    wallet: &mut RexeWallet,
    l2: &L2Client,
    peer: &Peer,
) -> Result<(bitcoin::Psbt, Owed)> {
    // The deadline counts from the L2's tracked Bitcoin tip: if it lags behind the real one,
    // the window is shorter than it looks.
    let window = peer.peg_info()?.payment_window;
    let tracked = l2_btc_tip(peer)?;
    let tip = req.btc.tip_height()?;
    if tip.saturating_sub(tracked) + req.margin > window {
        bail!(
            "the L2 tracks Bitcoin block {tracked} but {} is at {tip}: a take now would \
             leave fewer than {} blocks to pay (is a header relayer running? `rexe peg relay`)",
            req.btc.describe(),
            req.margin
        );
    }
    let plan = peer.peg_matcher(req.amount)?;
    let (matched, pieces) = (plan.matched, plan.orders);
    if matched == 0 || pieces.is_empty() {
        bail!("no peg-out order can fill {} sats now", req.amount);
    }
    if matched < req.amount && !req.allow_partial {
        bail!(
            "the order book fills only {matched} of {} sats (give --allow-partial to take it)",
            req.amount
        );
    }
    // Before posting bonds: can the wallet pay? (A dry run of the same transaction.)
    let dry: Vec<PegPayment> = pieces
        .iter()
        .map(|p| -> Result<PegPayment> {
            Ok(PegPayment {
                script: ScriptBuf::from_bytes(
                    Vec::<u8>::from_hex(&p.payee_script.hex).context("matcher: payee script")?,
                ),
                amount: Amount::from_sat(p.btc_owed),
            })
        })
        .collect::<Result<_>>()?;
    let dummy: Vec<MatchId> = (0..pieces.len() as u64).map(MatchId).collect();
    wallet
        .build_peg_in(&dry, &dummy, req.rate)
        .context("the wallet cannot pay these matches (nothing was taken)")?;

    let ids = take_all(l2, &pieces, L2Address(req.recipient.0), req.finality)?;
    let owed = owed(peer, &ids)?;
    let tip = req.btc.tip_height()?;
    rexe_wallet::check_deadline(owed.deadline, tip, req.margin).context(
        "refusing to pay: the matches will expire and the bonds go to the makers; \
         do not pay them",
    )?;
    if let Some(electrum) = req.electrum {
        check_fee_for_deadline(electrum, req.rate, owed.deadline, tip, req.margin)?;
    }
    let psbt = wallet.build_peg_in(&owed.payments, &owed.ids, req.rate)?;
    let total: u64 = owed.payments.iter().map(|p| p.amount.to_sat()).sum();
    println!(
        "matches {:?}: pay {total} sats in one Bitcoin transaction before block {} (now {tip})",
        owed.ids.iter().map(|i| i.0).collect::<Vec<_>>(),
        owed.deadline
    );
    Ok((psbt, owed))
}

/// Refuses a fee rate the server expects to confirm later than the deadline allows: the
/// payment must confirm with `margin` blocks to spare.
fn check_fee_for_deadline(
    electrum: &str,
    rate: bitcoin::FeeRate,
    deadline: u32,
    tip: u32,
    margin: u32,
) -> Result<()> {
    let target = deadline.saturating_sub(tip).saturating_sub(margin).max(1);
    let Some(needed) = crate::cli::btc_wallet::estimate_sat_vb(electrum, target as usize)? else {
        return Ok(()); // no estimate: nothing to compare with
    };
    let have = crate::cli::btc_wallet::sat_per_vb(rate);
    if have + 1e-9 < needed {
        bail!(
            "refusing to pay: {have:.1} sat/vB is below the server's estimate of {needed:.1} \
             sat/vB for confirmation within {target} blocks (deadline at block {deadline}, \
             tip {tip}, margin {margin}); pay with a higher --feerate (or `rexe peg bump` an \
             unconfirmed payment)"
        );
    }
    Ok(())
}

/// Replaces the unconfirmed payment `btc_txid` (RBF) at `rate`, signs, broadcasts and adds
/// the replacement to the claimer's work list; refuses after the deadline.
pub fn bump(
    wallet: &mut RexeWallet,
    btc_txid: bitcoin::Txid,
    rate: bitcoin::FeeRate,
    owed: &Owed,
    electrum: &str,
    claimer_db: &rusqlite::Connection,
) -> Result<bitcoin::Txid> {
    let tip = Electrum::new(electrum)?.tip_height()?;
    rexe_wallet::check_deadline(owed.deadline, tip, 1)
        .context("too late to bump: the deadline has passed")?;
    let mut psbt = wallet.bump_fee(btc_txid, rate)?;
    rexe_wallet::tag_match_ids(&mut psbt, &owed.ids);
    if !wallet.sign(&mut psbt, &owed.payments, &owed.ids)? {
        bail!("the wallet could not sign every input of the replacement");
    }
    let tx = rexe_wallet::extract_tx(psbt)?;
    let txid = wallet.broadcast(electrum, &tx, &owed.payments, &owed.ids)?;
    super::claimer::watch(claimer_db, txid, &owed.ids)?;
    Ok(txid)
}

/// What `--wait --bump` keeps between passes.
struct Bumper {
    payment: bitcoin::Txid,
    rate: bitcoin::FeeRate,
    last_tip: Option<u32>,
}

impl Bumper {
    /// Bumps the payment if it is unconfirmed and at risk (see [`PegInArgs::bump`]).
    fn pass(
        &mut self,
        wallet: &mut RexeWallet,
        owed: &Owed,
        btc: &Electrum,
        electrum: &str,
        db: &rusqlite::Connection,
    ) -> Result<()> {
        let tip = btc.tip_height()?;
        if self.last_tip == Some(tip) || !rexe_wallet::should_bump(owed.deadline, tip) {
            return Ok(());
        }
        if btc.proof(self.payment, &owed.payments[0].script)?.is_some() {
            return Ok(()); // confirmed
        }
        self.last_tip = Some(tip);
        let left = owed.deadline.saturating_sub(tip).max(1);
        let estimate =
            crate::cli::btc_wallet::estimate_sat_vb(electrum, left as usize)?.unwrap_or(1.0);
        let last = crate::cli::btc_wallet::sat_per_vb(self.rate);
        // BIP125: the replacement pays its own size at the incremental relay fee on top of
        // the original's fee, so the rate rises by more than 1 sat/vB.
        let sat_vb = estimate.max(last * 1.5).max(last + 2.0);
        let rate = crate::cli::btc_wallet::from_sat_per_vb(sat_vb);
        let new = bump(wallet, self.payment, rate, owed, electrum, db)?;
        println!(
            "payment at risk ({left} blocks to the deadline): replaced {} by {new} at {sat_vb:.1} sat/vB",
            self.payment
        );
        self.payment = new;
        self.rate = rate;
        Ok(())
    }
}

/// Signs the wallet's payment PSBT, broadcasts it over Electrum and adds it to the claimer's
/// work list.
pub fn pay(
    wallet: &mut RexeWallet,
    mut psbt: bitcoin::Psbt,
    owed: &Owed,
    electrum: &str,
    claimer_state: &std::path::Path,
) -> Result<bitcoin::Txid> {
    if !wallet.sign(&mut psbt, &owed.payments, &owed.ids)? {
        bail!("the wallet could not sign every input of its own payment");
    }
    let tx = rexe_wallet::extract_tx(psbt)?;
    let txid = wallet.broadcast(electrum, &tx, &owed.payments, &owed.ids)?;
    let db = super::claimer::open_db(claimer_state)?;
    super::claimer::watch(&db, txid, &owed.ids)?;
    Ok(txid)
}

/// `rexe peg in`: takes orders, pays them in one transaction and claims the rxBTC.
pub fn run(a: PegInArgs) -> Result<()> {
    let mut wallet = a.w.open_synced()?;
    let l2 = l2_client(&a.rpc, a.key.as_ref(), &wallet, a.fees)?;
    let peer = a.rpc.peer()?;
    let btc = Electrum::new(&a.w.electrum)?;
    let recipient = match &a.recipient {
        Some(r) => rexe_chain::Address::parse_for(r, l2.network()).context("--recipient")?,
        None => wallet.l2_address().unwrap_or_else(|| l2.signer_address()),
    };
    let req = Request {
        amount: a.amount,
        allow_partial: a.allow_partial,
        rate: fee_rate(a.feerate, &a.w.electrum)?,
        margin: a.margin,
        recipient,
        btc: &btc,
        finality: Finality {
            confirmations: a
                .l2_confirmations
                .unwrap_or_else(|| l2.network().default_l2_confirmations()),
            timeout: Duration::from_secs(a.take_timeout),
        },
        electrum: Some(&a.w.electrum),
    };
    let req_rate = req.rate;
    let (psbt, owed) = prepare(&req, &mut wallet, &l2, &peer)?;
    if let Some(path) = &a.psbt_out {
        rexe_wallet::write_psbt_file(path, &psbt)?;
        println!(
            "unsigned PSBT written to {}: sign it (rexe psbt sign, bitcoind walletprocesspsbt, \
             a hardware wallet), then `rexe psbt broadcast {}`",
            path.display(),
            path.display()
        );
        return Ok(());
    }
    let txid = pay(&mut wallet, psbt, &owed, &a.w.electrum, &a.claimer_state)?;
    println!("paid: Bitcoin transaction {txid}");
    println!(
        "the claimer work list {} watches it (run `rexe peg claimer` to claim it once it is deep enough)",
        a.claimer_state.display(),
    );
    if a.wait && a.bump {
        let db = super::claimer::open_db(&a.claimer_state)?;
        let mut bumper = Bumper {
            payment: txid,
            rate: req_rate,
            last_tip: None,
        };
        let c = super::claimer::Claimer::open(&a.claimer_state, Electrum::new(&a.w.electrum)?, l2)?;
        super::run_claimer_with(&c, true, false, || {
            wallet.sync(&a.w.electrum)?;
            if let Err(e) = bumper.pass(&mut wallet, &owed, &btc, &a.w.electrum, &db) {
                eprintln!("could not bump the payment: {e:#}");
            }
            Ok(())
        })?;
    } else if a.wait {
        let c = super::claimer::Claimer::open(&a.claimer_state, btc, l2)?;
        super::run_claimer(&c, true, false)?;
    }
    Ok(())
}
