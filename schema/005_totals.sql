-- 005_totals.sql: the sums of rl_keys, kept running.
--
-- rl_totals_get used to count and sum every row of rl_keys: about 0.2 s of
-- CPU at a million keys, inside one read transaction that pinned the WAL
-- (issue 20). The store now keeps the sums in this one row, updated in the
-- same transaction as the rows they sum, once per transaction (a group
-- commit's batch adds its decisions up first, store/sqlite_tx.c), so it is
-- exact whenever it is read, and reading it costs one row. No trigger does
-- it: the connection runs with triggers disabled (store/sqlite.c).
-- The new version also makes a library that knows only schema 4 refuse the
-- file (RL_EVERSION), as it would write rows without keeping the sums.
CREATE TABLE rl_totals (
    id      INTEGER PRIMARY KEY CHECK (id = 0),
    keys    INTEGER NOT NULL,
    allowed INTEGER NOT NULL,
    refused INTEGER NOT NULL,
    units   INTEGER NOT NULL
);

-- total() never fails on overflow, where sum() would stop the migration.
INSERT INTO rl_totals (id, keys, allowed, refused, units)
    SELECT 0, count(*), CAST(total(allowed) AS INTEGER), CAST(total(refused) AS INTEGER),
           CAST(total(units) AS INTEGER) FROM rl_keys;
