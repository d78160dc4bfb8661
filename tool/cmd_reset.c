/*
 * cmd_reset.c - `rlctl reset KEY...`: forget keys' buckets and counters.
 *
 * Every key is tried even when one fails, so one typo in a list does not
 * leave the others untouched; the exit status still reports the failure.
 */
#include "common.h"

static const char use[] =
    "usage: rlctl reset KEY...\n"
    "\n"
    "Forgets the buckets and counters of each KEY: its next request meets\n"
    "full buckets. A tier assigned to a key stays assigned.\n";

int rlctl_cmd_reset(const rlctl_ctx *ctx, int argc, char **argv)
{
    int npos, rc, i, done = 0;
    rl *r = NULL;

    if ((rc = rlctl_parse_opts(argc, argv, NULL, use, &npos)) != RLCTL_OK)
        return rc;
    if (npos == 0)
        return rlctl_usage_error(argv[0], "needs at least one KEY");
    if ((rc = rlctl_open(ctx, 0, &r)) != RLCTL_OK)
        return rc;
    for (i = 1; i <= npos; i++) {
        if (rl_reset(r, argv[i]) != RL_OK)
            rc = rlctl_error("%s", rl_errmsg(r));
        else
            done++;
    }
    printf("reset %d key(s)\n", done);
    rl_close(r);
    return rc;
}
