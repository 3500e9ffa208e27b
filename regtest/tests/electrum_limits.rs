//! The Electrum server's limits (issue 17): each one holds, and other clients are still
//! served while it does.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bitcoin::hex::DisplayHex;
use rexe_regtest::electrum::{ElectrumLimits, LIMIT_EXCEEDED};
use rexe_regtest::{RegtestConfig, RegtestNode, Services};
use serde_json::{json, Value};

mod common;
use common::*;

fn start(limits: ElectrumLimits) -> RegtestNode {
    let services = Services {
        electrum_limits: limits,
        ..Services::default()
    };
    RegtestNode::start_with(RegtestConfig::default(), services).unwrap()
}

struct El {
    rd: BufReader<TcpStream>,
    wr: TcpStream,
}

impl El {
    fn new(s: TcpStream) -> El {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        El {
            rd: BufReader::new(s.try_clone().unwrap()),
            wr: s,
        }
    }

    fn connect(node: &RegtestNode) -> El {
        El::new(TcpStream::connect(node.electrum_addr).unwrap())
    }

    /// Connects from `ip` (any of 127/8 is loopback on Linux).
    fn connect_from(node: &RegtestNode, ip: [u8; 4]) -> El {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let to = node.electrum_addr;
        let s = rt.block_on(async move {
            let sock = tokio::net::TcpSocket::new_v4().unwrap();
            sock.bind(SocketAddr::from((ip, 0))).unwrap();
            sock.connect(to).await.unwrap()
        });
        let s = s.into_std().unwrap();
        s.set_nonblocking(false).unwrap();
        El::new(s)
    }

    fn send(&mut self, line: &str) {
        self.wr.write_all(line.as_bytes()).unwrap();
        self.wr.write_all(b"\n").unwrap();
    }

    /// The next line, or `None` when the server closed the connection.
    fn line(&mut self) -> Option<String> {
        let mut l = String::new();
        match self.rd.read_line(&mut l) {
            Ok(0) => None,
            Ok(_) => Some(l),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("no answer and not closed within the read timeout")
            }
            Err(_) => None,
        }
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        self.send(&json!({"id": 1, "method": method, "params": params}).to_string());
        let l = self.line().expect("server closed the connection");
        serde_json::from_str(&l).unwrap()
    }

    fn ping_ok(&mut self) -> bool {
        self.call("server.ping", json!([]))["result"] == Value::Null
    }

    /// Whether the server closed this connection (a ping gets no answer).
    fn closed(&mut self) -> bool {
        let _ = self
            .wr
            .write_all(b"{\"id\":1,\"method\":\"server.ping\"}\n");
        self.line().is_none()
    }
}

fn limits() -> ElectrumLimits {
    ElectrumLimits::default()
}

fn batch(n: usize, method: &str, params: Value) -> String {
    let reqs: Vec<Value> = (0..n)
        .map(|i| json!({"id": i, "method": method, "params": params}))
        .collect();
    Value::Array(reqs).to_string()
}

#[test]
fn batches_over_the_size_limit_are_refused() {
    let mut lim = limits();
    lim.conn.max_batch = 10;
    let node = start(lim);
    let mut el = El::connect(&node);
    let mut other = El::connect(&node);
    el.send(&batch(11, "server.ping", json!([])));
    let v: Value = serde_json::from_str(&el.line().unwrap()).unwrap();
    assert_eq!(v["error"]["code"], json!(LIMIT_EXCEEDED), "{v}");
    el.send(&batch(10, "server.ping", json!([])));
    let v: Value = serde_json::from_str(&el.line().unwrap()).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 10, "{v}");
    assert!(other.ping_ok());
}

#[test]
fn replies_over_the_byte_budget_are_refused_with_an_error() {
    let mut lim = limits();
    lim.max_reply_bytes = 64 * 1024;
    let node = start(lim);
    let a = key(1);
    ok(&node, "generatetoaddress", json!([100, a.addr.to_string()]));
    let mut el = El::connect(&node);
    let mut other = El::connect(&node);

    // One headers request fits (101 headers, ~16 KB); a batch of 20 (~320 KB) does not.
    let v = el.call("blockchain.block.headers", json!([0, 2016]));
    assert_eq!(v["result"]["count"], json!(101), "{v}");
    el.send(&batch(20, "blockchain.block.headers", json!([0, 2016])));
    let l = el.line().unwrap();
    assert!(
        l.len() < 1024,
        "an error, not the replies: {} bytes",
        l.len()
    );
    let v: Value = serde_json::from_str(&l).unwrap();
    assert_eq!(v["error"]["code"], json!(LIMIT_EXCEEDED), "{v}");

    // A single reply over the budget: the history of 100 coinbases fits, 100 headers of
    // a smaller budget's worth do not.
    let sh = rexe_regtest::electrum::script_hash(&a.addr.script_pubkey());
    let v = el.call("blockchain.scripthash.get_history", json!([sh]));
    assert_eq!(v["result"].as_array().unwrap().len(), 100);
    assert!(el.ping_ok(), "the connection stays usable");
    assert!(other.ping_ok());

    let mut lim = limits();
    lim.max_reply_bytes = 4 * 1024;
    let node = start(lim);
    ok(&node, "generatetoaddress", json!([100, a.addr.to_string()]));
    let mut el = El::connect(&node);
    let v = el.call("blockchain.scripthash.get_history", json!([sh]));
    assert_eq!(v["error"]["code"], json!(LIMIT_EXCEEDED), "{v}");
    let v = el.call("blockchain.block.headers", json!([0, 100]));
    assert_eq!(v["error"]["code"], json!(LIMIT_EXCEEDED), "{v}");
    let v = el.call("blockchain.block.headers", json!([0, 10]));
    assert_eq!(v["result"]["count"], json!(10), "{v}");
}

#[test]
fn a_client_that_does_not_read_its_replies_is_disconnected() {
    let mut lim = limits();
    lim.conn.write_timeout = Duration::from_secs(1);
    let node = start(lim);
    ok(
        &node,
        "generatetoaddress",
        json!([100, key(1).addr.to_string()]),
    );
    let mut el = El::connect(&node);
    let mut other = El::connect(&node);
    // 200 lines of 100 x 101 headers: ~3.2 GB of replies if the server kept building them.
    let line = batch(100, "blockchain.block.headers", json!([0, 2016])) + "\n";
    let per_line = 100 * 101 * 160;
    let mut w = el.wr.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        for _ in 0..200 {
            if w.write_all(line.as_bytes()).is_err() {
                return;
            }
        }
    });
    std::thread::sleep(Duration::from_secs(3));
    assert!(other.ping_ok(), "others are served while one client stalls");
    let mut total = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    let ended = loop {
        match el.rd.read(&mut buf) {
            Ok(0) => break "eof",
            Ok(n) => total += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break "timeout"
            }
            Err(_) => break "reset",
        }
    };
    let _ = writer.join();
    assert_ne!(ended, "timeout", "the server never closed the slow reader");
    assert!(
        total < 20 * per_line,
        "the server went on answering ({total} bytes)"
    );
    assert!(other.ping_ok());
}

#[test]
fn connections_are_limited_per_ip_and_in_total() {
    let mut lim = limits();
    lim.conn.max_per_ip = 2;
    lim.conn.max_connections = 3;
    let node = start(lim);
    let mut a1 = El::connect_from(&node, [127, 0, 0, 1]);
    let mut a2 = El::connect_from(&node, [127, 0, 0, 1]);
    assert!(a1.ping_ok() && a2.ping_ok());
    let mut a3 = El::connect_from(&node, [127, 0, 0, 1]);
    assert!(a3.closed(), "a third connection from one IP");
    let mut b1 = El::connect_from(&node, [127, 0, 0, 2]);
    assert!(b1.ping_ok(), "another IP is still admitted");
    let mut c1 = El::connect_from(&node, [127, 0, 0, 3]);
    assert!(c1.closed(), "a fourth connection in total");
    assert!(a1.ping_ok() && a2.ping_ok() && b1.ping_ok());
    // A closed connection gives its slot back.
    drop(a1);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut again = El::connect_from(&node, [127, 0, 0, 3]);
        if !again.closed() {
            break;
        }
        assert!(Instant::now() < deadline, "the slot was never freed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn scripthash_subscriptions_per_connection_are_limited() {
    let mut lim = limits();
    lim.max_subscriptions = 3;
    let node = start(lim);
    let mut el = El::connect(&node);
    let mut other = El::connect(&node);
    let sh = |i: u8| [i; 32].to_lower_hex_string();
    for i in 0..3 {
        let v = el.call("blockchain.scripthash.subscribe", json!([sh(i)]));
        assert!(v.get("error").is_none(), "{v}");
    }
    let v = el.call("blockchain.scripthash.subscribe", json!([sh(3)]));
    assert_eq!(v["error"]["code"], json!(LIMIT_EXCEEDED), "{v}");
    let v = el.call("blockchain.scripthash.subscribe", json!([sh(0)]));
    assert!(
        v.get("error").is_none(),
        "subscribing again is no new one: {v}"
    );
    let v = el.call("blockchain.scripthash.unsubscribe", json!([sh(0)]));
    assert_eq!(v["result"], json!(true));
    let v = el.call("blockchain.scripthash.subscribe", json!([sh(3)]));
    assert!(v.get("error").is_none(), "{v}");
    for i in 10..13 {
        let v = other.call("blockchain.scripthash.subscribe", json!([sh(i)]));
        assert!(v.get("error").is_none(), "the limit is per connection: {v}");
    }
}

#[test]
fn idle_and_slowloris_clients_are_closed_while_active_ones_stay() {
    let mut lim = limits();
    lim.conn.idle_timeout = Duration::from_secs(1);
    let node = start(lim);
    let mut idle = El::connect(&node);
    let mut slow = El::connect(&node);
    let mut active = El::connect(&node);
    let start = Instant::now();
    let mut slow_open = true;
    // For 4 s: one byte of a never-ending line every 200 ms from `slow`, a ping every
    // 200 ms from `active`.
    while start.elapsed() < Duration::from_secs(4) {
        if slow_open {
            slow_open = slow.wr.write_all(b"{").is_ok();
        }
        assert!(active.ping_ok(), "an active client is kept");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(idle.line().is_none(), "the idle client was closed");
    assert!(slow.line().is_none(), "the slowloris client was closed");
    assert!(active.ping_ok());
}
