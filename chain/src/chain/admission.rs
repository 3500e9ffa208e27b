//! Admitting transactions to the mempool.

use super::*;

impl Chain {
    /// Admits a transaction to the mempool, or says why not.
    pub fn submit_tx(&mut self, tx: SignedTx) -> Result<Txid, AdmissionError> {
        self.admit(tx, false)
    }

    /// Admits a transaction whose signature was verified already (outside the chain's
    /// lock: see [`SignedTx::verified`]), or says why not.
    pub fn submit_verified(&mut self, tx: crate::VerifiedTx) -> Result<Txid, AdmissionError> {
        self.admit(tx.into_inner(), true)
    }

    pub(super) fn admit(
        &mut self,
        tx: SignedTx,
        sig_checked: bool,
    ) -> Result<Txid, AdmissionError> {
        tx.check_stateless(&self.params)?;
        if !self.tracks(shard_of(&tx.tx.from, self.params.shard_order)) {
            return Err(StoreError::NotTracked("a transaction from this sender's shard").into());
        }
        let txid = tx.txid();
        if self.mempool.contains(&txid) {
            return Err(AdmissionError::AlreadyKnown(txid));
        }
        let next_height = self.tip_height() + 1;
        if tx.tx.expiry_height < next_height {
            return Err(AdmissionError::Expired {
                expiry: tx.tx.expiry_height,
                next_height,
            });
        }
        match &tx.tx.payload {
            Payload::Transfer { to, .. } => {
                if to.to_xonly().is_err() {
                    return Err(TxError::InvalidPayee.into());
                }
            }
            Payload::Call {
                contract,
                value,
                data,
            } => {
                let c = self
                    .system(*contract)
                    .ok_or(TxError::UnknownContract(*contract))?;
                let ctx = GlobalCtx {
                    height: next_height,
                    time: self.tip_header().time,
                };
                c.precheck(
                    &ctx,
                    &Call {
                        txid,
                        caller: tx.tx.from,
                        value: *value,
                        data,
                    },
                )
                .map_err(AdmissionError::Refused)?;
            }
            Payload::Deploy { .. } | Payload::ContractCall { .. } => {
                self.precheck_contract(&tx.tx.payload)
                    .map_err(|e| AdmissionError::Refused(crate::system::CallError::new(e)))?;
            }
        }
        // Attached assets must be in the sender's wallets now (a transaction the mempool
        // holds ahead of it may still spend them: the call then fails and pays its fee).
        for (a, x) in tx.tx.assets().into_iter().flat_map(|a| a.iter()) {
            let have = self.asset_balance(&tx.tx.from, a)?;
            if have < x {
                let mut e = crate::system::CallError::new(format!(
                    "the sender holds {have} {a}, and the call attaches {x}"
                ));
                e.kind = crate::system::RefusalKind::InsufficientFunds;
                return Err(AdmissionError::Refused(e));
            }
        }
        let acct = self.account(&tx.tx.from)?;
        if tx.tx.nonce < acct.nonce {
            return Err(AdmissionError::NonceTooLow {
                expected: acct.nonce,
                got: tx.tx.nonce,
            });
        }
        if tx.tx.nonce > acct.nonce + self.params.max_nonce_gap {
            return Err(AdmissionError::NonceTooHigh {
                expected: acct.nonce,
                got: tx.tx.nonce,
                max_gap: self.params.max_nonce_gap,
            });
        }
        let needed = self
            .mempool
            .pending_spend(&tx.tx.from, acct.nonce, tx.tx.nonce)
            .and_then(|p| p.checked_add(tx.tx.total_spend()?))
            .ok_or(TxError::AmountOverflow)?;
        if needed > acct.balance {
            return Err(AdmissionError::InsufficientFunds {
                balance: acct.balance,
                needed,
            });
        }
        let shard = tx.tx.from.shard(self.params.shard_order);
        let base_fee = self.base_fee(shard)?;
        if tx.tx.max_fee < base_fee {
            return Err(AdmissionError::FeeBelowBaseFee {
                max_fee: tx.tx.max_fee,
                base_fee,
                shard,
            });
        }
        if let Some(pending) = self.mempool.get(&tx.tx.from, tx.tx.nonce) {
            let bump = |p: GasPrice| {
                GasPrice::from_msat(p.to_msat().saturating_add((p.to_msat() / 10).max(1)))
            };
            let (need_fee, need_tip) = (bump(pending.tx.max_fee), bump(pending.tx.max_tip));
            if tx.tx.max_fee < need_fee || tx.tx.max_tip < need_tip {
                return Err(AdmissionError::ReplacementUnderpaid {
                    fee: tx.tx.max_fee,
                    tip: tx.tx.max_tip,
                    need_fee,
                    need_tip,
                });
            }
        }
        if !self.mempool.has_room_for(&tx) {
            return Err(AdmissionError::MempoolFull {
                shard,
                capacity: self.mempool.shard_capacity(),
            });
        }
        if !sig_checked && !tx.verify_signature() {
            return Err(AdmissionError::BadSignature);
        }
        self.mempool.insert(tx);
        Ok(txid)
    }

    /// Checks a contract payload against the tip: the source compiles, the contract and
    /// function exist, the function is exported and the arguments decode. A failure here
    /// would only burn the fee, so the mempool refuses such transactions.
    pub(super) fn precheck_contract(&self, payload: &Payload) -> Result<(), String> {
        use crate::lang::bytecode::FnKind;
        let check_args =
            |code: &crate::lang::Verified, f: &crate::lang::bytecode::Function, args: &[u8]| {
                crate::lang::value::decode_tuple(args, &code.param_types(f), &code.table)
                    .map(|_| ())
                    .map_err(|e| format!("arguments do not match `{}`: {e}", f.name))
            };
        match payload {
            Payload::Deploy { source, args } => {
                let (code, _) = self
                    .contracts()
                    .compile(source)
                    .map_err(|e| format!("does not compile:\n{e}"))?;
                match code.functions.iter().find(|f| f.kind == FnKind::OnDeploy) {
                    Some(f) => check_args(&code, f, args),
                    None if args.is_empty() => Ok(()),
                    None => Err("arguments given but the contract has no on_deploy".into()),
                }
            }
            Payload::ContractCall {
                contract,
                function,
                args,
                ..
            } => {
                let d = self.contracts().get(contract).ok_or_else(|| {
                    format!("no contract at {}", contract.encode(self.params.network))
                })?;
                let (_, f) = crate::contract::abi::resolve(&d.code, function)?;
                if !f.export {
                    return Err(format!("`{function}` is not exported"));
                }
                check_args(&d.code, f, args)
            }
            _ => Ok(()),
        }
    }

    /// Decodes wire bytes and admits the transaction.
    pub fn submit_tx_bytes(&mut self, bytes: &[u8]) -> Result<Txid, AdmissionError> {
        let tx = SignedTx::decode_checked(bytes, &self.params)?;
        self.submit_tx(tx)
    }
}
