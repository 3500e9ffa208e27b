//! `rexe contract run SCRIPT.prdts`: PREDA's chain-simulator scripts on a real rexe chain (a
//! temporary data directory with real shard stores, executor, relays and block log).
//!
//! Supported: `random.reseed [seed]`, `allocate.address [n]`, `chain.gaslimit` (accepted and
//! ignored: rexe has per-transaction gas), `chain.deploy [@i] FILE.prd[=json] …`,
//! `state.set`/`state.update C.global|C.shard #i|#all|C.address @i|@all|@random {json}`
//! (also `address.C` and `*N`), transaction lines `[name[] =] C.fn[*N] [@i|@all|@random|#i|
//! #all|#random|#g] [{json}]` with `$@i$`/`$@random$`/`$@all$`, `$random(a,b)$` (and `*`, `/`,
//! `+`, `-` on it), `$bigint.random(n)$` (n decimal digits) placeholders and `-name:value`
//! substitutions (`$~name$`, `~name`), `chain.run`/`chain.await` (blocks until nothing is
//! pending), `chain.step` (one block), `chain.info`, `stopwatch.restart/report`, `log`,
//! `log.highlight/warning/error`. An argument's `{…}`/`[…]` may span lines (and a trailing
//! `\` continues any line). A transaction line may end with `<= (N RXBTC, M BTC)`: rxBTC
//! (satoshis) and other assets attached to the call, read by
//! `__transaction.get_supplied_tokens()`. `state.token mint SYMBOL by CONTRACT` has the
//! contract's deployer register its right to mint the asset; `viz.addr @i|@all [C]` prints
//! wallets (or contract C's `@address` state), `viz.shard #g|#i|#all C` C's global or shard
//! state, `viz.txn NAME[i]` a named transaction's call and `viz.trace NAME[i]` it with every
//! relay it caused (from receipts; not under `-perftest`), `viz.section` a heading,
//! `viz.block #i|#g|#all[:height]` a block's header and each shard's transactions,
//! `viz.uint_scope #N C:KEY|all` C's `@uintN` state and `viz.profiling` each shard's
//! transactions, micro-transactions and rates since `stopwatch.restart`.
//! `NAME = csv.from(FILE.csv)` reads transaction lines from a CSV file (see
//! [`Runner::csv_from`]) and `chain.batch_insert_txn NAME` issues them. `NAME = VALUE` (a
//! number, a string literal or a word) sets a script variable: a bare word naming it in an
//! argument's value, and `@NAME`, `#NAME`, `*NAME`, stand for its value (PREDA's tool accepts
//! the assignment and reads it nowhere). Other `viz.*` are noted once as not shown,
//! `chain.stop` is ignored. `state.save address|shard.C|all FILE`
//! writes PREDA's state file (contract names as `CVID`s) and `state.load <scope> FILE` sets
//! the states in one, as `state.set` does; a numeric `CVID` (PREDA's tool writes them, and
//! scripts may name a contract by one) is the contract the script deployed at that place.
//!
//! Transactions are built unsigned and executed as pre-verified (like the simulator, which
//! has no signatures); everything else is the chain a node runs.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use rexe_chain::asset::{AssetId, Assets};
use rexe_chain::contract::{abi, contract_address, parse_state_key, MintRight, Target};
use rexe_chain::lang::ast::ScopeKind;
use rexe_chain::lang::value::address_to_string;
use rexe_chain::params::{bench_address, GenesisAlloc};
use rexe_chain::seal::TestSealer;
use rexe_chain::{
    shard_of, Address, Amount, Chain, ChainConfig, ChainParams, Network, Payload, ShardId,
    SignedTx, Signer, Tx,
};
use serde_json::{json, Value as Json};

/// Gas a script's transaction buys by default: 2,000 times a chain's cap, so that calls
/// PREDA's simulator runs (which meters no gas) run here too. Only gas used is charged.
pub const SIMULATOR_TX_GAS: u64 = 10_000_000_000;

/// Relays one micro-transaction of a script may emit: a chain's 4,096 would stop calls
/// PREDA's simulator runs.
pub const SIMULATOR_RELAYS_PER_CALL: u32 = 1 << 22;

/// How to run a script.
#[derive(Clone, Debug)]
pub struct Options {
    /// log2 of the shard count.
    pub order: u8,
    /// Executor threads.
    pub threads: usize,
    /// `-name:value` substitutions.
    pub vars: HashMap<String, String>,
    /// Do not collect or print `__debug.print` output.
    pub perftest: bool,
    /// Most transactions per shard per block.
    pub block_txs: usize,
    /// Gas each transaction buys. PREDA's chain simulator meters no gas, so by default
    /// the local chain lifts the per-transaction cap ([`SIMULATOR_TX_GAS`]) as it lifts
    /// the block limits; a lower figure (a chain's 5,000,000) shows what would fit a block.
    pub gas: u64,
    /// Where the chain lives (default: a temporary directory).
    pub datadir: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            order: 2,
            threads: 2,
            vars: HashMap::new(),
            perftest: false,
            block_txs: 20_000,
            gas: SIMULATOR_TX_GAS,
            datadir: None,
        }
    }
}

/// What a run did (also printed as JSON with `--summary`).
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Blocks mined.
    pub blocks: u64,
    /// Transactions executed.
    pub txs: u64,
    /// Contract micro-transactions executed.
    pub micro_txs: u64,
    /// Micro-transactions that were reverted.
    pub failed: u64,
    /// Per `Contract.variable`: the sum of that integer variable over all non-global rows.
    pub sums: BTreeMap<String, String>,
    /// Whether the rxBTC supply audit held after every block.
    pub supply_ok: bool,
}

/// A small deterministic generator (scripts need reproducible runs, not secrets).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn range(&mut self, lo: i128, hi: i128) -> i128 {
        if hi <= lo {
            return lo;
        }
        let span = (hi - lo + 1) as u128;
        lo + ((self.next() as u128 * 0x1_0000_0000 + (self.next() >> 32) as u128) % span) as i128
    }
}

/// A running script.
pub struct Runner<'o> {
    opts: Options,
    dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    chain: Option<Chain>,
    addrs: Vec<Address>,
    /// One funded account per shard, for `#shard` transactions.
    agents: Vec<Address>,
    nonces: HashMap<Address, u64>,
    contracts: HashMap<String, Address>,
    queue: Vec<Vec<SignedTx>>,
    rng: Rng,
    watch: Instant,
    watch_txs: u64,
    watch_micro: u64,
    summary: Summary,
    /// Transaction lines read by `NAME = csv.from(FILE.csv)`, issued by
    /// `chain.batch_insert_txn NAME`.
    batches: HashMap<String, Vec<String>>,
    /// Transactions named in the script (`name = C.f …`), for `viz.txn`/`viz.trace`.
    named: HashMap<String, Vec<rexe_chain::Txid>>,
    /// The receipts of named transactions and of their relays, as their blocks ran them.
    traced: HashMap<rexe_chain::Txid, Vec<rexe_chain::contract::ContractReceipt>>,
    /// `viz.*` commands already noted as not shown.
    viz_noted: std::collections::HashSet<String>,
    /// Contract names in the order the script first deployed them: PREDA's serial numbers
    /// (1-based) in its contract version ids.
    serials: Vec<String>,
    /// Script variables (`NAME = 5`, `NAME = "text"`).
    vars: HashMap<String, Json>,
    /// Transactions each shard was given since `stopwatch.restart`, for `viz.profiling`.
    prof_txs: Vec<u64>,
    /// Micro-transactions each shard, then the global lane, ran since `stopwatch.restart`.
    prof_micro: Vec<u64>,
    out: &'o mut dyn Write,
}

fn strip_comments(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let b = src.as_bytes();
    let mut i = 0;
    let mut in_str = false;
    while i < b.len() {
        let c = b[i];
        if in_str {
            out.push(c as char);
            if c == b'\\' && i + 1 < b.len() {
                out.push(b[i + 1] as char);
                i += 2;
                continue;
            }
            if c == b'"' {
                in_str = false;
            }
            i += 1;
            continue;
        }
        if c == b'"' {
            in_str = true;
        } else if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                if b[i] == b'\n' {
                    out.push('\n');
                }
                i += 1;
            }
            i += 2;
            continue;
        }
        // Keep non-ASCII text intact (log lines).
        let ch = src[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// How many `{`/`[` of `s` are still open, outside string literals.
fn open_brackets(s: &str) -> i64 {
    let (mut depth, mut in_str, mut escaped) = (0i64, false, false);
    for c in s.chars() {
        if in_str {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_str = false,
                _ => {}
            }
        } else {
            match c {
                '"' => in_str = true,
                '{' | '[' => depth += 1,
                '}' | ']' => depth -= 1,
                _ => {}
            }
        }
    }
    depth
}

/// Splits a script into logical lines, with their starting line numbers. A trailing `\`
/// continues a line, and so does an argument whose `{…}` or `[…]` is still open: PREDA's
/// script grammar reads newlines inside them as spaces (`log` lines excepted: their text is
/// free).
pub fn lines(src: &str) -> Vec<(usize, String)> {
    let src = strip_comments(src);
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut start = 0;
    for (i, l) in src.lines().enumerate() {
        if cur.is_empty() {
            start = i + 1;
        }
        let t = l.trim_end();
        if let Some(stripped) = t.strip_suffix('\\') {
            cur.push_str(stripped);
            cur.push(' ');
            continue;
        }
        cur.push_str(t);
        if !cur.trim_start().starts_with("log") && open_brackets(&cur) > 0 {
            cur.push(' ');
            continue;
        }
        let line = std::mem::take(&mut cur);
        if !line.trim().is_empty() {
            out.push((start, line.trim().to_string()));
        }
    }
    if !cur.trim().is_empty() {
        out.push((start, cur.trim().to_string()));
    }
    out
}

/// Replaces `$~name$` and `~name` with the `-name:value` substitutions.
fn substitute(line: &str, vars: &HashMap<String, String>) -> Result<String> {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find('~') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let n = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        let name = &after[..n];
        if name.is_empty() {
            out.push('~');
            rest = after;
            continue;
        }
        let v = vars
            .get(name)
            .ok_or_else(|| anyhow!("the script needs -{name}:VALUE on the command line"))?;
        // `$~name$` becomes the bare value; `~name` inside `$…$` too.
        if out.ends_with('$') && after[n..].starts_with('$') {
            out.pop();
            out.push_str(v);
            rest = &after[n + 1..];
        } else {
            out.push_str(v);
            rest = &after[n..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

// ---- relaxed JSON --------------------------------------------------------------------

struct JsonParser<'a> {
    s: &'a [u8],
    i: usize,
    /// Script variables a bare word in a value position stands for (never keys).
    vars: Option<&'a HashMap<String, Json>>,
}

impl JsonParser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json> {
        if depth > 64 {
            bail!("JSON nested too deeply");
        }
        self.ws();
        match self.s.get(self.i) {
            Some(b'{') => {
                self.i += 1;
                let mut m = serde_json::Map::new();
                loop {
                    self.ws();
                    if self.s.get(self.i) == Some(&b'}') {
                        self.i += 1;
                        break;
                    }
                    // A key is never a variable.
                    let vars = self.vars.take();
                    let k = self.value(depth + 1);
                    self.vars = vars;
                    let k = match k? {
                        Json::String(s) => s,
                        other => other.to_string(),
                    };
                    self.ws();
                    if self.s.get(self.i) != Some(&b':') {
                        bail!("expected `:` after key {k:?}");
                    }
                    self.i += 1;
                    let v = self.value(depth + 1)?;
                    m.insert(k, v);
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {}
                        _ => bail!("expected `,` or `}}` in an object"),
                    }
                }
                Ok(Json::Object(m))
            }
            Some(b'[') => {
                self.i += 1;
                let mut a = Vec::new();
                loop {
                    self.ws();
                    if self.s.get(self.i) == Some(&b']') {
                        self.i += 1;
                        break;
                    }
                    a.push(self.value(depth + 1)?);
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {}
                        _ => bail!("expected `,` or `]` in an array"),
                    }
                }
                Ok(Json::Array(a))
            }
            Some(b'"') => {
                let start = self.i;
                self.i += 1;
                while self.i < self.s.len() && self.s[self.i] != b'"' {
                    if self.s[self.i] == b'\\' {
                        self.i += 1;
                    }
                    self.i += 1;
                }
                self.i += 1;
                let text = std::str::from_utf8(&self.s[start..self.i.min(self.s.len())])?;
                Ok(serde_json::from_str(text).context("bad string")?)
            }
            Some(_) => {
                let start = self.i;
                while self.i < self.s.len() && !b",:}] \t\r\n".contains(&self.s[self.i]) {
                    self.i += 1;
                }
                let w = std::str::from_utf8(&self.s[start..self.i])?;
                if w.is_empty() {
                    bail!("expected a value");
                }
                if let Some(v) = self.vars.and_then(|vars| vars.get(w)) {
                    return Ok(v.clone());
                }
                Ok(match w {
                    "true" => Json::Bool(true),
                    "false" => Json::Bool(false),
                    "null" => Json::Null,
                    _ => match (w.parse::<i64>(), w.parse::<u64>()) {
                        (Ok(v), _) => json!(v),
                        (_, Ok(v)) => json!(v),
                        _ => Json::String(w.to_string()),
                    },
                })
            }
            None => bail!("expected a value"),
        }
    }
}

/// Parses relaxed JSON (unquoted keys and words, as PREDA scripts write it).
pub fn relaxed_json(s: &str) -> Result<Json> {
    relaxed_json_with(s, None)
}

/// [`relaxed_json`], with each bare word in a value position that names one of `vars`
/// replaced by the variable's value.
fn relaxed_json_with(s: &str, vars: Option<&HashMap<String, Json>>) -> Result<Json> {
    let mut p = JsonParser {
        s: s.as_bytes(),
        i: 0,
        vars,
    };
    let v = p.value(0)?;
    p.ws();
    if p.i < p.s.len() {
        bail!("unexpected text after the JSON value: {}", &s[p.i..]);
    }
    Ok(v)
}

/// Length of the `{…}` (or `[…]`) group at the start of `s`, strings respected.
fn matching_brace(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    if !matches!(b.first(), Some(b'{') | Some(b'[')) {
        return None;
    }
    let mut depth = 0i32;
    let mut in_str = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' if in_str => i += 1,
            b'"' => in_str = !in_str,
            b'{' | b'[' if !in_str => depth += 1,
            b'}' | b']' if !in_str => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

// ---- script variables ----------------------------------------------------------------

/// What a line `NAME = VALUE` assigns, when `VALUE` is one of PREDA's script-variable values
/// (a number, a string literal or a word); `None` for any other line (`name = C.f …`,
/// `name = csv.from(…)`).
fn variable_assignment(line: &str) -> Option<(&str, &str)> {
    let (name, value) = line.split_once('=')?;
    let (name, value) = (name.trim(), value.trim());
    let word = |w: &str| {
        w.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let number = |w: &str| {
        let w = w.strip_prefix('-').unwrap_or(w);
        !w.is_empty()
            && w.chars()
                .all(|c| c.is_ascii_digit() || c == '.' || c == 'e' || c == 'E')
    };
    let string = value.len() >= 2
        && value.starts_with('"')
        && value.ends_with('"')
        && !value[1..value.len() - 1].contains('"');
    (word(name) && !value.starts_with('=') && (string || number(value) || word(value)))
        .then_some((name, value))
}

// ---- placeholders --------------------------------------------------------------------

/// Integer expressions inside `$…$`: numbers, `random(a, b)`, `random`, `* / + -`.
fn int_expr(s: &str, rng: &mut Rng) -> Result<i128> {
    fn parse_sum(t: &[u8], i: &mut usize, rng: &mut Rng) -> Result<i128> {
        let mut v = parse_prod(t, i, rng)?;
        loop {
            skip(t, i);
            match t.get(*i) {
                Some(b'+') => {
                    *i += 1;
                    v = v
                        .checked_add(parse_prod(t, i, rng)?)
                        .ok_or_else(|| anyhow!("overflow"))?;
                }
                Some(b'-') => {
                    *i += 1;
                    v = v
                        .checked_sub(parse_prod(t, i, rng)?)
                        .ok_or_else(|| anyhow!("overflow"))?;
                }
                _ => return Ok(v),
            }
        }
    }
    fn parse_prod(t: &[u8], i: &mut usize, rng: &mut Rng) -> Result<i128> {
        let mut v = parse_atom(t, i, rng)?;
        loop {
            skip(t, i);
            match t.get(*i) {
                Some(b'*') => {
                    *i += 1;
                    v = v
                        .checked_mul(parse_atom(t, i, rng)?)
                        .ok_or_else(|| anyhow!("overflow"))?;
                }
                Some(b'/') => {
                    *i += 1;
                    let d = parse_atom(t, i, rng)?;
                    v = v
                        .checked_div(d)
                        .ok_or_else(|| anyhow!("division by zero"))?;
                }
                _ => return Ok(v),
            }
        }
    }
    fn skip(t: &[u8], i: &mut usize) {
        while t.get(*i).is_some_and(|c| c.is_ascii_whitespace()) {
            *i += 1;
        }
    }
    fn parse_atom(t: &[u8], i: &mut usize, rng: &mut Rng) -> Result<i128> {
        skip(t, i);
        if t[*i..].starts_with(b"random") {
            *i += 6;
            skip(t, i);
            if t.get(*i) == Some(&b'(') {
                *i += 1;
                let lo = parse_sum(t, i, rng)?;
                skip(t, i);
                if t.get(*i) != Some(&b',') {
                    bail!("expected `,` in random(a, b)");
                }
                *i += 1;
                let hi = parse_sum(t, i, rng)?;
                skip(t, i);
                if t.get(*i) != Some(&b')') {
                    bail!("expected `)` in random(a, b)");
                }
                *i += 1;
                return Ok(rng.range(lo, hi));
            }
            return Ok(rng.range(0, i64::MAX as i128));
        }
        if t.get(*i) == Some(&b'(') {
            *i += 1;
            let v = parse_sum(t, i, rng)?;
            skip(t, i);
            if t.get(*i) != Some(&b')') {
                bail!("expected `)`");
            }
            *i += 1;
            return Ok(v);
        }
        let neg = t.get(*i) == Some(&b'-');
        if neg {
            *i += 1;
        }
        let start = *i;
        while t.get(*i).is_some_and(|c| c.is_ascii_digit()) {
            *i += 1;
        }
        let n: i128 = std::str::from_utf8(&t[start..*i])?
            .parse()
            .map_err(|_| anyhow!("expected a number in `{}`", String::from_utf8_lossy(t)))?;
        Ok(if neg { -n } else { n })
    }
    let t = s.as_bytes();
    let mut i = 0;
    let v = parse_sum(t, &mut i, rng)?;
    skip(t, &mut i);
    if i != t.len() {
        bail!("cannot read `{s}`");
    }
    Ok(v)
}

impl<'o> Runner<'o> {
    /// A runner for a script in `dir` (contract files are resolved there).
    pub fn new(opts: Options, dir: &Path, out: &'o mut dyn Write) -> Self {
        let shards = 1usize << opts.order;
        Runner {
            rng: Rng(0x5eed),
            dir: dir.to_path_buf(),
            _tmp: None,
            chain: None,
            addrs: Vec::new(),
            agents: Vec::new(),
            nonces: HashMap::new(),
            contracts: HashMap::new(),
            queue: vec![Vec::new(); shards],
            watch: Instant::now(),
            watch_txs: 0,
            watch_micro: 0,
            summary: Summary {
                supply_ok: true,
                ..Summary::default()
            },
            batches: HashMap::new(),
            viz_noted: Default::default(),
            named: HashMap::new(),
            traced: HashMap::new(),
            vars: HashMap::new(),
            serials: Vec::new(),
            prof_txs: vec![0; shards],
            prof_micro: vec![0; shards + 1],
            out,
            opts,
        }
    }

    fn chain(&mut self) -> Result<&mut Chain> {
        if self.chain.is_none() {
            self.open()?;
        }
        Ok(self.chain.as_mut().expect("opened"))
    }

    /// Creates the chain with the allocated addresses (and one agent per shard) funded.
    fn open(&mut self) -> Result<()> {
        let mut params = ChainParams::regtest();
        params.shard_order = rexe_chain::ShardOrder::new(self.opts.order)?;
        params.max_txs_per_shard = self.opts.block_txs;
        // The simulator packs `block_txs` calls of `chain.gaslimit` gas into each shard's
        // block, as PREDA's chain simulator does: block limits are lifted (fees still apply).
        params.block_gas_per_shard = u64::MAX / 4;
        params.block_bytes_per_shard = usize::MAX / 4;
        params.block_relays_per_shard = usize::MAX / 4;
        params.block_gas_global = u64::MAX / 4;
        params.max_tx_gas = params.max_tx_gas.max(self.opts.gas);
        // Nor does it bound a call's relays (Kitty's registerNewBorns relays to every
        // newborn's owner): 4,096 on a chain.
        params.max_relays_per_call = SIMULATOR_RELAYS_PER_CALL;
        let order = params.shard_order;
        // Agents: the first synthetic accounts after the allocated ones that cover each shard.
        let mut agents: Vec<Option<Address>> = vec![None; order.shard_count()];
        let mut i = self.addrs.len() as u64;
        while agents.iter().any(Option::is_none) {
            let a = bench_address(i);
            let s = shard_of(&a, order).index();
            if agents[s].is_none() {
                agents[s] = Some(a);
            }
            i += 1;
        }
        self.agents = agents.into_iter().map(|a| a.expect("filled")).collect();
        let count = i;
        let each = (Amount::MAX_MONEY.to_sat() / count.max(1)).min(100 * Amount::ONE_BTC.to_sat());
        params.genesis_alloc = GenesisAlloc::Synthetic {
            count,
            amount: Amount::from_sat(each),
        };
        let dir = match &self.opts.datadir {
            Some(d) => d.clone(),
            None => {
                let t = tempfile::tempdir()?;
                let p = t.path().to_path_buf();
                self._tmp = Some(t);
                p
            }
        };
        let config = ChainConfig {
            threads: self.opts.threads,
            txindex: false,
            contract_receipts: false,
            log_contracts: !self.opts.perftest,
            flush_every_blocks: 64,
            ..ChainConfig::default()
        };
        let chain =
            Chain::open(&dir, params, config, Arc::new(TestSealer)).context("opening the chain")?;
        self.chain = Some(chain);
        Ok(())
    }

    fn say(&mut self, s: impl AsRef<str>) {
        let _ = writeln!(self.out, "{}", s.as_ref());
    }

    fn hrp(&self) -> &'static str {
        Network::Regtest.address_hrp()
    }

    fn addr_text(&self, a: &Address) -> String {
        address_to_string(&a.0, self.hrp())
    }

    fn address_ref(&mut self, r: &str) -> Result<Address> {
        match r {
            "random" => {
                if self.addrs.is_empty() {
                    bail!("no addresses allocated (use allocate.address)");
                }
                let i = self.rng.next() as usize % self.addrs.len();
                Ok(self.addrs[i])
            }
            n => {
                let i: usize = self
                    .index(n)
                    .ok_or_else(|| anyhow!("unknown address reference @{n}"))?;
                self.addrs.get(i).copied().ok_or_else(|| {
                    anyhow!("@{i}: only {} addresses are allocated", self.addrs.len())
                })
            }
        }
    }

    /// The name of each contract the script deployed, by address.
    fn contract_names(&self) -> HashMap<Address, String> {
        self.contracts
            .iter()
            .map(|(n, a)| (*a, n.clone()))
            .collect()
    }

    /// A number written as such or a script variable holding one (`@n`, `#n`, `*n`).
    fn index(&self, w: &str) -> Option<usize> {
        w.parse().ok().or_else(|| {
            self.vars
                .get(w)
                .and_then(Json::as_u64)
                .and_then(|v| usize::try_from(v).ok())
        })
    }

    /// Fills the placeholders of one JSON template; `all` is the address `$@all$` stands for.
    /// Bare words naming script variables stand for their values.
    fn instantiate(&mut self, template: &str, all: Option<Address>) -> Result<Json> {
        let text = self.expand(template, all)?;
        relaxed_json_with(&text, Some(&self.vars))
    }

    /// `template` with its `$…$` placeholders drawn.
    fn expand(&mut self, template: &str, all: Option<Address>) -> Result<String> {
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            let j = after
                .find('$')
                .ok_or_else(|| anyhow!("unterminated `$` placeholder"))?;
            let ph = after[..j].trim();
            let text = if let Some(r) = ph.strip_prefix('@') {
                let a = if r == "all" {
                    all.ok_or_else(|| anyhow!("$@all$ outside an expansion"))?
                } else {
                    self.address_ref(r)?
                };
                self.addr_text(&a)
            } else if let Some(n) = ph
                .strip_prefix("bigint.random(")
                .and_then(|x| x.strip_suffix(')'))
            {
                let n: usize = n
                    .trim()
                    .parse()
                    .map_err(|_| anyhow!("bigint.random(n) needs a number"))?;
                let mut s = String::with_capacity(n);
                for k in 0..n.clamp(1, 2000) {
                    let d = (self.rng.next() % 10) as u8;
                    s.push((b'0' + if k == 0 { d.max(1) } else { d }) as char);
                }
                s
            } else {
                int_expr(ph, &mut self.rng)?.to_string()
            };
            out.push_str(&text);
            rest = &after[j + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn next_nonce(&mut self, a: Address) -> u64 {
        let n = self.nonces.entry(a).or_insert(0);
        let v = *n;
        *n += 1;
        v
    }

    fn enqueue(&mut self, from: Address, payload: Payload) -> Result<rexe_chain::Txid> {
        let nonce = self.next_nonce(from);
        let gas = self.opts.gas;
        let chain = self.chain()?;
        let p = chain.params();
        let tx = Tx {
            network: p.network,
            from,
            nonce,
            max_fee: p.min_base_fee,
            max_tip: p.min_base_fee,
            gas_limit: gas,
            expiry_height: u64::MAX,
            payload,
        };
        let s = shard_of(&from, p.shard_order).index();
        // Pre-verified: the simulator has no signatures.
        let tx = SignedTx::from_parts(tx, [0u8; 64]);
        let txid = tx.txid();
        self.queue[s].push(tx);
        Ok(txid)
    }

    fn busy(&mut self) -> Result<bool> {
        let queued = self.queue.iter().any(|q| !q.is_empty());
        let c = self.chain()?;
        Ok(queued || c.inbound().iter().any(|v| !v.is_empty()) || !c.global_inbound().is_empty())
    }

    /// Mines one block from the queue.
    fn step(&mut self) -> Result<()> {
        let max = self.opts.block_txs;
        let txs: Vec<Vec<SignedTx>> = self
            .queue
            .iter_mut()
            .map(|q| {
                let n = q.len().min(max);
                q.drain(..n).collect()
            })
            .collect();
        let n: u64 = txs.iter().map(|l| l.len() as u64).sum();
        for (p, l) in self.prof_txs.iter_mut().zip(&txs) {
            *p += l.len() as u64;
        }
        let perftest = self.opts.perftest;
        let chain = self.chain()?;
        let h = chain.tip_height() + 1;
        let now = chain.params().genesis_time + h;
        let miner = Signer::from_seed(b"rexe contract run").address();
        let mut block = chain
            .template_with(miner, now, txs, true)
            .map_err(|e| anyhow!("block {h} failed: {e}"))?;
        block.seal = TestSealer::seal(&block.header);
        chain
            .submit(block, now)
            .map_err(|e| anyhow!("block {h} rejected: {e}"))?;
        let ok = chain.audit_supply()?.holds() && chain.audit_assets()?.iter().all(|r| r.holds());
        let receipts = if perftest {
            Vec::new()
        } else {
            chain.last_contract_receipts().to_vec()
        };
        let (micro, reverted) = chain.last_micro_txs();
        let by_chunk = chain.last_micro_by_chunk().to_vec();
        for (p, m) in self.prof_micro.iter_mut().zip(by_chunk) {
            *p += m;
        }
        self.summary.supply_ok &= ok;
        self.summary.blocks += 1;
        self.summary.txs += n;
        self.summary.micro_txs += micro;
        self.summary.failed += reverted;
        self.watch_txs += n;
        self.watch_micro += micro;
        for r in &receipts {
            if let Some(t) = self.traced.get_mut(&r.txid) {
                t.push(r.clone());
            }
            for l in &r.logs {
                self.say(format!(
                    "[{} {}] {l}",
                    r.function,
                    serde_json::to_string(&r.target).unwrap_or_default()
                ));
            }
            if let Some(e) = &r.error {
                self.say(format!(
                    "[{} {}] reverted: {e}",
                    r.function,
                    serde_json::to_string(&r.target).unwrap_or_default()
                ));
            }
        }
        Ok(())
    }

    fn run_chain(&mut self) -> Result<()> {
        while self.busy()? {
            self.step()?;
        }
        Ok(())
    }

    fn deploy(&mut self, args: &str) -> Result<()> {
        let mut rest = args.trim();
        let deployer = if let Some(r) = rest.strip_prefix('@') {
            let n = r.find(char::is_whitespace).unwrap_or(r.len());
            let a = self.address_ref(&r[..n])?;
            rest = r[n..].trim_start();
            a
        } else {
            if let Some(r) = rest.strip_prefix('#') {
                let n = r.find(char::is_whitespace).unwrap_or(r.len());
                rest = r[n..].trim_start();
            }
            self.address_ref("0")?
        };
        // `FILE.prd[ = {json}]`, repeated.
        let mut files: Vec<(String, Option<Json>)> = Vec::new();
        while !rest.is_empty() {
            let n = rest
                .find(|c: char| c.is_whitespace() || c == '=')
                .unwrap_or(rest.len());
            let file = rest[..n].to_string();
            rest = rest[n..].trim_start();
            let mut init = None;
            if let Some(r) = rest.strip_prefix('=') {
                let r = r.trim_start();
                let end = matching_brace(r)
                    .ok_or_else(|| anyhow!("`=` must be followed by a JSON object"))?;
                init = Some(relaxed_json(&r[..end])?);
                rest = r[end..].trim_start();
            }
            files.push((file, init));
        }
        if files.is_empty() {
            bail!("chain.deploy needs a contract file");
        }
        for (file, init) in files {
            let file = file.split(':').next().unwrap_or(&file).to_string();
            if file.ends_with(".xtl") {
                let port = if file == "MP.xtl" {
                    " (rexe's examples/contracts/million_pixel.prd and .prdts are a PREDA port of PREDA's MillionPixel)"
                } else {
                    ""
                };
                bail!("{file}: Crystality (.xtl) contracts are not supported, only PREDA (.prd){port}");
            }
            let path = self.dir.join(&file);
            let source = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let (code, _) = self.chain()?.contracts().compile(&source).map_err(|e| {
                // One `FILE:LINE:COL: message` line per error.
                let lines: Vec<String> = e
                    .to_string()
                    .lines()
                    .map(|l| format!("{file}:{l}"))
                    .collect();
                anyhow!("{}", lines.join("\n"))
            })?;
            let name = code.name.clone();
            let args = match code.functions.iter().find(|f| f.name == "on_deploy") {
                Some(f) => abi::encode_args(&code, f, init.as_ref().unwrap_or(&json!({})))
                    .map_err(|e| anyhow!(e))?,
                None => Vec::new(),
            };
            let nonce = *self.nonces.get(&deployer).unwrap_or(&0);
            let addr = contract_address(&deployer, nonce);
            self.enqueue(deployer, Payload::Deploy { source, args })?;
            self.run_chain()?;
            if self.chain()?.contracts().get(&addr).is_none() {
                bail!("deploying {file} failed (see the reverted line above)");
            }
            let functions = code.functions.iter().filter(|f| f.export).count();
            self.say(format!(
                "deployed contract `{name}` at {} ({functions} exported function(s))",
                self.addr_text(&addr)
            ));
            if !self.serials.contains(&name) {
                self.serials.push(name.clone());
            }
            self.contracts.insert(name, addr);
        }
        Ok(())
    }

    /// `state.token mint SYMBOL by CONTRACT`: the contract's deployer registers its right to
    /// mint and burn the asset (a transaction to the contracts system, mined until it lands).
    fn mint_right(&mut self, rest: &str) -> Result<()> {
        let words: Vec<&str> = rest.split_whitespace().collect();
        let ["mint", symbol, "by", contract] = words[..] else {
            bail!("state.token is written `state.token mint SYMBOL by CONTRACT`");
        };
        let asset = AssetId::from_symbol(symbol).ok_or_else(|| {
            anyhow!("`{symbol}` is not an asset symbol: 3 to 8 of A-Z, '-' and '#', and not RXBTC (which no contract mints)")
        })?;
        let (addr, _) = self.contract(contract)?;
        let deployer = self
            .chain()?
            .contracts()
            .get(&addr)
            .ok_or_else(|| anyhow!("{contract} is not deployed"))?
            .deployer;
        let right = MintRight {
            asset,
            contract: addr,
        };
        self.enqueue(
            deployer,
            Payload::Call {
                contract: rexe_chain::system::SystemId::CONTRACTS,
                value: Amount::ZERO,
                data: right.call_data(),
            },
        )?;
        self.run_chain()?;
        match self.chain()?.contracts().minter(asset) {
            Some(a) if a == addr => {
                self.say(format!("contract `{contract}` may mint and burn {asset}"));
                Ok(())
            }
            Some(other) => bail!("{asset} is already minted by {}", self.addr_text(&other)),
            None => bail!("granting {contract} the right to mint {asset} failed"),
        }
    }

    /// `viz.addr @i|@all|@random [Contract]`: each address's rxBTC and asset wallets, or
    /// with a contract that contract's `@address` state there.
    fn show_addresses(&mut self, rest: &str) -> Result<()> {
        let mut words = rest.split_whitespace();
        let r = words.next().unwrap_or("@all");
        let Some(r) = r.strip_prefix('@') else {
            bail!("viz.addr takes @i, @all or @random, got {r}");
        };
        let addrs = if r == "all" {
            self.addrs.clone()
        } else {
            vec![self.address_ref(r)?]
        };
        if let Some(cname) = words.next() {
            let (contract, _) = self.contract(cname)?;
            for a in addrs {
                let state = self
                    .chain()?
                    .contract_state(&contract, &Target::Address(a))?
                    .unwrap_or(Json::Null);
                let line = format!("{} {cname}: {state}", self.addr_text(&a));
                self.say(line);
            }
            return Ok(());
        }
        for a in addrs {
            let chain = self.chain()?;
            let balance = chain.account(&a)?.balance;
            let assets = chain.asset_balances(&a)?;
            let mut line = format!("{}: {} RXBTC", self.addr_text(&a), balance.to_sat());
            for (asset, n) in assets {
                line.push_str(&format!(", {n} {asset}"));
            }
            self.say(line);
        }
        Ok(())
    }

    /// `viz.shard #g|#i|#all Contract`: the contract's `@global` or `@shard` state.
    fn show_shards(&mut self, rest: &str) -> Result<()> {
        let mut words = rest.split_whitespace();
        let (Some(r), Some(cname)) = (words.next(), words.next()) else {
            bail!("viz.shard takes #g, #i or #all and a contract name");
        };
        let (contract, _) = self.contract(cname)?;
        let n = 1u16 << self.opts.order;
        let targets: Vec<(String, Target)> = match r.trim_start_matches('#') {
            "g" | "global" => vec![("global".into(), Target::Global)],
            "all" => (0..n)
                .map(|i| (format!("shard #{i}"), Target::Shard(ShardId(i))))
                .collect(),
            i => {
                let i: u16 = i
                    .parse()
                    .ok()
                    .filter(|i| *i < n)
                    .ok_or_else(|| anyhow!("viz.shard {r}: no such shard (there are {n})"))?;
                vec![(format!("shard #{i}"), Target::Shard(ShardId(i)))]
            }
        };
        for (label, t) in targets {
            let state = self
                .chain()?
                .contract_state(&contract, &t)?
                .unwrap_or(Json::Null);
            self.say(format!("{cname} {label}: {state}"));
        }
        Ok(())
    }

    fn contract(&mut self, name: &str) -> Result<(Address, Arc<rexe_chain::lang::Verified>)> {
        let name = name.rsplit('.').next().unwrap_or(name);
        let by_cvid;
        let name = match name.parse::<u64>() {
            Ok(cvid) => {
                by_cvid = self.cvid_name(cvid)?;
                by_cvid.as_str()
            }
            Err(_) => name,
        };
        let addr = *self
            .contracts
            .get(name)
            .ok_or_else(|| anyhow!("no contract `{name}` deployed by this script"))?;
        let code = self
            .chain()?
            .contracts()
            .get(&addr)
            .expect("registered")
            .code
            .clone();
        Ok((addr, code))
    }

    /// The contract a PREDA contract version id names. PREDA's tool numbers a script's
    /// contracts in the order it first deploys them (serial 1, 2, …) and packs the serial
    /// with the dapp (1), the engine and the build into the id: dapp << 36 | engine << 32 |
    /// serial << 20 | build. rexe keeps the same order, so an id from PREDA's state files or
    /// scripts maps to the contract this script deployed at that place.
    fn cvid_name(&self, cvid: u64) -> Result<String> {
        let (dapp, serial) = (cvid >> 36, (cvid >> 20) & 0xfff);
        if dapp != 1 || serial == 0 {
            bail!("CVID {cvid} is not a contract of a PREDA script (dapp {dapp}, serial {serial})");
        }
        self.serials
            .get(serial as usize - 1)
            .cloned()
            .ok_or_else(|| {
                anyhow!(
                    "CVID {cvid} names the script's contract number {serial}, but it has deployed {}",
                    self.serials.len()
                )
            })
    }

    fn state(&mut self, rest: &str, update: bool) -> Result<()> {
        let (head, json_text) = match rest.find('{') {
            Some(i) => (rest[..i].trim(), &rest[i..]),
            None => bail!("state.set needs a JSON object"),
        };
        let mut words = head.split_whitespace();
        let mut what = words
            .next()
            .ok_or_else(|| anyhow!("state.set needs Contract.scope"))?;
        let mut count = 1usize;
        if let Some(n) = what.strip_prefix('*') {
            count = n.parse()?;
            what = words
                .next()
                .ok_or_else(|| anyhow!("state.set needs Contract.scope"))?;
        }
        let scope_ref = words.next();
        let (a, b) = what
            .split_once('.')
            .ok_or_else(|| anyhow!("expected Contract.scope, got {what}"))?;
        let (cname, scope) = match (a, b) {
            (c, s @ ("global" | "shard" | "address")) => (c, s),
            (s @ ("global" | "shard" | "address"), c) => (c, s),
            _ => bail!("expected Contract.global, Contract.shard or Contract.address, got {what}"),
        };
        let (addr, code) = self.contract(cname)?;
        let targets: Vec<(Target, Option<Address>)> = match (scope, scope_ref) {
            ("global", _) => vec![(Target::Global, None)],
            ("shard", Some(r)) => {
                let n = 1u16 << self.opts.order;
                match r.trim_start_matches('#') {
                    "all" => (0..n).map(|s| (Target::Shard(ShardId(s)), None)).collect(),
                    x => vec![(Target::Shard(ShardId(x.parse()?)), None)],
                }
            }
            ("address", Some(r)) => match r.trim_start_matches('@') {
                "all" => self
                    .addrs
                    .clone()
                    .into_iter()
                    .map(|a| (Target::Address(a), Some(a)))
                    .collect(),
                x => {
                    let mut v = Vec::new();
                    for _ in 0..count {
                        let a = self.address_ref(x)?;
                        v.push((Target::Address(a), Some(a)));
                    }
                    v
                }
            },
            (s, None) => bail!("state.set {cname}.{s} needs a target (#shard or @address)"),
            _ => unreachable!("matched above"),
        };
        let sk = match scope {
            "global" => ScopeKind::Global,
            "shard" => ScopeKind::Shard,
            _ => ScopeKind::Address,
        };
        for (t, a) in targets {
            let mut j = self.instantiate(json_text, a)?;
            if update {
                // state.update changes only the given variables.
                let hrp = self.hrp();
                let chain = self.chain()?;
                let cur = match &t {
                    Target::Global => chain.contracts().global_json(&addr, hrp),
                    t => chain.contract_state(&addr, t)?,
                };
                let mut merged = cur.and_then(|v| v.as_object().cloned()).unwrap_or_default();
                for (k, v) in j
                    .as_object()
                    .ok_or_else(|| anyhow!("state must be a JSON object"))?
                {
                    merged.insert(k.clone(), v.clone());
                }
                j = Json::Object(merged);
            }
            let vals = abi::row_from_json(&code, sk, &j, None).map_err(|e| anyhow!(e))?;
            self.chain()?
                .force_contract_state(&addr, &t, vals)
                .map_err(|e| anyhow!(e))?;
        }
        Ok(())
    }

    /// `state.save address|shard.Contract|all FILE`: PREDA's state file, a JSON array of
    /// `{"Address": a, "States": [{"CVID": C, "State": {…}}, …]}` (address scope, one object
    /// per allocated address) or `{"ShardIndex": "#g"|"#i", "States": […]}` (shard scope,
    /// the global state as `#g`). rexe has no contract version ids: `CVID` is the
    /// contract's name.
    fn save_state(&mut self, rest: &str) -> Result<()> {
        let mut words = rest.split_whitespace();
        let (Some(what), Some(file)) = (words.next(), words.next()) else {
            bail!("state.save takes address.Contract, shard.Contract (or .all) and a file name");
        };
        let (scope, which) = what
            .split_once('.')
            .ok_or_else(|| anyhow!("state.save {what}: expected address.C or shard.C"))?;
        let mut names: Vec<String> = if which == "all" {
            self.contracts.keys().cloned().collect()
        } else {
            self.contract(which)?;
            vec![which.to_string()]
        };
        names.sort();
        let mut contracts = Vec::new();
        for n in names {
            let (c, _) = self.contract(&n)?;
            contracts.push((n, c));
        }
        let hrp = self.hrp();
        self.chain()?;
        let mut out = Vec::new();
        let states_of = |chain: &mut Chain, t: &Target| -> Result<Vec<Json>> {
            let mut v = Vec::new();
            for (n, c) in &contracts {
                let state = match t {
                    Target::Global => chain.contracts().global_json(c, hrp),
                    t => chain.contract_state(c, t)?,
                };
                // Contracts with no variable in this scope have nothing to save.
                if let Some(s) = state.filter(|s| s.as_object().is_some_and(|o| !o.is_empty())) {
                    v.push(json!({"CVID": n, "State": s}));
                }
            }
            Ok(v)
        };
        match scope {
            "address" => {
                for a in self.addrs.clone() {
                    let states =
                        states_of(self.chain.as_mut().expect("opened"), &Target::Address(a))?;
                    if !states.is_empty() {
                        out.push(
                            json!({"Address": address_to_string(&a.0, hrp), "States": states}),
                        );
                    }
                }
            }
            "shard" => {
                let n = 1u16 << self.opts.order;
                let targets = std::iter::once(("#g".to_string(), Target::Global))
                    .chain((0..n).map(|i| (format!("#{i}"), Target::Shard(ShardId(i)))));
                for (label, t) in targets {
                    let states = states_of(self.chain.as_mut().expect("opened"), &t)?;
                    if !states.is_empty() {
                        out.push(json!({"ShardIndex": label, "States": states}));
                    }
                }
            }
            other => bail!("state.save {other}: the scope is address or shard"),
        }
        let path = self.dir.join(file);
        std::fs::write(&path, serde_json::to_string_pretty(&Json::Array(out))?)
            .with_context(|| format!("writing {}", path.display()))?;
        self.say(format!("{scope} states written to {file}"));
        Ok(())
    }

    /// `state.load <address|shard|global> FILE[.json]`: sets the states of a file
    /// [`Self::save_state`] wrote (or PREDA's, where its `CVID`s are contract names), as
    /// `state.set` does.
    fn load_state(&mut self, rest: &str) -> Result<()> {
        let rest = rest.trim();
        let (scope, file) = rest
            .strip_prefix('<')
            .and_then(|r| r.split_once('>'))
            .map(|(s, f)| (s.trim(), f.trim()))
            .ok_or_else(|| anyhow!("state.load takes <address>, <shard> or <global> and a file"))?;
        let mut path = self.dir.join(file);
        if !path.exists() && !file.ends_with(".json") {
            path = self.dir.join(format!("{file}.json"));
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let entries: Vec<Json> = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a JSON array of states", path.display()))?;
        let shards = 1u16 << self.opts.order;
        let mut set = 0usize;
        for e in entries {
            let target = match scope {
                "address" => {
                    let a = e["Address"]
                        .as_str()
                        .and_then(rexe_chain::lang::value::parse_address)
                        .ok_or_else(|| {
                            anyhow!("{file}: an entry without a valid \"Address\": {e}")
                        })?;
                    Target::Address(Address(a))
                }
                "shard" | "global" => match e["ShardIndex"].as_str() {
                    Some("#g") => Target::Global,
                    Some(i) => {
                        let i: u16 = i
                            .trim_start_matches('#')
                            .parse()
                            .ok()
                            .filter(|i| *i < shards)
                            .ok_or_else(|| anyhow!("{file}: no shard {i} (there are {shards})"))?;
                        Target::Shard(ShardId(i))
                    }
                    None => bail!("{file}: an entry without \"ShardIndex\": {e}"),
                },
                other => bail!("state.load <{other}>: the scope is address, shard or global"),
            };
            let states = e["States"]
                .as_array()
                .ok_or_else(|| anyhow!("{file}: an entry without \"States\": {e}"))?;
            for st in states {
                let name = st["CVID"]
                    .as_str()
                    .map(str::to_string)
                    .or_else(|| st["CVID"].as_u64().map(|n| n.to_string()))
                    .ok_or_else(|| anyhow!("{file}: a state without \"CVID\""))?;
                let (addr, code) = self.contract(&name)?;
                let sk = match &target {
                    Target::Global => ScopeKind::Global,
                    Target::Shard(_) => ScopeKind::Shard,
                    _ => ScopeKind::Address,
                };
                let vals = abi::row_from_json(&code, sk, &st["State"], None)
                    .map_err(|e| anyhow!("{file}: {name}: {e}"))?;
                self.chain()?
                    .force_contract_state(&addr, &target, vals)
                    .map_err(|e| anyhow!(e))?;
                set += 1;
            }
        }
        self.say(format!("{set} {scope} state(s) loaded from {file}"));
        Ok(())
    }

    fn transaction(&mut self, line: &str) -> Result<()> {
        // Optional `name = ` / `name[] = `.
        let (name, body) = match line.find('=') {
            Some(i) if !line[..i].contains('{') && !line[..i].contains('.') => (
                Some(line[..i].trim().trim_end_matches("[]").trim().to_string()),
                line[i + 1..].trim(),
            ),
            _ => (None, line),
        };
        // `… <= (100RXBTC)`: tokens supplied with the call (after the arguments).
        let (body, value_clause) = match body.rfind("<=") {
            Some(i) if !body[i..].contains('}') => (body[..i].trim(), Some(&body[i + 2..])),
            _ => (body, None),
        };
        let (head, json_text) = match body.find('{') {
            Some(i) => (body[..i].trim(), Some(&body[i..])),
            None => (body.trim(), None),
        };
        // `C.fn*N @x` with optional spaces around `*`.
        let head = head
            .replace(" * ", "*")
            .replace("* ", "*")
            .replace(" *", "*");
        let mut words = head.split_whitespace();
        let call = words
            .next()
            .ok_or_else(|| anyhow!("empty transaction line"))?;
        let scope_ref = words.next();
        if let Some(extra) = words.next() {
            bail!("unexpected `{extra}`");
        }
        let (call, count) = match call.split_once('*') {
            Some((c, n)) => (c, self.index(n).ok_or_else(|| anyhow!("bad count *{n}"))?),
            None => (call, 1),
        };
        let (cname, fname) = call
            .rsplit_once('.')
            .ok_or_else(|| anyhow!("expected Contract.function, got {call}"))?;
        let (addr, code) = self.contract(cname)?;
        let template = json_text.unwrap_or("{}").to_string();
        // An overloaded name: the overload the (first instance of the) arguments fit.
        let (_, f) = match code.function(fname) {
            Some(found) => found,
            None => {
                let first = self.instantiate(&template, None)?;
                let (i, _, _) =
                    abi::select(&code, fname, &first).map_err(|e| anyhow!("{cname}.{e}"))?;
                (i, &code.functions[i as usize])
            }
        };
        let fname_sent = if code.overloads(&f.name).len() > 1 {
            code.signature(f)
        } else {
            f.name.clone()
        };
        if !f.export {
            bail!("{cname}.{fname} is not exported");
        }
        let f = f.clone();
        let mut named = Vec::new();
        let expands = template.contains("$@all$");
        // Senders: for address functions the scope target; otherwise any funded account.
        let mut senders: Vec<(Address, Option<Address>)> = Vec::new();
        let order = rexe_chain::ShardOrder::new(self.opts.order)?;
        match scope_ref {
            Some(r) if r.starts_with('@') => {
                let r = &r[1..];
                if r == "all" {
                    for a in self.addrs.clone() {
                        for _ in 0..count {
                            senders.push((a, Some(a)));
                        }
                    }
                } else {
                    for _ in 0..count {
                        let a = self.address_ref(r)?;
                        senders.push((a, if expands { Some(a) } else { None }));
                    }
                }
            }
            Some(r) if r.starts_with('#') => {
                let r = &r[1..];
                let shards: Vec<usize> = match r {
                    "all" => (0..order.shard_count()).collect(),
                    "g" => vec![0],
                    "random" => vec![self.rng.next() as usize % order.shard_count()],
                    n => vec![self.index(n).ok_or_else(|| anyhow!("bad shard #{n}"))?],
                };
                for s in shards {
                    let agent = *self.agents.get(s).ok_or_else(|| anyhow!("no shard #{s}"))?;
                    for _ in 0..count {
                        senders.push((agent, None));
                    }
                }
            }
            Some(r) => bail!("unknown target `{r}`"),
            None => {
                if f.scope == ScopeKind::Address {
                    bail!("{cname}.{fname} is an @address function: say which address (@i, @all or @random)");
                }
                if expands {
                    for a in self.addrs.clone() {
                        for _ in 0..count {
                            senders.push((a, Some(a)));
                        }
                    }
                } else {
                    let a = self.address_ref("0")?;
                    for _ in 0..count {
                        senders.push((a, None));
                    }
                }
            }
        }
        if f.scope == ScopeKind::Shard && !scope_ref.is_some_and(|r| r.starts_with('#')) {
            bail!("{cname}.{fname} is a @shard function: say which shard (#i or #all)");
        }
        for (from, all) in senders {
            let (value, assets) = match value_clause {
                Some(c) => supplied(&self.expand(c, all)?)?,
                None => (rexe_chain::Amount::ZERO, Assets::new()),
            };
            let args = self.instantiate(&template, all)?;
            let bytes =
                abi::encode_args(&code, &f, &args).map_err(|e| anyhow!("{cname}.{fname}: {e}"))?;
            let txid = self.enqueue(
                from,
                Payload::ContractCall {
                    contract: addr,
                    function: fname_sent.clone(),
                    args: bytes,
                    value,
                    assets,
                },
            )?;
            if name.is_some() {
                named.push(txid);
                self.traced.insert(txid, Vec::new());
            }
        }
        if let Some(n) = name {
            self.named.insert(n, named);
        }
        Ok(())
    }

    /// `viz.txn NAME[i]` (the transactions' own calls) and `viz.trace NAME[i]` (each with
    /// the relays it caused, in execution order): from the receipts of the blocks that ran
    /// them.
    fn show_named(&mut self, rest: &str, trace: bool) -> Result<()> {
        let what = rest.split_whitespace().next().unwrap_or_default();
        let (name, index) = match what.split_once('[') {
            Some((n, i)) => {
                let i: usize = i
                    .trim_end_matches(']')
                    .parse()
                    .map_err(|_| anyhow!("bad index in {what}"))?;
                (n, Some(i))
            }
            None => (what, None),
        };
        let txids = self.named.get(name).ok_or_else(|| {
            anyhow!("no transactions named `{name}` (name them with `{name} = C.f …`)")
        })?;
        let txids: Vec<(usize, rexe_chain::Txid)> = match index {
            Some(i) => vec![(
                i,
                *txids.get(i).ok_or_else(|| {
                    anyhow!("{what}: `{name}` has {} transaction(s)", txids.len())
                })?,
            )],
            None => txids.iter().copied().enumerate().collect(),
        };
        if self.opts.perftest {
            self.say(format!(
                "{what}: not shown under -perftest (receipts are not kept)"
            ));
            return Ok(());
        }
        for (i, txid) in txids {
            let receipts = self.traced.get(&txid).cloned().unwrap_or_default();
            if receipts.is_empty() {
                self.say(format!("{name}[{i}] {txid}: not executed yet"));
                continue;
            }
            let shown = if trace { receipts.len() } else { 1 };
            for (k, r) in receipts.iter().take(shown).enumerate() {
                let outcome = match (&r.error, &r.result) {
                    (Some(e), _) => format!("reverted: {e}"),
                    (None, Some(v)) => format!("returned {v}"),
                    (None, None) => "ok".to_string(),
                };
                let lead = if k == 0 {
                    format!("{name}[{i}] {txid}")
                } else {
                    "  relay".to_string()
                };
                let lane = if r.shard == ShardId::GLOBAL {
                    "the global lane".to_string()
                } else {
                    format!("shard #{}", r.shard.0)
                };
                self.say(format!(
                    "{lead}: {} {} on {lane}, gas {}, {} relay(s), {outcome}",
                    r.function,
                    serde_json::to_string(&r.target).unwrap_or_default(),
                    r.gas_used,
                    r.relays,
                ));
            }
        }
        Ok(())
    }

    fn info(&mut self) -> Result<()> {
        let order = rexe_chain::ShardOrder::new(self.opts.order)?;
        let mut per_shard = vec![0usize; order.shard_count()];
        for a in &self.addrs {
            per_shard[shard_of(a, order).index()] += 1;
        }
        let queued: Vec<usize> = self.queue.iter().map(Vec::len).collect();
        let (height, inbound, lane): (u64, Vec<usize>, usize) = {
            let c = self.chain()?;
            (
                c.tip_height(),
                c.inbound().iter().map(Vec::len).collect(),
                c.global_inbound().len(),
            )
        };
        self.say(format!("Global: h:{height} relays:{lane}"));
        for (s, n) in per_shard.iter().enumerate() {
            self.say(format!(
                "Shd#{s}: txn:{} relays:{} addr:{n}",
                queued[s], inbound[s]
            ));
        }
        self.say(format!(
            "Total Txn:{}/{} uTxn:{} reverted:{}",
            self.summary.txs,
            queued.iter().sum::<usize>(),
            self.summary.micro_txs,
            self.summary.failed
        ));
        Ok(())
    }

    /// `viz.profiling`: per shard (the global lane first, as PREDA lists it) the chain
    /// height, the transactions given to it and the micro-transactions it ran since
    /// `stopwatch.restart`, and their rates over the stopwatch's time.
    fn show_profile(&mut self) -> Result<()> {
        let secs = self.watch.elapsed().as_secs_f64().max(1e-9);
        let height = self.chain()?.tip_height();
        let ms = (secs * 1000.0).round();
        self.say(format!("Profiling (since stopwatch.restart, {ms} msec):"));
        let shards = self.prof_txs.len();
        let rows: Vec<(String, u64, u64)> = std::iter::once((
            "#g".to_string(),
            0,
            self.prof_micro.get(shards).copied().unwrap_or(0),
        ))
        .chain((0..shards).map(|s| (format!("#{s}"), self.prof_txs[s], self.prof_micro[s])))
        .collect();
        for (label, txs, micro) in rows {
            let (tps, utps) = (txs as f64 / secs, micro as f64 / secs);
            self.say(format!(
                "{label}: height {height}, txn {txs}, uTxn {micro}, TPS:{tps:.0}, uTPS:{utps:.0}"
            ));
        }
        Ok(())
    }

    /// `viz.block #i|#g|#all[:height]`: a block's header and, per shard, the transactions it
    /// carried (every block when no height is given, the last 16 of them at most). The
    /// global lane runs relays, not transactions: `#g` shows the header only.
    fn show_block(&mut self, rest: &str) -> Result<()> {
        const MAX_BLOCKS: u64 = 16;
        const MAX_TXS: usize = 16;
        let r = rest.trim();
        let (scope, height) = match r.split_once(':') {
            Some((s, h)) => (
                s.trim(),
                Some(
                    h.trim()
                        .parse::<u64>()
                        .map_err(|_| anyhow!("viz.block {r}: bad height `{h}`"))?,
                ),
            ),
            None => (r, None),
        };
        let n = 1usize << self.opts.order;
        let shards: Vec<usize> = match scope.strip_prefix('#') {
            Some("g") | Some("global") => Vec::new(),
            Some("all") => (0..n).collect(),
            Some(i) => vec![self
                .index(i)
                .filter(|i| *i < n)
                .ok_or_else(|| anyhow!("viz.block {scope}: no such shard (there are {n})"))?],
            None => bail!("viz.block takes #g, #i or #all, and :height"),
        };
        let tip = self.chain()?.tip_height();
        let heights: Vec<u64> = match height {
            Some(h) if h > tip => bail!("viz.block {r}: the chain's height is {tip}"),
            Some(h) => vec![h],
            None => {
                if tip + 1 > MAX_BLOCKS {
                    self.say(format!(
                        "viz.block {scope}: the last {MAX_BLOCKS} of {} blocks",
                        tip + 1
                    ));
                }
                (tip.saturating_sub(MAX_BLOCKS - 1)..=tip).collect()
            }
        };
        let names = self.contract_names();
        for h in heights {
            let chain = self.chain()?;
            let hash = chain
                .hash_at(h)
                .ok_or_else(|| anyhow!("no block at height {h}"))?;
            let block = chain
                .block(hash)?
                .ok_or_else(|| anyhow!("block {h} is not stored"))?;
            let hd = &block.header;
            let miner = self.addr_text(&hd.miner);
            self.say(format!(
                "Block {h} {hash}: prev {}, time {}, miner {miner}",
                hd.prev, hd.time
            ));
            for &s in &shards {
                let txs = block.txs.get(s).map(Vec::as_slice).unwrap_or_default();
                self.say(format!("  #{s}: {} transaction(s)", txs.len()));
                for t in txs.iter().take(MAX_TXS) {
                    let what = match &t.tx.payload {
                        Payload::ContractCall {
                            contract, function, ..
                        } => {
                            let c = names
                                .get(contract)
                                .cloned()
                                .unwrap_or_else(|| self.addr_text(contract));
                            format!("{c}.{function}")
                        }
                        Payload::Transfer { to, amount } => {
                            format!("transfer {} sat to {}", amount.to_sat(), self.addr_text(to))
                        }
                        Payload::Deploy { .. } => "deploy".to_string(),
                        _ => "system call".to_string(),
                    };
                    let from = self.addr_text(&t.tx.from);
                    self.say(format!("    {} from {from}: {what}", t.txid()));
                }
                if txs.len() > MAX_TXS {
                    self.say(format!("    … and {} more", txs.len() - MAX_TXS));
                }
            }
        }
        Ok(())
    }

    /// `viz.uint_scope #N C:KEY|all`: contract C's state in its `@uintN` scope for one key,
    /// or for every key that has state.
    fn show_uint_scope(&mut self, rest: &str) -> Result<()> {
        let mut words = rest.split_whitespace();
        let (Some(bits), Some(target)) = (words.next(), words.next()) else {
            bail!("viz.uint_scope takes #32|#64|#128|#256|#512 and CONTRACT:KEY or CONTRACT:all");
        };
        let scope = bits
            .strip_prefix('#')
            .and_then(|b| b.parse::<u16>().ok())
            .and_then(ScopeKind::for_uint)
            .ok_or_else(|| {
                anyhow!("viz.uint_scope {bits}: the scopes are #32, #64, #128, #256 and #512")
            })?;
        let (cname, key) = target
            .split_once(':')
            .ok_or_else(|| anyhow!("viz.uint_scope: expected CONTRACT:KEY or CONTRACT:all"))?;
        let (contract, _) = self.contract(cname)?;
        let width = scope.uint_bits().expect("an integer scope") as usize / 8;
        let keys: Vec<Vec<u8>> = if key == "all" {
            let rows = self.chain()?.all_contract_state()?;
            let mut keys: Vec<Vec<u8>> = rows
                .iter()
                .filter_map(|(k, _)| match parse_state_key(k)? {
                    (c, Target::Uint(s, k)) if c == contract && s == scope => Some(k),
                    _ => None,
                })
                .collect();
            keys.sort();
            keys.dedup();
            keys
        } else {
            let k = crate::contract_rpc::uint_key(scope, key).map_err(|e| {
                anyhow!(
                    "viz.uint_scope: `{key}` is not a key of the @uint{} scope (a number or all): {e}",
                    width * 8
                )
            })?;
            vec![k]
        };
        if keys.is_empty() {
            self.say(format!("{cname} @uint{}: no state", width * 8));
        }
        for k in keys {
            let le: Vec<u8> = k.iter().rev().copied().collect();
            let label = rexe_chain::lang::num::Int::from_le(&le, false).to_string();
            let state = self
                .chain()?
                .contract_state(&contract, &Target::Uint(scope, k))?
                .unwrap_or(Json::Null);
            self.say(format!("{cname} @uint{} {label}: {state}", width * 8));
        }
        Ok(())
    }

    /// `NAME = csv.from(FILE.csv)`: reads transactions from a CSV file (relative to the
    /// script) whose header names the columns `contract_name`, `contract_function`,
    /// `sender` (`N` for address N, `#N` for a shard, as in transaction lines) and
    /// `parameters` (JSON, its quotes doubled as CSV writes them); other columns are
    /// ignored. Each row is kept as a transaction line for `chain.batch_insert_txn NAME`.
    fn csv_from(&mut self, line: &str) -> Result<()> {
        let (name, call) = line
            .split_once('=')
            .ok_or_else(|| anyhow!("expected NAME = csv.from(FILE.csv)"))?;
        let name = name.trim();
        let path = call
            .trim()
            .strip_prefix("csv.from")
            .map(str::trim)
            .and_then(|p| p.strip_prefix('('))
            .and_then(|p| p.strip_suffix(')'))
            .map(str::trim)
            .ok_or_else(|| anyhow!("expected NAME = csv.from(FILE.csv)"))?;
        if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
            bail!("`{name}` is not a variable name");
        }
        let file = self.dir.join(path);
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let rows = csv_transactions(&text).map_err(|e| anyhow!("{}: {e}", file.display()))?;
        self.say(format!(
            "{} transaction(s) read from {path} into `{name}`",
            rows.len()
        ));
        self.batches.insert(name.to_string(), rows);
        Ok(())
    }

    /// Runs one logical line.
    pub fn line(&mut self, raw: &str) -> Result<()> {
        let line = substitute(raw, &self.opts.vars)?;
        let (cmd, rest) = match line.find(char::is_whitespace) {
            Some(i) => (&line[..i], line[i..].trim()),
            None => (line.as_str(), ""),
        };
        let text = |r: &str| r.trim().trim_matches('"').to_string();
        match cmd {
            "random.reseed" => {
                let seed = if rest.is_empty() {
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_nanos() as u64)
                        .unwrap_or(0)
                } else {
                    rest.parse()
                        .map_err(|_| anyhow!("random.reseed takes a number"))?
                };
                self.rng = Rng(seed);
                self.say(format!("random seed {seed}"));
            }
            "allocate.address" => {
                if self.chain.is_some() {
                    bail!("allocate.address must come before the first chain command");
                }
                let n: usize = if rest.is_empty() { 1 } else { rest.parse()? };
                let start = self.addrs.len() as u64;
                self.addrs
                    .extend((start..start + n as u64).map(bench_address));
                self.say(format!(
                    "{n} addresses allocated ({} in all)",
                    self.addrs.len()
                ));
            }
            "chain.gaslimit" => self.say(format!(
                "chain.gaslimit {rest}: ignored (each transaction buys --gas)"
            )),
            "chain.deploy" => self.deploy(rest)?,
            "chain.run" | "chain.await" => self.run_chain()?,
            "chain.step" => self.step()?,
            "chain.stop" => {}
            "chain.info" => self.info()?,
            "chain.batch_insert_txn" => {
                let lines = self.batches.get(rest).cloned().ok_or_else(|| {
                    anyhow!("no transactions were read into `{rest}` (NAME = csv.from(FILE.csv))")
                })?;
                for l in &lines {
                    self.transaction(l)?;
                }
                self.say(format!(
                    "{} transaction line(s) of `{rest}` issued",
                    lines.len()
                ));
            }
            _ if line.contains("csv.from") => self.csv_from(&line)?,
            "state.set" => self.state(rest, false)?,
            "state.update" => self.state(rest, true)?,
            c if c.starts_with("state.set*") || c.starts_with("state.update*") => {
                let (name, n) = c.split_once('*').expect("has *");
                self.state(&format!("*{n} {rest}"), name == "state.update")?
            }
            "state.token" => self.mint_right(rest)?,
            "state.save" => self.save_state(rest)?,
            "state.load" => self.load_state(rest)?,
            "log" => {
                let t = text(rest);
                self.say(t);
            }
            "log.highlight" => {
                let t = text(rest);
                self.say(format!("== {t} =="));
            }
            "log.warning" => {
                let t = text(rest);
                self.say(format!("warning: {t}"));
            }
            "log.error" => {
                let t = text(rest);
                self.say(format!("error: {t}"));
            }
            "stopwatch.restart" => {
                self.watch = Instant::now();
                self.watch_txs = 0;
                self.watch_micro = 0;
                self.prof_txs.iter_mut().for_each(|n| *n = 0);
                self.prof_micro.iter_mut().for_each(|n| *n = 0);
            }
            "stopwatch.report" => {
                let secs = self.watch.elapsed().as_secs_f64();
                let ms = (secs * 1000.0).round();
                let tps = self.watch_txs as f64 / secs.max(1e-9);
                let utps = self.watch_micro as f64 / secs.max(1e-9);
                self.say(format!("Stopwatch: {ms} msec"));
                self.say(format!(
                    "Order: {}, TPS:{tps:.0}, uTPS:{utps:.0}",
                    self.opts.order
                ));
            }
            "viz.addr" => self.show_addresses(rest)?,
            "viz.shard" => self.show_shards(rest)?,
            "viz.txn" => self.show_named(rest, false)?,
            "viz.trace" => self.show_named(rest, true)?,
            "viz.section" => {
                let t = text(rest);
                self.say(format!("== {t} =="));
            }
            "viz.profiling" => self.show_profile()?,
            "viz.block" => self.show_block(rest)?,
            "viz.uint_scope" => self.show_uint_scope(rest)?,
            // Views PREDA's grammar does not have.
            c if c.starts_with("viz.") => {
                if self.viz_noted.insert(c.to_string()) {
                    self.say(format!(
                        "{c}: not shown (rexe prints viz.addr, viz.shard, viz.txn, viz.trace, viz.block, viz.uint_scope, viz.profiling and viz.section)"
                    ));
                }
            }
            _ => match variable_assignment(&line) {
                Some((name, value)) => {
                    let v = match self.vars.get(value) {
                        Some(v) => v.clone(),
                        // A number or a string literal as JSON reads it, else the word itself.
                        None => serde_json::from_str(value).or_else(|_| relaxed_json(value))?,
                    };
                    self.vars.insert(name.to_string(), v);
                }
                None => self.transaction(&line)?,
            },
        }
        Ok(())
    }

    /// Sums of every integer non-global state variable per contract (`Contract.variable`).
    fn sums(&mut self) -> Result<BTreeMap<String, String>> {
        let mut sums: BTreeMap<String, rexe_chain::lang::num::Int> = BTreeMap::new();
        let names = self.contract_names();
        let rows = self.chain()?.all_contract_state()?;
        for (k, v) in rows {
            let Some((c, t)) = parse_state_key(&k) else {
                continue;
            };
            let Some(name) = names.get(&c) else { continue };
            let code = self
                .chain()?
                .contracts()
                .get(&c)
                .expect("registered")
                .code
                .clone();
            let vals = rexe_chain::lang::vm::decode_row(&code, t.scope(), &v)?;
            for (n, ((var, _), val)) in code.state_of(t.scope()).iter().zip(vals).enumerate() {
                // A stored array's row value is its length, not a number to sum.
                if rexe_chain::lang::layout::is_stored(&code, t.scope(), n) {
                    continue;
                }
                if let rexe_chain::lang::value::Value::Int(i) = val {
                    let e = sums
                        .entry(format!("{name}.{var}"))
                        .or_insert(rexe_chain::lang::num::Int::ZERO);
                    *e = e
                        .add(&i, rexe_chain::lang::num::NumTy::Big)
                        .unwrap_or(rexe_chain::lang::num::Int::ZERO);
                }
            }
        }
        Ok(sums.into_iter().map(|(k, v)| (k, v.to_decimal())).collect())
    }

    /// Runs a whole script.
    pub fn run(mut self, src: &str) -> Result<Summary> {
        for (n, l) in lines(src) {
            self.line(&l).with_context(|| format!("line {n}: {l}"))?;
        }
        if self.chain.is_some() {
            self.summary.sums = self.sums()?;
        }
        Ok(self.summary)
    }
}

/// The transaction lines of a PREDA transaction CSV (see [`Runner::csv_from`]).
fn csv_transactions(text: &str) -> Result<Vec<String>> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or_else(|| anyhow!("empty file"))?;
    let cols: Vec<&str> = header.split(',').map(str::trim).collect();
    let col = |n: &str| {
        cols.iter().position(|c| *c == n).ok_or_else(|| {
            anyhow!("line 1: the header needs the columns contract_name, contract_function, sender and parameters (missing {n})")
        })
    };
    let (c, f, s) = (
        col("contract_name")?,
        col("contract_function")?,
        col("sender")?,
    );
    col("parameters")?;
    let mut out = Vec::new();
    for (i, l) in lines {
        let fields: Vec<&str> = l.split(',').map(str::trim).collect();
        if fields.len() < cols.len() {
            bail!(
                "line {}: {} fields, the header has {}",
                i + 1,
                fields.len(),
                cols.len()
            );
        }
        let (Some(open), Some(close)) = (l.find('{'), l.rfind('}')) else {
            bail!("line {}: no {{…}} parameters", i + 1);
        };
        let json = l[open..=close].replace("\"\"", "\"");
        let sender = fields[s].trim_matches('"');
        let target = match sender {
            "" => String::new(),
            t if t.starts_with('#') => t.to_string(),
            t => format!("@{t}"),
        };
        out.push(format!(
            "{}.{} {target} {json}",
            fields[c].trim_matches('"'),
            fields[f].trim_matches('"')
        ));
    }
    Ok(out)
}

/// The tokens of a `<= (…)` clause: `(N SYMBOL[, …])`: rxBTC (`RXBTC`, in satoshis) and
/// other assets, in base units.
fn supplied(clause: &str) -> Result<(rexe_chain::Amount, Assets)> {
    let inner = clause
        .trim()
        .strip_prefix('(')
        .and_then(|c| c.strip_suffix(')'))
        .ok_or_else(|| anyhow!("tokens are written `<= (100RXBTC)`"))?;
    let mut total = rexe_chain::Amount::ZERO;
    let mut assets: BTreeMap<AssetId, u64> = BTreeMap::new();
    for item in inner.split(',') {
        let item = item.trim();
        let digits = item
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(item.len());
        let n: u64 = item[..digits]
            .parse()
            .map_err(|_| anyhow!("`{item}`: expected an amount then a symbol, as 100RXBTC"))?;
        let symbol = item[digits..].trim();
        if symbol != rexe_chain::lang::token::RXBTC_SYMBOL {
            let a = AssetId::from_symbol(symbol).ok_or_else(|| {
                anyhow!("`{symbol}` is not a token symbol: 3 to 8 of A-Z, '-' and '#'")
            })?;
            let x = assets.entry(a).or_default();
            *x = x
                .checked_add(n)
                .ok_or_else(|| anyhow!("more {symbol} than 64 bits hold"))?;
            continue;
        }
        total = total
            .checked_add(rexe_chain::Amount::from_sat(n))
            .filter(|t| *t <= rexe_chain::Amount::MAX_MONEY)
            .ok_or_else(|| anyhow!("more rxBTC than exists"))?;
    }
    if assets.len() > rexe_chain::asset::MAX_ATTACHED {
        bail!(
            "a call attaches at most {} assets besides rxBTC",
            rexe_chain::asset::MAX_ATTACHED
        );
    }
    let assets = Assets::from_pairs(assets.into_iter().collect()).expect("one entry per asset");
    Ok((total, assets))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_may_span_lines_inside_braces() {
        let src = "A.f #1 {\n  a: 1,\n  b: [1,\n    2],\n  s: \"} not a brace\"\n}\nchain.run\nlog \"{\"\nx \\\n y\n";
        let got = lines(src);
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!(got[0].0, 1);
        assert_eq!(
            relaxed_json(got[0].1.strip_prefix("A.f #1 ").unwrap()).unwrap(),
            json!({"a": 1, "b": [1, 2], "s": "} not a brace"})
        );
        assert_eq!(got[1], (7, "chain.run".to_string()));
        assert_eq!(got[2], (8, "log \"{\"".to_string()));
        assert_eq!(got[3], (9, "x   y".to_string()));
    }

    #[test]
    fn relaxed_json_and_placeholders() {
        let v = relaxed_json(r#"{ to:"x", amount: 5, list: [1, {a: true}], w: trx1abc }"#).unwrap();
        assert_eq!(
            v,
            json!({"to": "x", "amount": 5, "list": [1, {"a": true}], "w": "trx1abc"})
        );
        let mut rng = Rng(1);
        for _ in 0..100 {
            let x = int_expr("random(1000, 2000)*100", &mut rng).unwrap();
            assert!((100_000..=200_000).contains(&x) && x % 100 == 0);
        }
        assert_eq!(int_expr("2 + 3 * 4 - 10 / 5", &mut rng).unwrap(), 12);
        let vars = HashMap::from([("count".to_string(), "7".to_string())]);
        assert_eq!(
            substitute("T.f*$~count$ @random { m: $random(1, ~count-1)$ }", &vars).unwrap(),
            "T.f*7 @random { m: $random(1, 7-1)$ }"
        );
        assert!(substitute("allocate.address $~addr$", &vars).is_err());
        let ls = lines("a \\\n b // c\n/* x */ d \"//not\"\n");
        assert_eq!(
            ls,
            vec![(1, "a   b".to_string()), (3, "d \"//not\"".to_string())]
        );
    }

    #[test]
    fn viz_prints_shard_and_address_state_and_notes_what_it_does_not_show() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/contracts");
        let src = "allocate.address 3\nchain.deploy @0 counter.prd\nShardCounter.hit @all { n: 2 }\nchain.run\n\
                   viz.section \"Counts\"\nviz.shard #all ShardCounter\nviz.shard #g ShardCounter\nviz.addr @1 ShardCounter\n\
                   c = ShardCounter.collect #g {}\nchain.run\nviz.txn c\nviz.trace c[0]\n\
                   viz.heatmap\nviz.heatmap\n";
        let out = run_out(&dir, 1, src);
        assert!(out.contains("== Counts =="), "{out}");
        assert!(out.contains("ShardCounter shard #0: {\"hits\":"), "{out}");
        assert!(out.contains("ShardCounter shard #1: {\"hits\":"), "{out}");
        assert!(out.contains("ShardCounter global: {"), "{out}");
        assert!(out.contains(" ShardCounter: "), "{out}");
        // The named call, then with its relays: the global lane, both shards, and both
        // shards' reports back to the global lane.
        let calls = out.matches("c[0] ").count();
        assert_eq!(calls, 2, "viz.txn and viz.trace each show the call: {out}");
        assert_eq!(out.matches("  relay: ").count(), 5, "{out}");
        assert_eq!(
            out.matches("\"@global\" on the global lane").count(),
            3,
            "{out}"
        );
        assert_eq!(out.matches("viz.heatmap: not shown").count(), 1, "{out}");
        assert!(out.contains("ShardCounter global: {\"missing\":0"), "{out}");
        assert_err(
            &dir,
            2,
            "allocate.address 1\nchain.deploy @0 counter.prd\nviz.shard #9 ShardCounter\n",
            "no such shard",
        );
        assert_err(
            &dir,
            2,
            "allocate.address 1\nchain.deploy @0 counter.prd\nviz.txn nope\n",
            "no transactions named `nope`",
        );
    }

    #[test]
    fn script_variables_are_assigned_and_read_as_values_scopes_and_counts() {
        assert_eq!(variable_assignment("x = 5"), Some(("x", "5")));
        assert_eq!(variable_assignment("who=\"ab\""), Some(("who", "\"ab\"")));
        assert_eq!(variable_assignment("y = x"), Some(("y", "x")));
        assert_eq!(variable_assignment("n = -2.5e3"), Some(("n", "-2.5e3")));
        for not in [
            "txn1 = Ballot.init @0 { names: [] }",
            "rows = csv.from(rows.csv)",
            "txn2[] = C.f @all {}",
            "x == 5",
            "x = \"a\" \"b\"",
            "2x = 5",
            "x = ",
        ] {
            assert_eq!(variable_assignment(not), None, "{not}");
        }
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/contracts");
        // `who` picks the painter, `x` a JSON value, `n` the count; `y` copies `x`; a
        // variable never replaces a key (`x: x`).
        let src = "allocate.address 4\nchain.deploy @0 pixels.prd\nx = 3\nwho = 2\nn = 2\ny = x\n\
                   x = 4\nPixels.paint*n @who { x: x, y: y, rgb: 255 }\nchain.run\n\
                   viz.uint_scope #32 Pixels:all\nviz.addr @2 Pixels\n";
        let out = run_out(&dir, 1, src);
        // Pixel (4, 3): index 4 * 65536 + 3, painted twice by @2, claimed once.
        assert!(out.contains("Pixels @uint32 262147: {"), "{out}");
        assert_eq!(out.matches("Pixels @uint32 ").count(), 1, "{out}");
        assert!(out.contains("\"painted\":1"), "{out}");
        assert_err(&dir, 1, "allocate.address 2\nchain.deploy @0 pixels.prd\nPixels.paint @nobody { x: 1, y: 1, rgb: 1 }\n", "unknown address reference @nobody");
        assert_err(&dir, 1, "allocate.address 2\nchain.deploy @0 pixels.prd\nn = \"two\"\nPixels.paint*n @1 { x: 1, y: 1, rgb: 1 }\n", "bad count *n");
    }

    #[test]
    fn viz_profiling_block_and_uint_scope_show_what_ran() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/contracts");
        let src = "allocate.address 4\nchain.deploy @0 pixels.prd\n\
                   Pixels.paint @1 { x: 3, y: 7, rgb: 255 }\nPixels.paint @2 { x: 5, y: 1, rgb: 9 }\n\
                   stopwatch.restart\nchain.run\nviz.profiling\n\
                   viz.uint_scope #32 Pixels:196615\nviz.uint_scope #32 Pixels:all\nviz.uint_scope #32 Pixels:42\n\
                   viz.block #all\nviz.block #g:1\n";
        let out = run_out(&dir, 1, src);
        // Profiling: the global lane first, then each shard; two paints given to the shards,
        // each running three micro-transactions (paint, claim, the painter's credit).
        let rows: Vec<&str> = out
            .lines()
            .skip_while(|l| !l.starts_with("Profiling (since stopwatch.restart"))
            .skip(1)
            .take(3)
            .collect();
        assert!(rows[0].starts_with("#g: height "), "{out}");
        assert!(
            rows[1].starts_with("#0: ") && rows[2].starts_with("#1: "),
            "{out}"
        );
        let field = |row: &str, name: &str| -> u64 {
            let v = row.split(name).nth(1).unwrap().split(',').next().unwrap();
            v.trim().parse().unwrap()
        };
        assert_eq!(field(rows[0], "txn "), 0, "{out}");
        assert_eq!(field(rows[1], "txn ") + field(rows[2], "txn "), 2, "{out}");
        let micro: u64 = rows.iter().map(|r| field(r, "uTxn ")).sum();
        assert_eq!(micro, 6, "{out}");
        // One pixel by key, every pixel with state, and a key with none (its defaults).
        assert_eq!(
            out.matches("Pixels @uint32 196615: {\"color\":255,")
                .count(),
            2,
            "{out}"
        );
        assert_eq!(out.matches("Pixels @uint32 327681: ").count(), 1, "{out}");
        assert!(out.contains("Pixels @uint32 42: {\"color\":0,"), "{out}");
        assert!(out.contains(",\"taken\":false}"), "{out}");
        // Blocks: both paints, from their painters, in some shard's list.
        assert_eq!(out.matches(": Pixels.paint").count(), 2, "{out}");
        assert!(out.contains("Block 1 "), "{out}");
        for e in [
            ("viz.uint_scope #33 Pixels:1", "the scopes are #32"),
            (
                "viz.uint_scope #32 Pixels:4294967296",
                "is not a key of the @uint32 scope",
            ),
            ("viz.block #7", "no such shard"),
            ("viz.block #0:99", "the chain's height is"),
        ] {
            let err = run_err(
                &dir,
                1,
                &format!("allocate.address 1\nchain.deploy @0 pixels.prd\n{}\n", e.0),
            );
            assert!(err.contains(e.1), "{}: {err}", e.0);
        }
    }

    /// The output of a script that must succeed, on `2^order` shards.
    fn run_out(dir: &Path, order: u8, src: &str) -> String {
        let mut out = Vec::new();
        let opts = Options {
            order,
            ..Options::default()
        };
        Runner::new(opts, dir, &mut out).run(src).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// Checks that a script fails with an error containing `want`.
    fn assert_err(dir: &Path, order: u8, src: &str, want: &str) {
        let e = run_err(dir, order, src);
        assert!(e.contains(want), "{src}: {e}");
    }

    /// The error (with its causes) of a script that must fail, on `2^order` shards.
    fn run_err(dir: &Path, order: u8, src: &str) -> String {
        let mut out = Vec::new();
        let opts = Options {
            order,
            ..Options::default()
        };
        let e = Runner::new(opts, dir, &mut out).run(src).unwrap_err();
        format!("{e:#}")
    }

    /// A temporary directory holding copies of the example contracts `files`.
    fn examples_in_tempdir(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/contracts");
        for f in files {
            std::fs::copy(examples.join(f), dir.path().join(f)).unwrap();
        }
        dir
    }

    #[test]
    fn state_files_round_trip_between_runs() {
        let dir = examples_in_tempdir(&["token.prd", "counter.prd"]);
        let setup = "allocate.address 3\nchain.deploy @0 token.prd = { supply: \"1000\" }\n\
                     chain.deploy @0 counter.prd\nchain.run\n";
        let show = "viz.addr @all Token\nviz.shard #all ShardCounter\nviz.shard #g Token\n";
        let run = |src: String| {
            let mut out = Vec::new();
            let opts = Options {
                order: 1,
                ..Options::default()
            };
            Runner::new(opts, dir.path(), &mut out).run(&src).unwrap();
            String::from_utf8(out).unwrap()
        };
        let shown = |out: &str| -> Vec<String> {
            out.lines()
                .filter(|l| {
                    l.contains(" Token: ")
                        || l.starts_with("ShardCounter shard")
                        || l.starts_with("Token global")
                })
                .map(str::to_string)
                .collect()
        };
        let a = run(format!(
            "{setup}ShardCounter.hit @all {{ n: 2 }}\nToken.transfer @0 {{ to: \"$@1$\", amount: \"10\" }}\n\
             chain.run\nstate.save address.all addr.json\nstate.save shard.all shards.json\n{show}"
        ));
        assert!(a.contains("address states written to addr.json"), "{a}");
        let saved: Json =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("addr.json")).unwrap())
                .unwrap();
        assert_eq!(saved.as_array().unwrap().len(), 3, "{saved}");
        assert_eq!(saved[1]["States"][0]["CVID"], "Token", "{saved}");
        assert_eq!(saved[1]["States"][0]["State"]["balance"], 10, "{saved}");
        // A fresh chain with the same contracts, the states loaded instead of the calls.
        let b = run(format!(
            "{setup}state.load <address> addr.json\nstate.load <shard> shards\n{show}"
        ));
        assert!(
            b.contains("3 address state(s) loaded from addr.json"),
            "{b}"
        );
        assert_eq!(shown(&a).len(), 3 + 2 + 1, "{a}");
        assert_eq!(shown(&a), shown(&b), "{a}\n---\n{b}");
        // PREDA's tool writes numeric contract version ids: dapp 1, engine 3 (PREDA
        // native), the contract's serial in deployment order, build 1. Token was first.
        let cvid = |serial: u64| (1u64 << 36) | (3 << 32) | (serial << 20) | 1;
        let numeric = std::fs::read_to_string(dir.path().join("addr.json"))
            .unwrap()
            .replace("\"Token\"", &cvid(1).to_string());
        std::fs::write(dir.path().join("preda.json"), &numeric).unwrap();
        let c = run(format!("{setup}state.load <address> preda.json\n{show}"));
        let only_tokens = |v: Vec<String>| -> Vec<String> {
            v.into_iter().filter(|l| l.contains(" Token: ")).collect()
        };
        assert_eq!(
            only_tokens(shown(&a)),
            only_tokens(shown(&c)),
            "{a}\n---\n{c}"
        );
        std::fs::write(
            dir.path().join("third.json"),
            numeric.replace(&cvid(1).to_string(), &cvid(3).to_string()),
        )
        .unwrap();
        let e = run_err(
            dir.path(),
            1,
            &format!("{setup}state.load <address> third.json\n"),
        );
        assert!(
            e.contains("names the script's contract number 3, but it has deployed 2"),
            "{e}"
        );
        let e = run_err(dir.path(), 1, &format!("{setup}viz.addr @0 12345\n"));
        assert!(
            e.contains("CVID 12345 is not a contract of a PREDA script"),
            "{e}"
        );
        // What a file does not say is refused by name.
        std::fs::write(
            dir.path().join("bad.json"),
            r##"[{"ShardIndex": "#7", "States": []}]"##,
        )
        .unwrap();
        assert_err(
            dir.path(),
            1,
            &format!("{setup}state.load <shard> bad.json\n"),
            "no shard #7 (there are 2)",
        );
    }

    #[test]
    fn token_script_runs_on_the_chain() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/contracts");
        let src = std::fs::read_to_string(dir.join("token.prdts")).unwrap();
        let mut out = Vec::new();
        let opts = Options {
            vars: HashMap::from([("count".into(), "50".into())]),
            ..Options::default()
        };
        let s = Runner::new(opts, &dir, &mut out).run(&src).unwrap();
        assert!(s.supply_ok);
        assert!(s.txs >= 50 && s.micro_txs >= 100, "{s:?}");
        assert_eq!(s.sums["Token.balance"], "1000000000000", "{s:?}");
    }

    #[test]
    fn csv_transactions_are_read_and_batch_inserted() {
        let dir = examples_in_tempdir(&["token.prd", "vault.prd"]);
        // As PREDA's simulator reads them: a header naming the columns (any order, extra
        // ones ignored), JSON with its quotes doubled.
        std::fs::write(
            dir.path().join("moves.csv"),
            "note,contract_name,contract_function,sender,parameters\n\
             a,Token,transfer,0,\"{\"\"to\"\": \"\"$@1$\"\", \"\"amount\"\": \"\"7\"\"}\"\n\
             b,Token,transfer,0,\"{\"\"to\"\": \"\"$@2$\"\", \"\"amount\"\": \"\"5\"\"}\"\n\
             \n\
             c,Token,transfer,2,\"{\"\"to\"\": \"\"$@3$\"\", \"\"amount\"\": \"\"1\"\"}\"\n",
        )
        .unwrap();
        let src = "allocate.address 4\n\
                   chain.deploy @0 token.prd = { supply: \"1000\" } vault.prd\n\
                   moves = csv.from(moves.csv)\n\
                   chain.run\n\
                   chain.batch_insert_txn moves\n\
                   chain.run\n\
                   Vault.lock*3 @1 {} <= ($random(10, 20)$RXBTC)\n\
                   Vault.lock @2 {} <= (40RXBTC, 2RXBTC)\n\
                   chain.run\n";
        let mut out = Vec::new();
        let s = Runner::new(Options::default(), dir.path(), &mut out)
            .run(src)
            .unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.contains("3 transaction(s) read from moves.csv into `moves`"),
            "{text}"
        );
        assert!(
            text.contains("3 transaction line(s) of `moves` issued"),
            "{text}"
        );
        assert_eq!((s.failed, s.supply_ok), (0, true), "{s:?}");
        assert_eq!(s.sums["Token.balance"], "1000");
        // Nothing was issued before chain.batch_insert_txn: only the deployments ran.
        assert_eq!(s.txs, 2 + 3 + 4, "{s:?}");

        let order = Options::default().order;
        let e = run_err(
            dir.path(),
            order,
            "allocate.address 2\nchain.batch_insert_txn nothing\n",
        );
        assert!(
            e.contains("no transactions were read into `nothing`"),
            "{e}"
        );
        std::fs::write(dir.path().join("bad.csv"), "contract_name,sender\nA,0\n").unwrap();
        let e = run_err(dir.path(), order, "x = csv.from(bad.csv)\n");
        assert!(e.contains("missing contract_function"), "{e}");
        let e = run_err(
            dir.path(),
            order,
            "allocate.address 2\nchain.deploy @0 vault.prd\nVault.lock @1 {} <= (5btc)\n",
        );
        assert!(e.contains("is not a token symbol"), "{e}");
        // An asset the sender does not hold: the call reverts, and nothing moves.
        let mut out = Vec::new();
        let s = Runner::new(Options::default(), dir.path(), &mut out)
            .run("allocate.address 2\nchain.deploy @0 vault.prd\nVault.lock @1 {} <= (5BTC)\nchain.run\n")
            .unwrap();
        let text = String::from_utf8_lossy(&out);
        assert_eq!((s.failed, s.supply_ok), (1, true), "{text}");
        assert!(text.contains("the sender holds 0 BTC"), "{text}");
    }
}
