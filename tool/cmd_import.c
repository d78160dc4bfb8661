/*
 * cmd_import.c - `rlctl import FILE`: make a database the one an
 * `rlctl export` described, to restore a backup or finish a move.
 *
 * Everything in FILE is checked first (librl's rl_import: names, keys,
 * limits and bucket slots as the library checks its own input) and then
 * replaces the whole state in one write transaction, so a bad file changes
 * nothing and processes never see half an import. That transaction holds
 * the write lock while it writes: processes wait for it (within their busy
 * timeout), about a second per hundred thousand keys.
 */
#include "common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char use[] =
    "usage: rlctl import FILE\n"
    "\n"
    "Replaces the whole state of the database (settings, tiers, key rules,\n"
    "leases, keys) with that of FILE, a document written by 'rlctl export'\n"
    "('-' reads stdin). All of it or, on any error, nothing: every value is\n"
    "checked before anything is written. Exit status 1 if FILE is invalid.\n";

/* The whole file in memory: rl_import takes one document. */
static int slurp(const char *path, char **out, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    char *buf = NULL, *nb;
    size_t cap = 0, n = 0, got;
    int rc = RLCTL_OK;
    if (!f)
        return rlctl_error("%s: %s", path, strerror(errno));
    do {
        if (cap - n < 65536) {
            cap = cap ? cap * 2 : 1 << 20;
            if (!(nb = realloc(buf, cap))) {
                rc = rlctl_error("%s: out of memory", path);
                goto out;
            }
            buf = nb;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
    } while (got > 0);
    if (ferror(f)) {
        rc = rlctl_error("%s: %s", path, strerror(errno ? errno : EIO));
        goto out;
    }
    *out = buf;
    *len = n;
    buf = NULL;
out:
    free(buf);
    if (f != stdin)
        fclose(f);
    return rc;
}

static int count_tier(void *ctx, const rl_tier_info *t)
{
    (void)t;
    ++*(size_t *)ctx;
    return 0;
}

static int count_rule(void *ctx, const char *match, const char *tier)
{
    (void)match;
    (void)tier;
    ++*(size_t *)ctx;
    return 0;
}

int rlctl_cmd_import(const rlctl_ctx *ctx, int argc, char **argv)
{
    char *doc = NULL;
    size_t len = 0, ntiers = 0, nrules = 0;
    int npos, rc, irc;
    rl_totals t;
    rl *r = NULL;

    if ((rc = rlctl_parse_opts(argc, argv, NULL, use, &npos)) != RLCTL_OK)
        return rc;
    if (npos != 1)
        return rlctl_usage_error(argv[0], "%s", npos ? "takes one FILE" : "needs a FILE");
    if ((rc = slurp(argv[1], &doc, &len)) != RLCTL_OK)
        return rc;
    if ((rc = rlctl_open(ctx, 0, &r)) != RLCTL_OK)
        goto out;
    if ((irc = rl_import(r, doc, len)) != RL_OK) {
        rlctl_error("%s: %s", argv[1], rl_errmsg(r));
        rc = irc == RL_EINVAL ? RLCTL_NO : RLCTL_ERROR;
        goto out;
    }
    /* Counted from the database: what is now in force. */
    if (rl_tiers_list(r, count_tier, &ntiers) != RL_OK ||
        rl_rules_list(r, count_rule, &nrules) != RL_OK || rl_totals_get(r, &t) != RL_OK) {
        rc = rlctl_error("%s", rl_errmsg(r));
        goto out;
    }
    printf("imported %s: %zu tier(s), %zu key rule(s), %lld key(s)\n", argv[1], ntiers, nrules,
           (long long)t.keys);
out:
    free(doc);
    rl_close(r);
    return rc;
}
