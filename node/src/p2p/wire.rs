//! The sync protocol's messages, in rexe's canonical encoding. Each request and response is
//! one stream (see `rexe-net`); what does not decode here fails that stream only.

use rexe_chain::bootstrap::{decode_cursor, encode_cursor, GlobalCursor, MAX_HEADERS};
use rexe_chain::encode::{decode_list, encode_list, Decode, DecodeError, Encode, Reader};
use rexe_chain::sync::StateCursor;
use rexe_chain::{BlockHash, Hash256, ShardId};

/// Most hashes in a block locator.
pub const MAX_LOCATOR: usize = 64;
/// Most blocks asked for or sent in one response.
pub const MAX_BLOCKS: u16 = 64;
/// Longest error text sent.
pub const MAX_ERROR: usize = 256;

/// What one node asks another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// The peer's chain: genesis, tip, work.
    Status,
    /// Active blocks after the first hash of `locator` the peer has on its active chain
    /// (genesis when none), at most `max`.
    Blocks {
        /// Our block hashes, newest first, spaced out towards genesis (as Bitcoin's).
        locator: Vec<BlockHash>,
        /// Most blocks wanted.
        max: u16,
    },
    /// Like [`Request::Blocks`], as packages for a node running `tracked` (see
    /// `rexe_chain::partial`).
    Packages {
        /// As for blocks.
        locator: Vec<BlockHash>,
        /// Most packages wanted.
        max: u16,
        /// The shards the asking node runs.
        tracked: Vec<ShardId>,
    },
    /// The relays `origin` sent `target` in `block`, with their proof.
    RelayProof {
        /// The block.
        block: BlockHash,
        /// The chunk that sent them.
        origin: ShardId,
        /// Where they go.
        target: ShardId,
    },
    /// One page of `shard`'s state at `block` from `from` (see `rexe_chain::sync`).
    StatePage {
        /// The shard.
        shard: ShardId,
        /// The block whose state is wanted.
        block: BlockHash,
        /// Where the page starts.
        from: StateCursor,
        /// Rows wanted (the server caps it).
        max_rows: u16,
    },
    /// Active headers with their seals after the first hash of `locator` the peer has on
    /// its active chain (genesis when none), at most `max` (a new node's header sync, see
    /// `rexe_chain::bootstrap`).
    Headers {
        /// As for blocks.
        locator: Vec<BlockHash>,
        /// Most headers wanted (capped at [`MAX_HEADERS`]).
        max: u16,
    },
    /// One page of the global state at `block` from `from` (see `rexe_chain::bootstrap`).
    GlobalPage {
        /// The block whose global state is wanted.
        block: BlockHash,
        /// Where the page starts.
        from: GlobalCursor,
    },
}

/// The answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// Answer to [`Request::Status`].
    Status {
        /// Its genesis block.
        genesis: BlockHash,
        /// Its tip's height.
        height: u64,
        /// Its tip.
        tip: BlockHash,
        /// Its chain's work, big-endian.
        work: [u8; 32],
    },
    /// Encoded blocks, in height order.
    Blocks(Vec<Vec<u8>>),
    /// An encoded relay proof.
    RelayProof(Vec<u8>),
    /// Encoded packages, in height order.
    Packages(Vec<Vec<u8>>),
    /// An encoded state page.
    StatePage(Vec<u8>),
    /// Encoded sealed headers, in height order.
    Headers(Vec<Vec<u8>>),
    /// An encoded global state page.
    GlobalPage(Vec<u8>),
    /// The request was understood but cannot be answered.
    Error(String),
}

fn hash(r: &mut Reader<'_>) -> Result<BlockHash, DecodeError> {
    Ok(BlockHash(Hash256(r.array()?)))
}

impl Encode for Request {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Request::Status => out.push(0),
            Request::Blocks { locator, max } => {
                out.push(1);
                rexe_chain::encode::write_compact_size(out, locator.len() as u64);
                for h in locator {
                    out.extend_from_slice(&h.0 .0);
                }
                max.encode(out);
            }
            Request::Packages {
                locator,
                max,
                tracked,
            } => {
                out.push(3);
                rexe_chain::encode::write_compact_size(out, locator.len() as u64);
                for h in locator {
                    out.extend_from_slice(&h.0 .0);
                }
                max.encode(out);
                rexe_chain::encode::write_compact_size(out, tracked.len() as u64);
                for s in tracked {
                    s.0.encode(out);
                }
            }
            Request::RelayProof {
                block,
                origin,
                target,
            } => {
                out.push(2);
                out.extend_from_slice(&block.0 .0);
                origin.0.encode(out);
                target.0.encode(out);
            }
            Request::StatePage {
                shard,
                block,
                from,
                max_rows,
            } => {
                out.push(4);
                shard.0.encode(out);
                out.extend_from_slice(&block.0 .0);
                from.encode(out);
                max_rows.encode(out);
            }
            Request::Headers { locator, max } => {
                out.push(5);
                rexe_chain::encode::write_compact_size(out, locator.len() as u64);
                for h in locator {
                    out.extend_from_slice(&h.0 .0);
                }
                max.encode(out);
            }
            Request::GlobalPage { block, from } => {
                out.push(6);
                out.extend_from_slice(&block.0 .0);
                encode_cursor(from, out);
            }
        }
    }
}

impl Decode for Request {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match u8::decode(r)? {
            0 => Ok(Request::Status),
            1 => {
                let n = r.length(32)?;
                if n > MAX_LOCATOR {
                    return Err(DecodeError::Invalid("locator too long"));
                }
                let locator = (0..n).map(|_| hash(r)).collect::<Result<_, _>>()?;
                Ok(Request::Blocks {
                    locator,
                    max: u16::decode(r)?,
                })
            }
            3 => {
                let n = r.length(32)?;
                if n > MAX_LOCATOR {
                    return Err(DecodeError::Invalid("locator too long"));
                }
                let locator = (0..n).map(|_| hash(r)).collect::<Result<_, _>>()?;
                let max = u16::decode(r)?;
                let t = r.length(2)?;
                if t > 1 << rexe_chain::shard::MAX_SHARD_ORDER {
                    return Err(DecodeError::Invalid("too many shards"));
                }
                let tracked = (0..t)
                    .map(|_| u16::decode(r).map(ShardId))
                    .collect::<Result<_, _>>()?;
                Ok(Request::Packages {
                    locator,
                    max,
                    tracked,
                })
            }
            2 => Ok(Request::RelayProof {
                block: hash(r)?,
                origin: ShardId(u16::decode(r)?),
                target: ShardId(u16::decode(r)?),
            }),
            4 => Ok(Request::StatePage {
                shard: ShardId(u16::decode(r)?),
                block: hash(r)?,
                from: StateCursor::decode(r)?,
                max_rows: u16::decode(r)?,
            }),
            5 => {
                let n = r.length(32)?;
                if n > MAX_LOCATOR {
                    return Err(DecodeError::Invalid("locator too long"));
                }
                let locator = (0..n).map(|_| hash(r)).collect::<Result<_, _>>()?;
                Ok(Request::Headers {
                    locator,
                    max: u16::decode(r)?,
                })
            }
            6 => Ok(Request::GlobalPage {
                block: hash(r)?,
                from: decode_cursor(r)?,
            }),
            tag => Err(DecodeError::UnknownTag {
                what: "request",
                tag,
            }),
        }
    }
}

impl Encode for Response {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Response::Status {
                genesis,
                height,
                tip,
                work,
            } => {
                out.push(0);
                out.extend_from_slice(&genesis.0 .0);
                height.encode(out);
                out.extend_from_slice(&tip.0 .0);
                out.extend_from_slice(work);
            }
            Response::Blocks(blocks) => {
                out.push(1);
                encode_list(blocks, out);
            }
            Response::RelayProof(p) => {
                out.push(2);
                p.encode(out);
            }
            Response::Packages(p) => {
                out.push(4);
                encode_list(p, out);
            }
            Response::StatePage(p) => {
                out.push(5);
                p.encode(out);
            }
            Response::Headers(h) => {
                out.push(6);
                encode_list(h, out);
            }
            Response::GlobalPage(p) => {
                out.push(7);
                p.encode(out);
            }
            Response::Error(e) => {
                out.push(3);
                let mut cut = e.len().min(MAX_ERROR);
                while !e.is_char_boundary(cut) {
                    cut -= 1;
                }
                e.as_bytes()[..cut].to_vec().encode(out);
            }
        }
    }
}

impl Decode for Response {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match u8::decode(r)? {
            0 => Ok(Response::Status {
                genesis: hash(r)?,
                height: u64::decode(r)?,
                tip: hash(r)?,
                work: r.array()?,
            }),
            1 => {
                let blocks: Vec<Vec<u8>> = decode_list(r, 1)?;
                if blocks.len() > MAX_BLOCKS as usize {
                    return Err(DecodeError::Invalid("too many blocks"));
                }
                Ok(Response::Blocks(blocks))
            }
            2 => Ok(Response::RelayProof(Vec::<u8>::decode(r)?)),
            4 => {
                let p: Vec<Vec<u8>> = decode_list(r, 1)?;
                if p.len() > MAX_BLOCKS as usize {
                    return Err(DecodeError::Invalid("too many packages"));
                }
                Ok(Response::Packages(p))
            }
            5 => Ok(Response::StatePage(Vec::<u8>::decode(r)?)),
            6 => {
                let h: Vec<Vec<u8>> = decode_list(r, 1)?;
                if h.len() > MAX_HEADERS as usize {
                    return Err(DecodeError::Invalid("too many headers"));
                }
                Ok(Response::Headers(h))
            }
            7 => Ok(Response::GlobalPage(Vec::<u8>::decode(r)?)),
            3 => {
                let b = Vec::<u8>::decode(r)?;
                if b.len() > MAX_ERROR {
                    return Err(DecodeError::Invalid("error text too long"));
                }
                String::from_utf8(b)
                    .map(Response::Error)
                    .map_err(|_| DecodeError::Invalid("error text not UTF-8"))
            }
            tag => Err(DecodeError::UnknownTag {
                what: "response",
                tag,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_garbage_is_refused() {
        let h = BlockHash(Hash256([7; 32]));
        for m in [
            Request::Status,
            Request::Blocks {
                locator: vec![h; 3],
                max: 64,
            },
            Request::RelayProof {
                block: h,
                origin: ShardId(1),
                target: ShardId::GLOBAL,
            },
            Request::Packages {
                locator: vec![h],
                max: 8,
                tracked: vec![ShardId(0), ShardId(3)],
            },
            Request::StatePage {
                shard: ShardId(2),
                block: h,
                from: StateCursor::Accounts(Some(rexe_chain::Address([3; 32]))),
                max_rows: 4096,
            },
            Request::Headers {
                locator: vec![h; 2],
                max: 500,
            },
            Request::GlobalPage {
                block: h,
                from: Some((3, b"key".to_vec())),
            },
            Request::GlobalPage {
                block: h,
                from: None,
            },
        ] {
            assert_eq!(Request::from_bytes(&m.to_bytes()).unwrap(), m);
        }
        for m in [
            Response::Status {
                genesis: h,
                height: 9,
                tip: h,
                work: [1; 32],
            },
            Response::Blocks(vec![vec![1, 2], vec![3]]),
            Response::RelayProof(vec![9; 40]),
            Response::Packages(vec![vec![1; 5]]),
            Response::StatePage(vec![2; 70]),
            Response::Headers(vec![vec![4; 90], vec![5; 3]]),
            Response::GlobalPage(vec![6; 12]),
            Response::Error("pruned".into()),
        ] {
            assert_eq!(Response::from_bytes(&m.to_bytes()).unwrap(), m);
        }
        // Unknown tags, trailing bytes, a locator past the cap, truncations.
        assert!(Request::from_bytes(&[9]).is_err());
        assert!(Request::from_bytes(&[0, 0]).is_err());
        let mut long = vec![1, 65];
        long.extend(std::iter::repeat_n(0u8, 65 * 32 + 2));
        assert!(Request::from_bytes(&long).is_err());
        let ok = Request::Blocks {
            locator: vec![h; 2],
            max: 1,
        }
        .to_bytes();
        for cut in 0..ok.len() {
            assert!(Request::from_bytes(&ok[..cut]).is_err());
        }
        // An error text is cut to the cap on a character boundary.
        let e = Response::Error("é".repeat(200)).to_bytes();
        match Response::from_bytes(&e).unwrap() {
            Response::Error(s) => assert!(s.len() <= MAX_ERROR && s.starts_with('é')),
            other => panic!("{other:?}"),
        }
    }
    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2000, ..Default::default() })]
        /// The `p2p_wire` fuzz target's property: any bytes a peer sends decode to a request
        /// or response without panicking, and whatever decodes is canonical (re-encodes to
        /// exactly those bytes). Arbitrary bytes, and valid messages with bytes flipped or cut.
        #[test]
        fn wire_messages_never_panic_and_are_canonical(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            flips in proptest::collection::vec((proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>()), 0..4),
            cut in proptest::prelude::any::<usize>(),
        ) {
            check(&data);
            let h = BlockHash(Hash256([3; 32]));
            let valid = [
                Request::Headers { locator: vec![h; 3], max: 500 }.to_bytes(),
                Request::GlobalPage { block: h, from: Some((2, vec![1, 2])) }.to_bytes(),
                Request::Packages { locator: vec![h], max: 4, tracked: vec![ShardId(1)] }.to_bytes(),
                Response::Headers(vec![vec![1; 40], vec![2; 7]]).to_bytes(),
                Response::GlobalPage(vec![9; 30]).to_bytes(),
            ];
            for mut m in valid {
                for (at, x) in &flips {
                    let i = at % m.len();
                    m[i] ^= x;
                }
                m.truncate(cut % (m.len() + 1));
                check(&m);
            }
        }
    }

    fn check(data: &[u8]) {
        if let Ok(r) = Request::from_bytes(data) {
            assert_eq!(r.to_bytes(), data, "canonical request");
        }
        if let Ok(r) = Response::from_bytes(data) {
            assert_eq!(r.to_bytes(), data, "canonical response");
        }
    }
}
