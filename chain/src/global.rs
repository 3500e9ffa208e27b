//! The global lane: runs system-contract calls and end-of-block work before the shards (see
//! [`crate::system`] for the model).

use std::collections::BTreeMap;

use bitcoin::hex::DisplayHex;
use thiserror::Error;

use crate::address::{shard_of, Address};
use crate::amount::{checked_sum, Amount};
use crate::contract::{self, ContractReceipt};
use crate::encode::{write_compact_size, Decode, DecodeError, Encode, Reader};
use crate::exec::BlockEnv;
use crate::hash::{tagged_hash, Hash256};
use crate::lthash::LtHash;
use crate::relay::{Relay, RelayKind};
use crate::shard::{ShardId, ShardOrder};
use crate::system::{Call, Change, GlobalCtx, Item, Receipt, SystemId, Systems};

/// The global lane's result for one block.
pub struct GlobalOutcome {
    /// The contracts' new state, `None` when the lane had nothing to do (state unchanged).
    pub contracts: Option<Systems>,
    /// The items the lane changed, in contract then key order (old and new values).
    pub changes: Vec<ItemChange>,
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
    /// Root of the lane's outbox: every relay it emitted, keyed by target (see
    /// [`crate::outbox`]).
    pub outbox_root: Hash256,
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

/// One item a block's global lane changed, with its value before and after (`None`: absent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemChange {
    /// The contract.
    pub system: SystemId,
    /// The item's key.
    pub key: Vec<u8>,
    /// Value before the block.
    pub old: Option<Vec<u8>>,
    /// Value after it.
    pub new: Option<Vec<u8>>,
}

impl ItemChange {
    /// The change that undoes this one.
    pub fn reversed(&self) -> ItemChange {
        ItemChange {
            system: self.system,
            key: self.key.clone(),
            old: self.new.clone(),
            new: self.old.clone(),
        }
    }
}

/// Canonical encoding of a changeset: count, then per change the contract id, the key, and
/// the old and new values each as a presence byte and bytes.
pub fn encode_changes(changes: &[ItemChange]) -> Vec<u8> {
    let mut out = Vec::new();
    write_compact_size(&mut out, changes.len() as u64);
    for c in changes {
        out.push(c.system.0);
        c.key.encode(&mut out);
        for v in [&c.old, &c.new] {
            match v {
                None => out.push(0),
                Some(v) => {
                    out.push(1);
                    v.encode(&mut out);
                }
            }
        }
    }
    out
}

/// The changes that undo an encoded changeset (see [`encode_changes`]): each reversed, last
/// first.
pub fn decode_undo(bytes: &[u8]) -> Result<Vec<ItemChange>, DecodeError> {
    Ok(decode_changes(bytes)?
        .iter()
        .rev()
        .map(ItemChange::reversed)
        .collect())
}

/// Decodes [`encode_changes`] output (all of it).
pub fn decode_changes(bytes: &[u8]) -> Result<Vec<ItemChange>, DecodeError> {
    let mut r = Reader::new(bytes);
    let n = r.length(4)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let system = SystemId(u8::decode(&mut r)?);
        let key = Vec::<u8>::decode(&mut r)?;
        let mut vals = [None, None];
        for v in &mut vals {
            *v = match u8::decode(&mut r)? {
                0 => None,
                1 => Some(Vec::<u8>::decode(&mut r)?),
                _ => return Err(DecodeError::Invalid("presence byte")),
            };
        }
        let [old, new] = vals;
        out.push(ItemChange {
            system,
            key,
            old,
            new,
        });
    }
    r.finish()?;
    Ok(out)
}

/// Every system contract's items at the tip and their commitment: an LtHash over the leaves
/// `id || compact_size(len key) || key || value`, so a block updates it in O(changed items)
/// and any node applying the same changes in any order gets the same digest.
#[derive(Clone, Debug, Default)]
pub struct GlobalImage {
    items: BTreeMap<(SystemId, Vec<u8>), Vec<u8>>,
    hash: LtHash,
}

/// Moves `hash` from the item `system/key` at `old` to it at `new` (`None`: absent).
fn rehash(hash: &mut LtHash, system: SystemId, key: &[u8], old: Option<&[u8]>, new: Option<&[u8]>) {
    let mut prefix = Vec::with_capacity(key.len() + 10);
    prefix.push(system.0);
    key.to_vec().encode(&mut prefix);
    if let Some(old) = old {
        hash.remove_parts(&[&prefix, old]);
    }
    if let Some(new) = new {
        hash.insert_parts(&[&prefix, new]);
    }
}

impl GlobalImage {
    /// The items of `contracts` as they are.
    pub fn of(contracts: &Systems) -> Self {
        let mut image = GlobalImage::default();
        for c in contracts.iter() {
            for (k, v) in c.items() {
                image.set(c.id(), k, Some(v));
            }
        }
        image
    }

    fn set(&mut self, system: SystemId, key: Vec<u8>, value: Option<Vec<u8>>) {
        let slot = (system, key);
        let old = self.items.get(&slot).map(Vec::as_slice);
        rehash(&mut self.hash, system, &slot.1, old, value.as_deref());
        match value {
            Some(v) => {
                self.items.insert(slot, v);
            }
            None => {
                self.items.remove(&slot);
            }
        }
    }

    /// The commitment in `state_root`: `tagged_hash("rexe/global", LtHash digest)`.
    pub fn digest(&self) -> Hash256 {
        tagged_hash("rexe/global", &self.hash.digest().0)
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The contracts that have items, in id order.
    pub fn system_ids(&self) -> Vec<SystemId> {
        let mut ids: Vec<SystemId> = self.items.keys().map(|(s, _)| *s).collect();
        ids.dedup();
        ids
    }

    /// The items after `after` (`None`: all), in (contract, key) order.
    pub fn items_after(
        &self,
        after: Option<(SystemId, Vec<u8>)>,
    ) -> impl Iterator<Item = (SystemId, &[u8], &[u8])> + '_ {
        use std::ops::Bound;
        let lo = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.items
            .range((lo, Bound::Unbounded))
            .map(|((s, k), v)| (*s, k.as_slice(), v.as_slice()))
    }

    /// The items of one contract, in key order.
    pub fn items_of(&self, system: SystemId) -> Vec<Item> {
        self.items
            .range((system, Vec::new())..)
            .take_while(|((s, _), _)| *s == system)
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect()
    }

    /// `system`'s written items as changes against this image (old values filled in,
    /// writes that change nothing dropped), in key order.
    pub fn diff(&self, system: SystemId, mut written: Vec<Change>) -> Vec<ItemChange> {
        written.sort_by(|a, b| a.0.cmp(&b.0));
        written.dedup_by(|later, earlier| later.0 == earlier.0);
        written
            .into_iter()
            .filter_map(|(key, new)| {
                let slot = (system, key);
                let old = self.items.get(&slot).cloned();
                (old != new).then_some(ItemChange {
                    system,
                    key: slot.1,
                    old,
                    new,
                })
            })
            .collect()
    }

    /// Applies `changes` (their new values). Each change's old value must be the item's
    /// value now: a mismatch means the stored state is corrupt.
    pub fn apply(&mut self, changes: &[ItemChange]) -> Result<(), String> {
        for c in changes {
            let now = self.items.get(&(c.system, c.key.clone()));
            if now != c.old.as_ref() {
                return Err(format!(
                    "{} item {} is not the value the change starts from",
                    c.system,
                    c.key[..c.key.len().min(12)].to_lower_hex_string()
                ));
            }
            self.set(c.system, c.key.clone(), c.new.clone());
        }
        Ok(())
    }

    /// The digest after `changes`, without applying them.
    pub fn digest_after(&self, changes: &[ItemChange]) -> Hash256 {
        let mut hash = self.hash.clone();
        for c in changes {
            rehash(
                &mut hash,
                c.system,
                &c.key,
                c.old.as_deref(),
                c.new.as_deref(),
            );
        }
        tagged_hash("rexe/global", &hash.digest().0)
    }
}

/// No assets (a deployment carries none).
static NO_ASSETS: crate::asset::Assets = crate::asset::Assets::new();

fn held(contracts: &Systems) -> Option<Amount> {
    checked_sum(contracts.iter().map(|c| c.held()))
}

/// Whether a relay the global lane emitted runs in the next block (a contract relay, or one
/// to the global lane itself) rather than on its shard in the same block (a payout).
pub fn runs_next_block(r: &Relay) -> bool {
    matches!(r.kind, RelayKind::Contract(_)) || r.target.is_global()
}

/// Runs the global lane of a block: `calls` are the previous block's call relays in canonical
/// order. `image` holds the items of `contracts` as they are.
pub fn execute_global(
    contracts: &Systems,
    image: &GlobalImage,
    ctx: &GlobalCtx,
    env: &BlockEnv,
    calls: &[Relay],
    order: ShardOrder,
    gas_limit: u64,
) -> Result<GlobalOutcome, ConservationError> {
    let n = order.shard_count();
    let idle = calls.is_empty() && !contracts.iter().any(|c| c.has_due_work(ctx));
    if idle {
        return Ok(GlobalOutcome {
            contracts: None,
            changes: Vec::new(),
            payouts: vec![Vec::new(); n],
            emitted: Vec::new(),
            deferred: Vec::new(),
            waiting: Vec::new(),
            gas_used: 0,
            receipts: Vec::new(),
            contract_receipts: Vec::new(),
            digest: image.digest(),
            outbox_root: Hash256::ZERO,
        });
    }
    let mut state = contracts.clone();
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
        RelayKind::Deposit { .. } | RelayKind::Burn { .. } | RelayKind::DepositAssets { .. } => 0,
    });
    let waiting = calls[fit..].to_vec();
    for relay in &calls[..fit] {
        let escrowed = match &relay.kind {
            RelayKind::Contract(c) => Some((c.fee, c.sender, c.value, &c.assets)),
            RelayKind::Deploy(d) => Some((d.fee, d.deployer, Amount::ZERO, &NO_ASSETS)),
            _ => None,
        };
        if let Some((fee, sender, value, assets)) = escrowed {
            // The escrow arrives with the relay and leaves as the relays it funds, the
            // miner's tip, the sender's refund and the burn (carried to the sender's shard).
            // Attached rxBTC stays with the contracts, or goes back if the call fails.
            received = received
                .checked_add(fee.escrow)
                .and_then(|r| r.checked_add(value))
                .unwrap_or(Amount::MAX_MONEY);
            let reg = state.contracts_mut();
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
                if receipt.error.is_some() && (!value.is_zero() || !assets.is_empty()) {
                    pay(&mut emitted, sender, value);
                    if !assets.is_empty() {
                        // The lane keeps no wallets: the assets go back on the sender's shard.
                        emitted.push(Relay {
                            origin: ShardId::GLOBAL,
                            index: emitted.len() as u32,
                            target: shard_of(&sender, order),
                            kind: RelayKind::DepositAssets {
                                to: sender,
                                assets: assets.clone(),
                            },
                        });
                    }
                    receipt.value = contract::ValueFlow::returned(value, assets, sender);
                }
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
        let result = match state.get_mut(*contract) {
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
                    error: Some(e),
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
        if runs_next_block(r) {
            deferred.push(r.clone());
        } else if let Some(p) = payouts.get_mut(r.target.index()) {
            p.push(r.clone());
        }
    }
    // Targets are the global lane or shards of addresses (as `payouts` above relies on).
    // The outbox commits the calls that wait first (block rules 4), then what the lane
    // emitted: every input of the next block's lane is then under the header.
    let outbox_root = crate::outbox::outbox_root(waiting.iter().chain(&emitted), order);
    debug_assert!(outbox_root.is_ok(), "global lane relay target out of range");
    let outbox_root = outbox_root.unwrap_or(Hash256::ZERO);
    let mut changes = Vec::new();
    for c in state.iter_mut() {
        let written = c.take_changes();
        changes.extend(image.diff(c.id(), written));
    }
    let digest = image.digest_after(&changes);
    Ok(GlobalOutcome {
        contracts: Some(state),
        changes,
        payouts,
        emitted,
        deferred,
        waiting,
        gas_used,
        receipts,
        contract_receipts,
        digest,
        outbox_root,
    })
}
