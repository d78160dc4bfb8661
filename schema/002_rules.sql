-- 002_rules.sql: key rules and policy settings from YAML tier files.
--
-- Rules are tried in pos order; the first whose glob matches a key gives its
-- tier (after explicit assignments in rl_keys.tier). Settings live in rl_meta:
-- default_tier (a tier name or NULL) and fail_mode (0 closed, 1 open, or NULL
-- to leave it to each process's rl_options).
CREATE TABLE rl_rules (
    pos   INTEGER PRIMARY KEY,
    match TEXT NOT NULL,
    tier  TEXT NOT NULL
);

INSERT INTO rl_meta (name, value) VALUES ('default_tier', NULL), ('fail_mode', NULL);
