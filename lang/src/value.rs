//! Runtime values, their canonical binary encoding (state rows, call and relay arguments,
//! return values) and their JSON form (RPC, CLI, scripts).
//!
//! Values are owned trees: assigning a struct, array or map copies it (see the README for
//! how this differs from PREDA's reference semantics). Maps are `BTreeMap`s, so iteration
//! order, encoding and printing are deterministic.
//!
//! Encoding by type: `bool` one byte 0/1; `intN`/`uintN` N/8 bytes little-endian two's
//! complement; `bigint` a sign byte (0 or 1), a compact-size length and the minimal
//! little-endian magnitude (zero: `00 00`); `address`/`hash` 32 bytes; `blob`/`string` a
//! compact-size length and the bytes (UTF-8 for strings); enums a `u16`; arrays a count and
//! the elements; maps a count and the pairs in increasing key order; structs the members in
//! order. Decoding rejects every non-canonical form, so one value has one encoding.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use bitcoin::bech32::{primitives::decode::CheckedHrpstring, Bech32m, Hrp};
use bitcoin::hex::{DisplayHex, FromHex};
use serde_json::Value as Json;

use super::num::{Int, IntTy, NumTy};
use super::types::{is_map_key, Type, TypeTable, MAX_TYPE_DEPTH};
use rexe_encode::{write_compact_size, DecodeError, Reader};

/// Longest string or blob, in bytes.
pub const MAX_BYTES_LEN: usize = 65_535;

/// A value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// `bool`.
    Bool(bool),
    /// Any integer type.
    Int(Int),
    /// `address`.
    Address([u8; 32]),
    /// `hash`.
    Hash([u8; 32]),
    /// `blob`.
    Blob(Vec<u8>),
    /// `string`.
    Str(String),
    /// An enumerator.
    Enum(u16),
    /// `array<T>`.
    Array(Vec<Value>),
    /// `map<K, V>`.
    Map(BTreeMap<Value, Value>),
    /// A structure's members.
    Struct(Vec<Value>),
    /// `token`: `amount` base units of asset `id` (id 0: no token, amount 0).
    Token {
        /// Asset id (see [`crate::token`]).
        id: u64,
        /// Amount in base units.
        amount: u64,
    },
}

impl Value {
    fn rank(&self) -> u8 {
        match self {
            Value::Bool(_) => 0,
            Value::Int(_) => 1,
            Value::Address(_) => 2,
            Value::Hash(_) => 3,
            Value::Blob(_) => 4,
            Value::Str(_) => 5,
            Value::Enum(_) => 6,
            Value::Array(_) => 7,
            Value::Map(_) => 8,
            Value::Struct(_) => 9,
            Value::Token { .. } => 10,
        }
    }

    /// Nodes in the tree (gas for copies is charged per node).
    pub fn weight(&self) -> u64 {
        match self {
            Value::Array(v) | Value::Struct(v) => 1 + v.iter().map(Value::weight).sum::<u64>(),
            Value::Map(m) => 1 + m.iter().map(|(k, v)| k.weight() + v.weight()).sum::<u64>(),
            Value::Blob(b) => 1 + b.len() as u64 / 32,
            Value::Str(s) => 1 + s.len() as u64 / 32,
            Value::Int(i) => i.words(),
            _ => 1,
        }
    }

    /// The integer inside, if this is one.
    pub fn as_int(&self) -> Option<&Int> {
        match self {
            Value::Int(i) => Some(i),
            _ => None,
        }
    }
}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Value {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
            (Value::Int(a), Value::Int(b)) => a.cmp(b),
            (Value::Address(a), Value::Address(b)) | (Value::Hash(a), Value::Hash(b)) => a.cmp(b),
            (Value::Blob(a), Value::Blob(b)) => a.cmp(b),
            (Value::Str(a), Value::Str(b)) => a.cmp(b),
            (Value::Enum(a), Value::Enum(b)) => a.cmp(b),
            (Value::Array(a), Value::Array(b)) | (Value::Struct(a), Value::Struct(b)) => a.cmp(b),
            (Value::Map(a), Value::Map(b)) => a.iter().cmp(b.iter()),
            (Value::Token { id: a, amount: x }, Value::Token { id: b, amount: y }) => {
                (a, x).cmp(&(b, y))
            }
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

/// The default (zero) value of `t`.
pub fn default_value(t: &Type, tt: &TypeTable) -> Value {
    match t {
        Type::Bool => Value::Bool(false),
        Type::Int(_) | Type::BigInt => Value::Int(Int::ZERO),
        Type::Address | Type::Interface(_) | Type::Contract(_) => Value::Address([0; 32]),
        Type::Hash => Value::Hash([0; 32]),
        Type::Blob => Value::Blob(Vec::new()),
        Type::String => Value::Str(String::new()),
        Type::Enum(_) => Value::Enum(0),
        Type::Struct(i) => Value::Struct(
            tt.structs
                .get(*i as usize)
                .map(|s| s.fields.iter().map(|(_, f)| default_value(f, tt)).collect())
                .unwrap_or_default(),
        ),
        Type::Array(_) => Value::Array(Vec::new()),
        Type::Map(_, _) => Value::Map(BTreeMap::new()),
        Type::Token => Value::Token { id: 0, amount: 0 },
    }
}

/// Whether `v` is a well-formed value of `t` (types in bytecode are not trusted).
pub fn has_type(v: &Value, t: &Type, tt: &TypeTable) -> bool {
    match (v, t) {
        (Value::Token { id, amount }, Type::Token) => *id != 0 || *amount == 0,
        (Value::Bool(_), Type::Bool)
        | (Value::Address(_), Type::Address)
        | (Value::Hash(_), Type::Hash) => true,
        (Value::Address(_), Type::Interface(i)) => (*i as usize) < tt.interfaces.len(),
        (Value::Address(_), Type::Contract(_)) => true,
        (Value::Int(i), Type::Int(it)) => i.fits(NumTy::Fixed(*it)),
        (Value::Int(i), Type::BigInt) => i.fits(NumTy::Big),
        (Value::Blob(b), Type::Blob) => b.len() <= MAX_BYTES_LEN,
        (Value::Str(s), Type::String) => s.len() <= MAX_BYTES_LEN,
        (Value::Enum(e), Type::Enum(i)) => tt
            .enums
            .get(*i as usize)
            .is_some_and(|d| (*e as usize) < d.variants.len()),
        (Value::Array(a), Type::Array(et)) => a.iter().all(|x| has_type(x, et, tt)),
        (Value::Map(m), Type::Map(kt, vt)) => m
            .iter()
            .all(|(k, x)| has_type(k, kt, tt) && has_type(x, vt, tt)),
        (Value::Struct(fs), Type::Struct(i)) => tt.structs.get(*i as usize).is_some_and(|d| {
            d.fields.len() == fs.len()
                && fs
                    .iter()
                    .zip(&d.fields)
                    .all(|(x, (_, ft))| has_type(x, ft, tt))
        }),
        _ => false,
    }
}

/// Why a value cannot be encoded (it does not have the type: a VM bug or bad bytecode).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("value does not match type {0}")]
pub struct TypeMismatch(pub String);

/// Appends the canonical encoding of `v` as a `t`.
pub fn encode(v: &Value, t: &Type, tt: &TypeTable, out: &mut Vec<u8>) -> Result<(), TypeMismatch> {
    let bad = || TypeMismatch(tt.name(t));
    match (v, t) {
        (Value::Bool(b), Type::Bool) => out.push(*b as u8),
        (Value::Int(i), Type::Int(it)) => {
            if !i.fits(NumTy::Fixed(*it)) {
                return Err(bad());
            }
            i.to_le(*it, out);
        }
        (Value::Int(Int::Small(v)), Type::BigInt) => {
            // The common case, without the allocation of `to_sign_magnitude`.
            let (mag, len) = super::num::small_magnitude(*v);
            out.push((*v < 0) as u8);
            write_compact_size(out, len as u64);
            out.extend_from_slice(&mag[..len]);
        }
        (Value::Int(i), Type::BigInt) => {
            let (neg, mag) = i.to_sign_magnitude();
            out.push(neg as u8);
            write_compact_size(out, mag.len() as u64);
            out.extend_from_slice(&mag);
        }
        (Value::Address(a), Type::Address | Type::Interface(_) | Type::Contract(_))
        | (Value::Hash(a), Type::Hash) => out.extend_from_slice(a),
        (Value::Blob(b), Type::Blob) => {
            write_compact_size(out, b.len() as u64);
            out.extend_from_slice(b);
        }
        (Value::Str(s), Type::String) => {
            write_compact_size(out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        (Value::Enum(e), Type::Enum(_)) => out.extend_from_slice(&e.to_le_bytes()),
        (Value::Token { id, amount }, Type::Token) => {
            if *id == 0 && *amount != 0 {
                return Err(bad());
            }
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&amount.to_le_bytes());
        }
        (Value::Array(a), Type::Array(et)) => {
            write_compact_size(out, a.len() as u64);
            for x in a {
                encode(x, et, tt, out)?;
            }
        }
        (Value::Map(m), Type::Map(kt, vt)) => {
            write_compact_size(out, m.len() as u64);
            for (k, x) in m {
                encode(k, kt, tt, out)?;
                encode(x, vt, tt, out)?;
            }
        }
        (Value::Struct(fs), Type::Struct(i)) => {
            let d = tt.structs.get(*i as usize).ok_or_else(bad)?;
            if d.fields.len() != fs.len() {
                return Err(bad());
            }
            for (x, (_, ft)) in fs.iter().zip(&d.fields) {
                encode(x, ft, tt, out)?;
            }
        }
        _ => return Err(bad()),
    }
    Ok(())
}

/// The encoding as a new vector.
pub fn to_bytes(v: &Value, t: &Type, tt: &TypeTable) -> Result<Vec<u8>, TypeMismatch> {
    let mut out = Vec::new();
    encode(v, t, tt, &mut out)?;
    Ok(out)
}

/// Smallest encoding of any value of `t` (for length checks against hostile counts).
fn min_size(t: &Type, tt: &TypeTable, depth: usize) -> usize {
    if depth > MAX_TYPE_DEPTH {
        return 1;
    }
    match t {
        Type::Bool => 1,
        Type::Int(i) => i.bytes(),
        Type::BigInt => 2,
        Type::Address | Type::Hash | Type::Interface(_) | Type::Contract(_) => 32,
        Type::Blob | Type::String | Type::Array(_) | Type::Map(_, _) => 1,
        Type::Enum(_) => 2,
        Type::Token => 16,
        Type::Struct(i) => tt
            .structs
            .get(*i as usize)
            .map(|s| {
                s.fields
                    .iter()
                    .map(|(_, f)| min_size(f, tt, depth + 1))
                    .sum::<usize>()
            })
            .unwrap_or(0)
            .max(1),
    }
}

/// Decodes one canonical `t`.
pub fn decode(r: &mut Reader<'_>, t: &Type, tt: &TypeTable) -> Result<Value, DecodeError> {
    decode_at(r, t, tt, 0)
}

fn decode_at(
    r: &mut Reader<'_>,
    t: &Type,
    tt: &TypeTable,
    depth: usize,
) -> Result<Value, DecodeError> {
    if depth > MAX_TYPE_DEPTH {
        return Err(DecodeError::Invalid("value nesting"));
    }
    Ok(match t {
        Type::Bool => match r.array::<1>()?[0] {
            0 => Value::Bool(false),
            1 => Value::Bool(true),
            _ => return Err(DecodeError::Invalid("bool")),
        },
        Type::Int(it) => Value::Int(Int::from_le(r.take(it.bytes())?, it.signed)),
        Type::BigInt => {
            let neg = match r.array::<1>()?[0] {
                0 => false,
                1 => true,
                _ => return Err(DecodeError::Invalid("bigint sign")),
            };
            let n = r.length(1)?;
            if n > (crate::num::BIGINT_BITS as usize).div_ceil(8) {
                return Err(DecodeError::Invalid("bigint too large"));
            }
            let mag = r.take(n)?;
            if mag.last() == Some(&0) || (n == 0 && neg) {
                return Err(DecodeError::Invalid("non-canonical bigint"));
            }
            let v = Int::from_sign_magnitude(neg, mag);
            if !v.fits(NumTy::Big) {
                return Err(DecodeError::Invalid("bigint too large"));
            }
            Value::Int(v)
        }
        Type::Address | Type::Interface(_) | Type::Contract(_) => Value::Address(r.array()?),
        Type::Hash => Value::Hash(r.array()?),
        Type::Blob => {
            let n = r.length(1)?;
            if n > MAX_BYTES_LEN {
                return Err(DecodeError::Invalid("blob too long"));
            }
            Value::Blob(r.take(n)?.to_vec())
        }
        Type::String => {
            let n = r.length(1)?;
            if n > MAX_BYTES_LEN {
                return Err(DecodeError::Invalid("string too long"));
            }
            let s = std::str::from_utf8(r.take(n)?).map_err(|_| DecodeError::Invalid("utf-8"))?;
            Value::Str(s.to_string())
        }
        Type::Enum(i) => {
            let e = u16::from_le_bytes(r.array()?);
            let n = tt
                .enums
                .get(*i as usize)
                .map(|d| d.variants.len())
                .unwrap_or(0);
            if e as usize >= n {
                return Err(DecodeError::Invalid("enumerator"));
            }
            Value::Enum(e)
        }
        Type::Token => {
            let id = u64::from_le_bytes(r.array()?);
            let amount = u64::from_le_bytes(r.array()?);
            if id == 0 && amount != 0 {
                return Err(DecodeError::Invalid("an amount of no token"));
            }
            Value::Token { id, amount }
        }
        Type::Array(et) => {
            let n = r.length(min_size(et, tt, depth + 1))?;
            let mut v = Vec::with_capacity(n.min(4096));
            for _ in 0..n {
                v.push(decode_at(r, et, tt, depth + 1)?);
            }
            Value::Array(v)
        }
        Type::Map(kt, vt) => {
            if !is_map_key(kt) {
                return Err(DecodeError::Invalid("map key type"));
            }
            let n = r.length(min_size(kt, tt, depth + 1) + min_size(vt, tt, depth + 1))?;
            let mut m = BTreeMap::new();
            let mut last: Option<Value> = None;
            for _ in 0..n {
                let k = decode_at(r, kt, tt, depth + 1)?;
                if last.as_ref().is_some_and(|l| *l >= k) {
                    return Err(DecodeError::Invalid("map keys not in increasing order"));
                }
                let x = decode_at(r, vt, tt, depth + 1)?;
                last = Some(k.clone());
                m.insert(k, x);
            }
            Value::Map(m)
        }
        Type::Struct(i) => {
            let d = tt
                .structs
                .get(*i as usize)
                .ok_or(DecodeError::Invalid("struct type"))?;
            let mut fs = Vec::with_capacity(d.fields.len());
            for (_, ft) in &d.fields {
                fs.push(decode_at(r, ft, tt, depth + 1)?);
            }
            Value::Struct(fs)
        }
    })
}

/// Decodes a value that spans all of `bytes`.
pub fn from_bytes(bytes: &[u8], t: &Type, tt: &TypeTable) -> Result<Value, DecodeError> {
    let mut r = Reader::new(bytes);
    let v = decode(&mut r, t, tt)?;
    r.finish()?;
    Ok(v)
}

/// Encodes a tuple of values (arguments) against their types.
pub fn encode_tuple(
    vals: &[Value],
    types: &[Type],
    tt: &TypeTable,
) -> Result<Vec<u8>, TypeMismatch> {
    if vals.len() != types.len() {
        return Err(TypeMismatch(format!(
            "{} values for {} types",
            vals.len(),
            types.len()
        )));
    }
    let mut out = Vec::new();
    for (v, t) in vals.iter().zip(types) {
        encode(v, t, tt, &mut out)?;
    }
    Ok(out)
}

/// Decodes a tuple spanning all of `bytes`.
pub fn decode_tuple(
    bytes: &[u8],
    types: &[Type],
    tt: &TypeTable,
) -> Result<Vec<Value>, DecodeError> {
    let mut r = Reader::new(bytes);
    let mut out = Vec::with_capacity(types.len());
    for t in types {
        out.push(decode(&mut r, t, tt)?);
    }
    r.finish()?;
    Ok(out)
}

/// Decodes a tuple spanning all of `bytes`, with types given by id into `types`.
pub fn decode_tuple_ids(
    bytes: &[u8],
    ids: impl IntoIterator<Item = u16>,
    types: &[Type],
    tt: &TypeTable,
) -> Result<Vec<Value>, DecodeError> {
    let mut r = Reader::new(bytes);
    let mut out = Vec::new();
    for id in ids {
        let t = types
            .get(id as usize)
            .ok_or(DecodeError::Invalid("type id"))?;
        out.push(decode(&mut r, t, tt)?);
    }
    r.finish()?;
    Ok(out)
}

/// An address as bech32m with `hrp` (the chain's address format).
pub fn address_to_string(a: &[u8; 32], hrp: &str) -> String {
    let hrp = Hrp::parse(hrp).unwrap_or_else(|_| Hrp::parse_unchecked("trx"));
    bitcoin::bech32::encode::<Bech32m>(hrp, a).unwrap_or_default()
}

/// Parses a bech32m address of any rexe prefix, or 64 hex digits. Unlike account
/// addresses, contract addresses need not be curve points, so none is required.
pub fn parse_address(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() == 64 {
        if let Ok(b) = Vec::<u8>::from_hex(s) {
            return b.try_into().ok();
        }
    }
    let c = CheckedHrpstring::new::<Bech32m>(s).ok()?;
    if !matches!(c.hrp().as_str(), "rx" | "trx") {
        return None;
    }
    let bytes: Vec<u8> = c.byte_iter().collect();
    bytes.try_into().ok()
}

fn json_int(i: &Int) -> Json {
    if let Int::Small(v) = i {
        if let Ok(x) = i64::try_from(*v) {
            return Json::from(x);
        }
        if let Ok(x) = u64::try_from(*v) {
            return Json::from(x);
        }
    }
    Json::String(i.to_decimal())
}

/// The JSON form of `v` (integers beyond 64 bits as decimal strings, addresses bech32m with
/// `hrp`, hashes and blobs hex, enums by name, structs as objects).
pub fn to_json(v: &Value, t: &Type, tt: &TypeTable, hrp: &str) -> Json {
    match (v, t) {
        (Value::Bool(b), _) => Json::Bool(*b),
        (Value::Int(i), _) => json_int(i),
        (Value::Address(a), _) => Json::String(address_to_string(a, hrp)),
        (Value::Hash(h), _) => Json::String(h.to_lower_hex_string()),
        (Value::Blob(b), _) => Json::String(b.to_lower_hex_string()),
        (Value::Str(s), _) => Json::String(s.clone()),
        (Value::Enum(e), Type::Enum(i)) => tt
            .enums
            .get(*i as usize)
            .and_then(|d| d.variants.get(*e as usize))
            .map(|n| Json::String(n.clone()))
            .unwrap_or(Json::from(*e)),
        (Value::Enum(e), _) => Json::from(*e),
        (Value::Token { id, amount }, _) => serde_json::json!({
            "token": crate::token::id_to_symbol(*id).unwrap_or_else(|| id.to_string()),
            "amount": amount,
        }),
        (Value::Array(a), Type::Array(et)) => {
            Json::Array(a.iter().map(|x| to_json(x, et, tt, hrp)).collect())
        }
        (Value::Map(m), Type::Map(kt, vt)) => Json::Object(
            m.iter()
                .map(|(k, x)| {
                    let key = match to_json(k, kt, tt, hrp) {
                        Json::String(s) => s,
                        other => other.to_string(),
                    };
                    (key, to_json(x, vt, tt, hrp))
                })
                .collect(),
        ),
        (Value::Struct(fs), Type::Struct(i)) => match tt.structs.get(*i as usize) {
            Some(d) => Json::Object(
                fs.iter()
                    .zip(&d.fields)
                    .map(|(x, (n, ft))| (n.clone(), to_json(x, ft, tt, hrp)))
                    .collect(),
            ),
            None => Json::Null,
        },
        _ => Json::Null,
    }
}

/// Reads a `t` from JSON: numbers or decimal/hex strings for integers, bech32m or hex for
/// addresses, hex for hashes and blobs, enumerator names or indices, objects for structs
/// (missing members take their default) and maps (keys as strings).
pub fn from_json(j: &Json, t: &Type, tt: &TypeTable) -> Result<Value, String> {
    from_json_at(j, t, tt, 0)
}

fn from_json_at(j: &Json, t: &Type, tt: &TypeTable, depth: usize) -> Result<Value, String> {
    if depth > MAX_TYPE_DEPTH {
        return Err("value nested too deeply".into());
    }
    let want = |what: &str| format!("expected {what} for {}, got {j}", tt.name(t));
    Ok(match t {
        Type::Bool => match j {
            Json::Bool(b) => Value::Bool(*b),
            Json::String(s) if s == "true" || s == "false" => Value::Bool(s == "true"),
            _ => return Err(want("true or false")),
        },
        Type::Int(_) | Type::BigInt => {
            let i = match j {
                Json::Number(n) => n
                    .as_i64()
                    .map(|v| Int::Small(v as i128))
                    .or_else(|| n.as_u64().map(Int::from))
                    .ok_or_else(|| want("an integer"))?,
                Json::String(s) => Int::parse(s).ok_or_else(|| want("an integer"))?,
                _ => return Err(want("an integer")),
            };
            let nt = match t {
                Type::Int(it) => NumTy::Fixed(*it),
                _ => NumTy::Big,
            };
            if !i.fits(nt) {
                return Err(format!("{i} is out of range for {}", tt.name(t)));
            }
            Value::Int(i)
        }
        Type::Address | Type::Interface(_) | Type::Contract(_) => {
            let s = j.as_str().ok_or_else(|| want("an address string"))?;
            Value::Address(parse_address(s).ok_or_else(|| format!("`{s}` is not an address"))?)
        }
        Type::Hash => Value::Hash(
            j.as_str()
                .and_then(|s| Vec::<u8>::from_hex(s.trim_start_matches("0x")).ok())
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| want("64 hex digits"))?,
        ),
        Type::Blob => {
            let b = j
                .as_str()
                .and_then(|s| Vec::<u8>::from_hex(s.trim_start_matches("0x")).ok())
                .ok_or_else(|| want("hex"))?;
            if b.len() > MAX_BYTES_LEN {
                return Err("blob longer than 65535 bytes".into());
            }
            Value::Blob(b)
        }
        Type::String => {
            let s = j.as_str().ok_or_else(|| want("a string"))?;
            if s.len() > MAX_BYTES_LEN {
                return Err("string longer than 65535 bytes".into());
            }
            Value::Str(s.to_string())
        }
        Type::Enum(i) => {
            let d = tt.enums.get(*i as usize).ok_or("unknown enum")?;
            let e = match j {
                Json::String(s) => d
                    .variants
                    .iter()
                    .position(|v| v == s)
                    .ok_or_else(|| format!("`{s}` is not an enumerator of {}", d.name))?,
                Json::Number(n) => n
                    .as_u64()
                    .map(|v| v as usize)
                    .ok_or_else(|| want("an enumerator"))?,
                _ => return Err(want("an enumerator")),
            };
            if e >= d.variants.len() {
                return Err(format!("{e} is not an enumerator of {}", d.name));
            }
            Value::Enum(e as u16)
        }
        // A token is value: only a transaction's attached rxBTC or a contract makes one.
        Type::Token => {
            return Err(
                "a token cannot be written as an argument (attach rxBTC to the call instead)"
                    .into(),
            )
        }
        Type::Array(et) => Value::Array(
            j.as_array()
                .ok_or_else(|| want("an array"))?
                .iter()
                .map(|x| from_json_at(x, et, tt, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Type::Map(kt, vt) => {
            let o = j.as_object().ok_or_else(|| want("an object"))?;
            let mut m = BTreeMap::new();
            for (k, x) in o {
                let key_json = match &**kt {
                    Type::Bool => Json::Bool(k == "true"),
                    _ => Json::String(k.clone()),
                };
                m.insert(
                    from_json_at(&key_json, kt, tt, depth + 1)?,
                    from_json_at(x, vt, tt, depth + 1)?,
                );
            }
            Value::Map(m)
        }
        Type::Struct(i) => {
            let d = tt.structs.get(*i as usize).ok_or("unknown struct")?;
            let o = j.as_object().ok_or_else(|| want("an object"))?;
            if let Some(k) = o.keys().find(|k| !d.fields.iter().any(|(n, _)| n == *k)) {
                return Err(format!("{} has no member `{k}`", d.name));
            }
            Value::Struct(
                d.fields
                    .iter()
                    .map(|(n, ft)| match o.get(n) {
                        Some(x) => from_json_at(x, ft, tt, depth + 1),
                        None => Ok(default_value(ft, tt)),
                    })
                    .collect::<Result<_, _>>()?,
            )
        }
    })
}

/// Text for `__debug.print`: numbers in decimal, strings raw, addresses bech32m.
pub fn display(v: &Value, hrp: &str, out: &mut String) {
    match v {
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_decimal()),
        Value::Address(a) => out.push_str(&address_to_string(a, hrp)),
        Value::Hash(h) => out.push_str(&h.to_lower_hex_string()),
        Value::Blob(b) => out.push_str(&b.to_lower_hex_string()),
        Value::Str(s) => out.push_str(s),
        Value::Enum(e) => {
            let _ = write!(out, "{e}");
        }
        Value::Token { id, amount } => {
            let sym = crate::token::id_to_symbol(*id).unwrap_or_else(|| id.to_string());
            let _ = write!(out, "{amount} {sym}");
        }
        Value::Array(a) | Value::Struct(a) => {
            out.push(if matches!(v, Value::Array(_)) {
                '['
            } else {
                '{'
            });
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                display(x, hrp, out);
            }
            out.push(if matches!(v, Value::Array(_)) {
                ']'
            } else {
                '}'
            });
        }
        Value::Map(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                display(k, hrp, out);
                out.push_str(": ");
                display(x, hrp, out);
            }
            out.push('}');
        }
    }
}

/// The fixed-width type of an integer scope key.
pub fn uint_ty(bits: u16) -> IntTy {
    IntTy {
        signed: false,
        bits,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::StructDesc;

    fn table() -> TypeTable {
        let mut tt = TypeTable::with_builtins();
        tt.structs.push(StructDesc {
            name: "P".into(),
            fields: vec![
                ("to".into(), Type::Address),
                ("amount".into(), Type::BigInt),
                (
                    "tags".into(),
                    Type::Map(Box::new(Type::String), Box::new(Type::Int(IntTy::UINT32))),
                ),
            ],
        });
        tt
    }

    #[test]
    fn encoding_roundtrips_and_is_canonical() {
        let tt = table();
        let t = Type::Array(Box::new(Type::Struct(0)));
        let j = serde_json::json!([
            {"to": "00".repeat(32), "amount": "-123456789012345678901234567890", "tags": {"b": 2, "a": 1}},
            {"amount": 5}
        ]);
        let v = from_json(&j, &t, &tt).unwrap();
        let bytes = to_bytes(&v, &t, &tt).unwrap();
        assert_eq!(from_bytes(&bytes, &t, &tt).unwrap(), v);
        let back = to_json(&v, &t, &tt, "trx");
        assert_eq!(back[0]["amount"], "-123456789012345678901234567890");
        assert_eq!(back[1]["amount"], 5);
        for n in 0..bytes.len() {
            assert!(from_bytes(&bytes[..n], &t, &tt).is_err());
        }
        // A bigint with a trailing zero byte in its magnitude is not canonical.
        assert!(from_bytes(&[0, 2, 5, 0], &Type::BigInt, &tt).is_err());
        assert!(from_bytes(&[1, 0], &Type::BigInt, &tt).is_err());
        // Map keys out of order are rejected.
        let mt = Type::Map(
            Box::new(Type::Int(IntTy {
                signed: false,
                bits: 8,
            })),
            Box::new(Type::Bool),
        );
        assert!(from_bytes(&[2, 1, 0, 0, 0], &mt, &tt).is_err());
        assert!(from_bytes(&[2, 0, 0, 1, 0], &mt, &tt).is_ok());
    }

    #[test]
    fn json_rejects_out_of_range_and_unknown_members() {
        let tt = table();
        let u8t = Type::Int(IntTy {
            signed: false,
            bits: 8,
        });
        assert!(from_json(&serde_json::json!(256), &u8t, &tt).is_err());
        assert!(from_json(&serde_json::json!(-1), &u8t, &tt).is_err());
        assert!(from_json(&serde_json::json!({"nope": 1}), &Type::Struct(0), &tt).is_err());
        assert!(from_json(&serde_json::json!("x"), &Type::Address, &tt).is_err());
    }
}
