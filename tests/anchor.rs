//! Bitcoin-anchored finality end to end, with the real parts: L2 blocks sealed by AuxPoW
//! (`AuxPowSealer`), the peg tracking Bitcoin headers submitted in L2 transactions
//! (`PegContract`). An L2 block whose AuxPoW parent is a Bitcoin block that becomes K deep on
//! the tracked chain is anchored; a private branch with far more work that forks below it is
//! refused; premature seals (a parent that is no Bitcoin block) anchor nothing.

use std::sync::Arc;

use bitcoin::block::Header as BtcHeader;
use bitcoin::CompactTarget;
use rexe_bridge::call::PegCall;
use rexe_bridge::contract::PegContract;
use rexe_chain::system::SystemId;
use rexe_chain::{
    Address, Amount, Block, BlockError, Chain, ChainConfig, ChainParams, Network, Payload, Signer,
    SubmitOutcome, Tx,
};
use rexe_miner::auxpow::{mine_parent, AuxTree, ChainId};
use rexe_miner::seal::aux_hash;
use rexe_miner::AuxPowSealer;

const BITS: u32 = 0x207f_ffff;

fn params(key: &Signer) -> ChainParams {
    let mut p = ChainParams::for_tests(1, vec![(key.address(), Amount::ONE_BTC)]);
    p.btc_confirmations = 2;
    p
}

fn open(dir: &std::path::Path, p: &ChainParams) -> Chain {
    Chain::open_with_systems(
        dir,
        p.clone(),
        ChainConfig::default(),
        Arc::new(AuxPowSealer::default()),
        vec![PegContract::for_chain(p).boxed()],
    )
    .unwrap()
}

/// Grinds `h` until it meets its own bits and `target` (both easy on regtest).
fn grind(h: &mut BtcHeader, target: bitcoin::pow::Target) {
    while h.validate_pow(h.target()).is_err() || !target.is_met_by(h.block_hash()) {
        h.nonce = h.nonce.wrapping_add(1);
    }
}

/// Mines an L2 block from the mempool, sealed by an AuxPoW whose parent extends `btc_prev`
/// (a real regtest Bitcoin block), or by premature work (no Bitcoin parent) when `None`.
/// Returns the block and the parent header.
fn mine(
    chain: &mut Chain,
    miner: Address,
    btc_prev: Option<bitcoin::BlockHash>,
    skew: u64,
) -> (Block, BtcHeader) {
    let h = chain.tip_height() + 1;
    let now = chain.params().genesis_time + h * 10 + skew;
    let mut b = chain.template(miner, now).unwrap();
    let tree = AuxTree::build(&[(ChainId::REXE, aux_hash(&b.header))]).unwrap();
    let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Regtest).header;
    let mut aux = mine_parent(
        &tree,
        ChainId::REXE,
        CompactTarget::from_consensus(BITS),
        b.header.target(),
        genesis.time + 1_000 + h as u32,
    );
    if let Some(prev) = btc_prev {
        aux.parent.prev_blockhash = prev;
        grind(&mut aux.parent, b.header.target());
    }
    b.seal = aux.encode();
    assert_eq!(
        chain.submit(b.clone(), now).unwrap(),
        SubmitOutcome::Connected
    );
    (b, aux.parent)
}

fn submit_headers(chain: &mut Chain, key: &Signer, nonce: u64, hs: Vec<BtcHeader>) {
    let payload = Payload::Call {
        contract: SystemId::PEG,
        value: Amount::ZERO,
        data: PegCall::SubmitHeaders(hs).encode(),
    };
    let tx = Tx {
        network: Network::Regtest,
        from: key.address(),
        nonce,
        max_fee: rexe_chain::fee::GasPrice::from_msat(10),
        max_tip: rexe_chain::fee::GasPrice::from_msat(10),
        gas_limit: rexe_chain::contract::intrinsic_gas(&payload),
        expiry_height: 1_000,
        payload,
    }
    .sign(key);
    chain.submit_tx(tx).unwrap();
}

#[test]
fn a_block_sealed_by_a_buried_bitcoin_block_is_final_under_any_work() {
    let key = Signer::from_seed(b"anchor relayer");
    let p = params(&key);
    let (honest, attacker) = (
        Signer::from_seed(b"honest").address(),
        Signer::from_seed(b"attacker").address(),
    );
    let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Regtest).header;
    let dir = tempfile::tempdir().unwrap();
    let mut x = open(dir.path(), &p);

    // L2 block 1 is sealed by Bitcoin block P (on regtest genesis); block 2 by premature work.
    let (b1, parent) = mine(&mut x, honest, Some(genesis.block_hash()), 0);
    mine(&mut x, honest, None, 0);
    // The relayer submits P: tracked, 1 of K = 2 confirmations. Not final yet.
    submit_headers(&mut x, &key, 0, vec![parent]);
    mine(&mut x, honest, None, 0);
    mine(&mut x, honest, None, 0);
    let peg = PegContract::of(&x).unwrap();
    assert_eq!(peg.headers().tip_height(), 1);
    assert_eq!(x.anchor(), None);
    // One more Bitcoin block on P: P is K deep, so L2 block 1 is anchored.
    let mut p2 = BtcHeader {
        prev_blockhash: parent.block_hash(),
        time: parent.time + 1,
        nonce: 0,
        ..parent
    };
    let own = p2.target();
    grind(&mut p2, own);
    submit_headers(&mut x, &key, 1, vec![p2]);
    mine(&mut x, honest, None, 0);
    mine(&mut x, honest, None, 0);
    assert_eq!(x.anchor(), Some((1, b1.header.hash())));
    assert!(x.is_final(1) && !x.is_final(2));
    let tip = x.tip_hash();

    // A private branch from genesis with five times the blocks: refused.
    let dy = tempfile::tempdir().unwrap();
    let mut y = open(dy.path(), &p);
    let private: Vec<Block> = (0..30).map(|_| mine(&mut y, attacker, None, 3).0).collect();
    assert!(y.tip_work() > x.tip_work());
    let mut refused = 0;
    for b in &private {
        match x.submit(b.clone(), b.header.time + 10_000) {
            Ok(SubmitOutcome::SideBranch) => {}
            Err(BlockError::BelowAnchor { fork: 0, anchor: 1 }) => refused += 1,
            other => panic!("private block: {other:?}"),
        }
    }
    assert!(refused > 0);
    assert_eq!(x.tip_hash(), tip);
}
