//! Merge mining for rexe: Namecoin-compatible AuxPoW ([`auxpow`]) and the L2's AuxPoW seal
//! ([`seal`]).
//!
//! Status: AuxPoW decode/encode/check/build, the chain seal and the aux RPC for pools
//! ([`aux_rpc`], served by `rexe node`) are implemented. The bitcoind proxy, the Stratum v1
//! endpoint, the watcher and the CPU miner are not implemented yet (see the merge-mining
//! issue).

pub mod aux_rpc;
pub mod auxpow;
pub mod bitcoind;
pub mod harvest;
pub mod inspect;
pub mod proxy;
pub mod seal;
pub mod stratum;
pub mod watcher;

pub use auxpow::{AuxPow, AuxPowError, AuxTree, ChainId};
pub use seal::AuxPowSealer;
