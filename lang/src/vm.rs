//! The interpreter: runs one micro-transaction (a call of one function on one scope
//! target) of a verified module with a gas limit.
//!
//! State is reached through three frames: the target's own row (its scope), the current
//! shard's row and the contract's global state. Rows are loaded on first use from the
//! [`Host`] and decoded; writes stay in the frames. When the entry function returns, the
//! changed rows are re-encoded (and charged per byte) and handed back with the relays the
//! call emitted; on any trap (out of gas, overflow, division by zero, bad index, failed
//! assertion) nothing is handed back. The machine is deterministic: no floats, no clocks,
//! ordered maps only, and randomness only from the seed the block gives it.

use std::collections::{BTreeMap, BTreeSet};

use bitcoin::hashes::{sha256, Hash as _};
use bitcoin::hex::DisplayHex;
use thiserror::Error;

use super::ast::ScopeKind;
use super::bytecode::{Arith, CmpOp, Conv, CtxFn, FnKind, Instr, Method, RelayTo, Root, Step};
use super::gas;
use super::layout::{self, ElemKey, ElemWrite};
use super::num::{Int, NumTy};
use super::token::Holdings;
use super::types::Type;
use super::value::{self, default_value, has_type, Value, MAX_BYTES_LEN};
use super::verify::Verified;

/// Deepest call nesting.
pub const MAX_CALL_DEPTH: usize = 64;
/// Most relays one micro-transaction may emit, unless its host says otherwise
/// ([`Host::max_relays`]).
pub const MAX_RELAYS: usize = 4096;
/// Longest array (`set_length` beyond it aborts).
pub const MAX_ARRAY_LEN: u64 = 1 << 24;

/// Why a micro-transaction stopped.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Trap {
    /// The gas ran out.
    #[error("out of gas")]
    OutOfGas,
    /// An integer result outside its type.
    #[error("integer overflow")]
    Overflow,
    /// Division or remainder by zero.
    #[error("division by zero")]
    DivisionByZero,
    /// Array index out of range, or `pop` of an empty array.
    #[error("index out of range")]
    BadIndex,
    /// `__debug.assert` failed.
    #[error("assertion failed{}", .0.as_ref().map(|m| format!(": {m}")).unwrap_or_default())]
    Assert(Option<String>),
    /// A conversion whose input has no result (bad address text, out-of-range integer).
    #[error("conversion failed: {0}")]
    Conversion(String),
    /// A size limit (string length, array length, relays per call, call depth).
    #[error("limit exceeded: {0}")]
    Limit(&'static str),
    /// A write to state this call may only read (global state outside the global lane).
    #[error("write to read-only state")]
    ReadOnly,
    /// A value of the wrong type (only reachable with hand-made bytecode).
    #[error("type error: {0}")]
    Type(&'static str),
    /// A function that must return a value ended without one.
    #[error("function ended without returning a value")]
    MissingReturn,
    /// A token rule: value would be made or lost, a deposit outside an address, a relay
    /// carrying tokens to something other than an address.
    #[error("token: {0}")]
    Token(String),
    /// A call to another contract that cannot be made: no contract there, no such public
    /// function, or one that does not implement the interface called through.
    #[error("cross-contract call: {0}")]
    Call(String),
    /// The host failed (storage). Not the contract's fault: the block cannot be executed.
    #[error("host error: {0}")]
    Host(String),
}

/// How a micro-transaction was started (`__transaction.get_type()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxKind {
    /// By a signed transaction.
    Normal = 0,
    /// By a relay.
    Relay = 1,
    /// By the system (`on_deploy`).
    System = 2,
}

/// The transaction and block context of a micro-transaction.
#[derive(Clone, Debug)]
pub struct Context {
    /// How it started.
    pub kind: TxKind,
    /// The target address (address scope), else the contract's address.
    pub self_address: [u8; 32],
    /// The signer of the originating transaction.
    pub sender: [u8; 32],
    /// Its signers (empty in relays).
    pub signers: Vec<[u8; 32]>,
    /// Who started the relay chain (the originating transaction's sender).
    pub initiator: [u8; 32],
    /// Time of the block the originating transaction was included in.
    pub tx_timestamp: u64,
    /// Shard that emitted the relay (or runs the transaction).
    pub origin_shard: u32,
    /// Shard order.
    pub shard_order: u32,
    /// Block height.
    pub height: u64,
    /// Shard running this (`u16::MAX` on the global lane).
    pub shard_index: u32,
    /// Block time.
    pub timestamp: u64,
    /// Block payout address.
    pub miner: [u8; 32],
    /// Seed of `get_random_number()` for this micro-transaction.
    pub random_seed: [u8; 32],
    /// bech32m prefix for address text.
    pub hrp: &'static str,
    /// rxBTC (satoshis) the transaction attached to this call (`Normal` calls only): with
    /// `supplied_assets`, what `__transaction.get_supplied_tokens()` returns.
    pub supplied: u64,
    /// Other assets the transaction attached (`Normal` calls only): (asset id, amount), in
    /// the transaction's order, after rxBTC.
    pub supplied_assets: Vec<(u64, u64)>,
}

/// What the VM asks of the chain.
pub trait Host {
    /// The stored state row of contract `contract` of `scope` for this micro-transaction's
    /// target (its own scope) or the current shard (`ScopeKind::Shard`).
    fn read_row(
        &mut self,
        contract: &[u8; 32],
        scope: ScopeKind,
    ) -> Result<Option<Vec<u8>>, String>;
    /// A content row of the stored container `var` of `scope` of contract `contract` (see
    /// [`crate::layout`]), `None` when there is none. `scope` is the call's own scope, the
    /// current shard, or the global lane.
    fn read_elem(
        &mut self,
        contract: &[u8; 32],
        scope: ScopeKind,
        var: u16,
        key: &ElemKey,
    ) -> Result<Option<Vec<u8>>, String>;
    /// Whether `addr` is a deployed contract.
    fn is_contract(&self, addr: &[u8; 32]) -> bool;
    /// Whether `__debug.print` output is wanted.
    fn logging(&self) -> bool {
        false
    }
    /// Most relays one micro-transaction may emit (a chain parameter).
    fn max_relays(&self) -> usize {
        MAX_RELAYS
    }
    /// The address of the `k`th contract this micro-transaction deploys with `deploy`,
    /// created by contract `creator`: unique on the chain. Hosts that cannot deploy (every
    /// host but the global lane's) refuse.
    fn deploy_address(&mut self, creator: &[u8; 32], k: u32) -> Result<[u8; 32], String> {
        let _ = (creator, k);
        Err("contracts can be deployed only on the global lane".into())
    }
    /// Whether contract `contract` holds the right to mint and burn asset `id` (PREDA spec
    /// 5.10: the chain decides). Nobody holds it for rxBTC.
    fn may_mint(&self, contract: &[u8; 32], id: u64) -> bool {
        let _ = (contract, id);
        false
    }
}

/// The deployed contracts a call may call into (PREDA spec 5.7, 5.8).
pub trait Linker {
    /// The code and `@global` row values (see [`crate::layout`]) of the contract at `addr`.
    fn contract(&self, addr: &[u8; 32]) -> Option<(&Verified, &[Value])>;
    /// The named contract the contract at `addr` was deployed from by `deploy` (PREDA spec
    /// 5.9), `None` for a named contract (deployed by a transaction) or no contract.
    fn origin(&self, addr: &[u8; 32]) -> Option<[u8; 32]> {
        let _ = addr;
        None
    }
}

/// No contracts besides the one called.
pub struct NoContracts;

impl Linker for NoContracts {
    fn contract(&self, _: &[u8; 32]) -> Option<(&Verified, &[Value])> {
        None
    }
}

/// A relay the call emitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayOut {
    /// Where it goes.
    pub to: RelayDest,
    /// The contract whose function it calls: `None` for the called contract, else one it
    /// called into.
    pub contract: Option<[u8; 32]>,
    /// Function index in that contract's module.
    pub func: u16,
    /// Encoded arguments.
    pub args: Vec<u8>,
    /// rxBTC (satoshis) in the tokens among the arguments.
    pub value: u64,
    /// Other assets in the tokens among the arguments: (asset id, amount) by id.
    pub assets: Vec<(u64, u64)>,
}

/// Destination of a relay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelayDest {
    /// An address.
    Address([u8; 32]),
    /// An integer scope key (big-endian, the scope's width).
    Uint(ScopeKind, Vec<u8>),
    /// Every shard.
    Shards,
    /// The global lane.
    Global,
    /// This micro-transaction's own target, next block.
    Next,
}

/// Changed rows of a call: own scope and/or shard, `None` to delete.
pub type RowWrites = Vec<(ScopeKind, Option<Vec<u8>>)>;

/// Content rows of one stored container a call changed (`None`: delete the row).
type ContentRows = Vec<(ElemKey, Option<Vec<u8>>)>;

/// Everything a call changed, before it is handed back in an [`Outcome`].
type Commit = (RowWrites, Vec<(u16, Value)>, Vec<ElemWrite>);

/// What a call changed in the state of a contract it called into.
#[derive(Debug, Default)]
pub struct ContractWrites {
    /// The contract.
    pub contract: [u8; 32],
    /// Changed rows: own scope and/or shard, `None` to delete.
    pub writes: RowWrites,
    /// Changed global variables (global lane only).
    pub global_writes: Vec<(u16, Value)>,
    /// Changed content rows of stored containers.
    pub elem_writes: Vec<ElemWrite>,
}

/// The result of a micro-transaction.
#[derive(Debug)]
pub struct Outcome {
    /// The return value, or why it stopped.
    pub result: Result<Option<Value>, Trap>,
    /// Gas consumed (all of it on out-of-gas).
    pub gas_used: u64,
    /// Changed rows: own scope and/or shard, `None` to delete (all defaults).
    pub writes: RowWrites,
    /// Changed global variables (global lane only), as row values (see [`crate::layout`]).
    pub global_writes: Vec<(u16, Value)>,
    /// Changed content rows of stored containers, in every scope.
    pub elem_writes: Vec<ElemWrite>,
    /// What it changed in other contracts it called into, in the order it first called
    /// them (only those it changed).
    pub calls: Vec<ContractWrites>,
    /// Emitted relays.
    pub relays: Vec<RelayOut>,
    /// `__debug.print` lines (when the host wants them).
    pub logs: Vec<String>,
    /// `__event.push` / `__event.notify` records, in order (empty when the call failed).
    pub events: Vec<Event>,
    /// rxBTC moved by the call (all zero when it failed).
    pub tokens: TokenFlow,
    /// Contracts it deployed with `deploy`, in order (empty when it failed). Their state
    /// writes are in [`Outcome::calls`].
    pub created: Vec<NewContract>,
}

/// A contract a call deployed with `deploy` (PREDA spec 5.9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewContract {
    /// Its address ([`Host::deploy_address`]).
    pub address: [u8; 32],
    /// The contract whose function ran `deploy`.
    pub creator: [u8; 32],
    /// The named contract whose code it runs, with fresh state.
    pub origin: [u8; 32],
}

/// The rxBTC (satoshis) a successful call took in and gave out, and the same for every
/// other asset it touched. Every call conserves value, asset by asset: `received` +
/// `minted` = `deposited` + the value of its relays + `burned` + what its contract state
/// holds more than before (negative when it gave out what the state held).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenFlow {
    /// rxBTC supplied by the transaction, or carried by the relay's arguments.
    pub received: u64,
    /// rxBTC moved into the wallet of the address the call ran for (`token.deposit()`).
    pub deposited: u64,
    /// rxBTC carried away by the relays it emitted.
    pub relayed: u64,
    /// Every other asset whose value moved, by id.
    pub assets: Vec<(u64, AssetFlow)>,
}

impl TokenFlow {
    /// How much more rxBTC the contract's state holds after the call.
    pub fn kept(&self) -> i128 {
        i128::from(self.received) - i128::from(self.deposited) - i128::from(self.relayed)
    }
}

/// How one asset other than rxBTC moved in a call (see [`TokenFlow`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AssetFlow {
    /// Supplied by the transaction, or carried by the relay's arguments.
    pub received: u64,
    /// Moved into the wallet of the address the call ran for.
    pub deposited: u64,
    /// Carried away by relays.
    pub relayed: u64,
    /// Made by `__mint`.
    pub minted: u64,
    /// Destroyed by `__burn`.
    pub burned: u64,
}

impl AssetFlow {
    /// How much more of the asset the contracts' state holds after the call.
    pub fn kept(&self) -> i128 {
        i128::from(self.received) + i128::from(self.minted)
            - i128::from(self.deposited)
            - i128::from(self.relayed)
            - i128::from(self.burned)
    }
}

/// An event a call recorded with `__event.push` or `__event.notify`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// `notify` (else `push`).
    pub notify: bool,
    /// The event id the contract gave.
    pub id: u32,
    /// Its data.
    pub data: String,
}

/// Most events one micro-transaction may record.
pub const MAX_EVENTS: usize = 256;

enum Base<'a> {
    Borrowed(&'a [Value]),
    Owned(Vec<Value>),
}

struct Frame<'a> {
    /// Row values (stored arrays hold their length).
    base: Base<'a>,
    modified: Vec<Option<Value>>,
    original: Option<Vec<u8>>,
    writable: bool,
    /// The stored arrays, by variable index (`None` for other variables).
    arrays: Vec<Option<ArrayVar>>,
    /// The stored maps, by variable index (`None` for other variables).
    maps: Vec<Option<MapVar>>,
}

/// A map entry during a call.
struct MapEntry {
    /// Whether it had a row when the call started.
    stored: bool,
    /// Its slot and value now (`None`: absent).
    now: Option<(u32, Value)>,
}

/// A stored map during a call: its entry count, and the entries and key slots the call read
/// or wrote. Invariant: every slot in `len..orig_len` is in `written_slots`.
struct MapVar {
    len: u32,
    orig_len: u32,
    entries: BTreeMap<Vec<u8>, MapEntry>,
    slots: BTreeMap<u32, Vec<u8>>,
    written_entries: BTreeSet<Vec<u8>>,
    written_slots: BTreeSet<u32>,
}

impl MapVar {
    fn new(len: u32) -> Self {
        MapVar {
            len,
            orig_len: len,
            entries: BTreeMap::new(),
            slots: BTreeMap::new(),
            written_entries: BTreeSet::new(),
            written_slots: BTreeSet::new(),
        }
    }

    fn changed(&self) -> bool {
        self.len != self.orig_len
            || !self.written_entries.is_empty()
            || !self.written_slots.is_empty()
    }

    /// The key slot and entry rows this call changed (slots beyond the new count and
    /// erased entries that had rows are deleted).
    fn rows(self, vt: &Type, code: &Verified) -> Result<ContentRows, Trap> {
        let mut rows = Vec::new();
        for slot in &self.written_slots {
            if *slot < self.len {
                let kb = self.slots.get(slot).ok_or(Trap::Type("map slot"))?;
                rows.push((ElemKey::Index(*slot), Some(kb.clone())));
            } else if *slot < self.orig_len {
                rows.push((ElemKey::Index(*slot), None));
            }
        }
        for kb in self.written_entries {
            let e = self.entries.get(&kb).ok_or(Trap::Type("stored entry"))?;
            match &e.now {
                Some((slot, x)) => {
                    if !has_type(x, vt, &code.table) {
                        return Err(Trap::Type("state of the wrong type"));
                    }
                    let b = layout::encode_entry(vt, code, *slot, x)
                        .map_err(|_| Trap::Type("state of the wrong type"))?;
                    rows.push((ElemKey::Key(kb), Some(b)));
                }
                None if e.stored => rows.push((ElemKey::Key(kb), None)),
                None => {}
            }
        }
        Ok(rows)
    }
}

/// Where a place's first step led inside a stored container.
enum StoredAt {
    Elem(ScopeKind, u16, u32),
    Entry(ScopeKind, u16, Vec<u8>),
}

/// Stands in for a value that is not stored (a missing map entry reads as its default).
static ABSENT: Value = Value::Bool(false);

/// A stored array during a call: its length, and the elements the call read or wrote.
/// Invariant: every index in `len..orig_len` is in `written` (its row must go).
struct ArrayVar {
    len: u32,
    orig_len: u32,
    cache: BTreeMap<u32, Value>,
    written: BTreeSet<u32>,
}

impl ArrayVar {
    fn new(len: u32) -> Self {
        ArrayVar {
            len,
            orig_len: len,
            cache: BTreeMap::new(),
            written: BTreeSet::new(),
        }
    }

    fn changed(&self) -> bool {
        self.len != self.orig_len || !self.written.is_empty()
    }

    /// Cuts the array to `n` elements (`n <= len`).
    fn shrink(&mut self, n: u32) {
        for i in n..self.len {
            self.written.insert(i);
            self.cache.remove(&i);
        }
        self.len = n;
    }

    /// The element rows this call changed: written elements below the length (`None` for a
    /// default one), and deletions of the rows the array had beyond it.
    fn rows(self, elem: &Type, code: &Verified) -> Result<ContentRows, Trap> {
        let mut rows = Vec::with_capacity(self.written.len());
        for idx in self.written {
            let value = if idx < self.len {
                let v = self.cache.get(&idx).ok_or(Trap::Type("stored element"))?;
                if !has_type(v, elem, &code.table) {
                    return Err(Trap::Type("state of the wrong type"));
                }
                layout::encode_elem(elem, code, v)
                    .map_err(|_| Trap::Type("state of the wrong type"))?
            } else {
                None
            };
            // An index the array never had before this call has no row to delete.
            if value.is_none() && idx >= self.orig_len {
                continue;
            }
            rows.push((ElemKey::Index(idx), value));
        }
        Ok(rows)
    }

    /// Grows the array to `n` default elements (`n >= len`): only indices this call wrote
    /// can have a value there, and they are reset.
    fn grow(&mut self, n: u32, default: &Value) {
        let reset: Vec<u32> = self.written.range(self.len..n).copied().collect();
        for i in reset {
            self.cache.insert(i, default.clone());
        }
        self.len = n;
    }
}

impl Frame<'_> {
    fn get(&self, i: usize) -> Option<&Value> {
        match self.modified.get(i)? {
            Some(v) => Some(v),
            None => match &self.base {
                Base::Borrowed(b) => b.get(i),
                Base::Owned(b) => b.get(i),
            },
        }
    }

    fn get_mut(&mut self, i: usize) -> Result<&mut Value, Trap> {
        if !self.writable {
            return Err(Trap::ReadOnly);
        }
        let slot = self
            .modified
            .get_mut(i)
            .ok_or(Trap::Type("state variable"))?;
        if slot.is_none() {
            let v = match &mut self.base {
                Base::Borrowed(b) => b.get(i).cloned().ok_or(Trap::Type("state variable"))?,
                // Owned rows are private to this call: move instead of copying.
                Base::Owned(b) => std::mem::replace(
                    b.get_mut(i).ok_or(Trap::Type("state variable"))?,
                    Value::Bool(false),
                ),
            };
            *slot = Some(v);
        }
        Ok(slot.as_mut().expect("just filled"))
    }

    fn dirty(&self) -> bool {
        self.modified.iter().any(Option::is_some)
            || self.arrays.iter().flatten().any(ArrayVar::changed)
            || self.maps.iter().flatten().any(MapVar::changed)
    }
}

struct CallFrame {
    /// Index of its contract in [`Machine::linked`].
    contract: usize,
    func: u16,
    pc: usize,
    locals: usize,
    stack: usize,
}

type Buffers = (Vec<Value>, Vec<Value>, Vec<CallFrame>);

thread_local! {
    /// Operand stacks, locals and call stacks of finished runs, reused by the next ones on
    /// this thread (a micro-transaction is short: allocation would dominate).
    static BUFFERS: std::cell::RefCell<Vec<Buffers>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn take_buffers() -> Buffers {
    BUFFERS.with(|b| b.borrow_mut().pop()).unwrap_or_else(|| {
        (
            Vec::with_capacity(64),
            Vec::with_capacity(64),
            Vec::with_capacity(8),
        )
    })
}

fn return_buffers(mut b: Buffers) {
    b.0.clear();
    b.1.clear();
    b.2.clear();
    // Do not keep what a hostile call blew up.
    if b.0.capacity() > 4096 || b.1.capacity() > 4096 {
        return;
    }
    BUFFERS.with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < 4 {
            p.push(b);
        }
    });
}

/// A contract taking part in a run: the called one (index 0) and those it called into.
struct Linked<'a> {
    address: [u8; 32],
    code: &'a Verified,
    /// Its `@global` row; `None` for a contract this call deployed (default values).
    global: Option<&'a [Value]>,
    /// The named contract it was deployed from ([`Linker::origin`]).
    origin: Option<[u8; 32]>,
}

/// Most contracts one micro-transaction may call into.
pub const MAX_CONTRACTS: usize = 64;

/// The first item inline, the rest in a vector: most runs involve one contract, and then
/// nothing is allocated for its frames.
struct Inline<T> {
    first: T,
    rest: Vec<T>,
}

impl<T> Inline<T> {
    fn new(first: T) -> Self {
        Inline {
            first,
            rest: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        1 + self.rest.len()
    }

    fn push(&mut self, t: T) {
        self.rest.push(t);
    }

    fn iter(&self) -> impl Iterator<Item = &T> {
        std::iter::once(&self.first).chain(&self.rest)
    }

    fn iter_owned(self) -> impl Iterator<Item = T> {
        std::iter::once(self.first).chain(self.rest)
    }
}

impl<T> std::ops::Index<usize> for Inline<T> {
    type Output = T;
    fn index(&self, i: usize) -> &T {
        match i {
            0 => &self.first,
            _ => &self.rest[i - 1],
        }
    }
}

impl<T> std::ops::IndexMut<usize> for Inline<T> {
    fn index_mut(&mut self, i: usize) -> &mut T {
        match i {
            0 => &mut self.first,
            _ => &mut self.rest[i - 1],
        }
    }
}

/// Own scope, shard and global frame of each linked contract, by slot (contract × 3 + k).
struct Frames<'a>(Inline<[Option<Frame<'a>>; 3]>);

impl<'a> std::ops::Index<usize> for Frames<'a> {
    type Output = Option<Frame<'a>>;
    fn index(&self, slot: usize) -> &Self::Output {
        &self.0[slot / 3][slot % 3]
    }
}

impl std::ops::IndexMut<usize> for Frames<'_> {
    fn index_mut(&mut self, slot: usize) -> &mut Self::Output {
        &mut self.0[slot / 3][slot % 3]
    }
}

/// One run.
struct Machine<'a> {
    /// The code running now (`linked[cur].code`).
    code: &'a Verified,
    /// Index of the contract running now in `linked`.
    cur: usize,
    linked: Inline<Linked<'a>>,
    linker: &'a dyn Linker,
    ctx: &'a Context,
    host: &'a mut dyn Host,
    scope: ScopeKind,
    limit: u64,
    used: u64,
    stack: Vec<Value>,
    locals: Vec<Value>,
    calls: Vec<CallFrame>,
    /// Own scope, shard and global of each linked contract (three per contract).
    frames: Frames<'a>,
    global_writable: bool,
    relays: Vec<RelayOut>,
    logs: Vec<String>,
    events: Vec<Event>,
    random_counter: u64,
    /// Contracts deployed so far.
    created: Vec<NewContract>,
    /// Token value received, deposited, relayed, minted and burned, per asset.
    received: Holdings,
    deposited: Holdings,
    relayed: Holdings,
    minted: Holdings,
    burned: Holdings,
}

/// The asset id and amount of a token.
fn token(v: &Value) -> Result<(u64, u64), Trap> {
    match v {
        Value::Token { id, amount } => Ok((*id, *amount)),
        _ => Err(Trap::Type("token expected")),
    }
}

fn int(v: Value) -> Result<Int, Trap> {
    match v {
        Value::Int(i) => Ok(i),
        _ => Err(Trap::Type("integer expected")),
    }
}

fn as_index(v: &Value) -> Result<usize, Trap> {
    match v {
        Value::Int(i) => i.to_u32().map(|x| x as usize).ok_or(Trap::BadIndex),
        _ => Err(Trap::Type("index expected")),
    }
}

fn step_ref<'v>(v: &'v Value, step: Step, op: Option<&Value>) -> Result<Option<&'v Value>, Trap> {
    match (step, v) {
        (Step::Field(i), Value::Struct(fs)) => {
            fs.get(i as usize).map(Some).ok_or(Trap::Type("member"))
        }
        (Step::Index, Value::Array(a)) => {
            let i = as_index(op.ok_or(Trap::Type("operand"))?)?;
            a.get(i).map(Some).ok_or(Trap::BadIndex)
        }
        (Step::Key(_), Value::Map(m)) => Ok(m.get(op.ok_or(Trap::Type("operand"))?)),
        _ => Err(Trap::Type("place step")),
    }
}

fn step_mut(
    v: &mut Value,
    step: Step,
    op: Option<Value>,
    default: impl FnOnce() -> Value,
) -> Result<&mut Value, Trap> {
    match (step, v) {
        (Step::Field(i), Value::Struct(fs)) => fs.get_mut(i as usize).ok_or(Trap::Type("member")),
        (Step::Index, Value::Array(a)) => {
            let i = as_index(op.as_ref().ok_or(Trap::Type("operand"))?)?;
            a.get_mut(i).ok_or(Trap::BadIndex)
        }
        (Step::Key(_), Value::Map(m)) => Ok(m
            .entry(op.ok_or(Trap::Type("operand"))?)
            .or_insert_with(default)),
        _ => Err(Trap::Type("place step")),
    }
}

impl<'a> Machine<'a> {
    fn charge(&mut self, g: u64) -> Result<(), Trap> {
        self.used = self.used.saturating_add(g);
        if self.used > self.limit {
            self.used = self.limit;
            return Err(Trap::OutOfGas);
        }
        Ok(())
    }

    fn pop(&mut self) -> Result<Value, Trap> {
        self.stack.pop().ok_or(Trap::Type("stack underflow"))
    }

    fn pop_n(&mut self, n: usize) -> Result<Vec<Value>, Trap> {
        if self.stack.len() < n {
            return Err(Trap::Type("stack underflow"));
        }
        Ok(self.stack.split_off(self.stack.len() - n))
    }

    /// The frame of `scope` of the running contract.
    fn frame_slot(&self, scope: ScopeKind) -> Result<usize, Trap> {
        let k = match scope {
            ScopeKind::Global => 2,
            s if s == self.scope => 0,
            ScopeKind::Shard if self.scope != ScopeKind::Global => 1,
            _ => return Err(Trap::Type("state of an unreachable scope")),
        };
        Ok(self.cur * 3 + k)
    }

    /// The address of the running contract.
    fn contract(&self) -> [u8; 32] {
        self.linked[self.cur].address
    }

    fn frame(&mut self, scope: ScopeKind) -> Result<&mut Frame<'a>, Trap> {
        let slot = self.frame_slot(scope)?;
        if self.frames[slot].is_none() {
            let vars = self.code.state_of(scope);
            let (base, original, writable) = if slot % 3 == 2 {
                match self.linked[self.cur].global {
                    Some(global) if global.len() != vars.len() => {
                        return Err(Trap::Host(
                            "global state does not match the contract".into(),
                        ));
                    }
                    Some(global) => (Base::Borrowed(global), None, self.global_writable),
                    None => (
                        Base::Owned(layout::default_row(self.code, ScopeKind::Global)),
                        None,
                        self.global_writable,
                    ),
                }
            } else {
                let c = self.contract();
                let row = self.host.read_row(&c, scope).map_err(Trap::Host)?;
                let bytes = row.as_ref().map(Vec::len).unwrap_or(0) as u64;
                self.charge(gas::READ_ROW + bytes * gas::READ_BYTE)?;
                let values = match &row {
                    None => layout::default_row(self.code, scope),
                    Some(b) => layout::decode_row(self.code, scope, b)
                        .map_err(|e| Trap::Host(format!("stored state does not decode: {e}")))?,
                };
                (Base::Owned(values), row, true)
            };
            let rows: &[Value] = match &base {
                Base::Borrowed(b) => b,
                Base::Owned(b) => b,
            };
            let mut arrays = Vec::with_capacity(vars.len());
            let mut maps = Vec::with_capacity(vars.len());
            for (i, v) in rows.iter().enumerate() {
                let (mut a, mut m) = (None, None);
                if let Some(st) = layout::stored(self.code.ty(vars[i].1)) {
                    let n = layout::stored_len(v)
                        .ok_or_else(|| Trap::Host("stored container without its length".into()))?;
                    match st {
                        layout::Stored::Array(_) => a = Some(ArrayVar::new(n)),
                        layout::Stored::Map(..) => m = Some(MapVar::new(n)),
                    }
                }
                arrays.push(a);
                maps.push(m);
            }
            self.frames[slot] = Some(Frame {
                base,
                modified: vec![None; vars.len()],
                original,
                writable,
                arrays,
                maps,
            });
        }
        Ok(self.frames[slot].as_mut().expect("just loaded"))
    }

    /// The element type of state variable `v` of `scope` when it is a stored array.
    fn stored_elem(&self, scope: ScopeKind, v: u16) -> Option<&'a Type> {
        let code: &'a Verified = self.code;
        let (_, t) = code.state_of(scope).get(v as usize)?;
        layout::stored_elem(code.ty(*t))
    }

    /// The stored array `v` of `scope` (its frame loaded).
    fn array(&mut self, scope: ScopeKind, v: u16) -> Result<&mut ArrayVar, Trap> {
        self.frame(scope)?
            .arrays
            .get_mut(v as usize)
            .and_then(Option::as_mut)
            .ok_or(Trap::Type("stored array"))
    }

    /// Makes element `i` of stored array `v` of `scope` present in the call's cache,
    /// reading its row when needed.
    fn load_elem(&mut self, scope: ScopeKind, v: u16, i: u32) -> Result<(), Trap> {
        let elem = self
            .stored_elem(scope, v)
            .ok_or(Trap::Type("stored array"))?;
        let code = self.code;
        let a = self.array(scope, v)?;
        if i >= a.len {
            return Err(Trap::BadIndex);
        }
        if a.cache.contains_key(&i) {
            return Ok(());
        }
        let value = if i >= a.orig_len {
            default_value(elem, &code.table)
        } else {
            let c = self.contract();
            let row = self
                .host
                .read_elem(&c, scope, v, &ElemKey::Index(i))
                .map_err(Trap::Host)?;
            let bytes = row.as_ref().map(Vec::len).unwrap_or(0) as u64;
            self.charge(gas::READ_ROW + bytes * gas::READ_BYTE)?;
            layout::decode_elem(elem, code, row.as_deref())
                .map_err(|e| Trap::Host(format!("stored element does not decode: {e}")))?
        };
        self.array(scope, v)?.cache.insert(i, value);
        Ok(())
    }

    /// The whole stored array `v` of `scope`, every element read.
    fn materialize(&mut self, scope: ScopeKind, v: u16) -> Result<Value, Trap> {
        let n = self.array(scope, v)?.len;
        // Paid before anything is built: elements grown in this call have no row to read
        // (and no read to charge), and 2^24 of them must not be allocated for free.
        self.charge(u64::from(n).saturating_mul(gas::NODE))?;
        let mut out = Vec::with_capacity(n.min(1 << 16) as usize);
        for i in 0..n {
            self.load_elem(scope, v, i)?;
            out.push(self.array(scope, v)?.cache[&i].clone());
        }
        Ok(Value::Array(out))
    }

    /// The stored array `v` of `scope`, for writing.
    fn array_mut(&mut self, scope: ScopeKind, v: u16) -> Result<&mut ArrayVar, Trap> {
        if !self.frame(scope)?.writable {
            return Err(Trap::ReadOnly);
        }
        self.array(scope, v)
    }

    /// The key and value types of state variable `v` of `scope` when it is a stored map.
    fn stored_map(&self, scope: ScopeKind, v: u16) -> Option<(&'a Type, &'a Type)> {
        let code: &'a Verified = self.code;
        let (_, t) = code.state_of(scope).get(v as usize)?;
        match layout::stored(code.ty(*t))? {
            layout::Stored::Map(k, x) => Some((k, x)),
            layout::Stored::Array(_) => None,
        }
    }

    /// The stored map `v` of `scope` (its frame loaded).
    fn map(&mut self, scope: ScopeKind, v: u16) -> Result<&mut MapVar, Trap> {
        self.frame(scope)?
            .maps
            .get_mut(v as usize)
            .and_then(Option::as_mut)
            .ok_or(Trap::Type("stored map"))
    }

    /// The stored map `v` of `scope`, for writing.
    fn map_mut(&mut self, scope: ScopeKind, v: u16) -> Result<&mut MapVar, Trap> {
        if !self.frame(scope)?.writable {
            return Err(Trap::ReadOnly);
        }
        self.map(scope, v)
    }

    /// The encoding of key `k` of stored map `v` of `scope` (the name of its entry row).
    fn map_key(&self, scope: ScopeKind, v: u16, k: &Value) -> Result<Vec<u8>, Trap> {
        let (kt, _) = self.stored_map(scope, v).ok_or(Trap::Type("stored map"))?;
        if !has_type(k, kt, &self.code.table) {
            return Err(Trap::Type("key of the wrong type"));
        }
        layout::encode_key(kt, self.code, k).map_err(|_| Trap::Type("key of the wrong type"))
    }

    /// Reads the row of `host` named `key` of container `v` of `scope`, charging for it.
    fn read_content(
        &mut self,
        scope: ScopeKind,
        v: u16,
        key: &ElemKey,
    ) -> Result<Option<Vec<u8>>, Trap> {
        let c = self.contract();
        let row = self.host.read_elem(&c, scope, v, key).map_err(Trap::Host)?;
        let bytes = row.as_ref().map(Vec::len).unwrap_or(0) as u64;
        self.charge(gas::READ_ROW + bytes * gas::READ_BYTE)?;
        Ok(row)
    }

    /// Makes the entry with key encoding `kb` present in the call's cache.
    fn load_entry(&mut self, scope: ScopeKind, v: u16, kb: &[u8]) -> Result<(), Trap> {
        let (_, vt) = self.stored_map(scope, v).ok_or(Trap::Type("stored map"))?;
        if self.map(scope, v)?.entries.contains_key(kb) {
            return Ok(());
        }
        let code = self.code;
        let row = self.read_content(scope, v, &ElemKey::Key(kb.to_vec()))?;
        let entry =
            match row {
                None => MapEntry {
                    stored: false,
                    now: None,
                },
                Some(b) => MapEntry {
                    stored: true,
                    now: Some(layout::decode_entry(vt, code, &b).map_err(|e| {
                        Trap::Host(format!("stored map entry does not decode: {e}"))
                    })?),
                },
            };
        self.map(scope, v)?.entries.insert(kb.to_vec(), entry);
        Ok(())
    }

    /// The key encoding in slot `i` (below the count) of stored map `v` of `scope`.
    fn load_slot(&mut self, scope: ScopeKind, v: u16, i: u32) -> Result<Vec<u8>, Trap> {
        let m = self.map(scope, v)?;
        if let Some(kb) = m.slots.get(&i) {
            return Ok(kb.clone());
        }
        if i >= m.len || i >= m.orig_len {
            return Err(Trap::Host(format!("map slot {i} is not stored")));
        }
        let kb = self
            .read_content(scope, v, &ElemKey::Index(i))?
            .ok_or_else(|| Trap::Host(format!("map slot {i} has no key")))?;
        self.map(scope, v)?.slots.insert(i, kb.clone());
        Ok(kb)
    }

    /// Makes sure the entry `kb` exists (a new one takes the default value and the next
    /// slot), and marks it written.
    fn map_insert(&mut self, scope: ScopeKind, v: u16, kb: &[u8]) -> Result<(), Trap> {
        let (_, vt) = self.stored_map(scope, v).ok_or(Trap::Type("stored map"))?;
        self.map_mut(scope, v)?;
        self.load_entry(scope, v, kb)?;
        let d = default_value(vt, &self.code.table);
        let m = self.map(scope, v)?;
        let e = m.entries.get_mut(kb).ok_or(Trap::Type("stored entry"))?;
        if e.now.is_none() {
            if m.len == u32::MAX {
                return Err(Trap::Limit("map size"));
            }
            let slot = m.len;
            e.now = Some((slot, d));
            m.len += 1;
            m.slots.insert(slot, kb.to_vec());
            m.written_slots.insert(slot);
        }
        m.written_entries.insert(kb.to_vec());
        Ok(())
    }

    /// Removes the entry `kb` if present, moving the last slot's key into its slot.
    fn map_erase(&mut self, scope: ScopeKind, v: u16, kb: &[u8]) -> Result<(), Trap> {
        self.map_mut(scope, v)?;
        self.load_entry(scope, v, kb)?;
        let Some(slot) = self.map(scope, v)?.entries[kb]
            .now
            .as_ref()
            .map(|(s, _)| *s)
        else {
            return Ok(());
        };
        let last = self.map(scope, v)?.len - 1;
        if slot != last {
            let lk = self.load_slot(scope, v, last)?;
            self.load_entry(scope, v, &lk)?;
            let m = self.map(scope, v)?;
            let moved = m.entries.get_mut(&lk).and_then(|e| e.now.as_mut());
            let moved = moved.ok_or_else(|| Trap::Host("map slot names a missing entry".into()))?;
            moved.0 = slot;
            m.written_entries.insert(lk.clone());
            m.slots.insert(slot, lk);
            m.written_slots.insert(slot);
        }
        let m = self.map(scope, v)?;
        m.slots.remove(&last);
        m.written_slots.insert(last);
        if let Some(e) = m.entries.get_mut(kb) {
            e.now = None;
        }
        m.written_entries.insert(kb.to_vec());
        m.len = last;
        Ok(())
    }

    /// The whole stored map `v` of `scope`, every entry read.
    fn materialize_map(&mut self, scope: ScopeKind, v: u16) -> Result<Value, Trap> {
        let (kt, _) = self.stored_map(scope, v).ok_or(Trap::Type("stored map"))?;
        let n = self.map(scope, v)?.len;
        self.charge(u64::from(n).saturating_mul(gas::NODE))?;
        let mut out = BTreeMap::new();
        for i in 0..n {
            let kb = self.load_slot(scope, v, i)?;
            self.load_entry(scope, v, &kb)?;
            let value = self.map(scope, v)?.entries[&kb]
                .now
                .as_ref()
                .map(|(_, x)| x.clone())
                .ok_or_else(|| Trap::Host("map slot names a missing entry".into()))?;
            let k = layout::decode_key(kt, self.code, &kb)
                .map_err(|e| Trap::Host(format!("stored map key does not decode: {e}")))?;
            out.insert(k, value);
        }
        Ok(Value::Map(out))
    }

    /// `m = value` for a stored map: every entry removed, then the new ones inserted.
    fn assign_map(&mut self, scope: ScopeKind, v: u16, value: Value) -> Result<(), Trap> {
        let Value::Map(new) = value else {
            return Err(Trap::Type("map expected"));
        };
        self.map_mut(scope, v)?;
        let n = self.map(scope, v)?.len;
        for i in 0..n {
            let kb = self.load_slot(scope, v, i)?;
            self.load_entry(scope, v, &kb)?;
            let m = self.map(scope, v)?;
            if let Some(e) = m.entries.get_mut(&kb) {
                e.now = None;
            }
            m.written_entries.insert(kb);
            m.written_slots.insert(i);
            m.slots.remove(&i);
        }
        self.map(scope, v)?.len = 0;
        for (k, x) in new {
            let kb = self.map_key(scope, v, &k)?;
            self.map_insert(scope, v, &kb)?;
            if let Some(e) = self
                .map(scope, v)?
                .entries
                .get_mut(&kb)
                .and_then(|e| e.now.as_mut())
            {
                e.1 = x;
            }
        }
        Ok(())
    }

    /// Applies `f` to the value at place `p` without copying it. A missing map key reads as
    /// the default of the value type (later steps continue inside that default).
    fn with_place_ref<R>(
        &mut self,
        p: u32,
        ops: &[Value],
        f: impl FnOnce(&Value) -> R,
    ) -> Result<R, Trap> {
        let code = self.code;
        let place = code.places.get(p as usize).ok_or(Trap::Type("place"))?;
        let mut steps = place.steps.iter();
        let mut ops = ops.iter();
        // A stored array: its first step selects one element row.
        let stored = match place.root {
            Root::State(scope, v) if self.stored_elem(scope, v).is_some() => match steps.next() {
                None => return Ok(f(&self.materialize(scope, v)?)),
                Some(Step::Index) => {
                    let i = as_index(ops.next().ok_or(Trap::Type("operand"))?)? as u32;
                    self.load_elem(scope, v, i)?;
                    Some(StoredAt::Elem(scope, v, i))
                }
                Some(_) => return Err(Trap::Type("place step")),
            },
            Root::State(scope, v) if self.stored_map(scope, v).is_some() => match steps.next() {
                None => return Ok(f(&self.materialize_map(scope, v)?)),
                Some(Step::Key(_)) => {
                    let k = ops.next().ok_or(Trap::Type("operand"))?;
                    let kb = self.map_key(scope, v, k)?;
                    self.load_entry(scope, v, &kb)?;
                    Some(StoredAt::Entry(scope, v, kb))
                }
                Some(_) => return Err(Trap::Type("place step")),
            },
            _ => None,
        };
        let mut owned: Option<Value> = None;
        let base: &Value = match (place.root, stored) {
            (_, Some(StoredAt::Elem(scope, v, i))) => {
                let slot = self.frame_slot(scope)?;
                self.frames[slot]
                    .as_ref()
                    .and_then(|f| f.arrays.get(v as usize)?.as_ref()?.cache.get(&i))
                    .ok_or(Trap::Type("stored element"))?
            }
            (_, Some(StoredAt::Entry(scope, v, kb))) => {
                let (_, vt) = self.stored_map(scope, v).ok_or(Trap::Type("stored map"))?;
                let slot = self.frame_slot(scope)?;
                let entry = self.frames[slot]
                    .as_ref()
                    .and_then(|f| f.maps.get(v as usize)?.as_ref()?.entries.get(&kb))
                    .ok_or(Trap::Type("stored entry"))?;
                match &entry.now {
                    Some((_, x)) => x,
                    None => {
                        owned = Some(default_value(vt, &code.table));
                        &ABSENT
                    }
                }
            }
            (Root::Local(s), None) => {
                let base = self.calls.last().map(|c| c.locals).unwrap_or(0);
                self.locals
                    .get(base + s as usize)
                    .ok_or(Trap::Type("local"))?
            }
            (Root::State(scope, v), None) => {
                self.frame(scope)?;
                let slot = self.frame_slot(scope)?;
                self.frames[slot]
                    .as_ref()
                    .and_then(|f| f.get(v as usize))
                    .ok_or(Trap::Type("state variable"))?
            }
        };
        let mut cur = base;
        for step in steps {
            let op = match step {
                Step::Field(_) => None,
                _ => ops.next(),
            };
            let default = || match step {
                Step::Key(t) => Ok(default_value(code.ty(*t), &code.table)),
                _ => Err(Trap::Type("place step")),
            };
            match owned.take() {
                Some(o) => {
                    owned = Some(match step_ref(&o, *step, op)? {
                        Some(v) => v.clone(),
                        None => default()?,
                    })
                }
                None => match step_ref(cur, *step, op)? {
                    Some(v) => cur = v,
                    None => owned = Some(default()?),
                },
            }
        }
        Ok(f(owned.as_ref().unwrap_or(cur)))
    }

    /// Pops the operands of place `p` (its indices and keys).
    fn place_ops(&mut self, p: u32) -> Result<Vec<Value>, Trap> {
        let n = self
            .code
            .places
            .get(p as usize)
            .ok_or(Trap::Type("place"))?
            .operands();
        self.pop_n(n)
    }

    /// A copy of the value at a place.
    fn load(&mut self, p: u32) -> Result<Value, Trap> {
        let ops = self.place_ops(p)?;
        let v = self.with_place_ref(p, &ops, Value::clone)?;
        self.charge(v.weight() * gas::NODE / 4)?;
        Ok(v)
    }

    /// Runs `f` on the value at a place, creating missing map entries on the way.
    fn with_place_mut<R>(
        &mut self,
        p: u32,
        ops: Vec<Value>,
        f: impl FnOnce(&mut Value) -> Result<R, Trap>,
    ) -> Result<R, Trap> {
        let code = self.code;
        let place = code.places.get(p as usize).ok_or(Trap::Type("place"))?;
        if let Some(pt) = code.place_types(p) {
            for (v, t) in ops.iter().zip(&pt.operands) {
                if !has_type(v, t, &code.table) {
                    return Err(Trap::Type("key of the wrong type"));
                }
            }
        }
        let mut steps = place.steps.iter();
        let mut ops = ops.into_iter();
        let mut cur: &mut Value = match place.root {
            Root::Local(s) => {
                let base = self.calls.last().map(|c| c.locals).unwrap_or(0);
                self.locals
                    .get_mut(base + s as usize)
                    .ok_or(Trap::Type("local"))?
            }
            // A stored array: its first step selects one element row, now written.
            Root::State(scope, v) if self.stored_elem(scope, v).is_some() => {
                let Some(Step::Index) = steps.next() else {
                    return Err(Trap::Type("whole stored array as a place"));
                };
                let i = as_index(&ops.next().ok_or(Trap::Type("operand"))?)? as u32;
                self.array_mut(scope, v)?;
                self.load_elem(scope, v, i)?;
                let a = self.array(scope, v)?;
                a.written.insert(i);
                a.cache.get_mut(&i).ok_or(Trap::Type("stored element"))?
            }
            // A stored map: its first step selects one entry row, created if missing.
            Root::State(scope, v) if self.stored_map(scope, v).is_some() => {
                let Some(Step::Key(_)) = steps.next() else {
                    return Err(Trap::Type("whole stored map as a place"));
                };
                let k = ops.next().ok_or(Trap::Type("operand"))?;
                let kb = self.map_key(scope, v, &k)?;
                self.map_insert(scope, v, &kb)?;
                let m = self.map(scope, v)?;
                m.entries
                    .get_mut(&kb)
                    .and_then(|e| e.now.as_mut())
                    .map(|(_, x)| x)
                    .ok_or(Trap::Type("stored entry"))?
            }
            Root::State(scope, v) => self.frame(scope)?.get_mut(v as usize)?,
        };
        for step in steps {
            let op = match step {
                Step::Field(_) => None,
                _ => ops.next(),
            };
            cur = step_mut(cur, *step, op, || match step {
                Step::Key(t) => default_value(code.ty(*t), &code.table),
                _ => Value::Bool(false),
            })?;
        }
        f(cur)
    }

    fn store(&mut self, p: u32) -> Result<(), Trap> {
        let v = self.pop()?;
        let n = self
            .code
            .places
            .get(p as usize)
            .ok_or(Trap::Type("place"))?
            .operands();
        let ops = self.pop_n(n)?;
        if let Some(pt) = self.code.place_types(p) {
            if !has_type(&v, &pt.leaf, &self.code.table) {
                return Err(Trap::Type("value of the wrong type for this state"));
            }
        }
        if let Some((scope, var)) = self.whole_stored(p) {
            if self.stored_map(scope, var).is_some() {
                return self.assign_map(scope, var, v);
            }
            let Value::Array(items) = v else {
                return Err(Trap::Type("array expected"));
            };
            if items.len() as u64 > MAX_ARRAY_LEN {
                return Err(Trap::Limit("array length"));
            }
            let a = self.array_mut(scope, var)?;
            a.shrink(0);
            a.len = items.len() as u32;
            for (i, item) in items.into_iter().enumerate() {
                a.written.insert(i as u32);
                a.cache.insert(i as u32, item);
            }
            return Ok(());
        }
        self.with_place_mut(p, ops, |slot| {
            *slot = v;
            Ok(())
        })
    }

    /// `(scope, variable)` when place `p` is a whole stored array or map (no steps).
    fn whole_stored(&self, p: u32) -> Option<(ScopeKind, u16)> {
        let place = self.code.places.get(p as usize)?;
        match place.root {
            Root::State(scope, v)
                if place.steps.is_empty() && layout::is_stored(self.code, scope, v as usize) =>
            {
                Some((scope, v))
            }
            _ => None,
        }
    }

    /// A method called on a whole stored map: reads or writes the one entry it names.
    fn map_method(
        &mut self,
        scope: ScopeKind,
        v: u16,
        m: Method,
        arg: Option<Value>,
    ) -> Result<Option<Value>, Trap> {
        let k = arg.ok_or(Trap::Type("argument"))?;
        let kb = self.map_key(scope, v, &k)?;
        match m {
            Method::Has => {
                self.load_entry(scope, v, &kb)?;
                let present = self.map(scope, v)?.entries[&kb].now.is_some();
                Ok(Some(Value::Bool(present)))
            }
            Method::Erase => {
                self.map_erase(scope, v, &kb)?;
                Ok(None)
            }
            _ => Err(Trap::Type("method receiver")),
        }
    }

    /// A method called on a whole stored array: works on its length and element rows
    /// without reading the rest.
    fn stored_method(
        &mut self,
        scope: ScopeKind,
        v: u16,
        m: Method,
        arg: Option<Value>,
    ) -> Result<Option<Value>, Trap> {
        let code = self.code;
        let elem = self
            .stored_elem(scope, v)
            .ok_or(Trap::Type("stored array"))?;
        match m {
            Method::Length => Ok(Some(layout::len_value(self.array(scope, v)?.len))),
            Method::Push => {
                let x = arg.ok_or(Trap::Type("argument"))?;
                if !has_type(&x, elem, &code.table) {
                    return Err(Trap::Type("argument of the wrong type for this state"));
                }
                self.charge(x.weight() * gas::NODE)?;
                let a = self.array_mut(scope, v)?;
                if a.len as u64 >= MAX_ARRAY_LEN {
                    return Err(Trap::Limit("array length"));
                }
                let i = a.len;
                a.len += 1;
                a.written.insert(i);
                a.cache.insert(i, x);
                Ok(None)
            }
            Method::Pop => {
                let a = self.array_mut(scope, v)?;
                if a.len == 0 {
                    return Err(Trap::BadIndex);
                }
                a.shrink(a.len - 1);
                Ok(None)
            }
            Method::SetLength(_) => {
                let n = as_len(arg.as_ref())?;
                if n > MAX_ARRAY_LEN {
                    return Err(Trap::Limit("array length"));
                }
                let a = self.array_mut(scope, v)?;
                let n = n as u32;
                if n >= a.len {
                    let d = default_value(elem, &code.table);
                    a.grow(n, &d);
                    Ok(None)
                } else {
                    // Every cut element's row is deleted at commit: charge for them now.
                    let cut = u64::from(a.len - n);
                    a.shrink(n);
                    self.charge(cut.saturating_mul(gas::NODE))?;
                    Ok(None)
                }
            }
            _ => Err(Trap::Type("method receiver")),
        }
    }

    fn contract_check(&mut self, recv: Option<[u8; 32]>) -> Result<Value, Trap> {
        let a = recv.ok_or(Trap::Type("address expected"))?;
        Ok(Value::Bool(self.host.is_contract(&a)))
    }

    fn place_method(&mut self, p: u32, m: Method) -> Result<Option<Value>, Trap> {
        self.charge(method_gas(m))?;
        let args = self.pop_n(m.arity())?;
        let n = self
            .code
            .places
            .get(p as usize)
            .ok_or(Trap::Type("place"))?
            .operands();
        let ops = self.pop_n(n)?;
        if m == Method::IsContract {
            let a = self.with_place_ref(p, &ops, address_of)?;
            return self.contract_check(a).map(Some);
        }
        if let Some((scope, v)) = self.whole_stored(p) {
            let arg = args.into_iter().next();
            return if self.stored_map(scope, v).is_some() {
                self.map_method(scope, v, m, arg)
            } else {
                self.stored_method(scope, v, m, arg)
            };
        }
        if !m.mutates() {
            return self.with_place_ref(p, &ops, |recv| read_method(recv, m, &args))?;
        }
        let state_types = self.code.place_types(p).cloned();
        let code = self.code;
        let mut extra_gas = 0u64;
        let arg = args.into_iter().next();
        if let (Some(pt), Some(a)) = (&state_types, &arg) {
            let want = match (m, &pt.leaf) {
                (Method::Push, Type::Array(e)) => Some((**e).clone()),
                (Method::Erase, Type::Map(k, _)) => Some((**k).clone()),
                (Method::StrSet | Method::StrAppend, _) => Some(Type::String),
                _ => None,
            };
            if let Some(w) = want {
                if !has_type(a, &w, &code.table) {
                    return Err(Trap::Type("argument of the wrong type for this state"));
                }
            }
        }
        let gas_left = self.limit - self.used;
        let in_address = self.scope == ScopeKind::Address;
        let mut deposited = (0u64, 0u64);
        let r = self.with_place_mut(p, ops, |recv| {
            match (m, recv) {
                (Method::Deposit, Value::Token { id, amount }) => {
                    if *amount > 0 {
                        if !in_address {
                            return Err(Trap::Token(
                                "deposit() needs an address: call it in an @address function"
                                    .into(),
                            ));
                        }
                        deposited = (*id, *amount);
                        *amount = 0;
                    }
                }
                (Method::SetLength(t), Value::Array(a)) => {
                    let n = as_len(arg.as_ref())?;
                    if n > MAX_ARRAY_LEN {
                        return Err(Trap::Limit("array length"));
                    }
                    if n as usize > a.len() {
                        let add = (n as usize - a.len()) as u64;
                        extra_gas = add.saturating_mul(gas::NODE);
                        if extra_gas > gas_left {
                            return Err(Trap::OutOfGas);
                        }
                        let d = default_value(code.ty(t), &code.table);
                        a.resize(n as usize, d);
                    } else {
                        a.truncate(n as usize);
                    }
                }
                (Method::Push, Value::Array(a)) => {
                    if a.len() as u64 >= MAX_ARRAY_LEN {
                        return Err(Trap::Limit("array length"));
                    }
                    let v = arg.ok_or(Trap::Type("argument"))?;
                    extra_gas = v.weight() * gas::NODE;
                    a.push(v);
                }
                (Method::Pop, Value::Array(a)) => {
                    a.pop().ok_or(Trap::BadIndex)?;
                }
                (Method::Erase, Value::Map(mp)) => {
                    mp.remove(&arg.ok_or(Trap::Type("argument"))?);
                }
                (Method::StrSet, Value::Str(s)) => match arg {
                    Some(Value::Str(x)) => {
                        extra_gas = x.len() as u64 / 8;
                        *s = x;
                    }
                    _ => return Err(Trap::Type("string argument")),
                },
                (Method::StrAppend, Value::Str(s)) => match arg {
                    Some(Value::Str(x)) => {
                        if s.len() + x.len() > MAX_BYTES_LEN {
                            return Err(Trap::Limit("string length"));
                        }
                        extra_gas = x.len() as u64 / 8;
                        s.push_str(&x);
                    }
                    _ => return Err(Trap::Type("string argument")),
                },
                _ => return Err(Trap::Type("method receiver")),
            }
            Ok(())
        });
        r?;
        self.deposited.add(deposited.0, u128::from(deposited.1));
        self.charge(extra_gas)?;
        Ok(None)
    }

    /// `__mint(id, amount)` (PREDA spec 5.10): pops the amount and the id; a token of
    /// `amount` of asset `id` when the running contract holds the right to mint it (the
    /// host says) and the amount is 1 to 2^64 − 1, else an empty token.
    fn mint(&mut self) -> Result<Value, Trap> {
        self.charge(gas::MINT)?;
        let amount = int(self.pop()?)?;
        let id = int(self.pop()?)?.to_u64().unwrap_or(0);
        let empty = Value::Token { id: 0, amount: 0 };
        let Some(x) = amount.to_u64().filter(|x| *x > 0 && !amount.is_negative()) else {
            return Ok(empty);
        };
        if id == crate::token::rxbtc()
            || crate::token::id_to_symbol(id).is_none()
            || !self.host.may_mint(&self.contract(), id)
            || self.minted.get(id) + u128::from(x) > u128::from(u64::MAX)
        {
            return Ok(empty);
        }
        self.minted.add(id, u128::from(x));
        Ok(Value::Token { id, amount: x })
    }

    /// `__burn(t)` (PREDA spec 5.10): destroys the token at place `p` (its operands on the
    /// stack; it is left empty) or the popped token, when the running contract holds the
    /// right to mint its asset. Whether it did.
    fn burn(&mut self, p: Option<u32>) -> Result<bool, Trap> {
        self.charge(gas::MINT)?;
        let (ops, (id, amount)) = match p {
            Some(p) => {
                let ops = self.place_ops(p)?;
                let t = self.with_place_ref(p, &ops, token)??;
                (Some((p, ops)), t)
            }
            None => (None, token(&self.pop()?)?),
        };
        if id == 0
            || amount == 0
            || id == crate::token::rxbtc()
            || !self.host.may_mint(&self.contract(), id)
        {
            return Ok(false);
        }
        if let Some((p, ops)) = ops {
            self.with_place_mut(p, ops, |v| {
                if let Value::Token { amount, .. } = v {
                    *amount = 0;
                }
                Ok(())
            })?;
        }
        self.burned.add(id, u128::from(amount));
        Ok(true)
    }

    /// The assets the call's tokens moved, with those held in `more`, sorted, each once.
    fn moved_ids(&self, more: &[&Holdings]) -> Vec<u64> {
        let mine = [
            &self.received,
            &self.deposited,
            &self.relayed,
            &self.minted,
            &self.burned,
        ];
        let mut ids: Vec<u64> = mine.iter().chain(more).flat_map(|h| h.ids()).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// What the call's tokens did, split into rxBTC and the other assets (after
    /// [`Self::commit`] checked that each sum fits 64 bits).
    fn token_flow(&self) -> TokenFlow {
        let fit = |a: u128| u64::try_from(a).unwrap_or(u64::MAX);
        let rx = crate::token::rxbtc();
        let mut ids = self.moved_ids(&[]);
        ids.retain(|id| *id != rx);
        TokenFlow {
            received: fit(self.received.get(rx)),
            deposited: fit(self.deposited.get(rx)),
            relayed: fit(self.relayed.get(rx)),
            assets: ids
                .into_iter()
                .map(|id| {
                    (
                        id,
                        AssetFlow {
                            received: fit(self.received.get(id)),
                            deposited: fit(self.deposited.get(id)),
                            relayed: fit(self.relayed.get(id)),
                            minted: fit(self.minted.get(id)),
                            burned: fit(self.burned.get(id)),
                        },
                    )
                })
                .collect(),
        }
    }

    /// `src.transfer(dst, amount)` / `src.transfer_all(dst)`: `false` (nothing moves) when
    /// `src` holds no token, `dst` holds another one, or the amount is negative or more than
    /// `src` has (PREDA spec 2.3.3).
    fn token_move(&mut self, src: u32, dst: u32, all: bool) -> Result<bool, Trap> {
        let amount = if all { None } else { Some(int(self.pop()?)?) };
        let dst_ops = self.place_ops(dst)?;
        let src_ops = self.place_ops(src)?;
        let (sid, have) = self.with_place_ref(src, &src_ops, token)??;
        let (did, _) = self.with_place_ref(dst, &dst_ops, token)??;
        let x = match amount {
            None => have,
            Some(a) => match a.to_u64() {
                Some(x) if !a.is_negative() => x,
                _ => return Ok(false),
            },
        };
        if sid == 0 || (did != 0 && did != sid) || x > have {
            return Ok(false);
        }
        self.with_place_mut(src, src_ops, |v| {
            if let Value::Token { amount, .. } = v {
                *amount -= x;
            }
            Ok(())
        })?;
        self.with_place_mut(dst, dst_ops, |v| {
            if let Value::Token { id, amount } = v {
                *id = sid;
                *amount = amount
                    .checked_add(x)
                    .ok_or_else(|| Trap::Token("amount overflows".into()))?;
            }
            Ok(())
        })?;
        Ok(true)
    }

    fn convert(&mut self, c: Conv, v: Value) -> Result<Value, Trap> {
        self.charge(gas::CONVERT)?;
        Ok(match (c, v) {
            (Conv::Int(t), Value::Int(i)) => {
                if !i.fits(t) {
                    return Err(Trap::Conversion(format!("{i} is out of range")));
                }
                Value::Int(i)
            }
            (Conv::IntToString, Value::Int(i)) => Value::Str(i.to_decimal()),
            (Conv::StringToAddress, Value::Str(s)) => Value::Address(
                value::parse_address(&s)
                    .ok_or_else(|| Trap::Conversion(format!("`{s}` is not an address")))?,
            ),
            (Conv::StringToHash, Value::Str(s)) => {
                Value::Hash(sha256::Hash::hash(s.as_bytes()).to_byte_array())
            }
            (Conv::HashToAddress, Value::Hash(h)) => Value::Address(h),
            (Conv::HashToString, Value::Hash(h)) => Value::Str(h.to_lower_hex_string()),
            (Conv::HashToUint256, Value::Hash(h)) => {
                let mut le = h;
                le.reverse();
                Value::Int(Int::from_le(&le, false))
            }
            (Conv::AddressToString, Value::Address(a)) => {
                Value::Str(value::address_to_string(&a, self.ctx.hrp))
            }
            (Conv::SymbolToId, Value::Str(s)) => {
                Value::Int(Int::from(crate::token::symbol_to_id(&s)))
            }
            (Conv::IdToSymbol, Value::Int(i)) => Value::Str(
                i.to_u64()
                    .and_then(crate::token::id_to_symbol)
                    .unwrap_or_default(),
            ),
            _ => return Err(Trap::Type("conversion input")),
        })
    }

    fn arith(&mut self, op: Arith, t: NumTy) -> Result<(), Trap> {
        let b = int(self.pop()?)?;
        let a = int(self.pop()?)?;
        let words = a.words().max(b.words());
        self.charge(match op {
            Arith::Mul | Arith::Div | Arith::Rem => a.words() * b.words() * gas::WORD,
            _ => words * gas::WORD,
        })?;
        let fixed = || match t {
            NumTy::Fixed(it) if !it.signed => Ok(it),
            _ => Err(Trap::Type("unsigned operands")),
        };
        let r = match op {
            Arith::Add => a.add(&b, t).ok_or(Trap::Overflow)?,
            Arith::Sub => a.sub(&b, t).ok_or(Trap::Overflow)?,
            Arith::Mul => a.mul(&b, t).ok_or(Trap::Overflow)?,
            Arith::Div => {
                if b.is_zero() {
                    return Err(Trap::DivisionByZero);
                }
                a.div(&b, t).ok_or(Trap::Overflow)?
            }
            Arith::Rem => {
                if b.is_zero() {
                    return Err(Trap::DivisionByZero);
                }
                a.rem(&b, t).ok_or(Trap::Overflow)?
            }
            Arith::Shl => a.shl(&b, fixed()?).ok_or(Trap::Overflow)?,
            Arith::Shr => a.shr(&b, fixed()?).ok_or(Trap::Overflow)?,
            Arith::And => a.bitwise(&b, b'&', fixed()?).ok_or(Trap::Overflow)?,
            Arith::Or => a.bitwise(&b, b'|', fixed()?).ok_or(Trap::Overflow)?,
            Arith::Xor => a.bitwise(&b, b'^', fixed()?).ok_or(Trap::Overflow)?,
        };
        self.stack.push(Value::Int(r));
        Ok(())
    }

    fn context(&mut self, f: CtxFn) -> Result<Value, Trap> {
        self.charge(gas::CONTEXT)?;
        let c = self.ctx;
        Ok(match f {
            CtxFn::TxType => Value::Enum(c.kind as u16),
            // Outside an address scope, the address of the contract running now.
            CtxFn::TxSelf if self.cur != 0 && self.scope != ScopeKind::Address => {
                Value::Address(self.contract())
            }
            CtxFn::TxSelf => Value::Address(c.self_address),
            CtxFn::ContractId => Value::Address(self.contract()),
            CtxFn::TxSender => Value::Address(c.sender),
            CtxFn::TxTimestamp => Value::Int(Int::from(c.tx_timestamp)),
            CtxFn::TxSigners => {
                Value::Array(c.signers.iter().map(|s| Value::Address(*s)).collect())
            }
            CtxFn::TxVerifyIndex => {
                let i = int(self.pop()?)?;
                Value::Bool(i.to_u64().is_some_and(|i| (i as usize) < c.signers.len()))
            }
            CtxFn::TxVerifyAddress => match self.pop()? {
                Value::Address(a) => Value::Bool(c.signers.contains(&a)),
                _ => return Err(Trap::Type("address expected")),
            },
            CtxFn::TxOriginShardIndex => Value::Int(Int::from(c.origin_shard)),
            CtxFn::TxOriginShardOrder => Value::Int(Int::from(c.shard_order)),
            CtxFn::TxInitiator => Value::Address(c.initiator),
            CtxFn::BlockHeight => Value::Int(Int::from(c.height)),
            CtxFn::BlockShardIndex => Value::Int(Int::from(c.shard_index)),
            CtxFn::BlockShardOrder => Value::Int(Int::from(c.shard_order)),
            CtxFn::BlockTimestamp => Value::Int(Int::from(c.timestamp)),
            CtxFn::BlockRandom => {
                let mut buf = c.random_seed.to_vec();
                buf.extend_from_slice(&self.random_counter.to_le_bytes());
                self.random_counter += 1;
                let h = sha256::Hash::hash(&buf).to_byte_array();
                Value::Int(Int::from(u64::from_le_bytes(
                    h[..8].try_into().expect("8 bytes"),
                )))
            }
            CtxFn::BlockMiner => Value::Address(c.miner),
            // No UI session is attached to a chain's execution.
            CtxFn::EventUserState => Value::Enum(0),
            CtxFn::TxSuppliedTokens => Value::Array(if c.kind == TxKind::Normal {
                let rx = (c.supplied > 0).then(|| (crate::token::rxbtc(), c.supplied));
                rx.into_iter()
                    .chain(c.supplied_assets.iter().copied())
                    .map(|(id, amount)| Value::Token { id, amount })
                    .collect()
            } else {
                Vec::new()
            }),
        })
    }

    fn relay(&mut self, to: RelayTo, func: u16) -> Result<(), Trap> {
        let code = self.code;
        let f = code
            .functions
            .get(func as usize)
            .ok_or(Trap::Type("function"))?;
        let n = f.params.len();
        if self.stack.len() < n {
            return Err(Trap::Type("stack underflow"));
        }
        let base = self.stack.len() - n;
        let mut bytes = Vec::with_capacity(64);
        let mut carried = Holdings::new();
        if code.holds_tokens() {
            self.stack[base..].iter().for_each(|v| carried.add_value(v));
        }
        for (v, (_, t)) in self.stack[base..].iter().zip(&f.params) {
            let t = code.types.get(*t as usize).ok_or(Trap::Type("type"))?;
            value::encode(v, t, &code.table, &mut bytes)
                .map_err(|_| Trap::Type("relay argument of the wrong type"))?;
        }
        self.stack.truncate(base);
        let dest = match to {
            RelayTo::Address => match self.pop()? {
                Value::Address(a) => RelayDest::Address(a),
                _ => return Err(Trap::Type("address expected")),
            },
            RelayTo::Uint(s) => {
                let bits = s.uint_bits().ok_or(Trap::Type("integer scope"))?;
                let k = int(self.pop()?)?;
                let it = value::uint_ty(bits);
                if !k.fits(NumTy::Fixed(it)) {
                    return Err(Trap::Overflow);
                }
                let mut le = Vec::with_capacity(it.bytes());
                k.to_le(it, &mut le);
                le.reverse();
                RelayDest::Uint(s, le)
            }
            RelayTo::Shards => RelayDest::Shards,
            RelayTo::Global => RelayDest::Global,
            RelayTo::Next => RelayDest::Next,
        };
        // Value travels to a wallet's owner only: a relay to every shard would copy it, and
        // one that fails on a scope with no address would have nobody to return it to.
        let to_address = matches!(dest, RelayDest::Address(_))
            || (dest == RelayDest::Next && self.scope == ScopeKind::Address);
        if !carried.is_empty() && !to_address {
            return Err(Trap::Token(
                "tokens can only be relayed to an address (relay@<address>)".into(),
            ));
        }
        let units = |a: u128| {
            u64::try_from(a)
                .map_err(|_| Trap::Token("a relay carries more than 2^64 units of an asset".into()))
        };
        let rx = crate::token::rxbtc();
        let value = units(carried.get(rx))?;
        let assets = carried
            .ids()
            .filter(|id| *id != rx)
            .map(|id| Ok((id, units(carried.get(id))?)))
            .collect::<Result<Vec<_>, Trap>>()?;
        self.relayed.merge(&carried);
        let base = match dest {
            RelayDest::Shards => {
                gas::RELAY_PER_SHARD.saturating_mul(1u64 << self.ctx.shard_order.min(16))
            }
            RelayDest::Global => gas::RELAY_GLOBAL,
            _ => gas::RELAY,
        };
        self.charge(base + bytes.len() as u64 * gas::RELAY_BYTE)?;
        if self.relays.len() >= self.host.max_relays() {
            return Err(Trap::Limit("relays per call"));
        }
        self.relays.push(RelayOut {
            to: dest,
            contract: (self.cur != 0).then(|| self.contract()),
            func,
            args: bytes,
            value,
            assets,
        });
        Ok(())
    }

    fn event(&mut self, notify: bool) -> Result<(), Trap> {
        let data = match self.pop()? {
            Value::Str(s) => s,
            _ => return Err(Trap::Type("string expected")),
        };
        let id = self
            .pop()?
            .as_int()
            .and_then(Int::to_u32)
            .ok_or(Trap::Type("uint32 expected"))?;
        self.charge(gas::PRINT + data.len() as u64 / 8 * gas::NODE)?;
        if self.events.len() >= MAX_EVENTS {
            return Err(Trap::Limit("events per call"));
        }
        self.events.push(Event { notify, id, data });
        Ok(())
    }

    fn print(&mut self, n: usize) -> Result<(), Trap> {
        let vals = self.pop_n(n)?;
        let weight: u64 = vals.iter().map(Value::weight).sum();
        self.charge(gas::PRINT + weight * gas::NODE)?;
        if self.host.logging() {
            let mut line = String::new();
            for v in &vals {
                value::display(v, self.ctx.hrp, &mut line);
            }
            self.logs.push(line);
        }
        Ok(())
    }

    /// `CallExt`: a call of a function of an imported contract. Out of the interpreter
    /// loop (as the other contract-linking work), which stays lean for the common case.
    #[inline(never)]
    fn call_ext(&mut self, e: u16) -> Result<(), Trap> {
        self.charge(gas::CALL_EXT)?;
        let (x, addr) = self.extern_of(e)?;
        let idx = self.link(&addr)?;
        let want = (x.scope, x.is_const, x.params.len());
        self.call_into(idx, x.func, want)
    }

    /// `CallIface`: a call through interface `i` of its function `k`.
    #[inline(never)]
    fn call_iface(&mut self, i: u16, k: u16) -> Result<(), Trap> {
        let code = self.code;
        self.charge(gas::CALL_EXT)?;
        let d = code
            .table
            .interfaces
            .get(i as usize)
            .ok_or(Trap::Type("interface"))?;
        let f = d.functions.get(k as usize).ok_or(Trap::Type("interface"))?;
        let n = f.params.len();
        let (addr, idx) = self.link_below(n)?;
        let callee = self.linked[idx].code;
        let id = code.iface_id(i).ok_or(Trap::Type("interface"))?;
        let Some(&func) = callee.implementation(id).and_then(|fs| fs.get(k as usize)) else {
            return Err(Trap::Call(format!(
                "contract {} ({}) does not implement {}",
                addr.to_lower_hex_string(),
                callee.name,
                d.name
            )));
        };
        self.call_into(idx, func, (f.scope, f.is_const, n))
    }

    /// `IfaceValid`: whether the address on the stack implements interface `i`.
    #[inline(never)]
    fn iface_valid(&mut self, i: u16) -> Result<(), Trap> {
        self.charge(gas::CONTEXT)?;
        let id = self.code.iface_id(i).ok_or(Trap::Type("interface"))?;
        let Value::Address(addr) = self.pop()? else {
            return Err(Trap::Type("address expected"));
        };
        let ok = self
            .linked
            .iter()
            .find(|l| l.address == addr)
            .map(|l| l.code)
            .or_else(|| self.linker.contract(&addr).map(|(c, _)| c))
            .is_some_and(|c| c.implementation(id).is_some());
        self.stack.push(Value::Bool(ok));
        Ok(())
    }

    /// The address import `i` of the running code was bound to.
    fn import_address(&self, i: u16) -> Result<[u8; 32], Trap> {
        let import = self.code.imports.get(i as usize);
        Ok(import.ok_or(Trap::Type("import"))?.address)
    }

    /// Extern `e` of the running code and the address of the contract it belongs to.
    fn extern_of(&self, e: u16) -> Result<(&'a crate::bytecode::Extern, [u8; 32]), Trap> {
        let code: &'a Verified = self.code;
        let x = code.externs.get(e as usize).ok_or(Trap::Type("extern"))?;
        Ok((x, self.import_address(x.import)?))
    }

    /// `Deploy`: a new contract running import `i`'s code with fresh state, `on_deploy`
    /// entered with the `n` arguments on the stack; its address is left below them, so it
    /// is the expression's value once `on_deploy` returns.
    #[inline(never)]
    fn deploy(&mut self, i: u16, n: u8) -> Result<(), Trap> {
        self.charge(gas::DEPLOY_CONTRACT)?;
        if !self.global_writable || self.scope != ScopeKind::Global {
            return Err(Trap::Call(
                "contracts can be deployed only by a global function on the global lane".into(),
            ));
        }
        let origin = self.import_address(i)?;
        let src = self.link(&origin)?;
        if let Some(o) = self.linked[src].origin {
            return Err(Trap::Call(format!(
                "{} is itself deployed from {}: only a named contract's code can be deployed",
                origin.to_lower_hex_string(),
                o.to_lower_hex_string()
            )));
        }
        if self.linked.len() >= MAX_CONTRACTS {
            return Err(Trap::Limit("contracts per call"));
        }
        let code = self.linked[src].code;
        let creator = self.contract();
        let k = self.created.len() as u32;
        let address = self.host.deploy_address(&creator, k).map_err(Trap::Call)?;
        if self.linker.contract(&address).is_some()
            || self.linked.iter().any(|l| l.address == address)
        {
            return Err(Trap::Host(format!(
                "a contract already exists at {}",
                address.to_lower_hex_string()
            )));
        }
        self.linked.push(Linked {
            address,
            code,
            global: None,
            origin: Some(origin),
        });
        self.frames.0.push([None, None, None]);
        self.created.push(NewContract {
            address,
            creator,
            origin,
        });
        let idx = self.linked.len() - 1;
        let n = n as usize;
        if self.stack.len() < n {
            return Err(Trap::Type("stack underflow"));
        }
        let at = self.stack.len() - n;
        self.stack.insert(at, Value::Address(address));
        let init = code
            .functions
            .iter()
            .position(|f| f.kind == FnKind::OnDeploy);
        let Some(init) = init else {
            return if n == 0 {
                Ok(())
            } else {
                Err(Trap::Call(format!("{} has no on_deploy", code.name)))
            };
        };
        let f = &code.functions[init];
        if f.params.len() != n {
            return Err(Trap::Call(format!(
                "{}'s on_deploy is not the function the caller was compiled against",
                code.name
            )));
        }
        for (v, (_, t)) in self.stack[at + 1..].iter().zip(&f.params) {
            if !has_type(v, code.ty(*t), &code.table) {
                return Err(Trap::Call(format!(
                    "an argument of {}'s on_deploy does not have its type",
                    code.name
                )));
            }
        }
        let (cur, prev) = (self.cur, self.code);
        self.cur = idx;
        self.code = code;
        self.enter_from_stack(init as u16, n).inspect_err(|_| {
            self.cur = cur;
            self.code = prev;
        })
    }

    /// `CallAt`: extern `e` called on the contract whose address is below the arguments,
    /// which must be its import or a contract deployed from it.
    #[inline(never)]
    fn call_at(&mut self, e: u16) -> Result<(), Trap> {
        self.charge(gas::CALL_EXT)?;
        let (x, named) = self.extern_of(e)?;
        let n = x.params.len();
        let (addr, idx) = self.link_below(n)?;
        if addr != named && self.linked[idx].origin != Some(named) {
            return Err(Trap::Call(format!(
                "contract {} ({}) is not {} nor deployed from it",
                addr.to_lower_hex_string(),
                self.linked[idx].code.name,
                named.to_lower_hex_string()
            )));
        }
        self.call_into(idx, x.func, (x.scope, x.is_const, n))
    }

    /// `ContractValid`: whether the address on the stack is import `i` or a contract
    /// deployed from it.
    #[inline(never)]
    fn contract_valid(&mut self, i: u16) -> Result<(), Trap> {
        self.charge(gas::CONTEXT)?;
        let named = self.import_address(i)?;
        let Value::Address(addr) = self.pop()? else {
            return Err(Trap::Type("address expected"));
        };
        let origin = match self.linked.iter().find(|l| l.address == addr) {
            Some(l) => l.origin,
            None => self.linker.origin(&addr),
        };
        let ok = addr == named || origin == Some(named);
        self.stack.push(Value::Bool(ok));
        Ok(())
    }

    /// Takes the contract address below the `n` arguments on the stack and links it: the
    /// address and its index in `linked`.
    fn link_below(&mut self, n: usize) -> Result<([u8; 32], usize), Trap> {
        if self.stack.len() < n + 1 {
            return Err(Trap::Type("stack underflow"));
        }
        let Value::Address(addr) = self.stack.remove(self.stack.len() - n - 1) else {
            return Err(Trap::Type("address expected"));
        };
        Ok((addr, self.link(&addr)?))
    }

    /// The index in `linked` of the contract at `addr`, linking it on first use.
    #[inline(never)]
    fn link(&mut self, addr: &[u8; 32]) -> Result<usize, Trap> {
        if let Some(i) = self.linked.iter().position(|l| l.address == *addr) {
            return Ok(i);
        }
        if self.linked.len() >= MAX_CONTRACTS {
            return Err(Trap::Limit("contracts per call"));
        }
        let linker: &'a dyn Linker = self.linker;
        let (code, global) = linker
            .contract(addr)
            .ok_or_else(|| Trap::Call(format!("no contract at {}", addr.to_lower_hex_string())))?;
        self.linked.push(Linked {
            address: *addr,
            code,
            global: Some(global),
            origin: linker.origin(addr),
        });
        self.frames.0.push([None, None, None]);
        Ok(self.linked.len() - 1)
    }

    /// Enters public function `func` of linked contract `idx` with the `n` arguments on the
    /// stack, after checking that it is what the caller was compiled against (`want`:
    /// scope, constness, parameter count) and that the arguments have its types.
    #[inline(never)]
    fn call_into(
        &mut self,
        idx: usize,
        func: u16,
        want: (ScopeKind, bool, usize),
    ) -> Result<(), Trap> {
        let code = self.linked[idx].code;
        let f = code
            .functions
            .get(func as usize)
            .filter(|f| f.kind == FnKind::Normal && f.public)
            .ok_or_else(|| Trap::Call(format!("{} has no such public function", code.name)))?;
        let (scope, is_const, n) = want;
        if f.scope != scope || f.is_const != is_const || f.params.len() != n {
            return Err(Trap::Call(format!(
                "{}.{} is not the function the caller was compiled against",
                code.name, f.name
            )));
        }
        if self.stack.len() < n {
            return Err(Trap::Type("stack underflow"));
        }
        let args = &self.stack[self.stack.len() - n..];
        for (v, (_, t)) in args.iter().zip(&f.params) {
            if !has_type(v, code.ty(*t), &code.table) {
                return Err(Trap::Call(format!(
                    "an argument of {}.{} does not have its type",
                    code.name, f.name
                )));
            }
        }
        let (cur, prev) = (self.cur, self.code);
        self.cur = idx;
        self.code = code;
        self.enter_from_stack(func, n).inspect_err(|_| {
            self.cur = cur;
            self.code = prev;
        })
    }

    fn enter(&mut self, func: u16, args: Vec<Value>) -> Result<(), Trap> {
        if self.calls.len() >= MAX_CALL_DEPTH {
            return Err(Trap::Limit("call depth"));
        }
        let f = self
            .code
            .functions
            .get(func as usize)
            .ok_or(Trap::Type("function"))?;
        let base = self.locals.len();
        let nlocals = f.locals as usize;
        self.locals.extend(args);
        self.locals.resize(base + nlocals, Value::Bool(false));
        self.calls.push(CallFrame {
            contract: self.cur,
            func,
            pc: 0,
            locals: base,
            stack: self.stack.len(),
        });
        Ok(())
    }

    /// Enters `func` with its `n` arguments moved from the top of the stack.
    fn enter_from_stack(&mut self, func: u16, n: usize) -> Result<(), Trap> {
        if self.calls.len() >= MAX_CALL_DEPTH {
            return Err(Trap::Limit("call depth"));
        }
        let f = self
            .code
            .functions
            .get(func as usize)
            .ok_or(Trap::Type("function"))?;
        let base = self.locals.len();
        let from = self.stack.len() - n;
        self.locals.extend(self.stack.drain(from..));
        self.locals
            .resize(base + f.locals as usize, Value::Bool(false));
        self.calls.push(CallFrame {
            contract: self.cur,
            func,
            pc: 0,
            locals: base,
            stack: self.stack.len(),
        });
        Ok(())
    }

    /// Returns from the current function; `Some` when the entry function returned.
    fn leave(&mut self, ret: Option<Value>) -> Option<Option<Value>> {
        let frame = self.calls.pop().expect("a frame is active");
        self.locals.truncate(frame.locals);
        self.stack.truncate(frame.stack);
        let Some(top) = self.calls.last() else {
            return Some(ret);
        };
        if top.contract != self.cur {
            self.cur = top.contract;
            self.code = self.linked[self.cur].code;
        }
        if let Some(v) = ret {
            self.stack.push(v);
        }
        None
    }

    fn run(&mut self) -> Result<Option<Value>, Trap> {
        loop {
            let (func, pc) = {
                let c = self.calls.last().expect("a frame is active");
                (c.func, c.pc)
            };
            let code = self.code;
            let f = &code.functions[func as usize];
            let instr = *f.code.get(pc).ok_or(Trap::Type("pc"))?;
            self.calls.last_mut().expect("active").pc = pc + 1;
            self.charge(gas::STEP)?;
            match instr {
                Instr::Const(i) => {
                    let v = code
                        .consts
                        .get(i as usize)
                        .ok_or(Trap::Type("constant"))?
                        .1
                        .clone();
                    self.stack.push(v);
                }
                Instr::Bool(b) => self.stack.push(Value::Bool(b)),
                Instr::Default(t) => {
                    let v = default_value(
                        code.types.get(t as usize).ok_or(Trap::Type("type"))?,
                        &code.table,
                    );
                    self.charge(v.weight() * gas::NODE / 4)?;
                    self.stack.push(v);
                }
                Instr::Pop => {
                    self.pop()?;
                }
                Instr::Dup => {
                    let v = self
                        .stack
                        .last()
                        .ok_or(Trap::Type("stack underflow"))?
                        .clone();
                    self.charge(v.weight() * gas::NODE / 4)?;
                    self.stack.push(v);
                }
                Instr::DupN(n) => {
                    let n = n as usize;
                    if self.stack.len() < n {
                        return Err(Trap::Type("stack underflow"));
                    }
                    let top: Vec<Value> = self.stack[self.stack.len() - n..].to_vec();
                    let w: u64 = top.iter().map(Value::weight).sum();
                    self.charge(w * gas::NODE / 4)?;
                    self.stack.extend(top);
                }
                Instr::LoadLocal(s) => {
                    let base = self.calls.last().expect("active").locals;
                    let v = self
                        .locals
                        .get(base + s as usize)
                        .ok_or(Trap::Type("local"))?
                        .clone();
                    self.charge(v.weight() * gas::NODE / 4)?;
                    self.stack.push(v);
                }
                Instr::StoreLocal(s) => {
                    let v = self.pop()?;
                    let base = self.calls.last().expect("active").locals;
                    *self
                        .locals
                        .get_mut(base + s as usize)
                        .ok_or(Trap::Type("local"))? = v;
                }
                Instr::Load(p) => {
                    let v = self.load(p)?;
                    self.stack.push(v);
                }
                Instr::Store(p) => self.store(p)?,
                Instr::PlaceMethod(p, m) => {
                    if let Some(v) = self.place_method(p, m)? {
                        self.stack.push(v);
                    }
                }
                Instr::TokenMove(src, dst, all) => {
                    let moved = self.token_move(src, dst, all)?;
                    self.stack.push(Value::Bool(moved));
                }
                Instr::Mint => {
                    let t = self.mint()?;
                    self.stack.push(t);
                }
                Instr::Burn(p) => {
                    let burned = self.burn(Some(p))?;
                    self.stack.push(Value::Bool(burned));
                }
                Instr::BurnValue => {
                    let burned = self.burn(None)?;
                    self.stack.push(Value::Bool(burned));
                }
                Instr::ValueMethod(m) => {
                    self.charge(method_gas(m))?;
                    let args = self.pop_n(m.arity())?;
                    let recv = self.pop()?;
                    let r = if m == Method::IsContract {
                        Some(self.contract_check(address_of(&recv))?)
                    } else {
                        read_method(&recv, m, &args)?
                    };
                    if let Some(v) = r {
                        self.stack.push(v);
                    }
                }
                Instr::Field(i) => match self.pop()? {
                    Value::Struct(mut fs) if (i as usize) < fs.len() => {
                        self.stack.push(fs.swap_remove(i as usize))
                    }
                    _ => return Err(Trap::Type("struct expected")),
                },
                Instr::Index => {
                    let i = self.pop()?;
                    match self.pop()? {
                        Value::Array(mut a) => {
                            let i = as_index(&i)?;
                            if i >= a.len() {
                                return Err(Trap::BadIndex);
                            }
                            self.stack.push(a.swap_remove(i));
                        }
                        _ => return Err(Trap::Type("array expected")),
                    }
                }
                Instr::Key(t) => {
                    let k = self.pop()?;
                    match self.pop()? {
                        Value::Map(mut m) => {
                            let v = match m.remove(&k) {
                                Some(v) => v,
                                None => default_value(
                                    code.types.get(t as usize).ok_or(Trap::Type("type"))?,
                                    &code.table,
                                ),
                            };
                            self.stack.push(v);
                        }
                        _ => return Err(Trap::Type("map expected")),
                    }
                }
                Instr::Arith(op, t) => self.arith(op, t)?,
                Instr::Neg(t) => {
                    let a = int(self.pop()?)?;
                    self.stack.push(Value::Int(a.neg(t).ok_or(Trap::Overflow)?));
                }
                Instr::BitNot(t) => {
                    let a = int(self.pop()?)?;
                    self.stack
                        .push(Value::Int(a.bit_not(t).ok_or(Trap::Overflow)?));
                }
                Instr::Not => match self.pop()? {
                    Value::Bool(b) => self.stack.push(Value::Bool(!b)),
                    _ => return Err(Trap::Type("bool expected")),
                },
                Instr::Cmp(op) => {
                    let b = self.pop()?;
                    let a = self.pop()?;
                    self.charge(a.weight().min(b.weight()))?;
                    let o = a.cmp(&b);
                    self.stack.push(Value::Bool(match op {
                        CmpOp::Eq => o.is_eq(),
                        CmpOp::Ne => o.is_ne(),
                        CmpOp::Lt => o.is_lt(),
                        CmpOp::Le => o.is_le(),
                        CmpOp::Gt => o.is_gt(),
                        CmpOp::Ge => o.is_ge(),
                    }));
                }
                Instr::Convert(c) => {
                    let v = self.pop()?;
                    let r = self.convert(c, v)?;
                    self.stack.push(r);
                }
                Instr::Jump(t) => self.calls.last_mut().expect("active").pc = t as usize,
                Instr::JumpIf(t) | Instr::JumpIfNot(t) => {
                    let Value::Bool(b) = self.pop()? else {
                        return Err(Trap::Type("bool expected"));
                    };
                    if b == matches!(instr, Instr::JumpIf(_)) {
                        self.calls.last_mut().expect("active").pc = t as usize;
                    }
                }
                Instr::Call(c) => {
                    self.charge(gas::CALL)?;
                    let n = code
                        .functions
                        .get(c as usize)
                        .ok_or(Trap::Type("function"))?
                        .params
                        .len();
                    if self.stack.len() < n {
                        return Err(Trap::Type("stack underflow"));
                    }
                    self.enter_from_stack(c, n)?;
                }
                Instr::Ret => {
                    if let Some(r) = self.leave(None) {
                        return Ok(r);
                    }
                }
                Instr::RetVal => {
                    let v = self.pop()?;
                    if let Some(r) = self.leave(Some(v)) {
                        return Ok(r);
                    }
                }
                Instr::CallExt(e) => self.call_ext(e)?,
                Instr::CallIface(i, k) => self.call_iface(i, k)?,
                Instr::IfaceValid(i) => self.iface_valid(i)?,
                Instr::Deploy(i, n) => self.deploy(i, n)?,
                Instr::CallAt(e) => self.call_at(e)?,
                Instr::ContractValid(i) => self.contract_valid(i)?,
                Instr::Relay(to, c) => self.relay(to, c)?,
                Instr::Ctx(c) => {
                    let v = self.context(c)?;
                    self.stack.push(v);
                }
                Instr::Print(n) => self.print(n as usize)?,
                Instr::Event(k) => self.event(k == 1)?,
                Instr::Assert => match self.pop()? {
                    Value::Bool(true) => {}
                    Value::Bool(false) => return Err(Trap::Assert(None)),
                    _ => return Err(Trap::Type("bool expected")),
                },
                Instr::AssertMsg => {
                    let msg = self.pop()?;
                    match self.pop()? {
                        Value::Bool(true) => {}
                        Value::Bool(false) => {
                            return Err(Trap::Assert(match msg {
                                Value::Str(s) => Some(s),
                                _ => None,
                            }))
                        }
                        _ => return Err(Trap::Type("bool expected")),
                    }
                }
                Instr::Trap => return Err(Trap::MissingReturn),
            }
        }
    }

    /// Encodes the changed rows, global variables and element rows of every contract the
    /// call touched, charging for them, and checks that the call conserved token value
    /// across all of them.
    fn commit(&mut self) -> Result<(Commit, Vec<ContractWrites>), Trap> {
        // Token value in the changed state before and after the call.
        let mut held = (Holdings::new(), Holdings::new());
        let mut frames =
            std::mem::replace(&mut self.frames, Frames(Inline::new([None, None, None])))
                .0
                .iter_owned();
        let mut own = None;
        let mut others = Vec::new();
        for c in 0..self.linked.len() {
            let group = frames.next().unwrap_or([None, None, None]);
            self.cur = c;
            self.code = self.linked[c].code;
            let (writes, global_writes, elem_writes) = self.commit_contract(group, &mut held)?;
            if c == 0 {
                own = Some((writes, global_writes, elem_writes));
            } else if !(writes.is_empty() && global_writes.is_empty() && elem_writes.is_empty()) {
                others.push(ContractWrites {
                    contract: self.linked[c].address,
                    writes,
                    global_writes,
                    elem_writes,
                });
            }
        }
        let (before, after) = held;
        for id in self.moved_ids(&[&before, &after]) {
            let name = crate::token::id_to_symbol(id).unwrap_or_else(|| format!("asset {id}"));
            let (received, deposited, relayed) = (
                self.received.get(id),
                self.deposited.get(id),
                self.relayed.get(id),
            );
            let (minted, burned) = (self.minted.get(id), self.burned.get(id));
            let (was, now) = (before.get(id), after.get(id));
            if received + minted + was != deposited + relayed + burned + now {
                let made = if minted + burned > 0 {
                    format!(", mints {minted}, burns {burned}")
                } else {
                    String::new()
                };
                return Err(Trap::Token(format!(
                    "value is not conserved: the call received {received} {name} and its state held {was}, but it deposits {deposited}, relays {relayed}{made} and its state would hold {now} (a token cannot be copied or dropped: keep it in state, deposit() it or relay it)"
                )));
            }
            if [received, deposited, relayed, minted, burned]
                .iter()
                .any(|a| *a > u128::from(u64::MAX))
            {
                return Err(Trap::Token(format!(
                    "more than 2^64 units of {name} move in one call"
                )));
            }
        }
        Ok((own.unwrap_or_default(), others))
    }

    /// [`Self::commit`] for the frames of the running contract.
    fn commit_contract(
        &mut self,
        frames: [Option<Frame<'a>>; 3],
        held: &mut (Holdings, Holdings),
    ) -> Result<Commit, Trap> {
        let code = self.code;
        let mut writes = Vec::new();
        let mut global_writes = Vec::new();
        let mut elem_writes = Vec::new();
        for (slot, frame) in frames.into_iter().enumerate() {
            let Some(frame) = frame else { continue };
            if !frame.dirty() {
                continue;
            }
            let scope = match slot {
                0 => self.scope,
                1 => ScopeKind::Shard,
                _ => ScopeKind::Global,
            };
            let vars = code.state_of(scope);
            let mut lens: Vec<Option<u32>> = vec![None; vars.len()];
            let mut content = Vec::new();
            for (i, a) in frame.arrays.into_iter().enumerate() {
                let Some(a) = a.filter(ArrayVar::changed) else {
                    continue;
                };
                let var = i as u16;
                let elem = self
                    .stored_elem(scope, var)
                    .ok_or(Trap::Type("stored array"))?;
                if code.holds_tokens() && code.table.holds_token(elem) {
                    self.count_array_tokens(scope, var, &a, elem, held)?;
                }
                if a.len != a.orig_len {
                    lens[i] = Some(a.len);
                }
                content.extend(a.rows(elem, code)?.into_iter().map(|(k, v)| (var, k, v)));
            }
            for (i, m) in frame.maps.into_iter().enumerate() {
                let Some(m) = m.filter(MapVar::changed) else {
                    continue;
                };
                let var = i as u16;
                let (_, vt) = self
                    .stored_map(scope, var)
                    .ok_or(Trap::Type("stored map"))?;
                if code.holds_tokens() && code.table.holds_token(vt) {
                    self.count_map_tokens(scope, var, &m, vt, held)?;
                }
                if m.len != m.orig_len {
                    lens[i] = Some(m.len);
                }
                content.extend(m.rows(vt, code)?.into_iter().map(|(k, v)| (var, k, v)));
            }
            for (var, key, value) in content {
                let len = value.as_ref().map_or(0, Vec::len) as u64;
                self.charge(gas::WRITE_ROW + len * gas::WRITE_BYTE)?;
                elem_writes.push(ElemWrite {
                    scope,
                    var,
                    key,
                    value,
                });
            }
            if slot == 2 {
                for (i, v) in frame.modified.into_iter().enumerate() {
                    if let Some(v) = v {
                        let t = code.ty(vars[i].1);
                        if !has_type(&v, t, &code.table) {
                            return Err(Trap::Type("global state of the wrong type"));
                        }
                        if code.holds_tokens() && code.table.holds_token(t) {
                            if let Some(old) = self.linked[self.cur].global.and_then(|g| g.get(i)) {
                                held.0.add_value(old);
                            }
                            held.1.add_value(&v);
                        }
                        self.charge(gas::WRITE_GLOBAL_VAR + v.weight() * gas::NODE)?;
                        global_writes.push((i as u16, v));
                    }
                }
                for (i, n) in lens.into_iter().enumerate() {
                    if let Some(n) = n {
                        self.charge(gas::WRITE_GLOBAL_VAR)?;
                        global_writes.push((i as u16, layout::len_value(n)));
                    }
                }
                global_writes.sort_by_key(|(i, _)| *i);
                continue;
            }
            let Base::Owned(mut base) = frame.base else {
                return Err(Trap::Type("row frame"));
            };
            for (i, v) in frame.modified.into_iter().enumerate() {
                if let Some(v) = v {
                    if !has_type(&v, code.ty(vars[i].1), &code.table) {
                        return Err(Trap::Type("state of the wrong type"));
                    }
                    base[i] = v;
                }
            }
            for (i, n) in lens.into_iter().enumerate() {
                if let Some(n) = n {
                    base[i] = layout::len_value(n);
                }
            }
            let new = layout::encode_row(code, scope, &base)
                .map_err(|_| Trap::Type("state of the wrong type"))?;
            if new == frame.original {
                continue;
            }
            if code.holds_tokens()
                && vars
                    .iter()
                    .any(|(_, t)| code.table.holds_token(code.ty(*t)))
            {
                let old = match &frame.original {
                    None => Vec::new(),
                    Some(b) => layout::decode_row(code, scope, b)
                        .map_err(|e| Trap::Host(format!("stored state does not decode: {e}")))?,
                };
                old.iter().for_each(|v| held.0.add_value(v));
                base.iter().for_each(|v| held.1.add_value(v));
            }
            let len = new.as_ref().map(Vec::len).unwrap_or(0) as u64;
            self.charge(gas::WRITE_ROW + len * gas::WRITE_BYTE)?;
            writes.push((scope, new));
        }
        Ok((writes, global_writes, elem_writes))
    }

    /// Adds the token value of the element rows a stored array's change rewrites: before
    /// (read again: the host still has the rows as they were) and after.
    fn count_array_tokens(
        &mut self,
        scope: ScopeKind,
        var: u16,
        a: &ArrayVar,
        elem: &Type,
        held: &mut (Holdings, Holdings),
    ) -> Result<(), Trap> {
        for &i in &a.written {
            if i < a.orig_len {
                let row = self.read_content(scope, var, &ElemKey::Index(i))?;
                let old = layout::decode_elem(elem, self.code, row.as_deref())
                    .map_err(|e| Trap::Host(format!("stored element does not decode: {e}")))?;
                held.0.add_value(&old);
            }
            if i < a.len {
                if let Some(v) = a.cache.get(&i) {
                    held.1.add_value(v);
                }
            }
        }
        Ok(())
    }

    /// As [`Self::count_array_tokens`] for the entry rows of a stored map.
    fn count_map_tokens(
        &mut self,
        scope: ScopeKind,
        var: u16,
        m: &MapVar,
        vt: &Type,
        held: &mut (Holdings, Holdings),
    ) -> Result<(), Trap> {
        for kb in &m.written_entries {
            let Some(e) = m.entries.get(kb) else { continue };
            if e.stored {
                if let Some(b) = self.read_content(scope, var, &ElemKey::Key(kb.clone()))? {
                    let (_, old) = layout::decode_entry(vt, self.code, &b).map_err(|e| {
                        Trap::Host(format!("stored map entry does not decode: {e}"))
                    })?;
                    held.0.add_value(&old);
                }
            }
            if let Some((_, x)) = &e.now {
                held.1.add_value(x);
            }
        }
        Ok(())
    }
}

/// Gas of a method beyond its instruction: a `bigint` division pays for the largest
/// `bigint` (127 words), so its price does not depend on the value.
fn method_gas(m: Method) -> u64 {
    match m {
        Method::DivUint32 => 128,
        _ => 0,
    }
}

fn address_of(v: &Value) -> Option<[u8; 32]> {
    match v {
        Value::Address(a) => Some(*a),
        _ => None,
    }
}

/// Methods that only read their receiver.
fn read_method(recv: &Value, m: Method, args: &[Value]) -> Result<Option<Value>, Trap> {
    Ok(Some(match (m, recv) {
        (Method::Length, Value::Array(a)) => Value::Int(Int::from(a.len() as u64)),
        (Method::Has, Value::Map(mp)) => {
            Value::Bool(mp.contains_key(args.first().ok_or(Trap::Type("argument"))?))
        }
        (Method::StrLength, Value::Str(s)) => Value::Int(Int::from(s.len() as u64)),
        (Method::DivUint32, Value::Int(x)) => {
            let d = match args.first() {
                Some(Value::Int(d)) => d,
                _ => return Err(Trap::Type("uint32 divisor expected")),
            };
            if d.is_zero() {
                return Err(Trap::DivisionByZero);
            }
            Value::Int(x.div(d, NumTy::Big).ok_or(Trap::Overflow)?)
        }
        (Method::IsUser, Value::Address(a)) => {
            Value::Bool(bitcoin::secp256k1::XOnlyPublicKey::from_slice(a).is_ok())
        }
        (Method::TokenId, Value::Token { id, .. }) => Value::Int(Int::from(*id)),
        (Method::TokenAmount, Value::Token { amount, .. }) => Value::Int(Int::from(*amount)),
        _ => return Err(Trap::Type("method receiver")),
    }))
}

fn as_len(v: Option<&Value>) -> Result<u64, Trap> {
    match v {
        Some(Value::Int(i)) => i.to_u64().ok_or(Trap::Limit("array length")),
        _ => Err(Trap::Type("length expected")),
    }
}

/// A call to run.
pub struct Call<'a> {
    /// The contract's address.
    pub contract: [u8; 32],
    /// The contract's code.
    pub code: &'a Verified,
    /// Entry function.
    pub func: u16,
    /// Its arguments (already type-checked by decoding).
    pub args: Vec<Value>,
    /// Context.
    pub ctx: &'a Context,
    /// Gas available.
    pub gas_limit: u64,
    /// The contract's global state (read-only unless `global_writable`).
    pub global: &'a [Value],
    /// Running on the global lane (every contract's global state is writable).
    pub global_writable: bool,
    /// The other deployed contracts, for calls into them.
    pub linker: &'a dyn Linker,
}

/// Runs a micro-transaction.
pub fn execute(call: Call<'_>, host: &mut dyn Host) -> Outcome {
    let scope = call
        .code
        .functions
        .get(call.func as usize)
        .map(|f| f.scope)
        .unwrap_or(ScopeKind::Global);
    let (stack, locals, calls) = take_buffers();
    let mut m = Machine {
        code: call.code,
        cur: 0,
        linked: Inline::new(Linked {
            address: call.contract,
            code: call.code,
            global: Some(call.global),
            origin: call.linker.origin(&call.contract),
        }),
        linker: call.linker,
        ctx: call.ctx,
        host,
        scope,
        limit: call.gas_limit,
        used: 0,
        stack,
        locals,
        calls,
        frames: Frames(Inline::new([None, None, None])),
        global_writable: call.global_writable,
        relays: Vec::new(),
        logs: Vec::new(),
        events: Vec::new(),
        random_counter: 0,
        created: Vec::new(),
        received: {
            let mut h = Holdings::new();
            if call.ctx.kind == TxKind::Normal {
                h.add(crate::token::rxbtc(), u128::from(call.ctx.supplied));
                for (id, a) in &call.ctx.supplied_assets {
                    h.add(*id, u128::from(*a));
                }
            }
            if call.code.holds_tokens() {
                call.args.iter().for_each(|v| h.add_value(v));
            }
            h
        },
        deposited: Holdings::new(),
        relayed: Holdings::new(),
        minted: Holdings::new(),
        burned: Holdings::new(),
    };
    let result = match call.code.functions.get(call.func as usize) {
        None => Err(Trap::Type("no such function")),
        Some(f) if f.params.len() != call.args.len() => Err(Trap::Type("argument count")),
        Some(_) => m.enter(call.func, call.args).and_then(|()| m.run()),
    };
    let result = result.and_then(|r| m.commit().map(|w| (r, w)));
    return_buffers((
        std::mem::take(&mut m.stack),
        std::mem::take(&mut m.locals),
        std::mem::take(&mut m.calls),
    ));
    let tokens = m.token_flow();
    match result {
        Ok((r, ((writes, global_writes, elem_writes), calls))) => Outcome {
            result: Ok(r),
            gas_used: m.used,
            writes,
            global_writes,
            elem_writes,
            calls,
            relays: m.relays,
            logs: m.logs,
            events: m.events,
            tokens,
            created: m.created,
        },
        Err(t) => Outcome {
            result: Err(t),
            gas_used: m.used,
            writes: Vec::new(),
            global_writes: Vec::new(),
            elem_writes: Vec::new(),
            calls: Vec::new(),
            relays: Vec::new(),
            logs: m.logs,
            events: Vec::new(),
            tokens: TokenFlow::default(),
            created: Vec::new(),
        },
    }
}

pub use super::layout::{decode_row, default_row, encode_row};

/// An empty map (helper for hosts building state).
pub fn empty_map() -> Value {
    Value::Map(BTreeMap::new())
}
