//! Function bodies: locals and their block scopes, statements, loops and relays.

use super::*;
use crate::bytecode::{Instr, RelayTo};

/// A local variable.
#[derive(Clone, Debug)]
pub(super) struct Local {
    pub name: String,
    pub slot: u16,
    pub ty: Type,
    pub is_const: bool,
}

#[derive(Default)]
struct Loop {
    breaks: Vec<usize>,
    continues: Vec<usize>,
}

/// The state of compiling one function.
pub(super) struct FnCx<'p, 'a> {
    pub p: &'p mut Program<'a>,
    pub scope: ScopeKind,
    pub is_const: bool,
    pub ret: Option<Type>,
    pub code: Vec<Instr>,
    scopes: Vec<Vec<Local>>,
    locals: u32,
    loops: Vec<Loop>,
    /// Inside a contract constant's initializer: only literals and constants are visible.
    pub const_mode: Vec<String>,
}

const MAX_LOCALS: u32 = 4096;

impl<'p, 'a> FnCx<'p, 'a> {
    pub fn new(
        p: &'p mut Program<'a>,
        scope: ScopeKind,
        is_const: bool,
        ret: Option<Type>,
    ) -> Self {
        FnCx {
            p,
            scope,
            is_const,
            ret,
            code: Vec::new(),
            scopes: vec![Vec::new()],
            locals: 0,
            loops: Vec::new(),
            const_mode: Vec::new(),
        }
    }

    /// Runs `f` (compiling something only to learn its type or whether it compiles), then
    /// drops the code it emitted and the names it declared (hidden locals of constructors).
    pub fn trial<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        let len = self.code.len();
        let scopes = self.scopes.clone();
        let r = f(self);
        self.code.truncate(len);
        self.scopes = scopes;
        r
    }

    pub fn emit(&mut self, i: Instr) -> usize {
        self.code.push(i);
        self.code.len() - 1
    }

    fn here(&self) -> u32 {
        self.code.len() as u32
    }

    fn patch(&mut self, at: usize, target: u32) {
        self.code[at] = match self.code[at] {
            Instr::Jump(_) => Instr::Jump(target),
            Instr::JumpIf(_) => Instr::JumpIf(target),
            Instr::JumpIfNot(_) => Instr::JumpIfNot(target),
            other => other,
        };
    }

    pub fn local(&self, name: &str) -> Option<&Local> {
        self.scopes
            .iter()
            .rev()
            .flat_map(|s| s.iter())
            .find(|l| l.name == name)
    }

    pub(super) fn declare_local(&mut self, name: &Ident, ty: Type, is_const: bool) -> CResult<u16> {
        if self.local(&name.name).is_some() {
            return Err(CompileError::new(
                name.pos,
                format!(
                    "`{}` is already declared in an enclosing block (PREDA does not allow shadowing)",
                    name.name
                ),
            ));
        }
        if self.locals >= MAX_LOCALS {
            return Err(CompileError::new(
                name.pos,
                "too many local variables in one function",
            ));
        }
        let slot = self.locals as u16;
        self.locals += 1;
        self.scopes
            .last_mut()
            .expect("a scope is always open")
            .push(Local {
                name: name.name.clone(),
                slot,
                ty,
                is_const,
            });
        Ok(slot)
    }

    fn block(&mut self, stmts: &'a [Stmt]) {
        self.scopes.push(Vec::new());
        for s in stmts {
            self.stmt(s);
        }
        self.scopes.pop();
    }

    fn stmt(&mut self, s: &'a Stmt) {
        if let Err(e) = self.stmt_inner(s) {
            self.p.errors.push(e);
        }
    }

    fn stmt_inner(&mut self, s: &'a Stmt) -> CResult<()> {
        match s {
            Stmt::Block(b, _) => self.block(b),
            Stmt::If {
                cond, then, els, ..
            } => {
                self.expect(cond, &Type::Bool)?;
                let jf = self.emit(Instr::JumpIfNot(0));
                self.block(then);
                match els {
                    Some(e) => {
                        let jend = self.emit(Instr::Jump(0));
                        let h = self.here();
                        self.patch(jf, h);
                        self.block(e);
                        let h = self.here();
                        self.patch(jend, h);
                    }
                    None => {
                        let h = self.here();
                        self.patch(jf, h);
                    }
                }
            }
            Stmt::While { cond, body, .. } => {
                let top = self.here();
                self.expect(cond, &Type::Bool)?;
                let jf = self.emit(Instr::JumpIfNot(0));
                self.loops.push(Loop::default());
                self.block(body);
                let l = self.loops.pop().unwrap_or_default();
                self.emit(Instr::Jump(top));
                let end = self.here();
                self.patch(jf, end);
                for b in l.breaks {
                    self.patch(b, end);
                }
                for c in l.continues {
                    self.patch(c, top);
                }
            }
            Stmt::DoWhile { body, cond, .. } => {
                let top = self.here();
                self.loops.push(Loop::default());
                self.block(body);
                let l = self.loops.pop().unwrap_or_default();
                let cont = self.here();
                self.expect(cond, &Type::Bool)?;
                self.emit(Instr::JumpIf(top));
                let end = self.here();
                for b in l.breaks {
                    self.patch(b, end);
                }
                for c in l.continues {
                    self.patch(c, cont);
                }
            }
            Stmt::For {
                init,
                cond,
                step,
                body,
                ..
            } => {
                self.scopes.push(Vec::new());
                let r = self.for_loop(init.as_deref(), cond.as_ref(), step.as_ref(), body);
                self.scopes.pop();
                r?;
            }
            Stmt::Break(pos) => {
                let j = self.emit(Instr::Jump(0));
                match self.loops.last_mut() {
                    Some(l) => l.breaks.push(j),
                    None => return Err(CompileError::new(*pos, "`break` outside a loop")),
                }
            }
            Stmt::Continue(pos) => {
                let j = self.emit(Instr::Jump(0));
                match self.loops.last_mut() {
                    Some(l) => l.continues.push(j),
                    None => return Err(CompileError::new(*pos, "`continue` outside a loop")),
                }
            }
            Stmt::Return(e, pos) => match (e, self.ret.clone()) {
                (None, None) => {
                    self.emit(Instr::Ret);
                }
                (Some(e), Some(t)) => {
                    self.expect(e, &t)?;
                    self.emit(Instr::RetVal);
                }
                (None, Some(t)) => {
                    return Err(CompileError::new(
                        *pos,
                        format!("this function must return a {}", self.p.tt.name(&t)),
                    ))
                }
                (Some(e), None) => {
                    return Err(CompileError::new(
                        e.pos,
                        "this function does not return a value",
                    ))
                }
            },
            Stmt::Relay(r) => self.relay(r)?,
            Stmt::Var(d) => self.var_decl(d)?,
            Stmt::Expr(e) => self.expr_stmt(e)?,
        }
        Ok(())
    }

    fn for_loop(
        &mut self,
        init: Option<&'a Stmt>,
        cond: Option<&Expr>,
        step: Option<&Expr>,
        body: &'a [Stmt],
    ) -> CResult<()> {
        if let Some(i) = init {
            self.stmt_inner(i)?;
        }
        let top = self.here();
        let jf = match cond {
            Some(c) => {
                self.expect(c, &Type::Bool)?;
                Some(self.emit(Instr::JumpIfNot(0)))
            }
            None => None,
        };
        self.loops.push(Loop::default());
        self.block(body);
        let l = self.loops.pop().unwrap_or_default();
        let cont = self.here();
        if let Some(s) = step {
            self.expr_stmt(s)?;
        }
        self.emit(Instr::Jump(top));
        let end = self.here();
        if let Some(j) = jf {
            self.patch(j, end);
        }
        for b in l.breaks {
            self.patch(b, end);
        }
        for c in l.continues {
            self.patch(c, cont);
        }
        Ok(())
    }

    fn var_decl(&mut self, d: &VarDecl) -> CResult<()> {
        let ty = match (&d.ty, &d.init) {
            (Some(t), init) => {
                let ty = self.p.resolve_type(t)?;
                match init {
                    Some(e) => self.expect(e, &ty)?,
                    None => {
                        // PREDA accepts `const T x;`: a constant of T's default value.
                        let tid = self.p.type_id(&ty);
                        self.emit(Instr::Default(tid));
                    }
                }
                ty
            }
            (None, Some(e)) => self.value(e, None)?,
            (None, None) => {
                return Err(CompileError::new(
                    d.name.pos,
                    format!(
                        "`auto {}` needs an initializer to take its type from",
                        d.name.name
                    ),
                ))
            }
        };
        let slot = self.declare_local(&d.name, ty, d.is_const)?;
        self.emit(Instr::StoreLocal(slot));
        Ok(())
    }

    fn expr_stmt(&mut self, e: &Expr) -> CResult<()> {
        if let Some(_t) = self.expr(e, None)? {
            self.emit(Instr::Pop);
        }
        Ok(())
    }

    fn relay(&mut self, r: &'a RelayStmt) -> CResult<()> {
        if self.is_const {
            return Err(CompileError::new(r.pos, "a const function cannot relay"));
        }
        let (to, scope) = match &r.target {
            RelayTarget::Expr(e) => {
                let t = self.value(e, None)?;
                match &t {
                    Type::Address => (RelayTo::Address, ScopeKind::Address),
                    Type::Int(it) if !it.signed && ScopeKind::for_uint(it.bits).is_some() => {
                        let s = ScopeKind::for_uint(it.bits).expect("checked");
                        (RelayTo::Uint(s), s)
                    }
                    other => {
                        return Err(CompileError::new(
                            e.pos,
                            format!(
                                "a relay target must be an address or a uint32/uint64/uint128/uint256/uint512 scope key, not {}",
                                self.p.tt.name(other)
                            ),
                        ))
                    }
                }
            }
            // A broadcast to every shard, from any scope (PREDA spec 3.7).
            RelayTarget::Shards => (RelayTo::Shards, ScopeKind::Shard),
            RelayTarget::Global => {
                if self.scope == ScopeKind::Global {
                    return Err(CompileError::new(
                        r.pos,
                        "relay@global cannot be used in a @global function (call the function directly)",
                    ));
                }
                (RelayTo::Global, ScopeKind::Global)
            }
            RelayTarget::Next => {
                if self.scope == ScopeKind::Shard {
                    return Err(CompileError::new(
                        r.pos,
                        "relay@next cannot be used in @shard functions",
                    ));
                }
                (RelayTo::Next, self.scope)
            }
        };
        match &r.call {
            RelayCall::Named { name, args } => {
                if !self.p.sig_ids.contains_key(&name.name) {
                    return Err(CompileError::new(
                        name.pos,
                        format!(
                            "relay to `{}`, which is not a function of this contract",
                            name.name
                        ),
                    ));
                }
                let fid = self.overload(&name.name, args, name.pos)?;
                let sig = self.p.sigs[fid as usize].clone();
                if sig.kind != FnKind::Normal {
                    return Err(CompileError::new(
                        name.pos,
                        format!(
                            "`{}` is called by the system and cannot be a relay target",
                            sig.name
                        ),
                    ));
                }
                if sig.scope != scope {
                    return Err(CompileError::new(
                        name.pos,
                        format!(
                            "this relay runs in @{} scope, but `{}` is a @{} function",
                            scope.name(),
                            sig.name,
                            sig.scope.name()
                        ),
                    ));
                }
                self.args(&sig, args, name.pos)?;
                self.emit(Instr::Relay(to, fid));
            }
            RelayCall::Lambda {
                params,
                is_const,
                body,
            } => {
                let mut ps: Vec<(String, Type, bool)> = Vec::new();
                for lp in params {
                    let (name, ty, c) = match lp {
                        LambdaParam::Capture(id) => {
                            let e = Expr {
                                kind: ExprKind::Name(id.name.clone()),
                                pos: id.pos,
                            };
                            (id.clone(), self.value(&e, None)?, false)
                        }
                        LambdaParam::Decl {
                            is_const,
                            ty,
                            name,
                            value,
                        } => {
                            let t = match ty {
                                Some(t) => {
                                    let t = self.p.resolve_type(t)?;
                                    self.expect(value, &t)?;
                                    t
                                }
                                None => self.value(value, None)?,
                            };
                            (name.clone(), t, *is_const)
                        }
                    };
                    if ps.iter().any(|(n, _, _)| *n == name.name) {
                        return Err(CompileError::new(
                            name.pos,
                            format!("relay parameter `{}` appears twice", name.name),
                        ));
                    }
                    ps.push((name.name.clone(), ty, c));
                }
                if ps.len() > 64 {
                    return Err(CompileError::new(
                        r.pos,
                        "a relay cannot carry more than 64 values",
                    ));
                }
                let sig = Sig {
                    name: format!("<relay@{}:{}>", r.pos.line, r.pos.col),
                    scope,
                    params: ps,
                    ret: None,
                    export: false,
                    public: false,
                    is_const: *is_const,
                    kind: FnKind::Lambda,
                    pos: r.pos,
                };
                let fid = self.p.add_lambda(sig, body);
                self.emit(Instr::Relay(to, fid));
            }
        }
        Ok(())
    }

    /// Compiles call arguments against a signature.
    pub fn args(&mut self, sig: &Sig, args: &[Expr], pos: Pos) -> CResult<()> {
        if args.len() != sig.params.len() {
            return Err(CompileError::new(
                pos,
                format!(
                    "`{}` takes {} argument(s), {} given",
                    sig.name,
                    sig.params.len(),
                    args.len()
                ),
            ));
        }
        for (a, (_, t, _)) in args.iter().zip(&sig.params) {
            self.expect(a, t)?;
        }
        Ok(())
    }

    fn finish(self, id: u16) -> Function {
        let sig = self.p.sigs[id as usize].clone();
        Function {
            name: sig.name,
            scope: sig.scope,
            params: sig
                .params
                .iter()
                .map(|(n, t, _)| (n.clone(), self.p.type_id(t)))
                .collect(),
            ret: sig.ret.clone().map(|t| self.p.type_id(&t)),
            export: sig.export,
            public: sig.public,
            is_const: sig.is_const,
            kind: sig.kind,
            locals: self.locals as u16,
            code: self.code,
        }
    }
}

fn always_returns(stmts: &[Stmt]) -> bool {
    stmts.iter().any(|s| match s {
        Stmt::Return(..) => true,
        Stmt::Block(b, _) => always_returns(b),
        Stmt::If {
            then, els: Some(e), ..
        } => always_returns(then) && always_returns(e),
        _ => false,
    })
}

/// Compiles the body of function `id`.
pub(super) fn compile_function<'a>(
    p: &mut Program<'a>,
    id: u16,
    body: &'a [Stmt],
    pos: Pos,
) -> Function {
    let sig = p.sigs[id as usize].clone();
    let mut cx = FnCx::new(p, sig.scope, sig.is_const, sig.ret.clone());
    for (name, t, c) in &sig.params {
        let ident = Ident {
            name: name.clone(),
            pos,
        };
        if let Err(e) = cx.declare_local(&ident, t.clone(), *c) {
            cx.p.errors.push(e);
        }
    }
    cx.scopes.push(Vec::new());
    for s in body {
        cx.stmt(s);
    }
    match &sig.ret {
        None => {
            cx.emit(Instr::Ret);
        }
        Some(_) => {
            if !always_returns(body) {
                cx.p.errors.push(CompileError::new(
                    pos,
                    format!("function `{}` must end with a return statement", sig.name),
                ));
            }
            cx.emit(Instr::Trap);
        }
    }
    cx.finish(id)
}

/// Checks a contract constant's initializer (it is compiled inline wherever it is used).
pub(super) fn check_const(p: &mut Program<'_>, c: &ConstDecl) {
    let ty = match p.resolve_type(&c.ty) {
        Ok(t) => t,
        Err(e) => {
            p.errors.push(e);
            return;
        }
    };
    let mut cx = FnCx::new(p, ScopeKind::Global, true, None);
    cx.const_mode.push(c.name.name.clone());
    if let Err(e) = cx.expect(&c.value, &ty) {
        cx.p.errors.push(e);
    }
}
