//! Stratum v1 end to end: the CPU miner mines over Stratum against the embedded regtest
//! node (Bitcoin target 8x harder than the L2's); accepted shares seal L2 blocks (premature
//! harvest) and some are Bitcoin blocks. Bad input gets the conventional error codes.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rexe_chain::{Network, Signer};
use rexe_miner::proxy::Harvester;
use rexe_miner::stratum::server::{self, Stratum, StratumOptions};
use rexe_regtest::{RegtestConfig, RegtestNode};
use rexe_rpc::client::RpcClient;
use serde_json::{json, Value};

struct Setup {
    _btc_node: RegtestNode,
    btc: RpcClient,
    l2: Running,
    _l2_dir: tempfile::TempDir,
    stratum: std::net::SocketAddr,
    server: Arc<Stratum>,
    _rt: tokio::runtime::Runtime,
}

fn setup() -> Setup {
    setup_with(StratumOptions::default())
}

fn setup_with(options: StratumOptions) -> Setup {
    let btc_node = RegtestNode::start(RegtestConfig {
        bits: 0x1f03_ffff,
        ..RegtestConfig::default()
    })
    .unwrap();
    let btc = RpcClient::new(btc_node.rpc_addr.to_string(), btc_node.cookie.clone());
    let l2_dir = tempfile::tempdir().unwrap();
    let l2 = l2_node_with_password(l2_dir.path());
    let harvester = Arc::new(Harvester::new(
        RpcClient::new(l2.rpc.clone(), "u:p"),
        Signer::from_seed(b"default")
            .address()
            .encode(Network::Regtest),
        rexe_miner::ChainId::REXE,
    ));
    let btc_payout = bitcoin::Address::p2wsh(
        &bitcoin::ScriptBuf::new_op_return([9u8; 4]),
        bitcoin::Network::Regtest,
    )
    .script_pubkey();
    let server = Stratum::with_options(
        btc.clone(),
        harvester.clone(),
        harvester.payout.clone(),
        btc_payout,
        options,
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stratum = rt
        .block_on(server::serve(
            server.clone(),
            "127.0.0.1:0".parse().unwrap(),
            Duration::from_millis(50),
        ))
        .unwrap();
    Setup {
        _btc_node: btc_node,
        btc,
        l2,
        _l2_dir: l2_dir,
        stratum,
        server,
        _rt: rt,
    }
}

#[test]
fn cpu_miner_over_stratum_seals_l2_blocks_and_finds_bitcoin_blocks() {
    let s = setup();
    let worker_rx = Signer::from_seed(b"worker")
        .address()
        .encode(Network::Regtest);
    let mut total = 0;
    // Keep mining until both kinds of harvest happened (bounded).
    for _ in 0..20 {
        let r = rexe_miner::stratum::client::run(
            &s.stratum.to_string(),
            "bcrt1qworker.rig1",
            &format!("rx={worker_rx}"),
            2,
            8,
            Duration::from_secs(30),
        )
        .unwrap();
        total += r.accepted;

        let btc_height = s
            .btc
            .call("getblockcount", json!([]))
            .unwrap()
            .as_u64()
            .unwrap();
        let l2_height = call(&s.l2, "getblockcount", json!([]))["result"]
            .as_u64()
            .unwrap();
        if btc_height >= 1 && l2_height >= 3 {
            // L2 rewards went to the worker's rx= address.
            let acct = call(&s.l2, "getaccount", json!([worker_rx]));
            assert!(acct["result"]["balance"].as_u64().unwrap() > 0, "{acct}");
            return;
        }
    }
    panic!(
        "no Bitcoin block or no premature harvest after {total} shares: btc {} l2 {}",
        s.btc.call("getblockcount", json!([])).unwrap(),
        call(&s.l2, "getblockcount", json!([]))["result"]
    );
}

fn line(stream: &mut BufReader<TcpStream>) -> Value {
    let mut l = String::new();
    stream.read_line(&mut l).unwrap();
    serde_json::from_str(&l).unwrap_or(Value::Null)
}

fn reply_to(r: &mut BufReader<TcpStream>, id: u64) -> Value {
    loop {
        let v = line(r);
        if v["id"] == json!(id) {
            return v;
        }
        assert!(!v.is_null(), "connection closed");
    }
}

#[test]
fn bad_input_on_the_stratum_port_gets_conventional_errors() {
    let s = setup();
    let mut w = TcpStream::connect(s.stratum).unwrap();
    w.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut r = BufReader::new(w.try_clone().unwrap());
    let mut send = |v: Value| writeln!(w, "{v}").unwrap();
    send(json!({"id": 1, "method": "mining.authorize", "params": ["u", "p"]}));
    assert_eq!(reply_to(&mut r, 1)["error"][0], json!(25), "not subscribed");
    send(
        json!({"id": 2, "method": "mining.submit", "params": ["u", "0", "00000000", "00000000", "00000000"]}),
    );
    assert_eq!(reply_to(&mut r, 2)["error"][0], json!(25));
    send(json!({"id": 3, "method": "mining.subscribe", "params": []}));
    let sub = reply_to(&mut r, 3);
    assert_eq!(sub["result"][2], json!(4));
    send(
        json!({"id": 4, "method": "mining.submit", "params": ["u", "0", "00000000", "00000000", "00000000"]}),
    );
    assert_eq!(reply_to(&mut r, 4)["error"][0], json!(24), "unauthorized");
    send(
        json!({"id": 5, "method": "mining.configure", "params": [["version-rolling"], {"version-rolling.mask": "ffffffff"}]}),
    );
    assert_eq!(
        reply_to(&mut r, 5)["result"]["version-rolling.mask"],
        json!("1fffe000")
    );
    send(json!({"id": 6, "method": "mining.authorize", "params": ["u", "p"]}));
    assert_eq!(reply_to(&mut r, 6)["result"], json!(true));
    // The job arrives.
    let mut job = Value::Null;
    while job.is_null() {
        let v = line(&mut r);
        if v["method"] == json!("mining.notify") {
            job = v["params"].clone();
        }
    }
    let ntime = job[7].as_str().unwrap().to_string();
    let jid = job[0].as_str().unwrap().to_string();
    send(json!({"id": 7, "method": "mining.nope", "params": []}));
    assert_eq!(reply_to(&mut r, 7)["error"][0], json!(20), "unknown method");
    send(
        json!({"id": 8, "method": "mining.submit", "params": ["u", "nosuchjob", "00000000", ntime, "00000000"]}),
    );
    assert_eq!(reply_to(&mut r, 8)["error"][0], json!(21), "stale job");
    send(
        json!({"id": 9, "method": "mining.submit", "params": ["u", jid, "00000000", "00000001", "00000000"]}),
    );
    assert_eq!(reply_to(&mut r, 9)["error"][0], json!(20), "bad ntime");
    // A share: almost surely below the share target (23); if it happens to meet it
    // (one in 2^12), submitting it again is a duplicate (22).
    send(
        json!({"id": 100, "method": "mining.submit", "params": ["u", jid, "00000000", ntime, "00000000"]}),
    );
    let v = reply_to(&mut r, 100);
    if v["result"] == json!(true) {
        send(
            json!({"id": 101, "method": "mining.submit", "params": ["u", jid, "00000000", ntime, "00000000"]}),
        );
        assert_eq!(reply_to(&mut r, 101)["error"][0], json!(22));
    } else {
        assert_eq!(v["error"][0], json!(23), "{v}");
        send(
            json!({"id": 101, "method": "mining.submit", "params": ["u", jid, "00000000", ntime, "00000000"]}),
        );
        assert_eq!(
            reply_to(&mut r, 101)["error"][0],
            json!(22),
            "the same share twice"
        );
    }
    let st = &s.server.stats;
    let counted = st.accepted.load(std::sync::atomic::Ordering::Relaxed)
        + st.rejected.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(counted, 1, "one share checked against the target");
    // Garbage gets an error reply; a huge line closes that connection only.
    writeln!(w, "{{not json").unwrap();
    assert_eq!(line(&mut r)["error"][0], json!(20));
    let huge = vec![b'x'; 100_000];
    let _ = w.write_all(&huge);
    let _ = w.write_all(b"\n");
    let mut rest = String::new();
    let closed = matches!(r.read_line(&mut rest), Ok(0) | Err(_));
    assert!(closed, "oversized line disconnects");
    // Others are still served.
    let mut w2 = TcpStream::connect(s.stratum).unwrap();
    let mut r2 = BufReader::new(w2.try_clone().unwrap());
    writeln!(
        w2,
        "{}",
        json!({"id": 1, "method": "mining.subscribe", "params": []})
    )
    .unwrap();
    assert!(!reply_to(&mut r2, 1)["result"].is_null());
}

#[test]
fn a_fixed_pool_difficulty_is_announced_and_never_changed() {
    // At this difficulty every hash is a share, so the shares below need no grinding.
    let s = setup_with(StratumOptions {
        fixed_difficulty: Some(1e-30),
        ..Default::default()
    });
    let mut w = TcpStream::connect(s.stratum).unwrap();
    w.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut r = BufReader::new(w.try_clone().unwrap());
    let mut send = |v: Value| writeln!(w, "{v}").unwrap();
    send(json!({"id": 1, "method": "mining.subscribe", "params": []}));
    send(json!({"id": 2, "method": "mining.authorize", "params": ["u", "p"]}));
    let (mut difficulty, mut job) = (Value::Null, Value::Null);
    while job.is_null() {
        let v = line(&mut r);
        if v["method"] == json!("mining.set_difficulty") {
            difficulty = v["params"][0].clone();
        }
        if v["method"] == json!("mining.notify") {
            job = v["params"].clone();
        }
    }
    // serde_json's float parsing may miss the last bit.
    let d = difficulty.as_f64().unwrap();
    assert!((d / 1e-30 - 1.0).abs() < 1e-9, "{difficulty}");
    let (jid, ntime) = (job[0].clone(), job[7].clone());
    // Twenty shares in a burst would make vardiff raise the difficulty; a fixed one stays.
    for i in 0..20u32 {
        send(json!({"id": 10 + i, "method": "mining.submit",
            "params": ["u", jid, format!("{i:08x}"), ntime, "00000000"]}));
    }
    send(json!({"id": 99, "method": "mining.nope", "params": []}));
    let mut accepted = 0;
    loop {
        let v = line(&mut r);
        assert_ne!(v["method"], json!("mining.set_difficulty"), "{v}");
        if v["result"] == json!(true) {
            accepted += 1;
        }
        if v["id"] == json!(99) {
            break;
        }
    }
    assert_eq!(accepted, 20);
}

/// Issue 17: the Stratum port limits connections per IP and in total (others are still
/// served) and closes connections that stay silent past the idle timeout.
#[test]
fn stratum_connections_are_bounded_and_idle_ones_closed() {
    use std::io::Read;
    let s = setup_with(StratumOptions {
        limits: rexe_rpc::Limits {
            max_connections: 3,
            max_per_ip: 2,
            idle_timeout: Duration::from_secs(1),
            ..StratumOptions::default().limits
        },
        ..Default::default()
    });
    let connect_from = |ip: [u8; 4]| {
        let sock = connect_from(ip, &s.stratum.to_string()).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        sock
    };
    let answers = |sock: &mut TcpStream| {
        writeln!(
            sock,
            r#"{{"id":1,"method":"mining.subscribe","params":[]}}"#
        )
        .unwrap();
        let mut r = BufReader::new(sock.try_clone().unwrap());
        let mut l = String::new();
        r.read_line(&mut l).is_ok() && l.contains("result")
    };
    let closed = |sock: &mut TcpStream| {
        let mut b = [0u8; 256];
        loop {
            match sock.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) => {
                    return !matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    )
                }
            }
        }
    };
    let mut a1 = connect_from([127, 0, 0, 1]);
    let mut a2 = connect_from([127, 0, 0, 1]);
    assert!(answers(&mut a1) && answers(&mut a2));
    let mut a3 = connect_from([127, 0, 0, 1]);
    assert!(closed(&mut a3), "third connection from one IP refused");
    let mut b1 = connect_from([127, 0, 0, 2]);
    assert!(answers(&mut b1), "another IP is served");
    let mut c1 = connect_from([127, 0, 0, 3]);
    assert!(closed(&mut c1), "fourth connection in total refused");
    // The silent ones are closed after the idle timeout (1 s), freeing their slots.
    assert!(
        closed(&mut a1) && closed(&mut a2) && closed(&mut b1),
        "idle closed"
    );
    let mut c2 = connect_from([127, 0, 0, 3]);
    assert!(answers(&mut c2));
}

/// Issue 23 item 3: the operator's mapping file pays a worker's L2 rewards to its mapped
/// address (worker `alice.rig1` by its account `alice`); a mistyped `rx=` is refused at
/// `mining.authorize` instead of silently paying the operator.
#[test]
fn l2_rewards_follow_the_operators_payout_rules() {
    let mapped = Signer::from_seed(b"alice-mapped")
        .address()
        .encode(Network::Regtest);
    let mut payouts = rexe_miner::stratum::payout::PayoutRules::default();
    payouts.map.insert("alice".into(), mapped.clone());
    let s = setup_with(StratumOptions {
        payouts,
        ..Default::default()
    });
    // A typo in rx=: error 24 at authorize.
    let mut w = TcpStream::connect(s.stratum).unwrap();
    w.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut r = BufReader::new(w.try_clone().unwrap());
    writeln!(w, r#"{{"id":1,"method":"mining.subscribe","params":[]}}"#).unwrap();
    reply_to(&mut r, 1);
    writeln!(
        w,
        r#"{{"id":2,"method":"mining.authorize","params":["bob","rx=rxtypo"]}}"#
    )
    .unwrap();
    let v = reply_to(&mut r, 2);
    assert_eq!(v["error"][0], json!(24), "{v}");
    // Alice's rig mines; her mapped address is paid.
    for _ in 0..20 {
        rexe_miner::stratum::client::run(
            &s.stratum.to_string(),
            "alice.rig1",
            "x",
            2,
            8,
            Duration::from_secs(30),
        )
        .unwrap();
        let acct = call(&s.l2, "getaccount", json!([mapped]));
        if acct["result"]["balance"].as_u64().unwrap_or(0) > 0 {
            return;
        }
    }
    panic!("the mapped address was never paid");
}
