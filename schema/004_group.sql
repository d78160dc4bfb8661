-- 004_group.sql: the record that settles a dead group-commit leader's batch.
--
-- A leader that decides other processes' requests (store/lock.c) numbers
-- its batch and writes (domain, seq) here in the same transaction as the
-- decisions. The process that takes the lock from a dead leader reads it
-- back: the batch committed if and only if its number is here. Nothing else
-- writes this table, so writers that use another lock or none (another path
-- to the file, RL_BUSY_SQLITE) cannot make a lost batch look committed.
-- domain names one lock file's life (it is new each time the file is
-- rebuilt, and the old row is dropped then).
CREATE TABLE rl_group_commit (
    domain INTEGER PRIMARY KEY,
    seq    INTEGER NOT NULL
);
