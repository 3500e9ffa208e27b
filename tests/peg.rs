//! The peg end to end through the binary: an L2 node (`rexe node`), the embedded Bitcoin
//! regtest node, and the `rexe peg` commands and agents talking to both over JSON-RPC.
//! Alice posts a peg-out; Bob takes it, pays Alice on Bitcoin with a transaction carrying the
//! OP_RETURN commitment, the relayer brings the headers over, and the claimer (restarted in
//! between, its work list in SQLite) claims: Bob has the rxBTC and his bond back.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{Message, Secp256k1, SecretKey};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::{
    absolute::LockTime, transaction::Version, Amount, CompressedPublicKey, OutPoint, ScriptBuf,
    Sequence, Transaction, TxIn, TxOut, Witness,
};
use common::*;
use rexe_miner::bitcoind::Bitcoind;
use serde_json::{json, Value};

fn rpc(addr: &str, cookie: &str, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let (_, text) = post(addr, Some(cookie), body.to_string().as_bytes());
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    assert!(v["error"].is_null(), "{method}: {}", v["error"]);
    v["result"].clone()
}

/// Mines L2 blocks (getblocktemplate, AuxPoW seal, submitblock) until stopped.
fn l2_miner(addr: String, cookie: String, payout: String, stop: Arc<AtomicBool>) {
    use rexe_chain::encode::{Decode, Encode};
    while !stop.load(Ordering::SeqCst) {
        let t = rpc(&addr, &cookie, "getblocktemplate", json!([payout]));
        let bytes = hex::decode(t["hex"].as_str().unwrap()).unwrap();
        let mut block = rexe_chain::Block::from_bytes(&bytes).unwrap();
        seal(&mut block);
        rpc(
            &addr,
            &cookie,
            "submitblock",
            json!([hex::encode(block.to_bytes())]),
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn rexe(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run rexe");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "rexe {args:?} failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn new_key(dir: &Path, name: &str) -> (String, String) {
    let path = dir.join(name);
    let addr = rexe(&["key", "new", path.to_str().unwrap(), "--network", "regtest"]);
    (path.to_str().unwrap().to_string(), addr.trim().to_string())
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn peg_out_take_pay_relay_claim_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let btc_node = rexe_regtest::RegtestNode::start(Default::default()).unwrap();
    let btc = Bitcoind::new(btc_node.rpc_addr.to_string(), btc_node.cookie.clone());
    let l2_dir = dir.path().join("l2");
    let node = spawn(
        &[
            "node",
            "--network",
            "regtest",
            "--datadir",
            l2_dir.to_str().unwrap(),
            "--rpc-bind",
            "127.0.0.1:0",
        ],
        &l2_dir,
    );
    let cookie_file = l2_dir.join(".cookie");
    let (alice_key, alice) = new_key(dir.path(), "alice.key");
    let (bob_key, bob) = new_key(dir.path(), "bob.key");

    // Fund Alice and Bob on the L2 by mining to them, then keep blocks coming for everyone.
    for payout in [&alice, &bob] {
        for _ in 0..2 {
            let t = rpc(&node.rpc, &node.cookie, "getblocktemplate", json!([payout]));
            let mut block = {
                use rexe_chain::encode::Decode;
                rexe_chain::Block::from_bytes(&hex::decode(t["hex"].as_str().unwrap()).unwrap())
                    .unwrap()
            };
            seal(&mut block);
            use rexe_chain::encode::Encode;
            rpc(
                &node.rpc,
                &node.cookie,
                "submitblock",
                json!([hex::encode(block.to_bytes())]),
            );
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let miner = {
        let (a, c, s) = (node.rpc.clone(), node.cookie.clone(), stop.clone());
        let payout = new_key(dir.path(), "miner.key").1;
        std::thread::spawn(move || l2_miner(a, c, payout, s))
    };
    let l2 = [
        "--rpc",
        &node.rpc,
        "--rpc-cookie",
        cookie_file.to_str().unwrap(),
    ];
    let btc_args = [
        "--bitcoind",
        &btc_node.rpc_addr.to_string(),
        "--bitcoind-cookie",
        btc_node.cookie_path.to_str().unwrap(),
    ]
    .map(String::from);
    let btc_args: Vec<&str> = btc_args.iter().map(String::as_str).collect();

    // Bob's Bitcoin key, funded by a mined coinbase (matured by 100 more blocks).
    let secp = Secp256k1::new();
    let bob_sk = SecretKey::from_slice(&[0x42; 32]).unwrap();
    let bob_pk = CompressedPublicKey(bob_sk.public_key(&secp));
    let bob_btc = bitcoin::Address::p2wpkh(&bob_pk, bitcoin::Network::Regtest);
    btc.call("generatetoaddress", json!([101, bob_btc.to_string()]))
        .unwrap();
    // Alice's Bitcoin address (she only needs to receive).
    let alice_sk = SecretKey::from_slice(&[0x41; 32]).unwrap();
    let alice_btc = bitcoin::Address::p2wpkh(
        &CompressedPublicKey(alice_sk.public_key(&secp)),
        bitcoin::Network::Regtest,
    );

    // The relayer brings Bitcoin's headers to the L2 first: a match's deadline counts from
    // the tracked Bitcoin tip.
    rexe(
        &[
            &["peg", "relay", "--once", "--key", &bob_key][..],
            &l2[..],
            &btc_args[..],
        ]
        .concat(),
    );

    // Alice: peg out 0.001 rxBTC for BTC at 30 bps.
    let out = rexe(
        &[
            &["peg", "out", "--key", &alice_key, "--amount", "100000"],
            &["--to", &alice_btc.to_string(), "--fee-bps", "30"][..],
            &l2[..],
        ]
        .concat(),
    );
    assert!(out.contains("\"order_id\": 0"), "{out}");

    // Bob: take all of it (bond posted), and learn what he owes.
    let b0 = rpc(&node.rpc, &node.cookie, "getaccount", json!([bob]))["balance"]
        .as_u64()
        .unwrap();
    let out = rexe(
        &[
            &[
                "peg", "take", "--key", &bob_key, "--order", "0", "--amount", "100000",
            ][..],
            &l2[..],
        ]
        .concat(),
    );
    assert!(out.contains("\"amount_btc_owed\": 99700"), "{out}");
    let m = rpc(&node.rpc, &node.cookie, "getpegmatch", json!([0]));
    assert_eq!(m["state"], "open");
    assert_eq!(m["payee_script"]["address"], alice_btc.to_string());

    // Bob pays Alice on Bitcoin: one output to her script, the OP_RETURN, change.
    let cb_block = btc.call("getblockhash", json!([1])).unwrap();
    let cb_txid = btc.call("getblock", json!([cb_block, 1])).unwrap()["tx"][0]
        .as_str()
        .unwrap()
        .parse::<bitcoin::Txid>()
        .unwrap();
    let cb_value = Amount::from_sat(50 * 100_000_000);
    let commitment = rexe_bridge::peg::commitment_script(&[rexe_bridge::peg::MatchId(0)]);
    let mut tx = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint {
                txid: cb_txid,
                vout: 0,
            },
            script_sig: ScriptBuf::new(),
            sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
            witness: Witness::new(),
        }],
        output: vec![
            TxOut {
                value: Amount::from_sat(99_700),
                script_pubkey: alice_btc.script_pubkey(),
            },
            TxOut {
                value: Amount::ZERO,
                script_pubkey: commitment,
            },
            TxOut {
                value: cb_value - Amount::from_sat(99_700 + 2_000),
                script_pubkey: bob_btc.script_pubkey(),
            },
        ],
    };
    let sighash = SighashCache::new(&tx)
        .p2wpkh_signature_hash(0, &bob_btc.script_pubkey(), cb_value, EcdsaSighashType::All)
        .unwrap();
    let sig = secp.sign_ecdsa(&Message::from_digest(sighash.to_byte_array()), &bob_sk);
    tx.input[0].witness = Witness::p2wpkh(&bitcoin::ecdsa::Signature::sighash_all(sig), &bob_pk.0);
    let pay_txid = btc
        .call(
            "sendrawtransaction",
            json!([bitcoin::consensus::encode::serialize_hex(&tx)]),
        )
        .unwrap();
    let pay_txid = pay_txid.as_str().unwrap().to_string();

    // The claimer learns of the payment before it confirms and exits after one pass...
    let state = dir.path().join("claimer.sqlite");
    let claimer_base = [
        &[
            "peg",
            "claimer",
            "--key",
            &bob_key,
            "--state",
            state.to_str().unwrap(),
        ][..],
        &l2[..],
        &btc_args[..],
    ]
    .concat();
    let watch = format!("{pay_txid}:0");
    let out = rexe(&[&claimer_base[..], &["--watch", &watch, "--once"][..]].concat());
    assert!(out.contains("Waiting"), "{out}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&state).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // ...Bitcoin confirms it, the relayer brings the headers to the L2...
    btc.call("generatetoaddress", json!([1, bob_btc.to_string()]))
        .unwrap();
    rexe(
        &[
            &["peg", "relay", "--once", "--key", &bob_key][..],
            &l2[..],
            &btc_args[..],
        ]
        .concat(),
    );
    let info = rpc(&node.rpc, &node.cookie, "getpeginfo", json!([]));
    assert_eq!(info["btc_tip"]["height"], 102);
    // ...and the restarted claimer (work list from its file) claims.
    let out = rexe(&[&claimer_base[..], &["--until-done"][..]].concat());
    assert!(out.contains("Done"), "{out}");
    wait_for("the claim's payout", 30, || {
        rpc(&node.rpc, &node.cookie, "getpegmatch", json!([0]))["state"] == "claimed"
    });
    let m = rpc(&node.rpc, &node.cookie, "getpegmatch", json!([0]));
    assert_eq!(m["paid_by"], format!("{pay_txid}:0"));
    // Bob: +100,000 rxBTC, bond back, minus the three call fees after b0 (take, claim, the second relay).
    wait_for("Bob's credit", 30, || {
        let b = rpc(&node.rpc, &node.cookie, "getaccount", json!([bob]))["balance"]
            .as_u64()
            .unwrap();
        b == b0 + 100_000 - 3 * 200
    });
    // Alice's Bitcoin side: the payment is in a block.
    let v = btc
        .call("getrawtransaction", json!([pay_txid, true]))
        .unwrap();
    assert_eq!(v["confirmations"], 1);

    stop.store(true, Ordering::SeqCst);
    miner.join().unwrap();
    drop(node);
    btc_node.shutdown();
}
