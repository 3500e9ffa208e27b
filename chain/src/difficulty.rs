//! Difficulty: ASERT (absolutely scheduled exponentially rising targets, the "aserti3-2d"
//! rule Bitcoin Cash adopted in November 2020), anchored at genesis.
//!
//! The target of block `h` is the anchor target scaled by
//! `2^((time_delta - interval * (height_delta + 1)) / halflife)`, where the deltas are
//! measured from the genesis block to block `h`'s parent. Every block being on schedule keeps
//! the target constant; every `halflife` seconds behind (ahead of) schedule doubles (halves)
//! it. The exponential is approximated in fixed point with BCH's cubic polynomial, so all
//! nodes compute bit-identical targets with integer arithmetic only.

use bitcoin::pow::{CompactTarget, Target};

/// 256-bit unsigned integer, little-endian 64-bit limbs (just what ASERT needs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct U256([u64; 4]);

impl U256 {
    fn from_target(t: Target) -> U256 {
        let b = t.to_le_bytes();
        let mut l = [0u64; 4];
        for (i, limb) in l.iter_mut().enumerate() {
            *limb = u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        }
        U256(l)
    }

    fn to_target(self) -> Target {
        let mut b = [0u8; 32];
        for (i, limb) in self.0.iter().enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&limb.to_le_bytes());
        }
        Target::from_le_bytes(b)
    }

    /// `self * m`, `None` on overflow.
    fn mul_u64(self, m: u64) -> Option<U256> {
        let mut out = [0u64; 4];
        let mut carry = 0u128;
        for (o, limb) in out.iter_mut().zip(self.0) {
            let p = limb as u128 * m as u128 + carry;
            *o = p as u64;
            carry = p >> 64;
        }
        (carry == 0).then_some(U256(out))
    }

    fn shr(self, n: u32) -> U256 {
        if n >= 256 {
            return U256([0; 4]);
        }
        let (words, bits) = ((n / 64) as usize, n % 64);
        let mut out = [0u64; 4];
        for (i, o) in out.iter_mut().enumerate().take(4 - words) {
            let lo = self.0[i + words] >> bits;
            let hi = if bits > 0 && i + words + 1 < 4 {
                self.0[i + words + 1] << (64 - bits)
            } else {
                0
            };
            *o = lo | hi;
        }
        U256(out)
    }

    /// `self << n`, `None` when bits would be lost.
    fn shl(self, n: u32) -> Option<U256> {
        if n == 0 {
            return Some(self);
        }
        if n >= 256 || self.shr(256 - n) != U256([0; 4]) {
            return None;
        }
        let (words, bits) = ((n / 64) as usize, n % 64);
        let mut out = [0u64; 4];
        for i in (words..4).rev() {
            let hi = self.0[i - words] << bits;
            let lo = if bits > 0 && i > words {
                self.0[i - words - 1] >> (64 - bits)
            } else {
                0
            };
            out[i] = hi | lo;
        }
        Some(U256(out))
    }

    fn is_zero(self) -> bool {
        self.0 == [0; 4]
    }
}

/// ASERT parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Asert {
    /// Target (compact) of the anchor (genesis) block, also the easiest allowed.
    pub pow_limit_bits: u32,
    /// Time of the anchor block.
    pub anchor_time: u64,
    /// Height of the anchor block.
    pub anchor_height: u64,
    /// Ideal seconds between blocks.
    pub interval: u64,
    /// Seconds of schedule drift that double or halve the target.
    pub halflife: u64,
}

impl Asert {
    /// Compact target of the block after a parent at `parent_height` with `parent_time`.
    pub fn next_bits(&self, parent_height: u64, parent_time: u64) -> u32 {
        let limit = U256::from_target(Target::from_compact(CompactTarget::from_consensus(
            self.pow_limit_bits,
        )));
        let time_delta = parent_time as i128 - self.anchor_time as i128;
        let height_delta = parent_height as i128 - self.anchor_height as i128;
        let exponent = ((time_delta - self.interval as i128 * (height_delta + 1)) * 65536)
            / self.halflife.max(1) as i128;
        // Arithmetic shift: floor division by 2^16 for negative exponents too.
        let shifts = exponent >> 16;
        let frac = (exponent - (shifts << 16)) as u128;
        debug_assert!(frac < 65536);
        let factor = 65536u128
            + ((195_766_423_245_049u128 * frac
                + 971_821_376u128 * frac * frac
                + 5_127u128 * frac * frac * frac
                + (1u128 << 47))
                >> 48);
        // Targets near 2^256 (regtest-style limits) would overflow: drop the 16 fraction
        // bits before multiplying instead of after (a 2^-16 relative error at most).
        let (mut next, pre_shifted) = match limit.mul_u64(factor as u64) {
            Some(n) => (n, false),
            None => match limit.shr(16).mul_u64(factor as u64) {
                Some(n) => (n, true),
                None => return self.pow_limit_bits,
            },
        };
        if shifts < 0 {
            next = next.shr(shifts.unsigned_abs().min(512) as u32);
        } else {
            match next.shl(shifts.min(512) as u32) {
                Some(n) => next = n,
                None => return self.pow_limit_bits,
            }
        }
        if !pre_shifted {
            next = next.shr(16);
        }
        if next.is_zero() {
            next = U256([1, 0, 0, 0]);
        }
        let t = next.to_target();
        if t > limit.to_target() {
            return self.pow_limit_bits;
        }
        t.to_compact_lossy().to_consensus()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asert() -> Asert {
        Asert {
            pow_limit_bits: 0x1d00_ffff,
            anchor_time: 1_000_000,
            anchor_height: 0,
            interval: 10,
            halflife: 3600,
        }
    }

    fn target(bits: u32) -> Target {
        Target::from_compact(CompactTarget::from_consensus(bits))
    }

    #[test]
    fn on_schedule_keeps_the_anchor_target() {
        let a = asert();
        for h in [0u64, 1, 10, 1000] {
            assert_eq!(a.next_bits(h, 1_000_000 + 10 * (h + 1)), 0x1d00_ffff);
        }
    }

    #[test]
    fn one_halflife_ahead_halves_the_target_and_behind_is_capped() {
        let a = asert();
        let bits = a.next_bits(1000, 1_000_000 + 10 * 1001 - 3600);
        let half = U256::from_target(target(0x1d00_ffff)).shr(1).to_target();
        assert_eq!(target(bits), Target::from_compact(half.to_compact_lossy()));
        // Far behind schedule: never easier than the limit.
        assert_eq!(a.next_bits(10, 10_000_000), 0x1d00_ffff);
        // Far ahead: harder and harder, never zero.
        let hard = a.next_bits(100_000, 1_000_000);
        assert!(target(hard) < target(bits));
        assert!(target(hard) > Target::ZERO);
    }

    #[test]
    fn faster_blocks_mean_monotonically_harder_targets() {
        let a = asert();
        let mut prev = target(a.next_bits(100, 1_000_000 + 1010));
        for ahead in (60..7200).step_by(60) {
            let t = target(a.next_bits(100, 1_000_000 + 1010 - ahead));
            assert!(t <= prev, "{ahead}");
            prev = t;
        }
    }

    #[test]
    fn limits_near_two_to_the_256_do_not_overflow() {
        let a = Asert {
            pow_limit_bits: 0x207f_ffff,
            ..asert()
        };
        let on = a.next_bits(10, 1_000_000 + 110);
        assert_eq!(on, 0x207f_ffff);
        let ahead = a.next_bits(10, 1_000_000 + 110 - 3600);
        assert!(target(ahead) < target(on));
    }

    #[test]
    fn u256_shifts_roundtrip() {
        let x = U256([0x1234, 0x5678, 0x9abc, 0x0def]);
        for n in [0u32, 1, 63, 64, 65, 100] {
            if let Some(y) = x.shl(n) {
                assert_eq!(y.shr(n), x, "{n}");
            }
        }
        assert_eq!(U256([0, 0, 0, 1 << 63]).shl(1), None);
    }
}
