//! A brand-new partial node starts from a checkpoint: headers checked from genesis, the
//! checkpoint's global state and what its global lane runs next (calls waiting for gas
//! included) proven against its header, then its shards taken up by state sync. It then
//! agrees with a full node on every root it runs; everything bent on the way is refused
//! before anything is written; a restart completes an interrupted bootstrap; no block at or
//! below the checkpoint can be rolled back.

mod common;

use common::contracts::{example, Net, SPENDER};
use common::*;
use rexe_chain::bootstrap::{BootstrapError, GlobalCursor, GlobalItem, HeaderChain, SealedHeader};
use rexe_chain::proof::RelayProof;
use rexe_chain::{
    Address, Amount, BlockError, BlockHash, Chain, ChainError, Payload, ShardId, Signer,
};
use serde_json::json;

const ORDER: u8 = 2;
/// The shards the new node runs.
const MINE: [u16; 2] = [1, 2];

struct Setup {
    net: Net,
    counter: Address,
    spender: Address,
    /// Keys on every shard, for transfers and hits.
    users: Vec<usize>,
}

/// A 4-shard chain whose global lane has room for one contract call per block: `collect`
/// calls and the shards' reports back pile up, waiting for gas.
fn setup() -> Setup {
    let mut keys = vec![Signer::from_seed(b"deployer")];
    for s in 0..4u16 {
        keys.extend(keys_on(ORDER, s, 3, "user"));
    }
    let mut p = params(ORDER, &keys);
    p.block_gas_global = 3_000_000;
    let mut net = Net::with_params(p, keys, config(2));
    let counter = net.deploy(0, example("counter"), &json!({}));
    let spender = net.deploy(0, SPENDER, &json!({}));
    let users = (1..net.keys.len()).collect();
    Setup {
        net,
        counter,
        spender,
        users,
    }
}

/// One block of traffic: two `collect` calls for the global lane, hits on every shard, a
/// relayed call and transfers across shards.
fn round(s: &mut Setup, r: usize) {
    let u = s.users.len();
    for k in 0..2 {
        let who = s.users[(r * 2 + k) % u];
        s.net.call(who, s.counter, "collect", &json!([]));
    }
    for k in 0..4 {
        let who = s.users[(r + 3 * k) % u];
        s.net.call(who, s.counter, "hit", &json!([r as u64 + 1]));
    }
    let to = s.net.keys[s.users[(r + 5) % u]].address().to_string();
    s.net
        .call(s.users[(r + 7) % u], s.spender, "pass", &json!([to, 2]));
    for k in 0..3 {
        let from = s.users[(r + k) % u];
        let to = s.net.keys[s.users[(r + k + 4) % u]].address();
        let payload = Payload::Transfer {
            to,
            amount: Amount::from_sat(1_000 + r as u64),
        };
        s.net
            .send(from, payload, rexe_chain::tx::TRANSFER_GAS)
            .unwrap();
    }
    s.net.mine();
}

/// What the global lane runs next is what the proofs of the tip's outboxes give (block
/// rules 4: its waiting calls open its outbox).
fn lane_inbound_is_proven(chain: &Chain) {
    let tip = chain.tip_hash();
    let header = chain.header(&tip).unwrap().clone();
    let next = rexe_chain::partial::next_inbound_from_proofs(
        &header,
        ShardId::GLOBAL,
        &proofs(chain, tip, ShardId::GLOBAL),
    )
    .unwrap();
    assert_eq!(next, chain.global_inbound(), "the global lane at {tip}");
}

/// The proofs, from every chunk of block `hash`, of what it sent `target`.
fn proofs(server: &Chain, hash: BlockHash, target: ShardId) -> Vec<RelayProof> {
    (0..4u16)
        .map(ShardId)
        .chain([ShardId::GLOBAL])
        .map(|o| server.relay_proof(hash, o, target).unwrap())
        .collect()
}

/// Every header of `server`'s active chain after genesis, in batches of 7, checked into a
/// header chain of `node`'s.
fn headers(server: &Chain, node: &Chain) -> HeaderChain {
    let mut hc = node.header_chain();
    let now = time_of(server.params(), server.tip_height());
    let all: Vec<SealedHeader> = (1..=server.tip_height())
        .map(|h| {
            server
                .sealed_header(server.hash_at(h).unwrap())
                .unwrap()
                .unwrap()
                .0
        })
        .collect();
    for batch in all.chunks(7) {
        assert_eq!(
            node.extend_headers(&mut hc, batch, now).unwrap(),
            batch.len()
        );
    }
    assert_eq!(hc.tip(), server.tip_hash());
    assert_eq!(hc.work(), server.tip_work());
    hc
}

/// The global state of `block`, page by page.
fn global_items(server: &mut Chain, block: BlockHash) -> Vec<GlobalItem> {
    let mut items = Vec::new();
    let mut from: GlobalCursor = None;
    loop {
        let page = server.global_page(block, from.clone()).unwrap();
        page.check_shape().unwrap();
        let next = page.next();
        items.extend(page.items);
        match next {
            Some(c) => from = c,
            None => return items,
        }
    }
}

/// Feeds `to` (a partial node) the packages of `from`'s active blocks it lacks.
fn feed(from: &Chain, to: &mut Chain) {
    for h in to.tip_height() + 1..=from.tip_height() {
        let hash = from.hash_at(h).unwrap();
        let pb = from.partial_block(hash, &to.tracked_shards()).unwrap();
        let now = pb.block.header.time;
        to.submit_partial(pb, now)
            .unwrap_or_else(|e| panic!("block {h}: {e}"));
    }
}

/// Takes up `shard` at the node's tip from `server`'s pages and proofs.
fn take_up(server: &mut Chain, node: &mut Chain, shard: ShardId) {
    let p = node.begin_state_sync(shard).unwrap();
    let mut cursor = p.cursor;
    while let Some(from) = cursor {
        let page = server.state_page(shard, p.block, from, 50).unwrap();
        cursor = node.apply_state_page(&page).unwrap().cursor;
    }
    node.adopt_shard(shard, &proofs(server, p.block, shard))
        .unwrap();
}

fn agrees(full: &Chain, node: &Chain) {
    assert_eq!(node.tip_hash(), full.tip_hash());
    assert_eq!(node.global_digest(), full.global_digest());
    assert_eq!(node.global_inbound(), full.global_inbound());
    let (f, n) = (full.shard_roots(), node.shard_roots());
    for s in node.tracked_shards() {
        assert_eq!(n[s.index()], f[s.index()], "shard {s}");
        assert_eq!(
            node.inbound()[s.index()],
            full.inbound()[s.index()],
            "shard {s}"
        );
    }
}

/// The checkpoint's data as a peer serves it.
struct Served {
    hc: HeaderChain,
    checkpoint: u64,
    hash: BlockHash,
    package: rexe_chain::partial::PartialBlock,
    own: RelayProof,
    items: Vec<GlobalItem>,
}

fn serve(server: &mut Chain, node: &Chain) -> Served {
    let hc = headers(server, node);
    let checkpoint = hc.height() - node.bootstrap_depth();
    let hash = hc.hash_at(checkpoint).unwrap();
    Served {
        checkpoint,
        hash,
        package: server.partial_block(hash, &[]).unwrap(),
        own: server
            .relay_proof(hash, ShardId::GLOBAL, ShardId::GLOBAL)
            .unwrap(),
        items: global_items(server, hash),
        hc,
    }
}

/// Runs rounds until the global lane has calls waiting at the block `depth` below the tip.
fn busy_chain(s: &mut Setup, depth: u64) -> Vec<bool> {
    let mut waiting = Vec::new();
    for r in 0..40 {
        round(s, r);
        lane_inbound_is_proven(&s.net.chain);
        waiting.push(!s.net.chain.global_inbound().is_empty());
        let h = s.net.chain.tip_height();
        if h > s.net.chain.params().undo_depth + 4 && waiting[waiting.len() - 1 - depth as usize] {
            return waiting;
        }
    }
    panic!("no global call waited: {waiting:?}");
}

#[test]
fn a_new_partial_node_starts_at_a_checkpoint_and_agrees_with_a_full_node() {
    let mut s = setup();
    let dir = tempfile::tempdir().unwrap();
    let params = s.net.chain.params().clone();
    let mut node = open_partial(dir.path(), &params, &MINE).unwrap();
    let depth = node.bootstrap_depth();
    busy_chain(&mut s, depth);
    let full = &mut s.net.chain;
    // Past the undo depth: the packages from genesis are no longer served.
    assert!(node.wants_bootstrap(full.tip_height()));
    let old = full.tip_height() - full.params().undo_depth - 3;
    assert!(full.partial_block(full.hash_at(old).unwrap(), &[]).is_err());

    let d = serve(full, &node);
    assert!(
        d.items.len() >= 2,
        "the contracts' global rows: {}",
        d.items.len()
    );
    node.bootstrap(&d.hc, d.checkpoint, &d.package, &d.own, d.items.clone())
        .unwrap();
    assert_eq!(node.tip_hash(), d.hash);
    assert_eq!(
        node.bootstrapped_at().unwrap(),
        Some((d.checkpoint, d.hash))
    );
    assert!(node.tracked_shards().is_empty());
    assert_eq!(node.shards_to_sync(), &[ShardId(1), ShardId(2)]);
    assert!(
        !node.global_inbound().is_empty(),
        "calls waited for gas at the checkpoint"
    );
    // Its headers below the checkpoint have no bodies.
    assert!(node.block(node.hash_at(1).unwrap()).unwrap().is_none());
    assert_eq!(
        node.header(&full.hash_at(1).unwrap()),
        full.header(&full.hash_at(1).unwrap())
    );

    // It runs the global lane from there, on the packages of a node that runs no shard.
    feed(full, &mut node);
    assert_eq!(node.tip_hash(), full.tip_hash());
    assert_eq!(node.global_digest(), full.global_digest());
    assert_eq!(node.global_inbound(), full.global_inbound());

    // A restart keeps it there, with the shards still to take up.
    drop(node);
    let mut node = open_partial(dir.path(), &params, &MINE).unwrap();
    assert_eq!(node.tip_hash(), full.tip_hash());
    assert_eq!(node.shards_to_sync(), &[ShardId(1), ShardId(2)]);

    // Its shards, by state sync at its tip.
    take_up(full, &mut node, ShardId(1));
    take_up(full, &mut node, ShardId(2));
    assert_eq!(node.tracked_shards(), vec![ShardId(1), ShardId(2)]);
    agrees(full, &node);
    for r in 40..46 {
        round(&mut s, r);
        feed(&s.net.chain, &mut node);
        agrees(&s.net.chain, &node);
    }
    for i in &s.users {
        let a = s.net.keys[*i].address();
        if MINE.contains(&rexe_chain::shard_of(&a, params.shard_order).0) {
            assert_eq!(node.account(&a).unwrap(), s.net.chain.account(&a).unwrap());
        }
    }

    // Nothing at or below the checkpoint rolls back; above it, blocks do.
    let back = node.tip_height() - d.checkpoint;
    let e = node.rollback(back + 1).unwrap_err();
    assert!(
        matches!(
            e,
            ChainError::Block(BlockError::BelowCheckpoint { checkpoint, .. }) if checkpoint == d.checkpoint
        ),
        "{e}"
    );
    let before = node.tip_height();
    node.rollback(2).unwrap();
    assert_eq!(node.tip_height(), before - 2);
    // The next block's branch holds the two rolled back: they connect again.
    round(&mut s, 46);
    let full = &s.net.chain;
    let pb = full
        .partial_block(full.tip_hash(), &node.tracked_shards())
        .unwrap();
    let now = pb.block.header.time;
    node.submit_partial(pb, now).unwrap();
    agrees(&s.net.chain, &node);

    // A restart keeps everything.
    drop(node);
    let node = open_partial(dir.path(), &params, &MINE).unwrap();
    assert!(node.shards_to_sync().is_empty());
    agrees(&s.net.chain, &node);
}

#[test]
fn bent_bootstrap_data_is_refused_before_anything_is_written() {
    let mut s = setup();
    let dir = tempfile::tempdir().unwrap();
    let params = s.net.chain.params().clone();
    let mut node = open_partial(dir.path(), &params, &MINE).unwrap();
    busy_chain(&mut s, node.bootstrap_depth());
    let d = serve(&mut s.net.chain, &node);
    let full = &s.net.chain;
    let try_with = |node: &mut Chain,
                    package: &rexe_chain::partial::PartialBlock,
                    own: &RelayProof,
                    items: Vec<GlobalItem>| {
        let e = node
            .bootstrap(&d.hc, d.checkpoint, package, own, items)
            .unwrap_err();
        assert_eq!(node.tip_height(), 0, "nothing written after: {e}");
        e
    };

    // The global state: an item changed, one dropped, one added.
    let mut items = d.items.clone();
    items[1].2.push(1);
    let e = try_with(&mut node, &d.package, &d.own, items);
    assert!(
        matches!(e, BootstrapError::GlobalRootMismatch { .. }),
        "{e}"
    );
    let mut items = d.items.clone();
    items.remove(0);
    let e = try_with(&mut node, &d.package, &d.own, items);
    assert!(
        matches!(e, BootstrapError::GlobalRootMismatch { .. }),
        "{e}"
    );
    let mut items = d.items.clone();
    items.push((200, b"minted".to_vec(), vec![1; 8]));
    let e = try_with(&mut node, &d.package, &d.own, items);
    assert!(
        matches!(e, BootstrapError::GlobalRootMismatch { .. }),
        "{e}"
    );

    // The lane's own outbox: a waiting call dropped, or the proof of another block.
    assert!(!d.own.relays.is_empty(), "calls waited at the checkpoint");
    let mut own = d.own.clone();
    own.relays.pop();
    let e = try_with(&mut node, &d.package, &own, d.items.clone());
    assert!(matches!(e, BootstrapError::Bad(_)), "{e}");
    let other = full.hash_at(d.checkpoint + 1).unwrap();
    let own = full
        .relay_proof(other, ShardId::GLOBAL, ShardId::GLOBAL)
        .unwrap();
    let e = try_with(&mut node, &d.package, &own, d.items.clone());
    assert!(matches!(e, BootstrapError::Bad(_)), "{e}");

    // The package: another block's, a chunk root bent, a shard's relays to the lane dropped.
    let package = full.partial_block(other, &[]).unwrap();
    let e = try_with(&mut node, &package, &d.own, d.items.clone());
    assert!(matches!(e, BootstrapError::Bad(_)), "{e}");
    let mut package = d.package.clone();
    package.chunks[4].state_root = rexe_chain::Hash256([9; 32]);
    let e = try_with(&mut node, &package, &d.own, d.items.clone());
    assert!(matches!(e, BootstrapError::Bad(_)), "{e}");
    let mut package = d.package.clone();
    let with_relays = package
        .relays
        .iter()
        .position(|p| !p.relays.is_empty())
        .expect("a shard sent the lane something");
    package.relays[with_relays].relays.pop();
    let e = try_with(&mut node, &package, &d.own, d.items.clone());
    assert!(matches!(e, BootstrapError::Bad(_)), "{e}");

    // Headers: another genesis's, or a checkpoint past them.
    let other_dir = tempfile::tempdir().unwrap();
    let mut other_params = params.clone();
    other_params.genesis_time += 1;
    let stranger = open_partial(other_dir.path(), &other_params, &MINE).unwrap();
    let e = node
        .bootstrap(
            &stranger.header_chain(),
            d.checkpoint,
            &d.package,
            &d.own,
            d.items.clone(),
        )
        .unwrap_err();
    assert!(matches!(e, BootstrapError::Bad(_)), "{e}");
    let e = node
        .bootstrap(
            &d.hc,
            d.hc.height() + 1,
            &d.package,
            &d.own,
            d.items.clone(),
        )
        .unwrap_err();
    assert!(matches!(e, BootstrapError::Bad(_)), "{e}");

    // A full node does not bootstrap.
    let full_dir = tempfile::tempdir().unwrap();
    let mut fresh_full = open(full_dir.path(), &params, 2);
    let e = fresh_full
        .bootstrap(&d.hc, d.checkpoint, &d.package, &d.own, d.items.clone())
        .unwrap_err();
    assert!(matches!(e, BootstrapError::NotApplicable(_)), "{e}");

    // And the real data still goes in.
    node.bootstrap(&d.hc, d.checkpoint, &d.package, &d.own, d.items.clone())
        .unwrap();
    assert_eq!(node.tip_hash(), d.hash);
    // Once past genesis, no second bootstrap.
    let e = node
        .bootstrap(&d.hc, d.checkpoint, &d.package, &d.own, d.items)
        .unwrap_err();
    assert!(matches!(e, BootstrapError::NotApplicable(_)), "{e}");
}

#[test]
fn bad_headers_are_refused_and_a_heavier_fork_replaces_a_lighter_one() {
    let mut s = setup();
    for r in 0..6 {
        round(&mut s, r);
    }
    let full = &s.net.chain;
    let dir = tempfile::tempdir().unwrap();
    let node = open_partial(dir.path(), full.params(), &MINE).unwrap();
    let now = time_of(full.params(), full.tip_height());
    let sealed = |h: u64| {
        full.sealed_header(full.hash_at(h).unwrap())
            .unwrap()
            .unwrap()
            .0
    };
    let mut hc = node.header_chain();
    node.extend_headers(&mut hc, &[sealed(1), sealed(2)], now)
        .unwrap();
    // Bits, seal, linkage, height, time: each bent header is refused and nothing of its
    // batch stays past it.
    let mut bits = sealed(3);
    bits.header.bits ^= 1;
    let mut seal = sealed(3);
    seal.seal.pop();
    let mut height = sealed(3);
    height.header.height += 1;
    let mut old = sealed(3);
    old.header.time = hc.header(0).unwrap().time;
    for (bent, what) in [
        (bits, "bits"),
        (seal, "seal"),
        (height, "height"),
        (old, "time"),
    ] {
        let e = node.extend_headers(&mut hc, &[bent], now).expect_err(what);
        assert!(!matches!(e, BlockError::PrevUnknown(_)), "{what}: {e}");
        assert_eq!(hc.height(), 2, "{what}");
    }
    let e = node.extend_headers(&mut hc, &[sealed(4)], now).unwrap_err();
    assert!(matches!(e, BlockError::PrevUnknown(_)), "{e}");
    let mut future = sealed(3);
    future.header.time = now + 3 * 3600;
    assert!(node.extend_headers(&mut hc, &[future], now).is_err());
    node.extend_headers(&mut hc, &[sealed(3), sealed(4), sealed(5)], now)
        .unwrap();
    assert_eq!(hc.height(), 5);
    // A fork from height 3 with fewer headers (less work) is ignored.
    let fork_hc = hc.clone();
    assert_eq!(fork_hc.hash_at(3), full.hash_at(3));
    let mut lighter = sealed(4);
    lighter.header.time += 1;
    lighter.seal = rexe_chain::seal::TestSealer::seal(&lighter.header);
    assert_eq!(
        node.extend_headers(&mut hc, &[lighter.clone()], now)
            .unwrap(),
        0
    );
    assert_eq!(hc.tip(), full.hash_at(5).unwrap());
    // A longer one from there replaces the headers above the fork.
    let mut chain_of = vec![lighter];
    for _ in 0..3 {
        let prev = chain_of.last().unwrap().header.clone();
        let mut h = prev.clone();
        h.prev = prev.hash();
        h.height += 1;
        h.time += 1;
        let mut next = SealedHeader {
            header: h,
            seal: Vec::new(),
        };
        next.seal = rexe_chain::seal::TestSealer::seal(&next.header);
        chain_of.push(next);
    }
    assert_eq!(node.extend_headers(&mut hc, &chain_of, now).unwrap(), 4);
    assert_eq!(hc.height(), 7);
    assert_eq!(hc.hash_at(3), full.hash_at(3));
    assert_ne!(hc.hash_at(4), full.hash_at(4));
}

#[test]
fn a_bootstrap_interrupted_before_the_shard_files_is_completed_at_restart() {
    let mut s = setup();
    let dir = tempfile::tempdir().unwrap();
    let params = s.net.chain.params().clone();
    let mut node = open_partial(dir.path(), &params, &MINE).unwrap();
    busy_chain(&mut s, node.bootstrap_depth());
    let d = serve(&mut s.net.chain, &node);
    node.bootstrap(&d.hc, d.checkpoint, &d.package, &d.own, d.items)
        .unwrap();
    drop(node);
    // As if the node died after `chain.sqlite` was written: the shard files it ran are
    // still at genesis, with their genesis accounts.
    for shard in MINE {
        let db =
            rusqlite::Connection::open(dir.path().join(format!("shard-{shard}.sqlite"))).unwrap();
        db.execute(
            "INSERT OR REPLACE INTO meta VALUES ('applied_height', ?1)",
            [&0u64.to_le_bytes()[..]],
        )
        .unwrap();
        db.execute(
            "INSERT INTO accounts (addr, balance, nonce) VALUES (?1, 5, 0)",
            [&[shard as u8; 32][..]],
        )
        .unwrap();
    }
    let mut node = open_partial(dir.path(), &params, &MINE).unwrap();
    assert_eq!(node.tip_hash(), d.hash);
    assert_eq!(node.shards_to_sync(), &[ShardId(1), ShardId(2)]);
    feed(&s.net.chain, &mut node);
    take_up(&mut s.net.chain, &mut node, ShardId(1));
    take_up(&mut s.net.chain, &mut node, ShardId(2));
    agrees(&s.net.chain, &node);
    // Nothing of the old rows came back with the shards.
    assert_eq!(
        node.account(&Address([1; 32])).unwrap(),
        s.net.chain.account(&Address([1; 32])).unwrap()
    );
}
