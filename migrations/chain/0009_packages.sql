-- On a node that tracks some shards (issue 20): the package each block came with (its chunks'
-- roots and the relay proofs from the shards the node does not run), kept so that the block
-- can be connected again in a reorg or replayed after a restart. Pruned with the relays.
CREATE TABLE packages (
    hash BLOB PRIMARY KEY,
    data BLOB NOT NULL
) WITHOUT ROWID;
