//! `rexe auxpow check`: decodes a merge-mined header or block in Namecoin's serialization
//! (80-byte header, then the AuxPoW when the version has the auxpow flag, then — for a full
//! block, as Namecoin and Dogecoin nodes return from `getblock HASH 0` — the transactions,
//! which must match the header's merkle root) and reports its parts and the verification
//! result, for pool operators. Every byte must be accounted for: trailing bytes that are not
//! a block's transactions, or a block cut short, are errors (as Namecoin's deserializer has
//! them).

use bitcoin::block::Header as BtcHeader;
use bitcoin::consensus::Decodable;
use bitcoin::hashes::{sha256d, Hash};
use bitcoin::hex::{DisplayHex, FromHex};
use serde_json::{json, Value};

use crate::auxpow::{
    expected_index, merkle_branch_root, AuxPow, ChainId, MAX_CHAIN_BRANCH, MERGED_MINING_HEADER,
    VERSION_AUXPOW,
};

fn header_json(h: &BtcHeader) -> Value {
    json!({
        "hash": h.block_hash().to_string(),
        "version": format!("{:08x}", h.version.to_consensus()),
        "chain_id": ChainId::of_version(h.version.to_consensus()).0,
        "previousblockhash": h.prev_blockhash.to_string(),
        "merkleroot": h.merkle_root.to_string(),
        "time": h.time,
        "bits": format!("{:08x}", h.bits.to_consensus()),
        "nonce": h.nonce,
        "meets_own_target": h.target().is_met_by(h.block_hash()),
    })
}

/// The bytes after the AuxPoW must be a full block's transaction list, consumed exactly and
/// committed to by the header's merkle root; returns how many transactions.
fn block_transactions(header: &BtcHeader, rest: &[u8]) -> Result<usize, String> {
    let txs: Vec<bitcoin::Transaction> = bitcoin::consensus::deserialize(rest).map_err(|e| {
        format!(
            "{} bytes after the AuxPoW are not a block's transactions ({e}): trailing bytes or a truncated block",
            rest.len()
        )
    })?;
    if txs.is_empty() {
        return Err("a block's transaction list is empty".into());
    }
    let root = bitcoin::merkle_tree::calculate_root(txs.iter().map(|t| t.compute_txid()))
        .map(|r| bitcoin::TxMerkleNode::from_raw_hash(r.to_raw_hash()));
    if root != Some(header.merkle_root) {
        return Err("the block's transactions do not match the header's merkle root".into());
    }
    Ok(txs.len())
}

/// Decodes and checks `hex_str` for `chain_id`; every answer (errors included) is JSON.
pub fn inspect(hex_str: &str, chain_id: ChainId) -> Value {
    let bytes = match Vec::<u8>::from_hex(hex_str.trim()) {
        Ok(b) => b,
        Err(e) => return json!({"valid": false, "error": format!("bad hex: {e}")}),
    };
    let mut cur = bitcoin::io::Cursor::new(&bytes[..]);
    let header = match BtcHeader::consensus_decode(&mut cur) {
        Ok(h) => h,
        Err(e) => return json!({"valid": false, "error": format!("header does not decode: {e}")}),
    };
    let mut out = json!({ "header": header_json(&header) });
    if header.version.to_consensus() & VERSION_AUXPOW == 0 {
        out["valid"] = json!(false);
        out["error"] = json!("header version has no auxpow flag (1 << 8): not merge-mined");
        return out;
    }
    let aux = match AuxPow::decode_from(&mut cur) {
        Ok(a) => a,
        Err(e) => {
            out["valid"] = json!(false);
            out["error"] = json!(e.to_string());
            return out;
        }
    };
    let rest = &bytes[cur.position() as usize..];
    if !rest.is_empty() {
        match block_transactions(&header, rest) {
            Ok(n) => out["transactions"] = json!(n),
            Err(e) => {
                out["valid"] = json!(false);
                out["error"] = json!(e);
                return out;
            }
        }
    }
    let aux_hash = sha256d::Hash::hash(&bytes[..80]).to_byte_array();
    let script = aux
        .coinbase_tx
        .input
        .first()
        .map(|i| i.script_sig.to_bytes())
        .unwrap_or_default();
    let find = |needle: &[u8]| script.windows(needle.len()).position(|w| w == needle);
    let tag_at = find(&MERGED_MINING_HEADER);
    // Where `check` looks for the root: the chain-branch root, byte-reversed.
    let mut root = merkle_branch_root(aux_hash, &aux.chain_branch, aux.chain_index);
    root.reverse();
    let root_at = find(&root);
    let (size, nonce) = root_at
        .and_then(|p| script.get(p + 32..p + 40))
        .map(|s| {
            let le = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            (le(&s[..4]), le(&s[4..]))
        })
        .unzip();
    let height = aux.chain_branch.len().min(MAX_CHAIN_BRANCH) as u32;
    let hexes = |b: &[[u8; 32]]| {
        b.iter()
            .map(|b| b.to_lower_hex_string())
            .collect::<Vec<_>>()
    };
    let header_chain_id = ChainId::of_version(header.version.to_consensus());
    out["auxpow"] = json!({
        "parent": header_json(&aux.parent),
        "coinbase_txid": aux.coinbase_tx.compute_txid().to_string(),
        "coinbase_script_sig": script.to_lower_hex_string(),
        "coinbase_branch": hexes(&aux.coinbase_branch),
        "coinbase_branch_len": aux.coinbase_branch.len(),
        "coinbase_index": aux.coinbase_index,
        "chain_branch": hexes(&aux.chain_branch),
        "chain_branch_len": aux.chain_branch.len(),
        "chain_index": aux.chain_index,
        "tag_offset": tag_at,
        "root_offset": root_at,
        "merkle_size": size,
        "merkle_nonce": nonce,
        "expected_index": nonce.map(|n| expected_index(n, chain_id, height)),
    });
    // Namecoin's CheckProofOfWork first requires the header to carry our chain id.
    if header_chain_id != chain_id {
        out["valid"] = json!(false);
        out["error"] = json!(format!(
            "block does not have our chain ID (got {}, expected {})",
            header_chain_id.0, chain_id.0
        ));
        return out;
    }
    let check = aux
        .check(aux_hash, chain_id)
        .and_then(|()| aux.check_pow(header.target()));
    match check {
        Ok(()) => out["valid"] = json!(true),
        Err(e) => {
            out["valid"] = json!(false);
            out["error"] = json!(e.to_string());
        }
    }
    out
}
