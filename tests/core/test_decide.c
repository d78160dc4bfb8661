/*
 * test_decide.c - core/decide.c and core/group.c through the API, on every
 * store (api_fixture.h): rl_allow (burst and refill, per-key isolation,
 * costs and keys checked, all-or-nothing across limits, a cost of 0, sliding
 * windows alone and with GCRA, clocks before the epoch and near the end of
 * int64 time, saturating counters), rl_acquire, rl_acquire_keys,
 * rl_allow_batch, and a group-commit leader deciding another process's
 * failing request (SQLite, forked processes); issue 17: a decision that
 * names a concurrency limit checks it, a resource no limit knows is
 * RL_ENOLIMIT (unless the handle opts in), a fail-closed refusal carries a
 * back-off hint.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api_fixture.h"
#include "lock.h"   /* rl__lock_hook: pausing a group-commit leader */
#include "rl_int.h" /* rl__store: counters written as a long-lived key has them */

static void test_allow_burst_and_refill(void **state)
{
    fixture *f = *state;
    rl_result res;
    int i;
    for (i = 0; i < 10; i++) {
        assert_int_equal(rl_allow(f->r, "user:alice", 1, &res), RL_OK);
        assert_true(res.allowed);
        assert_int_equal(res.remaining, 9 - i);
        assert_int_equal(res.limit, 10);
        assert_string_equal(res.limit_name, "rps");
    }
    assert_int_equal(rl_allow(f->r, "user:alice", 1, &res), RL_OK);
    assert_false(res.allowed);
    assert_int_equal(res.retry_after_ns, 100 * RL_MILLISECOND);
    assert_int_equal(res.reset_after_ns, RL_SECOND);
    assert_int_equal(res.degraded, 0);
    f->now += 100 * RL_MILLISECOND;
    assert_int_equal(rl_allow(f->r, "user:alice", 1, &res), RL_OK);
    assert_true(res.allowed);
}

static void test_keys_are_isolated(void **state)
{
    fixture *f = *state;
    rl_result res;
    assert_int_equal(rl_allow(f->r, "a", 10, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_allow(f->r, "a", 1, &res), RL_OK);
    assert_false(res.allowed);
    assert_int_equal(rl_allow(f->r, "b", 10, &res), RL_OK);
    assert_true(res.allowed);
}

static void test_cost_checks(void **state)
{
    fixture *f = *state;
    rl_result res;
    assert_int_equal(rl_allow(f->r, "k", 11, &res), RL_ETOOBIG);
    assert_non_null(strstr(rl_errmsg(f->r), "burst"));
    assert_int_equal(rl_allow(f->r, "k", INT64_MAX, &res), RL_ETOOBIG);
    assert_int_equal(rl_allow(f->r, "k", -1, &res), RL_EINVAL);
    assert_int_equal(rl_allow(f->r, "k", 0, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(res.remaining, 10);
}

static void test_bad_keys(void **state)
{
    fixture *f = *state;
    rl_result res;
    char longkey[RL_KEY_MAX + 2];
    memset(longkey, 'x', sizeof longkey);
    longkey[RL_KEY_MAX + 1] = 0;
    assert_int_equal(rl_allow(f->r, "", 1, &res), RL_EINVAL);
    assert_int_equal(rl_allow(f->r, NULL, 1, &res), RL_EINVAL);
    assert_int_equal(rl_allow(f->r, longkey, 1, &res), RL_EINVAL);
    longkey[RL_KEY_MAX] = 0; /* exactly the maximum is fine */
    assert_int_equal(rl_allow(f->r, longkey, 1, &res), RL_OK);
    assert_int_equal(rl_allow(f->r, "tab\there", 1, &res), RL_EINVAL);
    assert_int_equal(rl_allow(f->r, "bad\xff", 1, &res), RL_EINVAL);
    assert_int_equal(rl_allow(f->r, "over\xc0\xaflong", 1, &res), RL_EINVAL);
    /* SQL metacharacters and UTF-8 are stored verbatim */
    assert_int_equal(rl_allow(f->r, "x'; DROP TABLE rl_keys; --", 1, &res), RL_OK);
    assert_int_equal(rl_allow(f->r, "usér:ünïcode:日本", 1, &res), RL_OK);
    {
        rl_key_stats st;
        assert_int_equal(rl_stats(f->r, "x'; DROP TABLE rl_keys; --", &st), RL_OK);
        assert_int_equal(st.allowed, 1);
        assert_string_equal(st.key, "x'; DROP TABLE rl_keys; --");
    }
}

/* One decision checks every limit and consumes from all or none. */
static void test_all_or_nothing(void **state)
{
    fixture *f = *state;
    static const rl_limit two[] = { RL_LIMIT("rps", NULL, 2, RL_SECOND, 2),
                                    RL_LIMIT("rpm", NULL, 3, RL_MINUTE, 3) };
    rl_result res;
    rl_key_stats st;
    assert_int_equal(rl_tier_set(f->r, "default", two, 2), RL_OK);
    assert_int_equal(rl_allow(f->r, "k", 1, &res), RL_OK);
    assert_true(res.allowed);
    assert_string_equal(res.limit_name, "rps"); /* 1/2 left is less room than 2/3 */
    assert_int_equal(rl_allow(f->r, "k", 1, &res), RL_OK);
    assert_true(res.allowed);
    assert_string_equal(res.limit_name, "rps");
    assert_int_equal(rl_allow(f->r, "k", 1, &res), RL_OK);
    assert_false(res.allowed); /* rps is empty */
    assert_string_equal(res.limit_name, "rps");
    assert_int_equal(rl_stats(f->r, "k", &st), RL_OK);
    assert_int_equal(st.n_limits, 2);
    assert_int_equal(st.limits[1].remaining, 1); /* rpm untouched by the refusal */
    f->now += RL_SECOND;
    assert_int_equal(rl_allow(f->r, "k", 1, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_allow(f->r, "k", 1, &res), RL_OK);
    assert_false(res.allowed); /* rpm is empty now; rps had room */
    assert_string_equal(res.limit_name, "rpm");
    assert_int_equal(res.retry_after_ns, 19 * RL_SECOND); /* the first unit back at T0+20s */
    assert_int_equal(rl_stats(f->r, "k", &st), RL_OK);
    assert_int_equal(st.limits[0].remaining, 1); /* rps untouched by the refusal */
}

/* Issue 15, item 9: a cost of 0 checks. It is admitted unless units are owed
 * beyond an empty bucket or a full window, as AllowN(now, 0) in
 * golang.org/x/time/rate; then retry_after_ns says when it will be. */
static void test_zero_cost_check(void **state)
{
    fixture *f = *state;
    static const rl_limit win[] = { RL_SLIDING_WINDOW("rpm", NULL, 2, RL_MINUTE) };
    rl_cost est = { "requests", 1 }, actual = { "requests", 4 };
    rl_reservation a;
    rl_lease l;
    rl_result res;
    /* token bucket: empty is still a pass; a reservation ahead is owed */
    assert_int_equal(rl_allow(f->r, "r", 10, &res), RL_OK);
    assert_int_equal(rl_allow(f->r, "r", 0, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_reserve(f->r, "r", 1, RL_SECOND, &a), RL_OK);
    assert_true(a.ok);
    assert_int_equal(rl_allow(f->r, "r", 0, &res), RL_OK);
    assert_false(res.allowed);
    assert_int_equal(res.retry_after_ns, 100 * RL_MILLISECOND);
    f->now += 100 * RL_MILLISECOND;
    assert_int_equal(rl_allow(f->r, "r", 0, &res), RL_OK);
    assert_true(res.allowed);
    /* sliding window: a lease overrun counts 4 on a window of 2 */
    assert_int_equal(rl_tier_set(f->r, "w", win, 1), RL_OK);
    assert_int_equal(rl_key_assign(f->r, "u", "w"), RL_OK);
    assert_int_equal(rl_lease_begin(f->r, "u", &est, 1, RL_MINUTE, &l, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_lease_settle(f->r, &l, &actual, 1), RL_OK);
    assert_int_equal(rl_allow(f->r, "u", 0, &res), RL_OK);
    assert_false(res.allowed);
    assert_true(res.retry_after_ns > 0);
    f->now += res.retry_after_ns;
    assert_int_equal(rl_allow(f->r, "u", 0, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(res.remaining, 0); /* estimate == count: a pass, no room */
}

/* Several resources in one decision: all limits named admit, or none is charged. */
static void test_acquire_resources(void **state)
{
    fixture *f = *state;
    static const rl_limit lims[] = { RL_LIMIT("rpm", "requests", 3, RL_MINUTE, 3),
                                     RL_LIMIT("tpm", "tokens", 100, RL_MINUTE, 100) };
    rl_cost both[] = { { "requests", 1 }, { "tokens", 60 } };
    rl_cost tokens_only[] = { { "tokens", 30 } };
    rl_cost dup[] = { { "tokens", 1 }, { "tokens", 2 } };
    rl_cost neg[] = { { NULL, -1 } };
    rl_result res;
    rl_key_stats st;
    assert_int_equal(rl_tier_set(f->r, "default", lims, 2), RL_OK);
    assert_int_equal(rl_acquire(f->r, "agent", both, 2, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_acquire(f->r, "agent", both, 2, &res), RL_OK);
    assert_false(res.allowed);
    assert_string_equal(res.limit_name, "tpm");
    assert_int_equal(res.retry_after_ns, 12 * RL_SECOND); /* 20 tokens at 0.6 s each */
    assert_int_equal(rl_stats(f->r, "agent", &st), RL_OK);
    assert_int_equal(st.limits[0].remaining, 2); /* rpm not charged by the refusal */
    assert_int_equal(st.limits[1].remaining, 40);
    /* a resource the call does not name is left alone */
    assert_int_equal(rl_acquire(f->r, "agent", tokens_only, 1, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_stats(f->r, "agent", &st), RL_OK);
    assert_int_equal(st.limits[0].remaining, 2);
    assert_int_equal(st.limits[1].remaining, 10);
    /* rl_allow is { "requests", cost } */
    assert_int_equal(rl_allow(f->r, "agent", 2, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_allow(f->r, "agent", 1, &res), RL_OK);
    assert_false(res.allowed);
    assert_string_equal(res.limit_name, "rpm");
    both[1].amount = 101;
    assert_int_equal(rl_acquire(f->r, "agent", both, 2, &res), RL_ETOOBIG);
    assert_int_equal(rl_acquire(f->r, "agent", dup, 2, &res), RL_EINVAL);
    assert_int_equal(rl_acquire(f->r, "agent", neg, 1, &res), RL_EINVAL);
    assert_int_equal(rl_acquire(f->r, "agent", both, 0, &res), RL_EINVAL);
}

/* Several keys in one decision: admitted only if every key admits. */
static void test_acquire_keys(void **state)
{
    fixture *f = *state;
    static const rl_limit user[] = { RL_LIMIT("per_user", NULL, 5, RL_MINUTE, 5) };
    static const rl_limit global[] = { RL_LIMIT("global", NULL, 3, RL_MINUTE, 3) };
    const char *alice[] = { "user:alice", "global" };
    const char *bob[] = { "user:bob", "global" };
    const char *twice[] = { "global", "global" };
    rl_cost one = { NULL, 1 };
    rl_result res;
    rl_key_stats st;
    int i;
    assert_int_equal(rl_tier_set(f->r, "user", user, 1), RL_OK);
    assert_int_equal(rl_tier_set(f->r, "global", global, 1), RL_OK);
    assert_int_equal(rl_key_assign(f->r, "user:alice", "user"), RL_OK);
    assert_int_equal(rl_key_assign(f->r, "user:bob", "user"), RL_OK);
    assert_int_equal(rl_key_assign(f->r, "global", "global"), RL_OK);
    for (i = 0; i < 2; i++) {
        assert_int_equal(rl_acquire_keys(f->r, alice, 2, &one, 1, &res), RL_OK);
        assert_true(res.allowed);
    }
    assert_int_equal(rl_acquire_keys(f->r, bob, 2, &one, 1, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_acquire_keys(f->r, bob, 2, &one, 1, &res), RL_OK);
    assert_false(res.allowed);
    assert_int_equal(res.key_index, 1);
    assert_string_equal(res.limit_name, "global");
    assert_int_equal(rl_stats(f->r, "user:bob", &st), RL_OK);
    assert_int_equal(st.limits[0].remaining, 4); /* not charged by the refusal */
    assert_int_equal(st.refused, 1);
    assert_int_equal(rl_acquire_keys(f->r, twice, 2, &one, 1, &res), RL_EINVAL);
    assert_int_equal(rl_acquire_keys(f->r, alice, 0, &one, 1, &res), RL_EINVAL);
}

/* A batch decides items one by one in one transaction: the 11th unit of a
 * burst of 10 is refused with its retry-after, a bad item fails alone, and
 * the counters are those of the same calls made one at a time. */
static void test_allow_batch(void **state)
{
    fixture *f = *state;
    rl_batch_item it[14];
    rl_key_stats st;
    size_t i;
    memset(it, 0, sizeof it);
    for (i = 0; i < 11; i++) {
        it[i].key = "a";
        it[i].cost = 1;
    }
    it[11].key = ""; /* invalid key */
    it[11].cost = 1;
    it[12].key = "b";
    it[12].cost = 11; /* more than the burst */
    it[13].key = "b";
    it[13].cost = 4;
    assert_int_equal(rl_allow_batch(f->r, it, 14), RL_OK);
    for (i = 0; i < 10; i++) {
        assert_int_equal(it[i].rc, RL_OK);
        assert_true(it[i].res.allowed);
        assert_int_equal(it[i].res.remaining, 9 - (int64_t)i);
    }
    assert_int_equal(it[10].rc, RL_OK);
    assert_false(it[10].res.allowed);
    assert_int_equal(it[10].res.retry_after_ns, RL_SECOND / 10);
    assert_int_equal(it[11].rc, RL_EINVAL);
    assert_int_equal(it[12].rc, RL_ETOOBIG);
    assert_int_equal(it[13].rc, RL_OK);
    assert_true(it[13].res.allowed);
    assert_int_equal(it[13].res.remaining, 6);
    assert_int_equal(rl_stats(f->r, "a", &st), RL_OK);
    assert_int_equal(st.allowed, 10);
    assert_int_equal(st.refused, 1);
    assert_int_equal(rl_allow_batch(f->r, NULL, 0), RL_OK);
    assert_int_equal(rl_allow_batch(f->r, NULL, 1), RL_EINVAL);
    assert_int_equal(rl_allow_batch(NULL, it, 1), RL_EINVAL);
}

static void test_window_allow(void **state)
{
    fixture *f = *state;
    static const rl_limit lims[] = { RL_SLIDING_WINDOW("rpm", NULL, 3, RL_MINUTE) };
    rl_limit odd = RL_SLIDING_WINDOW("odd", NULL, 3, RL_MINUTE);
    rl_tier_info ti;
    rl_key_stats st;
    rl_result res;
    int i;
    assert_int_equal(rl_tier_set(f->r, "default", lims, 1), RL_OK);
    for (i = 0; i < 3; i++) {
        assert_int_equal(rl_allow(f->r, "w", 1, &res), RL_OK);
        assert_true(res.allowed);
        assert_int_equal(res.remaining, 2 - i);
        assert_int_equal(res.limit, 3);
        assert_string_equal(res.limit_name, "rpm");
        assert_int_equal(res.reset_after_ns, WIN0 + 2 * RL_MINUTE - f->now);
    }
    assert_int_equal(rl_allow(f->r, "w", 1, &res), RL_OK);
    assert_false(res.allowed);
    /* 3 in prev weigh <= 2 from 20 s into the next window: T0 + 60 s */
    assert_int_equal(res.retry_after_ns, RL_MINUTE);
    assert_int_equal(rl_allow(f->r, "w", 4, &res), RL_ETOOBIG);
    assert_int_equal(rl_stats(f->r, "w", &st), RL_OK);
    assert_int_equal(st.limits[0].algorithm, RL_ALGO_SLIDING_WINDOW);
    assert_int_equal(st.limits[0].burst, 3);
    assert_int_equal(st.limits[0].remaining, 0);
    assert_int_equal(st.limits[0].retry_after_ns, RL_MINUTE);
    /* retrying a nanosecond early is refused, at retry_after admitted */
    f->now += RL_MINUTE - 1;
    assert_int_equal(rl_allow(f->r, "w", 1, &res), RL_OK);
    assert_false(res.allowed);
    assert_int_equal(res.retry_after_ns, 1);
    f->now += 1;
    assert_int_equal(rl_allow(f->r, "w", 1, &res), RL_OK);
    assert_true(res.allowed);
    /* a burst given with the sliding window is forced to count */
    odd.burst = 10;
    assert_int_equal(rl_tier_set(f->r, "odd", &odd, 1), RL_OK);
    assert_int_equal(rl_tier_get(f->r, "odd", &ti), RL_OK);
    assert_int_equal(ti.limits[0].burst, 3);
    assert_int_equal(ti.limits[0].algorithm, RL_ALGO_SLIDING_WINDOW);
    odd.algorithm = 7;
    assert_int_equal(rl_tier_set(f->r, "odd", &odd, 1), RL_EINVAL);
    assert_non_null(strstr(rl_errmsg(f->r), "algorithm"));
    assert_int_equal(rl_tier_get(f->r, "default", &ti), RL_OK);
    assert_int_equal(ti.limits[0].algorithm, RL_ALGO_SLIDING_WINDOW);
}

/* One decision over a GCRA and a sliding window limit: both admit or
 * neither is charged. */
static void test_window_with_gcra(void **state)
{
    fixture *f = *state;
    static const rl_limit two[] = { RL_LIMIT("rps", NULL, 2, RL_SECOND, 2),
                                    RL_SLIDING_WINDOW("rpm", NULL, 3, RL_MINUTE) };
    rl_cost c2 = { NULL, 2 };
    rl_result res;
    rl_key_stats st;
    assert_int_equal(rl_tier_set(f->r, "default", two, 2), RL_OK);
    assert_int_equal(rl_allow(f->r, "k", 1, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_allow(f->r, "k", 1, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_allow(f->r, "k", 1, &res), RL_OK);
    assert_false(res.allowed); /* rps is empty */
    assert_string_equal(res.limit_name, "rps");
    assert_int_equal(rl_stats(f->r, "k", &st), RL_OK);
    assert_int_equal(st.limits[1].remaining, 1); /* the window untouched by the refusal */
    assert_int_equal(st.limits[0].algorithm, RL_ALGO_GCRA);
    f->now += RL_SECOND;
    assert_int_equal(rl_acquire(f->r, "k", &c2, 1, &res), RL_OK);
    assert_false(res.allowed); /* the window has 1 left; rps had room for 2 */
    assert_string_equal(res.limit_name, "rpm");
    assert_int_equal(rl_stats(f->r, "k", &st), RL_OK);
    assert_int_equal(st.limits[0].remaining, 2); /* rps untouched by the refusal */
    assert_int_equal(rl_allow(f->r, "k", 1, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_allow(f->r, "k", 1, &res), RL_OK);
    assert_false(res.allowed); /* the window is full; rps had room */
    assert_string_equal(res.limit_name, "rpm");
    assert_int_equal(res.retry_after_ns, 59 * RL_SECOND);
    assert_int_equal(rl_stats(f->r, "k", &st), RL_OK);
    assert_int_equal(st.limits[0].remaining, 1);
}

/* 3. A clock before the epoch is a clock like any other: a key never seen
 * is full, and nothing cools down that was not penalised. */
static void test_clock_before_epoch(void **state)
{
    fixture *f = *state;
    rl_key_stats st;
    rl_result res;
    int i;
    f->now = -10 * RL_SECOND;
    assert_int_equal(rl_stats(f->r, "never", &st), RL_OK);
    assert_false(st.exists);
    assert_int_equal(st.limits[0].remaining, 10);
    assert_int_equal(st.limits[0].retry_after_ns, 0);
    assert_int_equal(st.limits[0].reset_after_ns, 0);
    assert_int_equal(st.cooldown_ns, 0);
    for (i = 0; i < 10; i++) {
        assert_int_equal(rl_allow(f->r, "neg", 1, &res), RL_OK);
        assert_true(res.allowed);
        assert_string_equal(res.limit_name, "rps");
        assert_int_equal(res.remaining, 9 - i);
    }
    assert_int_equal(rl_allow(f->r, "neg", 1, &res), RL_OK);
    assert_false(res.allowed);
    assert_string_equal(res.limit_name, "rps");
    assert_int_equal(res.retry_after_ns, 100 * RL_MILLISECOND);
    f->now += 100 * RL_MILLISECOND;
    assert_int_equal(rl_allow(f->r, "neg", 1, &res), RL_OK);
    assert_true(res.allowed);
    /* a real cool-down before the epoch, across 0 */
    assert_int_equal(rl_penalize(f->r, "p", NULL, 20 * RL_SECOND), RL_OK);
    assert_int_equal(rl_allow(f->r, "p", 1, &res), RL_OK);
    assert_false(res.allowed);
    assert_string_equal(res.limit_name, "cooldown");
    assert_int_equal(res.retry_after_ns, 20 * RL_SECOND);
    f->now += 20 * RL_SECOND;
    assert_int_equal(rl_allow(f->r, "p", 1, &res), RL_OK);
    assert_true(res.allowed);
}

/* 4. Near the end of int64 time a TAT that does not fit is refused,
 * never clamped into an admission: a burst-5 limit whose next units lie
 * past INT64_MAX admits what fits (here 2), then nothing. */
static void test_clock_near_int64_max(void **state)
{
    fixture *f = *state;
    static const rl_limit slow[] = { RL_LIMIT("slow", NULL, 5, 50 * 366 * RL_DAY, 5) };
    rl_reservation rv;
    rl_result res;
    rl_key_stats st;
    int i, admitted = 0;
    assert_int_equal(rl_tier_set(f->r, "default", slow, 1), RL_OK);
    f->now = INT64_MAX - RL_SECOND; /* a unit takes 10 years */
    for (i = 0; i < 20; i++) {
        assert_int_equal(rl_allow(f->r, "end", 1, &res), RL_OK);
        admitted += res.allowed;
        assert_false(res.allowed);
        assert_int_equal(res.retry_after_ns, INT64_MAX); /* never */
    }
    f->now = INT64_MAX - 25 * 366 * RL_DAY;
    for (i = 0; i < 20; i++) {
        assert_int_equal(rl_allow(f->r, "late", 1, &res), RL_OK);
        admitted += res.allowed;
    }
    assert_int_equal(admitted, 2);
    assert_int_equal(rl_stats(f->r, "late", &st), RL_OK);
    assert_int_equal(st.limits[0].remaining, 0);
    assert_int_equal(st.limits[0].retry_after_ns, INT64_MAX);
    assert_int_equal(rl_reserve(f->r, "late", 1, INT64_MAX, &rv), RL_OK);
    assert_false(rv.ok);
    assert_int_equal(rv.time_to_act, INT64_MAX);
    assert_int_equal(rl_wait(f->r, "late", 1, INT64_MAX, NULL, &res), RL_ETIMEOUT);
    /* a cool-down that would end past INT64_MAX lasts to the end */
    f->now = INT64_MAX - RL_SECOND;
    assert_int_equal(rl_penalize(f->r, "cool", NULL, RL_HOUR), RL_OK);
    assert_int_equal(rl_allow(f->r, "cool", 0, &res), RL_OK);
    assert_false(res.allowed);
    assert_string_equal(res.limit_name, "cooldown");
    assert_int_equal(res.retry_after_ns, RL_SECOND);
}

/* 8. Group commit (SQLite, the real clock): a leader that decided another
 * process's failing request with its own answers RL_OK without that
 * process's message. The leader stops holding the lock (RL_STEP_LOCKED)
 * until the other has posted its request (RL_STEP_POSTED). */
typedef struct gl_child {
    pid_t pid;
    int ready[2], go[2], up[2], down[2], out[2];
} gl_child;

typedef struct gl_answer {
    int rc;
    char msg[RL_ERRMSG_MAX];
} gl_answer;

static int gl_step = -1, gl_up = -1, gl_down = -1;

static void gl_hook(int step)
{
    char c;
    if (step != gl_step)
        return;
    gl_step = -1;
    if (write(gl_up, "h", 1) != 1 || read(gl_down, &c, 1) != 1)
        _exit(89);
}

static void gl_spawn(gl_child *c, const char *path, int64_t cost, int step)
{
    assert_int_equal(pipe(c->ready), 0);
    assert_int_equal(pipe(c->go), 0);
    assert_int_equal(pipe(c->up), 0);
    assert_int_equal(pipe(c->down), 0);
    assert_int_equal(pipe(c->out), 0);
    c->pid = fork();
    assert_true(c->pid >= 0);
    if (c->pid == 0) {
        static const rl_limit lims[] = { RL_LIMIT("rps", NULL, 100, RL_SECOND, 100) };
        rl_options o = RL_OPTIONS_INIT;
        rl_result res;
        gl_answer a;
        rl *r = NULL;
        char ch;
        o.default_limits = lims;
        o.n_default_limits = 1;
        o.flags = RL_OPEN_OVERRIDE_DEFAULTS;
        if (rl_open(&r, path, &o) != RL_OK)
            _exit(90);
        gl_step = step;
        gl_up = c->up[1];
        gl_down = c->down[0];
        rl__lock_hook = gl_hook;
        if (write(c->ready[1], "r", 1) != 1 || read(c->go[0], &ch, 1) != 1)
            _exit(91);
        memset(&a, 0, sizeof a);
        a.rc = rl_allow(r, "hot", cost, &res);
        snprintf(a.msg, sizeof a.msg, "%s", rl_errmsg(r));
        rl_close(r);
        _exit(write(c->out[1], &a, sizeof a) == (ssize_t)sizeof a ? 0 : 92);
    }
}

static void gl_send(int fd)
{
    assert_int_equal(write(fd, "x", 1), 1);
}

static void gl_recv(int fd)
{
    char c;
    assert_int_equal(read(fd, &c, 1), 1);
}

static void gl_end(gl_child *c, gl_answer *a)
{
    int status, i, *fds[] = { c->ready, c->go, c->up, c->down, c->out };
    assert_int_equal(read(c->out[0], a, sizeof *a), (ssize_t)sizeof *a);
    assert_int_equal(waitpid(c->pid, &status, 0), c->pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    for (i = 0; i < 5; i++) {
        close(fds[i][0]);
        close(fds[i][1]);
    }
}

static void test_group_leader_errmsg(void **state)
{
    fixture *f = *state;
    gl_child lead, other;
    gl_answer a, b;
    gl_spawn(&lead, f->path, 1, RL_STEP_LOCKED);
    gl_spawn(&other, f->path, 1000, RL_STEP_POSTED);
    gl_recv(lead.ready[0]);
    gl_recv(other.ready[0]);
    gl_send(lead.go[1]);
    gl_recv(lead.up[0]); /* the leader holds the lock */
    gl_send(other.go[1]);
    gl_recv(other.up[0]); /* the other's request is posted */
    gl_send(other.down[1]);
    gl_send(lead.down[1]); /* the leader decides both */
    gl_end(&lead, &a);
    gl_end(&other, &b);
    assert_int_equal(b.rc, RL_ETOOBIG);
    assert_non_null(strstr(b.msg, "exceeds burst"));
    assert_int_equal(a.rc, RL_OK);
    assert_string_equal(a.msg, "no error");
}

/* 9. Counters stop at INT64_MAX (rl_wait's INT64_MAX timeout: test_wait.c). */
static void set_counters(fixture *f, const char *key, int64_t v)
{
    rl_store *s = rl__store(f->r);
    rl_row row;
    int64_t version;
    assert_int_equal(s->ops->begin(s, 1), RL_OK);
    assert_int_equal(s->ops->row_get(s, key, &row, &version), RL_OK);
    assert_true(row.exists);
    row.allowed = row.refused = row.units = v;
    assert_int_equal(s->ops->row_put(s, key, &row), RL_OK);
    assert_int_equal(s->ops->commit(s), RL_OK);
}

static void test_counters_saturate(void **state)
{
    fixture *f = *state;
    rl_key_stats st;
    rl_result res;
    assert_int_equal(rl_allow(f->r, "old", 1, &res), RL_OK);
    set_counters(f, "old", INT64_MAX - 2);
    assert_int_equal(rl_allow(f->r, "old", 5, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_allow(f->r, "old", 1, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_allow(f->r, "old", 1, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_allow(f->r, "old", 10, &res), RL_OK);
    assert_false(res.allowed);
    assert_int_equal(rl_allow(f->r, "old", 10, &res), RL_OK);
    assert_false(res.allowed);
    assert_int_equal(rl_allow(f->r, "old", 10, &res), RL_OK);
    assert_false(res.allowed);
    assert_int_equal(rl_stats(f->r, "old", &st), RL_OK);
    assert_int_equal(st.allowed, INT64_MAX);
    assert_int_equal(st.refused, INT64_MAX);
    assert_int_equal(st.units, INT64_MAX);
    assert_int_equal(st.first_seen_ns, T0);
}

/* Issue 17, bug 1: a plain decision that names a concurrency resource
 * skipped the limit (only a lease holds units), so rl_acquire, rl_allow and
 * rl_wait_ex admitted while every slot was held. It checks it now: admitted
 * only if in flight + amount <= cap, and nothing is taken. */
static void test_decide_checks_slots(void **state)
{
    fixture *f = *state;
    static const rl_limit lims[] = { RL_CONCURRENT("streams", "streams", 2),
                                     RL_LIMIT("rpm", NULL, 100, RL_MINUTE, 100) };
    static const rl_limit req_cap[] = { RL_CONCURRENT("inflight", "requests", 1) };
    rl_cost one[] = { { "requests", 1 }, { "streams", 1 } };
    rl_cost check[] = { { "streams", 0 } };
    const char *keys[] = { "k", "other" };
    rl_lease a, b;
    rl_result res;
    rl_key_stats st;
    assert_int_equal(rl_tier_set(f->r, "default", lims, 2), RL_OK);
    assert_int_equal(rl_lease_begin(f->r, "k", one, 2, 10 * RL_MINUTE, &a, &res), RL_OK);
    assert_int_equal(rl_lease_begin(f->r, "k", one, 2, 10 * RL_MINUTE, &b, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_acquire(f->r, "k", one, 2, &res), RL_OK);
    assert_false(res.allowed);
    assert_string_equal(res.limit_name, "streams");
    assert_int_equal(res.remaining, 0);
    assert_int_equal(res.retry_after_ns, 50 * RL_MILLISECOND);
    assert_int_equal(rl_acquire_keys(f->r, keys, 2, one, 2, &res), RL_OK);
    assert_false(res.allowed);
    assert_int_equal(res.key_index, 0);
    /* a cost of 0 checks: admitted, the slots being no more than full */
    assert_int_equal(rl_acquire(f->r, "k", check, 1, &res), RL_OK);
    assert_true(res.allowed);
    /* the refusals charged nothing */
    assert_int_equal(rl_stats(f->r, "k", &st), RL_OK);
    assert_int_equal(st.limits[0].in_flight, 2);
    assert_int_equal(st.limits[1].remaining, 98);
    /* a slot comes free: admitted, and nothing is held by it */
    assert_int_equal(rl_lease_cancel(f->r, &a), RL_OK);
    assert_int_equal(rl_acquire(f->r, "k", one, 2, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_acquire(f->r, "k", one, 2, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_stats(f->r, "k", &st), RL_OK);
    assert_int_equal(st.limits[0].in_flight, 1);
    assert_int_equal(st.limits[1].remaining, 97);
    /* rl_allow names "requests": a cap on requests in flight applies */
    assert_int_equal(rl_tier_set(f->r, "default", req_cap, 1), RL_OK);
    assert_int_equal(rl_lease_begin(f->r, "r", one, 1, RL_MINUTE, &a, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_allow(f->r, "r", 1, &res), RL_OK);
    assert_false(res.allowed);
    assert_string_equal(res.limit_name, "inflight");
    assert_int_equal(rl_lease_settle(f->r, &a, one, 1), RL_OK);
    assert_int_equal(rl_allow(f->r, "r", 1, &res), RL_OK);
    assert_true(res.allowed);
}

static int64_t test_clock(void *ctx)
{
    return ((fixture *)ctx)->now;
}

static int open_opts(fixture *f, const rl_limit *lims, size_t n, unsigned flags, int fail_mode,
                     rl **out)
{
    rl_options o = RL_OPTIONS_INIT;
    o.clock = test_clock;
    o.clock_ctx = f;
    o.default_limits = lims;
    o.n_default_limits = n;
    o.flags = flags;
    o.fail_mode = fail_mode;
    return rl_open(out, f->path, &o);
}

/* Issue 17, bug 3: a misspelled or unknown resource ("token", "gpus") was
 * admitted with RL_OK and nothing charged. A resource that no limit of the
 * whole policy counts (any tier, or the handle's default limits) is
 * RL_ENOLIMIT, unless the key's tier is unlimited or the handle was opened
 * with RL_OPEN_ANY_RESOURCE; one that another tier limits stays admitted. */
static void test_unknown_resource(void **state)
{
    fixture *f = *state;
    static const rl_limit lims[] = { RL_LIMIT("rpm", "requests", 100, RL_MINUTE, 100),
                                     RL_LIMIT("tpm", "tokens", 1000, RL_MINUTE, 1000) };
    static const rl_limit agents[] = { RL_CONCURRENT("streams", "streams", 2) };
    static const rl_limit gpus[] = { RL_LIMIT("gpu", "gpus", 1, RL_SECOND, 1) };
    rl_cost typo[] = { { "requests", 1 }, { "token", 5 } };
    rl_cost gpu[] = { { "gpus", 1 } };
    rl_cost streams[] = { { "streams", 1 } };
    rl_lease lease;
    rl_result res;
    rl_key_stats st;
    rl *any = NULL;
    assert_int_equal(rl_tier_set(f->r, "default", lims, 2), RL_OK);
    assert_int_equal(rl_tier_set(f->r, "agents", agents, 1), RL_OK);
    assert_int_equal(rl_tier_set(f->r, "free", NULL, 0), RL_OK);
    assert_int_equal(rl_acquire(f->r, "u", typo, 2, &res), RL_ENOLIMIT);
    assert_false(res.allowed);
    assert_non_null(strstr(rl_errmsg(f->r), "resource 'token' is limited by no tier (known: "));
    assert_non_null(strstr(rl_errmsg(f->r), "requests"));
    assert_non_null(strstr(rl_errmsg(f->r), "tokens"));
    assert_non_null(strstr(rl_errmsg(f->r), "streams"));
    assert_int_equal(rl_acquire(f->r, "u", gpu, 1, &res), RL_ENOLIMIT);
    assert_int_equal(rl_wait_ex(f->r, "u", gpu, 1, RL_PRIORITY_INTERACTIVE, RL_SECOND, NULL, &res),
                     RL_ENOLIMIT);
    assert_int_equal(rl_lease_begin(f->r, "u", typo, 2, RL_MINUTE, &lease, &res), RL_ENOLIMIT);
    assert_int_equal(lease.id, 0);
    /* nothing was charged */
    assert_int_equal(rl_stats(f->r, "u", &st), RL_OK);
    assert_int_equal(st.limits[0].remaining, 100);
    /* a resource that another tier limits: unlimited for this one */
    assert_int_equal(rl_acquire(f->r, "u", streams, 1, &res), RL_OK);
    assert_true(res.allowed);
    /* an unlimited tier admits anything */
    assert_int_equal(rl_key_assign(f->r, "f", "free"), RL_OK);
    assert_int_equal(rl_acquire(f->r, "f", gpu, 1, &res), RL_OK);
    assert_true(res.allowed);
    if (!f->sqlite)
        return; /* the rest needs a second handle on the same store */
    /* default limits other than the stored ones are refused at open */
    assert_int_equal(open_opts(f, gpus, 1, 0, RL_FAIL_CLOSED, &any), RL_EMISMATCH);
    rl_close(any);
    /* the opt-in */
    assert_int_equal(open_opts(f, NULL, 0, RL_OPEN_ANY_RESOURCE, RL_FAIL_CLOSED, &any), RL_OK);
    assert_int_equal(rl_acquire(any, "u", typo, 2, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_acquire(any, "u", gpu, 1, &res), RL_OK);
    assert_true(res.allowed);
    rl_close(any);
    assert_int_equal(rl_stats(f->r, "u", &st), RL_OK);
    assert_int_equal(st.limits[0].remaining, 99);
}

/* Issue 17, bug 6: a fail-closed refusal (the store failed) had
 * retry_after_ns 0, inviting a tight retry loop. It carries a back-off
 * hint, RL_FAIL_RETRY_NS; a fail-open admission keeps 0. A read-only
 * handle is the store failure here (RL_EREADONLY). */
static void test_fail_closed_retry_hint(void **state)
{
    fixture *f = *state;
    rl_cost c[] = { { "requests", 1 } };
    rl_batch_item it[1];
    rl_result res;
    rl *ro = NULL;
    assert_int_equal(rl_allow(f->r, "k", 1, &res), RL_OK); /* the database exists */
    assert_int_equal(open_opts(f, NULL, 0, RL_OPEN_READONLY, RL_FAIL_CLOSED, &ro), RL_OK);
    assert_int_equal(rl_allow(ro, "k", 1, &res), RL_EREADONLY);
    assert_false(res.allowed);
    assert_false(res.degraded);
    assert_int_equal(res.retry_after_ns, 100 * RL_MILLISECOND);
    assert_int_equal(rl_acquire(ro, "k", c, 1, &res), RL_EREADONLY);
    assert_int_equal(res.retry_after_ns, 100 * RL_MILLISECOND);
    assert_int_equal(rl_wait(ro, "k", 1, RL_SECOND, NULL, &res), RL_EREADONLY);
    assert_false(res.allowed);
    assert_int_equal(res.retry_after_ns, 100 * RL_MILLISECOND);
    it[0].key = "k";
    it[0].cost = 1;
    assert_int_equal(rl_allow_batch(ro, it, 1), RL_EREADONLY);
    assert_int_equal(it[0].rc, RL_EREADONLY);
    assert_false(it[0].res.allowed);
    assert_int_equal(it[0].res.retry_after_ns, 100 * RL_MILLISECOND);
    rl_close(ro);
    assert_int_equal(open_opts(f, NULL, 0, RL_OPEN_READONLY, RL_FAIL_OPEN, &ro), RL_OK);
    assert_int_equal(rl_allow(ro, "k", 1, &res), RL_EREADONLY);
    assert_true(res.allowed);
    assert_true(res.degraded);
    assert_int_equal(res.retry_after_ns, 0);
    rl_close(ro);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_allow_burst_and_refill),
        BOTH(test_keys_are_isolated),
        BOTH(test_cost_checks),
        BOTH(test_bad_keys),
        BOTH(test_all_or_nothing),
        BOTH(test_zero_cost_check),
        BOTH(test_acquire_resources),
        BOTH(test_acquire_keys),
        BOTH(test_allow_batch),
        BOTH(test_window_allow),
        BOTH(test_window_with_gcra),
        BOTH(test_clock_before_epoch),
        BOTH(test_clock_near_int64_max),
        cmocka_unit_test_setup_teardown(test_group_leader_errmsg, setup_sqlite, teardown),
        BOTH(test_counters_saturate),
        BOTH(test_decide_checks_slots),
        BOTH(test_unknown_resource),
        SHARED(test_fail_closed_retry_hint),
    };
    return run_store_tests(tests, sizeof tests / sizeof tests[0], setup_redis);
}
