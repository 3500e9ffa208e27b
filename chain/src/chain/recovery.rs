//! Opening a chain: genesis, the block index, and recovery after a crash (shards rolled
//! back to a common height, the global state restored, the log replayed).

use super::*;
use crate::lthash::LtHash;

/// Genesis accounts hashed and handed to the shards at a time (about 40 MB; the crate's
/// unit tests use small chunks, to cross their boundaries).
const GENESIS_CHUNK: u64 = if cfg!(test) { 1000 } else { 1 << 20 };

impl Chain {
    /// Opens the chain in `dir` (creating genesis on first use) and recovers from any crash.
    pub fn open(
        dir: &Path,
        params: ChainParams,
        config: ChainConfig,
        sealer: Arc<dyn Sealer>,
    ) -> Result<Chain, ChainError> {
        Self::open_with_systems(dir, params, config, sealer, Vec::new())
    }

    /// Like [`Chain::open`], with system contracts installed (their initial state is the
    /// genesis global state; a data directory created with another set is refused).
    pub fn open_with_systems(
        dir: &Path,
        params: ChainParams,
        config: ChainConfig,
        sealer: Arc<dyn Sealer>,
        systems: Vec<Box<dyn SystemContract>>,
    ) -> Result<Chain, ChainError> {
        // User contracts (the registry) are part of every chain.
        let systems = Systems::new(systems);
        let global = GlobalImage::of(&systems);
        std::fs::create_dir_all(dir).map_err(StoreError::from)?;
        // Before any file is opened: a second node on these files would corrupt them.
        let lock = DirLock::acquire(dir)?;
        // `chain.sqlite` first, then the shard files: the checkpointer's numbering.
        let order = params.shard_order;
        let mut paths = vec![dir.join("chain.sqlite")];
        paths.extend(
            order
                .shards()
                .map(|s| dir.join(format!("shard-{}.sqlite", s.0))),
        );
        let existed = paths[0].exists();
        let db = ChainDb::open(&paths[0])?;
        if existed && db.tip()?.is_some() {
            Self::check_shard_files(dir, &paths[1..])?;
        }
        let mut shards = Vec::with_capacity(order.shard_count());
        for (s, path) in order.shards().zip(&paths[1..]) {
            let mut shard = ShardStore::open(path, s, params.undo_depth, config.cache_limit)
                .map_err(|e| match e {
                    e @ StoreError::ReadOnly { .. } => ChainError::Store(e),
                    e => ChainError::CorruptState {
                        file: path.display().to_string(),
                        reason: format!("cannot open it: {e}"),
                    },
                })?;
            if config.mmap_bytes > 0 {
                shard.set_mmap(config.mmap_bytes)?;
            }
            shards.push(shard);
        }
        let checkpointer = match Checkpointer::spawn(paths) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "no checkpoint thread: commits will checkpoint inline");
                None
            }
        };
        let n = order.shard_count();
        let tracked: Vec<bool> = match &config.tracked {
            None => vec![true; n],
            Some(list) => {
                let mut t = vec![false; n];
                for s in list {
                    match t.get_mut(s.index()).filter(|_| !s.is_global()) {
                        Some(x) => *x = true,
                        None => return Err(ChainError::BadTracked(format!("{list:?}"))),
                    }
                }
                if list.is_empty() {
                    return Err(ChainError::BadTracked("[]".into()));
                }
                t
            }
        };
        let mut chain = Chain {
            tracked,
            adding: Vec::new(),
            checkpoint: 0,
            global_pages: None,
            _lock: lock,
            checkpointer,
            mempool: Mempool::with_capacity(order, config.mempool_per_shard),
            params,
            config,
            dir: dir.to_path_buf(),
            db,
            shards,
            index: HashMap::new(),
            active: Vec::new(),
            inbound: vec![Vec::new(); order.shard_count()],
            global_inbound: Vec::new(),
            systems,
            global,
            sealer,
            prepared: None,
            txindex_pending: Default::default(),
            blocks_since_flush: 0,
            stats: ChainStats::default(),
            last_contract_receipts: Vec::new(),
            last_counts: (0, 0),
            last_chunk_micro: Vec::new(),
            last_global_changes: 0,
            last_fees: Vec::new(),
            last_global_waiting: 0,
            anchor: anchor::Anchors::default(),
        };
        let fp = params_fingerprint(&chain.params, &chain.systems);
        match chain.db.tip()? {
            None => chain.init_genesis(fp)?,
            Some(_) => {
                let stored = chain.db.meta("params")?;
                if stored.as_deref()
                    == Some(&fingerprint_with(&chain.params, &chain.systems, 1, Some(0), 1).0[..])
                {
                    return Err(ChainError::OldGlobalState {
                        dir: dir.display().to_string(),
                    });
                }
                let before_elements = fingerprint_with(
                    &chain.params,
                    &chain.systems,
                    GLOBAL_STATE_VERSION,
                    Some(0),
                    1,
                );
                if stored.as_deref() == Some(&before_elements.0[..]) {
                    return Err(ChainError::OldContractLayout {
                        dir: dir.display().to_string(),
                    });
                }
                for (found, block_rules, what) in [
                    (1, 1, "no tokens or rxBTC-carrying calls"),
                    (2, 1, "no imports, calls between contracts or interfaces"),
                    (
                        5,
                        BLOCK_RULES_VERSION,
                        "no assets other than rxBTC on the global lane",
                    ),
                ] {
                    let old = fingerprint_with(
                        &chain.params,
                        &chain.systems,
                        GLOBAL_STATE_VERSION,
                        Some(found),
                        block_rules,
                    );
                    if stored.as_deref() == Some(&old.0[..]) {
                        return Err(ChainError::OldContractRules {
                            dir: dir.display().to_string(),
                            found,
                            now: crate::contract::ContractsSystem::RULES_VERSION,
                            what,
                        });
                    }
                }
                for (found, what) in [
                    (
                        1,
                        "one root over every relay emitted, no outboxes keyed by target",
                    ),
                    (2, "waiting relays kept out of the shards' outboxes"),
                    (3, "the global lane's waiting calls kept out of its outbox"),
                ] {
                    let old = fingerprint_with(
                        &chain.params,
                        &chain.systems,
                        GLOBAL_STATE_VERSION,
                        None,
                        found,
                    );
                    if stored.as_deref() == Some(&old.0[..]) {
                        return Err(ChainError::OldBlockRules {
                            dir: dir.display().to_string(),
                            found,
                            now: BLOCK_RULES_VERSION,
                            what,
                        });
                    }
                }
                if stored.as_deref() != Some(&fp.0[..]) {
                    return Err(ChainError::WrongChain {
                        dir: dir.display().to_string(),
                    });
                }
            }
        }
        chain.check_tracked(dir)?;
        chain.complete_bootstrap()?;
        chain.checkpoint = chain.db.bootstrapped_at()?.map_or(0, |(h, _)| h);
        chain.load_index()?;
        chain.recover()?;
        chain.load_anchor()?;
        if chain.config.verify_state {
            chain.verify_state_full()?;
        }
        chain.check_state()?;
        let tracked = &chain.tracked;
        let warmed = for_each_shard(&mut chain.shards, chain.config.threads, |s| {
            if tracked[s.id().index()] {
                s.warm()
            } else {
                Ok(true)
            }
        });
        for w in warmed {
            w?;
        }
        Ok(chain)
    }

    /// Records the tracked shards in a new directory. In an old one, a set that adds shards
    /// opens with the recorded set and the new shards left to state sync
    /// ([`Chain::shards_to_sync`]); a set that drops one is refused.
    fn check_tracked(&mut self, dir: &Path) -> Result<(), ChainError> {
        let mine: Vec<u8> = self.tracked.iter().map(|t| *t as u8).collect();
        let show = |t: &[u8]| {
            let list: Vec<String> = t
                .iter()
                .enumerate()
                .filter(|(_, x)| **x == 1)
                .map(|(i, _)| i.to_string())
                .collect();
            if list.len() == t.len() {
                "all".to_string()
            } else {
                list.join(",")
            }
        };
        match self.db.meta("tracked")? {
            None => self.db.set_meta("tracked", &mine)?,
            Some(was) if was != mine => {
                let adds_only = was.len() == mine.len()
                    && was.iter().zip(&mine).all(|(w, m)| *w == 0 || *m == 1);
                if !adds_only {
                    return Err(ChainError::TrackedChanged {
                        dir: dir.display().to_string(),
                        was: show(&was),
                        now: show(&mine),
                    });
                }
                self.adding = (0..mine.len())
                    .filter(|i| was[*i] == 0 && mine[*i] == 1)
                    .map(|i| ShardId(i as u16))
                    .collect();
                self.tracked = was.iter().map(|w| *w == 1).collect();
                tracing::info!(
                    tracked = %show(&was),
                    adding = %self.adding.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(","),
                    "the configuration adds shards: they are taken up by state sync"
                );
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// The genesis accounts in `chunk` (indices into the allocation), split by shard.
    /// Synthetic accounts are hashed on `threads` threads.
    fn genesis_chunk(&self, chunk: std::ops::Range<u64>) -> Vec<Vec<(Address, Amount)>> {
        let order = self.params.shard_order;
        let split = |list: &mut dyn Iterator<Item = (Address, Amount)>| {
            let mut per = vec![Vec::new(); order.shard_count()];
            for (a, amt) in list {
                per[shard_of(&a, order).index()].push((a, amt));
            }
            per
        };
        match &self.params.genesis_alloc {
            GenesisAlloc::Accounts(list) => {
                let range = chunk.start as usize..(chunk.end as usize).min(list.len());
                split(&mut list[range].iter().copied())
            }
            GenesisAlloc::Synthetic { amount, .. } => {
                let threads = self.config.threads.max(1) as u64;
                let step = (chunk.end - chunk.start).div_ceil(threads).max(1);
                let parts: Vec<Vec<Vec<(Address, Amount)>>> = std::thread::scope(|s| {
                    let handles: Vec<_> = (chunk.start..chunk.end)
                        .step_by(step as usize)
                        .map(|from| {
                            let to = (from + step).min(chunk.end);
                            s.spawn(move || {
                                split(&mut (from..to).map(|i| (bench_address(i), *amount)))
                            })
                        })
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| h.join().expect("hashing addresses does not panic"))
                        .collect()
                });
                let mut per = vec![Vec::new(); order.shard_count()];
                for part in parts {
                    for (all, mine) in per.iter_mut().zip(part) {
                        all.extend(mine);
                    }
                }
                per
            }
        }
    }

    /// How many accounts the genesis allocation holds.
    fn genesis_len(&self) -> u64 {
        match &self.params.genesis_alloc {
            GenesisAlloc::Accounts(list) => list.len() as u64,
            GenesisAlloc::Synthetic { count, .. } => *count,
        }
    }

    pub(super) fn genesis_total(&self) -> Amount {
        match &self.params.genesis_alloc {
            GenesisAlloc::Accounts(list) => {
                checked_sum(list.iter().map(|(_, a)| *a)).unwrap_or(Amount::MAX_MONEY)
            }
            GenesisAlloc::Synthetic { count, amount } => {
                amount.checked_mul(*count).unwrap_or(Amount::MAX_MONEY)
            }
        }
    }

    pub(super) fn init_genesis(&mut self, fp: Hash256) -> Result<(), ChainError> {
        // The allocation goes to the shards in chunks, so memory stays bounded however
        // many accounts it holds. A partial node stores only its shards' accounts: the
        // others' state is taken from the headers (and, once taken up, from state sync), so
        // only their commitments are summed.
        let total = self.genesis_len();
        let mut untracked = vec![LtHash::new(); self.shards.len()];
        let started = std::time::Instant::now();
        let mut logged = started;
        for from in (0..total).step_by(GENESIS_CHUNK as usize) {
            let per: Vec<std::sync::Mutex<Vec<(Address, Amount)>>> = self
                .genesis_chunk(from..(from + GENESIS_CHUNK).min(total))
                .into_iter()
                .map(std::sync::Mutex::new)
                .collect();
            let tracked = &self.tracked;
            let results = for_each_shard(&mut self.shards, self.config.threads, |s| {
                let i = s.id().index();
                let list = std::mem::take(&mut *per[i].lock().unwrap_or_else(|e| e.into_inner()));
                if tracked[i] {
                    s.stage_genesis(&list)?;
                    return Ok(None);
                }
                Ok::<_, StoreError>(Some(crate::store::genesis_lthash(&list)))
            });
            for (sum, r) in untracked.iter_mut().zip(results) {
                if let Some(lt) = r? {
                    sum.combine(&lt);
                }
            }
            if logged.elapsed().as_secs() >= 10 {
                logged = std::time::Instant::now();
                tracing::info!(
                    accounts = (from + GENESIS_CHUNK).min(total),
                    of = total,
                    secs = started.elapsed().as_secs(),
                    "creating genesis"
                );
            }
        }
        if total > GENESIS_CHUNK {
            tracing::info!(
                accounts = total,
                secs = started.elapsed().as_secs(),
                "genesis accounts staged; writing them to the shard files"
            );
        }
        let tracked = &self.tracked;
        let untracked = &untracked;
        let results = for_each_shard(&mut self.shards, self.config.threads, |s| {
            s.finish_genesis()?;
            let i = s.id().index();
            Ok::<_, StoreError>(if tracked[i] {
                s.digest()
            } else {
                untracked[i].digest()
            })
        });
        let digests = results.into_iter().collect::<Result<Vec<Hash256>, _>>()?;
        let header = self.genesis_header(&digests);
        let hash = header.hash();
        let block = Block {
            txs: vec![Vec::new(); self.params.shard_order.shard_count()],
            header,
            seal: Vec::new(),
        };
        self.db.set_meta("params", &fp.0)?;
        self.db.insert_block(
            &block.header,
            &block.to_bytes(),
            block.header.work().to_be_bytes(),
            BlockStatus::Valid,
        )?;
        let items: Vec<(u8, Vec<u8>, Vec<u8>)> = self
            .systems
            .iter()
            .flat_map(|c| {
                let id = c.id().0;
                c.items().into_iter().map(move |(k, v)| (id, k, v))
            })
            .collect();
        self.db.init_global_base(&items)?;
        let genesis_chunks: Vec<ChunkRoots> = digests
            .iter()
            .copied()
            .chain([self.global.digest()])
            .map(|state_root| ChunkRoots {
                state_root,
                outbox_root: Hash256::ZERO,
            })
            .collect();
        self.db.connect(&ConnectRecord {
            height: 0,
            hash,
            relays: &encode_outbound(&[], &[], &[], &genesis_chunks),
            new_block: None,
            global_changes: None,
            receipts: &[],
            contract_receipts: &[],
            block_fees: None,
        })?;
        tracing::info!(%hash, network = self.params.network.name(), "created genesis");
        Ok(())
    }

    /// The genesis header, from the shards' genesis state digests.
    pub(super) fn genesis_header(&self, shard_digests: &[Hash256]) -> Header {
        let n = self.params.shard_order.shard_count();
        let mut roots: Vec<Hash256> = shard_digests.to_vec();
        roots.push(self.global.digest());
        Header {
            version: 1,
            height: 0,
            prev: BlockHash::default(),
            time: self.params.genesis_time,
            bits: self.params.pow_limit_bits,
            order: self.params.shard_order,
            miner: Address::default(),
            tx_root: merkle_root(&vec![Hash256::ZERO; n]),
            outbox_root: merkle_root(&vec![Hash256::ZERO; n + 1]),
            state_root: merkle_root(&roots),
        }
    }

    pub(super) fn load_index(&mut self) -> Result<(), ChainError> {
        for row in self.db.index()? {
            let header = Header::from_bytes(&row.header)
                .map_err(|e| StoreError::corrupt("block header", e))?;
            self.index.insert(
                row.hash,
                IndexEntry {
                    header,
                    chainwork: Work::from_be_bytes(row.chainwork),
                    status: row.status,
                },
            );
        }
        let (tip_h, tip) = self
            .db
            .tip()?
            .ok_or_else(|| StoreError::corrupt("chain", "no tip"))?;
        let mut active = vec![BlockHash::default(); tip_h as usize + 1];
        let mut cur = tip;
        for h in (0..=tip_h).rev() {
            active[h as usize] = cur;
            cur = self
                .index
                .get(&cur)
                .ok_or_else(|| StoreError::corrupt("block index", "active block missing"))?
                .header
                .prev;
        }
        self.active = active;
        Ok(())
    }

    pub(super) fn load_relays(
        &self,
        hash: BlockHash,
    ) -> Result<(Vec<Vec<Relay>>, Vec<Relay>), ChainError> {
        Ok(self
            .stored_relays(hash)?
            .next_inbound(self.params.shard_order.shard_count()))
    }

    /// The relays stored for connected block `hash` (kept for the undo depth).
    pub(super) fn stored_relays(&self, hash: BlockHash) -> Result<StoredRelays, ChainError> {
        let data = self
            .db
            .relays(hash)?
            .ok_or_else(|| StoreError::corrupt("relays", format!("missing for {hash}")))?;
        Ok(StoredRelays::decode(&data, self.params.shard_order)?)
    }

    /// Restores the system contracts to their state after the active block at `height`:
    /// the stored base, then the changesets of the active blocks above it. Checks that the
    /// contracts, loaded, give back exactly the items they were loaded from.
    pub(super) fn restore_global(&mut self, height: u64) -> Result<(), ChainError> {
        let corrupt = |e: String| ChainError::from(StoreError::corrupt("global state", e));
        let (base, rows) = self
            .db
            .global_base()?
            .ok_or_else(|| corrupt("no base stored".into()))?;
        if base > height {
            return Err(corrupt(format!(
                "base at height {base} is above the height {height} to restore"
            )));
        }
        let mut image = GlobalImage::default();
        let base_changes: Vec<ItemChange> = rows
            .into_iter()
            .map(|(s, key, value)| ItemChange {
                system: SystemId(s),
                key,
                old: None,
                new: Some(value),
            })
            .collect();
        image.apply(&base_changes).map_err(corrupt)?;
        for h in base + 1..=height {
            let block = self.active[h as usize];
            if let Some(data) = self.db.global_changes(block)? {
                let changes = decode_changes(&data).map_err(|e| corrupt(e.to_string()))?;
                image.apply(&changes).map_err(corrupt)?;
            }
        }
        for c in self.systems.iter_mut() {
            c.load(&image.items_of(c.id()))
                .map_err(|e| corrupt(format!("{}: {e}", c.id())))?;
        }
        if let Some(stray) = image
            .system_ids()
            .into_iter()
            .find(|id| !self.systems.iter().any(|c| c.id() == *id))
        {
            return Err(corrupt(format!("items of {stray}, which is not installed")));
        }
        let reloaded = GlobalImage::of(&self.systems);
        if reloaded.digest() != image.digest() {
            return Err(corrupt(
                "the contracts loaded from the stored items do not give them back".into(),
            ));
        }
        self.global = image;
        Ok(())
    }

    /// Undoes the global lane of the block at the tip (its stored changeset, old values).
    pub(super) fn undo_global(&mut self, block: BlockHash, height: u64) -> Result<(), ChainError> {
        let corrupt = |e: String| ChainError::from(StoreError::corrupt("global state", e));
        // Changesets at or below the base were folded into it: a block there cannot be
        // undone (rather than undone as if its lane had changed nothing).
        let base = self.global_base_height()?;
        if height <= base {
            return Err(corrupt(format!(
                "block {height} is at or below the stored base ({base}): too deep to undo"
            )));
        }
        let Some(data) = self.db.global_changes(block)? else {
            return Ok(());
        };
        let undo = decode_undo(&data).map_err(|e| corrupt(e.to_string()))?;
        self.global.apply(&undo).map_err(corrupt)?;
        apply_to_contracts(&mut self.systems, &undo).map_err(corrupt)?;
        Ok(())
    }

    pub(super) fn recover(&mut self) -> Result<(), ChainError> {
        let tip = self.tip_height();
        let common = self
            .shards
            .iter()
            .map(ShardStore::height)
            .min()
            .unwrap_or(0)
            .min(tip);
        for s in &mut self.shards {
            if s.height() > common {
                tracing::info!(shard = %s.id(), from = s.height(), to = common, "rolling back shard ahead of the others");
                while s.height() > common {
                    s.undo_top()?;
                }
                s.flush()?;
            }
        }
        // Replay the log from the shards' common height.
        let tip_hash = self.active[tip as usize];
        self.active.truncate(common as usize + 1);
        (self.inbound, self.global_inbound) = self.load_relays(self.active[common as usize])?;
        self.restore_global(common)?;
        if common < tip {
            tracing::info!(from = common + 1, to = tip, "replaying blocks from the log");
        }
        for h in common + 1..=tip {
            let hash = self
                .db
                .active_hash(h)?
                .ok_or_else(|| StoreError::corrupt("active", h))?;
            let body = self
                .db
                .body(hash)?
                .ok_or_else(|| StoreError::corrupt("body", h))?;
            let block = Block::from_bytes(&body).map_err(|e| StoreError::corrupt("block", e))?;
            self.connect(&block, true, Log::Replay)
                .map_err(|e| ChainError::Replay {
                    height: h,
                    reason: e.to_string(),
                })?;
        }
        debug_assert_eq!(self.tip_hash(), tip_hash);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::TestSealer;

    /// A genesis handed to the shards in chunks, and spilled to run files, stores and
    /// commits to what one written at once does; a node tracking one shard commits to the
    /// other's state without storing it.
    #[test]
    fn a_genesis_written_in_chunks_and_runs_is_the_one_written_at_once() {
        let count = 2_500;
        let amount = Amount::from_sat(3);
        let mut synthetic = ChainParams::for_tests(1, Vec::new());
        synthetic.genesis_alloc = GenesisAlloc::Synthetic { count, amount };
        let listed =
            ChainParams::for_tests(1, (0..count).map(|i| (bench_address(i), amount)).collect());
        let open = |p: &ChainParams, tracked: Option<Vec<ShardId>>| {
            let dir = tempfile::tempdir().unwrap();
            let config = ChainConfig {
                tracked,
                ..ChainConfig::default()
            };
            let chain = Chain::open(dir.path(), p.clone(), config, Arc::new(TestSealer)).unwrap();
            (dir, chain)
        };
        let roots = |c: &Chain| c.shards.iter().map(ShardStore::digest).collect::<Vec<_>>();
        let (dir, mut a) = open(&synthetic, None);
        let (_d, mut b) = open(&listed, None);
        assert_eq!(roots(&a), roots(&b));
        let accounts = a.all_accounts().unwrap();
        assert_eq!(accounts.len(), count as usize);
        assert_eq!(accounts, b.all_accounts().unwrap());
        // Each shard held more than a run (`genesis::SPILL_ROWS`, 500 in tests): the run
        // files were merged and removed.
        for s in a.shards.iter_mut() {
            assert!(s.all_accounts().unwrap().len() > 500);
        }
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("genesis-run"))
            .collect();
        assert!(left.is_empty(), "run files left: {left:?}");
        // The genesis block commits to every shard's root, the untracked one's included.
        let (_d, partial) = open(&synthetic, Some(vec![ShardId(1)]));
        assert_eq!(partial.tip_hash(), a.tip_hash());
        assert_eq!(roots(&partial)[1], roots(&a)[1]);
    }

    #[test]
    fn directories_made_under_earlier_contract_rules_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = ChainParams::for_tests(1, Vec::new());
        let open = || {
            Chain::open(
                dir.path(),
                p.clone(),
                ChainConfig::default(),
                Arc::new(TestSealer),
            )
        };
        drop(open().unwrap());
        // Today's fingerprint opens again; an earlier rexe's (contract rules 0) does not.
        let chain = open().unwrap();
        let old = fingerprint_with(
            &chain.params,
            &chain.systems,
            GLOBAL_STATE_VERSION,
            Some(0),
            1,
        );
        let (chain_params, chain_systems) = (chain.params.clone(), chain.systems.clone());
        chain.db.set_meta("params", &old.0).unwrap();
        drop(chain);
        let e = open().err().expect("refused");
        assert!(matches!(e, ChainError::OldContractLayout { .. }), "{e}");
        assert!(e.to_string().contains("one row per element"), "{e}");
        // Contract rules 1 (per-element containers, but no tokens), 2 (tokens, but no calls
        // between contracts), both under block rules 1, and 5 (today's blocks, but no assets
        // on the global lane).
        // The directory recorded under an older fingerprint, and why opening it is refused.
        let refusal = |contract_rules: Option<u32>, block_rules: u8| {
            let old = fingerprint_with(
                &chain_params,
                &chain_systems,
                GLOBAL_STATE_VERSION,
                contract_rules,
                block_rules,
            );
            ChainDb::open(&dir.path().join("chain.sqlite"))
                .unwrap()
                .set_meta("params", &old.0)
                .unwrap();
            open().err().expect("refused")
        };
        for (found, block_rules, what) in [
            (1, 1, "tokens"),
            (2, 1, "calls between contracts"),
            (5, BLOCK_RULES_VERSION, "global lane"),
        ] {
            let e = refusal(Some(found), block_rules);
            assert!(
                matches!(e, ChainError::OldContractRules { found: f, .. } if f == found),
                "{e}"
            );
            assert!(e.to_string().contains(what), "{e}");
        }
        // Block rules 1 (one relay root, no outboxes), 2 (waiting relays outside the
        // outboxes) and 3 (the lane's waiting calls outside its outbox): today's contracts,
        // older blocks.
        for (found, what) in [
            (1, "no outboxes"),
            (2, "waiting relays kept out"),
            (3, "waiting calls kept out"),
        ] {
            let e = refusal(None, found);
            assert!(
                matches!(e, ChainError::OldBlockRules { found: f, now: 4, .. } if f == found),
                "{e}"
            );
            assert!(e.to_string().contains(what), "{e}");
        }
    }
}
