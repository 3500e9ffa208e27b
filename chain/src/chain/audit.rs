//! The supply audit: minted − burned = balances + in flight + held by contracts (system
//! contracts' escrows, and rxBTC tokens in PREDA contracts' state).

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
