//! Every block and transaction rule, broken one at a time: each is rejected with its own
//! error and leaves state unchanged.

mod common;

use common::*;
use rexe_chain::chain::AdmissionError;
use rexe_chain::encode::Encode;
use rexe_chain::exec::{ExecError, TxRejection};
use rexe_chain::seal::TestSealer;
use rexe_chain::tx::TxError;
use rexe_chain::{
    shard_of, Address, Amount, Block, BlockError, Chain, Hash256, Network, Payload, SignedTx,
    Signer, Tx,
};

struct Fixture {
    _dir: tempfile::TempDir,
    chain: Chain,
    keys: Vec<Signer>,
    miner: Address,
}

fn fixture() -> Fixture {
    let keys = keys(8);
    let p = params(2, &keys);
    let dir = tempfile::tempdir().unwrap();
    let mut chain = open(dir.path(), &p, 2);
    let miner = Signer::from_seed(b"miner").address();
    mine(&mut chain, miner);
    Fixture {
        _dir: dir,
        chain,
        keys,
        miner,
    }
}

/// A sealed, valid next block carrying one transfer from key 0.
fn valid_block(f: &mut Fixture) -> Block {
    let k = &f.keys[0];
    let nonce = f.chain.account(&k.address()).unwrap().nonce;
    let tx = transfer(k, f.keys[1].address(), 1000, nonce, 10);
    let mut txs = vec![Vec::new(); 4];
    txs[shard_of(&k.address(), f.chain.params().shard_order).index()].push(tx);
    let now = time_of(f.chain.params(), f.chain.tip_height() + 1);
    let mut b = f.chain.template_with(f.miner, now, txs, false).unwrap();
    b.seal = TestSealer::seal(&b.header);
    b
}

fn reseal(mut b: Block) -> Block {
    b.seal = TestSealer::seal(&b.header);
    b
}

/// Submits `b` and checks the rejection, then that nothing changed.
fn rejects(f: &mut Fixture, b: Block, check: impl Fn(&BlockError) -> bool) {
    let tip = f.chain.tip_hash();
    let roots = f.chain.shard_roots();
    let now = b.header.time;
    let err = f.chain.submit(b, now).expect_err("block must be rejected");
    assert!(check(&err), "unexpected error: {err}");
    assert_eq!(f.chain.tip_hash(), tip);
    assert_eq!(f.chain.shard_roots(), roots);
    assert_supply(&mut f.chain);
}

#[test]
fn the_valid_block_used_below_is_accepted() {
    let mut f = fixture();
    let b = valid_block(&mut f);
    let now = b.header.time;
    f.chain.submit(b, now).unwrap();
    assert_eq!(f.chain.tip_height(), 2);
}

#[test]
fn block_with_wrong_state_root_is_rejected() {
    let mut f = fixture();
    let mut b = valid_block(&mut f);
    b.header.state_root = Hash256([1; 32]);
    rejects(&mut f, reseal(b), |e| {
        matches!(e, BlockError::BadStateRoot { .. })
    });
}

#[test]
fn block_with_wrong_outbox_root_is_rejected() {
    let mut f = fixture();
    let mut b = valid_block(&mut f);
    b.header.outbox_root = Hash256([1; 32]);
    rejects(&mut f, reseal(b), |e| {
        matches!(e, BlockError::BadOutboxRoot { .. })
    });
}

#[test]
fn block_with_wrong_tx_root_is_rejected() {
    let mut f = fixture();
    let mut b = valid_block(&mut f);
    b.header.tx_root = Hash256([1; 32]);
    rejects(&mut f, reseal(b), |e| matches!(e, BlockError::BadTxRoot));
}

#[test]
fn block_with_bad_seal_is_rejected() {
    let mut f = fixture();
    let mut b = valid_block(&mut f);
    b.seal = vec![1, 2, 3];
    rejects(&mut f, b, |e| matches!(e, BlockError::BadSeal(_)));
}

#[test]
fn block_with_wrong_bits_is_rejected() {
    let mut f = fixture();
    let mut b = valid_block(&mut f);
    b.header.bits = 0x2000_ffff;
    rejects(&mut f, reseal(b), |e| {
        matches!(e, BlockError::BadBits { .. })
    });
}

#[test]
fn block_time_not_after_median_time_past_is_rejected() {
    let mut f = fixture();
    let mut b = valid_block(&mut f);
    b.header.time = f.chain.params().genesis_time;
    rejects(&mut f, reseal(b), |e| {
        matches!(e, BlockError::TimeTooOld { .. })
    });
}

#[test]
fn block_time_too_far_in_the_future_is_rejected() {
    let mut f = fixture();
    let b = valid_block(&mut f);
    let now = b.header.time;
    let mut late = b.clone();
    late.header.time = now + 3 * 3600;
    let late = reseal(late);
    let tip = f.chain.tip_hash();
    let err = f.chain.submit(late, now).unwrap_err();
    assert!(matches!(err, BlockError::TimeTooNew { .. }), "{err}");
    assert_eq!(f.chain.tip_hash(), tip);
}

#[test]
fn block_with_wrong_height_is_rejected() {
    let mut f = fixture();
    let mut b = valid_block(&mut f);
    b.header.height += 1;
    rejects(&mut f, reseal(b), |e| {
        matches!(e, BlockError::BadHeight { .. })
    });
}

#[test]
fn block_with_unknown_parent_is_rejected() {
    let mut f = fixture();
    let mut b = valid_block(&mut f);
    b.header.prev = rexe_chain::BlockHash::from_byte_array([7; 32]);
    rejects(&mut f, reseal(b), |e| {
        matches!(e, BlockError::PrevUnknown(_))
    });
}

#[test]
fn block_with_missing_shard_list_is_rejected() {
    let mut f = fixture();
    let mut b = valid_block(&mut f);
    b.txs.pop();
    rejects(&mut f, b, |e| matches!(e, BlockError::BadShardCount { .. }));
}

#[test]
fn duplicate_block_is_rejected() {
    let mut f = fixture();
    let b = valid_block(&mut f);
    let now = b.header.time;
    f.chain.submit(b.clone(), now).unwrap();
    rejects(&mut f, b, |e| matches!(e, BlockError::Duplicate(_)));
}

/// Builds a block around a transaction list by computing the header honestly except that
/// the body contains `bad` (the executor must reject it).
fn block_with_txs(f: &mut Fixture, txs: Vec<Vec<SignedTx>>) -> Block {
    let now = time_of(f.chain.params(), f.chain.tip_height() + 1);
    let mut b = f
        .chain
        .template_with(f.miner, now, vec![Vec::new(); 4], false)
        .unwrap();
    b.txs = txs;
    b.header.tx_root = b.compute_tx_root();
    reseal(b)
}

fn tx_rejected(e: &BlockError, want: impl Fn(&TxRejection) -> bool) -> bool {
    matches!(e, BlockError::Exec(ExecError::Tx { reason, .. }) if want(reason))
}

#[test]
fn block_with_bad_signature_is_rejected() {
    let mut f = fixture();
    let k = f.keys[0].clone();
    let mut tx = transfer(&k, f.keys[1].address(), 1000, 0, 10);
    tx.sig[0] ^= 1;
    let tx = SignedTx::from_parts(tx.tx, tx.sig);
    let mut txs = vec![Vec::new(); 4];
    txs[shard_of(&k.address(), f.chain.params().shard_order).index()].push(tx);
    let b = block_with_txs(&mut f, txs);
    rejects(&mut f, b, |e| {
        tx_rejected(e, |r| *r == TxRejection::BadSignature)
    });
}

/// Enough transfers from key 0 on its shard for its signatures to be checked as one BIP340
/// batch (none of them is in the mempool).
fn many_transfers(f: &Fixture) -> (Vec<SignedTx>, usize) {
    let k = &f.keys[0];
    let n = rexe_chain::address::batch::MIN_BATCH as u64 + 8;
    let txs = (0..n)
        .map(|nonce| transfer(k, f.keys[1 + nonce as usize % 7].address(), 1000, nonce, 10))
        .collect();
    (
        txs,
        shard_of(&k.address(), f.chain.params().shard_order).index(),
    )
}

#[test]
fn a_bad_signature_among_many_refuses_the_block_and_without_it_the_block_is_accepted() {
    let mut f = fixture();
    let (good, shard) = many_transfers(&f);
    for (at, byte) in [(0, 0), (11, 40), (good.len() - 1, 63)] {
        let mut bad = good.clone();
        let mut sig = bad[at].sig;
        sig[byte] ^= 1;
        bad[at] = SignedTx::from_parts(bad[at].tx.clone(), sig);
        let mut txs = vec![Vec::new(); 4];
        txs[shard] = bad;
        let b = block_with_txs(&mut f, txs);
        rejects(&mut f, b, |e| {
            tx_rejected(e, |r| *r == TxRejection::BadSignature)
        });
    }
    let mut txs = vec![Vec::new(); 4];
    txs[shard] = good;
    let now = time_of(f.chain.params(), f.chain.tip_height() + 1);
    let mut b = f.chain.template_with(f.miner, now, txs, false).unwrap();
    b.seal = TestSealer::seal(&b.header);
    f.chain.submit(b, now).unwrap();
    assert_eq!(f.chain.tip_height(), 2);
}

#[test]
fn block_whose_signature_was_mangled_after_sealing_does_not_match_its_header() {
    let mut f = fixture();
    let k = f.keys[0].clone();
    let tx = transfer(&k, f.keys[1].address(), 1000, 0, 10);
    f.chain.submit_tx(tx.clone()).unwrap();
    let mut b = valid_block(&mut f);
    // valid_block built its own copy of a nonce-0 transfer; mangle that signature: the
    // txid is unchanged but the wtxid (and so tx_root) is not.
    let s = shard_of(&k.address(), f.chain.params().shard_order).index();
    let t = b.txs[s][0].clone();
    let mut sig = t.sig;
    sig[1] ^= 1;
    b.txs[s][0] = SignedTx::from_parts(t.tx, sig);
    rejects(&mut f, b, |e| matches!(e, BlockError::BadTxRoot));
}

#[test]
fn block_with_transaction_in_the_wrong_shard_is_rejected() {
    let mut f = fixture();
    let k = f.keys[0].clone();
    let tx = transfer(&k, f.keys[1].address(), 1000, 0, 10);
    let right = shard_of(&k.address(), f.chain.params().shard_order).index();
    let mut txs = vec![Vec::new(); 4];
    txs[(right + 1) % 4].push(tx);
    let b = block_with_txs(&mut f, txs);
    rejects(&mut f, b, |e| {
        tx_rejected(e, |r| matches!(r, TxRejection::WrongShard { .. }))
    });
}

#[test]
fn block_with_replayed_nonce_is_rejected() {
    let mut f = fixture();
    let k = f.keys[0].clone();
    let tx = transfer(&k, f.keys[1].address(), 1000, 0, 10);
    let s = shard_of(&k.address(), f.chain.params().shard_order).index();
    let mut txs = vec![Vec::new(); 4];
    txs[s] = vec![tx.clone(), tx];
    let b = block_with_txs(&mut f, txs);
    rejects(&mut f, b, |e| {
        tx_rejected(e, |r| {
            matches!(
                r,
                TxRejection::BadNonce {
                    expected: 1,
                    got: 0
                }
            )
        })
    });
}

#[test]
fn block_spending_more_than_the_balance_is_rejected() {
    let mut f = fixture();
    let k = f.keys[0].clone();
    let tx = transfer(&k, f.keys[1].address(), 100_000_000, 0, 10);
    let s = shard_of(&k.address(), f.chain.params().shard_order).index();
    let mut txs = vec![Vec::new(); 4];
    txs[s].push(tx);
    let b = block_with_txs(&mut f, txs);
    rejects(&mut f, b, |e| {
        tx_rejected(e, |r| matches!(r, TxRejection::InsufficientFunds { .. }))
    });
}

// ---- mempool admission ----

fn admit_rejects(
    _f: &mut Fixture,
    r: Result<rexe_chain::Txid, AdmissionError>,
    check: impl Fn(&AdmissionError) -> bool,
) {
    let err = r.expect_err("must be refused");
    assert!(check(&err), "unexpected error: {err}");
}

fn raw(
    from: &Signer,
    network: Network,
    nonce: u64,
    fee: u64,
    to: Address,
    amount: u64,
) -> SignedTx {
    Tx {
        network,
        from: from.address(),
        nonce,
        max_fee: rexe_chain::fee::GasPrice::from_msat(fee),
        max_tip: rexe_chain::fee::GasPrice::from_msat(fee),
        gas_limit: rexe_chain::tx::TRANSFER_GAS,
        expiry_height: 1_000,
        payload: Payload::Transfer {
            to,
            amount: Amount::from_sat(amount),
        },
    }
    .sign(from)
}

#[test]
fn bad_transactions_are_refused_with_their_reason_and_change_nothing() {
    let mut f = fixture();
    let k = f.keys[0].clone();
    let to = f.keys[1].address();
    let roots = f.chain.shard_roots();

    // Truncated and garbage bytes.
    let good = raw(&k, Network::Regtest, 0, 10, to, 5).to_bytes();
    let r = f.chain.submit_tx_bytes(&good[..good.len() - 1]);
    admit_rejects(&mut f, r, |e| {
        matches!(e, AdmissionError::Invalid(TxError::Malformed(_)))
    });
    let r = f.chain.submit_tx_bytes(&[0xde; 40]);
    admit_rejects(&mut f, r, |e| {
        matches!(e, AdmissionError::Invalid(TxError::Malformed(_)))
    });
    // Oversized.
    let big = vec![0u8; f.chain.params().max_tx_bytes + 1];
    let r = f.chain.submit_tx_bytes(&big);
    admit_rejects(&mut f, r, |e| {
        matches!(e, AdmissionError::Invalid(TxError::Oversized { .. }))
    });
    // Wrong signature.
    let mut t = raw(&k, Network::Regtest, 0, 10, to, 5);
    t.sig[5] ^= 0x40;
    let t = SignedTx::from_parts(t.tx, t.sig);
    let r = f.chain.submit_tx(t);
    admit_rejects(&mut f, r, |e| matches!(e, AdmissionError::BadSignature));
    // Zero amount.
    let r = f.chain.submit_tx(raw(&k, Network::Regtest, 0, 10, to, 0));
    admit_rejects(&mut f, r, |e| {
        matches!(e, AdmissionError::Invalid(TxError::ZeroAmount))
    });
    // Amount overflow.
    let r = f
        .chain
        .submit_tx(raw(&k, Network::Regtest, 0, 10, to, u64::MAX));
    admit_rejects(&mut f, r, |e| {
        matches!(e, AdmissionError::Invalid(TxError::AmountOverflow))
    });
    // Fee above balance.
    let r = f
        .chain
        .submit_tx(raw(&k, Network::Regtest, 0, 200_000_000, to, 1));
    admit_rejects(&mut f, r, |e| {
        matches!(e, AdmissionError::InsufficientFunds { .. })
    });
    // Wrong network.
    let r = f.chain.submit_tx(raw(&k, Network::Main, 0, 10, to, 5));
    admit_rejects(&mut f, r, |e| {
        matches!(e, AdmissionError::Invalid(TxError::WrongNetwork { .. }))
    });
    // Nonce too high.
    let r = f
        .chain
        .submit_tx(raw(&k, Network::Regtest, 1_000, 10, to, 5));
    admit_rejects(&mut f, r, |e| {
        matches!(e, AdmissionError::NonceTooHigh { .. })
    });
    // Payee not a key.
    let r = f
        .chain
        .submit_tx(raw(&k, Network::Regtest, 0, 10, Address([0xff; 32]), 5));
    admit_rejects(&mut f, r, |e| {
        matches!(e, AdmissionError::Invalid(TxError::InvalidPayee))
    });
    // Expired.
    let mut t = raw(&k, Network::Regtest, 0, 10, to, 5).tx;
    t.expiry_height = 1;
    let r = f.chain.submit_tx(t.sign(&k));
    admit_rejects(&mut f, r, |e| matches!(e, AdmissionError::Expired { .. }));

    assert!(f.chain.mempool().is_empty());
    assert_eq!(f.chain.shard_roots(), roots);

    // Replayed nonce: accepted once, mined, then refused.
    let t = raw(&k, Network::Regtest, 0, 10, to, 5);
    f.chain.submit_tx(t.clone()).unwrap();
    let r = f.chain.submit_tx(t.clone());
    admit_rejects(&mut f, r, |e| matches!(e, AdmissionError::AlreadyKnown(_)));
    mine(&mut f.chain, f.miner);
    let r = f.chain.submit_tx(t);
    admit_rejects(&mut f, r, |e| {
        matches!(
            e,
            AdmissionError::NonceTooLow {
                expected: 1,
                got: 0
            }
        )
    });
    assert_supply(&mut f.chain);
}

#[test]
fn replacement_needs_a_higher_fee() {
    let mut f = fixture();
    let k = f.keys[0].clone();
    let to = f.keys[1].address();
    f.chain
        .submit_tx(raw(&k, Network::Regtest, 0, 10, to, 5))
        .unwrap();
    let r = f.chain.submit_tx(raw(&k, Network::Regtest, 0, 10, to, 6));
    admit_rejects(&mut f, r, |e| {
        matches!(e, AdmissionError::ReplacementUnderpaid { .. })
    });
    f.chain
        .submit_tx(raw(&k, Network::Regtest, 0, 11, to, 6))
        .unwrap();
    assert_eq!(f.chain.mempool().len(), 1);
    let b = mine(&mut f.chain, f.miner);
    assert_eq!(b.tx_count(), 1);
    assert_eq!(
        b.txs.iter().flatten().next().unwrap().tx.max_fee,
        rexe_chain::fee::GasPrice::from_msat(11)
    );
}

#[test]
fn asert_difficulty_rises_when_blocks_come_fast_and_wrong_bits_are_rejected() {
    let keys = keys(2);
    let mut p = params(1, &keys);
    p.fixed_difficulty = false;
    p.block_interval_secs = 10;
    p.asert_halflife_secs = 20;
    let dir = tempfile::tempdir().unwrap();
    let mut chain = open(dir.path(), &p, 1);
    let miner = Signer::from_seed(b"asert").address();
    let target = |bits: u32| {
        bitcoin::pow::Target::from_compact(bitcoin::pow::CompactTarget::from_consensus(bits))
    };
    let mut last = p.pow_limit_bits;
    // Blocks one second apart are 9 s ahead of schedule each: the target keeps shrinking.
    for h in 1..=6u64 {
        let now = p.genesis_time + h;
        let mut b = chain
            .template_with(miner, now, vec![Vec::new(); 2], false)
            .unwrap();
        if h > 1 {
            assert!(target(b.header.bits) < target(last), "height {h}");
        }
        last = b.header.bits;
        b.seal = TestSealer::seal(&b.header);
        chain.submit(b, now).unwrap();
    }
    // The easiest target is no longer acceptable.
    let now = p.genesis_time + 7;
    let mut b = chain
        .template_with(miner, now, vec![Vec::new(); 2], false)
        .unwrap();
    b.header.bits = p.pow_limit_bits;
    b.seal = TestSealer::seal(&b.header);
    let err = chain.submit(b, now).unwrap_err();
    assert!(matches!(err, BlockError::BadBits { .. }), "{err}");
}
