//! bdk_wallet over Electrum for the conformance suite and the full-scan measurement: BIP84
//! wallets from fixed seeds, full scan and sync with bdk_electrum, PSBTs built and signed by
//! bdk, and bounded waits for servers (electrs) that index asynchronously.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use bdk_electrum::electrum_client::{self, ElectrumApi};
use bdk_electrum::BdkElectrumClient;
use bdk_wallet::bitcoin::bip32::Xpriv;
use bdk_wallet::bitcoin::{Address, Amount, FeeRate, Network, Psbt, ScriptBuf, Transaction};
use bdk_wallet::descriptor::Descriptor;
use bdk_wallet::signer::SignersContainer;
use bdk_wallet::{KeychainKind, SignOptions, Wallet, WalletEvent};

/// Unused addresses in a row after which a full scan stops (bdk's and Electrum wallets' usual).
pub const STOP_GAP: usize = 20;
/// Scripts per Electrum batch request.
pub const BATCH: usize = 25;

pub type Client = BdkElectrumClient<electrum_client::Client>;

/// BIP84 external and internal descriptors of the master key from `[seed; 32]`.
pub fn descriptors(seed: u8) -> (String, String) {
    let xprv = Xpriv::new_master(Network::Regtest, &[seed; 32]).expect("valid seed");
    (
        format!("wpkh({xprv}/84h/1h/0h/0/*)"),
        format!("wpkh({xprv}/84h/1h/0h/1/*)"),
    )
}

/// An in-memory bdk wallet with the signers of its keys.
pub struct TestWallet {
    pub wallet: Wallet,
    signers: Vec<SignersContainer>,
}

impl std::ops::Deref for TestWallet {
    type Target = Wallet;
    fn deref(&self) -> &Wallet {
        &self.wallet
    }
}

impl std::ops::DerefMut for TestWallet {
    fn deref_mut(&mut self) -> &mut Wallet {
        &mut self.wallet
    }
}

/// A fresh wallet of `seed`.
pub fn wallet(seed: u8) -> TestWallet {
    let (ext, int) = descriptors(seed);
    let wallet = Wallet::create(ext.clone(), int.clone())
        .network(Network::Regtest)
        .create_wallet_no_persist()
        .expect("valid descriptors");
    let secp = wallet.secp_ctx();
    let signers = [ext, int]
        .iter()
        .map(|d| {
            let (desc, keys) = Descriptor::parse_descriptor(secp, d).expect("valid descriptor");
            SignersContainer::build(keys, &desc, secp)
        })
        .collect();
    TestWallet { wallet, signers }
}

impl TestWallet {
    /// Signs and finalizes `psbt` with the wallet's keys and extracts the transaction.
    pub fn sign(&self, mut psbt: Psbt) -> Transaction {
        let refs: Vec<&SignersContainer> = self.signers.iter().collect();
        let done = self
            .wallet
            .sign_with_signers(&mut psbt, &refs, SignOptions::default())
            .expect("signs");
        assert!(done, "every input finalized");
        psbt.extract_tx().expect("complete transaction")
    }
}

/// The next unused receive address, revealed so that syncs watch it.
pub fn receive(w: &mut Wallet) -> Address {
    w.reveal_next_address(KeychainKind::External).address
}

/// The external address at `index` (not revealed: only a full scan finds payments to it).
pub fn address(w: &Wallet, index: u32) -> Address {
    w.peek_address(KeychainKind::External, index).address
}

pub fn client(url: &str) -> Client {
    BdkElectrumClient::new(electrum_client::Client::new(url).expect("electrum connects"))
}

/// A full scan of every keychain, applied to the wallet; returns what changed.
pub fn full_scan(w: &mut Wallet, c: &Client) -> Vec<WalletEvent> {
    let request = w.start_full_scan().build();
    let update = c
        .full_scan(request, STOP_GAP, BATCH, true)
        .expect("full scan");
    w.apply_update_events(update).expect("update connects")
}

/// A sync of the revealed scripts, applied to the wallet; returns what changed.
pub fn sync(w: &mut Wallet, c: &Client) -> Vec<WalletEvent> {
    let request = w.start_sync_with_revealed_spks().build();
    let update = c.sync(request, BATCH, true).expect("sync");
    w.apply_update_events(update).expect("update connects")
}

/// A PSBT paying `amount` to `to` at `sat_per_vb`, built by bdk's coin selection.
pub fn pay(w: &mut Wallet, to: &ScriptBuf, amount: Amount, sat_per_vb: u64) -> Psbt {
    let mut b = w.build_tx();
    b.add_recipient(to.clone(), amount)
        .fee_rate(FeeRate::from_sat_per_vb(sat_per_vb).expect("fee rate"));
    b.finish().expect("wallet has the funds")
}

/// Like [`pay`], spending exactly the coin `from` (and no other): a double spend of it.
pub fn pay_from(
    w: &mut Wallet,
    from: bdk_wallet::bitcoin::OutPoint,
    to: &ScriptBuf,
    amount: Amount,
    sat_per_vb: u64,
) -> Psbt {
    let mut b = w.build_tx();
    b.add_utxo(from)
        .expect("the wallet knows the coin")
        .manually_selected_only()
        .add_recipient(to.clone(), amount)
        .fee_rate(FeeRate::from_sat_per_vb(sat_per_vb).expect("fee rate"));
    b.finish().expect("the coin covers the payment")
}

/// Broadcasts over Electrum (`blockchain.transaction.broadcast`).
pub fn broadcast(c: &Client, tx: &Transaction) -> Result<bdk_wallet::bitcoin::Txid, String> {
    c.inner.transaction_broadcast(tx).map_err(|e| e.to_string())
}

/// The Electrum server's tip height.
pub fn electrum_tip(c: &Client) -> u64 {
    c.inner.block_headers_subscribe().expect("headers").height as u64
}

/// Polls `done` until it holds; panics with `what` after a minute. Lets the suite run
/// against servers that index in the background (electrs) without timing assumptions.
pub fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
