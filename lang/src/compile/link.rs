//! Imports and interfaces (PREDA spec 5.7, 5.8): the contracts a source imports, their
//! types copied into this module's table, the interfaces it defines and implements, and the
//! functions of other contracts its code calls.
//!
//! Values are structural, so an imported structure is copied member for member; each is
//! copied once however it is reached (explicitly, or through another import), so `A.S` has
//! one identity here. Imported contracts are bound when the importing one is compiled for
//! deployment, by the [`Imports`] the compiler is given, and never change afterwards.

use std::sync::Arc;

use super::*;
use crate::bytecode::{Extern, Import};
use crate::types::{IfaceFn, InterfaceDesc};

/// Most contracts one source may import, directly or through its imports.
pub const MAX_IMPORTS: usize = 64;

/// Most type definitions (structures and their members, enumerations, interfaces and their
/// functions) a source's imports may bring in: copying them is work a deployment does not
/// pay for by its own size, so it is bounded.
pub const MAX_IMPORTED_DEFS: usize = 8192;

/// Where the compiler finds the contracts a source imports.
pub trait Imports {
    /// The address and code of the contract that `import [dapp.]name` (the source's
    /// `index`-th import directive) binds to, or why there is none.
    fn resolve(
        &self,
        index: usize,
        dapp: Option<&str>,
        name: &str,
    ) -> Result<([u8; 32], Arc<Verified>), String>;
    /// The code of the contract at `addr` (for contracts imported by imports).
    fn code(&self, addr: &[u8; 32]) -> Option<Arc<Verified>>;
}

/// No contracts to import (compiling a lone source).
pub struct NoImports;

impl Imports for NoImports {
    fn resolve(
        &self,
        _: usize,
        _: Option<&str>,
        _: &str,
    ) -> Result<([u8; 32], Arc<Verified>), String> {
        Err("no deployed contracts are known here: imports are bound when the contract is deployed (`rexe contract check` binds them to the files listed before this one)".into())
    }
    fn code(&self, _: &[u8; 32]) -> Option<Arc<Verified>> {
        None
    }
}

/// A contract imported into the one being compiled.
pub(super) struct Imported {
    pub alias: String,
    pub address: [u8; 32],
    pub code: Arc<Verified>,
    pub explicit: bool,
    /// Its structures, enumerations and interfaces in this module's table, by its index.
    pub structs: Vec<u16>,
    pub enums: Vec<u16>,
    pub interfaces: Vec<u16>,
}

/// What a public function of an imported contract looks like from here.
pub(super) fn extern_sig(p: &Program<'_>, imp: usize, f: &crate::bytecode::Function) -> Sig {
    let i = &p.imports[imp];
    let map = |t: &Type| map_type(t, &i.structs, &i.enums, &i.interfaces);
    Sig {
        name: f.name.clone(),
        scope: f.scope,
        params: f
            .params
            .iter()
            .map(|(n, t)| (n.clone(), map(i.code.ty(*t)), false))
            .collect(),
        ret: f.ret.map(|t| map(i.code.ty(t))),
        export: false,
        public: true,
        is_const: f.is_const,
        kind: FnKind::Normal,
        pos: Pos::default(),
    }
}

/// `t` of an imported module's table, in this one's.
fn map_type(t: &Type, structs: &[u16], enums: &[u16], ifaces: &[u16]) -> Type {
    match t {
        Type::Struct(i) => Type::Struct(structs[*i as usize]),
        Type::Enum(i) => Type::Enum(enums[*i as usize]),
        Type::Interface(i) => Type::Interface(ifaces[*i as usize]),
        Type::Array(e) => Type::Array(Box::new(map_type(e, structs, enums, ifaces))),
        Type::Map(k, v) => Type::Map(
            Box::new(map_type(k, structs, enums, ifaces)),
            Box::new(map_type(v, structs, enums, ifaces)),
        ),
        other => other.clone(),
    }
}

/// Where item `j` of an imported module came from when it is a copy of one of *its*
/// imports' items: (its import, index there).
fn copied_from(lists: &[&[u16]], j: usize) -> Option<(usize, usize)> {
    lists
        .iter()
        .enumerate()
        .find_map(|(k, l)| l.iter().position(|&x| x as usize == j).map(|p| (k, p)))
}

impl Program<'_> {
    /// Binds the source's imports and copies their types (and their imports' types).
    pub(super) fn link_imports(&mut self) {
        let file = self.file;
        for (index, d) in file.imports.iter().enumerate() {
            let alias = d.alias_name();
            if alias.name == file.contract.name.name
                || self.import_ids.contains_key(&alias.name)
                || BUILTIN_NAMES.contains(&alias.name.as_str())
                || builtin_type(&alias.name).is_some()
            {
                self.error(
                    alias.pos,
                    format!(
                        "`{}` is already a name here; import it `as` another",
                        alias.name
                    ),
                );
                continue;
            }
            let dapp = d.dapp.as_ref().map(|x| x.name.as_str());
            let (addr, code) = match self.resolver.resolve(index, dapp, &d.name.name) {
                Ok(x) => x,
                Err(e) => {
                    self.error(d.name.pos, format!("`import {}`: {e}", d.name.name));
                    continue;
                }
            };
            if code.name != d.name.name {
                self.error(
                    d.name.pos,
                    format!("`import {}` found contract `{}`", d.name.name, code.name),
                );
                continue;
            }
            let Some(idx) = self.import_contract(addr, code, d.name.pos) else {
                continue;
            };
            if self.imports[idx].explicit {
                self.error(d.name.pos, format!("`{}` is imported twice", d.name.name));
                continue;
            }
            self.rename_import(idx, &alias.name);
            self.imports[idx].explicit = true;
            self.import_ids.insert(alias.name.clone(), idx);
        }
        // Contracts imported by imports are known by their names unless taken.
        for idx in 0..self.imports.len() {
            let i = &self.imports[idx];
            if i.explicit {
                continue;
            }
            let name = i.code.name.clone();
            if name != file.contract.name.name
                && !self.import_ids.contains_key(&name)
                && builtin_type(&name).is_none()
                && !BUILTIN_NAMES.contains(&name.as_str())
            {
                self.import_ids.insert(name, idx);
            }
        }
    }

    /// The index of the contract at `addr` among the imports, importing it (and its own
    /// imports first) when new.
    fn import_contract(&mut self, addr: [u8; 32], code: Arc<Verified>, pos: Pos) -> Option<usize> {
        if let Some(i) = self.imports.iter().position(|x| x.address == addr) {
            return Some(i);
        }
        if self.linking.contains(&addr) {
            self.error(pos, format!("contract `{}` imports itself", code.name));
            return None;
        }
        if self.imports.len() >= MAX_IMPORTS {
            self.error(
                pos,
                format!("more than {MAX_IMPORTS} contracts imported, directly or through imports"),
            );
            return None;
        }
        self.linking.push(addr);
        let mut deps = Vec::with_capacity(code.imports.len());
        for imp in &code.imports {
            let Some(c) = self.resolver.code(&imp.address) else {
                self.error(
                    pos,
                    format!("`{}` imports a contract that is not deployed", code.name),
                );
                self.linking.pop();
                return None;
            };
            let Some(d) = self.import_contract(imp.address, c, pos) else {
                self.linking.pop();
                return None;
            };
            deps.push(d);
        }
        self.linking.pop();
        let alias = code.name.clone();
        let t = &code.table;
        self.imported_defs += t.structs.iter().map(|s| 1 + s.fields.len()).sum::<usize>()
            + t.enums.len()
            + t.interfaces
                .iter()
                .map(|d| 1 + d.functions.len())
                .sum::<usize>();
        if self.imported_defs > MAX_IMPORTED_DEFS {
            self.error(
                pos,
                format!("the imports define more than {MAX_IMPORTED_DEFS} types, members and interface functions"),
            );
            return None;
        }
        let lists =
            |f: fn(&Import) -> &[u16]| -> Vec<&[u16]> { code.imports.iter().map(f).collect() };
        // Structures: copies of the imports' map to theirs; its own are new here.
        let from = lists(|i| i.structs.as_slice());
        let mut structs = Vec::with_capacity(t.structs.len());
        let mut own_structs = Vec::new();
        for (j, s) in t.structs.iter().enumerate() {
            structs.push(match copied_from(&from, j) {
                Some((k, p)) => self.imports[deps[k]].structs[p],
                None => {
                    own_structs.push(j);
                    self.tt.structs.push(StructDesc {
                        name: format!("{alias}.{}", s.name),
                        fields: Vec::new(),
                    });
                    (self.tt.structs.len() - 1) as u16
                }
            });
        }
        let from = lists(|i| i.enums.as_slice());
        let mut enums = Vec::with_capacity(t.enums.len());
        for (j, e) in t.enums.iter().enumerate() {
            enums.push(match copied_from(&from, j) {
                _ if j < 2 => j as u16,
                Some((k, p)) => self.imports[deps[k]].enums[p],
                None => {
                    self.tt.enums.push(EnumDesc {
                        name: format!("{alias}.{}", e.name),
                        variants: e.variants.clone(),
                    });
                    (self.tt.enums.len() - 1) as u16
                }
            });
        }
        let from = lists(|i| i.interfaces.as_slice());
        let mut interfaces = Vec::with_capacity(t.interfaces.len());
        let mut own_ifaces = Vec::new();
        for (j, d) in t.interfaces.iter().enumerate() {
            interfaces.push(match copied_from(&from, j) {
                Some((k, p)) => self.imports[deps[k]].interfaces[p],
                None => {
                    own_ifaces.push(j);
                    self.tt.interfaces.push(InterfaceDesc {
                        name: format!("{alias}.{}", d.name),
                        key: d.key.clone(),
                        functions: Vec::new(),
                    });
                    (self.tt.interfaces.len() - 1) as u16
                }
            });
        }
        if self.tt.structs.len() > u16::MAX as usize
            || self.tt.enums.len() > u16::MAX as usize
            || self.tt.interfaces.len() > u16::MAX as usize
        {
            self.error(pos, "imports define too many types");
            return None;
        }
        let map = |x: &Type| map_type(x, &structs, &enums, &interfaces);
        for j in own_structs {
            let fields = t.structs[j]
                .fields
                .iter()
                .map(|(n, f)| (n.clone(), map(f)))
                .collect();
            self.tt.structs[structs[j] as usize].fields = fields;
        }
        for j in own_ifaces {
            let functions = t.interfaces[j]
                .functions
                .iter()
                .map(|f| IfaceFn {
                    name: f.name.clone(),
                    scope: f.scope,
                    is_const: f.is_const,
                    params: f.params.iter().map(map).collect(),
                    ret: f.ret.as_ref().map(map),
                })
                .collect();
            self.tt.interfaces[interfaces[j] as usize].functions = functions;
        }
        self.imports.push(Imported {
            alias,
            address: addr,
            code,
            explicit: false,
            structs,
            enums,
            interfaces,
        });
        Some(self.imports.len() - 1)
    }

    /// Names the types an import defines after the alias the source gives it.
    fn rename_import(&mut self, idx: usize, alias: &str) {
        let i = &self.imports[idx];
        let old = format!("{}.", i.alias);
        let new = format!("{alias}.");
        let rename = |n: &mut String| {
            if let Some(rest) = n.strip_prefix(&old) {
                *n = format!("{new}{rest}");
            }
        };
        for &s in &i.structs {
            rename(&mut self.tt.structs[s as usize].name);
        }
        for &e in i.enums.iter().skip(2) {
            rename(&mut self.tt.enums[e as usize].name);
        }
        for &d in &i.interfaces {
            rename(&mut self.tt.interfaces[d as usize].name);
        }
        self.imports[idx].alias = alias.to_string();
    }

    /// The contract type of import `imp` (PREDA spec 5.9).
    pub(super) fn contract_type(&self, imp: usize) -> Type {
        let i = &self.imports[imp];
        Type::Contract(Box::new(crate::types::ContractRef {
            name: i.code.name.clone(),
            address: i.address,
        }))
    }

    /// The import the source calls `name`.
    pub(super) fn import_named(&self, name: &str) -> Option<usize> {
        self.import_ids.get(name).copied()
    }

    /// The type `A.X` names: a structure, enumeration or interface of import `imp`.
    pub(super) fn imported_type(&self, imp: usize, name: &str) -> Option<Type> {
        let i = &self.imports[imp];
        let t = &i.code.table;
        if let Some(j) = t.structs.iter().position(|s| s.name == name) {
            return Some(Type::Struct(i.structs[j]));
        }
        if let Some(j) = t.enums.iter().skip(2).position(|e| e.name == name) {
            return Some(Type::Enum(i.enums[j + 2]));
        }
        t.interfaces
            .iter()
            .position(|d| d.name == name)
            .map(|j| Type::Interface(i.interfaces[j]))
    }

    /// Declares the interfaces the contract defines (their functions come later, when every
    /// type name is known).
    pub(super) fn declare_interface(&mut self, d: &InterfaceDef) {
        if self.name_taken(&d.name.name) {
            self.error(d.name.pos, format!("`{}` is already defined", d.name.name));
            return;
        }
        self.iface_ids
            .insert(d.name.name.clone(), self.tt.interfaces.len() as u16);
        self.tt.interfaces.push(InterfaceDesc {
            name: d.name.name.clone(),
            key: String::new(),
            functions: Vec::new(),
        });
    }

    /// Fills in an interface's functions and its identity.
    pub(super) fn define_interface(&mut self, d: &InterfaceDef) {
        let Some(&id) = self.iface_ids.get(&d.name.name) else {
            return;
        };
        let mut functions: Vec<IfaceFn> = Vec::new();
        for f in &d.functions {
            if f.export {
                self.error(
                    f.name.pos,
                    "interface functions are called by contracts; they cannot be `export`",
                );
            }
            let mut params = Vec::new();
            for p in &f.params {
                match self.resolve_type(&p.ty) {
                    Ok(t) => params.push(t),
                    Err(e) => self.errors.push(e),
                }
            }
            let ret = match f.ret.as_ref().map(|t| self.resolve_type(t)).transpose() {
                Ok(r) => r,
                Err(e) => {
                    self.errors.push(e);
                    None
                }
            };
            if functions
                .iter()
                .any(|g| g.name == f.name.name && g.params == params)
            {
                self.error(
                    f.name.pos,
                    format!(
                        "`{}` is declared twice with these parameter types",
                        f.name.name
                    ),
                );
            }
            if matches!(f.name.name.as_str(), "on_deploy" | "on_scaleout") {
                self.error(f.name.pos, "system functions cannot be in an interface");
            }
            functions.push(IfaceFn {
                name: f.name.name.clone(),
                scope: f.scope.map(|s| s.0).unwrap_or(ScopeKind::Global),
                is_const: f.is_const,
                params,
                ret,
            });
        }
        let sigs: Vec<String> = functions.iter().map(|f| self.iface_fn_text(f)).collect();
        let desc = &mut self.tt.interfaces[id as usize];
        desc.key = format!(
            "{}.{}{{{}}}",
            self.file.contract.name.name,
            d.name.name,
            sigs.join(";")
        );
        desc.functions = functions;
    }

    /// `@scope ret name(T1,T2) const`, as an interface's identity spells a function.
    fn iface_fn_text(&self, f: &IfaceFn) -> String {
        let ps: Vec<String> = f.params.iter().map(|t| self.tt.name(t)).collect();
        format!(
            "@{} {} {}({}){}",
            f.scope.name(),
            f.ret.as_ref().map(|t| self.tt.name(t)).unwrap_or_default(),
            f.name,
            ps.join(","),
            if f.is_const { " const" } else { "" }
        )
    }

    /// Resolves `implements` and finds each interface function's implementation.
    pub(super) fn link_implements(&mut self) {
        let file = self.file;
        for path in &file.contract.implements {
            let pos = path[0].pos;
            let te = TypeExpr::Named(path.clone());
            let id = match self.resolve_type(&te) {
                Ok(Type::Interface(i)) => i,
                Ok(t) => {
                    self.error(pos, format!("`{}` is not an interface", self.tt.name(&t)));
                    continue;
                }
                Err(e) => {
                    self.errors.push(e);
                    continue;
                }
            };
            let key = &self.tt.interfaces[id as usize].key;
            if self
                .implements
                .iter()
                .any(|(i, _)| self.tt.interfaces[*i as usize].key == *key)
            {
                self.error(pos, "this interface is listed twice");
                continue;
            }
            let desc = self.tt.interfaces[id as usize].clone();
            let mut funcs = Vec::new();
            for f in &desc.functions {
                let found = self.sig_ids.get(&f.name).and_then(|ids| {
                    ids.iter().copied().find(|&i| {
                        let s = &self.sigs[i as usize];
                        s.params.len() == f.params.len()
                            && s.params.iter().zip(&f.params).all(|((_, a, _), b)| a == b)
                    })
                });
                let why = match found.map(|i| &self.sigs[i as usize]) {
                    None => Some("it has no function with these parameter types".to_string()),
                    Some(s) if !s.public => Some(format!("`{}` must be `public`", s.name)),
                    Some(s) if s.scope != f.scope => {
                        Some(format!("`{}` must be @{}", s.name, f.scope.name()))
                    }
                    Some(s) if s.is_const != f.is_const => Some(format!(
                        "`{}` must {}be const",
                        s.name,
                        if f.is_const { "" } else { "not " }
                    )),
                    Some(s) if s.ret != f.ret => {
                        Some(format!("`{}` must return what the interface says", s.name))
                    }
                    Some(_) => None,
                };
                match (why, found) {
                    (None, Some(i)) => funcs.push(i),
                    (why, _) => {
                        self.error(
                            pos,
                            format!(
                                "`{}` does not implement {}: {}",
                                file.contract.name.name,
                                self.iface_fn_text(f).trim_start(),
                                why.unwrap_or_default()
                            ),
                        );
                    }
                }
            }
            if funcs.len() == desc.functions.len() {
                self.implements.push((id, funcs));
            }
        }
    }

    /// The [`Extern`] entry for function `func` of import `imp`.
    pub(super) fn extern_id(&mut self, imp: usize, func: u16, sig: &Sig) -> u16 {
        if let Some(&id) = self.extern_ids.get(&(imp, func)) {
            return id;
        }
        let params = sig.params.iter().map(|(_, t, _)| self.type_id(t)).collect();
        let ret = sig.ret.as_ref().map(|t| self.type_id(t));
        let id = self.externs.len() as u16;
        self.externs.push(Extern {
            import: imp as u16,
            func,
            name: sig.name.clone(),
            scope: sig.scope,
            is_const: sig.is_const,
            params,
            ret,
        });
        self.extern_ids.insert((imp, func), id);
        id
    }

    /// The module's import table.
    pub(super) fn import_table(&self) -> Vec<Import> {
        self.imports
            .iter()
            .map(|i| Import {
                alias: i.alias.clone(),
                address: i.address,
                explicit: i.explicit,
                structs: i.structs.clone(),
                enums: i.enums.clone(),
                interfaces: i.interfaces.clone(),
            })
            .collect()
    }
}
