/*
 * cmd_keys.c - `rlctl keys`: every key with its tier and what it may still
 * spend, by its tightest limit or limit by limit; --limited keeps the keys
 * that would be refused right now.
 *
 * "Right now" is as of the read: the remaining budgets come from the same
 * computation a decision makes (librl's rl_keys_list), in one read
 * transaction that never holds up a deciding process. The output is built
 * whole before it is written, so a failure never leaves half of it.
 */
#include "common.h"
#include "json.h"

#include <string.h>

static const char use[] =
    "usage: rlctl keys [--match GLOB] [--tier TIER] [--limited] [--all-limits] [--json]\n"
    "\n"
    "Lists keys in order with their tier and remaining budget: the units each\n"
    "limit could still admit now. Without --all-limits, one line per key for\n"
    "its tightest limit (the one refusing longest, else the one with the\n"
    "smallest share of its burst left).\n"
    "\n"
    "Options:\n"
    "  --match GLOB   only keys that match GLOB ('*' any run, '?' one byte)\n"
    "  --tier TIER    only keys whose tier (as a decision resolves it) is TIER\n"
    "  --limited      only keys refused right now: a limit has nothing left\n"
    "                 (retry after > 0) or a cool-down runs\n"
    "  --all-limits   one line per limit of each key\n"
    "  --json         print one JSON object instead of a table\n";

typedef struct keys_ctx {
    const char *tier;
    int limited_only, all_limits, json;
    rlctl_table t;
    rlctl_json j;
    size_t n;
} keys_ctx;

/* Refused now: some limit has no unit left, or a cool-down covers it. */
static int is_limited(const rl_key_stats *st)
{
    size_t i;
    if (st->cooldown_ns > 0)
        return 1;
    for (i = 0; i < st->n_limits; i++)
        if (st->limits[i].remaining == 0 || st->limits[i].retry_after_ns > 0 ||
            st->limits[i].cooldown_ns > 0)
            return 1;
    return 0;
}

/* The limit that decides, as librl picks it for a result: the refusing one
 * with the longest wait, else the smallest share of its burst left. */
static const rl_limit_stats *tightest(const rl_key_stats *st)
{
    const rl_limit_stats *best = NULL;
    size_t i;
    for (i = 0; i < st->n_limits; i++) {
        const rl_limit_stats *l = &st->limits[i];
        int lref = l->remaining == 0, bref;
        if (!best) {
            best = l;
            continue;
        }
        bref = best->remaining == 0;
        if (lref != bref) {
            if (lref)
                best = l;
        } else if (lref) {
            if (l->retry_after_ns > best->retry_after_ns)
                best = l;
        } else if ((double)l->remaining / (double)l->burst <
                   (double)best->remaining / (double)best->burst) {
            best = l;
        }
    }
    return best;
}

static int64_t wait_of(const rl_key_stats *st, const rl_limit_stats *l)
{
    int64_t w = l->retry_after_ns;
    if (l->cooldown_ns > w)
        w = l->cooldown_ns;
    if (st->cooldown_ns > w)
        w = st->cooldown_ns;
    return w;
}

static int add_row(keys_ctx *c, const rl_key_stats *st, const rl_limit_stats *l)
{
    char rem[48], rate[64], retry[64], reset[64];
    const char *tier = st->tier[0] ? st->tier : "-";
    const char *cells[7];
    if (!l) {
        const char *what = st->tier_source == RL_TIER_NONE ? "no tier" : "unlimited";
        cells[0] = st->key;
        cells[1] = tier;
        cells[2] = "-";
        cells[3] = "-";
        cells[4] = what;
        cells[5] = "-";
        cells[6] = "-";
        return rlctl_table_add(&c->t, cells);
    }
    rlctl_format_rate(l->count, l->period_ns, rate, sizeof rate);
    snprintf(rem, sizeof rem, "%lld/%lld", (long long)l->remaining, (long long)l->burst);
    rlctl_format_duration(wait_of(st, l), retry, sizeof retry);
    rlctl_format_duration(l->reset_after_ns, reset, sizeof reset);
    cells[0] = st->key;
    cells[1] = tier;
    cells[2] = l->name;
    cells[3] = rate;
    cells[4] = rem;
    cells[5] = retry;
    cells[6] = reset;
    return rlctl_table_add(&c->t, cells);
}

static void json_key(keys_ctx *c, const rl_key_stats *st, const rl_limit_stats *tight)
{
    rlctl_json *j = &c->j;
    size_t i;
    rlctl_json_object(j);
    rlctl_json_kstring(j, "key", st->key);
    rlctl_json_kstring(j, "tier", st->tier[0] ? st->tier : NULL);
    rlctl_json_kstring(j, "tier_source", rlctl_tier_source_json(st->tier_source));
    rlctl_json_kbool(j, "limited", is_limited(st));
    rlctl_json_kstring(j, "tightest", tight ? tight->name : NULL);
    rlctl_json_kint(j, "cooldown_ns", st->cooldown_ns);
    rlctl_json_key(j, "limits");
    rlctl_json_array(j);
    for (i = 0; i < st->n_limits; i++) {
        const rl_limit_stats *l = &st->limits[i];
        char rate[64];
        rlctl_format_rate(l->count, l->period_ns, rate, sizeof rate);
        rlctl_json_object(j);
        rlctl_json_kstring(j, "name", l->name);
        rlctl_json_kstring(j, "resource", l->resource);
        rlctl_json_kstring(j, "kind", rlctl_limit_kind(l->period_ns, l->algorithm));
        rlctl_json_kstring(j, "rate", rate);
        rlctl_json_kint(j, "burst", l->burst);
        rlctl_json_kint(j, "remaining", l->remaining);
        rlctl_json_kint(j, "retry_after_ns", l->retry_after_ns);
        rlctl_json_kint(j, "reset_after_ns", l->reset_after_ns);
        rlctl_json_kint(j, "cooldown_ns", l->cooldown_ns);
        rlctl_json_end(j);
    }
    rlctl_json_end(j);
    rlctl_json_end(j);
}

static int each_key(void *ctx, const rl_key_stats *st)
{
    keys_ctx *c = ctx;
    const rl_limit_stats *tight;
    size_t i;
    if (c->tier && strcmp(st->tier, c->tier) != 0)
        return 0;
    if (c->limited_only && !is_limited(st))
        return 0;
    c->n++;
    tight = tightest(st);
    if (c->json) {
        json_key(c, st, tight);
        return 0;
    }
    if (!c->all_limits || st->n_limits == 0)
        return add_row(c, st, tight) != RLCTL_OK;
    for (i = 0; i < st->n_limits; i++)
        if (add_row(c, st, &st->limits[i]) != RLCTL_OK)
            return 1;
    return 0;
}

int rlctl_cmd_keys(const rlctl_ctx *ctx, int argc, char **argv)
{
    static const char *const head[] = { "KEY",       "TIER",        "LIMIT",      "RATE",
                                        "REMAINING", "RETRY AFTER", "RESET AFTER" };
    const char *match = NULL;
    keys_ctx c;
    rlctl_out o = { NULL, NULL, 0 };
    int npos, rc, lrc;
    rl *r = NULL;
    const rlctl_opt opts[] = {
        { "--match", RLCTL_OPT_VALUE, &match },
        { "--tier", RLCTL_OPT_VALUE, &c.tier },
        { "--limited", RLCTL_OPT_FLAG, &c.limited_only },
        { "--all-limits", RLCTL_OPT_FLAG, &c.all_limits },
        { "--json", RLCTL_OPT_FLAG, &c.json },
        { NULL, 0, NULL },
    };

    memset(&c, 0, sizeof c);
    rlctl_table_init(&c.t, 7, 1u << 4 | 1u << 5 | 1u << 6);
    c.t.header = 1;
    if ((rc = rlctl_parse_opts(argc, argv, opts, use, &npos)) != RLCTL_OK)
        return rc;
    if (npos > 0)
        return rlctl_usage_error(argv[0], "unexpected argument '%s' (use --match)", argv[1]);
    if (match && !*match)
        return rlctl_usage_error(argv[0], "--match needs a non-empty GLOB");
    if (c.json && c.all_limits)
        return rlctl_usage_error(argv[0], "--json lists every limit already: drop --all-limits");
    if ((rc = rlctl_open(ctx, 1, &r)) != RLCTL_OK)
        goto out;
    if ((rc = rlctl_check_tier(r, c.tier)) != RLCTL_OK)
        goto out;
    if ((rc = rlctl_table_add(&c.t, head)) != RLCTL_OK)
        goto out;
    if (c.json) {
        if ((rc = rlctl_out_open(&o)) != RLCTL_OK)
            goto out;
        rlctl_json_init(&c.j, o.f);
        rlctl_json_object(&c.j);
        rlctl_json_kstring(&c.j, "match", match);
        rlctl_json_kstring(&c.j, "tier", c.tier);
        rlctl_json_kbool(&c.j, "limited", c.limited_only);
        rlctl_json_key(&c.j, "keys");
        rlctl_json_array(&c.j);
    }
    lrc = rl_keys_list(r, match, RL_SORT_KEY, 0, each_key, &c);
    if (lrc != RL_OK) {
        rc = lrc > 0 ? RLCTL_ERROR : rlctl_error("%s", rl_errmsg(r));
        goto out;
    }
    if (c.json) {
        rlctl_json_end(&c.j);
        rlctl_json_kint(&c.j, "count", (int64_t)c.n);
        rlctl_json_end(&c.j);
        if (rlctl_json_done(&c.j) != 0) {
            rc = rlctl_error("internal error: bad JSON");
            goto out;
        }
        rlctl_out_flush(&o);
    } else if (c.n == 0) {
        printf("no %skeys\n", c.limited_only ? "limited " : "");
    } else {
        rlctl_table_print(&c.t, stdout);
    }
out:
    rlctl_out_discard(&o);
    rlctl_table_free(&c.t);
    rl_close(r);
    return rc;
}
