-- 003_leases.sql: leases (rl_lease_begin): an estimate reserved now and
-- settled later, and the concurrency slots it holds until then.
--
-- pid and pstart name the owning process (its start time in clock ticks
-- after boot tells a live owner from a new process that reused the pid), so
-- the slots of a process that died are reclaimed before the lease expires.
-- body holds the estimate and the slots held (see core/lease.c).
CREATE TABLE rl_leases (
    id      INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: a stale lease must not settle a new one
    key     TEXT NOT NULL,
    created INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    pid     INTEGER NOT NULL,
    pstart  INTEGER NOT NULL,
    body    BLOB NOT NULL
);

CREATE INDEX rl_leases_key ON rl_leases (key);
