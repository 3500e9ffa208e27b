//! The peg as the L2's system contract, end to end on a real `Chain`: calls are signed L2
//! transactions, run on the global lane one block after inclusion, their value escrowed and
//! their payouts relayed to the payees' shards. The rxBTC supply (balances + relays in flight
//! + escrows and bonds the peg holds) is audited after every block.

mod common;

use std::sync::Arc;

use bitcoin::block::Header as BtcHeader;
use bitcoin::hashes::Hash;
use bitcoin::merkle_tree::calculate_root;
use bitcoin::{BlockHash as BtcHash, ScriptBuf, Transaction, TxMerkleNode};
use common::{coinbase, mine_header, out, p2wpkh, payment, unmined_header, Included};
use rexe_bridge::call::PegCall;
use rexe_bridge::contract::PegContract;
use rexe_bridge::peg::{commitment_script, MatchId, MatchState, OrderId, Sats};
use rexe_chain::seal::TestSealer;
use rexe_chain::system::{RefusalKind, SystemId};
use rexe_chain::{
    Address, AdmissionError, Amount, Chain, ChainConfig, ChainParams, Network, Payload, SignedTx,
    Signer, SubmitOutcome, Tx, Txid,
};

const K: u32 = 3;
const FEE: u64 = 10;

struct L2 {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    params: ChainParams,
    chain: Chain,
    keys: Vec<Signer>,
    miner: Address,
    /// Bitcoin blocks we mined: hash -> (header, txs).
    btc: std::collections::BTreeMap<BtcHash, (BtcHeader, Vec<Transaction>)>,
    btc_tip: BtcHash,
    counter: u32,
    /// L2 fees each address paid (burned + tip), from the chain's fee receipts.
    fees_paid: std::collections::HashMap<Address, u64>,
}

fn open(path: &std::path::Path, params: &ChainParams) -> Chain {
    Chain::open_with_systems(
        path,
        params.clone(),
        ChainConfig {
            threads: 2,
            flush_every_blocks: 2,
            ..ChainConfig::default()
        },
        Arc::new(TestSealer),
        vec![PegContract::new(params.network, None, K).boxed()],
    )
    .expect("open chain with the peg")
}

impl L2 {
    fn new() -> Self {
        let keys: Vec<Signer> = (0..8)
            .map(|i| Signer::from_seed(format!("peg-key-{i}").as_bytes()))
            .collect();
        let params = ChainParams::for_tests(
            2,
            keys.iter()
                .map(|k| (k.address(), Amount::ONE_BTC))
                .collect(),
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chain");
        let chain = open(&path, &params);
        let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Regtest);
        let mut btc = std::collections::BTreeMap::new();
        btc.insert(
            genesis.block_hash(),
            (genesis.header, genesis.txdata.clone()),
        );
        let miner = Signer::from_seed(b"peg-miner").address();
        let mut w = L2 {
            _dir: dir,
            path,
            params,
            chain,
            keys,
            miner,
            btc,
            btc_tip: genesis.block_hash(),
            counter: 0,
            fees_paid: Default::default(),
        };
        w.check();
        w
    }

    fn addr(&self, i: usize) -> Address {
        self.keys[i].address()
    }

    /// Key `i`'s balance plus the L2 fees it paid: the value flows these tests check, with
    /// fees (which depend on each call's size) checked in chain/tests/fees.rs.
    fn balance(&mut self, i: usize) -> u64 {
        let a = self.addr(i);
        self.chain.account(&a).unwrap().balance.to_sat()
            + self.fees_paid.get(&a).copied().unwrap_or(0)
    }

    /// Adds what the block's transactions paid to `fees_paid`.
    fn record_fees(&mut self, txs: &[(Address, Txid)]) {
        for (from, id) in txs {
            let (_, f) = self.chain.fee_receipt(*id).unwrap().expect("fee receipt");
            let paid = f["burned"].as_u64().unwrap() + f["tip"].as_u64().unwrap();
            *self.fees_paid.entry(*from).or_default() += paid;
        }
    }

    fn peg(&self) -> &PegContract {
        PegContract::of(&self.chain).expect("peg installed")
    }

    /// Closes the chain and opens it again from its files. The old chain is closed first
    /// (its last block's background log write finishes then): a second chain opened on the
    /// same files while the first still writes could read the log before that block.
    fn reopen(&mut self) {
        let scratch = tempfile::tempdir().unwrap();
        drop(std::mem::replace(
            &mut self.chain,
            open(scratch.path(), &self.params),
        ));
        self.chain = open(&self.path, &self.params);
    }

    fn check(&mut self) {
        let r = self.chain.audit_supply().unwrap();
        assert!(r.holds(), "supply broken: {r:?}");
        self.peg().peg().check_invariants().unwrap();
        let held = r.held.to_sat();
        let t = self.peg().peg().totals();
        assert_eq!(u128::from(held), t.in_orders + t.in_matches + t.bonds_held);
    }

    fn tx(&mut self, i: usize, value: u64, call: &PegCall) -> SignedTx {
        let from = self.addr(i);
        let mut nonce = self.chain.account(&from).unwrap().nonce;
        while self.chain.mempool().get(&from, nonce).is_some() {
            nonce += 1;
        }
        Tx {
            network: Network::Regtest,
            from,
            nonce,
            max_fee: rexe_chain::fee::GasPrice::from_msat(FEE),
            max_tip: rexe_chain::fee::GasPrice::from_msat(FEE),
            // Generous: what the call does not use is refunded in its block.
            gas_limit: 100_000,
            expiry_height: 1_000_000,
            payload: Payload::Call {
                contract: SystemId::PEG,
                value: Amount::from_sat(value),
                data: call.encode(),
            },
        }
        .sign(&self.keys[i])
    }

    /// Submits a call to the mempool.
    fn call(&mut self, i: usize, value: u64, call: &PegCall) -> Result<Txid, AdmissionError> {
        let tx = self.tx(i, value, call);
        self.chain.submit_tx(tx)
    }

    fn mine(&mut self) {
        let h = self.chain.tip_height() + 1;
        let now = self.params.genesis_time + h;
        let block = self.chain.template(self.miner, now).unwrap();
        self.seal_and_connect(block, now);
    }

    /// Mines a block holding exactly `txs` (bypassing the mempool's prechecks).
    fn mine_forced(&mut self, txs: Vec<SignedTx>) {
        let n = self.params.shard_order.shard_count();
        let mut lists = vec![Vec::new(); n];
        for t in txs {
            let s = rexe_chain::shard_of(&t.tx.from, self.params.shard_order);
            lists[s.index()].push(t);
        }
        let h = self.chain.tip_height() + 1;
        let now = self.params.genesis_time + h;
        let block = self
            .chain
            .template_with(self.miner, now, lists, false)
            .unwrap();
        self.seal_and_connect(block, now);
    }

    /// Seals `block`, connects it, records what its transactions paid and checks the
    /// invariants.
    fn seal_and_connect(&mut self, mut block: rexe_chain::Block, now: u64) {
        block.seal = TestSealer::seal(&block.header);
        let ids: Vec<(Address, Txid)> = block
            .txs
            .iter()
            .flatten()
            .map(|t| (t.tx.from, t.txid()))
            .collect();
        assert_eq!(
            self.chain.submit(block, now).unwrap(),
            SubmitOutcome::Connected
        );
        self.record_fees(&ids);
        self.check();
    }

    /// Mines the block including the mempool's calls and the block whose global lane runs them.
    fn settle(&mut self) {
        self.mine();
        self.mine();
    }

    fn receipt(&self, txid: Txid) -> Option<String> {
        self.chain
            .call_receipt(txid)
            .unwrap()
            .expect("call has run")
            .2
            .error
            .map(|e| e.message)
    }

    /// Mines a Bitcoin block with `txs` on `parent` (our simulated Bitcoin), not yet relayed.
    fn btc_mine_on(&mut self, parent: BtcHash, txs: &[Transaction]) -> (BtcHash, Vec<Included>) {
        self.counter += 1;
        let mut all = vec![coinbase(self.counter)];
        all.extend_from_slice(txs);
        let txids: Vec<bitcoin::Txid> = all.iter().map(|t| t.compute_txid()).collect();
        let root = TxMerkleNode::from_raw_hash(
            calculate_root(txids.iter().map(|t| t.to_raw_hash())).unwrap(),
        );
        let prev = self.btc[&parent].0;
        let h = mine_header(parent, root, prev.time + 600 + self.counter, 0x207f_ffff);
        let hash = h.block_hash();
        self.btc.insert(hash, (h, all.clone()));
        let inc = (1..all.len())
            .map(|i| Included::at(hash, &all, &txids, i))
            .collect();
        (hash, inc)
    }

    fn btc_mine(&mut self, txs: &[Transaction]) -> Vec<Included> {
        let (hash, inc) = self.btc_mine_on(self.btc_tip, txs);
        self.btc_tip = hash;
        inc
    }

    /// Relays every header from the L2's tracked tip to `tip` (a header-relayer's job).
    fn relay_headers_to(&mut self, tip: BtcHash) {
        let mut chain = Vec::new();
        let mut cur = tip;
        while self.peg().headers().get(&cur).is_none() {
            let h = self.btc[&cur].0;
            chain.push(h);
            cur = h.prev_blockhash;
        }
        chain.reverse();
        if chain.is_empty() {
            return;
        }
        let txid = self
            .call(7, 0, &PegCall::SubmitHeaders(chain))
            .expect("headers admitted");
        self.settle();
        assert_eq!(self.receipt(txid), None);
    }

    fn relay_headers(&mut self) {
        self.relay_headers_to(self.btc_tip);
    }

    fn order(
        &mut self,
        maker: usize,
        amount: u64,
        script: &ScriptBuf,
        fee_bps: u16,
        expiry: u64,
    ) -> OrderId {
        let next = self
            .peg()
            .peg()
            .orders()
            .map(|o| o.id.0 + 1)
            .max()
            .unwrap_or(0);
        let txid = self
            .call(
                maker,
                amount,
                &PegCall::Order {
                    btc_script: script.clone(),
                    min_fill: Sats(1_000),
                    fee_bps,
                    expiry_height: expiry,
                },
            )
            .unwrap();
        self.settle();
        assert_eq!(self.receipt(txid), None);
        let id = self
            .peg()
            .peg()
            .orders()
            .map(|o| o.id)
            .max()
            .expect("order placed");
        assert!(id.0 >= next);
        id
    }

    fn take(&mut self, taker: usize, order: OrderId, amount: u64, bond: u64) -> MatchId {
        let rx = self.addr(taker);
        let txid = self
            .call(
                taker,
                bond,
                &PegCall::Take {
                    order_id: order,
                    amount: Sats(amount),
                    rx_recipient: rexe_bridge::peg::L2Address(rx.0),
                },
            )
            .unwrap();
        self.settle();
        assert_eq!(self.receipt(txid), None);
        self.peg()
            .peg()
            .matches()
            .map(|m| m.match_id)
            .max()
            .unwrap()
    }

    fn claim_call(inc: &Included, ids: &[MatchId]) -> PegCall {
        PegCall::Claim {
            raw_tx: inc.raw.clone(),
            block_hash: inc.block,
            branch: inc.branch.clone(),
            position: inc.pos,
            coinbase_tx: inc.coinbase.clone(),
            coinbase_branch: inc.coinbase_branch.clone(),
            match_ids: ids.to_vec(),
        }
    }
}

const BOND: u64 = 1_000;

#[test]
fn order_take_pay_claim_through_the_chain() {
    let mut w = L2::new();
    let (alice, bob) = (0, 1);
    let script = p2wpkh(0xa1);
    let a0 = w.balance(alice);
    let o = w.order(alice, 100_000, &script, 50, 1_000);
    assert_eq!(w.balance(alice), a0 - 100_000);
    let b0 = w.balance(bob);
    let m = w.take(bob, o, 100_000, BOND);
    assert_eq!(w.balance(bob), b0 - BOND);
    let owed = w.peg().peg().get_match(m).unwrap().amount_btc_owed;
    assert_eq!(owed, Sats(99_500));

    let pay = payment(vec![out(&script, owed.0), out(&commitment_script(&[m]), 0)]);
    let inc = w.btc_mine(&[pay]);
    w.relay_headers();
    // One confirmation of K = 3: refused at the mempool, and in a block it fails with a receipt.
    let claim = L2::claim_call(&inc[0], &[m]);
    match w.call(bob, 0, &claim) {
        Err(AdmissionError::Refused(e)) => {
            assert!(e.message.contains("1 confirmations, 3 required"), "{e}");
            assert_eq!(e.kind, RefusalKind::Retryable);
            assert_eq!(e.code.as_deref(), Some("too-few-confirmations"));
        }
        other => panic!("premature claim admitted: {other:?}"),
    }
    let forced = w.tx(bob, 0, &claim);
    let forced_id = forced.txid();
    w.mine_forced(vec![forced]);
    w.mine();
    assert!(w.receipt(forced_id).unwrap().contains("3 required"));
    // The receipt, read back from the store, keeps the refusal's kind and code.
    let stored = w
        .chain
        .call_receipt(forced_id)
        .unwrap()
        .unwrap()
        .2
        .error
        .unwrap();
    assert_eq!(stored.kind, RefusalKind::Retryable);
    assert_eq!(stored.code.as_deref(), Some("too-few-confirmations"));

    w.btc_mine(&[]);
    w.btc_mine(&[]);
    w.relay_headers();
    let b1 = w.balance(bob);
    let txid = w.call(bob, 0, &claim).unwrap();
    w.settle();
    assert_eq!(w.receipt(txid), None);
    assert_eq!(w.balance(bob), b1 + 100_000 + BOND);
    assert!(matches!(
        w.peg().peg().get_match(m).unwrap().state,
        MatchState::Claimed { .. }
    ));

    // The same payment cannot be claimed again, through the mempool or forced into a block.
    assert!(matches!(
        w.call(bob, 0, &claim),
        Err(AdmissionError::Refused(_))
    ));
    let again = w.tx(bob, 0, &claim);
    let again_id = again.txid();
    w.mine_forced(vec![again]);
    w.mine();
    assert!(w.receipt(again_id).unwrap().contains("already claimed"));
}

#[test]
fn one_peg_in_split_across_three_makers_in_one_bitcoin_tx() {
    let mut w = L2::new();
    let scripts = [p2wpkh(1), p2wpkh(2), p2wpkh(3)];
    let o1 = w.order(0, 50_000, &scripts[0], 30, 1_000);
    let o2 = w.order(1, 50_000, &scripts[1], 10, 1_000);
    let o3 = w.order(2, 50_000, &scripts[2], 10, 1_000);
    let plan = w
        .peg()
        .peg()
        .matcher(Sats(120_000), w.chain.tip_height() + 1);
    assert_eq!(
        plan,
        vec![(o2, Sats(50_000)), (o3, Sats(50_000)), (o1, Sats(20_000))]
    );
    let taker = 3;
    let ids: Vec<MatchId> = plan
        .iter()
        .map(|(o, a)| w.take(taker, *o, a.0, BOND))
        .collect();
    let mut outs: Vec<_> = ids
        .iter()
        .map(|id| {
            let m = w.peg().peg().get_match(*id).unwrap();
            out(&m.payee_script, m.amount_btc_owed.0)
        })
        .collect();
    outs.push(out(&commitment_script(&ids), 0));
    let inc = w.btc_mine(&[payment(outs)]);
    for _ in 1..K {
        w.btc_mine(&[]);
    }
    w.relay_headers();
    let before = w.balance(taker);
    let txid = w.call(taker, 0, &L2::claim_call(&inc[0], &ids)).unwrap();
    w.settle();
    assert_eq!(w.receipt(txid), None);
    assert_eq!(w.balance(taker), before + 120_000 + 3 * BOND);
    assert_eq!(w.peg().peg().order(o1).unwrap().remaining, Sats(30_000));
}

#[test]
fn cancel_expiry_and_unpaid_match_refund_through_the_chain() {
    let mut w = L2::new();
    let maker = 0;
    let m0 = w.balance(maker);
    // Order A: partly taken, then cancelled: the rest comes back at once.
    let oa = w.order(maker, 100_000, &p2wpkh(5), 0, 1_000);
    let ma = w.take(1, oa, 30_000, BOND);
    let txid = w.call(maker, 0, &PegCall::Cancel { order_id: oa }).unwrap();
    // Someone else cannot cancel it.
    assert!(matches!(
        w.call(1, 0, &PegCall::Cancel { order_id: oa }),
        Err(AdmissionError::Refused(_))
    ));
    w.settle();
    assert_eq!(w.receipt(txid), None);
    assert_eq!(w.balance(maker), m0 - 100_000 + 70_000);

    // Order B expires by L2 height: refunded automatically, and a take after expiry fails.
    let expiry = w.chain.tip_height() + 5;
    let ob = w.order(maker, 40_000, &p2wpkh(6), 0, expiry);
    let before = w.balance(maker);
    while w.chain.tip_height() < expiry {
        w.mine();
    }
    assert!(w.peg().peg().order(ob).is_none());
    assert_eq!(w.balance(maker), before + 40_000);
    match w.call(
        2,
        BOND,
        &PegCall::Take {
            order_id: ob,
            amount: Sats(40_000),
            rx_recipient: rexe_bridge::peg::L2Address(w.addr(2).0),
        },
    ) {
        Err(AdmissionError::Refused(e)) => {
            assert!(e.message.contains("unknown or closed order"), "{e}");
            assert_eq!(e.kind, RefusalKind::Invalid);
        }
        other => panic!("take of an expired order admitted: {other:?}"),
    }

    // Match A is never paid: once Bitcoin passes deadline + K + grace it expires; the order
    // is closed, so the escrow and the bond both go to the maker.
    let deadline = w.peg().peg().get_match(ma).unwrap().btc_deadline_height;
    let grace = w.peg().peg().params().claim_grace;
    let before = w.balance(maker);
    while w.peg().headers().tip_height() <= deadline + K + grace {
        w.btc_mine(&[]);
        w.relay_headers();
    }
    w.mine();
    assert_eq!(
        w.peg().peg().get_match(ma).unwrap().state,
        MatchState::Expired
    );
    assert_eq!(w.balance(maker), before + 30_000 + BOND);
    let supply = w.chain.audit_supply().unwrap();
    assert_eq!(supply.held, Amount::ZERO);
}

#[test]
fn failed_calls_refund_their_value_and_keep_the_fee() {
    let mut w = L2::new();
    let o = w.order(0, 50_000, &p2wpkh(9), 0, 1_000);
    // Bond too small, forced into a block: the value comes back, the fee is spent.
    let before = w.balance(1);
    let bad = w.tx(
        1,
        500,
        &PegCall::Take {
            order_id: o,
            amount: Sats(50_000),
            rx_recipient: rexe_bridge::peg::L2Address(w.addr(1).0),
        },
    );
    let id = bad.txid();
    assert!(matches!(
        w.chain.submit_tx(bad.clone()),
        Err(AdmissionError::Refused(_))
    ));
    w.mine_forced(vec![bad]);
    w.mine();
    assert!(w
        .receipt(id)
        .unwrap()
        .contains("bond 500 below the required 1000"));
    assert_eq!(w.balance(1), before);
    // Garbage call data, value attached.
    let junk = Tx {
        network: Network::Regtest,
        from: w.addr(2),
        nonce: 0,
        max_fee: rexe_chain::fee::GasPrice::from_msat(FEE),
        max_tip: rexe_chain::fee::GasPrice::from_msat(FEE),
        gas_limit: 100_000,
        expiry_height: 1_000_000,
        payload: Payload::Call {
            contract: SystemId::PEG,
            value: Amount::from_sat(777),
            data: vec![0xff, 1, 2],
        },
    }
    .sign(&w.keys[2]);
    let junk_id = junk.txid();
    let before = w.balance(2);
    w.mine_forced(vec![junk]);
    w.mine();
    assert!(w.receipt(junk_id).unwrap().contains("malformed peg call"));
    assert_eq!(w.balance(2), before);
    // A call to a contract the chain does not have is invalid in a block.
    let unknown = Tx {
        network: Network::Regtest,
        from: w.addr(3),
        nonce: 0,
        max_fee: rexe_chain::fee::GasPrice::from_msat(FEE),
        max_tip: rexe_chain::fee::GasPrice::from_msat(FEE),
        gas_limit: 100_000,
        expiry_height: 1_000_000,
        payload: Payload::Call {
            contract: SystemId(9),
            value: Amount::ZERO,
            data: vec![],
        },
    }
    .sign(&w.keys[3]);
    assert!(w.chain.submit_tx(unknown.clone()).is_err());
    let h = w.chain.tip_height() + 1;
    let lists = {
        let mut l = vec![Vec::new(); 4];
        l[rexe_chain::shard_of(&unknown.tx.from, w.params.shard_order).index()].push(unknown);
        l
    };
    let now = w.params.genesis_time + h;
    assert!(w.chain.template_with(w.miner, now, lists, false).is_err());
}

#[test]
fn claim_attacks_are_rejected_on_chain_with_their_own_errors() {
    let mut w = L2::new();
    let script = p2wpkh(0xb0);
    let other_script = p2wpkh(0xb1);
    let o = w.order(0, 200_000, &script, 0, 1_000);
    let m1 = w.take(1, o, 50_000, BOND);
    let m2 = w.take(1, o, 50_000, BOND);
    let m3 = w.take(1, o, 50_000, BOND);
    // m1+m2 "paid" by one output (same payee): one output cannot pay two matches.
    let one_output = payment(vec![
        out(&script, 50_000),
        out(&commitment_script(&[m1, m2]), 0),
    ]);
    let wrong_script = payment(vec![
        out(&other_script, 50_000),
        out(&commitment_script(&[m3]), 0),
    ]);
    let short = payment(vec![
        out(&script, 49_999),
        out(&commitment_script(&[m3]), 0),
    ]);
    let no_commit = payment(vec![out(&script, 50_000)]);
    let wrong_commit = payment(vec![
        out(&script, 50_000),
        out(&commitment_script(&[m1]), 0),
    ]);
    let inc = w.btc_mine(&[one_output, wrong_script, short, no_commit, wrong_commit]);
    for _ in 1..K {
        w.btc_mine(&[]);
    }
    w.relay_headers();
    // A Merkle branch that does not lead to the root.
    let mut bad_branch = inc[2].clone();
    bad_branch.branch[0] = TxMerkleNode::from_byte_array([0x55; 32]);
    let cases: Vec<(PegCall, &str)> = vec![
        (L2::claim_call(&inc[0], &[m1, m2]), "would pay two matches"),
        (
            L2::claim_call(&inc[1], &[m3]),
            "no output pays its payee script",
        ),
        (
            L2::claim_call(&inc[2], &[m3]),
            "pay at most 49999, 50000 owed",
        ),
        (L2::claim_call(&inc[3], &[m3]), "no RXPG OP_RETURN"),
        (
            L2::claim_call(&inc[4], &[m3]),
            "does not commit to the claimed match ids",
        ),
        (L2::claim_call(&bad_branch, &[m3]), "merkle"),
        (
            L2::claim_call(&inc[2], &[MatchId(99)]),
            "RXPG OP_RETURN does not commit",
        ),
        (
            PegCall::Claim {
                raw_tx: inc[2].raw.clone(),
                block_hash: BtcHash::from_byte_array([7; 32]),
                branch: inc[2].branch.clone(),
                position: inc[2].pos,
                coinbase_tx: inc[2].coinbase.clone(),
                coinbase_branch: inc[2].coinbase_branch.clone(),
                match_ids: vec![m3],
            },
            "not in the tracked header chain",
        ),
    ];
    for (call, expected) in cases {
        let tx = w.tx(2, 0, &call);
        match w.chain.submit_tx(tx.clone()) {
            Err(AdmissionError::Refused(e)) => {
                assert!(
                    e.message.to_lowercase().contains(&expected.to_lowercase()),
                    "mempool: {e} (wanted {expected})"
                )
            }
            other => panic!("attack admitted ({expected}): {other:?}"),
        }
        let id = tx.txid();
        w.mine_forced(vec![tx]);
        w.mine();
        let err = w.receipt(id).expect("attack must fail on chain");
        assert!(
            err.to_lowercase().contains(&expected.to_lowercase()),
            "chain: {err} (wanted {expected})"
        );
    }
    for m in [m1, m2, m3] {
        assert_eq!(w.peg().peg().get_match(m).unwrap().state, MatchState::Open);
    }
}

#[test]
fn header_attacks_and_bitcoin_reorgs() {
    let mut w = L2::new();
    // Bad proof of work.
    let g = w.btc_tip;
    let bad = unmined_header(g, w.btc[&g].0.time + 600, 0x207f_ffff);
    let id = w.tx(7, 0, &PegCall::SubmitHeaders(vec![bad])).txid();
    let tx = w.tx(7, 0, &PegCall::SubmitHeaders(vec![bad]));
    w.mine_forced(vec![tx]);
    w.mine();
    assert!(w.receipt(id).unwrap().contains("submit_headers"));
    assert_eq!(w.peg().headers().tip_height(), 0);

    // Payment in block 1 of branch A; before K confirmations Bitcoin reorgs to branch B
    // (more work) without it: the claim fails as stale; once the payment is mined again on B
    // and buried K deep, it succeeds. A reorg shallower than K before the claim changes nothing.
    let script = p2wpkh(0xc0);
    let o = w.order(0, 60_000, &script, 0, 1_000);
    let m = w.take(1, o, 60_000, BOND);
    let pay = payment(vec![out(&script, 60_000), out(&commitment_script(&[m]), 0)]);
    let base = w.btc_tip;
    let inc_a = w.btc_mine(std::slice::from_ref(&pay));
    w.relay_headers();
    let (b1, _) = w.btc_mine_on(base, &[]);
    let (b2, _) = w.btc_mine_on(b1, &[]);
    w.relay_headers_to(b2);
    assert_eq!(w.peg().headers().best_tip().0, b2);
    let claim_a = L2::claim_call(&inc_a[0], &[m]);
    match w.call(1, 0, &claim_a) {
        Err(AdmissionError::Refused(e)) => {
            assert!(e.message.contains("not on the best tracked"), "{e}")
        }
        other => panic!("stale claim admitted: {other:?}"),
    }
    w.btc_tip = b2;
    let inc_b = w.btc_mine(&[pay]);
    for _ in 1..K {
        w.btc_mine(&[]);
    }
    w.relay_headers();
    let before = w.balance(1);
    let txid = w.call(1, 0, &L2::claim_call(&inc_b[0], &[m])).unwrap();
    w.settle();
    assert_eq!(w.receipt(txid), None);
    assert_eq!(w.balance(1), before + 60_000 + BOND);

    // A competing branch with less work is tracked but never followed.
    let (weak, _) = w.btc_mine_on(base, &[]);
    w.relay_headers_to(weak);
    assert_ne!(w.peg().headers().best_tip().0, weak);

    // A Bitcoin reorg deeper than K after the claim does not undo it (depth K is final for
    // the L2), and the payment cannot be claimed a second time on the new branch.
    let mut cur = b2;
    for _ in 0..(K + 3) {
        cur = w.btc_mine_on(cur, &[]).0;
    }
    let (c, inc_c) = w.btc_mine_on(
        cur,
        &[payment(vec![
            out(&script, 60_000),
            out(&commitment_script(&[m]), 0),
        ])],
    );
    let mut tip = c;
    for _ in 1..K {
        tip = w.btc_mine_on(tip, &[]).0;
    }
    w.relay_headers_to(tip);
    assert_eq!(w.peg().headers().best_tip().0, tip);
    assert!(matches!(
        w.peg().peg().get_match(m).unwrap().state,
        MatchState::Claimed { .. }
    ));
    match w.call(1, 0, &L2::claim_call(&inc_c[0], &[m])) {
        Err(AdmissionError::Refused(e)) => {
            assert!(e.message.contains("already claimed"), "{e}");
            assert_eq!(e.kind, RefusalKind::AlreadyDone);
        }
        other => panic!("second claim admitted: {other:?}"),
    }
}

#[test]
fn peg_state_survives_restart_l2_rollback_and_replay() {
    let mut w = L2::new();
    let script = p2wpkh(0xd0);
    let o = w.order(0, 80_000, &script, 0, 1_000);
    let m = w.take(1, o, 80_000, BOND);
    let inc = w.btc_mine(&[payment(vec![
        out(&script, 80_000),
        out(&commitment_script(&[m]), 0),
    ])]);
    for _ in 1..K {
        w.btc_mine(&[]);
    }
    w.relay_headers();
    let digest_before_claim = w.chain.global_digest();
    let height_before_claim = w.chain.tip_height();
    let txid = w.call(1, 0, &L2::claim_call(&inc[0], &[m])).unwrap();
    w.settle();
    assert_eq!(w.receipt(txid), None);
    let digest_after = w.chain.global_digest();
    assert_ne!(digest_before_claim, digest_after);

    // Restart: the state is read back from disk and commits to the same digest.
    let tip = w.chain.tip_hash();
    w.reopen();
    assert_eq!(w.chain.tip_hash(), tip);
    assert_eq!(w.chain.global_digest(), digest_after);
    w.check();

    // Roll the L2 back past the claim: the match is open again and the escrow held.
    w.chain
        .rollback(w.chain.tip_height() - height_before_claim)
        .unwrap();
    assert_eq!(w.chain.global_digest(), digest_before_claim);
    assert_eq!(w.peg().peg().get_match(m).unwrap().state, MatchState::Open);
    w.check();
    // The claim was re-admitted from the rolled-back block; mining it again (another miner,
    // so another block) claims.
    w.miner = Signer::from_seed(b"second miner").address();
    w.settle();
    assert!(matches!(
        w.peg().peg().get_match(m).unwrap().state,
        MatchState::Claimed { .. }
    ));
    assert_eq!(w.chain.global_digest(), digest_after);

    // A fresh node replaying the same blocks reaches the same global state.
    let dir2 = tempfile::tempdir().unwrap();
    let mut replica = open(dir2.path(), &w.params);
    for h in 1..=w.chain.tip_height() {
        let b = w.chain.block(w.chain.hash_at(h).unwrap()).unwrap().unwrap();
        let now = w.params.genesis_time + h;
        replica.submit(b, now).unwrap();
    }
    assert_eq!(replica.tip_hash(), w.chain.tip_hash());
    assert_eq!(replica.global_digest(), w.chain.global_digest());
}

/// The peg's state is stored item by item: a block stores only the items it changed (not
/// the whole state, which grows with every tracked header); changesets below the undo depth
/// are folded into the stored base, after which a restart reads back the same state and a
/// rollback within the undo depth still undoes the peg's changes exactly.
#[test]
fn peg_changesets_are_small_and_fold_into_the_base() {
    let mut w = L2::new();
    for _ in 0..40 {
        w.btc_mine(&[]);
    }
    w.relay_headers();
    let items = w.chain.global_items();
    // 40 headers: an entry and a best-chain height each.
    assert!(items >= 80, "{items} items");
    let script = p2wpkh(0xd1);
    let o = w.order(0, 50_000, &script, 0, 1_000);
    // The order's block: the order, its maker, the peg's scalars.
    let changed = w.chain.last_global_changes();
    assert!((1..=3).contains(&changed), "{changed} items changed");
    assert_eq!(w.chain.global_items(), items + 2);

    // Mine past the undo depth (20) so that the base moves up, recording the digest at
    // each height; a take in the middle changes the peg again.
    let mut digests = std::collections::BTreeMap::new();
    digests.insert(w.chain.tip_height(), w.chain.global_digest());
    for i in 0..30 {
        if i == 15 {
            w.take(1, o, 20_000, BOND);
        } else {
            w.mine();
        }
        digests.insert(w.chain.tip_height(), w.chain.global_digest());
    }
    let tip = w.chain.tip_height();
    let digest = w.chain.global_digest();
    w.reopen();
    assert_eq!(w.chain.tip_height(), tip);
    assert_eq!(w.chain.global_digest(), digest);
    w.check();
    // Roll back across the take, within the undo depth.
    w.chain.rollback(18).unwrap();
    let h = w.chain.tip_height();
    assert_eq!(w.chain.global_digest(), digests[&h]);
    assert!(
        w.peg().peg().matches().next().is_none(),
        "the take is undone"
    );
    w.check();
    // And once more from disk.
    w.reopen();
    assert_eq!(w.chain.global_digest(), digests[&h]);
    // Rolling back further reaches blocks whose changesets were folded into the base: that
    // is refused, not done as if their global lane had changed nothing.
    let err = w.chain.rollback(5).unwrap_err().to_string();
    assert!(err.contains("too deep to undo"), "{err}");
}

/// A Bitcoin block anchors the L2 blocks it sealed once it is on the tracked best chain with
/// K confirmations (the chain's fork choice then never goes below them); not before, and not
/// on a stale branch.
#[test]
fn bitcoin_blocks_anchor_once_k_deep_on_the_best_tracked_chain() {
    use bitcoin::hashes::Hash as _;
    use rexe_chain::system::SystemContract;
    let mut w = L2::new();
    let base = w.btc_tip;
    w.btc_mine(&[]);
    let first = w.btc_tip;
    w.relay_headers();
    let anchors = |w: &L2, h: BtcHash| w.peg().anchors(&h.to_byte_array());
    assert!(!anchors(&w, first), "1 of {K} confirmations");
    for _ in 1..K {
        w.btc_mine(&[]);
    }
    w.relay_headers();
    assert!(anchors(&w, first), "{K} confirmations");
    assert!(!anchors(&w, BtcHash::all_zeros()), "untracked");
    // A stale branch's block never anchors, however deep it once was.
    let mut cur = base;
    for _ in 0..(K + 2) {
        cur = w.btc_mine_on(cur, &[]).0;
    }
    w.relay_headers_to(cur);
    assert_eq!(w.peg().headers().best_tip().0, cur);
    assert!(
        !anchors(&w, first),
        "reorganised out of the tracked best chain"
    );
}
