-- 001_core.sql: keys with their bucket state and counters, tiers and limits.
--
-- rl_keys holds one row per key: its explicit tier assignment (NULL if none),
-- its bucket state (an encoded blob, see core/state.c) and counters. It is a
-- WITHOUT ROWID table so a decision reads and writes one b-tree, by key.
CREATE TABLE rl_meta (
    name  TEXT PRIMARY KEY,
    value ANY
) WITHOUT ROWID;

-- policy_version goes up on every change of tiers, rules or settings; every
-- process compares it with the version its cached policy was read at.
INSERT INTO rl_meta (name, value) VALUES ('policy_version', 1);

CREATE TABLE rl_keys (
    key        TEXT PRIMARY KEY,
    tier       TEXT,
    state      BLOB,
    allowed    INTEGER NOT NULL DEFAULT 0,
    refused    INTEGER NOT NULL DEFAULT 0,
    units      INTEGER NOT NULL DEFAULT 0,
    first_seen INTEGER NOT NULL DEFAULT 0,
    last_seen  INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE TABLE rl_tiers (
    name      TEXT PRIMARY KEY,
    unlimited INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE TABLE rl_limits (
    tier      TEXT NOT NULL,
    pos       INTEGER NOT NULL,
    name      TEXT NOT NULL,
    resource  TEXT NOT NULL,
    count     INTEGER NOT NULL,
    period_ns INTEGER NOT NULL,
    burst     INTEGER NOT NULL,
    kind      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tier, pos)
) WITHOUT ROWID;
