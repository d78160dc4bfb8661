/*
 * wait.c - waiting until admitted: rl_wait, rl_wait_ex.
 *
 * A wait is a reservation (rl__decide with a horizon) followed by a sleep
 * until its time to act, so the units are booked while the caller sleeps
 * and nobody can take them meanwhile.
 *
 * Guarantees:
 *   - the timeout counts from the first decision's own clock reading,
 *     made once the store's lock is held: queuing for the lock and
 *     deciding do not eat into it; INT64_MAX waits for ever;
 *   - interactive callers take their place in the queue at once; batch
 *     callers only take room that is free now, and otherwise come back;
 *   - a wait sleeps until its time in one sleep (a futex wait on the cancel
 *     flag, or nanosleep without one), not in slices; a cancellation
 *     (*cancel set) is seen at once when the setter calls rl_wait_wake or
 *     sets it in a signal handler (the sleep ends with EINTR), else within
 *     RL_CANCEL_POLL_NS (100 ms), and within RL_SLOT_CANCEL_NS (10 ms) by a
 *     waiter for a concurrency slot; a reservation already booked is
 *     given back (rl_cancel);
 *   - RL_ETIMEOUT charges nothing: an admission that needs longer than the
 *     time left is refused before anything is booked;
 *   - batch callers age: once one has waited RL_BATCH_AGE_NS it takes its
 *     place in the queue like an interactive one, so it is never starved;
 *   - a full concurrency limit is waited for until the deadline by looking
 *     again when a slot is released (the store's slot_notify, any process)
 *     or every RL_SLOT_WAKE_NS at the latest (a holder that died or ran
 *     out of time releases nothing by itself); a store without the
 *     wake-up looks again every RL_SLOT_RETRY_NS at most. Nothing is
 *     booked meanwhile, and a waiter woken while the limit is still full
 *     writes nothing: it looks first from a read snapshot (leases that
 *     would be reclaimed freed in its copy) and sleeps again.
 *
 * rl__lease_wait waits for leases, and so for slots: a waiter that finds
 * a slot taken queues in the store (a waiter row: a lease that holds
 * nothing, format 2 of lease.c, owned like a lease so that a waiter that
 * dies or runs out of time leaves the queue), and a slot that comes free
 * goes to the live waiter with the earliest place (rl__rank_of: arrival,
 * batch RL_BATCH_AGE_NS later), whoever asks: a caller that did not wait
 * comes after every waiter. So waiters of one priority are served in
 * arrival order, across processes, each woken rather than polling.
 */
#include "handle.h"
#include "lease.h"

#include <linux/futex.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* The longest a slot waiter sleeps without a release: how late it sees a
 * slot freed by a holder that died or whose lease ran out. */
#define RL_SLOT_WAKE_NS (500 * RL_MILLISECOND)

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * RL_SECOND + ts.tv_nsec;
}

/* The longest one sleep of a waiter with a cancel flag lasts when nothing
 * wakes it: how late it sees a flag set by another thread that does not
 * call rl_wait_wake (a signal handler's interrupts the sleep). */
#define RL_CANCEL_POLL_NS (100 * RL_MILLISECOND)
/* A slot waiter's sleep is a futex on the store's word, not on the flag:
 * it looks at the flag this often. */
#define RL_SLOT_CANCEL_NS (10 * RL_MILLISECOND)

#ifdef RL_TEST_HOOKS
unsigned long rl__test_wait_sleeps;
int64_t rl__test_cancel_poll_ns;
#define COUNT_SLEEP() ((void)__atomic_fetch_add(&rl__test_wait_sleeps, 1, __ATOMIC_SEQ_CST))
#define CANCEL_POLL_NS (rl__test_cancel_poll_ns > 0 ? rl__test_cancel_poll_ns : RL_CANCEL_POLL_NS)
#else
#define COUNT_SLEEP() ((void)0)
#define CANCEL_POLL_NS RL_CANCEL_POLL_NS
#endif

_Static_assert(sizeof(sig_atomic_t) == sizeof(int), "the cancel flag is a futex word");

/* Whether the cancel flag is set: an atomic load, as another thread may
 * set it (a signal handler's store is seen as well). */
static int is_set(const volatile sig_atomic_t *cancel)
{
    return cancel && __atomic_load_n((const int *)(uintptr_t)cancel, __ATOMIC_ACQUIRE) != 0;
}

/* One sleep of ns at most on the cancel flag's word while it is 0: woken
 * early by rl_wait_wake (FUTEX_WAKE) or a signal (EINTR). Process-shared
 * futex operations: the flag may live in memory shared with another
 * process. */
static void flag_sleep(const volatile sig_atomic_t *cancel, int64_t ns)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(ns / RL_SECOND);
    ts.tv_nsec = (long)(ns % RL_SECOND);
    COUNT_SLEEP();
    if (cancel)
        (void)syscall(SYS_futex, (int *)(uintptr_t)cancel, FUTEX_WAIT, 0, &ts, NULL, 0);
    else
        nanosleep(&ts, NULL);
}

/* Sleeps until deadline (monotonic): one sleep, unless a cancellation, a
 * signal or RL_CANCEL_POLL_NS with a flag ends it first. Returns 1 if
 * cancelled. */
static int sleep_until_mono(int64_t deadline, const volatile sig_atomic_t *cancel)
{
    for (;;) {
        int64_t left = deadline - mono_ns();
        if (is_set(cancel))
            return 1;
        if (left <= 0)
            return 0;
        if (cancel && left > CANCEL_POLL_NS)
            left = CANCEL_POLL_NS;
        flag_sleep(cancel, left);
    }
}

/* Sleeps ns at most, until a slot is released (epoch moves) if the store
 * can tell, seeing a cancellation within RL_SLOT_CANCEL_NS. Returns 1 if
 * cancelled. */
static int sleep_for_slot(rl *r, int have_epoch, uint32_t epoch, int64_t ns,
                          const volatile sig_atomic_t *cancel)
{
    int64_t end = rl__sat_add(mono_ns(), ns), left;
    if (!have_epoch)
        return sleep_until_mono(end, cancel);
    for (;;) {
        uint32_t now_epoch;
        if (is_set(cancel))
            return 1;
        if ((left = end - mono_ns()) <= 0)
            return 0;
        if (cancel && left > RL_SLOT_CANCEL_NS)
            left = RL_SLOT_CANCEL_NS;
        COUNT_SLEEP();
        r->store->ops->slot_wait(r->store, epoch, left);
        if (r->store->ops->slot_epoch(r->store, &now_epoch) != RL_OK || now_epoch != epoch)
            return is_set(cancel);
    }
}

void rl_wait_wake(const volatile sig_atomic_t *cancel)
{
    if (cancel)
        (void)syscall(SYS_futex, (int *)(uintptr_t)cancel, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
}

/* A wait's clock, shared by rl_wait_ex and rl__lease_wait. The first
 * decision may take the whole timeout: its delay counts from its own clock
 * reading, made once the store's lock is held, so neither queuing for the
 * lock nor deciding eats into the timeout; the deadline for later ones
 * starts once it is made. RL_FOREVER waits for ever. */
typedef struct wait_clock {
    int64_t timeout, start, deadline;
    int priority, first;
} wait_clock;

static void wc_init(wait_clock *w, int64_t timeout_ns, int priority)
{
    w->timeout = timeout_ns < 0 ? 0 : timeout_ns;
    w->start = 0;
    w->deadline = INT64_MAX;
    w->priority = priority;
    w->first = 1;
}

/* Before a decision: the time left, and how far ahead it may book.
 * Interactive callers take their place in the queue at once; batch callers
 * only take room that is free now, and otherwise come back, until they
 * have waited RL_BATCH_AGE_NS: then they queue too. */
static void wc_next(const wait_clock *w, int64_t *left, int64_t *horizon)
{
    if (w->first || w->timeout == RL_FOREVER)
        *left = w->timeout;
    else if ((*left = w->deadline - mono_ns()) < 0)
        *left = 0;
    *horizon =
        w->priority == RL_PRIORITY_BATCH && (w->first || mono_ns() - w->start < RL_BATCH_AGE_NS)
            ? 0
            : *left;
}

/* After a decision: the first one starts the deadline. */
static void wc_decided(wait_clock *w)
{
    if (w->first) {
        w->start = mono_ns();
        w->deadline = rl__sat_add(w->start, w->timeout);
    }
    w->first = 0;
}

/* A batch waiter refused beyond its horizon sleeps until the rates have
 * room (delay past the horizon), or until it ages and queues, if sooner. */
static int64_t wc_batch_nap(const wait_clock *w, int64_t delay_past_horizon)
{
    int64_t nap = delay_past_horizon, age = w->start + RL_BATCH_AGE_NS - mono_ns();
    if (w->priority == RL_PRIORITY_BATCH && age < nap)
        nap = age;
    return nap > 0 ? nap : 0;
}

/* The epoch to wait on after the next decision, if the store has one. */
static int read_epoch(rl *r, uint32_t *epoch)
{
    return r->store->ops->slot_epoch && r->store->ops->slot_wait &&
           r->store->ops->slot_epoch(r->store, epoch) == RL_OK;
}

/* How long to sleep for a full concurrency limit: until a release wakes
 * us (RL_SLOT_WAKE_NS at most), or the decision's hint without wake-ups;
 * never past the time left. */
static int64_t slot_nap(int have_epoch, const rl_result *res, int64_t left)
{
    int64_t nap = have_epoch                ? RL_SLOT_WAKE_NS
                  : res->retry_after_ns > 0 ? res->retry_after_ns
                                            : RL_SLOT_RETRY_NS;
    return nap < left ? nap : left;
}

int rl_wait_ex(rl *r, const char *key, const rl_cost *costs, size_t n, int priority,
               int64_t timeout_ns, const volatile sig_atomic_t *cancel, rl_result *res)
{
    rl_reservation rv;
    wait_clock wc;
    int64_t left, horizon;
    uint32_t epoch = 0;
    int rc, have_epoch, woken = 0;
    rl__req peek;

    if (!r)
        return RL_EINVAL;
    if (!res)
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "result is NULL");
    memset(res, 0, sizeof *res);
    if (priority != RL_PRIORITY_INTERACTIVE && priority != RL_PRIORITY_BATCH)
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "unknown priority %d", priority);
    if (is_set(cancel))
        return rl_seterr(rl__errbuf(r), RL_ECANCELED, "cancelled before waiting");
    wc_init(&wc, timeout_ns, priority);
    memset(&peek, 0, sizeof peek);
    peek.keys = &key;
    peek.nkeys = 1;
    peek.costs = costs;
    peek.ncosts = n;
    peek.res = res;
    for (;;) {
        wc_next(&wc, &left, &horizon);
        have_epoch = read_epoch(r, &epoch);
        /* woken while a slot was awaited: a look from a read snapshot
         * first, and back to sleep without writing if it is still full */
        peek.max_delay_ns = horizon;
        if (woken && left > 0 && rl__decide_peek_full(r, &peek)) {
            if (sleep_for_slot(r, have_epoch, epoch, slot_nap(have_epoch, res, left), cancel))
                goto cancelled;
            continue;
        }
        woken = 0;
        rc = rl__decide(r, &key, 1, costs, n, horizon, res, &rv, NULL);
        wc_decided(&wc);
        if (rc != RL_OK)
            return rc;
        if (rv.ok)
            break;
        if (rv.delay_ns > left || rv.delay_ns == INT64_MAX) /* INT64_MAX: never */
            return rl_seterr(rl__errbuf(r), RL_ETIMEOUT,
                             "admission needs %lld ns, more than the time left to wait",
                             (long long)rv.delay_ns);
        if (rv.delay_ns > horizon) { /* until the rates have room */
            if (sleep_until_mono(rl__sat_add(mono_ns(), wc_batch_nap(&wc, rv.delay_ns - horizon)),
                                 cancel))
                goto cancelled;
        } else {
            /* refused within the horizon: a concurrency limit is full;
             * look again when a slot is released, or at the deadline */
            if (left <= 0)
                return rl_seterr(rl__errbuf(r), RL_ETIMEOUT,
                                 "limit '%s' stayed full for the whole wait (its slots are "
                                 "held by leases)",
                                 res->limit_name);
            if (sleep_for_slot(r, have_epoch, epoch, slot_nap(have_epoch, res, left), cancel))
                goto cancelled;
            woken = 1;
        }
    }
    if (sleep_until_mono(rl__sat_add(mono_ns(), rv.delay_ns), cancel)) {
        rc = rl_cancel(r, &rv);
        res->allowed = 0;
        if (rc != RL_OK)
            return rc;
        return rl_seterr(rl__errbuf(r), RL_ECANCELED,
                         "wait cancelled; its reservation was returned");
    }
    res->allowed = 1;
    res->retry_after_ns = 0;
    return RL_OK;
cancelled:
    res->allowed = 0;
    return rl_seterr(rl__errbuf(r), RL_ECANCELED, "wait cancelled");
}

int rl_wait(rl *r, const char *key, int64_t cost, int64_t timeout_ns,
            const volatile sig_atomic_t *cancel, rl_result *res)
{
    rl_cost c;
    c.resource = "requests";
    c.amount = cost;
    return rl_wait_ex(r, key, &c, 1, RL_PRIORITY_INTERACTIVE, timeout_ns, cancel, res);
}

/* ---- waiting for leases ----------------------------------------------------- */

typedef struct queue_arg {
    const char *const *keys;
    size_t nkeys;
    const rl_cost *est;
    size_t n;
    int priority;
    int64_t left;    /* the time left to wait: the waiter rows live that long */
    int64_t *id;     /* out (enqueue), in (dequeue): the rows, per key */
    int64_t created; /* out: when they were queued */
    rl_lease_rec rec;
} queue_arg;

/* The caller's waiter rows, one per key, with its estimate: its place in
 * the queue. They end with the wait (a margin past it, for a waiter that
 * is slow to take them out), or with their owner. */
static int enqueue_tx(rl *r, void *ctx)
{
    queue_arg *a = ctx;
    rl_lease_rec *rec = &a->rec;
    rl_row row;
    int64_t version, now = 0, expires;
    size_t k;
    int rc;
    for (k = 0; k < a->nkeys; k++) {
        /* read first: a remote store's clock and rows come with it */
        if ((rc = r->store->ops->row_get(r->store, a->keys[k], &row, &version)) != RL_OK)
            return rc;
        if (k == 0)
            now = rl__now(r);
        memset(rec, 0, sizeof *rec);
        expires = rl__sat_add(now, rl__sat_add(a->left, RL_SECOND));
        if (expires > rl__sat_add(now, RL_FILL_MAX))
            expires = rl__sat_add(now, RL_FILL_MAX);
        rl__lease_fill(rec, a->keys[k], now, expires, a->est, a->n);
        rec->waiting = 1;
        rec->priority = a->priority;
        if ((rc = r->store->ops->lease_put(r->store, rec)) != RL_OK)
            return rc;
        a->id[k] = rec->id;
    }
    a->created = now;
    return RL_OK;
}

/* The caller leaves the queue: those behind it move up, so they look again. */
static int dequeue_tx(rl *r, void *ctx)
{
    queue_arg *a = ctx;
    size_t k;
    int rc;
    for (k = 0; k < a->nkeys; k++)
        if (a->id[k] > 0 &&
            (rc = r->store->ops->lease_delete(r->store, a->keys[k], a->id[k])) != RL_OK)
            return rc;
    r->slot_freed = 1;
    return RL_OK;
}

int rl__lease_wait(rl *r, const char *const *keys, size_t nkeys, const rl_cost *est, size_t n,
                   rl_priority priority, int64_t ttl_ns, int64_t timeout_ns,
                   const volatile sig_atomic_t *cancel, rl_lease *leases, rl_result *res)
{
    rl_lease_rec *recs = NULL;
    rl_reservation rv;
    rl__req q;
    queue_arg qa;
    wait_clock wc;
    int64_t ids[RL_MAX_KEYS] = { 0 };
    int64_t left, horizon;
    uint32_t epoch = 0;
    size_t k;
    int rc, queued = 0, have_epoch, woken = 0;

    if (!r)
        return RL_EINVAL;
    if (!res || !leases)
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "result or leases NULL");
    memset(res, 0, sizeof *res);
    if (nkeys < 1 || nkeys > RL_MAX_KEYS)
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "between 1 and %d keys", RL_MAX_KEYS);
    memset(leases, 0, nkeys * sizeof *leases);
    if (priority != RL_PRIORITY_INTERACTIVE && priority != RL_PRIORITY_BATCH)
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "unknown priority %d", (int)priority);
    if (ttl_ns <= 0 || ttl_ns > RL_FILL_MAX)
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "lease TTL must be positive (at most 50 years)");
    if (is_set(cancel))
        return rl_seterr(rl__errbuf(r), RL_ECANCELED, "cancelled before waiting");
    if (!(recs = calloc(nkeys, sizeof *recs)))
        return rl_seterr(rl__errbuf(r), RL_ENOMEM, "out of memory");
    memset(&qa, 0, sizeof qa);
    qa.keys = keys;
    qa.nkeys = nkeys;
    qa.est = est;
    qa.n = n;
    qa.priority = priority;
    qa.id = ids;
    wc_init(&wc, timeout_ns, priority);
    for (;;) {
        wc_next(&wc, &left, &horizon);
        memset(&q, 0, sizeof q);
        q.keys = keys;
        q.nkeys = nkeys;
        q.costs = est;
        q.ncosts = n;
        q.max_delay_ns = horizon;
        q.ttl = ttl_ns;
        q.lease = recs;
        q.res = res;
        q.rv = &rv;
        q.rank = queued ? rl__rank_of(qa.created, priority) : 0;
        q.wait_id = queued ? ids : NULL;
        have_epoch = read_epoch(r, &epoch);
        /* woken in the queue: still full from a read snapshot, back to
         * sleep without writing */
        if (woken && left > 0 && rl__decide_peek_full(r, &q)) {
            if (sleep_for_slot(r, have_epoch, epoch, slot_nap(have_epoch, res, left), cancel))
                goto cancelled;
            continue;
        }
        woken = 0;
        rc = rl__decide_req(r, &q);
        wc_decided(&wc);
        if (rc != RL_OK)
            goto out;
        if (rv.ok) {
            queued = 0; /* its rows went with the admission */
            break;
        }
        if (rv.delay_ns > left || rv.delay_ns == INT64_MAX) {
            rc = rl_seterr(rl__errbuf(r), RL_ETIMEOUT,
                           "admission needs %lld ns, more than the time left to wait",
                           (long long)rv.delay_ns);
            goto out;
        }
        if (rv.delay_ns > horizon) { /* a batch waiter, before its rates have room */
            if (sleep_until_mono(rl__sat_add(mono_ns(), wc_batch_nap(&wc, rv.delay_ns - horizon)),
                                 cancel))
                goto cancelled;
            continue;
        }
        /* a concurrency limit is full, or its free slots are for waiters
         * queued before us */
        if (left <= 0) {
            rc = rl_seterr(rl__errbuf(r), RL_ETIMEOUT,
                           "limit '%s' stayed full for the whole wait (its slots are held by "
                           "leases)",
                           res->limit_name);
            goto out;
        }
        if (!queued) { /* take a place in the queue, then look again at once */
            qa.left = left;
            if ((rc = rl__write_tx(r, enqueue_tx, NULL, &qa)) != RL_OK)
                goto out;
            queued = 1;
            continue;
        }
        if (sleep_for_slot(r, have_epoch, epoch, slot_nap(have_epoch, res, left), cancel))
            goto cancelled;
        woken = 1;
    }
    for (k = 0; k < nkeys; k++) {
        leases[k].id = recs[k].id;
        leases[k].expires_at = recs[k].expires;
    }
    /* the rates let it act after rv.delay_ns: it holds its slots meanwhile */
    if (sleep_until_mono(rl__sat_add(mono_ns(), rv.delay_ns), cancel)) {
        for (k = 0; k < nkeys; k++)
            if ((rc = rl_lease_cancel(r, &leases[k])) != RL_OK)
                break;
        memset(leases, 0, nkeys * sizeof *leases);
        res->allowed = 0;
        if (rc == RL_OK)
            rc = rl_seterr(rl__errbuf(r), RL_ECANCELED, "wait cancelled; its leases were returned");
        goto out;
    }
    res->allowed = 1;
    res->retry_after_ns = 0;
    rc = RL_OK;
    goto out;
cancelled:
    res->allowed = 0;
    rc = rl_seterr(rl__errbuf(r), RL_ECANCELED, "wait cancelled");
out:
    if (queued) {
        /* leave the queue; the outcome is the wait's, not this cleanup's
         * (a row left behind ends with its time or its owner) */
        char keep[RL_ERRMSG_MAX];
        snprintf(keep, sizeof keep, "%s", rl__errbuf(r));
        (void)rl__write_tx(r, dequeue_tx, NULL, &qa);
        snprintf(rl__errbuf(r), RL_ERRMSG_MAX, "%s", keep);
    }
    free(recs);
    return rc;
}
