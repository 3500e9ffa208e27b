//! Aux aggregation end to end: `rexe miner run` merge-mines rexe's L2 and two more AuxPoW
//! chains (two more `rexe node`s with chain ids 0x0001 and 0x0062, one worked with
//! `getauxblock`, one with `createauxblock`) in ONE aux tree. A pool takes templates from the
//! proxy and mines; every chain gets valid AuxPoW for its blocks; the coinbase carries one
//! merged-mining header; a chain killed mid-run does not stop the others.

mod common;

use bitcoin::hex::DisplayHex;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::hex::FromHex;
use common::*;
use rexe_chain::{Network, Signer};
use rexe_miner::auxpow::{AuxPow, ChainId, MERGED_MINING_HEADER};
use rexe_regtest::{RegtestConfig, RegtestNode};
use rexe_rpc::client::RpcClient;
use serde_json::{json, Value};

fn node(dir: &std::path::Path, extra: &[&str]) -> Running {
    let mut args = vec![
        "node",
        "--datadir",
        dir.to_str().unwrap(),
        "--rpc-bind",
        "127.0.0.1:0",
        "--rpc-user",
        "u",
        "--rpc-password",
        "p",
    ];
    args.extend_from_slice(extra);
    spawn(&args, dir)
}

fn height(n: &Running) -> u64 {
    call(n, "getblockcount", json!([]))["result"]
        .as_u64()
        .unwrap()
}

/// The AuxPoW sealing block `h` of `n`, checked with the Namecoin rules for `id`.
fn checked_seal(n: &Running, h: u64, id: ChainId) -> AuxPow {
    let raw = call(n, "getblock", json!([h, 0]))["result"]
        .as_str()
        .unwrap()
        .to_string();
    let block = <rexe_chain::Block as rexe_chain::encode::Decode>::from_bytes(
        &Vec::<u8>::from_hex(&raw).unwrap(),
    )
    .unwrap();
    let aux = AuxPow::decode(&block.seal).unwrap();
    aux.check(rexe_miner::seal::aux_hash(&block.header), id)
        .unwrap_or_else(|e| panic!("block {h} of chain {:#06x}: {e}", id.0));
    aux.check_pow(block.header.target()).unwrap();
    aux
}

/// Exits with failure (within 30 s), its stderr.
fn fails(mut cmd: Command) -> String {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            assert!(!status.success(), "expected a failure, got {status}: {err}");
            return err;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn proxy_merge_mines_three_chains_in_one_tree_and_survives_a_dead_chain() {
    let btc_node = RegtestNode::start(RegtestConfig::default()).unwrap();
    let (d0, d1, d2) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let nmc_miner = Signer::from_seed(b"nmc-miner")
        .address()
        .encode(Network::Regtest);
    let l2 = node(d0.path(), &[]);
    // "nmc": chain id 0x0001, worked with getauxblock (it pays its --mining-address).
    let nmc = node(
        d1.path(),
        &["--chain-id", "0x0001", "--mining-address", &nmc_miner],
    );
    // "doge": chain id 0x0062 (decimal 98), worked with createauxblock <address>.
    let doge = node(d2.path(), &["--chain-id", "98"]);
    let payout = Signer::from_seed(b"pool-payout")
        .address()
        .encode(Network::Regtest);
    let doge_payout = Signer::from_seed(b"doge-payout")
        .address()
        .encode(Network::Regtest);
    let nmc_spec = format!("http://u:p@{},chain-id=0x0001,name=nmc", nmc.rpc);
    let doge_spec = format!("{},u:p,address={doge_payout},name=doge", doge.rpc);
    let miner_cmd = |proxy: &str, aux: &[&str]| {
        let mut c = miner_command(&btc_node, &l2.rpc, &payout, proxy);
        c.args(["--watch-interval-ms", "50", "--aux-chain-timeout", "1"]);
        for a in aux {
            c.args(["--aux-chain", a]);
        }
        c
    };

    // Two chains with one chain id are refused at start.
    let dup = format!("{},u:p,chain-id=0x0b42,name=twin", doge.rpc);
    let err = fails(miner_cmd(
        &format!("127.0.0.1:{}", free_port()),
        &[&nmc_spec, &dup],
    ));
    assert!(err.contains("both have chain id 0x0b42"), "{err}");

    let proxy_addr = format!("127.0.0.1:{}", free_port());
    let _miner = KillOnDrop(
        miner_cmd(&proxy_addr, &[&nmc_spec, &doge_spec])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pool = RpcClient::new(proxy_addr.clone(), btc_node.cookie.clone());
    wait_for("the proxy", || {
        pool.call("getblockcount", json!([])).is_ok()
    });
    let pool_script = bitcoin::Address::p2wsh(
        &bitcoin::ScriptBuf::new_op_return([7u8; 4]),
        bitcoin::Network::Regtest,
    )
    .script_pubkey();
    // The pool: a template from the proxy, its coinbaseaux.flags in the coinbase, ground
    // to Bitcoin's target, submitted through the proxy.
    let mine_one = |extra: u64| {
        let t = pool
            .call("getblocktemplate", json!([{"rules": ["segwit"]}]))
            .unwrap();
        let flags = t["coinbaseaux"]["flags"]
            .as_str()
            .expect("coinbaseaux.flags")
            .to_string();
        assert_eq!(flags.len(), 88);
        assert!(flags.starts_with("fabe6d6d"));
        let mut b = rexe_miner::harvest::block_from_template(
            &t,
            &Vec::<u8>::from_hex(&flags).unwrap(),
            &pool_script,
            extra,
        )
        .unwrap();
        let target = b.header.target();
        while !target.is_met_by(b.block_hash()) {
            b.header.nonce += 1;
        }
        assert_eq!(
            pool.call("submitblock", json!([serialize_hex(&b)]))
                .unwrap(),
            Value::Null
        );
        b
    };
    let ids = [ChainId::REXE, ChainId::NAMECOIN, ChainId::DOGECOIN];
    for round in 1..=3u64 {
        let b = mine_one(round);
        wait_for("every chain's next block", || {
            height(&l2) == round && height(&nmc) == round && height(&doge) == round
        });
        // One Bitcoin block sealed all three, each through its own leaf of one tree.
        let seals: Vec<AuxPow> = [&l2, &nmc, &doge]
            .iter()
            .zip(ids)
            .map(|(n, id)| checked_seal(n, round, id))
            .collect();
        let script = b.txdata[0].input[0].script_sig.as_bytes();
        let headers = script
            .windows(4)
            .filter(|w| *w == MERGED_MINING_HEADER)
            .count();
        assert_eq!(headers, 1, "one merged-mining header in the coinbase");
        let mut slots: Vec<i32> = seals.iter().map(|a| a.chain_index).collect();
        slots.sort_unstable();
        slots.dedup();
        assert_eq!(slots.len(), 3, "three distinct slots");
        for a in &seals {
            assert_eq!(a.parent.block_hash(), b.block_hash());
            assert_eq!(a.coinbase_tx.compute_txid(), b.txdata[0].compute_txid());
            assert_eq!(a.chain_branch.len(), seals[0].chain_branch.len());
            // 0x0b42 and 0x0062 are equal modulo 32: the smallest tree has 64 leaves.
            assert_eq!(a.chain_branch.len(), 6);
        }
    }
    // The getauxblock chain paid its own mining address.
    let nmc_tip = call(&nmc, "getblock", json!([3]))["result"].clone();
    assert_eq!(nmc_tip["miner"], json!(nmc_miner), "{nmc_tip}");

    // A share (what a pool's Stratum server sees; it never reaches bitcoind) handed to the
    // proxy with submitauxshare seals every chain in the tree; Bitcoin does not move.
    let btc_height = pool.call("getblockcount", json!([])).unwrap();
    let t = pool
        .call("getblocktemplate", json!([{"rules": ["segwit"]}]))
        .unwrap();
    let flags = Vec::<u8>::from_hex(t["coinbaseaux"]["flags"].as_str().unwrap()).unwrap();
    let mut b = rexe_miner::harvest::block_from_template(&t, &flags, &pool_script, 4).unwrap();
    let target = b.header.target();
    while !target.is_met_by(b.block_hash()) {
        b.header.nonce += 1;
    }
    let txids: Vec<[u8; 32]> = b
        .txdata
        .iter()
        .map(|t| bitcoin::hashes::Hash::to_byte_array(t.compute_txid()))
        .collect();
    let branch: Vec<String> = rexe_miner::harvest::coinbase_branch(&txids)
        .iter()
        .map(|b| b.to_lower_hex_string())
        .collect();
    let share = |branch: &[String]| {
        pool.call(
            "submitauxshare",
            json!([
                serialize_hex(&b.header),
                serialize_hex(&b.txdata[0]),
                branch
            ]),
        )
    };
    // A branch that does not lead to the header's merkle root is refused before any chain
    // hears of it.
    let err = share(&["00".repeat(32)]).unwrap_err().to_string();
    assert!(err.contains("merkle root"), "{err}");
    assert_eq!(share(&branch).unwrap(), json!({"sealed": true}));
    wait_for("every chain's block from the share", || {
        height(&l2) == 4 && height(&nmc) == 4 && height(&doge) == 4
    });
    for (n, id) in [&l2, &nmc, &doge].into_iter().zip(ids) {
        let a = checked_seal(n, 4, id);
        assert_eq!(a.parent.block_hash(), b.block_hash());
    }
    // The same share again seals nothing more.
    assert_eq!(share(&branch).unwrap(), json!({"sealed": false}));
    assert_eq!(pool.call("getblockcount", json!([])).unwrap(), btc_height);

    // "doge" goes down mid-run: templates still come (with one tag), the others still
    // get their blocks.
    drop(doge);
    for round in 5..=6u64 {
        mine_one(round);
        wait_for("rexe and nmc blocks without doge", || {
            height(&l2) == round && height(&nmc) == round
        });
        checked_seal(&l2, round, ChainId::REXE);
        checked_seal(&nmc, round, ChainId::NAMECOIN);
    }

    let s = proxy_stats(&proxy_addr);
    let chains = &s["chains"];
    assert_eq!(chains["rexe"]["sealed"], json!(6), "{s}");
    assert_eq!(chains["rexe"]["chain_id"], json!(0x0b42), "{s}");
    assert_eq!(chains["nmc"]["sealed"], json!(6), "{s}");
    assert_eq!(chains["nmc"]["chain_id"], json!(1), "{s}");
    assert_eq!(chains["doge"]["sealed"], json!(4), "{s}");
    assert_eq!(chains["doge"]["chain_id"], json!(0x62), "{s}");
    assert!(chains["doge"]["errors"].as_u64().unwrap() >= 1, "{s}");
    for c in ["rexe", "nmc", "doge"] {
        assert_eq!(chains[c]["rejected"], json!({}), "{c}: {s}");
    }
    assert_eq!(chains["rexe"]["errors"], json!(0), "{s}");
    assert_eq!(chains["nmc"]["errors"], json!(0), "{s}");
    assert_eq!(s["on_chain"], json!(5), "{s}");
    assert_eq!(s["premature"], json!(1), "the share: {s}");
    let (status, metrics) = {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(&proxy_addr).unwrap();
        write!(
            c,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut t = String::new();
        c.read_to_string(&mut t).unwrap();
        (t.split_whitespace().nth(1).unwrap_or("").to_string(), t)
    };
    assert_eq!(status, "200");
    for line in [
        "rexe_aux_sealed_total{chain=\"rexe\"} 6",
        "rexe_aux_sealed_total{chain=\"nmc\"} 6",
        "rexe_aux_sealed_total{chain=\"doge\"} 4",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    assert!(!metrics.contains("rexe_aux_errors_total{chain=\"doge\"} 0\n"));

    // The chain id is a consensus rule: doge's data directory refuses another one.
    let mut restart = Command::new(BIN);
    restart.args([
        "node",
        "--datadir",
        d2.path().to_str().unwrap(),
        "--rpc-bind",
        "127.0.0.1:0",
        "--chain-id",
        "0x0005",
    ]);
    let err = fails(restart);
    assert!(err.contains("sealed for chain id 0x0062"), "{err}");
}
