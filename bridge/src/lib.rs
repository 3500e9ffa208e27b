//! rexe's peg, consensus side (pure, I/O-free): the Bitcoin header chain tracked on the L2
//! ([`headers`]), SPV proofs ([`spv`]), the peg-out order book, matches and claims ([`peg`]),
//! and micro-benchmarks for `rexe bench` ([`bench`]). See `bridge/README.md` for the claim
//! rules and the `OP_RETURN` commitment format.

pub mod bench;
pub mod call;
pub mod contract;
pub mod headers;
mod items;
pub mod peg;
pub mod spv;
pub mod tracked;
