-- Transaction index: where each transaction of a connected block sits (optional, on by
-- default; `txindex = false` in ChainConfig skips it for benchmarks).
CREATE TABLE txindex (
    txid  BLOB PRIMARY KEY,
    block BLOB NOT NULL,
    shard INTEGER NOT NULL,
    pos   INTEGER NOT NULL
) WITHOUT ROWID;
