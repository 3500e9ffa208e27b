//! The peg end to end through the binary, as users run it: an L2 node (`rexe node`), the
//! embedded Bitcoin regtest node (bitcoind JSON-RPC + Electrum), `rexe wallet` (bdk over
//! Electrum), `rexe peg in|out|take|bump|claimer|relay` and `rexe psbt`.

mod common;

use bitcoin::bip32::Xpriv;
use bitcoin::hex::FromHex;
use bitcoin::secp256k1::Secp256k1;
use common::peg::{PegEnv, Wallet};
use miniscript::descriptor::{Descriptor, DescriptorPublicKey, KeyMapWrapper};
use std::time::Duration;

use serde_json::{json, Value};

/// Alice and Bob: funded on the L2 (block rewards), Bob also on Bitcoin (101 blocks to his
/// wallet), the L2 mining and the relayer running.
fn alice_and_bob() -> (PegEnv, Wallet, Wallet) {
    let (env, alice, bob, _) = alice_bob_and_relayer();
    (env, alice, bob)
}

/// [`alice_and_bob`] plus the relayer's wallet.
fn alice_bob_and_relayer() -> (PegEnv, Wallet, Wallet, Wallet) {
    let mut env = PegEnv::new();
    let alice = env.wallet("alice.wallet");
    let bob = env.wallet("bob.wallet");
    // The relayer pays its own call fees.
    let relayer = env.wallet("relayer.wallet");
    for w in [&alice, &bob, &relayer] {
        env.mine_l2_to(&w.l2);
        env.mine_l2_to(&w.l2);
    }
    env.btc("generatetoaddress", json!([101, bob.address]));
    env.start_mining();
    env.start_relayer(&["--wallet", relayer.arg()]);
    env.wait_relayed();
    (env, alice, bob, relayer)
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn alice_pegs_out_bob_pegs_in_from_a_bdk_wallet() {
    let (env, alice, bob) = alice_and_bob();
    let order = env.peg_out(&alice, 100_000, 30, 10_000);
    assert_eq!(order, 0);
    let bob_before = env.l2_balance(&bob.l2);

    // Bob pegs in: take (bond), PSBT paying Alice + OP_RETURN + change, signed, broadcast.
    let out = env.ok(&args(&env.peg_in_args(&bob, 100_000, &[])));
    assert!(out.contains("paid: Bitcoin transaction"), "{out}");
    let m = env.peg_match(0);
    assert_eq!(m["state"], "open");
    assert_eq!(m["amount_btc_owed"], 99_700);
    assert_eq!(m["payee_script"]["address"], alice.address.as_str());
    assert_eq!(m["rx_recipient"], bob.l2.as_str());
    let pay_txid = out
        .split("paid: Bitcoin transaction ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let tx = env.btc("getrawtransaction", json!([pay_txid, true]));
    // One payee output, the OP_RETURN, change.
    assert_eq!(tx["vout"].as_array().unwrap().len(), 3, "{tx}");
    assert!(tx["vin"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["sequence"].as_u64().unwrap() < 0xffff_fffe));

    // Not claimable before it confirms.
    let out = env.ok(&[
        &[
            "peg",
            "claimer",
            "--wallet",
            bob.arg(),
            "--state",
            env.path("claimer.sqlite").to_str().unwrap(),
            "--once",
        ][..],
        &args(&env.net_args())[..],
    ]
    .concat());
    assert!(out.contains("Waiting"), "{out}");

    // One Bitcoin block; the relayer brings it over; the claimer (Electrum proofs) claims.
    env.mine_btc(1);
    env.wait_relayed();
    let out = env.claim_all(&bob);
    assert!(out.contains("Done"), "{out}");
    env.wait_for("the claim to run", 30, || {
        env.peg_match(0)["state"] == "claimed"
    });
    assert_eq!(env.peg_match(0)["paid_by"], format!("{pay_txid}:0"));
    // Bob: +100,000 rxBTC and his bond back, minus two call fees (take, claim): each its
    // gas at the base fee + tip the node estimated (tens of sats on regtest).
    env.wait_for("Bob's rxBTC", 30, || {
        let b = env.l2_balance(&bob.l2);
        b < bob_before + 100_000 && b > bob_before + 100_000 - 2 * 1_000
    });
    // Alice's Bitcoin wallet sees the payment over Electrum.
    let b = env.wallet_balance(&alice);
    assert_eq!(b["confirmed"], 99_700, "{b}");
    // `peg status` sums it up for each side.
    let st = |who: &str| -> Value {
        let out = env.ok(&[
            &["peg", "status", "--address", who][..],
            &args(&env.l2_args())[..],
        ]
        .concat());
        serde_json::from_str::<Value>(&out).unwrap()["summary"].clone()
    };
    assert_eq!(st(&alice.l2)["btc_received_as_maker"], 99_700);
    assert_eq!(st(&bob.l2)["rx_received_as_taker"], 100_000);
    assert_eq!(st(&bob.l2)["bonds_posted_open"], 0);
    env.assert_supply();
}

/// A Bitcoin reorg between the payment's confirmation and the claim: the relayer follows
/// it, and the claimer proves the payment in the block that now holds it.
#[test]
fn claim_follows_a_bitcoin_reorg_before_it_is_made() {
    let (env, alice, bob) = alice_and_bob();
    env.peg_out(&alice, 100_000, 30, 10_000);
    let out = env.ok(&args(&env.peg_in_args(&bob, 100_000, &[])));
    let pay = out
        .split("paid: Bitcoin transaction ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    env.mine_btc(1);
    let first = env.btc("getbestblockhash", json!([]));
    env.wait_relayed();
    // The block with the payment is replaced by a longer branch that holds it elsewhere.
    env.btc("invalidateblock", json!([first]));
    // (Another coinbase payee, or the first new block would be the invalidated one again.)
    env.btc("generatetoaddress", json!([2, alice.address]));
    let tx = env.btc("getrawtransaction", json!([pay, true]));
    assert_ne!(
        tx["blockhash"], first,
        "the payment moved to the new branch"
    );
    env.wait_relayed();
    let on_old = env.rpc("getbtcblock", json!([first]));
    assert_eq!(on_old["on_best_chain"], false, "{on_old}");
    env.claim_all(&bob);
    env.wait_for("the claim", 30, || env.peg_match(0)["state"] == "claimed");
    assert_eq!(env.peg_match(0)["paid_by"], format!("{pay}:0"));
    env.assert_supply();
}

#[test]
fn one_peg_in_pays_three_makers_in_one_transaction() {
    let (env, alice, bob) = alice_and_bob();
    let makers = [alice, env.wallet("carol.wallet"), env.wallet("dave.wallet")];
    for m in &makers[1..] {
        env.mine_l2_to(&m.l2);
        env.mine_l2_to(&m.l2);
    }
    // Three orders of 40,000 at 10, 20 and 30 bps: a 100,000 peg-in takes the cheapest first.
    for (n, m) in makers.iter().enumerate() {
        env.peg_out(m, 40_000, 10 * (n as u16 + 1), 10_000);
    }
    let out = env.ok(&args(&env.peg_in_args(&bob, 100_000, &[])));
    assert!(out.contains("paid:"), "{out}");
    let ms: Vec<Value> = (0..3).map(|i| env.peg_match(i)).collect();
    let amounts: Vec<u64> = ms
        .iter()
        .map(|m| m["amount_rx"].as_u64().unwrap())
        .collect();
    assert_eq!(amounts, [40_000, 40_000, 20_000]);
    let txid = out
        .split("paid: Bitcoin transaction ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let tx = env.btc("getrawtransaction", json!([txid, true]));
    // Three payee outputs, one OP_RETURN, change.
    assert_eq!(tx["vout"].as_array().unwrap().len(), 5, "{tx}");
    env.mine_btc(1);
    env.wait_relayed();
    env.claim_all(&bob);
    env.wait_for("three claims", 30, || {
        (0..3).all(|i| env.peg_match(i)["state"] == "claimed")
    });
    for (n, m) in makers.iter().enumerate() {
        let owed = ms[n]["amount_btc_owed"].as_u64().unwrap();
        assert_eq!(env.wallet_balance(m)["confirmed"], owed, "maker {n}");
    }
    env.assert_supply();
}

#[test]
fn two_takers_join_one_psbt_and_each_signs_its_inputs() {
    let (env, alice, bob) = alice_and_bob();
    let carol = env.wallet("carol.wallet");
    env.mine_l2_to(&carol.l2);
    env.mine_l2_to(&carol.l2);
    env.btc("generatetoaddress", json!([101, carol.address]));
    env.wait_relayed();
    env.peg_out(&alice, 200_000, 30, 10_000);
    let (bp, cp) = (env.path("bob.psbt"), env.path("carol.psbt"));
    env.ok(&args(&env.peg_in_args(
        &bob,
        120_000,
        &["--psbt-out", bp.to_str().unwrap()],
    )));
    env.ok(&args(&env.peg_in_args(
        &carol,
        80_000,
        &["--psbt-out", cp.to_str().unwrap()],
    )));
    let joined = env.path("joined.psbt");
    env.ok(&[
        "psbt",
        "join",
        bp.to_str().unwrap(),
        cp.to_str().unwrap(),
        "--out",
        joined.to_str().unwrap(),
    ]);
    let mut signed = Vec::new();
    for (w, part) in [(&bob, &bp), (&carol, &cp)] {
        let out = env.path(&format!(
            "{}.signed",
            w.path.file_name().unwrap().to_str().unwrap()
        ));
        let o = env.ok(&[
            &[
                "psbt",
                "sign",
                joined.to_str().unwrap(),
                "--part",
                part.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--wallet",
                w.arg(),
            ][..],
            &args(&env.net_args())[..],
        ]
        .concat());
        assert!(o.contains("other inputs still need their signers"), "{o}");
        signed.push(out);
    }
    let fin = env.path("final.psbt");
    env.ok(&[
        "psbt",
        "combine",
        signed[0].to_str().unwrap(),
        signed[1].to_str().unwrap(),
        "--out",
        fin.to_str().unwrap(),
    ]);
    let show: Value =
        serde_json::from_str(&env.ok(&["psbt", "show", fin.to_str().unwrap()])).unwrap();
    assert_eq!(show["match_ids"], json!([0, 1]));
    let o = env.ok(&[
        &[
            "psbt",
            "broadcast",
            fin.to_str().unwrap(),
            "--wallet",
            bob.arg(),
            "--claimer-state",
            env.path("claimer.sqlite").to_str().unwrap(),
        ][..],
        &args(&env.net_args())[..],
    ]
    .concat());
    let txid = o
        .split("broadcast ")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let tx = env.btc("getrawtransaction", json!([txid, true]));
    // Inputs of both payers, one payment per match (two to Alice's script), one OP_RETURN,
    // two changes.
    assert_eq!(tx["vout"].as_array().unwrap().len(), 5, "{tx}");
    env.mine_btc(1);
    env.wait_relayed();
    env.claim_all(&bob);
    env.wait_for("both matches claimed", 30, || {
        env.peg_match(0)["state"] == "claimed" && env.peg_match(1)["state"] == "claimed"
    });
    assert_eq!(env.peg_match(0)["rx_recipient"], bob.l2.as_str());
    assert_eq!(env.peg_match(1)["rx_recipient"], carol.l2.as_str());
    env.assert_supply();
}

#[test]
fn stuck_low_fee_payment_is_bumped_with_rbf_and_claimed() {
    let (env, alice, bob) = alice_and_bob();
    env.peg_out(&alice, 100_000, 30, 10_000);
    let mut a = env.peg_in_args(&bob, 100_000, &[]);
    // The lowest fee rate, as if the mempool were busy.
    let i = a.iter().position(|s| s == "--feerate").unwrap();
    a[i + 1] = "1".into();
    let out = env.ok(&args(&a));
    let first = out
        .split("paid: Bitcoin transaction ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let out = env.ok(&[
        &[
            "peg",
            "bump",
            "--btc-txid",
            &first,
            "--feerate",
            "10",
            "--wallet",
            bob.arg(),
            "--claimer-state",
            env.path("claimer.sqlite").to_str().unwrap(),
        ][..],
        &args(&env.net_args())[..],
    ]
    .concat());
    let second = out
        .split(" by ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert_ne!(first, second);
    let mempool = env.btc("getrawmempool", json!([]));
    assert_eq!(
        mempool,
        json!([second]),
        "the replacement evicted the original"
    );
    env.mine_btc(1);
    env.wait_relayed();
    env.claim_all(&bob);
    env.wait_for("the claim", 30, || env.peg_match(0)["state"] == "claimed");
    assert_eq!(env.peg_match(0)["paid_by"], format!("{second}:0"));
    assert_eq!(env.wallet_balance(&alice)["confirmed"], 99_700);
    env.assert_supply();
}

/// The take is in an L2 block, but an L2 reorganisation undoes it before it is final: the
/// wallet pays nothing (it pays only against takes `--l2-confirmations` deep or anchored).
#[test]
fn take_reorganised_away_before_it_is_final_is_not_paid() {
    let (mut env, alice, bob) = alice_and_bob();
    env.peg_out(&alice, 100_000, 30, 10_000);
    env.stop_mining();
    let pay_args = env.peg_in_args(
        &bob,
        100_000,
        &["--l2-confirmations", "4", "--take-timeout", "20"],
    );
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_rexe"))
        .args(&pay_args)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The take enters the mempool; one block includes it, the next runs it.
    env.wait_for("the take in the L2 mempool", 60, || {
        env.rpc("getmempoolinfo", json!([]))["size"].as_u64() > Some(0)
    });
    env.mine_l2_to(&alice.l2);
    env.mine_l2_to(&alice.l2);
    env.wait_for("the match", 30, || {
        env.rpc("listpegmatches", json!([]))
            .as_array()
            .is_some_and(|a| !a.is_empty())
    });
    assert_eq!(env.peg_match(0)["state"], "open");
    // Not final yet (1 of 4 confirmations): undo both blocks.
    let tip = env.rpc("getblockcount", json!([])).as_u64().unwrap();
    let including = env.rpc("getblockhash", json!([tip - 1]));
    env.rpc("invalidateblock", json!([including]));
    assert_eq!(
        env.rpc("listpegmatches", json!([]))
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("nothing was paid"), "{stderr}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("paid: Bitcoin transaction"),
        "{stderr}"
    );
    // No payment reached Bitcoin.
    assert_eq!(env.btc("getrawmempool", json!([])), json!([]));
}

/// `rexe peg claimer --wallet w --state F ...` with `extra` arguments and environment.
fn claimer_cmd(env: &PegEnv, w: &Wallet, extra: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_rexe"));
    c.args(["peg", "claimer", "--wallet", w.arg(), "--state"])
        .arg(env.path("claimer.sqlite"))
        .args(extra)
        .args(env.net_args())
        .env("RUST_LOG", "warn");
    c
}

/// The claim transaction the claimer stored for payment `pay`: `(state, l2_txid)`.
fn stored_claim(env: &PegEnv, pay: &str) -> (String, String) {
    let db = rusqlite::Connection::open(env.path("claimer.sqlite")).unwrap();
    db.query_row(
        "SELECT state, l2_txid FROM claims WHERE btc_txid = ?1",
        [pay],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

/// The agents crash (abort, as `kill -9`) right after sending, at their worst moment, and
/// are restarted: no second header batch, no second claim for the same proof, and a Bitcoin
/// reorg in between that strands the claim gets a fresh claim once the payment confirms
/// again. The claim transaction is stored before it is sent, and resent if it was lost.
#[test]
fn agents_crash_after_sending_and_resume_without_double_submission() {
    let (mut env, alice, bob, relayer) = alice_bob_and_relayer();

    // Relayer: crashes right after sending a batch; restarted, it waits for that batch
    // instead of sending the same headers again.
    env.stop_relayer();
    env.stop_mining();
    env.mine_btc(2);
    let (n0, _) = env.nonces(&relayer.l2);
    let crashed = std::process::Command::new(env!("CARGO_BIN_EXE_rexe"))
        .args(["peg", "relay", "--wallet", relayer.arg()])
        .args(env.net_args())
        .env("REXE_FAILPOINT", "relayer-after-send")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(!crashed.status.success(), "the failpoint did not fire");
    assert_eq!(env.nonces(&relayer.l2), (n0, n0 + 1));
    env.start_relayer(&["--wallet", relayer.arg()]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        env.nonces(&relayer.l2),
        (n0, n0 + 1),
        "a second batch was sent"
    );
    env.start_mining();
    env.wait_relayed();
    assert_eq!(env.nonces(&relayer.l2), (n0 + 1, n0 + 1));

    // A paid match.
    env.peg_out(&alice, 100_000, 30, 10_000);
    let out = env.ok(&args(&env.peg_in_args(&bob, 100_000, &[])));
    let pay = paid_txid(&out);
    env.mine_btc(1);
    env.wait_relayed();

    // Claimer: crashes right after sending the claim, which waits in the L2 mempool.
    env.stop_mining();
    let (c0, _) = env.nonces(&bob.l2);
    let crashed = claimer_cmd(&env, &bob, &["--until-done"])
        .env("REXE_FAILPOINT", "claimer-after-send")
        .output()
        .unwrap();
    assert!(!crashed.status.success(), "the failpoint did not fire");
    assert_eq!(env.nonces(&bob.l2), (c0, c0 + 1));
    let (state, first) = stored_claim(&env, &pay);
    assert_eq!(state, "submitted");
    // Restarted: it finds its claim in the mempool and sends nothing new.
    let again = claimer_cmd(&env, &bob, &["--once"]).output().unwrap();
    assert!(again.status.success());
    assert_eq!(env.nonces(&bob.l2), (c0, c0 + 1), "a second claim was sent");
    assert_eq!(stored_claim(&env, &pay).1, first);

    env.start_mining();
    let done = claimer_cmd(&env, &bob, &["--until-done"]).output().unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert_eq!(env.peg_match(0)["state"], "claimed");
    assert_eq!(
        stored_claim(&env, &pay),
        ("done".to_string(), first.clone())
    );
    assert_eq!(env.nonces(&bob.l2).0, c0 + 1, "one claim in all");

    // Second payment. The claimer crashes after storing its signed claim but before sending
    // it; then a Bitcoin reorg moves the payment into another block. Restarted, it tries the
    // stored claim (refused now: its block is stale), then claims again with a fresh proof
    // once the payment confirms in its new block.
    env.peg_out(&alice, 100_000, 30, 10_000);
    let out = env.ok(&args(&env.peg_in_args(&bob, 100_000, &[])));
    let pay2 = paid_txid(&out);
    env.mine_btc(1);
    env.wait_relayed();
    let first_block = env.btc("getrawtransaction", json!([pay2, true]))["blockhash"].clone();
    let (c1, _) = env.nonces(&bob.l2);
    let crashed = claimer_cmd(&env, &bob, &["--until-done"])
        .env("REXE_FAILPOINT", "claimer-before-send")
        .output()
        .unwrap();
    assert!(!crashed.status.success(), "the failpoint did not fire");
    let (state, stranded) = stored_claim(&env, &pay2);
    assert_eq!(state, "submitted");
    assert_eq!(env.nonces(&bob.l2), (c1, c1), "nothing was sent");
    env.btc("invalidateblock", json!([first_block]));
    // To another address than the invalidated block's, so that it is a different block.
    env.btc("generatetoaddress", json!([2, alice.address]));
    let second_block = env.btc("getrawtransaction", json!([pay2, true]))["blockhash"].clone();
    assert_ne!(first_block, second_block);
    env.wait_relayed();
    let done = claimer_cmd(&env, &bob, &["--until-done"]).output().unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert_eq!(env.peg_match(1)["state"], "claimed");
    let (state, last) = stored_claim(&env, &pay2);
    assert_eq!(state, "done");
    assert_ne!(last, stranded, "the stale claim was not replaced");
    assert_eq!(env.rpc("getcallreceipt", json!([last]))["success"], true);
    assert_eq!(
        env.nonces(&bob.l2).0,
        c1 + 1,
        "one claim for the second payment"
    );
    env.assert_supply();
}

fn paid_txid(out: &str) -> String {
    out.split("paid: Bitcoin transaction ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// `peg in --wait --bump`: a payment stuck at a low fee while Bitcoin blocks pass without it
/// is replaced (RBF) once 3 or fewer blocks remain before the deadline, and the replacement
/// is claimed.
#[test]
fn peg_in_wait_bump_replaces_a_stuck_payment_and_claims_it() {
    let (env, alice, bob) = alice_and_bob();
    env.peg_out(&alice, 100_000, 30, 10_000);
    let mut a = env.peg_in_args(&bob, 100_000, &["--wait", "--bump"]);
    let i = a.iter().position(|s| s == "--feerate").unwrap();
    a[i + 1] = "1".into();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rexe"))
        .args(&a)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mempool = || env.btc("getrawmempool", json!([]));
    env.wait_for("the payment", 120, || {
        mempool().as_array().is_some_and(|m| m.len() == 1)
    });
    let first = mempool()[0].as_str().unwrap().to_string();
    let deadline = env.peg_match(0)["btc_deadline_height"].as_u64().unwrap();
    // Bitcoin blocks that leave the payment out, until 3 remain before the deadline.
    let tip = env.btc("getblockcount", json!([])).as_u64().unwrap();
    for _ in tip..deadline - 3 {
        env.btc("generateblock", json!([alice.address, []]));
    }
    let started = std::time::Instant::now();
    loop {
        let m = mempool();
        if m.as_array().is_some_and(|m| m.len() == 1) && m[0] != first.as_str() {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "no replacement: {m}\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let second = mempool()[0].as_str().unwrap().to_string();
    env.mine_btc(1);
    env.wait_relayed();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("peg in --wait --bump did not finish");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("payment at risk"), "{stdout}");
    assert_eq!(env.peg_match(0)["state"], "claimed");
    assert_eq!(env.peg_match(0)["paid_by"], format!("{second}:0"));
    env.assert_supply();
}

#[test]
fn unpaid_match_expires_and_the_maker_gets_escrow_and_bond() {
    let (env, alice, bob) = alice_and_bob();
    env.peg_out(&alice, 100_000, 30, 10_000);
    let alice_before = env.l2_balance(&alice.l2);
    env.ok(&[
        &[
            "peg",
            "take",
            "--wallet",
            bob.arg(),
            "--order",
            "0",
            "--amount",
            "60000",
        ][..],
        &args(&env.l2_args())[..],
    ]
    .concat());
    let m = env.peg_match(0);
    assert_eq!(m["bond"], 1_000);
    let deadline = m["btc_deadline_height"].as_u64().unwrap();
    let info = env.rpc("getpeginfo", json!([]));
    let k = info["confirmations_required"].as_u64().unwrap();
    let grace = info["claim_grace"].as_u64().unwrap();
    // Bob never pays. Bitcoin moves past deadline + K + grace.
    let tip = env.btc("getblockcount", json!([])).as_u64().unwrap();
    env.mine_btc((deadline + k + grace + 1 - tip) as u32);
    env.wait_relayed();
    env.wait_for("the expiry", 30, || env.peg_match(0)["state"] == "expired");
    // The escrow is back in the order, the bond went to Alice.
    let orders = env.rpc("listpegorders", json!([]));
    assert_eq!(orders[0]["remaining"], 100_000, "{orders}");
    env.wait_for("Alice's bond", 30, || {
        env.l2_balance(&alice.l2) == alice_before + 1_000
    });
    // The escrow is back in the order: a late payment could still claim it. Once someone
    // else takes it, a payment the claimer is told about for the expired match is marked
    // failed at once instead of being retried forever.
    assert_eq!(env.peg_match(0)["escrow_claimable"], true);
    env.ok(&[
        &[
            "peg",
            "take",
            "--wallet",
            alice.arg(),
            "--order",
            "0",
            "--amount",
            "100000",
        ][..],
        &args(&env.l2_args())[..],
    ]
    .concat());
    assert_eq!(env.peg_match(0)["escrow_claimable"], false);
    let some_tx = env.btc("getblock", json!([env.btc("getblockhash", json!([1])), 1]))["tx"][0]
        .as_str()
        .unwrap()
        .to_string();
    let out = env.ok(&[
        &[
            "peg",
            "claimer",
            "--wallet",
            bob.arg(),
            "--state",
            env.path("late.sqlite").to_str().unwrap(),
            "--watch",
            &format!("{some_tx}:0"),
            "--until-done",
        ][..],
        &args(&env.net_args())[..],
    ]
    .concat());
    assert!(out.contains("Failed") && out.contains("re-taken"), "{out}");
    env.assert_supply();
}

/// A payer whose keys only an external signer holds: rexe gets the public descriptors of
/// `wpkh(master/84'/1'/0'/{0,1}/*)` (a watch-only wallet, funded by mining) and an L2 key
/// file (funded by L2 blocks) for the bond. Returns the wallet, the key file and the private
/// descriptors (the signer's secret).
fn external_payer(env: &PegEnv, seed: u8, name: &str) -> (Wallet, std::path::PathBuf, [String; 2]) {
    let master = Xpriv::new_master(bitcoin::Network::Regtest, &[seed; 32]).unwrap();
    let secret = [
        format!("wpkh({master}/84'/1'/0'/0/*)"),
        format!("wpkh({master}/84'/1'/0'/1/*)"),
    ];
    let secp = Secp256k1::new();
    let public = secret.clone().map(|d| {
        Descriptor::<DescriptorPublicKey>::parse_descriptor(&secp, &d)
            .unwrap()
            .0
            .to_string()
    });
    let path = env.path(&format!("{name}.wallet"));
    let out = env.ok(&[
        "wallet",
        "import",
        "--wallet",
        path.to_str().unwrap(),
        "--descriptor",
        &public[0],
        "--change-descriptor",
        &public[1],
        "--electrum",
        &env.electrum(),
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["watch_only"], true);
    let first = v["first_address"].as_str().unwrap().to_string();
    env.btc("generatetoaddress", json!([101, first]));
    env.wait_relayed();
    env.ok(&[
        "wallet",
        "sync",
        "--full-scan",
        "--wallet",
        path.to_str().unwrap(),
        "--electrum",
        &env.electrum(),
    ]);
    let key = env.path(&format!("{name}.key"));
    let l2 = env
        .ok(&["key", "new", key.to_str().unwrap(), "--network", "regtest"])
        .trim()
        .to_string();
    env.mine_l2_to(&l2);
    env.mine_l2_to(&l2);
    (
        Wallet {
            path,
            address: first,
            l2,
        },
        key,
        secret,
    )
}

/// `rexe psbt broadcast` of a signed PSBT, one Bitcoin block, the claim.
fn broadcast_and_claim(env: &PegEnv, psbt: &std::path::Path, payer: &Wallet, claimer: &Wallet) {
    broadcast_with_and_claim(env, psbt, payer, claimer, &[]);
}

/// [`broadcast_and_claim`] with `extra` arguments to `rexe psbt broadcast`.
fn broadcast_with_and_claim(
    env: &PegEnv,
    psbt: &std::path::Path,
    payer: &Wallet,
    claimer: &Wallet,
    extra: &[&str],
) {
    let o = env.ok(&[
        &[
            "psbt",
            "broadcast",
            psbt.to_str().unwrap(),
            "--wallet",
            payer.arg(),
            "--claimer-state",
            env.path("claimer.sqlite").to_str().unwrap(),
        ][..],
        extra,
        &args(&env.net_args())[..],
    ]
    .concat());
    assert!(o.contains("broadcast "), "{o}");
    env.mine_btc(1);
    env.wait_relayed();
    env.claim_all(claimer);
    env.wait_for("the claim", 30, || env.peg_match(0)["state"] == "claimed");
    env.assert_supply();
}

#[test]
fn watch_only_wallet_psbt_signed_by_an_external_signer() {
    let (env, alice, bob) = alice_and_bob();
    env.peg_out(&alice, 100_000, 30, 10_000);
    let (payer, key, secret) = external_payer(&env, 7, "watch");
    let psbt_path = env.path("unsigned.psbt");
    // A watch-only wallet has no L2 key: an L2 key file pays the bond and receives.
    let no_key = env.fails(&args(&env.peg_in_args(
        &payer,
        100_000,
        &["--psbt-out", psbt_path.to_str().unwrap()],
    )));
    assert!(no_key.contains("no L2 key"), "{no_key}");
    env.ok(&args(&env.peg_in_args(
        &payer,
        100_000,
        &[
            "--psbt-out",
            psbt_path.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
    )));
    assert_eq!(env.peg_match(0)["rx_recipient"], payer.l2.as_str());
    // Signing a watch-only wallet's PSBT in rexe is refused.
    let refused = env.fails(
        &[
            &[
                "psbt",
                "sign",
                psbt_path.to_str().unwrap(),
                "--wallet",
                payer.arg(),
            ][..],
            &args(&env.net_args())[..],
        ]
        .concat(),
    );
    assert!(refused.contains("watch-only"), "{refused}");
    // The external signer (this test process, with rust-bitcoin and miniscript only) signs
    // the exported PSBT with its keys; rexe finalizes and broadcasts it.
    let secp = Secp256k1::new();
    let text = std::fs::read_to_string(&psbt_path).unwrap();
    let mut psbt: bitcoin::Psbt = text.trim().parse().unwrap();
    let mut keys = miniscript::descriptor::KeyMap::new();
    for d in &secret {
        keys.extend(Descriptor::parse_descriptor(&secp, d).unwrap().1);
    }
    let used = psbt.sign(&KeyMapWrapper::from(keys), &secp).unwrap();
    assert_eq!(used.len(), psbt.inputs.len());
    std::fs::write(&psbt_path, psbt.to_string()).unwrap();
    // Finalized here, then handed on as a raw transaction (what Electrum's
    // `signtransaction` returns): `psbt show` reports it signed with its final txid, and
    // `psbt broadcast` takes the raw hex with the match ids.
    let final_path = env.path("final.psbt");
    let raw = env.ok(&[
        &[
            "psbt",
            "finalize",
            psbt_path.to_str().unwrap(),
            "--out",
            final_path.to_str().unwrap(),
            "--wallet",
            payer.arg(),
        ][..],
        &args(&env.net_args())[..],
    ]
    .concat());
    let raw = raw.split_whitespace().last().unwrap().to_string();
    let shown: Value =
        serde_json::from_str(&env.ok(&["psbt", "show", final_path.to_str().unwrap()])).unwrap();
    let tx: bitcoin::Transaction =
        bitcoin::consensus::deserialize(&Vec::<u8>::from_hex(&raw).unwrap()).unwrap();
    assert_eq!(
        shown["final_txid"],
        tx.compute_txid().to_string(),
        "{shown}"
    );
    for i in shown["inputs"].as_array().unwrap() {
        assert_eq!(i["signed"], true, "{shown}");
        assert_eq!(i["final"], true, "{shown}");
        assert!(i["value"].as_u64().is_some(), "{shown}");
    }
    let raw_path = env.path("signed.hex");
    std::fs::write(&raw_path, format!("{raw}\n")).unwrap();
    let no_ids = env.fails(
        &[
            &[
                "psbt",
                "broadcast",
                raw_path.to_str().unwrap(),
                "--wallet",
                payer.arg(),
            ][..],
            &args(&env.net_args())[..],
        ]
        .concat(),
    );
    assert!(no_ids.contains("--matches"), "{no_ids}");
    broadcast_with_and_claim(&env, &raw_path, &payer, &bob, &["--matches", "0"]);
}

#[test]
fn bad_psbts_and_bad_inputs_are_refused_with_clear_errors() {
    let (env, alice, bob) = alice_and_bob();
    // Insufficient funds: refused before any bond is posted.
    let poor = env.wallet("poor.wallet");
    env.mine_l2_to(&poor.l2);
    env.peg_out(&alice, 100_000, 30, 10_000);
    let e = env.fails(&args(&env.peg_in_args(&poor, 100_000, &[])));
    assert!(
        e.contains("cannot pay") && e.contains("nothing was taken"),
        "{e}"
    );
    assert!(env
        .rpc("listpegmatches", json!([]))
        .as_array()
        .unwrap()
        .is_empty());

    let psbt_path = env.path("bob.psbt");
    env.ok(&args(&env.peg_in_args(
        &bob,
        100_000,
        &["--psbt-out", psbt_path.to_str().unwrap()],
    )));
    let sign = |file: &std::path::Path| {
        env.run(
            &[
                &[
                    "psbt",
                    "sign",
                    file.to_str().unwrap(),
                    "--wallet",
                    bob.arg(),
                    "--out",
                    env.path("out.psbt").to_str().unwrap(),
                ][..],
                &args(&env.net_args())[..],
            ]
            .concat(),
        )
    };
    // Malformed files.
    let junk = env.path("junk.psbt");
    std::fs::write(&junk, "cHNidP8BAH0CAAAAAZ==garbage").unwrap();
    let o = sign(&junk);
    assert!(
        !o.ok && o.stderr.to_lowercase().contains("psbt"),
        "{}",
        o.stderr
    );
    std::fs::write(&junk, [0u8; 3]).unwrap();
    assert!(!sign(&junk).ok);
    // Outputs altered: a lower amount, or another payee script.
    let text = std::fs::read_to_string(&psbt_path).unwrap();
    let good: bitcoin::Psbt = text.trim().parse().unwrap();
    let mut lower = good.clone();
    lower.unsigned_tx.output[0].value = bitcoin::Amount::from_sat(99_699);
    let f = env.path("lower.psbt");
    std::fs::write(&f, lower.to_string()).unwrap();
    let o = sign(&f);
    assert!(!o.ok, "signed a PSBT paying less than owed");
    assert!(
        o.stderr.contains("99699") || o.stderr.contains("less"),
        "{}",
        o.stderr
    );
    let mut other = good.clone();
    other.unsigned_tx.output[0].script_pubkey = bob
        .address
        .parse::<bitcoin::Address<bitcoin::address::NetworkUnchecked>>()
        .unwrap()
        .assume_checked()
        .script_pubkey();
    let f = env.path("other.psbt");
    std::fs::write(&f, other.to_string()).unwrap();
    let o = sign(&f);
    assert!(!o.ok, "signed a PSBT paying another script");
    let o = env.run(
        &[
            &[
                "psbt",
                "broadcast",
                f.to_str().unwrap(),
                "--wallet",
                bob.arg(),
            ][..],
            &args(&env.net_args())[..],
        ]
        .concat(),
    );
    assert!(!o.ok, "broadcast a PSBT paying another script");
    // A PSBT for another network.
    let mut main = good.clone();
    rexe_wallet::peg::tag_network(&mut main, bitcoin::Network::Bitcoin);
    let f = env.path("main.psbt");
    std::fs::write(&f, main.to_string()).unwrap();
    let o = sign(&f);
    assert!(!o.ok && o.stderr.contains("network"), "{}", o.stderr);
    // The untouched PSBT signs.
    assert!(sign(&psbt_path).ok);

    // A wrong descriptor.
    let e = env.fails(&[
        "wallet",
        "import",
        "--wallet",
        env.path("bad.wallet").to_str().unwrap(),
        "--descriptor",
        "wpkh(notakey)",
        "--electrum",
        &env.electrum(),
    ]);
    assert!(e.contains("descriptor"), "{e}");
    // Electrum down: a clear error naming the server.
    let e = env.fails(&[
        "wallet",
        "balance",
        "--wallet",
        bob.arg(),
        "--electrum",
        "tcp://127.0.0.1:9",
    ]);
    assert!(e.contains("127.0.0.1:9"), "{e}");
}

/// The bitcoind JSON-RPC source for the agents (instead of Electrum), with key files.
#[test]
fn relayer_and_claimer_read_bitcoind_rpc() {
    let mut env = PegEnv::new();
    let alice = env.wallet("alice.wallet");
    let bob = env.wallet("bob.wallet");
    for w in [&alice, &bob] {
        env.mine_l2_to(&w.l2);
        env.mine_l2_to(&w.l2);
    }
    env.btc("generatetoaddress", json!([101, bob.address]));
    env.start_mining();
    let btc_node = env.btc_node.as_ref().unwrap();
    let btc_args: Vec<String> = vec![
        "--bitcoind".into(),
        btc_node.rpc_addr.to_string(),
        "--bitcoind-cookie".into(),
        btc_node.cookie_path.to_str().unwrap().into(),
    ];
    let relay = |env: &PegEnv| {
        env.ok(&[
            &["peg", "relay", "--once", "--wallet", alice.arg()][..],
            &args(&env.l2_args())[..],
            &args(&btc_args)[..],
        ]
        .concat())
    };
    relay(&env);
    env.peg_out(&alice, 100_000, 30, 10_000);
    let out = env.ok(&args(&env.peg_in_args(&bob, 100_000, &[])));
    assert!(out.contains("paid:"), "{out}");
    env.mine_btc(1);
    relay(&env);
    let out = env.ok(&[
        &[
            "peg",
            "claimer",
            "--wallet",
            bob.arg(),
            "--state",
            env.path("claimer.sqlite").to_str().unwrap(),
            "--until-done",
        ][..],
        &args(&env.l2_args())[..],
        &args(&btc_args)[..],
    ]
    .concat());
    assert!(out.contains("Done"), "{out}");
    env.wait_for("the claim", 30, || env.peg_match(0)["state"] == "claimed");
    env.assert_supply();
}

/// Alice pegs out 100,000 sat; an external payer (seeded by `seed`, its private
/// descriptors returned, rexe holding the public ones) takes her offer and writes the
/// unsigned PSBT to `<name>.psbt`. The environment, the payer, Bob (who claims) and the
/// PSBT's path.
fn external_peg_in(
    seed: u8,
    name: &str,
) -> (PegEnv, Wallet, Wallet, std::path::PathBuf, [String; 2]) {
    let (env, alice, bob) = alice_and_bob();
    env.peg_out(&alice, 100_000, 30, 10_000);
    let (payer, key, secret) = external_payer(&env, seed, name);
    let psbt_path = env.path(&format!("{name}.psbt"));
    env.ok(&args(&env.peg_in_args(
        &payer,
        100_000,
        &[
            "--psbt-out",
            psbt_path.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
    )));
    (env, payer, bob, psbt_path, secret)
}

/// Signs `unsigned` (base64) as a bitcoind user would with a wallet holding the payer's
/// private descriptors: `createwallet`, `getdescriptorinfo` for the checksums,
/// `importdescriptors`, `walletprocesspsbt` (sign, do not finalize). The signed PSBT.
fn sign_in_a_core_wallet(
    rpc: &rexe_rpc::client::RpcClient,
    secret: &[String; 2],
    unsigned: &str,
) -> String {
    rpc.call("createwallet", json!(["signer"])).unwrap();
    let with_checksum = |d: &str| {
        let info = rpc.call("getdescriptorinfo", json!([d])).unwrap();
        format!("{d}#{}", info["checksum"].as_str().unwrap())
    };
    let imported = rpc
        .call(
            "importdescriptors",
            json!([[
                {"desc": with_checksum(&secret[0]), "timestamp": "now", "active": true, "internal": false},
                {"desc": with_checksum(&secret[1]), "timestamp": "now", "active": true, "internal": true},
            ]]),
        )
        .unwrap();
    assert!(
        imported
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["success"] == true),
        "{imported}"
    );
    let signed = rpc
        .call(
            "walletprocesspsbt",
            json!([unsigned, true, "ALL", true, false]),
        )
        .unwrap();
    signed["psbt"].as_str().unwrap().to_string()
}

/// The same external signing, in the embedded node's own wallet: its `createwallet`,
/// `getdescriptorinfo`, `importdescriptors` and `walletprocesspsbt` answer as Core's do, and
/// rexe broadcasts and claims with the PSBT it signed.
#[test]
fn the_embedded_nodes_wallet_signs_a_rexe_psbt_as_core_does() {
    let (env, payer, bob, psbt_path, secret) = external_peg_in(10, "node-signed");
    let unsigned = std::fs::read_to_string(&psbt_path).unwrap();
    let signed = sign_in_a_core_wallet(&env.btc, &secret, unsigned.trim());
    assert_ne!(signed, unsigned.trim(), "the wallet signed nothing");
    std::fs::write(&psbt_path, signed).unwrap();
    broadcast_and_claim(&env, &psbt_path, &payer, &bob);
}

/// Bitcoin Core as the external signer (`walletprocesspsbt`), when `BITCOIND_EXE` names a
/// bitcoind binary: Core's wallet holds the private descriptors, rexe the public ones.
#[test]
fn bitcoind_walletprocesspsbt_signs_a_rexe_psbt() {
    let Ok(exe) = std::env::var("BITCOIND_EXE") else {
        println!("skipped: set BITCOIND_EXE to a bitcoind binary to run this test");
        return;
    };
    let (env, payer, bob, psbt_path, secret) = external_peg_in(9, "core-signed");

    // A throwaway bitcoind with a wallet holding the private descriptors.
    let core = common::CoreNode::start(&exe);
    let rpc = core.client();
    if let Err(e) = rpc.call("listwallets", json!([])) {
        // A bitcoind built without its wallet (`-DENABLE_WALLET=OFF`) cannot sign.
        println!("skipped: this bitcoind has no wallet ({e})");
        return;
    }
    let unsigned = std::fs::read_to_string(&psbt_path).unwrap();
    let signed = sign_in_a_core_wallet(&rpc, &secret, unsigned.trim());
    drop(core);
    std::fs::write(&psbt_path, signed).unwrap();
    broadcast_and_claim(&env, &psbt_path, &payer, &bob);
}
