//! Every canonical decoder of the chain on arbitrary bytes: never panics, and whatever
//! decodes re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rexe_chain::encode::{Decode, Encode};
use rexe_chain::relay::Relay;
use rexe_chain::{Block, Header, SignedTx};

fn roundtrip<T: Decode + Encode>(data: &[u8]) {
    if let Ok(v) = T::from_bytes(data) {
        assert_eq!(v.to_bytes(), data, "canonical encoding");
    }
}

fuzz_target!(|data: &[u8]| {
    roundtrip::<SignedTx>(data);
    roundtrip::<Header>(data);
    roundtrip::<Block>(data);
    roundtrip::<Relay>(data);
    let _ = SignedTx::decode_checked(data, &rexe_chain::ChainParams::regtest());
});
