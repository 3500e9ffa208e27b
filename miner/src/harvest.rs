//! Merge mining against a real `getblocktemplate`: builds the Bitcoin block a pool would
//! (BIP34 height, rexe's commitment tag in the coinbase scriptSig, witness commitment,
//! template transactions), grinds nonces, and harvests every hash: one that meets the L2
//! target seals the L2 block (an AuxPoW with the coinbase's merkle branch), one that also
//! meets Bitcoin's target is submitted to bitcoind.

use bitcoin::blockdata::script::Builder;
use bitcoin::consensus::encode::{deserialize, serialize_hex};
use bitcoin::hashes::Hash;
use bitcoin::hex::FromHex;
use bitcoin::pow::Target;
use bitcoin::{Block, CompactTarget, ScriptBuf, Transaction, TxOut};
use serde_json::{json, Value};

use crate::auxpow::{AuxPow, AuxTree, ChainId};
use rexe_rpc::client::{RpcClient, RpcError};

/// Where a sealing hash came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The parent is a Bitcoin block on its best chain.
    OnChain,
    /// The parent missed Bitcoin's target (a share): premature work.
    Premature,
    /// The parent was a valid Bitcoin block that did not become the tip.
    Stale,
}

impl Source {
    /// Where a parent block's work went, from what bitcoind answered to its `submitblock`:
    /// `null` (accepted onto the best chain) is on-chain; `inconclusive` (valid, not the tip)
    /// and `duplicate` (already known) are stale; any refusal (`high-hash`, ...) leaves it a
    /// share, premature work.
    pub fn from_submitblock(answer: &Value) -> Source {
        match answer {
            Value::Null => Source::OnChain,
            Value::String(s) if s == "inconclusive" || s == "duplicate" => Source::Stale,
            _ => Source::Premature,
        }
    }

    /// Lowercase name (metrics labels, logs).
    pub fn name(self) -> &'static str {
        match self {
            Source::OnChain => "on-chain",
            Source::Premature => "premature",
            Source::Stale => "stale",
        }
    }
}

/// A sealed L2 block: its AuxPoW and how the work was harvested.
#[derive(Clone, Debug)]
pub struct Harvest {
    /// The seal.
    pub auxpow: AuxPow,
    /// Source of the work.
    pub source: Source,
    /// What bitcoind answered to `submitblock`, when the parent met Bitcoin's target.
    pub submitblock: Option<Value>,
}

/// Merkle branch of leaf 0 (the coinbase) in Bitcoin's tree of `txids` (internal order).
pub fn coinbase_branch(txids: &[[u8; 32]]) -> Vec<[u8; 32]> {
    rexe_merkle::branch(txids, 0)
}

fn hex_field(v: &Value, f: &str) -> Result<String, RpcError> {
    v[f].as_str()
        .map(str::to_owned)
        .ok_or_else(|| RpcError::Malformed(format!("getblocktemplate lacks {f}")))
}

/// Builds the parent block from `getblocktemplate` with `tag` in the coinbase, paying
/// `payout`, with `extranonce` to vary the coinbase.
pub fn block_from_template(
    t: &Value,
    tag: &[u8],
    payout: &ScriptBuf,
    extranonce: u64,
) -> Result<Block, RpcError> {
    let height = t["height"]
        .as_i64()
        .ok_or_else(|| RpcError::Malformed("no height".into()))?;
    let mut sig = Builder::new().push_int(height).into_script().into_bytes();
    sig.extend_from_slice(&extranonce.to_le_bytes());
    sig.extend_from_slice(tag);
    let mut coinbase = Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: bitcoin::absolute::LockTime::ZERO,
        input: vec![bitcoin::TxIn {
            previous_output: bitcoin::OutPoint::null(),
            script_sig: ScriptBuf::from_bytes(sig),
            sequence: bitcoin::Sequence::MAX,
            witness: bitcoin::Witness::new(),
        }],
        output: vec![TxOut {
            value: bitcoin::Amount::from_sat(t["coinbasevalue"].as_u64().unwrap_or(0)),
            script_pubkey: payout.clone(),
        }],
    };
    if let Some(c) = t["default_witness_commitment"].as_str() {
        let spk = Vec::<u8>::from_hex(c).map_err(|e| RpcError::Malformed(e.to_string()))?;
        coinbase.output.push(TxOut {
            value: bitcoin::Amount::ZERO,
            script_pubkey: ScriptBuf::from_bytes(spk),
        });
        coinbase.input[0].witness = bitcoin::Witness::from_slice(&[[0u8; 32]]);
    }
    let mut txdata = vec![coinbase];
    for tx in t["transactions"].as_array().into_iter().flatten() {
        let raw = Vec::<u8>::from_hex(&hex_field(tx, "data")?)
            .map_err(|e| RpcError::Malformed(e.to_string()))?;
        txdata.push(deserialize(&raw).map_err(|e| RpcError::Malformed(e.to_string()))?);
    }
    let bits = u32::from_str_radix(&hex_field(t, "bits")?, 16)
        .map_err(|e| RpcError::Malformed(e.to_string()))?;
    let prev = hex_field(t, "previousblockhash")?
        .parse()
        .map_err(|_| RpcError::Malformed("previousblockhash".into()))?;
    let mut block = Block {
        header: bitcoin::block::Header {
            version: bitcoin::block::Version::from_consensus(
                t["version"].as_i64().unwrap_or(0x2000_0000) as i32,
            ),
            prev_blockhash: prev,
            merkle_root: bitcoin::TxMerkleNode::all_zeros(),
            time: t["curtime"].as_u64().unwrap_or(0) as u32,
            bits: CompactTarget::from_consensus(bits),
            nonce: 0,
        },
        txdata,
    };
    block.header.merkle_root = block.compute_merkle_root().expect("has a coinbase");
    Ok(block)
}

/// Mines on bitcoind's current template until some hash meets `l2_target` (at most
/// `max_hashes`), submitting any Bitcoin block found on the way.
pub fn mine(
    btc: &RpcClient,
    aux_hash: [u8; 32],
    chain_id: ChainId,
    l2_target: Target,
    payout: &ScriptBuf,
    max_hashes: u64,
) -> Result<Option<Harvest>, RpcError> {
    let tree = AuxTree::build(&[(chain_id, aux_hash)]).expect("one chain fits");
    let tag = tree.commitment();
    let t = btc.call("getblocktemplate", json!([{"rules": ["segwit"]}]))?;
    let mut tried = 0u64;
    let mut extranonce = 0u64;
    while tried < max_hashes {
        let mut block = block_from_template(&t, &tag, payout, extranonce)?;
        extranonce += 1;
        let btc_target = block.header.target();
        for nonce in 0..=u32::MAX {
            if tried >= max_hashes {
                return Ok(None);
            }
            tried += 1;
            block.header.nonce = nonce;
            let hash = block.block_hash();
            let is_btc = btc_target.is_met_by(hash);
            let mut submitted = None;
            if is_btc {
                submitted = Some(btc.call("submitblock", json!([serialize_hex(&block)]))?);
            }
            if l2_target.is_met_by(hash) {
                let auxpow = AuxPow::from_block(&block, &tree, chain_id)
                    .expect("the template's block has a coinbase");
                let source = submitted
                    .as_ref()
                    .map_or(Source::Premature, Source::from_submitblock);
                return Ok(Some(Harvest {
                    auxpow,
                    source,
                    submitblock: submitted,
                }));
            }
            if is_btc {
                // The template is used up: its block is on the chain now.
                break;
            }
        }
        if tried < max_hashes {
            return mine(
                btc,
                aux_hash,
                chain_id,
                l2_target,
                payout,
                max_hashes - tried,
            );
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submitblock_answers_map_to_sources() {
        assert_eq!(Source::from_submitblock(&Value::Null), Source::OnChain);
        assert_eq!(
            Source::from_submitblock(&json!("inconclusive")),
            Source::Stale
        );
        assert_eq!(Source::from_submitblock(&json!("duplicate")), Source::Stale);
        assert_eq!(
            Source::from_submitblock(&json!("high-hash")),
            Source::Premature
        );
        assert_eq!(Source::from_submitblock(&json!(false)), Source::Premature);
    }
}
