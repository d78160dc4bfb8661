/*
 * cmd_assign.c - `rlctl assign KEY TIER`: give a key a tier of its own,
 * which wins over the key rules and the default tier.
 */
#include "common.h"

static const char use[] = "usage: rlctl assign KEY TIER\n"
                          "\n"
                          "Gives KEY the tier TIER whatever the key rules say, until 'rlctl\n"
                          "unassign KEY'. TIER must exist (see the tiers file loaded).\n";

int rlctl_cmd_assign(const rlctl_ctx *ctx, int argc, char **argv)
{
    char key[RLCTL_TEXT_MAX], tier[4 * RL_NAME_MAX];
    int npos, rc;
    rl *r = NULL;

    if ((rc = rlctl_parse_opts(argc, argv, NULL, use, &npos)) != RLCTL_OK)
        return rc;
    if (npos != 2)
        return rlctl_usage_error(argv[0], "needs KEY and TIER");
    if ((rc = rlctl_open(ctx, 0, &r)) != RLCTL_OK)
        return rc;
    if (rl_key_assign(r, argv[1], argv[2]) != RL_OK)
        rc = rlctl_error("%s", rl_errmsg(r));
    else
        printf("assigned tier '%s' to %s\n", rlctl_text(argv[2], tier, sizeof tier),
               rlctl_text(argv[1], key, sizeof key));
    rl_close(r);
    return rc;
}
