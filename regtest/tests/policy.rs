//! Bitcoin Core's default standardness policy (v28) at mempool admission, over JSON-RPC
//! `sendrawtransaction` and Electrum's broadcast: each reject reason with Core's code (-26)
//! and string, the same transactions accepted with `-acceptnonstdtxn` (except `tx-size-small`,
//! which Core applies regardless) and mined by `generateblock` (blocks are not subject to
//! policy), and payments to every payee type the peg accepts relayed down to their dust
//! threshold.

mod common;

use std::cell::Cell;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::hashes::Hash;
use bitcoin::key::TweakedPublicKey;
use bitcoin::secp256k1::{Message, Secp256k1};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::{
    absolute, transaction, Amount, OutPoint, PubkeyHash, ScriptBuf, Sequence, Transaction, TxIn,
    TxOut, Txid, WPubkeyHash, Witness,
};
use common::{coinbase_of, key, ok, rpc, Key};
use rexe_regtest::{RegtestConfig, RegtestNode};
use serde_json::{json, Value};

/// Value of every funding output.
const FUND: u64 = 1_000_000;

/// What a funding output pays to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// The test key (signed spends).
    Wpkh,
    /// P2SH of `OP_TRUE` (spent with the redeem script alone).
    P2shTrue,
    /// Bare `OP_TRUE` (non-standard to spend).
    BareTrue,
    /// P2SH of a redeem script with 16 signature operations (one more than standard).
    P2shSigops,
    /// A witness v2 program (unknown version: non-standard to spend).
    WitnessV2,
}

const LAYOUT: [(Kind, usize); 5] = [
    (Kind::Wpkh, 40),
    (Kind::P2shTrue, 3),
    (Kind::BareTrue, 3),
    (Kind::P2shSigops, 2),
    (Kind::WitnessV2, 2),
];

fn op_true() -> ScriptBuf {
    ScriptBuf::from_bytes(vec![0x51])
}

/// `OP_1 OP_IF OP_1 OP_ELSE OP_CHECKSIG x16 OP_ENDIF`: always true, 16 sigops counted.
fn sigops_redeem() -> ScriptBuf {
    let mut b = vec![0x51, 0x63, 0x51, 0x67];
    b.extend([0xac; 16]);
    b.push(0x68);
    ScriptBuf::from_bytes(b)
}

fn witness_v2() -> ScriptBuf {
    ScriptBuf::from_bytes([&[0x52, 0x20][..], &[9u8; 32][..]].concat())
}

fn push(data: &[u8]) -> Vec<u8> {
    let mut b = ScriptBuf::new();
    b.push_slice(<&bitcoin::script::PushBytes>::try_from(data).unwrap());
    b.into_bytes()
}

fn out(script: ScriptBuf, sat: u64) -> TxOut {
    TxOut {
        value: Amount::from_sat(sat),
        script_pubkey: script,
    }
}

/// A node with one confirmed transaction whose outputs follow [`LAYOUT`], mined with
/// `generateblock` (the bare `OP_TRUE` outputs are not standard).
struct Funded {
    node: RegtestNode,
    a: Key,
    funding: Txid,
    used: Vec<Cell<usize>>,
}

impl Funded {
    fn new(accept_nonstd_txn: bool) -> Funded {
        let node = RegtestNode::start(RegtestConfig {
            accept_nonstd_txn,
            ..RegtestConfig::default()
        })
        .unwrap();
        let a = key(71);
        ok(&node, "generatetoaddress", json!([101, a.addr.to_string()]));
        let (prev, value) = coinbase_of(&node, 1);
        let mut outputs = Vec::new();
        for (kind, n) in LAYOUT {
            let script = match kind {
                Kind::Wpkh => a.addr.script_pubkey(),
                Kind::P2shTrue => op_true().to_p2sh(),
                Kind::BareTrue => op_true(),
                Kind::P2shSigops => sigops_redeem().to_p2sh(),
                Kind::WitnessV2 => witness_v2(),
            };
            outputs.extend((0..n).map(|_| out(script.clone(), FUND)));
        }
        let mut tx = build(2, vec![input(prev, vec![])], outputs);
        sign(&a, &mut tx, 0, value);
        ok(
            &node,
            "generateblock",
            json!([a.addr.to_string(), [serialize_hex(&tx)]]),
        );
        Funded {
            node,
            a,
            funding: tx.compute_txid(),
            used: LAYOUT.iter().map(|_| Cell::new(0)).collect(),
        }
    }

    /// The next unused funding output of `kind`.
    fn coin(&self, kind: Kind) -> OutPoint {
        let mut base = 0;
        for (i, (k, n)) in LAYOUT.iter().enumerate() {
            if *k == kind {
                let u = self.used[i].get();
                assert!(u < *n, "no {kind:?} funding output left");
                self.used[i].set(u + 1);
                return OutPoint::new(self.funding, (base + u) as u32);
            }
            base += n;
        }
        unreachable!()
    }

    /// A signed spend of a fresh P2WPKH funding output to `outputs`.
    fn pay(&self, version: i32, outputs: Vec<TxOut>) -> Transaction {
        let mut tx = build(version, vec![input(self.coin(Kind::Wpkh), vec![])], outputs);
        sign(&self.a, &mut tx, 0, Amount::from_sat(FUND));
        tx
    }

    fn send(&self, tx: &Transaction) -> Value {
        rpc(&self.node, "sendrawtransaction", json!([serialize_hex(tx)]))
    }
}

fn input(prev: OutPoint, script_sig: Vec<u8>) -> TxIn {
    TxIn {
        previous_output: prev,
        script_sig: ScriptBuf::from_bytes(script_sig),
        sequence: Sequence::MAX,
        witness: Witness::new(),
    }
}

fn build(version: i32, input: Vec<TxIn>, output: Vec<TxOut>) -> Transaction {
    Transaction {
        version: transaction::Version(version),
        lock_time: absolute::LockTime::ZERO,
        input,
        output,
    }
}

/// Signs input `i` of `tx` as a P2WPKH spend by `k` of `value`.
fn sign(k: &Key, tx: &mut Transaction, i: usize, value: Amount) {
    let sighash = SighashCache::new(&*tx)
        .p2wpkh_signature_hash(i, &k.addr.script_pubkey(), value, EcdsaSighashType::All)
        .unwrap();
    let sig = bitcoin::ecdsa::Signature {
        signature: Secp256k1::new()
            .sign_ecdsa(&Message::from_digest(sighash.to_byte_array()), &k.sk),
        sighash_type: EcdsaSighashType::All,
    };
    tx.input[i].witness = Witness::p2wpkh(&sig, &k.pk.0);
}

fn to_key() -> ScriptBuf {
    key(72).addr.script_pubkey()
}

/// One transaction per policy rule, with the reason Core gives for it.
fn nonstandard_cases(f: &Funded) -> Vec<(&'static str, Transaction)> {
    let spend_to_key = |prev: OutPoint, script_sig: Vec<u8>| {
        build(
            2,
            vec![input(prev, script_sig)],
            vec![out(to_key(), FUND - 10_000)],
        )
    };
    let mut big_sig = Vec::new();
    for _ in 0..4 {
        big_sig.extend(push(&[0x5a; 520]));
    }
    big_sig.extend(push(op_true().as_bytes()));
    let multisig_1_of_4 = {
        let mut b = vec![0x51];
        for i in 0..4u8 {
            b.extend(push(&[&[2u8][..], &[i + 1; 32][..]].concat()));
        }
        b.extend([0x54, 0xae]);
        ScriptBuf::from_bytes(b)
    };
    let big_data = ScriptBuf::from_bytes([&[0x6a][..], &[0u8; 100_000][..]].concat());
    vec![
        ("version", f.pay(4, vec![out(to_key(), FUND - 10_000)])),
        ("version", f.pay(0, vec![out(to_key(), FUND - 10_000)])),
        ("tx-size", f.pay(2, vec![out(big_data, 0)])),
        (
            "scriptsig-size",
            spend_to_key(f.coin(Kind::P2shTrue), big_sig),
        ),
        (
            "scriptsig-not-pushonly",
            // OP_NOP, then the spent OP_TRUE.
            spend_to_key(f.coin(Kind::BareTrue), vec![0x61]),
        ),
        (
            "scriptpubkey",
            f.pay(2, vec![out(multisig_1_of_4, FUND - 10_000)]),
        ),
        (
            "scriptpubkey",
            f.pay(
                2,
                vec![out(to_key(), FUND - 20_000), out(op_true(), 10_000)],
            ),
        ),
        (
            "dust",
            f.pay(2, vec![out(to_key(), FUND - 10_000), out(to_key(), 293)]),
        ),
        (
            "bad-txns-nonstandard-inputs",
            spend_to_key(f.coin(Kind::BareTrue), vec![]),
        ),
        (
            "bad-txns-nonstandard-inputs",
            spend_to_key(f.coin(Kind::P2shSigops), push(sigops_redeem().as_bytes())),
        ),
        (
            "bad-txns-nonstandard-inputs",
            spend_to_key(f.coin(Kind::WitnessV2), vec![]),
        ),
    ]
}

/// A 62-byte transaction (without witness): one input, one `OP_RETURN OP_0` output.
fn too_small(f: &Funded) -> Transaction {
    let tx = f.pay(2, vec![out(ScriptBuf::new_op_return([]), 0)]);
    assert_eq!(tx.base_size(), 62);
    tx
}

fn assert_error(v: &Value, code: i64, message: &str) {
    assert_eq!(v["error"]["code"], json!(code), "{message}: {v}");
    assert_eq!(v["error"]["message"], json!(message), "{v}");
}

#[test]
fn each_policy_rule_rejects_with_cores_reason_and_blocks_still_take_them() {
    let f = Funded::new(false);
    let cases = nonstandard_cases(&f);
    for (reason, tx) in &cases {
        assert_error(&f.send(tx), -26, reason);
        let t = ok(&f.node, "testmempoolaccept", json!([[serialize_hex(tx)]]));
        assert_eq!(t[0]["allowed"], json!(false), "{reason}");
        assert_eq!(t[0]["reject-reason"], json!(reason), "{t}");
    }
    let small = too_small(&f);
    assert_error(&f.send(&small), -26, "tx-size-small");
    assert_eq!(ok(&f.node, "getrawmempool", json!([])), json!([]));

    // Electrum's broadcast goes through the same admission.
    let s = TcpStream::connect(f.node.electrum_addr).unwrap();
    let mut rd = BufReader::new(s.try_clone().unwrap());
    let req = json!({"jsonrpc": "2.0", "id": 1, "method": "blockchain.transaction.broadcast",
        "params": [serialize_hex(&cases[0].1)]});
    (&s).write_all(format!("{req}\n").as_bytes()).unwrap();
    let mut line = String::new();
    rd.read_line(&mut line).unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["error"]["message"], json!("version"), "{v}");

    // Policy is not consensus: one block mines every one of them.
    let mut raw: Vec<String> = cases.iter().map(|(_, t)| serialize_hex(t)).collect();
    raw.push(serialize_hex(&small));
    let before = ok(&f.node, "getblockcount", json!([])).as_u64().unwrap();
    ok(&f.node, "generateblock", json!([f.a.addr.to_string(), raw]));
    assert_eq!(ok(&f.node, "getblockcount", json!([])), json!(before + 1));
    for (_, tx) in &cases {
        let v = ok(
            &f.node,
            "getrawtransaction",
            json!([tx.compute_txid().to_string(), true]),
        );
        assert_eq!(v["confirmations"], json!(1));
    }
}

#[test]
fn acceptnonstdtxn_admits_the_same_transactions_but_not_tiny_ones() {
    let f = Funded::new(true);
    let cases = nonstandard_cases(&f);
    for (reason, tx) in &cases {
        let v = f.send(tx);
        assert!(v["error"].is_null(), "{reason}: {v}");
        assert_eq!(v["result"], json!(tx.compute_txid().to_string()));
    }
    assert_eq!(
        ok(&f.node, "getrawmempool", json!([]))
            .as_array()
            .unwrap()
            .len(),
        cases.len()
    );
    // Core applies tx-size-small whatever -acceptnonstdtxn says (CVE-2017-12842).
    assert_error(&f.send(&too_small(&f)), -26, "tx-size-small");
}

/// Payments to every payee type the peg accepts are relayed down to the type's dust
/// threshold (the peg's `minimal_non_dust`), and refused as `dust` one sat below it; other
/// standard outputs Core relays are relayed too.
#[test]
fn payments_to_the_pegs_payee_types_are_relayed() {
    let f = Funded::new(false);
    let secp = Secp256k1::new();
    let k = key(73);
    let (xonly, _) = k.sk.x_only_public_key(&secp);
    let witness_script = ScriptBuf::from_bytes(vec![0x51]);
    let payees = [
        ("P2PKH", ScriptBuf::new_p2pkh(&PubkeyHash::from(k.pk)), 546),
        ("P2SH", witness_script.to_p2sh(), 540),
        (
            "P2WPKH",
            ScriptBuf::new_p2wpkh(&WPubkeyHash::from(k.pk)),
            294,
        ),
        ("P2WSH", witness_script.to_p2wsh(), 330),
        (
            "P2TR",
            ScriptBuf::new_p2tr_tweaked(TweakedPublicKey::dangerous_assume_tweaked(xonly)),
            330,
        ),
    ];
    for (name, script, dust) in payees {
        assert_eq!(script.minimal_non_dust().to_sat(), dust, "{name}");
        assert_eq!(
            rexe_regtest::policy::dust_threshold(&out(script.clone(), 0)).to_sat(),
            dust,
            "{name}"
        );
        let change = out(to_key(), FUND - 10_000 - dust);
        let at_dust = f.pay(2, vec![change.clone(), out(script.clone(), dust)]);
        let v = f.send(&at_dust);
        assert!(v["error"].is_null(), "{name}: {v}");
        let below = f.pay(2, vec![change, out(script, dust - 1)]);
        assert_error(&f.send(&below), -26, "dust");
    }
    // Other outputs Core's default policy relays: bare multisig up to 3 keys, one OP_RETURN
    // of 83 bytes, unknown witness versions, pay-to-anchor; and version 3 (TRUC).
    let key_push = |i: u8| push(&[&[3u8][..], &[i; 32][..]].concat());
    let multisig = |m: u8, n: u8| {
        let mut b = vec![0x50 + m];
        for i in 0..n {
            b.extend(key_push(i + 1));
        }
        b.extend([0x50 + n, 0xae]);
        ScriptBuf::from_bytes(b)
    };
    let relayed = [
        out(multisig(1, 1), 1_000),
        out(multisig(2, 3), 1_000),
        out(
            ScriptBuf::from_bytes([&[0x6a, 0x4c, 80][..], &[7u8; 80][..]].concat()),
            0,
        ),
        out(witness_v2(), 330),
        out(ScriptBuf::from_bytes(vec![0x51, 0x02, 0x4e, 0x73]), 240),
    ];
    for o in relayed {
        let tx = f.pay(2, vec![out(to_key(), FUND - 20_000), o.clone()]);
        let v = f.send(&tx);
        assert!(v["error"].is_null(), "{o:?}: {v}");
    }
    let v3 = f.pay(3, vec![out(to_key(), FUND - 10_000)]);
    let v = f.send(&v3);
    assert!(v["error"].is_null(), "{v}");
    // Since Core 30: null data past 83 bytes, and several OP_RETURN outputs (their scripts
    // 100,000 bytes in all, which a standard weight cannot pass anyway).
    let big = ScriptBuf::from_bytes([&[0x6a, 0x4d, 0xe8, 0x03][..], &[7u8; 1_000][..]].concat());
    let two = f.pay(
        2,
        vec![
            out(to_key(), FUND - 10_000),
            out(ScriptBuf::new_op_return([1]), 0),
            out(big, 0),
        ],
    );
    let v = f.send(&two);
    assert!(v["error"].is_null(), "{v}");
    // Bare multisig with more than 3 keys is not.
    let tx = f.pay(2, vec![out(multisig(1, 4), FUND - 10_000)]);
    assert_error(&f.send(&tx), -26, "scriptpubkey");
}
