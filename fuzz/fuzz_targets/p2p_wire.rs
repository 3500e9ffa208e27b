//! The p2p sync protocol's messages (`rexe_node::p2p::wire`) on arbitrary bytes: a request
//! or response a peer sends never panics the decoder, and whatever decodes re-encodes to the
//! same bytes. Its proptest twin runs in CI (`wire_messages_never_panic_and_are_canonical`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rexe_chain::encode::{Decode, Encode};
use rexe_node::p2p::wire::{Request, Response};

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = Request::from_bytes(data) {
        assert_eq!(r.to_bytes(), data, "canonical request");
    }
    if let Ok(r) = Response::from_bytes(data) {
        assert_eq!(r.to_bytes(), data, "canonical response");
    }
});
