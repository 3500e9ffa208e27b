//! The JSON-RPC servers' HTTP layer driven by arbitrary bytes, for the `http_rpc` fuzz
//! target and its proptest twin (`rpc/tests/http_props.rs`): hyper's HTTP/1.1 connection
//! with [`crate::http::serve_connection`]'s settings (and half-closed connections kept, so
//! a client may close its side and still read), under a small [`Limits`], in front of a
//! handler that goes through [`crate::http::read_jsonrpc`] exactly as the L2 node's and the
//! regtest node's handlers do. [`Exchange::check`] states what must hold whatever the bytes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::http::{read_jsonrpc, Refusal};
use crate::jsonrpc::{Body as RpcBody, BodyError as JsonError};
use crate::Limits;

/// The one credential the probed server accepts.
pub const USER_PASS: &str = "user:pass";
/// `USER_PASS` as it appears in an `Authorization: Basic` header.
pub const USER_PASS_B64: &str = "dXNlcjpwYXNz";

/// The probed server's limits: small, so that inputs of a few KiB reach every bound.
pub fn limits() -> Limits {
    Limits {
        max_connections: 1,
        max_per_ip: 1,
        idle_timeout: Duration::from_secs(5),
        write_timeout: Duration::from_secs(5),
        max_request: 1024,
        max_batch: 4,
    }
}

/// What the handler saw of one request that passed authentication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admitted {
    /// A parsed body: requests in it.
    Requests(usize),
    /// Refused after authentication.
    Refused(Refusal),
}

/// One connection's worth of input and what came back.
#[derive(Debug)]
pub struct Exchange {
    /// The bytes the client sent (then it closed its side).
    pub input: Vec<u8>,
    /// Everything the server wrote.
    pub output: Vec<u8>,
    /// Authenticated requests as the handler saw them, in order.
    pub admitted: Vec<Admitted>,
    /// Requests refused for their credentials.
    pub unauthorized: usize,
}

type Seen = Arc<Mutex<(Vec<Admitted>, usize)>>;

async fn handle(State(seen): State<Seen>, headers: HeaderMap, body: Body) -> Response {
    let limits = limits();
    let out = read_jsonrpc(&headers, body, &[USER_PASS], &limits).await;
    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    // Replies are fixed texts, so a status line found in the output is one the server sent.
    match out {
        Ok(RpcBody::Single(_)) => {
            seen.0.push(Admitted::Requests(1));
            (StatusCode::OK, "{\"requests\":1}\n").into_response()
        }
        Ok(RpcBody::Batch(reqs)) => {
            seen.0.push(Admitted::Requests(reqs.len()));
            (StatusCode::OK, "{\"requests\":\"batch\"}\n").into_response()
        }
        Err(Refusal::Unauthorized) => {
            seen.1 += 1;
            crate::http::unauthorized()
        }
        Err(r) => {
            let status = match &r {
                Refusal::Body(e) => e.status(),
                Refusal::Json(JsonError::Parse(_)) => StatusCode::INTERNAL_SERVER_ERROR,
                Refusal::Json(JsonError::BatchTooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
                Refusal::Unauthorized => StatusCode::UNAUTHORIZED,
            };
            seen.0.push(Admitted::Refused(r));
            status.into_response()
        }
    }
}

/// A current-thread runtime to run exchanges on (one per fuzzing process).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Sends `input` on one fresh connection, closes the client's write side and collects the
/// server's output until it closes. Panics if the server neither answers nor closes within
/// 20 s (a hang is a finding).
pub fn exchange(rt: &tokio::runtime::Runtime, input: &[u8]) -> Exchange {
    let seen: Seen = Arc::default();
    let router = axum::Router::new()
        .route("/", axum::routing::post(handle))
        .with_state(seen.clone());
    let output = rt.block_on(async {
        let (client, server) = tokio::io::duplex(64 * 1024);
        // As `serve_connection`, with half-closed connections kept: the client closes its
        // side after its last byte and still reads every reply.
        let served = tokio::spawn(crate::http::connection(server, router, &limits(), true));
        let (mut rd, mut wr) = tokio::io::split(client);
        let bytes = input.to_vec();
        let writer = tokio::spawn(async move {
            // The server may close first (a bad head): a failed write is not a finding.
            let _ = wr.write_all(&bytes).await;
            let _ = wr.shutdown().await;
            wr
        });
        let mut output = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(20), rd.read_to_end(&mut output));
        match read.await {
            Ok(_) => {}
            Err(_) => panic!("the server neither answered nor closed within 20 s"),
        }
        drop(writer.await);
        let _ = served.await;
        output
    });
    let (admitted, unauthorized) = std::mem::take(&mut *seen.lock().unwrap());
    Exchange {
        input: input.to_vec(),
        output,
        admitted,
        unauthorized,
    }
}

/// Status codes of the responses in `output`, in order (every reply body is a fixed text
/// without status lines, so each `HTTP/1.x NNN` at a line start is a response; hyper
/// answers an HTTP/1.0 request in HTTP/1.0).
pub fn statuses(output: &[u8]) -> Vec<u16> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = find(&output[at..], b"HTTP/1.") {
        let start = at + i;
        let version_ok = matches!(output.get(start + 7..start + 9), Some(b"0 " | b"1 "));
        if version_ok && (start == 0 || output[start - 1] == b'\n') {
            let code = output.get(start + 9..start + 12).unwrap_or(b"");
            let code = std::str::from_utf8(code)
                .ok()
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            out.push(code);
        }
        at = start + 7;
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl Exchange {
    /// What holds whatever the input:
    /// - the server speaks HTTP/1: its output, when there is any, starts with a status
    ///   line, and every status is a valid code;
    /// - nothing is answered 200 without the credential in the input, and no more requests
    ///   are admitted than the input carries credentials;
    /// - every admitted body was within the limits: a parsed batch is at most
    ///   `max_batch` long.
    pub fn check(&self) {
        let statuses = statuses(&self.output);
        if !self.output.is_empty() {
            assert!(
                self.output.starts_with(b"HTTP/1.1 ") || self.output.starts_with(b"HTTP/1.0 "),
                "output does not start with a status line: {:?}",
                String::from_utf8_lossy(&self.output[..self.output.len().min(64)])
            );
        }
        for s in &statuses {
            assert!((100..600).contains(s), "bad status {s}");
        }
        let credentials = self
            .input
            .windows(USER_PASS_B64.len())
            .filter(|w| *w == USER_PASS_B64.as_bytes())
            .count();
        let ok = statuses.iter().filter(|s| **s == 200).count();
        assert!(
            ok <= credentials,
            "{ok} answers of 200 for {credentials} credentials in the input"
        );
        assert!(
            self.admitted.len() <= credentials,
            "{} requests admitted for {credentials} credentials in the input",
            self.admitted.len()
        );
        let limits = limits();
        for a in &self.admitted {
            if let Admitted::Requests(n) = a {
                assert!(*n <= limits.max_batch, "a batch of {n} admitted");
            }
        }
        // Every authenticated request the handler answered is among the replies.
        let answered = self.admitted.len() + self.unauthorized;
        assert!(
            answered <= statuses.iter().filter(|s| **s >= 200).count(),
            "{answered} requests handled, {} final replies",
            statuses.len()
        );
    }
}
