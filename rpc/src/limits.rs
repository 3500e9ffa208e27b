//! The limits one server enforces on its clients.

use std::time::Duration;

/// What one server allows each client and all clients together. Every field is
/// configurable from the command line of the service that owns the port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Open connections in total; more are closed on accept.
    pub max_connections: usize,
    /// Open connections from one IP address.
    pub max_per_ip: usize,
    /// A connection that sends no complete request for this long is closed (for HTTP: the
    /// whole request head must arrive within it, which also ends slowloris clients).
    pub idle_timeout: Duration,
    /// A reply the client has not taken within this long marks a slow reader: disconnected.
    pub write_timeout: Duration,
    /// Largest request in bytes (an HTTP body, a protocol line).
    pub max_request: usize,
    /// Most requests in one JSON-RPC batch.
    pub max_batch: usize,
}

impl Limits {
    /// Defaults for an HTTP JSON-RPC port (bitcoind's `-rpcservertimeout` is 30 s too).
    pub fn http() -> Limits {
        Limits {
            max_connections: 256,
            max_per_ip: 128,
            idle_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            max_request: 8 * 1024 * 1024,
            max_batch: 1000,
        }
    }

    /// Defaults for a long-lived line protocol (Electrum, Stratum): clients stay connected
    /// and idle between notifications, so the idle timeout is long.
    pub fn line() -> Limits {
        Limits {
            max_connections: 512,
            max_per_ip: 64,
            idle_timeout: Duration::from_secs(600),
            write_timeout: Duration::from_secs(30),
            max_request: 1024 * 1024,
            max_batch: 100,
        }
    }
}
