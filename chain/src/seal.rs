//! Sealing: the proof of work that makes a header valid. A trait, so that consensus code does
//! not depend on how work is proven: the merge-mining crate supplies the AuxPoW sealer; the
//! [`TestSealer`] here stands in for tests and benchmarks.

use bitcoin::pow::Target;
use thiserror::Error;

use crate::block::Header;
use crate::hash::sha256d;

/// Why a seal is rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("bad seal: {0}")]
pub struct SealError(pub String);

/// Checks the seal of a header.
pub trait Sealer: Send + Sync {
    /// Accepts the seal when it proves `header.bits` worth of work over `header.hash()`.
    fn verify(&self, header: &Header, seal: &[u8]) -> Result<(), SealError>;
    /// The Bitcoin block whose work sealed the header (internal byte order), for a seal
    /// that names one (AuxPoW: the parent block). Called on seals that verified. It anchors
    /// the L2 block once that Bitcoin block is buried on the tracked Bitcoin chain
    /// (see [`crate::Chain::anchor`]).
    fn bitcoin_parent(&self, seal: &[u8]) -> Option<[u8; 32]> {
        let _ = seal;
        None
    }
}

/// A stand-in proof of work: the seal is an 8-byte nonce and
/// `SHA256d(block_hash || nonce)` must meet the header's target. Only for tests and benches.
#[derive(Clone, Copy, Debug, Default)]
pub struct TestSealer;

fn meets(header: &Header, nonce: u64) -> bool {
    let mut buf = [0u8; 40];
    buf[..32].copy_from_slice(&header.hash().0 .0);
    buf[32..].copy_from_slice(&nonce.to_le_bytes());
    let h = sha256d(&buf);
    let target: Target = header.target();
    target.is_met_by(bitcoin::BlockHash::from_byte_array(h.0))
}

use bitcoin::hashes::Hash as _;

impl TestSealer {
    /// Grinds a nonce for `header` (fast at regtest difficulty).
    pub fn seal(header: &Header) -> Vec<u8> {
        let mut n = 0u64;
        while !meets(header, n) {
            n += 1;
        }
        n.to_le_bytes().to_vec()
    }
}

impl Sealer for TestSealer {
    fn verify(&self, header: &Header, seal: &[u8]) -> Result<(), SealError> {
        let nonce: [u8; 8] = seal
            .try_into()
            .map_err(|_| SealError(format!("test seal must be 8 bytes, got {}", seal.len())))?;
        if meets(header, u64::from_le_bytes(nonce)) {
            Ok(())
        } else {
            Err(SealError("hash above target".into()))
        }
    }
}
