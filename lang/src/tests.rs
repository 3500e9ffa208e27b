//! Compile-and-run tests of the language against an in-memory host.

use std::collections::HashMap;

use super::ast::ScopeKind;
use super::layout::ElemKey;
use super::num::Int;
use super::value::Value;
use super::vm::{self, Context, Host, Outcome, RelayDest, Trap, TxKind};
use super::{compile, Verified};

#[derive(Default, Clone)]
struct Mem {
    rows: HashMap<ScopeKind, Vec<u8>>,
    elems: HashMap<(ScopeKind, u16, ElemKey), Vec<u8>>,
    elem_reads: usize,
    /// Assets the called contract (address `[1; 32]`) may mint.
    mints: Vec<u64>,
    /// The chain's relays-per-call limit, when not the default.
    max_relays: Option<usize>,
}

impl Host for Mem {
    fn read_row(&mut self, _: &[u8; 32], scope: ScopeKind) -> Result<Option<Vec<u8>>, String> {
        Ok(self.rows.get(&scope).cloned())
    }
    fn read_elem(
        &mut self,
        _: &[u8; 32],
        scope: ScopeKind,
        var: u16,
        key: &ElemKey,
    ) -> Result<Option<Vec<u8>>, String> {
        self.elem_reads += 1;
        Ok(self.elems.get(&(scope, var, key.clone())).cloned())
    }
    fn is_contract(&self, _: &[u8; 32]) -> bool {
        false
    }
    fn logging(&self) -> bool {
        true
    }
    fn max_relays(&self) -> usize {
        self.max_relays.unwrap_or(vm::MAX_RELAYS)
    }
    fn may_mint(&self, contract: &[u8; 32], id: u64) -> bool {
        *contract == [1; 32] && self.mints.contains(&id)
    }
}

fn ctx() -> Context {
    Context {
        supplied_assets: Vec::new(),
        kind: TxKind::Normal,
        self_address: [1; 32],
        sender: [1; 32],
        signers: vec![[1; 32]],
        initiator: [1; 32],
        tx_timestamp: 5,
        origin_shard: 0,
        shard_order: 2,
        height: 7,
        shard_index: 0,
        timestamp: 5,
        miner: [9; 32],
        random_seed: [3; 32],
        hrp: "trx",
        supplied: 0,
    }
}

fn int(v: i128) -> Value {
    Value::Int(Int::Small(v))
}

/// Runs `func` and applies its writes to `mem`.
fn run(code: &Verified, mem: &mut Mem, func: &str, args: Vec<Value>, gas: u64) -> Outcome {
    run_in(code, mem, func, args, gas, ctx())
}

/// [`run`] in context `c`.
fn run_in(
    code: &Verified,
    mem: &mut Mem,
    func: &str,
    args: Vec<Value>,
    gas: u64,
    c: Context,
) -> Outcome {
    // By name, relay lambdas included.
    let f = code
        .functions
        .iter()
        .position(|f| f.name == func)
        .expect("function exists") as u16;
    let global = vm::default_row(code, ScopeKind::Global);
    let out = vm::execute(
        vm::Call {
            contract: [1; 32],
            code,
            func: f,
            args,
            ctx: &c,
            gas_limit: gas,
            global: &global,
            global_writable: false,
            linker: &vm::NoContracts,
        },
        mem,
    );
    for (scope, row) in &out.writes {
        match row {
            Some(b) => {
                mem.rows.insert(*scope, b.clone());
            }
            None => {
                mem.rows.remove(scope);
            }
        }
    }
    for w in &out.elem_writes {
        let k = (w.scope, w.var, w.key.clone());
        match &w.value {
            Some(b) => {
                mem.elems.insert(k, b.clone());
            }
            None => {
                mem.elems.remove(&k);
            }
        }
    }
    out
}

/// A scope's variables as the contract sees them (arrays with their elements).
fn state(code: &Verified, mem: &Mem, scope: ScopeKind) -> Vec<Value> {
    let row = match mem.rows.get(&scope) {
        Some(b) => vm::decode_row(code, scope, b).unwrap(),
        None => vm::default_row(code, scope),
    };
    let mut elem = |var: u16, k: &ElemKey| Ok(mem.elems.get(&(scope, var, k.clone())).cloned());
    super::layout::full_values(code, scope, &row, &mut elem).unwrap()
}

const COUNTER: &str = r#"
contract C {
    @address uint8 small;
    @address uint64 total;
    @address map<uint32, string> names;
    @address array<uint64> log;
    struct P { address to; bigint amount; }
    @address array<P> pays;

    @address function add(uint8 a) export { small += a; total += uint64(a); }
    @address function uint64 loop(uint32 n) export {
        for (uint32 i = 0u; i < n; i++) { log.push(uint64(i)); total += 1u64; }
        return total;
    }
    @address function names_ops() export {
        names[3u] = "three";
        names[1u] = "one";
        __debug.assert(names.has(3u));
        __debug.assert(!names.has(2u));
        __debug.assert(names[2u] == "");
        names.erase(1u);
        log.set_length(3u);
        log[2u] = 7u64;
        log.pop();
    }
    @address function uint32 div(uint32 a, uint32 b) export { return a / b; }
    @address function uint64 at(uint32 i) export { return log[i]; }
    @address function bigint pay(address to, bigint amount) export {
        P p;
        p.to = to;
        p.amount = amount * 2ib;
        pays.push(p);
        pays[0u].amount -= 1ib;
        relay@to credit(pays[0u].amount);
        relay@to (^amount, auto twice = amount + amount) { total += uint64(twice); }
        return pays[0u].amount;
    }
    @address function credit(bigint v) { total += uint64(v); }
    @address function int32 prec() export {
        int32 x = 2 + 3 * 4 - 10 / 3;
        int32 y = -7 % 3;
        uint32 s = 1u << 4u | 3u;
        return x * 100 + y * 10 + int32(s) - (true && !false ? 0 : 1000);
    }
}
"#;

#[test]
fn arithmetic_is_checked_and_failed_calls_write_nothing() {
    let code = compile(COUNTER).unwrap();
    let mut mem = Mem::default();
    let out = run(&code, &mut mem, "add", vec![int(250)], 100_000);
    assert!(out.result.is_ok(), "{:?}", out.result);
    assert_eq!(state(&code, &mem, ScopeKind::Address)[0], int(250));
    let out = run(&code, &mut mem, "add", vec![int(10)], 100_000);
    assert_eq!(out.result, Err(Trap::Overflow));
    assert!(out.writes.is_empty());
    assert_eq!(
        state(&code, &mem, ScopeKind::Address)[..2],
        [int(250), int(250)]
    );
    assert_eq!(
        run(&code, &mut mem, "div", vec![int(1), int(0)], 100_000).result,
        Err(Trap::DivisionByZero)
    );
    assert_eq!(
        run(&code, &mut mem, "at", vec![int(5)], 100_000).result,
        Err(Trap::BadIndex)
    );
}

#[test]
fn out_of_gas_mid_function_leaves_no_write() {
    let code = compile(COUNTER).unwrap();
    let mut mem = Mem::default();
    let out = run(&code, &mut mem, "loop", vec![int(3)], 100_000);
    assert_eq!(out.result, Ok(Some(int(3))));
    let before = mem.rows.clone();
    let elems_before = mem.elems.clone();
    // What the next call needs, measured on a copy of the state.
    let mut copy = mem.clone();
    let enough = run(&code, &mut copy, "loop", vec![int(3)], 100_000).gas_used;
    // Every limit below what the call needs stops it with nothing written.
    for limit in [1, enough / 3, enough / 2, enough - 1] {
        let out = run(&code, &mut mem, "loop", vec![int(3)], limit);
        assert_eq!(out.result, Err(Trap::OutOfGas), "limit {limit}");
        assert_eq!(out.gas_used, limit);
        assert!(out.writes.is_empty() && out.elem_writes.is_empty() && out.relays.is_empty());
        assert_eq!(mem.rows, before);
        assert_eq!(mem.elems, elems_before);
    }
    let out = run(&code, &mut mem, "loop", vec![int(3)], enough);
    assert_eq!(out.result, Ok(Some(int(6))));
}

#[test]
fn containers_follow_the_spec() {
    let code = compile(COUNTER).unwrap();
    let mut mem = Mem::default();
    let out = run(&code, &mut mem, "names_ops", vec![], 100_000);
    assert!(out.result.is_ok(), "{:?}", out.result);
    let s = state(&code, &mem, ScopeKind::Address);
    let Value::Map(m) = &s[2] else { panic!() };
    assert_eq!(m.len(), 1);
    assert_eq!(m.get(&int(3)), Some(&Value::Str("three".into())));
    assert_eq!(s[3], Value::Array(vec![int(0), int(0)]));
}

const ARRAYS: &str = r#"
contract A {
    @shard array<uint64> a;
    @shard uint64 total;
    @shard function push_n(uint32 n) export {
        for (uint32 i = 0u; i < n; i++) { a.push(uint64(i) + 1u64); }
    }
    @shard function uint32 len() export { return a.length(); }
    @shard function uint64 at(uint32 i) export { return a[i]; }
    @shard function pop_grow() export { a.pop(); a.set_length(a.length() + 1u); }
    @shard function resize(uint32 n) export { a.set_length(n); }
    @shard function bump(uint32 i) export { a[i] += 1u64; }
    @shard function replace() export {
        array<uint64> b;
        b.push(9u64);
        b.push(0u64);
        a = b;
    }
    @shard function uint64 copy_sum() export {
        array<uint64> c = a;
        c[0u] = 1000u64;
        uint64 s = 0u64;
        for (uint32 i = 0u; i < c.length(); i++) { s += c[i]; }
        return s;
    }
    @shard function push_fail() export { a.push(5u64); __debug.assert(false); }
    @shard function uint32 huge_copy() export {
        a.set_length(16777216u);
        array<uint64> c = a;
        return c.length();
    }
}
"#;

#[test]
fn stored_arrays_touch_only_the_elements_they_use() {
    let code = compile(ARRAYS).unwrap();
    let mut mem = Mem::default();
    let sh = ScopeKind::Shard;
    let out = run(&code, &mut mem, "push_n", vec![int(50)], 10_000_000);
    assert!(out.result.is_ok(), "{:?}", out.result);
    assert_eq!((out.elem_writes.len(), mem.elems.len()), (50, 50));
    // One more push: one element row and the scope row, no element read.
    let out = run(&code, &mut mem, "push_n", vec![int(1)], 1_000_000);
    assert_eq!((out.elem_writes.len(), out.writes.len()), (1, 1));
    assert_eq!(out.elem_writes[0].key, ElemKey::Index(50));
    assert_eq!(mem.elem_reads, 0);
    assert_eq!(
        run(&code, &mut mem, "len", vec![], 100_000).result,
        Ok(Some(int(51)))
    );
    assert_eq!(mem.elem_reads, 0, "length() reads no element");
    assert_eq!(
        run(&code, &mut mem, "at", vec![int(7)], 100_000).result,
        Ok(Some(int(8)))
    );
    assert_eq!(mem.elem_reads, 1);
    // pop then grow: the re-grown element is the default, and has no row.
    let out = run(&code, &mut mem, "pop_grow", vec![], 100_000);
    assert!(out.result.is_ok(), "{:?}", out.result);
    assert_eq!(
        run(&code, &mut mem, "at", vec![int(50)], 100_000).result,
        Ok(Some(int(0)))
    );
    assert_eq!(mem.elems.len(), 50);
    // Shrinking deletes the rows beyond the length; growing creates none.
    run(&code, &mut mem, "resize", vec![int(10)], 1_000_000);
    assert_eq!(mem.elems.len(), 10);
    run(&code, &mut mem, "resize", vec![int(20)], 1_000_000);
    assert_eq!(mem.elems.len(), 10);
    assert_eq!(
        run(&code, &mut mem, "at", vec![int(15)], 100_000).result,
        Ok(Some(int(0)))
    );
    assert_eq!(
        run(&code, &mut mem, "at", vec![int(9)], 100_000).result,
        Ok(Some(int(10)))
    );
    run(&code, &mut mem, "bump", vec![int(12)], 100_000);
    assert_eq!(mem.elems.len(), 11);
    assert_eq!(
        run(&code, &mut mem, "at", vec![int(20)], 100_000).result,
        Err(Trap::BadIndex)
    );
    // Whole-array assignment: rows beyond the new length go, defaults keep none.
    run(&code, &mut mem, "replace", vec![], 1_000_000);
    assert_eq!(
        state(&code, &mem, sh)[0],
        Value::Array(vec![int(9), int(0)])
    );
    assert_eq!(mem.elems.len(), 1);
    // A copy is a value: changing it leaves the state alone.
    assert_eq!(
        run(&code, &mut mem, "copy_sum", vec![], 1_000_000).result,
        Ok(Some(int(1000)))
    );
    assert_eq!(
        state(&code, &mem, sh)[0],
        Value::Array(vec![int(9), int(0)])
    );
    // Growing is free, but copying what was grown is paid before it is built.
    let out = run(&code, &mut mem, "huge_copy", vec![], 5_000_000);
    assert_eq!(out.result, Err(Trap::OutOfGas));
    // A failed call writes no element.
    let out = run(&code, &mut mem, "push_fail", vec![], 1_000_000);
    assert!(matches!(out.result, Err(Trap::Assert(_))));
    assert!(out.elem_writes.is_empty() && out.writes.is_empty());
    assert_eq!(
        state(&code, &mem, sh)[0],
        Value::Array(vec![int(9), int(0)])
    );
}

#[test]
fn a_const_local_without_initializer_is_its_types_default() {
    let src = r#"
contract T {
    struct S { uint32 a; array<uint32> b; }
    @address function uint32 f() export {
        const uint32 c;
        const S s;
        uint32 n = "abc".length();
        return c + s.a + s.b.length() + n;
    }
    @address function g() export {
        const uint32 c;
        c = 1u;
    }
}
"#;
    let e = compile(src).unwrap_err().to_string();
    assert_eq!(
        e, "12:9: `c` is const",
        "only the assignment to the constant is refused"
    );
    let code = compile(&src.replace("c = 1u;", "")).unwrap();
    let mut mem = Mem::default();
    assert_eq!(
        run(&code, &mut mem, "f", vec![], 100_000).result,
        Ok(Some(int(3)))
    );
}

#[test]
fn structs_are_built_from_their_members_and_named_through_the_contract() {
    let src = r#"
contract T {
    struct P { uint32 x; uint32 y; }
    struct S { uint32 a; T.P p; array<uint32> b; }
    @address S kept;
    @address function uint32 f() export {
        T.S s = S(1u, P(2u, 3u), array<uint32>());
        kept = S(7u, P(), array<uint32>());
        for (uint32 i = 0u; i < 2u; i++) { s.b.push(S(i, P(i, i), s.b).a); }
        return s.a + s.p.x + s.p.y + s.b[1u] + s.b.length() + kept.a;
    }
}
"#;
    let code = compile(src).unwrap();
    let mut mem = Mem::default();
    // a 1, p 2 + 3, b [0, 1]: b[1] 1 and length 2, kept.a 7
    assert_eq!(
        run(&code, &mut mem, "f", vec![], 100_000).result,
        Ok(Some(int(16)))
    );
    let e = compile(&src.replace("P(2u, 3u)", "P(2u)"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`P(…)` takes its 2 member(s) in order, got 1"),
        "{e}"
    );
    let e = compile(&src.replace("T.P p;", "U.P p;"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("`U` is not an imported contract"), "{e}");
}

const MAPS: &str = r#"
contract M {
    @shard map<uint32, uint64> m;
    @shard function put_n(uint32 n) export {
        for (uint32 i = 0u; i < n; i++) { m[i] = uint64(i) + 10u64; }
    }
    @shard function uint64 get(uint32 k) export { return m[k]; }
    @shard function bool has(uint32 k) export { return m.has(k); }
    @shard function erase(uint32 k) export { m.erase(k); }
    @shard function bump(uint32 k) export { m[k] += 1u64; }
    @shard function churn() export { m[1000u] = 5u64; m.erase(1000u); m.erase(2000u); }
    @shard function uint64 copy_sum() export {
        map<uint32, uint64> c = m;
        c[0u] = 1000u64;
        return c[0u] + c[2u];
    }
    @shard function replace() export {
        map<uint32, uint64> n;
        n[7u] = 70u64;
        n[3u] = 30u64;
        m = n;
    }
    @shard function fail() export { m[5u] = 1u64; __debug.assert(false); }
}
"#;

#[test]
fn stored_maps_touch_only_the_entries_they_use() {
    let code = compile(MAPS).unwrap();
    let mut mem = Mem::default();
    let sh = ScopeKind::Shard;
    let map_of = |pairs: &[(i128, i128)]| {
        Value::Map(pairs.iter().map(|(k, v)| (int(*k), int(*v))).collect())
    };
    let out = run(&code, &mut mem, "put_n", vec![int(20)], 10_000_000);
    assert!(out.result.is_ok(), "{:?}", out.result);
    // An entry row and a key slot per entry.
    assert_eq!(mem.elems.len(), 40);
    let reads = mem.elem_reads;
    // Reading a missing key gives the default and creates nothing; has() reads one row.
    assert_eq!(
        run(&code, &mut mem, "get", vec![int(99)], 100_000).result,
        Ok(Some(int(0)))
    );
    assert_eq!(
        run(&code, &mut mem, "has", vec![int(99)], 100_000).result,
        Ok(Some(Value::Bool(false)))
    );
    assert_eq!(
        run(&code, &mut mem, "has", vec![int(3)], 100_000).result,
        Ok(Some(Value::Bool(true)))
    );
    assert_eq!(mem.elem_reads - reads, 3);
    assert_eq!(mem.elems.len(), 40);
    // Erasing from the middle moves the last key into the freed slot: three rows change.
    let out = run(&code, &mut mem, "erase", vec![int(4)], 100_000);
    assert!(out.result.is_ok(), "{:?}", out.result);
    assert_eq!(out.elem_writes.len(), 4, "{:?}", out.elem_writes);
    assert_eq!(mem.elems.len(), 38);
    assert_eq!(
        run(&code, &mut mem, "get", vec![int(19)], 100_000).result,
        Ok(Some(int(29)))
    );
    assert_eq!(
        run(&code, &mut mem, "has", vec![int(4)], 100_000).result,
        Ok(Some(Value::Bool(false)))
    );
    run(&code, &mut mem, "bump", vec![int(19)], 100_000);
    assert_eq!(
        run(&code, &mut mem, "get", vec![int(19)], 100_000).result,
        Ok(Some(int(30)))
    );
    // Insert and erase in one call, erase of a missing key: nothing stored changes.
    let out = run(&code, &mut mem, "churn", vec![], 100_000);
    assert!(out.result.is_ok(), "{:?}", out.result);
    assert!(
        out.elem_writes.is_empty() && out.writes.is_empty(),
        "{:?}",
        out.elem_writes
    );
    let mut want: Vec<(i128, i128)> = (0..20).filter(|k| *k != 4).map(|k| (k, k + 10)).collect();
    want.iter_mut().find(|(k, _)| *k == 19).unwrap().1 = 30;
    assert_eq!(state(&code, &mem, sh)[0], map_of(&want));
    // A copy is a value; a whole assignment replaces every entry.
    assert_eq!(
        run(&code, &mut mem, "copy_sum", vec![], 1_000_000).result,
        Ok(Some(int(1012)))
    );
    run(&code, &mut mem, "replace", vec![], 1_000_000);
    assert_eq!(state(&code, &mem, sh)[0], map_of(&[(3, 30), (7, 70)]));
    assert_eq!(mem.elems.len(), 4);
    // A failed call writes nothing.
    let out = run(&code, &mut mem, "fail", vec![], 1_000_000);
    assert!(matches!(out.result, Err(Trap::Assert(_))));
    assert!(out.elem_writes.is_empty());
    assert_eq!(state(&code, &mem, sh)[0], map_of(&[(3, 30), (7, 70)]));
}

#[test]
fn events_are_recorded_in_order_and_dropped_with_a_failed_call() {
    let src = r#"
contract E {
    @address uint32 n;
    @address function bool ui() export {
        uievent_state s = __event.get_user_state();
        return s == uievent_state.deactivated;
    }
    @address function emit(bool fail) export {
        __event.push(1u, "first");
        __event.notify(2u, "second: " + "x");
        n += 1u;
        __debug.assert(!fail);
    }
    @address function flood() export {
        for (uint32 i = 0u; i < 300u; i++) { __event.push(i, ""); }
    }
}
"#;
    let code = compile(&src.replace(r#""second: " + "x""#, r#""second""#)).unwrap();
    let mut mem = Mem::default();
    let ok = run(&code, &mut mem, "emit", vec![Value::Bool(false)], 100_000);
    assert!(ok.result.is_ok(), "{:?}", ok.result);
    let ev = |notify, id, data: &str| vm::Event {
        notify,
        id,
        data: data.into(),
    };
    assert_eq!(
        ok.events,
        vec![ev(false, 1, "first"), ev(true, 2, "second")]
    );
    let failed = run(&code, &mut mem, "emit", vec![Value::Bool(true)], 100_000);
    assert!(matches!(failed.result, Err(Trap::Assert(None))));
    assert!(failed.events.is_empty(), "a reverted call records no event");
    assert_eq!(
        run(&code, &mut mem, "ui", vec![], 100_000).result,
        Ok(Some(Value::Bool(true)))
    );
    assert_eq!(
        run(&code, &mut mem, "flood", vec![], 1_000_000).result,
        Err(Trap::Limit("events per call"))
    );
    let e = compile(&src.replace("__event.push(1u, \"first\")", "__event.push(\"first\")"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("__event.push takes (uint32 id, string data)"),
        "{e}"
    );
    let e = compile(&src.replace("__event.push(1u", "__event.emit(1u"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("__event has no function `emit`"), "{e}");
}

#[test]
fn a_context_function_that_does_not_exist_is_named_with_those_that_do() {
    // PREDA's own test2.prd and zombie.prd call `get_parent_*`, which PREDA dropped.
    let src =
        "contract C { @address function f() { uint32 y = __block.get_parent_shard_index(); } }";
    let e = compile(src).unwrap_err().to_string();
    assert!(
        e.contains("__block has no function `get_parent_shard_index` (an early PREDA function"),
        "{e}"
    );
    assert!(e.contains("it has get_height, get_shard_index"), "{e}");
    let src = "contract C { @address function f() { uint32 y = __transaction.get_nope(); } }";
    let e = compile(src).unwrap_err().to_string();
    assert!(
        e.contains("__transaction has no function `get_nope`; it has get_type"),
        "{e}"
    );
}

#[test]
fn bigint_div_uint32_divides_toward_zero() {
    let src = r#"
contract B {
    @address bigint kept;
    @address function bigint f(bigint x, uint32 d) export {
        kept = x;
        return x.div_uint32(d) + kept.div_uint32(d) - x.div_uint32(d);
    }
}
"#;
    let code = compile(src).unwrap();
    let mut mem = Mem::default();
    let big = |v: i128| Value::Int(Int::from(v));
    let f = |mem: &mut Mem, x: i128, d: i128| {
        run(&code, mem, "f", vec![big(x), int(d)], 100_000).result
    };
    assert_eq!(
        f(&mut mem, 1_000_000_000_000_000_000_007, 10),
        Ok(Some(big(100_000_000_000_000_000_000)))
    );
    assert_eq!(f(&mut mem, -7, 2), Ok(Some(big(-3))), "rounded toward zero");
    assert_eq!(f(&mut mem, 5, 0), Err(Trap::DivisionByZero));
    let e = compile(&src.replace("x.div_uint32(d) +", "x.div_uint32(d, d) +")).unwrap_err();
    assert!(
        e.to_string().contains("takes 1 argument(s), 2 given"),
        "{e}"
    );
}

#[test]
fn scattered_containers_are_state_variables_stored_per_entry() {
    let src = r#"
contract S {
    @shard scattered_map<address, uint64> owed;
    @shard scattered_array<uint32> log;
    @shard function add(address a, uint64 v) export {
        owed[a] += v;
        log.push(uint32(log.length()));
    }
}
"#;
    let code = compile(src).unwrap();
    let mut mem = Mem::default();
    for v in [5, 7] {
        let out = run(
            &code,
            &mut mem,
            "add",
            vec![Value::Address([3; 32]), int(v)],
            100_000,
        );
        assert!(out.result.is_ok(), "{:?}", out.result);
    }
    let st = state(&code, &mem, ScopeKind::Shard);
    assert_eq!(
        st[0],
        Value::Map([(Value::Address([3; 32]), int(12))].into())
    );
    assert_eq!(st[1], Value::Array(vec![int(0), int(1)]));
    // Per entry: the map's entry and key slot, and one element (the other is the default).
    assert_eq!(mem.elems.len(), 3);
    let e = compile(&src.replace(
        "uint64 v) export {",
        "uint64 v) export { scattered_map<address, uint64> m;",
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("can only be the type of a state variable"),
        "{e}"
    );
}

#[test]
fn relays_carry_encoded_arguments() {
    let code = compile(COUNTER).unwrap();
    let mut mem = Mem::default();
    let out = run(
        &code,
        &mut mem,
        "pay",
        vec![Value::Address([7; 32]), int(10)],
        100_000,
    );
    assert_eq!(out.result, Ok(Some(int(19))));
    assert_eq!(out.relays.len(), 2);
    assert_eq!(out.relays[0].to, RelayDest::Address([7; 32]));
    let (credit, _) = code.function("credit").unwrap();
    assert_eq!(out.relays[0].func, credit);
    let lambda = &code.functions[out.relays[1].func as usize];
    assert_eq!(lambda.params.len(), 2);
    let types = code.param_types(lambda);
    let args = super::value::decode_tuple(&out.relays[1].args, &types, &code.table).unwrap();
    assert_eq!(args, vec![int(10), int(20)]);
}

#[test]
fn precedence_and_c_division() {
    let code = compile(COUNTER).unwrap();
    let mut mem = Mem::default();
    // x = 2 + 12 - 3 = 11; y = -1; s = 19
    assert_eq!(
        run(&code, &mut mem, "prec", vec![], 100_000).result,
        Ok(Some(int(1100 - 10 + 19)))
    );
}

#[test]
fn preda_base32_literals_are_values_and_bad_ones_are_named() {
    // PREDA's language spec 4.1.2: a real ed25519 address literal. rexe keeps its key.
    let addr = "vffgwr07yq323axszgxbr2qp9azzbyjjm844s90z8ack63s6hrch683z48:ed25519";
    let key = super::base32::address(addr).unwrap();
    let hash_body = "36nwe8x9s1g7gb98zkb6hzzqarffhvf6c30k9433ztz9ne4mb6q0";
    let h = super::base32::hash(hash_body).unwrap();
    let src = format!(
        "contract L {{
            @address address a;
            @address hash h;
            @address function f() export {{
                a = {addr};
                h = {hash_body}:hash;
                address b = 0 > 1 ? a : {addr};
                __debug.assert(a == b);
            }}
        }}"
    );
    let code = compile(&src).unwrap();
    let mut mem = Mem::default();
    let out = run(&code, &mut mem, "f", vec![], 1_000_000);
    assert_eq!(out.result, Ok(None), "{:?}", out.logs);
    assert_eq!(
        state(&code, &mem, ScopeKind::Address),
        vec![Value::Address(key), Value::Hash(h)]
    );
    // The spec's own hash literal holds `@`, which PREDA's runtime no longer decodes; a
    // mistyped address fails its checksum; `:contract` ids do not exist here. Each is one
    // message that names the literal's problem, not a parse error.
    for (lit, want) in [
        (
            "ccnwe8x9sig7gb98zkb6gh@qarffhvf6c3ok9433@tz9ne4mb6qi:hash",
            "not a base32 character",
        ),
        (
            "0ffgwr07yq323axszgxbr2qp9azzbyjjm844s90z8ack63s6hrch683z48:ed25519",
            "bad checksum",
        ),
        ("abc:hash", "64 hex digits or 52 base32 characters"),
        ("0x12:contract", "64-bit contract ids"),
    ] {
        let ty = if lit.ends_with(":hash") {
            "hash"
        } else {
            "address"
        };
        let src = format!("contract L {{ @global function f() export {{ {ty} x = {lit}; }} }}");
        let Err(errs) = compile(&src) else {
            panic!("{lit} accepted");
        };
        assert_eq!(errs.0.len(), 1, "{errs}");
        assert!(errs.to_string().contains(want), "{lit}: {errs}");
    }
}

#[test]
fn secure_random_is_the_block_stream_deterministic_and_advancing() {
    let src = r#"
contract R {
    @address uint64 a;
    @address uint64 b;
    @address function draw() export {
        a = __block.get_secure_random_number();
        b = __block.get_random_number();
    }
}
"#;
    let code = compile(src).unwrap();
    assert!(code.uses_random(), "the host must derive the seed");
    let draws = || {
        let mut mem = Mem::default();
        let out = run(&code, &mut mem, "draw", vec![], 1_000_000);
        assert!(out.result.is_ok(), "{:?}", out.result);
        state(&code, &mem, ScopeKind::Address)
    };
    let first = draws();
    // The same seed gives the same numbers; the second call advances the stream.
    assert_eq!(first, draws());
    assert_ne!(first[0], first[1]);
}

const VAULT: &str = r#"
contract Vault {
    struct Pair { token a; uint32 n; }
    @address token balance;
    @address map<uint32, token> boxes;
    @address array<token> stack;
    @address map<uint32, Pair> pairs;

    @address function put() export {
        token t = __transaction.get_supplied_tokens()[0u];
        __debug.assert(t.transfer_all(balance));
    }
    @address function put_box(uint32 k) export {
        array<token> s = __transaction.get_supplied_tokens();
        s[0u].transfer_all(boxes[k]);
    }
    @address function split() export {
        token t = __transaction.get_supplied_tokens()[0u];
        token h;
        __debug.assert(t.transfer(h, t.get_amount() / 2));
        stack.push(h);
        __debug.assert(t.transfer_all(pairs[7u].a));
        pairs[7u].n = 1u;
    }
    @address function ignore() export {
        array<token> s = __transaction.get_supplied_tokens();
    }
    @address function twice() export {
        token t = __transaction.get_supplied_tokens()[0u];
        boxes[1u] = t;
        boxes[2u] = t;
    }
    @address function take(uint32 k) export {
        boxes[k].deposit();
    }
    @address function drop_top() export {
        stack.pop();
    }
    @address function spend_top() export {
        stack[stack.length() - 1u].deposit();
        stack.pop();
    }
    @address function erase_box(uint32 k) export {
        boxes.erase(k);
    }
    @address function rules() export {
        token z;
        token t = __transaction.get_supplied_tokens()[0u];
        __debug.assert(!z.transfer(t, bigint(0)), "id 0 cannot be sent");
        __debug.assert(!t.transfer(z, bigint(-1)), "negative");
        __debug.assert(!t.transfer(z, t.get_amount() + 1), "more than held");
        __debug.assert(t.transfer(t, bigint(5)), "to itself");
        __debug.assert(t.get_amount() == bigint(100), "unchanged");
        __debug.assert(t.get_id() == token.symbol_to_id("RXBTC"));
        __debug.assert(token.id_to_symbol(t.get_id()) == "RXBTC");
        __debug.assert(token.symbol_to_id("rx") == 0u64);
        token m = __mint(token.symbol_to_id("RXBTC"), bigint(10));
        __debug.assert(m.get_id() == 0u64, "nobody mints rxBTC");
        __debug.assert(!__burn(t), "nobody burns rxBTC");
        t.deposit();
        __debug.assert(t.get_amount() == bigint(0), "deposit empties");
    }
    @address function send(address to) export {
        token t = __transaction.get_supplied_tokens()[0u];
        relay@to (^t) {
            t.deposit();
        }
    }
    @address function up() export {
        token t = __transaction.get_supplied_tokens()[0u];
        relay@global (^t) {
            __debug.print(t);
        }
    }
    @shard function at_shard() export {
        token t = __transaction.get_supplied_tokens()[0u];
        t.deposit();
    }
}
"#;

fn supplied(sat: u64) -> Context {
    Context {
        supplied: sat,
        ..ctx()
    }
}

fn token_trap(out: &Outcome) -> String {
    match &out.result {
        Err(Trap::Token(m)) => m.clone(),
        other => panic!("expected a token trap, got {other:?}"),
    }
}

#[test]
fn tokens_are_kept_moved_and_deposited_without_making_or_losing_value() {
    let code = compile(VAULT).unwrap();
    let rx = super::token::rxbtc();
    let mut mem = Mem::default();
    let out = run_in(&code, &mut mem, "put", vec![], 1_000_000, supplied(1_000));
    assert_eq!(out.result, Ok(None));
    assert_eq!((out.tokens.received, out.tokens.kept()), (1_000, 1_000));
    let st = state(&code, &mem, ScopeKind::Address);
    assert_eq!(
        st[0],
        Value::Token {
            id: rx,
            amount: 1_000
        }
    );

    // Into a stored map entry, a stored array element and a struct member in a map.
    let out = run_in(
        &code,
        &mut mem,
        "put_box",
        vec![int(3)],
        1_000_000,
        supplied(40),
    );
    assert_eq!(out.result, Ok(None));
    let out = run_in(&code, &mut mem, "split", vec![], 1_000_000, supplied(11));
    assert_eq!(out.result, Ok(None));
    assert_eq!(out.tokens.kept(), 11);
    let st = state(&code, &mem, ScopeKind::Address);
    assert_eq!(
        st[2],
        Value::Array(vec![Value::Token { id: rx, amount: 5 }])
    );
    let Value::Map(pairs) = &st[3] else { panic!() };
    assert_eq!(
        pairs[&int(7)],
        Value::Struct(vec![Value::Token { id: rx, amount: 6 }, int(1)])
    );

    // Out again, into the wallet: the state's value goes down by what is deposited.
    let out = run(&code, &mut mem, "take", vec![int(3)], 1_000_000);
    assert_eq!(out.result, Ok(None));
    assert_eq!((out.tokens.deposited, out.tokens.kept()), (40, -40));
    let out = run(&code, &mut mem, "take", vec![int(3)], 1_000_000);
    assert_eq!((out.result, out.tokens.deposited), (Ok(None), 0));
    let out = run(&code, &mut mem, "spend_top", vec![], 1_000_000);
    assert_eq!((out.result, out.tokens.deposited), (Ok(None), 5));

    // The PREDA rules of transfer (spec 2.3.3), symbols, and no minting or burning.
    let out = run_in(&code, &mut mem, "rules", vec![], 1_000_000, supplied(100));
    assert_eq!(out.result, Ok(None), "{:?}", out.logs);
    assert_eq!(out.tokens.deposited, 100);

    // A relay carries the value and the relayed call deposits it.
    let out = run_in(
        &code,
        &mut mem,
        "send",
        vec![Value::Address([7; 32])],
        1_000_000,
        supplied(9),
    );
    assert_eq!(out.result, Ok(None));
    assert_eq!((out.tokens.relayed, out.tokens.kept()), (9, 0));
    assert_eq!(out.relays[0].value, 9);
    let lambda = &code.functions[out.relays[0].func as usize];
    let args =
        super::value::decode_tuple(&out.relays[0].args, &code.param_types(lambda), &code.table)
            .unwrap();
    assert_eq!(args, vec![Value::Token { id: rx, amount: 9 }]);
    let name = lambda.name.clone();
    let relay_ctx = Context {
        kind: TxKind::Relay,
        self_address: [7; 32],
        supplied: 123, // ignored outside a transaction's own call
        ..ctx()
    };
    let out = run_in(
        &code,
        &mut Mem::default(),
        &name,
        args,
        1_000_000,
        relay_ctx,
    );
    assert_eq!(out.result, Ok(None));
    assert_eq!((out.tokens.received, out.tokens.deposited), (9, 9));
}

#[test]
fn a_call_that_would_copy_drop_or_strand_a_token_fails() {
    let code = compile(VAULT).unwrap();
    let mut mem = Mem::default();
    // Supplied and ignored: the call fails (the chain returns the value to the sender).
    let out = run_in(&code, &mut mem, "ignore", vec![], 1_000_000, supplied(500));
    assert!(token_trap(&out).contains("not conserved"));
    assert!(out.writes.is_empty() && out.tokens == vm::TokenFlow::default());
    assert_eq!(
        run(&code, &mut mem, "ignore", vec![], 1_000_000).result,
        Ok(None)
    );
    // One token stored twice.
    let out = run_in(&code, &mut mem, "twice", vec![], 1_000_000, supplied(500));
    assert!(token_trap(&out).contains("not conserved"));
    // Popping, or erasing, a token the state holds would lose it.
    run_in(&code, &mut mem, "split", vec![], 1_000_000, supplied(8));
    run_in(
        &code,
        &mut mem,
        "put_box",
        vec![int(1)],
        1_000_000,
        supplied(8),
    );
    assert!(
        token_trap(&run(&code, &mut mem, "drop_top", vec![], 1_000_000)).contains("not conserved")
    );
    assert!(
        token_trap(&run(&code, &mut mem, "erase_box", vec![int(1)], 1_000_000))
            .contains("not conserved")
    );
    // An empty box can go.
    assert_eq!(
        run(&code, &mut mem, "erase_box", vec![int(2)], 1_000_000).result,
        Ok(None)
    );
    // No wallet in a @shard function, and value relays only to an address.
    let out = run_in(&code, &mut mem, "at_shard", vec![], 1_000_000, supplied(5));
    assert!(token_trap(&out).contains("@address"));
    let out = run_in(&code, &mut mem, "up", vec![], 1_000_000, supplied(5));
    assert!(token_trap(&out).contains("only be relayed to an address"));
}

/// Minting, moving and burning an asset, as PREDA's simulator example `FCA.prd` does (written
/// here from its behaviour), plus keeping two assets and mixing them.
const COINS: &str = r#"
contract Coins {
    @address token kept;
    @address function mint(string symbol, bigint amount) export {
        token t = __mint(token.symbol_to_id(symbol), amount);
        if (t.get_id() == 0u64) {
            __debug.print("Mint failed, symbol:", symbol);
            return;
        }
        t.deposit();
    }
    @address function transfer(address to) export {
        token t = __transaction.get_supplied_tokens()[0u];
        relay@to (^t) {
            t.deposit();
        }
    }
    @address function burn() export {
        token t = __transaction.get_supplied_tokens()[0u];
        if (__burn(t)) {
            __debug.assert(t.get_amount() == bigint(0), "a burned token is empty");
        } else {
            t.deposit();
        }
    }
    @address function burn_twice() export {
        token t = __transaction.get_supplied_tokens()[0u];
        __burn(t);
        t.deposit();
        __debug.assert(!__burn(__transaction.get_supplied_tokens()[0u]) || true);
    }
    @address function keep() export {
        array<token> s = __transaction.get_supplied_tokens();
        __debug.assert(s.length() == 2u, "two tokens");
        __debug.assert(s[1u].transfer_all(kept));
        s[0u].deposit();
    }
    @address function mint_and_drop(bigint amount) export {
        token t = __mint(token.symbol_to_id("BTC"), amount);
    }
    @address function mix() export {
        token a = __mint(token.symbol_to_id("BTC"), bigint(5));
        token b = __mint(token.symbol_to_id("ETH"), bigint(5));
        __debug.assert(!a.transfer(b, bigint(1)), "assets do not mix");
        a.deposit();
        b.deposit();
    }
}
"#;

fn with_assets(rx: u64, assets: &[(u64, u64)]) -> Context {
    Context {
        supplied: rx,
        supplied_assets: assets.to_vec(),
        ..ctx()
    }
}

#[test]
fn assets_are_minted_moved_and_burned_only_with_the_right() {
    use super::token::symbol_to_id as id;
    let code = compile(COINS).unwrap();
    let (btc, eth) = (id("BTC"), id("ETH"));
    let mut mem = Mem::default();
    let mint = |mem: &mut Mem, symbol: &str, amount: i128| {
        run(
            &code,
            mem,
            "mint",
            vec![Value::Str(symbol.into()), Value::Int(Int::from(amount))],
            1_000_000,
        )
    };
    // Without the right (or for rxBTC, or a bad symbol, or a bad amount): an empty token.
    let out = mint(&mut mem, "BTC", 1_000);
    assert_eq!(out.result, Ok(None));
    assert!(
        out.logs.iter().any(|l| l.contains("Mint failed")),
        "{:?}",
        out.logs
    );
    assert_eq!(out.tokens, vm::TokenFlow::default());
    mem.mints = vec![btc, super::token::rxbtc(), eth];
    for (symbol, amount) in [("RXBTC", 1), ("btc", 1), ("BTC", 0), ("BTC", -1)] {
        let out = mint(&mut mem, symbol, amount);
        assert!(
            out.logs.iter().any(|l| l.contains("Mint failed")),
            "{symbol} {amount}"
        );
    }
    let out = mint(&mut mem, "BTC", i128::from(u64::MAX) + 1);
    assert!(out.logs.iter().any(|l| l.contains("Mint failed")));
    // With it: minted and deposited.
    let out = mint(&mut mem, "BTC", 1_000);
    assert_eq!(out.result, Ok(None), "{:?}", out.logs);
    assert_eq!(out.tokens.received, 0);
    assert_eq!(
        out.tokens.assets,
        vec![(
            btc,
            vm::AssetFlow {
                minted: 1_000,
                deposited: 1_000,
                ..Default::default()
            }
        )]
    );
    // Minted and dropped: not conserved.
    let out = run(&code, &mut mem, "mint_and_drop", vec![int(3)], 1_000_000);
    let e = token_trap(&out);
    assert!(
        e.contains("not conserved") && e.contains("BTC") && e.contains("mints 3"),
        "{e}"
    );
    // Two assets never mix.
    let out = run(&code, &mut mem, "mix", vec![], 1_000_000);
    assert_eq!(out.result, Ok(None), "{:?}", out.logs);
    assert_eq!(out.tokens.assets.len(), 2);
    // Supplied assets arrive after rxBTC; a relay carries them, rxBTC apart.
    let out = run_in(
        &code,
        &mut mem,
        "transfer",
        vec![Value::Address([7; 32])],
        1_000_000,
        with_assets(0, &[(btc, 100)]),
    );
    assert_eq!(out.result, Ok(None), "{:?}", out.logs);
    assert_eq!(
        (out.relays[0].value, &out.relays[0].assets),
        (0, &vec![(btc, 100)])
    );
    assert_eq!(out.tokens.assets[0].1.relayed, 100);
    let out = run_in(
        &code,
        &mut mem,
        "keep",
        vec![],
        1_000_000,
        with_assets(10, &[(eth, 4)]),
    );
    assert_eq!(out.result, Ok(None), "{:?}", out.logs);
    assert_eq!(
        (out.tokens.deposited, out.tokens.assets[0].1.kept()),
        (10, 4)
    );
    // Burning: with the right, the token is destroyed and left empty.
    let out = run_in(
        &code,
        &mut mem,
        "burn",
        vec![],
        1_000_000,
        with_assets(0, &[(btc, 50)]),
    );
    assert_eq!(out.result, Ok(None), "{:?}", out.logs);
    assert_eq!(out.tokens.assets[0].1.burned, 50);
    assert_eq!(out.tokens.assets[0].1.deposited, 0);
    // Burning, then depositing the (empty) token, then burning a copy: the copy's burn
    // would destroy value nobody gave up, which the conservation check refuses.
    let out = run_in(
        &code,
        &mut mem,
        "burn_twice",
        vec![],
        1_000_000,
        with_assets(0, &[(btc, 50)]),
    );
    let e = token_trap(&out);
    assert!(
        e.contains("not conserved") && e.contains("burns 100"),
        "{e}"
    );
    // Without the right, burn fails and the token is deposited back.
    mem.mints.clear();
    let out = run_in(
        &code,
        &mut mem,
        "burn",
        vec![],
        1_000_000,
        with_assets(0, &[(btc, 50)]),
    );
    assert_eq!(out.result, Ok(None));
    assert_eq!(
        (
            out.tokens.assets[0].1.burned,
            out.tokens.assets[0].1.deposited
        ),
        (0, 50)
    );
    // rxBTC cannot be burned even by a contract the host would let mint it.
    mem.mints = vec![super::token::rxbtc()];
    let out = run_in(&code, &mut mem, "burn", vec![], 1_000_000, supplied(70));
    assert_eq!(out.result, Ok(None));
    assert_eq!(out.tokens.deposited, 70);
}

#[test]
fn transactions_cannot_pass_tokens_as_arguments() {
    let e = compile(
        r#"contract C {
            @address token t;
            @address function put(token x) export { x.transfer_all(t); }
        }"#,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("get_supplied_tokens"), "{e}");
    let e = compile(
        r#"contract C {
            struct S { token x; }
            @global function on_deploy(array<S> s) { }
        }"#,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("cannot carry value"), "{e}");
    let e = compile(
        r#"contract C {
            @address function take() export const {
                __transaction.get_supplied_tokens()[0u].deposit();
            }
        }"#,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("a const function cannot deposit a token"), "{e}");
    // A relay target may take one: its arguments come from the contract's own code.
    compile(
        r#"contract C {
            @address token t;
            @address function take(token x) { x.transfer_all(t); }
        }"#,
    )
    .unwrap();
    let tt = super::types::TypeTable::default();
    let e = super::value::from_json(
        &serde_json::json!({"token": "RXBTC", "amount": 5}),
        &super::types::Type::Token,
        &tt,
    )
    .unwrap_err();
    assert!(e.contains("cannot be written as an argument"), "{e}");
}

const OVERLOADS: &str = r#"
contract O {
    @address uint64 last;
    @address string label;
    @address function set(uint64 x) { last = x; }
    @address function set(string s) { label = s; }
    @address function set(uint64 x, string s) { set(x); set(s); }
    @address function uint32 pick(int32 x) { return 1u; }
    @address function uint32 pick(int64 x) { return 2u; }
    @address function uint32 pick(uint64 x) { return 3u; }
    @address function uint32 which() export {
        set(5u64);
        set("a");
        set(7u64, "b");
        uint32 a = pick(5);
        uint32 b = pick(5i64);
        uint32 c = pick(5u64);
        return a * 100u + b * 10u + c;
    }
    @address function put(uint64 x) export { last = x; }
    @address function put(string s) export { label = s; }
    @address function both(address to) export {
        relay@to set(9u64);
        relay@to set("z");
    }
}
"#;

#[test]
fn overloads_are_chosen_by_argument_types() {
    let code = compile(OVERLOADS).unwrap();
    let mut mem = Mem::default();
    assert_eq!(
        run(&code, &mut mem, "which", vec![], 1_000_000).result,
        Ok(Some(int(123))),
        "an unsuffixed literal is an int32, as in PREDA"
    );
    let st = state(&code, &mem, ScopeKind::Address);
    assert_eq!(st[0], int(7));
    assert_eq!(st[1], Value::Str("b".into()));
    // Relays name overloads the same way.
    let out = run(
        &code,
        &mut mem,
        "both",
        vec![Value::Address([7; 32])],
        1_000_000,
    );
    let sigs: Vec<String> = out
        .relays
        .iter()
        .map(|r| code.signature(&code.functions[r.func as usize]))
        .collect();
    assert_eq!(sigs, ["set(uint64)", "set(string)"]);
    // A transaction names an overload by signature; the bare name is ambiguous.
    assert!(code.function("put").is_none());
    assert_eq!(code.overloads("put").len(), 2);
    let (i, f) = code.function("put( string )").unwrap();
    assert_eq!(
        (f.name.as_str(), code.signature(f).as_str()),
        ("put", "put(string)")
    );
    assert_eq!(code.function("put(uint64)").unwrap().0 + 1, i);
    assert!(code.function("put(uint32)").is_none());
    assert_eq!(code.function("which").unwrap().1.name, "which");
}

#[test]
fn overloads_that_cannot_be_told_apart_are_refused() {
    let err = |src: &str| compile(src).unwrap_err().to_string();
    let e = err("contract C { function f(uint64 a) { } function f(uint64 b) { } }");
    assert!(
        e.contains("already defined with these parameter types"),
        "{e}"
    );
    let e = err("contract C { uint32 f; function f(uint64 a) { } }");
    assert!(e.contains("`f` is already defined"), "{e}");
    let e = err("contract C { function on_deploy() { } function on_deploy(uint32 x) { } }");
    assert!(e.contains("`on_deploy` is already defined"), "{e}");
    let e = err(
        "contract C { function f(int32 a) { } function f(int64 a) { } function g() { f(int16(1)); } }",
    );
    assert!(e.contains("ambiguous between f(int32) and f(int64)"), "{e}");
    let e = err(
        "contract C { function f(string a) { } function f(bool a) { } function g() { f(1u); } }",
    );
    assert!(
        e.contains("no overload of `f` takes these arguments (it has f(string), f(bool))"),
        "{e}"
    );
}

#[test]
fn choosing_an_overload_declares_nothing_twice() {
    // Trying each overload compiles its arguments once per try: a struct constructor's
    // hidden local must not be declared again when the chosen one is compiled for real.
    let code = compile(
        r#"contract R {
            struct S { int32 x; int32 y; }
            @address int32 got;
            @address function f(S s) { got = s.x + s.y; }
            @address function f(int32 x) { f(S(x, 3)); }
            @address function g() export { f(4); }
        }"#,
    )
    .unwrap();
    let mut mem = Mem::default();
    assert_eq!(run(&code, &mut mem, "g", vec![], 100_000).result, Ok(None));
    assert_eq!(state(&code, &mem, ScopeKind::Address)[0], int(7));
}

#[test]
fn constructs_outside_the_spec_are_named() {
    let e = compile(
        "contract C { @address function f() { issue@__transaction.get_self_address() () { } } }",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("`issue@…` is not part of the PREDA language specification"),
        "{e}"
    );
}

#[test]
fn float_types_are_refused_with_the_reason() {
    let e = compile("contract C { @global float256 x; }")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`float256` is not supported: every node must compute the same bits"),
        "{e}"
    );
    assert!(e.contains("fixed-point"), "{e}");
    let e = compile("contract C { function f() { uint32 x = 1.5f256; } }")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("floating-point literals are not supported: every node"),
        "{e}"
    );
}

#[test]
fn changes_to_temporaries_compile_and_are_lost_with_them() {
    // PREDA accepts these (its transpiler test const_and_lvalue.prd); with value semantics
    // they change a copy, so the state is untouched. What a temporary token deposits is not
    // lost: it reaches the wallet.
    let code = compile(
        r#"contract T {
            struct S { int32 i; }
            @address S m_s;
            @address array<int32> m_a;
            @address function array<int32> arr() { return m_a; }
            @address function S get() { return m_s; }
            @address function uint32 run() export {
                m_a.push(10);
                arr().push(1);
                arr()[0u] = 2;
                get().i = 5;
                (true ? m_s : get()).i = 7;
                get().i += 1;
                return m_a.length() * 100u + uint32(m_a[0u]);
            }
            @address function pay_in() export {
                __transaction.get_supplied_tokens()[0u].deposit();
            }
        }"#,
    )
    .unwrap();
    let mut mem = Mem::default();
    assert_eq!(
        run(&code, &mut mem, "run", vec![], 1_000_000).result,
        Ok(Some(int(110)))
    );
    let st = state(&code, &mem, ScopeKind::Address);
    assert_eq!(st[0], Value::Struct(vec![int(0)]));
    let out = run_in(&code, &mut mem, "pay_in", vec![], 1_000_000, supplied(70));
    assert_eq!((out.result, out.tokens.deposited), (Ok(None), 70));
    // Assigning to the temporary itself is still refused, as in PREDA.
    let e = compile(
        "contract T { @address array<int32> m_a; @address function array<int32> arr() { return m_a; } @address function f() { array<int32> t; arr() = t; } }",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("is not a variable, member or element"), "{e}");
}

#[test]
fn a_call_emits_at_most_the_chains_relays_per_call() {
    let code = compile(
        "contract C { @address uint32 got;\n\
         @address function fan(uint32 n) export {\n\
           address me = __transaction.get_self_address();\n\
           for (uint32 i = 0u; i < n; i++) { relay@me () { got += 1u; } }\n\
         } }",
    )
    .unwrap();
    let gas = 1_000_000_000;
    let mut mem = Mem::default();
    let n = vm::MAX_RELAYS as i128;
    let out = run(&code, &mut mem, "fan", vec![int(n)], gas);
    assert!(out.result.is_ok(), "{:?}", out.result);
    assert_eq!(out.relays.len(), vm::MAX_RELAYS);
    let out = run(&code, &mut mem, "fan", vec![int(n + 1)], gas);
    assert!(
        matches!(out.result, Err(Trap::Limit("relays per call"))),
        "{:?}",
        out.result
    );
    assert!(out.relays.is_empty(), "a failed call emits nothing");
    // A chain with a higher limit (PREDA scripts' local chain) lets it through.
    mem.max_relays = Some(vm::MAX_RELAYS + 1);
    let out = run(&code, &mut mem, "fan", vec![int(n + 1)], gas);
    assert!(out.result.is_ok(), "{:?}", out.result);
    assert_eq!(out.relays.len(), vm::MAX_RELAYS + 1);
}
