//! How a scope's state is stored: one row with the scope's variables, and rows of their own
//! for the contents of every top-level `array` and `map` variable ("stored containers").
//!
//! A stored container occupies four bytes in its scope's row, its length (arrays) or entry
//! count (maps) as a little-endian `uint32`. Its contents are rows named by an [`ElemKey`]:
//! - array element `i`: row `Index(i)`, the element's canonical encoding, absent when the
//!   element has the default value (so `set_length` creates no rows and an array never has
//!   rows at or beyond its length);
//! - map entry with key `k`: row `Key(encoding of k)`, holding the entry's slot (`uint32` LE)
//!   and the value's encoding; slot `i` (`i` below the count) is row `Index(i)`, holding the
//!   encoding of the `i`-th key, so the entries can be listed without a range scan. Erasing
//!   an entry moves the last slot's key into the freed slot.
//!
//! A push, a `m[k] = v`, a `has` or an `erase` therefore touch a few rows whatever the size:
//! the cost of a container operation does not grow with the container, and undo records
//! hold only what changed.
//!
//! Two forms of a scope's variables appear in the API:
//! - *row values* ([`decode_row`], [`default_row`], [`encode_row`], the `global` slice of a
//!   [`crate::vm::Call`]): a stored container is its length, a `uint32` [`Value::Int`];
//! - *full values* ([`full_values`], [`split_values`]): every variable as the contract sees it,
//!   containers with their contents, for display and for setting state from outside.

use rexe_encode::{DecodeError, Reader};

use super::ast::ScopeKind;
use super::num::Int;
use super::types::Type;
use super::value::{self, default_value, TypeMismatch, Value};
use super::verify::Verified;

/// Names one content row of a stored container.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ElemKey {
    /// An array element, or a map's key slot.
    Index(u32),
    /// A map entry, by the encoding of its key.
    Key(Vec<u8>),
}

/// One content row a call writes: `None` deletes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElemWrite {
    /// The scope whose row holds the container.
    pub scope: ScopeKind,
    /// The container's variable index in that scope.
    pub var: u16,
    /// Which row.
    pub key: ElemKey,
    /// The row's bytes, `None` to delete it.
    pub value: Option<Vec<u8>>,
}

/// What a top-level variable's contents are stored as.
#[derive(Clone, Copy, Debug)]
pub enum Stored<'t> {
    /// An array of this element type.
    Array(&'t Type),
    /// A map with these key and value types.
    Map(&'t Type, &'t Type),
}

/// How a top-level variable of type `t` is stored, if as a stored container.
pub fn stored(t: &Type) -> Option<Stored<'_>> {
    match t {
        Type::Array(e) => Some(Stored::Array(e)),
        Type::Map(k, v) => Some(Stored::Map(k, v)),
        _ => None,
    }
}

/// The element type of `t` when a top-level variable of type `t` is a stored array.
pub fn stored_elem(t: &Type) -> Option<&Type> {
    match stored(t)? {
        Stored::Array(e) => Some(e),
        Stored::Map(..) => None,
    }
}

/// Whether variable `var` of `scope` is a stored container.
pub fn is_stored(code: &Verified, scope: ScopeKind, var: usize) -> bool {
    code.state_of(scope)
        .get(var)
        .is_some_and(|(_, t)| stored(code.ty(*t)).is_some())
}

/// Encodes a map entry row: its slot and its value.
pub fn encode_entry(
    v_ty: &Type,
    code: &Verified,
    slot: u32,
    v: &Value,
) -> Result<Vec<u8>, TypeMismatch> {
    let mut out = slot.to_le_bytes().to_vec();
    value::encode(v, v_ty, &code.table, &mut out)?;
    Ok(out)
}

/// Decodes a map entry row into its slot and value.
pub fn decode_entry(v_ty: &Type, code: &Verified, row: &[u8]) -> Result<(u32, Value), DecodeError> {
    let mut r = Reader::new(row);
    let slot = u32::from_le_bytes(r.array()?);
    let v = value::decode(&mut r, v_ty, &code.table)?;
    r.finish()?;
    Ok((slot, v))
}

/// The encoding of a map key (the name of its entry row).
pub fn encode_key(k_ty: &Type, code: &Verified, k: &Value) -> Result<Vec<u8>, TypeMismatch> {
    let mut out = Vec::new();
    value::encode(k, k_ty, &code.table, &mut out)?;
    Ok(out)
}

/// Decodes a map key from its encoding.
pub fn decode_key(k_ty: &Type, code: &Verified, b: &[u8]) -> Result<Value, DecodeError> {
    let mut r = Reader::new(b);
    let v = value::decode(&mut r, k_ty, &code.table)?;
    r.finish()?;
    Ok(v)
}

/// The length a row value of a stored container holds.
pub fn stored_len(v: &Value) -> Option<u32> {
    v.as_int().and_then(Int::to_u32)
}

/// The row value of a stored array of length `n`.
pub fn len_value(n: u32) -> Value {
    Value::Int(Int::from(n as u64))
}

/// Row values of a scope that was never written.
pub fn default_row(code: &Verified, scope: ScopeKind) -> Vec<Value> {
    code.state_of(scope)
        .iter()
        .map(|(_, t)| row_default(code, *t))
        .collect()
}

fn row_default(code: &Verified, t: super::bytecode::TypeId) -> Value {
    let t = code.ty(t);
    if stored(t).is_some() {
        len_value(0)
    } else {
        default_value(t, &code.table)
    }
}

/// Decodes a stored row of `scope` into row values.
pub fn decode_row(
    code: &Verified,
    scope: ScopeKind,
    bytes: &[u8],
) -> Result<Vec<Value>, DecodeError> {
    let vars = code.state_of(scope);
    let mut r = Reader::new(bytes);
    let mut out = Vec::with_capacity(vars.len());
    for (_, t) in vars {
        let t = code.ty(*t);
        out.push(if stored(t).is_some() {
            let b: [u8; 4] = r.array()?;
            len_value(u32::from_le_bytes(b))
        } else {
            value::decode(&mut r, t, &code.table)?
        });
    }
    r.finish()?;
    Ok(out)
}

/// Encodes row values of `scope` as a row (`None` when all are defaults: no row is kept).
pub fn encode_row(
    code: &Verified,
    scope: ScopeKind,
    vals: &[Value],
) -> Result<Option<Vec<u8>>, TypeMismatch> {
    let vars = code.state_of(scope);
    if vals.len() != vars.len() {
        return Err(TypeMismatch(format!(
            "{} values for {} variables",
            vals.len(),
            vars.len()
        )));
    }
    let mut bytes = Vec::with_capacity(64);
    let mut all_default = true;
    for (v, (_, t)) in vals.iter().zip(vars) {
        let ty = code.ty(*t);
        if stored(ty).is_some() {
            let n = stored_len(v)
                .ok_or_else(|| TypeMismatch("a stored array's row value is its length".into()))?;
            bytes.extend_from_slice(&n.to_le_bytes());
            all_default &= n == 0;
        } else {
            value::encode(v, ty, &code.table, &mut bytes)?;
            all_default &= *v == default_value(ty, &code.table);
        }
    }
    Ok((!all_default).then_some(bytes))
}

/// Encodes one element of a stored array (`None`: the default, kept as no row).
pub fn encode_elem(
    elem: &Type,
    code: &Verified,
    v: &Value,
) -> Result<Option<Vec<u8>>, TypeMismatch> {
    if *v == default_value(elem, &code.table) {
        return Ok(None);
    }
    let mut out = Vec::new();
    value::encode(v, elem, &code.table, &mut out)?;
    Ok(Some(out))
}

/// Decodes one element row of a stored array (`None`: the default).
pub fn decode_elem(elem: &Type, code: &Verified, row: Option<&[u8]>) -> Result<Value, DecodeError> {
    match row {
        None => Ok(default_value(elem, &code.table)),
        Some(b) => {
            let mut r = Reader::new(b);
            let v = value::decode(&mut r, elem, &code.table)?;
            r.finish()?;
            Ok(v)
        }
    }
}

/// Reads a content row of a stored container: `(variable, row) -> bytes`.
pub type ElemReader<'r> = dyn FnMut(u16, &ElemKey) -> Result<Option<Vec<u8>>, String> + 'r;

/// Full values of a scope from its row values, reading each stored container's contents
/// with `elem`.
pub fn full_values(
    code: &Verified,
    scope: ScopeKind,
    row: &[Value],
    elem: &mut ElemReader<'_>,
) -> Result<Vec<Value>, String> {
    let vars = code.state_of(scope);
    let mut out = Vec::with_capacity(vars.len());
    for (i, ((_, t), v)) in vars.iter().zip(row).enumerate() {
        let ty = code.ty(*t);
        let Some(st) = stored(ty) else {
            out.push(v.clone());
            continue;
        };
        let var = i as u16;
        let n = stored_len(v).ok_or("a stored container's row value is not its length")?;
        match st {
            Stored::Array(e) => {
                let mut items = Vec::with_capacity(n.min(1 << 16) as usize);
                for j in 0..n {
                    let b = elem(var, &ElemKey::Index(j))?;
                    items.push(decode_elem(e, code, b.as_deref()).map_err(|e| e.to_string())?);
                }
                out.push(Value::Array(items));
            }
            Stored::Map(kt, vt) => {
                let mut m = std::collections::BTreeMap::new();
                for j in 0..n {
                    let kb = elem(var, &ElemKey::Index(j))?
                        .ok_or_else(|| format!("map slot {j} has no key"))?;
                    let entry = elem(var, &ElemKey::Key(kb.clone()))?
                        .ok_or_else(|| format!("map slot {j} names a missing entry"))?;
                    let (slot, value) =
                        decode_entry(vt, code, &entry).map_err(|e| e.to_string())?;
                    if slot != j {
                        return Err(format!("map entry of slot {j} says slot {slot}"));
                    }
                    m.insert(decode_key(kt, code, &kb).map_err(|e| e.to_string())?, value);
                }
                out.push(Value::Map(m));
            }
        }
    }
    Ok(out)
}

/// Splits full values of a scope into row values and the content rows to write, given the
/// scope's current row values `old` and a reader of its current contents (whose rows the
/// new values no longer have are deleted).
pub fn split_values(
    code: &Verified,
    scope: ScopeKind,
    full: &[Value],
    old: &[Value],
    elem: &mut ElemReader<'_>,
) -> Result<(Vec<Value>, Vec<ElemWrite>), String> {
    let vars = code.state_of(scope);
    if full.len() != vars.len() || old.len() != vars.len() {
        return Err(format!(
            "{} values for {} variables",
            full.len(),
            vars.len()
        ));
    }
    let mut row = Vec::with_capacity(vars.len());
    let mut writes = Vec::new();
    for (i, ((_, t), v)) in vars.iter().zip(full).enumerate() {
        let ty = code.ty(*t);
        let Some(st) = stored(ty) else {
            row.push(v.clone());
            continue;
        };
        let var = i as u16;
        let was = stored_len(&old[i]).unwrap_or(0);
        // Old rows first (deleted), then the new ones over them.
        let mut rows = std::collections::BTreeMap::new();
        let n = match (st, v) {
            (Stored::Array(e), Value::Array(items)) => {
                for j in 0..was {
                    rows.insert(ElemKey::Index(j), None);
                }
                for (j, item) in items.iter().enumerate() {
                    let b = encode_elem(e, code, item).map_err(|e| e.to_string())?;
                    rows.insert(ElemKey::Index(j as u32), b);
                }
                items.len()
            }
            (Stored::Map(kt, vt), Value::Map(m)) => {
                for j in 0..was {
                    rows.insert(ElemKey::Index(j), None);
                    if let Some(kb) = elem(var, &ElemKey::Index(j))? {
                        rows.insert(ElemKey::Key(kb), None);
                    }
                }
                for (j, (k, x)) in m.iter().enumerate() {
                    let kb = encode_key(kt, code, k).map_err(|e| e.to_string())?;
                    let entry = encode_entry(vt, code, j as u32, x).map_err(|e| e.to_string())?;
                    rows.insert(ElemKey::Index(j as u32), Some(kb.clone()));
                    rows.insert(ElemKey::Key(kb), Some(entry));
                }
                m.len()
            }
            _ => return Err("a container value of the wrong kind".into()),
        };
        let n = u32::try_from(n).map_err(|_| "container too large".to_string())?;
        writes.extend(rows.into_iter().map(|(key, value)| ElemWrite {
            scope,
            var,
            key,
            value,
        }));
        row.push(len_value(n));
    }
    Ok((row, writes))
}
