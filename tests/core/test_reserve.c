/*
 * test_reserve.c - core/reserve.c through the API, on every store
 * (api_fixture.h): rl_reserve and rl_cancel (a reservation given back once,
 * and only to the generation of the key's state it was taken from; any
 * max_delay_ns; on sliding windows, counted in the window of its time) and
 * leases (settled at the actual cost with refunds and debt, cancelled,
 * expired, capped by a concurrency limit, on sliding windows).
 */
#include <stdint.h>
#include <string.h>

#include "api_fixture.h"

static void test_reserve_cancel(void **state)
{
    fixture *f = *state;
    rl_reservation a, b, c;
    rl_result res;
    assert_int_equal(rl_allow(f->r, "r", 10, &res), RL_OK);
    assert_int_equal(rl_reserve(f->r, "r", 1, RL_SECOND, &a), RL_OK);
    assert_true(a.ok);
    assert_int_equal(a.delay_ns, 100 * RL_MILLISECOND);
    assert_int_equal(a.time_to_act, T0 + 100 * RL_MILLISECOND);
    assert_int_equal(rl_reserve(f->r, "r", 1, RL_SECOND, &b), RL_OK);
    assert_int_equal(b.delay_ns, 200 * RL_MILLISECOND);
    /* cancelling b (the last) returns it: the next reservation reuses its slot */
    assert_int_equal(rl_cancel(f->r, &b), RL_OK);
    assert_int_equal(rl_reserve(f->r, "r", 1, RL_SECOND, &c), RL_OK);
    assert_int_equal(c.delay_ns, 200 * RL_MILLISECOND);
    /* cancelling a, which c builds on, returns nothing */
    assert_int_equal(rl_cancel(f->r, &a), RL_OK);
    assert_int_equal(rl_reserve(f->r, "r", 1, RL_SECOND, &b), RL_OK);
    assert_int_equal(b.delay_ns, 300 * RL_MILLISECOND);
    /* beyond max delay: not ok, nothing consumed */
    assert_int_equal(rl_reserve(f->r, "r", 1, 10 * RL_MILLISECOND, &a), RL_OK);
    assert_false(a.ok);
    assert_int_equal(a.delay_ns, 400 * RL_MILLISECOND);
    assert_int_equal(rl_cancel(f->r, &a), RL_OK); /* cancelling a refusal: no-op */
    /* once its time has come, cancel returns nothing */
    f->now += 300 * RL_MILLISECOND;
    assert_int_equal(rl_cancel(f->r, &b), RL_OK);
    assert_int_equal(rl_reserve(f->r, "r", 1, RL_SECOND, &a), RL_OK);
    assert_int_equal(a.delay_ns, 100 * RL_MILLISECOND);
}

/* Issue 15, item 11: a reservation gives its units back once. Cancelled
 * twice, it used to give them back twice: units that were never reserved. */
static void test_cancel_twice(void **state)
{
    fixture *f = *state;
    rl_reservation a;
    rl_result res;
    assert_int_equal(rl_allow(f->r, "r", 10, &res), RL_OK);
    assert_int_equal(rl_reserve(f->r, "r", 1, RL_SECOND, &a), RL_OK);
    assert_true(a.ok);
    assert_int_equal(rl_cancel(f->r, &a), RL_OK);
    assert_int_equal(rl_cancel(f->r, &a), RL_OK); /* nothing left to give */
    assert_int_equal(rl_allow(f->r, "r", 1, &res), RL_OK);
    assert_false(res.allowed); /* the bucket is still empty */
    assert_int_equal(res.retry_after_ns, 100 * RL_MILLISECOND);
}

/* Issue 15, item 8: a reservation that another limit delays into the next
 * window is counted in that window (the window of the time it may act),
 * not in the current one. */
static void test_window_reserve_delayed_by_other(void **state)
{
    fixture *f = *state;
    static const rl_limit lims[] = { RL_SLIDING_WINDOW("rpm", NULL, 3, RL_MINUTE),
                                     RL_LIMIT("slow", NULL, 1, 2 * RL_SECOND, 1) };
    rl_reservation a;
    rl_key_stats st;
    rl_result res;
    assert_int_equal(rl_tier_set(f->r, "default", lims, 2), RL_OK);
    f->now = WIN0 + RL_MINUTE - RL_SECOND / 2; /* half a second before a new window */
    assert_int_equal(rl_allow(f->r, "r", 1, &res), RL_OK);
    assert_true(res.allowed);
    /* the window has room now; "slow" makes the caller wait 2 s, into the
     * next window */
    assert_int_equal(rl_reserve(f->r, "r", 1, 5 * RL_SECOND, &a), RL_OK);
    assert_true(a.ok);
    assert_int_equal(a.delay_ns, 2 * RL_SECOND);
    /* half way through the next window: this window counts the reserved
     * unit in full and the first one at half weight: 2 of 3 */
    f->now = WIN0 + RL_MINUTE + RL_MINUTE / 2;
    assert_int_equal(rl_stats(f->r, "r", &st), RL_OK);
    assert_int_equal(st.n_limits, 2);
    assert_string_equal(st.limits[0].name, "rpm");
    assert_int_equal(st.limits[0].remaining, 1);
}

/* Reserve an estimate, settle the actual: refunds and debt are exact. */
static void test_lease_settle(void **state)
{
    fixture *f = *state;
    static const rl_limit lims[] = { RL_LIMIT("rpm", "requests", 10, RL_MINUTE, 10),
                                     RL_LIMIT("tpm", "tokens", 1000, RL_MINUTE, 1000) };
    rl_cost est[] = { { "requests", 1 }, { "tokens", 600 } };
    rl_cost act200[] = { { "tokens", 200 } };
    rl_cost est500[] = { { "tokens", 500 } };
    rl_cost act900[] = { { "tokens", 900 } };
    rl_cost one_token[] = { { "tokens", 1 } };
    rl_lease a, b;
    rl_result res;
    rl_key_stats st;
    assert_int_equal(rl_tier_set(f->r, "default", lims, 2), RL_OK);
    assert_int_equal(rl_lease_begin(f->r, "agent", est, 2, RL_MINUTE, &a, &res), RL_OK);
    assert_true(res.allowed);
    assert_true(a.id > 0);
    assert_int_equal(a.expires_at, T0 + RL_MINUTE);
    assert_int_equal(rl_stats(f->r, "agent", &st), RL_OK);
    assert_int_equal(st.limits[1].remaining, 400);
    /* 200 used of 600: 400 come back; requests settle at their estimate */
    assert_int_equal(rl_lease_settle(f->r, &a, act200, 1), RL_OK);
    assert_int_equal(rl_stats(f->r, "agent", &st), RL_OK);
    assert_int_equal(st.limits[1].remaining, 800);
    assert_int_equal(st.limits[0].remaining, 9);
    assert_int_equal(rl_lease_settle(f->r, &a, act200, 1), RL_ENOTFOUND);
    /* 900 used of 500: 400 more charged as debt, 100 beyond the bucket */
    assert_int_equal(rl_lease_begin(f->r, "agent", est500, 1, RL_MINUTE, &b, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_lease_settle(f->r, &b, act900, 1), RL_OK);
    assert_int_equal(rl_acquire(f->r, "agent", one_token, 1, &res), RL_OK);
    assert_false(res.allowed);
    assert_string_equal(res.limit_name, "tpm");
    assert_int_equal(res.retry_after_ns, 101 * 60 * RL_MILLISECOND); /* 101 tokens at 60 ms */
    assert_int_equal(rl_stats(f->r, "agent", &st), RL_OK);
    assert_int_equal(st.limits[1].debt, 100);
    /* cancel gives the whole estimate back */
    f->now += RL_MINUTE;
    assert_int_equal(rl_lease_begin(f->r, "agent", est500, 1, RL_MINUTE, &b, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_stats(f->r, "agent", &st), RL_OK);
    assert_int_equal(st.limits[1].remaining, 400);
    assert_int_equal(rl_lease_cancel(f->r, &b), RL_OK);
    assert_int_equal(rl_stats(f->r, "agent", &st), RL_OK);
    assert_int_equal(st.limits[1].remaining, 900);
    /* settled with no actual amounts (n 0): at its estimate, as rl.h says */
    assert_int_equal(rl_lease_begin(f->r, "agent", est500, 1, RL_MINUTE, &b, &res), RL_OK);
    assert_int_equal(rl_lease_settle(f->r, &b, act200, 0), RL_OK);
    assert_int_equal(rl_stats(f->r, "agent", &st), RL_OK);
    assert_int_equal(st.limits[1].remaining, 400);
    f->now += RL_MINUTE;
    /* past its TTL a lease is settled at its estimate */
    assert_int_equal(rl_lease_begin(f->r, "agent", est500, 1, RL_SECOND, &b, &res), RL_OK);
    f->now += 2 * RL_SECOND;
    assert_int_equal(rl_lease_settle(f->r, &b, act200, 1), RL_ETIMEOUT);
    assert_int_equal(rl_stats(f->r, "agent", &st), RL_OK);
    assert_int_equal(st.limits[1].remaining, 500 + 2 * 1000 / 60);
    /* refused: nothing reserved, no lease */
    est500[0].amount = 1000;
    assert_int_equal(rl_lease_begin(f->r, "agent", est500, 1, RL_MINUTE, &b, &res), RL_OK);
    assert_false(res.allowed);
    assert_int_equal(b.id, 0);
    assert_int_equal(rl_lease_settle(f->r, &b, act200, 1), RL_EINVAL);
    assert_int_equal(rl_lease_begin(f->r, "agent", est500, 1, 0, &b, &res), RL_EINVAL);
}

static int count_lease(void *ctx, const rl_lease_info *l)
{
    int *n = ctx;
    if (l->owner_alive && l->n_costs == 1 && strcmp(l->costs[0].resource, "streams") == 0)
        (*n)++;
    return 0;
}

/* A concurrency limit caps units in flight; leases hold them until they end. */
static void test_lease_concurrency(void **state)
{
    fixture *f = *state;
    static const rl_limit lims[] = { RL_CONCURRENT("streams", "streams", 2),
                                     RL_LIMIT("rpm", NULL, 100, RL_MINUTE, 100) };
    rl_cost one[] = { { "streams", 1 } };
    rl_cost three[] = { { "streams", 3 } };
    rl_lease a, b, c;
    rl_result res;
    rl_key_stats st;
    int n = 0;
    assert_int_equal(rl_tier_set(f->r, "default", lims, 2), RL_OK);
    assert_int_equal(rl_lease_begin(f->r, "k", one, 1, 10 * RL_SECOND, &a, &res), RL_OK);
    assert_true(res.allowed);
    f->now += RL_SECOND;
    assert_int_equal(rl_lease_begin(f->r, "k", one, 1, 10 * RL_SECOND, &b, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_lease_begin(f->r, "k", one, 1, 10 * RL_SECOND, &c, &res), RL_OK);
    assert_false(res.allowed);
    assert_string_equal(res.limit_name, "streams");
    assert_int_equal(res.remaining, 0);
    /* a slot may come free at any moment: a short polling hint, not the
     * holder's TTL; reset_after_ns is when the first holder expires */
    assert_int_equal(res.retry_after_ns, RL_SLOT_RETRY_NS);
    assert_int_equal(res.reset_after_ns, 9 * RL_SECOND); /* a's expiry */
    assert_int_equal(rl_lease_begin(f->r, "k", three, 1, RL_SECOND, &c, &res), RL_ETOOBIG);
    assert_int_equal(rl_leases_list(f->r, "k", count_lease, &n), RL_OK);
    assert_int_equal(n, 2);
    assert_int_equal(rl_stats(f->r, "k", &st), RL_OK);
    assert_int_equal(st.limits[0].remaining, 0);
    assert_int_equal(st.limits[0].in_flight, 2);
    /* plain decisions hold nothing: one that does not name "streams" is
     * not capped by it (one that does is checked: test_decide.c) */
    assert_int_equal(rl_allow(f->r, "k", 1, &res), RL_OK);
    assert_true(res.allowed);
    /* ending a lease frees its slot */
    assert_int_equal(rl_lease_cancel(f->r, &a), RL_OK);
    assert_int_equal(rl_lease_begin(f->r, "k", one, 1, 10 * RL_SECOND, &c, &res), RL_OK);
    assert_true(res.allowed);
    /* an expired lease frees its slot for the next one */
    f->now += 20 * RL_SECOND;
    assert_int_equal(rl_lease_begin(f->r, "k", one, 1, 10 * RL_SECOND, &a, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_lease_begin(f->r, "k", one, 1, 10 * RL_SECOND, &a, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_lease_settle(f->r, &b, one, 1), RL_ENOTFOUND); /* reclaimed */
    n = 0;
    assert_int_equal(rl_leases_list(f->r, NULL, count_lease, &n), RL_OK);
    assert_int_equal(n, 2);
}

/* A reservation is counted in the window of its time; cancelled before
 * that window begins it decays there instead of counting in full, and
 * cancelled inside it, it is gone. */
static void test_window_reserve_cancel(void **state)
{
    fixture *f = *state;
    static const rl_limit lims[] = { RL_SLIDING_WINDOW("rpm", NULL, 3, RL_MINUTE) };
    rl_reservation a, b, c, d;
    rl_result res;
    assert_int_equal(rl_tier_set(f->r, "default", lims, 1), RL_OK);
    assert_int_equal(rl_allow(f->r, "r", 3, &res), RL_OK);
    assert_int_equal(rl_reserve(f->r, "r", 1, 2 * RL_MINUTE, &a), RL_OK);
    assert_true(a.ok);
    assert_int_equal(a.delay_ns, RL_MINUTE); /* prev 3 weighs 2 at 20 s in */
    /* counted in the next window: prev 3 + cur 1 must weigh 1 at most */
    assert_int_equal(rl_reserve(f->r, "r", 1, 2 * RL_MINUTE, &b), RL_OK);
    assert_true(b.ok);
    assert_int_equal(b.delay_ns, 80 * RL_SECOND);
    assert_int_equal(rl_cancel(f->r, &b), RL_OK);
    /* b's unit now decays with prev (4) instead of counting in full: with
     * a's unit in cur, prev may weigh 1, which 4 do from 45 s in (not 3's
     * 40 s: what the meantime saw, prev + cur, must not drop) */
    assert_int_equal(rl_reserve(f->r, "r", 1, 2 * RL_MINUTE, &c), RL_OK);
    assert_int_equal(c.delay_ns, 85 * RL_SECOND);
    /* in its own window, before its time, c comes out in full */
    f->now = WIN0 + RL_MINUTE + 1;
    assert_int_equal(rl_cancel(f->r, &c), RL_OK);
    assert_int_equal(rl_reserve(f->r, "r", 1, 2 * RL_MINUTE, &d), RL_OK);
    assert_int_equal(d.delay_ns, 45 * RL_SECOND - 1); /* prev 4 weighs 1 from 45 s */
    /* beyond max delay: not ok, nothing consumed; cancelling it is a no-op */
    assert_int_equal(rl_reserve(f->r, "r", 1, RL_SECOND, &b), RL_OK);
    assert_false(b.ok);
    assert_int_equal(rl_cancel(f->r, &b), RL_OK);
    assert_int_equal(rl_reserve(f->r, "r", 1, RL_SECOND, &b), RL_OK);
    assert_false(b.ok);
}

/* Leases on a window: the unused part of the estimate comes back, an
 * overrun is debt until its window ages out. */
static void test_window_lease(void **state)
{
    fixture *f = *state;
    static const rl_limit lims[] = { RL_SLIDING_WINDOW("tpm", "tokens", 1000, RL_MINUTE) };
    rl_cost est[] = { { "tokens", 600 } };
    rl_cost act200[] = { { "tokens", 200 } };
    rl_cost act1500[] = { { "tokens", 1500 } };
    rl_lease a;
    rl_result res;
    rl_key_stats st;
    assert_int_equal(rl_tier_set(f->r, "default", lims, 1), RL_OK);
    assert_int_equal(rl_lease_begin(f->r, "agent", est, 1, RL_MINUTE, &a, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(res.remaining, 400);
    assert_int_equal(rl_lease_settle(f->r, &a, act200, 1), RL_OK);
    assert_int_equal(rl_stats(f->r, "agent", &st), RL_OK);
    assert_int_equal(st.limits[0].remaining, 800);
    assert_int_equal(rl_lease_begin(f->r, "agent", est, 1, RL_MINUTE, &a, &res), RL_OK);
    assert_int_equal(rl_lease_settle(f->r, &a, act1500, 1), RL_OK);
    assert_int_equal(rl_stats(f->r, "agent", &st), RL_OK);
    assert_int_equal(st.limits[0].remaining, 0);
    assert_int_equal(st.limits[0].debt, 700); /* 200 + 1500 */
    f->now = WIN0 + 2 * RL_MINUTE;
    assert_int_equal(rl_stats(f->r, "agent", &st), RL_OK);
    assert_int_equal(st.limits[0].debt, 0);
    assert_int_equal(st.limits[0].remaining, 1000);
}

/* 1. A reservation belongs to one generation of the key's state: once the
 * key is reset, or moved to another tier, rl_cancel gives nothing back
 * (the units it would return are not in these buckets). A tier change that
 * does not touch the key leaves the reservation returnable. */
static void test_cancel_after_reset_or_retier(void **state)
{
    fixture *f = *state;
    static const rl_limit three[] = { RL_LIMIT("rps", NULL, 3, RL_SECOND, 5) };
    static const rl_limit six[] = { RL_LIMIT("rps", NULL, 6, RL_SECOND, 10) };
    rl_reservation rv, again;
    rl_result res;
    rl_key_stats before, after;
    int i, admitted = 0;
    assert_int_equal(rl_tier_set(f->r, "default", three, 1), RL_OK);
    assert_int_equal(rl_tier_set(f->r, "a", three, 1), RL_OK);
    assert_int_equal(rl_tier_set(f->r, "b", six, 1), RL_OK);
    /* the trace: 5 + reserve 1, reset, 5 + cancel: no sixth unit */
    assert_int_equal(rl_allow(f->r, "k", 5, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_reserve(f->r, "k", 1, RL_SECOND, &rv), RL_OK);
    assert_true(rv.ok);
    assert_int_equal(rl_reset(f->r, "k"), RL_OK);
    for (i = 0; i < 5; i++)
        assert_int_equal(rl_allow(f->r, "k", 1, &res), RL_OK), admitted += res.allowed;
    assert_int_equal(rl_cancel(f->r, &rv), RL_OK);
    for (i = 0; i < 5; i++)
        assert_int_equal(rl_allow(f->r, "k", 1, &res), RL_OK), admitted += res.allowed;
    assert_int_equal(admitted, 5);
    /* reset of a key with an assigned tier (its row stays) */
    assert_int_equal(rl_key_assign(f->r, "ka", "a"), RL_OK);
    assert_int_equal(rl_allow(f->r, "ka", 5, &res), RL_OK);
    assert_int_equal(rl_reserve(f->r, "ka", 1, RL_SECOND, &rv), RL_OK);
    assert_true(rv.ok);
    assert_int_equal(rl_reset(f->r, "ka"), RL_OK);
    assert_int_equal(rl_allow(f->r, "ka", 5, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_cancel(f->r, &rv), RL_OK);
    assert_int_equal(rl_allow(f->r, "ka", 1, &res), RL_OK);
    assert_false(res.allowed);
    /* moved to another tier by rl_key_assign, before any decision under it
     * and after one: cancel changes nothing */
    assert_int_equal(rl_key_assign(f->r, "m", "a"), RL_OK);
    assert_int_equal(rl_allow(f->r, "m", 5, &res), RL_OK);
    assert_int_equal(rl_reserve(f->r, "m", 1, RL_SECOND, &rv), RL_OK);
    assert_true(rv.ok);
    assert_int_equal(rl_key_assign(f->r, "m", "b"), RL_OK);
    assert_int_equal(rl_stats(f->r, "m", &before), RL_OK);
    assert_int_equal(rl_cancel(f->r, &rv), RL_OK);
    assert_int_equal(rl_stats(f->r, "m", &after), RL_OK);
    assert_memory_equal(&before.limits[0], &after.limits[0], sizeof before.limits[0]);
    assert_int_equal(rl_allow(f->r, "m", 0, &res), RL_OK); /* decided under b */
    assert_int_equal(rl_key_assign(f->r, "m", "a"), RL_OK);
    assert_int_equal(rl_allow(f->r, "m", 0, &res), RL_OK); /* and back under a */
    assert_int_equal(rl_stats(f->r, "m", &before), RL_OK);
    assert_int_equal(rl_cancel(f->r, &rv), RL_OK);
    assert_int_equal(rl_stats(f->r, "m", &after), RL_OK);
    assert_memory_equal(&before.limits[0], &after.limits[0], sizeof before.limits[0]);
    /* re-tiered by a reload: the key's tier now has other limits */
    assert_int_equal(rl_allow(f->r, "t", 5, &res), RL_OK);
    assert_int_equal(rl_reserve(f->r, "t", 1, RL_SECOND, &rv), RL_OK);
    assert_true(rv.ok);
    assert_int_equal(rl_tier_set(f->r, "default", six, 1), RL_OK);
    assert_int_equal(rl_stats(f->r, "t", &before), RL_OK);
    assert_int_equal(rl_cancel(f->r, &rv), RL_OK);
    assert_int_equal(rl_stats(f->r, "t", &after), RL_OK);
    assert_memory_equal(&before.limits[0], &after.limits[0], sizeof before.limits[0]);
    /* a tier written that this key does not use: the reservation comes back */
    assert_int_equal(rl_allow(f->r, "u", 10, &res), RL_OK);
    assert_int_equal(rl_reserve(f->r, "u", 1, RL_SECOND, &rv), RL_OK);
    assert_int_equal(rv.delay_ns, RL_SECOND / 6 + 1);
    assert_int_equal(rl_tier_set(f->r, "unrelated", three, 1), RL_OK);
    assert_int_equal(rl_cancel(f->r, &rv), RL_OK);
    assert_int_equal(rl_reserve(f->r, "u", 1, RL_SECOND, &again), RL_OK);
    assert_int_equal(again.delay_ns, rv.delay_ns);
}

/* 2. Any non-negative max_delay_ns is taken as it is: INT64_MAX is "no
 * limit", even for a wait longer than 50 years. */
static void test_reserve_max_delay_uncapped(void **state)
{
    fixture *f = *state;
    const int64_t y50 = 50 * 366 * RL_DAY;
    static const rl_limit slow[] = { RL_LIMIT("slow", NULL, 1, 50 * 366 * RL_DAY, 1) };
    rl_reservation a, b;
    rl_result res;
    assert_int_equal(rl_tier_set(f->r, "default", slow, 1), RL_OK);
    assert_int_equal(rl_allow(f->r, "k", 1, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_reserve(f->r, "k", 1, INT64_MAX, &a), RL_OK);
    assert_true(a.ok);
    assert_int_equal(a.delay_ns, y50);
    assert_int_equal(rl_reserve(f->r, "k", 1, INT64_MAX, &b), RL_OK);
    assert_true(b.ok);
    assert_int_equal(b.delay_ns, 2 * y50);
    assert_int_equal(b.time_to_act, T0 + 2 * y50);
    assert_int_equal(rl_reserve(f->r, "k", 1, 3 * y50 - 1, &b), RL_OK);
    assert_false(b.ok);
    assert_int_equal(b.delay_ns, 3 * y50);
}

/* Issue 17, bug 2: a refused slot reported the holder's TTL as
 * retry_after_ns (600 s for a 10-minute lease), so a caller that honoured
 * it slept ten minutes though a slot can come free at any moment. It is a
 * polling hint: the lesser of RL_SLOT_RETRY_NS and the soonest expiry of a
 * lease that holds units; reset_after_ns is that expiry. */
static void test_slot_retry_hint(void **state)
{
    fixture *f = *state;
    static const rl_limit lims[] = { RL_CONCURRENT("streams", "streams", 2),
                                     RL_LIMIT("tpm", "tokens", 1000, RL_MINUTE, 1000) };
    rl_cost stream[] = { { "streams", 1 } };
    rl_cost tokens[] = { { "tokens", 10 } };
    rl_lease a, b, c, t;
    rl_result res;
    assert_int_equal(rl_tier_set(f->r, "default", lims, 2), RL_OK);
    /* a lease that holds no slot, expiring first, says nothing of slots */
    assert_int_equal(rl_lease_begin(f->r, "k", tokens, 1, RL_MILLISECOND, &t, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_lease_begin(f->r, "k", stream, 1, 10 * RL_MINUTE, &a, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_lease_begin(f->r, "k", stream, 1, 10 * RL_MINUTE, &b, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_lease_begin(f->r, "k", stream, 1, 10 * RL_MINUTE, &c, &res), RL_OK);
    assert_false(res.allowed);
    assert_string_equal(res.limit_name, "streams");
    assert_int_equal(res.retry_after_ns, 50 * RL_MILLISECOND);
    assert_int_equal(res.reset_after_ns, 10 * RL_MINUTE);
    /* the soonest expiry, when it is sooner than the hint */
    f->now += 10 * RL_MINUTE - 20 * RL_MILLISECOND;
    assert_int_equal(rl_lease_begin(f->r, "k", stream, 1, 10 * RL_MINUTE, &c, &res), RL_OK);
    assert_false(res.allowed);
    assert_int_equal(res.retry_after_ns, 20 * RL_MILLISECOND);
    assert_int_equal(res.reset_after_ns, 20 * RL_MILLISECOND);
    /* and then the slot is free */
    f->now += 20 * RL_MILLISECOND;
    assert_int_equal(rl_lease_begin(f->r, "k", stream, 1, 10 * RL_MINUTE, &c, &res), RL_OK);
    assert_true(res.allowed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_reserve_cancel),
        BOTH(test_cancel_twice),
        BOTH(test_window_reserve_delayed_by_other),
        BOTH(test_lease_settle),
        BOTH(test_lease_concurrency),
        BOTH(test_slot_retry_hint),
        BOTH(test_window_reserve_cancel),
        BOTH(test_window_lease),
        BOTH(test_cancel_after_reset_or_retier),
        BOTH(test_reserve_max_delay_uncapped),
    };
    return run_store_tests(tests, sizeof tests / sizeof tests[0], setup_redis);
}
