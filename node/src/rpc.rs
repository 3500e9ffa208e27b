//! The L2 node's JSON-RPC methods: a pure dispatch over the chain, so the HTTP layer only
//! parses, authenticates and serialises. The method list is documented in `docs/rpc.md`;
//! a test checks the two agree.

use bitcoin::hex::{DisplayHex, FromHex};
use rexe_chain::encode::{Decode, Encode};
use rexe_chain::{Address, Block, BlockHash, Chain, ShardId, SubmitOutcome};
use serde_json::{json, Value};

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    /// Bitcoin Core's error code (-32700…-32600 for JSON-RPC, -26 rejected, -5 not found…).
    pub code: i64,
    /// Human-readable message.
    pub message: String,
    /// The error object's `data`, when there is more than a code and a message.
    pub data: Option<Value>,
}

impl RpcError {
    /// An error with `code` and `message`.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// A transaction the node refuses to admit (-26, Core's `RPC_VERIFY_REJECTED`); a
    /// contract's refusal carries its kind and reason code in `data`.
    pub fn rejected(e: &rexe_chain::AdmissionError) -> Self {
        let mut err = Self::new(-26, e.to_string());
        if let rexe_chain::AdmissionError::Refused(c) = e {
            err.data = Some(refusal_data(c));
        }
        err
    }
    /// -32700: the body is not JSON.
    pub fn parse(m: impl Into<String>) -> Self {
        Self::new(-32700, m)
    }
    /// -32600: not a JSON-RPC request.
    pub fn invalid_request(m: impl Into<String>) -> Self {
        Self::new(-32600, m)
    }
    fn params(m: impl Into<String>) -> Self {
        Self::new(-32602, m)
    }
    fn not_found(m: impl Into<String>) -> Self {
        Self::new(-5, m)
    }
    fn internal(m: impl ToString) -> Self {
        Self::new(-32603, m.to_string())
    }
}

/// Every method, with its parameters, in the order `docs/rpc.md` lists them.
pub const METHODS: &[(&str, &str)] = &[
    ("help", ""),
    ("getchaininfo", ""),
    ("getblockcount", ""),
    ("getbestblockhash", ""),
    ("getblockhash", "height"),
    ("getblock", "hash_or_height [verbosity=1]"),
    ("getblockheader", "hash_or_height"),
    ("sendrawtransaction", "hex"),
    ("gettransaction", "txid"),
    ("gettxstatus", "txid"),
    ("getmempoolinfo", ""),
    ("getaccount", "address"),
    ("getshardinfo", ""),
    ("getsupply", ""),
    ("estimatefee", "[address_or_shard] [blocks=6]"),
    ("getblocktemplate", "miner_address"),
    ("submitblock", "hex"),
    ("waitfornewblock", "[timeout_ms=30000]"),
    ("createauxblock", "address"),
    ("submitauxblock", "hash auxpow"),
    ("getauxblock", "[hash auxpow]"),
    ("invalidateblock", "hash"),
    ("getcallreceipt", "txid"),
    ("getpeginfo", ""),
    ("getbtcblock", "hash"),
    ("listpegorders", ""),
    ("getpegmatch", "match_id"),
    ("listpegmatches", "[address]"),
    ("pegmatcher", "amount"),
    ("listcontracts", ""),
    ("listmintrights", ""),
    ("getcontract", "address"),
    ("getcontractstate", "address [target=global]"),
    ("getcontractreceipts", "txid"),
    ("getnetworkinfo", ""),
    ("getrelayproof", "hash_or_height origin target"),
    ("verifyrelayproof", "proof"),
];

/// Node-side context the methods may use besides the chain.
pub struct Context<'a> {
    /// Aux work handed out to pools.
    pub aux: &'a mut rexe_miner::aux_rpc::AuxWork,
    /// Payout address of `getauxblock` without arguments.
    pub mining_address: Option<Address>,
    /// Merge-mining chain id reported by `createauxblock`/`getauxblock`.
    pub chain_id: rexe_miner::ChainId,
    /// The p2p transport, when it runs (for `getnetworkinfo`).
    pub p2p: Option<&'a rexe_net::Handle>,
}

fn aux_err(e: rexe_miner::aux_rpc::AuxRpcError) -> RpcError {
    RpcError::new(e.code, e.message)
}

fn param(params: &Value, i: usize) -> Option<&Value> {
    match params {
        Value::Array(a) => a.get(i),
        _ => None,
    }
}

fn check_arity(params: &Value, min: usize, max: usize) -> Result<(), RpcError> {
    let n = match params {
        Value::Array(a) => a.len(),
        Value::Null => 0,
        _ => return Err(RpcError::params("params must be an array")),
    };
    if n < min || n > max {
        return Err(RpcError::params(format!(
            "expected {min}..={max} parameters, got {n}"
        )));
    }
    Ok(())
}

fn str_param<'a>(params: &'a Value, i: usize, name: &str) -> Result<&'a str, RpcError> {
    param(params, i)
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::params(format!("{name} must be a string")))
}

/// `sendrawtransaction`'s parameters decoded and the transaction's signature verified: the
/// part of admission that needs no chain, so the server runs it before locking the chain
/// and on every core for a batch.
pub fn verify_raw_transaction(
    params: &Value,
    max_tx_bytes: usize,
) -> Result<rexe_chain::VerifiedTx, RpcError> {
    decode_raw_transaction(params, max_tx_bytes)?
        .verified()
        .map_err(|_| bad_signature())
}

/// `sendrawtransaction`'s parameters decoded, the signature not checked yet.
pub fn decode_raw_transaction(
    params: &Value,
    max_tx_bytes: usize,
) -> Result<rexe_chain::SignedTx, RpcError> {
    check_arity(params, 1, 1)?;
    let bytes = hex_param(params, 0, "hex")?;
    rexe_chain::SignedTx::decode_limited(&bytes, max_tx_bytes)
        .map_err(|e| RpcError::rejected(&rexe_chain::AdmissionError::from(e)))
}

/// The refusal of a transaction whose signature does not verify.
pub fn bad_signature() -> RpcError {
    RpcError::rejected(&rexe_chain::AdmissionError::BadSignature)
}

/// Admits a transaction verified by [`verify_raw_transaction`]; its txid.
pub fn admit_verified(chain: &mut Chain, tx: rexe_chain::VerifiedTx) -> Result<Value, RpcError> {
    chain
        .submit_verified(tx)
        .map(|txid| json!(txid.to_string()))
        .map_err(|e| RpcError::rejected(&e))
}

fn hex_param(params: &Value, i: usize, name: &str) -> Result<Vec<u8>, RpcError> {
    Vec::<u8>::from_hex(str_param(params, i, name)?)
        .map_err(|e| RpcError::new(-22, format!("{name} is not valid hex: {e}")))
}

fn block_hash_param(chain: &Chain, params: &Value) -> Result<BlockHash, RpcError> {
    match param(params, 0) {
        Some(Value::Number(n)) => {
            let h = n
                .as_u64()
                .ok_or_else(|| RpcError::params("height must be a non-negative integer"))?;
            chain
                .hash_at(h)
                .ok_or_else(|| RpcError::new(-8, format!("block height {h} out of range")))
        }
        Some(Value::String(s)) => s
            .parse()
            .map_err(|_| RpcError::new(-8, "hash must be 64 hex digits")),
        _ => Err(RpcError::params("expected a block hash or height")),
    }
}

fn address_param(chain: &Chain, params: &Value, i: usize) -> Result<Address, RpcError> {
    let s = str_param(params, i, "address")?;
    Address::parse_for(s, chain.params().network)
        .map_err(|e| RpcError::new(-5, format!("invalid address: {e}")))
}

fn header_json(chain: &Chain, hash: BlockHash) -> Result<Value, RpcError> {
    let h = chain
        .header(&hash)
        .ok_or_else(|| RpcError::not_found("block not found"))?;
    let active = chain.hash_at(h.height) == Some(hash);
    let confirmations = if active {
        (chain.tip_height() - h.height + 1) as i64
    } else {
        -1
    };
    let mut v = serde_json::to_value(h).map_err(RpcError::internal)?;
    v["hash"] = json!(hash.to_string());
    v["confirmations"] = json!(confirmations);
    v["final"] = json!(active && chain.is_final(h.height));
    v["miner"] = json!(h.miner.encode(chain.params().network));
    v["subsidy"] = json!(chain.params().subsidy(h.height).to_sat());
    Ok(v)
}

/// Runs one method. `now` is the local clock (unix seconds).
pub fn call(
    chain: &mut Chain,
    ctx: &mut Context<'_>,
    method: &str,
    params: &Value,
    now: u64,
) -> Result<Value, RpcError> {
    let chain_id = ctx.chain_id;
    match method {
        "createauxblock" => {
            check_arity(params, 1, 1)?;
            let miner = address_param(chain, params, 0)?;
            ctx.aux.create(chain, miner, now, chain_id).map_err(aux_err)
        }
        "submitauxblock" => {
            check_arity(params, 2, 2)?;
            let hash = str_param(params, 0, "hash")?;
            let aux = str_param(params, 1, "auxpow")?;
            ctx.aux.submit(chain, hash, aux, now).map_err(aux_err)
        }
        "getauxblock" => {
            check_arity(params, 0, 2)?;
            match param(params, 1) {
                None if param(params, 0).is_none() => {
                    let miner = ctx.mining_address.ok_or_else(|| {
                        RpcError::new(-1, "no mining address configured (set mining_address)")
                    })?;
                    ctx.aux.create(chain, miner, now, chain_id).map_err(aux_err)
                }
                Some(_) => {
                    let hash = str_param(params, 0, "hash")?;
                    let aux = str_param(params, 1, "auxpow")?;
                    ctx.aux.submit(chain, hash, aux, now).map_err(aux_err)
                }
                None => Err(RpcError::params(
                    "getauxblock takes no arguments or hash and auxpow",
                )),
            }
        }
        "help" => {
            check_arity(params, 0, 0)?;
            Ok(json!(METHODS
                .iter()
                .map(|(m, p)| format!("{m} {p}").trim().to_string())
                .collect::<Vec<_>>()))
        }
        "getchaininfo" => {
            check_arity(params, 0, 0)?;
            Ok(json!(crate::api::ChainInfo {
                network: chain.params().network.name().into(),
                height: chain.tip_height(),
                bestblockhash: chain.tip_hash().to_string(),
                chainwork: chain.tip_work().to_be_bytes().to_lower_hex_string(),
                shards: chain.params().shard_order.shard_count(),
                mempool_size: chain.mempool().len(),
                state_root: chain.tip_header().state_root.to_string(),
                anchor: chain.anchor().map(|(height, hash)| crate::api::Anchor {
                    height,
                    hash: hash.to_string(),
                }),
                tracked_shards: chain.tracked_shards().iter().map(|s| s.0).collect(),
                shards_to_sync: chain.shards_to_sync().iter().map(|s| s.0).collect(),
                state_sync: chain.shards_to_sync().iter().find_map(|s| {
                    let p = chain.state_sync(*s).ok()??;
                    Some(crate::api::StateSyncInfo {
                        shard: s.0,
                        block: p.block.to_string(),
                        height: p.height,
                        rows: p.rows,
                        bytes: p.bytes,
                        pages_done: p.cursor.is_none(),
                    })
                }),
                bootstrapped_at: chain
                    .bootstrapped_at()
                    .ok()
                    .flatten()
                    .map(|(height, hash)| {
                        crate::api::Anchor {
                            height,
                            hash: hash.to_string(),
                        }
                    }),
            }))
        }
        "getblockcount" => {
            check_arity(params, 0, 0)?;
            Ok(json!(chain.tip_height()))
        }
        "getbestblockhash" => {
            check_arity(params, 0, 0)?;
            Ok(json!(chain.tip_hash().to_string()))
        }
        "getblockhash" => {
            check_arity(params, 1, 1)?;
            let h = param(params, 0)
                .and_then(Value::as_u64)
                .ok_or_else(|| RpcError::params("height must be a non-negative integer"))?;
            chain
                .hash_at(h)
                .map(|b| json!(b.to_string()))
                .ok_or_else(|| RpcError::new(-8, format!("block height {h} out of range")))
        }
        "getblock" => {
            check_arity(params, 1, 2)?;
            let hash = block_hash_param(chain, params)?;
            let verbosity = match param(params, 1) {
                None => 1,
                Some(v) => v
                    .as_u64()
                    .ok_or_else(|| RpcError::params("verbosity must be 0 or 1"))?,
            };
            let block = chain
                .block(hash)
                .map_err(RpcError::internal)?
                .ok_or_else(|| RpcError::not_found("block not found"))?;
            match verbosity {
                0 => Ok(json!(block.to_bytes().to_lower_hex_string())),
                1 => {
                    let mut v = header_json(chain, hash)?;
                    v["txs"] = serde_json::to_value(&block.txs).map_err(RpcError::internal)?;
                    v["seal"] = json!(block.seal.to_lower_hex_string());
                    v["tx_count"] = json!(block.tx_count());
                    Ok(v)
                }
                _ => Err(RpcError::params("verbosity must be 0 or 1")),
            }
        }
        "getblockheader" => {
            check_arity(params, 1, 1)?;
            let hash = block_hash_param(chain, params)?;
            header_json(chain, hash)
        }
        "sendrawtransaction" => {
            let tx = verify_raw_transaction(params, chain.params().max_tx_bytes)?;
            admit_verified(chain, tx)
        }
        "gettxstatus" => {
            // `gettransaction` without the transaction: status, place, confirmations, final.
            let mut v = call(chain, ctx, "gettransaction", params, now)?;
            if let Some(o) = v.as_object_mut() {
                o.remove("tx");
            }
            Ok(v)
        }
        "gettransaction" => {
            check_arity(params, 1, 1)?;
            let txid: rexe_chain::Txid = str_param(params, 0, "txid")?
                .parse()
                .map_err(|_| RpcError::new(-8, "txid must be 64 hex digits"))?;
            let status = chain.tx_status(txid).map_err(RpcError::internal)?;
            match status {
                rexe_chain::TxStatus::Mempool => {
                    let tx = chain.mempool().get_by_txid(&txid).cloned();
                    Ok(json!({"txid": txid.to_string(), "status": "mempool", "tx": tx}))
                }
                rexe_chain::TxStatus::Confirmed {
                    block,
                    height,
                    shard,
                    position,
                    confirmations,
                } => {
                    let tx = chain
                        .block(block)
                        .map_err(RpcError::internal)?
                        .and_then(|b| b.txs.get(shard.index())?.get(position as usize).cloned());
                    Ok(json!({
                        "txid": txid.to_string(),
                        "status": "confirmed",
                        "blockhash": block.to_string(),
                        "height": height,
                        "shard": shard.0,
                        "position": position,
                        "confirmations": confirmations,
                        "final": chain.is_final(height),
                        "fee": chain.fee_receipt(txid).map_err(RpcError::internal)?.map(|(_, mut f)| {
                            if let Some(o) = f.as_object_mut() {
                                o.remove("kind");
                            }
                            f
                        }),
                        "tx": tx,
                    }))
                }
                _ => Err(RpcError::not_found(
                    "no such transaction in the mempool or the active chain",
                )),
            }
        }
        "getmempoolinfo" => {
            check_arity(params, 0, 0)?;
            let order = chain.params().shard_order;
            Ok(json!({
                "size": chain.mempool().len(),
                "per_shard": order.shards().map(|s| chain.mempool().shard_len(s)).collect::<Vec<_>>(),
            }))
        }
        "getaccount" => {
            check_arity(params, 1, 1)?;
            let addr = address_param(chain, params, 0)?;
            let acct = chain.account(&addr).map_err(RpcError::internal)?;
            let assets = chain
                .asset_balances(&addr)
                .map_err(RpcError::internal)?
                .into_iter()
                .map(|(a, amount)| crate::api::AssetBalance {
                    asset: a.symbol(),
                    amount,
                })
                .collect();
            let mut next_nonce = acct.nonce;
            while chain.mempool().get(&addr, next_nonce).is_some() {
                next_nonce += 1;
            }
            Ok(json!(crate::api::AccountInfo {
                address: addr.encode(chain.params().network),
                shard: addr.shard(chain.params().shard_order).0,
                balance: acct.balance.to_sat(),
                nonce: acct.nonce,
                next_nonce,
                assets,
            }))
        }
        "getshardinfo" => {
            check_arity(params, 0, 0)?;
            let roots = chain.shard_roots();
            let fees = chain.fee_states().map_err(RpcError::internal)?;
            let last = chain.last_fees().to_vec();
            let caches = chain.cache_stats();
            let shards: Vec<Value> = roots
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let s = ShardId(i as u16);
                    let l = last.get(i).copied().unwrap_or_default();
                    let c = caches.get(i).copied().unwrap_or_default();
                    json!({
                        "shard": i,
                        "state_root": r.to_string(),
                        "mempool": chain.mempool().shard_len(s),
                        "inbound_relays": chain.inbound()[i].len(),
                        "base_fee_msat": fees[i].base_fee.to_msat(),
                        "burned": fees[i].burned.to_sat(),
                        "last_block": {
                            "gas_used": l.gas_used,
                            "gas_limit": chain.params().block_gas_per_shard,
                            "base_fee_msat": l.base_fee.to_msat(),
                            "burned": l.burned.to_sat(),
                            "tips": l.tips.to_sat(),
                            "relays_waiting": l.waiting,
                        },
                        "cache": {
                            "accounts": c.accounts,
                            "states": c.states,
                            "limit": c.limit,
                            "account_hits": c.account_hits,
                            "account_misses": c.account_misses,
                            "state_hits": c.state_hits,
                            "state_misses": c.state_misses,
                            "hit_rate": c.hit_rate(),
                        },
                    })
                })
                .collect();
            Ok(json!(shards))
        }
        "getsupply" => {
            check_arity(params, 0, 0)?;
            let r = chain.audit_supply().map_err(RpcError::internal)?;
            let assets = chain.audit_assets().map_err(RpcError::internal)?;
            // Per asset other than rxBTC: issued (minted less burned) against wallets,
            // contract state and relays in flight.
            let asset_json: Vec<Value> = assets
                .iter()
                .map(|a| {
                    json!({
                        "asset": a.asset.symbol(),
                        "issued": a.issued.to_string(),
                        "wallets": a.wallets.to_string(),
                        "held_by_contracts": a.held.to_string(),
                        "in_flight": a.in_flight.to_string(),
                        "holds": a.holds(),
                    })
                })
                .collect();
            Ok(json!({
                "height": r.height,
                "balances": r.balances.to_sat(),
                "in_flight": r.in_flight.to_sat(),
                "held_by_contracts": r.held.to_sat(),
                "burned": r.burned.to_sat(),
                "expected": r.expected.to_sat(),
                "holds": r.holds() && assets.iter().all(|a| a.holds()),
                "assets": asset_json,
            }))
        }
        "estimatefee" => {
            check_arity(params, 0, 2)?;
            let order = chain.params().shard_order;
            let shard = match param(params, 0) {
                None | Some(Value::Null) => None,
                Some(Value::Number(n)) => Some(
                    n.as_u64()
                        .filter(|&s| s < order.shard_count() as u64)
                        .map(|s| ShardId(s as u16))
                        .ok_or_else(|| RpcError::new(-8, "no such shard"))?,
                ),
                Some(_) => Some(address_param(chain, params, 0)?.shard(order)),
            };
            let blocks = match param(params, 1) {
                None | Some(Value::Null) => 6,
                Some(v) => v
                    .as_u64()
                    .filter(|b| (1..=100).contains(b))
                    .ok_or_else(|| RpcError::new(-8, "blocks must be 1 to 100"))?,
            };
            let one = |chain: &mut Chain, s: ShardId| -> Result<Value, RpcError> {
                let e = chain.estimate_fee(s, blocks).map_err(RpcError::internal)?;
                Ok(json!(crate::api::FeeEstimate {
                    shard: s.0,
                    base_fee_msat: e.base_fee.to_msat(),
                    forecast_msat: e.forecast.iter().map(|f| f.to_msat()).collect(),
                    tip_msat: e.tip.to_msat(),
                    // Enough to stay includable through the forecast, plus the tip.
                    max_fee_msat: e.suggested_max_fee().to_msat(),
                    pending: e.pending,
                    pending_gas: e.pending_gas,
                    transfer_gas: rexe_chain::tx::TRANSFER_GAS,
                }))
            };
            match shard {
                Some(s) => one(chain, s),
                None => Ok(json!(order
                    .shards()
                    .map(|s| one(chain, s))
                    .collect::<Result<Vec<_>, _>>()?)),
            }
        }
        "getblocktemplate" => {
            check_arity(params, 1, 1)?;
            let miner = address_param(chain, params, 0)?;
            let block = chain
                .template(miner, now)
                .map_err(|e| RpcError::new(-1, e.to_string()))?;
            Ok(json!({
                "hash": block.header.hash().to_string(),
                "height": block.header.height,
                "previousblockhash": block.header.prev.to_string(),
                "bits": format!("{:08x}", block.header.bits),
                "target": format!("{:064x}", block.header.target()),
                "tx_count": block.tx_count(),
                "hex": block.to_bytes().to_lower_hex_string(),
            }))
        }
        "submitblock" => {
            check_arity(params, 1, 1)?;
            let bytes = hex_param(params, 0, "hex")?;
            let block = Block::from_bytes(&bytes)
                .map_err(|e| RpcError::new(-22, format!("block decode failed: {e}")))?;
            // Like bitcoind: null on success, else the reason as a string. Accepted means
            // in the durable block log.
            match chain.submit_logged(block, now) {
                Ok(SubmitOutcome::Connected) | Ok(SubmitOutcome::Reorged { .. }) => Ok(Value::Null),
                Ok(SubmitOutcome::SideBranch) => Ok(json!("inconclusive")),
                Err(rexe_chain::BlockError::Duplicate(_)) => Ok(json!("duplicate")),
                Err(rexe_chain::BlockError::KnownInvalid(_)) => Ok(json!("duplicate-invalid")),
                Err(e) => Ok(json!(e.to_string())),
            }
        }
        "invalidateblock" => {
            check_arity(params, 1, 1)?;
            let hash: BlockHash = str_param(params, 0, "hash")?
                .parse()
                .map_err(|_| RpcError::new(-8, "hash must be 64 hex digits"))?;
            if chain.header(&hash).is_none() {
                return Err(RpcError::new(-5, "Block not found"));
            }
            chain
                .invalidate(hash)
                .map_err(|e| RpcError::new(-1, e.to_string()))?;
            Ok(Value::Null)
        }
        "getcallreceipt" => {
            check_arity(params, 1, 1)?;
            let txid: rexe_chain::Txid = str_param(params, 0, "txid")?
                .parse()
                .map_err(|_| RpcError::new(-8, "txid must be 64 hex digits"))?;
            match chain.call_receipt(txid).map_err(RpcError::internal)? {
                Some((block, height, r)) => {
                    let e = r.error.as_ref();
                    let receipt = crate::api::CallReceipt {
                        txid: txid.to_string(),
                        contract: r.contract.0,
                        blockhash: block.to_string(),
                        height,
                        confirmations: chain.tip_height().saturating_sub(height) + 1,
                        is_final: chain.is_final(height),
                        success: r.error.is_none(),
                        error: e.map(|e| e.message.clone()),
                        error_kind: e.map(|e| e.kind.as_str().to_owned()),
                        error_code: e.and_then(|e| e.code.clone()),
                    };
                    Ok(serde_json::to_value(receipt).map_err(RpcError::internal)?)
                }
                None => Err(RpcError::not_found(
                    "no receipt: the call has not run on the active chain (yet)",
                )),
            }
        }
        "getpeginfo" => {
            check_arity(params, 0, 0)?;
            super::peg_rpc::info(chain)
        }
        "getbtcblock" => {
            check_arity(params, 1, 1)?;
            super::peg_rpc::btc_block(chain, str_param(params, 0, "hash")?)
        }
        "listpegorders" => {
            check_arity(params, 0, 0)?;
            super::peg_rpc::orders(chain)
        }
        "getpegmatch" => {
            check_arity(params, 1, 1)?;
            let id = param(params, 0)
                .and_then(Value::as_u64)
                .ok_or_else(|| RpcError::params("match_id must be a non-negative integer"))?;
            super::peg_rpc::get_match(chain, id)
        }
        "listpegmatches" => {
            check_arity(params, 0, 1)?;
            let who = match param(params, 0) {
                None => None,
                Some(_) => Some(address_param(chain, params, 0)?),
            };
            super::peg_rpc::matches(chain, who)
        }
        "pegmatcher" => {
            check_arity(params, 1, 1)?;
            let amount = param(params, 0)
                .and_then(Value::as_u64)
                .ok_or_else(|| RpcError::params("amount must be a non-negative integer (sats)"))?;
            super::peg_rpc::matcher(chain, amount)
        }
        "listcontracts" => {
            check_arity(params, 0, 0)?;
            super::contract_rpc::list(chain)
        }
        "listmintrights" => {
            check_arity(params, 0, 0)?;
            let network = chain.params().network;
            Ok(json!(chain
                .contracts()
                .minting_rights()
                .map(|r| json!({
                    "asset": r.asset.symbol(),
                    "contract": r.contract.encode(network),
                }))
                .collect::<Vec<_>>()))
        }
        "getcontract" => {
            check_arity(params, 1, 1)?;
            super::contract_rpc::get(chain, str_param(params, 0, "address")?)
        }
        "getcontractstate" => {
            check_arity(params, 1, 2)?;
            let target = match param(params, 1) {
                None => None,
                Some(_) => Some(str_param(params, 1, "target")?),
            };
            super::contract_rpc::state(chain, str_param(params, 0, "address")?, target)
        }
        "getcontractreceipts" => {
            check_arity(params, 1, 1)?;
            super::contract_rpc::receipts(chain, str_param(params, 0, "txid")?)
        }
        "getnetworkinfo" => {
            check_arity(params, 0, 0)?;
            Ok(match ctx.p2p.map(rexe_net::Handle::status) {
                None => json!({"p2p": false}),
                Some(s) => json!({
                    "p2p": true,
                    "peer_id": s.peer_id,
                    "listening": s.listening,
                    "peers": s.peers,
                    "connections": s.peers.len(),
                    "banned": s.banned,
                    "gossip_in": {"blocks": s.gossip_in[0], "txs": s.gossip_in[1]},
                    "gossip_out": {"blocks": s.gossip_out[0], "txs": s.gossip_out[1]},
                    "rejected": s.rejected,
                    "requests_in": s.requests_in,
                    "broken_streams": s.broken_streams,
                }),
            })
        }
        "getrelayproof" => {
            check_arity(params, 3, 3)?;
            let hash = block_hash_param(chain, params)?;
            let part = |i, name| {
                param(params, i)
                    .ok_or_else(|| RpcError::params(format!("{name} is required")))
                    .and_then(|v| super::proof_rpc::partition(v, name))
            };
            super::proof_rpc::get(chain, hash, part(1, "origin")?, part(2, "target")?)
        }
        "verifyrelayproof" => {
            check_arity(params, 1, 1)?;
            super::proof_rpc::verify(chain, str_param(params, 0, "proof")?)
        }
        _ => Err(RpcError::new(-32601, format!("Method not found: {method}"))),
    }
}

/// `{"kind": ..., "reason": ...}` of a contract's refusal (`reason` only when it has a code).
pub fn refusal_data(e: &rexe_chain::system::CallError) -> Value {
    match &e.code {
        Some(c) => json!({"kind": e.kind.as_str(), "reason": c}),
        None => json!({"kind": e.kind.as_str()}),
    }
}
