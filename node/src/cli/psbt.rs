//! `rexe psbt`: peg-in PSBTs (BIP174) between `rexe peg in --psbt-out`, external signers
//! and several payers. Every command that signs or broadcasts first reads the match ids the
//! PSBT records, looks each match up on the L2 node, and refuses a PSBT whose outputs do not
//! pay every match its payee script and amount, with the right `RXPG` commitment, on the
//! wallet's network.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use bitcoin::hex::FromHex;
use bitcoin::Psbt;
use clap::Subcommand;
use rexe_wallet::{psbt_match_ids, read_psbt_file, write_psbt_file, MatchId};
use serde_json::json;

use crate::cli::btc_wallet::WalletArgs;
use crate::cli::RpcArgs;
use crate::peg::pegin::owed;
use crate::peg::source::{BitcoinSource, Electrum};

/// `rexe psbt`'s subcommands.
#[derive(Subcommand)]
pub enum PsbtCmd {
    /// Show a PSBT: inputs, outputs, the match ids it pays, what is signed.
    Show {
        /// The PSBT file (base64 or binary).
        file: PathBuf,
        /// Bitcoin network for addresses.
        #[arg(long = "btc-network", default_value = "regtest")]
        network: bitcoin::Network,
    },
    /// Sign the wallet's own inputs (after checking the outputs against the L2's matches).
    Sign {
        /// The PSBT file.
        file: PathBuf,
        /// Where to write the signed PSBT (default: over FILE).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Your own part, as you gave it to `rexe psbt join`: refuse a joined PSBT that
        /// dropped or changed any of your inputs or outputs.
        #[arg(long)]
        part: Option<PathBuf>,
        /// The Bitcoin wallet.
        #[command(flatten)]
        w: WalletArgs,
        /// The L2 node.
        #[command(flatten)]
        rpc: RpcArgs,
    },
    /// Finalize a signed PSBT and print the raw transaction hex (does not broadcast).
    Finalize {
        /// The PSBT file.
        file: PathBuf,
        /// Also write the finalized PSBT here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// The Bitcoin wallet.
        #[command(flatten)]
        w: WalletArgs,
        /// The L2 node.
        #[command(flatten)]
        rpc: RpcArgs,
    },
    /// Finalize, check and broadcast a signed peg-in PSBT (or a finalized raw transaction in
    /// hex, as Electrum's `signtransaction` returns, with `--matches`) over Electrum, and hand it to the
    /// claimer's work list.
    Broadcast {
        /// The PSBT file, or a file holding a finalized raw transaction in hex.
        file: PathBuf,
        /// The match ids a raw transaction pays (a PSBT records its own).
        #[arg(long, value_delimiter = ',')]
        matches: Vec<u64>,
        /// Refuse when fewer Bitcoin blocks than this remain before a match's deadline.
        #[arg(long, default_value_t = rexe_wallet::DEFAULT_PAY_MARGIN)]
        margin: u32,
        /// The claimer's work list.
        #[arg(long, default_value = "rexe-claimer.sqlite")]
        claimer_state: PathBuf,
        /// The Bitcoin wallet.
        #[command(flatten)]
        w: WalletArgs,
        /// The L2 node.
        #[command(flatten)]
        rpc: RpcArgs,
    },
    /// Join several payers' unsigned peg-in PSBTs into one transaction paying all their
    /// matches with one commitment (each keeps its inputs and change).
    Join {
        /// The parts.
        #[arg(required = true, num_args = 2..)]
        parts: Vec<PathBuf>,
        /// The joined PSBT.
        #[arg(long)]
        out: PathBuf,
    },
    /// Combine copies of one PSBT signed by different parties (BIP174 combiner).
    Combine {
        /// The signed copies.
        #[arg(required = true, num_args = 2..)]
        copies: Vec<PathBuf>,
        /// The combined PSBT.
        #[arg(long)]
        out: PathBuf,
    },
}

fn ids_of(psbt: &Psbt, file: &std::path::Path) -> Result<Vec<MatchId>> {
    psbt_match_ids(psbt)?.with_context(|| {
        format!(
            "{} records no peg match ids (not made by `rexe peg in`?)",
            file.display()
        )
    })
}

/// The value an input spends: segwit inputs carry the spent output, legacy ones the whole
/// previous transaction (as Electrum and Core write them).
fn spent_value(txin: &bitcoin::TxIn, input: &bitcoin::psbt::Input) -> Option<u64> {
    input
        .witness_utxo
        .as_ref()
        .map(|u| u.value.to_sat())
        .or_else(|| {
            input
                .non_witness_utxo
                .as_ref()
                .filter(|t| t.compute_txid() == txin.previous_output.txid)
                .and_then(|t| t.output.get(txin.previous_output.vout as usize))
                .map(|o| o.value.to_sat())
        })
}

/// A file holding one raw transaction in hex (what Electrum's `signtransaction` and
/// `rexe psbt finalize` print), or `None` when it is something else (a PSBT).
fn raw_tx_file(path: &std::path::Path) -> Result<Option<bitcoin::Transaction>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return Ok(None);
    };
    let Ok(raw) = Vec::<u8>::from_hex(text.trim()) else {
        return Ok(None);
    };
    Ok(bitcoin::consensus::deserialize(&raw).ok())
}

/// Runs one `rexe psbt` subcommand.
pub fn run(cmd: PsbtCmd) -> Result<()> {
    match cmd {
        PsbtCmd::Show { file, network } => {
            let psbt = read_psbt_file(&file)?;
            let outputs: Vec<_> = psbt
                .unsigned_tx
                .output
                .iter()
                .map(|o| {
                    json!({
                        "value": o.value.to_sat(),
                        "address": bitcoin::Address::from_script(&o.script_pubkey, network)
                            .ok()
                            .map(|a| a.to_string()),
                        "script": o.script_pubkey.to_hex_string(),
                    })
                })
                .collect();
            let inputs: Vec<_> = psbt
                .unsigned_tx
                .input
                .iter()
                .zip(&psbt.inputs)
                .map(|(i, p)| {
                    let value = spent_value(i, p);
                    let fin = p.final_script_witness.is_some() || p.final_script_sig.is_some();
                    json!({
                        "outpoint": i.previous_output.to_string(),
                        "value": value,
                        "signed": fin || !p.partial_sigs.is_empty() || p.tap_key_sig.is_some()
                            || !p.tap_script_sigs.is_empty(),
                        "final": fin,
                    })
                })
                .collect();
            // Once every input is final: the transaction's id (differs from the unsigned one
            // when scriptSigs are filled in).
            let final_txid = psbt
                .inputs
                .iter()
                .all(|p| p.final_script_witness.is_some() || p.final_script_sig.is_some())
                .then(|| {
                    psbt.clone()
                        .extract_tx_unchecked_fee_rate()
                        .compute_txid()
                        .to_string()
                });
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({
                    "txid": psbt.unsigned_tx.compute_txid().to_string(),
                    "final_txid": final_txid,
                    "match_ids": psbt_match_ids(&psbt)?.map(|v| v.iter().map(|i| i.0).collect::<Vec<_>>()),
                    "fee": psbt.fee().ok().map(|f| f.to_sat()),
                    "inputs": inputs,
                    "outputs": outputs,
                }))?
            );
        }
        PsbtCmd::Sign {
            file,
            out,
            part,
            w,
            rpc,
        } => {
            let wallet = w.open_synced()?;
            let mut psbt = read_psbt_file(&file)?;
            let ids = ids_of(&psbt, &file)?;
            let owed = owed(&rpc.peer()?, &ids)?;
            if let Some(part) = part {
                rexe_wallet::check_join(&psbt, &read_psbt_file(&part)?)
                    .context("the joined PSBT does not keep your part")?;
            }
            let complete = wallet.sign(&mut psbt, &owed.payments, &ids)?;
            let out = out.unwrap_or(file);
            write_psbt_file(&out, &psbt)?;
            println!(
                "signed the wallet's inputs; {} ({})",
                if complete {
                    "every input is final: `rexe psbt broadcast` it"
                } else {
                    "other inputs still need their signers, then `rexe psbt combine`"
                },
                out.display()
            );
        }
        PsbtCmd::Finalize { file, out, w, rpc } => {
            let wallet = w.open()?;
            let mut psbt = read_psbt_file(&file)?;
            let ids = ids_of(&psbt, &file)?;
            let owed = owed(&rpc.peer()?, &ids)?;
            wallet.check_peg_psbt(&psbt, &owed.payments, &ids)?;
            if !wallet.finalize(&mut psbt)? {
                bail!("{}: some inputs are not signed yet", file.display());
            }
            if let Some(out) = out {
                write_psbt_file(&out, &psbt)?;
            }
            let tx = rexe_wallet::extract_tx(psbt)?;
            println!("{}", bitcoin::consensus::encode::serialize_hex(&tx));
        }
        PsbtCmd::Broadcast {
            file,
            matches,
            margin,
            claimer_state,
            w,
            rpc,
        } => {
            let mut wallet = w.open_synced()?;
            let (tx, ids, owed) = match raw_tx_file(&file)? {
                Some(tx) => {
                    if matches.is_empty() {
                        bail!(
                            "{} holds a raw transaction, which names no matches: give --matches",
                            file.display()
                        );
                    }
                    let ids: Vec<MatchId> = matches.into_iter().map(MatchId).collect();
                    let owed = owed(&rpc.peer()?, &ids)?;
                    (tx, ids, owed)
                }
                None => {
                    let mut psbt = read_psbt_file(&file)?;
                    let ids = ids_of(&psbt, &file)?;
                    if !matches.is_empty() && matches != ids.iter().map(|i| i.0).collect::<Vec<_>>()
                    {
                        bail!("--matches differs from the match ids the PSBT records");
                    }
                    let owed = owed(&rpc.peer()?, &ids)?;
                    wallet.check_peg_psbt(&psbt, &owed.payments, &ids)?;
                    if !wallet.finalize(&mut psbt)? {
                        bail!("{}: some inputs are not signed yet", file.display());
                    }
                    (rexe_wallet::extract_tx(psbt)?, ids, owed)
                }
            };
            let tip = Electrum::new(&w.electrum)?.tip_height()?;
            rexe_wallet::check_deadline(owed.deadline, tip, margin)
                .context("refusing to broadcast a payment that may miss its deadline")?;
            // Checks every match is paid and the commitment, then broadcasts.
            let txid = wallet.broadcast(&w.electrum, &tx, &owed.payments, &ids)?;
            let db = crate::peg::claimer::open_db(&claimer_state)?;
            crate::peg::claimer::watch(&db, txid, &ids)?;
            println!(
                "broadcast {txid}; the claimer work list {} watches it",
                claimer_state.display()
            );
        }
        PsbtCmd::Join { parts, out } => {
            let mut psbts = Vec::with_capacity(parts.len());
            let mut ids = Vec::new();
            for p in &parts {
                let psbt = read_psbt_file(p)?;
                ids.extend(ids_of(&psbt, p)?);
                psbts.push(psbt);
            }
            let joined = rexe_wallet::join(&psbts, &ids)?;
            write_psbt_file(&out, &joined)?;
            println!(
                "joined {} parts paying matches {:?} into {}: each payer now runs `rexe psbt \
                 sign {} --part THEIR_PART --out SIGNED`, then `rexe psbt combine`",
                parts.len(),
                ids.iter().map(|i| i.0).collect::<Vec<_>>(),
                out.display(),
                out.display()
            );
        }
        PsbtCmd::Combine { copies, out } => {
            let psbts = copies
                .iter()
                .map(|p| read_psbt_file(p))
                .collect::<Result<Vec<_>, _>>()?;
            let combined = rexe_wallet::combine(psbts)?;
            write_psbt_file(&out, &combined)?;
            println!("combined {} copies into {}", copies.len(), out.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash as _;
    use bitcoin::{absolute::LockTime, transaction::Version, Amount, OutPoint, ScriptBuf, TxOut};

    #[test]
    fn legacy_inputs_show_the_value_of_their_previous_output() {
        let out = |v| TxOut {
            value: Amount::from_sat(v),
            script_pubkey: ScriptBuf::new(),
        };
        let prev = bitcoin::Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![],
            output: vec![out(1), out(70_000)],
        };
        let spend = |txid| bitcoin::TxIn {
            previous_output: OutPoint { txid, vout: 1 },
            ..Default::default()
        };
        let legacy = bitcoin::psbt::Input {
            non_witness_utxo: Some(prev.clone()),
            ..Default::default()
        };
        assert_eq!(
            spent_value(&spend(prev.compute_txid()), &legacy),
            Some(70_000)
        );
        // A previous transaction that is not the one spent gives no value.
        let other = spend(bitcoin::Txid::from_byte_array([1; 32]));
        assert_eq!(spent_value(&other, &legacy), None);
        let none = bitcoin::psbt::Input::default();
        assert_eq!(spent_value(&spend(prev.compute_txid()), &none), None);
    }
}
