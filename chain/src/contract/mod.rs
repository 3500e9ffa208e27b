//! User contracts on the chain (DESIGN.md, "Contracts"): PREDA-subset code compiled by every
//! node ([`crate::lang`]), state split by scope and stored in the shard stores, and relays
//! that carry calls (and gas) between shards and the global lane.
//!
//! A contract is deployed by a transaction with a `Deploy` payload: the source travels to the
//! global lane, where every node compiles it, runs `on_deploy` and registers the contract at
//! [`contract_address`]`(deployer, nonce)` in the [`ContractsSystem`] (a system contract, so
//! its registry and the contracts' `@global` state are snapshotted, committed in `state_root`
//! and restored on reorgs). Shards see contracts and global state as they were after the
//! previous block.
//!
//! Each `@shard`, `@address` and `@uintN` state instance is one row of the owning shard's
//! store (key: contract, scope, target), plus one row per element or entry of its top-level
//! arrays and maps ([`elems`], [`crate::lang::layout`]), so undo records, checkpoints, crash recovery and the
//! LtHash commitment cover contract state exactly as they cover accounts.

pub mod abi;
mod call;
pub mod elems;
mod receipt;
mod registry;
mod run;
mod target;

pub use call::{fund_children, ContractCall, Deployment};
pub use receipt::{AssetMove, ContractEvent, ContractReceipt, ReceiptKind, ValueFlow};
pub use registry::{ContractsSystem, Deployed, MintRight};
pub use run::{
    credit_assets, held_amount, held_key, intrinsic_gas, run_on_lane, run_on_shard,
    start_transaction, Rows, StepResult,
};
pub use target::{contract_address, parse_state_key, state_key, Target};
