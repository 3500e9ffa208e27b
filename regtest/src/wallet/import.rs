//! `importdescriptors` and `listdescriptors`: descriptors a wallet takes beyond its own
//! master key, as Core's descriptor wallets take them.
//!
//! Each imported descriptor is a single-descriptor bdk wallet (its own file,
//! `<name>.sqlite-desc<id>`), its settings and its text (private keys included) a row of
//! the main file's `rexe_descriptors`. An import scans the whole active chain and the
//! mempool whatever its `timestamp` (the regtest chain is short), so it finds at least what
//! Core's rescan finds.

use std::path::{Path, PathBuf};

use bdk_wallet::miniscript::descriptor::KeyMap;
use bdk_wallet::miniscript::{Descriptor, DescriptorPublicKey, ForEachKey};
use bdk_wallet::rusqlite::Connection;
use bdk_wallet::signer::SignersContainer;
use bdk_wallet::{KeychainKind, Wallet};
use bitcoin::Network;
use serde_json::{json, Value};

use super::descriptor::{self, OutputType, DEFAULT_RANGE};
use super::watch::{ScriptDesc, Watch};
use super::{
    create_private_file, db_err, descriptors, load_bdk, param, Imported, NamedWallet, Part, Res,
    Source, WalletError, Wallets,
};

/// Keys bdk derives ahead of the last revealed one for a descriptor imported with `range`:
/// the whole range, so a payment to any key of it is found (bdk's default is 25).
fn lookahead(range: Option<(u32, u32)>) -> u32 {
    range.map_or(1, |(_, end)| end + 1)
}

/// The file of imported descriptor `id` next to the wallet's main file.
fn part_path(main: &Path, id: i64) -> PathBuf {
    let mut p = main.as_os_str().to_owned();
    p.push(format!("-desc{id}"));
    PathBuf::from(p)
}

/// One checked `importdescriptors` request, ready to add.
struct Request {
    /// The descriptor as given (private keys included), without its checksum.
    text: String,
    /// The public descriptors it adds (two for a `<0;1>` multipath descriptor, up to four
    /// for `combo()`), whether each is change, and the text each is stored as (`None`: the
    /// request's text).
    descs: Vec<(Descriptor<DescriptorPublicKey>, bool, Option<String>)>,
    /// A `combo()` request's text (keys as given, no checksum): each of its descriptors
    /// records it, so that `listdescriptors` shows the combo once.
    combo: Option<String>,
    active: bool,
    range: Option<(u32, u32)>,
    next_index: u32,
    timestamp: i64,
    label: Option<String>,
}

/// One checked `importdescriptors` request of an `addr()`/`raw()` descriptor.
struct ScriptRequest {
    desc: ScriptDesc,
    internal: bool,
    timestamp: i64,
    label: Option<String>,
}

/// A checked request: keys, or a script alone.
enum Checked {
    Keys(Request),
    Script(ScriptRequest),
}

/// A request's timestamp: a number or `"now"` (Core's `GetImportTimestamp`, code -3).
fn timestamp_of(req: &Value, now: i64) -> Res<i64> {
    match req.get("timestamp") {
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| param(-3, "Expected number or \"now\" timestamp value for key")),
        Some(Value::String(s)) if s == "now" => Ok(now),
        Some(other) => Err(param(
            -3,
            format!(
                "Expected number or \"now\" timestamp value for key. got type {}",
                json_type(other)
            ),
        )),
        None => Err(param(-3, "Missing required timestamp field for key")),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

impl NamedWallet {
    /// Checks one request against the wallet as Core's `ProcessDescriptorImport` does, in
    /// its order, with its codes and messages; warnings go to `warnings`.
    /// `timestamp` is the request's, read (and checked) before any request is processed.
    fn check_request(
        &self,
        req: &Value,
        timestamp: i64,
        warnings: &mut Vec<String>,
    ) -> Res<Checked> {
        let text = req
            .get("desc")
            .ok_or_else(|| param(-8, "Descriptor not found."))?
            .as_str()
            .ok_or_else(|| param(-3, "Expected type string for desc"))?;
        let active = match req.get("active") {
            None | Some(Value::Null) => false,
            Some(v) => v
                .as_bool()
                .ok_or_else(|| param(-3, "Expected type bool for active"))?,
        };
        let label = match req.get("label") {
            None | Some(Value::Null) => None,
            Some(Value::String(l)) if l == "*" => return Err(param(-11, "Invalid label name")),
            Some(Value::String(l)) => Some(l.clone()),
            Some(_) => return Err(param(-3, "Expected type string for label")),
        };
        if let Some(desc) = ScriptDesc::parse(text, true) {
            return self
                .check_script_request(req, desc?, active, label, timestamp)
                .map(Checked::Script);
        }
        let mut arg = descriptor::parse_arg(text, true)?;
        let combo = arg.combo.is_some();
        let multipath = arg.multipath;
        // Checked on the first: a combo()'s descriptors share its one key, and a multipath
        // descriptor's paths their keys.
        let (first_text, desc, keys) = arg.parts.remove(0);
        let internal = match req.get("internal") {
            None | Some(Value::Null) => None,
            Some(_) if multipath => {
                return Err(param(
                    -5,
                    "Cannot have multipath descriptor while also specifying 'internal'",
                ))
            }
            Some(v) => Some(
                v.as_bool()
                    .ok_or_else(|| param(-3, "Expected type bool for internal"))?,
            ),
        };
        let ranged = desc.has_wildcard();
        let range_given = req.get("range").filter(|v| !v.is_null());
        let (range, mut next_index) = match (ranged, range_given) {
            (false, Some(_)) => {
                return Err(param(
                    -8,
                    "Range should not be specified for an un-ranged descriptor",
                ))
            }
            (false, None) => (None, 0),
            (true, Some(r)) => {
                let r = descriptor::range_arg(r)?;
                (Some(r), r.0)
            }
            (true, None) => {
                warnings.push("Range not given, using default keypool range".into());
                (Some((0, DEFAULT_RANGE - 1)), 0)
            }
        };
        if let (Some((start, end)), Some(v)) = (range, req.get("next_index")) {
            let n = v
                .as_i64()
                .ok_or_else(|| param(-3, "Expected type number for next_index"))?;
            if n < i64::from(start) || n > i64::from(end) {
                return Err(param(-8, "next_index is out of range"));
            }
            next_index = n as u32;
        }
        if active && !ranged {
            return Err(param(-8, "Active descriptors must be ranged"));
        }
        if multipath && label.is_some() {
            return Err(param(-8, "Multipath descriptors should not have a label"));
        }
        if ranged && label.is_some() {
            return Err(param(-8, "Ranged descriptors should not have a label"));
        }
        if internal == Some(true) && label.is_some() {
            return Err(param(-8, "Internal addresses should not have a label"));
        }
        if !self.private_keys && !keys.is_empty() {
            return Err(WalletError::Wallet(
                "Cannot import private keys to a wallet with private keys disabled".into(),
            ));
        }
        if self.private_keys {
            if keys.is_empty() {
                return Err(WalletError::Wallet(
                    "Cannot import descriptor without private keys to a wallet with private keys enabled".into(),
                ));
            }
            let mut all = true;
            desc.for_each_key(|k| {
                all &= keys.contains_key(k);
                true
            });
            if !all {
                warnings.push(
                    "Not all private keys provided. Some wallet functionality may return unexpected errors"
                        .into(),
                );
            }
        }
        // A combo() has no one output type: never active, with Core's warning.
        let active = if combo && active {
            warnings.push("Unknown output type, cannot set descriptor to active.".into());
            false
        } else {
            active
        };
        let descs = if combo {
            let internal = internal == Some(true);
            std::iter::once((desc, internal, Some(first_text)))
                .chain(
                    arg.parts
                        .into_iter()
                        .map(|(t, d, _)| (d, internal, Some(t))),
                )
                .collect()
        } else if multipath {
            // With private keys, each path is stored as the request's text on that path (the
            // keys as given); a public one as the path's public form.
            let two = arg.parts.len() == 1;
            std::iter::once((first_text, desc, keys))
                .chain(arg.parts)
                .enumerate()
                .map(|(j, (t, d, k))| {
                    let stored = if k.is_empty() { d.to_string() } else { t };
                    (d, two && j == 1, Some(stored))
                })
                .collect()
        } else {
            vec![(desc, internal == Some(true), None)]
        };
        Ok(Checked::Keys(Request {
            text: text.split('#').next().unwrap_or(text).to_string(),
            descs,
            combo: combo.then(|| text.split('#').next().unwrap_or(text).to_string()),
            active,
            range,
            next_index,
            timestamp,
            label,
        }))
    }

    /// The rest of [`NamedWallet::check_request`] for an `addr()`/`raw()` descriptor, in
    /// Core's order: un-ranged, never active, no label on change, and only into a wallet
    /// without private keys (it has none).
    fn check_script_request(
        &self,
        req: &Value,
        desc: ScriptDesc,
        active: bool,
        label: Option<String>,
        timestamp: i64,
    ) -> Res<ScriptRequest> {
        let internal = match req.get("internal") {
            None | Some(Value::Null) => false,
            Some(v) => v
                .as_bool()
                .ok_or_else(|| param(-3, "Expected type bool for internal"))?,
        };
        if req.get("range").is_some_and(|v| !v.is_null()) {
            return Err(param(
                -8,
                "Range should not be specified for an un-ranged descriptor",
            ));
        }
        if active {
            return Err(param(-8, "Active descriptors must be ranged"));
        }
        if internal && label.is_some() {
            return Err(param(-8, "Internal addresses should not have a label"));
        }
        if self.private_keys {
            return Err(WalletError::Wallet(
                "Cannot import descriptor without private keys to a wallet with private keys enabled".into(),
            ));
        }
        Ok(ScriptRequest {
            desc,
            internal,
            timestamp,
            label,
        })
    }

    /// Adds (or, for a script the wallet watches, updates) what `r` imports. One watch per
    /// script: `addr(A)` and `raw()` of A's script are one (Core would keep two descriptors
    /// of the one script; the coins are the same).
    fn add_watch(&mut self, r: ScriptRequest) -> Res<()> {
        let existing = self
            .watched
            .iter()
            .position(|w| w.desc.script == r.desc.script);
        match existing {
            Some(wi) => {
                let w = &mut self.watched[wi];
                w.rescan_from(r.timestamp);
                w.internal = r.internal;
                w.timestamp = r.timestamp;
                self.meta
                    .execute(
                        "UPDATE rexe_descriptors SET internal = ?1, timestamp = ?2, scan_from = ?3 WHERE id = ?4",
                        (w.internal, w.timestamp, w.scan_from, w.id),
                    )
                    .map_err(db_err)?;
            }
            None => {
                self.meta
                    .execute(
                        "INSERT INTO rexe_descriptors (descriptor, internal, active, next_index, timestamp, scan_from) VALUES (?1, ?2, 0, 0, ?3, ?3)",
                        (&r.desc.text, r.internal, r.timestamp),
                    )
                    .map_err(db_err)?;
                let id = self.meta.last_insert_rowid();
                let w = Watch::new(id, r.desc.clone(), r.internal, r.timestamp, r.timestamp);
                self.watched.push(w);
            }
        }
        self.synced = None;
        if let (Some(label), Some(a)) = (&r.label, r.desc.address()) {
            self.set_label(&a.to_string(), label)?;
        }
        Ok(())
    }

    /// Adds (or, for a descriptor the wallet has, updates) what `r` imports; `main` is the
    /// wallet's main file (`None`: an in-memory wallet).
    fn add(&mut self, r: Request, main: Option<&Path>, warnings: &mut Vec<String>) -> Res<()> {
        let combo = r.combo;
        for (desc, internal, own_text) in r.descs {
            let public = desc.to_string();
            let output_type = OutputType::of(&desc);
            if r.active && output_type.is_none() {
                warnings.push("Unknown output type, cannot set descriptor to active.".into());
            }
            let active = r.active && output_type.is_some();
            // A descriptor of the master key's: nothing to add.
            let master = self.parts.iter().any(|p| {
                matches!(p.source, Source::Master(_))
                    && p.keychains()
                        .iter()
                        .any(|k| p.wallet.public_descriptor(*k).to_string() == public)
            });
            if master {
                continue;
            }
            // Private keys travel in the stored text.
            let text = own_text.unwrap_or_else(|| r.text.clone());
            let existing = self.parts.iter().position(|p| {
                matches!(p.source, Source::Imported(_))
                    && p.wallet
                        .public_descriptor(KeychainKind::External)
                        .to_string()
                        == public
            });
            let pi = match existing {
                Some(pi) => {
                    let Source::Imported(m) = &mut self.parts[pi].source else {
                        unreachable!("found as imported")
                    };
                    m.internal = internal;
                    m.active = active;
                    m.range = r.range;
                    m.timestamp = r.timestamp;
                    self.meta
                        .execute(
                            "UPDATE rexe_descriptors SET internal = ?1, active = ?2, range_start = ?3, range_end = ?4, timestamp = ?5 WHERE id = ?6",
                            (
                                internal,
                                active,
                                r.range.map(|x| x.0),
                                r.range.map(|x| x.1),
                                r.timestamp,
                                m.id,
                            ),
                        )
                        .map_err(db_err)?;
                    pi
                }
                None => {
                    self.meta
                        .execute(
                            "INSERT INTO rexe_descriptors (descriptor, internal, active, range_start, range_end, next_index, timestamp, combo) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                            (
                                &text,
                                internal,
                                active,
                                r.range.map(|x| x.0),
                                r.range.map(|x| x.1),
                                r.next_index,
                                r.timestamp,
                                &combo,
                            ),
                        )
                        .map_err(db_err)?;
                    let id = self.meta.last_insert_rowid();
                    let imported = Imported {
                        id,
                        text,
                        combo: combo.clone(),
                        output_type,
                        internal,
                        active,
                        range: r.range,
                        timestamp: r.timestamp,
                        signers: None,
                    };
                    match new_part(imported, main, r.next_index) {
                        Ok(part) => self.parts.push(part),
                        Err(e) => {
                            // Nothing half-imported left behind.
                            let _ = self
                                .meta
                                .execute("DELETE FROM rexe_descriptors WHERE id = ?1", [id]);
                            if let Some(m) = main {
                                let _ = std::fs::remove_file(part_path(m, id));
                            }
                            return Err(e);
                        }
                    }
                    self.parts.len() - 1
                }
            };
            self.rescan(pi, r.timestamp);
            if active {
                self.deactivate_others(pi)?;
            }
            if let (Some(label), false) = (&r.label, desc.has_wildcard()) {
                if let Ok(d) = desc.at_derivation_index(0) {
                    if let Ok(a) = d.address(Network::Regtest) {
                        self.set_label(&a.to_string(), label)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Makes imported part `pi` the only active imported descriptor of its type and
    /// externality (a master-key part yields to it by coming first).
    fn deactivate_others(&mut self, pi: usize) -> Res<()> {
        let Source::Imported(me) = &self.parts[pi].source else {
            return Ok(());
        };
        let (t, internal) = (me.output_type, me.internal);
        for (j, p) in self.parts.iter_mut().enumerate() {
            if let Source::Imported(m) = &mut p.source {
                if j != pi && m.active && m.output_type == t && m.internal == internal {
                    m.active = false;
                    self.meta
                        .execute(
                            "UPDATE rexe_descriptors SET active = 0 WHERE id = ?1",
                            [m.id],
                        )
                        .map_err(db_err)?;
                }
            }
        }
        Ok(())
    }

    /// Opens the parts of the descriptors imported earlier (`main`: the wallet's main file).
    pub(super) fn load_imported(&mut self, main: &Path) -> Res<()> {
        let rows: Vec<(Option<i64>, Imported)> = {
            let mut st = self
                .meta
                .prepare("SELECT id, descriptor, internal, active, range_start, range_end, timestamp, combo, scan_from FROM rexe_descriptors ORDER BY id")
                .map_err(db_err)?;
            let rows = st
                .query_map([], |r| {
                    let (start, end): (Option<u32>, Option<u32>) = (r.get(4)?, r.get(5)?);
                    let scan_from: Option<i64> = r.get(8)?;
                    Ok((
                        scan_from,
                        Imported {
                            id: r.get(0)?,
                            text: r.get(1)?,
                            combo: r.get(7)?,
                            // Read from the descriptor below.
                            output_type: None,
                            internal: r.get(2)?,
                            active: r.get(3)?,
                            range: start.zip(end),
                            timestamp: r.get(6)?,
                            // Built below, once the wallet is loaded.
                            signers: None,
                        },
                    ))
                })
                .map_err(db_err)?;
            rows.collect::<Result<_, _>>().map_err(db_err)?
        };
        for (scan_from, mut m) in rows {
            if let Some(desc) = ScriptDesc::parse(&m.text, false) {
                let from = scan_from.unwrap_or(m.timestamp);
                let w = Watch::new(m.id, desc?, m.internal, m.timestamp, from);
                self.watched.push(w);
                continue;
            }
            let (desc, keys) = descriptor::parse(&m.text, false)?;
            m.output_type = OutputType::of(&desc);
            let path = part_path(main, m.id);
            let mut db = Connection::open(&path).map_err(db_err)?;
            let params = Wallet::load()
                .descriptor(KeychainKind::External, Some(m.text.clone()))
                .lookahead(lookahead(m.range));
            let wallet = load_bdk(params, &mut db, &path)?;
            m.signers = signers(keys, &wallet);
            self.parts.push(Part {
                wallet,
                db,
                source: Source::Imported(m),
            });
        }
        Ok(())
    }

    /// `listdescriptors`: every descriptor of the wallet, public (or, with `private`, as
    /// imported or as the master key derives them), sorted as Core sorts them.
    pub(super) fn list_descriptors(&self, private: bool) -> Res<Vec<Value>> {
        if private && !self.private_keys {
            return Err(WalletError::Wallet(
                "Can't get private descriptor string for watch-only wallets".into(),
            ));
        }
        let mut out: Vec<(String, Value)> = Vec::new();
        let mut combos_listed: Vec<&str> = Vec::new();
        for (pi, p) in self.parts.iter().enumerate() {
            // A combo()'s descriptors are listed once, as the combo (Core's form).
            let combo = match &p.source {
                Source::Imported(m) => m.combo.as_deref(),
                Source::Master(_) => None,
            };
            if let Some(c) = combo {
                if combos_listed.contains(&c) {
                    continue;
                }
                combos_listed.push(c);
            }
            for (slot, &kc) in p.keychains().iter().enumerate() {
                let public = p.wallet.public_descriptor(kc);
                let internal = p.is_change(kc);
                let text = match (combo, &p.source, private) {
                    (Some(c), _, false) => descriptor::parse_arg(c, false)?
                        .combo
                        .unwrap_or_else(|| c.to_string()),
                    (Some(c), _, true) => c.to_string(),
                    (None, _, false) => public.to_string(),
                    (None, Source::Master(_), true) => {
                        let xprv = self.xprv.as_ref().expect("master parts have the key");
                        let (ext, int) = descriptors(xprv, pi);
                        if slot == 0 {
                            ext
                        } else {
                            int
                        }
                    }
                    (None, Source::Imported(m), true) => m.text.clone(),
                };
                let desc = descriptor::core_form(&text);
                let active = p
                    .output_type()
                    .and_then(|t| self.active(t, internal))
                    .is_some_and(|(ai, ak)| ai == pi && ak == kc);
                let (timestamp, range) = match &p.source {
                    Source::Master(_) => (self.created, None),
                    Source::Imported(m) => (m.timestamp, m.range),
                };
                let mut v = json!({"desc": desc, "timestamp": timestamp, "active": active});
                if active {
                    v["internal"] = json!(internal);
                }
                if public.has_wildcard() {
                    let next = p.wallet.derivation_index(kc).map_or(0, |i| i + 1);
                    // Core's range grows as keys are handed out: a keypool past the next one.
                    let (start, end) = range.unwrap_or((0, DEFAULT_RANGE - 1));
                    let end = end.max(next + DEFAULT_RANGE - 1);
                    v["range"] = json!([start, end]);
                    v["next"] = json!(next);
                    v["next_index"] = json!(next);
                }
                out.push((desc, v));
            }
        }
        for w in &self.watched {
            let desc = descriptor::core_form(&w.desc.text);
            let v = json!({"desc": desc, "timestamp": w.timestamp, "active": false});
            out.push((desc, v));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out.into_iter().map(|(_, v)| v).collect())
    }
}

/// A new part for `imported`, in its own file next to `main` (in memory without one), with
/// its scripts up to `next_index` handed out.
/// The signers of an imported descriptor's private keys, for `wallet` (its part); `None`
/// without keys.
fn signers(keys: KeyMap, wallet: &Wallet) -> Option<SignersContainer> {
    (!keys.is_empty()).then(|| {
        SignersContainer::build(
            keys,
            wallet.public_descriptor(KeychainKind::External),
            wallet.secp_ctx(),
        )
    })
}

fn new_part(mut imported: Imported, main: Option<&Path>, next_index: u32) -> Res<Part> {
    let mut db = match main {
        Some(m) => create_private_file(&part_path(m, imported.id))?,
        None => Connection::open_in_memory().map_err(db_err)?,
    };
    let mut wallet = Wallet::create_single(imported.text.clone())
        .network(Network::Regtest)
        .lookahead(lookahead(imported.range))
        .create_wallet(&mut db)
        .map_err(|e| param(-4, format!("Could not add descriptor: {e}")))?;
    if next_index > 0 {
        let _ = wallet.reveal_addresses_to(KeychainKind::External, next_index - 1);
    }
    let (_, keys) = descriptor::parse(&imported.text, false)?;
    imported.signers = signers(keys, &wallet);
    let mut part = Part {
        wallet,
        db,
        source: Source::Imported(imported),
    };
    part.persist()?;
    Ok(part)
}

impl Wallets {
    /// `importdescriptors` into loaded wallet `i`: one result per request, as Core answers.
    /// `now` is what `"now"` means: the tip's median time past, as in Core. Each descriptor
    /// added or changed scans the chain from its timestamp at the next sync.
    pub(super) fn import(&mut self, i: usize, requests: &Value, now: i64) -> Res<Value> {
        let requests = requests
            .as_array()
            .ok_or_else(|| param(-3, "Expected type array"))?;
        // Core reads every timestamp first: a missing one fails the whole call.
        let timestamps = requests
            .iter()
            .map(|r| Ok(timestamp_of(r, now)?.max(1)))
            .collect::<Res<Vec<i64>>>()?;
        let main = self.paths(&self.loaded[i].0).map(|(m, _)| m);
        let w = &mut self.loaded[i].1;
        let mut out = Vec::new();
        for (req, timestamp) in requests.iter().zip(timestamps) {
            let mut warnings = Vec::new();
            let result = w
                .check_request(req, timestamp, &mut warnings)
                .and_then(|r| match r {
                    Checked::Keys(r) => w.add(r, main.as_deref(), &mut warnings),
                    Checked::Script(r) => w.add_watch(r),
                });
            let mut v = match result {
                Ok(()) => json!({"success": true}),
                Err(e) => {
                    json!({"success": false, "error": {"code": e.code(), "message": e.to_string()}})
                }
            };
            if !warnings.is_empty() {
                v["warnings"] = json!(warnings);
            }
            out.push(v);
        }
        Ok(json!(out))
    }
}
