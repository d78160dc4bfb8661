/*
 * tiers.c - the policy through the handle: tiers, key rules, explicit
 * assignments and settings, written (rl_tier_set, rl_tier_delete,
 * rl_key_assign, rl_load_tiers) and read (rl_tiers_list, rl_tier_get,
 * rl_rules_list).
 *
 * Guarantees:
 *   - every write is one write transaction that bumps the store's policy
 *     version, so every process applies it from its next decision;
 *   - rl_load_tiers parses and checks the whole file first (config/, which
 *     knows nothing of the handle) and replaces tiers, rules and settings
 *     in one transaction, or changes nothing (FILE:LINE:COL in the
 *     message); it does not read the stored policy, so a damaged one is
 *     replaced;
 *   - listings call back on a private copy of the policy, without the
 *     handle's mutex, so a callback may call into the handle;
 *   - the default limits a program gives at rl_open are the tier named
 *     RL_DEFAULTS_TIER in the store, compared and, when it holds none (or
 *     the program overrides them), written in one write transaction: two
 *     processes that open at once cannot both find none and each write
 *     their own, and every process, rlctl too, decides with what is stored.
 */
#include "handle.h"
#include "../config/cfg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- writing ------------------------------------------------------------- */

/* Each policy write is one write transaction (rl__write_tx). */

static int op_tier_put(rl *r, void *arg)
{
    return r->store->ops->tier_put(r->store, arg);
}

int rl_tier_set(rl *r, const char *tier, const rl_limit *limits, size_t n)
{
    rl_tier t;
    int rc;
    if (!r)
        return RL_EINVAL;
    if (!rl_name_valid(tier))
        return rl_seterr(rl__errbuf(r), RL_EINVAL,
                         "invalid tier name (1-63 of A-Z a-z 0-9 _ . : -)");
    if ((rc = rl__build_tier(&t, tier, limits, n, rl__errbuf(r))) != RL_OK)
        return rc;
    return rl__write_tx(r, op_tier_put, NULL, &t);
}

static int op_tier_delete(rl *r, void *arg)
{
    return r->store->ops->tier_delete(r->store, arg);
}

int rl_tier_delete(rl *r, const char *tier)
{
    if (!r)
        return RL_EINVAL;
    if (!rl_name_valid(tier))
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "invalid tier name");
    return rl__write_tx(r, op_tier_delete, NULL, (void *)tier); /* only read */
}

static int op_policy_put(rl *r, void *arg)
{
    return r->store->ops->policy_put(r->store, arg);
}

/* Replaces all tiers, rules and settings with p in one transaction. */
static int policy_replace(rl *r, const rl_policy *p)
{
    return rl__write_tx(r, op_policy_put, NULL, (void *)p); /* only read */
}

int rl_load_tiers(rl *r, const char *yaml_path)
{
    rl_policy p;
    int rc;
    if (!r)
        return RL_EINVAL;
    if (!yaml_path)
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "tier file path is NULL");
    rc = rl_cfg_parse_file(yaml_path, &p, rl__errbuf(r), RL_ERRMSG_MAX);
    if (rc != RL_OK)
        return rc;
    rc = policy_replace(r, &p);
    rl_policy_free(&p);
    return rc;
}

typedef struct assign_arg {
    const char *key, *tier;
} assign_arg;

static int op_assign(rl *r, void *arg)
{
    const assign_arg *a = arg;
    rl_row row;
    int64_t version;
    int rc = r->store->ops->row_get(r->store, a->key, &row, &version);
    if (rc != RL_OK)
        return rc;
    if ((rc = rl__refresh_policy(r, version)) != RL_OK)
        return rc;
    if (a->tier && !rl_policy_tier(&r->pol, a->tier))
        return rl_seterr(r->err, RL_ENOTFOUND, "no such tier: '%s'", a->tier);
    if (!a->tier && !row.exists)
        return RL_OK;
    snprintf(row.tier, sizeof row.tier, "%s", a->tier ? a->tier : "");
    /* a row that only held the assignment goes with it */
    if (!a->tier && row.state_len == 0 && row.allowed == 0 && row.refused == 0)
        return r->store->ops->row_delete(r->store, a->key);
    return r->store->ops->row_put(r->store, a->key, &row);
}

int rl_key_assign(rl *r, const char *key, const char *tier)
{
    assign_arg a;
    int rc;
    if (!r)
        return RL_EINVAL;
    if ((rc = rl__check_key(r, key)) != RL_OK)
        return rc;
    if (tier && !rl_name_valid(tier))
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "invalid tier name");
    a.key = key;
    a.tier = tier;
    return rl__write_tx(r, op_assign, NULL, &a);
}

/* ---- reading ------------------------------------------------------------- */

/* Brings the cached policy up to date in a read transaction of its own. */
static int fresh_policy(rl *r)
{
    int64_t version;
    int rc = r->store->ops->begin(r->store, 0);
    if (rc != RL_OK)
        return rc;
    if ((rc = r->store->ops->policy_version(r->store, &version)) == RL_OK)
        rc = rl__refresh_policy(r, version);
    r->store->ops->rollback(r->store);
    return rc;
}

/* The end of a call whose callbacks ran without the lock and may have
 * called into the handle: RL_OK leaves no message of theirs behind. */
static int ok_done(rl *r, int rc)
{
    if (rc == RL_OK)
        rl__errbuf(r)[0] = 0;
    return rc;
}

/* A private copy of the current policy, so callbacks can run without the
 * handle's lock and may call back into the handle. */
static int policy_snapshot(rl *r, rl_policy *copy)
{
    int rc;
    rl__lock(r);
    rc = fresh_policy(r);
    if (rc == RL_OK && (rc = rl_policy_copy(copy, &r->pol)) != RL_OK)
        rl_seterr(r->err, rc, "out of memory");
    rl__unlock(r);
    return rc;
}

/* t as rl_tier_info, in a policy whose default tier is default_tier. */
static void tier_info(const rl_tier *t, const char *default_tier, rl_tier_info *ti)
{
    size_t i;
    memset(ti, 0, sizeof *ti);
    snprintf(ti->name, sizeof ti->name, "%s", t->name);
    ti->unlimited = t->unlimited;
    ti->is_default = strcmp(t->name, default_tier[0] ? default_tier : "default") == 0;
    ti->n_limits = t->n;
    for (i = 0; i < t->n; i++) {
        snprintf(ti->limits[i].name, sizeof ti->limits[i].name, "%s", t->limits[i].name);
        snprintf(ti->limits[i].resource, sizeof ti->limits[i].resource, "%s",
                 t->limits[i].resource);
        ti->limits[i].count = t->limits[i].count;
        ti->limits[i].period_ns = t->limits[i].period_ns;
        ti->limits[i].burst = t->limits[i].burst;
        ti->limits[i].algorithm = rl__algorithm_of(&t->limits[i]);
    }
}

static int cmp_tier_names(const void *a, const void *b)
{
    return strcmp(((const rl_tier *)a)->name, ((const rl_tier *)b)->name);
}

int rl_tiers_list(rl *r, int (*fn)(void *ctx, const rl_tier_info *t), void *ctx)
{
    rl_policy copy;
    rl_tier_info ti;
    size_t i;
    int rc;
    if (!r)
        return RL_EINVAL;
    if (!fn)
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "callback is NULL");
    if ((rc = policy_snapshot(r, &copy)) != RL_OK)
        return rc;
    /* Callbacks run without the handle's lock, on a private copy, so they may
     * call back into the handle. */
    if (copy.n_tiers > 0) /* qsort(NULL, 0, ...) is undefined */
        qsort(copy.tiers, copy.n_tiers, sizeof *copy.tiers, cmp_tier_names);
    for (i = 0; i < copy.n_tiers && rc == 0; i++) {
        tier_info(&copy.tiers[i], copy.default_tier, &ti);
        rc = fn(ctx, &ti);
    }
    rl_policy_free(&copy);
    return ok_done(r, rc);
}

int rl_tier_get(rl *r, const char *tier, rl_tier_info *ti)
{
    const rl_tier *t;
    int rc;
    if (!r)
        return RL_EINVAL;
    if (!tier || !ti)
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "tier or info is NULL");
    rl__lock(r);
    if ((rc = fresh_policy(r)) == RL_OK) {
        if ((t = rl_policy_tier(&r->pol, tier)))
            tier_info(t, r->pol.default_tier, ti);
        else
            rc = rl_seterr(r->err, RL_ENOTFOUND, "no such tier: '%.64s'", tier);
    }
    rl__unlock(r);
    return rc;
}

int rl_rules_list(rl *r, int (*fn)(void *ctx, const char *match, const char *tier), void *ctx)
{
    rl_policy copy;
    size_t i;
    int rc;
    if (!r)
        return RL_EINVAL;
    if (!fn)
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "callback is NULL");
    if ((rc = policy_snapshot(r, &copy)) != RL_OK)
        return rc;
    for (i = 0; i < copy.n_rules && rc == 0; i++)
        rc = fn(ctx, copy.rules[i].match, copy.rules[i].tier);
    rl_policy_free(&copy);
    return ok_done(r, rc);
}

/* ---- the default limits ------------------------------------------------- */

/* The same limits, in any order: a limit is known by its resource and name
 * (distinct within a tier), as a key's state is, so two programs that list
 * them in another order still agree. */
static int same_limits(const rl_tier *a, const rl_tier *b)
{
    size_t i, j;
    if (a->unlimited != b->unlimited || a->n != b->n)
        return 0;
    for (i = 0; i < a->n; i++) {
        const rl_ldef *x = &a->limits[i], *y = NULL;
        for (j = 0; j < b->n && !y; j++)
            if (strcmp(x->name, b->limits[j].name) == 0 &&
                strcmp(x->resource, b->limits[j].resource) == 0)
                y = &b->limits[j];
        if (!y || x->kind != y->kind || x->count != y->count || x->period_ns != y->period_ns ||
            x->burst != y->burst)
            return 0;
    }
    return 1;
}

/* "limit1 60/min burst 10, tpm 90000/min of tokens": what a message shows
 * of a tier's limits, cut with "..." where the buffer ends. */
static void describe_limits(const rl_tier *t, char *buf, size_t len)
{
    size_t i, at = 0;
    int n;
    buf[0] = 0;
    if (t->unlimited || t->n == 0) {
        snprintf(buf, len, "unlimited");
        return;
    }
    for (i = 0; i < t->n && at < len; i++) {
        const rl_ldef *d = &t->limits[i];
        char rate[48];
        if (d->kind == RL_KIND_CONCURRENT)
            snprintf(rate, sizeof rate, "%lld in flight", (long long)d->count);
        else if (rl_format_rate(d->count, d->period_ns, rate, sizeof rate) != RL_OK)
            snprintf(rate, sizeof rate, "?");
        n = snprintf(buf + at, len - at, "%s%s %s", i ? ", " : "", d->name, rate);
        if (n >= 0 && (size_t)n < len - at && d->kind == RL_KIND_GCRA && d->burst != d->count)
            n += snprintf(buf + at + n, len - at - (size_t)n, " burst %lld", (long long)d->burst);
        if (n >= 0 && (size_t)n < len - at && d->kind == RL_KIND_WINDOW)
            n += snprintf(buf + at + n, len - at - (size_t)n, " window");
        if (n >= 0 && (size_t)n < len - at && strcmp(d->resource, "requests") != 0)
            n += snprintf(buf + at + n, len - at - (size_t)n, " of %s", d->resource);
        if (n < 0 || (size_t)n >= len - at)
            break;
        at += (size_t)n;
    }
    if (i < t->n && len > 4)
        memcpy(buf + len - 4, "...", 4);
}

typedef struct defaults_arg {
    const rl_tier *t;
    int override;
} defaults_arg;

/* The cached policy, brought up to date in the transaction running, against
 * a->t: RL_OK when it holds the same default limits, 1 when it holds none,
 * 2 when it holds others and a->override asks to replace them, else
 * RL_EMISMATCH with both in the message. */
static int compare_defaults(rl *r, const defaults_arg *a)
{
    const rl_tier *cur = rl_policy_tier(&r->pol, RL_DEFAULTS_TIER);
    char given[64], stored[64]; /* the message fits RL_ERRMSG_MAX whole */
    if (cur && same_limits(cur, a->t))
        return RL_OK;
    if (!cur || a->override)
        return cur ? 2 : 1;
    describe_limits(a->t, given, sizeof given);
    describe_limits(cur, stored, sizeof stored);
    return rl_seterr(r->err, RL_EMISMATCH,
                     "default_limits [%s] differ from the database's [%s]: open without "
                     "them to use the stored ones, or with RL_OPEN_OVERRIDE_DEFAULTS",
                     given, stored);
}

/* The check and the write in one transaction (see the top of the file). */
static int op_defaults(rl *r, void *arg)
{
    int64_t version;
    int rc = r->store->ops->policy_version(r->store, &version);
    if (rc != RL_OK || (rc = rl__refresh_policy(r, version)) != RL_OK)
        return rc;
    if ((rc = compare_defaults(r, arg)) <= 0)
        return rc; /* the same (nothing to write: the version stays), or a mismatch */
    return r->store->ops->tier_put(r->store, ((const defaults_arg *)arg)->t);
}

/* compare_defaults in a read transaction of its own: what a handle that
 * cannot write does, and what every open does first. With readonly, the
 * same defaults or none stored (it records nothing, and decides nothing
 * either) are RL_OK, replacing them RL_EREADONLY. */
static int read_defaults(rl *r, const defaults_arg *a, int readonly)
{
    int rc;
    rl__lock(r);
    if ((rc = fresh_policy(r)) == RL_OK && (rc = compare_defaults(r, a)) == 2 && readonly)
        rc = rl_seterr(r->err, RL_EREADONLY,
                       "cannot replace the database's default limits: the handle is read-only");
    if (rc == 1 && readonly)
        rc = RL_OK;
    rl__unlock(r);
    return rc;
}

int rl__defaults_open(rl *r, const rl_tier *t, int override)
{
    defaults_arg a;
    int rc;
    a.t = t;
    a.override = override;
    /* Every worker of a pool opens with the defaults the store has: a read
     * settles that, so opening never waits for a writer's lock then. Only
     * a write (none stored, or an override) takes it, and checks again. */
    rc = read_defaults(r, &a, (r->o.flags & RL_OPEN_READONLY) != 0);
    if (rc <= 0)
        return rc;
    rc = rl__write_tx(r, op_defaults, NULL, &a);
    /* A file this user may only read gives a read-only handle too. */
    if (rc == RL_EREADONLY)
        rc = read_defaults(r, &a, 1);
    return rc;
}
