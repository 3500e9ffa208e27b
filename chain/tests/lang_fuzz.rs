//! The proptest twin of the `contract_lang` cargo-fuzz target: arbitrary or mangled source
//! never makes the compiler panic, and arbitrary or mangled bytecode is either rejected by
//! the verifier or runs to completion within its gas.

use proptest::prelude::*;
use rexe_chain::lang::ast::ScopeKind;
use rexe_chain::lang::bytecode::Module;
use rexe_chain::lang::value::default_value;
use rexe_chain::lang::vm::{self, Context, Host, TxKind};
use rexe_chain::lang::{compile, verify};

const EXAMPLES: [&str; 5] = [
    include_str!("../../examples/contracts/token.prd"),
    include_str!("../../examples/contracts/ballot.prd"),
    include_str!("../../examples/contracts/counter.prd"),
    include_str!("../../examples/contracts/amm.prd"),
    include_str!("../../examples/contracts/pixels.prd"),
];

const VOCAB: &[&str] = &[
    "contract",
    "C",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ";",
    ",",
    ".",
    "@",
    "^",
    "?",
    ":",
    "=",
    "+=",
    "-",
    "*",
    "/",
    "%",
    "<<",
    ">",
    ">",
    "<",
    "==",
    "&&",
    "||",
    "!",
    "~",
    "++",
    "function",
    "relay",
    "@address",
    "@global",
    "@shard",
    "@uint32",
    "uint32",
    "bigint",
    "address",
    "array<",
    "map<",
    "struct",
    "enum",
    "if",
    "else",
    "for",
    "while",
    "do",
    "break",
    "return",
    "x",
    "y",
    "f",
    "0",
    "1u",
    "0x80000000u32",
    "5ib",
    "\"s\"",
    "export",
    "const",
    "auto",
    "__block",
    "__transaction",
    "__debug",
    "get_height",
    "print",
    "shards",
    "next",
    "true",
];

struct NoState;

impl Host for NoState {
    fn read_row(&mut self, _: &[u8; 32], _: ScopeKind) -> Result<Option<Vec<u8>>, String> {
        Ok(None)
    }
    fn read_elem(
        &mut self,
        _: &[u8; 32],
        _: ScopeKind,
        _: u16,
        _: &rexe_chain::lang::layout::ElemKey,
    ) -> Result<Option<Vec<u8>>, String> {
        Ok(None)
    }
    fn is_contract(&self, _: &[u8; 32]) -> bool {
        false
    }
}

/// Every address is the module under test, so its calls into other contracts (and through
/// interfaces) run its own functions, with their checks.
struct Itself<'a>(
    &'a rexe_chain::lang::Verified,
    &'a [rexe_chain::lang::value::Value],
);

impl vm::Linker for Itself<'_> {
    fn contract(
        &self,
        _: &[u8; 32],
    ) -> Option<(
        &rexe_chain::lang::Verified,
        &[rexe_chain::lang::value::Value],
    )> {
        Some((self.0, self.1))
    }
}

fn ctx() -> Context {
    Context {
        supplied_assets: Vec::new(),
        kind: TxKind::Normal,
        self_address: [1; 32],
        sender: [1; 32],
        signers: vec![[1; 32]],
        initiator: [1; 32],
        tx_timestamp: 0,
        origin_shard: 0,
        shard_order: 2,
        height: 1,
        shard_index: 0,
        timestamp: 0,
        miner: [0; 32],
        random_seed: [0; 32],
        hrp: "trx",
        supplied: 0,
    }
}

/// Decodes, verifies and (when verified) runs every function with default arguments.
fn run_bytes(bytes: &[u8]) {
    let Ok(m) = Module::decode(bytes) else { return };
    let Ok(code) = verify::verify(m) else { return };
    run_all(&code);
}

fn run_all(code: &rexe_chain::lang::Verified) {
    let global = vm::default_row(code, ScopeKind::Global);
    for (i, f) in code.functions.iter().enumerate() {
        let args = code
            .param_types(f)
            .iter()
            .map(|t| default_value(t, &code.table))
            .collect();
        let limit = 50_000;
        let out = vm::execute(
            vm::Call {
                contract: [1; 32],
                code,
                func: i as u16,
                args,
                ctx: &ctx(),
                gas_limit: limit,
                global: &global,
                global_writable: f.scope == ScopeKind::Global,
                linker: &Itself(code, &global),
            },
            &mut NoState,
        );
        assert!(out.gas_used <= limit);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,300}") {
        let _ = compile(&s);
    }

    #[test]
    fn token_soup_never_panics(toks in prop::collection::vec(0..VOCAB.len(), 0..120)) {
        let src: Vec<&str> = toks.iter().map(|&i| VOCAB[i]).collect();
        let _ = compile(&src.join(" "));
    }

    #[test]
    fn mangled_examples_never_panic(
        which in 0..EXAMPLES.len(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..6),
    ) {
        let mut b = EXAMPLES[which].as_bytes().to_vec();
        for (at, byte, op) in edits {
            let i = at.index(b.len() + 1);
            match op {
                0 if i < b.len() => { b.remove(i); }
                1 => b.insert(i, byte),
                _ if i < b.len() => b[i] = byte,
                _ => {}
            }
        }
        if let Ok(src) = String::from_utf8(b) {
            if let Ok(code) = compile(&src) {
                run_all(&code);
            }
        }
    }

    #[test]
    fn arbitrary_bytecode_is_rejected_or_runs_within_gas(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        run_bytes(&bytes);
    }

    #[test]
    fn mangled_bytecode_is_rejected_or_runs_within_gas(
        which in 0..EXAMPLES.len(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut b = compile(EXAMPLES[which]).unwrap().module().encode();
        for (at, byte) in edits {
            let i = at.index(b.len());
            b[i] = byte;
        }
        run_bytes(&b);
    }
}

#[test]
fn examples_run_within_gas_with_default_arguments() {
    for src in EXAMPLES {
        run_all(&compile(src).unwrap());
    }
}
