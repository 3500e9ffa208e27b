//! The contract registry and every contract's global state, kept on the global lane as a
//! system contract: snapshotted, committed in `state_root` and restored on reorgs like the
//! peg. Shards read the registry as it was after the previous block.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::address::Address;
use crate::amount::Amount;
use crate::encode::{write_compact_size, Decode, Encode, Reader};
use crate::lang::ast::ScopeKind;
use crate::lang::value::{self, Value};
use crate::lang::{compile, vm, Verified};
use crate::system::{Call, CallError, Credit, GlobalCtx, SystemContract, SystemId};

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
    /// Its `@global` state variables, in declaration order.
    pub global: Arc<Vec<Value>>,
}

impl Deployed {
    /// The contract's name in its source.
    pub fn name(&self) -> &str {
        &self.code.name
    }
}

/// All deployed contracts (the system contract [`SystemId::CONTRACTS`]).
#[derive(Clone, Debug, Default)]
pub struct ContractsSystem {
    contracts: BTreeMap<Address, Deployed>,
}

impl ContractsSystem {
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

    /// How many.
    pub fn len(&self) -> usize {
        self.contracts.len()
    }

    /// Whether none are deployed.
    pub fn is_empty(&self) -> bool {
        self.contracts.is_empty()
    }

    pub(super) fn insert(&mut self, d: Deployed) {
        self.contracts.insert(d.address, d);
    }

    pub(super) fn get_mut(&mut self, addr: &Address) -> Option<&mut Deployed> {
        self.contracts.get_mut(addr)
    }

    /// A contract's global state as JSON (`{name: value}`), with addresses in `hrp`.
    pub fn global_json(&self, addr: &Address, hrp: &str) -> Option<serde_json::Value> {
        let d = self.get(addr)?;
        let vars = d.code.state_of(ScopeKind::Global);
        Some(serde_json::Value::Object(
            vars.iter()
                .zip(d.global.iter())
                .map(|((n, t), v)| {
                    (
                        n.clone(),
                        value::to_json(v, d.code.ty(*t), &d.code.table, hrp),
                    )
                })
                .collect(),
        ))
    }

    /// Replaces a contract's global state outside any block. Only for simulations: no block
    /// records the change.
    pub fn force_global(&mut self, addr: &Address, vals: Vec<Value>) -> Result<(), String> {
        let d = self.contracts.get_mut(addr).ok_or("no such contract")?;
        vm::encode_row(&d.code, ScopeKind::Global, &vals).map_err(|e| e.to_string())?;
        d.global = Arc::new(vals);
        Ok(())
    }

    fn encode_state(&self) -> Vec<u8> {
        let mut out = Vec::new();
        write_compact_size(&mut out, self.contracts.len() as u64);
        for d in self.contracts.values() {
            d.address.0.encode(&mut out);
            d.deployer.0.encode(&mut out);
            d.height.encode(&mut out);
            d.source.as_bytes().to_vec().encode(&mut out);
            // Global state is always well-typed (the VM checks every write into it).
            let row = vm::encode_row(&d.code, ScopeKind::Global, &d.global)
                .ok()
                .flatten()
                .unwrap_or_default();
            row.encode(&mut out);
        }
        out
    }

    fn decode_state(bytes: &[u8]) -> Result<Self, String> {
        let mut r = Reader::new(bytes);
        let n = r.length(32 + 32 + 8 + 2).map_err(|e| e.to_string())?;
        let mut contracts = BTreeMap::new();
        for _ in 0..n {
            let address = Address(r.array().map_err(|e| e.to_string())?);
            let deployer = Address(r.array().map_err(|e| e.to_string())?);
            let height = u64::decode(&mut r).map_err(|e| e.to_string())?;
            let source = String::from_utf8(Vec::<u8>::decode(&mut r).map_err(|e| e.to_string())?)
                .map_err(|_| "contract source is not UTF-8".to_string())?;
            let row = Vec::<u8>::decode(&mut r).map_err(|e| e.to_string())?;
            let code =
                compile(&source).map_err(|e| format!("stored contract does not compile: {e}"))?;
            let global = if row.is_empty() {
                vm::default_row(&code, ScopeKind::Global)
            } else {
                vm::decode_row(&code, ScopeKind::Global, &row).map_err(|e| e.to_string())?
            };
            contracts.insert(
                address,
                Deployed {
                    address,
                    deployer,
                    height,
                    source: source.into(),
                    code: Arc::new(code),
                    global: Arc::new(global),
                },
            );
        }
        r.finish().map_err(|e| e.to_string())?;
        Ok(ContractsSystem { contracts })
    }
}

impl SystemContract for ContractsSystem {
    fn id(&self) -> SystemId {
        SystemId::CONTRACTS
    }

    fn clone_box(&self) -> Box<dyn SystemContract> {
        Box::new(self.clone())
    }

    fn precheck(&self, _: &GlobalCtx, _: &Call<'_>) -> Result<(), CallError> {
        Err(CallError::new(
            "contracts are deployed and called with Deploy and ContractCall payloads",
        ))
    }

    fn call(&mut self, _: &GlobalCtx, _: &Call<'_>) -> Result<Vec<Credit>, CallError> {
        Err(CallError::new(
            "contracts are deployed and called with Deploy and ContractCall payloads",
        ))
    }

    fn has_due_work(&self, _: &GlobalCtx) -> bool {
        false
    }

    fn end_block(&mut self, _: &GlobalCtx) -> Vec<Credit> {
        Vec::new()
    }

    fn held(&self) -> Amount {
        Amount::ZERO
    }

    fn snapshot(&self) -> Vec<u8> {
        self.encode_state()
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), CallError> {
        *self = Self::decode_state(bytes).map_err(CallError::new)?;
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> Option<&mut dyn Any> {
        Some(self)
    }
}
