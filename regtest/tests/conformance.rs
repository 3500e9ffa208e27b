//! One conformance suite, run against the embedded node always and against a real bitcoind
//! (and electrs, for the wallet part) when `BITCOIND_EXE` (and `ELECTRS_EXE`) name binaries;
//! skipped with a printed reason otherwise. Never downloads anything.
//!
//! The wallet part is what a wallet does over Electrum: bdk_wallet full scan and sync with
//! bdk_electrum, a bdk-built PSBT sent and received, a bad signature and double spends
//! rejected, an RBF fee bump replacing its original, and a reorg by `invalidateblock` that
//! changes Electrum history and fires notifications.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bdk_wallet::{KeychainKind, WalletEvent};
use bitcoin::consensus::encode::{deserialize, serialize_hex};
use bitcoin::hashes::{sha256, Hash};
use bitcoin::hex::{DisplayHex, FromHex};
use bitcoin::secp256k1::{Secp256k1, SecretKey};
use bitcoin::{Address, Amount, Block, CompressedPublicKey, Network, ScriptBuf, Txid};
use rexe_regtest::{RegtestConfig, RegtestNode};

mod bdk_support;
mod common;
use bdk_support::{
    address, broadcast, client, electrum_tip, eventually, full_scan, pay, pay_from, receive,
};
use common::{block_from_template, free_port, Killed};
use serde_json::{json, Value};

/// Where a backend's RPC and Electrum servers listen, and the RPC credentials.
struct Backend {
    addr: SocketAddr,
    auth: String,
    electrum: String,
}

impl Backend {
    fn rpc(&self, method: &str, params: Value) -> Value {
        common::http_rpc(self.addr, &self.auth, method, &params)
    }

    fn ok(&self, method: &str, params: Value) -> Value {
        let v = self.rpc(method, params);
        assert!(v["error"].is_null(), "{method}: {v}");
        v["result"].clone()
    }

    /// Mines `n` blocks to `to` and waits until the Electrum server has them; returns hashes.
    fn mine(&self, n: u64, to: &Address) -> Vec<String> {
        let hashes = self.ok("generatetoaddress", json!([n, to.to_string()]));
        self.wait_electrum_tip();
        hashes
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap().to_string())
            .collect()
    }

    fn wait_electrum_tip(&self) {
        let height = self.ok("getblockcount", json!([])).as_u64().unwrap();
        let c = client(&self.electrum);
        eventually("electrum reaches the node's tip", || {
            electrum_tip(&c) == height
        });
    }

    fn mempool(&self) -> Vec<String> {
        self.ok("getrawmempool", json!([]))
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    }

    fn coinbase_value(&self, hash: &str) -> Amount {
        let raw = self.ok("getblock", json!([hash, 0]));
        let b: Block = deserialize(&Vec::<u8>::from_hex(raw.as_str().unwrap()).unwrap()).unwrap();
        b.txdata[0].output.iter().map(|o| o.value).sum()
    }
}

struct Key {
    addr: Address,
}

fn key(seed: u8) -> Key {
    let secp = Secp256k1::new();
    let sk = SecretKey::from_slice(&[seed; 32]).unwrap();
    let pk = CompressedPublicKey(sk.public_key(&secp));
    Key {
        addr: Address::p2wpkh(&pk, Network::Regtest),
    }
}

/// The checks every backend must pass with the same answers.
fn conformance(be: &Backend) {
    let info = be.ok("getblockchaininfo", json!([]));
    assert_eq!(info["chain"], json!("regtest"));
    assert_eq!(
        be.ok("getblockhash", json!([0])),
        json!("0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206")
    );
    let a = key(21);
    let hashes = be.ok("generatetoaddress", json!([101, a.addr.to_string()]));
    assert_eq!(hashes.as_array().unwrap().len(), 101);
    assert_eq!(be.ok("getblockcount", json!([])), json!(101));
    assert_eq!(be.ok("getbestblockhash", json!([])), hashes[100]);
    let hdr = be.ok("getblockheader", json!([hashes[100]]));
    assert_eq!(hdr["height"], json!(101));
    assert_eq!(hdr["previousblockhash"], hashes[99]);
    let t = be.ok("getblocktemplate", json!([{"rules": ["segwit"]}]));
    assert_eq!(t["height"], json!(102));
    assert_eq!(t["previousblockhash"], hashes[100]);
    assert_eq!(t["coinbasevalue"], json!(5_000_000_000u64));
    let bad = block_from_template(&t, &a.addr, 1, 1, 0);
    assert_eq!(
        be.ok("submitblock", json!([serialize_hex(&bad)])),
        json!("bad-cb-amount")
    );
    let good = block_from_template(&t, &a.addr, 1, 0, 0);
    assert_eq!(
        be.ok("submitblock", json!([serialize_hex(&good)])),
        Value::Null
    );
    assert_eq!(
        be.ok("submitblock", json!([serialize_hex(&good)])),
        json!("duplicate")
    );
    assert_eq!(
        be.rpc("nosuchmethod", json!([]))["error"]["code"],
        json!(-32601)
    );
    let raw = be.ok("getblock", json!([good.block_hash().to_string(), 0]));
    assert_eq!(raw, json!(serialize_hex(&good)));
    let v1 = be.ok("getblock", json!([good.block_hash().to_string(), 1]));
    assert_eq!(
        v1["tx"][0],
        json!(good.txdata[0].compute_txid().to_string())
    );
    // Tips of equal height come in no fixed order in Core: look for the active one.
    let tips = be.ok("getchaintips", json!([]));
    let active: Vec<&Value> = tips
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == json!("active"))
        .collect();
    assert_eq!(active.len(), 1, "{tips}");
    assert_eq!(active[0]["height"], json!(102));
    assert_eq!(active[0]["hash"], json!(good.block_hash().to_string()));
    assert_eq!(active[0]["branchlen"], json!(0));
    verbose_json(be);
    pool_rpcs(be, &a);
}

/// What pool software asks of bitcoind besides templates (ckpool: `validateaddress` for
/// its payout address, `preciousblock` for the block it found).
fn pool_rpcs(be: &Backend, a: &Key) {
    let v = be.ok("validateaddress", json!([a.addr.to_string()]));
    let program = a.addr.script_pubkey().as_bytes()[2..].to_lower_hex_string();
    assert_eq!(
        v,
        json!({"isvalid": true, "address": a.addr.to_string(),
               "scriptPubKey": a.addr.script_pubkey().to_hex_string(),
               "isscript": false, "iswitness": true, "witness_version": 0,
               "witness_program": program})
    );
    let p2sh = Address::p2sh(&ScriptBuf::new_op_return([1u8; 4]), Network::Regtest).unwrap();
    let v = be.ok("validateaddress", json!([p2sh.to_string()]));
    assert_eq!(
        (&v["isvalid"], &v["isscript"], &v["iswitness"]),
        (&json!(true), &json!(true), &json!(false)),
        "{v}"
    );
    assert!(v.get("witness_version").is_none(), "{v}");
    let secp = Secp256k1::new();
    let kp = bitcoin::key::Keypair::from_seckey_slice(&secp, &[7u8; 32]).unwrap();
    let tr = Address::p2tr(&secp, kp.x_only_public_key().0, None, Network::Regtest);
    let v = be.ok("validateaddress", json!([tr.to_string()]));
    assert_eq!(
        (&v["isscript"], &v["iswitness"], &v["witness_version"]),
        (&json!(true), &json!(true), &json!(1)),
        "{v}"
    );
    let pkh = Address::p2pkh(
        CompressedPublicKey(SecretKey::from_slice(&[3u8; 32]).unwrap().public_key(&secp)),
        Network::Regtest,
    );
    let v = be.ok("validateaddress", json!([pkh.to_string()]));
    assert_eq!(
        (&v["isvalid"], &v["isscript"], &v["iswitness"]),
        (&json!(true), &json!(false), &json!(false)),
        "{v}"
    );
    // A mainnet address, a typo and garbage are invalid here, each with a reason.
    let main = Address::p2pkh(
        CompressedPublicKey(SecretKey::from_slice(&[3u8; 32]).unwrap().public_key(&secp)),
        Network::Bitcoin,
    );
    let mut typo = a.addr.to_string();
    let last = if typo.ends_with('q') { "p" } else { "q" };
    typo.replace_range(typo.len() - 1.., last);
    if typo.starts_with("bcrt1") {
        // Core locates a Bech32 typo.
        let v = be.ok("validateaddress", json!([typo]));
        assert!(
            v["error"].as_str().is_some_and(|e| e.ends_with("checksum")),
            "{v}"
        );
        assert_eq!(v["error_locations"], json!([typo.len() - 1]), "{v}");
    }
    for bad in [main.to_string(), typo, "0OIl".to_string()] {
        let v = be.ok("validateaddress", json!([bad]));
        assert_eq!(v["isvalid"], json!(false), "{bad}: {v}");
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{bad}: {v}"
        );
        assert!(v["error_locations"].is_array(), "{bad}: {v}");
    }

    // preciousblock: of two blocks with as much work, the precious one becomes the tip;
    // a block with less work changes nothing; an unknown one is refused.
    let tip = be.ok("getbestblockhash", json!([]));
    let t = be.ok("getblocktemplate", json!([{"rules": ["segwit"]}]));
    let first = block_from_template(&t, &a.addr, 2, 0, 0);
    let second = block_from_template(&t, &a.addr, 3, 0, 0);
    assert_eq!(
        be.ok("submitblock", json!([serialize_hex(&first)])),
        Value::Null
    );
    assert_eq!(
        be.ok("submitblock", json!([serialize_hex(&second)])),
        json!("inconclusive")
    );
    let (first, second) = (
        first.block_hash().to_string(),
        second.block_hash().to_string(),
    );
    assert_eq!(
        be.ok("getbestblockhash", json!([])),
        json!(first),
        "first seen wins"
    );
    assert_eq!(be.ok("preciousblock", json!([second])), Value::Null);
    assert_eq!(be.ok("getbestblockhash", json!([])), json!(second));
    assert_eq!(be.ok("preciousblock", json!([first])), Value::Null);
    assert_eq!(be.ok("getbestblockhash", json!([])), json!(first));
    assert_eq!(be.ok("preciousblock", json!([tip])), Value::Null);
    assert_eq!(be.ok("getbestblockhash", json!([])), json!(first));
    let unknown = be.rpc("preciousblock", json!(["11".repeat(32)]));
    assert_eq!(unknown["error"]["code"], json!(-5), "{unknown}");
    assert_eq!(
        unknown["error"]["message"],
        json!("Block not found"),
        "{unknown}"
    );
}

/// The descriptor checksum is 8 characters of the BIP380 alphabet after the `#`.
fn assert_desc(v: &Value, prefix: &str) {
    let d = v["desc"].as_str().unwrap_or_else(|| panic!("no desc: {v}"));
    assert!(d.starts_with(prefix), "{d}");
    let sum = d.rsplit('#').next().unwrap();
    assert_eq!(sum.len(), 8, "{d}");
}

/// Verbose JSON as Core writes it: transactions (mempool and confirmed), blocks at
/// verbosity 2, decoded transactions, UTXOs and mempool entries with their families.
fn verbose_json(be: &Backend) {
    let k1 = common::key(31);
    let k2 = common::key(32);
    let hashes = be.ok("generatetoaddress", json!([101, k1.addr.to_string()]));
    let raw = be.ok("getblock", json!([hashes[0], 0]));
    let b: Block = deserialize(&Vec::<u8>::from_hex(raw.as_str().unwrap()).unwrap()).unwrap();
    let cb = &b.txdata[0];
    let op = bitcoin::OutPoint::new(cb.compute_txid(), 0);
    let tx1 = common::spend(&k1, op, cb.output[0].value, &k2.addr, 1000, true);
    let tx2 = common::spend(
        &k2,
        bitcoin::OutPoint::new(tx1.compute_txid(), 0),
        tx1.output[0].value,
        &burn(),
        1000,
        false,
    );
    let (id1, id2) = (
        tx1.compute_txid().to_string(),
        tx2.compute_txid().to_string(),
    );
    be.ok("sendrawtransaction", json!([serialize_hex(&tx1)]));
    be.ok("sendrawtransaction", json!([serialize_hex(&tx2)]));

    // Mempool entries and their family.
    let e1 = be.ok("getmempoolentry", json!([id1]));
    for f in [
        "vsize",
        "weight",
        "time",
        "height",
        "descendantsize",
        "ancestorsize",
        "wtxid",
    ] {
        assert!(!e1[f].is_null(), "{f}: {e1}");
    }
    assert_eq!(e1["ancestorcount"], json!(1), "{e1}");
    assert_eq!(e1["descendantcount"], json!(2), "{e1}");
    assert_eq!(e1["fees"]["base"], json!(0.00001), "{e1}");
    assert_eq!(e1["fees"]["modified"], json!(0.00001), "{e1}");
    assert_eq!(e1["fees"]["ancestor"], json!(0.00001), "{e1}");
    assert_eq!(e1["fees"]["descendant"], json!(0.00002), "{e1}");
    assert_eq!(e1["depends"], json!([]), "{e1}");
    assert_eq!(e1["spentby"], json!([id2]), "{e1}");
    assert_eq!(e1["bip125-replaceable"], json!(true), "{e1}");
    assert_eq!(e1["wtxid"], json!(tx1.compute_wtxid().to_string()));
    let e2 = be.ok("getmempoolentry", json!([id2]));
    assert_eq!(e2["ancestorcount"], json!(2), "{e2}");
    assert_eq!(e2["depends"], json!([id1]), "{e2}");
    assert_eq!(e2["fees"]["ancestor"], json!(0.00002), "{e2}");
    let pool = be.ok("getrawmempool", json!([true]));
    assert_eq!(pool[&id2]["depends"], json!([id1]), "{pool}");

    // A mempool transaction: no block fields; scripts with asm/desc/hex/address/type.
    let v = be.ok("getrawtransaction", json!([id1, true]));
    assert!(
        v.get("blockhash").is_none() && v.get("confirmations").is_none(),
        "{v}"
    );
    assert_eq!(
        v["vin"][0]["scriptSig"],
        json!({"asm": "", "hex": ""}),
        "{v}"
    );
    assert_eq!(
        v["vin"][0]["txinwitness"].as_array().unwrap().len(),
        2,
        "{v}"
    );
    let spk = &v["vout"][0]["scriptPubKey"];
    assert_eq!(spk["type"], json!("witness_v0_keyhash"), "{spk}");
    assert_eq!(spk["address"], json!(k2.addr.to_string()), "{spk}");
    assert_eq!(
        spk["asm"],
        json!(format!(
            "0 {}",
            k2.addr.script_pubkey().as_bytes()[2..].to_lower_hex_string()
        )),
        "{spk}"
    );
    assert_desc(spk, &format!("addr({})#", k2.addr));
    assert_eq!(v["hex"], json!(serialize_hex(&tx1)));
    let d = be.ok("decoderawtransaction", json!([serialize_hex(&tx1)]));
    assert_eq!(d["txid"], json!(id1));
    assert!(d.get("hex").is_none(), "{d}");
    assert_eq!(d["vout"][0]["scriptPubKey"], *spk);

    // UTXOs: spent in the mempool reads null; a mempool output has 0 confirmations.
    assert_eq!(be.ok("gettxout", json!([id1, 0])), Value::Null);
    assert_eq!(be.ok("gettxout", json!([id1, 0, false])), Value::Null);
    let o = be.ok("gettxout", json!([id2, 0]));
    assert_eq!(o["confirmations"], json!(0), "{o}");
    assert_eq!(o["coinbase"], json!(false), "{o}");

    // Confirmed: block fields, fees at verbosity 2, coinbase fields.
    let h = be.ok("generatetoaddress", json!([1, burn().to_string()]))[0].clone();
    let v = be.ok("getrawtransaction", json!([id1, true]));
    assert_eq!(v["blockhash"], h, "{v}");
    assert_eq!(v["confirmations"], json!(1), "{v}");
    let hdr = be.ok("getblockheader", json!([h]));
    assert_eq!(v["time"], hdr["time"], "{v}");
    assert_eq!(v["blocktime"], hdr["time"], "{v}");
    let blk = be.ok("getblock", json!([h, 2]));
    let txs = blk["tx"].as_array().unwrap();
    assert_eq!(txs.len(), 3, "{blk}");
    assert!(txs[0]["vin"][0]["coinbase"].is_string(), "{blk}");
    assert!(txs[0].get("fee").is_none(), "{blk}");
    assert_eq!(txs[1]["fee"], json!(0.00001), "{blk}");
    assert_eq!(txs[1]["txid"], json!(id1), "{blk}");
    assert!(txs[1]["hex"].is_string(), "{blk}");
    let o = be.ok("gettxout", json!([id2, 0]));
    assert_eq!(o["confirmations"], json!(1), "{o}");
    assert_eq!(o["bestblock"], h, "{o}");
    assert_eq!(o["value"], json!(tx2.output[0].value.to_btc()), "{o}");
    let cbo = be.ok("gettxout", json!([txs[0]["txid"], 0]));
    assert_eq!(cbo["coinbase"], json!(true), "{cbo}");
}

/// An address nobody in the suite spends from (blocks that only confirm).
fn burn() -> Address {
    key(0xee).addr
}

fn txids(w: &bdk_wallet::Wallet) -> Vec<Txid> {
    w.transactions().map(|t| t.tx_node.txid).collect()
}

fn assert_script_failure(v: &Value) {
    assert_eq!(v["error"]["code"], json!(-26), "{v}");
    // Core 28 and the embedded node say `mandatory-script-verify-flag-failed (...)`.
    let m = v["error"]["message"].as_str().unwrap();
    assert!(m.contains("script-verify-flag-failed"), "{v}");
}

/// A miner wallet with mature coins: 101 blocks to its first address, found by a full scan.
/// Also returns the value of the coinbase that matures with the next block.
fn funded_wallet(be: &Backend, seed: u8) -> (bdk_support::TestWallet, bdk_support::Client, Amount) {
    let c = client(&be.electrum);
    let mut w = bdk_support::wallet(seed);
    let hashes = be.mine(101, &address(&w, 0));
    eventually("the full scan finds the coinbases", || {
        full_scan(&mut w, &c);
        w.transactions().count() == 101
    });
    // A coinbase may be spent by the block 100 above it, so with 101 blocks the next block
    // can spend the first two (bdk counts them as mature, Core's wallet waits one more).
    let mature = be.coinbase_value(&hashes[0]) + be.coinbase_value(&hashes[1]);
    assert_eq!(w.balance().confirmed, mature);
    assert!(w.balance().immature > Amount::ZERO);
    let next = be.coinbase_value(&hashes[2]);
    (w, c, next)
}

/// A fresh wallet finds payments to scattered addresses of both keychains by a full scan;
/// a sync then finds a new unconfirmed payment and its confirmation.
fn wallet_full_scan_and_sync(be: &Backend) {
    let (mut miner, c, _) = funded_wallet(be, 1);
    let payee = bdk_support::wallet(2);
    let mut b = miner.build_tx();
    let gets = [(0, 1.0), (7, 2.0), (19, 3.0)];
    for (i, btc) in gets {
        b.add_recipient(
            address(&payee, i).script_pubkey(),
            Amount::from_btc(btc).unwrap(),
        );
    }
    let change = payee.peek_address(KeychainKind::Internal, 0).address;
    b.add_recipient(change.script_pubkey(), Amount::from_btc(0.5).unwrap());
    let psbt = b.finish().unwrap();
    let tx = miner.sign(psbt);
    assert_eq!(broadcast(&c, &tx), Ok(tx.compute_txid()));
    be.mine(1, &burn());

    let mut restored = bdk_support::wallet(2);
    eventually("the full scan finds the payment", || {
        full_scan(&mut restored, &c);
        restored.balance().confirmed == Amount::from_btc(6.5).unwrap()
    });
    assert_eq!(restored.list_unspent().count(), 4);
    assert_eq!(restored.derivation_index(KeychainKind::External), Some(19));
    assert_eq!(restored.derivation_index(KeychainKind::Internal), Some(0));
    assert_eq!(txids(&restored), vec![tx.compute_txid()]);

    bdk_support::sync(&mut miner, &c);
    let psbt = pay(
        &mut miner,
        &address(&payee, 3).script_pubkey(),
        Amount::ONE_BTC,
        2,
    );
    let next = miner.sign(psbt);
    broadcast(&c, &next).unwrap();
    let mut events = Vec::new();
    eventually("a sync sees the unconfirmed payment", || {
        events = bdk_support::sync(&mut restored, &c);
        restored.balance().untrusted_pending == Amount::ONE_BTC
    });
    assert!(
        events.iter().any(|e| matches!(e,
            WalletEvent::TxUnconfirmed { txid, old_block_time: None, .. }
                if *txid == next.compute_txid())),
        "{events:?}"
    );
    be.mine(1, &burn());
    eventually("a sync sees the confirmation", || {
        events = bdk_support::sync(&mut restored, &c);
        restored.balance().confirmed == Amount::from_btc(7.5).unwrap()
    });
    assert!(
        events.iter().any(|e| matches!(e,
            WalletEvent::TxConfirmed { txid, .. } if *txid == next.compute_txid())),
        "{events:?}"
    );
}

/// A bdk-built PSBT pays another wallet; the same transaction with a broken signature and two
/// double spends (one against the mempool, one against the chain) are rejected.
fn wallet_psbt_bad_signature_and_double_spends(be: &Backend) {
    let (mut alice, c, matures) = funded_wallet(be, 3);
    let mut bob = bdk_support::wallet(4);
    let carol = bdk_support::wallet(5);
    let before = alice.balance().confirmed;
    let psbt = pay(
        &mut alice,
        &receive(&mut bob).script_pubkey(),
        Amount::ONE_BTC,
        2,
    );
    let tx = alice.sign(psbt.clone());
    // One flipped bit inside the DER signature's r value.
    let mut bad = tx.clone();
    let mut items: Vec<Vec<u8>> = bad.input[0].witness.iter().map(<[u8]>::to_vec).collect();
    items[0][10] ^= 0x01;
    bad.input[0].witness = bitcoin::Witness::from_slice(&items);
    assert_script_failure(&be.rpc("sendrawtransaction", json!([serialize_hex(&bad)])));
    assert!(broadcast(&c, &bad).is_err());
    assert!(!be.mempool().contains(&bad.compute_txid().to_string()));

    assert_eq!(broadcast(&c, &tx), Ok(tx.compute_txid()));
    eventually("bob's sync sees the payment", || {
        bdk_support::sync(&mut bob, &c);
        bob.balance().untrusted_pending == Amount::ONE_BTC
    });
    // The same coin to carol at the same fee rate: no more fee than what it would replace.
    let rival = pay_from(
        &mut alice,
        psbt.unsigned_tx.input[0].previous_output,
        &address(&carol, 0).script_pubkey(),
        Amount::ONE_BTC,
        2,
    );
    assert_eq!(
        rival.unsigned_tx.input[0].previous_output,
        psbt.unsigned_tx.input[0].previous_output
    );
    let rival = alice.sign(rival);
    let v = be.rpc("sendrawtransaction", json!([serialize_hex(&rival)]));
    assert_eq!(v["error"]["code"], json!(-26), "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("insufficient fee"),
        "{v}"
    );
    be.mine(1, &burn());
    let v = be.rpc("sendrawtransaction", json!([serialize_hex(&rival)]));
    assert_eq!(v["error"]["code"], json!(-25), "{v}");
    assert_eq!(
        v["error"]["message"],
        json!("bad-txns-inputs-missingorspent")
    );
    eventually("both wallets see the confirmation", || {
        bdk_support::sync(&mut bob, &c);
        bdk_support::sync(&mut alice, &c);
        bob.balance().confirmed == Amount::ONE_BTC && alice.get_tx(tx.compute_txid()).is_some()
    });
    // Alice paid one BTC and the fee, and the block matured her next coinbase.
    let fee = alice.calculate_fee(&tx).unwrap();
    assert_eq!(
        alice.balance().confirmed,
        before - Amount::ONE_BTC - fee + matures
    );
}

/// A bdk fee bump replaces the original in the mempool; the payee's wallet follows.
fn wallet_rbf_replacement(be: &Backend) {
    let (mut alice, c, _) = funded_wallet(be, 6);
    let mut bob = bdk_support::wallet(7);
    let psbt = pay(
        &mut alice,
        &receive(&mut bob).script_pubkey(),
        Amount::ONE_BTC,
        2,
    );
    let original = alice.sign(psbt);
    assert!(original.is_explicitly_rbf());
    broadcast(&c, &original).unwrap();
    eventually("both wallets see the original", || {
        bdk_support::sync(&mut alice, &c);
        bdk_support::sync(&mut bob, &c);
        alice.get_tx(original.compute_txid()).is_some()
            && bob.balance().untrusted_pending == Amount::ONE_BTC
    });
    let mut bump = alice.build_fee_bump(original.compute_txid()).unwrap();
    bump.fee_rate(bitcoin::FeeRate::from_sat_per_vb(10).unwrap());
    let psbt = bump.finish().unwrap();
    let replacement = alice.sign(psbt);
    assert_eq!(broadcast(&c, &replacement), Ok(replacement.compute_txid()));
    let pool = be.mempool();
    assert!(
        pool.contains(&replacement.compute_txid().to_string()),
        "{pool:?}"
    );
    assert!(
        !pool.contains(&original.compute_txid().to_string()),
        "{pool:?}"
    );
    let mut events = Vec::new();
    eventually("bob's wallet follows the replacement", || {
        events.extend(bdk_support::sync(&mut bob, &c));
        txids(&bob) == vec![replacement.compute_txid()]
    });
    assert!(
        events.iter().any(|e| matches!(e,
            WalletEvent::TxReplaced { txid, .. } if *txid == original.compute_txid())),
        "{events:?}"
    );
    assert_eq!(bob.balance().untrusted_pending, Amount::ONE_BTC);
    be.mine(1, &burn());
    eventually("the replacement confirms", || {
        bdk_support::sync(&mut bob, &c);
        bob.balance().confirmed == Amount::ONE_BTC
    });
}

/// An Electrum subscriber written against the protocol (JSON lines over TCP): it keeps
/// every notification, a `null` status included. electrum-client cannot read a scripthash
/// notification whose status is `null`, which electrs sends when a reorg leaves a history
/// empty for a moment (the block's transactions are dropped before its mempool sync takes
/// them back); the call reading it then fails, and its `Client` reconnects silently, losing
/// every subscription.
struct Sub {
    conn: std::cell::RefCell<(TcpStream, std::io::BufReader<TcpStream>)>,
    next_id: std::cell::Cell<u64>,
    /// Scripthash notifications: the status each announced (`None`: no history).
    statuses: std::cell::RefCell<std::collections::VecDeque<Option<String>>>,
    /// Header notifications: (height, block hash).
    headers: std::cell::RefCell<std::collections::VecDeque<(i32, String)>>,
}

impl Sub {
    fn connect(url: &str) -> Sub {
        let s = TcpStream::connect(url.trim_start_matches("tcp://")).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let r = std::io::BufReader::new(s.try_clone().unwrap());
        Sub {
            conn: std::cell::RefCell::new((s, r)),
            next_id: std::cell::Cell::new(1),
            statuses: Default::default(),
            headers: Default::default(),
        }
    }

    /// Sends a request and reads until its reply, keeping the notifications read on the way.
    fn call(&self, method: &str, params: Value) -> Value {
        use std::io::BufRead;
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let mut conn = self.conn.borrow_mut();
        let req = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        writeln!(conn.0, "{req}").unwrap();
        loop {
            let mut line = String::new();
            let n = conn.1.read_line(&mut line).unwrap();
            assert!(n > 0, "{method}: the server closed the connection");
            let v: Value = serde_json::from_str(&line).unwrap();
            match v["method"].as_str() {
                Some("blockchain.scripthash.subscribe") => self
                    .statuses
                    .borrow_mut()
                    .push_back(v["params"][1].as_str().map(str::to_string)),
                Some("blockchain.headers.subscribe") => {
                    let h = &v["params"][0];
                    let raw = Vec::<u8>::from_hex(h["hex"].as_str().unwrap()).unwrap();
                    let header: bitcoin::block::Header = deserialize(&raw).unwrap();
                    self.headers.borrow_mut().push_back((
                        h["height"].as_i64().unwrap() as i32,
                        header.block_hash().to_string(),
                    ));
                }
                Some(other) => panic!("unexpected notification {other}: {v}"),
                None if v["id"] == json!(id) => {
                    assert!(v["error"].is_null(), "{method}: {v}");
                    return v["result"].clone();
                }
                None => panic!("a reply to another request: {v}"),
            }
        }
    }

    fn scripthash(spk: &bitcoin::Script) -> String {
        let mut h = sha256::Hash::hash(spk.as_bytes()).to_byte_array();
        h.reverse();
        h.to_lower_hex_string()
    }

    fn history(&self, spk: &bitcoin::Script) -> Vec<(i32, Txid)> {
        self.call(
            "blockchain.scripthash.get_history",
            json!([Sub::scripthash(spk)]),
        )
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["height"].as_i64().unwrap() as i32,
                e["tx_hash"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect()
    }

    /// Reads what the server sent since (a ping is a round trip).
    fn poll(&self) {
        self.call("server.ping", json!([]));
    }
}

/// The protocol's status of a history: sha256 of its `txid:height:` entries, in hex.
fn status_of(entries: &[(Txid, i32)]) -> String {
    let text: String = entries.iter().map(|(t, h)| format!("{t}:{h}:")).collect();
    sha256::Hash::hash(text.as_bytes())
        .to_byte_array()
        .to_lower_hex_string()
}

/// Electrum history, notifications and a bdk wallet across a reorg by `invalidateblock`.
fn wallet_reorg_by_invalidateblock(be: &Backend) {
    let (mut alice, c, _) = funded_wallet(be, 8);
    let mut bob = bdk_support::wallet(9);
    let spk = receive(&mut bob).script_pubkey();
    let sub = Sub::connect(&be.electrum);
    assert_eq!(
        sub.call(
            "blockchain.scripthash.subscribe",
            json!([Sub::scripthash(&spk)])
        ),
        Value::Null,
        "no history, no status"
    );
    sub.call("blockchain.headers.subscribe", json!([]));
    let psbt = pay(&mut alice, &spk, Amount::ONE_BTC, 2);
    let tx = alice.sign(psbt);
    let txid = tx.compute_txid();
    broadcast(&c, &tx).unwrap();
    eventually("the payment is in the mempool history", || {
        sub.history(&spk) == vec![(0, txid)]
    });
    let block = be.mine(1, &burn()).remove(0);
    let height = be.ok("getblockcount", json!([])).as_u64().unwrap() as i32;
    eventually("the payment is confirmed in the history", || {
        sub.history(&spk) == vec![(height, txid)]
    });
    eventually("bob's wallet sees it confirmed", || {
        bdk_support::sync(&mut bob, &c);
        bob.balance().confirmed == Amount::ONE_BTC
    });
    // The server has told the subscription about the confirmation before the block goes
    // away: otherwise a server that computes notifications after the fact (electrs does, per
    // new tip; so does the embedded node, on its notifier task) may see the block come and
    // go in one step, with no status change to report, and the test would race it.
    let confirmed = status_of(&[(txid, height)]);
    let announced = |status: &str| {
        sub.poll();
        let mut found = false;
        while let Some(s) = sub.statuses.borrow_mut().pop_front() {
            found |= s.as_deref() == Some(status);
        }
        found
    };
    eventually(
        "a scripthash notification with the confirmed status",
        || announced(&confirmed),
    );
    // Drain what the subscription has seen so far.
    sub.poll();
    sub.statuses.borrow_mut().clear();
    sub.headers.borrow_mut().clear();

    be.ok("invalidateblock", json!([block]));
    eventually("the payment is back in the mempool history", || {
        sub.history(&spk) == vec![(0, txid)]
    });
    let unconfirmed = status_of(&[(txid, 0)]);
    eventually("a scripthash notification with the reorged status", || {
        announced(&unconfirmed)
    });
    // bdk ignores a server tip below its own, so the reorg reaches the wallet with the next
    // block: one at the same height without the payment (`generateblock` with no transactions).
    let empty = be.ok("generateblock", json!([burn().to_string(), []]))["hash"]
        .as_str()
        .unwrap()
        .to_string();
    be.wait_electrum_tip();
    assert_ne!(empty, block);
    assert_eq!(sub.history(&spk), vec![(0, txid)]);
    let mut events = Vec::new();
    eventually("bob's wallet sees it unconfirmed again", || {
        events.extend(bdk_support::sync(&mut bob, &c));
        bob.balance().confirmed == Amount::ZERO
            && bob.balance().untrusted_pending == Amount::ONE_BTC
    });
    assert!(
        events.iter().any(|e| matches!(e,
            WalletEvent::TxUnconfirmed { txid: t, old_block_time: Some(_), .. } if *t == txid)),
        "{events:?}"
    );

    // The next block confirms it again, one higher.
    let other = be.mine(1, &burn()).remove(0);
    eventually("the payment is confirmed in the new block", || {
        sub.history(&spk) == vec![(height + 1, txid)]
    });
    let mut seen = Vec::new();
    eventually("a headers notification for the new tip", || {
        sub.poll();
        seen.extend(sub.headers.borrow_mut().drain(..));
        seen.last() == Some(&(height + 1, other.clone()))
    });
    let merkle = sub.call(
        "blockchain.transaction.get_merkle",
        json!([txid.to_string(), height + 1]),
    );
    assert_eq!(merkle["block_height"], json!(height + 1));
    events.clear();
    eventually("bob's wallet sees it confirmed again", || {
        events.extend(bdk_support::sync(&mut bob, &c));
        bob.balance().confirmed == Amount::ONE_BTC
    });
    assert!(
        events.iter().any(|e| matches!(e,
            WalletEvent::TxConfirmed { txid: t, .. } if *t == txid)),
        "{events:?}"
    );
}

/// Every wallet scenario, in order, on one backend (a real stack runs them on one chain).
fn wallet_conformance(be: &Backend) {
    wallet_full_scan_and_sync(be);
    wallet_psbt_bad_signature_and_double_spends(be);
    wallet_rbf_replacement(be);
    wallet_reorg_by_invalidateblock(be);
}

fn embedded() -> (RegtestNode, Backend) {
    let node = RegtestNode::start(RegtestConfig::default()).unwrap();
    let be = Backend {
        addr: node.rpc_addr,
        auth: node.cookie.clone(),
        electrum: node.electrum_url(),
    };
    (node, be)
}

#[test]
fn conformance_on_the_embedded_node() {
    let (_node, be) = embedded();
    conformance(&be);
}

// The wallet scenarios run as separate tests on the embedded node (each on a fresh node, in
// parallel); `wallet_conformance` runs them in sequence on a real stack.
#[test]
fn bdk_full_scan_and_sync_on_the_embedded_node() {
    let (_node, be) = embedded();
    wallet_full_scan_and_sync(&be);
}

#[test]
fn bdk_psbt_bad_signature_and_double_spends_on_the_embedded_node() {
    let (_node, be) = embedded();
    wallet_psbt_bad_signature_and_double_spends(&be);
}

#[test]
fn bdk_rbf_replacement_on_the_embedded_node() {
    let (_node, be) = embedded();
    wallet_rbf_replacement(&be);
}

#[test]
fn bdk_reorg_by_invalidateblock_on_the_embedded_node() {
    let (_node, be) = embedded();
    wallet_reorg_by_invalidateblock(&be);
}

fn wait_for_cookie(path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(c) = std::fs::read_to_string(path) {
            if c.contains(':') {
                return c.trim().to_string();
            }
        }
        assert!(Instant::now() < deadline, "bitcoind wrote no cookie");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The RPC suite on a fresh real bitcoind, then, with `ELECTRS_EXE`, the wallet suite on the
/// same chain through a real electrs.
#[test]
fn conformance_on_a_real_bitcoind_and_electrs() {
    let Some(exe) = std::env::var_os("BITCOIND_EXE") else {
        println!("skipped: BITCOIND_EXE is not set (no real bitcoind to compare against)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (port, p2p) = (free_port(), free_port());
    let child = Command::new(exe)
        .arg("-regtest")
        .arg(format!("-datadir={}", dir.path().display()))
        .arg(format!("-rpcport={port}"))
        .arg(format!("-port={p2p}"))
        .args([
            "-listen=1",
            "-bind=127.0.0.1",
            "-server=1",
            "-txindex=1",
            "-fallbackfee=0.0001",
            // electrs >= 0.11 reads blocks over bitcoind's REST interface.
            "-rest=1",
            // Core after v31.0 keeps `bip125-replaceable` behind this switch; v31.0 shows it.
            "-deprecatedrpc=bip125",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _bitcoind = Killed(child);
    let cookie = dir.path().join("regtest/.cookie");
    let auth = wait_for_cookie(&cookie);
    let mut be = Backend {
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        auth,
        electrum: String::new(),
    };
    // Bounded wait until the RPC answers (warm-up answers -28).
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(be.addr).is_err()
        || !be.rpc("getblockcount", json!([]))["error"].is_null()
    {
        assert!(Instant::now() < deadline, "bitcoind RPC did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Leaves initial block download too, which electrs waits for.
    conformance(&be);
    let Some(electrs) = std::env::var_os("ELECTRS_EXE") else {
        println!(
            "wallet part skipped: ELECTRS_EXE is not set (no real electrs to compare against)"
        );
        let _ = be.rpc("stop", json!([]));
        return;
    };
    let (_electrs, url) = start_electrs(Path::new(&electrs), dir.path(), &cookie, port, Some(p2p));
    be.electrum = url;
    be.wait_electrum_tip();
    wallet_conformance(&be);
    let _ = be.rpc("stop", json!([]));
}

/// electrs' `--help` text (flags changed across versions).
fn electrs_help(electrs: &Path) -> String {
    Command::new(electrs)
        .arg("--help")
        .output()
        .map(|o| {
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        })
        .unwrap_or_default()
}

/// Starts a real electrs on the node whose RPC is on `rpc_port` (cookie at `cookie`; its
/// p2p port `p2p`, for electrs < 0.11), its database and log in `dir`; waits until it takes
/// connections. Returns the process (killed on drop) and its Electrum URL.
fn start_electrs(
    electrs: &Path,
    dir: &Path,
    cookie: &Path,
    rpc_port: u16,
    p2p: Option<u16>,
) -> (Killed, String) {
    let eport = free_port();
    // electrs' flags changed across versions (0.11 dropped --daemon-p2p-addr and reads
    // blocks over REST): pass the optional ones only where its --help lists them.
    let help = electrs_help(electrs);
    let mut cmd = Command::new(electrs);
    cmd.args(["--network", "regtest"])
        .arg(format!("--db-dir={}", dir.join("electrs").display()))
        .arg(format!("--daemon-dir={}", dir.display()))
        .arg(format!("--cookie-file={}", cookie.display()))
        .arg(format!("--daemon-rpc-addr=127.0.0.1:{rpc_port}"))
        .arg(format!("--electrum-rpc-addr=127.0.0.1:{eport}"));
    let mut optional = vec![
        ("--skip-default-conf-files", String::new()),
        ("--monitoring-addr", format!("=127.0.0.1:{}", free_port())),
        ("--wait-duration-secs", "=1".to_string()),
    ];
    if let Some(p) = p2p {
        optional.push(("--daemon-p2p-addr", format!("=127.0.0.1:{p}")));
    }
    for (flag, value) in optional {
        if help.contains(flag) {
            cmd.arg(format!("{flag}{value}"));
        }
    }
    let log_path = dir.join("electrs.log");
    let log = std::fs::File::create(&log_path).unwrap();
    println!("electrs log: {}", log_path.display());
    let child = cmd
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let killed = Killed(child);
    eventually("electrs accepts connections", || {
        TcpStream::connect(("127.0.0.1", eport)).is_ok()
    });
    (killed, format!("tcp://127.0.0.1:{eport}"))
}

/// The wallet suite through a real electrs (≥ 0.11, which reads blocks over bitcoind's REST
/// interface) indexing the embedded node: the node answers electrs as bitcoind does.
#[test]
fn bdk_wallet_suite_through_a_real_electrs_on_the_embedded_node() {
    let Some(electrs) = std::env::var_os("ELECTRS_EXE") else {
        println!("skipped: ELECTRS_EXE is not set (no real electrs to index the embedded node)");
        return;
    };
    let electrs = Path::new(&electrs);
    if electrs_help(electrs).contains("--daemon-p2p-addr") {
        println!(
            "skipped: this electrs (< 0.11) reads blocks over bitcoind's p2p protocol, which the embedded node does not speak; electrs >= 0.11 reads them over REST"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let node = RegtestNode::start(RegtestConfig {
        datadir: Some(dir.path().join("node")),
        rest: true,
        ..RegtestConfig::default()
    })
    .unwrap();
    let mut be = Backend {
        addr: node.rpc_addr,
        auth: node.cookie.clone(),
        electrum: String::new(),
    };
    // A chain to index before electrs starts, as a node it joins would have.
    let miner = key(77);
    be.ok("generatetoaddress", json!([101, miner.addr.to_string()]));
    let (_electrs, url) = start_electrs(
        electrs,
        dir.path(),
        &node.cookie_path,
        node.rpc_addr.port(),
        None,
    );
    be.electrum = url;
    be.wait_electrum_tip();
    wallet_conformance(&be);
}
