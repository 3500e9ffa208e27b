//! Relay proofs against real blocks: every relay a chunk sends is proven against the header
//! alone, a proof covers the whole list from one chunk to one target, and every way of
//! bending a proof is refused.

mod common;

use common::contracts::*;
use common::*;
use rexe_chain::chain::RelayProofQueryError;
use rexe_chain::encode::{Decode, Encode};
use rexe_chain::proof::{RelayProof, RelayProofError};
use rexe_chain::relay::RelayKind;
use rexe_chain::{shard_of, Amount, BlockHash, Hash256, Payload, ShardId};
use serde_json::json;

/// Every partition of a chain of `n` shards: the shards, then the global lane.
fn partitions(n: usize) -> Vec<ShardId> {
    (0..n as u16)
        .map(ShardId)
        .chain([ShardId::GLOBAL])
        .collect()
}

/// A 4-shard chain with cross-shard transfers and token calls in its recent blocks.
fn busy_net() -> Net {
    let mut net = Net::new(2, 2, 8);
    let token = net.deploy(0, example("token"), &json!({"supply": "1000000"}));
    net.settle();
    for round in 0..3u64 {
        for i in 0..8usize {
            let to = net.keys[(i + 3) % 8].address();
            net.send(
                i,
                Payload::Transfer {
                    to,
                    amount: Amount::from_sat(1_000 + round),
                },
                rexe_chain::tx::TRANSFER_GAS,
            )
            .unwrap();
        }
        net.call(0, token, "transfer", &json!([addr_json(5), "7"]));
        net.mine();
    }
    net.settle();
    net
}

#[test]
fn every_relay_of_every_recent_block_is_proven_against_its_header() {
    let net = busy_net();
    let chain = &net.chain;
    let order = chain.params().shard_order;
    let n = order.shard_count();
    let (mut proven, mut contract_relays, mut cross_transfers) = (0, 0, 0);
    for h in 1..=chain.tip_height() {
        let hash = chain.hash_at(h).unwrap();
        let header = chain.header(&hash).unwrap().clone();
        let block = chain.block(hash).unwrap().unwrap();
        let mut by_pair = std::collections::HashMap::new();
        for origin in partitions(n) {
            for target in partitions(n) {
                let p = chain.relay_proof(hash, origin, target).unwrap();
                p.verify(&header)
                    .unwrap_or_else(|e| panic!("block {h} {origin}->{target}: {e}"));
                assert_eq!(RelayProof::from_bytes(&p.to_bytes()).unwrap(), p);
                proven += p.relays.len();
                contract_relays += p
                    .relays
                    .iter()
                    .filter(|r| matches!(r.kind, RelayKind::Contract(_)))
                    .count();
                by_pair.insert((origin, target), p.relays);
            }
        }
        // Independently of the stored relays: each cross-shard transfer in the block has its
        // deposit in the proof from the sender's shard to the recipient's.
        for (s, txs) in block.txs.iter().enumerate() {
            for t in txs {
                if let Payload::Transfer { to, amount } = t.tx.payload {
                    let target = shard_of(&to, order);
                    if target.index() == s {
                        continue;
                    }
                    cross_transfers += 1;
                    let relays = &by_pair[&(ShardId(s as u16), target)];
                    assert!(
                        relays
                            .iter()
                            .any(|r| r.kind == RelayKind::Deposit { to, amount }),
                        "block {h}: deposit of {amount} to {to} from shard {s} is not proven"
                    );
                }
            }
        }
    }
    assert!(
        cross_transfers >= 10,
        "{cross_transfers} cross-shard transfers"
    );
    assert!(contract_relays >= 2, "{contract_relays} contract relays");
    assert!(proven >= cross_transfers + contract_relays);
}

/// The first proof of a recent block with at least two relays.
fn nonempty_proof(net: &Net) -> (RelayProof, rexe_chain::Header) {
    let chain = &net.chain;
    let n = chain.params().shard_order.shard_count();
    for h in (1..=chain.tip_height()).rev() {
        let hash = chain.hash_at(h).unwrap();
        for origin in partitions(n) {
            for target in partitions(n) {
                let p = chain.relay_proof(hash, origin, target).unwrap();
                if p.relays.len() >= 2 {
                    return (p, chain.header(&hash).unwrap().clone());
                }
            }
        }
    }
    panic!("no block sent two relays to one target");
}

#[test]
fn bent_proofs_are_refused() {
    let net = busy_net();
    let (good, header) = nonempty_proof(&net);
    good.verify(&header).unwrap();
    let refused = |p: &RelayProof| p.verify(&header).expect_err("bent proof accepted");

    // A relay withheld, added twice, or changed.
    let mut p = good.clone();
    p.relays.pop();
    assert!(matches!(refused(&p), RelayProofError::RootMismatch { .. }));
    let mut p = good.clone();
    p.relays.clear();
    assert!(matches!(refused(&p), RelayProofError::RootMismatch { .. }));
    let mut p = good.clone();
    let last = p.relays.last().unwrap().clone();
    p.relays.push(rexe_chain::relay::Relay {
        index: last.index + 1,
        ..last
    });
    assert!(matches!(refused(&p), RelayProofError::RootMismatch { .. }));
    let mut p = good.clone();
    p.relays[0].kind = RelayKind::Deposit {
        to: net.miner,
        amount: Amount::from_sat(1),
    };
    assert!(matches!(refused(&p), RelayProofError::RootMismatch { .. }));
    // Reordered.
    let mut p = good.clone();
    p.relays.swap(0, 1);
    assert!(matches!(refused(&p), RelayProofError::OutOfOrder(1)));
    // Claimed for another target or origin.
    let mut p = good.clone();
    p.target = if good.target.is_global() {
        ShardId(0)
    } else {
        ShardId::GLOBAL
    };
    assert!(matches!(refused(&p), RelayProofError::Misrouted { .. }));
    let mut p = good.clone();
    p.origin = ShardId(99);
    assert!(matches!(refused(&p), RelayProofError::OutOfRange(_)));
    let mut p = good.clone();
    for r in &mut p.relays {
        r.target = if good.target == ShardId(1) {
            ShardId(2)
        } else {
            ShardId(1)
        };
    }
    p.target = p.relays[0].target;
    assert!(matches!(refused(&p), RelayProofError::RootMismatch { .. }));
    // Branches bent, cut or lengthened.
    let mut p = good.clone();
    p.outbox_branch[0] = Hash256([7; 32]);
    assert!(matches!(refused(&p), RelayProofError::RootMismatch { .. }));
    let mut p = good.clone();
    p.header_branch.pop();
    assert!(matches!(refused(&p), RelayProofError::BadBranch("header")));
    let mut p = good.clone();
    p.outbox_branch.push(Hash256::ZERO);
    assert!(matches!(refused(&p), RelayProofError::BadBranch("outbox")));
    // Against another block's header, or renamed to it.
    let other = net.chain.header(&net.chain.hash_at(1).unwrap()).unwrap();
    assert!(matches!(
        good.verify(other),
        Err(RelayProofError::WrongBlock { .. })
    ));
    let mut p = good.clone();
    p.block = other.hash();
    assert!(matches!(
        p.verify(other),
        Err(RelayProofError::RootMismatch { .. })
    ));
    // Garbage and truncations decode to errors, never panics.
    let bytes = good.to_bytes();
    for cut in 0..bytes.len() {
        assert!(RelayProof::from_bytes(&bytes[..cut]).is_err());
    }
    let mut long = bytes.clone();
    long.push(0);
    assert!(RelayProof::from_bytes(&long).is_err());
}

#[test]
fn proof_queries_name_what_is_missing_and_survive_a_restart() {
    let mut net = busy_net();
    let n = net.chain.params().shard_order.shard_count();
    let tip = net.chain.tip_hash();
    assert!(matches!(
        net.chain
            .relay_proof(BlockHash::default(), ShardId(0), ShardId(1)),
        Err(RelayProofQueryError::NotActive(_))
    ));
    assert!(matches!(
        net.chain.relay_proof(tip, ShardId(0), ShardId(n as u16)),
        Err(RelayProofQueryError::OutOfRange(ShardId(4)))
    ));
    let before: Vec<RelayProof> = partitions(n)
        .into_iter()
        .map(|o| net.chain.relay_proof(tip, o, ShardId(1)).unwrap())
        .collect();
    // Stored, not kept in memory: a reopened chain serves the same proofs.
    let dir = net._dir.path().to_path_buf();
    let p = net.chain.params().clone();
    drop(std::mem::replace(
        &mut net.chain,
        open(tempfile::tempdir().unwrap().path(), &p, 1),
    ));
    net.chain = open(&dir, &p, 2);
    for (o, want) in partitions(n).into_iter().zip(before) {
        assert_eq!(net.chain.relay_proof(tip, o, ShardId(1)).unwrap(), want);
    }
    // Proofs are served for the undo depth, then pruned.
    let depth = net.chain.params().undo_depth;
    let old = net.chain.hash_at(1).unwrap();
    for _ in 0..depth + 1 {
        net.mine();
    }
    let e = net
        .chain
        .relay_proof(old, ShardId(0), ShardId(1))
        .unwrap_err();
    assert!(
        matches!(e, RelayProofQueryError::Pruned { height: 1, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("last 20 blocks"), "{e}");
}
