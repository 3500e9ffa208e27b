//! Stratum v1: jobs ([`job`]), typed messages ([`protocol`]), the server ([`server`]) and a
//! small CPU-mining client ([`client`]) for the devnet and tests.

pub mod client;
pub mod job;
pub mod protocol;
pub mod server;
