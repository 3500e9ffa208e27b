//! Recursive-descent parser for the PREDA subset, with C operator precedence (all binary
//! operators left-associative, assignment and `?:` right-associative). Follows the grammar of
//! PREDA's language specification (version 2.0, sections 3-5); keywords are contextual.

use super::ast::*;
use super::error::{CompileError, Pos};
use super::lexer::{lex, IntSuffix, Tok, Token};

/// Nesting deeper than this is refused, so hostile input cannot overflow the stack.
const MAX_DEPTH: u32 = 200;

struct Parser {
    toks: Vec<Token>,
    i: usize,
    depth: u32,
}

type PResult<T> = Result<T, CompileError>;

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("`{s}`"),
        Tok::Int(v, _) => format!("number `{v}`"),
        Tok::Str(_) => "a string".into(),
        Tok::HashLit(_) => "a hash literal".into(),
        Tok::AddrLit(_) => "an address literal".into(),
        Tok::P(p) => format!("`{p}`"),
        Tok::Eof => "end of file".into(),
    }
}

const RESERVED: &[&str] = &[
    "contract",
    "function",
    "struct",
    "enum",
    "if",
    "else",
    "for",
    "while",
    "do",
    "break",
    "continue",
    "return",
    "relay",
    "const",
    "auto",
    "export",
    "public",
    "import",
    "interface",
    "implements",
    "deploy",
    "true",
    "false",
];

impl Parser {
    fn tok(&self) -> &Tok {
        &self.toks[self.i].tok
    }

    fn tok_at(&self, k: usize) -> &Tok {
        let j = (self.i + k).min(self.toks.len() - 1);
        &self.toks[j].tok
    }

    fn pos(&self) -> Pos {
        self.toks[self.i].pos
    }

    fn advance(&mut self) -> Token {
        let t = self.toks[self.i].clone();
        if self.i + 1 < self.toks.len() {
            self.i += 1;
        }
        t
    }

    fn is_p(&self, p: &str) -> bool {
        matches!(self.tok(), Tok::P(q) if *q == p)
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.tok(), Tok::Ident(s) if s == kw)
    }

    fn eat_p(&mut self, p: &str) -> bool {
        if self.is_p(p) {
            self.advance();
            true
        } else {
            false
        }
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.is_kw(kw) {
            self.advance();
            true
        } else {
            false
        }
    }

    fn err<T>(&self, what: &str) -> PResult<T> {
        Err(CompileError::new(
            self.pos(),
            format!("expected {what}, found {}", describe(self.tok())),
        ))
    }

    fn expect_p(&mut self, p: &str) -> PResult<()> {
        if self.eat_p(p) {
            Ok(())
        } else {
            self.err(&format!("`{p}`"))
        }
    }

    fn expect_kw(&mut self, kw: &str) -> PResult<()> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            self.err(&format!("`{kw}`"))
        }
    }

    fn ident(&mut self) -> PResult<Ident> {
        match self.tok().clone() {
            Tok::Ident(name) if !RESERVED.contains(&name.as_str()) => {
                let pos = self.pos();
                self.advance();
                Ok(Ident { name, pos })
            }
            _ => self.err("a name"),
        }
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(CompileError::new(self.pos(), "nesting too deep"));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    // ---- file and contract ----------------------------------------------------------

    fn file(&mut self) -> PResult<SourceFile> {
        let mut imports = Vec::new();
        while self.is_kw("import") {
            self.advance();
            let first = self.ident()?;
            let (dapp, name) = if self.eat_p(".") {
                (Some(first), self.ident()?)
            } else {
                (None, first)
            };
            let alias = if self.eat_kw("as") {
                Some(self.ident()?)
            } else {
                None
            };
            self.expect_p(";")?;
            imports.push(ImportDecl { dapp, name, alias });
        }
        self.annotation()?;
        self.expect_kw("contract")?;
        let name = self.ident()?;
        let mut implements = Vec::new();
        if self.eat_kw("implements") {
            loop {
                let mut path = vec![self.ident()?];
                while self.eat_p(".") {
                    path.push(self.ident()?);
                }
                implements.push(path);
                if !self.eat_p(",") {
                    break;
                }
            }
        }
        self.expect_p("{")?;
        let mut items = Vec::new();
        while !self.is_p("}") {
            if *self.tok() == Tok::Eof {
                return self.err("`}` closing the contract");
            }
            items.push(self.item()?);
        }
        self.expect_p("}")?;
        if *self.tok() != Tok::Eof {
            return self.err("end of file after the contract");
        }
        Ok(SourceFile {
            imports,
            contract: Contract {
                name,
                implements,
                items,
            },
        })
    }

    /// `[key = literal, …]` annotations carry tooling hints; they are skipped.
    fn annotation(&mut self) -> PResult<()> {
        if !self.is_p("[") {
            return Ok(());
        }
        self.advance();
        while !self.eat_p("]") {
            if *self.tok() == Tok::Eof {
                return self.err("`]` closing the annotation");
            }
            self.advance();
        }
        Ok(())
    }

    fn scope(&mut self) -> PResult<Option<(ScopeKind, Pos)>> {
        if !self.is_p("@") {
            return Ok(None);
        }
        let pos = self.pos();
        self.advance();
        let Tok::Ident(name) = self.tok().clone() else {
            return self.err("a scope name after `@`");
        };
        let kind = ScopeKind::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| {
                CompileError::new(
                    self.pos(),
                    format!(
                        "unknown scope `@{name}` (expected @global, @shard, @address or @uint32…@uint512)"
                    ),
                )
            })?;
        self.advance();
        Ok(Some((kind, pos)))
    }

    fn item(&mut self) -> PResult<Item> {
        self.annotation()?;
        if self.is_kw("struct") {
            self.advance();
            let name = self.ident()?;
            self.expect_p("{")?;
            let mut fields = Vec::new();
            while !self.eat_p("}") {
                let ty = self.type_expr()?;
                let f = self.ident()?;
                self.expect_p(";")?;
                fields.push((ty, f));
            }
            return Ok(Item::Struct(StructDef { name, fields }));
        }
        if self.is_kw("enum") {
            self.advance();
            let name = self.ident()?;
            self.expect_p("{")?;
            let mut variants = Vec::new();
            if !self.is_p("}") {
                loop {
                    variants.push(self.ident()?);
                    if !self.eat_p(",") {
                        break;
                    }
                    if self.is_p("}") {
                        break;
                    }
                }
            }
            self.expect_p("}")?;
            return Ok(Item::Enum(EnumDef { name, variants }));
        }
        if self.is_kw("interface") {
            self.advance();
            let name = self.ident()?;
            self.expect_p("{")?;
            let mut functions = Vec::new();
            while !self.eat_p("}") {
                if *self.tok() == Tok::Eof {
                    return self.err("`}` closing the interface");
                }
                self.annotation()?;
                let scope = self.scope()?;
                let f = self.function_header(scope)?;
                if self.is_p("{") {
                    return Err(CompileError::new(
                        self.pos(),
                        "an interface's functions have no body (end them with `;`)",
                    ));
                }
                self.expect_p(";")?;
                functions.push(f);
            }
            return Ok(Item::Interface(InterfaceDef { name, functions }));
        }
        if self.is_kw("const") && !matches!(self.tok_at(1), Tok::Ident(s) if s == "function") {
            self.advance();
            let ty = self.type_expr()?;
            let name = self.ident()?;
            self.expect_p("=")?;
            let value = self.expr()?;
            self.expect_p(";")?;
            return Ok(Item::Const(ConstDecl { ty, name, value }));
        }
        let scope = self.scope()?;
        if self.is_kw("function") {
            return Ok(Item::Function(self.function(scope)?));
        }
        let ty = self.type_expr()?;
        let name = self.ident()?;
        if self.is_p("=") {
            return Err(CompileError::new(
                self.pos(),
                "state variables have no initializer (set them in on_deploy, or declare a `const`)",
            ));
        }
        self.expect_p(";")?;
        Ok(Item::State(StateDecl { scope, ty, name }))
    }

    fn function(&mut self, scope: Option<(ScopeKind, Pos)>) -> PResult<FunctionDef> {
        let mut f = self.function_header(scope)?;
        f.body = self.block()?;
        Ok(f)
    }

    /// A function up to its body (which is left empty).
    fn function_header(&mut self, scope: Option<(ScopeKind, Pos)>) -> PResult<FunctionDef> {
        self.expect_kw("function")?;
        // A return type is present unless the next tokens are `name (`.
        let has_ret =
            !(matches!(self.tok(), Tok::Ident(_)) && matches!(self.tok_at(1), Tok::P("(")));
        let ret = if has_ret {
            self.eat_kw("const");
            Some(self.type_expr()?)
        } else {
            None
        };
        let name = self.ident()?;
        self.expect_p("(")?;
        let mut params = Vec::new();
        if !self.is_p(")") {
            loop {
                let is_const = self.eat_kw("const");
                let ty = self.type_expr()?;
                let name = self.ident()?;
                params.push(Param { is_const, ty, name });
                if !self.eat_p(",") {
                    break;
                }
            }
        }
        self.expect_p(")")?;
        let (mut export, mut public, mut is_const) = (false, false, false);
        loop {
            if self.eat_kw("export") {
                export = true;
            } else if self.eat_kw("public") {
                public = true;
            } else if self.eat_kw("const") {
                is_const = true;
            } else {
                break;
            }
        }
        Ok(FunctionDef {
            scope,
            ret,
            name,
            params,
            export,
            public,
            is_const,
            body: Vec::new(),
        })
    }

    // ---- types ------------------------------------------------------------------------

    fn type_expr(&mut self) -> PResult<TypeExpr> {
        self.enter()?;
        let r = self.type_inner();
        self.leave();
        r
    }

    fn type_inner(&mut self) -> PResult<TypeExpr> {
        let pos = self.pos();
        let Tok::Ident(name) = self.tok().clone() else {
            return self.err("a type");
        };
        match name.as_str() {
            "array" | "scattered_array" => {
                self.advance();
                self.expect_p("<")?;
                let t = self.type_expr()?;
                self.expect_p(">")?;
                let t = TypeExpr::Array(Box::new(t), pos);
                Ok(if name == "array" {
                    t
                } else {
                    TypeExpr::Scattered(Box::new(t), pos)
                })
            }
            "map" | "scattered_map" => {
                self.advance();
                self.expect_p("<")?;
                let k = self.type_expr()?;
                self.expect_p(",")?;
                let v = self.type_expr()?;
                self.expect_p(">")?;
                let t = TypeExpr::Map(Box::new(k), Box::new(v), pos);
                Ok(if name == "map" {
                    t
                } else {
                    TypeExpr::Scattered(Box::new(t), pos)
                })
            }
            _ => {
                let mut parts = vec![self.ident()?];
                while self.is_p(".") && matches!(self.tok_at(1), Tok::Ident(_)) {
                    self.advance();
                    parts.push(self.ident()?);
                }
                Ok(TypeExpr::Named(parts))
            }
        }
    }

    /// Whether a declaration `[const] Type name` or `auto name` starts here (a type
    /// followed by a name cannot begin an expression).
    fn at_declaration(&mut self) -> bool {
        if self.is_kw("auto") || self.is_kw("const") {
            return true;
        }
        if !matches!(self.tok(), Tok::Ident(_)) {
            return false;
        }
        let save = self.i;
        let ok = self.type_expr().is_ok()
            && matches!(self.tok(), Tok::Ident(s) if !RESERVED.contains(&s.as_str()));
        self.i = save;
        ok
    }

    fn var_decl(&mut self) -> PResult<VarDecl> {
        let is_const = self.eat_kw("const");
        let ty = if self.eat_kw("auto") {
            None
        } else {
            Some(self.type_expr()?)
        };
        let name = self.ident()?;
        let init = if self.eat_p("=") {
            Some(self.expr()?)
        } else {
            None
        };
        Ok(VarDecl {
            is_const,
            ty,
            name,
            init,
        })
    }

    // ---- statements -------------------------------------------------------------------

    fn block(&mut self) -> PResult<Vec<Stmt>> {
        self.expect_p("{")?;
        let mut out = Vec::new();
        while !self.is_p("}") {
            if *self.tok() == Tok::Eof {
                return self.err("`}`");
            }
            out.push(self.stmt()?);
        }
        self.advance();
        Ok(out)
    }

    fn stmt(&mut self) -> PResult<Stmt> {
        self.enter()?;
        let r = self.stmt_inner();
        self.leave();
        r
    }

    fn stmt_inner(&mut self) -> PResult<Stmt> {
        let pos = self.pos();
        if self.is_p("{") {
            return Ok(Stmt::Block(self.block()?, pos));
        }
        if let Tok::Ident(kw) = self.tok().clone() {
            if kw == "issue" && matches!(self.tok_at(1), Tok::P("@")) {
                return Err(CompileError::new(
                    pos,
                    "`issue@…` is not part of the PREDA language specification (2.0) that rexe implements, and is not supported",
                ));
            }
            match kw.as_str() {
                "if" => return self.if_stmt(),
                "while" => {
                    self.advance();
                    self.expect_p("(")?;
                    let cond = self.expr()?;
                    self.expect_p(")")?;
                    let body = self.block_required("while")?;
                    return Ok(Stmt::While { cond, body, pos });
                }
                "do" => {
                    self.advance();
                    let body = self.block_required("do")?;
                    self.expect_kw("while")?;
                    self.expect_p("(")?;
                    let cond = self.expr()?;
                    self.expect_p(")")?;
                    self.expect_p(";")?;
                    return Ok(Stmt::DoWhile { body, cond, pos });
                }
                "for" => return self.for_stmt(),
                "break" => {
                    self.advance();
                    self.expect_p(";")?;
                    return Ok(Stmt::Break(pos));
                }
                "continue" => {
                    self.advance();
                    self.expect_p(";")?;
                    return Ok(Stmt::Continue(pos));
                }
                "return" => {
                    self.advance();
                    let e = if self.is_p(";") {
                        None
                    } else {
                        Some(self.expr()?)
                    };
                    self.expect_p(";")?;
                    return Ok(Stmt::Return(e, pos));
                }
                "relay" => return self.relay(),
                "else" => {
                    return Err(CompileError::new(pos, "`else` without a matching `if`"));
                }
                _ => {}
            }
        }
        if self.at_declaration() {
            let d = self.var_decl()?;
            self.expect_p(";")?;
            return Ok(Stmt::Var(d));
        }
        let e = self.expr()?;
        if !self.is_p(";") {
            return self.err("`;` after the expression");
        }
        self.advance();
        Ok(Stmt::Expr(e))
    }

    fn block_required(&mut self, what: &str) -> PResult<Vec<Stmt>> {
        if !self.is_p("{") {
            return Err(CompileError::new(
                self.pos(),
                format!("`{what}` must be followed by a block in braces"),
            ));
        }
        self.block()
    }

    fn if_stmt(&mut self) -> PResult<Stmt> {
        let pos = self.pos();
        self.expect_kw("if")?;
        self.expect_p("(")?;
        let cond = self.expr()?;
        self.expect_p(")")?;
        let then = self.block_required("if")?;
        let els = if self.eat_kw("else") {
            if self.is_kw("if") {
                Some(vec![self.stmt()?])
            } else {
                Some(self.block_required("else")?)
            }
        } else {
            None
        };
        Ok(Stmt::If {
            cond,
            then,
            els,
            pos,
        })
    }

    fn for_stmt(&mut self) -> PResult<Stmt> {
        let pos = self.pos();
        self.expect_kw("for")?;
        self.expect_p("(")?;
        let init = if self.is_p(";") {
            None
        } else if self.at_declaration() {
            Some(Box::new(Stmt::Var(self.var_decl()?)))
        } else {
            Some(Box::new(Stmt::Expr(self.expr()?)))
        };
        self.expect_p(";")?;
        let cond = if self.is_p(";") {
            None
        } else {
            Some(self.expr()?)
        };
        self.expect_p(";")?;
        let step = if self.is_p(")") {
            None
        } else {
            Some(self.expr()?)
        };
        self.expect_p(")")?;
        let body = self.block_required("for")?;
        Ok(Stmt::For {
            init,
            cond,
            step,
            body,
            pos,
        })
    }

    fn relay(&mut self) -> PResult<Stmt> {
        let pos = self.pos();
        self.expect_kw("relay")?;
        self.expect_p("@")?;
        let keyword_target = match self.tok() {
            Tok::Ident(s) if s == "shards" => Some(RelayTarget::Shards),
            Tok::Ident(s) if s == "global" => Some(RelayTarget::Global),
            Tok::Ident(s) if s == "next" => Some(RelayTarget::Next),
            _ => None,
        };
        // `shards`, `global` and `next` are keywords here when what follows is a call or a
        // lambda, which an expression target could not be followed by on its own.
        let target = match keyword_target {
            Some(t)
                if matches!(self.tok_at(1), Tok::P("("))
                    || (matches!(self.tok_at(1), Tok::Ident(_))
                        && matches!(self.tok_at(2), Tok::P("("))) =>
            {
                self.advance();
                t
            }
            _ => RelayTarget::Expr(self.postfix(true)?),
        };
        let call = if matches!(self.tok(), Tok::Ident(_)) && matches!(self.tok_at(1), Tok::P("(")) {
            let name = self.ident()?;
            self.expect_p("(")?;
            let args = self.args()?;
            self.expect_p(";")?;
            RelayCall::Named { name, args }
        } else if self.is_p("(") {
            self.advance();
            let mut params = Vec::new();
            if !self.is_p(")") {
                loop {
                    params.push(self.lambda_param()?);
                    if !self.eat_p(",") {
                        break;
                    }
                }
            }
            self.expect_p(")")?;
            let is_const = self.eat_kw("const");
            let body = self.block()?;
            RelayCall::Lambda {
                params,
                is_const,
                body,
            }
        } else {
            return self.err("a function call or a lambda `(…) { … }` after the relay target");
        };
        Ok(Stmt::Relay(Box::new(RelayStmt { target, call, pos })))
    }

    fn lambda_param(&mut self) -> PResult<LambdaParam> {
        if self.eat_p("^") {
            return Ok(LambdaParam::Capture(self.ident()?));
        }
        let is_const = self.eat_kw("const");
        let ty = if self.eat_kw("auto") {
            None
        } else {
            Some(self.type_expr()?)
        };
        let name = self.ident()?;
        if !self.is_p("=") {
            return Err(CompileError::new(
                self.pos(),
                format!(
                    "relay lambda parameter `{}` needs a value (`= expression`, or write `^{}`)",
                    name.name, name.name
                ),
            ));
        }
        self.advance();
        let value = self.expr()?;
        Ok(LambdaParam::Decl {
            is_const,
            ty,
            name,
            value,
        })
    }

    // ---- expressions ------------------------------------------------------------------

    fn expr(&mut self) -> PResult<Expr> {
        self.enter()?;
        let r = self.assignment();
        self.leave();
        r
    }

    fn assignment(&mut self) -> PResult<Expr> {
        let lhs = self.ternary()?;
        let op = match self.tok() {
            Tok::P("=") => None,
            Tok::P("+=") => Some(BinOp::Add),
            Tok::P("-=") => Some(BinOp::Sub),
            Tok::P("*=") => Some(BinOp::Mul),
            Tok::P("/=") => Some(BinOp::Div),
            Tok::P("%=") => Some(BinOp::Rem),
            Tok::P("<<=") => Some(BinOp::Shl),
            Tok::P(">>=") => Some(BinOp::Shr),
            Tok::P("&=") => Some(BinOp::BitAnd),
            Tok::P("^=") => Some(BinOp::BitXor),
            Tok::P("|=") => Some(BinOp::BitOr),
            _ => return Ok(lhs),
        };
        let pos = self.pos();
        self.advance();
        let rhs = self.expr()?;
        Ok(Expr {
            kind: ExprKind::Assign(op, Box::new(lhs), Box::new(rhs)),
            pos,
        })
    }

    fn ternary(&mut self) -> PResult<Expr> {
        let cond = self.binary(0)?;
        if !self.is_p("?") {
            return Ok(cond);
        }
        let pos = self.pos();
        self.advance();
        self.enter()?;
        let a = self.ternary();
        self.leave();
        let a = a?;
        self.expect_p(":")?;
        self.enter()?;
        let b = self.ternary();
        self.leave();
        Ok(Expr {
            kind: ExprKind::Ternary(Box::new(cond), Box::new(a), Box::new(b?)),
            pos,
        })
    }

    /// The binary operator here and its precedence level (0 = `||`, 9 = `*`), with the
    /// number of tokens it spans (`>` `>` is two).
    fn binop(&self) -> Option<(BinOp, u8, usize)> {
        let t = self.tok();
        Some(match t {
            Tok::P("||") => (BinOp::Or, 0, 1),
            Tok::P("&&") => (BinOp::And, 1, 1),
            Tok::P("|") => (BinOp::BitOr, 2, 1),
            Tok::P("^") => (BinOp::BitXor, 3, 1),
            Tok::P("&") => (BinOp::BitAnd, 4, 1),
            Tok::P("==") => (BinOp::Eq, 5, 1),
            Tok::P("!=") => (BinOp::Ne, 5, 1),
            Tok::P("<") => (BinOp::Lt, 6, 1),
            Tok::P("<=") => (BinOp::Le, 6, 1),
            Tok::P(">=") => (BinOp::Ge, 6, 1),
            Tok::P(">") => {
                let next = &self.toks[(self.i + 1).min(self.toks.len() - 1)];
                if matches!(next.tok, Tok::P(">")) && next.offset == self.toks[self.i].end {
                    (BinOp::Shr, 7, 2)
                } else {
                    (BinOp::Gt, 6, 1)
                }
            }
            Tok::P("<<") => (BinOp::Shl, 7, 1),
            Tok::P("+") => (BinOp::Add, 8, 1),
            Tok::P("-") => (BinOp::Sub, 8, 1),
            Tok::P("*") => (BinOp::Mul, 9, 1),
            Tok::P("/") => (BinOp::Div, 9, 1),
            Tok::P("%") => (BinOp::Rem, 9, 1),
            _ => return None,
        })
    }

    fn binary(&mut self, min: u8) -> PResult<Expr> {
        let mut lhs = self.unary()?;
        while let Some((op, prec, width)) = self.binop() {
            if prec < min {
                break;
            }
            let pos = self.pos();
            for _ in 0..width {
                self.advance();
            }
            self.enter()?;
            let rhs = self.binary(prec + 1);
            self.leave();
            lhs = Expr {
                kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs?)),
                pos,
            };
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> PResult<Expr> {
        let pos = self.pos();
        let op = match self.tok() {
            Tok::P("-") => Some(UnOp::Neg),
            Tok::P("+") => Some(UnOp::Plus),
            Tok::P("!") => Some(UnOp::Not),
            Tok::P("~") => Some(UnOp::BitNot),
            Tok::P("++") | Tok::P("--") => {
                let inc = self.is_p("++");
                self.advance();
                self.enter()?;
                let e = self.unary();
                self.leave();
                return Ok(Expr {
                    kind: ExprKind::IncDec(inc, Box::new(e?)),
                    pos,
                });
            }
            _ => None,
        };
        let Some(op) = op else {
            return self.postfix(false);
        };
        self.advance();
        if op == UnOp::Neg {
            if let Tok::Int(v, s) = self.tok().clone() {
                // `-2147483648` is one literal, so the minimum of a signed type is writable.
                if !matches!(self.tok_at(1), Tok::P("[") | Tok::P("(") | Tok::P(".")) {
                    self.advance();
                    return Ok(Expr {
                        kind: ExprKind::Int {
                            value: v,
                            suffix: s,
                            negated: true,
                        },
                        pos,
                    });
                }
            }
        }
        self.enter()?;
        let e = self.unary();
        self.leave();
        Ok(Expr {
            kind: ExprKind::Unary(op, Box::new(e?)),
            pos,
        })
    }

    /// Index of the token after the `)` matching the `(` at the current position.
    fn after_matching_paren(&self) -> usize {
        let mut depth = 0i64;
        let mut j = self.i;
        while j < self.toks.len() {
            match self.toks[j].tok {
                Tok::P("(") => depth += 1,
                Tok::P(")") => {
                    depth -= 1;
                    if depth == 0 {
                        return j + 1;
                    }
                }
                Tok::Eof => return j,
                _ => {}
            }
            j += 1;
        }
        j
    }

    /// A postfix expression. As a relay target, a `(…)` followed by `{` or `const` is the
    /// relay's lambda, not a call.
    fn postfix(&mut self, relay_target: bool) -> PResult<Expr> {
        let mut e = self.primary()?;
        loop {
            let pos = self.pos();
            match self.tok() {
                Tok::P("++") | Tok::P("--") => {
                    let inc = self.is_p("++");
                    self.advance();
                    e = Expr {
                        kind: ExprKind::IncDec(inc, Box::new(e)),
                        pos,
                    };
                }
                Tok::P("[") => {
                    self.advance();
                    let i = self.expr()?;
                    self.expect_p("]")?;
                    e = Expr {
                        kind: ExprKind::Index(Box::new(e), Box::new(i)),
                        pos,
                    };
                }
                Tok::P("(") => {
                    if relay_target {
                        let after = self.after_matching_paren().min(self.toks.len() - 1);
                        if matches!(&self.toks[after].tok, Tok::P("{"))
                            || matches!(&self.toks[after].tok, Tok::Ident(s) if s == "const")
                        {
                            break;
                        }
                    }
                    self.advance();
                    let args = self.args()?;
                    e = Expr {
                        kind: ExprKind::Call(Box::new(e), args),
                        pos,
                    };
                }
                Tok::P(".") => {
                    self.advance();
                    let name = self.ident()?;
                    e = Expr {
                        kind: ExprKind::Member(Box::new(e), name),
                        pos,
                    };
                }
                _ => break,
            }
        }
        Ok(e)
    }

    /// Arguments after `(`, through the closing `)`.
    fn args(&mut self) -> PResult<Vec<Expr>> {
        let mut args = Vec::new();
        if !self.is_p(")") {
            loop {
                args.push(self.expr()?);
                if !self.eat_p(",") {
                    break;
                }
            }
        }
        self.expect_p(")")?;
        Ok(args)
    }

    fn primary(&mut self) -> PResult<Expr> {
        let pos = self.pos();
        let kind = match self.tok().clone() {
            Tok::Int(value, suffix) => {
                self.advance();
                ExprKind::Int {
                    value,
                    suffix,
                    negated: false,
                }
            }
            Tok::Str(s) => {
                self.advance();
                ExprKind::Str(s)
            }
            Tok::HashLit(s) => {
                self.advance();
                ExprKind::HashLit(s)
            }
            Tok::AddrLit(s) => {
                self.advance();
                ExprKind::AddrLit(s)
            }
            Tok::P("(") => {
                self.advance();
                let e = self.expr()?;
                self.expect_p(")")?;
                return Ok(e);
            }
            Tok::Ident(w) => match w.as_str() {
                "true" | "false" => {
                    self.advance();
                    ExprKind::Bool(w == "true")
                }
                "deploy" => {
                    self.advance();
                    let name = self.ident()?;
                    self.expect_p("(")?;
                    ExprKind::Deploy(name, self.args()?)
                }
                "array" | "map" | "scattered_map" | "scattered_array"
                    if matches!(self.tok_at(1), Tok::P("<")) =>
                {
                    ExprKind::Type(self.type_expr()?)
                }
                _ if RESERVED.contains(&w.as_str()) => {
                    return self.err("an expression");
                }
                _ => {
                    self.advance();
                    ExprKind::Name(w)
                }
            },
            _ => return self.err("an expression"),
        };
        Ok(Expr { kind, pos })
    }
}

/// Parses a source file.
pub fn parse(src: &str) -> Result<SourceFile, CompileError> {
    let toks = lex(src)?;
    let mut p = Parser {
        toks,
        i: 0,
        depth: 0,
    };
    p.file()
}

/// Whether an integer literal has an explicit type suffix.
pub fn has_suffix(s: IntSuffix) -> bool {
    !matches!(s, IntSuffix::None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(src: &str) -> Vec<Stmt> {
        let f = parse(&format!(
            "contract C {{ @address function f() {{ {src} }} }}"
        ))
        .unwrap();
        match &f.contract.items[0] {
            Item::Function(f) => f.body.clone(),
            _ => unreachable!(),
        }
    }

    fn show(e: &Expr) -> String {
        match &e.kind {
            ExprKind::Name(n) => n.clone(),
            ExprKind::Int { value, negated, .. } => {
                format!("{}{value}", if *negated { "-" } else { "" })
            }
            ExprKind::Binary(op, a, b) => format!("({} {} {})", show(a), op.symbol(), show(b)),
            ExprKind::Unary(_, a) => format!("(u {})", show(a)),
            ExprKind::Ternary(c, a, b) => format!("({} ? {} : {})", show(c), show(a), show(b)),
            ExprKind::Assign(_, a, b) => format!("({} = {})", show(a), show(b)),
            ExprKind::Call(f, args) => format!(
                "{}({})",
                show(f),
                args.iter().map(show).collect::<Vec<_>>().join(", ")
            ),
            ExprKind::Member(a, n) => format!("{}.{}", show(a), n.name),
            ExprKind::Index(a, i) => format!("{}[{}]", show(a), show(i)),
            ExprKind::Deploy(c, args) => format!(
                "deploy {}({})",
                c.name,
                args.iter().map(show).collect::<Vec<_>>().join(", ")
            ),
            _ => "?".into(),
        }
    }

    fn expr(src: &str) -> String {
        match &body(&format!("{src};"))[0] {
            Stmt::Expr(e) => show(e),
            other => panic!("not an expression: {other:?}"),
        }
    }

    #[test]
    fn c_precedence_and_left_associativity() {
        assert_eq!(expr("a + b * c"), "(a + (b * c))");
        assert_eq!(expr("a - b - c"), "((a - b) - c)");
        assert_eq!(expr("a << 1 + 2"), "(a << (1 + 2))");
        assert_eq!(expr("a < b == c > d"), "((a < b) == (c > d))");
        assert_eq!(expr("a & b ^ c | d"), "(((a & b) ^ c) | d)");
        assert_eq!(expr("a || b && c"), "(a || (b && c))");
        assert_eq!(expr("a >> b > c"), "((a >> b) > c)");
        assert_eq!(expr("x = c ? a : b ? d : e"), "(x = (c ? a : (b ? d : e)))");
        assert_eq!(expr("-1 - -x"), "(-1 - (u x))");
        assert_eq!(expr("f(a, b)[i].g"), "f(a, b)[i].g");
        assert_eq!(expr("x = deploy A(1, b + c)"), "(x = deploy A(1, (b + c)))");
    }

    #[test]
    fn declarations_and_statements() {
        let b = body(
            "uint32 i = 0u; array<map<uint32, array<uint64>>> m; auto x = 1; A.S s; \
             for (uint32 j = 0u; j < 3u; j++) { continue; } do { break; } while (true); \
             if (a) { } else if (b) { } else { }",
        );
        assert!(matches!(b[0], Stmt::Var(_)));
        assert!(matches!(b[1], Stmt::Var(_)));
        assert!(matches!(b[2], Stmt::Var(VarDecl { ty: None, .. })));
        assert!(matches!(b[3], Stmt::Var(_)));
        assert!(matches!(b[4], Stmt::For { .. }));
        assert!(matches!(b[5], Stmt::DoWhile { .. }));
        assert!(matches!(b[6], Stmt::If { els: Some(_), .. }));
    }

    #[test]
    fn relay_forms() {
        let b = body(
            "relay@to (^amount) { balance += amount; } \
             relay@recipients[i].to (bigint amount = recipients[i].amount) { } \
             relay@__transaction.get_initiator_address() (^s, auto t = 1) { } \
             relay@a0 set_v(v0); relay@global f(); relay@shards () { } relay@next g(1);",
        );
        let kinds: Vec<_> = b
            .iter()
            .map(|s| match s {
                Stmt::Relay(r) => (
                    match &r.target {
                        RelayTarget::Expr(e) => show(e),
                        RelayTarget::Shards => "shards".into(),
                        RelayTarget::Global => "global".into(),
                        RelayTarget::Next => "next".into(),
                    },
                    matches!(r.call, RelayCall::Lambda { .. }),
                ),
                _ => panic!(),
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("to".to_string(), true),
                ("recipients[i].to".to_string(), true),
                ("__transaction.get_initiator_address()".to_string(), true),
                ("a0".to_string(), false),
                ("global".to_string(), false),
                ("shards".to_string(), true),
                ("next".to_string(), false),
            ]
        );
    }

    #[test]
    fn errors_carry_line_and_column() {
        let e = parse("contract C {\n  @address function f() {\n    x = ;\n  }\n}").unwrap_err();
        assert_eq!((e.pos.line, e.pos.col), (3, 9));
        let e = parse("contract C { @planet uint32 x; }").unwrap_err();
        assert!(e.message.contains("unknown scope"), "{e}");
        let e = parse("contract C { function f() { if (x) y = 1; } }").unwrap_err();
        assert!(e.message.contains("block"), "{e}");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let src = format!(
            "contract C {{ function f() {{ x = {}1{}; }} }}",
            "(".repeat(10_000),
            ")".repeat(10_000)
        );
        assert!(parse(&src).is_err());
    }
}
