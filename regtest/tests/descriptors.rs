//! Descriptor wallets beyond the node's own keys, as regtest scripts drive Core's: blank and
//! watch-only wallets (`createwallet … disable_private_keys`/`blank`), `importdescriptors`,
//! `listdescriptors`, `getdescriptorinfo` and `deriveaddresses`, and the watch-only wallet
//! that funds a PSBT another wallet signs (Core's `doc/psbt.md` workflow).

use rexe_regtest::{RegtestConfig, RegtestNode};
use serde_json::{json, Value};

mod common;
use common::*;

fn sats(v: &Value) -> i64 {
    (v.as_f64().unwrap_or_else(|| panic!("not a number: {v}")) * 1e8).round() as i64
}

/// A fixed regtest master key's BIP84 descriptors, private: receive, change.
fn private_descriptors(seed: u8) -> [String; 2] {
    let master = bitcoin::bip32::Xpriv::new_master(bitcoin::Network::Regtest, &[seed; 32]).unwrap();
    [
        format!("wpkh({master}/84h/1h/0h/0/*)"),
        format!("wpkh({master}/84h/1h/0h/1/*)"),
    ]
}

/// `desc` with the checksum `getdescriptorinfo` gives it.
fn with_checksum(node: &RegtestNode, desc: &str) -> String {
    let info = ok(node, "getdescriptorinfo", json!([desc]));
    format!("{desc}#{}", info["checksum"].as_str().unwrap())
}

/// A wallet `miner` with mature coins; its mining address.
fn miner(node: &RegtestNode) -> Value {
    ok(node, "createwallet", json!(["miner"]));
    let mined = wok(node, "miner", "getnewaddress", json!([]));
    ok(node, "generatetoaddress", json!([101, mined]));
    mined
}

fn error_of(v: &Value) -> (i64, String) {
    (
        v["error"]["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("no error: {v}")),
        v["error"]["message"].as_str().unwrap().to_string(),
    )
}

#[test]
fn a_watch_only_wallet_funds_a_psbt_that_a_signer_wallet_signs() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = RegtestConfig {
        datadir: Some(dir.path().to_path_buf()),
        ..RegtestConfig::default()
    };
    let node = RegtestNode::start(cfg.clone()).unwrap();
    let mined = miner(&node);

    // The signer: a blank wallet with private keys, given a master key's descriptors.
    ok(
        &node,
        "createwallet",
        json!({"wallet_name": "signer", "blank": true}),
    );
    let info = wok(&node, "signer", "getwalletinfo", json!([]));
    assert_eq!(info["blank"], json!(true), "{info}");
    assert_eq!(info["private_keys_enabled"], json!(true));
    let r = wrpc(&node, "signer", "getnewaddress", json!([]));
    assert_eq!(
        error_of(&r),
        (-4, "Error: This wallet has no available keys".into())
    );
    let secret = private_descriptors(3);
    let imported = wok(
        &node,
        "signer",
        "importdescriptors",
        json!([[
            {"desc": with_checksum(&node, &secret[0]), "timestamp": "now", "active": true},
            {"desc": with_checksum(&node, &secret[1]), "timestamp": "now", "active": true, "internal": true},
        ]]),
    );
    // No range given: Core's keypool range, with Core's warning.
    assert_eq!(
        imported,
        json!([
            {"success": true, "warnings": ["Range not given, using default keypool range"]},
            {"success": true, "warnings": ["Range not given, using default keypool range"]},
        ])
    );

    // The watch-only wallet takes the signer's public descriptors.
    ok(
        &node,
        "createwallet",
        json!({"wallet_name": "watch", "disable_private_keys": true}),
    );
    let info = wok(&node, "watch", "getwalletinfo", json!([]));
    assert_eq!(info["private_keys_enabled"], json!(false), "{info}");
    assert_eq!(info["blank"], json!(false));
    let public = wok(&node, "signer", "listdescriptors", json!([]));
    assert_eq!(public["wallet_name"], json!("signer"));
    let descs = public["descriptors"].as_array().unwrap();
    assert_eq!(descs.len(), 2, "{public}");
    for d in descs {
        let text = d["desc"].as_str().unwrap();
        assert!(text.starts_with("wpkh([") && text.contains("]tpub"), "{d}");
        assert_eq!(d["active"], json!(true));
        assert_eq!(d["range"], json!([0, 999]), "{d}");
        assert_eq!(d["next_index"], json!(0));
    }
    let private = wok(&node, "signer", "listdescriptors", json!([true]));
    assert!(
        private["descriptors"][0]["desc"]
            .as_str()
            .unwrap()
            .contains("tprv"),
        "{private}"
    );
    let requests: Vec<Value> = descs
        .iter()
        .map(|d| json!({"desc": d["desc"], "timestamp": d["timestamp"], "active": true, "internal": d["internal"], "range": d["range"]}))
        .collect();
    let imported = wok(&node, "watch", "importdescriptors", json!([requests]));
    assert_eq!(imported, json!([{"success": true}, {"success": true}]));
    let r = wrpc(&node, "watch", "listdescriptors", json!([true]));
    assert_eq!(
        error_of(&r),
        (
            -4,
            "Can't get private descriptor string for watch-only wallets".into()
        )
    );
    assert_eq!(
        wok(&node, "watch", "listdescriptors", json!([]))["descriptors"],
        public["descriptors"]
    );

    // Both hand out the same first address; the watch-only wallet sees it as its own.
    let addr = wok(&node, "watch", "getnewaddress", json!([]));
    assert_eq!(addr, wok(&node, "signer", "getnewaddress", json!([])));
    let i = wok(&node, "watch", "getaddressinfo", json!([addr]));
    assert_eq!(i["ismine"], json!(true), "{i}");
    assert_eq!(i["iswatchonly"], json!(false));
    assert_eq!(i["solvable"], json!(true));
    assert_eq!(i["hdkeypath"], json!("m/84h/1h/0h/0/0"), "{i}");
    let fp = i["hdmasterfingerprint"].as_str().unwrap();
    assert!(
        i["desc"]
            .as_str()
            .unwrap()
            .starts_with(&format!("wpkh([{fp}/84h/1h/0h/0/0]0")),
        "{i}"
    );

    // Paid, it holds the coin but cannot spend it alone.
    let paid = wok(&node, "miner", "sendtoaddress", json!([addr, 2.0]));
    ok(&node, "generatetoaddress", json!([1, mined]));
    assert_eq!(
        sats(&wok(&node, "watch", "getbalance", json!([]))),
        200_000_000
    );
    let u = wok(&node, "watch", "listunspent", json!([]));
    assert_eq!(u[0]["txid"], paid, "{u}");
    assert_eq!(u[0]["desc"], i["desc"]);
    let r = wrpc(&node, "watch", "sendtoaddress", json!([mined, 0.5]));
    assert_eq!(
        error_of(&r),
        (
            -4,
            "Error: Private keys are disabled for this wallet".into()
        )
    );

    // It funds a PSBT, with change to its change descriptor; signing there does nothing.
    let funded = wok(
        &node,
        "watch",
        "walletcreatefundedpsbt",
        json!([[], [{mined.as_str().unwrap(): 0.5}], 0, {"fee_rate": 3}]),
    );
    let changepos = funded["changepos"].as_i64().unwrap();
    assert!(changepos >= 0, "{funded}");
    let change = {
        use bitcoin::base64::Engine as _;
        let raw = bitcoin::base64::engine::general_purpose::STANDARD
            .decode(funded["psbt"].as_str().unwrap())
            .unwrap();
        let psbt = bitcoin::Psbt::deserialize(&raw).unwrap();
        let script = &psbt.unsigned_tx.output[changepos as usize].script_pubkey;
        bitcoin::Address::from_script(script, bitcoin::Network::Regtest)
            .unwrap()
            .to_string()
    };
    let ci = wok(&node, "watch", "getaddressinfo", json!([change]));
    assert_eq!(ci["ischange"], json!(true), "{ci}");
    assert_eq!(ci["hdkeypath"], json!("m/84h/1h/0h/1/0"));
    let unsigned = wok(&node, "watch", "walletprocesspsbt", json!([funded["psbt"]]));
    assert_eq!(unsigned["complete"], json!(false), "{unsigned}");
    assert!(unsigned.get("hex").is_none());

    // The signer signs and finalizes it; the network takes it.
    let signed = wok(
        &node,
        "signer",
        "walletprocesspsbt",
        json!([funded["psbt"]]),
    );
    assert_eq!(signed["complete"], json!(true), "{signed}");
    let txid = ok(&node, "sendrawtransaction", json!([signed["hex"]]));
    ok(&node, "generatetoaddress", json!([1, mined]));
    let t = wok(&node, "watch", "gettransaction", json!([txid]));
    assert_eq!(t["confirmations"], json!(1), "{t}");
    let fee = -sats(&t["fee"]);
    assert!(fee > 0, "{t}");
    assert_eq!(sats(&t["amount"]), -50_000_000);
    assert_eq!(
        sats(&wok(&node, "watch", "getbalance", json!([]))),
        150_000_000 - fee
    );
    assert_eq!(
        wok(&node, "signer", "getbalance", json!([])),
        wok(&node, "watch", "getbalance", json!([]))
    );
    let watch_descs = wok(&node, "watch", "listdescriptors", json!([]));
    node.shutdown();

    // Restarted, both wallets load with their descriptors, coins and settings.
    let node = RegtestNode::start(cfg).unwrap();
    for name in ["watch", "signer"] {
        ok(&node, "loadwallet", json!([name]));
    }
    assert_eq!(
        sats(&wok(&node, "watch", "getbalance", json!([]))),
        150_000_000 - fee
    );
    let info = wok(&node, "watch", "getwalletinfo", json!([]));
    assert_eq!(info["private_keys_enabled"], json!(false), "{info}");
    assert_eq!(
        wok(&node, "watch", "listdescriptors", json!([])),
        watch_descs
    );
    let next = wok(&node, "watch", "getnewaddress", json!([]));
    assert_eq!(next, wok(&node, "signer", "getnewaddress", json!([])));
    assert_ne!(next, addr);
    // The reloaded signer still signs with its imported keys.
    let funded = wok(
        &node,
        "watch",
        "walletcreatefundedpsbt",
        json!([[], [{mined.as_str().unwrap(): 0.1}]]),
    );
    let signed = wok(
        &node,
        "signer",
        "walletprocesspsbt",
        json!([funded["psbt"]]),
    );
    assert_eq!(signed["complete"], json!(true), "{signed}");
    // Imported descriptors' files are private like the wallet's own.
    use std::os::unix::fs::PermissionsExt;
    let wallets = dir.path().join("wallets");
    let mut files = 0;
    for e in std::fs::read_dir(&wallets).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().to_string();
        if name.contains("-desc") {
            files += 1;
            let mode = e.metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name}");
        }
    }
    assert_eq!(files, 4, "two descriptors in each wallet");
}

#[test]
fn importdescriptors_refuses_what_core_refuses() {
    let node = RegtestNode::start(RegtestConfig::default()).unwrap();
    ok(
        &node,
        "createwallet",
        json!({"wallet_name": "watch", "disable_private_keys": true, "blank": true}),
    );
    ok(
        &node,
        "createwallet",
        json!({"wallet_name": "keys", "blank": true}),
    );
    let secret = private_descriptors(4);
    let secret0 = with_checksum(&node, &secret[0]);
    let info = ok(&node, "getdescriptorinfo", json!([secret[0]]));
    assert_eq!(info["isrange"], json!(true), "{info}");
    assert_eq!(info["hasprivatekeys"], json!(true));
    assert_eq!(info["issolvable"], json!(true));
    let public = info["descriptor"].as_str().unwrap().to_string();
    assert!(
        public.contains("tpub") && !public.contains("tprv"),
        "{info}"
    );
    let public_info = ok(&node, "getdescriptorinfo", json!([public]));
    assert_eq!(public_info["hasprivatekeys"], json!(false));
    assert_eq!(public_info["descriptor"], json!(public));
    let body = public.split('#').next().unwrap().to_string();

    // One result per request; a refused one does not stop the others.
    let import = |wallet: &str, req: Value| -> Value {
        let out = wok(&node, wallet, "importdescriptors", json!([[req]]));
        out[0].clone()
    };
    let cases: Vec<(&str, Value, i64, &str)> =
        vec![
        ("watch", json!({"desc": body, "timestamp": "now"}), -5, "Missing checksum"),
        (
            "watch",
            json!({"desc": format!("{body}#aaaaaaaa"), "timestamp": "now"}),
            -5,
            "Provided checksum 'aaaaaaaa' does not match computed checksum",
        ),
        ("watch", json!({"timestamp": "now"}), -8, "Descriptor not found."),
        (
            "watch",
            json!({"desc": secret0, "timestamp": "now"}),
            -4,
            "Cannot import private keys to a wallet with private keys disabled",
        ),
        (
            "keys",
            json!({"desc": public, "timestamp": "now"}),
            -4,
            "Cannot import descriptor without private keys to a wallet with private keys enabled",
        ),
        (
            "watch",
            json!({"desc": public, "timestamp": "now", "label": "x"}),
            -8,
            "Ranged descriptors should not have a label",
        ),
        (
            "watch",
            json!({"desc": public, "timestamp": "now", "range": [5, 2]}),
            -8,
            "Range specified as [begin,end] must not have begin after end",
        ),
        (
            "watch",
            json!({"desc": public, "timestamp": "now", "range": [0, 10], "next_index": 11}),
            -8,
            "next_index is out of range",
        ),
    ];
    for (wallet, req, code, message) in cases {
        let r = import(wallet, req.clone());
        assert_eq!(r["success"], json!(false), "{req} → {r}");
        let (c, m) = error_of(&r);
        assert_eq!(c, code, "{req} → {r}");
        assert!(m.starts_with(message), "{req} → {r}");
    }
    // A single key: no range, no active, but a label.
    let k = key(9);
    let single = with_checksum(&node, &format!("wpkh({})", k.pk));
    let r = import(
        "watch",
        json!({"desc": single, "timestamp": "now", "range": 5}),
    );
    assert_eq!(
        error_of(&r),
        (
            -8,
            "Range should not be specified for an un-ranged descriptor".into()
        )
    );
    let r = import(
        "watch",
        json!({"desc": single, "timestamp": "now", "active": true}),
    );
    assert_eq!(
        error_of(&r),
        (-8, "Active descriptors must be ranged".into())
    );
    let r = import(
        "watch",
        json!({"desc": single, "timestamp": 0, "internal": true, "label": "l"}),
    );
    assert_eq!(
        error_of(&r),
        (-8, "Internal addresses should not have a label".into())
    );
    let r = import(
        "watch",
        json!({"desc": single, "timestamp": 0, "label": "cold"}),
    );
    assert_eq!(r, json!({"success": true}));
    let by_label = wok(&node, "watch", "getaddressesbylabel", json!(["cold"]));
    assert!(by_label.get(k.addr.to_string()).is_some(), "{by_label}");
    // Nothing refused was added: only the single key is there, and it hands out nothing.
    let listed = wok(&node, "watch", "listdescriptors", json!([]));
    assert_eq!(
        listed["descriptors"].as_array().unwrap().len(),
        1,
        "{listed}"
    );
    assert_eq!(listed["descriptors"][0]["active"], json!(false));
    let r = wrpc(&node, "watch", "getnewaddress", json!([]));
    assert_eq!(error_of(&r).0, -4, "{r}");
    // A missing timestamp fails the whole call, as in Core.
    let r = wrpc(
        &node,
        "watch",
        "importdescriptors",
        json!([[{"desc": public}]]),
    );
    assert_eq!(
        error_of(&r),
        (-3, "Missing required timestamp field for key".into())
    );
    // Paid before the import, the key's coin is found (the import scans the chain).
    ok(&node, "generatetoaddress", json!([1, k.addr.to_string()]));
    let r = import(
        "watch",
        json!({"desc": public, "timestamp": 0, "active": true, "range": [0, 20]}),
    );
    assert_eq!(r, json!({"success": true}));
    let b = wok(&node, "watch", "getbalances", json!([]));
    assert_eq!(sats(&b["mine"]["immature"]), 50 * 100_000_000, "{b}");

    // A multipath descriptor: receive and change in one, as Core splits it.
    ok(
        &node,
        "createwallet",
        json!({"wallet_name": "multi", "disable_private_keys": true}),
    );
    let xpub = body
        .trim_start_matches("wpkh(")
        .split("/0/*")
        .next()
        .unwrap()
        .to_string();
    let multi = with_checksum(&node, &format!("wpkh({xpub}/<0;1>/*)"));
    let r = import(
        "multi",
        json!({"desc": multi, "timestamp": "now", "active": true, "internal": true}),
    );
    assert_eq!(
        error_of(&r),
        (
            -5,
            "Cannot have multipath descriptor while also specifying 'internal'".into()
        )
    );
    let r = import(
        "multi",
        json!({"desc": multi, "timestamp": "now", "active": true}),
    );
    assert_eq!(r["success"], json!(true), "{r}");
    let receive = wok(&node, "multi", "getnewaddress", json!([]));
    let change = wok(&node, "multi", "getrawchangeaddress", json!([]));
    let derived = ok(
        &node,
        "deriveaddresses",
        json!([with_checksum(&node, &format!("wpkh({xpub}/1/*)")), [0, 1]]),
    );
    assert_eq!(derived[0], change, "{derived}");
    let derived = ok(&node, "deriveaddresses", json!([public, 0]));
    assert_eq!(derived, json!([receive]));
    assert_eq!(
        error_of(&rpc(&node, "deriveaddresses", json!([public]))),
        (-8, "Range must be specified for a ranged descriptor".into())
    );
    // No taproot descriptor: Core's error for the type.
    let r = wrpc(&node, "multi", "getnewaddress", json!(["", "bech32m"]));
    assert_eq!(
        error_of(&r),
        (-12, "Error: No bech32m addresses available.".into())
    );

    // A later active descriptor of the same type takes over; the earlier one is listed
    // inactive.
    let other = ok(
        &node,
        "getdescriptorinfo",
        json!([private_descriptors(5)[0]]),
    );
    let r = import(
        "multi",
        json!({"desc": other["descriptor"], "timestamp": "now", "active": true}),
    );
    assert_eq!(r["success"], json!(true), "{r}");
    let fresh = wok(&node, "multi", "getnewaddress", json!([]));
    let first_of_other = ok(
        &node,
        "deriveaddresses",
        json!([other["descriptor"], [0, 0]]),
    );
    assert_eq!(json!([fresh]), first_of_other);
    let listed = wok(&node, "multi", "listdescriptors", json!([]));
    let active: Vec<bool> = listed["descriptors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["active"].as_bool().unwrap())
        .collect();
    assert_eq!(active.iter().filter(|a| **a).count(), 2, "{listed}");
    assert_eq!(active.len(), 3, "{listed}");

    // In a wallet with its own master key, an imported active descriptor takes over its
    // type; the master key's other type stays active.
    ok(&node, "createwallet", json!(["own"]));
    let theirs = with_checksum(&node, &private_descriptors(7)[0]);
    let r = wok(
        &node,
        "own",
        "importdescriptors",
        json!([[{"desc": theirs, "timestamp": "now", "active": true, "range": [0, 9]}]]),
    );
    assert_eq!(r, json!([{"success": true}]));
    let public = ok(&node, "getdescriptorinfo", json!([theirs]))["descriptor"].clone();
    assert_eq!(
        json!([wok(&node, "own", "getnewaddress", json!([]))]),
        ok(&node, "deriveaddresses", json!([public, [0, 0]]))
    );
    let listed = wok(&node, "own", "listdescriptors", json!([]))["descriptors"].clone();
    let active = |d: &Value| d["active"] == json!(true);
    let n_active = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| active(d))
        .count();
    // Master receive (bech32 inactive now), master change, BIP86 both, the import.
    assert_eq!(listed.as_array().unwrap().len(), 5, "{listed}");
    assert_eq!(n_active, 4, "{listed}");
    let tr = wok(&node, "own", "getnewaddress", json!(["", "bech32m"]));
    assert!(tr.as_str().unwrap().starts_with("bcrt1p"), "{tr}");
}

#[test]
fn a_watch_only_wallet_without_change_descriptor_refuses_to_fund_with_change() {
    let node = RegtestNode::start(RegtestConfig::default()).unwrap();
    ok(
        &node,
        "createwallet",
        json!({"wallet_name": "watch", "disable_private_keys": true}),
    );
    let public = ok(
        &node,
        "getdescriptorinfo",
        json!([private_descriptors(6)[0]]),
    );
    let r = wok(
        &node,
        "watch",
        "importdescriptors",
        json!([[{"desc": public["descriptor"], "timestamp": "now", "active": true, "range": [0, 5]}]]),
    );
    assert_eq!(r, json!([{"success": true}]));
    let a = wok(&node, "watch", "getnewaddress", json!([]));
    ok(&node, "generatetoaddress", json!([101, a]));
    let to = key(8).addr.to_string();
    let r = wrpc(
        &node,
        "watch",
        "walletcreatefundedpsbt",
        json!([[], [{to.clone(): 1.0}]]),
    );
    assert_eq!(
        error_of(&r),
        (
            -4,
            "Transaction needs a change address, but we can't generate it.".into()
        )
    );
    // Spending the whole coin needs no change.
    let r = wok(
        &node,
        "watch",
        "walletcreatefundedpsbt",
        json!([[], [{to: 50.0}], 0, {"subtractFeeFromOutputs": [0]}]),
    );
    assert_eq!(r["changepos"], json!(-1), "{r}");
}

/// `combo(KEY)`, which rust-miniscript lacks: P2PK, P2PKH and, for a compressed key, P2WPKH
/// and P2SH-P2WPKH, as Core's `ComboDescriptor` expands it.
#[test]
fn combo_descriptors_derive_import_and_watch_as_core_expands_them() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = RegtestConfig {
        datadir: Some(dir.path().to_path_buf()),
        ..RegtestConfig::default()
    };
    let node = RegtestNode::start(cfg.clone()).unwrap();
    // Core's test/functional/rpc_deriveaddresses.py vector: the P2PK script has no address
    // and is left out; P2PKH, P2WPKH, P2SH-P2WPKH in that order (regtest encodings).
    let tprv = "tprv8ZgxMBicQKsPd7Uf69XL1XwhmjHopUGep8GuEiJDZmbQz6o58LninorQAfcKZWARbtRtfnLcJ5MQ2AtHcQJCCRUcMRvmDUjyEmNUWwx8UbK";
    let combo = with_checksum(&node, &format!("combo({tprv}/1/1/0)"));
    assert_eq!(
        ok(&node, "deriveaddresses", json!([combo])),
        json!([
            "mtfUoUax9L4tzXARpw1oTGxWyoogp52KhJ",
            "bcrt1qjqmxmkpmxt80xz4y3746zgt0q3u3ferr34acd5",
            "2NDvEwGfpEqJWfybzpKPHF2XH3jwoQV3D7x"
        ])
    );
    let info = ok(
        &node,
        "getdescriptorinfo",
        json!([format!("combo({tprv}/1/1/0)")]),
    );
    let public = info["descriptor"].as_str().unwrap();
    assert!(
        public.starts_with("combo(tpub")
            && public.ends_with(&format!("/1/1/0)#{}", public.rsplit('#').next().unwrap())),
        "{info}"
    );
    assert_eq!(info["isrange"], json!(false));
    assert_eq!(info["hasprivatekeys"], json!(true));
    // Its public form is a descriptor of its own: the same addresses, no private key.
    let public_info = ok(&node, "getdescriptorinfo", json!([public]));
    assert_eq!(public_info["descriptor"], json!(public));
    assert_eq!(public_info["hasprivatekeys"], json!(false));
    assert_eq!(
        ok(&node, "deriveaddresses", json!([public])),
        ok(&node, "deriveaddresses", json!([combo]))
    );

    // An uncompressed key has no segwit forms: P2PKH alone.
    let g = "0479be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8";
    let key: bitcoin::PublicKey = g.parse().unwrap();
    assert!(!key.compressed);
    assert_eq!(
        ok(
            &node,
            "deriveaddresses",
            json!([with_checksum(&node, &format!("combo({g})"))])
        ),
        json!([bitcoin::Address::p2pkh(key, bitcoin::Network::Regtest).to_string()])
    );
    // Only at the top level, and a checksum is still required.
    for bad in [format!("sh(combo({g}))"), format!("combo({g})")] {
        let r = rpc(&node, "deriveaddresses", json!([bad]));
        assert_eq!(error_of(&r).0, -5, "{bad}: {r}");
    }

    // A ranged combo() in a watch-only wallet: asked to be active it is not (it has no one
    // output type, Core's warning), and it watches all three address types.
    let mined = miner(&node);
    ok(
        &node,
        "createwallet",
        json!({"wallet_name": "watch", "disable_private_keys": true, "blank": true}),
    );
    let ranged_public = ok(
        &node,
        "getdescriptorinfo",
        json!([format!("combo({tprv}/0/*)")]),
    )["descriptor"]
        .as_str()
        .unwrap()
        .to_string();
    let imported = wok(
        &node,
        "watch",
        "importdescriptors",
        json!([[{"desc": ranged_public, "timestamp": "now", "active": true, "range": [0, 2]}]]),
    );
    assert_eq!(
        imported,
        json!([{"success": true, "warnings": ["Unknown output type, cannot set descriptor to active."]}])
    );
    // Listed once, as the combo, like Core.
    let listed = wok(&node, "watch", "listdescriptors", json!([]));
    let descs = listed["descriptors"].as_array().unwrap();
    assert_eq!(descs.len(), 1, "{listed}");
    assert_eq!(descs[0]["desc"], json!(ranged_public), "{listed}");
    assert_eq!(descs[0]["active"], json!(false), "{listed}");
    assert_eq!(descs[0]["range"][0], json!(0), "{listed}");
    let r = wrpc(&node, "watch", "getnewaddress", json!([]));
    assert_eq!(error_of(&r).0, -4, "no active descriptor: {r}");
    // The three addresses at index 1, paid from the miner and confirmed.
    let at1 = ok(&node, "deriveaddresses", json!([ranged_public, [1, 1]]));
    let at1 = at1.as_array().unwrap();
    assert_eq!(at1.len(), 3, "{at1:?}");
    for (i, a) in at1.iter().enumerate() {
        let amount = format!("0.{}", i + 1);
        wok(
            &node,
            "miner",
            "sendtoaddress",
            json!([a, amount.parse::<f64>().unwrap()]),
        );
    }
    ok(&node, "generatetoaddress", json!([1, mined]));
    let unspent = wok(&node, "watch", "listunspent", json!([]));
    let mut seen: Vec<(String, i64)> = unspent
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["address"].as_str().unwrap().to_string(),
                sats(&u["amount"]),
            )
        })
        .collect();
    seen.sort();
    let mut want: Vec<(String, i64)> = at1
        .iter()
        .enumerate()
        .map(|(i, a)| (a.as_str().unwrap().to_string(), (i as i64 + 1) * 10_000_000))
        .collect();
    want.sort();
    assert_eq!(seen, want, "{unspent}");
    assert_eq!(
        sats(&wok(&node, "watch", "getbalance", json!([]))),
        60_000_000
    );

    // With private keys: each of the four keeps the key as given.
    ok(
        &node,
        "createwallet",
        json!({"wallet_name": "keys", "blank": true}),
    );
    let private = with_checksum(&node, &format!("combo({tprv}/0/*)"));
    let imported = wok(
        &node,
        "keys",
        "importdescriptors",
        json!([[{"desc": private, "timestamp": 0, "range": [0, 2]}]]),
    );
    assert_eq!(imported, json!([{"success": true}]));
    let listed = wok(&node, "keys", "listdescriptors", json!([true]));
    assert_eq!(
        listed["descriptors"].as_array().unwrap().len(),
        1,
        "{listed}"
    );
    assert_eq!(listed["descriptors"][0]["desc"], json!(private), "{listed}");
    let public_listed = wok(&node, "keys", "listdescriptors", json!([]));
    assert_eq!(
        public_listed["descriptors"][0]["desc"],
        json!(ranged_public),
        "{public_listed}"
    );
    assert_eq!(
        sats(&wok(&node, "keys", "getbalance", json!([]))),
        60_000_000
    );
    let watch_descs = wok(&node, "watch", "listdescriptors", json!([]));
    node.shutdown();

    // Restarted: the stored descriptors load, and both wallets see the same coins.
    let node = RegtestNode::start(cfg).unwrap();
    for name in ["watch", "keys"] {
        ok(&node, "loadwallet", json!([name]));
        assert_eq!(
            sats(&wok(&node, name, "getbalance", json!([]))),
            60_000_000,
            "{name}"
        );
    }
    assert_eq!(
        wok(&node, "watch", "listdescriptors", json!([])),
        watch_descs
    );
}

/// A `<0;1>` multipath descriptor with private keys: a receive and a change descriptor,
/// each keeping its keys, so the wallet hands out both kinds of address and signs.
#[test]
fn a_multipath_descriptor_with_private_keys_receives_and_spends() {
    let node = RegtestNode::start(RegtestConfig::default()).unwrap();
    let mined = miner(&node);
    ok(
        &node,
        "createwallet",
        json!({"wallet_name": "keys", "blank": true}),
    );
    let master = bitcoin::bip32::Xpriv::new_master(bitcoin::Network::Regtest, &[9; 32]).unwrap();
    let multi = with_checksum(&node, &format!("wpkh({master}/84h/1h/0h/<0;1>/*)"));
    let r = wok(
        &node,
        "keys",
        "importdescriptors",
        json!([[{"desc": multi, "timestamp": "now", "active": true, "range": [0, 10]}]]),
    );
    assert_eq!(r, json!([{"success": true}]));
    let path = |p: u32| {
        let public = ok(
            &node,
            "getdescriptorinfo",
            json!([format!("wpkh({master}/84h/1h/0h/{p}/*)")]),
        )["descriptor"]
            .clone();
        ok(&node, "deriveaddresses", json!([public, [0, 0]]))[0].clone()
    };
    // As Core: getdescriptorinfo names the first path and lists every path; deriveaddresses
    // gives one list per path.
    let info = ok(&node, "getdescriptorinfo", json!([multi]));
    let expansion = info["multipath_expansion"].as_array().unwrap();
    assert_eq!(expansion.len(), 2, "{info}");
    assert_eq!(info["descriptor"], expansion[0]);
    assert!(expansion[1].as_str().unwrap().contains("/1/*)#"), "{info}");
    assert_eq!(info["hasprivatekeys"], json!(true));
    assert_eq!(
        ok(&node, "deriveaddresses", json!([multi, [0, 0]])),
        json!([[path(0)], [path(1)]])
    );
    let r = rpc(
        &node,
        "getdescriptorinfo",
        json!([format!("wpkh({master}/<0;1>/<2;3;4>/*)")]),
    );
    assert_eq!(
        error_of(&r),
        (-5, "Multipath subscripts have mismatched lengths".into())
    );
    let receive = wok(&node, "keys", "getnewaddress", json!([]));
    assert_eq!(receive, path(0));
    assert_eq!(
        wok(&node, "keys", "getrawchangeaddress", json!([])),
        path(1)
    );
    let listed = wok(&node, "keys", "listdescriptors", json!([true]));
    let descs = listed["descriptors"].as_array().unwrap();
    assert_eq!(descs.len(), 2, "{listed}");
    for d in descs {
        let text = d["desc"].as_str().unwrap();
        assert!(text.contains("tprv") && !text.contains('<'), "{d}");
        assert_eq!(d["active"], json!(true), "{d}");
    }
    // Paid, it spends with change: both paths sign.
    wok(&node, "miner", "sendtoaddress", json!([receive, 1.0]));
    ok(&node, "generatetoaddress", json!([1, mined]));
    let back = wok(&node, "miner", "getnewaddress", json!([]));
    let txid = wok(&node, "keys", "sendtoaddress", json!([back, 0.25]));
    assert!(txid.as_str().is_some_and(|t| t.len() == 64), "{txid}");
    ok(&node, "generatetoaddress", json!([1, mined]));
    let left = sats(&wok(&node, "keys", "getbalance", json!([])));
    assert!(left > 74_000_000 && left < 75_000_000, "{left}");
}

/// Mines a block from a template paying its coinbase to `to`, stamped `time`.
fn mine_at(node: &RegtestNode, to: &str, time: u32) {
    let t = ok(node, "getblocktemplate", json!([{"rules": ["segwit"]}]));
    let addr = to
        .parse::<bitcoin::Address<bitcoin::address::NetworkUnchecked>>()
        .unwrap()
        .assume_checked();
    let mut b = block_from_template(&t, &addr, 0, 0, 0);
    b.header.time = time;
    grind(&mut b);
    let hex = bitcoin::consensus::encode::serialize_hex(&b);
    assert_eq!(ok(node, "submitblock", json!([hex])), Value::Null);
}

#[test]
fn imports_rescan_from_their_timestamp_as_core_does() {
    let node = RegtestNode::start(RegtestConfig::default()).unwrap();
    let master = bitcoin::bip32::Xpriv::new_master(bitcoin::Network::Regtest, &[7; 32]).unwrap();
    let xpub = bitcoin::bip32::Xpub::from_priv(&bitcoin::secp256k1::Secp256k1::new(), &master);
    let desc = with_checksum(&node, &format!("wpkh({xpub}/0/*)"));
    let addrs = ok(&node, "deriveaddresses", json!([desc, [0, 3]]));
    let addr = |i: usize| addrs[i].as_str().unwrap().to_string();
    // Three blocks from long ago (2020) pay the descriptor's first address.
    let old = 1_600_000_000u32;
    for k in 0..3 {
        mine_at(&node, &addr(0), old + k * 600);
    }
    // Then today's chain, and a payment in its last block.
    let mined = miner(&node);
    wok(&node, "miner", "sendtoaddress", json!([addr(1), 1.5]));
    ok(&node, "generatetoaddress", json!([1, mined]));

    let coins = |wallet: &str, timestamp: Value| -> Vec<String> {
        // Made on first use (a second import goes to the same wallet).
        rpc(
            &node,
            "createwallet",
            json!({"wallet_name": wallet, "disable_private_keys": true, "blank": true}),
        );
        let r = wok(
            &node,
            wallet,
            "importdescriptors",
            json!([[{"desc": desc, "timestamp": timestamp, "range": [0, 3]}]]),
        );
        assert_eq!(r[0]["success"], true, "{r}");
        let mut got: Vec<String> = wok(&node, wallet, "listunspent", json!([]))
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["address"].as_str().unwrap().to_string())
            .collect();
        got.sort();
        got
    };
    let mut all = vec![addr(0), addr(0), addr(0), addr(1)];
    all.sort();
    // "now" is the tip's median time past: the scan reaches two hours before it, so only
    // today's payment is found.
    assert_eq!(coins("now", json!("now")), [addr(1)]);
    // 0 scans everything.
    assert_eq!(coins("all", json!(0)), all);
    // A timestamp two hours after the second old block scans from it.
    let mut two = vec![addr(0), addr(0), addr(1)];
    two.sort();
    assert_eq!(coins("window", json!(old + 600 + 7200)), two);
    // Importing the descriptor again with an earlier timestamp rescans.
    assert_eq!(coins("now", json!(0)), all);
    let listed = wok(&node, "now", "listdescriptors", json!([]));
    assert_eq!(listed["descriptors"][0]["timestamp"], 1, "{listed}");
}

/// `desc` with its checksum, computed here (for descriptors the node refuses to read).
fn checksummed(desc: &str) -> String {
    let sum = bdk_wallet::miniscript::descriptor::checksum::desc_checksum(desc).unwrap();
    format!("{desc}#{sum}")
}

/// The output script of `address` as hex.
fn script_hex(address: &str) -> String {
    use bitcoin::hex::DisplayHex;
    address
        .parse::<bitcoin::Address<bitcoin::address::NetworkUnchecked>>()
        .unwrap()
        .assume_checked()
        .script_pubkey()
        .as_bytes()
        .to_lower_hex_string()
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// Unspent outputs of `wallet` (`minconf` 0) as (address, amount in sats, confirmations).
fn unspent(node: &RegtestNode, wallet: &str) -> Vec<(String, i64, i64)> {
    let mut out: Vec<(String, i64, i64)> = wok(node, wallet, "listunspent", json!([0]))
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            assert_eq!(u["solvable"], false, "{u}");
            assert_eq!(u["spendable"], true, "{u}");
            assert!(u.get("desc").is_none(), "{u}");
            (
                u["address"].as_str().unwrap().to_string(),
                sats(&u["amount"]),
                u["confirmations"].as_i64().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn addr_and_raw_descriptors_watch_scripts_without_keys() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = RegtestConfig {
        datadir: Some(dir.path().to_path_buf()),
        ..RegtestConfig::default()
    };
    let node = RegtestNode::start(cfg.clone()).unwrap();
    // Addresses of keys no wallet of the node holds.
    let master = bitcoin::bip32::Xpriv::new_master(bitcoin::Network::Regtest, &[9; 32]).unwrap();
    let xpub = bitcoin::bip32::Xpub::from_priv(&bitcoin::secp256k1::Secp256k1::new(), &master);
    let addrs = ok(
        &node,
        "deriveaddresses",
        json!([with_checksum(&node, &format!("wpkh({xpub}/0/*)")), [0, 2]]),
    );
    let addr = |i: usize| addrs[i].as_str().unwrap().to_string();
    // A block from 2020 pays its coinbase to address 0; then today's chain pays 1.5 BTC to
    // address 0 and 0.7 to address 1.
    mine_at(&node, &addr(0), 1_600_000_000);
    let mined = miner(&node);
    let pay = wok(&node, "miner", "sendtoaddress", json!([addr(0), 1.5]));
    wok(&node, "miner", "sendtoaddress", json!([addr(1), 0.7]));
    ok(&node, "generatetoaddress", json!([1, mined]));

    let watch_a = with_checksum(&node, &format!("addr({})", addr(0)));
    let raw_body = format!("raw({})", script_hex(&addr(1)));
    let watch_raw = with_checksum(&node, &raw_body);

    // What Core's descriptor RPCs say of them.
    let info = ok(
        &node,
        "getdescriptorinfo",
        json!([format!("addr({})", addr(0))]),
    );
    assert_eq!(info["descriptor"], json!(watch_a), "{info}");
    assert_eq!(info["issolvable"], false);
    assert_eq!(info["isrange"], false);
    assert_eq!(info["hasprivatekeys"], false);
    assert_eq!(
        ok(&node, "deriveaddresses", json!([watch_a])),
        json!([addr(0)])
    );
    assert_eq!(
        ok(&node, "deriveaddresses", json!([watch_raw])),
        json!([addr(1)])
    );
    let op_return = with_checksum(&node, "raw(6a01ff)");
    let r = rpc(&node, "deriveaddresses", json!([op_return]));
    assert_eq!(
        error_of(&r),
        (
            -5,
            "Descriptor does not have a corresponding address".into()
        )
    );
    let r = rpc(&node, "deriveaddresses", json!([watch_a, [0, 2]]));
    assert_eq!(
        error_of(&r),
        (
            -8,
            "Range should not be specified for an un-ranged descriptor".into()
        )
    );

    // A wallet with private keys takes no script without keys.
    let import = |wallet: &str, req: Value| -> Value {
        wok(&node, wallet, "importdescriptors", json!([[req]]))[0].clone()
    };
    let r = import("miner", json!({"desc": watch_a, "timestamp": 0}));
    assert_eq!(
        error_of(&r),
        (
            -4,
            "Cannot import descriptor without private keys to a wallet with private keys enabled"
                .into()
        )
    );
    ok(
        &node,
        "createwallet",
        json!({"wallet_name": "watcher", "disable_private_keys": true}),
    );
    // Core's refusals, in Core's order.
    let refused = [
        (
            json!({"desc": format!("addr({})", addr(0)), "timestamp": 0}),
            -5,
            "Missing checksum".to_string(),
        ),
        (
            json!({"desc": checksummed("addr(bcrt1qnotanaddress)"), "timestamp": 0}),
            -5,
            "Address is not valid".into(),
        ),
        (
            json!({"desc": checksummed("raw(6a0)"), "timestamp": 0}),
            -5,
            "Raw script is not hex".into(),
        ),
        (
            json!({"desc": checksummed(&format!("sh(addr({}))", addr(0))), "timestamp": 0}),
            -5,
            "Can only have addr() at top level".into(),
        ),
        (
            json!({"desc": watch_a, "timestamp": 0, "range": [0, 5]}),
            -8,
            "Range should not be specified for an un-ranged descriptor".into(),
        ),
        (
            json!({"desc": watch_a, "timestamp": 0, "active": true}),
            -8,
            "Active descriptors must be ranged".into(),
        ),
        (
            json!({"desc": watch_a, "timestamp": 0, "internal": true, "label": "x"}),
            -8,
            "Internal addresses should not have a label".into(),
        ),
    ];
    for (req, code, message) in refused {
        let r = import("watcher", req.clone());
        assert_eq!(error_of(&r), (code, message), "{req}");
    }
    assert!(unspent(&node, "watcher").is_empty());

    // addr() from "now" (two hours before the tip): today's 1.5, not the 2020 coinbase;
    // raw() from 0: the 0.7.
    let r = import(
        "watcher",
        json!({"desc": watch_a, "timestamp": "now", "label": "cold"}),
    );
    assert_eq!(r["success"], true, "{r}");
    let r = import("watcher", json!({"desc": watch_raw, "timestamp": 0}));
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(
        unspent(&node, "watcher"),
        sorted(vec![(addr(0), 150_000_000, 1), (addr(1), 70_000_000, 1)])
    );
    let coins = wok(&node, "watcher", "listunspent", json!([]));
    let labelled: Vec<&Value> = coins
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["label"] == "cold")
        .collect();
    assert_eq!(labelled.len(), 1, "{coins}");
    assert_eq!(
        sats(&wok(&node, "watcher", "getbalance", json!([]))),
        220_000_000
    );
    let info = wok(&node, "watcher", "getaddressinfo", json!([addr(0)]));
    assert_eq!(info["ismine"], true, "{info}");
    assert_eq!(info["solvable"], false);
    assert_eq!(info["parent_desc"], json!(watch_a));
    assert_eq!(info["labels"], json!(["cold"]));
    assert!(info.get("desc").is_none(), "{info}");
    let info = wok(&node, "watcher", "getaddressinfo", json!([addr(2)]));
    assert_eq!(info["ismine"], false, "{info}");

    // A reorg takes the payments back to the mempool, and back.
    let tip = ok(&node, "getbestblockhash", json!([]));
    ok(&node, "invalidateblock", json!([tip]));
    assert_eq!(
        unspent(&node, "watcher"),
        sorted(vec![(addr(0), 150_000_000, 0), (addr(1), 70_000_000, 0)])
    );
    let b = wok(&node, "watcher", "getbalances", json!([]));
    assert_eq!(sats(&b["mine"]["untrusted_pending"]), 220_000_000, "{b}");
    // The paying wallet sees it unconfirmed too (no block has replaced the dropped one).
    let t = wok(&node, "miner", "gettransaction", json!([pay]));
    assert_eq!(t["confirmations"], 0, "{t}");
    assert!(t.get("blockhash").is_none(), "{t}");
    ok(&node, "reconsiderblock", json!([tip]));
    let t = wok(&node, "miner", "gettransaction", json!([pay]));
    assert_eq!(t["confirmations"], 1, "{t}");
    assert_eq!(
        unspent(&node, "watcher"),
        sorted(vec![(addr(0), 150_000_000, 1), (addr(1), 70_000_000, 1)])
    );

    // Imported again from 0, addr() rescans and finds the 2020 coinbase (mature by now).
    let r = import("watcher", json!({"desc": watch_a, "timestamp": 0}));
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(
        unspent(&node, "watcher"),
        sorted(vec![
            (addr(0), 150_000_000, 1),
            (addr(0), 5_000_000_000, 103),
            (addr(1), 70_000_000, 1)
        ])
    );
    let listed = wok(&node, "watcher", "listdescriptors", json!([]));
    let mut want = vec![
        json!({"desc": watch_a, "timestamp": 0, "active": false}),
        json!({"desc": watch_raw, "timestamp": 0, "active": false}),
    ];
    want.sort_by_key(|v| v["desc"].as_str().unwrap().to_string());
    // listdescriptors' timestamps are at least 1 (Core's).
    for w in &mut want {
        w["timestamp"] = json!(1);
    }
    assert_eq!(listed["descriptors"], json!(want), "{listed}");

    // A script both derived from a key and imported as addr() counts once.
    ok(
        &node,
        "createwallet",
        json!({"wallet_name": "both", "disable_private_keys": true}),
    );
    let xpub_desc = with_checksum(&node, &format!("wpkh({xpub}/0/*)"));
    let r = import(
        "both",
        json!({"desc": xpub_desc, "timestamp": 0, "range": [0, 2]}),
    );
    assert_eq!(r["success"], true, "{r}");
    let r = import("both", json!({"desc": watch_a, "timestamp": 0}));
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(
        sats(&wok(&node, "both", "getbalance", json!([]))),
        5_220_000_000
    );
    let t = wok(&node, "both", "gettransaction", json!([pay]));
    assert_eq!(sats(&t["amount"]), 150_000_000, "{t}");
    assert_eq!(
        wok(&node, "both", "listunspent", json!([]))
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // The watch-only wallet cannot fund a payment with coins it cannot sign for.
    let r = wrpc(
        &node,
        "watcher",
        "walletcreatefundedpsbt",
        json!([[], [{addr(2): 1.0}]]),
    );
    assert_eq!(error_of(&r), (-6, "Insufficient funds".into()));
    let some = &coins[0];
    let r = wrpc(
        &node,
        "watcher",
        "walletcreatefundedpsbt",
        json!([[{"txid": some["txid"], "vout": some["vout"]}], [{addr(2): 0.1}]]),
    );
    let (code, message) = error_of(&r);
    assert_eq!(code, -4, "{r}");
    assert!(
        message.starts_with("Not solvable pre-selected input COutPoint("),
        "{r}"
    );

    // The keys' holder spends every watched coin: the watcher sees its coins go, as a send.
    ok(
        &node,
        "createwallet",
        json!({"wallet_name": "signer", "blank": true}),
    );
    let r = import(
        "signer",
        json!({"desc": with_checksum(&node, &format!("wpkh({master}/0/*)")), "timestamp": 0, "range": [0, 2], "active": true}),
    );
    assert_eq!(r["success"], true, "{r}");
    let sent = wok(
        &node,
        "signer",
        "sendtoaddress",
        json!({"address": addr(2), "amount": 52.2, "subtractfeefromamount": true}),
    );
    assert!(unspent(&node, "watcher").is_empty());
    let b = wok(&node, "watcher", "getbalances", json!([]));
    assert_eq!(sats(&b["mine"]["trusted"]), 0, "{b}");
    let t = wok(&node, "watcher", "gettransaction", json!([sent]));
    assert!(sats(&t["fee"]) < 0, "{t}");
    assert_eq!(t["details"][0]["category"], "send", "{t}");
    assert_eq!(t["details"][0]["address"], json!(addr(2)), "{t}");
    assert_eq!(sats(&t["amount"]), -5_220_000_000 - sats(&t["fee"]), "{t}");
    ok(&node, "generatetoaddress", json!([1, mined]));
    let info = wok(&node, "watcher", "getwalletinfo", json!([]));
    // The 2020 coinbase, the two payments and the spend.
    assert_eq!(info["txcount"], 4, "{info}");
    // Imported again from "now": listed with the new timestamp, and what the scan from 0
    // found stays found (here and after a restart).
    let r = import("watcher", json!({"desc": watch_a, "timestamp": "now"}));
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(
        wok(&node, "watcher", "getwalletinfo", json!([]))["txcount"],
        4
    );
    let listed = wok(&node, "watcher", "listdescriptors", json!([]));
    let history = wok(&node, "watcher", "listtransactions", json!(["*", 100]));
    node.shutdown();

    // Restarted, the watches scan again from their earliest timestamp and find the same.
    let node = RegtestNode::start(cfg).unwrap();
    ok(&node, "loadwallet", json!(["watcher"]));
    assert_eq!(wok(&node, "watcher", "listdescriptors", json!([])), listed);
    assert_eq!(
        wok(&node, "watcher", "getwalletinfo", json!([]))["txcount"],
        4
    );
    let strip = |v: Value| -> Value {
        // `timereceived` of a mempool transaction is when this node saw it.
        json!(v
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (
                e["txid"].clone(),
                e["category"].clone(),
                e["amount"].clone(),
                e["confirmations"].clone()
            ))
            .collect::<Vec<_>>())
    };
    assert_eq!(
        strip(wok(&node, "watcher", "listtransactions", json!(["*", 100]))),
        strip(history)
    );
}
