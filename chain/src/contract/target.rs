//! Where a micro-transaction runs: the global lane, one shard, one address or one integer
//! scope key; the shard that owns a target; the state row key of a (contract, scope,
//! target); contract addresses.

use bitcoin::hashes::{sha256, Hash as _};
use serde::Serialize;

use crate::address::{shard_of, Address};
use crate::encode::{Decode, DecodeError, Encode, Reader};
use crate::hash::tagged_hash;
use crate::lang::ast::ScopeKind;
use crate::shard::{ShardId, ShardOrder};
use crate::store::StateKey;

/// A scope target.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// The contract's global state (the global lane).
    Global,
    /// One shard's `@shard` state.
    Shard(ShardId),
    /// One address's `@address` state.
    Address(Address),
    /// One key of an integer scope (`@uint32` … `@uint512`), big-endian at the scope's width.
    Uint(ScopeKind, Vec<u8>),
}

impl Target {
    /// The scope.
    pub fn scope(&self) -> ScopeKind {
        match self {
            Target::Global => ScopeKind::Global,
            Target::Shard(_) => ScopeKind::Shard,
            Target::Address(_) => ScopeKind::Address,
            Target::Uint(s, _) => *s,
        }
    }

    /// The shard that keeps this target's state ([`ShardId::GLOBAL`] for the global lane).
    /// Integer keys are spread like addresses: the low `order` bits of the first 8 bytes
    /// (LE) of SHA256(scope tag || key).
    pub fn shard(&self, order: ShardOrder) -> ShardId {
        match self {
            Target::Global => ShardId::GLOBAL,
            Target::Shard(s) => *s,
            Target::Address(a) => shard_of(a, order),
            Target::Uint(scope, key) => {
                let mut buf = Vec::with_capacity(key.len() + 1);
                buf.push(scope.tag());
                buf.extend_from_slice(key);
                let h = sha256::Hash::hash(&buf).to_byte_array();
                let low = u64::from_le_bytes(h[..8].try_into().expect("8 bytes"));
                ShardId((low & ((1u64 << order.get()) - 1)) as u16)
            }
        }
    }

    /// The target's bytes in a state key.
    fn key_bytes(&self) -> Vec<u8> {
        match self {
            Target::Global => Vec::new(),
            Target::Shard(s) => s.0.to_be_bytes().to_vec(),
            Target::Address(a) => a.0.to_vec(),
            Target::Uint(_, k) => k.clone(),
        }
    }

    /// The key of this target's row of `scope` for `contract` (`scope` is the target's own
    /// scope, or `@shard` for the shard the target lives on).
    pub fn state_key(&self, contract: &Address) -> StateKey {
        state_key(contract, self.scope(), &self.key_bytes())
    }
}

/// The row key of `contract`'s `scope` state for the target with `target` bytes.
pub fn state_key(contract: &Address, scope: ScopeKind, target: &[u8]) -> StateKey {
    let mut k = [0u8; crate::store::MAX_KEY_LEN];
    k[..32].copy_from_slice(&contract.0);
    k[32] = scope.tag();
    let n = target.len().min(crate::store::MAX_KEY_LEN - 33);
    k[33..33 + n].copy_from_slice(&target[..n]);
    StateKey::from_slice(&k[..33 + n]).expect("within the maximum")
}

/// Splits a state key into contract, scope and target.
pub fn parse_state_key(key: &StateKey) -> Option<(Address, Target)> {
    let b = key.as_bytes();
    if b.len() < 33 {
        return None;
    }
    let contract = Address(b[..32].try_into().ok()?);
    let scope = ScopeKind::from_tag(b[32])?;
    let rest = &b[33..];
    let target = match scope {
        ScopeKind::Global => return None,
        ScopeKind::Shard => Target::Shard(ShardId(u16::from_be_bytes(rest.try_into().ok()?))),
        ScopeKind::Address => Target::Address(Address(rest.try_into().ok()?)),
        s => {
            if rest.len() != s.uint_bits()? as usize / 8 {
                return None;
            }
            Target::Uint(s, rest.to_vec())
        }
    };
    Some((contract, target))
}

/// A contract's address: `tagged_hash("rexe/contract", deployer || nonce LE)` of the
/// deploying transaction.
pub fn contract_address(deployer: &Address, nonce: u64) -> Address {
    let mut b = Vec::with_capacity(40);
    b.extend_from_slice(&deployer.0);
    b.extend_from_slice(&nonce.to_le_bytes());
    Address(tagged_hash("rexe/contract", &b).0)
}

impl Encode for Target {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Target::Global => out.push(0),
            Target::Shard(s) => {
                out.push(1);
                s.0.encode(out);
            }
            Target::Address(a) => {
                out.push(2);
                a.0.encode(out);
            }
            Target::Uint(s, k) => {
                out.push(3);
                out.push(s.tag());
                out.extend_from_slice(k);
            }
        }
    }
}

impl Decode for Target {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match u8::decode(r)? {
            0 => Target::Global,
            1 => Target::Shard(ShardId(u16::decode(r)?)),
            2 => Target::Address(Address(r.array()?)),
            3 => {
                let tag = u8::decode(r)?;
                let s = ScopeKind::from_tag(tag)
                    .filter(|s| s.uint_bits().is_some())
                    .ok_or(DecodeError::Invalid("integer scope"))?;
                let n = s.uint_bits().expect("integer scope") as usize / 8;
                Target::Uint(s, r.take(n)?.to_vec())
            }
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "target",
                    tag,
                })
            }
        })
    }
}

impl Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&match self {
            Target::Global => "@global".to_string(),
            Target::Shard(id) => format!("@shard{id}"),
            Target::Address(a) => format!("@{a}"),
            Target::Uint(sc, k) => format!(
                "@{}:0x{}",
                sc.name(),
                bitcoin::hex::DisplayHex::to_lower_hex_string(&k[..])
            ),
        })
    }
}
