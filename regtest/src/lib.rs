//! An embedded Bitcoin regtest node for `rexe devnet` and the tests.
