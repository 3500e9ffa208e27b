//! Admission of connections: at most so many in total and from one IP address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

struct Inner {
    max_total: usize,
    max_per_ip: usize,
    counts: Mutex<Counts>,
    refused: AtomicU64,
}

/// Counts open connections; [`ConnGate::admit`] hands out a [`Permit`] that gives its slot
/// back when dropped. Cheap to clone (shared counts).
#[derive(Clone)]
pub struct ConnGate(Arc<Inner>);

/// One admitted connection; dropping it frees the slot.
pub struct Permit {
    gate: ConnGate,
    ip: IpAddr,
}

impl ConnGate {
    /// A gate for `max_total` connections, `max_per_ip` from one address (0 = no limit).
    pub fn new(max_total: usize, max_per_ip: usize) -> ConnGate {
        let unlimited = |n: usize| if n == 0 { usize::MAX } else { n };
        ConnGate(Arc::new(Inner {
            max_total: unlimited(max_total),
            max_per_ip: unlimited(max_per_ip),
            counts: Mutex::new(Counts::default()),
            refused: AtomicU64::new(0),
        }))
    }

    /// Admits a connection from `ip`, or `None` when a limit is reached.
    pub fn admit(&self, ip: IpAddr) -> Option<Permit> {
        let mut c = self.0.counts.lock().unwrap_or_else(|e| e.into_inner());
        let from_ip = c.per_ip.get(&ip).copied().unwrap_or(0);
        if c.total >= self.0.max_total || from_ip >= self.0.max_per_ip {
            drop(c);
            self.0.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        c.total += 1;
        *c.per_ip.entry(ip).or_insert(0) += 1;
        Some(Permit {
            gate: self.clone(),
            ip,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.0
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .total
    }

    /// Connections refused since start.
    pub fn refused(&self) -> u64 {
        self.0.refused.load(Ordering::Relaxed)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut c = self.gate.0.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_total_and_per_ip_and_frees_on_drop() {
        let g = ConnGate::new(3, 2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let p1 = g.admit(a).unwrap();
        let _p2 = g.admit(a).unwrap();
        assert!(g.admit(a).is_none(), "third from one IP");
        let _p3 = g.admit(b).unwrap();
        assert!(g.admit(b).is_none(), "fourth in total");
        assert_eq!(g.refused(), 2);
        drop(p1);
        assert_eq!(g.open(), 2);
        assert!(g.admit(a).is_some(), "slot given back");
    }
}
