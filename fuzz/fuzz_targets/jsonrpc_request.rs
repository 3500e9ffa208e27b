//! JSON-RPC request bodies (the L2 node's and the regtest node's HTTP servers, the mining
//! proxy's method sniffing) on arbitrary bytes: nothing panics, the parser agrees with
//! serde_json on what is JSON, the batch limit only refuses batches over it, and every
//! request re-encodes to a body that parses to the same request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rexe_rpc::jsonrpc::{self, Body, BodyError, Entry};
use serde_json::Value;

fn check(e: &Entry) {
    match e {
        Ok(r) => {
            let again = serde_json::to_vec(&r.to_json()).expect("encodes");
            assert_eq!(
                jsonrpc::parse_body(&again, 0),
                Ok(Body::Single(Ok(r.clone())))
            );
            let reply = jsonrpc::response(r.id.clone(), r.v2, Ok(Value::Null));
            assert_eq!(reply.get("jsonrpc").is_some(), r.v2);
            assert_eq!(reply.get("error").is_some(), !r.v2);
        }
        Err(inv) => {
            let reply = jsonrpc::response(
                inv.id(),
                inv.v2(),
                Err(jsonrpc::error_object(
                    jsonrpc::INVALID_REQUEST,
                    inv.to_string(),
                )),
            );
            assert_eq!(reply["id"], inv.id());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let full = jsonrpc::parse_body(data, usize::MAX);
    let is_json = serde_json::from_slice::<Value>(data).is_ok();
    assert_eq!(full.is_ok(), is_json);
    match &full {
        Err(e) => assert_eq!(e.code(), jsonrpc::PARSE_ERROR),
        Ok(Body::Single(e)) => check(e),
        Ok(Body::Batch(es)) => {
            es.iter().for_each(check);
            let oks: Vec<_> = es.iter().filter_map(|e| e.as_ref().ok()).collect();
            let again = Value::Array(oks.iter().map(|r| r.to_json()).collect());
            let again = serde_json::to_vec(&again).expect("encodes");
            let want: Vec<Entry> = oks.into_iter().map(|r| Ok(r.clone())).collect();
            assert_eq!(
                jsonrpc::parse_body(&again, usize::MAX),
                Ok(Body::Batch(want))
            );
        }
    }
    let limited = jsonrpc::parse_body(data, 3);
    match (&full, &limited) {
        (Ok(Body::Batch(es)), Err(BodyError::BatchTooLarge { len, max: 3 })) => {
            assert_eq!(*len, es.len());
            assert!(es.len() > 3);
        }
        (f, l) => assert_eq!(f, l),
    }
});
