-- shard-N.sqlite: one shard's state, flushed at checkpoints.
CREATE TABLE accounts (
    addr    BLOB PRIMARY KEY,        -- 32-byte x-only key
    balance INTEGER NOT NULL,        -- sats (u64 stored bit-for-bit in i64)
    nonce   INTEGER NOT NULL
) WITHOUT ROWID;

-- Undo records: for each applied block, the previous value of every key it changed.
CREATE TABLE undo (
    height INTEGER PRIMARY KEY,
    data   BLOB NOT NULL
);

-- applied_height, lthash, shard, order
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;
