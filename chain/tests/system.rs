//! The global lane with a toy system contract: value held by a contract counts in the supply,
//! failed calls refund, and a contract that pays out more than it holds makes the block invalid
//! instead of minting rxBTC.

mod common;

use std::any::Any;
use std::sync::Arc;

use common::*;
use rexe_chain::seal::TestSealer;
use rexe_chain::system::{Call, CallError, Credit, GlobalCtx, SystemContract, SystemId};
use rexe_chain::{Amount, BlockError, Chain, Network, Payload, Signer, Tx};

/// Holds deposits; data `[1]` pays everything held back to the caller; data `[2]` pays the
/// caller 1 sat more than it holds (a broken contract); anything else fails.
#[derive(Clone, Default)]
struct Vault {
    held: u64,
}

impl SystemContract for Vault {
    fn id(&self) -> SystemId {
        SystemId(5)
    }
    fn clone_box(&self) -> Box<dyn SystemContract> {
        Box::new(self.clone())
    }
    fn precheck(&self, _: &GlobalCtx, _: &Call<'_>) -> Result<(), CallError> {
        Ok(())
    }
    fn call(&mut self, _: &GlobalCtx, call: &Call<'_>) -> Result<Vec<Credit>, CallError> {
        match call.data {
            [] => {
                self.held += call.value.to_sat();
                Ok(vec![])
            }
            [1] => {
                let all = self.held + call.value.to_sat();
                self.held = 0;
                Ok(vec![Credit {
                    to: call.caller,
                    amount: Amount::from_sat(all),
                }])
            }
            [2] => Ok(vec![Credit {
                to: call.caller,
                amount: Amount::from_sat(self.held + call.value.to_sat() + 1),
            }]),
            _ => Err(CallError::new("unknown vault call")),
        }
    }
    fn has_due_work(&self, _: &GlobalCtx) -> bool {
        false
    }
    fn end_block(&mut self, _: &GlobalCtx) -> Vec<Credit> {
        vec![]
    }
    fn held(&self) -> Amount {
        Amount::from_sat(self.held)
    }
    fn items(&self) -> Vec<rexe_chain::system::Item> {
        vec![(b"held".to_vec(), self.held.to_le_bytes().to_vec())]
    }
    fn apply(&mut self, changes: &[rexe_chain::system::Change]) -> Result<(), CallError> {
        for (key, value) in changes {
            match (key.as_slice(), value) {
                (b"held", Some(v)) => {
                    self.held = u64::from_le_bytes(
                        v.as_slice().try_into().map_err(|_| CallError::new("len"))?,
                    )
                }
                _ => return Err(CallError::new("unknown vault item")),
            }
        }
        Ok(())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn call(from: &Signer, nonce: u64, value: u64, data: Vec<u8>) -> rexe_chain::SignedTx {
    Tx {
        network: Network::Regtest,
        from: from.address(),
        nonce,
        max_fee: rexe_chain::fee::GasPrice::from_msat(10),
        max_tip: rexe_chain::fee::GasPrice::from_msat(10),
        gas_limit: rexe_chain::tx::TRANSFER_GAS,
        expiry_height: 1_000,
        payload: Payload::Call {
            contract: SystemId(5),
            value: Amount::from_sat(value),
            data,
        },
    }
    .sign(from)
}

fn vault_of(chain: &Chain) -> u64 {
    chain
        .system(SystemId(5))
        .unwrap()
        .as_any()
        .downcast_ref::<Vault>()
        .unwrap()
        .held
}

#[test]
fn contract_value_counts_in_supply_and_refunds_on_failure() {
    let keys = keys(3);
    let params = params(1, &keys);
    let dir = tempfile::tempdir().unwrap();
    let mut chain = Chain::open_with_systems(
        dir.path(),
        params.clone(),
        config(2),
        Arc::new(TestSealer),
        vec![Box::new(Vault::default())],
    )
    .unwrap();
    let miner = keys[2].address();
    let start = chain.account(&keys[0].address()).unwrap().balance.to_sat();
    chain.submit_tx(call(&keys[0], 0, 5_000, vec![])).unwrap();
    chain.submit_tx(call(&keys[1], 0, 3_000, vec![])).unwrap();
    mine(&mut chain, miner);
    // In flight to the global lane: counted as in-flight supply.
    let r = chain.audit_supply().unwrap();
    assert!(r.holds(), "{r:?}");
    assert!(r.in_flight.to_sat() >= 8_000);
    mine(&mut chain, miner);
    assert_eq!(vault_of(&chain), 8_000);
    assert_eq!(chain.audit_supply().unwrap().held, Amount::from_sat(8_000));
    assert_supply(&mut chain);

    // A failing call: its value is refunded, the fee is not.
    let bad = call(&keys[0], 1, 1_000, vec![9]);
    let bad_id = bad.txid();
    chain.submit_tx(bad).unwrap();
    mine(&mut chain, miner);
    mine(&mut chain, miner);
    let (_, _, receipt) = chain.call_receipt(bad_id).unwrap().unwrap();
    assert_eq!(
        receipt.error.as_ref().map(|e| e.message.as_str()),
        Some("unknown vault call")
    );
    // Each call pays its intrinsic gas at 10 msat/gas; the rest of the reservation returns.
    let paid = |data: Vec<u8>| {
        let gas = rexe_chain::contract::intrinsic_gas(&Payload::Call {
            contract: SystemId(5),
            value: Amount::ZERO,
            data,
        });
        rexe_chain::fee::GasPrice::from_msat(10)
            .cost(gas)
            .unwrap()
            .to_sat()
    };
    assert_eq!(
        chain.account(&keys[0].address()).unwrap().balance.to_sat(),
        start - 5_000 - paid(vec![]) - paid(vec![9])
    );
    assert_supply(&mut chain);

    // Withdraw everything to keys[1].
    chain.submit_tx(call(&keys[1], 1, 0, vec![1])).unwrap();
    mine(&mut chain, miner);
    mine(&mut chain, miner);
    assert_eq!(vault_of(&chain), 0);
    assert_supply(&mut chain);

    // A contract paying out more than it holds: the template cannot be built, and a block
    // carrying the call is rejected by every node when its global lane runs.
    chain.submit_tx(call(&keys[0], 2, 0, vec![2])).unwrap();
    mine(&mut chain, miner); // includes the call
    let h = chain.tip_height() + 1;
    let err = chain
        .template(miner, time_of(&params, h))
        .expect_err("minting contract");
    assert!(matches!(err, BlockError::Conservation(_)), "{err}");
    assert_supply(&mut chain);
}

#[test]
fn a_data_dir_refuses_another_set_of_contracts() {
    let keys = keys(1);
    let params = params(1, &keys);
    let dir = tempfile::tempdir().unwrap();
    drop(Chain::open(dir.path(), params.clone(), config(1), Arc::new(TestSealer)).unwrap());
    let again = Chain::open_with_systems(
        dir.path(),
        params,
        config(1),
        Arc::new(TestSealer),
        vec![Box::new(Vault::default())],
    );
    assert!(again.is_err());
}

#[test]
fn global_lane_calls_over_its_gas_wait_in_order() {
    let keys = keys(6);
    let mut params = params(1, &keys);
    // Room for two system calls a block on the global lane.
    params.block_gas_global = 2 * rexe_chain::lang::gas::RELAY_GLOBAL;
    let dir = tempfile::tempdir().unwrap();
    let mut chain = Chain::open_with_systems(
        dir.path(),
        params.clone(),
        config(2),
        Arc::new(TestSealer),
        vec![Box::new(Vault::default())],
    )
    .unwrap();
    let miner = keys[5].address();
    let ids: Vec<_> = keys[..5]
        .iter()
        .map(|k| chain.submit_tx(call(k, 0, 1_000, vec![])).unwrap())
        .collect();
    mine(&mut chain, miner); // the five calls leave their shards
    let mut ran = Vec::new();
    for _ in 0..3 {
        mine(&mut chain, miner);
        ran.push(vault_of(&chain));
        assert_supply(&mut chain);
    }
    assert_eq!(
        ran,
        vec![2_000, 4_000, 5_000],
        "two calls a block, then the last"
    );
    assert_eq!(chain.global_waiting(), 0);
    // In canonical order: by origin shard, then emission order.
    let mut heights = Vec::new();
    for id in &ids {
        let (_, h, r) = chain.call_receipt(*id).unwrap().expect("ran");
        assert!(r.error.is_none());
        let shard = rexe_chain::shard_of(&chain_sender(&chain, *id), params.shard_order).0;
        heights.push((shard, h));
    }
    heights.sort();
    assert!(heights.windows(2).all(|w| w[0].1 <= w[1].1), "{heights:?}");
}

fn chain_sender(chain: &Chain, id: rexe_chain::Txid) -> rexe_chain::Address {
    let rexe_chain::TxStatus::Confirmed {
        block,
        shard,
        position,
        ..
    } = chain.tx_status(id).unwrap()
    else {
        panic!("not confirmed");
    };
    chain.block(block).unwrap().unwrap().txs[shard.index()][position as usize]
        .tx
        .from
}

#[test]
fn a_call_heavier_than_the_global_lanes_limit_runs_alone_instead_of_blocking_it() {
    let keys = keys(3);
    let mut params = params(0, &keys);
    params.block_gas_global = rexe_chain::lang::gas::RELAY_GLOBAL / 2;
    let dir = tempfile::tempdir().unwrap();
    let mut chain = Chain::open_with_systems(
        dir.path(),
        params.clone(),
        config(1),
        Arc::new(TestSealer),
        vec![Box::new(Vault::default())],
    )
    .unwrap();
    let miner = keys[2].address();
    chain.submit_tx(call(&keys[0], 0, 1_000, vec![])).unwrap();
    chain.submit_tx(call(&keys[1], 0, 1_000, vec![])).unwrap();
    mine(&mut chain, miner);
    mine(&mut chain, miner);
    assert_eq!(vault_of(&chain), 1_000, "one a block");
    mine(&mut chain, miner);
    assert_eq!(vault_of(&chain), 2_000);
    assert_supply(&mut chain);
}
