//! Where a Stratum worker's L2 reward goes: the pool operator chooses the sources (a mapping
//! file, `rx=<address>` in the password, an address as the worker name's last part) and
//! their order; anything else falls back to the operator's address.

use std::collections::HashMap;
use std::path::Path;

/// One place a payout address can come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayoutSource {
    /// The operator's mapping file: worker name (or the account part before the first `.`)
    /// to address.
    Map,
    /// `rx=<address>` among the password's comma-separated fields.
    Password,
    /// The worker name's last `.`-separated part, when it is an L2 address
    /// (`btcaddress.rig1.<rx address>`).
    WorkerSuffix,
}

impl std::str::FromStr for PayoutSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "map" => Ok(PayoutSource::Map),
            "password" => Ok(PayoutSource::Password),
            "worker-suffix" => Ok(PayoutSource::WorkerSuffix),
            other => Err(format!(
                "unknown payout source {other:?} (map, password, worker-suffix)"
            )),
        }
    }
}

/// The operator's payout rules.
#[derive(Clone, Debug)]
pub struct PayoutRules {
    /// Sources, tried in order.
    pub sources: Vec<PayoutSource>,
    /// The mapping file's entries.
    pub map: HashMap<String, String>,
}

impl Default for PayoutRules {
    /// The mapping (empty unless loaded), then `rx=` in the password.
    fn default() -> Self {
        PayoutRules {
            sources: vec![PayoutSource::Map, PayoutSource::Password],
            map: HashMap::new(),
        }
    }
}

/// Why a worker's payout cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayoutError {
    /// The worker named an address that is not an L2 address.
    #[error("invalid rx address {0:?}")]
    Invalid(String),
}

/// Whether `s` is an L2 address of any network.
fn is_address(s: &str) -> bool {
    rexe_chain::Address::parse_any(s).is_ok()
}

impl PayoutRules {
    /// Reads a mapping file: one `worker address` pair per line, `#` comments.
    pub fn load_map(path: &Path) -> std::io::Result<HashMap<String, String>> {
        let text = std::fs::read_to_string(path)?;
        let mut map = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (Some(worker), Some(addr), None) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}:{}: expected `worker address`", path.display(), n + 1),
                ));
            };
            if !is_address(addr) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{}:{}: {addr:?} is not an L2 address",
                        path.display(),
                        n + 1
                    ),
                ));
            }
            map.insert(worker.to_string(), addr.to_string());
        }
        Ok(map)
    }

    /// The payout address for a worker authorizing as `user` with `password`: `Ok(None)`
    /// when no source names one (the operator's address is used), an error when the
    /// worker's own choice is not an address (a typo must not silently pay the operator).
    pub fn resolve(&self, user: &str, password: &str) -> Result<Option<String>, PayoutError> {
        for source in &self.sources {
            match source {
                PayoutSource::Map => {
                    let account = user.split('.').next().unwrap_or(user);
                    if let Some(a) = self.map.get(user).or_else(|| self.map.get(account)) {
                        return Ok(Some(a.clone()));
                    }
                }
                PayoutSource::Password => {
                    if let Some(rx) = password
                        .split(',')
                        .find_map(|kv| kv.trim().strip_prefix("rx="))
                    {
                        return match is_address(rx) {
                            true => Ok(Some(rx.to_string())),
                            false => Err(PayoutError::Invalid(rx.to_string())),
                        };
                    }
                }
                PayoutSource::WorkerSuffix => {
                    if let Some(last) = user.rsplit('.').next().filter(|l| *l != user) {
                        if is_address(last) {
                            return Ok(Some(last.to_string()));
                        }
                    }
                }
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rexe_chain::{Network, Signer};

    fn addr(seed: &[u8]) -> String {
        Signer::from_seed(seed).address().encode(Network::Regtest)
    }

    #[test]
    fn sources_in_the_operators_order() {
        let (a, b, c) = (addr(b"a"), addr(b"b"), addr(b"c"));
        let mut rules = PayoutRules::default();
        rules.map.insert("alice".into(), a.clone());
        // The map wins over the password, by account or by full worker name.
        assert_eq!(
            rules.resolve("alice.rig1", &format!("x,rx={b}")),
            Ok(Some(a.clone()))
        );
        rules.map.insert("alice.rig2".into(), c.clone());
        assert_eq!(rules.resolve("alice.rig2", ""), Ok(Some(c.clone())));
        // Unmapped: the password's rx=.
        assert_eq!(
            rules.resolve("bob", &format!("d=1, rx={b}")),
            Ok(Some(b.clone()))
        );
        // A typo is refused, not paid to the operator.
        assert!(rules.resolve("bob", "rx=rxnotanaddress").is_err());
        // Nothing named: the operator's address.
        assert_eq!(rules.resolve("bob", "x"), Ok(None));
        // Worker suffix only when enabled.
        let user = format!("bcrt1qsomething.rig1.{c}");
        assert_eq!(rules.resolve(&user, "x"), Ok(None));
        rules.sources.push(PayoutSource::WorkerSuffix);
        assert_eq!(rules.resolve(&user, "x"), Ok(Some(c)));
        assert_eq!(rules.resolve("plainname", "x"), Ok(None));
    }

    #[test]
    fn mapping_files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("payouts");
        std::fs::write(&p, format!("# worker address\nalice {}\n\n", addr(b"a"))).unwrap();
        assert_eq!(PayoutRules::load_map(&p).unwrap().len(), 1);
        std::fs::write(&p, "alice notanaddress\n").unwrap();
        assert!(PayoutRules::load_map(&p).is_err());
        std::fs::write(&p, "alice\n").unwrap();
        assert!(PayoutRules::load_map(&p).is_err());
    }
}
