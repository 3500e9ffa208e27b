//! AuxPoW against real Namecoin and Dogecoin data (see tests/data/README.md), a mutation
//! suite (each rule broken once), and round trips of what the builder makes.

use bitcoin::block::Header as BtcHeader;
use bitcoin::consensus::deserialize;
use bitcoin::hashes::{sha256d, Hash};
use bitcoin::hex::{DisplayHex, FromHex};
use bitcoin::pow::{CompactTarget, Target};
use bitcoin::ScriptBuf;
use proptest::prelude::*;
use rexe_miner::auxpow::{
    expected_index, merkle_branch_root, mine_parent, AuxPow, AuxPowError, AuxTree, ChainId,
    MERGED_MINING_HEADER,
};

fn vector(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    Vec::<u8>::from_hex(std::fs::read_to_string(path).unwrap().trim()).unwrap()
}

/// (Namecoin header, its hash as aux hash, the AuxPoW).
fn block_37174() -> (BtcHeader, [u8; 32], AuxPow) {
    let bytes = vector("namecoin-mainnet-37174.header-auxpow.hex");
    let header: BtcHeader = deserialize(&bytes[..80]).unwrap();
    let hash = sha256d::Hash::hash(&bytes[..80]).to_byte_array();
    let aux = AuxPow::decode(&bytes[80..]).unwrap();
    (header, hash, aux)
}

fn target(bits: u32) -> Target {
    Target::from_compact(CompactTarget::from_consensus(bits))
}

#[test]
fn namecoin_block_37174_verifies_with_chain_id_1_only() {
    let (header, hash, aux) = block_37174();
    assert_eq!(
        ChainId::of_version(header.version.to_consensus()),
        ChainId::NAMECOIN
    );
    aux.check(hash, ChainId::NAMECOIN).unwrap();
    for other in [0u32, 2, 0x62, ChainId::REXE.0] {
        assert!(aux.check(hash, ChainId(other)).is_err(), "chain id {other}");
    }
    assert_eq!(aux.chain_branch.len(), 4);
    assert_eq!(aux.chain_index, 11);
    assert_eq!(aux.coinbase_branch.len(), 5);
    // Premature parent: misses its own target, meets Namecoin's.
    assert_eq!(aux.parent.bits.to_consensus(), 0x1a0d_69d7);
    assert_eq!(header.bits.to_consensus(), 0x1a24_2a4a);
    assert!(matches!(
        aux.check_pow(target(0x1a0d_69d7)),
        Err(AuxPowError::HighHash { .. })
    ));
    aux.check_pow(target(0x1a24_2a4a)).unwrap();
    // Re-encoding gives the original bytes.
    let bytes = vector("namecoin-mainnet-37174.header-auxpow.hex");
    assert_eq!(
        aux.encode().to_lower_hex_string(),
        bytes[80..].to_lower_hex_string()
    );
}

#[test]
fn a_parent_with_our_chain_id_is_rejected() {
    let (_, hash, mut aux) = block_37174();
    let plain: BtcHeader = deserialize(&vector("namecoin-mainnet-19204.plain-header.hex")).unwrap();
    aux.parent = plain;
    assert_eq!(
        aux.check(hash, ChainId::NAMECOIN),
        Err(AuxPowError::ParentHasOurChainId)
    );
}

fn script_of(aux: &AuxPow) -> Vec<u8> {
    aux.coinbase_tx.input[0].script_sig.to_bytes()
}

fn set_script(aux: &mut AuxPow, s: Vec<u8>) {
    aux.coinbase_tx.input[0].script_sig = ScriptBuf::from_bytes(s);
}

/// A single-chain AuxPoW of our own whose coinbase we may rewrite (the parent's merkle
/// root is recomputed so that only the rule under test breaks).
fn own() -> ([u8; 32], AuxPow) {
    let aux_hash = [7u8; 32];
    let tree = AuxTree::build(&[(ChainId::REXE, aux_hash)]).unwrap();
    let aux = mine_parent(
        &tree,
        ChainId::REXE,
        CompactTarget::from_consensus(0x207f_ffff),
        target(0x207f_ffff),
        1,
    );
    (aux_hash, aux)
}

fn fix_root(aux: &mut AuxPow) {
    aux.parent.merkle_root =
        bitcoin::TxMerkleNode::from_byte_array(aux.coinbase_tx.compute_txid().to_byte_array());
}

#[test]
fn mutations_are_each_rejected_with_their_rule() {
    let (h, base) = own();
    base.check(h, ChainId::REXE).unwrap();

    let mut a = base.clone();
    a.coinbase_index = 1;
    assert_eq!(a.check(h, ChainId::REXE), Err(AuxPowError::NotAGenerate(1)));

    let mut a = base.clone();
    a.parent.version =
        bitcoin::block::Version::from_consensus(((ChainId::REXE.0 as i32) << 16) | 4);
    assert_eq!(
        a.check(h, ChainId::REXE),
        Err(AuxPowError::ParentHasOurChainId)
    );

    let mut a = base.clone();
    a.parent.version = bitcoin::block::Version::from_consensus(0x2000_0100);
    assert_eq!(a.check(h, ChainId::REXE), Err(AuxPowError::ParentIsAuxpow));

    let mut a = base.clone();
    a.chain_branch = vec![[0u8; 32]; 31];
    assert_eq!(
        a.check(h, ChainId::REXE),
        Err(AuxPowError::ChainBranchTooLong(31))
    );

    let mut a = base.clone();
    a.parent.merkle_root = bitcoin::TxMerkleNode::all_zeros();
    assert_eq!(
        a.check(h, ChainId::REXE),
        Err(AuxPowError::BadParentMerkleRoot)
    );

    // Chain merkle mismatch: the proof is for another aux hash.
    assert_eq!(
        base.check([8u8; 32], ChainId::REXE),
        Err(AuxPowError::MissingRoot)
    );

    // Magic twice.
    let mut a = base.clone();
    let mut s = script_of(&a);
    s.extend_from_slice(&[0xfa, 0xbe, b'm', b'm']);
    set_script(&mut a, s);
    fix_root(&mut a);
    assert_eq!(a.check(h, ChainId::REXE), Err(AuxPowError::MultipleHeaders));

    // Magic not right before the root.
    let mut a = base.clone();
    let s = script_of(&a);
    let at = s
        .windows(4)
        .position(|w| w == [0xfa, 0xbe, b'm', b'm'])
        .unwrap();
    let mut t = s[..at + 4].to_vec();
    t.push(0x00);
    t.extend_from_slice(&s[at + 4..]);
    set_script(&mut a, t);
    fix_root(&mut a);
    assert_eq!(
        a.check(h, ChainId::REXE),
        Err(AuxPowError::HeaderNotBeforeRoot)
    );

    // Legacy (no magic) root beyond byte 20.
    let mut a = base.clone();
    let s = script_of(&a);
    let mut t = vec![0x51; 21];
    t.extend_from_slice(&s[at + 4..]);
    set_script(&mut a, t);
    fix_root(&mut a);
    assert_eq!(
        a.check(h, ChainId::REXE),
        Err(AuxPowError::LegacyRootTooLate)
    );
    // ...but within the first 20 bytes it is accepted.
    let mut a = base.clone();
    let mut t = vec![0x51; 3];
    t.extend_from_slice(&s[at + 4..]);
    set_script(&mut a, t);
    fix_root(&mut a);
    a.check(h, ChainId::REXE).unwrap();

    // Missing size and nonce.
    let mut a = base.clone();
    set_script(&mut a, s[..s.len() - 8].to_vec());
    fix_root(&mut a);
    assert_eq!(
        a.check(h, ChainId::REXE),
        Err(AuxPowError::MissingSizeAndNonce)
    );

    // Size that does not match the branch.
    let mut a = base.clone();
    let mut t = s.clone();
    let n = t.len();
    t[n - 8] = 2;
    set_script(&mut a, t);
    fix_root(&mut a);
    assert_eq!(a.check(h, ChainId::REXE), Err(AuxPowError::SizeMismatch));

    // A chain index that does not match the branch proves another root.
    let (_, hash, mut a) = block_37174();
    a.chain_index = 10;
    assert_eq!(
        a.check(hash, ChainId::NAMECOIN),
        Err(AuxPowError::MissingRoot)
    );

    // Parent hash above the target.
    let hard = target(0x1d00_ffff);
    assert!(matches!(
        base.check_pow(hard),
        Err(AuxPowError::HighHash { .. })
    ));
}

#[test]
fn wrong_index_is_its_own_error() {
    // The root still matches, but the script claims a nonce whose slot for our chain id is
    // not the leaf the branch proves.
    let h = [3u8; 32];
    let tree = AuxTree::build(&[(ChainId::REXE, h), (ChainId::NAMECOIN, [4u8; 32])]).unwrap();
    let base = mine_parent(
        &tree,
        ChainId::REXE,
        CompactTarget::from_consensus(0x207f_ffff),
        target(0x207f_ffff),
        1,
    );
    base.check(h, ChainId::REXE).unwrap();
    let nonce = (tree.nonce + 1..)
        .find(|n| expected_index(*n, ChainId::REXE, tree.height) != base.chain_index as u32)
        .unwrap();
    let mut a = base.clone();
    let mut s = script_of(&a);
    let n = s.len();
    s[n - 4..].copy_from_slice(&nonce.to_le_bytes());
    set_script(&mut a, s);
    fix_root(&mut a);
    assert_eq!(
        a.check(h, ChainId::REXE),
        Err(AuxPowError::WrongIndex {
            expected: expected_index(nonce, ChainId::REXE, tree.height),
            got: base.chain_index
        })
    );
}

#[test]
fn two_chain_tree_verifies_for_both_chains() {
    let ours = [1u8; 32];
    let theirs = [2u8; 32];
    let tree = AuxTree::build(&[(ChainId::REXE, ours), (ChainId::NAMECOIN, theirs)]).unwrap();
    assert!(tree.height >= 1);
    let a = mine_parent(
        &tree,
        ChainId::REXE,
        CompactTarget::from_consensus(0x207f_ffff),
        target(0x207f_ffff),
        1,
    );
    a.check(ours, ChainId::REXE).unwrap();
    let (branch, index) = tree.branch(ChainId::NAMECOIN);
    let mut b = a.clone();
    b.chain_branch = branch;
    b.chain_index = index;
    b.check(theirs, ChainId::NAMECOIN).unwrap();
    assert_eq!(
        merkle_branch_root(ours, &a.chain_branch, a.chain_index),
        tree.root()
    );
    // Round trip.
    assert_eq!(AuxPow::decode(&a.encode()).unwrap(), a);
}

#[test]
fn every_truncation_and_trailing_byte_is_an_error() {
    let bytes = vector("namecoin-mainnet-37174.header-auxpow.hex");
    let aux = &bytes[80..];
    for n in 0..aux.len() {
        assert!(matches!(
            AuxPow::decode(&aux[..n]),
            Err(AuxPowError::Malformed(_))
        ));
    }
    let mut more = aux.to_vec();
    more.push(0);
    assert!(AuxPow::decode(&more).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]
    #[test]
    fn garbage_and_mutations_never_panic(flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..6), junk in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = AuxPow::decode(&junk);
        let bytes = vector("namecoin-mainnet-37174.header-auxpow.hex");
        let (_, hash, _) = block_37174();
        let mut aux = bytes[80..].to_vec();
        for (i, b) in flips {
            let n = aux.len();
            aux[i % n] ^= b;
        }
        if let Ok(a) = AuxPow::decode(&aux) {
            let _ = a.check(hash, ChainId::NAMECOIN);
        }
    }
}

#[test]
fn inspect_reports_parts_and_the_failing_rule() {
    let hex_str = vector("namecoin-mainnet-37174.header-auxpow.hex").to_lower_hex_string();
    let v = rexe_miner::inspect::inspect(&hex_str, ChainId::NAMECOIN);
    assert_eq!(v["valid"], serde_json::json!(true), "{v}");
    assert_eq!(v["auxpow"]["chain_index"], serde_json::json!(11));
    assert_eq!(v["auxpow"]["expected_index"], serde_json::json!(11));
    assert_eq!(v["auxpow"]["merkle_size"], serde_json::json!(16));
    assert_eq!(
        v["auxpow"]["parent"]["meets_own_target"],
        serde_json::json!(false)
    );
    let tag = v["auxpow"]["tag_offset"].as_u64().unwrap();
    assert_eq!(v["auxpow"]["root_offset"], serde_json::json!(tag + 4));
    assert_eq!(v["auxpow"]["merkle_nonce"], serde_json::json!(0));
    assert_eq!(
        v["auxpow"]["chain_branch"].as_array().map(Vec::len),
        Some(4)
    );
    // Namecoin first requires the header to carry the chain id asked for.
    let v = rexe_miner::inspect::inspect(&hex_str, ChainId::DOGECOIN);
    assert_eq!(v["valid"], serde_json::json!(false));
    assert_eq!(
        v["error"],
        serde_json::json!("block does not have our chain ID (got 1, expected 98)"),
        "{v}"
    );
    let plain = vector("namecoin-mainnet-19204.plain-header.hex").to_lower_hex_string();
    let v = rexe_miner::inspect::inspect(&plain, ChainId::NAMECOIN);
    assert_eq!(v["valid"], serde_json::json!(false));
    assert!(v["error"].as_str().unwrap().contains("not merge-mined"));
    assert_eq!(
        rexe_miner::inspect::inspect("zz", ChainId::NAMECOIN)["valid"],
        serde_json::json!(false)
    );
}

/// Every byte is accounted for, as Namecoin's deserializer has it: a header + AuxPoW with
/// trailing junk, and a full block cut short or extended, are invalid; full blocks verify.
#[test]
fn inspect_consumes_exactly_its_bytes() {
    let check =
        |b: &[u8], chain: ChainId| rexe_miner::inspect::inspect(&b.to_lower_hex_string(), chain);
    let nmc = vector("namecoin-mainnet-37174.header-auxpow.hex");
    assert_eq!(check(&nmc, ChainId::NAMECOIN)["valid"], true);
    for junk in [&[0xde, 0xad, 0xbe, 0xef][..], &[0x01], &[0x00]] {
        let v = check(&[&nmc[..], junk].concat(), ChainId::NAMECOIN);
        assert_eq!(v["valid"], false, "{v}");
    }
    // What submitauxblock decodes: the AuxPoW alone, exactly.
    let aux_hex = nmc[80..].to_lower_hex_string();
    assert!(rexe_miner::auxpow::decode_hex(&aux_hex).is_ok());
    for junk in ["deadbeef", "01", "00"] {
        assert!(rexe_miner::auxpow::decode_hex(&format!("{aux_hex}{junk}")).is_err());
    }
    assert!(rexe_miner::auxpow::decode_hex(&aux_hex[..aux_hex.len() - 2]).is_err());
    for cut in 1..8 {
        let v = check(&nmc[..nmc.len() - cut], ChainId::NAMECOIN);
        assert_eq!(v["valid"], false, "cut {cut}: {v}");
    }
    // A full merge-mined Dogecoin block: header, AuxPoW, its 3 transactions (matching the
    // merkle root). Its parent is a Litecoin block (scrypt), so the SHA-256d work check is
    // the only rule that fails.
    let doge = vector("dogecoin-mainnet-d3ea4835.block.hex");
    let v = check(&doge, ChainId::DOGECOIN);
    assert_eq!(v["transactions"], 3, "{v}");
    assert!(v["error"].as_str().unwrap().contains("above target"), "{v}");
    for cut in [1, 10, 100] {
        let v = check(&doge[..doge.len() - cut], ChainId::DOGECOIN);
        assert_eq!(v["valid"], false, "cut {cut}: {v}");
        assert!(v["error"].as_str().unwrap().contains("truncated"), "{v}");
    }
    for junk in [&[0xde, 0xad, 0xbe, 0xef][..], &[0x01]] {
        let v = check(&[&doge[..], junk].concat(), ChainId::DOGECOIN);
        assert_eq!(v["valid"], false, "{v}");
    }
}

#[test]
fn chain_index_minus_one_gives_the_zero_root_as_namecoin() {
    assert_eq!(merkle_branch_root([5u8; 32], &[[6u8; 32]], -1), [0u8; 32]);
    let (h, mut a) = own();
    a.chain_index = -1;
    assert_eq!(a.check(h, ChainId::REXE), Err(AuxPowError::MissingRoot));
}

#[test]
fn bench_verify_counts_successful_checks() {
    assert!(rexe_miner::auxpow::bench_verify(200) > 0.0);
    assert_eq!(rexe_miner::auxpow::bench_verify(0), 0.0);
}

/// The verdict of the `bitcoin-dogecoin` crate (Dogecoin's `CAuxPow::check`, strict chain
/// id) on the same bytes, plus Namecoin's "parent has the auxpow flag" rule, which Dogecoin
/// does not have.
fn oracle(bytes: &[u8], hash: [u8; 32], chain_id: ChainId) -> Option<bool> {
    use bitcoin_dogecoin::dogecoin::auxpow::AuxPow as DogeAuxPow;
    use bitcoin_dogecoin::hashes::Hash as _;
    let d: DogeAuxPow = bitcoin_dogecoin::consensus::deserialize(bytes).ok()?;
    let ok = d
        .check(
            bitcoin_dogecoin::BlockHash::from_byte_array(hash),
            chain_id.0 as i32,
            true,
        )
        .is_ok();
    Some(ok && d.parent_block_header.version.to_consensus() & (1 << 8) == 0)
}

fn ours(bytes: &[u8], hash: [u8; 32], chain_id: ChainId) -> Option<bool> {
    AuxPow::decode(bytes)
        .ok()
        .map(|a| a.check(hash, chain_id).is_ok())
}

#[test]
fn same_verdicts_as_bitcoin_dogecoin_on_the_vectors_and_built_proofs() {
    let bytes = vector("namecoin-mainnet-37174.header-auxpow.hex");
    let hash = sha256d::Hash::hash(&bytes[..80]).to_byte_array();
    for id in [ChainId::NAMECOIN, ChainId::DOGECOIN, ChainId::REXE] {
        assert_eq!(
            ours(&bytes[80..], hash, id),
            oracle(&bytes[80..], hash, id),
            "{id:?}"
        );
    }
    assert_eq!(oracle(&bytes[80..], hash, ChainId::NAMECOIN), Some(true));
    let (h, a) = own();
    assert_eq!(oracle(&a.encode(), h, ChainId::REXE), Some(true));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
    /// Random byte flips of block 37174's AuxPoW, and random in-script edits of a proof of
    /// our own: whenever both decoders read the bytes, the verdicts agree.
    #[test]
    fn same_verdicts_as_bitcoin_dogecoin_on_mutations(
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        chain in 0u32..3,
        own_proof in any::<bool>(),
    ) {
        let id = [ChainId::NAMECOIN, ChainId::DOGECOIN, ChainId::REXE][chain as usize];
        let (hash, mut bytes) = if own_proof {
            let (h, a) = own();
            (h, a.encode())
        } else {
            let (_, h, a) = block_37174();
            (h, a.encode())
        };
        for (i, b) in flips {
            let n = bytes.len();
            bytes[i % n] ^= b;
        }
        match (ours(&bytes, hash, id), oracle(&bytes, hash, id)) {
            (Some(x), Some(y)) => prop_assert_eq!(x, y),
            // Counts above 64 are malformed for rexe only: the other side must reject too.
            (None, Some(y)) => prop_assert!(!y),
            (Some(x), None) => prop_assert!(!x, "rexe accepts what bitcoin-dogecoin cannot read"),
            (None, None) => {}
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]
    /// Structured edits that keep the parent merkle root right (so the script rules are
    /// reached): chain index, tree size and nonce in the tag, junk before the tag, a parent
    /// version with any chain id and flags.
    #[test]
    fn same_verdicts_as_bitcoin_dogecoin_on_script_edits(
        index in -2i32..6,
        size in prop::sample::select(vec![0u32, 1, 2, 4, 8, 3]),
        nonce in 0u32..8,
        prefix in prop::collection::vec(any::<u8>(), 0..24),
        drop_magic in any::<bool>(),
        version in prop::sample::select(vec![0x2000_0000i32, 0x0b42_0004, 0x0001_0104, 0x0062_0002, 4, -4]),
    ) {
        let h = [3u8; 32];
        let tree = AuxTree::build(&[(ChainId::REXE, h), (ChainId::NAMECOIN, [4u8; 32])]).unwrap();
        let mut a = mine_parent(
            &tree,
            ChainId::REXE,
            CompactTarget::from_consensus(0x207f_ffff),
            target(0x207f_ffff),
            1,
        );
        let s = script_of(&a);
        let at = s.windows(4).position(|w| w == [0xfa, 0xbe, b'm', b'm']).unwrap();
        let mut t = prefix;
        if !drop_magic {
            t.extend_from_slice(&s[at..at + 4]);
        }
        t.extend_from_slice(&s[at + 4..at + 36]);
        t.extend_from_slice(&size.to_le_bytes());
        t.extend_from_slice(&nonce.to_le_bytes());
        set_script(&mut a, t);
        fix_root(&mut a);
        a.chain_index = index;
        a.parent.version = bitcoin::block::Version::from_consensus(version);
        let bytes = a.encode();
        for id in [ChainId::REXE, ChainId::NAMECOIN] {
            prop_assert_eq!(ours(&bytes, h, id), oracle(&bytes, h, id));
        }
    }
}

/// The body of `fuzz/fuzz_targets/auxpow_decode.rs`, run here on mutations of the vector so
/// that its properties hold in CI without cargo-fuzz.
fn fuzz_one(data: &[u8]) {
    let mut hash = [0u8; 32];
    let n = data.len().min(32);
    hash[..n].copy_from_slice(&data[..n]);
    for bytes in [data, data.get(32..).unwrap_or_default()] {
        if let Ok(aux) = AuxPow::decode(bytes) {
            for id in [ChainId::NAMECOIN, ChainId::DOGECOIN, ChainId::REXE] {
                let _ = aux.check(hash, id);
            }
            let _ = aux.check_pow(aux.parent.target());
            let again = AuxPow::decode(&aux.encode()).expect("re-encoded auxpow decodes");
            let mut stripped = aux.clone();
            for i in &mut stripped.coinbase_tx.input {
                i.witness.clear();
            }
            assert_eq!(again, stripped);
        }
    }
    let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
    let _ = rexe_miner::inspect::inspect(&hex, ChainId::NAMECOIN);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
    #[test]
    fn fuzz_target_properties_hold_on_mutations(
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        cut in any::<usize>(),
    ) {
        let mut bytes = vector("namecoin-mainnet-37174.header-auxpow.hex");
        for (i, b) in flips {
            let n = bytes.len();
            bytes[i % n] ^= b;
        }
        let keep = bytes.len() - cut % 40;
        fuzz_one(&bytes[80..keep]);
        fuzz_one(&bytes[..keep]);
    }
}

/// A header + AuxPoW vector: (header, its hash as aux hash, the AuxPoW).
fn header_auxpow(name: &str) -> (BtcHeader, [u8; 32], AuxPow) {
    let bytes = vector(name);
    let header: BtcHeader = deserialize(&bytes[..80]).unwrap();
    let hash = sha256d::Hash::hash(&bytes[..80]).to_byte_array();
    let aux = AuxPow::decode(&bytes[80..]).unwrap();
    assert_eq!(
        aux.encode().to_lower_hex_string(),
        bytes[80..].to_lower_hex_string(),
        "{name}"
    );
    (header, hash, aux)
}

/// rexe and the `bitcoin-dogecoin` oracle agree on `aux` for each chain id.
fn agrees_with_oracle(aux: &AuxPow, hash: [u8; 32]) {
    let bytes = aux.encode();
    for id in [
        ChainId(0),
        ChainId::NAMECOIN,
        ChainId::DOGECOIN,
        ChainId::REXE,
    ] {
        assert_eq!(ours(&bytes, hash, id), oracle(&bytes, hash, id), "{id:?}");
    }
}

#[test]
fn namecoin_block_19414_with_a_legacy_tag_verifies() {
    let (header, hash, aux) = header_auxpow("namecoin-mainnet-19414.header-auxpow.hex");
    assert_eq!(
        ChainId::of_version(header.version.to_consensus()),
        ChainId::NAMECOIN
    );
    let script = script_of(&aux);
    assert!(!script.windows(4).any(|w| w == MERGED_MINING_HEADER));
    let mut root = hash;
    root.reverse();
    assert_eq!(script.windows(32).position(|w| w == root), Some(17));
    aux.check(hash, ChainId::NAMECOIN).unwrap();
    aux.check_pow(target(header.bits.to_consensus())).unwrap();
    // The parent is a Bitcoin header (chain id 0).
    assert_eq!(
        aux.check(hash, ChainId(0)),
        Err(AuxPowError::ParentHasOurChainId)
    );
    let mut other = hash;
    other[0] ^= 1;
    assert_eq!(
        aux.check(other, ChainId::NAMECOIN),
        Err(AuxPowError::MissingRoot)
    );
    agrees_with_oracle(&aux, hash);
    // Without the magic the root must start within the first 20 bytes (libdohj's
    // shouldRejectIfMergedMineHeaderMissing): 3 bytes more still pass, 4 do not.
    for (pad, verdict) in [(3, Ok(())), (4, Err(AuxPowError::LegacyRootTooLate))] {
        let mut a = aux.clone();
        let mut s = vec![0u8; pad];
        s.extend_from_slice(&script);
        set_script(&mut a, s);
        a.coinbase_branch.clear();
        fix_root(&mut a);
        assert_eq!(a.check(hash, ChainId::NAMECOIN), verdict, "pad {pad}");
        agrees_with_oracle(&a, hash);
    }
}

#[test]
fn namecoin_testnet_block_233281_with_a_zero_output_parent_coinbase_verifies() {
    let (header, hash, aux) = header_auxpow("namecoin-testnet-233281.header-auxpow.hex");
    assert!(aux.coinbase_tx.output.is_empty());
    assert_eq!(header.bits.to_consensus(), 0x1d0f_ffff);
    assert_eq!(
        ChainId::of_version(header.version.to_consensus()),
        ChainId::NAMECOIN
    );
    aux.check(hash, ChainId::NAMECOIN).unwrap();
    aux.check_pow(target(0x1d0f_ffff)).unwrap();
    agrees_with_oracle(&aux, hash);
    // The commitment is what is checked: another hash fails.
    let mut other = hash;
    other[31] ^= 1;
    assert_eq!(
        aux.check(other, ChainId::NAMECOIN),
        Err(AuxPowError::MissingRoot)
    );
}

#[test]
fn dogecoin_block_verifies_for_chain_id_0x62_but_its_scrypt_parent_is_no_sha256d_work() {
    use bitcoin::consensus::Decodable;
    let bytes = vector("dogecoin-mainnet-d3ea4835.block.hex");
    let header: BtcHeader = deserialize(&bytes[..80]).unwrap();
    assert_eq!(header.version.to_consensus(), 0x0062_0102);
    assert_eq!(
        ChainId::of_version(header.version.to_consensus()),
        ChainId::DOGECOIN
    );
    let hash = sha256d::Hash::hash(&bytes[..80]).to_byte_array();
    let mut cur = bitcoin::io::Cursor::new(&bytes[80..]);
    let aux = AuxPow::decode_from(&mut cur).unwrap();
    // The block's own transactions follow and commit to its merkle root.
    let txs = Vec::<bitcoin::Transaction>::consensus_decode(&mut cur).unwrap();
    assert_eq!(cur.position() as usize, bytes.len() - 80);
    let block = bitcoin::Block {
        header,
        txdata: txs,
    };
    assert_eq!(block.txdata.len(), 3);
    assert!(block.check_merkle_root());
    aux.check(hash, ChainId::DOGECOIN).unwrap();
    agrees_with_oracle(&aux, hash);
    // The parent is a Litecoin header: scrypt work, so its SHA-256d hash misses Dogecoin's
    // target, and rexe (which seals with SHA-256d work only) says so.
    assert_eq!(aux.parent.version.to_consensus(), 2);
    assert!(matches!(
        aux.check_pow(header.target()),
        Err(AuxPowError::HighHash { .. })
    ));
    let v = rexe_miner::inspect::inspect(&bytes.to_lower_hex_string(), ChainId::DOGECOIN);
    assert_eq!(v["valid"], serde_json::json!(false), "{v}");
    assert!(v["error"].as_str().unwrap().contains("above target"), "{v}");
    assert_eq!(v["auxpow"]["merkle_size"], serde_json::json!(1));
}

/// Namecoin's `CAuxPow::getExpectedIndex`, transcribed as it is written there: a `uint32_t`
/// LCG, here in 64-bit arithmetic reduced mod 2^32 after each step.
fn namecoin_expected_index(nonce: u32, chain_id: u32, h: u32) -> u32 {
    let m = 1u64 << 32;
    let mut rand = u64::from(nonce);
    rand = (rand * 1_103_515_245 + 12_345) % m;
    rand = (rand + u64::from(chain_id)) % m;
    rand = (rand * 1_103_515_245 + 12_345) % m;
    (rand % (1u64 << h)) as u32
}

/// The aux tree layout: the smallest size, the first nonce at that size with no slot
/// collision (per Namecoin's formula), and no layout for two equal chain ids.
#[test]
fn aux_tree_layout_is_smallest_and_collision_free() {
    let sets: Vec<Vec<ChainId>> = vec![
        vec![ChainId::REXE],
        vec![ChainId::REXE, ChainId::NAMECOIN],
        vec![ChainId::REXE, ChainId::NAMECOIN, ChainId::DOGECOIN],
        vec![
            ChainId::REXE,
            ChainId(0x0001),
            ChainId(0x0062),
            ChainId(0x1000),
        ],
        (1..=6).map(ChainId).collect(),
    ];
    for ids in sets {
        let (h, nonce) = AuxTree::layout(&ids).unwrap();
        assert!(1usize << h >= ids.len(), "{ids:?}");
        let fits = |h: u32, n: u32| {
            let mut s: Vec<u32> = ids
                .iter()
                .map(|c| namecoin_expected_index(n, c.0, h))
                .collect();
            s.sort_unstable();
            s.dedup();
            s.len() == ids.len()
        };
        assert!(fits(h, nonce), "{ids:?}: collision at h={h} nonce={nonce}");
        for c in &ids {
            assert_eq!(
                expected_index(nonce, *c, h),
                namecoin_expected_index(nonce, c.0, h)
            );
        }
        // Smallest: no nonce (of the first 65536) fits any lower height, and no lower
        // nonce fits this one.
        for lower in 0..h {
            assert!(
                (0..1u32 << 16).all(|n| !fits(lower, n)),
                "{ids:?}: height {lower} fits"
            );
        }
        assert!((0..nonce).all(|n| !fits(h, n)), "{ids:?}");
        // The tree built on it proves every chain's leaf at its slot.
        let chains: Vec<(ChainId, [u8; 32])> = ids
            .iter()
            .enumerate()
            .map(|(i, c)| (*c, [i as u8 + 1; 32]))
            .collect();
        let tree = AuxTree::build(&chains).unwrap();
        assert_eq!((tree.height, tree.nonce), (h, nonce));
        for (c, leaf) in &chains {
            let (branch, index) = tree.branch(*c);
            assert_eq!(branch.len() as u32, h);
            assert_eq!(index as u32, namecoin_expected_index(nonce, c.0, h));
            assert_eq!(merkle_branch_root(*leaf, &branch, index), tree.root());
        }
    }
    // rexe (0x0b42) and Dogecoin (0x0062) are equal modulo 32: with Namecoin, a tree of 64.
    assert_eq!(
        AuxTree::layout(&[ChainId::REXE, ChainId::NAMECOIN, ChainId::DOGECOIN]),
        Some((6, 0))
    );
    assert_eq!(
        AuxTree::layout(&[ChainId::REXE, ChainId::NAMECOIN]),
        Some((1, 0))
    );
    // Two chains with one id always share a slot.
    assert!(AuxTree::layout(&[ChainId::NAMECOIN, ChainId::REXE, ChainId::NAMECOIN]).is_none());
    assert!(AuxTree::build(&[(ChainId::REXE, [1; 32]), (ChainId::REXE, [2; 32])]).is_none());
}

/// One parent commits to three chains: each chain's AuxPoW (its branch and slot in the one
/// tree) passes the Namecoin rules for that chain and no other.
#[test]
fn three_chain_tree_auxpows_verify() {
    let chains = [
        (ChainId::REXE, [1u8; 32]),
        (ChainId::NAMECOIN, [2u8; 32]),
        (ChainId::DOGECOIN, [3u8; 32]),
    ];
    let tree = AuxTree::build(&chains).unwrap();
    let bits = bitcoin::CompactTarget::from_consensus(0x207f_ffff);
    let target = bitcoin::pow::Target::from_compact(bits);
    for (c, h) in chains {
        let aux = mine_parent(&tree, c, bits, target, 1);
        assert_eq!(aux.check(h, c), Ok(()));
        let decoded = AuxPow::decode(&aux.encode()).unwrap();
        assert_eq!(decoded.check(h, c), Ok(()));
        for (other, oh) in chains {
            if other != c {
                assert!(aux.check(oh, c).is_err());
            }
        }
    }
}
