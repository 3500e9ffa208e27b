//! The Stratum v1 endpoint for miners without a pool: `mining.subscribe`,
//! `mining.authorize`, `mining.configure` (BIP310 version rolling), `mining.set_difficulty`,
//! `mining.notify`, `mining.submit`, `mining.extranonce.subscribe`. Every share is checked;
//! one that meets the L2 target seals an L2 block (premature harvest), one that meets
//! Bitcoin's target is also submitted to bitcoind. New jobs go out on a new Bitcoin tip or
//! a new L2 tip. Errors use the conventional codes: 20 other, 21 job not found,
//! 22 duplicate, 23 low difficulty, 24 unauthorized, 25 not subscribed.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::pow::Target;
use serde_json::{json, Value};
use tokio::io::BufReader;
use tokio::net::TcpStream;

use super::job::{difficulty_of, share_target, Job, EXTRANONCE2_SIZE};
use super::protocol::{self, BadSubmit, ConfigureResult, Request, Submit, SubscribeResult};
use crate::harvest::Source;
use crate::proxy::Harvester;
use rexe_rpc::client::RpcClient;

/// Longest accepted line; longer ones disconnect the client.
pub const MAX_LINE: usize = 16 * 1024;
/// Lowest starting share difficulty: one share per 2^12 hashes.
pub const START_DIFFICULTY: f64 = 65535.0 / 68_719_476_736.0; // 0xffff * 2^208 / 2^244
/// BIP310 mask offered for version rolling.
pub const VERSION_MASK: u32 = 0x1fff_e000;

/// Server settings beyond the endpoints and payouts.
#[derive(Clone, Debug)]
pub struct StratumOptions {
    /// A fixed pool difficulty for every connection (no vardiff). `None`: start at the L2
    /// target (at least [`START_DIFFICULTY`]) and let vardiff aim at ~30 shares a minute.
    pub fixed_difficulty: Option<f64>,
    /// Connections in total and per IP, idle timeout (no line for this long: closed),
    /// write timeout (slow readers are dropped). Lines are capped at [`MAX_LINE`].
    pub limits: rexe_rpc::Limits,
    /// Where each worker's L2 reward goes (default: a mapping, then `rx=` in the password;
    /// otherwise the server's default payout).
    pub payouts: super::payout::PayoutRules,
}

impl Default for StratumOptions {
    fn default() -> Self {
        StratumOptions {
            fixed_difficulty: None,
            limits: rexe_rpc::Limits {
                max_request: MAX_LINE,
                ..rexe_rpc::Limits::line()
            },
            payouts: Default::default(),
        }
    }
}

/// How long a found Bitcoin block is retried against an unreachable bitcoind.
const SUBMIT_RETRY_FOR: Duration = Duration::from_secs(120);

/// Share counters.
#[derive(Default)]
pub struct ShareStats {
    /// Accepted shares.
    pub accepted: AtomicU64,
    /// Rejected shares.
    pub rejected: AtomicU64,
}

/// The server's shared state.
pub struct Stratum {
    btc: RpcClient,
    harvester: Arc<Harvester>,
    default_payout: String,
    btc_payout: bitcoin::ScriptBuf,
    template: Mutex<(u64, Value)>,
    jobs: Mutex<HashMap<(u64, String), Arc<Job>>>,
    job_seq: AtomicU64,
    en1_seq: AtomicU32,
    /// (template generation, whether the Bitcoin tip changed).
    tip_tx: tokio::sync::watch::Sender<(u64, bool)>,
    options: StratumOptions,
    /// Share counters.
    pub stats: ShareStats,
}

fn err(id: &Value, code: i64, msg: &str) -> Value {
    json!({"id": id, "result": null, "error": [code, msg, null]})
}

impl Stratum {
    /// A server mining on `btc`'s templates, paying Bitcoin rewards to `btc_payout` and L2
    /// rewards to the worker's `rx=` address or `default_payout`.
    pub fn new(
        btc: RpcClient,
        harvester: Arc<Harvester>,
        default_payout: String,
        btc_payout: bitcoin::ScriptBuf,
    ) -> Arc<Self> {
        Self::with_options(
            btc,
            harvester,
            default_payout,
            btc_payout,
            StratumOptions::default(),
        )
    }

    /// [`Stratum::new`] with `options`.
    pub fn with_options(
        btc: RpcClient,
        harvester: Arc<Harvester>,
        default_payout: String,
        btc_payout: bitcoin::ScriptBuf,
        options: StratumOptions,
    ) -> Arc<Self> {
        let (tip_tx, _) = tokio::sync::watch::channel((0, false));
        Arc::new(Stratum {
            btc,
            harvester,
            default_payout,
            btc_payout,
            template: Mutex::new((0, Value::Null)),
            jobs: Mutex::new(HashMap::new()),
            job_seq: AtomicU64::new(0),
            en1_seq: AtomicU32::new(1),
            tip_tx,
            options,
            stats: ShareStats::default(),
        })
    }

    /// Fetches a template; when the Bitcoin or L2 tip moved, starts a new generation of
    /// jobs and wakes every connection.
    pub fn refresh(&self) -> Result<bool, String> {
        let t = self
            .btc
            .call("getblocktemplate", json!([{"rules": ["segwit"]}]))
            .map_err(|e| e.to_string())?;
        let l2_tip = self
            .harvester
            .l2
            .call("getbestblockhash", json!([]))
            .map_err(|e| e.to_string())?;
        let mut cur = self.template.lock().unwrap_or_else(|e| e.into_inner());
        let key = |v: &Value| (v["previousblockhash"].clone(), v["l2tip"].clone());
        let mut t = t;
        t["l2tip"] = l2_tip;
        if cur.0 != 0 && key(&cur.1) == key(&t) {
            return Ok(false);
        }
        let generation = cur.0 + 1;
        // Only a new Bitcoin tip makes old jobs worthless (clean_jobs); a new L2 tip only
        // makes their L2 commitment outdated, and their shares still count for Bitcoin.
        let clean = cur.1["previousblockhash"] != t["previousblockhash"];
        *cur = (generation, t);
        drop(cur);
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let _ = self.tip_tx.send((generation, clean));
        Ok(true)
    }

    /// The current job for `payout` (built once per template generation and payout).
    fn job_for(&self, payout: &str) -> Option<Arc<Job>> {
        let generation = self.template.lock().unwrap_or_else(|e| e.into_inner()).0;
        if let Some(j) = self
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(generation, payout.to_string()))
        {
            return Some(j.clone());
        }
        // Only the first connection of a generation copies the template.
        let (generation, t) = self
            .template
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let (tag, l2) = match self.harvester.new_work_for(payout) {
            Ok((tag, hash, target)) => (tag.to_vec(), Some((hash, target))),
            Err(e) => {
                tracing::warn!(error = %e, "no L2 work: mining Bitcoin only");
                (Vec::new(), None)
            }
        };
        let id = format!("{:x}", self.job_seq.fetch_add(1, Ordering::Relaxed));
        let job = Arc::new(Job::from_template(id, &t, &tag, &self.btc_payout, l2)?);
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((generation, payout.to_string()), job.clone());
        Some(job)
    }
}

struct Conn {
    en1: [u8; 4],
    subscribed: bool,
    authorized: bool,
    payout: String,
    mask: u32,
    difficulty: f64,
    /// Whether `mining.set_difficulty` went out yet.
    difficulty_sent: bool,
    jobs: HashMap<String, Arc<Job>>,
    seen: HashSet<(String, Vec<u8>, u32, u32, u32)>,
    window: (Instant, u32),
}

/// Sends one line; a miner that has not taken it within `timeout` is a slow reader (error).
async fn send(
    w: &mut tokio::net::tcp::OwnedWriteHalf,
    v: &Value,
    timeout: Duration,
) -> std::io::Result<()> {
    let mut line = v.to_string();
    line.push('\n');
    rexe_rpc::write_deadline(w, line.as_bytes(), timeout).await
}

/// A share that met the connection's difficulty.
struct Share {
    job: Arc<Job>,
    coinbase: bitcoin::Transaction,
    header: bitcoin::block::Header,
}

impl Share {
    /// Whether it meets Bitcoin's or the L2's target: then it needs bitcoind or the L2 node.
    fn is_block(&self) -> bool {
        let hash = self.header.block_hash();
        self.header.target().is_met_by(hash)
            || self.job.l2.as_ref().is_some_and(|(_, t)| t.is_met_by(hash))
    }
}

impl Stratum {
    /// Checks a `mining.submit` against the connection's jobs and difficulty. CPU only: the
    /// error is the reply to send.
    fn check_share(
        &self,
        c: &mut Conn,
        id: &Value,
        p: &Result<Submit, BadSubmit>,
    ) -> Result<Share, Value> {
        if !c.subscribed {
            return Err(err(id, 25, "Not subscribed"));
        }
        if !c.authorized {
            return Err(err(id, 24, "Unauthorized worker"));
        }
        let job_id = match p {
            Ok(s) => Some(&s.job_id),
            Err(bad) => bad.job_id.as_ref(),
        };
        let Some(job) = job_id.and_then(|j| c.jobs.get(j)).cloned() else {
            return Err(err(id, 21, "Job not found"));
        };
        // Malformed fields after the job lookup (malformed version bits now before the
        // ntime window: they are a parse error).
        let s = match p {
            Ok(s) => s,
            Err(bad) => return Err(err(id, 20, &bad.error.to_string())),
        };
        let (en2, ntime, nonce) = (s.extranonce2.clone(), s.ntime, s.nonce);
        if ntime < job.ntime || ntime > job.ntime + 7200 {
            return Err(err(id, 20, "ntime out of range"));
        }
        let vbits = s.version_bits.unwrap_or(0);
        if vbits & !c.mask != 0 {
            return Err(err(id, 20, "Version bits outside the negotiated mask"));
        }
        let version = ((job.version as u32 & !c.mask) | (vbits & c.mask)) as i32;
        if !c
            .seen
            .insert((job.id.clone(), en2.clone(), ntime, nonce, vbits))
        {
            return Err(err(id, 22, "Duplicate share"));
        }
        let Some(coinbase) = job.coinbase(&c.en1, &en2) else {
            return Err(err(id, 20, "Coinbase does not decode"));
        };
        let header = job.header(&coinbase, ntime, nonce, version);
        if !share_target(c.difficulty).is_met_by(header.block_hash()) {
            self.stats.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(err(id, 23, "Low difficulty share"));
        }
        self.stats.accepted.fetch_add(1, Ordering::Relaxed);
        Ok(Share {
            job,
            coinbase,
            header,
        })
    }

    /// A share that is a Bitcoin block goes to bitcoind; one that meets the L2 target is
    /// harvested (and a sealed L2 block refreshes the jobs). Blocking: RPC calls.
    fn submit_block(&self, share: Share) {
        let Share {
            job,
            coinbase,
            header,
        } = share;
        let hash = header.block_hash();
        let block = job.block(coinbase, header);
        let mut source = Source::Premature;
        if header.target().is_met_by(hash) {
            // A found block is retried while bitcoind cannot be reached (e.g. out of file
            // descriptors), never dropped: after the retries it is logged in full.
            let hex = serialize_hex(&block);
            let started = Instant::now();
            let mut pause = Duration::from_millis(100);
            loop {
                match self.btc.call("submitblock", json!([hex])) {
                    Ok(answer) => {
                        source = Source::from_submitblock(&answer);
                        if source == Source::Premature {
                            tracing::warn!(%answer, %hash, "bitcoind refused a block found over Stratum")
                        }
                    }
                    Err(e) if e.is_transport() && started.elapsed() < SUBMIT_RETRY_FOR => {
                        tracing::warn!(error = %e, %hash, "submitblock failed; retrying");
                        std::thread::sleep(pause);
                        pause = (pause * 2).min(Duration::from_secs(5));
                        continue;
                    }
                    Err(e) => tracing::error!(
                        error = %e,
                        %hash,
                        block = %hex,
                        "submitblock failed for a found block; submit it by hand"
                    ),
                }
                break;
            }
        }
        if let Some((_, l2_target)) = &job.l2 {
            if l2_target.is_met_by(hash) && self.harvester.harvest(&block, source) {
                let _ = self.refresh();
            }
        }
    }

    /// Answers a `mining.submit`: checked in place (a few microseconds), and only a share that
    /// is a block waits for bitcoind or the L2 node, on the blocking pool.
    async fn submit(
        self: &Arc<Self>,
        c: &mut Conn,
        id: &Value,
        p: &Result<Submit, BadSubmit>,
    ) -> Value {
        let share = match self.check_share(c, id, p) {
            Ok(share) => share,
            Err(reply) => return reply,
        };
        if share.is_block() {
            let me = self.clone();
            let _ = tokio::task::spawn_blocking(move || me.submit_block(share)).await;
        }
        json!({"id": id, "result": true, "error": null})
    }

    async fn serve_conn(self: Arc<Self>, sock: TcpStream) {
        let (r, mut w) = sock.into_split();
        let mut reader = BufReader::new(r);
        let mut c = Conn {
            en1: self.en1_seq.fetch_add(1, Ordering::Relaxed).to_be_bytes(),
            subscribed: false,
            authorized: false,
            payout: self.default_payout.clone(),
            mask: 0,
            difficulty: 1.0,
            difficulty_sent: false,
            jobs: HashMap::new(),
            seen: HashSet::new(),
            window: (Instant::now(), 0),
        };
        let mut tip_rx = self.tip_tx.subscribe();
        let mut line = Vec::new();
        let idle = self.options.limits.idle_timeout;
        let wt = self.options.limits.write_timeout;
        let mut deadline = tokio::time::Instant::now() + idle;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {
                    tracing::debug!("stratum connection idle; closed");
                    return;
                }
                n = rexe_rpc::read_line(&mut reader, &mut line, MAX_LINE) => {
                    match n {
                        Ok(rexe_rpc::LineRead::Line) => {}
                        Ok(_) | Err(_) => return,
                    }
                    deadline = tokio::time::Instant::now() + idle;
                    // A read cancelled by the other branch keeps its bytes in `line`;
                    // only a complete line is taken.
                    let current = std::mem::take(&mut line);
                    let Ok(msg) = protocol::parse_request(&current) else {
                        if send(&mut w, &err(&Value::Null, 20, "Malformed JSON"), wt).await.is_err() { return; }
                        continue;
                    };
                    let id = msg.id;
                    let (is_authorize, is_submit) = (
                        matches!(msg.request, Request::Authorize { .. }),
                        matches!(msg.request, Request::Submit(_)),
                    );
                    let reply = match msg.request {
                        Request::Subscribe { .. } => {
                            c.subscribed = true;
                            let r = SubscribeResult { extranonce1: c.en1.to_vec(), extranonce2_size: EXTRANONCE2_SIZE };
                            json!({"id": id, "error": null, "result": r.to_result()})
                        }
                        Request::ExtranonceSubscribe => json!({"id": id, "result": true, "error": null}),
                        Request::Configure { mask, .. } => {
                            c.mask = mask.unwrap_or(VERSION_MASK) & VERSION_MASK;
                            let r = ConfigureResult { version_rolling: true, mask: Some(c.mask) };
                            json!({"id": id, "error": null, "result": r.to_result()})
                        }
                        Request::Authorize { user, password } => {
                            if !c.subscribed {
                                err(&id, 25, "Not subscribed")
                            } else {
                                match self.options.payouts.resolve(&user, &password) {
                                    Ok(payout) => {
                                        c.payout = payout.unwrap_or_else(|| self.default_payout.clone());
                                        c.authorized = true;
                                        json!({"id": id, "result": true, "error": null})
                                    }
                                    Err(e) => err(&id, 24, &e.to_string()),
                                }
                            }
                        }
                        Request::Submit(sub) => self.submit(&mut c, &id, &sub).await,
                        Request::Unknown(_) => err(&id, 20, "Unknown method"),
                    };
                    if send(&mut w, &reply, wt).await.is_err() { return; }
                    if is_authorize
                        && c.authorized
                        && self.push_job(&mut c, &mut w, true).await.is_err()
                    {
                        return;
                    }
                    if is_submit
                        && reply["result"] == json!(true)
                        && self.options.fixed_difficulty.is_none()
                    {
                        // Vardiff: aim at ~30 submissions a minute per connection; scale
                        // by the observed rate (at most 1024x per step) so a CPU miner on a
                        // regtest target is tamed within a few steps.
                        c.window.1 += 1;
                        let secs = c.window.0.elapsed().as_secs_f64();
                        if c.window.1 >= 8 && secs > 0.0 {
                            let rate = c.window.1 as f64 / secs * 60.0;
                            if rate > 60.0 {
                                c.difficulty *= (rate / 30.0).min(1024.0);
                                if send(&mut w, &json!({"id": null, "method": "mining.set_difficulty", "params": [c.difficulty]}), wt).await.is_err() {
                                    return;
                                }
                            }
                            c.window = (Instant::now(), 0);
                        }
                    }
                }
                changed = tip_rx.changed() => {
                    if changed.is_err() { return; }
                    let clean = tip_rx.borrow_and_update().1;
                    if c.authorized && self.push_job(&mut c, &mut w, clean).await.is_err() { return; }
                }
            }
        }
    }

    async fn push_job(
        &self,
        c: &mut Conn,
        w: &mut tokio::net::tcp::OwnedWriteHalf,
        clean: bool,
    ) -> std::io::Result<()> {
        let me_payout = c.payout.clone();
        let Some(job) = self.job_for(&me_payout) else {
            return Ok(());
        };
        if !c.difficulty_sent {
            c.difficulty_sent = true;
            // Start at the L2 target (every accepted share can seal an L2 block), but never
            // below one share per 2^12 hashes: on regtest targets a CPU would flood us.
            let l2 = job
                .l2
                .as_ref()
                .map(|(_, t)| difficulty_of(*t))
                .unwrap_or(1.0);
            c.difficulty = self
                .options
                .fixed_difficulty
                .unwrap_or(l2.max(START_DIFFICULTY));
            send(
                w,
                &json!({"id": null, "method": "mining.set_difficulty", "params": [c.difficulty]}),
                self.options.limits.write_timeout,
            )
            .await?;
        }
        if clean || c.jobs.len() >= 16 {
            c.jobs.clear();
            // Shares of dropped jobs can no longer be submitted: forget them.
            c.seen.clear();
        }
        c.jobs.insert(job.id.clone(), job.clone());
        send(
            w,
            &json!({"id": null, "method": "mining.notify", "params": job.notify_params(clean)}),
            self.options.limits.write_timeout,
        )
        .await
    }
}

/// Serves Stratum on `listen` and refreshes templates every `poll`.
pub async fn serve(
    s: Arc<Stratum>,
    listen: SocketAddr,
    poll: Duration,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let refresher = s.clone();
    tokio::spawn(async move {
        loop {
            let r = refresher.clone();
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || r.refresh()).await {
                tracing::debug!(error = %e, "template refresh failed");
            }
            tokio::time::sleep(poll).await;
        }
    });
    let limits = &s.options.limits;
    let gate = rexe_rpc::ConnGate::new(limits.max_connections, limits.max_per_ip);
    tokio::spawn(rexe_rpc::accept_loop(
        "stratum",
        listener,
        gate,
        move |sock, _peer, permit| {
            let s = s.clone();
            async move {
                s.serve_conn(sock).await;
                drop(permit);
            }
        },
    ));
    Ok(addr)
}

/// For tests: a target as Stratum difficulty.
pub fn difficulty_for(t: Target) -> f64 {
    difficulty_of(t)
}
