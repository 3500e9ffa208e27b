//! A small Stratum v1 CPU miner (`rexe miner cpu`): subscribes, authorizes, follows
//! `mining.notify`/`mining.set_difficulty`, grinds nonces on `threads` threads and submits
//! every share that meets the share target.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bitcoin::hex::DisplayHex;
use serde_json::{json, Value};

use super::job::{share_target, Job};
use super::protocol::{ServerMessage, SubscribeResult};

/// What the miner achieved.
#[derive(Debug, Default, Clone, Copy)]
pub struct MinerReport {
    /// Shares the server accepted.
    pub accepted: u64,
    /// Shares it rejected.
    pub rejected: u64,
    /// Hashes computed.
    pub hashes: u64,
}

#[derive(Clone)]
struct Work {
    /// The job, reassembled as the server does ([`Job::from_notify`]).
    job: Job,
    seq: u64,
}

/// How the CPU miner runs.
#[derive(Debug, Clone)]
pub struct CpuOptions {
    /// Mining threads.
    pub threads: usize,
    /// Stop once this many shares were accepted.
    pub stop_after: u64,
    /// Stop after this long.
    pub timeout: Duration,
    /// Rest this long after each share found (a slow, steady share rate for the devnet).
    pub pace: Duration,
    /// Stops the miner when set (also set by the miner when the connection closes).
    pub stop: Arc<AtomicBool>,
    /// Submit shares meeting this difficulty when the server asks for more. A regtest aid:
    /// pools such as ckpool check every submission for a block before judging its
    /// difficulty, so a CPU finds regtest blocks through a pool whose least share
    /// difficulty is 1 (the pool rejects those shares as above target).
    pub share_difficulty: Option<f64>,
}

/// Mines on `addr` until `stop_after` shares are accepted or `timeout` passes.
pub fn run(
    addr: &str,
    user: &str,
    pass: &str,
    threads: usize,
    stop_after: u64,
    timeout: Duration,
) -> std::io::Result<MinerReport> {
    run_with(
        addr,
        user,
        pass,
        &CpuOptions {
            threads,
            stop_after,
            timeout,
            pace: Duration::ZERO,
            stop: Arc::new(AtomicBool::new(false)),
            share_difficulty: None,
        },
    )
}

/// Mines on `addr` as `opts` says.
pub fn run_with(
    addr: &str,
    user: &str,
    pass: &str,
    opts: &CpuOptions,
) -> std::io::Result<MinerReport> {
    let (threads, stop_after, timeout, pace, share_difficulty) = (
        opts.threads,
        opts.stop_after,
        opts.timeout,
        opts.pace,
        opts.share_difficulty,
    );
    let stream = TcpStream::connect(addr)?;
    let mut writer = stream.try_clone()?;
    let reader = BufReader::new(stream);
    let send = |w: &mut TcpStream, v: Value| -> std::io::Result<()> {
        let mut s = v.to_string();
        s.push('\n');
        w.write_all(s.as_bytes())
    };
    send(
        &mut writer,
        json!({"id": 1, "method": "mining.subscribe", "params": ["rexe-cpu/0.1"]}),
    )?;
    send(
        &mut writer,
        json!({"id": 2, "method": "mining.authorize", "params": [user, pass]}),
    )?;
    let work: Arc<Mutex<Option<Work>>> = Arc::new(Mutex::new(None));
    // Extranonce1 and the extranonce2 size, from the subscribe reply.
    let en1: Arc<Mutex<(Vec<u8>, usize)>> = Arc::new(Mutex::new((Vec::new(), 4)));
    let difficulty = Arc::new(Mutex::new(1.0f64));
    let accepted = Arc::new(AtomicU64::new(0));
    let rejected = Arc::new(AtomicU64::new(0));
    let hashes = Arc::new(AtomicU64::new(0));
    let stop = opts.stop.clone();
    let writer = Arc::new(Mutex::new(writer));
    {
        let (work, en1, difficulty, accepted, rejected, stop) = (
            work.clone(),
            en1.clone(),
            difficulty.clone(),
            accepted.clone(),
            rejected.clone(),
            stop.clone(),
        );
        std::thread::spawn(move || {
            let mut seq = 0;
            for line in reader.lines().map_while(Result::ok) {
                let Ok(msg) = ServerMessage::parse(line.as_bytes()) else {
                    continue;
                };
                match msg {
                    ServerMessage::Notify(n) => {
                        seq += 1;
                        let w = Work {
                            job: Job::from_notify(&n),
                            seq,
                        };
                        *work.lock().unwrap_or_else(|e| e.into_inner()) = Some(w);
                    }
                    ServerMessage::SetDifficulty(d) => {
                        *difficulty.lock().unwrap_or_else(|e| e.into_inner()) = d;
                    }
                    ServerMessage::Response { id, result, .. } => {
                        if id == json!(1) {
                            if let Ok(r) = SubscribeResult::from_result(&result) {
                                *en1.lock().unwrap_or_else(|e| e.into_inner()) =
                                    (r.extranonce1, r.extranonce2_size);
                            }
                        } else if id.as_u64().is_some_and(|i| i >= 100) {
                            if result == json!(true) {
                                accepted.fetch_add(1, Ordering::SeqCst);
                            } else {
                                rejected.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    }
                    _ => {}
                }
            }
            stop.store(true, Ordering::SeqCst);
        });
    }
    let deadline = Instant::now() + timeout;
    let submit_id = Arc::new(AtomicU64::new(100));
    std::thread::scope(|sc| {
        for t in 0..threads.max(1) {
            let (work, en1, difficulty, hashes, stop, writer, accepted, submit_id) = (
                &work,
                &en1,
                &difficulty,
                &hashes,
                &stop,
                &writer,
                &accepted,
                &submit_id,
            );
            sc.spawn(move || {
                let mut en2_counter: u32 = (t as u32) << 24;
                while !stop.load(Ordering::SeqCst) && Instant::now() < deadline && accepted.load(Ordering::SeqCst) < stop_after {
                    let Some(w) = work.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    };
                    let (e1, en2_size) = en1.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    en2_counter += 1;
                    let en2 = extranonce2(en2_counter, en2_size);
                    let Some(coinbase) = w.job.coinbase(&e1, &en2) else { continue };
                    let server = *difficulty.lock().unwrap_or_else(|e| e.into_inner());
                    let target = share_target(share_difficulty.map_or(server, |d| d.min(server)));
                    let mut header = w.job.header(&coinbase, w.job.ntime, 0, w.job.version);
                    for nonce in 0..1_000_000u32 {
                        header.nonce = nonce;
                        hashes.fetch_add(1, Ordering::Relaxed);
                        if target.is_met_by(header.block_hash()) {
                            let id = submit_id.fetch_add(1, Ordering::SeqCst);
                            let msg = json!({"id": id, "method": "mining.submit", "params": [user, w.job.id, en2.to_lower_hex_string(), format!("{:08x}", w.job.ntime), format!("{:08x}", nonce)]});
                            let mut s = msg.to_string();
                            s.push('\n');
                            let _ = writer.lock().unwrap_or_else(|e| e.into_inner()).write_all(s.as_bytes());
                            if !pace.is_zero() {
                                std::thread::sleep(pace);
                            }
                            break;
                        }
                        if nonce % 4096 == 0 && work.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|x| x.seq) != Some(w.seq) {
                            break;
                        }
                    }
                }
            });
        }
    });
    // Give the last replies a moment to arrive.
    let wait = Instant::now() + Duration::from_millis(500);
    while Instant::now() < wait && accepted.load(Ordering::SeqCst) < stop_after {
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(MinerReport {
        accepted: accepted.load(Ordering::SeqCst),
        rejected: rejected.load(Ordering::SeqCst),
        hashes: hashes.load(Ordering::Relaxed),
    })
}

/// Extranonce2 of `size` bytes holding `counter` (big-endian, in its last bytes; zero-padded
/// or cut to its low bytes).
fn extranonce2(counter: u32, size: usize) -> Vec<u8> {
    let c = counter.to_be_bytes();
    let mut out = vec![0u8; size];
    let n = size.min(4);
    out[size - n..].copy_from_slice(&c[4 - n..]);
    out
}

#[cfg(test)]
mod tests {
    use super::extranonce2;

    #[test]
    fn extranonce2_takes_the_size_the_server_gives() {
        assert_eq!(extranonce2(0x0102_0304, 4), [1, 2, 3, 4]);
        assert_eq!(extranonce2(0x0102_0304, 8), [0, 0, 0, 0, 1, 2, 3, 4]);
        assert_eq!(extranonce2(0x0102_0304, 2), [3, 4]);
        assert!(extranonce2(7, 0).is_empty());
    }
}
