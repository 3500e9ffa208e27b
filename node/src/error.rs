//! The node library's error: what went wrong opening, configuring or running a node, or
//! talking to one as a client. Causes are kept as `source()` (shown by `{:#}` and by the
//! binary's error report), so callers decide on the variant, never on the message.

use std::time::Duration;

use rexe_chain::system::RefusalKind;
use rexe_chain::{ChainError, Txid};
use rexe_rpc::client::RpcError;

/// An error of the node library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration (file, flags or their combination) is invalid.
    #[error("{0}")]
    Config(String),
    /// A file or socket operation failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The chain could not be opened or refused an operation.
    #[error("{what}")]
    Chain {
        /// What was being done.
        what: String,
        /// Cause.
        #[source]
        source: ChainError,
    },
    /// A JSON-RPC call to a node failed: transport, HTTP, or its error answer.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// A JSON-RPC call made for a stated purpose failed.
    #[error("{what}")]
    RpcFor {
        /// What the call was for.
        what: String,
        /// Cause.
        #[source]
        source: RpcError,
    },
    /// A node's answer is well-formed JSON-RPC but not what the protocol promises, or its
    /// chain is not ours.
    #[error("{0}")]
    Peer(String),
    /// A call ran and the contract refused it.
    #[error("the peg refused call {txid}: {message}")]
    CallRefused {
        /// The call.
        txid: Txid,
        /// The contract's message.
        message: String,
    },
    /// A call had not run when the wait ended.
    #[error("call {txid} has not run after {waited:?} (is the L2 producing blocks?)")]
    CallNotRun {
        /// The call.
        txid: Txid,
        /// How long we waited.
        waited: Duration,
    },
    /// The process's signal handler could not be installed.
    #[error("installing the Ctrl-C/SIGTERM handler")]
    Signal(#[source] ctrlc::Error),
}

/// The node library's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O failure while doing `what`.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }

    /// A chain failure while doing `what`.
    pub fn chain(what: impl Into<String>, source: ChainError) -> Self {
        Error::Chain {
            what: what.into(),
            source,
        }
    }

    /// A failed RPC call made for `what`.
    pub fn rpc_for(what: impl Into<String>, source: RpcError) -> Self {
        Error::RpcFor {
            what: what.into(),
            source,
        }
    }

    /// The RPC failure underneath, if this is one.
    pub fn rpc(&self) -> Option<&RpcError> {
        match self {
            Error::Rpc(e) | Error::RpcFor { source: e, .. } => Some(e),
            _ => None,
        }
    }

    /// Whether a node answered "not found" (-5).
    pub fn is_not_found(&self) -> bool {
        self.rpc().is_some_and(RpcError::is_not_found)
    }

    /// The kind of a contract's refusal to admit a transaction (`error.data.kind` of a -26
    /// answer), if that is why the call failed.
    pub fn refusal_kind(&self) -> Option<RefusalKind> {
        RefusalKind::from_name(self.rpc()?.refusal()?.0)
    }
}

/// An error followed by its causes, `outer: inner: ...` (as `anyhow` prints with `{:#}`):
/// for logs and stored notes, where a typed error's `Display` alone would drop the cause.
pub struct Report<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(e) = cause {
            write!(f, ": {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}

/// Names the purpose of an RPC call whose failure is returned.
pub trait Purpose<T> {
    /// An [`Error::Rpc`] becomes [`Error::RpcFor`] `what`; other errors pass unchanged.
    fn purpose(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Purpose<T> for Result<T> {
    fn purpose(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| match e {
            Error::Rpc(e) => Error::rpc_for(what(), e),
            e => e,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_read_from_the_rpc_error_not_the_message() {
        let refused = Error::rpc_for(
            "submitting the peg claim call",
            RpcError::Rpc {
                method: "sendrawtransaction".into(),
                code: -26,
                message: "not found, says the text".into(),
                data: serde_json::json!({"kind": "retryable", "reason": "too-few-confirmations"}),
            },
        );
        assert_eq!(refused.refusal_kind(), Some(RefusalKind::Retryable));
        assert!(!refused.is_not_found());
        let missing = Error::Rpc(RpcError::Rpc {
            method: "getcallreceipt".into(),
            code: -5,
            message: "x".into(),
            data: serde_json::Value::Null,
        });
        assert!(missing.is_not_found());
        assert_eq!(missing.refusal_kind(), None);
        assert!(!Error::Peer("not found".into()).is_not_found());
        assert_eq!(
            Report(&refused).to_string(),
            "submitting the peg claim call: sendrawtransaction failed: error -26: not found, says the text"
        );
    }
}
