//! Freeing large values off the block path.
//!
//! A connected block leaves behind tens of thousands of heap objects (the relays it ran,
//! its transactions' payloads); freeing them one by one takes a noticeable share of the
//! single-threaded part of block submission. [`drop_later`] hands them to one long-lived
//! thread that frees them while the next block executes.

use std::sync::mpsc::{channel, Sender};
use std::sync::OnceLock;

type Garbage = Box<dyn Send>;

static DROPPER: OnceLock<Option<Sender<Garbage>>> = OnceLock::new();

fn start() -> Option<Sender<Garbage>> {
    let (tx, rx) = channel::<Garbage>();
    std::thread::Builder::new()
        .name("dropper".into())
        .spawn(move || {
            while let Ok(g) = rx.recv() {
                drop(g);
            }
        })
        .ok()?;
    Some(tx)
}

/// Drops `v` on the dropper thread (here, if that thread cannot run).
pub(crate) fn drop_later<T: Send + 'static>(v: T) {
    let Some(tx) = DROPPER.get_or_init(start) else {
        return drop(v);
    };
    if let Err(back) = tx.send(Box::new(v)) {
        drop(back.0);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn values_are_dropped_on_another_thread() {
        let n = Arc::new(AtomicUsize::new(0));
        for _ in 0..100 {
            super::drop_later(vec![Counted(n.clone())]);
        }
        // The thread frees in order; wait for it (bounded, so a bug fails the test).
        for _ in 0..5000 {
            if n.load(Ordering::SeqCst) == 100 {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        panic!("only {} of 100 dropped", n.load(Ordering::SeqCst));
    }
}
