/*
 * shim.c - see shim.h: librl calls that return their error message from the
 * same thread, plus the few C-memory helpers cgo's pointer rules call for.
 */
#include "shim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int done(rl *r, int rc, char *err)
{
    if (rc != RL_OK && err != NULL)
        snprintf(err, RLGO_ERRLEN, "%s", r != NULL ? rl_errmsg(r) : rl_strerror(rc));
    return rc;
}

static int64_t manual_clock(void *ctx)
{
    return __atomic_load_n((int64_t *)ctx, __ATOMIC_SEQ_CST);
}

int rlgo_open(rl **out, const char *path, const rl_options *o, int64_t *clock_ctx, char *err)
{
    rl_options copy = *o;
    int rc;
    if (clock_ctx != NULL) {
        copy.clock = manual_clock;
        copy.clock_ctx = clock_ctx;
    }
    *out = NULL;
    rc = rl_open(out, path, &copy);
    if (rc != RL_OK) {
        done(*out, rc, err);
        rl_close(*out);
        *out = NULL;
    }
    return rc;
}

int rlgo_allow(rl *r, const char *key, int64_t cost, rl_result *res, char *err)
{
    return done(r, rl_allow(r, key, cost, res), err);
}

int rlgo_acquire(rl *r, const char *const *keys, size_t nkeys, const rl_cost *costs, size_t n,
                 rl_result *res, char *err)
{
    if (nkeys == 1)
        return done(r, rl_acquire(r, keys[0], costs, n, res), err);
    return done(r, rl_acquire_keys(r, keys, nkeys, costs, n, res), err);
}

int rlgo_wait_ex(rl *r, const char *key, const rl_cost *costs, size_t n, int prio,
                 int64_t timeout_ns, const volatile sig_atomic_t *cancel, rl_result *res, char *err)
{
    return done(r, rl_wait_ex(r, key, costs, n, (rl_priority)prio, timeout_ns, cancel, res), err);
}

int rlgo_reserve(rl *r, const char *key, int64_t cost, int64_t max_delay_ns, rl_reservation *rv,
                 char *err)
{
    return done(r, rl_reserve(r, key, cost, max_delay_ns, rv), err);
}

int rlgo_cancel(rl *r, rl_reservation *rv, char *err)
{
    return done(r, rl_cancel(r, rv), err);
}

int rlgo_lease_begin(rl *r, const char *key, const rl_cost *est, size_t n, int64_t ttl_ns,
                     rl_lease *lease, rl_result *res, char *err)
{
    return done(r, rl_lease_begin(r, key, est, n, ttl_ns, lease, res), err);
}

int rlgo_lease_settle(rl *r, const rl_lease *lease, const rl_cost *actual, size_t n, char *err)
{
    return done(r, rl_lease_settle(r, lease, actual, n), err);
}

int rlgo_lease_cancel(rl *r, const rl_lease *lease, char *err)
{
    return done(r, rl_lease_cancel(r, lease), err);
}

int rlgo_guard_begin(rl *r, const char *const *keys, size_t nkeys, const rl_cost *est, size_t n,
                     int prio, int64_t timeout_ns, int64_t ttl_ns, int cooldown_key,
                     const volatile sig_atomic_t *cancel, rl_guard *g, rl_result *res, char *err)
{
    rl_guard_options o = RL_GUARD_OPTIONS_INIT;
    if (ttl_ns > 0)
        o.ttl_ns = ttl_ns;
    o.cooldown_key = cooldown_key;
    o.cancel = cancel;
    return done(
        r, rl_guard_begin(r, keys, nkeys, est, n, (rl_priority)prio, timeout_ns, &o, g, res), err);
}

int rlgo_guard_end(rl *r, rl_guard *g, const rl_cost *actual, size_t n, const char *const *names,
                   const char *const *values, size_t nh, rl_result *res, char *err)
{
    return done(r, rl_guard_end(r, g, actual, n, names, values, nh, res), err);
}

int rlgo_guard_cancel(rl *r, rl_guard *g, char *err)
{
    return done(r, rl_guard_cancel(r, g), err);
}

int rlgo_penalize(rl *r, const char *key, const char *resource, int64_t ns, char *err)
{
    return done(r, rl_penalize(r, key, resource, ns), err);
}

int rlgo_observe_headers(rl *r, const char *key, const char *const *names,
                         const char *const *values, size_t n, char *err)
{
    return done(r, rl_observe_headers(r, key, names, values, n), err);
}

int rlgo_stats(rl *r, const char *key, rl_key_stats *st, char *err)
{
    return done(r, rl_stats(r, key, st), err);
}

int rlgo_reset(rl *r, const char *key, char *err)
{
    return done(r, rl_reset(r, key), err);
}

int rlgo_totals(rl *r, rl_totals *t, char *err)
{
    return done(r, rl_totals_get(r, t), err);
}

typedef struct keys_acc {
    rl_key_stats *v;
    size_t n, cap;
} keys_acc;

/* Runs under the handle's lock: only copies, never calls rl. */
static int collect_key(void *ctx, const rl_key_stats *st)
{
    keys_acc *a = ctx;
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        rl_key_stats *v = realloc(a->v, cap * sizeof *v);
        if (v == NULL)
            return RL_ENOMEM;
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = *st;
    return 0;
}

int rlgo_keys_list(rl *r, const char *match, int sort, size_t limit, rl_key_stats **out, size_t *n,
                   char *err)
{
    keys_acc a = { NULL, 0, 0 };
    int rc = rl_keys_list(r, match, (rl_sort)sort, limit, collect_key, &a);
    if (rc != RL_OK) {
        free(a.v);
        *out = NULL;
        *n = 0;
        if (rc == RL_ENOMEM) { /* ours: the handle's message would say "no error" */
            snprintf(err, RLGO_ERRLEN, "out of memory listing keys");
            return rc;
        }
        return done(r, rc, err);
    }
    *out = a.v;
    *n = a.n;
    return RL_OK;
}

int rlgo_load_tiers(rl *r, const char *path, char *err)
{
    return done(r, rl_load_tiers(r, path), err);
}

int rlgo_key_assign(rl *r, const char *key, const char *tier, char *err)
{
    return done(r, rl_key_assign(r, key, tier), err);
}

int rlgo_tier_set(rl *r, const char *tier, const rl_limit *limits, size_t n, char *err)
{
    return done(r, rl_tier_set(r, tier, limits, n), err);
}

volatile sig_atomic_t *rlgo_flag_new(void)
{
    volatile sig_atomic_t *f = malloc(sizeof *f);
    if (f != NULL)
        *f = 0;
    return f;
}

void rlgo_flag_set(volatile sig_atomic_t *f)
{
    *f = 1;
    rl_wait_wake(f); /* a wait asleep on it ends now, not at its next look */
}

int64_t *rlgo_clock_new(int64_t start)
{
    int64_t *c = malloc(sizeof *c);
    if (c != NULL)
        __atomic_store_n(c, start, __ATOMIC_SEQ_CST);
    return c;
}

void rlgo_clock_store(int64_t *c, int64_t v)
{
    __atomic_store_n(c, v, __ATOMIC_SEQ_CST);
}

int64_t rlgo_clock_load(int64_t *c)
{
    return __atomic_load_n(c, __ATOMIC_SEQ_CST);
}
