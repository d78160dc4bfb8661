/*
 * cmd_prune.c - `rlctl prune --idle DURATION`: drop keys that hold nothing
 * worth keeping, so a database of many one-off keys (IPs, agents) stays
 * small.
 *
 * What goes is exactly what a key's next request could not tell from a key
 * never seen: every bucket full, nothing in flight, no cool-down, no
 * assigned tier, and no decision for DURATION. The work is librl's
 * rl_prune, a few hundred keys per write transaction, each re-checked under
 * the lock, so processes deciding meanwhile lose nothing.
 */
#include "common.h"

static const char use[] = "usage: rlctl prune --idle DURATION [--dry-run]\n"
                          "\n"
                          "Removes the keys whose buckets are all full (no units spent or in\n"
                          "flight, no cool-down) and that saw no decision for DURATION (1h, 7d,\n"
                          "1m30s). Keys with an assigned tier are kept. Their next request meets\n"
                          "the same full buckets, so no decision changes; only their counters go.\n"
                          "\n"
                          "Options:\n"
                          "  --idle DURATION  how long a key must have been unused\n"
                          "  --dry-run        print how many keys would go, and change nothing\n";

int rlctl_cmd_prune(const rlctl_ctx *ctx, int argc, char **argv)
{
    const char *idle_s = NULL;
    int dry_run = 0, npos, rc;
    const rlctl_opt opts[] = {
        { "--idle", RLCTL_OPT_VALUE, &idle_s },
        { "--dry-run", RLCTL_OPT_FLAG, &dry_run },
        { NULL, 0, NULL },
    };
    int64_t idle = 0, count = 0;
    rl *r = NULL;

    if ((rc = rlctl_parse_opts(argc, argv, opts, use, &npos)) != RLCTL_OK)
        return rc;
    if (npos > 0)
        return rlctl_usage_error(argv[0], "unexpected argument '%s'", argv[1]);
    if (!idle_s)
        return rlctl_usage_error(argv[0], "needs --idle DURATION");
    if (rl_parse_duration(idle_s, &idle) != RL_OK)
        return rlctl_usage_error(argv[0], "--idle takes a duration like 1h, 7d or 1m30s, not '%s'",
                                 idle_s);
    if ((rc = rlctl_open(ctx, dry_run, &r)) != RLCTL_OK)
        return rc;
    if (rl_prune(r, idle, dry_run, &count) != RL_OK)
        rc = rlctl_error("%s", rl_errmsg(r));
    printf("%s %lld key(s)\n", dry_run ? "would prune" : "pruned", (long long)count);
    rl_close(r);
    return rc;
}
