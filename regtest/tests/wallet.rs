//! The embedded node's wallet RPCs over HTTP, as regtest scripts use bitcoind's wallet:
//! `createwallet`, addresses, mining to the wallet, balances, `sendtoaddress` between two
//! wallets through `/wallet/<name>`, Core's wallet-routing errors and persistence across a
//! restart.

use std::str::FromStr;

use rexe_regtest::{RegtestConfig, RegtestNode};
use serde_json::{json, Value};

mod common;
use common::*;

fn sats(v: &Value) -> i64 {
    (v.as_f64().unwrap_or_else(|| panic!("not a number: {v}")) * 1e8).round() as i64
}

/// An address no wallet owns (for mining blocks that pay nobody here).
fn elsewhere() -> String {
    key(7).addr.to_string()
}

#[test]
fn mine_send_between_wallets_and_balances() {
    let node = RegtestNode::start(RegtestConfig::default()).unwrap();
    assert_eq!(
        ok(&node, "createwallet", json!(["alice"])),
        json!({"name": "alice", "warning": ""})
    );
    // With one wallet loaded, it is the default: no /wallet/ path needed.
    let a_addr = ok(&node, "getnewaddress", json!([]));
    assert!(a_addr.as_str().unwrap().starts_with("bcrt1q"), "{a_addr}");
    let tr = ok(&node, "getnewaddress", json!(["", "bech32m"]));
    assert!(tr.as_str().unwrap().starts_with("bcrt1p"), "{tr}");
    let change = ok(&node, "getrawchangeaddress", json!([]));
    assert!(change.as_str().unwrap().starts_with("bcrt1q"));
    assert_ne!(change, a_addr);
    ok(&node, "generatetoaddress", json!([101, a_addr]));
    // Only the first coinbase has 101 confirmations (Core's wallet maturity).
    assert_eq!(sats(&ok(&node, "getbalance", json!([]))), 50 * 100_000_000);
    let b = ok(&node, "getbalances", json!([]));
    assert_eq!(sats(&b["mine"]["trusted"]), 50 * 100_000_000);
    assert_eq!(sats(&b["mine"]["untrusted_pending"]), 0);
    assert_eq!(sats(&b["mine"]["immature"]), 100 * 50 * 100_000_000);
    let utxos = ok(&node, "listunspent", json!([]));
    assert_eq!(utxos.as_array().unwrap().len(), 1, "{utxos}");
    assert_eq!(utxos[0]["address"], a_addr);
    assert_eq!(utxos[0]["confirmations"], json!(101));
    assert_eq!(sats(&utxos[0]["amount"]), 50 * 100_000_000);
    assert_eq!(utxos[0]["spendable"], json!(true));
    assert_eq!(utxos[0]["solvable"], json!(true));
    assert_eq!(utxos[0]["safe"], json!(true));
    assert!(utxos[0]["scriptPubKey"]
        .as_str()
        .unwrap()
        .starts_with("0014"));

    // A second wallet: now every wallet call must name its wallet.
    ok(&node, "createwallet", json!({"wallet_name": "bob"}));
    let mut names: Vec<String> =
        serde_json::from_value(ok(&node, "listwallets", json!([]))).unwrap();
    names.sort();
    assert_eq!(names, ["alice", "bob"]);
    let r = rpc(&node, "getbalance", json!([]));
    assert_eq!(r["error"]["code"], json!(-19), "{r}");
    assert_eq!(
        r["error"]["message"],
        json!("Wallet file not specified (must request wallet RPC through /wallet/<filename> uri-path).")
    );
    let b_addr = wok(&node, "bob", "getnewaddress", json!([]));

    let amount = 1.25;
    let txid = wok(&node, "alice", "sendtoaddress", json!([b_addr, amount]));
    assert_eq!(ok(&node, "getrawmempool", json!([])), json!([txid]));
    let t = wok(&node, "alice", "gettransaction", json!([txid]));
    assert_eq!(t["txid"], txid);
    assert_eq!(t["confirmations"], json!(0));
    assert_eq!(sats(&t["amount"]), -125_000_000);
    let fee = -sats(&t["fee"]);
    assert!(fee > 0 && fee < 10_000, "fee {fee}");
    assert!(t["hex"].as_str().unwrap().len() > 100);
    let sent = t["details"].as_array().unwrap();
    assert_eq!(sent.len(), 1, "{t}");
    assert_eq!(sent[0]["category"], json!("send"));
    assert_eq!(sent[0]["address"], b_addr);
    // The change is the sender's own: trusted at once, so the balance drops by amount + fee.
    assert_eq!(
        sats(&wok(&node, "alice", "getbalance", json!([]))),
        50 * 100_000_000 - 125_000_000 - fee
    );
    // The receiver sees it unconfirmed, untrusted.
    let bb = wok(&node, "bob", "getbalances", json!([]));
    assert_eq!(sats(&bb["mine"]["untrusted_pending"]), 125_000_000);
    assert_eq!(sats(&bb["mine"]["trusted"]), 0);
    assert_eq!(sats(&wok(&node, "bob", "getbalance", json!([]))), 0);

    ok(&node, "generatetoaddress", json!([1, elsewhere()]));
    assert_eq!(
        sats(&wok(&node, "bob", "getbalance", json!([]))),
        125_000_000
    );
    let bu = wok(&node, "bob", "listunspent", json!([]));
    assert_eq!(bu.as_array().unwrap().len(), 1, "{bu}");
    assert_eq!(bu[0]["txid"], txid);
    assert_eq!(bu[0]["address"], b_addr);
    assert_eq!(bu[0]["confirmations"], json!(1));
    assert_eq!(sats(&bu[0]["amount"]), 125_000_000);
    let bt = wok(&node, "bob", "gettransaction", json!([txid]));
    assert_eq!(bt["confirmations"], json!(1));
    assert_eq!(sats(&bt["amount"]), 125_000_000);
    assert_eq!(bt["details"][0]["category"], json!("receive"));
    assert!(bt.get("fee").is_none());
    // Alice: the second coinbase matured with the new block.
    assert_eq!(
        sats(&wok(&node, "alice", "getbalance", json!([]))),
        100 * 100_000_000 - 125_000_000 - fee
    );
    assert_eq!(
        wok(&node, "alice", "gettransaction", json!([txid]))["confirmations"],
        json!(1)
    );

    // Bob pays back to a taproot address of Alice's.
    let a_tr = wok(
        &node,
        "alice",
        "getnewaddress",
        json!({"address_type": "bech32m"}),
    );
    let back = wok(
        &node,
        "bob",
        "sendtoaddress",
        json!({"address": a_tr, "amount": 0.5}),
    );
    ok(&node, "generatetoaddress", json!([1, elsewhere()]));
    let at = wok(&node, "alice", "gettransaction", json!([back]));
    assert_eq!(sats(&at["amount"]), 50_000_000);
    let au = wok(&node, "alice", "listunspent", json!([1, 9_999_999, [a_tr]]));
    assert_eq!(au.as_array().unwrap().len(), 1, "{au}");
    assert!(au[0]["scriptPubKey"].as_str().unwrap().starts_with("5120"));

    // Errors: too much, unknown transaction.
    let r = wrpc(&node, "bob", "sendtoaddress", json!([a_addr, 1000]));
    assert_eq!(r["error"]["code"], json!(-6), "{r}");
    assert_eq!(r["error"]["message"], json!("Insufficient funds"));
    let r = wrpc(&node, "bob", "gettransaction", json!(["00".repeat(32)]));
    assert_eq!(r["error"]["code"], json!(-5), "{r}");
}

#[test]
fn wallet_routing_errors() {
    let node = RegtestNode::start(RegtestConfig::default()).unwrap();
    // No wallet loaded.
    let r = rpc(&node, "getnewaddress", json!([]));
    assert_eq!(r["error"]["code"], json!(-18), "{r}");
    assert_eq!(ok(&node, "listwallets", json!([])), json!([]));
    ok(&node, "createwallet", json!(["w1"]));
    // Unknown wallet in the path.
    let r = wrpc(&node, "nope", "getbalance", json!([]));
    assert_eq!(r["error"]["code"], json!(-18), "{r}");
    assert_eq!(
        r["error"]["message"],
        json!("Requested wallet does not exist or is not loaded")
    );
    let r = rpc(&node, "unloadwallet", json!(["nope"]));
    assert_eq!(r["error"]["code"], json!(-18), "{r}");
    // Creating it again: Core's "Database already exists." (-4).
    let r = rpc(&node, "createwallet", json!(["w1"]));
    assert_eq!(r["error"]["code"], json!(-4), "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .ends_with("Database already exists."),
        "{r}"
    );
    ok(&node, "createwallet", json!(["w2"]));
    let r = rpc(&node, "getnewaddress", json!([]));
    assert_eq!(r["error"]["code"], json!(-19), "{r}");
    // Percent-encoded names in the path, as Core decodes them.
    ok(&node, "createwallet", json!(["with space"]));
    assert!(wok(&node, "with%20space", "getnewaddress", json!([])).is_string());
    let r = wrpc(&node, "w1", "getnewaddress", json!(["", "legacy"]));
    assert!(r["error"]["code"].is_i64(), "{r}");
    let r = wrpc(&node, "w1", "getnewaddress", json!(["", "foo"]));
    assert_eq!(r["error"]["code"], json!(-5), "{r}");
    // Unloading through the path; then w2 and "with space" remain.
    assert_eq!(
        wok(&node, "w1", "unloadwallet", json!([])),
        json!({"warning": ""})
    );
    assert_eq!(
        ok(&node, "unloadwallet", json!(["with space"])),
        json!({"warning": ""})
    );
    assert_eq!(ok(&node, "listwallets", json!([])), json!(["w2"]));
    // One left: the default again.
    assert!(ok(&node, "getnewaddress", json!([])).is_string());
}

#[test]
fn wallets_persist_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = RegtestConfig {
        datadir: Some(dir.path().to_path_buf()),
        ..RegtestConfig::default()
    };
    let (addr, balance, utxos) = {
        let node = RegtestNode::start(cfg.clone()).unwrap();
        ok(&node, "createwallet", json!(["keep"]));
        let addr = ok(&node, "getnewaddress", json!([]));
        ok(&node, "generatetoaddress", json!([102, addr]));
        let to = ok(&node, "getnewaddress", json!([]));
        ok(&node, "sendtoaddress", json!([to, 3]));
        ok(&node, "generatetoaddress", json!([1, elsewhere()]));
        let balance = ok(&node, "getbalance", json!([]));
        assert!(sats(&balance) > 99 * 100_000_000, "{balance}");
        let utxos = ok(&node, "listunspent", json!([]));
        // A second wallet, loaded on startup (Core's settings.json "wallet" list).
        ok(
            &node,
            "createwallet",
            json!({"wallet_name": "auto", "load_on_startup": true}),
        );
        ok(
            &node,
            "createwallet",
            json!({"wallet_name": "gone", "load_on_startup": true}),
        );
        ok(
            &node,
            "unloadwallet",
            json!({"wallet_name": "gone", "load_on_startup": false}),
        );
        node.shutdown();
        (addr, balance, utxos)
    };
    use std::os::unix::fs::PermissionsExt;
    let main = dir.path().join("wallets/keep.sqlite");
    let mode = std::fs::metadata(&main).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let bip86 = dir.path().join("wallets/keep.sqlite-bip86");
    let mode = std::fs::metadata(&bip86).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let wdir = std::fs::metadata(dir.path().join("wallets")).unwrap();
    assert_eq!(wdir.permissions().mode() & 0o777, 0o700);

    let node = RegtestNode::start(cfg).unwrap();
    // Like Core, only the wallets set to load on startup are loaded; loadwallet brings the
    // others back.
    assert_eq!(ok(&node, "listwallets", json!([])), json!(["auto"]));
    assert_eq!(
        ok(&node, "unloadwallet", json!(["auto"])),
        json!({"warning": ""})
    );
    let r = rpc(&node, "createwallet", json!(["keep"]));
    assert_eq!(r["error"]["code"], json!(-4), "{r}");
    let r = rpc(&node, "loadwallet", json!(["missing"]));
    assert_eq!(r["error"]["code"], json!(-18), "{r}");
    assert_eq!(
        ok(&node, "loadwallet", json!(["keep"])),
        json!({"name": "keep", "warning": ""})
    );
    let r = rpc(&node, "loadwallet", json!(["keep"]));
    assert_eq!(r["error"]["code"], json!(-35), "{r}");
    assert_eq!(ok(&node, "getbalance", json!([])), balance);
    assert_eq!(ok(&node, "listunspent", json!([])), utxos);
    // Addresses continue after the ones handed out, and the keys still sign.
    let next = ok(&node, "getnewaddress", json!([]));
    assert_ne!(next, addr);
    ok(&node, "sendtoaddress", json!([next, 1]));
    ok(&node, "generatetoaddress", json!([1, elsewhere()]));
    // Mining one more block matured one more coinbase; the self-send cost only a fee.
    let after = sats(&ok(&node, "getbalance", json!([])));
    let before = sats(&balance) + 50 * 100_000_000;
    assert!(
        after < before && after > before - 100_000,
        "{after} vs {before}"
    );
}

#[test]
fn reorg_returns_wallet_payment_to_unconfirmed() {
    let node = RegtestNode::start(RegtestConfig::default()).unwrap();
    ok(&node, "createwallet", json!(["a"]));
    let addr = ok(&node, "getnewaddress", json!([]));
    ok(&node, "generatetoaddress", json!([101, addr]));
    let to = key(9).addr.to_string();
    let txid = ok(&node, "sendtoaddress", json!([to, 2]));
    let hash = ok(&node, "generatetoaddress", json!([1, elsewhere()]))[0].clone();
    assert_eq!(
        ok(&node, "gettransaction", json!([txid]))["confirmations"],
        json!(1)
    );
    // Disconnect the block: the payment goes back to the mempool and to 0 confirmations.
    ok(&node, "invalidateblock", json!([hash]));
    let t = ok(&node, "gettransaction", json!([txid]));
    assert_eq!(t["confirmations"], json!(0), "{t}");
    // A longer other branch (another coinbase, so not the invalidated block) confirms it again.
    ok(
        &node,
        "generatetoaddress",
        json!([2, key(8).addr.to_string()]),
    );
    let t = ok(&node, "gettransaction", json!([txid]));
    assert_eq!(t["confirmations"], json!(2), "{t}");
    assert_ne!(t["blockhash"], hash);
}

#[test]
fn sendmany_psbts_raw_signing_and_listtransactions() {
    use bitcoin::base64::Engine as _;
    let node = RegtestNode::start(RegtestConfig::default()).unwrap();
    ok(&node, "createwallet", json!(["a"]));
    ok(&node, "createwallet", json!(["b"]));
    let a_addr = wok(&node, "a", "getnewaddress", json!([]));
    ok(&node, "generatetoaddress", json!([101, a_addr]));

    // sendmany to two of b's addresses.
    let b1 = wok(&node, "b", "getnewaddress", json!([]));
    let b2 = wok(&node, "b", "getnewaddress", json!(["", "bech32m"]));
    let many = wok(
        &node,
        "a",
        "sendmany",
        json!(["", {b1.as_str().unwrap(): 1, b2.as_str().unwrap(): "2.5"}]),
    );
    ok(&node, "generatetoaddress", json!([1, elsewhere()]));
    assert_eq!(sats(&wok(&node, "b", "getbalance", json!([]))), 350_000_000);
    assert_eq!(
        wok(&node, "b", "listunspent", json!([]))
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // walletcreatefundedpsbt + walletprocesspsbt, broadcast with sendrawtransaction.
    let funded = wok(
        &node,
        "a",
        "walletcreatefundedpsbt",
        json!([[], [{b1.as_str().unwrap(): 0.5}], 0, {"fee_rate": 3}]),
    );
    assert!(sats(&funded["fee"]) > 0, "{funded}");
    assert!(funded["changepos"].as_i64().unwrap() >= 0, "{funded}");
    let unsigned_psbt = funded["psbt"].clone();
    let processed = wok(&node, "a", "walletprocesspsbt", json!([unsigned_psbt]));
    assert_eq!(processed["complete"], json!(true), "{processed}");
    let psbt_txid = ok(&node, "sendrawtransaction", json!([processed["hex"]]));
    // b cannot sign a's inputs.
    let other = wok(&node, "b", "walletprocesspsbt", json!([unsigned_psbt]));
    assert_eq!(other["complete"], json!(false), "{other}");

    // signrawtransactionwithwallet on the unsigned transaction of a new funded PSBT.
    let funded = wok(
        &node,
        "a",
        "walletcreatefundedpsbt",
        json!([[], {b2.as_str().unwrap(): 0.25}]),
    );
    let raw = bitcoin::base64::engine::general_purpose::STANDARD
        .decode(funded["psbt"].as_str().unwrap())
        .unwrap();
    let psbt = bitcoin::Psbt::deserialize(&raw).unwrap();
    let unsigned = bitcoin::consensus::encode::serialize_hex(&psbt.unsigned_tx);
    let r = wok(
        &node,
        "b",
        "signrawtransactionwithwallet",
        json!([unsigned]),
    );
    assert_eq!(r["complete"], json!(false), "{r}");
    assert!(!r["errors"].as_array().unwrap().is_empty());
    let r = wok(
        &node,
        "a",
        "signrawtransactionwithwallet",
        json!([unsigned]),
    );
    assert_eq!(r["complete"], json!(true), "{r}");
    let raw_txid = ok(&node, "sendrawtransaction", json!([r["hex"]]));
    ok(&node, "generatetoaddress", json!([1, elsewhere()]));
    assert_eq!(
        sats(&wok(&node, "b", "getbalance", json!([]))),
        350_000_000 + 50_000_000 + 25_000_000
    );

    // listtransactions: a's sends, oldest first; b's receives.
    let lt = wok(&node, "a", "listtransactions", json!(["*", 1000]));
    let sends: Vec<&Value> = lt
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["category"] == json!("send"))
        .collect();
    let ids: Vec<&Value> = sends.iter().map(|e| &e["txid"]).collect();
    assert_eq!(ids, [&many, &many, &psbt_txid, &raw_txid], "{lt}");
    assert!(sends
        .iter()
        .all(|e| sats(&e["fee"]) < 0 && sats(&e["amount"]) < 0));
    assert_eq!(sends[2]["confirmations"], json!(1));
    let generated = lt
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["category"] == json!("generate") || e["category"] == json!("immature"))
        .count();
    assert_eq!(generated, 101);
    let lb = wok(&node, "b", "listtransactions", json!([]));
    assert_eq!(lb.as_array().unwrap().len(), 4, "{lb}");
    assert!(lb
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["category"] == json!("receive")));
    assert_eq!(
        wok(&node, "b", "listtransactions", json!(["*", 2, 1]))
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn a_payment_can_spend_bech32_and_bech32m_coins_together() {
    let node = RegtestNode::start(RegtestConfig::default()).unwrap();
    ok(&node, "createwallet", json!(["a"]));
    let addr = ok(&node, "getnewaddress", json!([]));
    ok(&node, "generatetoaddress", json!([101, addr]));
    // 30 of the 50 BTC move to the wallet's own taproot address: ~20 left in bech32 change.
    let tr = ok(&node, "getnewaddress", json!(["", "bech32m"]));
    ok(&node, "sendtoaddress", json!([tr, 30]));
    let b = ok(&node, "getbalances", json!([]));
    let total = sats(&b["mine"]["trusted"]);
    assert!(total > 4_999_000_000, "{b}");
    // 45 BTC need coins of both kinds.
    let txid = ok(&node, "sendtoaddress", json!([elsewhere(), 45]));
    let t = ok(&node, "gettransaction", json!([txid, false, true]));
    assert_eq!(t["decoded"]["vin"].as_array().unwrap().len(), 2, "{t}");
    ok(&node, "generatetoaddress", json!([1, elsewhere()]));
    let after = sats(&ok(&node, "getbalance", json!([])));
    // Mature now: the second coinbase (50) plus what is left of the first.
    let fee = -sats(&t["fee"]);
    assert_eq!(after, total - 4_500_000_000 - fee + 5_000_000_000);
}

/// The value `tx` (a `decoderawtransaction` answer) pays to `address`, sats.
fn paid_to(tx: &Value, address: &Value) -> i64 {
    tx["vout"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["scriptPubKey"]["address"] == *address)
        .map(|o| sats(&o["value"]))
        .sum()
}

/// The fee of a mempool transaction and its fee rate's bounds check: `rate` sat/vB on the
/// signed transaction's vsize (the wallet's estimate may exceed the signed size by a byte
/// or so per input, never fall short).
fn fee_at_rate(node: &RegtestNode, txid: &Value, rate: i64) -> i64 {
    let e = ok(node, "getmempoolentry", json!([txid]));
    let fee = sats(&e["fees"]["base"]);
    let vsize = e["vsize"].as_i64().unwrap();
    assert!(
        fee >= rate * vsize && fee <= rate * (vsize + 4),
        "fee {fee} for vsize {vsize} at {rate} sat/vB"
    );
    fee
}

#[test]
fn fees_are_subtracted_from_amounts_as_core_does() {
    let node = RegtestNode::start(RegtestConfig::default()).unwrap();
    ok(&node, "createwallet", json!(["alice"]));
    ok(&node, "createwallet", json!(["bob"]));
    let a_addr = wok(&node, "alice", "getnewaddress", json!([]));
    ok(&node, "generatetoaddress", json!([101, a_addr]));
    let b1 = wok(&node, "bob", "getnewaddress", json!([]));
    let b2 = wok(&node, "bob", "getnewaddress", json!(["", "bech32m"]));

    // sendtoaddress: the payee gets the amount less the fee; the payer pays the amount.
    let txid = wok(
        &node,
        "alice",
        "sendtoaddress",
        json!({"address": b1, "amount": 1.0, "subtractfeefromamount": true, "fee_rate": 5}),
    );
    let fee = fee_at_rate(&node, &txid, 5);
    let hex = wok(&node, "alice", "gettransaction", json!([txid]))["hex"].clone();
    let tx = ok(&node, "decoderawtransaction", json!([hex]));
    assert_eq!(paid_to(&tx, &b1), 100_000_000 - fee);
    assert_eq!(
        sats(&wok(&node, "alice", "getbalance", json!([]))),
        50 * 100_000_000 - 100_000_000,
        "the payer's balance drops by the amount alone"
    );
    ok(&node, "generatetoaddress", json!([1, elsewhere()]));

    // sendmany: two outputs share the fee; the first also pays the remainder.
    let txid = wok(
        &node,
        "alice",
        "sendmany",
        json!({"dummy": "", "amounts": {b1.as_str().unwrap(): 0.3, b2.as_str().unwrap(): 0.2},
               "subtractfeefrom": [b1, b2], "fee_rate": 3}),
    );
    let fee = fee_at_rate(&node, &txid, 3);
    let hex = wok(&node, "alice", "gettransaction", json!([txid]))["hex"].clone();
    let tx = ok(&node, "decoderawtransaction", json!([hex]));
    let (p1, p2) = (paid_to(&tx, &b1), paid_to(&tx, &b2));
    assert_eq!(p1 + p2 + fee, 50_000_000);
    let (share, first) = (fee / 2, fee / 2 + fee % 2);
    let mut cuts = [30_000_000 - p1, 20_000_000 - p2];
    cuts.sort();
    assert_eq!(cuts, [share, first], "equal parts of {fee}");
    // A subtractfeefrom address that is not paid is refused.
    let r = wrpc(
        &node,
        "alice",
        "sendmany",
        json!(["", {b1.as_str().unwrap(): 0.1}, 1, "", [b2]]),
    );
    assert_eq!(r["error"]["code"], json!(-8), "{r}");
    ok(&node, "generatetoaddress", json!([1, elsewhere()]));

    // walletcreatefundedpsbt: subtractFeeFromOutputs by output position.
    let r = wok(
        &node,
        "alice",
        "walletcreatefundedpsbt",
        json!({"inputs": [], "outputs": [{"data": "00"}, {b2.as_str().unwrap(): 0.4}],
               "options": {"subtractFeeFromOutputs": [1], "fee_rate": 2}}),
    );
    let fee = sats(&r["fee"]);
    assert!(fee > 0, "{r}");
    let signed = wok(&node, "alice", "walletprocesspsbt", json!([r["psbt"]]));
    let tx = ok(&node, "decoderawtransaction", json!([signed["hex"]]));
    assert_eq!(paid_to(&tx, &b2), 40_000_000 - fee);
    let r = wrpc(
        &node,
        "alice",
        "walletcreatefundedpsbt",
        json!([[], [{"data": "00"}, {b2.as_str().unwrap(): 0.4}], 0, {"subtractFeeFromOutputs": [0]}]),
    );
    assert_eq!(
        r["error"]["code"],
        json!(-8),
        "a data output pays no fee: {r}"
    );

    // An amount that cannot pay the fee, then one left below dust once it has.
    let r = wrpc(
        &node,
        "alice",
        "sendtoaddress",
        json!({"address": b1, "amount": 0.000002, "subtractfeefromamount": true, "fee_rate": 10}),
    );
    assert_eq!(r["error"]["code"], json!(-6), "{r}");
    assert_eq!(
        r["error"]["message"],
        json!("The transaction amount is too small to pay the fee"),
        "{r}"
    );
    let r = wrpc(
        &node,
        "alice",
        "sendtoaddress",
        json!({"address": b1, "amount": 0.000016, "subtractfeefromamount": true, "fee_rate": 10}),
    );
    assert_eq!(r["error"]["code"], json!(-6), "{r}");
    assert_eq!(
        r["error"]["message"],
        json!("The transaction amount is too small to send after the fee has been deducted"),
        "{r}"
    );

    // Sweeping: the whole balance, fee out of it, no change left behind.
    let all = wok(&node, "alice", "getbalance", json!([]));
    let txid = wok(
        &node,
        "alice",
        "sendtoaddress",
        json!({"address": b1, "amount": all, "subtractfeefromamount": true}),
    );
    let fee = fee_at_rate(&node, &txid, 2);
    let hex = wok(&node, "alice", "gettransaction", json!([txid]))["hex"].clone();
    let tx = ok(&node, "decoderawtransaction", json!([hex]));
    assert_eq!(tx["vout"].as_array().unwrap().len(), 1, "{tx}");
    assert_eq!(paid_to(&tx, &b1), sats(&all) - fee);
    assert_eq!(sats(&wok(&node, "alice", "getbalance", json!([]))), 0);
}

#[test]
fn labels_file_addresses_and_filter_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let node = RegtestNode::start(RegtestConfig {
        datadir: Some(dir.path().to_path_buf()),
        ..RegtestConfig::default()
    })
    .unwrap();
    ok(&node, "createwallet", json!(["w"]));
    let mined = ok(&node, "getnewaddress", json!(["mining"]));
    let plain = ok(&node, "getnewaddress", json!([]));
    let savings = ok(
        &node,
        "getnewaddress",
        json!({"label": "savings", "address_type": "bech32m"}),
    );
    let theirs = elsewhere();
    ok(&node, "setlabel", json!([theirs, "shop"]));
    ok(&node, "generatetoaddress", json!([101, mined]));
    let to_savings = ok(&node, "sendtoaddress", json!([savings, 2]));
    let to_shop = ok(&node, "sendtoaddress", json!([theirs, 1]));
    ok(&node, "generatetoaddress", json!([1, elsewhere()]));

    // The address book: every getnewaddress address is filed ("" by default).
    assert_eq!(
        ok(&node, "listlabels", json!([])),
        json!(["", "mining", "savings", "shop"])
    );
    assert_eq!(
        ok(&node, "listlabels", json!(["receive"])),
        json!(["", "mining", "savings"])
    );
    assert_eq!(ok(&node, "listlabels", json!(["send"])), json!(["shop"]));
    assert_eq!(
        ok(&node, "getaddressesbylabel", json!(["savings"])),
        json!({ savings.as_str().unwrap(): {"purpose": "receive"} })
    );
    assert_eq!(
        ok(&node, "getaddressesbylabel", json!([""])),
        json!({ plain.as_str().unwrap(): {"purpose": "receive"} })
    );
    assert_eq!(
        ok(&node, "getaddressesbylabel", json!(["shop"])),
        json!({ theirs.as_str(): {"purpose": "send"} })
    );
    let r = rpc(&node, "getaddressesbylabel", json!(["nobody"]));
    assert_eq!(r["error"]["code"], json!(-11), "{r}");
    assert_eq!(
        r["error"]["message"],
        json!("No addresses with label nobody")
    );
    for bad in [json!(["*"]), json!({"label": "*"})] {
        let r = rpc(&node, "getnewaddress", bad);
        assert_eq!(r["error"]["code"], json!(-11), "{r}");
    }
    let r = rpc(&node, "setlabel", json!(["not-an-address", "x"]));
    assert_eq!(r["error"]["code"], json!(-5), "{r}");

    // Labels on coins and transactions.
    let utxos = ok(&node, "listunspent", json!([1, 9_999_999, [savings]]));
    assert_eq!(utxos[0]["label"], json!("savings"), "{utxos}");
    let t = ok(&node, "gettransaction", json!([to_shop]));
    assert_eq!(t["details"][0]["label"], json!("shop"), "{t}");
    let listed = ok(&node, "listtransactions", json!(["savings"]));
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["txid"], to_savings);
    assert_eq!(listed[0]["category"], json!("receive"));
    // Sends are listed under no label, only with "*".
    assert!(ok(&node, "listtransactions", json!(["shop"]))
        .as_array()
        .unwrap()
        .is_empty());
    let all = ok(&node, "listtransactions", json!(["*", 1000]));
    assert!(all
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["category"] == "send" && e["label"] == "shop"));

    // Renamed, then kept across unload and load.
    ok(&node, "setlabel", json!([savings, "rainy day"]));
    ok(&node, "unloadwallet", json!(["w"]));
    ok(&node, "loadwallet", json!(["w"]));
    assert_eq!(
        ok(&node, "getaddressesbylabel", json!(["rainy day"])),
        json!({ savings.as_str().unwrap(): {"purpose": "receive"} })
    );
    assert_eq!(
        ok(&node, "listlabels", json!([])),
        json!(["", "mining", "rainy day", "shop"])
    );
}

/// The fee rate a mempool transaction pays, in sat/vB.
fn rate_of(node: &RegtestNode, txid: &Value) -> f64 {
    let e = ok(node, "getmempoolentry", json!([txid]));
    sats(&e["fees"]["base"]) as f64 / e["vsize"].as_f64().unwrap()
}

#[test]
fn fee_estimates_follow_what_recent_blocks_confirmed() {
    let node = RegtestNode::start(RegtestConfig::default()).unwrap();
    ok(&node, "createwallet", json!(["alice"]));
    let a = wok(&node, "alice", "getnewaddress", json!([]));
    ok(&node, "generatetoaddress", json!([101, a]));
    // Only coinbases so far: no estimate, in Core's words.
    let none = json!({"errors": ["Insufficient data or no feerate found"], "blocks": 0});
    assert_eq!(ok(&node, "estimatesmartfee", json!([6])), none);
    // Core's range and mode checks.
    for (params, msg) in [
        (json!([0]), "Invalid conf_target, must be between 1 and 1008"),
        (json!([1009]), "Invalid conf_target, must be between 1 and 1008"),
        (
            json!([6, "fast"]),
            "Invalid estimate_mode parameter, must be one of: \"unset\", \"economical\", \"conservative\"",
        ),
    ] {
        let r = rpc(&node, "estimatesmartfee", params);
        assert_eq!(r["error"]["code"], json!(-8), "{r}");
        assert_eq!(r["error"]["message"], json!(msg), "{r}");
    }
    // With no estimate a send pays the fallback rate (2 sat/vB).
    let b = key(8).addr.to_string();
    let t = wok(&node, "alice", "sendtoaddress", json!([b, 0.1]));
    let r = rate_of(&node, &t);
    assert!((1.9..2.1).contains(&r), "{r}");
    // Ten payments at 3..=12 sat/vB, confirmed in one block (with the one above).
    for rate in 3..=12 {
        wok(
            &node,
            "alice",
            "sendtoaddress",
            json!({"address": b, "amount": 0.1, "fee_rate": rate}),
        );
    }
    ok(&node, "generatetoaddress", json!([1, elsewhere()]));
    // Economical: the median of what the last 6 blocks paid; conservative: the 85th
    // percentile over 12 (Core's default mode).
    let feerate = |params: Value| {
        let r = ok(&node, "estimatesmartfee", params);
        assert_eq!(r["blocks"], json!(6), "{r}");
        r["feerate"].as_f64().unwrap() * 1e5
    };
    let eco = feerate(json!([6, "ECONOMICAL"]));
    assert!((6.9..7.1).contains(&eco), "{eco}");
    let cons = feerate(json!([6]));
    assert!((10.9..11.1).contains(&cons), "{cons}");
    // An explicit null is the default, as in Core (electrs asks `[n, null]`).
    assert_eq!(feerate(json!([6, null])), cons);
    // The wallet uses the estimate: its default target (6), economical when the
    // transaction signals RBF (the default) and conservative when it does not; or the
    // mode and target named.
    let t = wok(&node, "alice", "sendtoaddress", json!([b, 0.1]));
    assert!((6.9..7.2).contains(&rate_of(&node, &t)), "default");
    let t = wok(
        &node,
        "alice",
        "sendtoaddress",
        json!({"address": b, "amount": 0.1, "replaceable": false}),
    );
    assert!(
        (10.9..11.2).contains(&rate_of(&node, &t)),
        "not replaceable"
    );
    let t = wok(
        &node,
        "alice",
        "sendmany",
        json!({"dummy": "", "amounts": {b.clone(): 0.1}, "conf_target": 3, "estimate_mode": "conservative"}),
    );
    assert!((10.9..11.2).contains(&rate_of(&node, &t)), "sendmany");
    let p = wok(
        &node,
        "alice",
        "walletcreatefundedpsbt",
        json!([[], [{b.clone(): 0.1}], 0, {"conf_target": 2, "estimate_mode": "economical"}]),
    );
    assert!(sats(&p["fee"]) > 0, "{p}");
    // Core's refusals when both a target and a rate are given.
    let r = wrpc(
        &node,
        "alice",
        "sendtoaddress",
        json!({"address": b, "amount": 0.1, "conf_target": 2, "fee_rate": 5}),
    );
    assert_eq!(r["error"]["code"], json!(-8), "{r}");
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("Cannot specify both conf_target and fee_rate"));
    let r = wrpc(
        &node,
        "alice",
        "sendtoaddress",
        json!({"address": b, "amount": 0.1, "estimate_mode": "economical", "fee_rate": 5}),
    );
    assert_eq!(
        r["error"]["message"],
        json!("Cannot specify both estimate_mode and fee_rate"),
        "{r}"
    );
    // Once those blocks are older than the window, the estimate is gone again.
    ok(&node, "generatetoaddress", json!([13, elsewhere()]));
    assert_eq!(ok(&node, "estimatesmartfee", json!([6])), none);
}

#[test]
fn wallet_and_address_info_as_core_reports_them() {
    let node = RegtestNode::start(RegtestConfig::default()).unwrap();
    ok(&node, "createwallet", json!(["alice"]));
    let a = wok(&node, "alice", "getnewaddress", json!(["savings"]));
    let a = a.as_str().unwrap().to_string();
    ok(&node, "generatetoaddress", json!([101, a]));
    let info = wok(&node, "alice", "getwalletinfo", json!([]));
    assert_eq!(info["walletname"], json!("alice"), "{info}");
    assert_eq!(info["descriptors"], json!(true));
    assert_eq!(info["private_keys_enabled"], json!(true));
    assert_eq!(info["format"], json!("sqlite"));
    // 101 coinbases to the wallet.
    assert_eq!(info["txcount"], json!(101), "{info}");
    assert_eq!(info["lastprocessedblock"]["height"], json!(101));
    // One of its receive addresses: the key path, the descriptor, the label.
    let i = wok(&node, "alice", "getaddressinfo", json!([a]));
    assert_eq!(i["ismine"], json!(true), "{i}");
    assert_eq!(i["solvable"], json!(true));
    assert_eq!(i["ischange"], json!(false));
    assert_eq!(i["iswitness"], json!(true));
    assert_eq!(i["witness_version"], json!(0));
    assert_eq!(i["hdkeypath"], json!("m/84h/1h/0h/0/0"), "{i}");
    assert_eq!(i["labels"], json!(["savings"]));
    // The key's descriptor as Core writes it, and the descriptor it comes from.
    let fp = i["hdmasterfingerprint"].as_str().unwrap();
    let desc = i["desc"].as_str().unwrap();
    assert!(
        desc.starts_with(&format!("wpkh([{fp}/84h/1h/0h/0/0]0")),
        "{i}"
    );
    let parent = i["parent_desc"].as_str().unwrap();
    assert!(
        parent.starts_with(&format!("wpkh([{fp}/84h/1h/0h]tpub")),
        "{i}"
    );
    assert!(parent.contains("/0/*)#"), "{i}");
    // Both parse, checksums included, and the key's descriptor is the address's script.
    use bdk_wallet::miniscript::{Descriptor, DescriptorPublicKey};
    let d = Descriptor::<DescriptorPublicKey>::from_str(desc).expect("Core's form parses");
    let spk = d.at_derivation_index(0).unwrap().script_pubkey();
    assert_eq!(
        spk.to_hex_string(),
        i["scriptPubKey"].as_str().unwrap(),
        "{desc}"
    );
    Descriptor::<DescriptorPublicKey>::from_str(parent).expect("parent parses");
    // listunspent gives its coins' descriptors the same way.
    let u = wok(&node, "alice", "listunspent", json!([]));
    assert_eq!(u[0]["desc"], json!(desc), "{u}");
    // A change address and a taproot one.
    let c = wok(&node, "alice", "getrawchangeaddress", json!([]));
    let i = wok(&node, "alice", "getaddressinfo", json!([c]));
    assert_eq!(i["ischange"], json!(true), "{i}");
    assert_eq!(i["hdkeypath"], json!("m/84h/1h/0h/1/0"));
    let t = wok(&node, "alice", "getnewaddress", json!(["", "bech32m"]));
    let i = wok(&node, "alice", "getaddressinfo", json!([t]));
    assert_eq!(i["witness_version"], json!(1), "{i}");
    assert_eq!(i["hdkeypath"], json!("m/86h/1h/0h/0/0"));
    // Somebody else's address.
    let i = wok(&node, "alice", "getaddressinfo", json!([elsewhere()]));
    assert_eq!(i["ismine"], json!(false), "{i}");
    assert!(i.get("hdkeypath").is_none());
    // A bad address is Core's -5.
    let r = wrpc(&node, "alice", "getaddressinfo", json!(["nope"]));
    assert_eq!(r["error"]["code"], json!(-5), "{r}");
}
