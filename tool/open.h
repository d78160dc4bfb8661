/*
 * open.h - the database a command works on: --db and --shared-group,
 * opening it, and the look-ups in it that several commands share (does a
 * tier exist, which key rule gave a key its tier).
 *
 * Guarantees: a command that only looks opens the database read-only, so
 * a mistyped --db is never created (nor the directories of the default
 * path) and no write lock is taken; a missing database file is said as
 * such; every
 * failure is said once on stderr (escaped, through output.h) and comes
 * back as an RLCTL_* status, RLCTL_PERM for a file refused as planted
 * (RL_EPERM) and RLCTL_ERROR for anything else.
 */
#ifndef RLCTL_OPEN_H
#define RLCTL_OPEN_H

#include <stddef.h>

#include "rl.h"
#include "status.h"

/* The global options, given before the command. */
typedef struct rlctl_ctx {
    const char *db;   /* --db, or NULL for rl_open's default */
    int shared_group; /* --shared-group: RL_OPEN_SHARED_GROUP, file_mode 0660 */
} rlctl_ctx;

/* The rl_options of ctx: file_mode and flags for --shared-group. */
void rlctl_options(const rlctl_ctx *ctx, rl_options *o);

/* Opens the database of ctx (read-only for commands that only look, so a
 * mistyped --db is not created, nor any directory, and no write lock is
 * taken; a missing file is then an error of its own). On failure
 * prints why and returns RLCTL_PERM for a refused file (RL_EPERM), else
 * RLCTL_ERROR, with *out NULL. */
int rlctl_open(const rlctl_ctx *ctx, int readonly, rl **out);

/* --tier T given to a command: RLCTL_OK if the tier exists, else says so
 * (RLCTL_ERROR); tier NULL is fine. */
int rlctl_check_tier(rl *r, const char *tier);

/* The key rule that gave `key` its tier `tier` (first match wins, as in the
 * library): written to match, or "" if none. */
int rlctl_find_rule(rl *r, const char *key, const char *tier, char *match, size_t len);
/* rl_stats of key, and in rule the key rule that gave it its tier ("" when
 * no rule did). Says why and returns RLCTL_ERROR on failure. */
int rlctl_key_tier(rl *r, const char *key, rl_key_stats *st, char *rule, size_t len);

#endif
