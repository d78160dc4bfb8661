/*
 * cmd_prune.c - `rlctl prune [--idle DURATION]`: reclaim the leases that
 * hold nothing any more, and drop keys that hold nothing worth keeping, so
 * a database of many one-off keys (IPs, agents) stays small.
 *
 * Leases reclaimed are those that expired or whose owner process died
 * (rl_lease_info.live 0): a lease decision on their key would reclaim them
 * first anyway, so no decision changes. What goes with --idle is exactly
 * what a key's next request could not tell from a key never seen: every
 * bucket full, nothing in flight, no cool-down, no assigned tier, and no
 * decision for DURATION. The work is librl's rl_prune: one write
 * transaction per key with leases to reclaim, then a few hundred keys per
 * write transaction, each re-checked under the lock, so processes deciding
 * meanwhile lose nothing.
 */
#include "common.h"

static const char use[] =
    "usage: rlctl prune [--idle DURATION] [--dry-run]\n"
    "\n"
    "Reclaims the leases that expired or whose owner process died (they hold\n"
    "nothing any more, but keep their slots taken in the database until the\n"
    "next lease on their key): deletes them and frees their slots.\n"
    "\n"
    "With --idle, also removes the keys whose buckets are all full (no units\n"
    "spent or in flight, no cool-down) and that saw no decision for DURATION\n"
    "(1h, 7d, 1m30s). Keys with an assigned tier are kept. Their next request\n"
    "meets the same full buckets, so no decision changes; only their counters\n"
    "go.\n"
    "\n"
    "Options:\n"
    "  --idle DURATION  also remove keys unused for that long\n"
    "  --dry-run        print what would be reclaimed and pruned, change nothing\n";

#define NO_KEY_IDLE ((int64_t)50 * 365 * RL_DAY)

/* Counts the leases that hold nothing any more. */
static int count_reclaimable(void *ctx, const rl_lease_info *l)
{
    *(int64_t *)ctx += !l->live;
    return 0;
}

int rlctl_cmd_prune(const rlctl_ctx *ctx, int argc, char **argv)
{
    const char *idle_s = NULL;
    int dry_run = 0, npos, rc;
    const rlctl_opt opts[] = {
        { "--idle", RLCTL_OPT_VALUE, &idle_s },
        { "--dry-run", RLCTL_OPT_FLAG, &dry_run },
        { NULL, 0, NULL },
    };
    int64_t idle = 0, count = 0, leases = 0;
    rl *r = NULL;

    if ((rc = rlctl_parse_opts(argc, argv, opts, use, &npos)) != RLCTL_OK)
        return rc;
    if (npos > 0)
        return rlctl_usage_error(argv[0], "unexpected argument '%s'", argv[1]);
    if (idle_s && rl_parse_duration(idle_s, &idle) != RL_OK)
        return rlctl_usage_error(argv[0], "--idle takes a duration like 1h, 7d or 1m30s, not '%s'",
                                 idle_s);
    if ((rc = rlctl_open(ctx, dry_run, &r)) != RLCTL_OK)
        return rc;
    /* rl_prune reclaims them first; its count is of keys, so the leases
     * are counted here, just before. Without --idle no key goes: none has
     * been idle for 50 years (the longest rl_prune takes). */
    if (rl_leases_list(r, NULL, count_reclaimable, &leases) != RL_OK ||
        rl_prune(r, idle_s ? idle : NO_KEY_IDLE, dry_run, &count) != RL_OK) {
        rc = rlctl_error("%s", rl_errmsg(r));
        goto out;
    }
    if (leases || !idle_s)
        printf("%s %lld lease(s)\n", dry_run ? "would reclaim" : "reclaimed", (long long)leases);
    if (idle_s)
        printf("%s %lld key(s)\n", dry_run ? "would prune" : "pruned", (long long)count);
out:
    rl_close(r);
    return rc;
}
