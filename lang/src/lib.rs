//! The contract language: a subset of PREDA (the PREDA Language Specification, version 2.0)
//! compiled to a gas-metered, deterministic stack machine.
//!
//! [`compile`] turns source into a [`Verified`] module: `lexer` → `parser` (syntax tree in
//! `ast`) → `compile` (names, types, scope rules, bytecode) → `verify`. [`vm::execute`] runs
//! one micro-transaction of a module against a [`vm::Host`] that supplies state rows.
//! Values, their canonical encoding and their JSON form are in [`value`]. What is supported
//! and how it differs from PREDA is described in `lang/README.md`.

pub mod ast;
pub mod base32;
pub mod bytecode;
mod compile;
pub mod error;
pub mod gas;
pub mod layout;
pub mod lexer;
pub mod num;
pub mod parser;
pub mod token;
pub mod types;
pub mod value;
pub mod verify;
pub mod vm;

#[cfg(test)]
mod link_tests;
#[cfg(test)]
mod tests;

pub use compile::{compile, compile_with, Imports, NoImports, MAX_IMPORTS};
pub use error::{CompileError, CompileErrors, Pos};
pub use verify::Verified;
