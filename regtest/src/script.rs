//! Script and witness verification of a transaction's inputs by libbitcoinconsensus from
//! Bitcoin Core 26 (the `bitcoinconsensus` 0.106 crate compiles it from Core's sources), with
//! every soft fork regtest buries from genesis: P2SH, strict DER, NULLDUMMY, CLTV, CSV, segwit
//! and taproot (BIP341 key and script paths, BIP342 tapscript).
//!
//! rust-bitcoin 0.32's own `bitcoinconsensus` feature links Core 25's library, which has no
//! taproot entry point; this module calls Core 26's `verify_script_with_spent_outputs`, which
//! needs every spent output of the transaction for the BIP341 signature hash.

use bitcoin::consensus::encode::serialize;
use bitcoin::{Transaction, TxOut};
use bitcoinconsensus::{Utxo, VERIFY_ALL_PRE_TAPROOT, VERIFY_TAPROOT};

/// Core's consensus flags on regtest (`GetBlockScriptFlags` with every deployment active).
const FLAGS: u32 = VERIFY_ALL_PRE_TAPROOT | VERIFY_TAPROOT;

/// An input whose scripts do not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mandatory-script-verify-flag-failed (input {input}: {reason})")]
pub struct ScriptError {
    /// Index of the failing input.
    pub input: usize,
    /// The library's verdict.
    pub reason: String,
}

/// Verifies every input of `tx` against `prevouts` (the outputs it spends, in input order).
pub fn verify_inputs(tx: &Transaction, prevouts: &[TxOut]) -> Result<(), ScriptError> {
    if prevouts.len() != tx.input.len() {
        return Err(ScriptError {
            input: prevouts.len().min(tx.input.len()),
            reason: "spent outputs do not match the inputs".into(),
        });
    }
    let raw = serialize(tx);
    // The pointers borrow `prevouts`, which outlives every call below.
    let utxos: Vec<Utxo> = prevouts
        .iter()
        .map(|o| Utxo {
            script_pubkey: o.script_pubkey.as_bytes().as_ptr(),
            script_pubkey_len: o.script_pubkey.len() as u32,
            value: o.value.to_sat() as i64,
        })
        .collect();
    for (i, prev) in prevouts.iter().enumerate() {
        bitcoinconsensus::verify_with_flags(
            prev.script_pubkey.as_bytes(),
            prev.value.to_sat(),
            &raw,
            Some(&utxos),
            i,
            FLAGS,
        )
        .map_err(|e| ScriptError {
            input: i,
            reason: match e {
                // The library reports script failures without Core's script error.
                bitcoinconsensus::Error::ERR_SCRIPT => "script evaluation failed".into(),
                other => other.to_string(),
            },
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::opcodes::all::{OP_CHECKMULTISIG, OP_PUSHBYTES_0};
    use bitcoin::script::Builder;
    use bitcoin::secp256k1::{Secp256k1, SecretKey};
    use bitcoin::taproot::{LeafVersion, TaprootBuilder};
    use bitcoin::{absolute, transaction, Amount, OutPoint, ScriptBuf, Sequence, TxIn, Witness};

    fn spend(witness: Witness) -> Transaction {
        Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::null(),
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness,
            }],
            output: vec![TxOut {
                value: Amount::from_sat(1_000),
                script_pubkey: ScriptBuf::new_op_return([]),
            }],
        }
    }

    fn zero_of_zero() -> ScriptBuf {
        Builder::new()
            .push_opcode(OP_PUSHBYTES_0)
            .push_opcode(OP_PUSHBYTES_0)
            .push_opcode(OP_PUSHBYTES_0)
            .push_opcode(OP_CHECKMULTISIG)
            .into_script()
    }

    #[test]
    fn zero_of_zero_multisig_passes_in_segwit_v0_and_fails_in_tapscript() {
        let script = zero_of_zero();
        let p2wsh = TxOut {
            value: Amount::from_sat(2_000),
            script_pubkey: ScriptBuf::new_p2wsh(&script.wscript_hash()),
        };
        let tx = spend(Witness::from_slice(&[script.to_bytes()]));
        assert_eq!(verify_inputs(&tx, &[p2wsh]), Ok(()));

        let secp = Secp256k1::new();
        let internal = SecretKey::from_slice(&[7; 32])
            .unwrap()
            .x_only_public_key(&secp)
            .0;
        let info = TaprootBuilder::new()
            .add_leaf(0, script.clone())
            .unwrap()
            .finalize(&secp, internal)
            .unwrap();
        let control = info
            .control_block(&(script.clone(), LeafVersion::TapScript))
            .unwrap();
        let p2tr = TxOut {
            value: Amount::from_sat(2_000),
            script_pubkey: ScriptBuf::new_p2tr_tweaked(info.output_key()),
        };
        let tx = spend(Witness::from_slice(&[
            script.to_bytes(),
            control.serialize(),
        ]));
        let err = verify_inputs(&tx, &[p2tr]).unwrap_err();
        assert_eq!(err.input, 0);
    }

    #[test]
    fn spent_outputs_must_match_the_inputs() {
        let tx = spend(Witness::new());
        assert!(verify_inputs(&tx, &[]).is_err());
    }
}
