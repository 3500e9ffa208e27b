//! Output descriptors as Core's RPCs take and write them: checksums required where Core
//! requires them, ranges, output types, one key's descriptor with its full origin, and the
//! two node-level descriptor RPCs (`getdescriptorinfo`, `deriveaddresses`).

use bdk_wallet::miniscript::descriptor::checksum::desc_checksum;
use bdk_wallet::miniscript::descriptor::{
    DescriptorType, KeyMap, SinglePub, SinglePubKey, Wildcard,
};
use bdk_wallet::miniscript::{
    translate_hash_clone, DefiniteDescriptorKey, Descriptor, DescriptorPublicKey, ForEachKey,
    TranslatePk, Translator,
};
use bitcoin::secp256k1::{All, Secp256k1};
use bitcoin::Network;
use serde_json::{json, Value};

use super::watch::ScriptDesc;
use super::{arg, param, str_arg, Res};

/// The highest range end an imported or derived descriptor may name. Core allows ranges up
/// to a million keys; the embedded node watches every key of a range from the start, so it
/// keeps them to what a regtest script uses (Core's keypool is 1,000).
pub const MAX_RANGE_END: u32 = 9_999;

/// Keys a ranged descriptor watches when the import names no range: Core's keypool size.
pub const DEFAULT_RANGE: u32 = 1_000;

/// Core's output types (`-addresstype`, `address_type` arguments).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum OutputType {
    /// P2PKH (and bare P2SH).
    Legacy,
    /// P2SH-wrapped segwit v0.
    P2shSegwit,
    /// Native segwit v0.
    Bech32,
    /// Taproot.
    Bech32m,
}

impl OutputType {
    /// An `address_type` argument (Core's names); `None` is the default, `bech32`.
    pub fn parse(t: Option<&str>) -> Res<OutputType> {
        match t.unwrap_or("bech32") {
            "legacy" => Ok(OutputType::Legacy),
            "p2sh-segwit" => Ok(OutputType::P2shSegwit),
            "bech32" => Ok(OutputType::Bech32),
            "bech32m" => Ok(OutputType::Bech32m),
            other => Err(param(-5, format!("Unknown address type '{other}'"))),
        }
    }

    /// Core's name of the type.
    pub fn name(self) -> &'static str {
        match self {
            OutputType::Legacy => "legacy",
            OutputType::P2shSegwit => "p2sh-segwit",
            OutputType::Bech32 => "bech32",
            OutputType::Bech32m => "bech32m",
        }
    }

    /// The type of the addresses `desc` produces, as Core's `GetOutputType` (none for bare
    /// scripts, which have no address).
    pub fn of(desc: &Descriptor<DescriptorPublicKey>) -> Option<OutputType> {
        use DescriptorType as T;
        match desc.desc_type() {
            T::Bare => None,
            T::Pkh | T::Sh | T::ShSortedMulti => Some(OutputType::Legacy),
            T::ShWpkh | T::ShWsh | T::ShWshSortedMulti => Some(OutputType::P2shSegwit),
            T::Wpkh | T::Wsh | T::WshSortedMulti => Some(OutputType::Bech32),
            T::Tr => Some(OutputType::Bech32m),
        }
    }
}

/// Splits `s` into its body and its checksum, checking the checksum when there is one (or
/// requiring one with `require`), with Core's messages (code -5).
pub(super) fn checked_body(s: &str, require: bool) -> Res<&str> {
    let (body, given) = match s.rsplit_once('#') {
        Some((b, c)) => (b, Some(c)),
        None => (s, None),
    };
    match given {
        None if require => Err(param(-5, "Missing checksum")),
        None => Ok(body),
        Some(c) => {
            let computed = desc_checksum(body).map_err(|e| param(-5, e.to_string()))?;
            if c != computed {
                return Err(param(
                    -5,
                    format!(
                        "Provided checksum '{c}' does not match computed checksum '{computed}'"
                    ),
                ));
            }
            Ok(body)
        }
    }
}

/// Parses a descriptor argument, private keys included, the checksum required or not.
pub fn parse(s: &str, require_checksum: bool) -> Res<(Descriptor<DescriptorPublicKey>, KeyMap)> {
    parse_body(checked_body(s, require_checksum)?)
}

fn parse_body(body: &str) -> Res<(Descriptor<DescriptorPublicKey>, KeyMap)> {
    Descriptor::parse_descriptor(&Secp256k1::new(), body).map_err(|e| param(-5, e.to_string()))
}

/// A descriptor argument as the wallet takes it: the descriptors it stands for.
pub struct Arg {
    /// Each descriptor with its text (private keys as given, no checksum) and keys: one for
    /// most arguments; one per path for a multipath (`<0;1>`) descriptor, split as text so
    /// that private keys survive (rust-miniscript cannot hold a multipath private key); for
    /// `combo(KEY)` P2PK and P2PKH and, for a compressed key, P2WPKH and P2SH-P2WPKH, in
    /// Core's order (rust-miniscript has no `combo`).
    pub parts: Vec<(String, Descriptor<DescriptorPublicKey>, KeyMap)>,
    /// A `combo()` argument's public form (`combo(KEY)`, no checksum).
    pub combo: Option<String>,
    /// Whether it is a multipath descriptor (`parts` are its paths, in order).
    pub multipath: bool,
}

impl Arg {
    /// The descriptor's public form as Core writes it, with its checksum (a multipath
    /// descriptor's first path, as Core's `getdescriptorinfo` gives it).
    pub fn public(&self) -> String {
        match &self.combo {
            Some(c) => core_form(c),
            None => core_form(&self.parts[0].1.to_string()),
        }
    }

    /// Whether the keys are ranged.
    pub fn has_wildcard(&self) -> bool {
        self.parts[0].1.has_wildcard()
    }
}

/// `body` split into one text per path, each multipath step `<a;b;…>` replaced by that
/// path's choice (`None`: it has no multipath step), or why its steps do not make a
/// multipath descriptor.
fn split_paths(body: &str) -> Res<Option<Vec<String>>> {
    let mut paths: Option<Vec<String>> = None;
    let mut rest = body;
    while let Some(open) = rest.find('<') {
        let close = rest[open..]
            .find('>')
            .ok_or_else(|| param(-5, "Multipath step '<' is not closed"))?
            + open;
        let choices: Vec<&str> = rest[open + 1..close].split(';').collect();
        if choices.len() < 2 {
            return Err(param(-5, "Multipath steps need at least two choices"));
        }
        let paths = paths.get_or_insert_with(|| vec![String::new(); choices.len()]);
        if paths.len() != choices.len() {
            return Err(param(-5, "Multipath subscripts have mismatched lengths"));
        }
        for (path, choice) in paths.iter_mut().zip(choices) {
            path.push_str(&rest[..open]);
            path.push_str(choice);
        }
        rest = &rest[close + 1..];
    }
    Ok(paths.map(|mut paths| {
        for path in &mut paths {
            path.push_str(rest);
        }
        paths
    }))
}

/// Parses a descriptor argument, multipath and `combo()` included (see [`Arg`]).
pub fn parse_arg(s: &str, require_checksum: bool) -> Res<Arg> {
    let body = checked_body(s, require_checksum)?;
    if let Some(key) = body
        .strip_prefix("combo(")
        .and_then(|b| b.strip_suffix(')'))
    {
        return combo(key);
    }
    if let Some(paths) = split_paths(body)? {
        let parts = paths
            .into_iter()
            .map(|one| {
                let (d, k) = parse_body(&one)?;
                Ok((one, d, k))
            })
            .collect::<Res<Vec<_>>>()?;
        return Ok(Arg {
            parts,
            combo: None,
            multipath: true,
        });
    }
    let (d, k) = parse_body(body)?;
    Ok(Arg {
        parts: vec![(body.to_string(), d, k)],
        combo: None,
        multipath: false,
    })
}

/// `combo(KEY)`'s descriptors.
fn combo(key: &str) -> Res<Arg> {
    if key.contains('<') {
        return Err(param(
            -5,
            "The embedded node does not take combo() with a multipath key; import one combo() per path",
        ));
    }
    let pk_text = format!("pk({key})");
    let (pk, keys) = parse_body(&pk_text)?;
    let mut parts = vec![(pk_text, pk, keys)];
    let pkh_text = format!("pkh({key})");
    let (pkh, keys) = parse_body(&pkh_text)?;
    parts.push((pkh_text, pkh, keys));
    // Segwit takes compressed keys only: an uncompressed key gives P2PK and P2PKH alone.
    let wpkh_text = format!("wpkh({key})");
    if let Ok((wpkh, keys)) = parse_body(&wpkh_text) {
        parts.push((wpkh_text, wpkh, keys));
        let sh_text = format!("sh(wpkh({key}))");
        let (sh, keys) = parse_body(&sh_text)?;
        parts.push((sh_text, sh, keys));
    }
    let public = parts[0].1.to_string();
    let public = public.split('#').next().unwrap_or(&public);
    let inner = public
        .strip_prefix("pk(")
        .and_then(|p| p.strip_suffix(')'))
        .unwrap_or(public);
    Ok(Arg {
        parts,
        combo: Some(format!("combo({inner})")),
        multipath: false,
    })
}

/// A descriptor as Core writes it: `h` for hardened steps, with its checksum.
pub fn core_form(body: &str) -> String {
    let body = body.split('#').next().unwrap_or(body).replace('\'', "h");
    match desc_checksum(&body) {
        Ok(c) => format!("{body}#{c}"),
        Err(_) => body,
    }
}

/// A `range` argument as Core's `ParseDescriptorRange`: `end` or `[begin, end]`, inclusive.
pub fn range_arg(v: &Value) -> Res<(u32, u32)> {
    let unspecified = || param(-8, "Range must be specified as end or as [begin,end]");
    // Core's `ParseRange`, then `ParseDescriptorRange`, in their order.
    let (begin, end) = match v {
        Value::Number(n) => (0, n.as_i64().ok_or_else(unspecified)?),
        Value::Array(a) if a.len() == 2 => {
            let begin = a[0].as_i64().ok_or_else(unspecified)?;
            let end = a[1].as_i64().ok_or_else(unspecified)?;
            if begin > end {
                return Err(param(
                    -8,
                    "Range specified as [begin,end] must not have begin after end",
                ));
            }
            (begin, end)
        }
        _ => return Err(unspecified()),
    };
    if begin < 0 {
        return Err(param(-8, "Range should be greater or equal than 0"));
    }
    if end >> 31 != 0 {
        return Err(param(-8, "End of range is too high"));
    }
    if end >= begin + 1_000_000 {
        return Err(param(-8, "Range is too large"));
    }
    if end > i64::from(MAX_RANGE_END) {
        return Err(param(
            -8,
            format!("Range end {end} is above the embedded node's limit of {MAX_RANGE_END}"),
        ));
    }
    Ok((begin as u32, end as u32))
}

/// Turns each key of a descriptor at one index into a single key with its full origin, as
/// Core writes the descriptor of one address (`wpkh([fp/84h/1h/0h/0/5]02…)`).
struct KeyAtOrigin<'a> {
    secp: &'a Secp256k1<All>,
    xonly: bool,
}

impl Translator<DefiniteDescriptorKey, DescriptorPublicKey, String> for KeyAtOrigin<'_> {
    fn pk(&mut self, pk: &DefiniteDescriptorKey) -> Result<DescriptorPublicKey, String> {
        let key = pk.derive_public_key(self.secp).map_err(|e| e.to_string())?;
        let has_origin = match pk.as_descriptor_public_key() {
            DescriptorPublicKey::Single(s) => s.origin.is_some(),
            _ => true,
        };
        let origin = has_origin
            .then(|| Some((pk.master_fingerprint(), pk.full_derivation_path()?)))
            .flatten();
        let key = if self.xonly {
            SinglePubKey::XOnly(key.inner.x_only_public_key().0)
        } else {
            SinglePubKey::FullKey(key)
        };
        Ok(DescriptorPublicKey::Single(SinglePub { origin, key }))
    }

    translate_hash_clone!(DefiniteDescriptorKey, DescriptorPublicKey, String);
}

/// The descriptor of `desc`'s script at `index`, keys written with their full origins and
/// the checksum appended; empty when it cannot be derived.
pub fn at_index(desc: &Descriptor<DescriptorPublicKey>, index: u32) -> String {
    let secp = Secp256k1::new();
    let Ok(definite) = desc.at_derivation_index(index) else {
        return String::new();
    };
    let mut t = KeyAtOrigin {
        secp: &secp,
        xonly: matches!(desc, Descriptor::Tr(_)),
    };
    match definite.translate_pk(&mut t) {
        Ok(d) => core_form(&d.to_string()),
        Err(_) => String::new(),
    }
}

/// The key path and master fingerprint of a single-key descriptor's key at `index`
/// (`getaddressinfo`'s `hdkeypath`, `hdmasterfingerprint`); `None` for several keys or a
/// key without an extended key behind it.
pub fn hd_origin(desc: &Descriptor<DescriptorPublicKey>, index: u32) -> Option<(String, String)> {
    let mut keys = Vec::new();
    desc.for_each_key(|k| {
        keys.push(k.clone());
        true
    });
    let [key] = keys.as_slice() else {
        return None;
    };
    if matches!(key, DescriptorPublicKey::Single(_)) {
        return None;
    }
    let definite = key.clone().at_derivation_index(index).ok()?;
    let path = definite.full_derivation_path()?;
    let path = format!("m/{path}").replace('\'', "h");
    Some((path, definite.master_fingerprint().to_string()))
}

/// Whether every key of `desc` is an extended key whose wildcard step is unhardened (so
/// public derivation reaches every index).
fn publicly_derivable(desc: &Descriptor<DescriptorPublicKey>) -> bool {
    desc.for_each_key(
        |k| !matches!(k, DescriptorPublicKey::XPub(x) if x.wildcard == Wildcard::Hardened),
    )
}

/// `getdescriptorinfo`: the public descriptor in Core's form, the argument's checksum and
/// what the descriptor is.
pub fn getdescriptorinfo(p: &Value) -> Res<Value> {
    let s = str_arg(p, 0)?.ok_or_else(|| param(-3, "Expected type string"))?;
    if let Some(d) = ScriptDesc::parse(s, false) {
        // A script alone: no keys, no range, and nothing known to satisfy it.
        let d = d?;
        return Ok(json!({
            "descriptor": core_form(&d.text),
            "checksum": desc_checksum(&d.text).map_err(|e| param(-5, e.to_string()))?,
            "isrange": false,
            "issolvable": false,
            "hasprivatekeys": false,
        }));
    }
    let arg = parse_arg(s, false)?;
    let body = s.split('#').next().unwrap_or(s);
    let mut out = json!({"descriptor": arg.public()});
    if arg.multipath {
        out["multipath_expansion"] = arg
            .parts
            .iter()
            .map(|(_, d, _)| json!(core_form(&d.to_string())))
            .collect();
    }
    out["checksum"] = json!(desc_checksum(body).map_err(|e| param(-5, e.to_string()))?);
    out["isrange"] = json!(arg.has_wildcard());
    out["issolvable"] = json!(true);
    out["hasprivatekeys"] = json!(!arg.parts[0].2.is_empty());
    Ok(out)
}

/// `deriveaddresses`: the addresses of a descriptor (checksum required) at one index or over
/// a range.
pub fn deriveaddresses(p: &Value) -> Res<Value> {
    let s = str_arg(p, 0)?.ok_or_else(|| param(-3, "Expected type string"))?;
    if let Some(d) = ScriptDesc::parse(s, true) {
        let d = d?;
        if arg(p, 1).is_some() {
            return Err(param(
                -8,
                "Range should not be specified for an un-ranged descriptor",
            ));
        }
        let a = d
            .address()
            .ok_or_else(|| param(-5, "Descriptor does not have a corresponding address"))?;
        return Ok(json!([a.to_string()]));
    }
    let parsed = parse_arg(s, true)?;
    let combo = parsed.combo.is_some();
    let desc = &parsed.parts[0].1;
    let range = arg(p, 1);
    let (begin, end) = match (desc.has_wildcard(), range) {
        (true, None) => {
            return Err(param(-8, "Range must be specified for a ranged descriptor"));
        }
        (false, Some(_)) => {
            return Err(param(
                -8,
                "Range should not be specified for an un-ranged descriptor",
            ));
        }
        (true, Some(r)) => range_arg(r)?,
        (false, None) => (0, 0),
    };
    if desc.has_wildcard() && !publicly_derivable(desc) {
        return Err(param(
            -5,
            "Cannot derive script without private keys (hardened steps need the private key)",
        ));
    }
    // The address of `desc` at `i`; `None` for combo()'s P2PK script, which has none and
    // is left out, as Core does.
    let address_at = |desc: &Descriptor<DescriptorPublicKey>, i: u32| -> Res<Option<Value>> {
        let d = desc
            .at_derivation_index(i)
            .map_err(|e| param(-5, e.to_string()))?;
        match d.address(Network::Regtest) {
            Ok(a) => Ok(Some(json!(a.to_string()))),
            Err(_) if combo => Ok(None),
            Err(_) => Err(param(
                -5,
                "Descriptor does not have a corresponding address",
            )),
        }
    };
    if parsed.multipath {
        // As Core: one list of addresses per path.
        let mut out = Vec::new();
        for (_, desc, _) in &parsed.parts {
            let mut addrs = Vec::new();
            for i in begin..=end {
                addrs.extend(address_at(desc, i)?);
            }
            out.push(json!(addrs));
        }
        return Ok(json!(out));
    }
    let mut out = Vec::new();
    for i in begin..=end {
        for (_, desc, _) in &parsed.parts {
            out.extend(address_at(desc, i)?);
        }
    }
    Ok(json!(out))
}

#[cfg(test)]
mod tests {
    use super::{range_arg, split_paths};
    use serde_json::json;

    #[test]
    fn ranges_are_checked_in_cores_order_with_its_messages() {
        let err = |v| range_arg(&v).unwrap_err().to_string();
        assert_eq!(range_arg(&json!(5)).unwrap(), (0, 5));
        assert_eq!(range_arg(&json!([2, 9])).unwrap(), (2, 9));
        assert_eq!(
            err(json!([3, -1])),
            "Range specified as [begin,end] must not have begin after end"
        );
        assert_eq!(
            err(json!([-1, 3])),
            "Range should be greater or equal than 0"
        );
        // A negative end alone is Core's "too high" (its sign bit is set).
        assert_eq!(err(json!(-5)), "End of range is too high");
        assert_eq!(err(json!([0, 1i64 << 31])), "End of range is too high");
        assert_eq!(err(json!([0, 1_000_000])), "Range is too large");
        assert_eq!(
            err(json!([0, 10_000])),
            "Range end 10000 is above the embedded node's limit of 9999"
        );
        assert_eq!(
            err(json!("5")),
            "Range must be specified as end or as [begin,end]"
        );
        assert_eq!(
            err(json!([1, 2, 3])),
            "Range must be specified as end or as [begin,end]"
        );
    }

    #[test]
    fn split_paths_takes_each_steps_choice() {
        let d = "wsh(multi(1,xprv/<0;1>/*,xpub/7/<2;3>/*))";
        assert_eq!(
            split_paths(d).unwrap(),
            Some(vec![
                "wsh(multi(1,xprv/0/*,xpub/7/2/*))".to_string(),
                "wsh(multi(1,xprv/1/*,xpub/7/3/*))".to_string(),
            ])
        );
        assert!(split_paths("wpkh(xprv/<0;1/*)").is_err());
        assert!(split_paths("wpkh(xprv/<0>/*)").is_err());
        assert!(split_paths("wsh(multi(1,xprv/<0;1>/*,xpub/<2;3;4>/*))").is_err());
        assert_eq!(split_paths("wpkh(xprv/0/*)").unwrap(), None);
    }
}
