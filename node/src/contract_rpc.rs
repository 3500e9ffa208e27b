//! Contract queries over JSON-RPC: the registry, a contract's interface and source, its state
//! for one target, and the receipts of a transaction's micro-transactions. Deploys and calls
//! are ordinary signed transactions sent with `sendrawtransaction`.

use rexe_chain::contract::Target;
use rexe_chain::lang::ast::ScopeKind;
use rexe_chain::lang::value::parse_address;
use rexe_chain::lang::Verified;
use rexe_chain::{Address, Chain, ShardId};
use serde_json::{json, Value};

use super::rpc::RpcError;

fn address(s: &str) -> Result<Address, RpcError> {
    parse_address(s)
        .map(Address)
        .ok_or_else(|| RpcError::new(-5, format!("invalid address: {s}")))
}

/// A contract's interface: functions with their scopes, parameters and flags, and its state
/// layout per scope.
pub fn interface(code: &Verified) -> Value {
    let tt = &code.table;
    let functions: Vec<Value> = code
        .functions
        .iter()
        .filter(|f| f.kind != rexe_chain::lang::bytecode::FnKind::Lambda)
        .map(|f| {
            json!({
                "name": f.name,
                "signature": code.signature(f),
                "scope": f.scope.name(),
                "params": f.params.iter().map(|(n, t)| json!({"name": n, "type": tt.name(code.ty(*t))})).collect::<Vec<_>>(),
                "returns": f.ret.map(|t| tt.name(code.ty(t))),
                "export": f.export,
                "public": f.public,
                "const": f.is_const,
            })
        })
        .collect();
    let state: serde_json::Map<String, Value> = ScopeKind::ALL
        .iter()
        .filter(|s| code.has_state(**s))
        .map(|s| {
            (
                s.name().to_string(),
                json!(code
                    .state_of(*s)
                    .iter()
                    .map(|(n, t)| json!({"name": n, "type": tt.name(code.ty(*t))}))
                    .collect::<Vec<_>>()),
            )
        })
        .collect();
    json!({"name": code.name, "functions": functions, "state": state})
}

/// `listcontracts`.
pub fn list(chain: &Chain) -> Result<Value, RpcError> {
    let net = chain.params().network;
    Ok(json!(chain
        .contracts()
        .iter()
        .map(|d| json!({
            "address": d.address.encode(net),
            "name": d.name(),
            "deployer": d.deployer.encode(net),
            "height": d.height,
            "origin": d.origin.map(|a| a.encode(net)),
        }))
        .collect::<Vec<_>>()))
}

/// `getcontract address`.
pub fn get(chain: &Chain, addr: &str) -> Result<Value, RpcError> {
    let net = chain.params().network;
    // An address, or a name: the contract `import Name` binds to.
    let d = match parse_address(addr) {
        Some(a) => chain.contracts().get(&Address(a)),
        None if addr.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
            chain.contracts().first_named(addr)
        }
        None => {
            return Err(RpcError::new(
                -8,
                format!("not an address or a contract name: {addr}"),
            ))
        }
    }
    .ok_or_else(|| RpcError::new(-5, "no contract at this address or with this name"))?;
    let mut v = interface(&d.code);
    v["address"] = json!(d.address.encode(net));
    v["deployer"] = json!(d.deployer.encode(net));
    v["height"] = json!(d.height);
    v["origin"] = json!(d.origin.map(|a| a.encode(net)));
    v["source"] = json!(&*d.source);
    v["imports"] = json!(d.imports.iter().map(|a| a.encode(net)).collect::<Vec<_>>());
    v["implements"] = json!(d
        .code
        .implements
        .iter()
        .map(|(i, _)| d.code.table.interfaces[*i as usize].name.clone())
        .collect::<Vec<_>>());
    Ok(v)
}

/// The key of integer scope `scope` (`@uint32` … `@uint512`) for the number `v` (decimal or
/// `0x` hex): big-endian at the scope's width, as [`Target::Uint`] holds it.
pub fn uint_key(scope: ScopeKind, v: &str) -> Result<Vec<u8>, String> {
    let bits = scope
        .uint_bits()
        .ok_or_else(|| format!("@{} is not an integer scope", scope.name()))?;
    let i = rexe_chain::lang::num::Int::parse(v).ok_or_else(|| format!("bad integer {v}"))?;
    let it = rexe_chain::lang::value::uint_ty(bits);
    if !i.fits(rexe_chain::lang::num::NumTy::Fixed(it)) {
        return Err(format!("{v} does not fit uint{bits}"));
    }
    let mut le = Vec::new();
    i.to_le(it, &mut le);
    le.reverse();
    Ok(le)
}

/// Parses a target: `global`, `shard:N`, an address, or `uintN:VALUE`.
pub fn parse_target(s: &str, order: rexe_chain::ShardOrder) -> Result<Target, String> {
    if s == "global" || s == "@global" {
        return Ok(Target::Global);
    }
    if let Some(n) = s.strip_prefix("shard:") {
        let id: u16 = n.parse().map_err(|_| format!("bad shard index {n}"))?;
        if !order.contains(ShardId(id)) {
            return Err(format!("no shard {id}"));
        }
        return Ok(Target::Shard(ShardId(id)));
    }
    if let Some((scope, v)) = s.split_once(':') {
        if let Some(bits) = scope
            .strip_prefix("uint")
            .and_then(|b| b.parse::<u16>().ok())
        {
            let sk = ScopeKind::for_uint(bits).ok_or_else(|| format!("no @{scope} scope"))?;
            return Ok(Target::Uint(sk, uint_key(sk, v)?));
        }
    }
    parse_address(s)
        .map(|a| Target::Address(Address(a)))
        .ok_or_else(|| {
            format!("target must be global, shard:N, an address or uintN:VALUE, got {s}")
        })
}

/// `getcontractstate address [target]`.
pub fn state(chain: &mut Chain, addr: &str, target: Option<&str>) -> Result<Value, RpcError> {
    let a = address(addr)?;
    let t = parse_target(target.unwrap_or("global"), chain.params().shard_order)
        .map_err(|e| RpcError::new(-8, e))?;
    let v = chain
        .contract_state(&a, &t)
        .map_err(|e| RpcError::new(-32603, e.to_string()))?
        .ok_or_else(|| RpcError::new(-5, "no contract at this address"))?;
    Ok(json!({"contract": addr, "target": t, "state": v}))
}

/// `getcontractreceipts txid`.
pub fn receipts(chain: &Chain, txid: &str) -> Result<Value, RpcError> {
    let txid: rexe_chain::Txid = txid
        .parse()
        .map_err(|_| RpcError::new(-8, "txid must be 64 hex digits"))?;
    let rs = chain
        .contract_receipts(txid)
        .map_err(|e| RpcError::new(-32603, e.to_string()))?;
    if rs.is_empty() {
        return Err(RpcError::new(
            -5,
            "no contract receipts for this transaction on the active chain (yet)",
        ));
    }
    Ok(json!(rs
        .into_iter()
        .map(|(h, mut r)| {
            r["height"] = json!(h);
            r
        })
        .collect::<Vec<_>>()))
}
