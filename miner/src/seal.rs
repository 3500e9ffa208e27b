//! The AuxPoW seal of L2 blocks: the chain's [`Sealer`] implemented with [`AuxPow`].
//! A block is sealed when an AuxPoW commits to its hash for rexe's chain id and the parent
//! header's hash meets the block's target. The parent need not meet Bitcoin's target nor be
//! on Bitcoin's best chain: stale and premature work count.

use bitcoin::hashes::Hash as _;
use rexe_chain::seal::{SealError, Sealer};
use rexe_chain::Header;

use crate::auxpow::{AuxPow, ChainId};

/// Verifies AuxPoW seals for one chain id.
#[derive(Clone, Copy, Debug)]
pub struct AuxPowSealer {
    /// The chain id the commitment must use.
    pub chain_id: ChainId,
}

impl Default for AuxPowSealer {
    fn default() -> Self {
        AuxPowSealer {
            chain_id: ChainId::REXE,
        }
    }
}

/// The L2 block hash as AuxPoW's `hashAuxBlock` (internal byte order).
pub fn aux_hash(header: &Header) -> [u8; 32] {
    header.hash().to_byte_array()
}

impl Sealer for AuxPowSealer {
    fn verify(&self, header: &Header, seal: &[u8]) -> Result<(), SealError> {
        let aux = AuxPow::decode(seal).map_err(|e| SealError(e.to_string()))?;
        aux.check(aux_hash(header), self.chain_id)
            .map_err(|e| SealError(e.to_string()))?;
        aux.check_pow(header.target())
            .map_err(|e| SealError(e.to_string()))
    }

    fn bitcoin_parent(&self, seal: &[u8]) -> Option<[u8; 32]> {
        let aux = AuxPow::decode(seal).ok()?;
        Some(aux.parent.block_hash().to_byte_array())
    }
}
