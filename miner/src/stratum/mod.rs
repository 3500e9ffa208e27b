//! Stratum v1: jobs ([`job`]), the server ([`server`]) and a small CPU-mining client
//! ([`client`]) for the devnet and tests.

pub mod client;
pub mod job;
pub mod server;
