/*
 * cfg.h - reading a YAML tiers file (format version 1, see docs/tiers.md)
 * into an rl_policy.
 *
 * Guarantees: on success *out holds a policy whose every tier, limit and
 * rule passed the same checks as the C API (rl_name_valid, rl_key_valid,
 * rl_ldef_check) and whose rules only name tiers it defines; on failure
 * *out is empty (freeing it is still allowed) and err holds one line,
 * "FILE:LINE:COL: message" with 1-based positions, for RL_ECONFIG.
 */
#ifndef RL_CFG_H
#define RL_CFG_H

#include "policy.h"

/* Larger files are refused before parsing: a tiers file is hand-written. */
#define RL_CFG_MAX_BYTES ((size_t)1 << 20)

/* Tiers are plans, not customers: a few dozen is usual. The cap keeps
 * loading (whose tier lookups are linear) well under a second. */
#define RL_CFG_MAX_TIERS 4096

/* RL_ECONFIG (bad content), RL_ENOMEM, or RL_ESTORE when the file cannot be
 * read ("FILE: cannot read: reason"). */
int rl_cfg_parse_file(const char *path, rl_policy *out, char *err, size_t errlen);

/* The same for bytes in memory; name stands for the file in messages. */
int rl_cfg_parse_buffer(const char *name, const unsigned char *buf, size_t len, rl_policy *out,
                        char *err, size_t errlen);

#endif
