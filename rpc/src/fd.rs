//! The process's file-descriptor limit: raised to the hard limit at start, with a warning
//! when it stays low (each connection takes one).

/// Below this many descriptors a warning is logged.
pub const LOW_FD_LIMIT: u64 = 4096;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit where allowed, logs a warning when the
/// result is still below [`LOW_FD_LIMIT`], and returns the soft limit now in force.
#[cfg(unix)]
pub fn raise_fd_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    // rustix says `None` for RLIM_INFINITY.
    let finite = |v: Option<u64>| v.unwrap_or(u64::MAX);
    let lim = getrlimit(Resource::Nofile);
    // macOS refuses more than OPEN_MAX for the soft limit.
    let want = if cfg!(target_os = "macos") {
        Some(finite(lim.maximum).min(10_240))
    } else {
        lim.maximum
    };
    let mut soft = finite(lim.current);
    if soft < finite(want) {
        let raised = Rlimit {
            current: want,
            maximum: lim.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            soft = finite(want);
        }
    }
    if soft < LOW_FD_LIMIT {
        tracing::warn!(
            limit = soft,
            "file-descriptor limit is low (each client connection takes one); raise it with `ulimit -n`"
        );
    }
    Some(soft)
}

/// Not available on this platform.
#[cfg(not(unix))]
pub fn raise_fd_limit() -> Option<u64> {
    None
}
