-- 005_limit_sets.sql: the limits a bucket state was written for, kept once
-- per tier instead of copied into every key's row (state format 3, see
-- core/state.c and store/sqlite_state.c).
--
-- fp is a tier fingerprint (rl_tier_fingerprint, as a signed 64-bit
-- integer); body its slot set: for each slot of a state written for that
-- tier, its kind, limit id, count, period and burst (rl_slotset_encode).
-- Rows are only ever inserted: a fingerprint names one set for ever, so a
-- state written years ago is still read with the limits it was written
-- under, which a changed tier rescales from. The new version also makes
-- older libraries refuse the file (RL_EVERSION), as they cannot read
-- format 3 states.
CREATE TABLE rl_limit_sets (
    fp   INTEGER PRIMARY KEY,
    body BLOB NOT NULL
);
