//! Shard state sync: a partial node takes up another shard from its peers' pages (checked
//! against the chunk state root of its tip) and the proofs of what the shard runs next
//! (checked against the tip's header), resumes an interrupted sync, and catches every bent
//! page or proof.

mod common;

use std::sync::Arc;

use common::contracts::{call_tx, Net, SPENDER};
use common::*;
use rexe_chain::contract::{self, Target};
use rexe_chain::proof::RelayProof;
use rexe_chain::seal::TestSealer;
use rexe_chain::sync::{StateCursor, StatePage, SyncError};
use rexe_chain::{Address, Amount, BlockHash, Chain, ChainError, ShardId, Signer};
use serde_json::json;

const ORDER: u8 = 2;
/// The shard the partial node takes up.
const NEW: ShardId = ShardId(2);

fn open_tracking(dir: &std::path::Path, net: &Net, shards: &[u16]) -> Result<Chain, ChainError> {
    open_partial(dir, net.chain.params(), shards)
}

/// Feeds `to` the active blocks of `from` it lacks: whole blocks to a full node, packages
/// to a partial one.
fn feed(from: &Chain, to: &mut Chain) {
    for h in to.tip_height() + 1..=from.tip_height() {
        let hash = from.hash_at(h).unwrap();
        let r = if to.is_partial() {
            let pb = from.partial_block(hash, &to.tracked_shards()).unwrap();
            let now = pb.block.header.time;
            to.submit_partial(pb, now)
        } else {
            let b = from.block(hash).unwrap().unwrap();
            let now = b.header.time;
            to.submit(b, now)
        };
        r.unwrap_or_else(|e| panic!("block {h}: {e}"));
    }
}

/// The proofs, from every chunk of block `hash`, of what it sent `target`.
fn proofs(server: &Chain, hash: BlockHash, target: ShardId) -> Vec<RelayProof> {
    let n = server.params().shard_order.shard_count() as u16;
    (0..n)
        .map(ShardId)
        .chain([ShardId::GLOBAL])
        .map(|o| server.relay_proof(hash, o, target).unwrap())
        .collect()
}

/// Asks `server` for the page the sync under way on `node` needs next.
fn next_page(server: &mut Chain, node: &Chain, rows: usize) -> Option<StatePage> {
    let p = node.state_sync(NEW).unwrap().expect("a sync under way");
    let from = p.cursor?;
    Some(server.state_page(NEW, p.block, from, rows).unwrap())
}

/// A 4-shard chain whose shard 2 has relays waiting for gas, one full peer beside it, and a
/// partial node on {0,1} following it. Returns the contract and the keys on shard 2.
struct Setup {
    net: Net,
    peer: Chain,
    node: Chain,
    node_dir: tempfile::TempDir,
    _peer_dir: tempfile::TempDir,
    spender: Address,
    locals: Vec<Signer>,
}

fn setup() -> Setup {
    let locals = keys_on(ORDER, NEW.0, 5, "local");
    let senders: Vec<Signer> = [0u16, 1, 3]
        .iter()
        .flat_map(|s| keys_on(ORDER, *s, 3, "sender"))
        .collect();
    let mut keys = vec![Signer::from_seed(b"deployer")];
    keys.extend(senders.iter().cloned());
    keys.extend(locals.iter().cloned());
    let mut p = params(ORDER, &keys);
    // Room for a few relayed calls per block: the rest wait.
    p.block_gas_per_shard = 3_000_000;
    let mut net = Net::with_params(p, keys, config(2));
    let spender = net.deploy(0, SPENDER, &json!({}));
    let peer_dir = tempfile::tempdir().unwrap();
    let mut peer = Chain::open(
        peer_dir.path(),
        net.chain.params().clone(),
        config(2),
        Arc::new(TestSealer),
    )
    .unwrap();
    let node_dir = tempfile::tempdir().unwrap();
    let mut node = open_tracking(node_dir.path(), &net, &[0, 1]).unwrap();
    feed(&net.chain, &mut peer);
    feed(&net.chain, &mut node);
    Setup {
        net,
        peer,
        node,
        node_dir,
        _peer_dir: peer_dir,
        spender,
        locals,
    }
}

/// Every sender relays a call to `to` (on shard 2) and every local key pays another.
fn busy_round(net: &mut Net, spender: Address, locals: &[Signer], round: u64) {
    let code = net.chain.contracts().get(&spender).unwrap().code.clone();
    let (_, f) = code.function("pass").unwrap();
    let to = locals[round as usize % locals.len()].address();
    let args = contract::abi::encode_args(&code, f, &json!([to.to_string(), 2])).unwrap();
    for i in 1..=9 {
        let k = net.keys[i].clone();
        let tx = call_tx(
            &k,
            net.nonces[i],
            spender,
            "pass",
            args.clone(),
            1_000_000,
            1_000,
        );
        net.nonces[i] += 1;
        net.chain.submit_tx(tx).unwrap();
    }
    for i in 10..net.keys.len() {
        let to = net.keys[10 + (i - 9) % locals.len()].address();
        let tx = transfer(&net.keys[i], to, 500 + round, net.nonces[i], 1_000);
        net.nonces[i] += 1;
        net.chain.submit_tx(tx).unwrap();
    }
    net.mine();
}

/// What every shard runs next is what the proofs of the tip's outboxes give.
fn next_inbound_is_proven(chain: &Chain) {
    let tip = chain.tip_hash();
    let header = chain.header(&tip).unwrap().clone();
    for s in 0..4u16 {
        let next = rexe_chain::partial::next_inbound_from_proofs(
            &header,
            ShardId(s),
            &proofs(chain, tip, ShardId(s)),
        )
        .unwrap();
        assert_eq!(next, chain.inbound()[s as usize], "shard {s} at {tip}");
    }
}

fn agrees(full: &Chain, p: &Chain) {
    assert_eq!(p.tip_hash(), full.tip_hash());
    assert_eq!(p.global_digest(), full.global_digest());
    let (fr, pr) = (full.shard_roots(), p.shard_roots());
    for s in p.tracked_shards() {
        assert_eq!(pr[s.index()], fr[s.index()], "shard {s}");
    }
}

#[test]
fn a_partial_node_takes_up_a_shard_from_two_peers_interrupted_and_resumed() {
    let mut s = setup();
    // Relayed calls pile up on shard 2: what waits is committed in its outbox, so the
    // proofs of the tip's outboxes give exactly what every shard runs next.
    let mut waited = false;
    for round in 0..4 {
        busy_round(&mut s.net, s.spender, &s.locals, round);
        next_inbound_is_proven(&s.net.chain);
        waited |= !s.net.chain.inbound()[NEW.index()].is_empty();
    }
    assert!(waited, "relays wait on shard 2");
    assert!(
        !s.net.chain.inbound()[NEW.index()].is_empty(),
        "relays wait on shard 2 at the sync's block"
    );
    feed(&s.net.chain, &mut s.peer);
    feed(&s.net.chain, &mut s.node);
    agrees(&s.net.chain, &s.node);
    // The partial node holds no account of the shards it does not run (not even genesis
    // ones): its caches hold its own shards' accounts only.
    let cached: Vec<usize> = s.node.cache_stats().iter().map(|c| c.accounts).collect();
    assert!(cached[0] > 0 && cached[1] > 0, "{cached:?}");
    assert_eq!((cached[2], cached[3]), (0, 0), "{cached:?}");

    // The operator adds shard 2: the node opens on {0,1} with 2 left to sync.
    drop(s.node);
    let mut node = open_tracking(s.node_dir.path(), &s.net, &[0, 1, 2]).unwrap();
    assert_eq!(node.shards_to_sync(), &[NEW]);
    assert_eq!(node.tracked_shards(), vec![ShardId(0), ShardId(1)]);
    let started = node.begin_state_sync(NEW).unwrap();
    let (block, height) = (started.block, started.height);
    assert_eq!(block, node.tip_hash());

    // The peers move on (and flush past the sync's block); they still serve it.
    for round in 4..8 {
        busy_round(&mut s.net, s.spender, &s.locals, round);
    }
    feed(&s.net.chain, &mut s.peer);
    assert!(s.net.chain.tip_height() >= height + 4);

    // Three small pages from the two peers in turn, then the node dies.
    for i in 0..3 {
        let server = if i % 2 == 0 {
            &mut s.net.chain
        } else {
            &mut s.peer
        };
        let page = next_page(server, &node, 2).unwrap();
        node.apply_state_page(&page).unwrap();
    }
    let before = node.state_sync(NEW).unwrap().unwrap();
    assert!(before.rows >= 4, "{before:?}");
    drop(node);

    // Restarted, it resumes where it stopped, from the other peer.
    let mut node = open_tracking(s.node_dir.path(), &s.net, &[0, 1, 2]).unwrap();
    assert_eq!(node.state_sync(NEW).unwrap(), Some(before));
    assert_eq!(node.tip_hash(), block);
    let mut pages = 3;
    while let Some(page) = next_page(&mut s.peer, &node, 3) {
        node.apply_state_page(&page).unwrap();
        pages += 1;
    }
    let done = node.state_sync(NEW).unwrap().unwrap();
    assert!(pages >= 6, "{pages} pages");
    // Every account of shard 2 and its contract rows (the fee state, the spender's rows).
    assert!(done.rows >= 5 + 2, "{done:?}");

    // What the shard runs next, proven against the tip's header by a peer that runs it.
    node.adopt_shard(NEW, &proofs(&s.peer, block, NEW)).unwrap();
    assert!(node.tracks(NEW));
    assert!(node.shards_to_sync().is_empty());
    assert!(
        !node.inbound()[NEW.index()].is_empty(),
        "the waiting relays came with the shard"
    );
    assert_eq!(node.state_sync(NEW).unwrap(), None);

    // It runs shard 2 from here, through the peers' later blocks and until the relays
    // settle, and agrees with them on every shard it runs.
    feed(&s.net.chain, &mut node);
    agrees(&s.net.chain, &node);
    s.net.settle();
    feed(&s.net.chain, &mut node);
    agrees(&s.net.chain, &node);
    for k in &s.locals {
        let a = k.address();
        assert_eq!(node.account(&a).unwrap(), s.net.chain.account(&a).unwrap());
        assert_eq!(
            node.contract_state(&s.spender, &Target::Address(a))
                .unwrap(),
            s.net
                .chain
                .contract_state(&s.spender, &Target::Address(a))
                .unwrap()
        );
    }

    // A restart keeps the shard; another round still agrees.
    drop(node);
    let mut node = open_tracking(s.node_dir.path(), &s.net, &[0, 1, 2]).unwrap();
    assert!(node.tracks(NEW) && node.shards_to_sync().is_empty());
    busy_round(&mut s.net, s.spender, &s.locals, 9);
    s.net.settle();
    feed(&s.net.chain, &mut node);
    agrees(&s.net.chain, &node);
    // Dropping a shard is still refused.
    drop(node);
    let e = open_tracking(s.node_dir.path(), &s.net, &[0, 1])
        .err()
        .unwrap();
    assert!(matches!(e, ChainError::TrackedChanged { .. }), "{e}");
}

#[test]
fn bent_pages_and_proofs_are_caught_and_the_sync_starts_over() {
    let mut s = setup();
    for round in 0..3 {
        busy_round(&mut s.net, s.spender, &s.locals, round);
    }
    feed(&s.net.chain, &mut s.node);
    let tip = s.node.tip_hash();

    // What cannot be synced or served.
    assert!(matches!(
        s.net.chain.begin_state_sync(NEW),
        Err(SyncError::NotSyncable(..))
    ));
    assert!(matches!(
        s.node.begin_state_sync(ShardId(1)),
        Err(SyncError::NotSyncable(..))
    ));
    assert!(matches!(
        s.node.state_page(ShardId(3), tip, StateCursor::START, 10),
        Err(SyncError::NotServed(..))
    ));
    assert!(matches!(
        s.net.chain.state_page(
            NEW,
            BlockHash(rexe_chain::Hash256([9; 32])),
            StateCursor::START,
            10
        ),
        Err(SyncError::NotServed(..))
    ));
    assert!(matches!(
        s.node.adopt_shard(NEW, &[]),
        Err(SyncError::NotSyncing(_))
    ));

    // Pages that answer something else, or could repeat rows, are refused one by one.
    s.node.begin_state_sync(NEW).unwrap();
    let good = next_page(&mut s.net.chain, &s.node, 2).unwrap();
    assert!(good.accounts.len() >= 2);
    let refuse = |node: &mut Chain, page: StatePage, what: &str| {
        let e = node.apply_state_page(&page).expect_err(what);
        assert!(
            matches!(
                e,
                SyncError::Unasked(_) | SyncError::BadPage(_) | SyncError::NotSyncing(_)
            ),
            "{what}: {e}"
        );
    };
    let mut p = good.clone();
    p.block = s.net.chain.hash_at(1).unwrap();
    refuse(&mut s.node, p, "another block");
    let mut p = good.clone();
    p.from = StateCursor::Rows(None);
    refuse(&mut s.node, p, "another cursor");
    let mut p = good.clone();
    p.accounts.swap(0, 1);
    refuse(&mut s.node, p, "out of order");
    let mut p = good.clone();
    p.accounts.push(p.accounts[0]);
    refuse(&mut s.node, p, "a row twice");
    let mut p = good.clone();
    p.shard = ShardId(3);
    refuse(&mut s.node, p, "another shard");
    assert_eq!(
        s.node.state_sync(NEW).unwrap().unwrap().rows,
        0,
        "nothing refused was stored"
    );

    // Pages with a changed balance, or a row left out, go in (a page cannot be checked
    // alone) and the sync is caught at the root: it starts over.
    for bend in ["balance", "dropped"] {
        s.node.begin_state_sync(NEW).unwrap();
        let mut first = true;
        while let Some(mut page) = next_page(&mut s.net.chain, &s.node, 2) {
            if first && !page.accounts.is_empty() {
                match bend {
                    "balance" => page.accounts[0].account.balance = Amount::from_sat(1),
                    _ => {
                        page.accounts.remove(0);
                    }
                }
                first = false;
            }
            s.node.apply_state_page(&page).unwrap();
        }
        let e = s
            .node
            .adopt_shard(NEW, &proofs(&s.net.chain, tip, NEW))
            .unwrap_err();
        assert!(matches!(e, SyncError::RootMismatch { .. }), "{bend}: {e}");
        assert_eq!(s.node.state_sync(NEW).unwrap(), None, "{bend}: starts over");
        assert!(!s.node.tracks(NEW));
    }

    // An honest sync; then bent proofs of what the shard runs next are refused and leave
    // the sync in place.
    s.node.begin_state_sync(NEW).unwrap();
    while let Some(page) = next_page(&mut s.net.chain, &s.node, 50) {
        s.node.apply_state_page(&page).unwrap();
    }
    let good = proofs(&s.net.chain, tip, NEW);
    assert!(
        !good[NEW.index()].relays.is_empty(),
        "relays wait on shard 2"
    );
    let mut missing = good.clone();
    missing.remove(3);
    let mut withheld = good.clone();
    withheld[NEW.index()].relays.pop();
    let mut twice = good.clone();
    twice.push(good[0].clone());
    let mut other = good.clone();
    other[0] = s
        .net
        .chain
        .relay_proof(tip, ShardId(0), ShardId(3))
        .unwrap();
    for (what, bad) in [
        ("a proof missing", missing),
        ("a waiting relay withheld", withheld),
        ("a proof twice", twice),
        ("a proof to another shard", other),
    ] {
        let e = s.node.adopt_shard(NEW, &bad).unwrap_err();
        assert!(matches!(e, SyncError::BadProofs(_)), "{what}: {e}");
        assert!(!s.node.tracks(NEW), "{what}");
    }
    assert!(s.node.state_sync(NEW).unwrap().is_some());

    // A block connected during the sync: the synced state is behind, the sync starts over.
    busy_round(&mut s.net, s.spender, &s.locals, 3);
    feed(&s.net.chain, &mut s.node);
    let e = s.node.adopt_shard(NEW, &good).unwrap_err();
    assert!(matches!(e, SyncError::TipMoved { .. }), "{e}");
    assert_eq!(s.node.state_sync(NEW).unwrap(), None);
    assert!(!s.node.tracks(NEW));
}
