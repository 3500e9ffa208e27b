//! The payloads of contract relays: a call of one function on one target carrying its gas,
//! and a deployment on its way to the global lane.

use serde::Serialize;

use super::target::Target;
use crate::address::Address;
use crate::amount::Amount;
use crate::asset::Assets;
use crate::encode::{Decode, DecodeError, Encode, Reader};
use crate::fee::GasEscrow;
use crate::hash::{Hash256, Txid};

/// A micro-transaction in flight: run `func` of `contract` on `target` with `gas`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ContractCall {
    /// The transaction that started the chain of relays.
    pub txid: Txid,
    /// The contract.
    pub contract: Address,
    /// Function index in its module.
    pub func: u16,
    /// Where it runs.
    pub target: Target,
    /// Canonically encoded arguments.
    #[serde(skip)]
    pub args: Vec<u8>,
    /// Gas it carries.
    pub gas: u64,
    /// The originating transaction's signer.
    pub sender: Address,
    /// Time of the block that included the originating transaction.
    pub tx_time: u64,
    /// `relay@next`: runs in the next block even on its own shard.
    pub deferred: bool,
    /// The transaction's own call of a global function, forwarded to the global lane
    /// (`__transaction.get_type()` is `normal_type` there).
    pub direct: bool,
    /// What its gas was bought at and the rxBTC escrowed for it (settled where it runs).
    pub fee: GasEscrow,
    /// rxBTC it carries: the value a transaction attached (`direct`), or the tokens among
    /// the arguments of a relay. Returned to the sender (`direct`) or the target address if
    /// the call fails.
    pub value: Amount,
    /// Other assets it carries, as `value` does rxBTC.
    #[serde(skip_serializing_if = "Assets::is_empty")]
    pub assets: Assets,
}

/// A deployment on its way to the global lane.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Deployment {
    /// The deploying transaction.
    pub txid: Txid,
    /// Its sender.
    pub deployer: Address,
    /// Its nonce (with the deployer, it fixes the contract's address).
    pub nonce: u64,
    /// PREDA source, compiled by every node.
    #[serde(skip)]
    pub source: String,
    /// Encoded `on_deploy` arguments.
    #[serde(skip)]
    pub args: Vec<u8>,
    /// Gas for compiling and `on_deploy`.
    pub gas: u64,
    /// Time of the block that included the transaction.
    pub tx_time: u64,
    /// What its gas was bought at and the rxBTC escrowed for it (settled on the lane).
    pub fee: GasEscrow,
}

/// Gives each relay a call emitted its share of `parent`'s gas escrow (`floor(gas × price)`
/// each, emitted at `height`); returns the total handed on.
pub fn fund_children(
    children: &mut [(crate::shard::ShardId, ContractCall)],
    parent: &GasEscrow,
    height: u64,
) -> crate::amount::Amount {
    let mut sum = crate::amount::Amount::ZERO;
    for (_, c) in children.iter_mut() {
        c.fee = parent.child(c.gas, height);
        sum = sum
            .checked_add(c.fee.escrow)
            .unwrap_or(crate::amount::Amount::MAX_MONEY);
    }
    sum
}

impl Encode for ContractCall {
    fn encode(&self, out: &mut Vec<u8>) {
        self.txid.0 .0.encode(out);
        self.contract.0.encode(out);
        self.func.encode(out);
        self.target.encode(out);
        self.args.encode(out);
        self.gas.encode(out);
        self.sender.0.encode(out);
        self.tx_time.encode(out);
        let carries = !self.value.is_zero();
        let assets = !self.assets.is_empty();
        out.push(
            self.deferred as u8
                | (self.direct as u8) << 1
                | (carries as u8) << 2
                | (assets as u8) << 3,
        );
        self.fee.encode(out);
        if carries {
            self.value.to_sat().encode(out);
        }
        if assets {
            self.assets.encode(out);
        }
    }
}

impl Decode for ContractCall {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ContractCall {
            txid: Txid(Hash256(r.array()?)),
            contract: Address(r.array()?),
            func: u16::decode(r)?,
            target: Target::decode(r)?,
            args: Vec::<u8>::decode(r)?,
            gas: u64::decode(r)?,
            sender: Address(r.array()?),
            tx_time: u64::decode(r)?,
            deferred: false,
            direct: false,
            fee: GasEscrow::default(),
            value: Amount::ZERO,
            assets: Assets::new(),
        })
        .and_then(|mut c| {
            let flags = u8::decode(r)?;
            if flags > 15 {
                return Err(DecodeError::Invalid("call flags"));
            }
            c.deferred = flags & 1 != 0;
            c.direct = flags & 2 != 0;
            c.fee = GasEscrow::decode(r)?;
            if flags & 4 != 0 {
                c.value = Amount::from_sat(u64::decode(r)?);
                if c.value.is_zero() {
                    return Err(DecodeError::Invalid(
                        "a call flagged as carrying zero value",
                    ));
                }
            }
            if flags & 8 != 0 {
                c.assets = Assets::decode(r)?;
                if c.assets.is_empty() {
                    return Err(DecodeError::Invalid("a call flagged as carrying no assets"));
                }
            }
            Ok(c)
        })
    }
}

impl Encode for Deployment {
    fn encode(&self, out: &mut Vec<u8>) {
        self.txid.0 .0.encode(out);
        self.deployer.0.encode(out);
        self.nonce.encode(out);
        self.source.as_bytes().to_vec().encode(out);
        self.args.encode(out);
        self.gas.encode(out);
        self.tx_time.encode(out);
        self.fee.encode(out);
    }
}

impl Decode for Deployment {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Deployment {
            txid: Txid(Hash256(r.array()?)),
            deployer: Address(r.array()?),
            nonce: u64::decode(r)?,
            source: String::from_utf8(Vec::<u8>::decode(r)?)
                .map_err(|_| DecodeError::Invalid("source is not UTF-8"))?,
            args: Vec::<u8>::decode(r)?,
            gas: u64::decode(r)?,
            tx_time: u64::decode(r)?,
            fee: GasEscrow::decode(r)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asset::AssetId;

    fn call(value: u64, assets: Assets) -> ContractCall {
        ContractCall {
            txid: Txid(Hash256([1; 32])),
            contract: Address([2; 32]),
            func: 3,
            target: Target::Address(Address([4; 32])),
            args: vec![5, 6],
            gas: 7,
            sender: Address([8; 32]),
            tx_time: 9,
            deferred: false,
            direct: true,
            fee: GasEscrow::default(),
            value: Amount::from_sat(value),
            assets,
        }
    }

    #[test]
    fn calls_carrying_assets_roundtrip_and_have_one_encoding() {
        let btc = AssetId::from_symbol("BTC").unwrap();
        let gold = AssetId::from_symbol("GOLD").unwrap();
        let assets = Assets::from_pairs(vec![(gold, 2), (btc, 1)]).unwrap();
        for c in [
            call(0, Assets::new()),
            call(5, Assets::new()),
            call(0, assets.clone()),
            call(5, assets.clone()),
        ] {
            let b = c.to_bytes();
            assert_eq!(ContractCall::from_bytes(&b).unwrap(), c);
            for n in 0..b.len() {
                assert!(ContractCall::from_bytes(&b[..n]).is_err());
            }
        }
        // The flag byte follows the sender and time: flag 8 with no assets, and unknown
        // flags, do not decode.
        let plain = call(0, Assets::new()).to_bytes();
        let at = 32 + 32 + 2 + 1 + 32 + 1 + 2 + 8 + 32 + 8;
        assert_eq!(plain[at], 2);
        for (flag, tail) in [(2 | 8, vec![0u8]), (16, vec![])] {
            let mut b = plain.clone();
            b[at] = flag;
            b.extend_from_slice(&tail);
            assert!(ContractCall::from_bytes(&b).is_err(), "{flag}");
        }
    }
}
