-- Each block's base fee per shard (u64 little-endian msat per gas, shard order): what a
-- transfer or system call paid is computed from it (their gas is fixed), so the chain need
-- not keep a receipt per transaction. Not consensus data (the fee rows in the shards are).
CREATE TABLE block_fees (
    block BLOB PRIMARY KEY,
    fees  BLOB NOT NULL
) WITHOUT ROWID;
