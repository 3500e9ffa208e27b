//! rexe's wallet: the user side of the peg.
//!
//! - [`RexeWallet`]: a bdk_wallet descriptor wallet (BIP86 taproot by default, BIP84 as an
//!   option, or imported BIP380 descriptors, private or watch-only) persisted in one SQLite
//!   file with mode 0600, synced over Electrum (`tcp://`, `ssl://`) with bdk_electrum.
//! - The user's L2 key comes from the same seed at [`keys::L2_KEY_PATH`]
//!   ([`RexeWallet::l2_signer`]).
//! - Peg-in payments as PSBTs ([`RexeWallet::build_peg_in`]): one output per match payee,
//!   one `RXPG` `OP_RETURN` commitment, change, RBF. Every PSBT is checked
//!   ([`check_peg_psbt`]) before it is signed or broadcast; several parties can [`join`] their
//!   payments into one transaction and [`combine`] their signatures; a stuck payment is
//!   replaced with [`RexeWallet::bump_fee`]; [`safe_to_pay`] guards the deadline.
//! - PSBT files in base64 ([`psbt_io`]).
//!
//! Secrets (mnemonic, private keys, private descriptors) never appear in `Debug`/`Display`
//! output or in error messages.

pub mod error;
pub mod keys;
pub mod peg;
pub mod psbt_io;
mod wallet;

pub use bdk_electrum::electrum_client as electrum;
pub use bdk_wallet::Balance;
pub use error::{PegCheckError, Result, WalletError};
pub use keys::{
    l2_signer_from_master, l2_signer_of_mnemonic, mnemonic_from_entropy, DescriptorKind,
    L2_KEY_PATH,
};
pub use peg::{
    blocks_left, check_deadline, check_join, check_peg_outputs, check_peg_psbt, check_peg_tx,
    check_psbt_network, combine, extract_tx, join, match_ids_key, psbt_match_ids, safe_to_pay,
    should_bump, tag_match_ids, PegPayment, DEFAULT_BUMP_MARGIN, DEFAULT_PAY_MARGIN,
};
pub use psbt_io::{psbt_from_base64, psbt_to_base64, read_psbt_file, write_psbt_file};
pub use rexe_bridge::peg::{commitment_script, MatchId};
pub use wallet::{electrum_client, RexeWallet, TxSummary, STOP_GAP};
