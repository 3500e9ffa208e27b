//! The compiled form of a contract: a stack machine's instructions per function, plus the
//! tables they refer to (types, constants, places, state layout), and its binary encoding.
//!
//! Values live on an operand stack and in numbered local slots. A *place* names a location
//! to read, write or call a mutating method on: a root (a local or a state variable of a
//! scope) followed by member, array-index and map-key steps; index and key operands are
//! taken from the stack, in order, below any other operand.

use super::ast::ScopeKind;
use super::num::{IntTy, NumTy};
use super::types::{EnumDesc, IfaceFn, InterfaceDesc, StructDesc, Type, TypeTable};
use super::value::{self, Value};
use rexe_encode::{write_compact_size, DecodeError, Reader};

/// Index into [`Module::types`].
pub type TypeId = u16;

/// Where a place starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Root {
    /// A local slot.
    Local(u16),
    /// State variable `var` of `scope`.
    State(ScopeKind, u16),
}

/// One step from a place to a part of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    /// A structure member.
    Field(u16),
    /// An array element (a `uint32` operand; out of range aborts).
    Index,
    /// A map entry (a key operand): reads of a missing key give the default of the value
    /// type, writes insert it first.
    Key(TypeId),
}

/// A location.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Place {
    /// Start.
    pub root: Root,
    /// Path from the root.
    pub steps: Vec<Step>,
}

impl Place {
    /// Operands the place takes from the stack (one per index or key step).
    pub fn operands(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| !matches!(s, Step::Field(_)))
            .count()
    }
}

/// Built-in methods of arrays, maps, strings and addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `array.length()` -> uint32.
    Length,
    /// `array.set_length(uint32)`; new elements take the default of the element type.
    SetLength(TypeId),
    /// `array.push(v)`.
    Push,
    /// `array.pop()`.
    Pop,
    /// `map.has(k)` -> bool.
    Has,
    /// `map.erase(k)`.
    Erase,
    /// `string.set(s)`.
    StrSet,
    /// `string.append(s)`.
    StrAppend,
    /// `string.length()` -> uint16.
    StrLength,
    /// `address.is_user()`: a valid public key.
    IsUser,
    /// `address.is_contract()`: a deployed contract.
    IsContract,
    /// `bigint.div_uint32(uint32)` -> bigint: the quotient, rounded toward zero.
    DivUint32,
    /// `token.get_id()` -> uint64.
    TokenId,
    /// `token.get_amount()` -> bigint.
    TokenAmount,
    /// `token.deposit()`: moves the token into the wallet of the `@address` it runs for.
    Deposit,
}

impl Method {
    /// Arguments besides the receiver.
    pub fn arity(self) -> usize {
        match self {
            Method::SetLength(_)
            | Method::Push
            | Method::Has
            | Method::Erase
            | Method::StrSet
            | Method::StrAppend
            | Method::DivUint32 => 1,
            _ => 0,
        }
    }

    /// Whether it leaves a result on the stack.
    pub fn returns(self) -> bool {
        matches!(
            self,
            Method::Length
                | Method::Has
                | Method::StrLength
                | Method::IsUser
                | Method::IsContract
                | Method::DivUint32
                | Method::TokenId
                | Method::TokenAmount
        )
    }

    /// Whether it changes the receiver.
    pub fn mutates(self) -> bool {
        matches!(
            self,
            Method::SetLength(_)
                | Method::Push
                | Method::Pop
                | Method::Erase
                | Method::StrSet
                | Method::StrAppend
                | Method::Deposit
        )
    }
}

/// Binary arithmetic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arith {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Rem,
    /// `<<` (unsigned)
    Shl,
    /// `>>` (unsigned)
    Shr,
    /// `&` (unsigned)
    And,
    /// `|` (unsigned)
    Or,
    /// `^` (unsigned)
    Xor,
}

/// Comparisons (any two values of one comparable type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// Explicit conversions `T(x)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conv {
    /// Integer to integer, checked against the target range.
    Int(NumTy),
    /// Integer to decimal string.
    IntToString,
    /// bech32m (or hex) string to address; a malformed string aborts.
    StringToAddress,
    /// SHA-256 of the string's bytes.
    StringToHash,
    /// The hash's 32 bytes as an address.
    HashToAddress,
    /// Hex.
    HashToString,
    /// Big-endian `uint256`.
    HashToUint256,
    /// bech32m.
    AddressToString,
    /// `token.symbol_to_id(string)` -> uint64 (0 for a malformed symbol).
    SymbolToId,
    /// `token.id_to_symbol(uint64)` -> string (empty for an id no symbol makes).
    IdToSymbol,
}

/// Context functions (`__transaction.*`, `__block.*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtxFn {
    /// `__transaction.get_type()`.
    TxType,
    /// `__transaction.get_self_address()`.
    TxSelf,
    /// `__transaction.get_sender()`.
    TxSender,
    /// `__transaction.get_timestamp()`.
    TxTimestamp,
    /// `__transaction.get_signers()`.
    TxSigners,
    /// `__transaction.verify_signer(uint32)`.
    TxVerifyIndex,
    /// `__transaction.verify_signer(address)`.
    TxVerifyAddress,
    /// `__transaction.get_originated_shard_index()`.
    TxOriginShardIndex,
    /// `__transaction.get_originated_shard_order()`.
    TxOriginShardOrder,
    /// `__transaction.get_initiator_address()`.
    TxInitiator,
    /// `__block.get_height()`.
    BlockHeight,
    /// `__block.get_shard_index()`.
    BlockShardIndex,
    /// `__block.get_shard_order()`.
    BlockShardOrder,
    /// `__block.get_timestamp()`.
    BlockTimestamp,
    /// `__block.get_random_number()`.
    BlockRandom,
    /// `__block.get_miner_address()`.
    BlockMiner,
    /// `__event.get_user_state()`.
    EventUserState,
    /// `__transaction.get_supplied_tokens()`: the rxBTC a transaction attached (empty in
    /// relays).
    TxSuppliedTokens,
    /// `__id()`: the address of the contract whose code is running.
    ContractId,
}

impl CtxFn {
    /// Every context function, in tag order.
    pub const ALL: [CtxFn; 19] = [
        CtxFn::TxType,
        CtxFn::TxSelf,
        CtxFn::TxSender,
        CtxFn::TxTimestamp,
        CtxFn::TxSigners,
        CtxFn::TxVerifyIndex,
        CtxFn::TxVerifyAddress,
        CtxFn::TxOriginShardIndex,
        CtxFn::TxOriginShardOrder,
        CtxFn::TxInitiator,
        CtxFn::BlockHeight,
        CtxFn::BlockShardIndex,
        CtxFn::BlockShardOrder,
        CtxFn::BlockTimestamp,
        CtxFn::BlockRandom,
        CtxFn::BlockMiner,
        CtxFn::EventUserState,
        CtxFn::TxSuppliedTokens,
        CtxFn::ContractId,
    ];

    /// Operands it takes.
    pub fn arity(self) -> usize {
        matches!(self, CtxFn::TxVerifyIndex | CtxFn::TxVerifyAddress) as usize
    }
}

/// Where a relay goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayTo {
    /// The address on the stack (an `@address` function).
    Address,
    /// The integer key on the stack (a function of that integer scope).
    Uint(ScopeKind),
    /// Every shard (an `@shard` function).
    Shards,
    /// The global lane (an `@global` function).
    Global,
    /// The current target, next block.
    Next,
}

/// One instruction. Stack effects are in the verifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Instr {
    /// Push constant `i`.
    Const(u32),
    /// Push a bool.
    Bool(bool),
    /// Push the default value of a type.
    Default(TypeId),
    /// Drop the top.
    Pop,
    /// Duplicate the top.
    Dup,
    /// Duplicate the top `n` values.
    DupN(u8),
    /// Push a copy of a local.
    LoadLocal(u16),
    /// Pop into a local.
    StoreLocal(u16),
    /// Push a copy of the value at a place.
    Load(u32),
    /// Pop a value into a place.
    Store(u32),
    /// Call a method on a place.
    PlaceMethod(u32, Method),
    /// Call a method on a popped value.
    ValueMethod(Method),
    /// `src.transfer(dst, amount)` (`false`) or `src.transfer_all(dst)` (`true`) between two
    /// token places: pops the amount (when not all), then `dst`'s and `src`'s operands;
    /// pushes whether it moved.
    TokenMove(u32, u32, bool),
    /// Replace a struct with its member.
    Field(u16),
    /// Replace an array and an index with the element.
    Index,
    /// Replace a map and a key with the entry (or the default of the value type).
    Key(TypeId),
    /// Binary arithmetic.
    Arith(Arith, NumTy),
    /// `-x`.
    Neg(NumTy),
    /// `~x`.
    BitNot(IntTy),
    /// `!x`.
    Not,
    /// Compare two values.
    Cmp(CmpOp),
    /// Convert the top.
    Convert(Conv),
    /// Jump.
    Jump(u32),
    /// Pop a bool, jump if true.
    JumpIf(u32),
    /// Pop a bool, jump if false.
    JumpIfNot(u32),
    /// Call a function of this contract.
    Call(u16),
    /// Return from a function without a value.
    Ret,
    /// Return the top.
    RetVal,
    /// Emit a relay to a function of this contract.
    Relay(RelayTo, u16),
    /// Push a context value.
    Ctx(CtxFn),
    /// `__debug.print` of the top `n` values.
    Print(u8),
    /// `__event.push(id, data)` (0) or `__event.notify(id, data)` (1): pops the id and the
    /// data and records an event.
    Event(u8),
    /// Pop a bool; abort if false.
    Assert,
    /// Pop a message and a bool; abort with the message if false.
    AssertMsg,
    /// Abort (end of a function that must return a value).
    Trap,
    /// Call a function of an imported contract ([`Module::externs`] index) with the
    /// arguments on the stack.
    CallExt(u16),
    /// Call function `method` of interface `iface` ([`TypeTable::interfaces`] index) on the
    /// contract whose address is below the arguments.
    CallIface(u16, u16),
    /// Pop an address; push whether it is a contract implementing interface `iface`.
    IfaceValid(u16),
    /// `deploy A(…)` (PREDA spec 5.9): a new contract with the code of import `import` and
    /// fresh state, its `on_deploy` run with the `n` arguments on the stack; pushes its
    /// address. Only in non-const global functions.
    Deploy(u16, u8),
    /// Call an imported contract's function ([`Module::externs`] index) on the contract
    /// whose address is below the arguments: the import itself, or one deployed from it.
    CallAt(u16),
    /// Pop an address; push whether it is import `import` or a contract deployed from it.
    ContractValid(u16),
    /// `__mint(id, amount)`: pops the amount and the id, pushes the token (empty without
    /// the right to mint).
    Mint,
    /// `__burn(t)` of the token at a place (pops its operands): pushes whether it burned.
    Burn(u32),
    /// `__burn(t)` of a popped token: pushes whether it burned.
    BurnValue,
}

/// A contract this one imports (PREDA spec 5.7.1): explicitly, or through another import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Import {
    /// The name the source uses for it: its alias, or its contract name.
    pub alias: String,
    /// Its address, bound when this contract was compiled for deployment.
    pub address: [u8; 32],
    /// Named by an `import` directive of this contract (else imported by an import).
    pub explicit: bool,
    /// Where its structures are in this module's table (by their index in its own).
    pub structs: Vec<u16>,
    /// Where its enumerations are (by their index in its own).
    pub enums: Vec<u16>,
    /// Where its interfaces are (by their index in its own).
    pub interfaces: Vec<u16>,
}

/// A public function of an imported contract that this module calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extern {
    /// The contract ([`Module::imports`] index).
    pub import: u16,
    /// The function's index in that contract.
    pub func: u16,
    /// Its name (for messages).
    pub name: String,
    /// Its scope.
    pub scope: ScopeKind,
    /// Whether it is const.
    pub is_const: bool,
    /// Parameter types, in this module's types.
    pub params: Vec<TypeId>,
    /// Return type, in this module's types.
    pub ret: Option<TypeId>,
}

/// What a function is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FnKind {
    /// A named function.
    Normal,
    /// The body of a relay lambda.
    Lambda,
    /// `on_deploy`.
    OnDeploy,
    /// `on_scaleout`.
    OnScaleout,
}

/// A compiled function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Function {
    /// Name (lambdas: `<relay@line:col>`).
    pub name: String,
    /// Scope.
    pub scope: ScopeKind,
    /// Parameters (the first local slots).
    pub params: Vec<(String, TypeId)>,
    /// Return type.
    pub ret: Option<TypeId>,
    /// Callable by transactions.
    pub export: bool,
    /// Callable by other contracts.
    pub public: bool,
    /// Reads state only.
    pub is_const: bool,
    /// Purpose.
    pub kind: FnKind,
    /// Local slots (parameters included).
    pub locals: u16,
    /// Instructions.
    pub code: Vec<Instr>,
}

/// A compiled contract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    /// Contract name.
    pub name: String,
    /// Types referred to by [`TypeId`].
    pub types: Vec<Type>,
    /// Structures and enumerations.
    pub table: TypeTable,
    /// Constants with their types.
    pub consts: Vec<(TypeId, Value)>,
    /// Places.
    pub places: Vec<Place>,
    /// State variables per scope (indexed by [`ScopeKind::tag`]), in declaration order.
    pub state: Vec<Vec<(String, TypeId)>>,
    /// Functions.
    pub functions: Vec<Function>,
    /// Imported contracts (explicit ones first, in source order).
    pub imports: Vec<Import>,
    /// Functions of imported contracts that the code calls.
    pub externs: Vec<Extern>,
    /// Interfaces the contract implements: the interface ([`TypeTable::interfaces`] index)
    /// and, for each of its functions, the function that implements it.
    pub implements: Vec<(u16, Vec<u16>)>,
}

impl Module {
    /// The type with id `t` (callers have verified the module).
    pub fn ty(&self, t: TypeId) -> &Type {
        &self.types[t as usize]
    }

    /// State variables of `scope`.
    pub fn state_of(&self, scope: ScopeKind) -> &[(String, TypeId)] {
        self.state
            .get(scope.tag() as usize)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The function a transaction or a tool names: `name` when one function has that name,
    /// or one overload's [`Module::signature`] (`name(T1,T2)`, whitespace ignored).
    pub fn function(&self, name: &str) -> Option<(u16, &Function)> {
        if name.contains('(') {
            let want: String = name.chars().filter(|c| !c.is_whitespace()).collect();
            let base = want.split('(').next().unwrap_or("");
            return self
                .overloads(base)
                .into_iter()
                .find(|(_, f)| self.signature(f) == want);
        }
        match self.overloads(name).as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }

    /// Every named function called `name` (several when it is overloaded).
    pub fn overloads(&self, name: &str) -> Vec<(u16, &Function)> {
        self.functions
            .iter()
            .enumerate()
            .filter(|(_, f)| f.name == name && f.kind != FnKind::Lambda)
            .map(|(i, f)| (i as u16, f))
            .collect()
    }

    /// `name(T1,T2)`: the function's name and parameter types, without spaces.
    pub fn signature(&self, f: &Function) -> String {
        let types: Vec<String> = f
            .params
            .iter()
            .map(|(_, t)| {
                let n = self.table.name(self.ty(*t));
                n.chars().filter(|c| !c.is_whitespace()).collect()
            })
            .collect();
        format!("{}({})", f.name, types.join(","))
    }

    /// Parameter types of function `f`.
    pub fn param_types(&self, f: &Function) -> Vec<Type> {
        f.params.iter().map(|(_, t)| self.ty(*t).clone()).collect()
    }

    /// Whether any state of `scope` is declared.
    pub fn has_state(&self, scope: ScopeKind) -> bool {
        !self.state_of(scope).is_empty()
    }
}

// ---- binary encoding -------------------------------------------------------------------

/// Limits on decoded modules, so hostile bytes cannot allocate without bound.
const MAX_ITEMS: usize = 1 << 16;

fn put_str(out: &mut Vec<u8>, s: &str) {
    write_compact_size(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn get_str(r: &mut Reader<'_>) -> Result<String, DecodeError> {
    let n = r.length(1)?;
    std::str::from_utf8(r.take(n)?)
        .map(str::to_string)
        .map_err(|_| DecodeError::Invalid("utf-8"))
}

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn get_u16(r: &mut Reader<'_>) -> Result<u16, DecodeError> {
    Ok(u16::from_le_bytes(r.array()?))
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn get_u32(r: &mut Reader<'_>) -> Result<u32, DecodeError> {
    Ok(u32::from_le_bytes(r.array()?))
}

fn get_u8(r: &mut Reader<'_>) -> Result<u8, DecodeError> {
    Ok(r.array::<1>()?[0])
}

fn get_bool(r: &mut Reader<'_>) -> Result<bool, DecodeError> {
    match get_u8(r)? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(DecodeError::Invalid("bool")),
    }
}

fn get_len(r: &mut Reader<'_>, min: usize) -> Result<usize, DecodeError> {
    let n = r.length(min)?;
    if n > MAX_ITEMS {
        return Err(DecodeError::Invalid("too many items"));
    }
    Ok(n)
}

fn put_int_ty(out: &mut Vec<u8>, t: IntTy) {
    out.push(t.signed as u8);
    put_u16(out, t.bits);
}

fn get_int_ty(r: &mut Reader<'_>) -> Result<IntTy, DecodeError> {
    let signed = get_bool(r)?;
    let bits = get_u16(r)?;
    if !IntTy::valid_bits(bits) {
        return Err(DecodeError::Invalid("integer width"));
    }
    Ok(IntTy { signed, bits })
}

fn put_num_ty(out: &mut Vec<u8>, t: NumTy) {
    match t {
        NumTy::Big => out.push(0),
        NumTy::Fixed(i) => {
            out.push(1);
            put_int_ty(out, i);
        }
    }
}

fn get_num_ty(r: &mut Reader<'_>) -> Result<NumTy, DecodeError> {
    match get_u8(r)? {
        0 => Ok(NumTy::Big),
        1 => Ok(NumTy::Fixed(get_int_ty(r)?)),
        _ => Err(DecodeError::Invalid("numeric type")),
    }
}

fn put_type(out: &mut Vec<u8>, t: &Type) {
    match t {
        Type::Bool => out.push(0),
        Type::Int(i) => {
            out.push(1);
            put_int_ty(out, *i);
        }
        Type::BigInt => out.push(2),
        Type::Address => out.push(3),
        Type::Hash => out.push(4),
        Type::Blob => out.push(5),
        Type::String => out.push(6),
        Type::Enum(i) => {
            out.push(7);
            put_u16(out, *i);
        }
        Type::Struct(i) => {
            out.push(8);
            put_u16(out, *i);
        }
        Type::Array(e) => {
            out.push(9);
            put_type(out, e);
        }
        Type::Map(k, v) => {
            out.push(10);
            put_type(out, k);
            put_type(out, v);
        }
        Type::Token => out.push(11),
        Type::Interface(i) => {
            out.push(12);
            put_u16(out, *i);
        }
        Type::Contract(c) => {
            out.push(13);
            put_str(out, &c.name);
            out.extend_from_slice(&c.address);
        }
    }
}

fn get_type(r: &mut Reader<'_>, depth: usize) -> Result<Type, DecodeError> {
    if depth > super::types::MAX_TYPE_DEPTH {
        return Err(DecodeError::Invalid("type nesting"));
    }
    Ok(match get_u8(r)? {
        0 => Type::Bool,
        1 => Type::Int(get_int_ty(r)?),
        2 => Type::BigInt,
        3 => Type::Address,
        4 => Type::Hash,
        5 => Type::Blob,
        6 => Type::String,
        7 => Type::Enum(get_u16(r)?),
        8 => Type::Struct(get_u16(r)?),
        9 => Type::Array(Box::new(get_type(r, depth + 1)?)),
        10 => Type::Map(
            Box::new(get_type(r, depth + 1)?),
            Box::new(get_type(r, depth + 1)?),
        ),
        11 => Type::Token,
        12 => Type::Interface(get_u16(r)?),
        13 => Type::Contract(Box::new(super::types::ContractRef {
            name: get_str(r)?,
            address: r.array()?,
        })),
        tag => return Err(DecodeError::UnknownTag { what: "type", tag }),
    })
}

fn put_scope(out: &mut Vec<u8>, s: ScopeKind) {
    out.push(s.tag());
}

fn get_scope(r: &mut Reader<'_>) -> Result<ScopeKind, DecodeError> {
    let t = get_u8(r)?;
    ScopeKind::from_tag(t).ok_or(DecodeError::UnknownTag {
        what: "scope",
        tag: t,
    })
}

fn put_method(out: &mut Vec<u8>, m: Method) {
    match m {
        Method::Length => out.push(0),
        Method::SetLength(t) => {
            out.push(1);
            put_u16(out, t);
        }
        Method::Push => out.push(2),
        Method::Pop => out.push(3),
        Method::Has => out.push(4),
        Method::Erase => out.push(5),
        Method::StrSet => out.push(6),
        Method::StrAppend => out.push(7),
        Method::StrLength => out.push(8),
        Method::IsUser => out.push(9),
        Method::IsContract => out.push(10),
        Method::DivUint32 => out.push(11),
        Method::TokenId => out.push(12),
        Method::TokenAmount => out.push(13),
        Method::Deposit => out.push(14),
    }
}

fn get_method(r: &mut Reader<'_>) -> Result<Method, DecodeError> {
    Ok(match get_u8(r)? {
        0 => Method::Length,
        1 => Method::SetLength(get_u16(r)?),
        2 => Method::Push,
        3 => Method::Pop,
        4 => Method::Has,
        5 => Method::Erase,
        6 => Method::StrSet,
        7 => Method::StrAppend,
        8 => Method::StrLength,
        9 => Method::IsUser,
        10 => Method::IsContract,
        11 => Method::DivUint32,
        12 => Method::TokenId,
        13 => Method::TokenAmount,
        14 => Method::Deposit,
        tag => {
            return Err(DecodeError::UnknownTag {
                what: "method",
                tag,
            })
        }
    })
}

const ARITH: [Arith; 10] = [
    Arith::Add,
    Arith::Sub,
    Arith::Mul,
    Arith::Div,
    Arith::Rem,
    Arith::Shl,
    Arith::Shr,
    Arith::And,
    Arith::Or,
    Arith::Xor,
];
const CMP: [CmpOp; 6] = [
    CmpOp::Eq,
    CmpOp::Ne,
    CmpOp::Lt,
    CmpOp::Le,
    CmpOp::Gt,
    CmpOp::Ge,
];

fn put_conv(out: &mut Vec<u8>, c: Conv) {
    match c {
        Conv::Int(t) => {
            out.push(0);
            put_num_ty(out, t);
        }
        Conv::IntToString => out.push(1),
        Conv::StringToAddress => out.push(2),
        Conv::StringToHash => out.push(3),
        Conv::HashToAddress => out.push(4),
        Conv::HashToString => out.push(5),
        Conv::HashToUint256 => out.push(6),
        Conv::AddressToString => out.push(7),
        Conv::SymbolToId => out.push(8),
        Conv::IdToSymbol => out.push(9),
    }
}

fn get_conv(r: &mut Reader<'_>) -> Result<Conv, DecodeError> {
    Ok(match get_u8(r)? {
        0 => Conv::Int(get_num_ty(r)?),
        1 => Conv::IntToString,
        2 => Conv::StringToAddress,
        3 => Conv::StringToHash,
        4 => Conv::HashToAddress,
        5 => Conv::HashToString,
        6 => Conv::HashToUint256,
        7 => Conv::AddressToString,
        8 => Conv::SymbolToId,
        9 => Conv::IdToSymbol,
        tag => {
            return Err(DecodeError::UnknownTag {
                what: "conversion",
                tag,
            })
        }
    })
}

fn put_relay_to(out: &mut Vec<u8>, t: RelayTo) {
    match t {
        RelayTo::Address => out.push(0),
        RelayTo::Uint(s) => {
            out.push(1);
            put_scope(out, s);
        }
        RelayTo::Shards => out.push(2),
        RelayTo::Global => out.push(3),
        RelayTo::Next => out.push(4),
    }
}

fn get_relay_to(r: &mut Reader<'_>) -> Result<RelayTo, DecodeError> {
    Ok(match get_u8(r)? {
        0 => RelayTo::Address,
        1 => RelayTo::Uint(get_scope(r)?),
        2 => RelayTo::Shards,
        3 => RelayTo::Global,
        4 => RelayTo::Next,
        tag => {
            return Err(DecodeError::UnknownTag {
                what: "relay target",
                tag,
            })
        }
    })
}

fn put_instr(out: &mut Vec<u8>, i: &Instr) {
    match *i {
        Instr::Const(c) => {
            out.push(0);
            put_u32(out, c);
        }
        Instr::Bool(b) => {
            out.push(1);
            out.push(b as u8);
        }
        Instr::Default(t) => {
            out.push(2);
            put_u16(out, t);
        }
        Instr::Pop => out.push(3),
        Instr::Dup => out.push(4),
        Instr::DupN(n) => {
            out.push(5);
            out.push(n);
        }
        Instr::LoadLocal(s) => {
            out.push(6);
            put_u16(out, s);
        }
        Instr::StoreLocal(s) => {
            out.push(7);
            put_u16(out, s);
        }
        Instr::Load(p) => {
            out.push(8);
            put_u32(out, p);
        }
        Instr::Store(p) => {
            out.push(9);
            put_u32(out, p);
        }
        Instr::PlaceMethod(p, m) => {
            out.push(10);
            put_u32(out, p);
            put_method(out, m);
        }
        Instr::ValueMethod(m) => {
            out.push(11);
            put_method(out, m);
        }
        Instr::Field(f) => {
            out.push(12);
            put_u16(out, f);
        }
        Instr::Index => out.push(13),
        Instr::Key(t) => {
            out.push(14);
            put_u16(out, t);
        }
        Instr::Arith(a, t) => {
            out.push(15);
            out.push(ARITH.iter().position(|x| *x == a).unwrap_or(0) as u8);
            put_num_ty(out, t);
        }
        Instr::Neg(t) => {
            out.push(16);
            put_num_ty(out, t);
        }
        Instr::BitNot(t) => {
            out.push(17);
            put_int_ty(out, t);
        }
        Instr::Not => out.push(18),
        Instr::Cmp(c) => {
            out.push(19);
            out.push(CMP.iter().position(|x| *x == c).unwrap_or(0) as u8);
        }
        Instr::Convert(c) => {
            out.push(20);
            put_conv(out, c);
        }
        Instr::Jump(t) => {
            out.push(21);
            put_u32(out, t);
        }
        Instr::JumpIf(t) => {
            out.push(22);
            put_u32(out, t);
        }
        Instr::JumpIfNot(t) => {
            out.push(23);
            put_u32(out, t);
        }
        Instr::Call(f) => {
            out.push(24);
            put_u16(out, f);
        }
        Instr::Ret => out.push(25),
        Instr::RetVal => out.push(26),
        Instr::Relay(t, f) => {
            out.push(27);
            put_relay_to(out, t);
            put_u16(out, f);
        }
        Instr::Ctx(c) => {
            out.push(28);
            out.push(CtxFn::ALL.iter().position(|x| *x == c).unwrap_or(0) as u8);
        }
        Instr::Print(n) => {
            out.push(29);
            out.push(n);
        }
        Instr::Assert => out.push(30),
        Instr::AssertMsg => out.push(31),
        Instr::Trap => out.push(32),
        Instr::Event(k) => {
            out.push(33);
            out.push(k);
        }
        Instr::TokenMove(src, dst, all) => {
            out.push(34);
            put_u32(out, src);
            put_u32(out, dst);
            out.push(all as u8);
        }
        Instr::CallExt(e) => {
            out.push(35);
            put_u16(out, e);
        }
        Instr::CallIface(i, m) => {
            out.push(36);
            put_u16(out, i);
            put_u16(out, m);
        }
        Instr::IfaceValid(i) => {
            out.push(37);
            put_u16(out, i);
        }
        Instr::Deploy(i, n) => {
            out.push(38);
            put_u16(out, i);
            out.push(n);
        }
        Instr::CallAt(e) => {
            out.push(39);
            put_u16(out, e);
        }
        Instr::ContractValid(i) => {
            out.push(40);
            put_u16(out, i);
        }
        Instr::Mint => out.push(41),
        Instr::Burn(p) => {
            out.push(42);
            put_u32(out, p);
        }
        Instr::BurnValue => out.push(43),
    }
}

fn get_instr(r: &mut Reader<'_>) -> Result<Instr, DecodeError> {
    Ok(match get_u8(r)? {
        0 => Instr::Const(get_u32(r)?),
        1 => Instr::Bool(get_bool(r)?),
        2 => Instr::Default(get_u16(r)?),
        3 => Instr::Pop,
        4 => Instr::Dup,
        5 => Instr::DupN(get_u8(r)?),
        6 => Instr::LoadLocal(get_u16(r)?),
        7 => Instr::StoreLocal(get_u16(r)?),
        8 => Instr::Load(get_u32(r)?),
        9 => Instr::Store(get_u32(r)?),
        10 => Instr::PlaceMethod(get_u32(r)?, get_method(r)?),
        11 => Instr::ValueMethod(get_method(r)?),
        12 => Instr::Field(get_u16(r)?),
        13 => Instr::Index,
        14 => Instr::Key(get_u16(r)?),
        15 => {
            let a = *ARITH
                .get(get_u8(r)? as usize)
                .ok_or(DecodeError::Invalid("arithmetic op"))?;
            Instr::Arith(a, get_num_ty(r)?)
        }
        16 => Instr::Neg(get_num_ty(r)?),
        17 => Instr::BitNot(get_int_ty(r)?),
        18 => Instr::Not,
        19 => Instr::Cmp(
            *CMP.get(get_u8(r)? as usize)
                .ok_or(DecodeError::Invalid("comparison"))?,
        ),
        20 => Instr::Convert(get_conv(r)?),
        21 => Instr::Jump(get_u32(r)?),
        22 => Instr::JumpIf(get_u32(r)?),
        23 => Instr::JumpIfNot(get_u32(r)?),
        24 => Instr::Call(get_u16(r)?),
        25 => Instr::Ret,
        26 => Instr::RetVal,
        27 => Instr::Relay(get_relay_to(r)?, get_u16(r)?),
        28 => Instr::Ctx(
            *CtxFn::ALL
                .get(get_u8(r)? as usize)
                .ok_or(DecodeError::Invalid("context function"))?,
        ),
        29 => Instr::Print(get_u8(r)?),
        30 => Instr::Assert,
        31 => Instr::AssertMsg,
        32 => Instr::Trap,
        33 => match get_u8(r)? {
            k @ (0 | 1) => Instr::Event(k),
            _ => return Err(DecodeError::Invalid("event kind")),
        },
        34 => Instr::TokenMove(get_u32(r)?, get_u32(r)?, get_bool(r)?),
        35 => Instr::CallExt(get_u16(r)?),
        36 => Instr::CallIface(get_u16(r)?, get_u16(r)?),
        37 => Instr::IfaceValid(get_u16(r)?),
        38 => Instr::Deploy(get_u16(r)?, get_u8(r)?),
        39 => Instr::CallAt(get_u16(r)?),
        40 => Instr::ContractValid(get_u16(r)?),
        41 => Instr::Mint,
        42 => Instr::Burn(get_u32(r)?),
        43 => Instr::BurnValue,
        tag => {
            return Err(DecodeError::UnknownTag {
                what: "instruction",
                tag,
            })
        }
    })
}

const FN_KINDS: [FnKind; 4] = [
    FnKind::Normal,
    FnKind::Lambda,
    FnKind::OnDeploy,
    FnKind::OnScaleout,
];

impl Module {
    /// The binary encoding (for tooling and the fuzzer; nodes compile from source).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_str(&mut out, &self.name);
        write_compact_size(&mut out, self.types.len() as u64);
        for t in &self.types {
            put_type(&mut out, t);
        }
        write_compact_size(&mut out, self.table.structs.len() as u64);
        for s in &self.table.structs {
            put_str(&mut out, &s.name);
            write_compact_size(&mut out, s.fields.len() as u64);
            for (n, t) in &s.fields {
                put_str(&mut out, n);
                put_type(&mut out, t);
            }
        }
        write_compact_size(&mut out, self.table.enums.len() as u64);
        for e in &self.table.enums {
            put_str(&mut out, &e.name);
            write_compact_size(&mut out, e.variants.len() as u64);
            for v in &e.variants {
                put_str(&mut out, v);
            }
        }
        write_compact_size(&mut out, self.consts.len() as u64);
        for (t, v) in &self.consts {
            put_u16(&mut out, *t);
            let ty = self.types.get(*t as usize).cloned().unwrap_or(Type::Bool);
            let bytes = value::to_bytes(v, &ty, &self.table).unwrap_or_default();
            rexe_encode::Encode::encode(&bytes, &mut out);
        }
        write_compact_size(&mut out, self.places.len() as u64);
        for p in &self.places {
            match p.root {
                Root::Local(s) => {
                    out.push(0);
                    put_u16(&mut out, s);
                }
                Root::State(sc, v) => {
                    out.push(1);
                    put_scope(&mut out, sc);
                    put_u16(&mut out, v);
                }
            }
            write_compact_size(&mut out, p.steps.len() as u64);
            for s in &p.steps {
                match s {
                    Step::Field(f) => {
                        out.push(0);
                        put_u16(&mut out, *f);
                    }
                    Step::Index => out.push(1),
                    Step::Key(t) => {
                        out.push(2);
                        put_u16(&mut out, *t);
                    }
                }
            }
        }
        write_compact_size(&mut out, self.state.len() as u64);
        for vars in &self.state {
            write_compact_size(&mut out, vars.len() as u64);
            for (n, t) in vars {
                put_str(&mut out, n);
                put_u16(&mut out, *t);
            }
        }
        write_compact_size(&mut out, self.functions.len() as u64);
        for f in &self.functions {
            put_str(&mut out, &f.name);
            put_scope(&mut out, f.scope);
            write_compact_size(&mut out, f.params.len() as u64);
            for (n, t) in &f.params {
                put_str(&mut out, n);
                put_u16(&mut out, *t);
            }
            match f.ret {
                None => out.push(0),
                Some(t) => {
                    out.push(1);
                    put_u16(&mut out, t);
                }
            }
            out.push(f.export as u8);
            out.push(f.public as u8);
            out.push(f.is_const as u8);
            out.push(FN_KINDS.iter().position(|k| *k == f.kind).unwrap_or(0) as u8);
            put_u16(&mut out, f.locals);
            write_compact_size(&mut out, f.code.len() as u64);
            for i in &f.code {
                put_instr(&mut out, i);
            }
        }
        write_compact_size(&mut out, self.table.interfaces.len() as u64);
        for d in &self.table.interfaces {
            put_str(&mut out, &d.name);
            put_str(&mut out, &d.key);
            write_compact_size(&mut out, d.functions.len() as u64);
            for f in &d.functions {
                put_str(&mut out, &f.name);
                put_scope(&mut out, f.scope);
                out.push(f.is_const as u8);
                write_compact_size(&mut out, f.params.len() as u64);
                for t in &f.params {
                    put_type(&mut out, t);
                }
                match &f.ret {
                    None => out.push(0),
                    Some(t) => {
                        out.push(1);
                        put_type(&mut out, t);
                    }
                }
            }
        }
        write_compact_size(&mut out, self.imports.len() as u64);
        for i in &self.imports {
            put_str(&mut out, &i.alias);
            out.extend_from_slice(&i.address);
            out.push(i.explicit as u8);
            for list in [&i.structs, &i.enums, &i.interfaces] {
                write_compact_size(&mut out, list.len() as u64);
                for x in list {
                    put_u16(&mut out, *x);
                }
            }
        }
        write_compact_size(&mut out, self.externs.len() as u64);
        for e in &self.externs {
            put_u16(&mut out, e.import);
            put_u16(&mut out, e.func);
            put_str(&mut out, &e.name);
            put_scope(&mut out, e.scope);
            out.push(e.is_const as u8);
            write_compact_size(&mut out, e.params.len() as u64);
            for t in &e.params {
                put_u16(&mut out, *t);
            }
            match e.ret {
                None => out.push(0),
                Some(t) => {
                    out.push(1);
                    put_u16(&mut out, t);
                }
            }
        }
        write_compact_size(&mut out, self.implements.len() as u64);
        for (i, fs) in &self.implements {
            put_u16(&mut out, *i);
            write_compact_size(&mut out, fs.len() as u64);
            for f in fs {
                put_u16(&mut out, *f);
            }
        }
        out
    }

    /// Decodes [`Module::encode`] output. The result still needs
    /// [`super::verify::verify`] before it may run.
    pub fn decode(bytes: &[u8]) -> Result<Module, DecodeError> {
        let mut r = Reader::new(bytes);
        let name = get_str(&mut r)?;
        let n = get_len(&mut r, 1)?;
        let mut types = Vec::with_capacity(n);
        for _ in 0..n {
            types.push(get_type(&mut r, 0)?);
        }
        let mut table = TypeTable::default();
        for _ in 0..get_len(&mut r, 2)? {
            let name = get_str(&mut r)?;
            let mut fields = Vec::new();
            for _ in 0..get_len(&mut r, 2)? {
                fields.push((get_str(&mut r)?, get_type(&mut r, 0)?));
            }
            table.structs.push(StructDesc { name, fields });
        }
        for _ in 0..get_len(&mut r, 2)? {
            let name = get_str(&mut r)?;
            let mut variants = Vec::new();
            for _ in 0..get_len(&mut r, 1)? {
                variants.push(get_str(&mut r)?);
            }
            table.enums.push(EnumDesc { name, variants });
        }
        let mut consts = Vec::new();
        for _ in 0..get_len(&mut r, 3)? {
            let t = get_u16(&mut r)?;
            let bytes = <Vec<u8> as rexe_encode::Decode>::decode(&mut r)?;
            let ty = types
                .get(t as usize)
                .ok_or(DecodeError::Invalid("constant type"))?;
            if !table.is_valid(ty) {
                return Err(DecodeError::Invalid("constant type"));
            }
            consts.push((t, value::from_bytes(&bytes, ty, &table)?));
        }
        let mut places = Vec::new();
        for _ in 0..get_len(&mut r, 2)? {
            let root = match get_u8(&mut r)? {
                0 => Root::Local(get_u16(&mut r)?),
                1 => Root::State(get_scope(&mut r)?, get_u16(&mut r)?),
                tag => {
                    return Err(DecodeError::UnknownTag {
                        what: "place root",
                        tag,
                    })
                }
            };
            let mut steps = Vec::new();
            for _ in 0..get_len(&mut r, 1)? {
                steps.push(match get_u8(&mut r)? {
                    0 => Step::Field(get_u16(&mut r)?),
                    1 => Step::Index,
                    2 => Step::Key(get_u16(&mut r)?),
                    tag => {
                        return Err(DecodeError::UnknownTag {
                            what: "place step",
                            tag,
                        })
                    }
                });
            }
            places.push(Place { root, steps });
        }
        let mut state = Vec::new();
        for _ in 0..get_len(&mut r, 1)? {
            let mut vars = Vec::new();
            for _ in 0..get_len(&mut r, 3)? {
                vars.push((get_str(&mut r)?, get_u16(&mut r)?));
            }
            state.push(vars);
        }
        let mut functions = Vec::new();
        for _ in 0..get_len(&mut r, 8)? {
            let name = get_str(&mut r)?;
            let scope = get_scope(&mut r)?;
            let mut params = Vec::new();
            for _ in 0..get_len(&mut r, 3)? {
                params.push((get_str(&mut r)?, get_u16(&mut r)?));
            }
            let ret = match get_u8(&mut r)? {
                0 => None,
                1 => Some(get_u16(&mut r)?),
                _ => return Err(DecodeError::Invalid("return type flag")),
            };
            let export = get_bool(&mut r)?;
            let public = get_bool(&mut r)?;
            let is_const = get_bool(&mut r)?;
            let kind = *FN_KINDS
                .get(get_u8(&mut r)? as usize)
                .ok_or(DecodeError::Invalid("function kind"))?;
            let locals = get_u16(&mut r)?;
            let mut code = Vec::new();
            for _ in 0..get_len(&mut r, 1)? {
                code.push(get_instr(&mut r)?);
            }
            functions.push(Function {
                name,
                scope,
                params,
                ret,
                export,
                public,
                is_const,
                kind,
                locals,
                code,
            });
        }
        for _ in 0..get_len(&mut r, 3)? {
            let name = get_str(&mut r)?;
            let key = get_str(&mut r)?;
            let mut functions = Vec::new();
            for _ in 0..get_len(&mut r, 4)? {
                let name = get_str(&mut r)?;
                let scope = get_scope(&mut r)?;
                let is_const = get_bool(&mut r)?;
                let mut params = Vec::new();
                for _ in 0..get_len(&mut r, 1)? {
                    params.push(get_type(&mut r, 0)?);
                }
                let ret = match get_u8(&mut r)? {
                    0 => None,
                    1 => Some(get_type(&mut r, 0)?),
                    _ => return Err(DecodeError::Invalid("return type flag")),
                };
                functions.push(IfaceFn {
                    name,
                    scope,
                    is_const,
                    params,
                    ret,
                });
            }
            table.interfaces.push(InterfaceDesc {
                name,
                key,
                functions,
            });
        }
        let mut imports = Vec::new();
        for _ in 0..get_len(&mut r, 36)? {
            let alias = get_str(&mut r)?;
            let address: [u8; 32] = r.array()?;
            let explicit = get_bool(&mut r)?;
            let mut lists = [Vec::new(), Vec::new(), Vec::new()];
            for list in &mut lists {
                for _ in 0..get_len(&mut r, 2)? {
                    list.push(get_u16(&mut r)?);
                }
            }
            let [structs, enums, interfaces] = lists;
            imports.push(Import {
                alias,
                address,
                explicit,
                structs,
                enums,
                interfaces,
            });
        }
        let mut externs = Vec::new();
        for _ in 0..get_len(&mut r, 9)? {
            let import = get_u16(&mut r)?;
            let func = get_u16(&mut r)?;
            let name = get_str(&mut r)?;
            let scope = get_scope(&mut r)?;
            let is_const = get_bool(&mut r)?;
            let mut params = Vec::new();
            for _ in 0..get_len(&mut r, 2)? {
                params.push(get_u16(&mut r)?);
            }
            let ret = match get_u8(&mut r)? {
                0 => None,
                1 => Some(get_u16(&mut r)?),
                _ => return Err(DecodeError::Invalid("return type flag")),
            };
            externs.push(Extern {
                import,
                func,
                name,
                scope,
                is_const,
                params,
                ret,
            });
        }
        let mut implements = Vec::new();
        for _ in 0..get_len(&mut r, 3)? {
            let i = get_u16(&mut r)?;
            let mut fs = Vec::new();
            for _ in 0..get_len(&mut r, 2)? {
                fs.push(get_u16(&mut r)?);
            }
            implements.push((i, fs));
        }
        r.finish()?;
        Ok(Module {
            name,
            types,
            table,
            consts,
            places,
            state,
            functions,
            imports,
            externs,
            implements,
        })
    }
}
