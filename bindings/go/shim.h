/*
 * shim.h - the C side of the Go binding: every librl call the Go code makes
 * goes through one of these, which also copies rl_errmsg into the caller's
 * buffer before returning.
 *
 * Why: rl_errmsg is per thread, and a goroutine may move to another OS
 * thread between two cgo calls, so reading the message in a second cgo call
 * could read another call's message. One C call runs on one thread.
 */
#ifndef RLGO_SHIM_H
#define RLGO_SHIM_H

#include <rl.h>
#include <rl_admin.h>
#include <rl_http.h>

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#define RLGO_ERRLEN 256

int rlgo_open(rl **out, const char *path, const rl_options *o, int64_t *clock_ctx, char *err);
int rlgo_allow(rl *r, const char *key, int64_t cost, rl_result *res, char *err);
int rlgo_acquire(rl *r, const char *const *keys, size_t nkeys, const rl_cost *costs, size_t n,
                 rl_result *res, char *err);
int rlgo_wait_ex(rl *r, const char *key, const rl_cost *costs, size_t n, int prio,
                 int64_t timeout_ns, const volatile sig_atomic_t *cancel, rl_result *res,
                 char *err);
int rlgo_reserve(rl *r, const char *key, int64_t cost, int64_t max_delay_ns, rl_reservation *rv,
                 char *err);
int rlgo_cancel(rl *r, rl_reservation *rv, char *err);
int rlgo_lease_begin(rl *r, const char *key, const rl_cost *est, size_t n, int64_t ttl_ns,
                     rl_lease *lease, rl_result *res, char *err);
int rlgo_lease_settle(rl *r, const rl_lease *lease, const rl_cost *actual, size_t n, char *err);
int rlgo_lease_cancel(rl *r, const rl_lease *lease, char *err);
int rlgo_guard_begin(rl *r, const char *const *keys, size_t nkeys, const rl_cost *est, size_t n,
                     int prio, int64_t timeout_ns, int64_t ttl_ns, int cooldown_key,
                     const volatile sig_atomic_t *cancel, rl_guard *g, rl_result *res, char *err);
int rlgo_guard_end(rl *r, rl_guard *g, const rl_cost *actual, size_t n, const char *const *names,
                   const char *const *values, size_t nh, rl_result *res, char *err);
int rlgo_guard_cancel(rl *r, rl_guard *g, char *err);
int rlgo_penalize(rl *r, const char *key, const char *resource, int64_t ns, char *err);
int rlgo_observe_headers(rl *r, const char *key, const char *const *names,
                         const char *const *values, size_t n, char *err);
int rlgo_stats(rl *r, const char *key, rl_key_stats *st, char *err);
int rlgo_reset(rl *r, const char *key, char *err);
int rlgo_totals(rl *r, rl_totals *t, char *err);
/* *out is malloc'd (free it with free()) and holds *n stats. */
int rlgo_keys_list(rl *r, const char *match, int sort, size_t limit, rl_key_stats **out, size_t *n,
                   char *err);
int rlgo_load_tiers(rl *r, const char *path, char *err);
int rlgo_key_assign(rl *r, const char *key, const char *tier, char *err);
int rlgo_tier_set(rl *r, const char *tier, const rl_limit *limits, size_t n, char *err);

/* The cancel flag of a wait: written by a Go goroutine, which then wakes
 * (rl_wait_wake) the rl_wait sleeping on it in another thread; both sides
 * go through volatile C accesses. */
volatile sig_atomic_t *rlgo_flag_new(void);
void rlgo_flag_set(volatile sig_atomic_t *f);

/* A manual clock for deterministic programs and tests: an int64 of C memory
 * read atomically by rl's clock callback. */
int64_t *rlgo_clock_new(int64_t start);
void rlgo_clock_store(int64_t *c, int64_t v);
int64_t rlgo_clock_load(int64_t *c);

#endif
