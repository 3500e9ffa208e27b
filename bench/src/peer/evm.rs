//! The EVM peer: `revm` executing the hand-assembled ERC20 of [`super::erc20_evm`] in
//! memory (`InMemoryDB`), one committed transaction per transfer, on one thread. Holders
//! are the last 20 bytes of the same bench addresses; balances live in the mapping at slot
//! 0, as Solidity lays them out. Gas is priced at zero, so no account needs ether; nonces
//! are real.

use std::time::Instant;

use anyhow::{anyhow, ensure, Result};
use revm::bytecode::Bytecode;
use revm::context::{Context, TxEnv};
use revm::database::InMemoryDB;
use revm::primitives::{keccak256, Address, Bytes, U256};
use revm::state::AccountInfo;
use revm::{ExecuteCommitEvm, ExecuteEvm, MainBuilder, MainContext};
use rexe_chain::params::bench_address;

use super::erc20_evm::{erc20_runtime, BALANCE_OF, TRANSFER};
use crate::XorShift;

/// Each holder's balance at the start.
const START: u64 = 1_000_000_000;
/// Where the token lives.
const TOKEN: Address = Address::new([0x70; 20]);

/// What the EVM side measured.
pub(crate) struct EvmRun {
    /// Committed transfers per second.
    pub per_sec: f64,
    /// Gas each transfer used (the same for all).
    pub gas_per_transfer: u64,
}

fn holder(i: u64) -> Address {
    Address::from_slice(&bench_address(i).0[12..])
}

/// The storage slot of `who`'s balance: `keccak256(who . 0)`.
fn balance_slot(who: &Address) -> U256 {
    let mut b = [0u8; 64];
    b[12..32].copy_from_slice(who.as_slice());
    U256::from_be_bytes(keccak256(b).0)
}

fn call_data(selector: [u8; 4], words: &[U256]) -> Bytes {
    let mut d = Vec::with_capacity(4 + 32 * words.len());
    d.extend_from_slice(&selector);
    for w in words {
        d.extend_from_slice(&w.to_be_bytes::<32>());
    }
    d.into()
}

fn address_word(a: &Address) -> U256 {
    let mut w = [0u8; 32];
    w[12..].copy_from_slice(a.as_slice());
    U256::from_be_bytes(w)
}

/// Runs the workload; checks every transfer succeeded and the balances add up.
pub(crate) fn run(holders: u64, block_txs: usize, blocks: u64) -> Result<EvmRun> {
    let mut db = InMemoryDB::default();
    db.insert_account_info(
        TOKEN,
        AccountInfo::default().with_code(Bytecode::new_raw(erc20_runtime().into())),
    );
    let addrs: Vec<Address> = (0..holders).map(holder).collect();
    for a in &addrs {
        db.insert_account_storage(TOKEN, balance_slot(a), U256::from(START))
            .map_err(|e| anyhow!("{e:?}"))?;
    }
    let mut evm = Context::mainnet()
        .with_db(db)
        .modify_block_chained(|b| b.basefee = 0)
        .build_mainnet();
    let mut nonces = vec![0u64; holders as usize];
    let mut rng = XorShift::transfers(holders);
    let mut secs = 0.0;
    let mut gas = 0u64;
    for _ in 0..blocks {
        // The block's transactions (not timed).
        let txs: Vec<TxEnv> = (0..block_txs)
            .map(|_| {
                let from = (rng.next() % holders) as usize;
                let to = (rng.next() % holders) as usize;
                let nonce = nonces[from];
                nonces[from] += 1;
                TxEnv::builder()
                    .caller(addrs[from])
                    .call(TOKEN)
                    .data(call_data(
                        TRANSFER,
                        &[address_word(&addrs[to]), U256::from(1u64)],
                    ))
                    .nonce(nonce)
                    .gas_limit(100_000)
                    .gas_price(0)
                    .build_fill()
            })
            .collect();
        let start = Instant::now();
        for tx in txs {
            let r = evm.transact_commit(tx).map_err(|e| anyhow!("{e:?}"))?;
            ensure!(r.is_success(), "an EVM transfer failed: {r:?}");
            gas = r.tx_gas_used();
        }
        secs += start.elapsed().as_secs_f64();
    }
    // Every balance through `balanceOf`, summed.
    let mut total = U256::ZERO;
    for a in &addrs {
        let tx = TxEnv::builder()
            .caller(addrs[0])
            .call(TOKEN)
            .data(call_data(BALANCE_OF, &[address_word(a)]))
            .nonce(nonces[0])
            .gas_limit(100_000)
            .gas_price(0)
            .build_fill();
        let r = evm.transact(tx).map_err(|e| anyhow!("{e:?}"))?;
        let out = r
            .result
            .output()
            .ok_or_else(|| anyhow!("balanceOf returned nothing"))?;
        ensure!(out.len() == 32, "balanceOf returned {} bytes", out.len());
        total += U256::from_be_slice(out);
    }
    ensure!(
        total == U256::from(START) * U256::from(holders),
        "the EVM's balances do not add up"
    );
    Ok(EvmRun {
        per_sec: (block_txs as u64 * blocks) as f64 / secs,
        gas_per_transfer: gas,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_evm_side_moves_tokens_and_keeps_the_total() {
        let r = run(50, 200, 3).unwrap();
        assert!(r.per_sec > 0.0);
        // 21,000 intrinsic + calldata + two cold SLOADs/SSTOREs and the log.
        assert!(r.gas_per_transfer > 21_000, "{}", r.gas_per_transfer);
    }

    #[test]
    fn a_transfer_over_the_balance_reverts_and_changes_nothing() {
        let mut db = InMemoryDB::default();
        db.insert_account_info(
            TOKEN,
            AccountInfo::default().with_code(Bytecode::new_raw(erc20_runtime().into())),
        );
        let (a, b) = (holder(1), holder(2));
        db.insert_account_storage(TOKEN, balance_slot(&a), U256::from(5u64))
            .unwrap();
        let mut evm = Context::mainnet()
            .with_db(db)
            .modify_block_chained(|b| b.basefee = 0)
            .build_mainnet();
        let tx = |nonce, data| {
            TxEnv::builder()
                .caller(a)
                .call(TOKEN)
                .data(data)
                .nonce(nonce)
                .gas_limit(100_000)
                .gas_price(0)
                .build_fill()
        };
        let send = |amount: u64| call_data(TRANSFER, &[address_word(&b), U256::from(amount)]);
        assert!(!evm.transact_commit(tx(0, send(6))).unwrap().is_success());
        assert!(evm.transact_commit(tx(1, send(5))).unwrap().is_success());
        assert!(!evm.transact_commit(tx(2, send(1))).unwrap().is_success());
        for (who, want) in [(a, 0u64), (b, 5)] {
            let r = evm
                .transact(tx(3, call_data(BALANCE_OF, &[address_word(&who)])))
                .unwrap();
            assert_eq!(
                U256::from_be_slice(r.result.output().unwrap()),
                U256::from(want)
            );
        }
    }
}
