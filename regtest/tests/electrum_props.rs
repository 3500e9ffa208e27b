//! The `electrum_line` fuzz target's properties as proptests: arbitrary bytes, and valid
//! requests and batches with a byte mutated.

use proptest::prelude::*;
use rexe_regtest::electrum::protocol::{self, Entry, Line, LineError, Method, Request};
use serde_json::{json, Value};

fn check_entry(e: &Entry) {
    match e {
        Ok(r) => assert_eq!(
            protocol::parse_line(&r.to_json().to_string(), 0),
            Ok(Line::Single(Ok(r.clone())))
        ),
        Err(inv) => assert!([-32600, -32601, -32602].contains(&inv.error.code())),
    }
}

fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let text = text.trim();
    let full = protocol::parse_line(text, usize::MAX);
    assert_eq!(full.is_ok(), serde_json::from_str::<Value>(text).is_ok());
    match &full {
        Err(e) => assert_eq!(e.code(), -32700),
        Ok(Line::Single(e)) => check_entry(e),
        Ok(Line::Batch(es)) => {
            assert!(!es.is_empty());
            es.iter().for_each(check_entry)
        }
    }
    match (&full, protocol::parse_line(text, 2)) {
        (Ok(Line::Batch(es)), Err(e @ LineError::BatchTooLarge { .. })) => {
            assert!(es.len() > 2);
            assert_eq!(e.code(), protocol::LIMIT_EXCEEDED);
        }
        (f, l) => assert_eq!(f, &l),
    }
}

fn method() -> impl Strategy<Value = Method> {
    let sh = any::<[u8; 32]>();
    prop_oneof![
        Just(Method::ServerVersion),
        Just(Method::Ping),
        Just(Method::FeeHistogram),
        (any::<u64>(), any::<u64>())
            .prop_map(|(height, cp_height)| Method::BlockHeader { height, cp_height }),
        (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(start, count, cp_height)| {
            Method::BlockHeaders {
                start,
                count,
                cp_height,
            }
        }),
        any::<u64>().prop_map(|blocks| Method::EstimateFee { blocks }),
        sh.prop_map(Method::GetHistory),
        sh.prop_map(Method::Subscribe),
        sh.prop_map(Method::ListUnspent),
        ("[0-9a-f]{0,70}", any::<bool>())
            .prop_map(|(txid, verbose)| Method::TxGet { txid, verbose }),
        "[0-9a-fA-F]{0,100}".prop_map(|raw| Method::Broadcast { raw }),
        (any::<[u8; 32]>(), any::<u64>()).prop_map(|(t, height)| Method::GetMerkle {
            txid: bitcoin::hashes::Hash::from_byte_array(t),
            height
        }),
        (any::<u64>(), any::<u64>(), any::<bool>()).prop_map(|(height, pos, merkle)| {
            Method::IdFromPos {
                height,
                pos,
                merkle,
            }
        }),
    ]
}

fn request() -> impl Strategy<Value = Request> {
    (
        prop_oneof![
            Just(Value::Null),
            any::<u32>().prop_map(Value::from),
            "[a-z]{0,5}".prop_map(Value::from)
        ],
        method(),
    )
        .prop_map(|(id, method)| Request { id, method })
}

fn mutate(mut b: Vec<u8>, at: usize, byte: u8, how: u8) -> Vec<u8> {
    if b.is_empty() {
        return vec![byte];
    }
    let at = at % b.len();
    match how % 3 {
        0 => b[at] = byte,
        1 => {
            b.remove(at);
        }
        _ => b.insert(at, byte),
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..200)) {
        check(&data);
    }

    #[test]
    fn mutated_requests(
        rs in prop::collection::vec(request(), 1..4),
        at in any::<usize>(),
        byte in any::<u8>(),
        how in any::<u8>(),
    ) {
        let line = json!(rs.iter().map(Request::to_json).collect::<Vec<_>>()).to_string();
        let want = Line::Batch(rs.iter().cloned().map(Ok).collect());
        prop_assert_eq!(protocol::parse_line(&line, 3), Ok(want));
        let single = rs[0].to_json().to_string();
        prop_assert_eq!(protocol::parse_line(&single, 0), Ok(Line::Single(Ok(rs[0].clone()))));
        check(&mutate(line.into_bytes(), at, byte, how));
        check(&mutate(single.into_bytes(), at, byte, how));
    }
}

#[test]
fn scripthash_and_param_errors_keep_their_messages() {
    let one = |l: &str| match protocol::parse_line(l, 1) {
        Ok(Line::Single(Err(inv))) => (inv.error.code(), inv.error.to_string()),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        one(r#"{"id":1,"method":"blockchain.scripthash.subscribe","params":["00"]}"#),
        (-32602, "invalid scripthash 00".to_string())
    );
    assert_eq!(
        one(r#"{"id":1,"method":"blockchain.transaction.id_from_pos","params":[1,-1]}"#),
        (-32602, "missing or invalid parameter tx_pos".to_string())
    );
    assert_eq!(
        one(r#"{"id":1,"method":"blockchain.transaction.get_merkle","params":["zz",1]}"#),
        (-32602, "invalid tx_hash".to_string())
    );
    assert_eq!(
        one(r#"{"id":1,"method":"nope"}"#),
        (-32601, "unknown method nope".to_string())
    );
}
