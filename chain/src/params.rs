//! Chain parameters in one place, with presets per network.

use serde::{Deserialize, Serialize};

use crate::address::Address;
use crate::amount::Amount;
use crate::fee::GasPrice;
use crate::shard::ShardOrder;

/// Which rexe network a chain, transaction or address belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// The production network (merge-mined with Bitcoin mainnet). Not launched.
    Main,
    /// A public test network (merge-mined with testnet4/signet).
    Test,
    /// Local regression testing, next to a Bitcoin regtest node.
    Regtest,
    /// `rexe devnet`: regtest with demo allocations.
    Devnet,
}

impl Network {
    /// L2 blocks a wallet waits on top of a peg take before paying BTC against it (unless
    /// the take is already Bitcoin-anchored, which is final at once). A wallet default, not
    /// a consensus rule: main and test 30 blocks (5 minutes at 10 s), regtest and devnet 3.
    pub fn default_l2_confirmations(self) -> u64 {
        match self {
            Network::Main | Network::Test => 30,
            Network::Regtest | Network::Devnet => 3,
        }
    }

    /// The byte every transaction carries so it cannot be replayed on another network.
    pub fn magic(self) -> u8 {
        match self {
            Network::Main => 0xb1,
            Network::Test => 0x7e,
            Network::Regtest => 0x5a,
            Network::Devnet => 0xde,
        }
    }

    /// The network with this magic byte.
    pub fn from_magic(b: u8) -> Option<Network> {
        [
            Network::Main,
            Network::Test,
            Network::Regtest,
            Network::Devnet,
        ]
        .into_iter()
        .find(|n| n.magic() == b)
    }

    /// The bech32m prefix of addresses: `rx` on mainnet, `trx` elsewhere.
    pub fn address_hrp(self) -> &'static str {
        match self {
            Network::Main => "rx",
            _ => "trx",
        }
    }

    /// The network called `name` (the inverse of [`Network::name`]).
    pub fn from_name(name: &str) -> Option<Network> {
        [
            Network::Main,
            Network::Test,
            Network::Regtest,
            Network::Devnet,
        ]
        .into_iter()
        .find(|n| n.name() == name)
    }

    /// Lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Network::Main => "main",
            Network::Test => "test",
            Network::Regtest => "regtest",
            Network::Devnet => "devnet",
        }
    }
}

/// Where the genesis state comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GenesisAlloc {
    /// These accounts start with these balances.
    Accounts(Vec<(Address, Amount)>),
    /// `count` synthetic accounts `bench_address(i)` with `amount` each: for benchmarks,
    /// where listing millions of addresses would dominate memory.
    Synthetic {
        /// How many accounts.
        count: u64,
        /// Balance of each.
        amount: Amount,
    },
}

/// The address of synthetic account `i` (see [`GenesisAlloc::Synthetic`]). These are not
/// keys anyone holds; they only exist to give benchmarks large, realistic state.
pub fn bench_address(i: u64) -> Address {
    Address(crate::hash::tagged_hash("rexe/bench-account", &i.to_le_bytes()).0)
}

/// Every consensus parameter of a chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainParams {
    /// The network.
    pub network: Network,
    /// log2 of the shard count.
    pub shard_order: ShardOrder,
    /// Genesis block time (unix seconds).
    pub genesis_time: u64,
    /// Genesis balances.
    pub genesis_alloc: GenesisAlloc,
    /// Subsidy of the first blocks.
    pub initial_subsidy: Amount,
    /// Blocks between subsidy halvings.
    pub halving_interval: u64,
    /// Target seconds between blocks.
    pub block_interval_secs: u64,
    /// Easiest allowed target, compact form.
    pub pow_limit_bits: u32,
    /// Regtest-style fixed difficulty (every block uses `pow_limit_bits`); otherwise ASERT.
    pub fixed_difficulty: bool,
    /// ASERT half-life: seconds of schedule drift that double or halve the target.
    pub asert_halflife_secs: u64,
    /// How many recent blocks keep undo records (the deepest possible reorg).
    pub undo_depth: u64,
    /// Bitcoin confirmations the bridge requires before a peg payment counts.
    pub btc_confirmations: u32,
    /// Largest encoded transaction, in bytes.
    pub max_tx_bytes: usize,
    /// Most transactions per shard per block.
    pub max_txs_per_shard: usize,
    /// How far ahead of an account's nonce the mempool accepts transactions.
    pub max_nonce_gap: u64,
    /// Header time may be at most this far ahead of the local clock.
    pub max_future_secs: u64,
    /// Most gas one contract transaction may buy (bounds the work of one relay tree).
    pub max_tx_gas: u64,
    /// Most relays one contract micro-transaction may emit (bounds its memory).
    pub max_relays_per_call: u32,
    /// Lowest base fee a shard may charge (and each shard's base fee at genesis).
    pub min_base_fee: GasPrice,
    /// The base fee changes by at most 1/this per block (EIP-1559: 8).
    pub base_fee_change_denominator: u64,
    /// Most gas one shard's block may use: inbound relays' gas plus its transactions'
    /// gas used (each transaction needs its whole `gas_limit` free when it starts). The base
    /// fee targets half of it.
    pub block_gas_per_shard: u64,
    /// Most bytes of transactions in one shard's block.
    pub block_bytes_per_shard: usize,
    /// Most relays one shard's transactions (and payouts) may emit in one block.
    pub block_relays_per_shard: usize,
    /// Most gas the global lane runs per block (system calls count
    /// [`crate::lang::gas::RELAY_GLOBAL`] each); calls beyond it wait for the next block.
    pub block_gas_global: u64,
}

impl ChainParams {
    /// Subsidy of the block at `height` (halving every `halving_interval`, zero after 63).
    pub fn subsidy(&self, height: u64) -> Amount {
        if height == 0 {
            return Amount::ZERO;
        }
        let halvings = (height - 1) / self.halving_interval.max(1);
        if halvings >= 64 {
            return Amount::ZERO;
        }
        Amount::from_sat(self.initial_subsidy.to_sat() >> halvings)
    }

    fn base(network: Network) -> ChainParams {
        ChainParams {
            network,
            shard_order: ShardOrder::new(2).expect("valid"),
            genesis_time: 1_764_000_000,
            genesis_alloc: GenesisAlloc::Accounts(Vec::new()),
            initial_subsidy: Amount::from_sat(50_000_000),
            halving_interval: 2_100_000,
            block_interval_secs: 10,
            pow_limit_bits: 0x1d00_ffff,
            fixed_difficulty: false,
            asert_halflife_secs: 3600,
            undo_depth: 200,
            btc_confirmations: 6,
            max_tx_bytes: 100_000,
            max_txs_per_shard: 50_000,
            max_nonce_gap: 64,
            max_future_secs: 2 * 60 * 60,
            max_tx_gas: 5_000_000,
            max_relays_per_call: crate::lang::vm::MAX_RELAYS as u32,
            min_base_fee: GasPrice::from_msat(10),
            base_fee_change_denominator: 8,
            block_gas_per_shard: 1_000_000_000,
            block_bytes_per_shard: 8_000_000,
            block_relays_per_shard: 60_000,
            block_gas_global: 500_000_000,
        }
    }

    /// Mainnet (not launched; the values are a proposal).
    pub fn main() -> ChainParams {
        ChainParams::base(Network::Main)
    }

    /// Public test network.
    pub fn test() -> ChainParams {
        ChainParams {
            pow_limit_bits: 0x1e0f_ffff,
            ..ChainParams::base(Network::Test)
        }
    }

    /// Regtest: trivial fixed difficulty, quick confirmations.
    pub fn regtest() -> ChainParams {
        ChainParams {
            pow_limit_bits: 0x207f_ffff,
            fixed_difficulty: true,
            halving_interval: 150,
            btc_confirmations: 1,
            block_interval_secs: 1,
            min_base_fee: GasPrice::from_msat(1),
            ..ChainParams::base(Network::Regtest)
        }
    }

    /// Devnet: regtest rules plus the demo allocations.
    pub fn devnet(alloc: Vec<(Address, Amount)>) -> ChainParams {
        ChainParams {
            network: Network::Devnet,
            genesis_alloc: GenesisAlloc::Accounts(alloc),
            halving_interval: 100_000,
            btc_confirmations: 2,
            ..ChainParams::regtest()
        }
    }

    /// `rexe devnet`'s chain: [`ChainParams::devnet`] funding the demo users Alice and Bob
    /// (10 rxBTC each) and the operator (1 rxBTC, for the agents' fees). Their keys come from
    /// public seeds (the binary's `devnet` module derives them and checks these addresses).
    pub fn devnet_preset() -> ChainParams {
        let btc = Amount::ONE_BTC.to_sat();
        ChainParams::devnet(vec![
            (Address(DEVNET_ALICE), Amount::from_sat(10 * btc)),
            (Address(DEVNET_BOB), Amount::from_sat(10 * btc)),
            (Address(DEVNET_OPERATOR), Amount::ONE_BTC),
        ])
    }

    /// Tests: regtest rules with `2^order` shards and the given allocations.
    pub fn for_tests(order: u8, alloc: Vec<(Address, Amount)>) -> ChainParams {
        ChainParams {
            shard_order: ShardOrder::new(order).expect("test order <= 8"),
            genesis_alloc: GenesisAlloc::Accounts(alloc),
            undo_depth: 20,
            ..ChainParams::regtest()
        }
    }
}

/// Devnet demo user Alice's L2 address (key from the words of `sha256("rexe devnet alice")`).
const DEVNET_ALICE: [u8; 32] = [
    203, 88, 147, 252, 131, 152, 181, 228, 137, 83, 17, 150, 97, 206, 159, 182, 116, 43, 130, 55,
    70, 54, 219, 43, 124, 83, 9, 131, 127, 193, 14, 155,
];
/// Devnet demo user Bob's L2 address.
const DEVNET_BOB: [u8; 32] = [
    38, 62, 66, 111, 160, 28, 7, 180, 210, 158, 186, 253, 114, 115, 62, 56, 100, 173, 66, 48, 59,
    178, 121, 11, 170, 249, 210, 17, 129, 226, 58, 238,
];
/// The devnet operator's L2 address (key `Signer::from_seed(b"rexe devnet miner")`).
const DEVNET_OPERATOR: [u8; 32] = [
    205, 14, 21, 204, 128, 239, 34, 129, 156, 201, 145, 223, 108, 79, 150, 51, 237, 252, 118, 163,
    188, 159, 123, 28, 115, 41, 113, 240, 242, 212, 157, 242,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsidy_halves() {
        let p = ChainParams::regtest();
        assert_eq!(p.subsidy(0), Amount::ZERO);
        assert_eq!(p.subsidy(1), p.initial_subsidy);
        assert_eq!(p.subsidy(150), p.initial_subsidy);
        assert_eq!(p.subsidy(151).to_sat(), p.initial_subsidy.to_sat() / 2);
        assert_eq!(p.subsidy(150 * 70), Amount::ZERO);
    }

    #[test]
    fn network_names_roundtrip() {
        for n in [
            Network::Main,
            Network::Test,
            Network::Regtest,
            Network::Devnet,
        ] {
            assert_eq!(Network::from_name(n.name()), Some(n));
        }
        assert_eq!(Network::from_name("mainnet"), None);
    }

    #[test]
    fn magic_roundtrips() {
        for n in [
            Network::Main,
            Network::Test,
            Network::Regtest,
            Network::Devnet,
        ] {
            assert_eq!(Network::from_magic(n.magic()), Some(n));
        }
        assert_eq!(Network::from_magic(0), None);
    }
}
