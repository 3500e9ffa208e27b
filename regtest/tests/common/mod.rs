//! Helpers shared by the regtest node's integration tests: raw HTTP JSON-RPC calls with the
//! cookie, P2WPKH keys and signed spends built with rust-bitcoin.
#![allow(dead_code)]

use bitcoin::consensus::encode::deserialize;
use bitcoin::hashes::Hash;
use bitcoin::hex::FromHex;
use bitcoin::secp256k1::{Message, Secp256k1, SecretKey};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::{
    absolute, transaction, Address, Amount, Block, CompressedPublicKey, Network, OutPoint,
    ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness,
};
use rexe_regtest::RegtestNode;
use serde_json::{json, Value};

pub fn post(node: &RegtestNode, auth: Option<&str>, body: &[u8]) -> (u16, String) {
    post_to(node, "/", auth, body)
}

/// [`post`] to the request path `path` (e.g. `/wallet/alice`); `auth` is `user:password`
/// (none sends an empty `Authorization`). (0, "") when the connection failed.
pub fn post_to(node: &RegtestNode, path: &str, auth: Option<&str>, body: &[u8]) -> (u16, String) {
    let c = rexe_rpc::RpcClient::new(node.rpc_addr.to_string(), auth.unwrap_or(""));
    let auth = match auth {
        Some(_) => None,
        None => Some(""),
    };
    match c.post(path, body, auth) {
        Ok((status, b)) => (status, String::from_utf8_lossy(&b).into_owned()),
        Err(_) => (0, String::new()),
    }
}

/// A free TCP port on 127.0.0.1 (for a process started next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the process it wraps on drop.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A JSON-RPC 1.0 call in one HTTP/1.1 request with basic auth (`user:password`), written by
/// hand as a script would (works for any bitcoind): the whole reply object.
pub fn http_rpc(addr: std::net::SocketAddr, auth: &str, method: &str, params: &Value) -> Value {
    use bitcoin::base64::Engine as _;
    use std::io::{Read, Write};
    let body = json!({"jsonrpc": "1.0", "id": "t", "method": method, "params": params}).to_string();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let req = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nAuthorization: Basic {}\r\n\r\n{body}",
        body.len(),
        bitcoin::base64::engine::general_purpose::STANDARD.encode(auth)
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let t = out.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str(t).unwrap_or_else(|e| panic!("{method}: {out}: {e}"))
}

pub fn rpc(node: &RegtestNode, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "1.0", "id": "t", "method": method, "params": params});
    let (_, t) = post(node, Some(&node.cookie), body.to_string().as_bytes());
    serde_json::from_str(&t).unwrap_or_else(|e| panic!("{t}: {e}"))
}

/// A call to the wallet `wallet` (through `/wallet/<wallet>`, as `bitcoin-cli -rpcwallet`).
pub fn wrpc(node: &RegtestNode, wallet: &str, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "1.0", "id": "t", "method": method, "params": params});
    let path = format!("/wallet/{wallet}");
    let (_, t) = post_to(node, &path, Some(&node.cookie), body.to_string().as_bytes());
    serde_json::from_str(&t).unwrap_or_else(|e| panic!("{t}: {e}"))
}

/// [`wrpc`], asserting success; the result.
pub fn wok(node: &RegtestNode, wallet: &str, method: &str, params: Value) -> Value {
    let v = wrpc(node, wallet, method, params);
    assert!(v["error"].is_null(), "{wallet} {method}: {v}");
    v["result"].clone()
}

pub fn ok(node: &RegtestNode, method: &str, params: Value) -> Value {
    let v = rpc(node, method, params);
    assert!(v["error"].is_null(), "{method}: {v}");
    v["result"].clone()
}

pub struct Key {
    pub sk: SecretKey,
    pub pk: CompressedPublicKey,
    pub addr: Address,
}

pub fn key(seed: u8) -> Key {
    let secp = Secp256k1::new();
    let sk = SecretKey::from_slice(&[seed; 32]).unwrap();
    let pk = CompressedPublicKey(sk.public_key(&secp));
    Key {
        sk,
        addr: Address::p2wpkh(&pk, Network::Regtest),
        pk,
    }
}

/// Spends `prev` (an output paying `k`) to `to`, signed P2WPKH.
pub fn spend(
    k: &Key,
    prev: OutPoint,
    value: Amount,
    to: &Address,
    fee: u64,
    rbf: bool,
) -> Transaction {
    let sequence = if rbf {
        Sequence::ENABLE_RBF_NO_LOCKTIME
    } else {
        Sequence::MAX
    };
    let lock = Locks {
        version: 2,
        lock_time: 0,
        sequence,
    };
    spend_locked(k, prev, value, to, fee, lock)
}

/// The lock-time fields of a spend.
#[derive(Clone, Copy)]
pub struct Locks {
    pub version: i32,
    pub lock_time: u32,
    pub sequence: Sequence,
}

/// [`spend`] with the given version, `nLockTime` and input sequence.
pub fn spend_locked(
    k: &Key,
    prev: OutPoint,
    value: Amount,
    to: &Address,
    fee: u64,
    lock: Locks,
) -> Transaction {
    let mut tx = Transaction {
        version: transaction::Version(lock.version),
        lock_time: absolute::LockTime::from_consensus(lock.lock_time),
        input: vec![TxIn {
            previous_output: prev,
            script_sig: ScriptBuf::new(),
            sequence: lock.sequence,
            witness: Witness::new(),
        }],
        output: vec![TxOut {
            value: value - Amount::from_sat(fee),
            script_pubkey: to.script_pubkey(),
        }],
    };
    let secp = Secp256k1::new();
    let sighash = SighashCache::new(&tx)
        .p2wpkh_signature_hash(0, &k.addr.script_pubkey(), value, EcdsaSighashType::All)
        .unwrap();
    let sig = secp.sign_ecdsa(&Message::from_digest(sighash.to_byte_array()), &k.sk);
    let sig = bitcoin::ecdsa::Signature {
        signature: sig,
        sighash_type: EcdsaSighashType::All,
    };
    tx.input[0].witness = Witness::p2wpkh(&sig, &k.pk.0);
    tx
}

/// The coinbase outpoint of block `h` and its value.
pub fn coinbase_of(node: &RegtestNode, h: u64) -> (OutPoint, Amount) {
    let hash = ok(node, "getblockhash", json!([h]));
    let raw = ok(node, "getblock", json!([hash, 0]));
    let block: Block = deserialize(&Vec::<u8>::from_hex(raw.as_str().unwrap()).unwrap()).unwrap();
    let cb = &block.txdata[0];
    (OutPoint::new(cb.compute_txid(), 0), cb.output[0].value)
}

/// Builds a block from a `getblocktemplate` answer the way a miner does: coinbase with the
/// BIP34 height, `coinbasevalue` and `default_witness_commitment`, the template's
/// transactions, the merkle root, then grinds the nonce. The knobs break one rule each.
pub fn block_from_template(
    t: &Value,
    pay: &Address,
    extra: u8,
    cb_bonus: u64,
    height_delta: i64,
) -> Block {
    let height = t["height"].as_i64().unwrap() + height_delta;
    let script_sig = bitcoin::blockdata::script::Builder::new()
        .push_int(height)
        .push_slice([extra, 0x52])
        .into_script();
    let mut cb_witness = Witness::new();
    cb_witness.push([0u8; 32]);
    let mut outputs = vec![TxOut {
        value: Amount::from_sat(t["coinbasevalue"].as_u64().unwrap() + cb_bonus),
        script_pubkey: pay.script_pubkey(),
    }];
    if let Some(c) = t["default_witness_commitment"].as_str() {
        outputs.push(TxOut {
            value: Amount::ZERO,
            script_pubkey: ScriptBuf::from_bytes(Vec::<u8>::from_hex(c).unwrap()),
        });
    }
    let coinbase = Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig,
            sequence: Sequence::MAX,
            witness: cb_witness,
        }],
        output: outputs,
    };
    let mut txdata = vec![coinbase];
    for tx in t["transactions"].as_array().unwrap() {
        txdata.push(
            deserialize(&Vec::<u8>::from_hex(tx["data"].as_str().unwrap()).unwrap()).unwrap(),
        );
    }
    let bits = u32::from_str_radix(t["bits"].as_str().unwrap(), 16).unwrap();
    let mut block = Block {
        header: bitcoin::block::Header {
            version: bitcoin::block::Version::from_consensus(t["version"].as_i64().unwrap() as i32),
            prev_blockhash: t["previousblockhash"].as_str().unwrap().parse().unwrap(),
            merkle_root: bitcoin::TxMerkleNode::all_zeros(),
            time: t["curtime"].as_u64().unwrap() as u32,
            bits: bitcoin::CompactTarget::from_consensus(bits),
            nonce: 0,
        },
        txdata,
    };
    block.header.merkle_root = block.compute_merkle_root().unwrap();
    grind(&mut block);
    block
}

pub fn grind(b: &mut Block) {
    let target = bitcoin::Target::from_compact(b.header.bits);
    while !target.is_met_by(b.block_hash()) {
        b.header.nonce += 1;
    }
}
