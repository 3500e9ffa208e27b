//! ZMQ notifications as bitcoind publishes them, read by an independent ZMTP subscriber:
//! `hashblock`/`rawblock` on tip changes only (a stale block says nothing, `invalidateblock`
//! announces the new lower tip), `hashtx`/`rawtx` for mempool and block transactions, each
//! message `topic | body | 4-byte LE sequence` with a sequence per topic.

mod common;

use std::time::Duration;

use bitcoin::consensus::encode::{deserialize, serialize, serialize_hex};
use bitcoin::hashes::Hash;
use bitcoin::hex::FromHex;
use bitcoin::Block;
use common::{block_from_template, coinbase_of, free_port, key, ok, spend};
use rexe_regtest::zmq::{Topic, ZmqPub};
use rexe_regtest::{RegtestConfig, RegtestNode, Services};
use serde_json::json;
use zeromq::{Socket, SocketRecv, SubSocket};

/// One received message: topic, body, sequence.
type Msg = (String, Vec<u8>, u32);

async fn recv(sub: &mut SubSocket) -> Msg {
    let m = tokio::time::timeout(Duration::from_secs(30), sub.recv())
        .await
        .expect("a ZMQ message within 30 s")
        .unwrap();
    let frames: Vec<Vec<u8>> = m.iter().map(|f| f.to_vec()).collect();
    assert_eq!(frames.len(), 3, "topic, body, sequence");
    let seq = u32::from_le_bytes(frames[2].as_slice().try_into().unwrap());
    (
        String::from_utf8(frames[0].clone()).unwrap(),
        frames[1].clone(),
        seq,
    )
}

/// The next message on `topic`, skipping other topics.
async fn next_on(sub: &mut SubSocket, topic: &str) -> Msg {
    loop {
        let m = recv(sub).await;
        if m.0 == topic {
            return m;
        }
    }
}

/// The next message on `topic` with `body`, skipping everything before it.
async fn next_with(sub: &mut SubSocket, topic: &str, body: &[u8]) -> Msg {
    loop {
        let m = next_on(sub, topic).await;
        if m.1 == body {
            return m;
        }
    }
}

/// Hashes in RPC order, as on the wire.
fn display(mut h: [u8; 32]) -> Vec<u8> {
    h.reverse();
    h.to_vec()
}

/// Blocks on one socket, transactions on another, as `-zmqpubhashblock=A -zmqpubrawblock=A
/// -zmqpubhashtx=B -zmqpubrawtx=B`.
fn node() -> RegtestNode {
    let blocks = format!("tcp://127.0.0.1:{}", free_port());
    let txs = format!("tcp://127.0.0.1:{}", free_port());
    let zmq = [
        (Topic::HashBlock, &blocks),
        (Topic::RawBlock, &blocks),
        (Topic::HashTx, &txs),
        (Topic::RawTx, &txs),
    ]
    .into_iter()
    .map(|(topic, e)| ZmqPub {
        topic,
        endpoint: e.clone(),
    })
    .collect();
    let services = Services {
        zmq,
        ..Services::default()
    };
    RegtestNode::start_with(RegtestConfig::default(), services).unwrap()
}

fn endpoint(node: &RegtestNode, topic: Topic) -> String {
    node.zmq
        .iter()
        .find(|z| z.topic == topic)
        .unwrap()
        .endpoint
        .clone()
}

fn mine_one(node: &RegtestNode, to: &bitcoin::Address) -> Block {
    let hash = ok(node, "generatetoaddress", json!([1, to.to_string()]))[0].clone();
    let raw = ok(node, "getblock", json!([hash, 0]));
    deserialize(&Vec::<u8>::from_hex(raw.as_str().unwrap()).unwrap()).unwrap()
}

#[test]
fn block_and_transaction_notifications_with_sequences() {
    let node = node();
    let a = key(101);
    let listed = ok(&node, "getzmqnotifications", json!([]));
    let mut types: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["type"].as_str().unwrap())
        .collect();
    types.sort();
    assert_eq!(
        types,
        ["pubhashblock", "pubhashtx", "pubrawblock", "pubrawtx"]
    );
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["address"] == json!(endpoint(&node, Topic::HashBlock))));
    ok(&node, "generatetoaddress", json!([101, a.addr.to_string()]));

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut blocks = SubSocket::new();
        blocks
            .connect(&endpoint(&node, Topic::HashBlock))
            .await
            .unwrap();
        blocks.subscribe("").await.unwrap();
        let mut txs = SubSocket::new();
        txs.connect(&endpoint(&node, Topic::HashTx)).await.unwrap();
        txs.subscribe("").await.unwrap();
        // A subscription counts once the publisher has read it: mine until both sockets
        // deliver. Later checks find their messages by content, so leftovers do not matter.
        let (mut b_ok, mut t_ok) = (false, false);
        while !(b_ok && t_ok) {
            mine_one(&node, &a.addr);
            let wait = Duration::from_millis(200);
            b_ok |= tokio::time::timeout(wait, blocks.recv()).await.is_ok();
            t_ok |= tokio::time::timeout(wait, txs.recv()).await.is_ok();
        }

        // Into the mempool: hashtx (txid in RPC order) and rawtx (with witness).
        let (prev, value) = coinbase_of(&node, 1);
        let tx = spend(&a, prev, value, &key(102).addr, 1_000, false);
        ok(&node, "sendrawtransaction", json!([serialize_hex(&tx)]));
        let txid = display(tx.compute_txid().to_byte_array());
        let in_pool = next_with(&mut txs, "hashtx", &txid).await;
        assert_eq!(next_on(&mut txs, "rawtx").await.1, serialize(&tx));

        // Mined: each transaction of the block again (coinbase first), then the tip.
        let b1 = mine_one(&node, &a.addr);
        let cb = next_on(&mut txs, "hashtx").await;
        assert_eq!(cb.1, display(b1.txdata[0].compute_txid().to_byte_array()));
        assert_eq!(cb.2, in_pool.2 + 1, "one hashtx sequence for every message");
        let again = next_on(&mut txs, "hashtx").await;
        assert_eq!((again.1.clone(), again.2), (txid, in_pool.2 + 2));
        let h1 = next_with(
            &mut blocks,
            "hashblock",
            &display(b1.block_hash().to_byte_array()),
        )
        .await;
        assert_eq!(next_on(&mut blocks, "rawblock").await.1, serialize(&b1));

        // A stale block moves no tip and sends nothing: the next hashblock after it is the
        // next tip's, with the next sequence number.
        let t = ok(&node, "getblocktemplate", json!([{"rules": ["segwit"]}]));
        let b2 = mine_one(&node, &a.addr);
        let h2 = next_on(&mut blocks, "hashblock").await;
        assert_eq!(
            (h2.1.clone(), h2.2),
            (display(b2.block_hash().to_byte_array()), h1.2 + 1)
        );
        let stale = block_from_template(&t, &key(103).addr, 7, 0, 0);
        assert_eq!(
            ok(&node, "submitblock", json!([serialize_hex(&stale)])),
            json!("inconclusive")
        );
        let b3 = mine_one(&node, &a.addr);
        let h3 = next_on(&mut blocks, "hashblock").await;
        assert_eq!(
            (h3.1.clone(), h3.2),
            (display(b3.block_hash().to_byte_array()), h2.2 + 1)
        );

        // invalidateblock moves the tip back: the new, lower tip is announced.
        ok(
            &node,
            "invalidateblock",
            json!([b3.block_hash().to_string()]),
        );
        let h4 = next_on(&mut blocks, "hashblock").await;
        assert_eq!(
            (h4.1, h4.2),
            (display(b2.block_hash().to_byte_array()), h3.2 + 1)
        );
        assert_eq!(next_on(&mut blocks, "rawblock").await.1, serialize(&b2));
    });
}

#[test]
fn a_bad_zmq_address_fails_the_start() {
    let services = Services {
        zmq: vec![ZmqPub {
            topic: Topic::HashBlock,
            endpoint: "nonsense".into(),
        }],
        ..Services::default()
    };
    assert!(RegtestNode::start_with(RegtestConfig::default(), services).is_err());
}
