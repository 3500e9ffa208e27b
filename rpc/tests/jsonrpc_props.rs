//! The `jsonrpc_request` fuzz target's properties as proptests: arbitrary bytes, and valid
//! requests and batches with a byte mutated.

use proptest::prelude::*;
use rexe_rpc::jsonrpc::{self, Body, BodyError, Entry, Request};
use serde_json::{json, Value};

fn check_entry(e: &Entry) {
    if let Ok(r) = e {
        let again = serde_json::to_vec(&r.to_json()).unwrap();
        assert_eq!(
            jsonrpc::parse_body(&again, 0),
            Ok(Body::Single(Ok(r.clone())))
        );
        let reply = jsonrpc::response(r.id.clone(), r.v2, Ok(Value::Null));
        assert_eq!(reply.get("jsonrpc").is_some(), r.v2);
        assert_eq!(reply.get("error").is_some(), !r.v2);
    }
}

fn check(data: &[u8]) {
    let full = jsonrpc::parse_body(data, usize::MAX);
    assert_eq!(full.is_ok(), serde_json::from_slice::<Value>(data).is_ok());
    match &full {
        Err(e) => assert_eq!(e.code(), jsonrpc::PARSE_ERROR),
        Ok(Body::Single(e)) => check_entry(e),
        Ok(Body::Batch(es)) => es.iter().for_each(check_entry),
    }
    match (&full, jsonrpc::parse_body(data, 3)) {
        (Ok(Body::Batch(es)), Err(BodyError::BatchTooLarge { len, max: 3 })) => {
            assert_eq!(len, es.len());
            assert!(len > 3);
        }
        (f, l) => assert_eq!(f, &l),
    }
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-z0-9 \\\\\"é]{0,12}".prop_map(Value::from),
    ]
}

fn request() -> impl Strategy<Value = Request> {
    (
        scalar(),
        "[a-z_]{1,20}",
        prop::collection::vec(scalar(), 0..4),
        any::<bool>(),
    )
        .prop_map(|(id, method, params, v2)| Request {
            id,
            method,
            params: Value::Array(params),
            v2,
        })
}

/// One of: flip a byte, delete one, insert one.
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
    fn valid_requests_round_trip(r in request()) {
        let body = serde_json::to_vec(&r.to_json()).unwrap();
        prop_assert_eq!(jsonrpc::parse_body(&body, 0), Ok(Body::Single(Ok(r))));
    }

    #[test]
    fn mutated_batches(
        rs in prop::collection::vec(request(), 0..5),
        at in any::<usize>(),
        byte in any::<u8>(),
        how in any::<u8>(),
    ) {
        let body = serde_json::to_vec(&json!(rs.iter().map(Request::to_json).collect::<Vec<_>>())).unwrap();
        let want = if rs.len() > 3 {
            Err(BodyError::BatchTooLarge { len: rs.len(), max: 3 })
        } else {
            Ok(Body::Batch(rs.iter().cloned().map(Ok).collect()))
        };
        prop_assert_eq!(jsonrpc::parse_body(&body, 3), want);
        check(&mutate(body, at, byte, how));
    }
}
