//! Types shared by the compiler and the VM: the built-in value types, containers, and the
//! module's structure and enumeration definitions ([`TypeTable`]).

use super::num::{IntTy, NumTy};

/// A type.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Type {
    /// `bool`.
    Bool,
    /// `intN` / `uintN`.
    Int(IntTy),
    /// `bigint`.
    BigInt,
    /// `address`.
    Address,
    /// `hash`.
    Hash,
    /// `blob`: opaque bytes.
    Blob,
    /// `string`.
    String,
    /// An enumeration (index into [`TypeTable::enums`]).
    Enum(u16),
    /// A structure (index into [`TypeTable::structs`]).
    Struct(u16),
    /// `array<T>`.
    Array(Box<Type>),
    /// `map<K, V>`.
    Map(Box<Type>, Box<Type>),
    /// `token`: an amount of one asset (PREDA spec 2.3.3): rxBTC, or an asset a contract mints.
    Token,
    /// An interface (index into [`TypeTable::interfaces`]): the address of a contract that
    /// is expected to implement it (PREDA spec 5.8).
    Interface(u16),
    /// A contract type (PREDA spec 5.9): the address of the named contract `A`, or of a
    /// contract deployed from it with `deploy A(…)`. It names the contract by address, so
    /// it means the same in every module that sees it.
    Contract(Box<ContractRef>),
}

/// The named contract a contract type refers to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContractRef {
    /// The contract's name in its source.
    pub name: String,
    /// Its address.
    pub address: [u8; 32],
}

/// A structure definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StructDesc {
    /// Name.
    pub name: String,
    /// Members in order.
    pub fields: Vec<(String, Type)>,
}

/// An enumeration definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnumDesc {
    /// Name.
    pub name: String,
    /// Enumerators in order.
    pub variants: Vec<String>,
}

/// A function of an interface (PREDA spec 5.8.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IfaceFn {
    /// Name.
    pub name: String,
    /// Scope.
    pub scope: super::ast::ScopeKind,
    /// Reads state only.
    pub is_const: bool,
    /// Parameter types.
    pub params: Vec<Type>,
    /// Return type.
    pub ret: Option<Type>,
}

/// An interface definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceDesc {
    /// Name as the module writes it (`I`, or `Alias.I` when imported).
    pub name: String,
    /// What identifies it across contracts: the defining contract's name, the interface's
    /// name and its functions' signatures. A contract is called through it only when it
    /// declared `implements` of an interface with the same key.
    pub key: String,
    /// Its functions, in declaration order.
    pub functions: Vec<IfaceFn>,
}

/// The user-defined types of a module. Enum 0 is always the built-in `transaction_type`, enum
/// 1 the built-in `uievent_state`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TypeTable {
    /// Structures.
    pub structs: Vec<StructDesc>,
    /// Enumerations.
    pub enums: Vec<EnumDesc>,
    /// Interfaces.
    pub interfaces: Vec<InterfaceDesc>,
}

/// Enumerators of the built-in `uievent_state` (enum 1, the result of
/// `__event.get_user_state()`).
pub const UIEVENT_STATES: [&str; 4] = ["deactivated", "activated", "locked", "unlocked"];

/// Enumerators of the built-in `transaction_type` (PREDA spec 6.1.1).
pub const TRANSACTION_TYPES: [&str; 4] =
    ["normal_type", "relay_type", "system_type", "scheduled_type"];

/// Most nested levels a type may have (so encoders and printers never recurse deeply).
pub const MAX_TYPE_DEPTH: usize = 16;

impl TypeTable {
    /// A table holding only the built-in enum.
    pub fn with_builtins() -> Self {
        TypeTable {
            structs: Vec::new(),
            enums: vec![
                EnumDesc {
                    name: "transaction_type".into(),
                    variants: TRANSACTION_TYPES.iter().map(|s| s.to_string()).collect(),
                },
                EnumDesc {
                    name: "uievent_state".into(),
                    variants: UIEVENT_STATES.iter().map(|s| s.to_string()).collect(),
                },
            ],
            interfaces: Vec::new(),
        }
    }

    /// The name of `t` as a user writes it.
    pub fn name(&self, t: &Type) -> String {
        match t {
            Type::Bool => "bool".into(),
            Type::Int(i) => i.name(),
            Type::BigInt => "bigint".into(),
            Type::Address => "address".into(),
            Type::Hash => "hash".into(),
            Type::Blob => "blob".into(),
            Type::String => "string".into(),
            Type::Enum(i) => self
                .enums
                .get(*i as usize)
                .map(|e| e.name.clone())
                .unwrap_or_else(|| format!("enum#{i}")),
            Type::Struct(i) => self
                .structs
                .get(*i as usize)
                .map(|s| s.name.clone())
                .unwrap_or_else(|| format!("struct#{i}")),
            Type::Array(e) => format!("array<{}>", self.name(e)),
            Type::Map(k, v) => format!("map<{}, {}>", self.name(k), self.name(v)),
            Type::Token => "token".into(),
            Type::Interface(i) => self
                .interfaces
                .get(*i as usize)
                .map(|s| s.name.clone())
                .unwrap_or_else(|| format!("interface#{i}")),
            Type::Contract(c) => c.name.clone(),
        }
    }

    /// Whether a value of `t` can hold a token (so its state rows carry value).
    pub fn holds_token(&self, t: &Type) -> bool {
        self.holds_token_at(t, 0)
    }

    fn holds_token_at(&self, t: &Type, depth: usize) -> bool {
        if depth > MAX_TYPE_DEPTH {
            return false;
        }
        match t {
            Type::Token => true,
            Type::Array(e) => self.holds_token_at(e, depth + 1),
            Type::Map(_, v) => self.holds_token_at(v, depth + 1),
            Type::Struct(i) => self.structs.get(*i as usize).is_some_and(|s| {
                s.fields
                    .iter()
                    .any(|(_, f)| self.holds_token_at(f, depth + 1))
            }),
            _ => false,
        }
    }

    /// Whether every index in `t` refers to a definition here and nesting is bounded.
    pub fn is_valid(&self, t: &Type) -> bool {
        self.valid_at(t, 0)
    }

    fn valid_at(&self, t: &Type, depth: usize) -> bool {
        if depth > MAX_TYPE_DEPTH {
            return false;
        }
        match t {
            Type::Enum(i) => (*i as usize) < self.enums.len(),
            Type::Struct(i) => (*i as usize) < self.structs.len(),
            Type::Interface(i) => (*i as usize) < self.interfaces.len(),
            Type::Array(e) => self.valid_at(e, depth + 1),
            Type::Map(k, v) => {
                is_map_key(k) && self.valid_at(k, depth + 1) && self.valid_at(v, depth + 1)
            }
            _ => true,
        }
    }
}

/// Types a map may be keyed by.
pub fn is_map_key(t: &Type) -> bool {
    matches!(
        t,
        Type::Int(_)
            | Type::Address
            | Type::Hash
            | Type::Blob
            | Type::String
            | Type::Bool
            | Type::Enum(_)
    )
}

/// The arithmetic type of an integer type.
pub fn num_ty(t: &Type) -> Option<NumTy> {
    match t {
        Type::Int(i) => Some(NumTy::Fixed(*i)),
        Type::BigInt => Some(NumTy::Big),
        _ => None,
    }
}

/// Whether a value of `from` converts implicitly to `to`: same type, a wider integer of the
/// same signedness, or a signed integer to `bigint` (PREDA spec 2.4.1).
pub fn implicitly_converts(from: &Type, to: &Type) -> bool {
    if from == to {
        return true;
    }
    match (from, to) {
        (Type::Int(a), Type::Int(b)) => a.signed == b.signed && a.bits <= b.bits,
        (Type::Int(a), Type::BigInt) => a.signed,
        _ => false,
    }
}
