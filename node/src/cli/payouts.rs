//! `rexe miner pay`: pays workers the L2 blocks a share tap recorded for them
//! (`rexe miner tap --payout-ledger`), from the operator's key, once each block is buried.
//!
//! Behind an unmodified pool the L2 block reward goes to the address the pool's template
//! committed to (the proxy's `--payout`, the operator's); the tap's ledger says which
//! worker's share sealed each block and which address that worker named. This command pays
//! each such worker its block's subsidy (the operator keeps the block's tips and pays the
//! transfer's fee), and only for blocks that are on the active chain with enough
//! confirmations and that paid this key.
//!
//! Never twice: each payment is written, with its signed transaction, to `<ledger>.paid`
//! (rewritten atomically and synced) **before** it is broadcast. A later run settles every
//! record first: a transaction the node knows stands; one it does not know is broadcast
//! again (the same bytes, so the same nonce) while it can still confirm; only when it can
//! no longer (its nonce was used by another transaction, or it expired) is the record
//! dropped and the block paid anew.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use bitcoin::hex::DisplayHex;
use clap::Args;
use rexe_chain::encode::Encode;
use rexe_chain::{Address, Amount, Payload};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::key::{read_key, RpcArgs};
use crate::client::L2Client;

/// `rexe miner pay`'s arguments.
#[derive(Args)]
pub struct PayArgs {
    /// The tap's payout ledger (`rexe miner tap --payout-ledger`).
    #[arg(long)]
    ledger: PathBuf,
    /// The operator's key file: the key of the address the pool's template pays (the
    /// proxy's `--payout`).
    #[arg(long)]
    key: PathBuf,
    /// Confirmations an L2 block needs before its reward is passed on.
    #[arg(long, default_value_t = 10)]
    confirmations: u64,
    /// Show what would be paid; pay nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    fees: crate::fees::FeeArgs,
    #[command(flatten)]
    rpc: RpcArgs,
}

/// One payment, as written before it is broadcast.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Paid {
    l2_block: String,
    worker: String,
    address: String,
    amount_sat: u64,
    txid: String,
    nonce: u64,
    expiry_height: u64,
    /// The signed transaction, to broadcast again unchanged.
    raw: String,
}

/// What one run did, printed as JSON.
#[derive(Debug, Default, Serialize)]
struct Report {
    paid: u64,
    paid_sat: u64,
    rebroadcast: u64,
    dropped: u64,
    already_paid: u64,
    waiting: u64,
    off_chain: u64,
    not_this_key: u64,
    unknown_block: u64,
    to_operator: u64,
    malformed: u64,
}

/// `<ledger>.paid`.
fn paid_path(ledger: &Path) -> PathBuf {
    let mut p = ledger.as_os_str().to_owned();
    p.push(".paid");
    PathBuf::from(p)
}

fn read_paid(path: &Path) -> Result<BTreeMap<String, Paid>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut out = BTreeMap::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let p: Paid = serde_json::from_str(line)
            .with_context(|| format!("{} line {}: not a payment record", path.display(), i + 1))?;
        out.insert(p.l2_block.clone(), p);
    }
    Ok(out)
}

/// Writes every record to a temporary file, syncs it and renames it over `path`.
fn write_paid(path: &Path, paid: &BTreeMap<String, Paid>) -> Result<()> {
    let tmp = path.with_extension("paid.tmp");
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    for p in paid.values() {
        writeln!(f, "{}", serde_json::to_string(p)?)?;
    }
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Settles `p`, a payment written by an earlier run: `true` while it stands (known to the
/// node, or broadcast again; with `dry_run`, only counted as to be broadcast again),
/// `false` when it can no longer confirm and must be redone.
fn settle(
    client: &L2Client,
    p: &Paid,
    tip: u64,
    dry_run: bool,
    confirmed: &mut Option<u64>,
    report: &mut Report,
) -> Result<bool> {
    let txid: rexe_chain::Txid = p.txid.parse().context("a record's txid")?;
    if client.tx_known(txid)? {
        report.already_paid += 1;
        return Ok(true);
    }
    // Asked once per run: settling only broadcasts again, it confirms nothing.
    let confirmed_nonce = match *confirmed {
        Some(n) => n,
        None => *confirmed.insert(client.nonces()?.0),
    };
    if confirmed_nonce > p.nonce || tip >= p.expiry_height {
        // Another transaction took its nonce, or it expired unconfirmed: it never paid.
        report.dropped += 1;
        return Ok(false);
    }
    report.rebroadcast += 1;
    if dry_run {
        return Ok(true);
    }
    client
        .call("sendrawtransaction", json!([p.raw]))
        .with_context(|| {
            format!(
                "broadcasting again the payment {} for block {}",
                p.txid, p.l2_block
            )
        })?;
    Ok(true)
}

/// Runs `rexe miner pay`.
pub fn pay(a: PayArgs) -> Result<()> {
    let client = L2Client::connect(a.rpc.peer()?, read_key(&a.key)?, a.fees)?;
    let operator = client.address();
    let ledger = std::fs::read_to_string(&a.ledger)
        .with_context(|| format!("reading the payout ledger {}", a.ledger.display()))?;
    let paid_file = paid_path(&a.ledger);
    let mut paid = read_paid(&paid_file)?;
    let mut report = Report::default();
    let tip = client
        .call("getblockcount", json!([]))?
        .as_u64()
        .unwrap_or(0);

    // Earlier payments first, so that none is made twice.
    let mut changed = false;
    let mut confirmed = None;
    for block in paid.keys().cloned().collect::<Vec<_>>() {
        let settled = settle(
            &client,
            &paid[&block],
            tip,
            a.dry_run,
            &mut confirmed,
            &mut report,
        )?;
        if !settled {
            paid.remove(&block);
            changed = true;
        }
    }
    if changed && !a.dry_run {
        write_paid(&paid_file, &paid)?;
    }

    for line in ledger.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(e) = serde_json::from_str::<Value>(line) else {
            report.malformed += 1;
            continue;
        };
        let (Some(block), Some(worker), Some(address)) = (
            e["l2_block"].as_str(),
            e["worker"].as_str(),
            e["address"].as_str(),
        ) else {
            report.malformed += 1;
            continue;
        };
        if e["to"] != json!("worker") {
            report.to_operator += 1;
            continue;
        }
        if paid.contains_key(block) {
            continue;
        }
        let payee = Address::parse_for(address, client.network())
            .with_context(|| format!("ledger: block {block}'s worker address {address}"))?;
        let header = match client.call("getblockheader", json!([block])) {
            Ok(h) => h,
            Err(e) if e.is_not_found() => {
                report.unknown_block += 1;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let confirmations = header["confirmations"].as_i64().unwrap_or(-1);
        if confirmations < 0 {
            report.off_chain += 1;
            continue;
        }
        if (confirmations as u64) < a.confirmations {
            report.waiting += 1;
            continue;
        }
        if header["miner"].as_str() != Some(operator.as_str()) {
            report.not_this_key += 1;
            continue;
        }
        let Some(subsidy) = header["subsidy"].as_u64() else {
            bail!(
                "the node does not report block subsidies (getblockheader `subsidy`): upgrade it"
            );
        };
        if a.dry_run {
            println!(
                "{}",
                json!({"would_pay": address, "worker": worker, "amount_sat": subsidy, "l2_block": block})
            );
            report.paid += 1;
            report.paid_sat += subsidy;
            continue;
        }
        let tx = client.build_payload(
            Payload::Transfer {
                to: payee,
                amount: Amount::from_sat(subsidy),
            },
            rexe_chain::tx::TRANSFER_GAS,
        )?;
        let record = Paid {
            l2_block: block.to_string(),
            worker: worker.to_string(),
            address: address.to_string(),
            amount_sat: subsidy,
            txid: tx.txid().to_string(),
            nonce: tx.tx.nonce,
            expiry_height: tx.tx.expiry_height,
            raw: tx.to_bytes().to_lower_hex_string(),
        };
        paid.insert(block.to_string(), record);
        write_paid(&paid_file, &paid)?;
        crate::client::failpoint("pay-after-record");
        client.send_tx(&tx).with_context(|| {
            format!("paying {address} for block {block} (recorded; the next run broadcasts it again or drops it)")
        })?;
        report.paid += 1;
        report.paid_sat += subsidy;
    }
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payment_records_round_trip_and_replace_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = dir.path().join("ledger.jsonl");
        let path = paid_path(&ledger);
        assert_eq!(path, dir.path().join("ledger.jsonl.paid"));
        assert!(read_paid(&path).unwrap().is_empty());
        let p = Paid {
            l2_block: "ab".repeat(32),
            worker: "w.rig1".into(),
            address: "trx1x".into(),
            amount_sat: 5,
            txid: "cd".repeat(32),
            nonce: 3,
            expiry_height: 103,
            raw: "00".into(),
        };
        let mut all = BTreeMap::new();
        all.insert(p.l2_block.clone(), p.clone());
        write_paid(&path, &all).unwrap();
        assert_eq!(read_paid(&path).unwrap(), all);
        all.clear();
        write_paid(&path, &all).unwrap();
        assert!(read_paid(&path).unwrap().is_empty());
        std::fs::write(&path, "not json\n").unwrap();
        assert!(
            read_paid(&path).is_err(),
            "a damaged record file stops the payer"
        );
    }
}
