/*
 * decide.c - deciding: the one transaction runner and the one loop that
 * decides requests in it, behind rl_allow, rl_acquire, rl_acquire_keys,
 * rl_allow_batch (here), rl_reserve, rl_lease_begin (reserve.c), rl_wait*
 * (wait.c) and group commit (group.c).
 *
 * A decision is one write transaction of the store: begin (which queues
 * this process behind every other writer), read the clock, read each key's
 * row, resolve its tier, decide every limit (eval.c), write the rows
 * back, commit. The clock is read only once the write lock is held, so
 * time spent waiting for the lock never turns into a false refusal.
 *
 * Guarantees:
 *   - every writing call runs through rl__write_tx: under the handle's
 *     mutex, begin, body, commit or roll back, all again on an optimistic
 *     store's conflict (until busy_timeout_ms: RL_EBUSY);
 *   - a decision is all-or-nothing across its keys, limits and resources:
 *     every row is read and written in one transaction, and a refusal
 *     charges nothing;
 *   - requests decided together (rl_allow_batch, a group-commit leader's
 *     batch) are decided in order, each exactly as it would be alone; a
 *     request that cannot be decided is answered alone, and a store
 *     failure loses the whole transaction (rl__decide_each);
 *   - an answer is what was committed: a call whose transaction failed gets
 *     the fail mode's answer (RL_FAIL_OPEN: allowed and degraded), never
 *     a decision that was rolled back.
 */
#include "handle.h"
#include "lease.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the transaction runner --------------------------------------------- */

/* After commit said RL_ECONFLICT: whether to run the transaction again.
 * Immediately at first, then after a growing random pause, until
 * busy_timeout_ms has passed since the first attempt; then RL_EBUSY. */
int rl__conflict_retry(rl *r, rl_retry *t, int *rc)
{
    struct timespec ts;
    int64_t now, pause;
    if (*rc != RL_ECONFLICT)
        return 0;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    now = (int64_t)ts.tv_sec * RL_SECOND + ts.tv_nsec;
    if (t->attempt++ == 0)
        t->deadline = now + (int64_t)r->o.busy_timeout_ms * RL_MILLISECOND;
    if (now >= t->deadline) {
        rl_seterr(r->err, RL_EBUSY, "store busy: %d conflicting writes in %d ms", t->attempt,
                  r->o.busy_timeout_ms);
        *rc = RL_EBUSY;
        return 0;
    }
    r->err[0] = 0;
    if (t->attempt > 4) {
        int shift = t->attempt < 5 ? t->attempt : 5;
        t->rng = t->rng * 6364136223846793005ULL + 1442695040888963407ULL;
        pause = (int64_t)((t->rng >> 33) % (uint64_t)((int64_t)10000 << shift));
        ts.tv_sec = 0;
        ts.tv_nsec = (long)pause;
        nanosleep(&ts, NULL);
    }
    return 1;
}

int rl__tx(rl *r, int (*body)(rl *r, void *ctx), void *ctx)
{
    rl_retry retry = RL_RETRY_INIT;
    int rc, replay;
    do {
        r->err[0] = 0;
        r->slot_freed = 0;
#ifdef RL_TEST_HOOKS
        (void)__atomic_fetch_add(&rl__test_write_tx, 1, __ATOMIC_SEQ_CST);
#endif
        rc = RL_FAST_NO;
        if (r->fast) { /* the first attempt only: a retry goes the usual way */
            rc = r->store->ops->decide_fast(r->store, r->fast);
            r->frozen = rc == RL_OK && r->fast->have_now;
            r->frozen_now = r->fast->now;
        } else if (r->fast_lease) { /* a lease settle or cancel (fast_lease.c) */
            rc = r->store->ops->lease_end_fast(r->store, r->fast_lease);
            r->frozen = rc == RL_OK && r->fast_lease->have_now;
            r->frozen_now = r->fast_lease->now;
        }
        r->fast = NULL;
        r->fast_lease = NULL;
        replay = rc == RL_OK;
        if (rc == RL_FAST_NO)
            rc = r->store->ops->begin(r->store, 1);
        if (rc != RL_OK)
            continue;
        /* refusals answered from a read snapshot ride along (refuse.c),
         * after the body: what it reset drops them. Not in the replay of a
         * store's own decision, which commits only what it decided: they
         * wait for the next usual write, or their bound. */
        if (r->pend_live && !replay)
            rl__pending_begin(r);
        if ((rc = body(r, ctx)) == RL_OK && (replay || (rc = rl__pending_fold(r)) == RL_OK) &&
            (rc = r->store->ops->commit(r->store)) == RL_OK && !replay)
            rl__pending_done(r);
        if (rc != RL_OK) /* a failed commit still needs its rollback to unlock */
            r->store->ops->rollback(r->store);
        r->frozen = 0;
    } while (rl__conflict_retry(r, &retry, &rc));
    r->fast = NULL;
    r->fast_lease = NULL;
    r->frozen = 0;
    /* slot waiters of every process look again once the release is in */
    if (rc == RL_OK && r->slot_freed && r->store->ops->slot_notify)
        r->store->ops->slot_notify(r->store);
    r->slot_freed = 0;
    return rc;
}

/* done, if given, runs under the mutex with the final code and returns the
 * call's: what the caller learns of the handle's state (the fail mode,
 * messages) is read while no other thread changes it. */
int rl__write_tx(rl *r, int (*body)(rl *r, void *ctx), int (*done)(rl *r, void *ctx, int rc),
                 void *ctx)
{
    int rc;
    rl__lock(r);
    rc = rl__tx(r, body, ctx);
    if (done)
        rc = done(r, ctx, rc);
    if (rc == RL_OK) /* what an item of a batch failed with is not the call's */
        r->err[0] = 0;
    rl__unlock(r);
    return rc;
}

/* ---- answers and arguments ---------------------------------------------- */

static int fail_mode(const rl *r)
{
    return r->pol.fail_mode != RL_FAIL_UNSET ? r->pol.fail_mode : r->o.fail_mode;
}

void rl__failed_result(const rl *r, rl_result *res)
{
    memset(res, 0, sizeof *res);
    res->allowed = res->degraded = fail_mode(r) == RL_FAIL_OPEN;
    /* refused: back off a little rather than retry at once */
    res->retry_after_ns = res->allowed ? 0 : RL_FAIL_RETRY_NS;
}

static void no_limit_result(rl_result *res)
{
    memset(res, 0, sizeof *res);
    res->allowed = 1;
    res->remaining = INT64_MAX;
}

int rl__check_key(rl *r, const char *key)
{
    if (!key || !rl_key_valid(key))
        return rl_seterr(rl__errbuf(r), RL_EINVAL,
                         "invalid key: must be 1-%d bytes of UTF-8 without control characters",
                         RL_KEY_MAX);
    return RL_OK;
}

/* Keys valid and distinct; costs valid, non-negative, one per resource. */
int rl__check_request(rl *r, const char *const *keys, size_t nkeys, const rl_cost *costs,
                      size_t ncosts)
{
    size_t i, j;
    int rc;
    if (!keys || nkeys < 1 || nkeys > RL_MAX_KEYS)
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "a decision takes 1 to %d keys", RL_MAX_KEYS);
    if (!costs || ncosts < 1 || ncosts > RL_MAX_LIMITS)
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "a decision takes 1 to %d costs", RL_MAX_LIMITS);
    for (i = 0; i < nkeys; i++) {
        if ((rc = rl__check_key(r, keys[i])) != RL_OK)
            return rc;
        for (j = 0; j < i; j++)
            if (strcmp(keys[i], keys[j]) == 0)
                return rl_seterr(rl__errbuf(r), RL_EINVAL, "key '%.64s' given twice", keys[i]);
    }
    for (i = 0; i < ncosts; i++) {
        if (!rl_name_valid(rl__resource_of(&costs[i])))
            return rl_seterr(rl__errbuf(r), RL_EINVAL, "invalid resource name");
        if (costs[i].amount < 0)
            return rl_seterr(rl__errbuf(r), RL_EINVAL, "cost %lld of '%s' is negative",
                             (long long)costs[i].amount, rl__resource_of(&costs[i]));
        for (j = 0; j < i; j++)
            if (strcmp(rl__resource_of(&costs[i]), rl__resource_of(&costs[j])) == 0)
                return rl_seterr(rl__errbuf(r), RL_EINVAL, "resource '%s' given twice",
                                 rl__resource_of(&costs[i]));
    }
    return RL_OK;
}

/* ---- one decision ------------------------------------------------------- */

/* Whether a limit of tier t counts resource. */
static int tier_counts(const rl_tier *t, const char *resource)
{
    size_t i;
    for (i = 0; i < t->n; i++)
        if (strcmp(t->limits[i].resource, resource) == 0)
            return 1;
    return 0;
}

/* Appends ", name" to list (cap bytes, holding len > 0) unless it is
 * there; ", ..." once the next one would not fit. */
static size_t list_add(char *list, size_t cap, size_t len, const char *name)
{
    size_t n = strlen(name);
    const char *p = list;
    if (len >= 5 && strcmp(list + len - 5, ", ...") == 0)
        return len;
    while ((p = strstr(p, name)) != NULL) { /* whole items only */
        if ((p == list || p[-1] == ' ') && (p[n] == ',' || p[n] == 0))
            return len;
        p += n;
    }
    /* after each name there is room for ", ..." */
    if (len + 2 + n + 5 >= cap)
        return len + (size_t)snprintf(list + len, cap - len, ", ...");
    return len + (size_t)snprintf(list + len, cap - len, ", %s", name);
}

/* A decision on tier t names only resources that some limit of the policy
 * counts (any tier, or the handle's default limits), unless t is unlimited
 * or the handle admits any resource: a misspelt "token" must not pass
 * uncharged. "requests", what rl_allow names, is always known. */
int rl__check_resources(rl *r, const rl_tier *t, const rl__req *q)
{
    char known[120]; /* the message holds it, the resource and the rest */
    size_t i, j, len;
    if (t->unlimited || t->n == 0 || (r->o.flags & RL_OPEN_ANY_RESOURCE))
        return RL_OK;
    for (i = 0; i < q->ncosts; i++) {
        const char *res = rl__resource_of(&q->costs[i]);
        int found = strcmp(res, "requests") == 0 || tier_counts(t, res) ||
                    (r->have_defaults && tier_counts(&r->defaults, res));
        for (j = 0; !found && j < r->pol.n_tiers; j++)
            found = tier_counts(&r->pol.tiers[j], res);
        if (found)
            continue;
        len = (size_t)snprintf(known, sizeof known, "requests");
        for (j = 0; j < r->pol.n_tiers + (size_t)r->have_defaults; j++) {
            const rl_tier *o = j < r->pol.n_tiers ? &r->pol.tiers[j] : &r->defaults;
            size_t l;
            for (l = 0; l < o->n; l++)
                len = list_add(known, sizeof known, len, o->limits[l].resource);
        }
        return rl_seterr(r->err, RL_ENOLIMIT,
                         "resource '%s' is limited by no tier (known: %s); "
                         "RL_OPEN_ANY_RESOURCE admits any",
                         res, known);
    }
    return RL_OK;
}

/* Whether q names a concurrency limit of tier t. */
static int names_inflight(const rl_tier *t, const rl__req *q)
{
    size_t i;
    for (i = 0; i < t->n; i++)
        if (t->limits[i].kind == RL_KIND_CONCURRENT &&
            rl__amount_of(q->costs, q->ncosts, t->limits[i].resource) >= 0)
            return 1;
    return 0;
}

/* Key k of q: reads its row (the first read also brings the clock and the
 * policy up to date), checks the resources q names, brings its state to
 * its tier, reclaims what dead or expired leases hold (a decision that
 * names a concurrency limit), and decides each of its limits that the
 * request names into x->ev. *cool: the latest cool-down end so far. */
static int decide_key(rl *r, decision *x, const rl__req *q, size_t k, int64_t *cool)
{
    key_eval *e = &x->ke[k];
    const char *key = q->keys[k];
    rl_state old;
    int64_t until, soonest = INT64_MIN;
    rl__ahead ahead;
    size_t i, j;
    int rc, source;
    if ((rc = r->store->ops->row_get(r->store, key, &e->row, &x->version)) != RL_OK)
        return rc;
    if (k == 0) /* after the first read: a remote store's time comes with it */
        x->now = rl__now(r);
    if (k == 0 && (rc = rl__refresh_policy(r, x->version)) != RL_OK)
        return rc;
    if (r->store->ops->decide_fast)
        rl__fast_note(r, key, e->row.tier);
    if (!(e->t = rl__key_tier(r, key, &e->row, &source)))
        return rl_seterr(r->err, RL_ENOLIMIT,
                         "no tier applies to key '%.64s' and no default limits are set", key);
    if ((rc = rl__check_resources(r, e->t, q)) != RL_OK)
        return rc;
    if (rl_state_decode(&old, e->row.state, e->row.state_len) != RL_OK)
        return rl_seterr(r->err, RL_ECORRUPT, "key '%.64s': damaged bucket state", key);
    rl__align(r, e->t, &old, &e->st, x->now);
    ahead.n = 0;
    ahead.rank = q->rank > 0 ? q->rank : x->now;
    ahead.self = q->wait_id ? q->wait_id[k] : 0;
    if ((q->lease || names_inflight(e->t, q)) &&
        (rc = rl__reclaim(r, key, &e->st, x->now, &soonest, &ahead, x->snapshot)) != RL_OK)
        return rc;
    if ((until = rl__cooldown_until(&e->st, q->costs, q->ncosts, x->now)) > *cool) {
        *cool = until;
        x->cool_key = (int)k;
    }
    for (i = 0; i < e->t->n; i++) {
        const rl_ldef *d = &e->t->limits[i];
        lim_eval *v = &x->ev[x->n];
        int64_t amount = rl__amount_of(q->costs, q->ncosts, d->resource);
        if (amount < 0)
            continue; /* a resource this call does not name */
        if (amount > d->burst)
            return rl_seterr(r->err, RL_ETOOBIG,
                             "cost %lld exceeds burst %lld of limit '%s': it can never pass",
                             (long long)amount, (long long)d->burst, d->name);
        v->d = d;
        v->slot = &e->st.slot[i];
        v->key = (int)k;
        /* a concurrency limit: only a lease holds units in flight; any
         * other decision checks that they fit, after the units that
         * waiters queued before the caller want (they are served first) */
        for (j = 0; d->kind == RL_KIND_CONCURRENT && j < ahead.n; j++)
            if (strcmp(ahead.resource[j], d->resource) == 0)
                break;
        if (d->kind == RL_KIND_CONCURRENT && j < ahead.n) {
            rl_slot queued = *v->slot;
            queued.tat = rl__sat_add(queued.tat, ahead.amount[j]);
            v->slot = &queued;
            rl__limit_decide(v, amount, x->now, q->max_delay_ns, soonest, q->lease != NULL);
            v->next.tat = rl__sat_sub(v->next.tat, ahead.amount[j]);
            v->slot = &e->st.slot[i];
        } else {
            rl__limit_decide(v, amount, x->now, q->max_delay_ns, soonest, q->lease != NULL);
        }
        x->allowed &= v->ok;
        /* x->delay is when rates and cool-downs let the caller act; a full
         * concurrency limit refuses whatever the delay, and its own delay
         * is only a hint of when to look again */
        if (d->kind != RL_KIND_CONCURRENT && v->delay_ns > x->delay)
            x->delay = v->delay_ns;
        x->n++;
    }
    return RL_OK;
}

/* An admitted lease decision: a lease on each key, with the in-flight units
 * it holds in that key's limits and the whole estimate; the caller's
 * waiter rows go, as it is served. */
static int put_lease(rl *r, const decision *x, const rl__req *q)
{
    size_t i, k;
    int rc;
    for (k = 0; k < q->nkeys; k++) {
        rl_lease_rec *lease = &q->lease[k];
        lease->n_held = 0;
        lease->waiting = lease->priority = 0;
        for (i = 0; i < x->n; i++) {
            int64_t amount = rl__amount_of(q->costs, q->ncosts, x->ev[i].d->resource);
            if (x->ev[i].key == (int)k && x->ev[i].d->kind == RL_KIND_CONCURRENT && amount > 0) {
                lease->held_id[lease->n_held] = x->ev[i].d->id;
                lease->held_amount[lease->n_held++] = amount;
            }
        }
        rl__lease_fill(lease, q->keys[k], x->now,
                       rl__sat_add(x->now, rl__sat_add(x->delay, q->ttl)), q->costs, q->ncosts);
        if (q->owner_pid > 0) { /* a group-commit poster's lease is its own */
            lease->pid = q->owner_pid;
            lease->pstart = q->owner_pstart;
        }
        if ((rc = r->store->ops->lease_put(r->store, lease)) != RL_OK)
            return rc;
        /* reclaimed already if it had run out: nothing to delete then */
        if (q->wait_id && q->wait_id[k] > 0 &&
            (rc = r->store->ops->lease_delete(r->store, q->keys[k], q->wait_id[k])) != RL_OK &&
            rc != RL_ENOTFOUND)
            return rc;
    }
    return RL_OK;
}

/* Every key's row back, with its counters: units of "requests" (else of
 * the first cost) when admitted, one refusal when not. */
static int put_rows(rl *r, decision *x, const rl__req *q)
{
    int64_t units = rl__amount_of(q->costs, q->ncosts, "requests");
    size_t k;
    int rc;
    if (units < 0)
        units = q->costs[0].amount;
    for (k = 0; k < q->nkeys; k++) {
        rl_row *row = &x->ke[k].row;
        row->state_len = rl_state_encode(&x->ke[k].st, row->state);
        /* its first decision (a new key, or one reset or created by an
         * assignment or a cool-down): any time, 0 too, is first_seen */
        if (row->allowed == 0 && row->refused == 0)
            row->first_seen = x->now;
        row->last_seen = x->now;
        if (r->pend_live)
            rl__pending_decided(r, q->keys[k]);
        if (x->allowed) { /* counters stop at INT64_MAX */
            row->allowed = rl__sat_add(row->allowed, 1);
            row->units = rl__sat_add(row->units, units);
        } else {
            row->refused = rl__sat_add(row->refused, 1);
        }
        if ((rc = r->store->ops->row_put(r->store, q->keys[k], row)) != RL_OK)
            return rc;
    }
    return RL_OK;
}

/* Inside a transaction: reads q's keys and decides, writing nothing;
 * x->snapshot is set when it is a read transaction. Arguments are
 * checked. */
static int decide_eval(rl *r, decision *x, const rl__req *q)
{
    int64_t cool = INT64_MIN;
    size_t i, k;
    int rc;

    x->n = 0;
    x->allowed = 1;
    x->cool_key = 0;
    x->now = x->version = x->cool_delay = x->delay = 0;
    for (k = 0; k < q->nkeys; k++)
        if ((rc = decide_key(r, x, q, k, &cool)) != RL_OK)
            return rc;
    if (cool > x->now) {
        x->cool_delay = rl__sat_sub(cool, x->now);
        x->allowed &= x->cool_delay <= q->max_delay_ns;
        if (x->cool_delay > x->delay)
            x->delay = x->cool_delay;
    }
    /* A window admits the caller when the whole decision lets it act: if
     * another limit or a cool-down sets a later time than the window's own,
     * the units count in the window of that time. */
    for (i = 0; x->allowed && i < x->n; i++)
        if (x->ev[i].d->kind == RL_KIND_WINDOW && x->ev[i].delay_ns < x->delay)
            rl__limit_decide_at(&x->ev[i], rl__amount_of(q->costs, q->ncosts, x->ev[i].d->resource),
                                x->now, x->delay);
    return RL_OK;
}

/* Inside a write transaction: reads q's keys, decides, and writes their
 * rows (and the lease, if one is asked for). Arguments are checked. */
static int decide_tx(rl *r, decision *x, const rl__req *q)
{
    size_t i;
    int rc;
    x->snapshot = 0;
    if ((rc = decide_eval(r, x, q)) != RL_OK)
        return rc;
    if (x->allowed)
        for (i = 0; i < x->n; i++)
            *x->ev[i].slot = x->ev[i].next;
    if (x->allowed && q->lease && (rc = put_lease(r, x, q)) != RL_OK)
        return rc;
    return put_rows(r, x, q);
}

/* What the caller learns of a decision that decide_tx made. */
static void decide_fill(const decision *x, const rl__req *q)
{
    rl_result *res = q->res;
    rl_reservation *rv = q->rv;
    size_t i;
    if (x->n == 0)
        no_limit_result(res);
    else
        rl__fill_result(res, x->ev, x->n, x->allowed);
    if (x->cool_delay > 0 && x->cool_delay == x->delay) {
        /* the cool-down is what decides: nothing passes before it ends */
        res->allowed = x->allowed;
        res->limit = 0;
        res->remaining = 0;
        res->retry_after_ns = x->allowed ? 0 : x->cool_delay;
        if (res->reset_after_ns < x->cool_delay)
            res->reset_after_ns = x->cool_delay;
        res->key_index = x->cool_key;
        snprintf(res->limit_name, sizeof res->limit_name, "cooldown");
    }
    if (rv) {
        memset(rv, 0, sizeof *rv);
        rv->ok = x->allowed;
        rv->delay_ns = x->delay;
        rv->time_to_act = rl__sat_add(x->now, x->delay);
        rv->generation_ = x->ke[0].st.gen;
        rv->n_ = x->allowed ? x->n : 0;
        for (i = 0; i < rv->n_; i++) {
            rv->amount_[i] = rl__amount_of(q->costs, q->ncosts, x->ev[i].d->resource);
            rv->id_[i] = x->ev[i].d->id;
            rv->tat_[i] = x->ev[i].next.tat; /* a window's: the window it is counted in */
            rv->rem_[i] = x->ev[i].next.rem;
        }
        snprintf(rv->key_, sizeof rv->key_, "%s", q->keys[0]);
        /* refused beyond the horizon: when the rates would let it act;
         * refused within it, a concurrency limit was full: its hint */
        if (x->allowed)
            res->retry_after_ns = 0;
        else if (x->delay > q->max_delay_ns)
            res->retry_after_ns = x->delay;
    }
}

/* ---- the decide loop ---------------------------------------------------- */

int rl__decide_each(rl *r, rl__batch *b)
{
    rl_cost cost[RL_MAX_LIMITS];
    rl__req q;
    size_t i, j, m, start = 0, end;
    int rc;
    b->failed = SIZE_MAX;
    while (start < b->n) {
        end = b->n;
        /* Rows read ahead in one round trip (Redis): the keys of the
         * requests that can be decided. */
        if (b->keys && r->store->ops->prefetch) {
            for (i = start, m = 0; i < end; i++) {
                if (b->skip && b->skip[i])
                    continue;
                r->err[0] = 0;
                if ((rc = b->get(r, b, i, &q, cost)) != RL_OK)
                    continue; /* answered below, with its message */
                for (j = 0; j < q.nkeys; j++)
                    b->keys[m++] = q.keys[j];
            }
            if (m >= b->prefetch_min &&
                (rc = r->store->ops->prefetch(r->store, b->keys, m)) != RL_OK)
                return rc;
        }
        for (i = start; i < end; i++) {
            if (b->skip && b->skip[i])
                continue;
            r->err[0] = 0;
            rc = b->get(r, b, i, &q, cost);
            if (rc == RL_OK && q.end)
                rc = rl__lease_end_in(r, q.end);
            else if (rc == RL_OK && (rc = decide_tx(r, b->x, &q)) == RL_OK)
                decide_fill(b->x, &q);
            b->put(r, b, i, rc);
            if (rl__store_failure(rc)) {
                b->failed = i;
                return rc;
            }
        }
        start = end;
        if (b->more)
            b->n += b->more(r, b);
    }
    return RL_OK;
}

/* ---- one request as a call ---------------------------------------------- */

typedef struct one_arg {
    rl__req q;
    int rc;
    rl__batch b;
    const char *keys[RL_MAX_KEYS];
    decision x;
    rl_fast_req fast;
} one_arg;

/* Checked before the transaction, its result zeroed by rl__decide. */
static int one_get(rl *r, rl__batch *b, size_t i, rl__req *q, rl_cost *cost)
{
    (void)r;
    (void)i;
    (void)cost;
    *q = ((one_arg *)b->ctx)->q;
    return RL_OK;
}

static void one_put(rl *r, rl__batch *b, size_t i, int rc)
{
    (void)r;
    (void)i;
    ((one_arg *)b->ctx)->rc = rc;
}

/* Unlike a batch's, the one request's failure is the transaction's. */
static int one_body(rl *r, void *ctx)
{
    one_arg *a = ctx;
    int rc = rl__decide_each(r, &a->b);
    return rc != RL_OK ? rc : a->rc;
}

/* A decision rl__decide_read could have answered: no lease, reservation,
 * delay or place in a queue. */
static int read_kind(const rl__req *q)
{
    return !q->lease && !q->rv && q->max_delay_ns == 0 && !q->wait_id && q->rank == 0;
}

static int one_done(rl *r, void *ctx, int rc)
{
    one_arg *a = ctx;
    if (rc == RL_OK && read_kind(&a->q))
        rl__pending_note(r, a->q.keys, a->q.nkeys, a->q.res);
    if (rc == RL_OK)
        return rc;
    if (a->q.rv) /* nothing was decided */
        memset(a->q.rv, 0, sizeof *a->q.rv);
    if (rl__store_failure(rc))
        rl__failed_result(r, a->q.res);
    else
        memset(a->q.res, 0, sizeof *a->q.res);
    return rc;
}

int rl__decide_req(rl *r, const rl__req *q)
{
    one_arg *a;
    int rc;
    if (!q->res)
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "result is NULL");
    memset(q->res, 0, sizeof *q->res);
    if (q->rv)
        memset(q->rv, 0, sizeof *q->rv);
    if ((rc = rl__check_request(r, q->keys, q->nkeys, q->costs, q->ncosts)) != RL_OK)
        return rc;
    if (!(a = malloc(sizeof *a)))
        return rl_seterr(rl__errbuf(r), RL_ENOMEM, "out of memory");
    a->q = *q;
    if (a->q.max_delay_ns < 0)
        a->q.max_delay_ns = 0; /* INT64_MAX: no limit */
    a->rc = RL_OK;
    memset(&a->b, 0, sizeof a->b);
    a->b.n = 1;
    a->b.ctx = a;
    a->b.get = one_get;
    a->b.put = one_put;
    a->b.prefetch_min = 2; /* one key's row comes with its read */
    a->b.keys = a->keys;
    a->b.x = &a->x;
    /* rl__write_tx, with the plan of a one-round-trip decision made under
     * the mutex, where the policy cache may be read */
    rl__lock(r);
    if (rl__fast_plan(r, &a->q, &a->fast))
        r->fast = &a->fast;
    rc = one_done(r, a, rl__tx(r, one_body, a));
    if (rc == RL_OK)
        r->err[0] = 0;
    rl__unlock(r);
    free(a);
    return rc;
}

int rl__decide(rl *r, const char *const *keys, size_t nkeys, const rl_cost *costs, size_t ncosts,
               int64_t max_delay_ns, rl_result *res, rl_reservation *rv, rl_lease_rec *lease)
{
    rl__req q;
    int rc;
    /* Through group commit when the store offers it (a horizon only with
     * a reservation, as a queued request carries it; a lease on one key,
     * its TTL in max_delay_ns). A leader decides with its own handle's
     * options: one that admits any resource must neither lead others'
     * requests nor have its own decided by another (group_sig does not
     * tell them apart). */
    if ((lease ? nkeys == 1 : rv || max_delay_ns == 0) && !(r->o.flags & RL_OPEN_ANY_RESOURCE) &&
        (rc = rl__decide_grouped(r, keys, nkeys, costs, ncosts, max_delay_ns, res, rv, lease)) !=
            RL_GROUP_NONE)
        return rc;
    memset(&q, 0, sizeof q);
    q.keys = keys;
    q.nkeys = nkeys;
    q.costs = costs;
    q.ncosts = ncosts;
    q.max_delay_ns = max_delay_ns;
    if (lease) { /* for a lease, max_delay_ns is its TTL: it admits now or never */
        q.ttl = max_delay_ns < 0 ? 0 : max_delay_ns;
        q.max_delay_ns = 0;
    }
    q.lease = lease;
    q.res = res;
    q.rv = rv;
    return rl__decide_req(r, &q);
}

/* ---- rl_allow_batch ----------------------------------------------------- */

typedef struct batch_arg {
    rl_batch_item *items;
    rl__batch b;
    decision x;
} batch_arg;

/* Item i: cost units of "requests" on one key, as rl_allow takes them. */
static int batch_get(rl *r, rl__batch *b, size_t i, rl__req *q, rl_cost *cost)
{
    rl_batch_item *it = &((batch_arg *)b->ctx)->items[i];
    memset(q, 0, sizeof *q);
    q->key1 = it->key;
    q->keys = &q->key1;
    q->nkeys = 1;
    cost[0].resource = "requests";
    cost[0].amount = it->cost;
    q->costs = cost;
    q->ncosts = 1;
    q->res = &it->res;
    memset(q->res, 0, sizeof *q->res);
    return rl__check_request(r, q->keys, 1, q->costs, 1);
}

static void batch_put(rl *r, rl__batch *b, size_t i, int rc)
{
    (void)r;
    ((batch_arg *)b->ctx)->items[i].rc = rc;
}

static int batch_body(rl *r, void *ctx)
{
    return rl__decide_each(r, &((batch_arg *)ctx)->b);
}

static int batch_done(rl *r, void *ctx, int rc)
{
    batch_arg *a = ctx;
    size_t i;
    if (rc != RL_OK) /* nothing of the batch was written */
        for (i = 0; i < a->b.n; i++) {
            a->items[i].rc = rc;
            if (rl__store_failure(rc))
                rl__failed_result(r, &a->items[i].res);
            else
                memset(&a->items[i].res, 0, sizeof a->items[i].res);
        }
    return rc;
}

int rl_allow_batch(rl *r, rl_batch_item *items, size_t n)
{
    batch_arg *a;
    int rc;
    if (!r)
        return RL_EINVAL;
    if (!items && n)
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "items is NULL");
    if (n == 0) {
        rl__errbuf(r)[0] = 0;
        return RL_OK;
    }
    if (!(a = malloc(sizeof *a)) || !(a->b.keys = malloc(n * sizeof *a->b.keys))) {
        free(a);
        return rl_seterr(rl__errbuf(r), RL_ENOMEM, "out of memory");
    }
    a->items = items;
    a->b.n = n;
    a->b.ctx = a;
    a->b.get = batch_get;
    a->b.put = batch_put;
    a->b.more = NULL;
    a->b.skip = NULL;
    a->b.prefetch_min = 0;
    a->b.x = &a->x;
    rc = rl__write_tx(r, batch_body, batch_done, a);
    free(a->b.keys);
    free(a);
    return rc;
}

/* ---- refusals from a read snapshot -------------------------------------- */

/* Whether a refusal decided in x would write nothing but counters: every
 * row exists, has been decided before (first_seen is set), and its state
 * as aligned re-encodes to the bytes stored. */
static int refusal_clean(const decision *x, const rl__req *q)
{
    unsigned char buf[RL_STATE_MAX];
    size_t k, len;
    for (k = 0; k < q->nkeys; k++) {
        const rl_row *row = &x->ke[k].row;
        if (!row->exists || (row->allowed == 0 && row->refused == 0))
            return 0;
        len = rl_state_encode(&x->ke[k].st, buf);
        if (len != row->state_len || memcmp(buf, row->state, len) != 0)
            return 0;
    }
    return 1;
}

/* Under the mutex: q decided in a read transaction, writing nothing, into
 * the handle's scratch (allocated on first use); NULL when that could not
 * be done (the write path, if taken, says why). */
static decision *decide_snapshot(rl *r, const rl__req *q)
{
    decision *x;
    int rc;
    if (!r->rx && !(r->rx = malloc(sizeof *r->rx)))
        return NULL;
    x = r->rx;
    if (r->store->ops->begin(r->store, 0) != RL_OK) {
        r->store->ops->rollback(r->store);
        return NULL;
    }
    x->snapshot = 1;
    rc = decide_eval(r, x, q);
    x->snapshot = 0;
    r->store->ops->rollback(r->store);
    return rc == RL_OK ? x : NULL;
}

int rl__decide_read(rl *r, const char *const *keys, size_t nkeys, const rl_cost *costs, size_t n,
                    rl_result *res)
{
    rl_row rows[RL_MAX_KEYS];
    rl__req q;
    decision *x;
    size_t k;
    int answered = 0;
    if (!res || !keys || nkeys < 1 || nkeys > RL_MAX_KEYS)
        return RL_GROUP_NONE;
    rl__lock(r);
    if (!rl__pending_hinted(r, keys, nkeys) || rl__check_request(r, keys, nkeys, costs, n) != RL_OK)
        goto out;
    memset(&q, 0, sizeof q);
    q.keys = keys;
    q.nkeys = nkeys;
    q.costs = costs;
    q.ncosts = n;
    q.res = res;
    x = decide_snapshot(r, &q);
    if (!(answered = x && !x->allowed && refusal_clean(x, &q)))
        goto out;
    memset(res, 0, sizeof *res);
    decide_fill(x, &q);
    for (k = 0; k < nkeys; k++)
        rows[k] = x->ke[k].row;
    if (rl__pending_add(r, keys, nkeys, rows, x->now, res->retry_after_ns) != RL_OK)
        answered = 0;
out:
    r->err[0] = 0; /* the write path, if it is taken, says what it meets */
    rl__unlock(r);
    return answered ? RL_OK : RL_GROUP_NONE;
}

int rl__decide_peek_full(rl *r, const rl__req *q)
{
    rl_reservation rv;
    rl__req p = *q;
    decision *x;
    int full = 0;
    rl__lock(r);
    if (p.max_delay_ns < 0)
        p.max_delay_ns = 0;
    x = decide_snapshot(r, &p);
    if (x && !x->allowed && x->delay <= p.max_delay_ns) {
        memset(p.res, 0, sizeof *p.res);
        p.rv = &rv;
        decide_fill(x, &p);
        full = 1;
    }
    r->err[0] = 0;
    rl__unlock(r);
    return full;
}

/* ---- rl_allow, rl_acquire ----------------------------------------------- */

int rl_allow(rl *r, const char *key, int64_t cost, rl_result *res)
{
    rl_cost c;
    int rc;
    if (!r)
        return RL_EINVAL;
    c.resource = "requests";
    c.amount = cost;
    if ((rc = rl__decide_read(r, &key, 1, &c, 1, res)) != RL_GROUP_NONE)
        return rc;
    return rl__decide(r, &key, 1, &c, 1, 0, res, NULL, NULL);
}

int rl_acquire(rl *r, const char *key, const rl_cost *costs, size_t n, rl_result *res)
{
    int rc;
    if (!r)
        return RL_EINVAL;
    if ((rc = rl__decide_read(r, &key, 1, costs, n, res)) != RL_GROUP_NONE)
        return rc;
    return rl__decide(r, &key, 1, costs, n, 0, res, NULL, NULL);
}

int rl_acquire_keys(rl *r, const char *const *keys, size_t nkeys, const rl_cost *costs, size_t n,
                    rl_result *res)
{
    if (!r)
        return RL_EINVAL;
    if (rl__decide_read(r, keys, nkeys, costs, n, res) == RL_OK)
        return RL_OK;
    return rl__decide(r, keys, nkeys, costs, n, 0, res, NULL, NULL);
}
