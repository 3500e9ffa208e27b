//! Bounded network servers for rexe's ports (JSON-RPC, Electrum, Stratum, the mining
//! proxy): a connection gate (connections in total and per IP), accept loops that log and
//! back off on errors instead of ending, HTTP/1 serving with header-read and write-stall
//! timeouts, JSON-RPC request parsing ([`jsonrpc`]), bounded line reading, and raising the
//! process's file-descriptor limit.
//!
//! One process hosts the Bitcoin node, the L2 node and the miner, so one client must not be
//! able to take memory, descriptors or time from the others: every server takes a
//! [`Limits`] and admits connections through a [`ConnGate`].

pub mod accept;
pub mod auth;
pub mod client;
pub mod cookie;
pub mod core;
pub mod fd;
pub mod gate;
pub mod http;
pub mod jsonrpc;
pub mod limits;
pub mod line;
pub mod metrics;
#[doc(hidden)]
pub mod probe;
pub mod workers;

pub use accept::accept_loop;
pub use auth::basic_auth_ok;
pub use client::{RpcClient, RpcError};
pub use gate::{ConnGate, Permit};
pub use http::serve_http;
pub use limits::Limits;
pub use line::{read_line, write_deadline, LineRead};
pub use workers::{Priority, Workers};
