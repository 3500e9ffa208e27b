//! Every canonical decoder of the chain on arbitrary bytes: never panics, and whatever
//! decodes re-encodes to the same bytes. A relay proof that decodes is also checked against a
//! header, which must refuse it without panicking; a state or global state page that decodes
//! has its shape checked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rexe_chain::encode::{Decode, Encode};
use rexe_chain::proof::RelayProof;
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
    roundtrip::<RelayProof>(data);
    roundtrip::<rexe_chain::sync::StatePage>(data);
    roundtrip::<rexe_chain::sync::SyncProgress>(data);
    roundtrip::<rexe_chain::bootstrap::SealedHeader>(data);
    roundtrip::<rexe_chain::bootstrap::GlobalPage>(data);
    if let Ok(p) = rexe_chain::sync::StatePage::from_bytes(data) {
        let _ = p.check_shape();
    }
    if let Ok(p) = rexe_chain::bootstrap::GlobalPage::from_bytes(data) {
        let _ = p.check_shape();
        let _ = p.next();
    }
    if let Ok(p) = RelayProof::from_bytes(data) {
        let header = rexe_chain::Header {
            version: 1,
            height: 1,
            prev: rexe_chain::BlockHash::default(),
            time: 0,
            bits: 0x207f_ffff,
            order: rexe_chain::ShardOrder::new(2).unwrap(),
            miner: rexe_chain::Address([0; 32]),
            tx_root: rexe_chain::Hash256::ZERO,
            outbox_root: rexe_chain::Hash256([1; 32]),
            state_root: rexe_chain::Hash256::ZERO,
        };
        let p = RelayProof { block: header.hash(), ..p };
        assert!(p.verify(&header).is_err());
    }
    let _ = SignedTx::decode_checked(data, &rexe_chain::ChainParams::regtest());
});
