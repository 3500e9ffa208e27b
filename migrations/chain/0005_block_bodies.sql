-- Block bodies apart from the index rows. With the body inside the row, the columns after
-- it (status) could only be read by walking the body's overflow pages (at every connect,
-- and for every block when the index loads at open), and changing a status rewrote the
-- whole body.
CREATE TABLE block_bodies (
    hash BLOB PRIMARY KEY,               -- 32 bytes, internal order
    body BLOB NOT NULL                   -- canonical block encoding (header, txs, seal)
);
INSERT INTO block_bodies (hash, body) SELECT hash, body FROM blocks;

CREATE TABLE blocks_new (
    hash      BLOB PRIMARY KEY,
    height    INTEGER NOT NULL,
    prev      BLOB NOT NULL,
    header    BLOB NOT NULL,
    chainwork BLOB NOT NULL,
    status    INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO blocks_new SELECT hash, height, prev, header, chainwork, status FROM blocks;
DROP TABLE blocks;
ALTER TABLE blocks_new RENAME TO blocks;
CREATE INDEX blocks_by_prev ON blocks(prev);
