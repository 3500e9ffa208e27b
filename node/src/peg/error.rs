//! The peg agents' error: what stops a relayer or claimer step. The agents' loops log it and
//! try again later; callers decide on the variant (an unreachable node or Bitcoin source
//! passes, a damaged work list does not).

use super::source::SourceError;

/// Why a relayer or claimer step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The L2 node could not be asked, or refused.
    #[error(transparent)]
    Node(#[from] crate::Error),
    /// The Bitcoin source could not answer.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The claimer's work list (SQLite) failed.
    #[error("the claimer's work list: {0}")]
    WorkList(#[from] rusqlite::Error),
    /// The work list file could not be created or protected.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A stored value of the work list does not parse.
    #[error("the claimer's work list holds a bad {0}")]
    Corrupt(&'static str),
    /// The L2 node's answer lacks what the agent needs.
    #[error("{0}")]
    Answer(String),
    /// The Bitcoin source and the L2 follow different chains.
    #[error("{0} shares no block with the L2's tracked headers (wrong network or checkpoint?)")]
    NoCommonBlock(String),
}

/// An agent step's result.
pub type Result<T, E = AgentError> = std::result::Result<T, E>;
