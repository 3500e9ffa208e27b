//! The `stratum_line` fuzz target's properties as proptests: arbitrary bytes, and valid
//! messages in both directions with a byte mutated.

use bitcoin::hex::DisplayHex;
use proptest::prelude::*;
use rexe_miner::stratum::job::EXTRANONCE2_SIZE;
use rexe_miner::stratum::protocol::{
    parse_request, ClientMessage, ConfigureResult, Notify, Request, ServerMessage, Submit,
    SubscribeResult,
};
use serde_json::{json, Value};

fn check(data: &[u8]) {
    let json_ok = serde_json::from_slice::<Value>(data).is_ok();
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
        if let ServerMessage::Response { result, .. } = m {
            if let Ok(s) = SubscribeResult::from_result(result) {
                assert_eq!(SubscribeResult::from_result(&s.to_result()), Ok(s));
            }
            if let Ok(c) = ConfigureResult::from_result(result) {
                assert_eq!(ConfigureResult::from_result(&c.to_result()), Ok(c));
            }
        }
    }
}

fn client_message() -> impl Strategy<Value = ClientMessage> {
    let request = prop_oneof![
        prop::option::of("[ -~]{0,10}").prop_map(|agent| Request::Subscribe { agent }),
        ("[a-z.]{0,8}", "rx=[a-z0-9]{0,10}")
            .prop_map(|(user, password)| Request::Authorize { user, password }),
        (
            prop::collection::vec("[a-z-]{1,10}", 0..3),
            prop::option::of(any::<u32>())
        )
            .prop_map(|(extensions, mask)| Request::Configure { extensions, mask }),
        (
            "[a-z]{0,5}",
            "[0-9a-f]{1,6}",
            any::<[u8; EXTRANONCE2_SIZE]>(),
            any::<u32>(),
            any::<u32>(),
            prop::option::of(any::<u32>())
        )
            .prop_map(|(worker, job_id, en2, ntime, nonce, version_bits)| {
                Request::Submit(Ok(Submit {
                    worker,
                    job_id,
                    extranonce2: en2.to_vec(),
                    ntime,
                    nonce,
                    version_bits,
                }))
            }),
        Just(Request::ExtranonceSubscribe),
        "[a-z.]{0,12}"
            .prop_filter("unknown", |m| !m.starts_with("mining."))
            .prop_map(Request::Unknown),
    ];
    (any::<u32>(), request).prop_map(|(id, request)| ClientMessage {
        id: json!(id),
        request,
    })
}

fn server_message() -> impl Strategy<Value = ServerMessage> {
    let notify = (
        "[0-9a-f]{1,8}",
        any::<[u8; 32]>(),
        prop::collection::vec(any::<u8>(), 0..60),
        prop::collection::vec(any::<u8>(), 0..60),
        prop::collection::vec(any::<[u8; 32]>(), 0..4),
        (any::<u32>(), any::<u32>(), any::<u32>(), any::<bool>()),
    )
        .prop_map(
            |(
                job_id,
                prevhash,
                coinb1,
                coinb2,
                merkle_branch,
                (version, nbits, ntime, clean_jobs),
            )| {
                ServerMessage::Notify(Notify {
                    job_id,
                    prevhash,
                    coinb1,
                    coinb2,
                    merkle_branch,
                    version,
                    nbits,
                    ntime,
                    clean_jobs,
                })
            },
        );
    prop_oneof![
        notify,
        (1e-12f64..1e12).prop_map(ServerMessage::SetDifficulty),
        (prop::collection::vec(any::<u8>(), 0..8), 1usize..=8).prop_map(
            |(extranonce1, extranonce2_size)| {
                ServerMessage::SetExtranonce {
                    extranonce1,
                    extranonce2_size,
                }
            }
        ),
        (prop::collection::vec(any::<u8>(), 1..8), 1usize..=8).prop_map(|(e1, n)| {
            ServerMessage::Response {
                id: json!(1),
                result: SubscribeResult {
                    extranonce1: e1,
                    extranonce2_size: n,
                }
                .to_result(),
                error: Value::Null,
            }
        }),
        prop::option::of(any::<u32>()).prop_map(|mask| ServerMessage::Response {
            id: json!(3),
            result: ConfigureResult {
                version_rolling: true,
                mask
            }
            .to_result(),
            error: Value::Null,
        }),
    ]
}

fn mutate(mut b: Vec<u8>, at: usize, byte: u8, how: u8) -> Vec<u8> {
    if b.is_empty() {
        return vec![byte];
    }
    let at = at % b.len();
    match how % 3 {
        0 => b[at] = byte,
        1 => {
            b.remove(at);
        }
        _ => b.insert(at, byte),
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..200)) {
        check(&data);
    }

    #[test]
    fn mutated_client_messages(m in client_message(), at in any::<usize>(), byte in any::<u8>(), how in any::<u8>()) {
        let line = m.to_json().unwrap().to_string();
        prop_assert_eq!(parse_request(line.as_bytes()), Ok(m));
        check(&mutate(line.into_bytes(), at, byte, how));
    }

    #[test]
    fn mutated_server_messages(m in server_message(), at in any::<usize>(), byte in any::<u8>(), how in any::<u8>()) {
        let line = m.to_json().to_string();
        prop_assert_eq!(ServerMessage::parse(line.as_bytes()), Ok(m));
        check(&mutate(line.into_bytes(), at, byte, how));
    }
}

/// What the server sends parses as what the client expects.
#[test]
fn server_job_notify_parses() {
    let n = Notify {
        job_id: "1f".into(),
        prevhash: [7; 32],
        coinb1: vec![1, 2],
        coinb2: vec![3],
        merkle_branch: vec![[9; 32]],
        version: 0x2000_0000,
        nbits: 0x207f_ffff,
        ntime: 1_700_000_000,
        clean_jobs: true,
    };
    let line = json!({"id": null, "method": "mining.notify", "params": [
        "1f", ([7u8; 32]).to_lower_hex_string(), "0102", "03", [([9u8; 32]).to_lower_hex_string()],
        "20000000", "207fffff", format!("{:08x}", 1_700_000_000u32), true]});
    assert_eq!(
        ServerMessage::parse(line.to_string().as_bytes()),
        Ok(ServerMessage::Notify(n))
    );
}
