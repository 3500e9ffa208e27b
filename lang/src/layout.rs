//! How a scope's state is stored: one row with the scope's variables, and one row per
//! element for every top-level `array` variable ("stored arrays").
//!
//! A stored array occupies four bytes in its scope's row, its length as a little-endian
//! `uint32`; element `i` is a row of its own, the canonical encoding of the element, absent
//! when the element has the default value (so `set_length` creates no rows and an array
//! never has rows at or beyond its length). A push therefore writes one element row and the
//! scope row, whatever the length: the cost of a container operation does not grow with the
//! container, and undo records hold only what changed.
//!
//! Two forms of a scope's variables appear in the API:
//! - *row values* ([`decode_row`], [`default_row`], [`encode_row`], the `global` slice of a
//!   [`crate::vm::Call`]): a stored array is its length, a `uint32` [`Value::Int`];
//! - *full values* ([`full_values`], [`split_values`]): every variable as the contract sees it,
//!   arrays with their elements, for display and for setting state from outside.

use rexe_encode::{DecodeError, Reader};

use super::ast::ScopeKind;
use super::num::Int;
use super::types::Type;
use super::value::{self, default_value, TypeMismatch, Value};
use super::verify::Verified;

/// One element row a call writes: `None` deletes it (the element is the default, or beyond
/// the array's new length).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElemWrite {
    /// The scope whose row holds the array.
    pub scope: ScopeKind,
    /// The array's variable index in that scope.
    pub var: u16,
    /// The element index.
    pub index: u32,
    /// The element's encoding, `None` to delete the row.
    pub value: Option<Vec<u8>>,
}

/// The element type of `t` when a top-level variable of type `t` is a stored array.
pub fn stored_elem(t: &Type) -> Option<&Type> {
    match t {
        Type::Array(e) => Some(e),
        _ => None,
    }
}

/// Whether variable `var` of `scope` is a stored array.
pub fn is_stored(code: &Verified, scope: ScopeKind, var: usize) -> bool {
    code.state_of(scope)
        .get(var)
        .is_some_and(|(_, t)| stored_elem(code.ty(*t)).is_some())
}

/// The length a row value of a stored array holds.
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
    if stored_elem(t).is_some() {
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
        out.push(if stored_elem(t).is_some() {
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
        if stored_elem(ty).is_some() {
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

/// Full values of a scope from its row values, reading each stored array's elements with
/// `elem(var, index)`.
pub fn full_values(
    code: &Verified,
    scope: ScopeKind,
    row: &[Value],
    elem: &mut dyn FnMut(u16, u32) -> Result<Option<Vec<u8>>, String>,
) -> Result<Vec<Value>, String> {
    let vars = code.state_of(scope);
    let mut out = Vec::with_capacity(vars.len());
    for (i, ((_, t), v)) in vars.iter().zip(row).enumerate() {
        let ty = code.ty(*t);
        match stored_elem(ty) {
            None => out.push(v.clone()),
            Some(e) => {
                let n = stored_len(v).ok_or("a stored array's row value is not its length")?;
                let mut items = Vec::with_capacity(n.min(1 << 16) as usize);
                for j in 0..n {
                    let b = elem(i as u16, j)?;
                    items.push(decode_elem(e, code, b.as_deref()).map_err(|e| e.to_string())?);
                }
                out.push(Value::Array(items));
            }
        }
    }
    Ok(out)
}

/// Splits full values of a scope into row values and the element rows to write, given the
/// scope's current row values `old` (whose arrays' elements beyond the new lengths are
/// deleted). Every element below the new length is written.
pub fn split_values(
    code: &Verified,
    scope: ScopeKind,
    full: &[Value],
    old: &[Value],
) -> Result<(Vec<Value>, Vec<ElemWrite>), TypeMismatch> {
    let vars = code.state_of(scope);
    if full.len() != vars.len() || old.len() != vars.len() {
        return Err(TypeMismatch(format!(
            "{} values for {} variables",
            full.len(),
            vars.len()
        )));
    }
    let mut row = Vec::with_capacity(vars.len());
    let mut elems = Vec::new();
    for (i, ((_, t), v)) in vars.iter().zip(full).enumerate() {
        let ty = code.ty(*t);
        let Some(e) = stored_elem(ty) else {
            row.push(v.clone());
            continue;
        };
        let Value::Array(items) = v else {
            return Err(TypeMismatch("array expected".into()));
        };
        let n = u32::try_from(items.len()).map_err(|_| TypeMismatch("array too long".into()))?;
        for (j, item) in items.iter().enumerate() {
            elems.push(ElemWrite {
                scope,
                var: i as u16,
                index: j as u32,
                value: encode_elem(e, code, item)?,
            });
        }
        let was = stored_len(&old[i]).unwrap_or(0);
        for j in n..was {
            elems.push(ElemWrite {
                scope,
                var: i as u16,
                index: j,
                value: None,
            });
        }
        row.push(len_value(n));
    }
    Ok((row, elems))
}
