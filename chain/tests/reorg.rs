//! Rollback and reorganisation to the branch with the most work.

mod common;

use common::*;
use rexe_chain::seal::TestSealer;
use rexe_chain::{Block, Chain, Signer, SubmitOutcome};

/// Mines `n` blocks with a few transfers each; keys rotate so that nonces stay simple.
fn mine_with_transfers(
    chain: &mut Chain,
    keys: &[Signer],
    n: usize,
    miner: &Signer,
    salt: u64,
) -> Vec<Block> {
    let mut out = Vec::new();
    for i in 0..n {
        for (k, key) in keys.iter().enumerate().take(4) {
            let nonce = chain.account(&key.address()).unwrap().nonce;
            let to = keys[(k + 1 + i) % keys.len()].address();
            chain
                .submit_tx(transfer(key, to, 100 + salt + i as u64, nonce, 3))
                .unwrap();
        }
        out.push(mine(chain, miner.address()));
        assert_supply(chain);
    }
    out
}

fn submit_all(chain: &mut Chain, blocks: &[Block]) -> Vec<SubmitOutcome> {
    blocks
        .iter()
        .map(|b| {
            let now = b.header.time;
            chain.submit(b.clone(), now).expect("valid block")
        })
        .collect()
}

#[test]
fn rollback_then_competing_branch_equals_building_that_branch_from_genesis() {
    let keys = keys(12);
    let p = params(2, &keys);
    let miner_a = Signer::from_seed(b"miner-a");
    let miner_b = Signer::from_seed(b"miner-b");

    // Chain X: 10 blocks of branch A, roll back 3, then 4 blocks of branch B.
    let dx = tempfile::tempdir().unwrap();
    let mut x = open(dx.path(), &p, 2);
    let a = mine_with_transfers(&mut x, &keys, 10, &miner_a, 0);
    x.rollback(3).unwrap();
    assert_eq!(x.tip_height(), 7);
    assert_supply(&mut x);
    // The rolled-back transactions are back in the mempool; drop them by building B
    // from explicit lists instead.
    let b = {
        let mut out = Vec::new();
        for i in 0..4u64 {
            let h = x.tip_height() + 1;
            let now = time_of(&p, h) + 1000;
            let key = &keys[(i as usize) % keys.len()];
            let nonce = x.account(&key.address()).unwrap().nonce;
            let tx = transfer(key, miner_b.address(), 777 + i, nonce, 5);
            let mut txs = vec![Vec::new(); 4];
            txs[rexe_chain::shard_of(&key.address(), p.shard_order).index()].push(tx);
            let mut blk = x.template_with(miner_b.address(), now, txs, false).unwrap();
            blk.seal = TestSealer::seal(&blk.header);
            assert_eq!(
                x.submit(blk.clone(), now).unwrap(),
                SubmitOutcome::Connected
            );
            assert_supply(&mut x);
            out.push(blk);
        }
        out
    };
    assert_eq!(x.tip_height(), 11);

    // Chain Y: genesis, A[0..7], then B.
    let dy = tempfile::tempdir().unwrap();
    let mut y = open(dy.path(), &p, 1);
    submit_all(&mut y, &a[..7]);
    submit_all(&mut y, &b);
    assert_eq!(y.tip_hash(), x.tip_hash());
    assert_eq!(y.shard_roots(), x.shard_roots());
    assert_eq!(y.all_accounts().unwrap(), x.all_accounts().unwrap());

    // Chain Z: all of A, then B arrives: a reorg of 3 once B has more work.
    let dz = tempfile::tempdir().unwrap();
    let mut z = open(dz.path(), &p, 2);
    submit_all(&mut z, &a);
    let outcomes = submit_all(&mut z, &b);
    assert_eq!(
        outcomes,
        vec![
            SubmitOutcome::SideBranch,
            SubmitOutcome::SideBranch,
            SubmitOutcome::SideBranch,
            SubmitOutcome::Reorged { depth: 3 }
        ]
    );
    assert_eq!(z.tip_hash(), x.tip_hash());
    assert_eq!(z.shard_roots(), x.shard_roots());
    assert_eq!(z.all_accounts().unwrap(), x.all_accounts().unwrap());
    assert_supply(&mut z);

    // And it survives a restart.
    let tip = z.tip_hash();
    let roots = z.shard_roots();
    drop(z);
    let mut z = open(dz.path(), &p, 2);
    assert_eq!(z.tip_hash(), tip);
    assert_eq!(z.shard_roots(), roots);
    assert_supply(&mut z);
}

#[test]
fn reorg_to_an_invalid_branch_restores_the_old_one() {
    let keys = keys(8);
    let p = params(1, &keys);
    let miner = Signer::from_seed(b"m");
    let d1 = tempfile::tempdir().unwrap();
    let mut good = open(d1.path(), &p, 2);
    let a = mine_with_transfers(&mut good, &keys, 4, &miner, 0);

    // A competing branch from height 2 whose second block lies about its state root.
    let d2 = tempfile::tempdir().unwrap();
    let mut other = open(d2.path(), &p, 1);
    submit_all(&mut other, &a[..2]);
    let mut side = Vec::new();
    for i in 0..3u64 {
        let h = other.tip_height() + 1;
        let now = time_of(&p, h) + 500;
        let mut blk = other
            .template_with(miner.address(), now, vec![Vec::new(); 2], false)
            .unwrap();
        if i == 1 {
            blk.header.state_root = rexe_chain::Hash256([9; 32]);
        }
        blk.seal = TestSealer::seal(&blk.header);
        if i == 1 {
            side.push(blk);
            break;
        }
        other.submit(blk.clone(), now).unwrap();
        side.push(blk);
    }
    let roots = good.shard_roots();
    let tip = good.tip_hash();
    // side[0] is a side block; side[1] (invalid) would make the side branch 4 blocks long,
    // equal work to the active 4-block chain, so add one valid-looking child to tip it over.
    good.submit(side[0].clone(), side[0].header.time).unwrap();
    let r = good.submit(side[1].clone(), side[1].header.time);
    // Equal work: stored as a side branch, not yet executed.
    assert_eq!(r.unwrap(), SubmitOutcome::SideBranch);
    let mut child = side[1].clone();
    child.header.prev = side[1].header.hash();
    child.header.height += 1;
    child.header.time += 1;
    child.header.tx_root = side[1].header.tx_root;
    child.seal = TestSealer::seal(&child.header);
    let err = good.submit(child, side[1].header.time + 1).unwrap_err();
    assert!(
        matches!(err, rexe_chain::BlockError::BadStateRoot { .. }),
        "got {err}"
    );
    assert_eq!(good.tip_hash(), tip);
    assert_eq!(good.shard_roots(), roots);
    assert_supply(&mut good);
}

/// Relays of blocks deeper than the undo depth are pruned at checkpoints; rolling back the
/// whole undo depth and restarting still work.
#[test]
fn old_relays_are_pruned_and_rollbacks_still_work() {
    let keys = keys(8);
    let mut p = params(2, &keys);
    p.undo_depth = 4;
    let dir = tempfile::tempdir().unwrap();
    let miner = Signer::from_seed(b"miner");
    let mut chain = open(dir.path(), &p, 2);
    mine_with_transfers(&mut chain, &keys, 15, &miner, 0);
    let relay_rows = || -> i64 {
        rusqlite::Connection::open(dir.path().join("chain.sqlite"))
            .unwrap()
            .query_row("SELECT COUNT(*) FROM relays", [], |r| r.get(0))
            .unwrap()
    };
    // Genesis and 15 blocks stored relays; at the last checkpoint (height 15, every 3
    // blocks) those below 15 - 4 went.
    assert_eq!(relay_rows(), 5, "relays of heights 11..=15 are kept");
    chain.rollback(p.undo_depth).unwrap();
    assert_eq!(chain.tip_height(), 15 - p.undo_depth);
    assert_supply(&mut chain);
    // The rolled-back transactions are back in the mempool: these blocks take them again.
    mine(&mut chain, miner.address());
    mine(&mut chain, miner.address());
    assert_supply(&mut chain);
    drop(chain);
    let mut chain = open(dir.path(), &p, 1);
    assert_eq!(chain.tip_height(), 15 - p.undo_depth + 2);
    assert_supply(&mut chain);
    mine_with_transfers(&mut chain, &keys, 1, &miner, 9);
}
