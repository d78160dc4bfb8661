/*
 * open.c - the database a command works on: its options, opening it, and
 * the look-ups several commands share (see open.h).
 *
 * Guarantees: a failure to open is said once, through rlctl_error (so a
 * path or message holding control characters is escaped), and mapped to
 * RLCTL_PERM for RL_EPERM, RLCTL_ERROR otherwise; *out is then NULL. A
 * read-only open creates nothing: not the database, and not the
 * directories of the default path (which rl_open(NULL) makes for a
 * program that is about to create its database there).
 */
#include "open.h"
#include "output.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* ---- the database ------------------------------------------------------ */

void rlctl_options(const rlctl_ctx *ctx, rl_options *o)
{
    static const rl_options defaults = RL_OPTIONS_INIT;
    *o = defaults;
    if (ctx->shared_group) {
        o->flags |= RL_OPEN_SHARED_GROUP;
        o->file_mode = 0660;
    }
}

/* A database file, as opposed to a server address (redis://, unix://) or
 * the in-process store (":memory:"), which have no file to look for. */
static int is_file(const char *path)
{
    return !strstr(path, "://") && strcmp(path, ":memory:") != 0;
}

/* For a reading command: the path to open, given as a path so that
 * rl_open makes no directory, and the file there checked first, so that a
 * mistyped or never-created database is said plainly ("No such file or
 * directory") rather than as SQLite's "unable to open database file".
 * lstat: a symbolic link, even a dangling one, is rl_open's to refuse as
 * such (RL_EPERM). NULL (no error said) leaves rl_open to say there is no
 * default path. */
static int readonly_path(const rlctl_ctx *ctx, char *buf, size_t len, const char **path)
{
    struct stat sb;
    *path = ctx->db;
    if (!*path) {
        if (rl_default_path(buf, len) != RL_OK)
            return RLCTL_OK;
        *path = buf;
    }
    if (is_file(*path) && lstat(*path, &sb) != 0) {
        if (errno == ENOENT)
            return rlctl_error("%s: %s (a reading command creates no database)", *path,
                               strerror(errno));
        return rlctl_error("%s: %s", *path, strerror(errno));
    }
    return RLCTL_OK;
}

int rlctl_open(const rlctl_ctx *ctx, int readonly, rl **out)
{
    char buf[4096];
    const char *path = ctx->db;
    rl_options o;
    rl *r = NULL;
    int rc;
    rlctl_options(ctx, &o);
    *out = NULL;
    if (readonly) {
        o.flags |= RL_OPEN_READONLY;
        if ((rc = readonly_path(ctx, buf, sizeof buf, &path)) != RLCTL_OK)
            return rc;
    }
    if ((rc = rl_open(&r, path, &o)) != RL_OK) {
        rlctl_error("%s", rl_errmsg(r));
        rl_close(r);
        return rc == RL_EPERM ? RLCTL_PERM : RLCTL_ERROR;
    }
    *out = r;
    return RLCTL_OK;
}

int rlctl_check_tier(rl *r, const char *tier)
{
    rl_tier_info ti;
    if (!tier)
        return RLCTL_OK;
    if (rl_tier_get(r, tier, &ti) != RL_OK)
        return rlctl_error("%s", rl_errmsg(r));
    return RLCTL_OK;
}

/* ---- shared look-ups ------------------------------------------------------ */

typedef struct rule_find {
    const char *key, *tier;
    char *match;
    size_t len;
} rule_find;

static int rule_cb(void *ctx, const char *match, const char *tier)
{
    rule_find *f = ctx;
    /* A rule naming a missing tier is skipped by the library, so it is
     * the first matching rule with the key's actual tier that counts. */
    if (strcmp(tier, f->tier) != 0 || !rl_glob_match(match, f->key))
        return 0;
    snprintf(f->match, f->len, "%s", match);
    return 1;
}

int rlctl_find_rule(rl *r, const char *key, const char *tier, char *match, size_t len)
{
    rule_find f;
    int rc;
    f.key = key;
    f.tier = tier;
    f.match = match;
    f.len = len;
    match[0] = '\0';
    rc = rl_rules_list(r, rule_cb, &f);
    return rc < 0 ? rc : RL_OK;
}

int rlctl_key_tier(rl *r, const char *key, rl_key_stats *st, char *rule, size_t len)
{
    rule[0] = 0;
    if (rl_stats(r, key, st) != RL_OK ||
        (st->tier_source == RL_TIER_RULE && rlctl_find_rule(r, key, st->tier, rule, len) != RL_OK))
        return rlctl_error("%s", rl_errmsg(r));
    return RLCTL_OK;
}
