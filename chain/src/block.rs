//! Headers and blocks. One header seals all shards: its roots are Merkle roots over the
//! per-shard roots. Block hash = SHA-256d(header encoding), the value a Bitcoin coinbase
//! commits to when merge mining.

use bitcoin::pow::{CompactTarget, Target, Work};
use serde::Serialize;

use crate::address::Address;
use crate::encode::{decode_list, encode_list, Decode, DecodeError, Encode, Reader};
use crate::hash::{merkle_root, sha256d, BlockHash, Hash256};
use crate::shard::ShardOrder;
use crate::tx::SignedTx;

/// Encoded header size in bytes.
pub const HEADER_SIZE: usize = 4 + 8 + 32 + 8 + 4 + 1 + 32 + 32 * 3;

/// An L2 block header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Header {
    /// Format version (1).
    pub version: u32,
    /// Height (genesis = 0).
    pub height: u64,
    /// Parent block hash.
    pub prev: BlockHash,
    /// Unix time, seconds.
    pub time: u64,
    /// Compact target the seal must meet.
    pub bits: u32,
    /// Shard order of the body.
    pub order: ShardOrder,
    /// Who receives subsidy and fees.
    pub miner: Address,
    /// Merkle root over per-shard roots of wtxids.
    pub tx_root: Hash256,
    /// Merkle root over the chunks' outbox roots (shards in order, then the global lane):
    /// the relays each chunk sends to later blocks or other partitions, keyed by target (see
    /// [`crate::outbox`]).
    pub outbox_root: Hash256,
    /// Merkle root over per-shard state commitments after the block.
    pub state_root: Hash256,
}

impl Encode for Header {
    fn encode(&self, out: &mut Vec<u8>) {
        self.version.encode(out);
        self.height.encode(out);
        self.prev.0 .0.encode(out);
        self.time.encode(out);
        self.bits.encode(out);
        self.order.get().encode(out);
        self.miner.0.encode(out);
        self.tx_root.0.encode(out);
        self.outbox_root.0.encode(out);
        self.state_root.0.encode(out);
    }
}

impl Decode for Header {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Header {
            version: u32::decode(r)?,
            height: u64::decode(r)?,
            prev: BlockHash(Hash256(r.array()?)),
            time: u64::decode(r)?,
            bits: u32::decode(r)?,
            order: ShardOrder::new(u8::decode(r)?)
                .map_err(|_| DecodeError::Invalid("shard order"))?,
            miner: Address(r.array()?),
            tx_root: Hash256(r.array()?),
            outbox_root: Hash256(r.array()?),
            state_root: Hash256(r.array()?),
        })
    }
}

impl Header {
    /// The block hash.
    pub fn hash(&self) -> BlockHash {
        BlockHash(sha256d(&self.to_bytes()))
    }

    /// The target `bits` encodes.
    pub fn target(&self) -> Target {
        Target::from_compact(CompactTarget::from_consensus(self.bits))
    }

    /// Expected hashes to meet `bits`: what fork choice sums.
    pub fn work(&self) -> Work {
        self.target().to_work()
    }
}

/// A block: header, one transaction list per shard, and the seal (AuxPoW bytes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Block {
    /// The header.
    pub header: Header,
    /// `txs[s]` runs on shard `s`; `len == 2^order`.
    pub txs: Vec<Vec<SignedTx>>,
    /// Proof of work over the header hash.
    #[serde(with = "hex_bytes")]
    pub seal: Vec<u8>,
}

mod hex_bytes {
    use bitcoin::hex::DisplayHex;

    pub fn serialize<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&b.to_lower_hex_string())
    }
}

/// Minimal encoded transaction size, to bound list lengths while decoding.
const MIN_TX_SIZE: usize = 1 + 32 + 8 * 5 + 1 + 64;

impl Encode for Block {
    fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(HEADER_SIZE + self.tx_count() * (MIN_TX_SIZE + 41) + self.seal.len() + 16);
        self.header.encode(out);
        for shard in &self.txs {
            encode_list(shard, out);
        }
        self.seal.encode(out);
    }
}

impl Decode for Block {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let header = Header::decode(r)?;
        let mut txs = Vec::with_capacity(header.order.shard_count());
        for _ in 0..header.order.shard_count() {
            txs.push(decode_list(r, MIN_TX_SIZE)?);
        }
        let seal = Vec::<u8>::decode(r)?;
        Ok(Block { header, txs, seal })
    }
}

/// Merkle root of one shard's transactions (by wtxid: signatures are committed too).
pub fn shard_tx_root(txs: &[SignedTx]) -> Hash256 {
    let ids: Vec<Hash256> = txs.iter().map(SignedTx::wtxid).collect();
    merkle_root(&ids)
}

impl Block {
    /// The header's `tx_root` recomputed from the body.
    pub fn compute_tx_root(&self) -> Hash256 {
        self.compute_tx_root_threads(1)
    }

    /// [`Block::compute_tx_root`] with the shard roots hashed on up to `threads` threads.
    pub fn compute_tx_root_threads(&self, threads: usize) -> Hash256 {
        let n = self.txs.len();
        let workers = threads.clamp(1, n.max(1));
        let roots: Vec<Hash256> = if workers == 1 || self.tx_count() < 1024 {
            self.txs.iter().map(|s| shard_tx_root(s)).collect()
        } else {
            let per = n.div_ceil(workers);
            std::thread::scope(|sc| {
                let handles: Vec<_> = self
                    .txs
                    .chunks(per)
                    .map(|c| {
                        sc.spawn(move || c.iter().map(|s| shard_tx_root(s)).collect::<Vec<_>>())
                    })
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| h.join().expect("merkle worker does not panic"))
                    .collect()
            })
        };
        merkle_root(&roots)
    }

    /// Total transactions.
    pub fn tx_count(&self) -> usize {
        self.txs.iter().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            version: 1,
            height: 7,
            prev: BlockHash::default(),
            time: 1,
            bits: 0x207f_ffff,
            order: ShardOrder::new(1).unwrap(),
            miner: Address([2; 32]),
            tx_root: Hash256([3; 32]),
            outbox_root: Hash256([4; 32]),
            state_root: Hash256([5; 32]),
        }
    }

    #[test]
    fn header_encoding_has_fixed_size_and_roundtrips() {
        let h = header();
        let b = h.to_bytes();
        assert_eq!(b.len(), HEADER_SIZE);
        assert_eq!(Header::from_bytes(&b).unwrap(), h);
    }

    #[test]
    fn block_decoding_rejects_bad_order_and_garbage() {
        let mut b = Block {
            header: header(),
            txs: vec![vec![], vec![]],
            seal: vec![1, 2, 3],
        }
        .to_bytes();
        assert!(Block::from_bytes(&b).is_ok());
        b[4 + 8 + 32 + 8 + 4] = 99; // order byte
        assert!(Block::from_bytes(&b).is_err());
        assert!(Block::from_bytes(&[0xff; 300]).is_err());
    }
}

#[cfg(test)]
mod fuzz_like {
    use super::*;
    use crate::relay::Relay;
    use crate::tx::SignedTx;
    use proptest::prelude::*;

    fn roundtrip<T: Decode + Encode>(data: &[u8]) {
        if let Ok(v) = T::from_bytes(data) {
            assert_eq!(v.to_bytes(), data, "canonical encoding");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
        /// The same property as the `chain_decode` fuzz target, run in CI.
        #[test]
        fn decoders_never_panic_and_are_canonical(data in prop::collection::vec(any::<u8>(), 0..600)) {
            roundtrip::<SignedTx>(&data);
            roundtrip::<Header>(&data);
            roundtrip::<Block>(&data);
            roundtrip::<Relay>(&data);
            roundtrip::<crate::proof::RelayProof>(&data);
            roundtrip::<crate::sync::StatePage>(&data);
            roundtrip::<crate::sync::SyncProgress>(&data);
            roundtrip::<crate::bootstrap::SealedHeader>(&data);
            roundtrip::<crate::bootstrap::GlobalPage>(&data);
            if let Ok(p) = crate::sync::StatePage::from_bytes(&data) {
                let _ = p.check_shape();
            }
            if let Ok(p) = crate::bootstrap::GlobalPage::from_bytes(&data) {
                let _ = p.check_shape();
                let _ = p.next();
            }
        }

        /// Mutations of a valid block (with a transaction) decode or fail cleanly.
        #[test]
        fn mutated_blocks_never_panic(flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..8), cut in any::<usize>()) {
            let signer = crate::address::Signer::from_seed(b"fuzz");
            let tx = crate::tx::Tx {
                network: crate::params::Network::Regtest,
                from: signer.address(),
                nonce: 1,
                max_fee: crate::fee::GasPrice::from_msat(5),
                max_tip: crate::fee::GasPrice::from_msat(5),
                gas_limit: crate::tx::TRANSFER_GAS,
                expiry_height: 9,
                payload: crate::tx::Payload::Transfer { to: signer.address(), amount: crate::amount::Amount::from_sat(7) },
            }.sign(&signer);
            let block = Block {
                header: Header {
                    version: 1, height: 1, prev: BlockHash::default(), time: 5, bits: 0x207f_ffff,
                    order: ShardOrder::new(1).unwrap(), miner: Address([1; 32]),
                    tx_root: Hash256::ZERO, outbox_root: Hash256::ZERO, state_root: Hash256::ZERO,
                },
                txs: vec![vec![tx], vec![]],
                seal: vec![1, 2, 3],
            };
            let mut bytes = block.to_bytes();
            for (i, b) in flips {
                let n = bytes.len();
                bytes[i % n] ^= b;
            }
            let n = bytes.len();
            bytes.truncate(n - cut % n);
            roundtrip::<Block>(&bytes);
        }
    }
}
