//! Nodes that track some shards, fed packages by a full node: they agree with it on every
//! header and on the state of the shards they run; a package that does not match its header
//! is refused without condemning the block; a restart replays from stored packages.

mod common;

use std::sync::Arc;

use common::contracts::*;
use common::*;
use rexe_chain::partial::{PackageError, PartialBlock};
use rexe_chain::seal::TestSealer;
use rexe_chain::{shard_of, Amount, BlockError, Chain, ChainConfig, ChainError, Hash256, ShardId};
use serde_json::json;

fn partial(dir: &std::path::Path, net: &Net, shards: &[u16]) -> Chain {
    open_partial(dir, net.chain.params(), shards).unwrap()
}

/// Feeds `p` every active block of the full node it lacks.
fn feed(full: &Chain, p: &mut Chain) {
    for h in p.tip_height() + 1..=full.tip_height() {
        let hash = full.hash_at(h).unwrap();
        let pb = full.partial_block(hash, &p.tracked_shards()).unwrap();
        let now = pb.block.header.time;
        p.submit_partial(pb, now)
            .unwrap_or_else(|e| panic!("block {h}: {e}"));
    }
}

/// `p` agrees with `full` on the tip, the global state and every shard it runs.
fn agrees(full: &mut Chain, p: &mut Chain) {
    assert_eq!(p.tip_hash(), full.tip_hash());
    assert_eq!(p.global_digest(), full.global_digest());
    let (fr, pr) = (full.shard_roots(), p.shard_roots());
    for s in p.tracked_shards() {
        assert_eq!(pr[s.index()], fr[s.index()], "shard {s}");
    }
}

fn busy_round(net: &mut Net, token: rexe_chain::Address, round: u64) {
    for i in 0..8usize {
        let to = net.keys[(i + 3) % 8].address();
        net.send(
            i,
            rexe_chain::Payload::Transfer {
                to,
                amount: Amount::from_sat(1_000 + round),
            },
            rexe_chain::tx::TRANSFER_GAS,
        )
        .unwrap();
    }
    net.call(
        0,
        token,
        "transfer",
        &json!([addr_json((round as usize % 7) + 1), "3"]),
    );
    net.mine();
}

#[test]
fn two_partial_nodes_follow_a_full_node_through_transfers_and_token_calls() {
    let mut net = Net::new(2, 2, 8);
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let mut p1 = partial(d1.path(), &net, &[0, 1]);
    let mut p2 = partial(d2.path(), &net, &[2, 3]);
    assert!(p1.is_partial() && !net.chain.is_partial());
    let token = net.deploy(0, example("token"), &json!({"supply": "1000000"}));
    for round in 0..12u64 {
        busy_round(&mut net, token, round);
        feed(&net.chain, &mut p1);
        feed(&net.chain, &mut p2);
        agrees(&mut net.chain, &mut p1);
        agrees(&mut net.chain, &mut p2);
    }
    net.settle();
    feed(&net.chain, &mut p1);
    feed(&net.chain, &mut p2);
    agrees(&mut net.chain, &mut p1);
    agrees(&mut net.chain, &mut p2);
    // Accounts and token balances on the shards each runs are the full node's.
    let order = net.chain.params().shard_order;
    for k in &net.keys {
        let a = k.address();
        let p = if p1.tracks(shard_of(&a, order)) {
            &mut p1
        } else {
            &mut p2
        };
        assert_eq!(p.account(&a).unwrap(), net.chain.account(&a).unwrap());
        let target = rexe_chain::contract::Target::Address(a);
        assert_eq!(
            p.contract_state(&token, &target).unwrap(),
            net.chain.contract_state(&token, &target).unwrap()
        );
    }
    // What a partial node does not store it does not pretend to know.
    let other = net
        .keys
        .iter()
        .map(|k| k.address())
        .find(|a| !p1.tracks(shard_of(a, order)))
        .unwrap();
    assert!(p1.account(&other).is_err());
    assert!(p1.audit_supply().is_err());
    assert!(p1.template(net.miner, u64::MAX / 2).is_err());
}

#[test]
fn packages_that_do_not_match_their_header_are_refused_and_the_block_stays_acceptable() {
    let mut net = Net::new(2, 2, 8);
    let dir = tempfile::tempdir().unwrap();
    let mut p = partial(dir.path(), &net, &[1]);
    let token = net.deploy(0, example("token"), &json!({"supply": "1000"}));
    feed(&net.chain, &mut p);
    busy_round(&mut net, token, 0);
    let hash = net.chain.tip_hash();
    let good = net.chain.partial_block(hash, &[ShardId(1)]).unwrap();
    let now = good.block.header.time;
    let tip = p.tip_hash();
    let refused = |p: &mut Chain, pb: PartialBlock| {
        let e = p.submit_partial(pb, now).expect_err("bad package accepted");
        assert!(matches!(e, BlockError::BadPackage(_)), "{e}");
        assert_eq!(p.tip_hash(), tip);
        e
    };
    // A relay withheld from a proof.
    let mut pb = good.clone();
    let i = pb.relays.iter().position(|r| !r.relays.is_empty()).unwrap();
    pb.relays[i].relays.pop();
    refused(&mut p, pb);
    // A proof missing, or one not asked for.
    let mut pb = good.clone();
    pb.relays.pop();
    refused(&mut p, pb);
    let mut pb = good.clone();
    let mut extra = pb.relays[0].clone();
    extra.target = ShardId(0);
    pb.relays.push(extra);
    refused(&mut p, pb);
    // A chunk's roots changed.
    let mut pb = good.clone();
    pb.chunks[0].state_root = Hash256([1; 32]);
    let e = refused(&mut p, pb);
    assert!(
        matches!(
            e,
            BlockError::BadPackage(PackageError::ChunkRoots("state_root"))
        ),
        "{e}"
    );
    let mut pb = good.clone();
    pb.chunks[2].outbox_root = Hash256([1; 32]);
    refused(&mut p, pb);
    // Another shard's transactions, or the tracked shard's changed.
    let mut pb = good.clone();
    let whole = net.chain.block(hash).unwrap().unwrap();
    pb.block.txs = whole.txs.clone();
    refused(&mut p, pb);
    // A header without proof of work: refused before its package is looked at or stored.
    let mut pb = good.clone();
    pb.block.seal = vec![0; 3];
    let e = p.submit_partial(pb, now).unwrap_err();
    assert!(matches!(e, BlockError::BadSeal(_)), "{e}");
    // The whole block without a package.
    let e = p.submit(whole, now).unwrap_err();
    assert!(matches!(e, BlockError::NoPackage(_)), "{e}");
    // The block itself was never judged: the right package connects it.
    p.submit_partial(good, now).unwrap();
    assert_eq!(p.tip_hash(), hash);
    agrees(&mut net.chain, &mut p);
}

#[test]
fn a_partial_node_restarts_from_its_stored_packages_and_keeps_its_shards() {
    let mut net = Net::new(2, 2, 8);
    let dir = tempfile::tempdir().unwrap();
    let mut p = partial(dir.path(), &net, &[0, 3]);
    let token = net.deploy(0, example("token"), &json!({"supply": "1000"}));
    for round in 0..5 {
        busy_round(&mut net, token, round);
        feed(&net.chain, &mut p);
    }
    // Flushed every 3 blocks: reopening replays the last ones from their packages.
    drop(p);
    let mut p = partial(dir.path(), &net, &[0, 3]);
    agrees(&mut net.chain, &mut p);
    busy_round(&mut net, token, 9);
    feed(&net.chain, &mut p);
    agrees(&mut net.chain, &mut p);
    drop(p);
    // The tracked set is fixed with the directory.
    let e = Chain::open(
        dir.path(),
        net.chain.params().clone(),
        ChainConfig {
            tracked: Some(vec![ShardId(1)]),
            ..config(2)
        },
        Arc::new(TestSealer),
    )
    .err()
    .expect("another tracked set is refused");
    assert!(matches!(e, ChainError::TrackedChanged { .. }), "{e}");
    assert!(e.to_string().contains("0,3"), "{e}");
}

/// A partial node serves packages for sets of shards it runs: a node on {1} fed only by a
/// node on {0,1,2} (itself fed by the full node) agrees with the full node through
/// transfers, token calls and relayed calls, and its packages are the full node's. A set
/// with a shard the server does not run is refused.
#[test]
fn a_partial_node_serves_packages_for_the_shards_it_runs() {
    let mut net = Net::new(2, 2, 8);
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let mut wide = partial(d1.path(), &net, &[0, 1, 2]);
    let mut narrow = partial(d2.path(), &net, &[1]);
    let token = net.deploy(0, example("token"), &json!({"supply": "1000000"}));
    feed(&net.chain, &mut wide);
    feed(&wide, &mut narrow);
    for round in 0..10u64 {
        busy_round(&mut net, token, round);
        feed(&net.chain, &mut wide);
        // The same package from either server (the proofs from shard 0 and 2 made by the
        // partial node, those from shard 3 passed on from its own package).
        let tip = net.chain.tip_hash();
        assert_eq!(
            wide.partial_block(tip, &[ShardId(1)]).unwrap(),
            net.chain.partial_block(tip, &[ShardId(1)]).unwrap()
        );
        feed(&wide, &mut narrow);
        agrees(&mut net.chain, &mut narrow);
    }
    net.settle();
    feed(&net.chain, &mut wide);
    feed(&wide, &mut narrow);
    agrees(&mut net.chain, &mut narrow);
    agrees(&mut net.chain, &mut wide);
    let tip = net.chain.tip_hash();
    for set in [&[ShardId(3)][..], &[ShardId(1), ShardId(3)]] {
        let e = wide.partial_block(tip, set).unwrap_err();
        assert!(e.to_string().contains("does not run"), "{e}");
    }
    // Any subset of what it runs, the empty one included (a new node's checkpoint).
    for set in [
        &[][..],
        &[ShardId(0), ShardId(2)],
        &[ShardId(0), ShardId(1), ShardId(2)],
    ] {
        assert_eq!(
            wide.partial_block(tip, set).unwrap(),
            net.chain.partial_block(tip, set).unwrap()
        );
    }
}
