/*
 * cmd_reset.c - `rlctl reset`: forget the buckets and counters of keys
 * named one by one, or selected by glob, by tier, or all of them.
 *
 * Named keys are each tried even when one fails, so one typo in a list does
 * not leave the others untouched; the exit status still reports the
 * failure. Selections go through librl's rl_reset_match, a few hundred keys
 * per write transaction, so processes deciding meanwhile wait a moment at
 * most and lose nothing. --all asks first, on the terminal, since it
 * cannot be undone.
 */
#include "common.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char use[] =
    "usage: rlctl reset [--dry-run] KEY...\n"
    "       rlctl reset [--dry-run] [--match GLOB] [--tier TIER]\n"
    "       rlctl reset [--dry-run] --all [--yes]\n"
    "\n"
    "Forgets the buckets and counters of each KEY, of every key that matches\n"
    "GLOB and/or has the tier TIER (as a decision resolves it), or of all\n"
    "keys: their next request meets full buckets. A tier assigned to a key\n"
    "stays assigned. Prints how many keys were reset.\n"
    "\n"
    "Options:\n"
    "  --match GLOB  keys that match GLOB: '*' any run, '?' one byte,\n"
    "                '\\' escapes the next byte\n"
    "  --tier TIER   keys whose tier is TIER\n"
    "  --all         every key; asks for confirmation when stdin is a terminal\n"
    "                and needs --yes when it is not\n"
    "  --yes         do not ask\n"
    "  --dry-run     print the keys that would be reset, and change nothing\n";

typedef struct dry_ctx {
    const char *tier;
    int64_t n;
} dry_ctx;

/* The same selection as rl_reset_match makes: glob in the query, tier as
 * a decision resolves it (keys under programs' default limits have none). */
static int dry_key(void *ctx, const rl_key_stats *st)
{
    dry_ctx *d = ctx;
    char shown[RLCTL_TEXT_MAX];
    if (d->tier && strcmp(st->tier, d->tier) != 0)
        return 0;
    printf("%s\n", rlctl_text(st->key, shown, sizeof shown));
    d->n++;
    return 0;
}

static int reset_named(rl *r, int n, char **keys, int dry_run)
{
    rl_key_stats *st = NULL;
    char shown[RLCTL_TEXT_MAX];
    int i, rc = RLCTL_OK, done = 0;
    if (dry_run) {
        if (!(st = malloc(sizeof *st)))
            return rlctl_error("out of memory");
        for (i = 0; i < n; i++) {
            if (rl_stats(r, keys[i], st) != RL_OK)
                rc = rlctl_error("%s", rl_errmsg(r));
            else if (!st->exists)
                rc = rlctl_error("no such key: '%s'", keys[i]);
            else {
                printf("%s\n", rlctl_text(keys[i], shown, sizeof shown));
                done++;
            }
        }
        printf("would reset %d key(s)\n", done);
        free(st);
        return rc;
    }
    for (i = 0; i < n; i++) {
        if (rl_reset(r, keys[i]) != RL_OK)
            rc = rlctl_error("%s", rl_errmsg(r));
        else
            done++;
    }
    printf("reset %d key(s)\n", done);
    return rc;
}

/* --all on a terminal: the user says yes, knowing how many keys go. */
static int confirmed(rl *r, const char *db)
{
    char question[4400], path[4096], shown[4096];
    rl_totals t;
    if (rl_totals_get(r, &t) != RL_OK)
        return rlctl_error("%s", rl_errmsg(r));
    if (!db && rl_default_path(path, sizeof path) == RL_OK)
        db = path;
    snprintf(question, sizeof question, "reset all %lld key(s) of %s?", (long long)t.keys,
             db ? rlctl_text(db, shown, sizeof shown) : "the database");
    if (!rlctl_confirm(question)) {
        fprintf(stderr, "rlctl: reset: not confirmed; nothing was reset\n");
        return RLCTL_NO;
    }
    return RLCTL_OK;
}

int rlctl_cmd_reset(const rlctl_ctx *ctx, int argc, char **argv)
{
    const char *match = NULL, *tier = NULL;
    int all = 0, yes = 0, dry_run = 0, npos, rc;
    const rlctl_opt opts[] = {
        { "--match", RLCTL_OPT_VALUE, &match },    { "--tier", RLCTL_OPT_VALUE, &tier },
        { "--all", RLCTL_OPT_FLAG, &all },         { "--yes", RLCTL_OPT_FLAG, &yes },
        { "--dry-run", RLCTL_OPT_FLAG, &dry_run }, { NULL, 0, NULL },
    };
    int64_t count = 0;
    dry_ctx d;
    rl *r = NULL;

    if ((rc = rlctl_parse_opts(argc, argv, opts, use, &npos)) != RLCTL_OK)
        return rc;
    if (npos > 0 && (match || tier || all))
        return rlctl_usage_error(argv[0], "give KEYs, or --match/--tier, or --all: not both");
    if (all && (match || tier))
        return rlctl_usage_error(argv[0], "--all resets every key: drop --match and --tier");
    if (npos == 0 && !match && !tier && !all)
        return rlctl_usage_error(argv[0], "needs at least one KEY, --match, --tier or --all");
    if (match && !*match)
        return rlctl_usage_error(argv[0], "--match needs a non-empty GLOB");
    /* Refused before opening anything: a script must not depend on whether
     * the database happens to be empty. */
    if (all && !yes && !dry_run && !isatty(STDIN_FILENO))
        return rlctl_usage_error(argv[0], "--all needs --yes when stdin is not a terminal");

    if ((rc = rlctl_open(ctx, dry_run, &r)) != RLCTL_OK)
        return rc;
    if (npos > 0) {
        rc = reset_named(r, npos, argv + 1, dry_run);
        goto out;
    }
    if ((rc = rlctl_check_tier(r, tier)) != RLCTL_OK)
        goto out;
    if (dry_run) {
        d.tier = tier;
        d.n = 0;
        if (rl_keys_list(r, match, RL_SORT_KEY, 0, dry_key, &d) != RL_OK) {
            rc = rlctl_error("%s", rl_errmsg(r));
            goto out;
        }
        printf("would reset %lld key(s)\n", (long long)d.n);
        goto out;
    }
    if (all && !yes && (rc = confirmed(r, ctx->db)) != RLCTL_OK)
        goto out;
    if (rl_reset_match(r, match, tier, 0, &count) != RL_OK)
        rc = rlctl_error("%s", rl_errmsg(r));
    /* Said even after an error: batches before it are committed. */
    printf("reset %lld key(s)\n", (long long)count);
out:
    rl_close(r);
    return rc;
}
