//! An accept loop that survives: errors (descriptor exhaustion, aborted handshakes) are
//! logged and backed off from, never the end of the listener.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};

use crate::gate::{ConnGate, Permit};

/// Longest pause after repeated accept errors.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// At most one warning per this interval for refused connections / accept errors.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Accepts connections on `listener` forever, admitting each through `gate` and spawning
/// `handle(stream, peer, permit)` for it. Connections over a limit are closed at once; accept
/// errors (e.g. `EMFILE`) are logged and retried with a growing pause (up to 1 s). Ends
/// only when the future is dropped (stop it with `tokio::select!`).
pub async fn accept_loop<F, Fut>(
    name: &'static str,
    listener: TcpListener,
    gate: ConnGate,
    mut handle: F,
) where
    F: FnMut(TcpStream, SocketAddr, Permit) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut backoff = Duration::from_millis(5);
    let mut last_warn: Option<Instant> = None;
    let mut warn = |msg: &dyn Fn()| {
        if last_warn.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
            last_warn = Some(Instant::now());
            msg();
        }
    };
    loop {
        match listener.accept().await {
            Ok((sock, peer)) => {
                backoff = Duration::from_millis(5);
                match gate.admit(peer.ip()) {
                    Some(permit) => {
                        tokio::spawn(handle(sock, peer, permit));
                    }
                    None => {
                        drop(sock);
                        warn(&|| {
                            tracing::warn!(
                                server = name,
                                %peer,
                                open = gate.open(),
                                refused_total = gate.refused(),
                                "connection limit reached; refusing connections"
                            )
                        });
                    }
                }
            }
            Err(e) => {
                warn(
                    &|| tracing::error!(server = name, error = %e, "accept failed; still listening (raise the file-descriptor limit if this is EMFILE)"),
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
