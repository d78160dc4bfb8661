/*
 * read.c - reading through the handle: one key's state (rl_stats), the
 * store's totals (rl_totals_get), and listings of keys (rl_keys_list) and
 * leases (rl_leases_list).
 *
 * Guarantees:
 *   - a read takes a read transaction, never the write lock: in WAL mode it
 *     blocks no decider, and it sees one consistent snapshot;
 *   - what a read shows is what the next decision would meet: the key's
 *     state brought to its tier's limits as of now (rl__align), nothing
 *     written;
 *   - a key read back that the API would refuse as an argument (a control
 *     character, not UTF-8: a file written by something else) is refused
 *     with RL_ECORRUPT, never handed to a callback.
 */
#include "handle.h"
#include "lease.h"
#include "parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A key read back from the store that the API would refuse as an argument
 * (a control character, not UTF-8): the file or server was written by
 * something else. Refused rather than handed on, so that it cannot forge
 * lines or send escape sequences wherever the caller prints keys. */
static int stored_key_invalid(char *err, const char *key)
{
    char shown[64];
    rl_parse_quote(shown, sizeof shown, key, strlen(key));
    return rl_seterr(err, RL_ECORRUPT, "stored key '%s' is not a valid key (tampered?)", shown);
}

/* ---- one key ------------------------------------------------------------- */

/* What a decision on key would meet now: its row, brought to its tier. */
static void stats_of(rl *r, const char *key, const rl_row *row, int64_t now, rl_key_stats *st)
{
    const rl_tier *t;
    rl_state old, cur;
    size_t i;
    int source;

    memset(st, 0, sizeof *st);
    snprintf(st->key, sizeof st->key, "%s", key);
    st->exists = row->exists;
    st->allowed = row->allowed;
    st->refused = row->refused;
    st->units = row->units;
    st->first_seen_ns = row->first_seen;
    st->last_seen_ns = row->last_seen;
    t = rl__key_tier(r, key, row, &source);
    st->tier_source = t ? source : RL_TIER_NONE;
    if (!t)
        return;
    snprintf(st->tier, sizeof st->tier, "%s", t->name);
    if (rl_state_decode(&old, row->state, row->state_len) != RL_OK)
        old.n = 0; /* shown as full; the next decision reports the damage */
    rl__align(r, t, &old, &cur, now);
    st->n_limits = t->n;
    for (i = 0; i < t->n; i++) {
        const rl_ldef *d = &t->limits[i];
        rl_limit_stats *ls = &st->limits[i];
        snprintf(ls->name, sizeof ls->name, "%s", d->name);
        snprintf(ls->resource, sizeof ls->resource, "%s", d->resource);
        ls->count = d->count;
        ls->period_ns = d->period_ns;
        ls->burst = d->burst;
        ls->algorithm = rl__algorithm_of(d);
        rl__limit_stats(d, &cur.slot[i], now, ls);
        ls->cooldown_ns = rl__cooldown_left(&cur, rl_cooldown_id(d->resource), now);
    }
    st->cooldown_ns = rl__cooldown_left(&cur, rl_cooldown_id(NULL), now);
}

int rl_stats(rl *r, const char *key, rl_key_stats *st)
{
    rl_row row;
    int64_t version;
    int rc, began = 0;
    if (!r)
        return RL_EINVAL;
    if (!st)
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "stats is NULL");
    if ((rc = rl__check_key(r, key)) != RL_OK)
        return rc;
    rl__lock(r);
    if ((rc = r->store->ops->begin(r->store, 0)) != RL_OK)
        goto out;
    began = 1;
    if ((rc = r->store->ops->row_get(r->store, key, &row, &version)) != RL_OK)
        goto out;
    if ((rc = rl__refresh_policy(r, version)) != RL_OK)
        goto out;
    stats_of(r, key, &row, rl__now(r), st);
out:
    if (began)
        r->store->ops->rollback(r->store);
    rl__unlock(r);
    return rc;
}

/* ---- the whole store ----------------------------------------------------- */

int rl_totals_get(rl *r, rl_totals *t)
{
    int rc;
    if (!r)
        return RL_EINVAL;
    if (!t)
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "totals is NULL");
    rl__lock(r);
    rc = r->store->ops->totals(r->store, t);
    rl__unlock(r);
    return rc;
}

/* ---- listings ------------------------------------------------------------ */

typedef struct list_ctx {
    rl *r;
    int64_t now;
    int (*fn)(void *ctx, const rl_key_stats *st);
    void *ctx;
    rl_key_stats st;
} list_ctx;

static int list_row(void *ctx, const char *key, const rl_row *row)
{
    list_ctx *lc = ctx;
    if (!rl_key_valid(key))
        return stored_key_invalid(lc->r->err, key);
    stats_of(lc->r, key, row, lc->now, &lc->st);
    return lc->fn(lc->ctx, &lc->st);
}

int rl_keys_list(rl *r, const char *match, int sort, size_t limit,
                 int (*fn)(void *ctx, const rl_key_stats *st), void *ctx)
{
    list_ctx *lc;
    int64_t version;
    int rc, began = 0;
    if (!r)
        return RL_EINVAL;
    if (!fn || sort < RL_SORT_KEY || sort > RL_SORT_LAST_SEEN)
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "invalid callback or sort order");
    if (!(lc = malloc(sizeof *lc)))
        return rl_seterr(rl__errbuf(r), RL_ENOMEM, "out of memory");
    rl__lock(r);
    if ((rc = r->store->ops->begin(r->store, 0)) != RL_OK)
        goto out;
    began = 1;
    if ((rc = r->store->ops->policy_version(r->store, &version)) != RL_OK)
        goto out;
    if ((rc = rl__refresh_policy(r, version)) != RL_OK)
        goto out;
    lc->r = r;
    lc->now = rl__now(r);
    lc->fn = fn;
    lc->ctx = ctx;
    rc = r->store->ops->keys_list(r->store, match, sort, limit, list_row, lc);
out:
    if (began)
        r->store->ops->rollback(r->store);
    rl__unlock(r);
    free(lc);
    return rc;
}

typedef struct leases_ctx {
    int (*fn)(void *ctx, const rl_lease_info *l);
    void *ctx;
    char *err;
    rl_lease_info info;
} leases_ctx;

static int lease_info(void *ctx, const rl_lease_rec *rec)
{
    leases_ctx *lc = ctx;
    rl_lease_info *li = &lc->info;
    size_t i;
    if (!rl_key_valid(rec->key))
        return stored_key_invalid(lc->err, rec->key);
    memset(li, 0, sizeof *li);
    li->id = rec->id;
    snprintf(li->key, sizeof li->key, "%s", rec->key);
    li->created_ns = rec->created;
    li->expires_ns = rec->expires;
    li->pid = rec->pid;
    li->owner_alive = rl_owner_alive(rec->pid, rec->pstart);
    li->n_costs = rec->n_est;
    for (i = 0; i < rec->n_est; i++) {
        snprintf(li->costs[i].resource, RL_NAME_MAX, "%s", rec->est_resource[i]);
        li->costs[i].amount = rec->est_amount[i];
    }
    return lc->fn(lc->ctx, li);
}

int rl_leases_list(rl *r, const char *key, int (*fn)(void *ctx, const rl_lease_info *l), void *ctx)
{
    leases_ctx *lc;
    int rc, began = 0;
    if (!r)
        return RL_EINVAL;
    if (!fn)
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "callback is NULL");
    if (key && (rc = rl__check_key(r, key)) != RL_OK)
        return rc;
    if (!(lc = malloc(sizeof *lc)))
        return rl_seterr(rl__errbuf(r), RL_ENOMEM, "out of memory");
    lc->fn = fn;
    lc->ctx = ctx;
    lc->err = r->err;
    rl__lock(r);
    if ((rc = r->store->ops->begin(r->store, 0)) != RL_OK)
        goto out;
    began = 1;
    rc = r->store->ops->leases_each(r->store, key, lease_info, lc);
out:
    if (began)
        r->store->ops->rollback(r->store);
    rl__unlock(r);
    free(lc);
    return rc;
}
