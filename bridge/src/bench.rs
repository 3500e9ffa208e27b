//! Micro-benchmarks for `rexe bench`: header submissions and SPV claims per second.
//! Setup (mining regtest headers, building blocks) is not timed.

use std::time::Instant;

use bitcoin::absolute::LockTime;
use bitcoin::block::{Header, Version};
use bitcoin::hashes::Hash;
use bitcoin::{
    Amount, CompactTarget, Network, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxMerkleNode,
    TxOut, Txid, Witness,
};

use crate::headers::HeaderChain;
use crate::peg::{
    commitment_script, L2Address, MatchId, NewOrder, PaymentProof, Peg, PegParams, Sats,
};

const REGTEST_BITS: u32 = 0x207f_ffff;

fn mine(prev: &Header, root: TxMerkleNode) -> Header {
    let mut h = Header {
        version: Version::from_consensus(0x2000_0000),
        prev_blockhash: prev.block_hash(),
        merkle_root: root,
        time: prev.time + 600,
        bits: CompactTarget::from_consensus(REGTEST_BITS),
        nonce: 0,
    };
    while h.validate_pow(h.target()).is_err() {
        h.nonce += 1;
    }
    h
}

/// Submits `n` regtest headers (in batches of 2,000) to a fresh chain; returns headers/s.
pub fn bench_headers(n: usize) -> f64 {
    let mut chain = HeaderChain::new(Network::Regtest);
    let mut prev = chain.best_tip().1.header;
    let mut headers = Vec::with_capacity(n);
    for i in 0..n {
        let h = mine(&prev, TxMerkleNode::from_byte_array([(i % 251) as u8; 32]));
        headers.push(h);
        prev = h;
    }
    let now = prev.time;
    let start = Instant::now();
    for batch in headers.chunks(2_000) {
        if chain.submit(batch, now).is_err() {
            return 0.0;
        }
    }
    n as f64 / start.elapsed().as_secs_f64().max(1e-9)
}

fn branch(tree: &rexe_merkle::Tree, i: usize) -> Vec<TxMerkleNode> {
    tree.branch(i)
        .into_iter()
        .map(TxMerkleNode::from_byte_array)
        .collect()
}

/// Verifies and applies `n` claims (one match each, every payment its own transaction in one
/// block of `n + 1` transactions, so Merkle branches have ~log2(n) levels); returns claims/s.
pub fn bench_claims(n: usize) -> f64 {
    let n = n.max(1);
    let mut params = PegParams::default_for(Network::Regtest);
    params.confirmations = 1;
    let mut peg = Peg::new(params);
    let script = ScriptBuf::from_bytes([&[0x00, 0x14][..], &[7u8; 20][..]].concat());
    let Ok(order) = peg.place_order(
        L2Address([1; 32]),
        NewOrder {
            amount: Sats(10_000 * n as u64),
            btc_script: script.clone(),
            min_fill: Sats(0),
            fee_bps: 0,
            expiry_height: u64::MAX,
        },
        0,
    ) else {
        return 0.0;
    };
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        match peg.take(
            order,
            Sats(10_000),
            L2Address([2; 32]),
            L2Address([2; 32]),
            Sats(1_000),
            0,
            0,
        ) {
            Ok(m) => ids.push(m),
            Err(_) => return 0.0,
        }
    }
    let mut txs: Vec<Transaction> = Vec::with_capacity(n + 1);
    let input = |i: u32| TxIn {
        previous_output: OutPoint {
            txid: Txid::from_byte_array([3; 32]),
            vout: i,
        },
        script_sig: ScriptBuf::new(),
        sequence: Sequence::MAX,
        witness: Witness::new(),
    };
    txs.push(Transaction {
        version: bitcoin::transaction::Version::ONE,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            ..input(0)
        }],
        output: vec![TxOut {
            value: Amount::from_sat(1),
            script_pubkey: script.clone(),
        }],
    });
    for (i, id) in ids.iter().enumerate() {
        txs.push(Transaction {
            version: bitcoin::transaction::Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![input(i as u32)],
            output: vec![
                TxOut {
                    value: Amount::from_sat(10_000),
                    script_pubkey: script.clone(),
                },
                TxOut {
                    value: Amount::ZERO,
                    script_pubkey: commitment_script(&[*id]),
                },
            ],
        });
    }
    let tree = rexe_merkle::Tree::new(
        txs.iter()
            .map(|t| t.compute_txid().to_byte_array())
            .collect(),
    );
    let root = TxMerkleNode::from_byte_array(tree.root());
    let mut chain = HeaderChain::new(Network::Regtest);
    let genesis = chain.best_tip().1.header;
    let block = mine(&genesis, root);
    if chain.submit(&[block], block.time).is_err() {
        return 0.0;
    }
    let hash = block.block_hash();
    let work: Vec<(Vec<u8>, Vec<TxMerkleNode>, MatchId)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            (
                bitcoin::consensus::serialize(&txs[i + 1]),
                branch(&tree, i + 1),
                *id,
            )
        })
        .collect();
    let coinbase_tx = bitcoin::consensus::serialize(&txs[0]);
    let coinbase_branch = branch(&tree, 0);
    let start = Instant::now();
    for (i, (raw, br, id)) in work.iter().enumerate() {
        let proof = PaymentProof {
            raw_tx: raw,
            block_hash: hash,
            branch: br,
            position: (i + 1) as u32,
            coinbase_tx: &coinbase_tx,
            coinbase_branch: &coinbase_branch,
        };
        if peg.claim(&chain, &proof, &[*id]).is_err() {
            return 0.0;
        }
    }
    n as f64 / start.elapsed().as_secs_f64().max(1e-9)
}

#[cfg(test)]
mod tests {
    #[test]
    fn benches_run() {
        assert!(super::bench_headers(50) > 0.0);
        assert!(super::bench_claims(50) > 0.0);
    }

    /// `cargo test -p rexe-bridge --release --lib print_bench_figures -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn print_bench_figures() {
        println!("headers/s: {:.0}", super::bench_headers(20_000));
        println!("claims/s: {:.0}", super::bench_claims(20_000));
    }
}
