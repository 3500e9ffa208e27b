//! The syntax tree the parser builds, with positions for error messages. Names are not
//! resolved and types not checked here (see `check`).

use num_bigint::BigUint;

use super::error::Pos;
use super::lexer::IntSuffix;

/// A name with its position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ident {
    /// The name.
    pub name: String,
    /// Where it appears.
    pub pos: Pos,
}

/// `import [DApp.]Name [as Alias];` (PREDA spec 5.7.1).
#[derive(Clone, Debug)]
pub struct ImportDecl {
    /// The DApp part, when written.
    pub dapp: Option<Ident>,
    /// The contract's name.
    pub name: Ident,
    /// `as Alias`, when written.
    pub alias: Option<Ident>,
}

impl ImportDecl {
    /// The name the source refers to the contract by.
    pub fn alias_name(&self) -> &Ident {
        self.alias.as_ref().unwrap_or(&self.name)
    }
}

/// A whole source file: imports, then one contract.
#[derive(Clone, Debug)]
pub struct SourceFile {
    /// `import` directives, in source order.
    pub imports: Vec<ImportDecl>,
    /// The contract.
    pub contract: Contract,
}

/// `contract Name [implements …] { … }`.
#[derive(Clone, Debug)]
pub struct Contract {
    /// Its name.
    pub name: Ident,
    /// `implements` list: each an interface name, qualified (`Alias.I`) or not.
    pub implements: Vec<Vec<Ident>>,
    /// Definitions in source order.
    pub items: Vec<Item>,
}

/// A scope annotation: `@global`, `@shard`, `@address`, `@uintN`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ScopeKind {
    /// One instance for the whole chain.
    Global,
    /// One instance per shard.
    Shard,
    /// One instance per address.
    Address,
    /// One instance per `uint32` value.
    Uint32,
    /// One instance per `uint64` value.
    Uint64,
    /// One instance per `uint128` value.
    Uint128,
    /// One instance per `uint256` value.
    Uint256,
    /// One instance per `uint512` value.
    Uint512,
}

impl ScopeKind {
    /// Every scope, in rank order (the order of the access rule).
    pub const ALL: [ScopeKind; 8] = [
        ScopeKind::Global,
        ScopeKind::Shard,
        ScopeKind::Address,
        ScopeKind::Uint32,
        ScopeKind::Uint64,
        ScopeKind::Uint128,
        ScopeKind::Uint256,
        ScopeKind::Uint512,
    ];

    /// The scope's tag in bytecode and storage keys.
    pub fn tag(self) -> u8 {
        self as u8
    }

    /// The scope with this tag.
    pub fn from_tag(t: u8) -> Option<ScopeKind> {
        ScopeKind::ALL.get(t as usize).copied()
    }

    /// How it is written after `@`.
    pub fn name(self) -> &'static str {
        match self {
            ScopeKind::Global => "global",
            ScopeKind::Shard => "shard",
            ScopeKind::Address => "address",
            ScopeKind::Uint32 => "uint32",
            ScopeKind::Uint64 => "uint64",
            ScopeKind::Uint128 => "uint128",
            ScopeKind::Uint256 => "uint256",
            ScopeKind::Uint512 => "uint512",
        }
    }

    /// Bit width of an integer scope's key.
    pub fn uint_bits(self) -> Option<u16> {
        match self {
            ScopeKind::Uint32 => Some(32),
            ScopeKind::Uint64 => Some(64),
            ScopeKind::Uint128 => Some(128),
            ScopeKind::Uint256 => Some(256),
            ScopeKind::Uint512 => Some(512),
            _ => None,
        }
    }

    /// The integer scope keyed by `uintN`.
    pub fn for_uint(bits: u16) -> Option<ScopeKind> {
        match bits {
            32 => Some(ScopeKind::Uint32),
            64 => Some(ScopeKind::Uint64),
            128 => Some(ScopeKind::Uint128),
            256 => Some(ScopeKind::Uint256),
            512 => Some(ScopeKind::Uint512),
            _ => None,
        }
    }
}

/// A top-level definition in a contract.
#[derive(Clone, Debug)]
pub enum Item {
    /// `[scope] Type name;`
    State(StateDecl),
    /// `const Type name = expr;`
    Const(ConstDecl),
    /// `struct Name { Type field; … }`
    Struct(StructDef),
    /// `enum Name { A, B, … }`
    Enum(EnumDef),
    /// A function.
    Function(FunctionDef),
    /// `interface Name { … }`: functions without bodies.
    Interface(InterfaceDef),
}

/// An interface definition (PREDA spec 5.8.1).
#[derive(Clone, Debug)]
pub struct InterfaceDef {
    /// Its name.
    pub name: Ident,
    /// Its functions (their bodies are empty).
    pub functions: Vec<FunctionDef>,
}

/// A state variable.
#[derive(Clone, Debug)]
pub struct StateDecl {
    /// Explicit scope (`@global` when absent).
    pub scope: Option<(ScopeKind, Pos)>,
    /// Type.
    pub ty: TypeExpr,
    /// Name.
    pub name: Ident,
}

/// A compile-time constant.
#[derive(Clone, Debug)]
pub struct ConstDecl {
    /// Type.
    pub ty: TypeExpr,
    /// Name.
    pub name: Ident,
    /// Initializer.
    pub value: Expr,
}

/// A structure type.
#[derive(Clone, Debug)]
pub struct StructDef {
    /// Name.
    pub name: Ident,
    /// Members in order.
    pub fields: Vec<(TypeExpr, Ident)>,
}

/// An enumeration type.
#[derive(Clone, Debug)]
pub struct EnumDef {
    /// Name.
    pub name: Ident,
    /// Enumerators in order.
    pub variants: Vec<Ident>,
}

/// A function parameter.
#[derive(Clone, Debug)]
pub struct Param {
    /// `const` parameter.
    pub is_const: bool,
    /// Type.
    pub ty: TypeExpr,
    /// Name.
    pub name: Ident,
}

/// `[scope] function [RetType] name(params) [export] [public] [const] { body }`.
#[derive(Clone, Debug)]
pub struct FunctionDef {
    /// Explicit scope.
    pub scope: Option<(ScopeKind, Pos)>,
    /// Return type, if any.
    pub ret: Option<TypeExpr>,
    /// Name.
    pub name: Ident,
    /// Parameters.
    pub params: Vec<Param>,
    /// `export`: callable by transactions.
    pub export: bool,
    /// `public`: callable by other contracts.
    pub public: bool,
    /// `const`: reads state only.
    pub is_const: bool,
    /// Body.
    pub body: Vec<Stmt>,
}

/// A type as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TypeExpr {
    /// A name (built-in such as `uint64`, or user-defined, possibly dotted).
    Named(Vec<Ident>),
    /// `array<T>`.
    Array(Box<TypeExpr>, Pos),
    /// `map<K, V>`.
    Map(Box<TypeExpr>, Box<TypeExpr>, Pos),
    /// `scattered_array<T>` / `scattered_map<K, V>`: the array or map inside (allowed as the
    /// type of a state variable only).
    Scattered(Box<TypeExpr>, Pos),
}

impl TypeExpr {
    /// Where the type starts.
    pub fn pos(&self) -> Pos {
        match self {
            TypeExpr::Named(v) => v.first().map(|i| i.pos).unwrap_or_default(),
            TypeExpr::Array(_, p) | TypeExpr::Map(_, _, p) | TypeExpr::Scattered(_, p) => *p,
        }
    }
}

/// A statement.
#[derive(Clone, Debug)]
pub enum Stmt {
    /// `{ … }`
    Block(Vec<Stmt>, Pos),
    /// `if (c) { … } else …`
    If {
        /// Condition.
        cond: Expr,
        /// Then block.
        then: Vec<Stmt>,
        /// Else branch (a block, or a nested `if`).
        els: Option<Vec<Stmt>>,
        /// Position of `if`.
        pos: Pos,
    },
    /// `while (c) { … }`
    While {
        /// Condition.
        cond: Expr,
        /// Body.
        body: Vec<Stmt>,
        /// Position.
        pos: Pos,
    },
    /// `do { … } while (c);`
    DoWhile {
        /// Body.
        body: Vec<Stmt>,
        /// Condition.
        cond: Expr,
        /// Position.
        pos: Pos,
    },
    /// `for (init; cond; step) { … }`
    For {
        /// Declaration or expression.
        init: Option<Box<Stmt>>,
        /// Condition (always true when absent).
        cond: Option<Expr>,
        /// Step expression.
        step: Option<Expr>,
        /// Body.
        body: Vec<Stmt>,
        /// Position.
        pos: Pos,
    },
    /// `break;`
    Break(Pos),
    /// `continue;`
    Continue(Pos),
    /// `return [expr];`
    Return(Option<Expr>, Pos),
    /// A relay.
    Relay(Box<RelayStmt>),
    /// A local variable.
    Var(VarDecl),
    /// `expr;`
    Expr(Expr),
}

/// `[const] (Type|auto) name [= init]`.
#[derive(Clone, Debug)]
pub struct VarDecl {
    /// `const`.
    pub is_const: bool,
    /// Type, `None` for `auto`.
    pub ty: Option<TypeExpr>,
    /// Name.
    pub name: Ident,
    /// Initializer.
    pub init: Option<Expr>,
}

/// Where a relay goes.
#[derive(Clone, Debug)]
pub enum RelayTarget {
    /// `relay@expr`: an address or an integer scope key.
    Expr(Expr),
    /// `relay@shards`: every shard.
    Shards,
    /// `relay@global`: the global lane.
    Global,
    /// `relay@next`: the same target, next block.
    Next,
}

/// One parameter of a relay lambda.
#[derive(Clone, Debug)]
pub enum LambdaParam {
    /// `^name`: shorthand for `auto name = name`.
    Capture(Ident),
    /// `[const] (Type|auto) name = expr`.
    Decl {
        /// `const`.
        is_const: bool,
        /// Type, `None` for `auto`.
        ty: Option<TypeExpr>,
        /// Name.
        name: Ident,
        /// Value.
        value: Expr,
    },
}

/// What a relay runs.
#[derive(Clone, Debug)]
pub enum RelayCall {
    /// `name(args)`.
    Named {
        /// Function name.
        name: Ident,
        /// Arguments.
        args: Vec<Expr>,
    },
    /// `(params) [const] { body }`.
    Lambda {
        /// Parameters with their values.
        params: Vec<LambdaParam>,
        /// `const` body.
        is_const: bool,
        /// Body.
        body: Vec<Stmt>,
    },
}

/// `relay@target call`.
#[derive(Clone, Debug)]
pub struct RelayStmt {
    /// Target.
    pub target: RelayTarget,
    /// Call.
    pub call: RelayCall,
    /// Position of `relay`.
    pub pos: Pos,
}

/// Binary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Rem,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `<<`
    Shl,
    /// `>>`
    Shr,
    /// `<`
    Lt,
    /// `>`
    Gt,
    /// `<=`
    Le,
    /// `>=`
    Ge,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `&`
    BitAnd,
    /// `^`
    BitXor,
    /// `|`
    BitOr,
    /// `&&`
    And,
    /// `||`
    Or,
}

impl BinOp {
    /// How it is written.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Shl => "<<",
            BinOp::Shr => ">>",
            BinOp::Lt => "<",
            BinOp::Gt => ">",
            BinOp::Le => "<=",
            BinOp::Ge => ">=",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::BitAnd => "&",
            BinOp::BitXor => "^",
            BinOp::BitOr => "|",
            BinOp::And => "&&",
            BinOp::Or => "||",
        }
    }
}

/// Unary operators that produce a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnOp {
    /// `-x`
    Neg,
    /// `+x`
    Plus,
    /// `!x`
    Not,
    /// `~x`
    BitNot,
}

/// An expression with its position.
#[derive(Clone, Debug)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Where it starts (for binary operators: the operator).
    pub pos: Pos,
}

/// Expression kinds.
#[derive(Clone, Debug)]
pub enum ExprKind {
    /// `true` / `false`.
    Bool(bool),
    /// An integer literal; `negated` when written with a leading `-` (so `-2147483648`
    /// is a valid `int32`).
    Int {
        /// Magnitude.
        value: BigUint,
        /// Suffix.
        suffix: IntSuffix,
        /// Written with a leading minus.
        negated: bool,
    },
    /// A string literal.
    Str(String),
    /// `…:hash`.
    HashLit(String),
    /// `…:ed25519` or `…:contract`, tag included.
    AddrLit(String),
    /// A name.
    Name(String),
    /// A container type used as a value constructor (`array<T>()`).
    Type(TypeExpr),
    /// `op x`.
    Unary(UnOp, Box<Expr>),
    /// `x op y`.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `x = y`, `x += y`, … (`None` for plain `=`); has no value.
    Assign(Option<BinOp>, Box<Expr>, Box<Expr>),
    /// `++x`, `x++` (`true`), `--x`, `x--` (`false`); has no value.
    IncDec(bool, Box<Expr>),
    /// `c ? a : b`.
    Ternary(Box<Expr>, Box<Expr>, Box<Expr>),
    /// `f(args)`.
    Call(Box<Expr>, Vec<Expr>),
    /// `x[i]`.
    Index(Box<Expr>, Box<Expr>),
    /// `x.name`.
    Member(Box<Expr>, Ident),
    /// `deploy C(args)`: a new contract with imported contract `C`'s code (PREDA spec 5.9).
    Deploy(Ident, Vec<Expr>),
}
