//! bitcoind's REST interface (`-rest`) as Core 31 answers it: the endpoints electrs ≥ 0.11
//! reads blocks through (`blockhashbyheight`, `headers`, `block`, `spenttxouts`,
//! `blockpart`) and the others served, their formats, errors and the switch that turns it on.

use std::io::{Read, Write};
use std::net::TcpStream;

use bitcoin::consensus::encode::{deserialize, serialize, serialize_hex};
use bitcoin::hex::{DisplayHex, FromHex};
use bitcoin::{Block, BlockHash};
use rexe_regtest::{RegtestConfig, RegtestNode};
use serde_json::{json, Value};

mod common;
use common::*;

/// `GET path` without credentials: status, content type, body.
fn get(node: &RegtestNode, path: &str) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(node.rpc_addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut body = raw[split + 4..].to_vec();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let ctype = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, ctype, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 2 + n + 2..];
    }
}

fn text(node: &RegtestNode, path: &str) -> (u16, String) {
    let (s, _, b) = get(node, path);
    (s, String::from_utf8(b).unwrap())
}

fn json_of(node: &RegtestNode, path: &str) -> Value {
    let (s, ctype, b) = get(node, path);
    assert_eq!((s, ctype.as_str()), (200, "application/json"), "{path}");
    serde_json::from_slice(&b).unwrap()
}

#[test]
fn rest_serves_what_electrs_reads_in_cores_formats() {
    let node = RegtestNode::start(RegtestConfig {
        rest: true,
        ..RegtestConfig::default()
    })
    .unwrap();
    let k = key(3);
    ok(&node, "generatetoaddress", json!([101, k.addr.to_string()]));
    let (prev, value) = coinbase_of(&node, 1);
    let tx = spend(&k, prev, value, &k.addr, 1_000, false);
    ok(&node, "sendrawtransaction", json!([serialize_hex(&tx)]));
    let tip: BlockHash = ok(&node, "generatetoaddress", json!([1, k.addr.to_string()]))[0]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let h = |n: u64| -> BlockHash {
        ok(&node, "getblockhash", json!([n]))
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };

    // blockhashbyheight: the hash's serialization (binary, hex), or its display form (JSON).
    let (s, ctype, b) = get(&node, "/rest/blockhashbyheight/0.bin");
    assert_eq!((s, ctype.as_str()), (200, "application/octet-stream"));
    assert_eq!(deserialize::<BlockHash>(&b).unwrap(), h(0));
    // Hex is the display form here (Core's `GetHex()`), not the serialization.
    let (s, hex) = text(&node, "/rest/blockhashbyheight/1.hex");
    assert_eq!((s, hex), (200, format!("{}\n", h(1))));
    assert_eq!(
        json_of(&node, "/rest/blockhashbyheight/102.json"),
        json!({"blockhash": tip.to_string()})
    );
    assert_eq!(
        text(&node, "/rest/blockhashbyheight/103.bin"),
        (404, "Block height out of range\r\n".into())
    );
    assert_eq!(
        text(&node, "/rest/blockhashbyheight/-1.bin"),
        (400, "Invalid height: -1\r\n".into())
    );

    // block: the serialized block, as getblock verbosity 0 gives it.
    let (s, _, b) = get(&node, &format!("/rest/block/{tip}.bin"));
    assert_eq!(s, 200);
    let block: Block = deserialize(&b).unwrap();
    assert_eq!(block.block_hash(), tip);
    assert_eq!(block.txdata[1], tx);
    let raw = ok(&node, "getblock", json!([tip.to_string(), 0]));
    assert_eq!(b.to_lower_hex_string(), raw.as_str().unwrap());
    let j = json_of(&node, &format!("/rest/block/{tip}.json"));
    assert_eq!(j["hash"], tip.to_string());
    assert_eq!(j["tx"][1]["txid"], tx.compute_txid().to_string());
    let j = json_of(&node, &format!("/rest/block/notxdetails/{tip}.json"));
    assert_eq!(j["tx"][1], tx.compute_txid().to_string());
    assert_eq!(
        text(&node, "/rest/block/zz.bin"),
        (400, "Invalid hash: zz\r\n".into())
    );
    let unknown = "11".repeat(32);
    assert_eq!(
        text(&node, &format!("/rest/block/{unknown}.bin")),
        (404, format!("{unknown} not found\r\n"))
    );
    // An unknown suffix stays part of the hash (Core's ParseDataFormat); none at all is an
    // unknown format.
    assert_eq!(
        text(&node, &format!("/rest/block/{tip}.xml")),
        (400, format!("Invalid hash: {tip}.xml\r\n"))
    );
    assert_eq!(
        text(&node, &format!("/rest/block/{tip}")),
        (
            404,
            "output format not found (available: .bin, .hex, .json)\r\n".into()
        )
    );

    // blockpart: a byte range of the block.
    let (s, _, part) = get(
        &node,
        &format!("/rest/blockpart/{tip}.bin?offset=80&size=1"),
    );
    assert_eq!(
        (s, part),
        (200, vec![2u8]),
        "the transaction count after the header"
    );
    let n = b.len();
    let (s, _, all) = get(
        &node,
        &format!("/rest/blockpart/{tip}.hex?offset=0&size={n}"),
    );
    assert_eq!(
        (s, all),
        (200, format!("{}\n", b.to_lower_hex_string()).into_bytes())
    );
    assert_eq!(
        get(
            &node,
            &format!("/rest/blockpart/{tip}.bin?offset={n}&size=1")
        )
        .0,
        404
    );
    assert_eq!(
        get(&node, &format!("/rest/blockpart/{tip}.bin?size=1")).0,
        400
    );
    assert_eq!(
        get(
            &node,
            &format!("/rest/blockpart/{tip}.json?offset=0&size=1")
        )
        .0,
        404
    );

    // headers: consecutive headers along the active chain, both path forms.
    let (s, _, b) = get(&node, &format!("/rest/headers/3/{}.bin", h(100)));
    assert_eq!(s, 200);
    assert_eq!(b.len(), 3 * 80);
    let hs: Vec<bitcoin::block::Header> = b.chunks(80).map(|c| deserialize(c).unwrap()).collect();
    assert_eq!(
        hs.iter().map(|x| x.block_hash()).collect::<Vec<_>>(),
        [h(100), h(101), h(102)]
    );
    let (_, _, b2) = get(&node, &format!("/rest/headers/{}.bin?count=2", h(100)));
    assert_eq!(b2, b[..160]);
    let j = json_of(&node, &format!("/rest/headers/1/{tip}.json"));
    assert_eq!(j[0]["hash"], tip.to_string());
    assert_eq!(j.as_array().unwrap().len(), 1);
    let (s, _, b) = get(&node, &format!("/rest/headers/5/{unknown}.bin"));
    assert_eq!(
        (s, b.len()),
        (200, 0),
        "a hash not on the active chain: no header"
    );
    assert_eq!(
        text(&node, &format!("/rest/headers/0/{tip}.bin")),
        (
            400,
            "Header count is invalid or out of acceptable range (1-2000): 0\r\n".into()
        )
    );
    assert_eq!(get(&node, &format!("/rest/headers/2001/{tip}.bin")).0, 400);

    // spenttxouts: per transaction, the outputs its inputs spent; the coinbase's list empty.
    let (s, _, b) = get(&node, &format!("/rest/spenttxouts/{tip}.bin"));
    assert_eq!(s, 200);
    let coinbase_out = bitcoin::TxOut {
        value,
        script_pubkey: k.addr.script_pubkey(),
    };
    let mut want = vec![2u8, 0, 1];
    want.extend(serialize(&coinbase_out));
    assert_eq!(b, want);
    let j = json_of(&node, &format!("/rest/spenttxouts/{tip}.json"));
    assert_eq!(j[0], json!([]));
    assert_eq!(j[1][0]["value"], json!(value.to_btc()));
    assert_eq!(j[1][0]["scriptPubKey"]["address"], k.addr.to_string());
    let (_, _, b) = get(&node, &format!("/rest/spenttxouts/{}.bin", h(0)));
    assert_eq!(b, [1, 0], "genesis: the coinbase's empty list only");
    let (_, _, b) = get(&node, &format!("/rest/spenttxouts/{}.hex", h(5)));
    assert_eq!(b, b"0100\n");

    // tx, chaininfo, mempool.
    let (s, hex) = text(&node, &format!("/rest/tx/{}.hex", tx.compute_txid()));
    assert_eq!((s, hex), (200, format!("{}\n", serialize_hex(&tx))));
    let (_, _, b) = get(&node, &format!("/rest/tx/{}.bin", tx.compute_txid()));
    assert_eq!(Vec::<u8>::from_hex(&serialize_hex(&tx)).unwrap(), b);
    assert_eq!(json_of(&node, "/rest/chaininfo.json")["blocks"], 102);
    assert_eq!(text(&node, "/rest/chaininfo.bin").0, 404);
    assert_eq!(json_of(&node, "/rest/mempool/info.json")["size"], 0);
    assert_eq!(json_of(&node, "/rest/mempool/contents.json"), json!({}));
    assert_eq!(
        json_of(
            &node,
            "/rest/mempool/contents.json?verbose=false&mempool_sequence=true"
        )["txids"],
        json!([])
    );
    assert_eq!(
        text(&node, "/rest/mempool/contents.json?verbose=maybe"),
        (
            400,
            "The \"verbose\" query parameter must be either \"true\" or \"false\".\r\n".into()
        )
    );
    assert_eq!(
        text(&node, "/rest/mempool/contents.json?mempool_sequence=true").0,
        400,
        "verbose with sequence"
    );
    assert_eq!(text(&node, "/rest/mempool/other.json").0, 400);
    assert_eq!(text(&node, "/rest/nothing/here.json").0, 404);

    // A block taken off the active chain: no longer in `headers`, but its body and what it
    // spent are still served (an indexer reads them to forget the block, as electrs does).
    let (_, _, spent_before) = get(&node, &format!("/rest/spenttxouts/{tip}.bin"));
    ok(&node, "invalidateblock", json!([tip.to_string()]));
    let (s, _, b) = get(&node, &format!("/rest/headers/1/{tip}.bin"));
    assert_eq!((s, b.len()), (200, 0));
    assert_eq!(get(&node, &format!("/rest/block/{tip}.bin")).0, 200);
    let (s, _, spent_after) = get(&node, &format!("/rest/spenttxouts/{tip}.bin"));
    assert_eq!((s, spent_after), (200, spent_before));
}

#[test]
fn rest_is_off_unless_asked_for() {
    let node = RegtestNode::start(RegtestConfig::default()).unwrap();
    let (s, _, _) = get(&node, "/rest/chaininfo.json");
    assert!(s == 404 || s == 405, "{s}");
}

/// Garbage paths and queries get Core's 400/404 (or an answer), never a 500 or a dead
/// server.
#[test]
fn rest_survives_garbage_paths() {
    let node = RegtestNode::start(RegtestConfig {
        rest: true,
        ..RegtestConfig::default()
    })
    .unwrap();
    let tip = ok(&node, "getbestblockhash", json!([]));
    let tip = tip.as_str().unwrap();
    let pieces = [
        "block/",
        "blockpart/",
        "headers/",
        "blockhashbyheight/",
        "spenttxouts/",
        "tx/",
        "mempool/",
        "block/notxdetails/",
        tip,
        "0",
        "-5",
        "99999999999999999999",
        "2001",
        ".",
        ".bin",
        ".hex",
        ".json",
        "/",
        "?",
        "offset=",
        "size=18446744073709551615",
        "&",
        "count=",
        "%00",
        "é",
        "..",
        "ffff",
    ];
    // A fixed pseudo-random walk over the pieces (xorshift), reproducible.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..400 {
        let mut path = String::from("/rest/");
        for _ in 0..(x % 6 + 1) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            path.push_str(pieces[(x % pieces.len() as u64) as usize]);
        }
        let path: String = path
            .chars()
            .map(|c| {
                if c.is_ascii() {
                    c.to_string()
                } else {
                    "%C3%A9".into()
                }
            })
            .collect();
        let (s, _, _) = get(&node, &path);
        assert!(matches!(s, 200 | 400 | 404), "{path}: {s}");
    }
    assert_eq!(json_of(&node, "/rest/chaininfo.json")["blocks"], 0);
}

/// `POST path` with `body`, without credentials: status and body.
fn post_raw(node: &RegtestNode, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(node.rpc_addr).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, body)
}

#[test]
fn rest_getutxos_answers_as_bip64_and_core() {
    let node = RegtestNode::start(RegtestConfig {
        rest: true,
        ..RegtestConfig::default()
    })
    .unwrap();
    let k = key(4);
    ok(&node, "generatetoaddress", json!([101, k.addr.to_string()]));
    let (cb1, v1) = coinbase_of(&node, 1);
    let (cb2, v2) = coinbase_of(&node, 2);
    // cb1 is spent in a block; cb2 by a transaction still in the mempool.
    let t1 = spend(&k, cb1, v1, &k.addr, 1_000, false);
    ok(&node, "sendrawtransaction", json!([serialize_hex(&t1)]));
    ok(&node, "generatetoaddress", json!([1, k.addr.to_string()]));
    let t2 = spend(&k, cb2, v2, &k.addr, 1_000, false);
    ok(&node, "sendrawtransaction", json!([serialize_hex(&t2)]));
    let op = |o: bitcoin::OutPoint| format!("{}-{}", o.txid, o.vout);
    let out1 = bitcoin::OutPoint::new(t1.compute_txid(), 0);
    let out2 = bitcoin::OutPoint::new(t2.compute_txid(), 0);

    let j = json_of(
        &node,
        &format!("/rest/getutxos/{}/{}/{}.json", op(cb1), op(cb2), op(out1)),
    );
    assert_eq!(j["chainHeight"], 102);
    assert_eq!(j["bitmap"], "011");
    assert_eq!(j["utxos"][0]["height"], 2);
    assert_eq!(j["utxos"][0]["value"], json!(v2.to_btc()));
    assert_eq!(j["utxos"][1]["height"], 102);
    // With the mempool: cb2 is spent, and t2's output exists at Core's MEMPOOL_HEIGHT.
    let j = json_of(
        &node,
        &format!("/rest/getutxos/checkmempool/{}/{}.json", op(cb2), op(out2)),
    );
    assert_eq!(j["bitmap"], "01");
    assert_eq!(j["utxos"][0]["height"], 2147483647);

    // Binary, the request in the body: checkmempool, then the outpoints.
    let mut body = vec![0u8, 3];
    for o in [cb2, out1, cb1] {
        body.extend(serialize(&o));
    }
    let (s, b) = post_raw(&node, "/rest/getutxos.bin", &body);
    assert_eq!(s, 200);
    let mut want = 102i32.to_le_bytes().to_vec();
    let tip: BlockHash = ok(&node, "getbestblockhash", json!([]))
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    want.extend(serialize(&tip));
    want.extend(serialize(&vec![0b011u8]));
    want.push(2);
    for (height, value, script) in [
        (2u32, v2, k.addr.script_pubkey()),
        (102, t1.output[0].value, t1.output[0].script_pubkey.clone()),
    ] {
        want.extend(0u32.to_le_bytes());
        want.extend(height.to_le_bytes());
        want.extend(serialize(&bitcoin::TxOut {
            value,
            script_pubkey: script,
        }));
    }
    assert_eq!(b, want);
    let (s, b) = post_raw(
        &node,
        "/rest/getutxos.hex",
        body.to_lower_hex_string().as_bytes(),
    );
    assert_eq!(
        (s, b),
        (
            200,
            format!("{}\n", want.to_lower_hex_string()).into_bytes()
        )
    );

    // Core's refusals.
    let many: Vec<String> = (0..16).map(|i| format!("{}-{i}", cb1.txid)).collect();
    assert_eq!(
        text(&node, &format!("/rest/getutxos/{}.json", many.join("/"))),
        (
            400,
            "Error: max outpoints exceeded (max: 15, tried: 16)\r\n".into()
        )
    );
    assert_eq!(
        text(&node, "/rest/getutxos.json"),
        (400, "Error: empty request\r\n".into())
    );
    assert_eq!(
        text(&node, "/rest/getutxos/checkmempool/zz-0.json"),
        (400, "Parse error\r\n".into())
    );
    let (s, b) = post_raw(&node, &format!("/rest/getutxos/{}.bin", op(cb1)), &body);
    assert_eq!(
        (s, String::from_utf8(b).unwrap()),
        (
            400,
            "Combination of URI scheme inputs and raw post data is not allowed\r\n".into()
        )
    );
    // A body claiming more outpoints than it holds, or with bytes left over.
    let (s, _) = post_raw(&node, "/rest/getutxos.bin", &[0, 0xfd, 0xff, 0xff]);
    assert_eq!(s, 400);
    let mut extra = body.clone();
    extra.push(0);
    assert_eq!(post_raw(&node, "/rest/getutxos.bin", &extra).0, 400);
    assert_eq!(
        post_raw(&node, "/rest/getutxos.bin", &vec![0u8; 70_000]).0,
        413,
        "a body over the limit"
    );
}

/// A block holding a transaction and its child: `spenttxouts` lists the output the child
/// spent from its parent in the same block (no undo record holds it), as electrs needs to
/// index such a block; the same after the block is disconnected.
#[test]
fn spenttxouts_covers_outputs_spent_in_the_same_block() {
    let node = RegtestNode::start(RegtestConfig {
        rest: true,
        ..RegtestConfig::default()
    })
    .unwrap();
    let (a, b, c) = (key(1), key(2), key(3));
    ok(&node, "generatetoaddress", json!([101, a.addr.to_string()]));
    let (prev, value) = coinbase_of(&node, 1);
    let parent = spend(&a, prev, value, &b.addr, 1_000, false);
    let parent_out = parent.output[0].clone();
    let child = spend(
        &b,
        bitcoin::OutPoint::new(parent.compute_txid(), 0),
        parent_out.value,
        &c.addr,
        1_000,
        false,
    );
    for t in [&parent, &child] {
        ok(&node, "sendrawtransaction", json!([serialize_hex(t)]));
    }
    let tip = ok(&node, "generatetoaddress", json!([1, a.addr.to_string()]))[0]
        .as_str()
        .unwrap()
        .to_string();
    let j = json_of(&node, &format!("/rest/spenttxouts/{tip}.json"));
    assert_eq!(j.as_array().unwrap().len(), 3, "{j}");
    assert_eq!(j[1][0]["value"], json!(value.to_btc()), "{j}");
    assert_eq!(j[2][0]["value"], json!(parent_out.value.to_btc()), "{j}");
    assert_eq!(j[2][0]["scriptPubKey"]["address"], b.addr.to_string());
    let (s, _, bin) = get(&node, &format!("/rest/spenttxouts/{tip}.bin"));
    assert_eq!(s, 200);
    let stats = ok(&node, "getblockstats", json!([tip]));
    assert_eq!(stats["totalfee"], 2_000, "{stats}");
    // Disconnected, the block's spent outputs are kept as Core keeps its undo data.
    ok(&node, "invalidateblock", json!([tip]));
    let (s, _, again) = get(&node, &format!("/rest/spenttxouts/{tip}.bin"));
    assert_eq!((s, again), (200, bin));
}
