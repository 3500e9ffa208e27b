//! The contract language: arbitrary source never makes the lexer, parser or compiler panic,
//! and arbitrary bytecode is rejected by the verifier or runs to completion within its gas.
//! The first byte picks the mode (even: source text, odd: a binary module).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rexe_chain::lang::ast::ScopeKind;
use rexe_chain::lang::bytecode::Module;
use rexe_chain::lang::value::default_value;
use rexe_chain::lang::vm::{self, Context, Host, TxKind};
use rexe_chain::lang::{compile, verify, Verified};

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
struct Itself<'a>(&'a rexe_chain::lang::Verified, &'a [rexe_chain::lang::value::Value]);

impl vm::Linker for Itself<'_> {
    fn contract(
        &self,
        _: &[u8; 32],
    ) -> Option<(&rexe_chain::lang::Verified, &[rexe_chain::lang::value::Value])> {
        Some((self.0, self.1))
    }
}

fn run_all(code: &Verified) {
    let ctx = Context {
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
        supplied_assets: Vec::new(),
    };
    let global = vm::default_row(code, ScopeKind::Global);
    for (i, f) in code.functions.iter().enumerate() {
        let args = code
            .param_types(f)
            .iter()
            .map(|t| default_value(t, &code.table))
            .collect();
        let limit = 20_000;
        let out = vm::execute(
            vm::Call {
                contract: [1; 32],
                code,
                func: i as u16,
                args,
                ctx: &ctx,
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

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        if let Ok(src) = std::str::from_utf8(rest) {
            if let Ok(code) = compile(src) {
                run_all(&code);
            }
        }
    } else if let Ok(m) = Module::decode(rest) {
        if let Ok(code) = verify::verify(m) {
            run_all(&code);
        }
    }
});
