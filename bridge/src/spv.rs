//! SPV: proving that a transaction is in a Bitcoin block with a Merkle branch, in the format
//! Electrum's `blockchain.transaction.get_merkle` returns (sibling hashes from the leaf up,
//! and the transaction's position).
//!
//! Two known traps are closed: a 64-byte transaction (its serialization could also be read
//! as an inner Merkle node, letting a fake "transaction" be proven), and the CVE-2012-2459
//! duplicate trick (Bitcoin pairs the last node of an odd level with itself, so a branch whose
//! sibling equals the running hash can prove a position that does not exist).

use bitcoin::consensus::encode::{deserialize, serialize};
use bitcoin::hashes::{sha256d, Hash};
use bitcoin::{Transaction, TxMerkleNode, Txid};
use thiserror::Error;

/// Why an SPV proof is rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SpvError {
    /// The transaction bytes do not decode (or have trailing bytes).
    #[error("transaction does not decode: {0}")]
    BadTransaction(String),
    /// A transaction whose non-witness serialization is 64 bytes.
    #[error(
        "64-byte transactions cannot be proven (they are indistinguishable from Merkle nodes)"
    )]
    SixtyFourByteTransaction,
    /// More levels than any block can have.
    #[error("merkle branch of {0} levels is too long")]
    BranchTooLong(usize),
    /// The position does not fit the branch length.
    #[error("position {pos} does not fit a branch of {levels} levels")]
    PositionOutOfRange {
        /// Claimed position.
        pos: u32,
        /// Branch length.
        levels: usize,
    },
    /// A right-hand sibling equal to the running hash: the proof claims the padding
    /// duplicate of an odd level's last node (CVE-2012-2459).
    #[error("merkle branch reuses a node (CVE-2012-2459)")]
    DuplicateNode,
    /// The branch does not lead to the block's Merkle root.
    #[error("merkle branch does not lead to the block's merkle root")]
    RootMismatch,
}

/// Decodes a raw transaction and returns it with its txid, refusing 64-byte ones.
pub fn parse_tx(raw: &[u8]) -> Result<(Transaction, Txid), SpvError> {
    let tx: Transaction = deserialize(raw).map_err(|e| SpvError::BadTransaction(e.to_string()))?;
    let mut stripped = tx.clone();
    for i in &mut stripped.input {
        i.witness.clear();
    }
    if serialize(&stripped).len() == 64 {
        return Err(SpvError::SixtyFourByteTransaction);
    }
    let txid = tx.compute_txid();
    Ok((tx, txid))
}

fn pair(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut e = sha256d::Hash::engine();
    bitcoin::hashes::HashEngine::input(&mut e, left);
    bitcoin::hashes::HashEngine::input(&mut e, right);
    sha256d::Hash::from_engine(e).to_byte_array()
}

/// Checks that `txid` sits at `pos` under `root`, with `branch` from the leaf up.
pub fn verify_branch(
    txid: Txid,
    branch: &[[u8; 32]],
    pos: u32,
    root: TxMerkleNode,
) -> Result<(), SpvError> {
    if branch.len() > 32 {
        return Err(SpvError::BranchTooLong(branch.len()));
    }
    if branch.len() < 32 && (pos as u64) >> branch.len() != 0 {
        return Err(SpvError::PositionOutOfRange {
            pos,
            levels: branch.len(),
        });
    }
    let mut h = txid.to_byte_array();
    let mut idx = pos;
    for sib in branch {
        if idx & 1 == 1 {
            // A right child equal to its left sibling only exists as the padding copy of
            // an odd level's last node: claiming that slot is the CVE-2012-2459 trick.
            if *sib == h {
                return Err(SpvError::DuplicateNode);
            }
            h = pair(sib, &h);
        } else {
            // The last node of an odd level is legitimately paired with itself.
            h = pair(&h, sib);
        }
        idx >>= 1;
    }
    if h == root.to_byte_array() {
        Ok(())
    } else {
        Err(SpvError::RootMismatch)
    }
}

/// The branch for leaf `pos` of a block's transaction ids (what an Electrum server returns).
pub fn branch_for(txids: &[Txid], pos: usize) -> Vec<[u8; 32]> {
    let mut level: Vec<[u8; 32]> = txids.iter().map(|t| t.to_byte_array()).collect();
    let mut i = pos;
    let mut branch = Vec::new();
    while level.len() > 1 {
        if level.len() % 2 == 1 {
            level.push(*level.last().expect("non-empty"));
        }
        branch.push(level[i ^ 1]);
        level = level.chunks(2).map(|p| pair(&p[0], &p[1])).collect();
        i >>= 1;
    }
    branch
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::merkle_tree::calculate_root;

    fn ids(n: u8) -> Vec<Txid> {
        (0..n).map(|i| Txid::from_byte_array([i + 1; 32])).collect()
    }

    fn root(t: &[Txid]) -> TxMerkleNode {
        TxMerkleNode::from_raw_hash(calculate_root(t.iter().map(|x| x.to_raw_hash())).unwrap())
    }

    /// Every leaf of trees of 1..=17 leaves verifies against rust-bitcoin's own root, and no
    /// leaf verifies at any other position.
    #[test]
    fn every_leaf_verifies_only_at_its_position() {
        for n in 1..=17u8 {
            let t = ids(n);
            let r = root(&t);
            for i in 0..n as usize {
                let b = branch_for(&t, i);
                verify_branch(t[i], &b, i as u32, r).unwrap();
                for j in 0..(1u32 << b.len()) {
                    if j != i as u32 {
                        assert!(verify_branch(t[i], &b, j, r).is_err(), "n={n} i={i} j={j}");
                    }
                }
            }
        }
    }

    #[test]
    fn trailing_bytes_and_garbage_rejected() {
        assert!(matches!(
            parse_tx(&[0u8; 10]),
            Err(SpvError::BadTransaction(_))
        ));
        assert!(matches!(
            verify_branch(
                Txid::all_zeros(),
                &[[0u8; 32]; 33],
                0,
                TxMerkleNode::all_zeros()
            ),
            Err(SpvError::BranchTooLong(33))
        ));
    }
}
