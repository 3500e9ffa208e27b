//! The fee market (issue 18): block stuffing pays a rising burn, honest transactions get in,
//! each block limit is enforced, relays over a shard's gas wait in order, and unused gas is
//! refunded.

mod common;

use std::collections::BTreeMap;

use common::contracts::{call_tx, Net, SPENDER};
use common::*;
use rexe_chain::contract::{self, Target};
use rexe_chain::encode::Encode;
use rexe_chain::fee::GasPrice;
use rexe_chain::tx::TRANSFER_GAS;
use rexe_chain::{
    Address, Amount, BlockError, ChainParams, Network, Payload, ShardId, SignedTx, Signer, Tx,
};
use serde_json::json;

fn gas_transfer(from: &Signer, to: Address, nonce: u64, max_fee: u64, tip: u64) -> SignedTx {
    Tx {
        network: Network::Regtest,
        from: from.address(),
        nonce,
        max_fee: GasPrice::from_msat(max_fee),
        max_tip: GasPrice::from_msat(tip),
        gas_limit: TRANSFER_GAS,
        expiry_height: 1_000_000,
        payload: Payload::Transfer {
            to,
            amount: Amount::from_sat(1),
        },
    }
    .sign(from)
}

/// Seals `block` and submits it.
fn seal_submit(chain: &mut rexe_chain::Chain, mut block: rexe_chain::Block) {
    block.seal = rexe_chain::seal::TestSealer::seal(&block.header);
    let now = block.header.time;
    chain.submit(block, now).expect("block connects");
}

#[test]
fn block_stuffing_pays_a_rising_burn_and_honest_transactions_still_get_in() {
    // Two shards; blocks hold 10 transfers per shard (base fee target: 5). A miner with two
    // thirds of the hash power fills every block it finds on shard 0 with its own
    // transfers (kept private: no tips to anyone else); an honest miner finds the rest and
    // builds from the mempool. Honest users on shard 0 pay what `estimate_fee` suggests.
    let attacker = keys_on(1, 0, 1, "attacker").remove(0);
    let users = keys_on(1, 0, 8, "user");
    let bystander = keys_on(1, 1, 1, "bystander").remove(0);
    let honest_miner = Signer::from_seed(b"honest-miner").address();
    // The attacker's budget: 50 rxBTC, and a small subsidy so it cannot mine its way on.
    let mut alloc = vec![
        (attacker.address(), Amount::from_sat(50 * 100_000_000)),
        (bystander.address(), Amount::ONE_BTC),
    ];
    alloc.extend(
        users
            .iter()
            .map(|u| (u.address(), Amount::from_sat(100 * 100_000_000))),
    );
    let mut p = ChainParams::for_tests(1, alloc);
    p.block_gas_per_shard = 10 * TRANSFER_GAS;
    p.halving_interval = 1_000_000;
    p.initial_subsidy = Amount::from_sat(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let mut chain = open(dir.path(), &p, 2);
    let min = p.min_base_fee;

    let mut attacker_nonce = 0u64;
    let mut user_nonce = vec![0u64; users.len()];
    // txid -> height submitted (honest users' transactions).
    let mut pending: BTreeMap<rexe_chain::Txid, u64> = BTreeMap::new();
    let mut delays = Vec::new();
    let mut stuffed_blocks = 0u64;
    let mut ran_out_at = None;
    let mut burned_by_attacker = 0u64;
    let mut last_base = min;
    for h in 1..=510u64 {
        let now = time_of(&p, h);
        // An honest user sends every other block, with the estimate's max fee and tip.
        if h % 2 == 0 {
            let i = (h as usize / 2) % users.len();
            let est = chain.estimate_fee(ShardId(0), 3).unwrap();
            let tx = gas_transfer(
                &users[i],
                bystander.address(),
                user_nonce[i],
                est.suggested_max_fee().to_msat(),
                est.tip.to_msat(),
            );
            let id = chain
                .submit_tx(tx)
                .expect("an honest transaction is admitted");
            pending.insert(id, h);
            user_nonce[i] += 1;
        }
        // The bystander's shard is quiet.
        let tx = gas_transfer(&bystander, users[0].address(), h - 1, 10, 1);
        chain.submit_tx(tx).unwrap();

        let base = chain.base_fee(ShardId(0)).unwrap();
        if h % 3 != 0 {
            // The attacker's block: its own transfers fill shard 0 (max fee just above the
            // base fee, so it pays the burn and nothing more); shard 1 from the mempool.
            let own: Vec<SignedTx> = (0..10)
                .map(|k| {
                    gas_transfer(
                        &attacker,
                        attacker.address(),
                        attacker_nonce + k,
                        base.to_msat(),
                        0,
                    )
                })
                .collect();
            let before = chain.account(&attacker.address()).unwrap().balance;
            let affordable = own
                .iter()
                .try_fold(Amount::ZERO, |a, t| a.checked_add(t.tx.total_spend()?))
                .is_some_and(|need| need <= before);
            let shard1: Vec<SignedTx> = chain.mempool().shard_txs(ShardId(1)).cloned().collect();
            if !affordable && ran_out_at.is_none() {
                ran_out_at = Some(h);
            }
            let body = vec![if affordable { own } else { Vec::new() }, shard1];
            let block = chain
                .template_with(attacker.address(), now, body, false)
                .expect("the attacker's block is valid");
            seal_submit(&mut chain, block);
            if affordable {
                attacker_nonce += 10;
                stuffed_blocks += 1;
                let f = chain.last_fees()[0];
                assert_eq!(f.gas_used, p.block_gas_per_shard, "a full block");
                assert_eq!(f.base_fee, base);
                assert!(
                    f.next_base_fee > f.base_fee,
                    "a full block raises the base fee"
                );
                burned_by_attacker += f.burned.to_sat();
                assert_eq!(
                    f.burned,
                    Amount::from_sat(10 * base.cost(TRANSFER_GAS).unwrap().to_sat()),
                    "the attacker burns the base fee of every gas unit it stuffs"
                );
            }
        } else {
            let block = mine(&mut chain, honest_miner);
            for id in block.txs.iter().flatten().map(SignedTx::txid) {
                if let Some(at) = pending.remove(&id) {
                    delays.push(h - at);
                }
            }
        }
        let fees = chain.last_fees().to_vec();
        assert_eq!(
            fees[1].base_fee, min,
            "a local fee market: the quiet shard's base fee stays at the minimum"
        );
        last_base = last_base.max(fees[0].next_base_fee);
        if h % 50 == 0 {
            assert_supply(&mut chain);
        }
    }
    assert_supply(&mut chain);
    assert!(
        stuffed_blocks >= 100,
        "the attacker stuffed {stuffed_blocks} blocks"
    );
    let ran_out_at = ran_out_at.expect("the rising burn exhausts the attacker's 50 rxBTC");
    eprintln!(
        "stuffed {stuffed_blocks} blocks, burned {burned_by_attacker} sats, ran out at block \
         {ran_out_at}, peak base fee {last_base}"
    );
    assert!(
        ran_out_at < 450,
        "the attacker ran out at block {ran_out_at}"
    );
    assert!(
        last_base.to_msat() > 1_000 * min.to_msat(),
        "the base fee rose block after block: peak {last_base}"
    );
    assert!(
        burned_by_attacker > 100_000_000,
        "stuffing cost the attacker {burned_by_attacker} sats of burn"
    );
    let supply = chain.audit_supply().unwrap();
    assert!(supply.burned.to_sat() >= burned_by_attacker);
    // Every honest transaction got in at the next honest block (at most three blocks).
    assert!(pending.len() <= 1, "still waiting: {pending:?}");
    assert!(delays.len() >= 250);
    let worst = delays.iter().max().copied().unwrap();
    assert!(worst <= 3, "an honest transaction waited {worst} blocks");
}

#[test]
fn a_block_over_each_limit_is_rejected_and_templates_stay_within_them() {
    let keys = keys(12);
    let base = params(0, &keys);
    type Limit = (&'static str, fn(&mut ChainParams));
    let limits: [Limit; 4] = [
        ("gas", |p| p.block_gas_per_shard = 3 * TRANSFER_GAS),
        ("bytes", |p| p.block_bytes_per_shard = 3 * 178),
        // Two of a shard's relays are kept for the payouts.
        ("relays", |p| p.block_relays_per_shard = 5),
        ("transactions", |p| p.max_txs_per_shard = 3),
    ];
    let size = gas_transfer(&keys[0], keys[1].address(), 0, 10, 1)
        .to_bytes()
        .len();
    assert_eq!(
        size, 178,
        "a transfer's size, which the bytes limit above assumes"
    );
    for (name, set) in limits {
        // A chain without the limit mines four transfers in one block...
        let dir = tempfile::tempdir().unwrap();
        let mut loose = open(dir.path(), &base, 1);
        for (i, k) in keys.iter().take(4).enumerate() {
            loose
                .submit_tx(gas_transfer(k, keys[(i + 1) % 4].address(), 0, 10, 1))
                .unwrap();
        }
        let block = mine(&mut loose, keys[11].address());
        assert_eq!(block.tx_count(), 4);
        // ...which a chain with the limit rejects, with the limit named.
        let mut strict_params = base.clone();
        set(&mut strict_params);
        let dir2 = tempfile::tempdir().unwrap();
        let mut strict = open(dir2.path(), &strict_params, 1);
        let now = block.header.time;
        match strict.submit(block, now) {
            Err(BlockError::Exec(e)) => assert!(
                e.to_string()
                    .contains(&format!("over the block's {name} limit")),
                "{name}: {e}"
            ),
            // Checked before execution, with its own error.
            Err(BlockError::TooManyTxs {
                count: 4, limit: 3, ..
            }) => assert_eq!(name, "transactions"),
            other => panic!("{name}: a block over the limit was not rejected: {other:?}"),
        }
        // Its template from a full mempool holds three, and connects.
        for (i, k) in keys.iter().enumerate().take(10) {
            strict
                .submit_tx(gas_transfer(k, keys[(i + 1) % 10].address(), 0, 10, 1))
                .unwrap();
        }
        let t = mine(&mut strict, keys[11].address());
        assert_eq!(
            t.tx_count(),
            3,
            "{name}: the template fills the limit exactly"
        );
        assert_eq!(strict.mempool().len(), 7, "{name}: the rest wait");
        assert_supply(&mut strict);
    }
}

#[test]
fn a_call_using_a_tenth_of_its_gas_pays_for_a_tenth() {
    let mut net = Net::new(0, 1, 3);
    let c = net.deploy(0, SPENDER, &json!({}));
    let code = net.chain.contracts().get(&c).unwrap().code.clone();
    let (_, f) = code.function("burn").unwrap();
    let args = contract::abi::encode_args(&code, f, &json!({"rounds": 200})).unwrap();
    let k = net.keys[1].clone();
    let send = |net: &mut Net, nonce: u64, gas: u64| {
        // Max fee 5 msat/gas with a tip up to 5: pays base fee (1) + 4 per gas.
        let tx = call_tx(&k, nonce, c, "burn", args.clone(), gas, 5);
        let id = net.chain.submit_tx(tx).unwrap();
        net.settle();
        net.chain.fee_receipt(id).unwrap().unwrap().1
    };
    let first = send(&mut net, 0, 1_000_000);
    let used = first["gas_used"].as_u64().unwrap();
    assert!(used > 20_000 && used < 100_000, "{used}");
    let before = net.chain.account(&k.address()).unwrap().balance.to_sat();
    let r = send(&mut net, 1, 10 * used);
    let after = net.chain.account(&k.address()).unwrap().balance.to_sat();
    assert_eq!(r["gas_used"].as_u64().unwrap(), used, "same work, same gas");
    let (burned, tip, refund) = (
        r["burned"].as_u64().unwrap(),
        r["tip"].as_u64().unwrap(),
        r["refund"].as_u64().unwrap(),
    );
    let price = |msat: u64| GasPrice::from_msat(msat);
    let base = net.chain.params().min_base_fee;
    assert_eq!(r["base_fee"].as_u64().unwrap(), base.to_msat());
    assert_eq!(burned, base.cost(used).unwrap().to_sat());
    assert_eq!(burned + tip, price(5).cost(used).unwrap().to_sat());
    let reserved = price(5).cost(10 * used).unwrap().to_sat();
    assert_eq!(burned + tip + refund, reserved);
    assert_eq!(
        before - after,
        burned + tip,
        "the sender pays only what it used"
    );
    // A tenth of the gas, a tenth of the reservation (up to rounding to whole sats).
    assert!(((burned + tip) * 10).abs_diff(reserved) <= 10, "{r}");
}

#[test]
fn relays_over_a_shards_gas_wait_in_order_and_run_exactly_once() {
    // Four shards. Twelve senders on shards 1-3 each relay one call carrying about
    // 970,000 gas to one address on shard 0, whose blocks have room for three of them.
    let order = 2;
    let target = keys_on(order, 0, 1, "target").remove(0);
    let senders: Vec<Signer> = (1..4)
        .flat_map(|s| keys_on(order, s, 4, "sender"))
        .collect();
    let deployer = Signer::from_seed(b"deployer");
    let mut keys = vec![deployer];
    keys.extend(senders.iter().cloned());
    let mut p = params(order, &keys);
    p.block_gas_per_shard = 3_000_000;
    let mut net = Net::with_params(p, keys, config(2));
    let c = net.deploy(0, SPENDER, &json!({}));
    let code = net.chain.contracts().get(&c).unwrap().code.clone();
    let (_, f) = code.function("pass").unwrap();
    let args =
        contract::abi::encode_args(&code, f, &json!([json!(target.address().to_string()), 1]))
            .unwrap();
    let mut ids = Vec::new();
    for s in &senders {
        let tx = call_tx(s, 0, c, "pass", args.clone(), 1_000_000, 5);
        ids.push(net.chain.submit_tx(tx).unwrap());
    }
    let n_of = |net: &mut Net| {
        net.chain
            .contract_state(&c, &Target::Address(target.address()))
            .unwrap()
            .map_or(0, |v| v["n"].as_u64().unwrap())
    };
    let mut seen = Vec::new();
    let mut waited = false;
    for _ in 0..12 {
        net.mine();
        waited |= net.chain.stats().relays_waiting > 0;
        seen.push(n_of(&mut net));
        assert_supply(&mut net.chain);
    }
    assert!(waited, "relays waited for room: {seen:?}");
    assert_eq!(*seen.last().unwrap(), 12, "every relay ran: {seen:?}");
    for w in seen.windows(2) {
        assert!(w[1] - w[0] <= 3, "at most three relays per block: {seen:?}");
    }
    // Exactly once each, in canonical order: by the block that emitted them, then origin
    // shard, then position (the order of emission).
    let mut ran = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let rs = net.chain.contract_receipts(*id).unwrap();
        let relays: Vec<_> = rs.iter().filter(|(_, r)| r["kind"] == "relay").collect();
        assert_eq!(relays.len(), 1, "tx {i}: {rs:?}");
        let rexe_chain::TxStatus::Confirmed {
            height,
            shard,
            position,
            ..
        } = net.chain.tx_status(*id).unwrap()
        else {
            panic!("tx {i} not confirmed");
        };
        ran.push(((height, shard.0, position), relays[0].0));
    }
    ran.sort();
    assert!(
        ran.windows(2).all(|w| w[0].1 <= w[1].1),
        "relays ran out of order: {ran:?}"
    );
}

#[test]
fn admission_says_why_a_transaction_waits_outside() {
    let keys = keys(6);
    let p = params(0, &keys);
    let dir = tempfile::tempdir().unwrap();
    let cfg = rexe_chain::ChainConfig {
        mempool_per_shard: 3,
        ..config(1)
    };
    let mut chain = rexe_chain::Chain::open(
        dir.path(),
        p.clone(),
        cfg,
        std::sync::Arc::new(rexe_chain::seal::TestSealer),
    )
    .unwrap();
    let to = keys[5].address();
    for k in &keys[..3] {
        chain.submit_tx(gas_transfer(k, to, 0, 10, 2)).unwrap();
    }
    // Full of transactions paying at least as much.
    let e = chain
        .submit_tx(gas_transfer(&keys[3], to, 0, 10, 2))
        .unwrap_err();
    assert!(e.to_string().starts_with("mempool full"), "{e}");
    // A higher tip evicts the lowest.
    chain
        .submit_tx(gas_transfer(&keys[3], to, 0, 10, 3))
        .unwrap();
    assert_eq!(chain.mempool().len(), 3);
    // A replacement must raise max fee and tip by 10%.
    let e = chain
        .submit_tx(gas_transfer(&keys[3], to, 0, 10, 4))
        .unwrap_err();
    assert!(e.to_string().contains("replacement must raise"), "{e}");
    chain
        .submit_tx(gas_transfer(&keys[3], to, 0, 11, 4))
        .unwrap();
    // Below the shard's current base fee: refused with both numbers.
    let mut stuffed = p.clone();
    stuffed.block_gas_per_shard = 2 * TRANSFER_GAS;
    let dir2 = tempfile::tempdir().unwrap();
    let mut hot = open(dir2.path(), &stuffed, 1);
    for round in 0..3u64 {
        for k in &keys[..2] {
            hot.submit_tx(gas_transfer(k, to, round, 1_000, 1)).unwrap();
        }
        mine(&mut hot, keys[5].address());
    }
    let base = hot.base_fee(ShardId(0)).unwrap();
    assert!(base > p.min_base_fee, "full blocks raised it: {base}");
    let e = hot
        .submit_tx(gas_transfer(&keys[4], to, 0, base.to_msat() - 1, 0))
        .unwrap_err();
    assert!(e.to_string().starts_with("fee below base fee"), "{e}");
    let est = hot.estimate_fee(ShardId(0), 3).unwrap();
    assert_eq!(est.base_fee, base);
    hot.submit_tx(gas_transfer(
        &keys[4],
        to,
        0,
        est.suggested_max_fee().to_msat(),
        est.tip.to_msat(),
    ))
    .unwrap();
}

#[test]
fn escrowed_relays_keep_the_supply_through_rollback_and_restart() {
    // Relays carrying escrow in flight, some waiting for room on shard 0: the supply
    // (balances + in flight + burned = issued) holds after every block, after rolling
    // blocks back, and after reopening the data directory.
    let order = 2;
    let target = keys_on(order, 0, 1, "target").remove(0);
    let senders: Vec<Signer> = (1..4)
        .flat_map(|s| keys_on(order, s, 3, "escrow-sender"))
        .collect();
    let mut keys = vec![Signer::from_seed(b"deployer")];
    keys.extend(senders.iter().cloned());
    let mut p = params(order, &keys);
    p.block_gas_per_shard = 3_000_000;
    let mut net = Net::with_params(p.clone(), keys, config(2));
    let c = net.deploy(0, SPENDER, &json!({}));
    let code = net.chain.contracts().get(&c).unwrap().code.clone();
    let (_, f) = code.function("pass").unwrap();
    let args =
        contract::abi::encode_args(&code, f, &json!([json!(target.address().to_string()), 1]))
            .unwrap();
    for s in &senders {
        net.chain
            .submit_tx(call_tx(s, 0, c, "pass", args.clone(), 1_000_000, 5))
            .unwrap();
    }
    net.mine();
    let in_flight = net.chain.audit_supply().unwrap();
    assert!(in_flight.holds(), "{in_flight:?}");
    assert!(
        in_flight.in_flight.to_sat() > 0,
        "escrow travels with the relays: {in_flight:?}"
    );
    net.mine();
    assert!(net.chain.stats().relays_waiting > 0, "some relays wait");
    assert_supply(&mut net.chain);
    let height = net.chain.tip_height();
    // Roll back both blocks: the transactions return to the mempool, the escrow with them.
    net.chain.rollback(2).unwrap();
    assert_supply(&mut net.chain);
    assert_eq!(net.chain.mempool().len(), senders.len());
    // Mine again (another miner: another branch), then reopen from disk: same supply,
    // same commitments.
    net.miner = Signer::from_seed(b"other-miner").address();
    net.mine();
    net.mine();
    assert_supply(&mut net.chain);
    let root_again = net.chain.tip_header().state_root;
    assert_eq!(net.chain.tip_height(), height);
    net.chain.flush().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let placeholder = open(scratch.path(), &p, 1);
    drop(std::mem::replace(&mut net.chain, placeholder));
    net.chain = open(net._dir.path(), &p, 2);
    assert_eq!(net.chain.tip_header().state_root, root_again);
    assert_supply(&mut net.chain);
    for _ in 0..6 {
        net.mine();
        assert_supply(&mut net.chain);
    }
    let n = net
        .chain
        .contract_state(&c, &Target::Address(target.address()))
        .unwrap()
        .unwrap()["n"]
        .as_u64()
        .unwrap();
    assert_eq!(n, senders.len() as u64, "every relay ran once");
    let s = net.chain.audit_supply().unwrap();
    assert!(s.burned.to_sat() > 0, "{s:?}");
}
