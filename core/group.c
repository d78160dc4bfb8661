/*
 * group.c - group commit, as the handle takes part in it: a process whose
 * rl_allow, rl_acquire, rl_acquire_keys or reservation (rl_reserve, and
 * so rl_wait's decisions) finds the store's write lock taken posts the
 * request and sleeps; whoever holds the lock decides every posted request
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
 *     process's.
 */
#include "handle.h"

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

/* What request g asks, into q: its keys (kept in keys[RL_MAX_KEYS]), its
 * costs (in c), and for a reservation its horizon and g's room for the
 * answer; each word read once. One read from the lock file (posted), which
 * any process of the group or a damaged file may have written, is bounded
 * and checked as the caller's own arguments would be before anything is
 * decided from it; the leader's own was checked when it was made. */
static int group_req_read(rl *r, rl_group_req *g, const char **keys, rl_cost *c, rl__req *q,
                          int posted)
{
    size_t j, at = 0, nkeys = g->nkeys, len = g->keys_len, ncosts = g->ncosts;
    int kind = g->kind;
    if (nkeys < 1 || nkeys > RL_MAX_KEYS || len > sizeof g->keys || ncosts < 1 ||
        ncosts > RL_MAX_LIMITS || (kind != RL_GROUP_DECIDE && kind != RL_GROUP_RESERVE))
        return damaged(r);
    for (j = 0; j < nkeys; j++) { /* each key a string inside keys_len */
        const char *end = at < len ? memchr(g->keys + at, 0, len - at) : NULL;
        if (!end)
            return damaged(r);
        keys[j] = g->keys + at;
        at = (size_t)(end - g->keys) + 1;
    }
    for (j = 0; j < ncosts; j++) {
        if (posted && !memchr(g->resource[j], 0, RL_NAME_MAX))
            return damaged(r);
        c[j].resource = g->resource[j];
        c[j].amount = g->amount[j];
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
    rl__batch b;
    decision x;
} group_arg;

static int group_get(rl *r, rl__batch *b, size_t i, rl__req *q, rl_cost *cost)
{
    group_arg *g = b->ctx;
    rl_group_req *req = g->batch[i];
    memset(q, 0, sizeof *q);
    q->res = &req->res;
    memset(q->res, 0, sizeof *q->res);
    return group_req_read(r, req, g->req_keys[i], cost, q, i > 0);
}

/* An answer carries its own message: none when it is RL_OK. */
static void group_put(rl *r, rl__batch *b, size_t i, int rc)
{
    rl_group_req *req = ((group_arg *)b->ctx)->batch[i];
    req->rc = rc;
    if (rc == RL_OK) {
        req->err[0] = 0;
    } else {
        copy_str(req->err, r->err, sizeof req->err);
        memset(&req->rv, 0, sizeof req->rv); /* nothing was reserved */
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
            memset(&g->batch[i]->rv, 0, sizeof g->batch[i]->rv);
            copy_str(g->batch[i]->err, r->err, sizeof g->batch[i]->err);
        }
    r->store->ops->group_end(r->store);
}

int rl__decide_grouped(rl *r, const char *const *keys, size_t nkeys, const rl_cost *costs, size_t n,
                       int64_t max_delay_ns, rl_result *res, rl_reservation *rv)
{
    struct {
        rl_group_req me;
        group_arg g;
    } * a;
    size_t i, at, len;
    int rc;
    if (!r->store_clock || !r->store->ops->group_join)
        return RL_GROUP_NONE;
    if (!res)
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "result is NULL");
    memset(res, 0, sizeof *res);
    if (rv)
        memset(rv, 0, sizeof *rv);
    rl__lock(r);
    if ((rc = rl__check_request(r, keys, nkeys, costs, n)) != RL_OK)
        goto out;
    if (!(a = malloc(sizeof *a))) {
        rc = rl_seterr(r->err, RL_ENOMEM, "out of memory");
        goto out;
    }
    /* all of what is copied into a file other processes map: no stray
     * bytes of this process's memory */
    memset(&a->me, 0, offsetof(rl_group_req, keys));
    for (i = 0, at = 0; i < nkeys; i++) { /* checked: each fits RL_KEY_MAX */
        len = strlen(keys[i]) + 1;
        memcpy(a->me.keys + at, keys[i], len);
        at += len;
    }
    a->me.nkeys = nkeys;
    a->me.keys_len = at;
    a->me.ncosts = n;
    for (i = 0; i < n; i++) {
        copy_str(a->me.resource[i], rl__resource_of(&costs[i]), RL_NAME_MAX);
        a->me.amount[i] = costs[i].amount;
    }
    if (rv) {
        a->me.kind = RL_GROUP_RESERVE;
        a->me.max_delay_ns = max_delay_ns < 0 ? 0 : max_delay_ns; /* INT64_MAX: no limit */
    }
    a->me.sig = r->sig;
    rc = r->store->ops->group_join(r->store, &a->me);
    if (rc == RL_GROUP_LEAD) {
        a->g.batch[0] = &a->me;
        group_lead(r, &a->g);
        rc = RL_OK;
    }
    if (rc == RL_OK) {
        *res = a->me.res;
        if (rv)
            *rv = a->me.rv;
        if ((rc = a->me.rc) != RL_OK)
            copy_str(r->err, a->me.err, sizeof r->err);
        else if (!rv)
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
