//! A fixed set of worker threads for work a server does on behalf of its clients, so that
//! a flood of such work takes at most those threads and leaves the rest of the process (the
//! bitcoind RPC that miners and the L2 wait on, in the same process as the Electrum server)
//! its cores. tokio's blocking pool is shared by every service and grows on demand, so it
//! cannot bound one service's share.
//!
//! Bounding the threads is not enough on a busy machine: a worker that is always runnable
//! holds its core for a whole scheduler slice (milliseconds) before a thread that just woke
//! (an RPC call arriving) gets it. Workers started [`Priority::Background`] run under Linux's
//! `SCHED_IDLE` policy, which the scheduler preempts as soon as any ordinary thread wakes on
//! that core: they take the CPU time nobody else wants, and all of it when nobody does.
//! [`Priority::Low`] is the middle way: a nice value of +10, preempted by waking ordinary
//! threads too, but still given about a tenth of a contended core, so never starved.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of worker threads running jobs in the order they are submitted.
#[derive(Clone)]
pub struct Workers {
    tx: mpsc::Sender<Job>,
}

/// How the scheduler treats a set of workers' threads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Priority {
    /// As every other thread of the process.
    #[default]
    Normal,
    /// A nice value of [`LOW_NICE`] more than the process's: ordinary threads waking on the
    /// core preempt it, and against a busy ordinary thread it gets about a tenth of the core
    /// (the scheduler's weights 110 and 1024), so it is slowed but never starved. Elsewhere
    /// the same as [`Priority::Normal`], with a warning.
    Low,
    /// Only the CPU time no ordinary thread wants: Linux's `SCHED_IDLE`, preempted at once
    /// by any ordinary thread waking on the core. Elsewhere (or where Linux refuses it) the
    /// same as [`Priority::Normal`], with a warning.
    Background,
}

/// How much nicer [`Priority::Low`] threads are than the process.
pub const LOW_NICE: i32 = 10;

impl Priority {
    /// Puts the calling thread at this priority ([`Priority::Normal`] leaves it as it is).
    pub fn apply(self) -> std::io::Result<()> {
        match self {
            Priority::Normal => Ok(()),
            Priority::Low => nicer(LOW_NICE),
            Priority::Background => to_background(),
        }
    }
}

impl std::str::FromStr for Priority {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "normal" => Ok(Priority::Normal),
            "low" => Ok(Priority::Low),
            "background" => Ok(Priority::Background),
            _ => Err(format!(
                "`{s}` is not a priority: normal, low or background"
            )),
        }
    }
}

impl std::fmt::Display for Priority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Priority::Normal => "normal",
            Priority::Low => "low",
            Priority::Background => "background",
        })
    }
}

/// Puts the calling thread in the background ([`Priority::Background`]); an error where the
/// system has no such class or refuses it.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn to_background() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param that outlives the call; pid 0 names the calling
    // thread, and SCHED_IDLE needs no privilege (it only lowers the thread's priority).
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Raises the calling thread's nice value by `by` (at most to 19); an error where the
/// system refuses it.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn nicer(by: i32) -> std::io::Result<()> {
    // SAFETY: integer arguments only. On Linux, PRIO_PROCESS with `who` 0 names the calling
    // thread (each thread has its own nice value), and raising it needs no privilege.
    // getpriority may return -1 as a value, so errno is cleared first and read after.
    let rc = unsafe {
        *libc::__errno_location() = 0;
        let now = libc::getpriority(libc::PRIO_PROCESS, 0);
        if now == -1 && *libc::__errno_location() != 0 {
            -1
        } else {
            libc::setpriority(libc::PRIO_PROCESS, 0, (now + by).min(19))
        }
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Raises the calling thread's nice value: not available on this system.
#[cfg(not(target_os = "linux"))]
pub fn nicer(_by: i32) -> std::io::Result<()> {
    Err(std::io::Error::other("no per-thread nice values here"))
}

/// Puts the calling thread in the background: not available on this system.
#[cfg(not(target_os = "linux"))]
pub fn to_background() -> std::io::Result<()> {
    Err(std::io::Error::other("no background scheduling class here"))
}

impl Workers {
    /// Starts `threads` (at least one) workers named `name`. Workers end when every clone of
    /// the returned handle is dropped.
    pub fn start(name: &str, threads: usize) -> std::io::Result<Workers> {
        Workers::start_with(name, threads, Priority::Normal)
    }

    /// [`Workers::start`] with the threads at `priority`.
    pub fn start_with(name: &str, threads: usize, priority: Priority) -> std::io::Result<Workers> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let first = i == 0;
            let name2 = name.to_string();
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    if let Err(e) = priority.apply() {
                        if first {
                            tracing::warn!(workers = %name2, %priority, error = %e,
                                "cannot lower the workers' priority; they keep normal priority");
                        }
                    }
                    loop {
                        let job = {
                            let rx = rx.lock().unwrap_or_else(|e| e.into_inner());
                            rx.recv()
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })?;
        }
        Ok(Workers { tx })
    }

    /// Runs `f` on a worker and waits for its result without blocking the async thread.
    /// A panic in `f` is returned as an error (the worker survives it).
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::io::Result<T> {
        self.spawn(f).await
    }

    /// Queues `f` for a worker at once (not when the result is first awaited, as
    /// [`Workers::run`] does), so that several jobs run side by side; the future gives its
    /// result, or an error if it panicked.
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> impl std::future::Future<Output = std::io::Result<T>> + Send + 'static {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = done.send(r);
        });
        let sent = self.tx.send(job).is_ok();
        async move {
            if !sent {
                return Err(std::io::Error::other("workers stopped"));
            }
            match result.await {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(_)) => Err(std::io::Error::other("request failed (worker panicked)")),
                Err(_) => Err(std::io::Error::other("workers stopped")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn spawned_jobs_run_side_by_side() {
        let w = Workers::start("test-spawn", 2).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let rx = Arc::new(Mutex::new(rx));
        // The first job waits for the second: with `run`, awaited one after the other, it
        // would wait forever.
        let rx2 = rx.clone();
        let first = w.spawn(move || rx2.lock().unwrap().recv().unwrap());
        let second = w.spawn(move || tx.send(7).unwrap());
        second.await.unwrap();
        assert_eq!(first.await.unwrap(), 7);
    }

    #[tokio::test]
    async fn runs_jobs_and_survives_panics() {
        let w = Workers::start("test", 2).unwrap();
        assert_eq!(w.run(|| 2 + 2).await.unwrap(), 4);
        assert!(w.run(|| panic!("boom")).await.is_err());
        let rs: Vec<_> = (0..16u64).map(|i| w.run(move || i * i)).collect();
        for (i, r) in rs.into_iter().enumerate() {
            assert_eq!(r.await.unwrap(), (i * i) as u64);
        }
    }

    /// Field `n` (counted from 1) of the calling thread's `/proc` stat line.
    #[cfg(target_os = "linux")]
    fn stat_field<T: std::str::FromStr>(n: usize) -> T {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // Fields from the third (state) on, after the command name in parentheses.
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        let field = after_name.split(' ').nth(n - 3).unwrap();
        field
            .parse()
            .unwrap_or_else(|_| panic!("field {n}: {field}"))
    }

    /// The scheduling policy of the calling thread (field 41; 5 is SCHED_IDLE).
    #[cfg(target_os = "linux")]
    fn policy() -> u32 {
        stat_field(41)
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn background_workers_run_under_sched_idle_and_normal_ones_do_not() {
        let bg = Workers::start_with("bg", 2, Priority::Background).unwrap();
        let normal = Workers::start("normal", 1).unwrap();
        assert_eq!(bg.run(policy).await.unwrap(), libc::SCHED_IDLE as u32);
        assert_eq!(normal.run(policy).await.unwrap(), libc::SCHED_OTHER as u32);
        assert_eq!(
            policy(),
            libc::SCHED_OTHER as u32,
            "the caller is untouched"
        );
    }

    /// The nice value of the calling thread (field 19).
    #[cfg(target_os = "linux")]
    fn nice() -> i32 {
        stat_field(19)
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn low_workers_are_nicer_by_ten_and_stay_in_the_ordinary_class() {
        let low = Workers::start_with("low", 2, Priority::Low).unwrap();
        let base = nice();
        let (n, p) = low.run(|| (nice(), policy())).await.unwrap();
        assert_eq!(n, (base + LOW_NICE).min(19));
        assert_eq!(p, libc::SCHED_OTHER as u32);
        assert_eq!(nice(), base, "the caller is untouched");
    }

    #[test]
    fn priorities_parse_and_print() {
        for p in [Priority::Normal, Priority::Low, Priority::Background] {
            assert_eq!(p.to_string().parse::<Priority>(), Ok(p));
        }
        assert!("idle"
            .parse::<Priority>()
            .unwrap_err()
            .contains("normal, low or background"));
    }
}
