//! Helpers shared by the chain's integration tests.
#![allow(dead_code)]

pub mod contracts;

use std::path::Path;
use std::sync::Arc;

use rexe_chain::seal::TestSealer;
use rexe_chain::{
    shard_of, Address, Amount, Block, Chain, ChainConfig, ChainParams, Network, Payload, ShardId,
    SignedTx, Signer, SubmitOutcome, Tx,
};

/// Deterministic keys.
pub fn keys(n: usize) -> Vec<Signer> {
    (0..n)
        .map(|i| Signer::from_seed(format!("key-{i}").as_bytes()))
        .collect()
}

/// Test parameters: `2^order` shards, each key funded with 1 rxBTC.
pub fn params(order: u8, keys: &[Signer]) -> ChainParams {
    ChainParams::for_tests(
        order,
        keys.iter()
            .map(|k| (k.address(), Amount::ONE_BTC))
            .collect(),
    )
}

pub fn config(threads: usize) -> ChainConfig {
    ChainConfig {
        threads,
        flush_every_blocks: 3,
        ..ChainConfig::default()
    }
}

pub fn open(dir: &Path, params: &ChainParams, threads: usize) -> Chain {
    Chain::open(dir, params.clone(), config(threads), Arc::new(TestSealer)).expect("open chain")
}

/// Opens a node running only `shards` of `params`' chain in `dir` (see
/// `rexe_chain::partial`).
pub fn open_partial(
    dir: &Path,
    params: &ChainParams,
    shards: &[u16],
) -> Result<Chain, rexe_chain::ChainError> {
    Chain::open(
        dir,
        params.clone(),
        ChainConfig {
            tracked: Some(shards.iter().map(|s| ShardId(*s)).collect()),
            ..config(2)
        },
        Arc::new(TestSealer),
    )
}

/// Block time for `height` (one second apart from genesis).
pub fn time_of(params: &ChainParams, height: u64) -> u64 {
    params.genesis_time + height
}

pub fn transfer(from: &Signer, to: Address, amount: u64, nonce: u64, fee: u64) -> SignedTx {
    Tx {
        network: Network::Regtest,
        from: from.address(),
        nonce,
        max_fee: rexe_chain::fee::GasPrice::from_msat(fee),
        max_tip: rexe_chain::fee::GasPrice::from_msat(fee),
        gas_limit: rexe_chain::tx::TRANSFER_GAS,
        expiry_height: 1_000_000,
        payload: Payload::Transfer {
            to,
            amount: Amount::from_sat(amount),
        },
    }
    .sign(from)
}

/// What a transfer sent with `transfer(.., fee)` pays in a block whose base fee is at most
/// `fee` msat/gas (its max fee and max tip are both `fee`, so it pays `fee` per gas).
pub fn transfer_paid(fee: u64) -> u64 {
    rexe_chain::fee::GasPrice::from_msat(fee)
        .cost(rexe_chain::tx::TRANSFER_GAS)
        .unwrap()
        .to_sat()
}

/// Of that, what goes to the miner at base fee `base` msat/gas (the rest is burned).
pub fn transfer_tip(fee: u64, base: u64) -> u64 {
    transfer_paid(fee) - transfer_paid(base)
}

/// Builds a template from the mempool, seals it and submits it.
pub fn mine(chain: &mut Chain, miner: Address) -> Block {
    let h = chain.tip_height() + 1;
    let now = time_of(chain.params(), h);
    let mut block = chain.template(miner, now).expect("template");
    block.seal = TestSealer::seal(&block.header);
    assert_eq!(
        chain.submit(block.clone(), now).expect("submit own block"),
        SubmitOutcome::Connected
    );
    block
}

/// Asserts the supply invariant at the tip.
pub fn assert_supply(chain: &mut Chain) {
    let r = chain.audit_supply().expect("audit");
    assert!(r.holds(), "supply invariant broken: {r:?}");
    for r in chain.audit_assets().expect("asset audit") {
        assert!(r.holds(), "asset supply invariant broken: {r:?}");
    }
}

/// Keys on shard `shard` of `2^order` shards.
pub fn keys_on(order: u8, shard: u16, n: usize, seed: &str) -> Vec<Signer> {
    let order = rexe_chain::ShardOrder::new(order).unwrap();
    (0u32..)
        .map(|i| Signer::from_seed(format!("{seed}-{i}").as_bytes()))
        .filter(|k| shard_of(&k.address(), order) == ShardId(shard))
        .take(n)
        .collect()
}
