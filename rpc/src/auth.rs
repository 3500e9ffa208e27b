//! HTTP basic authentication as bitcoind checks it (`Authorization: Basic base64(user:pass)`),
//! compared in constant time.

/// Whether the `Authorization` header value `header` carries one of the `accepted`
/// `user:password` strings (a cookie file's contents have that form too).
pub fn basic_auth_ok(header: Option<&str>, accepted: &[&str]) -> bool {
    let Some(b64) = header.and_then(|v| v.strip_prefix("Basic ")) else {
        return false;
    };
    let Some(given) = decode_base64(b64.trim()) else {
        return false;
    };
    accepted
        .iter()
        .fold(false, |ok, a| ok | constant_time_eq(&given, a.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn decode_base64(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    if s.len() > 64 * 1024 {
        return None;
    }
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_basic_credentials() {
        // base64("user:pass") = dXNlcjpwYXNz
        assert!(basic_auth_ok(
            Some("Basic dXNlcjpwYXNz"),
            &["x:y", "user:pass"]
        ));
        assert!(!basic_auth_ok(Some("Basic dXNlcjpwYXNz"), &["user:pas"]));
        assert!(!basic_auth_ok(Some("Bearer dXNlcjpwYXNz"), &["user:pass"]));
        assert!(!basic_auth_ok(None, &["user:pass"]));
        assert!(!basic_auth_ok(Some("Basic dXNlcjpwYXNz="), &["user:pass"]));
        // base64("a:b") = YTpi, base64("ab:c") = YWI6Yw==
        assert!(basic_auth_ok(Some("Basic YTpi"), &["a:b"]));
        assert!(basic_auth_ok(Some("Basic YWI6Yw=="), &["ab:c"]));
        assert!(!basic_auth_ok(Some("Basic YW=I6Yw="), &["ab:c"]));
    }
}
