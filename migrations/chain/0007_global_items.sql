-- System-contract state as items (issue 19): one row per item of the base state (the state
-- after the active block recorded in meta `global_base`), and per block whose global lane
-- changed something its changeset (every changed item with its old and new value), keyed by
-- block so side branches keep theirs. Reorgs undo changesets item by item; pruning folds the
-- changesets below the undo depth into the base. `global_state` (whole JSON snapshots per
-- block) belongs to data directories of earlier versions, which are refused at open.
CREATE TABLE global_item (
    system INTEGER NOT NULL,         -- contract id
    key    BLOB NOT NULL,
    value  BLOB NOT NULL,
    PRIMARY KEY (system, key)
) WITHOUT ROWID;

CREATE TABLE global_change (
    block  BLOB PRIMARY KEY,         -- block whose global lane made the changes
    height INTEGER NOT NULL,
    data   BLOB NOT NULL             -- encoded changeset (rexe_chain::global::encode_changes)
) WITHOUT ROWID;
CREATE INDEX global_change_by_height ON global_change(height);
