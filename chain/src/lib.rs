//! rexe's L2 chain: types and their canonical encoding, blocks, sharded SQLite state with a
//! write-back cache and undo records, the parallel executor with relays, the mempool, and
//! the consensus rules that tie them together.
//!
//! The crate is pure consensus plus storage: no network, no clock (time comes in as an
//! argument) and no dependency on the miner or bridge crates (they plug in through traits
//! such as [`seal::Sealer`]).

pub mod address;
/// Hash maps keyed by attacker-influenced data use foldhash with a per-process random seed:
/// fast, and still not predictable enough to flood one bucket.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub mod amount;
pub mod asset;
pub mod block;
pub mod bootstrap;
pub mod chain;
pub mod contract;
pub mod difficulty;
mod dropper;
/// The canonical binary encoding (the `rexe-encode` crate).
pub use rexe_encode as encode;
pub mod exec;
pub mod fee;
pub mod global;
pub mod hash;
/// The contract language (the `rexe-lang` crate).
pub use rexe_lang as lang;
pub mod lthash;
pub mod mempool;
pub mod outbox;
pub mod params;
pub mod partial;
pub mod proof;
pub mod relay;
pub mod seal;
pub mod shard;
pub mod store;
pub mod sync;
pub mod system;
pub mod tx;

pub use address::{shard_of, Address, Signer};
pub use amount::Amount;
pub use block::{Block, Header};
pub use chain::{
    AdmissionError, AssetReport, BlockError, Chain, ChainConfig, ChainError, SubmitOutcome,
    TxStatus,
};
pub use hash::{BlockHash, Hash256, Txid};
pub use params::{ChainParams, Network};
pub use shard::{ShardId, ShardOrder};
pub use tx::{Payload, SignedTx, Tx, VerifiedTx};
