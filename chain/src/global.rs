//! The global lane: runs system-contract calls and end-of-block work before the shards (see
//! [`crate::system`] for the model).

use thiserror::Error;

use crate::address::{shard_of, Address};
use crate::amount::{checked_sum, Amount};
use crate::contract::{self, ContractReceipt, ContractsSystem};
use crate::exec::BlockEnv;
use crate::hash::{merkle_root, tagged_hash, Hash256};
use crate::relay::{Relay, RelayKind};
use crate::shard::{ShardId, ShardOrder};
use crate::system::{Call, GlobalCtx, Receipt, SystemContract, SystemId};

/// The global lane's result for one block.
pub struct GlobalOutcome {
    /// The contracts' new state, `None` when the lane had nothing to do (state unchanged).
    pub contracts: Option<Vec<Box<dyn SystemContract>>>,
    /// Snapshots of the new state, one per contract in id order (when changed).
    pub snapshots: Vec<(SystemId, Vec<u8>)>,
    /// Payouts per target shard (deposit relays from [`ShardId::GLOBAL`]), run by the shards
    /// in this same block.
    pub payouts: Vec<Vec<Relay>>,
    /// Every relay the lane emitted, in emission order.
    pub emitted: Vec<Relay>,
    /// Contract relays the lane emitted: they run in the next block (on their shard, or on
    /// the global lane for `relay@next`), so that they see the global state this lane wrote.
    pub deferred: Vec<Relay>,
    /// Calls that did not fit the lane's gas limit: they wait, first in line, for the next
    /// block.
    pub waiting: Vec<Relay>,
    /// Gas the lane's calls took of its limit.
    pub gas_used: u64,
    /// One receipt per call, in execution order.
    pub receipts: Vec<Receipt>,
    /// Receipts of contract micro-transactions and deployments.
    pub contract_receipts: Vec<ContractReceipt>,
    /// Commitment to the global state after the block.
    pub digest: Hash256,
    /// Merkle root over the emitted relays.
    pub relay_root: Hash256,
}

/// A contract broke the conservation rule (paid out more than it held): the block is invalid
/// rather than the supply inflated.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("system contracts paid out {paid} while holding {held_before} + received {received} and still holding {held_after}")]
pub struct ConservationError {
    /// Held before the lane.
    pub held_before: Amount,
    /// Values of the calls.
    pub received: Amount,
    /// Credits paid out (refunds included).
    pub paid: Amount,
    /// Held after.
    pub held_after: Amount,
}

/// Commitment to a set of snapshots: `tagged_hash("rexe/global", id || H(snapshot) ...)`.
pub fn digest_of(snapshots: &[(SystemId, Vec<u8>)]) -> Hash256 {
    let mut buf = Vec::with_capacity(snapshots.len() * 33);
    for (id, snap) in snapshots {
        buf.push(id.0);
        buf.extend_from_slice(&tagged_hash("rexe/global-state", snap).0);
    }
    tagged_hash("rexe/global", &buf)
}

/// Snapshots of every contract, in the given (id) order.
pub fn snapshots_of(contracts: &[Box<dyn SystemContract>]) -> Vec<(SystemId, Vec<u8>)> {
    contracts.iter().map(|c| (c.id(), c.snapshot())).collect()
}

fn held(contracts: &[Box<dyn SystemContract>]) -> Option<Amount> {
    checked_sum(contracts.iter().map(|c| c.held()))
}

/// Runs the global lane of a block: `calls` are the previous block's call relays in canonical
/// order. `current_digest` is the commitment to `contracts` as they are.
pub fn execute_global(
    contracts: &[Box<dyn SystemContract>],
    ctx: &GlobalCtx,
    env: &BlockEnv,
    calls: &[Relay],
    order: ShardOrder,
    current_digest: Hash256,
    gas_limit: u64,
) -> Result<GlobalOutcome, ConservationError> {
    let n = order.shard_count();
    let idle = calls.is_empty() && !contracts.iter().any(|c| c.has_due_work(ctx));
    if idle {
        return Ok(GlobalOutcome {
            contracts: None,
            snapshots: Vec::new(),
            payouts: vec![Vec::new(); n],
            emitted: Vec::new(),
            deferred: Vec::new(),
            waiting: Vec::new(),
            gas_used: 0,
            receipts: Vec::new(),
            contract_receipts: Vec::new(),
            digest: current_digest,
            relay_root: merkle_root(&[]),
        });
    }
    let mut state: Vec<Box<dyn SystemContract>> = contracts.iter().map(|c| c.clone_box()).collect();
    let held_before = held(&state).unwrap_or(Amount::MAX_MONEY);
    let mut emitted: Vec<Relay> = Vec::new();
    let mut receipts = Vec::with_capacity(calls.len());
    let mut received = Amount::ZERO;
    let pay = |emitted: &mut Vec<Relay>, to: Address, amount: Amount| {
        if amount.is_zero() {
            return;
        }
        emitted.push(Relay {
            origin: ShardId::GLOBAL,
            index: emitted.len() as u32,
            target: shard_of(&to, order),
            kind: RelayKind::Deposit { to, amount },
        });
    };
    let mut contract_receipts = Vec::new();
    let mut seq = 0u64;
    // Calls run in order while their gas fits the lane's block limit; from the first that
    // does not, the rest wait for the next block in the same order.
    let (fit, gas_used) = crate::relay::fitting(calls, gas_limit, |r| match &r.kind {
        RelayKind::Contract(c) => c.gas,
        RelayKind::Deploy(d) => d.gas,
        RelayKind::Call { .. } => crate::lang::gas::RELAY_GLOBAL,
        RelayKind::Deposit { .. } | RelayKind::Burn { .. } => 0,
    });
    let waiting = calls[fit..].to_vec();
    for relay in &calls[..fit] {
        let escrowed = match &relay.kind {
            RelayKind::Contract(c) => Some((c.fee, c.sender)),
            RelayKind::Deploy(d) => Some((d.fee, d.deployer)),
            _ => None,
        };
        if let Some((fee, sender)) = escrowed {
            // The escrow arrives with the relay and leaves as the relays it funds, the
            // miner's tip, the sender's refund and the burn (carried to the sender's shard).
            received = received
                .checked_add(fee.escrow)
                .unwrap_or(Amount::MAX_MONEY);
            let Some(reg) = state
                .iter_mut()
                .find(|c| c.id() == crate::system::SystemId::CONTRACTS)
                .and_then(|c| c.as_any_mut())
                .and_then(|a| a.downcast_mut::<ContractsSystem>())
            else {
                pay(&mut emitted, sender, fee.escrow);
                continue;
            };
            seq += 1;
            if let Some((mut relays, mut receipt)) = contract::run_on_lane(reg, env, relay, seq) {
                let children = contract::fund_children(&mut relays, &fee, env.height);
                let settled = fee.settle(receipt.gas_used, children);
                for (target, call) in relays {
                    emitted.push(Relay {
                        origin: ShardId::GLOBAL,
                        index: emitted.len() as u32,
                        target,
                        kind: RelayKind::Contract(Box::new(call)),
                    });
                }
                pay(&mut emitted, env.miner, settled.tip);
                pay(&mut emitted, sender, settled.refund);
                if !settled.burned.is_zero() {
                    emitted.push(Relay {
                        origin: ShardId::GLOBAL,
                        index: emitted.len() as u32,
                        target: shard_of(&sender, order),
                        kind: RelayKind::Burn {
                            amount: settled.burned,
                        },
                    });
                }
                receipt.settled = Some(settled);
                receipt.waited = Some(env.height.saturating_sub(fee.emitted + 1));
                contract_receipts.push(receipt);
            }
            continue;
        }
        let RelayKind::Call {
            txid,
            caller,
            contract,
            value,
            data,
        } = &relay.kind
        else {
            continue;
        };
        received = received.checked_add(*value).unwrap_or(Amount::MAX_MONEY);
        let call = Call {
            txid: *txid,
            caller: *caller,
            value: *value,
            data,
        };
        let result = match state.iter_mut().find(|c| c.id() == *contract) {
            Some(c) => c.call(ctx, &call),
            None => Err(crate::system::CallError::new(format!(
                "no system contract {contract}"
            ))),
        };
        match result {
            Ok(credits) => {
                for c in credits {
                    pay(&mut emitted, c.to, c.amount);
                }
                receipts.push(Receipt {
                    txid: *txid,
                    contract: *contract,
                    error: None,
                });
            }
            Err(e) => {
                pay(&mut emitted, *caller, *value);
                receipts.push(Receipt {
                    txid: *txid,
                    contract: *contract,
                    error: Some(e.0),
                });
            }
        }
    }
    for c in state.iter_mut() {
        for credit in c.end_block(ctx) {
            pay(&mut emitted, credit.to, credit.amount);
        }
    }
    let paid = checked_sum(emitted.iter().map(Relay::value)).unwrap_or(Amount::MAX_MONEY);
    let held_after = held(&state).unwrap_or(Amount::MAX_MONEY);
    let inflow = held_before.checked_add(received);
    let outflow = held_after.checked_add(paid);
    if inflow.is_none() || inflow != outflow {
        return Err(ConservationError {
            held_before,
            received,
            paid,
            held_after,
        });
    }
    let mut payouts = vec![Vec::new(); n];
    let mut deferred = Vec::new();
    for r in &emitted {
        if matches!(r.kind, RelayKind::Contract(_)) || r.target.is_global() {
            deferred.push(r.clone());
        } else if let Some(p) = payouts.get_mut(r.target.index()) {
            p.push(r.clone());
        }
    }
    let relay_root = merkle_root(&emitted.iter().map(Relay::hash).collect::<Vec<_>>());
    let snapshots = snapshots_of(&state);
    let digest = digest_of(&snapshots);
    Ok(GlobalOutcome {
        contracts: Some(state),
        snapshots,
        payouts,
        emitted,
        deferred,
        waiting,
        gas_used,
        receipts,
        contract_receipts,
        digest,
        relay_root,
    })
}
