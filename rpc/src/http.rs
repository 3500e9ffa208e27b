//! HTTP/1.1 serving of an axum router with the limits axum's own `serve` lacks: a connection
//! gate, a deadline for each request head (idle keep-alive and slowloris clients are
//! closed), a cap on header bytes, and a write-stall deadline (clients that do not read
//! their replies are dropped).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;

use crate::{accept_loop, ConnGate, Limits};

/// Largest request head (request line and headers) accepted.
pub const MAX_HEAD: usize = 16 * 1024;

/// Serves `router` on `listener` under `limits` until the future is dropped. Request bodies
/// are the router's to bound (read them with a size limit after checking auth).
pub async fn serve_http(
    name: &'static str,
    listener: TcpListener,
    router: axum::Router,
    limits: Limits,
) {
    let gate = ConnGate::new(limits.max_connections, limits.max_per_ip);
    serve_http_gated(name, listener, router, limits, gate).await
}

/// [`serve_http`] with a caller-owned gate (to read its counters).
pub async fn serve_http_gated(
    name: &'static str,
    listener: TcpListener,
    router: axum::Router,
    limits: Limits,
    gate: ConnGate,
) {
    accept_loop(name, listener, gate, move |sock, peer, permit| {
        let _ = sock.set_nodelay(true);
        let conn = serve_connection(sock, router.clone(), &limits);
        async move {
            if let Err(e) = conn.await {
                tracing::debug!(server = name, %peer, error = %e, "HTTP connection ended");
            }
            drop(permit);
        }
    })
    .await
}

/// Serves `router` over one HTTP/1.1 connection `io` under `limits`' header-read and
/// write-stall deadlines, until the client closes it or a deadline passes. The accept loop
/// runs it for each socket; the fuzz target runs it over in-memory streams.
pub fn serve_connection<IO>(
    io: IO,
    router: axum::Router,
    limits: &Limits,
) -> impl Future<Output = Result<(), hyper::Error>> + Send + 'static
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    connection(io, router, limits, false)
}

/// [`serve_connection`], optionally keeping half-closed connections (a client that closes
/// its side after its last request still reads every reply: the probe's clients do).
pub(crate) fn connection<IO>(
    io: IO,
    router: axum::Router,
    limits: &Limits,
    half_close: bool,
) -> impl Future<Output = Result<(), hyper::Error>> + Send + 'static
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = TowerToHyperService::new(router);
    let io = TokioIo::new(WriteDeadline::new(io, limits.write_timeout));
    hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout)
        .max_buf_size(MAX_HEAD.max(8192))
        .keep_alive(true)
        .half_close(half_close)
        .serve_connection(io, svc)
}

/// A stream whose writes fail with `TimedOut` when the peer takes nothing for `timeout`.
pub struct WriteDeadline<S> {
    inner: S,
    timeout: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> WriteDeadline<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, timeout: Duration) -> Self {
        WriteDeadline {
            inner,
            timeout,
            stalled: None,
        }
    }

    fn on_pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let timeout = self.timeout;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "peer does not read its replies (slow reader)",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Pending => self.on_pending(cx),
            r => {
                self.stalled = None;
                r
            }
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending => self.on_pending(cx),
            r => {
                self.stalled = None;
                r
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Pending => self.on_pending(cx),
            r => {
                self.stalled = None;
                r
            }
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A JSON-RPC reply as bitcoind frames it: the JSON text and a newline, with
/// `Content-Type: application/json` (clients such as ckpool read replies line by line).
pub fn json_line(
    status: axum::http::StatusCode,
    v: &serde_json::Value,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut body = v.to_string();
    body.push('\n');
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// Whether the request's `Authorization` header carries one of the `accepted`
/// `user:password` strings (see [`crate::basic_auth_ok`]).
pub fn authorized(headers: &axum::http::HeaderMap, accepted: &[&str]) -> bool {
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    crate::basic_auth_ok(given, accepted)
}

/// bitcoind's answer to missing or wrong credentials: 401 with a Basic challenge and an
/// empty body.
pub fn unauthorized() -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        axum::http::StatusCode::UNAUTHORIZED,
        [(
            axum::http::header::WWW_AUTHENTICATE,
            "Basic realm=\"jsonrpc\"",
        )],
        "",
    )
        .into_response()
}

/// Why a request body was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// Larger than the limit (413).
    TooLarge,
    /// Not received within the idle timeout (408).
    TooSlow,
    /// The connection ended or broke before the whole body arrived (400).
    Incomplete,
}

impl BodyError {
    /// The HTTP status that answers it.
    pub fn status(self) -> axum::http::StatusCode {
        match self {
            BodyError::TooLarge => axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::TooSlow => axum::http::StatusCode::REQUEST_TIMEOUT,
            BodyError::Incomplete => axum::http::StatusCode::BAD_REQUEST,
        }
    }
}

/// Reads a request body of at most `limits.max_request` bytes within
/// `limits.idle_timeout` (call it after checking credentials).
pub async fn read_body(
    body: axum::body::Body,
    limits: &Limits,
) -> Result<axum::body::Bytes, BodyError> {
    match tokio::time::timeout(
        limits.idle_timeout,
        axum::body::to_bytes(body, limits.max_request),
    )
    .await
    {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(e)) => {
            let inner = e.into_inner();
            if inner.is::<http_body_util::LengthLimitError>() {
                Err(BodyError::TooLarge)
            } else {
                Err(BodyError::Incomplete)
            }
        }
        Err(_) => Err(BodyError::TooSlow),
    }
}

/// Why a JSON-RPC request over HTTP was refused before any method ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Missing or wrong credentials: answer [`unauthorized`] (the body is never read).
    Unauthorized,
    /// The body could not be read.
    Body(BodyError),
    /// The body is not JSON, or a batch over the limit.
    Json(crate::jsonrpc::BodyError),
}

/// The JSON-RPC servers' front door, in the order that keeps an unauthenticated client
/// from costing memory: credentials from the request head first, then a body bounded by
/// `limits` (size and time), then its JSON-RPC requests (batch bounded by
/// `limits.max_batch`).
pub async fn read_jsonrpc(
    headers: &axum::http::HeaderMap,
    body: axum::body::Body,
    accepted: &[&str],
    limits: &Limits,
) -> Result<crate::jsonrpc::Body, Refusal> {
    if !authorized(headers, accepted) {
        return Err(Refusal::Unauthorized);
    }
    let bytes = read_body(body, limits).await.map_err(Refusal::Body)?;
    crate::jsonrpc::parse_body(&bytes, limits.max_batch).map_err(Refusal::Json)
}
