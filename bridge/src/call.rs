//! The peg's call arguments: what a `Payload::Call { contract: SystemId::PEG, value, data }`
//! carries in `data`, in one canonical binary encoding (tag byte, then fields; integers
//! little-endian, byte strings and lists with a Bitcoin compact-size length; Bitcoin headers
//! and transactions in Bitcoin's consensus encoding).
//!
//! | tag | call            | fields                                                        | value        |
//! |-----|-----------------|---------------------------------------------------------------|--------------|
//! | 0   | `SubmitHeaders` | list of 80-byte headers                                       | 0            |
//! | 1   | `Order`         | btc_script, min_fill u64, fee_bps u16, expiry_height u64      | the escrow   |
//! | 2   | `Take`          | order_id u64, amount u64, rx_recipient 32 bytes               | the bond     |
//! | 3   | `Cancel`        | order_id u64                                                  | 0            |
//! | 4   | `Claim`         | raw_tx, block_hash 32, branch (list of 32), position u32, coinbase_tx, coinbase_branch (list of 32), match ids (list of u64) | 0 |

use bitcoin::block::Header as BtcHeader;
use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, ScriptBuf, TxMerkleNode};
use rexe_chain::encode::{write_compact_size, Decode, DecodeError, Encode, Reader};

use crate::peg::{L2Address, MatchId, OrderId, PaymentProof, Sats};

/// Most headers one call may submit.
pub const MAX_HEADERS_PER_CALL: usize = 2_000;
/// Most matches one claim may name.
pub const MAX_MATCHES_PER_CLAIM: usize = 256;

/// A call to the peg contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PegCall {
    /// Extend the tracked Bitcoin header chain.
    SubmitHeaders(Vec<BtcHeader>),
    /// Post a peg-out order; the call's value is the escrowed amount.
    Order {
        /// Where the maker wants BTC.
        btc_script: ScriptBuf,
        /// Smallest take allowed.
        min_fill: Sats,
        /// Maker's fee in basis points.
        fee_bps: u16,
        /// L2 height from which the order is expired.
        expiry_height: u64,
    },
    /// Take part of an order; the call's value is the bond.
    Take {
        /// The order.
        order_id: OrderId,
        /// rxBTC taken (BTC owed = amount minus the maker's fee).
        amount: Sats,
        /// Who receives the rxBTC on claim.
        rx_recipient: L2Address,
    },
    /// Cancel an order's unmatched rest (maker only).
    Cancel {
        /// The order.
        order_id: OrderId,
    },
    /// Prove a Bitcoin payment of matches.
    Claim {
        /// The paying transaction, consensus-encoded.
        raw_tx: Vec<u8>,
        /// The block it is in.
        block_hash: BlockHash,
        /// Merkle branch from the txid to the block's root.
        branch: Vec<TxMerkleNode>,
        /// The transaction's position in the block.
        position: u32,
        /// The block's coinbase transaction, consensus-encoded.
        coinbase_tx: Vec<u8>,
        /// The coinbase's Merkle branch (index 0): pins the tree's depth.
        coinbase_branch: Vec<TxMerkleNode>,
        /// The matches it pays.
        match_ids: Vec<MatchId>,
    },
}

/// Most levels a Merkle branch can have.
const MAX_BRANCH: usize = 32;

fn write_branch(out: &mut Vec<u8>, branch: &[TxMerkleNode]) {
    write_compact_size(out, branch.len() as u64);
    for n in branch {
        n.to_byte_array().encode(out);
    }
}

fn read_branch(r: &mut Reader<'_>) -> Result<Vec<TxMerkleNode>, DecodeError> {
    let n = r.length(32)?;
    if n > MAX_BRANCH {
        return Err(DecodeError::Invalid("merkle branch above 32 levels"));
    }
    let mut branch = Vec::with_capacity(n);
    for _ in 0..n {
        branch.push(TxMerkleNode::from_byte_array(r.array()?));
    }
    Ok(branch)
}

const TAG_HEADERS: u8 = 0;
const TAG_ORDER: u8 = 1;
const TAG_TAKE: u8 = 2;
const TAG_CANCEL: u8 = 3;
const TAG_CLAIM: u8 = 4;

impl PegCall {
    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            PegCall::SubmitHeaders(hs) => {
                out.push(TAG_HEADERS);
                write_compact_size(&mut out, hs.len() as u64);
                for h in hs {
                    out.extend_from_slice(&bitcoin::consensus::serialize(h));
                }
            }
            PegCall::Order {
                btc_script,
                min_fill,
                fee_bps,
                expiry_height,
            } => {
                out.push(TAG_ORDER);
                btc_script.to_bytes().encode(&mut out);
                min_fill.0.encode(&mut out);
                fee_bps.encode(&mut out);
                expiry_height.encode(&mut out);
            }
            PegCall::Take {
                order_id,
                amount,
                rx_recipient,
            } => {
                out.push(TAG_TAKE);
                order_id.0.encode(&mut out);
                amount.0.encode(&mut out);
                rx_recipient.0.encode(&mut out);
            }
            PegCall::Cancel { order_id } => {
                out.push(TAG_CANCEL);
                order_id.0.encode(&mut out);
            }
            PegCall::Claim {
                raw_tx,
                block_hash,
                branch,
                position,
                coinbase_tx,
                coinbase_branch,
                match_ids,
            } => {
                out.push(TAG_CLAIM);
                raw_tx.encode(&mut out);
                block_hash.to_byte_array().encode(&mut out);
                write_branch(&mut out, branch);
                position.encode(&mut out);
                coinbase_tx.encode(&mut out);
                write_branch(&mut out, coinbase_branch);
                write_compact_size(&mut out, match_ids.len() as u64);
                for id in match_ids {
                    id.0.encode(&mut out);
                }
            }
        }
        out
    }

    /// Decodes untrusted bytes (never panics; trailing bytes are an error).
    pub fn decode(bytes: &[u8]) -> Result<PegCall, DecodeError> {
        let mut r = Reader::new(bytes);
        let call = match u8::decode(&mut r)? {
            TAG_HEADERS => {
                let n = r.length(80)?;
                if n > MAX_HEADERS_PER_CALL {
                    return Err(DecodeError::Invalid("header count above 2,000"));
                }
                let mut hs = Vec::with_capacity(n);
                for _ in 0..n {
                    let raw = r.take(80)?;
                    let h: BtcHeader = bitcoin::consensus::deserialize(raw)
                        .map_err(|_| DecodeError::Invalid("bitcoin header"))?;
                    hs.push(h);
                }
                PegCall::SubmitHeaders(hs)
            }
            TAG_ORDER => PegCall::Order {
                btc_script: ScriptBuf::from_bytes(Vec::<u8>::decode(&mut r)?),
                min_fill: Sats(u64::decode(&mut r)?),
                fee_bps: u16::decode(&mut r)?,
                expiry_height: u64::decode(&mut r)?,
            },
            TAG_TAKE => PegCall::Take {
                order_id: OrderId(u64::decode(&mut r)?),
                amount: Sats(u64::decode(&mut r)?),
                rx_recipient: L2Address(r.array()?),
            },
            TAG_CANCEL => PegCall::Cancel {
                order_id: OrderId(u64::decode(&mut r)?),
            },
            TAG_CLAIM => {
                let raw_tx = Vec::<u8>::decode(&mut r)?;
                let block_hash = BlockHash::from_byte_array(r.array()?);
                let branch = read_branch(&mut r)?;
                let position = u32::decode(&mut r)?;
                let coinbase_tx = Vec::<u8>::decode(&mut r)?;
                let coinbase_branch = read_branch(&mut r)?;
                let n = r.length(8)?;
                if n > MAX_MATCHES_PER_CLAIM {
                    return Err(DecodeError::Invalid("match count above 256"));
                }
                let mut match_ids = Vec::with_capacity(n);
                for _ in 0..n {
                    match_ids.push(MatchId(u64::decode(&mut r)?));
                }
                PegCall::Claim {
                    raw_tx,
                    block_hash,
                    branch,
                    position,
                    coinbase_tx,
                    coinbase_branch,
                    match_ids,
                }
            }
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "peg call",
                    tag,
                })
            }
        };
        r.finish()?;
        Ok(call)
    }

    /// A claim's payment proof (`None` for other calls).
    pub fn proof(&self) -> Option<PaymentProof<'_>> {
        match self {
            PegCall::Claim {
                raw_tx,
                block_hash,
                branch,
                position,
                coinbase_tx,
                coinbase_branch,
                ..
            } => Some(PaymentProof {
                raw_tx,
                block_hash: *block_hash,
                branch,
                position: *position,
                coinbase_tx,
                coinbase_branch,
            }),
            _ => None,
        }
    }

    /// A short name for logs and receipts.
    pub fn name(&self) -> &'static str {
        match self {
            PegCall::SubmitHeaders(_) => "submit_headers",
            PegCall::Order { .. } => "order",
            PegCall::Take { .. } => "take",
            PegCall::Cancel { .. } => "cancel",
            PegCall::Claim { .. } => "claim",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<PegCall> {
        let g = bitcoin::constants::genesis_block(bitcoin::Network::Regtest).header;
        vec![
            PegCall::SubmitHeaders(vec![g, g]),
            PegCall::Order {
                btc_script: ScriptBuf::from_bytes(vec![0x00, 0x14, 1, 2, 3]),
                min_fill: Sats(5),
                fee_bps: 30,
                expiry_height: 99,
            },
            PegCall::Take {
                order_id: OrderId(7),
                amount: Sats(10_000),
                rx_recipient: L2Address([9; 32]),
            },
            PegCall::Cancel {
                order_id: OrderId(3),
            },
            PegCall::Claim {
                raw_tx: vec![1, 2, 3],
                block_hash: g.block_hash(),
                branch: vec![TxMerkleNode::all_zeros()],
                position: 4,
                coinbase_tx: vec![4, 5],
                coinbase_branch: vec![TxMerkleNode::all_zeros(); 2],
                match_ids: vec![MatchId(1), MatchId(2)],
            },
        ]
    }

    #[test]
    fn every_call_roundtrips_and_truncations_fail() {
        for c in samples() {
            let b = c.encode();
            assert_eq!(PegCall::decode(&b).unwrap(), c);
            for n in 0..b.len() {
                assert!(
                    PegCall::decode(&b[..n]).is_err(),
                    "{} truncated at {n}",
                    c.name()
                );
            }
            let mut longer = b.clone();
            longer.push(0);
            assert!(PegCall::decode(&longer).is_err());
        }
    }

    #[test]
    fn hostile_counts_are_refused_before_allocating() {
        let mut b = vec![TAG_HEADERS];
        write_compact_size(&mut b, u64::MAX);
        assert!(PegCall::decode(&b).is_err());
        assert!(PegCall::decode(&[42]).is_err());
    }
}
