//! A fixed set of worker threads for work a server does on behalf of its clients, so that
//! a flood of such work takes at most those threads and leaves the rest of the process (the
//! bitcoind RPC that miners and the L2 wait on, in the same process as the Electrum server)
//! its cores. tokio's blocking pool is shared by every service and grows on demand, so it
//! cannot bound one service's share.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of worker threads running jobs in the order they are submitted.
#[derive(Clone)]
pub struct Workers {
    tx: mpsc::Sender<Job>,
}

impl Workers {
    /// Starts `threads` (at least one) workers named `name`. Workers end when every clone of
    /// the returned handle is dropped.
    pub fn start(name: &str, threads: usize) -> std::io::Result<Workers> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || loop {
                    let job = {
                        let rx = rx.lock().unwrap_or_else(|e| e.into_inner());
                        rx.recv()
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
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
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = done.send(r);
        });
        self.tx
            .send(job)
            .map_err(|_| std::io::Error::other("workers stopped"))?;
        match result.await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err(std::io::Error::other("request failed (worker panicked)")),
            Err(_) => Err(std::io::Error::other("workers stopped")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
