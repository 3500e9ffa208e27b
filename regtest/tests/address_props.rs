//! The `validate_address` fuzz target's properties as proptests: `validateaddress` never
//! panics on any text, `isvalid` is exactly whether rust-bitcoin parses a regtest address
//! (an invalid one always carries a reason and at most two error locations, inside the
//! string), and a valid answer re-validates to itself; a Bech32 address with one character
//! substituted is located at that character. Inputs: arbitrary strings, and real addresses
//! with one character changed.

use bitcoin::Network;
use proptest::prelude::*;
use rexe_regtest::core_json::validate_address;

fn check(s: &str) {
    let v = validate_address(s, Network::Regtest);
    let parses = s
        .parse::<bitcoin::Address<bitcoin::address::NetworkUnchecked>>()
        .is_ok_and(|a| a.require_network(Network::Regtest).is_ok());
    assert_eq!(v["isvalid"].as_bool(), Some(parses), "{s:?}: {v}");
    if parses {
        let again = validate_address(v["address"].as_str().unwrap(), Network::Regtest);
        assert_eq!(again, v);
    } else {
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{s:?}: {v}"
        );
        let at = v["error_locations"].as_array().expect("error_locations");
        let inside = at
            .iter()
            .all(|i| i.as_u64().is_some_and(|i| (i as usize) < s.len()));
        // Past Core's 90 characters every extra one is listed.
        assert!(
            inside
                && (at.len() <= 2
                    || s.len() > 90
                    || v["error"] == "Invalid character or mixed case"),
            "{s:?}: {v}"
        );
    }
}

/// Regtest addresses of every kind from a seed byte.
fn addresses(seed: u8) -> Vec<String> {
    use bitcoin::secp256k1::{Secp256k1, SecretKey};
    let secp = Secp256k1::new();
    let mut key = [1u8; 32];
    key[31] = seed;
    let sk = SecretKey::from_slice(&key).unwrap();
    let pk = bitcoin::CompressedPublicKey(sk.public_key(&secp));
    let (xonly, _) = sk.public_key(&secp).x_only_public_key();
    let script = bitcoin::ScriptBuf::new_op_return([seed; 4]);
    vec![
        bitcoin::Address::p2pkh(pk, Network::Regtest).to_string(),
        bitcoin::Address::p2sh(&script, Network::Regtest)
            .unwrap()
            .to_string(),
        bitcoin::Address::p2wpkh(&pk, Network::Regtest).to_string(),
        bitcoin::Address::p2wsh(&script, Network::Regtest).to_string(),
        bitcoin::Address::p2tr(&secp, xonly, None, Network::Regtest).to_string(),
    ]
}

proptest! {
    #[test]
    fn any_text(s in ".{0,120}") {
        check(&s);
    }

    #[test]
    fn addresses_with_one_character_changed(seed: u8, kind in 0usize..5, at: usize, c in "[0-9a-zA-Z]") {
        let mut a = addresses(seed)[kind].clone();
        check(&a);
        let at = at % a.len();
        let was = a.clone();
        a.replace_range(at..at + 1, &c);
        check(&a);
        check(&a.to_uppercase());
        // A substitution in a Bech32 address's data part, by a character of its set: the
        // checksum fails, and when the message names the address's own encoding, the
        // character is the one located.
        let charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
        if kind >= 2 && at >= 5 && charset.contains(c.as_str()) && a != was {
            let v = validate_address(&a, Network::Regtest);
            let own = if kind == 4 { "Invalid Bech32m checksum" } else { "Invalid Bech32 checksum" };
            if v["error"] == own {
                assert_eq!(v["error_locations"], serde_json::json!([at]), "{a}: {v}");
            } else {
                assert!(v["error"].as_str().unwrap().contains("checksum"), "{a}: {v}");
            }
        }
    }
}
