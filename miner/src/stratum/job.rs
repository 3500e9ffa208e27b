//! Stratum jobs: a Bitcoin template split into `coinb1 ‖ extranonce1 ‖ extranonce2 ‖ coinb2`
//! with rexe's commitment in the coinbase scriptSig, the coinbase merkle branch, and the
//! reassembly of a submitted share into a block header (Stratum v1 + BIP310).

use bitcoin::blockdata::script::Builder;
use bitcoin::consensus::encode::deserialize;
use bitcoin::hashes::Hash;
use bitcoin::hex::{DisplayHex, FromHex};
use bitcoin::pow::Target;
use bitcoin::{Block, Transaction};
use serde_json::Value;

use crate::harvest::coinbase_branch;

/// Bytes of extranonce1 (per connection) and extranonce2 (per share).
pub const EXTRANONCE1_SIZE: usize = 4;
/// See [`EXTRANONCE1_SIZE`].
pub const EXTRANONCE2_SIZE: usize = 4;

/// One job.
#[derive(Clone, Debug)]
pub struct Job {
    /// Job id (hex).
    pub id: String,
    /// Coinbase (non-witness serialization) before the extranonces.
    pub coinb1: Vec<u8>,
    /// Coinbase after the extranonces.
    pub coinb2: Vec<u8>,
    /// Merkle branch of the coinbase (internal order).
    pub branch: Vec<[u8; 32]>,
    /// Header version.
    pub version: i32,
    /// Compact Bitcoin target.
    pub nbits: u32,
    /// Template time.
    pub ntime: u32,
    /// Previous block hash.
    pub prev: bitcoin::BlockHash,
    /// The template's other transactions (for submitblock).
    pub txs: Vec<Transaction>,
    /// The witness commitment output script, if any.
    pub witness_commitment: Option<Vec<u8>>,
    /// L2 work this job commits to (hash as the L2 prints it) and its target.
    pub l2: Option<(String, Target)>,
}

fn put_varint(out: &mut Vec<u8>, n: usize) {
    bitcoin::consensus::Encodable::consensus_encode(&bitcoin::VarInt(n as u64), out)
        .expect("vec write");
}

impl Job {
    /// Builds a job from `getblocktemplate` with `tag` after the extranonces.
    pub fn from_template(
        id: String,
        t: &Value,
        tag: &[u8],
        payout: &bitcoin::ScriptBuf,
        l2: Option<(String, Target)>,
    ) -> Option<Job> {
        let height = t["height"].as_i64()?;
        let value = t["coinbasevalue"].as_u64()?;
        let bip34 = Builder::new().push_int(height).into_script().into_bytes();
        let script_len = bip34.len() + EXTRANONCE1_SIZE + EXTRANONCE2_SIZE + tag.len();
        // version | 1 input | null outpoint | scriptSig len | bip34 ...
        let mut coinb1 = Vec::new();
        coinb1.extend_from_slice(&2i32.to_le_bytes());
        coinb1.push(1);
        coinb1.extend_from_slice(&[0u8; 32]);
        coinb1.extend_from_slice(&u32::MAX.to_le_bytes());
        put_varint(&mut coinb1, script_len);
        coinb1.extend_from_slice(&bip34);
        let mut coinb2 = tag.to_vec();
        coinb2.extend_from_slice(&u32::MAX.to_le_bytes()); // sequence
        let witness_commitment = t["default_witness_commitment"]
            .as_str()
            .and_then(|c| Vec::<u8>::from_hex(c).ok());
        let outputs = 1 + usize::from(witness_commitment.is_some());
        put_varint(&mut coinb2, outputs);
        coinb2.extend_from_slice(&value.to_le_bytes());
        put_varint(&mut coinb2, payout.len());
        coinb2.extend_from_slice(payout.as_bytes());
        if let Some(c) = &witness_commitment {
            coinb2.extend_from_slice(&0u64.to_le_bytes());
            put_varint(&mut coinb2, c.len());
            coinb2.extend_from_slice(c);
        }
        coinb2.extend_from_slice(&0u32.to_le_bytes()); // locktime
        let mut txs = Vec::new();
        for tx in t["transactions"].as_array().into_iter().flatten() {
            let raw = Vec::<u8>::from_hex(tx["data"].as_str()?).ok()?;
            txs.push(deserialize::<Transaction>(&raw).ok()?);
        }
        let mut ids = vec![[0u8; 32]];
        ids.extend(txs.iter().map(|t| t.compute_txid().to_byte_array()));
        let branch = coinbase_branch(&ids);
        Some(Job {
            id,
            coinb1,
            coinb2,
            branch,
            version: t["version"].as_i64()? as i32,
            nbits: u32::from_str_radix(t["bits"].as_str()?, 16).ok()?,
            ntime: t["curtime"].as_u64()? as u32,
            prev: t["previousblockhash"].as_str()?.parse().ok()?,
            txs,
            witness_commitment,
            l2,
        })
    }

    /// The job a pool's `mining.notify` describes (for reassembling its shares: no
    /// template transactions, no L2 work).
    pub fn from_notify(n: &super::protocol::Notify) -> Job {
        Job {
            id: n.job_id.clone(),
            coinb1: n.coinb1.clone(),
            coinb2: n.coinb2.clone(),
            branch: n.merkle_branch.clone(),
            version: n.version as i32,
            nbits: n.nbits,
            ntime: n.ntime,
            prev: bitcoin::BlockHash::from_byte_array(n.prev_blockhash()),
            txs: Vec::new(),
            witness_commitment: None,
            l2: None,
        }
    }

    /// `prevhash` as Stratum sends it: internal order with each 4-byte word byte-swapped.
    pub fn stratum_prevhash(&self) -> String {
        let b = self.prev.to_byte_array();
        let mut out = [0u8; 32];
        for i in 0..8 {
            for j in 0..4 {
                out[i * 4 + j] = b[i * 4 + 3 - j];
            }
        }
        out.to_lower_hex_string()
    }

    /// The `mining.notify` parameters.
    pub fn notify_params(&self, clean: bool) -> Value {
        serde_json::json!([
            self.id,
            self.stratum_prevhash(),
            self.coinb1.to_lower_hex_string(),
            self.coinb2.to_lower_hex_string(),
            self.branch
                .iter()
                .map(|b| b.to_lower_hex_string())
                .collect::<Vec<_>>(),
            format!("{:08x}", self.version),
            format!("{:08x}", self.nbits),
            format!("{:08x}", self.ntime),
            clean
        ])
    }

    /// The coinbase for these extranonces (non-witness serialization).
    pub fn coinbase(&self, en1: &[u8], en2: &[u8]) -> Option<Transaction> {
        let mut raw = self.coinb1.clone();
        raw.extend_from_slice(en1);
        raw.extend_from_slice(en2);
        raw.extend_from_slice(&self.coinb2);
        deserialize(&raw).ok()
    }

    /// The header a share describes.
    pub fn header(
        &self,
        coinbase: &Transaction,
        ntime: u32,
        nonce: u32,
        version: i32,
    ) -> bitcoin::block::Header {
        let root = crate::auxpow::merkle_branch_root(
            coinbase.compute_txid().to_byte_array(),
            &self.branch,
            0,
        );
        bitcoin::block::Header {
            version: bitcoin::block::Version::from_consensus(version),
            prev_blockhash: self.prev,
            merkle_root: bitcoin::TxMerkleNode::from_byte_array(root),
            time: ntime,
            bits: bitcoin::CompactTarget::from_consensus(self.nbits),
            nonce,
        }
    }

    /// The full block for `submitblock`.
    pub fn block(&self, mut coinbase: Transaction, header: bitcoin::block::Header) -> Block {
        if self.witness_commitment.is_some() {
            coinbase.input[0].witness = bitcoin::Witness::from_slice(&[[0u8; 32]]);
        }
        let mut txdata = vec![coinbase];
        txdata.extend(self.txs.iter().cloned());
        Block { header, txdata }
    }
}

/// Share target for Stratum difficulty `d`: `0x00000000ffff0000…0000 / d`, computed in
/// floating point (53 bits of precision are plenty for share accounting; consensus checks
/// use the L2 and Bitcoin targets themselves) and clamped to 2^256 - 1.
pub fn share_target(d: f64) -> Target {
    let t = (0xffff_u64 as f64) * 2f64.powi(208) / d.max(1e-60);
    if !t.is_finite() || t >= 2f64.powi(256) {
        return Target::from_le_bytes([0xff; 32]);
    }
    if t < 1.0 {
        return Target::from_le_bytes([0; 32]);
    }
    let bits = t.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32 - 1075;
    let mant = (bits & ((1u64 << 52) - 1)) | (1u64 << 52);
    let mut limbs = [0u64; 4];
    if exp < 0 {
        limbs[0] = mant >> (-exp);
    } else {
        let (word, bit) = ((exp / 64) as usize, (exp % 64) as u32);
        if word < 4 {
            limbs[word] |= mant << bit;
        }
        if bit > 0 && word + 1 < 4 {
            limbs[word + 1] |= mant >> (64 - bit);
        }
    }
    let mut le = [0u8; 32];
    for (i, l) in limbs.iter().enumerate() {
        le[i * 8..i * 8 + 8].copy_from_slice(&l.to_le_bytes());
    }
    Target::from_le_bytes(le)
}

/// The Stratum difficulty whose share target is `t`.
pub fn difficulty_of(t: Target) -> f64 {
    let le = t.to_le_bytes();
    let mut v = 0f64;
    for (i, b) in le.iter().enumerate() {
        v += (*b as f64) * 2f64.powi(8 * i as i32);
    }
    (0xffffu128 as f64) * 2f64.powi(208) / v.max(1.0)
}

/// Serialized length check helper for tests.
pub fn coinbase_len(job: &Job) -> usize {
    job.coinb1.len() + EXTRANONCE1_SIZE + EXTRANONCE2_SIZE + job.coinb2.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_target_roundtrips_difficulty() {
        for d in [1.0, 2.0, 1e-9, 1e6] {
            let t = share_target(d);
            let back = difficulty_of(t);
            assert!((back / d - 1.0).abs() < 1e-6, "{d} -> {back}");
        }
    }
}
