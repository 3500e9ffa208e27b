//! Merge mining for rexe: Namecoin-compatible AuxPoW, the aux RPC pools call, the bitcoind
//! proxy, the Stratum v1 endpoint and the harvesting of on-chain, stale and premature work.
//!
//! Status: not implemented yet (see the merge-mining issue); the crate exists so the workspace
//! has its final shape.
