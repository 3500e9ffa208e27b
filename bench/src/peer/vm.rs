//! rexe's contract VM in memory: `examples/contracts/token.prd`'s `transfer` on the
//! sender's row and the `deposit` relay it emits on the recipient's, each with its
//! arguments decoded from bytes as the chain does and its row writes applied to a map.
//! No transactions, fees, commitments or storage: the interpreter's share of the work.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{anyhow, bail, ensure, Result};
use rexe_chain::contract::contract_address;
use rexe_chain::lang::ast::ScopeKind;
use rexe_chain::lang::layout::ElemKey;
use rexe_chain::lang::num::Int;
use rexe_chain::lang::value::{decode_tuple, encode_tuple, Value};
use rexe_chain::lang::vm::{self, Context, Host, NoContracts, RelayDest, TxKind};
use rexe_chain::lang::{compile, Verified};
use rexe_chain::params::bench_address;

use crate::XorShift;

const TOKEN: &str = include_str!("../../../examples/contracts/token.prd");
/// Each holder's balance at the start.
const START: u64 = 1_000_000_000;

/// The rows of the token's `@address` scope, by holder, and the holder being run.
struct Rows<'a> {
    rows: &'a HashMap<[u8; 32], Vec<u8>>,
    own: [u8; 32],
}

impl Host for Rows<'_> {
    fn read_row(&mut self, _: &[u8; 32], scope: ScopeKind) -> Result<Option<Vec<u8>>, String> {
        Ok(match scope {
            ScopeKind::Address => self.rows.get(&self.own).cloned(),
            _ => None,
        })
    }
    fn read_elem(
        &mut self,
        _: &[u8; 32],
        _: ScopeKind,
        _: u16,
        _: &ElemKey,
    ) -> Result<Option<Vec<u8>>, String> {
        Ok(None)
    }
    fn is_contract(&self, _: &[u8; 32]) -> bool {
        false
    }
}

fn context(kind: TxKind, own: [u8; 32], sender: [u8; 32]) -> Context {
    Context {
        supplied_assets: Vec::new(),
        kind,
        self_address: own,
        sender,
        signers: if kind == TxKind::Normal {
            vec![sender]
        } else {
            Vec::new()
        },
        initiator: sender,
        tx_timestamp: 1,
        origin_shard: 0,
        shard_order: 0,
        height: 1,
        shard_index: 0,
        timestamp: 1,
        miner: [0; 32],
        random_seed: [0; 32],
        hrp: "trx",
        supplied: 0,
    }
}

/// The in-memory state and what runs on it.
struct Token {
    code: Verified,
    address: [u8; 32],
    global: Vec<Value>,
    rows: HashMap<[u8; 32], Vec<u8>>,
}

impl Token {
    /// Runs `func` on `own`'s row with encoded `args`, applies its writes, and returns
    /// the relays it emitted.
    fn run(
        &mut self,
        kind: TxKind,
        func: u16,
        own: [u8; 32],
        sender: [u8; 32],
        args: &[u8],
    ) -> Result<Vec<vm::RelayOut>> {
        let f = &self.code.functions[usize::from(func)];
        let args = decode_tuple(args, &self.code.param_types(f), &self.code.table)
            .map_err(|e| anyhow!("decoding arguments: {e}"))?;
        let ctx = context(kind, own, sender);
        let out = vm::execute(
            vm::Call {
                contract: self.address,
                code: &self.code,
                func,
                args,
                ctx: &ctx,
                gas_limit: 100_000,
                global: &self.global,
                global_writable: false,
                linker: &NoContracts,
            },
            &mut Rows {
                rows: &self.rows,
                own,
            },
        );
        if let Err(t) = out.result {
            bail!("the token trapped: {t:?}");
        }
        for (scope, row) in out.writes {
            ensure!(
                scope == ScopeKind::Address,
                "a write outside the holder's row"
            );
            match row {
                Some(r) => self.rows.insert(own, r),
                None => self.rows.remove(&own),
            };
        }
        Ok(out.relays)
    }

    fn balance(&self, holder: &[u8; 32]) -> Result<Value> {
        Ok(match self.rows.get(holder) {
            Some(r) => vm::decode_row(&self.code, ScopeKind::Address, r)?.remove(0),
            None => Value::Int(Int::from(0u64)),
        })
    }
}

/// Transfers per second of the VM in memory for the same workload as the token run.
pub(crate) fn run(holders: u64, block_txs: usize, blocks: u64) -> Result<f64> {
    let code = compile(TOKEN).map_err(|e| anyhow!("{e}"))?;
    let (transfer, f) = code.function("transfer").expect("token has transfer");
    let transfer_types = code.param_types(f);
    let address = contract_address(&bench_address(0), 0).0;
    let global = vm::default_row(&code, ScopeKind::Global);
    let start_row = vm::encode_row(&code, ScopeKind::Address, &[Value::Int(Int::from(START))])?
        .expect("a balance is not the default");
    let holder: Vec<[u8; 32]> = (0..holders).map(|i| bench_address(i).0).collect();
    let mut t = Token {
        rows: holder.iter().map(|h| (*h, start_row.clone())).collect(),
        code,
        address,
        global,
    };
    let mut rng = XorShift::transfers(holders);
    let mut secs = 0.0;
    for _ in 0..blocks {
        // The block's calls, encoded as a transaction carries them (not timed).
        let calls = (0..block_txs)
            .map(|_| {
                let from = holder[(rng.next() % holders) as usize];
                let to = holder[(rng.next() % holders) as usize];
                let args = encode_tuple(
                    &[Value::Address(to), Value::Int(Int::from(1u64))],
                    &transfer_types,
                    &t.code.table,
                )?;
                Ok((from, args))
            })
            .collect::<Result<Vec<_>>>()?;
        let start = Instant::now();
        for (from, args) in &calls {
            for r in t.run(TxKind::Normal, transfer, *from, *from, args)? {
                let RelayDest::Address(to) = r.to else {
                    bail!("the token relayed to {:?}", r.to);
                };
                let relays = t.run(TxKind::Relay, r.func, to, *from, &r.args)?;
                ensure!(relays.is_empty(), "a deposit relayed further");
            }
        }
        secs += start.elapsed().as_secs_f64();
    }
    let mut total = 0u128;
    for h in &holder {
        match t.balance(h)? {
            Value::Int(b) => total += u128::from(b.to_u64().ok_or_else(|| anyhow!("balance"))?),
            other => bail!("a balance of {other:?}"),
        }
    }
    ensure!(
        total == u128::from(START) * u128::from(holders),
        "the VM's balances do not add up"
    );
    Ok((block_txs as u64 * blocks) as f64 / secs)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_vm_side_moves_tokens_and_keeps_the_total() {
        let rate = super::run(50, 200, 3).unwrap();
        assert!(rate > 0.0);
    }
}
