//! The supply audit: minted − burned = balances + in flight + held by contracts (system
//! contracts' escrows, and rxBTC tokens in PREDA contracts' state).

use std::collections::BTreeMap;

use super::*;

impl Chain {
    /// Checks balances + in-flight relays + escrow == genesis + subsidies − burned at the
    /// tip.
    pub fn audit_supply(&mut self) -> Result<SupplyReport, StoreError> {
        if self.is_partial() {
            return Err(StoreError::NotTracked("the supply audit"));
        }
        let mut balances = Amount::ZERO;
        for s in &mut self.shards {
            s.for_each_account(|_, a| {
                balances = balances
                    .checked_add(a.balance)
                    .ok_or_else(|| StoreError::corrupt("supply", "balance sum overflows"))?;
                Ok(())
            })?;
        }
        self.supply_with_balances(balances)
    }

    /// The supply audit of every asset other than rxBTC that was ever issued, by asset:
    /// what shards issued (minted less burned) against what asset wallets, contract state
    /// and relays in flight hold.
    pub fn audit_assets(&mut self) -> Result<Vec<AssetReport>, StoreError> {
        use crate::asset::{self, AssetId};
        if self.is_partial() {
            return Err(StoreError::NotTracked("the asset audit"));
        }
        let mut reports: BTreeMap<AssetId, AssetReport> = BTreeMap::new();
        let entry = |r: &mut BTreeMap<AssetId, AssetReport>, a: AssetId| {
            r.entry(a)
                .or_insert(AssetReport {
                    asset: a,
                    issued: 0,
                    wallets: 0,
                    held: 0,
                    in_flight: 0,
                })
                .asset
        };
        let corrupt = |what: &'static str| StoreError::corrupt(what, "not an amount row");
        for s in &mut self.shards {
            for (k, v) in s.state_with_prefix(&asset::issued_prefix())? {
                let a =
                    asset::parse_issued_key(k.as_bytes()).ok_or_else(|| corrupt("issued asset"))?;
                let n = asset::issued_of(Some(&v)).ok_or_else(|| corrupt("issued asset"))?;
                entry(&mut reports, a);
                reports.get_mut(&a).expect("entered").issued += n;
            }
            for (k, v) in s.state_with_prefix(&asset::wallet_prefix(None))? {
                let (_, a) =
                    asset::parse_wallet_key(k.as_bytes()).ok_or_else(|| corrupt("asset wallet"))?;
                let n = asset::amount_of(Some(&v)).ok_or_else(|| corrupt("asset wallet"))?;
                entry(&mut reports, a);
                reports.get_mut(&a).expect("entered").wallets += u128::from(n);
            }
        }
        let assets: Vec<AssetId> = reports.keys().copied().collect();
        for a in assets {
            for s in &mut self.shards {
                let n = asset::amount_of(s.get_state(&asset::held_key(a))?.as_deref())
                    .ok_or_else(|| corrupt("held asset"))?;
                reports.get_mut(&a).expect("listed").held += u128::from(n);
            }
        }
        // What contracts' `@global` state holds, on the lane.
        for (a, n) in self.contracts().held_assets() {
            entry(&mut reports, *a);
            reports.get_mut(a).expect("entered").held += u128::from(*n);
        }
        for r in self.inbound.iter().flatten().chain(&self.global_inbound) {
            for (a, x) in r.assets().into_iter().flat_map(|x| x.iter()) {
                entry(&mut reports, a);
                reports.get_mut(&a).expect("entered").in_flight += u128::from(x);
            }
        }
        Ok(reports.into_values().collect())
    }

    /// rxBTC that contracts hold in tokens: in each shard's contract state, and in the
    /// `@global` state on the lane.
    pub fn contracts_held(&mut self) -> Result<(Vec<Amount>, Amount), StoreError> {
        let key = crate::contract::held_key();
        let shards = self
            .shards
            .iter_mut()
            .map(|s| crate::contract::held_amount(s.get_state(&key)?.as_deref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((shards, SystemContract::held(self.contracts())))
    }

    /// The supply report given the sum of all balances.
    pub(super) fn supply_with_balances(
        &mut self,
        balances: Amount,
    ) -> Result<SupplyReport, StoreError> {
        let burned = checked_sum(self.fee_states()?.iter().map(|f| f.burned))
            .ok_or_else(|| StoreError::corrupt("supply", "burned sum overflows"))?;
        let in_flight = checked_sum(
            self.inbound
                .iter()
                .flatten()
                .chain(&self.global_inbound)
                .map(Relay::value),
        )
        .ok_or_else(|| StoreError::corrupt("supply", "relay sum overflows"))?;
        let mut held = checked_sum(self.systems.iter().map(|c| c.held()))
            .ok_or_else(|| StoreError::corrupt("supply", "escrow sum overflows"))?;
        // rxBTC in tokens that contracts' shard state holds (the lane's is a system's).
        let key = crate::contract::held_key();
        for s in &mut self.shards {
            held = held
                .checked_add(crate::contract::held_amount(s.get_state(&key)?.as_deref())?)
                .ok_or_else(|| StoreError::corrupt("supply", "held sum overflows"))?;
        }
        let height = self.tip_height();
        let minted = checked_sum((1..=height).map(|h| self.params.subsidy(h)))
            .ok_or_else(|| StoreError::corrupt("supply", "subsidy sum overflows"))?;
        let issued = self
            .genesis_total()
            .checked_add(minted)
            .unwrap_or(Amount::MAX_MONEY);
        Ok(SupplyReport {
            height,
            balances,
            in_flight,
            held,
            burned,
            expected: issued
                .checked_sub(burned)
                .ok_or_else(|| StoreError::corrupt("supply", "burned more than was issued"))?,
        })
    }
}
