/*
 * test_cooldown.c - core/cooldown.c through the API, on every store
 * (api_fixture.h): rl_penalize (a cool-down on a key or one resource,
 * never shortened, lifted by 0, bounded per key) and rl_observe_headers (a
 * provider's Retry-After and x-ratelimit-* headers become cool-downs).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "api_fixture.h"

/* A cool-down set through one handle stops every decision it covers. */
static void test_penalize(void **state)
{
    fixture *f = *state;
    static const rl_limit lims[] = { RL_LIMIT("rpm", "requests", 100, RL_MINUTE, 100),
                                     RL_LIMIT("tpm", "tokens", 1000, RL_MINUTE, 1000) };
    rl_cost tok = { "tokens", 10 };
    rl_result res;
    rl_key_stats st;
    int i;
    assert_int_equal(rl_tier_set(f->r, "default", lims, 2), RL_OK);
    assert_int_equal(rl_penalize(f->r, "p", NULL, 5 * RL_SECOND), RL_OK);
    assert_int_equal(rl_allow(f->r, "p", 1, &res), RL_OK);
    assert_false(res.allowed);
    assert_string_equal(res.limit_name, "cooldown");
    assert_int_equal(res.retry_after_ns, 5 * RL_SECOND);
    assert_int_equal(rl_stats(f->r, "p", &st), RL_OK);
    assert_int_equal(st.cooldown_ns, 5 * RL_SECOND);
    assert_int_equal(st.limits[0].remaining, 100); /* nothing was charged */
    /* a shorter one does not shorten it; other keys are free */
    assert_int_equal(rl_penalize(f->r, "p", NULL, RL_SECOND), RL_OK);
    f->now += 4 * RL_SECOND;
    assert_int_equal(rl_allow(f->r, "p", 1, &res), RL_OK);
    assert_false(res.allowed);
    assert_int_equal(res.retry_after_ns, RL_SECOND);
    assert_int_equal(rl_allow(f->r, "q", 1, &res), RL_OK);
    assert_true(res.allowed);
    f->now += RL_SECOND;
    assert_int_equal(rl_allow(f->r, "p", 1, &res), RL_OK);
    assert_true(res.allowed);
    /* one resource only */
    assert_int_equal(rl_penalize(f->r, "p", "tokens", 30 * RL_SECOND), RL_OK);
    assert_int_equal(rl_allow(f->r, "p", 1, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_acquire(f->r, "p", &tok, 1, &res), RL_OK);
    assert_false(res.allowed);
    assert_string_equal(res.limit_name, "cooldown");
    assert_int_equal(rl_stats(f->r, "p", &st), RL_OK);
    assert_int_equal(st.limits[1].cooldown_ns, 30 * RL_SECOND);
    assert_int_equal(st.limits[0].cooldown_ns, 0);
    /* 0 lifts it */
    assert_int_equal(rl_penalize(f->r, "p", "tokens", 0), RL_OK);
    assert_int_equal(rl_acquire(f->r, "p", &tok, 1, &res), RL_OK);
    assert_true(res.allowed);
    /* bounded number of cool-downs per key; bad arguments */
    for (i = 0; i < 4; i++) {
        char res_name[16];
        snprintf(res_name, sizeof res_name, "r%d", i);
        assert_int_equal(rl_penalize(f->r, "p", res_name, RL_MINUTE), RL_OK);
    }
    assert_int_equal(rl_penalize(f->r, "p", "r9", RL_MINUTE), RL_EINVAL);
    assert_int_equal(rl_penalize(f->r, "p", "bad name", RL_MINUTE), RL_EINVAL);
    assert_int_equal(rl_penalize(f->r, "p", NULL, -1), RL_EINVAL);
}

/* A provider's 429 headers become cool-downs every process respects. */
static void test_observe_headers(void **state)
{
    fixture *f = *state;
    static const rl_limit lims[] = { RL_LIMIT("rpm", "requests", 100, RL_MINUTE, 100),
                                     RL_LIMIT("tpm", "tokens", 10000, RL_MINUTE, 10000) };
    const char *names1[] = { "Retry-After" }, *values1[] = { "7" };
    const char *names2[] = { "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens",
                             "x-ratelimit-remaining-requests" };
    const char *values2[] = { "0", "6m0s", "42" };
    rl_cost tok = { "tokens", 1 };
    rl_result res;
    rl_key_stats st;
    assert_int_equal(rl_tier_set(f->r, "default", lims, 2), RL_OK);
    assert_int_equal(rl_observe_headers(f->r, "openai", names1, values1, 1), RL_OK);
    assert_int_equal(rl_allow(f->r, "openai", 1, &res), RL_OK);
    assert_false(res.allowed);
    assert_int_equal(res.retry_after_ns, 7 * RL_SECOND);
    f->now += 7 * RL_SECOND;
    assert_int_equal(rl_observe_headers(f->r, "openai", names2, values2, 3), RL_OK);
    assert_int_equal(rl_allow(f->r, "openai", 1, &res), RL_OK);
    assert_true(res.allowed); /* requests still have room */
    assert_int_equal(rl_acquire(f->r, "openai", &tok, 1, &res), RL_OK);
    assert_false(res.allowed);
    assert_int_equal(res.retry_after_ns, 6 * RL_MINUTE);
    assert_int_equal(rl_stats(f->r, "openai", &st), RL_OK);
    assert_int_equal(st.limits[1].cooldown_ns, 6 * RL_MINUTE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_penalize),
        BOTH(test_observe_headers),
    };
    return run_store_tests(tests, sizeof tests / sizeof tests[0], setup_redis);
}
