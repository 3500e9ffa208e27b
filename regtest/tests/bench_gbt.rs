//! Figure for README "Benchmarks": `getblocktemplate` over HTTP with 5,000 transactions in
//! the mempool. Ignored by default (it is a measurement, not a check); run with
//! `cargo test -p rexe-regtest --release --test bench_gbt -- --ignored --nocapture`.

use std::io::Write;
use std::net::TcpStream;
use std::time::Instant;

use bitcoin::consensus::encode::{deserialize, serialize_hex};
use bitcoin::hashes::Hash;
use bitcoin::hex::{DisplayHex, FromHex};
use bitcoin::secp256k1::{Message, Secp256k1};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::{
    absolute, transaction, Amount, Block, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut,
    Witness,
};
use rexe_regtest::{RegtestConfig, RegtestNode};
use serde_json::{json, Value};

mod common;
use common::*;

fn sign(k: &Key, tx: &mut Transaction, i: usize, value: Amount) {
    let secp = Secp256k1::new();
    let sighash = SighashCache::new(&*tx)
        .p2wpkh_signature_hash(i, &k.addr.script_pubkey(), value, EcdsaSighashType::All)
        .unwrap();
    let sig = secp.sign_ecdsa(&Message::from_digest(sighash.to_byte_array()), &k.sk);
    let sig = bitcoin::ecdsa::Signature {
        signature: sig,
        sighash_type: EcdsaSighashType::All,
    };
    tx.input[i].witness = Witness::p2wpkh(&sig, &k.pk.0);
}

fn tx(inputs: Vec<OutPoint>, outputs: Vec<TxOut>) -> Transaction {
    Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: inputs
            .into_iter()
            .map(|previous_output| TxIn {
                previous_output,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            })
            .collect(),
        output: outputs,
    }
}

#[test]
#[ignore = "measurement; run with --ignored --nocapture"]
fn getblocktemplate_with_5000_mempool_transactions() {
    let node = RegtestNode::start(RegtestConfig::default()).unwrap();
    let k = key(9);
    ok(&node, "generatetoaddress", json!([102, k.addr.to_string()]));
    // Two fan-outs of 2,500 outputs each, confirmed, then 5,000 one-input spends.
    let mut coins = Vec::new();
    for h in [1u64, 2] {
        let hash = ok(&node, "getblockhash", json!([h]));
        let raw = ok(&node, "getblock", json!([hash, 0]));
        let block: Block =
            deserialize(&Vec::<u8>::from_hex(raw.as_str().unwrap()).unwrap()).unwrap();
        let cb = &block.txdata[0];
        let value = cb.output[0].value;
        let each = Amount::from_sat((value.to_sat() - 1_000_000) / 2_500);
        let outs = (0..2_500)
            .map(|_| TxOut {
                value: each,
                script_pubkey: k.addr.script_pubkey(),
            })
            .collect();
        let mut t = tx(vec![OutPoint::new(cb.compute_txid(), 0)], outs);
        sign(&k, &mut t, 0, value);
        ok(&node, "sendrawtransaction", json!([serialize_hex(&t)]));
        let txid = t.compute_txid();
        coins.extend((0..2_500).map(|v| (OutPoint::new(txid, v), each)));
    }
    ok(&node, "generatetoaddress", json!([1, k.addr.to_string()]));
    let start = Instant::now();
    for (op, value) in coins {
        let mut t = tx(
            vec![op],
            vec![TxOut {
                value: value - Amount::from_sat(1_000),
                script_pubkey: k.addr.script_pubkey(),
            }],
        );
        sign(&k, &mut t, 0, value);
        let r = rexe_regtest::rpc::call(
            &node.shared,
            "sendrawtransaction",
            &json!([serialize_hex(&t)]),
        );
        assert!(r.is_ok(), "{r:?}");
    }
    let accept = start.elapsed();
    let info = ok(&node, "getmempoolinfo", json!([]));
    assert_eq!(info["size"], json!(5_000));
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let gbt = ok(&node, "getblocktemplate", json!([{"rules": ["segwit"]}]));
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(gbt["transactions"].as_array().unwrap().len(), 5_000);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    // Electrum: history of the script that received all of it, after mining the 5,000.
    ok(&node, "generatetoaddress", json!([1, k.addr.to_string()]));
    let mut sh =
        bitcoin::hashes::sha256::Hash::hash(k.addr.script_pubkey().as_bytes()).to_byte_array();
    sh.reverse();
    let el = TcpStream::connect(node.electrum_addr).unwrap();
    let mut rd = std::io::BufReader::new(el.try_clone().unwrap());
    let mut wr = el;
    let req = json!({"id": 1, "method": "blockchain.scripthash.get_history", "params": [sh.to_lower_hex_string()]});
    let t = Instant::now();
    wr.write_all(format!("{req}\n").as_bytes()).unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut rd, &mut line).unwrap();
    let el_ms = t.elapsed().as_secs_f64() * 1000.0;
    let v: Value = serde_json::from_str(&line).unwrap();
    let entries = v["result"].as_array().unwrap().len();
    println!("electrum get_history of a script with {entries} transactions: {el_ms:.1} ms");
    println!(
        "5,000 sendrawtransaction (in-process, signed, signing included): {:.0} ms",
        accept.as_secs_f64() * 1000.0
    );
    println!(
        "getblocktemplate with 5,000 mempool txs over HTTP: median {:.1} ms (min {:.1}, max {:.1})",
        times[2], times[0], times[4]
    );
}
