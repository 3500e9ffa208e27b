//! Bitcoin Core's default standardness policy for transactions entering the mempool, as
//! Core's regtest applies it by default (`-acceptnonstdtxn=0`).
//!
//! This follows **Bitcoin Core v31** (`src/policy/policy.cpp`: `IsStandard`, `IsStandardTx`,
//! `GetDustThreshold`, `AreInputsStandard`; `src/script/solver.cpp`: `Solver`;
//! `src/validation.cpp`: `MemPoolAccept::PreChecks`), with its default options: transaction
//! versions 1 to 3 (3 is TRUC), `-datacarrier=1` with `-datacarriersize=100000` (any number
//! of `OP_RETURN` outputs, their scripts 100,000 bytes in all, as since v30),
//! `-permitbaremultisig=1` and `-dustrelayfee=0.00003` (3,000 sat/kvB). Checked against a
//! bitcoind built from Core's sources (`tests/core_diff.rs`).
//!
//! One difference is kept: Core 29 lets a transaction carry one dust output when it pays no
//! fee (ephemeral dust, spent by a child in the same package); packages are not relayed
//! here, so every dust output is `dust`.
//!
//! Blocks are never subject to this policy: only mempool admission (`sendrawtransaction`,
//! `testmempoolaccept`, Electrum's `blockchain.transaction.broadcast`, and the re-admission
//! of transactions from disconnected blocks).
//!
//! Not implemented: `IsWitnessStandard` (`bad-witness-nonstandard`), the standard sigop limit
//! (`bad-txns-too-many-sigops`) and the policy-only script verification flags
//! (`non-mandatory-script-verify-flag`); consensus script rules are still enforced.

use bitcoin::opcodes::all::{
    OP_CHECKMULTISIG, OP_PUSHBYTES_75, OP_PUSHDATA1, OP_PUSHDATA2, OP_PUSHDATA4, OP_PUSHNUM_1,
    OP_PUSHNUM_16, OP_PUSHNUM_NEG1, OP_RETURN,
};
use bitcoin::{Amount, Script, Transaction, TxOut, VarInt};

/// Highest standard transaction version (`TX_MAX_STANDARD_VERSION`, TRUC's 3 since v28).
pub const TX_MAX_STANDARD_VERSION: i32 = 3;
/// Heaviest standard transaction (`MAX_STANDARD_TX_WEIGHT`).
pub const MAX_STANDARD_TX_WEIGHT: u64 = 400_000;
/// Smallest standard serialization without witness (`MIN_STANDARD_TX_NONWITNESS_SIZE`,
/// against CVE-2017-12842's 64-byte transactions).
pub const MIN_STANDARD_TX_NONWITNESS_SIZE: usize = 65;
/// Largest standard scriptSig (`MAX_STANDARD_SCRIPTSIG_SIZE`).
pub const MAX_STANDARD_SCRIPTSIG_SIZE: usize = 1_650;
/// Most bytes of null-data scripts (`OP_RETURN` and pushes) a standard transaction carries
/// in all: `-datacarriersize`'s default, `MAX_OP_RETURN_RELAY` (a standard weight's worth).
pub const MAX_OP_RETURN_RELAY: usize = 100_000;
/// Most signature operations a standard P2SH redeem script may have (`MAX_P2SH_SIGOPS`).
pub const MAX_P2SH_SIGOPS: usize = 15;
/// Default dust relay fee rate, sat/kvB (`DUST_RELAY_TX_FEE`).
pub const DUST_RELAY_TX_FEE: u64 = 3_000;
/// Scripts above this size are unspendable (`MAX_SCRIPT_SIZE`).
const MAX_SCRIPT_SIZE: usize = 10_000;
/// Largest stack element (`MAX_SCRIPT_ELEMENT_SIZE`).
const MAX_SCRIPT_ELEMENT_SIZE: usize = 520;
/// Most stack elements (`MAX_STACK_SIZE`).
const MAX_STACK_SIZE: usize = 1_000;
/// Most keys in a `CHECKMULTISIG` (`MAX_PUBKEYS_PER_MULTISIG`).
const MAX_PUBKEYS_PER_MULTISIG: i64 = 20;

/// The mempool's policy options (the part of Core's `MemPoolOptions` that matters here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Apply [`is_standard_tx`] and [`are_inputs_standard`]; `false` is Core's
    /// `-acceptnonstdtxn=1`. Default `true`, as Core's regtest.
    pub require_standard: bool,
    /// Bare multisig outputs (up to 3 keys) are standard (`-permitbaremultisig`, default 1).
    pub permit_bare_multisig: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            require_standard: true,
            permit_bare_multisig: true,
        }
    }
}

/// An output script's type as Core's `Solver` classifies it (`TxoutType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxoutType {
    /// Anything else.
    NonStandard,
    /// `<pubkey> OP_CHECKSIG`.
    PubKey,
    /// `OP_DUP OP_HASH160 <20> OP_EQUALVERIFY OP_CHECKSIG`.
    PubKeyHash,
    /// `OP_HASH160 <20> OP_EQUAL`.
    ScriptHash,
    /// `m <pubkey>... n OP_CHECKMULTISIG` with `1 <= m <= n <= 20`.
    Multisig {
        /// Signatures required.
        m: u8,
        /// Keys.
        n: u8,
    },
    /// `OP_RETURN` followed only by pushes, whatever their size.
    NullData,
    /// Witness v0, 20-byte program (P2WPKH).
    WitnessV0KeyHash,
    /// Witness v0, 32-byte program (P2WSH).
    WitnessV0ScriptHash,
    /// Witness v1, 32-byte program (P2TR).
    WitnessV1Taproot,
    /// Pay-to-anchor, `OP_1 <0x4e73>` (standard since v28).
    Anchor,
    /// Any other witness program of version 1 to 16.
    WitnessUnknown,
}

/// One script operation as Core's `GetOp` reads it: the opcode and the pushed data.
/// `None` at a push running past the end.
fn get_op<'a>(script: &'a [u8], pos: &mut usize) -> Option<(u8, &'a [u8])> {
    let op = *script.get(*pos)?;
    *pos += 1;
    let len = if op <= OP_PUSHBYTES_75.to_u8() {
        op as usize
    } else if op == OP_PUSHDATA1.to_u8() {
        let n = *script.get(*pos)? as usize;
        *pos += 1;
        n
    } else if op == OP_PUSHDATA2.to_u8() {
        let b = script.get(*pos..*pos + 2)?;
        *pos += 2;
        u16::from_le_bytes([b[0], b[1]]) as usize
    } else if op == OP_PUSHDATA4.to_u8() {
        let b = script.get(*pos..*pos + 4)?;
        *pos += 4;
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
    } else {
        return Some((op, &[]));
    };
    let data = script.get(*pos..pos.checked_add(len)?)?;
    *pos += len;
    Some((op, data))
}

/// Core's `CScript::IsPushOnly`: every operation parses and is at most `OP_16` (which
/// includes `OP_RESERVED`).
pub fn is_push_only(script: &[u8]) -> bool {
    let mut pos = 0;
    while pos < script.len() {
        match get_op(script, &mut pos) {
            Some((op, _)) if op <= OP_PUSHNUM_16.to_u8() => {}
            _ => return false,
        }
    }
    true
}

/// Core's `CPubKey::ValidSize`: the length the header byte announces.
fn valid_pubkey_size(data: &[u8]) -> bool {
    match data.first() {
        Some(2 | 3) => data.len() == 33,
        Some(4 | 6 | 7) => data.len() == 65,
        _ => false,
    }
}

/// Core's `CheckMinimalPush`.
fn minimal_push(data: &[u8], op: u8) -> bool {
    match data.len() {
        0 => op == 0,
        1 if (1..=16).contains(&data[0]) || data[0] == 0x81 => false,
        n if n <= 75 => op as usize == n,
        n if n <= 255 => op == OP_PUSHDATA1.to_u8(),
        n if n <= 65_535 => op == OP_PUSHDATA2.to_u8(),
        _ => true,
    }
}

/// Core's `GetScriptNumber` in `solver.cpp`: `OP_1`..`OP_16`, or a minimal push of a minimal
/// script number, in `min..=max`.
fn script_number(op: u8, data: &[u8], min: i64, max: i64) -> Option<i64> {
    let n = if (OP_PUSHNUM_1.to_u8()..=OP_PUSHNUM_16.to_u8()).contains(&op) {
        i64::from(op - OP_PUSHNUM_1.to_u8() + 1)
    } else if op <= OP_PUSHDATA4.to_u8() {
        if !minimal_push(data, op) || data.len() > 4 {
            return None;
        }
        // Minimal encoding: no superfluous top byte (CScriptNum with fRequireMinimal).
        if let Some(&last) = data.last() {
            if last & 0x7f == 0 && (data.len() == 1 || data[data.len() - 2] & 0x80 == 0) {
                return None;
            }
        }
        let mut v: i64 = 0;
        for (i, b) in data.iter().enumerate() {
            v |= i64::from(*b) << (8 * i);
        }
        if let Some(&last) = data.last() {
            if last & 0x80 != 0 {
                v = -(v & !(0x80 << (8 * (data.len() - 1))));
            }
        }
        v
    } else {
        return None;
    };
    (min..=max).contains(&n).then_some(n)
}

/// Core's `MatchMultisig`: `(m, n)`.
fn match_multisig(script: &[u8]) -> Option<(u8, u8)> {
    if script.last() != Some(&OP_CHECKMULTISIG.to_u8()) {
        return None;
    }
    let mut pos = 0;
    let (op, data) = get_op(script, &mut pos)?;
    let m = script_number(op, data, 1, MAX_PUBKEYS_PER_MULTISIG)?;
    let mut keys = 0i64;
    let (op, data) = loop {
        match get_op(script, &mut pos) {
            Some((_, data)) if valid_pubkey_size(data) => keys += 1,
            Some(other) => break other,
            None => return None,
        }
    };
    let n = script_number(op, data, m, MAX_PUBKEYS_PER_MULTISIG)?;
    (keys == n && pos + 1 == script.len()).then_some((m as u8, n as u8))
}

/// Core's `Solver`: the type of an output script.
pub fn solver(script: &Script) -> TxoutType {
    let b = script.as_bytes();
    if script.is_p2sh() {
        return TxoutType::ScriptHash;
    }
    if let Some(version) = script.witness_version() {
        let program = &b[2..];
        return match (version.to_num(), program.len()) {
            (0, 20) => TxoutType::WitnessV0KeyHash,
            (0, 32) => TxoutType::WitnessV0ScriptHash,
            (0, _) => TxoutType::NonStandard,
            (1, 32) => TxoutType::WitnessV1Taproot,
            (1, 2) if program == [0x4e, 0x73] => TxoutType::Anchor,
            _ => TxoutType::WitnessUnknown,
        };
    }
    if b.first() == Some(&OP_RETURN.to_u8()) && is_push_only(&b[1..]) {
        return TxoutType::NullData;
    }
    let p2pk = |len: usize| {
        b.len() == len + 2
            && b[0] as usize == len
            && b[len + 1] == 0xac
            && valid_pubkey_size(&b[1..=len])
    };
    if p2pk(65) || p2pk(33) {
        return TxoutType::PubKey;
    }
    if script.is_p2pkh() {
        return TxoutType::PubKeyHash;
    }
    if let Some((m, n)) = match_multisig(b) {
        return TxoutType::Multisig { m, n };
    }
    TxoutType::NonStandard
}

/// Core's `IsStandard` for one output script: its type, or `None` when non-standard
/// (multisig beyond 3 keys, anything the solver does not recognise). Unknown witness
/// programs *are* standard outputs; null data of any size is (its budget is the
/// transaction's, [`MAX_OP_RETURN_RELAY`]).
pub fn standard_type(script: &Script) -> Option<TxoutType> {
    match solver(script) {
        TxoutType::NonStandard => None,
        TxoutType::Multisig { m, n } if !(1..=3).contains(&n) || m < 1 || m > n => None,
        t => Some(t),
    }
}

/// Core's `GetDustThreshold` at the default dust relay fee (3,000 sat/kvB): the output plus
/// an input spending it (148 bytes, or 67 vbytes for a witness program), at 3 sat/vB. Zero
/// for unspendable scripts (`OP_RETURN`, over 10,000 bytes).
pub fn dust_threshold(txout: &TxOut) -> Amount {
    let script = &txout.script_pubkey;
    if script.is_op_return() || script.len() > MAX_SCRIPT_SIZE {
        return Amount::ZERO;
    }
    let output = 8 + VarInt(script.len() as u64).size() + script.len();
    let input = if script.is_witness_program() {
        32 + 4 + 1 + 107 / 4 + 4
    } else {
        32 + 4 + 1 + 107 + 4
    };
    Amount::from_sat(((output + input) as u64 * DUST_RELAY_TX_FEE).div_ceil(1_000))
}

/// Core's `IsDust`.
pub fn is_dust(txout: &TxOut) -> bool {
    txout.value < dust_threshold(txout)
}

/// Core's `IsStandardTx` (v31): the reason string of the first rule `tx` breaks, in Core's
/// order: `version`, `tx-size`, `scriptsig-size`, `scriptsig-not-pushonly`, then per output
/// `scriptpubkey`, `datacarrier` (null data past [`MAX_OP_RETURN_RELAY`] bytes in all) and
/// `bare-multisig` (only with `permit_bare_multisig` off), then `dust`.
pub fn is_standard_tx(tx: &Transaction, opts: &Options) -> Result<(), &'static str> {
    if !(1..=TX_MAX_STANDARD_VERSION).contains(&tx.version.0) {
        return Err("version");
    }
    if tx.weight().to_wu() > MAX_STANDARD_TX_WEIGHT {
        return Err("tx-size");
    }
    for input in &tx.input {
        if input.script_sig.len() > MAX_STANDARD_SCRIPTSIG_SIZE {
            return Err("scriptsig-size");
        }
        if !is_push_only(input.script_sig.as_bytes()) {
            return Err("scriptsig-not-pushonly");
        }
    }
    let mut data_left = MAX_OP_RETURN_RELAY;
    for output in &tx.output {
        match standard_type(&output.script_pubkey) {
            None => return Err("scriptpubkey"),
            Some(TxoutType::NullData) => {
                let size = output.script_pubkey.len();
                if size > data_left {
                    return Err("datacarrier");
                }
                data_left -= size;
            }
            Some(TxoutType::Multisig { .. }) if !opts.permit_bare_multisig => {
                return Err("bare-multisig")
            }
            Some(_) => {}
        }
    }
    if tx.output.iter().any(is_dust) {
        return Err("dust");
    }
    Ok(())
}

/// Core's `tx-size-small` rule (in `PreChecks`, applied even with `-acceptnonstdtxn=1`):
/// `tx` is smaller than [`MIN_STANDARD_TX_NONWITNESS_SIZE`] without its witness.
pub fn is_too_small(tx: &Transaction) -> bool {
    tx.base_size() < MIN_STANDARD_TX_NONWITNESS_SIZE
}

/// The stack a push-only scriptSig leaves, as Core's `EvalScript` with no flags computes it
/// (`None` when evaluation fails: a push over 520 bytes, `OP_RESERVED`, too many elements).
fn push_stack(script_sig: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut stack = Vec::new();
    let mut pos = 0;
    while pos < script_sig.len() {
        let (op, data) = get_op(script_sig, &mut pos)?;
        if data.len() > MAX_SCRIPT_ELEMENT_SIZE {
            return None;
        }
        let item = match op {
            _ if op <= OP_PUSHDATA4.to_u8() => data.to_vec(),
            _ if op == OP_PUSHNUM_NEG1.to_u8() => vec![0x81],
            _ if (OP_PUSHNUM_1.to_u8()..=OP_PUSHNUM_16.to_u8()).contains(&op) => {
                vec![op - OP_PUSHNUM_1.to_u8() + 1]
            }
            _ => return None,
        };
        stack.push(item);
        if stack.len() > MAX_STACK_SIZE {
            return None;
        }
    }
    Some(stack)
}

/// Core's `AreInputsStandard` (v28): `false` when an input spends a non-standard or
/// unknown-witness-version output, or a P2SH output whose redeem script has more than
/// [`MAX_P2SH_SIGOPS`] signature operations. `prevouts` are the spent outputs in input order.
/// Core rejects such a transaction as `bad-txns-nonstandard-inputs`.
pub fn are_inputs_standard(tx: &Transaction, prevouts: &[TxOut]) -> bool {
    if tx.is_coinbase() {
        return true;
    }
    tx.input
        .iter()
        .zip(prevouts)
        .all(|(input, prev)| match solver(&prev.script_pubkey) {
            TxoutType::NonStandard | TxoutType::WitnessUnknown => false,
            TxoutType::ScriptHash => {
                let Some(stack) = push_stack(input.script_sig.as_bytes()) else {
                    return false;
                };
                let Some(redeem) = stack.last() else {
                    return false;
                };
                Script::from_bytes(redeem).count_sigops() <= MAX_P2SH_SIGOPS
            }
            _ => true,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;
    use bitcoin::hex::FromHex;
    use bitcoin::ScriptBuf;

    fn script(hex: &str) -> ScriptBuf {
        ScriptBuf::from_bytes(Vec::<u8>::from_hex(hex).unwrap())
    }

    fn multisig(m: u8, n: usize) -> ScriptBuf {
        let mut b = vec![0x50 + m];
        for _ in 0..n {
            b.push(33);
            b.push(2);
            b.extend([7u8; 32]);
        }
        b.push(0x50 + n as u8);
        b.push(0xae);
        ScriptBuf::from_bytes(b)
    }

    #[test]
    fn solver_classifies_like_core() {
        let key33 = format!("21{}ac", "02".to_string() + &"11".repeat(32));
        let key65 = format!("41{}ac", "04".to_string() + &"11".repeat(64));
        let bad_key = format!("21{}ac", "05".to_string() + &"11".repeat(32));
        let cases: Vec<(ScriptBuf, TxoutType)> = vec![
            (script(&key33), TxoutType::PubKey),
            (script(&key65), TxoutType::PubKey),
            (script(&bad_key), TxoutType::NonStandard),
            (
                script(&format!("76a914{}88ac", "00".repeat(20))),
                TxoutType::PubKeyHash,
            ),
            (
                script(&format!("a914{}87", "00".repeat(20))),
                TxoutType::ScriptHash,
            ),
            (
                script(&format!("0014{}", "00".repeat(20))),
                TxoutType::WitnessV0KeyHash,
            ),
            (
                script(&format!("0020{}", "00".repeat(32))),
                TxoutType::WitnessV0ScriptHash,
            ),
            (
                script(&format!("0018{}", "00".repeat(24))),
                TxoutType::NonStandard,
            ),
            (
                script(&format!("5120{}", "00".repeat(32))),
                TxoutType::WitnessV1Taproot,
            ),
            (script("51024e73"), TxoutType::Anchor),
            (
                script(&format!("5114{}", "00".repeat(20))),
                TxoutType::WitnessUnknown,
            ),
            (
                script(&format!("5220{}", "00".repeat(32))),
                TxoutType::WitnessUnknown,
            ),
            (
                script(&format!("6028{}", "00".repeat(40))),
                TxoutType::WitnessUnknown,
            ),
            (script("6a"), TxoutType::NullData),
            (script("6a0401020304"), TxoutType::NullData),
            (script("6a50"), TxoutType::NullData),
            (script("6a61"), TxoutType::NonStandard),
            (script("6a05"), TxoutType::NonStandard),
            (script(""), TxoutType::NonStandard),
            (script("51"), TxoutType::NonStandard),
            (multisig(1, 1), TxoutType::Multisig { m: 1, n: 1 }),
            (multisig(2, 3), TxoutType::Multisig { m: 2, n: 3 }),
            (multisig(1, 4), TxoutType::Multisig { m: 1, n: 4 }),
            (multisig(3, 2), TxoutType::NonStandard),
            // 0-of-0, and a key count that does not match the keys.
            (script("0000ae"), TxoutType::NonStandard),
            (
                ScriptBuf::from_bytes({
                    let mut b = multisig(1, 2).into_bytes();
                    let l = b.len();
                    b[l - 2] = 0x53;
                    b
                }),
                TxoutType::NonStandard,
            ),
        ];
        for (s, t) in cases {
            assert_eq!(solver(&s), t, "{s:?}");
        }
        // 17 keys: the count is pushed as a one-byte number.
        let mut b = vec![0x51];
        for _ in 0..17 {
            b.push(33);
            b.push(3);
            b.extend([9u8; 32]);
        }
        b.extend([0x01, 17, 0xae]);
        assert_eq!(
            solver(Script::from_bytes(&b)),
            TxoutType::Multisig { m: 1, n: 17 }
        );
    }

    #[test]
    fn standard_outputs_follow_core_defaults() {
        assert_eq!(
            standard_type(&multisig(3, 3)),
            Some(TxoutType::Multisig { m: 3, n: 3 })
        );
        assert_eq!(standard_type(&multisig(1, 4)), None);
        let data80 = script(&format!("6a4c50{}", "07".repeat(80)));
        assert_eq!(data80.len(), 83);
        assert_eq!(standard_type(&data80), Some(TxoutType::NullData));
        // Past 83 bytes too, since Core 30 (the transaction's budget is what limits it).
        let data81 = script(&format!("6a4c51{}", "07".repeat(81)));
        assert_eq!(standard_type(&data81), Some(TxoutType::NullData));
        assert_eq!(
            standard_type(&script(&format!("5220{}", "00".repeat(32)))),
            Some(TxoutType::WitnessUnknown)
        );
        assert_eq!(standard_type(&script("51")), None);
    }

    /// Core's `GetDustThreshold` at 3,000 sat/kvB, and rust-bitcoin's `minimal_non_dust`
    /// (the peg's dust rule) agree on every standard type.
    #[test]
    fn dust_thresholds_per_type() {
        let cases = [
            (format!("76a914{}88ac", "00".repeat(20)), 546),
            (format!("a914{}87", "00".repeat(20)), 540),
            (format!("0014{}", "00".repeat(20)), 294),
            (format!("0020{}", "00".repeat(32)), 330),
            (format!("5120{}", "00".repeat(32)), 330),
            ("51024e73".to_string(), 240),
            (format!("21{}ac", "02".to_string() + &"11".repeat(32)), 576),
            ("6a".to_string(), 0),
        ];
        for (hex, dust) in cases {
            let s = script(&hex);
            let out = TxOut {
                value: Amount::ZERO,
                script_pubkey: s.clone(),
            };
            assert_eq!(dust_threshold(&out).to_sat(), dust, "{hex}");
            assert_eq!(s.minimal_non_dust().to_sat(), dust, "{hex}");
        }
    }

    #[test]
    fn push_only_and_minimal_numbers() {
        assert!(is_push_only(&[]));
        assert!(is_push_only(&[0x00, 0x4f, 0x50, 0x51, 0x60, 0x02, 1, 2]));
        assert!(!is_push_only(&[0x61]));
        assert!(!is_push_only(&[0x02, 1]));
        assert!(is_push_only(&[0x4c, 0x01, 0x07]));
        assert_eq!(script_number(0x51, &[], 1, 20), Some(1));
        assert_eq!(script_number(0x01, &[17], 1, 20), Some(17));
        // Non-minimal: 5 pushed as data instead of OP_5.
        assert_eq!(script_number(0x01, &[5], 1, 20), None);
        assert_eq!(script_number(0x02, &[17, 0], 1, 20), None);
        assert_eq!(script_number(0x01, &[21], 1, 20), None);
        assert_eq!(script_number(0x00, &[], 1, 20), None);
    }

    #[test]
    fn p2sh_inputs_with_too_many_sigops_are_not_standard() {
        use bitcoin::{OutPoint, Sequence, TxIn, Witness};
        // 16 x OP_CHECKSIG: one more than MAX_P2SH_SIGOPS.
        let redeem = ScriptBuf::from_bytes(vec![0xac; 16]);
        let ok_redeem = ScriptBuf::from_bytes(vec![0xac; 15]);
        let tx = |redeem: &ScriptBuf| Transaction {
            version: bitcoin::transaction::Version::TWO,
            lock_time: bitcoin::absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::new(bitcoin::Txid::from_byte_array([1; 32]), 0),
                script_sig: ScriptBuf::from_bytes(
                    [&[redeem.len() as u8][..], redeem.as_bytes()].concat(),
                ),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            }],
            output: vec![],
        };
        let prev = |redeem: &ScriptBuf| TxOut {
            value: Amount::from_sat(1_000),
            script_pubkey: redeem.to_p2sh(),
        };
        assert!(!are_inputs_standard(&tx(&redeem), &[prev(&redeem)]));
        assert!(are_inputs_standard(&tx(&ok_redeem), &[prev(&ok_redeem)]));
        let unknown = TxOut {
            value: Amount::from_sat(1_000),
            script_pubkey: script(&format!("5220{}", "00".repeat(32))),
        };
        assert!(!are_inputs_standard(&tx(&ok_redeem), &[unknown]));
        let op_true = TxOut {
            value: Amount::from_sat(1_000),
            script_pubkey: script("51"),
        };
        assert!(!are_inputs_standard(&tx(&ok_redeem), &[op_true]));
    }
}
