/*
 * cmd_tiers.c - `rlctl tiers SUBCOMMAND`: check a YAML tiers file
 * (validate) and make it the database's policy (load).
 *
 * validate prints errors compiler-style, "FILE:LINE:COL: message", without
 * the "rlctl: " prefix, so editors and CI annotations can jump to the spot.
 */
#include "common.h"

#include <string.h>

static const char use[] =
    "usage: rlctl tiers validate FILE...\n"
    "       rlctl tiers load FILE\n"
    "\n"
    "Subcommands:\n"
    "  validate  check tiers files without touching any database\n"
    "  load      replace every tier and key rule of the database with FILE's\n"
    "\n"
    "The format is described in docs/tiers.md.\n";

static const char use_validate[] =
    "usage: rlctl tiers validate FILE...\n"
    "\n"
    "Checks each YAML tiers FILE without opening a database. Prints\n"
    "'FILE: ok', or 'FILE:LINE:COL: message' on stderr for the first error\n"
    "in the file; exit status 1 if a file is invalid, 3 if it cannot be read.\n";

static const char use_load[] =
    "usage: rlctl tiers load FILE\n"
    "\n"
    "Replaces every tier, key rule and setting of the database with those of\n"
    "the YAML tiers FILE, in one transaction: all of it or, on an error,\n"
    "nothing. Every process using the database applies it from its next\n"
    "decision. Exit status 1 if FILE is invalid.\n";

static int tiers_validate(const rlctl_ctx *ctx, int argc, char **argv)
{
    char err[1024];
    int npos, rc, i, vrc;
    (void)ctx;
    if ((rc = rlctl_parse_opts(argc, argv, NULL, use_validate, &npos)) != RLCTL_OK)
        return rc;
    if (npos == 0)
        return rlctl_usage_error(argv[0], "needs a FILE");
    for (i = 1; i <= npos; i++) {
        err[0] = '\0';
        vrc = rl_validate_tiers(argv[i], err, sizeof err);
        if (vrc == RL_OK) {
            printf("%s: ok\n", argv[i]);
        } else if (vrc == RL_ECONFIG) {
            fprintf(stderr, "%s\n", err);
            if (rc == RLCTL_OK)
                rc = RLCTL_NO;
        } else { /* unreadable: not a verdict on the file's content */
            rc = rlctl_error("%s", err[0] ? err : rl_strerror(vrc));
        }
    }
    return rc;
}

static int count_cb(void *ctx, const rl_tier_info *t)
{
    (void)t;
    ++*(size_t *)ctx;
    return 0;
}

static int count_rule_cb(void *ctx, const char *match, const char *tier)
{
    (void)match;
    (void)tier;
    ++*(size_t *)ctx;
    return 0;
}

static int tiers_load(const rlctl_ctx *ctx, int argc, char **argv)
{
    size_t ntiers = 0, nrules = 0;
    int npos, rc, lrc;
    rl *r = NULL;

    if ((rc = rlctl_parse_opts(argc, argv, NULL, use_load, &npos)) != RLCTL_OK)
        return rc;
    if (npos != 1)
        return rlctl_usage_error(argv[0], "%s", npos ? "takes one FILE" : "needs a FILE");
    if ((rc = rlctl_open(ctx, 0, &r)) != RLCTL_OK)
        return rc;
    if ((lrc = rl_load_tiers(r, argv[1])) != RL_OK) {
        rlctl_error("%s", rl_errmsg(r));
        rc = lrc == RL_ECONFIG ? RLCTL_NO : RLCTL_ERROR;
        goto out;
    }
    /* Counted from the database, not the file: what is now in force. */
    if (rl_tiers_list(r, count_cb, &ntiers) != RL_OK ||
        rl_rules_list(r, count_rule_cb, &nrules) != RL_OK) {
        rc = rlctl_error("%s", rl_errmsg(r));
        goto out;
    }
    printf("loaded %s: %zu tier(s), %zu key rule(s)\n", argv[1], ntiers, nrules);
out:
    rl_close(r);
    return rc;
}

typedef struct tiers_sub {
    const char *name;
    int (*fn)(const rlctl_ctx *ctx, int argc, char **argv);
} tiers_sub;

static const tiers_sub subs[] = {
    { "validate", tiers_validate },
    { "load", tiers_load },
};
#define NSUBS (sizeof subs / sizeof subs[0])

int rlctl_cmd_tiers(const rlctl_ctx *ctx, int argc, char **argv)
{
    const char *names[NSUBS + 1];
    const char *s;
    char full[64];
    size_t i;

    if (argc < 2) {
        fputs(use, stderr);
        return RLCTL_USAGE;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs(use, stdout);
        return RLCTL_OK;
    }
    for (i = 0; i < NSUBS; i++) {
        if (strcmp(argv[1], subs[i].name) == 0) {
            /* The subcommand's argv[0] names it in full in messages. */
            snprintf(full, sizeof full, "tiers %s", subs[i].name);
            argv[1] = full;
            return subs[i].fn(ctx, argc - 1, argv + 1);
        }
        names[i] = subs[i].name;
    }
    names[NSUBS] = NULL;
    if (argv[1][0] == '-') {
        fprintf(stderr, "rlctl: tiers: unknown option '%s' (see 'rlctl tiers --help')\n", argv[1]);
        return RLCTL_USAGE;
    }
    if ((s = rlctl_suggest(argv[1], names)))
        fprintf(stderr, "rlctl: unknown command 'tiers %s' (did you mean 'tiers %s'?)\n", argv[1],
                s);
    else
        fprintf(stderr, "rlctl: unknown command 'tiers %s' (see 'rlctl tiers --help')\n",
                argv[1]);
    return RLCTL_USAGE;
}
