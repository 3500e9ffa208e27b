//! The process's file-descriptor limit: raised to the hard limit at start, with a warning
//! when it stays low (each connection takes one).

/// Below this many descriptors a warning is logged.
pub const LOW_FD_LIMIT: u64 = 4096;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit where allowed, logs a warning when the
/// result is still below [`LOW_FD_LIMIT`], and returns the soft limit now in force.
#[cfg(unix)]
pub fn raise_fd_limit() -> Option<u64> {
    // SAFETY: getrlimit/setrlimit only read/write the struct passed by pointer.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        // macOS refuses more than OPEN_MAX for the soft limit.
        let want = if cfg!(target_os = "macos") {
            lim.rlim_max.min(10_240)
        } else {
            lim.rlim_max
        };
        if lim.rlim_cur < want {
            let raised = libc::rlimit {
                rlim_cur: want,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = want;
            }
        }
        #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
        let soft = lim.rlim_cur as u64;
        if soft < LOW_FD_LIMIT {
            tracing::warn!(
                limit = soft,
                "file-descriptor limit is low (each client connection takes one); raise it with `ulimit -n`"
            );
        }
        Some(soft)
    }
}

/// Not available on this platform.
#[cfg(not(unix))]
pub fn raise_fd_limit() -> Option<u64> {
    None
}
