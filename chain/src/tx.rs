//! Transactions: `{network, from, nonce, max_fee, max_tip, gas_limit, expiry_height,
//! payload}` signed by
//! `from` with BIP340 over the tagged hash `rexe/tx` of the unsigned encoding (the txid).

use serde::Serialize;
use thiserror::Error;

use crate::address::{verify_signature, Address, Signer};
use crate::amount::Amount;
use crate::asset::Assets;
use crate::encode::{Decode, DecodeError, Encode, Reader};
use crate::fee::GasPrice;
use crate::hash::{tagged_hash, Hash256, Txid};
use crate::params::{ChainParams, Network};
use crate::system::SystemId;

/// What a transaction does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Payload {
    /// Move rxBTC: withdrawn on the sender's shard, deposited on the payee's by a relay.
    Transfer {
        /// The payee.
        to: Address,
        /// How much.
        amount: Amount,
    },
    /// Call a native system contract on the global lane (see [`crate::system`]): `value`
    /// is withdrawn on the sender's shard and handed to the contract with `data`.
    Call {
        /// The contract.
        contract: SystemId,
        /// rxBTC attached (escrow, bond); refunded if the call fails.
        value: Amount,
        /// Contract-defined arguments.
        #[serde(with = "hex_bytes")]
        data: Vec<u8>,
    },
    /// Deploy a contract: the PREDA source is compiled by every node on the global lane and
    /// `on_deploy` runs with `args`; the address is
    /// [`crate::contract::contract_address`]`(from, nonce)`.
    Deploy {
        /// PREDA source.
        source: String,
        /// `on_deploy` arguments, canonically encoded.
        #[serde(with = "hex_bytes")]
        args: Vec<u8>,
    },
    /// Call an exported contract function: `@address` functions run on the sender's own
    /// state, `@shard` functions on the sender's shard, `@global` ones on the global lane.
    ContractCall {
        /// The contract.
        contract: Address,
        /// Function name.
        function: String,
        /// Arguments, canonically encoded (see [`crate::lang::value`]).
        #[serde(with = "hex_bytes")]
        args: Vec<u8>,
        /// rxBTC attached: withdrawn on the sender's shard, handed to the call as a token
        /// (`__transaction.get_supplied_tokens()`), returned to the sender if the call fails.
        value: Amount,
        /// Other assets attached, from the sender's asset wallets (see [`crate::asset`]):
        /// handed to the call after rxBTC, returned to the sender if the call fails.
        #[serde(skip_serializing_if = "Assets::is_empty")]
        assets: Assets,
    },
}

/// Gas a transfer uses (its intrinsic gas: [`crate::lang::gas::TX_BASE`] plus
/// [`crate::lang::gas::TX_BYTE`] per payload byte).
pub const TRANSFER_GAS: u64 = crate::lang::gas::TX_BASE + crate::lang::gas::TX_BYTE * 40;

/// Longest function name a call may carry.
pub const MAX_FUNCTION_NAME: usize = 255;

mod hex_bytes {
    use bitcoin::hex::DisplayHex;

    pub fn serialize<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&b.to_lower_hex_string())
    }
}

const PAYLOAD_TRANSFER: u8 = 0;
const PAYLOAD_CALL: u8 = 1;
const PAYLOAD_DEPLOY: u8 = 2;
const PAYLOAD_CONTRACT_CALL: u8 = 3;
/// A contract call with rxBTC attached (the value follows the arguments; never zero, so
/// each call has one encoding).
const PAYLOAD_CONTRACT_CALL_VALUE: u8 = 4;
/// A contract call with other assets attached (and rxBTC, possibly zero): the value, then
/// the assets (at least one, at most [`crate::asset::MAX_ATTACHED`]) after the arguments.
const PAYLOAD_CONTRACT_CALL_ASSETS: u8 = 5;

impl Encode for Payload {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Payload::Transfer { to, amount } => {
                out.push(PAYLOAD_TRANSFER);
                to.0.encode(out);
                amount.to_sat().encode(out);
            }
            Payload::Call {
                contract,
                value,
                data,
            } => {
                out.push(PAYLOAD_CALL);
                out.push(contract.0);
                value.to_sat().encode(out);
                data.encode(out);
            }
            Payload::Deploy { source, args } => {
                out.push(PAYLOAD_DEPLOY);
                crate::encode::write_compact_size(out, source.len() as u64);
                out.extend_from_slice(source.as_bytes());
                args.encode(out);
            }
            Payload::ContractCall {
                contract,
                function,
                args,
                value,
                assets,
            } => {
                out.push(if !assets.is_empty() {
                    PAYLOAD_CONTRACT_CALL_ASSETS
                } else if value.is_zero() {
                    PAYLOAD_CONTRACT_CALL
                } else {
                    PAYLOAD_CONTRACT_CALL_VALUE
                });
                contract.0.encode(out);
                crate::encode::write_compact_size(out, function.len() as u64);
                out.extend_from_slice(function.as_bytes());
                args.encode(out);
                if !value.is_zero() || !assets.is_empty() {
                    value.to_sat().encode(out);
                }
                if !assets.is_empty() {
                    assets.encode(out);
                }
            }
        }
    }
}

fn decode_string(r: &mut Reader<'_>, what: &'static str) -> Result<String, DecodeError> {
    String::from_utf8(Vec::<u8>::decode(r)?).map_err(|_| DecodeError::Invalid(what))
}

impl Decode for Payload {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match u8::decode(r)? {
            PAYLOAD_TRANSFER => Ok(Payload::Transfer {
                to: Address(r.array()?),
                amount: Amount::from_sat(u64::decode(r)?),
            }),
            PAYLOAD_CALL => Ok(Payload::Call {
                contract: SystemId(u8::decode(r)?),
                value: Amount::from_sat(u64::decode(r)?),
                data: Vec::<u8>::decode(r)?,
            }),
            PAYLOAD_DEPLOY => Ok(Payload::Deploy {
                source: decode_string(r, "contract source (not UTF-8)")?,
                args: Vec::<u8>::decode(r)?,
            }),
            tag @ (PAYLOAD_CONTRACT_CALL
            | PAYLOAD_CONTRACT_CALL_VALUE
            | PAYLOAD_CONTRACT_CALL_ASSETS) => {
                let contract = Address(r.array()?);
                let function = decode_string(r, "function name (not UTF-8)")?;
                let args = Vec::<u8>::decode(r)?;
                let value = if tag == PAYLOAD_CONTRACT_CALL {
                    Amount::ZERO
                } else {
                    Amount::from_sat(u64::decode(r)?)
                };
                if tag == PAYLOAD_CONTRACT_CALL_VALUE && value.is_zero() {
                    return Err(DecodeError::Invalid("a contract call attaching zero value"));
                }
                let assets = if tag == PAYLOAD_CONTRACT_CALL_ASSETS {
                    let a = Assets::decode(r)?;
                    if a.is_empty() || a.len() > crate::asset::MAX_ATTACHED {
                        return Err(DecodeError::Invalid(
                            "a contract call attaching no assets or too many",
                        ));
                    }
                    a
                } else {
                    Assets::new()
                };
                Ok(Payload::ContractCall {
                    contract,
                    function,
                    args,
                    value,
                    assets,
                })
            }
            tag => Err(DecodeError::UnknownTag {
                what: "payload",
                tag,
            }),
        }
    }
}

/// An unsigned transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Tx {
    /// Network it is valid on.
    pub network: Network,
    /// The sender (and signer); the transaction runs on its shard.
    pub from: Address,
    /// The sender's account nonce this transaction consumes.
    pub nonce: u64,
    /// Most the sender pays per gas, base fee and tip together (see [`crate::fee`]).
    pub max_fee: GasPrice,
    /// Most tip per gas the sender pays the miner on top of the base fee.
    pub max_tip: GasPrice,
    /// Gas the sender buys: at least the payload's intrinsic gas, at most `max_tx_gas`;
    /// what it does not use is refunded.
    pub gas_limit: u64,
    /// Last L2 height at which this transaction may be included.
    pub expiry_height: u64,
    /// What it does.
    pub payload: Payload,
}

impl Encode for Tx {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.network.magic());
        self.from.0.encode(out);
        self.nonce.encode(out);
        self.max_fee.to_msat().encode(out);
        self.max_tip.to_msat().encode(out);
        self.gas_limit.encode(out);
        self.expiry_height.encode(out);
        self.payload.encode(out);
    }
}

impl Decode for Tx {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let magic = u8::decode(r)?;
        let network = Network::from_magic(magic).ok_or(DecodeError::UnknownTag {
            what: "network",
            tag: magic,
        })?;
        Ok(Tx {
            network,
            from: Address(r.array()?),
            nonce: u64::decode(r)?,
            max_fee: GasPrice::from_msat(u64::decode(r)?),
            max_tip: GasPrice::from_msat(u64::decode(r)?),
            gas_limit: u64::decode(r)?,
            expiry_height: u64::decode(r)?,
            payload: Payload::decode(r)?,
        })
    }
}

impl Tx {
    /// The transaction id (and the digest its signature signs).
    pub fn txid(&self) -> Txid {
        Txid(tagged_hash("rexe/tx", &self.to_bytes()))
    }

    /// Signs with `signer`, which must be `from`'s key for the result to verify.
    pub fn sign(self, signer: &Signer) -> SignedTx {
        let txid = self.txid();
        let sig = signer.sign(&txid.0);
        SignedTx::with_txid(self, sig, txid)
    }

    /// Length of [`Encode::encode`]'s output, without encoding.
    pub fn encoded_len(&self) -> usize {
        let payload = match &self.payload {
            Payload::Transfer { .. } => 1 + 32 + 8,
            Payload::Call { data, .. } => {
                1 + 1 + 8 + crate::encode::compact_size_len(data.len() as u64) + data.len()
            }
            Payload::Deploy { source, args } => {
                1 + crate::encode::compact_size_len(source.len() as u64)
                    + source.len()
                    + crate::encode::compact_size_len(args.len() as u64)
                    + args.len()
            }
            Payload::ContractCall {
                function,
                args,
                value,
                assets,
                ..
            } => {
                1 + 32
                    + crate::encode::compact_size_len(function.len() as u64)
                    + function.len()
                    + crate::encode::compact_size_len(args.len() as u64)
                    + args.len()
                    + if value.is_zero() && assets.is_empty() {
                        0
                    } else {
                        8
                    }
                    + if assets.is_empty() {
                        0
                    } else {
                        crate::encode::compact_size_len(assets.len() as u64) + 16 * assets.len()
                    }
            }
        };
        1 + 32 + 8 * 5 + payload
    }

    /// rxBTC reserved for gas when the transaction starts: `gas_limit × max_fee`.
    pub fn max_fee_total(&self) -> Option<Amount> {
        crate::fee::reservation(self.gas_limit, self.max_fee)
    }

    /// rxBTC moved by the payload (a transfer's amount, a call's value).
    pub fn value(&self) -> Amount {
        match &self.payload {
            Payload::Transfer { amount, .. } => *amount,
            Payload::Call { value, .. } | Payload::ContractCall { value, .. } => *value,
            Payload::Deploy { .. } => Amount::ZERO,
        }
    }

    /// Assets other than rxBTC the payload takes from the sender's asset wallets.
    pub fn assets(&self) -> Option<&Assets> {
        match &self.payload {
            Payload::ContractCall { assets, .. } if !assets.is_empty() => Some(assets),
            _ => None,
        }
    }

    /// Most rxBTC this transaction takes from the sender before refunds: value moved plus
    /// the gas reservation.
    pub fn total_spend(&self) -> Option<Amount> {
        self.value().checked_add(self.max_fee_total()?)
    }
}

/// A transaction with its BIP340 signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SignedTx {
    /// The transaction.
    pub tx: Tx,
    /// Signature by `tx.from` over `txid`.
    #[serde(with = "hex_sig")]
    pub sig: [u8; 64],
    /// Cached `tx.txid()`.
    #[serde(skip)]
    txid: Txid,
    /// Cached wtxid.
    #[serde(skip)]
    wtxid: Hash256,
}

mod hex_sig {
    use bitcoin::hex::DisplayHex;

    pub fn serialize<S: serde::Serializer>(sig: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&sig.to_lower_hex_string())
    }
}

impl Encode for SignedTx {
    fn encode(&self, out: &mut Vec<u8>) {
        self.tx.encode(out);
        self.sig.encode(out);
    }
}

impl Decode for SignedTx {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let tx = Tx::decode(r)?;
        let sig = r.array()?;
        Ok(SignedTx::from_parts(tx, sig))
    }
}

/// Why a transaction is invalid on its own (before looking at state).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TxError {
    /// Bytes do not decode.
    #[error("malformed transaction: {0}")]
    Malformed(#[from] DecodeError),
    /// Larger than `max_tx_bytes`.
    #[error("transaction is {size} bytes, limit is {limit}")]
    Oversized {
        /// Encoded size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// For another network.
    #[error("transaction is for network {found}, this chain is {expected}")]
    WrongNetwork {
        /// This chain's network.
        expected: &'static str,
        /// The transaction's network.
        found: &'static str,
    },
    /// Signature does not verify against `from`.
    #[error("bad signature")]
    BadSignature,
    /// Transfer of zero.
    #[error("zero amount")]
    ZeroAmount,
    /// amount + fee overflows u64.
    #[error("amount overflow")]
    AmountOverflow,
    /// More than all the rxBTC there can be.
    #[error("amount {0} exceeds the maximum supply")]
    AboveMaxMoney(Amount),
    /// Max fee below the chain's minimum base fee: it can never be included.
    #[error("max fee {fee} below the minimum base fee {min}")]
    FeeTooLow {
        /// Max fee offered.
        fee: GasPrice,
        /// Minimum base fee.
        min: GasPrice,
    },
    /// Max tip above max fee.
    #[error("max tip {tip} above max fee {fee}")]
    TipAboveFee {
        /// Max tip.
        tip: GasPrice,
        /// Max fee.
        fee: GasPrice,
    },
    /// The payee is not a valid public key (the coins would be lost).
    #[error("payee is not a valid x-only public key")]
    InvalidPayee,
    /// A call to a system contract this chain does not have.
    #[error("no system contract {0} on this chain")]
    UnknownContract(SystemId),
    /// The gas limit does not cover the payload's intrinsic gas.
    #[error("gas limit {got} below the {need} this payload needs before executing")]
    GasLimitTooLow {
        /// Intrinsic gas.
        need: u64,
        /// Offered.
        got: u64,
    },
    /// The gas limit is above the chain's maximum.
    #[error("gas limit {got} above the maximum {max}")]
    GasLimitTooHigh {
        /// `max_tx_gas`.
        max: u64,
        /// Offered.
        got: u64,
    },
    /// A malformed contract call (empty or overlong function name).
    #[error("bad function name")]
    BadFunctionName,
}

impl SignedTx {
    /// Assembles a signed transaction (the signature is not checked here).
    pub fn from_parts(tx: Tx, sig: [u8; 64]) -> Self {
        let txid = tx.txid();
        SignedTx::with_txid(tx, sig, txid)
    }

    fn with_txid(tx: Tx, sig: [u8; 64], txid: Txid) -> Self {
        let mut s = SignedTx {
            tx,
            sig,
            txid,
            wtxid: Hash256::ZERO,
        };
        s.wtxid = tagged_hash("rexe/wtx", &s.to_bytes());
        s
    }

    /// The transaction id.
    pub fn txid(&self) -> Txid {
        self.txid
    }

    /// Hash of the full encoding, signature included: what the block's `tx_root` commits
    /// to, so a body with a mangled signature cannot pass for the sealed one.
    pub fn wtxid(&self) -> Hash256 {
        self.wtxid
    }

    /// Decodes wire bytes, enforcing the size limit before anything else.
    pub fn decode_checked(bytes: &[u8], params: &ChainParams) -> Result<Self, TxError> {
        Self::decode_limited(bytes, params.max_tx_bytes)
    }

    /// Decodes wire bytes of at most `max_tx_bytes` (a chain's `max_tx_bytes`).
    pub fn decode_limited(bytes: &[u8], max_tx_bytes: usize) -> Result<Self, TxError> {
        if bytes.len() > max_tx_bytes {
            return Err(TxError::Oversized {
                size: bytes.len(),
                limit: max_tx_bytes,
            });
        }
        Ok(SignedTx::from_bytes(bytes)?)
    }

    /// Whether the signature verifies.
    pub fn verify_signature(&self) -> bool {
        verify_signature(&self.tx.from, &self.txid.0, &self.sig)
    }

    /// The transaction with its signature checked, or the transaction back if it does not
    /// verify. Servers verify outside their chain lock, on as many threads as they like, and
    /// admit the result with [`crate::Chain::submit_verified`].
    pub fn verified(self) -> Result<VerifiedTx, Box<SignedTx>> {
        if self.verify_signature() {
            Ok(VerifiedTx(self))
        } else {
            Err(Box::new(self))
        }
    }

    /// The signature check this transaction needs, for a batch.
    pub fn sig_check(&self) -> crate::address::batch::SigCheck<'_> {
        crate::address::batch::SigCheck {
            key: &self.tx.from,
            msg: &self.txid.0,
            sig: &self.sig,
        }
    }

    /// [`SignedTx::verified`] for many transactions: their signatures checked together as
    /// one BIP340 batch, and one by one only if the batch fails (see
    /// [`crate::address::batch`]). In order.
    pub fn verified_all(txs: Vec<SignedTx>) -> Vec<Result<VerifiedTx, Box<SignedTx>>> {
        let checks: Vec<_> = txs.iter().map(SignedTx::sig_check).collect();
        let ok = crate::address::batch::verify_each(&checks);
        drop(checks);
        txs.into_iter()
            .zip(ok)
            .map(|(t, ok)| {
                if ok {
                    Ok(VerifiedTx(t))
                } else {
                    Err(Box::new(t))
                }
            })
            .collect()
    }

    /// Every rule that needs no state except the signature (checked separately, since it
    /// is the expensive part and blocks from our own log skip it).
    pub fn check_stateless(&self, params: &ChainParams) -> Result<(), TxError> {
        if self.tx.network != params.network {
            return Err(TxError::WrongNetwork {
                expected: params.network.name(),
                found: self.tx.network.name(),
            });
        }
        let size = self.tx.encoded_len() + 64;
        if size > params.max_tx_bytes {
            return Err(TxError::Oversized {
                size,
                limit: params.max_tx_bytes,
            });
        }
        if self.tx.max_fee < params.min_base_fee {
            return Err(TxError::FeeTooLow {
                fee: self.tx.max_fee,
                min: params.min_base_fee,
            });
        }
        if self.tx.max_tip > self.tx.max_fee {
            return Err(TxError::TipAboveFee {
                tip: self.tx.max_tip,
                fee: self.tx.max_fee,
            });
        }
        match &self.tx.payload {
            Payload::Transfer { amount, .. } => {
                if amount.is_zero() {
                    return Err(TxError::ZeroAmount);
                }
            }
            Payload::Call { contract, .. } => {
                if contract.0 > SystemId::MAX {
                    return Err(TxError::UnknownContract(*contract));
                }
            }
            Payload::Deploy { .. } => {}
            Payload::ContractCall { function, .. } => {
                if function.is_empty() || function.len() > MAX_FUNCTION_NAME {
                    return Err(TxError::BadFunctionName);
                }
            }
        }
        let need = crate::contract::intrinsic_gas(&self.tx.payload);
        if self.tx.gas_limit < need {
            return Err(TxError::GasLimitTooLow {
                need,
                got: self.tx.gas_limit,
            });
        }
        if self.tx.gas_limit > params.max_tx_gas {
            return Err(TxError::GasLimitTooHigh {
                max: params.max_tx_gas,
                got: self.tx.gas_limit,
            });
        }
        let total = self.tx.total_spend().ok_or(TxError::AmountOverflow)?;
        if total > Amount::MAX_MONEY {
            return Err(TxError::AboveMaxMoney(total));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn transfer(signer: &Signer, to: Address, amount: u64, nonce: u64) -> SignedTx {
        Tx {
            network: Network::Regtest,
            from: signer.address(),
            nonce,
            max_fee: GasPrice::from_msat(10),
            max_tip: GasPrice::from_msat(1),
            gas_limit: TRANSFER_GAS,
            expiry_height: 1_000,
            payload: Payload::Transfer {
                to,
                amount: Amount::from_sat(amount),
            },
        }
        .sign(signer)
    }

    #[test]
    fn encoding_roundtrips_and_signature_verifies() {
        let a = Signer::from_seed(b"a");
        let b = Signer::from_seed(b"b").address();
        let tx = transfer(&a, b, 5, 0);
        let bytes = tx.to_bytes();
        let back = SignedTx::from_bytes(&bytes).unwrap();
        assert_eq!(back, tx);
        assert!(back.verify_signature());
    }

    #[test]
    fn encoded_len_matches_encoding() {
        let a = Signer::from_seed(b"a");
        let t = transfer(&a, a.address(), 5, 0);
        assert_eq!(t.tx.encoded_len(), t.tx.to_bytes().len());
    }

    #[test]
    fn contract_payloads_roundtrip_and_their_length_is_exact() {
        let a = Signer::from_seed(b"a");
        for payload in [
            Payload::Deploy {
                source: "contract C { }".into(),
                args: vec![1, 2, 3],
            },
            Payload::ContractCall {
                assets: Default::default(),
                contract: a.address(),
                function: "transfer".into(),
                args: vec![9; 300],
                value: Amount::ZERO,
            },
            Payload::ContractCall {
                assets: Default::default(),
                contract: a.address(),
                function: "put".into(),
                args: vec![],
                value: Amount::from_sat(1),
            },
            Payload::ContractCall {
                assets: assets(&[("BTC", 5), ("ETH", 7)]),
                contract: a.address(),
                function: "put".into(),
                args: vec![1],
                value: Amount::ZERO,
            },
            Payload::ContractCall {
                assets: assets(&[("GOLD", u64::MAX)]),
                contract: a.address(),
                function: "put".into(),
                args: vec![],
                value: Amount::from_sat(2),
            },
        ] {
            let tx = Tx {
                network: Network::Regtest,
                from: a.address(),
                nonce: 3,
                max_fee: GasPrice::from_msat(10),
                max_tip: GasPrice::ZERO,
                gas_limit: 100_000,
                expiry_height: 10,
                payload,
            };
            assert_eq!(tx.encoded_len(), tx.to_bytes().len());
            let signed = tx.sign(&a);
            let bytes = signed.to_bytes();
            assert_eq!(SignedTx::from_bytes(&bytes).unwrap(), signed);
            for n in 0..bytes.len() {
                assert!(SignedTx::from_bytes(&bytes[..n]).is_err());
            }
        }
        // A source that is not UTF-8 does not decode.
        let mut bytes = Tx {
            network: Network::Regtest,
            from: a.address(),
            nonce: 0,
            max_fee: GasPrice::from_msat(1),
            max_tip: GasPrice::ZERO,
            gas_limit: 1,
            expiry_height: 1,
            payload: Payload::Deploy {
                source: "ab".into(),
                args: vec![],
            },
        }
        .to_bytes();
        let at = bytes.len() - 3;
        bytes[at] = 0xff;
        assert!(Tx::from_bytes(&bytes).is_err());
    }

    fn assets(list: &[(&str, u64)]) -> Assets {
        Assets::from_pairs(
            list.iter()
                .map(|(s, n)| (crate::asset::AssetId::from_symbol(s).unwrap(), *n))
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn a_call_attaching_assets_has_one_encoding() {
        let a = Signer::from_seed(b"a");
        let call = |assets: Assets| Payload::ContractCall {
            assets,
            contract: a.address(),
            function: "f".into(),
            args: vec![],
            value: Amount::ZERO,
        };
        // Tag 5 with no assets, or more than the limit, does not decode (tag 3 is the form
        // without assets).
        let mut bytes = call(assets(&[("BTC", 1)])).to_bytes();
        assert_eq!(bytes[0], PAYLOAD_CONTRACT_CALL_ASSETS);
        let n = bytes.len();
        bytes.truncate(n - 17);
        bytes.push(0);
        assert!(Payload::from_bytes(&bytes).is_err());
        let nine: Vec<(&str, u64)> = [
            "AAA", "BBB", "CCC", "DDD", "EEE", "FFF", "GGG", "HHH", "III",
        ]
        .iter()
        .map(|s| (*s, 1))
        .collect();
        let bytes = call(assets(&nine)).to_bytes();
        assert!(Payload::from_bytes(&bytes).is_err());
        let bytes = call(assets(&nine[..8])).to_bytes();
        assert!(Payload::from_bytes(&bytes).is_ok());
        assert_eq!(
            serde_json::to_value(call(assets(&[("BTC", 3)]))).unwrap()["assets"],
            serde_json::json!([{"asset": "BTC", "amount": 3}])
        );
        assert!(serde_json::to_value(call(Assets::new())).unwrap()["assets"].is_null());
    }

    #[test]
    fn every_truncation_is_an_error() {
        let a = Signer::from_seed(b"a");
        let bytes = transfer(&a, a.address(), 5, 0).to_bytes();
        for n in 0..bytes.len() {
            assert!(SignedTx::from_bytes(&bytes[..n]).is_err());
        }
    }

    #[test]
    fn tampered_transaction_fails_signature() {
        let a = Signer::from_seed(b"a");
        let mut tx = transfer(&a, a.address(), 5, 0);
        tx.tx.nonce = 1;
        let tx = SignedTx::from_parts(tx.tx, tx.sig);
        assert!(!tx.verify_signature());
    }
}

/// A transaction whose signature has been verified: only [`SignedTx::verified`] makes one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedTx(SignedTx);

impl VerifiedTx {
    /// The transaction.
    pub fn tx(&self) -> &SignedTx {
        &self.0
    }

    /// The transaction, verified no more.
    pub fn into_inner(self) -> SignedTx {
        self.0
    }
}
