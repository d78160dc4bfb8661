/*
 * test_guard.c - core/guard.c through the API, on every store
 * (api_fixture.h): a guard takes every key's lease or none, settles the
 * real usage on all of them (or the estimate when none is given), gives
 * everything back when cancelled, feeds a 429's headers into the
 * account's cool-down for every handle, and is refused with RL_ELIMITED,
 * the limit's name, its key and a retry time (at once for timeout 0, and
 * without waiting when the wait would exceed the timeout). The fake clock
 * makes the amounts and times exact.
 */
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "api_fixture.h"

static const rl_limit account[] = { RL_LIMIT("rpm", "requests", 10, RL_MINUTE, 10),
                                    RL_LIMIT("tpm", "tokens", 1000, RL_MINUTE, 1000),
                                    RL_CONCURRENT("streams", "streams", 2) };

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * RL_SECOND + ts.tv_nsec;
}

/* The key's limit `name`, as rl_stats sees it now. */
static rl_limit_stats limit_of(rl *r, const char *key, const char *name)
{
    rl_key_stats st;
    size_t i;
    assert_int_equal(rl_stats(r, key, &st), RL_OK);
    for (i = 0; i < st.n_limits; i++)
        if (strcmp(st.limits[i].name, name) == 0)
            return st.limits[i];
    fail_msg("key '%s' has no limit '%s'", key, name);
    return st.limits[0];
}

static void use_account_tier(fixture *f)
{
    assert_int_equal(rl_tier_set(f->r, "default", account, 3), RL_OK);
}

/* begin takes the estimate and a slot; end settles the real tokens, frees
 * the slot and says what is left. */
static void test_begin_end_settles(void **state)
{
    fixture *f = *state;
    const char *keys[] = { "acct" };
    rl_cost est[] = { { "requests", 1 }, { "tokens", 600 }, { "streams", 1 } };
    rl_cost used[] = { { "tokens", 200 } };
    rl_guard g = RL_GUARD_INIT;
    rl_result res;
    use_account_tier(f);
    assert_int_equal(
        rl_guard_begin(f->r, keys, 1, est, 3, RL_PRIORITY_INTERACTIVE, 0, NULL, &g, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(g.n, 1);
    assert_true(g.lease[0].id > 0);
    assert_int_equal(g.lease[0].expires_at, T0 + 10 * RL_MINUTE); /* the default TTL */
    assert_int_equal(limit_of(f->r, "acct", "tpm").remaining, 400);
    assert_int_equal(limit_of(f->r, "acct", "streams").in_flight, 1);
    /* 200 used of 600: 400 come back, the slot is free again */
    assert_int_equal(rl_guard_end(f->r, &g, used, 1, NULL, NULL, 0, &res), RL_OK);
    assert_int_equal(g.n, 0);
    assert_int_equal(limit_of(f->r, "acct", "tpm").remaining, 800);
    assert_int_equal(limit_of(f->r, "acct", "rpm").remaining, 9);
    assert_int_equal(limit_of(f->r, "acct", "streams").in_flight, 0);
    /* the stats for the caller's response: the least room, as a share of
     * its burst (800/1000 of tpm against 9/10 of rpm and 2/2 streams) */
    assert_true(res.allowed);
    assert_string_equal(res.limit_name, "tpm");
    assert_int_equal(res.limit, 1000);
    assert_int_equal(res.remaining, 800);
    assert_int_equal(res.reset_after_ns, 200 * 60 * RL_MILLISECOND);
    assert_int_equal(res.retry_after_ns, 0);
    assert_int_equal(res.key_index, 0);
    /* ended: it holds nothing; ending again is an error, cancelling not */
    assert_int_equal(rl_guard_end(f->r, &g, used, 1, NULL, NULL, 0, &res), RL_EINVAL);
    assert_int_equal(rl_guard_cancel(f->r, &g), RL_OK);
    /* no actual usage: settled at the estimate; res may be NULL */
    assert_int_equal(rl_guard_begin(f->r, keys, 1, est, 3, RL_PRIORITY_BATCH, 0, NULL, &g, &res),
                     RL_OK);
    assert_int_equal(rl_guard_end(f->r, &g, NULL, 0, NULL, NULL, 0, NULL), RL_OK);
    assert_int_equal(limit_of(f->r, "acct", "tpm").remaining, 200);
    assert_int_equal(limit_of(f->r, "acct", "streams").in_flight, 0);
}

/* cancel gives the whole estimate back on every key, and frees the slots */
static void test_cancel_returns_everything(void **state)
{
    fixture *f = *state;
    const char *keys[] = { "user:alice", "acct" };
    rl_cost est[] = { { "requests", 1 }, { "tokens", 600 }, { "streams", 1 } };
    rl_guard g = RL_GUARD_INIT, never = RL_GUARD_INIT;
    rl_result res;
    use_account_tier(f);
    assert_int_equal(rl_guard_cancel(f->r, &never), RL_OK); /* holds nothing: nothing done */
    assert_int_equal(
        rl_guard_begin(f->r, keys, 2, est, 3, RL_PRIORITY_INTERACTIVE, 0, NULL, &g, &res), RL_OK);
    assert_int_equal(g.n, 2);
    assert_int_equal(limit_of(f->r, "user:alice", "tpm").remaining, 400);
    assert_int_equal(limit_of(f->r, "acct", "tpm").remaining, 400);
    assert_int_equal(limit_of(f->r, "acct", "streams").in_flight, 1);
    assert_int_equal(rl_guard_cancel(f->r, &g), RL_OK);
    assert_int_equal(g.n, 0);
    assert_int_equal(limit_of(f->r, "user:alice", "tpm").remaining, 1000);
    assert_int_equal(limit_of(f->r, "user:alice", "rpm").remaining, 10);
    assert_int_equal(limit_of(f->r, "acct", "tpm").remaining, 1000);
    assert_int_equal(limit_of(f->r, "acct", "rpm").remaining, 10);
    assert_int_equal(limit_of(f->r, "acct", "streams").in_flight, 0);
    assert_int_equal(limit_of(f->r, "user:alice", "streams").in_flight, 0);
    /* twice: nothing more comes back */
    assert_int_equal(rl_guard_cancel(f->r, &g), RL_OK);
    assert_int_equal(limit_of(f->r, "acct", "tpm").remaining, 1000);
}

/* A 429 with Retry-After: the provider counted the request (settled at
 * the estimate) and every handle's next guard on the account is refused
 * by the cool-down until it ends; the user's own key is not cooled. */
static void test_429_cools_every_handle(void **state)
{
    fixture *f = *state;
    const char *keys[] = { "user:alice", "acct" };
    const char *names[] = { "Retry-After", "x-ratelimit-remaining-tokens" };
    const char *values[] = { "3", "0" };
    rl_cost est[] = { { "requests", 1 }, { "tokens", 300 } };
    rl_guard g, g2;
    rl_result res;
    rl *r2;
    use_account_tier(f);
    assert_int_equal(open_with(f, NULL, 0, &r2), RL_OK);
    assert_int_equal(
        rl_guard_begin(f->r, keys, 2, est, 2, RL_PRIORITY_INTERACTIVE, 0, NULL, &g, &res), RL_OK);
    assert_int_equal(rl_guard_end(f->r, &g, NULL, 0, names, values, 2, &res), RL_OK);
    assert_int_equal(limit_of(f->r, "acct", "tpm").remaining, 700);
    assert_int_equal(limit_of(f->r, "user:alice", "tpm").remaining, 700);
    /* end's own result already says so */
    assert_false(res.allowed);
    assert_string_equal(res.limit_name, "cooldown");
    assert_int_equal(res.key_index, 1);
    assert_int_equal(res.retry_after_ns, 3 * RL_SECOND);
    /* another handle (another worker): refused by the cool-down, at once */
    assert_int_equal(
        rl_guard_begin(r2, keys, 2, est, 2, RL_PRIORITY_INTERACTIVE, 0, NULL, &g2, &res),
        RL_ELIMITED);
    assert_false(res.allowed);
    assert_string_equal(res.limit_name, "cooldown");
    assert_int_equal(res.key_index, 1);
    assert_int_equal(res.retry_after_ns, 3 * RL_SECOND);
    assert_int_equal(g2.n, 0);
    assert_non_null(strstr(rl_errmsg(r2), "cooldown"));
    /* refused: nothing charged on either key */
    assert_int_equal(limit_of(r2, "user:alice", "tpm").remaining, 700);
    /* the user's key alone is not cooled down */
    assert_int_equal(
        rl_guard_begin(r2, keys, 1, est, 2, RL_PRIORITY_INTERACTIVE, 0, NULL, &g2, &res), RL_OK);
    assert_int_equal(rl_guard_cancel(r2, &g2), RL_OK);
    /* once it has passed, the account admits again */
    f->now += 3 * RL_SECOND;
    assert_int_equal(
        rl_guard_begin(r2, keys, 2, est, 2, RL_PRIORITY_INTERACTIVE, 0, NULL, &g2, &res), RL_OK);
    assert_int_equal(rl_guard_end(r2, &g2, NULL, 0, NULL, NULL, 0, NULL), RL_OK);
    rl_close(r2);
}

/* The headers feed the key the options name; a quota read as exhausted
 * cools only its resource down. */
static void test_cooldown_key_option(void **state)
{
    fixture *f = *state;
    const char *keys[] = { "acct", "user:bob" };
    const char *names[] = { "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens" };
    const char *values[] = { "0", "6m0s" };
    rl_cost est[] = { { "requests", 1 }, { "tokens", 100 } };
    rl_cost req[] = { { "requests", 1 } };
    rl_guard_options o = RL_GUARD_OPTIONS_INIT;
    rl_guard g;
    rl_result res;
    use_account_tier(f);
    o.cooldown_key = 0;
    assert_int_equal(
        rl_guard_begin(f->r, keys, 2, est, 2, RL_PRIORITY_INTERACTIVE, 0, &o, &g, &res), RL_OK);
    assert_int_equal(rl_guard_end(f->r, &g, NULL, 0, names, values, 2, &res), RL_OK);
    assert_string_equal(res.limit_name, "cooldown");
    assert_int_equal(res.key_index, 0);
    assert_int_equal(res.retry_after_ns, 6 * RL_MINUTE);
    /* tokens of acct are stopped; its requests, and bob's tokens, are not */
    assert_int_equal(
        rl_guard_begin(f->r, keys, 2, est, 2, RL_PRIORITY_INTERACTIVE, 0, NULL, &g, &res),
        RL_ELIMITED);
    assert_string_equal(res.limit_name, "cooldown");
    assert_int_equal(res.key_index, 0);
    assert_int_equal(
        rl_guard_begin(f->r, keys, 2, req, 1, RL_PRIORITY_INTERACTIVE, 0, NULL, &g, &res), RL_OK);
    assert_int_equal(rl_guard_cancel(f->r, &g), RL_OK);
    assert_int_equal(
        rl_guard_begin(f->r, keys + 1, 1, est, 2, RL_PRIORITY_INTERACTIVE, 0, NULL, &g, &res),
        RL_OK);
    assert_int_equal(rl_guard_cancel(f->r, &g), RL_OK);
}

/* Refused by a rate: RL_ELIMITED, the limit's name, the key, and the exact
 * time after which the same guard passes; nothing charged. */
static void test_refusal_names_limit(void **state)
{
    fixture *f = *state;
    const char *keys[] = { "acct" };
    rl_cost est[] = { { "requests", 1 }, { "tokens", 600 } };
    rl_cost huge[] = { { "tokens", 1001 } };
    rl_guard g, g2;
    rl_result res;
    use_account_tier(f);
    assert_int_equal(
        rl_guard_begin(f->r, keys, 1, est, 2, RL_PRIORITY_INTERACTIVE, 0, NULL, &g, &res), RL_OK);
    assert_int_equal(
        rl_guard_begin(f->r, keys, 1, est, 2, RL_PRIORITY_INTERACTIVE, 0, NULL, &g2, &res),
        RL_ELIMITED);
    assert_false(res.allowed);
    assert_string_equal(res.limit_name, "tpm");
    assert_int_equal(res.key_index, 0);
    assert_int_equal(res.retry_after_ns, 200 * 60 * RL_MILLISECOND); /* 200 tokens at 60 ms */
    assert_int_equal(g2.n, 0);
    assert_non_null(strstr(rl_errmsg(f->r), "tpm"));
    assert_int_equal(limit_of(f->r, "acct", "tpm").remaining, 400);
    assert_int_equal(limit_of(f->r, "acct", "rpm").remaining, 9);
    /* more than the burst can never pass: not a refusal */
    assert_int_equal(
        rl_guard_begin(f->r, keys, 1, huge, 1, RL_PRIORITY_INTERACTIVE, 0, NULL, &g2, &res),
        RL_ETOOBIG);
    /* exactly when it said, it passes */
    f->now += 12 * RL_SECOND;
    assert_int_equal(
        rl_guard_begin(f->r, keys, 1, est, 2, RL_PRIORITY_INTERACTIVE, 0, NULL, &g2, &res), RL_OK);
    assert_int_equal(rl_guard_end(f->r, &g, NULL, 0, NULL, NULL, 0, NULL), RL_OK);
    assert_int_equal(rl_guard_end(f->r, &g2, NULL, 0, NULL, NULL, 0, NULL), RL_OK);
}

/* Timeout 0 decides at once; a wait that would exceed the timeout is
 * refused at once too; slots that stay full refuse at the timeout. */
static void test_timeout_zero_does_not_wait(void **state)
{
    fixture *f = *state;
    const char *keys[] = { "acct" };
    rl_cost stream[] = { { "streams", 1 } };
    rl_cost est[] = { { "tokens", 600 } };
    rl_guard a, b, c;
    rl_result res;
    int64_t t;
    use_account_tier(f);
    assert_int_equal(
        rl_guard_begin(f->r, keys, 1, stream, 1, RL_PRIORITY_INTERACTIVE, 0, NULL, &a, &res),
        RL_OK);
    assert_int_equal(
        rl_guard_begin(f->r, keys, 1, stream, 1, RL_PRIORITY_INTERACTIVE, 0, NULL, &b, &res),
        RL_OK);
    t = mono_ns();
    assert_int_equal(
        rl_guard_begin(f->r, keys, 1, stream, 1, RL_PRIORITY_INTERACTIVE, 0, NULL, &c, &res),
        RL_ELIMITED);
    assert_true(mono_ns() - t < 500 * RL_MILLISECOND);
    assert_string_equal(res.limit_name, "streams");
    assert_true(res.retry_after_ns > 0 && res.retry_after_ns <= RL_SLOT_RETRY_NS);
    assert_int_equal(c.n, 0);
    /* a negative timeout is 0 */
    assert_int_equal(
        rl_guard_begin(f->r, keys, 1, stream, 1, RL_PRIORITY_BATCH, -5, NULL, &c, &res),
        RL_ELIMITED);
    /* slots held for the whole timeout: refused once it has passed */
    t = mono_ns();
    assert_int_equal(rl_guard_begin(f->r, keys, 1, stream, 1, RL_PRIORITY_INTERACTIVE,
                                    50 * RL_MILLISECOND, NULL, &c, &res),
                     RL_ELIMITED);
    t = mono_ns() - t;
    assert_true(t >= 50 * RL_MILLISECOND && t < 5 * RL_SECOND);
    assert_string_equal(res.limit_name, "streams");
    /* tokens: 600 taken, the next 600 need 12 s, more than the 1 s
     * accepted: refused before any wait */
    assert_int_equal(
        rl_guard_begin(f->r, keys, 1, est, 1, RL_PRIORITY_INTERACTIVE, 0, NULL, &c, &res), RL_OK);
    assert_int_equal(rl_guard_end(f->r, &c, NULL, 0, NULL, NULL, 0, NULL), RL_OK);
    t = mono_ns();
    assert_int_equal(
        rl_guard_begin(f->r, keys, 1, est, 1, RL_PRIORITY_INTERACTIVE, RL_SECOND, NULL, &c, &res),
        RL_ELIMITED);
    assert_true(mono_ns() - t < 500 * RL_MILLISECOND);
    assert_string_equal(res.limit_name, "tpm");
    assert_int_equal(res.retry_after_ns, 12 * RL_SECOND);
    assert_int_equal(rl_guard_cancel(f->r, &a), RL_OK);
    assert_int_equal(rl_guard_cancel(f->r, &b), RL_OK);
}

/* user + account in one guard: both leases or neither, whichever key
 * refuses. */
static void test_multi_key_all_or_nothing(void **state)
{
    fixture *f = *state;
    static const rl_limit big[] = { RL_LIMIT("rpm", "requests", 10, RL_MINUTE, 10),
                                    RL_LIMIT("tpm", "tokens", 5000, RL_MINUTE, 5000),
                                    RL_CONCURRENT("streams", "streams", 2) };
    static const rl_limit user[] = { RL_LIMIT("user_tpm", "tokens", 1000, RL_MINUTE, 1000),
                                     RL_LIMIT("user_rpm", "requests", 100, RL_MINUTE, 100) };
    const char *alice[] = { "user:alice", "acct" };
    const char *bob[] = { "user:bob", "acct" };
    rl_cost est[] = { { "requests", 1 }, { "tokens", 600 }, { "streams", 1 } };
    rl_cost small[] = { { "requests", 1 }, { "tokens", 100 }, { "streams", 1 } };
    rl_guard a, b, c;
    rl_result res;
    assert_int_equal(rl_tier_set(f->r, "acct", big, 3), RL_OK);
    assert_int_equal(rl_tier_set(f->r, "user", user, 2), RL_OK);
    assert_int_equal(rl_key_assign(f->r, "acct", "acct"), RL_OK);
    assert_int_equal(rl_key_assign(f->r, "user:alice", "user"), RL_OK);
    assert_int_equal(rl_key_assign(f->r, "user:bob", "user"), RL_OK);
    assert_int_equal(
        rl_guard_begin(f->r, alice, 2, small, 3, RL_PRIORITY_INTERACTIVE, 0, NULL, &a, &res),
        RL_OK);
    assert_int_equal(a.n, 2);
    assert_true(a.lease[0].id > 0 && a.lease[1].id > 0 && a.lease[0].id != a.lease[1].id);
    assert_int_equal(limit_of(f->r, "user:alice", "user_tpm").remaining, 900);
    assert_int_equal(limit_of(f->r, "acct", "tpm").remaining, 4900);
    /* alice's own budget refuses: the account is not charged */
    assert_int_equal(rl_guard_begin(f->r, alice, 2, (rl_cost[]){ { "tokens", 950 } }, 1,
                                    RL_PRIORITY_INTERACTIVE, 0, NULL, &b, &res),
                     RL_ELIMITED);
    assert_string_equal(res.limit_name, "user_tpm");
    assert_int_equal(res.key_index, 0);
    assert_int_equal(b.n, 0);
    assert_int_equal(limit_of(f->r, "acct", "tpm").remaining, 4900);
    /* bob takes the account's second stream */
    assert_int_equal(
        rl_guard_begin(f->r, bob, 2, est, 3, RL_PRIORITY_INTERACTIVE, 0, NULL, &b, &res), RL_OK);
    /* the account's streams refuse: alice's budget is not charged */
    assert_int_equal(
        rl_guard_begin(f->r, alice, 2, small, 3, RL_PRIORITY_INTERACTIVE, 0, NULL, &c, &res),
        RL_ELIMITED);
    assert_string_equal(res.limit_name, "streams");
    assert_int_equal(res.key_index, 1);
    assert_int_equal(limit_of(f->r, "user:alice", "user_tpm").remaining, 900);
    assert_int_equal(limit_of(f->r, "user:alice", "user_rpm").remaining, 99);
    /* ending settles both keys: 50 of alice's 100 tokens come back to each */
    assert_int_equal(
        rl_guard_end(f->r, &a, (rl_cost[]){ { "tokens", 50 } }, 1, NULL, NULL, 0, &res), RL_OK);
    assert_int_equal(limit_of(f->r, "user:alice", "user_tpm").remaining, 950);
    assert_int_equal(limit_of(f->r, "acct", "tpm").remaining, 4350);
    /* least room: the account's streams, 1 of 2 (bob holds the other) */
    assert_string_equal(res.limit_name, "streams");
    assert_int_equal(res.key_index, 1);
    assert_int_equal(res.remaining, 1);
    assert_int_equal(res.limit, 2);
    assert_int_equal(rl_guard_end(f->r, &b, NULL, 0, NULL, NULL, 0, NULL), RL_OK);
}

/* A short TTL: a guard never ended gives its slot back then, and ending
 * it afterwards says it was settled at its estimate. */
static void test_ttl_option(void **state)
{
    fixture *f = *state;
    const char *keys[] = { "acct" };
    rl_cost stream[] = { { "streams", 2 } };
    rl_guard_options o = RL_GUARD_OPTIONS_INIT;
    rl_guard a, b;
    rl_result res;
    use_account_tier(f);
    o.ttl_ns = RL_SECOND;
    assert_int_equal(
        rl_guard_begin(f->r, keys, 1, stream, 1, RL_PRIORITY_INTERACTIVE, 0, &o, &a, &res), RL_OK);
    assert_int_equal(a.lease[0].expires_at, T0 + RL_SECOND);
    assert_int_equal(
        rl_guard_begin(f->r, keys, 1, stream, 1, RL_PRIORITY_INTERACTIVE, 0, &o, &b, &res),
        RL_ELIMITED);
    f->now += RL_SECOND;
    assert_int_equal(
        rl_guard_begin(f->r, keys, 1, stream, 1, RL_PRIORITY_INTERACTIVE, 0, &o, &b, &res), RL_OK);
    assert_int_equal(rl_guard_end(f->r, &a, NULL, 0, NULL, NULL, 0, NULL), RL_ENOTFOUND);
    assert_int_equal(a.n, 0);
    assert_int_equal(rl_guard_cancel(f->r, &b), RL_OK);
}

/* A cancel flag already set: the wait ends with RL_ECANCELED, nothing held. */
static void test_cancel_flag(void **state)
{
    fixture *f = *state;
    static volatile sig_atomic_t stop = 1;
    const char *keys[] = { "acct" };
    rl_cost stream[] = { { "streams", 1 } };
    rl_guard_options o = RL_GUARD_OPTIONS_INIT;
    rl_guard g;
    rl_result res;
    use_account_tier(f);
    o.cancel = &stop;
    assert_int_equal(
        rl_guard_begin(f->r, keys, 1, stream, 1, RL_PRIORITY_INTERACTIVE, RL_FOREVER, &o, &g, &res),
        RL_ECANCELED);
    assert_int_equal(g.n, 0);
    assert_int_equal(limit_of(f->r, "acct", "streams").in_flight, 0);
}

static void test_bad_arguments(void **state)
{
    fixture *f = *state;
    const char *keys[] = { "user:alice", "acct" };
    const char *dup[] = { "acct", "acct" };
    const char *nine[] = { "a", "b", "c", "d", "e", "f", "g", "h", "i" };
    const char *bad_key[] = { "" };
    const char *names[] = { "Retry-After" };
    rl_cost est[] = { { "requests", 1 }, { "tokens", 10 } };
    rl_cost neg[] = { { "tokens", -1 } };
    rl_guard_options o = RL_GUARD_OPTIONS_INIT;
    rl_guard g;
    rl_result res;
    rl *r = f->r;
    const rl_priority P = RL_PRIORITY_INTERACTIVE;
    use_account_tier(f);
    assert_int_equal(rl_guard_begin(NULL, keys, 2, est, 2, P, 0, NULL, &g, &res), RL_EINVAL);
    assert_int_equal(rl_guard_begin(r, keys, 2, est, 2, P, 0, NULL, NULL, &res), RL_EINVAL);
    assert_int_equal(rl_guard_begin(r, keys, 2, est, 2, P, 0, NULL, &g, NULL), RL_EINVAL);
    assert_int_equal(rl_guard_begin(r, NULL, 2, est, 2, P, 0, NULL, &g, &res), RL_EINVAL);
    assert_int_equal(rl_guard_begin(r, keys, 0, est, 2, P, 0, NULL, &g, &res), RL_EINVAL);
    assert_int_equal(rl_guard_begin(r, nine, 9, est, 2, P, 0, NULL, &g, &res), RL_EINVAL);
    assert_int_equal(rl_guard_begin(r, dup, 2, est, 2, P, 0, NULL, &g, &res), RL_EINVAL);
    assert_int_equal(rl_guard_begin(r, bad_key, 1, est, 2, P, 0, NULL, &g, &res), RL_EINVAL);
    assert_int_equal(rl_guard_begin(r, keys, 2, NULL, 2, P, 0, NULL, &g, &res), RL_EINVAL);
    assert_int_equal(rl_guard_begin(r, keys, 2, est, 0, P, 0, NULL, &g, &res), RL_EINVAL);
    assert_int_equal(rl_guard_begin(r, keys, 2, neg, 1, P, 0, NULL, &g, &res), RL_EINVAL);
    assert_int_equal(rl_guard_begin(r, keys, 2, est, 2, (rl_priority)7, 0, NULL, &g, &res),
                     RL_EINVAL);
    o.version = 0;
    assert_int_equal(rl_guard_begin(r, keys, 2, est, 2, P, 0, &o, &g, &res), RL_EINVAL);
    o.version = RL_GUARD_OPTIONS_VERSION + 1;
    assert_int_equal(rl_guard_begin(r, keys, 2, est, 2, P, 0, &o, &g, &res), RL_EINVAL);
    o.version = RL_GUARD_OPTIONS_VERSION;
    o.ttl_ns = 0;
    assert_int_equal(rl_guard_begin(r, keys, 2, est, 2, P, 0, &o, &g, &res), RL_EINVAL);
    o.ttl_ns = RL_MINUTE;
    o.cooldown_key = 2;
    assert_int_equal(rl_guard_begin(r, keys, 2, est, 2, P, 0, &o, &g, &res), RL_EINVAL);
    o.cooldown_key = -2;
    assert_int_equal(rl_guard_begin(r, keys, 2, est, 2, P, 0, &o, &g, &res), RL_EINVAL);
    assert_int_equal(g.n, 0);
    /* nothing of it was charged */
    assert_int_equal(limit_of(r, "acct", "tpm").remaining, 1000);
    /* ending: bad arguments change nothing, the guard keeps its leases */
    assert_int_equal(rl_guard_end(r, NULL, NULL, 0, NULL, NULL, 0, NULL), RL_EINVAL);
    assert_int_equal(rl_guard_end(NULL, &g, NULL, 0, NULL, NULL, 0, NULL), RL_EINVAL);
    assert_int_equal(rl_guard_cancel(r, NULL), RL_EINVAL);
    assert_int_equal(rl_guard_cancel(NULL, &g), RL_EINVAL);
    assert_int_equal(rl_guard_begin(r, keys, 2, est, 2, P, 0, NULL, &g, &res), RL_OK);
    assert_int_equal(rl_guard_end(r, &g, NULL, 0, names, NULL, 1, NULL), RL_EINVAL);
    assert_int_equal(rl_guard_end(r, &g, NULL, 1, NULL, NULL, 0, NULL), RL_EINVAL);
    assert_int_equal(rl_guard_end(r, &g, neg, 1, NULL, NULL, 0, NULL), RL_EINVAL);
    assert_int_equal(g.n, 2);
    assert_int_equal(rl_guard_cancel(r, &g), RL_OK);
    assert_int_equal(limit_of(r, "acct", "tpm").remaining, 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_begin_end_settles),
        BOTH(test_cancel_returns_everything),
        SHARED(test_429_cools_every_handle),
        BOTH(test_cooldown_key_option),
        BOTH(test_refusal_names_limit),
        BOTH(test_timeout_zero_does_not_wait),
        BOTH(test_multi_key_all_or_nothing),
        BOTH(test_ttl_option),
        BOTH(test_cancel_flag),
        BOTH(test_bad_arguments),
    };
    return run_store_tests(tests, sizeof tests / sizeof tests[0], setup_redis);
}
