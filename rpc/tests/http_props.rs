//! The JSON-RPC servers' HTTP layer (`rexe_rpc::http::serve_connection` and
//! `read_jsonrpc`) on arbitrary and on structured hostile input: the proptest twin of the
//! `http_rpc` fuzz target (`fuzz/fuzz_targets/http_rpc.rs`), with the properties of
//! `rexe_rpc::probe::Exchange::check`, and the front door's answers case by case.

use proptest::prelude::*;
use rexe_rpc::http::{BodyError, Refusal};
use rexe_rpc::probe::{self, Admitted, USER_PASS_B64};

fn run(input: &[u8]) -> probe::Exchange {
    thread_local! {
        static RT: tokio::runtime::Runtime = probe::runtime();
    }
    let x = RT.with(|rt| probe::exchange(rt, input));
    x.check();
    x
}

fn post(auth: Option<&str>, body: &str) -> String {
    let auth = auth
        .map(|a| format!("Authorization: Basic {a}\r\n"))
        .unwrap_or_default();
    format!(
        "POST / HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

const CALL: &str = r#"{"jsonrpc":"2.0","id":1,"method":"getblockcount","params":[]}"#;

#[test]
fn an_authorized_call_is_admitted() {
    let x = run(post(Some(USER_PASS_B64), CALL).as_bytes());
    assert_eq!(probe::statuses(&x.output), [200]);
    assert_eq!(x.admitted, [Admitted::Requests(1)]);
}

#[test]
fn without_or_with_wrong_credentials_the_body_is_never_read() {
    for auth in [None, Some("dXNlcjpwYXNy"), Some("!!"), Some("")] {
        let x = run(post(auth, CALL).as_bytes());
        assert_eq!(probe::statuses(&x.output), [401], "{auth:?}");
        assert!(x.admitted.is_empty());
        assert_eq!(x.unauthorized, 1);
    }
}

#[test]
fn bodies_and_batches_over_the_limits_are_refused() {
    let big = format!("[{}]", vec![CALL; 30].join(","));
    let x = run(post(Some(USER_PASS_B64), &big).as_bytes());
    assert_eq!(probe::statuses(&x.output), [413]);
    assert_eq!(
        x.admitted,
        [Admitted::Refused(Refusal::Body(BodyError::TooLarge))]
    );
    let batch = format!("[{}]", [CALL; 5].join(","));
    let x = run(post(Some(USER_PASS_B64), &batch).as_bytes());
    assert_eq!(probe::statuses(&x.output), [413]);
    let batch = format!("[{}]", [CALL; 4].join(","));
    let x = run(post(Some(USER_PASS_B64), &batch).as_bytes());
    assert_eq!(probe::statuses(&x.output), [200]);
    assert_eq!(x.admitted, [Admitted::Requests(4)]);
    let x = run(post(Some(USER_PASS_B64), "{not json").as_bytes());
    assert_eq!(probe::statuses(&x.output), [500]);
}

/// A body cut short by the client closing is a bad request (400), not "too large" (413).
#[test]
fn a_body_cut_short_is_incomplete() {
    let full = post(Some(USER_PASS_B64), CALL);
    let cut = &full.as_bytes()[..full.len() - 10];
    let x = run(cut);
    assert_eq!(probe::statuses(&x.output), [400]);
    assert_eq!(
        x.admitted,
        [Admitted::Refused(Refusal::Body(BodyError::Incomplete))]
    );
}

#[test]
fn pipelined_requests_are_each_answered_in_order() {
    let input = [
        post(Some(USER_PASS_B64), CALL),
        post(None, CALL),
        post(Some(USER_PASS_B64), CALL),
    ]
    .concat();
    let x = run(input.as_bytes());
    assert_eq!(probe::statuses(&x.output), [200, 401, 200]);
}

#[test]
fn a_bad_request_head_gets_400_and_nothing_is_admitted() {
    for head in [
        "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        "GARBAGE\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
    ] {
        let x = run(head.as_bytes());
        assert!(x.admitted.is_empty(), "{head:?}");
        assert_eq!(probe::statuses(&x.output), [400], "{head:?}");
    }
}

/// One request built from hostile parts.
fn request() -> impl Strategy<Value = Vec<u8>> {
    let method = prop_oneof![
        Just("POST"),
        Just("GET"),
        Just("HEAD"),
        Just("PUT"),
        Just("P\0ST")
    ];
    let path = prop_oneof![Just("/"), Just("/wallet/w"), Just("*"), Just("//")];
    let auth = prop_oneof![
        Just(None),
        Just(Some(USER_PASS_B64.to_string())),
        Just(Some("dXNlcjpwYXNy".to_string())),
        "[A-Za-z0-9+/=]{0,16}".prop_map(Some),
    ];
    let body = prop_oneof![
        Just(CALL.to_string()),
        (0usize..7).prop_map(|n| format!("[{}]", vec![CALL; n].join(","))),
        "[ -~]{0,64}",
        (1000usize..1100).prop_map(|n| "x".repeat(n)),
    ];
    // How the body is framed: exact length, too short, too long, none, chunked, or a
    // malformed length.
    let framing = 0u8..6;
    let expect = any::<bool>();
    (method, path, auth, body, framing, expect).prop_map(
        |(method, path, auth, body, framing, expect)| {
            let mut r = format!("{method} {path} HTTP/1.1\r\nHost: x\r\n");
            if let Some(a) = auth {
                r += &format!("Authorization: Basic {a}\r\n");
            }
            if expect {
                r += "Expect: 100-continue\r\n";
            }
            match framing {
                0 => r += &format!("Content-Length: {}\r\n\r\n{body}", body.len()),
                1 => r += &format!("Content-Length: {}\r\n\r\n{body}", body.len() / 2),
                2 => r += &format!("Content-Length: {}\r\n\r\n{body}", body.len() + 7),
                3 => r += &format!("\r\n{body}"),
                4 => {
                    r += &format!(
                        "Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
                        body.len()
                    )
                }
                _ => r += &format!("Content-Length: 1{}0\r\n\r\n{body}", "0".repeat(20)),
            }
            r.into_bytes()
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_bytes_keep_the_properties(input in proptest::collection::vec(any::<u8>(), 0..2048)) {
        run(&input);
    }

    #[test]
    fn hostile_requests_keep_the_properties(
        reqs in proptest::collection::vec(request(), 1..4),
        cut in any::<prop::sample::Index>(),
        cut_it in any::<bool>(),
    ) {
        let mut input = reqs.concat();
        if cut_it {
            input.truncate(cut.index(input.len() + 1));
        }
        run(&input);
    }
}
