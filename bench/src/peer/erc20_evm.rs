//! A minimal ERC20 for the EVM peer of `rexe bench peer`, assembled by hand (no Solidity
//! compiler here): `transfer(address,uint256)` and `balanceOf(address)` over the
//! balances mapping at slot 0, with the checks Solidity 0.8 emits for them (no value sent,
//! calldata long enough, a clean address, balance and overflow checks), the `Transfer`
//! event and the `true` return.

use std::collections::HashMap;

/// `transfer(address,uint256)`.
pub(crate) const TRANSFER: [u8; 4] = [0xa9, 0x05, 0x9c, 0xbb];
/// `balanceOf(address)`.
pub(crate) const BALANCE_OF: [u8; 4] = [0x70, 0xa0, 0x82, 0x31];
/// `keccak256("Transfer(address,address,uint256)")`.
const TRANSFER_EVENT: [u8; 32] = [
    0xdd, 0xf2, 0x52, 0xad, 0x1b, 0xe2, 0xc8, 0x9b, 0x69, 0xc2, 0xb0, 0x68, 0xfc, 0x37, 0x8d, 0xaa,
    0x95, 0x2b, 0xa7, 0xf1, 0x63, 0xc4, 0xa1, 0x16, 0x28, 0xf5, 0x5a, 0x4d, 0xf5, 0x23, 0xb3, 0xef,
];

mod op {
    pub const STOP: u8 = 0x00;
    pub const ADD: u8 = 0x01;
    pub const SUB: u8 = 0x03;
    pub const LT: u8 = 0x10;
    pub const GT: u8 = 0x11;
    pub const EQ: u8 = 0x14;
    pub const SHR: u8 = 0x1c;
    pub const SHA3: u8 = 0x20;
    pub const CALLER: u8 = 0x33;
    pub const CALLVALUE: u8 = 0x34;
    pub const CALLDATALOAD: u8 = 0x35;
    pub const CALLDATASIZE: u8 = 0x36;
    pub const POP: u8 = 0x50;
    pub const MSTORE: u8 = 0x52;
    pub const SLOAD: u8 = 0x54;
    pub const SSTORE: u8 = 0x55;
    pub const JUMPI: u8 = 0x57;
    pub const JUMPDEST: u8 = 0x5b;
    pub const PUSH1: u8 = 0x60;
    pub const PUSH2: u8 = 0x61;
    pub const PUSH4: u8 = 0x63;
    pub const PUSH32: u8 = 0x7f;
    pub const DUP1: u8 = 0x80;
    pub const DUP2: u8 = 0x81;
    pub const DUP3: u8 = 0x82;
    pub const DUP4: u8 = 0x83;
    pub const SWAP1: u8 = 0x90;
    pub const LOG3: u8 = 0xa3;
    pub const RETURN: u8 = 0xf3;
    pub const REVERT: u8 = 0xfd;
}

/// Bytes with named jump targets, resolved by [`Asm::finish`].
#[derive(Default)]
struct Asm {
    code: Vec<u8>,
    labels: HashMap<&'static str, u16>,
    fixups: Vec<(usize, &'static str)>,
}

impl Asm {
    fn ops(&mut self, ops: &[u8]) -> &mut Self {
        self.code.extend_from_slice(ops);
        self
    }
    fn push1(&mut self, v: u8) -> &mut Self {
        self.ops(&[op::PUSH1, v])
    }
    /// `PUSH2 <label>`.
    fn target(&mut self, label: &'static str) -> &mut Self {
        self.code.push(op::PUSH2);
        self.fixups.push((self.code.len(), label));
        self.ops(&[0, 0])
    }
    /// A `JUMPDEST` named `label`.
    fn label(&mut self, label: &'static str) -> &mut Self {
        let at = u16::try_from(self.code.len()).expect("small program");
        self.labels.insert(label, at);
        self.ops(&[op::JUMPDEST])
    }
    fn finish(mut self) -> Vec<u8> {
        for (at, label) in std::mem::take(&mut self.fixups) {
            let to = self.labels[label].to_be_bytes();
            self.code[at..at + 2].copy_from_slice(&to);
        }
        self.code
    }
}

/// The runtime code. Stack comments: bottom … top.
pub(crate) fn erc20_runtime() -> Vec<u8> {
    use op::*;
    let mut a = Asm::default();
    // Non-payable: revert on any value.
    a.ops(&[CALLVALUE]).target("revert").ops(&[JUMPI]);
    // selector = calldata[0..4]
    a.push1(0).ops(&[CALLDATALOAD]).push1(0xe0).ops(&[SHR]);
    a.ops(&[DUP1, PUSH4]).ops(&TRANSFER).ops(&[EQ]);
    a.target("transfer").ops(&[JUMPI]);
    a.ops(&[DUP1, PUSH4]).ops(&BALANCE_OF).ops(&[EQ]);
    a.target("balance_of").ops(&[JUMPI]);
    a.label("revert").push1(0).ops(&[DUP1, REVERT]);

    a.label("transfer").ops(&[POP]);
    // Calldata holds two words after the selector.
    a.push1(0x44)
        .ops(&[CALLDATASIZE, LT])
        .target("revert")
        .ops(&[JUMPI]);
    // [to], a clean 160-bit address.
    a.push1(0x04).ops(&[CALLDATALOAD]);
    a.ops(&[DUP1])
        .push1(0xa0)
        .ops(&[SHR])
        .target("revert")
        .ops(&[JUMPI]);
    // [to, amount]
    a.push1(0x24).ops(&[CALLDATALOAD]);
    // [to, amount, slot(caller)]: keccak256(caller . 0)
    a.ops(&[CALLER]).push1(0).ops(&[MSTORE]);
    a.push1(0).push1(0x20).ops(&[MSTORE]);
    a.push1(0x40).push1(0).ops(&[SHA3]);
    // [to, amount, slot, balance]; revert if amount > balance.
    a.ops(&[DUP1, SLOAD, DUP1, DUP4, GT])
        .target("revert")
        .ops(&[JUMPI]);
    // balance - amount, stored.
    a.ops(&[DUP3, SWAP1, SUB, SWAP1, SSTORE]);
    // [to, amount, slot(to)]
    a.ops(&[DUP2]).push1(0).ops(&[MSTORE]);
    a.push1(0x40).push1(0).ops(&[SHA3]);
    // [to, amount, slot, balance + amount]; revert on overflow (sum < amount).
    a.ops(&[DUP1, SLOAD, DUP3, ADD, DUP1, DUP4, GT])
        .target("revert")
        .ops(&[JUMPI]);
    a.ops(&[SWAP1, SSTORE]);
    // Transfer(caller, to, amount): data = amount.
    a.push1(0).ops(&[MSTORE]);
    a.ops(&[CALLER, PUSH32]).ops(&TRANSFER_EVENT);
    a.push1(0x20).push1(0).ops(&[LOG3]);
    // return true
    a.push1(1).push1(0).ops(&[MSTORE]);
    a.push1(0x20).push1(0).ops(&[RETURN]);

    a.label("balance_of").ops(&[POP]);
    a.push1(0x24)
        .ops(&[CALLDATASIZE, LT])
        .target("revert")
        .ops(&[JUMPI]);
    a.push1(0x04).ops(&[CALLDATALOAD]).push1(0).ops(&[MSTORE]);
    a.push1(0).push1(0x20).ops(&[MSTORE]);
    a.push1(0x40).push1(0).ops(&[SHA3, SLOAD]);
    a.push1(0).ops(&[MSTORE]);
    a.push1(0x20).push1(0).ops(&[RETURN, STOP]);
    a.finish()
}
