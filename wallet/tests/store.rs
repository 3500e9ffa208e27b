//! The wallet file, keys, descriptors and error paths that need no funds.

mod common;

use std::os::unix::fs::PermissionsExt;

use bitcoin::bip32::Xpriv;
use bitcoin::{Network, Psbt};
use rexe_wallet::*;

#[test]
fn create_persist_reload() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.sqlite");
    let (addrs, l2, desc) = {
        let mut w = RexeWallet::create(&path, Network::Regtest, DescriptorKind::Bip86).unwrap();
        let a0 = w.new_address().unwrap();
        let a1 = w.new_address().unwrap();
        assert!(a0.to_string().starts_with("bcrt1p"), "BIP86 taproot: {a0}");
        assert_ne!(a0, a1);
        assert_eq!(w.peek_address(0), a0);
        let l2 = w.l2_address().expect("a generated wallet has an L2 key");
        assert_eq!(w.l2_signer().unwrap().address(), l2);
        // Public descriptor: origin from the master fingerprint, coin type 1 on regtest.
        let (ext, int) = w.public_descriptors();
        assert!(
            ext.starts_with("tr([") && ext.contains("/86'/1'/0']tpub"),
            "{ext}"
        );
        assert!(int.unwrap().contains("/1/*"));
        // No secret in Debug output.
        let dbg = format!("{w:?}");
        let words = w.reveal_mnemonic().unwrap();
        assert_eq!(words.split_whitespace().count(), 24);
        assert!(!dbg.contains("tprv"), "{dbg}");
        for word in words.split_whitespace().filter(|w| w.len() > 4) {
            assert!(!dbg.contains(&format!(" {word} ")), "{dbg}");
        }
        (vec![a0, a1], l2, ext)
    };
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "wallet file mode {mode:o}");

    let mut w = RexeWallet::load(&path, Network::Regtest).unwrap();
    assert_eq!(w.peek_address(0), addrs[0]);
    assert_eq!(w.peek_address(1), addrs[1]);
    assert_eq!(w.l2_address(), Some(l2));
    assert_eq!(w.public_descriptors().0, desc);
    // Revealed indexes were persisted: the next address is #2.
    assert_eq!(w.new_address().unwrap(), w.peek_address(2));
    drop(w);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // Another network, an existing path, a missing path.
    let e = RexeWallet::load(&path, Network::Testnet).unwrap_err();
    assert!(matches!(e, WalletError::WrongNetwork { .. }), "{e}");
    assert!(e.to_string().contains("regtest"), "{e}");
    let e = RexeWallet::create(&path, Network::Regtest, DescriptorKind::Bip86).unwrap_err();
    assert!(matches!(e, WalletError::AlreadyExists(_)), "{e}");
    let e = RexeWallet::load(&dir.path().join("nope"), Network::Regtest).unwrap_err();
    assert!(matches!(e, WalletError::NotFound(_)), "{e}");
    assert!(!dir.path().join("nope").exists());
    // A SQLite file that is not a wallet.
    let other = dir.path().join("other.sqlite");
    std::fs::write(&other, b"").unwrap();
    let e = RexeWallet::load(&other, Network::Regtest).unwrap_err();
    assert!(e.to_string().contains("not a rexe wallet"), "{e}");
}

#[test]
fn restore_bip84_and_l2_path() {
    let dir = tempfile::tempdir().unwrap();
    let w = RexeWallet::create(
        &dir.path().join("a"),
        Network::Regtest,
        DescriptorKind::Bip86,
    )
    .unwrap();
    let words = w.reveal_mnemonic().unwrap();
    // Same mnemonic: same addresses and L2 key.
    let r = RexeWallet::restore(
        &dir.path().join("b"),
        Network::Regtest,
        DescriptorKind::Bip86,
        &words,
    )
    .unwrap();
    assert_eq!(r.peek_address(5), w.peek_address(5));
    assert_eq!(r.l2_address(), w.l2_address());
    // BIP84: wpkh addresses, same L2 key (it does not depend on the script type).
    let s = RexeWallet::restore(
        &dir.path().join("c"),
        Network::Regtest,
        DescriptorKind::Bip84,
        &words,
    )
    .unwrap();
    assert!(s.peek_address(0).to_string().starts_with("bcrt1q"));
    assert!(s.public_descriptors().0.starts_with("wpkh(["));
    assert_eq!(s.l2_address(), w.l2_address());
    // The L2 key is m/7273'/0'/0' of the BIP32 master of the seed.
    let m = bdk_wallet::bip39::Mnemonic::parse(&words).unwrap();
    let master = Xpriv::new_master(Network::Regtest, &m.to_seed("")).unwrap();
    let secp = bitcoin::secp256k1::Secp256k1::new();
    let child = master
        .derive_priv(
            &secp,
            &L2_KEY_PATH
                .parse::<bitcoin::bip32::DerivationPath>()
                .unwrap(),
        )
        .unwrap();
    let expect = rexe_chain::Signer::from_secret(child.private_key.secret_bytes()).unwrap();
    assert_eq!(w.l2_address(), Some(expect.address()));
    // Importing the master xprv descriptor gives the same L2 key.
    let xprv = master.to_string();
    let i = RexeWallet::import(
        &dir.path().join("d"),
        Network::Regtest,
        &format!("tr({xprv}/86'/1'/0'/0/*)"),
        Some(&format!("tr({xprv}/86'/1'/0'/1/*)")),
    )
    .unwrap();
    assert!(!i.is_watch_only());
    assert_eq!(i.peek_address(3), w.peek_address(3));
    assert_eq!(i.l2_address(), w.l2_address());
    // A bad mnemonic names the problem, not the words.
    let e = RexeWallet::restore(
        &dir.path().join("e"),
        Network::Regtest,
        DescriptorKind::Bip86,
        "abandon zebra",
    )
    .unwrap_err();
    assert!(matches!(e, WalletError::InvalidMnemonic(_)), "{e}");
    assert!(!e.to_string().contains("zebra"), "{e}");
    assert!(!dir.path().join("e").exists());
}

#[test]
fn watch_only_import_and_bad_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    let master = Xpriv::new_master(Network::Regtest, &[9u8; 32]).unwrap();
    let xprv = master.to_string();
    let private = format!("tr({xprv}/86'/1'/0'/0/*)");
    let signer =
        RexeWallet::import(&dir.path().join("s"), Network::Regtest, &private, None).unwrap();
    let (public, none) = signer.public_descriptors();
    assert!(none.is_none());
    assert!(!public.contains("prv"));
    let w = RexeWallet::import(&dir.path().join("w"), Network::Regtest, &public, None).unwrap();
    assert!(w.is_watch_only());
    assert_eq!(w.l2_signer().map(|s| s.address()), None);
    assert_eq!(w.peek_address(0), signer.peek_address(0));
    let mut psbt = Psbt::from_unsigned_tx(bitcoin::Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: bitcoin::absolute::LockTime::ZERO,
        input: vec![],
        output: vec![],
    })
    .unwrap();
    assert!(matches!(
        w.sign_unchecked(&mut psbt),
        Err(WalletError::WatchOnly)
    ));
    drop(w);
    let w = RexeWallet::load(&dir.path().join("w"), Network::Regtest).unwrap();
    assert!(w.is_watch_only());

    let bad = |ext: &str, int: Option<&str>, name: &str| {
        let p = dir.path().join(name);
        let e = RexeWallet::import(&p, Network::Regtest, ext, int).unwrap_err();
        assert!(!p.exists(), "no file left behind for {ext}");
        let text = e.to_string();
        assert!(!text.contains(&xprv[4..30]), "secret leaked in {text}");
        assert!(
            !format!("{e:?}").contains(&xprv[4..30]),
            "secret leaked in {e:?}"
        );
        e
    };
    let e = bad("tr(notakey)", None, "b1");
    assert!(
        matches!(
            e,
            WalletError::InvalidDescriptor {
                which: "external",
                ..
            }
        ),
        "{e}"
    );
    let e = bad("", None, "b2");
    assert!(e.to_string().contains("empty"), "{e}");
    // A typo inside the key, an unknown script, a wrong checksum: errors without the key.
    let mut key: Vec<char> = xprv.chars().collect();
    key[50] = if key[50] == 'Z' { 'Y' } else { 'Z' };
    let typo = format!("tr({}/86'/1'/0'/0/*)", key.iter().collect::<String>());
    let e = bad(&typo, None, "b3");
    assert!(!e.to_string().contains(&typo[10..40]), "{e}");
    bad(&format!("tx({xprv}/0/*)"), None, "b4");
    bad(&format!("{private}#aaaaaaaa"), None, "b5");
    // A mainnet key on regtest.
    let main = Xpriv::new_master(Network::Bitcoin, &[9u8; 32])
        .unwrap()
        .to_string();
    let e = RexeWallet::import(
        &dir.path().join("b6"),
        Network::Regtest,
        &format!("tr({main}/0/*)"),
        None,
    )
    .unwrap_err();
    assert!(matches!(e, WalletError::InvalidDescriptor { .. }), "{e}");
    assert!(!e.to_string().contains(&main[4..30]), "{e}");
    // Internal descriptor wrong; same as external; private + public mix.
    let e = bad(&private, Some("wpkh(xyz)"), "b7");
    assert!(
        matches!(
            e,
            WalletError::InvalidDescriptor {
                which: "internal",
                ..
            }
        ),
        "{e}"
    );
    bad(&private, Some(&private), "b8");
    bad(&private, Some(&public.replace("/0/*", "/1/*")), "b9");
}

#[test]
fn electrum_unreachable_names_the_url() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = common::new_wallet(dir.path(), "w");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("tcp://127.0.0.1:{port}");
    for e in [w.sync(&url).unwrap_err(), w.full_scan(&url).unwrap_err()] {
        assert!(matches!(e, WalletError::Electrum { .. }), "{e}");
        assert!(e.to_string().contains(&url), "{e}");
    }
    let tls = format!("ssl://localhost:{port}");
    let e = w.sync(&tls).unwrap_err();
    assert!(e.to_string().contains(&tls), "{e}");
    let e = w.sync("http://127.0.0.1:1").unwrap_err();
    assert!(matches!(e, WalletError::ElectrumUrl(_)), "{e}");
    assert!(e.to_string().contains("http://127.0.0.1:1"), "{e}");
    assert!(matches!(
        w.sync("tcp://").unwrap_err(),
        WalletError::ElectrumUrl(_)
    ));
    // The wallet is still usable.
    w.new_address().unwrap();
}

#[test]
fn psbt_text_and_files() {
    for bad in ["", "   ", "not base64!", "cHNidP8=", "aGVsbG8gd29ybGQ="] {
        let e = psbt_from_base64(bad).unwrap_err();
        assert!(matches!(e, WalletError::Psbt(_)), "{bad:?}: {e}");
    }
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x.psbt");
    std::fs::write(&f, "garbage\n").unwrap();
    let e = read_psbt_file(&f).unwrap_err();
    assert!(e.to_string().contains("x.psbt"), "{e}");
    let e = read_psbt_file(&dir.path().join("missing.psbt")).unwrap_err();
    assert!(matches!(e, WalletError::Io { .. }), "{e}");
    // Round trip, text and binary.
    let psbt = Psbt::from_unsigned_tx(bitcoin::Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: bitcoin::absolute::LockTime::ZERO,
        input: vec![bitcoin::TxIn::default()],
        output: vec![bitcoin::TxOut {
            value: bitcoin::Amount::from_sat(1000),
            script_pubkey: commitment_script(&[MatchId(1)]),
        }],
    })
    .unwrap();
    write_psbt_file(&f, &psbt).unwrap();
    assert_eq!(read_psbt_file(&f).unwrap(), psbt);
    assert_eq!(
        psbt_from_base64(&format!("\n{}\n", psbt_to_base64(&psbt))).unwrap(),
        psbt
    );
    std::fs::write(&f, psbt.serialize()).unwrap();
    assert_eq!(read_psbt_file(&f).unwrap(), psbt);
}

#[test]
fn deadline_margins() {
    assert_eq!(DEFAULT_PAY_MARGIN, 6);
    assert!(safe_to_pay(112, 100, DEFAULT_PAY_MARGIN));
    assert!(safe_to_pay(106, 100, DEFAULT_PAY_MARGIN));
    assert!(!safe_to_pay(105, 100, DEFAULT_PAY_MARGIN));
    assert!(!safe_to_pay(90, 100, 0));
    assert!(safe_to_pay(100, 100, 0));
    let e = check_deadline(103, 100, 6).unwrap_err();
    assert!(e.to_string().contains("3 block(s) left"), "{e}");
    assert!(should_bump(103, 100));
    assert!(!should_bump(104, 100));
    assert!(!should_bump(99, 100));
}
