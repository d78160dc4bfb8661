/*
 * test_tiers.c - core/tiers.c through the API, on every store
 * (api_fixture.h): rl_tier_set, rl_tier_delete, rl_tier_get and
 * rl_key_assign (bad tiers refused, assignments, unlimited tiers, a removed
 * tier falling back to the defaults, no tier at all), a changed tier
 * rescaling what keys have spent, a sliding window kept across a rewrite,
 * period 0 refused (concurrency limits are RL_CONCURRENT), and the default
 * limits every handle on a store shares (stored as the tier "default",
 * RL_EMISMATCH, RL_OPEN_OVERRIDE_DEFAULTS, read-only handles).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "api_fixture.h"

static void test_tiers_and_assignment(void **state)
{
    fixture *f = *state;
    static const rl_limit pro[] = { RL_PER_SECOND(100, 0) };
    static const rl_limit bad[] = { RL_PER_SECOND(0, 0) };
    static const rl_limit dup[] = { RL_LIMIT("a", NULL, 1, RL_SECOND, 0),
                                    RL_LIMIT("a", NULL, 2, RL_SECOND, 0) };
    rl_result res;
    rl_key_stats st;
    assert_int_equal(rl_tier_set(f->r, "pro", pro, 1), RL_OK);
    assert_int_equal(rl_tier_set(f->r, "bad", bad, 1), RL_EINVAL);
    assert_non_null(strstr(rl_errmsg(f->r), "count"));
    assert_int_equal(rl_tier_set(f->r, "dup", dup, 2), RL_EINVAL);
    assert_int_equal(rl_tier_set(f->r, "no spaces", pro, 1), RL_EINVAL);
    assert_int_equal(rl_key_assign(f->r, "vip", "pro"), RL_OK);
    assert_int_equal(rl_key_assign(f->r, "vip", "gold"), RL_ENOTFOUND);
    assert_int_equal(rl_allow(f->r, "vip", 50, &res), RL_OK);
    assert_true(res.allowed);
    assert_string_equal(res.limit_name, "limit1");
    assert_int_equal(res.limit, 100);
    assert_int_equal(rl_stats(f->r, "vip", &st), RL_OK);
    assert_string_equal(st.tier, "pro");
    assert_int_equal(st.tier_source, RL_TIER_ASSIGNED);
    /* unassigned keys keep the options' defaults */
    assert_int_equal(rl_allow(f->r, "plain", 11, &res), RL_ETOOBIG);
    /* an unlimited tier admits anything */
    assert_int_equal(rl_tier_set(f->r, "free4all", NULL, 0), RL_OK);
    assert_int_equal(rl_key_assign(f->r, "vip", "free4all"), RL_OK);
    assert_int_equal(rl_allow(f->r, "vip", 1000000, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(res.remaining, INT64_MAX);
    /* a removed tier falls back to the defaults; reset keeps the assignment */
    assert_int_equal(rl_key_assign(f->r, "vip", "pro"), RL_OK);
    assert_int_equal(rl_tier_delete(f->r, "pro"), RL_OK);
    assert_int_equal(rl_tier_delete(f->r, "pro"), RL_ENOTFOUND);
    assert_int_equal(rl_stats(f->r, "vip", &st), RL_OK);
    assert_int_equal(st.tier_source, RL_TIER_OPTIONS);
    assert_int_equal(rl_tier_set(f->r, "pro", pro, 1), RL_OK);
    assert_int_equal(rl_reset(f->r, "vip"), RL_OK);
    assert_int_equal(rl_stats(f->r, "vip", &st), RL_OK);
    assert_string_equal(st.tier, "pro");
    assert_int_equal(rl_key_assign(f->r, "vip", NULL), RL_OK);
    assert_int_equal(rl_stats(f->r, "vip", &st), RL_OK);
    assert_int_equal(st.tier_source, RL_TIER_OPTIONS);
}

/* A changed tier keeps what each key has spent, rescaled to the new burst. */
static void test_tier_change_rescales(void **state)
{
    fixture *f = *state;
    static const rl_limit small[] = { RL_LIMIT("rpm", NULL, 10, RL_MINUTE, 10) };
    static const rl_limit big[] = { RL_LIMIT("rpm", NULL, 100, RL_MINUTE, 100) };
    rl_result res;
    assert_int_equal(rl_tier_set(f->r, "default", small, 1), RL_OK);
    assert_int_equal(rl_allow(f->r, "k", 4, &res), RL_OK);
    assert_int_equal(res.remaining, 6);
    assert_int_equal(rl_tier_set(f->r, "default", big, 1), RL_OK);
    assert_int_equal(rl_allow(f->r, "k", 0, &res), RL_OK);
    assert_int_equal(res.remaining, 60);
}

/* Without the default limits (the fixture's handle stored them as the tier
 * "default"), a key that nothing covers has no limits. */
static void test_no_limits(void **state)
{
    fixture *f = *state;
    rl_result res;
    rl_close(f->r);
    assert_int_equal(open_with(f, NULL, 0, &f->r), RL_OK);
    /* (a new memory store is empty: it has none to delete) */
    assert_int_equal(rl_tier_delete(f->r, "default"), f->sqlite ? RL_OK : RL_ENOTFOUND);
    assert_int_equal(rl_allow(f->r, "k", 1, &res), RL_ENOLIMIT);
    assert_false(res.allowed);
    assert_non_null(strstr(rl_errmsg(f->r), "no tier"));
}

/* ---- default limits every process agrees on (issue 17) ------------------ */

static int64_t clock_of(void *ctx)
{
    return ((fixture *)ctx)->now;
}

/* open_with, with open flags. */
static int open_flags(fixture *f, const rl_limit *lims, size_t n, unsigned flags, rl **out)
{
    rl_options o = RL_OPTIONS_INIT;
    o.clock = clock_of;
    o.clock_ctx = f;
    o.default_limits = lims;
    o.n_default_limits = n;
    o.flags = flags;
    return rl_open(out, f->path, &o);
}

/* The options' defaults are the store's tier "default": listed, read back,
 * and what rl_stats reports as the default limits. */
static void test_defaults_stored(void **state)
{
    fixture *f = *state;
    rl_tier_info ti;
    rl_key_stats st;
    assert_int_equal(rl_tier_get(f->r, "default", &ti), RL_OK);
    assert_int_equal(ti.n_limits, 1);
    assert_string_equal(ti.limits[0].name, "rps");
    assert_int_equal(ti.limits[0].count, 10);
    assert_int_equal(ti.limits[0].burst, 10);
    assert_int_equal(rl_stats(f->r, "anyone", &st), RL_OK);
    assert_string_equal(st.tier, "default");
    assert_int_equal(st.tier_source, RL_TIER_OPTIONS);
    assert_int_equal(st.n_limits, 1);
    assert_int_equal(st.limits[0].remaining, 10);
}

/* Two handles with the same defaults agree, whatever order they list them
 * in; other defaults are refused at open and leave the stored ones; a
 * handle without defaults decides with the stored ones. */
static void test_defaults_agree(void **state)
{
    fixture *f = *state;
    static const rl_limit same[] = { RL_LIMIT("rps", NULL, 10, RL_SECOND, 10) };
    static const rl_limit other[] = { RL_LIMIT("rps", NULL, 60, RL_MINUTE, 10) };
    static const rl_limit two[] = { RL_LIMIT("rps", NULL, 10, RL_SECOND, 10),
                                    RL_LIMIT("tpm", "tokens", 1000, RL_MINUTE, 0) };
    static const rl_limit two_swapped[] = { RL_LIMIT("tpm", "tokens", 1000, RL_MINUTE, 1000),
                                            RL_LIMIT("rps", NULL, 10, RL_SECOND, 0) };
    rl *a = NULL, *b = NULL, *none = NULL;
    rl_result res;
    rl_key_stats st;
    assert_int_equal(open_with(f, same, 1, &a), RL_OK);
    assert_int_equal(rl_allow(f->r, "k", 4, &res), RL_OK);
    assert_int_equal(rl_allow(a, "k", 4, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(res.remaining, 2); /* one bucket, shared */
    /* other defaults: refused, saying both, and nothing changes */
    assert_int_equal(open_with(f, other, 1, &b), RL_EMISMATCH);
    assert_non_null(strstr(rl_errmsg(b), "rps 60/min burst 10"));
    assert_non_null(strstr(rl_errmsg(b), "rps 10/s"));
    assert_non_null(strstr(rl_errmsg(b), "RL_OPEN_OVERRIDE_DEFAULTS"));
    assert_string_equal(rl_strerror(RL_EMISMATCH),
                        "the limits given in code disagree with those the database holds");
    rl_close(b);
    b = NULL;
    assert_int_equal(rl_allow(a, "k", 3, &res), RL_OK);
    assert_false(res.allowed); /* still 10/s: 2 left */
    /* no defaults: the stored ones */
    assert_int_equal(open_with(f, NULL, 0, &none), RL_OK);
    assert_int_equal(rl_allow(none, "k", 2, &res), RL_OK);
    assert_true(res.allowed);
    assert_string_equal(res.limit_name, "rps");
    assert_int_equal(res.remaining, 0);
    assert_int_equal(rl_stats(none, "k", &st), RL_OK);
    assert_int_equal(st.tier_source, RL_TIER_OPTIONS);
    assert_string_equal(st.tier, "default");
    /* the same limits in another order (and burst 0 for count) agree */
    assert_int_equal(open_flags(f, two, 2, RL_OPEN_OVERRIDE_DEFAULTS, &b), RL_OK);
    rl_close(b);
    assert_int_equal(open_with(f, two_swapped, 2, &b), RL_OK);
    rl_close(b);
    rl_close(none);
    rl_close(a);
}

/* RL_OPEN_OVERRIDE_DEFAULTS replaces the stored defaults, and every other
 * handle applies them from its next decision. */
static void test_defaults_override(void **state)
{
    fixture *f = *state;
    static const rl_limit tight[] = { RL_LIMIT("rpm", NULL, 2, RL_MINUTE, 2) };
    rl *b = NULL, *none = NULL;
    rl_result res;
    assert_int_equal(open_with(f, NULL, 0, &none), RL_OK);
    assert_int_equal(rl_allow(none, "k", 5, &res), RL_OK);
    assert_string_equal(res.limit_name, "rps");
    assert_int_equal(open_flags(f, tight, 1, RL_OPEN_OVERRIDE_DEFAULTS, &b), RL_OK);
    assert_int_equal(rl_allow(f->r, "k", 5, &res), RL_ETOOBIG); /* burst 2 now */
    assert_int_equal(rl_allow(f->r, "fresh", 2, &res), RL_OK);
    assert_true(res.allowed);
    assert_string_equal(res.limit_name, "rpm");
    assert_int_equal(rl_allow(none, "fresh", 1, &res), RL_OK);
    assert_false(res.allowed);
    assert_string_equal(res.limit_name, "rpm");
    rl_close(b);
    b = NULL;
    /* the fixture's own defaults are the old ones now: refused */
    assert_int_equal(open_with(f, NULL, 0, &b), RL_OK);
    rl_close(b);
    b = NULL;
    {
        static const rl_limit old[] = { RL_LIMIT("rps", NULL, 10, RL_SECOND, 10) };
        assert_int_equal(open_with(f, old, 1, &b), RL_EMISMATCH);
        rl_close(b);
    }
    rl_close(none);
}

/* A read-only handle compares but cannot write: the same defaults open,
 * other ones are RL_EMISMATCH, overriding them RL_EREADONLY. */
static void test_defaults_readonly(void **state)
{
    fixture *f = *state;
    static const rl_limit same[] = { RL_LIMIT("rps", NULL, 10, RL_SECOND, 10) };
    static const rl_limit other[] = { RL_LIMIT("rps", NULL, 5, RL_SECOND, 5) };
    rl *r = NULL;
    assert_int_equal(open_flags(f, same, 1, RL_OPEN_READONLY, &r), RL_OK);
    rl_close(r);
    assert_int_equal(open_flags(f, other, 1, RL_OPEN_READONLY, &r), RL_EMISMATCH);
    rl_close(r);
    assert_int_equal(open_flags(f, other, 1, RL_OPEN_READONLY | RL_OPEN_OVERRIDE_DEFAULTS, &r),
                     RL_EREADONLY);
    rl_close(r);
}

/* Loading a tiers file replaces every tier, the default limits too: a file
 * without a tier "default" leaves keys it does not cover without limits in
 * every handle, until a handle opens with default limits again. */
static void test_defaults_replaced_by_load(void **state)
{
    fixture *f = *state;
    static const rl_limit lims[] = { RL_LIMIT("rps", NULL, 10, RL_SECOND, 10) };
    char yaml[600];
    FILE *fp;
    rl *r = NULL;
    rl_result res;
    rl_key_stats st;
    snprintf(yaml, sizeof yaml, "%s/t.yaml", f->dir);
    fp = fopen(yaml, "w");
    assert_non_null(fp);
    fputs("version: 1\ntiers:\n  pro: { limits: [ { name: rpm, rate: 60/min } ] }\n", fp);
    fclose(fp);
    assert_int_equal(rl_load_tiers(f->r, yaml), RL_OK);
    assert_int_equal(rl_allow(f->r, "k", 1, &res), RL_ENOLIMIT);
    assert_int_equal(rl_stats(f->r, "k", &st), RL_OK);
    assert_int_equal(st.tier_source, RL_TIER_NONE);
    if (!f->sqlite)
        return;
    assert_int_equal(open_with(f, lims, 1, &r), RL_OK);
    assert_int_equal(rl_allow(f->r, "k", 1, &res), RL_OK);
    assert_true(res.allowed);
    rl_close(r);
}

/* Writing the tier again keeps a window whose limit did not change as it
 * was, wherever it moved in the tier; a changed count keeps the share. */
static void test_window_survives_reload(void **state)
{
    fixture *f = *state;
    static const rl_limit one[] = { RL_SLIDING_WINDOW("rpm", NULL, 3, RL_MINUTE) };
    static const rl_limit two[] = { RL_LIMIT("rps", NULL, 5, RL_SECOND, 5),
                                    RL_SLIDING_WINDOW("rpm", NULL, 3, RL_MINUTE) };
    static const rl_limit six[] = { RL_SLIDING_WINDOW("rpm", NULL, 6, RL_MINUTE) };
    rl_key_stats st, again;
    rl_result res;
    assert_int_equal(rl_tier_set(f->r, "default", one, 1), RL_OK);
    assert_int_equal(rl_allow(f->r, "k", 2, &res), RL_OK);
    f->now += 50 * RL_SECOND; /* the next window, 10 s in: prev 2 weighs 2 */
    assert_int_equal(rl_allow(f->r, "k", 0, &res), RL_OK);
    assert_int_equal(res.remaining, 1);
    assert_int_equal(rl_stats(f->r, "k", &st), RL_OK);
    assert_int_equal(rl_tier_set(f->r, "default", one, 1), RL_OK);
    assert_int_equal(rl_stats(f->r, "k", &again), RL_OK);
    assert_memory_equal(&st.limits[0], &again.limits[0], sizeof st.limits[0]);
    assert_int_equal(rl_tier_set(f->r, "default", two, 2), RL_OK);
    assert_int_equal(rl_stats(f->r, "k", &again), RL_OK);
    assert_memory_equal(&st.limits[0], &again.limits[1], sizeof st.limits[0]);
    assert_int_equal(rl_allow(f->r, "k", 1, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_allow(f->r, "k", 1, &res), RL_OK);
    assert_false(res.allowed);
    assert_string_equal(res.limit_name, "rpm");
    /* twice the count: prev 2 and cur 1 become 4 and 2 */
    assert_int_equal(rl_tier_set(f->r, "default", six, 1), RL_OK);
    assert_int_equal(rl_allow(f->r, "k", 0, &res), RL_OK);
    assert_int_equal(res.remaining, 0);
    f->now += 30 * RL_SECOND; /* 40 s in: 4 weighs 4/3, rounded up 2 */
    assert_int_equal(rl_allow(f->r, "k", 0, &res), RL_OK);
    assert_int_equal(res.remaining, 2);
}

/* A GCRA limit turned into a sliding window keeps its debt, however large:
 * a bucket of 2^40 per nanosecond whose TAT lies a second ahead of the
 * clock (the clock went back) owes more units than an int64 holds. The
 * debt saturates (no overflow: the sanitizer build would abort) and the
 * window starts full. */
static void test_huge_debt_carried_into_window(void **state)
{
    fixture *f = *state;
    static const rl_limit gcra[] = { RL_LIMIT("l", NULL, (int64_t)1 << 40, 1, (int64_t)1 << 40) };
    static const rl_limit win[] = { RL_SLIDING_WINDOW("l", NULL, 10, RL_MINUTE) };
    rl_result res;
    assert_int_equal(rl_tier_set(f->r, "default", gcra, 1), RL_OK);
    assert_int_equal(rl_allow(f->r, "k", 1, &res), RL_OK);
    assert_true(res.allowed);
    f->now -= RL_SECOND;
    assert_int_equal(rl_tier_set(f->r, "default", win, 1), RL_OK);
    assert_int_equal(rl_allow(f->r, "k", 1, &res), RL_OK);
    assert_false(res.allowed);
    assert_int_equal(res.remaining, 0);
}

/* 7. Period 0 is not a way to spell a concurrency limit: RL_CONCURRENT
 * (RL_ALGO_CONCURRENT) is; a rate with period 0 is refused. */
static void test_period_zero_refused(void **state)
{
    fixture *f = *state;
    static const rl_limit zero[] = { RL_LIMIT("rps", NULL, 5, 0, 5) };
    static const rl_limit zero_w[] = { RL_SLIDING_WINDOW("rpm", NULL, 5, 0) };
    static const rl_limit conc[] = { RL_CONCURRENT("streams", "streams", 2),
                                     RL_LIMIT("rps", NULL, 5, RL_SECOND, 5) };
    rl_limit back[2], bad = RL_CONCURRENT("c", NULL, 2);
    rl_options o = RL_OPTIONS_INIT;
    rl_tier_info ti, ti2;
    rl_key_stats st;
    rl *r = NULL;
    size_t i;
    assert_int_equal(rl_tier_set(f->r, "z", zero, 1), RL_EINVAL);
    assert_non_null(strstr(rl_errmsg(f->r), "period must be positive"));
    assert_int_equal(rl_tier_set(f->r, "z", zero_w, 1), RL_EINVAL);
    assert_int_equal(rl_tier_get(f->r, "z", &ti), RL_ENOTFOUND);
    o.default_limits = zero;
    o.n_default_limits = 1;
    assert_int_equal(rl_open(&r, ":memory:", &o), RL_EINVAL);
    rl_close(r);
    bad.period_ns = RL_SECOND; /* a concurrency limit has no period */
    assert_int_equal(rl_tier_set(f->r, "z", &bad, 1), RL_EINVAL);
    /* declared, it is reported as such, and what is read back writes back */
    assert_int_equal(rl_tier_set(f->r, "c", conc, 2), RL_OK);
    assert_int_equal(rl_tier_get(f->r, "c", &ti), RL_OK);
    assert_int_equal(ti.limits[0].algorithm, RL_ALGO_CONCURRENT);
    assert_int_equal(ti.limits[0].period_ns, 0);
    assert_int_equal(ti.limits[1].algorithm, RL_ALGO_GCRA);
    for (i = 0; i < 2; i++) {
        back[i].name = ti.limits[i].name;
        back[i].resource = ti.limits[i].resource;
        back[i].count = ti.limits[i].count;
        back[i].period_ns = ti.limits[i].period_ns;
        back[i].burst = ti.limits[i].burst;
        back[i].algorithm = ti.limits[i].algorithm;
    }
    assert_int_equal(rl_tier_set(f->r, "c2", back, 2), RL_OK);
    assert_int_equal(rl_tier_get(f->r, "c2", &ti2), RL_OK);
    assert_memory_equal(ti.limits, ti2.limits, sizeof ti.limits);
    assert_int_equal(rl_key_assign(f->r, "k", "c"), RL_OK);
    assert_int_equal(rl_stats(f->r, "k", &st), RL_OK);
    assert_int_equal(st.limits[0].algorithm, RL_ALGO_CONCURRENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_tiers_and_assignment),
        BOTH(test_tier_change_rescales),
        BOTH(test_no_limits),
        BOTH(test_window_survives_reload),
        BOTH(test_huge_debt_carried_into_window),
        BOTH(test_period_zero_refused),
        BOTH(test_defaults_stored),
        SHARED(test_defaults_agree),
        SHARED(test_defaults_override),
        SHARED(test_defaults_readonly),
        BOTH(test_defaults_replaced_by_load),
    };
    return run_store_tests(tests, sizeof tests / sizeof tests[0], setup_redis);
}
