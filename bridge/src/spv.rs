//! SPV: proving that a transaction is in a Bitcoin block with a Merkle branch, in the format
//! Electrum's `blockchain.transaction.get_merkle` returns (sibling hashes from the leaf up,
//! and the transaction's position).
//!
//! Two known traps are closed: a 64-byte transaction (its serialization could also be read
//! as an inner Merkle node, letting a fake "transaction" be proven), and the CVE-2012-2459
//! duplicate trick (Bitcoin pairs the last node of an odd level with itself, so a branch whose
//! sibling equals the running hash can prove a position that does not exist).
//!
//! A third trap needs more than the transaction itself: the Merkle leaf/node ambiguity. A real
//! 64-byte transaction in a block reads as an inner node `left || right`, so a forged
//! transaction hashing to `left` can be "proven" one level *beneath* the real leaves, with a
//! branch one level longer than the tree is deep. Refusing 64-byte claimed transactions does
//! not stop that (the forged one is not 64 bytes). [`verify_pinned`] closes it as tBTC does: the
//! block's coinbase is proven at index 0, which fixes the tree's depth, and the payment's
//! branch must have exactly that depth.

use bitcoin::consensus::encode::{deserialize, serialize};
use bitcoin::hashes::Hash;
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
    /// The transaction given as the block's coinbase is not a coinbase (one input spending the
    /// null outpoint).
    #[error("the coinbase given with the proof is not a coinbase transaction")]
    NotCoinbase,
    /// The coinbase's branch does not prove it at index 0 of the block.
    #[error("the coinbase proof does not verify at index 0: {0}")]
    BadCoinbaseProof(Box<SpvError>),
    /// The payment's branch is not as deep as the block's tree (pinned by the coinbase proof):
    /// a proof beneath an inner node, or above the leaves.
    #[error("merkle branch has {branch} levels but the block's tree has {tree}")]
    DepthMismatch {
        /// Levels of the payment's branch.
        branch: usize,
        /// Levels of the coinbase's branch: the tree's depth.
        tree: usize,
    },
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
    // A left node equal to its sibling is the last node of an odd level, legitimately
    // paired with itself; a right one equal to the running hash is refused (CVE-2012-2459).
    let h = rexe_merkle::root_from_branch_strict(txid.to_byte_array(), branch, pos)
        .ok_or(SpvError::DuplicateNode)?;
    if h == root.to_byte_array() {
        Ok(())
    } else {
        Err(SpvError::RootMismatch)
    }
}

/// Checks `txid` at `pos` under `root` with its branch pinned to the tree's depth: the block's
/// coinbase (`coinbase_raw`, consensus-encoded) must be a coinbase proven at index 0 by
/// `coinbase_branch`, and `branch` must be exactly as long. Returns the coinbase's txid.
pub fn verify_pinned(
    txid: Txid,
    branch: &[[u8; 32]],
    pos: u32,
    coinbase_raw: &[u8],
    coinbase_branch: &[[u8; 32]],
    root: TxMerkleNode,
) -> Result<Txid, SpvError> {
    let (coinbase, cb_txid) =
        parse_tx(coinbase_raw).map_err(|e| SpvError::BadCoinbaseProof(Box::new(e)))?;
    if !coinbase.is_coinbase() || coinbase.input.len() != 1 {
        return Err(SpvError::NotCoinbase);
    }
    verify_branch(cb_txid, coinbase_branch, 0, root)
        .map_err(|e| SpvError::BadCoinbaseProof(Box::new(e)))?;
    if branch.len() != coinbase_branch.len() {
        return Err(SpvError::DepthMismatch {
            branch: branch.len(),
            tree: coinbase_branch.len(),
        });
    }
    verify_branch(txid, branch, pos, root)?;
    Ok(cb_txid)
}

/// The branch for leaf `pos` of a block's transaction ids (what an Electrum server returns).
pub fn branch_for(txids: &[Txid], pos: usize) -> Vec<[u8; 32]> {
    let leaves: Vec<[u8; 32]> = txids.iter().map(|t| t.to_byte_array()).collect();
    rexe_merkle::branch_and_root(leaves, pos).0
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

    fn coinbase(tag: u8) -> Transaction {
        use bitcoin::{absolute::LockTime, Amount, OutPoint, ScriptBuf, TxIn, TxOut};
        Transaction {
            version: bitcoin::transaction::Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::null(),
                script_sig: ScriptBuf::from_bytes(vec![0x01, tag, 0x51]),
                sequence: bitcoin::Sequence::MAX,
                witness: bitcoin::Witness::new(),
            }],
            output: vec![TxOut {
                value: Amount::from_sat(50_000),
                script_pubkey: ScriptBuf::from_bytes([&[0x00, 0x14][..], &[tag; 20]].concat()),
            }],
        }
    }

    /// The leaf/node ambiguity: a real 64-byte transaction `A || B` in the block is an inner
    /// node to a verifier, so a forged transaction with txid `A` "verifies" one level beneath
    /// the leaves. Pinning the depth with the coinbase proof refuses it; real leaves pass.
    #[test]
    fn forged_proof_beneath_a_64_byte_transaction_is_rejected() {
        let forged = Txid::from_byte_array([0xaa; 32]);
        let sibling = [0xbb; 32];
        let tx64 = [forged.to_byte_array(), sibling].concat();
        let tx64_id = Txid::from_raw_hash(bitcoin::hashes::sha256d::Hash::hash(&tx64));
        let cb = coinbase(7);
        let (cb_raw, cb_id) = (serialize(&cb), cb.compute_txid());
        let leaves = [cb_id, tx64_id];
        let r = root(&leaves);
        let forged_branch = [sibling, cb_id.to_byte_array()];
        // Without the pin, the forged proof passes: this is the hole.
        verify_branch(forged, &forged_branch, 2, r).unwrap();
        let cb_branch = branch_for(&leaves, 0);
        assert_eq!(
            verify_pinned(forged, &forged_branch, 2, &cb_raw, &cb_branch, r),
            Err(SpvError::DepthMismatch { branch: 2, tree: 1 })
        );
        // The real leaves still verify, the coinbase included.
        assert_eq!(
            verify_pinned(tx64_id, &branch_for(&leaves, 1), 1, &cb_raw, &cb_branch, r),
            Ok(cb_id)
        );
        verify_pinned(cb_id, &cb_branch, 0, &cb_raw, &cb_branch, r).unwrap();
    }

    #[test]
    fn coinbase_proof_must_be_a_coinbase_at_index_0() {
        let cb = coinbase(1);
        let mut not_cb = coinbase(2);
        not_cb.input[0].previous_output.vout = 0;
        let (cb_id, other_id) = (cb.compute_txid(), not_cb.compute_txid());
        let leaves = [cb_id, other_id, Txid::from_byte_array([3; 32])];
        let r = root(&leaves);
        let pay = branch_for(&leaves, 2);
        // A non-coinbase offered as the coinbase.
        assert_eq!(
            verify_pinned(
                leaves[2],
                &pay,
                2,
                &serialize(&not_cb),
                &branch_for(&leaves, 1),
                r
            ),
            Err(SpvError::NotCoinbase)
        );
        // The coinbase proven at another index.
        let mut leaves2 = leaves;
        leaves2.swap(0, 1);
        let r2 = root(&leaves2);
        assert!(matches!(
            verify_pinned(
                leaves2[2],
                &branch_for(&leaves2, 2),
                2,
                &serialize(&cb),
                &branch_for(&leaves2, 1),
                r2
            ),
            Err(SpvError::BadCoinbaseProof(_))
        ));
        // Garbage as the coinbase.
        assert!(matches!(
            verify_pinned(leaves[2], &pay, 2, &[1, 2, 3], &branch_for(&leaves, 0), r),
            Err(SpvError::BadCoinbaseProof(_))
        ));
        verify_pinned(
            leaves[2],
            &pay,
            2,
            &serialize(&cb),
            &branch_for(&leaves, 0),
            r,
        )
        .unwrap();
    }
}
