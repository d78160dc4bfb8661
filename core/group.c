/*
 * group.c - group commit, as the handle takes part in it: a process whose
 * rl_allow, rl_acquire, rl_acquire_keys, reservation (rl_reserve, and so
 * rl_wait's decisions), lease begin, settle or cancel finds the store's
 * write lock taken posts the request and sleeps; whoever holds the lock decides every posted request
 * of the same signature in its own transaction, so one commit answers
 * several processes. The store does the posting, the queue and the waking
 * (store/lock.c, store/sqlite_tx.c), and records in the rows it writes
 * whether a leader that died had committed its batch; this file only
 * decides, through the same runner and loop as every call (decide.c).
 *
 * Guarantees:
 *   - a request decided by a leader gets exactly the answer (rc, result,
 *     message, and a reservation's rl_reservation) its call would have
 *     given it alone, in the order the requests were queued; a posted
 *     request (its keys, costs and kind) is bounded and checked as the
 *     caller's own arguments would be before anything is decided from it
 *     (the lock file may be damaged): a damaged one is answered
 *     RL_ECORRUPT alone;
 *   - a store failure on one request's key (a damaged row, say) answers
 *     that request alone, and the others are decided again without it;
 *     one of the transaction itself (begin, commit) answers them all;
 *   - the leader's own answer is its own: its message is never another
 *     process's;
 *   - a lease begun by a leader is its poster's: it carries the poster's
 *     pid and start time, so it is reclaimed when the poster dies, not
 *     when the leader does.
 */
#include "handle.h"
#include "lease.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Copies a string known to fit, or cuts it; snprintf costs more on the
 * path every decision takes. */
static void copy_str(char *dst, const char *src, size_t cap)
{
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

static int damaged(rl *r)
{
    return rl_seterr(r->err, RL_ECORRUPT, "a queued request in the lock file is damaged");
}

/* An end's costs are checked as lease_end checks the caller's: against
 * any key, since they name resources only. */
static int check_end(rl *r, const rl_cost *c, size_t n)
{
    const char *key = "k";
    return n > 0 ? rl__check_request(r, &key, 1, c, n) : RL_OK;
}

/* What request g asks, into q: its keys (kept in keys[RL_MAX_KEYS]), its
 * costs (in c), for a reservation its horizon and g's room for the answer,
 * for a lease its TTL and owner (its record in lease), for an end the
 * lease (in end); each word read once. One read from the lock file
 * (posted), which any process of the group or a damaged file may have
 * written, is bounded and checked as the caller's own arguments would be
 * before anything is decided from it; the leader's own was checked when
 * it was made. */
static int group_req_read(rl *r, rl_group_req *g, const char **keys, rl_cost *c, rl__req *q,
                          rl_lease_rec *lease, rl__end *end, int posted)
{
    size_t j, at = 0, nkeys = g->nkeys, len = g->keys_len, ncosts = g->ncosts;
    int kind = g->kind, is_end = kind == RL_GROUP_END;
    if (nkeys > RL_MAX_KEYS || (nkeys < 1 && !is_end) || len > sizeof g->keys ||
        ncosts > RL_MAX_LIMITS || (ncosts < 1 && !is_end) ||
        (kind != RL_GROUP_DECIDE && kind != RL_GROUP_RESERVE && kind != RL_GROUP_LEASE && !is_end))
        return damaged(r);
    for (j = 0; j < ncosts; j++) {
        if (posted && !memchr(g->resource[j], 0, RL_NAME_MAX))
            return damaged(r);
        c[j].resource = g->resource[j];
        c[j].amount = g->amount[j];
    }
    if (is_end) { /* its keys, if any, are what a leader wrote: unused */
        int64_t id = g->end_id;
        int cancel = g->end_cancel;
        if (id <= 0 || (cancel != 0 && cancel != 1))
            return damaged(r);
        memset(end, 0, sizeof *end);
        end->id = id;
        end->actual = cancel ? NULL : c;
        end->n = cancel ? 0 : ncosts;
        q->end = end;
        return posted ? check_end(r, c, end->n) : RL_OK;
    }
    for (j = 0; j < nkeys; j++) { /* each key a string inside keys_len */
        const char *e = at < len ? memchr(g->keys + at, 0, len - at) : NULL;
        if (!e)
            return damaged(r);
        keys[j] = g->keys + at;
        at = (size_t)(e - g->keys) + 1;
    }
    q->keys = keys;
    q->nkeys = nkeys;
    q->costs = c;
    q->ncosts = ncosts;
    if (kind == RL_GROUP_RESERVE) { /* as rl__decide_req takes it */
        int64_t d = g->max_delay_ns;
        q->max_delay_ns = d < 0 ? 0 : d;
        q->rv = &g->rv;
        memset(q->rv, 0, sizeof *q->rv);
    } else if (kind == RL_GROUP_LEASE) { /* as rl_lease_begin and rl__decide take it */
        int64_t ttl = g->ttl_ns, pid = g->owner_pid;
        if (nkeys != 1 || ttl <= 0 || ttl > RL_FILL_MAX || pid <= 0)
            return damaged(r);
        memset(lease, 0, sizeof *lease);
        q->lease = lease;
        q->ttl = ttl;
        q->owner_pid = pid;
        q->owner_pstart = g->owner_pstart;
    }
    return posted ? rl__check_request(r, keys, nkeys, c, ncosts) : RL_OK;
}

/* A leader's batch: its own request first, then those it takes. */
typedef struct group_arg {
    rl_group_req *batch[RL_GROUP_MAX];
    unsigned char alone[RL_GROUP_MAX]; /* answered alone: a store failure */
    const char *req_keys[RL_GROUP_MAX][RL_MAX_KEYS];
    const char *keys[RL_GROUP_MAX * RL_MAX_KEYS]; /* for prefetch */
    int first;                                    /* the first attempt, which takes requests in */
    int kind;           /* the request being decided's, as read and checked (RL_GROUP_*) */
    rl_lease_rec lease; /* a begin's lease */
    rl__end end;        /* or an end's */
    rl__batch b;
    decision x;
} group_arg;

static int group_get(rl *r, rl__batch *b, size_t i, rl__req *q, rl_cost *cost)
{
    group_arg *g = b->ctx;
    rl_group_req *req = g->batch[i];
    memset(q, 0, sizeof *q);
    int rc;
    q->res = &req->res;
    memset(q->res, 0, sizeof *q->res);
    rc = group_req_read(r, req, g->req_keys[i], cost, q, &g->lease, &g->end, i > 0);
    /* what group_put answers by: never the slot's word again, which a
     * damaged file may change after it was checked */
    g->kind = q->end ? RL_GROUP_END : q->lease ? RL_GROUP_LEASE : RL_GROUP_DECIDE;
    return rc;
}

/* What a leader answers besides rc and res: nothing of a request that
 * failed. */
static void group_clear(rl_group_req *req)
{
    memset(&req->rv, 0, sizeof req->rv); /* nothing was reserved */
    req->lease_id = req->lease_expires = 0;
    req->expired = 0;
}

/* An answer carries its own message: none when it is RL_OK. */
static void group_put(rl *r, rl__batch *b, size_t i, int rc)
{
    group_arg *g = b->ctx;
    rl_group_req *req = g->batch[i];
    req->rc = rc;
    if (rc != RL_OK) {
        copy_str(req->err, r->err, sizeof req->err);
        group_clear(req);
        return;
    }
    req->err[0] = 0;
    if (g->kind == RL_GROUP_LEASE) {
        req->lease_id = g->x.allowed ? g->lease.id : 0;
        req->lease_expires = g->x.allowed ? g->lease.expires : 0;
    } else if (g->kind == RL_GROUP_END) {
        /* the lease's key, whose row this transaction wrote: by its mark
         * a dead leader's batch is settled (rl_lock_recover) */
        size_t len = strlen(g->end.rec.key) + 1;
        req->expired = g->end.expired;
        memcpy(req->keys, g->end.rec.key, len);
        req->keys_len = len;
        req->nkeys = 1;
    }
}

/* Requests posted meanwhile, until none is left, so that a process that
 * was answered a moment ago and asks again makes this commit too. */
static size_t group_more(rl *r, rl__batch *b)
{
    group_arg *g = b->ctx;
    if (!g->first)
        return 0;
    return r->store->ops->group_take(r->store, r->sig, g->batch + b->n, RL_GROUP_MAX - b->n);
}

static int group_body(rl *r, void *ctx)
{
    group_arg *g = ctx;
    int rc = rl__decide_each(r, &g->b);
    g->first = 0;
    return rc;
}

/* As a group-commit leader, holding the write lock: decides the batch in
 * one transaction, each request as rl_allow would alone, in order. */
static void group_lead(rl *r, group_arg *g)
{
    size_t i;
    int rc;
    memset(g->alone, 0, sizeof g->alone);
    g->first = 1;
    g->b.n = 1;
    g->b.ctx = g;
    g->b.get = group_get;
    g->b.put = group_put;
    g->b.more = group_more;
    g->b.skip = g->alone;
    g->b.prefetch_min = 0;
    g->b.keys = g->keys;
    g->b.x = &g->x;
    for (;;) {
        g->b.failed = SIZE_MAX;
        rc = rl__tx(r, group_body, g);
        if (rc == RL_OK || g->b.failed >= g->b.n)
            break;
        g->alone[g->b.failed] = 1; /* its answer stands; the others again */
    }
    for (i = 0; rc != RL_OK && i < g->b.n; i++) /* nothing of the batch was written */
        if (!g->alone[i]) {
            g->batch[i]->rc = rc;
            memset(&g->batch[i]->res, 0, sizeof g->batch[i]->res);
            group_clear(g->batch[i]);
            copy_str(g->batch[i]->err, r->err, sizeof g->batch[i]->err);
        }
    r->store->ops->group_end(r->store);
}

/* The request and, should it lead, a batch: too big for the stack. */
typedef struct group_call {
    rl_group_req me;
    group_arg g;
} group_call;

/* Whether the handle can take part: the store offers group commit, the
 * handle reads the shared clock, and it admits only the resources its
 * limits name (see rl__decide). */
static int group_usable(const rl *r)
{
    return r->store_clock && r->store->ops->group_join && !(r->o.flags & RL_OPEN_ANY_RESOURCE);
}

/* A request made under the mutex, all of what is copied into a file other
 * processes map zeroed first (no stray bytes of this process's memory):
 * NULL when out of memory. */
static group_call *group_new(rl *r, int kind, const rl_cost *costs, size_t n)
{
    group_call *a = malloc(sizeof *a);
    size_t i;
    if (!a) {
        rl_seterr(r->err, RL_ENOMEM, "out of memory");
        return NULL;
    }
    memset(&a->me, 0, offsetof(rl_group_req, keys));
    a->me.kind = kind;
    a->me.sig = r->sig;
    a->me.ncosts = n;
    for (i = 0; i < n; i++) {
        copy_str(a->me.resource[i], rl__resource_of(&costs[i]), RL_NAME_MAX);
        a->me.amount[i] = costs[i].amount;
    }
    return a;
}

/* Posts a->me, or leads a batch with it: its answer's rc then, with
 * its message in r->err. */
static int group_run(rl *r, group_call *a)
{
    int rc = r->store->ops->group_join(r->store, &a->me);
    if (rc == RL_GROUP_LEAD) {
        a->g.batch[0] = &a->me;
        group_lead(r, &a->g);
        rc = RL_OK;
    }
    if (rc == RL_OK && (rc = a->me.rc) != RL_OK)
        copy_str(r->err, a->me.err, sizeof r->err);
    return rc;
}

int rl__decide_grouped(rl *r, const char *const *keys, size_t nkeys, const rl_cost *costs, size_t n,
                       int64_t max_delay_ns, rl_result *res, rl_reservation *rv,
                       rl_lease_rec *lease)
{
    group_call *a;
    size_t i, at, len;
    int rc;
    if (!group_usable(r))
        return RL_GROUP_NONE;
    if (!res)
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "result is NULL");
    memset(res, 0, sizeof *res);
    if (rv)
        memset(rv, 0, sizeof *rv);
    rl__lock(r);
    if ((rc = rl__check_request(r, keys, nkeys, costs, n)) != RL_OK)
        goto out;
    if (!(a = group_new(r,
                        rv      ? RL_GROUP_RESERVE
                        : lease ? RL_GROUP_LEASE
                                : RL_GROUP_DECIDE,
                        costs, n))) {
        rc = RL_ENOMEM;
        goto out;
    }
    for (i = 0, at = 0; i < nkeys; i++) { /* checked: each fits RL_KEY_MAX */
        len = strlen(keys[i]) + 1;
        memcpy(a->me.keys + at, keys[i], len);
        at += len;
    }
    a->me.nkeys = nkeys;
    a->me.keys_len = at;
    if (rv)
        a->me.max_delay_ns = max_delay_ns < 0 ? 0 : max_delay_ns; /* INT64_MAX: no limit */
    if (lease) {
        a->me.ttl_ns = max_delay_ns;
        rl_owner_self(&a->me.owner_pid, &a->me.owner_pstart);
    }
    rc = group_run(r, a);
    if (rc == RL_OK) {
        *res = a->me.res;
        if (rv)
            *rv = a->me.rv;
        if (lease) {
            lease->id = a->me.lease_id;
            lease->expires = a->me.lease_expires;
        }
        if (!rv && !lease)
            rl__pending_note(r, keys, nkeys, res);
    }
    if (rc != RL_OK) { /* as a call decided alone answers a failure */
        if (rv)
            memset(rv, 0, sizeof *rv);
        if (rl__store_failure(rc))
            rl__failed_result(r, res);
        else
            memset(res, 0, sizeof *res);
    }
    /* a leader's buffer holds what the last request of its batch said,
     * maybe another process's error: its own answer is what counts */
    if (rc == RL_OK)
        r->err[0] = 0;
    free(a);
out:
    rl__unlock(r);
    return rc;
}

int rl__end_grouped(rl *r, int64_t id, const rl_cost *actual, size_t n)
{
    group_call *a;
    int rc;
    if (!group_usable(r))
        return RL_GROUP_NONE;
    rl__lock(r);
    if (!(a = group_new(r, RL_GROUP_END, actual, actual ? n : 0))) {
        rc = RL_ENOMEM;
        goto out;
    }
    a->me.end_id = id;
    a->me.end_cancel = actual == NULL;
    rc = group_run(r, a);
    if (rc == RL_OK && a->me.expired)
        rc = rl__lease_expired(r, id);
    else if (rc == RL_OK)
        r->err[0] = 0;
    free(a);
out:
    rl__unlock(r);
    return rc;
}
