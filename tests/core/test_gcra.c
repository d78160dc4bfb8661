/*
 * test_gcra.c - the admission math of core/gcra.c, without any store.
 *
 * What users rely on: a burst passes at once, units come back at exactly the
 * configured rate (no rounding drift, even for 3/s), a refused caller who
 * waits retry_after is admitted, nothing ever admits more than
 * burst + rate * elapsed, a clock going backwards grants nothing, and huge
 * values neither overflow nor trap (run under UBSan).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gcra.h"

static rl_ldef mk(int64_t count, int64_t period, int64_t burst)
{
    rl_ldef d;
    char err[128];
    memset(&d, 0, sizeof d);
    strcpy(d.name, "t");
    strcpy(d.resource, "requests");
    d.count = count;
    d.period_ns = period;
    d.burst = burst;
    assert_int_equal(rl_ldef_check(&d, err, sizeof err), RL_OK);
    return d;
}

static const int64_t T0 = (int64_t)1700000000 * RL_SECOND;

/* Applies one Allow of cost at now, updating tat when admitted. */
static int allow(const rl_ldef *d, rl_tat *tat, int64_t now, int64_t cost, rl_gcra_out *o)
{
    rl_gcra_out tmp;
    if (!o)
        o = &tmp;
    rl_gcra_decide(d, *tat, now, cost, 0, o);
    if (o->ok)
        *tat = o->tat;
    return o->ok;
}

static void test_burst_then_refuse(void **state)
{
    rl_ldef d = mk(10, RL_SECOND, 10);
    rl_tat tat = { 0, 0 };
    rl_gcra_out o;
    int i;
    (void)state;
    for (i = 0; i < 10; i++) {
        assert_true(allow(&d, &tat, T0, 1, &o));
        assert_int_equal(o.remaining, 9 - i);
    }
    assert_false(allow(&d, &tat, T0, 1, &o));
    assert_int_equal(o.delay_ns, 100 * RL_MILLISECOND);
    assert_int_equal(o.remaining, 0);
    assert_int_equal(o.reset_after_ns, RL_SECOND);
}

static void test_refill_at_rate(void **state)
{
    rl_ldef d = mk(10, RL_SECOND, 10);
    rl_tat tat = { 0, 0 };
    int i;
    (void)state;
    for (i = 0; i < 10; i++)
        assert_true(allow(&d, &tat, T0, 1, NULL));
    assert_false(allow(&d, &tat, T0 + 100 * RL_MILLISECOND - 1, 1, NULL));
    assert_true(allow(&d, &tat, T0 + 100 * RL_MILLISECOND, 1, NULL));
    assert_false(allow(&d, &tat, T0 + 100 * RL_MILLISECOND, 1, NULL));
    /* after a full period the whole burst is back */
    for (i = 0; i < 10; i++)
        assert_true(allow(&d, &tat, T0 + 1100 * RL_MILLISECOND, 1, NULL));
    assert_false(allow(&d, &tat, T0 + 1100 * RL_MILLISECOND, 1, NULL));
}

/* 3/s cannot be written as a whole number of ns per unit: the scaled
 * representation must still pass the full burst and exactly 3 per second. */
static void test_exact_thirds(void **state)
{
    rl_ldef d = mk(3, RL_SECOND, 3);
    rl_tat tat = { 0, 0 };
    int64_t t;
    int admitted = 0;
    (void)state;
    assert_true(allow(&d, &tat, T0, 1, NULL));
    assert_true(allow(&d, &tat, T0, 1, NULL));
    assert_true(allow(&d, &tat, T0, 1, NULL));
    assert_false(allow(&d, &tat, T0, 1, NULL));
    /* over 1000 s of polling every ms: exactly 3000 more */
    for (t = T0 + RL_MILLISECOND; t <= T0 + 1000 * RL_SECOND; t += RL_MILLISECOND)
        admitted += allow(&d, &tat, t, 1, NULL);
    assert_int_equal(admitted, 3000);
}

static void test_retry_after_is_enough(void **state)
{
    rl_ldef d = mk(7, 3 * RL_SECOND, 5);
    rl_tat tat = { 0, 0 };
    rl_gcra_out o;
    int64_t now = T0;
    int i;
    (void)state;
    for (i = 0; i < 200; i++) {
        if (!allow(&d, &tat, now, 2, &o)) {
            assert_true(o.delay_ns > 0);
            /* one ns early is refused, on time is admitted */
            assert_false(allow(&d, &tat, now + o.delay_ns - 1, 2, NULL));
            now += o.delay_ns;
            assert_true(allow(&d, &tat, now, 2, NULL));
        }
    }
}

static void test_cost_weights(void **state)
{
    rl_ldef d = mk(100, RL_MINUTE, 10);
    rl_tat tat = { 0, 0 };
    rl_gcra_out o;
    (void)state;
    assert_true(allow(&d, &tat, T0, 5, &o));
    assert_int_equal(o.remaining, 5);
    assert_false(allow(&d, &tat, T0, 6, &o));
    assert_int_equal(o.remaining, 5);
    assert_int_equal(o.delay_ns, 600 * RL_MILLISECOND); /* one unit is 0.6 s */
    assert_true(allow(&d, &tat, T0, 5, &o));
    assert_int_equal(o.remaining, 0);
    /* cost 0 is a query: always answered, nothing consumed */
    assert_true(allow(&d, &tat, T0, 0, &o));
    assert_int_equal(o.remaining, 0);
}

/* Random arrivals and costs: admitted units never exceed
 * burst + count * elapsed / period, and a saturating client gets nearly that. */
static void test_bound_holds(void **state)
{
    rl_ldef d = mk(7, 3 * RL_SECOND, 13);
    rl_tat tat = { 0, 0 };
    uint64_t x = 88172645463325252ULL;
    int64_t now = T0, units = 0;
    int i;
    (void)state;
    for (i = 0; i < 200000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        now += (int64_t)(x % (50 * RL_MILLISECOND));
        if (allow(&d, &tat, now, (int64_t)(x % 4), NULL))
            units += (int64_t)(x % 4);
        /* units <= burst + 7 * elapsed / 3 s */
        assert_true((__int128)(units - 13) * 3 * RL_SECOND <= (__int128)7 * (now - T0));
    }
    assert_true((__int128)units * 3 * RL_SECOND * 100 >= (__int128)98 * 7 * (now - T0));
}

static void test_clock_backwards_grants_nothing(void **state)
{
    rl_ldef d = mk(10, RL_SECOND, 10);
    rl_tat tat = { 0, 0 };
    int i;
    (void)state;
    for (i = 0; i < 10; i++)
        assert_true(allow(&d, &tat, T0, 1, NULL));
    /* an hour back: still empty, and still empty when time returns */
    assert_false(allow(&d, &tat, T0 - RL_HOUR, 1, NULL));
    assert_false(allow(&d, &tat, T0, 1, NULL));
    assert_true(allow(&d, &tat, T0 + 100 * RL_MILLISECOND, 1, NULL));
    /* a year forward: a full bucket, never more */
    for (i = 0; i < 10; i++)
        assert_true(allow(&d, &tat, T0 + 366 * RL_DAY, 1, NULL));
    assert_false(allow(&d, &tat, T0 + 366 * RL_DAY, 1, NULL));
}

static void test_huge_values(void **state)
{
    rl_ldef d = mk(RL_COUNT_MAX, RL_NANOSECOND, RL_COUNT_MAX);
    rl_ldef slow = mk(1, RL_FILL_MAX, 1);
    rl_tat tat = { 0, 0 };
    rl_gcra_out o;
    int64_t rem, reset, retry;
    (void)state;
    assert_true(allow(&d, &tat, T0, RL_COUNT_MAX, &o));
    assert_int_equal(o.remaining, 0);
    assert_false(allow(&d, &tat, T0, RL_COUNT_MAX, &o));
    assert_true(o.delay_ns > 0);
    tat.ns = 0;
    tat.rem = 0;
    assert_true(allow(&slow, &tat, T0, 1, &o));
    assert_false(allow(&slow, &tat, T0, 1, &o));
    assert_int_equal(o.delay_ns, RL_FILL_MAX);
    /* a stored TAT far in the future must not overflow */
    tat.ns = INT64_MAX - 1;
    tat.rem = 0;
    rl_gcra_peek(&slow, tat, T0, &rem, &reset, &retry);
    assert_int_equal(rem, 0);
    assert_true(reset > 0 && retry > 0);
    rl_gcra_decide(&d, tat, INT64_MAX / 2, RL_COUNT_MAX, RL_FILL_MAX, &o);
    assert_false(o.ok);
}

static void test_check_refuses_bad_limits(void **state)
{
    rl_ldef d;
    char err[128];
    (void)state;
    memset(&d, 0, sizeof d);
    strcpy(d.name, "x");
    d.count = 0, d.period_ns = RL_SECOND, d.burst = 1;
    assert_int_equal(rl_ldef_check(&d, err, sizeof err), RL_EINVAL);
    assert_non_null(strstr(err, "count"));
    d.count = -5;
    assert_int_equal(rl_ldef_check(&d, err, sizeof err), RL_EINVAL);
    d.count = 1, d.period_ns = 0;
    assert_int_equal(rl_ldef_check(&d, err, sizeof err), RL_EINVAL);
    assert_non_null(strstr(err, "period"));
    d.period_ns = RL_SECOND, d.burst = 0;
    assert_int_equal(rl_ldef_check(&d, err, sizeof err), RL_EINVAL);
    assert_non_null(strstr(err, "burst"));
    d.burst = -1;
    assert_int_equal(rl_ldef_check(&d, err, sizeof err), RL_EINVAL);
    d.burst = RL_COUNT_MAX + 1;
    assert_int_equal(rl_ldef_check(&d, err, sizeof err), RL_EINVAL);
    d.burst = RL_COUNT_MAX, d.period_ns = RL_DAY; /* 2^40 days to refill */
    assert_int_equal(rl_ldef_check(&d, err, sizeof err), RL_EINVAL);
    d.count = RL_COUNT_MAX + 1, d.burst = 1;
    assert_int_equal(rl_ldef_check(&d, err, sizeof err), RL_EINVAL);
}

static void test_reserve_and_cancel(void **state)
{
    rl_ldef d = mk(10, RL_SECOND, 1);
    rl_tat tat = { 0, 0 }, a1, a2;
    rl_gcra_out o;
    (void)state;
    assert_true(allow(&d, &tat, T0, 1, NULL));
    /* reserve: 100 ms away, within a 1 s max delay */
    rl_gcra_decide(&d, tat, T0, 1, RL_SECOND, &o);
    assert_true(o.ok);
    assert_int_equal(o.delay_ns, 100 * RL_MILLISECOND);
    tat = a1 = o.tat;
    /* a later reservation builds on it */
    rl_gcra_decide(&d, tat, T0, 1, RL_SECOND, &o);
    assert_int_equal(o.delay_ns, 200 * RL_MILLISECOND);
    tat = a2 = o.tat;
    /* cancelling the first gives nothing back: the second stands on it */
    tat = rl_gcra_cancel(&d, tat, a1, 1);
    assert_int_equal(tat.ns, a2.ns);
    /* cancelling the last gives it all back */
    tat = rl_gcra_cancel(&d, tat, a2, 1);
    assert_int_equal(tat.ns, a1.ns);
    assert_int_equal(tat.rem, a1.rem);
    /* beyond max delay: refused, state untouched */
    rl_gcra_decide(&d, tat, T0, 1, 50 * RL_MILLISECOND, &o);
    assert_false(o.ok);
    assert_int_equal(o.tat.ns, tat.ns);
}

static void test_rescale_keeps_fraction(void **state)
{
    rl_ldef old = mk(10, RL_SECOND, 10), nw = mk(20, RL_SECOND, 20);
    rl_tat tat = { 0, 0 };
    rl_gcra_out o;
    int i;
    (void)state;
    for (i = 0; i < 5; i++)
        assert_true(allow(&old, &tat, T0, 1, NULL));
    tat = rl_gcra_rescale(&old, &nw, tat, T0);
    rl_gcra_decide(&nw, tat, T0, 0, 0, &o);
    assert_int_equal(o.remaining, 10); /* half of 20 */
    /* a full bucket stays full */
    tat.ns = 0, tat.rem = 0;
    tat = rl_gcra_rescale(&old, &nw, tat, T0);
    rl_gcra_decide(&nw, tat, T0, 0, 0, &o);
    assert_int_equal(o.remaining, 20);
    /* shrinking: 5 of 10 spent becomes 1 of 2 spent */
    nw = mk(2, RL_SECOND, 2);
    tat.ns = 0, tat.rem = 0;
    for (i = 0; i < 5; i++)
        assert_true(allow(&old, &tat, T0, 1, NULL));
    tat = rl_gcra_rescale(&old, &nw, tat, T0);
    rl_gcra_decide(&nw, tat, T0, 0, 0, &o);
    assert_int_equal(o.remaining, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_refuse),
        cmocka_unit_test(test_refill_at_rate),
        cmocka_unit_test(test_exact_thirds),
        cmocka_unit_test(test_retry_after_is_enough),
        cmocka_unit_test(test_cost_weights),
        cmocka_unit_test(test_bound_holds),
        cmocka_unit_test(test_clock_backwards_grants_nothing),
        cmocka_unit_test(test_huge_values),
        cmocka_unit_test(test_check_refuses_bad_limits),
        cmocka_unit_test(test_reserve_and_cancel),
        cmocka_unit_test(test_rescale_keeps_fraction),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
