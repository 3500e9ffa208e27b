-- Receipts of contract micro-transactions (a transaction's own step, its relays, its
-- deployment), as JSON, keyed by the originating transaction and the block that ran them.
-- Not consensus data: nodes with `contract_receipts = false` keep none.
CREATE TABLE contract_receipts (
    txid  BLOB NOT NULL,
    block BLOB NOT NULL,
    seq   INTEGER NOT NULL,          -- order within the block (lane first, then shards)
    data  TEXT NOT NULL,
    PRIMARY KEY (txid, block, seq)
) WITHOUT ROWID;
