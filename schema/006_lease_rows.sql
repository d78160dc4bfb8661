-- 006_lease_rows.sql: leases kept by key, so that a lease pair writes the
-- key's row and one page of leases in each of its two transactions (about
-- 4 WAL pages for the pair, against 7 with 003's table: its AUTOINCREMENT
-- wrote sqlite_sequence and its key index a page of its own).
--
-- rl_lease_rows holds a key's leases together, by (key, id): a decision
-- lists them without an index. A lease id is never reused (a stale lease
-- must not settle a new one), with no counter written per lease: each key
-- draws ids from a range of 2^24 of its own, id = range << 24 | n, one
-- after the other, and the key's highest id stays as a tombstone row (an
-- empty body, seen by no reader) when its lease ends, until the key's next
-- lease replaces it. A key with no row here, or whose range is used up,
-- draws the next range from rl_meta's lease_ranges, which only grows.
--
-- rl_lease_ids finds a lease's key from its id (settle and cancel are
-- given the id only): the row with the greatest lo <= id whose hi >= id.
-- A range's row is written once, when the key draws it; a lease that kept
-- an id from elsewhere (003's table, an import) has a row of its own, lo =
-- hi = id, and ranges are drawn above every such id. The new version also
-- makes older libraries refuse the file (RL_EVERSION): they would write
-- leases where this library no longer reads them.
CREATE TABLE rl_lease_rows (
    key     TEXT NOT NULL,
    id      INTEGER NOT NULL,
    created INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    pid     INTEGER NOT NULL,
    pstart  INTEGER NOT NULL,
    body    BLOB NOT NULL, -- empty: a tombstone keeping the key's highest id
    PRIMARY KEY (key, id)
) WITHOUT ROWID;

CREATE TABLE rl_lease_ids (
    lo  INTEGER PRIMARY KEY,
    hi  INTEGER NOT NULL,
    key TEXT NOT NULL
);

INSERT INTO rl_lease_rows (key, id, created, expires, pid, pstart, body)
    SELECT key, id, created, expires, pid, pstart, body FROM rl_leases;
INSERT INTO rl_lease_ids (lo, hi, key) SELECT id, id, key FROM rl_leases;
-- the last range drawn: every id issued so far (AUTOINCREMENT's high mark,
-- which outlives deleted rows) is below the first range drawn
INSERT INTO rl_meta (name, value) VALUES ('lease_ranges',
    max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'rl_leases'), 0),
        coalesce((SELECT max(id) FROM rl_leases), 0)) >> 24);
DROP TABLE rl_leases;
