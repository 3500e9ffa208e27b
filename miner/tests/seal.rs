//! The AuxPoW seal on the L2 chain: blocks sealed by merge-mined work connect; seals for
//! another block, another chain id or with too little work are rejected.

use std::sync::Arc;

use bitcoin::pow::CompactTarget;
use rexe_chain::{BlockError, Chain, ChainConfig, ChainParams, Signer};
use rexe_miner::auxpow::{mine_parent, AuxTree, ChainId};
use rexe_miner::seal::aux_hash;
use rexe_miner::AuxPowSealer;

fn chain(dir: &std::path::Path) -> Chain {
    Chain::open(
        dir,
        ChainParams::for_tests(1, vec![]),
        ChainConfig::default(),
        Arc::new(AuxPowSealer::default()),
    )
    .unwrap()
}

#[test]
fn merge_mined_blocks_connect_and_bad_seals_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = chain(dir.path());
    let miner = Signer::from_seed(b"m").address();
    let bits = CompactTarget::from_consensus(0x1d00_ffff); // the parent's own (unmet) target
    for h in 1..=3u64 {
        let now = c.params().genesis_time + h;
        let mut b = c.template(miner, now).unwrap();
        // A two-chain aux tree: rexe beside Namecoin, as a pool merge-mining both would.
        let tree = AuxTree::build(&[
            (ChainId::REXE, aux_hash(&b.header)),
            (ChainId::NAMECOIN, [9; 32]),
        ])
        .unwrap();
        b.seal = mine_parent(&tree, ChainId::REXE, bits, b.header.target(), now as u32).encode();
        c.submit(b, now).unwrap();
    }
    assert_eq!(c.tip_height(), 3);

    let now = c.params().genesis_time + 4;
    let b = c.template(miner, now).unwrap();
    let tip = c.tip_hash();

    // Commitment to another block.
    let other = AuxTree::build(&[(ChainId::REXE, [1; 32])]).unwrap();
    let mut x = b.clone();
    x.seal = mine_parent(&other, ChainId::REXE, bits, b.header.target(), 1).encode();
    assert!(matches!(c.submit(x, now), Err(BlockError::BadSeal(_))));

    // A parent that is itself a rexe header (our chain id in its version).
    let tree = AuxTree::build(&[(ChainId::REXE, aux_hash(&b.header))]).unwrap();
    let mut aux = mine_parent(&tree, ChainId::REXE, bits, b.header.target(), 1);
    aux.parent.version = bitcoin::block::Version::from_consensus((ChainId::REXE.0 as i32) << 16);
    while !b.header.target().is_met_by(aux.parent.block_hash()) {
        aux.parent.nonce += 1;
    }
    let mut x = b.clone();
    x.seal = aux.encode();
    let err = c.submit(x, now).unwrap_err();
    assert!(err.to_string().contains("our chain ID"), "{err}");

    // A parent whose hash misses the L2 target (regtest target: half of all hashes).
    let tree = AuxTree::build(&[(ChainId::REXE, aux_hash(&b.header))]).unwrap();
    let mut aux = mine_parent(&tree, ChainId::REXE, bits, b.header.target(), 1);
    while b.header.target().is_met_by(aux.parent.block_hash()) {
        aux.parent.nonce += 1;
    }
    let mut x = b.clone();
    x.seal = aux.encode();
    let err = c.submit(x, now).unwrap_err();
    assert!(err.to_string().contains("above target"), "{err}");

    // Garbage.
    let mut x = b.clone();
    x.seal = vec![0xde, 0xad];
    assert!(matches!(c.submit(x, now), Err(BlockError::BadSeal(_))));
    assert_eq!(c.tip_hash(), tip);
}

/// The seal names the Bitcoin block whose work sealed it (the AuxPoW parent): the chain
/// anchors the L2 block on it once that block is buried on the tracked Bitcoin chain.
#[test]
fn the_seal_names_its_bitcoin_parent() {
    use bitcoin::hashes::Hash as _;
    use rexe_chain::seal::Sealer;
    let tree = AuxTree::build(&[(ChainId::REXE, [5; 32])]).unwrap();
    let bits = CompactTarget::from_consensus(0x207f_ffff);
    let target = bitcoin::pow::Target::from_compact(bits);
    let aux = mine_parent(&tree, ChainId::REXE, bits, target, 1);
    let sealer = AuxPowSealer::default();
    assert_eq!(
        sealer.bitcoin_parent(&aux.encode()),
        Some(aux.parent.block_hash().to_byte_array())
    );
    assert_eq!(sealer.bitcoin_parent(&[1, 2, 3]), None);
}
