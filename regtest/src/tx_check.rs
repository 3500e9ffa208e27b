//! Context-free transaction rules, Bitcoin Core's `CheckTransaction`: what every transaction
//! must satisfy before its inputs are even looked up, in a block and in the mempool alike.
//! Duplicate inputs are the inflation bug of CVE-2018-17144.

use std::collections::HashSet;

use bitcoin::{Amount, Transaction, Weight};

/// Core's `MAX_MONEY`: no amount or sum of amounts may exceed 21 million BTC.
pub const MAX_MONEY: Amount = Amount::from_sat(21_000_000 * 100_000_000);

/// Checks `tx` on its own; the error is Core's reject reason.
pub fn check_transaction(tx: &Transaction) -> Result<(), &'static str> {
    if tx.input.is_empty() {
        return Err("bad-txns-vin-empty");
    }
    if tx.output.is_empty() {
        return Err("bad-txns-vout-empty");
    }
    // Core measures the serialization without witness, scaled to weight.
    if Weight::from_non_witness_data_size(tx.base_size() as u64) > Weight::MAX_BLOCK {
        return Err("bad-txns-oversize");
    }
    let mut total = Amount::ZERO;
    for o in &tx.output {
        // Amounts are signed on the wire; rust-bitcoin reads them unsigned.
        if o.value.to_sat() > i64::MAX as u64 {
            return Err("bad-txns-vout-negative");
        }
        if o.value > MAX_MONEY {
            return Err("bad-txns-vout-toolarge");
        }
        total += o.value;
        if total > MAX_MONEY {
            return Err("bad-txns-txouttotal-toolarge");
        }
    }
    let mut seen = HashSet::with_capacity(tx.input.len());
    if !tx.input.iter().all(|i| seen.insert(i.previous_output)) {
        return Err("bad-txns-inputs-duplicate");
    }
    if tx.is_coinbase() {
        let len = tx.input[0].script_sig.len();
        if !(2..=100).contains(&len) {
            return Err("bad-cb-length");
        }
    } else if tx.input.iter().any(|i| i.previous_output.is_null()) {
        return Err("bad-txns-prevout-null");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;
    use bitcoin::{
        absolute, transaction, OutPoint, ScriptBuf, Sequence, TxIn, TxOut, Txid, Witness,
    };

    fn input(prev: OutPoint, script_sig: ScriptBuf) -> TxIn {
        TxIn {
            previous_output: prev,
            script_sig,
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }
    }

    fn out(sat: u64) -> TxOut {
        TxOut {
            value: Amount::from_sat(sat),
            script_pubkey: ScriptBuf::new_op_return([]),
        }
    }

    fn tx(input: Vec<TxIn>, output: Vec<TxOut>) -> Transaction {
        Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input,
            output,
        }
    }

    fn prev(n: u32) -> OutPoint {
        OutPoint::new(Txid::from_byte_array([1; 32]), n)
    }

    #[test]
    fn each_rule_rejects_its_transaction() {
        let ok = tx(vec![input(prev(0), ScriptBuf::new())], vec![out(1)]);
        assert_eq!(check_transaction(&ok), Ok(()));
        let cases = [
            (tx(vec![], vec![out(1)]), "bad-txns-vin-empty"),
            (
                tx(vec![input(prev(0), ScriptBuf::new())], vec![]),
                "bad-txns-vout-empty",
            ),
            (
                tx(vec![input(prev(0), ScriptBuf::new())], vec![out(u64::MAX)]),
                "bad-txns-vout-negative",
            ),
            (
                tx(
                    vec![input(prev(0), ScriptBuf::new())],
                    vec![out(MAX_MONEY.to_sat() + 1)],
                ),
                "bad-txns-vout-toolarge",
            ),
            (
                tx(
                    vec![input(prev(0), ScriptBuf::new())],
                    vec![out(MAX_MONEY.to_sat()), out(1)],
                ),
                "bad-txns-txouttotal-toolarge",
            ),
            (
                tx(
                    vec![
                        input(prev(0), ScriptBuf::new()),
                        input(prev(0), ScriptBuf::new()),
                    ],
                    vec![out(1)],
                ),
                "bad-txns-inputs-duplicate",
            ),
            (
                tx(
                    vec![
                        input(prev(0), ScriptBuf::new()),
                        input(OutPoint::null(), ScriptBuf::new()),
                    ],
                    vec![out(1)],
                ),
                "bad-txns-prevout-null",
            ),
            (
                tx(
                    vec![input(OutPoint::null(), ScriptBuf::from_bytes(vec![1]))],
                    vec![out(1)],
                ),
                "bad-cb-length",
            ),
            (
                tx(
                    vec![input(OutPoint::null(), ScriptBuf::from_bytes(vec![0; 101]))],
                    vec![out(1)],
                ),
                "bad-cb-length",
            ),
            (
                tx(
                    vec![input(prev(0), ScriptBuf::from_bytes(vec![0; 1_000_001]))],
                    vec![out(1)],
                ),
                "bad-txns-oversize",
            ),
        ];
        for (t, reason) in cases {
            assert_eq!(check_transaction(&t), Err(reason));
        }
        let coinbase = tx(
            vec![input(OutPoint::null(), ScriptBuf::from_bytes(vec![0; 100]))],
            vec![out(1)],
        );
        assert_eq!(check_transaction(&coinbase), Ok(()));
    }

    #[test]
    fn witness_bytes_do_not_count_towards_oversize() {
        let mut big = tx(vec![input(prev(0), ScriptBuf::new())], vec![out(1)]);
        big.input[0].witness = Witness::from_slice(&[vec![0u8; 1_500_000]]);
        assert_eq!(check_transaction(&big), Ok(()));
    }
}
