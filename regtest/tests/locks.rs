//! Lock-time rules over the RPC, each broken at its boundary: absolute lock-times by height
//! and by median time past, BIP68 relative locks by blocks and by 512-second units, in the
//! mempool (`non-final`, `non-BIP68-final`) and in blocks (`bad-txns-nonfinal`).

mod common;

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::{Amount, OutPoint, Sequence, Transaction};
use common::{
    block_from_template, coinbase_of, grind, key, ok, rpc, spend, spend_locked, Key, Locks,
};
use rexe_regtest::{RegtestConfig, RegtestNode};
use serde_json::{json, Value};

fn send(node: &RegtestNode, tx: &Transaction) -> Value {
    rpc(node, "sendrawtransaction", json!([serialize_hex(tx)]))
}

fn assert_rejected(v: &Value, code: i64, reason: &str) {
    assert_eq!(v["error"]["code"], json!(code), "{v}");
    assert_eq!(v["error"]["message"], json!(reason), "{v}");
}

fn assert_accepted(node: &RegtestNode, tx: &Transaction) {
    let v = send(node, tx);
    assert_eq!(v["result"], json!(tx.compute_txid().to_string()), "{v}");
}

/// `generateblock` with exactly `txs`: Core's answer when the block breaks a rule.
fn generate_with(node: &RegtestNode, to: &Key, txs: &[&Transaction]) -> Value {
    let raw: Vec<String> = txs.iter().map(|t| serialize_hex(*t)).collect();
    rpc(node, "generateblock", json!([to.addr.to_string(), raw]))
}

fn mine(node: &RegtestNode, n: u64, to: &Key) {
    ok(node, "generatetoaddress", json!([n, to.addr.to_string()]));
}

fn tip_mtp(node: &RegtestNode) -> u64 {
    ok(node, "getblockchaininfo", json!([]))["mediantime"]
        .as_u64()
        .unwrap()
}

/// Mines template blocks stamped `time` until the tip's median time past reaches it.
fn mine_until_mtp(node: &RegtestNode, to: &Key, time: u64) {
    while tip_mtp(node) < time {
        let t = ok(node, "getblocktemplate", json!([{"rules": ["segwit"]}]));
        let mut b = block_from_template(&t, &to.addr, 0, 0, 0);
        b.header.time = time as u32;
        grind(&mut b);
        assert_eq!(
            ok(node, "submitblock", json!([serialize_hex(&b)])),
            Value::Null
        );
    }
    assert_eq!(tip_mtp(node), time);
}

/// A node with 101 blocks and a confirmed coin paying `b` (in block 102), as (outpoint, value).
fn node_with_coin(a: &Key, b: &Key) -> (RegtestNode, OutPoint, Amount) {
    let node = RegtestNode::start(RegtestConfig::default()).unwrap();
    mine(&node, 101, a);
    let (prev, value) = coinbase_of(&node, 1);
    let fund = spend(a, prev, value, &b.addr, 1_000, false);
    assert_accepted(&node, &fund);
    mine(&node, 1, a);
    let coin = OutPoint::new(fund.compute_txid(), 0);
    (node, coin, value - Amount::from_sat(1_000))
}

fn relative(sequence: Sequence) -> Locks {
    Locks {
        version: 2,
        lock_time: 0,
        sequence,
    }
}

#[test]
fn bip68_height_lock_holds_until_the_coin_is_old_enough() {
    let (a, b, c) = (key(61), key(62), key(63));
    let (node, coin, value) = node_with_coin(&a, &b);
    // Coin at height 102, lock 3: heights up to 104 are locked, 105 is the first valid.
    let tx = spend_locked(&b, coin, value, &c.addr, 1_000, relative(Sequence(3)));
    assert_rejected(&send(&node, &tx), -26, "non-BIP68-final");
    assert_rejected(
        &generate_with(&node, &a, &[&tx]),
        -25,
        "TestBlockValidity failed: bad-txns-nonfinal",
    );
    mine(&node, 1, &a);
    assert_rejected(&send(&node, &tx), -26, "non-BIP68-final");
    // Version 1 transactions do not enforce BIP68: the same lock on v1 passes now.
    let v1 = Locks {
        version: 1,
        ..relative(Sequence(3))
    };
    let old = spend_locked(&b, coin, value, &c.addr, 2_000, v1);
    assert_eq!(
        ok(&node, "testmempoolaccept", json!([[serialize_hex(&old)]]))[0]["allowed"],
        json!(true)
    );
    mine(&node, 1, &a);
    assert_accepted(&node, &tx);
    mine(&node, 1, &a);
    let got = ok(
        &node,
        "getrawtransaction",
        json!([tx.compute_txid().to_string(), true]),
    );
    assert_eq!(got["confirmations"], json!(1));
}

#[test]
fn bip68_locks_on_a_coin_of_the_same_block_or_the_mempool() {
    let (a, b, c) = (key(64), key(65), key(66));
    let node = RegtestNode::start(RegtestConfig::default()).unwrap();
    mine(&node, 101, &a);
    let (prev, value) = coinbase_of(&node, 1);
    let parent = spend(&a, prev, value, &b.addr, 1_000, false);
    let coin = OutPoint::new(parent.compute_txid(), 0);
    let value = value - Amount::from_sat(1_000);
    let locked = spend_locked(&b, coin, value, &c.addr, 1_000, relative(Sequence(1)));
    let free = spend_locked(&b, coin, value, &c.addr, 1_000, relative(Sequence(0)));
    // In one block, a lock of 1 on a coin of that block is not yet met.
    assert_rejected(
        &generate_with(&node, &a, &[&parent, &locked]),
        -25,
        "TestBlockValidity failed: bad-txns-nonfinal",
    );
    // The mempool counts an unconfirmed parent as mined in the next block.
    assert_accepted(&node, &parent);
    assert_rejected(&send(&node, &locked), -26, "non-BIP68-final");
    assert_accepted(&node, &free);
    mine(&node, 1, &a);
    assert_eq!(ok(&node, "getrawmempool", json!([])), json!([]));
}

#[test]
fn bip68_time_lock_counts_from_the_median_time_before_the_coin() {
    let (a, b, c) = (key(67), key(68), key(69));
    let (node, coin, value) = node_with_coin(&a, &b);
    // The lock starts at the median time past of block 101, the coin's block's parent.
    let h101 = ok(&node, "getblockhash", json!([101]));
    let start = ok(&node, "getblockheader", json!([h101]))["mediantime"]
        .as_u64()
        .unwrap();
    let lock = Sequence::from_512_second_intervals(1);
    let tx = spend_locked(&b, coin, value, &c.addr, 1_000, relative(lock));
    assert_rejected(&send(&node, &tx), -26, "non-BIP68-final");
    // One unit ends at start + 511: a parent median time equal to it is still locked.
    mine_until_mtp(&node, &a, start + 511);
    assert_rejected(&send(&node, &tx), -26, "non-BIP68-final");
    assert_rejected(
        &generate_with(&node, &a, &[&tx]),
        -25,
        "TestBlockValidity failed: bad-txns-nonfinal",
    );
    mine_until_mtp(&node, &a, start + 512);
    assert_accepted(&node, &tx);
    mine(&node, 1, &a);
    assert_eq!(ok(&node, "getrawmempool", json!([])), json!([]));
}

#[test]
fn absolute_lock_time_is_final_only_strictly_before_the_block() {
    let (a, b) = (key(70), key(71));
    let node = RegtestNode::start(RegtestConfig::default()).unwrap();
    mine(&node, 101, &a);
    let (p1, v1) = coinbase_of(&node, 1);
    let (p2, v2) = coinbase_of(&node, 2);
    let at = |lock_time| Locks {
        version: 2,
        lock_time,
        sequence: Sequence::ENABLE_LOCKTIME_NO_RBF,
    };
    // By height: the next block is 102, so a lock of 102 is not final yet.
    let early = spend_locked(&a, p1, v1, &b.addr, 1_000, at(102));
    assert_rejected(&send(&node, &early), -26, "non-final");
    assert_rejected(
        &generate_with(&node, &a, &[&early]),
        -25,
        "TestBlockValidity failed: bad-txns-nonfinal",
    );
    // With every sequence final the lock-time is ignored.
    let opted_out = Locks {
        sequence: Sequence::MAX,
        ..at(102)
    };
    let ignored = spend_locked(&a, p1, v1, &b.addr, 2_000, opted_out);
    assert_eq!(
        ok(
            &node,
            "testmempoolaccept",
            json!([[serialize_hex(&ignored)]])
        )[0]["allowed"],
        json!(true)
    );
    assert_accepted(&node, &spend_locked(&a, p1, v1, &b.addr, 1_000, at(101)));
    // By time (BIP113): against the tip's median time past, strictly.
    let mtp = tip_mtp(&node) as u32;
    let timed = spend_locked(&a, p2, v2, &b.addr, 1_000, at(mtp));
    assert_rejected(&send(&node, &timed), -26, "non-final");
    assert_accepted(
        &node,
        &spend_locked(&a, p2, v2, &b.addr, 1_000, at(mtp - 1)),
    );
    mine(&node, 1, &a);
    assert_eq!(ok(&node, "getrawmempool", json!([])), json!([]));
}
