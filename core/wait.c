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
 *   - a cancellation (*cancel set, e.g. by a signal handler) is seen within
 *     10 ms; a reservation already booked is given back (rl_cancel);
 *   - RL_ETIMEOUT charges nothing: an admission that needs longer than the
 *     time left is refused before anything is booked;
 *   - a full concurrency limit is waited for by looking again every
 *     RL_SLOT_RETRY_NS at most (the decision's hint) until the deadline: a
 *     slot comes free when a holder ends its lease, which no reservation
 *     can foresee; nothing is booked meanwhile.
 */
#include "handle.h"

#include <signal.h>
#include <string.h>
#include <time.h>

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * RL_SECOND + ts.tv_nsec;
}

/* Sleeps until deadline (monotonic) in slices short enough that a
 * cancellation is seen within 10 ms. Returns 1 if cancelled. */
static int sleep_until(int64_t deadline, const volatile sig_atomic_t *cancel)
{
    for (;;) {
        int64_t left = deadline - mono_ns();
        struct timespec ts;
        if (cancel && *cancel)
            return 1;
        if (left <= 0)
            return 0;
        if (left > 5 * RL_MILLISECOND)
            left = 5 * RL_MILLISECOND;
        ts.tv_sec = 0;
        ts.tv_nsec = (long)left;
        nanosleep(&ts, NULL);
    }
}

int rl_wait_ex(rl *r, const char *key, const rl_cost *costs, size_t n, int priority,
               int64_t timeout_ns, const volatile sig_atomic_t *cancel, rl_result *res)
{
    rl_reservation rv;
    int64_t deadline = INT64_MAX, left, horizon, nap;
    int rc, first = 1;

    if (!r)
        return RL_EINVAL;
    if (!res)
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "result is NULL");
    memset(res, 0, sizeof *res);
    if (priority != RL_PRIORITY_INTERACTIVE && priority != RL_PRIORITY_BATCH)
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "unknown priority %d", priority);
    if (cancel && *cancel)
        return rl_seterr(rl__errbuf(r), RL_ECANCELED, "cancelled before waiting");
    if (timeout_ns < 0)
        timeout_ns = 0;
    for (;;) {
        /* The first decision may take the whole timeout: its delay counts
         * from its own clock reading, made once the store's lock is held, so
         * neither queuing for the lock nor deciding eats into the timeout.
         * The deadline for later ones starts once it is made. INT64_MAX
         * waits for ever. */
        if (first || timeout_ns == INT64_MAX)
            left = timeout_ns;
        else if ((left = deadline - mono_ns()) < 0)
            left = 0;
        /* interactive callers take their place in the queue at once; batch
         * callers only take room that is free now, and otherwise come back */
        horizon = priority == RL_PRIORITY_BATCH ? 0 : left;
        rc = rl__decide(r, &key, 1, costs, n, horizon, res, &rv, NULL);
        if (first)
            deadline = rl__sat_add(mono_ns(), timeout_ns);
        first = 0;
        if (rc != RL_OK)
            return rc;
        if (rv.ok)
            break;
        if (rv.delay_ns > left || rv.delay_ns == INT64_MAX) /* INT64_MAX: never */
            return rl_seterr(rl__errbuf(r), RL_ETIMEOUT,
                             "admission needs %lld ns, more than the time left to wait",
                             (long long)rv.delay_ns);
        if (rv.delay_ns > horizon) {
            nap = rv.delay_ns - horizon; /* until the rates have room */
        } else {
            /* refused within the horizon: a concurrency limit is full (its
             * hint is in res); look again then, or at the deadline */
            if (left <= 0)
                return rl_seterr(rl__errbuf(r), RL_ETIMEOUT,
                                 "limit '%s' stayed full for the whole wait (its slots are "
                                 "held by leases)",
                                 res->limit_name);
            nap = res->retry_after_ns > 0 ? res->retry_after_ns : RL_SLOT_RETRY_NS;
            if (nap > left)
                nap = left;
        }
        if (sleep_until(rl__sat_add(mono_ns(), nap), cancel)) {
            res->allowed = 0;
            return rl_seterr(rl__errbuf(r), RL_ECANCELED, "wait cancelled");
        }
    }
    if (sleep_until(rl__sat_add(mono_ns(), rv.delay_ns), cancel)) {
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
}

int rl_wait(rl *r, const char *key, int64_t cost, int64_t timeout_ns,
            const volatile sig_atomic_t *cancel, rl_result *res)
{
    rl_cost c;
    c.resource = "requests";
    c.amount = cost;
    return rl_wait_ex(r, key, &c, 1, RL_PRIORITY_INTERACTIVE, timeout_ns, cancel, res);
}
