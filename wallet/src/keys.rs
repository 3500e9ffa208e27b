//! Seeds, descriptors and the L2 key.
//!
//! Paths from the master key `m` (BIP32, derived from the BIP39 seed with an empty
//! passphrase):
//!
//! | use                  | path                          | descriptor                 |
//! |----------------------|-------------------------------|----------------------------|
//! | receive (BIP86)      | `m/86'/c'/0'/0/*`             | `tr(xprv/86'/c'/0'/0/*)`   |
//! | change (BIP86)       | `m/86'/c'/0'/1/*`             | `tr(xprv/86'/c'/0'/1/*)`   |
//! | receive (BIP84)      | `m/84'/c'/0'/0/*`             | `wpkh(xprv/84'/c'/0'/0/*)` |
//! | change (BIP84)       | `m/84'/c'/0'/1/*`             | `wpkh(xprv/84'/c'/0'/1/*)` |
//! | L2 account key       | `m/7273'/0'/0'` ([`L2_KEY_PATH`]) | —                      |
//!
//! `c` is the coin type: `0` on mainnet, `1` on every test network (BIP44).
//! The L2 key is fully hardened, so a leaked Bitcoin xpub (even with one child private key)
//! reveals nothing about it. 7273' is a purpose index reserved by rexe (no BIP43 purpose uses
//! it); the two following levels leave room for more networks and accounts later.

use std::io::Read;
use std::str::FromStr;

use bdk_wallet::bip39::{Language, Mnemonic};
use bdk_wallet::descriptor::{ExtendedDescriptor, IntoWalletDescriptor};
use bitcoin::bip32::{DerivationPath, Xpriv};
use bitcoin::secp256k1::{All, Secp256k1};
use bitcoin::{Network, NetworkKind};
use miniscript::descriptor::{DescriptorSecretKey, KeyMap};

use crate::error::{redact, Result, WalletError};

/// Derivation path of the user's L2 (rexe) account key, from the wallet's master key.
pub const L2_KEY_PATH: &str = "m/7273'/0'/0'";

/// Script type of the descriptors a new wallet gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DescriptorKind {
    /// BIP86 single-key taproot (`tr`), the default.
    #[default]
    Bip86,
    /// BIP84 native segwit v0 (`wpkh`).
    Bip84,
}

impl DescriptorKind {
    fn purpose(self) -> u32 {
        match self {
            DescriptorKind::Bip86 => 86,
            DescriptorKind::Bip84 => 84,
        }
    }
}

impl FromStr for DescriptorKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "bip86" | "tr" | "taproot" => Ok(DescriptorKind::Bip86),
            "bip84" | "wpkh" | "segwit" => Ok(DescriptorKind::Bip84),
            other => Err(format!(
                "unknown descriptor kind {other:?} (bip86 or bip84)"
            )),
        }
    }
}

/// BIP44 coin type: 0 on mainnet, 1 on test networks.
pub fn coin_type(network: Network) -> u32 {
    match NetworkKind::from(network) {
        NetworkKind::Main => 0,
        NetworkKind::Test => 1,
    }
}

/// 32 bytes from the operating system's CSPRNG.
pub(crate) fn random_entropy() -> Result<[u8; 32]> {
    let mut e = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut e))
        .map_err(|source| WalletError::Io {
            path: "/dev/urandom".into(),
            source,
        })?;
    Ok(e)
}

/// A fresh 24-word English mnemonic.
pub(crate) fn new_mnemonic() -> Result<Mnemonic> {
    Mnemonic::from_entropy_in(Language::English, &random_entropy()?)
        .map_err(|e| WalletError::Key(e.to_string()))
}

/// The 24-word English mnemonic of 32 bytes of entropy: for fixed, public test wallets (the
/// devnet's demo users). Never use it for real funds: the entropy is not secret.
pub fn mnemonic_from_entropy(entropy: &[u8; 32]) -> String {
    Mnemonic::from_entropy_in(Language::English, entropy)
        .expect("32 bytes is a valid entropy length")
        .to_string()
}

/// The L2 signer a wallet restored from `words` holds (see [`L2_KEY_PATH`]).
pub fn l2_signer_of_mnemonic(words: &str, network: Network) -> Result<rexe_chain::Signer> {
    let m = parse_mnemonic(words)?;
    let master = master_from_mnemonic(&m, network)?;
    l2_signer_from_master(&Secp256k1::new(), &master)
}

/// Parses a mnemonic (words are never echoed in the error).
pub(crate) fn parse_mnemonic(words: &str) -> Result<Mnemonic> {
    Mnemonic::parse_in(Language::English, words).map_err(|e| {
        // bip39's errors may name an unknown word: keep only the kind of failure.
        let kind = match e {
            bdk_wallet::bip39::Error::BadWordCount(n) => format!("{n} words (12 to 24 expected)"),
            bdk_wallet::bip39::Error::UnknownWord(i) => {
                format!("word #{} is not in the list", i + 1)
            }
            bdk_wallet::bip39::Error::InvalidChecksum => "checksum mismatch".into(),
            _ => "malformed".into(),
        };
        WalletError::InvalidMnemonic(kind)
    })
}

/// The BIP32 master key of a mnemonic (empty passphrase).
pub(crate) fn master_from_mnemonic(m: &Mnemonic, network: Network) -> Result<Xpriv> {
    Xpriv::new_master(network, &m.to_seed("")).map_err(|e| WalletError::Key(e.to_string()))
}

/// The receive and change descriptors (private) of `kind` under `master`.
pub(crate) fn default_descriptors(
    master: &Xpriv,
    network: Network,
    kind: DescriptorKind,
) -> (String, String) {
    let p = kind.purpose();
    let c = coin_type(network);
    let wrap = |chain: u32| match kind {
        DescriptorKind::Bip86 => format!("tr({master}/{p}'/{c}'/0'/{chain}/*)"),
        DescriptorKind::Bip84 => format!("wpkh({master}/{p}'/{c}'/0'/{chain}/*)"),
    };
    (wrap(0), wrap(1))
}

/// Parses a descriptor for `network`, returning the public descriptor and its secret keys.
/// The error message never contains the keys of `s`.
pub(crate) fn parse_descriptor(
    secp: &Secp256k1<All>,
    s: &str,
    network: Network,
    which: &'static str,
) -> Result<(ExtendedDescriptor, KeyMap)> {
    let s = s.trim();
    if s.is_empty() {
        return Err(WalletError::InvalidDescriptor {
            which,
            message: "empty".into(),
        });
    }
    s.into_wallet_descriptor(secp, NetworkKind::from(network))
        .map_err(|e| WalletError::InvalidDescriptor {
            which,
            message: redact(&e.to_string(), &[s]),
        })
}

/// The master key among a descriptor's secret keys: an xprv of depth 0 used without origin.
pub(crate) fn master_of(keymap: &KeyMap) -> Option<Xpriv> {
    keymap.values().find_map(|sk| match sk {
        DescriptorSecretKey::XPrv(x)
            if x.xkey.depth == 0 && x.origin.as_ref().is_none_or(|(_, p)| p.is_empty()) =>
        {
            Some(x.xkey)
        }
        _ => None,
    })
}

/// The L2 signer of a master key: the secret key at [`L2_KEY_PATH`].
pub fn l2_signer_from_master(secp: &Secp256k1<All>, master: &Xpriv) -> Result<rexe_chain::Signer> {
    let path = DerivationPath::from_str(L2_KEY_PATH).expect("valid constant path");
    let child = master
        .derive_priv(secp, &path)
        .map_err(|e| WalletError::Key(e.to_string()))?;
    rexe_chain::Signer::from_secret(child.private_key.secret_bytes())
        .map_err(|e| WalletError::Key(e.to_string()))
}
