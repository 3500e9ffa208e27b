//! Address parsing on arbitrary strings: never panics; what parses re-encodes canonically.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rexe_chain::{Address, Network};

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok((a, hrp)) = Address::parse_any(s) {
            let net = if hrp == "rx" { Network::Main } else { Network::Regtest };
            assert_eq!(Address::parse_for(&a.encode(net), net).unwrap(), a);
        }
    }
});
