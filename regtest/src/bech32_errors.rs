//! Where a Bech32 or Bech32m string went wrong, as Bitcoin Core's `validateaddress` reports it
//! (`error` and `error_locations`, from `bech32::LocateErrors`).
//!
//! The checksum is a BCH code over GF(32) whose generator is the least common multiple of
//! the minimal polynomials of e^997, e^998 and e^999, with e a primitive element of
//! GF(1024) = GF(32)[x]/(x^2 + 9x + 23). The residue of a string with errors is the residue
//! of its error polynomial alone; evaluating it at those three powers (the syndromes) gives
//! the positions of one error directly, or of two by trying each first position. Up to two
//! substituted characters are located this way; more are reported without positions. Written
//! from BIP-173/BIP-350 and the BCH decoding this code admits; the messages are Core's.

/// Longest string a Bech32 address may be (BIP-173).
pub const MAX_LENGTH: usize = 90;

const CHECKSUM_SIZE: usize = 6;
const CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";

/// The residue constant of each encoding: Bech32, Bech32m.
const ENCODINGS: [(u32, &str); 2] = [
    (1, "Invalid Bech32 checksum"),
    (0x2bc8_30a3, "Invalid Bech32m checksum"),
];

/// GF(1024) as powers of e (`exp`, 1,023 entries) and their logarithms (`log`, -1 for 0).
struct Tables {
    exp: [u16; 1023],
    log: [i16; 1024],
    /// The syndrome of each residue bit above the lowest five.
    syndrome: [u32; 25],
}

fn tables() -> &'static Tables {
    static TABLES: std::sync::OnceLock<Tables> = std::sync::OnceLock::new();
    TABLES.get_or_init(|| {
        // GF(32) modulo x^5 + x^3 + 1.
        let mut gf32_exp = [0u8; 31];
        let mut gf32_log = [0i8; 32];
        gf32_log[0] = -1;
        let mut v = 1u8;
        for (i, slot) in gf32_exp.iter_mut().enumerate() {
            *slot = v;
            gf32_log[v as usize] = i as i8;
            v <<= 1;
            if v & 32 != 0 {
                v ^= 41;
            }
        }
        let mul32 = |a: u16, b: u8| -> u16 {
            if a == 0 {
                return 0;
            }
            let l = (gf32_log[a as usize] as usize + gf32_log[b as usize] as usize) % 31;
            gf32_exp[l] as u16
        };
        // GF(1024): v = v1·e + v0; e·v = (9·v1 + v0)·e + 23·v1.
        let mut exp = [0u16; 1023];
        let mut log = [-1i16; 1024];
        let mut v: u16 = 1;
        for (i, slot) in exp.iter_mut().enumerate() {
            *slot = v;
            log[v as usize] = i as i16;
            let (v0, v1) = (v & 31, v >> 5);
            v = ((mul32(v1, 9) ^ v0) << 5) | mul32(v1, 23);
        }
        let mut syndrome = [0u32; 25];
        for k in 1..6usize {
            for shift in 0..5usize {
                let b = log[1 << shift] as usize;
                let at = |j: usize| exp[(j * k + b) % 1023] as u32;
                syndrome[5 * (k - 1) + shift] = (at(999) << 20) | (at(998) << 10) | at(997);
            }
        }
        Tables { exp, log, syndrome }
    })
}

/// The checksum residue of `values` under the Bech32 generator (BIP-173's `polymod`).
fn polymod(values: impl Iterator<Item = u8>) -> u32 {
    const GEN: [u32; 5] = [
        0x3b6a_57b2,
        0x2650_8e6d,
        0x1ea1_19fa,
        0x3d42_33dd,
        0x2a14_62b3,
    ];
    let mut c: u32 = 1;
    for v in values {
        let c0 = c >> 25;
        c = ((c & 0x1ff_ffff) << 5) ^ u32::from(v);
        for (i, g) in GEN.iter().enumerate() {
            if (c0 >> i) & 1 == 1 {
                c ^= g;
            }
        }
    }
    c
}

/// The positions (from the end of a data part of `length`) of at most two substitutions that
/// give `residue`, or none when no one or two substitutions do.
fn locate(residue: u32, length: usize) -> Vec<usize> {
    let t = tables();
    let mut syn = (residue & 0x1f) * (1 | (1 << 10) | (1 << 20));
    for (i, c) in t.syndrome.iter().enumerate() {
        if (residue >> (5 + i)) & 1 == 1 {
            syn ^= c;
        }
    }
    let (s0, s1, s2) = (
        (syn & 0x3ff) as usize,
        ((syn >> 10) & 0x3ff) as usize,
        (syn >> 20) as usize,
    );
    let (l0, l1, l2) = (t.log[s0] as i64, t.log[s1] as i64, t.log[s2] as i64);
    let exp = |k: i64| t.exp[k.rem_euclid(1023) as usize] as usize;
    let log = |v: usize| t.log[v] as i64;
    // One error e1·x^p1: s1/s0 = s2/s1 = e^p1.
    if l0 != -1 && l1 != -1 && l2 != -1 && (2 * l1 - l2 - l0).rem_euclid(1023) == 0 {
        let p1 = (l1 - l0).rem_euclid(1023);
        let l_e1 = l0 + (1023 - 997) * p1;
        if (p1 as usize) < length && l_e1 % 33 == 0 {
            return vec![p1 as usize];
        }
        return Vec::new();
    }
    // Two errors: for each guess of p1, (s2 + s1·e^p1)/(s1 + s0·e^p1) = e^p2.
    for p1 in 0..length as i64 {
        let s2_s1p1 = s2 ^ if s1 == 0 { 0 } else { exp(l1 + p1) };
        if s2_s1p1 == 0 {
            continue;
        }
        let s1_s0p1 = s1 ^ if s0 == 0 { 0 } else { exp(l0 + p1) };
        if s1_s0p1 == 0 {
            continue;
        }
        let p2 = (log(s2_s1p1) - log(s1_s0p1)).rem_euclid(1023);
        if p2 as usize >= length || p1 == p2 {
            continue;
        }
        let s1_s0p2 = s1 ^ if s0 == 0 { 0 } else { exp(l0 + p2) };
        if s1_s0p2 == 0 {
            continue;
        }
        let inv = 1023 - log(exp(p1) ^ exp(p2));
        // Both error values must lie in GF(32): logarithms that are multiples of 33.
        let l_e2 = log(s1_s0p1) + inv + (1023 - 997) * p2;
        let l_e1 = log(s1_s0p2) + inv + (1023 - 997) * p1;
        if l_e2 % 33 != 0 || l_e1 % 33 != 0 {
            continue;
        }
        let (hi, lo) = if p1 > p2 { (p1, p2) } else { (p2, p1) };
        return vec![hi as usize, lo as usize];
    }
    Vec::new()
}

/// Core's `LocateErrors`: `("", [])` for a valid Bech32 or Bech32m string; otherwise the
/// reason and the byte positions of the characters to check (none when they cannot be
/// located).
pub fn locate_errors(s: &str) -> (String, Vec<usize>) {
    let b = s.as_bytes();
    if b.len() > MAX_LENGTH {
        return (
            "Bech32 string too long".into(),
            (MAX_LENGTH..b.len()).collect(),
        );
    }
    // Characters outside 33..=126, or a case other than the first letter's.
    let mut bad = Vec::new();
    let (mut lower, mut upper) = (false, false);
    for (i, c) in b.iter().enumerate() {
        match c {
            b'a'..=b'z' if upper => bad.push(i),
            b'a'..=b'z' => lower = true,
            b'A'..=b'Z' if lower => bad.push(i),
            b'A'..=b'Z' => upper = true,
            33..=126 => {}
            _ => bad.push(i),
        }
    }
    if !bad.is_empty() {
        return ("Invalid character or mixed case".into(), bad);
    }
    let Some(pos) = b.iter().rposition(|c| *c == b'1') else {
        return ("Missing separator".into(), Vec::new());
    };
    if pos == 0 || pos + CHECKSUM_SIZE >= b.len() {
        return ("Invalid separator position".into(), vec![pos]);
    }
    let hrp: Vec<u8> = b[..pos].iter().map(u8::to_ascii_lowercase).collect();
    let mut values = Vec::with_capacity(b.len() - pos - 1);
    for (i, c) in b.iter().enumerate().skip(pos + 1) {
        match CHARSET.iter().position(|x| *x == c.to_ascii_lowercase()) {
            Some(v) => values.push(v as u8),
            None => return ("Invalid Base 32 character".into(), vec![i]),
        }
    }
    let residue = polymod(
        hrp.iter()
            .map(|c| c >> 5)
            .chain([0])
            .chain(hrp.iter().map(|c| c & 31))
            .chain(values.iter().copied()),
    );
    // The encoding whose checksum the fewest substitutions explain (the witness version,
    // which would say which applies, may be one of them).
    let mut found: Option<(&str, Vec<usize>)> = None;
    for (constant, message) in ENCODINGS {
        let r = residue ^ constant;
        if r == 0 {
            return (String::new(), Vec::new());
        }
        let from_end = locate(r, values.len());
        let better = match &found {
            None => true,
            Some((_, best)) => {
                best.is_empty() || (!from_end.is_empty() && from_end.len() < best.len())
            }
        };
        if better {
            found = Some((message, from_end));
        }
    }
    match found {
        Some((message, from_end)) if !from_end.is_empty() => (
            message.into(),
            from_end.iter().map(|p| b.len() - p - 1).collect(),
        ),
        _ => ("Invalid checksum".into(), Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bitcoin Core's `bech32_testvectors_invalid` and `bech32m_testvectors_invalid` (its
    /// `src/test/bech32_tests.cpp`), as JSON strings carry them: bytes 0x80 and 0xff are the
    /// characters U+0080 and U+00FF, two bytes each, so their first byte is the bad one.
    #[test]
    fn cores_vectors_locate_the_same_errors() {
        let cases: [(&str, &str, &[usize]); 32] = [
            (" 1nwldj5", "Invalid character or mixed case", &[0]),
            ("\x7f1axkwrx", "Invalid character or mixed case", &[0]),
            ("\u{80}1eym55h", "Invalid character or mixed case", &[0, 1]),
            (
                "an84characterslonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1569pvx",
                "Bech32 string too long",
                &[90],
            ),
            ("pzry9x0s0muk", "Missing separator", &[]),
            ("1pzry9x0s0muk", "Invalid separator position", &[0]),
            ("x1b4n0q5v", "Invalid Base 32 character", &[2]),
            ("li1dgmt3", "Invalid separator position", &[2]),
            ("de1lg7wt\u{ff}", "Invalid character or mixed case", &[8, 9]),
            ("A1G7SGD8", "Invalid checksum", &[]),
            ("10a06t8", "Invalid separator position", &[0]),
            ("1qzzfhee", "Invalid separator position", &[0]),
            ("a12UEL5L", "Invalid character or mixed case", &[3, 4, 5, 7]),
            ("A12uEL5L", "Invalid character or mixed case", &[3]),
            (
                "abcdef1qpzrz9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
                "Invalid Bech32 checksum",
                &[11],
            ),
            (
                "test1zg69w7y6hn0aqy352euf40x77qddq3dc",
                "Invalid Bech32 checksum",
                &[9, 16],
            ),
            (" 1xj0phk", "Invalid character or mixed case", &[0]),
            ("\x7f1g6xzxy", "Invalid character or mixed case", &[0]),
            ("\u{80}1vctc34", "Invalid character or mixed case", &[0, 1]),
            (
                "an84characterslonghumanreadablepartthatcontainsthetheexcludedcharactersbioandnumber11d6pts4",
                "Bech32 string too long",
                &[90],
            ),
            ("qyrz8wqd2c9m", "Missing separator", &[]),
            ("1qyrz8wqd2c9m", "Invalid separator position", &[0]),
            ("y1b0jsk6g", "Invalid Base 32 character", &[2]),
            ("lt1igcx5c0", "Invalid Base 32 character", &[3]),
            ("in1muywd", "Invalid separator position", &[2]),
            ("mm1crxm3i", "Invalid Base 32 character", &[8]),
            ("au1s5cgom", "Invalid Base 32 character", &[7]),
            ("M1VUXWEZ", "Invalid checksum", &[]),
            ("16plkw9", "Invalid separator position", &[0]),
            ("1p2gdwpf", "Invalid separator position", &[0]),
            (
                "abcdef1l7aum6echk45nj2s0wdvt2fg8x9yrzpqzd3ryx",
                "Invalid Bech32m checksum",
                &[21],
            ),
            (
                "test1zg69v7y60n00qy352euf40x77qcusag6",
                "Invalid Bech32m checksum",
                &[13, 32],
            ),
        ];
        for (s, message, at) in cases {
            let (m, l) = locate_errors(s);
            assert_eq!((m.as_str(), l.as_slice()), (message, at), "{s:?}");
        }
    }

    #[test]
    fn one_or_two_substitutions_are_located_and_valid_strings_pass() {
        let valid = [
            "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
            "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",
            "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
        ];
        for s in valid {
            assert_eq!(locate_errors(s), (String::new(), Vec::new()), "{s}");
        }
        let s = valid[0];
        let swap = |s: &str, i: usize| {
            let mut b = s.as_bytes().to_vec();
            b[i] = if b[i] == b'q' { b'p' } else { b'q' };
            String::from_utf8(b).unwrap()
        };
        for i in 3..s.len() {
            let (m, l) = locate_errors(&swap(s, i));
            assert_eq!(
                (m.as_str(), l),
                ("Invalid Bech32 checksum", vec![i]),
                "at {i}"
            );
            for j in i + 1..s.len() {
                let (m, l) = locate_errors(&swap(&swap(s, i), j));
                assert_eq!(m, "Invalid Bech32 checksum", "at {i}, {j}");
                assert_eq!(l, vec![i, j], "at {i}, {j}");
            }
        }
    }
}
