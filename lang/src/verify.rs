//! The bytecode verifier: a module runs only after every table reference is in range, every
//! jump lands on an instruction, the operand stack has one height at every instruction
//! (never below zero, never above [`MAX_STACK`]) and every path ends in a return, and the
//! scope rules hold for state access, calls and relays. Value types are checked when
//! instructions execute (a mismatch aborts the call), so a verified module cannot make the
//! VM panic or read out of bounds.

use thiserror::Error;

use super::ast::ScopeKind;
use super::bytecode::{FnKind, Function, Instr, Method, Module, RelayTo, Root, Step, TypeId};
use super::types::Type;
use super::value::has_type;

/// Deepest operand stack a function may use.
pub const MAX_STACK: usize = 1024;
/// Most instructions in one function.
pub const MAX_CODE: usize = 1 << 20;

/// Why a module was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("function {function} at {pc}: {reason}")]
pub struct VerifyError {
    /// Function index (`usize::MAX` for module-level tables).
    pub function: usize,
    /// Instruction index.
    pub pc: usize,
    /// What is wrong.
    pub reason: String,
}

fn module_err(reason: impl Into<String>) -> VerifyError {
    VerifyError {
        function: usize::MAX,
        pc: 0,
        reason: reason.into(),
    }
}

/// Whether a function of scope `f` may read (`write == false`) or write state of scope `s`.
pub fn state_allowed(f: ScopeKind, s: ScopeKind, write: bool) -> bool {
    if f == s {
        return true;
    }
    match s {
        ScopeKind::Global => !write,
        ScopeKind::Shard => !matches!(f, ScopeKind::Global | ScopeKind::Shard),
        _ => false,
    }
}

/// Whether a function of scope `caller` may call `callee` directly.
pub fn call_allowed(caller: ScopeKind, callee: &Function) -> bool {
    scope_call_allowed(caller, callee.scope, callee.is_const)
}

/// Whether a function of scope `caller` may call a function of scope `scope` directly (in
/// this contract or another): the same scope, a const `@global` one, or an `@shard` one
/// from a scope below the shard (PREDA spec 5.4.2).
pub fn scope_call_allowed(caller: ScopeKind, scope: ScopeKind, is_const: bool) -> bool {
    scope == caller
        || (scope == ScopeKind::Global && is_const)
        || (scope == ScopeKind::Shard && !matches!(caller, ScopeKind::Global | ScopeKind::Shard))
}

/// Types along a place rooted in state: what its operands and its value must be, so writes
/// into state are type-checked where they happen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaceTypes {
    /// Expected type of each index/key operand, in order.
    pub operands: Vec<Type>,
    /// Type of the value at the place.
    pub leaf: Type,
}

/// A module that passed [`verify`], with what the verifier derived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    module: Module,
    places: Vec<Option<PlaceTypes>>,
    uses_random: bool,
    holds_tokens: bool,
    /// SHA256 of each interface's identity ([`super::types::InterfaceDesc::key`]).
    iface_ids: Vec<[u8; 32]>,
    /// The interfaces implemented, by identity: their index in `implements`.
    implemented: std::collections::BTreeMap<[u8; 32], usize>,
}

impl std::ops::Deref for Verified {
    type Target = Module;
    fn deref(&self) -> &Module {
        &self.module
    }
}

impl Verified {
    /// Types of place `p` when it is rooted in state.
    pub fn place_types(&self, p: u32) -> Option<&PlaceTypes> {
        self.places.get(p as usize).and_then(Option::as_ref)
    }

    /// The module.
    pub fn module(&self) -> &Module {
        &self.module
    }

    /// Whether any function calls `__block.get_random_number()` (hosts derive the seed only
    /// then).
    pub fn uses_random(&self) -> bool {
        self.uses_random
    }

    /// The identity of interface `i` of the type table (a hash of its key).
    pub fn iface_id(&self, i: u16) -> Option<&[u8; 32]> {
        self.iface_ids.get(i as usize)
    }

    /// The functions implementing the interface with identity `id`, when the contract
    /// declared that it implements it.
    pub fn implementation(&self, id: &[u8; 32]) -> Option<&[u16]> {
        self.implemented
            .get(id)
            .map(|&k| self.module.implements[k].1.as_slice())
    }

    /// Whether any type of the module can hold a token (state, parameters, locals): only
    /// then can a call's arguments, its relays' arguments or the rows it changes carry value,
    /// and only then does the VM count them.
    pub fn holds_tokens(&self) -> bool {
        self.holds_tokens
    }
}

fn place_types(m: &Module, p: &super::bytecode::Place) -> Result<Option<PlaceTypes>, VerifyError> {
    let Root::State(s, v) = p.root else {
        return Ok(None);
    };
    let (_, tid) = m.state_of(s)[v as usize];
    let mut t = m.types[tid as usize].clone();
    let mut operands = Vec::new();
    for step in &p.steps {
        t = match (step, t) {
            (Step::Field(i), Type::Struct(sid)) => m.table.structs[sid as usize]
                .fields
                .get(*i as usize)
                .map(|(_, f)| f.clone())
                .ok_or_else(|| module_err("place names a missing member"))?,
            (Step::Index, Type::Array(e)) => {
                operands.push(Type::Int(super::num::IntTy::UINT32));
                *e
            }
            (Step::Key(vt), Type::Map(k, v)) => {
                if m.types[*vt as usize] != *v {
                    return Err(module_err("map step with the wrong value type"));
                }
                operands.push(*k);
                *v
            }
            _ => {
                return Err(module_err(
                    "place path does not match the state variable's type",
                ))
            }
        };
    }
    Ok(Some(PlaceTypes { operands, leaf: t }))
}

/// Checks a whole module.
pub fn verify(m: Module) -> Result<Verified, VerifyError> {
    check(&m)?;
    let places = m
        .places
        .iter()
        .map(|p| place_types(&m, p))
        .collect::<Result<Vec<_>, _>>()?;
    let uses_random = m.functions.iter().any(|f| {
        f.code
            .contains(&Instr::Ctx(super::bytecode::CtxFn::BlockRandom))
    });
    let holds_tokens = m.types.iter().any(|t| m.table.holds_token(t));
    let iface_ids: Vec<[u8; 32]> = m
        .table
        .interfaces
        .iter()
        .map(|d| {
            use bitcoin::hashes::{sha256, Hash as _};
            sha256::Hash::hash(d.key.as_bytes()).to_byte_array()
        })
        .collect();
    let mut implemented = std::collections::BTreeMap::new();
    for (k, (i, _)) in m.implements.iter().enumerate() {
        if implemented.insert(iface_ids[*i as usize], k).is_some() {
            return Err(module_err("an interface is implemented twice"));
        }
    }
    Ok(Verified {
        module: m,
        places,
        uses_random,
        holds_tokens,
        iface_ids,
        implemented,
    })
}

fn check(m: &Module) -> Result<(), VerifyError> {
    if m.types.len() > u16::MAX as usize || m.functions.len() > u16::MAX as usize {
        return Err(module_err("too many types or functions"));
    }
    if m.table.enums.len() < 2
        || m.table.enums[0].name != "transaction_type"
        || m.table.enums[1].name != "uievent_state"
    {
        return Err(module_err(
            "enums 0 and 1 must be the built-in transaction_type and uievent_state",
        ));
    }
    for s in &m.table.structs {
        if s.fields.iter().any(|(_, t)| !m.table.is_valid(t)) {
            return Err(module_err(format!(
                "struct {} has an invalid member type",
                s.name
            )));
        }
    }
    if m.table
        .enums
        .iter()
        .any(|e| e.variants.is_empty() || e.variants.len() > u16::MAX as usize)
    {
        return Err(module_err("an enum needs 1 to 65535 enumerators"));
    }
    // A struct containing itself by value has no finite default value.
    for (i, _) in m.table.structs.iter().enumerate() {
        let mut stack = vec![(i, 0usize)];
        while let Some((s, depth)) = stack.pop() {
            if depth > super::types::MAX_TYPE_DEPTH {
                return Err(module_err("struct nesting too deep or recursive"));
            }
            for (_, t) in &m.table.structs[s].fields {
                if let Type::Struct(j) = t {
                    if *j as usize == i {
                        return Err(module_err("struct contains itself"));
                    }
                    stack.push((*j as usize, depth + 1));
                }
            }
        }
    }
    for t in &m.types {
        if !m.table.is_valid(t) {
            return Err(module_err("invalid type in the type table"));
        }
    }
    let ty = |t: TypeId| {
        m.types
            .get(t as usize)
            .ok_or_else(|| module_err(format!("type id {t} out of range")))
    };
    for (t, v) in &m.consts {
        if !has_type(v, ty(*t)?, &m.table) {
            return Err(module_err("constant does not match its type"));
        }
    }
    if m.state.len() != ScopeKind::ALL.len() {
        return Err(module_err("state layout must list every scope"));
    }
    for vars in &m.state {
        for (_, t) in vars {
            ty(*t)?;
        }
        if vars.len() > u16::MAX as usize {
            return Err(module_err("too many state variables"));
        }
    }
    for p in &m.places {
        if let Root::State(s, v) = p.root {
            if v as usize >= m.state_of(s).len() {
                return Err(module_err("place refers to a missing state variable"));
            }
        }
        if p.steps.len() > 32 {
            return Err(module_err("place path too long"));
        }
        for s in &p.steps {
            if let Step::Key(t) = s {
                ty(*t)?;
            }
        }
    }
    check_links(m, &ty)?;
    for (fi, f) in m.functions.iter().enumerate() {
        verify_function(m, fi, f)?;
    }
    Ok(())
}

/// Interfaces, imports, external functions and implementations refer to what exists, and
/// each implementation matches its interface.
fn check_links<'m>(
    m: &'m Module,
    ty: &dyn Fn(TypeId) -> Result<&'m Type, VerifyError>,
) -> Result<(), VerifyError> {
    for d in &m.table.interfaces {
        for f in &d.functions {
            if f.params.len() > 64 || f.params.iter().chain(&f.ret).any(|t| !m.table.is_valid(t)) {
                return Err(module_err(format!(
                    "interface {} has an invalid function",
                    d.name
                )));
            }
        }
    }
    for i in &m.imports {
        let ok = i
            .structs
            .iter()
            .all(|&x| (x as usize) < m.table.structs.len())
            && i.enums.iter().all(|&x| (x as usize) < m.table.enums.len())
            && i.interfaces
                .iter()
                .all(|&x| (x as usize) < m.table.interfaces.len());
        if !ok {
            return Err(module_err("an import maps to a missing type"));
        }
    }
    for e in &m.externs {
        if e.import as usize >= m.imports.len() || e.params.len() > 64 {
            return Err(module_err("an external function of a missing import"));
        }
        for t in e.params.iter().chain(&e.ret) {
            ty(*t)?;
        }
    }
    for (i, funcs) in &m.implements {
        let d = m
            .table
            .interfaces
            .get(*i as usize)
            .ok_or_else(|| module_err("implements a missing interface"))?;
        if funcs.len() != d.functions.len() {
            return Err(module_err("an implementation misses functions"));
        }
        for (want, &fi) in d.functions.iter().zip(funcs) {
            let f = m
                .functions
                .get(fi as usize)
                .ok_or_else(|| module_err("implemented by a missing function"))?;
            let types = f
                .params
                .iter()
                .map(|(_, t)| ty(*t).cloned())
                .collect::<Result<Vec<_>, _>>()?;
            let ret = f.ret.map(ty).transpose()?.cloned();
            if f.kind != FnKind::Normal
                || !f.public
                || f.scope != want.scope
                || f.is_const != want.is_const
                || types != want.params
                || ret != want.ret
            {
                return Err(module_err(format!(
                    "function {} does not implement {}.{}",
                    f.name, d.name, want.name
                )));
            }
        }
    }
    Ok(())
}

fn place_writes(method: Option<Method>) -> bool {
    method.is_none_or(|m| m.mutates())
}

fn verify_function(m: &Module, fi: usize, f: &Function) -> Result<(), VerifyError> {
    let err = |pc: usize, r: String| VerifyError {
        function: fi,
        pc,
        reason: r,
    };
    if f.params.len() > f.locals as usize || f.params.len() > 64 {
        return Err(err(0, "more parameters than locals".into()));
    }
    for (_, t) in &f.params {
        if *t as usize >= m.types.len() {
            return Err(err(0, "parameter type out of range".into()));
        }
    }
    if f.ret.is_some_and(|t| t as usize >= m.types.len()) {
        return Err(err(0, "return type out of range".into()));
    }
    if f.code.is_empty() || f.code.len() > MAX_CODE {
        return Err(err(0, "empty or oversized code".into()));
    }
    if f.kind == FnKind::OnDeploy && f.scope != ScopeKind::Global {
        return Err(err(0, "on_deploy must be global".into()));
    }
    let n = f.code.len();
    let mut height: Vec<Option<usize>> = vec![None; n];
    let mut work = vec![(0usize, 0usize)];
    while let Some((pc, h)) = work.pop() {
        match height[pc] {
            Some(prev) if prev == h => continue,
            Some(prev) => {
                return Err(err(
                    pc,
                    format!("stack height {h} here, {prev} on another path"),
                ));
            }
            None => height[pc] = Some(h),
        }
        let instr = f.code[pc];
        let place = |p: u32, method: Option<Method>| -> Result<usize, VerifyError> {
            let pl = m
                .places
                .get(p as usize)
                .ok_or_else(|| err(pc, format!("place {p} out of range")))?;
            match pl.root {
                Root::Local(s) if s >= f.locals => {
                    Err(err(pc, "place uses a missing local".into()))
                }
                Root::State(s, _) if !state_allowed(f.scope, s, place_writes(method)) => Err(err(
                    pc,
                    format!(
                        "@{} function cannot use @{} state this way",
                        f.scope.name(),
                        s.name()
                    ),
                )),
                _ => Ok(pl.operands()),
            }
        };
        let check_ty = |t: TypeId| {
            if (t as usize) < m.types.len() {
                Ok(())
            } else {
                Err(err(pc, format!("type {t} out of range")))
            }
        };
        // (operands popped, results pushed, falls through, jump target)
        let (pop, push, next, jump): (usize, usize, bool, Option<u32>) = match instr {
            Instr::Const(c) => {
                if c as usize >= m.consts.len() {
                    return Err(err(pc, "constant out of range".into()));
                }
                (0, 1, true, None)
            }
            Instr::Bool(_) => (0, 1, true, None),
            Instr::Default(t) => {
                check_ty(t)?;
                (0, 1, true, None)
            }
            Instr::Pop => (1, 0, true, None),
            Instr::Dup => (1, 2, true, None),
            Instr::DupN(k) => {
                if k == 0 {
                    return Err(err(pc, "DupN 0".into()));
                }
                (k as usize, 2 * k as usize, true, None)
            }
            Instr::LoadLocal(s) | Instr::StoreLocal(s) if s >= f.locals => {
                return Err(err(pc, "local out of range".into()))
            }
            Instr::LoadLocal(_) => (0, 1, true, None),
            Instr::StoreLocal(_) => (1, 0, true, None),
            Instr::Load(p) => {
                let pl = m
                    .places
                    .get(p as usize)
                    .ok_or_else(|| err(pc, format!("place {p} out of range")))?;
                match pl.root {
                    Root::Local(s) if s >= f.locals => {
                        return Err(err(pc, "place uses a missing local".into()))
                    }
                    Root::State(s, _) if !state_allowed(f.scope, s, false) => {
                        return Err(err(
                            pc,
                            format!(
                                "@{} function cannot read @{} state",
                                f.scope.name(),
                                s.name()
                            ),
                        ))
                    }
                    _ => {}
                }
                (pl.operands(), 1, true, None)
            }
            Instr::Store(p) => (place(p, None)? + 1, 0, true, None),
            Instr::TokenMove(src, dst, all) => (
                place(src, None)? + place(dst, None)? + !all as usize,
                1,
                true,
                None,
            ),
            Instr::PlaceMethod(p, me) => {
                if let Method::SetLength(t) = me {
                    check_ty(t)?;
                }
                (
                    place(p, Some(me))? + me.arity(),
                    me.returns() as usize,
                    true,
                    None,
                )
            }
            Instr::ValueMethod(me) => {
                if me.mutates() {
                    return Err(err(pc, "mutating method on a temporary".into()));
                }
                (1 + me.arity(), me.returns() as usize, true, None)
            }
            Instr::Field(_) => (1, 1, true, None),
            Instr::Index => (2, 1, true, None),
            Instr::Key(t) => {
                check_ty(t)?;
                (2, 1, true, None)
            }
            Instr::Arith(..) | Instr::Cmp(_) => (2, 1, true, None),
            Instr::Neg(_) | Instr::BitNot(_) | Instr::Not | Instr::Convert(_) => (1, 1, true, None),
            Instr::Jump(t) => (0, 0, false, Some(t)),
            Instr::JumpIf(t) | Instr::JumpIfNot(t) => (1, 0, true, Some(t)),
            Instr::Call(c) => {
                let g = m
                    .functions
                    .get(c as usize)
                    .ok_or_else(|| err(pc, "call to a missing function".into()))?;
                if g.kind != FnKind::Normal {
                    return Err(err(pc, "only named functions can be called".into()));
                }
                if !call_allowed(f.scope, g) {
                    return Err(err(pc, "call breaks the scope rules".into()));
                }
                (g.params.len(), g.ret.is_some() as usize, true, None)
            }
            Instr::Ret => {
                if f.ret.is_some() {
                    return Err(err(pc, "Ret in a function returning a value".into()));
                }
                (0, 0, false, None)
            }
            Instr::RetVal => {
                if f.ret.is_none() {
                    return Err(err(pc, "RetVal in a function without a result".into()));
                }
                (1, 0, false, None)
            }
            Instr::Relay(to, c) => {
                let g = m
                    .functions
                    .get(c as usize)
                    .ok_or_else(|| err(pc, "relay to a missing function".into()))?;
                let (want, target) = match to {
                    RelayTo::Address => (ScopeKind::Address, 1),
                    RelayTo::Uint(s) => {
                        if s.uint_bits().is_none() {
                            return Err(err(pc, "relay to a non-integer scope by key".into()));
                        }
                        (s, 1)
                    }
                    RelayTo::Shards => (ScopeKind::Shard, 0),
                    RelayTo::Global => {
                        if f.scope == ScopeKind::Global {
                            return Err(err(pc, "relay@global inside a global function".into()));
                        }
                        (ScopeKind::Global, 0)
                    }
                    RelayTo::Next => {
                        if f.scope == ScopeKind::Shard {
                            return Err(err(pc, "relay@next inside a shard function".into()));
                        }
                        (f.scope, 0)
                    }
                };
                if g.scope != want || !matches!(g.kind, FnKind::Normal | FnKind::Lambda) {
                    return Err(err(pc, "relay to a function of the wrong scope".into()));
                }
                (g.params.len() + target, 0, true, None)
            }
            Instr::CallExt(e) | Instr::CallAt(e) => {
                let x = m
                    .externs
                    .get(e as usize)
                    .ok_or_else(|| err(pc, "call to a missing external function".into()))?;
                if !scope_call_allowed(f.scope, x.scope, x.is_const) {
                    return Err(err(pc, "call breaks the scope rules".into()));
                }
                // `CallAt` takes the contract's address below the arguments.
                let at = usize::from(matches!(instr, Instr::CallAt(_)));
                (x.params.len() + at, x.ret.is_some() as usize, true, None)
            }
            Instr::CallIface(i, k) => {
                let x = m
                    .table
                    .interfaces
                    .get(i as usize)
                    .and_then(|d| d.functions.get(k as usize))
                    .ok_or_else(|| err(pc, "call to a missing interface function".into()))?;
                if !scope_call_allowed(f.scope, x.scope, x.is_const) {
                    return Err(err(pc, "call breaks the scope rules".into()));
                }
                (x.params.len() + 1, x.ret.is_some() as usize, true, None)
            }
            Instr::IfaceValid(i) => {
                if i as usize >= m.table.interfaces.len() {
                    return Err(err(pc, "missing interface".into()));
                }
                (1, 1, true, None)
            }
            Instr::Deploy(i, n) => {
                if i as usize >= m.imports.len() {
                    return Err(err(pc, "deploy of a missing import".into()));
                }
                if f.scope != ScopeKind::Global || f.is_const {
                    return Err(err(pc, "deploy outside a non-const global function".into()));
                }
                (n as usize, 1, true, None)
            }
            Instr::ContractValid(i) => {
                if i as usize >= m.imports.len() {
                    return Err(err(pc, "missing import".into()));
                }
                (1, 1, true, None)
            }
            Instr::Mint => (2, 1, true, None),
            Instr::Burn(p) => (place(p, None)?, 1, true, None),
            Instr::BurnValue => (1, 1, true, None),
            Instr::Ctx(c) => (c.arity(), 1, true, None),
            Instr::Print(k) => (k as usize, 0, true, None),
            Instr::Event(_) => (2, 0, true, None),
            Instr::Assert => (1, 0, true, None),
            Instr::AssertMsg => (2, 0, true, None),
            Instr::Trap => (0, 0, false, None),
        };
        if h < pop {
            return Err(err(
                pc,
                format!("stack underflow ({h} values, {pop} needed)"),
            ));
        }
        let after = h - pop + push;
        if after > MAX_STACK {
            return Err(err(pc, "stack too deep".into()));
        }
        if let Some(t) = jump {
            if t as usize >= n {
                return Err(err(pc, format!("jump to {t} outside the function")));
            }
            work.push((t as usize, after));
        }
        if next {
            if pc + 1 >= n {
                return Err(err(
                    pc,
                    "execution falls off the end of the function".into(),
                ));
            }
            work.push((pc + 1, after));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile;

    #[test]
    fn compiled_modules_verify_and_tampering_is_caught() {
        let m = compile(
            "contract C { @address uint64 x; @address function f(uint64 a) export { x += a; } }",
        )
        .unwrap();
        let m = m.module().clone();
        let mut bad = m.clone();
        bad.functions[0].code.pop();
        assert!(verify(bad.clone()).is_err());
        let mut bad = m.clone();
        bad.functions[0].code.insert(0, Instr::Pop);
        assert!(verify(bad.clone()).is_err());
        let mut bad = m.clone();
        bad.functions[0].code.insert(0, Instr::Jump(10_000));
        assert!(verify(bad.clone()).is_err());
        let mut bad = m.clone();
        bad.functions[0].scope = ScopeKind::Shard;
        assert!(
            verify(bad.clone()).is_err(),
            "a shard function may not write address state"
        );
        // The binary encoding round-trips.
        assert_eq!(Module::decode(&m.encode()).unwrap(), m);
    }
}
