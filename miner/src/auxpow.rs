//! Namecoin-compatible AuxPoW: the proof that a SHA-256d "parent" header (a Bitcoin block,
//! stale block or pool share) commits to an L2 block.
//!
//! Byte for byte as Namecoin Core's `src/auxpow.{h,cpp}` (`CAuxPow`, `CAuxPow::check`,
//! `getExpectedIndex`, `CheckMerkleBranch`) and the caller's "parent has the auxpow flag"
//! rule; see `shared/MERGED_MINING.md`. Serialized form:
//!
//! ```text
//! coinbase tx | hashBlock (32, ignored) | coinbase branch | nIndex (i32) |
//! chain branch (<= 30) | nChainIndex (i32) | parent header (80)
//! ```
//!
//! Where Namecoin Core (2026 master) and Dogecoin Core differ, rexe accepts only what both
//! accept, and reports it as follows:
//! - `nIndex != 0`: Dogecoin rejects ("AuxPow is not a generate"); Namecoin reads the field
//!   into a throw-away and always proves the coinbase at leaf 0. rexe rejects it first, as
//!   Dogecoin.
//! - A parent with the auxpow flag: Namecoin rejects it in `CheckProofOfWork`
//!   (`validation.cpp`, before `CAuxPow::check` and before the parent PoW); Dogecoin has no
//!   such rule. rexe rejects it, after the chain-id rule.
//! - Parent PoW: Namecoin checks it before `CAuxPow::check`, Dogecoin after; here it is the
//!   separate [`AuxPow::check_pow`]. Verdicts do not depend on the order, only the error
//!   reported for data that breaks several rules.
//! - Namecoin writes the coinbase with its witness (`TX_WITH_WITNESS`); [`AuxPow::encode`]
//!   writes it without (the txid, hence every rule, is unchanged). Both forms decode.
//! - Branch counts above 64 are malformed here; Namecoin reads up to `MAX_SIZE` (rejecting a
//!   chain branch above 30 in `check`). A coinbase branch that long cannot come from a real
//!   parent block (2^64 transactions), though Namecoin would accept a header built over one.

use bitcoin::block::Header as BtcHeader;
use bitcoin::consensus::{Decodable, Encodable};
use bitcoin::hashes::{sha256d, Hash};
use bitcoin::hex::FromHex;
use bitcoin::pow::Target;
use bitcoin::{Transaction, VarInt};
use thiserror::Error;

/// `fa be 6d 6d`: the merged-mining magic before the aux merkle root in the coinbase.
pub const MERGED_MINING_HEADER: [u8; 4] = [0xfa, 0xbe, b'm', b'm'];
/// Longest chain merkle branch Namecoin accepts.
pub const MAX_CHAIN_BRANCH: usize = 30;
/// Version bit marking a merge-mined header.
pub const VERSION_AUXPOW: i32 = 1 << 8;

/// A merge-mining chain id (the high 16 bits of a merge-mined header's version).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChainId(pub u32);

impl ChainId {
    /// Namecoin.
    pub const NAMECOIN: ChainId = ChainId(0x0001);
    /// Dogecoin.
    pub const DOGECOIN: ChainId = ChainId(0x0062);
    /// rexe: `0x0b42`. Below `0x2000`, so no Bitcoin header with BIP9 version bits or
    /// version rolling can read as it, and not used by a merge-mined chain we know of
    /// (Namecoin 0x0001, Huntercoin 0x0006, Myriadcoin 0x005a, Dogecoin 0x0062,
    /// Xaya 0x0725, Syscoin 0x1000, Elastos 0x0539).
    pub const REXE: ChainId = ChainId(0x0b42);

    /// The chain id a header's version encodes.
    pub fn of_version(version: i32) -> ChainId {
        ChainId((version as u32) >> 16)
    }
}

/// Why an AuxPoW is rejected. One variant per rule, in the order they are checked.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AuxPowError {
    /// Bytes do not decode.
    #[error("malformed auxpow: {0}")]
    Malformed(String),
    /// The coinbase is not leaf 0 of the parent's merkle tree.
    #[error("AuxPow is not a generate (coinbase index {0} != 0)")]
    NotAGenerate(i32),
    /// The parent header carries our own chain id.
    #[error("Aux POW parent has our chain ID")]
    ParentHasOurChainId,
    /// The parent header has the auxpow version flag.
    #[error("auxpow parent block has auxpow version")]
    ParentIsAuxpow,
    /// More than 30 levels in the aux merkle tree.
    #[error("Aux POW chain merkle branch too long ({0} > 30)")]
    ChainBranchTooLong(usize),
    /// The coinbase branch does not lead to the parent's merkle root.
    #[error("Aux POW merkle root incorrect")]
    BadParentMerkleRoot,
    /// The coinbase has no input.
    #[error("Aux POW coinbase has no inputs")]
    NoCoinbaseInput,
    /// The aux merkle root is not in the coinbase scriptSig.
    #[error("Aux POW missing chain merkle root in parent coinbase")]
    MissingRoot,
    /// The magic occurs more than once.
    #[error("Multiple merged mining headers in coinbase")]
    MultipleHeaders,
    /// The magic is not right before the root.
    #[error("Merged mining header is not just before chain merkle root")]
    HeaderNotBeforeRoot,
    /// Legacy (no magic) root after byte 20.
    #[error("Aux POW chain merkle root must start in the first 20 bytes of the parent coinbase")]
    LegacyRootTooLate,
    /// Fewer than 8 bytes after the root.
    #[error("Aux POW missing chain merkle tree size and nonce in parent coinbase")]
    MissingSizeAndNonce,
    /// `size != 1 << branch length`.
    #[error("Aux POW merkle branch size does not match parent coinbase")]
    SizeMismatch,
    /// The chain index is not the slot the nonce and chain id give.
    #[error("Aux POW wrong index (expected {expected}, got {got})")]
    WrongIndex {
        /// Slot from nonce and chain id.
        expected: u32,
        /// `nChainIndex`.
        got: i32,
    },
    /// The parent header's hash does not meet the target being sealed.
    #[error("parent hash {hash} above target")]
    HighHash {
        /// The parent's hash.
        hash: bitcoin::BlockHash,
    },
}

/// An AuxPoW.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuxPow {
    /// The parent's coinbase transaction.
    pub coinbase_tx: Transaction,
    /// `hashBlock`: unused by the rules. Old Namecoin data carries the parent's hash here;
    /// rexe writes zeros and keeps what it reads so re-encoding is exact.
    pub hash_block: [u8; 32],
    /// Merkle branch from the coinbase txid to the parent's merkle root.
    pub coinbase_branch: Vec<[u8; 32]>,
    /// Position of the coinbase (must be 0).
    pub coinbase_index: i32,
    /// Merkle branch from the aux block hash to the aux merkle root.
    pub chain_branch: Vec<[u8; 32]>,
    /// Leaf index of this chain in the aux tree.
    pub chain_index: i32,
    /// The parent header.
    pub parent: BtcHeader,
}

fn malformed(e: impl ToString) -> AuxPowError {
    AuxPowError::Malformed(e.to_string())
}

fn read_branch<R: bitcoin::io::BufRead + ?Sized>(
    r: &mut R,
    max: usize,
) -> Result<Vec<[u8; 32]>, AuxPowError> {
    let n = VarInt::consensus_decode(r).map_err(malformed)?.0;
    if n as usize > max {
        return Err(malformed(format!("merkle branch of {n} hashes")));
    }
    (0..n)
        .map(|_| <[u8; 32]>::consensus_decode(r).map_err(malformed))
        .collect()
}

fn write_branch(out: &mut Vec<u8>, b: &[[u8; 32]]) {
    VarInt(b.len() as u64)
        .consensus_encode(out)
        .expect("vec write");
    for h in b {
        out.extend_from_slice(h);
    }
}

/// Namecoin's `CheckMerkleBranch`: bit `i` of `index` says whether the running hash is
/// the right (1) or left (0) node at level `i`. As in Namecoin, index `-1` gives the all-zero
/// hash.
pub fn merkle_branch_root(leaf: [u8; 32], branch: &[[u8; 32]], index: i32) -> [u8; 32] {
    if index == -1 {
        return [0; 32];
    }
    rexe_merkle::root_from_branch(leaf, branch, i64::from(index))
}

/// Namecoin's `getExpectedIndex`: the slot of `chain_id` in an aux tree of height `h`
/// for `nonce`.
pub fn expected_index(nonce: u32, chain_id: ChainId, h: u32) -> u32 {
    let mut rand = nonce;
    rand = rand.wrapping_mul(1_103_515_245).wrapping_add(12_345);
    rand = rand.wrapping_add(chain_id.0);
    rand = rand.wrapping_mul(1_103_515_245).wrapping_add(12_345);
    if h >= 32 {
        return rand;
    }
    rand % (1u32 << h)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl AuxPow {
    /// The AuxPoW of `chain_id`'s leaf in `tree` for a parent block given by its parts: the
    /// coinbase (kept without its witness, which Namecoin's encoding drops; the txid is the
    /// same), the coinbase's merkle branch (leaf 0) and the header.
    pub fn from_parts(
        coinbase: &Transaction,
        coinbase_branch: &[[u8; 32]],
        parent: BtcHeader,
        tree: &AuxTree,
        chain_id: ChainId,
    ) -> AuxPow {
        let mut coinbase_tx = coinbase.clone();
        for i in &mut coinbase_tx.input {
            i.witness.clear();
        }
        let (chain_branch, chain_index) = tree.branch(chain_id);
        AuxPow {
            coinbase_tx,
            hash_block: [0; 32],
            coinbase_branch: coinbase_branch.to_vec(),
            coinbase_index: 0,
            chain_branch,
            chain_index,
            parent,
        }
    }

    /// [`AuxPow::from_parts`] for a whole parent block; `None` when it has no transaction.
    pub fn from_block(block: &bitcoin::Block, tree: &AuxTree, chain_id: ChainId) -> Option<AuxPow> {
        let coinbase = block.txdata.first()?;
        let txids: Vec<[u8; 32]> = block
            .txdata
            .iter()
            .map(|t| t.compute_txid().to_byte_array())
            .collect();
        let branch = rexe_merkle::branch(&txids, 0);
        Some(AuxPow::from_parts(
            coinbase,
            &branch,
            block.header,
            tree,
            chain_id,
        ))
    }

    /// Decodes one AuxPoW from the start of `r` (consumes exactly its bytes).
    pub fn decode_from<R: bitcoin::io::BufRead + ?Sized>(r: &mut R) -> Result<Self, AuxPowError> {
        let coinbase_tx = Transaction::consensus_decode(r).map_err(malformed)?;
        let hash_block = <[u8; 32]>::consensus_decode(r).map_err(malformed)?;
        let coinbase_branch = read_branch(r, 64)?;
        let coinbase_index = i32::consensus_decode(r).map_err(malformed)?;
        // Read a few more than allowed so "too long" is reported by `check`, by rule.
        let chain_branch = read_branch(r, 64)?;
        let chain_index = i32::consensus_decode(r).map_err(malformed)?;
        let parent = BtcHeader::consensus_decode(r).map_err(malformed)?;
        Ok(AuxPow {
            coinbase_tx,
            hash_block,
            coinbase_branch,
            coinbase_index,
            chain_branch,
            chain_index,
            parent,
        })
    }

    /// Decodes an AuxPoW that must span all of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Self, AuxPowError> {
        let mut cur = bitcoin::io::Cursor::new(bytes);
        let a = Self::decode_from(&mut cur)?;
        if cur.position() as usize != bytes.len() {
            return Err(malformed(format!(
                "{} trailing bytes",
                bytes.len() - cur.position() as usize
            )));
        }
        Ok(a)
    }

    /// Namecoin's serialization (coinbase without witness).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut cb = self.coinbase_tx.clone();
        for i in &mut cb.input {
            i.witness.clear();
        }
        cb.consensus_encode(&mut out).expect("vec write");
        out.extend_from_slice(&self.hash_block);
        write_branch(&mut out, &self.coinbase_branch);
        self.coinbase_index
            .consensus_encode(&mut out)
            .expect("vec write");
        write_branch(&mut out, &self.chain_branch);
        self.chain_index
            .consensus_encode(&mut out)
            .expect("vec write");
        self.parent.consensus_encode(&mut out).expect("vec write");
        out
    }

    /// Checks that this AuxPoW commits to `aux_hash` (internal byte order) for
    /// `chain_id`: `CAuxPow::check` plus the parent-version rules, in Namecoin's order.
    pub fn check(&self, aux_hash: [u8; 32], chain_id: ChainId) -> Result<(), AuxPowError> {
        if self.coinbase_index != 0 {
            return Err(AuxPowError::NotAGenerate(self.coinbase_index));
        }
        if ChainId::of_version(self.parent.version.to_consensus()) == chain_id {
            return Err(AuxPowError::ParentHasOurChainId);
        }
        if self.parent.version.to_consensus() & VERSION_AUXPOW != 0 {
            return Err(AuxPowError::ParentIsAuxpow);
        }
        if self.chain_branch.len() > MAX_CHAIN_BRANCH {
            return Err(AuxPowError::ChainBranchTooLong(self.chain_branch.len()));
        }
        let mut root = merkle_branch_root(aux_hash, &self.chain_branch, self.chain_index);
        root.reverse();
        let txid = self.coinbase_tx.compute_txid().to_byte_array();
        if merkle_branch_root(txid, &self.coinbase_branch, 0)
            != self.parent.merkle_root.to_byte_array()
        {
            return Err(AuxPowError::BadParentMerkleRoot);
        }
        let script = self
            .coinbase_tx
            .input
            .first()
            .ok_or(AuxPowError::NoCoinbaseInput)?
            .script_sig
            .as_bytes();
        let head = find(script, &MERGED_MINING_HEADER);
        let pc = find(script, &root).ok_or(AuxPowError::MissingRoot)?;
        match head {
            Some(h) => {
                if find(&script[h + 1..], &MERGED_MINING_HEADER).is_some() {
                    return Err(AuxPowError::MultipleHeaders);
                }
                if h + MERGED_MINING_HEADER.len() != pc {
                    return Err(AuxPowError::HeaderNotBeforeRoot);
                }
            }
            None => {
                if pc > 20 {
                    return Err(AuxPowError::LegacyRootTooLate);
                }
            }
        }
        let rest = &script[pc + 32..];
        if rest.len() < 8 {
            return Err(AuxPowError::MissingSizeAndNonce);
        }
        let size = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes"));
        let nonce = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        let height = self.chain_branch.len() as u32;
        if size != 1u32 << height {
            return Err(AuxPowError::SizeMismatch);
        }
        let expected = expected_index(nonce, chain_id, height);
        if self.chain_index as u32 != expected || self.chain_index < 0 {
            return Err(AuxPowError::WrongIndex {
                expected,
                got: self.chain_index,
            });
        }
        Ok(())
    }

    /// The parent header's hash (what must meet the sealed block's target).
    pub fn parent_hash(&self) -> bitcoin::BlockHash {
        self.parent.block_hash()
    }

    /// Checks the parent's proof of work against `target` (not the parent's own bits:
    /// premature and stale parents count).
    pub fn check_pow(&self, target: Target) -> Result<(), AuxPowError> {
        let hash = self.parent_hash();
        if target.is_met_by(hash) {
            Ok(())
        } else {
            Err(AuxPowError::HighHash { hash })
        }
    }
}

/// The aux merkle tree a miner commits to for one or several chains.
#[derive(Clone, Debug)]
pub struct AuxTree {
    /// Tree height (`size = 1 << height`).
    pub height: u32,
    /// The nonce that places chains in their slots.
    pub nonce: u32,
    leaves: Vec<[u8; 32]>,
}

impl AuxTree {
    /// A tree holding each `(chain_id, aux_hash)` at its expected slot, with the
    /// [`AuxTree::layout`] of their chain ids. `None` when two chains share a chain id.
    pub fn build(chains: &[(ChainId, [u8; 32])]) -> Option<AuxTree> {
        let ids: Vec<ChainId> = chains.iter().map(|(c, _)| *c).collect();
        let (height, nonce) = Self::layout(&ids)?;
        Self::with_layout(height, nonce, chains)
    }

    /// The smallest height, and the smallest nonce at that height, that put every chain id
    /// in a distinct slot (Namecoin's `getExpectedIndex`), as merge-mining tools search it.
    /// `None` when two ids are equal (they always collide) or nothing fits 30 levels.
    ///
    /// The nonce never separates chains: modulo `2^h` the slot is
    /// `A²·nonce + A·(C + id) + C` (`A = 1103515245`, odd; `C = 12345`), a bijection of the
    /// id shifted by a term common to every chain, so at height `h` chains collide exactly
    /// when their ids are equal modulo `2^h`, whatever the nonce. Hence nonce 0 is tried at
    /// each height (the first nonce a search would try, and the smallest that fits), and
    /// e.g. rexe (0x0b42) and Dogecoin (0x0062), equal modulo 32, need a tree of 64.
    pub fn layout(ids: &[ChainId]) -> Option<(u32, u32)> {
        let mut distinct = ids.to_vec();
        distinct.sort_unstable_by_key(|c| c.0);
        distinct.dedup();
        if distinct.len() != ids.len() {
            return None;
        }
        let mut slots = Vec::with_capacity(ids.len());
        for height in 0..=MAX_CHAIN_BRANCH as u32 {
            if (1usize << height) < ids.len() {
                continue;
            }
            slots.clear();
            slots.extend(ids.iter().map(|c| expected_index(0, *c, height)));
            slots.sort_unstable();
            slots.dedup();
            if slots.len() == ids.len() {
                return Some((height, 0));
            }
        }
        None
    }

    /// A tree of height `height` holding each chain at its slot for `nonce`; `None` when
    /// two chains fall in one slot (or `height` is over 30).
    pub fn with_layout(height: u32, nonce: u32, chains: &[(ChainId, [u8; 32])]) -> Option<AuxTree> {
        if height > MAX_CHAIN_BRANCH as u32 {
            return None;
        }
        let mut leaves = vec![[0u8; 32]; 1 << height];
        let mut used = vec![false; 1 << height];
        for (c, h) in chains {
            let s = expected_index(nonce, *c, height) as usize;
            if std::mem::replace(&mut used[s], true) {
                return None;
            }
            leaves[s] = *h;
        }
        Some(AuxTree {
            height,
            nonce,
            leaves,
        })
    }

    /// Root (internal order). The tree is full (`2^height` leaves), so no level is padded.
    pub fn root(&self) -> [u8; 32] {
        rexe_merkle::branch_and_root(self.leaves.clone(), 0).1
    }

    /// The branch and index of `chain_id`'s leaf.
    pub fn branch(&self, chain_id: ChainId) -> (Vec<[u8; 32]>, i32) {
        let index = expected_index(self.nonce, chain_id, self.height) as usize;
        (rexe_merkle::branch(&self.leaves, index), index as i32)
    }

    /// The 44-byte coinbase tag: magic, root (byte-reversed), size LE, nonce LE.
    pub fn commitment(&self) -> [u8; 44] {
        let mut t = [0u8; 44];
        t[..4].copy_from_slice(&MERGED_MINING_HEADER);
        let mut root = self.root();
        root.reverse();
        t[4..36].copy_from_slice(&root);
        t[36..40].copy_from_slice(&(1u32 << self.height).to_le_bytes());
        t[40..44].copy_from_slice(&self.nonce.to_le_bytes());
        t
    }
}

/// The merged-mining commitment found in a coinbase scriptSig.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Commitment {
    /// The aux tree's root (internal order: the bytes after the magic, reversed).
    pub root: [u8; 32],
    /// The tree's size (leaves), when the 4 bytes after the root are there.
    pub size: Option<u32>,
    /// The tree's nonce, when the 4 bytes after the size are there.
    pub nonce: Option<u32>,
}

/// The first [`MERGED_MINING_HEADER`] in `script` and the aux tree it commits to.
pub fn find_commitment(script: &[u8]) -> Option<Commitment> {
    let at = script.windows(4).position(|w| w == MERGED_MINING_HEADER)?;
    let mut root: [u8; 32] = script.get(at + 4..at + 36)?.try_into().ok()?;
    root.reverse();
    let word = |from: usize| {
        script
            .get(from..from + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    };
    Some(Commitment {
        root,
        size: word(at + 36),
        nonce: word(at + 40),
    })
}

/// The 44-byte tag committing to a single aux block (size 1, nonce 0).
pub fn single_commitment(aux_hash: [u8; 32]) -> [u8; 44] {
    AuxTree::build(&[(ChainId::REXE, aux_hash)])
        .expect("one chain always fits")
        .commitment()
}

/// Builds an AuxPoW whose parent is a fresh header over a one-transaction block whose
/// coinbase carries `tag`, grinding the nonce until the parent hash meets `target`.
/// Used by tests and the CPU miner.
pub fn mine_parent(
    tree: &AuxTree,
    chain_id: ChainId,
    parent_bits: bitcoin::CompactTarget,
    target: Target,
    time: u32,
) -> AuxPow {
    use bitcoin::blockdata::{script::Builder, transaction};
    let mut script = Builder::new().push_int(1).into_script().into_bytes();
    script.extend_from_slice(&tree.commitment());
    let coinbase = Transaction {
        version: transaction::Version::ONE,
        lock_time: bitcoin::absolute::LockTime::ZERO,
        input: vec![bitcoin::TxIn {
            previous_output: bitcoin::OutPoint::null(),
            script_sig: bitcoin::ScriptBuf::from_bytes(script),
            sequence: bitcoin::Sequence::MAX,
            witness: bitcoin::Witness::new(),
        }],
        output: vec![bitcoin::TxOut {
            value: bitcoin::Amount::from_sat(0),
            script_pubkey: bitcoin::ScriptBuf::new(),
        }],
    };
    let mut parent = BtcHeader {
        version: bitcoin::block::Version::from_consensus(0x2000_0000),
        prev_blockhash: bitcoin::BlockHash::all_zeros(),
        merkle_root: bitcoin::TxMerkleNode::from_byte_array(
            coinbase.compute_txid().to_byte_array(),
        ),
        time,
        bits: parent_bits,
        nonce: 0,
    };
    while !target.is_met_by(parent.block_hash()) {
        parent.nonce = parent.nonce.wrapping_add(1);
        if parent.nonce == 0 {
            parent.time += 1;
        }
    }
    AuxPow::from_parts(&coinbase, &[], parent, tree, chain_id)
}

/// Decodes a hex-encoded AuxPoW.
pub fn decode_hex(hex_str: &str) -> Result<AuxPow, AuxPowError> {
    let bytes =
        Vec::<u8>::from_hex(hex_str.trim()).map_err(|e| malformed(format!("bad hex: {e}")))?;
    AuxPow::decode(&bytes)
}

/// Verifications per second of [`AuxPow::check`] plus [`AuxPow::check_pow`] on Namecoin
/// block 37174 (decoded once, then `n` checks), for `rexe bench auxpow`. `0.0` when `n` is 0.
pub fn bench_verify(n: u32) -> f64 {
    const VECTOR: &str = include_str!("../tests/data/namecoin-mainnet-37174.header-auxpow.hex");
    let Ok(bytes) = Vec::<u8>::from_hex(VECTOR.trim()) else {
        return 0.0;
    };
    let (Some(header), Some(rest)) = (bytes.get(..80), bytes.get(80..)) else {
        return 0.0;
    };
    let Ok(aux) = AuxPow::decode(rest) else {
        return 0.0;
    };
    let Ok(parsed) = bitcoin::consensus::deserialize::<BtcHeader>(header) else {
        return 0.0;
    };
    let hash = sha256d::Hash::hash(header).to_byte_array();
    let target = parsed.target();
    let start = std::time::Instant::now();
    let mut ok = 0u32;
    for _ in 0..n {
        let a = std::hint::black_box(&aux);
        if a.check(std::hint::black_box(hash), ChainId::NAMECOIN)
            .is_ok()
            && a.check_pow(target).is_ok()
        {
            ok += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    if n == 0 || ok != n || secs <= 0.0 {
        return 0.0;
    }
    f64::from(n) / secs
}
