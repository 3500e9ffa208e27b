//! Peg-in payments: the checks every PSBT goes through before it is signed or broadcast,
//! joining several parties' PSBTs into one transaction, combining their signatures, and the
//! deadline rules.

use std::collections::{BTreeMap, HashSet};

use bitcoin::bip32::{ChildNumber, DerivationPath};
use bitcoin::constants::ChainHash;
use bitcoin::psbt::raw::ProprietaryKey;
use bitcoin::script::Instruction;
use bitcoin::{absolute, psbt, Address, Amount, Network, NetworkKind, Psbt, Script, ScriptBuf};
use bitcoin::{Transaction, TxOut};
use rexe_bridge::peg::{commitment_script, MatchId, COMMITMENT_TAG};

use crate::error::{PegCheckError, Result, WalletError};

/// One payment of a peg-in: at least `amount` to `script` (a match's payee script and the
/// BTC it is owed).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PegPayment {
    /// The maker's payout scriptPubKey.
    pub script: ScriptBuf,
    /// The amount owed (the output may pay more, never less).
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub amount: Amount,
}

/// Refuse to pay when fewer blocks than this remain before a match's deadline (half of the
/// default 12-block payment window, see bridge/README.md).
pub const DEFAULT_PAY_MARGIN: u32 = 6;

/// Bump the fee (RBF) of an unconfirmed payment once this many blocks or fewer remain.
pub const DEFAULT_BUMP_MARGIN: u32 = 3;

/// Blocks left in which a payment can still confirm: a payment is claimable if its block's
/// height is at most `deadline`, and the next block is `tip + 1`, so `deadline - tip`.
pub fn blocks_left(deadline_height: u32, btc_tip_height: u32) -> u32 {
    deadline_height.saturating_sub(btc_tip_height)
}

/// Whether paying now leaves at least `margin` blocks to confirm before the deadline.
/// Use [`DEFAULT_PAY_MARGIN`] unless the user asked otherwise.
pub fn safe_to_pay(deadline_height: u32, btc_tip_height: u32, margin: u32) -> bool {
    deadline_height >= btc_tip_height && blocks_left(deadline_height, btc_tip_height) >= margin
}

/// [`safe_to_pay`] as an error naming the deadline, the tip and the margin.
pub fn check_deadline(deadline_height: u32, btc_tip_height: u32, margin: u32) -> Result<()> {
    if safe_to_pay(deadline_height, btc_tip_height, margin) {
        Ok(())
    } else {
        Err(WalletError::TooLate {
            deadline: deadline_height,
            tip: btc_tip_height,
            remaining: blocks_left(deadline_height, btc_tip_height),
            margin,
        })
    }
}

/// Whether an unconfirmed payment should be fee-bumped now: at most
/// [`DEFAULT_BUMP_MARGIN`] blocks remain (and the deadline has not passed).
pub fn should_bump(deadline_height: u32, btc_tip_height: u32) -> bool {
    deadline_height >= btc_tip_height
        && blocks_left(deadline_height, btc_tip_height) <= DEFAULT_BUMP_MARGIN
}

/// The proprietary PSBT key under which rexe records the network's genesis hash
/// (prefix `rexe`, subtype 0, empty key).
pub fn genesis_key() -> ProprietaryKey {
    ProprietaryKey {
        prefix: b"rexe".to_vec(),
        subtype: 0,
        key: Vec::new(),
    }
}

/// Records `network`'s genesis hash in the PSBT (see [`genesis_key`]).
pub fn tag_network(psbt: &mut Psbt, network: Network) {
    psbt.proprietary.insert(
        genesis_key(),
        ChainHash::using_genesis_block(network).as_bytes().to_vec(),
    );
}

/// The proprietary PSBT key under which rexe records the match ids a peg PSBT pays (prefix
/// `rexe`, subtype 1, empty key; value: the ids as u64 big-endian, ascending). The
/// `OP_RETURN` commits to a hash of the ids, so a signer or a later `rexe psbt` command reads
/// them here, then looks each match up on the L2 and checks the outputs against it.
pub fn match_ids_key() -> ProprietaryKey {
    ProprietaryKey {
        prefix: b"rexe".to_vec(),
        subtype: 1,
        key: Vec::new(),
    }
}

/// Records `ids` in the PSBT (see [`match_ids_key`]).
pub fn tag_match_ids(psbt: &mut Psbt, ids: &[MatchId]) {
    let set: std::collections::BTreeSet<MatchId> = ids.iter().copied().collect();
    let value: Vec<u8> = set.iter().flat_map(|id| id.0.to_be_bytes()).collect();
    psbt.proprietary.insert(match_ids_key(), value);
}

/// The match ids recorded by [`tag_match_ids`]: `None` when absent, an error when malformed.
pub fn psbt_match_ids(psbt: &Psbt) -> Result<Option<Vec<MatchId>>> {
    let Some(v) = psbt.proprietary.get(&match_ids_key()) else {
        return Ok(None);
    };
    if v.is_empty() || v.len() % 8 != 0 {
        return Err(WalletError::Psbt(format!(
            "the PSBT's match-id record has {} bytes, not a multiple of 8",
            v.len()
        )));
    }
    Ok(Some(
        v.chunks_exact(8)
            .map(|c| MatchId(u64::from_be_bytes(c.try_into().expect("8 bytes"))))
            .collect(),
    ))
}

pub(crate) fn script_label(script: &Script, network: Network) -> String {
    match Address::from_script(script, network) {
        Ok(a) => a.to_string(),
        Err(_) => format!("script {}", script.to_hex_string()),
    }
}

/// Whether `script` is an `OP_RETURN` whose first push starts with `RXPG`.
pub fn is_rxpg(script: &Script) -> bool {
    if !script.is_op_return() {
        return false;
    }
    script
        .instructions()
        .skip(1)
        .find_map(|i| match i {
            Ok(Instruction::PushBytes(b)) => Some(b.as_bytes().starts_with(COMMITMENT_TAG)),
            _ => None,
        })
        .unwrap_or(false)
}

/// Checks that `outputs` pay every payment with its own output (script equal, value at least
/// the amount; one output never counts for two payments) and carry exactly one `RXPG`
/// `OP_RETURN`, equal to `commitment_script(match_ids)`.
pub fn check_peg_outputs(
    outputs: &[TxOut],
    payments: &[PegPayment],
    match_ids: &[MatchId],
    network: Network,
) -> Result<(), PegCheckError> {
    if payments.is_empty() {
        return Err(PegCheckError::NoPayments);
    }
    if match_ids.is_empty() {
        return Err(PegCheckError::NoMatchIds);
    }
    if let Some(index) = payments.iter().position(|p| p.script.is_op_return()) {
        return Err(PegCheckError::UnspendablePayee { index });
    }
    // The commitment.
    let expected = commitment_script(match_ids);
    let rxpg: Vec<&TxOut> = outputs
        .iter()
        .filter(|o| is_rxpg(&o.script_pubkey))
        .collect();
    match rxpg.as_slice() {
        [] => {
            return Err(PegCheckError::MissingCommitment {
                expected: expected.to_hex_string(),
            })
        }
        [one] if one.script_pubkey != expected => {
            return Err(PegCheckError::WrongCommitment {
                found: one.script_pubkey.to_hex_string(),
                expected: expected.to_hex_string(),
            })
        }
        [_] => {}
        many => return Err(PegCheckError::DuplicateCommitment(many.len())),
    }
    // Payments, grouped by script: pairing the largest owed with the largest output is an
    // optimal assignment when eligibility is "value >= amount".
    let mut by_script: BTreeMap<&ScriptBuf, Vec<usize>> = BTreeMap::new();
    for (i, p) in payments.iter().enumerate() {
        by_script.entry(&p.script).or_default().push(i);
    }
    for (script, mut idx) in by_script {
        idx.sort_by(|a, b| payments[*b].amount.cmp(&payments[*a].amount).then(a.cmp(b)));
        let mut values: Vec<Amount> = outputs
            .iter()
            .filter(|o| &o.script_pubkey == script)
            .map(|o| o.value)
            .collect();
        values.sort_by(|a, b| b.cmp(a));
        for (k, &i) in idx.iter().enumerate() {
            let owed = payments[i].amount;
            match values.get(k) {
                Some(v) if *v >= owed => {}
                Some(v) => {
                    return Err(PegCheckError::Underpaid {
                        index: i,
                        script: script_label(script, network),
                        expected: owed,
                        found: *v,
                    })
                }
                None => {
                    return Err(PegCheckError::PaymentMissing {
                        index: i,
                        script: script_label(script, network),
                        amount: owed,
                    })
                }
            }
        }
    }
    Ok(())
}

/// Checks that a finished transaction is the peg payment (outputs only; see
/// [`check_peg_outputs`]).
pub fn check_peg_tx(
    tx: &Transaction,
    payments: &[PegPayment],
    match_ids: &[MatchId],
    network: Network,
) -> Result<(), PegCheckError> {
    check_peg_outputs(&tx.output, payments, match_ids, network)
}

fn check_path_network(path: &DerivationPath, network: Network) -> Result<(), PegCheckError> {
    let steps: Vec<ChildNumber> = path.into_iter().copied().collect();
    let (Some(ChildNumber::Hardened { index: purpose }), Some(coin)) =
        (steps.first(), steps.get(1))
    else {
        return Ok(());
    };
    if ![44, 49, 84, 86].contains(purpose) {
        return Ok(());
    }
    let want = crate::keys::coin_type(network);
    match coin {
        ChildNumber::Hardened { index } if *index == want => Ok(()),
        _ => Err(PegCheckError::WrongNetwork(format!(
            "key path m/{path} uses coin type {coin}, {network} uses {want}'"
        ))),
    }
}

/// Checks what a PSBT says about its network: rexe's genesis record ([`genesis_key`]), the
/// global xpubs' version bytes, and the BIP44 coin type of every BIP44/49/84/86 key origin.
pub fn check_psbt_network(psbt: &Psbt, network: Network) -> Result<(), PegCheckError> {
    if let Some(g) = psbt.proprietary.get(&genesis_key()) {
        let want = ChainHash::using_genesis_block(network);
        if g.as_slice() != want.as_bytes() {
            let found = [
                Network::Bitcoin,
                Network::Testnet,
                Network::Testnet4,
                Network::Signet,
                Network::Regtest,
            ]
            .into_iter()
            .find(|n| ChainHash::using_genesis_block(*n).as_bytes() == g.as_slice())
            .map(|n| n.to_string())
            .unwrap_or_else(|| "an unknown chain".into());
            return Err(PegCheckError::WrongNetwork(format!(
                "it was built for {found}, this wallet is on {network}"
            )));
        }
    }
    let kind = NetworkKind::from(network);
    for xpub in psbt.xpub.keys() {
        if xpub.network != kind {
            return Err(PegCheckError::WrongNetwork(format!(
                "global xpub {xpub} is not a {network} key"
            )));
        }
    }
    for input in &psbt.inputs {
        for (_, path) in input.bip32_derivation.values() {
            check_path_network(path, network)?;
        }
        for (_, (_, path)) in input.tap_key_origins.values() {
            check_path_network(path, network)?;
        }
    }
    for output in &psbt.outputs {
        for (_, path) in output.bip32_derivation.values() {
            check_path_network(path, network)?;
        }
        for (_, (_, path)) in output.tap_key_origins.values() {
            check_path_network(path, network)?;
        }
    }
    Ok(())
}

/// Refuses (with an error naming what is wrong) a PSBT that is not the peg payment for
/// `payments` and `match_ids` on `network`: a payment missing, paying another script or less
/// than owed, the `OP_RETURN` missing, wrong or duplicated, or the PSBT built for another
/// network. Signing and broadcasting in [`crate::RexeWallet`] call it first.
pub fn check_peg_psbt(
    psbt: &Psbt,
    payments: &[PegPayment],
    match_ids: &[MatchId],
    network: Network,
) -> Result<(), PegCheckError> {
    check_psbt_network(psbt, network)?;
    check_peg_outputs(&psbt.unsigned_tx.output, payments, match_ids, network)
}

/// BIP174 combiner: merges the signatures (and other fields) of PSBTs of the same unsigned
/// transaction, e.g. one signed by each party of a [`join`].
pub fn combine(psbts: Vec<Psbt>) -> Result<Psbt> {
    let mut it = psbts.into_iter();
    let mut out = it
        .next()
        .ok_or_else(|| WalletError::Psbt("nothing to combine".into()))?;
    for (i, p) in it.enumerate() {
        out.combine(p).map_err(|e| {
            WalletError::Psbt(format!("PSBT #{} cannot be combined with #0: {e}", i + 1))
        })?;
    }
    Ok(out)
}

fn input_is_signed(i: &psbt::Input) -> bool {
    !i.partial_sigs.is_empty()
        || i.tap_key_sig.is_some()
        || !i.tap_script_sigs.is_empty()
        || i.final_script_sig.is_some()
        || i.final_script_witness.is_some()
}

/// Joins several parties' *unsigned* peg PSBTs into one transaction: all inputs and outputs
/// of every part, each party keeping its own change, except that every part's `RXPG`
/// `OP_RETURN` is replaced by one commitment to `match_ids` (all parties' ids).
///
/// Each part is built by its owner with [`crate::RexeWallet::build_peg_in`] for its own
/// payments and ids, so each part pays its own fee for a whole transaction (overhead and its
/// own `OP_RETURN` included): the joined transaction's fee rate is at least the lowest of the
/// parts'. Every party then checks the joined PSBT ([`check_join`] against its own part, and
/// [`check_peg_psbt`] against all payments), signs its inputs, and the copies are
/// [`combine`]d. Lock time: the lowest of the parts' block-height lock times.
pub fn join(parts: &[Psbt], match_ids: &[MatchId]) -> Result<Psbt> {
    let first = parts
        .first()
        .ok_or_else(|| WalletError::Join("no PSBT given".into()))?;
    if match_ids.is_empty() {
        return Err(WalletError::Peg(PegCheckError::NoMatchIds));
    }
    let mut tx = Transaction {
        version: first.unsigned_tx.version,
        lock_time: absolute::LockTime::ZERO,
        input: Vec::new(),
        output: Vec::new(),
    };
    let mut out = Psbt {
        unsigned_tx: tx.clone(),
        version: 0,
        xpub: BTreeMap::new(),
        proprietary: BTreeMap::new(),
        unknown: BTreeMap::new(),
        inputs: Vec::new(),
        outputs: Vec::new(),
    };
    let mut lock: Option<absolute::Height> = None;
    let mut seen = HashSet::new();
    for (n, p) in parts.iter().enumerate() {
        if p.version != 0 {
            return Err(WalletError::Join(format!(
                "PSBT #{n} is version {}",
                p.version
            )));
        }
        if p.inputs.len() != p.unsigned_tx.input.len()
            || p.outputs.len() != p.unsigned_tx.output.len()
        {
            return Err(WalletError::Join(format!("PSBT #{n} is malformed")));
        }
        if p.inputs.iter().any(input_is_signed) {
            return Err(WalletError::Join(format!(
                "PSBT #{n} is already signed: join unsigned PSBTs, then sign"
            )));
        }
        match p.unsigned_tx.lock_time {
            absolute::LockTime::Blocks(h) => lock = Some(lock.map_or(h, |l| l.min(h))),
            absolute::LockTime::Seconds(_) => {
                return Err(WalletError::Join(format!(
                    "PSBT #{n} has a time-based lock time"
                )))
            }
        }
        tx.version = tx.version.max(p.unsigned_tx.version);
        for (txin, pin) in p.unsigned_tx.input.iter().zip(&p.inputs) {
            if !seen.insert(txin.previous_output) {
                return Err(WalletError::Join(format!(
                    "input {} is spent by two parts",
                    txin.previous_output
                )));
            }
            tx.input.push(txin.clone());
            out.inputs.push(pin.clone());
        }
        for (txout, pout) in p.unsigned_tx.output.iter().zip(&p.outputs) {
            if is_rxpg(&txout.script_pubkey) {
                continue;
            }
            tx.output.push(txout.clone());
            out.outputs.push(pout.clone());
        }
        for (k, v) in &p.xpub {
            if let Some(prev) = out.xpub.insert(*k, v.clone()) {
                if &prev != v {
                    return Err(WalletError::Join(format!(
                        "conflicting origins for xpub {k}"
                    )));
                }
            }
        }
        for (k, v) in &p.proprietary {
            if k == &match_ids_key() {
                continue; // replaced by all parts' ids below
            }
            if let Some(prev) = out.proprietary.insert(k.clone(), v.clone()) {
                if &prev != v {
                    return Err(WalletError::Join(if k == &genesis_key() {
                        "the PSBTs are for different networks".into()
                    } else {
                        format!("conflicting proprietary field {k:?}")
                    }));
                }
            }
        }
        for (k, v) in &p.unknown {
            out.unknown.insert(k.clone(), v.clone());
        }
    }
    tx.lock_time = absolute::LockTime::Blocks(lock.unwrap_or(absolute::Height::ZERO));
    tx.output.push(TxOut {
        value: Amount::ZERO,
        script_pubkey: commitment_script(match_ids),
    });
    out.outputs.push(psbt::Output::default());
    out.unsigned_tx = tx;
    tag_match_ids(&mut out, match_ids);
    Ok(out)
}

/// Checks that `joined` still contains everything of `part` (one party's own PSBT given to
/// [`join`]): every input, and every output other than the `RXPG` one with the same script
/// and value (so the party's change is intact).
pub fn check_join(joined: &Psbt, part: &Psbt) -> Result<()> {
    let ins: HashSet<_> = joined
        .unsigned_tx
        .input
        .iter()
        .map(|i| i.previous_output)
        .collect();
    for i in &part.unsigned_tx.input {
        if !ins.contains(&i.previous_output) {
            return Err(WalletError::Join(format!(
                "input {} of our part is missing",
                i.previous_output
            )));
        }
    }
    let mut outs: Vec<&TxOut> = joined.unsigned_tx.output.iter().collect();
    for o in part
        .unsigned_tx
        .output
        .iter()
        .filter(|o| !is_rxpg(&o.script_pubkey))
    {
        match outs.iter().position(|j| *j == o) {
            Some(k) => {
                outs.swap_remove(k);
            }
            None => {
                return Err(WalletError::Join(format!(
                    "our output of {} to script {} is missing or changed",
                    o.value,
                    o.script_pubkey.to_hex_string()
                )))
            }
        }
    }
    Ok(())
}

/// The transaction of a fully finalized PSBT (refuses one with inputs left unsigned, and
/// absurd fee rates).
pub fn extract_tx(psbt: Psbt) -> Result<Transaction> {
    let missing: Vec<usize> = psbt
        .inputs
        .iter()
        .enumerate()
        .filter(|(_, i)| i.final_script_sig.is_none() && i.final_script_witness.is_none())
        .map(|(n, _)| n)
        .collect();
    if !missing.is_empty() {
        return Err(WalletError::NotFinalized(missing));
    }
    psbt.extract_tx()
        .map_err(|e| WalletError::Psbt(format!("cannot extract the transaction: {e}")))
}
