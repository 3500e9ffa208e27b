//! Stratum v1 messages, typed: what miners send ([`Request`]) and what pools send
//! ([`ServerMessage`]), parsed from one line without I/O or connection state. Hex fields
//! are checked (lengths), numbers bounded; what needs a connection's state (known jobs,
//! ntime window, negotiated mask, duplicates) is the server's to check.
//!
//! Panic-free on any bytes; a parsed message re-encodes (`to_json`) to a line that parses
//! to the same message.

use bitcoin::hex::{DisplayHex, FromHex};
use serde_json::{json, Value};

use super::job::EXTRANONCE2_SIZE;

/// Longest job id, extranonce or worker name accepted in a server message (bytes).
pub const MAX_FIELD: usize = 256;
/// Most merkle branch entries in a `mining.notify` (a block of 2^32 transactions).
pub const MAX_BRANCH: usize = 32;
/// Largest `extranonce2_size` accepted from a pool.
pub const MAX_EXTRANONCE2_SIZE: usize = 32;

/// A line that is not JSON, or a message whose fields are malformed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// Not JSON.
    #[error("malformed JSON: {0}")]
    Json(String),
    /// A field of a known message is missing or malformed.
    #[error("{method}: bad {field}")]
    Field {
        /// The message.
        method: &'static str,
        /// The field.
        field: &'static str,
    },
}

/// Why a `mining.submit` does not parse, in the order the server checks (its message is
/// the reply's, code 20 but for [`SubmitError::JobId`], 21).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// No string job id.
    #[error("Job not found")]
    JobId,
    /// Extranonce2 not hex.
    #[error("Bad extranonce2")]
    Extranonce2,
    /// Extranonce2 not [`EXTRANONCE2_SIZE`] bytes.
    #[error("Bad extranonce2 size")]
    Extranonce2Size,
    /// Ntime or nonce not hex u32.
    #[error("Bad ntime or nonce")]
    NtimeOrNonce,
    /// Version bits present but not hex u32.
    #[error("Version bits outside the negotiated mask")]
    VersionBits,
}

/// A checked `mining.submit`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submit {
    /// Worker name (empty when not a string).
    pub worker: String,
    /// Job id.
    pub job_id: String,
    /// Extranonce2 ([`EXTRANONCE2_SIZE`] bytes).
    pub extranonce2: Vec<u8>,
    /// Header time.
    pub ntime: u32,
    /// Header nonce.
    pub nonce: u32,
    /// BIP310 version bits (absent or null: none).
    pub version_bits: Option<u32>,
}

/// A `mining.submit` that does not parse: the job id (looked up first) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadSubmit {
    /// The job id, when it is a string.
    pub job_id: Option<String>,
    /// Why.
    pub error: SubmitError,
}

/// A miner's request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// `mining.subscribe` (with the user agent when given).
    Subscribe {
        /// User agent.
        agent: Option<String>,
    },
    /// `mining.authorize`.
    Authorize {
        /// Worker name (empty when not a string).
        user: String,
        /// Password (empty when not a string): `rx=<address>` picks the L2 payout.
        password: String,
    },
    /// `mining.configure` (BIP310).
    Configure {
        /// Extensions asked for.
        extensions: Vec<String>,
        /// `version-rolling.mask` when given as hex u32.
        mask: Option<u32>,
    },
    /// `mining.submit`.
    Submit(Result<Submit, BadSubmit>),
    /// `mining.extranonce.subscribe`.
    ExtranonceSubscribe,
    /// Anything else (empty when `method` is not a string).
    Unknown(String),
}

/// A miner's message: its id and request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientMessage {
    /// The id (`null` when absent).
    pub id: Value,
    /// The request.
    pub request: Request,
}

/// Lenient hex u32 as miners send it (`u32::from_str_radix`, 1 to 8 digits usually).
fn hex_u32(v: &Value) -> Option<u32> {
    u32::from_str_radix(v.as_str()?, 16).ok()
}

/// Exactly 8 hex digits.
fn hex_u32_strict(v: &Value) -> Option<u32> {
    let s = v.as_str()?;
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

fn parse_submit(p: &Value) -> Result<Submit, BadSubmit> {
    submit_of(p, Some(EXTRANONCE2_SIZE))
}

/// Parses `mining.submit` params; `extranonce2_size`: the size required (`None`: any, as a
/// proxy that does not choose the size parses them).
pub fn submit_of(p: &Value, extranonce2_size: Option<usize>) -> Result<Submit, BadSubmit> {
    let job_id = p[1].as_str().map(str::to_string);
    let bad = |error| BadSubmit {
        job_id: job_id.clone(),
        error,
    };
    let Some(id) = job_id.clone() else {
        return Err(bad(SubmitError::JobId));
    };
    let Some(en2) = p[2].as_str().and_then(|h| Vec::<u8>::from_hex(h).ok()) else {
        return Err(bad(SubmitError::Extranonce2));
    };
    if extranonce2_size.is_some_and(|n| en2.len() != n) {
        return Err(bad(SubmitError::Extranonce2Size));
    }
    let (Some(ntime), Some(nonce)) = (hex_u32(&p[3]), hex_u32(&p[4])) else {
        return Err(bad(SubmitError::NtimeOrNonce));
    };
    let version_bits = if p[5].is_null() {
        None
    } else {
        Some(hex_u32(&p[5]).ok_or_else(|| bad(SubmitError::VersionBits))?)
    };
    Ok(Submit {
        worker: p[0].as_str().unwrap_or("").to_string(),
        job_id: id,
        extranonce2: en2,
        ntime,
        nonce,
        version_bits,
    })
}

/// Parses a miner's line.
pub fn parse_request(line: &[u8]) -> Result<ClientMessage, ProtocolError> {
    let v: Value = serde_json::from_slice(line).map_err(|e| ProtocolError::Json(e.to_string()))?;
    Ok(request_of(&v))
}

/// A miner's message from its JSON.
pub fn request_of(v: &Value) -> ClientMessage {
    let p = &v["params"];
    let request = match v["method"].as_str().unwrap_or("") {
        "mining.subscribe" => Request::Subscribe {
            agent: p[0].as_str().map(str::to_string),
        },
        "mining.authorize" => Request::Authorize {
            user: p[0].as_str().unwrap_or("").to_string(),
            password: p[1].as_str().unwrap_or("").to_string(),
        },
        "mining.configure" => Request::Configure {
            extensions: p[0]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|e| e.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            mask: p[1]["version-rolling.mask"]
                .as_str()
                .and_then(|m| u32::from_str_radix(m, 16).ok()),
        },
        "mining.submit" => Request::Submit(parse_submit(p)),
        "mining.extranonce.subscribe" => Request::ExtranonceSubscribe,
        m => Request::Unknown(m.to_string()),
    };
    ClientMessage {
        id: v["id"].clone(),
        request,
    }
}

impl ClientMessage {
    /// The message as a miner sends it (a malformed submit cannot be re-encoded: `None`).
    pub fn to_json(&self) -> Option<Value> {
        let (method, params) = match &self.request {
            Request::Subscribe { agent } => (
                "mining.subscribe",
                agent.as_ref().map_or(json!([]), |a| json!([a])),
            ),
            Request::Authorize { user, password } => ("mining.authorize", json!([user, password])),
            Request::Configure { extensions, mask } => {
                let mut opts = json!({});
                if let Some(m) = mask {
                    opts["version-rolling.mask"] = json!(format!("{m:08x}"));
                }
                ("mining.configure", json!([extensions, opts]))
            }
            Request::Submit(Ok(s)) => {
                let mut p = vec![
                    json!(s.worker),
                    json!(s.job_id),
                    json!(s.extranonce2.to_lower_hex_string()),
                    json!(format!("{:08x}", s.ntime)),
                    json!(format!("{:08x}", s.nonce)),
                ];
                if let Some(vb) = s.version_bits {
                    p.push(json!(format!("{vb:08x}")));
                }
                ("mining.submit", Value::Array(p))
            }
            Request::Submit(Err(_)) => return None,
            Request::ExtranonceSubscribe => ("mining.extranonce.subscribe", json!([])),
            Request::Unknown(m) => (m.as_str(), json!([])),
        };
        Some(json!({"id": self.id, "method": method, "params": params}))
    }
}

/// A `mining.notify`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notify {
    /// Job id.
    pub job_id: String,
    /// Previous block hash as Stratum sends it (each 4-byte word byte-swapped); see
    /// [`Notify::prev_blockhash`].
    pub prevhash: [u8; 32],
    /// Coinbase before the extranonces.
    pub coinb1: Vec<u8>,
    /// Coinbase after the extranonces.
    pub coinb2: Vec<u8>,
    /// Merkle branch of the coinbase.
    pub merkle_branch: Vec<[u8; 32]>,
    /// Block version.
    pub version: u32,
    /// Compact target.
    pub nbits: u32,
    /// Header time.
    pub ntime: u32,
    /// Whether earlier jobs are void.
    pub clean_jobs: bool,
}

impl Notify {
    /// The previous block hash in internal byte order (the words un-swapped).
    pub fn prev_blockhash(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (o, i) in out.chunks_exact_mut(4).zip(self.prevhash.chunks_exact(4)) {
            o.copy_from_slice(&[i[3], i[2], i[1], i[0]]);
        }
        out
    }

    fn params(&self) -> Value {
        json!([
            self.job_id,
            self.prevhash.to_lower_hex_string(),
            self.coinb1.to_lower_hex_string(),
            self.coinb2.to_lower_hex_string(),
            self.merkle_branch
                .iter()
                .map(|b| b.to_lower_hex_string())
                .collect::<Vec<_>>(),
            format!("{:08x}", self.version),
            format!("{:08x}", self.nbits),
            format!("{:08x}", self.ntime),
            self.clean_jobs
        ])
    }

    /// Parses `mining.notify` params.
    pub fn from_params(p: &Value) -> Result<Notify, ProtocolError> {
        let bad = |field| ProtocolError::Field {
            method: "mining.notify",
            field,
        };
        let hex32 = |v: &Value| -> Option<[u8; 32]> {
            Vec::<u8>::from_hex(v.as_str()?).ok()?.try_into().ok()
        };
        let job_id = p[0]
            .as_str()
            .filter(|s| s.len() <= MAX_FIELD)
            .ok_or_else(|| bad("job_id"))?;
        let prevhash = hex32(&p[1]).ok_or_else(|| bad("prevhash"))?;
        let coinb1 = p[2]
            .as_str()
            .and_then(|h| Vec::<u8>::from_hex(h).ok())
            .ok_or_else(|| bad("coinb1"))?;
        let coinb2 = p[3]
            .as_str()
            .and_then(|h| Vec::<u8>::from_hex(h).ok())
            .ok_or_else(|| bad("coinb2"))?;
        let branch = p[4].as_array().ok_or_else(|| bad("merkle_branch"))?;
        if branch.len() > MAX_BRANCH {
            return Err(bad("merkle_branch"));
        }
        let merkle_branch = branch
            .iter()
            .map(hex32)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("merkle_branch"))?;
        Ok(Notify {
            job_id: job_id.to_string(),
            prevhash,
            coinb1,
            coinb2,
            merkle_branch,
            version: hex_u32_strict(&p[5]).ok_or_else(|| bad("version"))?,
            nbits: hex_u32_strict(&p[6]).ok_or_else(|| bad("nbits"))?,
            ntime: hex_u32_strict(&p[7]).ok_or_else(|| bad("ntime"))?,
            clean_jobs: p[8].as_bool().unwrap_or(false),
        })
    }
}

/// A pool's message.
#[derive(Clone, Debug, PartialEq)]
pub enum ServerMessage {
    /// `mining.notify`: a job.
    Notify(Notify),
    /// `mining.set_difficulty`: the share difficulty (finite, positive).
    SetDifficulty(f64),
    /// `mining.set_extranonce`.
    SetExtranonce {
        /// Extranonce1.
        extranonce1: Vec<u8>,
        /// Extranonce2 size in bytes.
        extranonce2_size: usize,
    },
    /// Another notification, kept as sent.
    Other {
        /// Its method.
        method: String,
        /// Its params.
        params: Value,
    },
    /// A reply to a request (what it means depends on the request; see [`SubscribeResult`]
    /// and [`ConfigureResult`]).
    Response {
        /// The request's id.
        id: Value,
        /// `result` (`null` when absent).
        result: Value,
        /// `error` (`null` when absent).
        error: Value,
    },
}

fn extranonce(
    method: &'static str,
    e1: &Value,
    size: &Value,
) -> Result<(Vec<u8>, usize), ProtocolError> {
    let extranonce1 = e1
        .as_str()
        .filter(|s| s.len() <= 2 * MAX_FIELD)
        .and_then(|h| Vec::<u8>::from_hex(h).ok())
        .ok_or(ProtocolError::Field {
            method,
            field: "extranonce1",
        })?;
    let extranonce2_size = size
        .as_u64()
        .filter(|&n| n as usize <= MAX_EXTRANONCE2_SIZE && n > 0)
        .ok_or(ProtocolError::Field {
            method,
            field: "extranonce2_size",
        })? as usize;
    Ok((extranonce1, extranonce2_size))
}

impl ServerMessage {
    /// Parses a pool's line.
    pub fn parse(line: &[u8]) -> Result<ServerMessage, ProtocolError> {
        let v: Value =
            serde_json::from_slice(line).map_err(|e| ProtocolError::Json(e.to_string()))?;
        let p = &v["params"];
        Ok(match v["method"].as_str() {
            Some("mining.notify") => ServerMessage::Notify(Notify::from_params(p)?),
            Some("mining.set_difficulty") => ServerMessage::SetDifficulty(
                p[0].as_f64().filter(|d| d.is_finite() && *d > 0.0).ok_or(
                    ProtocolError::Field {
                        method: "mining.set_difficulty",
                        field: "difficulty",
                    },
                )?,
            ),
            Some("mining.set_extranonce") => {
                let (extranonce1, extranonce2_size) =
                    extranonce("mining.set_extranonce", &p[0], &p[1])?;
                ServerMessage::SetExtranonce {
                    extranonce1,
                    extranonce2_size,
                }
            }
            Some(m) => ServerMessage::Other {
                method: m.to_string(),
                params: p.clone(),
            },
            None => ServerMessage::Response {
                id: v["id"].clone(),
                result: v["result"].clone(),
                error: v["error"].clone(),
            },
        })
    }

    /// The message as a pool sends it.
    pub fn to_json(&self) -> Value {
        match self {
            ServerMessage::Notify(n) => {
                json!({"id": null, "method": "mining.notify", "params": n.params()})
            }
            ServerMessage::SetDifficulty(d) => {
                json!({"id": null, "method": "mining.set_difficulty", "params": [d]})
            }
            ServerMessage::SetExtranonce {
                extranonce1,
                extranonce2_size,
            } => json!({"id": null, "method": "mining.set_extranonce",
                        "params": [extranonce1.to_lower_hex_string(), extranonce2_size]}),
            ServerMessage::Other { method, params } => {
                json!({"id": null, "method": method, "params": params})
            }
            ServerMessage::Response { id, result, error } => {
                json!({"id": id, "result": result, "error": error})
            }
        }
    }
}

/// The result of `mining.subscribe`: `[subscriptions, extranonce1, extranonce2_size]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscribeResult {
    /// Extranonce1.
    pub extranonce1: Vec<u8>,
    /// Extranonce2 size in bytes.
    pub extranonce2_size: usize,
}

impl SubscribeResult {
    /// Parses a subscribe reply's `result`.
    pub fn from_result(r: &Value) -> Result<SubscribeResult, ProtocolError> {
        let (extranonce1, extranonce2_size) = extranonce("mining.subscribe", &r[1], &r[2])?;
        Ok(SubscribeResult {
            extranonce1,
            extranonce2_size,
        })
    }

    /// The `result` as a server sends it (the conventional subscription list).
    pub fn to_result(&self) -> Value {
        json!([
            [["mining.set_difficulty", "1"], ["mining.notify", "1"]],
            self.extranonce1.to_lower_hex_string(),
            self.extranonce2_size
        ])
    }
}

/// The result of `mining.configure` for version rolling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigureResult {
    /// Whether version rolling is on.
    pub version_rolling: bool,
    /// The mask granted (8 hex digits when given).
    pub mask: Option<u32>,
}

impl ConfigureResult {
    /// Parses a configure reply's `result`.
    pub fn from_result(r: &Value) -> Result<ConfigureResult, ProtocolError> {
        let version_rolling = r["version-rolling"].as_bool().unwrap_or(false);
        let m = &r["version-rolling.mask"];
        let mask = if m.is_null() {
            None
        } else {
            Some(hex_u32_strict(m).ok_or(ProtocolError::Field {
                method: "mining.configure",
                field: "version-rolling.mask",
            })?)
        };
        Ok(ConfigureResult {
            version_rolling,
            mask,
        })
    }

    /// The `result` as a server sends it.
    pub fn to_result(&self) -> Value {
        let mut r = json!({"version-rolling": self.version_rolling});
        if let Some(m) = self.mask {
            r["version-rolling.mask"] = json!(format!("{m:08x}"));
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submit_errors_in_order() {
        let sub =
            |p: Value| match request_of(&json!({"id": 1, "method": "mining.submit", "params": p}))
                .request
            {
                Request::Submit(r) => r,
                other => panic!("{other:?}"),
            };
        assert_eq!(sub(json!(["w", 5])).unwrap_err().error, SubmitError::JobId);
        let e = sub(json!(["w", "j", "zz"])).unwrap_err();
        assert_eq!(
            (e.job_id.as_deref(), e.error),
            (Some("j"), SubmitError::Extranonce2)
        );
        assert_eq!(
            sub(json!(["w", "j", "00"])).unwrap_err().error,
            SubmitError::Extranonce2Size
        );
        assert_eq!(
            sub(json!(["w", "j", "00000000", "x", "0"]))
                .unwrap_err()
                .error,
            SubmitError::NtimeOrNonce
        );
        assert_eq!(
            sub(json!(["w", "j", "00000000", "1", "2", "nothex"]))
                .unwrap_err()
                .error,
            SubmitError::VersionBits
        );
        let ok = sub(json!(["w", "j", "0000000a", "65000000", "2", null])).unwrap();
        assert_eq!(
            (ok.ntime, ok.nonce, ok.version_bits),
            (0x6500_0000, 2, None)
        );
    }

    #[test]
    fn notify_checks_lengths() {
        let good = json!([
            "1",
            "00".repeat(32),
            "01",
            "02",
            ["11".repeat(32)],
            "20000000",
            "1d00ffff",
            "65000000",
            true
        ]);
        let n = Notify::from_params(&good).unwrap();
        assert_eq!(
            (n.version, n.nbits, n.clean_jobs),
            (0x2000_0000, 0x1d00_ffff, true)
        );
        let mut short = good.clone();
        short[4] = json!(["11"]);
        assert!(Notify::from_params(&short).is_err());
        let mut long_time = good;
        long_time[7] = json!("065000000");
        assert!(Notify::from_params(&long_time).is_err());
    }
}
