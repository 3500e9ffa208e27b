//! Relay proofs over JSON-RPC: `getrelayproof` serves the proof of what one chunk of a block
//! sent one partition, `verifyrelayproof` checks one against the headers this node knows
//! (the pair Bitcoin Core has in `gettxoutproof`/`verifytxoutproof`).

use bitcoin::hex::{DisplayHex, FromHex};
use rexe_chain::chain::RelayProofQueryError;
use rexe_chain::encode::{Decode, Encode};
use rexe_chain::proof::RelayProof;
use rexe_chain::{BlockHash, Chain, ShardId};
use serde_json::{json, Value};

use super::rpc::RpcError;

/// Largest proof accepted: 2^16 relays of a few hundred bytes would be far past any block.
const MAX_PROOF_HEX: usize = 16 << 20;

/// A partition named as a shard number, `global`, or as rexe prints them (`#3`, `#global`).
pub fn partition(v: &Value, name: &str) -> Result<ShardId, RpcError> {
    let bad = || RpcError::new(-8, format!("{name} must be a shard number or \"global\""));
    match v {
        Value::Number(n) => n
            .as_u64()
            .filter(|&s| s < u64::from(u16::MAX))
            .map(|s| ShardId(s as u16))
            .ok_or_else(bad),
        Value::String(s) => {
            let s = s.strip_prefix('#').unwrap_or(s);
            if s == "global" {
                Ok(ShardId::GLOBAL)
            } else {
                s.parse::<u16>()
                    .ok()
                    .filter(|&s| s != u16::MAX)
                    .map(ShardId)
                    .ok_or_else(bad)
            }
        }
        _ => Err(bad()),
    }
}

fn name(p: ShardId) -> Value {
    if p.is_global() {
        json!("global")
    } else {
        json!(p.0)
    }
}

/// `getrelayproof`: the relays `origin` sent `target` in active block `hash`, and the proof.
pub fn get(
    chain: &Chain,
    hash: BlockHash,
    origin: ShardId,
    target: ShardId,
) -> Result<Value, RpcError> {
    let proof = chain
        .relay_proof(hash, origin, target)
        .map_err(|e| match e {
            RelayProofQueryError::NotActive(_) => RpcError::new(-5, e.to_string()),
            RelayProofQueryError::OutOfRange(_) => RpcError::new(-8, e.to_string()),
            RelayProofQueryError::Pruned { .. } => RpcError::new(-1, e.to_string()),
            _ => RpcError::new(-32603, e.to_string()),
        })?;
    let header = chain
        .header(&hash)
        .ok_or_else(|| RpcError::new(-5, "block not found"))?;
    Ok(json!({
        "blockhash": hash.to_string(),
        "height": header.height,
        "origin": name(origin),
        "target": name(target),
        "relays": proof.relays,
        "origin_outbox_root": proof.origin_outbox_root(header).map(|h| h.to_string()),
        "outbox_root": header.outbox_root.to_string(),
        "proof": proof.to_bytes().to_lower_hex_string(),
    }))
}

/// `verifyrelayproof`: checks `hex` against the header it names. A proof that does not hold
/// is answered `valid: false` with the reason; malformed hex or an unknown block is an error.
pub fn verify(chain: &Chain, hex: &str) -> Result<Value, RpcError> {
    if hex.len() > MAX_PROOF_HEX {
        return Err(RpcError::new(-22, "proof too large"));
    }
    let bytes = Vec::<u8>::from_hex(hex).map_err(|_| RpcError::new(-22, "proof is not hex"))?;
    let proof = RelayProof::from_bytes(&bytes)
        .map_err(|e| RpcError::new(-22, format!("proof decode failed: {e}")))?;
    let header = chain
        .header(&proof.block)
        .ok_or_else(|| RpcError::new(-5, format!("block {} not known", proof.block)))?;
    let active = chain.hash_at(header.height) == Some(proof.block);
    let mut v = json!({
        "blockhash": proof.block.to_string(),
        "height": header.height,
        "in_active_chain": active,
        "origin": name(proof.origin),
        "target": name(proof.target),
        "relays": proof.relays.len(),
    });
    match proof.verify(header) {
        Ok(()) => v["valid"] = json!(true),
        Err(e) => {
            v["valid"] = json!(false);
            v["error"] = json!(e.to_string());
        }
    }
    Ok(v)
}
