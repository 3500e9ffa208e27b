//! Expressions: literals (an unsuffixed integer takes the integer type its context wants
//! when it fits, `int32` otherwise), operators, places (locals and state variables with
//! member/index steps), calls, methods, conversions and the context objects.

use bitcoin::hex::FromHex;
use num_bigint::BigInt;

use super::func::FnCx;
use super::*;
use crate::bytecode::{Arith, CmpOp, Conv, CtxFn, Instr, Method, Root, Step};
use crate::num::{Int, NumTy};
use crate::types::num_ty;

/// A location an expression names.
pub(super) struct PlaceRef<'e> {
    root: Root,
    steps: Vec<Step>,
    operands: Vec<(&'e Expr, Type)>,
    pub ty: Type,
    /// Why it cannot be written, if it cannot.
    pub read_only: Option<String>,
}

fn is_flex_literal(e: &Expr) -> bool {
    matches!(
        e.kind,
        ExprKind::Int {
            suffix: crate::lexer::IntSuffix::None,
            ..
        }
    )
}

fn state_access(fn_scope: ScopeKind, var_scope: ScopeKind) -> Option<bool> {
    if fn_scope == var_scope {
        return Some(true);
    }
    match var_scope {
        ScopeKind::Global => Some(false),
        ScopeKind::Shard if !matches!(fn_scope, ScopeKind::Global | ScopeKind::Shard) => Some(true),
        _ => None,
    }
}

impl<'p, 'a> FnCx<'p, 'a> {
    /// Compiles `e`; `None` when it has no value (assignments, void calls).
    pub fn expr(&mut self, e: &Expr, hint: Option<&Type>) -> CResult<Option<Type>> {
        match &e.kind {
            ExprKind::Bool(b) => {
                self.emit(Instr::Bool(*b));
                Ok(Some(Type::Bool))
            }
            ExprKind::Int {
                value,
                suffix,
                negated,
            } => self
                .literal(value, *suffix, *negated, hint, e.pos)
                .map(Some),
            ExprKind::Str(s) => {
                let c = self.p.constant(&Type::String, Value::Str(s.clone()));
                self.emit(Instr::Const(c));
                Ok(Some(Type::String))
            }
            ExprKind::HashLit(text) => {
                // 64 hex digits, or PREDA's 52 base32 characters.
                let bytes = match Vec::<u8>::from_hex(text)
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                {
                    Some(b) => b,
                    None => crate::base32::hash(text).map_err(|why| {
                        CompileError::new(
                            e.pos,
                            format!("{why}: a hash literal is 64 hex digits or 52 base32 characters, then `:hash`"),
                        )
                    })?,
                };
                let c = self.p.constant(&Type::Hash, Value::Hash(bytes));
                self.emit(Instr::Const(c));
                Ok(Some(Type::Hash))
            }
            ExprKind::AddrLit(text) => {
                let a =
                    crate::base32::address(text).map_err(|why| CompileError::new(e.pos, why))?;
                let c = self.p.constant(&Type::Address, Value::Address(a));
                self.emit(Instr::Const(c));
                Ok(Some(Type::Address))
            }
            ExprKind::Name(n) => self.name(n, e, hint).map(Some),
            ExprKind::Type(_) => Err(CompileError::new(
                e.pos,
                "a type is not a value (did you mean to call it?)",
            )),
            ExprKind::Unary(op, x) => self.unary(*op, x, hint, e.pos).map(Some),
            ExprKind::Binary(op, a, b) => self.binary(*op, a, b, hint, e.pos).map(Some),
            ExprKind::Assign(op, l, r) => {
                self.assign(*op, l, r, e.pos)?;
                Ok(None)
            }
            ExprKind::IncDec(inc, x) => {
                self.inc_dec(*inc, x, e.pos)?;
                Ok(None)
            }
            ExprKind::Ternary(c, a, b) => {
                self.expect(c, &Type::Bool)?;
                let jf = self.emit(Instr::JumpIfNot(0));
                let (ta, tb) = if is_flex_literal(a) && !is_flex_literal(b) {
                    let tb = self.type_of(b);
                    let ta = self.value(a, tb.as_ref().or(hint))?;
                    (ta, tb)
                } else {
                    (self.value(a, hint)?, None)
                };
                let j = self.emit(Instr::Jump(0));
                let h = self.code.len() as u32;
                self.code[jf] = Instr::JumpIfNot(h);
                let tb = self.value(b, tb.as_ref().or(Some(&ta)))?;
                let h = self.code.len() as u32;
                self.code[j] = Instr::Jump(h);
                self.unify(&ta, &tb, "?:", e.pos).map(Some)
            }
            ExprKind::Call(callee, args) => self.call(callee, args, e.pos),
            ExprKind::Index(..) | ExprKind::Member(..) => {
                if let Some(pr) = self.place(e)? {
                    let t = pr.ty.clone();
                    self.load_place(pr)?;
                    return Ok(Some(t));
                }
                match &e.kind {
                    ExprKind::Member(obj, m) => self.member_value(obj, m, e.pos).map(Some),
                    ExprKind::Index(obj, i) => self.index_value(obj, i, e.pos).map(Some),
                    _ => unreachable!("matched above"),
                }
            }
            ExprKind::Deploy(c, args) => self.deploy(c, args, hint, e.pos).map(Some),
        }
    }

    /// Compiles `e`, which must have a value.
    pub fn value(&mut self, e: &Expr, hint: Option<&Type>) -> CResult<Type> {
        match self.expr(e, hint)? {
            Some(t) => Ok(t),
            None => Err(CompileError::new(
                e.pos,
                match &e.kind {
                    ExprKind::Assign(..) => "an assignment has no value in PREDA".to_string(),
                    ExprKind::IncDec(..) => "`++`/`--` have no value in PREDA".to_string(),
                    _ => "this expression has no value".to_string(),
                },
            )),
        }
    }

    /// Compiles `e` as a value of type `t` (implicit widening allowed).
    pub fn expect(&mut self, e: &Expr, t: &Type) -> CResult<()> {
        let got = self.value(e, Some(t))?;
        if converts(&got, t) {
            return Ok(());
        }
        Err(CompileError::new(
            e.pos,
            format!(
                "expected {}, found {}{}",
                self.p.tt.name(t),
                self.p.tt.name(&got),
                match (&got, t) {
                    (Type::Int(_) | Type::BigInt, Type::Int(_) | Type::BigInt) => {
                        format!(" (convert explicitly with {}(…))", self.p.tt.name(t))
                    }
                    _ => String::new(),
                }
            ),
        ))
    }

    /// The type `e` would have, without emitting code or reporting errors.
    fn type_of(&mut self, e: &Expr) -> Option<Type> {
        self.trial(|cx| cx.expr(e, None)).ok().flatten()
    }

    fn literal(
        &mut self,
        value: &num_bigint::BigUint,
        suffix: crate::lexer::IntSuffix,
        negated: bool,
        hint: Option<&Type>,
        pos: Pos,
    ) -> CResult<Type> {
        use crate::lexer::IntSuffix;
        let mut v = Int::from(value.clone());
        if negated {
            v = Int::from(-BigInt::from(value.clone()));
        }
        let ty = match suffix {
            IntSuffix::Big => Type::BigInt,
            IntSuffix::Fixed { signed, bits } => Type::Int(IntTy { signed, bits }),
            IntSuffix::None => match hint {
                Some(t @ (Type::Int(_) | Type::BigInt)) => t.clone(),
                _ => Type::Int(IntTy::INT32),
            },
        };
        let nt = num_ty(&ty).expect("integer type");
        if !v.fits(nt) {
            return Err(CompileError::new(
                pos,
                format!(
                    "{v} is out of range for {}{}",
                    self.p.tt.name(&ty),
                    if suffix == IntSuffix::None && hint.is_none_or(|h| num_ty(h).is_none()) {
                        " (unsuffixed literals are int32; add a suffix such as 5u64 or 5ib)"
                    } else {
                        ""
                    }
                ),
            ));
        }
        let c = self.p.constant(&ty, Value::Int(v));
        self.emit(Instr::Const(c));
        Ok(ty)
    }

    fn name(&mut self, n: &str, e: &Expr, hint: Option<&Type>) -> CResult<Type> {
        if let Some(pr) = self.place(e)? {
            let t = pr.ty.clone();
            self.load_place(pr)?;
            return Ok(t);
        }
        if let Some(c) = self.p.consts.get(n).copied() {
            if self.const_mode.iter().any(|x| x == n) {
                return Err(CompileError::new(
                    e.pos,
                    format!("constant `{n}` refers to itself"),
                ));
            }
            let ty = self.p.resolve_type(&c.ty)?;
            self.const_mode.push(n.to_string());
            let r = self.expect(&c.value, &ty);
            self.const_mode.pop();
            r?;
            let _ = hint;
            return Ok(ty);
        }
        if self.p.sig_ids.contains_key(n) {
            return Err(CompileError::new(
                e.pos,
                format!("`{n}` is a function; call it with `{n}(…)`"),
            ));
        }
        if self.p.enum_ids.contains_key(n)
            || self.p.struct_ids.contains_key(n)
            || builtin_type(n).is_some()
        {
            return Err(CompileError::new(
                e.pos,
                format!("`{n}` is a type, not a value"),
            ));
        }
        if !self.const_mode.is_empty() && (self.p.state.contains_key(n) || self.local(n).is_some())
        {
            return Err(CompileError::new(
                e.pos,
                format!("`{n}` is not a constant (a constant may only use literals and other constants)"),
            ));
        }
        Err(CompileError::new(e.pos, format!("undeclared name `{n}`")))
    }

    /// The place `e` names, if it names one.
    pub(super) fn place<'e>(&mut self, e: &'e Expr) -> CResult<Option<PlaceRef<'e>>> {
        self.place_at(e, false)
    }

    /// [`Self::place`], where a member or element of a temporary (a call's result, a `?:`)
    /// is a place too, as PREDA accepts (`f().x = 1`): the temporary is put in a hidden
    /// local first, and what is written there is lost with it.
    fn place_in_temporary<'e>(&mut self, e: &'e Expr) -> CResult<Option<PlaceRef<'e>>> {
        self.place_at(e, true)
    }

    fn place_at<'e>(&mut self, e: &'e Expr, temps: bool) -> CResult<Option<PlaceRef<'e>>> {
        match &e.kind {
            ExprKind::Name(n) => {
                if !self.const_mode.is_empty() {
                    return Ok(None);
                }
                if let Some(l) = self.local(n) {
                    return Ok(Some(PlaceRef {
                        root: Root::Local(l.slot),
                        steps: Vec::new(),
                        operands: Vec::new(),
                        ty: l.ty.clone(),
                        read_only: l.is_const.then(|| format!("`{n}` is const")),
                    }));
                }
                let Some(v) = self.p.state.get(n).cloned() else {
                    return Ok(None);
                };
                let read_only = match state_access(self.scope, v.scope) {
                    None => {
                        return Err(CompileError::new(
                            e.pos,
                            format!(
                                "`{n}` is @{} state and cannot be used in a @{} function (relay to a @{} function instead)",
                                v.scope.name(),
                                self.scope.name(),
                                v.scope.name()
                            ),
                        ))
                    }
                    Some(false) => Some(format!(
                        "`{n}` is @global state: only @global functions can change it (use relay@global)"
                    )),
                    Some(true) if self.is_const => {
                        Some(format!("this function is const and cannot change `{n}`"))
                    }
                    Some(true) => None,
                };
                Ok(Some(PlaceRef {
                    root: Root::State(v.scope, v.index),
                    steps: Vec::new(),
                    operands: Vec::new(),
                    ty: v.ty,
                    read_only,
                }))
            }
            ExprKind::Member(obj, m) => {
                let Some(mut pr) = self.place_or_temporary(obj, temps)? else {
                    return Ok(None);
                };
                let Type::Struct(sid) = pr.ty else {
                    return Err(CompileError::new(
                        m.pos,
                        format!("{} has no member `{}`", self.p.tt.name(&pr.ty), m.name),
                    ));
                };
                let s = &self.p.tt.structs[sid as usize];
                let Some(i) = s.fields.iter().position(|(f, _)| *f == m.name) else {
                    return Err(CompileError::new(
                        m.pos,
                        format!("struct `{}` has no member `{}`", s.name, m.name),
                    ));
                };
                pr.ty = s.fields[i].1.clone();
                pr.steps.push(Step::Field(i as u16));
                Ok(Some(pr))
            }
            ExprKind::Index(obj, idx) => {
                let Some(mut pr) = self.place_or_temporary(obj, temps)? else {
                    return Ok(None);
                };
                match pr.ty.clone() {
                    Type::Array(et) => {
                        pr.steps.push(Step::Index);
                        pr.operands.push((idx, Type::Int(IntTy::UINT32)));
                        pr.ty = *et;
                    }
                    Type::Map(kt, vt) => {
                        let vid = self.p.type_id(&vt);
                        pr.steps.push(Step::Key(vid));
                        pr.operands.push((idx, *kt));
                        pr.ty = *vt;
                    }
                    other => {
                        return Err(CompileError::new(
                            e.pos,
                            format!("{} cannot be indexed with […]", self.p.tt.name(&other)),
                        ))
                    }
                }
                Ok(Some(pr))
            }
            _ => Ok(None),
        }
    }

    /// The place `e` names; with `temps`, a call's result or a `?:` becomes one in a hidden
    /// local (the base of a member or element only: `f() = x` stays refused).
    fn place_or_temporary<'e>(
        &mut self,
        e: &'e Expr,
        temps: bool,
    ) -> CResult<Option<PlaceRef<'e>>> {
        if let Some(p) = self.place_at(e, temps)? {
            return Ok(Some(p));
        }
        if !temps || !matches!(e.kind, ExprKind::Call(..) | ExprKind::Ternary(..)) {
            return Ok(None);
        }
        let t = self.value(e, None)?;
        let slot = self.stash("temporary", e.pos, t.clone())?;
        Ok(Some(PlaceRef {
            root: Root::Local(slot),
            steps: Vec::new(),
            operands: Vec::new(),
            ty: t,
            read_only: None,
        }))
    }

    /// Pops the top of the stack into a new hidden local of type `t` (named `<what l:c>`,
    /// which no program can write; unique per position) and returns its slot.
    fn stash(&mut self, what: &str, pos: Pos, t: Type) -> CResult<u16> {
        let hidden = Ident {
            name: format!("<{what} {}:{}>", pos.line, pos.col),
            pos,
        };
        let slot = self.declare_local(&hidden, t, false)?;
        self.emit(Instr::StoreLocal(slot));
        Ok(slot)
    }

    /// `S(v1, v2, …)`: a structure from its members' values in declaration order (or `S()`,
    /// every member its default), built in a hidden local.
    fn construct(&mut self, sid: u16, args: &[Expr], pos: Pos) -> CResult<Type> {
        let desc = &self.p.tt.structs[sid as usize];
        let (name, fields) = (desc.name.clone(), desc.fields.clone());
        if !args.is_empty() && args.len() != fields.len() {
            return Err(CompileError::new(
                pos,
                format!(
                    "`{name}(…)` takes its {} member(s) in order, got {} value(s)",
                    fields.len(),
                    args.len()
                ),
            ));
        }
        let ty = Type::Struct(sid);
        let tid = self.p.type_id(&ty);
        self.emit(Instr::Default(tid));
        let slot = self.stash(&name, pos, ty.clone())?;
        for (i, (a, (_, ft))) in args.iter().zip(&fields).enumerate() {
            self.expect(a, ft)?;
            let id = self.p.place(Place {
                root: Root::Local(slot),
                steps: vec![Step::Field(i as u16)],
            });
            self.emit(Instr::Store(id));
        }
        self.emit(Instr::LoadLocal(slot));
        Ok(ty)
    }

    fn place_operands(&mut self, pr: &PlaceRef<'_>) -> CResult<()> {
        for (e, t) in &pr.operands {
            self.expect(e, t)?;
        }
        Ok(())
    }

    fn place_id(&mut self, pr: &PlaceRef<'_>) -> u32 {
        self.p.place(Place {
            root: pr.root,
            steps: pr.steps.clone(),
        })
    }

    fn load_place(&mut self, pr: PlaceRef<'_>) -> CResult<()> {
        self.place_operands(&pr)?;
        match (pr.root, pr.steps.is_empty()) {
            (Root::Local(s), true) => {
                self.emit(Instr::LoadLocal(s));
            }
            _ => {
                let id = self.place_id(&pr);
                self.emit(Instr::Load(id));
            }
        }
        Ok(())
    }

    fn store(&mut self, pr: &PlaceRef<'_>) {
        match (pr.root, pr.steps.is_empty()) {
            (Root::Local(s), true) => {
                self.emit(Instr::StoreLocal(s));
            }
            _ => {
                let id = self.place_id(pr);
                self.emit(Instr::Store(id));
            }
        }
    }

    fn writable_place<'e>(&mut self, e: &'e Expr, what: &str) -> CResult<PlaceRef<'e>> {
        let Some(pr) = self.place_in_temporary(e)? else {
            if let ExprKind::Name(n) = &e.kind {
                if !self.p.consts.contains_key(n) {
                    return Err(CompileError::new(e.pos, format!("undeclared name `{n}`")));
                }
                return Err(CompileError::new(e.pos, format!("`{n}` is a constant")));
            }
            return Err(CompileError::new(
                e.pos,
                format!("the target of {what} is not a variable, member or element"),
            ));
        };
        if let Some(why) = &pr.read_only {
            return Err(CompileError::new(e.pos, why.clone()));
        }
        Ok(pr)
    }

    fn assign(&mut self, op: Option<BinOp>, l: &Expr, r: &Expr, pos: Pos) -> CResult<()> {
        let pr = self.writable_place(l, "an assignment")?;
        self.place_operands(&pr)?;
        match op {
            None => {
                let t = pr.ty.clone();
                self.expect(r, &t)?;
            }
            Some(op) => {
                let n = pr.operands.len();
                if n > 0 {
                    self.emit(Instr::DupN(n as u8));
                }
                let id = self.place_id(&pr);
                self.emit(Instr::Load(id));
                let t = pr.ty.clone();
                let rt = if matches!(op, BinOp::Shl | BinOp::Shr) {
                    self.value(r, Some(&t))?
                } else {
                    self.expect(r, &t)?;
                    t.clone()
                };
                let i = self.arith(op, &t, &rt, pos)?;
                self.emit(i);
            }
        }
        self.store(&pr);
        Ok(())
    }

    fn inc_dec(&mut self, inc: bool, x: &Expr, pos: Pos) -> CResult<()> {
        let pr = self.writable_place(x, if inc { "`++`" } else { "`--`" })?;
        let Some(nt) = num_ty(&pr.ty) else {
            return Err(CompileError::new(
                pos,
                format!(
                    "`++`/`--` need an integer, found {}",
                    self.p.tt.name(&pr.ty)
                ),
            ));
        };
        self.place_operands(&pr)?;
        let n = pr.operands.len();
        if n > 0 {
            self.emit(Instr::DupN(n as u8));
        }
        let id = self.place_id(&pr);
        self.emit(Instr::Load(id));
        let t = pr.ty.clone();
        let one = self.p.constant(&t, Value::Int(Int::Small(1)));
        self.emit(Instr::Const(one));
        self.emit(Instr::Arith(if inc { Arith::Add } else { Arith::Sub }, nt));
        self.store(&pr);
        Ok(())
    }

    /// The instruction for `a op b` on operands of type `t` (and `rt` for shift amounts).
    fn arith(&self, op: BinOp, t: &Type, rt: &Type, pos: Pos) -> CResult<Instr> {
        let name = self.p.tt.name(t);
        let bad = |what: &str| {
            CompileError::new(pos, format!("`{}` needs {what}, found {name}", op.symbol()))
        };
        Ok(match op {
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem => {
                let nt = num_ty(t).ok_or_else(|| bad("integers"))?;
                let a = match op {
                    BinOp::Add => Arith::Add,
                    BinOp::Sub => Arith::Sub,
                    BinOp::Mul => Arith::Mul,
                    BinOp::Div => Arith::Div,
                    _ => Arith::Rem,
                };
                Instr::Arith(a, nt)
            }
            BinOp::Shl | BinOp::Shr | BinOp::BitAnd | BinOp::BitOr | BinOp::BitXor => {
                let Type::Int(it) = t else {
                    return Err(bad("unsigned integers"));
                };
                if it.signed {
                    return Err(bad("unsigned integers"));
                }
                if matches!(op, BinOp::Shl | BinOp::Shr) {
                    if !matches!(rt, Type::Int(r) if !r.signed) {
                        return Err(CompileError::new(
                            pos,
                            format!(
                                "a shift amount must be an unsigned integer, found {}",
                                self.p.tt.name(rt)
                            ),
                        ));
                    }
                } else if rt != t {
                    return Err(bad("two operands of one type"));
                }
                let a = match op {
                    BinOp::Shl => Arith::Shl,
                    BinOp::Shr => Arith::Shr,
                    BinOp::BitAnd => Arith::And,
                    BinOp::BitOr => Arith::Or,
                    _ => Arith::Xor,
                };
                Instr::Arith(a, NumTy::Fixed(*it))
            }
            _ => {
                return Err(CompileError::new(
                    pos,
                    format!("`{}=` is not an operator", op.symbol()),
                ))
            }
        })
    }

    fn unify(&self, a: &Type, b: &Type, op: &str, pos: Pos) -> CResult<Type> {
        if converts(a, b) {
            return Ok(b.clone());
        }
        if converts(b, a) {
            return Ok(a.clone());
        }
        Err(CompileError::new(
            pos,
            format!(
                "the operands of `{op}` have different types: {} and {} (convert one explicitly)",
                self.p.tt.name(a),
                self.p.tt.name(b)
            ),
        ))
    }

    fn unary(&mut self, op: UnOp, x: &Expr, hint: Option<&Type>, pos: Pos) -> CResult<Type> {
        match op {
            UnOp::Not => {
                self.expect(x, &Type::Bool)?;
                self.emit(Instr::Not);
                Ok(Type::Bool)
            }
            UnOp::Plus => {
                let t = self.value(x, hint)?;
                if num_ty(&t).is_none() {
                    return Err(CompileError::new(
                        pos,
                        format!("unary `+` needs an integer, found {}", self.p.tt.name(&t)),
                    ));
                }
                Ok(t)
            }
            UnOp::Neg => {
                let t = self.value(x, hint)?;
                match &t {
                    Type::BigInt => {
                        self.emit(Instr::Neg(NumTy::Big));
                    }
                    Type::Int(it) if it.signed => {
                        self.emit(Instr::Neg(NumTy::Fixed(*it)));
                    }
                    other => {
                        return Err(CompileError::new(
                            pos,
                            format!(
                                "`-` needs a signed integer or bigint, found {}",
                                self.p.tt.name(other)
                            ),
                        ))
                    }
                }
                Ok(t)
            }
            UnOp::BitNot => {
                let t = self.value(x, hint)?;
                match &t {
                    Type::Int(it) if !it.signed => {
                        self.emit(Instr::BitNot(*it));
                    }
                    other => {
                        return Err(CompileError::new(
                            pos,
                            format!(
                                "`~` needs an unsigned integer, found {}",
                                self.p.tt.name(other)
                            ),
                        ))
                    }
                }
                Ok(t)
            }
        }
    }

    fn binary(
        &mut self,
        op: BinOp,
        a: &Expr,
        b: &Expr,
        hint: Option<&Type>,
        pos: Pos,
    ) -> CResult<Type> {
        if matches!(op, BinOp::And | BinOp::Or) {
            self.expect(a, &Type::Bool)?;
            let j = self.emit(if op == BinOp::And {
                Instr::JumpIfNot(0)
            } else {
                Instr::JumpIf(0)
            });
            self.expect(b, &Type::Bool)?;
            let jend = self.emit(Instr::Jump(0));
            let short = self.code.len() as u32;
            self.code[j] = if op == BinOp::And {
                Instr::JumpIfNot(short)
            } else {
                Instr::JumpIf(short)
            };
            self.emit(Instr::Bool(op == BinOp::Or));
            let end = self.code.len() as u32;
            self.code[jend] = Instr::Jump(end);
            return Ok(Type::Bool);
        }
        let comparison = matches!(
            op,
            BinOp::Lt | BinOp::Gt | BinOp::Le | BinOp::Ge | BinOp::Eq | BinOp::Ne
        );
        let outer = if comparison { None } else { hint };
        // Compile the left side first (stack order) but let an unsuffixed literal on either
        // side take the other side's type.
        let (ta, tb) = if is_flex_literal(a) && !is_flex_literal(b) {
            let tb_hint = self.type_of(b);
            let ta = self.value(a, tb_hint.as_ref().or(outer))?;
            let tb = self.value(b, Some(&ta))?;
            (ta, tb)
        } else {
            let ta = self.value(a, outer)?;
            let tb = self.value(b, Some(&ta))?;
            (ta, tb)
        };
        if comparison {
            let t = self.unify(&ta, &tb, op.symbol(), pos)?;
            let ordered = !matches!(op, BinOp::Eq | BinOp::Ne);
            let ok = match &t {
                Type::Int(_)
                | Type::BigInt
                | Type::String
                | Type::Address
                | Type::Hash
                | Type::Blob => true,
                Type::Bool | Type::Enum(_) => !ordered,
                _ => false,
            };
            if !ok {
                return Err(CompileError::new(
                    pos,
                    format!(
                        "{} values cannot be compared with `{}`",
                        self.p.tt.name(&t),
                        op.symbol()
                    ),
                ));
            }
            self.emit(Instr::Cmp(match op {
                BinOp::Eq => CmpOp::Eq,
                BinOp::Ne => CmpOp::Ne,
                BinOp::Lt => CmpOp::Lt,
                BinOp::Le => CmpOp::Le,
                BinOp::Gt => CmpOp::Gt,
                _ => CmpOp::Ge,
            }));
            return Ok(Type::Bool);
        }
        if matches!(op, BinOp::Shl | BinOp::Shr) {
            let i = self.arith(op, &ta, &tb, pos)?;
            self.emit(i);
            return Ok(ta);
        }
        let t = self.unify(&ta, &tb, op.symbol(), pos)?;
        let i = self.arith(op, &t, &t, pos)?;
        self.emit(i);
        Ok(t)
    }

    /// Whether `n` names a contract here (this one or an import), not a variable.
    fn contract_name(&self, n: &str) -> bool {
        self.local(n).is_none()
            && !self.p.state.contains_key(n)
            && (self.p.import_named(n).is_some() || n == self.p.file.contract.name.name)
    }

    /// Pushes enumerator `m` of enum `eid`.
    fn enumerator(&mut self, eid: u16, m: &Ident) -> CResult<Type> {
        let d = &self.p.tt.enums[eid as usize];
        let Some(i) = d.variants.iter().position(|v| *v == m.name) else {
            return Err(CompileError::new(
                m.pos,
                format!("enum `{}` has no enumerator `{}`", d.name, m.name),
            ));
        };
        let c = self.p.constant(&Type::Enum(eid), Value::Enum(i as u16));
        self.emit(Instr::Const(c));
        Ok(Type::Enum(eid))
    }

    fn member_value(&mut self, obj: &Expr, m: &Ident, pos: Pos) -> CResult<Type> {
        // `Contract.E.X`: an enumerator of a qualified enum.
        if let ExprKind::Member(inner, tname) = &obj.kind {
            if let ExprKind::Name(c) = &inner.kind {
                if self.contract_name(c) {
                    let path = vec![
                        Ident {
                            name: c.clone(),
                            pos: inner.pos,
                        },
                        tname.clone(),
                    ];
                    let t = self.p.resolve_type(&TypeExpr::Named(path))?;
                    let Type::Enum(eid) = t else {
                        return Err(CompileError::new(
                            pos,
                            format!("`{}` is a type, not a value", self.p.tt.name(&t)),
                        ));
                    };
                    return self.enumerator(eid, m);
                }
            }
        }
        if let ExprKind::Name(n) = &obj.kind {
            if self.local(n).is_none() && !self.p.state.contains_key(n) {
                if let Some(&eid) = self.p.enum_ids.get(n) {
                    return self.enumerator(eid, m);
                }
                if self.contract_name(n) {
                    return Err(CompileError::new(
                        pos,
                        format!(
                            "`{n}.{}` is not a value: a contract's functions are called, its types used as types, and its state is its own",
                            m.name
                        ),
                    ));
                }
                if matches!(
                    n.as_str(),
                    "__transaction" | "__block" | "__debug" | "__event"
                ) {
                    return Err(CompileError::new(
                        pos,
                        format!("`{n}.{}` must be called", m.name),
                    ));
                }
            }
        }
        let t = self.value(obj, None)?;
        let Type::Struct(sid) = t else {
            return Err(CompileError::new(
                m.pos,
                format!("{} has no member `{}`", self.p.tt.name(&t), m.name),
            ));
        };
        let s = &self.p.tt.structs[sid as usize];
        let Some(i) = s.fields.iter().position(|(f, _)| *f == m.name) else {
            return Err(CompileError::new(
                m.pos,
                format!("struct `{}` has no member `{}`", s.name, m.name),
            ));
        };
        let ft = s.fields[i].1.clone();
        self.emit(Instr::Field(i as u16));
        Ok(ft)
    }

    fn index_value(&mut self, obj: &Expr, idx: &Expr, pos: Pos) -> CResult<Type> {
        let t = self.value(obj, None)?;
        match t {
            Type::Array(et) => {
                self.expect(idx, &Type::Int(IntTy::UINT32))?;
                self.emit(Instr::Index);
                Ok(*et)
            }
            Type::Map(kt, vt) => {
                self.expect(idx, &kt)?;
                let vid = self.p.type_id(&vt);
                self.emit(Instr::Key(vid));
                Ok(*vt)
            }
            other => Err(CompileError::new(
                pos,
                format!("{} cannot be indexed with […]", self.p.tt.name(&other)),
            )),
        }
    }

    fn call(&mut self, callee: &Expr, args: &[Expr], pos: Pos) -> CResult<Option<Type>> {
        if !self.const_mode.is_empty() {
            if let ExprKind::Name(n) = &callee.kind {
                if builtin_type(n).is_some() {
                    return self.conversion(n, args, pos).map(Some);
                }
            }
            return Err(CompileError::new(
                pos,
                "a constant may only use literals, constants and conversions",
            ));
        }
        match &callee.kind {
            ExprKind::Name(n) => {
                if self.local(n).is_some() || self.p.state.contains_key(n) {
                    return Err(CompileError::new(
                        callee.pos,
                        format!("`{n}` is a variable, not a function"),
                    ));
                }
                if builtin_type(n).is_some() {
                    return self.conversion(n, args, pos).map(Some);
                }
                if let Some(&sid) = self.p.struct_ids.get(n) {
                    return self.construct(sid, args, pos).map(Some);
                }
                if let Some(&id) = self.p.iface_ids.get(n) {
                    return self.iface_value(id, args, pos).map(Some);
                }
                if n == "__id" && !self.p.sig_ids.contains_key(n) {
                    return self.contract_id(args, pos).map(Some);
                }
                if self.contract_name(n) {
                    return self.contract_value(n, args, callee.pos).map(Some);
                }
                if matches!(n.as_str(), "__mint" | "__burn") && !self.p.sig_ids.contains_key(n) {
                    return self.supply_call(n, args, pos).map(Some);
                }
                if !self.p.sig_ids.contains_key(n) {
                    return Err(CompileError::new(
                        callee.pos,
                        format!("undeclared function `{n}`"),
                    ));
                }
                let fid = self.overload(n, args, callee.pos)?;
                let sig = self.p.sigs[fid as usize].clone();
                self.check_call(&sig, callee.pos)?;
                self.args(&sig, args, pos)?;
                self.emit(Instr::Call(fid));
                Ok(sig.ret)
            }
            ExprKind::Type(te) => {
                let t = self.p.resolve_type(te)?;
                if !args.is_empty() {
                    return Err(CompileError::new(
                        pos,
                        format!("{}() takes no arguments", self.p.tt.name(&t)),
                    ));
                }
                let tid = self.p.type_id(&t);
                self.emit(Instr::Default(tid));
                Ok(Some(t))
            }
            ExprKind::Member(obj, m) => {
                if let ExprKind::Name(n) = &obj.kind {
                    if self.local(n).is_none() && !self.p.state.contains_key(n) {
                        match n.as_str() {
                            "__debug" => return self.debug_call(m, args, pos),
                            "__event" => return self.event_call(m, args, pos),
                            "__transaction" | "__block" => {
                                return self.context_call(n, m, args, pos).map(Some)
                            }
                            "token" => return self.token_static(m, args, pos).map(Some),
                            _ => {}
                        }
                        if self.contract_name(n) {
                            return self.qualified_call(n, m, args, pos);
                        }
                    }
                }
                match self.type_of(obj) {
                    Some(Type::Interface(id)) => return self.iface_call(id, obj, m, args, pos),
                    Some(Type::Contract(c)) => return self.contract_call(&c, obj, m, args, pos),
                    _ => {}
                }
                self.method_call(obj, m, args, pos)
            }
            _ => Err(CompileError::new(
                callee.pos,
                "this expression cannot be called",
            )),
        }
    }

    fn check_call(&self, sig: &Sig, pos: Pos) -> CResult<()> {
        match sig.kind {
            FnKind::Lambda => unreachable!("lambdas have no name"),
            FnKind::OnDeploy | FnKind::OnScaleout => {
                return Err(CompileError::new(
                    pos,
                    format!("`{}` is called by the system only", sig.name),
                ))
            }
            FnKind::Normal => {}
        }
        if self.is_const && !sig.is_const {
            return Err(CompileError::new(
                pos,
                format!(
                    "a const function cannot call `{}`, which is not const",
                    sig.name
                ),
            ));
        }
        let ok = sig.scope == self.scope
            || (sig.scope == ScopeKind::Global && sig.is_const)
            || (sig.scope == ScopeKind::Shard
                && !matches!(self.scope, ScopeKind::Global | ScopeKind::Shard));
        if ok {
            return Ok(());
        }
        let how = if sig.scope == ScopeKind::Global {
            format!("use relay@global {}(…)", sig.name)
        } else {
            "relay to it".to_string()
        };
        Err(CompileError::new(
            pos,
            format!(
                "`{}` is a @{}{} function and cannot be called from a @{} function ({how})",
                sig.name,
                sig.scope.name(),
                if sig.is_const { " const" } else { "" },
                self.scope.name()
            ),
        ))
    }

    fn conversion(&mut self, to: &str, args: &[Expr], pos: Pos) -> CResult<Type> {
        let target = builtin_type(to).expect("caller checked");
        if args.is_empty() {
            // `T()`: the default value, as PREDA's default constructors.
            let tid = self.p.type_id(&target);
            self.emit(Instr::Default(tid));
            return Ok(target);
        }
        if target == Type::Token {
            return Err(CompileError::new(
                pos,
                "token(…) takes no arguments: a token is made empty, and filled only by transfers",
            ));
        }
        if args.len() != 1 {
            return Err(CompileError::new(
                pos,
                format!("{to}(…) takes one argument"),
            ));
        }
        let from = self.value(&args[0], Some(&target))?;
        let conv = match (&from, &target) {
            (f, t) if f == t => return Ok(target),
            (Type::Int(_) | Type::BigInt, Type::Int(_) | Type::BigInt) => {
                Some(Conv::Int(num_ty(&target).expect("integer")))
            }
            (Type::Int(_) | Type::BigInt, Type::String) => Some(Conv::IntToString),
            (Type::String, Type::Address) => Some(Conv::StringToAddress),
            (Type::String, Type::Hash) => Some(Conv::StringToHash),
            (Type::Hash, Type::Address) => Some(Conv::HashToAddress),
            (Type::Hash, Type::String) => Some(Conv::HashToString),
            (Type::Hash, Type::Int(t)) if *t == IntTy::UINT256 => Some(Conv::HashToUint256),
            (Type::Address, Type::String) => Some(Conv::AddressToString),
            _ => None,
        };
        match conv {
            Some(c) => {
                self.emit(Instr::Convert(c));
                Ok(target)
            }
            None => Err(CompileError::new(
                pos,
                format!(
                    "there is no conversion from {} to {to}",
                    self.p.tt.name(&from)
                ),
            )),
        }
    }

    fn debug_call(&mut self, m: &Ident, args: &[Expr], pos: Pos) -> CResult<Option<Type>> {
        match m.name.as_str() {
            "print" => {
                if args.len() > 255 {
                    return Err(CompileError::new(
                        pos,
                        "__debug.print takes at most 255 values",
                    ));
                }
                for a in args {
                    self.value(a, None)?;
                }
                self.emit(Instr::Print(args.len() as u8));
                Ok(None)
            }
            "assert" => {
                match args {
                    [c] => {
                        self.expect(c, &Type::Bool)?;
                        self.emit(Instr::Assert);
                    }
                    [c, msg] => {
                        self.expect(c, &Type::Bool)?;
                        self.expect(msg, &Type::String)?;
                        self.emit(Instr::AssertMsg);
                    }
                    _ => {
                        return Err(CompileError::new(
                            pos,
                            "__debug.assert takes (bool) or (bool, string)",
                        ))
                    }
                }
                Ok(None)
            }
            other => Err(CompileError::new(
                m.pos,
                format!("__debug has no function `{other}` (it has print and assert)"),
            )),
        }
    }

    /// `__event.push(uint32 id, string data)`, `__event.notify(…)` (recorded in the
    /// receipt) and `__event.get_user_state()` (always `deactivated`: no UI is attached).
    fn event_call(&mut self, m: &Ident, args: &[Expr], pos: Pos) -> CResult<Option<Type>> {
        let kind = match m.name.as_str() {
            "push" => 0,
            "notify" => 1,
            "get_user_state" => {
                if !args.is_empty() {
                    return Err(CompileError::new(
                        pos,
                        "__event.get_user_state takes no arguments",
                    ));
                }
                self.emit(Instr::Ctx(CtxFn::EventUserState));
                return Ok(Some(Type::Enum(1)));
            }
            other => {
                return Err(CompileError::new(
                    m.pos,
                    format!(
                        "__event has no function `{other}` (it has push, notify and get_user_state)"
                    ),
                ))
            }
        };
        let [id, data] = args else {
            return Err(CompileError::new(
                pos,
                format!("__event.{} takes (uint32 id, string data)", m.name),
            ));
        };
        self.expect(id, &Type::Int(IntTy::UINT32))?;
        self.expect(data, &Type::String)?;
        self.emit(Instr::Event(kind));
        Ok(None)
    }

    fn context_call(&mut self, obj: &str, m: &Ident, args: &[Expr], pos: Pos) -> CResult<Type> {
        let addr = Type::Address;
        let (f, ret) = match (obj, m.name.as_str()) {
            ("__transaction", "get_type") => (CtxFn::TxType, Type::Enum(0)),
            ("__transaction", "get_self_address") => {
                if self.scope == ScopeKind::Shard {
                    return Err(CompileError::new(
                        m.pos,
                        "__transaction.get_self_address() is not available in @shard functions",
                    ));
                }
                (CtxFn::TxSelf, addr)
            }
            ("__transaction", "get_sender") => (CtxFn::TxSender, addr),
            ("__transaction", "get_timestamp") => (CtxFn::TxTimestamp, Type::Int(IntTy::UINT64)),
            ("__transaction", "get_signers") => {
                (CtxFn::TxSigners, Type::Array(Box::new(Type::Address)))
            }
            ("__transaction", "verify_signer") => {
                let [a] = args else {
                    return Err(CompileError::new(
                        pos,
                        "verify_signer takes one argument (uint32 or address)",
                    ));
                };
                let t = self.value(a, Some(&Type::Int(IntTy::UINT32)))?;
                let f = match t {
                    Type::Address => CtxFn::TxVerifyAddress,
                    t if converts(&t, &Type::Int(IntTy::UINT32)) => CtxFn::TxVerifyIndex,
                    other => {
                        return Err(CompileError::new(
                            a.pos,
                            format!(
                                "verify_signer takes a uint32 or an address, found {}",
                                self.p.tt.name(&other)
                            ),
                        ))
                    }
                };
                self.emit(Instr::Ctx(f));
                return Ok(Type::Bool);
            }
            ("__transaction", "get_originated_shard_index") => {
                (CtxFn::TxOriginShardIndex, Type::Int(IntTy::UINT32))
            }
            ("__transaction", "get_originated_shard_order") => {
                (CtxFn::TxOriginShardOrder, Type::Int(IntTy::UINT32))
            }
            ("__transaction", "get_initiator_address") => (CtxFn::TxInitiator, addr),
            ("__block", "get_height") => (CtxFn::BlockHeight, Type::Int(IntTy::UINT64)),
            ("__block", "get_shard_index") => (CtxFn::BlockShardIndex, Type::Int(IntTy::UINT32)),
            ("__block", "get_shard_order") => (CtxFn::BlockShardOrder, Type::Int(IntTy::UINT32)),
            ("__block", "get_timestamp") => (CtxFn::BlockTimestamp, Type::Int(IntTy::UINT64)),
            // PREDA's contracts also call the "secure" variant; on a chain it can be no more
            // than block-derived randomness either (the miner chooses the parent), so it is
            // the same stream.
            ("__block", "get_random_number" | "get_secure_random_number") => {
                (CtxFn::BlockRandom, Type::Int(IntTy::UINT64))
            }
            ("__block", "get_miner_address") => (CtxFn::BlockMiner, addr),
            ("__transaction", "get_supplied_tokens") => {
                (CtxFn::TxSuppliedTokens, Type::Array(Box::new(Type::Token)))
            }
            (o, f) => {
                let has = match o {
                    "__block" => "get_height, get_shard_index, get_shard_order, get_timestamp, get_random_number, get_secure_random_number and get_miner_address",
                    _ => "get_type, get_self_address, get_sender, get_timestamp, get_signers, verify_signer, get_originated_shard_index, get_originated_shard_order, get_initiator_address and get_supplied_tokens",
                };
                // Early PREDA test contracts call these; neither PREDA's language
                // specification nor its compiler defines them any more.
                let why = if f.starts_with("get_parent_") {
                    " (an early PREDA function, in neither PREDA's language specification 2.0 nor its current compiler)"
                } else {
                    ""
                };
                return Err(CompileError::new(
                    m.pos,
                    format!("{o} has no function `{f}`{why}; it has {has}"),
                ));
            }
        };
        if !args.is_empty() {
            return Err(CompileError::new(
                pos,
                format!("{obj}.{}() takes no arguments", m.name),
            ));
        }
        self.emit(Instr::Ctx(f));
        Ok(ret)
    }

    /// Resolves a built-in method: the method, its argument types and result.
    fn method(
        &mut self,
        recv: &Type,
        m: &Ident,
    ) -> CResult<(Option<Method>, Vec<Type>, Option<Type>)> {
        let u32t = Type::Int(IntTy::UINT32);
        Ok(match (recv, m.name.as_str()) {
            (Type::Array(_), "length") => (Some(Method::Length), vec![], Some(u32t)),
            (Type::Array(et), "set_length") => {
                let tid = self.p.type_id(et);
                (Some(Method::SetLength(tid)), vec![u32t], None)
            }
            (Type::Array(et), "push") => (Some(Method::Push), vec![(**et).clone()], None),
            (Type::Array(_), "pop") => (Some(Method::Pop), vec![], None),
            (Type::Map(kt, _), "has") => {
                (Some(Method::Has), vec![(**kt).clone()], Some(Type::Bool))
            }
            (Type::Map(kt, _), "erase") => (Some(Method::Erase), vec![(**kt).clone()], None),
            (Type::String, "set") => (Some(Method::StrSet), vec![Type::String], None),
            (Type::String, "append") => (Some(Method::StrAppend), vec![Type::String], None),
            (Type::String, "length") => (
                Some(Method::StrLength),
                vec![],
                Some(Type::Int(IntTy::UINT16)),
            ),
            (Type::Address, "is_user") => (Some(Method::IsUser), vec![], Some(Type::Bool)),
            (Type::BigInt, "div_uint32") => {
                (Some(Method::DivUint32), vec![u32t], Some(Type::BigInt))
            }
            (Type::Address, "is_contract") => (Some(Method::IsContract), vec![], Some(Type::Bool)),
            (Type::Token, "get_id") => (
                Some(Method::TokenId),
                vec![],
                Some(Type::Int(IntTy::UINT64)),
            ),
            (Type::Token, "get_amount") => (Some(Method::TokenAmount), vec![], Some(Type::BigInt)),
            (Type::Token, "deposit") => {
                // A wallet is state: const functions change none (as they relay nothing).
                if self.is_const {
                    return Err(CompileError::new(
                        m.pos,
                        "a const function cannot deposit a token",
                    ));
                }
                (Some(Method::Deposit), vec![], None)
            }
            // rexe has user and contract addresses only.
            (Type::Address, "is_delegated" | "is_dapp" | "is_asset" | "is_name" | "is_custom") => {
                (None, vec![], Some(Type::Bool))
            }
            (t, name) => {
                return Err(CompileError::new(
                    m.pos,
                    format!("{} has no method `{name}`", self.p.tt.name(t)),
                ))
            }
        })
    }

    fn method_call(
        &mut self,
        obj: &Expr,
        m: &Ident,
        args: &[Expr],
        pos: Pos,
    ) -> CResult<Option<Type>> {
        if matches!(m.name.as_str(), "transfer" | "transfer_all") {
            if let Some(r) = self.token_transfer(obj, m, args, pos)? {
                return Ok(Some(r));
            }
        }
        if let Some(pr) = self.place(obj)? {
            let (method, arg_types, ret) = self.method(&pr.ty, m)?;
            if args.len() != arg_types.len() {
                return Err(CompileError::new(
                    pos,
                    format!(
                        "`{}` takes {} argument(s), {} given",
                        m.name,
                        arg_types.len(),
                        args.len()
                    ),
                ));
            }
            let Some(method) = method else {
                self.load_place(pr)?;
                self.emit(Instr::Pop);
                self.emit(Instr::Bool(false));
                return Ok(ret);
            };
            if method.mutates() {
                if let Some(why) = &pr.read_only {
                    return Err(CompileError::new(obj.pos, why.clone()));
                }
            }
            self.place_operands(&pr)?;
            for (a, t) in args.iter().zip(&arg_types) {
                self.expect(a, t)?;
            }
            let id = self.place_id(&pr);
            self.emit(Instr::PlaceMethod(id, method));
            return Ok(ret);
        }
        let t = self.value(obj, None)?;
        let (method, arg_types, ret) = self.method(&t, m)?;
        if args.len() != arg_types.len() {
            return Err(CompileError::new(
                pos,
                format!(
                    "`{}` takes {} argument(s), {} given",
                    m.name,
                    arg_types.len(),
                    args.len()
                ),
            ));
        }
        let Some(method) = method else {
            self.emit(Instr::Pop);
            self.emit(Instr::Bool(false));
            return Ok(ret);
        };
        if method.mutates() {
            // PREDA accepts a change to a temporary (`f().push(1)`): it is made on a hidden
            // local and lost with it; what it moves out (a deposited token) is not.
            let slot = self.stash("temporary", m.pos, t)?;
            for (a, t) in args.iter().zip(&arg_types) {
                self.expect(a, t)?;
            }
            let id = self.p.place(Place {
                root: Root::Local(slot),
                steps: Vec::new(),
            });
            self.emit(Instr::PlaceMethod(id, method));
            return Ok(ret);
        }
        for (a, t) in args.iter().zip(&arg_types) {
            self.expect(a, t)?;
        }
        self.emit(Instr::ValueMethod(method));
        Ok(ret)
    }

    /// `__mint(id, amount)` and `__burn(token)` (PREDA spec 5.10). The chain says whether the
    /// running contract may mint or burn the asset; without the right, minting gives an
    /// empty token and burning does nothing (and reports `false`), as PREDA does. Nobody
    /// may mint or burn rxBTC. A burned token at a place is left empty.
    fn supply_call(&mut self, name: &str, args: &[Expr], pos: Pos) -> CResult<Type> {
        if name == "__mint" {
            match args {
                [id, amount] => {
                    self.expect(id, &Type::Int(IntTy::UINT64))?;
                    self.expect(amount, &Type::BigInt)?;
                    self.emit(Instr::Mint);
                }
                // PREDA's older form (its transpiler tests): the contract's own token, which
                // names no asset here, so it is always empty.
                [amount] => {
                    self.expect(amount, &Type::BigInt)?;
                    self.emit(Instr::Pop);
                    let tid = self.p.type_id(&Type::Token);
                    self.emit(Instr::Default(tid));
                }
                _ => {
                    return Err(CompileError::new(
                        pos,
                        "__mint takes (uint64 id, bigint amount)",
                    ))
                }
            }
            return Ok(Type::Token);
        }
        let [t] = args else {
            return Err(CompileError::new(pos, "__burn takes one token"));
        };
        if let Some(place) = self.place(t)? {
            if place.ty == Type::Token {
                if let Some(why) = &place.read_only {
                    return Err(CompileError::new(t.pos, why.clone()));
                }
                self.place_operands(&place)?;
                let id = self.place_id(&place);
                self.emit(Instr::Burn(id));
                return Ok(Type::Bool);
            }
        }
        self.expect(t, &Type::Token)?;
        self.emit(Instr::BurnValue);
        Ok(Type::Bool)
    }

    /// `token.symbol_to_id(string)` and `token.id_to_symbol(uint64)`.
    fn token_static(&mut self, m: &Ident, args: &[Expr], pos: Pos) -> CResult<Type> {
        let (from, conv, to) = match m.name.as_str() {
            "symbol_to_id" => (Type::String, Conv::SymbolToId, Type::Int(IntTy::UINT64)),
            "id_to_symbol" => (Type::Int(IntTy::UINT64), Conv::IdToSymbol, Type::String),
            other => {
                return Err(CompileError::new(
                    m.pos,
                    format!(
                        "token has no function `{other}` (it has symbol_to_id and id_to_symbol)"
                    ),
                ))
            }
        };
        let [a] = args else {
            return Err(CompileError::new(
                pos,
                format!("token.{}(…) takes one argument", m.name),
            ));
        };
        self.expect(a, &from)?;
        self.emit(Instr::Convert(conv));
        Ok(to)
    }

    /// `a.transfer(b, amount)` and `a.transfer_all(b)` on tokens: both must be places (a
    /// variable, a member, an element), since both change. `None` when `obj` is not a token
    /// place (the caller reports the method as unknown).
    fn token_transfer(
        &mut self,
        obj: &Expr,
        m: &Ident,
        args: &[Expr],
        pos: Pos,
    ) -> CResult<Option<Type>> {
        let all = m.name == "transfer_all";
        let Some(src) = self.place(obj)? else {
            return Ok(None);
        };
        if src.ty != Type::Token {
            return Ok(None);
        }
        let want = if all { 1 } else { 2 };
        if args.len() != want {
            return Err(CompileError::new(
                pos,
                if all {
                    "transfer_all takes (token recipient)"
                } else {
                    "transfer takes (token recipient, bigint amount)"
                },
            ));
        }
        let Some(dst) = self.place(&args[0])? else {
            return Err(CompileError::new(
                args[0].pos,
                "the recipient of a transfer must be a token variable, member or element (it changes)",
            ));
        };
        if dst.ty != Type::Token {
            return Err(CompileError::new(
                args[0].pos,
                format!(
                    "the recipient of a transfer must be a token, found {}",
                    self.p.tt.name(&dst.ty)
                ),
            ));
        }
        for p in [&src, &dst] {
            if let Some(why) = &p.read_only {
                return Err(CompileError::new(obj.pos, why.clone()));
            }
        }
        self.place_operands(&src)?;
        self.place_operands(&dst)?;
        if !all {
            self.expect(&args[1], &Type::BigInt)?;
        }
        let s = self.place_id(&src);
        let d = self.place_id(&dst);
        self.emit(Instr::TokenMove(s, d, all));
        Ok(Some(Type::Bool))
    }

    /// The function `name(args)` calls: the only one of that name, or among its overloads
    /// the one whose parameters take the arguments, preferring the most arguments whose own
    /// type is the parameter's (an unsuffixed literal is an `int32`, as in PREDA).
    pub fn overload(&mut self, name: &str, args: &[Expr], pos: Pos) -> CResult<u16> {
        let ids = self.p.sig_ids.get(name).cloned().unwrap_or_default();
        if ids.len() == 1 {
            return Ok(ids[0]);
        }
        let cands: Vec<Sig> = ids
            .iter()
            .map(|&i| self.p.sigs[i as usize].clone())
            .collect();
        self.choose(name, &cands, args, pos).map(|k| ids[k])
    }

    /// Which of `cands` (the overloads of `name`) takes `args`: the one whose parameters
    /// accept them, preferring exact types; a tie or a misfit is an error.
    fn choose(&mut self, name: &str, cands: &[Sig], args: &[Expr], pos: Pos) -> CResult<usize> {
        if cands.len() == 1 {
            return Ok(0);
        }
        // Each argument's own type, the same for every candidate.
        let natural: Vec<Option<Type>> = args.iter().map(|a| self.type_of(a)).collect();
        let mut best: Vec<(usize, usize)> = Vec::new();
        for (id, sig) in cands.iter().enumerate() {
            let params: Vec<Type> = sig.params.iter().map(|(_, t, _)| t.clone()).collect();
            if params.len() != args.len() {
                continue;
            }
            let mut exact = 0;
            let mut fits = true;
            for ((a, t), own) in args.iter().zip(&params).zip(&natural) {
                match self.trial(|cx| cx.value(a, Some(t))) {
                    Ok(g) if converts(&g, t) => {
                        exact += (own.as_ref() == Some(t)) as usize;
                    }
                    _ => {
                        fits = false;
                        break;
                    }
                }
            }
            if fits {
                best.push((exact, id));
            }
        }
        let top = best.iter().map(|(e, _)| *e).max();
        let chosen: Vec<usize> = best
            .iter()
            .filter(|(e, _)| Some(*e) == top)
            .map(|(_, id)| *id)
            .collect();
        let list = || {
            cands
                .iter()
                .map(|s| self.signature(s))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match chosen.as_slice() {
            [one] => Ok(*one),
            [] => Err(CompileError::new(
                pos,
                format!(
                    "no overload of `{name}` takes these arguments (it has {})",
                    list()
                ),
            )),
            _ => Err(CompileError::new(
                pos,
                format!(
                    "the call of `{name}` is ambiguous between {}",
                    chosen
                        .iter()
                        .map(|&i| self.signature(&cands[i]))
                        .collect::<Vec<_>>()
                        .join(" and ")
                ),
            )),
        }
    }

    /// `__id()`: the address of the contract running.
    fn contract_id(&mut self, args: &[Expr], pos: Pos) -> CResult<Type> {
        if !args.is_empty() {
            return Err(CompileError::new(pos, "`__id()` takes no arguments"));
        }
        self.emit(Instr::Ctx(CtxFn::ContractId));
        Ok(Type::Address)
    }

    /// `I(x)`: an interface value for the contract at address `x` (PREDA spec 5.8.3). A
    /// contract id is its address here.
    fn iface_value(&mut self, id: u16, args: &[Expr], pos: Pos) -> CResult<Type> {
        let [a] = args else {
            return Err(CompileError::new(
                pos,
                format!(
                    "`{}(…)` takes one contract id (an address)",
                    self.p.tt.interfaces[id as usize].name
                ),
            ));
        };
        let t = self.value(a, Some(&Type::Address))?;
        if !matches!(t, Type::Address | Type::Interface(_)) {
            return Err(CompileError::new(
                a.pos,
                format!(
                    "an interface is made from a contract id (an address), not {}",
                    self.p.tt.name(&t)
                ),
            ));
        }
        Ok(Type::Interface(id))
    }

    /// `deploy A(…)` (PREDA spec 5.9): a new contract with imported contract `A`'s code and
    /// fresh state, `A`'s `on_deploy` run with the arguments. Its value is the new
    /// contract's id, which on rexe is an address (as `__id()`).
    fn deploy(&mut self, c: &Ident, args: &[Expr], hint: Option<&Type>, pos: Pos) -> CResult<Type> {
        if self.scope != ScopeKind::Global || self.is_const {
            return Err(CompileError::new(
                pos,
                "`deploy` is allowed only inside a non-const @global function (PREDA spec 5.9)",
            ));
        }
        if let Some(t @ Type::Int(_)) = hint {
            return Err(CompileError::new(
                pos,
                format!(
                    "`deploy` gives the new contract's id, which on rexe is an address, not {} (declare it `address` or `auto`, and make `{}(id)` to call it)",
                    self.p.tt.name(t),
                    c.name
                ),
            ));
        }
        let Some(imp) = self
            .p
            .import_named(&c.name)
            .filter(|_| self.local(&c.name).is_none() && !self.p.state.contains_key(&c.name))
        else {
            let why = if c.name == self.p.file.contract.name.name {
                "a contract deploys the code of a contract it imports, not its own".to_string()
            } else {
                format!("`{}` is not an imported contract", c.name)
            };
            return Err(CompileError::new(c.pos, format!("cannot deploy: {why}")));
        };
        let code = self.p.imports[imp].code.clone();
        let init = code.functions.iter().find(|f| f.kind == FnKind::OnDeploy);
        let sig = match init {
            Some(f) => {
                let mut sig = link::extern_sig(self.p, imp, f);
                sig.name = format!("{}.on_deploy", c.name);
                sig
            }
            None => Sig {
                name: format!("{}.on_deploy", c.name),
                scope: ScopeKind::Global,
                params: Vec::new(),
                ret: None,
                export: false,
                public: true,
                is_const: false,
                kind: FnKind::Normal,
                pos: Pos::default(),
            },
        };
        if sig.params.len() > u8::MAX as usize {
            return Err(CompileError::new(pos, "on_deploy has too many parameters"));
        }
        self.args(&sig, args, pos)?;
        self.emit(Instr::Deploy(imp as u16, sig.params.len() as u8));
        Ok(Type::Address)
    }

    /// `A(x)` for an imported contract `A` (PREDA spec 5.9): a contract-typed value for the
    /// contract at address `x`, which should be `A` or a contract deployed from it.
    fn contract_value(&mut self, n: &str, args: &[Expr], pos: Pos) -> CResult<Type> {
        let Some(imp) = self.p.import_named(n) else {
            return Err(CompileError::new(
                pos,
                format!(
                    "`{n}` is this contract; a contract type names an imported contract (use `__id()` for this one's id)"
                ),
            ));
        };
        let [a] = args else {
            return Err(CompileError::new(
                pos,
                format!("`{n}(…)` takes one contract id (an address)"),
            ));
        };
        let t = self.value(a, Some(&Type::Address))?;
        if !matches!(t, Type::Address | Type::Interface(_) | Type::Contract(_)) {
            return Err(CompileError::new(
                a.pos,
                format!(
                    "a contract value is made from a contract id (an address), not {}",
                    self.p.tt.name(&t)
                ),
            ));
        }
        Ok(self.p.contract_type(imp))
    }

    /// `x.m(…)` on a value `x` of contract type `c`: a public function of `c` called on the
    /// contract `x` names, `__id()` or `__valid()`.
    fn contract_call(
        &mut self,
        c: &crate::types::ContractRef,
        obj: &Expr,
        m: &Ident,
        args: &[Expr],
        pos: Pos,
    ) -> CResult<Option<Type>> {
        let Some(imp) = self.p.imports.iter().position(|i| i.address == c.address) else {
            return Err(CompileError::new(
                pos,
                format!("contract `{}` is not imported here", c.name),
            ));
        };
        if matches!(m.name.as_str(), "__id" | "__valid") {
            return self.id_or_valid(obj, m, args, pos, Instr::ContractValid(imp as u16));
        }
        let (func, sig) = self.public_fn(imp, &c.name, m, args)?;
        self.check_call(&sig, m.pos)?;
        self.value(obj, None)?;
        self.args(&sig, args, pos)?;
        let id = self.p.extern_id(imp, func, &sig);
        self.emit(Instr::CallAt(id));
        Ok(sig.ret)
    }

    /// `x.__id()` (the address `x` holds) or `x.__valid()` (`valid` run on it) of an
    /// interface or contract value `x`.
    fn id_or_valid(
        &mut self,
        obj: &Expr,
        m: &Ident,
        args: &[Expr],
        pos: Pos,
        valid: Instr,
    ) -> CResult<Option<Type>> {
        if !args.is_empty() {
            return Err(CompileError::new(
                pos,
                format!("`{}()` takes no arguments", m.name),
            ));
        }
        self.value(obj, None)?;
        if m.name == "__id" {
            return Ok(Some(Type::Address));
        }
        self.emit(valid);
        Ok(Some(Type::Bool))
    }

    /// The public function `c.m` of import `imp` that `args` call (by overload).
    fn public_fn(&mut self, imp: usize, c: &str, m: &Ident, args: &[Expr]) -> CResult<(u16, Sig)> {
        let code = self.p.imports[imp].code.clone();
        let all = code.overloads(&m.name);
        if all.is_empty() {
            return Err(CompileError::new(
                m.pos,
                format!("contract `{c}` has no function `{}`", m.name),
            ));
        }
        let public: Vec<(u16, Sig)> = all
            .into_iter()
            .filter(|(_, f)| f.public && f.kind == FnKind::Normal)
            .map(|(i, f)| (i, link::extern_sig(self.p, imp, f)))
            .collect();
        if public.is_empty() {
            return Err(CompileError::new(
                m.pos,
                format!(
                    "`{c}.{}` is not public: only public functions can be called from other contracts",
                    m.name
                ),
            ));
        }
        let sigs: Vec<Sig> = public.iter().map(|(_, s)| s.clone()).collect();
        let k = self.choose(&format!("{c}.{}", m.name), &sigs, args, m.pos)?;
        Ok(public[k].clone())
    }

    /// `C.m(…)` where `C` names this contract or an imported one: a function, a struct
    /// constructor, an interface value, `__id()` or `__valid()`.
    fn qualified_call(
        &mut self,
        c: &str,
        m: &Ident,
        args: &[Expr],
        pos: Pos,
    ) -> CResult<Option<Type>> {
        let own = c == self.p.file.contract.name.name;
        match m.name.as_str() {
            "__id" if own => return self.contract_id(args, pos).map(Some),
            "__id" | "__valid" if !args.is_empty() => {
                return Err(CompileError::new(
                    pos,
                    format!("`{}()` takes no arguments", m.name),
                ))
            }
            "__valid" => {
                // The named contract itself is what its name refers to.
                self.emit(Instr::Bool(true));
                return Ok(Some(Type::Bool));
            }
            _ => {}
        }
        let ty = self
            .p
            .resolve_type(&TypeExpr::Named(vec![
                Ident {
                    name: c.to_string(),
                    pos,
                },
                m.clone(),
            ]))
            .ok();
        match ty {
            Some(Type::Struct(sid)) => return self.construct(sid, args, pos).map(Some),
            Some(Type::Interface(id)) => return self.iface_value(id, args, pos).map(Some),
            Some(t) => {
                return Err(CompileError::new(
                    pos,
                    format!("`{}` cannot be called", self.p.tt.name(&t)),
                ))
            }
            None => {}
        }
        if own {
            if !self.p.sig_ids.contains_key(&m.name) {
                return Err(CompileError::new(
                    m.pos,
                    format!("undeclared function `{}`", m.name),
                ));
            }
            let fid = self.overload(&m.name, args, m.pos)?;
            let sig = self.p.sigs[fid as usize].clone();
            self.check_call(&sig, m.pos)?;
            self.args(&sig, args, pos)?;
            self.emit(Instr::Call(fid));
            return Ok(sig.ret);
        }
        let imp = self.p.import_named(c).expect("a contract name");
        if m.name == "__id" {
            let addr = self.p.imports[imp].address;
            let k = self.p.constant(&Type::Address, Value::Address(addr));
            self.emit(Instr::Const(k));
            return Ok(Some(Type::Address));
        }
        let (func, sig) = self.public_fn(imp, c, m, args)?;
        self.check_call(&sig, m.pos)?;
        self.args(&sig, args, pos)?;
        let id = self.p.extern_id(imp, func, &sig);
        self.emit(Instr::CallExt(id));
        Ok(sig.ret)
    }

    /// `x.m(…)` on a value `x` of interface `id`: a call routed to the contract it names,
    /// `__id()` or `__valid()`.
    fn iface_call(
        &mut self,
        id: u16,
        obj: &Expr,
        m: &Ident,
        args: &[Expr],
        pos: Pos,
    ) -> CResult<Option<Type>> {
        let desc = self.p.tt.interfaces[id as usize].clone();
        if matches!(m.name.as_str(), "__id" | "__valid") {
            return self.id_or_valid(obj, m, args, pos, Instr::IfaceValid(id));
        }
        let cands: Vec<(u16, Sig)> = desc
            .functions
            .iter()
            .enumerate()
            .filter(|(_, f)| f.name == m.name)
            .map(|(k, f)| {
                (
                    k as u16,
                    Sig {
                        name: format!("{}.{}", desc.name, f.name),
                        scope: f.scope,
                        params: f
                            .params
                            .iter()
                            .enumerate()
                            .map(|(i, t)| (format!("#{i}"), t.clone(), false))
                            .collect(),
                        ret: f.ret.clone(),
                        export: false,
                        public: true,
                        is_const: f.is_const,
                        kind: FnKind::Normal,
                        pos: Pos::default(),
                    },
                )
            })
            .collect();
        if cands.is_empty() {
            return Err(CompileError::new(
                m.pos,
                format!("interface `{}` has no function `{}`", desc.name, m.name),
            ));
        }
        let sigs: Vec<Sig> = cands.iter().map(|(_, s)| s.clone()).collect();
        let k = self.choose(&format!("{}.{}", desc.name, m.name), &sigs, args, m.pos)?;
        let (method, sig) = cands[k].clone();
        self.check_call(&sig, m.pos)?;
        self.value(obj, None)?;
        self.args(&sig, args, pos)?;
        self.emit(Instr::CallIface(id, method));
        Ok(sig.ret)
    }

    /// `name(T1, T2)` of a function.
    fn signature(&self, s: &Sig) -> String {
        format!(
            "{}({})",
            s.name,
            s.params
                .iter()
                .map(|(_, t, _)| self.p.tt.name(t))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}
