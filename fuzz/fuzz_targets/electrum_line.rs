//! Electrum request lines (the regtest node's Electrum server) on arbitrary bytes, taken
//! as the server takes them (lossy UTF-8, trimmed): nothing panics, the parser agrees with
//! serde_json on what is JSON, refusals carry JSON-RPC codes, and every checked request
//! re-encodes to a line that parses to the same request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rexe_regtest::electrum::protocol::{self, Entry, Line, LineError, LIMIT_EXCEEDED};
use serde_json::Value;

fn check(e: &Entry) {
    match e {
        Ok(r) => {
            let again = r.to_json().to_string();
            assert!(!again.contains('\n'));
            assert_eq!(
                protocol::parse_line(&again, 0),
                Ok(Line::Single(Ok(r.clone())))
            );
        }
        Err(inv) => {
            assert!([-32600, -32601, -32602].contains(&inv.error.code()));
            assert!(!inv.error.to_string().is_empty());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let text = text.trim();
    let full = protocol::parse_line(text, usize::MAX);
    assert_eq!(full.is_ok(), serde_json::from_str::<Value>(text).is_ok());
    match &full {
        Err(e) => assert_eq!(e.code(), -32700),
        Ok(Line::Single(e)) => check(e),
        Ok(Line::Batch(es)) => {
            assert!(!es.is_empty());
            es.iter().for_each(check);
        }
    }
    match (&full, protocol::parse_line(text, 2)) {
        (Ok(Line::Batch(es)), Err(e @ LineError::BatchTooLarge { .. })) => {
            assert!(es.len() > 2);
            assert_eq!(e.code(), LIMIT_EXCEEDED);
        }
        (f, l) => assert_eq!(f, &l),
    }
});
