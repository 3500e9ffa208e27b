//! Contract scenarios: the same steps run on a real chain (any shard count and thread count)
//! and on a sequential reference interpreter (one state, one FIFO queue of
//! micro-transactions, no shards, no blocks), and their final states compared.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use rexe_chain::contract::{abi, contract_address, parse_state_key, Target};
use rexe_chain::lang::ast::ScopeKind;
use rexe_chain::lang::layout::ElemKey;
use rexe_chain::lang::value::{self, Value};
use rexe_chain::lang::vm::{self, Context, Host, Linker, RelayDest, TxKind};
use rexe_chain::lang::{compile_with, Imports, Verified};
use rexe_chain::seal::TestSealer;
use rexe_chain::{Address, Chain, ChainConfig, Network, Payload, SignedTx, Signer, Tx};
use serde_json::{json, Value as Json};

use super::*;

/// One step of a scenario. Contracts are numbered in deployment order.
#[derive(Clone, Debug)]
pub enum Step {
    /// Key `who` deploys `source` with `on_deploy` arguments.
    Deploy(usize, &'static str, Json),
    /// Key `who` calls `function` of contract `c`.
    Call(usize, usize, &'static str, Json),
    /// As `Call`, attaching this many satoshis of rxBTC.
    Pay(usize, usize, &'static str, Json, u64),
    /// Key `who` (its deployer) grants contract `c` the right to mint an asset.
    Grant(usize, usize, &'static str),
    /// As `Call`, attaching this much of an asset (by symbol) from the caller's wallet.
    Attach(usize, usize, &'static str, Json, &'static str, u64),
    /// Let everything in flight finish.
    Settle,
}

fn asset(symbol: &str) -> rexe_chain::asset::AssetId {
    rexe_chain::asset::AssetId::from_symbol(symbol).expect("an asset symbol")
}

/// Gas every scenario transaction buys.
pub const GAS: u64 = 2_000_000;

/// A chain driven by signed transactions from deterministic keys.
pub struct Net {
    pub _dir: tempfile::TempDir,
    pub chain: Chain,
    pub keys: Vec<Signer>,
    pub nonces: Vec<u64>,
    pub miner: Address,
    pub contracts: Vec<Address>,
    pub txids: Vec<rexe_chain::Txid>,
    /// State root of every block mined.
    pub roots: Vec<rexe_chain::Hash256>,
}

impl Net {
    pub fn new(order: u8, threads: usize, nkeys: usize) -> Net {
        Self::with_config(order, nkeys, config(threads))
    }

    pub fn with_config(order: u8, nkeys: usize, cfg: ChainConfig) -> Net {
        let keys = keys(nkeys);
        let p = params(order, &keys);
        Self::with_params(p, keys, cfg)
    }

    /// A chain with these parameters, driven by `keys` (which `p` should fund).
    pub fn with_params(p: rexe_chain::ChainParams, keys: Vec<Signer>, cfg: ChainConfig) -> Net {
        let dir = tempfile::tempdir().unwrap();
        let chain = Chain::open(dir.path(), p, cfg, Arc::new(TestSealer)).unwrap();
        Net {
            _dir: dir,
            chain,
            nonces: vec![0; keys.len()],
            keys,
            miner: Signer::from_seed(b"contract-miner").address(),
            contracts: Vec::new(),
            txids: Vec::new(),
            roots: Vec::new(),
        }
    }

    /// Signs and submits `payload` from key `who` with `gas`.
    pub fn send(
        &mut self,
        who: usize,
        payload: Payload,
        gas: u64,
    ) -> Result<rexe_chain::Txid, String> {
        let fee = self.chain.params().min_base_fee;
        let tx = Tx {
            network: Network::Regtest,
            from: self.keys[who].address(),
            nonce: self.nonces[who],
            max_fee: fee,
            max_tip: fee,
            gas_limit: gas,
            expiry_height: 1_000_000,
            payload,
        }
        .sign(&self.keys[who]);
        let id = self.chain.submit_tx(tx).map_err(|e| e.to_string())?;
        self.nonces[who] += 1;
        self.txids.push(id);
        Ok(id)
    }

    pub fn deploy(&mut self, who: usize, source: &str, args: &Json) -> Address {
        let (code, _) = self.chain.contracts().compile(source).unwrap();
        let bytes = match code.functions.iter().find(|f| f.name == "on_deploy") {
            Some(f) => abi::encode_args(&code, f, args).unwrap(),
            None => Vec::new(),
        };
        let addr = contract_address(&self.keys[who].address(), self.nonces[who]);
        self.send(
            who,
            Payload::Deploy {
                source: source.to_string(),
                args: bytes,
            },
            GAS,
        )
        .unwrap();
        self.settle();
        assert!(
            self.chain.contracts().get(&addr).is_some(),
            "deployment failed"
        );
        self.contracts.push(addr);
        addr
    }

    pub fn call(
        &mut self,
        who: usize,
        contract: Address,
        function: &str,
        args: &Json,
    ) -> rexe_chain::Txid {
        self.pay(who, contract, function, args, 0)
    }

    /// [`Net::call`] attaching `sat` of rxBTC.
    pub fn pay(
        &mut self,
        who: usize,
        contract: Address,
        function: &str,
        args: &Json,
        sat: u64,
    ) -> rexe_chain::Txid {
        let none = rexe_chain::asset::Assets::new();
        self.call_with(who, contract, function, args, sat, none)
    }

    /// [`Net::call`] attaching `n` of asset `symbol`.
    pub fn attach(
        &mut self,
        who: usize,
        contract: Address,
        function: &str,
        args: &Json,
        symbol: &str,
        n: u64,
    ) -> rexe_chain::Txid {
        let assets = rexe_chain::asset::Assets::from_pairs(vec![(asset(symbol), n)]).unwrap();
        self.call_with(who, contract, function, args, 0, assets)
    }

    fn call_with(
        &mut self,
        who: usize,
        contract: Address,
        function: &str,
        args: &Json,
        sat: u64,
        assets: rexe_chain::asset::Assets,
    ) -> rexe_chain::Txid {
        let d = self.chain.contracts().get(&contract).unwrap().clone();
        let (_, f) = d.code.function(function).unwrap();
        let bytes = abi::encode_args(&d.code, f, args).unwrap();
        self.send(
            who,
            Payload::ContractCall {
                assets,
                contract,
                function: function.to_string(),
                args: bytes,
                value: rexe_chain::Amount::from_sat(sat),
            },
            GAS,
        )
        .unwrap()
    }

    /// Key `who` grants `contract` the right to mint `symbol`.
    pub fn grant(&mut self, who: usize, contract: Address, symbol: &str) -> rexe_chain::Txid {
        let data = rexe_chain::contract::MintRight {
            asset: asset(symbol),
            contract,
        }
        .call_data();
        self.send(
            who,
            Payload::Call {
                contract: rexe_chain::system::SystemId::CONTRACTS,
                value: rexe_chain::Amount::ZERO,
                data,
            },
            GAS,
        )
        .unwrap()
    }

    pub fn mine(&mut self) {
        let b = mine(&mut self.chain, self.miner);
        self.roots.push(b.header.state_root);
        assert_supply(&mut self.chain);
    }

    /// Mines until the mempool is empty and no relay is in flight.
    pub fn settle(&mut self) {
        for _ in 0..64 {
            let busy = !self.chain.mempool().is_empty()
                || self.chain.inbound().iter().any(|v| !v.is_empty())
                || !self.chain.global_inbound().is_empty();
            if !busy {
                return;
            }
            self.mine();
        }
        panic!("scenario did not settle in 64 blocks");
    }

    pub fn run(&mut self, steps: &[Step]) {
        for s in steps {
            match s {
                Step::Deploy(who, src, args) => {
                    self.deploy(*who, src, args);
                }
                Step::Call(who, c, f, args) => {
                    let addr = self.contracts[*c];
                    self.call(*who, addr, f, args);
                }
                Step::Pay(who, c, f, args, sat) => {
                    let addr = self.contracts[*c];
                    self.pay(*who, addr, f, args, *sat);
                }
                Step::Grant(who, c, symbol) => {
                    let addr = self.contracts[*c];
                    self.grant(*who, addr, symbol);
                }
                Step::Attach(who, c, f, args, symbol, n) => {
                    let addr = self.contracts[*c];
                    self.attach(*who, addr, f, args, symbol, *n);
                }
                Step::Settle => self.settle(),
            }
        }
        self.settle();
    }

    /// Every contract's global state and every non-shard row, as JSON keyed by
    /// `contract/target` (shard rows depend on the shard count by design).
    pub fn state(&mut self) -> BTreeMap<String, Json> {
        let hrp = "trx";
        let mut out = BTreeMap::new();
        let label = |c: &Address| match self.contracts.iter().position(|x| x == c) {
            Some(i) => i.to_string(),
            None => value::address_to_string(&c.0, hrp),
        };
        let mut created = Vec::new();
        for d in self.chain.contracts().iter() {
            if d.origin.is_some() {
                created.push(value::address_to_string(&d.address.0, hrp));
            }
            out.insert(
                format!("{}/@global", label(&d.address)),
                self.chain.contracts().global_json(&d.address, hrp).unwrap(),
            );
        }
        for (k, _) in self.chain.all_contract_state().unwrap() {
            // Element rows of stored arrays are read with their scope's row.
            let Some((c, target)) = parse_state_key(&k) else {
                let tag = k.as_bytes()[32];
                assert!(
                    tag == rexe_chain::contract::elems::ELEM_TAG
                        || tag == rexe_chain::contract::elems::ENTRY_TAG
                );
                continue;
            };
            if matches!(target, Target::Shard(_)) {
                continue;
            }
            out.insert(
                format!("{}/{}", label(&c), serde_json::to_string(&target).unwrap()),
                self.chain.contract_state(&c, &target).unwrap().unwrap(),
            );
        }
        for (i, k) in self.keys.iter().enumerate() {
            for (a, n) in self.chain.asset_balances(&k.address()).unwrap() {
                out.insert(format!("wallet/{i}/{a}"), json!(n));
            }
        }
        rename_created(out, &created)
    }
}

/// `state` with the contracts that contracts deployed (`deploy`, their addresses in
/// `created`) renamed `new#0`, `new#1`, … in the order a walk of the state first meets
/// them: the scenario's own contracts' rows first (in key order), then each renamed
/// contract's. Their addresses come from the blocks that made them, so they differ with
/// the shard count and in the sequential run; what refers to what does not.
fn rename_created(state: BTreeMap<String, Json>, created: &[String]) -> BTreeMap<String, Json> {
    fn strings<'j>(v: &'j Json, out: &mut Vec<&'j str>) {
        match v {
            Json::String(s) => out.push(s),
            Json::Array(a) => a.iter().for_each(|x| strings(x, out)),
            Json::Object(m) => m.values().for_each(|x| strings(x, out)),
            _ => {}
        }
    }
    fn rename(v: &Json, names: &BTreeMap<String, String>) -> Json {
        match v {
            Json::String(s) => Json::String(names.get(s).cloned().unwrap_or_else(|| s.clone())),
            Json::Array(a) => Json::Array(a.iter().map(|x| rename(x, names)).collect()),
            Json::Object(m) => Json::Object(
                m.iter()
                    .map(|(k, x)| {
                        (
                            names.get(k).cloned().unwrap_or_else(|| k.clone()),
                            rename(x, names),
                        )
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    let owner = |k: &str| k.split('/').next().unwrap_or_default().to_string();
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut walk: Vec<String> = state
        .keys()
        .map(|k| owner(k))
        .filter(|o| !created.contains(o))
        .collect();
    walk.dedup();
    let mut i = 0;
    while i < walk.len() {
        let prefix = format!("{}/", walk[i]);
        for (_, v) in state
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
        {
            let mut found = Vec::new();
            strings(v, &mut found);
            for s in found {
                if created.iter().any(|c| c == s) && !names.contains_key(s) {
                    names.insert(s.to_string(), format!("new#{}", names.len()));
                    walk.push(s.to_string());
                }
            }
        }
        i += 1;
    }
    for c in created {
        assert!(
            names.contains_key(c),
            "a deployed contract no state refers to: {c}"
        );
    }
    state
        .iter()
        .map(|(k, v)| {
            let (o, rest) = k.split_once('/').unwrap_or((k, ""));
            let o = names.get(o).cloned().unwrap_or_else(|| o.to_string());
            (format!("{o}/{rest}"), rename(v, &names))
        })
        .collect()
}

/// The sequential interpretation: no shards, no blocks; each transaction's micro-
/// transaction runs, then every relay in emission order (FIFO) until none is left.
pub struct Sequential {
    keys: Vec<Address>,
    nonces: Vec<u64>,
    /// Every contract: the scenario's, and those contracts deployed, in order.
    contracts: Vec<SeqContract>,
    /// Where the scenario's own contracts (by deployment step) are in `contracts`.
    top: Vec<usize>,
    /// Micro-transactions run so far (what makes deployed contracts' addresses unique).
    micro: u64,
    rows: BTreeMap<(usize, Target), Vec<u8>>,
    /// Element rows of stored arrays: (contract, target, variable, index).
    elems: Elems,
    /// Who may mint each asset (contract index).
    minters: BTreeMap<u64, usize>,
    /// Asset wallets: (address, asset id) → amount.
    wallets: BTreeMap<(Address, u64), u64>,
}

type Elems = BTreeMap<(usize, Target, u16, ElemKey), Vec<u8>>;

/// Deployed contracts of the sequential interpreter: address, code, `@global` row.
struct Deployed<'a>(&'a [SeqContract]);

/// A contract of the sequential interpreter: address, code, `@global` row, and the named
/// contract it was deployed from (`deploy`).
type SeqContract = (Address, Arc<Verified>, Vec<Value>, Option<[u8; 32]>);

impl Deployed<'_> {
    fn index(&self, a: &[u8; 32]) -> usize {
        self.0
            .iter()
            .position(|(x, _, _, _)| x.0 == *a)
            .expect("a deployed contract")
    }
}

impl Linker for Deployed<'_> {
    fn contract(&self, a: &[u8; 32]) -> Option<(&Verified, &[Value])> {
        self.0
            .iter()
            .find(|(x, _, _, _)| x.0 == *a)
            .map(|(_, c, g, _)| (&**c, g.as_slice()))
    }
    fn origin(&self, a: &[u8; 32]) -> Option<[u8; 32]> {
        self.0
            .iter()
            .find(|(x, _, _, _)| x.0 == *a)
            .and_then(|c| c.3)
    }
}

impl Imports for Deployed<'_> {
    fn resolve(
        &self,
        _: usize,
        _: Option<&str>,
        name: &str,
    ) -> Result<([u8; 32], Arc<Verified>), String> {
        self.0
            .iter()
            .find(|(_, c, _, _)| c.name == name)
            .map(|(a, c, _, _)| (a.0, c.clone()))
            .ok_or_else(|| format!("no contract `{name}`"))
    }
    fn code(&self, a: &[u8; 32]) -> Option<Arc<Verified>> {
        self.contract(a).map(|_| self.0[self.index(a)].1.clone())
    }
}

struct SeqHost<'a> {
    rows: &'a BTreeMap<(usize, Target), Vec<u8>>,
    elems: &'a Elems,
    contracts: &'a Deployed<'a>,
    own: Target,
    minters: &'a BTreeMap<u64, usize>,
    /// The running micro-transaction's number.
    micro: u64,
}

impl SeqHost<'_> {
    fn target(&self, scope: ScopeKind) -> Target {
        match scope {
            ScopeKind::Shard => Target::Shard(rexe_chain::ShardId(0)),
            ScopeKind::Global => Target::Global,
            _ => self.own.clone(),
        }
    }
}

impl Host for SeqHost<'_> {
    fn read_row(&mut self, c: &[u8; 32], scope: ScopeKind) -> Result<Option<Vec<u8>>, String> {
        let c = self.contracts.index(c);
        Ok(self.rows.get(&(c, self.target(scope))).cloned())
    }
    fn read_elem(
        &mut self,
        c: &[u8; 32],
        scope: ScopeKind,
        var: u16,
        key: &ElemKey,
    ) -> Result<Option<Vec<u8>>, String> {
        let c = self.contracts.index(c);
        let k = (c, self.target(scope), var, key.clone());
        Ok(self.elems.get(&k).cloned())
    }
    fn is_contract(&self, a: &[u8; 32]) -> bool {
        self.contracts.0.iter().any(|(x, _, _, _)| x.0 == *a)
    }
    fn deploy_address(&mut self, creator: &[u8; 32], k: u32) -> Result<[u8; 32], String> {
        if self.own != Target::Global {
            return Err("contracts can be deployed only on the global lane".into());
        }
        let mut b = Vec::with_capacity(44);
        b.extend_from_slice(&self.micro.to_le_bytes());
        b.extend_from_slice(creator);
        b.extend_from_slice(&k.to_le_bytes());
        Ok(rexe_chain::hash::tagged_hash("test/sequential-deploy", &b).0)
    }
    fn may_mint(&self, contract: &[u8; 32], id: u64) -> bool {
        self.minters
            .get(&id)
            .is_some_and(|c| self.contracts.0[*c].0 .0 == *contract)
    }
}

struct Micro {
    c: usize,
    func: u16,
    target: Target,
    args: Vec<Value>,
    sender: Address,
    kind: TxKind,
    /// rxBTC a transaction attached (its own call only).
    value: u64,
    /// Other assets attached (a transaction's own call) or carried (a relay).
    assets: Vec<(u64, u64)>,
}

impl Sequential {
    pub fn new(nkeys: usize) -> Self {
        Sequential {
            keys: keys(nkeys).iter().map(Signer::address).collect(),
            nonces: vec![0; nkeys],
            contracts: Vec::new(),
            top: Vec::new(),
            micro: 0,
            rows: BTreeMap::new(),
            elems: BTreeMap::new(),
            minters: BTreeMap::new(),
            wallets: BTreeMap::new(),
        }
    }

    fn credit(&mut self, to: Address, assets: &[(u64, u64)]) {
        for (id, n) in assets {
            *self.wallets.entry((to, *id)).or_default() += n;
        }
    }

    fn ctx(&self, m: &Micro) -> Context {
        Context {
            supplied_assets: if m.kind == TxKind::Normal {
                m.assets.clone()
            } else {
                Vec::new()
            },
            kind: m.kind,
            self_address: match &m.target {
                Target::Address(a) => a.0,
                _ => self.contracts[m.c].0 .0,
            },
            sender: m.sender.0,
            signers: vec![m.sender.0],
            initiator: m.sender.0,
            tx_timestamp: 0,
            origin_shard: 0,
            shard_order: 0,
            height: 0,
            shard_index: 0,
            timestamp: 0,
            miner: [0; 32],
            random_seed: [0; 32],
            hrp: "trx",
            supplied: m.value,
        }
    }

    fn run_queue(&mut self, first: Micro) {
        let mut q = VecDeque::from([first]);
        while let Some(m) = q.pop_front() {
            let code = self.contracts[m.c].1.clone();
            let ctx = self.ctx(&m);
            let contracts = Deployed(&self.contracts);
            let mut host = SeqHost {
                rows: &self.rows,
                elems: &self.elems,
                contracts: &contracts,
                own: m.target.clone(),
                minters: &self.minters,
                micro: self.micro,
            };
            self.micro += 1;
            let out = vm::execute(
                vm::Call {
                    contract: self.contracts[m.c].0 .0,
                    code: &code,
                    func: m.func,
                    args: m.args.clone(),
                    ctx: &ctx,
                    gas_limit: u64::MAX / 4,
                    global: &self.contracts[m.c].2,
                    global_writable: m.target == Target::Global,
                    linker: &contracts,
                },
                &mut host,
            );
            if out.result.is_err() {
                // Assets go back: to the sender for its own call, to a relay's target.
                let to = match (&m.kind, &m.target) {
                    (TxKind::Normal, _) => Some(m.sender),
                    (_, Target::Address(a)) => Some(*a),
                    _ => None,
                };
                if let Some(to) = to {
                    self.credit(to, &m.assets);
                }
                continue;
            }
            let owner = Address(ctx.self_address);
            let deposits: Vec<(u64, u64)> = out
                .tokens
                .assets
                .iter()
                .map(|(id, f)| (*id, f.deposited))
                .collect();
            self.credit(owner, &deposits);
            // Contracts it deployed, with fresh state (their writes are among its calls).
            for n in &out.created {
                let origin = Deployed(&self.contracts).index(&n.origin);
                let code = self.contracts[origin].1.clone();
                let global = vm::default_row(&code, ScopeKind::Global);
                self.contracts
                    .push((Address(n.address), code, global, Some(n.origin)));
            }
            let mut all = vec![(m.c, out.writes, out.global_writes, out.elem_writes)];
            for o in out.calls {
                let c = Deployed(&self.contracts).index(&o.contract);
                all.push((c, o.writes, o.global_writes, o.elem_writes));
            }
            for (c, writes, globals, elems) in all {
                self.apply(&m.target, c, writes, globals, elems);
            }
            for r in out.relays {
                let c = match r.contract {
                    Some(a) => Deployed(&self.contracts).index(&a),
                    None => m.c,
                };
                let code = &self.contracts[c].1;
                let f = &code.functions[r.func as usize];
                let args = value::decode_tuple(&r.args, &code.param_types(f), &code.table).unwrap();
                let target = match r.to {
                    RelayDest::Address(a) => Target::Address(Address(a)),
                    RelayDest::Uint(s, k) => Target::Uint(s, k),
                    RelayDest::Shards => Target::Shard(rexe_chain::ShardId(0)),
                    RelayDest::Global => Target::Global,
                    RelayDest::Next => m.target.clone(),
                };
                q.push_back(Micro {
                    c,
                    func: r.func,
                    target,
                    args,
                    sender: m.sender,
                    kind: TxKind::Relay,
                    value: 0,
                    assets: r.assets.clone(),
                });
            }
        }
    }

    /// Applies what a call changed in contract `c`'s state.
    fn apply(
        &mut self,
        own: &Target,
        c: usize,
        writes: vm::RowWrites,
        globals: Vec<(u16, Value)>,
        elems: Vec<rexe_chain::lang::layout::ElemWrite>,
    ) {
        let m_target = own;
        {
            for (scope, row) in writes {
                let t = if scope == ScopeKind::Shard {
                    Target::Shard(rexe_chain::ShardId(0))
                } else {
                    m_target.clone()
                };
                match row {
                    Some(r) => {
                        self.rows.insert((c, t), r);
                    }
                    None => {
                        self.rows.remove(&(c, t));
                    }
                }
            }
            for (i, v) in globals {
                self.contracts[c].2[i as usize] = v;
            }
            for w in elems {
                let t = match w.scope {
                    ScopeKind::Shard => Target::Shard(rexe_chain::ShardId(0)),
                    ScopeKind::Global => Target::Global,
                    _ => m_target.clone(),
                };
                let k = (c, t, w.var, w.key);
                match w.value {
                    Some(b) => {
                        self.elems.insert(k, b);
                    }
                    None => {
                        self.elems.remove(&k);
                    }
                }
            }
        }
    }

    pub fn run(&mut self, steps: &[Step]) {
        for s in steps {
            match s {
                Step::Deploy(who, src, args) => {
                    let code = Arc::new(compile_with(src, &Deployed(&self.contracts)).unwrap());
                    let addr = contract_address(&self.keys[*who], self.nonces[*who]);
                    self.nonces[*who] += 1;
                    let global = vm::default_row(&code, ScopeKind::Global);
                    self.top.push(self.contracts.len());
                    self.contracts.push((addr, code.clone(), global, None));
                    if let Some(fi) = code.functions.iter().position(|f| f.name == "on_deploy") {
                        let f = &code.functions[fi];
                        let bytes = abi::encode_args(&code, f, args).unwrap();
                        let args =
                            value::decode_tuple(&bytes, &code.param_types(f), &code.table).unwrap();
                        self.run_queue(Micro {
                            c: self.contracts.len() - 1,
                            func: fi as u16,
                            target: Target::Global,
                            args,
                            sender: self.keys[*who],
                            kind: TxKind::System,
                            value: 0,
                            assets: Vec::new(),
                        });
                    }
                }
                Step::Grant(who, c, symbol) => {
                    self.nonces[*who] += 1;
                    self.minters
                        .entry(asset(symbol).id())
                        .or_insert(self.top[*c]);
                }
                Step::Call(who, c, fname, args)
                | Step::Pay(who, c, fname, args, _)
                | Step::Attach(who, c, fname, args, ..) => {
                    let value = match s {
                        Step::Pay(.., sat) => *sat,
                        _ => 0,
                    };
                    let assets = match s {
                        Step::Attach(.., symbol, n) => vec![(asset(symbol).id(), *n)],
                        _ => Vec::new(),
                    };
                    // Taken from the wallet (the scenarios attach only what is there).
                    for (id, n) in &assets {
                        let w = self.wallets.entry((self.keys[*who], *id)).or_default();
                        *w = w
                            .checked_sub(*n)
                            .expect("a scenario attaches what it holds");
                    }
                    self.nonces[*who] += 1;
                    let c = self.top[*c];
                    let code = self.contracts[c].1.clone();
                    let (fi, f) = code.function(fname).unwrap();
                    let bytes = abi::encode_args(&code, f, args).unwrap();
                    let args =
                        value::decode_tuple(&bytes, &code.param_types(f), &code.table).unwrap();
                    let target = match f.scope {
                        ScopeKind::Global => Target::Global,
                        ScopeKind::Shard => Target::Shard(rexe_chain::ShardId(0)),
                        _ => Target::Address(self.keys[*who]),
                    };
                    self.run_queue(Micro {
                        c,
                        func: fi,
                        target,
                        args,
                        sender: self.keys[*who],
                        kind: TxKind::Normal,
                        value,
                        assets,
                    });
                }
                Step::Settle => {}
            }
        }
    }

    /// Same shape as [`Net::state`].
    pub fn state(&self) -> BTreeMap<String, Json> {
        let mut out = BTreeMap::new();
        let label = |i: usize| match self.top.iter().position(|t| *t == i) {
            Some(step) => step.to_string(),
            None => value::address_to_string(&self.contracts[i].0 .0, "trx"),
        };
        let created: Vec<String> = (0..self.contracts.len())
            .filter(|i| !self.top.contains(i))
            .map(label)
            .collect();
        for (i, (_, code, global, _)) in self.contracts.iter().enumerate() {
            let row = vm::encode_row(code, ScopeKind::Global, global).unwrap();
            let mut elem = |var: u16, j: &ElemKey| {
                Ok(self
                    .elems
                    .get(&(i, Target::Global, var, j.clone()))
                    .cloned())
            };
            out.insert(
                format!("{}/@global", label(i)),
                abi::row_json(code, ScopeKind::Global, row.as_deref(), &mut elem, "trx").unwrap(),
            );
        }
        for ((c, t), v) in &self.rows {
            if matches!(t, Target::Shard(_)) {
                continue;
            }
            let code = &self.contracts[*c].1;
            let mut elem = |var: u16, j: &ElemKey| {
                Ok(self.elems.get(&(*c, t.clone(), var, j.clone())).cloned())
            };
            out.insert(
                format!("{}/{}", label(*c), serde_json::to_string(t).unwrap()),
                abi::row_json(code, t.scope(), Some(v), &mut elem, "trx").unwrap(),
            );
        }
        for ((a, id), n) in &self.wallets {
            if *n > 0 {
                let i = self.keys.iter().position(|k| k == a).expect("a key");
                let symbol = rexe_chain::lang::token::id_to_symbol(*id).unwrap();
                out.insert(format!("wallet/{i}/{symbol}"), json!(n));
            }
        }
        rename_created(out, &created)
    }
}

/// The source of an example contract.
pub fn example(name: &str) -> &'static str {
    match name {
        "token" => include_str!("../../../examples/contracts/token.prd"),
        "ballot" => include_str!("../../../examples/contracts/ballot.prd"),
        "counter" => include_str!("../../../examples/contracts/counter.prd"),
        "amm" => include_str!("../../../examples/contracts/amm.prd"),
        "pixels" => include_str!("../../../examples/contracts/pixels.prd"),
        "guestbook" => include_str!("../../../examples/contracts/guestbook.prd"),
        "vault" => include_str!("../../../examples/contracts/vault.prd"),
        "bank" => include_str!("../../../examples/contracts/bank.prd"),
        "shop" => include_str!("../../../examples/contracts/shop.prd"),
        "minter" => include_str!("../../../examples/contracts/minter.prd"),
        "poll" => include_str!("../../../examples/contracts/poll.prd"),
        "polls" => include_str!("../../../examples/contracts/polls.prd"),
        other => panic!("no example {other}"),
    }
}

/// An address of key `i` as JSON.
pub fn addr_json(i: usize) -> Json {
    json!(keys(i + 1)[i].address().to_string())
}

/// A contract call transaction built by hand (for tests of admission and gas).
pub fn call_tx(
    key: &Signer,
    nonce: u64,
    contract: Address,
    function: &str,
    args: Vec<u8>,
    gas: u64,
    fee: u64,
) -> SignedTx {
    Tx {
        network: Network::Regtest,
        from: key.address(),
        nonce,
        max_fee: rexe_chain::fee::GasPrice::from_msat(fee),
        max_tip: rexe_chain::fee::GasPrice::from_msat(fee),
        gas_limit: gas,
        expiry_height: 1_000_000,
        payload: Payload::ContractCall {
            assets: Default::default(),
            contract,
            function: function.to_string(),
            args,
            value: rexe_chain::Amount::ZERO,
        },
    }
    .sign(key)
}

/// A contract whose `pass` relays a call to another address's shard (`spend` runs there,
/// `burn` only spends gas).
pub const SPENDER: &str = r#"
contract Spender {
    @address uint64 n;
    @address array<uint64> log;
    @address function spend(uint32 rounds) export {
        n += 1u64;
        for (uint32 i = 0u; i < rounds; i++) {
            log.push(uint64(i));
        }
    }
    @address function burn(uint32 rounds) export {
        uint64 x = 0u64;
        for (uint32 i = 0u; i < rounds; i++) {
            x += uint64(i);
        }
    }
    @address function bool pass(address to, uint32 rounds) export {
        relay@to spend(rounds);
        return true;
    }
}
"#;
