//! The client commands: L2 keys and transfers (`rexe key`, `send`, `balance`, `rpc`), the
//! Bitcoin wallet (`rexe wallet`), peg-in PSBTs (`rexe psbt`) and contracts
//! (`rexe contract`). Each talks to a node through its JSON-RPC; the binary only wires them.

pub mod btc_wallet;
pub mod contract;
pub mod key;
pub mod payouts;
pub mod psbt;

pub use key::{read_key, RpcArgs};
