//! [`RexeWallet`]: a bdk_wallet descriptor wallet persisted in one SQLite file, synced over
//! Electrum, that builds, checks, signs and broadcasts peg-in payments.

use std::fmt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bdk_electrum::electrum_client;
use bdk_electrum::BdkElectrumClient;
use bdk_wallet::chain::ChainPosition;
use bdk_wallet::descriptor::ExtendedDescriptor;
use bdk_wallet::error::CreateTxError;
use bdk_wallet::rusqlite::{self, Connection, OpenFlags, OptionalExtension};
use bdk_wallet::signer::SignersContainer;
use bdk_wallet::{Balance, KeychainKind, PersistedWallet, SignOptions, TxOrdering, Wallet};
use bitcoin::bip32::Xpriv;
use bitcoin::secp256k1::{All, Secp256k1};
use bitcoin::{
    Address, Amount, FeeRate, Network, Psbt, Script, Sequence, SignedAmount, Transaction, TxOut,
    Txid,
};
use miniscript::descriptor::KeyMap;
use miniscript::psbt::PsbtExt;
use rexe_bridge::peg::{commitment_script, MatchId};

use crate::error::{PegCheckError, Result, WalletError};
use crate::keys::{self, DescriptorKind};
use crate::peg::{self, PegPayment};

/// Version of the `rexe_wallet_keys` table layout.
const KEYS_FORMAT: i64 = 1;
/// Script pubkeys asked per Electrum batch.
const BATCH_SIZE: usize = 10;
/// Unused addresses in a row after which a full scan stops.
pub const STOP_GAP: usize = 20;
/// Electrum socket timeout.
const ELECTRUM_TIMEOUT: Duration = Duration::from_secs(20);

/// One wallet transaction, as [`RexeWallet::transactions`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxSummary {
    /// The transaction id.
    pub txid: Txid,
    /// Sum of the wallet's outputs in it.
    pub received: Amount,
    /// Sum of the wallet's inputs in it.
    pub sent: Amount,
    /// `received - sent` (negative for a payment).
    pub net: SignedAmount,
    /// The fee, when every input's previous output is known.
    pub fee: Option<Amount>,
    /// Height of the block confirming it (`None`: unconfirmed).
    pub confirmation_height: Option<u32>,
}

/// The wallet's secrets. Never printed.
struct Keys {
    /// The BIP39 phrase of a generated or restored wallet.
    mnemonic: Option<String>,
    /// The descriptors as stored (private when the wallet has keys).
    external_src: String,
    internal_src: Option<String>,
    /// Public descriptors.
    external: ExtendedDescriptor,
    internal: Option<ExtendedDescriptor>,
    /// Secret keys of each descriptor (empty: watch-only).
    external_keys: KeyMap,
    internal_keys: KeyMap,
    /// The BIP32 master key, when known (generated wallets, imports of a master xprv).
    master: Option<Xpriv>,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Keys(<redacted>)")
    }
}

impl Keys {
    fn parse(
        secp: &Secp256k1<All>,
        network: Network,
        mnemonic: Option<String>,
        external_src: String,
        internal_src: Option<String>,
    ) -> Result<Keys> {
        let (external, external_keys) =
            keys::parse_descriptor(secp, &external_src, network, "external")?;
        let (internal, internal_keys) = match &internal_src {
            Some(s) => {
                let (d, k) = keys::parse_descriptor(secp, s, network, "internal")?;
                (Some(d), k)
            }
            None => (None, KeyMap::new()),
        };
        if internal.as_ref() == Some(&external) {
            return Err(WalletError::InvalidDescriptor {
                which: "internal",
                message: "the change descriptor is the same as the receive descriptor".into(),
            });
        }
        if external_keys.is_empty() != internal_keys.is_empty() && internal.is_some() {
            return Err(WalletError::InvalidDescriptor {
                which: if external_keys.is_empty() {
                    "external"
                } else {
                    "internal"
                },
                message: "one descriptor is private and the other public: import both private \
                          (signing wallet) or both public (watch-only)"
                    .into(),
            });
        }
        let master = match &mnemonic {
            Some(m) => Some(keys::master_from_mnemonic(
                &keys::parse_mnemonic(m)?,
                network,
            )?),
            None => keys::master_of(&external_keys).or_else(|| keys::master_of(&internal_keys)),
        };
        Ok(Keys {
            mnemonic,
            external_src,
            internal_src,
            external,
            internal,
            external_keys,
            internal_keys,
            master,
        })
    }
}

/// A descriptor wallet in one SQLite file (mode 0600): bdk_wallet's tables plus
/// `rexe_wallet_keys`, which holds the mnemonic and the (private) descriptors.
pub struct RexeWallet {
    path: PathBuf,
    network: Network,
    db: Connection,
    wallet: PersistedWallet<Connection>,
    keys: Keys,
    l2: Option<rexe_chain::Signer>,
    secp: Secp256k1<All>,
}

impl fmt::Debug for RexeWallet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RexeWallet")
            .field("path", &self.path)
            .field("network", &self.network)
            .field("watch_only", &self.is_watch_only())
            .field("external", &self.keys.external.to_string())
            .finish_non_exhaustive()
    }
}

fn db_err(path: &Path) -> impl Fn(rusqlite::Error) -> WalletError + '_ {
    move |e| WalletError::Database {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn electrum_err(url: &str) -> impl Fn(electrum_client::Error) -> WalletError + '_ {
    move |e| WalletError::Electrum {
        url: url.to_string(),
        message: e.to_string(),
    }
}

/// Connects to an Electrum server (`tcp://HOST:PORT` or `ssl://HOST:PORT`).
pub fn electrum_client(url: &str) -> Result<BdkElectrumClient<electrum_client::Client>> {
    let rest = url
        .strip_prefix("tcp://")
        .or_else(|| url.strip_prefix("ssl://"))
        .ok_or_else(|| WalletError::ElectrumUrl(url.to_string()))?;
    if rest.is_empty() || !rest.contains(':') {
        return Err(WalletError::ElectrumUrl(url.to_string()));
    }
    let config = electrum_client::ConfigBuilder::new()
        .timeout(Some(ELECTRUM_TIMEOUT))
        .retry(1)
        .build();
    let client = electrum_client::Client::from_config(url, config).map_err(electrum_err(url))?;
    Ok(BdkElectrumClient::new(client))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn map_create_err(e: CreateTxError) -> WalletError {
    match e {
        CreateTxError::CoinSelection(i) => WalletError::InsufficientFunds {
            needed: i.needed,
            available: i.available,
        },
        CreateTxError::OutputBelowDustLimit(i) => {
            WalletError::Build(format!("output #{i} is below the dust limit"))
        }
        other => WalletError::Build(other.to_string()),
    }
}

impl RexeWallet {
    /// Creates a wallet at `path` (which must not exist) from a fresh 24-word BIP39 mnemonic,
    /// with BIP86 (`tr`) or BIP84 (`wpkh`) descriptors; see [`crate::keys`] for the paths.
    pub fn create(path: &Path, network: Network, kind: DescriptorKind) -> Result<RexeWallet> {
        let m = keys::new_mnemonic()?;
        Self::from_mnemonic(path, network, kind, m.to_string())
    }

    /// Creates a wallet at `path` from an existing BIP39 mnemonic (restore from backup).
    /// Run [`RexeWallet::full_scan`] afterwards to find its history.
    pub fn restore(
        path: &Path,
        network: Network,
        kind: DescriptorKind,
        mnemonic: &str,
    ) -> Result<RexeWallet> {
        let m = keys::parse_mnemonic(mnemonic)?;
        Self::from_mnemonic(path, network, kind, m.to_string())
    }

    fn from_mnemonic(
        path: &Path,
        network: Network,
        kind: DescriptorKind,
        words: String,
    ) -> Result<RexeWallet> {
        let m = keys::parse_mnemonic(&words)?;
        let master = keys::master_from_mnemonic(&m, network)?;
        let (ext, int) = keys::default_descriptors(&master, network, kind);
        Self::init(path, network, Some(words), ext, Some(int))
    }

    /// Creates a wallet at `path` from BIP380 descriptors: private ones make a signing wallet,
    /// public ones a watch-only wallet (it builds PSBTs for an external signer). Without an
    /// internal descriptor, change goes to the external one. The L2 key exists only when the
    /// descriptors hold a master xprv (depth 0, no origin).
    pub fn import(
        path: &Path,
        network: Network,
        external_descriptor: &str,
        internal_descriptor: Option<&str>,
    ) -> Result<RexeWallet> {
        Self::init(
            path,
            network,
            None,
            external_descriptor.trim().to_string(),
            internal_descriptor.map(|s| s.trim().to_string()),
        )
    }

    fn init(
        path: &Path,
        network: Network,
        mnemonic: Option<String>,
        external: String,
        internal: Option<String>,
    ) -> Result<RexeWallet> {
        let secp = Secp256k1::new();
        // Everything is validated before the file system is touched.
        let keys = Keys::parse(&secp, network, mnemonic, external, internal)?;
        let l2 = keys
            .master
            .as_ref()
            .map(|m| keys::l2_signer_from_master(&secp, m))
            .transpose()?;
        if path.exists() {
            return Err(WalletError::AlreadyExists(path.to_path_buf()));
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::AlreadyExists => WalletError::AlreadyExists(path.to_path_buf()),
                _ => WalletError::Io {
                    path: path.to_path_buf(),
                    source,
                },
            })?;
        let made = Self::init_db(path, network, keys, l2, secp);
        if made.is_err() {
            let _ = std::fs::remove_file(path);
        }
        made
    }

    fn init_db(
        path: &Path,
        network: Network,
        keys: Keys,
        l2: Option<rexe_chain::Signer>,
        secp: Secp256k1<All>,
    ) -> Result<RexeWallet> {
        let mut db = Connection::open(path).map_err(db_err(path))?;
        let params = match &keys.internal {
            Some(int) => Wallet::create(keys.external.clone(), int.clone()),
            None => Wallet::create_single(keys.external.clone()),
        };
        let wallet = params
            .network(network)
            .create_wallet(&mut db)
            .map_err(|e| WalletError::Database {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        db.execute_batch(
            "CREATE TABLE rexe_wallet_keys (
                 id INTEGER PRIMARY KEY CHECK (id = 0),
                 format INTEGER NOT NULL,
                 network TEXT NOT NULL,
                 mnemonic TEXT,
                 external_descriptor TEXT NOT NULL,
                 internal_descriptor TEXT
             )",
        )
        .map_err(db_err(path))?;
        db.execute(
            "INSERT INTO rexe_wallet_keys VALUES (0, ?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![
                KEYS_FORMAT,
                network.to_string(),
                keys.mnemonic,
                keys.external_src,
                keys.internal_src
            ],
        )
        .map_err(db_err(path))?;
        Ok(RexeWallet {
            path: path.to_path_buf(),
            network,
            db,
            wallet,
            keys,
            l2,
            secp,
        })
    }

    /// Opens the wallet at `path`; it must be a wallet of `network`.
    pub fn load(path: &Path, network: Network) -> Result<RexeWallet> {
        if !path.exists() {
            return Err(WalletError::NotFound(path.to_path_buf()));
        }
        let mut db = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(db_err(path))?;
        type Row = (i64, String, Option<String>, String, Option<String>);
        let row: Option<Row> = db
            .query_row(
                "SELECT format, network, mnemonic, external_descriptor, internal_descriptor
                 FROM rexe_wallet_keys WHERE id = 0",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()
            .map_err(|e| WalletError::Database {
                path: path.to_path_buf(),
                message: format!("not a rexe wallet ({e})"),
            })?;
        let (format, net, mnemonic, ext, int) = row.ok_or_else(|| WalletError::Database {
            path: path.to_path_buf(),
            message: "not a rexe wallet (no key record)".into(),
        })?;
        if format != KEYS_FORMAT {
            return Err(WalletError::Database {
                path: path.to_path_buf(),
                message: format!("unknown key record format {format}"),
            });
        }
        let found = Network::from_str(&net).map_err(|_| WalletError::Database {
            path: path.to_path_buf(),
            message: format!("unknown network {net:?}"),
        })?;
        if found != network {
            return Err(WalletError::WrongNetwork {
                path: path.to_path_buf(),
                expected: network,
                found,
            });
        }
        let secp = Secp256k1::new();
        let keys = Keys::parse(&secp, network, mnemonic, ext, int)?;
        let l2 = keys
            .master
            .as_ref()
            .map(|m| keys::l2_signer_from_master(&secp, m))
            .transpose()?;
        let genesis = bitcoin::constants::genesis_block(network).block_hash();
        let wallet = Wallet::load()
            .descriptor(KeychainKind::External, Some(keys.external.clone()))
            .descriptor(KeychainKind::Internal, keys.internal.clone())
            .check_network(network)
            .check_genesis_hash(genesis)
            .load_wallet(&mut db)
            .map_err(|e| WalletError::Database {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?
            .ok_or_else(|| WalletError::Database {
                path: path.to_path_buf(),
                message: "no wallet data".into(),
            })?;
        Ok(RexeWallet {
            path: path.to_path_buf(),
            network,
            db,
            wallet,
            keys,
            l2,
            secp,
        })
    }

    fn persist(&mut self) -> Result<()> {
        self.wallet
            .persist(&mut self.db)
            .map(|_| ())
            .map_err(db_err(&self.path))
    }

    /// The wallet file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The Bitcoin network.
    pub fn network(&self) -> Network {
        self.network
    }

    /// Whether the wallet holds no private key (built from public descriptors).
    pub fn is_watch_only(&self) -> bool {
        self.keys.external_keys.is_empty() && self.keys.internal_keys.is_empty()
    }

    /// The underlying bdk wallet (read-only), for what this API does not cover.
    pub fn inner(&self) -> &Wallet {
        &self.wallet
    }

    /// The public receive and change descriptors (with checksums): import them elsewhere
    /// for a watch-only copy.
    pub fn public_descriptors(&self) -> (String, Option<String>) {
        (
            self.keys.external.to_string(),
            self.keys.internal.as_ref().map(|d| d.to_string()),
        )
    }

    /// The BIP39 phrase, for a backup shown to the user. `None` for imported wallets.
    pub fn reveal_mnemonic(&self) -> Option<String> {
        self.keys.mnemonic.clone()
    }

    /// The user's L2 signing key, `m/7273'/0'/0'` from the wallet's master key
    /// ([`crate::keys::L2_KEY_PATH`]). `None` for watch-only wallets and imports without a
    /// master xprv.
    pub fn l2_signer(&self) -> Option<rexe_chain::Signer> {
        self.l2.clone()
    }

    /// The L2 address of [`RexeWallet::l2_signer`].
    pub fn l2_address(&self) -> Option<rexe_chain::Address> {
        self.l2.as_ref().map(|s| s.address())
    }

    /// Reveals (and persists) the next receive address.
    pub fn new_address(&mut self) -> Result<Address> {
        let a = self.wallet.reveal_next_address(KeychainKind::External);
        self.persist()?;
        Ok(a.address)
    }

    /// The receive address at `index` (not revealed).
    pub fn peek_address(&self, index: u32) -> Address {
        self.wallet
            .peek_address(KeychainKind::External, index)
            .address
    }

    /// Height of the last block the wallet synced to.
    pub fn tip_height(&self) -> u32 {
        self.wallet.latest_checkpoint().height()
    }

    /// Syncs the revealed addresses over Electrum and persists the result.
    pub fn sync(&mut self, electrum_url: &str) -> Result<()> {
        let client = electrum_client(electrum_url)?;
        client.populate_tx_cache(self.wallet.tx_graph().full_txs().map(|n| n.tx));
        let request = self.wallet.start_sync_with_revealed_spks().build();
        let update = client
            .sync(request, BATCH_SIZE, true)
            .map_err(electrum_err(electrum_url))?;
        self.wallet
            .apply_update(update)
            .map_err(|e| WalletError::Electrum {
                url: electrum_url.to_string(),
                message: format!("update does not connect to the wallet's chain: {e}"),
            })?;
        self.persist()
    }

    /// Scans every keychain until [`STOP_GAP`] unused addresses in a row (for restored or
    /// imported wallets), then persists.
    pub fn full_scan(&mut self, electrum_url: &str) -> Result<()> {
        let client = electrum_client(electrum_url)?;
        client.populate_tx_cache(self.wallet.tx_graph().full_txs().map(|n| n.tx));
        let request = self.wallet.start_full_scan().build();
        let update = client
            .full_scan(request, STOP_GAP, BATCH_SIZE, true)
            .map_err(electrum_err(electrum_url))?;
        self.wallet
            .apply_update(update)
            .map_err(|e| WalletError::Electrum {
                url: electrum_url.to_string(),
                message: format!("update does not connect to the wallet's chain: {e}"),
            })?;
        self.persist()
    }

    /// Balance as of the last sync (confirmed, pending, immature coinbase).
    pub fn balance(&self) -> Balance {
        self.wallet.balance()
    }

    /// The wallet's history, confirmed first (by height), then unconfirmed.
    pub fn transactions(&self) -> Vec<TxSummary> {
        let mut v: Vec<TxSummary> = self
            .wallet
            .transactions()
            .map(|wtx| {
                let tx = &wtx.tx_node.tx;
                let (sent, received) = self.wallet.sent_and_received(tx);
                let net = SignedAmount::from_sat(received.to_sat() as i64 - sent.to_sat() as i64);
                let confirmation_height = match &wtx.chain_position {
                    ChainPosition::Confirmed { anchor, .. } => Some(anchor.block_id.height),
                    ChainPosition::Unconfirmed { .. } => None,
                };
                TxSummary {
                    txid: wtx.tx_node.txid,
                    received,
                    sent,
                    net,
                    fee: self.wallet.calculate_fee(tx).ok(),
                    confirmation_height,
                }
            })
            .collect();
        v.sort_by_key(|t| (t.confirmation_height.unwrap_or(u32::MAX), t.txid));
        v
    }

    /// Builds the peg-in payment as a PSBT: one output per payment (in order), then the
    /// `OP_RETURN` `commitment_script(match_ids)`, then change; every input signals RBF
    /// (nSequence 0xfffffffd); fee at `fee_rate`. The PSBT records the network's genesis hash
    /// ([`crate::peg::genesis_key`]). The change address it reveals is persisted.
    pub fn build_peg_in(
        &mut self,
        payments: &[PegPayment],
        match_ids: &[MatchId],
        fee_rate: FeeRate,
    ) -> Result<Psbt> {
        if payments.is_empty() {
            return Err(PegCheckError::NoPayments.into());
        }
        if match_ids.is_empty() {
            return Err(PegCheckError::NoMatchIds.into());
        }
        if let Some(index) = payments.iter().position(|p| p.script.is_op_return()) {
            return Err(PegCheckError::UnspendablePayee { index }.into());
        }
        let mut b = self.wallet.build_tx();
        for p in payments {
            b.add_recipient(p.script.clone(), p.amount);
        }
        b.add_recipient(commitment_script(match_ids), Amount::ZERO);
        b.fee_rate(fee_rate)
            .ordering(TxOrdering::Untouched)
            .set_exact_sequence(Sequence::ENABLE_RBF_NO_LOCKTIME);
        let mut psbt = b.finish().map_err(map_create_err)?;
        peg::tag_network(&mut psbt, self.network);
        peg::tag_match_ids(&mut psbt, match_ids);
        self.persist()?;
        peg::check_peg_psbt(&psbt, payments, match_ids, self.network)?;
        Ok(psbt)
    }

    /// [`crate::check_peg_psbt`] on this wallet's network.
    pub fn check_peg_psbt(
        &self,
        psbt: &Psbt,
        payments: &[PegPayment],
        match_ids: &[MatchId],
    ) -> Result<()> {
        peg::check_peg_psbt(psbt, payments, match_ids, self.network)?;
        Ok(())
    }

    /// Checks the PSBT is the peg payment ([`crate::check_peg_psbt`]), signs the wallet's own
    /// inputs (and no other) and finalizes what it can. Returns whether every input is
    /// finalized (`false`: other parties still have to sign).
    pub fn sign(
        &self,
        psbt: &mut Psbt,
        payments: &[PegPayment],
        match_ids: &[MatchId],
    ) -> Result<bool> {
        self.check_peg_psbt(psbt, payments, match_ids)?;
        self.sign_unchecked(psbt)
    }

    /// Signs the wallet's inputs of any PSBT, without the peg checks (plain sends only).
    pub fn sign_unchecked(&self, psbt: &mut Psbt) -> Result<bool> {
        if self.is_watch_only() {
            return Err(WalletError::WatchOnly);
        }
        self.verify_own_prevouts(psbt)?;
        let secp = self.wallet.secp_ctx();
        let ext = SignersContainer::build(
            self.keys.external_keys.clone(),
            self.wallet.public_descriptor(KeychainKind::External),
            secp,
        );
        let mut containers = vec![ext];
        if self.keys.internal.is_some() {
            containers.push(SignersContainer::build(
                self.keys.internal_keys.clone(),
                self.wallet.public_descriptor(KeychainKind::Internal),
                secp,
            ));
        }
        let refs: Vec<&SignersContainer> = containers.iter().collect();
        let options = SignOptions {
            // Our own inputs' previous outputs are checked against the wallet's records
            // above; other parties' inputs are theirs to check (taproot and segwit v0
            // signatures commit to the amount of the input they sign).
            trust_witness_utxo: true,
            try_finalize: false,
            ..Default::default()
        };
        self.wallet
            .sign_with_signers(psbt, &refs, options)
            .map_err(|e| WalletError::Sign(e.to_string()))?;
        self.finalize(psbt)
    }

    /// Refuses to sign an input of ours whose previous output in the PSBT differs from the
    /// wallet's record, or a segwit v0 input of ours the wallet cannot verify.
    fn verify_own_prevouts(&self, psbt: &Psbt) -> Result<()> {
        if psbt.inputs.len() != psbt.unsigned_tx.input.len() {
            return Err(WalletError::Psbt(format!(
                "{} inputs in the transaction but {} PSBT input maps",
                psbt.unsigned_tx.input.len(),
                psbt.inputs.len()
            )));
        }
        let graph = self.wallet.tx_graph();
        for (n, (txin, input)) in psbt.unsigned_tx.input.iter().zip(&psbt.inputs).enumerate() {
            let op = txin.previous_output;
            if let Some(tx) = &input.non_witness_utxo {
                if tx.compute_txid() != op.txid {
                    return Err(WalletError::Sign(format!(
                        "input #{n}: its previous transaction is not {}",
                        op.txid
                    )));
                }
            }
            match graph.get_txout(op) {
                Some(known) if self.wallet.is_mine(known.script_pubkey.clone()) => {
                    if input.witness_utxo.as_ref().is_some_and(|w| w != known) {
                        return Err(WalletError::Sign(format!(
                            "input #{n} ({op}): the PSBT's previous output differs from the \
                             wallet's record"
                        )));
                    }
                }
                Some(_) => {}
                None => {
                    let Some(w) = &input.witness_utxo else {
                        continue;
                    };
                    if self.wallet.is_mine(w.script_pubkey.clone()) && !w.script_pubkey.is_p2tr() {
                        let ok = input
                            .non_witness_utxo
                            .as_ref()
                            .is_some_and(|tx| tx.output.get(op.vout as usize) == Some::<&TxOut>(w));
                        if !ok {
                            return Err(WalletError::Sign(format!(
                                "input #{n} ({op}) is ours but unknown to the wallet: sync \
                                 first or include its previous transaction"
                            )));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Finalizes every input that has enough signatures (the wallet's inputs through its
    /// descriptors, other inputs through miniscript's generic finalizer). Returns whether all
    /// inputs are final.
    pub fn finalize(&self, psbt: &mut Psbt) -> Result<bool> {
        if psbt.inputs.len() != psbt.unsigned_tx.input.len() {
            return Err(WalletError::Psbt("input count mismatch".into()));
        }
        self.wallet
            .finalize_psbt(psbt, SignOptions::default())
            .map_err(|e| WalletError::Psbt(e.to_string()))?;
        let is_final = |i: &bitcoin::psbt::Input| {
            i.final_script_sig.is_some() || i.final_script_witness.is_some()
        };
        for n in 0..psbt.inputs.len() {
            if !is_final(&psbt.inputs[n]) {
                // Not enough signatures yet is not an error here.
                let _ = psbt.finalize_inp_mut(&self.secp, n);
            }
        }
        Ok(psbt.inputs.iter().all(is_final))
    }

    /// Checks `tx` is the peg payment ([`crate::check_peg_tx`]), broadcasts it over Electrum
    /// and records it in the wallet as unconfirmed.
    pub fn broadcast(
        &mut self,
        electrum_url: &str,
        tx: &Transaction,
        payments: &[PegPayment],
        match_ids: &[MatchId],
    ) -> Result<Txid> {
        peg::check_peg_tx(tx, payments, match_ids, self.network)?;
        self.broadcast_unchecked(electrum_url, tx)
    }

    /// Broadcasts any transaction (no peg checks) and records it as unconfirmed.
    pub fn broadcast_unchecked(&mut self, electrum_url: &str, tx: &Transaction) -> Result<Txid> {
        let client = electrum_client(electrum_url)?;
        let txid = client
            .transaction_broadcast(tx)
            .map_err(|e| WalletError::Electrum {
                url: electrum_url.to_string(),
                message: format!("broadcast of {} refused: {e}", tx.compute_txid()),
            })?;
        self.wallet
            .apply_unconfirmed_txs([(tx.clone(), now_secs())]);
        self.persist()?;
        Ok(txid)
    }

    /// Pays `amount` to `script` (a plain payment, not a peg-in): builds, signs and
    /// broadcasts over Electrum; RBF on, change to the wallet.
    pub fn send(
        &mut self,
        script: &Script,
        amount: Amount,
        fee_rate: FeeRate,
        electrum_url: &str,
    ) -> Result<Txid> {
        let mut b = self.wallet.build_tx();
        b.add_recipient(script.to_owned(), amount)
            .fee_rate(fee_rate)
            .set_exact_sequence(Sequence::ENABLE_RBF_NO_LOCKTIME);
        let mut psbt = b.finish().map_err(map_create_err)?;
        self.persist()?;
        if !self.sign_unchecked(&mut psbt)? {
            return Err(WalletError::Sign("not every input could be signed".into()));
        }
        let tx = peg::extract_tx(psbt)?;
        self.broadcast_unchecked(electrum_url, &tx)
    }

    /// A replacement (BIP125) of the wallet's unconfirmed transaction `txid` paying
    /// `new_fee_rate`: bdk's fee bump, which takes the extra fee from the change (adding
    /// inputs if needed). Refused unless every output not belonging to the wallet (payments,
    /// `OP_RETURN`) is kept with its script and value. Only for transactions whose inputs
    /// are all the wallet's.
    pub fn bump_fee(&mut self, txid: Txid, new_fee_rate: FeeRate) -> Result<Psbt> {
        let bump_err = |message: String| WalletError::FeeBump { txid, message };
        let orig = self
            .wallet
            .get_tx(txid)
            .map(|t| t.tx_node.tx.clone())
            .ok_or_else(|| bump_err("not a transaction of this wallet".into()))?;
        let keep: Vec<TxOut> = orig
            .output
            .iter()
            .filter(|o| !self.wallet.is_mine(o.script_pubkey.clone()))
            .cloned()
            .collect();
        let mut b = self
            .wallet
            .build_fee_bump(txid)
            .map_err(|e| bump_err(e.to_string()))?;
        b.fee_rate(new_fee_rate).ordering(TxOrdering::Untouched);
        let mut psbt = b.finish().map_err(|e| match map_create_err(e) {
            e @ WalletError::InsufficientFunds { .. } => e,
            other => bump_err(other.to_string()),
        })?;
        peg::tag_network(&mut psbt, self.network);
        self.persist()?;
        let mut outs: Vec<&TxOut> = psbt.unsigned_tx.output.iter().collect();
        for k in &keep {
            match outs.iter().position(|o| *o == k) {
                Some(i) => {
                    outs.swap_remove(i);
                }
                None => {
                    return Err(bump_err(format!(
                        "the replacement would drop or change the output of {} to {}",
                        k.value,
                        peg::script_label(&k.script_pubkey, self.network)
                    )))
                }
            }
        }
        Ok(psbt)
    }
}
