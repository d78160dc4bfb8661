/*
 * test_window.c - the sliding window counter math of core/window.c, without
 * any store.
 *
 * What users rely on: a fresh window admits exactly count; the previous
 * window weighs in by the share of it still inside the sliding window,
 * rounded up; a refused caller who waits retry_after is admitted and one
 * who waits a nanosecond less is not (for non-divisible rates too); nothing
 * is ever admitted past the exact estimate; a clock going backwards grants
 * nothing; huge values neither overflow nor trap (run under UBSan).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "window.h"

__extension__ typedef __int128 i128;

static rl_ldef mk(int64_t count, int64_t period)
{
    rl_ldef d;
    char err[128];
    memset(&d, 0, sizeof d);
    strcpy(d.name, "w");
    strcpy(d.resource, "requests");
    d.kind = RL_KIND_WINDOW;
    d.count = count;
    d.period_ns = period;
    d.burst = count;
    assert_int_equal(rl_ldef_check(&d, err, sizeof err), RL_OK);
    return d;
}

/* A whole second: windows of 1 s and 1 min start at T0. */
static const int64_t T0 = (int64_t)1700000040 * RL_SECOND;

static int allow(const rl_ldef *d, rl_window *w, int64_t now, int64_t cost, rl_window_out *o)
{
    rl_window_out tmp;
    if (!o)
        o = &tmp;
    rl_window_decide(d, *w, now, cost, 0, o);
    if (o->ok)
        *w = o->w;
    return o->ok;
}

/* Whether cost would be admitted at t, without changing w. */
static int would(const rl_ldef *d, rl_window w, int64_t t, int64_t cost)
{
    return allow(d, &w, t, cost, NULL);
}

/* The exact (rational) estimate at t, times period: prev * (period - e) +
 * cur * period, as of the window holding t. */
static i128 exact_scaled(const rl_ldef *d, rl_window w, int64_t t)
{
    i128 e;
    while ((i128)t >= (i128)w.start + d->period_ns) { /* roll one window at a time */
        w.prev = (i128)t >= (i128)w.start + 2 * (i128)d->period_ns ? 0 : w.cur;
        w.cur = 0;
        w.start += d->period_ns;
    }
    e = (i128)t - w.start;
    if (e < 0)
        e = 0;
    return (i128)w.prev * (d->period_ns - e) + (i128)w.cur * d->period_ns;
}

static void test_fresh_window_admits_count(void **state)
{
    rl_ldef d = mk(10, RL_SECOND);
    rl_window w = rl_window_fresh(&d, T0 + 300 * RL_MILLISECOND);
    rl_window_out o;
    int i;
    (void)state;
    assert_int_equal(w.start, T0);
    for (i = 0; i < 10; i++) {
        assert_true(allow(&d, &w, T0 + 300 * RL_MILLISECOND, 1, &o));
        assert_int_equal(o.remaining, 9 - i);
        assert_int_equal(o.delay_ns, 0);
    }
    assert_false(allow(&d, &w, T0 + 300 * RL_MILLISECOND, 1, &o));
    assert_int_equal(o.remaining, 0);
    /* 10 in prev must weigh <= 9 at the next window's e: e >= 0.1 s */
    assert_int_equal(o.delay_ns, 800 * RL_MILLISECOND);
    /* cur ages out when the window after next begins */
    assert_int_equal(o.reset_after_ns, 1700 * RL_MILLISECOND);
    /* a query is answered and consumes nothing */
    assert_true(allow(&d, &w, T0 + 300 * RL_MILLISECOND, 0, &o));
    assert_int_equal(o.remaining, 0);
    assert_int_equal(w.cur, 10);
    /* cost > count is the caller's RL_ETOOBIG; cost == count fits a fresh key */
    w = rl_window_fresh(&d, T0);
    assert_true(allow(&d, &w, T0, 10, &o));
    assert_int_equal(o.remaining, 0);
}

static void test_weighted_estimate(void **state)
{
    rl_ldef d = mk(10, RL_SECOND);
    rl_window w = rl_window_fresh(&d, T0);
    int64_t rem, reset, retry;
    (void)state;
    assert_true(allow(&d, &w, T0 + 900 * RL_MILLISECOND, 10, NULL));
    /* the next window: prev = 10 weighs 10 * (1 - e) rounded up */
    assert_int_equal(rl_window_estimate(&d, w, T0 + RL_SECOND), 10);
    assert_int_equal(rl_window_estimate(&d, w, T0 + RL_SECOND + 1), 10);
    assert_int_equal(rl_window_estimate(&d, w, T0 + 1250 * RL_MILLISECOND), 8); /* 7.5 */
    assert_int_equal(rl_window_estimate(&d, w, T0 + 1500 * RL_MILLISECOND), 5);
    assert_int_equal(rl_window_estimate(&d, w, T0 + 1500 * RL_MILLISECOND + 1), 5);
    assert_int_equal(rl_window_estimate(&d, w, T0 + 1900 * RL_MILLISECOND), 1);
    assert_int_equal(rl_window_estimate(&d, w, T0 + 2 * RL_SECOND - 1), 1);
    assert_int_equal(rl_window_estimate(&d, w, T0 + 2 * RL_SECOND), 0);
    rl_window_peek(&d, w, T0 + 1250 * RL_MILLISECOND, &rem, &reset, &retry);
    assert_int_equal(rem, 2);
    assert_int_equal(reset, 750 * RL_MILLISECOND); /* prev gone at the window's end */
    assert_int_equal(retry, 0);
    /* admissions in the second window add in full */
    assert_true(allow(&d, &w, T0 + 1500 * RL_MILLISECOND, 3, NULL));
    assert_int_equal(rl_window_estimate(&d, w, T0 + 1500 * RL_MILLISECOND), 8);
    assert_false(would(&d, w, T0 + 1500 * RL_MILLISECOND, 3));
    assert_true(would(&d, w, T0 + 1600 * RL_MILLISECOND, 3)); /* 4 + 3 + 3 */
    /* three in the third window's prev: 3 * 0.5 = 1.5 rounds up to 2 */
    assert_int_equal(rl_window_estimate(&d, w, T0 + 2500 * RL_MILLISECOND), 2);
    /* non-divisible: 3 per second, prev 3: 3 * (1 - e) */
    d = mk(3, RL_SECOND);
    w.start = T0;
    w.prev = 3;
    w.cur = 0;
    assert_int_equal(rl_window_estimate(&d, w, T0 + 333333333), 3); /* 2.000000001 */
    assert_int_equal(rl_window_estimate(&d, w, T0 + 333333334), 2); /* 1.999999998 */
    assert_int_equal(rl_window_estimate(&d, w, T0 + 666666667), 1); /* 0.999999999 */
}

/* Drives a key with an irregular stream of requests; at every refusal the
 * reported retry_after must be exact, and after every admission the exact
 * estimate must be within count. */
static void drive(int64_t count, int64_t period, const int64_t *costs, size_t ncosts)
{
    rl_ldef d = mk(count, period);
    rl_window w = rl_window_fresh(&d, T0);
    uint64_t x = 88172645463325252ULL;
    int64_t now = T0;
    int i, refusals = 0, admissions = 0;
    for (i = 0; i < 4000; i++) {
        int64_t cost = costs[(size_t)i % ncosts];
        rl_window_out o;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        /* on average one request per unit of rate: about as many refused
         * as admitted, with every cost */
        now += (int64_t)(x % (uint64_t)(2 * period / count + 1));
        if (allow(&d, &w, now, cost, &o)) {
            admissions++;
            assert_true(exact_scaled(&d, w, now) <= (i128)count * period);
            assert_true(o.remaining >= 0 && o.remaining <= count);
            continue;
        }
        refusals++;
        assert_true(o.delay_ns > 0);
        assert_true(would(&d, w, now + o.delay_ns, cost));
        assert_false(would(&d, w, now + o.delay_ns - 1, cost));
        /* the estimate never grows while nobody asks: no later time refuses */
        assert_true(would(&d, w, now + o.delay_ns + period / 3, cost));
        assert_true(would(&d, w, now + o.delay_ns + period, cost));
        assert_true(would(&d, w, now + o.reset_after_ns, count));
        if (o.reset_after_ns > 0)
            assert_int_equal(rl_window_estimate(&d, w, now + o.reset_after_ns - 1) > 0, 1);
    }
    assert_true(refusals > 100);
    assert_true(admissions > 100);
}

static void test_retry_after_is_exact(void **state)
{
    static const int64_t one[] = { 1 };
    static const int64_t mixed[] = { 1, 2, 1, 3, 1 };
    static const int64_t some[] = { 2, 5, 1 };
    static const int64_t big[] = { 7, 1, 4 };
    (void)state;
    drive(3, RL_SECOND, one, 1);
    drive(3, RL_SECOND, mixed, 5);
    drive(7, 13 * RL_SECOND, one, 1);
    drive(7, 13 * RL_SECOND, big, 3);
    drive(10, RL_SECOND, some, 3);
    drive(1000, RL_MINUTE, some, 3);
    drive(1, 7, one, 1);
    drive(5, 3, some, 3);
}

static void test_clock_backwards_grants_nothing(void **state)
{
    rl_ldef d = mk(5, RL_SECOND);
    rl_window w = rl_window_fresh(&d, T0);
    rl_window_out o;
    int64_t rem, reset, retry;
    (void)state;
    assert_true(allow(&d, &w, T0 + 1200 * RL_MILLISECOND, 5, NULL)); /* window T0+1s */
    assert_int_equal(w.start, T0 + RL_SECOND);
    /* earlier in the window, before it, a day before: all refused */
    assert_false(allow(&d, &w, T0 + 1100 * RL_MILLISECOND, 1, &o));
    assert_false(allow(&d, &w, T0 + 500 * RL_MILLISECOND, 1, &o));
    assert_false(allow(&d, &w, T0 - RL_DAY, 1, &o));
    assert_int_equal(w.start, T0 + RL_SECOND);
    assert_true(o.delay_ns > RL_DAY);
    /* a clock behind the state weighs prev in full */
    w.prev = 4;
    w.cur = 0;
    assert_int_equal(rl_window_estimate(&d, w, T0), 4);
    assert_false(allow(&d, &w, T0, 2, &o));
    assert_true(allow(&d, &w, T0, 1, &o));
    assert_int_equal(w.start, T0 + RL_SECOND);
    rl_window_peek(&d, w, T0, &rem, &reset, &retry);
    assert_int_equal(rem, 0);
    assert_int_equal(reset, 3 * RL_SECOND);
}

/* A reservation into a window that has not begun keeps the estimate of the
 * meantime from dropping; cancelling it keeps it too. */
static void test_reserve_and_cancel(void **state)
{
    rl_ldef d = mk(10, RL_SECOND);
    rl_window w = rl_window_fresh(&d, T0), before;
    rl_window_out o;
    (void)state;
    w.prev = 10; /* a full window before T0 */
    /* at T0: estimate 10; 9 units fit only when prev weighs 1: e = 0.9 s */
    rl_window_decide(&d, w, T0, 9, RL_SECOND, &o);
    assert_true(o.ok);
    assert_int_equal(o.delay_ns, 900 * RL_MILLISECOND);
    assert_int_equal(o.remaining, 0);
    assert_int_equal(o.w.start, T0);
    assert_int_equal(o.w.cur, 9);
    w = o.w;
    /* 2 more: into the next window, where prev = 9 must weigh <= 8:
     * 9 * (1 s - e) <= 8 s from e = 1/9 s, rounded up to 111111112 ns */
    rl_window_decide(&d, w, T0, 2, 2 * RL_SECOND, &o);
    assert_true(o.ok);
    assert_int_equal(o.delay_ns, RL_SECOND + 111111112);
    assert_int_equal(o.w.start, T0 + RL_SECOND);
    assert_int_equal(o.w.prev, 9);
    assert_int_equal(o.w.cur, 2);
    before = w;
    w = o.w;
    /* the meantime never sees less than it saw before the reservation (or
     * than count, which already refuses everything) */
    assert_int_equal(rl_window_estimate(&d, before, T0), 19);
    assert_int_equal(rl_window_estimate(&d, w, T0), 11);
    assert_false(would(&d, w, T0 + 500 * RL_MILLISECOND, 1));
    /* cancelling it before its window begins keeps prev + cur */
    w = rl_window_cancel(&d, w, T0 + RL_SECOND, 2, T0 + 10);
    assert_int_equal(w.cur, 0);
    assert_int_equal(w.prev, 11);
    assert_int_equal(rl_window_estimate(&d, w, T0 + 10), 11);
    /* in its own window a cancel takes the units out */
    w = rl_window_fresh(&d, T0);
    rl_window_decide(&d, w, T0, 4, 0, &o);
    w = rl_window_cancel(&d, o.w, T0, 4, T0 + 1);
    assert_int_equal(w.cur, 0);
    /* from a window the key has left, nothing */
    rl_window_decide(&d, w, T0, 4, 0, &o);
    w = rl_window_cancel(&d, o.w, T0, 4, T0 + RL_SECOND);
    assert_int_equal(w.prev, 4);
    assert_int_equal(w.cur, 0);
    /* a reservation past both windows raises prev to estimate - cost */
    w.start = T0;
    w.prev = 0;
    w.cur = 10;
    rl_window_decide(&d, w, T0, 10, 3 * RL_SECOND, &o);
    assert_true(o.ok);
    assert_int_equal(o.delay_ns, 2 * RL_SECOND);
    assert_int_equal(o.w.start, T0 + 2 * RL_SECOND);
    assert_int_equal(o.w.prev, 0); /* estimate 10 - cost 10 */
    assert_int_equal(o.w.cur, 10);
    assert_false(would(&d, o.w, T0 + RL_SECOND, 1));
    /* Windows of 3 ns: 10 in cur weigh ceil(10 / 3) = 4 even in the last
     * ns of the next window, so 9 more wait for the one after (T0 + 6).
     * At T0 + 3 the older windows still weigh 10: prev is raised to
     * 10 - 9 = 1 so that prev + cur refuses 1 more in the meantime. */
    d = mk(10, 3);
    w.start = T0;
    w.prev = 0;
    w.cur = 10;
    rl_window_decide(&d, w, T0, 9, RL_SECOND, &o);
    assert_true(o.ok);
    assert_int_equal(o.delay_ns, 6);
    assert_int_equal(o.w.start, T0 + 6);
    assert_int_equal(o.w.prev, 1);
    assert_int_equal(o.w.cur, 9);
    assert_int_equal(exact_scaled(&d, w, T0 + 3), 10 * 3);
    assert_false(would(&d, o.w, T0 + 3, 1));
    assert_false(would(&d, o.w, T0 + 5, 1));
    assert_false(would(&d, o.w, T0 + 8, 1)); /* 1 * 1/3 rounds up to 1, + 9 + 1 */
}

static void test_settle(void **state)
{
    rl_ldef d = mk(100, RL_MINUTE);
    rl_window w = rl_window_fresh(&d, T0);
    (void)state;
    assert_true(allow(&d, &w, T0, 60, NULL));
    /* a refund in the lease's own window */
    w = rl_window_adjust(&d, w, T0 + RL_SECOND, -40, T0);
    assert_int_equal(w.cur, 20);
    /* debt: past count, reported, and it ages out with its window */
    w = rl_window_adjust(&d, w, T0 + RL_SECOND, 130, T0);
    assert_int_equal(w.cur, 150);
    assert_int_equal(rl_window_debt(&d, w, T0 + RL_SECOND), 50);
    assert_false(would(&d, w, T0 + RL_MINUTE + 10 * RL_SECOND, 1)); /* 150 * 5/6 = 125 */
    assert_true(would(&d, w, T0 + RL_MINUTE + 30 * RL_SECOND, 25)); /* 75 + 25 */
    assert_false(would(&d, w, T0 + RL_MINUTE + 30 * RL_SECOND, 26));
    assert_int_equal(rl_window_debt(&d, w, T0 + 2 * RL_MINUTE), 0);
    /* a refund of a lease charged in the window before comes out of prev */
    w = rl_window_fresh(&d, T0);
    assert_true(allow(&d, &w, T0, 50, NULL));
    w = rl_window_adjust(&d, w, T0 + RL_MINUTE + RL_SECOND, -30, T0 + 5);
    assert_int_equal(w.start, T0 + RL_MINUTE);
    assert_int_equal(w.prev, 20);
    /* and of one older than that, nothing */
    w = rl_window_adjust(&d, w, T0 + RL_MINUTE + RL_SECOND, -30, T0 - RL_MINUTE);
    assert_int_equal(w.prev, 20);
    /* a refund never takes more than was counted */
    w = rl_window_adjust(&d, w, T0 + RL_MINUTE + RL_SECOND, -30, T0);
    assert_int_equal(w.prev, 0);
}

static void test_rescale(void **state)
{
    rl_ldef small = mk(10, RL_MINUTE), big = mk(100, RL_MINUTE), hour = mk(100, RL_HOUR);
    rl_window w = rl_window_fresh(&small, T0), r;
    (void)state;
    assert_true(allow(&small, &w, T0, 4, NULL));
    r = rl_window_rescale(&small, &big, w, T0 + RL_SECOND);
    assert_int_equal(r.start, T0);
    assert_int_equal(r.cur, 40);
    r = rl_window_rescale(&big, &small, r, T0 + RL_SECOND);
    assert_int_equal(r.cur, 4);
    /* another period: the estimate, scaled, in a fresh window holding now */
    r = rl_window_rescale(&small, &hour, w, T0 + RL_MINUTE + 30 * RL_SECOND);
    assert_int_equal(r.cur, 20); /* 4 * 0.5 = 2 of 10, so 20 of 100 */
    assert_int_equal(r.prev, 0);
    assert_true(r.start <= T0 + RL_MINUTE + 30 * RL_SECOND);
    assert_int_equal(r.start % RL_HOUR, 0);
    r = rl_window_from_used(&hour, 7, T0);
    assert_int_equal(r.cur, 7);
}

/* count 2^40, 50 years, the largest states rl_state_decode takes, and
 * clocks at both ends of int64: no overflow (UBSan), answers in range. */
static void test_huge_values(void **state)
{
    rl_ldef d = mk(RL_COUNT_MAX, RL_PERIOD_MAX), one = mk(1, 1);
    static const int64_t nows[] = {
        INT64_MIN,     INT64_MIN + 1, -1,       0, 1, (int64_t)1700000000 * RL_SECOND,
        INT64_MAX / 2, INT64_MAX - 1, INT64_MAX
    };
    static const int64_t starts[] = { INT64_MIN, 0, INT64_MAX - RL_PERIOD_MAX, INT64_MAX };
    size_t i, j;
    (void)state;
    for (i = 0; i < sizeof nows / sizeof nows[0]; i++) {
        for (j = 0; j < sizeof starts / sizeof starts[0]; j++) {
            rl_window w = { starts[j], RL_WINDOW_UNITS_MAX, RL_WINDOW_UNITS_MAX }, r;
            rl_window_out o;
            int64_t rem, reset, retry;
            rl_window_decide(&d, w, nows[i], RL_COUNT_MAX, RL_FILL_MAX, &o);
            assert_true(o.delay_ns >= 0 && o.reset_after_ns >= 0);
            assert_true(o.remaining >= 0 && o.remaining <= RL_COUNT_MAX);
            rl_window_peek(&d, w, nows[i], &rem, &reset, &retry);
            assert_true(retry >= 0 && reset >= 0);
            assert_true(rl_window_debt(&d, w, nows[i]) >= 0);
            r = rl_window_adjust(&d, w, nows[i], INT64_MAX, nows[i]);
            assert_true(r.cur <= RL_WINDOW_UNITS_MAX);
            r = rl_window_adjust(&d, w, nows[i], INT64_MIN, INT64_MIN);
            assert_true(r.cur >= 0 && r.prev >= 0);
            r = rl_window_cancel(&d, w, starts[j], RL_COUNT_MAX, nows[i]);
            assert_true(r.cur >= 0 && r.prev <= RL_WINDOW_UNITS_MAX);
            r = rl_window_rescale(&d, &one, w, nows[i]);
            assert_true(r.cur >= 0 && r.cur <= RL_WINDOW_UNITS_MAX);
            r = rl_window_rescale(&one, &d, w, nows[i]);
            assert_true(r.cur >= 0 && r.cur <= RL_WINDOW_UNITS_MAX);
            rl_window_decide(&one, w, nows[i], 1, RL_FILL_MAX, &o);
            assert_true(o.delay_ns >= 0);
            r = rl_window_fresh(&d, nows[i]);
            assert_true(r.start <= nows[i]);
        }
    }
    /* the whole count at once, and again after both windows aged out */
    {
        rl_window w = rl_window_fresh(&d, T0);
        rl_window_out o;
        assert_true(allow(&d, &w, T0, RL_COUNT_MAX, &o));
        assert_false(allow(&d, &w, T0, 1, &o));
        assert_true(would(&d, w, T0 + o.delay_ns, 1));
        assert_true(would(&d, w, T0 + o.reset_after_ns, RL_COUNT_MAX));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fresh_window_admits_count),
        cmocka_unit_test(test_weighted_estimate),
        cmocka_unit_test(test_retry_after_is_exact),
        cmocka_unit_test(test_clock_backwards_grants_nothing),
        cmocka_unit_test(test_reserve_and_cancel),
        cmocka_unit_test(test_settle),
        cmocka_unit_test(test_rescale),
        cmocka_unit_test(test_huge_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
