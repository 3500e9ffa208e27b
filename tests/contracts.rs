//! `rexe contract …` end to end: checking sources, running the example scripts, and (when
//! `PREDA_DIR` points at a checkout of github.com/preda-devteam/preda) PREDA's own published
//! example contracts and scripts, unchanged.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use bitcoin::hex::{DisplayHex, FromHex};
use common::*;
use rexe_chain::encode::{Decode, Encode};
use rexe_chain::{Block, Network, Signer};
use serde_json::json;

fn rexe() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rexe"));
    c.env("RUST_LOG", "warn").env("RUST_BACKTRACE", "0");
    c
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/contracts")
}

/// Runs a script and returns its `--summary` JSON.
fn run_script(script: &Path, opts: &[&str]) -> serde_json::Value {
    let out = rexe()
        .args(["contract", "run", "--summary"])
        .arg(script)
        .args(opts)
        .output()
        .expect("run rexe");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{} failed:\n{stdout}\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("summary line")
}

#[test]
fn check_accepts_the_examples_and_reports_errors_with_positions() {
    let files: Vec<PathBuf> = [
        "token",
        "ballot",
        "counter",
        "amm",
        "pixels",
        "guestbook",
        "vault",
        "bank",
        "shop",
    ]
    .iter()
    .map(|n| examples().join(format!("{n}.prd")))
    .collect();
    let out = rexe()
        .args(["contract", "check"])
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches(": OK: contract").count(), 9, "{text}");
    // shop.prd imports the bank: alone, the import has nothing to bind to.
    let out = rexe()
        .args(["contract", "check"])
        .arg(examples().join("shop.prd"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "shop.prd:5:8: `import Bank`: no contract `Bank` among the files before this one"
        ),
        "{text}"
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.prd");
    std::fs::write(
        &bad,
        "contract Bad {\n  @global uint32 g;\n  @address function f() export {\n    g = 1u;\n    h();\n  }\n}\n",
    )
    .unwrap();
    let out = rexe()
        .args(["contract", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("bad.prd:4:5: `g` is @global state"), "{text}");
    assert!(
        text.contains("bad.prd:5:5: undeclared function `h`"),
        "{text}"
    );
}

#[test]
fn example_scripts_run_and_conserve_supply() {
    let s = run_script(
        &examples().join("token.prdts"),
        &["-count:300", "-perftest"],
    );
    assert_eq!(s["supply_ok"], true);
    assert_eq!(s["reverted"], 0);
    assert_eq!(
        s["sums"]["Token.balance"], "1000000000000",
        "transfers conserve the token supply"
    );
    for (name, opts) in [
        ("ballot", vec!["-count:40"]),
        ("counter", vec!["-count:100", "-order:3"]),
        ("amm", vec!["-count:50"]),
        ("pixels", vec!["-count:100", "-order:1"]),
        ("vault", vec!["-count:60"]),
        ("shop", vec!["-count:40"]),
        ("polls", vec!["-count:30"]),
        ("minter", vec!["-count:20"]),
        ("million_pixel", vec!["-order:2"]),
    ] {
        let s = run_script(&examples().join(format!("{name}.prdts")), &opts);
        assert_eq!(s["supply_ok"], true, "{name}");
        assert_eq!(s["reverted"], 0, "{name}: {s}");
        if name == "shop" {
            // Every purchase, through the bank and both kinds of payee, went through.
            assert_eq!(s["sums"]["Shop.bought"], "80", "{s}");
            assert_eq!(s["sums"]["Shop.sold"], "80", "{s}");
        }
        if name == "polls" {
            // Two deployed polls, every address voting once in each; the script's checks
            // of both tallies (read back through the polls' ids) did not revert.
            assert_eq!(s["sums"]["Polls.cast"], "60", "{s}");
        }
        if name == "million_pixel" {
            // PREDA's MillionPixel at its published size: 10,000 claims, each run in the
            // claimant's scope and then, by its lambda relay, in the pixel's.
            assert_eq!(s["micro_txs"], 20_002, "{s}");
        }
        if name == "minter" {
            // GOLD minted by every address, moved around, and partly burned; the asset
            // audit after every block held (supply_ok).
            assert_eq!(s["sums"]["Minter.issued"], "20000", "{s}");
            assert_eq!(s["sums"]["Minter.retired"], "2000", "{s}");
        }
    }
    let s = run_script(
        &examples().join("erc20_bench.prdts"),
        &["-addr:200", "-count:500", "-perftest"],
    );
    assert_eq!(s["sums"]["Token.balance"], "2000000000000000");
}

#[test]
fn a_script_without_its_parameter_says_which_is_missing() {
    let out = rexe()
        .args(["contract", "run"])
        .arg(examples().join("token.prdts"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("-count:VALUE"));
}

/// PREDA's chain simulator meters no gas and bounds no call's relays: calls as large as
/// Kitty's `registerNewBorns` at its published size (a shard's newborns pushed, one relay to
/// each owner) run in `rexe contract run`, and revert with `--gas 5000000`, a chain's cap
/// per transaction (a chain also allows 4,096 relays per call).
#[test]
fn scripts_lift_the_per_transaction_gas_cap_unless_told() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("big.prd"),
        "contract Big {\n    @shard array<uint64> xs;\n    @address uint32 got;\n    @shard function fill(uint32 n) export {\n        for (uint32 i = 0u; i < n; i++) { xs.push(uint64(i)); }\n    }\n    @address function fan(uint32 n) export {\n        address me = __transaction.get_self_address();\n        for (uint32 i = 0u; i < n; i++) { relay@me () { got += 1u; } }\n    }\n}\n",
    )
    .unwrap();
    let script = dir.path().join("big.prdts");
    std::fs::write(
        &script,
        "allocate.address 4\nchain.deploy @0 big.prd\nBig.fill #all { n: 20000 }\nBig.fan @0 { n: 5000 }\nchain.run\nchain.info\n",
    )
    .unwrap();
    let s = run_script(&script, &["-order:1"]);
    assert_eq!(s["reverted"], 0, "{s}");
    assert_eq!(s["sums"]["Big.got"], "5000", "{s}");
    let out = rexe()
        .args(["contract", "run", "--summary", "--gas", "5000000"])
        .arg(&script)
        .arg("-order:1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let s: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(
        s["reverted"], 3,
        "each shard's fill and the fan run out of gas: {s}"
    );
}

#[test]
fn a_double_dash_option_after_the_script_is_explained() {
    for (opt, says) in [
        ("--shards", "the shard count is PREDA's -order:N"),
        ("--bogus", "unknown option --bogus"),
    ] {
        let out = rexe()
            .args(["contract", "run"])
            .arg(examples().join("token.prdts"))
            .arg(opt)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{opt}: {err}");
    }
}

/// PREDA's published examples, unchanged: Token with its transfer and AirDrop scripts,
/// Ballot, the CryptoKitties-style Kitty, and FCA (an asset minted, moved and burned). (The
/// PREDA repository publishes MillionPixel only as a Crystality `.xtl` contract, another
/// language; `examples/contracts/million_pixel.prd` is its PREDA port, run with the
/// published script in `example_scripts_run_and_conserve_supply`.)
#[test]
fn preda_published_examples_run_unchanged() {
    let Some(dir) = std::env::var_os("PREDA_DIR") else {
        println!("skipped: set PREDA_DIR to a checkout of github.com/preda-devteam/preda to run PREDA's own examples");
        return;
    };
    let contracts = Path::new(&dir).join("oxd_preda/simulator/contracts");
    assert!(
        contracts.is_dir(),
        "{} is not a PREDA checkout",
        contracts.display()
    );
    // Token: 1024 addresses each preset with 10^13; transfers move it around.
    let s = run_script(
        &contracts.join("Token.prdts"),
        &["-count:2000", "-perftest"],
    );
    assert_eq!(
        s["sums"]["Token.balance"], "10240000000000000",
        "token supply conserved: {s}"
    );
    assert_eq!(s["reverted"], 0, "{s}");
    let s = run_script(
        &contracts.join("AirDrop.prdts"),
        &["-count:100", "-perftest"],
    );
    assert_eq!(
        s["sums"]["Token.balance"], "10240000000000000",
        "airdrop supply conserved: {s}"
    );
    assert_eq!(s["reverted"], 0, "{s}");
    // Ballot: every weight is counted once.
    let s = run_script(
        &contracts.join("Ballot.prdts"),
        &["-count:200", "-perftest"],
    );
    assert_eq!(s["reverted"], 0, "{s}");
    assert_eq!(
        s["sums"]["Ballot.voted_case"], "200",
        "everyone voted in case 1: {s}"
    );
    // Kitty: mints, breeds, registers the newborns.
    let s = run_script(&contracts.join("Kitty.prdts"), &["-count:100", "-perftest"]);
    assert_eq!(s["reverted"], 0, "{s}");
    // FCA: `state.token mint BTC by FCA`, then mint 1000, send 100 to @1, burn 50.
    let out = rexe()
        .args(["contract", "run"])
        .arg(contracts.join("FCA.prdts"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("Mint success") && text.contains("burn success"),
        "{text}"
    );
    assert!(
        text.contains(", 850 BTC") && text.contains(", 100 BTC"),
        "{text}"
    );
    if let Some(mp) = ["MillionPixel.prd", "Million_Pixel.prd", "MP.prd"]
        .iter()
        .map(|f| contracts.join(f))
        .find(|p| p.exists())
    {
        let out = rexe()
            .args(["contract", "check"])
            .arg(&mp)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    } else {
        println!("no PREDA MillionPixel contract in this checkout (only Crystality's MP.xtl)");
    }
}

/// Every file under `dir` (not `.git`) whose name ends with `ext`, sorted.
fn files_with(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != ".git") {
                files_with(&p, ext, out);
            }
        } else if p.to_string_lossy().ends_with(ext) {
            out.push(p);
        }
    }
}

/// The files of `file`'s directory that define the contracts it imports (and theirs),
/// dependencies first: what `rexe contract check` needs listed before it.
fn imported_files(file: &Path, seen: &mut Vec<PathBuf>) -> Vec<PathBuf> {
    let src = std::fs::read_to_string(file).unwrap_or_default();
    let dir = file.parent().unwrap_or(Path::new("."));
    let mut siblings = Vec::new();
    files_with(dir, ".prd", &mut siblings);
    let mut out = Vec::new();
    for line in src.lines() {
        let Some(name) = line.trim().strip_prefix("import ") else {
            continue;
        };
        let name = name
            .split_whitespace()
            .next()
            .unwrap_or("")
            .trim_end_matches(';');
        // `contract NAME` (with `{`, `implements …` or nothing after it).
        let defines = |p: &PathBuf| {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            let words: Vec<&str> = text.split_whitespace().collect();
            words.windows(2).any(|w| {
                w[0] == "contract"
                    && w[1].trim_end_matches(|c: char| !c.is_alphanumeric() && c != '_') == name
            })
        };
        if let Some(dep) = siblings.iter().find(|p| p.as_path() != file && defines(p)) {
            if !seen.contains(dep) {
                seen.push(dep.clone());
                out.extend(imported_files(dep, seen));
                out.push(dep.clone());
            }
        }
    }
    out
}

/// With `PREDA_DIR`: every PREDA contract (`.prd`) and chain-simulator script (`.prdts`) in
/// the checkout is tried (contracts checked with the files they import listed first, scripts
/// run with `-count:100 -perftest` in their directory) and listed with its outcome. Nothing
/// may crash or print a backtrace; a refusal is one line naming the file and the reason;
/// the published simulator contracts and scripts, and the transpiler test cases written in
/// PREDA as its specification defines it, must pass; the rest must be refused for the
/// reasons README gives (floats, early PREDA functions, Crystality, malformed sources).
#[test]
fn preda_every_contract_and_script_is_tried_and_listed() {
    let Some(dir) = std::env::var_os("PREDA_DIR") else {
        println!("skipped: set PREDA_DIR to a checkout of github.com/preda-devteam/preda to try every PREDA contract and script");
        return;
    };
    let dir = PathBuf::from(dir);
    let rel = |p: &Path| p.strip_prefix(&dir).unwrap_or(p).display().to_string();
    let no_crash = |what: &str, text: &str| {
        assert!(
            !text.contains("panicked") && !text.contains("stack backtrace"),
            "{what} crashed:\n{text}"
        );
    };
    let mut contracts = Vec::new();
    files_with(&dir, ".prd", &mut contracts);
    assert!(
        !contracts.is_empty(),
        "no .prd files under {}",
        dir.display()
    );
    let mut passed: Vec<String> = Vec::new();
    let mut refused: Vec<(String, String)> = Vec::new();
    println!("PREDA contracts ({}):", contracts.len());
    for f in &contracts {
        let deps = imported_files(f, &mut vec![f.clone()]);
        let out = rexe()
            .args(["contract", "check"])
            .args(&deps)
            .arg(f)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        no_crash(&rel(f), &text);
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let with = if deps.is_empty() {
            String::new()
        } else {
            format!(
                " (after {})",
                deps.iter()
                    .map(|d| d.file_name().unwrap().to_string_lossy().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        if out.status.success() {
            println!("  ok       {}{with}", rel(f));
            passed.push(name);
        } else {
            // The first error names this file, with a line and column.
            let first = text
                .lines()
                .find(|l| l.contains(&name) && !l.contains(": OK:"))
                .unwrap_or_else(|| panic!("{}: no error line names it:\n{text}", rel(f)))
                .to_string();
            println!("  refused  {}{with}: {first}", rel(f));
            refused.push((name, first));
        }
    }
    let present = |n: &str| contracts.iter().any(|p| p.ends_with(n));
    for n in [
        "Ballot.prd",
        "FCA.prd",
        "Kitty.prd",
        "Token.prd",
        "bigint.prd",
        "const_and_lvalue.prd",
        "cross_call_A.prd",
        "cross_call_B.prd",
        "cross_call_C.prd",
        "debug_ctx.prd",
        "interfaceA.prd",
        "interfaceB.prd",
        "longint.prd",
        "map.prd",
        "relay.prd",
        "relay_broadcast.prd",
        "string.prd",
        "token.prd",
    ] {
        if present(n) {
            assert!(
                passed.iter().any(|p| p == n),
                "{n} should compile: {refused:?}"
            );
        }
    }
    for (n, why) in [
        ("float.prd", "floating-point literals are not supported"),
        ("test2.prd", "get_parent_shard_index"),
        ("zombie.prd", "get_parent_shard_index"),
    ] {
        if present(n) {
            let r = refused.iter().find(|(f, _)| f == n);
            assert!(
                r.is_some_and(|(_, e)| e.contains(why)),
                "{n} should be refused ({why}): {r:?}"
            );
        }
    }

    let mut scripts = Vec::new();
    files_with(&dir, ".prdts", &mut scripts);
    println!("PREDA scripts ({}):", scripts.len());
    let mut ran = Vec::new();
    for f in &scripts {
        let out = rexe()
            .current_dir(f.parent().unwrap())
            .args(["contract", "run"])
            .arg(f.file_name().unwrap())
            .args(["-count:100", "-perftest"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        no_crash(&rel(f), &format!("{stdout}{stderr}"));
        if out.status.success() {
            let report = stdout
                .lines()
                .find(|l| l.contains("TPS:"))
                .unwrap_or("finished")
                .trim();
            println!("  ran      {}: {report}", rel(f));
            ran.push(rel(f));
        } else {
            // One line, or one per compile error of a deployed contract.
            let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
            assert!(lines[0].starts_with("error: line "), "{}: {stderr}", rel(f));
            for l in &lines[1..] {
                assert!(
                    l.contains(".prd:"),
                    "{}: not an error line: {l}\n{stderr}",
                    rel(f)
                );
            }
            println!("  refused  {}: {}", rel(f), lines[0]);
            if rel(f).contains("crystality") {
                assert!(
                    lines[0].contains("Crystality (.xtl) contracts are not supported"),
                    "{}: {}",
                    rel(f),
                    lines[0]
                );
            }
        }
    }
    for n in ["Token", "AirDrop", "Ballot", "Kitty", "FCA"] {
        let p = format!("oxd_preda/simulator/contracts/{n}.prdts");
        if dir.join(&p).exists() {
            assert!(ran.contains(&p), "{p} should run: ran {ran:?}");
        }
    }
    println!(
        "{} of {} contracts compiled, {} of {} scripts ran",
        passed.len(),
        contracts.len(),
        ran.len(),
        scripts.len()
    );
}

fn mine(n: &Running, addr: &str) {
    let t = call(n, "getblocktemplate", json!([addr]));
    let hex = t["result"]["hex"].as_str().expect("template hex");
    let mut block = Block::from_bytes(&Vec::<u8>::from_hex(hex).unwrap()).unwrap();
    seal(&mut block);
    let r = call(
        n,
        "submitblock",
        json!([block.to_bytes().to_lower_hex_string()]),
    );
    assert_eq!(r["result"], serde_json::Value::Null, "{r}");
}

/// `rexe contract deploy/call/get` against a running node, blocks mined through the RPC.
#[test]
fn deploy_call_and_get_through_a_node() {
    let dir = tempfile::tempdir().unwrap();
    let n = spawn(
        &[
            "node",
            "--datadir",
            dir.path().to_str().unwrap(),
            "--rpc-bind",
            "127.0.0.1:0",
        ],
        dir.path(),
    );
    let secret = [7u8; 32];
    let key = dir.path().join("key");
    std::fs::write(&key, secret.to_lower_hex_string()).unwrap();
    let me = Signer::from_secret(secret).unwrap();
    let net = call(&n, "getchaininfo", json!([]))["result"]["network"]
        .as_str()
        .unwrap()
        .to_string();
    let network = match net.as_str() {
        "devnet" => Network::Devnet,
        _ => Network::Regtest,
    };
    let my_addr = me.address().encode(network);
    mine(&n, &my_addr);
    let rpc = |args: &[&str]| cli_as(&n, &key, args);
    // Deploys an example and mines it in; its address.
    let deploy = |name: &str, args: &[&str]| {
        let file = examples().join(format!("{name}.prd"));
        let mut cmd = vec!["contract", "deploy", file.to_str().unwrap()];
        cmd.extend_from_slice(args);
        let out = rpc(&cmd);
        for _ in 0..3 {
            mine(&n, &my_addr);
        }
        out.lines()
            .find_map(|l| l.strip_prefix("contract address: "))
            .expect("the address is printed")
            .to_string()
    };
    let contract = deploy("token", &["--args", r#"{"supply": "5000"}"#]);
    let info = call(&n, "getcontract", json!([contract]));
    assert_eq!(info["result"]["name"], "Token", "{info}");
    let payee = Signer::from_seed(b"payee").address().encode(network);
    let out = rpc(&["contract", "call", &contract, "transfer", &payee, "1234"]);
    let txid = out
        .lines()
        .find_map(|l| l.strip_prefix("txid: "))
        .unwrap()
        .to_string();
    for _ in 0..2 {
        mine(&n, &my_addr);
    }
    let r = call(&n, "getcontractreceipts", json!([txid]));
    let rs = r["result"].as_array().unwrap_or_else(|| panic!("{r}"));
    assert_eq!(rs.len(), 2, "{r}");
    assert_eq!(rs[0]["result"], json!(true));
    let out = rexe()
        .args([
            "contract",
            "get",
            &contract,
            &payee,
            "--rpc",
            &n.rpc,
            "--rpc-auth",
            &n.cookie,
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["state"]["balance"], json!(1234), "{v}");
    let v = call(&n, "getcontractstate", json!([contract, my_addr]));
    assert_eq!(v["result"]["state"]["balance"], json!(5000 - 1234), "{v}");
    let v = call(&n, "getcontractstate", json!([contract]));
    assert_eq!(v["result"]["state"]["total_supply"], json!(5000), "{v}");
    // rxBTC attached with --value reaches the contract as a token.
    let vault = deploy("vault", &[]);
    rpc(&["contract", "call", &vault, "lock", "--value", "0.00012345"]);
    for _ in 0..2 {
        mine(&n, &my_addr);
    }
    let v = call(&n, "getcontractstate", json!([vault, my_addr]));
    assert_eq!(
        v["result"]["state"]["locked"],
        json!({"token": "RXBTC", "amount": 12345}),
        "{v}"
    );
    // A contract that imports another: deployed and called through the CLI, which
    // compiles both through the node (`getcontract` by name, then by recorded address).
    let bank = deploy("bank", &["--args", r#"{"fee": 10}"#]);
    let shop = deploy("shop", &[]);
    let info = call(&n, "getcontract", json!(["Bank"]));
    assert_eq!(info["result"]["address"], json!(bank), "{info}");
    let info = call(&n, "getcontract", json!([shop]));
    assert_eq!(info["result"]["imports"], json!([bank]), "{info}");
    assert_eq!(
        info["result"]["implements"],
        json!(["Bank.Payee"]),
        "{info}"
    );
    rpc(&[
        "contract", "call", &shop, "buy", &payee, &bank, "--value", "0.00001",
    ]);
    for _ in 0..3 {
        mine(&n, &my_addr);
    }
    // 10% of 1,000 sat to the buyer's bank balance, the rest to the seller's till.
    let v = call(&n, "getcontractstate", json!([bank, my_addr]));
    assert_eq!(
        v["result"]["state"]["balance"],
        json!({"token": "RXBTC", "amount": 100}),
        "{v}"
    );
    let v = call(&n, "getcontractstate", json!([shop, payee]));
    assert_eq!(
        v["result"]["state"]["till"],
        json!({"token": "RXBTC", "amount": 900}),
        "{v}"
    );
    // An asset: the deployer grants Minter the right to mint GOLD, mints 500, and sends
    // 120 to the payee with --asset; getaccount lists both wallets, getsupply audits them.
    let minter = deploy("minter", &[]);
    rpc(&["contract", "grant-mint", &minter, "GOLD"]);
    for _ in 0..3 {
        mine(&n, &my_addr);
    }
    let rights = call(&n, "listmintrights", json!([]));
    assert_eq!(
        rights["result"],
        json!([{"asset": "GOLD", "contract": minter}]),
        "{rights}"
    );
    rpc(&["contract", "call", &minter, "issue", "GOLD", r#""500""#]);
    for _ in 0..2 {
        mine(&n, &my_addr);
    }
    rpc(&[
        "contract", "call", &minter, "send", &payee, "--asset", "120:GOLD",
    ]);
    for _ in 0..3 {
        mine(&n, &my_addr);
    }
    let gold = |n: u64| json!([{"asset": "GOLD", "amount": n}]);
    let a = call(&n, "getaccount", json!([my_addr]));
    assert_eq!(a["result"]["assets"], gold(380), "{a}");
    let a = call(&n, "getaccount", json!([payee]));
    assert_eq!(a["result"]["assets"], gold(120), "{a}");
    let s = call(&n, "getsupply", json!([]));
    assert_eq!(s["result"]["assets"][0]["issued"], "500", "{s}");
    assert_eq!(s["result"]["holds"], true, "{s}");
    assert_eq!(
        call(&n, "listcontracts", json!([]))["result"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
}

/// A refused command prints one line, `error: ` and its causes, and exits 1 — no Rust
/// backtrace even when `RUST_BACKTRACE` asks for one (issue 21 item 4).
#[test]
fn a_refused_command_prints_one_line_without_a_backtrace() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.script");
    for backtrace in ["1", "full"] {
        let out = rexe()
            .env("RUST_BACKTRACE", backtrace)
            .args(["contract", "run"])
            .arg(&missing)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{err}");
        assert!(lines[0].starts_with("error: reading "), "{err}");
        assert!(lines[0].contains("No such file or directory"), "{err}");
        assert!(!err.contains("backtrace"), "{err}");
    }
}
