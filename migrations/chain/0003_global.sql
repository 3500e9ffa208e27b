-- Global lane (system contracts): the state after each block that changed it, and the
-- receipt of every contract call. Rows are keyed by block so side branches keep theirs.
CREATE TABLE global_state (
    block  BLOB PRIMARY KEY,         -- block after which this is the state
    height INTEGER NOT NULL,
    data   BLOB NOT NULL             -- list of (contract id u8, snapshot bytes)
) WITHOUT ROWID;
CREATE INDEX global_state_by_height ON global_state(height);

CREATE TABLE receipts (
    txid     BLOB NOT NULL,          -- the calling transaction
    block    BLOB NOT NULL,          -- block whose global lane ran the call
    contract INTEGER NOT NULL,
    error    TEXT,                   -- NULL on success
    PRIMARY KEY (txid, block)
) WITHOUT ROWID;
