//! rexe beside a real, unmodified pool: ckpool (`CKPOOL_EXE`, built from its public source
//! outside this repository) takes its work from `rexe miner run`'s proxy as it would from
//! bitcoind, and `rexe miner tap` sits between ckpool and the CPU miner; the embedded
//! regtest node is the Bitcoin node behind the proxy. Skipped with a printed reason when
//! `CKPOOL_EXE` is unset.
//!
//! ckpool never judges a share below difficulty 1 (2^32 hashes; it also clamps the network
//! difficulty to 1, so on regtest it submits a block only for a difficulty-1 share), out of
//! reach of a CPU in a test. So the test checks what ckpool does with the proxy's work
//! directly (its coinbase, read from its own `mining.notify`), and mines shares at a lower
//! difficulty (`share_difficulty`): ckpool rejects them, and the tap harvests those that
//! meet the L2 target, which is the premature work a pool never shows bitcoind.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use rexe_chain::{Network, Signer};
use rexe_regtest::{RegtestConfig, RegtestNode};
use rexe_rpc::client::RpcClient;
use serde_json::{json, Value};

/// The merged-mining magic (`fabe6d6d`) in a coinbase scriptSig.
const MM_MAGIC: [u8; 4] = [0xfa, 0xbe, 0x6d, 0x6d];

fn tail(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// The CPU miner through the tap for at most `timeout`, at about one share in 2^11 hashes
/// (the L2 target's order; far below ckpool's least difficulty, see the module's note).
/// Returns its stop flag and thread.
fn start_miner(
    st: &Stack,
    timeout: Duration,
) -> (
    Arc<AtomicBool>,
    std::thread::JoinHandle<std::io::Result<rexe_miner::stratum::client::MinerReport>>,
) {
    let stop = Arc::new(AtomicBool::new(false));
    let opts = rexe_miner::stratum::client::CpuOptions {
        threads: 1,
        stop_after: u64::MAX,
        timeout,
        pace: Duration::from_millis(20),
        stop: stop.clone(),
        share_difficulty: Some(5e-7),
    };
    let (tap_addr, user) = (st.tap_addr.clone(), format!("{}.rig1", st.btcaddress));
    let miner = std::thread::spawn(move || {
        rexe_miner::stratum::client::run_with(&tap_addr, &user, "x", &opts)
    });
    (stop, miner)
}

/// Subscribes to ckpool's Stratum port as a miner, takes the first job and returns its
/// coinbase (with a zero extranonce2 of the size ckpool gives) and the scriptSig's length.
fn ckpool_coinbase(pool: &str) -> (bitcoin::Transaction, usize) {
    use rexe_miner::stratum::job::Job;
    use rexe_miner::stratum::protocol::{ServerMessage, SubscribeResult};
    use std::io::BufRead;
    let mut s = TcpStream::connect(pool).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    writeln!(
        s,
        r#"{{"id":1,"method":"mining.subscribe","params":["probe/1"]}}"#
    )
    .unwrap();
    writeln!(
        s,
        r#"{{"id":2,"method":"mining.authorize","params":["probe","x"]}}"#
    )
    .unwrap();
    let mut sub = None;
    for line in std::io::BufReader::new(s).lines() {
        let line = line.expect("ckpool sends a job within 30 s");
        match ServerMessage::parse(line.as_bytes()) {
            Ok(ServerMessage::Response { id, result, .. }) if id == json!(1) => {
                sub = Some(SubscribeResult::from_result(&result).unwrap());
            }
            Ok(ServerMessage::Notify(n)) => {
                let sub = sub.expect("the subscribe reply comes first");
                let job = Job::from_notify(&n);
                let en2 = vec![0u8; sub.extranonce2_size];
                let cb = job
                    .coinbase(&sub.extranonce1, &en2)
                    .expect("ckpool's coinbase parses");
                let len = cb.input[0].script_sig.len();
                return (cb, len);
            }
            _ => {}
        }
    }
    panic!("ckpool closed the connection before sending a job");
}

/// The Bitcoin node behind the proxy: the embedded regtest node, or Bitcoin Core
/// (`BITCOIND_EXE`, a throwaway regtest datadir).
enum Bitcoin {
    Embedded(RegtestNode),
    Core(CoreNode),
}

impl Bitcoin {
    /// Bitcoin Core on regtest, ready for RPC; `None` (with the reason printed) when
    /// `BITCOIND_EXE` is unset.
    fn core() -> Option<Bitcoin> {
        let Ok(exe) = std::env::var("BITCOIND_EXE") else {
            eprintln!(
                "skipped: set BITCOIND_EXE (and CKPOOL_EXE) to run ckpool beside Bitcoin Core"
            );
            return None;
        };
        Some(Bitcoin::Core(CoreNode::start(exe)))
    }

    fn rpc_addr(&self) -> String {
        match self {
            Bitcoin::Embedded(n) => n.rpc_addr.to_string(),
            Bitcoin::Core(c) => c.rpc_addr.clone(),
        }
    }

    fn cookie_path(&self) -> &std::path::Path {
        match self {
            Bitcoin::Embedded(n) => &n.cookie_path,
            Bitcoin::Core(c) => &c.cookie_path,
        }
    }

    fn cookie(&self) -> String {
        std::fs::read_to_string(self.cookie_path())
            .unwrap()
            .trim()
            .to_string()
    }

    fn client(&self) -> RpcClient {
        RpcClient::new(self.rpc_addr(), self.cookie())
    }

    /// The pool's payout address: from the embedded node's wallet, or (Core may be built
    /// without its wallet) a P2WPKH address of a fixed key.
    fn pool_address(&self) -> String {
        match self {
            Bitcoin::Embedded(_) => {
                let btc = self.client();
                let a = btc
                    .call("createwallet", json!(["pool"]))
                    .and_then(|_| btc.call("getnewaddress", json!([])))
                    .unwrap();
                a.as_str().unwrap().to_string()
            }
            Bitcoin::Core(_) => {
                let secp = bitcoin::secp256k1::Secp256k1::new();
                let key = bitcoin::PrivateKey::new(
                    bitcoin::secp256k1::SecretKey::from_slice(&[7; 32]).unwrap(),
                    bitcoin::Network::Regtest,
                );
                let pk = bitcoin::CompressedPublicKey::from_private_key(&secp, &key).unwrap();
                bitcoin::Address::p2wpkh(&pk, bitcoin::Network::Regtest).to_string()
            }
        }
    }
}

/// The processes of one run, stopped when dropped (the pool before the nodes).
struct Stack {
    _tap: KillOnDrop,
    _pool: KillOnDrop,
    _proxy: KillOnDrop,
    l2: Running,
    _l2_dir: tempfile::TempDir,
    btc: Bitcoin,
    dir: tempfile::TempDir,
    btcaddress: String,
    proxy_addr: String,
    pool_addr: String,
    tap_addr: String,
    stats_addr: String,
}

impl Stack {
    fn log(&self) -> std::path::PathBuf {
        self.dir.path().join("ckpool.out")
    }
}

/// How ckpool and the tap are set up.
struct Setup<'a> {
    /// ckpool's coinbase signature.
    btcsig: &'a str,
    /// ckpool's template refresh, seconds.
    update_interval: u32,
    /// The tap runs ckpool's `notifier` on every new L2 tip (`--pool-notify`).
    notify: bool,
    /// Bitcoin Core behind the proxy instead of the embedded node.
    core: bool,
}

/// The embedded node (Bitcoin's target 16,384 times regtest's, so that most shares are
/// premature), an L2 node, the proxy, ckpool configured as a pool operator would with the
/// proxy as its only bitcoind, and the tap in front of ckpool. `None` when `CKPOOL_EXE` is
/// unset.
fn stack(setup: Setup) -> Option<Stack> {
    let Ok(ckpool) = std::env::var("CKPOOL_EXE") else {
        eprintln!("skipped: set CKPOOL_EXE to a ckpool binary to run rexe beside a real pool");
        return None;
    };
    let btc = if setup.core {
        Bitcoin::core()?
    } else {
        Bitcoin::Embedded(
            RegtestNode::start(RegtestConfig {
                bits: 0x1f03_ffff,
                ..RegtestConfig::default()
            })
            .unwrap(),
        )
    };
    let l2_dir = tempfile::tempdir().unwrap();
    let l2 = l2_node_with_password(l2_dir.path());
    let payout = Signer::from_seed(b"ckpool-operator")
        .address()
        .encode(Network::Regtest);

    // The proxy, in front of the embedded node, is ckpool's only bitcoind.
    let proxy_addr = format!("127.0.0.1:{}", free_port());
    let proxy = KillOnDrop(
        miner_command_at(
            &btc.rpc_addr(),
            btc.cookie_path(),
            &l2.rpc,
            &payout,
            &proxy_addr,
        )
        .args(["--watch-interval-ms", "200"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap(),
    );
    let via_proxy = RpcClient::new(proxy_addr.clone(), btc.cookie());
    wait_for("the proxy", || {
        via_proxy.call("getblockcount", json!([])).is_ok()
    });

    // ckpool, configured as a pool operator would, pointed at the proxy.
    let dir = tempfile::tempdir().unwrap();
    let pool_addr = format!("127.0.0.1:{}", free_port());
    let btcaddress = btc.pool_address();
    let cookie = btc.cookie();
    let (user, pass) = cookie.split_once(':').unwrap();
    let conf = json!({
        "btcd": [{"url": proxy_addr, "auth": user, "pass": pass, "notify": false}],
        "btcaddress": btcaddress,
        "btcsig": setup.btcsig,
        "blockpoll": 100,
        "nonce1length": 4,
        "nonce2length": 8,
        "update_interval": setup.update_interval,
        "serverurl": [pool_addr],
        "mindiff": 1,
        "startdiff": 1,
        "logdir": dir.path().join("logs"),
    });
    let conf_path = dir.path().join("ckpool.conf");
    std::fs::write(&conf_path, conf.to_string()).unwrap();
    let log_path = dir.path().join("ckpool.out");
    let log = std::fs::File::create(&log_path).unwrap();
    let pool = KillOnDrop(
        Command::new(&ckpool)
            .arg("-c")
            .arg(&conf_path)
            .arg("-s")
            .arg(dir.path().join("sock"))
            .args(["-n", "rexeck", "-k"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn ckpool"),
    );
    let t0 = Instant::now();
    while TcpStream::connect(&pool_addr).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "ckpool did not open its Stratum port; its output:\n{}",
            tail(&log_path)
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The tap between ckpool and the miner.
    let tap_addr = format!("127.0.0.1:{}", free_port());
    let stats_addr = format!("127.0.0.1:{}", free_port());
    let tap = KillOnDrop(
        Command::new(BIN)
            .args([
                "miner",
                "tap",
                "--listen",
                &tap_addr,
                "--pool",
                &format!("stratum+tcp://{pool_addr}"),
                "--l2",
                &l2.rpc,
                "--l2-auth",
                "u:p",
                "--payout",
                &payout,
                "--l2-poll-ms",
                "200",
                "--stats-listen",
                &stats_addr,
            ])
            .args(
                setup
                    .notify
                    .then(|| {
                        // ckpool's `notifier` sits beside it (its build makes both).
                        let notifier = std::path::Path::new(&ckpool).with_file_name("notifier");
                        // ckpool keeps its sockets in its -s directory, where
                        // notifier looks in `<-s>/<-n>`.
                        vec![
                            "--pool-notify".to_string(),
                            format!("{} -s {} -n sock", notifier.display(), dir.path().display()),
                        ]
                    })
                    .into_iter()
                    .flatten(),
            )
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("the tap's L2 target", || {
        tap_stats(&stats_addr).is_some_and(|s| s["l2_work"] == json!(true))
    });
    Some(Stack {
        _tap: tap,
        _pool: pool,
        _proxy: proxy,
        l2,
        _l2_dir: l2_dir,
        btc,
        dir,
        btcaddress,
        proxy_addr,
        pool_addr,
        tap_addr,
        stats_addr,
    })
}

#[test]
fn ckpool_takes_the_proxys_work_and_the_tap_harvests_its_shares() {
    takes_the_proxys_work_and_the_tap_harvests(false);
}

/// The same with Bitcoin Core behind the proxy (`BITCOIND_EXE` as well as `CKPOOL_EXE`),
/// as a pool operator runs it: ckpool's templates are Core's, rewritten by the proxy.
#[test]
fn ckpool_beside_bitcoin_core() {
    takes_the_proxys_work_and_the_tap_harvests(true);
}

fn takes_the_proxys_work_and_the_tap_harvests(core: bool) {
    let Some(st) = stack(Setup {
        btcsig: "/rexe ckpool test/",
        update_interval: 2,
        notify: false,
        core,
    }) else {
        return;
    };
    // The template ckpool works on is for the Bitcoin node's next block.
    let height = st
        .btc
        .client()
        .call("getblockcount", json!([]))
        .unwrap()
        .as_u64()
        .unwrap();
    let (btcaddress, proxy_addr, stats_addr, l2) =
        (&st.btcaddress, &st.proxy_addr, &st.stats_addr, &st.l2);
    let log_path = st.log();
    // ckpool's own work, read as a miner reads it: its coinbase carries exactly one
    // merged-mining header (the proxy's), pays its address, and leaves its scriptSig
    // within the 100-byte consensus limit with ckpool's extranonces.
    let (coinbase, script_sig_len) = ckpool_coinbase(&st.pool_addr);
    let sig = coinbase.input[0].script_sig.as_bytes();
    let tags = sig.windows(4).filter(|w| *w == MM_MAGIC).count();
    assert_eq!(
        tags, 1,
        "ckpool's coinbase holds {tags} merged-mining headers"
    );
    assert!(script_sig_len <= 100, "scriptSig of {script_sig_len} bytes");
    let pays_pool = coinbase.output.iter().any(|o| {
        bitcoin::Address::from_script(&o.script_pubkey, bitcoin::Network::Regtest)
            .is_ok_and(|a| a.to_string() == *btcaddress)
    });
    assert!(pays_pool, "ckpool's coinbase does not pay its address");
    // The scriptSig opens with the height (BIP34; ckpool pushes heights 1 to 16 as bytes,
    // where Core's own miner writes OP_1..OP_16).
    let first = coinbase.input[0].script_sig.instructions().next();
    let cb_height = match first {
        Some(Ok(bitcoin::script::Instruction::PushBytes(b))) => {
            bitcoin::script::read_scriptint(b.as_bytes()).ok()
        }
        Some(Ok(bitcoin::script::Instruction::Op(op))) => {
            match op.classify(bitcoin::opcodes::ClassifyContext::Legacy) {
                bitcoin::opcodes::Class::PushNum(n) => Some(n as i64),
                _ => None,
            }
        }
        _ => None,
    };
    assert_eq!(
        cb_height,
        Some(height as i64 + 1),
        "ckpool's coinbase height"
    );
    eprintln!("ckpool's coinbase scriptSig: {script_sig_len} bytes");

    // Mine through the tap until it has sealed L2 blocks from premature shares. ckpool
    // takes new work every `update_interval` (2 s here), and each of its jobs commits to one
    // L2 block: a sealed block's later shares are `stale_l2`.
    let (stop, miner) = start_miner(&st, Duration::from_secs(240));
    let t0 = Instant::now();
    loop {
        let s = tap_stats(stats_addr).unwrap_or(Value::Null);
        if s["sealed"].as_u64().unwrap_or(0) >= 3 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(200) && !miner.is_finished(),
            "no progress: tap {s}, proxy {}; ckpool's output:\n{}",
            proxy_stats(proxy_addr),
            tail(&log_path)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let report = miner.join().unwrap().unwrap();
    eprintln!("miner: {report:?}");

    // Every share reached ckpool and every answer came back through the tap; the tap's
    // seals are the L2 node's blocks; ckpool's templates came through the proxy.
    // The miner waited for its last replies before closing; a share still in flight when
    // it closed has no reply to pass on.
    let t0 = Instant::now();
    let mut s = tap_stats(stats_addr).unwrap();
    while t0.elapsed() < Duration::from_secs(10) {
        s = tap_stats(stats_addr).unwrap();
        let replies = s["pool_accepted"].as_u64().unwrap() + s["pool_rejected"].as_u64().unwrap();
        if s["shares"].as_u64() == Some(replies) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let replies = s["pool_accepted"].as_u64().unwrap() + s["pool_rejected"].as_u64().unwrap();
    assert!(replies >= report.accepted + report.rejected, "{s}");
    assert!(
        s["shares"].as_u64().unwrap() - replies <= 1,
        "shares without a reply: {s}"
    );
    let p = proxy_stats(proxy_addr);
    eprintln!("tap: {s}\nproxy: {p}");
    assert_eq!(s["coinbase_too_long"], json!(0), "{s}");
    assert_eq!(s["skipped"]["no_commitment"], json!(0), "{s}");
    assert_eq!(s["skipped"]["unknown_job"], json!(0), "{s}");
    assert!(
        p["chains"]["rexe"]["committed"].as_u64().unwrap_or(0) >= 1,
        "no ckpool template came through the proxy: {p}"
    );
    assert_eq!(p["coinbase_too_long"], json!(0), "{p}");
    let l2_height = call(l2, "getblockcount", json!([]))["result"]
        .as_u64()
        .unwrap();
    assert!(
        l2_height >= s["sealed"].as_u64().unwrap(),
        "L2 height {l2_height}: {s}"
    );
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(
        !log.contains("No bitcoinds active"),
        "ckpool lost its bitcoind (the proxy):\n{}",
        tail(&log_path)
    );
}

/// A pool whose signature leaves the coinbase scriptSig over Bitcoin's 100 bytes once the
/// proxy's tag is in: every block it found would be invalid (`bad-cb-length`). The tap
/// sees it in the pool's first job and says so.
#[test]
fn a_ckpool_coinbase_over_100_bytes_is_flagged_by_the_tap() {
    // 34 bytes: with ckpool's other 77 (the tag's 45 included) the scriptSig is 111 bytes.
    let Some(st) = stack(Setup {
        btcsig: "/a pool signature of 34 bytes.../",
        update_interval: 30,
        notify: false,
        core: false,
    }) else {
        return;
    };
    let (_, len) = ckpool_coinbase(&st.tap_addr);
    assert!(len > 100, "scriptSig of {len} bytes");
    wait_for("the tap to flag the pool's coinbase", || {
        tap_stats(&st.stats_addr).is_some_and(|s| s["coinbase_too_long"].as_u64() >= Some(1))
    });
}

/// ckpool refreshes its template every `update_interval` (30 s by default), and each of its
/// jobs commits to one L2 block. With `--pool-notify` running ckpool's own `notifier` (the
/// hook bitcoind's `-blocknotify` calls), the tap makes ckpool take new work as soon as the
/// L2 tip moves: several L2 blocks are sealed within one refresh interval, where without it
/// shares after the first seal are all `stale_l2` until the refresh.
#[test]
fn pool_notify_makes_ckpool_commit_to_each_new_l2_tip_at_once() {
    let Some(st) = stack(Setup {
        btcsig: "/rexe ckpool test/",
        update_interval: 30,
        notify: true,
        core: false,
    }) else {
        return;
    };
    let (stop, miner) = start_miner(&st, Duration::from_secs(60));
    // Well inside one 30 s refresh.
    let t0 = Instant::now();
    let mut s = Value::Null;
    while t0.elapsed() < Duration::from_secs(25) {
        s = tap_stats(&st.stats_addr).unwrap_or(Value::Null);
        if s["sealed"].as_u64().unwrap_or(0) >= 4 {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = miner.join();
    eprintln!("tap: {s}");
    assert!(
        s["sealed"].as_u64().unwrap_or(0) >= 4,
        "4 L2 blocks within 25 s of a 30 s ckpool refresh: {s}; ckpool's output:\n{}",
        tail(&st.log())
    );
    assert!(s["pool_notify"]["run"].as_u64().unwrap_or(0) >= 3, "{s}");
}
