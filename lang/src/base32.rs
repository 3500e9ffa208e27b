//! PREDA's base32 literals (spec 4.1.2): `<58 chars>:ed25519` addresses and `<52 chars>:hash`
//! hashes, in the base32 PREDA's runtime decodes them with: Crockford's alphabet
//! (`0-9`, `a-z` without `i l o u`), case-insensitive, reading `i`/`l` as 1, `o` as 0 and
//! `u` as `v`, five bits per character, most significant first.
//!
//! An address literal is 36 bytes: a 32-byte ed25519 public key, then a little-endian word
//! whose low 4 bits are the key type (3, ed25519) and whose other 28 bits are the CRC-32C
//! of the key continued from the key type. rexe keeps the 32-byte key as the address. Such
//! an address is not a rexe key (rexe signs with BIP340 keys), so nobody on rexe signs for
//! it; it is an identity like any other address.

/// Crockford base32 value of one character, as PREDA's decoder reads it.
fn digit(c: u8) -> Option<u8> {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let c = c.to_ascii_lowercase();
    match c {
        b'i' | b'l' => Some(1),
        b'o' => Some(0),
        b'u' => Some(27),
        _ => ALPHABET.iter().position(|a| *a == c).map(|p| p as u8),
    }
}

/// Decodes `s` into exactly `len` bytes (`s` must be `ceil(len * 8 / 5)` characters; the
/// padding bits of the last one are ignored, as PREDA's decoder does).
fn decode(s: &str, len: usize) -> Result<Vec<u8>, String> {
    if s.len() != (len * 8).div_ceil(5) {
        return Err(format!(
            "is {} characters, and {len} bytes take {}",
            s.len(),
            (len * 8).div_ceil(5)
        ));
    }
    let mut out = Vec::with_capacity(len);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let d = digit(c).ok_or_else(|| {
            format!(
                "holds `{}`, which is not a base32 character (PREDA's runtime takes Crockford's alphabet)",
                c as char
            )
        })?;
        acc = (acc << 5 | u32::from(d)) & 0xffff;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            if out.len() < len {
                out.push((acc >> bits) as u8);
            }
        }
    }
    Ok(out)
}

/// CRC-32C (Castagnoli), continued from `init` (a previous CRC), as PREDA's `os::crc32c`.
fn crc32c(data: &[u8], init: u32) -> u32 {
    let mut crc = !init;
    for b in data {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0x82F6_3B78 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// PREDA's key type of ed25519 addresses.
const ED25519: u32 = 3;

/// The address of a `…:ed25519` literal (`text` includes the tag), checked as PREDA's
/// runtime checks it.
pub fn address(text: &str) -> Result<[u8; 32], String> {
    let (body, tag) = text.rsplit_once(':').unwrap_or((text, ""));
    if tag == "contract" {
        return Err(format!(
            "`{text}`: PREDA's `:contract` literals name 64-bit contract ids; rexe names contracts by address: write address(\"trx1…\")"
        ));
    }
    let bytes = decode(body, 36).map_err(|e| format!("address literal `{text}` {e}"))?;
    let word = u32::from_le_bytes(bytes[32..36].try_into().expect("4 bytes"));
    if word & 0xf != ED25519 {
        return Err(format!(
            "address literal `{text}` is not an ed25519 address (its key type is {})",
            word & 0xf
        ));
    }
    if (word ^ crc32c(&bytes[..32], ED25519)) & 0xffff_fff0 != 0 {
        return Err(format!(
            "address literal `{text}` has a bad checksum (a mistyped character?)"
        ));
    }
    Ok(bytes[..32].try_into().expect("32 bytes"))
}

/// The hash of a `…:hash` literal in base32 (`body` without the tag).
pub fn hash(body: &str) -> Result<[u8; 32], String> {
    let bytes = decode(body, 32).map_err(|e| format!("hash literal `{body}:hash` {e}"))?;
    Ok(bytes.try_into().expect("32 bytes"))
}

/// An address as a `…:ed25519` literal (for tests and tools).
pub fn address_literal(key: &[u8; 32]) -> String {
    let mut bytes = key.to_vec();
    let word = ED25519 | (crc32c(key, ED25519) & 0xffff_fff0);
    bytes.extend_from_slice(&word.to_le_bytes());
    format!("{}:ed25519", encode(&bytes))
}

fn encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let mut out = String::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in bytes {
        acc = (acc << 8 | u32::from(*b)) & 0xffff;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_address_literal_checks_out() {
        // PREDA's language specification, 2.2.5 and 4.1.2: a real ed25519 address.
        let text = "vffgwr07yq323axszgxbr2qp9azzbyjjm844s90z8ack63s6hrch683z48:ed25519";
        let a = address(text).unwrap();
        assert_eq!(address_literal(&a), text);
        // Upper case and Crockford's look-alikes read the same.
        assert_eq!(
            address(&text.to_uppercase().replace("ED25519", "ed25519")).unwrap(),
            a
        );
        // One character changed breaks the checksum; a wrong length, a bad character and
        // `:contract` are refused by name.
        let typo = text.replacen("vffg", "vffh", 1);
        assert!(address(&typo).unwrap_err().contains("bad checksum"));
        assert!(address("vffg:ed25519").unwrap_err().contains("characters"));
        let at = text.replacen("vffg", "v@fg", 1);
        assert!(address(&at).unwrap_err().contains("`@`"));
        assert!(address("0x1:contract")
            .unwrap_err()
            .contains("64-bit contract ids"));
    }

    #[test]
    fn hashes_and_addresses_round_trip() {
        for key in [[0u8; 32], [0xff; 32], core::array::from_fn(|i| i as u8)] {
            let lit = address_literal(&key);
            assert_eq!(lit.len(), 58 + 8);
            assert_eq!(address(&lit).unwrap(), key);
            let body = encode(&key);
            assert_eq!(body.len(), 52);
            assert_eq!(hash(&body).unwrap(), key);
            assert_eq!(hash(&body.replace('1', "l")).unwrap(), key);
        }
        // The CRC-32C check value.
        assert_eq!(crc32c(b"123456789", 0), 0xe306_9283);
    }
}
