//! Imports, calls between contracts and interfaces, run against an in-memory set of
//! deployed contracts.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::ast::ScopeKind;
use super::layout::ElemKey;
use super::num::Int;
use super::value::Value;
use super::vm::{self, Context, Host, Linker, Outcome, Trap, TxKind};
use super::{compile_with, Imports, Verified};

/// Deployed contracts by address, with their `@global` rows; and the origin of each
/// contract made by `deploy`.
#[derive(Default)]
struct Contracts(
    BTreeMap<[u8; 32], (Arc<Verified>, Vec<Value>)>,
    BTreeMap<[u8; 32], [u8; 32]>,
);

impl Imports for Contracts {
    fn resolve(
        &self,
        _: usize,
        _: Option<&str>,
        name: &str,
    ) -> Result<([u8; 32], Arc<Verified>), String> {
        self.0
            .iter()
            .find(|(a, (c, _))| c.name == name && !self.1.contains_key(*a))
            .map(|(a, (c, _))| (*a, c.clone()))
            .ok_or_else(|| format!("no contract named `{name}` is deployed"))
    }
    fn code(&self, addr: &[u8; 32]) -> Option<Arc<Verified>> {
        self.0.get(addr).map(|(c, _)| c.clone())
    }
}

impl Linker for Contracts {
    fn contract(&self, addr: &[u8; 32]) -> Option<(&Verified, &[Value])> {
        self.0.get(addr).map(|(c, g)| (&**c, g.as_slice()))
    }
    fn origin(&self, addr: &[u8; 32]) -> Option<[u8; 32]> {
        self.1.get(addr).copied()
    }
}

/// Rows of every contract: by contract, scope and address (0 for the one shard).
#[derive(Default)]
struct Rows {
    /// The address the running call is for.
    who: u8,
    rows: HashMap<([u8; 32], ScopeKind, u8), Vec<u8>>,
    elems: HashMap<ElemAt, Vec<u8>>,
    /// Addresses handed to `deploy` so far.
    deployed: u8,
}

/// Contract, scope, address, variable, element.
type ElemAt = ([u8; 32], ScopeKind, u8, u16, ElemKey);

impl Rows {
    fn target(&self, scope: ScopeKind) -> u8 {
        if scope == ScopeKind::Address {
            self.who
        } else {
            0
        }
    }
}

impl Host for Rows {
    fn read_row(&mut self, c: &[u8; 32], scope: ScopeKind) -> Result<Option<Vec<u8>>, String> {
        Ok(self.rows.get(&(*c, scope, self.target(scope))).cloned())
    }
    fn read_elem(
        &mut self,
        c: &[u8; 32],
        scope: ScopeKind,
        var: u16,
        key: &ElemKey,
    ) -> Result<Option<Vec<u8>>, String> {
        let t = self.target(scope);
        Ok(self.elems.get(&(*c, scope, t, var, key.clone())).cloned())
    }
    fn is_contract(&self, _: &[u8; 32]) -> bool {
        false
    }
    fn logging(&self) -> bool {
        true
    }
    fn deploy_address(&mut self, _: &[u8; 32], _: u32) -> Result<[u8; 32], String> {
        self.deployed += 1;
        Ok([0xA0 + self.deployed; 32])
    }
}

#[derive(Default)]
struct World {
    contracts: Contracts,
    rows: Rows,
}

impl World {
    fn deploy(&mut self, at: u8, src: &str) -> [u8; 32] {
        let code = compile_with(src, &self.contracts).unwrap_or_else(|e| panic!("{e}\n{src}"));
        let global = vm::default_row(&code, ScopeKind::Global);
        self.contracts.0.insert([at; 32], (Arc::new(code), global));
        [at; 32]
    }

    /// Runs `func` of the contract at `at` for address `who` and applies what it changed.
    fn call(&mut self, at: [u8; 32], func: &str, args: Vec<Value>, who: u8) -> Outcome {
        self.call_with(at, func, args, who, 0)
    }

    /// [`Self::call`] with `supplied` satoshis attached.
    fn call_with(
        &mut self,
        at: [u8; 32],
        func: &str,
        args: Vec<Value>,
        who: u8,
        supplied: u64,
    ) -> Outcome {
        let (code, global) = self.contracts.0[&at].clone();
        let (f, _) = code.function(func).expect("function exists");
        let c = Context {
            supplied_assets: Vec::new(),
            kind: TxKind::Normal,
            self_address: [who; 32],
            sender: [who; 32],
            signers: vec![[who; 32]],
            initiator: [who; 32],
            tx_timestamp: 5,
            origin_shard: 0,
            shard_order: 0,
            height: 7,
            shard_index: 0,
            timestamp: 5,
            miner: [9; 32],
            random_seed: [3; 32],
            hrp: "trx",
            supplied,
        };
        self.rows.who = who;
        let out = vm::execute(
            vm::Call {
                contract: at,
                code: &code,
                func: f,
                args,
                ctx: &c,
                gas_limit: 10_000_000,
                global: &global,
                global_writable: code.functions[f as usize].scope == ScopeKind::Global,
                linker: &self.contracts,
            },
            &mut self.rows,
        );
        let mut apply = |contract: [u8; 32], w: &[(ScopeKind, Option<Vec<u8>>)], e: &[_]| {
            for (scope, row) in w {
                let k = (contract, *scope, self.rows.target(*scope));
                match row {
                    Some(b) => self.rows.rows.insert(k, b.clone()),
                    None => self.rows.rows.remove(&k),
                };
            }
            for w in e {
                let w: &crate::layout::ElemWrite = w;
                let k = (
                    contract,
                    w.scope,
                    self.rows.target(w.scope),
                    w.var,
                    w.key.clone(),
                );
                match &w.value {
                    Some(b) => self.rows.elems.insert(k, b.clone()),
                    None => self.rows.elems.remove(&k),
                };
            }
        };
        for n in &out.created {
            let code = self.contracts.0[&n.origin].0.clone();
            let global = vm::default_row(&code, ScopeKind::Global);
            self.contracts.0.insert(n.address, (code, global));
            self.contracts.1.insert(n.address, n.origin);
        }
        apply(at, &out.writes, &out.elem_writes);
        for o in &out.calls {
            apply(o.contract, &o.writes, &o.elem_writes);
        }
        let mut globals = vec![(at, out.global_writes.clone())];
        globals.extend(
            out.calls
                .iter()
                .map(|o| (o.contract, o.global_writes.clone())),
        );
        for (a, ws) in globals {
            let g = &mut self.contracts.0.get_mut(&a).unwrap().1;
            for (i, v) in ws {
                g[i as usize] = v;
            }
        }
        out
    }

    /// State variable `name` of `scope` of the contract at `at` (rows without containers;
    /// address state of address 7).
    fn get(&self, at: [u8; 32], scope: ScopeKind, name: &str) -> Value {
        let code = &self.contracts.0[&at].0;
        let who = if scope == ScopeKind::Address { 7 } else { 0 };
        let row = match scope {
            ScopeKind::Global => self.contracts.0[&at].1.clone(),
            _ => match self.rows.rows.get(&(at, scope, who)) {
                Some(b) => vm::decode_row(code, scope, b).unwrap(),
                None => vm::default_row(code, scope),
            },
        };
        let i = code
            .state_of(scope)
            .iter()
            .position(|(n, _)| n == name)
            .expect("variable exists");
        row[i].clone()
    }
}

fn int(v: i128) -> Value {
    Value::Int(Int::Small(v))
}

fn ok(out: &Outcome) {
    assert!(out.result.is_ok(), "{:?}\n{:?}", out.result, out.logs);
}

const COUNTER: &str = r#"
contract Counter {
    struct Pair { uint32 a; uint32 b; }
    enum Kind { Plain, Fancy }
    @address uint64 count;
    @address Pair last;
    @shard uint64 total;
    @global uint32 limit;
    @address function uint64 bump(Pair p, Kind k) public {
        count += 1u64;
        if (k == Kind.Fancy) { count += 10u64; }
        last = p;
        add();
        return count;
    }
    @shard function add() public { total += 1u64; }
    @global function uint32 get_limit() public const { return limit; }
    @global function set_limit(uint32 l) public { limit = l; }
    @address function hidden() { count = 0u64; }
    @address function uint64 seen() public const { return count; }
    @address function address me() public const { return __transaction.get_self_address(); }
    @address function fail() public { __debug.assert(false, "counter says no"); }
    @address function ping(address to) public { relay@to pong(); }
    @address function pong() { count += 100u64; }
}
"#;

const USER: &str = r#"
import Counter as C;
contract User {
    @address C.Pair mine;
    @address uint64 calls;
    @address C.Kind kind;
    @address function go(uint32 x) export {
        mine = C.Pair(x, x + 1u32);
        kind = C.Kind.Fancy;
        uint64 n = C.bump(mine, kind);
        __debug.assert(n == C.seen());
        __debug.assert(C.get_limit() == 0u32);
        __debug.assert(C.me() == __transaction.get_self_address());
        __debug.assert(C.__id() != __id());
        calls = n;
    }
    @address function go_then_fail() export {
        C.bump(mine, C.Kind.Plain);
        calls = 99u64;
        __debug.assert(false);
    }
    @address function callee_fails() export {
        calls = 1u64;
        C.fail();
    }
    @address function ping(address to) export { C.ping(to); }
    function configure(uint32 l) export { C.set_limit(l); }
}
"#;

#[test]
fn calls_into_another_contract_run_on_the_same_target_and_commit_together() {
    let mut w = World::default();
    let counter = w.deploy(1, COUNTER);
    let user = w.deploy(2, USER);
    let out = w.call(user, "go", vec![int(5)], 7);
    ok(&out);
    // The caller's own rows and the callee's, each under its contract.
    assert_eq!(out.calls.len(), 1);
    assert_eq!(out.calls[0].contract, counter);
    assert_eq!(w.get(counter, ScopeKind::Address, "count"), int(11));
    assert_eq!(
        w.get(counter, ScopeKind::Address, "last"),
        Value::Struct(vec![int(5), int(6)])
    );
    assert_eq!(w.get(counter, ScopeKind::Shard, "total"), int(1));
    assert_eq!(w.get(user, ScopeKind::Address, "calls"), int(11));
    let again = w.call(user, "go", vec![int(1)], 7);
    ok(&again);
    assert_eq!(w.get(counter, ScopeKind::Address, "count"), int(22));
    assert_eq!(w.get(counter, ScopeKind::Shard, "total"), int(2));
    // Another address has its own instance of the callee's address state.
    ok(&w.call(user, "go", vec![int(1)], 8));
    assert_eq!(w.get(counter, ScopeKind::Address, "count"), int(22));
    assert_eq!(w.get(counter, ScopeKind::Shard, "total"), int(3));

    // A failure after the call, or inside it, keeps nothing of either contract.
    let out = w.call(user, "go_then_fail", vec![], 7);
    assert!(matches!(out.result, Err(Trap::Assert(None))));
    assert!(out.writes.is_empty() && out.calls.is_empty());
    let out = w.call(user, "callee_fails", vec![], 7);
    assert_eq!(
        out.result,
        Err(Trap::Assert(Some("counter says no".into())))
    );
    assert!(out.writes.is_empty() && out.calls.is_empty());
    assert_eq!(w.get(counter, ScopeKind::Address, "count"), int(22));
    assert_eq!(w.get(user, ScopeKind::Address, "calls"), int(22));

    // A relay the callee emits names the callee's contract and function.
    let out = w.call(user, "ping", vec![Value::Address([4; 32])], 7);
    ok(&out);
    assert_eq!(out.relays.len(), 1);
    assert_eq!(out.relays[0].contract, Some(counter));
    let code = &w.contracts.0[&counter].0;
    assert_eq!(code.functions[out.relays[0].func as usize].name, "pong");

    // On the global lane, a global function may change another contract's global state.
    ok(&w.call(user, "configure", vec![int(42)], 7));
    assert_eq!(w.get(counter, ScopeKind::Global, "limit"), int(42));
}

#[test]
fn imports_are_checked_when_compiling() {
    let mut w = World::default();
    w.deploy(1, COUNTER);
    let refuse = |src: &str, needle: &str| {
        let e = compile_with(src, &w.contracts).expect_err(src).to_string();
        assert!(e.contains(needle), "{needle:?} not in: {e}");
    };
    refuse(
        "import Nope; contract X {}",
        "`import Nope`: no contract named `Nope` is deployed",
    );
    refuse(
        "import Counter as C; contract X { @address function f() export { C.hidden(); } }",
        "is not public",
    );
    refuse(
        "import Counter as C; contract X { @address function f() export { C.nope(); } }",
        "has no function `nope`",
    );
    refuse(
        "import Counter as C; contract X { @shard function f() { C.bump(C.Pair(1u32, 2u32), C.Kind.Plain); } }",
        "cannot be called from a @shard function",
    );
    refuse(
        "import Counter as C; contract X { @address function f() const { C.add(); } }",
        "not const",
    );
    refuse(
        "import Counter as C; contract X { @address function f() export { C.bump(1u32, C.Kind.Plain); } }",
        "expected C.Pair, found uint32",
    );
    refuse(
        "import Counter as C; contract X { @address C.Nope x; }",
        "defines no type `Nope`",
    );
    refuse(
        "import Counter; import Counter as D; contract X {}",
        "imported twice",
    );
    refuse("import Counter as X; contract X {}", "already a name");
    // A contract type is a type like any other (PREDA spec 5.9).
    let x = compile_with(
        "import Counter as C; contract X { @address C x; }",
        &w.contracts,
    )
    .unwrap();
    let (_, t) = &x.state_of(ScopeKind::Address)[0];
    assert_eq!(x.table.name(x.ty(*t)), "Counter");
    // A non-public function that is overloaded with a public one is not offered.
    compile_with(
        "import Counter; contract X { @address function uint64 f() export { return Counter.seen(); } }",
        &w.contracts,
    )
    .unwrap();
}

#[test]
fn types_reached_through_an_import_are_one_type() {
    let mut w = World::default();
    let counter = w.deploy(1, COUNTER);
    // B wraps Counter's Pair in its own struct and passes it on; C reaches Counter only
    // through B, by Counter's name.
    let b = w.deploy(
        2,
        r#"import Counter;
        contract B {
            struct S { Counter.Pair p; int32 i; }
            @address function uint64 g2(S s) public { return Counter.bump(s.p, Counter.Kind.Plain); }
        }"#,
    );
    let c = w.deploy(
        3,
        r#"import B as Source2;
        contract C {
            @address function go() export {
                Source2.S s2;
                s2.p = Counter.Pair(3u32, 4u32);
                __debug.assert(Source2.g2(s2) == 1u64);
            }
        }"#,
    );
    ok(&w.call(c, "go", vec![], 7));
    assert_eq!(
        w.get(counter, ScopeKind::Address, "last"),
        Value::Struct(vec![int(3), int(4)])
    );
    let code = &w.contracts.0[&c].0;
    // B explicitly, Counter through it; Counter's Pair is in C's table once.
    assert_eq!(code.imports.len(), 2);
    assert!(code.imports.iter().any(|i| i.address == b && i.explicit));
    assert!(code
        .imports
        .iter()
        .any(|i| i.address == counter && !i.explicit));
    let pairs = code
        .table
        .structs
        .iter()
        .filter(|s| s.name == "Counter.Pair")
        .count();
    assert_eq!(pairs, 1);
}

const IFACE_A: &str = r#"
contract A implements IA {
    interface IA {
        @address function bool a() public;
        @address function bool b(int32 i) public;
        @address function a(int32 i) public;
    }
    @address int32 got;
    @address function bool a() public { __debug.print("A::a()"); return true; }
    @address function bool b(int32 j) public { __debug.print("A::b(int32)"); got = j; return true; }
    @address function a(int32 i) public { __debug.print("A::a(int32)"); got += i; }
}
"#;

const IFACE_B: &str = r#"
import A;
contract B implements IB, A.IA {
    interface IB {
        @address function bool a() public;
        @address function bool b(int32 i) public;
        @address function a(int32 i) public;
    }
    @address function bool a() public { __debug.print("B::a()"); return true; }
    @address function bool b(int32 j) public { __debug.print("B::b(int32)"); return true; }
    @address function a(int32 i) public { __debug.print("B::a(int32)"); }
    @address function f() export {
        A.IA ia = A.IA(A.__id());
        ia.a();
        ia.b(1);
        ia.a(2);
        __debug.assert(ia.__valid() && ia.__id() == A.__id());
        IB ib = IB(__id());
        ib.a();
        ib.b(1);
        ib.a(1);
        A.IA mine = A.IA(__id());
        mine.a();
        IB wrong = IB(A.__id());
        __debug.assert(!wrong.__valid());
    }
    @address function g(address x) export {
        IB i = IB(x);
        i.a();
    }
    @address function h(A.IA x, int32 v) export { x.a(v); }
}
"#;

#[test]
fn interfaces_route_calls_to_the_contracts_that_implement_them() {
    let mut w = World::default();
    let a = w.deploy(1, IFACE_A);
    let b = w.deploy(2, IFACE_B);
    let out = w.call(b, "f", vec![], 7);
    ok(&out);
    let lines: Vec<&str> = out.logs.iter().map(|l| l.trim()).collect();
    assert_eq!(
        lines,
        [
            "A::a()",
            "A::b(int32)",
            "A::a(int32)",
            "B::a()",
            "B::b(int32)",
            "B::a(int32)",
            "B::a()"
        ],
        "{:?}",
        out.logs
    );
    assert_eq!(w.get(a, ScopeKind::Address, "got"), int(3));
    // An address that does not implement the interface stops the call.
    let out = w.call(b, "g", vec![Value::Address(a)], 7);
    match out.result {
        Err(Trap::Call(m)) => assert!(m.contains("does not implement IB"), "{m}"),
        other => panic!("{other:?}"),
    }
    let out = w.call(b, "g", vec![Value::Address([9; 32])], 7);
    assert!(matches!(out.result, Err(Trap::Call(m)) if m.contains("no contract")));
    // An interface value passed in by a transaction.
    ok(&w.call(b, "h", vec![Value::Address(a), int(10)], 7));
    assert_eq!(w.get(a, ScopeKind::Address, "got"), int(13));
    // Implementing an interface means all of it, as declared.
    let refuse = |src: &str, needle: &str| {
        let e = compile_with(src, &w.contracts).expect_err(src).to_string();
        assert!(e.contains(needle), "{needle:?} not in: {e}");
    };
    refuse(
        "import A; contract X implements A.IA { @address function bool a() public { return true; } }",
        "does not implement @address  a(int32)",
    );
    refuse(
        "import A; contract X implements A.IA { @address function bool a() { return true; } @address function bool b(int32 i) public { return true; } @address function a(int32 i) public {} }",
        "must be `public`",
    );
    refuse(
        "contract X implements I { interface I { @shard function f() public; } @address function f() public {} }",
        "must be @shard",
    );
    refuse(
        "contract X { interface I { @address function f() public; } @address function g() export { I i = I(__id()); i.g(); } }",
        "interface `I` has no function `g`",
    );
}

#[test]
fn tokens_move_between_contracts_and_value_is_conserved_across_them() {
    let mut w = World::default();
    let bank = w.deploy(
        1,
        r#"contract Bank {
            @address token held;
            @address function keep(token t) public { t.transfer_all(held); }
            @address function token give() public { token t; held.transfer_all(t); return t; }
        }"#,
    );
    let payer = w.deploy(
        2,
        r#"import Bank;
        contract Payer {
            @address function pay() export {
                array<token> s = __transaction.get_supplied_tokens();
                Bank.keep(s[0u]);
            }
            @address function pay_twice() export {
                array<token> s = __transaction.get_supplied_tokens();
                Bank.keep(s[0u]);
                Bank.keep(s[0u]);
            }
            @address function withdraw() export { Bank.give().deposit(); }
            @address function drop() export { Bank.give(); }
        }"#,
    );
    let out = w.call_with(payer, "pay", vec![], 7, 500);
    ok(&out);
    assert_eq!((out.tokens.received, out.tokens.kept()), (500, 500));
    let held = w.get(bank, ScopeKind::Address, "held");
    assert!(matches!(held, Value::Token { amount: 500, .. }), "{held:?}");
    // Passing one token to two calls would make value: refused, nothing kept.
    let out = w.call_with(payer, "pay_twice", vec![], 7, 500);
    assert!(
        matches!(out.result, Err(Trap::Token(_))),
        "{:?}",
        out.result
    );
    assert!(out.calls.is_empty());
    // Dropping what another contract gave out would lose it: refused.
    let out = w.call(payer, "drop", vec![], 7);
    assert!(
        matches!(out.result, Err(Trap::Token(_))),
        "{:?}",
        out.result
    );
    let out = w.call(payer, "withdraw", vec![], 7);
    ok(&out);
    assert_eq!((out.tokens.deposited, out.tokens.kept()), (500, -500));
    let held = w.get(bank, ScopeKind::Address, "held");
    assert!(matches!(held, Value::Token { amount: 0, .. }), "{held:?}");
}

const DEPLOYABLE: &str = r#"
contract ContractA {
    int32 value;
    @address int32 bumps;
    function on_deploy(int32 v) {
        __debug.assert(v >= 0i32, "negative start");
        value = v;
    }
    function int32 get_value() public const { return value; }
    function set_value(int32 v) public { value = v; }
    @address function int32 bump() public { bumps += 1i32; return bumps; }
}
"#;

const DEPLOYER: &str = r#"
import ContractA as A;
contract ContractB {
    address last;
    array<address> made;
    function f() export {
        address cid0 = deploy A(42);    // deploy a new contract using A's code
        A a0 = A(cid0);                 // reference it through a contract type
        auto cid1 = deploy A(100);
        A a1 = A(cid1);
        __debug.assert(a0.get_value() == 42i32);
        __debug.assert(a1.get_value() == 100i32);
        __debug.assert(A.get_value() == 7i32, "the named contract keeps its own state");
        __debug.assert(a0.__valid() && a1.__valid() && A(A.__id()).__valid());
        __debug.assert(!A(__id()).__valid(), "this contract is not deployed from A");
        __debug.assert(a0.__id() == cid0 && cid0 != cid1 && cid0 != A.__id());
        a1.set_value(101i32);
        last = cid1;
        made.push(cid0);
        made.push(cid1);
    }
    function int32 read_last() export const { return A(last).get_value(); }
    function deploy_bad() export { deploy A(-1i32); }
    function call_wrong() export { A(__id()).set_value(1i32); }
    @address function int32 bump_last() export { return A(last).bump(); }
}
"#;

#[test]
fn deploy_makes_contracts_with_fresh_state_that_contract_types_call() {
    let mut w = World::default();
    let a = w.deploy(1, DEPLOYABLE);
    let b = w.deploy(2, DEPLOYER);
    // The named contract's own state, set as its deploying transaction would.
    w.contracts.0.get_mut(&a).unwrap().1[0] = Value::Int(Int::Small(7));
    let out = w.call(b, "f", vec![], 7);
    ok(&out);
    assert_eq!(out.created.len(), 2);
    assert!(out.created.iter().all(|n| n.origin == a));
    let (c0, c1) = (out.created[0].address, out.created[1].address);
    assert_eq!(w.get(c0, ScopeKind::Global, "value"), int(42));
    assert_eq!(w.get(c1, ScopeKind::Global, "value"), int(101));
    assert_eq!(w.get(a, ScopeKind::Global, "value"), int(7));
    assert_eq!(w.get(b, ScopeKind::Global, "last"), Value::Address(c1));
    // A later call reaches the deployed contract through its id.
    let out = w.call(b, "read_last", vec![], 7);
    ok(&out);
    assert_eq!(out.result.unwrap(), Some(int(101)));
    // Address-scope state of a deployed contract is its own.
    let out = w.call(b, "bump_last", vec![], 7);
    ok(&out);
    assert_eq!(out.result.unwrap(), Some(int(1)));
    assert_eq!(w.get(c1, ScopeKind::Address, "bumps"), int(1));
    assert_eq!(w.get(a, ScopeKind::Address, "bumps"), int(0));
    // A failing on_deploy leaves no contract.
    let before = w.contracts.0.len();
    let out = w.call(b, "deploy_bad", vec![], 7);
    assert!(
        matches!(&out.result, Err(Trap::Assert(Some(m))) if m.contains("negative start")),
        "{:?}",
        out.result
    );
    assert!(out.created.is_empty());
    assert_eq!(w.contracts.0.len(), before);
    // A contract value bound to a contract that is not A, nor deployed from it, stops.
    let out = w.call(b, "call_wrong", vec![], 7);
    assert!(
        matches!(&out.result, Err(Trap::Call(m)) if m.contains("nor deployed from it")),
        "{:?}",
        out.result
    );
    // A deployed contract is never what `import A` binds to.
    let c = w.deploy(3, "import ContractA as A; contract C { function int32 v() export const { return A.get_value(); } }");
    let out = w.call(c, "v", vec![], 7);
    assert_eq!(out.result.unwrap(), Some(int(7)));
}

#[test]
fn deploy_is_refused_where_preda_refuses_it() {
    let mut w = World::default();
    w.deploy(1, DEPLOYABLE);
    let refuse = |src: &str, needle: &str| {
        let e = compile_with(src, &w.contracts).expect_err(src).to_string();
        assert!(e.contains(needle), "{needle:?} not in: {e}");
    };
    let wrap = |body: &str| format!("import ContractA as A; contract X {{ {body} }}");
    refuse(
        &wrap("@address function f() export { deploy A(1); }"),
        "only inside a non-const @global function",
    );
    refuse(
        &wrap("function f() export const { deploy A(1); }"),
        "only inside a non-const @global function",
    );
    refuse(
        &wrap("function f() export { uint64 id = deploy A(1); }"),
        "on rexe is an address, not uint64",
    );
    refuse(
        &wrap("function f() export { deploy A(); }"),
        "`A.on_deploy` takes 1 argument(s), 0 given",
    );
    refuse(
        &wrap("function f() export { deploy A(\"x\"); }"),
        "expected int32, found string",
    );
    refuse(&wrap("function f() export { deploy X(); }"), "not its own");
    refuse(
        &wrap("function f() export { deploy B(); }"),
        "`B` is not an imported contract",
    );
    refuse(
        &wrap("function f() export { X x = X(__id()); }"),
        "is this contract",
    );
    refuse(
        &wrap("function f() export { A a = A(1u32); }"),
        "made from a contract id",
    );
    refuse(
        &wrap("@address function f() export { A a = A(A.__id()); a.set_value(1i32); }"),
        "cannot be called from a @address function",
    );
    refuse(
        &wrap("function f() export { A a = A(A.__id()); a.nope(); }"),
        "has no function `nope`",
    );
    // The verifier refuses a Deploy outside a non-const global function, whatever made it.
    let mut code = compile_with(
        &wrap("function f() export { deploy A(1); } @address function g() export { }"),
        &w.contracts,
    )
    .unwrap()
    .module()
    .clone();
    let g = code.functions.iter().position(|f| f.name == "g").unwrap();
    let body = code.functions[g].code.clone();
    code.functions[g].code = [
        vec![
            crate::bytecode::Instr::Bool(true),
            crate::bytecode::Instr::Deploy(0, 1),
        ],
        body,
    ]
    .concat();
    let e = crate::verify::verify(code).expect_err("refused");
    assert!(e.to_string().contains("deploy outside"), "{e}");
}
