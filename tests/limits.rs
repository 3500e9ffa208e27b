//! Issue 17: the L2 node's JSON-RPC port bounds what one client can take: connections per IP
//! and in total (other clients keep being served), a deadline for a request head (idle and
//! slowloris connections are closed), the batch size.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

fn node(dir: &std::path::Path, extra: &[&str]) -> Running {
    let mut args = vec![
        "node",
        "--datadir",
        dir.to_str().unwrap(),
        "--rpc-bind",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    spawn(&args, dir)
}

/// Whether the server closed `s` (EOF or reset) within `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut b = [0u8; 512];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// One authenticated getblockcount over `s`; the reply's body.
fn ask(s: &mut TcpStream, cookie: &str) -> String {
    use bitcoin::base64::Engine as _;
    let body = br#"{"method":"getblockcount","params":[],"id":1}"#;
    let req = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nAuthorization: Basic {}\r\n\r\n",
        body.len(),
        bitcoin::base64::engine::general_purpose::STANDARD.encode(cookie)
    );
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    let mut b = [0u8; 4096];
    while !out.ends_with(b"}") && !out.ends_with(b"}\n") {
        let n = s.read(&mut b).expect("reply");
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&out));
        out.extend_from_slice(&b[..n]);
    }
    String::from_utf8_lossy(&out).to_string()
}

#[test]
fn connections_are_limited_per_ip_and_in_total_and_others_are_still_served() {
    let dir = tempfile::tempdir().unwrap();
    let n = node(
        dir.path(),
        &["--rpc-max-connections", "4", "--rpc-max-per-ip", "2"],
    );
    let mut a1 = connect_from([127, 0, 0, 1], &n.rpc).unwrap();
    let mut a2 = connect_from([127, 0, 0, 1], &n.rpc).unwrap();
    assert!(ask(&mut a1, &n.cookie).contains("\"result\":0"));
    assert!(ask(&mut a2, &n.cookie).contains("\"result\":0"));
    // A third from the same address is closed at once.
    let mut a3 = connect_from([127, 0, 0, 1], &n.rpc).unwrap();
    assert!(
        closed_within(&mut a3, Duration::from_secs(5)),
        "third connection from one IP"
    );
    // Another address is still served, up to the total.
    let mut b1 = connect_from([127, 0, 0, 2], &n.rpc).unwrap();
    let mut b2 = connect_from([127, 0, 0, 2], &n.rpc).unwrap();
    assert!(ask(&mut b1, &n.cookie).contains("\"result\":0"));
    assert!(ask(&mut b2, &n.cookie).contains("\"result\":0"));
    let mut c1 = connect_from([127, 0, 0, 3], &n.rpc).unwrap();
    assert!(
        closed_within(&mut c1, Duration::from_secs(5)),
        "fifth connection in total"
    );
    // The admitted ones keep working; a closed one frees its slot.
    assert!(ask(&mut a1, &n.cookie).contains("\"result\":0"));
    drop(a2);
    std::thread::sleep(Duration::from_millis(200));
    let mut c2 = connect_from([127, 0, 0, 3], &n.rpc).unwrap();
    assert!(ask(&mut c2, &n.cookie).contains("\"result\":0"));
}

#[test]
fn idle_and_slowloris_connections_are_closed_and_others_unaffected() {
    let dir = tempfile::tempdir().unwrap();
    let n = node(dir.path(), &["--rpc-timeout", "2"]);
    // Idle: connects, sends nothing.
    let mut idle = TcpStream::connect(&n.rpc).unwrap();
    // Slowloris: a byte of its request head every 300 ms (a whole head would take ~30 s).
    let rpc = n.rpc.clone();
    let slow = std::thread::spawn(move || {
        let mut s = TcpStream::connect(&rpc).unwrap();
        let head = b"POST / HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
        let t0 = Instant::now();
        for b in head {
            if s.write_all(&[*b]).is_err() {
                return Some(t0.elapsed());
            }
            std::thread::sleep(Duration::from_millis(300));
            // A closed peer shows on the next writes (RST).
        }
        None
    });
    let t0 = Instant::now();
    // Meanwhile a normal client is served.
    let mut ok = TcpStream::connect(&n.rpc).unwrap();
    assert!(ask(&mut ok, &n.cookie).contains("\"result\":0"));
    assert!(
        closed_within(&mut idle, Duration::from_secs(20)),
        "idle connection closed"
    );
    assert!(t0.elapsed() < Duration::from_secs(20));
    let cut = slow.join().unwrap();
    assert!(
        cut.is_some(),
        "the slowloris connection was cut before its head was complete"
    );
}

#[test]
fn batches_over_the_limit_are_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let n = node(dir.path(), &["--rpc-max-batch", "10"]);
    let one = json!({"method": "getblockcount", "params": [], "id": 1});
    let ten = serde_json::Value::Array(vec![one.clone(); 10]);
    let (status, text) = post(&n.rpc, Some(&n.cookie), ten.to_string().as_bytes());
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        10
    );
    let eleven = serde_json::Value::Array(vec![one; 11]);
    let (status, text) = post(&n.rpc, Some(&n.cookie), eleven.to_string().as_bytes());
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("over the limit of 10"), "{text}");
    // Unauthenticated, nothing is parsed at all.
    let (status, _) = post(&n.rpc, None, eleven_big().as_bytes());
    assert_eq!(status, 401);
}

fn eleven_big() -> String {
    let one = json!({"method": "getblockcount", "params": [], "id": 1});
    serde_json::Value::Array(vec![one; 100_000]).to_string()
}
