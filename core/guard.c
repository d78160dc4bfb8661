/*
 * guard.c - one guard around a model call: rl_guard_begin, rl_guard_end,
 * rl_guard_cancel.
 *
 * A guard is a set of leases, one per key, taken together by
 * rl__lease_wait (wait.c) and ended together here.
 *
 * Guarantees:
 *   - all or nothing: rl_guard_begin holds every key's lease or none, and
 *     a refusal by a limit (at once, or past the timeout) is RL_ELIMITED
 *     with res naming the limit, its key and when to retry;
 *   - rl_guard_end writes the response headers' cool-down before it frees
 *     any slot, so a waiter woken by the freed slot already meets the
 *     cool-down; it then settles every lease, trying each whatever failed
 *     before, and leaves the guard empty (a lease it could not settle ends
 *     at its TTL, settled at its estimate: never under-charged);
 *   - bad arguments to rl_guard_end change nothing, the guard still holds
 *     its leases; rl_guard_cancel of a guard that holds nothing is RL_OK
 *     and does nothing, so cleanup code may always call it;
 *   - the guard keeps no pointer to the caller's memory: keys and the
 *     estimate are copied into it.
 */
#include "handle.h"

#include <stdio.h>
#include <string.h>

/* Whether a/ab is less room than b/bb (bursts > 0), cross-multiplied in
 * 128 bits. */
static int less_room(int64_t a, int64_t ab, int64_t b, int64_t bb)
{
    __extension__ typedef __int128 wide;
    return (wide)a * bb < (wide)b * ab;
}

/* The stats of the estimate's resources over the guard's keys, after the
 * call: the limit with least room (remaining / burst, compared in 128
 * bits), or a cool-down that stops one of the resources. */
static int guard_stats(rl *r, const rl_guard *g, rl_result *res)
{
    rl_key_stats st;
    int64_t best_rem = INT64_MAX, best_burst = 1, cool = 0;
    size_t k, i, j;
    int rc, cool_key = 0, found = 0;
    memset(res, 0, sizeof *res);
    res->remaining = INT64_MAX;
    for (k = 0; k < g->n; k++) {
        if ((rc = rl_stats(r, g->key_[k], &st)) != RL_OK)
            return rc;
        if (st.cooldown_ns > cool) {
            cool = st.cooldown_ns;
            cool_key = (int)k;
        }
        for (i = 0; i < st.n_limits; i++) {
            const rl_limit_stats *l = &st.limits[i];
            int64_t burst = l->burst > 0 ? l->burst : l->count;
            for (j = 0; j < g->ncost_ && strcmp(g->resource_[j], l->resource) != 0; j++)
                ;
            if (j == g->ncost_ || burst <= 0)
                continue; /* a resource this call does not use */
            if (l->cooldown_ns > cool) {
                cool = l->cooldown_ns;
                cool_key = (int)k;
            }
            if (found && !less_room(l->remaining, burst, best_rem, best_burst))
                continue;
            found = 1;
            best_rem = l->remaining;
            best_burst = burst;
            res->limit = burst;
            res->remaining = l->remaining;
            res->reset_after_ns = l->reset_after_ns;
            res->key_index = (int)k;
            snprintf(res->limit_name, sizeof res->limit_name, "%s", l->name);
        }
    }
    res->allowed = 1;
    if (cool > 0) {
        /* as a decision refused by the cool-down says it */
        res->allowed = 0;
        res->limit = 0;
        res->remaining = 0;
        res->retry_after_ns = cool;
        if (res->reset_after_ns < cool)
            res->reset_after_ns = cool;
        res->key_index = cool_key;
        snprintf(res->limit_name, sizeof res->limit_name, "cooldown");
    }
    return RL_OK;
}

int rl_guard_begin(rl *r, const char *const *keys, size_t nkeys, const rl_cost *estimate, size_t n,
                   rl_priority priority, int64_t timeout_ns, const rl_guard_options *opts,
                   rl_guard *guard, rl_result *res)
{
    static const rl_guard_options defaults = RL_GUARD_OPTIONS_INIT;
    rl_lease leases[RL_MAX_KEYS];
    int rc, cool;
    size_t k;
    if (!r)
        return RL_EINVAL;
    if (!guard || !res)
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "%s is NULL", guard ? "result" : "guard");
    memset(guard, 0, sizeof *guard);
    memset(res, 0, sizeof *res);
    if (!opts)
        opts = &defaults;
    if (opts->version < 1 || opts->version > RL_GUARD_OPTIONS_VERSION) {
        rc = rl_seterr(rl__errbuf(r), RL_EINVAL,
                       "guard options version %u unknown (this library knows 1 to %d)",
                       opts->version, RL_GUARD_OPTIONS_VERSION);
        goto out;
    }
    if (opts->ttl_ns <= 0 || opts->ttl_ns > RL_FILL_MAX) {
        rc = rl_seterr(rl__errbuf(r), RL_EINVAL, "guard TTL must be positive (at most 50 years)");
        goto out;
    }
    if ((rc = rl__check_request(r, keys, nkeys, estimate, n)) != RL_OK)
        goto out;
    cool = opts->cooldown_key < 0 ? (int)nkeys - 1 : opts->cooldown_key;
    if (opts->cooldown_key < -1 || (size_t)cool >= nkeys) {
        rc = rl_seterr(rl__errbuf(r), RL_EINVAL, "cool-down key %d is not one of the %zu keys",
                       opts->cooldown_key, nkeys);
        goto out;
    }
    if (priority != RL_PRIORITY_INTERACTIVE && priority != RL_PRIORITY_BATCH) {
        rc = rl_seterr(rl__errbuf(r), RL_EINVAL, "unknown priority %d", (int)priority);
        goto out;
    }
    if (timeout_ns < 0)
        timeout_ns = 0;
    memset(leases, 0, sizeof leases);
    rc = rl__lease_wait(r, keys, nkeys, estimate, n, priority, opts->ttl_ns, timeout_ns,
                        opts->cancel, leases, res);
    /* what rl_guard_end needs, kept whether or not the leases came: a
     * fail-open admission (degraded) still feeds the headers */
    guard->cooldown_key_ = cool;
    guard->ncost_ = n;
    for (k = 0; k < n; k++) {
        snprintf(guard->resource_[k], sizeof guard->resource_[k], "%s",
                 rl__resource_of(&estimate[k]));
        guard->est_[k] = estimate[k].amount;
    }
    for (k = 0; k < nkeys; k++)
        snprintf(guard->key_[k], sizeof guard->key_[k], "%s", keys[k]);
    if (rc == RL_OK) {
        guard->n = nkeys;
        memcpy(guard->lease, leases, nkeys * sizeof leases[0]);
    } else if (rc == RL_ETIMEOUT) {
        /* the wait ran out or would have: a limit refused, res says which */
        char when[32] = "never";
        k = res->key_index >= 0 && (size_t)res->key_index < nkeys ? (size_t)res->key_index : 0;
        if (res->retry_after_ns != INT64_MAX) {
            int64_t ms = res->retry_after_ns / RL_MILLISECOND +
                         (res->retry_after_ns % RL_MILLISECOND != 0); /* rounded up */
            snprintf(when, sizeof when, "in %lld ms", (long long)ms);
        }
        res->allowed = 0;
        rc = rl_seterr(rl__errbuf(r), RL_ELIMITED, "refused by limit '%s' of key '%.64s': retry %s",
                       res->limit_name, keys[k], when);
    } else if (rl__store_failure(rc) && res->allowed) {
        guard->degraded_ = 1; /* RL_FAIL_OPEN: the caller may go ahead unguarded */
    }
out:
    if (rc != RL_OK && !guard->degraded_)
        memset(guard, 0, sizeof *guard);
    return rc;
}

/* Keeps the first failure of several calls, with its message (each call
 * that succeeds afterwards clears the handle's message). */
static void first_error(rl *r, int *rc, int rc2, char *msg)
{
    if (*rc == RL_OK && rc2 != RL_OK) {
        *rc = rc2;
        snprintf(msg, RL_ERRMSG_MAX, "%s", rl_errmsg(r));
    }
}

/* Returns rc, with msg as the handle's message. */
static int report(rl *r, int rc, const char *msg)
{
    if (rc == RL_OK)
        return RL_OK;
    return rl_seterr(rl__errbuf(r), rc, "%s", msg);
}

int rl_guard_end(rl *r, rl_guard *guard, const rl_cost *actual, size_t n, const char *const *names,
                 const char *const *values, size_t nheaders, rl_result *res)
{
    rl_cost est[RL_MAX_LIMITS];
    const char *key = "k";
    char msg[RL_ERRMSG_MAX] = "";
    size_t k;
    int rc = RL_OK;
    if (!r)
        return RL_EINVAL;
    if (!guard || (guard->n == 0 && !guard->degraded_) || guard->n > RL_MAX_KEYS ||
        guard->ncost_ > RL_MAX_LIMITS || guard->cooldown_key_ < 0 ||
        guard->cooldown_key_ >= RL_MAX_KEYS ||
        (guard->n && (size_t)guard->cooldown_key_ >= guard->n))
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "not a guard that holds leases");
    if (nheaders && (!names || !values))
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "header names or values are NULL");
    if (actual && (rc = rl__check_request(r, &key, 1, actual, n)) != RL_OK)
        return rc;
    if (!actual && n)
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "actual costs are NULL");
    if (!actual) {
        /* settled at the estimate: what the service counted, as far as we
         * know (rl_lease_settle needs at least one cost) */
        for (k = 0; k < guard->ncost_; k++) {
            est[k].resource = guard->resource_[k];
            est[k].amount = guard->est_[k];
        }
        actual = est;
        n = guard->ncost_;
    }
    /* the cool-down first: a slot freed below wakes a waiter, which must
     * already meet it */
    if (nheaders)
        first_error(
            r, &rc,
            rl_observe_headers(r, guard->key_[guard->cooldown_key_], names, values, nheaders), msg);
    for (k = 0; k < guard->n; k++)
        first_error(r, &rc, rl_lease_settle(r, &guard->lease[k], actual, n), msg);
    if (res)
        first_error(r, &rc, guard_stats(r, guard, res), msg);
    memset(guard, 0, sizeof *guard);
    return report(r, rc, msg);
}

int rl_guard_cancel(rl *r, rl_guard *guard)
{
    char msg[RL_ERRMSG_MAX] = "";
    size_t k;
    int rc = RL_OK;
    if (!r)
        return RL_EINVAL;
    if (!guard)
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "guard is NULL");
    for (k = 0; k < guard->n && k < RL_MAX_KEYS; k++)
        first_error(r, &rc, rl_lease_cancel(r, &guard->lease[k]), msg);
    memset(guard, 0, sizeof *guard);
    return report(r, rc, msg);
}
