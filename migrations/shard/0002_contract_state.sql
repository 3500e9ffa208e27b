-- Contract state: one row per (contract, scope, scope target), holding that scope's state
-- variables in their canonical encoding. A row whose variables are all defaults is absent.
CREATE TABLE contract_state (
    key   BLOB PRIMARY KEY,          -- contract (32) || scope tag (1) || target (2, 4..64 or 32 bytes)
    value BLOB NOT NULL
) WITHOUT ROWID;

-- Undo records for contract state, per applied block (like `undo` for accounts).
CREATE TABLE state_undo (
    height INTEGER PRIMARY KEY,
    data   BLOB NOT NULL
);
