//! Stratum v1 lines in both directions on arbitrary bytes: miner → server
//! ([`parse_request`], what the Stratum server reads) and pool → miner
//! ([`ServerMessage::parse`], what the CPU client and a share tap read), with the subscribe
//! and configure results. Nothing panics; whatever parses re-encodes to a line that parses
//! to the same message; checked fields keep their bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rexe_miner::stratum::job::EXTRANONCE2_SIZE;
use rexe_miner::stratum::protocol::{
    parse_request, ConfigureResult, Request, ServerMessage, SubscribeResult, MAX_BRANCH,
    MAX_EXTRANONCE2_SIZE,
};

fuzz_target!(|data: &[u8]| {
    let json_ok = serde_json::from_slice::<serde_json::Value>(data).is_ok();
    let req = parse_request(data);
    assert_eq!(req.is_ok(), json_ok);
    if let Ok(m) = &req {
        if let Request::Submit(Ok(s)) = &m.request {
            assert_eq!(s.extranonce2.len(), EXTRANONCE2_SIZE);
        }
        match m.to_json() {
            Some(v) => assert_eq!(parse_request(v.to_string().as_bytes()).as_ref(), Ok(m)),
            None => assert!(matches!(m.request, Request::Submit(Err(_)))),
        }
    }
    let msg = ServerMessage::parse(data);
    if !json_ok {
        assert!(msg.is_err());
    }
    if let Ok(m) = &msg {
        let again = m.to_json().to_string();
        assert_eq!(ServerMessage::parse(again.as_bytes()).as_ref(), Ok(m));
        match m {
            ServerMessage::Notify(n) => assert!(n.merkle_branch.len() <= MAX_BRANCH),
            ServerMessage::SetDifficulty(d) => assert!(d.is_finite() && *d > 0.0),
            ServerMessage::Response { result, .. } => {
                if let Ok(s) = SubscribeResult::from_result(result) {
                    assert!((1..=MAX_EXTRANONCE2_SIZE).contains(&s.extranonce2_size));
                    assert_eq!(SubscribeResult::from_result(&s.to_result()), Ok(s));
                }
                if let Ok(c) = ConfigureResult::from_result(result) {
                    assert_eq!(ConfigureResult::from_result(&c.to_result()), Ok(c));
                }
            }
            _ => {}
        }
    }
});
