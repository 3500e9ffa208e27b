//! Bitcoin-anchored finality: once a block's seal parent is buried on the tracked Bitcoin
//! chain, no branch forking below it is taken, whatever its work, and the anchor survives a
//! restart. A stand-in sealer names a "Bitcoin parent" in the seal and a stand-in system
//! contract says which parents are buried, so that the rule is tested on its own.

mod common;

use std::any::Any;
use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use common::*;
use rexe_chain::seal::{SealError, Sealer, TestSealer};
use rexe_chain::system::{Call, CallError, Credit, GlobalCtx, SystemContract, SystemId};
use rexe_chain::{Amount, Block, BlockError, Chain, ChainParams, Header, Signer, SubmitOutcome};

/// Seal: the test nonce, then optionally the 32-byte hash of the "Bitcoin parent".
struct ParentSealer;

impl Sealer for ParentSealer {
    fn verify(&self, header: &Header, seal: &[u8]) -> Result<(), SealError> {
        if seal.len() != 8 && seal.len() != 40 {
            return Err(SealError("seal must be 8 or 40 bytes".into()));
        }
        TestSealer.verify(header, &seal[..8])
    }
    fn bitcoin_parent(&self, seal: &[u8]) -> Option<[u8; 32]> {
        seal.get(8..40)?.try_into().ok()
    }
}

/// Says which Bitcoin blocks are buried (shared with the test, standing in for the peg's
/// header chain; holds no state of its own).
#[derive(Clone, Default)]
struct Buried(Arc<Mutex<HashSet<[u8; 32]>>>);

impl SystemContract for Buried {
    fn id(&self) -> SystemId {
        SystemId(9)
    }
    fn clone_box(&self) -> Box<dyn SystemContract> {
        Box::new(self.clone())
    }
    fn precheck(&self, _: &GlobalCtx, _: &Call<'_>) -> Result<(), CallError> {
        Err(CallError::new("no calls"))
    }
    fn call(&mut self, _: &GlobalCtx, _: &Call<'_>) -> Result<Vec<Credit>, CallError> {
        Err(CallError::new("no calls"))
    }
    fn has_due_work(&self, _: &GlobalCtx) -> bool {
        false
    }
    fn end_block(&mut self, _: &GlobalCtx) -> Vec<Credit> {
        Vec::new()
    }
    fn held(&self) -> Amount {
        Amount::ZERO
    }
    fn items(&self) -> Vec<rexe_chain::system::Item> {
        Vec::new()
    }
    fn apply(&mut self, changes: &[rexe_chain::system::Change]) -> Result<(), CallError> {
        match changes {
            [] => Ok(()),
            _ => Err(CallError::new("no items")),
        }
    }
    fn anchors(&self, btc_block: &[u8; 32]) -> bool {
        self.0.lock().unwrap().contains(btc_block)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn open_anchored(dir: &Path, p: &ChainParams, buried: &Buried) -> Chain {
    Chain::open_with_systems(
        dir,
        p.clone(),
        config(1),
        Arc::new(ParentSealer),
        vec![Box::new(buried.clone())],
    )
    .expect("open chain")
}

/// Mines one empty block on the tip, its seal naming `parent`; `skew` makes branches differ.
fn mine_sealed(chain: &mut Chain, miner: &Signer, parent: Option<[u8; 32]>, skew: u64) -> Block {
    let h = chain.tip_height() + 1;
    let now = time_of(chain.params(), h) + skew;
    let mut b = chain
        .template_with(miner.address(), now, vec![Vec::new(); 2], false)
        .expect("template");
    b.seal = TestSealer::seal(&b.header);
    if let Some(p) = parent {
        b.seal.extend_from_slice(&p);
    }
    assert_eq!(
        chain.submit(b.clone(), now).expect("own block"),
        SubmitOutcome::Connected
    );
    b
}

fn submit(chain: &mut Chain, b: &Block) -> Result<SubmitOutcome, BlockError> {
    chain.submit(b.clone(), b.header.time + 10_000)
}

#[test]
fn no_branch_below_an_anchored_block_is_taken_whatever_its_work() {
    let keys = keys(2);
    let p = params(1, &keys);
    let (honest, attacker) = (Signer::from_seed(b"honest"), Signer::from_seed(b"attacker"));
    let btc = [0xb7; 32];

    // The honest chain: block 3 is sealed by Bitcoin block `btc`.
    let dir = tempfile::tempdir().unwrap();
    let buried = Buried::default();
    let mut x = open_anchored(dir.path(), &p, &buried);
    let mut honest_blocks = Vec::new();
    for h in 1..=5u64 {
        let parent = (h == 3).then_some(btc);
        honest_blocks.push(mine_sealed(&mut x, &honest, parent, 0));
    }
    assert_eq!(x.anchor(), None, "not buried yet: nothing is final");
    // The tracked Bitcoin chain buries `btc`: the next block moves the anchor to block 3.
    buried.0.lock().unwrap().insert(btc);
    honest_blocks.push(mine_sealed(&mut x, &honest, None, 0));
    let anchor = (3, honest_blocks[2].header.hash());
    assert_eq!(x.anchor(), Some(anchor));
    assert!(x.is_final(3) && x.is_final(1) && !x.is_final(4));
    let tip = x.tip_hash();

    // A private branch forking at block 2 with ten times the blocks (and work).
    let dy = tempfile::tempdir().unwrap();
    let mut y = open_anchored(dy.path(), &p, &Buried::default());
    for b in &honest_blocks[..2] {
        let mut plain = b.clone();
        plain.seal.truncate(8);
        assert_eq!(submit(&mut y, &plain).unwrap(), SubmitOutcome::Connected);
    }
    let private: Vec<Block> = (0..60)
        .map(|_| mine_sealed(&mut y, &attacker, None, 1))
        .collect();
    assert!(y.tip_work() > x.tip_work());
    let mut refused = 0;
    for b in &private {
        match submit(&mut x, b) {
            Ok(SubmitOutcome::SideBranch) => {}
            Err(BlockError::BelowAnchor { fork: 2, anchor: 3 }) => refused += 1,
            other => panic!("private block: {other:?}"),
        }
    }
    assert!(
        refused > 0,
        "the branch with more work was never considered"
    );
    assert_eq!(x.tip_hash(), tip, "the anchored branch stays active");

    // After a restart the anchor stands and the branch is still refused.
    drop(x);
    let mut x = open_anchored(dir.path(), &p, &buried);
    assert_eq!(x.anchor(), Some(anchor));
    let more = mine_sealed(&mut y, &attacker, None, 1);
    assert!(matches!(
        submit(&mut x, &more),
        Err(BlockError::BelowAnchor { .. })
    ));
    assert_eq!(x.tip_hash(), tip);

    // A branch forking at or above the anchor with more work is still taken.
    let dz = tempfile::tempdir().unwrap();
    let mut z = open_anchored(dz.path(), &p, &Buried::default());
    for b in &honest_blocks[..3] {
        let mut plain = b.clone();
        plain.seal.truncate(8);
        submit(&mut z, &plain).unwrap();
    }
    let above: Vec<Block> = (0..6)
        .map(|_| mine_sealed(&mut z, &attacker, None, 2))
        .collect();
    let outcomes: Vec<SubmitOutcome> = above.iter().map(|b| submit(&mut x, b).unwrap()).collect();
    assert!(
        outcomes.contains(&SubmitOutcome::Reorged { depth: 3 }),
        "{outcomes:?}"
    );
    assert_eq!(x.tip_hash(), above.last().unwrap().header.hash());
    assert_eq!(x.anchor(), Some(anchor));
}

/// Control: the same private branch wins when the seal parent is not buried (stale or
/// premature work anchors nothing), so the test above can fail.
#[test]
fn without_a_buried_seal_parent_the_branch_with_more_work_wins() {
    let keys = keys(2);
    let p = params(1, &keys);
    let (honest, attacker) = (Signer::from_seed(b"honest"), Signer::from_seed(b"attacker"));
    let dir = tempfile::tempdir().unwrap();
    let buried = Buried::default();
    let mut x = open_anchored(dir.path(), &p, &buried);
    let honest_blocks: Vec<Block> = (1..=6u64)
        .map(|h| mine_sealed(&mut x, &honest, (h == 3).then_some([0xb7; 32]), 0))
        .collect();
    assert_eq!(x.anchor(), None);
    let dy = tempfile::tempdir().unwrap();
    let mut y = open_anchored(dy.path(), &p, &Buried::default());
    for b in &honest_blocks[..2] {
        let mut plain = b.clone();
        plain.seal.truncate(8);
        submit(&mut y, &plain).unwrap();
    }
    let private: Vec<Block> = (0..10)
        .map(|_| mine_sealed(&mut y, &attacker, None, 1))
        .collect();
    for b in &private {
        submit(&mut x, b).unwrap();
    }
    assert_eq!(x.tip_hash(), y.tip_hash());
}
