//! BIP340 batch verification: many signatures checked with one multi-scalar multiplication.
//!
//! A BIP340 signature `(r, s)` by key `P` on message `m` is valid when `r < p`, `s < n`,
//! `P` and `r` are x coordinates of curve points, and `s·G − e·P = R`, where `R` is the
//! point with x coordinate `r` and even y and `e = H_challenge(r ‖ P ‖ m) mod n`. For
//! signatures `1..u` and randomizers `a_1 = 1, a_2..a_u` the batch holds when
//!
//! ```text
//! (Σ a_i·s_i)·G − Σ a_i·R_i − Σ (a_i·e_i)·P_i = 0
//! ```
//!
//! (BIP340, "Batch Verification"). If every signature is valid the sum is zero. If one is
//! not, the sum is zero only for one value of its randomizer out of 2^128: the randomizers
//! come from a keyed PRF (SHA-256 over a 256-bit secret drawn from the OS when the process
//! starts and a batch counter), so whoever chose the signatures cannot know them.
//!
//! The sum is one multi-scalar multiplication of `2u + 1` points, done with Pippenger's
//! bucket method and signed digits over the `k256` crate's curve arithmetic (complete
//! addition formulas: no exceptional cases to get wrong). With a few hundred signatures
//! that costs about a third less than one libsecp256k1 verification per signature.
//!
//! A batch that fails says only that some signature is invalid: [`verify_each`] then checks
//! each one alone with libsecp256k1, so a result per signature is always libsecp256k1's
//! when the batch fails, and acceptance never rests on anything but the equation above.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;

use bitcoin::hashes::{sha256, Hash as _, HashEngine as _};
use bitcoin::secp256k1::PublicKey;
use k256::elliptic_curve::group::Group as _;
use k256::elliptic_curve::sec1::FromEncodedPoint as _;
use k256::elliptic_curve::PrimeField as _;
use k256::{AffinePoint, EncodedPoint, FieldBytes, ProjectivePoint, Scalar, U256};

use super::{verify_signature, Address, KeyCache};
use crate::hash::Hash256;

/// One signature to check: the signer's address (its x-only key), the 32-byte message and
/// the 64-byte signature.
#[derive(Clone, Copy, Debug)]
pub struct SigCheck<'a> {
    /// The signer.
    pub key: &'a Address,
    /// The signed digest.
    pub msg: &'a Hash256,
    /// The BIP340 signature.
    pub sig: &'a [u8; 64],
}

impl SigCheck<'_> {
    /// This signature alone, with libsecp256k1.
    pub fn verify(&self) -> bool {
        verify_signature(self.key, self.msg, self.sig)
    }
}

/// Below this many signatures a batch is checked one by one: the multi-scalar
/// multiplication's fixed costs outweigh what it saves.
pub const MIN_BATCH: usize = 16;

/// Whether every signature in `items` is valid (true for none). One multi-scalar
/// multiplication for the lot; fewer than [`MIN_BATCH`] are verified one by one.
pub fn verify_batch(items: &[SigCheck<'_>]) -> bool {
    if items.len() < MIN_BATCH {
        return items.iter().all(SigCheck::verify);
    }
    batch_equation_holds(items)
}

/// Whether each signature in `items` is valid: one batch, and each signature alone with
/// libsecp256k1 only if the batch fails.
pub fn verify_each(items: &[SigCheck<'_>]) -> Vec<bool> {
    if items.len() >= MIN_BATCH && batch_equation_holds(items) {
        return vec![true; items.len()];
    }
    items.iter().map(SigCheck::verify).collect()
}

/// Keys lifted to points by address, as [`super::Address::to_xonly`] keeps libsecp256k1's
/// (16 sets of at most 4,096, about 9 MB).
static POINTS: LazyLock<KeyCache<AffinePoint>> = LazyLock::new(KeyCache::new);

/// The point with x coordinate `x` and even y, if `x < p` is on the curve (BIP340's
/// `lift_x`). libsecp256k1 parses it (its square root is a third faster than `k256`'s) and
/// `k256` takes both coordinates, checking again that they are on the curve.
fn lift_x(x: &[u8; 32]) -> Option<AffinePoint> {
    let mut compressed = [0x02; 33];
    compressed[1..].copy_from_slice(x);
    let key = PublicKey::from_slice(&compressed).ok()?;
    let point = EncodedPoint::from_bytes(key.serialize_uncompressed()).ok()?;
    AffinePoint::from_encoded_point(&point).into()
}

/// The process's randomizer key: 32 bytes from the OS (`getrandom`). Never leaves this
/// module. Where the OS gives none, 128 bits from the standard library's OS-seeded hasher
/// keys stand in, with a warning.
static SECRET: LazyLock<[u8; 32]> = LazyLock::new(|| {
    let mut out = [0u8; 32];
    if let Err(e) = getrandom::getrandom(&mut out) {
        tracing::warn!(error = %e, "no OS randomness for the batch verifier's key; using the hasher's seed");
        let s = RandomState::new();
        for (i, chunk) in out.chunks_exact_mut(8).enumerate() {
            chunk.copy_from_slice(&s.hash_one(i as u64).to_le_bytes());
        }
    }
    out
});

/// Batches checked so far: each batch's randomizers come from its own counter value.
static BATCHES: AtomicU64 = AtomicU64::new(0);

/// `n` randomizers: the first is 1, the others 128-bit outputs of SHA-256 keyed with
/// [`SECRET`] over this batch's counter value and the pair's index (never zero).
fn randomizers(n: usize) -> Vec<Scalar> {
    let batch = BATCHES.fetch_add(1, Ordering::Relaxed);
    let mut out = Vec::with_capacity(n);
    out.push(Scalar::ONE);
    let mut pair = 0u64;
    while out.len() < n {
        let mut e = sha256::HashEngine::default();
        e.input(&SECRET[..]);
        e.input(&batch.to_le_bytes());
        e.input(&pair.to_le_bytes());
        let h = sha256::Hash::from_engine(e).to_byte_array();
        for half in h.chunks_exact(16) {
            let mut repr = [0u8; 32];
            repr[16..].copy_from_slice(half);
            // Below 2^128, so always a scalar; a zero (chance 2^-128) is replaced by one.
            let a = Option::<Scalar>::from(Scalar::from_repr(repr.into()))
                .filter(|a| !bool::from(a.is_zero()))
                .unwrap_or(Scalar::ONE);
            if out.len() < n {
                out.push(a);
            }
        }
        pair += 1;
    }
    out
}

/// SHA-256 after BIP340's challenge tag prefix (`SHA256(tag) ‖ SHA256(tag)`), one block.
static CHALLENGE: LazyLock<sha256::HashEngine> = LazyLock::new(|| {
    let tag = sha256::Hash::hash(b"BIP0340/challenge");
    let mut e = sha256::HashEngine::default();
    e.input(tag.as_byte_array());
    e.input(tag.as_byte_array());
    e
});

/// `e = H_challenge(r ‖ P ‖ m) mod n`.
fn challenge(r: &[u8], key: &Address, msg: &Hash256) -> Scalar {
    let mut e = CHALLENGE.clone();
    e.input(r);
    e.input(&key.0);
    e.input(&msg.0);
    let h = sha256::Hash::from_engine(e).to_byte_array();
    <Scalar as k256::elliptic_curve::ops::Reduce<U256>>::reduce_bytes(&FieldBytes::from(h))
}

/// The batch equation for `items`: false as soon as a key, `r` or `s` is out of range.
fn batch_equation_holds(items: &[SigCheck<'_>]) -> bool {
    SCRATCH.with_borrow_mut(|scratch| {
        let holds = equation_holds_in(items, scratch);
        scratch.trim();
        holds
    })
}

fn equation_holds_in(items: &[SigCheck<'_>], scratch: &mut Scratch) -> bool {
    let a = randomizers(items.len());
    let terms = &mut scratch.terms;
    terms.clear();
    let mut g = Scalar::ZERO;
    for (it, a) in items.iter().zip(a) {
        let Some(p) = POINTS.get_or_parse(it.key, lift_x) else {
            return false;
        };
        let r: &[u8; 32] = it.sig[..32].try_into().expect("32 of 64 bytes");
        let Some(big_r) = lift_x(r) else {
            return false;
        };
        let s: [u8; 32] = it.sig[32..].try_into().expect("32 of 64 bytes");
        let Some(s) = Option::<Scalar>::from(Scalar::from_repr(s.into())) else {
            return false;
        };
        let e = challenge(r, it.key, it.msg);
        g += a * s;
        terms.push(-big_r, &a, HALF_BITS);
        terms.push(-p, &(a * e), FULL_BITS);
    }
    terms.push(AffinePoint::GENERATOR, &g, FULL_BITS);
    let sum = msm(&scratch.terms, &mut scratch.digits, &mut scratch.buckets);
    bool::from(sum.is_identity())
}

/// A thread's buffers for its batches, kept between them: a batch of a few hundred
/// signatures needs a few hundred kB, which fresh from the allocator costs page faults.
#[derive(Default)]
struct Scratch {
    terms: Terms,
    digits: Vec<i16>,
    buckets: Vec<ProjectivePoint>,
}

/// Terms a thread keeps room for between batches; a bigger batch's buffers are freed.
const SCRATCH_TERMS: usize = 4_096;

impl Scratch {
    fn trim(&mut self) {
        if self.terms.points.capacity() > SCRATCH_TERMS {
            *self = Scratch::default();
        }
    }
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

/// Bits of a randomizer.
const HALF_BITS: usize = 128;
/// Bits of any scalar.
const FULL_BITS: usize = 256;

/// Points with their scalars (as little-endian 64-bit limbs) and how many low bits of each
/// scalar may be set.
#[derive(Default)]
struct Terms {
    points: Vec<AffinePoint>,
    scalars: Vec<[u64; 4]>,
    bits: Vec<usize>,
}

impl Terms {
    fn clear(&mut self) {
        self.points.clear();
        self.scalars.clear();
        self.bits.clear();
    }

    fn push(&mut self, point: AffinePoint, scalar: &Scalar, bits: usize) {
        let be = scalar.to_bytes();
        let mut limbs = [0u64; 4];
        for (i, l) in limbs.iter_mut().enumerate() {
            let at = 32 - 8 * (i + 1);
            *l = u64::from_be_bytes(be[at..at + 8].try_into().expect("8 bytes"));
        }
        debug_assert!(bits == FULL_BITS || limbs[bits / 64..].iter().all(|&l| l == 0));
        self.points.push(point);
        self.scalars.push(limbs);
        self.bits.push(bits);
    }

    /// `Σ scalar·point`.
    #[cfg(test)]
    fn sum(&self) -> ProjectivePoint {
        msm(self, &mut Vec::new(), &mut Vec::new())
    }
}

/// The window width for `n` points: about log2(n), where the buckets' fixed cost per window
/// (2^c additions) meets the points' (one addition each).
fn window_bits(n: usize) -> usize {
    match n {
        0..=63 => 4,
        64..=255 => 5,
        256..=1_535 => 7,
        _ => 8,
    }
}

/// Windows of `c` bits that hold a `bits`-bit scalar in signed digits: one bit more than
/// the scalar, for the last carry.
fn windows(bits: usize, c: usize) -> usize {
    (bits + 1).div_ceil(c)
}

/// The scalar's signed base-2^c digits, lowest first, each in `(-2^(c-1), 2^(c-1)]`, into
/// `out` (`windows(bits, c)` of them).
///
/// The top window holds at most `c - 1` of the scalar's bits (see [`windows`]), so its
/// digit plus a carry never exceeds 2^(c-1) and no carry is left over.
fn signed_digits(limbs: &[u64; 4], bits: usize, c: usize, out: &mut Vec<i16>) {
    let mask = (1u64 << c) - 1;
    let half = 1i64 << (c - 1);
    let mut carry = 0i64;
    for w in 0..windows(bits, c) {
        let bit = w * c;
        let mut v = 0u64;
        if bit < 256 {
            let (limb, off) = (bit / 64, bit % 64);
            v = limbs[limb] >> off;
            if off + c > 64 && limb + 1 < 4 {
                v |= limbs[limb + 1] << (64 - off);
            }
            v &= mask;
        }
        let mut d = v as i64 + carry;
        carry = 0;
        if d > half {
            d -= 1 << c;
            carry = 1;
        }
        out.push(d as i16);
    }
    debug_assert_eq!(carry, 0);
}

/// `Σ scalars[i]·points[i]` by Pippenger's bucket method with signed digits: per window,
/// from the top, double the total `c` times, add each point into the bucket of its digit
/// (negated for a negative digit), and add `Σ j·bucket_j` with a running sum.
///
/// `digits` and `buckets` are working space (their contents are overwritten).
fn msm(
    terms: &Terms,
    digits: &mut Vec<i16>,
    buckets: &mut Vec<ProjectivePoint>,
) -> ProjectivePoint {
    let Terms {
        points,
        scalars,
        bits,
    } = terms;
    let c = window_bits(points.len());
    let max_windows = bits.iter().map(|&b| windows(b, c)).max().unwrap_or(0);
    // Each point's digits, padded with zeros to the widest scalar's windows.
    digits.clear();
    for (s, &b) in scalars.iter().zip(bits) {
        let start = digits.len();
        signed_digits(s, b, c, digits);
        digits.resize(start + max_windows, 0);
    }
    buckets.clear();
    buckets.resize(1 << (c - 1), ProjectivePoint::IDENTITY);
    let mut total = ProjectivePoint::IDENTITY;
    for w in (0..max_windows).rev() {
        for _ in 0..c {
            total = total.double();
        }
        buckets.fill(ProjectivePoint::IDENTITY);
        for (i, p) in points.iter().enumerate() {
            let d = digits[i * max_windows + w];
            match d.cmp(&0) {
                std::cmp::Ordering::Greater => buckets[d as usize - 1] += p,
                std::cmp::Ordering::Less => buckets[d.unsigned_abs() as usize - 1] += -*p,
                std::cmp::Ordering::Equal => {}
            }
        }
        let mut running = ProjectivePoint::IDENTITY;
        let mut window = ProjectivePoint::IDENTITY;
        for b in buckets.iter().rev() {
            running += b;
            window += running;
        }
        total += window;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::Signer;
    use bitcoin::hex::FromHex;

    /// The BIP340 test vectors with 32-byte messages (bitcoin/bips,
    /// `bip-0340/test-vectors.csv` at 7e8b5dfc, indices 0–14, with their comments):
    /// public key, message, signature, valid.
    const BIP340: [(&str, &str, &str, bool); 15] = [
        // 0: valid
        ("F9308A019258C31049344F85F89D5229B531C845836F99B08601F113BCE036F9",
         "0000000000000000000000000000000000000000000000000000000000000000",
         "E907831F80848D1069A5371B402410364BDF1C5F8307B0084C55F1CE2DCA821525F66A4A85EA8B71E482A74F382D2CE5EBEEE8FDB2172F477DF4900D310536C0",
         true),
        // 1: valid
        ("DFF1D77F2A671C5F36183726DB2341BE58FEAE1DA2DECED843240F7B502BA659",
         "243F6A8885A308D313198A2E03707344A4093822299F31D0082EFA98EC4E6C89",
         "6896BD60EEAE296DB48A229FF71DFE071BDE413E6D43F917DC8DCF8C78DE33418906D11AC976ABCCB20B091292BFF4EA897EFCB639EA871CFA95F6DE339E4B0A",
         true),
        // 2: valid
        ("DD308AFEC5777E13121FA72B9CC1B7CC0139715309B086C960E18FD969774EB8",
         "7E2D58D8B3BCDF1ABADEC7829054F90DDA9805AAB56C77333024B9D0A508B75C",
         "5831AAEED7B44BB74E5EAB94BA9D4294C49BCF2A60728D8B4C200F50DD313C1BAB745879A5AD954A72C45A91C3A51D3C7ADEA98D82F8481E0E1E03674A6F3FB7",
         true),
        // 3: test fails if msg is reduced modulo p or n
        ("25D1DFF95105F5253C4022F628A996AD3A0D95FBF21D468A1B33F8C160D8F517",
         "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF",
         "7EB0509757E246F19449885651611CB965ECC1A187DD51B64FDA1EDC9637D5EC97582B9CB13DB3933705B32BA982AF5AF25FD78881EBB32771FC5922EFC66EA3",
         true),
        // 4: valid
        ("D69C3509BB99E412E68B0FE8544E72837DFA30746D8BE2AA65975F29D22DC7B9",
         "4DF3C3F68FCC83B27E9D42C90431A72499F17875C81A599B566C9889B9696703",
         "00000000000000000000003B78CE563F89A0ED9414F5AA28AD0D96D6795F9C6376AFB1548AF603B3EB45C9F8207DEE1060CB71C04E80F593060B07D28308D7F4",
         true),
        // 5: public key not on the curve
        ("EEFDEA4CDB677750A420FEE807EACF21EB9898AE79B9768766E4FAA04A2D4A34",
         "243F6A8885A308D313198A2E03707344A4093822299F31D0082EFA98EC4E6C89",
         "6CFF5C3BA86C69EA4B7376F31A9BCB4F74C1976089B2D9963DA2E5543E17776969E89B4C5564D00349106B8497785DD7D1D713A8AE82B32FA79D5F7FC407D39B",
         false),
        // 6: has_even_y(R) is false
        ("DFF1D77F2A671C5F36183726DB2341BE58FEAE1DA2DECED843240F7B502BA659",
         "243F6A8885A308D313198A2E03707344A4093822299F31D0082EFA98EC4E6C89",
         "FFF97BD5755EEEA420453A14355235D382F6472F8568A18B2F057A14602975563CC27944640AC607CD107AE10923D9EF7A73C643E166BE5EBEAFA34B1AC553E2",
         false),
        // 7: negated message
        ("DFF1D77F2A671C5F36183726DB2341BE58FEAE1DA2DECED843240F7B502BA659",
         "243F6A8885A308D313198A2E03707344A4093822299F31D0082EFA98EC4E6C89",
         "1FA62E331EDBC21C394792D2AB1100A7B432B013DF3F6FF4F99FCB33E0E1515F28890B3EDB6E7189B630448B515CE4F8622A954CFE545735AAEA5134FCCDB2BD",
         false),
        // 8: negated s value
        ("DFF1D77F2A671C5F36183726DB2341BE58FEAE1DA2DECED843240F7B502BA659",
         "243F6A8885A308D313198A2E03707344A4093822299F31D0082EFA98EC4E6C89",
         "6CFF5C3BA86C69EA4B7376F31A9BCB4F74C1976089B2D9963DA2E5543E177769961764B3AA9B2FFCB6EF947B6887A226E8D7C93E00C5ED0C1834FF0D0C2E6DA6",
         false),
        // 9: sG - eP is infinite (x(inf) as 0)
        ("DFF1D77F2A671C5F36183726DB2341BE58FEAE1DA2DECED843240F7B502BA659",
         "243F6A8885A308D313198A2E03707344A4093822299F31D0082EFA98EC4E6C89",
         "0000000000000000000000000000000000000000000000000000000000000000123DDA8328AF9C23A94C1FEECFD123BA4FB73476F0D594DCB65C6425BD186051",
         false),
        // 10: sG - eP is infinite (x(inf) as 1)
        ("DFF1D77F2A671C5F36183726DB2341BE58FEAE1DA2DECED843240F7B502BA659",
         "243F6A8885A308D313198A2E03707344A4093822299F31D0082EFA98EC4E6C89",
         "00000000000000000000000000000000000000000000000000000000000000017615FBAF5AE28864013C099742DEADB4DBA87F11AC6754F93780D5A1837CF197",
         false),
        // 11: sig[0:32] is not an X coordinate on the curve
        ("DFF1D77F2A671C5F36183726DB2341BE58FEAE1DA2DECED843240F7B502BA659",
         "243F6A8885A308D313198A2E03707344A4093822299F31D0082EFA98EC4E6C89",
         "4A298DACAE57395A15D0795DDBFD1DCB564DA82B0F269BC70A74F8220429BA1D69E89B4C5564D00349106B8497785DD7D1D713A8AE82B32FA79D5F7FC407D39B",
         false),
        // 12: sig[0:32] is equal to field size
        ("DFF1D77F2A671C5F36183726DB2341BE58FEAE1DA2DECED843240F7B502BA659",
         "243F6A8885A308D313198A2E03707344A4093822299F31D0082EFA98EC4E6C89",
         "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F69E89B4C5564D00349106B8497785DD7D1D713A8AE82B32FA79D5F7FC407D39B",
         false),
        // 13: sig[32:64] is equal to curve order
        ("DFF1D77F2A671C5F36183726DB2341BE58FEAE1DA2DECED843240F7B502BA659",
         "243F6A8885A308D313198A2E03707344A4093822299F31D0082EFA98EC4E6C89",
         "6CFF5C3BA86C69EA4B7376F31A9BCB4F74C1976089B2D9963DA2E5543E177769FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141",
         false),
        // 14: public key exceeds the field size
        ("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC30",
         "243F6A8885A308D313198A2E03707344A4093822299F31D0082EFA98EC4E6C89",
         "6CFF5C3BA86C69EA4B7376F31A9BCB4F74C1976089B2D9963DA2E5543E17776969E89B4C5564D00349106B8497785DD7D1D713A8AE82B32FA79D5F7FC407D39B",
         false),
    ];

    fn arr<const N: usize>(hex: &str) -> [u8; N] {
        <[u8; N]>::from_hex(&hex.to_lowercase()).unwrap()
    }

    /// Owned signatures, lent out as [`SigCheck`]s.
    #[derive(Clone)]
    struct Sig(Address, Hash256, [u8; 64]);

    fn checks(sigs: &[Sig]) -> Vec<SigCheck<'_>> {
        sigs.iter()
            .map(|Sig(key, msg, sig)| SigCheck { key, msg, sig })
            .collect()
    }

    /// `n` valid signatures by `n / 3 + 1` signers (so keys repeat), messages all different.
    fn valid(n: usize, seed: u64) -> Vec<Sig> {
        let signers: Vec<Signer> = (0..n / 3 + 1)
            .map(|i| Signer::from_seed(&[seed.to_le_bytes(), (i as u64).to_le_bytes()].concat()))
            .collect();
        (0..n)
            .map(|i| {
                let s = &signers[i % signers.len()];
                let msg = Hash256(
                    sha256::Hash::hash(&[seed.to_le_bytes(), (i as u64).to_le_bytes()].concat())
                        .to_byte_array(),
                );
                Sig(s.address(), msg, s.sign(&msg))
            })
            .collect()
    }

    fn bip340(i: usize) -> Sig {
        let (key, msg, sig, _) = BIP340[i];
        Sig(Address(arr(key)), Hash256(arr(msg)), arr(sig))
    }

    #[test]
    fn the_bip340_vectors_give_the_same_result_alone_and_in_a_batch() {
        let padding = valid(MIN_BATCH, 1);
        for (i, &(_, _, _, expected)) in BIP340.iter().enumerate() {
            let v = bip340(i);
            assert_eq!(
                checks(std::slice::from_ref(&v))[0].verify(),
                expected,
                "libsecp256k1, vector {i}"
            );
            // In a batch big enough to take the multi-scalar path, at the start, the middle
            // and the end.
            for at in [0, MIN_BATCH / 2, MIN_BATCH] {
                let mut sigs = padding.clone();
                sigs.insert(at, v.clone());
                let c = checks(&sigs);
                assert_eq!(batch_equation_holds(&c), expected, "vector {i} at {at}");
                let each = verify_each(&c);
                assert_eq!(each[at], expected, "vector {i} at {at}");
                assert_eq!(
                    each.iter().filter(|&&ok| !ok).count(),
                    usize::from(!expected)
                );
            }
        }
        // All the valid vectors together.
        let mut all: Vec<Sig> = (0..5).map(bip340).collect();
        all.extend(padding);
        assert!(batch_equation_holds(&checks(&all)));
    }

    #[test]
    fn valid_batches_of_every_size_pass() {
        for n in [0, 1, 2, 15, 16, 17, 63, 64, 65, 300, 1_600] {
            let sigs = valid(n, n as u64);
            assert!(verify_batch(&checks(&sigs)), "{n} signatures");
            assert!(
                n == 0 || batch_equation_holds(&checks(&sigs)),
                "{n} signatures"
            );
            assert_eq!(verify_each(&checks(&sigs)), vec![true; n]);
        }
    }

    /// A signature whose nonce point has odd y, with `s` computed as if it were even: `s·G −
    /// e·P` is the odd-y point over `r`, the one BIP340 refuses and the batch's `lift_x(r)`
    /// is not. Built from scratch with `k256` scalars.
    fn odd_nonce_signature(seed: u64) -> Sig {
        let mut d = Scalar::from(seed + 2);
        let p = (ProjectivePoint::GENERATOR * d).to_affine();
        let p_bytes = k256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&p, true);
        if p_bytes.as_bytes()[0] == 3 {
            d = -d;
        }
        let key = Address(p_bytes.as_bytes()[1..].try_into().unwrap());
        let mut k = Scalar::from(seed * 7 + 11);
        loop {
            let r = (ProjectivePoint::GENERATOR * k).to_affine();
            let enc = k256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&r, true);
            if enc.as_bytes()[0] == 3 {
                let r_bytes: [u8; 32] = enc.as_bytes()[1..].try_into().unwrap();
                let msg = Hash256([seed as u8; 32]);
                let e = challenge(&r_bytes, &key, &msg);
                let s = k + e * d;
                let mut sig = [0u8; 64];
                sig[..32].copy_from_slice(&r_bytes);
                sig[32..].copy_from_slice(&s.to_bytes());
                return Sig(key, msg, sig);
            }
            k += Scalar::ONE;
        }
    }

    #[test]
    fn every_kind_of_bad_signature_fails_the_batch_wherever_it_is() {
        let n = 40;
        let good = valid(n, 7);
        let other = valid(1, 99).remove(0);
        type Spoil = fn(&mut Sig, &Sig);
        let spoils: [(&str, Spoil); 9] = [
            ("message bit", |s, _| s.1 .0[5] ^= 0x10),
            ("r bit", |s, _| s.2[3] ^= 1),
            ("s bit", |s, _| s.2[40] ^= 0x80),
            ("s + 1", |s, _| {
                let v =
                    Scalar::from_repr(<[u8; 32]>::try_from(&s.2[32..]).unwrap().into()).unwrap();
                s.2[32..].copy_from_slice(&(v + Scalar::ONE).to_bytes());
            }),
            ("negated s", |s, _| {
                let v =
                    Scalar::from_repr(<[u8; 32]>::try_from(&s.2[32..]).unwrap().into()).unwrap();
                s.2[32..].copy_from_slice(&(-v).to_bytes());
            }),
            ("another key", |s, o| s.0 = o.0),
            ("another's signature", |s, o| s.2 = o.2),
            ("s = n", |s, _| {
                s.2[32..].copy_from_slice(&arr::<32>(
                    "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141",
                ))
            }),
            ("r = p", |s, _| {
                s.2[..32].copy_from_slice(&arr::<32>(
                    "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F",
                ))
            }),
        ];
        for (name, spoil) in spoils {
            for at in [0, 1, n / 2, n - 1] {
                let mut sigs = good.clone();
                spoil(&mut sigs[at], &other);
                let c = checks(&sigs);
                assert!(!c[at].verify(), "{name}: libsecp256k1 should refuse it");
                assert!(!batch_equation_holds(&c), "{name} at {at}");
                let each = verify_each(&c);
                assert!(!each[at], "{name} at {at}");
                assert_eq!(each.iter().filter(|&&ok| !ok).count(), 1, "{name} at {at}");
            }
        }
        // A nonce with odd y: the case only the equation's choice of R catches.
        for seed in 0..4 {
            let bad = odd_nonce_signature(seed);
            assert!(!checks(std::slice::from_ref(&bad))[0].verify());
            let mut sigs = good.clone();
            sigs.insert(seed as usize * 3, bad);
            assert!(!batch_equation_holds(&checks(&sigs)), "odd nonce {seed}");
        }
        // Two bad signatures that cancel each other's error for fixed randomizers (both
        // off by the same point, with opposite signs) still fail: the randomizers differ.
        let mut sigs = good.clone();
        let a = Scalar::from_repr(<[u8; 32]>::try_from(&sigs[3].2[32..]).unwrap().into()).unwrap();
        let b = Scalar::from_repr(<[u8; 32]>::try_from(&sigs[4].2[32..]).unwrap().into()).unwrap();
        sigs[3].2[32..].copy_from_slice(&(a + Scalar::ONE).to_bytes());
        sigs[4].2[32..].copy_from_slice(&(b - Scalar::ONE).to_bytes());
        assert!(!batch_equation_holds(&checks(&sigs)));
    }

    #[test]
    fn the_multi_scalar_multiplication_matches_one_multiplication_at_a_time() {
        let g = ProjectivePoint::GENERATOR;
        for n in [1usize, 2, 5, 70, 300, 1_600] {
            let mut points = Vec::new();
            let mut scalars = Vec::new();
            let mut terms = Terms::default();
            let mut expected = ProjectivePoint::IDENTITY;
            for i in 0..n {
                // Repeated points, a point and its negation, zero and extreme scalars.
                let p = match i % 4 {
                    0 => (g * Scalar::from(i as u64 + 1)).to_affine(),
                    1 => points[i - 1],
                    2 => -points[i - 1],
                    _ => (g * Scalar::from(3 * i as u64 + 5)).to_affine(),
                };
                let h = sha256::Hash::hash(&(i as u64).to_le_bytes()).to_byte_array();
                let s = match i % 5 {
                    0 => Scalar::ZERO,
                    1 => -Scalar::ONE,
                    _ => {
                        <Scalar as k256::elliptic_curve::ops::Reduce<U256>>::reduce_bytes(&h.into())
                    }
                };
                points.push(p);
                scalars.push(s);
                terms.push(p, &s, FULL_BITS);
                expected += ProjectivePoint::from(p) * s;
            }
            assert_eq!(terms.sum(), expected, "{n} points");
        }
    }

    /// Equal points with equal scalars land in the same buckets (a batch of one signature
    /// repeated gives that), and opposite ones cancel there: the sums are still right.
    #[test]
    fn equal_and_opposite_points_in_one_bucket_add_up() {
        let g = ProjectivePoint::GENERATOR;
        let h = |i: u64| {
            let b = sha256::Hash::hash(&i.to_le_bytes()).to_byte_array();
            <Scalar as k256::elliptic_curve::ops::Reduce<U256>>::reduce_bytes(&b.into())
        };
        let (p, q, k) = ((g * h(1)).to_affine(), (g * h(2)).to_affine(), h(3));
        for (n, same) in [
            (2usize, true),
            (3, true),
            (64, true),
            (500, true),
            (64, false),
            (501, false),
        ] {
            let mut terms = Terms::default();
            let mut expected = ProjectivePoint::IDENTITY;
            for i in 0..n {
                let pt = if same || i % 2 == 0 { p } else { -p };
                terms.push(pt, &k, FULL_BITS);
                expected += ProjectivePoint::from(pt) * k;
            }
            terms.push(q, &k, FULL_BITS);
            expected += ProjectivePoint::from(q) * k;
            assert_eq!(terms.sum(), expected, "{n} points, same {same}");
        }
        // One signature repeated: valid many times over, or invalid many times over.
        let one = valid(1, 5).remove(0);
        let mut sigs = vec![one.clone(); 40];
        assert!(batch_equation_holds(&checks(&sigs)));
        for s in &mut sigs {
            s.2[63] ^= 1;
        }
        assert!(!batch_equation_holds(&checks(&sigs)));
    }

    #[test]
    fn signed_digits_recompose_to_the_scalar() {
        for c in 4..=8 {
            for seed in 0..50u64 {
                let h = sha256::Hash::hash(&seed.to_le_bytes()).to_byte_array();
                let s =
                    <Scalar as k256::elliptic_curve::ops::Reduce<U256>>::reduce_bytes(&h.into());
                let s = if seed == 0 { -Scalar::ONE } else { s };
                let mut t = Terms::default();
                t.push(AffinePoint::GENERATOR, &s, FULL_BITS);
                let mut d = Vec::new();
                signed_digits(&t.scalars[0], FULL_BITS, c, &mut d);
                let half = 1i16 << (c - 1);
                assert!(d.iter().all(|&x| x > -half && x <= half), "c {c}");
                let base = Scalar::from(1u64 << c);
                let back = d.iter().rev().fold(Scalar::ZERO, |acc, &x| {
                    let x = if x < 0 {
                        -Scalar::from(x.unsigned_abs() as u64)
                    } else {
                        Scalar::from(x as u64)
                    };
                    acc * base + x
                });
                assert_eq!(back, s, "c {c} seed {seed}");
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// The fuzz target `batch_verify`'s property: from valid signatures, any spoiling
        /// (a bit of a key, message or signature flipped, or a signature of random bytes)
        /// makes a batch pass exactly when every signature verifies alone.
        #[test]
        fn a_batch_passes_exactly_when_each_signature_does(
            n in (MIN_BATCH - 2)..(MIN_BATCH + 22),
            spoils in proptest::collection::vec((0usize..64, 0u8..4, 0usize..512, proptest::prelude::any::<[u8; 32]>()), 0..3),
        ) {
            let mut sigs = valid(n, n as u64 + 1_000);
            for (at, how, pos, bytes) in spoils {
                let Sig(key, msg, sig) = &mut sigs[at % n];
                let bit = 1u8 << (pos % 8);
                match how {
                    0 => key.0[pos / 8 % 32] ^= bit,
                    1 => msg.0[pos / 8 % 32] ^= bit,
                    2 => sig[pos / 8 % 64] ^= bit,
                    _ => sig[(pos % 2) * 32..][..32].copy_from_slice(&bytes),
                }
            }
            let c = checks(&sigs);
            let alone: Vec<bool> = c.iter().map(SigCheck::verify).collect();
            proptest::prop_assert_eq!(verify_batch(&c), alone.iter().all(|&ok| ok));
            proptest::prop_assert_eq!(verify_each(&c), alone);
        }
    }

    #[test]
    fn lift_x_agrees_with_k256s_own_decompression() {
        use k256::elliptic_curve::point::DecompressPoint as _;
        use k256::elliptic_curve::subtle::Choice;
        let p = "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F";
        let mut xs: Vec<[u8; 32]> = vec![[0; 32], [0xff; 32], arr(p), {
            let mut x = arr::<32>(p);
            x[31] += 1;
            x
        }];
        xs.extend((0..2_000u64).map(|i| sha256::Hash::hash(&i.to_le_bytes()).to_byte_array()));
        let mut on_curve = 0;
        for x in &xs {
            let theirs: Option<AffinePoint> =
                AffinePoint::decompress(&FieldBytes::from(*x), Choice::from(0)).into();
            assert_eq!(lift_x(x), theirs, "{x:02x?}");
            on_curve += usize::from(theirs.is_some());
        }
        // About half of all x are on the curve: both branches were taken.
        assert!((800..1_200).contains(&on_curve), "{on_curve}");
    }

    #[test]
    fn randomizers_are_fresh_per_batch_and_never_zero() {
        let a = randomizers(9);
        let b = randomizers(9);
        assert_eq!(a[0], Scalar::ONE);
        assert_eq!(a.len(), 9);
        assert!(a.iter().all(|x| !bool::from(x.is_zero())));
        assert_ne!(a[1..], b[1..]);
        let mut all: Vec<[u8; 32]> = a[1..]
            .iter()
            .chain(&b[1..])
            .map(|s| s.to_bytes().into())
            .collect();
        assert!(
            all.iter().all(|s| s[..16] == [0; 16]),
            "128-bit randomizers"
        );
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 16);
    }
}
