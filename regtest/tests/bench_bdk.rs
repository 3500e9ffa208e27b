//! Figure for README "Benchmarks": a bdk_wallet full scan (bdk_electrum, stop gap 20) of a
//! wallet with 1,000 transactions over Electrum against the embedded node. Ignored by default
//! (a measurement, not a check); run with
//! `cargo test -p rexe-regtest --release --test bench_bdk -- --ignored --nocapture`.

use std::time::Instant;

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{Message, Secp256k1};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::{
    absolute, transaction, Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness,
};
use rexe_regtest::{RegtestConfig, RegtestNode};
use serde_json::json;

mod bdk_support;
mod common;
use common::{coinbase_of, key, ok, Key};

const TXS: usize = 1_000;
/// Receive addresses the payments spread over (ten payments each).
const ADDRESSES: u32 = 100;
/// Payments per block.
const PER_BLOCK: usize = 250;

fn signed(k: &Key, prevs: &[(OutPoint, Amount)], outputs: Vec<TxOut>) -> Transaction {
    let mut tx = Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: prevs
            .iter()
            .map(|(p, _)| TxIn {
                previous_output: *p,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            })
            .collect(),
        output: outputs,
    };
    let secp = Secp256k1::new();
    for (i, (_, value)) in prevs.iter().enumerate() {
        let sighash = SighashCache::new(&tx)
            .p2wpkh_signature_hash(i, &k.addr.script_pubkey(), *value, EcdsaSighashType::All)
            .unwrap();
        let sig = bitcoin::ecdsa::Signature {
            signature: secp.sign_ecdsa(&Message::from_digest(sighash.to_byte_array()), &k.sk),
            sighash_type: EcdsaSighashType::All,
        };
        tx.input[i].witness = Witness::p2wpkh(&sig, &k.pk.0);
    }
    tx
}

#[test]
#[ignore = "measurement; run with --ignored --nocapture"]
fn bdk_full_scan_of_a_wallet_with_1000_transactions() {
    let node = RegtestNode::start(RegtestConfig::default()).unwrap();
    let funder = key(51);
    let wallet = bdk_support::wallet(52);
    ok(
        &node,
        "generatetoaddress",
        json!([101, funder.addr.to_string()]),
    );
    // One coinbase fans out to 1,000 outputs; each pays one wallet address in its own tx.
    let (cb, cb_value) = coinbase_of(&node, 1);
    let each = Amount::from_sat(100_000);
    let fan = signed(
        &funder,
        &[(cb, cb_value)],
        (0..TXS)
            .map(|_| TxOut {
                value: each,
                script_pubkey: funder.addr.script_pubkey(),
            })
            .chain([TxOut {
                value: cb_value - each * TXS as u64 - Amount::from_sat(100_000),
                script_pubkey: funder.addr.script_pubkey(),
            }])
            .collect(),
    );
    ok(&node, "sendrawtransaction", json!([serialize_hex(&fan)]));
    ok(
        &node,
        "generatetoaddress",
        json!([1, funder.addr.to_string()]),
    );
    let pay = Amount::from_sat(90_000);
    let mut expected = Amount::ZERO;
    for chunk in (0..TXS).collect::<Vec<_>>().chunks(PER_BLOCK) {
        for &i in chunk {
            let to = bdk_support::address(&wallet, i as u32 % ADDRESSES);
            let tx = signed(
                &funder,
                &[(OutPoint::new(fan.compute_txid(), i as u32), each)],
                vec![TxOut {
                    value: pay,
                    script_pubkey: to.script_pubkey(),
                }],
            );
            ok(&node, "sendrawtransaction", json!([serialize_hex(&tx)]));
            expected += pay;
        }
        ok(
            &node,
            "generatetoaddress",
            json!([1, funder.addr.to_string()]),
        );
    }

    let mut times = Vec::new();
    for _ in 0..3 {
        // A fresh wallet and a fresh client: nothing cached on either side.
        let mut w = bdk_support::wallet(52);
        let c = bdk_support::client(&node.electrum_url());
        let t = Instant::now();
        bdk_support::full_scan(&mut w, &c);
        times.push(t.elapsed().as_secs_f64());
        assert_eq!(w.transactions().count(), TXS);
        assert_eq!(w.balance().confirmed, expected);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let mut w = bdk_support::wallet(52);
    let c = bdk_support::client(&node.electrum_url());
    bdk_support::full_scan(&mut w, &c);
    let t = Instant::now();
    bdk_support::sync(&mut w, &c);
    let sync = t.elapsed().as_secs_f64();
    println!(
        "bdk_wallet full scan of {TXS} transactions on {ADDRESSES} addresses over Electrum: \
         median {:.2} s (min {:.2}, max {:.2}); a following sync: {:.3} s",
        times[1], times[0], times[2], sync
    );
}
