/*
 * cmd_unassign.c - `rlctl unassign KEY`: drop a key's assigned tier, so the
 * key rules and the default tier decide again.
 */
#include "common.h"

static const char use[] = "usage: rlctl unassign KEY\n"
                          "\n"
                          "Drops the tier assigned to KEY by 'rlctl assign': the key rules and\n"
                          "the default tier decide its tier again. Its buckets are kept.\n";

int rlctl_cmd_unassign(const rlctl_ctx *ctx, int argc, char **argv)
{
    char key[RLCTL_TEXT_MAX];
    int npos, rc;
    rl *r = NULL;

    if ((rc = rlctl_parse_opts(argc, argv, NULL, use, &npos)) != RLCTL_OK)
        return rc;
    if (npos != 1)
        return rlctl_usage_error(argv[0], "%s", npos ? "takes one KEY" : "needs a KEY");
    if ((rc = rlctl_open(ctx, 0, &r)) != RLCTL_OK)
        return rc;
    if (rl_key_assign(r, argv[1], NULL) != RL_OK)
        rc = rlctl_error("%s", rl_errmsg(r));
    else
        printf("unassigned %s\n", rlctl_text(argv[1], key, sizeof key));
    rl_close(r);
    return rc;
}
