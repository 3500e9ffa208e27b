//! bitcoind's wallet RPCs, served by the embedded node itself.
//!
//! Each named wallet is a descriptor wallet made of two [`bdk_wallet`] wallets sharing one
//! random master key: BIP84 (`wpkh`, `bech32` addresses, the default) and BIP86 (`tr`,
//! `bech32m`), each with an external and an internal (change) keychain. They persist in
//! `DATADIR/wallets/<name>.sqlite` (BIP84, plus the master key in table `rexe_wallet_keys`)
//! and `DATADIR/wallets/<name>.sqlite-bip86`, created with mode 0600. bdk persists the
//! public descriptors; the private key is re-attached on load. A node without a data
//! directory keeps its wallets in memory.
//!
//! Wallets live inside the [`crate::node::Node`], under the node's lock, and follow its
//! chain directly: before answering, a wallet whose view is behind (another tip or another
//! mempool generation) applies the active blocks above its last checkpoint that is still
//! active (bdk's `LocalChain` drops the checkpoints of a reorganised branch), then the
//! mempool's transactions, and marks its unconfirmed transactions that left the mempool as
//! evicted.
//!
//! Coinbase outputs count as mature once they have 101 confirmations, as Core's wallet
//! counts them (one block later than consensus allows spending them).
//!
//! Payments (`sendtoaddress`, `sendmany`, `walletcreatefundedpsbt`) are built by the BIP84
//! part, else the BIP86 part, else by the BIP84 part with the BIP86 coins added as foreign
//! inputs; signing (also `walletprocesspsbt`, `signrawtransactionwithwallet`) uses the master
//! key with the PSBT's key origins, and bdk finalizes.
//!
//! The address book (`getnewaddress label`, `setlabel`, `getaddressesbylabel`,
//! `listlabels`, labels on coins and transactions) is a table of the main wallet file.
//!
//! Blank and watch-only wallets (`createwallet … disable_private_keys` / `blank`) have no
//! master key; `importdescriptors` ([`import`]) gives any wallet further descriptors, each a
//! bdk wallet of its own in `DATADIR/wallets/<name>.sqlite-desc<id>`, its settings (and its
//! private keys, if any) in the main file's `rexe_descriptors`. The last active descriptor
//! imported for an output type and externality hands out that type's new addresses, as in
//! Core. A watch-only wallet funds PSBTs (`walletcreatefundedpsbt`) that another wallet
//! signs. `addr()`/`raw()` descriptors, which bdk cannot hold, are followed by a
//! [`watch::Watch`] each: their coins count as the wallet's but never fund a payment.
//!
//! A block the active chain drops (`invalidateblock`, a reorg) leaves every part and watch
//! at once, even before another block takes its height, so its transactions read as
//! unconfirmed again, as in Core.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use bdk_wallet::chain::{BlockId, ChainPosition};
use bdk_wallet::rusqlite::Connection;
use bdk_wallet::{KeychainKind, PersistedWallet, SignOptions, Wallet};
use bitcoin::bip32::Xpriv;
use bitcoin::consensus::encode::serialize_hex;
use bitcoin::hex::{DisplayHex, FromHex};
use bitcoin::{Address, Amount, FeeRate, Network, OutPoint, SignedAmount, Transaction, Txid};
use serde_json::{json, Value};

mod descriptor;
mod import;
mod watch;

pub use descriptor::OutputType;

use crate::chain::unix_now;
use crate::chain::Chain;
use crate::mempool::Mempool;
use crate::node::Node;

/// Confirmations a coinbase output needs before Core's wallet counts it as spendable.
const WALLET_COINBASE_MATURITY: u32 = 101;
/// Fee rate of wallet transactions when the call names none (sat/vB).
pub const DEFAULT_FEE_RATE_SAT_VB: u64 = 2;

/// A wallet RPC failure, with Core's code ([`WalletError::code`]) and message.
#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    /// `createwallet` for a name whose database exists (or is loaded).
    #[error("Wallet file verification failed. Failed to create database path '{0}'. Database already exists.")]
    AlreadyExists(String),
    /// `loadwallet` for a name without a database.
    #[error(
        "Wallet file verification failed. Failed to load database path '{0}'. Path does not exist."
    )]
    NotFound(String),
    /// `loadwallet` for a loaded wallet.
    #[error("Wallet \"{0}\" is already loaded.")]
    AlreadyLoaded(String),
    /// A `/wallet/<name>` path (or `unloadwallet` name) that names no loaded wallet.
    #[error("Requested wallet does not exist or is not loaded")]
    NotLoaded,
    /// No wallet loaded and none named.
    #[error("No wallet is loaded. Load a wallet using loadwallet or create a new one with createwallet. (Note: A default wallet is no longer automatically created)")]
    NoneLoaded,
    /// Several wallets loaded and none named.
    #[error(
        "Wallet file not specified (must request wallet RPC through /wallet/<filename> uri-path)."
    )]
    NotSpecified,
    /// Not enough spendable coins.
    #[error("Insufficient funds")]
    InsufficientFunds,
    /// A transaction id the wallet does not know.
    #[error("Invalid or non-wallet transaction id")]
    UnknownTx,
    /// A bad parameter (Core's code and message).
    #[error("{1}")]
    Param(i64, String),
    /// The database or bdk failed.
    #[error("{0}")]
    Wallet(String),
    /// The node's mempool refused the wallet's transaction.
    #[error("{1}")]
    Rejected(i64, String),
}

impl WalletError {
    /// Core's RPC error code.
    pub fn code(&self) -> i64 {
        match self {
            WalletError::AlreadyExists(_) | WalletError::Wallet(_) => -4,
            WalletError::NotFound(_) | WalletError::NotLoaded | WalletError::NoneLoaded => -18,
            WalletError::AlreadyLoaded(_) => -35,
            WalletError::NotSpecified => -19,
            WalletError::InsufficientFunds => -6,
            WalletError::UnknownTx => -5,
            WalletError::Param(c, _) | WalletError::Rejected(c, _) => *c,
        }
    }
}

fn db_err(e: impl std::fmt::Display) -> WalletError {
    WalletError::Wallet(e.to_string())
}

fn param(code: i64, m: impl Into<String>) -> WalletError {
    WalletError::Param(code, m.into())
}

type Res<T> = Result<T, WalletError>;

/// Where a part's descriptors come from.
enum Source {
    /// Derived from the wallet's master key: BIP84 (`wpkh`, [`OutputType::Bech32`]) or BIP86
    /// (`tr`, [`OutputType::Bech32m`]), with bdk's external and internal keychains.
    Master(OutputType),
    /// An imported descriptor, on bdk's external keychain.
    Imported(Imported),
}

/// An imported descriptor's settings, as `importdescriptors` set them (its row in
/// `rexe_descriptors`).
struct Imported {
    id: i64,
    /// The descriptor as imported, private keys included (`listdescriptors true`).
    text: String,
    /// The `combo()` it is one of the descriptors of, as imported (keys as given, no
    /// checksum): `listdescriptors` shows the combo once.
    combo: Option<String>,
    output_type: Option<OutputType>,
    /// Its scripts are change (`internal`).
    internal: bool,
    /// It hands out new addresses of its type (`getnewaddress`/`getrawchangeaddress`).
    active: bool,
    /// The range watched (inclusive) for a ranged descriptor.
    range: Option<(u32, u32)>,
    timestamp: i64,
    /// Signers of its private keys, built once when the part is made or loaded (`None`
    /// for a public descriptor).
    signers: Option<bdk_wallet::signer::SignersContainer>,
}

/// One bdk wallet of a named wallet and its database.
struct Part {
    wallet: PersistedWallet<Connection>,
    db: Connection,
    source: Source,
}

impl Part {
    fn persist(&mut self) -> Res<()> {
        self.wallet.persist(&mut self.db).map_err(db_err)?;
        Ok(())
    }

    /// The output type of the part's addresses.
    fn output_type(&self) -> Option<OutputType> {
        match &self.source {
            Source::Master(t) => Some(*t),
            Source::Imported(m) => m.output_type,
        }
    }

    /// Whether `keychain`'s scripts are change.
    fn is_change(&self, keychain: KeychainKind) -> bool {
        match &self.source {
            Source::Master(_) => keychain == KeychainKind::Internal,
            Source::Imported(m) => m.internal,
        }
    }

    /// The keychains the part holds.
    fn keychains(&self) -> &'static [KeychainKind] {
        match self.source {
            Source::Master(_) => &[KeychainKind::External, KeychainKind::Internal],
            Source::Imported(_) => &[KeychainKind::External],
        }
    }
}

/// A loaded wallet: the parts derived from its master key (BIP84 then BIP86; none in a blank
/// or watch-only wallet), then one part per imported descriptor, in import order.
pub struct NamedWallet {
    parts: Vec<Part>,
    /// The master key the first two parts derive from (signs their coins); `None` in blank
    /// and watch-only wallets.
    xprv: Option<Xpriv>,
    /// Core's `private_keys_enabled` (false: a watch-only wallet, `disable_private_keys`).
    private_keys: bool,
    /// Core's `blank` flag: created without keys.
    blank: bool,
    /// When the wallet was created (unix seconds; 0 for wallets made before it was kept).
    created: i64,
    /// The wallet's own records: flags, imported descriptors and the address book. The main
    /// wallet file (a second connection to it in a wallet with a master key, whose BIP84
    /// part lives in the same file).
    meta: Connection,
    /// The node state the wallet last synced to: tip and mempool generation.
    synced: Option<(bitcoin::BlockHash, u64)>,
    /// Parts `importdescriptors` just added or changed, with the time their next sync scans
    /// the chain from (Core's rescan from the import's `timestamp`).
    rescans: Vec<(usize, i64)>,
    /// The address book: address → label (`getnewaddress label`, `setlabel`).
    labels: BTreeMap<String, String>,
    /// The `addr()`/`raw()` descriptors imported, in import order.
    watched: Vec<watch::Watch>,
}

/// The wallet's own tables in its main file.
const META_TABLES: &str = "
    CREATE TABLE IF NOT EXISTS rexe_labels (address TEXT PRIMARY KEY, label TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS rexe_wallet_flags (
        private_keys INTEGER NOT NULL, blank INTEGER NOT NULL, created INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS rexe_descriptors (
        id INTEGER PRIMARY KEY, descriptor TEXT NOT NULL, internal INTEGER NOT NULL,
        active INTEGER NOT NULL, range_start INTEGER, range_end INTEGER,
        next_index INTEGER NOT NULL, timestamp INTEGER NOT NULL, combo TEXT, scan_from INTEGER);";

/// Creates the wallet's own tables, and adds what later versions added to older ones
/// (`rexe_descriptors.combo`, `rexe_descriptors.scan_from`).
fn ensure_meta_tables(db: &Connection) -> Res<()> {
    db.execute_batch(META_TABLES).map_err(db_err)?;
    for (column, kind) in [("combo", "TEXT"), ("scan_from", "INTEGER")] {
        let has = db
            .prepare("SELECT 1 FROM pragma_table_info('rexe_descriptors') WHERE name = ?1")
            .and_then(|mut st| st.exists([column]))
            .map_err(db_err)?;
        if !has {
            db.execute_batch(&format!(
                "ALTER TABLE rexe_descriptors ADD COLUMN {column} {kind}"
            ))
            .map_err(db_err)?;
        }
    }
    Ok(())
}

/// Reads the address book (creating the wallet's tables in wallets made before they existed).
fn read_labels(db: &Connection) -> Res<BTreeMap<String, String>> {
    ensure_meta_tables(db)?;
    let mut st = db
        .prepare("SELECT address, label FROM rexe_labels")
        .map_err(db_err)?;
    let rows = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(db_err)?;
    rows.collect::<Result<_, _>>().map_err(db_err)
}

/// The node's loaded wallets and where wallet files live.
pub struct Wallets {
    dir: Option<PathBuf>,
    loaded: Vec<(String, NamedWallet)>,
    last_seen: u64,
}

/// The BIP84 (`part` 0) or BIP86 (1) descriptors of a master key, private: external, internal.
fn descriptors(xprv: &Xpriv, part: usize) -> (String, String) {
    let (f, purpose) = if part == 0 { ("wpkh", 84) } else { ("tr", 86) };
    (
        format!("{f}({xprv}/{purpose}h/1h/0h/0/*)"),
        format!("{f}({xprv}/{purpose}h/1h/0h/1/*)"),
    )
}

/// Loads the regtest bdk wallet `params` describe from `db` (the file at `path`, named in
/// the error when it holds none).
fn load_bdk(
    params: bdk_wallet::LoadParams,
    db: &mut Connection,
    path: &Path,
) -> Res<PersistedWallet<Connection>> {
    params
        .check_network(Network::Regtest)
        .load_wallet(db)
        .map_err(db_err)?
        .ok_or_else(|| WalletError::Wallet(format!("{} holds no wallet", path.display())))
}

/// Creates `path` empty with mode 0600 (it may hold keys) before SQLite opens it.
fn create_private_file(path: &Path) -> Res<Connection> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.flush())
        .map_err(db_err)?;
    Connection::open(path).map_err(db_err)
}

impl NamedWallet {
    /// Core's descriptor of one of the wallet's scripts: `wpkh([fp/84h/1h/0h/0/5]02…)` or
    /// `tr([fp/86h/1h/0h/0/5]<x-only key>)`, keys with their full origin, with its checksum.
    fn key_desc(&self, part: usize, keychain: KeychainKind, index: u32) -> String {
        descriptor::at_index(self.parts[part].wallet.public_descriptor(keychain), index)
    }

    /// The part and keychain that hands out new addresses of type `t` (change with
    /// `internal`): the last imported active descriptor of that type, else the master key's.
    fn active(&self, t: OutputType, internal: bool) -> Option<(usize, KeychainKind)> {
        self.parts
            .iter()
            .enumerate()
            .rev()
            .find_map(|(i, p)| match &p.source {
                Source::Imported(m)
                    if m.active && m.internal == internal && m.output_type == Some(t) =>
                {
                    Some((i, KeychainKind::External))
                }
                Source::Master(mt) if *mt == t => Some((
                    i,
                    if internal {
                        KeychainKind::Internal
                    } else {
                        KeychainKind::External
                    },
                )),
                _ => None,
            })
    }

    /// Whether the wallet can hand out addresses at all (Core's `CanGetAddresses`).
    fn has_active(&self) -> bool {
        self.parts.iter().any(|p| match &p.source {
            Source::Master(_) => true,
            Source::Imported(m) => m.active,
        })
    }

    /// The part, keychain and index of one of the wallet's scripts.
    fn owner(&self, script: &bitcoin::Script) -> Option<Holder> {
        let key = self.parts.iter().enumerate().find_map(|(part, p)| {
            p.wallet
                .derivation_of_spk(script.to_owned())
                .map(|(keychain, index)| Holder::Key {
                    part,
                    keychain,
                    index,
                })
        });
        key.or_else(|| {
            self.watched
                .iter()
                .position(|w| w.desc.script.as_script() == script)
                .map(Holder::Watch)
        })
    }

    /// Whether `holder`'s scripts are change.
    fn is_change(&self, holder: Holder) -> bool {
        match holder {
            Holder::Key { part, keychain, .. } => self.parts[part].is_change(keychain),
            Holder::Watch(wi) => self.watched[wi].internal,
        }
    }

    /// Whether `script` is one of the wallet's change scripts.
    fn is_change_script(&self, script: &bitcoin::Script) -> bool {
        self.owner(script).is_some_and(|h| self.is_change(h))
    }
}

fn btc(a: Amount) -> Value {
    json!(a.to_btc())
}

fn sbtc(a: SignedAmount) -> Value {
    json!(a.to_btc())
}

impl Wallets {
    /// Wallets under `datadir/wallets` (in memory without a data directory), with the
    /// wallets `settings.json` lists to load on startup loaded (as Core's `"wallet"` setting).
    pub fn new(datadir: Option<&Path>) -> Wallets {
        let mut w = Wallets {
            dir: datadir.map(|d| d.join("wallets")),
            loaded: Vec::new(),
            last_seen: 0,
        };
        for name in w.startup_list() {
            match w.load(&name) {
                Ok(()) => tracing::info!(wallet = %name, "wallet loaded on startup"),
                Err(e) => {
                    tracing::warn!(wallet = %name, error = %e, "could not load a wallet on startup")
                }
            }
        }
        w
    }

    /// `DATADIR/settings.json`, where Core keeps the wallets to load on startup.
    fn settings_path(&self) -> Option<PathBuf> {
        Some(self.dir.as_ref()?.parent()?.join("settings.json"))
    }

    fn settings(&self) -> serde_json::Map<String, Value> {
        self.settings_path()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default()
    }

    fn startup_list(&self) -> Vec<String> {
        let s = self.settings();
        match s.get("wallet") {
            Some(Value::String(n)) => vec![n.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Adds `name` to (`true`) or removes it from (`false`) the wallets loaded on startup;
    /// `None` leaves the setting as it is. A warning for Core's `warning` field on failure.
    fn set_load_on_startup(&self, name: &str, on: Option<bool>) -> String {
        let (Some(on), Some(path)) = (on, self.settings_path()) else {
            return String::new();
        };
        let mut s = self.settings();
        let mut list = self.startup_list();
        list.retain(|n| n != name);
        if on {
            list.push(name.to_string());
        }
        s.insert("wallet".into(), json!(list));
        let text = serde_json::to_string_pretty(&Value::Object(s)).unwrap_or_default();
        match std::fs::write(&path, text + "\n") {
            Ok(()) => String::new(),
            Err(e) => format!("Wallet load on startup setting could not be updated: {e}"),
        }
    }

    /// The names of the loaded wallets, in load order.
    pub fn names(&self) -> Vec<String> {
        self.loaded.iter().map(|(n, _)| n.clone()).collect()
    }

    fn paths(&self, name: &str) -> Option<(PathBuf, PathBuf)> {
        let d = self.dir.as_ref()?;
        Some((
            d.join(format!("{name}.sqlite")),
            d.join(format!("{name}.sqlite-bip86")),
        ))
    }

    fn display_path(&self, name: &str) -> String {
        self.paths(name)
            .map(|(p, _)| p.display().to_string())
            .unwrap_or_else(|| name.to_string())
    }

    fn check_name(name: &str) -> Res<()> {
        if name.contains('/') || name.contains('\0') || name == "." || name == ".." {
            return Err(param(-8, format!("Invalid wallet name '{name}'")));
        }
        Ok(())
    }

    fn is_loaded(&self, name: &str) -> bool {
        self.loaded.iter().any(|(n, _)| n == name)
    }

    /// `createwallet`: a new wallet, loaded: with a fresh random master key, or none when
    /// `blank` or without private keys (`private_keys` false: a watch-only wallet).
    pub fn create(&mut self, name: &str, private_keys: bool, blank: bool) -> Res<()> {
        Self::check_name(name)?;
        if self.is_loaded(name) {
            return Err(WalletError::AlreadyExists(self.display_path(name)));
        }
        let xprv = if private_keys && !blank {
            let mut seed = [0u8; 32];
            std::io::Read::read_exact(
                &mut std::fs::File::open("/dev/urandom").map_err(db_err)?,
                &mut seed,
            )
            .map_err(db_err)?;
            Some(Xpriv::new_master(Network::Regtest, &seed).map_err(db_err)?)
        } else {
            None
        };
        let made = |conns: Vec<Connection>, meta: Connection| -> Res<NamedWallet> {
            ensure_meta_tables(&meta)?;
            meta.execute(
                "INSERT INTO rexe_wallet_flags (private_keys, blank, created) VALUES (?1, ?2, ?3)",
                (private_keys, blank, unix_now() as i64),
            )
            .map_err(db_err)?;
            let parts = match &xprv {
                Some(k) => Self::create_parts(conns, k)?,
                None => Vec::new(),
            };
            NamedWallet::open(parts, xprv, meta)
        };
        let wallet = match self.paths(name) {
            Some((main, tr)) => {
                if main.exists() {
                    return Err(WalletError::AlreadyExists(main.display().to_string()));
                }
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(main.parent().expect("in wallets/"))
                    .map_err(db_err)?;
                let w = (|| {
                    let meta = create_private_file(&main)?;
                    let mut conns = Vec::new();
                    if xprv.is_some() {
                        conns.push(Connection::open(&main).map_err(db_err)?);
                        conns.push(create_private_file(&tr)?);
                    }
                    made(conns, meta)
                })();
                if w.is_err() {
                    // No half-made wallet left behind to block a retry.
                    let _ = std::fs::remove_file(&main);
                    let _ = std::fs::remove_file(&tr);
                }
                w?
            }
            None => made(
                vec![
                    Connection::open_in_memory().map_err(db_err)?,
                    Connection::open_in_memory().map_err(db_err)?,
                ],
                Connection::open_in_memory().map_err(db_err)?,
            )?,
        };
        self.loaded.push((name.to_string(), wallet));
        Ok(())
    }

    /// The two bdk wallets of a new master key in `conns` (BIP84's first, which also keeps
    /// the key).
    fn create_parts(conns: Vec<Connection>, xprv: &Xpriv) -> Res<Vec<Part>> {
        let mut parts = Vec::new();
        for (i, mut db) in conns.into_iter().enumerate() {
            if i == 0 {
                db.execute_batch("CREATE TABLE rexe_wallet_keys (xprv TEXT NOT NULL)")
                    .map_err(db_err)?;
                db.execute(
                    "INSERT INTO rexe_wallet_keys (xprv) VALUES (?1)",
                    [xprv.to_string()],
                )
                .map_err(db_err)?;
            }
            let (ext, int) = descriptors(xprv, i);
            let wallet = Wallet::create(ext, int)
                .network(Network::Regtest)
                .create_wallet(&mut db)
                .map_err(db_err)?;
            parts.push(Part {
                wallet,
                db,
                source: Source::Master(master_type(i)),
            });
        }
        Ok(parts)
    }

    /// `loadwallet`: loads a wallet created earlier (in this data directory).
    pub fn load(&mut self, name: &str) -> Res<()> {
        Self::check_name(name)?;
        if self.is_loaded(name) {
            return Err(WalletError::AlreadyLoaded(name.to_string()));
        }
        let Some((main, tr)) = self.paths(name) else {
            return Err(WalletError::NotFound(name.to_string()));
        };
        if !main.exists() {
            return Err(WalletError::NotFound(main.display().to_string()));
        }
        let meta = Connection::open(&main).map_err(db_err)?;
        let has_key: bool = meta
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'rexe_wallet_keys'",
                [],
                |r| r.get(0),
            )
            .map_err(db_err)?;
        let mut parts = Vec::new();
        let mut xprv = None;
        if has_key {
            if !tr.exists() {
                return Err(WalletError::NotFound(tr.display().to_string()));
            }
            let key: String = meta
                .query_row("SELECT xprv FROM rexe_wallet_keys", [], |r| r.get(0))
                .map_err(db_err)?;
            let key = Xpriv::from_str(&key).map_err(db_err)?;
            let conns = [
                Connection::open(&main).map_err(db_err)?,
                Connection::open(&tr).map_err(db_err)?,
            ];
            for (i, mut db) in conns.into_iter().enumerate() {
                let (ext, int) = descriptors(&key, i);
                let params = Wallet::load()
                    .descriptor(KeychainKind::External, Some(ext))
                    .descriptor(KeychainKind::Internal, Some(int));
                let wallet = load_bdk(params, &mut db, &main)?;
                parts.push(Part {
                    wallet,
                    db,
                    source: Source::Master(master_type(i)),
                });
            }
            xprv = Some(key);
        }
        let mut w = NamedWallet::open(parts, xprv, meta)?;
        w.load_imported(&main)?;
        self.loaded.push((name.to_string(), w));
        Ok(())
    }

    /// `unloadwallet`: persists and closes the wallet.
    pub fn unload(&mut self, name: &str) -> Res<()> {
        let i = self
            .loaded
            .iter()
            .position(|(n, _)| n == name)
            .ok_or(WalletError::NotLoaded)?;
        let (_, mut w) = self.loaded.remove(i);
        for p in &mut w.parts {
            p.persist()?;
        }
        Ok(())
    }

    /// The wallet a request addresses, as Core's `GetWalletForJSONRPCRequest`: the
    /// `/wallet/<name>` one, else the only loaded one.
    fn index_for(&self, uri_wallet: Option<&str>) -> Res<usize> {
        match uri_wallet {
            Some(name) => self
                .loaded
                .iter()
                .position(|(n, _)| n == name)
                .ok_or(WalletError::NotLoaded),
            None => match self.loaded.len() {
                0 => Err(WalletError::NoneLoaded),
                1 => Ok(0),
                _ => Err(WalletError::NotSpecified),
            },
        }
    }

    fn next_seen(&mut self) -> u64 {
        self.last_seen = unix_now().max(self.last_seen + 1);
        self.last_seen
    }
}

/// The output type of master-key part `part`: BIP84's, then BIP86's.
fn master_type(part: usize) -> OutputType {
    if part == 0 {
        OutputType::Bech32
    } else {
        OutputType::Bech32m
    }
}

impl NamedWallet {
    /// A wallet of `parts` and its main file's records (`meta`), not yet synced.
    fn open(parts: Vec<Part>, xprv: Option<Xpriv>, meta: Connection) -> Res<NamedWallet> {
        use bdk_wallet::rusqlite::OptionalExtension;
        let labels = read_labels(&meta)?;
        let flags = meta
            .query_row(
                "SELECT private_keys, blank, created FROM rexe_wallet_flags",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(db_err)?;
        // Wallets made before the flags were kept all had a master key.
        let (private_keys, blank, created) = flags.unwrap_or((true, false, 0));
        Ok(NamedWallet {
            parts,
            xprv,
            private_keys,
            blank,
            created,
            meta,
            synced: None,
            rescans: Vec::new(),
            labels,
            watched: Vec::new(),
        })
    }

    /// Files `address` under `label` in the address book.
    fn set_label(&mut self, address: &str, label: &str) -> Res<()> {
        self.meta
            .execute(
                "INSERT OR REPLACE INTO rexe_labels (address, label) VALUES (?1, ?2)",
                [address, label],
            )
            .map_err(db_err)?;
        self.labels.insert(address.to_string(), label.to_string());
        Ok(())
    }

    /// An address book entry's purpose, as Core names it: `receive` when one of the
    /// wallet's keys pays to `address`, else `send`.
    fn purpose(&self, address: &str) -> Res<&'static str> {
        let script = address_arg(address)?;
        Ok(
            if self.parts.iter().any(|p| p.wallet.is_mine(script.clone())) {
                "receive"
            } else {
                "send"
            },
        )
    }

    /// Brings every part up to the node's active chain and mempool, then persists.
    fn sync(&mut self, chain: &Chain, mempool: &Mempool, seen: u64) -> Res<()> {
        let state = (chain.tip(), mempool.generation);
        if self.synced == Some(state) {
            return Ok(());
        }
        let pooled: HashSet<Txid> = mempool.txs.keys().copied().collect();
        let rescans = std::mem::take(&mut self.rescans);
        for (pi, part) in self.parts.iter_mut().enumerate() {
            let w = &mut part.wallet;
            // The highest checkpoint still on the active chain.
            let mut start = w
                .latest_checkpoint()
                .iter()
                .find(|cp| chain.active.get(cp.height() as usize) == Some(&cp.hash()))
                .map(|cp| cp.height() + 1)
                .unwrap_or(1);
            // Blocks the active chain dropped (`invalidateblock`, a reorg) go even when no
            // block has replaced them yet, so that their transactions are unconfirmed again.
            // bdk's wallet drops a block only for another at its height: a placeholder takes
            // the first dropped height, and the next active block there replaces it.
            if w.latest_checkpoint().height() >= start {
                let agree = BlockId {
                    height: start - 1,
                    hash: chain.active[start as usize - 1],
                };
                let placeholder = BlockId {
                    height: start,
                    hash: <bitcoin::BlockHash as bitcoin::hashes::Hash>::all_zeros(),
                };
                let ids = [agree, placeholder];
                let cp = bdk_wallet::chain::CheckPoint::from_block_ids(ids)
                    .map_err(|_| param(-4, "the wallet's chain is out of order"))?;
                w.apply_update(bdk_wallet::Update {
                    chain: Some(cp),
                    ..Default::default()
                })
                .map_err(|e| param(-4, format!("disconnect: {e}")))?;
            }
            let since = rescans
                .iter()
                .filter(|(i, _)| *i == pi)
                .map(|(_, t)| *t)
                .min();
            if let Some(since) = since {
                let from = rescan_start(chain, since).max(1);
                let top = start - 1;
                if top == 0 || from <= top {
                    // The part's chain gets every active block from the one before `from` up
                    // to its own top: a new part then skips what comes before the window,
                    // and a known part can take its blocks again.
                    let ids = std::iter::once(w.latest_checkpoint().iter().last())
                        .flatten()
                        .map(|genesis| genesis.block_id())
                        .chain(((from - 1).max(1)..=top.max(from - 1)).map(|h| BlockId {
                            height: h,
                            hash: chain.active[h as usize],
                        }));
                    let cp = bdk_wallet::chain::CheckPoint::from_block_ids(ids)
                        .map_err(|_| param(-4, "the wallet's chain is out of order"))?;
                    w.apply_update(bdk_wallet::Update {
                        chain: Some(cp),
                        ..Default::default()
                    })
                    .map_err(|e| param(-4, format!("rescan: {e}")))?;
                    start = from;
                }
            }
            for h in start.max(1)..=chain.height() {
                let block = &chain.blocks[&chain.active[h as usize]].block;
                let parent = BlockId {
                    height: h - 1,
                    hash: block.header.prev_blockhash,
                };
                w.apply_block_connected_to(block, h, parent)
                    .map_err(db_err)?;
            }
            w.apply_unconfirmed_txs(mempool.txs.values().map(|p| (p.tx.clone(), seen)));
            let gone: Vec<(Txid, u64)> = w
                .transactions()
                .filter(|t| !t.chain_position.is_confirmed())
                .map(|t| t.tx_node.txid)
                .filter(|id| !pooled.contains(id))
                .map(|id| (id, seen))
                .collect();
            if !gone.is_empty() {
                w.apply_evicted_txs(gone);
            }
            part.persist()?;
        }
        for w in &mut self.watched {
            w.sync(chain, mempool, seen)?;
        }
        self.synced = Some(state);
        Ok(())
    }

    fn persist(&mut self) -> Res<()> {
        self.parts.iter_mut().try_for_each(Part::persist)
    }

    /// Has the next sync scan part `pi` from `timestamp` (see [`rescan_start`]).
    fn rescan(&mut self, pi: usize, timestamp: i64) {
        self.rescans.push((pi, timestamp));
        self.synced = None;
    }

    fn is_coinbase(&self, txid: Txid) -> bool {
        self.get_tx(txid)
            .is_some_and(|t| t.tx_node.tx.is_coinbase())
    }

    /// One of the wallet's transactions, from whichever part or watch has it.
    fn get_tx(&self, txid: Txid) -> Option<watch::WatchTx<'_>> {
        self.parts
            .iter()
            .find_map(|p| p.wallet.get_tx(txid))
            .or_else(|| self.watched.iter().find_map(|w| w.get_tx(txid)))
    }

    /// Every transaction of the wallet (parts and watches), each once.
    fn txids(&self) -> Vec<Txid> {
        let mut seen = HashSet::new();
        let parts = self
            .parts
            .iter()
            .flat_map(|p| p.wallet.transactions().map(|t| t.tx_node.txid));
        let watched = self
            .watched
            .iter()
            .flat_map(|w| w.transactions().map(|t| t.tx_node.txid));
        parts.chain(watched).filter(|id| seen.insert(*id)).collect()
    }

    /// The watches whose script no part derives: a script both imported as `addr()`/`raw()`
    /// and derived from a key counts once, as the key's.
    fn own_watches(&self) -> impl Iterator<Item = (usize, &watch::Watch)> {
        self.watched.iter().enumerate().filter(|(_, w)| {
            self.parts
                .iter()
                .all(|p| p.wallet.derivation_of_spk(w.desc.script.clone()).is_none())
        })
    }

    /// Debit (own coins spent) and credit (own outputs) of `tx` over every part and watch.
    fn debit_credit(&self, tx: &Transaction) -> (Amount, Amount) {
        let parts = self.parts.iter().map(|p| p.wallet.sent_and_received(tx));
        let watched = self.own_watches().map(|(_, w)| w.sent_and_received(tx));
        parts
            .chain(watched)
            .fold((Amount::ZERO, Amount::ZERO), |acc, (s, r)| {
                (acc.0 + s, acc.1 + r)
            })
    }

    /// Core's "trusted" for an unconfirmed transaction: the wallet spent its own coins.
    fn spends_own_coins(&self, tx: &Transaction) -> bool {
        self.debit_credit(tx).0 > Amount::ZERO
    }

    /// Every unspent output with its confirmations, coinbase immaturity and trust.
    fn coins(&self, tip: u32) -> Vec<Coin> {
        let mut out = Vec::new();
        for (pi, p) in self.parts.iter().enumerate() {
            for u in p.wallet.list_unspent() {
                let (confirmations, trusted) = match &u.chain_position {
                    ChainPosition::Confirmed { anchor, .. } => {
                        (tip.saturating_sub(anchor.block_id.height) + 1, true)
                    }
                    ChainPosition::Unconfirmed { .. } => {
                        let tx = p.wallet.get_tx(u.outpoint.txid);
                        (0, tx.is_some_and(|t| self.spends_own_coins(&t.tx_node.tx)))
                    }
                };
                let immature =
                    self.is_coinbase(u.outpoint.txid) && confirmations < WALLET_COINBASE_MATURITY;
                out.push(Coin {
                    holder: Holder::Key {
                        part: pi,
                        keychain: u.keychain,
                        index: u.derivation_index,
                    },
                    outpoint: u.outpoint,
                    txout: u.txout,
                    confirmations,
                    immature,
                    trusted,
                });
            }
        }
        for (wi, w) in self.own_watches() {
            for (outpoint, txout, position, coinbase) in w.unspent() {
                let (confirmations, trusted) = match position {
                    ChainPosition::Confirmed { anchor, .. } => {
                        (tip.saturating_sub(anchor.block_id.height) + 1, true)
                    }
                    ChainPosition::Unconfirmed { .. } => {
                        let tx = self.get_tx(outpoint.txid);
                        (0, tx.is_some_and(|t| self.spends_own_coins(&t.tx_node.tx)))
                    }
                };
                out.push(Coin {
                    holder: Holder::Watch(wi),
                    outpoint,
                    txout,
                    confirmations,
                    immature: coinbase && confirmations < WALLET_COINBASE_MATURITY,
                    trusted,
                });
            }
        }
        out
    }
}

/// What makes a coin the wallet's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Holder {
    /// A key of part `part`'s `keychain`, at `index`.
    Key {
        part: usize,
        keychain: KeychainKind,
        index: u32,
    },
    /// Watched script `.0` (`addr()`/`raw()`): the wallet cannot spend it.
    Watch(usize),
}

/// A wallet's unspent output as the RPCs see it.
struct Coin {
    holder: Holder,
    outpoint: OutPoint,
    txout: bitcoin::TxOut,
    confirmations: u32,
    immature: bool,
    trusted: bool,
}

impl Coin {
    /// The part whose key holds the coin (`None`: a watched script's).
    fn part(&self) -> Option<usize> {
        match self.holder {
            Holder::Key { part, .. } => Some(part),
            Holder::Watch(_) => None,
        }
    }
}

/// Balances in Core's categories.
#[derive(Default)]
struct Balances {
    trusted: Amount,
    untrusted_pending: Amount,
    immature: Amount,
}

fn balances(coins: &[Coin]) -> Balances {
    let mut b = Balances::default();
    for c in coins {
        let v = c.txout.value;
        if c.immature {
            b.immature += v;
        } else if c.confirmations > 0 || c.trusted {
            b.trusted += v;
        } else {
            b.untrusted_pending += v;
        }
    }
    b
}

/// The wallet RPC methods this module serves.
pub const METHODS: &[&str] = &[
    "createwallet",
    "loadwallet",
    "unloadwallet",
    "listwallets",
    "getnewaddress",
    "getrawchangeaddress",
    "getbalance",
    "getbalances",
    "listunspent",
    "sendtoaddress",
    "gettransaction",
    "sendmany",
    "walletcreatefundedpsbt",
    "walletprocesspsbt",
    "signrawtransactionwithwallet",
    "listtransactions",
    "setlabel",
    "getaddressesbylabel",
    "listlabels",
    "getwalletinfo",
    "getaddressinfo",
    "importdescriptors",
    "listdescriptors",
    "getdescriptorinfo",
    "deriveaddresses",
];

/// Core's parameter names of the wallet methods (for named parameters).
pub fn param_names(method: &str) -> Option<&'static [&'static str]> {
    Some(match method {
        "createwallet" => &[
            "wallet_name",
            "disable_private_keys",
            "blank",
            "passphrase",
            "avoid_reuse",
            "descriptors",
            "load_on_startup",
            "external_signer",
        ],
        "loadwallet" => &["filename", "load_on_startup"],
        "unloadwallet" => &["wallet_name", "load_on_startup"],
        "listwallets" | "getbalances" => &[],
        "getnewaddress" => &["label", "address_type"],
        "getrawchangeaddress" => &["address_type"],
        "getbalance" => &["dummy", "minconf", "include_watchonly", "avoid_reuse"],
        "listunspent" => &[
            "minconf",
            "maxconf",
            "addresses",
            "include_unsafe",
            "query_options",
        ],
        "sendtoaddress" => &[
            "address",
            "amount",
            "comment",
            "comment_to",
            "subtractfeefromamount",
            "replaceable",
            "conf_target",
            "estimate_mode",
            "avoid_reuse",
            "fee_rate",
            "verbose",
        ],
        "gettransaction" => &["txid", "include_watchonly", "verbose"],
        "sendmany" => &[
            "dummy",
            "amounts",
            "minconf",
            "comment",
            "subtractfeefrom",
            "replaceable",
            "conf_target",
            "estimate_mode",
            "fee_rate",
            "verbose",
        ],
        "walletcreatefundedpsbt" => &["inputs", "outputs", "locktime", "options", "bip32derivs"],
        "walletprocesspsbt" => &["psbt", "sign", "sighashtype", "bip32derivs", "finalize"],
        "signrawtransactionwithwallet" => &["hexstring", "prevtxs", "sighashtype"],
        "listtransactions" => &["label", "count", "skip", "include_watchonly"],
        "setlabel" => &["address", "label"],
        "getaddressesbylabel" => &["label"],
        "listlabels" => &["purpose"],
        "getwalletinfo" => &[],
        "getaddressinfo" => &["address"],
        "importdescriptors" => &["requests"],
        "listdescriptors" => &["private"],
        "getdescriptorinfo" => &["descriptor"],
        "deriveaddresses" => &["descriptor", "range"],
        _ => return None,
    })
}

fn arg(p: &Value, i: usize) -> Option<&Value> {
    p.as_array().and_then(|a| a.get(i)).filter(|v| !v.is_null())
}

fn arity(p: &Value, min: usize, max: usize) -> Res<()> {
    let n = p.as_array().map_or(0, Vec::len);
    if n < min || n > max {
        return Err(param(-1, format!("wrong number of parameters ({n})")));
    }
    Ok(())
}

fn str_arg(p: &Value, i: usize) -> Res<Option<&str>> {
    match arg(p, i) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(param(-3, "Expected type string")),
    }
}

fn bool_arg(p: &Value, i: usize) -> Res<Option<bool>> {
    match arg(p, i) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(param(-3, "Expected type bool")),
    }
}

fn u32_arg(p: &Value, i: usize) -> Res<Option<u32>> {
    match arg(p, i) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|x| u32::try_from(x).ok())
            .map(Some)
            .ok_or_else(|| param(-3, "Expected type number")),
    }
}

/// A BTC amount given as a JSON number or string (Core's `AmountFromValue`).
fn amount_arg(v: &Value) -> Res<Amount> {
    let x = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse::<f64>().ok(),
        _ => None,
    }
    .ok_or_else(|| param(-3, "Amount is not a number or string"))?;
    if !(0.0..=21e6).contains(&x) {
        return Err(param(-3, "Amount out of range"));
    }
    Ok(Amount::from_sat((x * 1e8).round() as u64))
}

fn address_of(script: &bitcoin::Script) -> Option<String> {
    Address::from_script(script, Network::Regtest)
        .ok()
        .map(|a| a.to_string())
}

/// Answers a wallet RPC, or `None` when `method` is not one. `uri_wallet` is the name from a
/// `/wallet/<name>` request path.
pub fn call(n: &mut Node, uri_wallet: Option<&str>, method: &str, p: &Value) -> Option<Res<Value>> {
    if !METHODS.contains(&method) {
        return None;
    }
    Some(dispatch(n, uri_wallet, method, p))
}

fn dispatch(n: &mut Node, uri_wallet: Option<&str>, method: &str, p: &Value) -> Res<Value> {
    match method {
        "createwallet" => {
            arity(p, 1, 8)?;
            let name = str_arg(p, 0)?.unwrap_or("");
            let private_keys = bool_arg(p, 1)? != Some(true);
            let blank = bool_arg(p, 2)? == Some(true);
            if str_arg(p, 3)?.is_some_and(|s| !s.is_empty()) {
                return Err(WalletError::Wallet(
                    "Encrypted wallets are not supported by the embedded node".into(),
                ));
            }
            if bool_arg(p, 5)? == Some(false) {
                return Err(WalletError::Wallet(
                    "Legacy wallets are not supported; the embedded node's wallets are descriptor wallets".into(),
                ));
            }
            n.wallets.create(name, private_keys, blank)?;
            let warning = n.wallets.set_load_on_startup(name, bool_arg(p, 6)?);
            Ok(json!({"name": name, "warning": warning}))
        }
        "loadwallet" => {
            arity(p, 1, 2)?;
            let name = str_arg(p, 0)?.unwrap_or("");
            n.wallets.load(name)?;
            let warning = n.wallets.set_load_on_startup(name, bool_arg(p, 1)?);
            Ok(json!({"name": name, "warning": warning}))
        }
        "unloadwallet" => {
            arity(p, 0, 2)?;
            let name =
                match (str_arg(p, 0)?, uri_wallet) {
                    (Some(a), Some(b)) if a != b => return Err(param(
                        -8,
                        "RPC endpoint wallet and wallet_name parameter specify different wallets",
                    )),
                    (Some(a), _) => a.to_string(),
                    (None, Some(b)) => b.to_string(),
                    (None, None) => {
                        let i = n.wallets.index_for(None)?;
                        n.wallets.loaded[i].0.clone()
                    }
                };
            n.wallets.unload(&name)?;
            let warning = n.wallets.set_load_on_startup(&name, bool_arg(p, 1)?);
            Ok(json!({"warning": warning}))
        }
        "listwallets" => {
            arity(p, 0, 0)?;
            Ok(json!(n.wallets.names()))
        }
        "getdescriptorinfo" => {
            arity(p, 1, 1)?;
            descriptor::getdescriptorinfo(p)
        }
        "deriveaddresses" => {
            arity(p, 1, 2)?;
            descriptor::deriveaddresses(p)
        }
        _ => wallet_method(n, uri_wallet, method, p),
    }
}

fn wallet_method(n: &mut Node, uri_wallet: Option<&str>, method: &str, p: &Value) -> Res<Value> {
    let i = n.wallets.index_for(uri_wallet)?;
    let seen = n.wallets.next_seen();
    let tip = n.chain.height();
    {
        let w = &mut n.wallets.loaded[i].1;
        w.sync(&n.chain, &n.mempool, seen)?;
    }
    match method {
        "getnewaddress" | "getrawchangeaddress" => {
            let (keychain, t, label) = if method == "getnewaddress" {
                arity(p, 0, 2)?;
                let label = label_arg(p, 0)?.unwrap_or("");
                (KeychainKind::External, str_arg(p, 1)?, Some(label))
            } else {
                arity(p, 0, 1)?;
                (KeychainKind::Internal, str_arg(p, 0)?, None)
            };
            let t = OutputType::parse(t)?;
            let w = &mut n.wallets.loaded[i].1;
            if !w.has_active() {
                return Err(WalletError::Wallet(
                    "Error: This wallet has no available keys".into(),
                ));
            }
            let internal = keychain == KeychainKind::Internal;
            let (part, keychain) = w.active(t, internal).ok_or_else(|| {
                param(-12, format!("Error: No {} addresses available.", t.name()))
            })?;
            let a = w.parts[part].wallet.reveal_next_address(keychain);
            w.parts[part].persist()?;
            let a = a.address.to_string();
            if let Some(label) = label {
                w.set_label(&a, label)?;
            }
            Ok(json!(a))
        }
        "setlabel" => {
            arity(p, 2, 2)?;
            let a = str_arg(p, 0)?.unwrap_or("");
            address_arg(a)?;
            let label = label_arg(p, 1)?.unwrap_or("");
            n.wallets.loaded[i].1.set_label(a, label)?;
            Ok(Value::Null)
        }
        "getaddressesbylabel" => {
            arity(p, 1, 1)?;
            let label = label_arg(p, 0)?.unwrap_or("");
            let w = &n.wallets.loaded[i].1;
            let mut out = serde_json::Map::new();
            for (a, l) in &w.labels {
                if l == label {
                    out.insert(a.clone(), json!({ "purpose": w.purpose(a)? }));
                }
            }
            if out.is_empty() {
                return Err(param(-11, format!("No addresses with label {label}")));
            }
            Ok(Value::Object(out))
        }
        "listlabels" => {
            arity(p, 0, 1)?;
            let purpose = str_arg(p, 0)?;
            if purpose.is_some_and(|x| x != "receive" && x != "send") {
                return Err(param(-8, "Invalid 'purpose' argument, must be a known purpose string, typically 'send', or 'receive'."));
            }
            let w = &n.wallets.loaded[i].1;
            let mut labels = std::collections::BTreeSet::new();
            for (a, l) in &w.labels {
                if purpose.is_none() || purpose == Some(w.purpose(a)?) {
                    labels.insert(l.clone());
                }
            }
            Ok(json!(labels))
        }
        "getbalance" => {
            arity(p, 0, 4)?;
            if let Some(d) = str_arg(p, 0)? {
                if d != "*" {
                    return Err(param(
                        -32,
                        "dummy first argument must be excluded or set to \"*\".",
                    ));
                }
            }
            let minconf = u32_arg(p, 1)?.unwrap_or(0);
            let coins = n.wallets.loaded[i].1.coins(tip);
            let total: Amount = coins
                .iter()
                .filter(|c| !c.immature)
                .filter(|c| {
                    if minconf == 0 {
                        c.confirmations > 0 || c.trusted
                    } else {
                        c.confirmations >= minconf
                    }
                })
                .map(|c| c.txout.value)
                .sum();
            Ok(btc(total))
        }
        "getwalletinfo" => {
            arity(p, 0, 0)?;
            let (name, w) = &n.wallets.loaded[i];
            let txids = w.txids();
            Ok(json!({
                "walletname": name,
                "walletversion": 169900,
                "format": "sqlite",
                "txcount": txids.len(),
                "paytxfee": 0.0,
                "private_keys_enabled": w.private_keys,
                "avoid_reuse": false,
                "scanning": false,
                "descriptors": true,
                "external_signer": false,
                "blank": w.blank,
                "lastprocessedblock": {"hash": n.chain.tip().to_string(), "height": tip},
            }))
        }
        "getaddressinfo" => {
            arity(p, 1, 1)?;
            let a = str_arg(p, 0)?.unwrap_or("");
            let script = address_arg(a)?;
            let w = &n.wallets.loaded[i].1;
            let mut v = json!({
                "address": a,
                "scriptPubKey": script.as_bytes().to_lower_hex_string(),
                "ismine": false,
                "solvable": false,
                "iswatchonly": false,
                "isscript": script.is_p2sh() || script.is_p2wsh(),
                "iswitness": script.is_witness_program(),
                "ischange": false,
                "labels": w.labels.get(a).map(|l| vec![l.clone()]).unwrap_or_default(),
            });
            if let Some(ver) = script.witness_version() {
                v["witness_version"] = json!(ver.to_num());
                v["witness_program"] = json!(script.as_bytes()[2..].to_lower_hex_string());
            }
            if let Some(Holder::Watch(wi)) = w.owner(&script) {
                // A script without keys: the wallet's, not solvable (Core: `addr()`/`raw()`).
                let watch = &w.watched[wi];
                v["ismine"] = json!(true);
                v["ischange"] = json!(watch.internal);
                v["parent_desc"] = json!(descriptor::core_form(&watch.desc.text));
            }
            if let Some(Holder::Key {
                part: pi,
                keychain,
                index: idx,
            }) = w.owner(&script)
            {
                let parent = w.parts[pi].wallet.public_descriptor(keychain);
                // Descriptor wallets own their scripts whether or not they hold the keys:
                // Core reports a watch-only wallet's addresses as mine, not watch-only.
                v["ismine"] = json!(true);
                v["solvable"] = json!(true);
                v["desc"] = json!(w.key_desc(pi, keychain, idx));
                v["ischange"] = json!(w.parts[pi].is_change(keychain));
                if let Some((path, fp)) = descriptor::hd_origin(parent, idx) {
                    v["hdkeypath"] = json!(path);
                    v["hdmasterfingerprint"] = json!(fp);
                }
                // The descriptor the address comes from (Core: `parent_desc`).
                v["parent_desc"] = json!(descriptor::core_form(&parent.to_string()));
            }
            Ok(v)
        }
        "importdescriptors" => {
            arity(p, 1, 1)?;
            let now = i64::from(n.chain.median_time_past(n.chain.tip()));
            let out = n
                .wallets
                .import(i, arg(p, 0).unwrap_or(&Value::Null), now)?;
            let seen = n.wallets.next_seen();
            n.wallets.loaded[i].1.sync(&n.chain, &n.mempool, seen)?;
            Ok(out)
        }
        "listdescriptors" => {
            arity(p, 0, 1)?;
            let private = bool_arg(p, 0)?.unwrap_or(false);
            let (name, w) = &n.wallets.loaded[i];
            Ok(json!({"wallet_name": name, "descriptors": w.list_descriptors(private)?}))
        }
        "getbalances" => {
            arity(p, 0, 0)?;
            let b = balances(&n.wallets.loaded[i].1.coins(tip));
            Ok(json!({
                "mine": {
                    "trusted": btc(b.trusted),
                    "untrusted_pending": btc(b.untrusted_pending),
                    "immature": btc(b.immature),
                },
                "lastprocessedblock": {"hash": n.chain.tip().to_string(), "height": tip},
            }))
        }
        "listunspent" => {
            arity(p, 0, 5)?;
            let minconf = u32_arg(p, 0)?.unwrap_or(1);
            let maxconf = u32_arg(p, 1)?.unwrap_or(9_999_999);
            let filter: Option<HashSet<String>> = match arg(p, 2) {
                None => None,
                Some(Value::Array(a)) => Some(
                    a.iter()
                        .map(|x| x.as_str().map(str::to_string))
                        .collect::<Option<_>>()
                        .ok_or_else(|| param(-3, "Expected type string"))?,
                ),
                Some(_) => return Err(param(-3, "Expected type array")),
            };
            let include_unsafe = bool_arg(p, 3)?.unwrap_or(true);
            let w = &n.wallets.loaded[i].1;
            let mut out = Vec::new();
            for c in w.coins(tip) {
                let safe = c.confirmations > 0 || c.trusted;
                if c.immature
                    || c.confirmations < minconf
                    || c.confirmations > maxconf
                    || (!safe && !include_unsafe)
                {
                    continue;
                }
                let address = address_of(&c.txout.script_pubkey).unwrap_or_default();
                if filter.as_ref().is_some_and(|f| !f.contains(&address)) {
                    continue;
                }
                let label = w.labels.get(&address);
                let mut entry = json!({
                    "txid": c.outpoint.txid.to_string(),
                    "vout": c.outpoint.vout,
                    "address": address,
                    "scriptPubKey": c.txout.script_pubkey.as_bytes().to_lower_hex_string(),
                    "amount": btc(c.txout.value),
                    "confirmations": c.confirmations,
                    // Descriptor wallets own every script of theirs (Core's ISMINE_SPENDABLE),
                    // keys or not; a script-only descriptor's coins are not solvable.
                    "spendable": true,
                    "solvable": false,
                    "safe": safe,
                });
                if let Holder::Key {
                    part,
                    keychain,
                    index,
                } = c.holder
                {
                    entry["solvable"] = json!(true);
                    entry["desc"] = json!(w.key_desc(part, keychain, index));
                }
                if let Some(l) = label {
                    entry["label"] = json!(l);
                }
                out.push(entry);
            }
            Ok(json!(out))
        }
        "sendtoaddress" => {
            arity(p, 2, 11)?;
            let script = address_arg(str_arg(p, 0)?.unwrap_or(""))?;
            let amount = amount_arg(arg(p, 1).unwrap_or(&Value::Null))?;
            if amount == Amount::ZERO {
                return Err(param(-3, "Invalid amount for send"));
            }
            let replaceable = bool_arg(p, 5)?.unwrap_or(true);
            let rate = spend_rate(n, arg(p, 9), arg(p, 6), arg(p, 7), replaceable)?;
            let mut spend = Spend::pay(vec![(script, amount)], rate, replaceable);
            if bool_arg(p, 4)? == Some(true) {
                spend.pay_fee_from(0);
            }
            Ok(json!(send(n, i, tip, &spend)?.to_string()))
        }
        "sendmany" => {
            arity(p, 2, 10)?;
            if str_arg(p, 0)?.is_some_and(|d| !d.is_empty()) {
                return Err(param(-8, "Dummy value must be set to \"\""));
            }
            let replaceable = bool_arg(p, 5)?.unwrap_or(true);
            let rate = spend_rate(n, arg(p, 8), arg(p, 6), arg(p, 7), replaceable)?;
            let mut spend = Spend::pay(Vec::new(), rate, replaceable);
            let outs = arg(p, 1).ok_or_else(|| param(-3, "Expected type object"))?;
            if !outs.is_object() {
                return Err(param(-3, "Expected type object"));
            }
            outputs_arg(outs, &mut spend)?;
            if let Some(from) = arg(p, 4) {
                let from = from
                    .as_array()
                    .ok_or_else(|| param(-3, "Expected type array"))?;
                for a in from {
                    let a = a
                        .as_str()
                        .ok_or_else(|| param(-3, "Expected type string"))?;
                    let script = address_arg(a)?;
                    let payers: Vec<usize> = (0..spend.recipients.len())
                        .filter(|&k| spend.recipients[k].0 == script)
                        .collect();
                    if payers.is_empty() {
                        return Err(param(
                            -8,
                            format!(
                                "Invalid parameter, subtractfeefrom address not in amounts: {a}"
                            ),
                        ));
                    }
                    for k in payers {
                        spend.pay_fee_from(k);
                    }
                }
            }
            Ok(json!(send(n, i, tip, &spend)?.to_string()))
        }
        "walletcreatefundedpsbt" => {
            arity(p, 1, 5)?;
            // The fee rate is chosen once the options are read (below).
            let mut spend = Spend::pay(Vec::new(), FeeRate::ZERO, true);
            for inp in arg(p, 0).and_then(Value::as_array).into_iter().flatten() {
                let txid = inp["txid"]
                    .as_str()
                    .and_then(|s| Txid::from_str(s).ok())
                    .ok_or_else(|| param(-8, "txid must be hexadecimal string"))?;
                let vout = inp["vout"]
                    .as_u64()
                    .and_then(|v| u32::try_from(v).ok())
                    .ok_or_else(|| param(-8, "Invalid parameter, missing vout key"))?;
                spend.inputs.push(OutPoint { txid, vout });
            }
            let outputs = outputs_arg(
                arg(p, 1).ok_or_else(|| param(-3, "Expected type array"))?,
                &mut spend,
            )?;
            spend.locktime = u32_arg(p, 2)?;
            if arg(p, 3).is_none() {
                spend.rate = spend_rate(n, None, None, None, spend.replaceable)?;
            }
            if let Some(o) = arg(p, 3) {
                let o = o
                    .as_object()
                    .ok_or_else(|| param(-3, "Expected type object"))?;
                spend.add_inputs = o
                    .get("add_inputs")
                    .and_then(Value::as_bool)
                    .unwrap_or(spend.inputs.is_empty());
                if let Some(r) = o.get("replaceable").and_then(Value::as_bool) {
                    spend.replaceable = r;
                }
                let get = |k: &str| o.get(k).filter(|v| !v.is_null());
                if let (Some(_), Some(_)) = (get("fee_rate"), get("feeRate")) {
                    return Err(param(
                        -8,
                        "Cannot specify both fee_rate (sat/vB) and feeRate (BTC/kvB)",
                    ));
                }
                if let Some(v) = get("feeRate") {
                    // BTC/kvB
                    if get("conf_target").is_some() {
                        return Err(param(-8, "Cannot specify both conf_target and feeRate"));
                    }
                    let btc_kvb = amount_arg(v)?;
                    spend.rate = FeeRate::from_sat_per_kwu(btc_kvb.to_sat().div_ceil(4));
                } else {
                    spend.rate = spend_rate(
                        n,
                        get("fee_rate"),
                        get("conf_target"),
                        get("estimate_mode"),
                        spend.replaceable,
                    )?;
                }
                if let Some(v) = o.get("subtractFeeFromOutputs") {
                    for x in v
                        .as_array()
                        .ok_or_else(|| param(-3, "Expected type array"))?
                    {
                        let pos = x.as_u64().ok_or_else(|| {
                            param(-8, "Invalid parameter value: expected an output position")
                        })?;
                        let Some(&Some(r)) = usize::try_from(pos).ok().and_then(|p| outputs.get(p))
                        else {
                            return Err(param(
                                -8,
                                format!("Invalid parameter value: subtractFeeFromOutputs {pos} is not a payment output"),
                            ));
                        };
                        spend.pay_fee_from(r);
                    }
                }
            } else {
                spend.add_inputs = spend.inputs.is_empty();
            }
            let w = &mut n.wallets.loaded[i].1;
            let psbt = w.fund(tip, &spend)?;
            let fee = psbt.fee().map_err(db_err)?;
            let changepos = psbt
                .unsigned_tx
                .output
                .iter()
                .position(|o| w.is_change_script(&o.script_pubkey))
                .map_or(-1, |x| x as i64);
            Ok(json!({"psbt": psbt_b64(&psbt), "fee": btc(fee), "changepos": changepos}))
        }
        "walletprocesspsbt" => {
            arity(p, 1, 5)?;
            let mut psbt = psbt_arg(arg(p, 0))?;
            let sign = bool_arg(p, 1)?.unwrap_or(true);
            let finalize = bool_arg(p, 4)?.unwrap_or(true);
            if let Some(t) = str_arg(p, 2)? {
                if t != "DEFAULT" && t != "ALL" {
                    return Err(param(-8, format!("Only sighash type DEFAULT or ALL is supported by the embedded node, not {t}")));
                }
            }
            let w = &n.wallets.loaded[i].1;
            let complete = if sign {
                w.sign_psbt(&mut psbt, finalize)?
            } else {
                psbt.inputs
                    .iter()
                    .all(|i| i.final_script_witness.is_some() || i.final_script_sig.is_some())
            };
            let mut v = json!({"psbt": psbt_b64(&psbt), "complete": complete});
            if complete && finalize {
                let tx = psbt.clone().extract_tx_unchecked_fee_rate();
                v["hex"] = json!(serialize_hex(&tx));
            }
            Ok(v)
        }
        "signrawtransactionwithwallet" => {
            arity(p, 1, 3)?;
            let raw = str_arg(p, 0)?
                .and_then(|h| Vec::<u8>::from_hex(h).ok())
                .ok_or_else(|| param(-22, "TX decode failed"))?;
            let tx: Transaction = bitcoin::consensus::encode::deserialize(&raw).map_err(|_| {
                param(
                    -22,
                    "TX decode failed. Make sure the tx has at least one input.",
                )
            })?;
            if let Some(t) = str_arg(p, 2)? {
                if t != "DEFAULT" && t != "ALL" {
                    return Err(param(-8, format!("Only sighash type DEFAULT or ALL is supported by the embedded node, not {t}")));
                }
            }
            let mut unsigned = tx.clone();
            for inp in &mut unsigned.input {
                inp.script_sig = bitcoin::ScriptBuf::new();
                inp.witness = bitcoin::Witness::new();
            }
            let mut psbt = bitcoin::Psbt::from_unsigned_tx(unsigned).map_err(db_err)?;
            let w = &n.wallets.loaded[i].1;
            w.sign_psbt(&mut psbt, true)?;
            let mut out = tx.clone();
            let mut errors = Vec::new();
            for (k, inp) in out.input.iter_mut().enumerate() {
                let pi = &psbt.inputs[k];
                if pi.final_script_witness.is_some() || pi.final_script_sig.is_some() {
                    inp.witness = pi.final_script_witness.clone().unwrap_or_default();
                    inp.script_sig = pi.final_script_sig.clone().unwrap_or_default();
                } else if inp.witness.is_empty() && inp.script_sig.is_empty() {
                    errors.push(json!({
                        "txid": inp.previous_output.txid.to_string(),
                        "vout": inp.previous_output.vout,
                        "witness": [],
                        "scriptSig": "",
                        "sequence": inp.sequence.0,
                        "error": "Input not found or already spent",
                    }));
                }
            }
            let mut v = json!({"hex": serialize_hex(&out), "complete": errors.is_empty()});
            if !errors.is_empty() {
                v["errors"] = json!(errors);
            }
            Ok(v)
        }
        "listtransactions" => {
            arity(p, 0, 4)?;
            // Core: with a label, only the receives to addresses under it (no sends).
            let only = str_arg(p, 0)?.filter(|l| *l != "*").map(str::to_string);
            let count = u32_arg(p, 1)?.unwrap_or(10) as usize;
            let skip = u32_arg(p, 2)?.unwrap_or(0) as usize;
            let txids = n.wallets.loaded[i].1.txids();
            let mut entries: Vec<((u32, u64, u64), Value)> = Vec::new();
            for txid in txids {
                let v = gettransaction(n, i, txid, false)?;
                let time = v["time"].as_u64().unwrap_or(0);
                let height = v["blockheight"].as_u64().map_or(u32::MAX, |h| h as u32);
                let index = v["blockindex"].as_u64().unwrap_or(0);
                for d in v["details"].as_array().into_iter().flatten() {
                    if let Some(l) = &only {
                        if d["category"] == "send" || d["label"].as_str().unwrap_or("") != l {
                            continue;
                        }
                    }
                    let mut e = d.clone();
                    for k in [
                        "confirmations",
                        "generated",
                        "trusted",
                        "blockhash",
                        "blockheight",
                        "blockindex",
                        "blocktime",
                        "txid",
                        "wtxid",
                        "walletconflicts",
                        "time",
                        "timereceived",
                        "bip125-replaceable",
                    ] {
                        if let Some(x) = v.get(k) {
                            e[k] = x.clone();
                        }
                    }
                    entries.push(((height, index, time), e));
                }
            }
            // Oldest first (by block and position, unconfirmed last, then time); the page is
            // the `count` entries before the newest `skip`.
            entries.sort_by_key(|(k, _)| *k);
            let end = entries.len().saturating_sub(skip);
            let start = end.saturating_sub(count);
            Ok(json!(entries[start..end]
                .iter()
                .map(|(_, e)| e.clone())
                .collect::<Vec<_>>()))
        }
        "gettransaction" => {
            arity(p, 1, 3)?;
            let s = str_arg(p, 0)?.unwrap_or("");
            let txid =
                Txid::from_str(s).map_err(|_| param(-8, "txid must be hexadecimal string"))?;
            let verbose = bool_arg(p, 2)?.unwrap_or(false);
            gettransaction(n, i, txid, verbose)
        }
        _ => Err(param(-32601, "Method not found")),
    }
}

/// What a funded transaction pays and how.
#[derive(Clone)]
struct Spend {
    recipients: Vec<(bitcoin::ScriptBuf, Amount)>,
    /// `OP_RETURN` data outputs.
    data: Vec<Vec<u8>>,
    rate: FeeRate,
    replaceable: bool,
    /// Inputs the caller chose (spent in any case).
    inputs: Vec<OutPoint>,
    /// Whether coin selection may add inputs beyond `inputs`.
    add_inputs: bool,
    locktime: Option<u32>,
    /// Recipients (indices into `recipients`) that pay the fee out of their amounts, in
    /// equal parts (Core's `subtractfeefromamount`).
    subtract_from: Vec<usize>,
    /// A fixed fee instead of `rate` (set internally while subtracting the fee).
    absolute_fee: Option<Amount>,
}

impl Spend {
    fn pay(
        recipients: Vec<(bitcoin::ScriptBuf, Amount)>,
        rate: FeeRate,
        replaceable: bool,
    ) -> Spend {
        Spend {
            recipients,
            data: Vec::new(),
            rate,
            replaceable,
            inputs: Vec::new(),
            add_inputs: true,
            locktime: None,
            subtract_from: Vec::new(),
            absolute_fee: None,
        }
    }

    /// Marks recipient `k` as paying a share of the fee (once, however often it is named).
    fn pay_fee_from(&mut self, k: usize) {
        if !self.subtract_from.contains(&k) {
            self.subtract_from.push(k);
        }
    }
}

fn map_create_err(e: bdk_wallet::error::CreateTxError) -> WalletError {
    use bdk_wallet::error::CreateTxError as E;
    match e {
        E::CoinSelection(_) | E::NoUtxosSelected => WalletError::InsufficientFunds,
        E::OutputBelowDustLimit(_) => param(-6, "Transaction amount too small"),
        e => db_err(e),
    }
}

impl NamedWallet {
    /// Builds an unsigned PSBT for `spend`: with the BIP84 coins, else the BIP86 ones, else
    /// both (the BIP86 coins then join as foreign inputs of the BIP84 wallet's transaction).
    /// Change goes to the internal keychain of the part that builds the transaction.
    fn fund(&mut self, tip: u32, spend: &Spend) -> Res<bitcoin::Psbt> {
        if spend.subtract_from.is_empty() {
            return self.fund_once(tip, spend);
        }
        // As Core does: coins are chosen for the amounts alone; the fee of that transaction
        // at the rate is then taken out of the marked outputs in equal parts (the first of
        // them also pays the remainder). Same inputs and outputs, so the same weight: the
        // change, if any, does not move.
        let mut probe = spend.clone();
        probe.absolute_fee = Some(Amount::ZERO);
        // An amount below dust can only fail below; the probe must not refuse it first.
        for &r in &spend.subtract_from {
            let (script, amount) = &mut probe.recipients[r];
            *amount = (*amount).max(script.minimal_non_dust());
        }
        let first = self.fund_once(tip, &probe)?;
        let weight = self.signed_weight(&first)?;
        // On whole virtual bytes, as Core prices a transaction.
        let fee = spend
            .rate
            .fee_vb(weight.to_vbytes_ceil())
            .ok_or_else(|| param(-8, "Invalid fee_rate"))?;
        let mut paid = spend.clone();
        paid.inputs = first
            .unsigned_tx
            .input
            .iter()
            .map(|i| i.previous_output)
            .collect();
        paid.add_inputs = false;
        paid.absolute_fee = Some(fee);
        let parts = spend.subtract_from.len() as u64;
        let (share, rest) = (fee.to_sat() / parts, fee.to_sat() % parts);
        for (k, &r) in spend.subtract_from.iter().enumerate() {
            let cut = Amount::from_sat(share + if k == 0 { rest } else { 0 });
            let amount = &mut paid.recipients[r].1;
            if *amount <= cut {
                return Err(param(
                    -6,
                    "The transaction amount is too small to pay the fee",
                ));
            }
            *amount -= cut;
        }
        self.fund_once(tip, &paid).map_err(|e| match e {
            WalletError::Param(-6, m) if m == "Transaction amount too small" => param(
                -6,
                "The transaction amount is too small to send after the fee has been deducted",
            ),
            e => e,
        })
    }

    /// The weight `psbt` will have once its inputs (all the wallet's) are signed.
    fn signed_weight(&self, psbt: &bitcoin::Psbt) -> Res<bitcoin::Weight> {
        // Segwit marker and flag: every key of the wallet is segwit (BIP84, BIP86).
        let mut weight = psbt.unsigned_tx.weight() + bitcoin::Weight::from_wu(2);
        for input in &psbt.unsigned_tx.input {
            // The witness's element count (one byte), then the largest satisfaction.
            weight +=
                bitcoin::Weight::from_wu(1) + self.satisfaction_weight(input.previous_output)?;
        }
        Ok(weight)
    }

    /// The largest satisfaction of the wallet's unspent coin `op`: the weight its
    /// signature adds.
    fn satisfaction_weight(&self, op: OutPoint) -> Res<bitcoin::Weight> {
        let (w, u) = self
            .parts
            .iter()
            .find_map(|p| Some((&p.wallet, p.wallet.get_utxo(op)?)))
            .ok_or(WalletError::InsufficientFunds)?;
        w.public_descriptor(u.keychain)
            .max_weight_to_satisfy()
            .map_err(db_err)
    }

    fn fund_once(&mut self, tip: u32, spend: &Spend) -> Res<bitcoin::Psbt> {
        let coins = self.coins(tip);
        let unspendable: Vec<OutPoint> = coins
            .iter()
            .filter(|c| c.immature || (c.confirmations == 0 && !c.trusted))
            .map(|c| c.outpoint)
            .collect();
        let coin = |op: &OutPoint| coins.iter().find(|c| c.outpoint == *op);
        let owner = |op: &OutPoint| coin(op).and_then(Coin::part);
        for op in &spend.inputs {
            if coin(op).is_some_and(|c| c.part().is_none()) {
                // A watched script's coin: the wallet cannot tell how to spend it (Core's
                // wallet error for an unsolvable pre-selected input).
                return Err(WalletError::Wallet(format!(
                    "Not solvable pre-selected input COutPoint({}, {})",
                    &op.txid.to_string()[..10],
                    op.vout
                )));
            }
            if owner(op).is_none() {
                return Err(param(
                    -8,
                    format!(
                        "Insufficient funds: input {}:{} is not an unspent output of this wallet",
                        op.txid, op.vout
                    ),
                ));
            }
        }
        let parts_of_inputs: HashSet<usize> = spend.inputs.iter().filter_map(owner).collect();
        // Plans: (building part, foreign coins from the other parts): each part alone, then
        // the first part with every other part's coins.
        let mut plans: Vec<(usize, Vec<OutPoint>)> = Vec::new();
        match parts_of_inputs.len() {
            0 => plans.extend((0..self.parts.len()).map(|pi| (pi, Vec::new()))),
            1 => plans.push((*parts_of_inputs.iter().next().expect("one"), Vec::new())),
            _ => {}
        }
        if (spend.add_inputs || parts_of_inputs.len() > 1) && self.parts.len() > 1 {
            let foreign: Vec<OutPoint> = coins
                .iter()
                .filter(|c| c.part().is_some_and(|p| p != 0))
                .filter(|c| !unspendable.contains(&c.outpoint))
                .filter(|c| spend.add_inputs || spend.inputs.contains(&c.outpoint))
                .map(|c| c.outpoint)
                .collect();
            if !foreign.is_empty() {
                plans.push((0, foreign));
            }
        }
        let mut last = WalletError::InsufficientFunds;
        for (pi, foreign) in plans {
            let mut foreign_inputs = Vec::new();
            for op in &foreign {
                let other = owner(op)
                    .map(|p| &self.parts[p].wallet)
                    .ok_or(WalletError::InsufficientFunds)?;
                let u = other.get_utxo(*op).ok_or(WalletError::InsufficientFunds)?;
                let weight = self.satisfaction_weight(*op)?;
                let input = other.get_psbt_input(u, None, false).map_err(db_err)?;
                foreign_inputs.push((*op, input, weight));
            }
            let own: Vec<OutPoint> = spend
                .inputs
                .iter()
                .filter(|op| owner(op) == Some(pi))
                .copied()
                .collect();
            let change = self.change_for(pi);
            let wallet = &mut self.parts[pi].wallet;
            let mut b = wallet.build_tx();
            if let Some((_, _, script)) = &change {
                b.drain_to(script.clone());
            }
            for (script, amount) in &spend.recipients {
                b.add_recipient(script.clone(), *amount);
            }
            for d in &spend.data {
                let push = <&bitcoin::script::PushBytes>::try_from(d.as_slice())
                    .map_err(|_| param(-8, "Data too long"))?;
                b.add_data(&push);
            }
            match spend.absolute_fee {
                Some(fee) => b.fee_absolute(fee),
                None => b.fee_rate(spend.rate),
            };
            b.unspendable(unspendable.clone());
            if !own.is_empty() {
                b.add_utxos(&own).map_err(db_err)?;
            }
            for (op, input, weight) in foreign_inputs {
                b.add_foreign_utxo(op, input, weight).map_err(db_err)?;
            }
            if !spend.add_inputs {
                b.manually_selected_only();
            }
            if !spend.replaceable {
                b.set_exact_sequence(bitcoin::Sequence::ENABLE_LOCKTIME_NO_RBF);
            }
            if let Some(l) = spend.locktime {
                b.nlocktime(bitcoin::absolute::LockTime::from_consensus(l));
            }
            match b.finish() {
                Ok(psbt) => {
                    self.parts[pi].persist()?;
                    match change {
                        Some((cp, kc, script))
                            if psbt
                                .unsigned_tx
                                .output
                                .iter()
                                .any(|o| o.script_pubkey == script) =>
                        {
                            let part = &mut self.parts[cp];
                            if let Some((_, idx)) = part.wallet.derivation_of_spk(script) {
                                part.wallet.mark_used(kc, idx);
                            }
                            part.persist()?;
                        }
                        Some(_) => {}
                        // A part without change scripts of its own: bdk pays change back to
                        // its receive scripts, where Core refuses.
                        None if !matches!(self.parts[pi].source, Source::Master(_)) => {
                            let to_self = psbt.unsigned_tx.output.iter().any(|o| {
                                self.parts[pi]
                                    .wallet
                                    .derivation_of_spk(o.script_pubkey.clone())
                                    .is_some()
                                    && !spend.recipients.iter().any(|r| r.0 == o.script_pubkey)
                            });
                            if to_self {
                                return Err(WalletError::Wallet(
                                    "Transaction needs a change address, but we can't generate it."
                                        .into(),
                                ));
                            }
                        }
                        None => {}
                    }
                    return Ok(psbt);
                }
                Err(e) => match map_create_err(e) {
                    WalletError::InsufficientFunds => continue,
                    other => last = other,
                },
            }
        }
        Err(last)
    }

    /// Where a transaction built by part `builder` pays its change: `None` for a master-key
    /// part (its own internal keychain); for an imported one, the next unused script of the
    /// active change descriptor of the builder's type, else of `bech32`, else of any type
    /// (`None` when the wallet has none).
    fn change_for(&mut self, builder: usize) -> Option<(usize, KeychainKind, bitcoin::ScriptBuf)> {
        if matches!(self.parts[builder].source, Source::Master(_)) {
            return None;
        }
        let types = [
            self.parts[builder].output_type(),
            Some(OutputType::Bech32),
            Some(OutputType::Bech32m),
            Some(OutputType::P2shSegwit),
            Some(OutputType::Legacy),
        ];
        let (pi, kc) = types
            .into_iter()
            .flatten()
            .find_map(|t| self.active(t, true))?;
        let script = self.parts[pi]
            .wallet
            .next_unused_address(kc)
            .address
            .script_pubkey();
        Some((pi, kc, script))
    }

    /// Adds what the wallet knows about the inputs it owns (UTXOs, key origins), signs them
    /// with the wallet's key and, with `finalize`, finalizes them. `true` when every input is
    /// final.
    fn sign_psbt(&self, psbt: &mut bitcoin::Psbt, finalize: bool) -> Res<bool> {
        for i in 0..psbt.inputs.len() {
            let op = psbt.unsigned_tx.input[i].previous_output;
            let input = &mut psbt.inputs[i];
            if input.final_script_witness.is_some() || input.final_script_sig.is_some() {
                continue;
            }
            for part in &self.parts {
                let Some(u) = part.wallet.get_utxo(op) else {
                    continue;
                };
                let known = part.wallet.get_psbt_input(u, None, false).map_err(db_err)?;
                if input.witness_utxo.is_none() {
                    input.witness_utxo = known.witness_utxo;
                }
                if input.non_witness_utxo.is_none() {
                    input.non_witness_utxo = known.non_witness_utxo;
                }
                input.bip32_derivation.extend(known.bip32_derivation);
                input.tap_key_origins.extend(known.tap_key_origins);
                if input.tap_internal_key.is_none() {
                    input.tap_internal_key = known.tap_internal_key;
                }
                break;
            }
        }
        // Inputs that are not the wallet's fail to sign; the others are signed regardless.
        if let Some(xprv) = &self.xprv {
            let _ = psbt.sign(xprv, self.parts[0].wallet.secp_ctx());
        }
        // Imported descriptors sign with their own keys (bdk's signers), input by input.
        let opts = SignOptions {
            trust_witness_utxo: true,
            try_finalize: false,
            ..SignOptions::default()
        };
        for part in &self.parts {
            if let Source::Imported(Imported {
                signers: Some(signers),
                ..
            }) = &part.source
            {
                let _ = part
                    .wallet
                    .sign_with_signers(psbt, &[signers], opts.clone());
            }
        }
        if finalize {
            for part in &self.parts {
                part.wallet
                    .finalize_psbt(psbt, SignOptions::default())
                    .map_err(db_err)?;
            }
        }
        Ok(psbt
            .inputs
            .iter()
            .all(|i| i.final_script_witness.is_some() || i.final_script_sig.is_some()))
    }
}

/// Funds, signs and broadcasts `spend` from wallet `i`; the txid.
fn send(n: &mut Node, i: usize, tip: u32, spend: &Spend) -> Res<Txid> {
    let w = &mut n.wallets.loaded[i].1;
    if !w.private_keys {
        return Err(WalletError::Wallet(
            "Error: Private keys are disabled for this wallet".into(),
        ));
    }
    let mut psbt = w.fund(tip, spend)?;
    if !w.sign_psbt(&mut psbt, true)? {
        return Err(WalletError::Wallet("Signing transaction failed".into()));
    }
    let tx = psbt.extract_tx().map_err(db_err)?;
    let txid = n
        .accept_tx(tx)
        .map_err(|r| WalletError::Rejected(r.code, r.reason))?;
    let seen = n.wallets.next_seen();
    let w = &mut n.wallets.loaded[i].1;
    w.sync(&n.chain, &n.mempool, seen)?;
    w.persist()?;
    Ok(txid)
}

/// A label argument: any string but `*`, which Core reserves.
fn label_arg(p: &Value, i: usize) -> Res<Option<&str>> {
    let l = str_arg(p, i)?;
    if l == Some("*") {
        return Err(param(-11, "Invalid label name"));
    }
    Ok(l)
}

fn address_arg(s: &str) -> Res<bitcoin::ScriptBuf> {
    Address::from_str(s)
        .ok()
        .and_then(|a| a.require_network(Network::Regtest).ok())
        .map(|a| a.script_pubkey())
        .ok_or_else(|| param(-5, format!("Invalid Bitcoin address: {s}")))
}

/// The wallet's confirmation target when a spend names none (Core's `-txconfirmtarget`).
pub const DEFAULT_CONF_TARGET: u32 = 6;

/// The fee rate of a spend, as Core's wallet picks it: `fee_rate` (sat/vB) when given;
/// else the node's estimate ([`crate::fees`]) for `conf_target` (default
/// [`DEFAULT_CONF_TARGET`]) in `estimate_mode` (unset: economical when the transaction
/// signals RBF, else conservative); else, with no estimate, the fallback rate of
/// [`DEFAULT_FEE_RATE_SAT_VB`] sat/vB (Core's `-fallbackfee`, which regtest setups set).
fn spend_rate(
    n: &Node,
    fee_rate: Option<&Value>,
    conf_target: Option<&Value>,
    estimate_mode: Option<&Value>,
    replaceable: bool,
) -> Res<FeeRate> {
    let mode = match estimate_mode {
        None => crate::fees::Mode::Unset,
        Some(v) => crate::fees::Mode::parse(
            v.as_str()
                .ok_or_else(|| param(-3, "Expected type string"))?,
        )
        .map_err(|m| param(-8, m))?,
    };
    if fee_rate.is_some() {
        if conf_target.is_some() {
            return Err(param(
                -8,
                "Cannot specify both conf_target and fee_rate. Please provide either a confirmation target in blocks for automatic fee estimation, or an explicit fee rate.",
            ));
        }
        if mode != crate::fees::Mode::Unset {
            return Err(param(-8, "Cannot specify both estimate_mode and fee_rate"));
        }
        return sat_vb_arg(fee_rate);
    }
    let target = match conf_target {
        None => DEFAULT_CONF_TARGET,
        Some(v) => {
            let max = crate::fees::MAX_TARGET;
            v.as_i64()
                .filter(|t| (1..=i64::from(max)).contains(t))
                .map(|t| t as u32)
                .ok_or_else(|| {
                    param(
                        -8,
                        format!("Invalid conf_target, must be between 1 and {max}"),
                    )
                })?
        }
    };
    let mode = match mode {
        crate::fees::Mode::Unset if replaceable => crate::fees::Mode::Economical,
        crate::fees::Mode::Unset => crate::fees::Mode::Conservative,
        m => m,
    };
    match crate::fees::estimate(&n.chain, target, mode) {
        Some(rate) => Ok(rate),
        None => sat_vb_arg(None),
    }
}

/// A fee rate in sat/vB (`fee_rate` parameters), the default when absent.
fn sat_vb_arg(v: Option<&Value>) -> Res<FeeRate> {
    let rate = match v {
        None => DEFAULT_FEE_RATE_SAT_VB as f64,
        Some(v) => v
            .as_f64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .ok_or_else(|| param(-3, "Amount is not a number or string"))?,
    };
    if !(0.0..=100_000.0).contains(&rate) {
        return Err(param(-8, "Invalid fee_rate"));
    }
    Ok(FeeRate::from_sat_per_kwu((rate * 250.0).ceil() as u64))
}

/// `{address: amount, …}` (or, for PSBT outputs, an array of such objects and `{"data": hex}`).
/// Returns, for each output in the argument's order, the index of the recipient it became
/// (`None` for a data output), for `subtractFeeFromOutputs`.
fn outputs_arg(v: &Value, spend: &mut Spend) -> Res<Vec<Option<usize>>> {
    let objs: Vec<&serde_json::Map<String, Value>> = match v {
        Value::Object(o) => vec![o],
        Value::Array(a) => a
            .iter()
            .map(|x| {
                x.as_object().ok_or_else(|| {
                    param(
                        -8,
                        "Invalid parameter, key-value pair not an object as expected",
                    )
                })
            })
            .collect::<Res<_>>()?,
        _ => return Err(param(-3, "Expected type object")),
    };
    let mut seen = HashSet::new();
    let mut order = Vec::new();
    for o in objs {
        for (k, val) in o {
            if k == "data" {
                let d = val
                    .as_str()
                    .and_then(|h| Vec::<u8>::from_hex(h).ok())
                    .ok_or_else(|| param(-8, "Data must be hexadecimal string"))?;
                spend.data.push(d);
                order.push(None);
                continue;
            }
            if !seen.insert(k.clone()) {
                return Err(param(
                    -8,
                    format!("Invalid parameter, duplicated address: {k}"),
                ));
            }
            let amount = amount_arg(val)?;
            if amount == Amount::ZERO {
                return Err(param(-3, "Invalid amount for send"));
            }
            order.push(Some(spend.recipients.len()));
            spend.recipients.push((address_arg(k)?, amount));
        }
    }
    if spend.recipients.is_empty() && spend.data.is_empty() {
        return Err(param(
            -8,
            "Invalid parameter, output argument must be non-empty",
        ));
    }
    Ok(order)
}

fn psbt_arg(v: Option<&Value>) -> Res<bitcoin::Psbt> {
    use bitcoin::base64::Engine as _;
    v.and_then(Value::as_str)
        .and_then(|s| {
            bitcoin::base64::engine::general_purpose::STANDARD
                .decode(s)
                .ok()
        })
        .and_then(|b| bitcoin::Psbt::deserialize(&b).ok())
        .ok_or_else(|| param(-22, "TX decode failed invalid base64"))
}

fn psbt_b64(psbt: &bitcoin::Psbt) -> String {
    use bitcoin::base64::Engine as _;
    bitcoin::base64::engine::general_purpose::STANDARD.encode(psbt.serialize())
}

fn gettransaction(n: &Node, i: usize, txid: Txid, verbose: bool) -> Res<Value> {
    let w = &n.wallets.loaded[i].1;
    let wtx = w.get_tx(txid).ok_or(WalletError::UnknownTx)?;
    let tx: Transaction = (*wtx.tx_node.tx).clone();
    let (debit, credit) = w.debit_credit(&tx);
    let from_me = debit > Amount::ZERO;
    let value_out: Amount = tx.output.iter().map(|o| o.value).sum();
    let fee = if from_me {
        Some(
            value_out.to_signed().unwrap_or(SignedAmount::ZERO)
                - debit.to_signed().unwrap_or(SignedAmount::ZERO),
        )
    } else {
        None
    };
    let net = credit.to_signed().unwrap_or(SignedAmount::ZERO)
        - debit.to_signed().unwrap_or(SignedAmount::ZERO);
    let amount = net - fee.unwrap_or(SignedAmount::ZERO);
    let tip = n.chain.height();
    let coinbase = tx.is_coinbase();
    let mut v = json!({"amount": sbtc(amount)});
    if let Some(f) = fee {
        v["fee"] = sbtc(f);
    }
    let mut confirmations: i64 = 0;
    let mut time = unix_now();
    match &wtx.chain_position {
        ChainPosition::Confirmed { anchor, .. } => {
            let h = anchor.block_id.height;
            confirmations = i64::from(tip) - i64::from(h) + 1;
            v["confirmations"] = json!(confirmations);
            if coinbase {
                v["generated"] = json!(true);
            }
            let hash = anchor.block_id.hash;
            v["blockhash"] = json!(hash.to_string());
            v["blockheight"] = json!(h);
            if let Some((_, idx)) = n.chain.tx_index.get(&txid) {
                v["blockindex"] = json!(idx);
            }
            if let Some(e) = n.chain.blocks.get(&hash) {
                time = u64::from(e.block.header.time);
                v["blocktime"] = json!(time);
            }
        }
        ChainPosition::Unconfirmed { first_seen, .. } => {
            v["confirmations"] = json!(0);
            v["trusted"] = json!(from_me);
            if let Some(t) = first_seen {
                time = *t;
            }
        }
    }
    v["txid"] = json!(txid.to_string());
    v["wtxid"] = json!(tx.compute_wtxid().to_string());
    v["walletconflicts"] = json!([]);
    v["time"] = json!(time);
    v["timereceived"] = json!(time);
    v["bip125-replaceable"] = json!(if confirmations > 0 {
        "no"
    } else if tx.is_explicitly_rbf() {
        "yes"
    } else {
        "no"
    });
    let mut details = Vec::new();
    for (vout, o) in tx.output.iter().enumerate() {
        let owner = w.owner(&o.script_pubkey);
        let address = address_of(&o.script_pubkey);
        match owner {
            Some(h) if from_me && w.is_change(h) => {}
            Some(_) => {
                let category = if coinbase {
                    if confirmations >= i64::from(WALLET_COINBASE_MATURITY) {
                        "generate"
                    } else if confirmations > 0 {
                        "immature"
                    } else {
                        "orphan"
                    }
                } else {
                    "receive"
                };
                details.push(json!({"address": address, "category": category, "amount": btc(o.value), "vout": vout}));
            }
            None if from_me => {
                let mut d = json!({"address": address, "category": "send", "amount": sbtc(-o.value.to_signed().unwrap_or(SignedAmount::ZERO)), "vout": vout, "abandoned": false});
                if let Some(f) = fee {
                    d["fee"] = sbtc(f);
                }
                details.push(d);
            }
            None => {}
        }
    }
    for d in &mut details {
        if let Some(l) = d["address"].as_str().and_then(|a| w.labels.get(a)) {
            d["label"] = json!(l);
        }
    }
    v["details"] = json!(details);
    v["hex"] = json!(serialize_hex(&tx));
    if verbose {
        v["decoded"] = crate::core_json::tx_json(&tx, Network::Regtest, false);
    }
    Ok(v)
}

/// How far before an import's timestamp a rescan starts (Core's `TIMESTAMP_WINDOW`, the
/// `MAX_FUTURE_BLOCK_TIME` a block's time may run ahead).
const TIMESTAMP_WINDOW: i64 = crate::chain::MAX_FUTURE_BLOCK_TIME as i64;

/// The first height a rescan for keys made at `timestamp` must read, as Core's
/// `RescanFromTime`: the first block whose time, or an ancestor's, reaches `timestamp` less
/// [`TIMESTAMP_WINDOW`], never later than the tip's time allows (Core scans from
/// min(timestamp, tip time)); past the tip when no block does.
fn rescan_start(chain: &Chain, timestamp: i64) -> u32 {
    let tip_time = chain.blocks[&chain.tip()].block.header.time as i64;
    let from = timestamp.min(tip_time) - TIMESTAMP_WINDOW;
    let mut max = 0i64;
    for (h, hash) in chain.active.iter().enumerate().skip(1) {
        max = max.max(chain.blocks[hash].block.header.time as i64);
        if max >= from {
            return h as u32;
        }
    }
    chain.active.len() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wallet_file_from_before_combo_gains_the_column_and_keeps_its_rows() {
        let db = Connection::open_in_memory().unwrap();
        db.execute_batch(
            "CREATE TABLE rexe_descriptors (
                id INTEGER PRIMARY KEY, descriptor TEXT NOT NULL, internal INTEGER NOT NULL,
                active INTEGER NOT NULL, range_start INTEGER, range_end INTEGER,
                next_index INTEGER NOT NULL, timestamp INTEGER NOT NULL);
             INSERT INTO rexe_descriptors VALUES (1, 'wpkh(x)', 0, 1, 0, 9, 0, 5);",
        )
        .unwrap();
        for _ in 0..2 {
            ensure_meta_tables(&db).unwrap();
        }
        let row: (String, Option<String>) = db
            .query_row(
                "SELECT descriptor, combo FROM rexe_descriptors WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(row, ("wpkh(x)".to_string(), None));
    }
}
