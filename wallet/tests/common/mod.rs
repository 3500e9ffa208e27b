//! Helpers of the wallet tests: an embedded regtest node, bitcoind-style JSON-RPC calls with
//! the cookie, mining, payee scripts and funded wallets.
#![allow(dead_code)]

use std::path::Path;

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{Secp256k1, SecretKey};
use bitcoin::{Address, Amount, CompressedPublicKey, FeeRate, Network, ScriptBuf, Txid};
use rexe_regtest::RegtestNode;
use rexe_wallet::{DescriptorKind, MatchId, PegPayment, RexeWallet};
use serde_json::{json, Value};

pub fn start_node() -> RegtestNode {
    RegtestNode::start(Default::default()).expect("regtest node starts")
}

/// A JSON-RPC call with cookie auth; returns the whole answer.
pub fn rpc(node: &RegtestNode, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "1.0", "id": "t", "method": method, "params": params}).to_string();
    let c = rexe_rpc::RpcClient::new(node.rpc_addr.to_string(), &node.cookie);
    let (_, out) = c
        .post("/", body.as_bytes(), None)
        .expect("the node answers");
    serde_json::from_slice(&out)
        .unwrap_or_else(|e| panic!("{method}: {}: {e}", String::from_utf8_lossy(&out)))
}

/// The result of a call that must succeed.
pub fn ok(node: &RegtestNode, method: &str, params: Value) -> Value {
    let v = rpc(node, method, params);
    assert!(v["error"].is_null(), "{method}: {v}");
    v["result"].clone()
}

pub fn mine(node: &RegtestNode, n: u64, to: &Address) {
    ok(node, "generatetoaddress", json!([n, to.to_string()]));
}

pub fn height(node: &RegtestNode) -> u64 {
    ok(node, "getblockcount", json!([])).as_u64().unwrap()
}

pub fn mempool(node: &RegtestNode) -> Vec<String> {
    ok(node, "getrawmempool", json!([]))
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// Confirmations of a transaction as the node sees it (0: in the mempool).
pub fn confirmations(node: &RegtestNode, txid: &Txid) -> u64 {
    let v = ok(node, "getrawtransaction", json!([txid.to_string(), true]));
    v["confirmations"].as_u64().unwrap_or(0)
}

/// An address nobody in the test owns (for mining away coinbases).
pub fn burn_address() -> Address {
    key_address(0xee)
}

/// A P2WPKH address of the key `[seed; 32]`.
pub fn key_address(seed: u8) -> Address {
    let secp = Secp256k1::new();
    let sk = SecretKey::from_slice(&[seed; 32]).unwrap();
    Address::p2wpkh(&CompressedPublicKey(sk.public_key(&secp)), Network::Regtest)
}

/// Three payee scripts of different kinds: P2WPKH, P2TR and P2WSH.
pub fn payees() -> Vec<ScriptBuf> {
    let secp = Secp256k1::new();
    let sk = SecretKey::from_slice(&[0x22; 32]).unwrap();
    let (xonly, _) = sk.x_only_public_key(&secp);
    vec![
        key_address(0x11).script_pubkey(),
        Address::p2tr(&secp, xonly, None, Network::Regtest).script_pubkey(),
        ScriptBuf::new_p2wsh(&bitcoin::WScriptHash::hash(&[0x51])),
    ]
}

pub fn payments(amounts: &[u64]) -> Vec<PegPayment> {
    payees()
        .into_iter()
        .cycle()
        .zip(amounts)
        .map(|(script, a)| PegPayment {
            script,
            amount: Amount::from_sat(*a),
        })
        .collect()
}

pub fn ids(v: &[u64]) -> Vec<MatchId> {
    v.iter().map(|i| MatchId(*i)).collect()
}

pub fn rate(sat_vb: u64) -> FeeRate {
    FeeRate::from_sat_per_vb(sat_vb).unwrap()
}

/// A new regtest wallet in `dir` named `name`.
pub fn new_wallet(dir: &Path, name: &str) -> RexeWallet {
    RexeWallet::create(&dir.join(name), Network::Regtest, DescriptorKind::Bip86).unwrap()
}

/// Mines one block to each wallet's new address, then 100 blocks away so those coinbases
/// mature, and syncs every wallet.
pub fn fund(node: &RegtestNode, wallets: &mut [&mut RexeWallet]) {
    for w in wallets.iter_mut() {
        let a = w.new_address().unwrap();
        mine(node, 1, &a);
    }
    mine(node, 100, &burn_address());
    for w in wallets.iter_mut() {
        w.sync(&node.electrum_url()).unwrap();
    }
}
