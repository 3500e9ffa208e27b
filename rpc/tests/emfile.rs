//! Issue 17 item 3: an accept loop survives descriptor exhaustion. Connections wait in the
//! listen backlog while the process may open no descriptor; once descriptors are available
//! again, every one of them is accepted (a loop that ended on the first error accepts none).
//! Alone in its test binary: it changes the process's descriptor limit.

#![cfg(target_os = "linux")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Sets the soft descriptor limit (`None`: unlimited) and returns the one it replaces.
fn set_soft_limit(n: Option<u64>) -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let l = getrlimit(Resource::Nofile);
    let new = Rlimit {
        current: n,
        maximum: l.maximum,
    };
    setrlimit(Resource::Nofile, new).unwrap();
    l.current
}

/// The lowest descriptor number a new file would get (`open` returns the lowest free one).
fn lowest_free_fd() -> u64 {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open("/dev/null").unwrap();
    f.as_raw_fd() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_loop_keeps_listening_through_emfile() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Clients connect before anyone accepts: the kernel queues them in the backlog.
    let clients: Vec<std::net::TcpStream> = (0..8)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    // No descriptor can be opened from here on.
    let old = set_soft_limit(Some(lowest_free_fd()));
    let accepted = Arc::new(AtomicUsize::new(0));
    let gate = rexe_rpc::ConnGate::new(0, 0);
    let n = accepted.clone();
    let task = tokio::spawn(rexe_rpc::accept_loop(
        "test",
        listener,
        gate,
        move |_sock, _peer, _permit| {
            n.fetch_add(1, Ordering::SeqCst);
            async {}
        },
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = accepted.load(Ordering::SeqCst);
    set_soft_limit(old);
    let t0 = Instant::now();
    while accepted.load(Ordering::SeqCst) < clients.len() && t0.elapsed() < Duration::from_secs(20)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(during, 0, "nothing can be accepted without descriptors");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        clients.len(),
        "the loop went on listening after EMFILE"
    );
    assert!(!task.is_finished());
    task.abort();
}
