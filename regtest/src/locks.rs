//! Lock-time rules as Bitcoin Core applies them: absolute lock-times (`IsFinalTx`, compared
//! with the median time past as BIP113 requires) and BIP68 relative lock-times
//! (`CalculateSequenceLocks` + `EvaluateSequenceLocks`, active from genesis on regtest like
//! every buried deployment here). Pure functions of the transaction and its chain context.

use bitcoin::Transaction;

/// `nLockTime` values below this are heights, at or above it Unix times.
const LOCKTIME_THRESHOLD: u32 = 500_000_000;
/// BIP68: the input's sequence carries no relative lock.
const SEQUENCE_DISABLE_FLAG: u32 = 1 << 31;
/// BIP68: the lock counts 512-second units of median time past instead of blocks.
const SEQUENCE_TYPE_FLAG: u32 = 1 << 22;
const SEQUENCE_MASK: u32 = 0x0000_ffff;
/// 512-second granularity of time-based relative locks.
const SEQUENCE_GRANULARITY: u32 = 9;

/// Where a transaction would be mined: the block's height and its parent's median time past.
#[derive(Clone, Copy, Debug)]
pub struct BlockContext {
    /// Height of the block that would include the transaction.
    pub height: u32,
    /// Median time past of that block's parent.
    pub prev_mtp: u32,
}

/// Core's `IsFinalTx`: the lock-time lies strictly before the block (height, or the parent's
/// median time past), or every input opted out with a final sequence.
///
/// rust-bitcoin's `LockTime::is_satisfied_by` accepts equality, one block early for Core.
pub fn is_final(tx: &Transaction, at: BlockContext) -> bool {
    let lock = tx.lock_time.to_consensus_u32();
    if lock == 0 {
        return true;
    }
    let cutoff = if lock < LOCKTIME_THRESHOLD {
        at.height
    } else {
        at.prev_mtp
    };
    lock < cutoff || tx.input.iter().all(|i| i.sequence.is_final())
}

/// Whether the BIP68 relative locks of `tx` are met in the block at `at`.
///
/// `coin_heights[i]` is the height of the block that created input `i`'s coin (the next
/// block's height for a coin still in the mempool, as Core assumes); `mtp_at(h)` is the median
/// time past of the active block at height `h`, where a time lock starts counting.
pub fn sequence_locks_met(
    tx: &Transaction,
    coin_heights: &[u32],
    at: BlockContext,
    mtp_at: &dyn Fn(u32) -> u32,
) -> bool {
    // Core casts the version to unsigned: negative versions enforce BIP68 too.
    if (tx.version.0 as u32) < 2 {
        return true;
    }
    // The latest height and time that are still locked; -1 is "no lock".
    let mut min_height: i64 = -1;
    let mut min_time: i64 = -1;
    for (input, &coin_height) in tx.input.iter().zip(coin_heights) {
        let seq = input.sequence.to_consensus_u32();
        if seq & SEQUENCE_DISABLE_FLAG != 0 {
            continue;
        }
        let value = i64::from(seq & SEQUENCE_MASK);
        if seq & SEQUENCE_TYPE_FLAG != 0 {
            // Time locks count from the median time past of the block before the coin's.
            let start = i64::from(mtp_at(coin_height.saturating_sub(1)));
            min_time = min_time.max(start + (value << SEQUENCE_GRANULARITY) - 1);
        } else {
            min_height = min_height.max(i64::from(coin_height) + value - 1);
        }
    }
    min_height < i64::from(at.height) && min_time < i64::from(at.prev_mtp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::{absolute, transaction, OutPoint, ScriptBuf, Sequence, TxIn, Witness};

    fn tx(version: i32, lock: u32, seqs: &[u32]) -> Transaction {
        Transaction {
            version: transaction::Version(version),
            lock_time: absolute::LockTime::from_consensus(lock),
            input: seqs
                .iter()
                .map(|s| TxIn {
                    previous_output: OutPoint::null(),
                    script_sig: ScriptBuf::new(),
                    sequence: Sequence(*s),
                    witness: Witness::new(),
                })
                .collect(),
            output: vec![],
        }
    }

    const AT: BlockContext = BlockContext {
        height: 200,
        prev_mtp: 1_700_000_000,
    };

    #[test]
    fn absolute_lock_must_lie_strictly_before_the_block() {
        assert!(is_final(&tx(2, 199, &[0]), AT));
        assert!(!is_final(&tx(2, 200, &[0]), AT));
        assert!(is_final(&tx(2, 1_699_999_999, &[0]), AT));
        assert!(!is_final(&tx(2, 1_700_000_000, &[0]), AT));
        // Final sequences on every input switch the lock off.
        assert!(is_final(&tx(2, 200, &[u32::MAX, u32::MAX]), AT));
        assert!(!is_final(&tx(2, 200, &[u32::MAX, 0]), AT));
    }

    #[test]
    fn height_locks_count_from_the_coins_block() {
        let mtp = |_| 0;
        // Coin at 190, lock 10: minimum height 199 is locked, 200 is the first valid.
        assert!(sequence_locks_met(&tx(2, 0, &[10]), &[190], AT, &mtp));
        assert!(!sequence_locks_met(&tx(2, 0, &[11]), &[190], AT, &mtp));
        // A coin from the same block can only be spent with a zero lock.
        assert!(sequence_locks_met(&tx(2, 0, &[0]), &[200], AT, &mtp));
        assert!(!sequence_locks_met(&tx(2, 0, &[1]), &[200], AT, &mtp));
        // The strictest input decides.
        assert!(!sequence_locks_met(
            &tx(2, 0, &[1, 11]),
            &[190, 190],
            AT,
            &mtp
        ));
    }

    #[test]
    fn time_locks_count_512_second_units_of_median_time() {
        let start = AT.prev_mtp - 1024;
        let mtp = move |h: u32| if h == 99 { start } else { 0 };
        // Two units from the MTP of the coin's parent end exactly at prev_mtp - 1.
        let two = SEQUENCE_TYPE_FLAG | 2;
        assert!(sequence_locks_met(&tx(2, 0, &[two]), &[100], AT, &mtp));
        assert!(!sequence_locks_met(&tx(2, 0, &[two + 1]), &[100], AT, &mtp));
    }

    #[test]
    fn disabled_locks_and_version_1_are_not_enforced() {
        let mtp = |_| 0;
        let locked = 50;
        assert!(!sequence_locks_met(&tx(2, 0, &[locked]), &[190], AT, &mtp));
        assert!(sequence_locks_met(&tx(1, 0, &[locked]), &[190], AT, &mtp));
        assert!(sequence_locks_met(
            &tx(2, 0, &[SEQUENCE_DISABLE_FLAG | locked]),
            &[190],
            AT,
            &mtp
        ));
        // Bits outside the mask and flags are ignored.
        assert!(sequence_locks_met(
            &tx(2, 0, &[1 << 16 | 10]),
            &[190],
            AT,
            &mtp
        ));
        // Core reads the version as unsigned: -1 enforces.
        assert!(!sequence_locks_met(&tx(-1, 0, &[locked]), &[190], AT, &mtp));
    }
}
