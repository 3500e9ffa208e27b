//! The tap between a scripted miner and a scripted pool (in-memory TCP on loopback), with a
//! fake L2 node answering `createauxblock` and recording `submitauxblock`.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bitcoin::hashes::{sha256d, Hash};
use bitcoin::hex::DisplayHex;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::auxpow::{decode_hex, single_commitment, ChainId};
use rexe_rpc::client::RpcClient;

/// A fake L2 node: `createauxblock` gives the easiest target, `submitauxblock` is recorded
/// and answered `true`. Returns its address and the submissions.
fn fake_l2() -> (String, Arc<Mutex<Vec<Value>>>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let body = loop {
                let n = c.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length").then_some(v)
                        })
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if body.len() >= len {
                        break Some(body[..len].to_string());
                    }
                }
            };
            let Some(body) = body else { continue };
            let req: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            let result = match req["method"].as_str() {
                Some("createauxblock") => json!({
                    "hash": "22".repeat(32), "chainid": ChainId::REXE.0,
                    "_target": "ff".repeat(32), "height": 1,
                }),
                Some("submitauxblock") => {
                    s.lock().unwrap().push(req["params"].clone());
                    json!(true)
                }
                // As the aux proxy (`rexe miner run`) answers a share for its tree.
                Some("submitauxshare") => {
                    s.lock().unwrap().push(req["params"].clone());
                    json!({"sealed": true})
                }
                _ => Value::Null,
            };
            let out = json!({"result": result, "error": null, "id": req["id"]}).to_string();
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{out}",
                out.len()
            );
        }
    });
    (addr, seen)
}

const EN1: [u8; 4] = [0xaa, 0xbb, 0xcc, 0xdd];
const EN1_NEW: [u8; 4] = [0x01, 0x02, 0x03, 0x04];
const VERSION: u32 = 0x2000_0000;
const MASK: u32 = 0x1fff_e000;
const NTIME: u32 = 0x6500_0000;
const NBITS: u32 = 0x207f_ffff;

fn prev() -> [u8; 32] {
    std::array::from_fn(|i| i as u8)
}

fn leaf(job: &str) -> [u8; 32] {
    if job == "j1" {
        [0x11; 32]
    } else {
        [0x33; 32]
    }
}

/// The merged-mining tag of a job: rexe's leaf alone, or for jobs named `t…` a tree of 4
/// chains (a pool merge-mining several chains through the proxy).
fn tag(job: &str) -> [u8; 44] {
    let mut t = single_commitment(leaf(job));
    if job.starts_with('t') {
        t[36..40].copy_from_slice(&4u32.to_le_bytes());
    }
    t
}

/// coinb1 and coinb2 of a job whose scriptSig is `03 010203 ‖ en1 ‖ en2 ‖ tag`.
fn coinbase_parts(job: &str, en2_size: usize) -> (Vec<u8>, Vec<u8>) {
    let tag = tag(job);
    let mut c1 = Vec::new();
    c1.extend_from_slice(&2i32.to_le_bytes());
    c1.push(1);
    c1.extend_from_slice(&[0u8; 32]);
    c1.extend_from_slice(&u32::MAX.to_le_bytes());
    c1.push((4 + 4 + en2_size + tag.len()) as u8);
    c1.extend_from_slice(&[3, 1, 2, 3]);
    let mut c2 = tag.to_vec();
    c2.extend_from_slice(&u32::MAX.to_le_bytes());
    c2.push(1);
    c2.extend_from_slice(&50u64.to_le_bytes());
    c2.extend_from_slice(&[1, 0x51]);
    c2.extend_from_slice(&0u32.to_le_bytes());
    (c1, c2)
}

const BRANCH: [u8; 32] = [0x44; 32];

fn notify(job: &str, en2_size: usize) -> String {
    let (c1, c2) = coinbase_parts(job, en2_size);
    // Stratum's prevhash: each 4-byte word of the internal order byte-swapped.
    let mut sw = [0u8; 32];
    for (o, i) in sw.chunks_exact_mut(4).zip(prev().chunks_exact(4)) {
        o.copy_from_slice(&[i[3], i[2], i[1], i[0]]);
    }
    // Spacing no re-encoder would keep: the miner must get these bytes as they are.
    format!(
        "{{\"params\": [\"{job}\", \"{}\", \"{}\", \"{}\", [\"{}\"], \"{VERSION:08x}\", \"{NBITS:08x}\", \"{NTIME:08x}\", false], \"id\": null, \"method\": \"mining.notify\"}}\n",
        sw.to_lower_hex_string(),
        c1.to_lower_hex_string(),
        c2.to_lower_hex_string(),
        BRANCH.to_lower_hex_string()
    )
}

/// The header of a share, computed from the spec (not with the tap's code).
fn expected_header(job: &str, en1: &[u8], en2: &[u8], nonce: u32, version: u32) -> Vec<u8> {
    let (c1, c2) = coinbase_parts(job, en2.len());
    let cb = [c1, en1.to_vec(), en2.to_vec(), c2].concat();
    let mut root = sha256d::Hash::hash(&cb).to_byte_array();
    root = sha256d::Hash::hash(&[root, BRANCH].concat()).to_byte_array();
    let mut h = Vec::new();
    h.extend_from_slice(&version.to_le_bytes());
    h.extend_from_slice(&prev());
    h.extend_from_slice(&root);
    h.extend_from_slice(&NTIME.to_le_bytes());
    h.extend_from_slice(&NBITS.to_le_bytes());
    h.extend_from_slice(&nonce.to_le_bytes());
    h
}

/// A scripted pool for one connection: answers subscribe (extranonce1 `aabbccdd`, size 4),
/// configure (mask `1fffe000`), authorize (then a difficulty and job `j1`), submits
/// (`true`; after the first, `mining.set_extranonce` to `01020304`/8 and job `j2`), and a
/// garbage line with a garbage line. Returns every byte it received and sent.
async fn scripted_pool(l: TcpListener) -> (Vec<u8>, Vec<u8>) {
    let (s, _) = l.accept().await.unwrap();
    let (r, mut w) = s.into_split();
    let mut r = BufReader::new(r);
    let (mut got, mut sent) = (Vec::new(), Vec::new());
    let mut submits = 0;
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line).await.unwrap_or(0) == 0 {
            break;
        }
        got.extend_from_slice(&line);
        let v: Value = serde_json::from_slice(&line).unwrap_or(Value::Null);
        let id = v["id"].to_string();
        let out = match v["method"].as_str() {
            Some("mining.subscribe") => format!("{{\"id\":{id},\"result\":[[[\"mining.set_difficulty\",\"1\"],[\"mining.notify\",\"1\"]],\"aabbccdd\",4],\"error\":null}}\n"),
            Some("mining.configure") => format!("{{\"id\":{id},\"result\":{{\"version-rolling\":true,\"version-rolling.mask\":\"1fffe000\"}},\"error\":null}}\n"),
            Some("mining.authorize") => format!(
                "{{\"id\":{id},\"result\":true,\"error\":null}}\n{{\"id\":null,\"method\":\"mining.set_difficulty\",\"params\":[0.5]}}\n{}",
                notify("j1", 4)
            ),
            Some("mining.submit") => {
                submits += 1;
                let mut o = format!("{{\"id\":{id},\"result\":true,\"error\":null}}\n");
                if submits == 1 {
                    o += "{\"id\":null,\"method\":\"mining.set_extranonce\",\"params\":[\"01020304\",8]}\n";
                    o += &notify("j2", 8);
                }
                o
            }
            _ => "%%% pool garbage \u{1}\n".to_string(),
        };
        w.write_all(out.as_bytes()).await.unwrap();
        sent.extend_from_slice(out.as_bytes());
    }
    (got, sent)
}

async fn read_until_contains(
    r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    got: &mut Vec<u8>,
    what: &str,
) {
    while !String::from_utf8_lossy(got).contains(what) {
        let mut line = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(10), r.read_until(b'\n', &mut line))
            .await
            .expect("line in time")
            .unwrap();
        assert!(n > 0, "closed before {what:?}");
        got.extend_from_slice(&line);
    }
}

/// The scripted miner: subscribe, configure, authorize; share A on `j1` with version bits;
/// after the new extranonce, share B on `j2` (8-byte extranonce2, version bits) and share
/// C on `j1` (old extranonce, no version bits); a garbage line. Returns (sent, received).
async fn scripted_miner(tap: SocketAddr) -> (Vec<u8>, Vec<u8>) {
    let s = TcpStream::connect(tap).await.unwrap();
    let (r, mut w) = s.into_split();
    let mut r = BufReader::new(r);
    let (mut sent, mut got) = (Vec::new(), Vec::new());
    let hello = "{\"id\": 1, \"method\": \"mining.subscribe\", \"params\": [\"test/1.0\"]}\n{\"id\":\"c\",\"method\":\"mining.configure\",\"params\":[[\"version-rolling\"],{\"version-rolling.mask\":\"ffffffff\"}]}\n{\"id\":3,\"method\":\"mining.authorize\",\"params\":[\"w\",\"x\"]}\n";
    w.write_all(hello.as_bytes()).await.unwrap();
    sent.extend_from_slice(hello.as_bytes());
    read_until_contains(&mut r, &mut got, "\"j1\"").await;
    let a = format!("{{\"id\":4,\"method\":\"mining.submit\",\"params\":[\"w\",\"j1\",\"00000001\",\"{NTIME:08x}\",\"00000007\",\"00002000\"]}}\n");
    w.write_all(a.as_bytes()).await.unwrap();
    sent.extend_from_slice(a.as_bytes());
    read_until_contains(&mut r, &mut got, "\"j2\"").await;
    let bc = format!(
        "{{\"id\":5,\"method\":\"mining.submit\",\"params\":[\"w\",\"j2\",\"0000000000000002\",\"{NTIME:08x}\",\"00000009\",\"0000e000\"]}}\n{{\"id\":6,\"method\":\"mining.submit\",\"params\":[\"w\",\"j1\",\"00000003\",\"{NTIME:08x}\",\"0000000b\"]}}\nhello garbage\n"
    );
    w.write_all(bc.as_bytes()).await.unwrap();
    sent.extend_from_slice(bc.as_bytes());
    read_until_contains(&mut r, &mut got, "%%% pool garbage").await;
    w.shutdown().await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), r.read_to_end(&mut rest))
        .await
        .expect("closed in time")
        .unwrap();
    got.extend_from_slice(&rest);
    (sent, got)
}

async fn start_tap(pool: String, l2: Option<&str>) -> (Arc<Tap>, SocketAddr) {
    start_tap_with(pool, l2, None, rexe_rpc::Priority::Normal).await
}

async fn start_tap_with(
    pool: String,
    l2: Option<&str>,
    aux_proxy: Option<&str>,
    follow: rexe_rpc::Priority,
) -> (Arc<Tap>, SocketAddr) {
    let harvester = l2.map(|addr| {
        Arc::new(Harvester::new(
            RpcClient::new(addr, "u:p").with_timeout(Duration::from_millis(500)),
            "payout",
            ChainId::REXE,
        ))
    });
    let mut cfg = TapConfig::new(pool);
    cfg.aux_proxy = aux_proxy.map(|a| RpcClient::new(a, "u:p"));
    cfg.l2_poll = Duration::from_millis(50);
    cfg.limits.max_request = 1024;
    cfg.follow_priority = follow;
    let tap = Tap::new(cfg, harvester);
    let t = tap.clone();
    tokio::task::spawn_blocking(move || t.poll_l2())
        .await
        .unwrap();
    let (addr, _) = serve(tap.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    (tap, addr)
}

async fn wait_stats(tap: &Tap, what: &str, f: impl Fn(&TapStats) -> bool) -> TapStats {
    for _ in 0..200 {
        let s = tap.stats();
        if f(&s) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: {:?}", tap.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_pass_unchanged_and_shares_are_harvested() {
    pass_and_harvest(rexe_rpc::Priority::Background).await;
}

/// The same with the default: followers on a thread of their own at nice +10.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_pass_unchanged_and_shares_are_harvested_when_followed_at_low_priority() {
    pass_and_harvest(rexe_rpc::Priority::Low).await;
}

/// The same with the followers on the forwarding threads (`--follow-priority normal`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_pass_unchanged_and_shares_are_harvested_when_followed_on_the_forwarding_threads() {
    pass_and_harvest(rexe_rpc::Priority::Normal).await;
}

async fn pass_and_harvest(follow: rexe_rpc::Priority) {
    let (l2, submitted) = fake_l2();
    let pool = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let pool_addr = pool.local_addr().unwrap().to_string();
    let pool_task = tokio::spawn(scripted_pool(pool));
    let (tap, addr) = start_tap_with(pool_addr, Some(&l2), None, follow).await;
    assert!(tap.stats().l2_work);
    let (miner_sent, miner_got) = scripted_miner(addr).await;
    let (pool_got, pool_sent) = pool_task.await.unwrap();
    // Byte for byte, both ways.
    assert_eq!(
        String::from_utf8_lossy(&pool_got),
        String::from_utf8_lossy(&miner_sent)
    );
    assert_eq!(pool_got, miner_sent);
    assert_eq!(miner_got, pool_sent);

    // A sealed j1's work, B j2's; C (j1 again, already sealed by A) is stale L2 work.
    // The follower counts after the lines went through: wait for all of them.
    let s = wait_stats(&tap, "harvest", |s| {
        s.sealed == 2 && s.stale_l2 == 1 && s.pool_accepted == 3 && s.unparsed == 2
    })
    .await;
    assert_eq!((s.shares, s.shares_l2, s.pool_accepted), (3, 3, 3), "{s:?}");
    assert_eq!(s.unparsed, 2, "one garbage line each way: {s:?}");
    assert_eq!(s.coinbase_too_long, 0);
    let subs = submitted.lock().unwrap().clone();
    assert_eq!(subs.len(), 2, "{subs:?}");
    let cases = [
        (
            "j1",
            &EN1[..],
            vec![0, 0, 0, 1],
            7,
            (VERSION & !MASK) | 0x2000,
        ),
        (
            "j2",
            &EN1_NEW[..],
            vec![0, 0, 0, 0, 0, 0, 0, 2],
            9,
            (VERSION & !MASK) | 0xe000,
        ),
    ];
    for (sub, (job, en1, en2, nonce, version)) in subs.iter().zip(cases) {
        let mut printed = leaf(job);
        printed.reverse();
        assert_eq!(sub[0], json!(printed.to_lower_hex_string()));
        let aux = decode_hex(sub[1].as_str().unwrap()).unwrap();
        aux.check(leaf(job), ChainId::REXE).unwrap();
        let want = expected_header(job, en1, &en2, nonce, version);
        assert_eq!(bitcoin::consensus::serialize(&aux.parent), want, "{job}");
        assert_eq!(aux.coinbase_branch, vec![BRANCH]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l2_down_traffic_still_flows() {
    // Nothing listens on the L2 address.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let l2 = dead.local_addr().unwrap().to_string();
    drop(dead);
    let pool = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let pool_addr = pool.local_addr().unwrap().to_string();
    let pool_task = tokio::spawn(scripted_pool(pool));
    let (tap, addr) = start_tap(pool_addr, Some(&l2)).await;
    assert!(!tap.stats().l2_work);
    let (miner_sent, miner_got) = scripted_miner(addr).await;
    let (pool_got, pool_sent) = pool_task.await.unwrap();
    assert_eq!(pool_got, miner_sent);
    assert_eq!(miner_got, pool_sent);
    let s = wait_stats(&tap, "shares counted", |s| {
        s.shares == 3 && s.pool_accepted == 3
    })
    .await;
    assert_eq!(s.skipped["no_l2_work"], 3, "{s:?}");
    assert_eq!((s.sealed, s.shares_l2, s.pool_accepted), (0, 0, 3));
}

/// A pool echoing every line; `close` closes the connection, `long` answers a line over
/// the tap's limit.
async fn echo_pool(l: TcpListener) {
    loop {
        let Ok((s, _)) = l.accept().await else { return };
        tokio::spawn(async move {
            let (r, mut w) = s.into_split();
            let mut r = BufReader::new(r);
            loop {
                let mut line = Vec::new();
                if r.read_until(b'\n', &mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                match &line[..] {
                    b"close\n" => return,
                    b"long\n" => {
                        let mut l = vec![b'x'; 4000];
                        l.push(b'\n');
                        let _ = w.write_all(&l).await;
                    }
                    _ => {
                        let _ = w.write_all(&line).await;
                    }
                }
            }
        });
    }
}

async fn roundtrip(s: &mut BufReader<TcpStream>, line: &[u8]) -> Vec<u8> {
    s.get_mut().write_all(line).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_until(b'\n', &mut got))
        .await
        .expect("echo in time")
        .unwrap();
    got
}

async fn closed(s: &mut BufReader<TcpStream>) -> bool {
    let mut rest = Vec::new();
    matches!(
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest)).await,
        Ok(Ok(_)) | Ok(Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_long_lines_and_closing_pools_end_only_their_connection() {
    let pool = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let pool_addr = pool.local_addr().unwrap().to_string();
    tokio::spawn(echo_pool(pool));
    let (tap, addr) = start_tap(pool_addr, None).await;
    let conn = || async { BufReader::new(TcpStream::connect(addr).await.unwrap()) };
    let mut b = conn().await;
    assert_eq!(roundtrip(&mut b, b"{\"id\":1}\n").await, b"{\"id\":1}\n");

    // Garbage both ways (the pool echoes it) passes through untouched.
    let mut a = conn().await;
    let garbage = b"\x00\xff{not json]] \xc3\x28\n";
    assert_eq!(roundtrip(&mut a, garbage).await, garbage);
    let bad_submit = b"{\"id\":2,\"method\":\"mining.submit\",\"params\":[1,{},null]}\n";
    assert_eq!(roundtrip(&mut a, bad_submit).await, bad_submit);
    let bad_notify = b"{\"id\":null,\"method\":\"mining.notify\",\"params\":[\"j\",\"zz\"]}\n";
    assert_eq!(roundtrip(&mut a, bad_notify).await, bad_notify);
    // An over-long line from the miner: its connection is closed.
    a.get_mut().write_all(&vec![b'y'; 3000]).await.unwrap();
    assert!(closed(&mut a).await);

    // An over-long line from the pool, and a pool that closes: their miners are closed.
    let mut c = conn().await;
    c.get_mut().write_all(b"long\n").await.unwrap();
    assert!(closed(&mut c).await);
    let mut d = conn().await;
    d.get_mut().write_all(b"close\n").await.unwrap();
    assert!(closed(&mut d).await);

    // The first connection never noticed.
    assert_eq!(roundtrip(&mut b, b"still here\n").await, b"still here\n");
    // The malformed submit is counted when the tap inspects it, which may come after the
    // lines have been forwarded: wait for both counters (seen 0 once under load).
    let s = wait_stats(&tap, "counters", |s| {
        s.line_too_long == 2 && s.skipped.get("malformed").copied() == Some(1)
    })
    .await;
    assert_eq!(s.connections, 4);

    // A pool that is not there: the miner's connection is closed, and counted.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap().to_string();
    drop(dead);
    let (tap2, addr2) = start_tap(dead_addr, None).await;
    let mut e = BufReader::new(TcpStream::connect(addr2).await.unwrap());
    assert!(closed(&mut e).await);
    wait_stats(&tap2, "pool unreachable", |s| s.pool_unreachable == 1).await;
}

#[test]
fn pool_addresses() {
    assert_eq!(
        parse_pool("stratum+tcp://pool.example:3333").unwrap(),
        "pool.example:3333"
    );
    assert_eq!(parse_pool("127.0.0.1:3333").unwrap(), "127.0.0.1:3333");
    assert_eq!(parse_pool("[::1]:3333").unwrap(), "[::1]:3333");
    for bad in [
        "http://h:1",
        "h",
        "h:port",
        ":1",
        "stratum+tcp://h:1/x",
        "stratum+ssl://h:1",
    ] {
        assert!(parse_pool(bad).is_err(), "{bad}");
    }
}

#[test]
fn long_coinbase_is_counted() {
    let tap = Tap::new(TapConfig::new("127.0.0.1:1"), None);
    let subscribed = || {
        let mut f = Follower::new(tap.clone());
        // The subscribe reply is matched to its request by id.
        f.on_miner_line(b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}");
        f.on_pool_line(b"{\"id\":1,\"result\":[[],\"aabbccdd\",8],\"error\":null}\n");
        assert_eq!(f.extranonce, Some((EN1.to_vec(), 8)));
        f
    };
    let mut f = subscribed();
    // 8-byte extranonce2 makes job j1's scriptSig 4 + 4 + 8 + 44 = 60 bytes: fits.
    f.on_pool_line(notify("j1", 8).as_bytes());
    assert_eq!(tap.stats().coinbase_too_long, 0);
    // A pool with 50 bytes of its own data before the extranonces: 110 bytes.
    let (mut c1, c2) = coinbase_parts("j1", 8);
    let n = c1.len();
    c1[n - 5] += 50;
    c1.extend_from_slice(&[0u8; 50]);
    let line = json!({"id": null, "method": "mining.notify", "params": [
        "big", "00".repeat(32), c1.to_lower_hex_string(), c2.to_lower_hex_string(), [], "20000000", "207fffff", "65000000", true]});
    let mut f = subscribed();
    f.on_pool_line(line.to_string().as_bytes());
    assert_eq!(tap.stats().coinbase_too_long, 1);
}

use proptest::strategy::Strategy as _;

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

    /// Any bytes from either side, in any order, leave the follower standing.
    #[test]
    fn followers_survive_any_lines(lines in proptest::collection::vec(
        (proptest::bool::ANY, proptest::prop_oneof![
            proptest::collection::vec(proptest::num::u8::ANY, 0..200),
            // Near-misses of real messages: a valid prefix, then anything.
            (0usize..6, proptest::collection::vec(proptest::num::u8::ANY, 0..40)).prop_map(|(k, tail)| {
                let heads = [
                    notify("j1", 4),
                    "{\"id\":1,\"result\":[[],\"aabbccdd\",4],\"error\":null}".to_string(),
                    "{\"id\":2,\"method\":\"mining.submit\",\"params\":[\"w\",\"j1\",\"00000001\",\"65000000\",\"00000007\",\"00002000\"]}".to_string(),
                    "{\"id\":null,\"method\":\"mining.set_extranonce\",\"params\":[\"0102\",".to_string(),
                    "{\"id\":\"c\",\"result\":{\"version-rolling\":true,\"version-rolling.mask\":".to_string(),
                    "{\"id\":null,\"method\":\"mining.set_version_mask\",\"params\":[".to_string(),
                ];
                let mut l = heads[k].clone().into_bytes();
                let cut = l.len() - tail.len().min(l.len() / 2);
                l.truncate(cut);
                l.extend_from_slice(&tail);
                l
            }),
        ]),
        0..30,
    )) {
        let tap = Tap::new(TapConfig::new("127.0.0.1:1"), None);
        let mut f = Follower::new(tap.clone());
        // A session that can rebuild shares, then the noise.
        f.on_miner_line(b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}");
        f.on_pool_line(b"{\"id\":1,\"result\":[[],\"aabbccdd\",4],\"error\":null}");
        f.on_pool_line(notify("j1", 4).as_bytes());
        for (from_miner, line) in &lines {
            if *from_miner {
                f.on_miner_line(line);
            } else {
                f.on_pool_line(line);
            }
        }
        proptest::prop_assert!(f.jobs.len() <= tap.config().max_jobs);
        proptest::prop_assert!(f.pending.len() <= MAX_PENDING);
    }
}

/// A pool merge-mining several chains through the proxy: its coinbase commits to a tree of
/// 4 chains (job `t1`). One share, answered `true`.
async fn tree_pool(l: TcpListener) {
    let (s, _) = l.accept().await.unwrap();
    let (r, mut w) = s.into_split();
    let mut r = BufReader::new(r);
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line).await.unwrap_or(0) == 0 {
            break;
        }
        let v: Value = serde_json::from_slice(&line).unwrap_or(Value::Null);
        let id = v["id"].to_string();
        let out = match v["method"].as_str() {
            Some("mining.subscribe") => {
                format!("{{\"id\":{id},\"result\":[[],\"aabbccdd\",4],\"error\":null}}\n")
            }
            Some("mining.authorize") => format!(
                "{{\"id\":{id},\"result\":true,\"error\":null}}\n{}",
                notify("t1", 4)
            ),
            _ => format!("{{\"id\":{id},\"result\":true,\"error\":null}}\n"),
        };
        w.write_all(out.as_bytes()).await.unwrap();
    }
}

/// With `aux_proxy`, a share for an aggregated tree meeting the L2 target goes to the
/// proxy's `submitauxshare` (header, coinbase, branch as the spec builds them), not to the
/// L2 node; without it, the share is counted as skipped and nothing is submitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_for_an_aggregated_tree_go_to_the_aux_proxy() {
    for with_proxy in [true, false] {
        let (l2, submitted) = fake_l2();
        let pool = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pool_addr = pool.local_addr().unwrap().to_string();
        let pool_task = tokio::spawn(tree_pool(pool));
        let proxy = with_proxy.then_some(l2.as_str());
        let (tap, addr) =
            start_tap_with(pool_addr, Some(&l2), proxy, rexe_rpc::Priority::Normal).await;
        let s = TcpStream::connect(addr).await.unwrap();
        let (r, mut w) = s.into_split();
        let mut r = BufReader::new(r);
        let mut got = Vec::new();
        let hello = "{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}\n{\"id\":2,\"method\":\"mining.authorize\",\"params\":[\"w\",\"x\"]}\n";
        w.write_all(hello.as_bytes()).await.unwrap();
        read_until_contains(&mut r, &mut got, "\"t1\"").await;
        let share = format!("{{\"id\":4,\"method\":\"mining.submit\",\"params\":[\"w\",\"t1\",\"00000001\",\"{NTIME:08x}\",\"00000007\"]}}\n");
        w.write_all(share.as_bytes()).await.unwrap();
        read_until_contains(&mut r, &mut got, "\"id\":4").await;
        if with_proxy {
            let s = wait_stats(&tap, "the share at the proxy", |s| {
                s.aux_proxy.get("sealed") == Some(&1)
            })
            .await;
            assert_eq!(s.aux_proxy["forwarded"], 1, "{s:?}");
            assert_eq!(s.aux_proxy["errors"], 0, "{s:?}");
            assert_eq!(s.skipped["aggregated_tree"], 0, "{s:?}");
            let subs = submitted.lock().unwrap().clone();
            assert_eq!(subs.len(), 1, "one call, to the proxy: {subs:?}");
            let want = expected_header("t1", &EN1, &[0, 0, 0, 1], 7, VERSION);
            assert_eq!(subs[0][0], json!(want.to_lower_hex_string()));
            let (c1, c2) = coinbase_parts("t1", 4);
            let coinbase = [c1, EN1.to_vec(), vec![0, 0, 0, 1], c2].concat();
            assert_eq!(subs[0][1], json!(coinbase.to_lower_hex_string()));
            assert_eq!(subs[0][2], json!([BRANCH.to_lower_hex_string()]));
        } else {
            let s = wait_stats(&tap, "the share skipped", |s| {
                s.skipped.get("aggregated_tree") == Some(&1)
            })
            .await;
            assert_eq!(s.aux_proxy["forwarded"], 0, "{s:?}");
            assert!(submitted.lock().unwrap().is_empty());
        }
        drop(w);
        pool_task.abort();
    }
}

#[test]
fn a_pool_notify_command_that_fails_or_hangs_is_reported_and_killed() {
    use std::time::Duration;
    assert_eq!(super::run_notify("true", Duration::from_secs(5)), Ok(()));
    let e = super::run_notify("exit 3", Duration::from_secs(5)).unwrap_err();
    assert!(e.contains("exit"), "{e}");
    let e = super::run_notify("sleep 30", Duration::from_millis(200)).unwrap_err();
    assert!(e.contains("killed"), "{e}");
}
