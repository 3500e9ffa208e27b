//! The regtest node's block store (`blocks.dat`) across crashes: a torn final record is cut
//! at the next start, and blocks mined after it are kept by every later restart.

use bitcoin::{BlockHash, CompactTarget, ScriptBuf};
use rexe_regtest::node::Node;
use rexe_regtest::REGTEST_BITS;

fn open(dir: &std::path::Path) -> Node {
    Node::open(Some(dir), CompactTarget::from_consensus(REGTEST_BITS)).unwrap()
}

fn now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32
}

fn mine(n: &mut Node, count: usize) {
    for _ in 0..count {
        n.generate(ScriptBuf::from_bytes(vec![0x51]), now())
            .unwrap();
    }
}

#[test]
fn torn_tail_is_cut_and_blocks_mined_after_it_survive_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blocks.dat");
    let mut n = open(dir.path());
    mine(&mut n, 10);
    let first: Vec<BlockHash> = n.chain.active.clone();
    drop(n);

    // A crash in the middle of the last write: its final 10 bytes never reached the disk.
    let len = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len - 10).unwrap();
    drop(f);

    let mut n = open(dir.path());
    assert_eq!(
        n.chain.height(),
        9,
        "the torn block is gone, the ones before it kept"
    );
    assert_eq!(n.chain.active[..], first[..10]);
    let cut = std::fs::metadata(&path).unwrap().len();
    assert!(cut < len - 10, "the torn record was truncated");
    assert_eq!(
        std::fs::read(dir.path().join("blocks.dat.torn"))
            .unwrap()
            .len() as u64,
        len - 10 - cut,
        "the cut bytes are kept aside"
    );
    mine(&mut n, 5);
    let second: Vec<BlockHash> = n.chain.active.clone();
    assert_eq!(second.len(), 15);
    drop(n);

    // Every block mined after the cut is read back, twice.
    for _ in 0..2 {
        let n = open(dir.path());
        assert_eq!(n.chain.active, second);
    }
    let mut n = open(dir.path());
    mine(&mut n, 1);
    drop(n);
    let n = open(dir.path());
    assert_eq!(n.chain.height(), 15);
    assert_eq!(n.chain.active[..15], second[..]);
}

#[test]
fn a_file_cut_inside_the_length_prefix_is_repaired_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blocks.dat");
    let mut n = open(dir.path());
    mine(&mut n, 3);
    drop(n);
    // Two bytes of a fourth record's length prefix.
    let mut data = std::fs::read(&path).unwrap();
    data.extend_from_slice(&[0xff, 0x01]);
    std::fs::write(&path, &data).unwrap();
    let mut n = open(dir.path());
    assert_eq!(n.chain.height(), 3);
    mine(&mut n, 2);
    drop(n);
    assert_eq!(open(dir.path()).chain.height(), 5);
}
