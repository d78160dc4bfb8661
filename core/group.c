/*
 * group.c - group commit, as the handle takes part in it: a process whose
 * rl_allow or rl_acquire finds the store's write lock taken posts the
 * request and sleeps; whoever holds the lock decides every posted request
 * of the same signature in its own transaction, so one commit answers
 * several processes. The store does the posting, the queue and the waking
 * (store/lock.c, store/sqlite_tx.c), and records in the rows it writes
 * whether a leader that died had committed its batch; this file only
 * decides, through the same runner and loop as every call (decide.c).
 *
 * Guarantees:
 *   - a request decided by a leader gets exactly the answer (rc, result,
 *     message) rl_allow or rl_acquire would have given it alone, in the
 *     order the requests were queued; a posted request is bounded and
 *     checked as the caller's own arguments would be before anything is
 *     decided from it (the lock file may be damaged);
 *   - a store failure on one request's key (a damaged row, say) answers
 *     that request alone, and the others are decided again without it;
 *     one of the transaction itself (begin, commit) answers them all;
 *   - the leader's own answer is its own: its message is never another
 *     process's.
 */
#include "handle.h"

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

/* A request's costs, into c. One read from the lock file (posted), which
 * any process of the group or a damaged file may have written, is bounded
 * and checked as the caller's own arguments would be before anything is
 * decided from it; the leader's own was checked when it was made. */
static int group_req_costs(rl *r, const rl_group_req *q, rl_cost *c, int posted)
{
    size_t j;
    if (posted && (q->ncosts < 1 || q->ncosts > RL_MAX_LIMITS || !memchr(q->key, 0, sizeof q->key)))
        return rl_seterr(r->err, RL_ECORRUPT, "a queued request in the lock file is damaged");
    for (j = 0; j < q->ncosts; j++) {
        if (posted && !memchr(q->resource[j], 0, RL_NAME_MAX))
            return rl_seterr(r->err, RL_ECORRUPT, "a queued request in the lock file is damaged");
        c[j].resource = q->resource[j];
        c[j].amount = q->amount[j];
    }
    return posted ? rl__check_request(r, (const char *const[]){ q->key }, 1, c, q->ncosts) : RL_OK;
}

/* A leader's batch: its own request first, then those it takes. */
typedef struct group_arg {
    rl_group_req *batch[RL_GROUP_MAX];
    unsigned char alone[RL_GROUP_MAX]; /* answered alone: a store failure */
    const char *keys[RL_GROUP_MAX];
    int first; /* the first attempt, which takes requests in */
    rl__batch b;
    decision x;
} group_arg;

static int group_get(rl *r, rl__batch *b, size_t i, rl__req *q, rl_cost *cost)
{
    rl_group_req *req = ((group_arg *)b->ctx)->batch[i];
    memset(q, 0, sizeof *q);
    q->res = &req->res;
    memset(q->res, 0, sizeof *q->res);
    q->key1 = req->key;
    q->keys = &q->key1;
    q->nkeys = 1;
    q->costs = cost;
    q->ncosts = req->ncosts;
    return group_req_costs(r, req, cost, i > 0);
}

/* An answer carries its own message: none when it is RL_OK. */
static void group_put(rl *r, rl__batch *b, size_t i, int rc)
{
    rl_group_req *req = ((group_arg *)b->ctx)->batch[i];
    req->rc = rc;
    if (rc == RL_OK)
        req->err[0] = 0;
    else
        copy_str(req->err, r->err, sizeof req->err);
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
            copy_str(g->batch[i]->err, r->err, sizeof g->batch[i]->err);
        }
    r->store->ops->group_end(r->store);
}

int rl__decide_grouped(rl *r, const char *key, const rl_cost *costs, size_t n, rl_result *res)
{
    struct {
        rl_group_req me;
        group_arg g;
    } * a;
    size_t i;
    int rc;
    if (!r->store_clock || !r->store->ops->group_join)
        return RL_GROUP_NONE;
    if (!res)
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "result is NULL");
    memset(res, 0, sizeof *res);
    rl__lock(r);
    if ((rc = rl__check_request(r, &key, 1, costs, n)) != RL_OK)
        goto out;
    if (!(a = malloc(sizeof *a))) {
        rc = rl_seterr(r->err, RL_ENOMEM, "out of memory");
        goto out;
    }
    /* all of it: it is copied into a file other processes map */
    memset(&a->me, 0, sizeof a->me);
    copy_str(a->me.key, key, sizeof a->me.key);
    a->me.ncosts = n;
    for (i = 0; i < n; i++) {
        copy_str(a->me.resource[i], rl__resource_of(&costs[i]), RL_NAME_MAX);
        a->me.amount[i] = costs[i].amount;
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
        if ((rc = a->me.rc) != RL_OK)
            copy_str(r->err, a->me.err, sizeof r->err);
        else
            rl__pending_note(r, &key, 1, res);
    }
    if (rl__store_failure(rc))
        rl__failed_result(r, res);
    /* a leader's buffer holds what the last request of its batch said,
     * maybe another process's error: its own answer is what counts */
    if (rc == RL_OK)
        r->err[0] = 0;
    free(a);
out:
    rl__unlock(r);
    return rc;
}
