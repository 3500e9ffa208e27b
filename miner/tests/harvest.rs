//! Merge mining end to end against the embedded regtest node's real getblocktemplate /
//! submitblock: with Bitcoin's target 8x harder than the L2's, most sealing hashes are
//! premature shares and some are Bitcoin blocks, which bitcoind accepts.

use std::sync::Arc;

use bitcoin::hex::FromHex;
use rexe_chain::{Chain, ChainConfig, ChainParams, Signer};
use rexe_miner::auxpow::ChainId;
use rexe_miner::harvest::{mine, Source};
use rexe_miner::AuxPowSealer;
use rexe_regtest::{RegtestConfig, RegtestNode};
use rexe_rpc::client::RpcClient;
use serde_json::json;

#[test]
fn premature_and_on_chain_work_both_seal_l2_blocks() {
    let btc_node = RegtestNode::start(RegtestConfig {
        bits: 0x200f_ffff, // 1 in 16 hashes: 8x harder than the L2's regtest target
        ..RegtestConfig::default()
    })
    .unwrap();
    let btc = RpcClient::new(btc_node.rpc_addr.to_string(), btc_node.cookie.clone());
    let dir = tempfile::tempdir().unwrap();
    let mut l2 = Chain::open(
        dir.path(),
        ChainParams::for_tests(1, vec![]),
        ChainConfig::default(),
        Arc::new(AuxPowSealer::default()),
    )
    .unwrap();
    let miner = Signer::from_seed(b"harvest").address();
    let payout = bitcoin::ScriptBuf::new_op_return([1u8; 4]);
    let payout = bitcoin::Address::p2wsh(&payout, bitcoin::Network::Regtest).script_pubkey();
    let (mut premature, mut on_chain) = (0, 0);
    for h in 1..=400u64 {
        let now = l2.params().genesis_time + h;
        let mut block = l2.template(miner, now).unwrap();
        let aux_hash = block.header.hash().to_byte_array();
        let harvest = mine(
            &btc,
            aux_hash,
            ChainId::REXE,
            block.header.target(),
            &payout,
            1 << 20,
        )
        .unwrap()
        .expect("a sealing hash within 2^20 tries");
        block.seal = harvest.auxpow.encode();
        l2.submit(block, now).unwrap();
        match harvest.source {
            Source::Premature => premature += 1,
            Source::OnChain => on_chain += 1,
            Source::Stale => {}
        }
        if premature >= 3 && on_chain >= 2 {
            break;
        }
    }
    assert!(
        premature >= 3 && on_chain >= 2,
        "premature {premature}, on-chain {on_chain}"
    );
    let btc_height = btc
        .call("getblockcount", json!([]))
        .unwrap()
        .as_u64()
        .unwrap();
    assert!(btc_height >= 2, "bitcoind accepted the on-chain parents");
    // The Bitcoin blocks carry rexe's commitment in their coinbase.
    let tip = btc.call("getbestblockhash", json!([])).unwrap();
    let raw = btc.call("getblock", json!([tip, 0])).unwrap();
    let block: bitcoin::Block =
        bitcoin::consensus::deserialize(&Vec::<u8>::from_hex(raw.as_str().unwrap()).unwrap())
            .unwrap();
    let sig = block.txdata[0].input[0].script_sig.as_bytes();
    assert!(sig.windows(4).any(|w| w == [0xfa, 0xbe, b'm', b'm']));
}
