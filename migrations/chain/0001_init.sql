-- chain.sqlite: the block log and block index. Source of truth for the active chain.
CREATE TABLE blocks (
    hash      BLOB PRIMARY KEY,      -- 32 bytes, internal order
    height    INTEGER NOT NULL,
    prev      BLOB NOT NULL,
    header    BLOB NOT NULL,         -- canonical header encoding
    body      BLOB NOT NULL,         -- canonical block encoding (header, txs, seal)
    chainwork BLOB NOT NULL,         -- 32 bytes big-endian
    status    INTEGER NOT NULL       -- 0 = valid header, 1 = connected once (fully valid), 2 = invalid
) WITHOUT ROWID;
CREATE INDEX blocks_by_prev ON blocks(prev);

-- The active chain: height -> hash. Its highest row is the committed tip.
CREATE TABLE active (
    height INTEGER PRIMARY KEY,
    hash   BLOB NOT NULL
);

-- Cross-shard relays each connected block emitted (the inbound work of the next block).
CREATE TABLE relays (
    hash BLOB PRIMARY KEY,
    data BLOB NOT NULL
) WITHOUT ROWID;

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;
