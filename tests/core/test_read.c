/*
 * test_read.c - core/read.c through the API, on every store
 * (api_fixture.h): rl_stats and rl_totals_get (before and after rl_reset),
 * first_seen_ns, and rl_keys_list (a pattern, sorting, a limit, a bad sort
 * refused).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "api_fixture.h"

static void test_stats_and_reset(void **state)
{
    fixture *f = *state;
    rl_result res;
    rl_key_stats st;
    rl_totals t;
    int i;
    for (i = 0; i < 12; i++)
        assert_int_equal(rl_allow(f->r, "s", 1, &res), RL_OK);
    f->now += RL_SECOND;
    assert_int_equal(rl_allow(f->r, "s", 3, &res), RL_OK);
    assert_int_equal(rl_allow(f->r, "other", 1, &res), RL_OK);
    assert_int_equal(rl_stats(f->r, "s", &st), RL_OK);
    assert_true(st.exists);
    assert_int_equal(st.allowed, 11);
    assert_int_equal(st.refused, 2);
    assert_int_equal(st.units, 13);
    assert_int_equal(st.first_seen_ns, T0);
    assert_int_equal(st.last_seen_ns, T0 + RL_SECOND);
    assert_int_equal(st.tier_source, RL_TIER_OPTIONS);
    assert_int_equal(st.limits[0].remaining, 7);
    assert_int_equal(rl_totals_get(f->r, &t), RL_OK);
    assert_int_equal(t.keys, 2);
    assert_int_equal(t.allowed, 12);
    assert_int_equal(t.refused, 2);
    assert_int_equal(rl_reset(f->r, "s"), RL_OK);
    assert_int_equal(rl_stats(f->r, "s", &st), RL_OK);
    assert_false(st.exists);
    assert_int_equal(st.limits[0].remaining, 10);
    assert_int_equal(rl_reset(f->r, "s"), RL_ENOTFOUND);
    assert_int_equal(rl_reset(f->r, "never"), RL_ENOTFOUND);
    assert_int_equal(rl_totals_get(f->r, &t), RL_OK);
    assert_int_equal(t.keys, 1);
}

static int count_key(void *ctx, const rl_key_stats *st)
{
    (void)st;
    (*(int *)ctx)++;
    return 0;
}

typedef struct first_keys {
    char keys[4][16];
    int n;
} first_keys;

static int record_key(void *ctx, const rl_key_stats *st)
{
    first_keys *fk = ctx;
    snprintf(fk->keys[fk->n++], 16, "%.15s", st->key);
    return fk->n == 4;
}

static void test_keys_list(void **state)
{
    fixture *f = *state;
    rl_result res;
    first_keys fk;
    int i, n = 0;
    for (i = 0; i < 5; i++)
        assert_int_equal(rl_allow(f->r, "ip:1", 1, &res), RL_OK);
    for (i = 0; i < 3; i++)
        assert_int_equal(rl_allow(f->r, "ip:2", 1, &res), RL_OK);
    assert_int_equal(rl_allow(f->r, "user:1", 1, &res), RL_OK);
    assert_int_equal(rl_keys_list(f->r, "ip:*", RL_SORT_KEY, 0, count_key, &n), RL_OK);
    assert_int_equal(n, 2);
    memset(&fk, 0, sizeof fk);
    assert_int_equal(rl_keys_list(f->r, NULL, RL_SORT_ALLOWED, 2, record_key, &fk), RL_OK);
    assert_int_equal(fk.n, 2);
    assert_string_equal(fk.keys[0], "ip:1");
    assert_string_equal(fk.keys[1], "ip:2");
    assert_int_equal(rl_keys_list(f->r, NULL, 99, 0, count_key, &n), RL_EINVAL);
}

/* 5. first_seen_ns is the time of the first decision, 0 included. */
static void test_first_seen_at_zero(void **state)
{
    fixture *f = *state;
    rl_key_stats st;
    rl_result res;
    f->now = 0;
    assert_int_equal(rl_allow(f->r, "z", 1, &res), RL_OK);
    f->now = 5 * RL_SECOND;
    assert_int_equal(rl_allow(f->r, "z", 1, &res), RL_OK);
    assert_int_equal(rl_stats(f->r, "z", &st), RL_OK);
    assert_int_equal(st.first_seen_ns, 0);
    assert_int_equal(st.last_seen_ns, 5 * RL_SECOND);
    assert_int_equal(st.allowed, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_stats_and_reset),
        BOTH(test_keys_list),
        BOTH(test_first_seen_at_zero),
    };
    return run_store_tests(tests, sizeof tests / sizeof tests[0], setup_redis);
}
