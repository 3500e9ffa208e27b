//! JSON text as bitcoind writes it: amounts in BTC with all eight decimals (`50.00000000`,
//! Core's `ValueFromAmount`), so that `bitcoin-cli` prints what scripts compare against.
//!
//! Answers are built as [`serde_json::Value`]s, where an amount is just a number; here a
//! number is written as an amount when it is a float under one of the keys Core writes
//! amounts under (or the whole result of a method answering one amount, `getbalance`).
//! Integers (satoshi counts such as `getblocktemplate`'s `fee`) stay as they are.

use serde_json::Value;

/// Object keys whose float values are amounts in Core's answers.
const AMOUNT_KEYS: &[&str] = &[
    "amount",
    "value",
    "fee",
    "base",
    "modified",
    "ancestor",
    "descendant",
    "chunk",
    "total_amount",
    "total_fee",
    "feerate",
    "effective-feerate",
    "mempoolminfee",
    "minrelaytxfee",
    "incrementalrelayfee",
    "relayfee",
    "incrementalfee",
    "balance",
    "unconfirmed_balance",
    "immature_balance",
    "trusted",
    "untrusted_pending",
    "immature",
    "used",
];

/// Methods whose whole result is one amount.
const AMOUNT_RESULTS: &[&str] = &[
    "getbalance",
    "getreceivedbyaddress",
    "getunconfirmedbalance",
];

/// A float number as Core's `ValueFromAmount` writes it (BTC, eight decimals).
fn amount_text(x: f64) -> String {
    let sats = (x * 1e8).round() as i64;
    let sign = if sats < 0 { "-" } else { "" };
    let a = sats.unsigned_abs();
    format!("{sign}{}.{:08}", a / 100_000_000, a % 100_000_000)
}

/// Writes object `m`, each value as an amount when `amount_key` says so of its key.
fn write_object(
    m: &serde_json::Map<String, Value>,
    amount_key: impl Fn(&str) -> bool,
    out: &mut String,
) {
    out.push('{');
    for (i, (k, x)) in m.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::String(k.clone()).to_string());
        out.push(':');
        write(x, amount_key(k), out);
    }
    out.push('}');
}

fn write(v: &Value, amount: bool, out: &mut String) {
    match v {
        Value::Object(m) => write_object(m, |k| AMOUNT_KEYS.contains(&k), out),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(x, false, out);
            }
            out.push(']');
        }
        Value::Number(n) if amount && n.is_f64() => {
            out.push_str(&amount_text(n.as_f64().unwrap_or(0.0)));
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The JSON-RPC reply `reply` (`result`, `error`, `id`) of `method` as bitcoind writes it.
pub fn reply_text(reply: &Value, method: Option<&str>) -> String {
    let whole = method.is_some_and(|m| AMOUNT_RESULTS.contains(&m));
    let mut out = String::new();
    match reply {
        Value::Object(m) => write_object(m, |k| whole && k == "result", &mut out),
        other => write(other, false, &mut out),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn amounts_are_written_with_eight_decimals_and_nothing_else_changes() {
        assert_eq!(amount_text(50.0), "50.00000000");
        assert_eq!(amount_text(0.0), "0.00000000");
        assert_eq!(amount_text(0.000001), "0.00000100");
        assert_eq!(amount_text(-1.5), "-1.50000000");
        assert_eq!(amount_text(20999999.9769), "20999999.97690000");
        let reply = json!({"result": 50.0, "error": null, "id": 1});
        assert_eq!(
            reply_text(&reply, Some("getbalance")),
            r#"{"error":null,"id":1,"result":50.00000000}"#
        );
        assert_eq!(
            reply_text(&reply, Some("getdifficulty")),
            r#"{"error":null,"id":1,"result":50.0}"#
        );
        let nested = json!({"result": {
            "vout": [{"value": 1.25, "n": 0}],
            "fees": {"base": 0.00001, "chunk": 0.00001},
            "transactions": [{"fee": 1000}],
            "difficulty": 4.656542373906925e-10,
            "label": "a \"quoted\" \u{1} label",
        }, "error": null, "id": "x"});
        let text = reply_text(&nested, Some("getblock"));
        assert!(text.contains(r#""value":1.25000000"#), "{text}");
        assert!(text.contains(r#""base":0.00001000"#), "{text}");
        assert!(text.contains(r#""fee":1000"#), "{text}");
        assert!(
            text.contains(r#""difficulty":4.656542373906925e-10"#),
            "{text}"
        );
        // The same value as serde reads it back.
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["result"]["label"], nested["result"]["label"]);
        assert_eq!(back["result"]["vout"][0]["value"].as_f64(), Some(1.25));
    }
}
