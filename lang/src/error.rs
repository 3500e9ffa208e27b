//! Compile errors: a position (line:column, both from 1) and a message meant for the
//! contract's author.

use std::fmt;

use thiserror::Error;

/// A position in the source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    /// Line, from 1.
    pub line: u32,
    /// Column in characters, from 1.
    pub col: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// One compile error.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{pos}: {message}")]
pub struct CompileError {
    /// Where.
    pub pos: Pos,
    /// What is wrong.
    pub message: String,
}

impl CompileError {
    /// An error at `pos`.
    pub fn new(pos: Pos, message: impl Into<String>) -> Self {
        CompileError {
            pos,
            message: message.into(),
        }
    }
}

/// Every error a compilation found, in source order (at least one).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub struct CompileErrors(pub Vec<CompileError>);

impl fmt::Display for CompileErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl From<CompileError> for CompileErrors {
    fn from(e: CompileError) -> Self {
        CompileErrors(vec![e])
    }
}
