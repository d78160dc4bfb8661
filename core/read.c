/*
 * read.c - reading through the handle: one key's state (rl_stats), the
 * store's totals (rl_totals_get), and listings of keys (rl_keys_list, and
 * a page at a time rl_keys_page) and leases (rl_leases_list, each with
 * whether it is live).
 *
 * Guarantees:
 *   - a read takes a read transaction, never the write lock: in WAL mode it
 *     blocks no decider, and it sees one consistent snapshot;
 *   - rl_keys_page holds its read transaction (and the handle's mutex) only
 *     while it reads one page, never while its callback runs, so a listing
 *     that a slow reader consumes holds up no WAL checkpoint;
 *   - what a read shows is what the next decision would meet: the key's
 *     state brought to its tier's limits as of now (rl__align), without
 *     what leases that expired or whose owner died still hold (a lease
 *     decision reclaims them first: rl__lease_live), nothing written;
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

/* ---- leases that hold nothing any more ------------------------------------ */

/* What one lease that is no longer live holds in its key's concurrency
 * limits. */
typedef struct unheld {
    char key[RL_KEY_MAX + 1];
    size_t n;
    uint64_t id[RL_MAX_LIMITS];
    int64_t amount[RL_MAX_LIMITS];
} unheld;

/* The holdings of the leases that rl__lease_live says are over at `now`,
 * sorted by key once collected. A read frees them in its copy of a key's
 * state, as the next lease decision would before counting, and writes
 * nothing: the lease stays until a decision or rl_prune reclaims it. */
typedef struct unheld_set {
    int64_t now;
    size_t n, cap;
    unheld *v;
    char *err;
} unheld_set;

static int collect_unheld(void *ctx, const rl_lease_rec *rec)
{
    unheld_set *u = ctx;
    unheld *e;
    if (rec->n_held == 0 || rl__lease_live(rec, u->now))
        return 0;
    if (u->n == u->cap) {
        size_t cap = u->cap ? 2 * u->cap : 8;
        unheld *nv = realloc(u->v, cap * sizeof *nv);
        if (!nv)
            return rl_seterr(u->err, RL_ENOMEM, "out of memory");
        u->v = nv;
        u->cap = cap;
    }
    e = &u->v[u->n++];
    snprintf(e->key, sizeof e->key, "%s", rec->key);
    e->n = rec->n_held;
    memcpy(e->id, rec->held_id, sizeof e->id);
    memcpy(e->amount, rec->held_amount, sizeof e->amount);
    return 0;
}

static int unheld_cmp(const void *a, const void *b)
{
    return strcmp(((const unheld *)a)->key, ((const unheld *)b)->key);
}

/* Inside a read transaction: the leases of key (NULL: all) that hold
 * nothing any more. */
static int unheld_collect(rl *r, const char *key, int64_t now, unheld_set *u)
{
    int rc;
    u->now = now;
    u->err = r->err;
    rc = r->store->ops->leases_each(r->store, key, collect_unheld, u);
    if (rc == RL_OK && u->n > 1)
        qsort(u->v, u->n, sizeof *u->v, unheld_cmp);
    return rc;
}

/* Frees in st what u's leases of key hold. */
static void unheld_apply(const unheld_set *u, const char *key, rl_state *st)
{
    size_t lo = 0, hi = u ? u->n : 0;
    while (lo < hi) { /* the first entry of key */
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(u->v[mid].key, key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; u && lo < u->n && strcmp(u->v[lo].key, key) == 0; lo++)
        rl__release_held(st, u->v[lo].n, u->v[lo].id, u->v[lo].amount);
}

/* Whether a stored state holds anything in flight: only then can leases
 * of its key hold anything. */
static int holds_in_flight(const rl_row *row)
{
    rl_state st;
    size_t i;
    if (rl_state_decode(&st, row->state, row->state_len) != RL_OK)
        return 0;
    for (i = 0; i < st.n; i++)
        if (st.slot[i].kind == RL_SLOT_INFLIGHT && st.slot[i].tat != 0)
            return 1;
    return 0;
}

/* ---- one key ------------------------------------------------------------- */

/* What a decision on key would meet now: its row, brought to its tier,
 * without what u says leases that are over hold (u may be NULL). */
static void stats_of(rl *r, const char *key, const rl_row *row, const unheld_set *u, int64_t now,
                     rl_key_stats *st)
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
    unheld_apply(u, key, &cur);
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
    unheld_set u = { 0, 0, 0, NULL, NULL };
    rl_row row;
    int64_t version, now;
    int rc, began = 0;
    if (!r)
        return RL_EINVAL;
    if (!st)
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "stats is NULL");
    if ((rc = rl__check_key(r, key)) != RL_OK)
        return rc;
    rl__lock(r);
    rl__pending_flush(r); /* this handle's refusals count in what it reads */
    if ((rc = r->store->ops->begin(r->store, 0)) != RL_OK)
        goto out;
    began = 1;
    if ((rc = r->store->ops->row_get(r->store, key, &row, &version)) != RL_OK)
        goto out;
    if ((rc = rl__refresh_policy(r, version)) != RL_OK)
        goto out;
    now = rl__now(r);
    if (holds_in_flight(&row) && (rc = unheld_collect(r, key, now, &u)) != RL_OK)
        goto out;
    stats_of(r, key, &row, &u, now, st);
out:
    if (began)
        r->store->ops->rollback(r->store);
    rl__unlock(r);
    free(u.v);
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
    rl__pending_flush(r); /* this handle's refusals count in what it reads */
    rc = r->store->ops->totals(r->store, t);
    rl__unlock(r);
    return rc;
}

/* ---- listings ------------------------------------------------------------ */

typedef struct list_ctx {
    rl *r;
    int64_t now;
    unheld_set u;
    int (*fn)(void *ctx, const rl_key_stats *st);
    void *ctx;
    rl_key_stats st;
} list_ctx;

static int list_row(void *ctx, const char *key, const rl_row *row)
{
    list_ctx *lc = ctx;
    if (!rl_key_valid(key))
        return stored_key_invalid(lc->r->err, key);
    stats_of(lc->r, key, row, &lc->u, lc->now, &lc->st);
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
    if (!(lc = calloc(1, sizeof *lc)))
        return rl_seterr(rl__errbuf(r), RL_ENOMEM, "out of memory");
    rl__lock(r);
    rl__pending_flush(r); /* this handle's refusals count in what it reads */
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
    /* the leases first, in one walk: a store may not walk them while it
     * walks its keys */
    if ((rc = unheld_collect(r, NULL, lc->now, &lc->u)) != RL_OK)
        goto out;
    rc = r->store->ops->keys_list(r->store, match, sort, limit, list_row, lc);
out:
    if (began)
        r->store->ops->rollback(r->store);
    rl__unlock(r);
    free(lc->u.v);
    free(lc);
    return rc;
}

/* One page of rl_keys_page: the rows read, then their stats. */
typedef struct page_ctx {
    size_t n, cap;
    char (*keys)[RL_KEY_MAX + 1];
    rl_row *rows;
    rl_key_stats *st;
} page_ctx;

static int page_row(void *ctx, const char *key, const rl_row *row)
{
    page_ctx *pc = ctx;
    if (pc->n >= pc->cap)
        return 1; /* a store that ignored the limit: said by the caller */
    snprintf(pc->keys[pc->n], RL_KEY_MAX + 1, "%s", key);
    pc->rows[pc->n++] = *row;
    return 0;
}

/* Inside the page's read transaction: the rows of a page, then their
 * stats (a key's leases are walked after the rows, never during: a store
 * may not walk both at once). */
static int page_read(rl *r, const char *match, const char *after, page_ctx *pc)
{
    int64_t version, now;
    size_t i;
    int rc = r->store->ops->policy_version(r->store, &version);
    if (rc == RL_OK)
        rc = rl__refresh_policy(r, version);
    if (rc == RL_OK)
        rc = r->store->ops->keys_page(r->store, after, match, pc->cap, page_row, pc);
    if (rc > 0)
        rc = rl_seterr(r->err, RL_ESTORE, "store returned more keys than asked for");
    now = rl__now(r);
    for (i = 0; rc == RL_OK && i < pc->n; i++) {
        unheld_set u = { 0, 0, 0, NULL, NULL };
        if (!rl_key_valid(pc->keys[i]))
            return stored_key_invalid(r->err, pc->keys[i]);
        if (holds_in_flight(&pc->rows[i]))
            rc = unheld_collect(r, pc->keys[i], now, &u);
        if (rc == RL_OK)
            stats_of(r, pc->keys[i], &pc->rows[i], &u, now, &pc->st[i]);
        free(u.v);
    }
    return rc;
}

int rl_keys_page(rl *r, const char *match, const char *after, size_t limit, rl_key_cb fn, void *ctx,
                 char *next)
{
    page_ctx pc = { 0, 0, NULL, NULL, NULL };
    size_t i;
    int rc;
    if (!r)
        return RL_EINVAL;
    if (next)
        next[0] = 0;
    if (!fn || !next)
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "callback or next is NULL");
    if (limit < 1 || limit > RL_KEYS_PAGE_MAX)
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "page of %zu keys: 1 to %d", limit,
                         RL_KEYS_PAGE_MAX);
    if (after && strlen(after) > RL_KEY_MAX)
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "after: longer than %d bytes", RL_KEY_MAX);
    pc.cap = limit;
    pc.keys = malloc(limit * sizeof *pc.keys);
    pc.rows = malloc(limit * sizeof *pc.rows);
    pc.st = malloc(limit * sizeof *pc.st);
    if (!pc.keys || !pc.rows || !pc.st) {
        rc = rl_seterr(rl__errbuf(r), RL_ENOMEM, "out of memory");
        goto out;
    }
    /* One short read transaction for the page; fn runs after it, without
     * the lock, so a slow consumer holds up no decider and no checkpoint. */
    rl__lock(r);
    rl__pending_flush(r); /* this handle's refusals count in what it reads */
    if ((rc = r->store->ops->begin(r->store, 0)) == RL_OK) {
        rc = page_read(r, match, after ? after : "", &pc);
        r->store->ops->rollback(r->store);
    }
    rl__unlock(r);
    for (i = 0; rc == RL_OK && i < pc.n; i++)
        rc = fn(ctx, &pc.st[i]);
    if (rc == RL_OK && pc.n == limit)
        memcpy(next, pc.keys[pc.n - 1], RL_KEY_MAX + 1);
out:
    free(pc.keys);
    free(pc.rows);
    free(pc.st);
    return rc;
}

typedef struct leases_ctx {
    int (*fn)(void *ctx, const rl_lease_info *l);
    void *ctx;
    char *err;
    int64_t now;
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
    li->waiting = rec->waiting;
    li->priority = rec->priority;
    li->live = rl__lease_live(rec, lc->now);
    /* a live lease's owner was alive a moment ago: ask /proc only for the
     * others, whose owner stays dead once found so */
    li->owner_alive = li->live || rl_owner_alive(rec->pid, rec->pstart);
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
    lc->now = rl__now(r);
    rc = r->store->ops->leases_each(r->store, key, lease_info, lc);
out:
    if (began)
        r->store->ops->rollback(r->store);
    rl__unlock(r);
    free(lc);
    return rc;
}
