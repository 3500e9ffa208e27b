//! Core's context-free transaction rules (`CheckTransaction`) over the RPC, in the mempool and
//! in blocks: the CVE-2018-17144 double spend inside one transaction, amounts above
//! `MAX_MONEY`, and coinbase script lengths.

mod common;

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::hashes::Hash;
use bitcoin::script::PushBytesBuf;
use bitcoin::secp256k1::{Message, Secp256k1};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::{
    absolute, transaction, Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness,
};
use common::{block_from_template, coinbase_of, grind, key, ok, rpc, Key};
use rexe_regtest::{RegtestConfig, RegtestNode};
use serde_json::{json, Value};

/// Spends `prevs` (outputs of `value` paying `k`) to one output of `out`, every input signed.
fn spend_all(k: &Key, prevs: &[OutPoint], value: Amount, out: Amount) -> Transaction {
    let mut tx = Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: prevs
            .iter()
            .map(|p| TxIn {
                previous_output: *p,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            })
            .collect(),
        output: vec![TxOut {
            value: out,
            script_pubkey: key(92).addr.script_pubkey(),
        }],
    };
    let secp = Secp256k1::new();
    for i in 0..prevs.len() {
        let sighash = SighashCache::new(&tx)
            .p2wpkh_signature_hash(i, &k.addr.script_pubkey(), value, EcdsaSighashType::All)
            .unwrap();
        let sig = bitcoin::ecdsa::Signature {
            signature: secp.sign_ecdsa(&Message::from_digest(sighash.to_byte_array()), &k.sk),
            sighash_type: EcdsaSighashType::All,
        };
        tx.input[i].witness = Witness::p2wpkh(&sig, &k.pk.0);
    }
    tx
}

fn generate_with(node: &RegtestNode, tx: &Transaction) -> Value {
    rpc(
        node,
        "generateblock",
        json!([key(93).addr.to_string(), [serialize_hex(tx)]]),
    )
}

fn assert_error(v: &Value, code: i64, message: &str) {
    assert_eq!(v["error"]["code"], json!(code), "{v}");
    assert_eq!(v["error"]["message"], json!(message), "{v}");
}

#[test]
fn one_coin_spent_twice_in_a_transaction_is_rejected_everywhere() {
    let node = RegtestNode::start(RegtestConfig::default()).unwrap();
    let a = key(91);
    ok(&node, "generatetoaddress", json!([101, a.addr.to_string()]));
    let (prev, value) = coinbase_of(&node, 1);
    // Both inputs carry valid signatures: only the duplicate rule stands in the way of
    // paying out twice the coin's value.
    let twice = spend_all(
        &a,
        &[prev, prev],
        value,
        value * 2 - Amount::from_sat(10_000),
    );
    let v = rpc(&node, "sendrawtransaction", json!([serialize_hex(&twice)]));
    assert_error(&v, -26, "bad-txns-inputs-duplicate");
    assert_error(
        &generate_with(&node, &twice),
        -25,
        "TestBlockValidity failed: bad-txns-inputs-duplicate",
    );
    assert_eq!(ok(&node, "getblockcount", json!([])), json!(101));
    let once = spend_all(&a, &[prev], value, value - Amount::from_sat(10_000));
    ok(&node, "sendrawtransaction", json!([serialize_hex(&once)]));
}

#[test]
fn outputs_above_max_money_are_rejected() {
    let node = RegtestNode::start(RegtestConfig::default()).unwrap();
    let a = key(94);
    ok(&node, "generatetoaddress", json!([101, a.addr.to_string()]));
    let (prev, value) = coinbase_of(&node, 1);
    let too_much = spend_all(
        &a,
        &[prev],
        value,
        Amount::from_sat(21_000_000 * 100_000_000 + 1),
    );
    let v = rpc(
        &node,
        "sendrawtransaction",
        json!([serialize_hex(&too_much)]),
    );
    assert_error(&v, -26, "bad-txns-vout-toolarge");
    assert_error(
        &generate_with(&node, &too_much),
        -25,
        "TestBlockValidity failed: bad-txns-vout-toolarge",
    );
}

#[test]
fn coinbase_script_longer_than_100_bytes_is_bad_cb_length() {
    let node = RegtestNode::start(RegtestConfig::default()).unwrap();
    let a = key(95);
    let t = ok(&node, "getblocktemplate", json!([{"rules": ["segwit"]}]));
    let with_sig_len = |len: usize| {
        let mut b = block_from_template(&t, &a.addr, 0, 0, 0);
        let mut sig = b.txdata[0].input[0].script_sig.to_bytes();
        let pad = len - sig.len() - 2;
        sig.extend(
            ScriptBuf::builder()
                .push_slice(PushBytesBuf::try_from(vec![0x51; pad]).unwrap())
                .into_script()
                .as_bytes(),
        );
        assert_eq!(sig.len(), len);
        b.txdata[0].input[0].script_sig = ScriptBuf::from_bytes(sig);
        b.header.merkle_root = b.compute_merkle_root().unwrap();
        grind(&mut b);
        b
    };
    let sub = |b| ok(&node, "submitblock", json!([serialize_hex(&b)]));
    assert_eq!(sub(with_sig_len(101)), json!("bad-cb-length"));
    assert_eq!(sub(with_sig_len(100)), Value::Null);
}
