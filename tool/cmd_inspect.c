/*
 * cmd_inspect.c - `rlctl inspect KEY`: a key's tier and why it has it, its
 * counters, for every limit of the tier what is left and when it refills,
 * and what leases and cool-downs hold on it: stream slots in flight, debt
 * from leases that used more than they reserved, cool-downs, open leases.
 * Leases that expired or whose owner died hold nothing (librl counts only
 * live ones in flight): they are shown apart, as reclaimable.
 *
 * A key never seen is shown too, with full buckets: what its first request
 * would meet is exactly what an operator wants to check before traffic.
 * The limits are those every process decides with, the default limits
 * included (programs store theirs in the database, as the tier "default").
 * A key never seen that no limit covers has nothing to show: it is "no
 * such key" (status 3), as a typo in KEY usually is.
 */
#include "common.h"
#include "json.h"

#include <stdlib.h>

static const char use[] =
    "usage: rlctl inspect [--json] KEY\n"
    "\n"
    "Shows the tier of KEY and why it has it (assigned, a key rule, the\n"
    "default tier, the default limits that programs store in the database),\n"
    "its counters, and for every limit of the tier: rate, burst, units\n"
    "remaining now, when the bucket is full again (reset after) and when one\n"
    "more unit is admissible (retry after), the units in flight held by live\n"
    "leases, and the leases that expired or whose owner died (reclaimable:\n"
    "they hold nothing). A key never seen shows full buckets; one never seen\n"
    "that no tier or default limits cover is an error (status 3).\n"
    "\n"
    "Options:\n"
    "  --json  print one JSON object instead of tables\n";

/* "free (rule 'ip:*')", "pro (assigned)", "none (...)". */
static void tier_line(const rl_key_stats *st, const char *rule, char *buf, size_t len)
{
    if (st->tier_source == RL_TIER_NONE)
        snprintf(buf, len, "none (no rule, default tier or default limits applies)");
    else if (st->tier_source == RL_TIER_RULE && rule[0])
        snprintf(buf, len, "%s (rule '%s')", st->tier[0] ? st->tier : "-", rule);
    else
        snprintf(buf, len, "%s (%s)", st->tier[0] ? st->tier : "-",
                 rlctl_tier_source_text(st->tier_source));
}

/* The key's leases: live ones, and those that hold nothing any more. */
typedef struct lease_counts {
    int64_t live, reclaimable;
} lease_counts;

/* What leases and cool-downs hold on the key, below the limits table and
 * only when there is something to say. */
static void print_agent_state(const rl_key_stats *st, const lease_counts *leases)
{
    char d[64], name[RLCTL_TEXT_MAX], res[RLCTL_TEXT_MAX];
    size_t i;
    if (st->cooldown_ns) {
        rlctl_format_duration(st->cooldown_ns, d, sizeof d);
        printf("\ncool-down   every resource refused for %s more\n", d);
    }
    for (i = 0; i < st->n_limits; i++) {
        const rl_limit_stats *l = &st->limits[i];
        rlctl_text(l->name, name, sizeof name);
        rlctl_text(l->resource, res, sizeof res);
        if (l->cooldown_ns) {
            rlctl_format_duration(l->cooldown_ns, d, sizeof d);
            printf("cool-down   %s refused for %s more\n", res, d);
        }
        if (l->period_ns == 0)
            printf("in flight   %s: %lld of %lld held by leases\n", name, (long long)l->in_flight,
                   (long long)l->count);
        if (l->debt)
            printf("debt        %s: %lld %s owed beyond an empty bucket\n", name,
                   (long long)l->debt, res);
    }
    if (leases->reclaimable > 0)
        printf("leases      %lld open, %lld reclaimable (expired or owner dead: rlctl prune)\n",
               (long long)leases->live, (long long)leases->reclaimable);
    else if (leases->live > 0)
        printf("leases      %lld open (rlctl leases %s)\n", (long long)leases->live,
               rlctl_text(st->key, name, sizeof name));
}

static int print_human(const rl_key_stats *st, const char *rule, const lease_counts *leases)
{
    static const char *const head[] = { "LIMIT",     "RESOURCE",    "RATE",       "BURST",
                                        "REMAINING", "RESET AFTER", "RETRY AFTER" };
    char tier[RL_NAME_MAX + 200], a[24], r[24], u[24], first[64], last[64];
    const char *kv[][2] = {
        { "key", st->key }, { "tier", tier },        { "admitted", a },     { "refused", r },
        { "units", u },     { "first seen", first }, { "last seen", last },
    };
    rlctl_table info, lim;
    size_t i;
    int rc = RLCTL_OK;

    rlctl_table_init(&info, 2, 0);
    rlctl_table_init(&lim, 7, 1u << 3 | 1u << 4 | 1u << 5 | 1u << 6);
    tier_line(st, rule, tier, sizeof tier);
    snprintf(a, sizeof a, "%lld", (long long)st->allowed);
    snprintf(r, sizeof r, "%lld", (long long)st->refused);
    snprintf(u, sizeof u, "%lld", (long long)st->units);
    rlctl_format_time(st->first_seen_ns, first, sizeof first);
    rlctl_format_time(st->last_seen_ns, last, sizeof last);
    for (i = 0; i < sizeof kv / sizeof kv[0]; i++)
        if ((rc = rlctl_table_add(&info, kv[i])) != RLCTL_OK)
            goto out;
    rlctl_table_print(&info, stdout);
    putchar('\n');
    if (st->tier_source == RL_TIER_NONE) {
        printf("no limits: decisions on this key fail until a tier applies to it\n");
        goto out;
    }
    if (st->n_limits == 0) {
        printf("no limits: tier '%s' admits everything\n", rlctl_text(st->tier, tier, sizeof tier));
        goto out;
    }
    if ((rc = rlctl_table_add(&lim, head)) != RLCTL_OK)
        goto out;
    for (i = 0; i < st->n_limits; i++) {
        const rl_limit_stats *l = &st->limits[i];
        char rate[64], burst[24], rem[24], reset[64], retry[64];
        const char *cells[7];
        rlctl_format_rate(l->count, l->period_ns, rate, sizeof rate);
        snprintf(burst, sizeof burst, "%lld", (long long)l->burst);
        snprintf(rem, sizeof rem, "%lld", (long long)l->remaining);
        rlctl_format_duration(l->reset_after_ns, reset, sizeof reset);
        rlctl_format_duration(l->retry_after_ns, retry, sizeof retry);
        if (l->algorithm == RL_ALGO_SLIDING_WINDOW) /* its burst is its count */
            snprintf(burst, sizeof burst, "- (window)");
        cells[0] = l->name;
        cells[1] = l->resource;
        cells[2] = rate;
        cells[3] = burst;
        cells[4] = rem;
        cells[5] = reset;
        cells[6] = retry;
        if ((rc = rlctl_table_add(&lim, cells)) != RLCTL_OK)
            goto out;
    }
    rlctl_table_print(&lim, stdout);
    print_agent_state(st, leases);
out:
    rlctl_table_free(&info);
    rlctl_table_free(&lim);
    return rc;
}

static void json_time(rlctl_json *j, const char *name, const char *name_ns, int64_t ns)
{
    char buf[64];
    rlctl_format_time(ns, buf, sizeof buf);
    rlctl_json_kstring(j, name, ns ? buf : NULL);
    rlctl_json_kint(j, name_ns, ns);
}

static int count_lease(void *ctx, const rl_lease_info *l)
{
    lease_counts *c = ctx;
    if (l->live)
        c->live++;
    else
        c->reclaimable++;
    return 0;
}

static int print_json(const rl_key_stats *st, const char *rule, const lease_counts *leases)
{
    rlctl_json j;
    size_t i;
    rlctl_json_init(&j, stdout);
    rlctl_json_object(&j);
    rlctl_json_kstring(&j, "key", st->key);
    rlctl_json_kbool(&j, "exists", st->exists);
    rlctl_json_kstring(&j, "tier", st->tier[0] ? st->tier : NULL);
    rlctl_json_kstring(&j, "tier_source", rlctl_tier_source_json(st->tier_source));
    rlctl_json_kstring(&j, "rule", rule[0] ? rule : NULL);
    rlctl_json_kint(&j, "allowed", st->allowed);
    rlctl_json_kint(&j, "refused", st->refused);
    rlctl_json_kint(&j, "units", st->units);
    json_time(&j, "first_seen", "first_seen_ns", st->first_seen_ns);
    json_time(&j, "last_seen", "last_seen_ns", st->last_seen_ns);
    rlctl_json_key(&j, "limits");
    rlctl_json_array(&j);
    for (i = 0; i < st->n_limits; i++) {
        const rl_limit_stats *l = &st->limits[i];
        char rate[64];
        rlctl_format_rate(l->count, l->period_ns, rate, sizeof rate);
        rlctl_json_object(&j);
        rlctl_json_kstring(&j, "name", l->name);
        rlctl_json_kstring(&j, "resource", l->resource);
        rlctl_json_kstring(&j, "kind", rlctl_limit_kind(l->period_ns, l->algorithm));
        rlctl_json_kstring(&j, "rate", rate);
        rlctl_json_kint(&j, "count", l->count);
        rlctl_json_kint(&j, "period_ns", l->period_ns);
        rlctl_json_kint(&j, "burst", l->burst);
        rlctl_json_kint(&j, "remaining", l->remaining);
        rlctl_json_kint(&j, "reset_after_ns", l->reset_after_ns);
        rlctl_json_kint(&j, "retry_after_ns", l->retry_after_ns);
        rlctl_json_kint(&j, "cooldown_ns", l->cooldown_ns);
        rlctl_json_kint(&j, "debt", l->debt);
        if (l->period_ns == 0)
            rlctl_json_kint(&j, "in_flight", l->in_flight);
        rlctl_json_end(&j);
    }
    rlctl_json_end(&j);
    rlctl_json_kint(&j, "cooldown_ns", st->cooldown_ns);
    rlctl_json_kint(&j, "open_leases", leases->live);
    rlctl_json_kint(&j, "reclaimable_leases", leases->reclaimable);
    rlctl_json_end(&j);
    return rlctl_json_done(&j) == 0 ? RLCTL_OK : rlctl_error("internal error: bad JSON");
}

int rlctl_cmd_inspect(const rlctl_ctx *ctx, int argc, char **argv)
{
    int json = 0, npos, rc;
    const rlctl_opt opts[] = {
        { "--json", RLCTL_OPT_FLAG, &json },
        { NULL, 0, NULL },
    };
    char rule[RL_KEY_MAX + 1] = "";
    rl_key_stats *st = NULL;
    lease_counts leases = { 0, 0 };
    rl *r = NULL;

    if ((rc = rlctl_parse_opts(argc, argv, opts, use, &npos)) != RLCTL_OK)
        return rc;
    if (npos != 1)
        return rlctl_usage_error(argv[0], "%s", npos ? "takes one KEY" : "needs a KEY");
    if (!(st = malloc(sizeof *st))) {
        rc = rlctl_error("out of memory");
        goto out;
    }
    if ((rc = rlctl_open(ctx, 1, &r)) != RLCTL_OK)
        goto out;
    if ((rc = rlctl_key_tier(r, argv[1], st, rule, sizeof rule)) != RLCTL_OK)
        goto out;
    if (!st->exists && st->tier_source == RL_TIER_NONE) {
        char shown[RLCTL_TEXT_MAX];
        rc = rlctl_error("no such key: '%s' (never seen, and no tier or default limits cover it)",
                         rlctl_text(argv[1], shown, sizeof shown));
        goto out;
    }
    if (rl_leases_list(r, argv[1], count_lease, &leases) != RL_OK) {
        rc = rlctl_error("%s", rl_errmsg(r));
        goto out;
    }
    rc = json ? print_json(st, rule, &leases) : print_human(st, rule, &leases);
out:
    free(st);
    rl_close(r);
    return rc;
}
