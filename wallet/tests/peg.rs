//! Peg-in payments against the embedded regtest node over Electrum: funding, the three-payee
//! payment, an external signer, two parties joining one transaction, RBF, bad input.

mod common;

use std::str::FromStr;

use bitcoin::bip32::Xpriv;
use bitcoin::secp256k1::Secp256k1;
use bitcoin::{Amount, Network, Psbt, Sequence};
use common::*;
use miniscript::descriptor::{Descriptor, DescriptorPublicKey, KeyMapWrapper};
use rexe_wallet::*;

const COIN: u64 = 100_000_000;

#[test]
fn fund_sync_balance_history() {
    let node = start_node();
    let dir = tempfile::tempdir().unwrap();
    let mut w = new_wallet(dir.path(), "w");
    let a = w.new_address().unwrap();
    mine(&node, 1, &a);
    w.sync(&node.electrum_url()).unwrap();
    assert_eq!(w.balance().immature, Amount::from_sat(50 * COIN));
    assert_eq!(w.balance().confirmed, Amount::ZERO);
    mine(&node, 100, &burn_address());
    w.sync(&node.electrum_url()).unwrap();
    assert_eq!(w.balance().confirmed, Amount::from_sat(50 * COIN));
    assert_eq!(w.tip_height(), 101);
    let h = w.transactions();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].confirmation_height, Some(1));
    assert_eq!(h[0].net.to_sat(), 50 * COIN as i64);

    // Persisted: a reload sees the same balance without syncing.
    let words = w.reveal_mnemonic().unwrap();
    drop(w);
    let w = RexeWallet::load(&dir.path().join("w"), Network::Regtest).unwrap();
    assert_eq!(w.balance().confirmed, Amount::from_sat(50 * COIN));
    // A restored wallet finds the coins with a full scan.
    let mut r = RexeWallet::restore(
        &dir.path().join("r"),
        Network::Regtest,
        DescriptorKind::Bip86,
        &words,
    )
    .unwrap();
    r.full_scan(&node.electrum_url()).unwrap();
    assert_eq!(r.balance().confirmed, Amount::from_sat(50 * COIN));
}

#[test]
fn peg_in_three_payees_confirms() {
    let node = start_node();
    let dir = tempfile::tempdir().unwrap();
    let mut w = new_wallet(dir.path(), "w");
    fund(&node, &mut [&mut w]);
    let url = node.electrum_url();
    let pay = payments(&[100_000, 250_000, 1_000_000]);
    let m = ids(&[7, 3, 5]);
    let mut psbt = w.build_peg_in(&pay, &m, rate(2)).unwrap();
    let tx = &psbt.unsigned_tx;
    assert_eq!(tx.output.len(), 5, "3 payments + OP_RETURN + change");
    for (o, p) in tx.output.iter().zip(&pay) {
        assert_eq!((&o.script_pubkey, o.value), (&p.script, p.amount));
    }
    assert_eq!(
        tx.output[3].script_pubkey,
        commitment_script(&ids(&[3, 5, 7]))
    );
    assert_eq!(tx.output[3].value, Amount::ZERO);
    assert!(
        w.inner().is_mine(tx.output[4].script_pubkey.clone()),
        "change"
    );
    assert!(tx
        .input
        .iter()
        .all(|i| i.sequence == Sequence::ENABLE_RBF_NO_LOCKTIME));
    // Exported and read back as base64 on the way, as through a file.
    psbt = psbt_from_base64(&psbt_to_base64(&psbt)).unwrap();
    assert!(w.sign(&mut psbt, &pay, &m).unwrap(), "finalized");
    let tx = extract_tx(psbt).unwrap();
    let fee_rate = {
        let fee = w.inner().calculate_fee(&tx).unwrap();
        fee.to_sat() as f64 / tx.vsize() as f64
    };
    assert!((2.0..2.5).contains(&fee_rate), "fee rate {fee_rate}");
    let txid = w.broadcast(&url, &tx, &pay, &m).unwrap();
    assert_eq!(txid, tx.compute_txid());
    assert_eq!(mempool(&node), vec![txid.to_string()]);
    mine(&node, 1, &burn_address());
    assert_eq!(confirmations(&node, &txid), 1);
    w.sync(&url).unwrap();
    let h = w.transactions();
    let t = h.iter().find(|t| t.txid == txid).unwrap();
    assert_eq!(t.confirmation_height, Some(102));
    let fee = t.fee.unwrap();
    assert_eq!(
        t.net.to_sat(),
        -((1_350_000 + fee.to_sat()) as i64),
        "net = payments + fee"
    );
    assert_eq!(
        w.balance().confirmed,
        Amount::from_sat(50 * COIN - 1_350_000) - fee
    );
    // The confirmed transaction still passes the check (the claimer's view).
    check_peg_tx(&tx, &pay, &m, Network::Regtest).unwrap();
}

#[test]
fn external_signer_for_watch_only_wallet() {
    let node = start_node();
    let dir = tempfile::tempdir().unwrap();
    let url = node.electrum_url();
    // The signer's secret: private descriptors (e.g. on an offline machine).
    let master = Xpriv::new_master(Network::Regtest, &[42u8; 32]).unwrap();
    let priv_ext = format!("tr({master}/86'/1'/0'/0/*)");
    let priv_int = format!("tr({master}/86'/1'/0'/1/*)");
    let secp = Secp256k1::new();
    let (pub_ext, _) =
        Descriptor::<DescriptorPublicKey>::parse_descriptor(&secp, &priv_ext).unwrap();
    let (pub_int, _) =
        Descriptor::<DescriptorPublicKey>::parse_descriptor(&secp, &priv_int).unwrap();
    // The online watch-only wallet knows only the public descriptors.
    let mut w = RexeWallet::import(
        &dir.path().join("watch"),
        Network::Regtest,
        &pub_ext.to_string(),
        Some(&pub_int.to_string()),
    )
    .unwrap();
    assert!(w.is_watch_only());
    fund(&node, &mut [&mut w]);
    let pay = payments(&[300_000, 40_000]);
    let m = ids(&[11, 12]);
    let psbt = w.build_peg_in(&pay, &m, rate(3)).unwrap();
    let exported = psbt_to_base64(&psbt);
    assert!(matches!(
        w.sign(&mut psbt.clone(), &pay, &m),
        Err(WalletError::WatchOnly)
    ));

    // The external signer: rust-bitcoin + miniscript only.
    let signed = {
        let mut p = Psbt::from_str(&exported).unwrap();
        let (_, mut keys) = Descriptor::parse_descriptor(&secp, &priv_ext).unwrap();
        keys.extend(Descriptor::parse_descriptor(&secp, &priv_int).unwrap().1);
        let used = p.sign(&KeyMapWrapper::from(keys), &secp).unwrap();
        assert_eq!(used.len(), p.inputs.len());
        p.to_string()
    };

    let mut back = psbt_from_base64(&signed).unwrap();
    w.check_peg_psbt(&back, &pay, &m).unwrap();
    assert!(w.finalize(&mut back).unwrap());
    let tx = extract_tx(back).unwrap();
    let txid = w.broadcast(&url, &tx, &pay, &m).unwrap();
    mine(&node, 1, &burn_address());
    w.sync(&url).unwrap();
    assert_eq!(confirmations(&node, &txid), 1);
    assert_eq!(
        w.transactions()
            .iter()
            .find(|t| t.txid == txid)
            .unwrap()
            .confirmation_height,
        Some(102)
    );
}

#[test]
fn two_wallets_join_one_transaction() {
    let node = start_node();
    let dir = tempfile::tempdir().unwrap();
    let url = node.electrum_url();
    let mut a = new_wallet(dir.path(), "a");
    let mut b = RexeWallet::create(
        &dir.path().join("b"),
        Network::Regtest,
        DescriptorKind::Bip84,
    )
    .unwrap();
    fund(&node, &mut [&mut a, &mut b]);
    let pay_a = payments(&[200_000, 300_000]);
    let pay_b: Vec<PegPayment> = payments(&[0, 0, 700_000]).split_off(2);
    let (ids_a, ids_b) = (ids(&[1, 2]), ids(&[9]));
    let part_a = a.build_peg_in(&pay_a, &ids_a, rate(2)).unwrap();
    let part_b = b.build_peg_in(&pay_b, &ids_b, rate(2)).unwrap();
    let all_pay: Vec<PegPayment> = pay_a.iter().chain(&pay_b).cloned().collect();
    let all_ids = ids(&[1, 2, 9]);
    let joined = join(&[part_a.clone(), part_b.clone()], &all_ids).unwrap();
    assert_eq!(
        joined.unsigned_tx.input.len(),
        part_a.unsigned_tx.input.len() + part_b.unsigned_tx.input.len()
    );
    // Each party checks its own part is intact and the whole pays every match.
    check_join(&joined, &part_a).unwrap();
    check_join(&joined, &part_b).unwrap();
    a.check_peg_psbt(&joined, &all_pay, &all_ids).unwrap();
    // The joined PSBT no longer matches a single party's commitment.
    assert!(matches!(
        a.check_peg_psbt(&joined, &pay_a, &ids_a),
        Err(WalletError::Peg(PegCheckError::WrongCommitment { .. }))
    ));

    // Each signs only its own inputs.
    let mut sa = joined.clone();
    let mut sb = psbt_from_base64(&psbt_to_base64(&joined)).unwrap();
    assert!(!a.sign(&mut sa, &all_pay, &all_ids).unwrap());
    assert!(!b.sign(&mut sb, &all_pay, &all_ids).unwrap());
    let n_a = part_a.unsigned_tx.input.len();
    let signed = |p: &Psbt, i: usize| {
        let x = &p.inputs[i];
        x.final_script_witness.is_some() || x.tap_key_sig.is_some() || !x.partial_sigs.is_empty()
    };
    for i in 0..sa.inputs.len() {
        assert_eq!(signed(&sa, i), i < n_a, "a signs input {i} only if its own");
        assert_eq!(
            signed(&sb, i),
            i >= n_a,
            "b signs input {i} only if its own"
        );
    }
    let mut combined = combine(vec![sa, sb]).unwrap();
    assert!(a.finalize(&mut combined).unwrap());
    let tx = extract_tx(combined).unwrap();
    let txid = a.broadcast(&url, &tx, &all_pay, &all_ids).unwrap();
    mine(&node, 1, &burn_address());
    assert_eq!(confirmations(&node, &txid), 1);
    a.sync(&url).unwrap();
    b.sync(&url).unwrap();
    // Each paid its own payments and kept its own change.
    let fee_of = |w: &RexeWallet| {
        let t = w
            .transactions()
            .into_iter()
            .find(|t| t.txid == txid)
            .unwrap();
        assert_eq!(t.confirmation_height, Some(103));
        (-t.net.to_sat()) as u64
    };
    let (spent_a, spent_b) = (fee_of(&a), fee_of(&b));
    assert!(spent_a > 500_000 && spent_a < 500_000 + 2_000, "{spent_a}");
    assert!(spent_b > 700_000 && spent_b < 700_000 + 2_000, "{spent_b}");
    check_peg_tx(&tx, &all_pay, &all_ids, Network::Regtest).unwrap();
    // Joining needs unsigned parts from different coins.
    assert!(matches!(
        join(&[part_a.clone(), part_a.clone()], &all_ids),
        Err(WalletError::Join(_))
    ));
}

#[test]
fn stuck_payment_is_replaced_keeping_every_payment() {
    let node = start_node();
    let dir = tempfile::tempdir().unwrap();
    let url = node.electrum_url();
    let mut w = new_wallet(dir.path(), "w");
    fund(&node, &mut [&mut w]);
    let pay = payments(&[120_000, 130_000, 140_000]);
    let m = ids(&[21, 22, 23]);
    let mut psbt = w.build_peg_in(&pay, &m, rate(1)).unwrap();
    assert!(w.sign(&mut psbt, &pay, &m).unwrap());
    let low = extract_tx(psbt).unwrap();
    let low_id = w.broadcast(&url, &low, &pay, &m).unwrap();
    assert_eq!(mempool(&node), vec![low_id.to_string()]);
    let low_fee = w.inner().calculate_fee(&low).unwrap();

    let mut bumped = w.bump_fee(low_id, rate(10)).unwrap();
    w.check_peg_psbt(&bumped, &pay, &m).unwrap();
    assert!(bumped
        .unsigned_tx
        .input
        .iter()
        .all(|i| i.sequence == Sequence::ENABLE_RBF_NO_LOCKTIME));
    assert!(w.sign(&mut bumped, &pay, &m).unwrap());
    let high = extract_tx(bumped).unwrap();
    assert!(w.inner().calculate_fee(&high).unwrap() > low_fee * 5);
    for o in &low.output {
        if !w.inner().is_mine(o.script_pubkey.clone()) {
            assert!(high.output.contains(o), "kept {o:?}");
        }
    }
    let high_id = w.broadcast(&url, &high, &pay, &m).unwrap();
    assert_eq!(mempool(&node), vec![high_id.to_string()], "replaced");
    mine(&node, 1, &burn_address());
    assert_eq!(confirmations(&node, &high_id), 1);
    w.sync(&url).unwrap();
    let h = w.transactions();
    assert!(h
        .iter()
        .any(|t| t.txid == high_id && t.confirmation_height == Some(102)));
    assert!(
        !h.iter().any(|t| t.txid == low_id),
        "the replaced tx is gone"
    );
    // A confirmed transaction cannot be bumped.
    let e = w.bump_fee(high_id, rate(20)).unwrap_err();
    assert!(matches!(e, WalletError::FeeBump { .. }), "{e}");
}

#[test]
fn altered_or_foreign_psbts_are_refused() {
    let node = start_node();
    let dir = tempfile::tempdir().unwrap();
    let url = node.electrum_url();
    let mut w = new_wallet(dir.path(), "w");

    // Nothing to spend yet.
    let pay = payments(&[100_000, 200_000, 300_000]);
    let m = ids(&[1, 2, 3]);
    let e = w.build_peg_in(&pay, &m, rate(2)).unwrap_err();
    assert!(matches!(e, WalletError::InsufficientFunds { .. }), "{e}");
    fund(&node, &mut [&mut w]);
    let e = w
        .build_peg_in(&payments(&[60 * COIN]), &m, rate(2))
        .unwrap_err();
    assert!(e.to_string().contains("insufficient funds"), "{e}");
    assert!(matches!(
        w.build_peg_in(&[], &m, rate(2)),
        Err(WalletError::Peg(PegCheckError::NoPayments))
    ));
    assert!(matches!(
        w.build_peg_in(&pay, &[], rate(2)),
        Err(WalletError::Peg(PegCheckError::NoMatchIds))
    ));

    let e = w.build_peg_in(&payments(&[100]), &m, rate(2)).unwrap_err();
    assert!(e.to_string().contains("dust"), "{e}");
    let good = w.build_peg_in(&pay, &m, rate(2)).unwrap();
    let refused = |p: &Psbt| {
        let e = w.sign(&mut p.clone(), &pay, &m).unwrap_err();
        match e {
            WalletError::Peg(inner) => inner,
            other => panic!("{other}"),
        }
    };
    // Another payee script.
    let mut p = good.clone();
    p.unsigned_tx.output[1].script_pubkey = key_address(0x99).script_pubkey();
    let e = refused(&p);
    assert!(
        matches!(e, PegCheckError::PaymentMissing { index: 1, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("payment #1"), "{e}");
    // A lower amount.
    let mut p = good.clone();
    p.unsigned_tx.output[2].value = Amount::from_sat(299_999);
    let e = refused(&p);
    assert!(
        matches!(e, PegCheckError::Underpaid { index: 2, .. }),
        "{e}"
    );
    // OP_RETURN missing, wrong, duplicated.
    let mut p = good.clone();
    p.unsigned_tx.output.remove(3);
    p.outputs.remove(3);
    assert!(matches!(
        refused(&p),
        PegCheckError::MissingCommitment { .. }
    ));
    let mut p = good.clone();
    p.unsigned_tx.output[3].script_pubkey = commitment_script(&ids(&[1, 2]));
    assert!(matches!(refused(&p), PegCheckError::WrongCommitment { .. }));
    let mut p = good.clone();
    p.unsigned_tx.output.push(p.unsigned_tx.output[3].clone());
    p.outputs.push(Default::default());
    assert!(matches!(refused(&p), PegCheckError::DuplicateCommitment(2)));
    // An OP_RETURN that is not RXPG does not count as the commitment.
    let mut p = good.clone();
    p.unsigned_tx.output[3].script_pubkey = bitcoin::ScriptBuf::new_op_return([1u8; 37]);
    assert!(matches!(
        refused(&p),
        PegCheckError::MissingCommitment { .. }
    ));
    // Two payments to the same script need two outputs.
    let dup = vec![pay[0].clone(), pay[0].clone()];
    assert!(matches!(
        check_peg_psbt(&good, &dup, &m, Network::Regtest),
        Err(PegCheckError::PaymentMissing { index: 1, .. })
    ));
    // A PSBT built for another network (genesis record, key paths, global xpub).
    let mut p = good.clone();
    p.proprietary.insert(
        rexe_wallet::peg::genesis_key(),
        bitcoin::constants::ChainHash::BITCOIN.as_bytes().to_vec(),
    );
    let e = refused(&p);
    assert!(matches!(e, PegCheckError::WrongNetwork(_)), "{e}");
    assert!(e.to_string().contains("bitcoin"), "{e}");
    let e = check_peg_psbt(&good, &pay, &m, Network::Signet).unwrap_err();
    assert!(matches!(e, PegCheckError::WrongNetwork(_)), "{e}");
    let e = check_peg_psbt(&good, &pay, &m, Network::Bitcoin).unwrap_err();
    assert!(matches!(e, PegCheckError::WrongNetwork(_)), "{e}");
    let mut p = good.clone();
    p.proprietary.clear();
    let main = bitcoin::bip32::Xpub::from_priv(
        &Secp256k1::new(),
        &Xpriv::new_master(Network::Bitcoin, &[1; 32]).unwrap(),
    );
    p.xpub
        .insert(main, (main.fingerprint(), Default::default()));
    assert!(matches!(refused(&p), PegCheckError::WrongNetwork(_)));

    // Broadcasting an altered transaction is refused before it leaves the wallet.
    let mut ok_psbt = good.clone();
    assert!(w.sign(&mut ok_psbt, &pay, &m).unwrap());
    let mut tx = extract_tx(ok_psbt).unwrap();
    tx.output[0].value = Amount::from_sat(1);
    let e = w.broadcast(&url, &tx, &pay, &m).unwrap_err();
    assert!(
        matches!(
            e,
            WalletError::Peg(PegCheckError::Underpaid { index: 0, .. })
        ),
        "{e}"
    );
    assert!(mempool(&node).is_empty());
    // A tampered signature (or any invalid tx) is rejected by the node, naming the server.
    let e = w.broadcast_unchecked(&url, &tx).unwrap_err();
    assert!(e.to_string().contains(&url), "{e}");
    // Unsigned: not extractable.
    assert!(matches!(
        extract_tx(good),
        Err(WalletError::NotFinalized(_))
    ));
}
