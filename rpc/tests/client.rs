//! The JSON-RPC client against scripted servers: chunked and sized replies, Core's error
//! statuses, refused credentials, error `data`, typed results, keep-alive reuse, servers
//! that close after each answer, never answer, or drip their answer (timeouts).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rexe_rpc::{RpcClient, RpcError};
use serde_json::{json, Value};

/// What a scripted server saw of one request.
#[derive(Debug, Default)]
struct Seen {
    path: String,
    authorization: Option<String>,
    body: String,
}

/// Reads one request (head and `Content-Length` body); `None` at end of stream.
fn read_request(r: &mut BufReader<TcpStream>) -> Option<Seen> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut len = 0;
    let mut authorization = None;
    loop {
        line.clear();
        r.read_line(&mut line).ok()?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':')?;
        match k.to_ascii_lowercase().as_str() {
            "content-length" => len = v.trim().parse().ok()?,
            "authorization" => authorization = Some(v.trim().to_string()),
            _ => {}
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Seen {
        path,
        authorization,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// A server answering every request on every connection with `reply(seen)` (raw bytes
/// after the request); counts connections.
fn serve(reply: impl Fn(&Seen) -> Vec<u8> + Send + Sync + 'static) -> (String, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let conns = Arc::new(AtomicUsize::new(0));
    let (reply, counter) = (Arc::new(reply), conns.clone());
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            counter.fetch_add(1, Ordering::SeqCst);
            let reply = reply.clone();
            std::thread::spawn(move || {
                let mut w = s.try_clone().unwrap();
                let mut r = BufReader::new(s);
                while let Some(seen) = read_request(&mut r) {
                    if w.write_all(&reply(&seen)).is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, conns)
}

fn sized(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn chunked(body: &str) -> Vec<u8> {
    let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for piece in body.as_bytes().chunks(7) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[test]
fn sized_and_chunked_replies_read_the_same() {
    let answer = r#"{"result":{"height":7,"hash":"00ab"},"error":null,"id":"rexe"}"#;
    let (a, _) = serve(move |_| sized("200 OK", answer));
    let (b, _) = serve(move |_| chunked(answer));
    for addr in [a, b] {
        let c = RpcClient::new(addr, "u:p");
        assert_eq!(
            c.call("getpeginfo", json!([])).unwrap(),
            json!({"height": 7, "hash": "00ab"})
        );
    }
}

#[test]
fn requests_carry_the_credentials_the_method_and_the_path() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let (addr, _) = serve(move |s| {
        log.lock().unwrap().push((
            s.path.clone(),
            s.authorization.clone(),
            serde_json::from_str::<Value>(&s.body).unwrap(),
        ));
        sized("200 OK", r#"{"result":null,"error":null,"id":"rexe"}"#)
    });
    let c = RpcClient::new(addr, "user:pass");
    c.call("getblockcount", json!([1, "x"])).unwrap();
    c.post("/wallet/alice", b"{}", Some("Basic other")).unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].0, "/");
    assert_eq!(seen[0].1.as_deref(), Some("Basic dXNlcjpwYXNz"));
    assert_eq!(seen[0].2["method"], "getblockcount");
    assert_eq!(seen[0].2["params"], json!([1, "x"]));
    assert_eq!(seen[0].2["jsonrpc"], "1.0");
    assert_eq!(seen[1].0, "/wallet/alice");
    assert_eq!(seen[1].1.as_deref(), Some("Basic other"));
}

#[test]
fn core_error_statuses_keep_code_message_and_data() {
    // Core answers errors with HTTP 500 (404 for unknown methods) and a JSON-RPC body.
    let (addr, _) = serve(|s| {
        let v: Value = serde_json::from_str(&s.body).unwrap();
        match v["method"].as_str().unwrap() {
            "getpegmatch" => sized(
                "500 Internal Server Error",
                r#"{"result":null,"error":{"code":-5,"message":"no match 9"},"id":"rexe"}"#,
            ),
            "sendrawtransaction" => sized(
                "500 Internal Server Error",
                r#"{"result":null,"error":{"code":-26,"message":"bond too small","data":{"kind":"insufficient-funds","reason":"bond"}},"id":"rexe"}"#,
            ),
            _ => sized(
                "404 Not Found",
                r#"{"result":null,"error":{"code":-32601,"message":"Method not found"},"id":"rexe"}"#,
            ),
        }
    });
    let c = RpcClient::new(addr, "u:p");
    let e = c.call("getpegmatch", json!([9])).unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert!(!e.is_transport());
    let e = c.call("sendrawtransaction", json!(["00"])).unwrap_err();
    assert_eq!(e.code(), Some(-26));
    assert_eq!(e.refusal(), Some(("insufficient-funds", Some("bond"))));
    let e = c.call("nosuchmethod", json!([])).unwrap_err();
    assert_eq!(e.code(), Some(-32601));
    assert!(e.refusal().is_none());
}

#[test]
fn refused_credentials_and_non_json_answers_are_errors_not_panics() {
    let (addr, _) = serve(|s| {
        match s.authorization.as_deref() {
        Some("Basic Z29vZDpw") => sized("200 OK", "<html>not json</html>"),
        _ => b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"jsonrpc\"\r\nContent-Length: 0\r\n\r\n".to_vec(),
    }
    });
    let e = RpcClient::new(addr.clone(), "bad:p")
        .call("getblockcount", json!([]))
        .unwrap_err();
    assert_eq!(e.code(), Some(401), "{e}");
    let e = RpcClient::new(addr.clone(), "good:p")
        .call("getblockcount", json!([]))
        .unwrap_err();
    assert!(matches!(e, RpcError::Malformed(_)), "{e}");
    // A JSON answer with neither result nor error is not an answer either.
    let (addr, _) = serve(|_| sized("200 OK", r#"{"id":"rexe"}"#));
    let e = RpcClient::new(addr, "u:p")
        .call("getblockcount", json!([]))
        .unwrap_err();
    assert!(matches!(e, RpcError::Malformed(_)), "{e}");
}

#[test]
fn typed_results_and_shape_mismatches() {
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Tip {
        height: u32,
        hash: String,
    }
    let (addr, _) = serve(|s| {
        if s.body.contains("good") {
            sized(
                "200 OK",
                r#"{"result":{"height":7,"hash":"00ab"},"error":null,"id":"rexe"}"#,
            )
        } else {
            sized(
                "200 OK",
                r#"{"result":{"height":"seven"},"error":null,"id":"rexe"}"#,
            )
        }
    });
    let c = RpcClient::new(addr, "u:p");
    let tip: Tip = c.call_as("good", json!([])).unwrap();
    assert_eq!(
        tip,
        Tip {
            height: 7,
            hash: "00ab".into()
        }
    );
    let e = c.call_as::<Tip>("bad", json!([])).unwrap_err();
    assert!(
        matches!(e, RpcError::Malformed(ref m) if m.contains("bad")),
        "{e}"
    );
}

#[test]
fn calls_reuse_one_keep_alive_connection() {
    let (addr, conns) = serve(|_| sized("200 OK", r#"{"result":1,"error":null,"id":"rexe"}"#));
    let c = RpcClient::new(addr, "u:p");
    for _ in 0..20 {
        assert_eq!(c.call("getblockcount", json!([])).unwrap(), json!(1));
    }
    // Clones share the pool too.
    c.clone().call("getblockcount", json!([])).unwrap();
    assert_eq!(conns.load(Ordering::SeqCst), 1);
}

#[test]
fn a_server_that_closes_after_each_answer_is_followed() {
    // `Connection: close` answers (rexe's probes, old servers): each call reconnects.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut w = s.try_clone().unwrap();
            let mut r = BufReader::new(s);
            if read_request(&mut r).is_some() {
                let body = r#"{"result":2,"error":null,"id":"rexe"}"#;
                let _ = write!(
                    w,
                    "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
            }
        }
    });
    let c = RpcClient::new(addr, "u:p");
    for _ in 0..5 {
        assert_eq!(c.call("getblockcount", json!([])).unwrap(), json!(2));
    }
}

#[test]
fn silent_and_dripping_servers_time_out() {
    // Accepts and never answers.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            held.push(s);
        }
    });
    let c = RpcClient::new(addr, "u:p").with_timeout(Duration::from_millis(300));
    let t = Instant::now();
    let e = c.call("getblockcount", json!([])).unwrap_err();
    assert!(e.is_transport(), "{e}");
    assert!(t.elapsed() < Duration::from_secs(10));

    // Sends its answer one byte a time, forever.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut w = s.try_clone().unwrap();
                let mut r = BufReader::new(s);
                read_request(&mut r);
                let _ = w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n");
                while w.write_all(b" ").is_ok() {
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
        }
    });
    let c = RpcClient::new(addr, "u:p").with_timeout(Duration::from_millis(300));
    let t = Instant::now();
    let e = c.call("getblockcount", json!([])).unwrap_err();
    assert!(e.is_transport(), "{e}");
    assert!(t.elapsed() < Duration::from_secs(10));
}

#[test]
fn nothing_listening_is_a_transport_error() {
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let e = RpcClient::new(addr.clone(), "u:p")
        .call("getblockcount", json!([]))
        .unwrap_err();
    assert!(e.is_transport(), "{e}");
    assert!(e.to_string().contains(&addr), "{e}");
}

#[test]
fn credentials_never_show_in_debug_output() {
    let c = RpcClient::new("127.0.0.1:1", "user:secretpassword");
    let d = format!("{c:?}");
    assert!(
        !d.contains("secret") && !d.contains("dXNlcjpzZWNyZXRwYXNzd29yZA"),
        "{d}"
    );
}
