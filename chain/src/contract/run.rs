//! Running contract micro-transactions: a transaction's own step on its sender's shard,
//! relays on their target shards, and global calls and deployments on the global lane.
//!
//! Gas: a transaction buys `gas_limit` gas (see [`crate::fee`]). Its own
//! step pays the intrinsic cost ([`gas::TX_BASE`] plus [`gas::TX_BYTE`] per payload byte)
//! and execution; the gas left when a micro-transaction ends is split evenly over the
//! relays it emitted (`relay@shards` counts once per shard; the first relays get the
//! remainder), each relay runs with what it carries, and whatever is left at the leaves is
//! refunded from the relay's escrow (see [`crate::fee::GasEscrow`]), as is gas neither used
//! nor forwarded by the transaction's own step. A micro-transaction that fails keeps none of its writes and emits none of
//! its relays.

use std::sync::Arc;

use super::call::{ContractCall, Deployment};
use super::elems::content_key;
use super::receipt::{AssetMove, ContractReceipt, ReceiptKind, ValueFlow};
use super::registry::{ContractsSystem, Deployed};
use super::target::{contract_address, Target};
use crate::address::Address;
use crate::amount::Amount;
use crate::asset::{self, AssetId, Assets};
use crate::exec::BlockEnv;
use crate::hash::tagged_hash;
use crate::lang::ast::ScopeKind;
use crate::lang::bytecode::FnKind;
use crate::lang::gas;
use crate::lang::layout::ElemKey;
use crate::lang::value::{self, Value};
use crate::lang::vm::{self, Context, Host, RelayDest, RelayOut, Trap, TxKind};
use crate::relay::Relay;
use crate::relay::RelayKind;
use crate::shard::{ShardId, ShardOrder};
use crate::store::{StateKey, StoreError};
use crate::tx::{Payload, SignedTx};

/// Contract state rows and accounts of one shard during a block.
pub trait Rows {
    /// The row at `key`.
    fn row(&mut self, key: &StateKey) -> Result<Option<Vec<u8>>, StoreError>;
    /// Replaces the row at `key` (`None` deletes it).
    fn set_row(&mut self, key: StateKey, value: Option<Vec<u8>>) -> Result<(), StoreError>;
    /// Credits `amount` to the account of `to` (an address of this shard).
    fn credit(&mut self, to: Address, amount: Amount) -> Result<(), StoreError>;
}

/// Key of the shard state row holding the rxBTC that contract state on the shard holds in
/// tokens: 32 zero bytes then `0xfd`, which no contract scope uses.
pub fn held_key() -> StateKey {
    let mut k = [0u8; 33];
    k[32] = 0xfd;
    StateKey::from_slice(&k).expect("33 bytes")
}

/// The amount in a held-rxBTC row ([`held_key`] of a shard; absent: zero).
pub fn held_amount(row: Option<&[u8]>) -> Result<Amount, StoreError> {
    let Some(b) = row else {
        return Ok(Amount::ZERO);
    };
    let sat = u64::from_le_bytes(
        b.try_into()
            .map_err(|_| StoreError::corrupt("contracts' held rxBTC", "not 8 bytes"))?,
    );
    Ok(Amount::from_sat(sat))
}

/// `held` plus what a call kept (negative: gave out); `None` below zero or above the
/// money supply (a conserving VM never gets there).
pub(super) fn add_kept(held: Amount, kept: i128) -> Option<Amount> {
    let now = u64::try_from(i128::from(held.to_sat()) + kept).ok()?;
    Some(Amount::from_sat(now)).filter(|a| *a <= Amount::MAX_MONEY)
}

/// Adds what a call kept to the shard's held rxBTC.
fn add_held(rows: &mut dyn Rows, kept: i128) -> Result<(), StoreError> {
    if kept == 0 {
        return Ok(());
    }
    let held = held_amount(rows.row(&held_key())?.as_deref())?;
    let now = add_kept(held, kept).ok_or_else(|| {
        StoreError::corrupt("contracts' held rxBTC", format!("{held} + {kept} sat"))
    })?;
    let row = (!now.is_zero()).then(|| now.to_sat().to_le_bytes().to_vec());
    rows.set_row(held_key(), row)
}

/// The amount in asset row `key` (absent: zero).
fn amount_at(rows: &mut dyn Rows, key: &StateKey, what: &'static str) -> Result<u64, StoreError> {
    asset::amount_of(rows.row(key)?.as_deref())
        .ok_or_else(|| StoreError::corrupt(what, "not 8 bytes"))
}

/// Adds `delta` to the amount in asset row `key`; a corrupt store when the result would
/// leave 64 bits (issuance is capped so that no wallet or holding can).
fn add_amount(
    rows: &mut dyn Rows,
    key: StateKey,
    delta: i128,
    what: &'static str,
) -> Result<(), StoreError> {
    let was = amount_at(rows, &key, what)?;
    let now = u64::try_from(i128::from(was) + delta)
        .map_err(|_| StoreError::corrupt(what, format!("{was} + {delta} leaves 64 bits")))?;
    if delta != 0 {
        rows.set_row(key, asset::amount_row(now))?;
    }
    Ok(())
}

/// Credits `assets` to `to`'s asset wallets (also what a
/// [`crate::relay::RelayKind::DepositAssets`] does on `to`'s shard).
pub fn credit_assets(rows: &mut dyn Rows, to: &Address, assets: &Assets) -> Result<(), StoreError> {
    for (a, x) in assets.iter() {
        add_amount(
            rows,
            asset::wallet_key(to, a),
            i128::from(x),
            "asset wallet",
        )?;
    }
    Ok(())
}

/// Takes `assets` from `from`'s asset wallets, all or nothing: `Err` (with the reason) when
/// one holds too little.
fn take_assets(
    rows: &mut dyn Rows,
    from: &Address,
    assets: &Assets,
) -> Result<Result<(), String>, StoreError> {
    let mut left = Vec::with_capacity(assets.len());
    for (a, x) in assets.iter() {
        let key = asset::wallet_key(from, a);
        let have = amount_at(rows, &key, "asset wallet")?;
        if have < x {
            return Ok(Err(format!(
                "the sender holds {have} {a}, and the call attaches {x}"
            )));
        }
        left.push((key, have - x));
    }
    for (key, n) in left {
        rows.set_row(key, asset::amount_row(n))?;
    }
    Ok(Ok(()))
}

/// What a call's mints and burns make each asset's issued amount on this shard (minted less
/// burned: negative where more was burned than minted, as tokens travel between shards):
/// `Err` (with the reason) when one would pass the shard's cap ([`asset::issue_cap`]).
/// Nothing is written yet.
fn issue(
    rows: &mut dyn Rows,
    flows: &[(u64, vm::AssetFlow)],
    order: ShardOrder,
) -> Result<Result<Vec<(AssetId, i128)>, String>, StoreError> {
    let cap = i128::from(asset::issue_cap(order.get()));
    let mut out = Vec::new();
    for (id, f) in flows.iter().filter(|(_, f)| f.minted != f.burned) {
        let a = AssetId::new(*id)
            .ok_or_else(|| StoreError::corrupt("contract call", "minted a malformed asset"))?;
        let was = asset::issued_of(rows.row(&asset::issued_key(a))?.as_deref())
            .ok_or_else(|| StoreError::corrupt("issued asset", "not 16 bytes"))?;
        let now = was + i128::from(f.minted) - i128::from(f.burned);
        if now > cap {
            return Ok(Err(format!(
                "{a} issued on this shard would pass {cap}, the most one shard may issue"
            )));
        }
        out.push((a, now));
    }
    Ok(Ok(out))
}

/// Books a successful call's assets: deposits into `owner`'s wallets, what contract state
/// kept into the shard's held rows, and the issued amounts [`issue`] computed.
fn settle_assets(
    rows: &mut dyn Rows,
    owner: &Address,
    flows: &[(u64, vm::AssetFlow)],
    issued: Vec<(AssetId, i128)>,
) -> Result<(), StoreError> {
    for (id, f) in flows {
        let a = AssetId::new(*id)
            .ok_or_else(|| StoreError::corrupt("contract call", "moved a malformed asset"))?;
        if f.deposited > 0 {
            let key = asset::wallet_key(owner, a);
            add_amount(rows, key, i128::from(f.deposited), "asset wallet")?;
        }
        add_amount(rows, asset::held_key(a), f.kept(), "held asset")?;
    }
    for (a, n) in issued {
        rows.set_row(asset::issued_key(a), asset::issued_row(n))?;
    }
    Ok(())
}

/// Relays a step emitted (with the shard each goes to) and its receipt.
pub struct StepResult {
    /// Relays, in emission order.
    pub relays: Vec<(ShardId, RelayKind)>,
    /// What happened.
    pub receipt: ContractReceipt,
}

struct ShardHost<'r> {
    rows: &'r mut dyn Rows,
    /// The call's target (a contract it calls into runs on the same one).
    target: &'r Target,
    own: StateKey,
    /// The contract's row of this shard, built when first needed.
    shard: Option<StateKey>,
    shard_id: ShardId,
    contract: Address,
    registry: &'r ContractsSystem,
    logging: bool,
    max_relays: usize,
    failure: Option<StoreError>,
}

impl Host for ShardHost<'_> {
    fn read_row(&mut self, c: &[u8; 32], scope: ScopeKind) -> Result<Option<Vec<u8>>, String> {
        let key = self.row_key_of(&Address(*c), scope);
        self.read(&key)
    }
    fn read_elem(
        &mut self,
        c: &[u8; 32],
        scope: ScopeKind,
        var: u16,
        key: &ElemKey,
    ) -> Result<Option<Vec<u8>>, String> {
        let c = Address(*c);
        if scope == ScopeKind::Global {
            return Ok(global_elem(self.registry, &c, var, key));
        }
        let row = self.row_key_of(&c, scope);
        self.read(&content_key(&row, var, key))
    }
    fn is_contract(&self, addr: &[u8; 32]) -> bool {
        self.registry.get(&Address(*addr)).is_some()
    }
    fn logging(&self) -> bool {
        self.logging
    }
    fn max_relays(&self) -> usize {
        self.max_relays
    }
    fn may_mint(&self, contract: &[u8; 32], id: u64) -> bool {
        AssetId::new(id).and_then(|a| self.registry.minter(a)) == Some(Address(*contract))
    }
}

/// Content row `key` of `@global` container `var` of `contract`.
fn global_elem(
    registry: &ContractsSystem,
    contract: &Address,
    var: u16,
    key: &ElemKey,
) -> Option<Vec<u8>> {
    registry
        .get(contract)?
        .elems
        .content(var, key)
        .map(<[u8]>::to_vec)
}

impl ShardHost<'_> {
    fn shard_key(&mut self) -> &StateKey {
        let (id, c) = (self.shard_id, self.contract);
        self.shard
            .get_or_insert_with(|| Target::Shard(id).state_key(&c))
    }

    /// The row of `scope`: the call's own target's, or its shard's.
    fn row_key(&mut self, scope: ScopeKind) -> StateKey {
        if scope == ScopeKind::Shard {
            *self.shard_key()
        } else {
            self.own
        }
    }

    /// [`Self::row_key`] of contract `c` (the called one, or one it called into).
    fn row_key_of(&mut self, c: &Address, scope: ScopeKind) -> StateKey {
        if *c == self.contract {
            self.row_key(scope)
        } else if scope == ScopeKind::Shard {
            Target::Shard(self.shard_id).state_key(c)
        } else {
            self.target.state_key(c)
        }
    }

    /// Writes the rows and container rows a call changed of contract `c`.
    fn apply(
        &mut self,
        c: &Address,
        writes: vm::RowWrites,
        elems: Vec<crate::lang::layout::ElemWrite>,
    ) -> Result<(), StoreError> {
        for (scope, row) in writes {
            let key = self.row_key_of(c, scope);
            self.rows.set_row(key, row)?;
        }
        for w in elems {
            if w.scope == ScopeKind::Global {
                return Err(StoreError::corrupt(
                    "contract state",
                    "a shard call wrote global state",
                ));
            }
            let row = self.row_key_of(c, w.scope);
            self.rows
                .set_row(content_key(&row, w.var, &w.key), w.value)?;
        }
        Ok(())
    }

    /// Reads a row; a store failure is kept for the caller, the VM gets its message.
    fn read(&mut self, key: &StateKey) -> Result<Option<Vec<u8>>, String> {
        self.rows.row(key).map_err(|e| {
            let msg = e.to_string();
            self.failure = Some(e);
            msg
        })
    }
}

struct LaneHost<'r> {
    registry: &'r ContractsSystem,
    logging: bool,
    max_relays: usize,
    /// What makes the addresses of the contracts this micro-transaction deploys unique
    /// ([`deploy_seed`]).
    deploy_seed: [u8; 32],
}

/// The seed of the addresses a lane micro-transaction gives the contracts it deploys: the
/// previous block, the lane, the micro-transaction's place in it and its transaction.
fn deploy_seed(env: &BlockEnv, lane: ShardId, seq: u64, txid: &crate::hash::Txid) -> [u8; 32] {
    let mut seed = [0u8; 32 + 2 + 8 + 32];
    seed[..32].copy_from_slice(&env.prev.0 .0);
    seed[32..34].copy_from_slice(&lane.0.to_le_bytes());
    seed[34..42].copy_from_slice(&seq.to_le_bytes());
    seed[42..].copy_from_slice(&txid.0 .0);
    tagged_hash("rexe/contract-deploy-seed", &seed).0
}

/// The registry entries of the contracts a lane call deployed, with default state (their
/// writes follow in the call's [`vm::Outcome::calls`]).
fn created_entries(
    registry: &ContractsSystem,
    env: &BlockEnv,
    created: &[vm::NewContract],
) -> Result<Vec<Deployed>, String> {
    let mut out = Vec::with_capacity(created.len());
    for n in created {
        let o = registry
            .get(&Address(n.origin))
            .ok_or("a deployed contract's origin is gone")?;
        out.push(Deployed {
            address: Address(n.address),
            deployer: Address(n.creator),
            height: env.height,
            source: o.source.clone(),
            code: o.code.clone(),
            global: Arc::new(vm::default_row(&o.code, ScopeKind::Global)),
            elems: Default::default(),
            imports: o.imports.clone(),
            origin: Some(Address(n.origin)),
        });
    }
    Ok(out)
}

impl Host for LaneHost<'_> {
    fn read_row(&mut self, _: &[u8; 32], _: ScopeKind) -> Result<Option<Vec<u8>>, String> {
        Err("global functions have no shard state".into())
    }
    fn read_elem(
        &mut self,
        c: &[u8; 32],
        scope: ScopeKind,
        var: u16,
        key: &ElemKey,
    ) -> Result<Option<Vec<u8>>, String> {
        if scope != ScopeKind::Global {
            return Err("global functions have no shard state".into());
        }
        Ok(global_elem(self.registry, &Address(*c), var, key))
    }
    fn is_contract(&self, addr: &[u8; 32]) -> bool {
        self.registry.get(&Address(*addr)).is_some()
    }
    fn logging(&self) -> bool {
        self.logging
    }
    fn max_relays(&self) -> usize {
        self.max_relays
    }
    fn deploy_address(&mut self, creator: &[u8; 32], k: u32) -> Result<[u8; 32], String> {
        let mut b = [0u8; 32 + 32 + 4];
        b[..32].copy_from_slice(&self.deploy_seed);
        b[32..64].copy_from_slice(creator);
        b[64..].copy_from_slice(&k.to_le_bytes());
        Ok(tagged_hash("rexe/contract-deploy", &b).0)
    }
}

/// Intrinsic gas of a transaction's payload: [`gas::TX_BASE`] plus [`gas::TX_BYTE`] per
/// payload byte (for a transfer, all the gas it uses).
pub fn intrinsic_gas(p: &Payload) -> u64 {
    match p {
        Payload::Transfer { .. } => crate::tx::TRANSFER_GAS,
        Payload::Call { data, .. } => gas::TX_BASE + gas::TX_BYTE * (9 + data.len() as u64),
        Payload::Deploy { source, args } => {
            gas::TX_BASE + gas::TX_BYTE * (source.len() + args.len()) as u64
        }
        Payload::ContractCall { function, args, .. } => {
            gas::TX_BASE + gas::TX_BYTE * (function.len() + args.len()) as u64
        }
    }
}

fn context(
    env: &BlockEnv,
    shard: ShardId,
    call: &ContractCall,
    kind: TxKind,
    origin: ShardId,
    seq: u64,
    random: bool,
) -> Context {
    let random_seed = if random {
        let mut seed = [0u8; 32 + 2 + 8 + 32];
        seed[..32].copy_from_slice(&env.prev.0 .0);
        seed[32..34].copy_from_slice(&shard.0.to_le_bytes());
        seed[34..42].copy_from_slice(&seq.to_le_bytes());
        seed[42..].copy_from_slice(&call.txid.0 .0);
        tagged_hash("rexe/contract-random", &seed).0
    } else {
        [0u8; 32]
    };
    Context {
        kind,
        self_address: match &call.target {
            Target::Address(a) => a.0,
            _ => call.contract.0,
        },
        sender: call.sender.0,
        signers: if kind == TxKind::Normal {
            vec![call.sender.0]
        } else {
            Vec::new()
        },
        initiator: call.sender.0,
        tx_timestamp: call.tx_time,
        origin_shard: origin.0 as u32,
        shard_order: env.order.get() as u32,
        height: env.height,
        shard_index: shard.0 as u32,
        timestamp: env.time,
        miner: env.miner.0,
        random_seed,
        hrp: env.hrp,
        supplied: if kind == TxKind::Normal {
            call.value.to_sat()
        } else {
            0
        },
        supplied_assets: if kind == TxKind::Normal {
            call.assets.to_ids()
        } else {
            Vec::new()
        },
    }
}

/// Turns a finished call's relays into calls with their share of `leftover` gas.
fn route(
    outs: Vec<RelayOut>,
    parent: &ContractCall,
    leftover: u64,
    order: ShardOrder,
) -> (Vec<(ShardId, ContractCall)>, u64) {
    let n = order.shard_count() as u64;
    let units: u64 = outs
        .iter()
        .map(|o| if o.to == RelayDest::Shards { n } else { 1 })
        .sum();
    let mut next_share = {
        let (per, mut rem) = match leftover.checked_div(units) {
            Some(per) => (per, leftover % units),
            None => (0, 0),
        };
        move || {
            let extra = (rem > 0) as u64;
            rem = rem.saturating_sub(1);
            per + extra
        }
    };
    let mut forwarded = 0u64;
    let mut out = Vec::new();
    let mut push = |contract: Address,
                    target: Target,
                    func: u16,
                    (value, assets): (u64, Assets),
                    args: Vec<u8>,
                    deferred: bool| {
        let gas = next_share();
        forwarded += gas;
        let value = Amount::from_sat(value);
        let shard = target.shard(order);
        out.push((
            shard,
            ContractCall {
                txid: parent.txid,
                contract,
                func,
                target,
                args,
                gas,
                sender: parent.sender,
                tx_time: parent.tx_time,
                deferred,
                direct: false,
                fee: parent.fee,
                value,
                assets,
            },
        ));
    };
    for o in outs {
        // The VM names only assets (valid symbols other than rxBTC), each once.
        let v = (o.value, Assets::from_ids(&o.assets).unwrap_or_default());
        let f = o.func;
        // A relay emitted by a contract the call called into runs that contract's function.
        let c = o.contract.map(Address).unwrap_or(parent.contract);
        match o.to {
            RelayDest::Shards => {
                for s in order.shards() {
                    push(c, Target::Shard(s), f, v.clone(), o.args.clone(), false);
                }
            }
            RelayDest::Address(a) => push(c, Target::Address(Address(a)), f, v, o.args, false),
            RelayDest::Uint(s, k) => push(c, Target::Uint(s, k), f, v, o.args, false),
            RelayDest::Global => push(c, Target::Global, f, v, o.args, false),
            RelayDest::Next => push(c, parent.target.clone(), f, v, o.args, true),
        }
    }
    (out, forwarded)
}

fn failed(
    call: &ContractCall,
    kind: ReceiptKind,
    shard: ShardId,
    function: String,
    gas_used: u64,
    error: impl Into<String>,
) -> ContractReceipt {
    ContractReceipt {
        txid: call.txid,
        kind,
        shard,
        contract: call.contract,
        function,
        target: call.target.clone(),
        gas_limit: call.gas,
        gas_used: gas_used.min(call.gas),
        gas_forwarded: 0,
        relays: 0,
        error: Some(error.into()),
        result: None,
        logs: Vec::new(),
        events: Vec::new(),
        settled: None,
        waited: None,
        value: None,
    }
}

fn ret_json(
    code: &crate::lang::Verified,
    func: u16,
    v: &Option<Value>,
    hrp: &str,
) -> Option<serde_json::Value> {
    let f = &code.functions[func as usize];
    match (v, f.ret) {
        (Some(v), Some(t)) => Some(value::to_json(v, code.ty(t), &code.table, hrp)),
        _ => None,
    }
}

/// Runs a call (a relay, or a transaction's own step) on `shard`, whose state `rows` holds.
/// A relay that fails returns the rxBTC it carries to its target address's wallet (the
/// caller returns a transaction's own attached value to its sender).
#[allow(clippy::too_many_arguments)]
pub fn run_on_shard(
    registry: &ContractsSystem,
    rows: &mut dyn Rows,
    env: &BlockEnv,
    shard: ShardId,
    call: &ContractCall,
    kind: TxKind,
    origin: ShardId,
    seq: u64,
) -> Result<(Vec<(ShardId, ContractCall)>, ContractReceipt), StoreError> {
    let r = run_call(registry, rows, env, shard, call, kind, origin, seq)?;
    if kind != TxKind::Normal
        && r.1.error.is_some()
        && (!call.value.is_zero() || !call.assets.is_empty())
    {
        // The VM relays value to addresses only.
        let Target::Address(to) = call.target else {
            return Err(StoreError::corrupt(
                "contract relay",
                "a relay carrying value to a target that is not an address",
            ));
        };
        if !call.value.is_zero() {
            rows.credit(to, call.value)?;
        }
        credit_assets(rows, &to, &call.assets)?;
        let mut r = r;
        r.1.value = ValueFlow::returned(call.value, &call.assets, to);
        return Ok(r);
    }
    Ok(r)
}

#[allow(clippy::too_many_arguments)]
fn run_call(
    registry: &ContractsSystem,
    rows: &mut dyn Rows,
    env: &BlockEnv,
    shard: ShardId,
    call: &ContractCall,
    kind: TxKind,
    origin: ShardId,
    seq: u64,
) -> Result<(Vec<(ShardId, ContractCall)>, ContractReceipt), StoreError> {
    let rkind = if kind == TxKind::Normal {
        ReceiptKind::Transaction
    } else {
        ReceiptKind::Relay
    };
    let Some(d) = registry.get(&call.contract) else {
        return Ok((
            Vec::new(),
            failed(
                call,
                rkind,
                shard,
                String::new(),
                0,
                "no contract at this address",
            ),
        ));
    };
    let Some(f) = d.code.functions.get(call.func as usize) else {
        return Ok((
            Vec::new(),
            failed(call, rkind, shard, String::new(), 0, "no such function"),
        ));
    };
    // Names are for receipts; skip the copy when none are kept.
    let fname = if env.keep_receipts {
        f.name.clone()
    } else {
        String::new()
    };
    if f.scope != call.target.scope() || f.scope == ScopeKind::Global {
        return Ok((
            Vec::new(),
            failed(
                call,
                rkind,
                shard,
                fname,
                0,
                "function scope does not match the target",
            ),
        ));
    }
    let ids = f.params.iter().map(|(_, t)| *t);
    let args = match value::decode_tuple_ids(&call.args, ids, &d.code.types, &d.code.table) {
        Ok(a) => a,
        Err(e) => {
            return Ok((
                Vec::new(),
                failed(
                    call,
                    rkind,
                    shard,
                    fname,
                    0,
                    format!("arguments do not decode: {e}"),
                ),
            ))
        }
    };
    let ctx = context(env, shard, call, kind, origin, seq, d.code.uses_random());
    let mut host = ShardHost {
        rows,
        target: &call.target,
        own: call.target.state_key(&call.contract),
        shard: None,
        shard_id: shard,
        contract: call.contract,
        registry,
        logging: env.log_contracts,
        max_relays: env.max_relays,
        failure: None,
    };
    let out = vm::execute(
        vm::Call {
            contract: call.contract.0,
            code: &d.code,
            func: call.func,
            args,
            ctx: &ctx,
            gas_limit: call.gas,
            global: &d.global,
            global_writable: false,
            linker: registry,
        },
        &mut host,
    );
    if let Some(e) = host.failure.take() {
        return Err(e);
    }
    match out.result {
        Err(Trap::Host(msg)) => Err(StoreError::corrupt("contract state", msg)),
        Err(t) => {
            let mut r = failed(call, rkind, shard, fname, out.gas_used, t.to_string());
            r.logs = out.logs;
            Ok((Vec::new(), r))
        }
        Ok(ret) => {
            // What the VM counted in is what the chain handed over (a relay's value is the
            // tokens among its arguments).
            let received: Vec<(u64, u64)> = out
                .tokens
                .assets
                .iter()
                .filter(|(_, f)| f.received > 0)
                .map(|(id, f)| (*id, f.received))
                .collect();
            if out.tokens.received != call.value.to_sat() || received != call.assets.to_ids() {
                return Err(StoreError::corrupt(
                    "contract call",
                    "the value it carries does not match its tokens",
                ));
            }
            let issued = match issue(host.rows, &out.tokens.assets, env.order)? {
                Ok(issued) => issued,
                Err(why) => {
                    let mut r = failed(call, rkind, shard, fname, out.gas_used, why);
                    r.logs = out.logs;
                    return Ok((Vec::new(), r));
                }
            };
            host.apply(&call.contract, out.writes, out.elem_writes)?;
            for o in out.calls {
                if !o.global_writes.is_empty() {
                    return Err(StoreError::corrupt(
                        "contract state",
                        "a shard call wrote global state",
                    ));
                }
                host.apply(&Address(o.contract), o.writes, o.elem_writes)?;
            }
            if out.tokens.deposited > 0 {
                host.rows.credit(
                    Address(ctx.self_address),
                    Amount::from_sat(out.tokens.deposited),
                )?;
            }
            add_held(host.rows, out.tokens.kept())?;
            settle_assets(
                host.rows,
                &Address(ctx.self_address),
                &out.tokens.assets,
                issued,
            )?;
            let leftover = call.gas - out.gas_used;
            let n = out.relays.len() as u32;
            let (relays, forwarded) = route(out.relays, call, leftover, env.order);
            Ok((
                relays,
                ContractReceipt {
                    txid: call.txid,
                    kind: rkind,
                    shard,
                    contract: call.contract,
                    function: fname,
                    target: call.target.clone(),
                    gas_limit: call.gas,
                    gas_used: out.gas_used,
                    gas_forwarded: forwarded,
                    relays: n,
                    error: None,
                    result: ret_json(&d.code, call.func, &ret, env.hrp),
                    logs: out.logs,
                    events: out.events.into_iter().map(Into::into).collect(),
                    settled: None,
                    waited: None,
                    value: ValueFlow::of(&out.tokens),
                },
            ))
        }
    }
}

/// The contract part of a transaction that already paid its fee and nonce on its sender's
/// shard: runs its own step there, or forwards it to the global lane.
/// rxBTC the transaction attached is returned to its sender when this step fails.
pub fn start_transaction(
    registry: &ContractsSystem,
    rows: &mut dyn Rows,
    env: &BlockEnv,
    shard: ShardId,
    tx: &SignedTx,
    seq: u64,
) -> Result<StepResult, StoreError> {
    let mut step = first_step(registry, rows, env, shard, tx, seq)?;
    let value = tx.tx.value();
    if step.receipt.error.is_some() && !value.is_zero() {
        rows.credit(tx.tx.from, value)?;
        // Assets the step took and gave back are on the receipt already.
        let assets = step
            .receipt
            .value
            .take()
            .map(|v| v.assets)
            .unwrap_or_default();
        step.receipt.value = Some(ValueFlow {
            assets,
            ..ValueFlow::returned(value, &Assets::new(), tx.tx.from).unwrap_or_default()
        });
    }
    Ok(step)
}

fn first_step(
    registry: &ContractsSystem,
    rows: &mut dyn Rows,
    env: &BlockEnv,
    shard: ShardId,
    tx: &SignedTx,
    seq: u64,
) -> Result<StepResult, StoreError> {
    let t = &tx.tx;
    let intrinsic = intrinsic_gas(&t.payload);
    let gas = t.gas_limit.saturating_sub(intrinsic);
    let mut call = ContractCall {
        txid: tx.txid(),
        contract: Address::default(),
        func: 0,
        target: Target::Address(t.from),
        args: Vec::new(),
        gas: t.gas_limit,
        sender: t.from,
        tx_time: env.time,
        deferred: false,
        direct: true,
        fee: crate::fee::GasEscrow::default(),
        value: Amount::ZERO,
        assets: Assets::new(),
    };
    let forward =
        |call: &ContractCall, function: String, kind: RelayKind, forwarded: u64| StepResult {
            relays: vec![(ShardId::GLOBAL, kind)],
            receipt: ContractReceipt {
                txid: call.txid,
                kind: ReceiptKind::Transaction,
                shard,
                contract: call.contract,
                function,
                target: call.target.clone(),
                gas_limit: call.gas,
                gas_used: call.gas - forwarded,
                gas_forwarded: forwarded,
                relays: 1,
                error: None,
                result: None,
                logs: Vec::new(),
                events: Vec::new(),
                settled: None,
                waited: None,
                // A call of a @global function carries its attachment to the lane.
                value: (!call.value.is_zero() || !call.assets.is_empty()).then(|| ValueFlow {
                    received: call.value,
                    relayed: call.value,
                    assets: call
                        .assets
                        .iter()
                        .map(|(a, x)| AssetMove {
                            asset: Some(a),
                            received: x,
                            relayed: x,
                            ..AssetMove::default()
                        })
                        .collect(),
                    ..ValueFlow::default()
                }),
            },
        };
    let refuse = |call: &ContractCall, function: String, error: String| StepResult {
        relays: Vec::new(),
        receipt: failed(
            call,
            ReceiptKind::Transaction,
            shard,
            function,
            intrinsic,
            error,
        ),
    };
    match &t.payload {
        Payload::Deploy { source, args } => {
            call.target = Target::Global;
            call.contract = contract_address(&t.from, t.nonce);
            let Some(carried) = gas.checked_sub(gas::RELAY_GLOBAL) else {
                return Ok(refuse(&call, "<deploy>".into(), Trap::OutOfGas.to_string()));
            };
            let d = Deployment {
                txid: call.txid,
                deployer: t.from,
                nonce: t.nonce,
                source: source.clone(),
                args: args.clone(),
                gas: carried,
                tx_time: env.time,
                fee: crate::fee::GasEscrow::default(),
            };
            Ok(forward(
                &call,
                "<deploy>".into(),
                RelayKind::Deploy(Box::new(d)),
                carried,
            ))
        }
        Payload::ContractCall {
            contract,
            function,
            args,
            value,
            assets,
        } => {
            call.contract = *contract;
            call.value = *value;
            call.assets = assets.clone();
            let Some(d) = registry.get(contract) else {
                return Ok(refuse(
                    &call,
                    function.clone(),
                    "no contract at this address".into(),
                ));
            };
            let (fi, f) = match super::abi::resolve(&d.code, function) {
                Ok(found) => found,
                Err(why) => return Ok(refuse(&call, function.clone(), why)),
            };
            if !f.export {
                return Ok(refuse(
                    &call,
                    function.clone(),
                    format!("`{function}` is not exported (declare it `export` to call it from a transaction)"),
                ));
            }
            call.func = fi;
            match f.scope {
                ScopeKind::Global => {
                    call.target = Target::Global;
                    let Some(carried) = gas.checked_sub(gas::RELAY_GLOBAL) else {
                        return Ok(refuse(&call, function.clone(), Trap::OutOfGas.to_string()));
                    };
                    // Attached assets leave the sender's wallets with the call (the lane
                    // sends them back if the call fails there).
                    if let Err(why) = take_assets(rows, &t.from, assets)? {
                        return Ok(refuse(&call, function.clone(), why));
                    }
                    let mut relayed = call.clone();
                    relayed.gas = carried;
                    relayed.args = args.clone();
                    Ok(forward(
                        &call,
                        function.clone(),
                        RelayKind::Contract(Box::new(relayed)),
                        carried,
                    ))
                }
                ScopeKind::Address | ScopeKind::Shard => {
                    if f.scope == ScopeKind::Shard {
                        call.target = Target::Shard(shard);
                    }
                    call.gas = gas;
                    call.args = args.clone();
                    if let Err(why) = take_assets(rows, &t.from, assets)? {
                        return Ok(refuse(&call, function.clone(), why));
                    }
                    let (relays, mut receipt) = run_on_shard(
                        registry,
                        rows,
                        env,
                        shard,
                        &call,
                        TxKind::Normal,
                        shard,
                        seq,
                    )?;
                    receipt.gas_limit = t.gas_limit;
                    receipt.gas_used += intrinsic;
                    if receipt.error.is_some() && !assets.is_empty() {
                        credit_assets(rows, &t.from, assets)?;
                        receipt.value = ValueFlow::returned(Amount::ZERO, assets, t.from);
                    }
                    Ok(StepResult {
                        relays: relays
                            .into_iter()
                            .map(|(s, c)| (s, RelayKind::Contract(Box::new(c))))
                            .collect(),
                        receipt,
                    })
                }
                s => Ok(refuse(
                    &call,
                    function.clone(),
                    format!(
                        "@{} functions are reached by relays, not by transactions",
                        s.name()
                    ),
                )),
            }
        }
        _ => Ok(refuse(
            &call,
            String::new(),
            "not a contract payload".into(),
        )),
    }
}

/// Runs a contract relay or deployment that reached the global lane.
pub fn run_on_lane(
    registry: &mut ContractsSystem,
    env: &BlockEnv,
    relay: &Relay,
    seq: u64,
) -> Option<(Vec<(ShardId, ContractCall)>, ContractReceipt)> {
    match &relay.kind {
        RelayKind::Deploy(d) => Some(deploy(registry, env, d, seq)),
        RelayKind::Contract(c) => Some(global_call(registry, env, c, relay.origin, seq)),
        _ => None,
    }
}

fn global_call(
    registry: &mut ContractsSystem,
    env: &BlockEnv,
    call: &ContractCall,
    origin: ShardId,
    seq: u64,
) -> (Vec<(ShardId, ContractCall)>, ContractReceipt) {
    let kind = if call.direct {
        TxKind::Normal
    } else {
        TxKind::Relay
    };
    let rkind = ReceiptKind::Relay;
    let lane = ShardId::GLOBAL;
    // Only the code and the row values are taken: holding the contract's element pages
    // while the call's writes go in would make every write copy them.
    let Some((code, global)) = registry
        .get(&call.contract)
        .map(|d| (d.code.clone(), d.global.clone()))
    else {
        return (
            Vec::new(),
            failed(
                call,
                rkind,
                lane,
                String::new(),
                0,
                "no contract at this address",
            ),
        );
    };
    let Some(f) = code.functions.get(call.func as usize) else {
        return (
            Vec::new(),
            failed(call, rkind, lane, String::new(), 0, "no such function"),
        );
    };
    let fname = f.name.clone();
    if f.scope != ScopeKind::Global || call.target != Target::Global {
        return (
            Vec::new(),
            failed(
                call,
                rkind,
                lane,
                fname,
                0,
                "function scope does not match the target",
            ),
        );
    }
    let args = match value::decode_tuple(&call.args, &code.param_types(f), &code.table) {
        Ok(a) => a,
        Err(e) => {
            return (
                Vec::new(),
                failed(
                    call,
                    rkind,
                    lane,
                    fname,
                    0,
                    format!("arguments do not decode: {e}"),
                ),
            )
        }
    };
    let ctx = context(env, lane, call, kind, origin, seq, code.uses_random());
    let mut host = LaneHost {
        registry,
        logging: env.log_contracts,
        max_relays: env.max_relays,
        deploy_seed: deploy_seed(env, lane, seq, &call.txid),
    };
    let out = vm::execute(
        vm::Call {
            contract: call.contract.0,
            code: &code,
            func: call.func,
            args,
            ctx: &ctx,
            gas_limit: call.gas,
            global: &global,
            global_writable: true,
            linker: &*registry,
        },
        &mut host,
    );
    drop(global);
    match out.result {
        Err(t) => {
            let mut r = failed(call, rkind, lane, fname, out.gas_used, t.to_string());
            r.logs = out.logs;
            (Vec::new(), r)
        }
        Ok(ret) => {
            // The lane keeps no wallets: what a call receives is what it was sent, and it
            // deposits nothing. Its contracts may hold assets, but nothing mints or burns
            // one there (issued amounts are kept per shard).
            if out.tokens.received != call.value.to_sat() || out.tokens.deposited != 0 {
                return (
                    Vec::new(),
                    failed(call, rkind, lane, fname, out.gas_used, "token accounting"),
                );
            }
            let mut kept = Vec::new();
            for (id, f) in &out.tokens.assets {
                let why = if f.minted != 0 || f.burned != 0 {
                    "assets cannot be minted or burned on the global lane (mint and burn in a @address or @shard function)"
                } else if f.deposited != 0 {
                    "the global lane keeps no asset wallets to deposit into"
                } else if call
                    .assets
                    .iter()
                    .find(|(a, _)| a.id() == *id)
                    .map_or(0, |(_, x)| x)
                    != f.received
                {
                    "token accounting"
                } else {
                    match AssetId::new(*id) {
                        Some(a) => {
                            kept.push((a, f.kept()));
                            continue;
                        }
                        None => "token accounting",
                    }
                };
                return (
                    Vec::new(),
                    failed(call, rkind, lane, fname, out.gas_used, why),
                );
            }
            let created = match created_entries(registry, env, &out.created) {
                Ok(c) => c,
                Err(e) => {
                    return (
                        Vec::new(),
                        failed(call, rkind, lane, fname, out.gas_used, e),
                    )
                }
            };
            if let Err(e) = registry
                .can_hold_assets(&kept)
                .and_then(|()| registry.add_held(out.tokens.kept()))
            {
                return (
                    Vec::new(),
                    failed(call, rkind, lane, fname, out.gas_used, e),
                );
            }
            registry.add_held_assets(&kept);
            for d in created {
                registry.insert(d);
            }
            registry.write_global(&call.contract, out.global_writes, out.elem_writes);
            for o in out.calls {
                registry.write_global(&Address(o.contract), o.global_writes, o.elem_writes);
            }
            let n = out.relays.len() as u32;
            let (relays, forwarded) = route(out.relays, call, call.gas - out.gas_used, env.order);
            let receipt = ContractReceipt {
                txid: call.txid,
                kind: rkind,
                shard: lane,
                contract: call.contract,
                function: fname,
                target: Target::Global,
                gas_limit: call.gas,
                gas_used: out.gas_used,
                gas_forwarded: forwarded,
                relays: n,
                error: None,
                result: ret_json(&code, call.func, &ret, env.hrp),
                logs: out.logs,
                events: out.events.into_iter().map(Into::into).collect(),
                settled: None,
                waited: None,
                value: ValueFlow::of(&out.tokens),
            };
            (relays, receipt)
        }
    }
}

/// First lines of a compile error list (a receipt should stay short).
fn summarize(e: &crate::lang::CompileErrors) -> String {
    let mut s: Vec<String> = e.0.iter().take(5).map(|x| x.to_string()).collect();
    if e.0.len() > 5 {
        s.push(format!("… and {} more", e.0.len() - 5));
    }
    format!("compile error: {}", s.join("; "))
}

fn deploy(
    registry: &mut ContractsSystem,
    env: &BlockEnv,
    d: &Deployment,
    seq: u64,
) -> (Vec<(ShardId, ContractCall)>, ContractReceipt) {
    let address = contract_address(&d.deployer, d.nonce);
    let call = ContractCall {
        txid: d.txid,
        contract: address,
        func: 0,
        target: Target::Global,
        args: d.args.clone(),
        gas: d.gas,
        sender: d.deployer,
        tx_time: d.tx_time,
        deferred: false,
        direct: false,
        fee: d.fee,
        value: Amount::ZERO,
        assets: Assets::new(),
    };
    let lane = ShardId::GLOBAL;
    let fail = |used: u64, e: String| {
        (
            Vec::new(),
            failed(&call, ReceiptKind::Deploy, lane, "<deploy>".into(), used, e),
        )
    };
    let compile_gas = gas::DEPLOY_BYTE * d.source.len() as u64;
    if compile_gas > d.gas {
        return fail(d.gas, Trap::OutOfGas.to_string());
    }
    if registry.get(&address).is_some() {
        return fail(
            compile_gas,
            "a contract is already deployed at this address".into(),
        );
    }
    let (code, imports) = match registry.compile(&d.source) {
        Ok((c, imports)) => (Arc::new(c), imports),
        Err(e) => return fail(compile_gas, summarize(&e)),
    };
    let mut global = vm::default_row(&code, ScopeKind::Global);
    let mut elem_writes = Vec::new();
    let mut used = compile_gas;
    let mut relays = Vec::new();
    let mut forwarded = 0;
    let mut logs = Vec::new();
    let mut events = Vec::new();
    let init = code
        .functions
        .iter()
        .position(|f| f.kind == FnKind::OnDeploy)
        .map(|i| i as u16);
    match init {
        None if !d.args.is_empty() => {
            return fail(
                used,
                "arguments given but the contract has no on_deploy".into(),
            );
        }
        None => {}
        Some(fi) => {
            let f = &code.functions[fi as usize];
            let args = match value::decode_tuple(&d.args, &code.param_types(f), &code.table) {
                Ok(a) => a,
                Err(e) => return fail(used, format!("on_deploy arguments do not decode: {e}")),
            };
            let mut c = call.clone();
            c.func = fi;
            let ctx = context(env, lane, &c, TxKind::System, lane, seq, code.uses_random());
            let mut host = LaneHost {
                registry,
                logging: env.log_contracts,
                max_relays: env.max_relays,
                deploy_seed: deploy_seed(env, lane, seq, &d.txid),
            };
            let out = vm::execute(
                vm::Call {
                    contract: address.0,
                    code: &code,
                    func: fi,
                    args,
                    ctx: &ctx,
                    gas_limit: d.gas - used,
                    global: &global,
                    global_writable: true,
                    linker: &*registry,
                },
                &mut host,
            );
            used += out.gas_used;
            logs = out.logs;
            events = out.events.into_iter().map(Into::into).collect();
            if let Err(t) = out.result {
                let mut r = fail(used, format!("on_deploy: {t}"));
                r.1.logs = logs;
                return r;
            }
            for (i, v) in out.global_writes {
                if let Some(slot) = global.get_mut(i as usize) {
                    *slot = v;
                }
            }
            elem_writes = out.elem_writes;
            // What on_deploy took from contracts it called into (a deposit cannot happen
            // on the lane).
            let created = match created_entries(registry, env, &out.created) {
                Ok(c) => c,
                Err(e) => return fail(used, e),
            };
            if !out.tokens.assets.is_empty() {
                return fail(used, "token accounting".into());
            }
            if let Err(e) = registry.add_held(out.tokens.kept()) {
                return fail(used, e);
            }
            for d in created {
                registry.insert(d);
            }
            for o in out.calls {
                registry.write_global(&Address(o.contract), o.global_writes, o.elem_writes);
            }
            let (r, fw) = route(out.relays, &c, d.gas - used, env.order);
            relays = r;
            forwarded = fw;
        }
    }
    let n = relays.len() as u32;
    registry.insert(Deployed {
        address,
        deployer: d.deployer,
        height: env.height,
        source: d.source.as_str().into(),
        code,
        global: Arc::new(global),
        elems: Default::default(),
        imports,
        origin: None,
    });
    registry.write_global(&address, Vec::new(), elem_writes);
    let receipt = ContractReceipt {
        txid: d.txid,
        kind: ReceiptKind::Deploy,
        shard: lane,
        contract: address,
        function: "<deploy>".into(),
        target: Target::Global,
        gas_limit: d.gas,
        gas_used: used,
        gas_forwarded: forwarded,
        relays: n,
        error: None,
        result: Some(serde_json::Value::String(value::address_to_string(
            &address.0, env.hrp,
        ))),
        logs,
        events,
        settled: None,
        waited: None,
        value: None,
    };
    (relays, receipt)
}
