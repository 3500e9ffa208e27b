//! Taproot spends verified by Core 26's libbitcoinconsensus: key path (BIP341) and script
//! path (BIP341 control blocks, BIP342 tapscript), each accepted when honest and rejected
//! with `mandatory-script-verify-flag-failed` when one byte or rule is broken, in the mempool
//! and in blocks.

mod common;

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::hashes::{sha256, Hash};
use bitcoin::key::{Keypair, TapTweak};
use bitcoin::opcodes::all::{OP_CHECKMULTISIG, OP_CHECKSIG, OP_EQUAL, OP_PUSHBYTES_0, OP_SHA256};
use bitcoin::script::Builder;
use bitcoin::secp256k1::{Message, Secp256k1, SecretKey};
use bitcoin::sighash::{Prevouts, SighashCache, TapSighashType};
use bitcoin::taproot::{LeafVersion, TapLeafHash, TaprootBuilder, TaprootSpendInfo};
use bitcoin::{
    absolute, transaction, Address, Amount, Network, OutPoint, ScriptBuf, Sequence, Transaction,
    TxIn, TxOut, Witness,
};
use common::{coinbase_of, key, ok, rpc};
use rexe_regtest::{RegtestConfig, RegtestNode};
use serde_json::{json, Value};

const PREIMAGE: &[u8] = b"rexe taproot script path";

/// A taproot output with an internal key and three leaves: a tapscript CHECKSIG, a hash lock
/// and a 0-of-0 CHECKMULTISIG (which BIP342 disables in tapscript).
struct Tree {
    secp: Secp256k1<bitcoin::secp256k1::All>,
    internal: Keypair,
    leaf_key: Keypair,
    info: TaprootSpendInfo,
    checksig: ScriptBuf,
    hashlock: ScriptBuf,
    multisig: ScriptBuf,
    addr: Address,
}

fn tree() -> Tree {
    let secp = Secp256k1::new();
    let internal = Keypair::from_secret_key(&secp, &SecretKey::from_slice(&[81; 32]).unwrap());
    let leaf_key = Keypair::from_secret_key(&secp, &SecretKey::from_slice(&[82; 32]).unwrap());
    let (leaf_x, _) = leaf_key.x_only_public_key();
    let checksig = Builder::new()
        .push_x_only_key(&leaf_x)
        .push_opcode(OP_CHECKSIG)
        .into_script();
    let hashlock = Builder::new()
        .push_opcode(OP_SHA256)
        .push_slice(sha256::Hash::hash(PREIMAGE).to_byte_array())
        .push_opcode(OP_EQUAL)
        .into_script();
    // Dummy, zero signatures, zero keys: true in legacy and segwit v0 scripts.
    let multisig = Builder::new()
        .push_opcode(OP_PUSHBYTES_0)
        .push_opcode(OP_PUSHBYTES_0)
        .push_opcode(OP_PUSHBYTES_0)
        .push_opcode(OP_CHECKMULTISIG)
        .into_script();
    let info = TaprootBuilder::new()
        .add_leaf(1, checksig.clone())
        .unwrap()
        .add_leaf(2, hashlock.clone())
        .unwrap()
        .add_leaf(2, multisig.clone())
        .unwrap()
        .finalize(&secp, internal.x_only_public_key().0)
        .unwrap();
    let addr = Address::p2tr_tweaked(info.output_key(), Network::Regtest);
    Tree {
        secp,
        internal,
        leaf_key,
        info,
        checksig,
        hashlock,
        multisig,
        addr,
    }
}

impl Tree {
    fn unsigned(&self, prev: OutPoint, value: Amount) -> Transaction {
        Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: prev,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            }],
            output: vec![TxOut {
                value: value - Amount::from_sat(1_000),
                script_pubkey: key(83).addr.script_pubkey(),
            }],
        }
    }

    fn spent(&self, value: Amount) -> [TxOut; 1] {
        [TxOut {
            value,
            script_pubkey: self.addr.script_pubkey(),
        }]
    }

    fn control_block(&self, leaf: &ScriptBuf) -> Vec<u8> {
        self.info
            .control_block(&(leaf.clone(), LeafVersion::TapScript))
            .unwrap()
            .serialize()
    }

    /// A BIP340 signature of input 0 for the leaf `leaf` by `signer`.
    fn leaf_sig(&self, tx: &Transaction, value: Amount, leaf: &ScriptBuf) -> Vec<u8> {
        let leaf_hash = TapLeafHash::from_script(leaf, LeafVersion::TapScript);
        let sighash = SighashCache::new(tx)
            .taproot_script_spend_signature_hash(
                0,
                &Prevouts::All(&self.spent(value)),
                leaf_hash,
                TapSighashType::Default,
            )
            .unwrap();
        let msg = Message::from_digest(sighash.to_byte_array());
        self.secp
            .sign_schnorr_no_aux_rand(&msg, &self.leaf_key)
            .serialize()
            .to_vec()
    }

    /// A key-path spend signed by the tweaked internal key.
    fn key_spend(&self, prev: OutPoint, value: Amount) -> Transaction {
        let mut tx = self.unsigned(prev, value);
        let sighash = SighashCache::new(&tx)
            .taproot_key_spend_signature_hash(
                0,
                &Prevouts::All(&self.spent(value)),
                TapSighashType::Default,
            )
            .unwrap();
        let tweaked = self
            .internal
            .tap_tweak(&self.secp, self.info.merkle_root())
            .to_keypair();
        let sig = self
            .secp
            .sign_schnorr_no_aux_rand(&Message::from_digest(sighash.to_byte_array()), &tweaked);
        tx.input[0].witness = Witness::from_slice(&[sig.serialize().to_vec()]);
        tx
    }

    /// A script-path spend of `leaf` with the stack items `stack` (the signature added first
    /// when `sign`).
    fn script_spend(
        &self,
        prev: OutPoint,
        value: Amount,
        leaf: &ScriptBuf,
        sign: bool,
        stack: &[&[u8]],
        control: Option<Vec<u8>>,
    ) -> Transaction {
        let mut tx = self.unsigned(prev, value);
        let mut w = Witness::new();
        if sign {
            w.push(self.leaf_sig(&tx, value, leaf));
        }
        for item in stack {
            w.push(item);
        }
        w.push(leaf.as_bytes());
        w.push(control.unwrap_or_else(|| self.control_block(leaf)));
        tx.input[0].witness = w;
        tx
    }
}

fn send(node: &RegtestNode, tx: &Transaction) -> Value {
    rpc(node, "sendrawtransaction", json!([serialize_hex(tx)]))
}

fn assert_script_failure(v: &Value) {
    assert_eq!(v["error"]["code"], json!(-26), "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("mandatory-script-verify-flag-failed"),
        "{v}"
    );
}

fn assert_confirms(node: &RegtestNode, tx: &Transaction) {
    let v = send(node, tx);
    assert_eq!(v["result"], json!(tx.compute_txid().to_string()), "{v}");
    ok(
        node,
        "generatetoaddress",
        json!([1, key(84).addr.to_string()]),
    );
    let got = ok(
        node,
        "getrawtransaction",
        json!([tx.compute_txid().to_string(), true]),
    );
    assert_eq!(got["confirmations"], json!(1), "{got}");
}

fn funded() -> (RegtestNode, Tree) {
    let node = RegtestNode::start(RegtestConfig::default()).unwrap();
    let t = tree();
    ok(&node, "generatetoaddress", json!([104, t.addr.to_string()]));
    (node, t)
}

#[test]
fn key_path_spend_accepted_and_a_bad_schnorr_signature_rejected() {
    let (node, t) = funded();
    let (prev, value) = coinbase_of(&node, 1);
    let good = t.key_spend(prev, value);
    let mut bad = good.clone();
    let mut sig = bad.input[0].witness.nth(0).unwrap().to_vec();
    sig[10] ^= 1;
    bad.input[0].witness = Witness::from_slice(&[sig]);
    assert_script_failure(&send(&node, &bad));
    // A signature for the untweaked internal key does not open the output either.
    let mut untweaked = good.clone();
    let sighash = SighashCache::new(&untweaked)
        .taproot_key_spend_signature_hash(
            0,
            &Prevouts::All(&t.spent(value)),
            TapSighashType::Default,
        )
        .unwrap();
    let sig = t
        .secp
        .sign_schnorr_no_aux_rand(&Message::from_digest(sighash.to_byte_array()), &t.internal);
    untweaked.input[0].witness = Witness::from_slice(&[sig.serialize().to_vec()]);
    assert_script_failure(&send(&node, &untweaked));
    assert_confirms(&node, &good);
}

#[test]
fn script_path_checksig_leaf_accepted_and_each_corruption_rejected() {
    let (node, t) = funded();
    let (prev, value) = coinbase_of(&node, 1);
    let good = t.script_spend(prev, value, &t.checksig, true, &[], None);
    // A flipped signature bit.
    let mut bad_sig = good.clone();
    let mut items: Vec<Vec<u8>> = bad_sig.input[0]
        .witness
        .iter()
        .map(<[u8]>::to_vec)
        .collect();
    items[0][5] ^= 0x80;
    bad_sig.input[0].witness = Witness::from_slice(&items);
    assert_script_failure(&send(&node, &bad_sig));
    // A control block whose merkle path does not lead to the output key.
    let mut control = t.control_block(&t.checksig);
    let last = control.len() - 1;
    control[last] ^= 1;
    let bad_path = t.script_spend(prev, value, &t.checksig, true, &[], Some(control));
    assert_script_failure(&send(&node, &bad_path));
    // The leaf signature over another leaf's hash.
    let mut wrong_leaf = good.clone();
    let mut items: Vec<Vec<u8>> = wrong_leaf.input[0]
        .witness
        .iter()
        .map(<[u8]>::to_vec)
        .collect();
    items[0] = t.leaf_sig(&t.unsigned(prev, value), value, &t.hashlock);
    wrong_leaf.input[0].witness = Witness::from_slice(&items);
    assert_script_failure(&send(&node, &wrong_leaf));
    // In a block the same corruption makes the block invalid.
    let v = rpc(
        &node,
        "generateblock",
        json!([key(84).addr.to_string(), [serialize_hex(&bad_sig)]]),
    );
    assert_eq!(v["error"]["code"], json!(-25), "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("TestBlockValidity failed: mandatory-script-verify-flag-failed"),
        "{v}"
    );
    assert_confirms(&node, &good);
}

#[test]
fn script_path_hash_lock_needs_the_preimage_and_tapscript_disables_checkmultisig() {
    let (node, t) = funded();
    let (p1, v1) = coinbase_of(&node, 1);
    let (p2, v2) = coinbase_of(&node, 2);
    let wrong = t.script_spend(p1, v1, &t.hashlock, false, &[b"not the preimage"], None);
    assert_script_failure(&send(&node, &wrong));
    // A 0-of-0 multisig that any pre-taproot script accepts fails: BIP342 makes
    // CHECKMULTISIG invalid in tapscript.
    let multi = t.script_spend(p2, v2, &t.multisig, false, &[], None);
    assert_script_failure(&send(&node, &multi));
    let good = t.script_spend(p1, v1, &t.hashlock, false, &[PREIMAGE], None);
    assert_confirms(&node, &good);
}
