//! The regtest node's `validateaddress` on arbitrary strings: never panics; `isvalid` is
//! exactly whether rust-bitcoin parses a regtest address, and a valid one re-validates to
//! the same answer from its own `address` field.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rexe_regtest::core_json::validate_address;
use bitcoin::Network;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let v = validate_address(&s, Network::Regtest);
    let parses = s
        .parse::<bitcoin::Address<bitcoin::address::NetworkUnchecked>>()
        .is_ok_and(|a| a.require_network(Network::Regtest).is_ok());
    assert_eq!(v["isvalid"].as_bool(), Some(parses), "{s:?}: {v}");
    if parses {
        let again = validate_address(v["address"].as_str().unwrap(), Network::Regtest);
        assert_eq!(again, v);
    } else {
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{s:?}: {v}");
    }
});
