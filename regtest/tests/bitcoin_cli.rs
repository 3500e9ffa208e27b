//! Bitcoin Core's own `bitcoin-cli` driving the embedded node as a regtest script drives
//! bitcoind: cookie auth from the data directory, positional and `-named` parameters,
//! `-rpcwallet` routing, `-stdin`, and errors as the client prints them. Runs when
//! `BITCOIN_CLI_EXE` (or `BITCOIND_EXE`, beside which `bitcoin-cli` is looked for) names a
//! binary; skipped with the reason printed otherwise.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rexe_regtest::{RegtestConfig, RegtestNode};
use serde_json::Value;

fn bitcoin_cli_exe() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("BITCOIN_CLI_EXE") {
        return Some(p.into());
    }
    let d = PathBuf::from(std::env::var_os("BITCOIND_EXE")?);
    Some(d.with_file_name("bitcoin-cli")).filter(|p| p.exists())
}

/// Runs `bitcoin-cli` against `node` (its cookie file, as a local script finds it) with
/// `args`, `stdin` fed to `-stdin`; exit code, stdout, stderr.
fn cli(exe: &Path, node: &RegtestNode, args: &[&str], stdin: &str) -> (i32, String, String) {
    use std::io::Write;
    let mut child = Command::new(exe)
        .arg("-regtest")
        .arg("-rpcconnect=127.0.0.1")
        .arg(format!("-rpcport={}", node.rpc_addr.port()))
        .arg(format!("-rpccookiefile={}", node.cookie_path.display()))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

#[test]
fn bitcoin_cli_scripts_the_embedded_node() {
    let Some(exe) = bitcoin_cli_exe() else {
        println!("skipped: set BITCOIN_CLI_EXE (or BITCOIND_EXE, beside which bitcoin-cli is looked for) to run Core's bitcoin-cli against the embedded node");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let node = RegtestNode::start(RegtestConfig {
        datadir: Some(dir.path().to_path_buf()),
        ..RegtestConfig::default()
    })
    .unwrap();
    let ok = |args: &[&str]| -> String {
        let (code, out, err) = cli(&exe, &node, args, "");
        assert_eq!(code, 0, "bitcoin-cli {args:?}: {err}");
        out
    };
    let version = Command::new(&exe).arg("-version").output().unwrap();
    println!(
        "{}",
        String::from_utf8_lossy(&version.stdout)
            .lines()
            .next()
            .unwrap_or("")
    );

    // A wallet, addressed with -rpcwallet, and the usual regtest opening.
    assert!(ok(&["-named", "createwallet", "wallet_name=alice"]).contains("\"alice\""));
    ok(&["createwallet", "bob"]);
    let alice = ok(&["-rpcwallet=alice", "getnewaddress"]);
    let bob = ok(&[
        "-rpcwallet=bob",
        "-named",
        "getnewaddress",
        "address_type=bech32m",
    ]);
    assert!(bob.starts_with("bcrt1p"), "{bob}");
    let mined = ok(&[
        "-named",
        "generatetoaddress",
        "nblocks=101",
        &format!("address={alice}"),
    ]);
    let mined: Value = serde_json::from_str(&mined).unwrap();
    assert_eq!(mined.as_array().unwrap().len(), 101);
    assert_eq!(ok(&["getblockcount"]), "101");
    assert_eq!(ok(&["-rpcwallet=alice", "getbalance"]), "50.00000000");

    // Payments by position and by name, then a block.
    let txid = ok(&["-rpcwallet=alice", "sendtoaddress", &bob, "1.5"]);
    assert_eq!(txid.len(), 64);
    let named = ok(&[
        "-rpcwallet=alice",
        "-named",
        "sendtoaddress",
        &format!("address={bob}"),
        "amount=0.25",
        "fee_rate=5",
    ]);
    assert_eq!(named.len(), 64);
    ok(&[
        "-named",
        "generatetoaddress",
        "nblocks=1",
        &format!("address={alice}"),
    ]);
    assert_eq!(ok(&["-rpcwallet=bob", "getbalance"]), "1.75000000");
    let entry: Value =
        serde_json::from_str(&ok(&["-rpcwallet=bob", "gettransaction", &txid])).unwrap();
    assert_eq!(entry["confirmations"], 1, "{entry}");

    // -stdin takes the arguments from standard input, one a line.
    let (code, out, err) = cli(&exe, &node, &["-stdin", "getblockhash"], "0\n");
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"
    );

    // Errors as bitcoin-cli prints them: Core's code and message, and the code (without its
    // sign) as the exit status.
    let (code, _, err) = cli(&exe, &node, &["getblockhash", "5000"], "");
    assert_eq!(code, 8);
    assert_eq!(
        err,
        "error code: -8\nerror message:\nBlock height out of range"
    );
    let (code, _, err) = cli(&exe, &node, &["getbalance"], "");
    assert_eq!(code, 19);
    assert!(
        err.starts_with("error code: -19\nerror message:\nWallet file not specified (must request wallet RPC through /wallet/<filename> uri-path). Or for the CLI, specify the \"-rpcwallet=<walletname>\" option"),
        "{err}"
    );
    let (code, _, err) = cli(&exe, &node, &["-named", "getblockhash", "heigth=1"], "");
    assert_eq!(code, 8);
    assert!(err.contains("Unknown named parameter heigth"), "{err}");
}
