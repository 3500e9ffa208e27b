//! The peg as a native system contract on the L2's global lane: the tracked Bitcoin header
//! chain plus the order book, matches and claims, driven by [`PegCall`]s.
//!
//! Money flow: `Order` and `Take` calls carry their escrow / bond as the call's value (the
//! chain debited it on the sender's shard); every [`Effect`] the peg returns becomes a
//! [`Credit`] the chain pays by relay. A failed call is refunded by the chain. The chain
//! checks after every block that the contract paid out no more than it held and received.

use std::any::Any;

use bitcoin::hashes::Hash as _;
use bitcoin::Network as BtcNetwork;
use rexe_chain::system::{
    Call, CallError, Change, Credit, GlobalCtx, Item, SystemContract, SystemId,
};
use rexe_chain::{Address, Amount, Network};

use crate::call::PegCall;
use crate::headers::{Checkpoint, HeaderChain};
use crate::peg::{Effect, L2Address, NewOrder, Peg, PegParams, Refusal, Sats};

/// The Bitcoin network an L2 network's peg follows: regtest and devnet pair with Bitcoin
/// regtest, the test network with testnet4, main with Bitcoin.
pub fn bitcoin_network(l2: Network) -> BtcNetwork {
    match l2 {
        Network::Main => BtcNetwork::Bitcoin,
        Network::Test => BtcNetwork::Testnet4,
        Network::Regtest | Network::Devnet => BtcNetwork::Regtest,
    }
}

/// The peg contract's whole state (as the chain stores it: [`crate::items`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PegContract {
    headers: HeaderChain,
    peg: Peg,
}

impl PegContract {
    /// A fresh peg for `l2` starting from `checkpoint` (default: the Bitcoin network's
    /// [`Checkpoint::recent`]), with `confirmations` = K.
    pub fn new(l2: Network, checkpoint: Option<Checkpoint>, confirmations: u32) -> Self {
        let net = bitcoin_network(l2);
        let cp = checkpoint.unwrap_or_else(|| Checkpoint::recent(net));
        let mut params = PegParams::default_for(net);
        params.confirmations = confirmations;
        PegContract {
            headers: HeaderChain::from_checkpoint(net, cp),
            peg: Peg::new(params),
        }
    }

    /// Bitcoin regtest at a fixed difficulty (the embedded node of `rexe devnet`): headers
    /// above the checkpoint must carry `bits`.
    pub fn with_fixed_bits(mut self, bits: u32) -> Self {
        self.headers = self
            .headers
            .with_fixed_bits(bitcoin::CompactTarget::from_consensus(bits));
        self
    }

    /// A fresh peg whose matches get `blocks` Bitcoin blocks to be paid instead of the
    /// network's default. For `rexe devnet`, whose embedded Bitcoin makes a block every
    /// fraction of a second: the default 12 blocks would leave a peg-in seconds to take,
    /// wait for finality and pay.
    pub fn with_payment_window(mut self, blocks: u32) -> Self {
        self.peg.params.payment_window = blocks;
        self
    }

    /// For a chain's parameters: the recent checkpoint of its Bitcoin network, K =
    /// `btc_confirmations`.
    pub fn for_chain(params: &rexe_chain::ChainParams) -> Self {
        Self::new(params.network, None, params.btc_confirmations)
    }

    /// A peg contract holding `headers` and `peg`.
    pub fn from_parts(headers: HeaderChain, peg: Peg) -> Self {
        PegContract { headers, peg }
    }

    /// Boxed, for [`rexe_chain::Chain::open_with_systems`].
    pub fn boxed(self) -> Box<dyn SystemContract> {
        Box::new(self)
    }

    /// The tracked Bitcoin header chain.
    pub fn headers(&self) -> &HeaderChain {
        &self.headers
    }

    /// Orders, matches and totals.
    pub fn peg(&self) -> &Peg {
        &self.peg
    }

    /// Finds the peg contract among a chain's system contracts.
    pub fn of(chain: &rexe_chain::Chain) -> Option<&PegContract> {
        chain
            .system(SystemId::PEG)?
            .as_any()
            .downcast_ref::<PegContract>()
    }

    fn btc_now(ctx: &GlobalCtx) -> u32 {
        u32::try_from(ctx.time).unwrap_or(u32::MAX)
    }

    fn effects_to_credits(effects: Vec<Effect>) -> Vec<Credit> {
        effects
            .into_iter()
            .map(|e| {
                let (to, amount) = match e {
                    Effect::Release { to, amount, .. }
                    | Effect::Refund { to, amount, .. }
                    | Effect::BondReturn { to, amount, .. }
                    | Effect::BondToMaker { to, amount, .. } => (to, amount),
                };
                Credit {
                    to: Address(to.0),
                    amount: Amount::from_sat(amount.0),
                }
            })
            .collect()
    }

    fn no_value(call: &Call<'_>, name: &str) -> Result<(), CallError> {
        if call.value.is_zero() {
            Ok(())
        } else {
            Err(CallError::new(format!(
                "{name} takes no value (got {})",
                call.value
            )))
        }
    }

    fn decode(call: &Call<'_>) -> Result<PegCall, CallError> {
        PegCall::decode(call.data).map_err(|e| CallError::new(format!("malformed peg call: {e}")))
    }

    /// Checks `call` against the current state without changing anything.
    fn check_only(&self, ctx: &GlobalCtx, call: &Call<'_>) -> Result<(), CallError> {
        let pc = Self::decode(call)?;
        let caller = L2Address(call.caller.0);
        let err = |e: &dyn std::fmt::Display| CallError::new(format!("{}: {e}", pc.name()));
        let rej =
            |e: &dyn Refusal| CallError::coded(e.kind(), format!("{}: {e}", pc.name()), e.reason());
        match &pc {
            PegCall::SubmitHeaders(hs) => {
                Self::no_value(call, pc.name())?;
                let first = hs.first().ok_or_else(|| err(&"no headers"))?;
                if self.headers.get(&first.prev_blockhash).is_none() {
                    return Err(err(&format_args!(
                        "first header's parent {} is not tracked",
                        first.prev_blockhash
                    )));
                }
            }
            PegCall::Order { .. } => {
                self.peg
                    .validate_order(&Self::new_order(&pc, call), ctx.height)
                    .map_err(|e| rej(&e))?;
            }
            PegCall::Take {
                order_id,
                amount,
                rx_recipient,
            } => {
                Self::check_recipient(rx_recipient).map_err(|e| err(&e))?;
                self.peg
                    .validate_take(*order_id, *amount, Sats(call.value.to_sat()), ctx.height)
                    .map_err(|e| rej(&e))?;
            }
            PegCall::Cancel { order_id } => {
                Self::no_value(call, pc.name())?;
                self.peg
                    .validate_cancel(*order_id, caller)
                    .map_err(|e| rej(&e))?;
            }
            PegCall::Claim { match_ids, .. } => {
                Self::no_value(call, pc.name())?;
                self.peg
                    .verify_claim(&self.headers, &pc.proof().expect("a claim"), match_ids)
                    .map_err(|e| rej(&e))?;
            }
        }
        Ok(())
    }

    fn new_order(pc: &PegCall, call: &Call<'_>) -> NewOrder {
        let PegCall::Order {
            btc_script,
            min_fill,
            fee_bps,
            expiry_height,
        } = pc
        else {
            unreachable!("called for orders only")
        };
        NewOrder {
            amount: Sats(call.value.to_sat()),
            btc_script: btc_script.clone(),
            min_fill: *min_fill,
            fee_bps: *fee_bps,
            expiry_height: *expiry_height,
        }
    }

    fn check_recipient(rx: &L2Address) -> Result<(), &'static str> {
        Address(rx.0)
            .to_xonly()
            .map(|_| ())
            .map_err(|_| "rx_recipient is not a valid x-only public key")
    }

    /// Executes `call` (atomic: on error nothing changed).
    fn run(&mut self, ctx: &GlobalCtx, call: &Call<'_>) -> Result<Vec<Credit>, CallError> {
        let pc = Self::decode(call)?;
        let caller = L2Address(call.caller.0);
        let err = |e: &dyn std::fmt::Display| CallError::new(format!("{}: {e}", pc.name()));
        let rej =
            |e: &dyn Refusal| CallError::coded(e.kind(), format!("{}: {e}", pc.name()), e.reason());
        match &pc {
            PegCall::SubmitHeaders(hs) => {
                Self::no_value(call, pc.name())?;
                if hs.is_empty() {
                    return Err(err(&"no headers"));
                }
                self.headers.submit(hs, Self::btc_now(ctx)).map_err(|e| {
                    err(&format_args!(
                        "header {} ({}): {}",
                        e.index, e.hash, e.error
                    ))
                })?;
                Ok(Vec::new())
            }
            PegCall::Order { .. } => {
                self.peg
                    .place_order(caller, Self::new_order(&pc, call), ctx.height)
                    .map_err(|e| rej(&e))?;
                Ok(Vec::new())
            }
            PegCall::Take {
                order_id,
                amount,
                rx_recipient,
            } => {
                Self::check_recipient(rx_recipient).map_err(|e| err(&e))?;
                self.peg
                    .take(
                        *order_id,
                        *amount,
                        *rx_recipient,
                        caller,
                        Sats(call.value.to_sat()),
                        ctx.height,
                        self.headers.tip_height(),
                    )
                    .map_err(|e| rej(&e))?;
                Ok(Vec::new())
            }
            PegCall::Cancel { order_id } => {
                Self::no_value(call, pc.name())?;
                let effects = self.peg.cancel(*order_id, caller).map_err(|e| rej(&e))?;
                Ok(Self::effects_to_credits(effects))
            }
            PegCall::Claim { match_ids, .. } => {
                Self::no_value(call, pc.name())?;
                let effects = self
                    .peg
                    .claim(&self.headers, &pc.proof().expect("a claim"), match_ids)
                    .map_err(|e| rej(&e))?;
                Ok(Self::effects_to_credits(effects))
            }
        }
    }
}

impl SystemContract for PegContract {
    fn id(&self) -> SystemId {
        SystemId::PEG
    }

    fn clone_box(&self) -> Box<dyn SystemContract> {
        Box::new(self.clone())
    }

    fn precheck(&self, ctx: &GlobalCtx, call: &Call<'_>) -> Result<(), CallError> {
        self.check_only(ctx, call)
    }

    fn call(&mut self, ctx: &GlobalCtx, call: &Call<'_>) -> Result<Vec<Credit>, CallError> {
        self.run(ctx, call)
    }

    fn has_due_work(&self, ctx: &GlobalCtx) -> bool {
        self.peg.has_due(ctx.height, self.headers.tip_height())
    }

    fn end_block(&mut self, ctx: &GlobalCtx) -> Vec<Credit> {
        let effects = self.peg.expire(ctx.height, self.headers.tip_height());
        Self::effects_to_credits(effects)
    }

    fn held(&self) -> Amount {
        let t = self.peg.totals();
        let held = t.in_orders + t.in_matches + t.bonds_held;
        Amount::from_sat(u64::try_from(held).unwrap_or(u64::MAX))
    }

    fn items(&self) -> Vec<Item> {
        crate::items::items(&self.headers, &self.peg)
    }

    fn take_changes(&mut self) -> Vec<Change> {
        crate::items::take_changes(&mut self.headers, &mut self.peg)
    }

    fn apply(&mut self, changes: &[Change]) -> Result<(), CallError> {
        crate::items::apply(&mut self.headers, &mut self.peg, changes)
            .map_err(|e| CallError::new(format!("peg item: {e}")))
    }

    /// A Bitcoin block on the tracked best chain with at least `K` confirmations (the
    /// claims' finality depth) anchors the L2 blocks it sealed.
    fn anchors(&self, btc_block: &[u8; 32]) -> bool {
        let hash = bitcoin::BlockHash::from_byte_array(*btc_block);
        self.headers
            .confirmations(&hash)
            .is_some_and(|c| c >= self.peg.params().confirmations)
    }

    /// 2: claims carry the coinbase proof, late payments, standard payees only.
    fn rules_version(&self) -> u32 {
        2
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
