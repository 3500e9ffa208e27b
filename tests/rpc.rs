//! The L2 node's JSON-RPC over real HTTP: authentication, malformed input, mining through
//! getblocktemplate/submitblock, transaction admission errors.

mod common;

use bitcoin::hex::{DisplayHex, FromHex};
use common::*;
use rexe_chain::encode::{Decode, Encode};
use rexe_chain::{Amount, Block, Network, Payload, Signer, Tx};
use serde_json::json;

fn node(dir: &std::path::Path) -> Running {
    spawn(
        &[
            "node",
            "--datadir",
            dir.to_str().unwrap(),
            "--rpc-bind",
            "127.0.0.1:0",
        ],
        dir,
    )
}

#[test]
fn rpc_requires_auth_and_binds_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let n = node(dir.path());
    assert!(n.rpc.starts_with("127.0.0.1:"), "binds loopback: {}", n.rpc);
    let body = br#"{"method":"getblockcount","params":[],"id":1}"#;
    assert_eq!(post(&n.rpc, None, body).0, 401, "no credentials");
    assert_eq!(
        post(&n.rpc, Some("__cookie__:wrong"), body).0,
        401,
        "wrong cookie"
    );
    let (status, text) = post(&n.rpc, Some(&n.cookie), body);
    assert_eq!(status, 200, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["result"], json!(0));
    assert_eq!(
        v["error"],
        serde_json::Value::Null,
        "JSON-RPC 1.0 style reply"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(".cookie"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "cookie is private");
    }
}

#[test]
fn bad_requests_get_json_rpc_errors() {
    let dir = tempfile::tempdir().unwrap();
    let n = node(dir.path());
    let (_, t) = post(&n.rpc, Some(&n.cookie), b"{not json");
    let v: serde_json::Value = serde_json::from_str(&t).unwrap();
    assert_eq!(v["error"]["code"], json!(-32700));

    let v = call(&n, "nosuchmethod", json!([]));
    assert_eq!(v["error"]["code"], json!(-32601));

    let v = call(&n, "getblockhash", json!(["zero"]));
    assert_eq!(v["error"]["code"], json!(-32602));
    let v = call(&n, "getblockhash", json!([1, 2]));
    assert_eq!(v["error"]["code"], json!(-32602));
    let v = call(&n, "getblockhash", json!([99]));
    assert_eq!(v["error"]["code"], json!(-8));
    let v = call(&n, "sendrawtransaction", json!(["zz"]));
    assert_eq!(v["error"]["code"], json!(-22));
    let v = call(&n, "sendrawtransaction", json!(["00"]));
    assert_eq!(v["error"]["code"], json!(-26));
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("malformed"));

    let big = vec![b' '; 9 * 1024 * 1024];
    let (status, t) = post(&n.rpc, Some(&n.cookie), &big);
    assert_eq!(status, 413);
    let v: serde_json::Value = serde_json::from_str(&t).unwrap();
    assert_eq!(v["error"]["code"], json!(-32600));

    // A batch answers each request, errors included.
    let (_, t) = post(
        &n.rpc,
        Some(&n.cookie),
        br#"[{"method":"getblockcount","id":1},{"method":"nope","id":2},5]"#,
    );
    let v: serde_json::Value = serde_json::from_str(&t).unwrap();
    assert_eq!(v[0]["result"], json!(0));
    assert_eq!(v[1]["error"]["code"], json!(-32601));
    assert_eq!(v[2]["error"]["code"], json!(-32600));

    // Still serving afterwards.
    assert_eq!(call(&n, "getblockcount", json!([]))["result"], json!(0));
}

#[test]
fn mining_through_the_rpc_and_transaction_errors() {
    let dir = tempfile::tempdir().unwrap();
    let n = node(dir.path());
    let miner = Signer::from_seed(b"rpc-miner");
    let addr = miner.address().encode(Network::Regtest);
    for h in 1..=3u64 {
        let t = call(&n, "getblocktemplate", json!([addr]));
        let hex = t["result"]["hex"].as_str().expect("template hex");
        let mut block = Block::from_bytes(&Vec::<u8>::from_hex(hex).unwrap()).unwrap();
        seal(&mut block);
        let r = call(
            &n,
            "submitblock",
            json!([block.to_bytes().to_lower_hex_string()]),
        );
        assert_eq!(r["result"], serde_json::Value::Null, "{r}");
        assert_eq!(call(&n, "getblockcount", json!([]))["result"], json!(h));
        // Submitting it again is a duplicate, as bitcoind says.
        let r = call(
            &n,
            "submitblock",
            json!([block.to_bytes().to_lower_hex_string()]),
        );
        assert_eq!(r["result"], json!("duplicate"));
    }
    let acct = call(&n, "getaccount", json!([addr]));
    assert!(acct["result"]["balance"].as_u64().unwrap() > 0, "{acct}");

    // The miner pays someone at 100 msat/gas.
    let pay = |nonce: u64, sats: u64| {
        Tx {
            network: Network::Regtest,
            from: miner.address(),
            nonce,
            max_fee: rexe_chain::fee::GasPrice::from_msat(100),
            max_tip: rexe_chain::fee::GasPrice::from_msat(100),
            gas_limit: rexe_chain::tx::TRANSFER_GAS,
            expiry_height: 100,
            payload: Payload::Transfer {
                to: Signer::from_seed(b"payee").address(),
                amount: Amount::from_sat(sats),
            },
        }
        .sign(&miner)
    };
    // Accepted, then the replay is refused with its reason.
    let tx = pay(0, 5_000);
    let hex = tx.to_bytes().to_lower_hex_string();
    let r = call(&n, "sendrawtransaction", json!([hex]));
    assert_eq!(r["result"], json!(tx.txid().to_string()), "{r}");
    let r = call(&n, "sendrawtransaction", json!([hex]));
    assert_eq!(r["error"]["code"], json!(-26));
    assert!(
        r["error"]["message"].as_str().unwrap().contains("already"),
        "{r}"
    );
    assert_eq!(
        call(&n, "getmempoolinfo", json!([]))["result"]["size"],
        json!(1)
    );
    // A call the peg refuses at admission: -26 with the refusal's kind and reason code in
    // `error.data` (what agents decide on), the message for people.
    let payload = Payload::Call {
        contract: rexe_chain::system::SystemId::PEG,
        value: Amount::ZERO,
        data: rexe_bridge::call::PegCall::Cancel {
            order_id: rexe_bridge::peg::OrderId(99),
        }
        .encode(),
    };
    let cancel = Tx {
        network: Network::Regtest,
        from: miner.address(),
        nonce: 1,
        max_fee: rexe_chain::fee::GasPrice::from_msat(100),
        max_tip: rexe_chain::fee::GasPrice::from_msat(100),
        gas_limit: rexe_chain::contract::intrinsic_gas(&payload),
        expiry_height: 100,
        payload,
    }
    .sign(&miner);
    let r = call(
        &n,
        "sendrawtransaction",
        json!([cancel.to_bytes().to_lower_hex_string()]),
    );
    assert_eq!(r["error"]["code"], json!(-26), "{r}");
    assert_eq!(
        r["error"]["data"],
        json!({"kind": "invalid", "reason": "unknown-order"}),
        "{r}"
    );
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("refused by the contract"),
        "{r}"
    );
    let st = call(&n, "gettransaction", json!([tx.txid().to_string()]));
    assert_eq!(st["result"]["status"], json!("mempool"), "{st}");
    // Mined: confirmed, with its place in the block.
    let t = call(&n, "getblocktemplate", json!([addr]));
    let mut block =
        Block::from_bytes(&Vec::<u8>::from_hex(t["result"]["hex"].as_str().unwrap()).unwrap())
            .unwrap();
    seal(&mut block);
    assert!(call(
        &n,
        "submitblock",
        json!([block.to_bytes().to_lower_hex_string()])
    )["result"]
        .is_null());
    let st = call(&n, "gettransaction", json!([tx.txid().to_string()]));
    assert_eq!(st["result"]["status"], json!("confirmed"), "{st}");
    assert_eq!(st["result"]["height"], json!(4));
    assert_eq!(st["result"]["confirmations"], json!(1));
    assert_eq!(st["result"]["tx"]["tx"]["nonce"], json!(0));
    // What it paid: the transfer's gas at base fee + tip, the rest of 100 msat/gas back.
    let fee = &st["result"]["fee"];
    assert_eq!(fee["gas_used"], json!(rexe_chain::tx::TRANSFER_GAS), "{st}");
    let paid = fee["burned"].as_u64().unwrap() + fee["tip"].as_u64().unwrap();
    let reserved = rexe_chain::fee::GasPrice::from_msat(100)
        .cost(rexe_chain::tx::TRANSFER_GAS)
        .unwrap()
        .to_sat();
    assert_eq!(paid + fee["refund"].as_u64().unwrap(), reserved, "{fee}");
    // Fee estimates per shard, and for the shard of an address.
    let all = call(&n, "estimatefee", json!([]));
    assert_eq!(all["result"].as_array().map(Vec::len), Some(4), "{all}");
    let one = call(&n, "estimatefee", json!([addr, 3]));
    let e = &one["result"];
    assert_eq!(
        e["forecast_msat"].as_array().map(Vec::len),
        Some(3),
        "{one}"
    );
    assert!(e["max_fee_msat"].as_u64().unwrap() >= 2 * e["base_fee_msat"].as_u64().unwrap());
    assert_eq!(
        call(&n, "estimatefee", json!([99]))["error"]["code"],
        json!(-8),
        "no such shard"
    );
    let supply = call(&n, "getsupply", json!([]));
    assert_eq!(supply["result"]["holds"], json!(true), "{supply}");
    assert!(supply["result"]["burned"].as_u64().unwrap() > 0, "{supply}");
    let st = call(&n, "gettransaction", json!(["00".repeat(32)]));
    assert_eq!(st["error"]["code"], json!(-5));
    let info = call(&n, "getchaininfo", json!([]));
    assert_eq!(info["result"]["height"], json!(4));
    assert_eq!(info["result"]["shards"], json!(4));

    // A batch of transactions (checked as one BIP340 batch before the chain is locked): each
    // entry is answered in its place, a bad signature or bad hex refusing only its own.
    let pay = |nonce: u64| pay(nonce, 1_000);
    let mut forged = pay(2).to_bytes();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let mut entries: Vec<serde_json::Value> = Vec::new();
    let mut expect = Vec::new();
    for i in 0..40u64 {
        let (hex, ok) = match i {
            7 => (forged.to_lower_hex_string(), false),
            9 => ("zz".to_string(), false),
            _ => (pay(1 + i).to_bytes().to_lower_hex_string(), true),
        };
        entries.push(
            json!({"jsonrpc": "2.0", "id": i, "method": "sendrawtransaction",
                            "params": [hex]}),
        );
        expect.push(ok);
    }
    let (status, text) = post(
        &n.rpc,
        Some(&n.cookie),
        serde_json::Value::Array(entries).to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{text}");
    let replies: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(replies.len(), 40);
    for (i, (r, ok)) in replies.iter().zip(&expect).enumerate() {
        assert_eq!(r["id"], json!(i), "{r}");
        if *ok {
            assert_eq!(
                r["result"],
                json!(pay(1 + i as u64).txid().to_string()),
                "{r}"
            );
        } else {
            assert!(r["result"].is_null(), "{r}");
        }
    }
    assert_eq!(replies[7]["error"]["code"], json!(-26), "{}", replies[7]);
    assert!(
        replies[7]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("signature"),
        "{}",
        replies[7]
    );
    assert_eq!(replies[9]["error"]["code"], json!(-22), "{}", replies[9]);

    // Each shard's row cache says how it served reads.
    let info = call(&n, "getshardinfo", json!([]));
    let caches: Vec<&serde_json::Value> = info["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["cache"])
        .collect();
    assert_eq!(caches.len(), 4);
    assert!(
        caches.iter().all(|c| c["limit"].as_u64() > Some(0)),
        "{info}"
    );
    let reads: u64 = caches
        .iter()
        .map(|c| c["account_hits"].as_u64().unwrap() + c["account_misses"].as_u64().unwrap())
        .sum();
    assert!(reads > 0, "{info}");
    assert!(
        caches.iter().all(|c| c["hit_rate"].as_f64().is_some()),
        "{info}"
    );
}

#[test]
fn metrics_are_served_in_prometheus_format() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let n = node(dir.path());
    let mut s = std::net::TcpStream::connect(&n.rpc).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    for m in [
        "rexe_tip_height 0",
        "rexe_mempool_size 0",
        "rexe_blocks_connected_total",
        "rexe_peers 0",
        "rexe_peg_btc_tip_height 0",
        "rexe_peg_open_orders 0",
        "rexe_peg_matches{state=\"open\"} 0",
        "rexe_peg_escrow_sats 0",
        "rexe_shard_cache_hits_total{kind=\"account\",shard=\"0\"}",
        "rexe_shard_cache_misses_total{kind=\"state\",shard=\"3\"}",
        "rexe_shard_cache_entries{kind=\"account\",shard=\"1\"}",
    ] {
        assert!(text.contains(m), "missing {m}: {text}");
    }
}

#[test]
fn rpc_method_list_matches_the_docs() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/rpc.md")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let n = node(dir.path());
    let help = call(&n, "help", json!([]));
    let methods: Vec<String> = help["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m.as_str()
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(methods.len() > 10);
    for m in methods
        .iter()
        .chain(std::iter::once(&"waitfornewblock".to_string()))
    {
        assert!(
            doc.contains(&format!("`{m}`")),
            "docs/rpc.md does not document {m}"
        );
    }
}

/// A pool's view: createauxblock, build an aux tree holding rexe and another chain, grind a
/// parent against `_target`, submitauxblock.
fn pool_mine(n: &Running, work: &serde_json::Value) -> String {
    use rexe_miner::auxpow::{mine_parent, AuxTree, ChainId};
    let hash: rexe_chain::BlockHash = work["hash"].as_str().unwrap().parse().unwrap();
    let le = <[u8; 32]>::from_hex(work["_target"].as_str().unwrap()).unwrap();
    assert_eq!(
        work["_target"], work["target"],
        "Dogecoin's field beside Namecoin's"
    );
    let target = bitcoin::pow::Target::from_le_bytes(le);
    let chain_id = ChainId(work["chainid"].as_u64().unwrap() as u32);
    let tree = AuxTree::build(&[
        (chain_id, hash.to_byte_array()),
        (ChainId::NAMECOIN, [5; 32]),
    ])
    .unwrap();
    let bits = bitcoin::CompactTarget::from_consensus(0x1d00_ffff);
    let aux = mine_parent(&tree, chain_id, bits, target, 1);
    let _ = n;
    aux.encode().to_lower_hex_string()
}

#[test]
fn aux_rpc_serves_pools_like_namecoin_core() {
    let dir = tempfile::tempdir().unwrap();
    let payout = Signer::from_seed(b"pool")
        .address()
        .encode(Network::Regtest);
    let n = spawn(
        &[
            "node",
            "--datadir",
            dir.path().to_str().unwrap(),
            "--rpc-bind",
            "127.0.0.1:0",
            "--mining-address",
            &payout,
        ],
        dir.path(),
    );
    let work = call(&n, "createauxblock", json!([payout]))["result"].clone();
    for f in [
        "hash",
        "chainid",
        "previousblockhash",
        "coinbasevalue",
        "bits",
        "height",
        "_target",
    ] {
        assert!(!work[f].is_null(), "missing {f}: {work}");
    }
    assert_eq!(work["chainid"], json!(0x0b42));
    assert_eq!(work["height"], json!(1));
    assert_eq!(work["bits"].as_str().unwrap().len(), 8);
    let aux = pool_mine(&n, &work);
    // A corrupted AuxPoW is refused (false), the right one accepted (true).
    let mut bad = Vec::<u8>::from_hex(&aux).unwrap();
    let last = bad.len() - 1;
    bad[last - 40] ^= 0xff;
    let r = call(
        &n,
        "submitauxblock",
        json!([work["hash"], bad.to_lower_hex_string()]),
    );
    assert_eq!(r["result"], json!(false), "{r}");
    let r = call(&n, "submitauxblock", json!([work["hash"], aux]));
    assert_eq!(r["result"], json!(true), "{r}");
    assert_eq!(call(&n, "getblockcount", json!([]))["result"], json!(1));
    // The same work again: the tip moved, the template is gone.
    let r = call(&n, "submitauxblock", json!([work["hash"], aux]));
    assert_eq!(r["error"]["code"], json!(-8), "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("unknown"));

    // getauxblock, both forms, paying the configured address.
    let work = call(&n, "getauxblock", json!([]))["result"].clone();
    let aux = pool_mine(&n, &work);
    let r = call(&n, "getauxblock", json!([work["hash"], aux]));
    assert_eq!(r["result"], json!(true), "{r}");
    let acct = call(&n, "getaccount", json!([payout]));
    assert!(acct["result"]["balance"].as_u64().unwrap() > 0, "{acct}");
    let r = call(&n, "getauxblock", json!(["00"]));
    assert_eq!(r["error"]["code"], json!(-32602));
}

/// `--cache-mib` (or `cache_mib` in the config file) sizes the shards' account caches in
/// memory: 1 MiB over 4 shards is 6,553 entries each at 40 bytes; 0 is refused.
#[test]
fn cache_memory_is_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let n = spawn(
        &[
            "node",
            "--datadir",
            d,
            "--rpc-bind",
            "127.0.0.1:0",
            "--cache-mib",
            "1",
        ],
        dir.path(),
    );
    let info = call(&n, "getshardinfo", json!([]));
    for s in info["result"].as_array().unwrap() {
        // 1 MiB over 4 shards at `ChainConfig::CACHE_BYTES_PER_ENTRY` (40) bytes each.
        assert_eq!(s["cache"]["limit"], json!(6553), "{info}");
    }
    drop(n);
    let out = std::process::Command::new(BIN)
        .args(["node", "--datadir", d, "--rpc-bind", "127.0.0.1:0"])
        .args(["--cache-mib", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cache_mib must be at least 1"), "{err}");
}

/// Mines one block through `getblocktemplate`/`submitblock`, paying `addr`.
fn mine_one(n: &Running, addr: &str) {
    let t = call(n, "getblocktemplate", json!([addr]));
    let hex = t["result"]["hex"].as_str().expect("template hex");
    let mut block = Block::from_bytes(&Vec::<u8>::from_hex(hex).unwrap()).unwrap();
    seal(&mut block);
    let r = call(
        n,
        "submitblock",
        json!([block.to_bytes().to_lower_hex_string()]),
    );
    assert_eq!(r["result"], serde_json::Value::Null, "{r}");
}

#[test]
fn relay_proofs_are_served_and_checked_over_rpc() {
    let dir = tempfile::tempdir().unwrap();
    let n = node(dir.path());
    let miner = Signer::from_seed(b"rpc-miner");
    let addr = miner.address().encode(Network::Regtest);
    for _ in 0..2 {
        mine_one(&n, &addr);
    }
    let info = call(&n, "getchaininfo", json!([]));
    let shards = info["result"]["shards"].as_u64().unwrap() as u32;
    assert!(shards > 1, "{info}");
    let order = rexe_chain::ShardOrder::new(shards.trailing_zeros() as u8).unwrap();
    let from = rexe_chain::shard_of(&miner.address(), order);
    // A payee on another shard: its deposit leaves the miner's chunk.
    let payee = (0u32..)
        .map(|i| Signer::from_seed(&i.to_le_bytes()).address())
        .find(|a| rexe_chain::shard_of(a, order) != from)
        .unwrap();
    let to = rexe_chain::shard_of(&payee, order);
    let tx = transfer_tx(&miner, payee, 4_321, 0);
    let r = call(
        &n,
        "sendrawtransaction",
        json!([tx.to_bytes().to_lower_hex_string()]),
    );
    assert!(r["error"].is_null(), "{r}");
    mine_one(&n, &addr);

    let r = call(&n, "getrelayproof", json!([3, from.0, to.0]));
    let p = &r["result"];
    assert_eq!(p["height"], json!(3), "{r}");
    let relays = p["relays"].as_array().unwrap();
    assert_eq!(relays.len(), 1, "{r}");
    assert_eq!(relays[0]["kind"]["amount"], json!(4_321), "{r}");
    let proof = p["proof"].as_str().unwrap().to_string();
    let v = call(&n, "verifyrelayproof", json!([proof]));
    assert_eq!(v["result"]["valid"], json!(true), "{v}");
    assert_eq!(v["result"]["in_active_chain"], json!(true), "{v}");
    assert_eq!(v["result"]["relays"], json!(1), "{v}");
    // The amount changed in the proof's bytes: it no longer holds, and says why.
    let mut bytes = Vec::<u8>::from_hex(&proof).unwrap();
    let pos = bytes
        .windows(8)
        .position(|w| w == 4_321u64.to_le_bytes())
        .unwrap();
    bytes[pos] ^= 1;
    let v = call(&n, "verifyrelayproof", json!([bytes.to_lower_hex_string()]));
    assert_eq!(v["result"]["valid"], json!(false), "{v}");
    assert!(
        v["result"]["error"]
            .as_str()
            .unwrap()
            .contains("outbox_root"),
        "{v}"
    );
    // Nothing went from the payee's shard to the global lane: an empty, valid answer.
    let r = call(&n, "getrelayproof", json!([3, to.0, "global"]));
    assert_eq!(r["result"]["relays"], json!([]), "{r}");
    let v = call(&n, "verifyrelayproof", json!([r["result"]["proof"]]));
    assert_eq!(v["result"]["valid"], json!(true), "{v}");
    // Bad partitions, garbage, unknown blocks.
    let r = call(&n, "getrelayproof", json!([3, shards, 0]));
    assert_eq!(r["error"]["code"], json!(-8), "{r}");
    let r = call(&n, "getrelayproof", json!([3, "moon", 0]));
    assert_eq!(r["error"]["code"], json!(-8), "{r}");
    let r = call(&n, "verifyrelayproof", json!(["zz"]));
    assert_eq!(r["error"]["code"], json!(-22), "{r}");
    let r = call(&n, "verifyrelayproof", json!(["00"]));
    assert_eq!(r["error"]["code"], json!(-22), "{r}");
    let mut unknown = Vec::<u8>::from_hex(&proof).unwrap();
    unknown[0] ^= 1;
    let r = call(
        &n,
        "verifyrelayproof",
        json!([unknown.to_lower_hex_string()]),
    );
    assert_eq!(r["error"]["code"], json!(-5), "{r}");
}
