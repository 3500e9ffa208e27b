//! Integers of every PREDA type in one representation: an `i128` when the value fits (the
//! common case, no allocation), a `num_bigint::BigInt` otherwise. The static type (width,
//! signedness or `bigint`) lives in the bytecode, and every operation checks its result
//! against it: overflow is an error, never a wrap.

use std::cmp::Ordering;

use num_bigint::{BigInt, BigUint, Sign};
use num_traits::{One, Signed, ToPrimitive, Zero};

/// `bigint` values are limited to `|x| < 2^8128` (PREDA's range).
pub const BIGINT_BITS: u64 = 8128;

/// A fixed-width integer type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IntTy {
    /// Signed (`intN`) or not (`uintN`).
    pub signed: bool,
    /// Width: 8, 16, 32, 64, 128, 256 or 512.
    pub bits: u16,
}

impl IntTy {
    /// `int32`, the type of unsuffixed literals.
    pub const INT32: IntTy = IntTy {
        signed: true,
        bits: 32,
    };
    /// `uint32`: lengths and indices.
    pub const UINT32: IntTy = IntTy {
        signed: false,
        bits: 32,
    };
    /// `uint64`.
    pub const UINT64: IntTy = IntTy {
        signed: false,
        bits: 64,
    };
    /// `uint16`.
    pub const UINT16: IntTy = IntTy {
        signed: false,
        bits: 16,
    };
    /// `uint256`.
    pub const UINT256: IntTy = IntTy {
        signed: false,
        bits: 256,
    };

    /// Whether `bits` is a valid width.
    pub fn valid_bits(bits: u16) -> bool {
        matches!(bits, 8 | 16 | 32 | 64 | 128 | 256 | 512)
    }

    /// The type's name (`uint64`).
    pub fn name(self) -> String {
        format!("{}int{}", if self.signed { "" } else { "u" }, self.bits)
    }

    /// Bytes of its fixed encoding.
    pub fn bytes(self) -> usize {
        self.bits as usize / 8
    }
}

/// The arithmetic type of an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NumTy {
    /// A fixed-width type.
    Fixed(IntTy),
    /// `bigint`.
    Big,
}

/// An integer value.
#[derive(Clone, Debug)]
pub enum Int {
    /// Fits `i128`.
    Small(i128),
    /// Does not fit `i128` (never holds a value that would).
    Big(Box<BigInt>),
}

impl PartialEq for Int {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Int {}

impl PartialOrd for Int {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Int {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Int::Small(a), Int::Small(b)) => a.cmp(b),
            (Int::Small(_), Int::Big(b)) => {
                if b.is_negative() {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            (Int::Big(a), Int::Small(_)) => {
                if a.is_negative() {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
            (Int::Big(a), Int::Big(b)) => a.cmp(b),
        }
    }
}

impl From<i128> for Int {
    fn from(v: i128) -> Self {
        Int::Small(v)
    }
}

impl From<u64> for Int {
    fn from(v: u64) -> Self {
        Int::Small(v as i128)
    }
}

impl From<u32> for Int {
    fn from(v: u32) -> Self {
        Int::Small(v as i128)
    }
}

impl From<BigInt> for Int {
    fn from(v: BigInt) -> Self {
        match v.to_i128() {
            Some(s) => Int::Small(s),
            None => Int::Big(Box::new(v)),
        }
    }
}

impl From<BigUint> for Int {
    fn from(v: BigUint) -> Self {
        Int::from(BigInt::from(v))
    }
}

fn pow2(bits: u64) -> BigInt {
    BigInt::one() << bits
}

/// The little-endian magnitude of `v` and its minimal length (0 for zero): what
/// [`Int::to_sign_magnitude`] returns, without a heap vector.
pub(crate) fn small_magnitude(v: i128) -> ([u8; 16], usize) {
    let m = v.unsigned_abs();
    (m.to_le_bytes(), 16 - m.leading_zeros() as usize / 8)
}

impl Int {
    /// Zero.
    pub const ZERO: Int = Int::Small(0);

    /// As a `BigInt`.
    pub fn to_big(&self) -> BigInt {
        match self {
            Int::Small(v) => BigInt::from(*v),
            Int::Big(b) => (**b).clone(),
        }
    }

    /// Whether the value is below zero.
    pub fn is_negative(&self) -> bool {
        match self {
            Int::Small(v) => *v < 0,
            Int::Big(b) => b.is_negative(),
        }
    }

    /// Whether the value is zero.
    pub fn is_zero(&self) -> bool {
        matches!(self, Int::Small(0))
    }

    /// The value as `u64`, if it fits.
    pub fn to_u64(&self) -> Option<u64> {
        match self {
            Int::Small(v) => u64::try_from(*v).ok(),
            Int::Big(_) => None,
        }
    }

    /// The value as `u32`, if it fits.
    pub fn to_u32(&self) -> Option<u32> {
        self.to_u64().and_then(|v| u32::try_from(v).ok())
    }

    /// Bits needed for the magnitude.
    pub fn magnitude_bits(&self) -> u64 {
        match self {
            Int::Small(v) => 128 - v.unsigned_abs().leading_zeros() as u64,
            Int::Big(b) => b.bits(),
        }
    }

    /// 64-bit words of the magnitude (for gas).
    pub fn words(&self) -> u64 {
        self.magnitude_bits().div_ceil(64).max(1)
    }

    /// Whether the value is in the range of `ty`.
    pub fn fits(&self, ty: NumTy) -> bool {
        match ty {
            NumTy::Big => self.magnitude_bits() <= BIGINT_BITS,
            NumTy::Fixed(t) => {
                let bits = t.bits as u32;
                match self {
                    Int::Small(v) => {
                        if t.signed {
                            if bits >= 128 {
                                true
                            } else {
                                let lim = 1i128 << (bits - 1);
                                *v >= -lim && *v < lim
                            }
                        } else if *v < 0 {
                            false
                        } else if bits >= 127 {
                            true
                        } else {
                            *v < (1i128 << bits)
                        }
                    }
                    Int::Big(b) => {
                        if t.signed {
                            let lim = pow2(bits as u64 - 1);
                            **b >= -lim.clone() && **b < lim
                        } else {
                            !b.is_negative() && b.bits() <= bits as u64
                        }
                    }
                }
            }
        }
    }

    fn checked(self, ty: NumTy) -> Option<Int> {
        self.fits(ty).then_some(self)
    }

    /// `a + b` in `ty`.
    pub fn add(&self, b: &Int, ty: NumTy) -> Option<Int> {
        let r = match (self, b) {
            (Int::Small(x), Int::Small(y)) => match x.checked_add(*y) {
                Some(v) => Int::Small(v),
                None => Int::from(BigInt::from(*x) + BigInt::from(*y)),
            },
            _ => Int::from(self.to_big() + b.to_big()),
        };
        r.checked(ty)
    }

    /// `a - b` in `ty`.
    pub fn sub(&self, b: &Int, ty: NumTy) -> Option<Int> {
        let r = match (self, b) {
            (Int::Small(x), Int::Small(y)) => match x.checked_sub(*y) {
                Some(v) => Int::Small(v),
                None => Int::from(BigInt::from(*x) - BigInt::from(*y)),
            },
            _ => Int::from(self.to_big() - b.to_big()),
        };
        r.checked(ty)
    }

    /// `a * b` in `ty`.
    pub fn mul(&self, b: &Int, ty: NumTy) -> Option<Int> {
        let r = match (self, b) {
            (Int::Small(x), Int::Small(y)) => match x.checked_mul(*y) {
                Some(v) => Int::Small(v),
                None => Int::from(BigInt::from(*x) * BigInt::from(*y)),
            },
            _ => {
                // Refuse before computing a product that could never fit.
                if self.magnitude_bits() + b.magnitude_bits() > BIGINT_BITS + 64 {
                    return None;
                }
                Int::from(self.to_big() * b.to_big())
            }
        };
        r.checked(ty)
    }

    /// `a / b` truncated toward zero (C); `None` on division by zero or overflow.
    pub fn div(&self, b: &Int, ty: NumTy) -> Option<Int> {
        if b.is_zero() {
            return None;
        }
        let r = match (self, b) {
            (Int::Small(x), Int::Small(y)) => match x.checked_div(*y) {
                Some(v) => Int::Small(v),
                None => Int::from(BigInt::from(*x) / BigInt::from(*y)),
            },
            _ => Int::from(self.to_big() / b.to_big()),
        };
        r.checked(ty)
    }

    /// `a % b` with the sign of `a` (C); `None` on division by zero.
    pub fn rem(&self, b: &Int, ty: NumTy) -> Option<Int> {
        if b.is_zero() {
            return None;
        }
        let r = match (self, b) {
            (Int::Small(x), Int::Small(y)) => match x.checked_rem(*y) {
                Some(v) => Int::Small(v),
                None => Int::Small(0),
            },
            _ => Int::from(self.to_big() % b.to_big()),
        };
        r.checked(ty)
    }

    /// `-a` in `ty`.
    pub fn neg(&self, ty: NumTy) -> Option<Int> {
        let r = match self {
            Int::Small(x) => match x.checked_neg() {
                Some(v) => Int::Small(v),
                None => Int::from(-BigInt::from(*x)),
            },
            Int::Big(b) => Int::from(-(**b).clone()),
        };
        r.checked(ty)
    }

    fn to_biguint(&self) -> Option<BigUint> {
        self.to_big().to_biguint()
    }

    /// Bitwise operations on unsigned values: `op` is `&`, `|` or `^`.
    pub fn bitwise(&self, b: &Int, op: u8, ty: IntTy) -> Option<Int> {
        if let (Int::Small(x), Int::Small(y)) = (self, b) {
            if *x >= 0 && *y >= 0 {
                let v = match op {
                    b'&' => x & y,
                    b'|' => x | y,
                    _ => x ^ y,
                };
                return Int::Small(v).checked(NumTy::Fixed(ty));
            }
        }
        let (x, y) = (self.to_biguint()?, b.to_biguint()?);
        let v = match op {
            b'&' => x & y,
            b'|' => x | y,
            _ => x ^ y,
        };
        Int::from(v).checked(NumTy::Fixed(ty))
    }

    /// `~a` for an unsigned type: `2^bits - 1 - a`.
    pub fn bit_not(&self, ty: IntTy) -> Option<Int> {
        if self.is_negative() || !self.fits(NumTy::Fixed(ty)) {
            return None;
        }
        if ty.bits < 127 {
            if let Int::Small(x) = self {
                return Some(Int::Small(((1i128 << ty.bits) - 1) - x));
            }
        }
        Some(Int::from(
            pow2(ty.bits as u64) - BigInt::one() - self.to_big(),
        ))
    }

    /// `a << n` for an unsigned type: bits shifted past the width are dropped.
    pub fn shl(&self, n: &Int, ty: IntTy) -> Option<Int> {
        if self.is_negative() || n.is_negative() {
            return None;
        }
        let Some(n) = n.to_u64().filter(|n| *n < ty.bits as u64) else {
            return Some(Int::ZERO);
        };
        if ty.bits <= 64 {
            if let Int::Small(x) = self {
                let mask = if ty.bits == 64 {
                    u64::MAX as i128
                } else {
                    (1i128 << ty.bits) - 1
                };
                return Some(Int::Small((x << n) & mask));
            }
        }
        let mask = pow2(ty.bits as u64) - BigInt::one();
        Some(Int::from((self.to_big() << n) & mask))
    }

    /// `a >> n` for an unsigned type (logical).
    pub fn shr(&self, n: &Int, ty: IntTy) -> Option<Int> {
        if self.is_negative() || n.is_negative() {
            return None;
        }
        let Some(n) = n.to_u64().filter(|n| *n < ty.bits as u64) else {
            return Some(Int::ZERO);
        };
        match self {
            Int::Small(x) => Some(Int::Small(x >> n)),
            Int::Big(b) => Some(Int::from(&**b >> n)),
        }
    }

    /// Converts to `ty`, `None` when out of range.
    pub fn convert(&self, ty: NumTy) -> Option<Int> {
        self.clone().checked(ty)
    }

    /// Fixed-width little-endian two's complement encoding.
    pub fn to_le(&self, ty: IntTy, out: &mut Vec<u8>) {
        let n = ty.bytes();
        match self {
            Int::Small(v) if n <= 16 => out.extend_from_slice(&v.to_le_bytes()[..n]),
            Int::Small(v) => {
                out.extend_from_slice(&v.to_le_bytes());
                let fill = if *v < 0 { 0xff } else { 0 };
                out.extend(std::iter::repeat_n(fill, n - 16));
            }
            Int::Big(b) => {
                let mut bytes = b.to_signed_bytes_le();
                let fill = if b.is_negative() { 0xff } else { 0 };
                bytes.resize(n, fill);
                out.extend_from_slice(&bytes[..n]);
            }
        }
    }

    /// Decodes [`Int::to_le`] output.
    pub fn from_le(bytes: &[u8], signed: bool) -> Int {
        if bytes.len() <= 16 {
            let neg = signed && bytes.last().is_some_and(|b| b & 0x80 != 0);
            let mut buf = if neg { [0xffu8; 16] } else { [0u8; 16] };
            buf[..bytes.len()].copy_from_slice(bytes);
            let v = i128::from_le_bytes(buf);
            if !signed && bytes.len() == 16 && v < 0 {
                return Int::from(BigInt::from_bytes_le(Sign::Plus, bytes));
            }
            return Int::Small(v);
        }
        if signed {
            Int::from(BigInt::from_signed_bytes_le(bytes))
        } else {
            Int::from(BigInt::from_bytes_le(Sign::Plus, bytes))
        }
    }

    /// Sign and minimal little-endian magnitude, for the bigint encoding.
    pub fn to_sign_magnitude(&self) -> (bool, Vec<u8>) {
        if let Int::Small(v) = self {
            let (bytes, len) = small_magnitude(*v);
            return (*v < 0, bytes[..len].to_vec());
        }
        let b = self.to_big();
        let (sign, mag) = b.to_bytes_le();
        if b.is_zero() {
            return (false, Vec::new());
        }
        (sign == Sign::Minus, mag)
    }

    /// From sign and magnitude (the caller checks minimality).
    pub fn from_sign_magnitude(negative: bool, mag: &[u8]) -> Int {
        if mag.len() < 16 {
            let mut b = [0u8; 16];
            b[..mag.len()].copy_from_slice(mag);
            // Below 2^120: the magnitude and its negation both fit `i128`.
            let m = u128::from_le_bytes(b) as i128;
            return Int::Small(if negative { -m } else { m });
        }
        let m = BigInt::from_bytes_le(Sign::Plus, mag);
        Int::from(if negative { -m } else { m })
    }

    /// Parses decimal or `0x` hex text with an optional leading `-`.
    pub fn parse(s: &str) -> Option<Int> {
        let s = s.trim();
        let (neg, body) = match s.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, s),
        };
        let (radix, digits) = match body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
            Some(h) => (16, h),
            None => (10, body),
        };
        if digits.is_empty() || digits.len() > 2600 {
            return None;
        }
        let m = BigInt::parse_bytes(digits.as_bytes(), radix)?;
        if m.is_negative() {
            return None;
        }
        Some(Int::from(if neg { -m } else { m }))
    }

    /// The value as an `f64`-free decimal string.
    pub fn to_decimal(&self) -> String {
        match self {
            Int::Small(v) => v.to_string(),
            Int::Big(b) => b.to_string(),
        }
    }
}

impl std::fmt::Display for Int {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_decimal())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U8: NumTy = NumTy::Fixed(IntTy {
        signed: false,
        bits: 8,
    });
    const I8: NumTy = NumTy::Fixed(IntTy {
        signed: true,
        bits: 8,
    });
    const U512: IntTy = IntTy {
        signed: false,
        bits: 512,
    };

    #[test]
    fn sign_magnitude_fast_paths_match_bigint() {
        let two120 = BigInt::from(1u8) << 120usize;
        let mut vals: Vec<BigInt> = [0i128, 1, -1, 255, -256, 1 << 64, i128::MAX, i128::MIN]
            .iter()
            .map(|&v| BigInt::from(v))
            .collect();
        vals.extend([
            two120.clone() - 1u8,
            two120.clone(),
            -two120.clone(),
            -(two120 - 1u8),
        ]);
        for b in vals {
            let i = Int::from(b.clone());
            let (sign, mag) = b.to_bytes_le();
            let want = if b.is_zero() {
                (false, Vec::new())
            } else {
                (sign == Sign::Minus, mag)
            };
            assert_eq!(i.to_sign_magnitude(), want, "{b}");
            assert_eq!(Int::from_sign_magnitude(want.0, &want.1), i, "{b}");
        }
    }

    #[test]
    fn overflow_is_detected_at_every_width() {
        assert_eq!(
            Int::from(200u32).add(&Int::from(55u32), U8),
            Some(Int::from(255u32))
        );
        assert_eq!(Int::from(200u32).add(&Int::from(56u32), U8), None);
        assert_eq!(Int::from(0u32).sub(&Int::from(1u32), U8), None);
        assert_eq!(Int::Small(-128).neg(I8), None);
        assert_eq!(Int::Small(-128).div(&Int::Small(-1), I8), None);
        assert_eq!(Int::Small(7).div(&Int::ZERO, I8), None);
        assert_eq!(Int::Small(-7).div(&Int::Small(2), I8), Some(Int::Small(-3)));
        assert_eq!(Int::Small(-7).rem(&Int::Small(2), I8), Some(Int::Small(-1)));
        let max512 = Int::from(pow2(512) - BigInt::one());
        assert!(max512.fits(NumTy::Fixed(U512)));
        assert_eq!(max512.add(&Int::from(1u32), NumTy::Fixed(U512)), None);
        assert!(max512.add(&Int::from(1u32), NumTy::Big).is_some());
        let huge = Int::from(pow2(8127));
        assert_eq!(huge.mul(&Int::from(2u32), NumTy::Big), None);
    }

    #[test]
    fn normalised_representation_compares_correctly() {
        let a = Int::from(BigInt::from(5));
        assert!(matches!(a, Int::Small(5)));
        let big = Int::from(pow2(200));
        assert!(big > Int::Small(i128::MAX));
        assert!(-big.to_big() < BigInt::from(i128::MIN));
        assert_eq!(big.sub(&big, NumTy::Big), Some(Int::ZERO));
    }

    #[test]
    fn shifts_drop_bits_past_the_width() {
        let u32t = IntTy::UINT32;
        assert_eq!(
            Int::from(0x8000_0000u32).shl(&Int::from(1u32), u32t),
            Some(Int::ZERO)
        );
        assert_eq!(
            Int::from(1u32).shl(&Int::from(40u32), u32t),
            Some(Int::ZERO)
        );
        assert_eq!(
            Int::from(0x8000_0000u32).shr(&Int::from(2u32), u32t),
            Some(Int::from(0x2000_0000u32))
        );
        assert_eq!(Int::from(0u32).bit_not(u32t), Some(Int::from(u32::MAX)));
        assert_eq!(
            Int::from(0u32).bit_not(U512),
            Some(Int::from(pow2(512) - BigInt::one()))
        );
    }

    #[test]
    fn fixed_encoding_roundtrips() {
        for (v, ty) in [
            (
                Int::Small(-1),
                IntTy {
                    signed: true,
                    bits: 8,
                },
            ),
            (
                Int::Small(-5),
                IntTy {
                    signed: true,
                    bits: 256,
                },
            ),
            (Int::from(u64::MAX), IntTy::UINT64),
            (
                Int::from(pow2(127)),
                IntTy {
                    signed: false,
                    bits: 128,
                },
            ),
            (Int::from(pow2(300)), U512),
        ] {
            let mut b = Vec::new();
            v.to_le(ty, &mut b);
            assert_eq!(b.len(), ty.bytes());
            assert_eq!(Int::from_le(&b, ty.signed), v);
        }
    }
}
