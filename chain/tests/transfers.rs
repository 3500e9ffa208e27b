//! Native transfers across and within shards.

mod common;

use common::*;
use rexe_chain::{shard_of, Amount, Signer};

#[test]
fn cross_shard_transfer_is_credited_exactly_one_block_later() {
    let keys = keys(16);
    let p = params(2, &keys);
    let dir = tempfile::tempdir().unwrap();
    let mut chain = open(dir.path(), &p, 2);
    let order = p.shard_order;
    // Find a payer and payee on different shards.
    let (a, b) = keys
        .iter()
        .flat_map(|a| keys.iter().map(move |b| (a, b)))
        .find(|(a, b)| shard_of(&a.address(), order) != shard_of(&b.address(), order))
        .unwrap();
    let miner = Signer::from_seed(b"miner").address();
    chain
        .submit_tx(transfer(a, b.address(), 1000, 0, 10))
        .unwrap();
    mine(&mut chain, miner);
    assert_eq!(
        chain.account(&a.address()).unwrap().balance,
        Amount::from_sat(100_000_000 - 1000 - transfer_paid(10))
    );
    assert_eq!(
        chain.account(&b.address()).unwrap().balance,
        Amount::ONE_BTC,
        "not credited in the same block"
    );
    assert_supply(&mut chain);
    mine(&mut chain, miner);
    assert_eq!(
        chain.account(&b.address()).unwrap().balance,
        Amount::from_sat(100_000_000 + 1000),
        "credited in the next block"
    );
    assert_supply(&mut chain);
}

#[test]
fn same_shard_transfer_is_credited_at_the_end_of_the_same_block() {
    let keys = keys(32);
    let p = params(2, &keys);
    let dir = tempfile::tempdir().unwrap();
    let mut chain = open(dir.path(), &p, 1);
    let order = p.shard_order;
    let (a, b) = keys
        .iter()
        .flat_map(|a| keys.iter().map(move |b| (a, b)))
        .find(|(a, b)| {
            a.address() != b.address()
                && shard_of(&a.address(), order) == shard_of(&b.address(), order)
        })
        .unwrap();
    let miner = Signer::from_seed(b"miner").address();
    chain
        .submit_tx(transfer(a, b.address(), 1000, 0, 10))
        .unwrap();
    mine(&mut chain, miner);
    assert_eq!(
        chain.account(&b.address()).unwrap().balance,
        Amount::from_sat(100_000_000 + 1000)
    );
    assert_supply(&mut chain);
}

#[test]
fn miner_receives_subsidy_and_fees() {
    let keys = keys(8);
    let p = params(1, &keys);
    let dir = tempfile::tempdir().unwrap();
    let mut chain = open(dir.path(), &p, 2);
    let miner = Signer::from_seed(b"miner").address();
    for (i, k) in keys.iter().enumerate() {
        chain
            .submit_tx(transfer(k, keys[(i + 1) % 8].address(), 500, 0, 7))
            .unwrap();
    }
    mine(&mut chain, miner);
    mine(&mut chain, miner);
    let subsidy = p.subsidy(1).to_sat() + p.subsidy(2).to_sat();
    assert_eq!(
        chain.account(&miner).unwrap().balance,
        Amount::from_sat(subsidy + 8 * transfer_tip(7, p.min_base_fee.to_msat()))
    );
    assert_supply(&mut chain);
}

/// The shard caches count what they answer: a first read of an account goes to SQLite (a
/// miss), the next is answered from memory (a hit), and the figures are per shard.
#[test]
fn shard_caches_count_hits_and_misses() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keys(4);
    let params = params(2, &keys);
    let chain = open(dir.path(), &params, 2);
    // Reopened: the caches start empty and the counters at zero.
    drop(chain);
    let mut chain = open(dir.path(), &params, 2);
    let a = keys[0].address();
    let shard = shard_of(&a, params.shard_order).index();
    let before = chain.cache_stats()[shard];
    chain.account(&a).unwrap();
    let first = chain.cache_stats()[shard];
    chain.account(&a).unwrap();
    let second = chain.cache_stats()[shard];
    assert_eq!(
        first.account_hits + first.account_misses,
        before.account_hits + before.account_misses + 1
    );
    assert_eq!(second.account_hits, first.account_hits + 1, "{second:?}");
    assert_eq!(second.account_misses, first.account_misses);
    assert!(second.accounts >= 1 && second.hit_rate() > 0.0);
    assert_eq!(chain.cache_stats().len(), 4);
}
