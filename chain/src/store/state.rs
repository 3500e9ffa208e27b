//! Contract state rows as the shard store keeps them: a key naming (contract, scope,
//! target), an opaque value (the scope's variables, encoded by the contract's layout), the
//! change a block makes to a row, and the commitment leaf of a row.

use crate::encode::{write_compact_size, Decode, DecodeError, Encode, Reader};

/// Longest key: 32 + 1 + 64 (a `uint512` target).
pub const MAX_KEY_LEN: usize = 97;

/// Key of one contract state row: contract address (32 bytes), scope tag (1 byte), scope
/// target (shard id, integer key or address). Stored inline: keys are cloned into caches,
/// working sets and undo records for every write, and a heap allocation per clone would
/// dominate small contract calls.
#[derive(Clone, Copy)]
pub struct StateKey {
    len: u8,
    bytes: [u8; MAX_KEY_LEN],
}

/// The empty key (fills the cache's empty slots).
impl Default for StateKey {
    fn default() -> Self {
        StateKey {
            len: 0,
            bytes: [0; MAX_KEY_LEN],
        }
    }
}

impl StateKey {
    /// A key from its bytes (`None` when longer than [`MAX_KEY_LEN`]).
    pub fn from_slice(b: &[u8]) -> Option<Self> {
        if b.len() > MAX_KEY_LEN {
            return None;
        }
        let mut bytes = [0u8; MAX_KEY_LEN];
        bytes[..b.len()].copy_from_slice(b);
        Some(StateKey {
            len: b.len() as u8,
            bytes,
        })
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl PartialEq for StateKey {
    fn eq(&self, o: &Self) -> bool {
        self.as_bytes() == o.as_bytes()
    }
}

impl Eq for StateKey {}

impl PartialOrd for StateKey {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

impl Ord for StateKey {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(o.as_bytes())
    }
}

impl std::hash::Hash for StateKey {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.as_bytes().hash(h)
    }
}

impl std::fmt::Debug for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "StateKey({})",
            bitcoin::hex::DisplayHex::to_lower_hex_string(self.as_bytes())
        )
    }
}

/// One state row changed by a block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateChange {
    /// The row.
    pub key: StateKey,
    /// Value before the block (`None`: absent).
    pub old: Option<Vec<u8>>,
    /// Value after the block (`None`: deleted).
    pub new: Option<Vec<u8>>,
}

/// The commitment leaf of a row: `'s' || len(key) || key || value` (distinct from account
/// leaves, which start with `'a'`).
pub fn state_leaf(key: &StateKey, value: &[u8]) -> Vec<u8> {
    let k = key.as_bytes();
    let mut b = Vec::with_capacity(2 + k.len() + value.len());
    b.push(b's');
    b.push(k.len() as u8);
    b.extend_from_slice(k);
    b.extend_from_slice(value);
    b
}

/// Undo entries of contract state: each row and the value to restore.
pub(crate) type StateUndo = Vec<(StateKey, Option<Vec<u8>>)>;

impl StateKey {
    /// Adds the row `(self, value)` to a commitment (the leaf of [`state_leaf`]).
    pub fn commit_insert(&self, lt: &mut crate::lthash::LtHash, value: &[u8]) {
        lt.insert_parts(&[b"s", &[self.len], self.as_bytes(), value]);
    }

    /// Removes the row `(self, value)` from a commitment.
    pub fn commit_remove(&self, lt: &mut crate::lthash::LtHash, value: &[u8]) {
        lt.remove_parts(&[b"s", &[self.len], self.as_bytes(), value]);
    }
}

pub(crate) fn encode_state_undo(entries: &[(StateKey, Option<Vec<u8>>)]) -> Vec<u8> {
    let size: usize = entries
        .iter()
        .map(|(k, old)| 3 + k.as_bytes().len() + old.as_ref().map_or(0, |v| v.len() + 3))
        .sum();
    let mut out = Vec::with_capacity(size + 9);
    write_compact_size(&mut out, entries.len() as u64);
    for (k, old) in entries {
        // What `Vec<u8>::encode` writes, without building the vector.
        write_compact_size(&mut out, k.as_bytes().len() as u64);
        out.extend_from_slice(k.as_bytes());
        match old {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                v.encode(&mut out);
            }
        }
    }
    out
}

pub(crate) fn decode_state_undo(bytes: &[u8]) -> Result<StateUndo, DecodeError> {
    let mut r = Reader::new(bytes);
    let n = r.length(2)?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let k = StateKey::from_slice(&Vec::<u8>::decode(&mut r)?)
            .ok_or(DecodeError::Invalid("state key length"))?;
        let old = match u8::decode(&mut r)? {
            0 => None,
            1 => Some(Vec::<u8>::decode(&mut r)?),
            _ => return Err(DecodeError::Invalid("state undo flag")),
        };
        v.push((k, old));
    }
    r.finish()?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_undo_roundtrips_in_its_stored_format() {
        let entries = vec![
            (
                StateKey::from_slice(&[1; 65]).unwrap(),
                Some(vec![9u8; 300]),
            ),
            (StateKey::from_slice(&[2; 35]).unwrap(), None),
            (StateKey::from_slice(&[3; 97]).unwrap(), Some(Vec::new())),
        ];
        let bytes = encode_state_undo(&entries);
        // The stored format: count, then per entry the key as a byte vector and a flagged
        // optional value.
        let mut want = Vec::new();
        write_compact_size(&mut want, 3);
        for (k, old) in &entries {
            k.as_bytes().to_vec().encode(&mut want);
            match old {
                None => want.push(0),
                Some(v) => {
                    want.push(1);
                    v.encode(&mut want);
                }
            }
        }
        assert_eq!(bytes, want);
        assert_eq!(decode_state_undo(&bytes).unwrap(), entries);
    }

    #[test]
    fn a_row_in_parts_commits_like_its_leaf() {
        let k = StateKey::from_slice(&[7; 65]).unwrap();
        let mut a = crate::lthash::LtHash::new();
        a.insert(&state_leaf(&k, b"value"));
        let mut b = crate::lthash::LtHash::new();
        k.commit_insert(&mut b, b"value");
        assert_eq!(a, b);
        k.commit_remove(&mut b, b"value");
        assert_eq!(b, crate::lthash::LtHash::new());
        assert!(StateKey::from_slice(&[0; MAX_KEY_LEN + 1]).is_none());
    }
}
