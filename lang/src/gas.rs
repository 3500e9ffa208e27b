//! The gas table. Relay costs follow PREDA's published model; the rest is rexe's own.
//! Every cost is charged before the work it pays for is kept, so running out of gas at any
//! instruction aborts the micro-transaction with none of its writes or relays.

/// Intrinsic cost of a transaction that calls or deploys a contract.
pub const TX_BASE: u64 = 20_000;
/// Per byte of call arguments or deployed source in a transaction.
pub const TX_BYTE: u64 = 16;
/// Per byte of source compiled at deployment.
pub const DEPLOY_BYTE: u64 = 50;
/// `deploy A(…)`: a new contract (its registry entry), besides what its `on_deploy` costs.
pub const DEPLOY_CONTRACT: u64 = 32_000;
/// Charged to the emitter per relay to an address, an integer key, or `relay@next`.
pub const RELAY: u64 = 8_000;
/// Charged per shard for `relay@shards`.
pub const RELAY_PER_SHARD: u64 = 8_000;
/// Charged for `relay@global`.
pub const RELAY_GLOBAL: u64 = 50_000;
/// Per byte of relay arguments.
pub const RELAY_BYTE: u64 = 4;

/// Most instructions.
pub const STEP: u64 = 1;
/// A function call.
pub const CALL: u64 = 10;
/// A call into another contract (on top of [`CALL`]'s work: finding the contract, checking
/// the function and the arguments' types).
pub const CALL_EXT: u64 = 200;
/// Per 64-bit word of the larger operand of `+ - < ==`, per word product for `* / %`.
pub const WORD: u64 = 1;
/// Per node of a value copied, created or compared (arrays, maps, structs, long strings).
pub const NODE: u64 = 4;
/// A context function.
pub const CONTEXT: u64 = 5;
/// A conversion.
pub const CONVERT: u64 = 10;
/// A `__debug.print`, plus [`NODE`] per value node printed.
pub const PRINT: u64 = 20;

/// Loading one state row (a contract's state of one scope for one target).
pub const READ_ROW: u64 = 100;
/// Per byte of a state row loaded.
pub const READ_BYTE: u64 = 1;
/// Writing one changed state row.
pub const WRITE_ROW: u64 = 300;
/// Per byte of a state row written.
pub const WRITE_BYTE: u64 = 10;
/// Writing one changed global state variable, plus [`NODE`] per node of its new value.
pub const WRITE_GLOBAL_VAR: u64 = 300;
/// `__mint` or `__burn` (the chain writes the asset's issued amount).
pub const MINT: u64 = 2_000;
