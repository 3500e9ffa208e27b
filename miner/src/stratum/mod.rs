//! Stratum v1: jobs ([`job`]), typed messages ([`protocol`]), workers' payout rules
//! ([`payout`]), the server ([`server`]) and a
//! small CPU-mining client ([`client`]) for the devnet and tests.

pub mod client;
pub mod job;
pub mod payout;
pub mod protocol;
pub mod server;
