//! Starting a brand-new partial node from a checkpoint, rather than replaying every block
//! from genesis (which its peers cannot serve it: full nodes keep the relays a package needs
//! for the blocks within their undo depth only).
//!
//! The node first takes every header from genesis with its seal ([`SealedHeader`]) and
//! checks them as it would check blocks' headers: linkage, height, bits, time and proof of
//! work ([`HeaderChain`], [`crate::Chain::extend_headers`]). It picks a checkpoint a few
//! blocks below the best header ([`crate::Chain::bootstrap_depth`]) and fetches, for that
//! block:
//! - its package for a node that runs no shard: every chunk's roots, checked against the
//!   header, and the proofs of what every shard sent the global lane;
//! - the proof of the global lane's own outbox to itself: the calls that wait for gas and
//!   those it deferred (committed by the header since block rules 4);
//! - the global state, in pages ([`GlobalPage`]), whose LtHash must give the global chunk's
//!   state root.
//!
//! With these the node starts at the checkpoint running the global lane only
//! ([`crate::Chain::bootstrap`]); the shards it is configured to run are then taken up by
//! shard state sync ([`crate::sync`]), as for a running node that adds a shard. What the
//! node takes on trust is the proof of work: the checkpoint's header commits to the states
//! and outboxes it adopts, exactly as the header of a block a partial node connects commits
//! to the shards it does not run (see `docs/scale-out.md`).

use std::collections::HashMap;

use bitcoin::pow::Work;

use crate::block::Header;
use crate::encode::{decode_list, encode_list, Decode, DecodeError, Encode, Reader};
use crate::hash::{BlockHash, Hash256};

/// Headers a server puts in one answer at most.
pub const MAX_HEADERS: u16 = 500;
/// Bytes of items a server puts in one global state page (a page may pass it by one item).
pub const GLOBAL_PAGE_BYTES: usize = 512 * 1024;
/// Items a global state page may carry (what a client accepts).
pub const MAX_GLOBAL_PAGE_ITEMS: usize = 65_536;
/// Bytes of global state a bootstrapping node holds at most (the items are kept in memory
/// until they are checked): a peer cannot make it hold more.
pub const MAX_GLOBAL_BYTES: usize = 256 << 20;

/// A header with its seal (the proof of work), as a new node's header sync takes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedHeader {
    /// The header.
    pub header: Header,
    /// Its seal.
    pub seal: Vec<u8>,
}

impl Encode for SealedHeader {
    fn encode(&self, out: &mut Vec<u8>) {
        self.header.encode(out);
        self.seal.encode(out);
    }
}

impl Decode for SealedHeader {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(SealedHeader {
            header: Header::decode(r)?,
            seal: Vec::<u8>::decode(r)?,
        })
    }
}

/// A checked chain of headers from genesis, held while a new node bootstraps.
#[derive(Clone, Debug)]
pub struct HeaderChain {
    headers: Vec<Header>,
    hashes: Vec<BlockHash>,
    /// Cumulative work up to each header.
    works: Vec<Work>,
    heights: HashMap<BlockHash, u64>,
}

impl HeaderChain {
    /// A chain holding only `genesis`.
    pub fn new(genesis: Header) -> Self {
        let hash = genesis.hash();
        HeaderChain {
            works: vec![genesis.work()],
            headers: vec![genesis],
            hashes: vec![hash],
            heights: HashMap::from([(hash, 0)]),
        }
    }

    /// Height of the last header.
    pub fn height(&self) -> u64 {
        self.headers.len() as u64 - 1
    }

    /// Hash of the last header.
    pub fn tip(&self) -> BlockHash {
        *self.hashes.last().expect("genesis at least")
    }

    /// Cumulative work of the chain.
    pub fn work(&self) -> Work {
        *self.works.last().expect("genesis at least")
    }

    /// The header at `height`.
    pub fn header(&self, height: u64) -> Option<&Header> {
        self.headers.get(usize::try_from(height).ok()?)
    }

    /// The hash at `height`.
    pub fn hash_at(&self, height: u64) -> Option<BlockHash> {
        self.hashes.get(usize::try_from(height).ok()?).copied()
    }

    /// The cumulative work up to `height`.
    pub fn work_at(&self, height: u64) -> Option<Work> {
        self.works.get(usize::try_from(height).ok()?).copied()
    }

    /// The height of `hash`, if it is in the chain.
    pub fn height_of(&self, hash: &BlockHash) -> Option<u64> {
        self.heights.get(hash).copied()
    }

    /// Hashes to ask for the headers after this chain: the last ten, then exponentially
    /// spaced back to genesis (at most `max`).
    pub fn locator(&self, max: usize) -> Vec<BlockHash> {
        let mut out = Vec::new();
        let mut h = self.height();
        let mut step = 1;
        loop {
            out.push(self.hashes[h as usize]);
            if h == 0 || out.len() + 1 >= max {
                break;
            }
            if out.len() >= 10 {
                step *= 2;
            }
            h = h.saturating_sub(step);
        }
        if out.last() != Some(&self.hashes[0]) {
            out.push(self.hashes[0]);
        }
        out
    }

    /// The median time of the eleven headers up to `height`.
    pub(crate) fn median_time_past(&self, height: u64) -> u64 {
        let lo = height.saturating_sub(10) as usize;
        let mut times: Vec<u64> = self.headers[lo..=height as usize]
            .iter()
            .map(|h| h.time)
            .collect();
        times.sort_unstable();
        times[times.len() / 2]
    }

    /// Drops the headers above `height` (a fork point).
    pub(crate) fn truncate(&mut self, height: u64) {
        let keep = height as usize + 1;
        for h in self.hashes.drain(keep..) {
            self.heights.remove(&h);
        }
        self.headers.truncate(keep);
        self.works.truncate(keep);
    }

    /// Appends a checked header.
    pub(crate) fn push(&mut self, header: Header) {
        let hash = header.hash();
        let work = self.work() + header.work();
        self.heights.insert(hash, self.headers.len() as u64);
        self.headers.push(header);
        self.hashes.push(hash);
        self.works.push(work);
    }

    /// The headers from genesis up to `height`, with their cumulative work.
    pub(crate) fn up_to(&self, height: u64) -> impl Iterator<Item = (&Header, BlockHash, Work)> {
        let end = (height as usize + 1).min(self.headers.len());
        self.headers[..end]
            .iter()
            .zip(&self.hashes[..end])
            .zip(&self.works[..end])
            .map(|((h, hash), w)| (h, *hash, *w))
    }
}

/// A global state item: contract id, key, value.
pub type GlobalItem = (u8, Vec<u8>, Vec<u8>);

/// Where a global state page starts: after this item key (`None`: the first).
pub type GlobalCursor = Option<(u8, Vec<u8>)>;

/// One page of the global state at a block: its items after `from`, in key order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlobalPage {
    /// The block whose global state this is.
    pub block: BlockHash,
    /// Where the page starts (the request's cursor).
    pub from: GlobalCursor,
    /// Items in (contract id, key) order.
    pub items: Vec<GlobalItem>,
    /// Whether more items follow (the next page starts after this page's last item).
    pub more: bool,
}

impl GlobalPage {
    /// Bytes of item data the page carries.
    pub fn data_len(&self) -> usize {
        self.items
            .iter()
            .map(|(_, k, v)| 1 + k.len() + v.len())
            .sum()
    }

    /// Where the next page starts (`None` after the last page, or an empty one).
    pub fn next(&self) -> Option<GlobalCursor> {
        if !self.more {
            return None;
        }
        self.items.last().map(|(s, k, _)| Some((*s, k.clone())))
    }

    /// Checks the page's shape: keys strictly increasing after `from`, at most
    /// [`MAX_GLOBAL_PAGE_ITEMS`] items, and a page that says more follow carries some.
    pub fn check_shape(&self) -> Result<(), String> {
        if self.items.len() > MAX_GLOBAL_PAGE_ITEMS {
            return Err("too many items".into());
        }
        if self.more && self.items.is_empty() {
            return Err("an empty page that says more follow".into());
        }
        let mut last: Option<(u8, &[u8])> = self.from.as_ref().map(|(s, k)| (*s, k.as_slice()));
        for (s, k, _) in &self.items {
            let key = (*s, k.as_slice());
            if last.is_some_and(|l| key <= l) {
                return Err("items out of order or before the cursor".into());
            }
            last = Some(key);
        }
        Ok(())
    }
}

/// Encodes a [`GlobalCursor`].
pub fn encode_cursor(c: &GlobalCursor, out: &mut Vec<u8>) {
    match c {
        None => out.push(0),
        Some((s, k)) => {
            out.push(1);
            s.encode(out);
            k.encode(out);
        }
    }
}

/// Decodes a [`GlobalCursor`].
pub fn decode_cursor(r: &mut Reader<'_>) -> Result<GlobalCursor, DecodeError> {
    match u8::decode(r)? {
        0 => Ok(None),
        1 => Ok(Some((u8::decode(r)?, Vec::<u8>::decode(r)?))),
        tag => Err(DecodeError::UnknownTag {
            what: "global cursor",
            tag,
        }),
    }
}

struct Item<'a>(&'a GlobalItem);

impl Encode for Item<'_> {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0 .0.encode(out);
        self.0 .1.encode(out);
        self.0 .2.encode(out);
    }
}

struct OwnedItem(GlobalItem);

impl Decode for OwnedItem {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(OwnedItem((
            u8::decode(r)?,
            Vec::<u8>::decode(r)?,
            Vec::<u8>::decode(r)?,
        )))
    }
}

impl Encode for GlobalPage {
    fn encode(&self, out: &mut Vec<u8>) {
        self.block.0 .0.encode(out);
        encode_cursor(&self.from, out);
        let items: Vec<Item<'_>> = self.items.iter().map(Item).collect();
        encode_list(&items, out);
        (self.more as u8).encode(out);
    }
}

impl Decode for GlobalPage {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let block = BlockHash(Hash256(r.array()?));
        let from = decode_cursor(r)?;
        let items: Vec<OwnedItem> = decode_list(r, 3)?;
        let more = match u8::decode(r)? {
            0 => false,
            1 => true,
            tag => return Err(DecodeError::UnknownTag { what: "more", tag }),
        };
        Ok(GlobalPage {
            block,
            from,
            items: items.into_iter().map(|i| i.0).collect(),
            more,
        })
    }
}

/// Why a bootstrap step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BootstrapError {
    /// This node cannot bootstrap: a full node, or one past genesis already.
    #[error("cannot bootstrap: {0}")]
    NotApplicable(&'static str),
    /// What a peer sent does not check against the checkpoint's header (its fault).
    #[error("bootstrap data does not check: {0}")]
    Bad(String),
    /// The global state's items do not give the checkpoint's global chunk root.
    #[error("the global state's items give {got}, not the checkpoint's global root {want}")]
    GlobalRootMismatch {
        /// The checkpoint's global chunk state root.
        want: Hash256,
        /// What the items give.
        got: Hash256,
    },
    /// The server cannot serve that block's global state.
    #[error("global state of block {0} is not served: {1}")]
    NotServed(BlockHash, String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_global_page_round_trips_and_its_shape_is_checked() {
        let page = GlobalPage {
            block: BlockHash(Hash256([7; 32])),
            from: Some((1, b"a".to_vec())),
            items: vec![(1, b"b".to_vec(), b"x".to_vec()), (2, vec![], vec![9])],
            more: true,
        };
        let back = GlobalPage::from_bytes(&page.to_bytes()).unwrap();
        assert_eq!(back, page);
        assert!(page.check_shape().is_ok());
        assert_eq!(page.next(), Some(Some((2, vec![]))));
        let mut bad = page.clone();
        bad.items.swap(0, 1);
        assert!(bad.check_shape().is_err());
        let mut bad = page.clone();
        bad.from = Some((1, b"b".to_vec()));
        assert!(bad.check_shape().is_err(), "an item at the cursor");
        let mut bad = page;
        bad.items.clear();
        assert!(bad.check_shape().is_err(), "empty but more to come");
    }
}
