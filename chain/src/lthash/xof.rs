//! BLAKE3's extendable output (XOF) of a one-chunk input, eight output blocks per pass.
//!
//! Every 64-byte block of BLAKE3's output is an independent compression of the same root
//! node, differing only in its counter. The `blake3` crate computes them one at a time
//! except on AVX-512 machines; here, on CPUs with AVX2 (checked at run time), eight run side
//! by side, one per 32-bit lane: a 2 KiB LtHash expansion takes about a third of the
//! crate's time (672 ns against 2.19 µs on the benchmark machine). Only inputs of one chunk
//! (at most 1,024 bytes: every account leaf, and contract rows of ordinary size) take this
//! path; longer ones, and CPUs without AVX2, go to the crate. The output is byte-for-byte
//! BLAKE3: the tests compare it with the crate's for every input length up to a chunk.

const IV: [u32; 8] = [
    0x6A09_E667,
    0xBB67_AE85,
    0x3C6E_F372,
    0xA54F_F53A,
    0x510E_527F,
    0x9B05_688C,
    0x1F83_D9AB,
    0x5BE0_CD19,
];
const MSG_PERMUTATION: [usize; 16] = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8];
const CHUNK_START: u32 = 1;
const CHUNK_END: u32 = 2;
const ROOT: u32 = 8;
const DERIVE_KEY_CONTEXT: u32 = 32;
const DERIVE_KEY_MATERIAL: u32 = 64;
const BLOCK_LEN: usize = 64;

/// The longest input this module expands (one BLAKE3 chunk).
pub const CHUNK_LEN: usize = 1024;

/// The root node of a one-chunk input: the chaining value entering its last block, that
/// block (zero-padded), the block's length and its flags (without `ROOT`).
#[derive(Clone, Copy, Debug)]
pub struct Root {
    cv: [u32; 8],
    block: [u32; 16],
    block_len: u32,
    flags: u32,
}

fn words(block: &[u8]) -> [u32; 16] {
    let mut w = [0u32; 16];
    for (x, c) in w.iter_mut().zip(block.chunks_exact(4)) {
        *x = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
    w
}

/// One compression (the reference implementation's, scalar): the 16-word state.
fn compress(
    cv: &[u32; 8],
    block: &[u32; 16],
    counter: u64,
    block_len: u32,
    flags: u32,
) -> [u32; 16] {
    let mut s = [
        cv[0],
        cv[1],
        cv[2],
        cv[3],
        cv[4],
        cv[5],
        cv[6],
        cv[7],
        IV[0],
        IV[1],
        IV[2],
        IV[3],
        counter as u32,
        (counter >> 32) as u32,
        block_len,
        flags,
    ];
    let mut m = *block;
    for r in 0..7 {
        let g = |s: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize, x: u32, y: u32| {
            s[a] = s[a].wrapping_add(s[b]).wrapping_add(x);
            s[d] = (s[d] ^ s[a]).rotate_right(16);
            s[c] = s[c].wrapping_add(s[d]);
            s[b] = (s[b] ^ s[c]).rotate_right(12);
            s[a] = s[a].wrapping_add(s[b]).wrapping_add(y);
            s[d] = (s[d] ^ s[a]).rotate_right(8);
            s[c] = s[c].wrapping_add(s[d]);
            s[b] = (s[b] ^ s[c]).rotate_right(7);
        };
        g(&mut s, 0, 4, 8, 12, m[0], m[1]);
        g(&mut s, 1, 5, 9, 13, m[2], m[3]);
        g(&mut s, 2, 6, 10, 14, m[4], m[5]);
        g(&mut s, 3, 7, 11, 15, m[6], m[7]);
        g(&mut s, 0, 5, 10, 15, m[8], m[9]);
        g(&mut s, 1, 6, 11, 12, m[10], m[11]);
        g(&mut s, 2, 7, 8, 13, m[12], m[13]);
        g(&mut s, 3, 4, 9, 14, m[14], m[15]);
        if r < 6 {
            m = MSG_PERMUTATION.map(|i| m[i]);
        }
    }
    s
}

impl Root {
    /// The root node of the concatenation of `parts` hashed under the chaining value `key`
    /// with mode flags `mode`; `None` when it is longer than one chunk.
    fn new(key: &[u32; 8], mode: u32, parts: &[&[u8]]) -> Option<Root> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len > CHUNK_LEN {
            return None;
        }
        let mut input = [0u8; CHUNK_LEN];
        let mut at = 0;
        for p in parts {
            input[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
        // An empty input is one empty block; otherwise every block but the last is full.
        let blocks = len.div_ceil(BLOCK_LEN).max(1);
        let mut cv = *key;
        for i in 0..blocks - 1 {
            let start = if i == 0 { CHUNK_START } else { 0 };
            let b = words(&input[i * BLOCK_LEN..(i + 1) * BLOCK_LEN]);
            let s = compress(&cv, &b, 0, BLOCK_LEN as u32, mode | start);
            cv = core::array::from_fn(|j| s[j] ^ s[j + 8]);
        }
        let last = (blocks - 1) * BLOCK_LEN;
        Some(Root {
            cv,
            block: words(&input[last..last + BLOCK_LEN]),
            block_len: (len - last) as u32,
            flags: mode | CHUNK_END | if blocks == 1 { CHUNK_START } else { 0 },
        })
    }

    /// The 32-byte hash of this root (its first output half), as words.
    fn hash_words(&self) -> [u32; 8] {
        let s = compress(&self.cv, &self.block, 0, self.block_len, self.flags | ROOT);
        core::array::from_fn(|j| s[j] ^ s[j + 8])
    }
}

/// The derive-key mode's key for `context` (BLAKE3's `new_derive_key`).
pub fn context_key(context: &str) -> [u32; 8] {
    Root::new(&IV, DERIVE_KEY_CONTEXT, &[context.as_bytes()])
        .map(|r| r.hash_words())
        // A context longer than a chunk has no use here; the caller's is a constant.
        .expect("a derive-key context of at most 1,024 bytes")
}

/// The message word order of each of the seven rounds (the permutation applied 0..7 times).
const SCHEDULE: [[usize; 16]; 7] = {
    let mut s = [[0usize; 16]; 7];
    let mut i = 0;
    while i < 16 {
        s[0][i] = i;
        i += 1;
    }
    let mut r = 1;
    while r < 7 {
        let mut i = 0;
        while i < 16 {
            s[r][i] = s[r - 1][MSG_PERMUTATION[i]];
            i += 1;
        }
        r += 1;
    }
    s
};

/// Eight output blocks per pass with AVX2: one 32-bit lane per block.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx2 {
    use super::{Root, BLOCK_LEN, IV, ROOT, SCHEDULE};
    use core::arch::x86_64::*;

    #[inline(always)]
    unsafe fn rot16(x: __m256i) -> __m256i {
        _mm256_shuffle_epi8(
            x,
            _mm256_set_epi8(
                13, 12, 15, 14, 9, 8, 11, 10, 5, 4, 7, 6, 1, 0, 3, 2, 13, 12, 15, 14, 9, 8, 11, 10,
                5, 4, 7, 6, 1, 0, 3, 2,
            ),
        )
    }

    #[inline(always)]
    unsafe fn rot8(x: __m256i) -> __m256i {
        _mm256_shuffle_epi8(
            x,
            _mm256_set_epi8(
                12, 15, 14, 13, 8, 11, 10, 9, 4, 7, 6, 5, 0, 3, 2, 1, 12, 15, 14, 13, 8, 11, 10, 9,
                4, 7, 6, 5, 0, 3, 2, 1,
            ),
        )
    }

    #[inline(always)]
    unsafe fn rot12(x: __m256i) -> __m256i {
        _mm256_or_si256(_mm256_srli_epi32(x, 12), _mm256_slli_epi32(x, 20))
    }

    #[inline(always)]
    unsafe fn rot7(x: __m256i) -> __m256i {
        _mm256_or_si256(_mm256_srli_epi32(x, 7), _mm256_slli_epi32(x, 25))
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn g(
        v: &mut [__m256i; 16],
        a: usize,
        b: usize,
        c: usize,
        d: usize,
        x: __m256i,
        y: __m256i,
    ) {
        v[a] = _mm256_add_epi32(_mm256_add_epi32(v[a], v[b]), x);
        v[d] = rot16(_mm256_xor_si256(v[d], v[a]));
        v[c] = _mm256_add_epi32(v[c], v[d]);
        v[b] = rot12(_mm256_xor_si256(v[b], v[c]));
        v[a] = _mm256_add_epi32(_mm256_add_epi32(v[a], v[b]), y);
        v[d] = rot8(_mm256_xor_si256(v[d], v[a]));
        v[c] = _mm256_add_epi32(v[c], v[d]);
        v[b] = rot7(_mm256_xor_si256(v[b], v[c]));
    }

    /// Output blocks `counter..counter + 8` of `root` into `out` (512 bytes).
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn blocks8(root: &Root, counter: u64, out: &mut [u8]) {
        let m: [__m256i; 16] = core::array::from_fn(|i| _mm256_set1_epi32(root.block[i] as i32));
        let cv: [__m256i; 8] = core::array::from_fn(|j| _mm256_set1_epi32(root.cv[j] as i32));
        let lo: [i32; 8] = core::array::from_fn(|l| (counter + l as u64) as u32 as i32);
        let hi: [i32; 8] = core::array::from_fn(|l| ((counter + l as u64) >> 32) as u32 as i32);
        let mut v = [
            cv[0],
            cv[1],
            cv[2],
            cv[3],
            cv[4],
            cv[5],
            cv[6],
            cv[7],
            _mm256_set1_epi32(IV[0] as i32),
            _mm256_set1_epi32(IV[1] as i32),
            _mm256_set1_epi32(IV[2] as i32),
            _mm256_set1_epi32(IV[3] as i32),
            _mm256_loadu_si256(lo.as_ptr().cast()),
            _mm256_loadu_si256(hi.as_ptr().cast()),
            _mm256_set1_epi32(root.block_len as i32),
            _mm256_set1_epi32((root.flags | ROOT) as i32),
        ];
        for s in &SCHEDULE {
            g(&mut v, 0, 4, 8, 12, m[s[0]], m[s[1]]);
            g(&mut v, 1, 5, 9, 13, m[s[2]], m[s[3]]);
            g(&mut v, 2, 6, 10, 14, m[s[4]], m[s[5]]);
            g(&mut v, 3, 7, 11, 15, m[s[6]], m[s[7]]);
            g(&mut v, 0, 5, 10, 15, m[s[8]], m[s[9]]);
            g(&mut v, 1, 6, 11, 12, m[s[10]], m[s[11]]);
            g(&mut v, 2, 7, 8, 13, m[s[12]], m[s[13]]);
            g(&mut v, 3, 4, 9, 14, m[s[14]], m[s[15]]);
        }
        // Word j of every block, lane by lane, then each block's words in order.
        let mut words = [[0u32; 8]; 16];
        for j in 0..8 {
            let w_lo = _mm256_xor_si256(v[j], v[j + 8]);
            let w_hi = _mm256_xor_si256(v[j + 8], cv[j]);
            _mm256_storeu_si256(words[j].as_mut_ptr().cast(), w_lo);
            _mm256_storeu_si256(words[j + 8].as_mut_ptr().cast(), w_hi);
        }
        for (l, block) in out.chunks_exact_mut(BLOCK_LEN).take(8).enumerate() {
            for (j, w) in words.iter().enumerate() {
                block[j * 4..j * 4 + 4].copy_from_slice(&w[l].to_le_bytes());
            }
        }
    }
}

/// Whether this CPU runs the eight-lane path.
fn have_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// BLAKE3 in derive-key mode under `key` (from [`context_key`]) of the concatenation of
/// `parts`, its first `out.len()` output bytes (a multiple of 512); `false`, with `out`
/// untouched, when the input is longer than one chunk or the CPU lacks AVX2 (the crate is
/// as fast then).
pub fn derive_key_xof(key: &[u32; 8], parts: &[&[u8]], out: &mut [u8]) -> bool {
    debug_assert_eq!(out.len() % (8 * BLOCK_LEN), 0);
    if !have_avx2() {
        return false;
    }
    let Some(root) = Root::new(key, DERIVE_KEY_MATERIAL, parts) else {
        return false;
    };
    #[cfg(target_arch = "x86_64")]
    for (i, part) in out.chunks_exact_mut(8 * BLOCK_LEN).enumerate() {
        // SAFETY: `have_avx2` found AVX2 on this CPU, the one requirement of `blocks8`.
        #[allow(unsafe_code)]
        unsafe {
            avx2::blocks8(&root, 8 * i as u64, part)
        };
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTEXT: &str = "rexe test context";

    fn crate_xof(parts: &[&[u8]], out: &mut [u8]) {
        let mut h = blake3::Hasher::new_derive_key(CONTEXT);
        for p in parts {
            h.update(p);
        }
        h.finalize_xof().fill(out);
    }

    #[test]
    fn the_context_key_is_blake3s() {
        let key = context_key(CONTEXT);
        let want = blake3::derive_key(CONTEXT, b"");
        // derive_key(context, "") = the hash of the empty input under the context key.
        let root = Root::new(&key, DERIVE_KEY_MATERIAL, &[]).unwrap();
        let got: Vec<u8> = root
            .hash_words()
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn equals_the_blake3_crate_for_every_length_of_a_chunk() {
        let key = context_key(CONTEXT);
        let data: Vec<u8> = (0..CHUNK_LEN + 1).map(|i| (i * 7 + 3) as u8).collect();
        for len in 0..=CHUNK_LEN {
            let (a, b) = data[..len].split_at(len / 3);
            let mut want = [0u8; 2048];
            crate_xof(&[a, b], &mut want);
            let mut got = [0u8; 2048];
            if !derive_key_xof(&key, &[a, b], &mut got) {
                assert!(!have_avx2(), "refused a one-chunk input on an AVX2 CPU");
                eprintln!("no AVX2 on this CPU: the eight-lane path is not run");
                return;
            }
            assert_eq!(got, want, "length {len}");
        }
    }

    #[test]
    fn counters_past_32_bits_carry_into_the_high_word() {
        if !have_avx2() {
            eprintln!("no AVX2 on this CPU: the eight-lane path is not run");
            return;
        }
        let key = context_key(CONTEXT);
        let root = Root::new(&key, DERIVE_KEY_MATERIAL, &[b"leaf"]).unwrap();
        let start = (1u64 << 32) - 4;
        let mut got = [0u8; 512];
        // SAFETY: AVX2 was found above.
        #[allow(unsafe_code)]
        unsafe {
            avx2::blocks8(&root, start, &mut got)
        };
        let mut want = [0u8; 512];
        let mut r = blake3::Hasher::new_derive_key(CONTEXT)
            .update(b"leaf")
            .finalize_xof();
        r.set_position(start * 64);
        r.fill(&mut want);
        assert_eq!(got, want);
    }

    #[test]
    fn longer_than_a_chunk_is_left_to_the_crate() {
        let key = context_key(CONTEXT);
        let mut out = [7u8; 512];
        assert!(!derive_key_xof(&key, &[&[0u8; CHUNK_LEN + 1]], &mut out));
        assert!(!derive_key_xof(&key, &[&[0u8; 600], &[0u8; 425]], &mut out));
        assert_eq!(out, [7u8; 512], "untouched");
    }
}
