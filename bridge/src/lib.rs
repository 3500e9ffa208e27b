//! rexe's peg, consensus side (pure, I/O-free): the Bitcoin header chain tracked on the L2
//! ([`headers`]), SPV proofs ([`spv`]) and the peg-out order book, matches and claims ([`peg`]).

pub mod bench;
pub mod headers;
pub mod peg;
pub mod spv;
