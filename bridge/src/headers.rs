//! The Bitcoin header chain tracked on the L2 (pure, I/O-free).
//!
//! Follows Bitcoin Core's header acceptance (`ContextualCheckBlockHeader`, `CheckProofOfWork`,
//! `GetNextWorkRequired` / `CalculateNextWorkRequired` in `pow.cpp`):
//! - proof of work: the header hash must be at or below the target its `bits` encode, and that
//!   target must not exceed the network's `pow_limit`;
//! - expected `bits`: regtest never retargets (`fPowNoRetargeting`); mainnet and signet retarget
//!   every 2016 blocks with the 4x clamp; testnet4 additionally allows a minimum-difficulty block
//!   when a header's time is more than 20 minutes after its parent's
//!   (`fPowAllowMinDifficultyBlocks`) and computes retargets from the first block of the period
//!   (BIP94) and rejects its timewarp (first block of a period more than 600 s before its
//!   parent). Testnet3 follows the same rules as testnet4 except BIP94's retarget base;
//! - time: strictly greater than the median time past of the previous 11 blocks, and at most
//!   two hours after the `now` passed in by the caller;
//! - chainwork accumulates `Header::work()`; the best tip is the first-seen header with the most
//!   chainwork (ties keep the current tip, as Core does), so Bitcoin reorgs are followed.
//!
//! Retargets whose period starts before the checkpoint cannot be checked and are rejected with
//! [`HeaderError::AncestorUnavailable`]: choose checkpoints at a retarget boundary.
//! All maps are `BTreeMap`s, so results never depend on hash-map iteration order.
//!
//! **Pruning.** Only the last [`KEEP_DEPTH`] blocks of the best chain are kept: once the tip
//! is [`PRUNE_STEP`] blocks past that, headers below `tip - KEEP_DEPTH` go, with every branch
//! that forks below the new base; the best-chain block at the new base becomes the
//! checkpoint. `KEEP_DEPTH` (two retarget periods) covers every difficulty rule (the first
//! block of the period, the last 11 times, testnet's walk back to the last real-difficulty
//! block) and is far beyond what claims need (a payment within `payment_window` +
//! `claim_grace` + K blocks of its take, a few dozen by default): a claim whose block was
//! pruned is refused as untracked. A Bitcoin reorg deeper than `KEEP_DEPTH` cannot be
//! followed.

use crate::tracked::TrackedMap;

use bitcoin::block::Header;
use bitcoin::{BlockHash, CompactTarget, Network, Target, Work};

/// Maximum seconds a header's time may be ahead of the caller's clock (Core: `MAX_FUTURE_BLOCK_TIME`).
pub const MAX_FUTURE_BLOCK_TIME: u32 = 2 * 60 * 60;
/// Number of previous blocks whose median time a header must exceed.
pub const MEDIAN_TIME_SPAN: usize = 11;
/// BIP94's limit on the first block of a period going back in time (testnet4 only).
pub const MAX_TIMEWARP: i64 = 600;
/// Blocks between difficulty retargets.
pub const RETARGET_INTERVAL: u32 = 2016;
/// Best-chain blocks below the tip that stay tracked (see the module docs).
pub const KEEP_DEPTH: u32 = 2 * RETARGET_INTERVAL;
/// How far past `KEEP_DEPTH` the tip gets before headers are pruned: once per retarget
/// period, so that the pass over the tracked headers is paid once per 2,016 headers (the
/// chain tracks at most `KEEP_DEPTH + PRUNE_STEP` = 6,048 headers).
pub const PRUNE_STEP: u32 = RETARGET_INTERVAL;

/// A trusted starting point of the tracked chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// The checkpoint header.
    pub header: Header,
    /// Its height on the Bitcoin chain.
    pub height: u32,
    /// Total chainwork up to and including it.
    pub chainwork: Work,
}

impl Checkpoint {
    /// The genesis block of `network` (height 0, chainwork = its own work), from
    /// `bitcoin::constants::genesis_block` (rust-bitcoin 0.32).
    ///
    pub fn genesis(network: Network) -> Self {
        let header = bitcoin::constants::genesis_block(network).header;
        Checkpoint {
            header,
            height: 0,
            chainwork: header.work(),
        }
    }

    /// The checkpoint a fresh peg starts from: the first block of a recent retarget period on
    /// mainnet (878,976) and signet (229,824), so that every later retarget can be checked;
    /// genesis on testnet4 (no later retarget-boundary header we could verify against two
    /// independent sources) and regtest.
    ///
    /// Headers and chainwork come from bitcoinj's checkpoint files
    /// (`core/src/main/resources/org.bitcoin.{production,signet}.checkpoints.txt`, commit
    /// 13e137ec); each header's hash was recomputed, its parent hash checked against
    /// Electrum's checkpoints (`electrum/chains/*/checkpoints.json`, commit 92357801) and,
    /// for mainnet, its hash and bits against a second project's test data and a recomputed
    /// retarget.
    pub fn recent(network: Network) -> Self {
        let (header_hex, height, chainwork_hex) = match network {
            Network::Bitcoin => (MAINNET_878976, 878_976, MAINNET_878976_CHAINWORK),
            Network::Signet => (SIGNET_229824, 229_824, SIGNET_229824_CHAINWORK),
            _ => return Self::genesis(network),
        };
        let header: Header = bitcoin::consensus::encode::deserialize_hex(header_hex)
            .expect("checkpoint header constant decodes");
        let mut work = [0u8; 32];
        let cw: Vec<u8> =
            bitcoin::hex::FromHex::from_hex(chainwork_hex).expect("chainwork constant is hex");
        work[32 - cw.len()..].copy_from_slice(&cw);
        Checkpoint {
            header,
            height,
            chainwork: Work::from_be_bytes(work),
        }
    }
}

/// Mainnet block 878,976 (hash 00000000000000000002819359a9af460f342404bec23e7478512a619584083b).
const MAINNET_878976: &str = "0080cb2a84fa5fcdb3c448a0dc7f38c6a7e55f1261fcec2f0b6d00000000000000000000a2282f81592e007e389fa35ed4a9f5559c2ebf12fa76b54f0316668dcba6d961af1f8467618c02178c74d981";
const MAINNET_878976_CHAINWORK: &str = "a6e78db05939f5b7a956f47b";
/// Signet block 229,824 (hash 000000bac742cfc8d76fda4ad387b7aafa577b17d3684c61d8a089dcd08fa374).
const SIGNET_229824: &str = "000000204e1723c21130b4b77d390200eda865cb048c5586a701ac1e2e4d14fddf000000eb17b9fe7e04f19d26ed5860829edafcd8a217d22b18fdc74bff36da9ae76d1105477d67ad46011ec2283200";
const SIGNET_229824_CHAINWORK: &str = "029c18351044";

/// Why a header was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The parent is not tracked.
    #[error("unknown previous block {0}")]
    UnknownParent(BlockHash),
    /// The header's hash is above the target its bits encode.
    #[error("proof of work does not meet the header's target")]
    BadProofOfWork,
    /// The target encoded by bits is above the network's limit.
    #[error("target above the network's proof-of-work limit")]
    TargetAboveLimit,
    /// The bits are not the ones the network's difficulty rules require.
    #[error("bad bits: expected {expected:#010x}, got {got:#010x}")]
    BadBits {
        /// Required bits.
        expected: u32,
        /// Header's bits.
        got: u32,
    },
    /// Time not above the median time past of the last 11 blocks.
    #[error("time {time} not above median time past {mtp}")]
    TimeTooOld {
        /// Header time.
        time: u32,
        /// Median time past.
        mtp: u32,
    },
    /// Time more than two hours in the future.
    #[error("time {time} more than 2 hours after now ({now})")]
    TimeTooNew {
        /// Header time.
        time: u32,
        /// Caller's clock.
        now: u32,
    },
    /// A block needed for a rule (retarget base) is below the checkpoint.
    #[error("ancestor at height {0} needed for the difficulty rules is below the checkpoint")]
    AncestorUnavailable(u32),
    /// BIP94 (testnet4): the first block of a retarget period may not be more than 600 s
    /// before its parent.
    #[error("time {time} more than 600 s before the previous block ({prev}) at a retarget boundary (BIP94 timewarp)")]
    TimeWarp {
        /// Header time.
        time: u32,
        /// Parent time.
        prev: u32,
    },
    /// Height would overflow.
    #[error("height overflow")]
    HeightOverflow,
}

/// A header rejected inside a batch; nothing of the batch is kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("header #{index} ({hash}) rejected: {error}")]
pub struct BatchError {
    /// Index in the submitted batch.
    pub index: usize,
    /// Its hash.
    pub hash: BlockHash,
    /// Why.
    pub error: HeaderError,
}

/// A tracked header.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    /// The header.
    pub header: Header,
    /// Its height.
    pub height: u32,
    /// Cumulative chainwork.
    pub chainwork: Work,
}

/// Result of a successful batch submission.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SubmitOutcome {
    /// Headers newly stored (duplicates are skipped).
    pub added: usize,
    /// Best tip before.
    pub old_tip: BlockHash,
    /// Best tip after.
    pub new_tip: BlockHash,
    /// Height of the last common block of the old and new best chain when the tip moved off the
    /// old best chain (a reorg); `None` otherwise.
    pub reorg_fork_height: Option<u32>,
}

/// The header tree from a checkpoint, with the most-work chain indexed by height.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderChain {
    pub(crate) network: Network,
    /// Height of the checkpoint (moved up by pruning).
    pub(crate) base_height: u32,
    pub(crate) entries: TrackedMap<BlockHash, Entry>,
    /// The best chain: height → hash, from `base_height` to the tip.
    pub(crate) best: TrackedMap<u32, BlockHash>,
    /// Regtest only: every header above the checkpoint must carry exactly these bits (for a
    /// regtest node run at a harder fixed difficulty, like `rexe devnet`'s). `None`: Core's
    /// regtest rule (a header carries its parent's bits).
    pub(crate) fixed_bits: Option<CompactTarget>,
}

impl HeaderChain {
    /// Starts from the genesis checkpoint of `network`.
    pub fn new(network: Network) -> Self {
        Self::from_checkpoint(network, Checkpoint::genesis(network))
    }

    /// Starts from an explicit checkpoint.
    pub fn from_checkpoint(network: Network, cp: Checkpoint) -> Self {
        let hash = cp.header.block_hash();
        let mut entries = TrackedMap::new();
        entries.insert(
            hash,
            Entry {
                header: cp.header,
                height: cp.height,
                chainwork: cp.chainwork,
            },
        );
        HeaderChain {
            network,
            base_height: cp.height,
            entries,
            best: [(cp.height, hash)].into_iter().collect(),
            fixed_bits: None,
        }
    }

    /// Regtest at a fixed difficulty other than the genesis block's: every header above the
    /// checkpoint must carry `bits` (ignored on other networks, whose rules are fixed).
    pub fn with_fixed_bits(mut self, bits: CompactTarget) -> Self {
        if self.network == Network::Regtest {
            self.fixed_bits = Some(bits);
        }
        self
    }

    /// The network whose rules apply.
    pub fn network(&self) -> Network {
        self.network
    }

    /// The best tip (hash and entry).
    pub fn best_tip(&self) -> (BlockHash, &Entry) {
        let (_, h) = self.best.last_key_value().expect("best chain never empty");
        (*h, &self.entries[h])
    }

    /// Height of the best tip.
    pub fn tip_height(&self) -> u32 {
        self.best_tip().1.height
    }

    /// A tracked header (any branch).
    pub fn get(&self, hash: &BlockHash) -> Option<&Entry> {
        self.entries.get(hash)
    }

    /// Number of tracked headers.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Always false (the checkpoint is tracked).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The best-chain hash at `height`.
    pub fn hash_at(&self, height: u32) -> Option<BlockHash> {
        self.best.get(&height).copied()
    }

    /// Height of the oldest tracked block (the checkpoint, or the base pruning moved up to).
    pub fn base_height(&self) -> u32 {
        self.base_height
    }

    /// Whether `hash` is on the best chain.
    pub fn is_on_best_chain(&self, hash: &BlockHash) -> bool {
        self.entries
            .get(hash)
            .is_some_and(|e| self.hash_at(e.height) == Some(*hash))
    }

    /// Confirmations of `hash` on the best chain (tip = 1); `None` if unknown or on a stale branch.
    pub fn confirmations(&self, hash: &BlockHash) -> Option<u32> {
        let e = self.entries.get(hash)?;
        if self.hash_at(e.height) != Some(*hash) {
            return None;
        }
        Some(self.tip_height() - e.height + 1)
    }

    fn ancestor(&self, from: BlockHash, height: u32) -> Result<&Entry, HeaderError> {
        let mut cur = self
            .entries
            .get(&from)
            .ok_or(HeaderError::UnknownParent(from))?;
        if height < self.base_height {
            return Err(HeaderError::AncestorUnavailable(height));
        }
        // Fast path: the ancestor is on the best chain when `from` is.
        if self.hash_at(cur.height) == Some(from) {
            if let Some(h) = self.hash_at(height) {
                return Ok(&self.entries[&h]);
            }
        }
        while cur.height > height {
            let p = cur.header.prev_blockhash;
            cur = self
                .entries
                .get(&p)
                .ok_or(HeaderError::AncestorUnavailable(height))?;
        }
        Ok(cur)
    }

    fn median_time_past(&self, parent: &Entry) -> u32 {
        let mut times = Vec::with_capacity(MEDIAN_TIME_SPAN);
        let mut cur = Some(parent);
        while let Some(e) = cur {
            times.push(e.header.time);
            if times.len() == MEDIAN_TIME_SPAN {
                break;
            }
            cur = self.entries.get(&e.header.prev_blockhash);
        }
        times.sort_unstable();
        times[times.len() / 2]
    }

    /// The bits a child of `parent` with time `time` must carry (Core `GetNextWorkRequired`).
    pub fn expected_bits(
        &self,
        parent_hash: BlockHash,
        time: u32,
    ) -> Result<CompactTarget, HeaderError> {
        let params = self.network.params();
        let parent = self
            .entries
            .get(&parent_hash)
            .ok_or(HeaderError::UnknownParent(parent_hash))?;
        let height = parent
            .height
            .checked_add(1)
            .ok_or(HeaderError::HeightOverflow)?;
        let pow_limit_bits = params.max_attainable_target.to_compact_lossy();
        if let Some(bits) = self.fixed_bits {
            return Ok(bits);
        }
        if params.no_pow_retargeting {
            return Ok(parent.header.bits);
        }
        if height % RETARGET_INTERVAL != 0 {
            if params.allow_min_difficulty_blocks {
                if u64::from(time) > u64::from(parent.header.time) + 2 * params.pow_target_spacing {
                    return Ok(pow_limit_bits);
                }
                // Last block that is not a special min-difficulty one.
                let mut e = parent;
                while e.height % RETARGET_INTERVAL != 0 && e.header.bits == pow_limit_bits {
                    if e.height <= self.base_height {
                        return Err(HeaderError::AncestorUnavailable(e.height.saturating_sub(1)));
                    }
                    e = self
                        .entries
                        .get(&e.header.prev_blockhash)
                        .ok_or(HeaderError::AncestorUnavailable(e.height - 1))?;
                }
                return Ok(e.header.bits);
            }
            return Ok(parent.header.bits);
        }
        let first = self.ancestor(parent_hash, height - RETARGET_INTERVAL)?;
        let timespan = (i64::from(parent.header.time) - i64::from(first.header.time)).max(0) as u64;
        let base_bits = if self.network == Network::Testnet4 {
            first.header.bits
        } else {
            parent.header.bits
        };
        Ok(CompactTarget::from_next_work_required(
            base_bits, timespan, params,
        ))
    }

    fn check(&self, header: &Header, now: u32) -> Result<Entry, HeaderError> {
        let prev = header.prev_blockhash;
        let parent = self
            .entries
            .get(&prev)
            .ok_or(HeaderError::UnknownParent(prev))?;
        let height = parent
            .height
            .checked_add(1)
            .ok_or(HeaderError::HeightOverflow)?;
        let target = Target::from_compact(header.bits);
        if target > self.network.params().max_attainable_target || target == Target::ZERO {
            return Err(HeaderError::TargetAboveLimit);
        }
        header
            .validate_pow(target)
            .map_err(|_| HeaderError::BadProofOfWork)?;
        let expected = self.expected_bits(prev, header.time)?;
        if expected != header.bits {
            return Err(HeaderError::BadBits {
                expected: expected.to_consensus(),
                got: header.bits.to_consensus(),
            });
        }
        let mtp = self.median_time_past(parent);
        if header.time <= mtp {
            return Err(HeaderError::TimeTooOld {
                time: header.time,
                mtp,
            });
        }
        if self.network == Network::Testnet4
            && height % RETARGET_INTERVAL == 0
            && i64::from(header.time) < i64::from(parent.header.time) - MAX_TIMEWARP
        {
            return Err(HeaderError::TimeWarp {
                time: header.time,
                prev: parent.header.time,
            });
        }
        if u64::from(header.time) > u64::from(now) + u64::from(MAX_FUTURE_BLOCK_TIME) {
            return Err(HeaderError::TimeTooNew {
                time: header.time,
                now,
            });
        }
        Ok(Entry {
            header: *header,
            height,
            chainwork: parent.chainwork + header.work(),
        })
    }

    fn set_best(&mut self, tip: BlockHash) -> Option<u32> {
        let mut chain = Vec::new();
        let mut cur = tip;
        let fork_height = loop {
            let e = &self.entries[&cur];
            if self.hash_at(e.height) == Some(cur) {
                break e.height;
            }
            chain.push((e.height, cur));
            cur = e.header.prev_blockhash;
        };
        let old_tip_height = self.tip_height();
        self.best.retain(|h, _| *h <= fork_height);
        for (h, hash) in chain {
            self.best.insert(h, hash);
        }
        (fork_height < old_tip_height).then_some(fork_height)
    }

    /// Prunes below `tip - KEEP_DEPTH` once the tip is `PRUNE_STEP` past it (module docs).
    fn prune(&mut self) {
        let tip = self.tip_height();
        if tip.saturating_sub(self.base_height) < KEEP_DEPTH + PRUNE_STEP {
            return;
        }
        let base = tip - KEEP_DEPTH;
        let base_hash = self.best[&base];
        // Keep the new base and what descends from it; parents come before children in
        // height order, so one pass decides every header.
        let mut by_height: Vec<(u32, BlockHash, BlockHash)> = self
            .entries
            .iter()
            .map(|(h, e)| (e.height, *h, e.header.prev_blockhash))
            .collect();
        by_height.sort();
        let mut kept = std::collections::BTreeSet::new();
        for (height, hash, prev) in by_height {
            let keep = match height.cmp(&base) {
                std::cmp::Ordering::Less => false,
                std::cmp::Ordering::Equal => hash == base_hash,
                std::cmp::Ordering::Greater => kept.contains(&prev),
            };
            if keep {
                kept.insert(hash);
            }
        }
        self.entries.retain(|h, _| kept.contains(h));
        self.best.retain(|h, _| *h >= base);
        self.base_height = base;
    }

    /// Validates and adds a batch of headers (each one's parent must be tracked or earlier in
    /// the batch). All-or-nothing: on error nothing of the batch is kept. `now` is the caller's
    /// clock (Unix seconds) for the two-hour future limit.
    pub fn submit(&mut self, headers: &[Header], now: u32) -> Result<SubmitOutcome, BatchError> {
        let old_tip = self.best_tip().0;
        let mut added: Vec<BlockHash> = Vec::new();
        let mut best = old_tip;
        let mut best_work = self.best_tip().1.chainwork;
        let mut result = Ok(());
        for (index, h) in headers.iter().enumerate() {
            let hash = h.block_hash();
            if self.entries.contains_key(&hash) {
                continue;
            }
            match self.check(h, now) {
                Ok(e) => {
                    if e.chainwork > best_work {
                        best_work = e.chainwork;
                        best = hash;
                    }
                    self.entries.insert(hash, e);
                    added.push(hash);
                }
                Err(error) => {
                    result = Err(BatchError { index, hash, error });
                    break;
                }
            }
        }
        if let Err(e) = result {
            for h in added {
                self.entries.remove(&h);
            }
            return Err(e);
        }
        let reorg_fork_height = if best != old_tip {
            self.set_best(best)
        } else {
            None
        };
        self.prune();
        Ok(SubmitOutcome {
            added: added.len(),
            old_tip,
            new_tip: best,
            reorg_fork_height,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;

    /// Appends `n` headers without checks (PoW at mainnet difficulty cannot be ground in a test).
    fn extend_unchecked(c: &mut HeaderChain, n: u32, spacing: u32) -> BlockHash {
        let (mut tip, _) = c.best_tip();
        for i in 0..n {
            let p = c.entries[&tip].clone();
            let mut header = p.header;
            header.prev_blockhash = tip;
            header.time = p.header.time + spacing;
            header.nonce = i;
            let hash = header.block_hash();
            let chainwork = p.chainwork + header.work();
            c.entries.insert(
                hash,
                Entry {
                    header,
                    height: p.height + 1,
                    chainwork,
                },
            );
            c.best.insert(p.height + 1, hash);
            tip = hash;
        }
        tip
    }

    #[test]
    fn mainnet_retarget_clamps_at_four_x() {
        let mut c = HeaderChain::new(Network::Bitcoin);
        let tip = extend_unchecked(&mut c, 2015, 1);
        assert_eq!(c.tip_height(), 2015);
        let t = c.entries[&tip].header.time;
        // Blocks every second: timespan clamped to a quarter, target / 4.
        assert_eq!(
            c.expected_bits(tip, t + 1).unwrap().to_consensus(),
            0x1c3f_ffc0
        );
        // Inside the period the parent's bits are required.
        let parent = c.hash_at(2014).unwrap();
        assert_eq!(
            c.expected_bits(parent, t).unwrap().to_consensus(),
            0x1d00_ffff
        );
    }

    #[test]
    fn mainnet_retarget_slow_period_capped_at_pow_limit() {
        let mut c = HeaderChain::new(Network::Bitcoin);
        let tip = extend_unchecked(&mut c, 2015, 1200);
        let t = c.entries[&tip].header.time;
        assert_eq!(
            c.expected_bits(tip, t + 1).unwrap().to_consensus(),
            0x1d00_ffff
        );
    }

    #[test]
    fn retarget_below_checkpoint_is_reported() {
        let g = bitcoin::constants::genesis_block(Network::Bitcoin).header;
        let cp = Checkpoint {
            header: g,
            height: 2015,
            chainwork: g.work(),
        };
        let c = HeaderChain::from_checkpoint(Network::Bitcoin, cp);
        assert_eq!(
            c.expected_bits(g.block_hash(), g.time + 1),
            Err(HeaderError::AncestorUnavailable(0))
        );
        assert_eq!(c.confirmations(&BlockHash::all_zeros()), None);
    }
}
