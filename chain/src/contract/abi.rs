//! The JSON edge of contracts: call arguments from JSON (an object keyed by parameter name,
//! or an array in parameter order) to their canonical encoding, and state rows to JSON.

use serde_json::Value as Json;

use crate::lang::ast::ScopeKind;
use crate::lang::bytecode::Function;
use crate::lang::value;
use crate::lang::{vm, Verified};

/// The function `name` names in `code`: the only function of that name, or one overload by
/// its signature `name(T1,T2)`; otherwise why not (absent, or overloaded and not named by
/// signature).
pub fn resolve<'c>(code: &'c Verified, name: &str) -> Result<(u16, &'c Function), String> {
    if let Some(found) = code.function(name) {
        return Ok(found);
    }
    let base = name.split('(').next().unwrap_or(name).trim();
    let overloads = code.overloads(base);
    if overloads.is_empty() {
        return Err(format!("{} has no function `{base}`", code.name));
    }
    let names: Vec<String> = overloads.iter().map(|(_, f)| code.signature(f)).collect();
    Err(format!(
        "`{name}` names none of the overloads of `{base}`: name one of {}",
        names.join(", ")
    ))
}

/// For tools: the function `name` names and the encoding of `args` for it. An overloaded
/// name not given by signature takes the one overload whose parameters `args` fit.
pub fn select<'c>(
    code: &'c Verified,
    name: &str,
    args: &Json,
) -> Result<(u16, &'c Function, Vec<u8>), String> {
    if let Some((i, f)) = code.function(name) {
        return encode_args(code, f, args).map(|b| (i, f, b));
    }
    let fits: Vec<_> = code
        .overloads(name)
        .into_iter()
        .filter_map(|(i, f)| encode_args(code, f, args).ok().map(|b| (i, f, b)))
        .collect();
    match fits.len() {
        1 => Ok(fits.into_iter().next().expect("one")),
        0 => Err(resolve(code, name)
            .err()
            .unwrap_or_else(|| format!("no overload of `{name}` takes {args}"))),
        _ => Err(format!(
            "the arguments fit more than one overload of `{name}`: name one of {}",
            fits.iter()
                .map(|(_, f, _)| code.signature(f))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Encodes `args` for `f`.
pub fn encode_args(code: &Verified, f: &Function, args: &Json) -> Result<Vec<u8>, String> {
    let types = code.param_types(f);
    let vals: Vec<value::Value> = match args {
        Json::Object(o) => {
            if let Some(k) = o.keys().find(|k| !f.params.iter().any(|(n, _)| n == *k)) {
                return Err(format!("`{}` has no parameter `{k}`", f.name));
            }
            f.params
                .iter()
                .zip(&types)
                .map(|((n, _), t)| match o.get(n) {
                    Some(j) => value::from_json(j, t, &code.table).map_err(|e| format!("{n}: {e}")),
                    None => Err(format!("missing argument `{n}` of `{}`", f.name)),
                })
                .collect::<Result<_, _>>()?
        }
        Json::Array(a) => {
            if a.len() != types.len() {
                return Err(format!(
                    "`{}` takes {} arguments, {} given",
                    f.name,
                    types.len(),
                    a.len()
                ));
            }
            a.iter()
                .zip(f.params.iter().zip(&types))
                .map(|(j, ((n, _), t))| {
                    value::from_json(j, t, &code.table).map_err(|e| format!("{n}: {e}"))
                })
                .collect::<Result<_, _>>()?
        }
        Json::Null if types.is_empty() => Vec::new(),
        other => {
            return Err(format!(
                "arguments must be a JSON object or array, got {other}"
            ))
        }
    };
    value::encode_tuple(&vals, &types, &code.table).map_err(|e| e.to_string())
}

/// A state row of `scope` as `{variable: value}` (`None` row: all defaults), reading the
/// contents of its stored containers with `elem(variable, row)`.
pub fn row_json(
    code: &Verified,
    scope: ScopeKind,
    row: Option<&[u8]>,
    elem: &mut crate::lang::layout::ElemReader<'_>,
    hrp: &str,
) -> Result<Json, String> {
    let vals = match row {
        Some(b) => vm::decode_row(code, scope, b).map_err(|e| e.to_string())?,
        None => vm::default_row(code, scope),
    };
    let full = crate::lang::layout::full_values(code, scope, &vals, elem)?;
    Ok(values_json(code, scope, &full, hrp))
}

/// A scope's variables (full values) as `{variable: value}`.
pub fn values_json(code: &Verified, scope: ScopeKind, vals: &[value::Value], hrp: &str) -> Json {
    Json::Object(
        code.state_of(scope)
            .iter()
            .zip(vals)
            .map(|((n, t), v)| (n.clone(), value::to_json(v, code.ty(*t), &code.table, hrp)))
            .collect(),
    )
}

/// A scope's variables (full values) from `{variable: value}` JSON; with `base` (full
/// values), only the given variables change (`state.update`), otherwise the others take
/// their defaults (`state.set`).
pub fn row_from_json(
    code: &Verified,
    scope: ScopeKind,
    json: &Json,
    base: Option<Vec<value::Value>>,
) -> Result<Vec<value::Value>, String> {
    let o = json.as_object().ok_or("state must be a JSON object")?;
    let vars = code.state_of(scope);
    if let Some(k) = o.keys().find(|k| !vars.iter().any(|(n, _)| n == *k)) {
        return Err(format!(
            "{} has no @{} state variable `{k}`",
            code.name,
            scope.name()
        ));
    }
    let mut vals = match base {
        Some(b) => b,
        None => vars
            .iter()
            .map(|(_, t)| value::default_value(code.ty(*t), &code.table))
            .collect(),
    };
    for (i, (n, t)) in vars.iter().enumerate() {
        if let Some(j) = o.get(n) {
            vals[i] =
                value::from_json(j, code.ty(*t), &code.table).map_err(|e| format!("{n}: {e}"))?;
        }
    }
    Ok(vals)
}
