/*
 * reserve.c - units taken now and settled or given back later:
 * reservations (rl_reserve, rl_cancel) and leases (rl_lease_begin,
 * rl_lease_settle, rl_lease_cancel), and the reclaiming of leases whose
 * holder died or whose time ran out. (lease.c encodes lease records.)
 *
 * Guarantees:
 *   - a reservation or a lease is decided like rl_acquire, in one write
 *     transaction (rl__decide); a lease is recorded in that transaction
 *     with its estimate, the in-flight units it holds and its owner;
 *   - a reservation gives back at most once: rl_cancel marks it, and gives
 *     nothing once its time to act has come, or once the key's state was
 *     reset or re-tiered since (another generation or tier fingerprint);
 *   - settling charges or refunds the difference from the estimate on each
 *     rate limit and frees what the lease held in concurrency limits, in
 *     one transaction; an expired lease was settled at its estimate
 *     (RL_ETIMEOUT);
 *   - a store that can (Redis: decide_fast) begins a lease on a key that
 *     holds no lease or waiter in one round trip (core/fast.c plans it):
 *     core replays the decision, puts the lease under the store's id and
 *     the store checks row and lease byte for byte;
 *   - a store that can (Redis: lease_end_fast) settles or cancels a lease
 *     this handle began in one round trip (fast_lease.c plans it); core
 *     replays lease_end_tx on what the store found and the store checks
 *     that the outcome is byte for byte what it wrote;
 *   - a lease whose owner died (pid and start time, lease.c) or that
 *     expired is reclaimed by the next decision on its key that is a lease
 *     or names a concurrency limit (or rl_prune); rl__lease_live is the
 *     one test of it, which readers apply too, so that what they show held
 *     is what a decision meets.
 */
#include "handle.h"
#include "lease.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rl__lease_fill(rl_lease_rec *rec, const char *key, int64_t now, int64_t expires,
                    const rl_cost *costs, size_t n)
{
    size_t i;
    snprintf(rec->key, sizeof rec->key, "%s", key);
    rec->created = now;
    rec->expires = expires;
    rl_owner_self(&rec->pid, &rec->pstart);
    rec->n_est = n;
    for (i = 0; i < n; i++) {
        snprintf(rec->est_resource[i], RL_NAME_MAX, "%s", rl__resource_of(&costs[i]));
        rec->est_amount[i] = costs[i].amount;
    }
}

/* ---- reclaiming ---------------------------------------------------------- */

/* Leases of one key that are expired or whose owner died, found while
 * walking the key's leases (collected first: the walk must not delete). */
typedef struct reclaim_ctx {
    int64_t now;
    rl__ahead *ahead; /* NULL: not asked */
    int64_t soonest;  /* earliest expiry of a lease that stays and holds units in
                      * flight (a slot is free by then); INT64_MIN: none */
    size_t n;
    int64_t id[64];
    size_t n_held[64];
    uint64_t held_id[64][RL_MAX_LIMITS];
    int64_t held_amount[64][RL_MAX_LIMITS];
} reclaim_ctx;

int rl__lease_live(const rl_lease_rec *rec, int64_t now)
{
    return rec->expires > now && rl_owner_alive(rec->pid, rec->pstart);
}

/* A live waiter queued before the caller (by place, then by row id, which
 * only grows): what it wants counts as taken for the caller. */
static void count_ahead(rl__ahead *a, const rl_lease_rec *rec)
{
    int64_t rank = rl__rank_of(rec->created, rec->priority);
    size_t i, j;
    if (rec->id == a->self || rank > a->rank ||
        (rank == a->rank && a->self > 0 && rec->id > a->self))
        return;
    for (i = 0; i < rec->n_est; i++) {
        for (j = 0; j < a->n; j++)
            if (strcmp(a->resource[j], rec->est_resource[i]) == 0)
                break;
        if (j == a->n) {
            if (a->n == RL_MAX_LIMITS)
                continue; /* a resource the key cannot limit anyway */
            snprintf(a->resource[a->n], RL_NAME_MAX, "%s", rec->est_resource[i]);
            a->amount[a->n++] = 0;
        }
        a->amount[j] = rl__sat_add(a->amount[j], rec->est_amount[i]);
    }
}

static int reclaim_one(void *ctx, const rl_lease_rec *rec)
{
    reclaim_ctx *rc = ctx;
    /* once per lease: another process's costs a kill(0) and a /proc read */
    int live = rl__lease_live(rec, rc->now);
    if (live && rec->waiting) {
        if (rc->ahead)
            count_ahead(rc->ahead, rec);
        return 0;
    }
    if (live) {
        if (rec->n_held > 0 && (rc->soonest == INT64_MIN || rec->expires < rc->soonest))
            rc->soonest = rec->expires;
        return 0;
    }
    if (rc->n < 64) {
        rc->id[rc->n] = rec->id;
        rc->n_held[rc->n] = rec->n_held;
        memcpy(rc->held_id[rc->n], rec->held_id, sizeof rec->held_id);
        memcpy(rc->held_amount[rc->n], rec->held_amount, sizeof rec->held_amount);
        rc->n++;
    }
    return 0;
}

/* Ends the key's expired leases (settled at their estimate, which they
 * already charged) and those of dead owners, freeing their slots; dry:
 * frees them in st only, deleting nothing (a read snapshot). */
int rl__reclaim(rl *r, const char *key, rl_state *st, int64_t now, int64_t *soonest,
                rl__ahead *ahead, int dry)
{
    reclaim_ctx *c = malloc(sizeof *c);
    size_t i;
    int rc;
    if (!c)
        return rl_seterr(r->err, RL_ENOMEM, "out of memory");
    c->now = now;
    c->ahead = ahead;
    c->soonest = INT64_MIN;
    c->n = 0;
    rc = r->store->ops->leases_each(r->store, key, reclaim_one, c);
    for (i = 0; i < c->n && rc == RL_OK; i++) {
        rl__release_held(st, c->n_held[i], c->held_id[i], c->held_amount[i]);
        if (dry)
            continue;
        rc = r->store->ops->lease_delete(r->store, key, c->id[i]);
        r->slot_freed = 1; /* a slot, or a waiter's place ahead of others */
    }
    *soonest = c->soonest;
    free(c);
    return rc;
}

/* ---- reservations and leases ---------------------------------------------- */

int rl_reserve(rl *r, const char *key, int64_t cost, int64_t max_delay_ns, rl_reservation *rv)
{
    rl_result res;
    rl_cost c;
    if (!r)
        return RL_EINVAL;
    if (!rv)
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "reservation is NULL");
    memset(rv, 0, sizeof *rv);
    c.resource = "requests";
    c.amount = cost;
    return rl__decide(r, &key, 1, &c, 1, max_delay_ns, &res, rv, NULL);
}

int rl_lease_begin(rl *r, const char *key, const rl_cost *estimate, size_t n, int64_t ttl_ns,
                   rl_lease *lease, rl_result *res)
{
    rl_lease_rec *rec;
    int rc;
    if (!r)
        return RL_EINVAL;
    if (!lease)
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "lease is NULL");
    memset(lease, 0, sizeof *lease);
    if (ttl_ns <= 0 || ttl_ns > RL_FILL_MAX)
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "lease TTL must be positive (at most 50 years)");
    if (!(rec = calloc(1, sizeof *rec)))
        return rl_seterr(rl__errbuf(r), RL_ENOMEM, "out of memory");
    rc = rl__decide(r, &key, 1, estimate, n, ttl_ns, res, NULL, rec);
    if (rc == RL_OK && res->allowed) {
        lease->id = rec->id;
        lease->expires_at = rec->expires;
        /* its settle may then take one round trip (fast_lease.c); a lease
         * begun through group commit is known by its id alone */
        if (rec->key[0]) {
            rl__lock(r);
            rl__lease_note(r, rec);
            rl__unlock(r);
        }
    }
    free(rec);
    return rc;
}

int rl__lease_end_in(rl *r, rl__end *e)
{
    rl_lease_rec *rec = &e->rec;
    rl_row row;
    rl_state old, st;
    const rl_tier *t;
    int64_t now = rl__now(r), version, est, act;
    size_t i, j;
    int rc, source;
    e->expired = 0;
    if ((rc = r->store->ops->lease_get(r->store, e->id, rec)) != RL_OK)
        return rc;
    if (rec->waiting) /* a queued waiter's row, which no caller is given */
        return rl_seterr(r->err, RL_ENOTFOUND, "no lease %lld", (long long)e->id);
    if ((rc = r->store->ops->row_get(r->store, rec->key, &row, &version)) != RL_OK)
        return rc;
    if ((rc = rl__refresh_policy(r, version)) != RL_OK)
        return rc;
    if (rl_state_decode(&old, row.state, row.state_len) != RL_OK)
        return rl_seterr(r->err, RL_ECORRUPT, "key '%.64s': damaged bucket state", rec->key);
    e->expired = now >= rec->expires;
    if ((t = rl__key_tier(r, rec->key, &row, &source)))
        rl__align(r, t, &old, &st, now);
    else
        st = old; /* no limits apply any more: only the slots to free */
    for (i = 0; t && !e->expired && i < t->n; i++) {
        const rl_ldef *d = &t->limits[i];
        if (d->kind == RL_KIND_CONCURRENT)
            continue;
        for (est = 0, j = 0; j < rec->n_est; j++)
            if (strcmp(rec->est_resource[j], d->resource) == 0)
                est = rec->est_amount[j];
        act = e->actual ? rl__amount_of(e->actual, e->n, d->resource) : 0;
        if (act < 0)
            act = est; /* not named: settled at its estimate */
        if (act != est) {
            rl__limit_settle(d, &st.slot[i], now, act - est, rec->created);
            if (strcmp(d->resource, "requests") == 0)
                row.units = rl__sat_add(row.units, act - est);
        }
    }
    rl__release_held(&st, rec->n_held, rec->held_id, rec->held_amount);
    if (rec->n_held > 0)
        r->slot_freed = 1;
    row.state_len = rl_state_encode(&st, row.state);
    if ((rc = r->store->ops->lease_delete(r->store, rec->key, rec->id)) != RL_OK)
        return rc;
    return r->store->ops->row_put(r->store, rec->key, &row);
}

int rl__lease_expired(rl *r, int64_t id)
{
    return rl_seterr(r->err, RL_ETIMEOUT, "lease %lld had expired: it was settled at its estimate",
                     (long long)id);
}

typedef struct lease_arg {
    rl__end e;
    rl_fast_lease fast; /* the store's one round trip, if planned */
} lease_arg;

static int lease_end_tx(rl *r, void *ctx)
{
    return rl__lease_end_in(r, &((lease_arg *)ctx)->e);
}

static int lease_end_done(rl *r, void *ctx, int rc)
{
    const lease_arg *a = ctx;
    if (rc == RL_OK && a->e.expired)
        return rl__lease_expired(r, a->e.id);
    return rc;
}

/* Settles (actual != NULL) or cancels (actual == NULL: everything back) a
 * lease, and frees the slots it held, in one write transaction: through
 * group commit where the store offers it. */
static int lease_end(rl *r, const rl_lease *lease, const rl_cost *actual, size_t n)
{
    lease_arg *a;
    int rc;
    if (!lease || lease->id <= 0)
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "not a granted lease");
    if (actual && n > 0) { /* n 0: every resource settles at its estimate */
        const char *key = "k";
        if ((rc = rl__check_request(r, &key, 1, actual, n)) != RL_OK)
            return rc;
    }
    if ((rc = rl__end_grouped(r, lease->id, actual, n)) != RL_GROUP_NONE)
        return rc;
    if (!(a = calloc(1, sizeof *a)))
        return rl_seterr(rl__errbuf(r), RL_ENOMEM, "out of memory");
    a->e.id = lease->id;
    a->e.actual = actual;
    a->e.n = n;
    /* rl__write_tx's steps, with the plan made under the mutex */
    rl__lock(r);
    if (rl__fast_lease_plan(r, lease, actual, n, &a->fast))
        r->fast_lease = &a->fast;
    rc = lease_end_done(r, a, rl__tx(r, lease_end_tx, a));
    if (rc == RL_OK)
        r->err[0] = 0;
    rl__unlock(r);
    free(a);
    return rc;
}

int rl_lease_settle(rl *r, const rl_lease *lease, const rl_cost *actual, size_t n)
{
    if (!r)
        return RL_EINVAL;
    if (!actual)
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "actual costs are NULL");
    return lease_end(r, lease, actual, n);
}

int rl_lease_cancel(rl *r, const rl_lease *lease)
{
    if (!r)
        return RL_EINVAL;
    return lease_end(r, lease, NULL, 0);
}

/* ---- cancelling a reservation -------------------------------------------- */

static int cancel_tx(rl *r, void *ctx)
{
    const rl_reservation *rv = ctx;
    const rl_tier *t;
    rl_row row;
    rl_state st;
    int64_t version, now;
    size_t i, j;
    int rc, source;
    /* Once its time has come the caller may have acted: nothing to return. */
    if ((now = rl__now(r)) >= rv->time_to_act)
        return RL_OK;
    if ((rc = r->store->ops->row_get(r->store, rv->key_, &row, &version)) != RL_OK)
        return rc;
    if (!row.exists)
        return RL_OK; /* reset (or pruned) since: nothing of it is left */
    if ((rc = rl__refresh_policy(r, version)) != RL_OK)
        return rc;
    if (rl_state_decode(&st, row.state, row.state_len) != RL_OK)
        return rl_seterr(r->err, RL_ECORRUPT, "damaged bucket state");
    /* Another generation of the key's state (reset and decided again,
     * re-tiered by a decision since), or a tier other than the one the
     * state was written for (re-tiered, not decided yet): what the
     * reservation took is not in these buckets, nothing is given back. */
    if (!(t = rl__key_tier(r, rv->key_, &row, &source)) || st.gen != rv->generation_ ||
        st.fp != rl__tier_fp(r, t))
        return RL_OK;
    for (i = 0; i < rv->n_; i++) {
        for (j = 0; j < st.n; j++) {
            rl_slot *s = &st.slot[j];
            if (s->id != rv->id_[i])
                continue;
            rl__slot_cancel(s, rv->tat_[i], rv->rem_[i], rv->amount_[i], now);
            break;
        }
    }
    row.state_len = rl_state_encode(&st, row.state);
    return r->store->ops->row_put(r->store, rv->key_, &row);
}

int rl_cancel(rl *r, rl_reservation *rv)
{
    rl_fast_req *f;
    int rc;
    if (!r)
        return RL_EINVAL;
    if (!rv)
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "reservation is NULL");
    if (!rv->ok || rv->n_ == 0 || rv->n_ > RL_MAX_LIMITS) {
        rl__errbuf(r)[0] = 0;
        return RL_OK;
    }
    if ((rc = rl__check_key(r, rv->key_)) != RL_OK)
        return rc;
    if (!(f = malloc(sizeof *f)))
        return rl_seterr(rl__errbuf(r), RL_ENOMEM, "out of memory");
    /* rl__write_tx, with the plan of a cancel the store makes in one round
     * trip (core/fast.c), made under the mutex where the policy cache may
     * be read; cancel_tx replays it and the store checks the bytes */
    rl__lock(r);
    if (rl__fast_cancel_plan(r, rv, f))
        r->fast = f;
    rc = rl__tx(r, cancel_tx, rv);
    if (rc == RL_OK)
        r->err[0] = 0;
    rl__unlock(r);
    free(f);
    /* Once given back, the units must not come back twice: the state cannot
     * tell a second cancel from a refund, so the reservation is marked. */
    if (rc == RL_OK)
        rv->n_ = 0;
    return rc;
}
