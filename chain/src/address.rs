//! Account addresses: 32-byte BIP340 x-only public keys, printed as bech32m (`rx1…` on
//! mainnet, `trx1…` on test networks), and the key pair that signs for them.

use core::fmt;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, OnceLock};

use bitcoin::bech32::{primitives::decode::CheckedHrpstring, Bech32m, Hrp};
use bitcoin::hashes::{sha256, Hash as _};
use bitcoin::hex::DisplayHex;
use bitcoin::secp256k1::{self, schnorr, All, Keypair, Message, Secp256k1, XOnlyPublicKey};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::hash::Hash256;
use crate::params::Network;
use crate::shard::{ShardId, ShardOrder};

pub mod batch;

/// The process-wide secp256k1 context.
pub fn secp() -> &'static Secp256k1<All> {
    static CTX: OnceLock<Secp256k1<All>> = OnceLock::new();
    CTX.get_or_init(Secp256k1::new)
}

/// An account: the x-only public key that signs for it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Address(pub [u8; 32]);

/// Why a string or key is not an address.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AddressError {
    /// Not valid bech32m.
    #[error("not a bech32m address: {0}")]
    Bech32(String),
    /// The human-readable part is not `rx` or `trx`.
    #[error("unknown address prefix {0:?} (expected rx or trx)")]
    UnknownHrp(String),
    /// The payload is not 32 bytes.
    #[error("address payload is {0} bytes, expected 32")]
    BadLength(usize),
    /// The 32 bytes are not the x coordinate of a curve point.
    #[error("address is not a valid x-only public key")]
    NotAPoint,
    /// An address of a test network used on mainnet or the reverse.
    #[error("address is for {found}, this chain is {expected}")]
    WrongNetwork {
        /// The network in use.
        expected: &'static str,
        /// The network the address prefix names.
        found: &'static str,
    },
}

impl Address {
    /// The address of an x-only key.
    pub fn from_xonly(key: &XOnlyPublicKey) -> Self {
        Address(key.serialize())
    }

    /// The key, if these bytes are a valid curve point. Keys parsed before come from a
    /// bounded process-wide cache (see [`key_cache_stats`]): parsing lifts the x coordinate
    /// to a point with a field square root, about a sixth of a BIP340 verification, and
    /// senders and payees recur.
    pub fn to_xonly(&self) -> Result<XOnlyPublicKey, AddressError> {
        KEYS.get_or_parse(self, |x| XOnlyPublicKey::from_slice(x).ok())
            .ok_or(AddressError::NotAPoint)
    }

    /// The shard this account lives on: the low `order` bits of the first 8 bytes (LE) of
    /// SHA256(address).
    pub fn shard(&self, order: ShardOrder) -> ShardId {
        shard_of(self, order)
    }

    /// Bech32m encoding for `network`.
    pub fn encode(&self, network: Network) -> String {
        let hrp = Hrp::parse_unchecked(network.address_hrp());
        bitcoin::bech32::encode::<Bech32m>(hrp, &self.0).expect("32 bytes always fit")
    }

    /// Parses an `rx`/`trx` address and checks it belongs to `network`.
    pub fn parse_for(s: &str, network: Network) -> Result<Self, AddressError> {
        let (addr, hrp) = Self::parse_any(s)?;
        if hrp != network.address_hrp() {
            return Err(AddressError::WrongNetwork {
                expected: network.address_hrp(),
                found: if hrp == "rx" { "rx" } else { "trx" },
            });
        }
        Ok(addr)
    }

    /// Parses an address of any network, returning its prefix.
    pub fn parse_any(s: &str) -> Result<(Self, &'static str), AddressError> {
        let checked =
            CheckedHrpstring::new::<Bech32m>(s).map_err(|e| AddressError::Bech32(e.to_string()))?;
        let hrp = checked.hrp();
        let hrp = match hrp.as_str() {
            "rx" => "rx",
            "trx" => "trx",
            other => return Err(AddressError::UnknownHrp(other.to_string())),
        };
        let bytes: Vec<u8> = checked.byte_iter().collect();
        let arr: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| AddressError::BadLength(bytes.len()))?;
        let addr = Address(arr);
        addr.to_xonly()?;
        Ok((addr, hrp))
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({})", self.0.to_lower_hex_string())
    }
}

impl fmt::Display for Address {
    /// Test-network form (`trx1…`); use [`Address::encode`] to pick the network.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode(Network::Regtest))
    }
}

impl FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::parse_any(s)?.0)
    }
}

impl Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The shard of `addr` at `order` (see [`Address::shard`]).
pub fn shard_of(addr: &Address, order: ShardOrder) -> ShardId {
    let h = sha256::Hash::hash(&addr.0).to_byte_array();
    let low = u64::from_le_bytes(h[..8].try_into().expect("8 bytes"));
    let mask = (1u64 << order.get()) - 1;
    ShardId((low & mask) as u16)
}

/// Parsed keys by address: 16 sets of at most 4,096 each (about 6.5 MB in all for
/// libsecp256k1's keys), keyed with the standard library's randomly seeded hasher so that
/// chosen addresses cannot crowd one bucket. A full set is emptied and refilled: simple, and
/// no worse than no cache when many new keys arrive. Only valid keys are kept.
struct KeyCache<K> {
    sets: [Mutex<HashMap<[u8; 32], K>>; KEY_SETS],
    hits: AtomicU64,
    misses: AtomicU64,
}

const KEY_SETS: usize = 16;
const KEYS_PER_SET: usize = 4_096;

static KEYS: LazyLock<KeyCache<XOnlyPublicKey>> = LazyLock::new(KeyCache::new);

impl<K: Copy> KeyCache<K> {
    fn new() -> Self {
        KeyCache {
            sets: std::array::from_fn(|_| Mutex::new(HashMap::with_capacity(KEYS_PER_SET))),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The key of `addr`, from the cache or parsed by `parse` (None: not a valid key).
    fn get_or_parse(
        &self,
        addr: &Address,
        parse: impl FnOnce(&[u8; 32]) -> Option<K>,
    ) -> Option<K> {
        // The set from a byte the hasher does not see first: any spread will do, since a
        // set's map is seeded anyway.
        let set = &self.sets[usize::from(addr.0[31]) % KEY_SETS];
        if let Some(k) = set.lock().unwrap_or_else(|e| e.into_inner()).get(&addr.0) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Some(*k);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let key = parse(&addr.0)?;
        let mut set = set.lock().unwrap_or_else(|e| e.into_inner());
        if set.len() >= KEYS_PER_SET {
            set.clear();
        }
        set.insert(addr.0, key);
        Some(key)
    }
}

/// Lookups of the parsed-key cache behind [`Address::to_xonly`] since the process started:
/// `(hits, misses)`.
pub fn key_cache_stats() -> (u64, u64) {
    (
        KEYS.hits.load(Ordering::Relaxed),
        KEYS.misses.load(Ordering::Relaxed),
    )
}

/// A signing key for an account. Its secret never appears in `Debug` output.
#[derive(Clone)]
pub struct Signer {
    keypair: Keypair,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signer({:?})", self.address())
    }
}

impl Signer {
    /// A signer from a 32-byte secret key.
    pub fn from_secret(secret: [u8; 32]) -> Result<Self, secp256k1::Error> {
        let keypair = Keypair::from_seckey_slice(secp(), &secret)?;
        Ok(Signer { keypair })
    }

    /// A deterministic signer for tests and benches: the secret is SHA256(seed).
    pub fn from_seed(seed: &[u8]) -> Self {
        let mut s = sha256::Hash::hash(seed).to_byte_array();
        loop {
            if let Ok(k) = Self::from_secret(s) {
                return k;
            }
            s = sha256::Hash::hash(&s).to_byte_array();
        }
    }

    /// The account this key signs for.
    pub fn address(&self) -> Address {
        Address::from_xonly(&self.keypair.x_only_public_key().0)
    }

    /// BIP340 signature over a 32-byte message digest.
    pub fn sign(&self, digest: &Hash256) -> [u8; 64] {
        let msg = Message::from_digest(digest.0);
        secp()
            .sign_schnorr_no_aux_rand(&msg, &self.keypair)
            .serialize()
    }
}

/// Verifies a BIP340 signature by `addr` over `digest`.
pub fn verify_signature(addr: &Address, digest: &Hash256, sig: &[u8; 64]) -> bool {
    addr.to_xonly()
        .is_ok_and(|key| verify_with_key(&key, digest, sig))
}

/// Verifies a BIP340 signature by an already parsed `key` over `digest`.
pub fn verify_with_key(key: &XOnlyPublicKey, digest: &Hash256, sig: &[u8; 64]) -> bool {
    schnorr::Signature::from_slice(sig).is_ok_and(|sig| {
        secp()
            .verify_schnorr(&sig, &Message::from_digest(digest.0), key)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bech32m_roundtrip_and_network_check() {
        let a = Signer::from_seed(b"alice").address();
        let main = a.encode(Network::Main);
        let test = a.encode(Network::Regtest);
        assert!(main.starts_with("rx1"));
        assert!(test.starts_with("trx1"));
        assert_eq!(Address::parse_for(&main, Network::Main).unwrap(), a);
        assert!(matches!(
            Address::parse_for(&test, Network::Main),
            Err(AddressError::WrongNetwork { .. })
        ));
        // A bech32 (not bech32m) checksum over the same data is rejected.
        let hrp = Hrp::parse_unchecked("rx");
        let legacy = bitcoin::bech32::encode::<bitcoin::bech32::Bech32>(hrp, &a.0).unwrap();
        assert!(Address::from_str(&legacy).is_err());
    }

    #[test]
    fn shard_of_uses_low_bits_of_sha256() {
        let order = ShardOrder::new(4).unwrap();
        for i in 0..100u32 {
            let a = Address(sha256::Hash::hash(&i.to_le_bytes()).to_byte_array());
            let s = shard_of(&a, order);
            assert!(order.contains(s));
            let h = sha256::Hash::hash(&a.0).to_byte_array();
            assert_eq!(s.0 as u8 & 0x0f, h[0] & 0x0f);
        }
    }

    #[test]
    fn signatures_verify_only_for_their_key_and_message() {
        let k = Signer::from_seed(b"k");
        let d = crate::hash::tagged_hash("t", b"m");
        let sig = k.sign(&d);
        assert!(verify_signature(&k.address(), &d, &sig));
        let other = crate::hash::tagged_hash("t", b"n");
        assert!(!verify_signature(&k.address(), &other, &sig));
        assert!(!verify_signature(
            &Signer::from_seed(b"j").address(),
            &d,
            &sig
        ));
    }

    #[test]
    fn the_key_cache_gives_what_parsing_gives_and_keeps_no_invalid_key() {
        // Past a set's capacity many times over: sets are emptied and refilled.
        let n = (KEY_SETS * KEYS_PER_SET * 3) as u32;
        let mut valid = 0;
        for i in 0..n {
            let a = Address(sha256::Hash::hash(&i.to_le_bytes()).to_byte_array());
            let fresh = XOnlyPublicKey::from_slice(&a.0).ok();
            assert_eq!(a.to_xonly().ok(), fresh, "first lookup of {a:?}");
            assert_eq!(a.to_xonly().ok(), fresh, "second lookup of {a:?}");
            valid += usize::from(fresh.is_some());
        }
        // About half of all x coordinates are on the curve; none of the others is cached.
        assert!(
            valid > n as usize / 3 && valid < 2 * n as usize / 3,
            "{valid}"
        );
        for set in &KEYS.sets {
            let set = set.lock().unwrap();
            assert!(set.len() <= KEYS_PER_SET);
            for (bytes, key) in set.iter() {
                assert_eq!(key.serialize(), *bytes);
            }
        }
        let not_a_point = (0u32..)
            .map(|i| Address(sha256::Hash::hash(&i.to_be_bytes()).to_byte_array()))
            .find(|a| XOnlyPublicKey::from_slice(&a.0).is_err())
            .unwrap();
        for _ in 0..3 {
            assert_eq!(not_a_point.to_xonly(), Err(AddressError::NotAPoint));
        }
        let (hits, misses) = key_cache_stats();
        assert!(hits > 0 && misses > 0);
    }
}
