//! Transactions and scripts as Bitcoin Core writes them in JSON (`TxToUniv`,
//! `ScriptToUniv`, `ScriptToAsmStr`, `InferDescriptor`, `GetTxnOutputType`), so that scripts
//! and libraries reading `getrawtransaction … true`, `getblock … 2`, `decoderawtransaction`,
//! `decodescript` and `gettxout` find the fields they expect.

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::hex::DisplayHex;
use bitcoin::script::Instruction;
use bitcoin::{Address, Network, Script, Transaction};
use serde_json::{json, Map, Value};

/// Core's output type name (`GetTxnOutputType(Solver(script))`).
pub fn script_type(s: &Script) -> &'static str {
    let b = s.as_bytes();
    if s.is_p2sh() {
        return "scripthash";
    }
    if let Some((version, program)) = witness_program(b) {
        return match (version, program.len()) {
            (0, 20) => "witness_v0_keyhash",
            (0, 32) => "witness_v0_scripthash",
            (1, 32) => "witness_v1_taproot",
            (1, 2) if program == [0x4e, 0x73] => "anchor",
            (0, _) => "nonstandard",
            _ => "witness_unknown",
        };
    }
    if b.first() == Some(&0x6a) && is_push_only(&b[1..]) {
        return "nulldata";
    }
    if pay_to_pubkey(b).is_some() {
        return "pubkey";
    }
    if s.is_p2pkh() {
        return "pubkeyhash";
    }
    if multisig(b).is_some() {
        return "multisig";
    }
    "nonstandard"
}

/// `(version, program)` of a witness program script (BIP141: 4 to 42 bytes).
fn witness_program(b: &[u8]) -> Option<(u8, &[u8])> {
    if b.len() < 4 || b.len() > 42 {
        return None;
    }
    let version = match b[0] {
        0x00 => 0,
        0x51..=0x60 => b[0] - 0x50,
        _ => return None,
    };
    (usize::from(b[1]) + 2 == b.len()).then(|| (version, &b[2..]))
}

/// Whether every instruction is a push (OP_RESERVED and OP_1NEGATE..OP_16 count, as in Core).
fn is_push_only(b: &[u8]) -> bool {
    Script::from_bytes(b).instructions().all(|i| match i {
        Ok(Instruction::PushBytes(_)) => true,
        Ok(Instruction::Op(op)) => op.to_u8() <= 0x60,
        Err(_) => false,
    })
}

/// The key of a pay-to-pubkey script (33 or 65 bytes with a matching header).
fn pay_to_pubkey(b: &[u8]) -> Option<&[u8]> {
    match b {
        [33, key @ .., 0xac] if key.len() == 33 && matches!(key[0], 2 | 3) => Some(key),
        [65, key @ .., 0xac] if key.len() == 65 && matches!(key[0], 4 | 6 | 7) => Some(key),
        _ => None,
    }
}

/// `(k, keys)` of a bare multisig script (`OP_k <keys> OP_n OP_CHECKMULTISIG`).
fn multisig(b: &[u8]) -> Option<(u8, Vec<&[u8]>)> {
    let ins: Vec<_> = Script::from_bytes(b)
        .instructions()
        .collect::<Result<_, _>>()
        .ok()?;
    let small = |i: &Instruction| match i {
        Instruction::Op(op) if (0x51..=0x60).contains(&op.to_u8()) => Some(op.to_u8() - 0x50),
        _ => None,
    };
    if ins.len() < 4 || !matches!(ins.last(), Some(Instruction::Op(op)) if op.to_u8() == 0xae) {
        return None;
    }
    let k = small(&ins[0])?;
    let n = small(&ins[ins.len() - 2])?;
    let keys: Vec<&[u8]> = ins[1..ins.len() - 2]
        .iter()
        .map(|i| match i {
            Instruction::PushBytes(p) => {
                let p = p.as_bytes();
                let ok = matches!(
                    (p.len(), p.first()),
                    (33, Some(2 | 3)) | (65, Some(4 | 6 | 7))
                );
                ok.then_some(p)
            }
            _ => None,
        })
        .collect::<Option<_>>()?;
    (usize::from(n) == keys.len() && k >= 1 && k <= n).then_some((k, keys))
}

/// The address Core prints for a script (`ExtractDestination`; none for pay-to-pubkey,
/// multisig, null data and non-standard scripts).
pub fn script_address(s: &Script, network: Network) -> Option<String> {
    match script_type(s) {
        "pubkey" | "multisig" | "nulldata" | "nonstandard" => None,
        _ => Address::from_script(s, network).ok().map(|a| a.to_string()),
    }
}

/// Core's inferred descriptor for a script with no key or script information, with its
/// checksum: `pk(…)`, `rawtr(…)`, `multi(…)`, `addr(…)` or `raw(…)`.
pub fn script_desc(s: &Script, network: Network) -> String {
    let b = s.as_bytes();
    let valid_key = |k: &[u8]| bitcoin::PublicKey::from_slice(k).is_ok();
    let body = if let Some(key) = pay_to_pubkey(b).filter(|k| valid_key(k)) {
        format!("pk({})", key.to_lower_hex_string())
    } else if let Some((k, keys)) = multisig(b).filter(|(_, ks)| ks.iter().all(|k| valid_key(k))) {
        let keys: Vec<String> = keys.iter().map(|b| b.to_lower_hex_string()).collect();
        format!("multi({k},{})", keys.join(","))
    } else if script_type(s) == "witness_v1_taproot"
        && bitcoin::XOnlyPublicKey::from_slice(&b[2..]).is_ok()
    {
        format!("rawtr({})", b[2..].to_lower_hex_string())
    } else if let Some(a) = script_address(s, network) {
        format!("addr({a})")
    } else {
        format!("raw({})", b.to_lower_hex_string())
    };
    let sum = descriptor_checksum(&body).unwrap_or_default();
    format!("{body}#{sum}")
}

/// The BIP380 descriptor checksum of `desc` (`None` for characters outside its set).
pub fn descriptor_checksum(desc: &str) -> Option<String> {
    const INPUT: &str = "0123456789()[],'/*abcdefgh@:$%{}IJKLMNOPQRSTUVWXYZ&+-.;<=>?!^_|~ijklmnopqrstuvwxyzABCDEFGH`#\"\\ ";
    const CHARS: &[u8] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    fn polymod(c: u64, val: u64) -> u64 {
        let c0 = c >> 35;
        let mut c = ((c & 0x7_ffff_ffff) << 5) ^ val;
        for (bit, g) in [
            0xf5_dee5_1989u64,
            0xa9_fdca_3312,
            0x1b_ab10_e32d,
            0x37_06b1_677a,
            0x64_4d62_6ffd,
        ]
        .iter()
        .enumerate()
        {
            if c0 & (1 << bit) != 0 {
                c ^= g;
            }
        }
        c
    }
    let (mut c, mut cls, mut clscount) = (1u64, 0u64, 0);
    for ch in desc.chars() {
        let pos = INPUT.find(ch)? as u64;
        c = polymod(c, pos & 31);
        cls = cls * 3 + (pos >> 5);
        clscount += 1;
        if clscount == 3 {
            c = polymod(c, cls);
            cls = 0;
            clscount = 0;
        }
    }
    if clscount > 0 {
        c = polymod(c, cls);
    }
    for _ in 0..8 {
        c = polymod(c, 0);
    }
    c ^= 1;
    Some(
        (0..8)
            .map(|j| CHARS[((c >> (5 * (7 - j))) & 31) as usize] as char)
            .collect(),
    )
}

/// Core's name of a non-push opcode.
fn op_name(code: u8) -> String {
    match code {
        0x4f => "-1".into(),
        0x51..=0x60 => (code - 0x50).to_string(),
        0xb1 => "OP_CHECKLOCKTIMEVERIFY".into(),
        0xb2 => "OP_CHECKSEQUENCEVERIFY".into(),
        0xba => "OP_CHECKSIGADD".into(),
        0xbb..=0xfe => "OP_UNKNOWN".into(),
        _ => bitcoin::opcodes::Opcode::from(code).to_string(),
    }
}

/// A minimally-or-not encoded script number of at most 4 bytes (`CScriptNum(v, false)`).
fn script_num(v: &[u8]) -> i64 {
    let mut r: i64 = 0;
    for (i, b) in v.iter().enumerate() {
        r |= i64::from(*b) << (8 * i);
    }
    match v.last() {
        Some(last) if last & 0x80 != 0 => -(r & !(0x80i64 << (8 * (v.len() - 1)))),
        _ => r,
    }
}

/// BIP66 strict DER of a signature with its trailing sighash byte
/// (`IsValidSignatureEncoding`).
fn valid_der(sig: &[u8]) -> bool {
    let n = sig.len();
    if !(9..=73).contains(&n) || sig[0] != 0x30 || usize::from(sig[1]) != n - 3 {
        return false;
    }
    let len_r = usize::from(sig[3]);
    if 5 + len_r >= n {
        return false;
    }
    let len_s = usize::from(sig[5 + len_r]);
    if len_r + len_s + 7 != n || sig[2] != 0x02 || len_r == 0 || sig[4] & 0x80 != 0 {
        return false;
    }
    if len_r > 1 && sig[4] == 0 && sig[5] & 0x80 == 0 {
        return false;
    }
    if sig[len_r + 4] != 0x02 || len_s == 0 || sig[len_r + 6] & 0x80 != 0 {
        return false;
    }
    !(len_s > 1 && sig[len_r + 6] == 0 && sig[len_r + 7] & 0x80 == 0)
}

/// Core's `ScriptToAsmStr`: small pushes as numbers, others as hex; with
/// `sighash_decode`, signatures end in `[ALL]`, `[NONE|ANYONECANPAY]`, ….
pub fn script_asm(s: &Script, sighash_decode: bool) -> String {
    let mut out: Vec<String> = Vec::new();
    let unspendable = s.as_bytes().first() == Some(&0x6a);
    for i in s.instructions() {
        match i {
            Err(_) => {
                out.push("[error]".into());
                break;
            }
            Ok(Instruction::PushBytes(p)) => {
                let v = p.as_bytes();
                if v.len() <= 4 {
                    out.push(script_num(v).to_string());
                    continue;
                }
                let mut suffix = "";
                let mut body = v;
                if sighash_decode && !unspendable && valid_der(v) {
                    let name = match v[v.len() - 1] {
                        0x01 => Some("[ALL]"),
                        0x81 => Some("[ALL|ANYONECANPAY]"),
                        0x02 => Some("[NONE]"),
                        0x82 => Some("[NONE|ANYONECANPAY]"),
                        0x03 => Some("[SINGLE]"),
                        0x83 => Some("[SINGLE|ANYONECANPAY]"),
                        _ => None,
                    };
                    if let Some(n) = name {
                        suffix = n;
                        body = &v[..v.len() - 1];
                    }
                }
                out.push(format!("{}{suffix}", body.to_lower_hex_string()));
            }
            Ok(Instruction::Op(op)) => out.push(op_name(op.to_u8())),
        }
    }
    out.join(" ")
}

/// Core's `ScriptToUniv` for an output script: `asm`, `desc`, `hex`, `address` (when there
/// is one), `type`.
pub fn script_pubkey_json(s: &Script, network: Network) -> Value {
    let mut m = Map::new();
    m.insert("asm".into(), json!(script_asm(s, false)));
    m.insert("desc".into(), json!(script_desc(s, network)));
    m.insert("hex".into(), json!(s.as_bytes().to_lower_hex_string()));
    if let Some(a) = script_address(s, network) {
        m.insert("address".into(), json!(a));
    }
    m.insert("type".into(), json!(script_type(s)));
    Value::Object(m)
}

/// Whether `op` is a tapscript `OP_SUCCESSx` (BIP342).
fn is_op_success(op: u8) -> bool {
    matches!(op, 80 | 98 | 126..=129 | 131..=134 | 137..=138 | 141..=142 | 149..=153 | 187..=254)
}

/// Core's `decodescript`: the script as `ScriptToUniv` writes it (no `hex`), then `p2sh` for
/// a script that P2SH can wrap and, where segwit can wrap it, `segwit`: the P2WPKH (for a
/// key or key hash) or P2WSH script with its own fields and `p2sh-segwit`.
pub fn decode_script_json(s: &Script, network: Network) -> Value {
    use bitcoin::hashes::{hash160, Hash};
    let mut v = script_pubkey_json(s, network);
    if let Some(o) = v.as_object_mut() {
        o.remove("hex");
    }
    let kind = script_type(s);
    let b = s.as_bytes();
    let ops: Option<Vec<Instruction>> = s.instructions().collect::<Result<_, _>>().ok();
    let can_wrap = matches!(
        kind,
        "multisig"
            | "nonstandard"
            | "pubkey"
            | "pubkeyhash"
            | "witness_v0_keyhash"
            | "witness_v0_scripthash"
    ) && b.len() <= 10_000
        && b.first() != Some(&0x6a)
        && ops.is_some_and(|ops| {
            ops.iter().all(|i| match i {
                Instruction::Op(op) => op.to_u8() != 0xba && !is_op_success(op.to_u8()),
                Instruction::PushBytes(_) => true,
            })
        });
    if !can_wrap {
        return v;
    }
    let p2sh = |script: &Script| {
        Address::p2sh(script, network)
            .map(|a| a.to_string())
            .unwrap_or_default()
    };
    v["p2sh"] = json!(p2sh(s));
    let keys_compressed = || match kind {
        "pubkey" => pay_to_pubkey(b).is_some_and(|k| k.len() == 33),
        _ => multisig(b).is_some_and(|(_, keys)| keys.iter().all(|k| k.len() == 33)),
    };
    let segwit = match kind {
        "pubkey" if keys_compressed() => {
            let key = pay_to_pubkey(b).expect("a pay-to-pubkey script");
            let h = hash160::Hash::hash(key);
            Some(bitcoin::ScriptBuf::new_p2wpkh(
                &bitcoin::WPubkeyHash::from_byte_array(h.to_byte_array()),
            ))
        }
        "pubkeyhash" => {
            let h: [u8; 20] = b[3..23].try_into().expect("a P2PKH script");
            Some(bitcoin::ScriptBuf::new_p2wpkh(
                &bitcoin::WPubkeyHash::from_byte_array(h),
            ))
        }
        "multisig" if keys_compressed() => Some(bitcoin::ScriptBuf::new_p2wsh(&s.wscript_hash())),
        "nonstandard" => Some(bitcoin::ScriptBuf::new_p2wsh(&s.wscript_hash())),
        _ => None,
    };
    if let Some(w) = segwit {
        let mut sr = script_pubkey_json(&w, network);
        // Core infers the P2WSH descriptor knowing the script: `wsh(multi(…))` for a
        // multisig, `wsh(0)` for `OP_0` (a sane miniscript: it can never be satisfied);
        // other scripts without keys are no sane miniscript, so the address stays.
        if b == [0x00] {
            let sum = descriptor_checksum("wsh(0)").unwrap_or_default();
            sr["desc"] = json!(format!("wsh(0)#{sum}"));
        }
        if kind == "multisig" {
            if let Some((k, keys)) = multisig(b) {
                let keys: Vec<String> = keys.iter().map(|k| k.to_lower_hex_string()).collect();
                let body = format!("wsh(multi({k},{}))", keys.join(","));
                let sum = descriptor_checksum(&body).unwrap_or_default();
                sr["desc"] = json!(format!("{body}#{sum}"));
            }
        }
        sr["p2sh-segwit"] = json!(p2sh(&w));
        v["segwit"] = sr;
    }
    v
}

/// Core's `TxToUniv`: txid, hash, version, size, vsize, weight, locktime, vin, vout, and the
/// raw `hex` when `include_hex`.
pub fn tx_json(tx: &Transaction, network: Network, include_hex: bool) -> Value {
    let coinbase = tx.is_coinbase();
    let vin: Vec<Value> = tx
        .input
        .iter()
        .map(|i| {
            let mut m = Map::new();
            if coinbase {
                m.insert("coinbase".into(), json!(i.script_sig.as_bytes().to_lower_hex_string()));
            } else {
                m.insert("txid".into(), json!(i.previous_output.txid.to_string()));
                m.insert("vout".into(), json!(i.previous_output.vout));
                m.insert(
                    "scriptSig".into(),
                    json!({"asm": script_asm(&i.script_sig, true), "hex": i.script_sig.as_bytes().to_lower_hex_string()}),
                );
            }
            if !i.witness.is_empty() {
                m.insert(
                    "txinwitness".into(),
                    json!(i.witness.iter().map(|b| b.to_lower_hex_string()).collect::<Vec<_>>()),
                );
            }
            m.insert("sequence".into(), json!(i.sequence.0));
            Value::Object(m)
        })
        .collect();
    let vout: Vec<Value> = tx
        .output
        .iter()
        .enumerate()
        .map(|(n, o)| {
            json!({
                "value": o.value.to_btc(),
                "n": n,
                "scriptPubKey": script_pubkey_json(&o.script_pubkey, network),
            })
        })
        .collect();
    let mut v = json!({
        "txid": tx.compute_txid().to_string(),
        "hash": tx.compute_wtxid().to_string(),
        "version": tx.version.0,
        "size": tx.total_size(),
        "vsize": tx.vsize(),
        "weight": tx.weight().to_wu(),
        "locktime": tx.lock_time.to_consensus_u32(),
        "vin": vin,
        "vout": vout,
    });
    if include_hex {
        v["hex"] = json!(serialize_hex(tx));
    }
    v
}

/// Core's `validateaddress` (`rpc/output_script.cpp`): for a valid address `isvalid`,
/// `address`, `scriptPubKey` and `DescribeAddress`'s `isscript`/`iswitness`/
/// `witness_version`/`witness_program`; otherwise `isvalid: false` with Core's `error`
/// (`DecodeDestination`'s messages) and `error_locations` (the characters to check in a
/// string with this network's Bech32 prefix, see [`crate::bech32_errors`]).
pub fn validate_address(s: &str, network: Network) -> Value {
    let hrp = match network {
        Network::Bitcoin => "bc",
        Network::Regtest => "bcrt",
        _ => "tb",
    };
    let parsed = s
        .parse::<Address<bitcoin::address::NetworkUnchecked>>()
        .ok()
        .and_then(|a| a.require_network(network).ok());
    let Some(address) = parsed else {
        let (error, at) = address_error(s, hrp, network);
        return json!({"isvalid": false, "error_locations": at, "error": error});
    };
    let spk = address.script_pubkey();
    let mut m = Map::new();
    m.insert("isvalid".into(), json!(true));
    m.insert("address".into(), json!(address.to_string()));
    m.insert(
        "scriptPubKey".into(),
        json!(spk.as_bytes().to_lower_hex_string()),
    );
    if spk.is_p2pkh() {
        m.insert("isscript".into(), json!(false));
        m.insert("iswitness".into(), json!(false));
    } else if spk.is_p2sh() {
        m.insert("isscript".into(), json!(true));
        m.insert("iswitness".into(), json!(false));
    } else if let Some((version, program)) = witness_program(spk.as_bytes()) {
        // Core's `DescribeAddress`: key hashes are not scripts; unknown versions say neither.
        match (version, program.len()) {
            (0, 20) => {
                m.insert("isscript".into(), json!(false));
            }
            (0, 32) | (1, 32) => {
                m.insert("isscript".into(), json!(true));
            }
            (1, 2) if program == [0x4e, 0x73] => {
                m.insert("isscript".into(), json!(true));
            }
            _ => {}
        }
        m.insert("iswitness".into(), json!(true));
        m.insert("witness_version".into(), json!(version));
        m.insert(
            "witness_program".into(),
            json!(program.to_lower_hex_string()),
        );
    }
    Value::Object(m)
}

/// `DecodeDestination`'s error message for a string that is no address of `network`, and the
/// positions of the characters at fault when it locates them.
fn address_error(s: &str, hrp: &str, network: Network) -> (String, Vec<usize>) {
    let message = address_message(s, hrp, network);
    if message.is_empty() {
        // Core's Bech32 decoding failed: the reason and the places come from locating the
        // errors.
        return crate::bech32_errors::locate_errors(s);
    }
    (message, Vec::new())
}

/// [`address_error`]'s message, empty where the string is to be located as a Bech32 one.
fn address_message(s: &str, hrp: &str, network: Network) -> String {
    // Bytes, not a str slice: the text is untrusted and may split a UTF-8 character there.
    let is_bech32 = s
        .as_bytes()
        .get(..hrp.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(hrp.as_bytes()));
    if !is_bech32 {
        let (pubkey, script) = match network {
            Network::Bitcoin => (0x00, 0x05),
            _ => (0x6f, 0xc4),
        };
        return match bitcoin::base58::decode_check(s) {
            Ok(d) if d.first().is_some_and(|p| *p == pubkey || *p == script) => {
                "Invalid length for Base58 address (P2PKH or P2SH)".into()
            }
            Ok(_) => "Invalid or unsupported Base58-encoded address.".into(),
            Err(_) if bitcoin::base58::decode(s).is_ok() => {
                "Invalid checksum or length of Base58 address (P2PKH or P2SH)".into()
            }
            Err(_) => "Invalid or unsupported Segwit (Bech32) or Base58 encoding.".into(),
        };
    }
    use bitcoin::bech32::primitives::decode::CheckedHrpstring;
    use bitcoin::bech32::{Bech32, Bech32m};
    // What Core's Bech32 decoding refuses (length, characters, separator, checksum).
    if !crate::bech32_errors::locate_errors(s).0.is_empty() {
        return String::new();
    }
    let checked = CheckedHrpstring::new::<Bech32>(s)
        .map(|c| (c, false))
        .or_else(|_| CheckedHrpstring::new::<Bech32m>(s).map(|c| (c, true)));
    let Ok((c, bech32m)) = checked else {
        return String::new();
    };
    if !c.hrp().as_str().eq_ignore_ascii_case(hrp) {
        return format!(
            "Invalid or unsupported prefix for Segwit (Bech32) address (expected {hrp}, got {}).",
            c.hrp()
        );
    }
    let program: Vec<u8> = c
        .fe32_iter::<std::vec::IntoIter<u8>>()
        .map(|f| f.to_u8())
        .collect();
    let version = program.first().copied();
    let Some(version) = version else {
        return "Empty Bech32 data section".into();
    };
    if version == 0 && bech32m {
        return "Version 0 witness address must use Bech32 checksum".into();
    }
    if version != 0 && !bech32m {
        return "Version 1+ witness address must use Bech32m checksum".into();
    }
    // The program: the 5-bit groups after the version, as bytes.
    let mut bytes = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for v in &program[1..] {
        acc = (acc << 5) | u32::from(*v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            bytes.push((acc >> bits) as u8);
        }
    }
    if bits >= 5 || (acc & ((1 << bits) - 1)) != 0 {
        return "Invalid padding in Bech32 data section".into();
    }
    let n = bytes.len();
    let unit = if n == 1 { "byte" } else { "bytes" };
    if version > 16 {
        "Invalid Bech32 address witness version".into()
    } else if version == 0 {
        format!("Invalid Bech32 v0 address program size ({n} {unit}), per BIP141")
    } else {
        format!("Invalid Bech32 address program size ({n} {unit})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hex::FromHex;
    use bitcoin::ScriptBuf;

    fn script(h: &str) -> ScriptBuf {
        ScriptBuf::from_bytes(Vec::<u8>::from_hex(h).unwrap())
    }

    /// Checksums from BIP380's test vectors and Core's answers.
    #[test]
    fn descriptor_checksums_match_bip380() {
        assert_eq!(descriptor_checksum("raw(deadbeef)").unwrap(), "89f8spxm");
        assert_eq!(
            descriptor_checksum("addr(mkmZxiEcEd8ZqjQWVZuC6so5dFMKEFpN2j)").unwrap(),
            "02wpgw69"
        );
    }

    #[test]
    fn asm_types_and_descriptors_as_core_prints_them() {
        // P2PKH.
        let s = script("76a91400112233445566778899aabbccddeeff0011223388ac");
        assert_eq!(
            script_asm(&s, false),
            "OP_DUP OP_HASH160 00112233445566778899aabbccddeeff00112233 OP_EQUALVERIFY OP_CHECKSIG"
        );
        assert_eq!(script_type(&s), "pubkeyhash");
        assert!(script_desc(&s, Network::Regtest).starts_with("addr(m"));
        // OP_RETURN with a small push reads as a number; OP_1 as 1; OP_0 as 0.
        let s = script("6a0401020304");
        assert_eq!(script_asm(&s, false), "OP_RETURN 67305985");
        assert_eq!(script_type(&s), "nulldata");
        assert!(script_desc(&s, Network::Regtest).starts_with("raw(6a0401020304)#"));
        assert_eq!(script_asm(&script("0051"), false), "0 1");
        assert_eq!(script_asm(&script("4f"), false), "-1");
        // P2WPKH and P2TR (x-only key on the curve: rawtr).
        let s = script("001400112233445566778899aabbccddeeff00112233");
        assert_eq!(script_type(&s), "witness_v0_keyhash");
        assert!(script_desc(&s, Network::Regtest).starts_with("addr(bcrt1q"));
        let g = "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";
        let s = script(&format!("5120{g}"));
        assert_eq!(script_type(&s), "witness_v1_taproot");
        assert!(script_desc(&s, Network::Regtest).starts_with(&format!("rawtr({g})#")));
        // Pay-to-pubkey: pk(), no address.
        let s = script(&format!("2102{g}ac"));
        assert_eq!(script_type(&s), "pubkey");
        assert!(script_desc(&s, Network::Regtest).starts_with(&format!("pk(02{g})#")));
        assert_eq!(script_address(&s, Network::Regtest), None);
        // Pay-to-anchor.
        assert_eq!(script_type(&script("51024e73")), "anchor");
        // A truncated push.
        assert_eq!(script_asm(&script("4c05ab"), false), "[error]");
        // A DER signature with SIGHASH_ALL in a scriptSig.
        let sig = format!("30440220{g}0220{g}01");
        let s = script(&format!("47{sig}"));
        let sig = sig.as_str();
        assert_eq!(
            script_asm(&s, true),
            format!("{}[ALL]", &sig[..sig.len() - 2])
        );
        assert_eq!(script_asm(&s, false), sig);
    }

    #[test]
    fn validate_address_gives_cores_reasons() {
        use bitcoin::secp256k1::{Secp256k1, SecretKey};
        let secp = Secp256k1::new();
        let pk = bitcoin::CompressedPublicKey(
            SecretKey::from_slice(&[5u8; 32]).unwrap().public_key(&secp),
        );
        let err = |s: &str| {
            let v = validate_address(s, Network::Regtest);
            assert_eq!(v["isvalid"], json!(false), "{s}: {v}");
            v["error"].as_str().unwrap().to_string()
        };
        // A mainnet P2PKH: good Base58Check, another network's prefix.
        let main = Address::p2pkh(pk, Network::Bitcoin).to_string();
        assert_eq!(err(&main), "Invalid or unsupported Base58-encoded address.");
        // A regtest P2PKH with a character changed: the checksum fails.
        let mut typo = Address::p2pkh(pk, Network::Regtest).to_string();
        let c = if typo.ends_with('2') { "3" } else { "2" };
        typo.replace_range(typo.len() - 1.., c);
        assert_eq!(
            err(&typo),
            "Invalid checksum or length of Base58 address (P2PKH or P2SH)"
        );
        assert_eq!(
            err("0OIl"),
            "Invalid or unsupported Segwit (Bech32) or Base58 encoding."
        );
        // Untrusted text: a multi-byte character across the prefix's end, empty, long.
        for junk in ["bcr\u{e9}1q", "", "\u{1f600}", &"b".repeat(10_000)] {
            assert!(!err(junk).is_empty());
        }
        // Bech32: a typo, and version 0 under Bech32m (BIP350's test vector form).
        let wpkh = Address::p2wpkh(&pk, Network::Regtest).to_string();
        let mut bad = wpkh.clone();
        let c = if bad.ends_with('q') { "p" } else { "q" };
        bad.replace_range(bad.len() - 1.., c);
        assert_eq!(err(&bad), "Invalid Bech32 checksum");
        // ... located, as Core does.
        assert_eq!(
            validate_address(&bad, Network::Regtest)["error_locations"],
            json!([bad.len() - 1])
        );
        let program = Address::p2wpkh(&pk, Network::Regtest)
            .script_pubkey()
            .as_bytes()[2..]
            .to_vec();
        let v0_bech32m = {
            use bitcoin::bech32::primitives::iter::{ByteIterExt, Fe32IterExt};
            let hrp = bitcoin::bech32::Hrp::parse("bcrt").unwrap();
            program
                .iter()
                .copied()
                .bytes_to_fes()
                .with_checksum::<bitcoin::bech32::Bech32m>(&hrp)
                .with_witness_version(bitcoin::bech32::Fe32::Q)
                .chars()
                .collect::<String>()
        };
        assert_eq!(
            err(&v0_bech32m),
            "Version 0 witness address must use Bech32 checksum"
        );
        let ok = validate_address(&wpkh, Network::Regtest);
        assert_eq!(ok["isvalid"], json!(true));
        assert_eq!(ok["witness_version"], json!(0));
        assert_eq!(ok["isscript"], json!(false));
    }
}
