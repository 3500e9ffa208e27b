//! The one canonical binary encoding for everything rexe hashes or signs.
//!
//! Fixed-width little-endian integers, Bitcoin compact-size lengths, no padding, no
//! optional fields: one value has exactly one encoding, and decoding a value re-encodes to the
//! same bytes. Decoding untrusted bytes never panics and never allocates more than the input
//! could hold.

use thiserror::Error;

/// Why bytes failed to decode.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended before the value did.
    #[error("truncated: needed {needed} more bytes at offset {offset}")]
    Truncated {
        /// Byte offset where the read started.
        offset: usize,
        /// How many bytes were missing.
        needed: usize,
    },
    /// Bytes were left after the value.
    #[error("{0} trailing bytes after the value")]
    TrailingBytes(usize),
    /// A compact-size length was not minimally encoded.
    #[error("non-canonical compact size")]
    NonCanonicalSize,
    /// A length prefix larger than the rest of the input allows.
    #[error("length {0} exceeds the remaining input")]
    LengthTooLarge(u64),
    /// An enum tag with no meaning.
    #[error("unknown {what} tag {tag}")]
    UnknownTag {
        /// Which enum.
        what: &'static str,
        /// The tag read.
        tag: u8,
    },
    /// A value decoded but is invalid (e.g. a bool that is neither 0 nor 1).
    #[error("invalid {0}")]
    Invalid(&'static str),
}

/// A cursor over untrusted bytes.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Takes the next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                offset: self.pos,
                needed: n - self.remaining(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Takes a fixed-size array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// Reads a Bitcoin compact size, rejecting non-minimal encodings.
    pub fn compact_size(&mut self) -> Result<u64, DecodeError> {
        let first = self.array::<1>()?[0];
        let (v, min) = match first {
            0xfd => (u16::from_le_bytes(self.array()?) as u64, 0xfd),
            0xfe => (u32::from_le_bytes(self.array()?) as u64, 0x1_0000),
            0xff => (u64::from_le_bytes(self.array()?), 0x1_0000_0000),
            n => return Ok(n as u64),
        };
        if v < min {
            return Err(DecodeError::NonCanonicalSize);
        }
        Ok(v)
    }

    /// Reads a length prefix for items of at least `min_item_size` bytes each and checks
    /// that the rest of the input can hold that many (so a hostile length cannot make us
    /// allocate).
    pub fn length(&mut self, min_item_size: usize) -> Result<usize, DecodeError> {
        let n = self.compact_size()?;
        let need = n.saturating_mul(min_item_size.max(1) as u64);
        if need > self.remaining() as u64 {
            return Err(DecodeError::LengthTooLarge(n));
        }
        Ok(n as usize)
    }

    /// Fails unless every byte was consumed.
    pub fn finish(self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::TrailingBytes(n)),
        }
    }
}

/// Canonical encoding.
pub trait Encode {
    /// Appends the encoding of `self` to `out`.
    fn encode(&self, out: &mut Vec<u8>);

    /// The encoding as a new vector.
    fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode(&mut v);
        v
    }
}

/// Canonical decoding.
pub trait Decode: Sized {
    /// Reads one value.
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// Decodes a value that must span all of `bytes`.
    fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let v = Self::decode(&mut r)?;
        r.finish()?;
        Ok(v)
    }
}

/// Bytes [`write_compact_size`] writes for `n`.
pub fn compact_size_len(n: u64) -> usize {
    match n {
        0..=0xfc => 1,
        0xfd..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

/// Appends a compact size.
pub fn write_compact_size(out: &mut Vec<u8>, n: u64) {
    match n {
        0..=0xfc => out.push(n as u8),
        0xfd..=0xffff => {
            out.push(0xfd);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0xfe);
            out.extend_from_slice(&(n as u32).to_le_bytes());
        }
        _ => {
            out.push(0xff);
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
}

macro_rules! int_codec {
    ($($t:ty),*) => {$(
        impl Encode for $t {
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
        impl Decode for $t {
            fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                Ok(<$t>::from_le_bytes(r.array()?))
            }
        }
    )*};
}
int_codec!(u8, u16, u32, u64);

impl Encode for [u8; 32] {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

impl Decode for [u8; 32] {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.array()
    }
}

impl Encode for [u8; 64] {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

impl Decode for [u8; 64] {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.array()
    }
}

/// Variable-length bytes with a compact-size prefix.
impl Encode for Vec<u8> {
    fn encode(&self, out: &mut Vec<u8>) {
        write_compact_size(out, self.len() as u64);
        out.extend_from_slice(self);
    }
}

impl Decode for Vec<u8> {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let n = r.length(1)?;
        Ok(r.take(n)?.to_vec())
    }
}

/// Encodes a list with a compact-size count.
pub fn encode_list<T: Encode>(items: &[T], out: &mut Vec<u8>) {
    write_compact_size(out, items.len() as u64);
    for i in items {
        i.encode(out);
    }
}

/// Decodes a list whose items take at least `min_item_size` bytes each.
pub fn decode_list<T: Decode>(
    r: &mut Reader<'_>,
    min_item_size: usize,
) -> Result<Vec<T>, DecodeError> {
    let n = r.length(min_item_size)?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(T::decode(r)?);
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_size_roundtrips_and_rejects_non_minimal() {
        for n in [
            0u64,
            1,
            0xfc,
            0xfd,
            0xffff,
            0x1_0000,
            0xffff_ffff,
            0x1_0000_0000,
        ] {
            let mut v = Vec::new();
            write_compact_size(&mut v, n);
            assert_eq!(Reader::new(&v).compact_size().unwrap(), n);
        }
        assert_eq!(
            Reader::new(&[0xfd, 0x10, 0x00]).compact_size(),
            Err(DecodeError::NonCanonicalSize)
        );
    }

    #[test]
    fn hostile_length_does_not_allocate() {
        let bytes = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
        assert!(matches!(
            Vec::<u8>::from_bytes(&bytes),
            Err(DecodeError::LengthTooLarge(_))
        ));
    }

    #[test]
    fn trailing_bytes_rejected() {
        assert_eq!(u8::from_bytes(&[1, 2]), Err(DecodeError::TrailingBytes(1)));
    }
}
