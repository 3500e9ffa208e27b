//! AuxPoW decoding and checking on arbitrary bytes: nothing panics, and whatever decodes
//! re-encodes to bytes that decode to the same proof (witness aside: `encode` drops it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rexe_miner::auxpow::{AuxPow, ChainId};

fuzz_target!(|data: &[u8]| {
    // The first 32 bytes (when there are that many) double as the aux block hash, so that
    // inputs can reach the rules after the root search.
    let mut hash = [0u8; 32];
    let n = data.len().min(32);
    hash[..n].copy_from_slice(&data[..n]);
    for bytes in [data, data.get(32..).unwrap_or_default()] {
        if let Ok(aux) = AuxPow::decode(bytes) {
            for id in [ChainId::NAMECOIN, ChainId::DOGECOIN, ChainId::REXE] {
                let _ = aux.check(hash, id);
            }
            let _ = aux.check_pow(aux.parent.target());
            let again = AuxPow::decode(&aux.encode()).expect("re-encoded auxpow decodes");
            let mut stripped = aux.clone();
            for i in &mut stripped.coinbase_tx.input {
                i.witness.clear();
            }
            assert_eq!(again, stripped);
        }
    }
    // The inspection tool on the same bytes as a header + AuxPoW.
    let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
    let _ = rexe_miner::inspect::inspect(&hex, ChainId::NAMECOIN);
});
