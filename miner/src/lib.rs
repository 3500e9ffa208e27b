//! Merge mining for rexe: Namecoin-compatible AuxPoW ([`auxpow`]) and the L2's AuxPoW seal
//! ([`seal`]); the aux RPC for pools ([`aux_rpc`], served by `rexe node`); the bitcoind
//! proxy and harvesting ([`proxy`], [`harvest`]), merge-mining other AuxPoW chains in the
//! same aux tree ([`aggregate`]); the Stratum v1 server and CPU miner
//! ([`stratum`]); the watcher ([`watcher`]) following bitcoind by `getchaintips` polling and
//! ZMQ `hashblock` ([`zmq`]); the Stratum share tap in front of an unmodified pool ([`tap`]);
//! the inspection tool ([`inspect`]).

pub mod aggregate;
pub mod aux_rpc;
pub mod auxpow;
pub mod harvest;
pub mod inspect;
pub mod proxy;
pub mod seal;
pub mod stratum;
pub mod tap;
pub mod watcher;
pub mod zmq;

pub use auxpow::{AuxPow, AuxPowError, AuxTree, ChainId};
pub use seal::AuxPowSealer;
