//! Errors of the wallet. None of them ever carries secret material (seed, mnemonic, private
//! keys or private descriptors): messages coming from descriptor parsing are redacted first.

use std::path::PathBuf;

use bitcoin::{Amount, Network, Txid};
use thiserror::Error;

/// Why a PSBT or transaction is refused as a peg payment (see [`crate::check_peg_psbt`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PegCheckError {
    /// No payment was requested.
    #[error("no payment given: a peg-in pays at least one match")]
    NoPayments,
    /// No match id was given.
    #[error("no match id given: the OP_RETURN commits to at least one match")]
    NoMatchIds,
    /// A payment script is itself an `OP_RETURN` (unspendable).
    #[error("payment #{index} pays an OP_RETURN script, which nobody can spend")]
    UnspendablePayee {
        /// Index in the requested payments.
        index: usize,
    },
    /// No output pays the payment's script.
    #[error("payment #{index} missing: no output pays {amount} to {script}")]
    PaymentMissing {
        /// Index in the requested payments.
        index: usize,
        /// The payee (address when it has one, else script hex).
        script: String,
        /// The amount owed.
        amount: Amount,
    },
    /// The payee's output pays less than owed.
    #[error("payment #{index} to {script} is {found}, less than the {expected} owed")]
    Underpaid {
        /// Index in the requested payments.
        index: usize,
        /// The payee (address when it has one, else script hex).
        script: String,
        /// The amount owed.
        expected: Amount,
        /// The largest amount an unassigned output pays to that script.
        found: Amount,
    },
    /// No `RXPG` commitment output.
    #[error("missing OP_RETURN commitment (expected {expected})")]
    MissingCommitment {
        /// Hex of the expected `OP_RETURN` script.
        expected: String,
    },
    /// The `RXPG` commitment does not commit to the given match ids.
    #[error("wrong OP_RETURN commitment: found {found}, expected {expected}")]
    WrongCommitment {
        /// Hex of the script found.
        found: String,
        /// Hex of the expected script.
        expected: String,
    },
    /// More than one `RXPG` output (a claim would be rejected).
    #[error("{0} RXPG OP_RETURN outputs (exactly one allowed)")]
    DuplicateCommitment(usize),
    /// The PSBT belongs to another Bitcoin network.
    #[error("PSBT is for another network: {0}")]
    WrongNetwork(String),
}

/// Every error of the wallet.
#[derive(Debug, Error)]
pub enum WalletError {
    /// File system error on the wallet or a PSBT file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `create`/`import` on a path that already exists.
    #[error("wallet file {0} already exists (refusing to overwrite it)")]
    AlreadyExists(PathBuf),
    /// `load` on a path with no file.
    #[error("no wallet file at {0}")]
    NotFound(PathBuf),
    /// The file is not a rexe wallet, or SQLite failed.
    #[error("wallet database {path}: {message}")]
    Database {
        /// The wallet file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The wallet on disk belongs to another network.
    #[error("wallet {path} is for {found}, not {expected}")]
    WrongNetwork {
        /// The wallet file.
        path: PathBuf,
        /// The network asked for.
        expected: Network,
        /// The network of the file.
        found: Network,
    },
    /// A descriptor that does not parse or does not fit the network.
    #[error("invalid {which} descriptor: {message}")]
    InvalidDescriptor {
        /// `external` or `internal`.
        which: &'static str,
        /// Why (secrets redacted).
        message: String,
    },
    /// A mnemonic that does not parse.
    #[error("invalid mnemonic: {0}")]
    InvalidMnemonic(String),
    /// Key derivation failed (practically never).
    #[error("key derivation failed: {0}")]
    Key(String),
    /// An Electrum URL this wallet cannot use.
    #[error("unsupported Electrum URL {0:?}: expected tcp://HOST:PORT or ssl://HOST:PORT")]
    ElectrumUrl(String),
    /// The Electrum server is unreachable or answered with an error.
    #[error("Electrum server {url}: {message}")]
    Electrum {
        /// The server.
        url: String,
        /// What failed.
        message: String,
    },
    /// The wallet cannot fund the transaction.
    #[error(
        "insufficient funds: the transaction needs {needed}, the wallet has {available} spendable"
    )]
    InsufficientFunds {
        /// Amount needed (payments + fee).
        needed: Amount,
        /// Amount available.
        available: Amount,
    },
    /// Building a transaction failed for another reason.
    #[error("cannot build the transaction: {0}")]
    Build(String),
    /// The PSBT or transaction is not the peg payment it should be.
    #[error("refusing PSBT: {0}")]
    Peg(#[from] PegCheckError),
    /// PSBT text or structure is invalid.
    #[error("invalid PSBT: {0}")]
    Psbt(String),
    /// The PSBTs given to `join` cannot be joined.
    #[error("cannot join PSBTs: {0}")]
    Join(String),
    /// A watch-only wallet was asked to sign.
    #[error("watch-only wallet: it holds no private keys; sign the PSBT with an external signer")]
    WatchOnly,
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(String),
    /// Some inputs have no final script yet.
    #[error("PSBT not fully signed: input(s) {0:?} not finalized")]
    NotFinalized(Vec<usize>),
    /// Fee bump refused or impossible.
    #[error("cannot bump the fee of {txid}: {message}")]
    FeeBump {
        /// The transaction to replace.
        txid: Txid,
        /// Why.
        message: String,
    },
    /// Too close to (or past) a match's deadline to pay safely.
    #[error(
        "too late to pay: {remaining} block(s) left before the deadline at height {deadline} \
         (tip {tip}); at least {margin} required"
    )]
    TooLate {
        /// The deadline (last height at which the payment may confirm).
        deadline: u32,
        /// The Bitcoin tip height.
        tip: u32,
        /// Blocks left.
        remaining: u32,
        /// Required margin.
        margin: u32,
    },
}

/// Result alias.
pub type Result<T, E = WalletError> = std::result::Result<T, E>;

/// Replaces every long alphanumeric token of `sources` (keys, WIFs, xprvs: 20+ characters)
/// found in `message` by `<redacted>`.
pub(crate) fn redact(message: &str, sources: &[&str]) -> String {
    let mut out = message.to_string();
    for src in sources {
        for tok in src.split(|c: char| !c.is_ascii_alphanumeric()) {
            if tok.len() >= 20 && out.contains(tok) {
                out = out.replace(tok, "<redacted>");
            }
        }
    }
    out
}
