//! The peg's state as canonical items for the chain (see
//! [`rexe_chain::system::SystemContract::items`]): one item per order, match, maker, used
//! outpoint, tracked header and best-chain height, plus two small items of scalars. Keys
//! start with a one-byte kind; ids and heights are big-endian so keys sort like the maps.
//! Values use the chain's canonical encoding (`rexe_chain::encode`; scripts and byte strings
//! length-prefixed, integers little-endian); a header is its 80 consensus bytes.
//!
//! | key | value |
//! |---|---|
//! | `00` | peg scalars: params, next ids, six running totals (u128) |
//! | `01 ‖ order id` | [`Order`] |
//! | `02 ‖ match id` | [`Match`] |
//! | `03 ‖ order id` | maker ([`L2Address`]) |
//! | `04 ‖ txid ‖ vout (BE)` | empty: a used outpoint |
//! | `10` | header-chain scalars: network magic, base height, fixed bits |
//! | `11 ‖ block hash` | header, height, chainwork (BE) |
//! | `12 ‖ height (BE)` | best-chain block hash |

use bitcoin::hashes::Hash as _;
use bitcoin::{BlockHash, CompactTarget, Network, OutPoint, ScriptBuf, Txid, Work};
use rexe_chain::encode::{Decode, DecodeError, Encode, Reader};
use rexe_chain::system::{Change, Item};

use crate::headers::{Entry, HeaderChain};
use crate::peg::{L2Address, Match, MatchId, MatchState, Order, OrderId, Peg, PegParams, Sats};
use crate::tracked::TrackedMap;

const PEG_META: u8 = 0x00;
const ORDER: u8 = 0x01;
const MATCH: u8 = 0x02;
const MAKER: u8 = 0x03;
const OUTPOINT: u8 = 0x04;
const HEADERS_META: u8 = 0x10;
const ENTRY: u8 = 0x11;
const BEST: u8 = 0x12;

fn key(kind: u8, id: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + id.len());
    k.push(kind);
    k.extend_from_slice(id);
    k
}

fn outpoint_key(op: &OutPoint) -> Vec<u8> {
    let mut id = op.txid.to_byte_array().to_vec();
    id.extend_from_slice(&op.vout.to_be_bytes());
    key(OUTPOINT, &id)
}

fn put_u128(v: u128, out: &mut Vec<u8>) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn get_u128(r: &mut Reader<'_>) -> Result<u128, DecodeError> {
    Ok(u128::from_le_bytes(r.array()?))
}

fn put_script(s: &ScriptBuf, out: &mut Vec<u8>) {
    s.as_bytes().to_vec().encode(out);
}

fn get_script(r: &mut Reader<'_>) -> Result<ScriptBuf, DecodeError> {
    Ok(ScriptBuf::from_bytes(Vec::<u8>::decode(r)?))
}

fn encode_params(p: &PegParams, out: &mut Vec<u8>) {
    p.confirmations.encode(out);
    p.bond_bps.encode(out);
    p.bond_min.0.encode(out);
    p.payment_window.encode(out);
    p.claim_grace.encode(out);
    p.late_fee_bps.encode(out);
}

fn decode_params(r: &mut Reader<'_>) -> Result<PegParams, DecodeError> {
    Ok(PegParams {
        confirmations: u32::decode(r)?,
        bond_bps: u16::decode(r)?,
        bond_min: Sats(u64::decode(r)?),
        payment_window: u32::decode(r)?,
        claim_grace: u32::decode(r)?,
        late_fee_bps: u16::decode(r)?,
    })
}

fn peg_meta(p: &Peg) -> Vec<u8> {
    let mut out = Vec::new();
    encode_params(&p.params, &mut out);
    p.next_order.encode(&mut out);
    p.next_match.encode(&mut out);
    for v in [
        p.deposited,
        p.released,
        p.refunded,
        p.bonds_posted,
        p.bonds_returned,
        p.bonds_forfeited,
    ] {
        put_u128(v, &mut out);
    }
    out
}

fn set_peg_meta(p: &mut Peg, r: &mut Reader<'_>) -> Result<(), DecodeError> {
    p.params = decode_params(r)?;
    p.next_order = u64::decode(r)?;
    p.next_match = u64::decode(r)?;
    p.deposited = get_u128(r)?;
    p.released = get_u128(r)?;
    p.refunded = get_u128(r)?;
    p.bonds_posted = get_u128(r)?;
    p.bonds_returned = get_u128(r)?;
    p.bonds_forfeited = get_u128(r)?;
    Ok(())
}

fn encode_order(o: &Order) -> Vec<u8> {
    let mut out = Vec::new();
    o.id.0.encode(&mut out);
    o.maker.0.encode(&mut out);
    o.amount.0.encode(&mut out);
    put_script(&o.btc_script, &mut out);
    o.min_fill.0.encode(&mut out);
    o.fee_bps.encode(&mut out);
    o.expiry_height.encode(&mut out);
    o.remaining.0.encode(&mut out);
    out
}

fn decode_order(r: &mut Reader<'_>) -> Result<Order, DecodeError> {
    Ok(Order {
        id: OrderId(u64::decode(r)?),
        maker: L2Address(r.array()?),
        amount: Sats(u64::decode(r)?),
        btc_script: get_script(r)?,
        min_fill: Sats(u64::decode(r)?),
        fee_bps: u16::decode(r)?,
        expiry_height: u64::decode(r)?,
        remaining: Sats(u64::decode(r)?),
    })
}

fn encode_match(m: &Match) -> Vec<u8> {
    let mut out = Vec::new();
    m.match_id.0.encode(&mut out);
    m.order_id.0.encode(&mut out);
    m.amount_rx.0.encode(&mut out);
    m.amount_btc_owed.0.encode(&mut out);
    put_script(&m.payee_script, &mut out);
    m.rx_recipient.0.encode(&mut out);
    m.taker.0.encode(&mut out);
    m.bond.0.encode(&mut out);
    m.btc_deadline_height.encode(&mut out);
    match m.state {
        MatchState::Open => out.push(0),
        MatchState::Claimed { outpoint } => {
            out.push(1);
            outpoint.txid.to_byte_array().encode(&mut out);
            outpoint.vout.encode(&mut out);
        }
        MatchState::Expired => out.push(2),
    }
    out
}

fn decode_match(r: &mut Reader<'_>) -> Result<Match, DecodeError> {
    Ok(Match {
        match_id: MatchId(u64::decode(r)?),
        order_id: OrderId(u64::decode(r)?),
        amount_rx: Sats(u64::decode(r)?),
        amount_btc_owed: Sats(u64::decode(r)?),
        payee_script: get_script(r)?,
        rx_recipient: L2Address(r.array()?),
        taker: L2Address(r.array()?),
        bond: Sats(u64::decode(r)?),
        btc_deadline_height: u32::decode(r)?,
        state: match u8::decode(r)? {
            0 => MatchState::Open,
            1 => MatchState::Claimed {
                outpoint: OutPoint {
                    txid: Txid::from_byte_array(r.array()?),
                    vout: u32::decode(r)?,
                },
            },
            2 => MatchState::Expired,
            _ => return Err(DecodeError::Invalid("match state")),
        },
    })
}

fn headers_meta(h: &HeaderChain) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&h.network.magic().to_bytes());
    h.base_height.encode(&mut out);
    match h.fixed_bits {
        None => out.push(0),
        Some(b) => {
            out.push(1);
            b.to_consensus().encode(&mut out);
        }
    }
    out
}

fn set_headers_meta(h: &mut HeaderChain, r: &mut Reader<'_>) -> Result<(), DecodeError> {
    let magic = bitcoin::p2p::Magic::from_bytes(r.array()?);
    h.network = Network::from_magic(magic).ok_or(DecodeError::Invalid("network magic"))?;
    h.base_height = u32::decode(r)?;
    h.fixed_bits = match u8::decode(r)? {
        0 => None,
        1 => Some(CompactTarget::from_consensus(u32::decode(r)?)),
        _ => return Err(DecodeError::Invalid("fixed bits flag")),
    };
    Ok(())
}

fn encode_entry(e: &Entry) -> Vec<u8> {
    let mut out = bitcoin::consensus::serialize(&e.header);
    e.height.encode(&mut out);
    out.extend_from_slice(&e.chainwork.to_be_bytes());
    out
}

fn decode_entry(r: &mut Reader<'_>) -> Result<Entry, DecodeError> {
    let raw: [u8; 80] = r.array()?;
    let header =
        bitcoin::consensus::deserialize(&raw).map_err(|_| DecodeError::Invalid("header"))?;
    Ok(Entry {
        header,
        height: u32::decode(r)?,
        chainwork: Work::from_be_bytes(r.array()?),
    })
}

/// Every item of the peg's state, in key order.
pub(crate) fn items(h: &HeaderChain, p: &Peg) -> Vec<Item> {
    let mut out = vec![(key(PEG_META, &[]), peg_meta(p))];
    out.extend(
        p.orders
            .iter()
            .map(|(id, o)| (key(ORDER, &id.0.to_be_bytes()), encode_order(o))),
    );
    out.extend(
        p.matches
            .iter()
            .map(|(id, m)| (key(MATCH, &id.0.to_be_bytes()), encode_match(m))),
    );
    out.extend(
        p.makers
            .keys()
            .map(|id| (key(MAKER, &id.0.to_be_bytes()), p.makers[id].0.to_vec())),
    );
    out.extend(
        p.used_outpoints
            .keys()
            .map(|op| (outpoint_key(op), Vec::new())),
    );
    out.push((key(HEADERS_META, &[]), headers_meta(h)));
    out.extend(
        h.entries
            .iter()
            .map(|(hash, e)| (key(ENTRY, hash.as_byte_array()), encode_entry(e))),
    );
    out.extend(h.best.iter().map(|(height, hash)| {
        (
            key(BEST, &height.to_be_bytes()),
            hash.to_byte_array().to_vec(),
        )
    }));
    out
}

/// The items written since the last call (both scalar items always), and forgets them.
pub(crate) fn take_changes(h: &mut HeaderChain, p: &mut Peg) -> Vec<Change> {
    let mut out = vec![(key(PEG_META, &[]), Some(peg_meta(p)))];
    for id in p.orders.take_written() {
        out.push((
            key(ORDER, &id.0.to_be_bytes()),
            p.orders.get(&id).map(encode_order),
        ));
    }
    for id in p.matches.take_written() {
        out.push((
            key(MATCH, &id.0.to_be_bytes()),
            p.matches.get(&id).map(encode_match),
        ));
    }
    for id in p.makers.take_written() {
        out.push((
            key(MAKER, &id.0.to_be_bytes()),
            p.makers.get(&id).map(|m| m.0.to_vec()),
        ));
    }
    for op in p.used_outpoints.take_written() {
        let v = p.used_outpoints.contains_key(&op).then(Vec::new);
        out.push((outpoint_key(&op), v));
    }
    out.push((key(HEADERS_META, &[]), Some(headers_meta(h))));
    for hash in h.entries.take_written() {
        out.push((
            key(ENTRY, hash.as_byte_array()),
            h.entries.get(&hash).map(encode_entry),
        ));
    }
    for height in h.best.take_written() {
        let v = h.best.get(&height).map(|b| b.to_byte_array().to_vec());
        out.push((key(BEST, &height.to_be_bytes()), v));
    }
    out
}

fn id8(id: &[u8]) -> Result<u64, DecodeError> {
    Ok(u64::from_be_bytes(
        id.try_into()
            .map_err(|_| DecodeError::Invalid("item key length"))?,
    ))
}

/// Decodes all of `v` with `f`.
fn whole<T>(
    v: &[u8],
    f: impl FnOnce(&mut Reader<'_>) -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    let mut r = Reader::new(v);
    let t = f(&mut r)?;
    r.finish()?;
    Ok(t)
}

/// Sets `map[key]` to the value `v` decodes to with `f`, or removes it (`None`).
fn put<K: Ord + Clone, V>(
    map: &mut TrackedMap<K, V>,
    key: K,
    v: Option<&[u8]>,
    f: impl FnOnce(&mut Reader<'_>) -> Result<V, DecodeError>,
) -> Result<(), DecodeError> {
    match v {
        Some(v) => {
            map.insert(key, whole(v, f)?);
        }
        None => {
            map.remove(&key);
        }
    }
    Ok(())
}

/// A fixed-size key part.
fn fixed<const N: usize>(b: &[u8], what: &'static str) -> Result<[u8; N], DecodeError> {
    b.try_into().map_err(|_| DecodeError::Invalid(what))
}

/// Writes one item (`None` deletes it) into the state.
fn apply_one(
    h: &mut HeaderChain,
    p: &mut Peg,
    k: &[u8],
    v: Option<&[u8]>,
) -> Result<(), DecodeError> {
    let (&kind, id) = k
        .split_first()
        .ok_or(DecodeError::Invalid("empty item key"))?;
    match (kind, v) {
        (PEG_META, Some(v)) if id.is_empty() => whole(v, |r| set_peg_meta(p, r)),
        (HEADERS_META, Some(v)) if id.is_empty() => whole(v, |r| set_headers_meta(h, r)),
        (ORDER, v) => put(&mut p.orders, OrderId(id8(id)?), v, decode_order),
        (MATCH, v) => put(&mut p.matches, MatchId(id8(id)?), v, decode_match),
        (MAKER, v) => put(&mut p.makers, OrderId(id8(id)?), v, |r| {
            Ok(L2Address(r.array()?))
        }),
        (OUTPOINT, v) => {
            let (txid, vout) = id
                .split_at_checked(32)
                .ok_or(DecodeError::Invalid("outpoint key"))?;
            let op = OutPoint {
                txid: Txid::from_byte_array(fixed(txid, "outpoint key")?),
                vout: u32::from_be_bytes(fixed(vout, "outpoint key")?),
            };
            // A used outpoint's value is empty.
            put(&mut p.used_outpoints, op, v, |_| Ok(()))
        }
        (ENTRY, v) => {
            let hash = BlockHash::from_byte_array(fixed(id, "block hash key")?);
            put(&mut h.entries, hash, v, decode_entry)
        }
        (BEST, v) => {
            let height = u32::from_be_bytes(fixed(id, "height key")?);
            put(&mut h.best, height, v, |r| {
                Ok(BlockHash::from_byte_array(r.array()?))
            })
        }
        _ => Err(DecodeError::Invalid("unknown peg item")),
    }
}

/// Writes `changes` into the state. On error the state may be partly written: the chain
/// then refuses the stored state as corrupt.
pub(crate) fn apply(
    h: &mut HeaderChain,
    p: &mut Peg,
    changes: &[Change],
) -> Result<(), DecodeError> {
    for (k, v) in changes {
        apply_one(h, p, k, v.as_deref())?;
    }
    Ok(())
}
