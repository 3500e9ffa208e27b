//! Peg queries over JSON-RPC: the tracked Bitcoin tip, the order book, matches, the matcher
//! and call receipts. Read-only; peg operations are ordinary transactions
//! (`sendrawtransaction` with a `Call` payload for the peg contract).

use bitcoin::hex::DisplayHex;
use bitcoin::{Address as BtcAddress, Network as BtcNetwork, Script};
use rexe_bridge::contract::PegContract;
use rexe_bridge::peg::{Match, MatchId, MatchState, Order, Peg, Sats};
use rexe_chain::{Address, Chain};
use serde::Serialize;
use serde_json::Value;

use super::rpc::RpcError;
use crate::api::{
    BtcBlockInfo, BtcTip, MatchInfo, MatchStatus, MatcherPiece, MatcherPlan, OrderInfo, PegInfo,
    ScriptInfo,
};

/// An answer as JSON (the api structs always serialise).
fn to_value(v: impl Serialize) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn peg(chain: &Chain) -> Result<&PegContract, RpcError> {
    PegContract::of(chain).ok_or_else(|| RpcError::new(-1, "this node runs without the peg"))
}

fn script_info(script: &Script, net: BtcNetwork) -> ScriptInfo {
    ScriptInfo {
        hex: script.as_bytes().to_lower_hex_string(),
        address: BtcAddress::from_script(script, net)
            .ok()
            .map(|a| a.to_string()),
    }
}

fn l2(chain: &Chain, a: [u8; 32]) -> String {
    Address(a).encode(chain.params().network)
}

fn order_info(chain: &Chain, o: &Order, net: BtcNetwork) -> OrderInfo {
    OrderInfo {
        order_id: o.id.0,
        maker: l2(chain, o.maker.0),
        amount: o.amount.0,
        remaining: o.remaining.0,
        min_fill: o.min_fill.0,
        fee_bps: o.fee_bps,
        expiry_height: o.expiry_height,
        btc_script: script_info(&o.btc_script, net),
    }
}

fn match_info(chain: &Chain, peg: &Peg, m: &Match, net: BtcNetwork, btc_tip: u32) -> MatchInfo {
    let (state, paid_by) = match m.state {
        MatchState::Open => (MatchStatus::Open, None),
        MatchState::Claimed { outpoint } => (MatchStatus::Claimed, Some(outpoint.to_string())),
        MatchState::Expired => (MatchStatus::Expired, None),
    };
    MatchInfo {
        match_id: m.match_id.0,
        order_id: m.order_id.0,
        state,
        paid_by,
        amount_rx: m.amount_rx.0,
        amount_btc_owed: m.amount_btc_owed.0,
        payee_script: script_info(&m.payee_script, net),
        rx_recipient: l2(chain, m.rx_recipient.0),
        taker: l2(chain, m.taker.0),
        bond: m.bond.0,
        btc_deadline_height: m.btc_deadline_height,
        blocks_to_deadline: i64::from(m.btc_deadline_height) - i64::from(btc_tip),
        escrow_claimable: peg.escrow_claimable(m.match_id),
    }
}

/// `getpeginfo`: parameters, the tracked Bitcoin tip and escrow totals.
pub fn info(chain: &Chain) -> Result<Value, RpcError> {
    let p = peg(chain)?;
    let (hash, tip) = p.headers().best_tip();
    let t = p.peg().totals();
    let params = p.peg().params();
    Ok(to_value(PegInfo {
        bitcoin_network: p.headers().network().to_string(),
        btc_tip: BtcTip {
            hash: hash.to_string(),
            height: tip.height,
            time: tip.header.time,
            chainwork: tip.chainwork.to_string(),
        },
        headers_tracked: p.headers().len(),
        confirmations_required: params.confirmations,
        payment_window: params.payment_window,
        claim_grace: params.claim_grace,
        late_fee_bps: params.late_fee_bps,
        bond_bps: params.bond_bps,
        bond_min: params.bond_min.0,
        open_orders: p.peg().orders().count(),
        escrow_in_orders: t.in_orders as u64,
        escrow_in_matches: t.in_matches as u64,
        bonds_held: t.bonds_held as u64,
        released: t.released as u64,
        refunded: t.refunded as u64,
    }))
}

/// `getbtcblock hash`: a tracked Bitcoin header and its confirmations on the best tracked
/// chain (0 when it is on a stale branch).
pub fn btc_block(chain: &Chain, hash: &str) -> Result<Value, RpcError> {
    let p = peg(chain)?;
    let hash: bitcoin::BlockHash = hash
        .parse()
        .map_err(|_| RpcError::new(-8, "hash must be 64 hex digits"))?;
    let e = p
        .headers()
        .get(&hash)
        .ok_or_else(|| RpcError::new(-5, "Bitcoin block not tracked"))?;
    Ok(to_value(BtcBlockInfo {
        hash: hash.to_string(),
        height: e.height,
        time: e.header.time,
        confirmations: p.headers().confirmations(&hash).unwrap_or(0),
        on_best_chain: p.headers().is_on_best_chain(&hash),
    }))
}

/// `listpegorders`: open orders, best first (lowest fee, then oldest), like the matcher.
pub fn orders(chain: &Chain) -> Result<Value, RpcError> {
    let p = peg(chain)?;
    let net = p.headers().network();
    let mut list: Vec<&Order> = p.peg().orders().collect();
    list.sort_by_key(|o| (o.fee_bps, o.id));
    Ok(to_value(
        list.into_iter()
            .map(|o| order_info(chain, o, net))
            .collect::<Vec<_>>(),
    ))
}

/// `getpegmatch id`.
pub fn get_match(chain: &Chain, id: u64) -> Result<Value, RpcError> {
    let p = peg(chain)?;
    let m = p
        .peg()
        .get_match(MatchId(id))
        .ok_or_else(|| RpcError::new(-5, format!("no match {id}")))?;
    Ok(to_value(match_info(
        chain,
        p.peg(),
        m,
        p.headers().network(),
        p.headers().tip_height(),
    )))
}

/// `listpegmatches [address]`: every match, or those where `address` is taker, recipient or
/// the maker of the order.
pub fn matches(chain: &Chain, who: Option<Address>) -> Result<Value, RpcError> {
    let p = peg(chain)?;
    let net = p.headers().network();
    let tip = p.headers().tip_height();
    let list: Vec<MatchInfo> = p
        .peg()
        .matches()
        .filter(|m| match who {
            None => true,
            Some(a) => {
                m.taker.0 == a.0
                    || m.rx_recipient.0 == a.0
                    || p.peg().order(m.order_id).is_some_and(|o| o.maker.0 == a.0)
            }
        })
        .map(|m| match_info(chain, p.peg(), m, net, tip))
        .collect();
    Ok(to_value(list))
}

/// `pegmatcher amount`: the orders a peg-in of `amount` would take, with the bond each needs.
pub fn matcher(chain: &Chain, amount: u64) -> Result<Value, RpcError> {
    let p = peg(chain)?;
    let net = p.headers().network();
    let height = chain.tip_height() + 1;
    let plan = p.peg().matcher(Sats(amount), height);
    let mut total = 0u64;
    let pieces: Vec<MatcherPiece> = plan
        .iter()
        .filter_map(|(id, piece)| {
            let o = p.peg().order(*id)?;
            total += piece.0;
            Some(MatcherPiece {
                order_id: id.0,
                amount: piece.0,
                btc_owed: rexe_bridge::peg::Peg::owed(*piece, o.fee_bps).0,
                bond: p.peg().params().required_bond(*piece).0,
                payee_script: script_info(&o.btc_script, net),
            })
        })
        .collect();
    Ok(to_value(MatcherPlan {
        requested: amount,
        matched: total,
        orders: pieces,
    }))
}
