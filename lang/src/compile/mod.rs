//! The checker and code generator: resolves names and types, enforces PREDA's scope rules
//! (spec 5.4.2) and emits bytecode in one pass over each function body.
//!
//! Declarations are collected first (types, constants, state, function signatures), so
//! definitions may appear in any order. Each relay lambda becomes a function of its target
//! scope whose parameters are the lambda's values; its body is compiled after the function
//! that contains it.

mod expr;
mod func;
mod link;

pub use link::{Imports, NoImports, MAX_IMPORTS};

use std::collections::{HashMap, VecDeque};

use super::ast::*;
use super::bytecode::{Extern, FnKind, Function, Module, Place, TypeId};
use super::error::{CompileError, CompileErrors, Pos};
use super::num::IntTy;
use super::parser::parse;
use super::types::{
    implicitly_converts, is_map_key, EnumDesc, StructDesc, Type, TypeTable, MAX_TYPE_DEPTH,
};
use super::value::{self, Value};
use super::verify::Verified;

type CResult<T> = Result<T, CompileError>;

/// A state variable as the checker sees it.
#[derive(Clone, Debug)]
struct StateVar {
    scope: ScopeKind,
    index: u16,
    ty: Type,
}

/// A function signature (named functions and relay lambdas).
#[derive(Clone, Debug)]
struct Sig {
    name: String,
    scope: ScopeKind,
    params: Vec<(String, Type, bool)>,
    ret: Option<Type>,
    export: bool,
    public: bool,
    is_const: bool,
    kind: FnKind,
    pos: Pos,
}

/// A lambda body waiting to be compiled.
struct PendingLambda<'a> {
    func: u16,
    body: &'a [Stmt],
}

/// Contract-level state of a compilation.
struct Program<'a> {
    file: &'a SourceFile,
    tt: TypeTable,
    struct_ids: HashMap<String, u16>,
    enum_ids: HashMap<String, u16>,
    consts: HashMap<String, &'a ConstDecl>,
    state: HashMap<String, StateVar>,
    state_layout: Vec<Vec<(String, Type)>>,
    sigs: Vec<Sig>,
    /// Functions by name: several when overloaded (by parameter types).
    sig_ids: HashMap<String, Vec<u16>>,
    bodies: Vec<Option<Function>>,
    types: Vec<Type>,
    type_ids: HashMap<Type, TypeId>,
    const_pool: Vec<(TypeId, Value)>,
    const_ids: HashMap<(TypeId, Vec<u8>), u32>,
    places: Vec<Place>,
    place_ids: HashMap<Place, u32>,
    errors: Vec<CompileError>,
    lambdas: VecDeque<PendingLambda<'a>>,
    /// Where imports are bound.
    resolver: &'a dyn Imports,
    /// Imported contracts (explicitly or through imports).
    imports: Vec<link::Imported>,
    /// Imports by the name the source uses for them.
    import_ids: HashMap<String, usize>,
    /// Contracts being imported (to refuse cycles).
    linking: Vec<[u8; 32]>,
    /// Type definitions the imports brought in so far.
    imported_defs: usize,
    /// The contract's own interfaces by name.
    iface_ids: HashMap<String, u16>,
    /// Interfaces implemented, with their implementations.
    implements: Vec<(u16, Vec<u16>)>,
    /// Functions of other contracts called.
    externs: Vec<Extern>,
    extern_ids: HashMap<(usize, u16), u16>,
}

const BUILTIN_NAMES: &[&str] = &[
    "bool",
    "bigint",
    "string",
    "blob",
    "hash",
    "address",
    "int8",
    "int16",
    "int32",
    "int64",
    "int128",
    "int256",
    "int512",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "uint128",
    "uint256",
    "uint512",
    "transaction_type",
    "uievent_state",
    "__event",
    "__transaction",
    "__block",
    "__debug",
];

fn builtin_type(name: &str) -> Option<Type> {
    Some(match name {
        "bool" => Type::Bool,
        "bigint" => Type::BigInt,
        "string" => Type::String,
        "blob" => Type::Blob,
        "hash" => Type::Hash,
        "address" => Type::Address,
        "token" => Type::Token,
        _ => {
            let (signed, rest) = if let Some(r) = name.strip_prefix("uint") {
                (false, r)
            } else if let Some(r) = name.strip_prefix("int") {
                (true, r)
            } else {
                return None;
            };
            let bits: u16 = rest.parse().ok()?;
            if !IntTy::valid_bits(bits) || rest.starts_with('0') {
                return None;
            }
            Type::Int(IntTy { signed, bits })
        }
    })
}

impl<'a> Program<'a> {
    fn new(file: &'a SourceFile, resolver: &'a dyn Imports) -> Self {
        Program {
            resolver,
            imports: Vec::new(),
            import_ids: HashMap::new(),
            linking: Vec::new(),
            imported_defs: 0,
            iface_ids: HashMap::new(),
            implements: Vec::new(),
            externs: Vec::new(),
            extern_ids: HashMap::new(),
            file,
            tt: TypeTable::with_builtins(),
            struct_ids: HashMap::new(),
            enum_ids: HashMap::from([
                ("transaction_type".to_string(), 0u16),
                ("uievent_state".to_string(), 1u16),
            ]),
            consts: HashMap::new(),
            state: HashMap::new(),
            state_layout: vec![Vec::new(); ScopeKind::ALL.len()],
            sigs: Vec::new(),
            sig_ids: HashMap::new(),
            bodies: Vec::new(),
            types: Vec::new(),
            type_ids: HashMap::new(),
            const_pool: Vec::new(),
            const_ids: HashMap::new(),
            places: Vec::new(),
            place_ids: HashMap::new(),
            errors: Vec::new(),
            lambdas: VecDeque::new(),
        }
    }

    fn error(&mut self, pos: Pos, msg: impl Into<String>) {
        self.errors.push(CompileError::new(pos, msg));
    }

    fn type_id(&mut self, t: &Type) -> TypeId {
        if let Some(id) = self.type_ids.get(t) {
            return *id;
        }
        let id = self.types.len() as TypeId;
        self.types.push(t.clone());
        self.type_ids.insert(t.clone(), id);
        id
    }

    fn constant(&mut self, t: &Type, v: Value) -> u32 {
        let tid = self.type_id(t);
        let key = (tid, value::to_bytes(&v, t, &self.tt).unwrap_or_default());
        if let Some(id) = self.const_ids.get(&key) {
            return *id;
        }
        let id = self.const_pool.len() as u32;
        self.const_pool.push((tid, v));
        self.const_ids.insert(key, id);
        id
    }

    fn place(&mut self, p: Place) -> u32 {
        if let Some(id) = self.place_ids.get(&p) {
            return *id;
        }
        let id = self.places.len() as u32;
        self.places.push(p.clone());
        self.place_ids.insert(p, id);
        id
    }

    fn name_taken(&self, name: &str) -> bool {
        self.state.contains_key(name)
            || self.consts.contains_key(name)
            || self.sig_ids.contains_key(name)
            || self.struct_ids.contains_key(name)
            || self.enum_ids.contains_key(name)
            || self.iface_ids.contains_key(name)
            || self.import_ids.contains_key(name)
            || name == self.file.contract.name.name
            || BUILTIN_NAMES.contains(&name)
    }

    fn resolve_type(&self, t: &TypeExpr) -> CResult<Type> {
        self.resolve_type_at(t, 0)
    }

    fn resolve_type_at(&self, t: &TypeExpr, depth: usize) -> CResult<Type> {
        if depth > MAX_TYPE_DEPTH {
            return Err(CompileError::new(t.pos(), "type nested too deeply"));
        }
        match t {
            TypeExpr::Named(parts) => {
                // `Contract.S` names this contract's own type `S`.
                let parts = match parts.as_slice() {
                    [c, rest @ ..]
                        if !rest.is_empty() && c.name == self.file.contract.name.name =>
                    {
                        rest
                    }
                    _ => parts.as_slice(),
                };
                if let [c, n] = parts {
                    let Some(imp) = self.import_named(&c.name) else {
                        return Err(CompileError::new(
                            c.pos,
                            format!("`{}` is not an imported contract", c.name),
                        ));
                    };
                    return self.imported_type(imp, &n.name).ok_or_else(|| {
                        CompileError::new(
                            n.pos,
                            format!("contract `{}` defines no type `{}`", c.name, n.name),
                        )
                    });
                }
                if parts.len() > 2 {
                    return Err(CompileError::new(
                        parts[0].pos,
                        format!(
                            "`{}`: a type is named `T` or `Contract.T`",
                            parts
                                .iter()
                                .map(|p| p.name.as_str())
                                .collect::<Vec<_>>()
                                .join(".")
                        ),
                    ));
                }
                let n = &parts[0];
                if let Some(b) = builtin_type(&n.name) {
                    return Ok(b);
                }
                if let Some(i) = self.struct_ids.get(&n.name) {
                    return Ok(Type::Struct(*i));
                }
                if let Some(i) = self.enum_ids.get(&n.name) {
                    return Ok(Type::Enum(*i));
                }
                if let Some(i) = self.iface_ids.get(&n.name) {
                    return Ok(Type::Interface(*i));
                }
                if let Some(imp) = self.import_named(&n.name) {
                    return Ok(self.contract_type(imp));
                }
                if n.name == self.file.contract.name.name {
                    return Err(CompileError::new(
                        n.pos,
                        format!(
                            "`{}` is this contract; a contract type names an imported contract (PREDA spec 5.9)",
                            n.name
                        ),
                    ));
                }
                let msg = match n.name.as_str() {
                    "float256" | "float512" | "float1024" => {
                        format!(
                            "`{}` is not supported: every node must compute the same bits, and PREDA defines its float types by the rounding of its C++ big-float library, which no specification fixes bit for bit (use fixed-point arithmetic on integers or bigint)",
                            n.name
                        )
                    }
                    other => format!("unknown type `{other}`"),
                };
                Err(CompileError::new(n.pos, msg))
            }
            TypeExpr::Array(e, _) => Ok(Type::Array(Box::new(self.resolve_type_at(e, depth + 1)?))),
            TypeExpr::Map(k, v, pos) => {
                let kt = self.resolve_type_at(k, depth + 1)?;
                if !is_map_key(&kt) {
                    return Err(CompileError::new(
                        *pos,
                        format!(
                            "`{}` cannot be a map key (use an integer, address, hash, blob, string, bool or enum)",
                            self.tt.name(&kt)
                        ),
                    ));
                }
                Ok(Type::Map(
                    Box::new(kt),
                    Box::new(self.resolve_type_at(v, depth + 1)?),
                ))
            }
            TypeExpr::Scattered(_, pos) => Err(CompileError::new(
                *pos,
                "scattered_map and scattered_array can only be the type of a state variable",
            )),
        }
    }

    /// Collects every declaration. Errors are recorded; compilation stops after this pass
    /// if there are any.
    fn declare(&mut self) {
        let file = self.file;
        self.link_imports();
        // Type names first, so members may refer to types declared later.
        for item in &file.contract.items {
            match item {
                Item::Struct(s) => {
                    if self.name_taken(&s.name.name) {
                        self.error(s.name.pos, format!("`{}` is already defined", s.name.name));
                        continue;
                    }
                    self.struct_ids
                        .insert(s.name.name.clone(), self.tt.structs.len() as u16);
                    self.tt.structs.push(StructDesc {
                        name: s.name.name.clone(),
                        fields: Vec::new(),
                    });
                }
                Item::Enum(e) => {
                    if self.name_taken(&e.name.name) {
                        self.error(e.name.pos, format!("`{}` is already defined", e.name.name));
                        continue;
                    }
                    if e.variants.is_empty() || e.variants.len() > 65_535 {
                        self.error(e.name.pos, "an enum needs 1 to 65535 enumerators");
                    }
                    let mut seen = Vec::new();
                    for v in &e.variants {
                        if seen.contains(&&v.name) {
                            self.error(v.pos, format!("enumerator `{}` appears twice", v.name));
                        }
                        seen.push(&v.name);
                    }
                    self.enum_ids
                        .insert(e.name.name.clone(), self.tt.enums.len() as u16);
                    self.tt.enums.push(EnumDesc {
                        name: e.name.name.clone(),
                        variants: e.variants.iter().map(|v| v.name.clone()).collect(),
                    });
                }
                Item::Interface(d) => self.declare_interface(d),
                _ => {}
            }
        }
        for item in &file.contract.items {
            if let Item::Struct(s) = item {
                let Some(&id) = self.struct_ids.get(&s.name.name) else {
                    continue;
                };
                if s.fields.len() > 255 {
                    self.error(s.name.pos, "a struct cannot have more than 255 members");
                }
                let mut fields: Vec<(String, Type)> = Vec::new();
                for (te, n) in &s.fields {
                    if fields.iter().any(|(f, _)| *f == n.name) {
                        self.error(n.pos, format!("member `{}` appears twice", n.name));
                        continue;
                    }
                    match self.resolve_type(te) {
                        Ok(t) => fields.push((n.name.clone(), t)),
                        Err(e) => self.errors.push(e),
                    }
                }
                self.tt.structs[id as usize].fields = fields;
            }
        }
        self.check_struct_cycles();
        for item in &file.contract.items {
            match item {
                Item::Const(c) => {
                    if self.name_taken(&c.name.name) {
                        self.error(c.name.pos, format!("`{}` is already defined", c.name.name));
                        continue;
                    }
                    self.consts.insert(c.name.name.clone(), c);
                }
                Item::State(s) => {
                    if self.name_taken(&s.name.name) {
                        self.error(s.name.pos, format!("`{}` is already defined", s.name.name));
                        continue;
                    }
                    let scope = s.scope.map(|x| x.0).unwrap_or(ScopeKind::Global);
                    // rexe stores every top-level array and map one row per element or
                    // entry, which is what PREDA's scattered containers are.
                    let ty = match &s.ty {
                        TypeExpr::Scattered(inner, _) => inner,
                        t => t,
                    };
                    match self.resolve_type(ty) {
                        Ok(ty) => {
                            let layout = &mut self.state_layout[scope.tag() as usize];
                            let index = layout.len() as u16;
                            layout.push((s.name.name.clone(), ty.clone()));
                            self.state
                                .insert(s.name.name.clone(), StateVar { scope, index, ty });
                        }
                        Err(e) => self.errors.push(e),
                    }
                }
                _ => {}
            }
        }
        for item in &file.contract.items {
            match item {
                Item::Function(f) => self.declare_function(f),
                Item::Interface(d) => self.define_interface(d),
                _ => {}
            }
        }
        self.link_implements();
    }

    fn check_struct_cycles(&mut self) {
        // A struct that contains itself by value (not through an array or map) has no
        // finite default value.
        fn contains(tt: &TypeTable, t: &Type, target: u16, depth: usize) -> bool {
            if depth > MAX_TYPE_DEPTH {
                return true;
            }
            match t {
                Type::Struct(i) => {
                    *i == target
                        || tt.structs[*i as usize]
                            .fields
                            .iter()
                            .any(|(_, f)| contains(tt, f, target, depth + 1))
                }
                _ => false,
            }
        }
        for (id, s) in self.tt.structs.iter().enumerate() {
            if s.fields
                .iter()
                .any(|(_, f)| contains(&self.tt, f, id as u16, 0))
            {
                let pos = self
                    .file
                    .contract
                    .items
                    .iter()
                    .find_map(|i| match i {
                        Item::Struct(d) if d.name.name == s.name => Some(d.name.pos),
                        _ => None,
                    })
                    .unwrap_or_default();
                self.errors.push(CompileError::new(
                    pos,
                    format!(
                        "struct `{}` contains itself (use an array or map to nest it)",
                        s.name
                    ),
                ));
            }
        }
    }

    fn declare_function(&mut self, f: &FunctionDef) {
        let name = &f.name.name;
        // A function's name may be taken by other functions (overloads), nothing else.
        let overloads = self.sig_ids.get(name).cloned().unwrap_or_default();
        if overloads.is_empty() && self.name_taken(name) {
            self.error(f.name.pos, format!("`{name}` is already defined"));
            return;
        }
        let scope = f.scope.map(|s| s.0).unwrap_or(ScopeKind::Global);
        let kind = match name.as_str() {
            "on_deploy" => FnKind::OnDeploy,
            "on_scaleout" => FnKind::OnScaleout,
            _ => FnKind::Normal,
        };
        let mut params = Vec::new();
        for p in &f.params {
            if params
                .iter()
                .any(|(n, _, _): &(String, Type, bool)| *n == p.name.name)
            {
                self.error(
                    p.name.pos,
                    format!("parameter `{}` appears twice", p.name.name),
                );
                continue;
            }
            match self.resolve_type(&p.ty) {
                Ok(t) => params.push((p.name.name.clone(), t, p.is_const)),
                Err(e) => self.errors.push(e),
            }
        }
        let ret = match &f.ret {
            Some(t) => match self.resolve_type(t) {
                Ok(t) => Some(t),
                Err(e) => {
                    self.errors.push(e);
                    None
                }
            },
            None => None,
        };
        match kind {
            FnKind::OnDeploy => {
                if scope != ScopeKind::Global {
                    self.error(f.name.pos, "on_deploy must be a @global function");
                }
                if ret.is_some() {
                    self.error(f.name.pos, "on_deploy cannot return a value");
                }
            }
            FnKind::OnScaleout
                if (scope != ScopeKind::Shard
                    || params.len() != 1
                    || params[0].1 != Type::Bool
                    || ret.is_some()) =>
            {
                self.error(
                    f.name.pos,
                    "on_scaleout must be declared `@shard function on_scaleout(bool forked)`",
                );
            }
            _ => {}
        }
        if f.params.len() > 64 {
            self.error(f.name.pos, "a function cannot have more than 64 parameters");
        }
        if !overloads.is_empty() {
            if kind != FnKind::Normal {
                self.error(f.name.pos, format!("`{name}` is already defined"));
                return;
            }
            let types: Vec<&Type> = params.iter().map(|(_, t, _)| t).collect();
            let same = overloads.iter().any(|&o| {
                let ps = &self.sigs[o as usize].params;
                ps.len() == types.len() && ps.iter().zip(&types).all(|((_, a, _), b)| a == *b)
            });
            if same {
                self.error(
                    f.name.pos,
                    format!("`{name}` is already defined with these parameter types"),
                );
                return;
            }
        }
        // A transaction's arguments are bytes its sender wrote: a token among them would be
        // value made from nothing. Value comes with the call (`get_supplied_tokens`).
        if f.export || kind == FnKind::OnDeploy {
            if let Some((n, _, _)) = params.iter().find(|(_, t, _)| self.tt.holds_token(t)) {
                self.error(
                    f.name.pos,
                    format!(
                        "`{}` takes a token (`{n}`) but is called by transactions, whose arguments cannot carry value: attach rxBTC to the call and read it with __transaction.get_supplied_tokens()",
                        f.name.name
                    ),
                );
            }
        }
        let id = self.sigs.len() as u16;
        self.sigs.push(Sig {
            name: name.clone(),
            scope,
            params,
            ret,
            export: f.export,
            public: f.public,
            is_const: f.is_const,
            kind,
            pos: f.name.pos,
        });
        self.sig_ids.entry(name.clone()).or_default().push(id);
        self.bodies.push(None);
    }

    fn add_lambda(&mut self, sig: Sig, body: &'a [Stmt]) -> u16 {
        let id = self.sigs.len() as u16;
        self.sigs.push(sig);
        self.bodies.push(None);
        self.lambdas.push_back(PendingLambda { func: id, body });
        id
    }

    fn compile_bodies(&mut self) {
        let file = self.file;
        for item in &file.contract.items {
            if let Item::Function(f) = item {
                // Skip a duplicate definition that was refused at declaration.
                let Some(id) = self.sig_ids.get(&f.name.name).and_then(|ids| {
                    ids.iter()
                        .copied()
                        .find(|&i| self.sigs[i as usize].pos == f.name.pos)
                }) else {
                    continue;
                };
                let body = func::compile_function(self, id, &f.body, f.name.pos);
                self.bodies[id as usize] = Some(body);
            }
        }
        for item in &file.contract.items {
            if let Item::Const(c) = item {
                func::check_const(self, c);
            }
        }
        while let Some(l) = self.lambdas.pop_front() {
            let pos = self.sigs[l.func as usize].pos;
            let body = func::compile_function(self, l.func, l.body, pos);
            self.bodies[l.func as usize] = Some(body);
        }
    }

    fn finish(mut self) -> Result<Verified, CompileErrors> {
        if !self.errors.is_empty() {
            self.errors.sort_by_key(|e| e.pos);
            self.errors.dedup();
            return Err(CompileErrors(self.errors));
        }
        let layout = std::mem::take(&mut self.state_layout);
        let state: Vec<Vec<(String, TypeId)>> = layout
            .iter()
            .map(|vars| {
                vars.iter()
                    .map(|(n, t)| (n.clone(), self.type_id(t)))
                    .collect()
            })
            .collect();
        let functions: Vec<Function> = std::mem::take(&mut self.bodies)
            .into_iter()
            .map(|b| b.expect("every declared function has a body"))
            .collect();
        let imports = self.import_table();
        let module = Module {
            name: self.file.contract.name.name.clone(),
            types: self.types,
            table: self.tt,
            consts: self.const_pool,
            places: self.places,
            state,
            functions,
            imports,
            externs: std::mem::take(&mut self.externs),
            implements: std::mem::take(&mut self.implements),
        };
        super::verify::verify(module).map_err(|e| {
            CompileErrors(vec![CompileError::new(
                Pos { line: 1, col: 1 },
                format!("internal compiler error (bytecode rejected by the verifier): {e}"),
            )])
        })
    }
}

/// Compiles PREDA source to a verified module, or returns every error found. A source that
/// imports other contracts needs [`compile_with`].
pub fn compile(src: &str) -> Result<Verified, CompileErrors> {
    compile_with(src, &NoImports)
}

/// Compiles PREDA source whose imports are bound by `imports`.
pub fn compile_with(src: &str, imports: &dyn Imports) -> Result<Verified, CompileErrors> {
    let file = parse(src)?;
    let mut p = Program::new(&file, imports);
    p.declare();
    if !p.errors.is_empty() {
        p.errors.sort_by_key(|e| e.pos);
        return Err(CompileErrors(p.errors));
    }
    p.compile_bodies();
    p.finish()
}

/// Whether a value of `from` may be used where `to` is expected.
fn converts(from: &Type, to: &Type) -> bool {
    implicitly_converts(from, to)
}
