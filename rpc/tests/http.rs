//! `serve_http`: a client that never reads a large reply is dropped after the write timeout
//! (its connection slot comes back), and others are served meanwhile.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use axum::routing::get;

fn request(addr: std::net::SocketAddr, path: &str) -> std::net::TcpStream {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_readers_are_dropped_and_others_served() {
    let router = axum::Router::new()
        .route("/big", get(|| async { vec![b'x'; 64 * 1024 * 1024] }))
        .route("/small", get(|| async { "ok" }));
    let limits = rexe_rpc::Limits {
        write_timeout: Duration::from_secs(1),
        ..rexe_rpc::Limits::http()
    };
    let gate = rexe_rpc::ConnGate::new(limits.max_connections, limits.max_per_ip);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(rexe_rpc::http::serve_http_gated(
        "test",
        listener,
        router,
        limits,
        gate.clone(),
    ));
    let slow = tokio::task::spawn_blocking(move || request(addr, "/big"));
    let slow = slow.await.unwrap();
    // Another client is served while the slow one sits on its reply.
    let body = tokio::task::spawn_blocking(move || {
        let mut s = request(addr, "/small");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).to_string()
    })
    .await
    .unwrap();
    assert!(body.ends_with("ok"), "{body}");
    // The slow reader's connection is dropped: the gate shows no open connection.
    let t0 = Instant::now();
    while gate.open() > 0 && t0.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(gate.open(), 0, "slow reader still connected");
    drop(slow);
}
