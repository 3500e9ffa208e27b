//! The regtest stack's flags have one source: every service line of `.env` is what
//! `docker-compose.yml` substitutes and what `tests/compose_smoke.sh --native` starts.

use std::path::Path;

fn read(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn compose_and_the_native_smoke_mode_take_every_flag_from_env() {
    let env = read(".env");
    let compose = read("docker-compose.yml");
    let smoke = read("tests/compose_smoke.sh");
    let keys: Vec<&str> = env
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split_once('=').expect("KEY=value").0)
        .collect();
    assert_eq!(
        keys,
        [
            "BITCOIND_ARGS",
            "ELECTRS_ARGS",
            "ELECTRS_AUTH",
            "NODE_ARGS",
            "MINER_ARGS",
            "CPUMINER_ARGS",
            "RELAYER_ARGS"
        ]
    );
    for k in &keys {
        assert_eq!(
            compose.matches(&format!("${{{k}}}")).count(),
            1,
            "docker-compose.yml substitutes {k} once"
        );
        assert!(
            smoke.contains(&format!("native {k} ")) || smoke.contains(&format!("ARGS[{k}]")),
            "the native smoke mode starts {k}"
        );
    }
    // No service flag is written in the compose file itself any more (the healthchecks'
    // bitcoin-cli and rexe calls have their own).
    for flag in [
        "-rpcbind=",
        "--daemon-rpc-addr",
        "--rpc-bind=",
        "--stratum=",
        "--bitcoind=",
    ] {
        assert!(!compose.contains(flag), "{flag} belongs in .env");
    }
}
