//! The contract registry and every contract's global state, kept on the global lane as a
//! system contract: one item per contract (deployer, height, source and `@global` row), one
//! per element or map key slot of its `@global` stored containers (key: address, variable
//! BE, index BE) and one per map entry (key: address, variable BE, entry id),
//! committed in `state_root` and undone on reorgs like the peg's items. Shards read the
//! registry as it was after the previous block.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::elems::{ContentId, GlobalElems};
use crate::address::Address;
use crate::amount::Amount;
use crate::asset::AssetId;
use crate::encode::{Decode, Encode, Reader};
use crate::lang::ast::ScopeKind;
use crate::lang::layout::{self, ElemWrite};
use crate::lang::value::{self, Value};
use crate::lang::{compile_with, vm, Imports, Verified};
use crate::system::{Call, CallError, Change, Credit, GlobalCtx, Item, SystemContract, SystemId};

/// A deployed contract.
#[derive(Clone, Debug)]
pub struct Deployed {
    /// Its address.
    pub address: Address,
    /// Who deployed it.
    pub deployer: Address,
    /// Height of the block whose global lane deployed it.
    pub height: u64,
    /// Its source.
    pub source: Arc<str>,
    /// Its compiled code.
    pub code: Arc<Verified>,
    /// Its `@global` state variables, in declaration order, as row values (a stored
    /// array is its length; see [`crate::lang::layout`]).
    pub global: Arc<Vec<Value>>,
    /// The elements of its `@global` stored arrays.
    pub elems: GlobalElems,
    /// The contracts its source's `import` directives bound to when it was deployed, in
    /// source order.
    pub imports: Vec<Address>,
    /// For a contract made by a `deploy` statement (PREDA spec 5.9): the named contract
    /// whose code it runs. Its `deployer` is then the contract that deployed it, and its
    /// source and imports are the origin's.
    pub origin: Option<Address>,
}

impl Deployed {
    /// The contract's name in its source.
    pub fn name(&self) -> &str {
        &self.code.name
    }
}

/// Binds a deploying source's imports: `import [DApp.]Name` names the first contract
/// deployed under `Name` (lowest height, then lowest address; rexe has no DApp names, so the
/// DApp part is not used). Records what it bound.
struct ByName<'r> {
    registry: &'r ContractsSystem,
    /// The addresses bound, by directive.
    bound: std::cell::RefCell<Vec<Address>>,
}

impl<'r> ByName<'r> {
    fn new(registry: &'r ContractsSystem) -> Self {
        ByName {
            registry,
            bound: Default::default(),
        }
    }
}

impl Imports for ByName<'_> {
    fn resolve(
        &self,
        index: usize,
        _: Option<&str>,
        name: &str,
    ) -> Result<([u8; 32], Arc<Verified>), String> {
        let d = self
            .registry
            .first_named(name)
            .ok_or_else(|| format!("no contract named `{name}` is deployed"))?;
        let mut bound = self.bound.borrow_mut();
        bound.resize(index + 1, Address([0; 32]));
        bound[index] = d.address;
        Ok((d.address.0, d.code.clone()))
    }
    fn code(&self, addr: &[u8; 32]) -> Option<Arc<Verified>> {
        self.registry.get(&Address(*addr)).map(|d| d.code.clone())
    }
}

/// Binds a stored contract's imports to the addresses recorded when it was deployed.
struct Recorded<'r> {
    registry: &'r ContractsSystem,
    imports: &'r [Address],
}

impl Imports for Recorded<'_> {
    fn resolve(
        &self,
        index: usize,
        _: Option<&str>,
        name: &str,
    ) -> Result<([u8; 32], Arc<Verified>), String> {
        let a = self
            .imports
            .get(index)
            .ok_or_else(|| format!("no address was recorded for `import {name}`"))?;
        let d = self
            .registry
            .get(a)
            .ok_or_else(|| format!("the contract `import {name}` was bound to is not deployed"))?;
        Ok((a.0, d.code.clone()))
    }
    fn code(&self, addr: &[u8; 32]) -> Option<Arc<Verified>> {
        self.registry.get(&Address(*addr)).map(|d| d.code.clone())
    }
}

impl vm::Linker for ContractsSystem {
    fn contract(&self, addr: &[u8; 32]) -> Option<(&Verified, &[Value])> {
        self.get(&Address(*addr))
            .map(|d| (&*d.code, d.global.as_slice()))
    }
    fn origin(&self, addr: &[u8; 32]) -> Option<[u8; 32]> {
        self.get(&Address(*addr))
            .and_then(|d| d.origin.map(|a| a.0))
    }
}

/// All deployed contracts (the system contract [`SystemId::CONTRACTS`]).
#[derive(Clone, Debug, Default)]
pub struct ContractsSystem {
    contracts: BTreeMap<Address, Deployed>,
    /// Contracts written since the last [`SystemContract::take_changes`].
    written: BTreeSet<Address>,
    /// Global container rows written since then: (contract, variable, row).
    written_elems: BTreeSet<(Address, u16, ContentId)>,
    /// rxBTC held in tokens in the `@global` state of all contracts (item [`HELD_KEY`]
    /// while not zero).
    held: Amount,
    /// Whether `held` changed since the last [`SystemContract::take_changes`].
    held_written: bool,
    /// Assets other than rxBTC held in tokens in the `@global` state of all contracts
    /// (items [`HELD_ASSET_KEY`] + id while not zero).
    held_assets: BTreeMap<AssetId, u64>,
    /// Held assets changed since the last [`SystemContract::take_changes`].
    written_held_assets: BTreeSet<AssetId>,
    /// Who may mint and burn each asset other than rxBTC (items [`MINT_KEY`] + id).
    minters: BTreeMap<AssetId, Address>,
    /// Rights granted since the last [`SystemContract::take_changes`].
    written_minters: BTreeSet<AssetId>,
}

/// Prefix of a minting right's item key (then the asset id, little-endian: 12 bytes, a
/// length no other item key has).
const MINT_KEY: &[u8] = b"mint";
const MINT_KEY_LEN: usize = 12;

fn mint_item_key(a: AssetId) -> Vec<u8> {
    [MINT_KEY, &a.id().to_le_bytes()].concat()
}

/// The method byte of [`SystemId::CONTRACTS`] call data that grants a minting right.
const GRANT_MINT: u8 = 1;

/// A minting right (see [`crate::asset`]): the one contract that may mint and burn an asset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MintRight {
    /// The asset.
    pub asset: AssetId,
    /// The contract that holds the right.
    pub contract: Address,
}

impl MintRight {
    /// The data of a [`crate::Payload::Call`] to [`SystemId::CONTRACTS`] that registers this
    /// right. Only the deployer of `contract` (a contract deployed by a transaction) may
    /// send it, once per asset: the first to register a symbol keeps it.
    pub fn call_data(&self) -> Vec<u8> {
        let mut d = Vec::with_capacity(41);
        d.push(GRANT_MINT);
        d.extend_from_slice(&self.asset.id().to_le_bytes());
        d.extend_from_slice(&self.contract.0);
        d
    }

    fn from_call_data(d: &[u8]) -> Result<MintRight, CallError> {
        if d.len() != 41 || d[0] != GRANT_MINT {
            return Err(CallError::new(
                "the contracts system takes one call: grant a minting right (41 bytes)",
            ));
        }
        let id = u64::from_le_bytes(d[1..9].try_into().expect("8 bytes"));
        let asset = AssetId::new(id).ok_or_else(|| {
            CallError::new("not an asset: a symbol is 3 to 8 of A-Z, '-' and '#', and not RXBTC")
        })?;
        Ok(MintRight {
            asset,
            contract: Address(d[9..41].try_into().expect("32 bytes")),
        })
    }
}

/// Key of the item holding [`ContractsSystem`]'s held rxBTC (no address-keyed item has
/// this length).
const HELD_KEY: &[u8] = b"held";

/// Prefix of the key of an item holding what contracts' `@global` state holds of an asset
/// (then the asset id, little-endian: 17 bytes, a length no other item key has).
const HELD_ASSET_KEY: &[u8] = b"heldasset";
const HELD_ASSET_KEY_LEN: usize = 17;

fn held_asset_item_key(a: AssetId) -> Vec<u8> {
    [HELD_ASSET_KEY, &a.id().to_le_bytes()].concat()
}

/// Length of an element or key-slot item's key: address, variable (BE), index (BE).
const ELEM_KEY_LEN: usize = 38;
/// Length of a map entry item's key: address, variable (BE), entry id.
const ENTRY_KEY_LEN: usize = 66;

fn content_item_key(a: &Address, var: u16, id: &ContentId) -> Vec<u8> {
    let mut k = Vec::with_capacity(ENTRY_KEY_LEN);
    k.extend_from_slice(&a.0);
    k.extend_from_slice(&var.to_be_bytes());
    match id {
        ContentId::Index(i) => k.extend_from_slice(&i.to_be_bytes()),
        ContentId::Entry(h) => k.extend_from_slice(h),
    }
    k
}

impl ContractsSystem {
    /// The contract rules this code executes (part of the chain's fingerprint):
    /// 1: top-level arrays and maps are stored one row (item) per element or entry;
    /// 2: tokens, and contract calls carrying rxBTC;
    /// 3: imports, calls between contracts and interfaces;
    /// 4: the `deploy` statement and contract types;
    /// 5: assets other than rxBTC (minting rights, asset wallets, `__mint`/`__burn`);
    /// 6: assets other than rxBTC attached to `@global` calls and held on the global lane.
    pub const RULES_VERSION: u32 = 6;

    /// No contracts.
    pub fn new() -> Self {
        Self::default()
    }

    /// The contract at `addr`.
    pub fn get(&self, addr: &Address) -> Option<&Deployed> {
        self.contracts.get(addr)
    }

    /// Every contract, by address.
    pub fn iter(&self) -> impl Iterator<Item = &Deployed> {
        self.contracts.values()
    }

    /// Compiles `source` as deploying it now would: its imports bound to the first
    /// contracts deployed under their names. Returns the code and the addresses bound.
    pub fn compile(
        &self,
        source: &str,
    ) -> Result<(Verified, Vec<Address>), crate::lang::CompileErrors> {
        let bind = ByName::new(self);
        let code = compile_with(source, &bind)?;
        Ok((code, bind.bound.into_inner()))
    }

    /// The contract `import name` binds to: the first deployed under that name by a
    /// transaction (lowest height, then lowest address). Contracts made by `deploy` have no
    /// name of their own.
    pub fn first_named(&self, name: &str) -> Option<&Deployed> {
        self.contracts
            .values()
            .filter(|d| d.name() == name && d.origin.is_none())
            .min_by_key(|d| (d.height, d.address))
    }

    /// The contract that may mint and burn `asset`, if any has the right.
    pub fn minter(&self, asset: AssetId) -> Option<Address> {
        self.minters.get(&asset).copied()
    }

    /// Every minting right, by asset.
    pub fn minting_rights(&self) -> impl Iterator<Item = MintRight> + '_ {
        self.minters.iter().map(|(a, c)| MintRight {
            asset: *a,
            contract: *c,
        })
    }

    /// Checks a grant of a minting right sent by `caller` with `value` attached.
    fn check_grant(&self, call: &Call<'_>) -> Result<MintRight, CallError> {
        let right = MintRight::from_call_data(call.data)?;
        if !call.value.is_zero() {
            return Err(CallError::new(
                "a minting right is granted with no value attached",
            ));
        }
        let d = self
            .get(&right.contract)
            .ok_or_else(|| CallError::new(format!("no contract at {}", right.contract)))?;
        if d.origin.is_some() || d.deployer != call.caller {
            return Err(CallError::new(
                "only the deployer of a contract deployed by a transaction may grant it a minting right",
            ));
        }
        if let Some(holder) = self.minter(right.asset) {
            let mut e = CallError::new(format!(
                "{} is already minted by contract {holder}",
                right.asset
            ));
            e.kind = crate::system::RefusalKind::AlreadyDone;
            return Err(e);
        }
        Ok(right)
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.contracts.len()
    }

    /// Whether none are deployed.
    pub fn is_empty(&self) -> bool {
        self.contracts.is_empty()
    }

    /// Adds what a global call kept (negative: gave out) to the rxBTC the contracts hold.
    pub(super) fn add_held(&mut self, kept: i128) -> Result<(), String> {
        if kept == 0 {
            return Ok(());
        }
        self.held = super::run::add_kept(self.held, kept)
            .ok_or_else(|| format!("contracts would hold {} + {kept} sat", self.held))?;
        self.held_written = true;
        Ok(())
    }

    /// Whether the `@global` state of contracts can keep these changes to what it holds of
    /// each asset (never below zero, never past 64 bits).
    pub(super) fn can_hold_assets(&self, kept: &[(AssetId, i128)]) -> Result<(), String> {
        for (a, k) in kept {
            let was = i128::from(self.held_assets.get(a).copied().unwrap_or(0));
            if u64::try_from(was + k).is_err() {
                return Err(format!(
                    "contracts on the global lane would hold {was} + {k} {a}"
                ));
            }
        }
        Ok(())
    }

    /// Books what a successful global call kept of each asset (checked by
    /// [`Self::can_hold_assets`]).
    pub(super) fn add_held_assets(&mut self, kept: &[(AssetId, i128)]) {
        for (a, k) in kept {
            if *k == 0 {
                continue;
            }
            let was = i128::from(self.held_assets.get(a).copied().unwrap_or(0));
            let now = u64::try_from(was + k).unwrap_or(0);
            if now == 0 {
                self.held_assets.remove(a);
            } else {
                self.held_assets.insert(*a, now);
            }
            self.written_held_assets.insert(*a);
        }
    }

    /// What the `@global` state of all contracts holds of each asset other than rxBTC.
    pub fn held_assets(&self) -> &BTreeMap<AssetId, u64> {
        &self.held_assets
    }

    pub(super) fn insert(&mut self, d: Deployed) {
        self.written.insert(d.address);
        self.contracts.insert(d.address, d);
    }

    /// Applies a global call's writes (row values and element rows) to contract `addr`.
    pub(super) fn write_global(
        &mut self,
        addr: &Address,
        writes: Vec<(u16, Value)>,
        elems: Vec<ElemWrite>,
    ) {
        let Some(d) = self.contracts.get_mut(addr) else {
            return;
        };
        if !writes.is_empty() {
            let g = Arc::make_mut(&mut d.global);
            for (i, v) in writes {
                if let Some(slot) = g.get_mut(i as usize) {
                    *slot = v;
                }
            }
            self.written.insert(*addr);
        }
        for w in elems {
            let id = ContentId::of(&w.key);
            d.elems.set(w.var, &id, w.value.as_deref());
            self.written_elems.insert((*addr, w.var, id));
        }
    }

    /// A contract's global state as JSON (`{name: value}`), with addresses in `hrp`.
    pub fn global_json(&self, addr: &Address, hrp: &str) -> Option<serde_json::Value> {
        let d = self.get(addr)?;
        let full = self.global_values(addr).ok()?;
        let vars = d.code.state_of(ScopeKind::Global);
        Some(serde_json::Value::Object(
            vars.iter()
                .zip(full.iter())
                .map(|((n, t), v)| {
                    (
                        n.clone(),
                        value::to_json(v, d.code.ty(*t), &d.code.table, hrp),
                    )
                })
                .collect(),
        ))
    }

    /// A contract's global state as the contract sees it (arrays with their elements).
    pub fn global_values(&self, addr: &Address) -> Result<Vec<Value>, String> {
        let d = self.get(addr).ok_or("no such contract")?;
        layout::full_values(&d.code, ScopeKind::Global, &d.global, &mut d.elems.reader())
    }

    /// Replaces a contract's global state (full values) outside any block. Only for
    /// simulations: no block records the change.
    pub fn force_global(&mut self, addr: &Address, vals: Vec<Value>) -> Result<(), String> {
        let d = self.contracts.get(addr).ok_or("no such contract")?;
        let (row, elems) = layout::split_values(
            &d.code,
            ScopeKind::Global,
            &vals,
            &d.global,
            &mut d.elems.reader(),
        )?;
        vm::encode_row(&d.code, ScopeKind::Global, &row).map_err(|e| e.to_string())?;
        let writes = row
            .into_iter()
            .enumerate()
            .map(|(i, v)| (i as u16, v))
            .collect();
        self.write_global(addr, writes, elems);
        Ok(())
    }

    /// A contract's item value: deployer, height, source, encoded `@global` row, and the
    /// addresses its imports bound to. A contract made by `deploy` has an empty source
    /// (no deployable source is empty) and, after its row, the address of its origin.
    fn encode_item(d: &Deployed) -> Vec<u8> {
        let mut out = Vec::new();
        d.deployer.0.encode(&mut out);
        d.height.encode(&mut out);
        match d.origin {
            Some(_) => Vec::<u8>::new().encode(&mut out),
            None => d.source.as_bytes().to_vec().encode(&mut out),
        }
        // Global state is always well-typed (the VM checks every write into it).
        let row = vm::encode_row(&d.code, ScopeKind::Global, &d.global)
            .ok()
            .flatten()
            .unwrap_or_default();
        row.encode(&mut out);
        if let Some(origin) = d.origin {
            origin.0.encode(&mut out);
            return out;
        }
        // Only contracts that import have the list (the bytes of others are unchanged).
        if !d.imports.is_empty() {
            crate::encode::write_compact_size(&mut out, d.imports.len() as u64);
            for a in &d.imports {
                a.0.encode(&mut out);
            }
        }
        out
    }

    /// Decodes an item; `known` is the contract now at that address, whose compiled code is
    /// reused when the source is the same (a reorg undoing a state write). A source that
    /// imports is compiled against the contracts in `self` it was bound to.
    fn decode_item(
        &self,
        address: Address,
        bytes: &[u8],
        known: Option<&Deployed>,
    ) -> Result<Deployed, String> {
        let mut r = Reader::new(bytes);
        let deployer = Address(r.array().map_err(|e| e.to_string())?);
        let height = u64::decode(&mut r).map_err(|e| e.to_string())?;
        let source = String::from_utf8(Vec::<u8>::decode(&mut r).map_err(|e| e.to_string())?)
            .map_err(|_| "contract source is not UTF-8".to_string())?;
        let row = Vec::<u8>::decode(&mut r).map_err(|e| e.to_string())?;
        if source.is_empty() {
            let origin = Address(r.array().map_err(|e| e.to_string())?);
            r.finish().map_err(|e| e.to_string())?;
            // The origin may come later in the same change set (see `apply`).
            let o = self
                .get(&origin)
                .filter(|o| o.origin.is_none())
                .ok_or("the contract it was deployed from is not deployed")?;
            let global = if row.is_empty() {
                vm::default_row(&o.code, ScopeKind::Global)
            } else {
                vm::decode_row(&o.code, ScopeKind::Global, &row).map_err(|e| e.to_string())?
            };
            return Ok(Deployed {
                address,
                deployer,
                height,
                source: o.source.clone(),
                code: o.code.clone(),
                global: Arc::new(global),
                elems: known.map(|d| d.elems.clone()).unwrap_or_default(),
                imports: o.imports.clone(),
                origin: Some(origin),
            });
        }
        let mut imports = Vec::new();
        if r.remaining() > 0 {
            let n = r.length(32).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("an empty import list is written as none".into());
            }
            for _ in 0..n {
                imports.push(Address(r.array().map_err(|e| e.to_string())?));
            }
        }
        r.finish().map_err(|e| e.to_string())?;
        let code = match known {
            Some(d) if *d.source == *source && d.imports == imports => d.code.clone(),
            _ => {
                let bind = Recorded {
                    registry: self,
                    imports: &imports,
                };
                Arc::new(
                    compile_with(&source, &bind)
                        .map_err(|e| format!("stored contract does not compile: {e}"))?,
                )
            }
        };
        let global = if row.is_empty() {
            vm::default_row(&code, ScopeKind::Global)
        } else {
            vm::decode_row(&code, ScopeKind::Global, &row).map_err(|e| e.to_string())?
        };
        Ok(Deployed {
            address,
            deployer,
            height,
            source: source.into(),
            code,
            global: Arc::new(global),
            elems: known.map(|d| d.elems.clone()).unwrap_or_default(),
            imports,
            origin: None,
        })
    }
}

impl SystemContract for ContractsSystem {
    fn id(&self) -> SystemId {
        SystemId::CONTRACTS
    }

    fn clone_box(&self) -> Box<dyn SystemContract> {
        Box::new(self.clone())
    }

    /// The one call this system takes is a grant of a minting right ([`MintRight`]);
    /// contracts are deployed and called with Deploy and ContractCall payloads.
    fn precheck(&self, _: &GlobalCtx, call: &Call<'_>) -> Result<(), CallError> {
        self.check_grant(call).map(|_| ())
    }

    fn call(&mut self, _: &GlobalCtx, call: &Call<'_>) -> Result<Vec<Credit>, CallError> {
        let right = self.check_grant(call)?;
        self.minters.insert(right.asset, right.contract);
        self.written_minters.insert(right.asset);
        Ok(Vec::new())
    }

    fn has_due_work(&self, _: &GlobalCtx) -> bool {
        false
    }

    fn end_block(&mut self, _: &GlobalCtx) -> Vec<Credit> {
        Vec::new()
    }

    /// rxBTC held in tokens in the `@global` state of all contracts.
    fn held(&self) -> Amount {
        self.held
    }

    fn items(&self) -> Vec<Item> {
        let mut items = Vec::new();
        if !self.held.is_zero() {
            items.push((HELD_KEY.to_vec(), self.held.to_sat().to_le_bytes().to_vec()));
        }
        for (a, c) in &self.minters {
            items.push((mint_item_key(*a), c.0.to_vec()));
        }
        for (a, n) in &self.held_assets {
            items.push((held_asset_item_key(*a), n.to_le_bytes().to_vec()));
        }
        for d in self.contracts.values() {
            items.push((d.address.0.to_vec(), Self::encode_item(d)));
            for (var, id, b) in d.elems.iter() {
                items.push((content_item_key(&d.address, var, &id), b.to_vec()));
            }
        }
        items
    }

    fn take_changes(&mut self) -> Vec<Change> {
        let mut changes: Vec<Change> = std::mem::take(&mut self.written)
            .into_iter()
            .map(|a| (a.0.to_vec(), self.contracts.get(&a).map(Self::encode_item)))
            .collect();
        for (a, var, id) in std::mem::take(&mut self.written_elems) {
            let value = self
                .contracts
                .get(&a)
                .and_then(|d| d.elems.get(var, &id))
                .map(<[u8]>::to_vec);
            changes.push((content_item_key(&a, var, &id), value));
        }
        if std::mem::take(&mut self.held_written) {
            let v = (!self.held.is_zero()).then(|| self.held.to_sat().to_le_bytes().to_vec());
            changes.push((HELD_KEY.to_vec(), v));
        }
        for a in std::mem::take(&mut self.written_minters) {
            let v = self.minters.get(&a).map(|c| c.0.to_vec());
            changes.push((mint_item_key(a), v));
        }
        for a in std::mem::take(&mut self.written_held_assets) {
            let v = self.held_assets.get(&a).map(|n| n.to_le_bytes().to_vec());
            changes.push((held_asset_item_key(a), v));
        }
        changes
    }

    fn apply(&mut self, changes: &[Change]) -> Result<(), CallError> {
        // Contracts first: their elements need them.
        let is_content = |k: &[u8]| k.len() == ELEM_KEY_LEN || k.len() == ENTRY_KEY_LEN;
        for (_, value) in changes.iter().filter(|(k, _)| k == HELD_KEY) {
            self.held = match value {
                None => Amount::ZERO,
                Some(v) => Amount::from_sat(u64::from_le_bytes(
                    v.as_slice()
                        .try_into()
                        .map_err(|_| CallError::new("held item is not 8 bytes"))?,
                )),
            };
        }
        let is_right = |k: &[u8]| k.len() == MINT_KEY_LEN && k.starts_with(MINT_KEY);
        for (key, value) in changes.iter().filter(|(k, _)| is_right(k)) {
            let asset = AssetId::new(u64::from_le_bytes(key[4..].try_into().expect("8 bytes")))
                .ok_or_else(|| CallError::new("minting right of a malformed asset"))?;
            match value {
                None => {
                    self.minters.remove(&asset);
                }
                Some(v) => {
                    let c = v
                        .as_slice()
                        .try_into()
                        .map_err(|_| CallError::new("minting right is not an address"))?;
                    self.minters.insert(asset, Address(c));
                }
            }
            self.written_minters.insert(asset);
        }
        let is_held_asset =
            |k: &[u8]| k.len() == HELD_ASSET_KEY_LEN && k.starts_with(HELD_ASSET_KEY);
        for (key, value) in changes.iter().filter(|(k, _)| is_held_asset(k)) {
            let asset = AssetId::new(u64::from_le_bytes(key[9..].try_into().expect("8 bytes")))
                .ok_or_else(|| CallError::new("held amount of a malformed asset"))?;
            match value {
                None => {
                    self.held_assets.remove(&asset);
                }
                Some(v) => {
                    let n = u64::from_le_bytes(
                        v.as_slice()
                            .try_into()
                            .map_err(|_| CallError::new("held asset item is not 8 bytes"))?,
                    );
                    self.held_assets.insert(asset, n);
                }
            }
            self.written_held_assets.insert(asset);
        }
        let is_contract =
            |k: &[u8]| !is_content(k) && k != HELD_KEY && !is_right(k) && !is_held_asset(k);
        let mut pending = Vec::new();
        for (key, value) in changes.iter().filter(|(k, _)| is_contract(k)) {
            let address = Address(
                key.as_slice()
                    .try_into()
                    .map_err(|_| CallError::new("contract item key is not an address"))?,
            );
            match value {
                None => {
                    self.contracts.remove(&address);
                }
                Some(v) => pending.push((address, v)),
            }
            self.written.insert(address);
        }
        // A contract that imports compiles against the contracts it imports, which may come
        // later in the same change set: decode what can be, until nothing more can.
        while !pending.is_empty() {
            let before = pending.len();
            let mut left = Vec::new();
            let mut last = String::new();
            for (address, v) in pending {
                match self.decode_item(address, v, self.contracts.get(&address)) {
                    Ok(d) => {
                        self.contracts.insert(address, d);
                    }
                    Err(e) => {
                        last = e;
                        left.push((address, v));
                    }
                }
            }
            if left.len() == before {
                return Err(CallError::new(last));
            }
            pending = left;
        }
        for (key, value) in changes.iter().filter(|(k, _)| is_content(k)) {
            let address = Address(key[..32].try_into().expect("38 or 66 bytes"));
            let var = u16::from_be_bytes(key[32..34].try_into().expect("2 bytes"));
            let id = match key.len() {
                ELEM_KEY_LEN => {
                    ContentId::Index(u32::from_be_bytes(key[34..].try_into().expect("4 bytes")))
                }
                _ => ContentId::Entry(key[34..].try_into().expect("32 bytes")),
            };
            let Some(d) = self.contracts.get_mut(&address) else {
                // The contract itself went in the same change set.
                if value.is_none() {
                    continue;
                }
                return Err(CallError::new(
                    "array element of a contract that does not exist",
                ));
            };
            d.elems.set(var, &id, value.as_deref());
            self.written_elems.insert((address, var, id));
        }
        Ok(())
    }

    /// See [`ContractsSystem::RULES_VERSION`].
    fn rules_version(&self) -> u32 {
        Self::RULES_VERSION
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
