//! Peg scenarios: happy paths and every attack, with the supply invariant checked after each
//! step (see `common::World::check`).

mod common;

use bitcoin::{ScriptBuf, TxMerkleNode};
use common::*;
use rexe_bridge::peg::{commitment_script, ClaimError, Effect, MatchState, Sats, TakeError};
use rexe_bridge::spv::SpvError;

const BOND: u64 = 1_000;

#[test]
fn one_order_fully_taken_paid_claimed() {
    let mut w = World::new();
    let maker = addr(1);
    let taker = addr(2);
    let script = p2wpkh(0xaa);
    let o = w.order(maker, 100_000, script.clone(), 10_000, 50, 100);
    let m = w.take(o, 100_000, taker, BOND).unwrap();
    let owed = w.peg.get_match(m).unwrap().amount_btc_owed;
    assert_eq!(owed, Sats(99_500));
    let tx = payment(vec![
        out(&script, 99_500),
        out(&commitment_script(&[m]), 0),
        out(&p2wpkh(0x01), 5_000),
    ]);
    let (_, inc) = w.mine(&[tx]);
    w.mine_empty(2);
    let before = w.ledger.balance(taker);
    let eff = w.claim(&inc[0], &[m]).unwrap();
    assert_eq!(eff.len(), 2);
    assert_eq!(w.ledger.balance(taker), before + 100_000 + u128::from(BOND));
    assert!(matches!(
        w.peg.get_match(m).unwrap().state,
        MatchState::Claimed { .. }
    ));
    assert_eq!(w.peg.order(o).unwrap().remaining, Sats(0));
}

#[test]
fn one_peg_in_split_across_three_orders_one_tx() {
    let mut w = World::new();
    let (s1, s2, s3) = (p2wpkh(1), p2wpkh(2), p2wpkh(3));
    let o1 = w.order(addr(1), 50_000, s1.clone(), 1_000, 30, 100);
    let o2 = w.order(addr(2), 50_000, s2.clone(), 1_000, 10, 100);
    let o3 = w.order(addr(3), 50_000, s3.clone(), 1_000, 10, 100);
    let plan = w.peg.matcher(Sats(120_000), w.l2_height);
    // Lowest fee first, then oldest: o2, o3, then o1 for the rest.
    assert_eq!(
        plan,
        vec![(o2, Sats(50_000)), (o3, Sats(50_000)), (o1, Sats(20_000))]
    );
    let taker = addr(9);
    let ids: Vec<_> = plan
        .iter()
        .map(|(o, a)| w.take(*o, a.0, taker, BOND).unwrap())
        .collect();
    let mut outs: Vec<_> = ids
        .iter()
        .map(|id| {
            let m = w.peg.get_match(*id).unwrap();
            out(&m.payee_script, m.amount_btc_owed.0)
        })
        .collect();
    outs.push(out(&commitment_script(&ids), 0));
    let (_, inc) = w.mine(&[payment(outs)]);
    w.mine_empty(2);
    let eff = w.claim(&inc[0], &ids).unwrap();
    let released: u64 = eff
        .iter()
        .filter_map(|e| {
            if let Effect::Release { amount, .. } = e {
                Some(amount.0)
            } else {
                None
            }
        })
        .sum();
    assert_eq!(released, 120_000);
    assert_eq!(w.peg.order(o1).unwrap().remaining, Sats(30_000));
    let _ = (s1, s2, s3);
}

#[test]
fn partial_fills_and_min_fill() {
    let mut w = World::new();
    let s = p2wpkh(4);
    let o = w.order(addr(1), 100_000, s.clone(), 30_000, 0, 100);
    assert_eq!(
        w.take(o, 10_000, addr(2), BOND),
        Err(TakeError::BelowMinFill {
            amount: 10_000,
            min_fill: 30_000
        })
    );
    let m1 = w.take(o, 40_000, addr(2), BOND).unwrap();
    let m2 = w.take(o, 40_000, addr(3), BOND).unwrap();
    // The last 20,000 is below min_fill but is the whole remainder: allowed.
    let m3 = w.take(o, 20_000, addr(4), BOND).unwrap();
    assert_eq!(
        w.take(o, 1, addr(4), BOND),
        Err(TakeError::ExceedsRemaining {
            amount: 1,
            remaining: 0
        })
    );
    let tx = payment(vec![
        out(&s, 40_000),
        out(&s, 40_000),
        out(&s, 20_000),
        out(&commitment_script(&[m1, m2, m3]), 0),
    ]);
    let (_, inc) = w.mine(&[tx]);
    w.mine_empty(2);
    w.claim(&inc[0], &[m3, m1, m2]).unwrap();
}

#[test]
fn cancel_refunds_rest_and_later_match_expiry_refunds_maker() {
    let mut w = World::new();
    let maker = addr(1);
    let o = w.order(maker, 100_000, p2wpkh(5), 1_000, 0, 100);
    let m = w.take(o, 30_000, addr(2), BOND).unwrap();
    assert!(w.peg.cancel(o, addr(2)).is_err());
    let eff = w.peg.cancel(o, maker).unwrap();
    w.ledger.apply(&eff);
    w.check();
    assert_eq!(
        eff,
        vec![Effect::Refund {
            to: maker,
            amount: Sats(70_000),
            order_id: o
        }]
    );
    // The open match expires unpaid: escrow and bond go to the maker.
    w.mine_empty(10 + 3 + 2 + 1);
    let eff = w.expire();
    assert_eq!(eff.len(), 2);
    assert_eq!(w.peg.get_match(m).unwrap().state, MatchState::Expired);
    assert_eq!(w.ledger.balance(maker), 10_000_000 + u128::from(BOND));
}

#[test]
fn order_expiry_refunds_and_take_of_expired_order_fails() {
    let mut w = World::new();
    let o = w.order(addr(1), 100_000, p2wpkh(6), 1_000, 0, 10);
    w.l2_height = 10;
    assert_eq!(
        w.take(o, 50_000, addr(2), BOND),
        Err(TakeError::OrderExpired {
            order: o,
            expiry: 10,
            height: 10
        })
    );
    assert!(w.peg.matcher(Sats(50_000), w.l2_height).is_empty());
    let eff = w.expire();
    assert_eq!(eff.len(), 1);
    assert!(w.peg.order(o).is_none());
    assert_eq!(w.ledger.balance(addr(1)), 10_000_000);
}

/// An order of `amount` (payee p2wpkh(7)) with a take of 60,000 paid one block after its
/// deadline, and Bitcoin past the expiry height (not yet expired on the peg).
fn paid_after_expiry(
    amount: u64,
) -> (
    World,
    rexe_bridge::peg::OrderId,
    rexe_bridge::peg::MatchId,
    Vec<Included>,
) {
    let mut w = World::new();
    let s = p2wpkh(7);
    let o = w.order(addr(1), amount, s.clone(), 1_000, 0, 1_000);
    let m = w.take(o, 60_000, addr(2), BOND).unwrap();
    let deadline = w.peg.get_match(m).unwrap().btc_deadline_height;
    w.mine_empty((deadline - w.btc_height()) as usize);
    let tx = payment(vec![out(&s, 60_000), out(&commitment_script(&[m]), 0)]);
    let (_, late) = w.mine(&[tx]);
    w.mine_empty(5);
    (w, o, m, late)
}

#[test]
fn match_expiry_returns_escrow_to_order_and_bond_to_maker_and_late_claim_draws_it_back() {
    let (mut w, o, m, late) = paid_after_expiry(100_000);
    let eff = w.expire();
    assert_eq!(
        eff,
        vec![Effect::BondToMaker {
            to: addr(1),
            amount: Sats(BOND),
            match_id: m
        }]
    );
    assert_eq!(w.peg.order(o).unwrap().remaining, Sats(100_000));
    // Nobody re-took the escrow: the late payment still gets it, out of the order. The bond
    // already went to the maker.
    assert_eq!(
        w.claim(&late[0], &[m]).unwrap(),
        vec![Effect::Release {
            to: addr(2),
            amount: Sats(60_000),
            match_id: m
        }]
    );
    assert_eq!(w.peg.order(o).unwrap().remaining, Sats(40_000));
    assert!(matches!(
        w.peg.get_match(m).unwrap().state,
        MatchState::Claimed { .. }
    ));
}

/// A payment confirmed after the deadline, before the match expires (a fee spike): the escrow
/// is released, the maker keeps the late fee out of the bond, the rest goes back.
#[test]
fn late_payment_before_expiry_is_claimed_with_the_late_fee() {
    let Paid { mut w, m, s } = setup();
    let owed = w.peg.get_match(m).unwrap().amount_btc_owed.0;
    let deadline = w.peg.get_match(m).unwrap().btc_deadline_height;
    w.mine_empty((deadline - w.btc_height()) as usize);
    let tx = payment(vec![out(&s, owed), out(&commitment_script(&[m]), 0)]);
    let (_, inc) = w.mine(&[tx]);
    w.mine_empty(2);
    assert!(!w.peg.has_due(w.l2_height, w.btc_height()));
    let fee = w.peg.params().late_fee(Sats(BOND));
    assert_eq!(fee, Sats(BOND / 2));
    assert_eq!(
        w.claim(&inc[0], &[m]).unwrap(),
        vec![
            Effect::Release {
                to: addr(2),
                amount: Sats(50_000),
                match_id: m
            },
            Effect::BondToMaker {
                to: addr(1),
                amount: fee,
                match_id: m
            },
            Effect::BondReturn {
                to: addr(2),
                amount: Sats(BOND - fee.0),
                match_id: m
            },
        ]
    );
}

/// Late, and the escrow went back to the order at expiry and someone else took it: the late
/// payment has nothing left to claim, and says so with its own error.
#[test]
fn late_payment_after_the_escrow_was_retaken_is_refused() {
    let (mut w, o, m, late) = paid_after_expiry(60_000);
    w.expire();
    // Someone else takes the escrow that came back.
    w.take(o, 30_000, addr(3), BOND).unwrap();
    let before = w.peg.totals();
    assert_eq!(w.claim(&late[0], &[m]), Err(ClaimError::EscrowRetaken(m)));
    assert_eq!(before, w.peg.totals());
}

#[test]
fn bond_not_paid() {
    let mut w = World::new();
    let o = w.order(addr(1), 500_000, p2wpkh(8), 1_000, 0, 100);
    assert_eq!(
        w.take(o, 500_000, addr(2), 4_999),
        Err(TakeError::BondTooSmall {
            paid: 4_999,
            required: 5_000
        })
    );
    assert_eq!(
        w.take(o, 50_000, addr(2), 999),
        Err(TakeError::BondTooSmall {
            paid: 999,
            required: 1_000
        })
    );
}

#[test]
fn dust_take_rejected_per_script_type() {
    let mut w = World::new();
    let o = w.order(addr(1), 100_000, p2wpkh(9), 0, 0, 100);
    // P2WPKH dust limit at 3 sat/vB is 294 sats (Core GetDustThreshold).
    assert_eq!(
        w.take(o, 293, addr(2), BOND),
        Err(TakeError::Dust {
            owed: 293,
            dust: 294
        })
    );
    w.take(o, 294, addr(2), BOND).unwrap();
    let p2pkh = bitcoin::ScriptBuf::new_p2pkh(&bitcoin::PubkeyHash::from_byte_array([1; 20]));
    let o2 = w.order(addr(1), 100_000, p2pkh, 0, 0, 100);
    assert_eq!(
        w.take(o2, 545, addr(2), BOND),
        Err(TakeError::Dust {
            owed: 545,
            dust: 546
        })
    );
}

use bitcoin::hashes::Hash;

struct Paid {
    w: World,
    m: rexe_bridge::peg::MatchId,
    s: bitcoin::ScriptBuf,
}

fn setup() -> Paid {
    let mut w = World::new();
    let s = p2wpkh(0x11);
    let o = w.order(addr(1), 100_000, s.clone(), 1_000, 100, 1_000);
    let m = w.take(o, 50_000, addr(2), BOND).unwrap();
    Paid { w, m, s }
}

#[test]
fn double_claim_of_same_outpoint() {
    let Paid { mut w, m, s } = setup();
    let owed = w.peg.get_match(m).unwrap().amount_btc_owed.0;
    let tx = payment(vec![out(&s, owed), out(&commitment_script(&[m]), 0)]);
    let (_, inc) = w.mine(&[tx]);
    w.mine_empty(2);
    w.claim(&inc[0], &[m]).unwrap();
    assert_eq!(w.claim(&inc[0], &[m]), Err(ClaimError::AlreadyClaimed(m)));
    // A second match on the same payee cannot reuse the same output either.
    let o2 = w.order(addr(1), 100_000, s.clone(), 1_000, 100, 1_000);
    let m2 = w.take(o2, 50_000, addr(3), BOND).unwrap();
    let r = w.claim(&inc[0], &[m2]);
    assert_eq!(r, Err(ClaimError::WrongCommitment));
}

#[test]
fn same_output_for_two_matches_to_one_payee() {
    let mut w = World::new();
    let s = p2wpkh(0x12);
    let o = w.order(addr(1), 100_000, s.clone(), 1_000, 0, 1_000);
    let m1 = w.take(o, 40_000, addr(2), BOND).unwrap();
    let m2 = w.take(o, 40_000, addr(3), BOND).unwrap();
    // One output, committed to both ids: the first claim (m1 and m2 together) fails because
    // one output cannot pay two matches.
    let tx = payment(vec![out(&s, 40_000), out(&commitment_script(&[m1, m2]), 0)]);
    let (_, inc) = w.mine(&[tx]);
    w.mine_empty(2);
    let e = w.claim(&inc[0], &[m1, m2]).unwrap_err();
    assert!(
        matches!(e, ClaimError::OutputPaysTwoMatches { id, .. } if id == m2),
        "{e}"
    );
}

#[test]
fn commitment_binds_the_set_and_second_output_is_short() {
    // Two claims from two transactions can never share an output; a tx whose commitment names
    // m1 only cannot be reused for m2; and once an outpoint paid a match, a commitment to a
    // superset cannot reuse it.
    let mut w = World::new();
    let s = p2wpkh(0x13);
    let o = w.order(addr(1), 100_000, s.clone(), 1_000, 0, 1_000);
    let m1 = w.take(o, 40_000, addr(2), BOND).unwrap();
    let m2 = w.take(o, 40_000, addr(3), BOND).unwrap();
    // tx pays one output but commits to both: claim m1 alone fails on the commitment,
    let tx = payment(vec![
        out(&s, 40_000),
        out(&s, 1_000),
        out(&commitment_script(&[m1, m2]), 0),
    ]);
    let (_, inc) = w.mine(&[tx]);
    w.mine_empty(2);
    assert_eq!(w.claim(&inc[0], &[m1]), Err(ClaimError::WrongCommitment));
    // and claiming both fails: the only output large enough would pay both matches.
    let e = w.claim(&inc[0], &[m1, m2]).unwrap_err();
    assert!(
        matches!(e, ClaimError::OutputPaysTwoMatches { id, outpoint } if id == m2 && outpoint.vout == 0),
        "{e}"
    );
}

#[test]
fn claimed_outpoint_is_recorded() {
    // The peg records used outpoints globally (the error for reusing one is unit-tested in
    // peg.rs: through the public API a claimed tx's commitment names claimed matches only).
    let mut w = World::new();
    let s = p2wpkh(0x14);
    let o = w.order(addr(1), 200_000, s.clone(), 1_000, 0, 1_000);
    let m1 = w.take(o, 40_000, addr(2), BOND).unwrap();
    let tx1 = payment(vec![out(&s, 40_000), out(&commitment_script(&[m1]), 0)]);
    let (_, inc1) = w.mine(&[tx1]);
    w.mine_empty(2);
    w.claim(&inc1[0], &[m1]).unwrap();
    assert!(w.peg.is_outpoint_used(&bitcoin::OutPoint {
        txid: rexe_bridge::spv::parse_tx(&inc1[0].raw).unwrap().1,
        vout: 0
    }));
}

#[test]
fn sixty_four_byte_tx_rejected() {
    let Paid { mut w, m, .. } = setup();
    // 4 version + 1 + (32+4+1+0+4 = 41) + 1 + (8 + 1 + 4) + 4 lock_time = 64 bytes.
    let tx = bitcoin::Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: bitcoin::absolute::LockTime::ZERO,
        input: vec![bitcoin::TxIn {
            previous_output: bitcoin::OutPoint {
                txid: bitcoin::Txid::from_byte_array([3; 32]),
                vout: 0,
            },
            ..Default::default()
        }],
        output: vec![out(
            &bitcoin::ScriptBuf::from_bytes(vec![0x51, 0x51, 0x51, 0x51]),
            1,
        )],
    };
    assert_eq!(tx.base_size(), 64);
    let (_, inc) = w.mine(&[tx]);
    w.mine_empty(2);
    assert_eq!(
        w.claim(&inc[0], &[m]),
        Err(ClaimError::Spv(SpvError::SixtyFourByteTransaction))
    );
}

#[test]
fn cve_2012_2459_duplicate_branch_rejected() {
    let Paid { mut w, m, s } = setup();
    let owed = w.peg.get_match(m).unwrap().amount_btc_owed.0;
    let tx = payment(vec![out(&s, owed), out(&commitment_script(&[m]), 0)]);
    // Block with coinbase + tx + filler: 3 leaves, leaf 2 is padded with itself.
    let filler = payment(vec![out(&p2wpkh(0x55), 1_000)]);
    let (_, inc) = w.mine(&[filler, tx]);
    w.mine_empty(2);
    let real = inc[1].clone();
    assert_eq!(real.pos, 2);
    // Claim the phantom position 3 (the padding copy of leaf 2).
    let mut fake = real.clone();
    fake.pos = 3;
    assert_eq!(
        w.claim(&fake, &[m]),
        Err(ClaimError::Spv(SpvError::DuplicateNode))
    );
    // Position out of range for the branch length.
    let mut oor = real.clone();
    oor.pos = 4;
    assert!(matches!(
        w.claim(&oor, &[m]),
        Err(ClaimError::Spv(SpvError::PositionOutOfRange { .. }))
    ));
    // Tampered branch.
    let mut bad = real.clone();
    bad.branch[0] = TxMerkleNode::all_zeros();
    assert_eq!(
        w.claim(&bad, &[m]),
        Err(ClaimError::Spv(SpvError::RootMismatch))
    );
    // The genuine proof still works (odd-level padding on the left is legitimate).
    w.claim(&real, &[m]).unwrap();
}

#[test]
fn stale_branch_and_too_few_confirmations() {
    let Paid { mut w, m, s } = setup();
    let owed = w.peg.get_match(m).unwrap().amount_btc_owed.0;
    let tx = payment(vec![out(&s, owed), out(&commitment_script(&[m]), 0)]);
    let fork_point = w.tip();
    let (b, inc) = w.mine(std::slice::from_ref(&tx));
    assert_eq!(
        w.claim(&inc[0], &[m]),
        Err(ClaimError::TooFewConfirmations { have: 1, need: 3 })
    );
    w.mine_empty(1);
    assert_eq!(
        w.claim(&inc[0], &[m]),
        Err(ClaimError::TooFewConfirmations { have: 2, need: 3 })
    );
    // A competing branch with more work reorgs the payment block out.
    let (f1, _) = w.mine_on(fork_point, &[]);
    let (f2, _) = w.mine_on(f1, &[]);
    let (f3, _) = w.mine_on(f2, &[]);
    assert_eq!(w.tip(), f3);
    assert_eq!(w.headers.confirmations(&b), None);
    assert_eq!(w.claim(&inc[0], &[m]), Err(ClaimError::StaleBlock(b)));
    let unknown = rexe_bridge::peg::MatchId(999);
    let mut x = inc[0].clone();
    x.block = bitcoin::BlockHash::all_zeros();
    assert_eq!(
        w.claim(&x, &[unknown]),
        Err(ClaimError::UnknownBlock(x.block))
    );
    // The payment is re-mined on the new branch and claimed there.
    let (_, inc2) = w.mine(&[tx]);
    w.mine_empty(2);
    w.claim(&inc2[0], &[m]).unwrap();
}

#[test]
fn shallow_reorg_before_claim_changes_nothing() {
    let Paid { mut w, m, s } = setup();
    let owed = w.peg.get_match(m).unwrap().amount_btc_owed.0;
    let tx = payment(vec![out(&s, owed), out(&commitment_script(&[m]), 0)]);
    let (b, inc) = w.mine(&[tx]);
    let (c1, _) = w.mine(&[]);
    // Reorg of depth 1 above the payment block (shallower than K = 3).
    let (d1, _) = w.mine_on(b, &[]);
    let (d2, _) = w.mine_on(d1, &[]);
    assert_eq!(w.tip(), d2);
    assert_eq!(w.headers.confirmations(&c1), None);
    assert_eq!(w.headers.confirmations(&b), Some(3));
    let snapshot = w.peg.totals();
    w.claim(&inc[0], &[m]).unwrap();
    assert_ne!(snapshot, w.peg.totals());
}

/// The Merkle leaf/node ambiguity: a real 64-byte transaction `A || B` in a block reads as an
/// inner node, so a forged payment with txid `A` is "proven" one level beneath the leaves.
/// The coinbase proof pins the tree's depth and the claim is refused.
#[test]
fn forged_proof_beneath_a_64_byte_transaction_is_rejected() {
    use bitcoin::hashes::{sha256d, Hash as _};
    let Paid { mut w, m, s } = setup();
    let owed = w.peg.get_match(m).unwrap().amount_btc_owed.0;
    // The forged payment never appears on Bitcoin.
    let forged = payment(vec![out(&s, owed), out(&commitment_script(&[m]), 0)]);
    let forged_id = forged.compute_txid();
    let sibling = [0x5a; 32];
    let tx64_id = bitcoin::Txid::from_raw_hash(sha256d::Hash::hash(
        &[forged_id.to_byte_array(), sibling].concat(),
    ));
    let cb = coinbase(9_999);
    let leaves = [cb.compute_txid(), tx64_id];
    let root = TxMerkleNode::from_raw_hash(
        bitcoin::merkle_tree::calculate_root(leaves.iter().map(|t| t.to_raw_hash())).unwrap(),
    );
    let tip = w.headers.best_tip().1.header;
    let h = mine_header(
        tip.block_hash(),
        root,
        tip.time + 600,
        tip.bits.to_consensus(),
    );
    w.headers.submit(&[h], NOW).unwrap();
    w.mine_empty(2);
    let inc = Included {
        block: h.block_hash(),
        raw: bitcoin::consensus::serialize(&forged),
        branch: vec![
            TxMerkleNode::from_byte_array(sibling),
            TxMerkleNode::from_raw_hash(leaves[0].to_raw_hash()),
        ],
        pos: 2,
        coinbase: bitcoin::consensus::serialize(&cb),
        coinbase_branch: vec![TxMerkleNode::from_raw_hash(tx64_id.to_raw_hash())],
    };
    // The branch alone checks out: that is the hole the pin closes.
    let branch: Vec<[u8; 32]> = inc.branch.iter().map(|n| n.to_byte_array()).collect();
    rexe_bridge::spv::verify_branch(forged_id, &branch, 2, root).unwrap();
    assert_eq!(
        w.claim(&inc, &[m]),
        Err(ClaimError::Spv(SpvError::DepthMismatch {
            branch: 2,
            tree: 1
        }))
    );
    // A coinbase proof that is not the block's coinbase at index 0 is refused too.
    let mut swapped = inc.clone();
    swapped.coinbase_branch = vec![TxMerkleNode::from_raw_hash(leaves[0].to_raw_hash())];
    assert!(matches!(
        w.claim(&swapped, &[m]),
        Err(ClaimError::Spv(SpvError::BadCoinbaseProof(_)))
    ));
    let mut not_cb = inc.clone();
    not_cb.coinbase = inc.raw.clone();
    assert_eq!(
        w.claim(&not_cb, &[m]),
        Err(ClaimError::Spv(SpvError::NotCoinbase))
    );
    assert_eq!(w.peg.get_match(m).unwrap().state, MatchState::Open);
}

#[test]
fn wrong_script_short_amount_and_commitment_errors() {
    let Paid { mut w, m, s } = setup();
    let owed = w.peg.get_match(m).unwrap().amount_btc_owed.0;
    let wrong = payment(vec![
        out(&p2wpkh(0x77), owed),
        out(&commitment_script(&[m]), 0),
    ]);
    let short = payment(vec![out(&s, owed - 1), out(&commitment_script(&[m]), 0)]);
    let none = payment(vec![out(&s, owed)]);
    let other = payment(vec![
        out(&s, owed),
        out(&commitment_script(&[rexe_bridge::peg::MatchId(77)]), 0),
    ]);
    let two = payment(vec![
        out(&s, owed),
        out(&commitment_script(&[m]), 0),
        out(&commitment_script(&[m]), 0),
    ]);
    let (_, inc) = w.mine(&[wrong, short, none, other, two]);
    w.mine_empty(2);
    assert_eq!(w.claim(&inc[0], &[m]), Err(ClaimError::WrongScript(m)));
    assert_eq!(
        w.claim(&inc[1], &[m]),
        Err(ClaimError::ShortAmount {
            id: m,
            paid: owed - 1,
            owed
        })
    );
    assert_eq!(w.claim(&inc[2], &[m]), Err(ClaimError::MissingCommitment));
    assert_eq!(w.claim(&inc[3], &[m]), Err(ClaimError::WrongCommitment));
    assert_eq!(w.claim(&inc[4], &[m]), Err(ClaimError::MultipleCommitments));
    assert_eq!(w.claim(&inc[0], &[]), Err(ClaimError::NoMatches));
    assert_eq!(
        w.claim(&inc[0], &[m, m]),
        Err(ClaimError::DuplicateMatchId(m))
    );
}

/// The chain stores the peg and header chain as items: loading them into a fresh contract
/// gives back the same state, and it behaves identically.
#[test]
fn state_round_trips_through_items() {
    use rexe_bridge::contract::PegContract;
    use rexe_chain::system::SystemContract;
    let Paid { mut w, m, s } = setup();
    let owed = w.peg.get_match(m).unwrap().amount_btc_owed.0;
    let tx = payment(vec![out(&s, owed), out(&commitment_script(&[m]), 0)]);
    let (_, inc) = w.mine(&[tx]);
    w.mine_empty(2);
    let c = PegContract::from_parts(w.headers.clone(), w.peg.clone());
    let items = c.items();
    // Keys are unique and sorted within each kind; every value decodes.
    let keys: std::collections::BTreeSet<_> = items.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(keys.len(), items.len());
    let mut fresh = PegContract::new(rexe_chain::Network::Regtest, None, 1);
    fresh.load(&items).unwrap();
    assert_eq!(fresh.items(), items);
    assert_eq!(fresh.headers(), &w.headers);
    assert_eq!(fresh.peg(), &w.peg);
    let mut peg2 = fresh.peg().clone();
    let a = peg2.claim(fresh.headers(), &inc[0].proof(), &[m]).unwrap();
    let b = w.claim(&inc[0], &[m]).unwrap();
    assert_eq!(a, b);
    assert_eq!(peg2, w.peg);
    // A value that does not decode is refused, not half-read.
    let mut bad = items.clone();
    bad[0].1.push(0);
    assert!(PegContract::new(rexe_chain::Network::Regtest, None, 1)
        .load(&bad)
        .is_err());
}

/// Orders pay only to output types Bitcoin Core relays by default, above their dust
/// threshold (Core's `GetDustThreshold` at the default 3,000 sat/kvB dust relay fee).
#[test]
fn orders_accept_only_standard_payees_above_dust() {
    use bitcoin::opcodes::all::{
        OP_CHECKMULTISIG, OP_CHECKSIG, OP_PUSHNUM_1, OP_PUSHNUM_2, OP_PUSHNUM_3,
    };
    use bitcoin::script::Builder;
    use rexe_bridge::peg::{NewOrder, OrderError};
    let pk = [2u8; 33];
    let multisig = |m, n: usize| {
        let mut b = Builder::new().push_opcode(m);
        for _ in 0..n {
            b = b.push_slice(pk);
        }
        b.push_int(n as i64)
            .push_opcode(OP_CHECKMULTISIG)
            .into_script()
    };
    let sized = |head: &[u8], n: usize| ScriptBuf::from_bytes([head, &vec![7u8; n][..]].concat());
    let accepted = [
        ("P2PKH", sized(&[0x76, 0xa9, 0x14], 20).into_bytes(), 546),
        ("P2SH", sized(&[0xa9, 0x14], 20).into_bytes(), 540),
        ("P2WPKH", sized(&[0x00, 0x14], 20).into_bytes(), 294),
        ("P2WSH", sized(&[0x00, 0x20], 32).into_bytes(), 330),
        ("P2TR", sized(&[0x51, 0x20], 32).into_bytes(), 330),
    ];
    let mut w = World::new();
    for (name, bytes, dust) in accepted {
        let mut bytes = bytes;
        if name == "P2PKH" {
            bytes.extend_from_slice(&[0x88, 0xac]);
        }
        if name == "P2SH" {
            bytes.push(0x87);
        }
        let s = ScriptBuf::from_bytes(bytes);
        assert_eq!(s.minimal_non_dust().to_sat(), dust, "{name}");
        assert_eq!(rexe_bridge::peg::nonstandard_payee(&s), None, "{name}");
        w.order(addr(1), 100_000, s.clone(), 1_000, 0, 100);
        // An order worth less than its type's dust threshold is refused.
        let tiny = NewOrder {
            amount: Sats(dust - 1),
            btc_script: s,
            min_fill: Sats(0),
            fee_bps: 0,
            expiry_height: 100,
        };
        assert_eq!(
            w.peg.validate_order(&tiny, w.l2_height),
            Err(OrderError::DustPayee {
                owed: dust - 1,
                dust
            }),
            "{name}"
        );
    }
    let p2pk = Builder::new()
        .push_slice(pk)
        .push_opcode(OP_CHECKSIG)
        .into_script();
    let refused = [
        ("bare multisig", multisig(OP_PUSHNUM_1, 1)),
        ("bare multisig", multisig(OP_PUSHNUM_2, 3)),
        ("bare multisig", multisig(OP_PUSHNUM_3, 3)),
        ("P2PK", p2pk),
        ("an unknown witness program", sized(&[0x52, 0x20], 32)),
        ("an unknown witness program", sized(&[0x51, 0x14], 20)),
        ("a non-standard script", ScriptBuf::from_bytes(vec![0x51])),
        ("a non-standard script", sized(&[0x6a - 1], 10_000)),
        ("empty", ScriptBuf::new()),
        (
            "OP_RETURN (unspendable)",
            ScriptBuf::new_op_return([1, 2, 3]),
        ),
    ];
    for (kind, s) in refused {
        let new = NewOrder {
            amount: Sats(100_000),
            btc_script: s.clone(),
            min_fill: Sats(0),
            fee_bps: 0,
            expiry_height: 100,
        };
        assert_eq!(
            w.peg.validate_order(&new, w.l2_height),
            Err(OrderError::NonStandardPayee { kind }),
            "{s:?}"
        );
    }
}

/// The dust rule applies after the maker's fee, to the whole order and to a nonzero
/// `min_fill` (a take of exactly `min_fill` must be payable); `min_fill = 0` means no minimum
/// beyond the dust threshold every take must clear.
#[test]
fn order_dust_rule_covers_the_fee_and_min_fill() {
    use rexe_bridge::peg::{NewOrder, OrderError, Refusal};
    let w = World::new();
    let check = |amount: u64, min_fill: u64, fee_bps: u16| {
        w.peg.validate_order(
            &NewOrder {
                amount: Sats(amount),
                btc_script: p2wpkh(3),
                min_fill: Sats(min_fill),
                fee_bps,
                expiry_height: 100,
            },
            w.l2_height,
        )
    };
    // P2WPKH: dust 294. 326 - floor(326 * 10%) = 294; 325 - 32 = 293.
    assert_eq!(check(326, 0, 1_000), Ok(()));
    assert_eq!(
        check(325, 0, 1_000),
        Err(OrderError::DustPayee {
            owed: 293,
            dust: 294
        })
    );
    assert_eq!(check(100_000, 0, 0), Ok(()));
    assert_eq!(check(100_000, 294, 0), Ok(()));
    let e = check(100_000, 293, 0).unwrap_err();
    assert_eq!(
        e,
        OrderError::DustMinFill {
            min_fill: 293,
            owed: 293,
            dust: 294
        }
    );
    assert_eq!(e.reason(), "dust-min-fill");
    assert_eq!(check(100_000, 326, 1_000), Ok(()));
    assert_eq!(
        check(100_000, 325, 1_000),
        Err(OrderError::DustMinFill {
            min_fill: 325,
            owed: 293,
            dust: 294
        })
    );
    // The refusal names the script type and the accepted ones.
    let e = w
        .peg
        .validate_order(
            &NewOrder {
                amount: Sats(100_000),
                btc_script: ScriptBuf::from_bytes(vec![0x51]),
                min_fill: Sats(0),
                fee_bps: 0,
                expiry_height: 100,
            },
            w.l2_height,
        )
        .unwrap_err();
    assert_eq!(e.reason(), "nonstandard-payee");
    assert_eq!(
        e.to_string(),
        "payout script is a non-standard script, which Bitcoin Core does not relay: use P2PKH, \
         P2SH, P2WPKH, P2WSH or P2TR"
    );
}
