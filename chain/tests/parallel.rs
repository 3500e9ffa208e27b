//! Parallel execution gives exactly the state sequential execution gives, on 1, 2, 4 and 16
//! shards with 1 and 2 threads; the supply invariant holds after every block.

mod common;

use common::*;
use proptest::prelude::*;
use rexe_chain::{Address, Hash256, Signer};

const KEYS: usize = 24;

/// Runs `blocks` (each a list of (from, to, amount)) through a chain and returns the final
/// balances (after an empty block so every relay has landed) and the state root after
/// every block.
fn run(
    order: u8,
    threads: usize,
    blocks: &[Vec<(usize, usize, u64)>],
) -> (Vec<(Address, u64, u64)>, Vec<Hash256>) {
    run_with(order, config(threads), blocks)
}

fn run_with(
    order: u8,
    cfg: rexe_chain::ChainConfig,
    blocks: &[Vec<(usize, usize, u64)>],
) -> (Vec<(Address, u64, u64)>, Vec<Hash256>) {
    let keys = keys(KEYS);
    let p = params(order, &keys);
    let dir = tempfile::tempdir().unwrap();
    let mut chain = rexe_chain::Chain::open(
        dir.path(),
        p.clone(),
        cfg,
        std::sync::Arc::new(rexe_chain::seal::TestSealer),
    )
    .unwrap();
    let miner = Signer::from_seed(b"miner").address();
    let mut nonces = [0u64; KEYS];
    let mut roots = Vec::new();
    for txs in blocks.iter().chain(std::iter::once(&Vec::new())) {
        for &(f, t, amount) in txs {
            let tx = transfer(
                &keys[f],
                keys[t].address(),
                amount,
                nonces[f],
                1 + amount % 7,
            );
            chain.submit_tx(tx).unwrap();
            nonces[f] += 1;
        }
        let b = mine(&mut chain, miner);
        assert_eq!(
            b.tx_count(),
            txs.len(),
            "every transaction fits and is valid"
        );
        roots.push(b.header.state_root);
        assert_supply(&mut chain);
    }
    let balances = chain
        .all_accounts()
        .unwrap()
        .into_iter()
        .map(|(a, acct)| (a, acct.balance.to_sat(), acct.nonce))
        .collect();
    (balances, roots)
}

fn workload() -> impl Strategy<Value = Vec<Vec<(usize, usize, u64)>>> {
    prop::collection::vec(
        prop::collection::vec((0..KEYS, 0..KEYS, 1u64..5_000), 0..30),
        1..5,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn parallel_equals_sequential_on_1_2_4_16_shards(blocks in workload()) {
        let mut balances_by_order = Vec::new();
        for order in [0u8, 1, 2, 4] {
            let (seq_bal, seq_roots) = run(order, 1, &blocks);
            let (par_bal, par_roots) = run(order, 2, &blocks);
            prop_assert_eq!(&seq_roots, &par_roots, "state roots differ at order {}", order);
            prop_assert_eq!(&seq_bal, &par_bal);
            balances_by_order.push(seq_bal);
        }
        // A cache far smaller than the state (constant eviction, reads from SQLite) and
        // a flush at every block give the same state as a cache that holds everything.
        let tiny = rexe_chain::ChainConfig {
            threads: 2,
            flush_every_blocks: 1,
            cache_limit: 3,
            ..rexe_chain::ChainConfig::default()
        };
        let (tiny_bal, tiny_roots) = run_with(2, tiny, &blocks);
        let (big_bal, big_roots) = run(2, 2, &blocks);
        prop_assert_eq!(tiny_roots, big_roots);
        prop_assert_eq!(tiny_bal, big_bal);
        // Once relays have landed, the shard count does not change who owns what.
        for b in &balances_by_order[1..] {
            prop_assert_eq!(b, &balances_by_order[0]);
        }
    }
}
