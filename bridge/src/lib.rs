//! rexe's peg: the Bitcoin header chain tracked on the L2, SPV claims, peg-out orders and
//! matches (consensus side), and the wallet, PSBT and agent code (user side).
//!
//! Status: not implemented yet (see the bridge issues); the crate exists so the workspace has
//! its final shape.
