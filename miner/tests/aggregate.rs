//! The harvester's aux aggregation against fake aux RPC servers: one tree for the chains
//! that answer, a chain that never answers (or lies about its chain id) left out and
//! counted, one AuxPoW per chain from its own leaf, each passing the Namecoin rules.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bitcoin::hashes::Hash;
use bitcoin::hex::DisplayHex;
use rexe_miner::aggregate::{AggregateOptions, AuxChain};
use rexe_miner::auxpow::{decode_hex, AuxTree, ChainId, MERGED_MINING_HEADER};
use rexe_miner::harvest::Source;
use rexe_miner::proxy::{AggregateError, Harvester};
use rexe_rpc::client::RpcClient;
use serde_json::{json, Value};

/// A fake aux RPC: answers work with `hash` and `chainid`, records submissions.
fn fake_chain(hash: [u8; 32], chainid: u32) -> (String, Arc<Mutex<Vec<Value>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let rec = seen.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            if r.read_exact(&mut body).is_err() {
                continue;
            }
            let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let params = req["params"].as_array().cloned().unwrap_or_default();
            let result = if params.len() == 2 {
                rec.lock().unwrap().push(req.clone());
                json!(true)
            } else {
                let mut display = hash;
                display.reverse();
                json!({"hash": display.to_lower_hex_string(), "chainid": chainid,
                       "_target": "ff".repeat(32)})
            };
            let out = json!({"result": result, "error": null, "id": req["id"]}).to_string();
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{out}",
                out.len()
            );
        }
    });
    (addr, seen)
}

/// Accepts connections and never answers.
fn black_hole() -> (String, TcpListener) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    (l.local_addr().unwrap().to_string(), l)
}

fn rpc(addr: &str) -> RpcClient {
    RpcClient::new(addr, "u:p").with_timeout(Duration::from_millis(200))
}

fn block_with(tag: &[u8]) -> bitcoin::Block {
    let mut sig = vec![1, 7];
    sig.extend_from_slice(tag);
    let coinbase = bitcoin::Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: bitcoin::absolute::LockTime::ZERO,
        input: vec![bitcoin::TxIn {
            previous_output: bitcoin::OutPoint::null(),
            script_sig: bitcoin::ScriptBuf::from_bytes(sig),
            sequence: bitcoin::Sequence::MAX,
            witness: bitcoin::Witness::new(),
        }],
        output: vec![bitcoin::TxOut {
            value: bitcoin::Amount::from_sat(1),
            script_pubkey: bitcoin::ScriptBuf::new(),
        }],
    };
    let mut b = bitcoin::Block {
        header: bitcoin::block::Header {
            version: bitcoin::block::Version::from_consensus(0x2000_0000),
            prev_blockhash: bitcoin::BlockHash::all_zeros(),
            merkle_root: bitcoin::TxMerkleNode::all_zeros(),
            time: 1,
            bits: bitcoin::CompactTarget::from_consensus(0x207f_ffff),
            nonce: 0,
        },
        txdata: vec![coinbase],
    };
    b.header.merkle_root = b.compute_merkle_root().unwrap();
    b
}

#[test]
fn one_tree_for_the_chains_that_answer_and_one_auxpow_each() {
    let (h0, h1) = ([0x11u8; 32], [0x22u8; 32]);
    let (rexe_addr, rexe_seen) = fake_chain(h0, ChainId::REXE.0);
    let (nmc_addr, nmc_seen) = fake_chain(h1, 1);
    let (liar_addr, liar_seen) = fake_chain([0x33; 32], 5);
    let (hole_addr, _hole) = black_hole();
    let harvester = Harvester::with_aux_chains(
        rpc(&rexe_addr),
        "payout",
        ChainId::REXE,
        vec![
            AuxChain::new("nmc", rpc(&nmc_addr), ChainId::NAMECOIN, None),
            AuxChain::new("hole", rpc(&hole_addr), ChainId::DOGECOIN, Some("x".into())),
            AuxChain::new("liar", rpc(&liar_addr), ChainId(7), Some("y".into())),
        ],
        AggregateOptions::default(),
    )
    .unwrap();
    let tag = harvester.new_work().unwrap();
    // The tree holds rexe and nmc only: the black hole timed out, the liar's chain id is
    // not the configured one.
    let expected = AuxTree::build(&[(ChainId::REXE, h0), (ChainId::NAMECOIN, h1)]).unwrap();
    assert_eq!(tag, expected.commitment());
    {
        let st = harvester.stats.lock().unwrap();
        assert_eq!(st.chains["hole"].errors, 1);
        assert_eq!(st.chains["liar"].errors, 1);
        assert_eq!(st.chains["nmc"].errors, 0);
        assert_eq!(st.chains["nmc"].committed, 1);
    }
    // Within the retry window the failing chains are not called again.
    assert_eq!(harvester.new_work().unwrap(), tag);
    assert_eq!(harvester.stats.lock().unwrap().chains["hole"].errors, 1);

    let block = block_with(&tag);
    assert!(harvester.harvest(&block, Source::Premature));
    let auxpow_of = |seen: &Arc<Mutex<Vec<Value>>>, method: &str| {
        let s = seen.lock().unwrap();
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(s[0]["method"], json!(method));
        decode_hex(s[0]["params"][1].as_str().unwrap()).unwrap()
    };
    let a0 = auxpow_of(&rexe_seen, "submitauxblock");
    let a1 = auxpow_of(&nmc_seen, "getauxblock");
    assert!(liar_seen.lock().unwrap().is_empty());
    assert_eq!(a0.check(h0, ChainId::REXE), Ok(()));
    assert_eq!(a1.check(h1, ChainId::NAMECOIN), Ok(()));
    assert_ne!(a0.chain_index, a1.chain_index);
    assert_eq!(a0.parent.block_hash(), block.block_hash());
    let script = a0.coinbase_tx.input[0].script_sig.as_bytes();
    let headers = script
        .windows(4)
        .filter(|w| *w == MERGED_MINING_HEADER)
        .count();
    assert_eq!(headers, 1);
    {
        let st = harvester.stats.lock().unwrap();
        assert_eq!(st.chains["rexe"].sealed, 1);
        assert_eq!(st.chains["nmc"].sealed, 1);
        assert_eq!(st.premature, 1);
    }
    // Harvested once: the same block again submits nothing.
    assert!(!harvester.harvest(&block, Source::OnChain));
    assert_eq!(rexe_seen.lock().unwrap().len(), 1);
    assert_eq!(nmc_seen.lock().unwrap().len(), 1);
}

#[test]
fn two_chains_with_one_chain_id_are_refused() {
    let r = Harvester::with_aux_chains(
        rpc("127.0.0.1:1"),
        "payout",
        ChainId::REXE,
        vec![
            AuxChain::new("a", rpc("127.0.0.1:1"), ChainId::NAMECOIN, None),
            AuxChain::new("b", rpc("127.0.0.1:1"), ChainId::NAMECOIN, None),
        ],
        AggregateOptions::default(),
    );
    match r {
        Err(AggregateError::DuplicateChainId { id, first, second }) => {
            assert_eq!((id, first.as_str(), second.as_str()), (1, "a", "b"))
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("accepted two chains with chain id 1"),
    }
    let r = Harvester::with_aux_chains(
        rpc("127.0.0.1:1"),
        "payout",
        ChainId::REXE,
        vec![AuxChain::new(
            "twin",
            rpc("127.0.0.1:1"),
            ChainId::REXE,
            None,
        )],
        AggregateOptions::default(),
    );
    assert!(matches!(r, Err(AggregateError::DuplicateChainId { .. })));
    // Counters are kept by label: two chains cannot share one.
    let r = Harvester::with_aux_chains(
        rpc("127.0.0.1:1"),
        "payout",
        ChainId::REXE,
        vec![AuxChain::new(
            "rexe",
            rpc("127.0.0.1:1"),
            ChainId::NAMECOIN,
            None,
        )],
        AggregateOptions::default(),
    );
    assert!(matches!(r, Err(AggregateError::DuplicateName(n)) if n == "rexe"));
}
